//! Calls: the hub's [`HubCall`] stored as JSONB (without notes, disposition and tags) beside the
//! columns the list filters on; batched idempotent upserts where an ended call is final; the
//! list with keyset pagination; each call's history of states.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use calldesk_calls::{CallStatus, Direction, TenantId};
use calldesk_wire::{CallStateView, DispositionView, HubCall, NoteView};
use serde::{Deserialize, Serialize};
use sqlx::types::Json;
use sqlx::{Postgres, QueryBuilder};

use crate::{CentralError, CentralStore, check, time};

/// The most calls one page of [`CentralStore::list_calls`] returns.
pub const MAX_PAGE: i64 = 500;

/// What [`CentralStore::list_calls`] returns: all filters are optional and combine with AND.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallFilter {
    /// Calls started at or after this RFC 3339 time.
    pub since: Option<String>,
    /// Calls started before this RFC 3339 time.
    pub until: Option<String>,
    /// The call's operator (extension): the one talking, or the last one.
    pub operator: Option<String>,
    /// `answered`, `missed`, `no_answer`, `busy`, `failed` or `cancelled`.
    pub status: Option<String>,
    /// `inbound`, `outbound` or `internal`.
    pub direction: Option<String>,
    /// Matches the caller's E.164 number or the dialled number exactly.
    pub phone: Option<String>,
    /// The caller's company (from the caller card).
    pub company_id: Option<i64>,
    /// The caller's contact (from the caller card).
    pub contact_id: Option<i64>,
    /// Page size, clamped to 1..=500.
    pub limit: i64,
    /// The `next` of the previous page.
    pub after: Option<String>,
}

impl Default for CallFilter {
    fn default() -> Self {
        Self {
            since: None,
            until: None,
            operator: None,
            status: None,
            direction: None,
            phone: None,
            company_id: None,
            contact_id: None,
            limit: 50,
            after: None,
        }
    }
}

/// One page of calls, newest first; `next` is the cursor of the following page, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallPage {
    pub items: Vec<HubCall>,
    pub next: Option<String>,
}

/// One state of a call as the hub saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct CallEventRow {
    pub tenant: TenantId,
    pub call_id: String,
    /// `new`, `updated` or `ended`.
    pub kind: String,
    pub at_ms: i64,
    pub data: serde_json::Value,
}

/// Text PostgreSQL can store: NUL (which `text` and `jsonb` refuse) becomes U+FFFD.
fn pg_text(s: &str) -> String {
    if s.contains('\0') {
        s.replace('\0', "\u{FFFD}")
    } else {
        s.to_owned()
    }
}

fn scrub_nul(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::String(s) if s.contains('\0') => *s = pg_text(s),
        serde_json::Value::Array(items) => items.iter_mut().for_each(scrub_nul),
        serde_json::Value::Object(map) => {
            for (key, mut value) in std::mem::take(map) {
                scrub_nul(&mut value);
                map.insert(pg_text(&key), value);
            }
        }
        _ => {}
    }
}

/// JSON text for a `jsonb` column (which refuses `\u0000`).
pub(crate) fn json_for_pg<T: Serialize>(value: &T) -> Result<String, CentralError> {
    let cannot = |e: serde_json::Error| CentralError::Invalid(format!("cannot encode JSON: {e}"));
    let text = serde_json::to_string(value).map_err(cannot)?;
    if !text.contains("\\u0000") {
        return Ok(text);
    }
    let mut tree = serde_json::to_value(value).map_err(cannot)?;
    scrub_nul(&mut tree);
    serde_json::to_string(&tree).map_err(cannot)
}

pub(crate) fn is_ended(c: &HubCall) -> bool {
    c.state == CallStateView::Ended
}

/// What is stored of a call: no notes, disposition, tags or recording states (they have their
/// own tables).
pub(crate) fn stripped(c: &HubCall) -> HubCall {
    HubCall {
        notes: Vec::new(),
        disposition: None,
        tags: Vec::new(),
        recording_states: Vec::new(),
        ..c.clone()
    }
}

