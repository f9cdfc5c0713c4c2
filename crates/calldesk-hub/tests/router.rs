//! The hub's HTTP surface without sockets: `calldesk_hub::router(hub)` driven with
//! `tower::ServiceExt::oneshot` on a real PostgreSQL (`#[sqlx::test]`, a fresh database each).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Method, Request, StatusCode, header};
use calldesk_calls::{
    CallBook, CallEvent, CallEventKind, CallId, CallStatus, Direction, Extension, NumberPlan,
    TenantId, Timestamp,
};
use calldesk_central::{CentralStore, ContactInput, HubCall, Operator, PbxConfig, Role};
use calldesk_hub::{Hub, SecretEnv};
use calldesk_mango_proto::Credentials;
use calldesk_mango_proto::webhook::SignedForm;
use common::urlencode;
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio::sync::watch;
use tower::ServiceExt;

const PASSWORD: &str = "correct horse battery staple";

struct Setup {
    hub: Hub,
    store: CentralStore,
    _stop: watch::Sender<bool>,
}

async fn start(store: CentralStore, secrets: SecretEnv) -> Setup {
    let (hub, stop) = common::start(common::config(secrets), &store).await;
    Setup {
        hub,
        store,
        _stop: stop,
    }
}

impl Setup {
    async fn get(&self, uri: &str, token: Option<&str>) -> (StatusCode, Value) {
        call(&self.hub, Method::GET, uri, token, None).await
    }

    async fn post(&self, uri: &str, token: &str, body: Value) -> (StatusCode, Value) {
        call(&self.hub, Method::POST, uri, Some(token), Some(body)).await
    }

    async fn put(&self, uri: &str, token: &str, body: Value) -> (StatusCode, Value) {
        call(&self.hub, Method::PUT, uri, Some(token), Some(body)).await
    }

    async fn delete(&self, uri: &str, token: &str) -> (StatusCode, Value) {
        call(&self.hub, Method::DELETE, uri, Some(token), None).await
    }

    /// The ids of the calls a `GET` of a list gives (which must be `200`).
    async fn ids(&self, uri: &str, token: &str) -> Vec<String> {
        let (status, page) = self.get(uri, Some(token)).await;
        assert_eq!(status, StatusCode::OK, "{uri}: {page}");
        ids(&page)
    }
}

fn tid(s: &str) -> TenantId {
    TenantId::new(s).unwrap()
}

async fn tenant(store: &CentralStore, id: &str, number: &str, pbx: PbxConfig) -> String {
    common::add_tenant(store, id, &format!("{id} ltd"), number, pbx).await
}

async fn operator(store: &CentralStore, t: &str, login: &str, role: Role, ext: &str) -> Operator {
    common::add_operator(store, t, login, role, ext, PASSWORD).await
}

/// An ended inbound call from `from` rung at and (if `answered`) answered by `ext`.
fn ended_call(t: &str, id: &str, from: &str, ext: &str, start_ms: i64, answered: bool) -> HubCall {
    let plan = NumberPlan::new("RU").unwrap();
    let mut book = CallBook::new(tid(t));
    let call_id = CallId::new(id).unwrap();
    let e = Extension::new(ext).unwrap();
    let mut kinds = vec![
        CallEventKind::Started {
            direction: Direction::Inbound,
            from: plan.party(from),
            to: plan.party("74950000000"),
        },
        CallEventKind::OperatorRinging {
            extension: e.clone(),
        },
    ];
    if answered {
        kinds.push(CallEventKind::Answered { extension: Some(e) });
    }
    kinds.push(CallEventKind::Ended {
        cause: None,
        status: (!answered).then_some(CallStatus::Missed),
    });
    let mut last = None;
    for (i, kind) in kinds.into_iter().enumerate() {
        if let Some(u) = book
            .apply(&CallEvent {
                call: call_id.clone(),
                at: Timestamp::from_unix_millis(start_ms + 1000 * i as i64),
                kind,
            })
            .unwrap()
        {
            last = Some(u.call);
        }
    }
    HubCall::new(&last.unwrap())
}

fn peer(n: u8) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, n], 40_000))
}

