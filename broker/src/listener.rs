//! The HTTP listener: accepts connections (plain or TLS), bounds how many
//! are open at once and from one client, and how long a silent or slow
//! client may hold one, then serves each with hyper: HTTP/1.1, or HTTP/2
//! when TLS's ALPN chose it. (No protocol sniffing on plain connections: a
//! sniffer reads before any timeout of hyper's applies, so a silent client
//! would be waited on.)
//!
//! A connection costs a descriptor and a task. Without these bounds a
//! client that opens connections and never speaks (or speaks a byte a
//! minute) keeps them forever, and at the descriptor limit even
//! `sys/health` stops answering. This module must never let one client
//! hold more than its share, and never wait on a client without a deadline.
//!
//! ```no_run
//! # async fn run(app: axum::Router) -> std::io::Result<()> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8200").await?;
//! broker::listener::serve(listener, None, app, broker::listener::ListenerLimits::default(), std::future::pending()).await
//! # }
//! ```

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::pin::{Pin, pin};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;

use crate::tls::PeerCertificates;
use hyper::body::Incoming;
use hyper::server::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::{Instant, Sleep};
use tower::ServiceExt;

/// How long requests in flight may take to finish after a shutdown signal.
const DRAIN: Duration = Duration::from_secs(30);
/// How often a limit being reached is logged, at most.
const LOG_EVERY: Duration = Duration::from_secs(60);

/// The bounds a listener puts on its connections (`[listener]` in the
/// configuration file; see its documentation for the defaults' reasons).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenerLimits {
    /// How long a client has to send a request's headers, counted from
    /// when the connection starts waiting for them: this is also how long
    /// an idle kept-alive HTTP/1.1 connection stays open, and how long a
    /// TLS handshake may take.
    pub header_read_timeout: Duration,
    /// How long a connection may go with no byte read or written, at any
    /// stage (an HTTP/2 connection, a response the client stopped reading).
    pub idle_timeout: Duration,
    /// How long a client has to send a request's body.
    pub body_read_timeout: Duration,
    /// Connections open at once; past it, new ones wait in the kernel's
    /// backlog until one closes.
    pub max_connections: usize,
    /// Connections open at once from one client address (an IPv6 client
    /// counts by its /64); past it, new ones are closed at once.
    pub max_connections_per_client: usize,
}

impl Default for ListenerLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(300),
            body_read_timeout: Duration::from_secs(30),
            max_connections: 4096,
            max_connections_per_client: 512,
        }
    }
}

/// The address a client is counted under: an IPv6 client controls a whole
/// /64, so its addresses count as one.
pub(crate) fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

/// Open connections per client, each held by a [`ClientSlot`].
#[derive(Debug, Default)]
struct ClientCounts {
    open: Mutex<HashMap<IpAddr, usize>>,
}

/// One open connection of a client; dropping it frees the slot.
struct ClientSlot {
    counts: Arc<ClientCounts>,
    key: IpAddr,
}

impl ClientCounts {
    fn take(self: &Arc<Self>, ip: IpAddr, max: usize) -> Option<ClientSlot> {
        let key = client_key(ip);
        let mut open = self.open.lock().ok()?;
        let n = open.entry(key).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(ClientSlot {
            counts: self.clone(),
            key,
        })
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        if let Ok(mut open) = self.counts.open.lock()
            && let Some(n) = open.get_mut(&self.key)
        {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.key);
            }
        }
    }
}

