//! Tags and this desk's missed-calls worklist, with the hub's rules (calldesk-central's
//! `worklist.rs`): a caller is on the list while they have unanswered inbound calls stored after
//! the item was last closed and started after the last answered call from or to their number;
//! a claim is void once such an answered call is stored after it. One operator per desk: a
//! claim is "me".

use calldesk_wire::{CallbackAction, ChangeKind};
use calldesk_wire::{CallbackOutcome, CallbackView};
use sqlx::Row;

use crate::{LocalStore, StoreError};

const OPEN_ITEMS: &str = "
WITH cand AS (
    SELECT from_e164 AS number, id, started_at, coalesce(recorded_at, ended_at) AS rec
    FROM calls
    WHERE direction = 'inbound' AND status IN ('missed', 'busy') AND from_e164 IS NOT NULL
        AND started_at >= ?1 AND (?2 IS NULL OR from_e164 = ?2)
), bounds AS (
    -- One pass over the answered calls with each number: when it was last reached (call time)
    -- and when that was stored (this desk's clock).
    SELECT n.number, cb.closed_at, cb.claimed_at,
        max(a.started_at) AS reached_at,
        max(coalesce(a.recorded_at, a.ended_at)) AS reached_rec
    FROM (SELECT DISTINCT number FROM cand) n
    LEFT JOIN callbacks cb ON cb.number = n.number
    LEFT JOIN calls a ON a.status = 'answered'
        AND (a.from_e164 = n.number OR a.to_e164 = n.number)
    GROUP BY n.number
), open AS (
    SELECT c.* FROM cand c JOIN bounds b USING (number)
    WHERE c.rec > coalesce(b.closed_at, -1) AND c.started_at > coalesce(b.reached_at, -1)
), g AS (
    SELECT number, count(*) AS missed, min(started_at) AS first_at, max(started_at) AS last_at,
        (SELECT o2.id FROM open o2 WHERE o2.number = o.number
            ORDER BY o2.started_at DESC, o2.id DESC LIMIT 1) AS last_call
    FROM open o GROUP BY number
)
SELECT g.number, g.missed, g.first_at, g.last_at, g.last_call, lc.from_name, lc.company,
    CASE WHEN b.claimed_at > coalesce(b.reached_rec, -1) THEN b.claimed_at END AS claimed_at
FROM g
JOIN bounds b USING (number)
JOIN calls lc ON lc.id = g.last_call
ORDER BY g.last_at DESC, g.number
LIMIT 500";

impl LocalStore {
    /// Replaces the call's tags (normalised by [`calldesk_wire::normalize_tags`]); returns them.
    pub async fn set_tags(
        &self,
        call_id: &str,
        tags: &[String],
    ) -> Result<Vec<String>, StoreError> {
        let tags = calldesk_wire::normalize_tags(tags).map_err(StoreError::Invalid)?;
        let mut tx = self.pool.begin().await?;
        replace_tags(&mut tx, call_id, &tags).await?;
        self.queue(
            &mut tx,
            call_id,
            crate::wall_clock_millis(),
            calldesk_wire::ChangeKind::Tags { tags: tags.clone() },
            None,
        )
        .await?;
        tx.commit().await?;
        Ok(tags)
    }

    pub(crate) async fn tags(&self, call_id: &str) -> Result<Vec<String>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT tag FROM tags WHERE call_id = ? ORDER BY tag")
                .bind(call_id)
                .fetch_all(&self.pool)
                .await?,
        )
    }

    /// The worklist: callers whose calls went unanswered since `since` (unix ms), newest
    /// missed call first.
    pub async fn callbacks(&self, since: i64) -> Result<Vec<CallbackView>, StoreError> {
        self.open_items(since, None).await
    }

    async fn open_items(
        &self,
        since: i64,
        number: Option<&str>,
    ) -> Result<Vec<CallbackView>, StoreError> {
        let rows = sqlx::query(OPEN_ITEMS)
            .bind(since)
            .bind(number)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                let claimed_at: Option<i64> = r.try_get("claimed_at")?;
                let company: Option<String> = r.try_get("company")?;
                let name: Option<String> = r.try_get("from_name")?;
                let number: String = r.try_get("number")?;
                Ok(CallbackView {
                    display: number.clone(),
                    number,
                    name: name.or_else(|| company.clone()),
                    company,
                    missed: u32::try_from(r.try_get::<i64, _>("missed")?).unwrap_or(u32::MAX),
                    first_missed_at: r.try_get("first_at")?,
                    last_missed_at: r.try_get("last_at")?,
                    last_call_id: r.try_get("last_call")?,
                    claimed_by: claimed_at.map(|_| "me".to_owned()),
                    claimed_at,
                })
            })
            .collect()
    }

    async fn open_item(&self, number: &str) -> Result<CallbackView, StoreError> {
        self.open_items(0, Some(number))
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| {
                StoreError::Invalid(format!(
                    "no missed calls from {number} wait for a call back"
                ))
            })
    }

    /// Takes (`claim`) or gives back the item of `number` at `now` (unix ms).
    pub async fn claim_callback(
        &self,
        number: &str,
        claim: bool,
        now: i64,
    ) -> Result<CallbackView, StoreError> {
        let item = self.open_item(number).await?;
        if item.claimed_at.is_some() == claim {
            return Ok(item);
        }
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO callbacks (number, claimed_at) VALUES (?1, ?2)
             ON CONFLICT (number) DO UPDATE SET claimed_at = ?2",
        )
        .bind(number)
        .bind(claim.then_some(now))
        .execute(&mut *tx)
        .await?;
        let action = if claim {
            CallbackAction::Claim
        } else {
            CallbackAction::Release
        };
        self.queue_callback_in(&mut tx, number, action, None, now)
            .await?;
        tx.commit().await?;
        self.open_item(number).await
    }

    /// Closes the item of `number` at `now` (unix ms): off the list until the next miss.
    pub async fn close_callback(
        &self,
        number: &str,
        outcome: CallbackOutcome,
        now: i64,
    ) -> Result<(), StoreError> {
        self.open_item(number).await?;
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO callbacks (number, closed_at, outcome) VALUES (?1, ?2, ?3)
             ON CONFLICT (number) DO UPDATE SET closed_at = ?2, outcome = ?3, claimed_at = NULL",
        )
        .bind(number)
        .bind(now)
        .bind(outcome.as_str())
        .execute(&mut *tx)
        .await?;
        self.queue_callback_in(&mut tx, number, CallbackAction::Close, Some(outcome), now)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Queues a worklist change for the hub alone (the Hub profile's worklist is the hub's;
    /// this is what a take or close made while the hub is away becomes).
    pub async fn queue_callback(
        &self,
        number: &str,
        action: CallbackAction,
        outcome: Option<CallbackOutcome>,
        now: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        self.queue_callback_in(&mut tx, number, action, outcome, now)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Forgets this desk's queued worklist changes of `number` for the sync target: an action
    /// the hub just took online supersedes them (sent later, they would undo it).
    pub async fn drop_queued_callbacks(&self, number: &str) -> Result<u64, StoreError> {
        let Some(target) = self.sync_target() else {
            return Ok(0);
        };
        Ok(sqlx::query(
            "DELETE FROM outbox WHERE target = ? AND kind = 'callback' AND call_id = ?
             AND state = 'pending'",
        )
        .bind(target)
        .bind(number)
        .execute(&self.pool)
        .await?
        .rows_affected())
    }

    async fn queue_callback_in(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
        number: &str,
        action: CallbackAction,
        outcome: Option<CallbackOutcome>,
        now: i64,
    ) -> Result<(), StoreError> {
        self.queue(
            tx,
            number,
            now,
            ChangeKind::Callback { action, outcome },
            None,
        )
        .await
    }
}

/// Replaces a call's tags (already normalised) inside the caller's transaction.
pub(crate) async fn replace_tags(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    call_id: &str,
    tags: &[String],
) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM tags WHERE call_id = ?")
        .bind(call_id)
        .execute(&mut **tx)
        .await?;
    for tag in tags {
        sqlx::query("INSERT INTO tags (call_id, tag) VALUES (?, ?)")
            .bind(call_id)
            .bind(tag)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}
