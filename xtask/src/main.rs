//! calldesk developer tasks (the "xtask" pattern: plain Rust instead of shell scripts).
//!
//! ```text
//! cargo xtask test   everything CI runs, with all set-up: toolchain checks, Debian packages
//!                    (installed when root), tauri-driver, the UI's npm build/check/test,
//!                    PostgreSQL for the tests, cargo fmt, clippy, test, then the end-to-end
//!                    test; prints `xtask: N passed, M failed[, K skipped]` last
//! cargo xtask e2e    only the end-to-end test (builds the UI and the app): the real app under
//!                    Xvfb, driven over WebDriver
//! cargo xtask pop-bench [S] [MS]   the release app, a demo call every MS ms: pop latency
//! cargo xtask desk-bench [N]  the release app started N times: cold start, idle memory
//! cargo xtask demo   builds the UI and the app, and runs the app in demo mode
//! cargo xtask package  builds the UI and the release app, makes the Debian package with the
//!                    Tauri bundler and checks it (an AppImage too, if it can be built offline)
//! cargo xtask pg     starts a throwaway PostgreSQL, prints its DATABASE_URL, stops on Ctrl-C
//! ```
//!
//! Environment: `DATABASE_URL` (use this database for the tests), `XTASK_PG=throwaway` (always
//! start a throwaway cluster). Modules: `steps` (the `test` pipeline), `app` (building the UI
//! and the desktop app), `pg`, `e2e` with its `webdriver` client, `bench`, `demo`, `apt`, and `procs`
//! (commands and guards that stop background processes on every exit path). The `tidy` test
//! checks the workspace's house rules.

// A command-line tool: printing to stdout is its user interface.
#![allow(clippy::print_stdout)]

mod app;
mod apt;
mod bench;
mod demo;
mod e2e;
mod package;
mod pg;
mod procs;
mod steps;
#[cfg(test)]
mod tidy;
mod webdriver;

use std::process::ExitCode;

const USAGE: &str = "usage: cargo xtask <command>

commands:
  test   set up everything and run all checks and tests (what CI runs)
  e2e    build the UI and the app and run only the end-to-end test
         (needs the packages and tauri-driver that `cargo xtask test` sets up)
  pop-bench [S] [MS]  the app under Xvfb with a demo call every MS ms (default 250: a stress
         test; 3000 is a busy operator) for S seconds (default 60), then the pop latency
         (PBX event -> painted pop) percentiles
  desk-bench [N]  the release app under Xvfb started N times (default 5): cold start to
         interactive, then idle memory (RSS and PSS of the app and its WebKit processes)
  demo   build and run the desktop app in demo mode
  package  build the UI and the release app, make the Debian package
         (target/release/bundle/deb/) and check it; an AppImage too when the Tauri bundler's
         tools are already on disk (it downloads them from GitHub otherwise, so it is skipped)
  pg     start a throwaway PostgreSQL and print its DATABASE_URL (Ctrl-C stops it)";

fn main() -> ExitCode {
    procs::install_interrupt_handler();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let command = args.first().map(String::as_str);
    // The benchmarks take numbers: argument `at` (1 = the first after the command).
    let number_at =
        |at: usize, what: &str, default: u64, range: std::ops::RangeInclusive<u64>| match args
            .get(at)
            .map(|s| s.parse::<u64>())
        {
            None => Ok(default),
            Some(Ok(n)) if range.contains(&n) => Ok(n),
            Some(_) => {
                eprintln!(
                    "xtask: {} takes a number of {what} between {} and {}",
                    args[0],
                    range.start(),
                    range.end()
                );
                Err(ExitCode::from(2))
            }
        };
    let bench = match command {
        Some("pop-bench") => Some(number_at(1, "seconds", 60, 5..=3600).and_then(|s| {
            number_at(2, "milliseconds between calls", 250, 50..=60_000)
                .map(|every| bench::pop_bench(std::time::Duration::from_secs(s), every))
        })),
        Some("desk-bench") => Some(number_at(1, "runs", 5, 1..=50).map(|n| bench::run(n as usize))),
        _ => None,
    };
    match bench {
        Some(Err(code)) => return code,
        Some(Ok(result)) => {
            return result.map_or_else(
                |err| {
                    eprintln!("xtask: error: {err:#}");
                    ExitCode::FAILURE
                },
                |()| ExitCode::SUCCESS,
            );
        }
        None => {}
    }
    if args.len() > 1 {
        eprintln!(
            "xtask: unexpected arguments: {}\n\n{USAGE}",
            args[1..].join(" ")
        );
        return ExitCode::from(2);
    }
    let result = match command {
        Some("test") => return steps::test_all(),
        Some("e2e") => return steps::e2e_only(),
        Some("demo") => demo::run(),
        Some("package") => package::run().map(|()| ExitCode::SUCCESS),
        Some("pg") => pg::serve().map(|()| ExitCode::SUCCESS),
        Some("help" | "-h" | "--help") => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        None => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
        Some(other) => {
            eprintln!("xtask: unknown command `{other}`\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    result.unwrap_or_else(|err| {
        eprintln!("xtask: error: {err:#}");
        ExitCode::FAILURE
    })
}
