//! Recordings end to end, as an operator hears them: the fake Mango plays a recorded call
//! (signed webhooks) whose recording is a real WAV file; the hub downloads it through the
//! Mango API and uploads it to a real S3 server on loopback (s3s-fs checks signatures); the
//! desktop engine (Hub profile) gets a presigned link, streams the file into its cache, and the
//! decoded samples equal the source's. A second open comes from the cache. Real PostgreSQL,
//! real sockets on port 0.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Cursor;
use std::num::NonZero;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use calldesk_calls::{Extension, TenantId};
use calldesk_central::{CentralStore, NewOperator, NewTenant, PbxConfig, RecordingState, Role};
use calldesk_engine::{Engine, EngineConfig, EngineError, HubProfile, ProfileConfig, Secret};
use calldesk_hub::{Hub, HubConfig, SecretEnv};
use calldesk_media::StoreSettings;
use calldesk_player::{Cache, Media, decode};
use calldesk_sim::mango::{FakeMango, FakeMangoConfig, MangoScenario};
use calldesk_sim::s3::S3Server;
use sqlx::PgPool;
use tokio::sync::watch;

const PASSWORD: &str = "s3cret-password";
const MANGO_SALT: &str = "fakevpbxsalt400000000000000000y";

/// Two seconds of a two-tone signal at 8 kHz mono, as a 32-bit float WAV.
fn source_wav() -> (Vec<f32>, Vec<u8>) {
    let samples: Vec<f32> = (0..16_000)
        .map(|i| {
            let t = i as f32 / 8000.0;
            0.4 * (std::f32::consts::TAU * 440.0 * t).sin()
                + 0.2 * (std::f32::consts::TAU * 1000.0 * t).sin()
        })
        .collect();
    let buffer = rodio::buffer::SamplesBuffer::new(
        NonZero::new(1).unwrap(),
        NonZero::new(8000).unwrap(),
        samples.clone(),
    );
    let mut out = Cursor::new(Vec::new());
    rodio::wav_to_writer(buffer, &mut out).unwrap();
    (samples, out.into_inner())
}

#[sqlx::test(migrator = "calldesk_central::MIGRATOR")]
async fn a_mango_recording_plays_on_the_desk_from_s3_sample_for_sample(pool: PgPool) {
    let s3 = S3Server::start().unwrap();
    let (samples, wav) = source_wav();
    let fake = FakeMango::start(FakeMangoConfig {
        recording_body: Some(Bytes::from(wav.clone())),
        ..FakeMangoConfig::default()
    })
    .await
    .unwrap();

    let store = CentralStore::from_pool(pool);
    let tenant = TenantId::new("acme").unwrap();
    store
        .add_tenant(&NewTenant {
            id: tenant.clone(),
            name: "Acme".into(),
            number: "0367".into(),
            region: "RU".into(),
            pbx: PbxConfig::Mango {
                api_url: Some(fake.base_url()),
                key: fake.credentials().key().to_owned(),
                salt_env: "ACME_MANGO_SALT".into(),
            },
        })
        .await
        .unwrap();
    let hash = calldesk_central::password::hash_password(PASSWORD).unwrap();
    for (login, ext) in [("anna", "101"), ("boris", "102")] {
        store
            .add_operator(&NewOperator {
                tenant: tenant.clone(),
                login: login.into(),
                name: None,
                password_hash: hash.clone(),
                role: Role::Operator,
                extension: Extension::new(ext).unwrap(),
                sip: None,
            })
            .await
            .unwrap();
    }

    let mut config = HubConfig::for_tests("unused");
    config.secrets = SecretEnv::default().with("ACME_MANGO_SALT", MANGO_SALT);
    config.lease_every = Duration::from_millis(100);
    let env = s3.hub_env();
    config.recordings = StoreSettings::from_env(
        |name| env.iter().find(|(k, _)| *k == name).map(|(_, v)| v.clone()),
        std::env::temp_dir(),
        calldesk_media::Url::parse("http://127.0.0.1:1/").unwrap(),
        vec![7; 32],
    )
    .unwrap();
    assert!(matches!(config.recordings, StoreSettings::S3(_)));
    let (stop, stop_rx) = watch::channel(false);
    let hub = Hub::start_with_store(config, store.clone(), stop_rx)
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut until = stop.subscribe();
    tokio::spawn(calldesk_hub::serve(hub.clone(), listener, async move {
        let _ = until.wait_for(|s| *s).await;
    }));
    assert!(hub.wait_until_held(&tenant, Duration::from_secs(15)).await);
    fake.set_target(format!("http://{addr}/mango/acme/"));

    let entry = fake.play(&MangoScenario::Recorded {
        caller: "79161234567".into(),
        line: "74951234567".into(),
        operator: "101".into(),
    });
    let started = Instant::now();
    let row = loop {
        let rows = store.recordings_of(&tenant, &entry).await.unwrap();
        if let Some(r) = rows.iter().find(|r| r.state == RecordingState::Stored) {
            break r.clone();
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "not stored: {rows:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // In the bucket, under the tenant's date/call key, byte for byte.
    let object = s3.bucket_dir().join(&row.store_key);
    assert_eq!(std::fs::read(&object).unwrap(), wav, "{}", object.display());

    let dir = std::env::temp_dir().join(format!("calldesk-engine-rec-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let engine = |login: &str| {
        Engine::start(EngineConfig {
            profile: ProfileConfig::Hub(HubProfile {
                url: format!("http://{addr}"),
                tenant: "acme".into(),
                login: login.into(),
                password: Secret::new(PASSWORD),
                extra_root_certs_pem: None,
            }),
            data_dir: dir.join(login),
            region: "RU".into(),
            dialplan: calldesk_engine::DialplanConfig::default(),
            seat: calldesk_engine::Seat::default(),
        })
    };
    let anna = engine("anna").await.unwrap();
    let cache = Arc::new(Cache::open(dir.join("cache"), 64 * 1024 * 1024).unwrap());

    // The operator who took the call: streamed from S3 into the cache, decoded as it arrives.
    let opened = anna
        .open_recording(&entry, None, Arc::clone(&cache))
        .await
        .unwrap();
    assert!(!opened.cached);
    assert!(matches!(opened.media, Media::Stream { .. }));
    assert_eq!(opened.name, row.name);
    let decoded = tokio::task::spawn_blocking(move || decode(opened.media))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((decoded.channels, decoded.sample_rate), (1, 8000));
    assert_eq!(decoded.samples, samples);
    let cached = opened.complete.await.unwrap().unwrap();
    assert_eq!(std::fs::read(&cached).unwrap(), wav);

    // Again: from the cache, no download.
    let again = anna
        .open_recording(&entry, None, Arc::clone(&cache))
        .await
        .unwrap();
    assert!(again.cached);
    let decoded = tokio::task::spawn_blocking(move || decode(again.media))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(decoded.samples, samples);

    // Another operator's call is not theirs to hear; an unknown name is no recording.
    let boris = engine("boris").await.unwrap();
    let refused = boris
        .open_recording(&entry, None, Arc::clone(&cache))
        .await
        .unwrap_err();
    assert!(
        matches!(refused, EngineError::NoRecording(_)),
        "{refused:?}"
    );
    assert_eq!(refused.code(), "no_recording");
    let unknown = anna
        .open_recording(&entry, Some("other.mp3"), Arc::clone(&cache))
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), "no_recording", "{unknown}");

    anna.shutdown().await;
    boris.shutdown().await;
    stop.send(true).unwrap();
    fake.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}
