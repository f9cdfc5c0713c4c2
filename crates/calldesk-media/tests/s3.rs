//! The S3 store against a real S3 server on loopback: `s3s-fs`, which checks every SigV4
//! signature (a signing bug is a 403 here, as on AWS). `cargo xtask test` installs it and sets
//! `CALLDESK_S3S_FS`; else it is looked up in PATH and ~/.cargo/bin.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use calldesk_calls::{CallId, TenantId};
use calldesk_media::{MediaError, RecordingKey, RecordingStore, S3Config, S3Store, Url};
use calldesk_sim::s3::{ACCESS_KEY, BUCKET, REGION, S3Server, SECRET_KEY};

const MIB: u64 = 1024 * 1024;

/// The server's endpoint as a URL.
fn endpoint(server: &S3Server) -> Url {
    Url::parse(&server.endpoint()).unwrap()
}

fn store_of(server: &S3Server, part_size: u64) -> S3Store {
    S3Store::new(config(&endpoint(server), part_size)).unwrap()
}

fn config(endpoint: &Url, part_size: u64) -> S3Config {
    S3Config {
        endpoint: endpoint.clone(),
        region: REGION.to_owned(),
        bucket: BUCKET.to_owned(),
        path_style: true,
        access_key: ACCESS_KEY.to_owned(),
        secret_key: SECRET_KEY.to_owned(),
        session_token: None,
        part_size,
        extra_root_certs_pem: None,
    }
}

fn uuid_like() -> String {
    format!(
        "{}-{}",
        std::process::id(),
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    )
}

fn key(call: &str, name: &str) -> RecordingKey {
    RecordingKey::new(
        &TenantId::new("acme").unwrap(),
        1_763_700_000,
        &CallId::new(call).unwrap(),
        name,
    )
    .unwrap()
}

/// A file of `len` bytes of a pattern that differs per position (a swapped part would show).
fn test_file(dir: &Path, name: &str, len: u64) -> PathBuf {
    let path = dir.join(name);
    let bytes: Vec<u8> = (0..len)
        .map(|i| (i % 251) as u8 ^ ((i / 4096) % 256) as u8)
        .collect();
    std::fs::write(&path, bytes).unwrap();
    path
}

fn scratch() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("calldesk-media-{}", uuid_like()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn fetch(url: &Url) -> (u16, Vec<u8>) {
    let r = reqwest::Client::builder()
        .tls_backend_preconfigured(calldesk_tls::client_config(None, false, &[]).unwrap())
        .build()
        .unwrap()
        .get(url.clone())
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.bytes().await.unwrap().to_vec())
}

