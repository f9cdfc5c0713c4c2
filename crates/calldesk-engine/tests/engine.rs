//! The Demo profile end to end: simulator on loopback → AMI session → tracker → call book →
//! events and the SQLite history.

// Test helpers may panic on bad fixtures: that is a failed test, not a crash.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use calldesk_engine::{Engine, EngineConfig, EngineEvent, ProfileConfig};
use calldesk_wire::{CallStateView, ConnectionState, ProfileKind};

/// An engine in the Direct profile against the AMI at `addr`.
async fn start_direct(
    addr: &str,
    username: impl Into<String>,
    secret: impl Into<String>,
    dir: &std::path::Path,
) -> calldesk_engine::EngineHandle {
    Engine::start(EngineConfig {
        profile: ProfileConfig::Direct {
            addr: addr.to_owned(),
            credentials: calldesk_ami::AmiCredentials {
                username: username.into(),
                secret: secret.into(),
            },
            report_to: None,
        },
        data_dir: dir.to_owned(),
        region: "RU".into(),
        dialplan: calldesk_engine::DialplanConfig::default(),
        seat: calldesk_engine::Seat::default(),
    })
    .await
    .unwrap()
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("calldesk-engine-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_calls_pop_end_and_land_in_history() {
    let dir = temp_dir("demo");
    let engine = Engine::start(EngineConfig {
        profile: ProfileConfig::Demo {
            every: Duration::from_millis(300),
        },
        data_dir: dir.clone(),
        region: "RU".into(),
        dialplan: calldesk_engine::DialplanConfig::default(),
        seat: calldesk_engine::Seat::default(),
    })
    .await
    .unwrap();
    let mut events = engine.subscribe();
    assert_eq!(engine.connection_status().profile, ProfileKind::Demo);

    let first_caller = calldesk_sim::demo::demo_caller(0);
    let mut connected = engine.connection_status().state == ConnectionState::Connected;
    let mut rang = false;
    let mut ended = Vec::new();
    let mut statuses = std::collections::BTreeSet::new();
    // The demo cycles answered, missed, busy: all three must come out of the tracker.
    tokio::time::timeout(Duration::from_secs(30), async {
        while statuses.len() < 3 {
            match events.recv().await.unwrap() {
                EngineEvent::ConnectionChanged(s) => {
                    connected |= s.state == ConnectionState::Connected
                }
                EngineEvent::CallUpdated(call) => {
                    if call.from.e164.as_deref() == Some(first_caller.as_str())
                        && call.state == CallStateView::Ringing
                    {
                        rang = true;
                    }
                    if call.state == CallStateView::Ended {
                        statuses.insert(format!("{:?}", call.status));
                        ended.push(*call);
                    }
                }
                EngineEvent::Presence(_)
                | EngineEvent::IdentityChanged(_)
                | EngineEvent::CallbacksChanged
                | EngineEvent::SyncChanged(_)
                | EngineEvent::HistoryChanged => {}
            }
        }
    })
    .await
    .unwrap_or_else(|_| {
        panic!("demo calls should end answered, missed and busy; saw {statuses:?}")
    });
    assert!(connected, "the engine never reported a connected PBX");
    assert!(rang, "the first demo call never rang");
    let want: std::collections::BTreeSet<String> = ["Some(Answered)", "Some(Missed)", "Some(Busy)"]
        .into_iter()
        .map(String::from)
        .collect();
    assert_eq!(statuses, want);

    // Ended calls are in the history, newest first, after any live ones.
    let snapshot = engine.calls_snapshot().await.unwrap();
    let history: Vec<_> = snapshot
        .iter()
        .filter(|c| c.state == CallStateView::Ended)
        .collect();
    for call in &ended {
        assert!(
            history.contains(&call),
            "ended call {} missing from the snapshot",
            call.id
        );
    }
    // After the call, on this desk: a note and a disposition, read back.
    let call = &ended[0].id;
    let note = engine.add_note(call, "call back tomorrow").await.unwrap();
    engine.set_disposition(call, "callback").await.unwrap();
    assert_eq!(
        engine.after_call(call).await.unwrap(),
        calldesk_wire::AfterCall {
            notes: vec![note.clone()],
            disposition: Some("callback".into()),
            tags: vec![],
        }
    );
    let tags = engine
        .set_tags(call, &["VIP".into(), " vip".into(), "ремонт".into()])
        .await
        .unwrap();
    assert_eq!(tags, ["vip", "ремонт"]);
    assert_eq!(engine.after_call(call).await.unwrap().tags, tags);
    assert_eq!(
        engine
            .set_tags(call, &["a b".into()])
            .await
            .unwrap_err()
            .code(),
        "invalid"
    );

    // The missed callers are on this desk's worklist; claim one, then close it.
    let missed = ended
        .iter()
        .find(|c| c.status == Some(calldesk_wire::CallStatusView::Missed))
        .unwrap();
    let number = missed.from.e164.clone().unwrap();
    let list = engine.callbacks().await.unwrap();
    let item = list.iter().find(|c| c.number == number).unwrap();
    assert_eq!((item.missed, item.claimed_by.as_deref()), (1, None));
    // shown as the pop shows the caller (`+7 495 …`)
    assert_eq!(item.display, missed.from.display);
    let item = engine.claim_callback(&number, true).await.unwrap().unwrap();
    assert_eq!(item.claimed_by.as_deref(), Some("me"));
    assert_eq!(
        engine
            .close_callback(&number, "done")
            .await
            .unwrap_err()
            .code(),
        "invalid"
    );
    engine.close_callback(&number, "reached").await.unwrap();
    assert!(
        !engine
            .callbacks()
            .await
            .unwrap()
            .iter()
            .any(|c| c.number == number)
    );
    let e = engine.claim_callback(&number, true).await.unwrap_err();
    assert_eq!(e.code(), "invalid", "{e}");
    assert_eq!(
        engine.add_note(call, "   ").await.unwrap_err().code(),
        "invalid"
    );
    engine.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn unreachable_pbx_reports_reconnecting_with_the_reason() {
    // A port nothing listens on: bind, read the port, drop the listener.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = temp_dir("down");
    let engine = start_direct(&format!("127.0.0.1:{port}"), "crm", "s3cret", &dir).await;
    let mut events = engine.subscribe();
    let status = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let EngineEvent::ConnectionChanged(s) = events.recv().await.unwrap() {
                return s;
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(status.state, ConnectionState::Reconnecting);
    let detail = status.detail.unwrap();
    assert!(detail.contains("cannot connect to AMI"), "{detail}");
    // The handle still answers while the PBX is down.
    assert!(engine.calls_snapshot().await.unwrap().is_empty());
    engine.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn every_demo_caller_is_a_valid_number() {
    let plan = calldesk_calls::NumberPlan::new("RU").unwrap();
    let bad: Vec<String> = (0..500)
        .map(calldesk_sim::demo::demo_caller)
        .filter(|n| plan.parse(n).is_err())
        .collect();
    assert!(
        bad.is_empty(),
        "demo callers that are not valid numbers: {bad:?}"
    );
}

#[tokio::test]
async fn a_rejected_login_says_so_without_the_secret() {
    let (addr, _, _stop) = start_sim("127.0.0.1:0".parse().unwrap()).await;
    let dir = temp_dir("rejected");
    let engine = start_direct(&addr.to_string(), "calldesk", "s3cret-wrong", &dir).await;
    let mut events = engine.subscribe();
    // A refused login is final: retrying would only get the address banned (fail2ban).
    let status = wait_for_state(&mut events, ConnectionState::Disconnected).await;
    let detail = status.detail.unwrap_or_default();
    assert!(detail.contains("rejected the login"), "{detail}");
    assert!(detail.contains("Check the AMI user and secret"), "{detail}");
    assert!(detail.contains("Authentication failed"), "{detail}");
    assert!(!detail.contains("s3cret"), "{detail}");
    engine.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// Waits for the next connection status in `state`.
async fn wait_for_state(
    events: &mut tokio::sync::broadcast::Receiver<EngineEvent>,
    state: ConnectionState,
) -> calldesk_wire::ConnectionStatus {
    tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            if let EngineEvent::ConnectionChanged(s) = events.recv().await.unwrap()
                && s.state == state
            {
                return s;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no {state:?} status within 15 s"))
}

/// Starts a simulator on `addr`; dropping the returned sender stops it and closes its sessions.
async fn start_sim(
    addr: std::net::SocketAddr,
) -> (
    std::net::SocketAddr,
    calldesk_sim::ami::AmiSimHandle,
    tokio::sync::oneshot::Sender<()>,
) {
    let sim = calldesk_sim::ami::AmiSimulator::bind(addr, Default::default())
        .await
        .unwrap();
    let (addr, handle) = (sim.local_addr(), sim.handle());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(sim.run(async move {
        let _ = stopped.await;
    }));
    (addr, handle, stop)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnects_by_itself_when_the_pbx_comes_back() {
    let (addr, first_pbx, stop) = start_sim("127.0.0.1:0".parse().unwrap()).await;
    let dir = temp_dir("restart");
    let defaults = calldesk_sim::ami::AmiSimConfig::default();
    let engine = start_direct(&addr.to_string(), defaults.username, defaults.secret, &dir).await;
    let mut events = engine.subscribe();
    if engine.connection_status().state != ConnectionState::Connected {
        wait_for_state(&mut events, ConnectionState::Connected).await;
    }

    // A call is ringing when the PBX goes away.
    first_pbx.play(calldesk_sim::ami::ScenarioCall {
        kind: calldesk_sim::ami::ScenarioKind::InboundAnswered,
        caller: "+74951234567".into(),
        did: "101".into(),
        extension: "101".into(),
        ring: Duration::from_secs(60),
        talk: Duration::from_secs(60),
    });
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let EngineEvent::CallUpdated(call) = events.recv().await.unwrap()
                && call.state == CallStateView::Ringing
                && call.operator.is_some()
            {
                return;
            }
        }
    })
    .await
    .expect("the first call should ring");

    // The PBX goes away: the engine says so and keeps serving the UI.
    drop(stop);
    let lost = wait_for_state(&mut events, ConnectionState::Reconnecting).await;
    assert!(lost.detail.is_some(), "a lost connection must say why");
    assert!(engine.calls_snapshot().await.is_ok());

    // It comes back on the same address: the engine reconnects without being asked, and calls
    // flow again.
    let (_, handle, _stop) = start_sim(addr).await;
    wait_for_state(&mut events, ConnectionState::Connected).await;
    // Nothing more will be heard of the call that rang on the lost session: it is closed, not
    // left ringing forever.
    let live = engine.calls_snapshot().await.unwrap();
    assert!(
        live.iter().all(|c| c.state == CallStateView::Ended),
        "calls left live after the reconnect: {live:?}"
    );
    // Uniqueids are `<epoch second>.<counter>` and a restarted PBX counts from 0 again; real
    // Asterisk takes longer than a second to restart, so ids never repeat. The simulator restarts
    // at once: let the second change so the new call does not reuse the stale call's id.
    let second = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    tokio::time::sleep(Duration::from_nanos(
        1_000_000_000 - u64::from(second.subsec_nanos()) + 10_000_000,
    ))
    .await;
    handle.play(calldesk_sim::ami::ScenarioCall {
        kind: calldesk_sim::ami::ScenarioKind::InboundMissed,
        caller: "+78123889002".into(),
        did: "101".into(),
        extension: "101".into(),
        ring: Duration::from_millis(100),
        talk: Duration::ZERO,
    });
    let ended = tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            if let EngineEvent::CallUpdated(call) = events.recv().await.unwrap()
                && call.state == CallStateView::Ended
                && call.from.raw == "+78123889002"
            {
                return call;
            }
        }
    })
    .await
    .expect("a call after the reconnect should be tracked");
    assert_eq!(ended.from.display, "+7 812 388-90-02");
    assert_eq!(ended.status, Some(calldesk_wire::CallStatusView::Missed));
    engine.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}
