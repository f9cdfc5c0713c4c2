//! End to end with the fake Mango Office: signed webhooks → hub (inbox, tracker, book, caller
//! card) → two WebSocket clients (operator 101 and a supervisor); REST shows the final call;
//! click-to-call reaches the fake as a signed `commands/callback`; the seed-compatible machine
//! API; a forged webhook is refused. Real PostgreSQL, real sockets on port 0.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use calldesk_calls::{Extension, TenantId};
use calldesk_central::{CentralStore, ContactInput, NewOperator, NewTenant, PbxConfig, Role};
use calldesk_hub::{Hub, HubConfig, SecretEnv};
use calldesk_sim::mango::{FakeMango, FakeMangoConfig, MangoScenario};
use calldesk_wire::HubMessage;
use futures_util::StreamExt;
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio_tungstenite::tungstenite::Message;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn operator(store: &CentralStore, tenant: &TenantId, login: &str, ext: &str, role: Role) {
    store
        .add_operator(&NewOperator {
            tenant: tenant.clone(),
            login: login.into(),
            name: None,
            password_hash: calldesk_central::password::hash_password("password-1").unwrap(),
            role,
            extension: Extension::new(ext).unwrap(),
            sip: None,
        })
        .await
        .unwrap();
}

async fn login(http: &reqwest::Client, base: &str, tenant: &str, login: &str) -> String {
    let r: Value = http
        .post(format!("{base}/api/auth/login"))
        .json(&json!({"tenant": tenant, "login": login, "password": "password-1"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    r["token"].as_str().unwrap().to_owned()
}

async fn next(ws: &mut Ws) -> HubMessage {
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(15), ws.next())
            .await
            .expect("a message within 15 s")
            .unwrap()
            .unwrap();
        if let Message::Text(t) = frame {
            return serde_json::from_str(t.as_str()).unwrap();
        }
    }
}

/// Reads until a `call-ended`; returns every call message seen.
async fn until_ended(ws: &mut Ws) -> Vec<HubMessage> {
    let mut seen = Vec::new();
    loop {
        let m = next(ws).await;
        let end = matches!(m, HubMessage::CallEnded { .. });
        if matches!(
            m,
            HubMessage::CallNew { .. }
                | HubMessage::CallUpdated { .. }
                | HubMessage::CallEnded { .. }
        ) {
            seen.push(m);
        }
        if end {
            return seen;
        }
    }
}

#[sqlx::test(migrator = "calldesk_central::MIGRATOR")]
async fn mango_webhooks_reach_operator_and_supervisor_and_rest_and_controls_reach_mango(
    pool: PgPool,
) {
    let fake = FakeMango::start(FakeMangoConfig::default()).await.unwrap();
    let creds = fake.credentials().clone();
    let store = CentralStore::from_pool(pool.clone());
    let acme = TenantId::new("acme").unwrap();
    let client_id = store
        .add_tenant(&NewTenant {
            id: acme.clone(),
            name: "june".into(),
            number: "0367".into(),
            region: "RU".into(),
            pbx: PbxConfig::Mango {
                api_url: Some(fake.base_url()),
                key: creds.key().to_owned(),
                salt_env: "ACME_MANGO_SALT".into(),
            },
        })
        .await
        .unwrap();
    operator(&store, &acme, "anna", "101", Role::Operator).await;
    operator(&store, &acme, "boris", "102", Role::Operator).await;
    operator(&store, &acme, "sveta", "201", Role::Supervisor).await;
    store
        .create_contact(
            &acme,
            &ContactInput {
                name: "Ivan Petrov".into(),
                company_id: None,
                position: None,
                email: None,
                phones: vec!["+79161234567".into()],
            },
        )
        .await
        .unwrap();

    let mut config = HubConfig::for_tests("unused");
    config.secrets = SecretEnv::default().with("ACME_MANGO_SALT", &salt_of(&fake));
    config.lease_every = Duration::from_millis(100);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let hub = Hub::start_with_store(config, store.clone(), stop_rx)
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut stop_serve = stop_tx.subscribe();
    let server = tokio::spawn(calldesk_hub::serve(hub.clone(), listener, async move {
        let _ = stop_serve.wait_for(|s| *s).await;
    }));
    assert!(hub.wait_until_held(&acme, Duration::from_secs(10)).await);
    let base = format!("http://{addr}");
    fake.set_target(format!("{base}/mango/acme/"));
    let http = calldesk_sim::mango::loopback_client_builder()
        .unwrap()
        .build()
        .unwrap();

    let (op_token, boris_token, sup_token) = (
        login(&http, &base, "acme", "anna").await,
        login(&http, &base, "acme", "boris").await,
        login(&http, &base, "acme", "sveta").await,
    );
    let connect = |token: String| async move {
        let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws?token={token}"))
            .await
            .unwrap();
        ws
    };
    let mut op = connect(op_token.clone()).await;
    let mut boris = connect(boris_token).await;
    let mut sup = connect(sup_token.clone()).await;
    for ws in [&mut op, &mut boris, &mut sup] {
        assert!(matches!(
            next(ws).await,
            HubMessage::Hello { protocol: 1, .. }
        ));
        assert!(matches!(next(ws).await, HubMessage::Snapshot { .. }));
    }

    // An inbound call answered by 101 (IVR, group, answer, hang-up, summary).
    let entry = fake.play(&MangoScenario::InboundAnswered {
        caller: "79161234567".into(),
        line: "74951234567".into(),
        operator: "101".into(),
    });
    let sup_seen = until_ended(&mut sup).await;
    let first = match &sup_seen[0] {
        HubMessage::CallNew { call } => call.clone(),
        other => panic!("first call message is {other:?}"),
    };
    assert_eq!(first.record.id, entry);
    assert_eq!(first.record.from, "+79161234567");
    let card = first.caller.clone().expect("caller card before the pop");
    assert_eq!(card.contact.unwrap().name, "Ivan Petrov");
    let HubMessage::CallEnded { call: ended } = sup_seen.last().unwrap() else {
        unreachable!()
    };
    assert_eq!(ended.record.status.as_deref(), Some("answered"));
    assert_eq!(ended.record.answered_by, ["101"]);
    // The operator who answered saw it end too.
    let op_seen = until_ended(&mut op).await;
    assert!(op_seen.iter().all(|m| match m {
        HubMessage::CallNew { call }
        | HubMessage::CallUpdated { call }
        | HubMessage::CallEnded { call } => call.record.id == entry,
        _ => false,
    }));

    // REST: the stored call, with the card.
    let calls: Value = http
        .get(format!("{base}/api/calls"))
        .bearer_auth(&sup_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let item = calls["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == entry.as_str())
        .cloned();
    let item = match item {
        Some(i) => i,
        None => {
            // The writer batches; give it a moment.
            tokio::time::sleep(Duration::from_millis(500)).await;
            let again: Value = http
                .get(format!("{base}/api/calls/{entry}"))
                .bearer_auth(&sup_token)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            again
        }
    };
    assert_eq!(item["status"], "answered");
    assert_eq!(item["tenant"], "acme");
    assert_eq!(item["caller"]["contact"]["name"], "Ivan Petrov");

    // Click-to-call as 101: a signed commands/callback reaches Mango.
    let r = http
        .post(format!("{base}/api/calls/originate"))
        .bearer_auth(&op_token)
        .json(&json!({"to": "+79161234599"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{:?}", r.text().await);
    assert!(fake.requests().iter().any(|q| {
        q.path.ends_with("commands/callback")
            && q.json
                .as_deref()
                .is_some_and(|j| j.contains("79161234599") && j.contains("101"))
    }));
    // An operator may not call from someone else's extension.
    let r = http
        .post(format!("{base}/api/calls/originate"))
        .bearer_auth(&op_token)
        .json(&json!({"to": "+79161234599", "from": "102"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);

    // The seed-compatible machine API.
    let url =
        format!("{base}/api/makecallexternal?code=102&phone=%2B79161234598&clientId={client_id}");
    let r: Value = http.get(url).send().await.unwrap().json().await.unwrap();
    assert_eq!(r["success"], true, "{r}");
    assert_eq!(r["enterprise"], "june");
    assert_eq!(r["enterprise_number"], "0367");
    assert_eq!(
        r["message"],
        "Call initiated successfully: 102 -> +79161234598"
    );
    assert!(r["response_time_ms"].as_f64().unwrap() >= 0.0);
    let r = http
        .get(format!(
            "{base}/api/makecallexternal?code=102&phone=1&clientId=wrong"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"detail": "Invalid clientId"})
    );
    // Mango has no spy verb: reported, not faked.
    let url =
        format!("{base}/api/monitor?action=09&target=101&monitor_from=201&clientId={client_id}");
    let r = http.get(url).send().await.unwrap();
    assert!(r.status() == 409 || r.status() == 501, "{}", r.status());

    // A forged webhook is refused and stored nowhere.
    let before: i64 =
        sqlx::query_scalar("SELECT count(*) FROM webhook_inbox WHERE body LIKE '%forged%'")
            .fetch_one(&pool)
            .await
            .unwrap_or(-1);
    let forged = calldesk_mango_proto::webhook::SignedForm::encode(
        &calldesk_mango_proto::Credentials::new(creds.key(), "not-the-salt"),
        r#"{"entry_id":"forged","call_id":"x","timestamp":1,"seq":1,"call_state":"Appeared","location":"ivr","from":{"number":"79160000000"},"to":{"number":"74951234567"}}"#,
    );
    let r = http
        .post(format!("{base}/mango/acme/events/call"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(forged)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let after: i64 =
        sqlx::query_scalar("SELECT count(*) FROM webhook_inbox WHERE body LIKE '%forged%'")
            .fetch_one(&pool)
            .await
            .unwrap_or(-1);
    assert_eq!(before, after);

    let metrics = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("calldesk_webhooks_total{result=\"ok\"}"),
        "{metrics}"
    );
    assert!(metrics.contains("calldesk_webhooks_total{result=\"bad_signature\"} 1"));

    drop((op, boris, sup));
    stop_tx.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    fake.shutdown().await;
}

fn salt_of(_fake: &FakeMango) -> String {
    // FakeMangoConfig::default()'s salt.
    "fakevpbxsalt400000000000000000y".to_owned()
}