/// One request through the router; returns the status and the body (JSON when it parses,
/// else the text as a JSON string).
async fn call(
    hub: &Hub,
    method: Method,
    uri: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(t) = token {
        req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    let req = match body {
        Some(b) => req
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(b.to_string())),
        None => req.body(Body::empty()),
    }
    .unwrap();
    send(hub, req).await
}

async fn send(hub: &Hub, mut req: Request<Body>) -> (StatusCode, Value) {
    if req.extensions().get::<ConnectInfo<SocketAddr>>().is_none() {
        req.extensions_mut().insert(ConnectInfo(peer(1)));
    }
    let resp = tokio::time::timeout(
        Duration::from_secs(20),
        calldesk_hub::router(hub.clone()).oneshot(req),
    )
    .await
    .expect("the router answers within 20 s")
    .unwrap();
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), 10 << 20)
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, value)
}

async fn login(
    hub: &Hub,
    from: SocketAddr,
    tenant: &str,
    login: &str,
    password: &str,
) -> (StatusCode, Value) {
    let mut req = Request::builder()
        .method(Method::POST)
        .uri("/api/auth/login")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(
            json!({"tenant": tenant, "login": login, "password": password}).to_string(),
        ))
        .unwrap();
    req.extensions_mut().insert(ConnectInfo(from));
    send(hub, req).await
}

fn ids(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap_or_else(|| panic!("no items in {page}"))
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_owned())
        .collect()
}

fn demo() -> PbxConfig {
    PbxConfig::Demo
}

#[sqlx::test(migrator = "calldesk_central::MIGRATOR")]
async fn health_metrics_openapi_and_authentication(pool: PgPool) {
    let store = CentralStore::from_pool(pool);
    tenant(&store, "acme", "100", demo()).await;
    operator(&store, "acme", "ivan", Role::Operator, "101").await;
    let s = start(store, SecretEnv::default()).await;

    let (status, body) = s.get("/health", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "healthy", "{body}");
    assert_eq!(body["service"], "calldesk-hub");

    let (status, body) = s.get("/api/openapi.json", None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.is_object(), "not JSON: {body}");
    let paths = body["paths"].as_object().expect("paths");
    for p in [
        "/api/auth/login",
        "/api/calls",
        "/api/calls/{id}",
        "/api/calls/originate",
        "/api/makecallexternal",
        "/api/monitor",
        "/health",
        "/api/status",
    ] {
        assert!(
            paths.contains_key(p),
            "{p} is not documented: {:?}",
            paths.keys()
        );
    }

    // No token: 401 that says how to log in.
    let (status, body) = s.get("/api/calls", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("/api/auth/login"), "{body}");
    let (status, _) = s.get("/api/calls", Some("not-a-token")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // A good login works and the token is accepted.
    let (status, body) = login(&s.hub, peer(2), "acme", "ivan", PASSWORD).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let token = body["token"].as_str().unwrap().to_owned();
    assert_eq!(body["operator"]["extension"], "101");
    let (status, me) = s.get("/api/me", Some(&token)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["tenant"], "acme");
    assert_eq!(me["role"], "operator");

    // Wrong passwords: 401 nine times (the good login above used one of the ten attempts per
    // minute per tenant+login), then 429 (governor's GCRA gives one attempt back every 6 s, and
    // argon2 in a debug build is slow, so allow a refill or two before the 429).
    let started = std::time::Instant::now();
    for i in 0..9 {
        let (status, body) = login(&s.hub, peer(3), "acme", "ivan", "wrong").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "attempt {i}: {body}");
    }
    let mut refused = 9;
    loop {
        let (status, body) = login(&s.hub, peer(3), "acme", "ivan", "wrong").await;
        if status == StatusCode::TOO_MANY_REQUESTS {
            break;
        }
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        refused += 1;
        let refills = started.elapsed().as_secs() / 6 + 1;
        assert!(
            refused - 9 <= refills,
            "{refused} attempts in {:?} and still no 429",
            started.elapsed()
        );
    }
    // Even the right password is refused now: the limit is per login, not per failure.
    let (status, _) = login(&s.hub, peer(4), "acme", "ivan", PASSWORD).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    // An unknown tenant is the same 401 as a wrong password.
    let (status, _) = login(&s.hub, peer(5), "nope", "ivan", PASSWORD).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let (status, text) = s.get("/metrics", None).await;
    assert_eq!(status, StatusCode::OK);
    let text = text.as_str().expect("metrics are text").to_owned();
    // Every family is there from the start, labelled ones with zeros.
    for name in [
        "calldesk_webhooks_total{result=\"bad_signature\"} 0",
        "calldesk_machine_requests_total{result=\"unauthorized\"} 0",
        "calldesk_call_updates_total",
        "calldesk_ws_clients",
        "calldesk_ws_messages_total",
        "calldesk_db_batch_seconds_bucket",
    ] {
        assert!(text.contains(name), "{name} missing from:\n{text}");
    }
    assert!(
        text.contains("calldesk_logins_total{result=\"limited\"} 2"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "calldesk_logins_total{{result=\"refused\"}} {}",
            refused + 1
        )),
        "{text}"
    );
}

