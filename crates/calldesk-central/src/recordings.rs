//! Recordings on their way into the recordings store: added with their call, leased by one hub
//! replica at a time (`FOR UPDATE SKIP LOCKED` plus a lease token and expiry, so a replica that
//! dies mid-upload only delays the row), marked stored, or given a next try and the reason.

use std::time::Duration;

use crate::{CentralError, CentralStore, corrupt, unknown_tenant};
use calldesk_calls::TenantId;

/// After this many failed tries a recording shows as failed (it is still retried, less often).
pub const FAILED_AFTER: i32 = 5;

/// The longest reason kept.
const MAX_ERROR: usize = 500;

/// A recording to add: the call's, under the store key made from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRecording {
    pub tenant: TenantId,
    pub call: String,
    /// As the PBX names it: the MixMonitor file, Mango's recording_id.
    pub name: String,
    pub store_key: String,
}

/// A leased recording: fetch it, upload it under `store_key`, then report with its token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordingJob {
    pub tenant: TenantId,
    pub call: String,
    pub name: String,
    pub store_key: String,
    /// Tries so far, this one included.
    pub attempts: i32,
    /// The lease's UUID (text).
    pub lease_token: String,
}

/// Where a recording is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordingState {
    /// Not stored yet (never tried, being tried, or to be tried again).
    Pending,
    Stored,
    /// Tried [`FAILED_AFTER`] times without success; still retried.
    Failed,
}

impl RecordingState {
    fn parse(text: &str) -> Result<Self, CentralError> {
        match text {
            "pending" => Ok(Self::Pending),
            "stored" => Ok(Self::Stored),
            "failed" => Ok(Self::Failed),
            other => Err(corrupt(format!("recording state `{other}`"))),
        }
    }
}

/// A recording of a call as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordingRow {
    pub name: String,
    pub store_key: String,
    pub state: RecordingState,
    pub attempts: i32,
    /// Why the last try failed (kept until it is stored).
    pub last_error: Option<String>,
    pub size_bytes: Option<i64>,
}

#[derive(sqlx::FromRow)]
struct JobRow {
    tenant_id: String,
    pbx_call_id: String,
    name: String,
    store_key: String,
    attempts: i32,
    lease_token: String,
}

#[derive(sqlx::FromRow)]
struct StateRow {
    name: String,
    store_key: String,
    state: String,
    attempts: i32,
    last_error: Option<String>,
    size_bytes: Option<i64>,
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl CentralStore {
    /// Adds recordings not known yet (one statement; a recording twice in the batch counts
    /// once); a known one that is not stored yet is made due now (Mango's `record/added` says a download will work). Returns how many are
    /// new.
    pub async fn add_recordings(&self, recordings: &[NewRecording]) -> Result<u64, CentralError> {
        if recordings.is_empty() {
            return Ok(0);
        }
        let tenants: Vec<&str> = recordings.iter().map(|r| r.tenant.as_str()).collect();
        let calls: Vec<&str> = recordings.iter().map(|r| r.call.as_str()).collect();
        let names: Vec<&str> = recordings.iter().map(|r| r.name.as_str()).collect();
        let keys: Vec<&str> = recordings.iter().map(|r| r.store_key.as_str()).collect();
        let inserted: Vec<bool> = sqlx::query_scalar(
            "INSERT INTO recordings (tenant_id, pbx_call_id, name, store_key)
             SELECT DISTINCT ON (t, c, n) t, c, n, k
             FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[]) AS u (t, c, n, k)
             ORDER BY t, c, n
             ON CONFLICT (tenant_id, pbx_call_id, name) DO UPDATE
                 SET next_try_at = least(recordings.next_try_at, now())
                 WHERE recordings.state <> 'stored'
             RETURNING (xmax = 0)",
        )
        .bind(&tenants)
        .bind(&calls)
        .bind(&names)
        .bind(&keys)
        .fetch_all(&self.pool)
        .await
        .map_err(unknown_tenant)?;
        Ok(inserted.iter().filter(|new| **new).count() as u64)
    }

