//! The hub's settings: a TOML file (optional) overlaid by environment variables. Secrets come
//! only from the environment (`CALLDESK_JWT_SECRET`, the per-tenant AMI secrets and Mango salts
//! named in the database) and never appear in `Debug` output or logs.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use calldesk_media::{StoreSettings, Url};
use serde::Deserialize;

/// Why the hub cannot start as configured.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the config file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("the config file {path} is not valid TOML for the hub: {message}")]
    Parse { path: String, message: String },
    #[error("{0} is not set; {1}")]
    Missing(&'static str, &'static str),
    #[error("{name} = {value:?} is not valid: {why}")]
    Invalid {
        name: &'static str,
        value: String,
        why: &'static str,
    },
    #[error("{0}")]
    Recordings(String),
}

/// A secret string: compared and used, never printed.
pub use calldesk_secrets::Secret;

/// Where per-tenant secrets (AMI secrets, Mango salts) are read: the process environment, with
/// optional overrides (tests, embedding).
#[derive(Clone, Default)]
pub struct SecretEnv {
    overrides: std::collections::HashMap<String, String>,
}

impl SecretEnv {
    /// Overrides `name` (tests set secrets without touching the process environment).
    pub fn with(mut self, name: &str, value: &str) -> Self {
        self.overrides.insert(name.to_owned(), value.to_owned());
        self
    }

    /// The secret in variable `name`, `None` when unset or empty.
    pub fn get(&self, name: &str) -> Option<String> {
        self.overrides
            .get(name)
            .cloned()
            .or_else(|| std::env::var(name).ok())
            .filter(|v| !v.is_empty())
    }
}

