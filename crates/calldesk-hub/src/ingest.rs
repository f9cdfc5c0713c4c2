//! Mango webhooks: `POST /mango/{tenant}/{path}` (`events/call`, `events/summary`, …,
//! `result/<command>`, `ping`). The tenant's key and salt verify the signature; the verified
//! form is persisted in the inbox (batched with other requests: one round trip, one commit)
//! and only then answered 200; the parsed webhook goes to the tenant's runtime here, or, when
//! another replica holds the tenant, an inbox notice tells that replica to read it.

use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use calldesk_calls::TenantId;
use calldesk_central::{InboxItem, PbxConfig};
use calldesk_mango_proto::Credentials;
use calldesk_mango_proto::webhook::{Route, SignedForm, Webhook, WebhookError};
use tokio::sync::{mpsc, oneshot};

use crate::Hub;
use crate::metrics::ResultLabel;
use crate::runtime::Input;

#[derive(Debug)]
pub struct InboxRequest {
    item: InboxItem,
    reply: oneshot::Sender<Result<i64, String>>,
}

fn counted(hub: &Hub, result: &'static str, status: StatusCode, body: String) -> Response {
    hub.metrics()
        .webhooks
        .get_or_create(&ResultLabel { result })
        .inc();
    (status, body).into_response()
}

