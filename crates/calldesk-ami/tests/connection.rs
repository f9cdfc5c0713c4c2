//! AmiConnection against the simulator over a real socket.

// Test helpers may panic on bad fixtures: that is a failed test, not a crash.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use calldesk_ami::{AmiConnection, AmiCredentials, AmiError, AsteriskTracker};
use calldesk_ami_proto::Outgoing;
use calldesk_calls::{CallBook, NumberPlan, TenantId, Timestamp, UpdateKind};
use calldesk_sim::ami::{AmiSimConfig, AmiSimulator, ScenarioCall, ScenarioKind};

async fn sim() -> (
    String,
    calldesk_sim::ami::AmiSimHandle,
    tokio::sync::oneshot::Sender<()>,
) {
    let config = AmiSimConfig {
        auth_failure_delay: Duration::from_millis(10),
        ..AmiSimConfig::default()
    };
    let sim = AmiSimulator::bind("127.0.0.1:0".parse().unwrap(), config)
        .await
        .unwrap();
    let addr = sim.local_addr().to_string();
    let handle = sim.handle();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(sim.run(async move {
        let _ = stopped.await;
    }));
    (addr, handle, stop)
}

fn creds(secret: &str) -> AmiCredentials {
    AmiCredentials {
        username: AmiSimConfig::default().username,
        secret: secret.to_owned(),
    }
}

#[tokio::test]
async fn wrong_secret_is_a_clear_error_and_secret_is_not_logged() {
    let (addr, _handle, _stop) = sim().await;
    let err = AmiConnection::connect(&addr, &creds("wrong"), Duration::from_secs(5))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, AmiError::AuthRejected { message, .. } if message == "Authentication failed"),
        "{err}"
    );
    assert!(!format!("{:?}", creds("hunter2")).contains("hunter2"));
}

#[tokio::test]
async fn login_ping_and_a_played_call_end_to_end() {
    let (addr, handle, _stop) = sim().await;
    let secret = AmiSimConfig::default().secret;
    let (mut conn, banner) = AmiConnection::connect(&addr, &creds(&secret), Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(banner, "Asterisk Call Manager/9.0.0");
    let ping = conn.send(Outgoing::action("Ping").unwrap()).await.unwrap();
    handle.play(ScenarioCall {
        kind: ScenarioKind::InboundBusy,
        caller: "+74951234567".into(),
        did: "101".into(),
        extension: "101".into(),
        ring: Duration::from_millis(50),
        talk: Duration::from_millis(50),
    });
    let mut tracker = AsteriskTracker::new(NumberPlan::new("RU").unwrap());
    let mut book = CallBook::new(TenantId::new("demo").unwrap());
    let mut pong = false;
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let msg = conn.next_message().await.unwrap();
            if msg.action_id().as_deref() == Some(ping.as_str()) {
                pong = msg.get_str("Ping").as_deref() == Some("Pong");
            }
            for ev in tracker.handle_to_vec(&msg, Timestamp::from_unix_millis(0)) {
                let calldesk_asterisk::TrackerEvent::Call(ev) = ev else {
                    continue;
                };
                if let Some(u) = book.apply(&ev).unwrap()
                    && u.kind == UpdateKind::Ended
                {
                    return u.call;
                }
            }
        }
    })
    .await
    .unwrap();
    assert!(pong, "Ping was not answered with Pong");
    assert_eq!(ended.from.display(), "+7 495 123-45-67");
    assert_eq!(ended.status.map(|s| s.as_str()), Some("busy"));
}

#[tokio::test]
async fn a_server_that_is_not_ami_never_receives_the_credentials() {
    // A wrong port: an SSH server greets first, with no colon in its line.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let server = tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (mut s, _) = listener.accept().await.unwrap();
        s.write_all(b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n")
            .await
            .unwrap();
        let mut received = Vec::new();
        let _ =
            tokio::time::timeout(Duration::from_millis(500), s.read_to_end(&mut received)).await;
        received
    });
    let err = AmiConnection::connect(&addr, &creds("hunter2"), Duration::from_secs(5))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, AmiError::NotAmi { greeting, .. } if greeting.starts_with("SSH-2.0")),
        "{err}"
    );
    let received = server.await.unwrap();
    assert!(
        received.is_empty(),
        "sent {:?} to a non-AMI server",
        String::from_utf8_lossy(&received)
    );
}
