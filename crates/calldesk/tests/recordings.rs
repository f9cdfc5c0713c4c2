//! The hub is killed (SIGKILL) while it is fetching a recording, and started again: the
//! recording still ends up in the store exactly once. Real processes (`calldesk hub`, twice),
//! a real PostgreSQL database, a real S3 server (s3s-fs) and the fake Mango, whose recording
//! download is slowed down so that the kill lands in the middle of it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use calldesk_calls::TenantId;
use calldesk_central::RecordingState;
use calldesk_sim::mango::{FakeMango, FakeMangoConfig, MangoScenario, recording_audio};
use calldesk_sim::s3::S3Server;
use support::{TestDb, block_on};

const SALT: &str = "fakevpbxsalt400000000000000000y";
const SIZE: usize = 300_000;
/// Three seconds per download.
const RATE: u64 = 100_000;

/// One `calldesk hub` process; killed on drop.
struct HubProcess {
    child: Child,
    log: PathBuf,
}

impl HubProcess {
    fn start(config: &Path, db: &TestDb, s3: &S3Server, tmp: &Path, log: PathBuf) -> Self {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_calldesk"));
        cmd.args(["hub", "--config"])
            .arg(config)
            .env("DATABASE_URL", &db.url)
            .env(
                "CALLDESK_JWT_SECRET",
                "kill-test-secret-kill-test-secret-0123",
            )
            .env("ACME_MANGO_SALT", SALT)
            .env("TMPDIR", tmp)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        for (k, v) in s3.hub_env() {
            cmd.env(k, v);
        }
        Self {
            child: cmd.spawn().unwrap(),
            log,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for HubProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every file under `dir`, as paths relative to it.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_owned()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                todo.push(path);
            } else {
                out.push(path.strip_prefix(dir).unwrap().to_owned());
            }
        }
    }
    out.sort();
    out
}

fn wait_until(what: &str, hub: &HubProcess, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{what} did not happen within 60 s; hub log:\n{}",
            hub.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_hub_killed_mid_download_stores_the_recording_once_after_a_restart() {
    let db = TestDb::new();
    let s3 = S3Server::start().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let fake = rt
        .block_on(FakeMango::start(FakeMangoConfig {
            recording_size: SIZE,
            recording_bytes_per_sec: Some(RATE),
            ..FakeMangoConfig::default()
        }))
        .unwrap();
    let key = fake.credentials().key().to_owned();
    let api = fake.base_url();
    db.admin_env(
        &[
            "tenant",
            "add",
            "--id",
            "acme",
            "--name",
            "Acme",
            "--number",
            "0367",
            "--mango-key",
            &key,
            "--mango-salt-env",
            "ACME_MANGO_SALT",
            "--mango-api-url",
            &api,
        ],
        "",
        &[("ACME_MANGO_SALT", SALT)],
    )
    .ok();

    let work = std::env::temp_dir().join(format!("calldesk-kill-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    let tmp = work.join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = work.join("hub.toml");
    std::fs::write(
        &config,
        format!(
            "bind = \"127.0.0.1:{port}\"\nlease_every_ms = 100\nrecording_lease_secs = 2\n\
             recordings_dir = \"{}\"\n",
            work.join("unused").display()
        ),
    )
    .unwrap();
    let first = HubProcess::start(&config, &db, &s3, &tmp, work.join("hub-1.log"));
    wait_until("the first hub taking the tenant", &first, || {
        first.log().contains("tenant") && std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    fake.set_target(format!("http://127.0.0.1:{port}/mango/acme/"));
    std::thread::sleep(Duration::from_millis(500));
    let entry = fake.play(&MangoScenario::Recorded {
        caller: "79161234567".into(),
        line: "74951234567".into(),
        operator: "101".into(),
    });

    // Mango handed the file out, and its download is under way: kill the hub a second in.
    let handed_out = || {
        fake.requests()
            .iter()
            .filter(|r| r.path.ends_with("queries/recording/post") && r.status == 302)
            .count()
    };
    wait_until("the recording's download", &first, || handed_out() == 1);
    std::thread::sleep(Duration::from_secs(1));
    let spool = tmp.join("calldesk-hub-spool");
    let partial = files(&spool);
    assert_eq!(partial.len(), 1, "one download in progress: {partial:?}");
    let first_log = first.log();
    drop(first); // SIGKILL: no clean-up runs.
    let killed_at = Instant::now();

    let store = db.store();
    let acme = TenantId::new("acme").unwrap();
    let rows = block_on(store.recordings_of(&acme, &entry)).unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(
        rows[0].state,
        RecordingState::Pending,
        "{rows:?}\n{first_log}"
    );
    assert!(
        files(&s3.bucket_dir()).is_empty(),
        "nothing uploaded before the kill"
    );

    // Past the lease (2 s) and the spool's age limit (three leases), the second hub starts.
    std::thread::sleep(Duration::from_secs(7).saturating_sub(killed_at.elapsed()));
    let second = HubProcess::start(&config, &db, &s3, &tmp, work.join("hub-2.log"));
    wait_until("the recording being stored", &second, || {
        block_on(store.recordings_of(&acme, &entry))
            .unwrap()
            .iter()
            .any(|r| r.state == RecordingState::Stored)
    });
    let rows = block_on(store.recordings_of(&acme, &entry)).unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    let row = &rows[0];
    assert_eq!(row.size_bytes, Some(SIZE as i64));

    // Exactly one object, under the row's key, with Mango's bytes; no leftover download.
    let objects: Vec<PathBuf> = files(&s3.bucket_dir())
        .into_iter()
        .filter(|p| !p.to_string_lossy().contains(".s3s"))
        .collect();
    assert_eq!(
        objects,
        vec![PathBuf::from(&row.store_key)],
        "{:?}",
        files(&s3.bucket_dir())
    );
    let stored = std::fs::read(s3.bucket_dir().join(&row.store_key)).unwrap();
    assert_eq!(stored, recording_audio(&row.name, SIZE));
    assert_eq!(handed_out(), 2, "the cut download was fetched again, once");
    assert!(files(&spool).is_empty(), "spool left: {:?}", files(&spool));
    let log = second.log();
    assert!(
        log.contains("removed downloads an earlier run left unfinished"),
        "{log}"
    );
    assert_eq!(log.matches("recording stored").count(), 1, "{log}");

    drop(second);
    rt.block_on(fake.shutdown());
    let _ = std::fs::remove_dir_all(&work);
}
