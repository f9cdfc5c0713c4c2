//! The local-folder store (demo, development, a single hub with a big disk): files under one
//! folder, laid out by key; "presigned" URLs point at the hub's own route and carry an
//! HMAC-SHA256 of the key and the expiry, checked by [`LocalStore::verify`].

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac as _};
use sha2::Sha256;
use url::Url;

use crate::{MediaError, ObjectInfo, RecordingKey, Uploaded};

/// The hub route a local URL points at: `{public base}/recordings/{key}?expires=…&signature=…`.
pub const ROUTE_PREFIX: &str = "recordings/";

#[derive(Clone)]
pub struct LocalStore {
    root: PathBuf,
    public_base: Url,
    /// Keyed with the signing key.
    keyed: Hmac<Sha256>,
}

impl std::fmt::Debug for LocalStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalStore")
            .field("root", &self.root)
            .field("public_base", &self.public_base.as_str())
            .finish_non_exhaustive()
    }
}

impl LocalStore {
    /// Recordings under `root`, served at `public_base` (the hub's address as desks reach it),
    /// URLs signed with `signing_key` (at least 32 bytes).
    pub fn new(root: PathBuf, public_base: Url, signing_key: Vec<u8>) -> Result<Self, MediaError> {
        if signing_key.len() < 32 {
            return Err(MediaError::Config(format!(
                "the recordings signing key is {} bytes; at least 32 are needed",
                signing_key.len()
            )));
        }
        if public_base.cannot_be_a_base() {
            return Err(MediaError::Config(format!(
                "`{public_base}` cannot be the base of recording links"
            )));
        }
        let mut public_base = public_base;
        if !public_base.path().ends_with('/') {
            let path = format!("{}/", public_base.path());
            public_base.set_path(&path);
        }
        let keyed = <Hmac<Sha256> as hmac::digest::KeyInit>::new_from_slice(&signing_key)
            .map_err(|e| MediaError::Config(format!("unusable recordings signing key: {e}")))?;
        Ok(Self {
            root,
            public_base,
            keyed,
        })
    }

    /// The file of `key`.
    pub fn path(&self, key: &RecordingKey) -> PathBuf {
        let mut path = self.root.clone();
        path.extend(key.segments());
        path
    }

    pub async fn exists(&self, key: &RecordingKey) -> Result<Option<ObjectInfo>, MediaError> {
        let path = self.path(key);
        match tokio::fs::metadata(&path).await {
            Ok(m) => Ok(Some(ObjectInfo { size: m.len() })),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(MediaError::io(&path, e)),
        }
    }

    /// Copies `file` in under `key`: into a temporary file beside the target, synced, then
    /// renamed, so a reader never sees half a recording and a crash leaves no partial key.
    pub async fn upload_file(
        &self,
        key: &RecordingKey,
        file: &Path,
        _content_type: &str,
    ) -> Result<Uploaded, MediaError> {
        let target = self.path(key);
        let dir = target
            .parent()
            .ok_or_else(|| MediaError::Config(format!("{} has no folder", target.display())))?
            .to_path_buf();
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(|e| MediaError::io(&dir, e))?;
        let temp = dir.join(format!(".upload-{}", uuid::Uuid::new_v4()));
        let copied = async {
            let size = tokio::fs::copy(file, &temp)
                .await
                .map_err(|e| MediaError::io(file, e))?;
            let f = tokio::fs::File::open(&temp)
                .await
                .map_err(|e| MediaError::io(&temp, e))?;
            f.sync_all().await.map_err(|e| MediaError::io(&temp, e))?;
            tokio::fs::rename(&temp, &target)
                .await
                .map_err(|e| MediaError::io(&target, e))?;
            Ok::<_, MediaError>(size)
        }
        .await;
        match copied {
            Ok(size) => Ok(Uploaded { size, parts: 1 }),
            Err(e) => {
                let _ = tokio::fs::remove_file(&temp).await;
                Err(e)
            }
        }
    }

    /// A link to `key` at the hub that works for `expires_in` from `now`.
    pub fn presign_get(
        &self,
        key: &RecordingKey,
        expires_in: Duration,
        now: SystemTime,
    ) -> Result<Url, MediaError> {
        let expires = now
            .checked_add(expires_in)
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .ok_or_else(|| MediaError::Config("the clock is unusable".to_owned()))?
            .as_secs();
        let signature = hex::encode(self.mac(key.as_str(), expires).finalize().into_bytes());
        let mut url = self
            .public_base
            .join(ROUTE_PREFIX)
            .and_then(|u| u.join(key.as_str()))
            .map_err(|e| MediaError::Config(format!("cannot make a recording link: {e}")))?;
        url.query_pairs_mut()
            .append_pair("expires", &expires.to_string())
            .append_pair("signature", &signature);
        Ok(url)
    }

    /// Checks a link's key, expiry and signature (what the hub's route calls); the key when
    /// all hold.
    pub fn verify(
        &self,
        key: &str,
        expires: u64,
        signature: &str,
        now: SystemTime,
    ) -> Result<RecordingKey, MediaError> {
        let key = RecordingKey::parse(key).map_err(|_| MediaError::Forbidden("bad key"))?;
        let expected =
            hex::decode(signature).map_err(|_| MediaError::Forbidden("bad signature"))?;
        self.mac(key.as_str(), expires)
            .verify_slice(&expected)
            .map_err(|_| MediaError::Forbidden("bad signature"))?;
        let now = now
            .duration_since(UNIX_EPOCH)
            .map_err(|_| MediaError::Forbidden("the clock is unusable"))?
            .as_secs();
        if now >= expires {
            return Err(MediaError::Forbidden("the link has expired"));
        }
        Ok(key)
    }

    fn mac(&self, key: &str, expires: u64) -> Hmac<Sha256> {
        // The key cannot hold a newline (see `RecordingKey`): the message is unambiguous.
        let mut mac = self.keyed.clone();
        mac.update(key.as_bytes());
        mac.update(b"\n");
        mac.update(expires.to_string().as_bytes());
        mac
    }
}
