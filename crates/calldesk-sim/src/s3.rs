//! A real S3 server on loopback for tests and demos: `s3s-fs`, which checks every SigV4
//! signature (a signing bug is a 403 here, as on AWS). `cargo xtask test` installs it and
//! sets `CALLDESK_S3S_FS`; else it is looked up in PATH and `~/.cargo/bin`.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

/// The credentials the server accepts.
pub const ACCESS_KEY: &str = "calldesk-test";
pub const SECRET_KEY: &str = "calldesk-test-secret-0123456789";
/// The one bucket it has.
pub const BUCKET: &str = "recordings";
pub const REGION: &str = "us-east-1";

/// Why the server could not start; the message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum S3ServerError {
    #[error(
        "s3s-fs (the S3 server the tests use) is not installed: run `cargo xtask test` once, \
         or `cargo install s3s-fs@0.14.1 --features binary --locked`"
    )]
    NotInstalled,
    #[error("s3s-fs could not start: {0}")]
    Start(#[from] std::io::Error),
    #[error("s3s-fs did not listen on port {0} within 10 s")]
    NotListening(u16),
}

/// A running s3s-fs with bucket [`BUCKET`]; killed (and its data removed) on drop.
#[derive(Debug)]
pub struct S3Server {
    child: Child,
    port: u16,
    data: PathBuf,
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.data);
    }
}

fn program() -> Result<PathBuf, S3ServerError> {
    if let Some(p) = std::env::var_os("CALLDESK_S3S_FS") {
        return Ok(p.into());
    }
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    if let Some(home) = std::env::var_os("HOME") {
        dirs.push(Path::new(&home).join(".cargo/bin"));
    }
    dirs.into_iter()
        .map(|d| d.join("s3s-fs"))
        .find(|p| p.is_file())
        .ok_or(S3ServerError::NotInstalled)
}

impl S3Server {
    /// Starts s3s-fs on a free loopback port and waits until it listens.
    pub fn start() -> Result<Self, S3ServerError> {
        let program = program()?;
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let data = std::env::temp_dir().join(format!("calldesk-s3-{}-{nanos}", std::process::id()));
        // A bucket is a folder of the data folder.
        std::fs::create_dir_all(data.join(BUCKET))?;
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let child = Command::new(&program)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
            .arg(&data)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let server = Self { child, port, data };
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if started.elapsed() > Duration::from_secs(10) {
                return Err(S3ServerError::NotListening(port));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(server)
    }

    /// `http://127.0.0.1:port`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The bucket's folder: one file per object (for checks such as "stored once").
    pub fn bucket_dir(&self) -> PathBuf {
        self.data.join(BUCKET)
    }

    /// The environment a hub needs to store recordings here (`calldesk_media::ENV_VARS`).
    pub fn hub_env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("CALLDESK_S3_BUCKET", BUCKET.to_owned()),
            ("CALLDESK_S3_ENDPOINT", self.endpoint()),
            ("CALLDESK_S3_REGION", REGION.to_owned()),
            ("CALLDESK_S3_PATH_STYLE", "true".to_owned()),
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY.to_owned()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.to_owned()),
        ]
    }
}
