//! The AMI secret: from `CALLDESK_AMI_SECRET`, else from the OS keyring (Secret Service on
//! Linux), behind [`SecretStore`] so the lookup is tested with [`MemoryStore`].
//!
//! `calldesk ami secret set --host H --user U` reads one line from stdin and stores it under
//! service [`SERVICE`], account `U@H`. The secret is never printed, logged or put in an error:
//! [`Secret`] redacts its `Debug`, and keyring errors that would carry its bytes are reworded.

use std::fmt;
use std::io::{BufRead, IsTerminal, Write};

/// The environment variable that, when set (and not empty), wins over the keyring.
pub const ENV_VAR: &str = "CALLDESK_AMI_SECRET";

/// The keyring service name of every AMI secret.
pub const SERVICE: &str = "calldesk-ami";

/// An AMI secret. `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The secret itself, to hand to the AMI client (nowhere else).
    pub fn expose(self) -> String {
        self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Where the secret came from (said when a login is rejected, so the user knows what to fix).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Env,
    Store { service: String, account: String },
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Env => write!(f, "from {ENV_VAR}"),
            Self::Store { service, account } => {
                write!(
                    f,
                    "from the OS keyring, service `{service}`, account `{account}`"
                )
            }
        }
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
pub trait SecretStore {
    /// `Ok(None)`: the store works but has no such entry.
    fn get(&self, service: &str, account: &str) -> Result<Option<Secret>, StoreError>;
    fn set(&self, service: &str, account: &str, secret: &Secret) -> Result<(), StoreError>;
    /// What the store is, for messages ("the OS keyring (Secret Service)").
    fn describe(&self) -> &'static str;
}

/// The OS keyring through the `keyring` crate (Secret Service over D-Bus on Linux).
#[derive(Debug, Default)]
pub struct KeyringStore;

#[cfg(target_os = "linux")]
impl KeyringStore {
    fn entry(service: &str, account: &str) -> Result<keyring::Entry, StoreError> {
        keyring::Entry::new(service, account).map_err(store_error)
    }
}

/// Maps a keyring error to ours without its payload: `BadEncoding` carries the stored bytes,
/// `Ambiguous` the credentials.
#[cfg(target_os = "linux")]
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

#[cfg(target_os = "linux")]
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

    fn describe(&self) -> &'static str {
        "the OS keyring (Secret Service)"
    }
}

/// Elsewhere this build has no keyring backend: say so instead of using keyring's mock store,
/// which would silently forget the secret.
#[cfg(not(target_os = "linux"))]
impl SecretStore for KeyringStore {
    fn get(&self, _: &str, _: &str) -> Result<Option<Secret>, StoreError> {
        Err(StoreError::Unavailable(
            "this build of calldesk has no keyring backend for this OS".to_owned(),
        ))
    }

    fn set(&self, service: &str, account: &str, _: &Secret) -> Result<(), StoreError> {
        self.get(service, account).map(|_| ())
    }

    fn describe(&self) -> &'static str {
        "the OS keyring"
    }
}

/// Secrets in memory (tests).
#[cfg(test)]
#[derive(Debug, Default)]
pub struct MemoryStore {
    entries: std::sync::Mutex<std::collections::HashMap<(String, String), String>>,
    unavailable: Option<String>,
}

#[cfg(test)]
impl MemoryStore {
    /// A store that fails like a keyring with no Secret Service.
    pub fn unavailable(reason: &str) -> Self {
        Self {
            entries: Default::default(),
            unavailable: Some(reason.to_owned()),
        }
    }

    fn check(&self) -> Result<(), StoreError> {
        match &self.unavailable {
            Some(reason) => Err(StoreError::Unavailable(reason.clone())),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
impl SecretStore for MemoryStore {
    fn get(&self, service: &str, account: &str) -> Result<Option<Secret>, StoreError> {
        self.check()?;
        let entries = self
            .entries
            .lock()
            .map_err(|_| StoreError::Failed("poisoned".to_owned()))?;
        Ok(entries
            .get(&(service.to_owned(), account.to_owned()))
            .cloned()
            .map(Secret))
    }

    fn set(&self, service: &str, account: &str, secret: &Secret) -> Result<(), StoreError> {
        self.check()?;
        self.entries
            .lock()
            .map_err(|_| StoreError::Failed("poisoned".to_owned()))?
            .insert((service.to_owned(), account.to_owned()), secret.0.clone());
        Ok(())
    }

    fn describe(&self) -> &'static str {
        "memory"
    }
}

/// The keyring account of an AMI user on a host.
pub fn account(host: &str, user: &str) -> String {
    format!("{user}@{host}")
}

/// Why there is no secret. Each message says both ways to provide one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LookupError {
    #[error(
        "no AMI secret for `{account}`: set {ENV_VAR} or run `calldesk ami secret set --host {host} --user {user}`"
    )]
    NotFound {
        account: String,
        host: String,
        user: String,
    },
    #[error(
        "no AMI secret: {ENV_VAR} is not set and {store}; set {ENV_VAR}, or start a Secret Service (e.g. gnome-keyring) in your desktop session and run `calldesk ami secret set --host {host} --user {user}`"
    )]
    Store {
        store: StoreError,
        host: String,
        user: String,
    },
}

