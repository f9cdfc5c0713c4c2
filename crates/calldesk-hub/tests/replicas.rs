//! Two hub replicas on one database: the advisory lock gives the tenant's PBX to exactly one;
//! webhooks posted to the other are stored there and processed by the holder; a WebSocket
//! client connected to the non-holder gets the calls through LISTEN/NOTIFY; a call control
//! sent to the non-holder is forwarded to the holder; when the holder stops, the other takes
//! over.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::time::Duration;

use calldesk_calls::{Extension, TenantId};
use calldesk_central::{CentralStore, NewOperator, NewTenant, PbxConfig, Role};
use calldesk_hub::{Hub, HubConfig, SecretEnv};
use calldesk_sim::mango::{FakeMango, FakeMangoConfig, MangoScenario};
use calldesk_wire::HubMessage;
use futures_util::StreamExt;
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;

const SALT: &str = "fakevpbxsalt400000000000000000y";

struct Replica {
    hub: Hub,
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    server: tokio::task::JoinHandle<Result<(), calldesk_hub::HubError>>,
}

async fn replica(store: &CentralStore, name: &str) -> Replica {
    let mut config = HubConfig::for_tests("unused");
    config.secrets = SecretEnv::default().with("ACME_MANGO_SALT", SALT);
    config.lease_every = Duration::from_millis(100);
    config.replica = name.to_owned();
    let (stop, stop_rx) = watch::channel(false);
    let hub = Hub::start_with_store(config, store.clone(), stop_rx)
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut until = stop.subscribe();
    let server = tokio::spawn(calldesk_hub::serve(hub.clone(), listener, async move {
        let _ = until.wait_for(|s| *s).await;
    }));
    Replica {
        hub,
        addr,
        stop,
        server,
    }
}

#[sqlx::test(migrator = "calldesk_central::MIGRATOR")]
async fn the_lock_elects_one_holder_and_notify_carries_calls_controls_and_takeover(pool: PgPool) {
    let fake = FakeMango::start(FakeMangoConfig::default()).await.unwrap();
    let store = CentralStore::from_pool(pool);
    let acme = TenantId::new("acme").unwrap();
    store
        .add_tenant(&NewTenant {
            id: acme.clone(),
            name: "Acme".into(),
            number: "0367".into(),
            region: "RU".into(),
            pbx: PbxConfig::Mango {
                api_url: Some(fake.base_url()),
                key: fake.credentials().key().to_owned(),
                salt_env: "ACME_MANGO_SALT".into(),
            },
        })
        .await
        .unwrap();
    store
        .add_operator(&NewOperator {
            tenant: acme.clone(),
            login: "sveta".into(),
            name: None,
            password_hash: calldesk_central::password::hash_password("password-1").unwrap(),
            role: Role::Supervisor,
            extension: Extension::new("101").unwrap(),
            sip: None,
        })
        .await
        .unwrap();

    let a = replica(&store, "hub-a").await;
    assert!(a.hub.wait_until_held(&acme, Duration::from_secs(10)).await);
    let b = replica(&store, "hub-b").await;
    // B runs its lease loop several times and must not get the tenant.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!b.hub.holds(&acme), "two replicas hold the same PBX");

    // The supervisor is connected to B; Mango posts to B.
    let http = calldesk_sim::mango::loopback_client_builder()
        .unwrap()
        .build()
        .unwrap();
    let base_b = format!("http://{}", b.addr);
    let token: Value = http
        .post(format!("{base_b}/api/auth/login"))
        .json(&json!({"tenant": "acme", "login": "sveta", "password": "password-1"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = token["token"].as_str().unwrap().to_owned();
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/ws?token={token}", b.addr))
        .await
        .unwrap();
    fake.set_target(format!("{base_b}/mango/acme/"));
    let entry = fake.play(&MangoScenario::InboundAnswered {
        caller: "79161234567".into(),
        line: "74951234567".into(),
        operator: "101".into(),
    });
    let mut saw_new = false;
    let ended = loop {
        let frame = tokio::time::timeout(Duration::from_secs(15), ws.next())
            .await
            .expect("the call reaches the client on the other replica")
            .unwrap()
            .unwrap();
        let Message::Text(text) = frame else { continue };
        match serde_json::from_str::<HubMessage>(text.as_str()).unwrap() {
            HubMessage::CallNew { call } if call.record.id == entry => saw_new = true,
            HubMessage::CallEnded { call } if call.record.id == entry => break call,
            _ => {}
        }
    };
    assert!(saw_new);
    assert_eq!(ended.record.status.as_deref(), Some("answered"));

    // A control sent to B runs on A (the holder) and reaches Mango.
    let r = http
        .post(format!("{base_b}/api/calls/originate"))
        .bearer_auth(&token)
        .json(&json!({"to": "+79161234599"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{:?}", r.text().await);
    assert!(
        fake.requests()
            .iter()
            .any(|q| q.path.ends_with("commands/callback")
                && q.json.as_deref().is_some_and(|j| j.contains("79161234599")))
    );

    // A stops: B takes the tenant over.
    a.stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(10), a.server)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    drop(a.hub);
    assert!(b.hub.wait_until_held(&acme, Duration::from_secs(10)).await);
    let status: Value = http
        .get(format!("{base_b}/api/status"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(status["database"], "connected");
    assert_eq!(status["pbx"][0]["held_here"], true, "{status}");

    drop(ws);
    b.stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(10), b.server)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    fake.shutdown().await;
}
