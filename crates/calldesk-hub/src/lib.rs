//! calldesk hub as a library (layer 2): [`router`] (the whole HTTP surface as a value, testable
//! without a socket) and [`run`] (bind, serve, stop gracefully). The `calldesk hub` command only
//! wires configuration to [`run`].
//!
//! # Parts
//! - `config`: TOML + environment ([`HubConfig`]); secrets from the environment only.
//! - `auth`: argon2 login → HS256 JWT ([`auth::Principal`] extractor; tenant comes from the token).
//! - `ingest`: Mango webhooks (`/mango/{tenant}/…`): tenant looked up, signature checked with
//!   the tenant's key and salt, the form **persisted** in the inbox (batched, group commit),
//!   200, then handed to the tenant's runtime (here, or on the replica holding the tenant).
//! - `runtime`: one task per tenant whose PBX this replica holds: the tracker (Mango or the AMI
//!   session) → `CallBook` → [`HubCall`](calldesk_wire::HubCall) with the caller card (looked
//!   up before the pop goes out) → fan-out + batched writes; call controls through the
//!   tenant's `Pbx` (AMI or Mango).
//! - `leases`: a PostgreSQL advisory lock per tenant decides which replica holds its PBX; the
//!   holder replays the tenant's unprocessed inbox on takeover.
//! - `replicas`: LISTEN/NOTIFY between replicas: call messages (each replica fans out to its
//!   own WebSocket clients), inbox notices, call controls forwarded to the holder.
//! - `fanout` + `ws`: rooms `operators`, `operator:{id}`, `supervisors`; snapshot on connect,
//!   then `call-new`/`call-updated`/`call-ended`/`presence`/`pbx-status`; a slow client gets a
//!   fresh snapshot instead of a growing buffer.
//! - `api`: REST (calls with filters and keyset pagination, history, operators, companies and
//!   contacts, notes, dispositions, call controls by role), the seed-compatible machine API
//!   (`/api/makecallexternal`, `/api/monitor` by enterprise `clientId`), `/health`,
//!   `/api/status`, `/metrics`, OpenAPI at `/api/docs`.
//!
//! # Invariants
//! - Every query is scoped by the tenant of the token or of the clientId; a path id of another
//!   tenant is "not found", never served.
//! - A webhook is answered 200 only after it is in PostgreSQL; a bad signature is 401 and is
//!   never stored.
//! - No secret (JWT secret, AMI secret, Mango salt, clientId, password) is logged.

mod api;
pub mod auth;
mod cards;
mod config;
pub mod error;
pub mod fanout;
mod ingest;
mod leases;
mod metrics;
mod recordings;
mod replicas;
mod runtime;
mod sync;
mod ws;

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, RwLock};
use std::time::Instant;

use calldesk_calls::TenantId;
use calldesk_central::{CentralStore, TenantConfig};
use tokio::sync::{mpsc, watch};

pub use config::{ConfigError, HubConfig, Secret, SecretEnv};
pub use metrics::Metrics;

use crate::auth::Keys;
use crate::fanout::Fanout;
use crate::runtime::{TenantHandle, WriteOp};

/// Why the hub stopped or could not start.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Store(#[from] calldesk_central::CentralError),
    #[error("cannot listen on {addr}: {source}; is another process using the port?")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("the HTTP server failed: {0}")]
    Serve(std::io::Error),
    #[error(transparent)]
    Recordings(#[from] calldesk_media::MediaError),
}

/// The hub's shared state; cheap to clone.
#[derive(Debug, Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: HubConfig,
    store: CentralStore,
    /// Where recordings are kept (S3 or a local folder this hub serves).
    recordings: calldesk_media::RecordingStore,
    keys: Keys,
    metrics: Metrics,
    fanout: Fanout,
    /// Tenants as last read from the database.
    tenants: RwLock<HashMap<TenantId, TenantConfig>>,
    /// Runtimes of the tenants whose PBX this replica holds.
    runtimes: RwLock<HashMap<TenantId, TenantHandle>>,
    writes: mpsc::Sender<WriteOp>,
    inbox: mpsc::Sender<ingest::InboxRequest>,
    notices: mpsc::Sender<replicas::Notice>,
    controls: replicas::PendingControls,
    cards: cards::CardCache,
    /// Other live replicas, as of the last heartbeat; 0 = alone (no NOTIFY fan-out needed).
    others: std::sync::atomic::AtomicI64,
    limits: api::Limits,
    started: Instant,
    shutdown: watch::Receiver<bool>,
}

impl Hub {
    /// Connects to the database (migrating it) and starts the background tasks (writer, inbox,
    /// replica listener, leases). They stop when `shutdown` turns true.
    pub async fn start(
        config: HubConfig,
        shutdown: watch::Receiver<bool>,
    ) -> Result<Self, HubError> {
        let store = CentralStore::connect(config.database_url.expose()).await?;
        Self::start_with_store(config, store, shutdown).await
    }

