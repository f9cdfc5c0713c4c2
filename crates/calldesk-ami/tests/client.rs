//! AmiClient over real sockets against scripted servers that replay the real captures.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::Duration;

use calldesk_ami::{
    ActionError, AmiClient, AmiClientConfig, AuthMethod, ClientEvent, Completion, ConnState,
    EventMask,
};
use calldesk_ami_proto::Outgoing;
use support::*;

fn originate() -> Outgoing {
    Outgoing::action("Originate")
        .unwrap()
        .header("Channel", "SIP/101")
        .unwrap()
        .header("Context", "from-internal")
        .unwrap()
        .header("Exten", "004930123456")
        .unwrap()
        .header("Priority", "1")
        .unwrap()
        .header("Async", "true")
        .unwrap()
}

fn action(name: &str) -> Outgoing {
    Outgoing::action(name).unwrap()
}

#[tokio::test]
async fn md5_login_replays_capture_j1_conn3() {
    let (listener, addr) = listen().await;
    let server = tokio::spawn(async move {
        let j1 = Capture::load("j1_login_failure.conn3_md5_challenge");
        let mut p = Peer::accept(&listener).await;
        p.send(&j1.banner).await;
        let challenge = p.expect("Challenge").await;
        assert_eq!(challenge.get_str("AuthType").as_deref(), Some("MD5"));
        p.send(&with_id(&j1.messages[0], &id(&challenge))).await;
        let login = p.expect("Login").await;
        // Exactly the key the real client sent for `Challenge: 178112119`.
        assert_eq!(
            login.get_str("Key").as_deref(),
            Some("818c947a53b39481dd042be1c29f9eca")
        );
        assert_eq!(login.get_str("AuthType").as_deref(), Some("MD5"));
        assert_eq!(login.get_str("Username").as_deref(), Some("crm"));
        assert_eq!(login.get_str("Events").as_deref(), Some("off"));
        assert!(login.get("Secret").is_none(), "the secret crossed the wire");
        p.send(&with_id(&j1.messages[1], &id(&login))).await;
        p.resync_empty().await;
        p.serve().await;
    });
    let config = AmiClientConfig {
        auth: AuthMethod::Md5,
        events: EventMask::off(),
        ..config(&addr)
    };
    let (client, mut events) = AmiClient::start(config, never());
    match next_event(&mut events).await {
        ClientEvent::Resync {
            epoch,
            items,
            complete,
            ..
        } => {
            assert_eq!((epoch, items.len(), complete), (1, 0, true));
        }
        other => panic!("expected the resync first, got {other:?}"),
    }
    let state = wait_state(&client, "connected", |s| {
        matches!(s, ConnState::Connected { .. })
    })
    .await;
    assert_eq!(
        state,
        ConnState::Connected {
            banner: "Asterisk Call Manager/9.0.0".to_owned()
        }
    );
    // The Ping reply of the same capture completes a Ping.
    let pong = client
        .send(action("Ping"), Completion::Response, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(pong.response.get_str("Ping").as_deref(), Some("Pong"));
    drop(client);
    server.await.unwrap();
}

#[tokio::test]
async fn a_wrong_secret_is_final_and_never_logged() {
    let (listener, addr) = listen().await;
    let server = tokio::spawn(async move {
        let j1 = Capture::load("j1_login_failure.conn3_md5_challenge");
        let failed = Capture::load("j1_login_failure");
        let mut p = Peer::accept(&listener).await;
        p.send(&j1.banner).await;
        let challenge = p.expect("Challenge").await;
        p.send(&with_id(&j1.messages[0], &id(&challenge))).await;
        let login = p.expect("Login").await;
        assert_ne!(
            login.get_str("Key").as_deref(),
            Some("818c947a53b39481dd042be1c29f9eca")
        );
        // Asterisk answers `Authentication failed` and closes.
        p.send(&with_id(&failed.messages[1], &id(&login))).await;
        drop(p);
        // No second attempt.
        tokio::time::timeout(Duration::from_millis(300), listener.accept())
            .await
            .is_err()
    });
    let mut config = AmiClientConfig {
        auth: AuthMethod::Md5,
        ..config(&addr)
    };
    config.credentials.secret = "hunter2".to_owned();
    assert!(!format!("{config:?}").contains("hunter2"));
    let (client, _events) = AmiClient::start(config, never());
    let state = wait_state(&client, "rejected", |s| {
        matches!(s, ConnState::LoginRejected { .. })
    })
    .await;
    assert_eq!(
        state,
        ConnState::LoginRejected {
            message: "Authentication failed".to_owned()
        }
    );
    assert!(server.await.unwrap(), "the client retried a rejected login");
    let err = client
        .send(action("Ping"), Completion::Response, Duration::from_secs(1))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ActionError::NotConnected { reason } if reason.contains("Authentication failed")),
        "{err}"
    );
}

