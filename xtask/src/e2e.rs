//! The end-to-end test: the real desktop app in a real window under Xvfb, driven over WebDriver
//! (tauri-driver + WebKitWebDriver) in demo mode. It checks that the app connects to the built-in
//! simulated PBX, that the first demo call pops up with the caller's number formatted by
//! `calldesk-calls`, and that the call then lands in the call list with a final status.
//! Screenshots and logs go to `<target>/e2e/`. Every process started here is stopped by a guard,
//! also on failure.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use serde_json::json;

use crate::procs::{self, ChildGuard};
use crate::webdriver::{self, Element, Session};

/// How long each assertion may take to become true.
const DEADLINE: Duration = Duration::from_secs(20);
/// Final call statuses shown in the call list.
const FINAL_STATUSES: [&str; 3] = ["answered", "missed", "busy"];
const NATIVE_DRIVER: &str = "/usr/bin/WebKitWebDriver";

/// Paths the end-to-end test works with.
#[derive(Debug)]
pub struct E2eConfig {
    pub root: PathBuf,
    pub target_dir: PathBuf,
    pub tauri_driver: PathBuf,
}

/// Builds the app and runs the test; on failure prints the tail of the driver/app log.
pub fn run(config: &E2eConfig) -> Result<()> {
    procs::run(
        procs::cargo()
            .args(["build", "-p", "calldesk-desktop"])
            .current_dir(&config.root),
    )
    .context("building the desktop app failed")?;
    let app = config.target_dir.join("debug").join("calldesk-desktop");
    if !app.is_file() {
        bail!(
            "built calldesk-desktop but {} does not exist",
            app.display()
        );
    }
    if !Path::new(NATIVE_DRIVER).is_file() {
        bail!("{NATIVE_DRIVER} not found: install the Debian package webkit2gtk-driver");
    }
    // A fresh folder, so screenshots and logs from an earlier run cannot be mistaken for this one's.
    let out_dir = config.target_dir.join("e2e");
    let _ = fs::remove_dir_all(&out_dir);
    fs::create_dir_all(&out_dir).with_context(|| format!("cannot create {}", out_dir.display()))?;
    let driver_log = out_dir.join("tauri-driver.log");
    let result = run_in_xvfb(config, &app, &out_dir, &driver_log);
    if result.is_err() {
        eprintln!(
            "---- last 50 lines of {} (tauri-driver, WebKitWebDriver and the app) ----",
            driver_log.display()
        );
        eprintln!("{}", procs::tail(&driver_log, 50));
        eprintln!("---- end of log ----");
    }
    result
}

fn run_in_xvfb(config: &E2eConfig, app: &Path, out_dir: &Path, driver_log: &Path) -> Result<()> {
    let (display, _xvfb) = start_xvfb(out_dir)?;
    let data_dir = procs::TempDir::new("calldesk-e2e-data")?;
    let port = procs::free_port()?;
    let log = fs::File::create(driver_log)
        .with_context(|| format!("cannot create {}", driver_log.display()))?;
    let mut driver = ChildGuard::spawn(
        "tauri-driver",
        Command::new(&config.tauri_driver)
            .args([
                "--port",
                &port.to_string(),
                "--native-driver",
                NATIVE_DRIVER,
            ])
            .env("DISPLAY", &display)
            .env("NO_AT_BRIDGE", "1")
            .env("CALLDESK_DATA_DIR", data_dir.path())
            .env("CALLDESK_DEMO_EVERY_MS", "1500")
            .env("RUST_LOG", "info")
            .stdout(log.try_clone()?)
            .stderr(log),
    )?;
    procs::wait_for(
        "tauri-driver to accept connections",
        Duration::from_secs(15),
        || {
            driver.check_running()?;
            Ok(procs::port_accepts(port).then_some(()))
        },
    )?;

    let started = Instant::now();
    let capabilities = json!({
        "alwaysMatch": { "tauri:options": { "application": app } }
    });
    let session = Session::new(&format!("http://127.0.0.1:{port}"), capabilities)?;
    let result = check_demo(&session, started, out_dir, &display);
    if result.is_err() {
        let failure = out_dir.join("failure.png");
        if session
            .screenshot()
            .and_then(|png| write(&failure, &png))
            .is_ok()
        {
            eprintln!("xtask: screenshot at failure: {}", failure.display());
        }
    }
    let closed = session.close().context("closing the WebDriver session");
    result?;
    closed
}

