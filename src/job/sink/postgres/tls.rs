//! TLS for the PostgreSQL sink: libpq's `sslmode` / `sslrootcert` URL parameters on rustls (the
//! aws-lc-rs provider the AWS SDKs already build; no OpenSSL, so the job binary still builds for
//! an old glibc).
//!
//! | sslmode       | TLS                          | certificate checked                      |
//! |---------------|------------------------------|------------------------------------------|
//! | `disable`     | never                        | -                                        |
//! | `prefer`      | if the server offers it      | chain, only when `sslrootcert` is given  |
//! | `require`     | always                       | chain, only when `sslrootcert` is given  |
//! | `verify-ca`   | always                       | chain                                    |
//! | `verify-full` | always                       | chain and host name                      |
//!
//! Roots: the PEM bundle `sslrootcert` names (e.g. the RDS global bundle), else (or with
//! `sslrootcert=system`) the platform's trust store.

use std::fmt;
use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect, TlsStream};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    fn parse(value: &str) -> Option<SslMode> {
        Some(match value {
            "disable" => SslMode::Disable,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

/// Where the trusted roots come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootCerts {
    /// The platform's trust store (no `sslrootcert`, or `sslrootcert=system`).
    System,
    /// A PEM file of CA certificates.
    File(PathBuf),
}

/// The TLS parameters of a sink URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsOptions {
    pub mode: SslMode,
    /// `None`: no `sslrootcert` given.
    pub root_cert: Option<RootCerts>,
}

/// Takes `sslmode` and `sslrootcert` out of `url` (the `postgres` crate knows only
/// disable/prefer/require and no `sslrootcert`): the URL left for it, and the options.
/// The default mode is `prefer`, as in libpq.
pub fn split_tls_params(url: &str) -> Result<(String, TlsOptions), String> {
    let mut options = TlsOptions {
        mode: SslMode::Prefer,
        root_cert: None,
    };
    let Some((base, query)) = url.split_once('?') else {
        return Ok((url.to_string(), options));
    };
    let mut kept = Vec::new();
    for pair in query.split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "sslmode" => {
                options.mode = SslMode::parse(value).ok_or_else(|| {
                    format!(
                        "sslmode={value} is not a known mode; use disable, prefer, require, \
                         verify-ca or verify-full"
                    )
                })?;
            }
            "sslrootcert" => {
                let path = percent_decode(value)?;
                if path.is_empty() {
                    return Err("sslrootcert= is empty; give the path of a PEM CA bundle".into());
                }
                options.root_cert = Some(if path == "system" {
                    RootCerts::System
                } else {
                    RootCerts::File(PathBuf::from(path))
                });
            }
            _ => kept.push(pair),
        }
    }
    let url = if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    Ok((url, options))
}

fn percent_decode(value: &str) -> Result<String, String> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = value
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("sslrootcert={value}: bad percent-encoding"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("sslrootcert={value}: not UTF-8"))
}

