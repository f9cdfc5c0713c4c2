//! The hub end to end against the AMI simulator: a real PostgreSQL (`#[sqlx::test]`), the hub
//! serving on a loopback port, operators logged in over HTTP and connected over WebSocket, calls
//! played on the fake Asterisk, and call controls checked by what the simulator broadcasts to
//! a second, independent AMI session (the observer).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use calldesk_calls::TenantId;
use calldesk_central::{CentralStore, CompanyInput, ContactInput, PbxConfig, Role};
use calldesk_hub::SecretEnv;
use calldesk_sim::ami::{AmiSimConfig, AmiSimHandle, AmiSimulator, ScenarioCall, ScenarioKind};
use calldesk_wire::{HubCall, HubMessage, SnapshotReason};
use common::{Served, WAIT, Ws, call_of, next_message, urlencode, wait_call};
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};

const PASSWORD: &str = "s3cret-password";
const CALLER: &str = "+74951234567";

struct Setup {
    /// The tenant's recordings folder (the PBX's MixMonitor spool, as mounted on the hub).
    recordings_dir: std::path::PathBuf,
    served: Served,
    http: reqwest::Client,
    sim: AmiSimHandle,
    sim_addr: SocketAddr,
    client_id: String,
    contact_id: i64,
    company_id: i64,
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
    let recordings_dir = std::env::temp_dir().join(format!(
        "calldesk-ami-spool-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(&recordings_dir).unwrap();
    let pbx = PbxConfig::Asterisk {
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
            // The lab has the hold helper (the simulator plays it).
            hold_context: Some("calldesk-hold".into()),
            recordings_dir: Some(recordings_dir.display().to_string()),
        },
    };
    let client_id = common::add_tenant(&store, "acme", "Acme", "0367", pbx).await;
    common::add_operators(
        &store,
        "acme",
        PASSWORD,
        &[
            ("ivan", Role::Operator, "101"),
            ("petr", Role::Operator, "102"),
            ("olga", Role::Operator, "103"),
            ("sam", Role::Supervisor, "201"),
        ],
    )
    .await;
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

    let secrets = SecretEnv::default().with("ACME_AMI_SECRET", &secret);
    let served = common::serve(common::config(secrets), &store).await;
    assert!(
        served
            .hub
            .wait_until_held(&tenant, Duration::from_secs(10))
            .await,
        "the hub never took the tenant's PBX"
    );
    let s = Setup {
        recordings_dir,
        served,
        http: common::http(),
        sim: sim_handle,
        sim_addr,
        client_id,
        contact_id: contact.id,
        company_id: company.id,
        stop_sim,
        tenant,
    };
    // The AMI session is up (logged in, resynced) before any call is played.
    eventually(async || {
        let status = s.get_json("/api/status", None).await.1;
        if status["pbx"][0]["state"] == "connected" {
            return Ok(());
        }
        Err(format!("the PBX never connected: {status}"))
    })
    .await;
    s
}

/// Tries `check` every 50 ms until it gives `Ok`; fails with its last `Err` after [`WAIT`].
async fn eventually<T>(mut check: impl AsyncFnMut() -> Result<T, String>) -> T {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match check().await {
            Ok(done) => return done,
            Err(why) => assert!(tokio::time::Instant::now() < deadline, "{why}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

impl Setup {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.served.base())
    }

    async fn get_json(&self, path: &str, token: Option<&str>) -> (reqwest::StatusCode, Value) {
        common::send(self.http.get(self.url(path)), token).await
    }

    async fn post_json(
        &self,
        path: &str,
        token: &str,
        body: Value,
    ) -> (reqwest::StatusCode, Value) {
        common::send(self.http.post(self.url(path)).json(&body), Some(token)).await
    }

    async fn login(&self, login: &str) -> String {
        common::login(&self.http, &self.served.base(), "acme", login, PASSWORD).await
    }

    /// Logs `login` in, connects a WebSocket client with the token and checks the `hello` +
    /// `snapshot` greeting; returns the token, the client and the snapshot's calls.
    async fn connect_as(&self, login: &str, role: &str, ext: &str) -> (String, Ws, Vec<HubCall>) {
        let token = self.login(login).await;
        let mut ws = common::connect(self.served.addr, &token).await;
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
                (token, ws, calls)
            }
            other => panic!("second message is not a snapshot: {other:?}"),
        }
    }

