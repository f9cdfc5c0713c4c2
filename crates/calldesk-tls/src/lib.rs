//! calldesk TLS client setup (layer 1), shared by every client that speaks TLS to a server of
//! the user's (the Mango API, the hub's REST and WebSocket): rustls with the ring provider chosen
//! explicitly (never the process-wide default), the system roots plus optional extra PEM roots
//! (a company CA, a self-signed test certificate).
//!
//! ALPN is left to the caller: an HTTP client offers `h2`/`http/1.1` ([`HTTP_ALPN`]); a
//! WebSocket client must offer none (an `h2` answer would break the upgrade).

use std::sync::Arc;

use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

pub use rustls::ClientConfig;

/// What an HTTP client offers: HTTP/2, then HTTP/1.1.
pub const HTTP_ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// Why no TLS client could be set up; the message says what to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TlsSetupError(String);

/// A client configuration trusting the system roots and `extra_pem`. With `require_roots`, no
/// root at all (no CA bundle, no extra PEM) is an error rather than a client that trusts nobody.
pub fn client_config(
    extra_pem: Option<&[u8]>,
    require_roots: bool,
    alpn: &[&[u8]],
) -> Result<ClientConfig, TlsSetupError> {
    let mut roots = RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    if !native.errors.is_empty() {
        tracing::debug!(
            errors = native.errors.len(),
            "some system root certificates could not be loaded"
        );
    }
    roots.add_parsable_certificates(native.certs);
    if let Some(pem) = extra_pem {
        let certs = CertificateDer::pem_slice_iter(pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| TlsSetupError(format!("cannot read the extra root certificates: {e}")))?;
        if certs.is_empty() {
            return Err(TlsSetupError(
                "the extra root certificates hold no PEM certificate (`-----BEGIN CERTIFICATE-----`)"
                    .to_owned(),
            ));
        }
        for cert in certs {
            roots.add(cert).map_err(|e| {
                TlsSetupError(format!("an extra root certificate cannot be used: {e}"))
            })?;
        }
    }
    if require_roots && roots.is_empty() {
        return Err(TlsSetupError(
            "no trusted root certificates found on this system; install the CA bundle (ca-certificates) or give extra root certificates".to_owned(),
        ));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsSetupError(format!("TLS setup failed: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(config)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn bad_extra_pem_is_an_error_that_says_what_is_wrong() {
        let e = client_config(Some(b"not a certificate"), false, &[]).err();
        assert!(
            e.as_ref()
                .is_some_and(|e| e.to_string().contains("no PEM certificate")),
            "{e:?}"
        );
        let garbage = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        assert!(client_config(Some(garbage), false, &[]).is_err());
        let http = client_config(None, false, &HTTP_ALPN).unwrap();
        assert_eq!(http.alpn_protocols, [b"h2".to_vec(), b"http/1.1".to_vec()]);
        assert!(
            client_config(None, false, &[])
                .unwrap()
                .alpn_protocols
                .is_empty()
        );
    }
}