/// The rustls client configuration for `options` (`None` for `sslmode=disable`).
pub fn client_config(options: &TlsOptions) -> Result<Option<Arc<ClientConfig>>, String> {
    if options.mode == SslMode::Disable {
        return Ok(None);
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let check_chain = matches!(options.mode, SslMode::VerifyCa | SslMode::VerifyFull)
        || options.root_cert.is_some();
    let verifier: Arc<dyn ServerCertVerifier> = if check_chain {
        let roots = load_roots(options.root_cert.as_ref().unwrap_or(&RootCerts::System))?;
        let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .build()
            .map_err(|e| format!("cannot set up certificate verification: {e}"))?;
        Arc::new(Verifier {
            webpki: Some(webpki),
            check_name: options.mode == SslMode::VerifyFull,
            provider: provider.clone(),
        })
    } else {
        Arc::new(Verifier {
            webpki: None,
            check_name: false,
            provider: provider.clone(),
        })
    };
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("cannot set up TLS: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(Some(Arc::new(config)))
}

fn load_roots(source: &RootCerts) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    match source {
        RootCerts::File(path) => {
            let shown = path.display();
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(|e| format!("cannot read sslrootcert={shown}: {e}"))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("sslrootcert={shown} is not a PEM certificate file: {e}"))?;
            if certs.is_empty() {
                return Err(format!(
                    "sslrootcert={shown} holds no certificate (expected PEM \
                     -----BEGIN CERTIFICATE----- blocks)"
                ));
            }
            for cert in certs {
                roots.add(cert).map_err(|e| {
                    format!("sslrootcert={shown}: a certificate cannot be used as a root: {e}")
                })?;
            }
        }
        RootCerts::System => {
            let found = rustls_native_certs::load_native_certs();
            let (added, _ignored) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                return Err("no trusted root certificates found on this machine; pass \
                     sslrootcert=PATH with the server's CA bundle"
                    .to_string());
            }
        }
    }
    Ok(roots)
}

/// Checks the handshake signatures always, and the certificate chain (and host name) as the
/// mode says.
#[derive(Debug)]
struct Verifier {
    /// `None`: any certificate is accepted (libpq's `require` without a root file).
    webpki: Option<Arc<WebPkiServerVerifier>>,
    check_name: bool,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(webpki) = &self.webpki else {
            return Ok(ServerCertVerified::assertion());
        };
        match webpki.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            // The chain was checked before the name (webpki's order): verify-ca is satisfied.
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if !self.check_name => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The `postgres` crate's TLS hook, on rustls.
#[derive(Clone)]
pub struct MakeRustlsConnect {
    config: Arc<ClientConfig>,
}

impl MakeRustlsConnect {
    pub fn new(config: Arc<ClientConfig>) -> Self {
        MakeRustlsConnect { config }
    }
}

impl<S> MakeTlsConnect<S> for MakeRustlsConnect
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type TlsConnect = RustlsConnect;
    type Error = io::Error;

    fn make_tls_connect(&mut self, domain: &str) -> Result<RustlsConnect, io::Error> {
        let server_name = ServerName::try_from(domain.to_string()).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{domain} is not a valid host name for TLS"),
            )
        })?;
        Ok(RustlsConnect {
            connector: tokio_rustls::TlsConnector::from(self.config.clone()),
            server_name,
        })
    }
}

pub struct RustlsConnect {
    connector: tokio_rustls::TlsConnector,
    server_name: ServerName<'static>,
}

impl<S> TlsConnect<S> for RustlsConnect
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<RustlsStream<S>>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        Box::pin(async move {
            let tls = self.connector.connect(self.server_name, stream).await?;
            Ok(RustlsStream(tls))
        })
    }
}

