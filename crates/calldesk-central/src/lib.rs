//! calldesk central store (layer 1): the hub's PostgreSQL.
//!
//! Owns `migrations/central` and every SQL statement against the central database:
//! tenants (PBX settings, the clientId digest), operators (argon2id password hashes, see
//! [`password`]), the caller directory (companies, contacts, E.164 phones, [`CentralStore::identify`]),
//! calls (the hub's [`HubCall`] as JSONB plus the columns the list filters on), each call's
//! history of states, notes, dispositions and tags, the missed-calls worklist, recordings on
//! their way into the recordings store (leased to one replica at a time), the Mango webhook inbox, and the coordination of
//! hub replicas (session advisory locks per PBX on a [`LeaseConnection`], LISTEN/NOTIFY).
//!
//! Invariants:
//! - every query is scoped by tenant: no API reads or links another tenant's rows, and rows
//!   that point at each other do so through composite `(tenant_id, id)` foreign keys;
//! - writes from the PBX side are idempotent: calls are upserted by `(tenant_id, pbx_call_id)`,
//!   an ended call is final (a late earlier state never reopens it) and keeps its caller card
//!   when a later write has none; notes are keyed by a client-generated UUID; a webhook
//!   delivered twice is stored once;
//! - batches are one statement (`UNNEST` of arrays), never one statement per row;
//! - secrets are never stored: only digests (clientId: sha256; passwords: argon2id) and the
//!   *names* of the environment variables that hold PBX secrets;
//! - values are checked before SQL ([`CentralError::Invalid`]); unique violations become
//!   [`CentralError::Duplicate`] with a message that names the clash; nothing read from the
//!   database is trusted to be well-formed (a bad value is an error, never a panic).
//!
//! Tested with `#[sqlx::test]` against a real PostgreSQL (`DATABASE_URL`, provided by
//! `cargo xtask test`): each test gets its own fresh database with the migrations applied
//! (`tests/it/`: tenants and operators, directory, calls, notes, inbox, replicas); the pure
//! parts (time parsing, cursors, value checks, passwords) have unit tests.

use calldesk_calls::{Call, TenantId};
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

mod calls;
mod check;
mod directory;
mod inbox;
mod notes;
mod operators;
pub mod password;
mod recordings;
mod replicas;
mod sync;
mod tenants;
mod time;
mod worklist;

pub use calldesk_wire::{CallerCard, CardRef, DispositionView, HubCall, NoteView};
pub use calls::{CallEventRow, CallFilter, CallPage};
pub use directory::{
    Company, CompanyInput, Contact, ContactImportRow, ContactInput, ImportReport, MAX_LIST,
};
pub use inbox::{InboxItem, MAX_READ};
pub use operators::{NewOperator, Operator, Role};
pub use password::{client_secret_digest, hash_password, new_client_secret, verify_password};
pub use recordings::{FAILED_AFTER, NewRecording, RecordingJob, RecordingRow, RecordingState};
pub use replicas::{LeaseConnection, lease_key};
pub use sqlx::postgres::PgListener as Listener;
pub use sync::SyncActor;
pub use tenants::{AmiDialplan, NewTenant, PbxConfig, TenantConfig};
pub use worklist::{Actor, MAX_WORKLIST_DAYS, WORKLIST_DAYS};

/// The migrations of the central database, for the hub and for tests.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/central");

#[derive(Debug, thiserror::Error)]
pub enum CentralError {
    #[error(
        "cannot connect to PostgreSQL: {0}; check DATABASE_URL and that the server accepts connections"
    )]
    Connect(sqlx::Error),
    #[error("cannot migrate the central database: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("central database error: {0}")]
    Sql(#[from] sqlx::Error),
    /// A unique value is already taken; `what` says which, e.g. "a tenant with number 0367
    /// already exists".
    #[error("{what}")]
    Duplicate { what: String },
    /// A value refused before it reached SQL; the text says what to fix.
    #[error("{0}")]
    Invalid(String),
    /// The row addressed does not exist in the tenant (or the tenant does not exist).
    #[error("{0}")]
    NotFound(String),
    /// The row is held by someone else (a worklist item another operator took); the text
    /// names them.
    #[error("{0}")]
    Conflict(String),
}

