//! Calls: idempotent batched upserts (ended is final, the caller card is kept), the list with
//! filters and keyset pagination, tenant isolation, and each call's history.

use calldesk_calls::{
    CallBook, CallEvent, CallEventKind, CallId, Direction, Extension, HangupCause, NumberPlan,
    Timestamp,
};
use calldesk_central::{CallEventRow, CallFilter, CentralError, CentralStore, HubCall};
use calldesk_wire::CallStateView::{Ended, Ringing, Talking};
use sqlx::PgPool;

use crate::common::{card, demo_tenant, hub_call, tid};

/// The hub's view of each state a real call goes through.
fn lifecycle(tenant: &str, id: &str) -> Vec<HubCall> {
    let plan = NumberPlan::new("RU").unwrap();
    let mut book = CallBook::new(tid(tenant));
    let call = CallId::new(id).unwrap();
    let ext = Extension::new("101").unwrap();
    [
        (
            0,
            CallEventKind::Started {
                direction: Direction::Inbound,
                from: plan.party("+74951234567"),
                to: plan.party("0367"),
            },
        ),
        (
            500,
            CallEventKind::OperatorRinging {
                extension: ext.clone(),
            },
        ),
        (
            2000,
            CallEventKind::Answered {
                extension: Some(ext),
            },
        ),
        (
            9000,
            CallEventKind::Ended {
                cause: Some(HangupCause {
                    code: 16,
                    text: "Normal Clearing".into(),
                }),
                status: None,
            },
        ),
    ]
    .into_iter()
    .filter_map(|(ms, kind)| {
        book.apply(&CallEvent {
            call: call.clone(),
            at: Timestamp::from_unix_millis(1_800_000_000_000 + ms),
            kind,
        })
        .unwrap()
    })
    .map(|u| HubCall::new(&u.call))
    .collect()
}

