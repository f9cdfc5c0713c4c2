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

#[sqlx::test(migrator = "calldesk_central::MIGRATOR")]
async fn the_lock_elects_one_holder_and_notify_carries_calls_controls_and_takeover(pool: PgPool) {
    let fake = FakeMango::start(FakeMangoConfig::default()).await.unwrap();
    let store = CentralStore::from_pool(pool);
    let acme = TenantId::new("acme").unwrap();
    common::add_tenant(
        &store,
        "acme",
        "Acme",
        "0367",
        common::fake_mango_pbx(&fake),
    )
    .await;
    common::add_operator(&store, "acme", "sveta", Role::Supervisor, "101", PASSWORD).await;

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
