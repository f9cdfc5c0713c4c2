//! The simulator over real loopback sockets.

// Test-only helpers outside #[test] fns may unwrap: a failure is a test failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::Duration;

use bytes::BytesMut;
use calldesk_ami_proto::{AmiDecoder, Frame, Message, Outgoing};
use calldesk_sim::ami::{AmiSimConfig, AmiSimHandle, AmiSimulator, Schedule};
use calldesk_sim::demo::demo_caller;
use calldesk_sim::scenario::{IdAllocator, render};
use calldesk_sim::{ScenarioCall, ScenarioKind};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;

const T: Duration = Duration::from_secs(10);

struct Sim {
    addr: SocketAddr,
    handle: AmiSimHandle,
    _stop: oneshot::Sender<()>,
}

async fn start(config: AmiSimConfig) -> Sim {
    let sim = AmiSimulator::bind("127.0.0.1:0".parse().unwrap(), config)
        .await
        .unwrap();
    let addr = sim.local_addr();
    let handle = sim.handle();
    let (tx, rx) = oneshot::channel::<()>();
    tokio::spawn(sim.run(async move {
        let _ = rx.await;
    }));
    Sim {
        addr,
        handle,
        _stop: tx,
    }
}

fn cfg() -> AmiSimConfig {
    AmiSimConfig {
        auth_failure_delay: Duration::from_millis(20),
        ..Default::default()
    }
}

struct Client {
    s: TcpStream,
    buf: BytesMut,
    dec: AmiDecoder,
}

impl Client {
    async fn connect(addr: SocketAddr) -> (Client, Frame) {
        let s = TcpStream::connect(addr).await.unwrap();
        let mut c = Client {
            s,
            buf: BytesMut::new(),
            dec: AmiDecoder::new(),
        };
        let banner = c.next().await.expect("banner");
        (c, banner)
    }
    /// Next frame; None on EOF.
    async fn next(&mut self) -> Option<Frame> {
        loop {
            if let Some(f) = self.dec.decode(&mut self.buf) {
                return Some(f);
            }
            let n = tokio::time::timeout(T, self.s.read_buf(&mut self.buf))
                .await
                .expect("read timed out")
                .ok()?;
            if n == 0 {
                return None;
            }
        }
    }
    async fn msg(&mut self) -> Message {
        match self.next().await {
            Some(Frame::Message(m)) => m,
            other => panic!("expected a message, got {other:?}"),
        }
    }
    async fn send(&mut self, o: Outgoing) {
        self.s.write_all(&o.to_bytes()).await.unwrap();
    }
    async fn action(&mut self, name: &str, id: &str, headers: &[(&str, &str)]) {
        let mut o = Outgoing::action(name)
            .unwrap()
            .header("ActionID", id)
            .unwrap();
        for (k, v) in headers {
            o.push(k, v).unwrap();
        }
        self.send(o).await;
    }
    async fn login(addr: SocketAddr) -> Client {
        let (mut c, _) = Client::connect(addr).await;
        c.action(
            "Login",
            "l1",
            &[("Username", "calldesk"), ("Secret", "demo")],
        )
        .await;
        let m = c.msg().await;
        assert_eq!(
            m.get_str("Message").as_deref(),
            Some("Authentication accepted")
        );
        let fb = c.msg().await;
        assert_eq!(fb.event().as_deref(), Some("FullyBooted"));
        let auth = c.msg().await;
        assert_eq!(auth.event().as_deref(), Some("SuccessfulAuth"));
        c
    }
    /// Reads events until `pred` matches; returns everything read.
    async fn until(&mut self, mut pred: impl FnMut(&Message) -> bool) -> Vec<Message> {
        let mut out = Vec::new();
        loop {
            let m = self.msg().await;
            let done = pred(&m);
            out.push(m);
            if done {
                return out;
            }
        }
    }
}