impl std::fmt::Debug for SecretEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretEnv")
            .field("overrides", &self.overrides.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// Everything the hub needs to run.
#[derive(Debug, Clone)]
pub struct HubConfig {
    /// `CALLDESK_BIND` / `bind`; default `127.0.0.1:8080`.
    pub bind: SocketAddr,
    /// `DATABASE_URL` / `database_url`.
    pub database_url: Secret,
    /// `CALLDESK_JWT_SECRET` (at least 32 bytes), environment only.
    pub jwt_secret: Secret,
    /// How long a login token lives (`token_ttl_secs`, default 12 h: one shift).
    pub token_ttl: Duration,
    /// Origins allowed by CORS (`CALLDESK_CORS_ORIGINS`, comma-separated / `cors_origins`); empty:
    /// no cross-origin browser access (the desktop app does not need it).
    pub cors_origins: Vec<String>,
    /// Largest request body accepted (`body_limit_bytes`, default 256 KiB).
    pub body_limit: usize,
    /// Logins per minute per tenant+login and per client address (`login_per_minute`, 10).
    pub login_per_minute: u32,
    /// Machine-API requests per second per clientId (`machine_per_second`, 5).
    pub machine_per_second: u32,
    /// Messages buffered per WebSocket client before it is considered slow and gets a fresh
    /// snapshot instead (`ws_buffer`, 1024).
    pub ws_buffer: usize,
    /// This replica's name in logs and in LISTEN/NOTIFY payloads (`CALLDESK_REPLICA`, default a
    /// random id).
    pub replica: String,
    /// How often a replica tries to take over PBX connections no replica holds (`lease_every_ms`).
    pub lease_every: Duration,
    /// Where call controls and commands to Mango go (`mango_api_url`, default Mango's own).
    pub mango_api_url: Option<String>,
    /// How long processed webhooks stay in the inbox (`inbox_retention_hours`, default 7 days);
    /// the replica holding a tenant deletes older ones every hour.
    pub inbox_retention: Duration,
    /// Where the per-tenant secrets named in the database are read.
    pub secrets: SecretEnv,
    /// Where recordings are kept: S3 when `CALLDESK_S3_BUCKET` is set (see
    /// `calldesk_media::ENV_VARS`), else the folder `recordings_dir` (default `recordings`)
    /// served by this hub at `CALLDESK_PUBLIC_URL` / `public_url` (default `http://<bind>`),
    /// its links signed with a key derived from `CALLDESK_JWT_SECRET`.
    pub recordings: StoreSettings,
    /// How long a replica holds a recording it works on before another may take it over
    /// (`recording_lease_secs`, default 60; renewed every third of it while working).
    pub recording_lease: Duration,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    bind: Option<String>,
    database_url: Option<String>,
    token_ttl_secs: Option<u64>,
    cors_origins: Option<Vec<String>>,
    body_limit_bytes: Option<usize>,
    login_per_minute: Option<u32>,
    machine_per_second: Option<u32>,
    ws_buffer: Option<usize>,
    replica: Option<String>,
    lease_every_ms: Option<u64>,
    mango_api_url: Option<String>,
    inbox_retention_hours: Option<u64>,
    public_url: Option<String>,
    recordings_dir: Option<PathBuf>,
    recording_lease_secs: Option<u64>,
}

impl HubConfig {
    /// Settings for tests: loopback port 0, the given database, a fixed secret.
    pub fn for_tests(database_url: &str) -> Self {
        let jwt_secret = Secret::new("test-secret-test-secret-test-secret!");
        let replica = random_replica();
        let recordings = StoreSettings::Local {
            root: std::env::temp_dir().join(format!("calldesk-hub-recordings-{replica}")),
            public_base: Url::parse("http://127.0.0.1:8080/").unwrap_or_else(|_| unreachable!()),
            signing_key: link_key(&jwt_secret),
        };
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            database_url: Secret::new(database_url),
            jwt_secret,
            token_ttl: Duration::from_secs(3600),
            cors_origins: Vec::new(),
            body_limit: 256 * 1024,
            login_per_minute: 10,
            machine_per_second: 5,
            ws_buffer: 1024,
            replica,
            lease_every: Duration::from_millis(500),
            mango_api_url: None,
            inbox_retention: Duration::from_secs(7 * 24 * 3600),
            secrets: SecretEnv::default(),
            recordings,
            recording_lease: Duration::from_secs(60),
        }
    }

    /// Reads `file` (if given) and overlays the environment (`get` looks a variable up; the
    /// real one is `|k| std::env::var(k).ok()`).
    pub fn load(
        file: Option<&Path>,
        get: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let fc: FileConfig = match file {
            None => FileConfig::default(),
            Some(path) => {
                let shown = path.display().to_string();
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: shown.clone(),
                    source,
                })?;
                toml::from_str(&text).map_err(|e| ConfigError::Parse {
                    path: shown,
                    message: e.message().to_owned(),
                })?
            }
        };
        let bind_text = get("CALLDESK_BIND")
            .or(fc.bind)
            .unwrap_or_else(|| "127.0.0.1:8080".to_owned());
        let bind = bind_text.parse().map_err(|_| ConfigError::Invalid {
            name: "CALLDESK_BIND",
            value: bind_text.clone(),
            why: "expected host:port, e.g. 0.0.0.0:8080",
        })?;
        let database_url = get("DATABASE_URL")
            .or(fc.database_url)
            .ok_or(ConfigError::Missing(
                "DATABASE_URL",
                "set it to the hub's PostgreSQL, e.g. postgres://calldesk@db/calldesk",
            ))?;
        let jwt_secret = get("CALLDESK_JWT_SECRET").ok_or(ConfigError::Missing(
            "CALLDESK_JWT_SECRET",
            "set it to a random string of at least 32 bytes (e.g. `openssl rand -hex 32`); every replica needs the same one",
        ))?;
        if jwt_secret.len() < 32 {
            return Err(ConfigError::Invalid {
                name: "CALLDESK_JWT_SECRET",
                value: "<redacted>".to_owned(),
                why: "must be at least 32 bytes long",
            });
        }
        let cors_origins = match get("CALLDESK_CORS_ORIGINS") {
            Some(list) => list
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
            None => fc.cors_origins.unwrap_or_default(),
        };
        for origin in &cors_origins {
            if !(origin.starts_with("http://") || origin.starts_with("https://"))
                || origin.chars().any(char::is_control)
            {
                return Err(ConfigError::Invalid {
                    name: "CALLDESK_CORS_ORIGINS",
                    value: origin.clone(),
                    why: "each origin must be an http(s) URL such as https://crm.example.com",
                });
            }
        }
        let positive = |name: &'static str, v: Option<u64>, default: u64| match v {
            Some(0) => Err(ConfigError::Invalid {
                name,
                value: "0".to_owned(),
                why: "must be positive",
            }),
            Some(v) => Ok(v),
            None => Ok(default),
        };
        let public_text = get("CALLDESK_PUBLIC_URL")
            .or(fc.public_url)
            .unwrap_or_else(|| format!("http://{bind}/"));
        let public_url = Url::parse(&public_text)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && !u.cannot_be_a_base())
            .ok_or_else(|| ConfigError::Invalid {
                name: "CALLDESK_PUBLIC_URL",
                value: public_text.clone(),
                why: "expected the hub's address as desks reach it, e.g. https://hub.example.com/",
            })?;
        let jwt_secret = Secret::new(jwt_secret);
        let recordings = StoreSettings::from_env(
            &get,
            fc.recordings_dir
                .unwrap_or_else(|| PathBuf::from("recordings")),
            public_url,
            link_key(&jwt_secret),
        )
        .map_err(|e| ConfigError::Recordings(e.to_string()))?;
        let to_u32 = |v: u64| u32::try_from(v).unwrap_or(u32::MAX);
        let to_usize = |v: u64| usize::try_from(v).unwrap_or(usize::MAX);
        Ok(Self {
            bind,
            database_url: Secret::new(database_url),
            jwt_secret,
            token_ttl: Duration::from_secs(positive(
                "token_ttl_secs",
                fc.token_ttl_secs,
                12 * 3600,
            )?),
            cors_origins,
            body_limit: to_usize(positive(
                "body_limit_bytes",
                fc.body_limit_bytes.map(|v| v as u64),
                256 * 1024,
            )?),
            login_per_minute: to_u32(positive(
                "login_per_minute",
                fc.login_per_minute.map(u64::from),
                10,
            )?),
            machine_per_second: to_u32(positive(
                "machine_per_second",
                fc.machine_per_second.map(u64::from),
                5,
            )?),
            ws_buffer: to_usize(positive("ws_buffer", fc.ws_buffer.map(|v| v as u64), 1024)?),
            replica: get("CALLDESK_REPLICA")
                .or(fc.replica)
                .unwrap_or_else(random_replica),
            lease_every: Duration::from_millis(positive(
                "lease_every_ms",
                fc.lease_every_ms,
                2000,
            )?),
            mango_api_url: fc.mango_api_url,
            inbox_retention: Duration::from_secs(
                positive("inbox_retention_hours", fc.inbox_retention_hours, 7 * 24)?
                    .saturating_mul(3600),
            ),
            secrets: SecretEnv::default(),
            recordings,
            recording_lease: Duration::from_secs(positive(
                "recording_lease_secs",
                fc.recording_lease_secs,
                60,
            )?),
        })
    }
}

