//! The HTTPS listener: a TCP accept loop that hands each connection to its
//! own task for the TLS handshake and HTTP (1.1 or 2, by ALPN), so a slow or
//! hostile client never holds up the next accept.
//!
//! Each request carries two extensions: `ConnectInfo<SocketAddr>` (the
//! peer's address) and, when the client presented a certificate that
//! verified against the Vigo CA, a [`PeerCertificate`].
//!
//! Limits ([`ListenerLimits`]), so that idle or slow clients cannot hold the
//! server's file descriptors:
//! - a global cap on open connections, below the process's file limit: a
//!   connection beyond it is closed at once, before the handshake;
//! - a cap per source address on connections without a client certificate
//!   (every connection counts until its handshake shows a certificate);
//! - the TLS handshake, reading a request's headers (on HTTP/1.1 this
//!   includes a kept-alive connection waiting for its next request), and
//!   the whole of a request without a client certificate are timed;
//! - a connection with no request in flight for the idle timeout is closed.
//!   A request in flight — an envoy's held `GET /v1/wait` — is never idle.
//!
//! Warnings about refused connections and failed accepts (`Too many open
//! files`) are logged at most once per [`WARN_EVERY`], with the number
//! suppressed meanwhile.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::ConnectInfo;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use rustls_pki_types::CertificateDer;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tower::Service;

/// How long in-flight requests may take to finish after shutdown begins.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// File descriptors kept free for everything but client connections (the
/// database pool, watchers, secret files, the log).
const RESERVED_FDS: u64 = 128;

/// The global connection cap when the file limit cannot be read.
const FALLBACK_MAX_CONNECTIONS: usize = 1024 - RESERVED_FDS as usize;

/// At most one warning of each kind per this long.
const WARN_EVERY: Duration = Duration::from_secs(10);

/// How long a request on a connection with a client certificate may take:
/// longer than an envoy's held wait.
const CERTIFIED_REQUEST_TIMEOUT: Duration = Duration::from_secs(vigo_proto::WAIT_HOLD_SECS + 35);

/// The listener's limits; see the module doc.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ListenerLimits {
    /// Time to complete the TLS handshake.
    pub handshake_timeout: Duration,
    /// Time to send a request's headers (HTTP/1.1), counted from the end
    /// of the previous request on a kept-alive connection.
    pub header_read_timeout: Duration,
    /// Time a connection may stay open with no request in flight.
    pub idle_timeout: Duration,
    /// Time a request without a client certificate may take, body
    /// included (408 after).
    pub request_timeout: Duration,
    /// Open connections at most; more are closed at once.
    pub max_connections: usize,
    /// Connections without a client certificate per source address at most.
    pub max_per_address: usize,
}

impl Default for ListenerLimits {
    fn default() -> Self {
        Self {
            handshake_timeout: Duration::from_secs(10),
            header_read_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(30),
            request_timeout: Duration::from_secs(60),
            max_connections: FALLBACK_MAX_CONNECTIONS,
            max_per_address: 64,
        }
    }
}

impl ListenerLimits {
    /// The defaults, with the connection cap set [`RESERVED_FDS`] below the
    /// process's open-file limit and `connections.max_per_address`. Test builds (`test-hooks`) read overrides
    /// from `VIGO_TEST_LISTENER` (`handshake_ms=..,header_ms=..,idle_ms=..,
    /// request_ms=..,max_connections=..,max_per_address=..`).
    pub(crate) fn for_this_process(max_per_address: u32) -> Self {
        let mut limits = Self {
            max_per_address: usize::try_from(max_per_address).unwrap_or(usize::MAX),
            ..Self::default()
        };
        if let Some(files) = open_file_limit() {
            limits.max_connections = usize::try_from(files.saturating_sub(RESERVED_FDS))
                .unwrap_or(usize::MAX)
                .max(16);
        }
        #[cfg(feature = "test-hooks")]
        if let Ok(spec) = std::env::var("VIGO_TEST_LISTENER") {
            limits.apply_overrides(&spec);
        }
        limits
    }