fn call(kind: ScenarioKind, caller: &str) -> ScenarioCall {
    ScenarioCall {
        kind,
        caller: caller.into(),
        did: "101".into(),
        extension: "101".into(),
        ring: Duration::from_millis(30),
        talk: Duration::from_millis(30),
    }
}

#[tokio::test]
async fn banner_is_exact() {
    let sim = start(cfg()).await;
    let mut s = TcpStream::connect(sim.addr).await.unwrap();
    let mut got = vec![0u8; 64];
    let n = tokio::time::timeout(T, s.read(&mut got))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&got[..n], b"Asterisk Call Manager/9.0.0\r\n");
}

#[tokio::test]
async fn ping_before_login_is_permission_denied() {
    let sim = start(cfg()).await;
    let (mut c, banner) = Client::connect(sim.addr).await;
    assert!(matches!(banner, Frame::Banner(b) if b.version() == b"9.0.0"));
    c.action("Ping", "j1-001", &[]).await;
    let m = c.msg().await;
    let fields: Vec<_> = m.fields().map(|(k, v)| (k.to_vec(), v.to_vec())).collect();
    assert_eq!(
        fields,
        vec![
            (b"Response".to_vec(), b"Error".to_vec()),
            (b"ActionID".to_vec(), b"j1-001".to_vec()),
            (b"Message".to_vec(), b"Permission denied".to_vec()),
        ]
    );
}

#[tokio::test]
async fn login_failure_is_delayed_then_closed() {
    let sim = start(AmiSimConfig {
        auth_failure_delay: Duration::from_millis(50),
        ..Default::default()
    })
    .await;
    let (mut c, _) = Client::connect(sim.addr).await;
    let t0 = std::time::Instant::now();
    c.action(
        "Login",
        "j1-002",
        &[("Username", "calldesk"), ("Secret", "wrong-secret")],
    )
    .await;
    let m = c.msg().await;
    assert!(t0.elapsed() >= Duration::from_millis(50));
    assert_eq!(m.response().as_deref(), Some("Error"));
    assert_eq!(m.action_id().as_deref(), Some("j1-002"));
    assert_eq!(
        m.get_str("Message").as_deref(),
        Some("Authentication failed")
    );
    assert!(
        c.next().await.is_none(),
        "socket must be closed after a failed login"
    );
}

#[tokio::test]
async fn login_ping_events_unknown_logoff() {
    let sim = start(cfg()).await;
    let mut c = Client::login(sim.addr).await;
    c.action("Ping", "custom-id-with spaces & symbols/ä", &[])
        .await;
    let m = c.msg().await;
    assert_eq!(m.response().as_deref(), Some("Success"));
    assert_eq!(
        m.action_id().as_deref(),
        Some("custom-id-with spaces & symbols/ä")
    );
    assert_eq!(m.get_str("Ping").as_deref(), Some("Pong"));
    let ts = m.get_str("Timestamp").unwrap().into_owned();
    let (secs, usec) = ts.split_once('.').unwrap();
    assert!(secs.parse::<u64>().unwrap() > 1_700_000_000);
    assert_eq!(usec.len(), 6);
    c.action("Events", "e1", &[("EventMask", "off")]).await;
    assert_eq!(c.msg().await.get_str("Events").as_deref(), Some("Off"));
    c.action("Events", "e2", &[("EventMask", "call,agent")])
        .await;
    assert_eq!(c.msg().await.get_str("Events").as_deref(), Some("On"));
    c.action("FooBarBaz", "j2-002", &[]).await;
    let m = c.msg().await;
    assert_eq!(m.response().as_deref(), Some("Error"));
    assert_eq!(
        m.get_str("Message").as_deref(),
        Some(
            "Invalid/unknown command: FooBarBaz. Use Action: ListCommands to show available commands."
        )
    );
    c.send(
        Outgoing::response("x")
            .unwrap()
            .header("ActionID", "no-action-header")
            .unwrap(),
    )
    .await;
    let m = c.msg().await;
    assert_eq!(
        m.get_str("Message").as_deref(),
        Some("Missing action in request")
    );
    c.action("Logoff", "bye", &[]).await;
    let m = c.msg().await;
    assert_eq!(m.response().as_deref(), Some("Goodbye"));
    assert_eq!(
        m.get_str("Message").as_deref(),
        Some("Thanks for all the fish.")
    );
    assert!(c.next().await.is_none());
}