#[sqlx::test(migrator = "calldesk_central::MIGRATOR")]
async fn tenants_are_isolated_and_writes_need_the_right_role(pool: PgPool) {
    let store = CentralStore::from_pool(pool);
    tenant(&store, "alpha", "100", demo()).await;
    tenant(&store, "beta", "200", demo()).await;
    let a_admin = operator(&store, "alpha", "anna", Role::Admin, "100").await;
    let a_sup = operator(&store, "alpha", "sam", Role::Supervisor, "150").await;
    let a_op = operator(&store, "alpha", "ivan", Role::Operator, "101").await;
    let b_sup = operator(&store, "beta", "boris", Role::Supervisor, "150").await;
    store
        .upsert_calls(&[
            ended_call(
                "alpha",
                "a-1",
                "+74951110001",
                "101",
                1_700_000_000_000,
                true,
            ),
            ended_call(
                "beta",
                "b-1",
                "+74952220001",
                "101",
                1_700_000_000_000,
                true,
            ),
        ])
        .await
        .unwrap();
    let b_contact = store
        .create_contact(
            &tid("beta"),
            &ContactInput {
                name: "Beta Customer".into(),
                phones: vec!["+74952220001".into()],
                ..ContactInput::default()
            },
        )
        .await
        .unwrap();
    let s = start(store, SecretEnv::default()).await;
    let keys = s.hub.keys();
    let admin = keys.issue(&a_admin).unwrap();
    let sup = keys.issue(&a_sup).unwrap();
    let op = keys.issue(&a_op).unwrap();
    let beta = keys.issue(&b_sup).unwrap();

    // Each tenant sees its own call by id...
    let (status, own) = s.get("/api/calls/a-1", Some(&sup)).await;
    assert_eq!(status, StatusCode::OK, "{own}");
    assert_eq!(own["tenant"], "alpha");
    let (status, _) = s.get("/api/calls/b-1", Some(&beta)).await;
    assert_eq!(status, StatusCode::OK);
    // ...but never the other's: not by id, not in the list, not to write a note on.
    let (status, body) = s.get("/api/calls/b-1", Some(&sup)).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, page) = s.get("/api/calls", Some(&sup)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ids(&page), vec!["a-1".to_owned()]);
    let (status, page) = s.get("/api/calls?phone=%2B74952220001", Some(&sup)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(ids(&page).is_empty(), "{page}");
    let note = json!({"id": "6f1c1d3e-2b1a-4c5d-8e9f-0a1b2c3d4e5f", "text": "hi"});
    let (status, body) = s.post("/api/calls/b-1/notes", &sup, note.clone()).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, body) = s.post("/api/calls/a-1/notes", &sup, note).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["text"], "hi");
    let (_, b_call) = s.get("/api/calls/b-1", Some(&beta)).await;
    assert_eq!(b_call["notes"], json!([]), "{b_call}");

    // Contacts: B's are invisible to A.
    let (status, list) = s.get("/api/contacts", Some(&admin)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["items"], json!([]), "{list}");
    let (status, _) = s
        .get(&format!("/api/contacts/{}", b_contact.id), Some(&admin))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, list) = s.get("/api/contacts", Some(&beta)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["items"][0]["name"], "Beta Customer", "{list}");
    // Nor can A change or delete them.
    let (status, _) = s
        .delete(&format!("/api/contacts/{}", b_contact.id), &admin)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Companies: admins only.
    let company = json!({"name": "Horns and Hooves", "phones": ["+7 495 333-00-01"]});
    for token in [&op, &sup] {
        let (status, body) = s.post("/api/companies", token, company.clone()).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    }
    let (status, body) = s.post("/api/companies", &admin, company).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["phones"], json!(["+74953330001"]));
    let (_, list) = s.get("/api/companies", Some(&beta)).await;
    assert_eq!(
        list["items"],
        json!([]),
        "beta sees alpha's company: {list}"
    );

    // A bad phone in a contact: 400 with the reason.
    let contact = json!({"name": "Bad Phone", "phones": ["not a phone"]});
    let (status, body) = s.post("/api/contacts", &admin, contact).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("not a phone"), "{body}");
    let (_, list) = s.get("/api/contacts", Some(&admin)).await;
    assert_eq!(
        list["items"],
        json!([]),
        "a refused contact was stored: {list}"
    );
}

