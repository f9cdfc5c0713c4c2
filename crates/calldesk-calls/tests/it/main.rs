//! Data-driven tests of the call book: a script of events in, the rendered updates out.
//!
//! Script lines (times in seconds after 0):
//! `@T start ID inbound|outbound|internal FROM TO`, `@T ring ID EXT`, `@T answer ID [EXT]`,
//! `@T busy ID`, `@T end ID [cause=N] [status=S]`,
//! `@T revise ID DIRECTION FROM TO START_SECS RANG ANSWERED_BY [ANSWER_SECS]` (lists comma-separated
//! or `-`).

// Test helpers may panic on bad fixtures: that is a failed test, not a crash.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use calldesk_calls::{
    CallBook, CallEvent, CallEventKind, CallFacts, CallId, CallPhase, CallStatus, CallUpdate,
    Direction, Extension, HangupCause, NumberPlan, TenantId, Timestamp, UpdateKind,
};

fn parse_line(plan: &NumberPlan, line: &str) -> CallEvent {
    let words: Vec<&str> = line.split_whitespace().collect();
    let at_secs: f64 = words[0].trim_start_matches('@').parse().unwrap();
    let at = Timestamp::from_unix_millis(1_800_000_000_000 + (at_secs * 1000.0) as i64);
    let call = CallId::new(words[2]).unwrap();
    let arg = |i: usize| words.get(i).copied();
    let kind = match words[1] {
        "start" => CallEventKind::Started {
            direction: Direction::from_name(words[3])
                .unwrap_or_else(|| panic!("unknown direction `{}` in script", words[3])),
            from: plan.party(words[4]),
            to: plan.party(words[5]),
        },
        "ring" => CallEventKind::OperatorRinging {
            extension: Extension::new(words[3]).unwrap(),
        },
        "answer" => CallEventKind::Answered {
            extension: arg(3).map(|e| Extension::new(e).unwrap()),
        },
        "busy" => CallEventKind::BusySignalled,
        "revise" => {
            let list = |w: &str| -> Vec<Extension> {
                w.split(',')
                    .filter(|e| *e != "-")
                    .map(|e| Extension::new(e).unwrap())
                    .collect()
            };
            let time = |w: &str| {
                Timestamp::from_unix_millis(1_800_000_000_000 + w.parse::<i64>().unwrap() * 1000)
            };
            CallEventKind::Revised(Box::new(CallFacts {
                direction: Direction::from_name(words[3]).unwrap(),
                from: plan.party(words[4]),
                to: plan.party(words[5]),
                started_at: time(words[6]),
                rang: list(words[7]),
                answered_by: list(words[8]),
                answered_at: arg(9).map(time),
                transfers: Vec::new(),
                queue: None,
                recordings: Vec::new(),
            }))
        }
        "end" => {
            let mut cause = None;
            let mut status = None;
            for w in &words[3..] {
                if let Some(c) = w.strip_prefix("cause=") {
                    cause = Some(HangupCause {
                        code: c.parse().unwrap(),
                        text: String::new(),
                    });
                }
                if let Some(s) = w.strip_prefix("status=") {
                    status = Some(match s {
                        "failed" => CallStatus::Failed,
                        "cancelled" => CallStatus::Cancelled,
                        other => panic!("status {other} not scriptable"),
                    });
                }
            }
            CallEventKind::Ended { cause, status }
        }
        other => panic!("unknown script verb {other}"),
    };
    CallEvent { call, at, kind }
}

fn render(update: &CallUpdate) -> String {
    let c = &update.call;
    let kind = match update.kind {
        UpdateKind::New => "new",
        UpdateKind::Changed => "changed",
        UpdateKind::Ended => "ended",
    };
    let phase = match c.phase {
        CallPhase::Setup => "setup",
        CallPhase::Ringing => "ringing",
        CallPhase::Talking => "talking",
        CallPhase::Ended => "ended",
    };
    let join = |v: &[Extension]| v.iter().map(|e| e.as_str()).collect::<Vec<_>>().join(",");
    let mut s = format!(
        "{kind} {} {phase} from={} to={}",
        c.id,
        c.from.display(),
        c.to.display()
    );
    if !c.rang.is_empty() {
        s += &format!(" rang={}", join(&c.rang));
    }
    if !c.answered_by.is_empty() {
        s += &format!(" by={}", join(&c.answered_by));
    }
    if let Some(status) = c.status {
        s += &format!(" status={}", status.as_str());
    }
    if let Some(r) = c.ring_seconds()
        && c.status.is_some()
    {
        s += &format!(" ring={r}s");
    }
    if let Some(t) = c.talk_seconds() {
        s += &format!(" talk={t}s");
    }
    if let Some(cause) = &c.hangup_cause {
        s += &format!(" cause={}", cause.code);
    }
    s
}

/// Runs `script` and compares the updates (one per line, `-` for "no change") with `expect`.
fn check(script: &str, expect: &str) {
    let plan = NumberPlan::new("RU").unwrap();
    let mut book = CallBook::new(TenantId::new("acme").unwrap());
    let mut out = Vec::new();
    for line in script.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let event = parse_line(&plan, line);
        out.push(match book.apply(&event) {
            Ok(Some(update)) => render(&update),
            Ok(None) => "-".to_owned(),
            Err(anomaly) => format!("anomaly: {anomaly}"),
        });
    }
    let expect: Vec<&str> = expect
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    assert_eq!(
        out,
        expect,
        "\nscript:\n{script}\ngot:\n{}\n",
        out.join("\n")
    );
}

