//! The end-to-end test: the real desktop app in a real window under Xvfb, driven over WebDriver
//! (tauri-driver + WebKitWebDriver) in demo mode. It checks that the app connects to the built-in
//! simulated PBX, that a demo call pops up with the caller's number formatted by `calldesk-calls`,
//! and that this call then lands in the call list with a final status. The app runs isolated from
//! the caller's environment (its own XDG dirs, region, locale). Screenshots and logs go to
//! `<target>/e2e/`. Every process started here is stopped by a guard, also on failure.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use serde_json::json;

use crate::procs::{self, ChildGuard};
use crate::webdriver::{self, Element, Session};
use crate::{app, steps};

mod hub;

/// How long each assertion may take to become true.
const DEADLINE: Duration = Duration::from_secs(20);
/// Final call statuses shown in the call list.
const FINAL_STATUSES: [&str; 3] = ["answered", "missed", "busy"];
const NATIVE_DRIVER: &str = "/usr/bin/WebKitWebDriver";
/// The app's region (`CALLDESK_REGION`), which also formats the numbers we expect to see.
const REGION: &str = "RU";
/// Demo calls the pop may show: it shows the newest ringing call, and a slow start skips some.
const DEMO_CALLS: u64 = 32;

/// What the end-to-end test works with.
#[derive(Debug)]
pub struct E2eConfig {
    pub root: PathBuf,
    pub tauri_driver: PathBuf,
    /// Build `ui/dist` first (`npm ci` when needed, `npm run build`); false when it is fresh.
    pub build_ui: bool,
    /// A PostgreSQL server URL where a database may be created: the second part of the test
    /// runs the app against a real hub on it (skipped when `None`).
    pub database: Option<String>,
}

/// Builds the app and runs the test; on failure prints the tail of the driver/app log.
pub fn run(config: &E2eConfig) -> Result<()> {
    if config.build_ui {
        app::build_ui(&config.root)?;
    }
    let app = app::build_desktop(&config.root, false)?;
    if !Path::new(NATIVE_DRIVER).is_file() {
        bail!("{NATIVE_DRIVER} not found: install the Debian package webkit2gtk-driver");
    }
    // A fresh folder, so screenshots and logs from an earlier run cannot be mistaken for this one's
    // (`create_dir` fails if the old one could not be removed).
    let out_dir = steps::target_dir(&config.root)?.join("e2e");
    let _ = fs::remove_dir_all(&out_dir);
    fs::create_dir(&out_dir).with_context(|| format!("cannot create {}", out_dir.display()))?;
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
    {
        // Everything the app (and WebKit's localStorage) writes stays in this folder.
        let data_dir = procs::TempDir::new("calldesk-e2e-data")?;
        let mut driver = Driver::start(config, &display, data_dir.path(), driver_log, false)?;
        let started = Instant::now();
        let session = driver.session(app)?;
        let result = check_demo(&session, started, out_dir, &display);
        let placed = match result {
            Ok(()) => place_window(&session, app),
            Err(e) => Err(e),
        };
        let rect = match placed {
            Ok(rect) => {
                // The app has exited: the session has nothing left to close.
                let _ = session.close();
                rect
            }
            Err(e) => return finish(session, Err(e), out_dir, "failure.png"),
        };
        let session = driver.session(app)?;
        let result = check_window_restored(&session, rect, data_dir.path());
        finish(session, result, out_dir, "failure-window-state.png")?;
    }
    let Some(database) = &config.database else {
        println!("xtask: no database given: the end-to-end test against the hub is skipped");
        return Ok(());
    };
    hub::run(config, app, database, out_dir, &display)
}

/// Where the window is put before the app is stopped (and must come back).
const PLACED: (i64, i64, i64, i64) = (37, 29, 1010, 690);

