//! Recordings in the app: the player (its own thread; the sound device is opened on the
//! first play), the recordings cache, and the commands and events the UI uses.
//!
//! Events: `player-state` ([`PlayerState`], on every change, position at most every
//! 250 ms) and `player-waveform` (`{ id, peaks, durationMs }`, once the file is complete).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use calldesk_player::{Cache, Media, Output, Player, PlayerError, PlayerState};
use serde::{Deserialize, Serialize};
use tauri::{Emitter, Manager, State};

use crate::{CommandError, Shell};

/// Bars in the waveform overview.
const WAVEFORM_BARS: usize = 400;
/// The cache's default cap; `CALLDESK_RECORDINGS_CACHE_MB` changes it.
const DEFAULT_CACHE_MB: u64 = 512;

/// The player and its cache, kept in Tauri's state.
pub(crate) struct Playback {
    player: Player,
    cache: Arc<Cache>,
}

impl From<PlayerError> for CommandError {
    fn from(e: PlayerError) -> Self {
        Self {
            code: e.code(),
            message: e.to_string(),
        }
    }
}

/// Starts the player thread (no device yet) and opens the cache under `cache_dir`.
pub(crate) fn setup(app: &tauri::App, data_dir: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let dir = app
        .path()
        .app_cache_dir()
        .unwrap_or_else(|_| data_dir.join("cache"))
        .join("recordings");
    let cap_mb = match std::env::var("CALLDESK_RECORDINGS_CACHE_MB") {
        Ok(v) => v.trim().parse::<u64>().map_err(|_| {
            format!("CALLDESK_RECORDINGS_CACHE_MB must be a number of megabytes, not {v:?}")
        })?,
        Err(_) => DEFAULT_CACHE_MB,
    };
    let cache = Cache::open(&dir, cap_mb * 1024 * 1024)
        .map_err(|e| format!("cannot use the recordings cache {}: {e}", dir.display()))?;
    let handle = app.handle().clone();
    let player = Player::spawn(Output::Device, move |state: &PlayerState| {
        let _ = handle.emit("player-state", state);
    })?;
    tracing::info!(cache = %dir.display(), cap_mb, "recordings player ready");
    app.manage(Playback {
        player,
        cache: Arc::new(cache),
    });
    Ok(())
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct WaveformEvent {
    id: String,
    peaks: Vec<f32>,
    duration_ms: u64,
}

/// Plays call `call`'s recording (the first, or `name`): from the cache, else while it
/// downloads. The waveform follows as an event once the file is complete.
#[tauri::command]
pub(crate) async fn recording_play(
    app: tauri::AppHandle,
    shell: State<'_, Shell>,
    playback: State<'_, Playback>,
    call: String,
    name: Option<String>,
) -> Result<(), CommandError> {
    let engine = shell.engine().await?;
    let opened = engine
        .open_recording(&call, name.as_deref(), Arc::clone(&playback.cache))
        .await?;
    tracing::info!(call = %opened.call, cached = opened.cached, "playing a recording");
    playback.player.load(call.clone(), opened.media, true)?;
    let complete = opened.complete;
    tauri::async_runtime::spawn(async move {
        let path = match complete.await {
            Ok(Ok(path)) => path,
            Ok(Err(reason)) => return tracing::warn!(%reason, "no waveform: the download failed"),
            Err(_) => return,
        };
        let overview = tokio::task::spawn_blocking(move || {
            calldesk_player::waveform(Media::File(path), WAVEFORM_BARS)
        })
        .await;
        match overview {
            Ok(Ok(w)) => {
                let _ = app.emit(
                    "player-waveform",
                    WaveformEvent {
                        id: call,
                        peaks: w.peaks,
                        duration_ms: w.duration_ms,
                    },
                );
            }
            Ok(Err(e)) => tracing::warn!(error = %e, "no waveform"),
            Err(e) => tracing::warn!(error = %e, "the waveform task failed"),
        }
    });
    Ok(())
}

/// A player control from the UI.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub(crate) enum PlayerAction {
    Play,
    Pause,
    Seek { ms: u64 },
    Speed { value: f32 },
    Volume { value: f32 },
    Stop,
}

#[tauri::command]
pub(crate) fn player_control(
    playback: State<'_, Playback>,
    action: PlayerAction,
) -> Result<(), CommandError> {
    let player = &playback.player;
    match action {
        PlayerAction::Play => player.play()?,
        PlayerAction::Pause => player.pause()?,
        PlayerAction::Seek { ms } => player.seek(Duration::from_millis(ms))?,
        PlayerAction::Speed { value } => player.set_speed(value)?,
        PlayerAction::Volume { value } => player.set_volume(value)?,
        PlayerAction::Stop => player.unload()?,
    }
    Ok(())
}

#[tauri::command]
pub(crate) fn player_state(playback: State<'_, Playback>) -> PlayerState {
    playback.player.state()
}
