//! A real hub on a real PostgreSQL, served on loopback, for the Hub-profile tests.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use calldesk_central::CentralStore;
use calldesk_engine::{EngineConfig, HubProfile, ProfileConfig, Secret};
use calldesk_hub::{Hub, HubConfig, SecretEnv};
use tokio::sync::watch;

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