/// A value read from the database that does not decode (e.g. a tenant id that is no longer
/// valid): an error of the store, reported as such, never a panic.
pub(crate) fn corrupt(what: String) -> CentralError {
    CentralError::Sql(sqlx::Error::Decode(what.into()))
}

const UNIQUE_VIOLATION: &str = "23505";
const FOREIGN_KEY_VIOLATION: &str = "23503";

/// The constraint a database error of SQLSTATE `code` names ("" when it names none).
pub(crate) fn violated(e: &sqlx::Error, code: &str) -> Option<String> {
    match e {
        sqlx::Error::Database(db) if db.code().as_deref() == Some(code) => {
            Some(db.constraint().unwrap_or_default().to_owned())
        }
        _ => None,
    }
}

/// The constraint of a unique violation.
pub(crate) fn unique_violation(e: &sqlx::Error) -> Option<String> {
    violated(e, UNIQUE_VIOLATION)
}

/// The constraint of a foreign-key violation.
pub(crate) fn foreign_key_violation(e: &sqlx::Error) -> Option<String> {
    violated(e, FOREIGN_KEY_VIOLATION)
}

/// A batch write that names a tenant that does not exist (PostgreSQL's detail says which).
pub(crate) fn unknown_tenant(e: sqlx::Error) -> CentralError {
    if foreign_key_violation(&e).is_none() {
        return CentralError::Sql(e);
    }
    let detail = match &e {
        sqlx::Error::Database(db) => db
            .try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
            .and_then(|pg| pg.detail())
            .map(|d| format!(" ({d})"))
            .unwrap_or_default(),
        _ => String::new(),
    };
    CentralError::NotFound(format!("no such tenant{detail}"))
}

/// Which PBX a tenant uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PbxKind {
    Asterisk,
    Mango,
    Demo,
}

impl PbxKind {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Asterisk => "asterisk",
            Self::Mango => "mango",
            Self::Demo => "demo",
        }
    }

    /// Parses [`PbxKind::as_str`]'s names.
    pub fn from_name(name: &str) -> Option<Self> {
        [Self::Asterisk, Self::Mango, Self::Demo]
            .into_iter()
            .find(|k| k.as_str() == name)
    }
}

#[derive(Debug, Clone)]
pub struct CentralStore {
    pool: PgPool,
}

/// The pools' settings. No ping before each use (sqlx's default): it is a round trip more on
/// every webhook batch, and a connection that broke meanwhile fails its statement instead,
/// which every caller already handles (the inbox answers 503 and Mango delivers again; the
/// writer retries) — and a broken connection is not given out again.
fn pool_options(connections: u32) -> PgPoolOptions {
    PgPoolOptions::new()
        .max_connections(connections)
        .test_before_acquire(false)
}

impl CentralStore {
    /// Connects and applies the migrations.
    pub async fn connect(url: &str) -> Result<Self, CentralError> {
        let pool = pool_options(10)
            .connect(url)
            .await
            .map_err(CentralError::Connect)?;
        MIGRATOR.run(&pool).await?;
        Ok(Self { pool })
    }

    /// Wraps a pool whose database is already migrated (tests, the hub's own pool).
    pub fn from_pool(pool: PgPool) -> Self {
        Self { pool }
    }

    /// A second, small store on the same database whose commits do not wait for the disk
    /// (`synchronous_commit = off`): for state that can be rebuilt from what was stored
    /// durably (the hub's call states, rebuilt from the webhook inbox). Commits still reach
    /// the disk in order within a fraction of a second; a crash of PostgreSQL itself may lose
    /// the last ones, never leave them half-done.
    pub async fn relaxed(&self, connections: u32) -> Result<Self, CentralError> {
        let options = (*self.pool.connect_options())
            .clone()
            .options([("synchronous_commit", "off")]);
        let pool = pool_options(connections.max(1))
            .connect_with(options)
            .await
            .map_err(CentralError::Connect)?;
        Ok(Self { pool })
    }

