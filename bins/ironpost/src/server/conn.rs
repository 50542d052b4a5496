//! One client connection as the protocol drivers see it: a TCP stream that
//! may be or become TLS, with the peer's address and what the last read took.
//!
//! Every protocol driver (SMTP, POP3, IMAP) has the same shape: feed what [`Connection::read`] returns to the sans-IO session,
//! answer its events, write what it transmits with [`Connection::write_all`],
//! and call [`Connection::start_tls`] when the session asks for the
//! handshake.

use std::cell::RefCell;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::BufMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// How much one read takes from the socket at most: one TLS record.
const READ_BUFFER: usize = 16 * 1024;

/// A connection in clear keeps only what it read, in a buffer of that
/// size: a command line costs a few dozen bytes, not [`READ_BUFFER`], and a
/// buffer grown by a burst (an APPEND) is given back at the first read after
/// it above this size. An idle connection (an IMAP client in IDLE) thus
/// costs next to nothing, and no freed 16 KiB blocks are left scattered in
/// the allocator by thousands of small reads.
const IDLE_BUFFER: usize = 1024;

thread_local! {
    /// Each thread's buffer for [`read_ready`], of [`READ_BUFFER`] octets:
    /// allocated once, and never zeroed again (the socket reads into its
    /// spare capacity).
    static SCRATCH: RefCell<Vec<u8>> = RefCell::new(Vec::with_capacity(READ_BUFFER));
}

/// Reads what a readable socket has (at most [`READ_BUFFER`]) through the
/// thread's buffer, into `into`, replacing its content.
fn read_ready(tcp: &TcpStream, into: &mut Vec<u8>) -> io::Result<usize> {
    SCRATCH.with_borrow_mut(|chunk| {
        chunk.clear();
        let n = tcp.try_read_buf(&mut chunk.limit(READ_BUFFER))?;
        into.clear();
        into.extend_from_slice(&chunk[..n]);
        Ok(n)
    })
}

/// A TCP stream, in clear or TLS.
enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
    /// Only while a handshake is in progress; never read or written.
    Handshaking,
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            Stream::Handshaking => Poll::Ready(Err(handshaking())),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            Stream::Handshaking => Poll::Ready(Err(handshaking())),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
            Stream::Handshaking => Poll::Ready(Err(handshaking())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            Stream::Handshaking => Poll::Ready(Err(handshaking())),
        }
    }
}

fn handshaking() -> io::Error {
    io::Error::new(
        io::ErrorKind::NotConnected,
        "a TLS handshake failed earlier",
    )
}

/// What a TLS session negotiated, for logs and `Received:` lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TlsInfo {
    /// E.g. `TLSv1_3`.
    pub(crate) version: String,
    /// E.g. `TLS13_AES_256_GCM_SHA384`.
    pub(crate) cipher: String,
}

/// A client connection.
pub(crate) struct Connection {
    stream: Stream,
    /// What the last read took (see [`IDLE_BUFFER`]).
    buffer: Vec<u8>,
    /// The last read filled the buffer: more is probably waiting.
    busy: bool,
    peer: SocketAddr,
    tls: Option<TlsInfo>,
    /// Bytes read and written, for the connection's log line.
    pub(crate) bytes_in: u64,
    pub(crate) bytes_out: u64,
}

impl Connection {
    /// A connection in clear.
    pub(crate) fn plain(stream: TcpStream, peer: SocketAddr) -> Connection {
        // Replies are small and must leave at once.
        let _ = stream.set_nodelay(true);
        Connection {
            stream: Stream::Plain(stream),
            buffer: Vec::new(),
            busy: false,
            peer,
            tls: None,
            bytes_in: 0,
            bytes_out: 0,
        }
    }

    /// The client's address.
    pub(crate) fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// The TLS parameters, once TLS is on.
    pub(crate) fn tls(&self) -> Option<&TlsInfo> {
        self.tls.as_ref()
    }

    /// Reads what is available: an empty slice means the client closed.
    pub(crate) async fn read(&mut self) -> io::Result<&[u8]> {
        let n = match &mut self.stream {
            Stream::Plain(tcp) => {
                if !self.busy && self.buffer.capacity() > IDLE_BUFFER {
                    self.buffer = Vec::new();
                }
                loop {
                    tcp.readable().await?;
                    match read_ready(tcp, &mut self.buffer) {
                        Ok(n) => break n,
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                        Err(e) => return Err(e),
                    }
                }
            }
            // rustls may hold decrypted bytes the socket no longer shows,
            // so a TLS stream always reads through its buffer.
            stream => {
                if self.buffer.len() < READ_BUFFER {
                    self.buffer = vec![0; READ_BUFFER];
                }
                stream.read(&mut self.buffer).await?
            }
        };
        self.busy = n == READ_BUFFER;
        self.bytes_in += n as u64;
        Ok(&self.buffer[..n])
    }

    /// Writes all of `bytes` and flushes them.
    pub(crate) async fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes).await?;
        self.stream.flush().await?;
        self.bytes_out += bytes.len() as u64;
        Ok(())
    }

    /// Runs the server side of a TLS handshake on the connection (at once
    /// for implicit TLS, after the protocol's STARTTLS otherwise).
    pub(crate) async fn start_tls(&mut self, acceptor: &TlsAcceptor) -> io::Result<()> {
        let Stream::Plain(tcp) = std::mem::replace(&mut self.stream, Stream::Handshaking) else {
            return Err(io::Error::other("TLS is already active"));
        };
        let tls = acceptor.accept(tcp).await?;
        let (_, session) = tls.get_ref();
        self.tls = Some(TlsInfo {
            version: session
                .protocol_version()
                .map(|v| format!("{v:?}"))
                .unwrap_or_default(),
            cipher: session
                .negotiated_cipher_suite()
                .map(|s| format!("{:?}", s.suite()))
                .unwrap_or_default(),
        });
        self.stream = Stream::Tls(Box::new(tls));
        Ok(())
    }

    /// Closes the sending side (sends TLS close_notify first when on TLS).
    pub(crate) async fn shutdown(&mut self) {
        let _ = self.stream.shutdown().await;
    }
}

/// The TLS server configuration of a listener: TLS 1.2 and 1.3 only,
/// on the ring provider.
pub(crate) fn tls_acceptor(pair: crate::config::CertificatePair) -> Result<TlsAcceptor, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(pair.chain, pair.key)
        .map_err(|e| e.to_string())?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}
