//! Scenario webhooks (`tests/scenarios/*.jsonl`, written from the reference's §6 examples and
//! §3.2 callback flow) through the tracker and a call book: the records must equal the
//! hand-reviewed `tests/expected/<name>.json` (`UPDATE_SNAPSHOTS=1` rewrites them; review the
//! diff), and any permutation and duplication of a scenario's webhooks gives the same records.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

use calldesk_calls::{
    CallBook, CallEvent, CallEventKind, CallId, NumberPlan, TenantId, Timestamp, UpdateKind,
};
use calldesk_mango_proto::Webhook;
use calldesk_mango_proto::replay::{parse_line, replay, replay_hooks};
use calldesk_mango_proto::tracker::{LegDirectory, MangoTracker, Timing};
use calldesk_mango_proto::webhook::LegState;
use calldesk_wire::CallRecord;
use proptest::prelude::*;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests")
}

fn plan() -> NumberPlan {
    NumberPlan::new("RU").unwrap()
}

/// Short timers for the tests of when calls end.
const QUICK: Timing = Timing {
    settle_ms: 10,
    no_summary_ms: 1_000,
    stale_ms: 60_000,
};

const SCENARIOS: &[&str] = &[
    "answered",
    "missed",
    "busy",
    "blind_transfer",
    "consultative_transfer",
    "hold",
    "recorded",
    "callback",
    "callback_operator_no_answer",
    "queue_timeout_no_summary",
    "legacy",
];

fn hooks(name: &str) -> Vec<Webhook> {
    let text =
        std::fs::read_to_string(dir().join("scenarios").join(format!("{name}.jsonl"))).unwrap();
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| parse_line(i + 1, l).unwrap())
        .collect()
}

fn records(hooks: &[Webhook]) -> Vec<CallRecord> {
    replay_hooks(hooks, &plan())
        .iter()
        .map(|c| CallRecord::new(c, true))
        .collect()
}

