//! Situations the lab captures do not show (PJSIP, FreePBX-style queues, phone transfers,
//! resyncs of calls in progress), written as AMI message sequences in `tests/scenarios/*.ami`:
//! blank-line separated messages, `=====` between steps, a step starting with `RESYNC` is a
//! `CoreShowChannels` list. Each test states what the call book must say afterwards.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use bytes::BytesMut;
use calldesk_ami_proto::{AmiDecoder, Frame, Message};
use calldesk_asterisk::{AsteriskTracker, Replayer, TrackerEvent};
use calldesk_calls::{
    Call, CallBook, CallStatus, NumberPlan, PresenceEvent, TenantId, Timestamp, UpdateKind,
};

fn messages(text: &str) -> Vec<Message> {
    let mut raw = String::new();
    for block in text.trim().split("\n\n") {
        for line in block.lines() {
            raw.push_str(line.trim());
            raw.push_str("\r\n");
        }
        raw.push_str("\r\n");
    }
    let mut buf = BytesMut::from(raw.as_bytes());
    let mut decoder = AmiDecoder::without_banner();
    let mut out = Vec::new();
    while let Some(frame) = decoder.decode(&mut buf) {
        if let Frame::Message(m) = frame {
            out.push(m);
        }
    }
    out
}

/// Tracker + book, one second per message.
struct Run {
    tracker: AsteriskTracker,
    book: CallBook,
    now: i64,
    ended: Vec<Call>,
    presence: Vec<PresenceEvent>,
}

impl Run {
    fn new() -> Self {
        Self {
            tracker: AsteriskTracker::new(NumberPlan::new("RU").unwrap()),
            book: CallBook::new(TenantId::local()),
            now: 1_800_000_000_000,
            ended: Vec::new(),
            presence: Vec::new(),
        }
    }

    fn apply(&mut self, events: Vec<TrackerEvent>) {
        for e in events {
            match e {
                TrackerEvent::Call(c) => match self.book.apply(&c) {
                    Ok(Some(u)) if u.kind == UpdateKind::Ended => self.ended.push(u.call),
                    Ok(_) => {}
                    Err(a) => panic!("call book anomaly: {a} ({c:?})"),
                },
                TrackerEvent::Presence(p) => self.presence.push(p),
            }
        }
    }

    fn step(&mut self, text: &str) {
        if let Some(list) = text.trim().strip_prefix("RESYNC") {
            self.now += 1000;
            let mut out = Vec::new();
            self.tracker.resync(
                &messages(list),
                Timestamp::from_unix_millis(self.now),
                &mut out,
            );
            self.apply(out);
            return;
        }
        for m in messages(text) {
            self.now += 1000;
            let out = self
                .tracker
                .handle_to_vec(&m, Timestamp::from_unix_millis(self.now));
            self.apply(out);
        }
    }

    /// Runs every step of `tests/scenarios/<name>.ami`; `after(i, run)` is called after step i.
    fn scenario(name: &str, mut after: impl FnMut(usize, &Run)) -> Self {
        let path = format!("{}/tests/scenarios/{name}.ami", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).unwrap();
        let mut run = Self::new();
        for (i, step) in text.split("=====").enumerate() {
            run.step(step);
            after(i, &run);
        }
        run
    }

    fn live(&self) -> Vec<&Call> {
        self.book.live().collect()
    }
}

fn exts(call: &Call) -> Vec<&str> {
    call.answered_by.iter().map(|e| e.as_str()).collect()
}

#[test]
fn an_answered_outbound_call_rebuilt_by_a_resync_ends_answered() {
    let run = Run::scenario("resync_answered_outbound", |i, run| {
        if i == 0 {
            let live = run.live();
            assert_eq!(live.len(), 1);
            assert_eq!(exts(live[0]), ["101"], "the operator talks: {:?}", live[0]);
        }
    });
    assert_eq!(run.ended.len(), 1);
    let call = &run.ended[0];
    assert_eq!(call.status, Some(CallStatus::Answered));
    assert_eq!(call.to.raw, "84951234567");
    assert!(call.talk_seconds().is_some_and(|t| t > 0));
}

#[test]
fn a_blind_transfer_to_a_queue_is_one_transfer_not_one_per_member_rung() {
    let run = Run::scenario("blind_transfer_to_a_queue", |_, _| {});
    let live = run.live();
    assert_eq!(live.len(), 1);
    let call = live[0];
    assert_eq!(call.transfers.len(), 1, "{:?}", call.transfers);
    assert_eq!(
        call.transfers[0].to.as_ref().map(|p| p.raw.as_str()),
        Some("5000")
    );
    assert_eq!(call.queue.as_deref(), Some("support"));
    assert_eq!(
        call.rang.iter().map(|e| e.as_str()).collect::<Vec<_>>(),
        ["101", "102", "103"]
    );
}

#[test]
fn freepbx_queue_pause_and_a_click_to_call_into_an_ivr_are_kept() {
    let run = Run::scenario("freepbx_pause_and_ivr_click_to_call", |_, _| {});
    assert!(
        run.presence.iter().any(|p| matches!(
            p,
            PresenceEvent::QueueMember { extension, paused: true, reason: Some(r), .. }
                if extension.as_str() == "101" && r == "Lunch"
        )),
        "{:?}",
        run.presence
    );
    // The PBX confirmed the originate and the operator listened to an IVR: still their call.
    assert_eq!(run.ended.len(), 1, "{:?}", run.ended);
    assert_eq!(run.ended[0].from.raw, "101");
    assert_eq!(run.ended[0].to.raw, "7000");
}

