//! The hub end to end against the AMI simulator: a real PostgreSQL (`#[sqlx::test]`), the hub
//! serving on a loopback port, operators logged in over HTTP and connected over WebSocket, calls
//! played on the fake Asterisk, and call controls checked by what the simulator broadcasts to
//! a second, independent AMI session (the observer).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::time::Duration;

use calldesk_calls::{Extension, TenantId};
use calldesk_central::{
    CentralStore, CompanyInput, ContactInput, NewOperator, NewTenant, PbxConfig, Role,
};
use calldesk_hub::{Hub, HubConfig, SecretEnv};
use calldesk_sim::ami::{AmiSimConfig, AmiSimHandle, AmiSimulator, ScenarioCall, ScenarioKind};
use calldesk_wire::{HubCall, HubMessage, SnapshotReason};
use futures_util::StreamExt;
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::Message;

const PASSWORD: &str = "s3cret-password";
const CALLER: &str = "+74951234567";
const WAIT: Duration = Duration::from_secs(15);

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>;

struct Setup {
    hub: Hub,
    addr: SocketAddr,
    http: reqwest::Client,
    sim: AmiSimHandle,
    sim_addr: SocketAddr,
    client_id: String,
    contact_id: i64,
    company_id: i64,
    stop_hub: watch::Sender<bool>,
    stop_sim: watch::Sender<bool>,
    tenant: TenantId,
}