#[test]
fn every_scenario_gives_its_reviewed_records() {
    let mut failures = Vec::new();
    for name in SCENARIOS {
        let got = records(&hooks(name));
        let path = dir().join("expected").join(format!("{name}.json"));
        let rendered = serde_json::to_string_pretty(&got).unwrap() + "\n";
        if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &rendered).unwrap();
            continue;
        }
        let want: Vec<CallRecord> =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        if got != want {
            failures.push(format!("{name}: got\n{rendered}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn key_facts_of_the_scenarios() {
    let one = |name| {
        let r = records(&hooks(name));
        assert_eq!(r.len(), 1, "{name}");
        r.into_iter().next().unwrap()
    };
    let a = one("answered");
    assert_eq!(
        (a.status.as_deref(), a.answered_by.as_slice()),
        (Some("answered"), &["101".to_owned()][..])
    );
    assert_eq!((a.ring_secs, a.talk_secs), (Some(14), Some(117)));
    assert_eq!(
        (a.from.as_str(), a.to.as_str()),
        ("+79161234567", "74951234567")
    );
    let m = one("missed");
    assert_eq!(
        (m.status.as_deref(), m.answered_by.len()),
        (Some("missed"), 0)
    );
    assert_eq!(one("busy").status.as_deref(), Some("busy"));
    let b = one("blind_transfer");
    assert_eq!(b.answered_by, ["101", "102"]);
    assert_eq!(
        (
            b.transfers[0].kind.as_str(),
            b.transfers[0].from.as_deref(),
            b.transfers[0].to.as_deref()
        ),
        ("blind", Some("101"), Some("102"))
    );
    let c = one("consultative_transfer");
    assert_eq!(
        c.answered_by,
        ["101", "102"],
        "the consultation itself is not an answer"
    );
    assert_eq!(c.transfers[0].kind, "attended");
    assert_eq!(
        one("recorded").recordings,
        ["MToxMDAxMjM0NTo1MDA5NDExMDIyOjE="]
    );
    let cb = one("callback");
    assert_eq!(
        (cb.direction.as_str(), cb.from.as_str(), cb.to.as_str()),
        ("outbound", "101", "79161234567")
    );
    assert_eq!((cb.ring_secs, cb.talk_secs), (Some(11), Some(60)));
    assert_eq!(
        one("callback_operator_no_answer").status.as_deref(),
        Some("failed")
    );
    let q = one("queue_timeout_no_summary");
    assert_eq!(
        (q.status.as_deref(), q.hangup_cause.map(|h| h.code)),
        (Some("missed"), Some(1163))
    );
    assert_eq!(one("legacy").answered_by, ["101"]);
}

#[test]
fn the_replay_file_format_reports_bad_lines() {
    let plan = plan();
    let err = replay("{\"path\":\"/events/call\",\"json\":\"{}\"}\n", &plan)
        .err()
        .unwrap();
    assert_eq!(
        err.to_string(),
        "line 1: /events/call event without call_id"
    );
    let err = replay("\n\nnot json\n", &plan).err().unwrap();
    assert!(
        err.to_string().starts_with("line 3: not a JSON object"),
        "{err}"
    );
    let err = replay("{\"path\":\"/nope\",\"json\":\"{}\"}", &plan)
        .err()
        .unwrap();
    assert!(err.to_string().contains("unknown webhook path"), "{err}");
}

/// Applies `events` to a book; the updates' kinds and the final calls.
fn apply(events: &[CallEvent]) -> (Vec<UpdateKind>, Vec<calldesk_calls::Call>) {
    let mut book = CallBook::new(TenantId::local());
    let mut kinds = Vec::new();
    let mut ended = Vec::new();
    for e in events {
        if let Some(u) = book.apply(e).unwrap() {
            kinds.push(u.kind);
            if u.kind == UpdateKind::Ended {
                ended.push(u.call);
            }
        }
    }
    (kinds, ended)
}

#[test]
fn the_first_event_pops_the_call_and_the_end_waits_for_the_summary_to_settle() {
    let hooks = hooks("answered");
    let mut t = MangoTracker::new(plan(), Timing::default());
    let now = Timestamp::from_unix_millis(1_000_000);
    let mut out = Vec::new();
    t.handle(&hooks[0], now, &mut out);
    assert!(
        matches!(out[0].kind, CallEventKind::Started { .. }),
        "{out:?}"
    );
    // Operator leg rings: the book hears of the operator at once.
    t.handle(&hooks[2], now, &mut out);
    assert!(out.iter().any(|e| matches!(&e.kind, CallEventKind::OperatorRinging { extension } if extension.as_str() == "101")));
    for h in &hooks[1..] {
        t.handle(h, now, &mut out);
    }
    let id = CallId::new("MjYwNTQ4ODA3Nzc=").unwrap();
    assert_eq!(t.live_call_ids(), vec![id.clone()]);
    assert_eq!(t.live_legs(&id), Some(Vec::new()), "every leg disconnected");
    let before = out.len();
    t.tick(Timestamp::from_unix_millis(1_001_999), &mut out);
    assert_eq!(out.len(), before, "the summary has not settled yet");
    t.tick(Timestamp::from_unix_millis(1_002_000), &mut out);
    assert!(matches!(
        out.last().map(|e| &e.kind),
        Some(CallEventKind::Ended { .. })
    ));
    assert!(t.live_call_ids().is_empty());
    // A late duplicate after the end is counted and dropped.
    let n = out.len();
    t.handle(&hooks[3], Timestamp::from_unix_millis(1_003_000), &mut out);
    assert_eq!((out.len(), t.stats().late_events), (n, 1));
    let (kinds, ended) = apply(&out);
    assert_eq!(kinds.first(), Some(&UpdateKind::New));
    assert_eq!(ended.len(), 1);
}

#[test]
fn live_legs_for_commands_and_ends_without_summary() {
    let hooks = hooks("missed");
    let mut t = MangoTracker::new(plan(), QUICK);
    let mut out = Vec::new();
    let at = |ms| Timestamp::from_unix_millis(ms);
    for h in &hooks[..4] {
        t.handle(h, at(0), &mut out);
    }
    let id = CallId::new("MjYwNTQ4ODA5MTI=").unwrap();
    let legs = t.live_legs(&id).unwrap();
    assert_eq!(legs.len(), 2, "{legs:?}");
    assert!(legs.iter().all(|l| l.state == LegState::Appeared));
    assert!(legs[0].has_extension("101") && legs[1].has_extension("102"));
    assert_eq!(t.live_legs(&CallId::new("other").unwrap()), None);
    // Both ringing legs end, the summary never comes: the call ends after `no_summary`.
    t.handle(&hooks[4], at(10), &mut out);
    t.handle(&hooks[5], at(20), &mut out);
    t.tick(at(1_019), &mut out);
    assert_eq!(t.live_call_ids().len(), 1);
    t.tick(at(1_020), &mut out);
    assert!(t.live_call_ids().is_empty());
    let (_, ended) = apply(&out);
    assert_eq!(ended[0].status.map(|s| s.as_str()), Some("missed"));
    // A call that never ends is closed as stale.
    let mut t = MangoTracker::new(plan(), QUICK);
    let mut out = Vec::new();
    t.handle(&hooks[0], at(0), &mut out);
    t.tick(at(59_999), &mut out);
    assert_eq!(t.live_call_ids().len(), 1);
    t.tick(at(60_000), &mut out);
    assert!(t.live_call_ids().is_empty());
}

#[test]
fn late_knowledge_is_sent_as_one_revision() {
    // Worst order: the summary first, then the legs from last to first.
    let mut hooks = hooks("blind_transfer");
    hooks.reverse();
    let mut t = MangoTracker::new(plan(), Timing::default());
    let mut out = Vec::new();
    for h in &hooks {
        t.handle(h, Timestamp::from_unix_millis(0), &mut out);
    }
    t.finish(&mut out);
    assert!(
        out.iter()
            .any(|e| matches!(e.kind, CallEventKind::Revised(_))),
        "{out:?}"
    );
    let (_, ended) = apply(&out);
    let got: Vec<CallRecord> = ended.iter().map(|c| CallRecord::new(c, true)).collect();
    hooks.reverse();
    assert_eq!(got, records(&hooks));
}

#[test]
fn employees_known_by_sip_address_count_as_their_extension() {
    let line = r#"{"path":"/events/call","json":"{\"call_id\":\"s1\",\"call_state\":\"Connected\",\"from\":{\"number\":\"79991234567\"},\"to\":{\"number\":\"sip:ivanov@vpbx4.mangosip.ru\"},\"timestamp\":10}"}"#;
    let hook = parse_line(1, line).unwrap();
    let mut t = MangoTracker::new(plan(), Timing::default());
    t.set_employees([("ivanov@vpbx4.mangosip.ru".to_owned(), "0511".to_owned())]);
    let mut out = Vec::new();
    t.handle(&hook, Timestamp::from_unix_millis(0), &mut out);
    t.finish(&mut out);
    let (_, ended) = apply(&out);
    assert_eq!(
        ended[0]
            .answered_by
            .iter()
            .map(|e| e.as_str())
            .collect::<Vec<_>>(),
        ["0511"]
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Any order and any duplication of a scenario's webhooks: the same final records.
    #[test]
    fn permutations_and_duplicates_give_the_same_records(
        scenario in 0..SCENARIOS.len(),
        order in prop::collection::vec(any::<u32>(), 40),
        dups in prop::collection::vec(0usize..40, 0..12),
    ) {
        let name = SCENARIOS[scenario];
        let hooks = hooks(name);
        let want = records(&hooks);
        let mut shuffled: Vec<(u32, Webhook)> = hooks
            .iter()
            .cloned()
            .enumerate()
            .map(|(i, h)| (order[i % order.len()].wrapping_add(i as u32), h))
            .collect();
        for d in dups {
            let copy = shuffled[d % shuffled.len()].clone();
            shuffled.push((copy.0.wrapping_mul(31), copy.1));
        }
        shuffled.sort_by_key(|(k, _)| *k);
        let hooks: Vec<Webhook> = shuffled.into_iter().map(|(_, h)| h).collect();
        prop_assert_eq!(records(&hooks), want, "{}", name);
    }
}