/// Moves and resizes the window, then stops the app the way a logout does (SIGTERM), which
/// must exit normally and save the window state. Returns the rect the window had.
fn place_window(session: &Session, app: &Path) -> Result<(i64, i64, i64, i64)> {
    let (x, y, w, h) = PLACED;
    session.set_window_rect(x, y, w, h)?;
    let rect = poll("the window to take its new place and size", || {
        let rect = session.window_rect()?;
        Ok((rect.2 == w && rect.3 == h).then_some(rect))
    })?;
    let pids = procs::pids_of(app)?;
    if pids.is_empty() {
        bail!("no running process of {}", app.display());
    }
    for pid in &pids {
        procs::run(Command::new("kill").args(["-TERM", &pid.to_string()]))?;
    }
    procs::wait_for("the app to exit on SIGTERM", DEADLINE, || {
        Ok(procs::pids_of(app)?.is_empty().then_some(()))
    })?;
    println!("window placed at {rect:?}; the app exited on SIGTERM");
    Ok(rect)
}

/// The app started again shows its window where it was left, with the same size.
fn check_window_restored(session: &Session, rect: (i64, i64, i64, i64), data: &Path) -> Result<()> {
    let file = data
        .join("config")
        .join("org.calldesk.desktop")
        .join(".window-state.json");
    let saved = fs::read_to_string(&file)
        .with_context(|| format!("no window state was saved at {}", file.display()))?;
    let again = poll("the restarted app's window to be up", || {
        Ok(session
            .find(r#"[data-testid="connection-status"]"#)?
            .map(|_| ()))
    })
    .and_then(|()| session.window_rect())?;
    if (again.2, again.3) != (rect.2, rect.3)
        || (again.0 - rect.0).abs() > 2
        || (again.1 - rect.1).abs() > 2
    {
        bail!("the window came back at {again:?}, not at {rect:?}; saved state: {saved}");
    }
    println!(
        "the restarted app's window is back at {again:?} (saved in {})",
        file.display()
    );
    Ok(())
}

/// Takes a screenshot named `failure` if `result` failed, then closes the session.
fn finish(session: Session, result: Result<()>, out_dir: &Path, failure: &str) -> Result<()> {
    if result.is_err() {
        let path = out_dir.join(failure);
        if session
            .screenshot()
            .and_then(|png| write(&path, &png))
            .is_ok()
        {
            eprintln!("xtask: screenshot at failure: {}", path.display());
        }
    }
    let closed = session.close().context("closing the WebDriver session");
    result?;
    closed
}

/// tauri-driver (and through it WebKitWebDriver and the app) with the app's environment: its
/// own XDG folders and data dir, the region, a C locale. With `keyring`, inside its own D-Bus
/// session with an unlocked GNOME Keyring (the Secret Service the app keeps passwords in).
struct Driver {
    guard: ChildGuard,
    port: u16,
}

impl Driver {
    fn start(
        config: &E2eConfig,
        display: &str,
        data_dir: &Path,
        log_path: &Path,
        keyring: bool,
    ) -> Result<Self> {
        let xdg_dir = |name: &str| -> Result<PathBuf> {
            let dir = data_dir.join(name);
            fs::create_dir(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
            Ok(dir)
        };
        let port = procs::free_port()?;
        let native_port = procs::free_port()?;
        let log = fs::File::options()
            .create(true)
            .append(true)
            .open(log_path)
            .with_context(|| format!("cannot open {}", log_path.display()))?;
        let mut cmd = if keyring {
            // The password only unlocks this run's throwaway keyring.
            let mut cmd = Command::new("dbus-run-session");
            cmd.args([
                "--",
                "bash",
                "-c",
                r#"eval "$(printf e2e | gnome-keyring-daemon --unlock --components=secrets)"; exec "$0" "$@""#,
            ])
            .arg(&config.tauri_driver);
            cmd
        } else {
            Command::new(&config.tauri_driver)
        };
        cmd.args(["--port", &port.to_string()])
            .args(["--native-port", &native_port.to_string()])
            .args(["--native-driver", NATIVE_DRIVER])
            .env("DISPLAY", display)
            .env("NO_AT_BRIDGE", "1")
            .env("XDG_DATA_HOME", xdg_dir("data")?)
            .env("XDG_CONFIG_HOME", xdg_dir("config")?)
            .env("XDG_CACHE_HOME", xdg_dir("cache")?)
            // Its `.asoundrc` names a sound card that does not exist (the same on every machine,
            // with a sound card or without): playing a recording must say so, not crash.
            .env("HOME", no_sound_home(&xdg_dir("home")?)?)
            .env("CALLDESK_DATA_DIR", data_dir)
            .env("CALLDESK_REGION", REGION)
            .env("CALLDESK_DEMO_EVERY_MS", "1500")
            .env("LANG", "C.UTF-8")
            .env("NO_COLOR", "1")
            .env("RUST_LOG", "info")
            .stdout(log.try_clone()?)
            .stderr(log);
        let mut guard = ChildGuard::spawn("tauri-driver", &mut cmd)?;
        procs::wait_for(
            "tauri-driver to accept connections",
            Duration::from_secs(15),
            || {
                guard.check_running()?;
                Ok(procs::port_accepts(port).then_some(()))
            },
        )?;
        Ok(Self { guard, port })
    }

    /// A WebDriver session: starts the app.
    fn session(&mut self, app: &Path) -> Result<Session> {
        let capabilities = json!({
            "alwaysMatch": { "tauri:options": { "application": app } }
        });
        // tauri-driver starts WebKitWebDriver on the first session request and connects to it
        // at once; on a cold machine the native driver may not listen yet ("Connection refused",
        // seen in a CI rehearsal). Try again a few times before calling it a failure.
        let base = format!("http://127.0.0.1:{}", self.port);
        let mut attempt = 1;
        loop {
            match Session::new(&base, capabilities.clone()) {
                Ok(session) => return Ok(session),
                Err(err) if attempt < 3 => {
                    eprintln!(
                        "xtask: WebDriver session attempt {attempt} failed ({err:#}); retrying"
                    );
                    attempt += 1;
                    std::thread::sleep(Duration::from_secs(2));
                    self.guard.check_running()?;
                }
                Err(err) => return Err(err),
            }
        }
    }
}

/// A fresh data folder shows the first-run wizard; its default is the demo profile, which
/// this saves. Returns the wizard's screenshot when `out_dir` is given.
fn create_demo_profile(session: &Session, out_dir: Option<&Path>) -> Result<Option<PathBuf>> {
    // Rendered text, not just the element: the screenshot must show the painted wizard.
    poll(
        "the first-run wizard's save button to read \"Save and connect\"",
        || {
            let Some(save) = session.find(r#"[data-testid="wizard-save"]"#)? else {
                return Ok(None);
            };
            Ok(session
                .text(&save)?
                .contains("Save and connect")
                .then_some(()))
        },
    )?;
    let shot = match out_dir {
        Some(dir) => {
            let path = dir.join("wizard.png");
            write(&path, &session.screenshot()?)?;
            Some(path)
        }
        None => None,
    };
    let save = session
        .find(r#"[data-testid="wizard-save"]"#)?
        .context("the wizard has no save button ([data-testid=\"wizard-save\"])")?;
    session.click(&save)?;
    Ok(shot)
}

/// `home` with an `.asoundrc` whose default sound device is a card that does not exist.
fn no_sound_home(home: &Path) -> Result<PathBuf> {
    write(
        &home.join(".asoundrc"),
        b"pcm.!default { type hw; card 29 }\nctl.!default { type hw; card 29 }\n",
    )?;
    Ok(home.to_owned())
}

/// The pop latencies the app recorded (`pop_latency` command), as JSON.
fn pop_latency(session: &Session) -> Result<serde_json::Value> {
    let value = session.execute_async(
        "const done = arguments[arguments.length - 1];\n\
         window.__TAURI_INTERNALS__.invoke('pop_latency').then(done, (e) => done({ error: String(e && e.message || e) }));",
        &[],
    )?;
    if let Some(err) = value.get("error") {
        bail!("the pop_latency command failed: {err}");
    }
    Ok(value)
}

fn print_pop_latency(figures: &serde_json::Value) {
    for key in ["count", "p50", "p90", "p99", "max"] {
        let unit = if key == "count" { "" } else { "_ms" };
        println!("pop_latency_{key}{unit}={}", figures[key]);
    }
}

fn wait_connected(session: &Session) -> Result<()> {
    poll(
        "[data-testid=\"connection-status\"] to have data-state=\"connected\"",
        || {
            let Some(status) = session.find(r#"[data-testid="connection-status"]"#)? else {
                return Ok(None);
            };
            let state = session.attribute(&status, "data-state")?;
            Ok((state.as_deref() == Some("connected")).then_some(()))
        },
    )
}

/// The assertions, once the app is up.
fn check_demo(session: &Session, started: Instant, out_dir: &Path, display: &str) -> Result<()> {
    let callers = demo_callers()?;

    let wizard = create_demo_profile(session, Some(out_dir))?
        .context("the wizard screenshot was not taken")?;
    wait_connected(session)?;
    println!(
        "connected to the demo PBX after {:.2} s",
        started.elapsed().as_secs_f64()
    );

    let mut last_seen = None;
    let pop = poll(
        &format!(
            "[data-testid=\"call-pop-number\"] to show one of the first {DEMO_CALLS} demo callers"
        ),
        || {
            let Some(number) = session.find(r#"[data-testid="call-pop-number"]"#)? else {
                return Ok(None);
            };
            let text = session.text(&number)?;
            let call = demo_call_shown(&callers, &text);
            last_seen = Some(text);
            Ok(call)
        },
    );
    let call = match (pop, last_seen) {
        (Ok(call), _) => call,
        (Err(err), Some(text)) => bail!("{err:#}; the pop showed {text:?} instead"),
        (Err(err), None) => bail!("{err:#}; no call pop appeared"),
    };
    let expected = &callers[call];
    let to_pop = started.elapsed();
    println!("the pop shows demo call {call}: {expected}");
    let call_pop = out_dir.join("call-pop.png");
    write(&call_pop, &session.screenshot()?)?;

    // The popped call itself (its row shows the same number), not any other demo call.
    let what = format!("the [data-testid=\"call-row\"] of {expected} with a final data-status");
    let status = poll(&what, || {
        for row in session.find_all(r#"[data-testid="call-row"]"#)? {
            if let Some(status) = final_status(session, &row)?
                && session.text(&row)?.contains(expected.as_str())
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
    // The whole X screen too: the always-on-top pop window is not in WebDriver's page.
    let screen = out_dir.join("demo-screen.png");
    screen_shot(display, &screen)?;

    let russian = switch_to_russian(session, out_dir)?;
    let worklist = worklist_dark(session, out_dir)?;

    // The pop of this call was measured: from the PBX event to the painted frame.
    let figures = pop_latency(session)?;
    if figures["count"].as_u64().unwrap_or(0) == 0 {
        bail!("the app measured no pop latency although a pop was shown: {figures}");
    }
    print_pop_latency(&figures);

    println!(
        "session start -> call pop showing {expected} (demo call {call}): {:.2} s",
        to_pop.as_secs_f64()
    );
    println!("screenshots:");
    for path in [&wizard, &call_pop, &window, &screen, &russian, &worklist] {
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

/// The Call back tab lists the demo's missed callers (every third demo call is missed); the
/// theme button switches to dark. Returns the screenshot (Russian, dark, worklist).
fn worklist_dark(session: &Session, out_dir: &Path) -> Result<PathBuf> {
    let tab = session
        .find(r#"[data-testid="tab-callbacks"]"#)?
        .context("no Call back tab ([data-testid=\"tab-callbacks\"])")?;
    session.click(&tab)?;
    poll("the worklist to list a missed demo caller", || {
        Ok(session.find(r#"[data-testid="wl-item"]"#)?.map(drop))
    })?;
    let theme = session
        .find(r#"[data-testid="theme"]"#)?
        .context("no theme button ([data-testid=\"theme\"])")?;
    // auto → light → dark
    session.click(&theme)?;
    session.click(&theme)?;
    poll("the theme button to say dark", || {
        let Some(theme) = session.find(r#"[data-testid="theme"]"#)? else {
            return Ok(None);
        };
        let choice = session.attribute(&theme, "data-theme-choice")?;
        Ok((choice.as_deref() == Some("dark")).then_some(()))
    })?;
    let page = session.execute_async(
        "const done = arguments[arguments.length - 1];\n\
         requestAnimationFrame(() => requestAnimationFrame(() => done(document.documentElement.dataset.theme || '')));",
        &[],
    )?;
    if page.as_str() != Some("dark") {
        bail!("the theme button says dark but the page's data-theme is {page}");
    }
    let path = out_dir.join("demo-worklist-dark-ru.png");
    write(&path, &session.screenshot()?)?;
    Ok(path)
}

fn final_status(session: &Session, row: &Element) -> Result<Option<String>> {
    let status = session.attribute(row, "data-status")?;
    Ok(status.filter(|status| FINAL_STATUSES.contains(&status.as_str())))
}

/// The display forms of the first [`DEMO_CALLS`] demo callers, as the app must show them.
fn demo_callers() -> Result<Vec<String>> {
    let plan = calldesk_calls::NumberPlan::new(REGION)?;
    (0..DEMO_CALLS)
        .map(|n| {
            let raw = calldesk_sim::demo::demo_caller(n);
            let number = plan
                .parse(&raw)
                .with_context(|| format!("demo caller {n} ({raw:?}) is not a valid number"))?;
            Ok(number.display())
        })
        .collect()
}

/// Which demo call (index into `callers`) a pop showing `text` belongs to, if any.
fn demo_call_shown(callers: &[String], text: &str) -> Option<usize> {
    callers.iter().position(|caller| caller == text.trim())
}

/// [`procs::wait_for`] with the standard deadline, retrying on transient WebDriver errors (the
/// element went away between finding and reading it).
fn poll<T>(what: &str, mut check: impl FnMut() -> Result<Option<T>>) -> Result<T> {
    procs::wait_for(what, DEADLINE, || match check() {
        Err(err) if webdriver::is_transient(&err) => Ok(None),
        other => other,
    })
}

/// A PNG of the whole Xvfb screen with ImageMagick: the main window and, while a call rings,
/// the always-on-top pop window (WebDriver's screenshot shows one page only; it also makes
/// WebKit paint first, which an X screenshot does not wait for).
fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    fs::write(path, bytes).with_context(|| format!("cannot write {}", path.display()))
}

fn screen_shot(display: &str, path: &Path) -> Result<()> {
    procs::output(
        Command::new("import")
            .args(["-window", "root"])
            .arg(path)
            .env("DISPLAY", display),
    )
    .map(drop)
    .context("screenshot of the Xvfb screen with ImageMagick `import` failed")
}

/// Starts `Xvfb` on the first free display from :99 up and waits for its socket.
pub fn start_xvfb(out_dir: &Path) -> Result<(String, ChildGuard)> {
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

#[cfg(test)]
mod tests {
    use super::{DEMO_CALLS, demo_call_shown, demo_callers};

    #[test]
    fn demo_callers_are_distinct_display_numbers() {
        let callers = demo_callers().expect("demo callers");
        assert_eq!(callers.len(), DEMO_CALLS as usize);
        // demo_caller(0) is +74951234567; the app shows it grouped.
        assert_eq!(callers[0], "+7 495 123-45-67");
        for (n, caller) in callers.iter().enumerate() {
            assert_eq!(
                callers.iter().position(|c| c == caller),
                Some(n),
                "{caller}"
            );
        }
    }

    #[test]
    fn the_pop_is_matched_to_its_demo_call() {
        let callers = demo_callers().expect("demo callers");
        assert_eq!(demo_call_shown(&callers, &callers[0]), Some(0));
        assert_eq!(
            demo_call_shown(&callers, &format!(" {}\n", callers[5])),
            Some(5)
        );
        assert_eq!(demo_call_shown(&callers, "+7 999 000-00-00"), None);
        assert_eq!(demo_call_shown(&callers, ""), None);
    }
}
