//! Desk sync: the changes desks push, applied once each ([`CentralStore::apply_changes`]), and
//! the change feed they pull ([`CentralStore::changes_since`]).
//!
//! A push is one transaction: the change ids not seen before are recorded in `sync_applied`
//! and their effects written together, in bulk (`UNNEST`), so a batch sent twice — or a desk
//! killed before it heard the answer — changes nothing the second time. The conflict rule is
//! `calldesk_wire::sync`'s: notes append, dispositions and tag sets are last writer by the
//! hub's clock, calls belong to the PBX side.
//!
//! The feed (`sync_feed`, written by triggers in the same transaction as each change) is read
//! in `(xid, seq)` order below the oldest running transaction, so the cursor never skips a
//! change that commits later.

use std::collections::{HashMap, HashSet};

use calldesk_calls::TenantId;
use calldesk_wire::{
    CallbackAction, CallbackOutcome, ChangeKind, HubCall, SyncChange, SyncOutcome, SyncPage,
    SyncResult,
};
use sqlx::types::Json;

use crate::calls::{CALL_SELECT, CallColumns, CallRow, REPORT_CALLS, is_ended, stripped};
use crate::{CentralError, CentralStore, check};

/// Who pushes or pulls: their operator id (a note's author, a disposition's setter) and, for
/// an operator, the extension whose calls they may touch (`None`: a supervisor, every call of
/// the tenant).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncActor {
    pub operator_id: Option<i64>,
    pub extension: Option<String>,
}

impl SyncActor {
    fn worklist(&self) -> Option<crate::Actor> {
        Some(crate::Actor {
            operator: self.operator_id?,
            supervisor: self.extension.is_none(),
        })
    }
}

impl SyncActor {
    fn may_touch(&self, call: &HubCall) -> bool {
        match &self.extension {
            None => true,
            Some(ext) => call.extensions().any(|e| e == ext),
        }
    }
}

/// A change that passed the checks, ready to apply.
enum Ready {
    Note(String),
    Disposition(String),
    Tags(Vec<String>),
    Call(Box<HubCall>),
    /// Applied one by one after the batch, by the worklist's own compare-and-set.
    Callback(CallbackAction, Option<CallbackOutcome>),
}

/// The feed cursor `xid.seq` (empty: from the start of the first-pull window).
fn parse_cursor(cursor: &str) -> Result<Option<(String, i64)>, CentralError> {
    let cursor = cursor.trim();
    if cursor.is_empty() {
        return Ok(None);
    }
    let bad = || {
        CentralError::Invalid(format!(
            "bad sync cursor `{}`: pass the `cursor` of the last pull, or none to start",
            cursor.escape_debug()
        ))
    };
    let (xid, seq) = cursor.split_once('.').ok_or_else(bad)?;
    if xid.is_empty() || !xid.bytes().all(|b| b.is_ascii_digit()) || xid.len() > 20 {
        return Err(bad());
    }
    xid.parse::<u64>().map_err(|_| bad())?;
    Ok(Some((xid.to_owned(), seq.parse().map_err(|_| bad())?)))
}

fn result(id: &str, outcome: SyncOutcome, error: Option<String>) -> SyncResult {
    SyncResult {
        id: id.to_owned(),
        outcome,
        error,
    }
}

