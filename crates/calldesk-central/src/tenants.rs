//! Tenants: name, number, region, PBX settings and the clientId desktops connect with (only
//! its sha256 is stored). PBX secrets are never stored, only the names of the environment
//! variables that hold them.

use calldesk_calls::{NumberPlan, TenantId};
use serde::{Deserialize, Serialize};

use crate::password::{client_secret_digest, new_client_secret};
use crate::{CentralError, CentralStore, PbxKind, check, corrupt, unique_violation};

/// A tenant as the hub runs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantConfig {
    pub id: TenantId,
    pub name: String,
    /// 1–16 digits; empty for a tenant created by `upsert_tenant` (not set).
    pub number: String,
    /// ISO 3166 alpha-2 region of the tenant's numbers (`NumberPlan`), e.g. `RU`.
    pub region: String,
    pub active: bool,
    pub pbx: PbxConfig,
}

/// How call controls map onto a tenant's Asterisk dialplan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AmiDialplan {
    /// `pjsip` (chan_pjsip, `PJSIP/101`) or `sip` (chan_sip, `SIP/101`).
    pub tech: String,
    /// The context originates and transfers dial through.
    pub context: String,
    /// Prefix an international number is dialled with instead of `+` (e.g. `00`, `810`);
    /// `None`: numbers are dialled as E.164.
    pub international_prefix: Option<String>,
    /// The context of the hold helper (`customer` and `operator` extensions, see
    /// calldesk-asterisk's `actions`); `None`: hold is not offered.
    #[serde(default)]
    pub hold_context: Option<String>,
    /// Where the hub finds the MixMonitor files (the PBX's recordings folder, local or
    /// mounted; an absolute path); `None`: recordings are listed but not stored.
    #[serde(default)]
    pub recordings_dir: Option<String>,
}

impl Default for AmiDialplan {
    fn default() -> Self {
        Self {
            tech: "pjsip".into(),
            context: "from-internal".into(),
            international_prefix: None,
            hold_context: None,
            recordings_dir: None,
        }
    }
}

impl AmiDialplan {
    fn checked(&self) -> Result<Self, CentralError> {
        let tech = self.tech.trim().to_ascii_lowercase();
        if tech != "pjsip" && tech != "sip" {
            return Err(CentralError::Invalid(format!(
                "AMI channel technology `{}` must be pjsip or sip",
                self.tech.escape_debug()
            )));
        }
        let context = |what: &str, value: &str| -> Result<String, CentralError> {
            let v = value.trim();
            if v.is_empty()
                || v.len() > 79
                || !v
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            {
                return Err(CentralError::Invalid(format!(
                    "{what} `{}` must be 1 to 79 letters, digits, `_` or `-`",
                    value.escape_debug()
                )));
            }
            Ok(v.to_owned())
        };
        let hold_context = match self.hold_context.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(c) => Some(context("AMI hold context", c)?),
        };
        let prefix = match self.international_prefix.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(p) if p.len() <= 4 && p.bytes().all(|b| b.is_ascii_digit()) => Some(p.to_owned()),
            Some(p) => {
                return Err(CentralError::Invalid(format!(
                    "international prefix `{}` must be 1 to 4 digits",
                    p.escape_debug()
                )));
            }
        };
        let recordings_dir = match self.recordings_dir.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(d)
                if d.starts_with('/')
                    && d.len() <= 1024
                    && !d.chars().any(char::is_control)
                    && !d.split('/').any(|seg| seg == "..") =>
            {
                Some(d.to_owned())
            }
            Some(d) => {
                return Err(CentralError::Invalid(format!(
                    "recordings folder `{}` must be an absolute path (at most 1024 characters, no `..`)",
                    d.escape_debug()
                )));
            }
        };
        Ok(Self {
            tech,
            context: context("AMI context", &self.context)?,
            international_prefix: prefix,
            hold_context,
            recordings_dir,
        })
    }
}

/// How the hub reaches the tenant's PBX. Secrets are named by environment variable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PbxConfig {
    Asterisk {
        host: String,
        port: u16,
        user: String,
        /// The environment variable that holds the AMI secret.
        secret_env: String,
        tls: bool,
        /// How controls map onto the dialplan (defaults: PJSIP, `from-internal`).
        #[serde(default)]
        dialplan: AmiDialplan,
    },
    Mango {
        /// The VPBX API base; `None` = Mango's production address.
        api_url: Option<String>,
        /// The VPBX API key (sent with every request; not a secret).
        key: String,
        /// The environment variable that holds the signing salt.
        salt_env: String,
    },
    Demo,
}

