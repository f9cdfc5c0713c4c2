//! Recording access: `GET /api/calls/{id}/recording[?name=…]` hands a user who may see the call
//! (operators their own calls, supervisors all; the tenant's only) a short-lived link to a
//! stored recording — presigned by S3, or signed by this hub for the local folder, which
//! `GET /recordings/{key}?expires=…&signature=…` then serves (with byte ranges, so a player can
//! seek and start before the whole file is read).
//!
//! The pipeline: when a call with recordings is stored ended, its recordings are added to the
//! `recordings` table under fixed store keys ([`to_store`], in the writer's batch, so nothing is
//! acknowledged before they are); [`uploader`] leases due ones of the tenants this replica
//! holds, fetches each from the PBX (Mango: streamed download into a spool file; Asterisk: the
//! MixMonitor file, by its name only, in the tenant's recordings folder) and uploads it
//! — skipped when the store already holds the key at that size, so a try repeated after a
//! crash stores nothing twice — then marks it stored, or keeps the reason and the next try.

use std::time::{Duration, SystemTime};

use axum::Json;
use axum::extract::{Path, Query, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use calldesk_calls::{CallId, TenantId};
use calldesk_central::{NewRecording, PbxConfig, RecordingJob, RecordingState};
use calldesk_media::{RecordingKey, RecordingStore, content_type_for};
use calldesk_wire::{CallStateView, HubCall, HubMessage};
use serde::Deserialize;
use serde_json::json;
use tower::ServiceExt as _;

use crate::Hub;
use crate::auth::Principal;
use crate::error::ApiError;
use crate::runtime::TenantPbx;

/// How long a recording link works: long enough to start playing, short enough that a link
/// copied out of the app soon stops working.
pub const LINK_LIFE: Duration = Duration::from_secs(300);

#[derive(Debug, Deserialize)]
pub struct LinkQuery {
    /// Which recording (its PBX name); default the call's first stored one.
    name: Option<String>,
}

#[utoipa::path(get, path = "/api/calls/{id}/recording", params(("id" = String, Path), ("name" = Option<String>, Query)), responses((status = 200, description = "A short-lived link to the recording: url, name, content_type, size, expires_in_secs"), (status = 404, description = "No such call in your tenant, or it has no recording"), (status = 409, description = "The recording is not stored yet: pending or failed, with the reason")))]
pub async fn link(
    State(hub): State<Hub>,
    p: Principal,
    Path(id): Path<String>,
    Query(q): Query<LinkQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let call = crate::api::readable_call(&hub, &p, &id).await?;
    let rows = hub
        .store()
        .recordings_of(&p.tenant, &call.record.id)
        .await?;
    let row = match &q.name {
        Some(name) => rows.iter().find(|r| &r.name == name),
        None => rows
            .iter()
            .find(|r| r.state == RecordingState::Stored)
            .or(rows.first()),
    }
    .ok_or_else(|| ApiError::NotFound(format!("call {id} has no such recording")))?;
    if row.state != RecordingState::Stored {
        let state = if row.state == RecordingState::Failed {
            "failed"
        } else {
            "pending"
        };
        let reason = row
            .last_error
            .as_deref()
            .map(|e| format!(": {e}"))
            .unwrap_or_default();
        return Err(ApiError::Conflict(format!(
            "the recording {} is not stored yet ({state}{reason}); it is retried by itself",
            row.name
        )));
    }
    let key = RecordingKey::parse(&row.store_key)
        .ok()
        .filter(|k| k.tenant() == p.tenant.as_str())
        .ok_or_else(|| ApiError::Internal(format!("bad store key of call {id}")))?;
    let url = hub
        .recordings()
        .presign_get(&key, LINK_LIFE, SystemTime::now())
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(Json(json!({
        "url": url.as_str(),
        "name": row.name,
        "content_type": content_type_for(&key.name()),
        "size": row.size_bytes,
        "expires_in_secs": LINK_LIFE.as_secs(),
    })))
}

#[derive(Debug, Deserialize)]
pub struct SignedQuery {
    expires: u64,
    signature: String,
}

/// Serves a local-folder recording to whoever holds a valid link (no login: the link is the
/// permission, as an S3 presigned URL is).
pub async fn serve_local(
    State(hub): State<Hub>,
    Path(key): Path<String>,
    Query(q): Query<SignedQuery>,
    request: Request,
) -> Response {
    let RecordingStore::Local(local) = hub.recordings() else {
        return (StatusCode::NOT_FOUND, "recordings are not kept on this hub").into_response();
    };
    let key = match local.verify(&key, q.expires, &q.signature, SystemTime::now()) {
        Ok(key) => key,
        Err(e) => return (StatusCode::FORBIDDEN, e.to_string()).into_response(),
    };
    match tower_http::services::ServeFile::new(local.path(&key))
        .oneshot(request)
        .await
    {
        Ok(response) => response.into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

// The pipeline: PBX → the recordings store ----------------------------------------------------

/// How often the uploader looks for due recordings.
const POLL: Duration = Duration::from_secs(1);
/// How often the spool folder is swept of abandoned downloads.
const SWEEP_EVERY: Duration = Duration::from_secs(600);
/// Recordings worked on at once by one replica.
const PARALLEL: i64 = 4;

/// The recordings of ended calls in `calls`, as rows to add (with their store keys). Mango
/// recordings are stored as `<recording_id>.mp3` (Mango records MP3); Asterisk ones under the
/// MixMonitor file's own name. Demo tenants record nothing.
pub(crate) fn to_store(hub: &Hub, calls: &[HubCall]) -> Vec<NewRecording> {
    let mut out = Vec::new();
    for call in calls {
        if call.state != CallStateView::Ended || call.record.recordings.is_empty() {
            continue;
        }
        let (Ok(tenant), Ok(call_id)) = (
            TenantId::new(call.tenant.clone()),
            CallId::new(call.record.id.clone()),
        ) else {
            continue;
        };
        let Some(config) = hub.tenant(&tenant) else {
            continue;
        };
        let started_s = call
            .record
            .started_at
            .as_deref()
            .and_then(calldesk_calls::parse_rfc3339_micros)
            .map_or(0, |us| us.div_euclid(1_000_000));
        for name in &call.record.recordings {
            let stored_name = match &config.pbx {
                PbxConfig::Mango { .. } => format!("{name}.mp3"),
                PbxConfig::Asterisk { .. } => file_name(name).to_owned(),
                PbxConfig::Demo => continue,
            };
            match RecordingKey::new(&tenant, started_s, &call_id, &stored_name) {
                Ok(key) => out.push(NewRecording {
                    tenant: tenant.clone(),
                    call: call.record.id.clone(),
                    name: name.clone(),
                    store_key: key.to_string(),
                }),
                Err(e) => {
                    tracing::warn!(%tenant, call = %call.record.id, recording = %name, error = %e, "a recording cannot be stored under a key");
                }
            }
        }
    }
    out
}

/// The last path segment of a MixMonitor file (`/var/spool/asterisk/monitor/x.wav` → `x.wav`).
fn file_name(file: &str) -> &str {
    file.rsplit('/').next().unwrap_or(file)
}

/// The delay before try `attempts + 1`: 5 s, 15 s, 45 s, … at most 30 minutes.
pub(crate) fn retry_in(attempts: i32) -> Duration {
    let exp = u32::try_from(attempts.saturating_sub(1).clamp(0, 10)).unwrap_or(10);
    Duration::from_secs(5u64.saturating_mul(3u64.pow(exp)).min(1800))
}

/// Leases due recordings of the tenants this replica holds and stores them, a few at a time,
/// until the hub stops. Runs on every replica; the lease keeps two from doing the same one.
pub async fn uploader(hub: Hub) {
    let mut stop = hub.stopping();
    let mut every = tokio::time::interval(POLL);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut swept_at: Option<tokio::time::Instant> = None;
    loop {
        tokio::select! {
            _ = crate::stopped(&mut stop) => return,
            _ = every.tick() => {}
        }
        // Downloads a killed hub left behind (older than three leases: nobody writes them),
        // at start and every ten minutes.
        if swept_at.is_none_or(|at| at.elapsed() > SWEEP_EVERY) {
            sweep_spool(&spool_dir(), hub.config().recording_lease * 3).await;
            swept_at = Some(tokio::time::Instant::now());
        }
        let held = hub.held_tenants();
        if held.is_empty() {
            continue;
        }
        let lease = hub.config().recording_lease;
        let jobs = match hub.store().lease_recordings(&held, PARALLEL, lease).await {
            Ok(jobs) => jobs,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the recordings to store; trying again");
                continue;
            }
        };
        let mut work = tokio::task::JoinSet::new();
        for job in jobs {
            work.spawn(store_one(hub.clone(), job));
        }
        while work.join_next().await.is_some() {}
    }
}

/// One recording: fetched, uploaded, marked; or its failure kept with the next try.
async fn store_one(hub: Hub, job: RecordingJob) {
    let lease = hub.config().recording_lease;
    let keeper = {
        let (hub, job) = (hub.clone(), job.clone());
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(lease / 3).await;
                match hub.store().renew_recording_lease(&job, lease).await {
                    Ok(true) => {}
                    Ok(false) => return,
                    Err(e) => tracing::warn!(error = %e, "cannot renew a recording's lease"),
                }
            }
        })
    };
    let result = fetch_and_upload(&hub, &job).await;
    keeper.abort();
    match result {
        Ok(size) => {
            if let Err(e) = hub.store().recording_stored(&job, size).await {
                // The object is in the store; the next try finds it there and marks it.
                tracing::warn!(error = %e, "a recording is stored but could not be marked");
                return;
            }
            tracing::info!(tenant = %job.tenant, call = %job.call, recording = %job.name, size, attempts = job.attempts, "recording stored");
            announce(&hub, &job).await;
        }
        Err(e) => {
            let next = retry_in(job.attempts);
            tracing::warn!(tenant = %job.tenant, call = %job.call, recording = %job.name, attempts = job.attempts, retry_in = ?next, error = %e, "a recording could not be stored yet");
            match hub.store().recording_failed(&job, &e, next).await {
                // The first failure and the turn to failed are news; each retry is not.
                Ok(Some(state)) if job.attempts == 1 || state == RecordingState::Failed => {
                    announce(&hub, &job).await;
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "cannot note a recording's failure"),
            }
        }
    }
}