pub struct RustlsStream<S>(tokio_rustls::client::TlsStream<S>);

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for RustlsStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for RustlsStream<S> {
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

impl<S: AsyncRead + AsyncWrite + Unpin> TlsStream for RustlsStream<S> {
    fn channel_binding(&self) -> ChannelBinding {
        // SCRAM without channel binding (the PostgreSQL default `channel_binding=prefer` then
        // authenticates with plain SCRAM-SHA-256 inside the verified TLS session).
        ChannelBinding::none()
    }
}

/// What went wrong in a TLS connection attempt, and how to fix it; `None` when `error` is not
/// about TLS. `host` is the host the sink connects to.
pub fn explain_failure(
    error: &(dyn std::error::Error + 'static),
    options: &TlsOptions,
    host: &str,
) -> Option<String> {
    let mode = options.mode.as_str();
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(current) = cause {
        if current.to_string().contains("server does not support TLS") {
            return Some(format!(
                "the server does not accept TLS connections, and sslmode={mode} requires TLS; \
                 turn on ssl on the server, or use sslmode=prefer (or disable) if a plain \
                 connection is acceptable"
            ));
        }
        let rustls_error = current
            .downcast_ref::<io::Error>()
            .and_then(|e| e.get_ref())
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
            .or_else(|| current.downcast_ref::<rustls::Error>());
        if let Some(rustls_error) = rustls_error {
            return Some(explain_rustls(rustls_error, options, host));
        }
        cause = current.source();
    }
    None
}

fn explain_rustls(error: &rustls::Error, options: &TlsOptions, host: &str) -> String {
    let mode = options.mode.as_str();
    let roots = match &options.root_cert {
        Some(RootCerts::File(path)) => format!("the CAs in sslrootcert={}", path.display()),
        _ => "the platform's trusted CAs".to_string(),
    };
    match error {
        rustls::Error::InvalidCertificate(
            CertificateError::UnknownIssuer | CertificateError::BadSignature,
        ) => format!(
            "the server's TLS certificate is not trusted: it is not signed by {roots}; pass \
             sslrootcert=PATH with the server's CA bundle (for Amazon RDS: AWS's RDS global \
             bundle, global-bundle.pem), or sslmode=require to encrypt without verifying the \
             certificate"
        ),
        rustls::Error::InvalidCertificate(
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
        ) => format!(
            "the server's TLS certificate is not valid for the host name {host} \
             (sslmode={mode} checks it); connect by a name the certificate lists (for Amazon \
             RDS: the instance or cluster endpoint, not an IP address or a CNAME), or use \
             sslmode=verify-ca to check only the certificate chain"
        ),
        rustls::Error::InvalidCertificate(
            CertificateError::Expired | CertificateError::ExpiredContext { .. },
        ) => "the server's TLS certificate has expired; renew it on the server".to_string(),
        rustls::Error::InvalidCertificate(
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. },
        ) => "the server's TLS certificate is not valid yet; check the clocks of this machine \
              and the server"
            .to_string(),
        other => format!("the TLS handshake failed (sslmode={mode}): {other}"),
    }
}

impl fmt::Debug for MakeRustlsConnect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MakeRustlsConnect")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_parameters_are_taken_out_of_the_url() {
        let (url, options) = split_tls_params(
            "postgres://u@h/db?connect_timeout=5&sslmode=verify-full&sslrootcert=%2Fetc%2Frds.pem",
        )
        .unwrap();
        assert_eq!(url, "postgres://u@h/db?connect_timeout=5");
        assert_eq!(options.mode, SslMode::VerifyFull);
        assert_eq!(
            options.root_cert,
            Some(RootCerts::File(PathBuf::from("/etc/rds.pem")))
        );

        let (url, options) = split_tls_params("postgres://u@h/db").unwrap();
        assert_eq!(url, "postgres://u@h/db");
        assert_eq!(options.mode, SslMode::Prefer);
        assert_eq!(options.root_cert, None);

        let (url, options) =
            split_tls_params("postgres://u@h/db?sslmode=require&sslrootcert=system").unwrap();
        assert_eq!(url, "postgres://u@h/db");
        assert_eq!(options.mode, SslMode::Require);
        assert_eq!(options.root_cert, Some(RootCerts::System));
    }

    #[test]
    fn unknown_ssl_modes_and_empty_root_files_are_refused() {
        let error = split_tls_params("postgres://h/db?sslmode=allow-ish").unwrap_err();
        assert!(error.contains("sslmode=allow-ish"), "{error}");
        assert!(error.contains("verify-full"), "{error}");
        assert!(split_tls_params("postgres://h/db?sslrootcert=").is_err());
    }

    #[test]
    fn a_missing_root_file_is_a_clear_error() {
        let options = TlsOptions {
            mode: SslMode::VerifyFull,
            root_cert: Some(RootCerts::File(PathBuf::from("/nonexistent/ca.pem"))),
        };
        let error = client_config(&options).unwrap_err();
        assert!(error.contains("sslrootcert=/nonexistent/ca.pem"), "{error}");
    }
}
