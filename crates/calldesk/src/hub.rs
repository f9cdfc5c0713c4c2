//! `calldesk hub [--config hub.toml]`: runs the hub (`calldesk_hub::run`) until Ctrl-C or
//! SIGTERM, with logs on stderr (`RUST_LOG`, default `info`).

use std::path::PathBuf;

use anyhow::Context;

#[derive(clap::Args)]
pub struct HubArgs {
    /// A TOML file with the hub's settings; the environment overrides it (see README).
    #[arg(long)]
    pub config: Option<PathBuf>,
}

/// A setting to fix before the hub can start (exit code 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadConfig(String);

pub fn run(args: &HubArgs) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
    let config = calldesk_hub::HubConfig::load(args.config.as_deref(), |k| std::env::var(k).ok())
        .map_err(|e| BadConfig(e.to_string()))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        match calldesk_hub::run(config, shutdown_signal()).await {
            Ok(()) => Ok(()),
            Err(e @ (calldesk_hub::HubError::Config(_) | calldesk_hub::HubError::Bind { .. })) => {
                Err(BadConfig(e.to_string()).into())
            }
            Err(e) => Err(e.into()),
        }
    })
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = ctrl_c.await;
            return;
        }
    };
    tokio::select! {
        _ = ctrl_c => {}
        _ = term.recv() => {}
    }
    tracing::info!("stopping: finishing requests, closing WebSockets and PBX sessions");
}
