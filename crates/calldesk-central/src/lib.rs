//! calldesk central store (layer 1): the hub's PostgreSQL.
//!
//! Owns `migrations/central` and every SQL statement against the central database. Writes are
//! idempotent upserts keyed by PBX ids (`(tenant_id, pbx_call_id)`), so an event delivered twice
//! or a replay after a crash changes nothing, and an ended call is final (a late earlier state
//! does not reopen it). Every query is scoped by tenant: there is no API
//! that reads another tenant's rows.
//!
//! The skeleton has tenants and calls; the hub issue adds operators, contacts, notes, traces.
//! Tested with `#[sqlx::test]` against a real PostgreSQL (`DATABASE_URL`, provided by
//! `cargo xtask test`): each test gets its own fresh database with the migrations applied.

use calldesk_calls::{Call, TenantId};
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

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
}

/// Which PBX a tenant uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PbxKind {
    Asterisk,
    Mango,
    Demo,
}

impl PbxKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Asterisk => "asterisk",
            Self::Mango => "mango",
            Self::Demo => "demo",
        }
    }
}

#[derive(Debug, Clone)]
pub struct CentralStore {
    pool: PgPool,
}

impl CentralStore {
    /// Connects and applies the migrations.
    pub async fn connect(url: &str) -> Result<Self, CentralError> {
        let pool = PgPoolOptions::new()
            .max_connections(10)
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

    pub async fn upsert_tenant(
        &self,
        id: &TenantId,
        name: &str,
        pbx: PbxKind,
    ) -> Result<(), CentralError> {
        sqlx::query(
            "INSERT INTO tenants (id, name, pbx_kind) VALUES ($1, $2, $3)
             ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, pbx_kind = EXCLUDED.pbx_kind",
        )
        .bind(id.as_str())
        .bind(name)
        .bind(pbx.as_str())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Inserts or updates a call (live or ended) of its tenant.
    pub async fn upsert_call(&self, call: &Call) -> Result<(), CentralError> {
        let ms = |t: calldesk_calls::Timestamp| t.unix_millis() as f64 / 1000.0;
        sqlx::query(
            "INSERT INTO calls (tenant_id, pbx_call_id, direction, from_raw, from_e164, to_raw,
                to_e164, status, operator, started_at, answered_at, ended_at, hangup_cause)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, to_timestamp($10), to_timestamp($11),
                to_timestamp($12), $13)
             ON CONFLICT (tenant_id, pbx_call_id) DO UPDATE SET
                status = EXCLUDED.status, operator = EXCLUDED.operator,
                answered_at = EXCLUDED.answered_at, ended_at = EXCLUDED.ended_at,
                hangup_cause = EXCLUDED.hangup_cause, updated_at = now()
             -- An ended call is final: a late or replayed earlier state must not reopen it.
             WHERE calls.ended_at IS NULL",
        )
        .bind(call.tenant.as_str())
        .bind(call.id.as_str())
        .bind(call.direction.as_str())
        .bind(&call.from.raw)
        .bind(call.from.number.as_ref().map(|n| n.e164()))
        .bind(&call.to.raw)
        .bind(call.to.number.as_ref().map(|n| n.e164()))
        .bind(call.status.map(|s| s.as_str()))
        .bind(call.operator().map(|e| e.as_str()))
        .bind(ms(call.started_at))
        .bind(call.answered_at.map(ms))
        .bind(call.ended_at.map(ms))
        // Q.850 causes are below 128; anything that does not fit is not a cause.
        .bind(
            call.hangup_cause
                .as_ref()
                .and_then(|c| i16::try_from(c.code).ok()),
        )
        .execute(&self.pool)
        .await?;
        Ok(())
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
