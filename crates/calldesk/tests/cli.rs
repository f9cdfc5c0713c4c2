//! `calldesk ami replay` as a user runs it: records on stdout, figures on stderr.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

fn calldesk(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_calldesk"))
        .args(args)
        .output()
        .unwrap()
}

fn stderr_figures(stderr: &[u8]) -> Vec<(String, f64)> {
    let text = String::from_utf8(stderr.to_vec()).unwrap();
    let line = text.lines().last().unwrap_or_default().to_owned();
    line.split(' ')
        .map(|kv| {
            let (k, v) = kv
                .split_once('=')
                .unwrap_or_else(|| panic!("bad stderr: {text}"));
            (k.to_owned(), v.parse().unwrap())
        })
        .collect()
}

#[test]
fn replay_prints_one_record_per_finished_call_and_the_figures() {
    let dir = calldesk_fixtures::ami_dir();
    let files = [
        "e_attended_transfer.rx.raw",
        "h3_click_to_call_agent_noanswer.rx.raw",
    ]
    .map(|f| dir.join(f).to_string_lossy().into_owned());
    let out = calldesk(&["ami", "replay", &files[0], &files[1]]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let records: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 2);
    assert_eq!(records[0]["transfers"][0]["kind"], "attended");
    assert_eq!(records[0]["talk_secs"], 25);
    assert_eq!(records[1]["status"], "failed");
    assert_eq!(records[1]["ring_secs"], 8);
    let keys: Vec<&str> = records[0]
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.as_str())
        .collect();
    for key in [
        "id",
        "direction",
        "from",
        "to",
        "status",
        "answered_by",
        "transfers",
        "monitors",
        "queue",
        "ring_secs",
        "talk_secs",
        "hangup_cause",
        "recordings",
        "started_at",
        "answered_at",
        "ended_at",
    ] {
        assert!(keys.contains(&key), "missing {key}");
    }
    let figures = stderr_figures(&out.stderr);
    let names: Vec<&str> = figures.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(names, ["messages", "bytes", "seconds", "throughput_mb_s"]);
    assert_eq!(figures[0].1, (317 + 25) as f64); // messages of both captures, per INDEX.json
    assert_eq!(figures[1].1, (137_421 + 7_637) as f64);
}

#[test]
fn without_a_timeline_times_are_null() {
    let tmp = std::env::temp_dir().join(format!("calldesk-cli-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let file = tmp.join("capture.bin");
    std::fs::write(&file, calldesk_fixtures::ami_rx("a_inbound_answered")).unwrap();
    let out = calldesk(&["ami", "replay", file.to_str().unwrap()]);
    std::fs::remove_dir_all(&tmp).unwrap();
    assert!(out.status.success());
    let record: serde_json::Value =
        serde_json::from_str(String::from_utf8(out.stdout).unwrap().trim()).unwrap();
    assert_eq!(record["status"], "answered");
    assert!(record["started_at"].is_null() && record["talk_secs"].is_null());
}

#[test]
fn bench_runs_for_the_asked_time_and_bad_input_is_a_clear_error() {
    let file = calldesk_fixtures::ami_dir().join("c_inbound_busy.rx.raw");
    let out = calldesk(&[
        "ami",
        "replay",
        "--bench",
        "--bench-secs",
        "0.2",
        file.to_str().unwrap(),
    ]);
    assert!(out.status.success());
    assert!(out.stdout.is_empty());
    let figures = stderr_figures(&out.stderr);
    assert!(figures[2].1 >= 0.2, "{figures:?}");
    assert!(
        figures[0].1 > 64.0,
        "the capture was replayed more than once"
    );

    let out = calldesk(&["ami", "replay", "/nonexistent/x.rx.raw"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read /nonexistent/x.rx.raw"));
}