#[sqlx::test(migrator = "calldesk_central::MIGRATOR")]
async fn upserts_are_idempotent_ended_is_final_and_tenants_are_apart(pool: PgPool) {
    let store = CentralStore::from_pool(pool.clone());
    let (acme, globex) = (tid("acme"), tid("globex"));
    demo_tenant(&store, "acme", "1").await;
    demo_tenant(&store, "globex", "2").await;

    let states = lifecycle("acme", "1795259787.0");
    assert_eq!(states.len(), 4);
    // One by one: every state, the final one twice, then late earlier states (a replay).
    for c in states.iter().chain(states.last()).chain(&states[..2]) {
        store.upsert_calls(std::slice::from_ref(c)).await.unwrap();
    }
    // The same PBX call id in another tenant, all states in ONE batch (out of order, repeated).
    let other = lifecycle("globex", "1795259787.0");
    let batch: Vec<HubCall> = [
        &other[0], &other[1], &other[3], &other[2], &other[3], &other[0],
    ]
    .into_iter()
    .cloned()
    .collect();
    store.upsert_calls(&batch).await.unwrap();

    for t in [&acme, &globex] {
        assert_eq!(store.count_calls(t, None).await.unwrap(), 1);
        assert_eq!(store.count_calls(t, Some("answered")).await.unwrap(), 1);
        let stored = store.call(t, "1795259787.0").await.unwrap().unwrap();
        assert_eq!(stored.state, Ended);
        assert_eq!(stored.tenant, t.as_str());
        assert_eq!(stored.record.talk_secs, Some(7));
        assert_eq!(stored.record.answered_by, ["101"]);
        assert!(store.live_calls(t).await.unwrap().is_empty());
    }
    let expected = {
        let mut c = states[3].clone();
        c.notes.clear();
        c
    };
    assert_eq!(
        store.call(&acme, "1795259787.0").await.unwrap(),
        Some(expected)
    );

    let (status, talk, cause, live): (String, f64, i16, bool) = sqlx::query_as(
        "SELECT status, extract(epoch FROM ended_at - answered_at)::float8, hangup_cause, live
         FROM calls WHERE tenant_id = 'acme'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(
        (status.as_str(), talk, cause, live),
        ("answered", 7.0, 16, false)
    );

    // The existing single-call entry point goes the same way.
    let plan = NumberPlan::new("RU").unwrap();
    let mut book = CallBook::new(acme.clone());
    let started = book
        .apply(&CallEvent {
            call: CallId::new("x").unwrap(),
            at: Timestamp::from_unix_millis(1_800_000_000_000),
            kind: CallEventKind::Started {
                direction: Direction::Internal,
                from: plan.party("101"),
                to: plan.party("102"),
            },
        })
        .unwrap()
        .unwrap();
    store.upsert_call(&started.call).await.unwrap();
    assert_eq!(store.live_calls(&acme).await.unwrap().len(), 1);
}

#[sqlx::test(migrator = "calldesk_central::MIGRATOR")]
async fn the_caller_card_survives_writes_without_one(pool: PgPool) {
    let store = CentralStore::from_pool(pool);
    let acme = tid("acme");
    demo_tenant(&store, "acme", "1").await;
    let at = "2026-01-01T10:00:00.000Z";

    let mut ringing = hub_call("acme", "c1", at, Ringing);
    ringing.caller = Some(card("+74951234567", Some((7, "Ivan")), Some((3, "Horns"))));
    store.upsert_calls(&[ringing]).await.unwrap();
    // The next state does not carry the card (the hub looked it up once).
    store
        .upsert_calls(&[hub_call("acme", "c1", at, Talking)])
        .await
        .unwrap();
    let stored = store.call(&acme, "c1").await.unwrap().unwrap();
    assert_eq!(stored.state, Talking);
    assert_eq!(
        stored.caller,
        Some(card("+74951234567", Some((7, "Ivan")), Some((3, "Horns"))))
    );
    let by_contact = CallFilter {
        contact_id: Some(7),
        ..CallFilter::default()
    };
    assert_eq!(
        store
            .list_calls(&acme, &by_contact)
            .await
            .unwrap()
            .items
            .len(),
        1
    );

    // A new card replaces the old one (here: only a company).
    let mut ended = hub_call("acme", "c1", at, Ended);
    ended.caller = Some(card("+74951234567", None, Some((4, "Rogues"))));
    store.upsert_calls(&[ended]).await.unwrap();
    let stored = store.call(&acme, "c1").await.unwrap().unwrap();
    assert_eq!(
        stored.caller,
        Some(card("+74951234567", None, Some((4, "Rogues"))))
    );
    assert!(
        store
            .list_calls(&acme, &by_contact)
            .await
            .unwrap()
            .items
            .is_empty()
    );
    let by_company = CallFilter {
        company_id: Some(4),
        ..CallFilter::default()
    };
    assert_eq!(
        store
            .list_calls(&acme, &by_company)
            .await
            .unwrap()
            .items
            .len(),
        1
    );

    // In one batch as well: the card of an earlier state is kept.
    let mut first = hub_call("acme", "c2", at, Ringing);
    first.caller = Some(card("+74951234567", Some((8, "Olga")), None));
    store
        .upsert_calls(&[first, hub_call("acme", "c2", at, Talking)])
        .await
        .unwrap();
    let stored = store.call(&acme, "c2").await.unwrap().unwrap();
    assert_eq!(
        stored.caller,
        Some(card("+74951234567", Some((8, "Olga")), None))
    );
}

#[sqlx::test(migrator = "calldesk_central::MIGRATOR")]
async fn bad_calls_and_unknown_tenants_are_refused(pool: PgPool) {
    let store = CentralStore::from_pool(pool);
    demo_tenant(&store, "acme", "1").await;
    let at = "2026-01-01T10:00:00.000Z";

    let e = store
        .upsert_calls(&[
            hub_call("acme", "ok", at, Ringing),
            hub_call("nobody", "c", at, Ringing),
        ])
        .await
        .unwrap_err();
    assert!(
        matches!(&e, CentralError::NotFound(m) if m.contains("nobody")),
        "{e:?}"
    );
    let mut bad = hub_call("acme", "bad", at, Ringing);
    bad.record.started_at = Some("10:00".into());
    let e = store.upsert_calls(&[bad]).await.unwrap_err();
    assert!(
        matches!(&e, CentralError::Invalid(m) if m.contains("call bad")),
        "{e:?}"
    );
    assert_eq!(
        store.count_calls(&tid("acme"), None).await.unwrap(),
        0,
        "nothing written"
    );
    store.upsert_calls(&[]).await.unwrap();

    // A state without a start time: stored at now(), and a later one keeps that start.
    let mut unknown = hub_call("acme", "c", at, Ringing);
    unknown.record.started_at = None;
    store.upsert_calls(&[unknown]).await.unwrap();
    let page = store
        .list_calls(&tid("acme"), &CallFilter::default())
        .await
        .unwrap();
    assert_eq!(page.items.len(), 1);
}

#[sqlx::test(migrator = "calldesk_central::MIGRATOR")]
async fn list_filters_combine(pool: PgPool) {
    let store = CentralStore::from_pool(pool);
    let acme = tid("acme");
    demo_tenant(&store, "acme", "1").await;
    demo_tenant(&store, "globex", "2").await;

    let mut calls = Vec::new();
    let mut answered = hub_call("acme", "a1", "2026-01-01T09:00:00.000Z", Ended);
    answered.record.status = Some("answered".into());
    answered.operator = Some("101".into());
    calls.push(answered);
    let mut out = hub_call("acme", "a2", "2026-01-02T09:00:00.000Z", Ended);
    out.record.direction = "outbound".into();
    out.record.from = "101".into();
    out.record.to = "+74957654321".into();
    out.operator = Some("101".into());
    calls.push(out);
    let mut live = hub_call("acme", "a3", "2026-01-03T09:00:00.000Z", Talking);
    live.operator = Some("102".into());
    live.record.from = "+79160000000".into();
    calls.push(live);
    calls.push(hub_call("acme", "a4", "2026-01-04T09:00:00+03:00", Ringing));
    // Globex's call matches every filter below but must never show up.
    let mut foreign = hub_call("globex", "g1", "2026-01-02T09:00:00.000Z", Ended);
    foreign.operator = Some("101".into());
    calls.push(foreign);
    store.upsert_calls(&calls).await.unwrap();

    let ids = |f: CallFilter| {
        let store = store.clone();
        let acme = acme.clone();
        async move {
            store
                .list_calls(&acme, &f)
                .await
                .unwrap()
                .items
                .into_iter()
                .map(|c| c.record.id)
                .collect::<Vec<_>>()
        }
    };
    let all = CallFilter::default();
    assert_eq!(
        ids(all.clone()).await,
        ["a4", "a3", "a2", "a1"],
        "newest first"
    );
    assert_eq!(
        ids(CallFilter {
            operator: Some("101".into()),
            ..all.clone()
        })
        .await,
        ["a2", "a1"]
    );
    assert_eq!(
        ids(CallFilter {
            status: Some("missed".into()),
            ..all.clone()
        })
        .await,
        ["a2"]
    );
    assert_eq!(
        ids(CallFilter {
            direction: Some("outbound".into()),
            ..all.clone()
        })
        .await,
        ["a2"]
    );
    // `phone` matches the caller or the dialled number.
    assert_eq!(
        ids(CallFilter {
            phone: Some("+74951234567".into()),
            ..all.clone()
        })
        .await,
        ["a4", "a1"]
    );
    assert_eq!(
        ids(CallFilter {
            phone: Some("+74957654321".into()),
            ..all.clone()
        })
        .await,
        ["a2"]
    );
    assert_eq!(
        ids(CallFilter {
            since: Some("2026-01-02T09:00:00Z".into()),
            until: Some("2026-01-03T09:00:00Z".into()),
            ..all.clone()
        })
        .await,
        ["a2"],
        "since inclusive, until exclusive"
    );
    // a4 started at 06:00 UTC (09:00+03:00): offsets are honoured on both sides.
    assert_eq!(
        ids(CallFilter {
            since: Some("2026-01-04T08:00:00+02:00".into()),
            ..all.clone()
        })
        .await,
        ["a4"]
    );
    assert_eq!(
        ids(CallFilter {
            since: Some("2026-01-04T06:00:00.001Z".into()),
            ..all.clone()
        })
        .await,
        Vec::<String>::new()
    );
    assert_eq!(
        ids(CallFilter {
            operator: Some("101".into()),
            direction: Some("inbound".into()),
            status: Some("answered".into()),
            ..all.clone()
        })
        .await,
        ["a1"]
    );
    let live: Vec<String> = store
        .live_calls(&acme)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.record.id)
        .collect();
    assert_eq!(live, ["a3", "a4"], "oldest first");

    for (bad, what) in [
        (
            CallFilter {
                since: Some("yesterday".into()),
                ..all.clone()
            },
            "bad `since` time",
        ),
        (
            CallFilter {
                until: Some("2026-01-01".into()),
                ..all.clone()
            },
            "bad `until` time",
        ),
        (
            CallFilter {
                status: Some("lost".into()),
                ..all.clone()
            },
            "status `lost`",
        ),
        (
            CallFilter {
                direction: Some("up".into()),
                ..all.clone()
            },
            "direction `up`",
        ),
    ] {
        let e = store.list_calls(&acme, &bad).await.unwrap_err();
        assert!(
            matches!(&e, CentralError::Invalid(m) if m.contains(what)),
            "{e:?}"
        );
    }

    // Globex sees only its own call; acme's calls are not readable from globex.
    let theirs = store.list_calls(&tid("globex"), &all).await.unwrap();
    assert_eq!(theirs.items.len(), 1);
    assert_eq!(theirs.items[0].record.id, "g1");
    assert_eq!(store.call(&tid("globex"), "a1").await.unwrap(), None);
    assert!(store.live_calls(&tid("globex")).await.unwrap().is_empty());
}