/// The key that signs local recording links: derived from the JWT secret (every replica has
/// the same), never the secret itself.
fn link_key(jwt_secret: &Secret) -> Vec<u8> {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(b"calldesk recording links\0");
    h.update(jwt_secret.expose().as_bytes());
    h.finalize().to_vec()
}

fn random_replica() -> String {
    format!("hub-{:08x}", rand::random::<u32>())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn environment_overrides_the_file_and_secrets_are_required_and_redacted() {
        let dir = std::env::temp_dir().join(format!("calldesk-hub-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("hub.toml");
        std::fs::write(
            &file,
            "bind = \"0.0.0.0:9000\"\ndatabase_url = \"postgres://file/db\"\nws_buffer = 64\ninbox_retention_hours = 48\n",
        )
        .unwrap();
        let secret = "s".repeat(32);
        let c = HubConfig::load(
            Some(&file),
            env(&[
                ("CALLDESK_JWT_SECRET", &secret),
                ("CALLDESK_BIND", "127.0.0.1:7000"),
            ]),
        )
        .unwrap();
        assert_eq!(c.bind.to_string(), "127.0.0.1:7000");
        assert_eq!(c.database_url.expose(), "postgres://file/db");
        assert_eq!(c.ws_buffer, 64);
        assert_eq!(c.inbox_retention, Duration::from_secs(48 * 3600));
        assert!(!format!("{c:?}").contains(&secret));

        let missing = HubConfig::load(Some(&file), env(&[])).unwrap_err();
        assert!(
            missing
                .to_string()
                .contains("CALLDESK_JWT_SECRET is not set")
        );
        let short =
            HubConfig::load(Some(&file), env(&[("CALLDESK_JWT_SECRET", "short")])).unwrap_err();
        assert!(short.to_string().contains("at least 32 bytes"));
        std::fs::write(&file, "bnd = 1\n").unwrap();
        let typo =
            HubConfig::load(Some(&file), env(&[("CALLDESK_JWT_SECRET", &secret)])).unwrap_err();
        assert!(typo.to_string().contains("not valid TOML"), "{typo}");

        // Recordings: a local folder served at the public URL unless a bucket is named.
        std::fs::write(
            &file,
            "database_url = \"postgres://file/db\"\nrecordings_dir = \"/srv/rec\"\n",
        )
        .unwrap();
        let c = HubConfig::load(Some(&file), env(&[("CALLDESK_JWT_SECRET", &secret)])).unwrap();
        let shown = format!("{:?}", c.recordings);
        assert!(
            shown.contains("/srv/rec") && shown.contains("http://127.0.0.1:8080/"),
            "{shown}"
        );
        let bad_url = HubConfig::load(
            Some(&file),
            env(&[
                ("CALLDESK_JWT_SECRET", &secret),
                ("CALLDESK_PUBLIC_URL", "hub.example.com"),
            ]),
        )
        .unwrap_err();
        assert!(
            bad_url.to_string().contains("CALLDESK_PUBLIC_URL"),
            "{bad_url}"
        );
        let no_keys = HubConfig::load(
            Some(&file),
            env(&[
                ("CALLDESK_JWT_SECRET", &secret),
                ("CALLDESK_S3_BUCKET", "calls"),
            ]),
        )
        .unwrap_err();
        assert!(
            no_keys.to_string().contains("AWS_ACCESS_KEY_ID"),
            "{no_keys}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
