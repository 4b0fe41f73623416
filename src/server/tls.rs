//! TLS on the REST listener (`server.tls`): the rustls server config from PEM files.

use std::path::Path;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Why TLS could not be set up (start-up stops; the message names the key and the file).
#[derive(Debug, thiserror::Error)]
#[error("config key `{key}`: {path}: {reason}")]
pub struct TlsError {
    key: &'static str,
    path: String,
    reason: String,
}

/// The rustls config serving the certificate chain in `cert_file` with the key in `key_file`
/// (ring as the crypto provider; HTTP/1.1 offered by ALPN).
pub(super) fn server_config(cert_file: &Path, key_file: &Path) -> Result<rustls::ServerConfig, TlsError> {
    let error = |key, path: &Path, reason: String| TlsError {
        key,
        path: path.display().to_string(),
        reason,
    };
    let certs = CertificateDer::pem_file_iter(cert_file)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| error("server.tls.cert_file", cert_file, e.to_string()))?;
    if certs.is_empty() {
        return Err(error("server.tls.cert_file", cert_file, "no certificate in the file".into()));
    }
    let key = PrivateKeyDer::from_pem_file(key_file).map_err(|e| error("server.tls.key_file", key_file, e.to_string()))?;
    let mut config = rustls::ServerConfig::builder_with_provider(rustls::crypto::ring::default_provider().into())
        .with_safe_default_protocol_versions()
        .map_err(|e| error("server.tls.cert_file", cert_file, e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| error("server.tls.key_file", key_file, e.to_string()))?;
    // actix-web is built without HTTP/2 here, so only HTTP/1.1 is offered.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}
