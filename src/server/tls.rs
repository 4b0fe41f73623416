//! TLS on the REST listener (`server.tls`) and on the ext_proc gRPC listener (`extproc.tls`):
//! the certificate chain and key read and checked once from PEM files, for both.

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

/// The config keys a listener's certificate and key come from, for error messages.
pub(super) struct TlsKeys {
    cert_file: &'static str,
    key_file: &'static str,
}

/// `server.tls`.
pub(super) const REST: TlsKeys = TlsKeys {
    cert_file: "server.tls.cert_file",
    key_file: "server.tls.key_file",
};

/// `extproc.tls`.
pub(super) const GRPC: TlsKeys = TlsKeys {
    cert_file: "extproc.tls.cert_file",
    key_file: "extproc.tls.key_file",
};

/// The rustls config serving the certificate chain in `cert_file` with the key in `key_file`
/// (ring as the crypto provider; HTTP/1.1 offered by ALPN).
pub(super) fn server_config(
    cert_file: &Path,
    key_file: &Path,
) -> Result<rustls::ServerConfig, TlsError> {
    let mut config = load(&REST, cert_file, key_file)?;
    // actix-web is built without HTTP/2 here, so only HTTP/1.1 is offered.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// The gRPC listener's identity: the same files, checked the same way (a certificate, a key
/// that matches it), handed to tonic as PEM (it offers h2 by ALPN itself).
pub(super) fn grpc_identity(
    cert_file: &Path,
    key_file: &Path,
) -> Result<tonic::transport::Identity, TlsError> {
    load(&GRPC, cert_file, key_file)?;
    let read = |key, path: &Path| std::fs::read(path).map_err(|e| error(key, path, e.to_string()));
    Ok(tonic::transport::Identity::from_pem(
        read(GRPC.cert_file, cert_file)?,
        read(GRPC.key_file, key_file)?,
    ))
}

fn error(key: &'static str, path: &Path, reason: String) -> TlsError {
    TlsError {
        key,
        path: path.display().to_string(),
        reason,
    }
}

fn load(
    keys: &TlsKeys,
    cert_file: &Path,
    key_file: &Path,
) -> Result<rustls::ServerConfig, TlsError> {
    let certs = CertificateDer::pem_file_iter(cert_file)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| error(keys.cert_file, cert_file, e.to_string()))?;
    if certs.is_empty() {
        return Err(error(
            keys.cert_file,
            cert_file,
            "no certificate in the file".into(),
        ));
    }
    let key = PrivateKeyDer::from_pem_file(key_file)
        .map_err(|e| error(keys.key_file, key_file, e.to_string()))?;
    rustls::ServerConfig::builder_with_provider(rustls::crypto::ring::default_provider().into())
        .with_safe_default_protocol_versions()
        .map_err(|e| error(keys.cert_file, cert_file, e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| error(keys.key_file, key_file, e.to_string()))
}
