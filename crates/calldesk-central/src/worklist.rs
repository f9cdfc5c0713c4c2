//! Tags on calls and the missed-calls worklist.
//!
//! The worklist is derived from the calls, so it can never disagree with them: a caller (by
//! E.164 number) is on it while they have unanswered inbound calls (`missed`, `busy`) recorded
//! after the item was last closed *and* started after the last answered call from or to their
//! number (reaching the caller — whoever called whom — settles the item by itself). The
//! `callbacks` table keeps only who took an item and when it was last closed; a claim is void
//! once an answered call with the number is recorded after it. Closing and claiming are
//! compared with the time calls were *recorded* (`updated_at`, the database's clock), never
//! with the PBX's call times, so a PBX clock that runs ahead or behind cannot hide a new missed
//! call or keep a stale claim.

use calldesk_calls::TenantId;
use calldesk_wire::{CallbackItem, CallbackOutcome};

use crate::{CentralError, CentralStore, check, foreign_key_violation, time};

/// How far back the worklist looks by default, and at most (days).
pub const WORKLIST_DAYS: u32 = 7;
pub const MAX_WORKLIST_DAYS: u32 = 31;
/// The most items one worklist read returns (newest missed call first).
const MAX_ITEMS: i64 = 500;

/// The open items of a tenant (`$2`: the window start, µs; `$3`: one number or NULL for all).
/// One statement: the candidate missed calls, each number's bounds (closed, reached), the calls
/// after both, grouped per number, with the last call's caller card and the live claim.
const OPEN_ITEMS: &str = "
WITH cand AS (
    SELECT c.from_e164 AS number, c.pbx_call_id, c.started_at, c.updated_at
    FROM calls c
    WHERE c.tenant_id = $1 AND c.direction = 'inbound' AND c.status IN ('missed', 'busy')
        AND c.from_e164 IS NOT NULL
        AND c.started_at >= timestamptz 'epoch' + $2 * interval '1 microsecond'
        AND ($3::text IS NULL OR c.from_e164 = $3)
), bounds AS (
    SELECT n.number, cb.closed_at, cb.claimed_by, cb.claimed_at, r.reached_at, r.reached_rec
    FROM (SELECT DISTINCT number FROM cand) n
    LEFT JOIN callbacks cb ON cb.tenant_id = $1 AND cb.number = n.number
    CROSS JOIN LATERAL (
        SELECT max(a.started_at) AS reached_at, max(a.updated_at) AS reached_rec FROM calls a
        WHERE a.tenant_id = $1 AND a.status = 'answered'
            AND (a.from_e164 = n.number OR a.to_e164 = n.number)
    ) r
), open AS (
    SELECT c.* FROM cand c JOIN bounds b USING (number)
    WHERE c.updated_at > coalesce(b.closed_at, '-infinity')
        AND c.started_at > coalesce(b.reached_at, '-infinity')
), g AS (
    SELECT number, count(*)::int8 AS missed, min(started_at) AS first_at,
        max(started_at) AS last_at,
        (array_agg(pbx_call_id ORDER BY started_at DESC, pbx_call_id DESC))[1] AS last_call
    FROM open GROUP BY number
), claims AS (
    SELECT number, claimed_by AS stored_claim,
        CASE WHEN claimed_at > coalesce(reached_rec, '-infinity') THEN claimed_by END
            AS claimed_id,
        CASE WHEN claimed_at > coalesce(reached_rec, '-infinity') THEN claimed_at END
            AS claimed_at
    FROM bounds
)
SELECT g.number, g.missed,
    floor(extract(epoch FROM g.first_at) * 1000)::int8 AS first_ms,
    floor(extract(epoch FROM g.last_at) * 1000)::int8 AS last_ms,
    g.last_call,
    lc.record->'caller'->'contact'->>'name' AS contact,
    lc.record->'caller'->'company'->>'name' AS company,
    k.claimed_id, o.login AS claimed_login,
    floor(extract(epoch FROM k.claimed_at) * 1000)::int8 AS claimed_ms,
    k.stored_claim
FROM g
JOIN claims k USING (number)
JOIN calls lc ON lc.tenant_id = $1 AND lc.pbx_call_id = g.last_call
LEFT JOIN operators o ON o.tenant_id = $1 AND o.id = k.claimed_id
ORDER BY g.last_at DESC, g.number
LIMIT $4";