/// Sends the call again (`call-updated`, with its recordings' states) to those who see it:
/// supervisors and the operators the call concerns, here and on the other replicas.
async fn announce(hub: &Hub, job: &RecordingJob) {
    let (call, operators) = match tokio::try_join!(
        hub.store().call(&job.tenant, &job.call),
        hub.store().operators(&job.tenant)
    ) {
        Ok((Some(call), operators)) => (call, operators),
        Ok((None, _)) => return,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read a call to announce its recording");
            return;
        }
    };
    let ids = crate::fanout::operator_ids(&operators);
    let rooms = crate::fanout::rooms_of(&call, |ext| ids.get(ext).copied());
    let channel = hub.fanout().tenant(&job.tenant);
    if let Some(out) = channel.publish(&HubMessage::CallUpdated { call }, rooms) {
        crate::replicas::share(hub, &job.tenant, &out);
    }
}

/// Where Mango downloads are kept until they are uploaded (`$TMPDIR/calldesk-hub-spool`).
fn spool_dir() -> std::path::PathBuf {
    std::env::temp_dir().join("calldesk-hub-spool")
}

/// Removes `*.part` files in `dir` not written to for `older_than`.
async fn sweep_spool(dir: &std::path::Path, older_than: Duration) {
    let Ok(mut entries) = tokio::fs::read_dir(dir).await else {
        return;
    };
    let mut removed = 0u32;
    while let Ok(Some(entry)) = entries.next_entry().await {
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "part") {
            continue;
        }
        let stale = match entry.metadata().await.and_then(|m| m.modified()) {
            Ok(at) => at.elapsed().is_ok_and(|age| age > older_than),
            Err(_) => false,
        };
        if stale && tokio::fs::remove_file(&path).await.is_ok() {
            removed += 1;
        }
    }
    if removed > 0 {
        tracing::info!(removed, folder = %dir.display(), "removed downloads an earlier run left unfinished");
    }
}