/// One state per call, as if the batch had been upserted one by one: the first ended state
/// wins (an ended call is final), else the last; a state without a caller card keeps the card
/// of the states before it. Sorted by (tenant, id) so concurrent batches lock rows in the same
/// order.
fn merged(calls: &[HubCall]) -> Vec<HubCall> {
    let mut index: HashMap<(String, String), usize> = HashMap::with_capacity(calls.len());
    let mut out: Vec<HubCall> = Vec::with_capacity(calls.len());
    for c in calls {
        match index.entry((pg_text(&c.tenant), pg_text(&c.record.id))) {
            Entry::Vacant(slot) => {
                slot.insert(out.len());
                out.push(stripped(c));
            }
            Entry::Occupied(slot) => {
                if let Some(kept) = out.get_mut(*slot.get())
                    && !is_ended(kept)
                {
                    let caller = kept.caller.take();
                    *kept = stripped(c);
                    if kept.caller.is_none() {
                        kept.caller = caller;
                    }
                }
            }
        }
    }
    out.sort_by(|a, b| (&a.tenant, &a.record.id).cmp(&(&b.tenant, &b.record.id)));
    out
}

/// The columns of a batch of calls, as bound (one array per column).
#[derive(Default)]
pub(crate) struct CallColumns {
    tenant: Vec<String>,
    id: Vec<String>,
    direction: Vec<String>,
    from_raw: Vec<String>,
    from_e164: Vec<Option<String>>,
    to_raw: Vec<String>,
    to_e164: Vec<Option<String>>,
    status: Vec<Option<String>>,
    operator: Vec<Option<String>>,
    started_us: Vec<Option<i64>>,
    answered_us: Vec<Option<i64>>,
    ended_us: Vec<Option<i64>>,
    hangup_cause: Vec<Option<i16>>,
    record: Vec<String>,
    live: Vec<bool>,
    contact_id: Vec<Option<i64>>,
    company_id: Vec<Option<i64>>,
}

impl CallColumns {
    /// Binds the columns as `$1`…`$17` of [`insert_calls!`].
    pub(crate) fn bind(
        self,
        q: sqlx::query::Query<'_, Postgres, sqlx::postgres::PgArguments>,
    ) -> sqlx::query::Query<'_, Postgres, sqlx::postgres::PgArguments> {
        q.bind(self.tenant)
            .bind(self.id)
            .bind(self.direction)
            .bind(self.from_raw)
            .bind(self.from_e164)
            .bind(self.to_raw)
            .bind(self.to_e164)
            .bind(self.status)
            .bind(self.operator)
            .bind(self.started_us)
            .bind(self.answered_us)
            .bind(self.ended_us)
            .bind(self.hangup_cause)
            .bind(self.record)
            .bind(self.live)
            .bind(self.contact_id)
            .bind(self.company_id)
    }

    pub(crate) fn push(&mut self, c: &HubCall) -> Result<(), CentralError> {
        let r = &c.record;
        let id = r.id.escape_debug();
        if Direction::from_name(&r.direction).is_none() {
            return Err(CentralError::Invalid(format!(
                "call {id}: direction `{}` is not inbound, outbound or internal",
                r.direction.escape_debug()
            )));
        }
        if let Some(s) = &r.status
            && CallStatus::from_name(s).is_none()
        {
            return Err(CentralError::Invalid(format!(
                "call {id}: status `{}` is not answered, missed, no_answer, busy, failed or cancelled",
                s.escape_debug()
            )));
        }
        let time = |what: &str, t: &Option<String>| -> Result<Option<i64>, CentralError> {
            t.as_deref()
                .map(|s| {
                    time::parse_micros(s).ok_or_else(|| {
                        CentralError::Invalid(format!(
                            "call {id}: {what} `{}` is not an RFC 3339 time",
                            s.escape_debug()
                        ))
                    })
                })
                .transpose()
        };
        self.started_us.push(time("started_at", &r.started_at)?);
        self.answered_us.push(time("answered_at", &r.answered_at)?);
        self.ended_us.push(time("ended_at", &r.ended_at)?);
        self.tenant.push(pg_text(&c.tenant));
        self.id.push(pg_text(&r.id));
        self.direction.push(r.direction.clone());
        self.from_raw.push(pg_text(&r.from));
        self.from_e164
            .push(r.from.starts_with('+').then(|| pg_text(&r.from)));
        self.to_raw.push(pg_text(&r.to));
        self.to_e164
            .push(check::is_e164(&r.to).then(|| r.to.clone()));
        self.status.push(r.status.clone());
        self.operator.push(c.operator.as_deref().map(pg_text));
        // Q.850 causes are below 128; anything that does not fit is not a cause.
        self.hangup_cause.push(
            r.hangup_cause
                .as_ref()
                .and_then(|h| i16::try_from(h.code).ok()),
        );
        self.record.push(json_for_pg(c)?);
        self.live.push(!is_ended(c));
        let card = c.caller.as_ref();
        self.contact_id
            .push(card.and_then(|k| k.contact.as_ref()).map(|k| k.id));
        self.company_id
            .push(card.and_then(|k| k.company.as_ref()).map(|k| k.id));
        Ok(())
    }
}