    #[cfg(feature = "test-hooks")]
    fn apply_overrides(&mut self, spec: &str) {
        for entry in spec.split(',') {
            let Some((key, value)) = entry.trim().split_once('=') else {
                continue;
            };
            let Ok(n) = value.trim().parse::<u64>() else {
                continue;
            };
            let ms = Duration::from_millis(n);
            let count = usize::try_from(n).unwrap_or(usize::MAX);
            match key.trim() {
                "handshake_ms" => self.handshake_timeout = ms,
                "header_ms" => self.header_read_timeout = ms,
                "idle_ms" => self.idle_timeout = ms,
                "request_ms" => self.request_timeout = ms,
                "max_connections" => self.max_connections = count,
                "max_per_address" => self.max_per_address = count,
                _ => {}
            }
        }
    }
}

/// The soft `RLIMIT_NOFILE` of this process, from `/proc/self/limits`
/// (`None` when unreadable; `u64::MAX` when unlimited).
fn open_file_limit() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    let soft = line
        .trim_start_matches("Max open files")
        .split_whitespace()
        .next()?;
    if soft == "unlimited" {
        return Some(u64::MAX);
    }
    soft.parse().ok()
}

/// The verified client certificate chain of the connection a request came
/// on (end-entity first). Absent when the client presented none.
#[derive(Debug, Clone)]
pub(crate) struct PeerCertificate {
    chain: Arc<[CertificateDer<'static>]>,
}

impl PeerCertificate {
    /// The client's own certificate (DER).
    pub(crate) fn end_entity(&self) -> &CertificateDer<'static> {
        &self.chain[0]
    }
}

/// Serves `router` over TLS on `listener` until `shutdown` completes, then
/// stops accepting, lets in-flight requests finish (up to 30 s) and returns.
/// Limits: [`ListenerLimits::for_this_process`].
pub(crate) async fn serve_tls<F>(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    router: Router,
    max_per_address: u32,
    shutdown: F,
) where
    F: Future<Output = ()> + Send,
{
    let limits = ListenerLimits::for_this_process(max_per_address);
    serve_tls_with_limits(listener, tls, router, shutdown, limits).await;
}

/// [`serve_tls`] with explicit limits.
pub(crate) async fn serve_tls_with_limits<F>(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    router: Router,
    shutdown: F,
    limits: ListenerLimits,
) where
    F: Future<Output = ()> + Send,
{
    tracing::debug!(
        max_connections = limits.max_connections,
        max_per_address = limits.max_per_address,
        "connection limits"
    );
    let acceptor = TlsAcceptor::from(tls);
    let tracker = Arc::new(Tracker::new(limits));
    let (stop, stopped) = watch::channel(false);
    let accept_failed = WarnLimiter::default();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((tcp, remote)) => match Tracker::admit(&tracker, remote.ip()) {
                    Ok(slot) => {
                        tokio::spawn(serve_connection(
                            tcp,
                            remote,
                            acceptor.clone(),
                            router.clone(),
                            slot,
                            stopped.clone(),
                        ));
                    }
                    // Dropping the socket closes it: refused before the
                    // handshake, at the cost of one accept.
                    Err(refusal) => tracker.warn_refused(refusal, remote),
                },
                Err(e) => {
                    // Typically EMFILE: back off instead of spinning.
                    if let Some(suppressed) = accept_failed.should_log() {
                        tracing::warn!(error = %e, suppressed, "accepting a connection failed");
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
    }
    drop(listener);
    tracing::info!(
        connections = tracker.open(),
        "shutting down: finishing requests in flight"
    );
    let _ = stop.send(true);
    if tokio::time::timeout(DRAIN_TIMEOUT, tracker.drained())
        .await
        .is_err()
    {
        tracing::warn!("requests still running after 30s were cut off");
    }
}

// --- connection accounting ----------------------------------------------------------

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    /// The global cap.
    Total,
    /// The cap per source address (connections without a certificate).
    PerAddress,
}

/// Open connections, in total and per source address for those without a
/// client certificate.
#[derive(Debug)]
struct Tracker {
    limits: ListenerLimits,
    total: AtomicUsize,
    anonymous: Mutex<HashMap<IpAddr, usize>>,
    closed: Notify,
    refused_total: WarnLimiter,
    refused_address: WarnLimiter,
}

impl Tracker {
    fn new(limits: ListenerLimits) -> Self {
        Self {
            limits,
            total: AtomicUsize::new(0),
            anonymous: Mutex::new(HashMap::new()),
            closed: Notify::new(),
            refused_total: WarnLimiter::default(),
            refused_address: WarnLimiter::default(),
        }
    }

    fn open(&self) -> usize {
        self.total.load(Ordering::SeqCst)
    }

