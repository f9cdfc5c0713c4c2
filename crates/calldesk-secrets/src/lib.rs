//! calldesk secrets (layer 1): hub passwords and AMI secrets kept in the OS keyring (Secret
//! Service over D-Bus on Linux) behind [`SecretStore`], with [`MemoryStore`] as its twin in
//! tests (keyring's own mock store does not share an entry between two handles).
//!
//! Invariant: a secret is never printed, logged or put in an error. [`Secret`] redacts its
//! `Debug`, and keyring errors that would carry its bytes are reworded.

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;

/// The keyring service of AMI secrets (account [`ami_account`]), used by the CLI's
/// `calldesk ami secret set` and the desktop's Direct profiles alike.
pub const AMI_SERVICE: &str = "calldesk-ami";

/// The keyring account of an AMI user on a host: `user@host`.
pub fn ami_account(host: &str, user: &str) -> String {
    format!("{user}@{host}")
}

/// A password or key. `Debug` prints `<redacted>`; only [`Secret::expose`] reads it.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Why a store could not answer. Texts never contain the secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// There is no keyring to talk to (no Secret Service running in this session, no D-Bus
    /// session bus, or no backend for this OS).
    #[error("the OS keyring is not available: {0}")]
    Unavailable(String),
    /// The keyring answered, but refused or failed.
    #[error("the OS keyring failed: {0}")]
    Failed(String),
}

/// Somewhere secrets are kept, by service and account.
pub trait SecretStore: Send + Sync + fmt::Debug {
    /// `Ok(None)`: the store works but has no such entry.
    fn get(&self, service: &str, account: &str) -> Result<Option<Secret>, StoreError>;
    fn set(&self, service: &str, account: &str, secret: &Secret) -> Result<(), StoreError>;
    /// Removes the entry; a missing entry is not an error.
    fn delete(&self, service: &str, account: &str) -> Result<(), StoreError>;
    /// What the store is, for messages ("the OS keyring (Secret Service)").
    fn describe(&self) -> &'static str;
}

/// The OS keyring through the `keyring` crate (Secret Service over D-Bus on Linux).
#[derive(Debug, Default)]
pub struct KeyringStore;

#[cfg(all(target_os = "linux", feature = "keyring"))]
impl KeyringStore {
    fn entry(service: &str, account: &str) -> Result<keyring::Entry, StoreError> {
        keyring::Entry::new(service, account).map_err(store_error)
    }
}

/// Maps a keyring error to ours without its payload: `BadEncoding` carries the stored bytes,
/// `Ambiguous` the credentials.
#[cfg(all(target_os = "linux", feature = "keyring"))]
fn store_error(e: keyring::Error) -> StoreError {
    use keyring::Error as K;
    match e {
        K::PlatformFailure(inner) => {
            // dbus-secret-service: `DBus error: …` when the session bus or the
            // org.freedesktop.secrets service cannot be reached, `No DBus session or Secret
            // Service provider found` when it knows there is none.
            let text = inner.to_string();
            if text.starts_with("DBus error") || text.contains("No DBus session") {
                StoreError::Unavailable(format!(
                    "no Secret Service is running in this session ({text})"
                ))
            } else {
                StoreError::Failed(text)
            }
        }
        K::NoStorageAccess(inner) => StoreError::Failed(format!(
            "it is locked or refused access ({inner}); unlock it and try again"
        )),
        K::NoEntry => StoreError::Failed("no such entry".to_owned()),
        K::BadEncoding(_) => StoreError::Failed("the stored secret is not UTF-8".to_owned()),
        K::TooLong(attr, max) => {
            StoreError::Failed(format!("`{attr}` is longer than the keyring's {max} limit"))
        }
        K::Invalid(attr, reason) => StoreError::Failed(format!("invalid {attr}: {reason}")),
        K::Ambiguous(found) => StoreError::Failed(format!(
            "{} entries match; remove the extra ones with your keyring tool",
            found.len()
        )),
        other => StoreError::Failed(other.to_string()),
    }
}

