//! `calldesk ami tail` as a user runs it: the real binary against the simulator on a loopback
//! port, updates read from its stdout, states from its stderr.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use calldesk_sim::ami::{AmiSimConfig, AmiSimHandle, AmiSimulator, ScenarioCall, ScenarioKind};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::{mpsc, oneshot};

const WAIT: Duration = Duration::from_secs(15);
/// A session bus that does not exist: the keyring fails at once, and a developer's own
/// keyring is never touched.
const NO_BUS: &str = "unix:path=/nonexistent/calldesk-test-bus";

struct Sim {
    port: u16,
    handle: AmiSimHandle,
    _stop: oneshot::Sender<()>,
}

async fn sim() -> Sim {
    let config = AmiSimConfig {
        auth_failure_delay: Duration::from_millis(10),
        ..AmiSimConfig::default()
    };
    let sim = AmiSimulator::bind("127.0.0.1:0".parse().unwrap(), config)
        .await
        .unwrap();
    let port = sim.local_addr().port();
    let handle = sim.handle();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(sim.run(async move {
        let _ = stopped.await;
    }));
    Sim {
        port,
        handle,
        _stop: stop,
    }
}

/// `calldesk ami tail` with a clean environment: no keyring, region RU, `secret` if given.
fn command(port: u16, secret: Option<&str>, extra: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_calldesk"));
    let port = port.to_string();
    cmd.args([
        "ami",
        "tail",
        "--host",
        "127.0.0.1",
        "--port",
        &port,
        "--user",
        "calldesk",
    ])
    .args(extra)
    .env_remove("CALLDESK_AMI_SECRET")
    .env_remove("CALLDESK_REGION")
    .env("DBUS_SESSION_BUS_ADDRESS", NO_BUS)
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .kill_on_drop(true);
    if let Some(secret) = secret {
        cmd.env("CALLDESK_AMI_SECRET", secret);
    }
    cmd
}

/// A running `tail`: stdout lines as JSON, stderr lines as text (all kept for messages).
struct Tail {
    child: Child,
    stdout: mpsc::UnboundedReceiver<String>,
    stderr: mpsc::UnboundedReceiver<String>,
    stderr_seen: Arc<Mutex<Vec<String>>>,
    stdout_seen: Vec<String>,
}

impl Tail {
    fn start(port: u16, secret: &str) -> Self {
        Self::spawn(command(port, Some(secret), &[]))
    }

    fn spawn(mut cmd: Command) -> Self {
        let mut child = cmd.spawn().unwrap();
        let (out_tx, stdout) = mpsc::unbounded_channel();
        let (err_tx, stderr) = mpsc::unbounded_channel();
        let stderr_seen = Arc::new(Mutex::new(Vec::new()));
        let mut out = BufReader::new(child.stdout.take().unwrap()).lines();
        tokio::spawn(async move {
            while let Ok(Some(line)) = out.next_line().await {
                let _ = out_tx.send(line);
            }
        });
        let mut err = BufReader::new(child.stderr.take().unwrap()).lines();
        let seen = stderr_seen.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = err.next_line().await {
                seen.lock().unwrap().push(line.clone());
                let _ = err_tx.send(line);
            }
        });
        Self {
            child,
            stdout,
            stderr,
            stderr_seen,
            stdout_seen: Vec::new(),
        }
    }

    fn stderr_text(&self) -> String {
        self.stderr_seen.lock().unwrap().join("\n")
    }

    /// Waits for a stderr line containing `needle`.
    async fn stderr_until(&mut self, needle: &str) -> String {
        let found = tokio::time::timeout(WAIT, async {
            while let Some(line) = self.stderr.recv().await {
                if line.contains(needle) {
                    return Some(line);
                }
            }
            None
        })
        .await;
        match found {
            Ok(Some(line)) => line,
            _ => panic!(
                "no stderr line with {needle:?}; stderr:\n{}",
                self.stderr_text()
            ),
        }
    }

    /// The next stdout line that is a call update.
    async fn next_update(&mut self) -> Value {
        loop {
            let line = match tokio::time::timeout(WAIT, self.stdout.recv()).await {
                Ok(Some(line)) => line,
                _ => panic!(
                    "no call update; stdout:\n{}\nstderr:\n{}",
                    self.stdout_seen.join("\n"),
                    self.stderr_text()
                ),
            };
            self.stdout_seen.push(line.clone());
            let value: Value = serde_json::from_str(&line)
                .unwrap_or_else(|e| panic!("stdout line is not JSON ({e}): {line}"));
            if value.get("update").is_some() {
                return value;
            }
            assert!(value.get("presence").is_some(), "unknown line: {line}");
        }
    }

    /// The next update of call `id` that satisfies `pred`.
    async fn update_of(&mut self, id: &str, pred: impl Fn(&Value) -> bool) -> Value {
        loop {
            let update = self.next_update().await;
            if update["call"]["id"] == id && pred(&update) {
                return update;
            }
        }
    }

    async fn kill(mut self) {
        self.child.kill().await.unwrap();
    }
}

