//! `cargo xtask desk-bench [RUNS]`: the release desktop app under Xvfb, started RUNS times (default
//! 5) on a demo profile, measuring
//! - **cold start to interactive**: from just before the spawn to the moment the UI reports it
//!   is mounted with its first data (the app logs `ui ready at_ms=…`, wall clock);
//! - **idle memory** (last run, after 75 s idle): RSS, PSS and anonymous memory of the app and
//!   every process it started (WebKit's web and network processes), from `/proc`;
//! - the same for a **blank Tauri window** (`src-tauri/examples/blank_window.rs`): the floor
//!   WebKitGTK sets, whatever the app does.
//!
//! Prints `key=value` lines. Needs the packages `cargo xtask test` installs (Xvfb, WebKitGTK).

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, Result, bail};

use crate::procs::{self, ChildGuard};
use crate::{app, e2e, steps};

/// How long the app idles before its memory is read: its start-up work (the demo's one call,
/// the first worklist and history reads) long done.
const IDLE: Duration = Duration::from_secs(75);

/// Builds the UI and the release app, starts Xvfb; returns the app, the output folder and the
/// display (with its guard).
fn prepare(name: &str) -> Result<(std::path::PathBuf, std::path::PathBuf, String, ChildGuard)> {
    let root = steps::repo_root();
    app::build_ui(&root)?;
    let app = app::build_desktop(&root, true)?;
    let out_dir = steps::target_dir(&root)?.join(name);
    let _ = fs::remove_dir_all(&out_dir);
    fs::create_dir_all(&out_dir)?;
    let (display, xvfb) = e2e::start_xvfb(&out_dir)?;
    Ok((app, out_dir, display, xvfb))
}

/// `cargo xtask pop-bench [S] [MS]`: the release app on a demo profile with a call every MS
/// ms (250 by default, a stress test) for S seconds; every call ringing at extension 101 pops
/// (and is measured by the UI: PBX event → the painted frame). Prints the app's percentiles
/// (its last `pop latency so far` line).
pub fn pop_bench(duration: Duration, every_ms: u64) -> Result<()> {
    let (app, out_dir, display, _xvfb) = prepare("pop-bench")?;
    let log_path = out_dir.join("app.log");
    let data = procs::TempDir::new("calldesk-bench-data")?;
    let mut child = spawn_app(&app, &display, data.path(), &log_path, every_ms)?;
    println!(
        "measuring pops for {} s (a demo call every {every_ms} ms)…",
        duration.as_secs()
    );
    std::thread::sleep(duration + Duration::from_secs(11));
    child.check_running()?;
    drop(child);
    let text = fs::read_to_string(&log_path)?;
    let Some(line) = text
        .lines()
        .rev()
        .find(|l| l.contains("pop latency so far"))
    else {
        bail!(
            "the app logged no pop latency; log:\n{}",
            procs::tail(&log_path, 30)
        );
    };
    for key in ["count", "p50_ms", "p90_ms", "p99_ms", "max_ms"] {
        let value = line
            .split_whitespace()
            .find_map(|w| w.strip_prefix(&format!("{key}=")))
            .context("a pop latency field is missing")?;
        println!("pop_latency_{key}={value}");
    }
    Ok(())
}

/// Starts the release app on a fresh demo profile (no wizard), its log in `log_path`.
fn spawn_app(
    app: &Path,
    display: &str,
    data: &Path,
    log_path: &Path,
    demo_every_ms: u64,
) -> Result<ChildGuard> {
    fs::write(
        data.join("profiles.json"),
        r#"{"active":"demo","profiles":[{"id":"demo","name":"Demo","settings":{"kind":"demo","extension":"101","supervisor":false}}]}"#,
    )?;
    let log = fs::File::create(log_path)?;
    ChildGuard::spawn(
        "calldesk-desktop",
        window_command(app, display, data)
            .env("CALLDESK_DATA_DIR", data)
            .env("CALLDESK_DEMO_EVERY_MS", demo_every_ms.to_string())
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(log),
    )
}

