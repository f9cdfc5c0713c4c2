//! The rustls client setup handed to reqwest: the ring provider chosen explicitly (never the
//! process-wide default), the system roots plus optional extra PEM roots.

use std::sync::Arc;

use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use crate::MangoError;

/// `require_roots`: fail when no root at all could be loaded (an `https` base URL).
pub(crate) fn client_config(
    extra_pem: Option<&[u8]>,
    require_roots: bool,
) -> Result<rustls::ClientConfig, MangoError> {
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
            .map_err(|e| {
                MangoError::Config(format!("cannot read the extra root certificates: {e}"))
            })?;
        if certs.is_empty() {
            return Err(MangoError::Config(
                "the extra root certificates hold no PEM certificate (`-----BEGIN CERTIFICATE-----`)"
                    .to_owned(),
            ));
        }
        for cert in certs {
            roots.add(cert).map_err(|e| {
                MangoError::Config(format!("an extra root certificate cannot be used: {e}"))
            })?;
        }
    }
    if require_roots && roots.is_empty() {
        return Err(MangoError::Config(
            "no trusted root certificates found on this system; install the CA bundle or give extra_root_certs_pem".to_owned(),
        ));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| MangoError::Config(format!("TLS setup failed: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    // reqwest does not set ALPN on a preconfigured config.
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_extra_pem_is_a_config_error() {
        let e = client_config(Some(b"not a certificate"), false).err();
        assert!(
            matches!(&e, Some(MangoError::Config(m)) if m.contains("no PEM certificate")),
            "{e:?}"
        );
        let garbage = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        assert!(matches!(
            client_config(Some(garbage), false),
            Err(MangoError::Config(_))
        ));
        assert!(client_config(None, false).is_ok());
    }
}