fn inbound_answered(caller: &str, ring_ms: u64, talk: Duration) -> ScenarioCall {
    ScenarioCall {
        kind: ScenarioKind::InboundAnswered,
        caller: caller.to_owned(),
        did: "4951112233".to_owned(),
        extension: "101".to_owned(),
        ring: Duration::from_millis(ring_ms),
        talk,
    }
}

async fn exit_of(mut cmd: Command) -> (ExitStatus, String, String) {
    let out = tokio::time::timeout(WAIT, cmd.output())
        .await
        .expect("calldesk did not exit")
        .unwrap();
    (
        out.status,
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answered_call_prints_new_then_ended_answered() {
    let sim = sim().await;
    let mut tail = Tail::start(sim.port, "demo");
    tail.stderr_until("connected to Asterisk Call Manager/")
        .await;
    sim.handle.play(inbound_answered(
        "+74951234567",
        200,
        Duration::from_millis(300),
    ));

    let first = tail.next_update().await;
    assert_eq!(first["update"], "new", "{first}");
    assert_eq!(first["call"]["from"], "+74951234567");
    assert_eq!(first["call"]["direction"], "inbound");
    assert!(first["call"]["status"].is_null());
    let id = first["call"]["id"].as_str().unwrap().to_owned();

    let ended = tail.update_of(&id, |u| u["update"] != "changed").await;
    assert_eq!(ended["update"], "ended", "{ended}");
    assert_eq!(ended["call"]["status"], "answered");
    assert_eq!(ended["call"]["from"], "+74951234567");
    assert_eq!(ended["call"]["answered_by"][0], "101");
    assert!(
        ended["call"]["started_at"].is_string(),
        "live times are known"
    );
    assert!(ended["call"]["ended_at"].is_string());
    tail.kill().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_that_ends_while_disconnected_ends_after_the_resync() {
    let sim = sim().await;
    let mut tail = Tail::start(sim.port, "demo");
    tail.stderr_until("connected to").await;
    let id = sim
        .handle
        .start_call(inbound_answered(
            "+78121234567",
            100,
            Duration::from_secs(600),
        ))
        .await
        .unwrap();
    tail.update_of(&id, |u| u["call"]["answered_at"].is_string())
        .await;

    sim.handle.drop_connections();
    tail.stderr_until("disconnected: ").await;
    sim.handle.hangup_call(&id).await.unwrap();

    let ended = tail.update_of(&id, |u| u["update"] == "ended").await;
    assert_eq!(ended["call"]["status"], "answered", "{ended}");
    assert_eq!(ended["call"]["from"], "+78121234567");
    assert!(
        tail.stderr_text().contains("resynced"),
        "{}",
        tail.stderr_text()
    );
    tail.kill().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_logs_off_and_exits_0() {
    let sim = sim().await;
    let mut tail = Tail::start(sim.port, "demo");
    tail.stderr_until("connected to").await;
    let pid = tail.child.id().unwrap();
    let pid = rustix::process::Pid::from_raw(i32::try_from(pid).unwrap()).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::INT).unwrap();
    tail.stderr_until("interrupted; logging off").await;
    tail.stderr_until("stopped").await;
    let status = tokio::time::timeout(WAIT, tail.child.wait())
        .await
        .expect("calldesk did not exit after Ctrl-C")
        .unwrap();
    assert!(status.success(), "{status}; {}", tail.stderr_text());
    tail.kill().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_login_exits_2_and_says_what_to_fix() {
    let sim = sim().await;
    let (status, stdout, stderr) = exit_of(command(sim.port, Some("hunter2-wrong"), &[])).await;
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(stdout.is_empty(), "{stdout}");
    assert!(
        stderr.contains("login rejected: Authentication failed — check the user and secret"),
        "{stderr}"
    );
    assert!(stderr.contains("AMI user `calldesk`"), "{stderr}");
    assert!(stderr.contains("from CALLDESK_AMI_SECRET"), "{stderr}");
    assert!(!stderr.contains("hunter2"), "the secret leaked: {stderr}");
}

#[tokio::test]
async fn without_a_secret_the_error_names_both_ways_to_give_one() {
    // Nothing listens on the port: the lookup fails before any connection.
    let (status, stdout, stderr) = exit_of(command(9, None, &[])).await;
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(stdout.is_empty());
    assert!(stderr.contains("set CALLDESK_AMI_SECRET"), "{stderr}");
    assert!(
        stderr.contains("run `calldesk ami secret set --host 127.0.0.1 --user calldesk`"),
        "{stderr}"
    );
    assert!(stderr.contains("no Secret Service is running"), "{stderr}");

    let mut set = Command::new(env!("CARGO_BIN_EXE_calldesk"));
    set.args([
        "ami",
        "secret",
        "set",
        "--host",
        "127.0.0.1",
        "--user",
        "calldesk",
    ])
    .env("DBUS_SESSION_BUS_ADDRESS", NO_BUS)
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .kill_on_drop(true);
    let mut child = set.spawn().unwrap();
    {
        use tokio::io::AsyncWriteExt;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(b"hunter2-stored\n").await.unwrap();
    }
    let out = tokio::time::timeout(WAIT, child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(!out.status.success());
    assert!(stderr.contains("no Secret Service is running"), "{stderr}");
    assert!(stderr.contains("start a Secret Service"), "{stderr}");
    assert!(!stderr.contains("hunter2"), "the secret leaked: {stderr}");
}

#[tokio::test]
async fn a_bad_event_mask_is_a_usage_error() {
    let (status, _, stderr) = exit_of(command(9, Some("demo"), &["--events", "calls"])).await;
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("`calls` is not an AMI class"), "{stderr}");
}

/// The real keyring path: a private D-Bus session with gnome-keyring (as on a desktop), the
/// secret stored by `ami secret set`, then `ami tail` with no `CALLDESK_AMI_SECRET` logs in
/// with it. Needs `dbus-run-session` and `gnome-keyring-daemon` (`cargo xtask test` installs
/// the `dbus` and `gnome-keyring` packages).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_secret_can_come_from_the_os_keyring() {
    for tool in ["dbus-run-session", "gnome-keyring-daemon"] {
        let found = std::process::Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .unwrap()
            .status
            .success();
        assert!(
            found,
            "{tool} is missing: install the Debian packages dbus and gnome-keyring \
             (`cargo xtask test` does)"
        );
    }
    let sim = sim().await;
    let script = r#"mkdir -p "$HOME" && eval "$(printf pw | gnome-keyring-daemon --unlock --components=secrets)" >/dev/null
printf demo | "$CALLDESK_BIN" ami secret set --host 127.0.0.1 --user calldesk || exit 9
exec "$CALLDESK_BIN" ami tail --host 127.0.0.1 --port "$CALLDESK_PORT" --user calldesk"#;
    let mut cmd = Command::new("dbus-run-session");
    cmd.args(["--", "sh", "-c", script])
        .env("CALLDESK_BIN", env!("CARGO_BIN_EXE_calldesk"))
        .env("CALLDESK_PORT", sim.port.to_string())
        .env_remove("CALLDESK_AMI_SECRET")
        .env_remove("DBUS_SESSION_BUS_ADDRESS")
        .env_remove("CALLDESK_REGION")
        .env(
            "HOME",
            std::env::temp_dir().join(format!("calldesk-keyring-{}", std::process::id())),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut tail = Tail::spawn(cmd);
    tail.stderr_until("stored the AMI secret").await;
    tail.stderr_until("connected to").await;
    let linkedid = sim
        .handle
        .start_call(inbound_answered(
            "+74951234599",
            50,
            Duration::from_millis(100),
        ))
        .await
        .unwrap();
    let ended = tail.update_of(&linkedid, |u| u["update"] == "ended").await;
    assert_eq!(ended["call"]["status"], "answered");
    assert!(
        !tail.stderr_text().contains("demo"),
        "the secret was printed"
    );
    // The whole group: dbus-run-session, the keyring daemon and calldesk.
    let pgid =
        rustix::process::Pid::from_raw(i32::try_from(tail.child.id().unwrap()).unwrap()).unwrap();
    let _ = rustix::process::kill_process_group(pgid, rustix::process::Signal::KILL);
    tail.kill().await;
    let _ = std::fs::remove_dir_all(
        std::env::temp_dir().join(format!("calldesk-keyring-{}", std::process::id())),
    );
}
