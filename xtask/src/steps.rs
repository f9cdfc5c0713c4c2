//! `cargo xtask test`: every set-up and check step in order, each with a header and its duration;
//! stops at the first failure and ends with the summary line CI reads:
//! `xtask: N passed, M failed` (plus `, K skipped` when a failure skipped later steps).

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

use anyhow::{Context as _, Result, bail};

use crate::e2e::{self, E2eConfig};
use crate::pg::Database;
use crate::{app, apt, procs};

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
    // the player's format tests encode their test tone as MP3 and Ogg Vorbis
    "lame",
    "vorbis-tools",
];

/// Pinned: newer tauri-driver releases may need a newer Rust or change flags.
const TAURI_DRIVER: &str = "tauri-driver@2.1.0";

/// The S3 server of the recordings tests (it checks SigV4 signatures). Pinned: 0.15 needs a
/// newer Rust than the workspace's.
const S3S_FS: &str = "s3s-fs@0.14.1";

/// State shared by the steps. Dropping it stops what the steps started (the throwaway database).
#[derive(Debug)]
struct Context {
    root: PathBuf,
    tauri_driver: Option<PathBuf>,
    s3s_fs: Option<PathBuf>,
    database: Option<Database>,
}

/// The end-to-end step's name, in `test` and `e2e`.
const E2E_STEP: &str = "End-to-end (app under Xvfb via WebDriver)";

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
        println!("{}", summary(self.passed, self.failed, self.total));
        if self.failed == 0 {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        }
    }
}

/// `xtask: N passed, M failed`, with `, K skipped` when steps did not run.
fn summary(passed: usize, failed: usize, total: usize) -> String {
    let skipped = total.saturating_sub(passed + failed);
    if skipped == 0 {
        format!("xtask: {passed} passed, {failed} failed")
    } else {
        format!("xtask: {passed} passed, {failed} failed, {skipped} skipped")
    }
}

/// `cargo xtask test`.
pub fn test_all() -> ExitCode {
    let mut ctx = Context {
        root: repo_root(),
        tauri_driver: None,
        s3s_fs: None,
        database: None,
    };
    let mut runner = Runner::new(9);
    runner.step(
        "Toolchains (node, npm, rustfmt, clippy)",
        "install what the error names, then run the command again",
        || {
            println!("{}", app::check_node()?);
            ensure_rust_components()
        },
    );
    runner.step(
        "System packages",
        "install the packages listed above (as root xtask installs them itself)",
        system_packages,
    );
    runner.step(
        "Cargo tools (tauri-driver, s3s-fs)",
        &format!(
            "run `cargo install {TAURI_DRIVER} --locked` and `cargo install {S3S_FS} --features \
             binary --locked`, and check ~/.cargo/bin is in PATH"
        ),
        || {
            ctx.tauri_driver = Some(ensure_cargo_tool("tauri-driver", &[TAURI_DRIVER])?);
            ctx.s3s_fs = Some(ensure_cargo_tool(
                "s3s-fs",
                &[S3S_FS, "--features", "binary"],
            )?);
            Ok(())
        },
    );
    runner.step(
        "UI (npm ci, build, check, test)",
        "fix the UI errors above; run the same npm scripts in ui/ to iterate",
        || {
            // Built here, not in the end-to-end step: clippy and the tests compile the app,
            // which embeds ui/dist.
            app::build_ui(&ctx.root)?;
            app::npm_run(&ctx.root, "check")?;
            app::npm_run(&ctx.root, "test")
        },
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
            let s3s_fs = ctx.s3s_fs.as_ref().context("s3s-fs not set up")?;
            procs::run(
                procs::cargo()
                    .args(["test", "--workspace"])
                    .env("DATABASE_URL", url)
                    .env("CALLDESK_S3S_FS", s3s_fs)
                    .current_dir(&ctx.root),
            )
        },
    );
    runner.step(
        E2E_STEP,
        "see the log tail and screenshots in target/e2e/; rerun with `cargo xtask e2e`",
        || {
            let tauri_driver = ctx
                .tauri_driver
                .clone()
                .context("tauri-driver not set up")?;
            // The UI step has built ui/dist already.
            e2e::run(&E2eConfig {
                root: ctx.root.clone(),
                tauri_driver,
                build_ui: false,
                database: ctx.database.as_ref().map(|d| d.url().to_owned()),
            })
        },
    );
    // Stop the throwaway database (if any) before the summary line.
    drop(ctx);
    runner.finish()
}

