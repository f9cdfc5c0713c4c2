//! Desk sync over REST: `POST /api/sync/push` (a batch of changes a desk made, each applied
//! once) and `GET /api/sync/pull` (the calls whose history or after-call work changed since the
//! desk's cursor). The rules live in `calldesk-central`'s `sync.rs`; this only checks who asks.

use axum::Json;
use axum::extract::{Query, State};
use calldesk_central::SyncActor;
use calldesk_wire::{HubMessage, SyncOutcome, SyncPage, SyncPush, SyncPushReply};
use serde::Deserialize;

use crate::Hub;
use crate::auth::Principal;
use crate::error::ApiError;

/// A desk's first pull reads the feed from this many days back.
const FIRST_PULL_DAYS: u32 = 30;
/// Feed entries and applied change ids are kept this long (a desk away longer misses only
/// what changed before).
pub(crate) const SYNC_RETENTION_DAYS: u32 = 90;
/// Largest push body (1,000 changes, reported calls included).
pub(crate) const PUSH_BODY_LIMIT: usize = 16 * 1024 * 1024;

fn actor(p: &Principal) -> SyncActor {
    SyncActor {
        operator_id: Some(p.operator_id),
        extension: (!p.role.supervises()).then(|| p.extension.as_str().to_owned()),
    }
}

#[utoipa::path(post, path = "/api/sync/push", request_body(content = String, description = "`{\"changes\": [{id (UUID), call_id, at (unix ms), kind: note|disposition|tags|call, …}]}`, at most 1,000"),
    responses((status = 200, description = "`{\"results\": [{id, outcome: applied|duplicate|refused|retry, error?}]}` in the push's order"), (status = 400, description = "More than 1,000 changes, or not JSON")))]
pub(crate) async fn push(
    State(hub): State<Hub>,
    p: Principal,
    Json(body): Json<SyncPush>,
) -> Result<Json<SyncPushReply>, ApiError> {
    let results = hub
        .store()
        .apply_changes(&p.tenant, &actor(&p), &body.changes)
        .await?;
    let count = |o: SyncOutcome| results.iter().filter(|r| r.outcome == o).count();
    let (applied, refused) = (count(SyncOutcome::Applied), count(SyncOutcome::Refused));
    tracing::debug!(tenant = %p.tenant, by = %p.login, changes = results.len(), applied, refused, "sync push");
    if applied > 0 {
        // The operator's other desks and the supervisors pull now rather than on their timer.
        crate::api::tell_desks(&hub, &p.tenant, &HubMessage::SyncChanged {});
    }
    Ok(Json(SyncPushReply { results }))
}

#[derive(Debug, Deserialize)]
pub(crate) struct PullQuery {
    #[serde(default)]
    cursor: String,
    limit: Option<usize>,
}

#[utoipa::path(get, path = "/api/sync/pull", params(("cursor" = Option<String>, Query, description = "the `cursor` of the last pull; none for the first"), ("limit" = Option<usize>, Query, description = "calls, 1–1000 (default 500)")),
    responses((status = 200, description = "`{\"calls\": [call…], \"cursor\", \"more\"}`"), (status = 400, description = "A bad cursor")))]
pub(crate) async fn pull(
    State(hub): State<Hub>,
    p: Principal,
    Query(q): Query<PullQuery>,
) -> Result<Json<SyncPage>, ApiError> {
    Ok(Json(
        hub.store()
            .changes_since(
                &p.tenant,
                &actor(&p),
                &q.cursor,
                q.limit.unwrap_or(500),
                FIRST_PULL_DAYS,
            )
            .await?,
    ))
}

#[derive(Debug, Deserialize)]
pub(crate) struct ContactsQuery {
    #[serde(default)]
    after: i64,
    limit: Option<i64>,
}

#[utoipa::path(get, path = "/api/sync/contacts", params(("after" = Option<i64>, Query, description = "the `next` of the last page; none for the first"), ("limit" = Option<i64>, Query, description = "1–500 (default 500)")),
    responses((status = 200, description = "`{\"items\": [contact…], \"next\": id|null}`: the tenant's contacts by id, for a desk's contacts cache")))]
pub(crate) async fn contacts(
    State(hub): State<Hub>,
    p: Principal,
    Query(q): Query<ContactsQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let limit = q.limit.unwrap_or(calldesk_central::MAX_LIST);
    let items = hub
        .store()
        .contacts_after(&p.tenant, q.after, limit)
        .await?;
    let full =
        i64::try_from(items.len()).unwrap_or(0) >= limit.clamp(1, calldesk_central::MAX_LIST);
    let next = items.last().filter(|_| full).map(|c| c.id);
    Ok(Json(serde_json::json!({ "items": items, "next": next })))
}
