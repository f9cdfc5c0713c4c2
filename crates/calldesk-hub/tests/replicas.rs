//! Two hub replicas on one database: the advisory lock gives the tenant's PBX to exactly one;
//! webhooks posted to the other are stored there and processed by the holder; a WebSocket
//! client connected to the non-holder gets the calls through LISTEN/NOTIFY; a call control
//! sent to the non-holder is forwarded to the holder; when the holder stops, the other takes
//! over.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use calldesk_calls::TenantId;
use calldesk_central::{CentralStore, Role};
use calldesk_sim::mango::{FakeMango, FakeMangoConfig, MangoScenario};
use common::Served;
use serde_json::json;
use sqlx::PgPool;

const PASSWORD: &str = "password-1";

async fn replica(store: &CentralStore, name: &str) -> Served {
    let mut config = common::config(common::mango_secrets());
    config.replica = name.to_owned();
    common::serve(config, store).await
}

/// A fake Mango and tenant `acme` on it with supervisor `sveta` (extension 101).
async fn acme_on_fake_mango(pool: PgPool) -> (FakeMango, CentralStore, TenantId) {
    let fake = FakeMango::start(FakeMangoConfig::default()).await.unwrap();
    let store = CentralStore::from_pool(pool);
    common::add_tenant(
        &store,
        "acme",
        "Acme",
        "0367",
        common::fake_mango_pbx(&fake),
    )
    .await;
    common::add_operator(&store, "acme", "sveta", Role::Supervisor, "101", PASSWORD).await;
    (fake, store, TenantId::new("acme").unwrap())
}

#[sqlx::test(migrator = "calldesk_central::MIGRATOR")]
async fn the_lock_elects_one_holder_and_notify_carries_calls_controls_and_takeover(pool: PgPool) {
    let (fake, store, acme) = acme_on_fake_mango(pool).await;

    let a = replica(&store, "hub-a").await;
    assert!(a.hub.wait_until_held(&acme, Duration::from_secs(10)).await);
    let b = replica(&store, "hub-b").await;
    // B runs its lease loop several times and must not get the tenant.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!b.hub.holds(&acme), "two replicas hold the same PBX");

    // The supervisor is connected to B; Mango posts to B.
    let http = common::http();
    let base_b = b.base();
    let token = common::login(&http, &base_b, "acme", "sveta", PASSWORD).await;
    let mut ws = common::connect(b.addr, &token).await;
    fake.set_target(format!("{base_b}/mango/acme/"));
    let entry = fake.play(&MangoScenario::InboundAnswered {
        caller: "79161234567".into(),
        line: "74951234567".into(),
        operator: "101".into(),
    });
    // The call reaches the client on the other replica: new, then ended.
    let (ended, before) = common::wait_call(&mut ws, &entry, "call-ended").await;
    assert!(before.iter().any(|(k, _)| k == "call-new"), "{before:?}");
    assert_eq!(ended.record.status.as_deref(), Some("answered"));

    // A control sent to B runs on A (the holder) and reaches Mango.
    let originate = http
        .post(format!("{base_b}/api/calls/originate"))
        .json(&json!({"to": "+79161234599"}));
    let (status, body) = common::send(originate, Some(&token)).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        fake.requests()
            .iter()
            .any(|q| q.path.ends_with("commands/callback")
                && q.json.as_deref().is_some_and(|j| j.contains("79161234599")))
    );

    // A stops: B takes the tenant over.
    a.stop().await;
    assert!(b.hub.wait_until_held(&acme, Duration::from_secs(10)).await);
    let (_, status) = common::send(http.get(format!("{base_b}/api/status")), None).await;
    assert_eq!(status["database"], "connected");
    assert_eq!(status["pbx"][0]["held_here"], true, "{status}");

    drop(ws);
    b.stop().await;
    fake.shutdown().await;
}

/// Inbox rows of `entry` as (processed) flags.
async fn inbox_flags(store: &CentralStore, entry: &str) -> Vec<bool> {
    sqlx::query_scalar("SELECT processed FROM webhook_inbox WHERE body LIKE $1 ORDER BY id")
        .bind(format!("%{entry}%"))
        .fetch_all(store.pool())
        .await
        .unwrap()
}