/// `program` on the Xvfb `display`, its XDG folders (WebKit's caches too) in `data`.
fn window_command(program: &Path, display: &str, data: &Path) -> Command {
    let mut cmd = Command::new(program);
    cmd.env("DISPLAY", display)
        .env("NO_AT_BRIDGE", "1")
        .env("XDG_DATA_HOME", data)
        .env("XDG_CONFIG_HOME", data)
        .env("XDG_CACHE_HOME", data);
    cmd
}

pub fn run(runs: usize) -> Result<()> {
    let (app, out_dir, display, _xvfb) = prepare("desk-bench")?;
    let mut starts = Vec::new();
    for run in 1..=runs {
        let last = run == runs;
        let (ms, memory) = one_run(&app, &display, &out_dir, run, last)?;
        println!("cold_start_run{run}_ms={ms}");
        starts.push(ms);
        if let Some(m) = memory {
            println!("idle_processes={}", m.processes);
            println!("idle_rss_total_mb={:.1}", m.rss_kb as f64 / 1024.0);
            println!("idle_pss_total_mb={:.1}", m.pss_kb as f64 / 1024.0);
            println!("idle_anonymous_total_mb={:.1}", m.anon_kb as f64 / 1024.0);
        }
    }
    let blank = blank_window_memory(&steps::repo_root(), &display)?;
    println!("blank_window_processes={}", blank.processes);
    println!(
        "blank_window_rss_total_mb={:.1}",
        blank.rss_kb as f64 / 1024.0
    );
    println!(
        "blank_window_pss_total_mb={:.1}",
        blank.pss_kb as f64 / 1024.0
    );
    println!(
        "blank_window_anonymous_total_mb={:.1}",
        blank.anon_kb as f64 / 1024.0
    );
    starts.sort_unstable();
    println!("cold_start_median_ms={}", starts[starts.len() / 2]);
    println!("cold_start_max_ms={}", starts[starts.len() - 1]);
    Ok(())
}

/// The floor: a Tauri window with a one-line page (`src-tauri/examples/blank_window.rs`),
/// release, measured after the same idle time as the app.
fn blank_window_memory(root: &Path, display: &str) -> Result<TreeMemory> {
    procs::run(
        procs::cargo()
            .args([
                "build",
                "-p",
                "calldesk-desktop",
                "--release",
                "--example",
                "blank_window",
            ])
            .current_dir(root),
    )?;
    let program = steps::target_dir(root)?.join("release/examples/blank_window");
    let data = procs::TempDir::new("calldesk-bench-blank")?;
    let log_path = data.path().join("blank.log");
    let log = fs::File::create(&log_path)?;
    let spawned_at = now_ms()?;
    let mut child = ChildGuard::spawn(
        "blank_window",
        window_command(&program, display, data.path())
            .stdout(Stdio::null())
            .stderr(log),
    )?;
    let ready_at = procs::wait_for("the blank window's page", Duration::from_secs(60), || {
        child.check_running()?;
        let text = fs::read_to_string(&log_path).unwrap_or_default();
        Ok(text.lines().find_map(|l| {
            l.strip_prefix("blank ready at_ms=")?
                .trim()
                .parse::<u128>()
                .ok()
        }))
    })?;
    println!(
        "blank_window_start_ms={}",
        ready_at.saturating_sub(spawned_at)
    );
    std::thread::sleep(IDLE);
    child.check_running()?;
    tree_memory(child.id())
}

/// Idle memory of the app's process tree.
struct TreeMemory {
    rss_kb: u64,
    pss_kb: u64,
    /// Memory no other process shares (heaps, stacks): what the app itself costs, apart from
    /// the library code every WebKitGTK program maps.
    anon_kb: u64,
    processes: usize,
}

fn now_ms() -> Result<u128> {
    Ok(SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis())
}

