//! The second part of the end-to-end test: the real app against a real hub on PostgreSQL, the
//! hub holding the AMI simulator (run in this process, so the test reads the PBX's truth).
//!
//! Set-up, all through the product's own commands: a fresh database, `calldesk admin` (a tenant
//! on the simulator, operators ivan 101 / petr 102 / sam 201 supervisor, a contact with a
//! company), `calldesk hub`. The app runs in its own D-Bus session with an unlocked GNOME
//! Keyring, since the wizard keeps the hub password in the Secret Service.
//!
//! Checked, each at the fake PBX where the app acts on it:
//! - the wizard creates a Hub profile and the app connects;
//! - a call to 101 pops with the caller card (number, contact, company);
//! - keyboard only (Tab to the button, Enter; every stop shows a focus ring): Hold puts the
//!   call on hold at the PBX, and back; the keypad's tones; Hang up; the disposition;
//! - Hold puts the call on hold at the PBX, and back;
//! - the keypad plays touch tones into the answered call (`PlayDTMF` on the customer's channel);
//! - the hub is stopped and started again while the call goes on: the app reconnects by
//!   itself and still shows the call;
//! - a blind transfer to 102 moves the customer to 102's phone;
//! - Hang up ends a second call at the PBX;
//! - a supervisor profile (sam) sees 102's call live on the board, and Listen makes 201 spy on
//!   it (ChanSpy with the listen options).
//!
//! Screenshots: `hub-pop.png`, `hub-held.png`, `hub-after-restart.png`, `hub-board.png` (and
//! `hub-failure.png`) in `<target>/e2e/`; logs `hub.log`, `tauri-driver-hub.log`.

use std::fs;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use calldesk_sim::ami::{AmiSimConfig, AmiSimHandle, AmiSimulator, ScenarioCall, ScenarioKind};

use super::{Driver, E2eConfig, REGION, finish, poll, screen_shot, wait_connected, write};
use crate::app;
use crate::procs::{self, ChildGuard};
use crate::webdriver::{ARROW_DOWN, ENTER, Element, Session, TAB};

const AMI_SECRET: &str = "e2e-ami-secret";
/// More Tab presses than the page has focusable elements.
const TAB_LIMIT: usize = 150;
const PASSWORD: &str = "e2e-password-1";
/// The seeded contact and the number they call from.
const CONTACT: &str = "Ostap Bender";
const COMPANY: &str = "Horns and Hooves";
const CALLER: &str = "+74957001122";
const SECOND_CALLER: &str = "+74957003344";

pub fn run(
    config: &E2eConfig,
    app_bin: &Path,
    server_url: &str,
    out_dir: &Path,
    display: &str,
) -> Result<()> {
    let calldesk = app::build_bin(&config.root, "calldesk", false)?;
    let database = FreshDatabase::create(server_url)?;
    let sim = Sim::start()?;
    // Every AMI event the PBX sends, as received, for the report when something fails.
    record_ami_events(sim.port, &out_dir.join("hub-ami-events.log"))?;
    // MixMonitor's folder as the hub sees it: the test puts the recording there itself.
    let recordings = out_dir.join("recordings");
    fs::create_dir_all(&recordings)?;
    let recordings = fs::canonicalize(&recordings)?;
    seed(&calldesk, database.url(), sim.port, &recordings, out_dir)?;
    let hub_port = procs::free_port()?;
    let hub_log = out_dir.join("hub.log");
    let mut hub = Some(start_hub(&calldesk, database.url(), hub_port, &hub_log)?);

    let data_dir = procs::TempDir::new("calldesk-e2e-hub")?;
    let driver_log = out_dir.join("tauri-driver-hub.log");
    let result = (|| {
        let mut driver = Driver::start(config, display, data_dir.path(), &driver_log, true)?;
        let session = driver.session(app_bin)?;
        let flow = Flow {
            session: &session,
            sim: &sim,
            hub_url: format!("http://127.0.0.1:{hub_port}"),
            out_dir,
            display,
            recordings: &recordings,
            cache: data_dir
                .path()
                .join("cache/org.calldesk.desktop/recordings"),
        };
        // Stops the hub (SIGTERM: a graceful shutdown), or starts it again on the same port.
        let result = flow.check(&mut |up| {
            hub = None;
            if up {
                hub = Some(start_hub(&calldesk, database.url(), hub_port, &hub_log)?);
            }
            Ok(())
        });
        finish(session, result, out_dir, "hub-failure.png")
    })();
    if result.is_err() {
        for (what, path) in [
            ("the hub", &hub_log),
            ("tauri-driver and the app", &driver_log),
        ] {
            eprintln!("---- last 40 lines of {} ({what}) ----", path.display());
            eprintln!("{}", procs::tail(path, 40));
        }
    }
    drop(hub);
    result
}