    /// Counts a new connection from `ip`, or refuses it.
    fn admit(this: &Arc<Self>, ip: IpAddr) -> Result<Slot, Refusal> {
        let mut anonymous = this.anonymous.lock().unwrap_or_else(|e| e.into_inner());
        if this.total.load(Ordering::SeqCst) >= this.limits.max_connections {
            return Err(Refusal::Total);
        }
        let from_ip = anonymous.entry(ip).or_insert(0);
        if *from_ip >= this.limits.max_per_address {
            return Err(Refusal::PerAddress);
        }
        *from_ip += 1;
        this.total.fetch_add(1, Ordering::SeqCst);
        Ok(Slot {
            tracker: Arc::clone(this),
            anonymous_ip: Some(ip),
        })
    }

    fn release_anonymous(&self, ip: IpAddr) {
        let mut anonymous = self.anonymous.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = anonymous.get_mut(&ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                anonymous.remove(&ip);
            }
        }
    }

    fn warn_refused(&self, refusal: Refusal, remote: SocketAddr) {
        let (log, limit, why) = match refusal {
            Refusal::Total => (
                &self.refused_total,
                self.limits.max_connections,
                "the server's connection limit is reached",
            ),
            Refusal::PerAddress => (
                &self.refused_address,
                self.limits.max_per_address,
                "too many connections without a client certificate from this address",
            ),
        };
        if let Some(suppressed) = log.should_log() {
            tracing::warn!(remote = %remote, limit, suppressed, "connection refused: {why}");
        }
    }

    /// Completes when no connection is open.
    async fn drained(&self) {
        loop {
            let closed = self.closed.notified();
            tokio::pin!(closed);
            closed.as_mut().enable();
            if self.open() == 0 {
                return;
            }
            closed.await;
        }
    }
}

/// One admitted connection; released when dropped.
#[derive(Debug)]
struct Slot {
    tracker: Arc<Tracker>,
    /// Set while the connection counts against its address's cap.
    anonymous_ip: Option<IpAddr>,
}

impl Slot {
    /// The client presented a verified certificate: it no longer counts
    /// against its address's cap.
    fn certified(&mut self) {
        if let Some(ip) = self.anonymous_ip.take() {
            self.tracker.release_anonymous(ip);
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.certified();
        self.tracker.total.fetch_sub(1, Ordering::SeqCst);
        self.tracker.closed.notify_waiters();
    }
}

/// Lets a warning through at most once per [`WARN_EVERY`].
#[derive(Debug, Default)]
struct WarnLimiter {
    last: Mutex<Option<Instant>>,
    suppressed: AtomicU64,
}

impl WarnLimiter {
    /// `Some(number suppressed since the last one)` when this one may be
    /// logged.
    fn should_log(&self) -> Option<u64> {
        let now = Instant::now();
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        match *last {
            Some(at) if now.duration_since(at) < WARN_EVERY => {
                self.suppressed.fetch_add(1, Ordering::Relaxed);
                None
            }
            _ => {
                *last = Some(now);
                Some(self.suppressed.swap(0, Ordering::Relaxed))
            }
        }
    }
}

// --- one connection -------------------------------------------------------------------

/// Requests in flight on one connection and when the last one ended.
#[derive(Debug)]
struct Activity {
    in_flight: AtomicUsize,
    last_end: Mutex<Instant>,
    changed: Notify,
}

impl Activity {
    fn new() -> Self {
        Self {
            in_flight: AtomicUsize::new(0),
            last_end: Mutex::new(Instant::now()),
            changed: Notify::new(),
        }
    }

    fn start(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        self.changed.notify_one();
        InFlight(Arc::clone(self))
    }

    /// When the connection becomes idle for `limit`; `None` while a
    /// request is in flight.
    fn idle_deadline(&self, limit: Duration) -> Option<Instant> {
        if self.in_flight.load(Ordering::SeqCst) > 0 {
            return None;
        }
        Some(*self.last_end.lock().unwrap_or_else(|e| e.into_inner()) + limit)
    }
}

/// A request in flight; ends when dropped (answered or cancelled).
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        *self.0.last_end.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
        self.0.changed.notify_one();
    }
}