impl PbxConfig {
    pub const fn kind(&self) -> PbxKind {
        match self {
            Self::Asterisk { .. } => PbxKind::Asterisk,
            Self::Mango { .. } => PbxKind::Mango,
            Self::Demo => PbxKind::Demo,
        }
    }

    /// The settings a tenant of `kind` gets when none are given (`upsert_tenant`, rows from
    /// before migration 0002): a local AMI with `CALLDESK_AMI_SECRET`, or Mango's production
    /// API with an empty key and `MANGO_API_SALT` — to be completed by an administrator.
    pub fn default_for(kind: PbxKind) -> Self {
        match kind {
            PbxKind::Asterisk => Self::Asterisk {
                host: "127.0.0.1".into(),
                port: 5038,
                user: "calldesk".into(),
                secret_env: "CALLDESK_AMI_SECRET".into(),
                tls: false,
                dialplan: AmiDialplan::default(),
            },
            PbxKind::Mango => Self::Mango {
                api_url: None,
                key: String::new(),
                salt_env: "MANGO_API_SALT".into(),
            },
            PbxKind::Demo => Self::Demo,
        }
    }

    /// The settings as stored (trimmed), or what is wrong with them.
    fn checked(&self) -> Result<Self, CentralError> {
        let no_spaces = |what: &str, v: &str| -> Result<String, CentralError> {
            let v = v.trim();
            if v.is_empty()
                || v.len() > 253
                || v.chars().any(|c| c.is_whitespace() || c.is_control())
            {
                Err(CentralError::Invalid(format!(
                    "{what} `{}` must be 1 to 253 characters without spaces",
                    v.escape_debug()
                )))
            } else {
                Ok(v.to_owned())
            }
        };
        Ok(match self {
            Self::Asterisk {
                host,
                port,
                user,
                secret_env,
                tls,
                dialplan,
            } => {
                if *port == 0 {
                    return Err(CentralError::Invalid("AMI port 0 is not a port".into()));
                }
                Self::Asterisk {
                    host: no_spaces("AMI host", host)?,
                    port: *port,
                    user: no_spaces("AMI user", user)?,
                    secret_env: check::env_name("AMI secret_env", secret_env)?.to_owned(),
                    tls: *tls,
                    dialplan: dialplan.checked()?,
                }
            }
            Self::Mango {
                api_url,
                key,
                salt_env,
            } => {
                let api_url = match api_url.as_deref().map(str::trim).filter(|u| !u.is_empty()) {
                    None => None,
                    Some(url) => {
                        let url = no_spaces("Mango api_url", url)?;
                        if !(url.starts_with("https://") || url.starts_with("http://")) {
                            return Err(CentralError::Invalid(format!(
                                "Mango api_url `{}` must start with https:// (or http://)",
                                url.escape_debug()
                            )));
                        }
                        Some(url)
                    }
                };
                Self::Mango {
                    api_url,
                    key: no_spaces("Mango API key", key)?,
                    salt_env: check::env_name("Mango salt_env", salt_env)?.to_owned(),
                }
            }
            Self::Demo => Self::Demo,
        })
    }
}

/// A tenant to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTenant {
    pub id: TenantId,
    pub name: String,
    pub number: String,
    /// ISO 3166 alpha-2, e.g. `RU`.
    pub region: String,
    pub pbx: PbxConfig,
}

/// The PBX columns of `tenants`, as bound.
pub(crate) struct PbxColumns {
    pub(crate) ami_host: Option<String>,
    pub(crate) ami_port: Option<i32>,
    pub(crate) ami_user: Option<String>,
    pub(crate) ami_secret_env: Option<String>,
    pub(crate) ami_tls: Option<bool>,
    pub(crate) ami_dialplan: Option<serde_json::Value>,
    pub(crate) mango_api_url: Option<String>,
    pub(crate) mango_key: Option<String>,
    pub(crate) mango_salt_env: Option<String>,
}

