//! Certificates named by a setting (`server.tls_cert`, `openai.ca_cert`), with errors naming it.

use anyhow::Context;
use tokio_rustls::rustls::pki_types::CertificateDer;

/// The PEM certificates in `path`; every error names `setting` and the file.
pub fn certificates(setting: &str, path: &str) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let file = std::fs::File::open(path).with_context(|| format!("{setting}: cannot open {path}"))?;
    rustls_pemfile::certs(&mut std::io::BufReader::new(file))
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("{setting}: {path} is not PEM"))
}
