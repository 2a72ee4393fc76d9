//! TLS for every backend: the mode, the CA file, the trusted roots, and the one crypto provider.
//!
//! rotapool uses rustls with a single provider, aws-lc-rs (the FIPS module with the `fips` feature), which is
//! also the provider of the AWS SDK's HTTPS client. It hands that provider to every config it builds and never
//! installs a process-wide default, so an application's own `rustls::ClientConfig::builder()` behaves exactly as
//! it would without rotapool.

use std::{
    fmt,
    path::Path,
    sync::{Arc, OnceLock},
};

use crate::error::TlsError;
use rustls::{
    client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    crypto::CryptoProvider,
    pki_types::{pem::PemObject, CertificateDer, ServerName, UnixTime},
    ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};

/// Whether and how connections use TLS. The names follow libpq; MySQL calls them `DISABLED`, `REQUIRED` and
/// `VERIFY_IDENTITY`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SslMode {
    /// Plain TCP. Only for local servers and tests.
    Disable,
    /// Encrypt, and check the handshake's signatures, but accept any certificate: it checks neither who issued
    /// the certificate nor the name in it. That stops a passive listener, not an attacker in the middle who
    /// presents a certificate of their own. The default, because it works against RDS with no CA file; choose
    /// [`SslMode::VerifyFull`] in production.
    #[default]
    Require,
    /// Encrypt, and check that the certificate chains to a trusted root and names the host. Trusted roots are the
    /// operating system's store plus the certificates of the backend's `ca_file`. For RDS, whose certificate
    /// authorities are in no public store, pass the RDS global bundle as the CA file.
    VerifyFull,
}

impl std::str::FromStr for SslMode {
    type Err = crate::error::InvalidValue;

    /// `disable`, `require` or `verify-full` (case-insensitive; `verify_full` too).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.to_ascii_lowercase().replace('_', "-").as_str() {
            "disable" => Ok(Self::Disable),
            "require" => Ok(Self::Require),
            "verify-full" => Ok(Self::VerifyFull),
            _ => Err(crate::error::InvalidValue::new(
                "one of disable, require, verify-full",
            )),
        }
    }
}

impl<'de> serde::Deserialize<'de> for SslMode {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        crate::error::from_str_value(deserializer)
    }
}

/// The certificates of a PEM CA file (for RDS, the global bundle), trusted by [`SslMode::VerifyFull`] on top of
/// the system's roots. Read once, when the backend is configured, so a bad path fails at start-up.
#[derive(Clone)]
pub struct CaFile {
    path: String,
    certificates: Arc<[CertificateDer<'static>]>,
}

impl CaFile {
    /// Reads every PEM certificate in the file at `path`.
    pub fn read(path: &Path) -> Result<Self, TlsError> {
        let shown = path.display().to_string();
        let pem = std::fs::read(path).map_err(|source| TlsError::Read {
            path: shown.clone(),
            source,
        })?;
        // A block that does not parse is skipped; a file with no usable block is an error.
        let certificates: Arc<[CertificateDer<'static>]> = CertificateDer::pem_slice_iter(&pem)
            .filter_map(Result::ok)
            .collect();
        if certificates.is_empty() {
            return Err(TlsError::NoCertificates { path: shown });
        }
        Ok(Self {
            path: shown,
            certificates,
        })
    }

    /// The certificates, DER-encoded.
    pub fn certificates(&self) -> &[CertificateDer<'static>] {
        &self.certificates
    }
}

impl fmt::Debug for CaFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CaFile")
            .field("path", &self.path)
            .field("certificates", &self.certificates.len())
            .finish()
    }
}

/// rotapool's crypto provider: aws-lc-rs, or its FIPS module with the `fips` feature. Every rustls config
/// rotapool builds is built with it; none relies on a process-wide default.
pub fn crypto_provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| {
            #[cfg(feature = "fips")]
            let provider = rustls::crypto::default_fips_provider();
            #[cfg(not(feature = "fips"))]
            let provider = rustls::crypto::aws_lc_rs::default_provider();
            Arc::new(provider)
        })
        .clone()
}

