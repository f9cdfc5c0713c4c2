//! Desk sync: pushes apply each change once (a batch twice changes nothing), the conflict
//! rule, refusals and retries, and the feed desks pull (commit order, scope, tenants apart).

use calldesk_calls::Extension;
use calldesk_central::{CentralStore, NewOperator, Role, SyncActor};
use calldesk_wire::CallStateView::{Ended, Talking};
use calldesk_wire::{ChangeKind, SyncChange, SyncOutcome, SyncPage};
use sqlx::PgPool;

use crate::common::{demo_tenant, hub_call, now_ms, tid};

async fn operator(store: &CentralStore, login: &str, ext: &str, role: Role) -> SyncActor {
    let op = store
        .add_operator(&NewOperator {
            tenant: tid("acme"),
            login: login.into(),
            name: None,
            password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaA".into(),
            role,
            extension: Extension::new(ext).unwrap(),
            sip: None,
        })
        .await
        .unwrap();
    SyncActor {
        operator_id: Some(op.id),
        extension: (role == Role::Operator).then(|| ext.to_owned()),
    }
}

fn change(n: u32, call: &str, kind: ChangeKind) -> SyncChange {
    SyncChange {
        id: format!("00000000-0000-4000-8000-{n:012}"),
        call_id: call.into(),
        at: 1_767_261_600_000 + i64::from(n),
        change: kind,
    }
}

fn note(text: &str) -> ChangeKind {
    ChangeKind::Note { text: text.into() }
}

fn disposition(code: &str) -> ChangeKind {
    ChangeKind::Disposition { code: code.into() }
}

/// An ended call that rang (and was answered at) `ext`.
fn call_of(id: &str, ext: &str) -> calldesk_wire::HubCall {
    let mut c = hub_call("acme", id, "2026-01-01T10:00:00Z", Ended);
    c.operator = Some(ext.into());
    c.rang = vec![ext.into()];
    c
}

async fn count(pool: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}

fn outcomes(r: &[calldesk_wire::SyncResult]) -> Vec<SyncOutcome> {
    r.iter().map(|r| r.outcome).collect()
}

#[sqlx::test(migrator = "calldesk_central::MIGRATOR")]
async fn a_batch_applies_once_and_the_last_writer_by_hub_time_wins(pool: PgPool) {
    let store = CentralStore::from_pool(pool.clone());
    let acme = tid("acme");
    demo_tenant(&store, "acme", "1").await;
    let anna = operator(&store, "anna", "101", Role::Operator).await;
    store
        .upsert_calls(&[call_of("c1", "101"), call_of("c2", "101")])
        .await
        .unwrap();

    let batch = vec![
        change(1, "c1", note("first")),
        change(2, "c1", disposition("sale")),
        change(3, "c1", note("second")),
        change(
            4,
            "c2",
            ChangeKind::Tags {
                tags: vec!["VIP".into(), "repair".into()],
            },
        ),
        change(5, "c2", disposition("callback")),
        change(6, "c2", disposition("info")),
    ];
    let r = store.apply_changes(&acme, &anna, &batch).await.unwrap();
    assert_eq!(outcomes(&r), vec![SyncOutcome::Applied; 6]);
    assert_eq!(r[3].id, batch[3].id);
    let c1 = store.call(&acme, "c1").await.unwrap().unwrap();
    let texts: Vec<&str> = c1.notes.iter().map(|n| n.text.as_str()).collect();
    assert_eq!(texts, ["first", "second"]);
    assert_eq!(c1.notes[0].author.as_deref(), Some("anna"));
    // A note keeps the desk's time (here in the past).
    assert_eq!(c1.notes[0].created_at, "2026-01-01T10:00:00.001Z");
    assert_eq!(c1.disposition.as_ref().unwrap().code, "sale");
    let c2 = store.call(&acme, "c2").await.unwrap().unwrap();
    assert_eq!(c2.tags, ["repair", "vip"]);
    // Later in the batch wins.
    assert_eq!(c2.disposition.as_ref().unwrap().code, "info");
    let set_at = c2.disposition.unwrap().set_at;

    // Another desk sets c2 later; the first desk's batch arrives again (its answer was lost).
    let boris = operator(&store, "boris", "900", Role::Supervisor).await;
    let r = store
        .apply_changes(&acme, &boris, &[change(7, "c2", disposition("sale"))])
        .await
        .unwrap();
    assert_eq!(outcomes(&r), [SyncOutcome::Applied]);
    let r = store.apply_changes(&acme, &anna, &batch).await.unwrap();
    assert_eq!(outcomes(&r), vec![SyncOutcome::Duplicate; 6]);
    let c2 = store.call(&acme, "c2").await.unwrap().unwrap();
    assert_eq!(c2.disposition.as_ref().unwrap().code, "sale");
    assert_eq!(c2.disposition.unwrap().set_by.as_deref(), Some("boris"));
    assert_ne!(set_at, "");
    assert_eq!(count(&pool, "SELECT count(*) FROM call_notes").await, 2);
    assert_eq!(count(&pool, "SELECT count(*) FROM sync_applied").await, 7);
    // A tag kept across an edit stays (the new set replaces the old one).
    let r = store
        .apply_changes(
            &acme,
            &anna,
            &[change(
                9,
                "c2",
                ChangeKind::Tags {
                    tags: vec!["vip".into(), "new".into()],
                },
            )],
        )
        .await
        .unwrap();
    assert_eq!(outcomes(&r), [SyncOutcome::Applied]);
    assert_eq!(
        store.call(&acme, "c2").await.unwrap().unwrap().tags,
        ["new", "vip"]
    );
    // The same id twice in one batch: once.
    let twice = [change(8, "c1", note("x")), change(8, "c1", note("x"))];
    let r = store.apply_changes(&acme, &anna, &twice).await.unwrap();
    assert_eq!(outcomes(&r), [SyncOutcome::Applied, SyncOutcome::Duplicate]);
    assert_eq!(count(&pool, "SELECT count(*) FROM call_notes").await, 3);
}

