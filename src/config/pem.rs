//! Certificates named by a setting (`server.tls_cert`, `openai.ca_cert`), with errors naming it.

use tokio_rustls::rustls::pki_types::pem::{self, PemObject};
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// A PEM error, naming the setting and the file (an unreadable file is said so).
fn pem_error(setting: &str, path: &str, error: pem::Error) -> anyhow::Error {
    match error {
        pem::Error::Io(e) => anyhow::anyhow!("{setting}: cannot open {path}: {e}"),
        pem::Error::NoItemsFound => anyhow::anyhow!("{setting}: nothing of the expected kind in {path}"),
        other => anyhow::anyhow!("{setting}: {path} is not PEM: {other:?}"),
    }
}

/// The PEM certificates in `path`; every error names `setting` and the file.
pub fn certificates(setting: &str, path: &str) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| pem_error(setting, path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(setting, path, e))?;
    if certs.is_empty() {
        anyhow::bail!("{setting}: no certificate in {path}");
    }
    Ok(certs)
}

/// The first private key (PKCS#8, PKCS#1 or SEC1) in `path`.
pub fn private_key(setting: &str, path: &str) -> anyhow::Result<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| pem_error(setting, path, e))
}