/// Microseconds since the epoch as a `timestamptz`, exactly.
macro_rules! at_micros {
    ($e:literal) => {
        concat!(
            "(timestamptz 'epoch' + ",
            $e,
            " * interval '1 microsecond')"
        )
    };
}

/// The INSERT of a batch of calls from [`CallColumns`] (bound by [`CallColumns::bind`]), without
/// its conflict clause.
macro_rules! insert_calls {
    () => {
        concat!(
    "INSERT INTO calls (tenant_id, pbx_call_id, direction, from_raw, from_e164, to_raw, to_e164,
        status, operator, started_at, answered_at, ended_at, hangup_cause, record, live,
        caller_contact_id, caller_company_id)
     SELECT u.t, u.i, u.d, u.fr, u.fe, u.tr, u.te, u.s, u.o,
        coalesce(", at_micros!("u.sa"), ", now()), ", at_micros!("u.aa"), ", ",
        at_micros!("u.ea"), ", u.hc, u.r::jsonb, u.l, u.cc, u.co
     FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
        $7::text[], $8::text[], $9::text[], $10::int8[], $11::int8[], $12::int8[], $13::int2[],
        $14::text[], $15::bool[], $16::int8[], $17::int8[])
        AS u(t, i, d, fr, fe, tr, te, s, o, sa, aa, ea, hc, r, l, cc, co)"
        )
    };
}

/// Calls a desk reported (Direct AMI profile): the PBX side owns calls, so a call the hub
/// already has is left as it is.
pub(crate) const REPORT_CALLS: &str = concat!(
    insert_calls!(),
    " ON CONFLICT (tenant_id, pbx_call_id) DO NOTHING RETURNING pbx_call_id"
);

const UPSERT_CALLS: &str = concat!(
    insert_calls!(),
    "
     ON CONFLICT (tenant_id, pbx_call_id) DO UPDATE SET
        direction = EXCLUDED.direction,
        from_raw = EXCLUDED.from_raw,
        from_e164 = EXCLUDED.from_e164,
        to_raw = EXCLUDED.to_raw,
        to_e164 = EXCLUDED.to_e164,
        status = EXCLUDED.status,
        operator = EXCLUDED.operator,
        -- A state that does not know when the call started keeps the known start.
        started_at = CASE WHEN EXCLUDED.record->>'started_at' IS NULL
            THEN calls.started_at ELSE EXCLUDED.started_at END,
        answered_at = EXCLUDED.answered_at,
        ended_at = EXCLUDED.ended_at,
        hangup_cause = EXCLUDED.hangup_cause,
        -- A state without a caller card keeps the card found earlier.
        record = CASE WHEN jsonb_typeof(EXCLUDED.record->'caller') = 'object'
            THEN EXCLUDED.record
            ELSE jsonb_set(EXCLUDED.record, '{caller}', coalesce(calls.record->'caller', 'null'))
            END,
        caller_contact_id = CASE WHEN jsonb_typeof(EXCLUDED.record->'caller') = 'object'
            THEN EXCLUDED.caller_contact_id ELSE calls.caller_contact_id END,
        caller_company_id = CASE WHEN jsonb_typeof(EXCLUDED.record->'caller') = 'object'
            THEN EXCLUDED.caller_company_id ELSE calls.caller_company_id END,
        live = EXCLUDED.live,
        reported = false,
        updated_at = now()
     -- An ended call is final: a late or replayed state never changes (or reopens) it — unless
     -- only a desk reported it: the PBX side's own states replace a report.
     WHERE calls.live OR calls.reported"
);

