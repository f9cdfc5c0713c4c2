//! Every real Asterisk 20 capture, replayed with its original timing through codec → tracker →
//! call book, must give:
//! - exactly the calls of `expected/<capture>.json` (written from what the lab phones did), and
//! - exactly the full records in `tests/snapshots/<capture>.jsonl` (times, causes, recordings;
//!   reviewed by hand against each capture's README; `UPDATE_SNAPSHOTS=1` rewrites them).
//!
//! Feeding a capture in random chunk sizes gives the same records (proptest).

// Test helpers may panic on bad fixtures: that is a failed test, not a crash.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use calldesk_asterisk::{Replayer, rx_chunks};
use calldesk_calls::{NumberPlan, Timestamp};
use calldesk_wire::CallRecord;
use proptest::prelude::*;

/// Scenario captures (those with an `expected/` file), plus the ones with no call.
const SCENARIOS: &[&str] = &[
    "a_inbound_answered",
    "b_inbound_noanswer",
    "c_inbound_busy",
    "d1_blind_transfer_redirect",
    "e_attended_transfer",
    "f_hold_moh",
    "f2_park_retrieve",
    "g_spy_listen_whisper_barge",
    "h1_click_to_call",
    "h2_click_to_call_agent_busy",
    "h3_click_to_call_agent_noanswer",
    "i_mixmonitor_ami",
    "k1_queue_answered",
];

fn plan() -> NumberPlan {
    NumberPlan::new("RU").unwrap()
}

/// Replays `name` chunk by chunk as it was received; returns the records of ended calls.
fn replay(name: &str) -> (Vec<CallRecord>, Replayer) {
    let bytes = calldesk_fixtures::ami_rx(name);
    let timeline = String::from_utf8(calldesk_fixtures::ami_file(&format!(
        "{name}.timeline.jsonl"
    )))
    .unwrap();
    let mut replayer = Replayer::new(plan());
    for chunk in rx_chunks(&timeline).unwrap() {
        replayer.feed(&bytes[chunk.off..chunk.off + chunk.len], chunk.at);
    }
    let records = replayer
        .take_ended()
        .iter()
        .map(|c| CallRecord::new(c, true))
        .collect();
    (records, replayer)
}

/// The fields `expected/*.json` has, from a record.
fn as_expected(r: &CallRecord) -> serde_json::Value {
    serde_json::json!({
        "caller": r.from,
        "dialed": r.to,
        "direction": r.direction,
        "status": r.status,
        "answered_by": r.answered_by,
        "transfers": r.transfers.iter().map(|t| serde_json::json!({
            "kind": t.kind, "from": t.from, "to": t.to,
        })).collect::<Vec<_>>(),
        "queue": r.queue,
        "monitors": r.monitors.iter().map(|m| m.by.clone()).collect::<Vec<_>>(),
    })
}

fn expected(name: &str) -> Vec<serde_json::Value> {
    let text = calldesk_fixtures::ami_file(&format!("expected/{name}.json"));
    let all: Vec<serde_json::Value> = serde_json::from_slice(&text).unwrap();
    all.into_iter()
        .map(|mut c| {
            c.as_object_mut().unwrap().remove("note");
            c
        })
        .collect()
}

