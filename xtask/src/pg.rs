//! PostgreSQL for the Rust tests: `DATABASE_URL` if set, else the machine's server on
//! 127.0.0.1:5432 if `psql` can log in there as `postgres` without a password, else a throwaway
//! cluster in a temp dir that is stopped and deleted when its guard drops. `XTASK_PG=throwaway`
//! forces the throwaway cluster.

use std::fmt;
use std::fs;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};

use crate::{apt, procs};

/// The machine's own server, when it lets `postgres` in without a password (trust auth).
const LOCAL_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// Where the tests' database comes from; the throwaway cluster lives as long as this value.
#[derive(Debug)]
pub enum Database {
    /// `DATABASE_URL` from the environment.
    FromEnv(String),
    /// The machine's own server on 127.0.0.1:5432.
    Local(String),
    /// A cluster we started; stopped on drop.
    Throwaway(ThrowawayCluster),
}

impl Database {
    /// Picks the database as described in the module docs (may start a cluster).
    pub fn for_tests() -> Result<Self> {
        let forced = std::env::var("XTASK_PG").ok();
        match forced.as_deref() {
            None | Some("" | "auto") => {}
            Some("throwaway") => return Ok(Self::Throwaway(ThrowawayCluster::start()?)),
            Some(other) => bail!("XTASK_PG={other}: expected `throwaway` or `auto`"),
        }
        if let Some(url) = std::env::var("DATABASE_URL")
            .ok()
            .filter(|url| !url.is_empty())
        {
            return Ok(Self::FromEnv(url));
        }
        if procs::port_accepts(5432) {
            match local_login() {
                Ok(()) => return Ok(Self::Local(LOCAL_URL.to_owned())),
                Err(why) => println!(
                    "not using the server on 127.0.0.1:5432: {why:#}\nstarting a throwaway cluster"
                ),
            }
        }
        Ok(Self::Throwaway(ThrowawayCluster::start()?))
    }

    pub fn url(&self) -> &str {
        match self {
            Self::FromEnv(url) | Self::Local(url) => url,
            Self::Throwaway(cluster) => cluster.url(),
        }
    }
}

impl fmt::Display for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::FromEnv(url) => write!(f, "DATABASE_URL from the environment ({url})"),
            Self::Local(url) => write!(f, "the local server on 127.0.0.1:5432 ({url})"),
            Self::Throwaway(cluster) => write!(f, "a throwaway cluster ({})", cluster.url()),
        }
    }
}

/// A PostgreSQL cluster in a temp dir on a free port, trust auth, superuser `postgres`.
/// Dropping it runs `pg_ctl stop -m fast` and deletes the directory.
#[derive(Debug)]
pub struct ThrowawayCluster {
    bin_dir: PathBuf,
    dir: procs::TempDir,
    as_postgres_user: bool,
    url: String,
}

impl ThrowawayCluster {
    /// Installs the `postgresql` package if needed (root only), then `initdb` + `pg_ctl start`.
    /// As root, the server runs as the `postgres` user (`initdb` refuses to run as root).
    pub fn start() -> Result<Self> {
        let bin_dir = match server_bin_dir() {
            Some(dir) => dir,
            None => {
                apt::install(&["postgresql".to_owned()])?;
                server_bin_dir().context(
                    "installed `postgresql` but found no /usr/lib/postgresql/*/bin/initdb",
                )?
            }
        };
        let as_postgres_user = procs::is_root();
        let dir = procs::TempDir::new("calldesk-pg")?;
        if as_postgres_user {
            procs::output(Command::new("chown").arg("postgres:").arg(dir.path()))?;
        }
        let port = procs::free_port()?;
        let data = dir.path().join("data");
        let log = dir.path().join("server.log");
        let cluster = Self {
            url: format!("postgres://postgres@127.0.0.1:{port}/postgres"),
            bin_dir,
            dir,
            as_postgres_user,
        };
        procs::output(
            cluster
                .pg_command("initdb")
                .args([
                    "-A",
                    "trust",
                    "-U",
                    "postgres",
                    "-E",
                    "UTF8",
                    "--no-sync",
                    "-D",
                ])
                .arg(&data),
        )?;
        let options = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            cluster.dir.path().display()
        );
        let started = procs::output(
            cluster
                .pg_command("pg_ctl")
                .args(["-w", "-t", "60", "start", "-D"])
                .arg(&data)
                .arg("-l")
                .arg(&log)
                .args(["-o", options.as_str()]),
        );
        if let Err(err) = started {
            bail!("{err:#}\nserver log:\n{}", procs::tail(&log, 30));
        }
        Ok(cluster)
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// `bin_dir/program`, run as the `postgres` user when we are root.
    /// Runs from `/`, a directory the postgres user can read (not the root-owned repo).
    fn pg_command(&self, program: &str) -> Command {
        let path = self.bin_dir.join(program);
        let mut cmd = if self.as_postgres_user {
            let mut cmd = Command::new("runuser");
            cmd.args(["-u", "postgres", "--"]).arg(path);
            cmd
        } else {
            Command::new(path)
        };
        cmd.current_dir("/");
        cmd
    }
}

impl Drop for ThrowawayCluster {
    fn drop(&mut self) {
        let data = self.dir.path().join("data");
        // No pid file: initdb or the start failed and there is no server to stop.
        if !data.join("postmaster.pid").exists() {
            return;
        }
        let stopped = procs::output(
            self.pg_command("pg_ctl")
                .args(["-w", "stop", "-m", "fast", "-D"])
                .arg(&data),
        );
        match stopped {
            Ok(_) => println!("xtask: stopped the throwaway PostgreSQL cluster"),
            Err(err) => eprintln!("xtask: warning: stopping the throwaway cluster: {err:#}"),
        }
        // `self.dir` (a TempDir) removes the files after this.
    }
}

/// Checks that [`LOCAL_URL`] really lets us in: `psql` without a password prompt, 5 s to connect.
fn local_login() -> Result<()> {
    let psql = procs::find_program("psql").context(
        "psql is not installed (Debian package postgresql-client), so it cannot be checked",
    )?;
    let out = procs::output(
        Command::new(psql)
            .args(["-w", "-h", "127.0.0.1", "-p", "5432", "-U", "postgres"])
            .args(["-d", "postgres", "-Atc", "select 1"])
            .env("PGCONNECT_TIMEOUT", "5")
            .env_remove("PGPASSWORD"),
    )
    .context("cannot log in as `postgres` without a password")?;
    if out.trim() != "1" {
        bail!("`select 1` returned {:?}", out.trim());
    }
    Ok(())
}

/// `/usr/lib/postgresql/<highest version>/bin` if it has `initdb`.
fn server_bin_dir() -> Option<PathBuf> {
    let entries = fs::read_dir("/usr/lib/postgresql").ok()?;
    let mut versions: Vec<(u32, PathBuf)> = entries
        .filter_map(|entry| entry.ok())
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

/// `cargo xtask pg`: starts a throwaway cluster, prints its URL and waits for Ctrl-C.
pub fn serve() -> Result<()> {
    let cluster = ThrowawayCluster::start()?;
    println!("PostgreSQL is running. Use it with:");
    println!();
    println!("    export DATABASE_URL={}", cluster.url());
    println!();
    println!("Press Ctrl-C to stop it (the cluster and its files are deleted).");
    while !procs::interrupted() {
        std::thread::sleep(Duration::from_millis(200));
    }
    drop(cluster);
    Ok(())
}