/// A call with its notes (oldest first) and disposition, in one statement.
pub(crate) const CALL_SELECT: &str = "SELECT c.pbx_call_id, c.record,
        (extract(epoch FROM c.started_at) * 1000000)::int8 AS started_us,
        coalesce((
            SELECT jsonb_agg(jsonb_build_object(
                'id', n.id::text, 'author', o.login, 'text', n.text,
                'at_ms', floor(extract(epoch FROM n.created_at) * 1000)::int8)
                ORDER BY n.created_at, n.id)
            FROM call_notes n
            LEFT JOIN operators o ON o.tenant_id = n.tenant_id AND o.id = n.author_id
            WHERE n.tenant_id = c.tenant_id AND n.pbx_call_id = c.pbx_call_id
        ), '[]'::jsonb) AS notes,
        coalesce((
            SELECT array_agg(tg.tag ORDER BY tg.tag) FROM call_tags tg
            WHERE tg.tenant_id = c.tenant_id AND tg.pbx_call_id = c.pbx_call_id
        ), '{}'::text[]) AS tags,
        coalesce((
            SELECT jsonb_agg(jsonb_build_object(
                'name', r.name, 'state', r.state, 'error', r.last_error)
                ORDER BY r.created_at, r.name)
            FROM recordings r
            WHERE r.tenant_id = c.tenant_id AND r.pbx_call_id = c.pbx_call_id
        ), '[]'::jsonb) AS recording_states,
        d.code AS disposition_code, od.login AS disposition_by,
        floor(extract(epoch FROM d.set_at) * 1000)::int8 AS disposition_at_ms
    FROM calls c
    LEFT JOIN call_dispositions d ON d.tenant_id = c.tenant_id AND d.pbx_call_id = c.pbx_call_id
    LEFT JOIN operators od ON od.tenant_id = d.tenant_id AND od.id = d.set_by";

#[derive(Deserialize)]
struct NoteRow {
    id: String,
    author: Option<String>,
    text: String,
    at_ms: i64,
}

#[derive(sqlx::FromRow)]
pub(crate) struct CallRow {
    pbx_call_id: String,
    record: Json<HubCall>,
    started_us: i64,
    notes: Json<Vec<NoteRow>>,
    tags: Vec<String>,
    recording_states: Json<Vec<calldesk_wire::RecordingStatus>>,
    disposition_code: Option<String>,
    disposition_by: Option<String>,
    disposition_at_ms: Option<i64>,
}

impl CallRow {
    pub(crate) fn into_call(self) -> HubCall {
        let mut call = self.record.0;
        call.notes = self
            .notes
            .0
            .into_iter()
            .map(|n| NoteView {
                id: n.id,
                call_id: self.pbx_call_id.clone(),
                author: n.author,
                text: n.text,
                created_at: time::millis_rfc3339(n.at_ms),
            })
            .collect();
        call.tags = self.tags;
        call.recording_states = self.recording_states.0;
        call.disposition = self.disposition_code.map(|code| DispositionView {
            code,
            set_by: self.disposition_by,
            set_at: time::millis_rfc3339(self.disposition_at_ms.unwrap_or_default()),
        });
        call
    }
}

/// The opaque cursor after a call: hex of `<started_at µs>.<id>`.
fn cursor(started_us: i64, id: &str) -> String {
    hex::encode(format!("{started_us}.{id}"))
}

fn parse_cursor(cursor: &str) -> Result<(i64, String), CentralError> {
    let bad = || CentralError::Invalid("bad `after` cursor".into());
    let text = String::from_utf8(hex::decode(cursor).map_err(|_| bad())?).map_err(|_| bad())?;
    let (us, id) = text.split_once('.').ok_or_else(bad)?;
    if id.is_empty() || us.is_empty() {
        return Err(bad());
    }
    Ok((us.parse().map_err(|_| bad())?, id.to_owned()))
}

/// `us` (microseconds since the epoch) as a bound `timestamptz`.
fn push_micros(q: &mut QueryBuilder<'_, Postgres>, us: i64) {
    q.push("(timestamptz 'epoch' + ")
        .push_bind(us)
        .push(" * interval '1 microsecond')");
}

