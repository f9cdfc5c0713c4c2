//! The outbox and the pulled state: what this desk must still tell the hub, and what the hub
//! told it.
//!
//! Every after-call write (note, disposition, tags) — and, for a Direct AMI profile that syncs,
//! every ended call — is stored together with its outbox row in one transaction when the store
//! has a sync target ([`LocalStore::with_sync_target`]), so a change is never made without being
//! queued, nor queued without being made. The sync worker reads rows in order
//! ([`LocalStore::pending_changes`]), pushes them and settles them by the hub's answer
//! ([`LocalStore::settle`]); pulled calls and the new cursor are stored in one transaction
//! ([`LocalStore::apply_pulled`]), so a kill at any point repeats work at most, never loses it.

use calldesk_wire::{
    CallNote, CallView, CallbackAction, CallbackView, ChangeKind, HubCall, SyncChange, SyncOutcome,
    SyncResult,
};
use sqlx::Row;

use crate::{LocalStore, StoreError, upsert_ended};

/// A call as the hub has it now (from a pull): its history entry and after-call work.
#[derive(Debug, Clone, PartialEq)]
pub struct PulledCall {
    /// Stored in the history only if it has ended.
    pub view: CallView,
    pub notes: Vec<CallNote>,
    /// The code and when the hub set it (unix ms).
    pub disposition: Option<(String, i64)>,
    pub tags: Vec<String>,
}

/// How many changes wait for the hub, and how many it refused for good.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutboxCounts {
    pub pending: u64,
    pub refused: u64,
}

/// A change the hub refused for good, kept so the operator can see what did not arrive
/// (camelCase: the UI lists them).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RefusedChange {
    pub id: String,
    pub kind: String,
    pub call_id: String,
    pub error: String,
    /// Unix ms.
    pub created_at: i64,
}

