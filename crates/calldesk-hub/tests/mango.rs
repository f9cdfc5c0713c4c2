//! End to end with the fake Mango Office: signed webhooks → hub (inbox, tracker, book, caller
//! card) → two WebSocket clients (operator 101 and a supervisor); REST shows the final call;
//! click-to-call reaches the fake as a signed `commands/callback`; the seed-compatible machine
//! API; a forged webhook is refused. Real PostgreSQL, real sockets on port 0.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use calldesk_calls::TenantId;
use calldesk_central::{CentralStore, ContactInput, Role};
use calldesk_sim::mango::{FakeMango, FakeMangoConfig, MangoScenario};
use calldesk_wire::HubMessage;
use common::{Ws, next_message};
use serde_json::{Value, json};
use sqlx::PgPool;

const PASSWORD: &str = "password-1";

/// Reads until a `call-ended`; returns every call message seen.
async fn until_ended(ws: &mut Ws) -> Vec<HubMessage> {
    let mut seen = Vec::new();
    loop {
        let m = next_message(ws).await;
        let Some((kind, _)) = common::call_of(&m) else {
            continue;
        };
        let end = kind == "call-ended";
        seen.push(m);
        if end {
            return seen;
        }
    }
}

/// `POST /api/calls/originate` with `body` as the operator of `token`.
async fn originate(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    body: Value,
) -> (reqwest::StatusCode, Value) {
    let req = http.post(format!("{base}/api/calls/originate")).json(&body);
    common::send(req, Some(token)).await
}

#[sqlx::test(migrator = "calldesk_central::MIGRATOR")]
async fn mango_webhooks_reach_operator_and_supervisor_and_rest_and_controls_reach_mango(
    pool: PgPool,
) {
    let fake = FakeMango::start(FakeMangoConfig::default()).await.unwrap();
    let creds = fake.credentials().clone();
    let store = CentralStore::from_pool(pool.clone());
    let acme = TenantId::new("acme").unwrap();
    let client_id = common::add_tenant(
        &store,
        "acme",
        "june",
        "0367",
        common::fake_mango_pbx(&fake),
    )
    .await;
    common::add_operators(
        &store,
        "acme",
        PASSWORD,
        &[
            ("anna", Role::Operator, "101"),
            ("boris", Role::Operator, "102"),
            ("sveta", Role::Supervisor, "201"),
        ],
    )
    .await;
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

    let served = common::serve_fake_mango(&store, &fake, &acme).await;
    let base = served.base();
    let http = common::http();

    let (op_token, boris_token, sup_token) = (
        common::login(&http, &base, "acme", "anna", PASSWORD).await,
        common::login(&http, &base, "acme", "boris", PASSWORD).await,
        common::login(&http, &base, "acme", "sveta", PASSWORD).await,
    );
    let mut op = common::connect(served.addr, &op_token).await;
    let mut boris = common::connect(served.addr, &boris_token).await;
    let mut sup = common::connect(served.addr, &sup_token).await;
    for ws in [&mut op, &mut boris, &mut sup] {
        assert!(matches!(
            next_message(ws).await,
            HubMessage::Hello { protocol: 1, .. }
        ));
        assert!(matches!(
            next_message(ws).await,
            HubMessage::Snapshot { .. }
        ));
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
    let (_, calls) = common::send(http.get(format!("{base}/api/calls")), Some(&sup_token)).await;
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
            let url = format!("{base}/api/calls/{entry}");
            common::send(http.get(url), Some(&sup_token)).await.1
        }
    };
    assert_eq!(item["status"], "answered");
    assert_eq!(item["tenant"], "acme");
    assert_eq!(item["caller"]["contact"]["name"], "Ivan Petrov");

    // Click-to-call as 101: a signed commands/callback reaches Mango.
    let (status, body) = originate(&http, &base, &op_token, json!({"to": "+79161234599"})).await;
    assert_eq!(status, 200, "{body}");
    assert!(fake.requests().iter().any(|q| {
        q.path.ends_with("commands/callback")
            && q.json
                .as_deref()
                .is_some_and(|j| j.contains("79161234599") && j.contains("101"))
    }));
    // An operator may not call from someone else's extension.
    let (status, _) = originate(
        &http,
        &base,
        &op_token,
        json!({"to": "+79161234599", "from": "102"}),
    )
    .await;
    assert_eq!(status, 403);

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
    served.stop().await;
    fake.shutdown().await;
}