fn filter_time(what: &str, value: Option<&str>) -> Result<Option<i64>, CentralError> {
    value
        .map(|s| {
            time::parse_micros(s.trim()).ok_or_else(|| {
                CentralError::Invalid(format!(
                    "bad `{what}` time `{}`: expected RFC 3339, e.g. 2026-01-31T00:00:00Z",
                    s.escape_debug()
                ))
            })
        })
        .transpose()
}

impl CentralStore {
    /// Idempotent upserts of many calls in ONE round trip/transaction (the hub batches; aim for
    /// ≥ 5,000 calls/s on this machine — use UNNEST arrays or one multi-row INSERT … ON CONFLICT).
    /// Keyed by (tenant, id); an ended call is final (a later non-ended state never reopens it);
    /// the caller card is kept if a later write has none. Columns are derived from the HubCall:
    /// direction, from_raw/from_e164 (record.from starts with '+'), to_raw, status, operator,
    /// started_at/answered_at/ended_at (RFC 3339 strings → timestamptz; a null started_at → now()),
    /// hangup_cause, live = state != ended.
    ///
    /// Notes and dispositions in the `HubCall`s are ignored (they are written by
    /// [`CentralStore::add_note`] and [`CentralStore::set_disposition`]). Several states of one
    /// call in a batch give the same result as upserting them one by one, in order. A bad
    /// direction, status or time refuses the batch (`Invalid`, naming the call); a call of an
    /// unknown tenant is `NotFound`.
    pub async fn upsert_calls(&self, calls: &[HubCall]) -> Result<(), CentralError> {
        if calls.is_empty() {
            return Ok(());
        }
        let mut cols = CallColumns::default();
        for c in merged(calls) {
            cols.push(&c)?;
        }
        cols.bind(sqlx::query(UPSERT_CALLS))
            .execute(&self.pool)
            .await
            .map_err(crate::unknown_tenant)?;
        Ok(())
    }