#[derive(sqlx::FromRow)]
struct ItemRow {
    number: String,
    missed: i64,
    first_ms: i64,
    last_ms: i64,
    last_call: String,
    contact: Option<String>,
    company: Option<String>,
    claimed_id: Option<i64>,
    claimed_login: Option<String>,
    claimed_ms: Option<i64>,
    /// The row's claim as stored (void or not): what a claim races against.
    stored_claim: Option<i64>,
}

impl ItemRow {
    /// Only the holder of a claimed item, or a supervisor, may `what` (an open item: anyone).
    fn may_act(&self, number: &str, by: Actor, what: &str) -> Result<(), CentralError> {
        match self.claimed_id {
            Some(holder) if holder != by.operator && !by.supervisor => {
                Err(CentralError::Conflict(format!(
                    "{number} is taken by {}; only they or a supervisor can {what}",
                    self.claimed_login.as_deref().unwrap_or("someone else")
                )))
            }
            _ => Ok(()),
        }
    }

    fn item(&self) -> CallbackItem {
        CallbackItem {
            number: self.number.clone(),
            name: self.contact.clone().or_else(|| self.company.clone()),
            company: self.company.clone(),
            missed: u32::try_from(self.missed).unwrap_or(u32::MAX),
            first_missed_at: time::millis_rfc3339(self.first_ms),
            last_missed_at: time::millis_rfc3339(self.last_ms),
            last_call_id: self.last_call.clone(),
            claimed_by: self.claimed_login.clone(),
            claimed_at: self.claimed_ms.map(time::millis_rfc3339),
        }
    }
}

/// Who acts on a worklist item: an operator of the tenant; a supervisor may take over or close
/// an item someone else holds.
#[derive(Debug, Clone, Copy)]
pub struct Actor {
    pub operator: i64,
    pub supervisor: bool,
}

fn number(value: &str) -> Result<&str, CentralError> {
    if check::is_e164(value) {
        Ok(value)
    } else {
        Err(CentralError::Invalid(format!(
            "`{}` is not a number in E.164 form (+ and 8 to 15 digits)",
            value.escape_debug()
        )))
    }
}

fn window_start_us(days: u32, now_ms: i64) -> Result<i64, CentralError> {
    if !(1..=MAX_WORKLIST_DAYS).contains(&days) {
        return Err(CentralError::Invalid(format!(
            "the worklist looks back 1 to {MAX_WORKLIST_DAYS} days, not {days}"
        )));
    }
    Ok((now_ms - i64::from(days) * 86_400_000) * 1000)
}

