//! `calldesk mango sign` and `calldesk mango replay` as a user runs them.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::process::Command;

fn calldesk(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_calldesk"));
    cmd.args(args)
        .env_remove("MANGO_API_KEY")
        .env_remove("MANGO_API_SALT");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

#[test]
fn sign_prints_the_official_vector_and_says_what_is_missing() {
    let json = r#"{"command_id":"your-command-id","call_id":"<CALL_ID>"}"#;
    let out = calldesk(
        &["mango", "sign", "--json", json],
        &[
            ("MANGO_API_KEY", "<YOUR_API_KEY>"),
            ("MANGO_API_SALT", "<YOUR_API_SALT>"),
        ],
    );
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "2d1d01246f52cec1fdb44f2a4d7091dc54f67e318369c0628201d66b5d336ef0\n"
    );
    let out = calldesk(
        &["mango", "sign", "--json", json],
        &[("MANGO_API_KEY", "k")],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("set MANGO_API_SALT"), "{err}");
}

#[test]
fn replay_prints_records_like_ami_replay() {
    let dir =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../calldesk-mango-proto/tests/scenarios");
    let files =
        ["blind_transfer.jsonl", "busy.jsonl"].map(|f| dir.join(f).to_string_lossy().into_owned());
    let out = calldesk(&["mango", "replay", &files[0], &files[1]], &[]);
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
    assert_eq!(records[0]["id"], "MjYwNTQ4ODA3Nzc=");
    assert_eq!(records[0]["answered_by"], serde_json::json!(["101", "102"]));
    assert_eq!(records[0]["transfers"][0]["kind"], "blind");
    assert_eq!(records[0]["started_at"], "2024-05-27T08:53:20.000Z");
    assert_eq!(records[1]["status"], "busy");
    assert_eq!(records[1]["hangup_cause"]["code"], 1121);
    // The same keys as `ami replay` prints.
    let keys: Vec<&str> = records[0]
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.as_str())
        .collect();
    assert_eq!(keys.len(), 16, "{keys:?}");
    // A broken line names the file and the line.
    let bad = std::env::temp_dir().join(format!("calldesk-bad-{}.jsonl", std::process::id()));
    std::fs::write(
        &bad,
        "{\"path\":\"/events/call\",\"json\":\"{\\\"call_id\\\":1}\"}\n",
    )
    .unwrap();
    let out = calldesk(&["mango", "replay", bad.to_str().unwrap()], &[]);
    std::fs::remove_file(&bad).ok();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("line 1: /events/call event without call_state"),
        "{err}"
    );
}
