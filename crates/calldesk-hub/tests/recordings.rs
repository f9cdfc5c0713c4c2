//! Recordings end to end through the hub: the fake Mango plays an answered, recorded call
//! (signed webhooks, `/events/record/added` last); the hub adds the recording when it stores
//! the ended call, downloads it through the signed `queries/recording/post` (streamed into a
//! spool file), uploads it to its store and marks it stored; REST then hands the operator a
//! link whose bytes are the fake's. Real PostgreSQL, real sockets on port 0.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use calldesk_calls::TenantId;
use calldesk_central::{CentralStore, RecordingState, Role};
use calldesk_sim::mango::{FakeMango, FakeMangoConfig, MangoScenario, recording_audio};
use sqlx::PgPool;

const PASSWORD: &str = "password-1";

#[sqlx::test(migrator = "calldesk_central::MIGRATOR")]
async fn a_mango_recording_reaches_the_store_once_and_plays_from_the_link(pool: PgPool) {
    let fake = FakeMango::start(FakeMangoConfig::default()).await.unwrap();
    let store = CentralStore::from_pool(pool);
    let acme = TenantId::new("acme").unwrap();
    common::add_tenant(
        &store,
        "acme",
        "acme",
        "0367",
        common::fake_mango_pbx(&fake),
    )
    .await;
    common::add_operators(&store, "acme", PASSWORD, &[("anna", Role::Operator, "101")]).await;
    let served = common::serve_fake_mango(&store, &fake, &acme).await;
    let base = served.base();
    let http = common::http();
    let token = common::login(&http, &base, "acme", "anna", PASSWORD).await;
    let mut ws = common::connect(served.addr, &token).await;

    let entry = fake.play(&MangoScenario::Recorded {
        caller: "79161234567".into(),
        line: "74951234567".into(),
        operator: "101".into(),
    });

    // The hub finds the recording with the ended call and stores it by itself.
    let started = Instant::now();
    let row = loop {
        let rows = store.recordings_of(&acme, &entry).await.unwrap();
        if let Some(r) = rows.iter().find(|r| r.state == RecordingState::Stored) {
            break r.clone();
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no recording stored within 30 s: {rows:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let expected = recording_audio(&row.name, FakeMangoConfig::default().recording_size);
    assert_eq!(row.size_bytes, Some(expected.len() as i64));
    assert!(row.store_key.starts_with("acme/"), "{}", row.store_key);
    assert!(row.store_key.ends_with(".mp3"), "{}", row.store_key);
    assert_eq!(
        store.recordings_of(&acme, &entry).await.unwrap().len(),
        1,
        "one recording, one row"
    );
    // Mango handed the file out once (a try before `record/added` may have been told "not
    // there yet").
    let handed_out: Vec<u16> = fake
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("queries/recording/post"))
        .map(|r| r.status)
        .collect();
    assert_eq!(
        handed_out.iter().filter(|s| **s == 302).count(),
        1,
        "answers to the recording requests: {handed_out:?}"
    );

    // The operator who took the call is told: the ended call again, its recording stored.
    let stored_update = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let calldesk_wire::HubMessage::CallUpdated { call } =
                common::next_message(&mut ws).await
                && call.record.id == entry
                && call.recording_states.iter().any(|r| r.state == "stored")
            {
                return call;
            }
        }
    })
    .await
    .expect("no call-updated with the stored recording");
    assert_eq!(stored_update.state, calldesk_wire::CallStateView::Ended);
    assert_eq!(stored_update.recording_states[0].name, row.name);

    // The operator gets a link; its bytes are Mango's.
    let (status, link) = common::send(
        http.get(format!(
            "{base}/api/calls/{}/recording",
            common::urlencode(&entry)
        )),
        Some(&token),
    )
    .await;
    assert_eq!(status, reqwest::StatusCode::OK, "{link}");
    assert_eq!(link["content_type"], "audio/mpeg");
    // The link names the configured public address; fetch the same path from this hub.
    let url = link["url"].as_str().unwrap();
    let path = &url[url.find("/recordings/").unwrap()..];
    let bytes = http
        .get(format!("{base}{path}"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(&bytes[..], &expected[..]);
    served.stop().await;
    fake.shutdown().await;
}