#[tokio::test]
async fn resync_comes_first_and_events_held_meanwhile_follow_in_order() {
    let (listener, addr) = listen().await;
    let j3 = Capture::load("j3_coreshowchannels_active_call");
    let a = Capture::load("a_inbound_answered");
    let newchannel = a.find("Event", "Newchannel");
    let hangup = a.find("Event", "Hangup");
    let server = tokio::spawn(async move {
        let mut p = Peer::accept(&listener).await;
        // FullyBooted and SuccessfulAuth arrive right after the login reply.
        p.login_plain().await;
        let csc = p.expect("CoreShowChannels").await;
        let qs = p.expect("QueueStatus").await;
        // An event while the lists are being read.
        p.send(&newchannel).await;
        p.send(&list_with_id(&j3.reply_to("j3-010"), &id(&qs)))
            .await;
        p.send(&list_with_id(&j3.reply_to("j3-002"), &id(&csc)))
            .await;
        p.send(&hangup).await;
        // A user's list action: Status, answered with j3's list (2 items, StatusComplete).
        let status = p.expect("Status").await;
        p.send(&list_with_id(&j3.reply_to("j3-003"), &id(&status)))
            .await;
        p.serve().await;
    });
    let config = AmiClientConfig {
        resync_queue_status: true,
        ..config(&addr)
    };
    let (client, mut events) = AmiClient::start(config, never());
    let ClientEvent::Resync {
        epoch,
        items,
        complete,
        ..
    } = next_event(&mut events).await
    else {
        panic!("the resync must come first");
    };
    assert_eq!(epoch, 1);
    assert!(complete);
    let names: Vec<String> = items
        .iter()
        .map(|m| m.event().unwrap().into_owned())
        .collect();
    assert_eq!(
        names,
        [
            "QueueParams",
            "QueueMember",
            "QueueMember",
            "CoreShowChannel",
            "CoreShowChannel"
        ]
    );
    let channels: Vec<String> = items
        .iter()
        .filter_map(|m| m.get_str("Channel").map(|c| c.into_owned()))
        .collect();
    assert_eq!(channels, ["SIP/101-00000027", "SIP/trunk-00000026"]);
    let mut after = Vec::new();
    for _ in 0..4 {
        after.push(name_of(&next_event(&mut events).await));
    }
    assert_eq!(
        after,
        ["FullyBooted", "SuccessfulAuth", "Newchannel", "Hangup"]
    );
    wait_state(&client, "connected", |s| {
        matches!(s, ConnState::Connected { .. })
    })
    .await;
    let status = client
        .send(
            action("Status"),
            Completion::EventList,
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    assert_eq!(status.items.len(), 2);
    assert!(
        status
            .items
            .iter()
            .all(|m| m.event().as_deref() == Some("Status"))
    );
    let complete = status.event.unwrap();
    assert_eq!(complete.event().as_deref(), Some("StatusComplete"));
    assert_eq!(complete.get_str("ListItems").as_deref(), Some("2"));
    drop(client);
    server.await.unwrap();
}

#[tokio::test]
async fn async_originate_completes_with_the_originate_response_of_its_action_id() {
    let (listener, addr) = listen().await;
    let h1 = Capture::load("h1_click_to_call");
    let h2 = Capture::load("h2_click_to_call_agent_busy");
    let server = tokio::spawn(async move {
        let mut p = Peer::accept(&listener).await;
        p.login_plain().await;
        p.resync_empty().await;
        for capture in [&h1, &h2] {
            let prefix = if std::ptr::eq(capture, &h1) {
                "h1"
            } else {
                "h2"
            };
            let o = p.expect("Originate").await;
            // Everything the capture received from the Originate's reply up to its
            // OriginateResponse: the reply, the call's events, then the OriginateResponse.
            let start = capture.position(0, "ActionID", &format!("{prefix}-002"));
            let end = capture.position(0, "Event", "OriginateResponse");
            for (i, m) in capture.messages[start..=end].iter().enumerate() {
                if i == 0 || start + i == end {
                    p.send(&with_id(m, &id(&o))).await;
                } else {
                    p.send(m).await;
                }
            }
        }
        p.serve().await;
    });
    let (client, mut events) = AmiClient::start(config(&addr), never());
    assert_eq!(name_of(&next_event(&mut events).await), "Resync");
    let answered = client
        .send(originate(), Completion::ORIGINATE, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(
        answered.response.get_str("Message").as_deref(),
        Some("Originate successfully queued")
    );
    let event = answered.event.unwrap();
    assert_eq!(event.get_str("Response").as_deref(), Some("Success"));
    assert_eq!(event.get_str("Reason").as_deref(), Some("4"));
    assert_eq!(event.get_str("Uniqueid").as_deref(), Some("1795260035.68"));
    // The call's own events went to the stream, and so did the OriginateResponse: the tracker
    // needs it to know how the click-to-call ended.
    let mut seen = Vec::new();
    while let Ok(Some(ev)) = tokio::time::timeout(Duration::from_millis(200), events.recv()).await {
        seen.push(name_of(&ev));
    }
    assert!(seen.contains(&"Newchannel".to_owned()), "{seen:?}");
    assert_eq!(
        seen.iter().filter(|e| *e == "OriginateResponse").count(),
        1,
        "{seen:?}"
    );

    let busy = client
        .send(originate(), Completion::ORIGINATE, Duration::from_secs(5))
        .await
        .unwrap();
    let event = busy.event.unwrap();
    assert_eq!(event.get_str("Response").as_deref(), Some("Failure"));
    assert_eq!(event.get_str("Reason").as_deref(), Some("5"));
    drop(client);
    server.await.unwrap();
}

#[tokio::test]
async fn errors_timeouts_and_a_late_reply_that_goes_to_the_event_stream() {
    let (listener, addr) = listen().await;
    let j2 = Capture::load("j2_errors_unknown_action");
    let h1 = Capture::load("h1_click_to_call");
    let server = tokio::spawn(async move {
        let mut p = Peer::accept(&listener).await;
        p.login_plain().await;
        p.resync_empty().await;
        // Hangup of a missing channel: Asterisk's own error text.
        let hangup = p.expect("Hangup").await;
        p.send(&list_with_id(&j2.reply_to("j2-004"), &id(&hangup)))
            .await;
        // Originate: queued at once, the OriginateResponse comes after the client gave up.
        let o = p.expect("Originate").await;
        p.send(&list_with_id(&h1.reply_to("h1-002")[..1], &id(&o)))
            .await;
        tokio::time::sleep(Duration::from_millis(400)).await;
        p.send(&with_id(&h1.find("Event", "OriginateResponse"), &id(&o)))
            .await;
        // CoreStatus is never answered.
        p.expect("CoreStatus").await;
        p.serve().await;
    });
    let (client, mut events) = AmiClient::start(config(&addr), never());
    assert_eq!(name_of(&next_event(&mut events).await), "Resync");

    let hangup = action("Hangup")
        .header("Channel", "SIP/999-00000000")
        .unwrap();
    let err = client
        .send(hangup, Completion::Response, Duration::from_secs(5))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        ActionError::Rejected {
            action: "Hangup".to_owned(),
            message: "No such channel".to_owned()
        }
    );

    let err = client
        .send(
            originate(),
            Completion::ORIGINATE,
            Duration::from_millis(150),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            &err,
            ActionError::TimedOut { action, maybe_executed: true, .. } if action == "Originate"
        ),
        "{err}"
    );
    let late = loop {
        if let ClientEvent::Event { message, .. } = next_event(&mut events).await
            && message.event().as_deref() == Some("OriginateResponse")
        {
            break message;
        }
    };
    assert!(late.action_id().unwrap().starts_with("cd1-"), "{late:?}");
    assert_eq!(late.get_str("Reason").as_deref(), Some("4"));

    let err = client
        .send(
            action("CoreStatus"),
            Completion::Response,
            Duration::from_millis(100),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ActionError::TimedOut {
                maybe_executed: true,
                ..
            }
        ),
        "{err}"
    );
    // An ActionID of our own is refused before anything is sent.
    let own_id = action("Ping").header("ActionID", "mine").unwrap();
    assert!(matches!(
        client
            .send(own_id, Completion::Response, Duration::from_secs(1))
            .await,
        Err(ActionError::Invalid(_))
    ));
    drop(client);
    server.await.unwrap();
}

