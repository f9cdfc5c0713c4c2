//! calldesk desktop app: the Tauri shell. It only wires things together — the engine
//! (`calldesk-engine`) does the work; this crate owns the window, keeps the running engine of
//! the active profile, maps engine events to Tauri events and exposes thin commands.
//!
//! Commands (snake_case `noun_verb`) and events (kebab-case) — one table, mirrored in
//! `ui/src/lib/backend-tauri.ts`:
//!
//! | kind    | name                 | payload                                        |
//! |---------|----------------------|------------------------------------------------|
//! | command | `calls_snapshot`     | → `CallView[]` (live, then recent)             |
//! | command | `connection_status`  | → `ConnectionStatus`                           |
//! | command | `identity`           | → `Identity` (who the app acts as)             |
//! | command | `capabilities`       | → `CapabilitiesView`                           |
//! | command | `presence`           | → `PresenceView[]`                             |
//! | command | `caller_history`     | `number` → `CallView[]`                        |
//! | command | `call_control`       | `spec: ControlSpec` → call id or null          |
//! | command | `after_call`         | `call` → `AfterCall` (notes, disposition, tags) |
//! | command | `add_note`           | `call, text` → `CallNote`                      |
//! | command | `set_disposition`    | `call, code`                                   |
//! | command | `disposition_codes`  | → `string[]` (the hub's list, `dispositions.json` or defaults) |
//! | command | `set_tags`           | `call, tags` → `string[]` (as stored)          |
//! | command | `history_search`     | `query: HistoryQuery` → `HistoryPage` (local)  |
//! | command | `sync_status`        | → `SyncStatusView` (pending, progress, offline) |
//! | command | `sync_now`           | runs a sync round now                          |
//! | command | `sync_refused`       | → `RefusedChange[]` (what the hub refused, why) |
//! | command | `callbacks`          | → `CallbackView[]` (missed-calls worklist)     |
//! | command | `claim_callback`     | `number, claim` → `CallbackView?`              |
//! | command | `close_callback`     | `number, outcome`                              |
//! | command | `figures_since`      | `since` (unix ms) → `OperatorFigures[]`        |
//! | command | `operators`          | → `OperatorView[]` (hub; else empty)           |
//! | command | `pop_painted`        | `ms`: a pop was painted `ms` after its event   |
//! | command | `pop_latency`        | → `PopLatency` (count, p50, p90, p99, max)     |
//! | command | `profiles_list`      | → `ProfileList`                                |
//! | command | `profile_save`       | `profile, secret?, hubSecret?` (a Direct profile's hub) |
//! | command | `profile_activate`   | `id` (restarts the engine on that profile)     |
//! | command | `profile_delete`     | `id`                                           |
//! | event   | `call-updated`       | `CallView`                                     |
//! | event   | `connection-changed` | `ConnectionStatus`                             |
//! | event   | `presence-changed`   | `PresenceView`                                 |
//! | command | `pending_dial`       | → number a `tel:` link asked for, or null      |
//! | command | `show_main`          | brings the main window up                      |
//! | command | `ui_ready`           | the UI is up (logged once: the cold start)     |
//! | event   | `identity-changed`   | `Identity` (also after a profile switch)       |
//! | event   | `sync-changed`       | `SyncStatusView`                               |
//! | event   | `history-changed`    | a pull brought calls or notes into the history |
//! | event   | `dial-request`       | number from a `tel:`/`callto:` link            |
//! | event   | `hotkey`             | `hangup` / `hold` / `transfer` / `disposition` |
//!
//! Errors reach the UI as `{ code, message }` ([`CommandError`]); the UI branches on `code`
//! (`no_profile` until the first-run wizard has made one).
//!
//! Environment (all optional): `CALLDESK_DATA_DIR` (profiles and the SQLite history; default
//! the app data dir), `CALLDESK_DEMO_EVERY_MS` (demo call interval, default 6000),
//! `CALLDESK_REGION` (default region for numbers, default RU), `RUST_LOG`. Secrets live in the
//! OS keyring.
//!
//! Desktop conventions (pop window, notifications, tray, hotkeys, links) live in `desk.rs`.
//!
//! Tested end to end by `cargo xtask e2e`: the real binary under Xvfb, driven by WebDriver.

// Release builds on Windows have no console window.
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

