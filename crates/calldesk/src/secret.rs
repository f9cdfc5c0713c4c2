//! The AMI secret: from `CALLDESK_AMI_SECRET`, else from the OS keyring (Secret Service on
//! Linux), behind [`SecretStore`] so the lookup is tested with [`MemoryStore`].
//!
//! `calldesk ami secret set --host H --user U` reads one line from stdin and stores it under
//! service [`SERVICE`], account `U@H`. The secret is never printed, logged or put in an error:
//! [`Secret`] redacts its `Debug`, and keyring errors that would carry its bytes are reworded
//! (both in `calldesk-secrets`, shared with the desktop).

use std::fmt;
use std::io::{BufRead, IsTerminal, Write};

#[cfg(test)]
use calldesk_secrets::MemoryStore;
pub use calldesk_secrets::{KeyringStore, Secret, SecretStore, StoreError};

/// The environment variable that, when set (and not empty), wins over the keyring.
pub const ENV_VAR: &str = "CALLDESK_AMI_SECRET";

/// The keyring service name of every AMI secret.
pub use calldesk_secrets::AMI_SERVICE as SERVICE;

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

/// The keyring account of an AMI user on a host.
pub use calldesk_secrets::ami_account as account;

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
        return Ok((Secret::new(value), Source::Env));
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
    Ok(Secret::new(secret))
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
        let stored = Secret::new("from-store");
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
        store_secret(&store, "pbx.example.com", "crm", &Secret::new("s3cret")).unwrap();
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
        let err = store_secret(&store, "pbx", "crm", &Secret::new("x")).unwrap_err();
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
