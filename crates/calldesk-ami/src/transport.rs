//! The byte stream under an AMI session: plain TCP, or TLS (feature `tls`).

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::AmiError;

/// Which certificates a TLS server must chain to.
#[derive(Clone, PartialEq, Eq)]
pub enum TlsRoots {
    /// The operating system's trust store.
    System,
    /// A PEM file with one or more CA certificates (e.g. the site's own CA).
    CaFile(PathBuf),
    /// PEM text with one or more CA certificates.
    CaPem(Vec<u8>),
}

impl fmt::Debug for TlsRoots {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::System => f.write_str("System"),
            Self::CaFile(p) => f.debug_tuple("CaFile").field(p).finish(),
            Self::CaPem(pem) => write!(f, "CaPem({} bytes)", pem.len()),
        }
    }
}

/// AMI over TLS (Asterisk's `tlsenable = yes`, usually port 5039).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsConfig {
    /// The name the server certificate must carry; `None`: the host part of the address.
    pub server_name: Option<String>,
    pub roots: TlsRoots,
}

impl TlsConfig {
    /// TLS checked against the system's trust store.
    pub fn system() -> Self {
        Self {
            server_name: None,
            roots: TlsRoots::System,
        }
    }
}

/// A connected stream.
pub(crate) enum AmiStream {
    Tcp(TcpStream),
    #[cfg(feature = "tls")]
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl fmt::Debug for AmiStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Tcp(s) => write!(f, "Tcp({:?})", s.peer_addr().ok()),
            #[cfg(feature = "tls")]
            Self::Tls(s) => write!(f, "Tls({:?})", s.get_ref().0.peer_addr().ok()),
        }
    }
}

impl AsyncRead for AmiStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            #[cfg(feature = "tls")]
            Self::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for AmiStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            #[cfg(feature = "tls")]
            Self::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_flush(cx),
            #[cfg(feature = "tls")]
            Self::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            #[cfg(feature = "tls")]
            Self::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// The TLS client setup, built once per client (loading the system roots is not free).
#[derive(Clone)]
pub(crate) struct TlsConnector {
    #[cfg(feature = "tls")]
    inner: tokio_rustls::TlsConnector,
    server_name: Option<String>,
}

impl fmt::Debug for TlsConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConnector")
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

#[cfg(feature = "tls")]
impl TlsConnector {
    pub(crate) fn new(config: &TlsConfig) -> Result<Self, AmiError> {
        use rustls_pki_types::CertificateDer;
        use rustls_pki_types::pem::PemObject;
        use tokio_rustls::rustls;

        let tls_err = |reason: String| AmiError::TlsSetup { reason };
        let mut roots = rustls::RootCertStore::empty();
        let pem_certs =
            |pem: &[u8], origin: &str| -> Result<Vec<CertificateDer<'static>>, AmiError> {
                let certs = CertificateDer::pem_slice_iter(pem)
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| {
                        tls_err(format!("cannot read the CA certificates in {origin}: {e}"))
                    })?;
                if certs.is_empty() {
                    return Err(tls_err(format!(
                        "{origin} holds no PEM certificate (`-----BEGIN CERTIFICATE-----`)"
                    )));
                }
                Ok(certs)
            };
        let certs = match &config.roots {
            TlsRoots::System => {
                let found = rustls_native_certs::load_native_certs();
                if found.certs.is_empty() {
                    return Err(tls_err(format!(
                        "no trusted root certificates found on this system ({} errors); give the AMI server's CA file instead",
                        found.errors.len()
                    )));
                }
                found.certs
            }
            TlsRoots::CaFile(path) => {
                let pem = std::fs::read(path).map_err(|e| {
                    tls_err(format!("cannot read the CA file {}: {e}", path.display()))
                })?;
                pem_certs(&pem, &path.display().to_string())?
            }
            TlsRoots::CaPem(pem) => pem_certs(pem, "the given CA PEM")?,
        };
        let (added, _ignored) = roots.add_parsable_certificates(certs);
        if added == 0 {
            return Err(tls_err(
                "none of the CA certificates could be used (not X.509?)".to_owned(),
            ));
        }
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let client = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| tls_err(format!("TLS setup failed: {e}")))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Self {
            inner: tokio_rustls::TlsConnector::from(std::sync::Arc::new(client)),
            server_name: config.server_name.clone(),
        })
    }
}

#[cfg(not(feature = "tls"))]
impl TlsConnector {
    pub(crate) fn new(_config: &TlsConfig) -> Result<Self, AmiError> {
        Err(AmiError::TlsSetup {
            reason: "this build has no TLS support; rebuild calldesk-ami with the `tls` feature"
                .to_owned(),
        })
    }
}

/// The host part of `host:port` / `[v6]:port`.
fn host_of(addr: &str) -> &str {
    if let Some(rest) = addr.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match addr.rsplit_once(':') {
        Some((host, _)) => host,
        None => addr,
    }
}

/// Opens TCP to `addr` and, with `tls`, runs the TLS handshake. No timeout here: the caller
/// bounds the whole connect + login.
pub(crate) async fn connect(addr: &str, tls: Option<&TlsConnector>) -> Result<AmiStream, AmiError> {
    let tcp = TcpStream::connect(addr)
        .await
        .map_err(|source| AmiError::Connect {
            addr: addr.to_owned(),
            source,
        })?;
    tcp.set_nodelay(true)?;
    let Some(tls) = tls else {
        return Ok(AmiStream::Tcp(tcp));
    };
    #[cfg(feature = "tls")]
    {
        let name = tls
            .server_name
            .clone()
            .unwrap_or_else(|| host_of(addr).to_owned());
        let server_name =
            rustls_pki_types::ServerName::try_from(name.clone()).map_err(|e| AmiError::Tls {
                reason: format!("`{name}` is not a valid TLS server name: {e}"),
            })?;
        let stream = tls
            .inner
            .connect(server_name, tcp)
            .await
            .map_err(|e| AmiError::Tls {
                reason: format!(
                    "TLS handshake with {addr} failed: {e}; check that the port is AMI's TLS port (tlsbindport, usually 5039) and that the certificate is for `{name}` and chains to the configured CA"
                ),
            })?;
        Ok(AmiStream::Tls(Box::new(stream)))
    }
    #[cfg(not(feature = "tls"))]
    {
        let _ = (tls, host_of(addr));
        Err(AmiError::Tls {
            reason: "this build has no TLS support".to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_part_of_addresses() {
        assert_eq!(host_of("pbx.example.com:5039"), "pbx.example.com");
        assert_eq!(host_of("[::1]:5039"), "::1");
        assert_eq!(host_of("pbx"), "pbx");
    }
}
