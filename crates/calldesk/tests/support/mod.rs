//! Shared by the CLI's integration tests: a fresh database per test on `DATABASE_URL`'s
//! server (default `postgres://postgres@127.0.0.1:5432/postgres`), and `calldesk admin` run
//! against it as an administrator runs it.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write as _;
use std::process::{Command, Output, Stdio};

use calldesk_central::CentralStore;
use sqlx::{Connection as _, Executor as _, PgConnection};

const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// `url` with its database replaced by `name`.
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (url, String::new()),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let base = match base[authority_start..].find('/') {
        Some(slash) => &base[..authority_start + slash],
        None => base,
    };
    format!("{base}/{name}{query}")
}

/// A fresh database, dropped at the end (also when the test fails).
pub struct TestDb {
    server: String,
    pub name: String,
    pub url: String,
}

impl TestDb {
    pub fn new() -> Self {
        let server = std::env::var("DATABASE_URL").unwrap_or_else(|_| DEFAULT_URL.to_owned());
        let name = format!("calldesk_cli_admin_{:016x}", rand::random::<u64>());
        block_on(async {
            let mut conn = PgConnection::connect(&server).await.unwrap();
            conn.execute(format!("CREATE DATABASE {name}").as_str())
                .await
                .unwrap();
        });
        let url = with_database(&server, &name);
        Self { server, name, url }
    }

    pub fn store(&self) -> CentralStore {
        block_on(CentralStore::connect(&self.url)).unwrap()
    }

    /// Runs `calldesk admin ARGS` on this database with `stdin` as input.
    pub fn admin(&self, args: &[&str], stdin: &str) -> Run {
        self.admin_env(args, stdin, &[])
    }

    pub fn admin_env(&self, args: &[&str], stdin: &str, env: &[(&str, &str)]) -> Run {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_calldesk"));
        cmd.arg("admin")
            .args(args)
            .env("DATABASE_URL", &self.url)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        // The child may exit without reading (a refused argument): ignore a broken pipe.
        let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
        Run::from(child.wait_with_output().unwrap())
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let (server, name) = (self.server.clone(), self.name.clone());
        // Its own thread and runtime: a test may be unwinding inside one.
        let _ = std::thread::spawn(move || {
            block_on(async {
                if let Ok(mut conn) = PgConnection::connect(&server).await {
                    let _ = conn
                        .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
                        .await;
                }
            });
        })
        .join();
    }
}

#[derive(Debug)]
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(o: Output) -> Self {
        Self {
            code: o.status.code(),
            stdout: String::from_utf8(o.stdout).unwrap(),
            stderr: String::from_utf8(o.stderr).unwrap(),
        }
    }
}

impl Run {
    #[track_caller]
    pub fn ok(&self) -> &Self {
        assert_eq!(self.code, Some(0), "{self:#?}");
        self
    }

    #[track_caller]
    pub fn fails_with(&self, code: i32, text: &str) -> &Self {
        assert_eq!(self.code, Some(code), "{self:#?}");
        assert!(self.stderr.contains(text), "{text:?} not in {self:#?}");
        self
    }

    /// The clientId line's value; there must be exactly one.
    #[track_caller]
    pub fn client_id(&self) -> String {
        let ids: Vec<&str> = self
            .stdout
            .lines()
            .filter_map(|l| l.strip_prefix("clientId: "))
            .collect();
        assert_eq!(ids.len(), 1, "{self:#?}");
        assert!(self.stdout.contains("shown only once"), "{self:#?}");
        let id = ids[0].to_owned();
        assert_eq!(id.len(), 64);
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(self.stdout.matches(&id).count(), 1, "{self:#?}");
        id
    }
}