#[tokio::test]
async fn events_off_at_login_sends_no_events() {
    let sim = start(cfg()).await;
    let (mut c, _) = Client::connect(sim.addr).await;
    c.action(
        "Login",
        "l",
        &[
            ("Username", "calldesk"),
            ("Secret", "demo"),
            ("Events", "off"),
        ],
    )
    .await;
    assert_eq!(
        c.msg().await.get_str("Message").as_deref(),
        Some("Authentication accepted")
    );
    sim.handle
        .play(call(ScenarioKind::InboundBusy, "+74951234567"));
    tokio::time::sleep(Duration::from_millis(150)).await;
    c.action("Ping", "p", &[]).await;
    let m = c.msg().await;
    assert_eq!(
        m.action_id().as_deref(),
        Some("p"),
        "no event may arrive before the Pong"
    );
}

fn expected_len(kind: ScenarioKind) -> usize {
    render(&call(kind, "+74951234567"), &IdAllocator::default().next(0))
        .unwrap()
        .len()
}

fn is_last_hangup(kind: ScenarioKind) -> impl FnMut(&Message) -> bool {
    // The answered call ends with the callee's Hangup, missed with the trunk's, busy with a Cdr.
    let mut hangups = 0;
    let mut cdrs = 0;
    move |m: &Message| {
        match m.event().as_deref() {
            Some("Hangup") => hangups += 1,
            Some("Cdr") => cdrs += 1,
            _ => {}
        }
        match kind {
            ScenarioKind::InboundBusy => cdrs == 2,
            _ => hangups == 2,
        }
    }
}

#[tokio::test]
async fn played_scenarios_arrive_in_full_to_two_clients() {
    let sim = start(cfg()).await;
    let mut a = Client::login(sim.addr).await;
    let mut b = Client::login(sim.addr).await;
    for kind in [
        ScenarioKind::InboundAnswered,
        ScenarioKind::InboundMissed,
        ScenarioKind::InboundBusy,
    ] {
        sim.handle.play(call(kind, "+74951234567"));
        for c in [&mut a, &mut b] {
            let evs = c.until(is_last_hangup(kind)).await;
            assert_eq!(evs.len(), expected_len(kind), "{kind:?}");
            assert_eq!(
                evs[0].event().as_deref(),
                Some("DeviceStateChange")
                    .filter(|_| kind == ScenarioKind::InboundMissed)
                    .or(Some("Newchannel"))
            );
            assert!(evs.iter().all(|m| m.event().is_some()));
            assert!(
                evs.iter()
                    .filter(|m| m.get_str("CallerIDNum").as_deref() == Some("+74951234567"))
                    .count()
                    > 5
            );
        }
    }
}

#[tokio::test]
async fn slow_client_is_disconnected_and_does_not_block_others() {
    let sim = start(AmiSimConfig {
        event_queue_len: 1024,
        write_timeout: Duration::from_millis(100),
        ..cfg()
    })
    .await;
    let mut fast = Client::login(sim.addr).await;
    let mut slow = Client::login(sim.addr).await;
    // ~60 events of ~600 bytes per call; 30 batches of 10 calls are ~10 MB, more than the
    // loopback socket buffers hold, so the slow client's writes block and it is cut off.
    let per_call = expected_len(ScenarioKind::InboundAnswered);
    let (batches, batch) = (30, 10);
    for _ in 0..batches {
        for _ in 0..batch {
            sim.handle.play(ScenarioCall {
                ring: Duration::ZERO,
                talk: Duration::ZERO,
                ..call(ScenarioKind::InboundAnswered, "+74951234567")
            });
        }
        for _ in 0..batch * per_call {
            let m = fast.msg().await;
            assert!(m.event().is_some());
        }
    }
    let n = batches * batch;
    // The slow client has been cut off: draining its socket ends in EOF, well short of everything.
    let mut slow_got = 0;
    let drained = tokio::time::timeout(Duration::from_secs(10), async {
        while slow.next().await.is_some() {
            slow_got += 1;
        }
    })
    .await;
    assert!(drained.is_ok(), "slow client was not disconnected");
    assert!(
        slow_got < n * per_call,
        "slow client received everything ({slow_got})"
    );
}

