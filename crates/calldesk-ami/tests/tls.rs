//! AMI over TLS against a rustls server with a certificate made in the test (rcgen).

#![cfg(feature = "tls")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use calldesk_ami::{AmiClient, AmiClientConfig, ClientEvent, ConnState, TlsConfig, TlsRoots};
use calldesk_ami_proto::{AmiDecoder, Frame, Message};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::rustls;

struct Cert {
    der: CertificateDer<'static>,
    key: Vec<u8>,
    pem: String,
}

fn self_signed() -> Cert {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    Cert {
        der: ck.cert.der().clone(),
        key: ck.signing_key.serialize_der(),
        pem: ck.cert.pem(),
    }
}

fn acceptor(cert: &Cert) -> tokio_rustls::TlsAcceptor {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der.clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.key.clone())),
        )
        .unwrap();
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}

/// Reads one action from a TLS stream.
async fn read_action<S: tokio::io::AsyncRead + Unpin>(
    s: &mut S,
    decoder: &mut AmiDecoder,
    buf: &mut BytesMut,
) -> Option<Message> {
    loop {
        if let Some(Frame::Message(m)) = decoder.decode(buf) {
            return Some(m);
        }
        if s.read_buf(buf).await.ok()? == 0 {
            return None;
        }
    }
}

/// A TLS AMI server for one session: greeting, plain login, empty resync, then Logoff.
async fn serve_one(listener: tokio::net::TcpListener, acceptor: tokio_rustls::TlsAcceptor) {
    let j2 = Capture::load("j2_errors_unknown_action");
    let (tcp, _) = listener.accept().await.unwrap();
    let mut s = acceptor.accept(tcp).await.unwrap();
    let mut decoder = AmiDecoder::without_banner();
    let mut buf = BytesMut::new();
    s.write_all(&j2.banner).await.unwrap();
    let login = read_action(&mut s, &mut decoder, &mut buf).await.unwrap();
    assert_eq!(login.action().as_deref(), Some("Login"));
    assert_eq!(login.get_str("Secret").as_deref(), Some("secret"));
    s.write_all(&with_id(&j2.messages[0], &id(&login)))
        .await
        .unwrap();
    let csc = read_action(&mut s, &mut decoder, &mut buf).await.unwrap();
    assert_eq!(csc.action().as_deref(), Some("CoreShowChannels"));
    s.write_all(&list_with_id(&j3_channels(), &id(&csc)))
        .await
        .unwrap();
    s.flush().await.unwrap();
    while let Some(m) = read_action(&mut s, &mut decoder, &mut buf).await {
        s.write_all(&canned_reply(&m)).await.unwrap();
        s.flush().await.unwrap();
    }
}

async fn resync_over_tls(roots: TlsRoots) {
    let cert = self_signed();
    let (listener, addr) = listen().await;
    let server = tokio::spawn(serve_one(listener, acceptor(&cert)));
    let roots = match roots {
        TlsRoots::CaPem(_) => TlsRoots::CaPem(cert.pem.clone().into_bytes()),
        TlsRoots::CaFile(path) => {
            std::fs::write(&path, &cert.pem).unwrap();
            TlsRoots::CaFile(path)
        }
        TlsRoots::System => TlsRoots::System,
    };
    let config = AmiClientConfig {
        tls: Some(TlsConfig {
            server_name: Some("localhost".to_owned()),
            roots,
        }),
        ..config(&addr)
    };
    let (client, mut events) = AmiClient::start(config, never());
    match next_event(&mut events).await {
        ClientEvent::Resync { items, .. } => assert_eq!(items.len(), 2),
        other => panic!("{other:?}"),
    }
    wait_state(&client, "connected", |s| {
        matches!(s, ConnState::Connected { .. })
    })
    .await;
    drop(client);
    server.await.unwrap();
}

#[tokio::test]
async fn tls_with_a_ca_given_as_pem() {
    resync_over_tls(TlsRoots::CaPem(Vec::new())).await;
}

#[tokio::test]
async fn tls_with_a_ca_file() {
    let path = std::env::temp_dir().join(format!(
        "calldesk-ami-test-ca-{}-{}.pem",
        std::process::id(),
        rand::random::<u32>()
    ));
    resync_over_tls(TlsRoots::CaFile(path.clone())).await;
    let _ = std::fs::remove_file(path);
}

#[tokio::test]
async fn an_untrusted_certificate_fails_the_handshake_before_any_credentials() {
    let server_cert = self_signed();
    let other_ca = self_signed();
    let (listener, addr) = listen().await;
    let acceptor = acceptor(&server_cert);
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        // The client aborts the handshake: no AMI byte ever flows.
        assert!(acceptor.accept(tcp).await.is_err());
    });
    let untrusted = AmiClientConfig {
        tls: Some(TlsConfig {
            server_name: Some("localhost".to_owned()),
            roots: TlsRoots::CaPem(other_ca.pem.into_bytes()),
        }),
        ..config(&addr)
    };
    let (client, _events) = AmiClient::start(untrusted, never());
    let state = wait_state(&client, "disconnected", |s| {
        matches!(s, ConnState::Disconnected { .. })
    })
    .await;
    let ConnState::Disconnected { reason, .. } = state else {
        unreachable!()
    };
    assert!(reason.contains("TLS handshake"), "{reason}");
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .unwrap()
        .unwrap();
    // A CA file that does not exist says so.
    let (_listener, addr) = listen().await;
    let missing = AmiClientConfig {
        tls: Some(TlsConfig {
            server_name: None,
            roots: TlsRoots::CaFile("/nonexistent/ca.pem".into()),
        }),
        ..config(&addr)
    };
    let (client, _events) = AmiClient::start(missing, never());
    // A setting that cannot work is final, not retried forever.
    let state = wait_state(&client, "misconfigured", |s| {
        matches!(s, ConnState::Misconfigured { .. })
    })
    .await;
    assert!(
        state.to_string().contains("cannot read the CA file"),
        "{state}"
    );
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(
        matches!(client.current_state(), ConnState::Misconfigured { .. }),
        "{}",
        client.current_state()
    );
}