/// `cargo xtask e2e`: only the end-to-end step (builds the UI and the app; needs the system
/// packages and tauri-driver that `cargo xtask test` sets up).
pub fn e2e_only() -> ExitCode {
    let mut runner = Runner::new(1);
    runner.step(
        E2E_STEP,
        "see the log tail and screenshots in target/e2e/; run `cargo xtask test` once to set up",
        || {
            let tauri_driver = procs::find_program("tauri-driver").with_context(|| {
                format!(
                    "tauri-driver not found in PATH or ~/.cargo/bin: run `cargo xtask test` once, \
                     or `cargo install {TAURI_DRIVER} --locked`"
                )
            })?;
            let database = Database::for_tests()?;
            println!("using {database}");
            e2e::run(&E2eConfig {
                root: repo_root(),
                tauri_driver,
                build_ui: true,
                database: Some(database.url().to_owned()),
            })
        },
    );
    runner.finish()
}

/// Adds rustfmt and clippy with rustup when `cargo fmt` / `cargo clippy` do not work.
fn ensure_rust_components() -> Result<()> {
    let works =
        |subcommand: &str| procs::output(procs::cargo().args([subcommand, "--version"])).is_ok();
    let missing: Vec<&str> = [("fmt", "rustfmt"), ("clippy", "clippy")]
        .into_iter()
        .filter(|(subcommand, _)| !works(subcommand))
        .map(|(_, component)| component)
        .collect();
    if missing.is_empty() {
        println!("cargo fmt and cargo clippy work");
        return Ok(());
    }
    if procs::find_program("rustup").is_none() {
        bail!(
            "the Rust components {} are missing and rustup is not installed: add them to your \
             Rust toolchain",
            missing.join(" and ")
        );
    }
    procs::run(
        Command::new("rustup")
            .args(["component", "add"])
            .args(&missing),
    )
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

/// `program` from PATH or ~/.cargo/bin, else `cargo install <install_args> --locked` first.
fn ensure_cargo_tool(program: &str, install_args: &[&str]) -> Result<PathBuf> {
    if let Some(path) = procs::find_program(program) {
        println!("found {}", path.display());
        return Ok(path);
    }
    procs::run(
        procs::cargo()
            .arg("install")
            .args(install_args)
            .arg("--locked"),
    )?;
    procs::find_program(program).with_context(|| {
        format!("`cargo install` succeeded but {program} is not in PATH or ~/.cargo/bin")
    })
}

/// The repository root (xtask lives in `<root>/xtask`).
pub fn repo_root() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir.parent().unwrap_or(manifest_dir).to_owned()
}

/// `cargo metadata --format-version 1` plus `extra` arguments, parsed.
pub fn cargo_metadata(root: &Path, extra: &[&str]) -> Result<serde_json::Value> {
    let json = procs::output(
        procs::cargo()
            .args(["metadata", "--format-version", "1"])
            .args(extra)
            .current_dir(root),
    )?;
    serde_json::from_str(&json).context("cargo metadata printed invalid JSON")
}

/// Cargo's target directory for the workspace (honours `CARGO_TARGET_DIR` and config).
pub fn target_dir(root: &Path) -> Result<PathBuf> {
    cargo_metadata(root, &["--no-deps"])?["target_directory"]
        .as_str()
        .map(PathBuf::from)
        .context("cargo metadata has no target_directory")
}

#[cfg(test)]
mod tests {
    use super::summary;

    #[test]
    fn summary_counts_skipped_steps_only_when_there_are_some() {
        assert_eq!(summary(9, 0, 9), "xtask: 9 passed, 0 failed");
        assert_eq!(summary(3, 1, 9), "xtask: 3 passed, 1 failed, 5 skipped");
        assert_eq!(summary(8, 1, 9), "xtask: 8 passed, 1 failed");
    }
}
