//! The Mango webhook inbox: each webhook is persisted before the hub answers 200, processed in
//! id order, and replayed by the replica that takes a tenant over. A webhook delivered twice
//! (same tenant, path and body) is stored once.

use std::collections::HashMap;

use calldesk_calls::TenantId;
use sha2::{Digest, Sha256};

use crate::{CentralError, CentralStore, check};

/// At most this many items per read.
pub const MAX_READ: i64 = 10_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboxItem {
    pub tenant: TenantId,
    /// The webhook's path, e.g. `/events/call`.
    pub path: String,
    /// The signed `json` field, exactly as received.
    pub body: String,
    pub received_at_ms: i64,
}

/// sha256 of the path's length (8 bytes, little endian), the path and the body: unambiguous.
fn digest(path: &str, body: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update((path.len() as u64).to_le_bytes());
    h.update(path.as_bytes());
    h.update(body.as_bytes());
    h.finalize().into()
}

/// One distinct item of a batch and, once known, its id.
struct Distinct<'a> {
    item: &'a InboxItem,
    digest: [u8; 32],
    id: Option<i64>,
}

/// Gives each distinct item the id of its `(tenant, digest, id)` row.
fn set_ids(distinct: &mut [Distinct<'_>], rows: Vec<(String, Vec<u8>, i64)>) {
    let index: HashMap<(&str, &[u8]), usize> = distinct
        .iter()
        .enumerate()
        .map(|(i, d)| ((d.item.tenant.as_str(), &d.digest[..]), i))
        .collect();
    let mut ids = Vec::with_capacity(rows.len());
    for (tenant, digest, id) in &rows {
        if let Some(&i) = index.get(&(tenant.as_str(), digest.as_slice())) {
            ids.push((i, *id));
        }
    }
    drop(index);
    for (i, id) in ids {
        if let Some(d) = distinct.get_mut(i) {
            d.id = Some(id);
        }
    }
}

#[derive(sqlx::FromRow)]
struct InboxRow {
    id: i64,
    path: String,
    body: String,
    received_at_ms: i64,
}

const INBOX_SELECT: &str = "SELECT id, path, body,
        floor(extract(epoch FROM received_at) * 1000)::int8 AS received_at_ms
    FROM webhook_inbox";

fn items(t: &TenantId, rows: Vec<InboxRow>) -> Vec<(i64, InboxItem)> {
    rows.into_iter()
        .map(|r| {
            (
                r.id,
                InboxItem {
                    tenant: t.clone(),
                    path: r.path,
                    body: r.body,
                    received_at_ms: r.received_at_ms,
                },
            )
        })
        .collect()
}

impl CentralStore {
    /// One round trip for many; returns their ids in order. Duplicates (same tenant + sha256 of
    /// path+body), within the batch or with stored items, are kept once and return the
    /// existing id. A path or body with a NUL character refuses the batch (`Invalid`); an
    /// unknown tenant is `NotFound`.
    pub async fn insert_webhooks(&self, items: &[InboxItem]) -> Result<Vec<i64>, CentralError> {
        if items.is_empty() {
            return Ok(Vec::new());
        }
        // Distinct items, and for each input item the index of its distinct item.
        let mut seen: HashMap<(&str, [u8; 32]), usize> = HashMap::with_capacity(items.len());
        let mut slot_of = Vec::with_capacity(items.len());
        let mut distinct: Vec<Distinct<'_>> = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            check::no_nul(&format!("webhook {i}: the path"), &item.path)?;
            check::no_nul(&format!("webhook {i}: the body"), &item.body)?;
            let digest = digest(&item.path, &item.body);
            let slot = *seen
                .entry((item.tenant.as_str(), digest))
                .or_insert_with(|| {
                    distinct.push(Distinct {
                        item,
                        digest,
                        id: None,
                    });
                    distinct.len() - 1
                });
            slot_of.push(slot);
        }
        // A plain INSERT (cheap to plan, unlike a join over the input): the rows it inserted
        // come back by digest; duplicates of stored items are looked up after.
        let inserted: Vec<(String, Vec<u8>, i64)> = sqlx::query_as(
            "INSERT INTO webhook_inbox (tenant_id, path, body, digest, received_at)
             SELECT tenant_id, path, body, digest,
                 timestamptz 'epoch' + received_ms * interval '1 millisecond'
             FROM unnest($1::text[], $2::text[], $3::text[], $4::bytea[], $5::int8[])
                 WITH ORDINALITY AS x(tenant_id, path, body, digest, received_ms, ord)
             ORDER BY ord
             ON CONFLICT (tenant_id, digest) DO NOTHING
             RETURNING tenant_id, digest, id",
        )
        .bind(
            distinct
                .iter()
                .map(|d| d.item.tenant.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(
            distinct
                .iter()
                .map(|d| d.item.path.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(
            distinct
                .iter()
                .map(|d| d.item.body.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(
            distinct
                .iter()
                .map(|d| d.digest.to_vec())
                .collect::<Vec<_>>(),
        )
        .bind(
            distinct
                .iter()
                .map(|d| d.item.received_at_ms)
                .collect::<Vec<_>>(),
        )
        .fetch_all(&self.pool)
        .await
        .map_err(crate::unknown_tenant)?;
        set_ids(&mut distinct, inserted);
        // Duplicates of stored items (including one another transaction committed while this
        // statement ran): their existing ids.
        let missing: Vec<&Distinct<'_>> = distinct.iter().filter(|d| d.id.is_none()).collect();
        if !missing.is_empty() {
            let found: Vec<(String, Vec<u8>, i64)> = sqlx::query_as(
                "SELECT w.tenant_id, w.digest, w.id
                 FROM unnest($1::text[], $2::bytea[]) AS x(tenant_id, digest)
                 JOIN webhook_inbox w ON w.tenant_id = x.tenant_id AND w.digest = x.digest",
            )
            .bind(
                missing
                    .iter()
                    .map(|d| d.item.tenant.as_str())
                    .collect::<Vec<_>>(),
            )
            .bind(
                missing
                    .iter()
                    .map(|d| d.digest.to_vec())
                    .collect::<Vec<_>>(),
            )
            .fetch_all(&self.pool)
            .await?;
            set_ids(&mut distinct, found);
        }
        slot_of
            .into_iter()
            .enumerate()
            .map(|(i, slot)| {
                distinct.get(slot).and_then(|d| d.id).ok_or_else(|| {
                    crate::corrupt(format!("webhook {i} was neither stored nor found"))
                })
            })
            .collect()
    }

    /// The tenant's items with an id above `after_id`, in id order (`limit` clamped to
    /// 1..=10,000).
    pub async fn webhooks_after(
        &self,
        t: &TenantId,
        after_id: i64,
        limit: i64,
    ) -> Result<Vec<(i64, InboxItem)>, CentralError> {
        self.read_inbox(t, "", after_id, limit).await
    }

    /// One page of the tenant's items above `after_id` that also pass `and` (SQL, `""` for none).
    async fn read_inbox(
        &self,
        t: &TenantId,
        and: &str,
        after_id: i64,
        limit: i64,
    ) -> Result<Vec<(i64, InboxItem)>, CentralError> {
        let rows = sqlx::query_as(&format!(
            "{INBOX_SELECT} WHERE tenant_id = $1 {and} AND id > $2 ORDER BY id LIMIT $3"
        ))
        .bind(t.as_str())
        .bind(after_id)
        .bind(limit.clamp(1, MAX_READ))
        .fetch_all(&self.pool)
        .await?;
        Ok(items(t, rows))
    }

    /// Marks these items of the tenant as processed (their calls are over and stored); ids of
    /// another tenant are left alone.
    pub async fn mark_webhooks_processed(
        &self,
        t: &TenantId,
        ids: &[i64],
    ) -> Result<(), CentralError> {
        if ids.is_empty() {
            return Ok(());
        }
        sqlx::query(
            "UPDATE webhook_inbox SET processed = true
             WHERE tenant_id = $1 AND id = ANY($2) AND NOT processed",
        )
        .bind(t.as_str())
        .bind(ids)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Unprocessed items of a tenant with an id above `after_id` (replayed by the replica that
    /// takes over the tenant, page by page), in id order (`limit` clamped to 1..=10,000).
    pub async fn unprocessed_webhooks(
        &self,
        t: &TenantId,
        after_id: i64,
        limit: i64,
    ) -> Result<Vec<(i64, InboxItem)>, CentralError> {
        self.read_inbox(t, "AND NOT processed", after_id, limit)
            .await
    }

    /// Deletes the tenant's processed items received before `received_before_ms`; returns how
    /// many. (The inbox grows by every webhook: the hub prunes it periodically.)
    pub async fn prune_webhooks(
        &self,
        t: &TenantId,
        received_before_ms: i64,
    ) -> Result<u64, CentralError> {
        let done = sqlx::query(
            "DELETE FROM webhook_inbox WHERE tenant_id = $1 AND processed
                AND received_at < timestamptz 'epoch' + $2 * interval '1 millisecond'",
        )
        .bind(t.as_str())
        .bind(received_before_ms)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }
}
