//! `GET /ws`: the realtime feed. Authenticated by the JWT (`Authorization` or `?token=`); the
//! client's rooms follow from its role: operators get `operators` + `operator:{id}`,
//! supervisors and admins also `supervisors` (where every message goes). First `hello`, then a `snapshot` of the live
//! calls it may see and the presence board, then messages as they happen. A client that falls
//! behind the tenant's broadcast buffer gets a fresh `snapshot` (reason `lagged`). While this
//! replica's session with the tenant's PBX is still reading the live calls (a hub that just
//! started), the first snapshot waits for it (at most 5 s), so it never lacks calls that are up.

use axum::extract::State;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use calldesk_wire::{HUB_PROTOCOL, HubMessage, SnapshotReason};
use tokio::sync::broadcast::error::RecvError;

use crate::Hub;
use crate::auth::Principal;
use crate::fanout::{Room, TenantChannel};
use crate::metrics::ResultLabel;

pub async fn handler(
    State(hub): State<Hub>,
    principal: Principal,
    ws: WebSocketUpgrade,
) -> Response {
    ws.on_upgrade(move |socket| client(hub, principal, socket))
}

fn rooms_for(p: &Principal) -> Vec<Room> {
    let mut rooms = vec![Room::Operators, Room::Operator(p.operator_id)];
    if p.role.supervises() {
        rooms.push(Room::Supervisors);
    }
    rooms
}

async fn send(socket: &mut WebSocket, message: &HubMessage) -> bool {
    match serde_json::to_string(message) {
        Ok(json) => socket.send(Message::Text(json.into())).await.is_ok(),
        Err(_) => false,
    }
}

async fn snapshot(
    hub: &Hub,
    channel: &TenantChannel,
    rooms: &[Room],
    reason: SnapshotReason,
    socket: &mut WebSocket,
) -> bool {
    let (calls, presence) = channel.snapshot(rooms);
    hub.metrics()
        .ws_snapshots
        .get_or_create(&ResultLabel {
            result: match reason {
                SnapshotReason::Connect => "connect",
                SnapshotReason::Lagged => "lagged",
            },
        })
        .inc();
    send(
        socket,
        &HubMessage::Snapshot {
            reason,
            calls,
            presence,
        },
    )
    .await
}

/// The next message on any of the client's room channels (one or two).
async fn recv_any(
    rxs: &mut [tokio::sync::broadcast::Receiver<std::sync::Arc<crate::fanout::Outbound>>],
) -> Result<std::sync::Arc<crate::fanout::Outbound>, RecvError> {
    match rxs {
        [] => std::future::pending().await,
        [one] => one.recv().await,
        [first, second, ..] => tokio::select! {
            m = first.recv() => m,
            m = second.recv() => m,
        },
    }
}

/// How long a client's first snapshot waits for a PBX session that is still reading its live
/// calls (a hub that just started or reconnected).
const PBX_RESYNC_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// A hub that has not read its PBX yet would send a snapshot without the calls that are up,
/// and a desktop would take them for ended: wait (at most [`PBX_RESYNC_WAIT`]) until the
/// tenant's PBX session here is past connecting and resyncing. A tenant another replica holds
/// is not waited for.
async fn pbx_resynced(hub: &Hub, tenant: &calldesk_calls::TenantId) {
    let Some(rt) = hub.runtime(tenant) else {
        return;
    };
    let mut status = rt.status.clone();
    let settled = status.wait_for(|s| {
        !matches!(
            s.state,
            calldesk_wire::ConnectionState::Connecting | calldesk_wire::ConnectionState::Resyncing
        )
    });
    let _ = tokio::time::timeout(PBX_RESYNC_WAIT, settled).await;
}

async fn client(hub: Hub, p: Principal, mut socket: WebSocket) {
    pbx_resynced(&hub, &p.tenant).await;
    let rooms = rooms_for(&p);
    let channel = hub.fanout().tenant(&p.tenant);
    crate::replicas::seed(&hub, &p.tenant, &channel).await;
    // Subscribe before the snapshot: nothing falls between them (a message may repeat what the
    // snapshot said, and applying it again changes nothing).
    let mut rxs = channel.subscribe(&rooms);
    let mut stop = hub.stopping();
    hub.metrics().ws_clients.inc();
    let hello = HubMessage::Hello {
        protocol: HUB_PROTOCOL,
        tenant: p.tenant.to_string(),
        operator_id: p.operator_id,
        role: p.role.as_str().to_owned(),
        extension: Some(p.extension.to_string()),
    };
    let mut alive = send(&mut socket, &hello).await
        && snapshot(&hub, &channel, &rooms, SnapshotReason::Connect, &mut socket).await;
    while alive {
        tokio::select! {
            biased;
            _ = crate::stopped(&mut stop) => {
                let _ = socket.send(Message::Close(None)).await;
                break;
            }
            incoming = socket.recv() => match incoming {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => break,
                // Pings are answered by the WebSocket layer; clients have nothing to say yet.
                Some(Ok(_)) => {}
            },
            message = recv_any(&mut rxs) => match message {
                Ok(out) => {
                    if out.visible_to(&rooms) {
                        alive = socket.send(Message::Text(out.json.clone().into())).await.is_ok();
                        hub.metrics().ws_messages.inc();
                    }
                }
                Err(RecvError::Lagged(missed)) => {
                    tracing::info!(tenant = %p.tenant, login = %p.login, missed, "slow WebSocket client: sending a fresh snapshot");
                    rxs = rxs.iter().map(|rx| rx.resubscribe()).collect();
                    alive = snapshot(&hub, &channel, &rooms, SnapshotReason::Lagged, &mut socket).await;
                }
                Err(RecvError::Closed) => break,
            },
        }
    }
    hub.metrics().ws_clients.dec();
}