impl CentralStore {
    /// Applies the changes a desk pushed, each id at most once, in one transaction; answers
    /// per change, in order. A change that can never apply is `Refused` (why in `error`); one
    /// about a call the hub does not have yet is `Retry`; one applied before is `Duplicate`.
    pub async fn apply_changes(
        &self,
        t: &TenantId,
        actor: &SyncActor,
        changes: &[SyncChange],
    ) -> Result<Vec<SyncResult>, CentralError> {
        if changes.len() > calldesk_wire::MAX_PUSH {
            return Err(CentralError::Invalid(format!(
                "a push carries at most {} changes, not {}",
                calldesk_wire::MAX_PUSH,
                changes.len()
            )));
        }
        let mut results: Vec<Option<SyncResult>> = vec![None; changes.len()];
        let mut ready: Vec<(usize, String, Ready)> = Vec::with_capacity(changes.len());
        let mut seen = HashSet::with_capacity(changes.len());
        let needs_codes = changes
            .iter()
            .any(|c| matches!(c.change, ChangeKind::Disposition { .. }));
        let codes = if needs_codes {
            self.dispositions(t).await?
        } else {
            Vec::new()
        };
        for (i, c) in changes.iter().enumerate() {
            let refuse = |why: String| Some(result(&c.id, SyncOutcome::Refused, Some(why)));
            let id = match check::note_id(&c.id) {
                Ok(id) => id,
                Err(e) => {
                    results[i] = refuse(format!("change id: {e}"));
                    continue;
                }
            };
            if !seen.insert(id.clone()) {
                results[i] = Some(result(&c.id, SyncOutcome::Duplicate, None));
                continue;
            }
            if c.call_id.is_empty() || c.call_id.len() > 200 || c.call_id.contains('\0') {
                results[i] = refuse("the call id is empty, too long or has a NUL".to_owned());
                continue;
            }
            let checked = match &c.change {
                ChangeKind::Note { text } => {
                    check::text("the note", text, check::MAX_NOTE_CHARS).map(Ready::Note)
                }
                ChangeKind::Disposition { code } => {
                    if codes.iter().any(|k| k == code) {
                        Ok(Ready::Disposition(code.clone()))
                    } else {
                        Err(CentralError::Invalid(format!(
                            "disposition `{}` is not in tenant {t}'s list ({})",
                            code.escape_debug(),
                            codes.join(", ")
                        )))
                    }
                }
                ChangeKind::Tags { tags } => calldesk_wire::normalize_tags(tags)
                    .map(Ready::Tags)
                    .map_err(CentralError::Invalid),
                ChangeKind::Callback { action, outcome } => match (action, outcome) {
                    (CallbackAction::Close, None) => Err(CentralError::Invalid(
                        "closing a worklist item needs an outcome".to_owned(),
                    )),
                    _ => Ok(Ready::Callback(*action, *outcome)),
                },
                ChangeKind::Call { call } => {
                    if call.record.id != c.call_id {
                        Err(CentralError::Invalid(format!(
                            "the reported call is {}, the change names {}",
                            call.record.id.escape_debug(),
                            c.call_id.escape_debug()
                        )))
                    } else if !is_ended(call)
                        || call.record.ended_at.is_none()
                        || call.record.status.is_none()
                    {
                        Err(CentralError::Invalid(
                            "only ended calls (with their end and status) are reported".to_owned(),
                        ))
                    } else if !actor.may_touch(call) {
                        Err(CentralError::Invalid(format!(
                            "call {} is not one of this operator's calls; a desk reports only calls its operator took part in",
                            call.record.id.escape_debug()
                        )))
                    } else {
                        let mut call = stripped(call);
                        call.tenant = t.to_string();
                        // Checked here, so the batch's INSERT cannot fail on this call.
                        CallColumns::default()
                            .push(&call)
                            .map(|()| Ready::Call(Box::new(call)))
                    }
                }
            };
            match checked {
                Ok(r) => ready.push((i, id, r)),
                Err(e) => results[i] = refuse(e.to_string()),
            }
        }

        let mut tx = self.pool.begin().await?;
        // Which calls exist, and may this desk touch them? Calls reported in this batch count.
        let reported: HashSet<&str> = ready
            .iter()
            .filter(|(_, _, r)| matches!(r, Ready::Call(_)))
            .map(|(i, _, _)| changes[*i].call_id.as_str())
            .collect();
        let wanted: Vec<String> = ready
            .iter()
            .filter(|(_, _, r)| !matches!(r, Ready::Call(_) | Ready::Callback(..)))
            .map(|(i, _, _)| changes[*i].call_id.clone())
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        let rows: Vec<(String, Json<HubCall>)> = sqlx::query_as(
            "SELECT pbx_call_id, record FROM calls WHERE tenant_id = $1 AND pbx_call_id = ANY($2)",
        )
        .bind(t.as_str())
        .bind(&wanted)
        .fetch_all(&mut *tx)
        .await?;
        let existing: HashMap<String, bool> = rows
            .into_iter()
            .map(|(id, call)| (id, actor.may_touch(&call.0)))
            .collect();
        // Worklist changes go after the batch, one by one (the worklist's compare-and-set).
        let callbacks: Vec<(usize, String, CallbackAction, Option<CallbackOutcome>)> = ready
            .iter()
            .filter_map(|(i, id, r)| match r {
                Ready::Callback(action, outcome) => Some((*i, id.clone(), *action, *outcome)),
                _ => None,
            })
            .collect();
        ready.retain(|(i, _, r)| {
            let c = &changes[*i];
            if matches!(r, Ready::Callback(..)) {
                return false;
            }
            if matches!(r, Ready::Call(_)) {
                return true;
            }
            match existing.get(&c.call_id) {
                Some(true) => true,
                Some(false) => {
                    results[*i] = Some(result(
                        &c.id,
                        SyncOutcome::Refused,
                        Some(format!(
                            "call {} is not one of this operator's calls",
                            c.call_id.escape_debug()
                        )),
                    ));
                    false
                }
                None if reported.contains(c.call_id.as_str()) => true,
                None => {
                    results[*i] = Some(result(
                        &c.id,
                        SyncOutcome::Retry,
                        Some(format!(
                            "the hub does not have call {} yet",
                            c.call_id.escape_debug()
                        )),
                    ));
                    false
                }
            }
        });

        // Each id once: the ones recorded now are new, the rest were applied before.
        let ids: Vec<String> = ready.iter().map(|(_, id, _)| id.clone()).collect();
        let fresh: HashSet<String> = sqlx::query_scalar(
            "INSERT INTO sync_applied (tenant_id, change_id, operator_id)
             SELECT $1, u, $3 FROM unnest($2::uuid[]) AS u
             ON CONFLICT DO NOTHING
             RETURNING change_id::text",
        )
        .bind(t.as_str())
        .bind(&ids)
        .bind(actor.operator_id)
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .collect();

        let mut calls = CallColumns::default();
        let mut any_call = false;
        let (mut note_ids, mut note_calls, mut note_texts, mut note_at) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        // Last writer wins inside a batch too: later changes of a call replace earlier ones.
        let mut dispositions: HashMap<&str, &str> = HashMap::new();
        let mut tags: HashMap<&str, &[String]> = HashMap::new();
        for (i, id, r) in &ready {
            let c = &changes[*i];
            if !fresh.contains(id) {
                results[*i] = Some(result(&c.id, SyncOutcome::Duplicate, None));
                continue;
            }
            results[*i] = Some(result(&c.id, SyncOutcome::Applied, None));
            match r {
                Ready::Note(text) => {
                    note_ids.push(id.clone());
                    note_calls.push(c.call_id.clone());
                    note_texts.push(text.clone());
                    note_at.push(c.at);
                }
                Ready::Disposition(code) => {
                    dispositions.insert(&c.call_id, code);
                }
                Ready::Tags(set) => {
                    tags.insert(&c.call_id, set);
                }
                Ready::Call(call) => {
                    calls.push(call)?;
                    any_call = true;
                }
                Ready::Callback(..) => {}
            }
        }
        if any_call {
            let inserted: Vec<String> = calls
                .bind(sqlx::query(REPORT_CALLS))
                .fetch_all(&mut *tx)
                .await?
                .iter()
                .map(|row| sqlx::Row::try_get(row, 0))
                .collect::<Result<_, _>>()?;
            sqlx::query(
                "UPDATE calls SET reported = true WHERE tenant_id = $1 AND pbx_call_id = ANY($2)",
            )
            .bind(t.as_str())
            .bind(&inserted)
            .execute(&mut *tx)
            .await?;
        }
        if !note_ids.is_empty() {
            // A note keeps the time the operator wrote it, unless that is in the hub's future.
            sqlx::query(
                "INSERT INTO call_notes (tenant_id, id, pbx_call_id, author_id, text, created_at)
                 SELECT $1, u.i, u.c, $2, u.x,
                    least(timestamptz 'epoch' + u.a * interval '1 millisecond', now())
                 FROM unnest($3::uuid[], $4::text[], $5::text[], $6::int8[]) AS u(i, c, x, a)
                 ON CONFLICT (tenant_id, id) DO NOTHING",
            )
            .bind(t.as_str())
            .bind(actor.operator_id)
            .bind(&note_ids)
            .bind(&note_calls)
            .bind(&note_texts)
            .bind(&note_at)
            .execute(&mut *tx)
            .await?;
        }
        if !dispositions.is_empty() {
            let (ids, codes): (Vec<&str>, Vec<&str>) = dispositions.into_iter().unzip();
            sqlx::query(
                "INSERT INTO call_dispositions (tenant_id, pbx_call_id, code, set_by)
                 SELECT $1, u.c, u.d, $2 FROM unnest($3::text[], $4::text[]) AS u(c, d)
                 ON CONFLICT (tenant_id, pbx_call_id) DO UPDATE SET
                    code = EXCLUDED.code, set_by = EXCLUDED.set_by,
                    set_at = CASE WHEN call_dispositions.code = EXCLUDED.code
                        AND call_dispositions.set_by IS NOT DISTINCT FROM EXCLUDED.set_by
                        THEN call_dispositions.set_at ELSE now() END",
            )
            .bind(t.as_str())
            .bind(actor.operator_id)
            .bind(&ids)
            .bind(&codes)
            .execute(&mut *tx)
            .await?;
        }
        if !tags.is_empty() {
            let ids: Vec<&str> = tags.keys().copied().collect();
            let (pair_calls, pair_tags): (Vec<&str>, Vec<&str>) = tags
                .iter()
                .flat_map(|(call, set)| set.iter().map(move |tag| (*call, tag.as_str())))
                .unzip();
            // The DELETE removes only tags not in the new sets: a data-modifying CTE and the
            // INSERT see the same snapshot, so deleting a tag the INSERT keeps would lose it.
            sqlx::query(
                "WITH new AS (
                    SELECT u.c, u.g FROM unnest($3::text[], $4::text[]) AS u(c, g)
                 ), del AS (
                    DELETE FROM call_tags t WHERE t.tenant_id = $1 AND t.pbx_call_id = ANY($2)
                      AND NOT EXISTS (SELECT 1 FROM new WHERE new.c = t.pbx_call_id AND new.g = t.tag)
                 )
                 INSERT INTO call_tags (tenant_id, pbx_call_id, tag)
                 SELECT $1, new.c, new.g FROM new
                 ON CONFLICT DO NOTHING",
            )
            .bind(t.as_str())
            .bind(&ids)
            .bind(&pair_calls)
            .bind(&pair_tags)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        for (i, id, action, outcome) in callbacks {
            results[i] = Some(
                self.apply_callback(t, actor, &changes[i], &id, action, outcome)
                    .await?,
            );
        }
        Ok(results
            .into_iter()
            .zip(changes)
            .map(|(r, c)| {
                r.unwrap_or_else(|| {
                    result(
                        &c.id,
                        SyncOutcome::Retry,
                        Some("not handled; send it again".into()),
                    )
                })
            })
            .collect())
    }