#[sqlx::test(migrator = "calldesk_central::MIGRATOR")]
async fn calls_filter_and_page_and_operators_see_their_own(pool: PgPool) {
    let store = CentralStore::from_pool(pool);
    tenant(&store, "acme", "100", demo()).await;
    let sup = operator(&store, "acme", "sam", Role::Supervisor, "150").await;
    let ivan = operator(&store, "acme", "ivan", Role::Operator, "101").await;
    let t0 = 1_700_000_000_000;
    let calls = vec![
        ended_call("acme", "c1", "+74951110001", "101", t0, true),
        ended_call("acme", "c2", "+74951110002", "102", t0 + 60_000, false),
        ended_call("acme", "c3", "+74951110001", "101", t0 + 120_000, false),
        ended_call("acme", "c4", "+74951110004", "102", t0 + 180_000, true),
        ended_call("acme", "c5", "+74951110005", "101", t0 + 240_000, true),
    ];
    store.upsert_calls(&calls).await.unwrap();
    let s = start(store, SecretEnv::default()).await;
    let sup = s.hub.keys().issue(&sup).unwrap();
    let ivan = s.hub.keys().issue(&ivan).unwrap();

    // Keyset pagination, newest first.
    let mut seen = Vec::new();
    let mut uri = "/api/calls?limit=2".to_owned();
    let mut pages = 0;
    loop {
        let (status, page) = s.get(&uri, Some(&sup)).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        pages += 1;
        let got = ids(&page);
        assert!(got.len() <= 2, "{page}");
        seen.extend(got);
        match page["next"].as_str() {
            Some(next) => {
                assert!(pages < 5, "pagination does not end: {page}");
                uri = format!("/api/calls?limit=2&after={}", urlencode(next));
            }
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, ["c5", "c4", "c3", "c2", "c1"]);

    assert_eq!(
        s.ids("/api/calls?status=answered", &sup).await,
        ["c5", "c4", "c1"]
    );
    assert_eq!(s.ids("/api/calls?status=missed", &sup).await, ["c3", "c2"]);
    assert_eq!(s.ids("/api/calls?operator=102", &sup).await, ["c4", "c2"]);
    assert_eq!(
        s.ids("/api/calls?phone=84951110001", &sup).await,
        ["c3", "c1"]
    );
    assert_eq!(
        s.ids("/api/calls?status=answered&operator=101", &sup).await,
        ["c5", "c1"]
    );
    assert_eq!(
        s.ids("/api/calls?since=2023-11-14T22:15:00Z", &sup).await,
        ["c5", "c4", "c3"],
        "t0 is 2023-11-14T22:13:20Z"
    );
    for uri in ["/api/calls?status=bogus", "/api/calls?phone=xyz"] {
        let (status, body) = s.get(uri, Some(&sup)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}: {body}");
    }

    // An operator sees only the calls of their own extension, whatever they ask for.
    assert_eq!(s.ids("/api/calls", &ivan).await, ["c5", "c3", "c1"]);
    assert_eq!(
        s.ids("/api/calls?operator=102", &ivan).await,
        ["c5", "c3", "c1"]
    );
    let (status, _) = s.get("/api/calls/c4", Some(&ivan)).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "an operator read another's call"
    );
    let (status, _) = s.get("/api/calls/c5", Some(&ivan)).await;
    assert_eq!(status, StatusCode::OK);
}