async fn setup(pool: PgPool) -> Setup {
    let sim_config = AmiSimConfig {
        auth_failure_delay: Duration::from_millis(10),
        ..AmiSimConfig::default()
    };
    let (user, secret) = (sim_config.username.clone(), sim_config.secret.clone());
    let sim = AmiSimulator::bind(SocketAddr::from(([127, 0, 0, 1], 0)), sim_config)
        .await
        .unwrap();
    let sim_addr = sim.local_addr();
    let sim_handle = sim.handle();
    let (stop_sim, mut stop_sim_rx) = watch::channel(false);
    tokio::spawn(sim.run(async move {
        let _ = stop_sim_rx.wait_for(|s| *s).await;
    }));

    let store = CentralStore::from_pool(pool);
    let tenant = TenantId::new("acme").unwrap();
    let client_id = store
        .add_tenant(&NewTenant {
            id: tenant.clone(),
            name: "Acme".into(),
            number: "0367".into(),
            region: "RU".into(),
            pbx: PbxConfig::Asterisk {
                host: "127.0.0.1".into(),
                port: sim_addr.port(),
                user,
                secret_env: "ACME_AMI_SECRET".into(),
                tls: false,
                // The simulator is the lab's Asterisk: chan_sip phones, `00` for abroad.
                dialplan: calldesk_central::AmiDialplan {
                    tech: "sip".into(),
                    context: "from-internal".into(),
                    international_prefix: Some("00".into()),
                },
            },
        })
        .await
        .unwrap();
    let hash = calldesk_central::password::hash_password(PASSWORD).unwrap();
    for (login, role, ext) in [
        ("ivan", Role::Operator, "101"),
        ("petr", Role::Operator, "102"),
        ("olga", Role::Operator, "103"),
        ("sam", Role::Supervisor, "201"),
    ] {
        store
            .add_operator(&NewOperator {
                tenant: tenant.clone(),
                login: login.into(),
                name: Some(login.into()),
                password_hash: hash.clone(),
                role,
                extension: Extension::new(ext).unwrap(),
                sip: None,
            })
            .await
            .unwrap();
    }
    let company = store
        .create_company(
            &tenant,
            &CompanyInput {
                name: "Horns and Hooves".into(),
                ..CompanyInput::default()
            },
        )
        .await
        .unwrap();
    let contact = store
        .create_contact(
            &tenant,
            &ContactInput {
                name: "Ostap Bender".into(),
                company_id: Some(company.id),
                phones: vec![CALLER.into()],
                ..ContactInput::default()
            },
        )
        .await
        .unwrap();

    let mut config = HubConfig::for_tests("unused");
    config.secrets = SecretEnv::default().with("ACME_AMI_SECRET", &secret);
    config.lease_every = Duration::from_millis(100);
    let (stop_hub, stop_rx) = watch::channel(false);
    let hub = Hub::start_with_store(config, store, stop_rx).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut stop_serve = stop_hub.subscribe();
    tokio::spawn(calldesk_hub::serve(hub.clone(), listener, async move {
        let _ = stop_serve.wait_for(|s| *s).await;
    }));
    assert!(
        hub.wait_until_held(&tenant, Duration::from_secs(10)).await,
        "the hub never took the tenant's PBX"
    );
    let http = calldesk_sim::mango::loopback_client_builder()
        .unwrap()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let s = Setup {
        hub,
        addr,
        http,
        sim: sim_handle,
        sim_addr,
        client_id,
        contact_id: contact.id,
        company_id: company.id,
        stop_hub,
        stop_sim,
        tenant,
    };
    // The AMI session is up (logged in, resynced) before any call is played.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let status = s.get_json("/api/status", None).await.1;
        if status["pbx"][0]["state"] == "connected" {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the PBX never connected: {status}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    s
}

impl Setup {
    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    async fn get_json(&self, path: &str, token: Option<&str>) -> (reqwest::StatusCode, Value) {
        let mut req = self.http.get(self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.unwrap();
        (resp.status(), resp.json().await.unwrap_or(Value::Null))
    }

    async fn post_json(
        &self,
        path: &str,
        token: &str,
        body: Value,
    ) -> (reqwest::StatusCode, Value) {
        let resp = self
            .http
            .post(self.url(path))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap();
        (resp.status(), resp.json().await.unwrap_or(Value::Null))
    }

    async fn login(&self, login: &str) -> String {
        let resp = self
            .http
            .post(self.url("/api/auth/login"))
            .json(&json!({"tenant": "acme", "login": login, "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), reqwest::StatusCode::OK, "login {login}");
        let body: Value = resp.json().await.unwrap();
        body["token"].as_str().unwrap().to_owned()
    }

    /// Connects a WebSocket client and checks the `hello` + `snapshot` greeting.
    async fn ws(&self, token: &str, role: &str, ext: &str) -> (Ws, Vec<HubCall>) {
        let url = format!("ws://{}/ws?token={token}", self.addr);
        let (mut ws, _) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(url))
            .await
            .expect("WebSocket connect timed out")
            .unwrap();
        match next_message(&mut ws).await {
            HubMessage::Hello {
                protocol,
                tenant,
                role: r,
                extension,
                ..
            } => {
                assert_eq!(protocol, calldesk_wire::HUB_PROTOCOL);
                assert_eq!(tenant, "acme");
                assert_eq!(r, role);
                assert_eq!(extension.as_deref(), Some(ext));
            }
            other => panic!("first message is not hello: {other:?}"),
        }
        match next_message(&mut ws).await {
            HubMessage::Snapshot { reason, calls, .. } => {
                assert_eq!(reason, SnapshotReason::Connect);
                (ws, calls)
            }
            other => panic!("second message is not a snapshot: {other:?}"),
        }
    }

    async fn shutdown(self) {
        let _ = self.stop_hub.send(true);
        let _ = self.stop_sim.send(true);
    }
}

async fn next_message(ws: &mut Ws) -> HubMessage {
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
fn call_of(m: &HubMessage) -> Option<(&'static str, &HubCall)> {
    match m {
        HubMessage::CallNew { call } => Some(("call-new", call)),
        HubMessage::CallUpdated { call } => Some(("call-updated", call)),
        HubMessage::CallEnded { call } => Some(("call-ended", call)),
        _ => None,
    }
}

/// Reads messages until one about call `id` of `kind` arrives; returns it and everything read
/// about that call before it.
async fn wait_call(ws: &mut Ws, id: &str, kind: &str) -> (HubCall, Vec<(String, HubCall)>) {
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

/// A second AMI session on the simulator: every message it receives, as text.
async fn ami_observer(
    addr: SocketAddr,
    user: &str,
    secret: &str,
) -> mpsc::UnboundedReceiver<String> {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(
            format!("Action: Login\r\nUsername: {user}\r\nSecret: {secret}\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut buf = String::new();
        let mut chunk = vec![0u8; 64 * 1024];
        loop {
            let n = match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            buf.push_str(&String::from_utf8_lossy(&chunk[..n]));
            while let Some(pos) = buf.find("\r\n\r\n") {
                let message: String = buf.drain(..pos + 4).collect();
                if tx.send(message).is_err() {
                    return;
                }
            }
        }
    });
    rx
}

fn header<'a>(message: &'a str, name: &str) -> Option<&'a str> {
    message.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

async fn expect_ami(
    rx: &mut mpsc::UnboundedReceiver<String>,
    what: &str,
    check: impl Fn(&str) -> bool,
) -> String {
    let mut seen = Vec::new();
    let found = tokio::time::timeout(WAIT, async {
        while let Some(m) = rx.recv().await {
            if check(&m) {
                return Some(m);
            }
            seen.push(m);
        }
        None
    })
    .await;
    match found {
        Ok(Some(m)) => m,
        _ => panic!(
            "the simulator never showed {what}; OriginateResponse/ChanSpy seen: {:#?}",
            seen.iter()
                .filter(|m| m.contains("Originate") || m.contains("ChanSpy"))
                .collect::<Vec<_>>()
        ),
    }
}

fn inbound(
    kind: ScenarioKind,
    caller: &str,
    ext: &str,
    ring_ms: u64,
    talk: Duration,
) -> ScenarioCall {
    ScenarioCall {
        kind,
        caller: caller.into(),
        did: "74951110000".into(),
        extension: ext.into(),
        ring: Duration::from_millis(ring_ms),
        talk,
    }
}

#[sqlx::test(migrator = "calldesk_central::MIGRATOR")]
async fn an_answered_inbound_call_reaches_the_right_rooms_and_the_store(pool: PgPool) {
    let s = setup(pool).await;
    let sup_token = s.login("sam").await;
    let ivan_token = s.login("ivan").await;
    let olga_token = s.login("olga").await;
    let (mut sup, calls) = s.ws(&sup_token, "supervisor", "201").await;
    assert!(calls.is_empty(), "{calls:?}");
    let (mut ivan, _) = s.ws(&ivan_token, "operator", "101").await;
    let (mut olga, _) = s.ws(&olga_token, "operator", "103").await;

    let id = s
        .sim
        .start_call(inbound(
            ScenarioKind::InboundAnswered,
            CALLER,
            "101",
            300,
            Duration::from_millis(800),
        ))
        .await
        .unwrap();

    // The supervisor gets the pop with the caller card, then the end of the answered call.
    let (new, _) = wait_call(&mut sup, &id, "call-new").await;
    assert_eq!(new.record.direction, "inbound");
    assert_eq!(new.record.from, CALLER);
    let card = new.caller.clone().expect("the pop carries the caller card");
    assert_eq!(card.number, CALLER);
    assert_eq!(
        card.contact.as_ref().map(|c| (c.id, c.name.as_str())),
        Some((s.contact_id, "Ostap Bender"))
    );
    assert_eq!(
        card.company.as_ref().map(|c| (c.id, c.name.as_str())),
        Some((s.company_id, "Horns and Hooves"))
    );
    let (ended, between) = wait_call(&mut sup, &id, "call-ended").await;
    assert_eq!(
        ended.record.status.as_deref(),
        Some("answered"),
        "{ended:?}"
    );
    assert_eq!(ended.record.answered_by, ["101"]);
    assert_eq!(
        ended.caller,
        Some(card.clone()),
        "the card stays on the call"
    );
    assert!(
        between
            .iter()
            .any(|(_, c)| c.state == calldesk_wire::CallStateView::Talking),
        "the supervisor never saw the call talking: {between:?}"
    );

    // Operator 101 took it: sees it from the pop to the end.
    let (mine, _) = wait_call(&mut ivan, &id, "call-new").await;
    assert_eq!(mine.caller, Some(card.clone()));
    let (mine_ended, _) = wait_call(&mut ivan, &id, "call-ended").await;
    assert_eq!(mine_ended.record.status.as_deref(), Some("answered"));

    // Operator 103 was not involved: the waiting pop goes to every operator, then exactly one
    // message saying someone else took it (so the pop can go away), then nothing. A second
    // waiting call is the barrier: the broadcast is ordered, so when 103 gets its pop, every
    // message about the first call has been delivered or filtered.
    let second = s
        .sim
        .start_call(inbound(
            ScenarioKind::InboundMissed,
            "+74957654321",
            "102",
            300,
            Duration::ZERO,
        ))
        .await
        .unwrap();
    let (pop, first_call) = {
        let mut first_call = Vec::new();
        loop {
            let m = next_message(&mut olga).await;
            match call_of(&m) {
                Some(("call-new", c)) if c.record.id == second => break (c.clone(), first_call),
                Some((k, c)) if c.record.id == id => first_call.push((k.to_owned(), c.clone())),
                _ => {}
            }
        }
    };
    assert_eq!(pop.record.from, "+74957654321");
    let taken = first_call.iter().position(|(_, c)| {
        !c.record.answered_by.is_empty() || c.state != calldesk_wire::CallStateView::Ringing
    });
    let taken = taken.expect("operator 103 was never told that someone took the call");
    assert_eq!(
        first_call[taken].1.record.answered_by,
        ["101"],
        "the pop goes away with the answer: {first_call:#?}"
    );
    assert!(
        first_call[..taken]
            .iter()
            .all(|(k, c)| k != "call-ended" && c.record.answered_by.is_empty()),
        "{first_call:#?}"
    );
    assert_eq!(
        first_call.len(),
        taken + 1,
        "operator 103 received the answered call's later updates: {first_call:#?}"
    );

    // The stored call: answered, with the card.
    let deadline = tokio::time::Instant::now() + WAIT;
    let stored = loop {
        let (status, page) = s.get_json("/api/calls", Some(&sup_token)).await;
        assert_eq!(status, reqwest::StatusCode::OK, "{page}");
        let found = page["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == id.as_str() && c["status"] == "answered")
            .cloned();
        if let Some(c) = found {
            break c;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the answered call was never listed: {page}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        stored["caller"]["contact"]["name"], "Ostap Bender",
        "{stored}"
    );
    assert_eq!(stored["answered_by"], json!(["101"]));
    // 103 cannot read it; 101 can.
    let (status, _) = s
        .get_json(&format!("/api/calls/{id}"), Some(&olga_token))
        .await;
    assert_eq!(status, reqwest::StatusCode::NOT_FOUND);
    let (status, body) = s
        .get_json(&format!("/api/calls/{id}"), Some(&ivan_token))
        .await;
    assert_eq!(status, reqwest::StatusCode::OK, "{body}");

    let (status, body) = s.get_json("/api/status", None).await;
    assert_eq!(status, reqwest::StatusCode::OK);
    assert_eq!(body["database"], "connected", "{body}");
    let pbx = &body["pbx"][0];
    assert_eq!(pbx["tenant"], "acme", "{body}");
    assert_eq!(pbx["kind"], "asterisk");
    assert_eq!(pbx["state"], "connected", "{body}");
    assert_eq!(pbx["held_here"], true, "{body}");
    assert!(s.hub.holds(&s.tenant));
    s.shutdown().await;
}

#[sqlx::test(migrator = "calldesk_central::MIGRATOR")]
async fn call_controls_reach_the_simulator_as_ami_actions(pool: PgPool) {
    let s = setup(pool).await;
    let defaults = AmiSimConfig::default();
    let mut observer = ami_observer(s.sim_addr, &defaults.username, &defaults.secret).await;
    expect_ami(&mut observer, "the observer's login", |m| {
        header(m, "Response") == Some("Success")
    })
    .await;
    let sup_token = s.login("sam").await;
    let ivan_token = s.login("ivan").await;
    let (mut sup, _) = s.ws(&sup_token, "supervisor", "201").await;

    // A live call answered by 101.
    let id = s
        .sim
        .start_call(inbound(
            ScenarioKind::InboundAnswered,
            CALLER,
            "101",
            100,
            Duration::from_secs(3600),
        ))
        .await
        .unwrap();
    loop {
        let (call, _) = wait_call(&mut sup, &id, "call-updated").await;
        if call.state == calldesk_wire::CallStateView::Talking {
            break;
        }
    }

    // A plain operator may not monitor.
    let (status, body) = s
        .post_json(
            &format!("/api/calls/{id}/monitor"),
            &ivan_token,
            json!({"operator": "101", "mode": "listen"}),
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::FORBIDDEN, "{body}");

    // The machine API: a wrong clientId is refused before anything reaches the PBX.
    let resp = s
        .http
        .get(s.url("/api/monitor?action=09&target=101&monitor_from=201&clientId=not-the-secret"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), reqwest::StatusCode::UNAUTHORIZED);
    assert_eq!(
        resp.json::<Value>().await.unwrap(),
        json!({"detail": "Invalid clientId"})
    );

    // The seed-compatible monitor: the supervisor's phone is originated into ChanSpy on 101.
    let resp = s
        .http
        .get(s.url(&format!(
            "/api/monitor?action=09&target=101&monitor_from=201&clientId={}",
            urlencode(&s.client_id)
        )))
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    let spy = expect_ami(&mut observer, "a ChanSpy originate", |m| {
        header(m, "Event") == Some("OriginateResponse")
            && header(m, "Application") == Some("ChanSpy")
    })
    .await;
    assert!(
        header(&spy, "Channel").is_some_and(|c| c.ends_with("/201") || c.contains("/201-")),
        "the spy call rings the wrong phone: {spy}"
    );
    assert!(
        header(&spy, "Data").is_some_and(|d| d.contains("/101-")),
        "ChanSpy is not on 101's channel: {spy}"
    );
    assert_eq!(
        header(&spy, "Response"),
        Some("Success"),
        "the simulator refused the spy call: {spy}\nhub said {status}: {body}"
    );
    assert_eq!(status, reqwest::StatusCode::OK, "{body}");
    assert_eq!(body["success"], true, "{body}");
    assert_eq!(body["action_name"], "подслушивание", "{body}");
    assert_eq!(body["call_id"], id.as_str(), "{body}");

    // Click-to-call between extensions, after the customer hung up.
    s.sim.hangup_call(&id).await.unwrap();
    wait_call(&mut sup, &id, "call-ended").await;
    let (status, body) = s
        .post_json("/api/calls/originate", &ivan_token, json!({"to": "102"}))
        .await;
    let originate = expect_ami(&mut observer, "an Originate from 101 to 102", |m| {
        header(m, "Event") == Some("OriginateResponse") && header(m, "Exten") == Some("102")
    })
    .await;
    assert!(
        header(&originate, "Channel").is_some_and(|c| c.ends_with("/101") || c.contains("/101-")),
        "{originate}"
    );
    assert_eq!(
        header(&originate, "Response"),
        Some("Success"),
        "the simulator refused the originate: {originate}\nhub said {status}: {body}"
    );
    assert_eq!(status, reqwest::StatusCode::OK, "{body}");
    assert_eq!(body["ok"], true, "{body}");
    // The PBX now has the internal call 101 → 102.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let live = s.sim.live_calls().await.unwrap();
        if live
            .iter()
            .any(|c| c.direction == "internal" && c.operators.iter().any(|o| o == "101"))
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no internal call from 101: {live:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    s.shutdown().await;
}

fn urlencode(s: &str) -> String {
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