#[tokio::test]
async fn demo_schedule_starts_soon_after_login_with_demo_callers() {
    let sim = start(AmiSimConfig {
        schedule: Schedule::Demo {
            every: Duration::from_millis(200),
        },
        demo_ring: (Duration::from_millis(20), Duration::from_millis(40)),
        demo_talk: (Duration::from_millis(20), Duration::from_millis(40)),
        ..cfg()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let t0 = std::time::Instant::now();
    let mut c = Client::login(sim.addr).await;
    let mut callers = Vec::new();
    let mut kinds = Vec::new();
    while callers.len() < 3 {
        let m = c.msg().await;
        if m.event().as_deref() == Some("Newchannel")
            && m.get_str("Context").as_deref() == Some("from-trunk")
        {
            if callers.is_empty() {
                assert!(
                    t0.elapsed() < Duration::from_millis(900),
                    "first demo call took {:?}",
                    t0.elapsed()
                );
            }
            callers.push(m.get_str("CallerIDNum").unwrap().into_owned());
        }
        if m.event().as_deref() == Some("DialEnd") {
            kinds.push(m.get_str("DialStatus").unwrap().into_owned());
        }
    }
    assert_eq!(
        callers,
        vec![demo_caller(0), demo_caller(1), demo_caller(2)]
    );
    assert_eq!(&kinds[..2], &["ANSWER".to_string(), "NOANSWER".to_string()]);
}

/// The header names of a message, in order.
fn names(m: &Message) -> Vec<String> {
    m.fields()
        .map(|(k, _)| String::from_utf8_lossy(k).into_owned())
        .collect()
}

#[tokio::test]
async fn login_sequence_has_the_shape_of_the_real_one() {
    // Asterisk answers a Login with the response, FullyBooted and the SuccessfulAuth security
    // event (a_inbound_answered, messages 1-3).
    let bytes = calldesk_fixtures::ami_rx("a_inbound_answered");
    let mut buf = BytesMut::from(&bytes[..]);
    let mut dec = AmiDecoder::new();
    let mut real = Vec::new();
    while real.len() < 3 {
        if let Some(Frame::Message(m)) = dec.decode(&mut buf) {
            real.push(m);
        }
    }

    let sim = start(cfg()).await;
    let (mut c, _) = Client::connect(sim.addr).await;
    let config = cfg();
    c.action(
        "Login",
        "a-001",
        &[("Username", &config.username), ("Secret", &config.secret)],
    )
    .await;
    for want in &real {
        let got = c.msg().await;
        assert_eq!(names(&got), names(want), "{:?}", got.raw());
        for key in [
            "Response",
            "Message",
            "Event",
            "Privilege",
            "Status",
            "Service",
            "Severity",
        ] {
            assert_eq!(got.get(key), want.get(key), "{key} in {:?}", got.raw());
        }
    }
}

// ----- issue item 5: call control, MD5 login, drop / restart -----------------------------------

use calldesk_ami_proto::md5_login_key;
use calldesk_sim::pbx::PhoneBehaviour;

fn fast_phones() -> AmiSimConfig {
    AmiSimConfig {
        default_phone: PhoneBehaviour::answers_after_ms(30),
        far_end: PhoneBehaviour::answers_after_ms(30),
        restart_downtime: Duration::from_millis(200),
        ..cfg()
    }
}

fn long_call(caller: &str) -> ScenarioCall {
    ScenarioCall {
        kind: ScenarioKind::InboundAnswered,
        caller: caller.into(),
        did: "101".into(),
        extension: "101".into(),
        ring: Duration::from_millis(20),
        talk: Duration::from_secs(3600),
    }
}

impl Client {
    /// The response to `id`, skipping events.
    async fn response(&mut self, id: &str) -> Message {
        loop {
            let m = self.msg().await;
            if m.response().is_some() && m.action_id().as_deref() == Some(id) {
                return m;
            }
        }
    }

    /// `CoreShowChannels`: (channel, linkedid) of every item.
    async fn channels(&mut self, id: &str) -> Vec<(String, String)> {
        self.action("CoreShowChannels", id, &[]).await;
        let r = self.response(id).await;
        assert_eq!(r.get_str("EventList").as_deref(), Some("start"));
        let mut out = Vec::new();
        loop {
            let m = self.msg().await;
            if m.action_id().as_deref() != Some(id) {
                continue;
            }
            match m.event().as_deref() {
                Some("CoreShowChannel") => out.push((
                    m.get_str("Channel").unwrap().into_owned(),
                    m.get_str("Linkedid").unwrap().into_owned(),
                )),
                Some("CoreShowChannelsComplete") => {
                    assert_eq!(m.get_str("ListItems").unwrap(), out.len().to_string());
                    return out;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    }
}

#[tokio::test]
async fn md5_challenge_login_as_in_j1_conn3() {
    let sim = start(cfg()).await;
    let (mut c, _) = Client::connect(sim.addr).await;
    c.action("Challenge", "c1", &[("AuthType", "MD5")]).await;
    let m = c.msg().await;
    assert_eq!(names(&m), ["Response", "ActionID", "Challenge"]);
    let challenge = m.get_str("Challenge").unwrap().into_owned();
    let key = md5_login_key(&challenge, "demo");
    c.action(
        "Login",
        "c2",
        &[
            ("AuthType", "MD5"),
            ("Username", "calldesk"),
            ("Key", &key),
            ("Events", "off"),
        ],
    )
    .await;
    let m = c.msg().await;
    assert_eq!(
        m.get_str("Message").as_deref(),
        Some("Authentication accepted")
    );
    // Events: off → no FullyBooted/SuccessfulAuth, the Pong comes next.
    c.action("Ping", "c3", &[]).await;
    assert_eq!(c.msg().await.get_str("Ping").as_deref(), Some("Pong"));

    let (mut bad, _) = Client::connect(sim.addr).await;
    bad.action("Challenge", "c1", &[("AuthType", "MD5")]).await;
    bad.msg().await;
    bad.action(
        "Login",
        "c2",
        &[("AuthType", "MD5"), ("Username", "calldesk"), ("Key", &key)],
    )
    .await;
    let m = bad.msg().await;
    assert_eq!(
        m.get_str("Message").as_deref(),
        Some("Authentication failed")
    );
    assert!(bad.next().await.is_none());
}

#[tokio::test]
async fn click_to_call_over_the_wire_async_and_sync() {
    let sim = start(fast_phones()).await;
    let mut watcher = Client::login(sim.addr).await;
    let mut c = Client::login(sim.addr).await;
    c.action(
        "Originate",
        "o1",
        &[
            ("Channel", "SIP/101"),
            ("Context", "from-internal"),
            ("Exten", "004930123456"),
            ("Priority", "1"),
            ("CallerID", "\"CRM\" <004930123456>"),
            ("Async", "true"),
        ],
    )
    .await;
    let r = c.response("o1").await;
    assert_eq!(
        r.get_str("Message").as_deref(),
        Some("Originate successfully queued")
    );
    let evs = watcher
        .until(|m| {
            m.event().as_deref() == Some("BridgeEnter")
                && m.get_str("BridgeNumChannels").as_deref() == Some("2")
        })
        .await;
    let resp = evs
        .iter()
        .find(|m| m.event().as_deref() == Some("OriginateResponse"))
        .unwrap();
    assert_eq!(resp.action_id().as_deref(), Some("o1"));
    assert_eq!(resp.get_str("Reason").as_deref(), Some("4"));
    let calls = sim.handle.live_calls().await.unwrap();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].direction, "outbound");
    assert_eq!(calls[0].dialled, "004930123456");
    assert_eq!(calls[0].operators, ["101"]);
    assert_eq!(calls[0].state, "talking");

    // Synchronous: nothing reaches this session until the reply, which comes after the
    // answer; then the queued events follow.
    sim.handle
        .set_phone("102", PhoneBehaviour::answers_after_ms(150));
    let mut s = Client::login(sim.addr).await;
    let t0 = std::time::Instant::now();
    s.action(
        "Originate",
        "o2",
        &[
            ("Channel", "SIP/102"),
            ("Context", "from-internal"),
            ("Exten", "600"),
            ("Priority", "1"),
        ],
    )
    .await;
    let first = s.msg().await;
    assert_eq!(
        first.action_id().as_deref(),
        Some("o2"),
        "{:?}",
        first.raw()
    );
    assert_eq!(first.response().as_deref(), Some("Success"));
    assert!(t0.elapsed() >= Duration::from_millis(150));
    let next = s.msg().await;
    assert_eq!(
        next.event().as_deref(),
        Some("Newchannel"),
        "queued events follow the reply"
    );

    // Busy operator: OriginateResponse Failure / Reason 5 (h2).
    sim.handle.set_phone(
        "103",
        PhoneBehaviour::Busy {
            after: Duration::from_millis(20),
        },
    );
    c.action(
        "Originate",
        "o3",
        &[
            ("Channel", "SIP/103"),
            ("Context", "from-internal"),
            ("Exten", "004930123456"),
            ("Priority", "1"),
            ("Async", "yes"),
        ],
    )
    .await;
    let evs = c
        .until(|m| {
            m.event().as_deref() == Some("OriginateResponse")
                && m.action_id().as_deref() == Some("o3")
        })
        .await;
    let fail = evs.last().unwrap();
    assert_eq!(fail.get_str("Response").as_deref(), Some("Failure"));
    assert_eq!(fail.get_str("Reason").as_deref(), Some("5"));
    assert_eq!(fail.get_str("Uniqueid").as_deref(), Some("<unknown>"));
}

#[tokio::test]
async fn event_masks_filter_by_class() {
    let sim = start(fast_phones()).await;
    let mut c = Client::login(sim.addr).await;
    c.action("Events", "e", &[("EventMask", "agent")]).await;
    assert_eq!(c.msg().await.get_str("Events").as_deref(), Some("On"));
    sim.handle
        .play(call(ScenarioKind::InboundBusy, "+74951234567"));
    tokio::time::sleep(Duration::from_millis(150)).await;
    c.action(
        "QueuePause",
        "q",
        &[("Interface", "SIP/101"), ("Paused", "true")],
    )
    .await;
    let m = c.msg().await;
    assert_eq!(
        m.action_id().as_deref(),
        Some("q"),
        "no call-class event may arrive"
    );
    let ev = c.msg().await;
    assert_eq!(ev.event().as_deref(), Some("QueueMemberPause"));
}

#[tokio::test]
async fn drop_pause_and_resync_against_live_calls() {
    let sim = start(fast_phones()).await;
    let mut c = Client::login(sim.addr).await;
    let a = sim
        .handle
        .start_call(long_call("+74951110001"))
        .await
        .unwrap();
    let b = sim
        .handle
        .start_call(long_call("+74951110002"))
        .await
        .unwrap();
    c.until(|m| {
        m.event().as_deref() == Some("BridgeEnter")
            && m.get_str("Linkedid").as_deref() == Some(b.as_str())
            && m.get_str("BridgeNumChannels").as_deref() == Some("2")
    })
    .await;

    // The connection drops; the PBX goes on without the client.
    sim.handle.pause_accepting(true);
    sim.handle.drop_connections();
    // What was already sent may still be read; then the socket is closed.
    let drained = tokio::time::timeout(T, async { while c.next().await.is_some() {} }).await;
    assert!(drained.is_ok(), "the session must be closed");
    sim.handle.hangup_call(&a).await.unwrap();
    let d = sim
        .handle
        .start_call(long_call("+74951110003"))
        .await
        .unwrap();
    assert!(sim.handle.hangup_call("1.2").await.is_err());

    // While paused, a connection is reset before the greeting (j6 conn2).
    let mut s = TcpStream::connect(sim.addr).await.unwrap();
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(T, s.read(&mut buf)).await.unwrap();
    assert!(
        matches!(n, Ok(0) | Err(_)),
        "no greeting while paused: {n:?}"
    );

    sim.handle.pause_accepting(false);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut c = Client::login(sim.addr).await;
    let listed = c.channels("r1").await;
    let truth = sim.handle.live_calls().await.unwrap();
    let mut linked: Vec<String> = listed.iter().map(|(_, l)| l.clone()).collect();
    linked.sort();
    linked.dedup();
    let mut want: Vec<String> = truth.iter().map(|c| c.linkedid.clone()).collect();
    want.sort();
    assert_eq!(linked, want);
    assert!(want.contains(&b) && want.contains(&d) && !want.contains(&a));
    let mut chans: Vec<String> = listed.into_iter().map(|(c, _)| c).collect();
    chans.sort();
    let mut want_chans: Vec<String> = truth.iter().flat_map(|c| c.channels.clone()).collect();
    want_chans.sort();
    assert_eq!(chans, want_chans);
    for call in &truth {
        assert_eq!(call.operators, ["101"]);
        assert_eq!(call.state, "talking");
    }
}

#[tokio::test]
async fn restart_tears_down_says_shutdown_and_comes_back_fresh() {
    let sim = start(fast_phones()).await;
    let mut c = Client::login(sim.addr).await;
    let before = sim
        .handle
        .start_call(long_call("+74951110001"))
        .await
        .unwrap();
    c.until(|m| {
        m.event().as_deref() == Some("BridgeEnter")
            && m.get_str("BridgeNumChannels").as_deref() == Some("2")
    })
    .await;
    sim.handle.restart().await.unwrap();
    let evs = c.until(|m| m.event().as_deref() == Some("Shutdown")).await;
    let soft: Vec<_> = evs
        .iter()
        .filter(|m| {
            m.event().as_deref() == Some("SoftHangupRequest")
                && m.get_str("Cause").as_deref() == Some("4")
        })
        .collect();
    assert_eq!(soft.len(), 2);
    assert_eq!(
        evs.iter()
            .filter(|m| m.event().as_deref() == Some("Hangup"))
            .count(),
        2
    );
    let shutdown = evs.last().unwrap();
    assert_eq!(shutdown.get_str("Shutdown").as_deref(), Some("Cleanly"));
    assert_eq!(shutdown.get_str("Restart").as_deref(), Some("True"));
    assert!(c.next().await.is_none(), "closed after Shutdown");

    // Right after the restart a connection is reset; after the downtime it works.
    let mut s = TcpStream::connect(sim.addr).await.unwrap();
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(T, s.read(&mut buf)).await.unwrap();
    assert!(matches!(n, Ok(0) | Err(_)), "{n:?}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (mut c, _) = Client::connect(sim.addr).await;
    c.action(
        "Login",
        "l",
        &[("Username", "calldesk"), ("Secret", "demo")],
    )
    .await;
    c.msg().await;
    let fb = c.msg().await;
    assert_eq!(fb.get_str("Uptime").as_deref(), Some("0"));
    c.msg().await;
    assert!(c.channels("x").await.is_empty());
    let after = sim
        .handle
        .start_call(long_call("+74951110009"))
        .await
        .unwrap();
    assert!(after.ends_with(".0"), "counters restart: {after}");
    assert_ne!(after, before);
    let ev = c
        .until(|m| m.event().as_deref() == Some("Newchannel"))
        .await;
    assert_eq!(
        ev.last().unwrap().get_str("Channel").as_deref(),
        Some("SIP/trunk-00000000")
    );
}

#[tokio::test]
async fn hold_and_park_over_the_wire() {
    let sim = start(fast_phones()).await;
    let mut c = Client::login(sim.addr).await;
    let id = sim
        .handle
        .start_call(long_call("+74951110001"))
        .await
        .unwrap();
    c.until(|m| {
        m.event().as_deref() == Some("BridgeEnter")
            && m.get_str("BridgeNumChannels").as_deref() == Some("2")
    })
    .await;
    sim.handle.hold("101", true).await.unwrap();
    let h = c
        .until(|m| m.event().as_deref() == Some("MusicOnHoldStart"))
        .await;
    assert!(h.iter().any(|m| m.event().as_deref() == Some("Hold")));
    assert_eq!(sim.handle.live_calls().await.unwrap()[0].state, "held");
    sim.handle.hold("101", false).await.unwrap();
    assert!(sim.handle.hold("199", true).await.is_err());
    let trunk = sim.handle.live_calls().await.unwrap()[0].channels[0].clone();
    c.action("Park", "p", &[("Channel", &trunk)]).await;
    let r = c.response("p").await;
    // The bare LF inside the value, exactly as Asterisk sends it (f2_park_retrieve).
    assert!(
        r.raw().ends_with(b"Message: Park successful\n\r\n"),
        "{:?}",
        r.raw()
    );
    c.until(|m| m.event().as_deref() == Some("ParkedCall"))
        .await;
    let calls = sim.handle.live_calls().await.unwrap();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].linkedid, id);
    assert_eq!(calls[0].state, "parked");
    assert!(calls[0].operators.is_empty());
}

#[tokio::test]
async fn attended_transfer_over_the_wire() {
    let sim = start(fast_phones()).await;
    let mut c = Client::login(sim.addr).await;
    let id = sim
        .handle
        .start_call(long_call("+74951110001"))
        .await
        .unwrap();
    c.until(|m| {
        m.event().as_deref() == Some("BridgeEnter")
            && m.get_str("BridgeNumChannels").as_deref() == Some("2")
    })
    .await;
    let agent = sim.handle.live_calls().await.unwrap()[0].channels[1].clone();
    c.action(
        "Atxfer",
        "x",
        &[
            ("Channel", &agent),
            ("Exten", "102"),
            ("Context", "from-internal"),
        ],
    )
    .await;
    let r = c.response("x").await;
    assert_eq!(
        r.get_str("Message").as_deref(),
        Some("Atxfer successfully queued")
    );
    c.until(|m| m.event().as_deref() == Some("LocalBridge"))
        .await;
    c.until(|m| {
        m.event().as_deref() == Some("BridgeEnter")
            && m.get_str("Channel")
                .as_deref()
                .is_some_and(|ch| ch.starts_with("Local/") && ch.ends_with(";2"))
    })
    .await;
    sim.handle.phone_hangup("101").await.unwrap();
    let evs = c
        .until(|m| m.event().as_deref() == Some("LocalOptimizationEnd"))
        .await;
    let at = evs
        .iter()
        .find(|m| m.event().as_deref() == Some("AttendedTransfer"))
        .unwrap();
    assert_eq!(at.get_str("DestType").as_deref(), Some("Bridge"));
    let calls = sim.handle.live_calls().await.unwrap();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].linkedid, id);
    assert_eq!(calls[0].operators, ["102"]);
}