#[sqlx::test(migrator = "calldesk_central::MIGRATOR")]
async fn machine_api_refuses_bad_client_ids_and_missing_params(pool: PgPool) {
    let store = CentralStore::from_pool(pool);
    let secret = tenant(&store, "acme", "100", demo()).await;
    let s = start(store, SecretEnv::default()).await;

    for uri in [
        "/api/makecallexternal?code=101&phone=%2B74951234567&clientId=wrong".to_owned(),
        "/api/makecallexternal?code=101&phone=%2B74951234567".to_owned(),
        "/api/monitor?action=09&target=101&monitor_from=150&clientId=wrong".to_owned(),
    ] {
        let (status, body) = s.get(&uri, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{uri}: {body}");
        assert_eq!(body, json!({"detail": "Invalid clientId"}), "{uri}");
    }
    // The right clientId but a parameter missing: 422 that names it.
    let client_id = urlencode(&secret);
    for (uri, missing) in [
        (
            format!("/api/makecallexternal?code=101&clientId={client_id}"),
            "phone",
        ),
        (
            format!("/api/monitor?action=09&target=101&clientId={client_id}"),
            "monitor_from",
        ),
    ] {
        let (status, body) = s.get(&uri, None).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{uri}: {body}");
        assert!(
            body["detail"].as_str().unwrap().contains(missing),
            "{uri}: {body}"
        );
    }
}

async fn inbox_count(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM webhook_inbox")
        .fetch_one(pool)
        .await
        .unwrap()
}

#[sqlx::test(migrator = "calldesk_central::MIGRATOR")]
async fn mango_webhooks_are_verified_before_they_are_stored(pool: PgPool) {
    let store = CentralStore::from_pool(pool.clone());
    tenant(
        &store,
        "mango1",
        "300",
        PbxConfig::Mango {
            api_url: Some("http://127.0.0.1:9".to_owned()),
            key: "api-key-1".to_owned(),
            salt_env: "MANGO1_SALT".to_owned(),
        },
    )
    .await;
    let s = start(store, SecretEnv::default().with("MANGO1_SALT", "salt-1")).await;
    // A real webhook: the first line of the answered scenario.
    let line = include_str!("../../calldesk-mango-proto/tests/scenarios/answered.jsonl")
        .lines()
        .next()
        .unwrap();
    let line: Value = serde_json::from_str(line).unwrap();
    let path = line["path"].as_str().unwrap();
    let json = line["json"].as_str().unwrap();
    let post = |form: String| {
        Request::builder()
            .method(Method::POST)
            .uri(format!("/mango/mango1{path}"))
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(form))
            .unwrap()
    };

    let forged = SignedForm::encode(&Credentials::new("api-key-1", "wrong-salt"), json);
    let (status, body) = send(&s.hub, post(forged)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let wrong_key = SignedForm::encode(&Credentials::new("other-key", "salt-1"), json);
    let (status, _) = send(&s.hub, post(wrong_key)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(inbox_count(&pool).await, 0, "a refused webhook was stored");

    let good = SignedForm::encode(&Credentials::new("api-key-1", "salt-1"), json);
    let (status, body) = send(&s.hub, post(good.clone())).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        inbox_count(&pool).await,
        1,
        "an accepted webhook is stored first"
    );
    // Delivered twice: stored once.
    let (status, _) = send(&s.hub, post(good)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(inbox_count(&pool).await, 1);

    let (status, body) = send(
        &s.hub,
        Request::builder()
            .method(Method::POST)
            .uri(format!("/mango/nobody{path}"))
            .body(Body::from(SignedForm::encode(
                &Credentials::new("api-key-1", "salt-1"),
                json,
            )))
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");

    let (_, text) = s.get("/metrics", None).await;
    let text = text.as_str().unwrap().to_owned();
    assert!(
        text.contains("calldesk_webhooks_total{result=\"bad_signature\"} 2"),
        "{text}"
    );
    assert!(
        text.contains("calldesk_webhooks_total{result=\"ok\"} 2"),
        "{text}"
    );
    // The store is still usable for the tenant.
    assert!(s.store.tenant(&tid("mango1")).await.unwrap().is_some());
}

#[sqlx::test(migrator = "calldesk_central::MIGRATOR")]
async fn an_operator_cannot_write_on_a_call_they_cannot_read(pool: PgPool) {
    let store = CentralStore::from_pool(pool);
    tenant(&store, "acme", "100", demo()).await;
    let ivan = operator(&store, "acme", "ivan", Role::Operator, "101").await;
    store
        .upsert_calls(&[ended_call(
            "acme",
            "theirs",
            "+74951110009",
            "102",
            1_700_000_000_000,
            true,
        )])
        .await
        .unwrap();
    let s = start(store, SecretEnv::default()).await;
    let ivan = s.hub.keys().issue(&ivan).unwrap();
    let (status, _) = s.get("/api/calls/theirs", Some(&ivan)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let note = json!({"id": "0b7e8f0c-6a3d-4c39-9d2e-5f2a1c7b9e11", "text": "not mine"});
    let (status, body) = s.post("/api/calls/theirs/notes", &ivan, note).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "an operator wrote a note on a call they cannot read: {body}"
    );
    let (status, body) = s
        .put(
            "/api/calls/theirs/disposition",
            &ivan,
            json!({"code": "sale"}),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "an operator set the disposition of a call they cannot read: {body}"
    );
}

#[sqlx::test(migrator = "calldesk_central::MIGRATOR")]
async fn tags_and_the_missed_calls_worklist_over_rest(pool: PgPool) {
    let store = CentralStore::from_pool(pool);
    tenant(&store, "acme", "100", demo()).await;
    tenant(&store, "globex", "200", demo()).await;
    let anna = operator(&store, "acme", "anna", Role::Operator, "101").await;
    let boris = operator(&store, "acme", "boris", Role::Operator, "102").await;
    let sue = operator(&store, "acme", "sue", Role::Supervisor, "103").await;
    let gus = operator(&store, "globex", "gus", Role::Supervisor, "101").await;
    let now = i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap();
    store
        .upsert_calls(&[
            ended_call("acme", "m1", "+74951110001", "101", now - 600_000, false),
            ended_call("acme", "m2", "+74951110001", "102", now - 300_000, false),
            ended_call("acme", "ok", "+74951110002", "101", now - 200_000, true),
        ])
        .await
        .unwrap();
    let s = start(store, SecretEnv::default()).await;
    let [anna, boris, sue, gus] =
        [&anna, &boris, &sue, &gus].map(|o| s.hub.keys().issue(o).unwrap());

    // tags: normalised, replaced as a set, only on a call the operator may read
    let (status, body) = s
        .put(
            "/api/calls/m1/tags",
            &anna,
            json!({"tags": ["VIP", "vip", "Ремонт"]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["tags"], json!(["vip", "ремонт"]));
    let (_, call) = s.get("/api/calls/m1", Some(&anna)).await;
    assert_eq!(call["tags"], json!(["vip", "ремонт"]));
    let (status, body) = s
        .put("/api/calls/m1/tags", &anna, json!({"tags": ["a b"]}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, _) = s
        .put("/api/calls/m2/tags", &anna, json!({"tags": ["x"]}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "m2 rang at 102 only");

    // the worklist: one caller, two missed calls; the answered caller is not on it
    let (status, list) = s.get("/api/callbacks", Some(&boris)).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{list}");
    assert_eq!(items[0]["number"], "+74951110001");
    assert_eq!(items[0]["missed"], 2);
    assert_eq!(items[0]["last_call_id"], "m2");
    let (status, _) = s.get("/api/callbacks?days=99", Some(&boris)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // another tenant sees nothing and cannot claim it
    let (_, theirs) = s.get("/api/callbacks", Some(&gus)).await;
    assert_eq!(theirs["items"], json!([]));
    let number = json!({"number": "+74951110001"});
    let (status, _) = s.post("/api/callbacks/claim", &gus, number.clone()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (status, item) = s.post("/api/callbacks/claim", &anna, number.clone()).await;
    assert_eq!(status, StatusCode::OK, "{item}");
    assert_eq!(item["claimed_by"], "anna");
    let (status, body) = s.post("/api/callbacks/claim", &boris, number.clone()).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(body.to_string().contains("taken by anna"), "{body}");
    let (status, body) = s
        .post(
            "/api/callbacks/close",
            &anna,
            json!({"number": "+74951110001", "outcome": "done"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = s
        .post(
            "/api/callbacks/claim",
            &anna,
            json!({"number": "74951110001\r\n"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    // the supervisor closes it for anna
    let (status, body) = s
        .post(
            "/api/callbacks/close",
            &sue,
            json!({"number": "+74951110001", "outcome": "not_needed"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, list) = s.get("/api/callbacks", Some(&anna)).await;
    assert_eq!(list["items"], json!([]));
}

#[sqlx::test(migrator = "calldesk_central::MIGRATOR")]
async fn the_disposition_list_is_the_tenants_and_only_supervisors_change_it(pool: PgPool) {
    let store = CentralStore::from_pool(pool);
    tenant(&store, "acme", "100", demo()).await;
    tenant(&store, "globex", "200", demo()).await;
    let anna = operator(&store, "acme", "anna", Role::Operator, "101").await;
    let sue = operator(&store, "acme", "sue", Role::Supervisor, "103").await;
    let gus = operator(&store, "globex", "gus", Role::Supervisor, "101").await;
    store
        .upsert_calls(&[ended_call(
            "acme",
            "c1",
            "+74951110001",
            "101",
            1_700_000_000_000,
            true,
        )])
        .await
        .unwrap();
    let s = start(store, SecretEnv::default()).await;
    let [anna, sue, gus] = [&anna, &sue, &gus].map(|o| s.hub.keys().issue(o).unwrap());

    let (status, body) = s.get("/api/dispositions", Some(&anna)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["codes"], json!(calldesk_wire::DEFAULT_DISPOSITIONS));
    let (status, body) = s
        .put("/api/dispositions", &anna, json!({"codes": ["mine"]}))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, body) = s
        .put(
            "/api/dispositions",
            &sue,
            json!({"codes": ["sold", "Lost!"]}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = s
        .put(
            "/api/dispositions",
            &sue,
            json!({"codes": ["sold", "lost"]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["codes"], json!(["sold", "lost"]));
    // Operators now choose from it; the old codes are refused with the list in the message.
    let (_, body) = s.get("/api/dispositions", Some(&anna)).await;
    assert_eq!(body["codes"], json!(["sold", "lost"]));
    let (status, body) = s
        .put("/api/calls/c1/disposition", &anna, json!({"code": "sale"}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.to_string().contains("(sold, lost)"), "{body}");
    let (status, body) = s
        .put("/api/calls/c1/disposition", &anna, json!({"code": "sold"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Another tenant's list is its own.
    let (_, body) = s.get("/api/dispositions", Some(&gus)).await;
    assert_eq!(body["codes"], json!(calldesk_wire::DEFAULT_DISPOSITIONS));
}

#[sqlx::test(migrator = "calldesk_central::MIGRATOR")]
async fn recording_links_go_to_who_may_hear_the_call_and_the_hub_serves_them_signed(pool: PgPool) {
    use calldesk_central::NewRecording;
    use calldesk_media::{RecordingKey, RecordingStore};

    let store = CentralStore::from_pool(pool);
    tenant(&store, "acme", "100", demo()).await;
    tenant(&store, "beta", "200", demo()).await;
    let ivan = operator(&store, "acme", "ivan", Role::Operator, "101").await;
    let petr = operator(&store, "acme", "petr", Role::Operator, "102").await;
    let sam = operator(&store, "acme", "sam", Role::Supervisor, "150").await;
    let boris = operator(&store, "beta", "boris", Role::Supervisor, "150").await;
    let started_ms = 1_700_000_000_000;
    store
        .upsert_calls(&[ended_call(
            "acme",
            "1.1",
            "+74951110001",
            "101",
            started_ms,
            true,
        )])
        .await
        .unwrap();
    let s = start(store, SecretEnv::default()).await;
    let key = RecordingKey::new(
        &tid("acme"),
        started_ms / 1000,
        &CallId::new("1.1").unwrap(),
        "in-101.wav",
    )
    .unwrap();
    let recording = NewRecording {
        tenant: tid("acme"),
        call: "1.1".into(),
        name: "in-101.wav".into(),
        store_key: key.to_string(),
    };
    s.store
        .add_recordings(std::slice::from_ref(&recording))
        .await
        .unwrap();
    let [ivan, petr, sam, boris] =
        [&ivan, &petr, &sam, &boris].map(|o| s.hub.keys().issue(o).unwrap());

    // Not stored yet: a 409 that says so and why.
    let job = s
        .store
        .lease_recordings(&[tid("acme")], 1, Duration::from_secs(60))
        .await
        .unwrap()
        .remove(0);
    s.store
        .recording_failed(
            &job,
            "the PBX spool is not mounted",
            Duration::from_secs(3600),
        )
        .await
        .unwrap();
    let (status, body) = s.get("/api/calls/1.1/recording", Some(&ivan)).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(
        body.to_string()
            .contains("pending: the PBX spool is not mounted"),
        "{body}"
    );

    // Stored: put the file where the hub's local store keeps it.
    let wav: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
    let source = std::env::temp_dir().join(format!("calldesk-rec-{}.wav", std::process::id()));
    std::fs::write(&source, &wav).unwrap();
    s.hub.recordings().upload_file(&key, &source).await.unwrap();
    let _ = std::fs::remove_file(&source);
    let job = s
        .store
        .lease_recordings(&[tid("acme")], 1, Duration::from_secs(60))
        .await
        .unwrap();
    assert!(job.is_empty(), "not due yet");
    s.store
        .add_recordings(std::slice::from_ref(&recording))
        .await
        .unwrap();
    let job = s
        .store
        .lease_recordings(&[tid("acme")], 1, Duration::from_secs(60))
        .await
        .unwrap()
        .remove(0);
    s.store
        .recording_stored(&job, wav.len() as u64)
        .await
        .unwrap();

    // The operator who took the call and the supervisor get a link; a colleague and another
    // tenant's supervisor do not learn the call exists.
    for (who, token) in [("petr", &petr), ("boris", &boris)] {
        let (status, body) = s.get("/api/calls/1.1/recording", Some(token)).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{who}: {body}");
    }
    let (status, body) = s.get("/api/calls/1.1/recording", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let (status, _) = s.get("/api/calls/1.1/recording", Some(&sam)).await;
    assert_eq!(status, StatusCode::OK);
    let (status, link) = s.get("/api/calls/1.1/recording", Some(&ivan)).await;
    assert_eq!(status, StatusCode::OK, "{link}");
    assert_eq!(link["content_type"], "audio/wav");
    assert_eq!(link["size"], 10_000);
    assert_eq!(link["expires_in_secs"], 300);
    let url = link["url"].as_str().unwrap();
    let path = &url[url.find("/recordings/").unwrap()..];

    // The link plays without a login, also from the middle (a seek).
    let fetch = |range: Option<&'static str>| {
        let mut req = Request::builder().uri(path);
        if let Some(r) = range {
            req = req.header(header::RANGE, r);
        }
        let router = calldesk_hub::router(s.hub.clone());
        async move {
            let resp = router
                .oneshot(req.body(Body::empty()).unwrap())
                .await
                .unwrap();
            let status = resp.status();
            let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
                .await
                .unwrap();
            (status, bytes)
        }
    };
    let (status, whole) = fetch(None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(&whole[..], &wav[..]);
    let (status, tail) = fetch(Some("bytes=9000-")).await;
    assert_eq!(status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(&tail[..], &wav[9000..]);

    // A changed link is refused.
    let tampered = path.replace("in-101.wav", "in-102.wav");
    let (status, body) = s.get(&tampered, None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let later = {
        let at = path.find("expires=").unwrap() + "expires=".len();
        let end = path[at..].find('&').unwrap() + at;
        let expires: u64 = path[at..end].parse().unwrap();
        format!("{}{}{}", &path[..at], expires + 3600, &path[end..])
    };
    let (status, body) = s.get(&later, None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(matches!(s.hub.recordings(), RecordingStore::Local(_)));
}
