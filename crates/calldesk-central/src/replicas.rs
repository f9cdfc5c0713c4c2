//! Coordination of hub replicas: which replica serves a tenant's PBX (a session-level advisory
//! lock per tenant, held on one dedicated connection), and LISTEN/NOTIFY between replicas.

use std::collections::HashSet;

use calldesk_calls::TenantId;
use sha2::{Digest, Sha256};
use sqlx::PgConnection;

use crate::{CentralError, CentralStore, Listener, check};

/// The most bytes PostgreSQL accepts in a NOTIFY payload, minus one.
pub const MAX_NOTIFY_PAYLOAD: usize = 7999;

/// The advisory-lock key of a tenant's PBX: the first 8 bytes (big endian) of
/// sha256(`calldesk-pbx:` + tenant). Stable across releases and PostgreSQL versions; shown in
/// `pg_locks` as `classid` (high 32 bits) and `objid` (low 32 bits).
pub fn lease_key(tenant: &TenantId) -> i64 {
    advisory_key(&format!("calldesk-pbx:{tenant}"))
}

/// An advisory-lock key: the first 8 bytes (big endian) of sha256(`name`).
pub(crate) fn advisory_key(name: &str) -> i64 {
    let digest = Sha256::digest(name.as_bytes());
    let mut key = [0u8; 8];
    key.iter_mut().zip(digest.iter()).for_each(|(k, d)| *k = *d);
    i64::from_be_bytes(key)
}

/// A dedicated connection holding session-level advisory locks, one per PBX (tenant). It is
/// detached from the pool: dropping it (or losing it) closes the session, which releases every
/// lock it held.
#[derive(Debug)]
pub struct LeaseConnection {
    conn: PgConnection,
    held: HashSet<TenantId>,
}

impl CentralStore {
    /// A new dedicated connection for leases (taken out of the pool, which opens another).
    pub async fn lease_connection(&self) -> Result<LeaseConnection, CentralError> {
        let conn = self.pool.acquire().await?.detach();
        Ok(LeaseConnection {
            conn,
            held: HashSet::new(),
        })
    }

    /// pg_notify(channel, payload) for each payload, one round trip. Delivered when the
    /// statement commits, in order; PostgreSQL delivers identical (channel, payload) pairs of
    /// one statement once.
    /// Records that `replica` is alive and returns how many *other* replicas were seen within
    /// `window_secs` (replicas not seen for an hour are forgotten).
    pub async fn replica_heartbeat(
        &self,
        replica: &str,
        window_secs: i64,
    ) -> Result<i64, CentralError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO hub_replicas (replica, seen_at) VALUES ($1, now())
             ON CONFLICT (replica) DO UPDATE SET seen_at = now()",
        )
        .bind(replica)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM hub_replicas WHERE seen_at < now() - interval '1 hour'")
            .execute(&mut *tx)
            .await?;
        let others: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM hub_replicas
             WHERE replica <> $1 AND seen_at > now() - make_interval(secs => $2)",
        )
        .bind(replica)
        .bind(window_secs as f64)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(others)
    }

    /// Forgets `replica` (it is stopping).
    pub async fn replica_gone(&self, replica: &str) -> Result<(), CentralError> {
        sqlx::query("DELETE FROM hub_replicas WHERE replica = $1")
            .bind(replica)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn notify(&self, channel: &str, payloads: &[String]) -> Result<(), CentralError> {
        if payloads.is_empty() {
            return Ok(());
        }
        if channel.is_empty() || channel.len() > 63 {
            return Err(CentralError::Invalid(format!(
                "channel `{}` must be 1 to 63 bytes",
                channel.escape_debug()
            )));
        }
        for (i, p) in payloads.iter().enumerate() {
            if p.len() > MAX_NOTIFY_PAYLOAD {
                return Err(CentralError::Invalid(format!(
                    "notify payload {i} is {} bytes; at most {MAX_NOTIFY_PAYLOAD} are allowed",
                    p.len()
                )));
            }
            check::no_nul(&format!("notify payload {i}"), p)?;
        }
        sqlx::query("SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p")
            .bind(channel)
            .bind(payloads)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// A listener on these channels (it holds one pooled connection and reconnects by itself;
    /// see `PgListener`).
    pub async fn listen(&self, channels: &[&str]) -> Result<Listener, CentralError> {
        let mut listener = Listener::connect_with(&self.pool).await?;
        listener.listen_all(channels.iter().copied()).await?;
        Ok(listener)
    }
}

impl LeaseConnection {
    /// pg_try_advisory_lock on [`lease_key`]`(tenant)`: true if this connection holds the
    /// tenant's lease now (also when it already did), false if another session holds it.
    pub async fn try_acquire(&mut self, tenant: &TenantId) -> Result<bool, CentralError> {
        // Session locks stack: taking one twice would need two unlocks. Take each once.
        if self.held.contains(tenant) {
            return Ok(true);
        }
        let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(lease_key(tenant))
            .fetch_one(&mut self.conn)
            .await?;
        if got {
            self.held.insert(tenant.clone());
        }
        Ok(got)
    }

    /// Gives the tenant's lease up (nothing if this connection does not hold it).
    pub async fn release(&mut self, tenant: &TenantId) -> Result<(), CentralError> {
        if !self.held.remove(tenant) {
            return Ok(());
        }
        let _released: bool = sqlx::query_scalar("SELECT pg_advisory_unlock($1)")
            .bind(lease_key(tenant))
            .fetch_one(&mut self.conn)
            .await?;
        Ok(())
    }

    /// The tenants whose leases this connection holds.
    pub fn held(&self) -> impl Iterator<Item = &TenantId> {
        self.held.iter()
    }

    /// SELECT 1 — the hub checks the lease connection is alive; if it is not, all locks are gone.
    pub async fn ping(&mut self) -> Result<(), CentralError> {
        sqlx::query("SELECT 1").execute(&mut self.conn).await?;
        Ok(())
    }

    /// Closes the session cleanly, which releases every lease at once.
    pub async fn close(self) -> Result<(), CentralError> {
        sqlx::Connection::close(self.conn).await?;
        Ok(())
    }
}
