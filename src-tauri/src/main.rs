//! calldesk desktop app: the Tauri shell. It only wires things together — the engine
//! (`calldesk-engine`) does the work; this crate owns the window, maps engine events to Tauri
//! events and exposes thin commands.
//!
//! Commands (snake_case `noun_verb`) and events (kebab-case) — one table, mirrored in
//! `ui/src/lib/backend-tauri.ts`:
//!
//! | kind    | name                 | payload                          |
//! |---------|----------------------|----------------------------------|
//! | command | `calls_snapshot`     | → `CallView[]` (live, then recent) |
//! | command | `connection_status`  | → `ConnectionStatus`             |
//! | event   | `call-updated`       | `CallView`                       |
//! | event   | `connection-changed` | `ConnectionStatus`               |
//!
//! Errors reach the UI as `{ code, message }` ([`CommandError`]); the UI branches on `code`.
//!
//! Environment (all optional): `CALLDESK_DATA_DIR` (where the SQLite history lives; default the
//! app data dir), `CALLDESK_DEMO_EVERY_MS` (demo call interval, default 6000),
//! `CALLDESK_REGION` (default region for numbers, default RU), `RUST_LOG`.
//!
//! Tested end to end by `cargo xtask e2e`: the real binary under Xvfb, driven by WebDriver.

// Release builds on Windows have no console window.
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

use std::time::Duration;

use calldesk_engine::{
    Engine, EngineConfig, EngineError, EngineEvent, EngineHandle, ProfileConfig,
};
use calldesk_wire::{CallView, ConnectionStatus};
use tauri::{Emitter, Manager, State};
use tokio::sync::broadcast::error::RecvError;

const DEFAULT_DEMO_EVERY_MS: u64 = 6000;

/// An error as the UI receives it.
#[derive(Debug, serde::Serialize)]
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

#[tauri::command]
async fn calls_snapshot(engine: State<'_, EngineHandle>) -> Result<Vec<CallView>, CommandError> {
    Ok(engine.calls_snapshot().await?)
}

#[tauri::command]
fn connection_status(engine: State<'_, EngineHandle>) -> ConnectionStatus {
    engine.connection_status()
}

fn engine_config(app: &tauri::App) -> Result<EngineConfig, Box<dyn std::error::Error>> {
    let data_dir = match std::env::var_os("CALLDESK_DATA_DIR") {
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
    })
}

/// Forwards engine events to the UI as Tauri events.
fn forward_events(app: tauri::AppHandle, engine: &EngineHandle) {
    let mut events = engine.subscribe();
    let engine = engine.clone();
    tauri::async_runtime::spawn(async move {
        loop {
            let sent = match events.recv().await {
                Ok(EngineEvent::CallUpdated(call)) => app.emit("call-updated", call),
                Ok(EngineEvent::ConnectionChanged(status)) => {
                    app.emit("connection-changed", status)
                }
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
    tracing_subscriber::fmt()
        // stderr: tauri-driver discards the stdout of the app it starts.
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let app = tauri::Builder::default()
        .invoke_handler(tauri::generate_handler![calls_snapshot, connection_status])
        .setup(|app| {
            let config = engine_config(app)?;
            tracing::info!(data_dir = %config.data_dir.display(), "starting the calldesk engine (Demo profile)");
            let engine = tauri::async_runtime::block_on(Engine::start(config))?;
            forward_events(app.handle().clone(), &engine);
            app.manage(engine);
            Ok(())
        })
        .build(tauri::generate_context!("../tauri.conf.json"));
    match app {
        Ok(app) => app.run(|app, event| {
            if let tauri::RunEvent::Exit = event
                && let Some(engine) = app.try_state::<EngineHandle>()
            {
                // Let the engine finish its last writes (a call that just ended) before exit.
                tauri::async_runtime::block_on(engine.shutdown());
            }
        }),
        Err(e) => {
            tracing::error!(error = %e, "calldesk could not start");
            std::process::exit(1);
        }
    }
}