/// Fetches the recording from the PBX into a file and puts it in the store (unless an earlier
/// try already did: same key, same size). Returns its size; errors are for the UI.
async fn fetch_and_upload(hub: &Hub, job: &RecordingJob) -> Result<u64, String> {
    let key = RecordingKey::parse(&job.store_key).map_err(|e| e.to_string())?;
    let runtime = hub
        .runtime(&job.tenant)
        .ok_or_else(|| "this hub no longer holds the tenant's PBX".to_owned())?;
    match &runtime.pbx {
        TenantPbx::Mango(mango) => {
            let spool = spool_dir();
            tokio::fs::create_dir_all(&spool)
                .await
                .map_err(|e| format!("cannot make the spool folder {}: {e}", spool.display()))?;
            let temp = spool.join(format!("{}.part", uuid::Uuid::new_v4()));
            let result = async {
                let mut file = tokio::fs::File::create(&temp)
                    .await
                    .map_err(|e| format!("cannot write {}: {e}", temp.display()))?;
                let download = mango
                    .client()
                    .download_recording(&job.name, &mut file)
                    .await
                    .map_err(|e| format!("Mango download: {e}"))?;
                file.sync_all()
                    .await
                    .map_err(|e| format!("cannot write {}: {e}", temp.display()))?;
                upload(hub, &key, &temp, download.bytes).await
            }
            .await;
            let _ = tokio::fs::remove_file(&temp).await;
            result
        }
        TenantPbx::Ami(_) => {
            let dir = match hub.tenant(&job.tenant).map(|t| t.pbx) {
                Some(PbxConfig::Asterisk { dialplan, .. }) => dialplan.recordings_dir,
                _ => None,
            }
            .ok_or_else(|| {
                "the tenant has no recordings folder: set where this hub finds MixMonitor's files \
                 (calldesk admin tenant add … --ami-recordings-dir /var/spool/asterisk/monitor)"
                    .to_owned()
            })?;
            let name = file_name(&job.name);
            if name.is_empty() || name == "." || name == ".." {
                return Err(format!(
                    "`{}` is not a recording file name",
                    job.name.escape_debug()
                ));
            }
            let path = std::path::Path::new(&dir).join(name);
            let size = tokio::fs::metadata(&path)
                .await
                .map_err(|e| {
                    format!(
                        "recording file {} cannot be read: {e} (is the PBX's recordings folder mounted here?)",
                        path.display()
                    )
                })?
                .len();
            upload(hub, &key, &path, size).await
        }
        TenantPbx::None => Err("this tenant's PBX makes no recordings".to_owned()),
    }
}

/// Puts `file` (`size` bytes) under `key`, unless the store holds it already.
async fn upload(
    hub: &Hub,
    key: &RecordingKey,
    file: &std::path::Path,
    size: u64,
) -> Result<u64, String> {
    match hub.recordings().exists(key).await {
        Ok(Some(info)) if info.size == size => return Ok(size),
        Ok(_) => {}
        Err(e) => return Err(e.to_string()),
    }
    hub.recordings()
        .upload_file(key, file)
        .await
        .map(|u| u.size)
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_to_half_an_hour() {
        let delays: Vec<u64> = (1..=8).map(|a| retry_in(a).as_secs()).collect();
        assert_eq!(delays, [5, 15, 45, 135, 405, 1215, 1800, 1800]);
        assert_eq!(retry_in(0).as_secs(), 5);
        assert_eq!(retry_in(i32::MAX).as_secs(), 1800);
    }

    #[test]
    fn a_mixmonitor_file_is_stored_under_its_own_name() {
        assert_eq!(
            file_name("/var/spool/asterisk/monitor/in-101.wav"),
            "in-101.wav"
        );
        assert_eq!(file_name("in-101.wav"), "in-101.wav");
    }
}