mod desk;
mod playback;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use calldesk_engine::{
    Engine, EngineConfig, EngineError, EngineEvent, EngineHandle, KeyringStore, OperatorFigures,
    OperatorView, PopLatency, Profile, ProfileConfig, ProfileError, ProfileList, Profiles, Secret,
};
use calldesk_wire::{
    AfterCall, CallNote, CallView, CallbackView, CapabilitiesView, ConnectionStatus, ControlSpec,
    Identity, PresenceView,
};
use tauri::{Emitter, Manager, State};
use tokio::sync::RwLock;
use tokio::sync::broadcast::error::RecvError;

const DEFAULT_DEMO_EVERY_MS: u64 = 6000;

/// An error as the UI receives it.
#[derive(Debug, Clone, serde::Serialize)]
struct CommandError {
    code: &'static str,
    message: String,
}

impl From<EngineError> for CommandError {
    fn from(e: EngineError) -> Self {
        Self {
            code: e.code(),
            message: e.to_string(),
        }
    }
}

impl From<ProfileError> for CommandError {
    fn from(e: ProfileError) -> Self {
        Self {
            code: e.code(),
            message: e.to_string(),
        }
    }
}

impl From<calldesk_calls::ControlError> for CommandError {
    fn from(e: calldesk_calls::ControlError) -> Self {
        Self {
            code: e.code(),
            message: e.to_string(),
        }
    }
}

fn no_profile() -> CommandError {
    CommandError {
        code: "no_profile",
        message: "no connection profile yet: create one in the first-run wizard".to_owned(),
    }
}

/// The app's state: the profiles and the engine of the active one (none before the wizard).
struct Shell {
    profiles: Profiles,
    base: EngineConfig,
    engine: RwLock<Option<EngineHandle>>,
    /// Bumped on every engine switch; the old engine's event forwarder stops.
    generation: tokio::sync::watch::Sender<u64>,
}

impl Shell {
    async fn engine(&self) -> Result<EngineHandle, CommandError> {
        self.engine.read().await.clone().ok_or_else(no_profile)
    }

    /// Stops the running engine (its last writes finish) and starts `id`'s.
    async fn switch_to(&self, app: &tauri::AppHandle, id: &str) -> Result<(), CommandError> {
        let config = self.profiles.engine_config(id, self.base.clone())?;
        let mut slot = self.engine.write().await;
        if let Some(old) = slot.take() {
            old.shutdown().await;
        }
        self.generation.send_modify(|g| *g += 1);
        tracing::info!(profile = id, "starting the calldesk engine");
        let engine = Engine::start(config).await?;
        forward_events(app.clone(), &engine, self.generation.subscribe());
        let _ = app.emit("identity-changed", engine.identity());
        let _ = app.emit("connection-changed", engine.connection_status());
        *slot = Some(engine);
        Ok(())
    }
}

#[tauri::command]
async fn calls_snapshot(shell: State<'_, Shell>) -> Result<Vec<CallView>, CommandError> {
    Ok(shell.engine().await?.calls_snapshot().await?)
}

#[tauri::command]
async fn connection_status(shell: State<'_, Shell>) -> Result<ConnectionStatus, CommandError> {
    Ok(shell.engine().await?.connection_status())
}

#[tauri::command]
async fn identity(shell: State<'_, Shell>) -> Result<Identity, CommandError> {
    Ok(shell.engine().await?.identity())
}

#[tauri::command]
async fn capabilities(shell: State<'_, Shell>) -> Result<CapabilitiesView, CommandError> {
    Ok(shell.engine().await?.capabilities().into())
}

#[tauri::command]
async fn presence(shell: State<'_, Shell>) -> Result<Vec<PresenceView>, CommandError> {
    Ok(shell.engine().await?.presence().await?)
}

#[tauri::command]
async fn caller_history(
    shell: State<'_, Shell>,
    number: String,
) -> Result<Vec<CallView>, CommandError> {
    Ok(shell.engine().await?.caller_history(&number).await?)
}

/// Carries out a control; numbers are read in the app's region.
#[tauri::command]
async fn call_control(
    shell: State<'_, Shell>,
    spec: ControlSpec,
) -> Result<Option<String>, CommandError> {
    let region = shell.base.region.clone();
    let spec = match spec {
        ControlSpec::Originate { operator, to, .. } => ControlSpec::Originate {
            region,
            operator,
            to,
        },
        ControlSpec::Transfer {
            call,
            operator,
            to,
            kind,
            ..
        } => ControlSpec::Transfer {
            region,
            call,
            operator,
            to,
            kind,
        },
        other => other,
    };
    let control = spec.to_control()?;
    let outcome = shell.engine().await?.execute(control).await?;
    Ok(match outcome {
        calldesk_calls::ControlOutcome::Originated { call } => call.map(|c| c.to_string()),
        calldesk_calls::ControlOutcome::Done => None,
    })
}

