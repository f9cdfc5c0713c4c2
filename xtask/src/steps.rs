//! `cargo xtask test`: every set-up and check step in order, each with a header and its duration;
//! stops at the first failure and ends with the summary line CI reads:
//! `xtask: N passed, M failed`.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

use anyhow::{Context as _, Result, bail};

use crate::e2e::{self, E2eConfig};
use crate::pg::Database;
use crate::{apt, procs};

/// Debian packages needed to build the app (Tauri/WebKitGTK) and to run its tests headless.
const SYSTEM_PACKAGES: &[&str] = &[
    "build-essential",
    "pkg-config",
    "libwebkit2gtk-4.1-dev",
    "libgtk-3-dev",
    "libsoup-3.0-dev",
    "libjavascriptcoregtk-4.1-dev",
    "libayatana-appindicator3-dev",
    "librsvg2-dev",
    "libxdo-dev",
    "libasound2-dev",
    "libdbus-1-dev",
    "xvfb",
    "xauth",
    "imagemagick",
    "webkit2gtk-driver",
    "dbus",
    "gnome-keyring",
    "libsecret-tools",
    "keyutils",
];

/// Pinned: newer tauri-driver releases may need a newer Rust or change flags.
const TAURI_DRIVER: &str = "tauri-driver@2.1.0";

/// State shared by the steps. Dropping it stops what the steps started (the throwaway database).
#[derive(Debug)]
struct Context {
    root: PathBuf,
    tauri_driver: Option<PathBuf>,
    database: Option<Database>,
}

/// Runs steps in order, timing them and counting results.
#[derive(Debug)]
struct Runner {
    passed: usize,
    failed: usize,
    total: usize,
    started: Instant,
}

impl Runner {
    fn new(total: usize) -> Self {
        Self {
            passed: 0,
            failed: 0,
            total,
            started: Instant::now(),
        }
    }

    /// Runs one step unless an earlier one failed. `hint` says what to do when it fails.
    fn step(&mut self, name: &str, hint: &str, run: impl FnOnce() -> Result<()>) {
        if self.failed > 0 {
            return;
        }
        let number = self.passed + 1;
        println!();
        println!("==> [{number}/{}] {name}", self.total);
        let started = Instant::now();
        let result = procs::check_interrupted().and_then(|()| run());
        let seconds = started.elapsed().as_secs_f64();
        match result {
            Ok(()) => {
                self.passed += 1;
                println!("<== [{number}/{}] {name}: ok ({seconds:.1} s)", self.total);
            }
            Err(err) => {
                self.failed += 1;
                eprintln!();
                eprintln!("xtask: step {number} `{name}` FAILED after {seconds:.1} s");
                eprintln!("error: {err:#}");
                eprintln!("what to do: {hint}");
            }
        }
    }

    /// Prints the summary line and turns the counts into an exit code.
    fn finish(self) -> ExitCode {
        let seconds = self.started.elapsed().as_secs_f64();
        println!();
        println!("total time {seconds:.1} s");
        println!("xtask: {} passed, {} failed", self.passed, self.failed);
        if self.failed == 0 {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        }
    }
}

/// `cargo xtask test`.
pub fn test_all() -> ExitCode {
    let mut ctx = Context {
        root: repo_root(),
        tauri_driver: None,
        database: None,
    };
    let mut runner = Runner::new(8);
    runner.step(
        "System packages",
        "install the packages listed above (as root xtask installs them itself)",
        system_packages,
    );
    runner.step(
        "Cargo tools (tauri-driver)",
        "run `cargo install tauri-driver@2.1.0 --locked` and check ~/.cargo/bin is in PATH",
        || {
            ctx.tauri_driver = Some(ensure_tauri_driver()?);
            Ok(())
        },
    );
    runner.step(
        "UI (npm ci, build, check, test)",
        "fix the UI errors above; run the same npm scripts in ui/ to iterate",
        || ui_checks(&ctx.root),
    );
    runner.step(
        "PostgreSQL",
        "set DATABASE_URL to a reachable server, or make /usr/lib/postgresql/*/bin/initdb available",
        || {
            let database = Database::for_tests()?;
            println!("using {database}");
            ctx.database = Some(database);
            Ok(())
        },
    );
    runner.step(
        "cargo fmt",
        "run `cargo fmt --all` and review the diff",
        || {
            procs::run(
                procs::cargo()
                    .args(["fmt", "--all", "--check"])
                    .current_dir(&ctx.root),
            )
        },
    );
    runner.step(
        "cargo clippy",
        "fix the lints above (warnings are errors)",
        || {
            procs::run(
                procs::cargo()
                    .args([
                        "clippy",
                        "--workspace",
                        "--all-targets",
                        "--",
                        "-D",
                        "warnings",
                    ])
                    .current_dir(&ctx.root),
            )
        },
    );
    runner.step(
        "cargo test",
        "fix the failing tests above; rerun one with `cargo test -p <crate> <name>`",
        || {
            let url = ctx
                .database
                .as_ref()
                .map(Database::url)
                .context("no database")?;
            procs::run(
                procs::cargo()
                    .args(["test", "--workspace"])
                    .env("DATABASE_URL", url)
                    .current_dir(&ctx.root),
            )
        },
    );
    runner.step(
        "End-to-end (app under Xvfb via WebDriver)",
        "see the log tail and screenshots in target/e2e/; rerun with `cargo xtask e2e`",
        || {
            let tauri_driver = ctx
                .tauri_driver
                .clone()
                .context("tauri-driver not set up")?;
            e2e_with(&ctx.root, tauri_driver)
        },
    );
    // Stop the throwaway database (if any) before the summary line.
    drop(ctx);
    runner.finish()
}

