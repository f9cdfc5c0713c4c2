//! HTTPS: the preconfigured rustls client (ring provider, extra PEM roots) against a loopback
//! TLS server with a certificate made in the test.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};
use calldesk_mango::{MangoClient, MangoConfig, MangoError};
use calldesk_mango_proto::SignedForm;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

struct TlsFake {
    port: u16,
    /// The `json` of every correctly signed request.
    seen: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TlsFake {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A one-request-per-connection HTTP/1.1 server over TLS that checks the signed form.
async fn start(
    cert: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
) -> anyhow::Result<TlsFake> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    let task = tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let record = record.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let answer = match read_request(&mut tls).await {
                    Ok(json) => {
                        if let Ok(mut seen) = record.lock() {
                            seen.push(json);
                        }
                        r#"{"result":1000}"#
                    }
                    Err(_) => r#"{"result":3102}"#,
                };
                let response = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
                    answer.len()
                );
                let _ = tls.write_all(response.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    Ok(TlsFake { port, seen, task })
}

/// Reads one request and returns its verified `json` field.
async fn read_request(
    tls: &mut tokio_rustls::server::TlsStream<tokio::net::TcpStream>,
) -> anyhow::Result<String> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        let n = tls.read(&mut chunk).await?;
        if n == 0 {
            bail!("closed before the end of the head");
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    if !head.starts_with("POST /vpbx/commands/call/hangup HTTP/1.1\r\n") {
        bail!("unexpected request line: {head}");
    }
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .context("no Content-Length")?;
    while buf.len() < head_end + length {
        let n = tls.read(&mut chunk).await?;
        if n == 0 {
            bail!("closed before the end of the body");
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let form = SignedForm::parse(&buf[head_end..head_end + length])?;
    Ok(form.verify(&support::credentials())?.to_owned())
}

fn config(port: u16, pem: Option<String>) -> anyhow::Result<MangoConfig> {
    let mut c = MangoConfig::with_base_url(
        reqwest::Url::parse(&format!("https://localhost:{port}/vpbx/"))?,
        support::credentials(),
    );
    c.request_timeout = Duration::from_secs(5);
    c.max_retries = 1;
    c.backoff_base = Duration::from_millis(10);
    c.extra_root_certs_pem = pem.map(String::into_bytes);
    Ok(c)
}

#[tokio::test]
async fn https_with_an_extra_root_and_the_ring_provider() -> anyhow::Result<()> {
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])?;
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(made.signing_key.serialize_der()));
    let fake = start(made.cert.der().clone(), key).await?;

    let client = MangoClient::new(config(fake.port, Some(made.cert.pem()))?)?;
    let id = client.hangup("MToxMDA=").await?;
    let seen = fake.seen.lock().map(|s| s.clone()).unwrap_or_default();
    assert_eq!(
        seen,
        [format!(r#"{{"command_id":"{id}","call_id":"MToxMDA="}}"#)]
    );

    // Without the extra root the certificate is not trusted: the handshake fails before the
    // request leaves, so even a command is safe to report as "nothing happened".
    let client = MangoClient::new(config(fake.port, None)?)?;
    match client.hangup("MToxMDA=").await {
        Err(MangoError::Transport {
            maybe_sent: false, ..
        }) => {}
        other => bail!("expected a TLS failure before sending, got {other:?}"),
    }
    assert_eq!(fake.seen.lock().map(|s| s.len()).unwrap_or_default(), 1);

    // The client chose its provider itself: nothing was installed process-wide.
    assert!(rustls::crypto::CryptoProvider::get_default().is_none());
    Ok(())
}