/// One start: a fresh data folder with an active demo profile (no wizard), the app spawned
/// with its log in a file; returns the cold start and, when `measure`, the idle memory.
fn one_run(
    app: &Path,
    display: &str,
    out_dir: &Path,
    run: usize,
    measure: bool,
) -> Result<(u128, Option<TreeMemory>)> {
    let data = procs::TempDir::new("calldesk-bench-data")?;
    let log_path = out_dir.join(format!("app-run{run}.log"));
    let spawned_at = now_ms()?;
    // One demo call at the start, then quiet: the idle figure is an idle app.
    let mut child = spawn_app(app, display, data.path(), &log_path, 3_600_000)?;
    let ready_at = procs::wait_for("the app to log `ui ready`", Duration::from_secs(60), || {
        child.check_running()?;
        let text = fs::read_to_string(&log_path).unwrap_or_default();
        Ok(text.lines().find_map(|l| {
            let (_, rest) = l.split_once("ui ready at_ms=")?;
            rest.split_whitespace().next()?.parse::<u128>().ok()
        }))
    });
    let ready_at = match ready_at {
        Ok(at) => at,
        Err(e) => bail!("{e:#}\napp log:\n{}", procs::tail(&log_path, 30)),
    };
    let cold = ready_at.saturating_sub(spawned_at);
    print_stages(
        run,
        spawned_at,
        &fs::read_to_string(&log_path).unwrap_or_default(),
    );
    let memory = if measure {
        std::thread::sleep(IDLE);
        child.check_running()?;
        Some(tree_memory(child.id())?)
    } else {
        None
    };
    drop(child);
    Ok((cold, memory))
}

/// The cold start split into stages, from the app's log: `exec` (spawn to `main`), then ms since
/// `main` for the set-up, the main page's load start, and the page's own marks (see the UI's
/// `StartMarks`).
fn print_stages(run: usize, spawned_at: u128, log: &str) {
    let field = |line: &str, key: &str| -> Option<u128> {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
            .and_then(|v| v.parse().ok())
    };
    let find = |marker: &str| log.lines().find(|l| l.contains(marker));
    let mut parts = Vec::new();
    if let Some(main_at) = find("setting up").and_then(|l| field(l, "main_at_ms")) {
        parts.push(format!("exec={}", main_at.saturating_sub(spawned_at)));
    }
    if let Some(ms) = find("setting up").and_then(|l| field(l, "since_start_ms")) {
        parts.push(format!("setup={ms}"));
    }
    if let Some(ms) = find("main page load started").and_then(|l| field(l, "since_start_ms")) {
        parts.push(format!("page_load={ms}"));
    }
    if let Some(line) = find("ui ready") {
        for key in [
            "navigation_ms",
            "response_ms",
            "script_ms",
            "mounted_ms",
            "profiles_ms",
            "painted_ms",
            "ready_ms",
        ] {
            if let Some(ms) = field(line, key) {
                parts.push(format!("{}={ms}", key.trim_end_matches("_ms")));
            }
        }
    }
    println!(
        "cold_start_run{run}_stages_since_main_ms: {}",
        parts.join(" ")
    );
}

/// RSS and PSS of `root` and all its descendants, and how many processes that is.
fn tree_memory(root: u32) -> Result<TreeMemory> {
    let mut parents = Vec::new();
    for entry in fs::read_dir("/proc")? {
        let name = entry?.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // The command may hold spaces and parentheses: the fields follow the last ')'.
        let Some(ppid) = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        parents.push((pid, ppid));
    }
    let mut tree = vec![root];
    let mut i = 0;
    while i < tree.len() {
        let parent = tree[i];
        tree.extend(
            parents
                .iter()
                .filter(|(_, pp)| *pp == parent)
                .map(|(p, _)| *p),
        );
        i += 1;
    }
    let (mut rss, mut pss, mut anon) = (0, 0, 0);
    for pid in &tree {
        let rollup = fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
            .with_context(|| format!("reading /proc/{pid}/smaps_rollup"))?;
        rss += field_kb(&rollup, "Rss:");
        pss += field_kb(&rollup, "Pss:");
        anon += field_kb(&rollup, "Anonymous:");
    }
    Ok(TreeMemory {
        rss_kb: rss,
        pss_kb: pss,
        anon_kb: anon,
        processes: tree.len(),
    })
}

fn field_kb(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::field_kb;

    #[test]
    fn reads_kilobytes_from_smaps_rollup() {
        let text = "55d0-7ffd ---p 00000000 00:00 0 [rollup]\nRss:              123456 kB\nPss:               98765 kB\n";
        assert_eq!(field_kb(text, "Rss:"), 123_456);
        assert_eq!(field_kb(text, "Pss:"), 98_765);
        assert_eq!(field_kb(text, "Swap:"), 0);
    }
}