/// `cargo xtask e2e`: only the end-to-end step, assuming `cargo xtask test` set things up.
pub fn e2e_only() -> ExitCode {
    let mut runner = Runner::new(1);
    runner.step(
        "End-to-end (app under Xvfb via WebDriver)",
        "see the log tail and screenshots in target/e2e/; run `cargo xtask test` once to set up",
        || {
            let tauri_driver = procs::find_program("tauri-driver").context(
                "tauri-driver not found in PATH or ~/.cargo/bin: run `cargo xtask test` once, or \
                 `cargo install tauri-driver@2.1.0 --locked`",
            )?;
            e2e_with(&repo_root(), tauri_driver)
        },
    );
    runner.finish()
}

fn e2e_with(root: &Path, tauri_driver: PathBuf) -> Result<()> {
    let config = E2eConfig {
        root: root.to_owned(),
        target_dir: target_dir(root)?,
        tauri_driver,
    };
    e2e::run(&config)
}

fn system_packages() -> Result<()> {
    let missing = apt::missing(SYSTEM_PACKAGES)?;
    if missing.is_empty() {
        println!("all {} packages installed", SYSTEM_PACKAGES.len());
        return Ok(());
    }
    apt::install(&missing)?;
    let still_missing = apt::missing(SYSTEM_PACKAGES)?;
    if !still_missing.is_empty() {
        bail!(
            "still missing after apt-get install: {}",
            still_missing.join(" ")
        );
    }
    Ok(())
}

fn ensure_tauri_driver() -> Result<PathBuf> {
    if let Some(path) = procs::find_program("tauri-driver") {
        println!("found {}", path.display());
        return Ok(path);
    }
    procs::run(procs::cargo().args(["install", TAURI_DRIVER, "--locked"]))?;
    procs::find_program("tauri-driver")
        .context("`cargo install` succeeded but tauri-driver is not in PATH or ~/.cargo/bin")
}

/// `npm ci` when needed, then the UI's build, type check and unit tests.
fn ui_checks(root: &Path) -> Result<()> {
    let ui = root.join("ui");
    ensure_npm_deps(&ui)?;
    for script in ["build", "check", "test"] {
        procs::run(Command::new("npm").args(["run", script]).current_dir(&ui))?;
    }
    Ok(())
}

/// Runs `npm ci` in `ui` when `node_modules` is missing or older than `package-lock.json`.
pub fn ensure_npm_deps(ui: &Path) -> Result<()> {
    let lock = ui.join("package-lock.json");
    let installed = ui.join("node_modules").join(".package-lock.json");
    let modified = |path: &Path| path.metadata().and_then(|meta| meta.modified()).ok();
    let up_to_date = match (modified(&lock), modified(&installed)) {
        (Some(lock), Some(installed)) => lock <= installed,
        _ => false,
    };
    if up_to_date {
        println!("ui/node_modules is up to date");
        return Ok(());
    }
    if !lock.is_file() {
        bail!(
            "{} is missing: the UI must commit its package-lock.json",
            lock.display()
        );
    }
    procs::run(
        Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(ui),
    )
}

/// The repository root (xtask lives in `<root>/xtask`).
pub fn repo_root() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir.parent().unwrap_or(manifest_dir).to_owned()
}

/// Cargo's target directory for the workspace (honours `CARGO_TARGET_DIR` and config).
pub fn target_dir(root: &Path) -> Result<PathBuf> {
    let json = procs::output(
        procs::cargo()
            .args(["metadata", "--no-deps", "--format-version", "1"])
            .current_dir(root),
    )?;
    let metadata: serde_json::Value = serde_json::from_str(&json).context("cargo metadata")?;
    metadata["target_directory"]
        .as_str()
        .map(PathBuf::from)
        .context("cargo metadata has no target_directory")
}