impl PbxColumns {
    /// Binds the connection columns, `ami_host` … `mango_salt_env` in table order (not the
    /// dialplan), as the next eight parameters of `q`.
    pub(crate) fn bind<'q>(
        &self,
        q: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
    ) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
        q.bind(self.ami_host.clone())
            .bind(self.ami_port)
            .bind(self.ami_user.clone())
            .bind(self.ami_secret_env.clone())
            .bind(self.ami_tls)
            .bind(self.mango_api_url.clone())
            .bind(self.mango_key.clone())
            .bind(self.mango_salt_env.clone())
    }

    pub(crate) fn of(pbx: &PbxConfig) -> Self {
        let mut cols = Self {
            ami_host: None,
            ami_port: None,
            ami_user: None,
            ami_secret_env: None,
            ami_tls: None,
            ami_dialplan: None,
            mango_api_url: None,
            mango_key: None,
            mango_salt_env: None,
        };
        match pbx {
            PbxConfig::Asterisk {
                host,
                port,
                user,
                secret_env,
                tls,
                dialplan,
            } => {
                cols.ami_dialplan = serde_json::to_value(dialplan).ok();
                cols.ami_host = Some(host.clone());
                cols.ami_port = Some(i32::from(*port));
                cols.ami_user = Some(user.clone());
                cols.ami_secret_env = Some(secret_env.clone());
                cols.ami_tls = Some(*tls);
            }
            PbxConfig::Mango {
                api_url,
                key,
                salt_env,
            } => {
                cols.mango_api_url = api_url.clone();
                cols.mango_key = Some(key.clone());
                cols.mango_salt_env = Some(salt_env.clone());
            }
            PbxConfig::Demo => {}
        }
        cols
    }
}

const TENANT_COLUMNS: &str = "id, name, number, region, active, pbx_kind, ami_host, ami_port, \
     ami_user, ami_secret_env, ami_tls, ami_dialplan, mango_api_url, mango_key, mango_salt_env";

#[derive(sqlx::FromRow)]
struct TenantRow {
    id: String,
    name: String,
    number: String,
    region: String,
    active: bool,
    pbx_kind: String,
    ami_host: Option<String>,
    ami_port: Option<i32>,
    ami_user: Option<String>,
    ami_secret_env: Option<String>,
    ami_tls: Option<bool>,
    ami_dialplan: Option<sqlx::types::Json<AmiDialplan>>,
    mango_api_url: Option<String>,
    mango_key: Option<String>,
    mango_salt_env: Option<String>,
}

impl TenantRow {
    fn into_config(self) -> Result<TenantConfig, CentralError> {
        let id = TenantId::new(self.id.as_str())
            .map_err(|e| corrupt(format!("tenant `{}`: {e}", self.id.escape_debug())))?;
        let missing = |what: &str| corrupt(format!("tenant {id}: {what} is not set"));
        let pbx = match PbxKind::from_name(&self.pbx_kind) {
            Some(PbxKind::Asterisk) => PbxConfig::Asterisk {
                host: self.ami_host.ok_or_else(|| missing("ami_host"))?,
                port: self
                    .ami_port
                    .and_then(|p| u16::try_from(p).ok())
                    .ok_or_else(|| missing("ami_port"))?,
                user: self.ami_user.ok_or_else(|| missing("ami_user"))?,
                secret_env: self
                    .ami_secret_env
                    .ok_or_else(|| missing("ami_secret_env"))?,
                tls: self.ami_tls.ok_or_else(|| missing("ami_tls"))?,
                dialplan: self.ami_dialplan.map(|j| j.0).unwrap_or_default(),
            },
            Some(PbxKind::Mango) => PbxConfig::Mango {
                api_url: self.mango_api_url,
                key: self.mango_key.ok_or_else(|| missing("mango_key"))?,
                salt_env: self
                    .mango_salt_env
                    .ok_or_else(|| missing("mango_salt_env"))?,
            },
            Some(PbxKind::Demo) => PbxConfig::Demo,
            None => {
                return Err(corrupt(format!(
                    "tenant {id}: unknown pbx_kind `{}`",
                    self.pbx_kind.escape_debug()
                )));
            }
        };
        Ok(TenantConfig {
            id,
            name: self.name,
            number: self.number,
            region: self.region,
            active: self.active,
            pbx,
        })
    }
}

/// Name, number and region as stored, or what is wrong with them.
fn checked_identity(
    name: &str,
    number: &str,
    region: &str,
) -> Result<(String, String, String), CentralError> {
    let name = check::name("tenant name", name)?;
    let number = check::tenant_number(number.trim())?.to_owned();
    let region = region.trim();
    let plan = (region.len() == 2 && region.bytes().all(|b| b.is_ascii_alphabetic()))
        .then(|| NumberPlan::new(region).ok())
        .flatten()
        .ok_or_else(|| {
            CentralError::Invalid(format!(
                "region `{}` is not an ISO 3166 alpha-2 code such as RU",
                region.escape_debug()
            ))
        })?;
    Ok((name, number, plan.region().to_owned()))
}

fn tenant_write_error(e: sqlx::Error, id: &TenantId, number: &str) -> CentralError {
    match unique_violation(&e).as_deref() {
        Some("tenants_pkey") => CentralError::Duplicate {
            what: format!("a tenant with id {id} already exists"),
        },
        Some("tenants_number_key") => CentralError::Duplicate {
            what: format!("a tenant with number {number} already exists"),
        },
        _ => CentralError::Sql(e),
    }
}