/// Queues `change` for `target` inside the caller's transaction.
pub(crate) async fn enqueue(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    target: &str,
    change: &SyncChange,
) -> Result<(), StoreError> {
    let body = serde_json::to_string(change)
        .map_err(|e| StoreError::Invalid(format!("cannot encode a change: {e}")))?;
    sqlx::query(
        "INSERT INTO outbox (id, target, kind, call_id, body, created_at)
         VALUES (?, ?, ?, ?, ?, ?)",
    )
    .bind(&change.id)
    .bind(target)
    .bind(change.change.name())
    .bind(&change.call_id)
    .bind(body)
    .bind(crate::wall_clock_millis())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// A new change id (UUID v4).
pub(crate) fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

impl LocalStore {
    /// The same store, queueing every change for `target` (a hub and tenant; `None`: changes
    /// stay on this desk).
    #[must_use]
    pub fn with_sync_target(mut self, target: Option<String>) -> Self {
        self.target = target.map(Into::into);
        self
    }

    /// Where changes are queued for, if anywhere.
    pub fn sync_target(&self) -> Option<&str> {
        self.target.as_deref()
    }

    /// Stores an ended call this desk heard from its own PBX and queues it for the hub (which
    /// keeps it only if it has no such call: calls belong to the PBX side). Without a sync
    /// target it is only stored.
    pub async fn save_ended_reported(
        &self,
        view: &CallView,
        call: &HubCall,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        upsert_ended(&mut tx, view).await?;
        if let Some(target) = &self.target {
            let change = SyncChange {
                id: new_id(),
                call_id: view.id.clone(),
                at: crate::wall_clock_millis(),
                change: ChangeKind::Call {
                    call: Box::new(call.clone()),
                },
            };
            enqueue(&mut tx, target, &change).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The oldest `limit` changes waiting for the sync target after position `after` (0: from
    /// the first), in the order they were made, each with its position. A row this version
    /// cannot read is set aside as refused (with why), not retried forever.
    pub async fn pending_changes(
        &self,
        after: i64,
        limit: u32,
    ) -> Result<Vec<(i64, SyncChange)>, StoreError> {
        let Some(target) = &self.target else {
            return Ok(Vec::new());
        };
        let rows = sqlx::query(
            "SELECT seq, id, body FROM outbox WHERE target = ? AND state = 'pending' AND seq > ?
             ORDER BY seq LIMIT ?",
        )
        .bind(&**target)
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            let seq: i64 = row.try_get("seq")?;
            let id: String = row.try_get("id")?;
            let body: String = row.try_get("body")?;
            match serde_json::from_str::<SyncChange>(&body) {
                Ok(change) => out.push((seq, change)),
                Err(e) => {
                    sqlx::query("UPDATE outbox SET state = 'refused', last_error = ? WHERE id = ?")
                        .bind(format!(
                            "this change cannot be read back ({e}); it was not sent"
                        ))
                        .bind(&id)
                        .execute(&self.pool)
                        .await?;
                }
            }
        }
        Ok(out)
    }

    /// Settles pushed changes by the hub's answers, in one transaction: applied or duplicate
    /// ones leave the outbox, refused ones stay (never sent again) with the hub's reason,
    /// the others wait for the next push with the reason and one more attempt counted.
    pub async fn settle(&self, results: &[SyncResult]) -> Result<(), StoreError> {
        let done: Vec<&str> = results
            .iter()
            .filter(|r| matches!(r.outcome, SyncOutcome::Applied | SyncOutcome::Duplicate))
            .map(|r| r.id.as_str())
            .collect();
        let mut tx = self.pool.begin().await?;
        if !done.is_empty() {
            // One statement for the whole batch (the common case: everything arrived).
            let ids = serde_json::to_string(&done)
                .map_err(|e| StoreError::Invalid(format!("cannot encode change ids: {e}")))?;
            sqlx::query("DELETE FROM outbox WHERE id IN (SELECT value FROM json_each(?))")
                .bind(ids)
                .execute(&mut *tx)
                .await?;
        }
        for r in results {
            match r.outcome {
                SyncOutcome::Applied | SyncOutcome::Duplicate => {}
                SyncOutcome::Refused => {
                    sqlx::query(
                        "UPDATE outbox SET state = 'refused', attempts = attempts + 1,
                            last_error = ? WHERE id = ?",
                    )
                    .bind(r.error.as_deref().unwrap_or("refused by the hub"))
                    .bind(&r.id)
                    .execute(&mut *tx)
                    .await?;
                }
                SyncOutcome::Retry => {
                    sqlx::query(
                        "UPDATE outbox SET attempts = attempts + 1, last_error = ? WHERE id = ?",
                    )
                    .bind(r.error.as_deref())
                    .bind(&r.id)
                    .execute(&mut *tx)
                    .await?;
                }
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// Changes waiting for, and refused by, the sync target.
    pub async fn outbox_counts(&self) -> Result<OutboxCounts, StoreError> {
        let Some(target) = &self.target else {
            return Ok(OutboxCounts::default());
        };
        let (pending, refused): (i64, i64) = sqlx::query_as(
            "SELECT coalesce(sum(state = 'pending'), 0), coalesce(sum(state = 'refused'), 0)
             FROM outbox WHERE target = ?",
        )
        .bind(&**target)
        .fetch_one(&self.pool)
        .await?;
        Ok(OutboxCounts {
            pending: u64::try_from(pending).unwrap_or(0),
            refused: u64::try_from(refused).unwrap_or(0),
        })
    }

    /// The changes the sync target refused, newest first.
    pub async fn refused_changes(&self, limit: u32) -> Result<Vec<RefusedChange>, StoreError> {
        let Some(target) = &self.target else {
            return Ok(Vec::new());
        };
        let rows = sqlx::query(
            "SELECT id, kind, call_id, coalesce(last_error, '') AS error, created_at FROM outbox
             WHERE target = ? AND state = 'refused' ORDER BY seq DESC LIMIT ?",
        )
        .bind(&**target)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(RefusedChange {
                    id: r.try_get("id")?,
                    kind: r.try_get("kind")?,
                    call_id: r.try_get("call_id")?,
                    error: r.try_get("error")?,
                    created_at: r.try_get("created_at")?,
                })
            })
            .collect()
    }

    /// Where the next pull from the sync target starts (empty: from the beginning).
    pub async fn pull_cursor(&self) -> Result<String, StoreError> {
        let Some(target) = &self.target else {
            return Ok(String::new());
        };
        Ok(self
            .state_value(&format!("cursor:{target}"))
            .await?
            .unwrap_or_default())
    }

    async fn put_state(&self, key: &str, value: &str) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO sync_state (key, value) VALUES (?, ?)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        )
        .bind(key)
        .bind(value)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub(crate) async fn state_value(&self, key: &str) -> Result<Option<String>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT value FROM sync_state WHERE key = ?")
                .bind(key)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// Remembers the tenant's disposition list (checked against while the hub is away).
    pub async fn remember_dispositions(&self, codes: &[String]) -> Result<(), StoreError> {
        let Some(target) = &self.target else {
            return Ok(());
        };
        let text = serde_json::to_string(codes).unwrap_or_else(|_| "[]".to_owned());
        self.put_state(&format!("dispositions:{target}"), &text)
            .await
    }

    /// The tenant's disposition list as last read from the hub.
    pub async fn remembered_dispositions(&self) -> Result<Option<Vec<String>>, StoreError> {
        let Some(target) = &self.target else {
            return Ok(None);
        };
        Ok(self
            .state_value(&format!("dispositions:{target}"))
            .await?
            .and_then(|text| serde_json::from_str(&text).ok()))
    }

    /// Remembers the hub's worklist as last read (shown, with this desk's waiting changes,
    /// while the hub is away).
    pub async fn remember_callbacks(&self, items: &[CallbackView]) -> Result<(), StoreError> {
        let Some(target) = &self.target else {
            return Ok(());
        };
        let text = serde_json::to_string(items)
            .map_err(|e| StoreError::Invalid(format!("cannot encode the worklist: {e}")))?;
        self.put_state(&format!("callbacks:{target}"), &text).await
    }

    /// The hub's worklist as last read, with this desk's worklist changes that wait for the
    /// hub applied on top (a take shows as `me`'s, a close removes the item); `None` if it was
    /// never read.
    pub async fn offline_callbacks(
        &self,
        me: Option<&str>,
    ) -> Result<Option<Vec<CallbackView>>, StoreError> {
        let Some(target) = &self.target else {
            return Ok(None);
        };
        let Some(text) = self.state_value(&format!("callbacks:{target}")).await? else {
            return Ok(None);
        };
        let Ok(mut items) = serde_json::from_str::<Vec<CallbackView>>(&text) else {
            return Ok(None);
        };
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT body, created_at FROM outbox
             WHERE target = ? AND kind = 'callback' AND state = 'pending' ORDER BY seq",
        )
        .bind(&**target)
        .fetch_all(&self.pool)
        .await?;
        for (body, at) in rows {
            let Ok(change) = serde_json::from_str::<SyncChange>(&body) else {
                continue;
            };
            let ChangeKind::Callback { action, .. } = change.change else {
                continue;
            };
            match action {
                CallbackAction::Close => items.retain(|i| i.number != change.call_id),
                CallbackAction::Claim | CallbackAction::Release => {
                    for item in items.iter_mut().filter(|i| i.number == change.call_id) {
                        let claim = action == CallbackAction::Claim;
                        item.claimed_by = claim.then(|| me.unwrap_or("me").to_owned());
                        item.claimed_at = claim.then_some(at);
                    }
                }
            }
        }
        Ok(Some(items))
    }

    /// Stores what a pull brought and the cursor after it, in one transaction. Ended calls go
    /// into the history; notes are added (a note this desk wrote gains its author); the
    /// disposition and tags replace this desk's — unless a change of its own to them is still
    /// waiting to be pushed (it reaches the hub later, so it is the later writer there too).
    pub async fn apply_pulled(&self, calls: &[PulledCall], cursor: &str) -> Result<(), StoreError> {
        let Some(target) = &self.target else {
            return Err(StoreError::Invalid(
                "this store has no sync target to pull for".to_owned(),
            ));
        };
        // A page is a few statements, whatever its size: rows go in as one JSON array each.
        let json = |v: serde_json::Value| v.to_string();
        let ids: Vec<&str> = calls.iter().map(|c| c.view.id.as_str()).collect();
        let mut tx = self.pool.begin().await?;
        // This desk's own changes still waiting to be pushed win over what the hub has now.
        let waiting: Vec<(String, String)> = sqlx::query_as(
            "SELECT DISTINCT call_id, kind FROM outbox
             WHERE state = 'pending' AND kind IN ('disposition', 'tags')
               AND call_id IN (SELECT value FROM json_each(?))",
        )
        .bind(json(serde_json::json!(ids)))
        .fetch_all(&mut *tx)
        .await?;
        let waits = |id: &str, kind: &str| waiting.iter().any(|(c, k)| c == id && k == kind);
        let mut notes = Vec::new();
        let mut dispositions = Vec::new();
        let mut tagged = Vec::new();
        let mut tags = Vec::new();
        for call in calls {
            let id = &call.view.id;
            // A call the history cannot hold (no end time) is skipped, never a reason to stop
            // the page: that would stop every pull after it.
            if call.view.state == calldesk_wire::CallStateView::Ended
                && call.view.status.is_some()
                && call.view.ended_at.is_some()
            {
                upsert_ended(&mut tx, &call.view).await?;
            }
            for n in &call.notes {
                notes.push(serde_json::json!([
                    n.id,
                    id,
                    n.text,
                    n.created_at,
                    n.author
                ]));
            }
            if let Some((code, at)) = &call.disposition
                && !waits(id, "disposition")
            {
                dispositions.push(serde_json::json!([id, code, at]));
            }
            if !waits(id, "tags") {
                tagged.push(id.as_str());
                tags.extend(call.tags.iter().map(|t| serde_json::json!([id, t])));
            }
        }
        sqlx::query(
            "INSERT INTO notes (id, call_id, text, created_at, author)
             SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4
             FROM json_each(?) WHERE true
             ON CONFLICT (id) DO UPDATE SET author = excluded.author
             WHERE notes.author IS NOT excluded.author",
        )
        .bind(json(serde_json::Value::Array(notes)))
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO dispositions (call_id, code, set_at)
             SELECT value ->> 0, value ->> 1, value ->> 2 FROM json_each(?) WHERE true
             ON CONFLICT (call_id) DO UPDATE SET code = excluded.code, set_at = excluded.set_at",
        )
        .bind(json(serde_json::Value::Array(dispositions)))
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM tags WHERE call_id IN (SELECT value FROM json_each(?))")
            .bind(json(serde_json::json!(tagged)))
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO tags (call_id, tag)
             SELECT value ->> 0, value ->> 1 FROM json_each(?) WHERE true
             ON CONFLICT DO NOTHING",
        )
        .bind(json(serde_json::Value::Array(tags)))
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO sync_state (key, value) VALUES (?, ?)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        )
        .bind(format!("cursor:{target}"))
        .bind(cursor)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }
}
