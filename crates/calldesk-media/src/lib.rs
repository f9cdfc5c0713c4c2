//! calldesk recordings storage (layer 1): one [`RecordingStore`] with an S3 implementation
//! (AWS, Selectel, Yandex, MinIO, any S3 API) and a local-folder one (demo and development),
//! keys by tenant/date/call ([`RecordingKey`]), `exists`, uploads from a file (streamed; in parts
//! above the part size), and short-lived GET links a desk can play without credentials.
//!
//! Configuration comes from the environment ([`StoreSettings::from_env`]); S3 credentials never
//! leave it (they are redacted from `Debug`).

mod key;
mod local;
mod s3;

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

pub use key::{KeyError, RecordingKey};
pub use local::{LocalStore, ROUTE_PREFIX as LOCAL_ROUTE_PREFIX};
pub use s3::{DEFAULT_PART_SIZE, S3Config, S3Store};
pub use url::Url;

/// Why a store operation failed; the message says what to fix or that a retry may help.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    #[error("recordings store set-up: {0}")]
    Config(String),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("could not {action}: the storage server is unreachable ({detail})")]
    Transport {
        action: &'static str,
        detail: String,
    },
    #[error("the storage server refused to {action}: HTTP {status} {detail}")]
    Refused {
        action: &'static str,
        status: u16,
        detail: String,
    },
    #[error("the storage server answered oddly: {0}")]
    BadResponse(String),
    #[error("recording link refused: {0}")]
    Forbidden(&'static str),
}

impl MediaError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    pub(crate) fn transport(action: &'static str, e: &reqwest::Error) -> Self {
        // reqwest's Display names the URL, which is presigned: keep only the kind of failure.
        let kind = if e.is_timeout() {
            "timed out"
        } else if e.is_connect() {
            "connection failed"
        } else if e.is_body() {
            "the body could not be sent or read"
        } else {
            "request failed"
        };
        let mut detail = kind.to_owned();
        let mut source = std::error::Error::source(e);
        while let Some(s) = source {
            detail = format!("{detail}: {s}");
            source = s.source();
        }
        Self::Transport { action, detail }
    }

    /// Whether trying again later may succeed (the network, a busy server) rather than needing
    /// someone to fix the set-up.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Transport { .. } | Self::BadResponse(_) => true,
            Self::Refused { status, .. } => *status >= 500 || *status == 429 || *status == 408,
            Self::Io { source, .. } => source.kind() != std::io::ErrorKind::NotFound,
            Self::Config(_) | Self::Forbidden(_) => false,
        }
    }
}

/// What a store holds under a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObjectInfo {
    pub size: u64,
}

/// What an upload sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Uploaded {
    pub size: u64,
    /// 1 for a single PUT (or a local copy), else the number of parts.
    pub parts: u32,
}

/// The recordings store the hub was configured with.
#[derive(Debug, Clone)]
pub enum RecordingStore {
    S3(S3Store),
    Local(LocalStore),
}

impl RecordingStore {
    pub fn from_settings(settings: StoreSettings) -> Result<Self, MediaError> {
        match settings {
            StoreSettings::S3(config) => Ok(Self::S3(S3Store::new(config)?)),
            StoreSettings::Local {
                root,
                public_base,
                signing_key,
            } => Ok(Self::Local(LocalStore::new(
                root,
                public_base,
                signing_key,
            )?)),
        }
    }

    /// `S3 bucket …` or `local folder …`, for logs and `/api/status`.
    pub fn describe(&self) -> &'static str {
        match self {
            Self::S3(_) => "S3",
            Self::Local(_) => "local folder",
        }
    }

    pub async fn exists(&self, key: &RecordingKey) -> Result<Option<ObjectInfo>, MediaError> {
        match self {
            Self::S3(s) => s.exists(key).await,
            Self::Local(l) => l.exists(key).await,
        }
    }

    /// Stores `file` under `key` with its content type; the same file under the same key again
    /// changes nothing (keys are made from the call and the PBX's recording name).
    pub async fn upload_file(
        &self,
        key: &RecordingKey,
        file: &Path,
    ) -> Result<Uploaded, MediaError> {
        let content_type = content_type_for(&key.name());
        match self {
            Self::S3(s) => s.upload_file(key, file, content_type).await,
            Self::Local(l) => l.upload_file(key, file, content_type).await,
        }
    }

    /// A GET link to `key` valid for `expires_in` from `now`.
    pub fn presign_get(
        &self,
        key: &RecordingKey,
        expires_in: Duration,
        now: SystemTime,
    ) -> Result<Url, MediaError> {
        match self {
            Self::S3(s) => s.presign_get(key, expires_in, now),
            Self::Local(l) => l.presign_get(key, expires_in, now),
        }
    }
}