#[sqlx::test(migrator = "calldesk_central::MIGRATOR")]
async fn refusals_say_why_and_unknown_calls_wait(pool: PgPool) {
    let store = CentralStore::from_pool(pool.clone());
    let acme = tid("acme");
    demo_tenant(&store, "acme", "1").await;
    demo_tenant(&store, "other", "2").await;
    let anna = operator(&store, "anna", "101", Role::Operator).await;
    store
        .upsert_calls(&[call_of("mine", "101"), call_of("theirs", "102")])
        .await
        .unwrap();
    let mut foreign = call_of("foreign", "101");
    foreign.tenant = "other".into();
    store.upsert_calls(&[foreign]).await.unwrap();

    let batch = vec![
        change(1, "mine", disposition("bought_a_yacht")),
        change(2, "theirs", note("peeking")),
        change(3, "later", note("written before the hub had the call")),
        change(4, "foreign", note("another tenant's call")),
        SyncChange {
            id: "not-a-uuid".into(),
            ..change(5, "mine", note("x"))
        },
        change(6, "mine", note("")),
        change(
            7,
            "mine",
            ChangeKind::Tags {
                tags: vec!["two words".into()],
            },
        ),
        change(8, "mine", note("fine")),
    ];
    let r = store.apply_changes(&acme, &anna, &batch).await.unwrap();
    use SyncOutcome::{Applied, Refused, Retry};
    assert_eq!(
        outcomes(&r),
        [
            Refused, Refused, Retry, Retry, Refused, Refused, Refused, Applied
        ]
    );
    let why = |i: usize| r[i].error.clone().unwrap_or_default();
    assert!(
        why(0).contains("bought_a_yacht") && why(0).contains("sale"),
        "{}",
        why(0)
    );
    assert!(
        why(1).contains("not one of this operator's calls"),
        "{}",
        why(1)
    );
    assert!(
        why(2).contains("does not have call later yet"),
        "{}",
        why(2)
    );
    assert!(why(4).contains("UUID"), "{}", why(4));
    // Nothing refused or waiting was recorded as applied: once the call exists, it applies.
    assert_eq!(count(&pool, "SELECT count(*) FROM sync_applied").await, 1);
    store
        .upsert_calls(&[call_of("later", "101")])
        .await
        .unwrap();
    let r = store
        .apply_changes(&acme, &anna, &batch[2..3])
        .await
        .unwrap();
    assert_eq!(outcomes(&r), [Applied]);
    // A supervisor may touch any call of the tenant, never another tenant's.
    let sue = operator(&store, "sue", "900", Role::Supervisor).await;
    let r = store
        .apply_changes(
            &acme,
            &sue,
            &[
                change(9, "theirs", note("coaching")),
                change(10, "foreign", note("x")),
            ],
        )
        .await
        .unwrap();
    assert_eq!(outcomes(&r), [Applied, Retry]);
    let other: i64 = count(
        &pool,
        "SELECT count(*) FROM call_notes WHERE tenant_id = 'other'",
    )
    .await;
    assert_eq!(other, 0);
}

