//! End to end over real sockets: the fake Mango (`calldesk-sim`) posts signed webhooks to a
//! small axum receiver (the hub comes later) that verifies them, feeds the tracker and a call
//! book, and collects the finished calls' records. Commands go the other way through
//! `MangoPbx` → `MangoClient` → the fake, whose webhooks come back through the receiver.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::post;
use calldesk_calls::{
    CallBook, CallId, Control, ControlOutcome, Destination, Extension, NumberPlan, Pbx,
    RecordAction, TenantId, Timestamp, TransferKind, UpdateKind,
};
use calldesk_mango::{MangoClient, MangoConfig, MangoPbx};
use calldesk_mango_proto::tracker::{MangoTracker, Timing};
use calldesk_mango_proto::{Credentials, Webhook};
use calldesk_sim::mango::{
    DeliveryMode, FakeMango, FakeMangoConfig, MangoScenario, PhoneBehaviour, recording_audio,
};
use calldesk_wire::CallRecord;

fn creds() -> Credentials {
    Credentials::new(
        "e2ekey0000000000000000000000001",
        "e2esalt000000000000000000000001",
    )
}

fn wall_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// What the receiver has: the tracker (shared with `MangoPbx`), the book, the ended records.
struct Receiver {
    tracker: Arc<RwLock<MangoTracker>>,
    book: Mutex<CallBook>,
    ended: Mutex<Vec<CallRecord>>,
    rejected: Mutex<Vec<String>>,
    credentials: Credentials,
}

impl Receiver {
    fn apply(&self, events: Vec<calldesk_calls::CallEvent>) {
        let mut book = self.book.lock().unwrap();
        for e in &events {
            if let Ok(Some(u)) = book.apply(e)
                && u.kind == UpdateKind::Ended
            {
                self.ended
                    .lock()
                    .unwrap()
                    .push(CallRecord::new(&u.call, true));
            }
        }
    }
}

async fn webhook(
    State(rx): State<Arc<Receiver>>,
    Path(path): Path<String>,
    body: Bytes,
) -> StatusCode {
    match Webhook::receive(&path, &body, &rx.credentials) {
        Ok(hook) => {
            let mut events = Vec::new();
            rx.tracker.write().unwrap().handle(
                &hook,
                Timestamp::from_unix_millis(wall_ms()),
                &mut events,
            );
            rx.apply(events);
            StatusCode::OK
        }
        Err(e) => {
            rx.rejected.lock().unwrap().push(e.to_string());
            StatusCode::FORBIDDEN
        }
    }
}

struct Setup {
    fake: FakeMango,
    rx: Arc<Receiver>,
    url: String,
}

async fn setup(delivery: DeliveryMode, seed: u64) -> Setup {
    let tracker = Arc::new(RwLock::new(MangoTracker::new(
        NumberPlan::new("RU").unwrap(),
        Timing {
            settle_ms: 300,
            no_summary_ms: 5_000,
            stale_ms: 60_000,
        },
    )));
    let rx = Arc::new(Receiver {
        tracker,
        book: Mutex::new(CallBook::new(TenantId::local())),
        ended: Mutex::new(Vec::new()),
        rejected: Mutex::new(Vec::new()),
        credentials: creds(),
    });
    let app = axum::Router::new()
        .route("/mango/acme/{*path}", post(webhook))
        .with_state(rx.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/mango/acme/", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    // The tracker's clock: end calls whose summary settled.
    let ticker = rx.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let mut events = Vec::new();
            ticker
                .tracker
                .write()
                .unwrap()
                .tick(Timestamp::from_unix_millis(wall_ms()), &mut events);
            ticker.apply(events);
        }
    });
    let fake = FakeMango::start(FakeMangoConfig {
        credentials: creds(),
        delivery,
        seed,
        ..Default::default()
    })
    .await
    .unwrap();
    fake.set_target(url.clone());
    Setup { fake, rx, url }
}

