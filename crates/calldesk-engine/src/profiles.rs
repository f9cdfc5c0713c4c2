//! Connection profiles: what the first-run wizard creates and the profile switcher lists.
//!
//! The settings live in `profiles.json` in the data folder (written atomically: a temp file,
//! then a rename); the secret of each profile (hub password, AMI secret) lives only in the
//! [`SecretStore`] — the OS keyring in the app. AMI secrets use the same service and account as
//! `calldesk ami secret set` (`calldesk-ami`, `user@host`), so one entry serves both.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use calldesk_secrets::{AMI_SERVICE, Secret, SecretStore, StoreError, ami_account};
use serde::{Deserialize, Serialize};

use crate::{AmiCredentials, EngineConfig, HubProfile, ProfileConfig, Seat};

/// The keyring service of hub passwords (account: `login@tenant@hub address`).
pub const HUB_SERVICE: &str = "calldesk-hub";
/// The demo's call interval.
const DEMO_EVERY: Duration = Duration::from_secs(6);

fn hub_account(url: &str, tenant: &str, login: &str) -> String {
    format!("{login}@{tenant}@{}", url.trim().trim_end_matches('/'))
}

/// What a profile connects to; everything but the secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    tag = "kind",
    rename_all = "snake_case",
    rename_all_fields = "camelCase"
)]
pub enum ProfileSettings {
    /// The built-in simulator.
    Demo { extension: String, supervisor: bool },
    /// The app's own AMI session.
    Direct {
        host: String,
        port: u16,
        username: String,
        extension: String,
        supervisor: bool,
        /// A hub this desk reports its calls and after-call work to (optional); its password
        /// is kept like a hub profile's (`calldesk-hub`, `login@tenant@address`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        report_to: Option<HubLink>,
    },
    /// The calldesk hub.
    Hub {
        url: String,
        tenant: String,
        login: String,
    },
}

/// Where and as whom a Direct desk reports to a hub.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HubLink {
    pub url: String,
    pub tenant: String,
    pub login: String,
}

impl HubLink {
    fn validate(&self) -> Result<(), ProfileError> {
        text(&self.url, "the hub address", 2048)?;
        let parsed = reqwest::Url::parse(self.url.trim()).map_err(|e| {
            invalid(format!(
                "the hub address `{}` is not a URL ({e}); write it as https://hub.example.com",
                self.url
            ))
        })?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
            return Err(invalid(format!(
                "the hub address `{}` must start with https:// (or http:// on a trusted network) and name a host",
                self.url
            )));
        }
        calldesk_calls::TenantId::new(self.tenant.trim())
            .map_err(|e| invalid(format!("the tenant `{}`: {e}", self.tenant)))?;
        text(&self.login, "the login", 64)
    }

    fn account(&self) -> String {
        hub_account(&self.url, &self.tenant, &self.login)
    }
}

/// A named profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Profile {
    /// Stable id (letters, digits, `-`, `_`).
    pub id: String,
    /// What the switcher shows.
    pub name: String,
    pub settings: ProfileSettings,
}

/// `profiles.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProfileList {
    pub active: Option<String>,
    pub profiles: Vec<Profile>,
}

/// Why a profile cannot be saved or used; the message says what to fix.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error("{0}")]
    Invalid(String),
    #[error("no profile `{0}`")]
    NotFound(String),
    #[error(
        "the profile `{0}` has no saved password or secret; open it in the profile editor and enter it again"
    )]
    NoSecret(String),
    #[error(
        "the OS keyring cannot keep the secret: {0}; start a Secret Service (e.g. gnome-keyring) in your desktop session"
    )]
    Keyring(#[from] StoreError),
    #[error("cannot read or write {path}: {source}")]
    File {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is damaged ({source}); fix or delete it and create the profile again")]
    Damaged {
        path: PathBuf,
        source: serde_json::Error,
    },
}

impl ProfileError {
    /// Stable code for the UI.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Invalid(_) => "invalid_profile",
            Self::NotFound(_) => "no_such_profile",
            Self::NoSecret(_) => "no_secret",
            Self::Keyring(_) => "keyring_unavailable",
            Self::File { .. } | Self::Damaged { .. } => "profiles_unreadable",
        }
    }
}