async fn serve_connection(
    tcp: TcpStream,
    remote: SocketAddr,
    acceptor: TlsAcceptor,
    router: Router,
    mut slot: Slot,
    mut stopped: watch::Receiver<bool>,
) {
    let limits = slot.tracker.limits.clone();
    let stream = match tokio::time::timeout(limits.handshake_timeout, acceptor.accept(tcp)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => {
            tracing::debug!(remote = %remote, error = %e, "TLS handshake failed");
            return;
        }
        Err(_) => {
            tracing::debug!(remote = %remote, "TLS handshake timed out");
            return;
        }
    };
    let peer = stream
        .get_ref()
        .1
        .peer_certificates()
        .filter(|chain| !chain.is_empty())
        .map(|chain| PeerCertificate {
            chain: chain.iter().map(|c| c.clone().into_owned()).collect(),
        });
    let request_timeout = if peer.is_some() {
        slot.certified();
        CERTIFIED_REQUEST_TIMEOUT
    } else {
        limits.request_timeout
    };
    let activity = Arc::new(Activity::new());
    let service = hyper::service::service_fn({
        let activity = Arc::clone(&activity);
        move |mut request: hyper::Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(remote));
            if let Some(peer) = &peer {
                request.extensions_mut().insert(peer.clone());
            }
            let in_flight = activity.start();
            let answer = router.clone().call(request);
            async move {
                let _in_flight = in_flight;
                match tokio::time::timeout(request_timeout, answer).await {
                    Ok(result) => result,
                    Err(_) => {
                        tracing::debug!(remote = %remote, "request timed out");
                        Ok(timed_out(request_timeout))
                    }
                }
            }
        }
    });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    builder.http2().timer(TokioTimer::new());
    let connection = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    let mut closing = false;
    loop {
        let idle_at = activity.idle_deadline(limits.idle_timeout);
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(remote = %remote, error = %e, "connection ended with an error");
                }
                break;
            }
            _ = stopped.changed(), if !closing => {
                connection.as_mut().graceful_shutdown();
                closing = true;
            }
            () = activity.changed.notified(), if !closing => {}
            () = sleep_until_some(idle_at), if !closing => {
                if activity.idle_deadline(limits.idle_timeout).is_some_and(|at| at <= Instant::now()) {
                    tracing::debug!(remote = %remote, "closing an idle connection");
                    connection.as_mut().graceful_shutdown();
                    closing = true;
                }
            }
        }
    }
    drop(slot);
}

/// Sleeps until `at`, or forever for `None`.
async fn sleep_until_some(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// The 408 of a request that took longer than allowed.
fn timed_out(limit: Duration) -> axum::response::Response {
    (
        StatusCode::REQUEST_TIMEOUT,
        Json(vigo_proto::ApiError {
            code: "request_timeout".to_owned(),
            message: format!(
                "the request was not complete within {}s",
                limit.as_secs_f64()
            ),
        }),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max_connections: usize, max_per_address: usize) -> ListenerLimits {
        ListenerLimits {
            max_connections,
            max_per_address,
            ..ListenerLimits::default()
        }
    }

    #[test]
    fn caps_count_anonymous_connections_per_address_and_all_in_total() {
        let tracker = Arc::new(Tracker::new(limits(3, 2)));
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let mut first = Tracker::admit(&tracker, a).unwrap();
        let _second = Tracker::admit(&tracker, a).unwrap();
        assert_eq!(
            Tracker::admit(&tracker, a).unwrap_err(),
            Refusal::PerAddress
        );
        // A client certificate frees its address's place, not the total.
        first.certified();
        let _third = Tracker::admit(&tracker, a).unwrap();
        assert_eq!(Tracker::admit(&tracker, b).unwrap_err(), Refusal::Total);
        drop(first);
        assert_eq!(tracker.open(), 2);
        let _fourth = Tracker::admit(&tracker, b).unwrap();
        assert_eq!(tracker.open(), 3);
    }

    #[test]
    fn warnings_are_rate_limited_and_count_what_they_suppressed() {
        let warn = WarnLimiter::default();
        assert_eq!(warn.should_log(), Some(0));
        assert_eq!(warn.should_log(), None);
        assert_eq!(warn.should_log(), None);
        *warn.last.lock().unwrap() = Some(Instant::now() - WARN_EVERY);
        assert_eq!(warn.should_log(), Some(2));
    }

    #[test]
    fn the_file_limit_is_read() {
        let limit = open_file_limit().expect("/proc/self/limits is readable on Linux");
        assert!(limit >= 16, "{limit}");
    }
}