/// The number a `tel:`/`callto:` link asked to dial before the UI listened (once).
#[tauri::command]
fn pending_dial(app: tauri::AppHandle) -> Option<String> {
    desk::take_pending_dial(&app)
}

/// Start-up stages of the page (ms since its navigation started), as the UI measured them.
#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct StartMarks {
    navigation_start_unix_ms: u64,
    response_end_ms: Option<u64>,
    script_start_ms: u64,
    mounted_ms: u64,
    profiles_ms: u64,
    painted_ms: u64,
}

/// Wall clock in unix ms.
fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// When `main` began (unix ms): the cold start's stages are logged relative to it.
static STARTED_AT_MS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();

/// Milliseconds since `main` began.
fn since_start_ms(at_unix_ms: u64) -> u64 {
    at_unix_ms.saturating_sub(STARTED_AT_MS.get().copied().unwrap_or(at_unix_ms))
}

/// The UI is mounted and has asked for its first data: logged once with the wall clock, so a
/// benchmark (`cargo xtask desk-bench`) measures the cold start from its own spawn time, and
/// with the page's stages, so the time can be split (`cargo xtask desk-bench` prints them).
#[tauri::command]
fn ui_ready(app: tauri::AppHandle, marks: Option<StartMarks>) {
    static LOGGED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if !LOGGED.swap(true, std::sync::atomic::Ordering::Relaxed) {
        let at_ms = unix_ms();
        match marks {
            Some(m) => {
                let nav = m.navigation_start_unix_ms;
                tracing::info!(
                    at_ms,
                    navigation_ms = since_start_ms(nav),
                    response_ms = m.response_end_ms.map(|r| since_start_ms(nav + r)),
                    script_ms = since_start_ms(nav + m.script_start_ms),
                    mounted_ms = since_start_ms(nav + m.mounted_ms),
                    profiles_ms = since_start_ms(nav + m.profiles_ms),
                    painted_ms = since_start_ms(nav + m.painted_ms),
                    ready_ms = since_start_ms(at_ms),
                    "ui ready"
                );
            }
            None => tracing::info!(at_ms, "ui ready"),
        }
        // Only now the hidden pop window: made at start it slowed the main window's first
        // paint by ~0.5 s (both load on the one GTK main thread and web process).
        desk::prepare_pop(&app);
    }
}

/// Brings the main window up (the pop window's "open" button).
#[tauri::command]
fn show_main(app: tauri::AppHandle) {
    desk::show_main(&app);
}

/// The notes and disposition of a call.
#[tauri::command]
async fn after_call(shell: State<'_, Shell>, call: String) -> Result<AfterCall, CommandError> {
    Ok(shell.engine().await?.after_call(&call).await?)
}

#[tauri::command]
async fn add_note(
    shell: State<'_, Shell>,
    call: String,
    text: String,
) -> Result<CallNote, CommandError> {
    Ok(shell.engine().await?.add_note(&call, &text).await?)
}

#[tauri::command]
async fn set_disposition(
    shell: State<'_, Shell>,
    call: String,
    code: String,
) -> Result<(), CommandError> {
    Ok(shell.engine().await?.set_disposition(&call, &code).await?)
}

#[tauri::command]
async fn set_tags(
    shell: State<'_, Shell>,
    call: String,
    tags: Vec<String>,
) -> Result<Vec<String>, CommandError> {
    Ok(shell.engine().await?.set_tags(&call, &tags).await?)
}

/// Searches the local call history (the same with the hub away).
#[tauri::command]
async fn history_search(
    shell: State<'_, Shell>,
    query: calldesk_engine::HistoryQuery,
) -> Result<calldesk_engine::HistoryPage, CommandError> {
    Ok(shell.engine().await?.history_search(&query).await?)
}

#[tauri::command]
async fn sync_status(
    shell: State<'_, Shell>,
) -> Result<calldesk_wire::SyncStatusView, CommandError> {
    Ok(shell.engine().await?.sync_status())
}