#[sqlx::test(migrator = "calldesk_central::MIGRATOR")]
async fn reported_calls_never_replace_the_pbx_sides(pool: PgPool) {
    let store = CentralStore::from_pool(pool.clone());
    let acme = tid("acme");
    demo_tenant(&store, "acme", "1").await;
    let anna = operator(&store, "anna", "101", Role::Operator).await;
    let mut heard = call_of("c1", "101");
    heard.record.status = Some("answered".into());
    store.upsert_calls(&[heard]).await.unwrap();

    let report = |n: u32, id: &str| {
        let mut c = call_of(id, "101");
        c.tenant = "someone-else".into();
        change(n, id, ChangeKind::Call { call: Box::new(c) })
    };
    let batch = vec![
        report(1, "c1"),
        report(2, "c9"),
        change(3, "c9", note("on the call reported just before")),
    ];
    let r = store.apply_changes(&acme, &anna, &batch).await.unwrap();
    assert_eq!(outcomes(&r), vec![SyncOutcome::Applied; 3]);
    let c1 = store.call(&acme, "c1").await.unwrap().unwrap();
    assert_eq!(
        c1.record.status.as_deref(),
        Some("answered"),
        "the PBX side's call stays"
    );
    let c9 = store.call(&acme, "c9").await.unwrap().unwrap();
    assert_eq!(
        c9.tenant, "acme",
        "a reported call lands in the pusher's tenant"
    );
    assert_eq!(c9.notes.len(), 1);
    // The hub then hears c9 from the PBX itself: its state replaces the report.
    let mut heard = call_of("c9", "101");
    heard.record.status = Some("answered".into());
    store.upsert_calls(&[heard]).await.unwrap();
    let c9 = store.call(&acme, "c9").await.unwrap().unwrap();
    assert_eq!(c9.record.status.as_deref(), Some("answered"));
    assert_eq!(c9.notes.len(), 1, "the note stays");
    // An operator reports only calls they took part in.
    let mut foreign = call_of("c-of-103", "103");
    foreign.tenant = "acme".into();
    let r = store
        .apply_changes(
            &acme,
            &anna,
            &[change(
                21,
                "c-of-103",
                ChangeKind::Call {
                    call: Box::new(foreign),
                },
            )],
        )
        .await
        .unwrap();
    assert_eq!(outcomes(&r), [SyncOutcome::Refused]);
    // A live call, or one whose id differs from the change's, is refused.
    let mut live = call_of("c10", "101");
    live.state = Talking;
    let r = store
        .apply_changes(
            &acme,
            &anna,
            &[
                change(
                    4,
                    "c10",
                    ChangeKind::Call {
                        call: Box::new(live),
                    },
                ),
                change(
                    5,
                    "c11",
                    ChangeKind::Call {
                        call: Box::new(call_of("c12", "101")),
                    },
                ),
            ],
        )
        .await
        .unwrap();
    assert_eq!(outcomes(&r), [SyncOutcome::Refused, SyncOutcome::Refused]);
}