/// The secret of `user` on `host`: `env` (the value of [`ENV_VAR`]) when set and not empty,
/// else the store's entry `user@host` of service [`SERVICE`].
pub fn lookup(
    env: Option<String>,
    store: &dyn SecretStore,
    host: &str,
    user: &str,
) -> Result<(Secret, Source), LookupError> {
    if let Some(value) = env.filter(|v| !v.is_empty()) {
        return Ok((Secret(value), Source::Env));
    }
    let account = account(host, user);
    match store.get(SERVICE, &account) {
        Ok(Some(secret)) => Ok((
            secret,
            Source::Store {
                service: SERVICE.to_owned(),
                account,
            },
        )),
        Ok(None) => Err(LookupError::NotFound {
            account,
            host: host.to_owned(),
            user: user.to_owned(),
        }),
        Err(store) => Err(LookupError::Store {
            store,
            host: host.to_owned(),
            user: user.to_owned(),
        }),
    }
}

/// The secret from the environment or the OS keyring.
pub fn from_env_or_keyring(host: &str, user: &str) -> Result<(Secret, Source), LookupError> {
    lookup(std::env::var(ENV_VAR).ok(), &KeyringStore, host, user)
}

/// Reads the secret: the first line of `input`, without its line ending.
pub fn read_secret(input: &mut dyn BufRead) -> anyhow::Result<Secret> {
    let mut line = String::new();
    input
        .read_line(&mut line)
        .map_err(|e| anyhow::anyhow!("cannot read the secret from stdin: {e}"))?;
    let secret = line.trim_end_matches(['\r', '\n']);
    anyhow::ensure!(
        !secret.is_empty(),
        "no secret on stdin: type it (or pipe it) as one line, e.g. `printf '%s\\n' \"$SECRET\" | calldesk ami secret set …`"
    );
    anyhow::ensure!(
        !secret.chars().any(char::is_control),
        "the secret contains a control character; AMI secrets are one line of printable text"
    );
    Ok(Secret(secret.to_owned()))
}

#[derive(clap::Args)]
pub struct SetArgs {
    /// The Asterisk host, as given to `ami tail --host`.
    #[arg(long)]
    host: String,
    /// The AMI user (a `[section]` of manager.conf).
    #[arg(long)]
    user: String,
}

/// `calldesk ami secret set`: stdin → the OS keyring.
pub fn run_set(args: &SetArgs) -> anyhow::Result<()> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprint!("AMI secret for {}: ", account(&args.host, &args.user));
        let _ = std::io::stderr().flush();
    }
    let secret = read_secret(&mut stdin.lock())?;
    store_secret(&KeyringStore, &args.host, &args.user, &secret)?;
    Ok(())
}

/// Stores `secret` and says where it went (on stderr).
fn store_secret(
    store: &dyn SecretStore,
    host: &str,
    user: &str,
    secret: &Secret,
) -> anyhow::Result<()> {
    let account = account(host, user);
    store.set(SERVICE, &account, secret).map_err(|e| match e {
        StoreError::Unavailable(_) => anyhow::anyhow!(
            "cannot store the AMI secret: {e}; start a Secret Service (e.g. gnome-keyring) in your desktop session, or set {ENV_VAR} where you run `calldesk ami tail`"
        ),
        StoreError::Failed(_) => anyhow::anyhow!("cannot store the AMI secret: {e}"),
    })?;
    eprintln!(
        "stored the AMI secret for `{account}` in {}: service `{SERVICE}`, account `{account}`",
        store.describe()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn the_environment_wins_over_the_store() {
        let store = MemoryStore::default();
        let stored = Secret("from-store".to_owned());
        store
            .set(SERVICE, "calldesk@pbx", &stored)
            .expect("memory store");
        let (secret, source) =
            lookup(Some("from-env".to_owned()), &store, "pbx", "calldesk").unwrap();
        assert_eq!(secret.expose(), "from-env");
        assert_eq!(source, Source::Env);
        // An empty variable counts as unset.
        let (secret, source) = lookup(Some(String::new()), &store, "pbx", "calldesk").unwrap();
        assert_eq!(secret, stored);
        assert_eq!(
            source.to_string(),
            "from the OS keyring, service `calldesk-ami`, account `calldesk@pbx`"
        );
    }

    #[test]
    fn the_store_is_keyed_by_user_at_host() {
        let store = MemoryStore::default();
        store_secret(
            &store,
            "pbx.example.com",
            "crm",
            &Secret("s3cret".to_owned()),
        )
        .unwrap();
        let (secret, _) = lookup(None, &store, "pbx.example.com", "crm").unwrap();
        assert_eq!(secret.expose(), "s3cret");
        let err = lookup(None, &store, "other.example.com", "crm").unwrap_err();
        assert_eq!(
            err.to_string(),
            "no AMI secret for `crm@other.example.com`: set CALLDESK_AMI_SECRET or run `calldesk ami secret set --host other.example.com --user crm`"
        );
    }

    #[test]
    fn an_unavailable_keyring_names_both_ways() {
        let store = MemoryStore::unavailable("no Secret Service is running in this session");
        let text = lookup(None, &store, "pbx", "crm").unwrap_err().to_string();
        assert!(text.contains("CALLDESK_AMI_SECRET is not set"), "{text}");
        assert!(text.contains("no Secret Service is running"), "{text}");
        assert!(
            text.contains("calldesk ami secret set --host pbx --user crm"),
            "{text}"
        );
        let err = store_secret(&store, "pbx", "crm", &Secret("x".to_owned())).unwrap_err();
        assert!(err.to_string().contains("start a Secret Service"), "{err}");
    }

    #[test]
    fn the_secret_is_one_line_and_never_shown() {
        let secret = read_secret(&mut "hunter2\r\nignored\n".as_bytes()).unwrap();
        assert_eq!(format!("{secret:?}"), "Secret(<redacted>)");
        assert_eq!(secret.expose(), "hunter2");
        assert!(read_secret(&mut "\n".as_bytes()).is_err());
        assert!(read_secret(&mut "".as_bytes()).is_err());
        assert!(read_secret(&mut "a\tb\n".as_bytes()).is_err());
    }
}