/// The changes the hub refused for good, newest first, with its reasons.
#[tauri::command]
async fn sync_refused(
    shell: State<'_, Shell>,
) -> Result<Vec<calldesk_engine::RefusedChange>, CommandError> {
    Ok(shell.engine().await?.refused_changes().await?)
}

#[tauri::command]
async fn sync_now(shell: State<'_, Shell>) -> Result<(), CommandError> {
    shell.engine().await?.sync_now();
    Ok(())
}

#[tauri::command]
async fn callbacks(shell: State<'_, Shell>) -> Result<Vec<CallbackView>, CommandError> {
    Ok(shell.engine().await?.callbacks().await?)
}

#[tauri::command]
async fn claim_callback(
    shell: State<'_, Shell>,
    number: String,
    claim: bool,
) -> Result<Option<CallbackView>, CommandError> {
    Ok(shell.engine().await?.claim_callback(&number, claim).await?)
}

#[tauri::command]
async fn close_callback(
    shell: State<'_, Shell>,
    number: String,
    outcome: String,
) -> Result<(), CommandError> {
    Ok(shell
        .engine()
        .await?
        .close_callback(&number, &outcome)
        .await?)
}

/// The call centre's disposition codes.
#[tauri::command]
async fn disposition_codes(shell: State<'_, Shell>) -> Result<Vec<String>, CommandError> {
    Ok(shell.engine().await?.disposition_codes().await?)
}

/// Figures per operator since `since` (unix ms: the start of the operator's day).
#[tauri::command]
async fn figures_since(
    shell: State<'_, Shell>,
    since: i64,
) -> Result<Vec<OperatorFigures>, CommandError> {
    Ok(shell.engine().await?.figures_since(since).await?)
}

/// The tenant's operators (names for the supervisor board; empty without a hub).
#[tauri::command]
async fn operators(shell: State<'_, Shell>) -> Result<Vec<OperatorView>, CommandError> {
    Ok(shell.engine().await?.operators().await?)
}

/// The UI painted a pop `ms` after its PBX event.
#[tauri::command]
async fn pop_painted(shell: State<'_, Shell>, ms: u32) -> Result<(), CommandError> {
    shell.engine().await?.record_pop_latency(ms);
    Ok(())
}

/// Percentiles of the pops painted so far (the end-to-end benchmark reads them).
#[tauri::command]
async fn pop_latency(shell: State<'_, Shell>) -> Result<PopLatency, CommandError> {
    Ok(shell.engine().await?.pop_latency())
}

#[tauri::command]
async fn profiles_list(shell: State<'_, Shell>) -> Result<ProfileList, CommandError> {
    Ok(shell.profiles.list()?)
}

#[tauri::command]
async fn profile_save(
    shell: State<'_, Shell>,
    profile: Profile,
    secret: Option<String>,
    hub_secret: Option<String>,
) -> Result<(), CommandError> {
    let profiles = shell.profiles.clone();
    off_workers(move || {
        profiles.save(
            profile,
            secret.map(Secret::new).as_ref(),
            hub_secret.map(Secret::new).as_ref(),
        )
    })
    .await
}

/// Runs profile work that talks to the keyring (D-Bus, synchronous) off the async workers.
async fn off_workers(
    work: impl FnOnce() -> Result<(), ProfileError> + Send + 'static,
) -> Result<(), CommandError> {
    tauri::async_runtime::spawn_blocking(work)
        .await
        .map_err(|e| CommandError {
            code: "internal",
            message: e.to_string(),
        })?
        .map_err(Into::into)
}

#[tauri::command]
async fn profile_activate(
    app: tauri::AppHandle,
    shell: State<'_, Shell>,
    id: String,
) -> Result<(), CommandError> {
    shell.profiles.activate(&id)?;
    shell.switch_to(&app, &id).await
}

#[tauri::command]
async fn profile_delete(shell: State<'_, Shell>, id: String) -> Result<(), CommandError> {
    let profiles = shell.profiles.clone();
    off_workers(move || profiles.delete(&id)).await
}