#[tokio::test]
async fn an_unanswered_ping_ends_the_session_and_the_client_reconnects() {
    let (listener, addr) = listen().await;
    let server = tokio::spawn(async move {
        let mut first = Peer::accept(&listener).await;
        first.login_plain().await;
        first.resync_empty().await;
        // Swallow Pings without answering; keep the socket open.
        first.expect("Ping").await;
        let mut second = Peer::accept(&listener).await;
        second.login_plain().await;
        second.resync_j3().await;
        drop(first);
        second.serve().await;
    });
    let config = AmiClientConfig {
        ping_interval: Duration::from_millis(50),
        ping_timeout: Duration::from_millis(150),
        ..config(&addr)
    };
    let (client, mut events) = AmiClient::start(config, never());
    let mut states = client.state();
    let watcher = tokio::spawn(async move {
        let mut seen = Vec::new();
        while states.changed().await.is_ok() {
            let s = states.borrow_and_update().clone();
            let done = matches!(s, ConnState::Resyncing { epoch: 2 });
            seen.push(s);
            if done {
                break;
            }
        }
        seen
    });
    let ClientEvent::Resync { epoch: 1, .. } = next_event(&mut events).await else {
        panic!("first resync")
    };
    // The stream goes on with the new session's resync.
    let resync = loop {
        if let ClientEvent::Resync { epoch, items, .. } = next_event(&mut events).await {
            break (epoch, items.len());
        }
    };
    assert_eq!(resync, (2, 2));
    let seen = tokio::time::timeout(PATIENCE, watcher)
        .await
        .unwrap()
        .unwrap();
    assert!(
        seen.iter().any(|s| matches!(
            s,
            ConnState::Disconnected { reason, .. } if reason.contains("did not answer Ping")
        )),
        "{seen:?}"
    );
    drop(client);
    server.await.unwrap();
}