/// The operating system's trusted roots (`rustls-native-certs`: the distribution's bundle, or `SSL_CERT_FILE`
/// and `SSL_CERT_DIR` where set), read once per process. Certificates that cannot be read are left out with a
/// warning: an empty store makes [`SslMode::VerifyFull`] refuse every server unless a CA file is given.
pub fn system_roots() -> &'static [CertificateDer<'static>] {
    static ROOTS: OnceLock<Vec<CertificateDer<'static>>> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let found = rustls_native_certs::load_native_certs();
        for error in &found.errors {
            tracing::warn!(%error, "a system root certificate could not be loaded");
        }
        if found.certs.is_empty() {
            tracing::warn!(
                "the system has no trusted root certificates: verify-full trusts only the CA file \
                 (install ca-certificates, or set SSL_CERT_FILE)"
            );
        }
        found.certs
    })
}

/// The rustls config for `mode`, with rotapool's provider, or `None` for [`SslMode::Disable`].
///
/// [`SslMode::VerifyFull`] trusts [`system_roots`] plus the certificates of `ca`; [`SslMode::Require`] accepts
/// any certificate but still checks the handshake's signatures, as libpq's `require` does.
pub fn client_config(mode: SslMode, ca: Option<&CaFile>) -> Option<ClientConfig> {
    let provider = crypto_provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("aws-lc-rs supports TLS 1.2 and 1.3");
    Some(match mode {
        SslMode::Disable => return None,
        SslMode::Require => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
            .with_no_client_auth(),
        SslMode::VerifyFull => builder
            .with_root_certificates(trusted_roots(ca))
            .with_no_client_auth(),
    })
}

/// The system's roots and the CA file's certificates in one store.
fn trusted_roots(ca: Option<&CaFile>) -> RootCertStore {
    let mut roots = RootCertStore::empty();
    // A system root rustls cannot parse is skipped (rustls-native-certs may return such); the CA file's
    // certificates were checked when it was read.
    roots.add_parsable_certificates(system_roots().iter().cloned());
    if let Some(ca) = ca {
        roots.add_parsable_certificates(ca.certificates().iter().cloned());
    }
    roots
}

/// Accepts any certificate but still checks the handshake signatures.
struct AnyCertificate(Arc<CryptoProvider>);

impl fmt::Debug for AnyCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AnyCertificate")
    }
}

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ca_file_must_exist_and_hold_a_certificate() {
        let path = std::env::temp_dir().join(format!("rotapool-not-a-ca-{}", std::process::id()));
        std::fs::write(&path, "not a certificate").unwrap();
        let err = CaFile::read(&path).expect_err("no certificate in the file");
        std::fs::remove_file(&path).unwrap();
        assert!(matches!(err, TlsError::NoCertificates { .. }), "{err:?}");
        assert!(err.to_string().contains("PEM"), "{err}");
        let missing = CaFile::read(Path::new("/nonexistent/rds-ca.pem")).expect_err("missing file");
        assert!(matches!(missing, TlsError::Read { .. }), "{missing:?}");
        assert!(
            missing.to_string().contains("/nonexistent/rds-ca.pem"),
            "{missing}"
        );
    }

    #[test]
    fn verify_full_trusts_the_system_roots_and_the_ca_file_together() {
        let system = system_roots().len();
        assert!(
            system > 0,
            "this machine's trust store (ca-certificates) is empty, so the union cannot be checked"
        );
        // A certificate of the system store stands in for a CA file: the union must hold it once more.
        let der = system_roots()[0].clone();
        let ca = CaFile {
            path: "test".into(),
            certificates: vec![der].into(),
        };
        assert_eq!(trusted_roots(None).len(), system);
        assert_eq!(trusted_roots(Some(&ca)).len(), system + 1);
    }

    #[test]
    fn every_config_carries_rotapools_provider_and_no_default_is_installed() {
        for mode in [SslMode::Require, SslMode::VerifyFull] {
            let config = client_config(mode, None).expect("TLS modes build a config");
            assert!(Arc::ptr_eq(config.crypto_provider(), &crypto_provider()));
            // rustls's own check that every algorithm the config may use comes from the validated module.
            assert_eq!(config.fips(), cfg!(feature = "fips"), "{mode:?}");
        }
        assert!(client_config(SslMode::Disable, None).is_none());
        assert!(
            CryptoProvider::get_default().is_none(),
            "rotapool installed a process-wide provider"
        );
    }
}
