//! TLS for a check (`check-ssl`, `tcp-check connect ssl`), shared by the HTTP/TCP checks and
//! the tcp-check step engine.

/// TLS for a check: the server's client configuration and the name to present.
#[derive(Clone)]
pub struct CheckTls {
    pub config: std::sync::Arc<rustls::ClientConfig>,
    pub name: rustls::pki_types::ServerName<'static>,
}

impl std::fmt::Debug for CheckTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CheckTls").field("name", &self.name).finish_non_exhaustive()
    }
}

impl CheckTls {
    /// The TLS handshake on a check's connection, presenting `name` (else the server's).
    pub(crate) async fn connect(
        &self,
        stream: tokio::net::TcpStream,
        name: Option<&rustls::pki_types::ServerName<'static>>,
    ) -> std::io::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
        let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::clone(&self.config));
        connector.connect(name.unwrap_or(&self.name).clone(), stream).await
    }
}
