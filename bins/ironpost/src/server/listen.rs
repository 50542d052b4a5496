//! Listening sockets: binding the configured addresses (an IPv6 address
//! listens on IPv6 only, so `0.0.0.0:25` and `[::]:25` can both be given),
//! the per-listener connection limit, and the accept loop.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, mpsc, watch};
use tokio_rustls::TlsAcceptor;
use tracing::{info, warn};

use super::conn::Connection;
use crate::config::TlsMode;

/// Pending connections the kernel keeps for each listening socket.
const BACKLOG: i32 = 1024;

/// What a session needs to know about the listener it came in on.
pub(crate) struct ListenerContext {
    /// The listener's name, for logs.
    pub(crate) name: String,
    /// How it uses TLS.
    pub(crate) mode: TlsMode,
    /// Whether MAIL needs AUTH first (submission).
    pub(crate) auth_required: bool,
    /// The TLS configuration, unless the listener is `plain`.
    pub(crate) tls: Option<TlsAcceptor>,
}

/// Binds `addr` for listening.
pub(crate) fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    TcpListener::from_std(socket.into())
}

/// Everything an accept loop hands to each connection it takes.
pub(crate) struct Accepting<F> {
    pub(crate) listener: TcpListener,
    pub(crate) context: Arc<ListenerContext>,
    /// At most this many connections at once (0: unlimited).
    pub(crate) limit: Option<Arc<Semaphore>>,
    /// Turns true when the server stops.
    pub(crate) shutdown: watch::Receiver<bool>,
    /// Held by every session; the server waits for all of them to drop it.
    pub(crate) alive: mpsc::Sender<()>,
    /// What a client over the limit is told before the connection closes
    /// (in clear text only), e.g. an SMTP `421`.
    pub(crate) busy: &'static [u8],
    /// Starts the protocol on a new connection.
    pub(crate) serve: F,
}

/// Takes connections until shutdown, each in a task of its own.
pub(crate) async fn accept_loop<F, Fut>(mut a: Accepting<F>)
where
    F: Fn(Arc<ListenerContext>, Connection, watch::Receiver<bool>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    loop {
        let accepted = tokio::select! {
            accepted = a.listener.accept() => accepted,
            _ = a.shutdown.changed() => return,
        };
        let (tcp, peer) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                // Out of file descriptors and the like: wait a little
                // rather than spin.
                warn!(listener = %a.context.name, error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let permit = match &a.limit {
            None => None,
            Some(limit) => match limit.clone().try_acquire_owned() {
                Ok(permit) => Some(permit),
                Err(_) => {
                    info!(listener = %a.context.name, client = %peer.ip(), "connection refused: too many connections");
                    let plain = a.context.mode != TlsMode::ImplicitTls;
                    tokio::spawn(refuse(tcp, plain.then_some(a.busy)));
                    continue;
                }
            },
        };
        let conn = Connection::plain(tcp, peer);
        let session = (a.serve)(a.context.clone(), conn, a.shutdown.clone());
        let alive = a.alive.clone();
        tokio::spawn(async move {
            session.await;
            drop(permit);
            drop(alive);
        });
    }
}

/// Tells a client over the limit to come back later (in clear text only:
/// a client of an implicit-TLS port would not understand it before the
/// handshake).
async fn refuse(mut tcp: tokio::net::TcpStream, message: Option<&'static [u8]>) {
    use tokio::io::AsyncWriteExt;
    if let Some(message) = message {
        let _ = tcp.write_all(message).await;
    }
    let _ = tcp.shutdown().await;
}