#[tokio::test]
async fn a_lost_session_fails_pending_actions_and_never_resends_an_originate() {
    let (listener, addr) = listen().await;
    let server = tokio::spawn(async move {
        let mut first = Peer::accept(&listener).await;
        first.login_plain().await;
        first.resync_empty().await;
        let mut got = vec![
            first
                .next_action()
                .await
                .unwrap()
                .action()
                .unwrap()
                .into_owned(),
            first
                .next_action()
                .await
                .unwrap()
                .action()
                .unwrap()
                .into_owned(),
        ];
        got.sort();
        assert_eq!(got, ["CoreStatus", "Originate"]);
        // Asterisk goes away without answering either.
        drop(first);
        let mut second = Peer::accept(&listener).await;
        second.login_plain().await;
        second.resync_empty().await;
        // Only the read-only action comes again.
        let again = second.expect("CoreStatus").await;
        assert!(id(&again).starts_with("cd2-"), "{}", id(&again));
        second.send(&canned_reply(&again)).await;
        // Until the client logs off, nothing else comes: no second Originate.
        while let Some(next) = second.next_action().await {
            assert_eq!(
                next.action().as_deref(),
                Some("Logoff"),
                "unexpected action after the reconnect: {}",
                String::from_utf8_lossy(next.raw())
            );
            second.send(&canned_reply(&next)).await;
        }
    });
    let (client, mut events) = AmiClient::start(config(&addr), never());
    assert_eq!(name_of(&next_event(&mut events).await), "Resync");
    let c = client.clone();
    let originate = tokio::spawn(async move {
        c.send(originate(), Completion::ORIGINATE, Duration::from_secs(5))
            .await
    });
    let c = client.clone();
    let status = tokio::spawn(async move {
        c.send(
            action("CoreStatus"),
            Completion::Response,
            Duration::from_secs(5),
        )
        .await
    });
    let err = originate.await.unwrap().unwrap_err();
    assert_eq!(
        err,
        ActionError::Disconnected {
            action: "Originate".to_owned(),
            maybe_executed: true
        }
    );
    let status = status.await.unwrap().unwrap();
    assert_eq!(
        status.response.get_str("CoreCurrentCalls").as_deref(),
        Some("0")
    );
    drop(client);
    server.await.unwrap();
}