fn invalid(what: impl Into<String>) -> ProfileError {
    ProfileError::Invalid(what.into())
}

/// One line of printable text, at most `max` characters, not empty.
fn text(value: &str, what: &str, max: usize) -> Result<(), ProfileError> {
    if value.trim().is_empty() {
        return Err(invalid(format!("{what} is empty")));
    }
    if value.chars().count() > max || value.chars().any(char::is_control) {
        return Err(invalid(format!(
            "{what} must be one line of at most {max} characters"
        )));
    }
    Ok(())
}

fn host_name(host: &str) -> Result<(), ProfileError> {
    text(host, "the PBX host", 253)?;
    if !host
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
    {
        return Err(invalid(format!(
            "the PBX host `{host}` is not a host name or IP address"
        )));
    }
    Ok(())
}

impl Profile {
    /// Checks every field (the wizard shows the message next to the form).
    pub fn validate(&self) -> Result<(), ProfileError> {
        if self.id.is_empty()
            || self.id.len() > 64
            || !self
                .id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(invalid(format!(
                "the profile id `{}` must be 1–64 letters, digits, `-` or `_`",
                self.id
            )));
        }
        text(&self.name, "the profile name", 80)?;
        let seat = |extension: &str| {
            calldesk_wire::extension(extension, "your extension")
                .map(|_| ())
                .map_err(|e| invalid(e.to_string()))
        };
        match &self.settings {
            ProfileSettings::Demo { extension, .. } => seat(extension),
            ProfileSettings::Direct {
                host,
                port,
                username,
                extension,
                report_to,
                ..
            } => {
                host_name(host)?;
                if *port == 0 {
                    return Err(invalid("the AMI port must be 1–65535 (usually 5038)"));
                }
                text(username, "the AMI user", 64)?;
                if let Some(link) = report_to {
                    link.validate()?;
                }
                seat(extension)
            }
            ProfileSettings::Hub { url, tenant, login } => HubLink {
                url: url.clone(),
                tenant: tenant.clone(),
                login: login.clone(),
            }
            .validate(),
        }
    }

    /// Where this profile's secret is kept (`None`: the demo needs none).
    fn secret_key(&self) -> Option<(&'static str, String)> {
        match &self.settings {
            ProfileSettings::Demo { .. } => None,
            ProfileSettings::Direct { host, username, .. } => {
                Some((AMI_SERVICE, ami_account(host, username)))
            }
            ProfileSettings::Hub { url, tenant, login } => {
                Some((HUB_SERVICE, hub_account(url, tenant, login)))
            }
        }
    }
}

/// The profiles of one data folder, their secrets in `secrets`.
#[derive(Debug, Clone)]
pub struct Profiles {
    path: PathBuf,
    secrets: Arc<dyn SecretStore>,
}

impl Profiles {
    pub fn new(data_dir: &Path, secrets: Arc<dyn SecretStore>) -> Self {
        Self {
            path: data_dir.join("profiles.json"),
            secrets,
        }
    }

    /// The saved profiles (none yet: an empty list, and the UI opens the wizard).
    pub fn list(&self) -> Result<ProfileList, ProfileError> {
        match std::fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|source| ProfileError::Damaged {
                path: self.path.clone(),
                source,
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(ProfileList::default()),
            Err(source) => Err(ProfileError::File {
                path: self.path.clone(),
                source,
            }),
        }
    }

