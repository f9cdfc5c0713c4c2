//! Helpers shared by the hub's integration tests: a hub on a real PostgreSQL (started, and
//! served on a loopback port), tenants and operators, logins over HTTP, WebSocket clients and
//! the hub messages they read. Each test binary uses only some of them.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::time::Duration;

use calldesk_calls::{Extension, TenantId};
use calldesk_central::{CentralStore, NewOperator, NewTenant, Operator, PbxConfig, Role};
use calldesk_hub::{Hub, HubConfig, HubError, SecretEnv};
use calldesk_sim::mango::FakeMango;
use calldesk_wire::{HubCall, HubMessage};
use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;

/// How long a test waits for any one thing (a message, a connection, a state).
pub const WAIT: Duration = Duration::from_secs(15);

/// The salt of `FakeMangoConfig::default()`, which the hub reads from `ACME_MANGO_SALT`.
pub const FAKE_MANGO_SALT: &str = "fakevpbxsalt400000000000000000y";

pub type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>;

/// The test configuration with `secrets` and a fast lease loop.
pub fn config(secrets: SecretEnv) -> HubConfig {
    let mut config = HubConfig::for_tests("unused");
    config.secrets = secrets;
    config.lease_every = Duration::from_millis(100);
    config
}

/// Starts a hub on `store` (without serving it); the hub runs until the sender says `true` or
/// is dropped.
pub async fn start(config: HubConfig, store: &CentralStore) -> (Hub, watch::Sender<bool>) {
    let (stop, stop_rx) = watch::channel(false);
    let hub = Hub::start_with_store(config, store.clone(), stop_rx)
        .await
        .unwrap();
    (hub, stop)
}

/// A hub serving HTTP and WebSocket on a loopback port.
pub struct Served {
    pub hub: Hub,
    pub addr: SocketAddr,
    pub stop: watch::Sender<bool>,
    pub server: JoinHandle<Result<(), HubError>>,
}

/// Starts a hub on `store` and serves it on `127.0.0.1:0`.
pub async fn serve(config: HubConfig, store: &CentralStore) -> Served {
    let (hub, stop) = start(config, store).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut until = stop.subscribe();
    let server = tokio::spawn(calldesk_hub::serve(hub.clone(), listener, async move {
        let _ = until.wait_for(|s| *s).await;
    }));
    Served {
        hub,
        addr,
        stop,
        server,
    }
}

impl Served {
    /// `http://127.0.0.1:port`.
    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops the hub and checks that the server ended cleanly within 10 s.
    pub async fn stop(self) {
        self.stop.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(10), self.server)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
    }
}

/// A hub for the tenant `tenant` of [`fake_mango_pbx`]: served, holding the tenant, and the
/// fake's webhooks pointed at it.
pub async fn serve_fake_mango(store: &CentralStore, fake: &FakeMango, tenant: &TenantId) -> Served {
    let served = serve(config(mango_secrets()), store).await;
    assert!(
        served
            .hub
            .wait_until_held(tenant, Duration::from_secs(10))
            .await
    );
    fake.set_target(format!("{}/mango/{tenant}/", served.base()));
    served
}

/// An HTTP client for the loopback hub.
pub fn http() -> reqwest::Client {
    calldesk_sim::mango::loopback_client_builder()
        .unwrap()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// Sends `req` (with `token` as the bearer, if any); returns the status and the body: JSON
/// when it parses, else the text as a JSON string.
pub async fn send(
    mut req: reqwest::RequestBuilder,
    token: Option<&str>,
) -> (reqwest::StatusCode, Value) {
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    let text = resp.text().await.unwrap();
    let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, value)
}

/// Adds tenant `id`; returns its machine API `clientId`.
pub async fn add_tenant(
    store: &CentralStore,
    id: &str,
    name: &str,
    number: &str,
    pbx: PbxConfig,
) -> String {
    store
        .add_tenant(&NewTenant {
            id: TenantId::new(id).unwrap(),
            name: name.to_owned(),
            number: number.to_owned(),
            region: "RU".to_owned(),
            pbx,
        })
        .await
        .unwrap()
}