#[tokio::test]
async fn a_server_that_resets_before_the_greeting_is_retried() {
    // Capture j6 conn2: right after `core restart now` the first connect is accepted and reset
    // before the greeting; the retry 0.5 s later gets in.
    let (listener, addr) = listen().await;
    let server = tokio::spawn(async move {
        let j6 = Capture::load("j6_restart_reconnect.conn2");
        let (reset, _) = listener.accept().await.unwrap();
        reset.set_zero_linger().unwrap();
        drop(reset);
        let mut p = Peer::accept(&listener).await;
        p.send(&j6.banner).await;
        let login = p.expect("Login").await;
        p.send(&with_id(&j6.messages[0], &id(&login))).await;
        p.send(&j6.messages[1]).await; // FullyBooted, Uptime: 0
        p.resync_empty().await;
        p.serve().await;
    });
    let (client, mut events) = AmiClient::start(config(&addr), never());
    let ClientEvent::Resync { epoch: 1, .. } = next_event(&mut events).await else {
        panic!("resync after the retry")
    };
    let ClientEvent::Event { message, .. } = next_event(&mut events).await else {
        panic!("FullyBooted")
    };
    assert_eq!(message.get_str("Uptime").as_deref(), Some("0"));
    drop(client);
    server.await.unwrap();
}

