//! Engine errors with stable codes for the UI.

/// Errors the engine reports to the shell. The UI branches on [`EngineError::code`], never on
/// the message text.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(
        "cannot create the data folder {path}: {source}; check its permissions or set CALLDESK_DATA_DIR"
    )]
    DataDir {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("the call history could not be used: {0}")]
    Store(calldesk_store::StoreError),
    #[error("the built-in demo PBX could not start: {0}")]
    Simulator(std::io::Error),
    #[error("the default region `{0}` is not a country code such as RU")]
    Region(#[from] calldesk_calls::PhoneError),
    #[error("the engine has stopped")]
    Stopped,
    /// The profile cannot be used as it is (a bad hub address, no root certificates).
    #[error("{0}")]
    Profile(String),
    #[error("{0}")]
    Hub(String),
    /// The call has no recording this operator may hear, or the profile cannot play any.
    #[error("{0}")]
    NoRecording(String),
    /// The recording exists but is not in the store yet (the hub retries by itself).
    #[error("{0}")]
    RecordingNotReady(String),
    /// The recording could not be fetched; the message says why.
    #[error("the recording could not be fetched: {0}")]
    Recording(String),
    /// What the user typed cannot be used; the message says why.
    #[error("{0}")]
    Invalid(String),
}

impl From<calldesk_store::StoreError> for EngineError {
    fn from(e: calldesk_store::StoreError) -> Self {
        match e {
            // a bad tag, or a worklist item that is not there: the user's to fix
            calldesk_store::StoreError::Invalid(m) => Self::Invalid(m),
            other => Self::Store(other),
        }
    }
}

impl EngineError {
    /// Stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::DataDir { .. } | Self::Store(_) => "store_unavailable",
            Self::Simulator(_) => "simulator_failed",
            Self::Region(_) => "bad_region",
            Self::Stopped => "engine_stopped",
            Self::Profile(_) => "bad_profile",
            Self::Hub(_) => "hub_unavailable",
            Self::Invalid(_) => "invalid",
            Self::NoRecording(_) => "no_recording",
            Self::RecordingNotReady(_) => "recording_not_ready",
            Self::Recording(_) => "recording_unavailable",
        }
    }
}