    /// One worklist change: skipped if its id was applied before; else the worklist's own
    /// take / give back / close (a refusal — someone else holds the item, nothing to call back
    /// — is final), then the id recorded. A hub killed between the two applies it once more
    /// when the desk sends it again: taking or giving back is then a no-op, a close only moves
    /// the closing time.
    async fn apply_callback(
        &self,
        t: &TenantId,
        actor: &SyncActor,
        change: &SyncChange,
        id: &str,
        action: CallbackAction,
        outcome: Option<CallbackOutcome>,
    ) -> Result<SyncResult, CentralError> {
        let seen: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM sync_applied WHERE tenant_id = $1 AND change_id = $2::uuid)",
        )
        .bind(t.as_str())
        .bind(id)
        .fetch_one(&self.pool)
        .await?;
        if seen {
            return Ok(result(&change.id, SyncOutcome::Duplicate, None));
        }
        let Some(by) = actor.worklist() else {
            return Ok(result(
                &change.id,
                SyncOutcome::Refused,
                Some("only an operator can work the worklist".to_owned()),
            ));
        };
        // The hub's clock decides what "now" is for the window, as for a claim made online.
        let now_ms: i64 =
            sqlx::query_scalar("SELECT floor(extract(epoch FROM now()) * 1000)::int8")
                .fetch_one(&self.pool)
                .await?;
        let number = change.call_id.as_str();
        let done = match (action, outcome) {
            (CallbackAction::Close, Some(outcome)) => self
                .close_callback(t, number, outcome, by, now_ms)
                .await
                .map(drop),
            (CallbackAction::Close, None) => Err(CentralError::Invalid(
                "closing a worklist item needs an outcome".to_owned(),
            )),
            (action, _) => self
                .claim_callback(t, number, by, action == CallbackAction::Claim, now_ms)
                .await
                .map(drop),
        };
        match done {
            Ok(()) => {}
            Err(
                e @ (CentralError::Conflict(_)
                | CentralError::Invalid(_)
                | CentralError::NotFound(_)),
            ) => {
                return Ok(result(
                    &change.id,
                    SyncOutcome::Refused,
                    Some(e.to_string()),
                ));
            }
            Err(e) => return Err(e),
        }
        sqlx::query(
            "INSERT INTO sync_applied (tenant_id, change_id, operator_id) VALUES ($1, $2::uuid, $3)
             ON CONFLICT DO NOTHING",
        )
        .bind(t.as_str())
        .bind(id)
        .bind(actor.operator_id)
        .execute(&self.pool)
        .await?;
        Ok(result(&change.id, SyncOutcome::Applied, None))
    }

    /// The calls (whole, with notes, disposition, tags, recording states) whose history or
    /// after-call work changed after `cursor`, as far as `actor` may read them, each once, in
    /// the commit order of their latest change; at most `limit` calls
    /// (1..=[`calldesk_wire::MAX_PULL`]). Without a cursor the feed is read from `first_days`
    /// days ago.
    pub async fn changes_since(
        &self,
        t: &TenantId,
        actor: &SyncActor,
        cursor: &str,
        limit: usize,
        first_days: u32,
    ) -> Result<SyncPage, CentralError> {
        let limit = limit.clamp(1, calldesk_wire::MAX_PULL);
        let limit_sql = i64::try_from(limit).unwrap_or(1000);
        // Each changed call once, at its latest change, in the order of those latest changes:
        // a call changed a thousand times since the cursor is sent once, as it is now. A call
        // left out of this page has its latest change after the new cursor, so the next pull
        // finds it.
        let fetch = limit_sql + 1;
        let mut rows: Vec<(String, i64, String)> = match parse_cursor(cursor)? {
            Some((xid, seq)) => {
                sqlx::query_as(
                    "SELECT xid::text, seq, pbx_call_id FROM (
                        SELECT DISTINCT ON (pbx_call_id) pbx_call_id, xid, seq FROM sync_feed
                        WHERE tenant_id = $1 AND (xid, seq) > ($2::text::xid8, $3)
                          AND xid < pg_snapshot_xmin(pg_current_snapshot())
                        ORDER BY pbx_call_id, xid DESC, seq DESC
                     ) latest
                     ORDER BY xid, seq LIMIT $4",
                )
                .bind(t.as_str())
                .bind(&xid)
                .bind(seq)
                .bind(fetch)
                .fetch_all(&self.pool)
                .await?
            }
            None => {
                sqlx::query_as(
                    "SELECT xid::text, seq, pbx_call_id FROM (
                        SELECT DISTINCT ON (pbx_call_id) pbx_call_id, xid, seq FROM sync_feed
                        WHERE tenant_id = $1 AND at >= now() - $2 * interval '1 day'
                          AND xid < pg_snapshot_xmin(pg_current_snapshot())
                        ORDER BY pbx_call_id, xid DESC, seq DESC
                     ) latest
                     ORDER BY xid, seq LIMIT $3",
                )
                .bind(t.as_str())
                .bind(f64::from(first_days))
                .bind(fetch)
                .fetch_all(&self.pool)
                .await?
            }
        };
        let more = rows.len() > limit;
        rows.truncate(limit);
        let next = match rows.last() {
            Some((xid, seq, _)) => format!("{xid}.{seq}"),
            None => cursor.trim().to_owned(),
        };
        let ids: Vec<&str> = rows.iter().map(|(_, _, id)| id.as_str()).collect();
        let found: Vec<CallRow> = sqlx::query_as(&format!(
            "{CALL_SELECT} WHERE c.tenant_id = $1 AND c.pbx_call_id = ANY($2)"
        ))
        .bind(t.as_str())
        .bind(&ids)
        .fetch_all(&self.pool)
        .await?;
        let mut by_id: HashMap<String, HubCall> = found
            .into_iter()
            .map(|r| {
                let call = r.into_call();
                (call.record.id.clone(), call)
            })
            .collect();
        let calls = ids
            .iter()
            .filter_map(|id| by_id.remove(*id))
            .filter(|c| actor.may_touch(c))
            .collect();
        Ok(SyncPage {
            calls,
            cursor: next,
            more,
        })
    }

    /// Forgets feed entries and applied change ids older than `days` days (a desk away longer
    /// than that misses only the changes made before); returns how many rows went.
    pub async fn prune_sync(&self, days: u32) -> Result<u64, CentralError> {
        let feed = sqlx::query("DELETE FROM sync_feed WHERE at < now() - $1 * interval '1 day'")
            .bind(f64::from(days))
            .execute(&self.pool)
            .await?;
        let applied = sqlx::query(
            "DELETE FROM sync_applied WHERE applied_at < now() - $1 * interval '1 day'",
        )
        .bind(f64::from(days))
        .execute(&self.pool)
        .await?;
        Ok(feed.rows_affected() + applied.rows_affected())
    }
}

#[cfg(test)]
mod tests {
    use super::parse_cursor;

    #[test]
    fn cursors_are_xid_dot_seq() {
        assert_eq!(parse_cursor("").unwrap(), None);
        assert_eq!(
            parse_cursor("740.12").unwrap(),
            Some(("740".to_owned(), 12))
        );
        for bad in [
            "740",
            "x.1",
            "-1.2",
            "1.x",
            ".1",
            "99999999999999999999999.1",
        ] {
            assert!(parse_cursor(bad).is_err(), "{bad}");
        }
    }
}