#[cfg(all(target_os = "linux", feature = "keyring"))]
impl SecretStore for KeyringStore {
    fn get(&self, service: &str, account: &str) -> Result<Option<Secret>, StoreError> {
        match Self::entry(service, account)?.get_password() {
            Ok(s) => Ok(Some(Secret(s))),
            Err(keyring::Error::NoEntry) => Ok(None),
            Err(e) => Err(store_error(e)),
        }
    }

    fn set(&self, service: &str, account: &str, secret: &Secret) -> Result<(), StoreError> {
        Self::entry(service, account)?
            .set_password(&secret.0)
            .map_err(store_error)
    }

    fn delete(&self, service: &str, account: &str) -> Result<(), StoreError> {
        match Self::entry(service, account)?.delete_credential() {
            Ok(()) | Err(keyring::Error::NoEntry) => Ok(()),
            Err(e) => Err(store_error(e)),
        }
    }

    fn describe(&self) -> &'static str {
        "the OS keyring (Secret Service)"
    }
}

/// Elsewhere this build has no keyring backend: say so instead of using keyring's mock store,
/// which would silently forget the secret.
#[cfg(not(all(target_os = "linux", feature = "keyring")))]
impl SecretStore for KeyringStore {
    fn get(&self, _: &str, _: &str) -> Result<Option<Secret>, StoreError> {
        Err(StoreError::Unavailable(
            "this build of calldesk has no keyring backend for this OS (the `keyring` feature on Linux)".to_owned(),
        ))
    }

    fn set(&self, service: &str, account: &str, _: &Secret) -> Result<(), StoreError> {
        self.get(service, account).map(|_| ())
    }

    fn delete(&self, service: &str, account: &str) -> Result<(), StoreError> {
        self.get(service, account).map(|_| ())
    }

    fn describe(&self) -> &'static str {
        "the OS keyring"
    }
}

/// Entries by (service, account).
type Entries = HashMap<(String, String), String>;

/// Secrets in memory: tests, and a session that must not touch the OS keyring.
#[derive(Debug, Default)]
pub struct MemoryStore {
    entries: Mutex<Entries>,
    unavailable: Option<String>,
}

impl MemoryStore {
    /// A store that fails like a keyring with no Secret Service.
    pub fn unavailable(reason: &str) -> Self {
        Self {
            entries: Mutex::default(),
            unavailable: Some(reason.to_owned()),
        }
    }

    fn entries(&self) -> Result<std::sync::MutexGuard<'_, Entries>, StoreError> {
        if let Some(reason) = &self.unavailable {
            return Err(StoreError::Unavailable(reason.clone()));
        }
        self.entries
            .lock()
            .map_err(|_| StoreError::Failed("poisoned".to_owned()))
    }
}

impl SecretStore for MemoryStore {
    fn get(&self, service: &str, account: &str) -> Result<Option<Secret>, StoreError> {
        Ok(self
            .entries()?
            .get(&(service.to_owned(), account.to_owned()))
            .cloned()
            .map(Secret))
    }

    fn set(&self, service: &str, account: &str, secret: &Secret) -> Result<(), StoreError> {
        self.entries()?
            .insert((service.to_owned(), account.to_owned()), secret.0.clone());
        Ok(())
    }

    fn delete(&self, service: &str, account: &str) -> Result<(), StoreError> {
        self.entries()?
            .remove(&(service.to_owned(), account.to_owned()));
        Ok(())
    }

    fn describe(&self) -> &'static str {
        "memory"
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn memory_store_keeps_deletes_and_can_be_unavailable() {
        let store = MemoryStore::default();
        assert_eq!(store.get("s", "a").unwrap(), None);
        store.set("s", "a", &Secret::new("hunter2")).unwrap();
        assert_eq!(store.get("s", "a").unwrap(), Some(Secret::new("hunter2")));
        assert_eq!(store.get("s", "b").unwrap(), None);
        store.delete("s", "a").unwrap();
        store.delete("s", "a").unwrap();
        assert_eq!(store.get("s", "a").unwrap(), None);
        assert_eq!(
            format!("{:?}", Secret::new("hunter2")),
            "Secret(<redacted>)"
        );
        let down = MemoryStore::unavailable("no Secret Service");
        assert!(
            matches!(down.get("s", "a"), Err(StoreError::Unavailable(r)) if r == "no Secret Service")
        );
    }
}