/// Pulls until the calls read add up to `want`. The feed holds back while any transaction in
/// the cluster that began earlier is still open (other tests share the server), so this waits
/// a little instead of asserting on one pull.
async fn pulled(
    store: &CentralStore,
    actor: &SyncActor,
    cursor: &mut String,
    want: &[&str],
) -> Vec<String> {
    let mut got = Vec::new();
    for _ in 0..200 {
        got.extend(pull_all(store, actor, cursor).await);
        if got.len() >= want.len() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    got
}

async fn pull_all(store: &CentralStore, actor: &SyncActor, cursor: &mut String) -> Vec<String> {
    let mut ids = Vec::new();
    loop {
        let page: SyncPage = store
            .changes_since(&tid("acme"), actor, cursor, 2, 30)
            .await
            .unwrap();
        ids.extend(page.calls.iter().map(|c| c.record.id.clone()));
        *cursor = page.cursor;
        if !page.more {
            return ids;
        }
    }
}

#[sqlx::test(migrator = "calldesk_central::MIGRATOR")]
async fn the_feed_is_read_in_commit_order_and_never_skips_a_late_commit(pool: PgPool) {
    let store = CentralStore::from_pool(pool.clone());
    let acme = tid("acme");
    demo_tenant(&store, "acme", "1").await;
    demo_tenant(&store, "other", "2").await;
    let anna = operator(&store, "anna", "101", Role::Operator).await;
    let sue = operator(&store, "sue", "900", Role::Supervisor).await;
    // Live calls are not in the feed; ended ones are, once each per change.
    let mut live = call_of("live", "101");
    live.state = Talking;
    store
        .upsert_calls(&[call_of("a", "101"), call_of("b", "102"), live])
        .await
        .unwrap();
    let mut foreign = call_of("x", "101");
    foreign.tenant = "other".into();
    store.upsert_calls(&[foreign]).await.unwrap();

    let mut anna_at = String::new();
    assert_eq!(pulled(&store, &anna, &mut anna_at, &["a"]).await, ["a"]);
    let mut sue_at = String::new();
    assert_eq!(
        pulled(&store, &sue, &mut sue_at, &["a", "b"]).await,
        ["a", "b"]
    );
    assert!(pull_all(&store, &sue, &mut sue_at).await.is_empty());

    // A change commits while an older transaction is still open: nothing is read past the
    // open one, and once it commits both come, in xid order.
    let mut open = pool.begin().await.unwrap();
    sqlx::query(
        "INSERT INTO call_notes (tenant_id, id, pbx_call_id, text)
         VALUES ('acme', gen_random_uuid(), 'b', 'slow writer')",
    )
    .execute(&mut *open)
    .await
    .unwrap();
    store
        .apply_changes(&acme, &sue, &[change(1, "a", note("quick writer"))])
        .await
        .unwrap();
    assert!(pull_all(&store, &sue, &mut sue_at).await.is_empty());
    open.commit().await.unwrap();
    assert_eq!(
        pulled(&store, &sue, &mut sue_at, &["b", "a"]).await,
        ["b", "a"]
    );
    // Anna sees only her call's change; a tags change and the call's end show up too.
    assert_eq!(pulled(&store, &anna, &mut anna_at, &["a"]).await, ["a"]);
    let mut ended = call_of("live", "101");
    ended.record.status = Some("answered".into());
    store.upsert_calls(&[ended]).await.unwrap();
    store
        .set_tags(&acme, "a", &["vip".to_owned()])
        .await
        .unwrap();
    assert_eq!(
        pulled(&store, &anna, &mut anna_at, &["live", "a"]).await,
        ["live", "a"]
    );
    let pulled = store
        .changes_since(&acme, &anna, "", 100, 30)
        .await
        .unwrap();
    let a = pulled.calls.iter().find(|c| c.record.id == "a").unwrap();
    assert_eq!(a.tags, ["vip"]);
    assert_eq!(a.notes[0].text, "quick writer");
    // A bad cursor is refused with what to do.
    let err = store
        .changes_since(&acme, &anna, "garbage", 10, 30)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("cursor"), "{err}");
    // Pruning keeps what is recent.
    assert_eq!(store.prune_sync(1).await.unwrap(), 0);
}

#[sqlx::test(migrator = "calldesk_central::MIGRATOR")]
async fn worklist_changes_made_away_from_the_hub_meet_its_compare_and_set(pool: PgPool) {
    use calldesk_wire::{CallbackAction, CallbackOutcome};
    let store = CentralStore::from_pool(pool.clone());
    let acme = tid("acme");
    demo_tenant(&store, "acme", "1").await;
    let anna = operator(&store, "anna", "101", Role::Operator).await;
    let boris = operator(&store, "boris", "102", Role::Operator).await;
    let hour_ago = calldesk_calls::Timestamp::from_unix_millis(now_ms() - 3_600_000).rfc3339();
    store
        .upsert_calls(&[hub_call("acme", "m1", &hour_ago, Ended)])
        .await
        .unwrap();
    let caller = "+74951234567";
    let cb = |n: u32, action: CallbackAction, outcome: Option<CallbackOutcome>| {
        change(n, caller, ChangeKind::Callback { action, outcome })
    };
    let take = [cb(1, CallbackAction::Claim, None)];
    let r = store.apply_changes(&acme, &anna, &take).await.unwrap();
    assert_eq!(outcomes(&r), [SyncOutcome::Applied]);
    let items = store.callbacks(&acme, 7, now_ms()).await.unwrap();
    assert_eq!(items[0].claimed_by.as_deref(), Some("anna"));
    // Sent again: nothing changes. Boris took it offline too: his arrives second and is refused.
    let r = store.apply_changes(&acme, &anna, &take).await.unwrap();
    assert_eq!(outcomes(&r), [SyncOutcome::Duplicate]);
    let r = store
        .apply_changes(&acme, &boris, &[cb(2, CallbackAction::Claim, None)])
        .await
        .unwrap();
    assert_eq!(outcomes(&r), [SyncOutcome::Refused]);
    assert!(
        r[0].error.as_deref().unwrap_or("").contains("anna"),
        "{:?}",
        r[0].error
    );
    let r = store
        .apply_changes(
            &acme,
            &anna,
            &[
                cb(3, CallbackAction::Close, None),
                cb(4, CallbackAction::Close, Some(CallbackOutcome::Reached)),
            ],
        )
        .await
        .unwrap();
    assert_eq!(outcomes(&r), [SyncOutcome::Refused, SyncOutcome::Applied]);
    assert!(
        store
            .callbacks(&acme, 7, now_ms())
            .await
            .unwrap()
            .is_empty()
    );
}