#[tokio::test]
async fn a_slow_consumer_never_stalls_the_reader_and_gets_a_fresh_resync() {
    let (listener, addr) = listen().await;
    // Real events from the busy hour, without ActionIDs.
    let z = Capture::load("z_busy_hour");
    let flood: Vec<u8> = z
        .messages
        .iter()
        .filter(|m| header(m, "Event").is_some() && header(m, "ActionID").is_none())
        .take(5000)
        .flat_map(|m| m.to_vec())
        .collect();
    assert!(flood.len() > 1_000_000, "{} bytes", flood.len());
    let (flooded_tx, flooded) = tokio::sync::oneshot::channel();
    let server = tokio::spawn(async move {
        let mut p = Peer::accept(&listener).await;
        p.login_plain().await;
        p.resync_empty().await;
        // Far more than the socket buffers hold: this only finishes if the client reads on.
        let started = std::time::Instant::now();
        p.send(&flood).await;
        flooded_tx.send(started.elapsed()).unwrap();
        p.serve().await;
    });
    let config = AmiClientConfig {
        event_queue: 64,
        ..config(&addr)
    };
    let (client, mut events) = AmiClient::start(config, never());
    // The consumer reads nothing until the flood is through.
    let took = tokio::time::timeout(PATIENCE, flooded)
        .await
        .expect("the server could not write: the client stopped reading")
        .unwrap();
    assert!(took < Duration::from_secs(5), "{took:?}");
    wait_state(&client, "degraded", |s| {
        matches!(s, ConnState::Degraded { .. })
    })
    .await;
    // Actions still complete while the consumer is stuck.
    client
        .send(
            action("CoreStatus"),
            Completion::Response,
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    // Once the consumer drains, the client reads the live state again.
    let mut drained = 0;
    let (epoch, items) = loop {
        match next_event(&mut events).await {
            ClientEvent::Resync { epoch, items, .. } if epoch > 1 => break (epoch, items.len()),
            _ => drained += 1,
        }
    };
    assert_eq!((epoch, items), (2, 2));
    assert!(drained >= 64, "{drained}");
    wait_state(&client, "connected", |s| {
        matches!(s, ConnState::Connected { .. })
    })
    .await;
    drop(client);
    server.await.unwrap();
}

#[tokio::test]
async fn actions_wait_or_fail_fast_while_disconnected_and_shutdown_logs_off() {
    // Nobody listens yet: the client keeps retrying.
    let (listener, addr) = listen().await;
    let port_holder = addr.clone();
    drop(listener);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let (client, mut events) = AmiClient::start(config(&port_holder), async move {
        let _ = stop_rx.await;
    });
    wait_state(&client, "disconnected", |s| {
        matches!(s, ConnState::Disconnected { .. })
    })
    .await;
    // A non-idempotent action fails at once, saying nothing was sent.
    let err = client
        .send(originate(), Completion::ORIGINATE, Duration::from_secs(5))
        .await
        .unwrap_err();
    assert!(matches!(err, ActionError::NotConnected { .. }), "{err}");
    // A read waits for the session (here: in vain, within its timeout).
    let err = client
        .send(
            action("CoreStatus"),
            Completion::Response,
            Duration::from_millis(100),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, ActionError::NotConnected { .. }), "{err}");

    // Now a server appears on the same port; shutdown sends Logoff.
    let listener = tokio::net::TcpListener::bind(&port_holder).await.unwrap();
    let server = tokio::spawn(async move {
        let mut p = Peer::accept(&listener).await;
        p.login_plain().await;
        p.resync_empty().await;
        p.expect("Logoff").await;
    });
    assert_eq!(name_of(&next_event(&mut events).await), "Resync");
    stop_tx.send(()).unwrap();
    tokio::time::timeout(PATIENCE, client.stopped())
        .await
        .unwrap();
    assert_eq!(client.current_state(), ConnState::Stopped);
    server.await.unwrap();
    assert!(matches!(
        client
            .send(action("Ping"), Completion::Response, Duration::from_secs(1))
            .await,
        Err(ActionError::Stopped)
    ));
}

#[tokio::test]
async fn the_client_works_against_the_simulator() {
    use calldesk_sim::ami::{AmiSimConfig, AmiSimulator, ScenarioCall, ScenarioKind};
    let sim_config = AmiSimConfig {
        auth_failure_delay: Duration::from_millis(10),
        ..AmiSimConfig::default()
    };
    let sim = AmiSimulator::bind("127.0.0.1:0".parse().unwrap(), sim_config.clone())
        .await
        .unwrap();
    let addr = sim.local_addr().to_string();
    let handle = sim.handle();
    let (_stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(sim.run(async move {
        let _ = stopped.await;
    }));
    let mut config = config(&addr);
    config.credentials.username = sim_config.username.clone();
    config.credentials.secret = sim_config.secret.clone();
    let (client, mut events) = AmiClient::start(config, never());
    // Whether the simulator lists channels or refuses the action, the resync comes first.
    assert_eq!(name_of(&next_event(&mut events).await), "Resync");
    let pong = client
        .send(action("Ping"), Completion::Response, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(pong.response.get_str("Ping").as_deref(), Some("Pong"));
    handle.play(ScenarioCall {
        kind: ScenarioKind::InboundBusy,
        caller: "+74951234567".into(),
        did: "101".into(),
        extension: "101".into(),
        ring: Duration::from_millis(20),
        talk: Duration::from_millis(20),
    });
    loop {
        if name_of(&next_event(&mut events).await) == "Hangup" {
            break;
        }
    }
}