impl CentralStore {
    /// Creates the tenant; returns the new clientId secret (shown once; only its digest is stored).
    pub async fn add_tenant(&self, t: &NewTenant) -> Result<String, CentralError> {
        let (name, number, region) = checked_identity(&t.name, &t.number, &t.region)?;
        let pbx = t.pbx.checked()?;
        let cols = PbxColumns::of(&pbx);
        let secret = new_client_secret();
        let query = sqlx::query(
            "INSERT INTO tenants (id, name, number, region, active, pbx_kind, ami_host, ami_port,
                ami_user, ami_secret_env, ami_tls, mango_api_url, mango_key, mango_salt_env,
                client_secret_sha256, ami_dialplan)
             VALUES ($1, $2, $3, $4, true, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
        )
        .bind(t.id.as_str())
        .bind(&name)
        .bind(&number)
        .bind(&region)
        .bind(pbx.kind().as_str());
        cols.bind(query)
            .bind(client_secret_digest(&secret))
            .bind(cols.ami_dialplan)
            .execute(&self.pool)
            .await
            .map_err(|e| tenant_write_error(e, &t.id, &number))?;
        Ok(secret)
    }

    /// Replaces a tenant's name, number, region, active flag and PBX settings (not its
    /// clientId). False if there is no such tenant.
    pub async fn update_tenant(&self, t: &TenantConfig) -> Result<bool, CentralError> {
        let (name, number, region) = checked_identity(&t.name, &t.number, &t.region)?;
        let pbx = t.pbx.checked()?;
        let cols = PbxColumns::of(&pbx);
        let query = sqlx::query(
            "UPDATE tenants SET name = $2, number = $3, region = $4, active = $5, pbx_kind = $6,
                ami_host = $7, ami_port = $8, ami_user = $9, ami_secret_env = $10, ami_tls = $11,
                mango_api_url = $12, mango_key = $13, mango_salt_env = $14, ami_dialplan = $15
             WHERE id = $1",
        )
        .bind(t.id.as_str())
        .bind(&name)
        .bind(&number)
        .bind(&region)
        .bind(t.active)
        .bind(pbx.kind().as_str());
        let done = cols
            .bind(query)
            .bind(cols.ami_dialplan)
            .execute(&self.pool)
            .await
            .map_err(|e| tenant_write_error(e, &t.id, &number))?;
        Ok(done.rows_affected() == 1)
    }

    /// Every tenant, active or not, ordered by id.
    pub async fn tenants(&self) -> Result<Vec<TenantConfig>, CentralError> {
        let rows: Vec<TenantRow> =
            sqlx::query_as(&format!("SELECT {TENANT_COLUMNS} FROM tenants ORDER BY id"))
                .fetch_all(&self.pool)
                .await?;
        rows.into_iter().map(TenantRow::into_config).collect()
    }

    pub async fn tenant(&self, id: &TenantId) -> Result<Option<TenantConfig>, CentralError> {
        let row: Option<TenantRow> = sqlx::query_as(&format!(
            "SELECT {TENANT_COLUMNS} FROM tenants WHERE id = $1"
        ))
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await?;
        row.map(TenantRow::into_config).transpose()
    }

    /// The active tenant whose clientId this is (digest lookup).
    pub async fn tenant_by_client_secret(
        &self,
        secret: &str,
    ) -> Result<Option<TenantConfig>, CentralError> {
        let row: Option<TenantRow> = sqlx::query_as(&format!(
            "SELECT {TENANT_COLUMNS} FROM tenants WHERE client_secret_sha256 = $1 AND active"
        ))
        .bind(client_secret_digest(secret))
        .fetch_optional(&self.pool)
        .await?;
        row.map(TenantRow::into_config).transpose()
    }

    /// New clientId for the tenant; the old one stops working.
    pub async fn rotate_client_secret(&self, id: &TenantId) -> Result<String, CentralError> {
        let secret = new_client_secret();
        let done = sqlx::query("UPDATE tenants SET client_secret_sha256 = $2 WHERE id = $1")
            .bind(id.as_str())
            .bind(client_secret_digest(&secret))
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(CentralError::NotFound(format!("no tenant {id}")));
        }
        Ok(secret)
    }

    /// Turns a tenant on or off (an inactive tenant's clientId and operators do not log in).
    /// False if there is no such tenant.
    pub async fn set_tenant_active(
        &self,
        id: &TenantId,
        active: bool,
    ) -> Result<bool, CentralError> {
        let done = sqlx::query("UPDATE tenants SET active = $2 WHERE id = $1")
            .bind(id.as_str())
            .bind(active)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }
}