    /// [`Hub::start`] on a store that is already connected and migrated (tests).
    pub async fn start_with_store(
        config: HubConfig,
        store: CentralStore,
        shutdown: watch::Receiver<bool>,
    ) -> Result<Self, HubError> {
        let (writes, writes_rx) = mpsc::channel(65_536);
        let (inbox, inbox_rx) = mpsc::channel(65_536);
        let (notices, notices_rx) = mpsc::channel(65_536);
        let keys = Keys::new(config.jwt_secret.expose().as_bytes(), config.token_ttl);
        let recordings = calldesk_media::RecordingStore::from_settings(config.recordings.clone())?;
        tracing::info!(store = recordings.describe(), "recordings store");
        let hub = Self {
            inner: Arc::new(Inner {
                recordings,
                fanout: Fanout::new(config.ws_buffer),
                limits: api::Limits::new(config.login_per_minute, config.machine_per_second),
                config,
                store,
                keys,
                metrics: Metrics::new(),
                tenants: RwLock::new(HashMap::new()),
                runtimes: RwLock::new(HashMap::new()),
                writes,
                inbox,
                notices,
                controls: replicas::PendingControls::default(),
                cards: cards::CardCache::default(),
                others: std::sync::atomic::AtomicI64::new(0),
                started: Instant::now(),
                shutdown: shutdown.clone(),
            }),
        };
        hub.reload_tenants().await?;
        // Announce this replica before serving, so the others start sharing with it at once.
        leases::heartbeat(&hub).await;
        // Call states and their history are rebuilt from the inbox after a crash, so their
        // commits need not wait for the disk (the inbox's do).
        let relaxed = hub.store().relaxed(2).await?;
        tokio::spawn(runtime::writer(hub.clone(), relaxed, writes_rx));
        // Several writers: while one batch waits for its commit the next is on its way
        // (PostgreSQL commits concurrent transactions together).
        let inbox_rx = std::sync::Arc::new(tokio::sync::Mutex::new(inbox_rx));
        for _ in 0..ingest::INBOX_WRITERS {
            tokio::spawn(ingest::inbox_writer(hub.clone(), inbox_rx.clone()));
        }
        tokio::spawn(ingest::inbox_pruner(hub.clone()));
        tokio::spawn(recordings::uploader(hub.clone()));
        tokio::spawn(replicas::notifier(hub.clone(), notices_rx));
        tokio::spawn(replicas::listener(hub.clone()));
        tokio::spawn(leases::run(hub.clone()));
        Ok(hub)
    }

    pub fn config(&self) -> &HubConfig {
        &self.inner.config
    }

    pub fn store(&self) -> &CentralStore {
        &self.inner.store
    }

    pub fn recordings(&self) -> &calldesk_media::RecordingStore {
        &self.inner.recordings
    }

    pub fn keys(&self) -> &Keys {
        &self.inner.keys
    }

    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    pub(crate) fn fanout(&self) -> &Fanout {
        &self.inner.fanout
    }

    pub(crate) fn stopping(&self) -> watch::Receiver<bool> {
        self.inner.shutdown.clone()
    }

    /// Re-reads the tenants (new ones added by `calldesk admin`, changed settings).
    pub async fn reload_tenants(&self) -> Result<(), HubError> {
        let list = self.inner.store.tenants().await?;
        if let Ok(mut map) = self.inner.tenants.write() {
            *map = list.into_iter().map(|t| (t.id.clone(), t)).collect();
        }
        Ok(())
    }

    pub(crate) fn tenant(&self, id: &TenantId) -> Option<TenantConfig> {
        self.inner.tenants.read().ok()?.get(id).cloned()
    }

    pub(crate) fn tenant_list(&self) -> Vec<TenantConfig> {
        self.inner
            .tenants
            .read()
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default()
    }

    pub(crate) fn runtime(&self, id: &TenantId) -> Option<TenantHandle> {
        self.inner.runtimes.read().ok()?.get(id).cloned()
    }

    pub(crate) fn runtimes(&self) -> &RwLock<HashMap<TenantId, TenantHandle>> {
        &self.inner.runtimes
    }

    /// The tenants whose PBX this replica holds now.
    pub fn held_tenants(&self) -> Vec<TenantId> {
        self.runtimes()
            .read()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Whether this replica holds the tenant's PBX connection now.
    pub fn holds(&self, id: &TenantId) -> bool {
        self.runtime(id).is_some()
    }

    /// Waits until this replica holds the tenant's PBX (tests, startup checks).
    pub async fn wait_until_held(&self, id: &TenantId, within: std::time::Duration) -> bool {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if self.holds(id) {
                return true;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        false
    }
}

/// The whole HTTP surface.
pub fn router(hub: Hub) -> axum::Router {
    api::router(hub)
}

/// Runs the hub until `shutdown` resolves: binds, serves, then stops the PBX sessions and
/// flushes pending writes.
pub async fn run(
    config: HubConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), HubError> {
    let (stop_tx, stop_rx) = watch::channel(false);
    let hub = Hub::start(config, stop_rx).await?;
    let addr = hub.config().bind;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| HubError::Bind { addr, source })?;
    let local = listener.local_addr().map_err(HubError::Serve)?;
    tracing::info!(addr = %local, replica = %hub.config().replica, "hub listening");
    serve(hub, listener, async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    })
    .await
}

/// Serves `hub` on an already bound listener until `shutdown` resolves (tests bind port 0).
pub async fn serve(
    hub: Hub,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), HubError> {
    use axum::serve::ListenerExt as _;
    let app = router(hub.clone()).into_make_service_with_connect_info::<std::net::SocketAddr>();
    // TCP_NODELAY: without it a small WebSocket frame written while the previous one is not
    // acknowledged waits for the client's delayed ACK (up to 40 ms on Linux).
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY on a connection");
        }
    });
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(HubError::Serve)?;
    leases::stop_all(&hub).await;
    runtime::flush(&hub).await;
    tracing::info!("hub stopped");
    Ok(())
}

/// Now, in Unix milliseconds (the hub's clock for webhook receipt and tracker input).
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Resolves once shutdown is asked for. Holds no borrow of the value across later awaits, so
/// it can sit in a `select!` of a `Send` task.
pub(crate) async fn stopped(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}