fn base_config(app: &tauri::App) -> Result<EngineConfig, Box<dyn std::error::Error>> {
    let data_dir: PathBuf = match std::env::var_os("CALLDESK_DATA_DIR") {
        Some(dir) => dir.into(),
        None => app.path().app_data_dir()?,
    };
    let every_ms = match std::env::var("CALLDESK_DEMO_EVERY_MS") {
        Ok(v) => v.parse().map_err(|_| {
            format!("CALLDESK_DEMO_EVERY_MS must be a number of milliseconds, not `{v}`")
        })?,
        Err(_) => DEFAULT_DEMO_EVERY_MS,
    };
    Ok(EngineConfig {
        profile: ProfileConfig::Demo {
            every: Duration::from_millis(every_ms),
        },
        data_dir,
        region: std::env::var("CALLDESK_REGION").unwrap_or_else(|_| "RU".to_owned()),
        dialplan: calldesk_engine::DialplanConfig::default(),
        seat: calldesk_engine::Seat::default(),
    })
}

/// Forwards one engine's events to the UI as Tauri events, until the engine is replaced.
/// Logs the pop latency percentiles every 10 s while pops are measured (`cargo xtask
/// pop-bench` reads the last line).
async fn log_pop_latency(app: tauri::AppHandle) {
    let mut tick = tokio::time::interval(Duration::from_secs(10));
    let mut logged = 0;
    loop {
        tick.tick().await;
        let engine = app.state::<Shell>().engine.read().await.clone();
        let Some(p) = engine.map(|e| e.pop_latency()) else {
            continue;
        };
        if p.count != logged {
            logged = p.count;
            tracing::info!(
                count = p.count,
                p50_ms = p.p50,
                p90_ms = p.p90,
                p99_ms = p.p99,
                max_ms = p.max,
                "pop latency so far"
            );
        }
    }
}

/// SIGTERM (logout, shutdown, `kill`), SIGINT or SIGHUP: exit the normal way, so the engine
/// finishes its last writes and the window state is saved.
async fn exit_on_signal(app: tauri::AppHandle) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
            signal(SignalKind::hangup()),
        ) else {
            tracing::warn!("cannot listen for termination signals; a kill loses the window state");
            return;
        };
        let name = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
            _ = hup.recv() => "SIGHUP",
        };
        tracing::info!(signal = name, "exiting on a signal");
        app.exit(0);
    }
    #[cfg(not(unix))]
    let _ = app;
}

fn forward_events(
    app: tauri::AppHandle,
    engine: &EngineHandle,
    mut generation: tokio::sync::watch::Receiver<u64>,
) {
    let mut events = engine.subscribe();
    let engine = engine.clone();
    generation.mark_unchanged();
    tauri::async_runtime::spawn(async move {
        loop {
            let event = tokio::select! {
                event = events.recv() => event,
                _ = generation.changed() => break,
            };
            let sent = match event {
                Ok(EngineEvent::CallUpdated(call)) => {
                    // The UI first (the pop in the main window is measured from here), then
                    // the pop window and notification on the desk thread.
                    let sent = app.emit("call-updated", &call);
                    desk::queue_call_changed(&app, &call, engine.identity());
                    sent
                }
                Ok(EngineEvent::ConnectionChanged(status)) => {
                    desk::connection_changed(&app, &status);
                    app.emit("connection-changed", status)
                }
                Ok(EngineEvent::Presence(presence)) => app.emit("presence-changed", presence),
                Ok(EngineEvent::IdentityChanged(identity)) => {
                    app.emit("identity-changed", identity)
                }
                Ok(EngineEvent::CallbacksChanged) => app.emit("callbacks-changed", ()),
                Ok(EngineEvent::SyncChanged(status)) => app.emit("sync-changed", status),
                Ok(EngineEvent::HistoryChanged) => app.emit("history-changed", ()),
                Err(RecvError::Lagged(missed)) => {
                    // Updates were dropped (one may have been a call's end): send the whole
                    // current picture again; the UI applies updates idempotently.
                    tracing::warn!(
                        missed,
                        "UI fell behind the engine's events; resending all calls"
                    );
                    match engine.calls_snapshot().await {
                        Ok(calls) => calls
                            .into_iter()
                            .try_for_each(|call| app.emit("call-updated", call)),
                        Err(e) => {
                            tracing::error!(error = %e, "cannot resend the calls to the UI");
                            Ok(())
                        }
                    }
                }
                Err(RecvError::Closed) => break,
            };
            if let Err(e) = sent {
                tracing::warn!(error = %e, "could not send an event to the UI");
            }
        }
    });
}

