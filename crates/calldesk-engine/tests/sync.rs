//! Offline history and sync, end to end: desks on the Hub profile against a real hub on a real
//! PostgreSQL (`#[sqlx::test]`). The hub goes away for a long stretch while a desk makes
//! thousands of changes; when it is back everything arrives exactly once. Two desks of the same
//! operator writing at the same time end up with the same history as the hub.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::time::Duration;

use calldesk_calls::TenantId;
use calldesk_central::CentralStore;
use calldesk_engine::{Engine, EngineHandle, HistoryQuery};
use calldesk_hub::SecretEnv;
use calldesk_wire::{AfterCall, SyncState};
use sqlx::PgPool;

#[path = "support/hub.rs"]
mod hub_support;
use hub_support::{PASSWORD, hub_desk, serve_hub, tenant};

const WAIT: Duration = Duration::from_secs(90);

async fn until<T>(what: &str, mut check: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn history_len(desk: &EngineHandle) -> usize {
    desk.history_search(&HistoryQuery {
        limit: Some(500),
        ..HistoryQuery::default()
    })
    .await
    .unwrap()
    .calls
    .len()
}

/// Waits until the desk has nothing left to push and has finished a round.
async fn drained(desk: &EngineHandle) {
    until("the desk's outbox drains", async || {
        let s = desk.sync_status();
        (s.state == SyncState::Idle && s.pending == 0 && s.error.is_none()).then_some(())
    })
    .await;
}

/// The hub's after-call work of each call, as desks see it.
async fn hub_view(store: &CentralStore, ids: &[String]) -> BTreeMap<String, AfterCall> {
    let acme = TenantId::new("acme").unwrap();
    let mut out = BTreeMap::new();
    for id in ids {
        let c = store.call(&acme, id).await.unwrap().unwrap();
        out.insert(
            id.clone(),
            AfterCall {
                notes: c.notes.iter().map(calldesk_wire::CallNote::from).collect(),
                disposition: c.disposition.map(|d| d.code),
                tags: c.tags,
            },
        );
    }
    out
}

async fn desk_view(desk: &EngineHandle, ids: &[String]) -> BTreeMap<String, AfterCall> {
    let mut out = BTreeMap::new();
    for id in ids {
        out.insert(id.clone(), desk.after_call(id).await.unwrap());
    }
    out
}

const CODES: [&str; 3] = ["sale", "callback", "info"];

#[sqlx::test(migrator = "calldesk_central::MIGRATOR")]
async fn a_long_outage_with_thousands_of_changes_arrives_once(pool: PgPool) {
    let store = CentralStore::from_pool(pool.clone());
    let ids = tenant(&store, 100).await;
    let (_hub, addr, stop) =
        serve_hub(&store, SecretEnv::default(), ([127, 0, 0, 1], 0).into()).await;
    let dir = std::env::temp_dir().join(format!("calldesk-sync-outage-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let desk = Engine::start(hub_desk(addr, "ivan", PASSWORD, &dir))
        .await
        .unwrap();
    // The first pull brings the operator's calls and the tenant's disposition list.
    until("the first pull", async || {
        (history_len(&desk).await == 100).then_some(())
    })
    .await;
    assert_eq!(desk.disposition_codes().await.unwrap().len(), 6);

    // The hub goes away; the desk keeps working.
    stop.send_replace(true);
    let mut early_made = 0;
    until("the desk sees the hub gone", async || {
        let _ = desk.add_note(&ids[0], "is anyone there?").await.unwrap();
        early_made += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
        (desk.sync_status().state == SyncState::Offline).then_some(())
    })
    .await;
    let mut notes = 0_i64;
    let mut last_code = BTreeMap::new();
    let mut last_tags = BTreeMap::new();
    for i in 0..3000_usize {
        let id = &ids[i % ids.len()];
        match i % 5 {
            0..=2 => {
                desk.add_note(id, &format!("offline note {i}"))
                    .await
                    .unwrap();
                notes += 1;
            }
            3 => {
                let code = CODES[i % CODES.len()];
                desk.set_disposition(id, code).await.unwrap();
                last_code.insert(id.clone(), code.to_owned());
            }
            _ => {
                let tag = format!("t{}", i % 7);
                desk.set_tags(id, std::slice::from_ref(&tag)).await.unwrap();
                last_tags.insert(id.clone(), vec![tag]);
            }
        }
    }
    // Everything is here already, and counted as waiting.
    let status = until("the pending count", async || {
        let s = desk.sync_status();
        (s.pending >= 3000).then_some(s)
    })
    .await;
    assert_eq!(status.state, SyncState::Offline, "{status:?}");
    assert!(status.pending > 0);
    assert!(
        status
            .error
            .as_deref()
            .unwrap_or("")
            .contains("cannot be reached"),
        "{status:?}"
    );
    assert_eq!(
        desk.after_call(&ids[3])
            .await
            .unwrap()
            .disposition
            .as_deref(),
        last_code.get(&ids[3]).map(String::as_str)
    );

    // The hub is back on the same address: everything arrives, once.
    let (_hub, _, _stop) = serve_hub(&store, SecretEnv::default(), addr).await;
    drained(&desk).await;
    let count = |sql: &'static str| {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>(sql)
                .fetch_one(&pool)
                .await
                .unwrap()
        }
    };
    assert_eq!(
        count("SELECT count(*) FROM call_notes WHERE text = 'is anyone there?'").await,
        early_made
    );
    assert_eq!(
        count("SELECT count(*) FROM call_notes WHERE text LIKE 'offline note %'").await,
        notes
    );
    assert_eq!(
        count("SELECT count(DISTINCT text) FROM call_notes WHERE text LIKE 'offline note %'").await,
        notes
    );
    assert_eq!(
        count("SELECT count(*) FROM sync_applied").await,
        early_made + 3000
    );
    let hub = hub_view(&store, &ids).await;
    for id in &ids {
        assert_eq!(hub[id].disposition.as_ref(), last_code.get(id), "{id}");
        assert_eq!(
            hub[id].tags,
            last_tags.get(id).cloned().unwrap_or_default(),
            "{id}"
        );
    }
    // And the desk's history is the hub's.
    until("the desk has pulled its own changes back", async || {
        (desk_view(&desk, &ids).await == hub).then_some(())
    })
    .await;
    desk.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[sqlx::test(migrator = "calldesk_central::MIGRATOR")]
async fn two_desks_of_one_operator_converge(pool: PgPool) {
    let store = CentralStore::from_pool(pool.clone());
    let ids = tenant(&store, 20).await;
    let (_hub, addr, _stop) =
        serve_hub(&store, SecretEnv::default(), ([127, 0, 0, 1], 0).into()).await;
    let base = std::env::temp_dir().join(format!("calldesk-sync-two-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    let a = Engine::start(hub_desk(addr, "ivan", PASSWORD, &base.join("a")))
        .await
        .unwrap();
    let b = Engine::start(hub_desk(addr, "ivan", PASSWORD, &base.join("b")))
        .await
        .unwrap();
    for desk in [&a, &b] {
        until("the first pull", async || {
            (history_len(desk).await == 20).then_some(())
        })
        .await;
        desk.disposition_codes().await.unwrap();
    }
    // Both write to the same calls at the same time.
    let write = |desk: EngineHandle, name: &'static str| {
        let ids = ids.clone();
        async move {
            for i in 0..300_usize {
                let id = &ids[(i * 7) % ids.len()];
                match i % 3 {
                    0 => drop(desk.add_note(id, &format!("{name} {i}")).await.unwrap()),
                    1 => desk
                        .set_disposition(id, CODES[(i + name.len()) % 3])
                        .await
                        .unwrap(),
                    _ => drop(desk.set_tags(id, &[format!("{name}-{i}")]).await.unwrap()),
                }
                if i % 25 == 0 {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
    };
    tokio::join!(write(a.clone(), "desk-a"), write(b.clone(), "desk-b"));
    drained(&a).await;
    drained(&b).await;
    let hub = until("both desks hold the hub's history", async || {
        a.sync_now();
        b.sync_now();
        tokio::time::sleep(Duration::from_millis(200)).await;
        let hub = hub_view(&store, &ids).await;
        (desk_view(&a, &ids).await == hub && desk_view(&b, &ids).await == hub).then_some(hub)
    })
    .await;
    let notes: usize = hub.values().map(|c| c.notes.len()).sum();
    assert_eq!(notes, 200, "every note of both desks, once");
    assert!(
        hub.values()
            .all(|c| c.disposition.is_some() && c.tags.len() == 1)
    );
    a.shutdown().await;
    b.shutdown().await;
    let _ = std::fs::remove_dir_all(&base);
}

#[sqlx::test(migrator = "calldesk_central::MIGRATOR")]
async fn a_direct_desk_reports_its_calls_and_notes_to_the_hub_once_it_is_back(pool: PgPool) {
    use calldesk_sim::ami::{AmiSimConfig, AmiSimulator, ScenarioCall, ScenarioKind};
    let store = CentralStore::from_pool(pool.clone());
    tenant(&store, 0).await;
    // The hub's directory knows the caller: the desk's contacts cache will name them.
    let acme = TenantId::new("acme").unwrap();
    let company = store
        .create_company(
            &acme,
            &calldesk_central::CompanyInput {
                name: "Horns and Hooves".into(),
                ..calldesk_central::CompanyInput::default()
            },
        )
        .await
        .unwrap();
    store
        .create_contact(
            &acme,
            &calldesk_central::ContactInput {
                name: "Ostap Bender".into(),
                company_id: Some(company.id),
                phones: vec!["+74951234567".into()],
                ..calldesk_central::ContactInput::default()
            },
        )
        .await
        .unwrap();
    let (_hub, hub_addr, stop) =
        serve_hub(&store, SecretEnv::default(), ([127, 0, 0, 1], 0).into()).await;
    let sim_config = AmiSimConfig::default();
    let credentials = calldesk_engine::AmiCredentials {
        username: sim_config.username.clone(),
        secret: sim_config.secret.clone(),
    };
    let sim = AmiSimulator::bind(([127, 0, 0, 1], 0).into(), sim_config)
        .await
        .unwrap();
    let (sim_addr, pbx) = (sim.local_addr(), sim.handle());
    let (_stop_sim, stop_sim_rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(sim.run(async move {
        let _ = stop_sim_rx.await;
    }));
    let dir = std::env::temp_dir().join(format!("calldesk-sync-direct-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut config = hub_desk(hub_addr, "ivan", PASSWORD, &dir);
    let calldesk_engine::ProfileConfig::Hub(link) = config.profile else {
        panic!("a hub profile to take the link from");
    };
    config.profile = calldesk_engine::ProfileConfig::Direct {
        addr: sim_addr.to_string(),
        credentials,
        report_to: Some(link),
    };
    config.seat = calldesk_engine::Seat {
        extension: Some("101".into()),
        supervisor: false,
    };
    let desk = Engine::start(config).await.unwrap();
    // The seat stays this desk's own: the hub login only authorises the reports.
    until("the first sync round", async || {
        (desk.sync_status().last_synced_at.is_some()).then_some(())
    })
    .await;
    assert_eq!(desk.identity().extension.as_deref(), Some("101"));

    // The hub goes away; a call comes and goes at the PBX; the operator writes a note.
    stop.send_replace(true);
    let id = pbx
        .start_call(ScenarioCall {
            kind: ScenarioKind::InboundAnswered,
            caller: "+74951234567".into(),
            did: "101".into(),
            extension: "101".into(),
            ring: Duration::from_millis(50),
            talk: Duration::from_millis(300),
        })
        .await
        .unwrap();
    until("the call in the desk's history", async || {
        (history_len(&desk).await == 1).then_some(())
    })
    .await;
    // Named from the contacts cache while the hub is away, and found by that name.
    let found = desk
        .history_search(&HistoryQuery {
            text: "bender".into(),
            ..HistoryQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(found.calls.len(), 1);
    assert_eq!(found.calls[0].from.name.as_deref(), Some("Ostap Bender"));
    assert_eq!(found.calls[0].company.as_deref(), Some("Horns and Hooves"));
    desk.add_note(&id, "heard over Direct AMI").await.unwrap();
    until("the call and the note waiting for the hub", async || {
        (desk.sync_status().pending == 2).then_some(())
    })
    .await;
    assert!(store.call(&acme, &id).await.unwrap().is_none());

    // Back: the hub has the call, as the PBX gave it, with the note.
    let (_hub, _, _stop) = serve_hub(&store, SecretEnv::default(), hub_addr).await;
    desk.sync_now();
    drained(&desk).await;
    let on_hub = store.call(&acme, &id).await.unwrap().unwrap();
    assert_eq!(on_hub.record.status.as_deref(), Some("answered"));
    assert_eq!(on_hub.record.answered_by, ["101"]);
    assert_eq!(on_hub.tenant, "acme");
    assert_eq!(on_hub.notes.len(), 1);
    assert_eq!(on_hub.notes[0].text, "heard over Direct AMI");
    assert_eq!(on_hub.notes[0].author.as_deref(), Some("ivan"));
    desk.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[sqlx::test(migrator = "calldesk_central::MIGRATOR")]
async fn the_worklist_is_worked_away_from_the_hub_and_reaches_it_later(pool: PgPool) {
    let store = CentralStore::from_pool(pool.clone());
    tenant(&store, 0).await;
    let at = calldesk_calls::Timestamp::from_unix_millis(
        calldesk_store::wall_clock_millis() - 3_600_000,
    )
    .rfc3339();
    let missed: calldesk_wire::HubCall = serde_json::from_value(serde_json::json!({
        "id": "missed-1", "direction": "inbound", "from": "+74957770001", "to": "0367",
        "status": "missed", "answered_by": [], "transfers": [], "monitors": [], "queue": null,
        "ring_secs": 20, "talk_secs": null, "hangup_cause": null, "recordings": [],
        "started_at": at, "answered_at": null, "ended_at": at, "tenant": "acme",
        "state": "ended", "operator": "101", "rang": ["101"], "on_hold": false,
        "caller": null, "notes": [], "disposition": null
    }))
    .unwrap();
    store.upsert_calls(&[missed]).await.unwrap();
    let (_hub, addr, stop) =
        serve_hub(&store, SecretEnv::default(), ([127, 0, 0, 1], 0).into()).await;
    let dir = std::env::temp_dir().join(format!("calldesk-sync-worklist-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let desk = Engine::start(hub_desk(addr, "ivan", PASSWORD, &dir))
        .await
        .unwrap();
    let number = "+74957770001";
    let online = until("the worklist from the hub", async || {
        desk.callbacks().await.ok().filter(|l| l.len() == 1)
    })
    .await;
    assert_eq!(online[0].claimed_by, None);

    // Away from the hub: the last list, with this desk's take and then its close on top.
    stop.send_replace(true);
    until("the hub to be gone", async || {
        desk.claim_callback(number, true)
            .await
            .ok()
            .flatten()
            .filter(|i| i.claimed_by.as_deref() == Some("ivan"))
    })
    .await;
    let offline = desk.callbacks().await.unwrap();
    assert_eq!(offline[0].claimed_by.as_deref(), Some("ivan"));
    desk.close_callback(number, "reached").await.unwrap();
    assert!(desk.callbacks().await.unwrap().is_empty());
    let acme = TenantId::new("acme").unwrap();
    let now = calldesk_store::wall_clock_millis();
    assert_eq!(store.callbacks(&acme, 7, now).await.unwrap().len(), 1);

    // Back: the take and the close reach the hub, once.
    let (_hub, _, _stop) = serve_hub(&store, SecretEnv::default(), addr).await;
    desk.sync_now();
    drained(&desk).await;
    assert!(
        store
            .callbacks(&acme, 7, calldesk_store::wall_clock_millis())
            .await
            .unwrap()
            .is_empty()
    );
    let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM sync_applied")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(applied >= 2, "{applied}");
    assert!(desk.callbacks().await.unwrap().is_empty());
    desk.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}
