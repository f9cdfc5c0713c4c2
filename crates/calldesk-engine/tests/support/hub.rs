//! A real hub on a real PostgreSQL, served on loopback, for the Hub-profile tests.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use calldesk_calls::{Extension, TenantId};
use calldesk_central::{CentralStore, NewOperator, NewTenant, PbxConfig, Role};
use calldesk_engine::{EngineConfig, HubProfile, ProfileConfig, Secret};
use calldesk_hub::{Hub, HubConfig, SecretEnv};
use calldesk_wire::HubCall;
use tokio::sync::watch;

pub const PASSWORD: &str = "s3cret-password";

/// A hub served on `addr` (port 0: any) until `stop` says `true`.
pub async fn serve_hub(
    store: &CentralStore,
    secrets: SecretEnv,
    addr: SocketAddr,
) -> (Hub, SocketAddr, watch::Sender<bool>) {
    let mut config = HubConfig::for_tests("unused");
    config.secrets = secrets;
    config.lease_every = Duration::from_millis(100);
    let (stop, stop_rx) = watch::channel(false);
    let hub = Hub::start_with_store(config, store.clone(), stop_rx)
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut until = stop.subscribe();
    tokio::spawn(calldesk_hub::serve(hub.clone(), listener, async move {
        let _ = until.wait_for(|s| *s).await;
    }));
    (hub, addr, stop)
}

/// An engine on the Hub profile of `login` (tenant `acme`), its data in `dir`.
pub fn hub_desk(addr: SocketAddr, login: &str, password: &str, dir: &Path) -> EngineConfig {
    EngineConfig {
        profile: ProfileConfig::Hub(HubProfile {
            url: format!("http://{addr}"),
            tenant: "acme".into(),
            login: login.into(),
            password: Secret::new(password),
            extra_root_certs_pem: None,
        }),
        data_dir: dir.to_owned(),
        region: "RU".into(),
        dialplan: calldesk_engine::DialplanConfig::default(),
        seat: calldesk_engine::Seat::default(),
    }
}

/// Tenant `acme` (no PBX: calls are written straight into the hub's store), operator `ivan`
/// on 101, and `calls` ended calls that rang 101.
pub async fn tenant(store: &CentralStore, calls: usize) -> Vec<String> {
    let acme = TenantId::new("acme").unwrap();
    store
        .add_tenant(&NewTenant {
            id: acme.clone(),
            name: "Acme".into(),
            number: "0367".into(),
            region: "RU".into(),
            pbx: PbxConfig::Demo,
        })
        .await
        .unwrap();
    store
        .add_operator(&NewOperator {
            tenant: acme,
            login: "ivan".into(),
            name: None,
            password_hash: calldesk_central::password::hash_password(PASSWORD).unwrap(),
            role: Role::Operator,
            extension: Extension::new("101").unwrap(),
            sip: None,
        })
        .await
        .unwrap();
    let now = calldesk_store::wall_clock_millis();
    let mut ids = Vec::new();
    let mut batch = Vec::new();
    for i in 0..calls {
        let id = format!("call-{i:04}");
        let at = calldesk_calls::Timestamp::from_unix_millis(
            now - 3_600_000 + i64::try_from(i).unwrap() * 1000,
        )
        .rfc3339();
        let call: HubCall = serde_json::from_value(serde_json::json!({
            "id": id, "direction": "inbound", "from": format!("+7495{:07}", 1_000_000 + i),
            "to": "0367", "status": "answered", "answered_by": ["101"], "transfers": [],
            "monitors": [], "queue": null, "ring_secs": 3, "talk_secs": 40, "hangup_cause": null,
            "recordings": [], "started_at": at, "answered_at": at, "ended_at": at,
            "tenant": "acme", "state": "ended", "operator": "101", "rang": ["101"],
            "on_hold": false, "caller": null, "notes": [], "disposition": null
        }))
        .unwrap();
        ids.push(id);
        batch.push(call);
    }
    store.upsert_calls(&batch).await.unwrap();
    ids
}

/// A fresh database `name` on `DATABASE_URL`'s server with the central migrations, for the
/// tests and benches that run without `#[sqlx::test]`; returns (the server's pool, the new
/// database's pool). [`drop_database`] removes it.
pub async fn fresh_database(name: &str) -> (sqlx::PgPool, sqlx::PgPool) {
    let url = std::env::var("DATABASE_URL")
        .expect("DATABASE_URL must name a PostgreSQL server where databases may be created");
    let admin = sqlx::PgPool::connect(&url).await.unwrap();
    for sql in [
        format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
        format!("CREATE DATABASE {name}"),
    ] {
        sqlx::query(&sql).execute(&admin).await.unwrap();
    }
    let options = <sqlx::postgres::PgConnectOptions as std::str::FromStr>::from_str(&url)
        .unwrap()
        .database(name);
    let pool = sqlx::PgPool::connect_with(options).await.unwrap();
    calldesk_central::MIGRATOR.run(&pool).await.unwrap();
    (admin, pool)
}

pub async fn drop_database(admin: &sqlx::PgPool, pool: sqlx::PgPool, name: &str) {
    pool.close().await;
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(admin)
        .await
        .unwrap();
}