fn main() {
    STARTED_AT_MS.get_or_init(unix_ms);
    tracing_subscriber::fmt()
        // stderr: tauri-driver discards the stdout of the app it starts.
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let app = tauri::Builder::default()
        // First: a second start hands its arguments (a tel: link) to this one and exits.
        .plugin(tauri_plugin_single_instance::init(|app, argv, _cwd| {
            desk::show_main(app);
            desk::dial_from_args(app, &argv);
        }))
        .plugin(tauri_plugin_deep_link::init())
        .plugin(tauri_plugin_notification::init())
        .plugin(
            tauri_plugin_window_state::Builder::default()
                .with_denylist(&[desk::POP_WINDOW])
                .build(),
        )
        .plugin(
            tauri_plugin_global_shortcut::Builder::new()
                .with_handler(|app, shortcut, event| desk::on_hotkey(app, shortcut, event.state))
                .build(),
        )
        .manage(desk::DeskState::default())
        // Closing the main window quits (a hidden pop window must not keep a windowless app
        // alive); the exit path lets the engine finish its writes and saves the window state.
        .on_window_event(|window, event| {
            if window.label() == "main" && matches!(event, tauri::WindowEvent::CloseRequested { .. }) {
                window.app_handle().exit(0);
            }
        })
        .on_page_load(|webview, payload| {
            if webview.label() == "main" {
                let since_start_ms = since_start_ms(unix_ms());
                match payload.event() {
                    tauri::webview::PageLoadEvent::Started => {
                        tracing::info!(since_start_ms, "main page load started");
                    }
                    tauri::webview::PageLoadEvent::Finished => {
                        tracing::info!(since_start_ms, "main page load finished");
                    }
                }
            }
        })
        .invoke_handler(tauri::generate_handler![
            calls_snapshot,
            connection_status,
            identity,
            capabilities,
            presence,
            caller_history,
            call_control,
            after_call,
            add_note,
            set_disposition,
            disposition_codes,
            set_tags,
            history_search,
            sync_status,
            sync_now,
            sync_refused,
            callbacks,
            claim_callback,
            close_callback,
            figures_since,
            operators,
            pop_painted,
            pop_latency,
            profiles_list,
            profile_save,
            profile_activate,
            profile_delete,
            pending_dial,
            show_main,
            ui_ready,
            playback::recording_play,
            playback::player_control,
            playback::player_state
        ])
        .setup(|app| {
            tracing::info!(
                main_at_ms = STARTED_AT_MS.get().copied().unwrap_or(0),
                since_start_ms = since_start_ms(unix_ms()),
                "setting up"
            );
            let base = base_config(app)?;
            tracing::info!(data_dir = %base.data_dir.display(), "calldesk starting");
            desk::setup(app, &base.data_dir)?;
            playback::setup(app, &base.data_dir)?;
            let args: Vec<String> = std::env::args().collect();
            desk::dial_from_args(app.handle(), &args);
            let profiles = Profiles::new(&base.data_dir, Arc::new(KeyringStore));
            let (generation, _) = tokio::sync::watch::channel(0);
            let shell = Shell {
                profiles,
                base,
                engine: RwLock::new(None),
                generation,
            };
            // The last active profile starts at once; without one the UI shows the wizard.
            let active = shell.profiles.list().map(|l| l.active);
            app.manage(shell);
            tauri::async_runtime::spawn(log_pop_latency(app.handle().clone()));
            tauri::async_runtime::spawn(exit_on_signal(app.handle().clone()));
            match active {
                Ok(Some(id)) => {
                    let handle = app.handle().clone();
                    tauri::async_runtime::spawn(async move {
                        let shell = handle.state::<Shell>();
                        if let Err(e) = shell.switch_to(&handle, &id).await {
                            tracing::error!(profile = %id, error = %e.message, "the active profile cannot start");
                            let _ = handle.emit("profile-failed", &e);
                        }
                    });
                }
                Ok(None) => tracing::info!("no connection profile yet: showing the wizard"),
                Err(e) => tracing::error!(error = %e, "cannot read the profiles"),
            }
            Ok(())
        })
        .build(tauri::generate_context!("../tauri.conf.json"));
    match app {
        Ok(app) => app.run(|app, event| {
            if let tauri::RunEvent::Exit = event
                && let Some(shell) = app.try_state::<Shell>()
            {
                // Let the engine finish its last writes (a call that just ended) before exit.
                tauri::async_runtime::block_on(async {
                    if let Some(engine) = shell.engine.write().await.take() {
                        engine.shutdown().await;
                    }
                });
            }
        }),
        Err(e) => {
            tracing::error!(error = %e, "calldesk could not start");
            std::process::exit(1);
        }
    }
}
