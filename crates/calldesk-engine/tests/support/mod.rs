//! Shared by the engine's integration tests: a simulator on a loopback port and an engine in
//! the Direct profile talking to it.

use calldesk_engine::{DialplanConfig, Engine, EngineConfig, EngineHandle, ProfileConfig};
use calldesk_sim::ami::{AmiSimConfig, AmiSimHandle, AmiSimulator};

/// A running simulator and an engine connected to it. Dropping it stops the simulator.
pub struct Setup {
    pub engine: EngineHandle,
    pub sim: AmiSimHandle,
    pub dir: std::path::PathBuf,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl Setup {
    /// `name` keeps each test's data folder apart.
    pub async fn start(name: &str, config: AmiSimConfig, dialplan: DialplanConfig) -> Self {
        let credentials = calldesk_ami::AmiCredentials {
            username: config.username.clone(),
            secret: config.secret.clone(),
        };
        let sim = AmiSimulator::bind(([127, 0, 0, 1], 0).into(), config)
            .await
            .unwrap();
        let (addr, handle) = (sim.local_addr(), sim.handle());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(sim.run(async move {
            let _ = stopped.await;
        }));
        let dir =
            std::env::temp_dir().join(format!("calldesk-engine-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let engine = Engine::start(EngineConfig {
            profile: ProfileConfig::Direct {
                addr: addr.to_string(),
                credentials,
                report_to: None,
            },
            data_dir: dir.clone(),
            region: "RU".into(),
            dialplan,
            seat: calldesk_engine::Seat::default(),
        })
        .await
        .unwrap();
        Self {
            engine,
            sim: handle,
            dir,
            _stop: stop,
        }
    }

    pub async fn teardown(self) {
        self.engine.shutdown().await;
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