struct Flow<'a> {
    session: &'a Session,
    sim: &'a Sim,
    hub_url: String,
    out_dir: &'a Path,
    display: &'a str,
    /// The tenant's MixMonitor folder (the hub picks recordings up there).
    recordings: &'a Path,
    /// The app's recordings cache.
    cache: std::path::PathBuf,
}

impl Flow<'_> {
    /// `hub(false)` stops the hub, `hub(true)` starts it again.
    fn check(&self, hub: &mut dyn FnMut(bool) -> Result<()>) -> Result<()> {
        let s = self.session;
        let started = Instant::now();
        self.hub_profile("ivan", true)?;
        wait_connected(s)?;
        println!(
            "hub e2e: ivan connected through the hub after {:.2} s",
            started.elapsed().as_secs_f64()
        );

        // A call to 101 pops with the caller card.
        let call = self.sim.start_call(CALLER, "101")?;
        let number = calldesk_calls::NumberPlan::new(REGION)?
            .parse(CALLER)?
            .display();
        self.wait_pop(&[
            ("call-pop-number", number.as_str()),
            ("call-pop-name", CONTACT),
            ("call-pop-company", COMPANY),
        ])?;
        self.shot("hub-pop.png")?;
        screen_shot(self.display, &self.out_dir.join("hub-pop-screen.png"))?;
        println!("hub e2e: the pop shows {number}, {CONTACT}, {COMPANY}");

        // Hold and resume, at the PBX — from the keyboard only: Tab to the button, Enter.
        self.wait_active(&call)?;
        self.wait_enabled("ctl-hold")?;
        self.tab_to("ctl-hold")?;
        s.keys(&ENTER.to_string())?;
        self.sim
            .wait_call(&call, "on hold at the PBX", |c| c.state == "held")?;
        poll("the active call to show it is on hold", || {
            Ok(self
                .find_attr("active-call", "data-on-hold")?
                .filter(|v| v == "true"))
        })
        .with_context(|| {
            let calls = self.session.execute_async(
                "const done = arguments[arguments.length - 1];\n\
                 window.__TAURI_INTERNALS__.invoke('calls_snapshot').then((c) => done(JSON.stringify(c.filter((x) => x.state !== 'ended'))), (e) => done(String(e)));",
                &[],
            );
            format!(
                "the app's live calls: {calls:?}; the hub has {:?}",
                self.hub_call(&call)
            )
        })?;
        self.shot("hub-held.png")?;
        // The focus stayed on the button: Enter again resumes.
        s.keys(&ENTER.to_string())?;
        self.sim
            .wait_call(&call, "talking again at the PBX", |c| c.state == "talking")?;
        println!("hub e2e: hold and resume reached the PBX");

        // Touch tones from the keypad go out on the customer's channel, in the order pressed.
        poll("the keypad to play tones into the answered call", || {
            self.session.find(r#".dialpad[data-mode="tones"]"#)
        })?;
        // By keyboard too: each key is a button in the Tab order.
        for key in ["1", "#"] {
            self.tab_to(&format!("dialpad-{key}"))?;
            s.keys(&ENTER.to_string())?;
        }
        self.sim
            .wait_call(&call, "to have sent the tones 1#", |c| {
                c.dtmf.len() == 1
                    && c.dtmf[0].starts_with("SIP/trunk-")
                    && c.dtmf[0].ends_with(":1#")
            })?;
        poll("the app to show the tones it sent", || {
            let Some(el) = self.session.find(r#"[data-testid="tones-sent"]"#)? else {
                return Ok(None);
            };
            Ok(self.session.text(&el)?.contains("1#").then_some(()))
        })?;
        println!("hub e2e: keypad tones 1# reached the PBX on the customer's channel");

        // The hub goes away and comes back while the call goes on.
        hub(false)?;
        poll(
            "the status bar to leave `connected` while the hub is down",
            || {
                let state = self.find_attr("connection-status", "data-state")?;
                Ok(state.filter(|s| s != "connected"))
            },
        )?;
        hub(true)?;
        wait_connected(s)?;
        self.wait_active(&call)?;
        self.shot("hub-after-restart.png")?;
        println!("hub e2e: the app reconnected to the restarted hub and still shows the call");

        // Blind transfer to 102.
        let to = s
            .find(r#"[data-testid="ctl-transfer-to"]"#)?
            .context("no transfer field ([data-testid=\"ctl-transfer-to\"])")?;
        s.send_keys(&to, "102")?;
        self.click_enabled("ctl-transfer")?;
        self.sim
            .wait_call(&call, "with 102 (and not 101) at the PBX", |c| {
                c.operators == ["102"]
            })?;
        println!("hub e2e: the blind transfer moved the customer to 102");

        // Hang up a second call.
        let second = self.sim.start_call(SECOND_CALLER, "101")?;
        self.wait_active(&second)?;
        self.wait_enabled("ctl-hangup")?;
        self.tab_to("ctl-hangup")?;
        s.keys(&ENTER.to_string())?;
        self.sim.wait_gone(&second)?;
        println!("hub e2e: Hang up (Tab, Enter) ended the second call at the PBX");

        // Its disposition, from the keyboard: Tab to the list, Arrow Down picks the first code,
        // which is stored on the hub at once.
        poll("the after-call panel of the second call", || {
            Ok(self
                .find_attr("after-call", "data-call-id")?
                .filter(|id| *id == second))
        })?;
        self.tab_to("after-disposition")?;
        s.keys(&ARROW_DOWN.to_string())?;
        poll(
            "the hub to store the disposition of the second call",
            || {
                let call = self.hub_call(&second)?;
                Ok(call["disposition"]["code"].as_str().map(str::to_owned))
            },
        )?;
        println!("hub e2e: the disposition chosen by keyboard is stored on the hub");
        self.recording(&second)?;
        self.history(&second)?;

        // The supervisor sees 102's call and listens to it.
        let menu = s
            .find(r#"[data-testid="profile"]"#)?
            .context("no profile button in the status bar")?;
        s.click(&menu)?;
        let add = poll("the profile menu's add item", || {
            s.find(r#"[data-testid="profile-add"]"#)
        })?;
        s.click(&add)?;
        self.hub_profile("sam", false)?;
        poll("the supervisor board to show 102's call", || {
            for row in s.find_all(r#"[data-testid="board-row"][data-extension="102"]"#)? {
                if s.text(&row)?.contains(&number) {
                    return Ok(Some(()));
                }
            }
            Ok(None)
        })?;
        self.click_enabled("monitor-listen-102")?;
        self.sim
            .wait_call(&call, "spied on by 201 with the listen options", |c| {
                c.spies == ["201:bqESu"]
            })?;
        poll("the listen button to show the monitoring", || {
            Ok(self
                .find_attr("monitor-listen-102", "aria-pressed")?
                .filter(|v| v == "true"))
        })?;
        self.shot("hub-board.png")?;
        println!("hub e2e: the supervisor sees 102's call and Listen started ChanSpy from 201");
        self.sim.hangup(&call)?;
        Ok(())
    }

    /// The call's recording (the simulator's MixMonitor file) shows as pending while the file
    /// is missing, is stored once it is there, and ▶ fetches it into the app's cache; with no
    /// sound device the player says so.
    fn recording(&self, call: &str) -> Result<()> {
        let row = format!(r#"[data-testid="call-row"][data-call-id="{call}"]"#);
        let name = poll("the hub to list the call's recording", || {
            let call = self.hub_call(call)?;
            Ok(call["recording_states"][0]["name"]
                .as_str()
                .map(str::to_owned))
        })?;
        poll("the calls list to say the recording is pending", || {
            let Some(el) = self
                .session
                .find(&format!(r#"{row} [data-testid="call-recording"]"#))?
            else {
                return Ok(None);
            };
            Ok(self
                .session
                .text(&el)?
                .starts_with("Recording pending")
                .then_some(()))
        })?;
        let file = name.rsplit('/').next().unwrap_or(&name).to_owned();
        let wav = tone_wav();
        write(&self.recordings.join(&file), &wav)?;
        let play = poll("the play button once the hub stored the recording", || {
            self.session
                .find(&format!(r#"{row} [data-testid="call-play"]"#))
        })?;
        self.session.click(&play)?;
        let code = poll("the player to report the missing sound device", || {
            self.find_attr("player-error", "data-code")
        })?;
        if code != "no_audio_device" {
            bail!("the player failed with {code}, not no_audio_device");
        }
        self.shot("hub-recording.png")?;
        poll(
            "the recording to be in the app's cache, byte for byte",
            || {
                for entry in fs::read_dir(&self.cache).into_iter().flatten().flatten() {
                    if fs::read(entry.path()).is_ok_and(|bytes| bytes == wav) {
                        return Ok(Some(()));
                    }
                }
                Ok(None)
            },
        )?;
        println!(
            "hub e2e: the recording went pending → stored; ▶ downloaded it into the app's cache, \
             and the player says there is no sound device"
        );
        Ok(())
    }

    /// The history tab finds the call by a part of the caller's number typed in the search;
    /// its details take a note, which the sync brings to the hub.
    fn history(&self, call: &str) -> Result<()> {
        let s = &self.session;
        let tab = s
            .find(r#"[data-testid="tab-history"]"#)?
            .context("no history tab ([data-testid=\"tab-history\"])")?;
        s.click(&tab)?;
        let search = poll("the history's search field", || {
            s.find(r#"[data-testid="history-search"]"#)
        })?;
        // Seven digits of +7 495 700-33-44, typed as people write them.
        s.send_keys(&search, "700-33-4")?;
        let row = format!(r#"[data-testid="history-row"][data-call-id="{call}"]"#);
        let found = poll("the history to find the call by part of its number", || {
            let rows = s.find_all(r#"[data-testid="history-row"]"#)?;
            let Some(first) = rows.first() else {
                return Ok(None);
            };
            // Only the caller's calls are left once the search has run.
            Ok(
                (rows.len() == 1 && s.attribute(first, "data-call-id")?.as_deref() == Some(call))
                    .then_some(()),
            )
        });
        if found.is_err() {
            self.shot("hub-history-failed.png")?;
        }
        found?;
        let item = s.find(&row)?.context("the history row went away")?;
        s.click(&item)?;
        let detail = format!(r#"[data-testid="history-detail"][data-call-id="{call}"]"#);
        let note = poll("the call's details with the after-call panel", || {
            s.find(&format!(r#"{detail} [data-testid="after-note"]"#))
        })?;
        s.send_keys(&note, "history e2e: called back")?;
        let add = s
            .find(&format!(r#"{detail} [data-testid="after-add-note"]"#))?
            .context("no add-note button in the details")?;
        s.click(&add)?;
        poll("the note written in the history to reach the hub", || {
            let on_hub = self.hub_call(call)?;
            Ok(on_hub["notes"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|n| n["text"] == "history e2e: called back")
                .then_some(()))
        })?;
        // The badge settles on "synced" (read a few times in a row: its events may still be on
        // their way to the page).
        let mut settled = 0;
        poll("the sync badge to say everything is synced", || {
            let state = self.find_attr("sync-status", "data-state")?;
            let pending = self.find_attr("sync-status", "data-pending")?;
            if state.as_deref() == Some("idle") && pending.as_deref() == Some("0") {
                settled += 1;
            } else {
                settled = 0;
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
            Ok((settled >= 3).then_some(()))
        })?;
        self.shot("hub-history.png")?;
        let calls = s
            .find(r#"[data-testid="tab-calls"]"#)?
            .context("no calls tab")?;
        s.click(&calls)?;
        println!(
            "hub e2e: the history found the call by 7 digits typed with dashes; a note written \
             in its details reached the hub through the sync"
        );
        Ok(())
    }

    /// Waits until the button `testid` is there and enabled; returns it.
    fn wait_enabled(&self, testid: &str) -> Result<Element> {
        poll(&format!("[data-testid=\"{testid}\"] to be enabled"), || {
            let Some(b) = self.session.find(&format!(r#"[data-testid="{testid}"]"#))? else {
                return Ok(None);
            };
            Ok(self
                .session
                .attribute(&b, "disabled")?
                .is_none()
                .then_some(b))
        })
    }

    /// Moves the focus to `testid` with the Tab key alone (after a blur, from where the focus
    /// last was, as a browser does), and checks that every element the focus passes shows
    /// where it is: its outline, shadow or border differ from its unfocused look.
    fn tab_to(&self, testid: &str) -> Result<()> {
        let s = self.session;
        s.execute_async(
            "document.activeElement?.blur(); arguments[arguments.length - 1](null);",
            &[],
        )?;
        let mut path = Vec::new();
        for _ in 0..TAB_LIMIT {
            s.keys(&TAB.to_string())?;
            let focused = s.execute_async(
                "const done = arguments[arguments.length - 1];\n\
                 const el = document.activeElement;\n\
                 if (!el || el === document.body) { done(null); return; }\n\
                 const look = () => { const cs = getComputedStyle(el); return [cs.outlineStyle === 'none' ? 'none' : cs.outlineStyle + cs.outlineWidth + cs.outlineColor, cs.boxShadow, cs.borderColor].join('|'); };\n\
                 const focused = look();\n\
                 el.blur();\n\
                 const unfocused = look();\n\
                 el.focus();\n\
                 done({ id: el.dataset.testid || el.id || el.tagName, ring: focused !== unfocused && document.activeElement === el });",
                &[],
            )?;
            let Some(id) = focused["id"].as_str() else {
                continue;
            };
            if focused["ring"] != serde_json::Value::Bool(true) {
                bail!(
                    "keyboard focus on {id} does not show (its outline, shadow and border look the same unfocused); Tab path: {path:?}"
                );
            }
            if id == testid {
                println!(
                    "hub e2e: Tab reached {testid} after {} stops, each with a focus ring",
                    path.len() + 1
                );
                return Ok(());
            }
            path.push(id.to_owned());
        }
        bail!("Tab never reached {testid} in {TAB_LIMIT} presses; path: {path:?}")
    }

    /// The call as the hub's REST API gives it to ivan (for failure reports).
    fn hub_call(&self, id: &str) -> Result<serde_json::Value> {
        let login: serde_json::Value = ureq::post(&format!("{}/api/auth/login", self.hub_url))
            .send_json(
                serde_json::json!({"tenant": "acme", "login": "ivan", "password": PASSWORD}),
            )?
            .body_mut()
            .read_json()?;
        let token = login["token"].as_str().unwrap_or_default();
        Ok(ureq::get(&format!("{}/api/calls/{id}", self.hub_url))
            .header("Authorization", &format!("Bearer {token}"))
            .call()?
            .body_mut()
            .read_json()?)
    }

    /// Fills the wizard with a Hub profile for `login` and saves it (it connects at once).
    fn hub_profile(&self, login: &str, first_run: bool) -> Result<()> {
        let s = self.session;
        let kind = poll("the wizard's Hub choice", || {
            s.find(r#"[data-testid="wizard-kind-hub"]"#)
        })?;
        if first_run {
            self.shot("hub-wizard.png").ok();
        }
        s.click(&kind)?;
        for (field, value) in [
            ("wizard-url", self.hub_url.as_str()),
            ("wizard-tenant", "acme"),
            ("wizard-login", login),
            ("wizard-secret", PASSWORD),
        ] {
            let input = poll(&format!("the wizard field {field}"), || {
                s.find(&format!(r#"[data-testid="{field}"]"#))
            })?;
            s.clear(&input)?;
            s.send_keys(&input, value)?;
        }
        self.click_enabled("wizard-save")?;
        poll("the wizard to close", || {
            Ok(s.find(r#"[data-testid="wizard"]"#)?.is_none().then_some(()))
        })?;
        Ok(())
    }

    /// Waits until the controls act on `call`, answered (hold is offered only then).
    fn wait_active(&self, call: &str) -> Result<()> {
        let waited = poll(
            &format!("the controls to act on call {call}, answered"),
            || {
                let id = self.find_attr("active-call", "data-call-id")?;
                let talking =
                    self.find_attr("active-call", "data-state")?.as_deref() == Some("talking");
                let hold_enabled = match self.session.find(r#"[data-testid="ctl-hold"]"#)? {
                    Some(b) => self.session.attribute(&b, "disabled")?.is_none(),
                    None => false,
                };
                Ok((id.as_deref() == Some(call) && talking && hold_enabled).then_some(()))
            },
        );
        waited.with_context(|| {
            let hold = self.find_attr("ctl-hold", "title").ok().flatten();
            let caps = self.session.execute_async(
                "const done = arguments[arguments.length - 1];\n\
                 window.__TAURI_INTERNALS__.invoke('capabilities').then(done, (e) => done(String(e)));",
                &[],
            );
            format!("Hold says {hold:?}; the app's capabilities: {caps:?}")
        })
    }

    /// Waits until the pop shows every `(testid, text)` at once (it goes when the call is
    /// answered).
    fn wait_pop(&self, want: &[(&str, &str)]) -> Result<()> {
        let mut seen = Vec::new();
        let found = poll(&format!("the call pop to show {want:?}"), || {
            seen.clear();
            for (testid, text) in want {
                let Some(el) = self.session.find(&format!(r#"[data-testid="{testid}"]"#))? else {
                    return Ok(None);
                };
                let shown = self.session.text(&el)?;
                let ok = shown.contains(text);
                seen.push(shown);
                if !ok {
                    return Ok(None);
                }
            }
            Ok(Some(()))
        });
        found.with_context(|| format!("it showed {seen:?}"))
    }

    fn find_attr(&self, testid: &str, attr: &str) -> Result<Option<String>> {
        match self.session.find(&format!(r#"[data-testid="{testid}"]"#))? {
            Some(el) => self.session.attribute(&el, attr),
            None => Ok(None),
        }
    }

    /// Waits until the button is there and enabled, then clicks it.
    fn click_enabled(&self, testid: &str) -> Result<()> {
        let button = self.wait_enabled(testid)?;
        self.session.click(&button)
    }

    fn shot(&self, name: &str) -> Result<()> {
        write(&self.out_dir.join(name), &self.session.screenshot()?)
    }
}

/// One second of a 440 Hz tone: 8 kHz mono 16-bit PCM WAV.
fn tone_wav() -> Vec<u8> {
    let samples: Vec<u8> = (0..8000)
        .map(|i| (8000.0 * (std::f64::consts::TAU * 440.0 * f64::from(i) / 8000.0).sin()) as i16)
        .flat_map(i16::to_le_bytes)
        .collect();
    let len = u32::try_from(samples.len()).unwrap_or(u32::MAX);
    let mut wav = Vec::with_capacity(44 + samples.len());
    wav.extend_from_slice(b"RIFF");
    wav.extend_from_slice(&(36 + len).to_le_bytes());
    wav.extend_from_slice(b"WAVEfmt ");
    // PCM, mono, 8000 Hz, 16000 bytes/s, 2-byte frames, 16 bits
    for field in [
        16u32.to_le_bytes().as_slice(),
        &1u16.to_le_bytes(),
        &1u16.to_le_bytes(),
    ] {
        wav.extend_from_slice(field);
    }
    wav.extend_from_slice(&8000u32.to_le_bytes());
    wav.extend_from_slice(&16000u32.to_le_bytes());
    wav.extend_from_slice(&2u16.to_le_bytes());
    wav.extend_from_slice(&16u16.to_le_bytes());
    wav.extend_from_slice(b"data");
    wav.extend_from_slice(&len.to_le_bytes());
    wav.extend_from_slice(&samples);
    wav
}

/// The AMI simulator on loopback, run by a tokio runtime of its own; `live` reads the PBX's
/// truth.
struct Sim {
    rt: tokio::runtime::Runtime,
    handle: AmiSimHandle,
    port: u16,
    stop: tokio::sync::watch::Sender<bool>,
}

impl Sim {
    fn start() -> Result<Self> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()?;
        let config = AmiSimConfig {
            secret: AMI_SECRET.to_owned(),
            ..AmiSimConfig::default()
        };
        let addr: SocketAddr = ([127, 0, 0, 1], 0).into();
        let sim = rt
            .block_on(AmiSimulator::bind(addr, config))
            .context("cannot start the AMI simulator")?;
        let (port, handle) = (sim.local_addr().port(), sim.handle());
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        rt.spawn(sim.run(async move {
            let _ = stopped.wait_for(|s| *s).await;
        }));
        Ok(Self {
            rt,
            handle,
            port,
            stop,
        })
    }

    /// An inbound call from `caller` ringing `extension` for 4 s (the pop is read meanwhile),
    /// then answered and up until hung up; its Linkedid.
    fn start_call(&self, caller: &str, extension: &str) -> Result<String> {
        let call = ScenarioCall {
            kind: ScenarioKind::InboundAnswered,
            caller: caller.to_owned(),
            did: "74950000367".to_owned(),
            extension: extension.to_owned(),
            ring: Duration::from_secs(4),
            talk: Duration::from_secs(3600),
        };
        Ok(self.rt.block_on(self.handle.start_call(call))?)
    }

    fn live(&self) -> Result<Vec<calldesk_sim::pbx::SimCall>> {
        Ok(self.rt.block_on(self.handle.live_calls())?)
    }

    fn wait_call(
        &self,
        id: &str,
        what: &str,
        check: impl Fn(&calldesk_sim::pbx::SimCall) -> bool,
    ) -> Result<()> {
        let mut last = None;
        let waited = procs::wait_for(&format!("call {id} {what}"), super::DEADLINE, || {
            let live = self.live()?;
            let call = live.into_iter().find(|c| c.linkedid == id);
            let ok = call.as_ref().is_some_and(&check);
            last = call;
            Ok(ok.then_some(()))
        });
        waited.with_context(|| format!("the PBX has {last:?}"))
    }

    fn wait_gone(&self, id: &str) -> Result<()> {
        procs::wait_for(
            &format!("call {id} to end at the PBX"),
            super::DEADLINE,
            || Ok((!self.live()?.iter().any(|c| c.linkedid == id)).then_some(())),
        )
    }

    fn hangup(&self, id: &str) -> Result<()> {
        Ok(self.rt.block_on(self.handle.hangup_call(id))?)
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// Logs in to the simulator as one more AMI client and copies everything it sends to `path`
/// (a background thread; it ends with the simulator).
fn record_ami_events(port: u16, path: &Path) -> Result<()> {
    use std::io::Read as _;
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port))?;
    stream.write_all(
        format!("Action: Login\r\nUsername: calldesk\r\nSecret: {AMI_SECRET}\r\n\r\n").as_bytes(),
    )?;
    let mut file = fs::File::create(path)?;
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        while let Ok(n) = stream.read(&mut buf) {
            if n == 0 || file.write_all(&buf[..n]).is_err() {
                break;
            }
        }
    });
    Ok(())
}

/// A database of its own on the test server, dropped afterwards.
struct FreshDatabase {
    server: String,
    name: String,
    url: String,
}

impl FreshDatabase {
    fn create(server: &str) -> Result<Self> {
        let name = format!("calldesk_e2e_{}", std::process::id());
        let (base, _) = server
            .rsplit_once('/')
            .with_context(|| format!("cannot read the database URL {server:?}"))?;
        psql(server, &format!("DROP DATABASE IF EXISTS {name}"))?;
        psql(server, &format!("CREATE DATABASE {name}"))?;
        Ok(Self {
            server: server.to_owned(),
            url: format!("{base}/{name}"),
            name,
        })
    }

    fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for FreshDatabase {
    fn drop(&mut self) {
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        if let Err(err) = psql(&self.server, &sql) {
            eprintln!("xtask: warning: {err:#}");
        }
    }
}

fn psql(url: &str, sql: &str) -> Result<()> {
    let psql = procs::find_program("psql").context("psql is not installed (postgresql-client)")?;
    procs::output(Command::new(psql).args(["-X", "-q", "-v", "ON_ERROR_STOP=1", url, "-c", sql]))
        .map(drop)
        .with_context(|| format!("psql `{sql}` failed"))
}

/// The tenant on the simulator, three operators and a contact, through `calldesk admin`.
fn seed(calldesk: &Path, db: &str, ami_port: u16, recordings: &Path, out_dir: &Path) -> Result<()> {
    let admin = |args: &[&str], stdin: Option<&str>| -> Result<()> {
        let mut cmd = Command::new(calldesk);
        cmd.arg("admin")
            .args(args)
            .env("DATABASE_URL", db)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let line = procs::display(&cmd);
        let mut child = cmd.spawn().with_context(|| format!("cannot run {line}"))?;
        if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
            pipe.write_all(input.as_bytes())?;
        }
        let out = child.wait_with_output()?;
        if !out.status.success() {
            bail!(
                "`{line}` failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    };
    let port = ami_port.to_string();
    admin(
        &[
            "tenant",
            "add",
            "--name",
            "Acme",
            "--id",
            "acme",
            "--number",
            "0367",
            "--ami-host",
            "127.0.0.1",
            "--ami-port",
            &port,
            "--ami-user",
            "calldesk",
            "--ami-secret-env",
            "E2E_AMI_SECRET",
            "--ami-tech",
            "sip",
            "--ami-intl-prefix",
            "00",
            "--ami-hold-context",
            "calldesk-hold",
            "--ami-recordings-dir",
            &recordings.to_string_lossy(),
        ],
        None,
    )?;
    for (login, ext, role) in [
        ("ivan", "101", "operator"),
        ("petr", "102", "operator"),
        ("sam", "201", "supervisor"),
    ] {
        admin(
            &[
                "operator",
                "add",
                "--tenant",
                "acme",
                "--login",
                login,
                "--extension",
                ext,
                "--role",
                role,
                "--name",
                login,
            ],
            Some(&format!("{PASSWORD}\n")),
        )?;
    }
    let csv = out_dir.join("hub-contacts.csv");
    fs::write(
        &csv,
        format!("name,company,phone\n{CONTACT},{COMPANY},{CALLER}\n"),
    )?;
    let csv_arg = csv.to_string_lossy().into_owned();
    admin(&["contacts", "import", "--tenant", "acme", &csv_arg], None)
}

fn start_hub(calldesk: &Path, db: &str, port: u16, log_path: &Path) -> Result<ChildGuard> {
    let log = fs::File::options()
        .create(true)
        .append(true)
        .open(log_path)
        .with_context(|| format!("cannot open {}", log_path.display()))?;
    let mut hub = ChildGuard::spawn(
        "calldesk hub",
        Command::new(calldesk)
            .arg("hub")
            .env("DATABASE_URL", db)
            .env("CALLDESK_BIND", format!("127.0.0.1:{port}"))
            .env(
                "CALLDESK_JWT_SECRET",
                "e2e-jwt-secret-0123456789abcdef0123456789",
            )
            .env("E2E_AMI_SECRET", AMI_SECRET)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdout(log.try_clone()?)
            .stderr(log),
    )?;
    procs::wait_for(
        "the hub to accept connections",
        Duration::from_secs(30),
        || {
            hub.check_running()?;
            Ok(procs::port_accepts(port).then_some(()))
        },
    )?;
    Ok(hub)
}