/// The content type of a recording by its file name's extension.
pub fn content_type_for(name: &str) -> &'static str {
    let ext = name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase());
    match ext.as_deref() {
        Some("wav") => "audio/wav",
        Some("mp3") => "audio/mpeg",
        Some("ogg" | "oga" | "opus") => "audio/ogg",
        Some("gsm") => "audio/gsm",
        _ => "application/octet-stream",
    }
}

/// Which store, from the environment. `Debug` shows no credential and no signing key.
#[derive(Clone)]
pub enum StoreSettings {
    S3(S3Config),
    Local {
        root: PathBuf,
        public_base: Url,
        signing_key: Vec<u8>,
    },
}

impl std::fmt::Debug for StoreSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::S3(config) => f.debug_tuple("S3").field(config).finish(),
            Self::Local {
                root, public_base, ..
            } => f
                .debug_struct("Local")
                .field("root", root)
                .field("public_base", &public_base.as_str())
                .finish_non_exhaustive(),
        }
    }
}

/// The environment variables [`StoreSettings::from_env`] reads.
pub const ENV_VARS: &[(&str, &str)] = &[
    (
        "CALLDESK_S3_BUCKET",
        "the bucket; when unset, recordings stay in a local folder",
    ),
    (
        "CALLDESK_S3_ENDPOINT",
        "the S3 API address (default https://s3.amazonaws.com)",
    ),
    ("CALLDESK_S3_REGION", "the region (default us-east-1)"),
    (
        "CALLDESK_S3_PATH_STYLE",
        "true for the bucket in the path (MinIO, most self-hosted servers); default false",
    ),
    (
        "CALLDESK_S3_PART_MB",
        "upload in parts of this many MiB above that size (default 16, at least 5)",
    ),
    ("AWS_ACCESS_KEY_ID", "the access key"),
    ("AWS_SECRET_ACCESS_KEY", "the secret key"),
    (
        "AWS_SESSION_TOKEN",
        "a session token (temporary credentials)",
    ),
];

impl StoreSettings {
    /// S3 when `CALLDESK_S3_BUCKET` is set (see [`ENV_VARS`]), else the local folder `root`
    /// served at `public_base` with links signed by `signing_key`. `var` reads the environment
    /// (tests pass a map).
    pub fn from_env(
        var: impl Fn(&str) -> Option<String>,
        root: PathBuf,
        public_base: Url,
        signing_key: Vec<u8>,
    ) -> Result<Self, MediaError> {
        let Some(bucket) = var("CALLDESK_S3_BUCKET").filter(|b| !b.is_empty()) else {
            return Ok(Self::Local {
                root,
                public_base,
                signing_key,
            });
        };
        let endpoint_text =
            var("CALLDESK_S3_ENDPOINT").unwrap_or_else(|| "https://s3.amazonaws.com".to_owned());
        let endpoint = Url::parse(&endpoint_text).map_err(|e| {
            MediaError::Config(format!(
                "CALLDESK_S3_ENDPOINT `{endpoint_text}` is not a URL: {e}"
            ))
        })?;
        if !matches!(endpoint.scheme(), "http" | "https") {
            return Err(MediaError::Config(format!(
                "CALLDESK_S3_ENDPOINT `{endpoint_text}` must start with http:// or https://"
            )));
        }
        let path_style = match var("CALLDESK_S3_PATH_STYLE").as_deref() {
            None | Some("" | "false" | "0") => false,
            Some("true" | "1") => true,
            Some(other) => {
                return Err(MediaError::Config(format!(
                    "CALLDESK_S3_PATH_STYLE must be true or false, not `{other}`"
                )));
            }
        };
        let part_size = match var("CALLDESK_S3_PART_MB") {
            None => DEFAULT_PART_SIZE,
            Some(mb) => mb
                .parse::<u64>()
                .ok()
                .filter(|mb| (5..=5120).contains(mb))
                .map(|mb| mb * 1024 * 1024)
                .ok_or_else(|| {
                    MediaError::Config(format!(
                        "CALLDESK_S3_PART_MB must be a whole number from 5 to 5120, not `{mb}`"
                    ))
                })?,
        };
        let need = |name: &str| {
            var(name).filter(|v| !v.is_empty()).ok_or_else(|| {
                MediaError::Config(format!(
                    "CALLDESK_S3_BUCKET is set but {name} is not: give the S3 credentials in the environment"
                ))
            })
        };
        Ok(Self::S3(S3Config {
            endpoint,
            region: var("CALLDESK_S3_REGION").unwrap_or_else(|| "us-east-1".to_owned()),
            bucket,
            path_style,
            access_key: need("AWS_ACCESS_KEY_ID")?,
            secret_key: need("AWS_SECRET_ACCESS_KEY")?,
            session_token: var("AWS_SESSION_TOKEN").filter(|t| !t.is_empty()),
            part_size,
            extra_root_certs_pem: None,
        }))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::collections::HashMap;

    fn settings(vars: &[(&str, &str)]) -> Result<StoreSettings, MediaError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        StoreSettings::from_env(
            |k| map.get(k).cloned(),
            PathBuf::from("/var/lib/calldesk/recordings"),
            Url::parse("http://hub.local:8080/").unwrap(),
            vec![7; 32],
        )
    }