/// Serves `app` on `listener` until `shutdown` completes, then stops
/// accepting and gives requests in flight 30 s to finish. With `tls`, every
/// connection must complete a TLS handshake first.
pub async fn serve(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    app: Router,
    limits: ListenerLimits,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let mut shutdown = pin!(shutdown);
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let clients = Arc::new(ClientCounts::default());
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let graceful = GracefulShutdown::new();
    let mut h1 = http1::Builder::new();
    h1.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    let mut h2 = http2::Builder::new(TokioExecutor::new());
    h2.timer(TokioTimer::new());
    let builders = Arc::new((h1, h2));
    // Each at most once a minute: under an attack the log lines themselves
    // would otherwise come at the rate of connections.
    let mut saturated_logged: Option<Instant> = None;
    let mut refused_logged: Option<Instant> = None;
    let due = |logged: Option<Instant>| logged.is_none_or(|at| at.elapsed() > LOG_EVERY);
    loop {
        let permit = match slots.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                if due(saturated_logged) {
                    tracing::warn!(
                        max_connections = limits.max_connections,
                        "connection limit reached: new connections wait until one closes \
                         (raise listener.max_connections if this is legitimate load)"
                    );
                    saturated_logged = Some(Instant::now());
                }
                tokio::select! {
                    permit = slots.clone().acquire_owned() => match permit {
                        Ok(permit) => permit,
                        Err(_) => break,
                    },
                    () = &mut shutdown => break,
                }
            }
        };
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of descriptors, say: back off rather than spin.
                    tracing::warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Some(client) = clients.take(remote.ip(), limits.max_connections_per_client) else {
            if due(refused_logged) {
                tracing::warn!(
                    client = %client_key(remote.ip()),
                    max_connections_per_client = limits.max_connections_per_client,
                    "a client reached its connection limit: its new connections are closed"
                );
                refused_logged = Some(Instant::now());
            }
            continue;
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let builders = builders.clone();
        let acceptor = acceptor.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            // Dropped in this order when the connection ends: the
            // client's count first, then the total slot. The other way,
            // the accept loop could wake on the freed slot, accept, and
            // still count this connection against its client, closing the
            // new one for nothing.
            let _held = (client, permit);
            let io = IdleTimeout::new(stream, limits.idle_timeout);
            let service = |peer: Option<PeerCertificates>| {
                TowerToHyperService::new(app.map_request(
                    move |mut request: axum::http::Request<Incoming>| {
                        request.extensions_mut().insert(ConnectInfo(remote));
                        if let Some(peer) = &peer {
                            request.extensions_mut().insert(peer.clone());
                        }
                        request
                    },
                ))
            };
            let (h1, h2) = &*builders;
            let result = match acceptor {
                Some(acceptor) => {
                    let handshake =
                        tokio::time::timeout(limits.header_read_timeout, acceptor.accept(io)).await;
                    let Ok(Ok(tls)) = handshake else {
                        tracing::debug!(%remote, "TLS handshake failed or timed out");
                        return;
                    };
                    // What the client presented, for `auth/cert` to judge.
                    let peer = tls.get_ref().1.peer_certificates().map(|chain| {
                        PeerCertificates(Arc::new(
                            chain.iter().map(|c| c.clone().into_owned()).collect(),
                        ))
                    });
                    let service = service(peer);
                    if tls.get_ref().1.alpn_protocol() == Some(b"h2") {
                        let conn = h2.serve_connection(TokioIo::new(tls), service);
                        watcher.watch(conn).await
                    } else {
                        let conn = h1.serve_connection(TokioIo::new(tls), service);
                        watcher.watch(conn).await
                    }
                }
                None => {
                    let conn = h1.serve_connection(TokioIo::new(io), service(None));
                    watcher.watch(conn).await
                }
            };
            if let Err(e) = result {
                tracing::debug!(%remote, error = %e, "connection closed with an error");
            }
        });
    }
    drop(listener);
    tracing::info!("shutting down: finishing requests in flight");
    if tokio::time::timeout(DRAIN, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("requests still in flight after {DRAIN:?}: closing their connections");
    }
    Ok(())
}

/// A stream that fails with `TimedOut` once it has gone `idle` with no byte
/// read or written while someone waits on it. A connection whose handler is
/// working (and so polls neither side) is not timed out by this.
struct IdleTimeout {
    inner: TcpStream,
    idle: Duration,
    deadline: Pin<Box<Sleep>>,
}

impl IdleTimeout {
    fn new(inner: TcpStream, idle: Duration) -> Self {
        Self {
            inner,
            idle,
            deadline: Box::pin(tokio::time::sleep(idle)),
        }
    }

    fn progressed(&mut self) {
        self.deadline.as_mut().reset(Instant::now() + self.idle);
    }

    /// On `Pending`, whether the deadline has passed (then: an error).
    fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        self.deadline.as_mut().poll(cx).is_ready()
    }

    /// What a write returned, with the deadline moved on or enforced.
    fn wrote(
        &mut self,
        cx: &mut Context<'_>,
        written: Poll<io::Result<usize>>,
    ) -> Poll<io::Result<usize>> {
        match written {
            Poll::Ready(Ok(n)) => {
                if n > 0 {
                    self.progressed();
                }
                Poll::Ready(Ok(n))
            }
            Poll::Pending if self.expired(cx) => Poll::Ready(Err(timed_out())),
            other => other,
        }
    }
}

fn timed_out() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "connection idle too long")
}

impl AsyncRead for IdleTimeout {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    self.progressed();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending if self.expired(cx) => Poll::Ready(Err(timed_out())),
            other => other,
        }
    }
}

impl AsyncWrite for IdleTimeout {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.wrote(cx, written)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.wrote(cx, written)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ipv6_client_counts_by_its_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(client_key(a), client_key(b));
        assert_ne!(client_key(a), client_key(c));
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(client_key(mapped), "10.0.0.1".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn a_client_holds_at_most_its_share_and_gets_it_back() {
        let counts = Arc::new(ClientCounts::default());
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let first = counts.take(ip, 2).unwrap();
        let _second = counts.take(ip, 2).unwrap();
        assert!(counts.take(ip, 2).is_none());
        assert!(counts.take("192.0.2.8".parse().unwrap(), 2).is_some());
        drop(first);
        assert!(counts.take(ip, 2).is_some());
    }
}