#[test]
fn a_phone_attended_transfer_takes_the_customer_off_hold_and_leaves_nothing_live() {
    let run = Run::scenario("phone_attended_transfer", |i, run| {
        if i == 0 {
            // 102 now talks to the customer: not on hold any more, one live call.
            let live = run.live();
            let customer = live
                .iter()
                .find(|c| c.from.raw == "84957654321")
                .expect("the customer's call");
            assert!(!customer.on_hold, "{customer:?}");
            assert_eq!(customer.transfers.len(), 1);
        }
    });
    assert!(run.live().is_empty(), "{:?}", run.live());
    let customer = run
        .ended
        .iter()
        .find(|c| c.from.raw == "84957654321")
        .unwrap();
    assert_eq!(exts(customer), ["101", "102"]);
    assert_eq!(customer.status, Some(CallStatus::Answered));
}

#[test]
fn a_stale_originate_failure_is_not_pinned_on_an_old_call() {
    let run = Run::scenario("stale_originate_failure", |_, _| {});
    // The successful click-to-call into 7000 is recorded once; the later failure (a phone that
    // is not registered: no channel at all) makes no record from the old call's id.
    assert_eq!(run.ended.len(), 1, "{:?}", run.ended);
    assert_eq!(run.ended[0].status, Some(CallStatus::NoAnswer));
}

#[test]
fn holding_in_capture_e_ends_with_the_transfer() {
    // Real capture: 101 holds (Atxfer), the transfer completes, 101 hangs up; no Unhold ever
    // comes. The customer must not stay "on hold" while 102 talks to them.
    let bytes = calldesk_fixtures::ami_rx("e_attended_transfer");
    let text = String::from_utf8_lossy(&bytes);
    let cut = text.find("Event: LocalOptimizationEnd").unwrap();
    let mut replayer = Replayer::new(NumberPlan::new("RU").unwrap());
    replayer.feed(&bytes[..cut], Timestamp::from_unix_millis(0));
    let live: Vec<_> = replayer.live().collect();
    assert_eq!(live.len(), 1);
    assert!(!live[0].on_hold, "{:?}", live[0]);
    assert_eq!(live[0].transfers.len(), 1);
}

#[test]
fn a_busy_leg_of_a_ring_all_dial_does_not_make_the_call_busy() {
    let mut run = Run::new();
    run.step(
        "Event: Newchannel\nChannel: PJSIP/trunk-1\nUniqueid: 9.1\nLinkedid: 9.1\nExten: 4950000000\nCallerIDNum: +74951112233

Event: Newchannel\nChannel: PJSIP/101-2\nUniqueid: 9.2\nLinkedid: 9.1\nExten: s

Event: Newchannel\nChannel: PJSIP/102-3\nUniqueid: 9.3\nLinkedid: 9.1\nExten: s

Event: DialBegin\nChannel: PJSIP/trunk-1\nUniqueid: 9.1\nLinkedid: 9.1\nDestChannel: PJSIP/101-2\nDestUniqueid: 9.2\nDestLinkedid: 9.1

Event: DialBegin\nChannel: PJSIP/trunk-1\nUniqueid: 9.1\nLinkedid: 9.1\nDestChannel: PJSIP/102-3\nDestUniqueid: 9.3\nDestLinkedid: 9.1

Event: DialEnd\nChannel: PJSIP/trunk-1\nUniqueid: 9.1\nLinkedid: 9.1\nDestChannel: PJSIP/101-2\nDestUniqueid: 9.2\nDestLinkedid: 9.1\nDialStatus: BUSY

Event: Hangup\nChannel: PJSIP/101-2\nUniqueid: 9.2\nLinkedid: 9.1\nCause: 17

Event: DialEnd\nChannel: PJSIP/trunk-1\nUniqueid: 9.1\nLinkedid: 9.1\nDestChannel: PJSIP/102-3\nDestUniqueid: 9.3\nDestLinkedid: 9.1\nDialStatus: NOANSWER

Event: Hangup\nChannel: PJSIP/102-3\nUniqueid: 9.3\nLinkedid: 9.1\nCause: 16

Event: Hangup\nChannel: PJSIP/trunk-1\nUniqueid: 9.1\nLinkedid: 9.1\nCause: 19",
    );
    assert_eq!(run.ended.len(), 1);
    assert_eq!(run.ended[0].status, Some(CallStatus::Missed));
}

#[test]
fn a_large_conference_bridge_stays_cheap() {
    // 300 operators join one bridge with a customer: every BridgeEnter re-reads the bridge.
    let mut text = String::from(
        "Event: Newchannel\nChannel: PJSIP/trunk-0\nUniqueid: 7.0\nLinkedid: 7.0\nExten: 100\nCallerIDNum: +74951112233\n\nEvent: BridgeEnter\nChannel: PJSIP/trunk-0\nUniqueid: 7.0\nLinkedid: 7.0\nBridgeUniqueid: conf\n",
    );
    for i in 1..=300 {
        text += &format!(
            "\nEvent: Newchannel\nChannel: PJSIP/{e}-{i}\nUniqueid: 7.{i}\nLinkedid: 7.0\nExten: s\n\nEvent: BridgeEnter\nChannel: PJSIP/{e}-{i}\nUniqueid: 7.{i}\nLinkedid: 7.0\nBridgeUniqueid: conf\n",
            e = 10_000 + i
        );
    }
    let mut run = Run::new();
    run.step(&text);
    let live = run.live();
    assert_eq!(live[0].answered_by.len(), 300);
}
