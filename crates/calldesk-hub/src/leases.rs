//! Which replica holds each tenant's PBX: a PostgreSQL advisory lock per tenant, taken on one
//! dedicated connection. Every `lease_every` the replica re-reads the tenants and tries to take
//! the ones nobody holds; when it takes one it starts the tenant's runtime and replays the
//! tenant's unprocessed webhooks. If the lease connection dies, every lock is gone: all runtimes
//! stop at once (another replica takes over) and the replica starts again from scratch.

use std::time::Duration;

use calldesk_calls::TenantId;
use calldesk_central::LeaseConnection;

use crate::Hub;

pub async fn run(hub: Hub) {
    let mut stop = hub.stopping();
    loop {
        let mut lease = match hub.store().lease_connection().await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "cannot open the lease connection; retrying");
                tokio::select! {
                    _ = crate::stopped(&mut stop) => return,
                    _ = tokio::time::sleep(Duration::from_secs(2)) => continue,
                }
            }
        };
        loop {
            if let Err(e) = round(&hub, &mut lease).await {
                tracing::error!(error = %e, "lease connection lost: stopping every PBX connection this replica held");
                stop_all(&hub).await;
                break;
            }
            tokio::select! {
                _ = crate::stopped(&mut stop) => {
                    stop_all(&hub).await;
                    let _ = hub.store().replica_gone(&hub.config().replica).await;
                    return;
                }
                _ = tokio::time::sleep(hub.config().lease_every) => {}
            }
        }
    }
}

/// Says this replica is alive and learns whether others are. When another replica appears,
/// every live call this one holds is shared with it (it may have clients already).
pub async fn heartbeat(hub: &Hub) {
    let window = (hub.config().lease_every.as_secs() as i64 * 5).max(10);
    match hub
        .store()
        .replica_heartbeat(&hub.config().replica, window)
        .await
    {
        Ok(others) => {
            let before = hub
                .inner
                .others
                .swap(others, std::sync::atomic::Ordering::AcqRel);
            if before == 0 && others > 0 {
                tracing::info!(
                    others,
                    "other hub replicas are up: sharing call messages with them"
                );
                crate::replicas::share_all_live(hub);
            }
        }
        Err(e) => tracing::warn!(error = %e, "replica heartbeat failed"),
    }
}

async fn round(
    hub: &Hub,
    lease: &mut LeaseConnection,
) -> Result<(), calldesk_central::CentralError> {
    lease.ping().await?;
    heartbeat(hub).await;
    if let Err(e) = hub.reload_tenants().await {
        tracing::warn!(error = %e, "cannot re-read the tenants");
    }
    let tenants = hub.tenant_list();
    // Release tenants that went away or were deactivated.
    let held = hub.held_tenants();
    for id in held {
        if !tenants.iter().any(|t| t.id == id && t.active) {
            stop(hub, &id);
            lease.release(&id).await?;
        }
    }
    for tenant in tenants.iter().filter(|t| t.active) {
        if hub.holds(&tenant.id) || !lease.try_acquire(&tenant.id).await? {
            continue;
        }
        match crate::runtime::start(hub, tenant).await {
            Ok(handle) => {
                tracing::info!(tenant = %tenant.id, replica = %hub.config().replica, "holding the tenant's PBX");
                if let Ok(mut map) = hub.runtimes().write() {
                    map.insert(tenant.id.clone(), handle);
                }
                // In its own task: the lease loop keeps its pace however long the inbox is.
                tokio::spawn(replay_unprocessed(hub.clone(), tenant.id.clone()));
            }
            Err(e) => {
                tracing::error!(tenant = %tenant.id, "{e}");
                lease.release(&tenant.id).await?;
            }
        }
    }
    Ok(())
}

/// Replays, page by page, the tenant's webhooks stored but not processed (those of calls that
/// were still going on when the previous holder stopped, and any it had not got to).
async fn replay_unprocessed(hub: Hub, tenant: TenantId) {
    let mut after = 0;
    let mut replayed = 0;
    loop {
        let page = match hub
            .store()
            .unprocessed_webhooks(&tenant, after, calldesk_central::MAX_READ)
            .await
        {
            Ok(page) => page,
            Err(e) => {
                tracing::error!(%tenant, error = %e, "cannot read the inbox; webhooks not replayed");
                return;
            }
        };
        let Some((last, _)) = page.last() else {
            break;
        };
        after = *last;
        replayed += page.len();
        crate::ingest::replay(&hub, &tenant, page).await;
    }
    if replayed > 0 {
        tracing::info!(%tenant, webhooks = replayed, "replayed webhooks stored but not processed");
    }
}

fn stop(hub: &Hub, id: &TenantId) {
    let removed = hub.runtimes().write().ok().and_then(|mut m| m.remove(id));
    if let Some(rt) = removed {
        rt.stop();
        tracing::info!(tenant = %id, "released the tenant's PBX");
    }
}

/// Stops every runtime of this replica.
pub async fn stop_all(hub: &Hub) {
    let all: Vec<TenantId> = hub.held_tenants();
    for id in all {
        stop(hub, &id);
    }
}
