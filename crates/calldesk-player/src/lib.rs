//! calldesk's recording player (layer 1): rodio on its own thread behind a [`Player`]
//! handle, playback that starts while the recording still downloads ([`stream`]), a
//! size-capped [`Cache`] of played recordings, waveform overviews and a decode-only
//! path for machines without a sound device.
//!
//! No tokio and no HTTP here: the desktop engine downloads (with its own client and
//! TLS settings) into a [`cache::Pending`] and hands the [`stream::StreamReader`] to
//! the player. The hub never links this crate (it has no sound to play).
//!
//! Formats: WAV (PCM), MP3 and Ogg Vorbis, through symphonia. Ogg Opus is refused
//! with a clear error: symphonia has no Opus decoder.

pub mod cache;
pub mod decode;
pub mod player;
pub mod stream;

pub use cache::{Cache, Cached, Pending};
pub use decode::{Decoded, Media, Waveform, decode, waveform};
pub use player::{
    Capture, ErrorInfo, Output, Player, PlayerState, SPEED_RANGE, Status, VOLUME_RANGE,
};
pub use stream::{Download, StreamReader, StreamStatus, stream_file};

/// The decoder's format hint for a recording named `name` (`call-1.MP3` → `mp3`): its
/// extension, lower-cased, if it is a short alphanumeric one.
pub fn format_hint(name: &str) -> Option<String> {
    let (_, ext) = name.rsplit_once('.')?;
    (!ext.is_empty() && ext.len() <= 5 && ext.bytes().all(|b| b.is_ascii_alphanumeric()))
        .then(|| ext.to_ascii_lowercase())
}

/// Why a recording does not play. [`PlayerError::code`] is stable, for translations.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PlayerError {
    #[error(
        "no sound output device ({0}); connect speakers or headphones, or check the system's sound settings"
    )]
    NoDevice(String),
    #[error(
        "this recording's format cannot be played: {0}; calldesk plays WAV, MP3 and Ogg Vorbis"
    )]
    Format(String),
    #[error("the recording could not be read: {0}")]
    Io(String),
    #[error("the speed must be from 0.75 to 2, not {0}")]
    Speed(f32),
    #[error("the volume must be from 0 to 1, not {0}")]
    Volume(f32),
    #[error("the player has stopped")]
    Stopped,
}

impl PlayerError {
    /// A stable snake_case code (as the engine's) the UI translates.
    pub fn code(&self) -> &'static str {
        match self {
            PlayerError::NoDevice(_) => "no_audio_device",
            PlayerError::Format(_) => "unsupported_format",
            PlayerError::Io(_) => "recording_unreadable",
            PlayerError::Speed(_) | PlayerError::Volume(_) => "invalid",
            PlayerError::Stopped => "player_stopped",
        }
    }
}