    #[test]
    fn no_bucket_means_the_local_folder_and_its_key_is_not_shown() {
        let s = settings(&[]).unwrap();
        assert!(matches!(s, StoreSettings::Local { .. }));
        let shown = format!("{s:?}");
        assert!(shown.contains("/var/lib/calldesk/recordings"), "{shown}");
        assert!(!shown.contains("7, 7"), "{shown}");
    }

    #[test]
    fn s3_settings_are_read_and_checked_with_messages_that_name_the_variable() {
        let s = settings(&[
            ("CALLDESK_S3_BUCKET", "calls"),
            (
                "CALLDESK_S3_ENDPOINT",
                "https://s3.ru-1.storage.selcloud.ru",
            ),
            ("CALLDESK_S3_REGION", "ru-1"),
            ("CALLDESK_S3_PATH_STYLE", "true"),
            ("CALLDESK_S3_PART_MB", "8"),
            ("AWS_ACCESS_KEY_ID", "AK"),
            ("AWS_SECRET_ACCESS_KEY", "very-secret"),
        ])
        .unwrap();
        let StoreSettings::S3(c) = s else {
            panic!("not S3")
        };
        assert_eq!(c.region, "ru-1");
        assert!(c.path_style);
        assert_eq!(c.part_size, 8 * 1024 * 1024);
        assert!(!format!("{c:?}").contains("very-secret"));

        let e = settings(&[("CALLDESK_S3_BUCKET", "calls")]).unwrap_err();
        assert!(e.to_string().contains("AWS_ACCESS_KEY_ID"), "{e}");
        let e = settings(&[
            ("CALLDESK_S3_BUCKET", "calls"),
            ("CALLDESK_S3_PATH_STYLE", "yes"),
        ])
        .unwrap_err();
        assert!(e.to_string().contains("CALLDESK_S3_PATH_STYLE"), "{e}");
        let e = settings(&[
            ("CALLDESK_S3_BUCKET", "calls"),
            ("CALLDESK_S3_PART_MB", "1"),
        ])
        .unwrap_err();
        assert!(e.to_string().contains("from 5 to 5120"), "{e}");
        let e = settings(&[
            ("CALLDESK_S3_BUCKET", "calls"),
            ("CALLDESK_S3_ENDPOINT", "ftp://x"),
        ])
        .unwrap_err();
        assert!(e.to_string().contains("http://"), "{e}");
    }

    #[test]
    fn content_types_follow_the_extension() {
        assert_eq!(content_type_for("a.WAV"), "audio/wav");
        assert_eq!(content_type_for("x.mp3"), "audio/mpeg");
        assert_eq!(content_type_for("x.opus"), "audio/ogg");
        assert_eq!(content_type_for("noext"), "application/octet-stream");
    }
}
