//! Operators: who logs in to the hub, with which role, at which extension. Logins are unique per
//! tenant regardless of case; extensions and SIP addresses are unique per tenant.

use calldesk_calls::{Extension, TenantId};

use crate::{CentralError, CentralStore, check, corrupt, foreign_key_violation, unique_violation};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    Operator,
    Supervisor,
    Admin,
}

impl Role {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Operator => "operator",
            Self::Supervisor => "supervisor",
            Self::Admin => "admin",
        }
    }

    /// Parses [`Role::as_str`]'s names.
    pub fn from_name(s: &str) -> Option<Self> {
        [Self::Operator, Self::Supervisor, Self::Admin]
            .into_iter()
            .find(|r| r.as_str() == s)
    }

    /// supervisor or admin
    pub const fn supervises(self) -> bool {
        matches!(self, Self::Supervisor | Self::Admin)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operator {
    pub id: i64,
    pub tenant: TenantId,
    pub login: String,
    pub name: Option<String>,
    pub role: Role,
    pub extension: Extension,
    /// The operator's SIP address or peer at the PBX (Mango), when it differs from the extension.
    pub sip: Option<String>,
    pub active: bool,
}

/// An operator to create; `password_hash` from [`crate::password::hash_password`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewOperator {
    pub tenant: TenantId,
    pub login: String,
    pub name: Option<String>,
    pub password_hash: String,
    pub role: Role,
    pub extension: Extension,
    pub sip: Option<String>,
}

const OPERATOR_COLUMNS: &str = "id, tenant_id, login, name, role, extension, sip, active";

#[derive(sqlx::FromRow)]
struct OperatorRow {
    id: i64,
    tenant_id: String,
    login: String,
    name: Option<String>,
    role: String,
    extension: String,
    sip: Option<String>,
    active: bool,
}

impl OperatorRow {
    fn into_operator(self) -> Result<Operator, CentralError> {
        let bad = |what: String| corrupt(format!("operator {}: {what}", self.id));
        Ok(Operator {
            id: self.id,
            tenant: TenantId::new(self.tenant_id.as_str()).map_err(|e| bad(e.to_string()))?,
            role: Role::from_name(&self.role)
                .ok_or_else(|| bad(format!("unknown role `{}`", self.role.escape_debug())))?,
            extension: Extension::new(self.extension.as_str()).map_err(|e| bad(e.to_string()))?,
            login: self.login,
            name: self.name,
            sip: self.sip,
            active: self.active,
        })
    }
}

/// A password hash (from [`crate::password::hash_password`]) is not empty; whether it parses
/// is [`crate::password::verify_password`]'s business (a bad one never verifies).
fn check_hash(hash: &str) -> Result<(), CentralError> {
    if hash.trim().is_empty() {
        return Err(CentralError::Invalid("the password hash is empty".into()));
    }
    check::no_nul("the password hash", hash)
}

#[derive(sqlx::FromRow)]
struct LoginRow {
    #[sqlx(flatten)]
    operator: OperatorRow,
    password_hash: String,
}

impl CentralStore {
    pub async fn add_operator(&self, op: &NewOperator) -> Result<Operator, CentralError> {
        let login = check::login(&op.login)?;
        let name = check::optional_line("operator name", op.name.as_deref())?;
        check_hash(&op.password_hash)?;
        let sip = match op.sip.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
            Some(s) => Some(check::sip(s)?.to_owned()),
            None => None,
        };
        let row: OperatorRow = sqlx::query_as(&format!(
            "INSERT INTO operators (tenant_id, login, name, password_hash, role, extension, sip)
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {OPERATOR_COLUMNS}"
        ))
        .bind(op.tenant.as_str())
        .bind(login)
        .bind(&name)
        .bind(&op.password_hash)
        .bind(op.role.as_str())
        .bind(op.extension.as_str())
        .bind(&sip)
        .fetch_one(&self.pool)
        .await
        .map_err(|e| {
            let t = &op.tenant;
            if let Some(constraint) = unique_violation(&e) {
                let what = match constraint.as_str() {
                    "operators_login_key" => {
                        format!("operator login `{login}` already exists in tenant {t}")
                    }
                    "operators_extension_key" => {
                        format!("extension {} is already taken in tenant {t}", op.extension)
                    }
                    "operators_sip_key" => format!(
                        "SIP address `{}` is already taken in tenant {t}",
                        sip.as_deref().unwrap_or_default()
                    ),
                    _ => return CentralError::Sql(e),
                };
                CentralError::Duplicate { what }
            } else if foreign_key_violation(&e).is_some() {
                CentralError::NotFound(format!("no tenant {t}"))
            } else {
                CentralError::Sql(e)
            }
        })?;
        row.into_operator()
    }

    /// The active operator with this login (any case) of an active tenant, and their
    /// password hash.
    pub async fn operator_for_login(
        &self,
        tenant: &TenantId,
        login: &str,
    ) -> Result<Option<(Operator, String)>, CentralError> {
        let row: Option<LoginRow> = sqlx::query_as(
            "SELECT o.id, o.tenant_id, o.login, o.name, o.role, o.extension, o.sip, o.active,
                    o.password_hash
             FROM operators o JOIN tenants t ON t.id = o.tenant_id
             WHERE o.tenant_id = $1 AND lower(o.login) = lower($2) AND o.active AND t.active",
        )
        .bind(tenant.as_str())
        .bind(login)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| Ok((r.operator.into_operator()?, r.password_hash)))
            .transpose()
    }

    /// The tenant's operators (active or not), by login.
    pub async fn operators(&self, tenant: &TenantId) -> Result<Vec<Operator>, CentralError> {
        let rows: Vec<OperatorRow> = sqlx::query_as(&format!(
            "SELECT {OPERATOR_COLUMNS} FROM operators WHERE tenant_id = $1
             ORDER BY lower(login), login"
        ))
        .bind(tenant.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(OperatorRow::into_operator).collect()
    }

    pub async fn operator(
        &self,
        tenant: &TenantId,
        id: i64,
    ) -> Result<Option<Operator>, CentralError> {
        let row: Option<OperatorRow> = sqlx::query_as(&format!(
            "SELECT {OPERATOR_COLUMNS} FROM operators WHERE tenant_id = $1 AND id = $2"
        ))
        .bind(tenant.as_str())
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(OperatorRow::into_operator).transpose()
    }

    /// Turns an operator on or off (an inactive operator cannot log in; their notes stay).
    /// False if the tenant has no such operator.
    pub async fn set_operator_active(
        &self,
        tenant: &TenantId,
        id: i64,
        active: bool,
    ) -> Result<bool, CentralError> {
        let done = sqlx::query("UPDATE operators SET active = $3 WHERE tenant_id = $1 AND id = $2")
            .bind(tenant.as_str())
            .bind(id)
            .bind(active)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Replaces an operator's password hash. False if the tenant has no such operator.
    pub async fn set_operator_password(
        &self,
        tenant: &TenantId,
        id: i64,
        password_hash: &str,
    ) -> Result<bool, CentralError> {
        check_hash(password_hash)?;
        let done =
            sqlx::query("UPDATE operators SET password_hash = $3 WHERE tenant_id = $1 AND id = $2")
                .bind(tenant.as_str())
                .bind(id)
                .bind(password_hash)
                .execute(&self.pool)
                .await?;
        Ok(done.rows_affected() == 1)
    }
}