    fn write(&self, list: &ProfileList) -> Result<(), ProfileError> {
        let file_err = |source| ProfileError::File {
            path: self.path.clone(),
            source,
        };
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(file_err)?;
        }
        let tmp = self.path.with_extension("json.tmp");
        let json = serde_json::to_vec_pretty(list).map_err(|e| invalid(e.to_string()))?;
        {
            use std::io::Write;
            let mut f = std::fs::File::create(&tmp).map_err(file_err)?;
            f.write_all(&json).map_err(file_err)?;
            f.sync_all().map_err(file_err)?;
        }
        std::fs::rename(&tmp, &self.path).map_err(file_err)
    }

    /// Saves `profile` (replacing one with the same id) and, when given, its secret (and the
    /// password of the hub a Direct profile reports to). Secrets are stored first: a profile is
    /// never saved pointing at a secret that is not there.
    pub fn save(
        &self,
        profile: Profile,
        secret: Option<&Secret>,
        hub_password: Option<&Secret>,
    ) -> Result<(), ProfileError> {
        profile.validate()?;
        let printable = |secret: &Secret| {
            if secret.expose().is_empty() || secret.expose().chars().any(char::is_control) {
                return Err(invalid(
                    "the password or secret must be one line of printable text",
                ));
            }
            Ok(())
        };
        if let (Some((service, account)), Some(secret)) = (profile.secret_key(), secret) {
            printable(secret)?;
            self.secrets.set(service, &account, secret)?;
        }
        if let (
            ProfileSettings::Direct {
                report_to: Some(link),
                ..
            },
            Some(password),
        ) = (&profile.settings, hub_password)
        {
            printable(password)?;
            self.secrets.set(HUB_SERVICE, &link.account(), password)?;
        }
        let mut list = self.list()?;
        match list.profiles.iter_mut().find(|p| p.id == profile.id) {
            Some(old) => *old = profile,
            None => list.profiles.push(profile),
        }
        self.write(&list)
    }

    /// Makes `id` the profile the app starts with.
    pub fn activate(&self, id: &str) -> Result<(), ProfileError> {
        let mut list = self.list()?;
        if !list.profiles.iter().any(|p| p.id == id) {
            return Err(ProfileError::NotFound(id.to_owned()));
        }
        list.active = Some(id.to_owned());
        self.write(&list)
    }

    /// Removes `id` and its secret.
    pub fn delete(&self, id: &str) -> Result<(), ProfileError> {
        let mut list = self.list()?;
        let Some(at) = list.profiles.iter().position(|p| p.id == id) else {
            return Err(ProfileError::NotFound(id.to_owned()));
        };
        let removed = list.profiles.remove(at);
        if list.active.as_deref() == Some(id) {
            list.active = None;
        }
        self.write(&list)?;
        // An AMI entry may serve another profile (or the CLI) on the same user@host.
        let shared = list
            .profiles
            .iter()
            .any(|p| p.secret_key() == removed.secret_key());
        if let (Some((service, account)), false) = (removed.secret_key(), shared) {
            self.secrets.delete(service, &account)?;
        }
        Ok(())
    }

    /// The engine configuration of profile `id`, its secret read from the store. `base` gives
    /// what the profile does not (data folder, region, dialplan).
    pub fn engine_config(
        &self,
        id: &str,
        base: EngineConfig,
    ) -> Result<EngineConfig, ProfileError> {
        let list = self.list()?;
        let profile = list
            .profiles
            .iter()
            .find(|p| p.id == id)
            .ok_or_else(|| ProfileError::NotFound(id.to_owned()))?;
        let secret = match profile.secret_key() {
            Some((service, account)) => Some(
                self.secrets
                    .get(service, &account)?
                    .ok_or_else(|| ProfileError::NoSecret(profile.name.clone()))?,
            ),
            None => None,
        };
        let (profile_config, seat) = match (&profile.settings, secret) {
            (
                ProfileSettings::Demo {
                    extension,
                    supervisor,
                },
                _,
            ) => (
                ProfileConfig::Demo {
                    // The shell's demo interval (tests speed it up), else the default.
                    every: match base.profile {
                        ProfileConfig::Demo { every } => every,
                        _ => DEMO_EVERY,
                    },
                },
                Seat {
                    extension: Some(extension.clone()),
                    supervisor: *supervisor,
                },
            ),
            (
                ProfileSettings::Direct {
                    host,
                    port,
                    username,
                    extension,
                    supervisor,
                    report_to,
                },
                Some(secret),
            ) => (
                ProfileConfig::Direct {
                    addr: format!("{host}:{port}"),
                    credentials: AmiCredentials {
                        username: username.clone(),
                        secret: secret.expose().to_owned(),
                    },
                    report_to: match report_to {
                        Some(link) => Some(HubProfile {
                            url: link.url.trim().to_owned(),
                            tenant: link.tenant.trim().to_owned(),
                            login: link.login.clone(),
                            password: self.secrets.get(HUB_SERVICE, &link.account())?.ok_or_else(
                                || {
                                    invalid(format!(
                                        "the profile `{}` reports to the hub {} but has no saved hub password; enter it again in the profile",
                                        profile.name, link.url
                                    ))
                                },
                            )?,
                            extra_root_certs_pem: None,
                        }),
                        None => None,
                    },
                },
                Seat {
                    extension: Some(extension.clone()),
                    supervisor: *supervisor,
                },
            ),
            (ProfileSettings::Hub { url, tenant, login }, Some(secret)) => (
                ProfileConfig::Hub(HubProfile {
                    url: url.trim().to_owned(),
                    tenant: tenant.trim().to_owned(),
                    login: login.clone(),
                    password: secret,
                    extra_root_certs_pem: None,
                }),
                Seat::default(),
            ),
            (_, None) => return Err(ProfileError::NoSecret(profile.name.clone())),
        };
        Ok(EngineConfig {
            profile: profile_config,
            seat,
            ..base
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;
    use calldesk_secrets::MemoryStore;

    fn base(dir: &Path) -> EngineConfig {
        EngineConfig {
            profile: ProfileConfig::Demo {
                every: Duration::from_secs(1),
            },
            data_dir: dir.to_owned(),
            region: "RU".into(),
            dialplan: crate::DialplanConfig::default(),
            seat: Seat::default(),
        }
    }

    fn hub() -> Profile {
        Profile {
            id: "office".into(),
            name: "Office hub".into(),
            settings: ProfileSettings::Hub {
                url: "https://hub.example.com/".into(),
                tenant: "acme".into(),
                login: "ivan".into(),
            },
        }
    }

    #[test]
    fn a_profile_round_trips_with_its_secret_only_in_the_store() {
        let dir = std::env::temp_dir().join(format!("calldesk-profiles-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = Arc::new(MemoryStore::default());
        let profiles = Profiles::new(&dir, store.clone());
        assert_eq!(profiles.list().unwrap(), ProfileList::default());

        profiles
            .save(hub(), Some(&Secret::new("pa55word")), None)
            .unwrap();
        profiles.activate("office").unwrap();
        let on_disk = std::fs::read_to_string(dir.join("profiles.json")).unwrap();
        assert!(!on_disk.contains("pa55word"), "{on_disk}");
        assert!(on_disk.contains(r#""kind": "hub""#), "{on_disk}");
        assert_eq!(
            store
                .get(HUB_SERVICE, "ivan@acme@https://hub.example.com")
                .unwrap(),
            Some(Secret::new("pa55word"))
        );
        let list = profiles.list().unwrap();
        assert_eq!(list.active.as_deref(), Some("office"));
        let config = profiles.engine_config("office", base(&dir)).unwrap();
        let ProfileConfig::Hub(h) = config.profile else {
            panic!("a hub profile");
        };
        assert_eq!(
            (h.url.as_str(), h.tenant.as_str(), h.password.expose()),
            ("https://hub.example.com/", "acme", "pa55word")
        );

        // Saving again without a secret keeps the stored one.
        let mut renamed = hub();
        renamed.name = "Main office".into();
        profiles.save(renamed, None, None).unwrap();
        assert_eq!(profiles.list().unwrap().profiles[0].name, "Main office");
        assert!(profiles.engine_config("office", base(&dir)).is_ok());

        profiles.delete("office").unwrap();
        assert_eq!(profiles.list().unwrap(), ProfileList::default());
        assert_eq!(
            store
                .get(HUB_SERVICE, "ivan@acme@https://hub.example.com")
                .unwrap(),
            None
        );
        assert!(matches!(
            profiles.engine_config("office", base(&dir)),
            Err(ProfileError::NotFound(_))
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn bad_fields_and_a_missing_keyring_say_what_to_fix() {
        let dir =
            std::env::temp_dir().join(format!("calldesk-profiles-bad-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let profiles = Profiles::new(&dir, Arc::new(MemoryStore::default()));
        let direct = |host: &str, ext: &str| Profile {
            id: "pbx".into(),
            name: "PBX".into(),
            settings: ProfileSettings::Direct {
                host: host.into(),
                port: 5038,
                username: "crm".into(),
                extension: ext.into(),
                supervisor: false,
                report_to: None,
            },
        };
        for (profile, says) in [
            (direct("pbx.local\r\nAction: Originate", "101"), "one line"),
            (direct("pbx local", "101"), "not a host name"),
            (direct("pbx.local", "10 1"), "not an extension"),
            (
                Profile {
                    settings: ProfileSettings::Hub {
                        url: "ftp://hub".into(),
                        tenant: "acme".into(),
                        login: "ivan".into(),
                    },
                    ..hub()
                },
                "https://",
            ),
            (
                Profile {
                    id: "a b".into(),
                    ..hub()
                },
                "letters, digits",
            ),
        ] {
            let e = profiles.save(profile, None, None).unwrap_err();
            assert!(e.to_string().contains(says), "{e} should say {says}");
            assert_eq!(e.code(), "invalid_profile");
        }
        // A profile saved without its secret cannot start, and says how to fix it.
        profiles
            .save(direct("pbx.local", "101"), None, None)
            .unwrap();
        let e = profiles.engine_config("pbx", base(&dir)).unwrap_err();
        assert_eq!(e.code(), "no_secret", "{e}");
        let locked = Profiles::new(
            &dir,
            Arc::new(MemoryStore::unavailable("no Secret Service is running")),
        );
        let e = locked
            .save(direct("pbx.local", "101"), Some(&Secret::new("s")), None)
            .unwrap_err();
        assert_eq!(e.code(), "keyring_unavailable");
        assert!(e.to_string().contains("gnome-keyring"), "{e}");
        std::fs::write(dir.join("profiles.json"), b"{not json").unwrap();
        assert_eq!(profiles.list().unwrap_err().code(), "profiles_unreadable");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_direct_profile_reports_to_a_hub_with_its_own_password() {
        let dir =
            std::env::temp_dir().join(format!("calldesk-profiles-report-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = Arc::new(MemoryStore::default());
        let profiles = Profiles::new(&dir, store.clone());
        let link = HubLink {
            url: "https://hub.example.com".into(),
            tenant: "acme".into(),
            login: "ivan".into(),
        };
        let direct = |report_to: Option<HubLink>| ProfileSettings::Direct {
            host: "pbx.local".into(),
            port: 5038,
            username: "crm".into(),
            extension: "101".into(),
            supervisor: false,
            report_to,
        };
        let profile = Profile {
            id: "pbx".into(),
            name: "PBX".into(),
            settings: direct(Some(link.clone())),
        };
        // Without the hub's password it cannot start, and says which hub needs one.
        profiles
            .save(profile.clone(), Some(&Secret::new("ami")), None)
            .unwrap();
        let e = profiles.engine_config("pbx", base(&dir)).unwrap_err();
        assert!(e.to_string().contains("no saved hub password"), "{e}");
        profiles
            .save(profile.clone(), None, Some(&Secret::new("hub-pass")))
            .unwrap();
        let config = profiles.engine_config("pbx", base(&dir)).unwrap();
        let ProfileConfig::Direct {
            credentials,
            report_to: Some(hub),
            ..
        } = config.profile
        else {
            panic!("a direct profile that reports to a hub");
        };
        assert_eq!(credentials.secret, "ami");
        assert_eq!(
            (hub.url.as_str(), hub.login.as_str(), hub.password.expose()),
            ("https://hub.example.com", "ivan", "hub-pass")
        );
        // The same keyring entry as a hub profile of that login.
        assert!(
            store
                .get(HUB_SERVICE, "ivan@acme@https://hub.example.com")
                .unwrap()
                .is_some()
        );
        // Saved without a hub it is a plain Direct profile (the field is left out of the file).
        let json = serde_json::to_string(&direct(None)).unwrap();
        assert!(!json.contains("reportTo"), "{json}");
        let bad = Profile {
            settings: direct(Some(HubLink {
                url: "hub".into(),
                ..link
            })),
            ..profile
        };
        assert!(profiles.save(bad, None, None).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