    /// The pool, for the hub's own health checks and metrics.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// `SELECT 1`: the database answers.
    pub async fn ping(&self) -> Result<(), CentralError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Creates the tenant or renames it / changes its PBX kind. A new tenant (or one whose
    /// kind changes) gets the default settings of that kind ([`PbxConfig::default_for`]); its
    /// number stays unset and it has no clientId until [`CentralStore::rotate_client_secret`].
    /// Prefer [`CentralStore::add_tenant`] for real tenants.
    pub async fn upsert_tenant(
        &self,
        id: &TenantId,
        name: &str,
        pbx: PbxKind,
    ) -> Result<(), CentralError> {
        let name = check::name("tenant name", name)?;
        let cols = tenants::PbxColumns::of(&PbxConfig::default_for(pbx));
        let query = sqlx::query(
            "INSERT INTO tenants (id, name, pbx_kind, ami_host, ami_port, ami_user,
                ami_secret_env, ami_tls, mango_api_url, mango_key, mango_salt_env)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
             ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, pbx_kind = EXCLUDED.pbx_kind,
                ami_host = CASE WHEN tenants.pbx_kind = EXCLUDED.pbx_kind
                    THEN tenants.ami_host ELSE EXCLUDED.ami_host END,
                ami_port = CASE WHEN tenants.pbx_kind = EXCLUDED.pbx_kind
                    THEN tenants.ami_port ELSE EXCLUDED.ami_port END,
                ami_user = CASE WHEN tenants.pbx_kind = EXCLUDED.pbx_kind
                    THEN tenants.ami_user ELSE EXCLUDED.ami_user END,
                ami_secret_env = CASE WHEN tenants.pbx_kind = EXCLUDED.pbx_kind
                    THEN tenants.ami_secret_env ELSE EXCLUDED.ami_secret_env END,
                ami_tls = CASE WHEN tenants.pbx_kind = EXCLUDED.pbx_kind
                    THEN tenants.ami_tls ELSE EXCLUDED.ami_tls END,
                mango_api_url = CASE WHEN tenants.pbx_kind = EXCLUDED.pbx_kind
                    THEN tenants.mango_api_url ELSE EXCLUDED.mango_api_url END,
                mango_key = CASE WHEN tenants.pbx_kind = EXCLUDED.pbx_kind
                    THEN tenants.mango_key ELSE EXCLUDED.mango_key END,
                mango_salt_env = CASE WHEN tenants.pbx_kind = EXCLUDED.pbx_kind
                    THEN tenants.mango_salt_env ELSE EXCLUDED.mango_salt_env END",
        )
        .bind(id.as_str())
        .bind(name)
        .bind(pbx.as_str());
        cols.bind(query).execute(&self.pool).await?;
        Ok(())
    }

    /// Inserts or updates one call of its tenant: [`CentralStore::upsert_calls`] of its
    /// [`HubCall`] (without a caller card).
    pub async fn upsert_call(&self, call: &Call) -> Result<(), CentralError> {
        self.upsert_calls(&[HubCall::new(call)]).await
    }

    /// Calls of one tenant with the given status (None = all).
    pub async fn count_calls(
        &self,
        tenant: &TenantId,
        status: Option<&str>,
    ) -> Result<i64, CentralError> {
        let n = sqlx::query_scalar(
            "SELECT count(*) FROM calls WHERE tenant_id = $1 AND ($2::text IS NULL OR status = $2)",
        )
        .bind(tenant.as_str())
        .bind(status)
        .fetch_one(&self.pool)
        .await?;
        Ok(n)
    }
}