pub async fn webhook(
    State(hub): State<Hub>,
    Path((tenant, path)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let received = Instant::now();
    let Ok(tenant) = TenantId::new(tenant) else {
        return counted(
            &hub,
            "unknown_tenant",
            StatusCode::NOT_FOUND,
            "unknown tenant".into(),
        );
    };
    let mut config = hub.tenant(&tenant);
    if config.is_none() {
        // Perhaps added a moment ago with `calldesk admin tenant add`.
        let _ = hub.reload_tenants().await;
        config = hub.tenant(&tenant);
    }
    let Some(config) = config.filter(|c| c.active) else {
        return counted(
            &hub,
            "unknown_tenant",
            StatusCode::NOT_FOUND,
            format!("no tenant {tenant}"),
        );
    };
    let PbxConfig::Mango { key, salt_env, .. } = &config.pbx else {
        return counted(
            &hub,
            "not_mango",
            StatusCode::NOT_FOUND,
            format!("tenant {tenant} does not use Mango Office"),
        );
    };
    let Some(salt) = hub.config().secrets.get(salt_env) else {
        tracing::error!(%tenant, "a webhook arrived but the Mango salt is not set: put it in the environment variable {salt_env}");
        return counted(
            &hub,
            "no_salt",
            StatusCode::SERVICE_UNAVAILABLE,
            "the hub cannot verify webhooks of this tenant yet".into(),
        );
    };
    let route_path = format!("/{path}");
    let route = match Route::from_path(&route_path) {
        Ok(r) => r,
        Err(e) => return counted(&hub, "unknown_path", StatusCode::NOT_FOUND, e.to_string()),
    };
    let form = match SignedForm::parse(&body) {
        Ok(f) => f,
        Err(e) => return counted(&hub, "bad_form", StatusCode::BAD_REQUEST, e.to_string()),
    };
    let credentials = Credentials::new(key.clone(), salt);
    let json = match form.verify(&credentials) {
        Ok(json) => json,
        Err(e @ (WebhookError::WrongKey | WebhookError::BadSignature)) => {
            tracing::warn!(%tenant, path = %route_path, error = %e, "webhook refused");
            return counted(
                &hub,
                "bad_signature",
                StatusCode::UNAUTHORIZED,
                e.to_string(),
            );
        }
        Err(e) => return counted(&hub, "bad_form", StatusCode::BAD_REQUEST, e.to_string()),
    };
    if route == Route::Ping {
        return counted(&hub, "ping", StatusCode::OK, String::new());
    }
    let webhook = match Webhook::parse(&route, json) {
        Ok(w) => w,
        Err(e) => {
            tracing::warn!(%tenant, path = %route_path, error = %e, "webhook not understood");
            return counted(&hub, "bad_payload", StatusCode::BAD_REQUEST, e.to_string());
        }
    };
    let item = InboxItem {
        tenant: tenant.clone(),
        path: route_path,
        body: json.to_owned(),
        received_at_ms: crate::now_ms(),
    };
    let (reply, done) = oneshot::channel();
    if hub
        .inner
        .inbox
        .send(InboxRequest { item, reply })
        .await
        .is_err()
    {
        return counted(
            &hub,
            "stopping",
            StatusCode::SERVICE_UNAVAILABLE,
            "the hub is stopping".into(),
        );
    }
    // While the webhook is being stored: the caller card, so the pop need not wait for it.
    let numbers = customer_numbers(&webhook);
    let prefetch = async {
        for raw in numbers {
            hub.inner
                .cards
                .prefetch_raw(&hub, &tenant, &config.region, &raw)
                .await;
        }
    };
    let (stored, ()) = tokio::join!(done, prefetch);
    let id = match stored {
        Ok(Ok(id)) => id,
        _ => {
            return counted(
                &hub,
                "not_stored",
                StatusCode::SERVICE_UNAVAILABLE,
                "the hub could not store the webhook; it is not accepted".into(),
            );
        }
    };
    hub.metrics()
        .webhook_persist_seconds
        .observe(received.elapsed().as_secs_f64());
    dispatch(&hub, &tenant, id, webhook, received).await;
    counted(&hub, "ok", StatusCode::OK, String::new())
}

/// Hands a stored webhook to the tenant's runtime, wherever it runs. A runtime that is behind
/// (its queue full) slows the senders down: the webhook is stored, so waiting loses nothing.
pub(crate) async fn dispatch(
    hub: &Hub,
    tenant: &TenantId,
    id: i64,
    webhook: Webhook,
    received: Instant,
) {
    match hub.runtime(tenant) {
        Some(rt) => {
            rt.last_inbox
                .fetch_max(id, std::sync::atomic::Ordering::Relaxed);
            let input = Input::Webhook {
                id,
                webhook: Box::new(webhook),
                received,
            };
            let _ = rt.inputs.send(input).await;
        }
        None => crate::replicas::inbox_notice(hub, tenant, id),
    }
}

/// How many batches may be on their way to the database at once.
pub const INBOX_WRITERS: usize = 3;

/// Persists webhooks in batches: whatever queued up while the previous batch was written goes
/// in the next one (group commit). Several of these share the queue.
pub async fn inbox_writer(
    hub: Hub,
    rx: std::sync::Arc<tokio::sync::Mutex<mpsc::Receiver<InboxRequest>>>,
) {
    let mut batch = Vec::with_capacity(256);
    loop {
        let got = rx.lock().await.recv_many(&mut batch, 256).await;
        if got == 0 {
            return;
        }
        let items: Vec<InboxItem> = batch.iter().map(|r| r.item.clone()).collect();
        match hub.store().insert_webhooks(&items).await {
            Ok(ids) => {
                for (req, id) in batch.drain(..).zip(ids) {
                    let _ = req.reply.send(Ok(id));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, webhooks = batch.len(), "cannot store webhooks; they are refused (503) so the sender can retry");
                for req in batch.drain(..) {
                    let _ = req.reply.send(Err(e.to_string()));
                }
            }
        }
    }
}

/// Deletes the processed webhooks older than `inbox_retention` of the tenants this replica
/// holds: every hour, or every half retention when that is shorter (at least every second).
/// Unprocessed ones (calls still going on, or not applied yet) are never deleted.
pub async fn inbox_pruner(hub: Hub) {
    let mut stop = hub.stopping();
    let period = (hub.config().inbox_retention / 2).clamp(
        std::time::Duration::from_secs(1),
        std::time::Duration::from_secs(3600),
    );
    let mut every = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = crate::stopped(&mut stop) => return,
            _ = every.tick() => {}
        }
        let retention = i64::try_from(hub.config().inbox_retention.as_millis()).unwrap_or(i64::MAX);
        let before = crate::now_ms().saturating_sub(retention);
        let held = hub.held_tenants();
        for tenant in held {
            match hub.store().prune_webhooks(&tenant, before).await {
                Ok(0) => {}
                Ok(n) => {
                    tracing::info!(%tenant, deleted = n, "old processed webhooks deleted from the inbox")
                }
                Err(e) => {
                    tracing::warn!(%tenant, error = %e, "cannot prune the webhook inbox; will try again in an hour")
                }
            }
        }
        match hub
            .store()
            .prune_sync(crate::sync::SYNC_RETENTION_DAYS)
            .await
        {
            Ok(0) => {}
            Ok(n) => tracing::info!(deleted = n, "old desk sync entries deleted"),
            Err(e) => {
                tracing::warn!(error = %e, "cannot prune the desk sync tables; will try again later")
            }
        }
    }
}

/// The customers' numbers of a webhook (parties that are not extensions), as sent.
fn customer_numbers(webhook: &Webhook) -> Vec<String> {
    let parties = match webhook {
        Webhook::Call(leg) => [&leg.from, &leg.to],
        Webhook::Summary(s) => [&s.from, &s.to],
        _ => return Vec::new(),
    };
    parties
        .into_iter()
        .filter(|p| p.extension.is_none())
        .filter_map(|p| p.number.clone())
        .collect()
}

/// Reads stored webhooks back (takeover, inbox notices) and hands them to the local runtime.
pub(crate) async fn replay(hub: &Hub, tenant: &TenantId, items: Vec<(i64, InboxItem)>) {
    for (id, item) in items {
        let parsed = Route::from_path(&item.path).and_then(|r| Webhook::parse(&r, &item.body));
        match parsed {
            Ok(webhook) => dispatch(hub, tenant, id, webhook, Instant::now()).await,
            Err(e) => tracing::warn!(%tenant, id, error = %e, "stored webhook not understood"),
        }
    }
}