#[test]
fn inbound_answered() {
    check(
        "@0 start c1 inbound 84951234567 101
         @0.5 ring c1 101
         @2.5 answer c1 101
         @5.5 end c1 cause=16",
        "new c1 setup from=+7 495 123-45-67 to=101
         changed c1 ringing from=+7 495 123-45-67 to=101 rang=101
         changed c1 talking from=+7 495 123-45-67 to=101 rang=101 by=101
         ended c1 ended from=+7 495 123-45-67 to=101 rang=101 by=101 status=answered ring=2s talk=3s cause=16",
    );
}

#[test]
fn inbound_not_answered_is_missed_and_busy_is_busy() {
    check(
        "@0 start m inbound +4989555666 101
         @0 ring m 101
         @20 end m cause=19
         @0 start b inbound +442071234567 101
         @0 ring b 101
         @0.1 busy b
         @0.2 end b cause=17",
        "new m setup from=+49 89 555666 to=101
         changed m ringing from=+49 89 555666 to=101 rang=101
         ended m ended from=+49 89 555666 to=101 rang=101 status=missed ring=20s cause=19
         new b setup from=+44 20 7123 4567 to=101
         changed b ringing from=+44 20 7123 4567 to=101 rang=101
         changed b ringing from=+44 20 7123 4567 to=101 rang=101
         ended b ended from=+44 20 7123 4567 to=101 rang=101 status=busy ring=0s cause=17",
    );
}

#[test]
fn outbound_statuses() {
    check(
        "@0 start o1 outbound 101 +74951234567
         @30 end o1
         @0 start o2 outbound 101 +74951234567
         @3 end o2 status=failed
         @0 start o3 internal 101 102
         @1 ring o3 102
         @2 end o3 status=cancelled",
        "new o1 setup from=101 to=+7 495 123-45-67
         ended o1 ended from=101 to=+7 495 123-45-67 status=no_answer ring=30s
         new o2 setup from=101 to=+7 495 123-45-67
         ended o2 ended from=101 to=+7 495 123-45-67 status=failed ring=3s
         new o3 setup from=101 to=102
         changed o3 ringing from=101 to=102 rang=102
         ended o3 ended from=101 to=102 rang=102 status=cancelled ring=2s",
    );
}

#[test]
fn duplicates_change_nothing_and_ended_is_final() {
    check(
        "@0 start d inbound +74951234567 101
         @0 start d inbound +74951234567 101
         @1 ring d 101
         @1 ring d 101
         @2 answer d 101
         @2.5 answer d 101
         @9 end d cause=16
         @9 end d cause=16
         @10 ring d 102
         @11 start d inbound +74951234567 101",
        "new d setup from=+7 495 123-45-67 to=101
         -
         changed d ringing from=+7 495 123-45-67 to=101 rang=101
         -
         changed d talking from=+7 495 123-45-67 to=101 rang=101 by=101
         -
         ended d ended from=+7 495 123-45-67 to=101 rang=101 by=101 status=answered ring=2s talk=7s cause=16
         -
         -
         -",
    );
}

#[test]
fn transfer_appends_operators_and_keeps_first_answer_time() {
    check(
        "@0 start t inbound +74951234567 5000
         @1 ring t 101
         @1 ring t 102
         @3 answer t 102
         @10 ring t 103
         @12 answer t 103
         @20 end t",
        "new t setup from=+7 495 123-45-67 to=5000
         changed t ringing from=+7 495 123-45-67 to=5000 rang=101
         changed t ringing from=+7 495 123-45-67 to=5000 rang=101,102
         changed t talking from=+7 495 123-45-67 to=5000 rang=101,102 by=102
         changed t talking from=+7 495 123-45-67 to=5000 rang=101,102,103 by=102
         changed t talking from=+7 495 123-45-67 to=5000 rang=101,102,103 by=102,103
         ended t ended from=+7 495 123-45-67 to=5000 rang=101,102,103 by=102,103 status=answered ring=3s talk=17s",
    );
}

#[test]
fn a_revision_replaces_the_facts_and_recomputes_the_phase() {
    check(
        "@5 start r outbound 101 +74951234567
         @5 ring r 102
         @6 revise r inbound +74951234567 5000 2 101,102 -
         @6 revise r inbound +74951234567 5000 2 101,102 -
         @7 revise r inbound +74951234567 5000 2 101,102 102 4
         @9 end r",
        "new r setup from=101 to=+7 495 123-45-67
         changed r ringing from=101 to=+7 495 123-45-67 rang=102
         changed r ringing from=+7 495 123-45-67 to=5000 rang=101,102
         -
         changed r talking from=+7 495 123-45-67 to=5000 rang=101,102 by=102
         ended r ended from=+7 495 123-45-67 to=5000 rang=101,102 by=102 status=answered ring=2s talk=5s",
    );
}

#[test]
fn unknown_calls_are_anomalies_and_times_never_precede_the_start() {
    check(
        "@5 ring ghost 101
         @5 start late inbound +74951234567 101
         @4 answer late 101
         @6 end late",
        "anomaly: event for call ghost, which was never started
         new late setup from=+7 495 123-45-67 to=101
         changed late talking from=+7 495 123-45-67 to=101 by=101
         ended late ended from=+7 495 123-45-67 to=101 by=101 status=answered ring=0s talk=1s",
    );
}
