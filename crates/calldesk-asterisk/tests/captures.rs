//! The real Asterisk 20 captures must produce exactly the calls in `expected/*.json`.

// Test helpers may panic on bad fixtures: that is a failed test, not a crash.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use bytes::BytesMut;
use calldesk_ami_proto::{AmiDecoder, Frame};
use calldesk_asterisk::AsteriskTracker;
use calldesk_calls::{CallBook, NumberPlan, TenantId, Timestamp, UpdateKind};

/// Replays a capture through decoder → tracker → call book; returns the ended calls as JSON in
/// the shape of `expected/*.json` (the fields this tracker covers).
fn replay(name: &str) -> Vec<serde_json::Value> {
    let bytes = calldesk_fixtures::ami_rx(name);
    let mut buf = BytesMut::from(&bytes[..]);
    let mut decoder = AmiDecoder::new();
    let mut tracker = AsteriskTracker::new(NumberPlan::new("RU").unwrap());
    let mut book = CallBook::new(TenantId::new("lab").unwrap());
    let mut ended = Vec::new();
    let mut t = 0;
    while let Some(frame) = decoder.decode(&mut buf) {
        let Frame::Message(msg) = frame else { continue };
        t += 10;
        for event in tracker.handle(&msg, Timestamp::from_unix_millis(t)) {
            let update = book.apply(&event).unwrap_or_else(|a| panic!("{name}: {a}"));
            if let Some(u) = update.filter(|u| u.kind == UpdateKind::Ended) {
                let c = u.call;
                ended.push(serde_json::json!({
                    "caller": c.from.number.as_ref().map_or(c.from.raw.clone(), |n| n.e164().to_owned()),
                    "dialed": c.to.raw,
                    "direction": c.direction.as_str(),
                    "status": c.status.map(|s| s.as_str()),
                    "answered_by": c.answered_by.iter().map(|e| e.as_str()).collect::<Vec<_>>(),
                }));
            }
        }
    }
    assert_eq!(tracker.live_calls(), 0, "{name}: calls left open");
    ended
}

fn expected(name: &str) -> Vec<serde_json::Value> {
    let text = calldesk_fixtures::ami_file(&format!("expected/{name}.json"));
    let all: Vec<serde_json::Value> = serde_json::from_slice(&text).unwrap();
    all.into_iter()
        .map(|c| {
            serde_json::json!({
                "caller": c["caller"], "dialed": c["dialed"], "direction": c["direction"],
                "status": c["status"], "answered_by": c["answered_by"],
            })
        })
        .collect()
}

#[test]
fn inbound_captures_give_the_expected_calls() {
    for name in ["a_inbound_answered", "b_inbound_noanswer", "c_inbound_busy"] {
        assert_eq!(replay(name), expected(name), "capture {name}");
    }
}