/// The assertions, once the app is up.
fn check_demo(session: &Session, started: Instant, out_dir: &Path, display: &str) -> Result<()> {
    let expected = expected_first_caller()?;

    poll(
        "[data-testid=\"connection-status\"] to have data-state=\"connected\"",
        || {
            let Some(status) = session.find(r#"[data-testid="connection-status"]"#)? else {
                return Ok(None);
            };
            let state = session.attribute(&status, "data-state")?;
            Ok((state.as_deref() == Some("connected")).then_some(()))
        },
    )?;
    println!(
        "connected to the demo PBX after {:.2} s",
        started.elapsed().as_secs_f64()
    );

    let mut last_seen = None;
    let pop = poll(
        &format!("[data-testid=\"call-pop-number\"] with text {expected:?}"),
        || {
            let Some(number) = session.find(r#"[data-testid="call-pop-number"]"#)? else {
                return Ok(None);
            };
            let text = session.text(&number)?;
            let matched = text.trim() == expected;
            last_seen = Some(text);
            Ok(matched.then_some(()))
        },
    );
    if let Err(err) = pop {
        match last_seen {
            Some(text) => bail!("{err:#}; the pop showed {text:?} instead"),
            None => bail!("{err:#}; no call pop appeared"),
        }
    }
    let to_pop = started.elapsed();
    let call_pop = out_dir.join("call-pop.png");
    write(&call_pop, &session.screenshot()?)?;

    // The popped call itself (its row shows the same number), not any other demo call.
    let what = format!("the [data-testid=\"call-row\"] of {expected} with a final data-status");
    let status = poll(&what, || {
        for row in session.find_all(r#"[data-testid="call-row"]"#)? {
            if let Some(status) = final_status(session, &row)?
                && session.text(&row)?.contains(&expected)
            {
                return Ok(Some(status));
            }
        }
        Ok(None)
    })?;
    println!(
        "the call moved to the call list with status {status:?} after {:.2} s",
        started.elapsed().as_secs_f64()
    );

    let window = out_dir.join("demo-window.png");
    write(&window, &session.screenshot()?)?;
    let screen = out_dir.join("demo-screen.png");
    procs::output(
        Command::new("import")
            .args(["-window", "root"])
            .arg(&screen)
            .env("DISPLAY", display),
    )
    .context("screenshot of the Xvfb screen with ImageMagick `import` failed")?;

    let russian = switch_to_russian(session, out_dir)?;

    println!(
        "session start -> call pop showing {expected}: {:.2} s",
        to_pop.as_secs_f64()
    );
    println!("screenshots:");
    for path in [&call_pop, &window, &screen, &russian] {
        println!("    {}", path.display());
    }
    Ok(())
}

/// Clicks the RU switch and waits for the status bar to speak Russian; returns the screenshot.
fn switch_to_russian(session: &Session, out_dir: &Path) -> Result<PathBuf> {
    let ru = session
        .find(r#"[data-testid="lang-ru"]"#)?
        .context("the status bar has no RU language switch ([data-testid=\"lang-ru\"])")?;
    session.click(&ru)?;
    poll(
        "the status bar to read \"Подключено\" after switching to RU",
        || {
            let Some(status) = session.find(r#"[data-testid="connection-status"]"#)? else {
                return Ok(None);
            };
            Ok(session.text(&status)?.contains("Подключено").then_some(()))
        },
    )?;
    let path = out_dir.join("demo-window-ru.png");
    write(&path, &session.screenshot()?)?;
    Ok(path)
}

fn final_status(session: &Session, row: &Element) -> Result<Option<String>> {
    let status = session.attribute(row, "data-status")?;
    Ok(status.filter(|status| FINAL_STATUSES.contains(&status.as_str())))
}

/// The display form of the first demo caller, as the app must show it.
fn expected_first_caller() -> Result<String> {
    let raw = calldesk_sim::demo::demo_caller(0);
    let number = calldesk_calls::NumberPlan::new("RU")?
        .parse(&raw)
        .with_context(|| format!("the first demo caller {raw:?} is not a valid number"))?;
    Ok(number.display())
}

/// [`procs::wait_for`] with the standard deadline, retrying on transient WebDriver errors (the
/// element went away between finding and reading it).
fn poll<T>(what: &str, mut check: impl FnMut() -> Result<Option<T>>) -> Result<T> {
    procs::wait_for(what, DEADLINE, || match check() {
        Err(err) if webdriver::is_transient(&err) => Ok(None),
        other => other,
    })
}

fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    fs::write(path, bytes).with_context(|| format!("cannot write {}", path.display()))
}

/// Starts `Xvfb` on the first free display from :99 up and waits for its socket.
fn start_xvfb(out_dir: &Path) -> Result<(String, ChildGuard)> {
    let number = (99..200)
        .find(|n| {
            !Path::new(&format!("/tmp/.X11-unix/X{n}")).exists()
                && !Path::new(&format!("/tmp/.X{n}-lock")).exists()
        })
        .context("no free X display number between :99 and :199")?;
    let display = format!(":{number}");
    let log_path = out_dir.join("xvfb.log");
    let log = fs::File::create(&log_path)?;
    let mut xvfb = ChildGuard::spawn(
        "Xvfb",
        Command::new("Xvfb")
            .args([
                display.as_str(),
                "-screen",
                "0",
                "1280x800x24",
                "-nolisten",
                "tcp",
            ])
            .stdout(Stdio::null())
            .stderr(log),
    )?;
    let socket = PathBuf::from(format!("/tmp/.X11-unix/X{number}"));
    let waited = procs::wait_for("the Xvfb socket", Duration::from_secs(10), || {
        xvfb.check_running()?;
        Ok(socket.exists().then_some(()))
    });
    if let Err(err) = waited {
        bail!("{err:#}\nXvfb log:\n{}", procs::tail(&log_path, 20));
    }
    Ok((display, xvfb))
}