    /// The call with its notes and disposition.
    pub async fn call(&self, t: &TenantId, id: &str) -> Result<Option<HubCall>, CentralError> {
        let row: Option<CallRow> = sqlx::query_as(&format!(
            "{CALL_SELECT} WHERE c.tenant_id = $1 AND c.pbx_call_id = $2"
        ))
        .bind(t.as_str())
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(CallRow::into_call))
    }

    /// The tenant's calls that have not ended, oldest first, with notes and disposition.
    pub async fn live_calls(&self, t: &TenantId) -> Result<Vec<HubCall>, CentralError> {
        let rows: Vec<CallRow> = sqlx::query_as(&format!(
            "{CALL_SELECT} WHERE c.tenant_id = $1 AND c.live ORDER BY c.started_at, c.pbx_call_id"
        ))
        .bind(t.as_str())
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(CallRow::into_call).collect())
    }

    /// Newest first, keyset pagination over (started_at, pbx_call_id); each item with notes +
    /// disposition (in the same statement).
    pub async fn list_calls(&self, t: &TenantId, f: &CallFilter) -> Result<CallPage, CentralError> {
        let since = filter_time("since", f.since.as_deref())?;
        let until = filter_time("until", f.until.as_deref())?;
        let after = f.after.as_deref().map(parse_cursor).transpose()?;
        if let Some(s) = &f.status
            && CallStatus::from_name(s).is_none()
        {
            return Err(CentralError::Invalid(format!(
                "status `{}` is not answered, missed, no_answer, busy, failed or cancelled",
                s.escape_debug()
            )));
        }
        if let Some(d) = &f.direction
            && Direction::from_name(d).is_none()
        {
            return Err(CentralError::Invalid(format!(
                "direction `{}` is not inbound, outbound or internal",
                d.escape_debug()
            )));
        }
        let limit = f.limit.clamp(1, MAX_PAGE);

        // Only the filters given are in the statement, so each combination gets its own plan.
        let mut q = QueryBuilder::<Postgres>::new(CALL_SELECT);
        q.push(" WHERE c.tenant_id = ")
            .push_bind(t.as_str().to_owned());
        if let Some(us) = since {
            q.push(" AND c.started_at >= ");
            push_micros(&mut q, us);
        }
        if let Some(us) = until {
            q.push(" AND c.started_at < ");
            push_micros(&mut q, us);
        }
        if let Some(op) = &f.operator {
            q.push(" AND c.operator = ").push_bind(op.clone());
        }
        if let Some(s) = &f.status {
            q.push(" AND c.status = ").push_bind(s.clone());
        }
        if let Some(d) = &f.direction {
            q.push(" AND c.direction = ").push_bind(d.clone());
        }
        if let Some(p) = &f.phone {
            q.push(" AND (c.from_e164 = ")
                .push_bind(p.clone())
                .push(" OR c.to_raw = ")
                .push_bind(p.clone())
                .push(")");
        }
        if let Some(id) = f.company_id {
            q.push(" AND c.caller_company_id = ").push_bind(id);
        }
        if let Some(id) = f.contact_id {
            q.push(" AND c.caller_contact_id = ").push_bind(id);
        }
        if let Some((us, id)) = after {
            q.push(" AND (c.started_at, c.pbx_call_id) < (");
            push_micros(&mut q, us);
            q.push(", ").push_bind(id).push(")");
        }
        q.push(" ORDER BY c.started_at DESC, c.pbx_call_id DESC LIMIT ")
            .push_bind(limit + 1);
        let mut rows: Vec<CallRow> = q.build_query_as().fetch_all(&self.pool).await?;

        let more = rows.len() > usize::try_from(limit).unwrap_or(usize::MAX);
        rows.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        let next = rows
            .last()
            .filter(|_| more)
            .map(|last| cursor(last.started_us, &last.pbx_call_id));
        Ok(CallPage {
            items: rows.into_iter().map(CallRow::into_call).collect(),
            next,
        })
    }

    /// Appends the call's history of states (one row per update the hub saw), in one round trip.
    /// Not idempotent: a replayed update is appended again.
    pub async fn append_call_events(&self, events: &[CallEventRow]) -> Result<(), CentralError> {
        if events.is_empty() {
            return Ok(());
        }
        let n = events.len();
        let (mut tenant, mut call, mut kind, mut at, mut data) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        for e in events {
            if !matches!(e.kind.as_str(), "new" | "updated" | "ended") {
                return Err(CentralError::Invalid(format!(
                    "call {}: event kind `{}` is not new, updated or ended",
                    e.call_id.escape_debug(),
                    e.kind.escape_debug()
                )));
            }
            tenant.push(e.tenant.as_str());
            call.push(pg_text(&e.call_id));
            kind.push(e.kind.as_str());
            at.push(e.at_ms);
            data.push(json_for_pg(&e.data)?);
        }
        sqlx::query(
            "INSERT INTO call_events (tenant_id, pbx_call_id, kind, at_ms, data)
             SELECT u.t, u.i, u.k, u.a, u.d::jsonb
             FROM unnest($1::text[], $2::text[], $3::text[], $4::int8[], $5::text[])
                WITH ORDINALITY AS u(t, i, k, a, d, ord)
             ORDER BY u.ord",
        )
        .bind(tenant)
        .bind(call)
        .bind(kind)
        .bind(at)
        .bind(data)
        .execute(&self.pool)
        .await
        .map_err(crate::unknown_tenant)?;
        Ok(())
    }

    /// The call's history, in the order it was appended.
    pub async fn call_events(
        &self,
        t: &TenantId,
        id: &str,
    ) -> Result<Vec<CallEventRow>, CentralError> {
        let rows: Vec<(String, i64, serde_json::Value)> = sqlx::query_as(
            "SELECT kind, at_ms, data FROM call_events
             WHERE tenant_id = $1 AND pbx_call_id = $2 ORDER BY seq",
        )
        .bind(t.as_str())
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(kind, at_ms, data)| CallEventRow {
                tenant: t.clone(),
                call_id: id.to_owned(),
                kind,
                at_ms,
                data,
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use calldesk_wire::{CallRecord, CallerCard, CardRef};

    fn call(id: &str, state: CallStateView, caller: Option<i64>, status: Option<&str>) -> HubCall {
        HubCall {
            record: CallRecord {
                id: id.into(),
                direction: "inbound".into(),
                from: "+74951234567".into(),
                to: "0367".into(),
                status: status.map(Into::into),
                answered_by: vec![],
                transfers: vec![],
                monitors: vec![],
                queue: None,
                ring_secs: None,
                talk_secs: None,
                hangup_cause: None,
                recordings: vec![],
                started_at: Some("2026-01-01T00:00:00.000Z".into()),
                answered_at: None,
                ended_at: None,
            },
            tenant: "acme".into(),
            state,
            operator: None,
            rang: vec![],
            on_hold: false,
            monitoring: vec![],
            caller: caller.map(|id| CallerCard {
                number: "+74951234567".into(),
                contact: Some(CardRef {
                    id,
                    name: "Ivan".into(),
                }),
                company: None,
            }),
            notes: vec![],
            disposition: None,
            tags: vec![],
            recording_states: vec![],
        }
    }

    #[test]
    fn a_batch_merges_like_sequential_upserts() {
        use CallStateView::*;
        let batch = [
            call("b", Ringing, None, None),
            call("a", Ringing, Some(7), None),
            call("a", Talking, None, None),
            call("b", Ended, None, Some("missed")),
            call("a", Ended, None, Some("answered")),
            // Late states after the end: ignored, even a second ended one.
            call("a", Talking, Some(9), None),
            call("b", Ended, Some(9), Some("busy")),
        ];
        let out = merged(&batch);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].record.id, "a", "sorted by id");
        assert_eq!(out[0].state, Ended);
        assert_eq!(out[0].record.status.as_deref(), Some("answered"));
        assert_eq!(
            out[0]
                .caller
                .as_ref()
                .and_then(|c| c.contact.as_ref())
                .map(|c| c.id),
            Some(7),
            "the card of an earlier state is kept"
        );
        assert_eq!(out[1].record.status.as_deref(), Some("missed"));
        assert_eq!(out[1].caller, None);
    }

    #[test]
    fn cursors_round_trip_and_refuse_garbage() {
        let c = cursor(1_795_259_787_617_000, "1795259787.0");
        assert_eq!(
            parse_cursor(&c).unwrap(),
            (1_795_259_787_617_000, "1795259787.0".into())
        );
        let c = cursor(-5, "x");
        assert_eq!(parse_cursor(&c).unwrap(), (-5, "x".into()));
        for bad in [
            "",
            "zz",
            &hex::encode("123"),
            &hex::encode(".id"),
            &hex::encode("12."),
            &hex::encode("1x.id"),
        ] {
            assert!(
                matches!(parse_cursor(bad), Err(CentralError::Invalid(m)) if m == "bad `after` cursor"),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn nul_never_reaches_postgres() {
        let json = json_for_pg(&serde_json::json!({"a\u{0}": ["x\u{0}y", 1], "b": "c"})).unwrap();
        assert!(!json.contains("\\u0000"), "{json}");
        assert!(json.contains("x\u{FFFD}y"), "{json}");
        assert_eq!(json_for_pg(&"plain").unwrap(), "\"plain\"");
        let mut c = call("a\u{0}", CallStateView::Ringing, None, None);
        c.record.from = "+7\u{0}".into();
        let mut cols = CallColumns::default();
        cols.push(&c).unwrap();
        assert_eq!(cols.id, ["a\u{FFFD}"]);
        assert!(!cols.record[0].contains("\\u0000"));
    }

    #[test]
    fn bad_values_name_the_call() {
        let mut c = call("x1", CallStateView::Ringing, None, None);
        c.record.direction = "sideways".into();
        let e = CallColumns::default().push(&c).unwrap_err();
        assert!(
            e.to_string().contains("call x1: direction `sideways`"),
            "{e}"
        );
        let mut c = call("x2", CallStateView::Ended, None, Some("lost"));
        let e = CallColumns::default().push(&c).unwrap_err();
        assert!(e.to_string().contains("call x2: status `lost`"), "{e}");
        c.record.status = None;
        c.record.ended_at = Some("yesterday".into());
        let e = CallColumns::default().push(&c).unwrap_err();
        assert!(
            e.to_string().contains("call x2: ended_at `yesterday`"),
            "{e}"
        );
    }
}