#[test]
fn every_scenario_capture_gives_the_expected_calls() {
    let mut failures = Vec::new();
    for name in SCENARIOS {
        let (records, replayer) = replay(name);
        let got: Vec<_> = records.iter().map(as_expected).collect();
        let want = expected(name);
        if got != want {
            failures.push(format!(
                "{name}:\n  got  {}\n  want {}",
                serde_json::to_string(&got).unwrap(),
                serde_json::to_string(&want).unwrap()
            ));
        }
        assert_eq!(replayer.live().count(), 0, "{name}: calls left open");
        assert_eq!(
            replayer.tracker().live_channels(),
            0,
            "{name}: channels left"
        );
        assert_eq!(replayer.anomalies(), 0, "{name}: book anomalies");
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn snapshot_path(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/snapshots")
        .join(format!("{name}.jsonl"))
}

#[test]
fn full_records_match_the_reviewed_snapshots() {
    let update = std::env::var_os("UPDATE_SNAPSHOTS").is_some();
    let mut failures = Vec::new();
    for name in SCENARIOS
        .iter()
        .chain(["j6_restart_reconnect.conn1"].iter())
    {
        let (records, _) = replay(name);
        let mut text = String::new();
        for r in &records {
            text += &serde_json::to_string(r).unwrap();
            text.push('\n');
        }
        let path = snapshot_path(name);
        if update {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &text).unwrap();
            continue;
        }
        let want = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (run with UPDATE_SNAPSHOTS=1)", path.display()));
        if text != want {
            failures.push(format!("{name}:\n  got:\n{text}  want:\n{want}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn captures_without_calls_give_no_records_and_never_fail() {
    for name in [
        "j1_login_failure",
        "j1_login_failure.conn2_unknown_user",
        "j1_login_failure.conn3_md5_challenge",
        "j2_errors_unknown_action",
        "j4_ping_events",
        "j5_command",
        "j6_restart_reconnect.conn2",
        "k3_queue_member_mgmt",
    ] {
        let (records, replayer) = replay(name);
        assert!(records.is_empty(), "{name}: {records:?}");
        assert_eq!(replayer.anomalies(), 0, "{name}");
    }
    // k3 pauses SIP/103 in queue support with reason Lunch: presence events come out.
    let (_, replayer) = replay("k3_queue_member_mgmt");
    assert!(replayer.presence_events() >= 2);
}

#[test]
fn the_busy_hour_balances() {
    let (records, replayer) = replay("z_busy_hour");
    // 18,409 events and 34 responses (INDEX.json).
    assert_eq!(replayer.messages(), 18_443);
    assert_eq!(replayer.live().count(), 0, "calls left open");
    assert_eq!(replayer.tracker().live_channels(), 0);
    assert_eq!(replayer.anomalies(), 0);
    // 180 calls; the README's totals: 123 queue calls (117 answered by agents, 6 abandoned),
    // 23 busy and 13 no-answer Dial results.
    assert_eq!(records.len(), 180);
    let queued: Vec<_> = records.iter().filter(|r| r.queue.is_some()).collect();
    assert_eq!(queued.len(), 123);
    let by_agent = queued
        .iter()
        .filter(|r| r.status.as_deref() == Some("answered"))
        .count();
    assert_eq!(by_agent, 117);
    let count = |s: &str| {
        records
            .iter()
            .filter(|r| r.status.as_deref() == Some(s))
            .count()
    };
    assert_eq!(count("busy"), 23);
    let ids: std::collections::HashSet<_> = records.iter().map(|r| &r.id).collect();
    assert_eq!(ids.len(), records.len(), "duplicate call ids");
}

fn replay_in_chunks(bytes: &[u8], cuts: &[usize]) -> Vec<CallRecord> {
    let mut replayer = Replayer::new(plan());
    let mut start = 0;
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    points.sort_unstable();
    points.push(bytes.len());
    for (i, end) in points.into_iter().enumerate() {
        if end < start {
            continue;
        }
        replayer.feed(
            &bytes[start..end],
            Timestamp::from_unix_millis(i as i64 * 10),
        );
        start = end;
    }
    replayer
        .take_ended()
        .iter()
        .map(|c| CallRecord::new(c, false))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn chunking_never_changes_the_records(
        which in 0..SCENARIOS.len(),
        cuts in proptest::collection::vec(any::<usize>(), 0..64),
    ) {
        let bytes = calldesk_fixtures::ami_rx(SCENARIOS[which]);
        let whole = replay_in_chunks(&bytes, &[]);
        let chunked = replay_in_chunks(&bytes, &cuts);
        prop_assert_eq!(whole, chunked);
    }
}

/// Every message delivered twice (a proxy that repeats, a replayed buffer): same records.
#[test]
fn duplicated_messages_change_nothing() {
    for name in SCENARIOS {
        let bytes = calldesk_fixtures::ami_rx(name);
        let mut buf = bytes::BytesMut::from(&bytes[..]);
        let mut decoder = calldesk_ami_proto::AmiDecoder::new();
        let mut twice = Replayer::new(plan());
        let mut once = Replayer::new(plan());
        let mut i = 0;
        while let Some(frame) = decoder.decode(&mut buf) {
            let calldesk_ami_proto::Frame::Message(m) = frame else {
                continue;
            };
            i += 10;
            let at = Timestamp::from_unix_millis(i);
            once.feed(m.raw(), at);
            twice.feed(m.raw(), at);
            twice.feed(m.raw(), at);
        }
        let records = |r: &mut Replayer| -> Vec<CallRecord> {
            r.take_ended()
                .iter()
                .map(|c| CallRecord::new(c, true))
                .collect()
        };
        assert_eq!(records(&mut twice), records(&mut once), "{name}");
    }
}