impl CentralStore {
    /// Replaces the call's tags with `tags` (normalised by [`calldesk_wire::normalize_tags`])
    /// and returns them as stored. NotFound if the call is not in the tenant.
    pub async fn set_tags(
        &self,
        t: &TenantId,
        call_id: &str,
        tags: &[String],
    ) -> Result<Vec<String>, CentralError> {
        let tags = calldesk_wire::normalize_tags(tags).map_err(CentralError::Invalid)?;
        let not_found =
            || CentralError::NotFound(format!("no call {} in tenant {t}", call_id.escape_debug()));
        let exists: bool = sqlx::query_scalar(
            "WITH del AS (
                DELETE FROM call_tags
                WHERE tenant_id = $1 AND pbx_call_id = $2 AND tag <> ALL($3)
             ), ins AS (
                INSERT INTO call_tags (tenant_id, pbx_call_id, tag)
                SELECT $1, $2, unnest($3::text[])
                ON CONFLICT DO NOTHING
             )
             SELECT EXISTS (SELECT 1 FROM calls WHERE tenant_id = $1 AND pbx_call_id = $2)",
        )
        .bind(t.as_str())
        .bind(call_id)
        .bind(&tags)
        .fetch_one(&self.pool)
        .await
        .map_err(|e| match foreign_key_violation(&e) {
            Some(_) => not_found(),
            None => CentralError::Sql(e),
        })?;
        if !exists {
            return Err(not_found());
        }
        Ok(tags)
    }

    /// The tenant's worklist: callers to call back, newest missed call first, looking back
    /// `days` (1–31) from `now_ms` (the caller's clock, unix ms).
    pub async fn callbacks(
        &self,
        t: &TenantId,
        days: u32,
        now_ms: i64,
    ) -> Result<Vec<CallbackItem>, CentralError> {
        let rows = self
            .open_items(t, window_start_us(days, now_ms)?, None)
            .await?;
        Ok(rows.iter().map(ItemRow::item).collect())
    }

    async fn open_items(
        &self,
        t: &TenantId,
        since_us: i64,
        number: Option<&str>,
    ) -> Result<Vec<ItemRow>, CentralError> {
        Ok(sqlx::query_as(OPEN_ITEMS)
            .bind(t.as_str())
            .bind(since_us)
            .bind(number)
            .bind(MAX_ITEMS)
            .fetch_all(&self.pool)
            .await?)
    }

    /// The open item of `number` (in the default window), or NotFound.
    async fn open_item(
        &self,
        t: &TenantId,
        number: &str,
        now_ms: i64,
    ) -> Result<ItemRow, CentralError> {
        let since = window_start_us(MAX_WORKLIST_DAYS, now_ms)?;
        self.open_items(t, since, Some(number))
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| {
                CentralError::NotFound(format!(
                    "no missed calls from {number} wait for a call back in tenant {t}"
                ))
            })
    }

    /// Takes (`claim`) the item of `number` for `by`, or gives it back (unclaimed). Taking
    /// one's own item again, or giving back an open one, is a no-op. An item someone else holds
    /// is a Conflict that names them, unless `by` is a supervisor. Two operators taking the
    /// same item at once: one gets it, the other the Conflict.
    pub async fn claim_callback(
        &self,
        t: &TenantId,
        number_raw: &str,
        by: Actor,
        claim: bool,
        now_ms: i64,
    ) -> Result<CallbackItem, CentralError> {
        let number = number(number_raw)?;
        let item = self.open_item(t, number, now_ms).await?;
        let wanted = claim.then_some(by.operator);
        if item.claimed_id == wanted {
            return Ok(item.item());
        }
        let what = if claim {
            "take it over"
        } else {
            "give it back"
        };
        item.may_act(number, by, what)?;
        // Compare-and-set against the stored claim: a concurrent claim makes this a no-op.
        let won = sqlx::query(
            "INSERT INTO callbacks (tenant_id, number, claimed_by, claimed_at)
             VALUES ($1, $2, $3, CASE WHEN $3 IS NULL THEN NULL ELSE now() END)
             ON CONFLICT (tenant_id, number) DO UPDATE SET
                claimed_by = EXCLUDED.claimed_by, claimed_at = EXCLUDED.claimed_at
             WHERE callbacks.claimed_by IS NOT DISTINCT FROM $4",
        )
        .bind(t.as_str())
        .bind(number)
        .bind(wanted)
        .bind(item.stored_claim)
        .execute(&self.pool)
        .await
        .map_err(|e| self::missing_operator(e, t, by.operator))?
        .rows_affected()
            == 1;
        let now = self.open_item(t, number, now_ms).await?;
        if !won && now.claimed_id != wanted {
            return Err(CentralError::Conflict(format!(
                "{number} was just taken by {}",
                now.claimed_login.as_deref().unwrap_or("someone else")
            )));
        }
        Ok(now.item())
    }

    /// Closes the item of `number` with `outcome`: it leaves the worklist until the caller's
    /// next unanswered call. Anyone may close an unclaimed item; a claimed one only its holder
    /// or a supervisor.
    pub async fn close_callback(
        &self,
        t: &TenantId,
        number_raw: &str,
        outcome: CallbackOutcome,
        by: Actor,
        now_ms: i64,
    ) -> Result<(), CentralError> {
        let number = number(number_raw)?;
        self.open_item(t, number, now_ms)
            .await?
            .may_act(number, by, "close it")?;
        sqlx::query(
            "INSERT INTO callbacks (tenant_id, number, closed_at, closed_by, outcome)
             VALUES ($1, $2, now(), $3, $4)
             ON CONFLICT (tenant_id, number) DO UPDATE SET
                closed_at = EXCLUDED.closed_at, closed_by = EXCLUDED.closed_by,
                outcome = EXCLUDED.outcome, claimed_by = NULL, claimed_at = NULL",
        )
        .bind(t.as_str())
        .bind(number)
        .bind(by.operator)
        .bind(outcome.as_str())
        .execute(&self.pool)
        .await
        .map_err(|e| self::missing_operator(e, t, by.operator))?;
        Ok(())
    }
}

fn missing_operator(e: sqlx::Error, t: &TenantId, operator: i64) -> CentralError {
    match foreign_key_violation(&e) {
        Some(_) => CentralError::NotFound(format!("no operator {operator} in tenant {t}")),
        None => CentralError::Sql(e),
    }
}