/// The PBX of a tenant served by `fake`, its salt in `ACME_MANGO_SALT` (see [`mango_secrets`]).
pub fn fake_mango_pbx(fake: &FakeMango) -> PbxConfig {
    PbxConfig::Mango {
        api_url: Some(fake.base_url()),
        key: fake.credentials().key().to_owned(),
        salt_env: "ACME_MANGO_SALT".into(),
    }
}

/// The secrets of a tenant with [`fake_mango_pbx`].
pub fn mango_secrets() -> SecretEnv {
    SecretEnv::default().with("ACME_MANGO_SALT", FAKE_MANGO_SALT)
}

/// Adds operators `(login, role, extension)` to `tenant`, all with `password` (hashed once).
pub async fn add_operators(
    store: &CentralStore,
    tenant: &str,
    password: &str,
    operators: &[(&str, Role, &str)],
) -> Vec<Operator> {
    let hash = calldesk_central::password::hash_password(password).unwrap();
    let mut added = Vec::new();
    for &(login, role, ext) in operators {
        let operator = store
            .add_operator(&NewOperator {
                tenant: TenantId::new(tenant).unwrap(),
                login: login.to_owned(),
                name: Some(login.to_owned()),
                password_hash: hash.clone(),
                role,
                extension: Extension::new(ext).unwrap(),
                sip: None,
            })
            .await
            .unwrap();
        added.push(operator);
    }
    added
}

/// Adds one operator (see [`add_operators`]).
pub async fn add_operator(
    store: &CentralStore,
    tenant: &str,
    login: &str,
    role: Role,
    ext: &str,
    password: &str,
) -> Operator {
    let mut added = add_operators(store, tenant, password, &[(login, role, ext)]).await;
    added.pop().unwrap()
}

/// Logs in over HTTP at `base` and returns the token.
pub async fn login(
    http: &reqwest::Client,
    base: &str,
    tenant: &str,
    login: &str,
    password: &str,
) -> String {
    let resp = http
        .post(format!("{base}/api/auth/login"))
        .json(&json!({"tenant": tenant, "login": login, "password": password}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), reqwest::StatusCode::OK, "login {login}");
    let body: Value = resp.json().await.unwrap();
    body["token"].as_str().unwrap().to_owned()
}

/// Connects a WebSocket client to the hub at `addr` with `token`.
pub async fn connect(addr: SocketAddr, token: &str) -> Ws {
    let url = format!("ws://{addr}/ws?token={token}");
    let (ws, _) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(url))
        .await
        .expect("WebSocket connect timed out")
        .unwrap();
    ws
}

/// The next hub message (pings and pongs skipped; any other frame is a failure).
pub async fn next_message(ws: &mut Ws) -> HubMessage {
    loop {
        let frame = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("no WebSocket message in time")
            .expect("the WebSocket closed")
            .unwrap();
        match frame {
            Message::Text(text) => {
                return serde_json::from_str(text.as_str())
                    .unwrap_or_else(|e| panic!("not a hub message ({e}): {text}"));
            }
            Message::Ping(_) | Message::Pong(_) => {}
            other => panic!("unexpected frame {other:?}"),
        }
    }
}

/// The call a message is about, if it is about one.
pub fn call_of(m: &HubMessage) -> Option<(&'static str, &HubCall)> {
    match m {
        HubMessage::CallNew { call } => Some(("call-new", call)),
        HubMessage::CallUpdated { call } => Some(("call-updated", call)),
        HubMessage::CallEnded { call } => Some(("call-ended", call)),
        _ => None,
    }
}

/// Reads messages until one about call `id` of `kind` arrives; returns it and everything read
/// about that call before it.
pub async fn wait_call(ws: &mut Ws, id: &str, kind: &str) -> (HubCall, Vec<(String, HubCall)>) {
    let mut seen = Vec::new();
    loop {
        let m = next_message(ws).await;
        if let Some((k, call)) = call_of(&m)
            && call.record.id == id
        {
            if k == kind {
                return (call.clone(), seen);
            }
            seen.push((k.to_owned(), call.clone()));
        }
    }
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
