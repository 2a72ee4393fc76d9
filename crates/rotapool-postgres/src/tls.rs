//! TLS for tokio-postgres through rustls, with rotapool's one crypto provider, and the `tls-server-end-point`
//! channel binding that SCRAM-SHA-256-PLUS asks for.

use std::{
    future::Future,
    io,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use rotapool_core::{
    rustls::{pki_types::ServerName, ClientConfig},
    tls::client_config,
    CaFile, SslMode,
};
use sha2::{Digest, Sha256, Sha384, Sha512};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect};

/// Makes TLS connections for tokio-postgres with a rustls config: `Config::connect(RustlsConnect::new(..))`.
///
/// Built by rotapool's backends from an [`SslMode`] and an optional [`CaFile`], with rotapool's crypto provider;
/// also usable with plain tokio-postgres or deadpool-postgres. Cheap to clone.
#[derive(Clone)]
pub struct RustlsConnect {
    config: Arc<ClientConfig>,
}

impl RustlsConnect {
    /// Connects with `config` as it is.
    pub fn new(config: ClientConfig) -> Self {
        Self {
            config: Arc::new(config),
        }
    }

    /// The connector for `mode` (see [`SslMode`]), or `None` for [`SslMode::Disable`].
    pub fn for_mode(mode: SslMode, ca: Option<&CaFile>) -> Option<Self> {
        client_config(mode, ca).map(Self::new)
    }
}

impl std::fmt::Debug for RustlsConnect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RustlsConnect").finish_non_exhaustive()
    }
}

impl<S> MakeTlsConnect<S> for RustlsConnect
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = TlsStream<S>;
    type TlsConnect = Handshake;
    type Error = io::Error;

    fn make_tls_connect(&mut self, host: &str) -> io::Result<Handshake> {
        let server = ServerName::try_from(host)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?
            .to_owned();
        Ok(Handshake {
            server,
            connector: tokio_rustls::TlsConnector::from(self.config.clone()),
        })
    }
}

/// One TLS handshake with one server.
pub struct Handshake {
    server: ServerName<'static>,
    connector: tokio_rustls::TlsConnector,
}

impl std::fmt::Debug for Handshake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handshake")
            .field("server", &self.server)
            .finish_non_exhaustive()
    }
}

impl<S> TlsConnect<S> for Handshake
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = TlsStream<S>;
    type Error = io::Error;
    type Future = Connecting<S>;

    fn connect(self, stream: S) -> Connecting<S> {
        Connecting(self.connector.connect(self.server, stream))
    }
}

/// A handshake in progress.
pub struct Connecting<S>(tokio_rustls::Connect<S>);

impl<S: AsyncRead + AsyncWrite + Unpin> Future for Connecting<S> {
    type Output = io::Result<TlsStream<S>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0).poll(cx).map_ok(TlsStream)
    }
}

impl<S> std::fmt::Debug for Connecting<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Connecting")
    }
}

/// An encrypted connection to the server.
pub struct TlsStream<S>(tokio_rustls::client::TlsStream<S>);

impl<S> std::fmt::Debug for TlsStream<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsStream")
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> tokio_postgres::tls::TlsStream for TlsStream<S> {
    /// RFC 5929's `tls-server-end-point`: the server certificate's hash, with the hash of its signature
    /// algorithm (SHA-256 for MD5 and SHA-1). Without it tokio-postgres falls back to plain SCRAM-SHA-256.
    fn channel_binding(&self) -> ChannelBinding {
        let (_, session) = self.0.get_ref();
        match session
            .peer_certificates()
            .and_then(|chain| chain.first())
            .and_then(|leaf| end_point_hash(leaf))
        {
            Some(hash) => ChannelBinding::tls_server_end_point(hash),
            None => ChannelBinding::none(),
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for TlsStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for TlsStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

/// The hash of a DER certificate for `tls-server-end-point`, or `None` if its signature algorithm names no hash
/// this knows (RSASSA-PSS, whose hash hides in its parameters, and Ed25519: libpq refuses both too).
fn end_point_hash(certificate: &[u8]) -> Option<Vec<u8>> {
    /// SHA-2 size of each signature algorithm, by the DER bytes of its OID.
    const ALGORITHMS: &[(&[u8], usize)] = &[
        (&[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x04], 256), // md5WithRSAEncryption
        (&[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x05], 256), // sha1WithRSAEncryption
        (&[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b], 256), // sha256WithRSAEncryption
        (&[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0c], 384), // sha384WithRSAEncryption
        (&[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0d], 512), // sha512WithRSAEncryption
        (&[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x01], 256),             // ecdsa-with-SHA1
        (&[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02], 256),       // ecdsa-with-SHA256
        (&[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03], 384),       // ecdsa-with-SHA384
        (&[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x04], 512),       // ecdsa-with-SHA512
    ];
    let oid = signature_algorithm(certificate)?;
    let (_, bits) = ALGORITHMS.iter().find(|(known, _)| *known == oid)?;
    Some(match bits {
        256 => Sha256::digest(certificate).to_vec(),
        384 => Sha384::digest(certificate).to_vec(),
        _ => Sha512::digest(certificate).to_vec(),
    })
}

/// The OID of `Certificate.signatureAlgorithm` (RFC 5280: `SEQUENCE { tbsCertificate, signatureAlgorithm
/// SEQUENCE { OID, .. }, signature }`), read with just enough DER to skip the TBS part.
fn signature_algorithm(certificate: &[u8]) -> Option<&[u8]> {
    let (tag, certificate, _) = der_element(certificate)?;
    if tag != 0x30 {
        return None;
    }
    let (_, _, after_tbs) = der_element(certificate)?;
    let (tag, algorithm, _) = der_element(after_tbs)?;
    if tag != 0x30 {
        return None;
    }
    let (tag, oid, _) = der_element(algorithm)?;
    (tag == 0x06).then_some(oid)
}

/// Splits one DER element off `input`: its tag, its contents, and what follows it.
fn der_element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (length, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let bytes = usize::from(first & 0x7f);
        if bytes == 0 || bytes > std::mem::size_of::<usize>() || rest.len() < bytes {
            return None;
        }
        let length = rest[..bytes]
            .iter()
            .fold(0usize, |n, &b| (n << 8) | usize::from(b));
        (length, &rest[bytes..])
    };
    (rest.len() >= length).then(|| (tag, &rest[..length], &rest[length..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_algorithm_is_found_past_the_tbs_part() {
        // SEQUENCE { SEQUENCE { INTEGER 1 }, SEQUENCE { OID ecdsa-with-SHA384 }, BIT STRING }
        let cert = [
            0x30, 0x13, 0x30, 0x03, 0x02, 0x01, 0x01, 0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48,
            0xce, 0x3d, 0x04, 0x03, 0x03, 0x03, 0x00,
        ];
        assert_eq!(
            signature_algorithm(&cert),
            Some(&[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03][..])
        );
        assert_eq!(end_point_hash(&cert), Some(Sha384::digest(cert).to_vec()));
        // Truncated input, a wrong outer tag and an unknown algorithm give no binding rather than a panic.
        assert_eq!(signature_algorithm(&cert[..12]), None);
        let mut not_a_sequence = cert;
        not_a_sequence[0] = 0x31;
        assert_eq!(signature_algorithm(&not_a_sequence), None);
        let mut unknown = cert;
        unknown[18] = 0x09;
        assert_eq!(end_point_hash(&unknown), None);
    }
}