#[sqlx::test(migrator = "calldesk_central::MIGRATOR")]
async fn keyset_pages_cover_every_call_once_even_with_equal_start_times(pool: PgPool) {
    let store = CentralStore::from_pool(pool);
    let acme = tid("acme");
    demo_tenant(&store, "acme", "1").await;
    // Seven calls in the same millisecond, three earlier ones, one later.
    let mut calls: Vec<HubCall> = (0..7)
        .map(|i| {
            hub_call(
                "acme",
                &format!("same.{i}"),
                "2026-01-01T10:00:00.123Z",
                Ended,
            )
        })
        .collect();
    for (i, at) in [
        "2026-01-01T09:00:00Z",
        "2026-01-01T09:30:00Z",
        "2026-01-01T09:59:59.999Z",
    ]
    .iter()
    .enumerate()
    {
        calls.push(hub_call("acme", &format!("early.{i}"), at, Ended));
    }
    calls.push(hub_call("acme", "late", "2026-01-01T11:00:00Z", Ended));
    store.upsert_calls(&calls).await.unwrap();

    let mut seen = Vec::new();
    let mut filter = CallFilter {
        limit: 3,
        ..CallFilter::default()
    };
    let mut pages = 0;
    loop {
        let page = store.list_calls(&acme, &filter).await.unwrap();
        pages += 1;
        assert!(page.items.len() <= 3);
        seen.extend(page.items.into_iter().map(|c| c.record.id));
        match page.next {
            Some(next) => filter.after = Some(next),
            None => break,
        }
        assert!(pages < 10, "pagination does not end");
    }
    assert_eq!(pages, 4);
    assert_eq!(
        seen,
        [
            "late", "same.6", "same.5", "same.4", "same.3", "same.2", "same.1", "same.0",
            "early.2", "early.1", "early.0"
        ]
    );
    // A full last page has no `next` only when nothing follows.
    let exact = store
        .list_calls(
            &acme,
            &CallFilter {
                limit: 11,
                ..CallFilter::default()
            },
        )
        .await
        .unwrap();
    assert_eq!((exact.items.len(), exact.next), (11, None));
    // Pages combine with filters.
    let page = store
        .list_calls(
            &acme,
            &CallFilter {
                limit: 2,
                since: Some("2026-01-01T10:00:00Z".into()),
                after: filter_after(&store, &acme).await,
                ..CallFilter::default()
            },
        )
        .await
        .unwrap();
    let ids: Vec<String> = page.items.into_iter().map(|c| c.record.id).collect();
    assert_eq!(ids, ["same.5", "same.4"]);

    for bad in ["garbage", "", "00", &"41".repeat(8)] {
        let e = store
            .list_calls(
                &acme,
                &CallFilter {
                    after: Some(bad.into()),
                    ..CallFilter::default()
                },
            )
            .await
            .unwrap_err();
        assert!(
            matches!(&e, CentralError::Invalid(m) if m == "bad `after` cursor"),
            "{bad}: {e:?}"
        );
    }
    // Limits are clamped.
    let one = store
        .list_calls(
            &acme,
            &CallFilter {
                limit: -5,
                ..CallFilter::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(one.items.len(), 1);
}

/// The cursor after the second call of the default order ("same.6").
async fn filter_after(store: &CentralStore, acme: &calldesk_calls::TenantId) -> Option<String> {
    store
        .list_calls(
            acme,
            &CallFilter {
                limit: 2,
                ..CallFilter::default()
            },
        )
        .await
        .unwrap()
        .next
}

#[sqlx::test(migrator = "calldesk_central::MIGRATOR")]
async fn call_history_is_appended_in_order(pool: PgPool) {
    let store = CentralStore::from_pool(pool);
    let acme = tid("acme");
    demo_tenant(&store, "acme", "1").await;
    demo_tenant(&store, "globex", "2").await;
    let row = |tenant: &str, call: &str, kind: &str, at_ms: i64| CallEventRow {
        tenant: tid(tenant),
        call_id: call.into(),
        kind: kind.into(),
        at_ms,
        data: serde_json::json!({"at": at_ms, "note": "é\u{0}"}),
    };
    store
        .append_call_events(&[
            row("acme", "c1", "new", 1),
            row("acme", "c2", "new", 2),
            row("acme", "c1", "updated", 3),
            row("globex", "c1", "new", 4),
        ])
        .await
        .unwrap();
    store
        .append_call_events(&[row("acme", "c1", "ended", 5)])
        .await
        .unwrap();
    store.append_call_events(&[]).await.unwrap();

    let history = store.call_events(&acme, "c1").await.unwrap();
    let kinds: Vec<(&str, i64)> = history.iter().map(|e| (e.kind.as_str(), e.at_ms)).collect();
    assert_eq!(kinds, [("new", 1), ("updated", 3), ("ended", 5)]);
    assert_eq!(history[0].tenant, acme);
    assert_eq!(history[0].call_id, "c1");
    assert_eq!(
        history[0].data,
        serde_json::json!({"at": 1, "note": "é\u{FFFD}"}),
        "NUL, which jsonb refuses, is replaced"
    );
    assert_eq!(
        store.call_events(&tid("globex"), "c1").await.unwrap().len(),
        1
    );
    assert!(store.call_events(&acme, "c9").await.unwrap().is_empty());

    let e = store
        .append_call_events(&[row("acme", "c1", "exploded", 6)])
        .await
        .unwrap_err();
    assert!(matches!(e, CentralError::Invalid(_)), "{e:?}");
    let e = store
        .append_call_events(&[row("nobody", "c1", "new", 6)])
        .await
        .unwrap_err();
    assert!(matches!(e, CentralError::NotFound(_)), "{e:?}");
    assert_eq!(store.call_events(&acme, "c1").await.unwrap().len(), 3);
}

#[sqlx::test(migrator = "calldesk_central::MIGRATOR")]
async fn thousands_of_calls_in_batches_of_a_hundred(pool: PgPool) {
    let store = CentralStore::from_pool(pool);
    let acme = tid("acme");
    demo_tenant(&store, "acme", "1").await;
    let started = |i: usize| format!("2026-01-01T10:{:02}:{:02}.000Z", i / 60 % 60, i % 60);
    // 3,000 calls; each batch carries a call's ringing and ended states plus a late replay of
    // ringing, as the hub's batches do when a call is short.
    for chunk in (0..3000).collect::<Vec<_>>().chunks(100) {
        let mut batch = Vec::new();
        for &i in chunk {
            let id = format!("call.{i}");
            batch.push(hub_call("acme", &id, &started(i), Ringing));
            if i % 3 != 0 {
                batch.push(hub_call("acme", &id, &started(i), Ended));
                batch.push(hub_call("acme", &id, &started(i), Ringing));
            }
        }
        store.upsert_calls(&batch).await.unwrap();
    }
    assert_eq!(store.count_calls(&acme, None).await.unwrap(), 3000);
    assert_eq!(
        store.count_calls(&acme, Some("missed")).await.unwrap(),
        2000
    );
    assert_eq!(store.live_calls(&acme).await.unwrap().len(), 1000);
}
