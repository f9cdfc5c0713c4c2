//! The local-folder store: atomic copies, links signed by the hub and checked by it.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, SystemTime};

use calldesk_calls::{CallId, TenantId};
use calldesk_media::{LocalStore, MediaError, RecordingKey, RecordingStore, Url};

fn key(name: &str) -> RecordingKey {
    RecordingKey::new(
        &TenantId::new("acme").unwrap(),
        1_763_700_000,
        &CallId::new("1763700000.12").unwrap(),
        name,
    )
    .unwrap()
}

fn store(root: &std::path::Path) -> LocalStore {
    LocalStore::new(
        root.to_path_buf(),
        Url::parse("http://hub.example:8080/base").unwrap(),
        b"0123456789abcdef0123456789abcdef".to_vec(),
    )
    .unwrap()
}

fn scratch(tag: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "calldesk-local-{tag}-{}-{}",
        std::process::id(),
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test]
async fn a_copy_lands_under_the_key_and_a_signed_link_names_it() {
    let dir = scratch("copy");
    let local = store(&dir.join("store"));
    let source = dir.join("src.wav");
    std::fs::write(&source, b"RIFF....WAVE").unwrap();
    let k = key("in-101.wav");
    let store = RecordingStore::Local(local.clone());

    assert_eq!(store.exists(&k).await.unwrap(), None);
    let up = store.upload_file(&k, &source).await.unwrap();
    assert_eq!(up.size, 12);
    assert_eq!(store.exists(&k).await.unwrap().map(|i| i.size), Some(12));
    assert_eq!(std::fs::read(local.path(&k)).unwrap(), b"RIFF....WAVE");
    // No temporary file is left beside it.
    let dir_of = local.path(&k).parent().unwrap().to_path_buf();
    assert_eq!(std::fs::read_dir(&dir_of).unwrap().count(), 1);

    let now = SystemTime::now();
    let url = store.presign_get(&k, Duration::from_secs(60), now).unwrap();
    assert!(
        url.as_str().starts_with(
            "http://hub.example:8080/base/recordings/acme/2025/11/21/1763700000.12/in-101.wav?expires="
        ),
        "{url}"
    );
    let q: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
    let expires: u64 = q["expires"].parse().unwrap();
    let key_text = url.path().strip_prefix("/base/recordings/").unwrap();
    assert_eq!(
        local
            .verify(key_text, expires, &q["signature"], now)
            .unwrap(),
        k
    );

    // Another key, another expiry, a changed signature, an expired link: all refused.
    let other = key("out.wav");
    let checks = [
        local.verify(other.as_str(), expires, &q["signature"], now),
        local.verify(key_text, expires + 1, &q["signature"], now),
        local.verify(key_text, expires, &q["signature"].replace('a', "b"), now),
        local.verify(key_text, expires, "zz", now),
        local.verify("../../etc/passwd", expires, &q["signature"], now),
        local.verify(
            key_text,
            expires,
            &q["signature"],
            now + Duration::from_secs(61),
        ),
    ];
    for (i, check) in checks.into_iter().enumerate() {
        assert!(
            matches!(check, Err(MediaError::Forbidden(_))),
            "check {i}: {check:?}"
        );
    }
    let expired = local
        .verify(
            key_text,
            expires,
            &q["signature"],
            now + Duration::from_secs(61),
        )
        .unwrap_err();
    assert_eq!(
        expired.to_string(),
        "recording link refused: the link has expired"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_short_signing_key_is_refused() {
    let e = LocalStore::new(
        "/tmp/x".into(),
        Url::parse("http://hub/").unwrap(),
        vec![1; 8],
    )
    .unwrap_err();
    assert!(e.to_string().contains("at least 32"), "{e}");
}

#[tokio::test]
async fn a_missing_source_file_is_an_error_naming_it_and_leaves_nothing() {
    let dir = scratch("missing");
    let local = store(&dir.join("store"));
    let k = key("x.wav");
    let e = local
        .upload_file(&k, &dir.join("nope.wav"), "audio/wav")
        .await
        .unwrap_err();
    assert!(e.to_string().contains("nope.wav"), "{e}");
    assert!(!e.is_transient());
    assert_eq!(local.exists(&k).await.unwrap(), None);
    let leftovers = std::fs::read_dir(local.path(&k).parent().unwrap())
        .unwrap()
        .count();
    assert_eq!(leftovers, 0);
    let _ = std::fs::remove_dir_all(dir);
}