impl Setup {
    /// Waits until `n` calls ended; returns their records.
    async fn ended(&self, n: usize) -> Vec<CallRecord> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let got = self.rx.ended.lock().unwrap().clone();
            if got.len() >= n {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "only {} of {n} calls ended: {got:?}; rejected: {:?}; failed: {:?}",
                got.len(),
                self.rx.rejected.lock().unwrap(),
                self.fake.failed_deliveries()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    fn pbx(&self) -> MangoPbx<MangoTracker> {
        let config = MangoConfig::with_base_url(self.fake.base_url().parse().unwrap(), creds());
        MangoPbx::new(MangoClient::new(config).unwrap(), self.rx.tracker.clone())
    }
}

/// The examples without the click-to-call ones (those run through the commands below).
fn scenarios() -> Vec<MangoScenario> {
    MangoScenario::examples()
        .into_iter()
        .filter(|s| !matches!(s, MangoScenario::Callback { .. }))
        .collect()
}

/// The facts that do not depend on ids and clock: what each scenario must give.
fn facts(r: &CallRecord) -> String {
    let transfers: Vec<String> = r
        .transfers
        .iter()
        .map(|t| {
            format!(
                "{}:{}>{}",
                t.kind,
                t.from.as_deref().unwrap_or("?"),
                t.to.as_deref().unwrap_or("?")
            )
        })
        .collect();
    format!(
        "{} {} {}→{} by={} transfers={} rec={} ring={:?} talk={:?} cause={:?}",
        r.status.as_deref().unwrap_or("-"),
        r.direction,
        r.from,
        r.to,
        r.answered_by.join(","),
        transfers.join(","),
        r.recordings.len(),
        r.ring_secs,
        r.talk_secs,
        r.hangup_cause.as_ref().map(|h| h.code)
    )
}

async fn play_all(delivery: DeliveryMode, seed: u64) -> Vec<String> {
    let setup = setup(delivery, seed).await;
    let mut ids = Vec::new();
    for scenario in scenarios() {
        ids.push(setup.fake.play(&scenario));
    }
    let records = setup.ended(ids.len()).await;
    assert!(setup.rx.rejected.lock().unwrap().is_empty());
    // In the order played, whatever order they ended in.
    let facts = ids
        .iter()
        .map(|id| {
            facts(
                records
                    .iter()
                    .find(|r| &r.id == id)
                    .unwrap_or_else(|| panic!("{id} not ended")),
            )
        })
        .collect();
    setup.fake.shutdown().await;
    facts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripted_calls_give_the_expected_records_in_any_delivery_order() {
    let in_order = play_all(DeliveryMode::InOrder, 1).await;
    let expected = [
        "answered inbound +79161234567→74951234567 by=101 transfers= rec=0 ring=Some(14) talk=Some(30) cause=Some(1110)",
        "missed inbound +79161234568→74951234567 by= transfers= rec=0 ring=Some(34) talk=None cause=Some(1110)",
        "busy outbound 101→79161234569 by= transfers= rec=0 ring=Some(4) talk=None cause=Some(1121)",
        "answered inbound +79161234570→74951234567 by=101,102 transfers=blind:101>102 rec=0",
        "answered inbound +79161234571→74951234567 by=103 transfers= rec=0",
        "answered inbound +79161234572→74951234567 by=101 transfers= rec=1",
    ];
    for (got, want) in in_order.iter().zip(expected) {
        assert!(got.starts_with(want), "got  {got}\nwant {want}");
    }
    assert_eq!(in_order.len(), expected.len());
    // Shuffled with random delays, and every webhook twice: the same records.
    assert_eq!(
        play_all(DeliveryMode::Shuffled { seed: 7 }, 2).await,
        in_order
    );
    assert_eq!(play_all(DeliveryMode::Duplicated, 3).await, in_order);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_webhooks_are_rejected_and_change_nothing() {
    let setup = setup(DeliveryMode::InOrder, 4).await;
    let json = r#"{"entry_id":"Zm9yZ2Vk","call_id":"Zm9yZ2VkMQ==","timestamp":1716800000,"seq":1,"call_state":"Appeared","location":"abonent","from":{"number":"79160000000"},"to":{"extension":"101"}}"#;
    let http = calldesk_sim::mango::loopback_client_builder()
        .unwrap()
        .build()
        .unwrap();
    let post = |body: String| {
        let http = http.clone();
        let url = format!("{}events/call", setup.url);
        async move {
            http.post(url)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    // Signed with the right key but a guessed salt; another tenant's key; no sign at all.
    let forged =
        calldesk_mango_proto::SignedForm::encode(&Credentials::new(creds().key(), "guess"), json);
    assert_eq!(post(forged).await, reqwest::StatusCode::FORBIDDEN);
    let other = calldesk_mango_proto::SignedForm::encode(
        &Credentials::new("otherkey", "e2esalt000000000000000000000001"),
        json,
    );
    assert_eq!(post(other).await, reqwest::StatusCode::FORBIDDEN);
    assert_eq!(
        post(format!("vpbx_api_key={}&json={json}", creds().key())).await,
        reqwest::StatusCode::FORBIDDEN
    );
    let rejected = setup.rx.rejected.lock().unwrap().clone();
    assert_eq!(rejected.len(), 3);
    assert!(
        rejected[0].contains("signature does not match"),
        "{rejected:?}"
    );
    assert!(
        rejected[1].contains("does not belong to this tenant"),
        "{rejected:?}"
    );
    assert!(rejected[2].contains("no \"sign\" field"), "{rejected:?}");
    assert!(setup.rx.tracker.read().unwrap().live_call_ids().is_empty());
    // The genuine one is accepted.
    let genuine = calldesk_mango_proto::SignedForm::encode(&creds(), json);
    assert_eq!(post(genuine).await, reqwest::StatusCode::OK);
    assert_eq!(setup.rx.tracker.read().unwrap().live_call_ids().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn click_to_call_transfer_and_recording_through_the_pbx_trait() {
    let setup = setup(DeliveryMode::InOrder, 5).await;
    let pbx = setup.pbx();
    assert!(!pbx.capabilities().monitor);
    // The customer answers and stays until someone hangs up.
    setup.fake.set_phone(
        "79161112233",
        PhoneBehaviour::Answers {
            after_s: 2,
            talk_s: None,
        },
    );
    setup.fake.set_phone(
        "102",
        PhoneBehaviour::Answers {
            after_s: 2,
            talk_s: None,
        },
    );
    let outcome = pbx
        .execute(Control::Originate {
            operator: Extension::new("101").unwrap(),
            to: Destination::Number(
                NumberPlan::new("RU")
                    .unwrap()
                    .parse("+79161112233")
                    .unwrap(),
            ),
        })
        .await
        .unwrap();
    assert_eq!(outcome, ControlOutcome::Originated { call: None });
    // Wait until the customer's leg is connected in our tracker.
    let call = wait_for(|| {
        let t = setup.rx.tracker.read().unwrap();
        let ids = t.live_call_ids();
        let id = ids.first()?.clone();
        let legs = calldesk_mango_proto::tracker::LegDirectory::live_legs(&*t, &id)?;
        legs.iter()
            .any(|l| {
                l.state == calldesk_mango_proto::webhook::LegState::Connected
                    && l.to.number.as_deref() == Some("79161112233")
            })
            .then_some(id)
    })
    .await;
    pbx.execute(Control::Record {
        call: call.clone(),
        action: RecordAction::Start,
    })
    .await
    .unwrap();
    pbx.execute(Control::Transfer {
        call: call.clone(),
        operator: Extension::new("101").unwrap(),
        to: Destination::Extension(Extension::new("102").unwrap()),
        kind: TransferKind::Blind,
    })
    .await
    .unwrap();
    // 102 answers the transferred customer; then 102 hangs up through the API.
    wait_for(|| {
        let t = setup.rx.tracker.read().unwrap();
        let legs = calldesk_mango_proto::tracker::LegDirectory::live_legs(&*t, &call)?;
        legs.iter()
            .any(|l| {
                l.state == calldesk_mango_proto::webhook::LegState::Connected
                    && l.has_extension("102")
            })
            .then_some(())
    })
    .await;
    pbx.execute(Control::Hangup {
        call: call.clone(),
        operator: Some(Extension::new("102").unwrap()),
    })
    .await
    .unwrap();
    let records = setup.ended(1).await;
    let r = &records[0];
    assert_eq!(r.id, call.as_str());
    assert_eq!(
        (r.direction.as_str(), r.status.as_deref()),
        ("outbound", Some("answered"))
    );
    assert_eq!((r.from.as_str(), r.to.as_str()), ("101", "79161112233"));
    assert_eq!(r.answered_by, ["101", "102"]);
    assert_eq!(r.transfers.len(), 1);
    assert_eq!(
        (r.transfers[0].from.as_deref(), r.transfers[0].to.as_deref()),
        (Some("101"), Some("102"))
    );
    assert_eq!(
        r.hangup_cause.as_ref().map(|h| h.code),
        Some(1181),
        "ended by our API command"
    );
    assert_eq!(r.recordings.len(), 1, "{r:?}");
    // The recording downloads once `record/added` arrived (it is in the record by then or soon).
    let client = MangoClient::new(MangoConfig::with_base_url(
        setup.fake.base_url().parse().unwrap(),
        creds(),
    ))
    .unwrap();
    let mut file = Vec::new();
    let download = client
        .download_recording(&r.recordings[0], &mut file)
        .await
        .unwrap();
    assert_eq!(download.bytes as usize, file.len());
    assert_eq!(
        file,
        recording_audio(&r.recordings[0], FakeMangoConfig::default().recording_size)
    );
    // Every command the fake received was signed correctly (no 3xxx).
    let requests = setup.fake.requests();
    assert!(
        requests.iter().all(|q| q.code.is_none_or(|c| c == 1000)),
        "{requests:?}"
    );
    let paths: Vec<&str> = requests.iter().map(|q| q.path.as_str()).collect();
    for p in [
        "commands/callback",
        "commands/recording/start",
        "commands/transfer",
        "commands/call/hangup",
        "queries/recording/post",
    ] {
        assert!(paths.iter().any(|q| q.ends_with(p)), "{p} not in {paths:?}");
    }
    // A call that is over cannot be controlled.
    let err = pbx
        .execute(Control::Hangup {
            call: CallId::new(r.id.clone()).unwrap(),
            operator: None,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), "no_such_call");
}

async fn wait_for<T>(mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