    /// Leases up to `limit` due recordings of `tenants` (those whose PBX this replica holds:
    /// it is the one that can reach the recordings) for `lease`; rows leased by another replica
    /// whose lease has run out are due again.
    pub async fn lease_recordings(
        &self,
        tenants: &[TenantId],
        limit: i64,
        lease: Duration,
    ) -> Result<Vec<RecordingJob>, CentralError> {
        let tenants: Vec<&str> = tenants.iter().map(TenantId::as_str).collect();
        let rows: Vec<JobRow> = sqlx::query_as(
            "UPDATE recordings r
             SET leased_until = now() + $2 * interval '1 millisecond',
                 lease_token = gen_random_uuid(), attempts = r.attempts + 1
             FROM (SELECT tenant_id, pbx_call_id, name FROM recordings
                   WHERE state <> 'stored' AND next_try_at <= now() AND tenant_id = ANY($3)
                       AND (leased_until IS NULL OR leased_until < now())
                   ORDER BY next_try_at
                   LIMIT $1
                   FOR UPDATE SKIP LOCKED) due
             WHERE r.tenant_id = due.tenant_id AND r.pbx_call_id = due.pbx_call_id
                 AND r.name = due.name
             RETURNING r.tenant_id, r.pbx_call_id, r.name, r.store_key, r.attempts,
                 r.lease_token::text AS lease_token",
        )
        .bind(limit)
        .bind(millis(lease))
        .bind(&tenants)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|r| {
                Ok(RecordingJob {
                    tenant: TenantId::new(r.tenant_id.clone())
                        .map_err(|e| corrupt(format!("recording tenant: {e}")))?,
                    call: r.pbx_call_id,
                    name: r.name,
                    store_key: r.store_key,
                    attempts: r.attempts,
                    lease_token: r.lease_token,
                })
            })
            .collect()
    }

    /// Extends a lease still held; false when it was lost (expired and taken over).
    pub async fn renew_recording_lease(
        &self,
        job: &RecordingJob,
        lease: Duration,
    ) -> Result<bool, CentralError> {
        let done = sqlx::query(
            "UPDATE recordings SET leased_until = now() + $5 * interval '1 millisecond'
             WHERE tenant_id = $1 AND pbx_call_id = $2 AND name = $3 AND lease_token = $4::uuid
                 AND state <> 'stored'",
        )
        .bind(job.tenant.as_str())
        .bind(&job.call)
        .bind(&job.name)
        .bind(&job.lease_token)
        .bind(millis(lease))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The recording is in the store (`size` bytes). Marked whoever holds the lease now: the
    /// object under the key is the same.
    pub async fn recording_stored(
        &self,
        job: &RecordingJob,
        size: u64,
    ) -> Result<(), CentralError> {
        sqlx::query(
            "UPDATE recordings SET state = 'stored', size_bytes = $4, stored_at = now(),
                 leased_until = NULL, lease_token = NULL, last_error = NULL
             WHERE tenant_id = $1 AND pbx_call_id = $2 AND name = $3",
        )
        .bind(job.tenant.as_str())
        .bind(&job.call)
        .bind(&job.name)
        .bind(i64::try_from(size).unwrap_or(i64::MAX))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// This try failed with `error`; the next one in `retry_in`. Ignored when the lease was
    /// lost (the new holder reports). Returns the state the recording is now in.
    pub async fn recording_failed(
        &self,
        job: &RecordingJob,
        error: &str,
        retry_in: Duration,
    ) -> Result<Option<RecordingState>, CentralError> {
        let error: String = error
            .chars()
            .filter(|c| !c.is_control())
            .take(MAX_ERROR)
            .collect();
        let state: Option<String> = sqlx::query_scalar(
            "UPDATE recordings SET
                 state = CASE WHEN attempts >= $7 THEN 'failed' ELSE 'pending' END,
                 next_try_at = now() + $6 * interval '1 millisecond',
                 leased_until = NULL, lease_token = NULL, last_error = $5
             WHERE tenant_id = $1 AND pbx_call_id = $2 AND name = $3 AND lease_token = $4::uuid
                 AND state <> 'stored'
             RETURNING state",
        )
        .bind(job.tenant.as_str())
        .bind(&job.call)
        .bind(&job.name)
        .bind(&job.lease_token)
        .bind(&error)
        .bind(millis(retry_in))
        .bind(FAILED_AFTER)
        .fetch_optional(&self.pool)
        .await?;
        state.as_deref().map(RecordingState::parse).transpose()
    }

    /// The recordings of a call, in the order they were added.
    pub async fn recordings_of(
        &self,
        t: &TenantId,
        call: &str,
    ) -> Result<Vec<RecordingRow>, CentralError> {
        let rows: Vec<StateRow> = sqlx::query_as(
            "SELECT name, store_key, state, attempts, last_error, size_bytes
             FROM recordings WHERE tenant_id = $1 AND pbx_call_id = $2
             ORDER BY created_at, name",
        )
        .bind(t.as_str())
        .bind(call)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|r| {
                Ok(RecordingRow {
                    name: r.name,
                    store_key: r.store_key,
                    state: RecordingState::parse(&r.state)?,
                    attempts: r.attempts,
                    last_error: r.last_error,
                    size_bytes: r.size_bytes,
                })
            })
            .collect()
    }
}