/// Polls `check` every 50 ms for up to 10 s.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..200 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("not within 10 s: {what}");
}

#[sqlx::test(migrator = "calldesk_central::MIGRATOR")]
async fn a_call_over_is_marked_processed_and_a_takeover_replays_only_calls_still_going_on(
    pool: PgPool,
) {
    use calldesk_sim::mango::PhoneBehaviour;
    let (fake, store, acme) = acme_on_fake_mango(pool).await;

    let a = replica(&store, "hub-a").await;
    assert!(a.hub.wait_until_held(&acme, Duration::from_secs(10)).await);
    let http = common::http();
    let token = common::login(&http, &a.base(), "acme", "sveta", PASSWORD).await;
    let mut ws = common::connect(a.addr, &token).await;
    fake.set_target(format!("{}/mango/acme/", a.base()));

    // A call still going on (both phones stay up), started first: its webhooks stay
    // unprocessed while those of a later call that ends are marked.
    fake.set_phone(
        "101",
        PhoneBehaviour::Answers {
            after_s: 0,
            talk_s: None,
        },
    );
    fake.set_phone(
        "79161234599",
        PhoneBehaviour::Answers {
            after_s: 0,
            talk_s: None,
        },
    );
    let originate = http
        .post(format!("{}/api/calls/originate", a.base()))
        .json(&json!({"to": "+79161234599"}));
    let (status, body) = common::send(originate, Some(&token)).await;
    assert_eq!(status, 200, "{body}");
    let live = loop {
        let m = common::next_message(&mut ws).await;
        if let Some(("call-updated", call)) = common::call_of(&m)
            && !call.record.answered_by.is_empty()
            && serde_json::to_string(call).unwrap().contains("79161234599")
        {
            break call.record.id.clone();
        }
    };
    // A call that ends meanwhile: once its final state is stored, its webhooks are processed.
    let over = fake.play(&MangoScenario::InboundAnswered {
        caller: "79161234567".into(),
        line: "74951234567".into(),
        operator: "101".into(),
    });
    common::wait_call(&mut ws, &over, "call-ended").await;
    eventually("the ended call's webhooks are processed", || async {
        let flags = inbox_flags(&store, &over).await;
        !flags.is_empty() && flags.iter().all(|p| *p)
    })
    .await;

    tokio::time::sleep(Duration::from_millis(600)).await; // a few marking rounds
    let flags = inbox_flags(&store, &live).await;
    assert!(!flags.is_empty() && flags.iter().all(|p| !p), "{flags:?}");
    drop(ws);

    // B (pruning fast) takes over: it replays the live call only.
    let mut config = common::config(common::mango_secrets());
    config.replica = "hub-b".to_owned();
    config.inbox_retention = Duration::from_millis(500);
    let b = common::serve(config, &store).await;
    a.stop().await;
    assert!(b.hub.wait_until_held(&acme, Duration::from_secs(10)).await);
    let token_b = common::login(&http, &b.base(), "acme", "sveta", PASSWORD).await;
    eventually("B shows the live call, rebuilt from the inbox", || {
        let (http, base, token) = (&http, b.base(), &token_b);
        let live = live.clone();
        async move {
            let (_, call) =
                common::send(http.get(format!("{base}/api/calls/{live}")), Some(token)).await;
            call["state"] != "ended"
                && call["answered_by"]
                    .as_array()
                    .is_some_and(|a| !a.is_empty())
        }
    })
    .await;
    let mut ws_b = common::connect(b.addr, &token_b).await;
    let snapshot = loop {
        if let calldesk_wire::HubMessage::Snapshot { calls, .. } =
            common::next_message(&mut ws_b).await
        {
            break calls;
        }
    };
    let ids: Vec<&str> = snapshot.iter().map(|c| c.record.id.as_str()).collect();
    assert_eq!(
        ids,
        [live.as_str()],
        "only the call still going on is live on B"
    );

    // B prunes processed webhooks past its retention, never the live call's.
    eventually("the ended call's webhooks are pruned", || async {
        inbox_flags(&store, &over).await.is_empty()
    })
    .await;
    assert!(!inbox_flags(&store, &live).await.is_empty());

    drop(ws_b);
    b.stop().await;
    fake.shutdown().await;
}