    /// Plays an inbound call to the DID rung at `ext` for `ring_ms`, then (if answered) talked
    /// for `talk`; returns its id.
    async fn inbound(
        &self,
        kind: ScenarioKind,
        caller: &str,
        ext: &str,
        ring_ms: u64,
        talk: Duration,
    ) -> String {
        self.sim
            .start_call(ScenarioCall {
                kind,
                caller: caller.into(),
                did: "74951110000".into(),
                extension: ext.into(),
                ring: Duration::from_millis(ring_ms),
                talk,
            })
            .await
            .unwrap()
    }

    async fn shutdown(self) {
        let _ = self.served.stop.send(true);
        let _ = self.stop_sim.send(true);
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

/// Whether an AMI channel (`SIP/101`, `SIP/101-0000002a`) is on extension `ext`.
fn on_extension(channel: Option<&str>, ext: &str) -> bool {
    channel.is_some_and(|c| c.ends_with(&format!("/{ext}")) || c.contains(&format!("/{ext}-")))
}

/// The simulator answered the hub's action `what` (its `OriginateResponse` is `response`) with
/// success, and the hub said 200.
fn assert_accepted(what: &str, response: &str, status: reqwest::StatusCode, body: &Value) {
    assert_eq!(
        header(response, "Response"),
        Some("Success"),
        "the simulator refused {what}: {response}\nhub said {status}: {body}"
    );
    assert_eq!(status, reqwest::StatusCode::OK, "{body}");
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

#[sqlx::test(migrator = "calldesk_central::MIGRATOR")]
async fn an_answered_inbound_call_reaches_the_right_rooms_and_the_store(pool: PgPool) {
    let s = setup(pool).await;
    let (sup_token, mut sup, calls) = s.connect_as("sam", "supervisor", "201").await;
    assert!(calls.is_empty(), "{calls:?}");
    let (ivan_token, mut ivan, _) = s.connect_as("ivan", "operator", "101").await;
    let (olga_token, mut olga, _) = s.connect_as("olga", "operator", "103").await;

    let id = s
        .inbound(
            ScenarioKind::InboundAnswered,
            CALLER,
            "101",
            300,
            Duration::from_millis(800),
        )
        .await;

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
    // The dialplan records every inbound call (MixMonitor): its file is in the spool when the
    // call ends (a try before that finds no file and is repeated).
    let file = ended
        .record
        .recordings
        .first()
        .cloned()
        .expect("the call was recorded");
    let audio: Vec<u8> = (0..48_000u32).map(|i| (i % 253) as u8).collect();
    let name = file.rsplit('/').next().unwrap();
    std::fs::write(s.recordings_dir.join(name), &audio).unwrap();
    // Once the call has ended the hub stores its recording by itself, under the file's name.
    let row = eventually(async || {
        let rows = s
            .served
            .hub
            .store()
            .recordings_of(&s.tenant, &id)
            .await
            .unwrap();
        match rows.first() {
            Some(r) if r.state == calldesk_central::RecordingState::Stored => Ok(r.clone()),
            other => Err(format!("recording not stored: {other:?}")),
        }
    })
    .await;
    assert_eq!(row.name, file);
    assert_eq!(row.size_bytes, Some(48_000));
    assert!(
        row.store_key.ends_with(&format!("/{name}")),
        "{}",
        row.store_key
    );
    let key = calldesk_media::RecordingKey::parse(&row.store_key).unwrap();
    let calldesk_media::RecordingStore::Local(local) = s.served.hub.recordings() else {
        panic!("the test hub keeps recordings in a folder")
    };
    assert_eq!(std::fs::read(local.path(&key)).unwrap(), audio);
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

    // Operator 103 was not involved: nothing about the first call reaches them. A second call
    // that rings 103 is the barrier: its pop comes after every message about the first call
    // (one runtime publishes in order), so anything 103 got about the first call is there.
    let second = s
        .inbound(
            ScenarioKind::InboundMissed,
            "+74957654321",
            "103",
            300,
            Duration::ZERO,
        )
        .await;
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
    assert!(pop.rang.iter().any(|e| e == "103"), "{pop:?}");
    assert!(
        first_call.is_empty(),
        "operator 103 received a call that never concerned them: {first_call:#?}"
    );

    // The stored call: answered, with the card.
    let stored = eventually(async || {
        let (status, page) = s.get_json("/api/calls", Some(&sup_token)).await;
        assert_eq!(status, reqwest::StatusCode::OK, "{page}");
        let found = page["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == id.as_str() && c["status"] == "answered")
            .cloned();
        found.ok_or_else(|| format!("the answered call was never listed: {page}"))
    })
    .await;
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
    assert!(s.served.hub.holds(&s.tenant));
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
    let (_, mut sup, _) = s.connect_as("sam", "supervisor", "201").await;
    let ivan_token = s.login("ivan").await;

    // A live call answered by 101.
    let id = s
        .inbound(
            ScenarioKind::InboundAnswered,
            CALLER,
            "101",
            100,
            Duration::from_secs(3600),
        )
        .await;
    loop {
        let (call, _) = wait_call(&mut sup, &id, "call-updated").await;
        if call.state == calldesk_wire::CallStateView::Talking {
            break;
        }
    }

    // Hold: the customer hears music on hold at the PBX, and the call shows it.
    let (status, body) = s
        .post_json(
            &format!("/api/calls/{id}/hold"),
            &ivan_token,
            json!({"on": true}),
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::OK, "{body}");
    loop {
        let (call, _) = wait_call(&mut sup, &id, "call-updated").await;
        if call.on_hold {
            break;
        }
    }
    let live = s.sim.live_calls().await.unwrap();
    assert_eq!(live[0].state, "held", "{live:?}");
    let (status, body) = s
        .post_json(
            &format!("/api/calls/{id}/hold"),
            &ivan_token,
            json!({"on": false}),
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::OK, "{body}");
    loop {
        let (call, _) = wait_call(&mut sup, &id, "call-updated").await;
        if !call.on_hold {
            break;
        }
    }
    assert_eq!(s.sim.live_calls().await.unwrap()[0].state, "talking");

    // Touch tones: out on the customer's channel, in order; bad tones are refused before AMI.
    let (status, body) = s
        .post_json(
            &format!("/api/calls/{id}/dtmf"),
            &ivan_token,
            json!({"digits": "4#"}),
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::OK, "{body}");
    let live = s.sim.live_calls().await.unwrap();
    assert_eq!(live[0].dtmf.len(), 1, "{live:?}");
    assert!(
        live[0].dtmf[0].starts_with("SIP/trunk-") && live[0].dtmf[0].ends_with(":4#"),
        "{live:?}"
    );
    let (status, body) = s
        .post_json(
            &format!("/api/calls/{id}/dtmf"),
            &ivan_token,
            json!({"digits": "4\r\nAction: Hangup"}),
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(s.sim.live_calls().await.unwrap()[0].dtmf, live[0].dtmf);

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
    let (status, body) = s
        .get_json(
            "/api/monitor?action=09&target=101&monitor_from=201&clientId=not-the-secret",
            None,
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::UNAUTHORIZED);
    assert_eq!(body, json!({"detail": "Invalid clientId"}));

    // The seed-compatible monitor: the supervisor's phone is originated into ChanSpy on 101.
    let (status, body) = s
        .get_json(
            &format!(
                "/api/monitor?action=09&target=101&monitor_from=201&clientId={}",
                urlencode(&s.client_id)
            ),
            None,
        )
        .await;
    let spy = expect_ami(&mut observer, "a ChanSpy originate", |m| {
        header(m, "Event") == Some("OriginateResponse")
            && header(m, "Application") == Some("ChanSpy")
    })
    .await;
    assert!(
        on_extension(header(&spy, "Channel"), "201"),
        "the spy call rings the wrong phone: {spy}"
    );
    assert!(
        header(&spy, "Data").is_some_and(|d| d.contains("/101-")),
        "ChanSpy is not on 101's channel: {spy}"
    );
    assert_accepted("the spy call", &spy, status, &body);
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
        on_extension(header(&originate, "Channel"), "101"),
        "{originate}"
    );
    assert_accepted("the originate", &originate, status, &body);
    assert_eq!(body["ok"], true, "{body}");
    // The PBX now has the internal call 101 → 102.
    eventually(async || {
        let live = s.sim.live_calls().await.unwrap();
        if live
            .iter()
            .any(|c| c.direction == "internal" && c.operators.iter().any(|o| o == "101"))
        {
            return Ok(());
        }
        Err(format!("no internal call from 101: {live:?}"))
    })
    .await;
    s.shutdown().await;
}
