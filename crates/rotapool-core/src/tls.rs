//! TLS settings shared by the backends: the mode, and the CA bundle file.

use std::path::Path;

/// Whether and how connections use TLS. The names follow libpq; MySQL calls them `DISABLED`, `REQUIRED` and
/// `VERIFY_IDENTITY`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SslMode {
    /// Plain TCP. Only for local servers and tests.
    Disable,
    /// Encrypt, but accept any server certificate. The default: RDS forces TLS for PostgreSQL 15+ and can for
    /// MySQL, and its certificates chain to the RDS CA, which is not in the public root store.
    #[default]
    Require,
    /// Encrypt, and check that the certificate chains to a trusted root and names the host. Trusted roots are the
    /// CA bundle given to the backend's `ca_file`, or the Mozilla roots if none is given.
    VerifyFull,
}

impl std::str::FromStr for SslMode {
    type Err = crate::config::InvalidValue;

    /// `disable`, `require` or `verify-full` (case-insensitive; `verify_full` too).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.to_ascii_lowercase().replace('_', "-").as_str() {
            "disable" => Ok(Self::Disable),
            "require" => Ok(Self::Require),
            "verify-full" => Ok(Self::VerifyFull),
            _ => Err(crate::config::InvalidValue::new(
                "one of disable, require, verify-full",
            )),
        }
    }
}

impl<'de> serde::Deserialize<'de> for SslMode {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        crate::config::from_str_value(deserializer)
    }
}

/// Why a CA bundle could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// The file could not be read.
    #[error("could not read the CA bundle `{path}`: {source}")]
    Read {
        /// The path given.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file holds no PEM certificate.
    #[error(
        "the CA bundle `{path}` holds no usable PEM certificate; for RDS, download the region's bundle \
         (global-bundle.pem) from the RDS documentation"
    )]
    NoCertificates {
        /// The path given.
        path: String,
    },
}

/// Reads a PEM CA bundle, checking that it holds at least one certificate block.
pub fn read_ca_bundle(path: &Path) -> Result<Vec<u8>, TlsError> {
    let shown = || path.display().to_string();
    let pem = std::fs::read(path).map_err(|source| TlsError::Read {
        path: shown(),
        source,
    })?;
    let marker = b"-----BEGIN CERTIFICATE-----";
    if !pem.windows(marker.len()).any(|w| w == marker) {
        return Err(TlsError::NoCertificates { path: shown() });
    }
    Ok(pem)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ca_file_must_exist_and_hold_a_certificate() {
        let path = std::env::temp_dir().join(format!("rotapool-not-a-ca-{}", std::process::id()));
        std::fs::write(&path, "not a certificate").unwrap();
        let err = read_ca_bundle(&path).expect_err("no certificate in the file");
        std::fs::remove_file(&path).unwrap();
        assert!(matches!(err, TlsError::NoCertificates { .. }), "{err:?}");
        assert!(err.to_string().contains("PEM"), "{err}");
        let missing =
            read_ca_bundle(Path::new("/nonexistent/rds-ca.pem")).expect_err("missing file");
        assert!(matches!(missing, TlsError::Read { .. }), "{missing:?}");
        assert!(
            missing.to_string().contains("/nonexistent/rds-ca.pem"),
            "{missing}"
        );
    }
}