#[tokio::test]
async fn a_small_recording_goes_up_in_one_put_and_a_presigned_link_plays_it() {
    let server = S3Server::start().unwrap();
    let store = RecordingStore::S3(store_of(&server, 5 * MIB));
    let dir = scratch();
    let file = test_file(&dir, "in.wav", 200_000);
    let k = key("1763700000.12", "in-101-1763700000.12.wav");

    assert_eq!(store.exists(&k).await.unwrap(), None);
    let up = store.upload_file(&k, &file).await.unwrap();
    assert_eq!((up.size, up.parts), (200_000, 1));
    assert_eq!(
        store.exists(&k).await.unwrap().map(|i| i.size),
        Some(200_000)
    );

    let url = store
        .presign_get(&k, Duration::from_secs(60), SystemTime::now())
        .unwrap();
    assert!(url.as_str().contains("X-Amz-Signature="), "{url}");
    let (status, body) = fetch(&url).await;
    assert_eq!(status, 200);
    assert_eq!(body, std::fs::read(&file).unwrap());

    // The same file again under the same key: still one object, same bytes.
    store.upload_file(&k, &file).await.unwrap();
    let RecordingStore::S3(s3) = &store else {
        unreachable!()
    };
    let listed = s3.list("acme/2025/11/21/").await.unwrap();
    assert_eq!(listed, vec![(k.to_string(), 200_000)]);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn a_large_recording_goes_up_in_parts_and_comes_back_byte_for_byte() {
    let server = S3Server::start().unwrap();
    let store = store_of(&server, 5 * MIB);
    let dir = scratch();
    let len = 11 * MIB + 12_345;
    let file = test_file(&dir, "long.wav", len);
    let k = key("NTAwOTQxMTAyMg==", "MToxMDAwNjA4NTo1MDA5NDExMDIyOjE=.mp3");

    let up = store.upload_file(&k, &file, "audio/mpeg").await.unwrap();
    assert_eq!((up.size, up.parts), (len, 3));
    assert_eq!(store.get(&k).await.unwrap(), std::fs::read(&file).unwrap());
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn tampered_and_expired_links_are_refused() {
    let server = S3Server::start().unwrap();
    let store = store_of(&server, 5 * MIB);
    let dir = scratch();
    let file = test_file(&dir, "a.wav", 1000);
    let k = key("1.1", "a.wav");
    let other = key("1.1", "b.wav");
    store.upload_file(&k, &file, "audio/wav").await.unwrap();
    store.upload_file(&other, &file, "audio/wav").await.unwrap();

    let good = store
        .presign_get(&k, Duration::from_secs(60), SystemTime::now())
        .unwrap();
    assert_eq!(fetch(&good).await.0, 200);

    // Another object with this link's signature.
    let mut moved = good.clone();
    moved.set_path(&good.path().replace("a.wav", "b.wav"));
    assert_eq!(fetch(&moved).await.0, 403, "{moved}");

    // One changed character of the signature.
    let text = good.as_str();
    let at = text.find("X-Amz-Signature=").unwrap() + "X-Amz-Signature=".len();
    let flipped = if &text[at..=at] == "0" { "1" } else { "0" };
    let tampered = Url::parse(&format!("{}{flipped}{}", &text[..at], &text[at + 1..])).unwrap();
    assert_eq!(fetch(&tampered).await.0, 403, "{tampered}");

    // A longer life than the link was signed for.
    let stretched = Url::parse(&text.replace("X-Amz-Expires=60", "X-Amz-Expires=600")).unwrap();
    assert_eq!(fetch(&stretched).await.0, 403, "{stretched}");

    // Signed an hour ago for a minute.
    let expired = store
        .presign_get(
            &k,
            Duration::from_secs(60),
            SystemTime::now() - Duration::from_secs(3600),
        )
        .unwrap();
    assert_eq!(fetch(&expired).await.0, 403, "{expired}");
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn a_wrong_secret_is_a_refusal_that_says_so() {
    let server = S3Server::start().unwrap();
    let mut config = config(&endpoint(&server), 5 * MIB);
    config.secret_key = "not-the-secret".to_owned();
    let store = S3Store::new(config).unwrap();
    let dir = scratch();
    let file = test_file(&dir, "a.wav", 10);
    let e = store
        .upload_file(&key("1.1", "a.wav"), &file, "audio/wav")
        .await
        .unwrap_err();
    assert!(
        matches!(e, MediaError::Refused { status: 403, .. }),
        "{e:?}"
    );
    assert!(e.to_string().contains("SignatureDoesNotMatch"), "{e}");
    assert!(!e.is_transient());
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn an_unreachable_server_is_a_transient_error_without_the_signed_url() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let endpoint = Url::parse(&format!("http://127.0.0.1:{port}")).unwrap();
    let store = S3Store::new(config(&endpoint, 5 * MIB)).unwrap();
    let e = store.exists(&key("1.1", "a.wav")).await.unwrap_err();
    assert!(e.is_transient(), "{e:?}");
    let text = e.to_string();
    assert!(text.contains("unreachable"), "{text}");
    assert!(!text.contains("X-Amz-Signature"), "{text}");
}
