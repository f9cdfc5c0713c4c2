//! Recordings for the desktop player (Hub profile): a short-lived link from the hub, then
//! the file from the local cache or a download that the player starts on at once.
//!
//! The download runs as a task of its own: it fills the cache entry while the player reads
//! it, and it finishes even if the operator stops listening, so a second play is local. A
//! download that breaks leaves no cache entry (see [`calldesk_player::Cache`]).

use std::path::PathBuf;
use std::sync::Arc;

use calldesk_player::{Cache, Media};
use reqwest::StatusCode;
use tokio::sync::oneshot;

use crate::EngineError;
use crate::engine::{Backend, EngineHandle, hub_error};

/// A recording ready for the player.
#[derive(Debug)]
pub struct OpenedRecording {
    pub call: String,
    /// As the PBX names it (e.g. `1234.mp3`).
    pub name: String,
    pub media: Media,
    /// Whether it came from the cache (no download).
    pub cached: bool,
    /// The cached file once every byte is on disk (at once for a cache hit), or why not.
    pub complete: oneshot::Receiver<Result<PathBuf, String>>,
}

impl EngineHandle {
    /// Opens call `call`'s recording (the first, or the one named `name`) for playing:
    /// from `cache` if it is there, else as a download into it.
    pub async fn open_recording(
        &self,
        call: &str,
        name: Option<&str>,
        cache: Arc<Cache>,
    ) -> Result<OpenedRecording, EngineError> {
        let Backend::Hub(pbx) = &self.backend else {
            return Err(EngineError::NoRecording(
                "recordings are kept by the hub: connect with a Hub profile to play them"
                    .to_owned(),
            ));
        };
        let client = pbx.client();
        let link = match client.recording_link(call, name).await.map_err(hub_error)? {
            Ok(link) => link,
            Err((StatusCode::CONFLICT, message)) => {
                return Err(EngineError::RecordingNotReady(message));
            }
            Err((_, message)) => return Err(EngineError::NoRecording(message)),
        };
        let key = format!("{}/{call}/{}", client.scope(), link.name);
        let (done, complete) = oneshot::channel();
        if let Some(hit) = cache.get(&key) {
            tracing::debug!(call, "recording from the cache");
            let _ = done.send(Ok(hit.path.clone()));
            return Ok(OpenedRecording {
                call: call.to_owned(),
                name: link.name,
                media: Media::File(hit.path),
                cached: true,
                complete,
            });
        }
        let mut response = client
            .open_download(&link.url)
            .await
            .map_err(EngineError::Recording)?;
        let total = response.content_length().or(link.size);
        let (mut pending, reader) = cache.start(&key, total).map_err(|e| {
            EngineError::Recording(format!(
                "cannot write to the recordings cache {}: {e}",
                cache.dir().display()
            ))
        })?;
        let download = async move {
            let result = loop {
                match response.chunk().await {
                    Ok(Some(bytes)) => {
                        if let Err(e) = pending.append(&bytes) {
                            break Err(format!("cannot keep the recording: {e}"));
                        }
                    }
                    Ok(None) => break Ok(()),
                    Err(e) => break Err(format!("the download broke off: {e}")),
                }
            };
            let outcome = match result {
                Ok(()) => tokio::task::spawn_blocking(move || pending.finish(&cache))
                    .await
                    .map_err(|e| e.to_string())
                    .and_then(|r| r.map(|c| c.path).map_err(|e| e.to_string())),
                Err(reason) => {
                    tracing::warn!(%reason, "recording download failed");
                    pending.fail(reason.clone());
                    Err(reason)
                }
            };
            let _ = done.send(outcome);
        };
        tokio::spawn(download);
        let hint = calldesk_player::format_hint(&link.name);
        Ok(OpenedRecording {
            call: call.to_owned(),
            name: link.name,
            media: Media::Stream { reader, hint },
            cached: false,
            complete,
        })
    }
}
