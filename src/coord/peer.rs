//! Kora as the client of another server (another Kora node or a Redis):
//! MIGRATE's RESTOREs and the cluster's peer PINGs.
//!
//! A [`Peer`] is one glommio `TcpStream` on the core that opened it. Every
//! step takes a timeout and only ever awaits, so a dead or silent peer
//! costs the waiting command its timeout, never the core: the core's other
//! connections run on meanwhile. Replies are read with
//! [`crate::protocol::reply_reader`] under [`ReplyLimits`] (bounded size
//! and nesting), so a misbehaving peer cannot make the core buffer without
//! bound either.
//!
//! MIGRATE keeps its connections in a per-core cache keyed by `host:port`
//! as Redis does (`migrateGetSocket`): at most [`CACHE_ITEMS`] of them,
//! each closed after [`CACHE_IDLE`] without use by a sweep that runs once a
//! second while the cache is not empty. The cache is this core's alone (a
//! thread-local: one executor per thread), so nothing is shared or locked.
//!
//! Peer health (cluster mode): [`spawn_health`] starts, on shard 0 only, one
//! probe task per other node of the topology and a judge. A probe keeps a
//! connection to its node and sends `PING` every `max(cluster-node-timeout
//! / 10, 100 ms)`; any RESP reply (even an error: the node lives) counts.
//! The judge, on the same period, marks a node `Fail` once it has not
//! replied for `cluster-node-timeout`, and `Online` again after its next
//! reply, through [`crate::coord::cluster_update`] (every core's copy at
//! once, only when something changed). Probes follow topology changes:
//! new nodes get one, removed ones stop. No gossip: each node judges for
//! itself what it can reach.
//!
//! Layer: coordination. Imports `protocol` and `cluster` (a leaf).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::rc::Rc;
use std::time::{Duration, Instant};

use futures_lite::{AsyncReadExt, AsyncWriteExt, future};
use glommio::net::TcpStream;

use crate::protocol::reply_reader::{Fed, ReplyReader};
pub use crate::protocol::reply_reader::{Reply, ReplyLimits, encode_command};

/// Most connections MIGRATE keeps per core (Redis'
/// `MIGRATE_SOCKET_CACHE_ITEMS`).
pub const CACHE_ITEMS: usize = 64;
/// A cached connection unused this long is closed (Redis'
/// `MIGRATE_SOCKET_CACHE_TTL`, 10 s).
pub const CACHE_IDLE: Duration = Duration::from_secs(10);
/// Requests are written in pieces of this size, each within the timeout
/// (as Redis writes MIGRATE's RESTOREs), so a large payload to a slow but
/// live peer is not cut off by a timeout meant for one step.
const WRITE_CHUNK: usize = 64 * 1024;
/// The read buffer's usual growth step.
const READ_CHUNK: usize = 16 * 1024;

/// Why a step failed, beside which step it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    /// The timeout passed first.
    TimedOut,
    /// The peer closed the connection (or refused it).
    Closed,
    /// Any other socket error.
    Failed,
    /// The peer sent something that is not RESP2, or too much of it.
    Protocol,
}

/// A failed exchange with a peer; the connection is unusable after any of
/// them except [`PeerError::Address`] (which never had one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerError {
    /// The host is not an address and does not resolve to one (in time).
    Address,
    /// Connecting failed.
    Connect(Why),
    /// Sending failed.
    Write(Why),
    /// Reading a reply failed.
    Read(Why),
}

impl PeerError {
    /// Whether the timeout ran out (Redis retries a MIGRATE once on a
    /// socket error, but not after a timeout).
    pub fn timed_out(&self) -> bool {
        matches!(
            self,
            PeerError::Connect(Why::TimedOut)
                | PeerError::Write(Why::TimedOut)
                | PeerError::Read(Why::TimedOut)
        )
    }
}

fn why(e: &std::io::Error) -> Why {
    use std::io::ErrorKind::*;
    match e.kind() {
        TimedOut | WouldBlock => Why::TimedOut,
        ConnectionRefused | ConnectionReset | ConnectionAborted | BrokenPipe | UnexpectedEof
        | NotConnected => Why::Closed,
        _ => Why::Failed,
    }
}

/// Runs `fut` for at most `timeout`; None when the time ran out first.
pub async fn within<T>(timeout: Duration, fut: impl std::future::Future<Output = T>) -> Option<T> {
    future::or(async { Some(fut.await) }, async {
        glommio::timer::Timer::new(timeout).await;
        None
    })
    .await
}

/// One connection to another server (see the module docs).
pub struct Peer {
    stream: TcpStream,
    /// Bytes read and not yet used are `buf[start..]`.
    buf: Vec<u8>,
    start: usize,
    reader: ReplyReader,
    /// The database the last SELECT on this connection chose, if known
    /// (MIGRATE sends SELECT only when it differs, as Redis'
    /// `last_dbid`).
    pub selected_db: Option<i64>,
    last_used: Instant,
}

/// `host` as socket addresses: an IP literal at once; a name is resolved
/// on glommio's blocking thread (getaddrinfo blocks), within `timeout`.
async fn resolve(host: &[u8], port: u16, timeout: Duration) -> Result<SocketAddr, PeerError> {
    let host = std::str::from_utf8(host).map_err(|_| PeerError::Address)?;
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, port));
    }
    if host.is_empty() {
        return Err(PeerError::Address);
    }
    let name = host.to_string();
    let lookup = glommio::executor().spawn_blocking(move || {
        (name.as_str(), port)
            .to_socket_addrs()
            .ok()
            .and_then(|mut a| a.next())
    });
    match within(timeout, lookup).await {
        Some(Some(addr)) => Ok(addr),
        // A name that does not resolve in time does not resolve.
        Some(None) | None => Err(PeerError::Address),
    }
}

impl Peer {
    /// Connects to `host:port` within `timeout` (a host name is resolved
    /// first, within the same timeout), with TCP_NODELAY.
    pub async fn connect(host: &[u8], port: u16, timeout: Duration) -> Result<Peer, PeerError> {
        let timeout = timeout.max(Duration::from_millis(1));
        let addr = resolve(host, port, timeout).await?;
        let stream = match within(timeout, TcpStream::connect_timeout(addr, timeout)).await {
            None => return Err(PeerError::Connect(Why::TimedOut)),
            Some(Err(e)) => {
                let e: std::io::Error = e.into();
                return Err(PeerError::Connect(why(&e)));
            }
            Some(Ok(s)) => s,
        };
        let _ = stream.set_nodelay(true);
        Ok(Peer {
            stream,
            buf: Vec::new(),
            start: 0,
            reader: ReplyReader::new(ReplyLimits::default()),
            selected_db: None,
            last_used: Instant::now(),
        })
    }

    /// Writes `bytes` (one or more whole commands), each 64 KiB piece
    /// within `timeout`.
    pub async fn send(&mut self, bytes: &[u8], timeout: Duration) -> Result<(), PeerError> {
        self.last_used = Instant::now();
        for piece in bytes.chunks(WRITE_CHUNK) {
            match within(timeout, self.stream.write_all(piece)).await {
                None => return Err(PeerError::Write(Why::TimedOut)),
                Some(Err(e)) => return Err(PeerError::Write(why(&e))),
                Some(Ok(())) => {}
            }
        }
        Ok(())
    }

    /// Reads the next reply; each read from the socket within `timeout`
    /// (so a large reply that keeps arriving is not cut off).
    pub async fn read_reply(&mut self, timeout: Duration) -> Result<Reply, PeerError> {
        self.last_used = Instant::now();
        loop {
            let need = match self.reader.feed(&self.buf[self.start..]) {
                Err(_) => return Err(PeerError::Read(Why::Protocol)),
                Ok(Fed::Reply { reply, consumed }) => {
                    self.start += consumed;
                    if self.start == self.buf.len() {
                        self.buf.clear();
                        self.start = 0;
                    }
                    return Ok(reply);
                }
                Ok(Fed::More { consumed, need }) => {
                    self.start += consumed;
                    need
                }
            };
            // Keep the unused bytes at the front, then read at least as
            // much as the reply still needs.
            if self.start > 0 {
                self.buf.drain(..self.start);
                self.start = 0;
            }
            let have = self.buf.len();
            self.buf
                .resize(have + READ_CHUNK.max(need.saturating_sub(have)), 0);
            let read = within(timeout, self.stream.read(&mut self.buf[have..])).await;
            let n = match read {
                None => Err(PeerError::Read(Why::TimedOut)),
                Some(Ok(0)) => Err(PeerError::Read(Why::Closed)),
                Some(Ok(n)) => Ok(n),
                Some(Err(e)) => Err(PeerError::Read(why(&e))),
            };
            match n {
                Ok(n) => self.buf.truncate(have + n),
                Err(e) => {
                    self.buf.truncate(have);
                    return Err(e);
                }
            }
        }
    }

    /// Sends one command and reads its reply.
    pub async fn call(&mut self, args: &[&[u8]], timeout: Duration) -> Result<Reply, PeerError> {
        let mut request = Vec::new();
        encode_command(&mut request, args);
        self.send(&request, timeout).await?;
        self.read_reply(timeout).await
    }
}

/// This core's MIGRATE connections by `host:port`, with whether the idle
/// sweep is running.
type Cache = (Vec<(Box<[u8]>, Peer)>, bool);

thread_local! {
    /// This core's connection cache (see the module docs).
    static CACHE: RefCell<Cache> = const { RefCell::new((Vec::new(), false)) };
}

/// The cache key of `host` and `port` (the arguments as given, as Redis).
pub fn cache_name(host: &[u8], port: &[u8]) -> Box<[u8]> {
    [host, b":", port].concat().into()
}

/// Takes this core's cached connection named `name` out of the cache (the
/// caller gives it back with [`cache_put`] when done), or None.
pub fn cache_take(name: &[u8]) -> Option<Peer> {
    CACHE.with(|c| {
        let mut c = c.borrow_mut();
        let at = c.0.iter().position(|(n, _)| &n[..] == name)?;
        Some(c.0.swap_remove(at).1)
    })
}

/// Puts a connection (back) into this core's cache under `name`. When the
/// cache is full the least recently used one is closed (Redis drops a
/// random one). Starts the idle sweep if it is not running.
pub fn cache_put(name: Box<[u8]>, peer: Peer) {
    let start_sweep = CACHE.with(|c| {
        let mut c = c.borrow_mut();
        // Two MIGRATEs to one target at once each had a connection: keep
        // the later one.
        c.0.retain(|(n, _)| *n != name);
        if c.0.len() >= CACHE_ITEMS {
            let oldest = (0..c.0.len()).min_by_key(|&i| c.0[i].1.last_used);
            if let Some(i) = oldest {
                c.0.swap_remove(i);
            }
        }
        c.0.push((name, peer));
        !std::mem::replace(&mut c.1, true)
    });
    if start_sweep {
        glommio::spawn_local(sweep()).detach();
    }
}

/// Drops the cached connection named `name`, if any.
pub fn cache_forget(name: &[u8]) {
    CACHE.with(|c| c.borrow_mut().0.retain(|(n, _)| &n[..] != name));
}

/// How many connections this core's cache holds.
pub fn cache_len() -> usize {
    CACHE.with(|c| c.borrow().0.len())
}

impl Peer {
    /// Whether the peer closed its end (or the socket failed) while the
    /// connection sat unused: a look at the socket that never waits.
    fn hung_up(&self) -> bool {
        use std::os::fd::AsRawFd;
        let mut byte = 0u8;
        // SAFETY: a one-byte peek into a local buffer on our own socket.
        let n = unsafe {
            libc::recv(
                self.stream.as_raw_fd(),
                (&mut byte as *mut u8).cast(),
                1,
                libc::MSG_PEEK | libc::MSG_DONTWAIT,
            )
        };
        n == 0
            || (n < 0 && std::io::Error::last_os_error().kind() != std::io::ErrorKind::WouldBlock)
    }
}

/// Once a second, closes cached connections idle for [`CACHE_IDLE`], and
/// those whose peer has closed its end (Redis keeps them until idle; a
/// restarted target's port is freed sooner this way, and the next MIGRATE
/// opens a new one without a failed try); ends when the cache is empty.
async fn sweep() {
    loop {
        glommio::timer::sleep(Duration::from_secs(1)).await;
        let empty = CACHE.with(|c| {
            let mut c = c.borrow_mut();
            c.0.retain(|(_, p)| p.last_used.elapsed() < CACHE_IDLE && !p.hung_up());
            if c.0.is_empty() {
                c.1 = false;
            }
            c.0.is_empty()
        });
        if empty {
            return;
        }
    }
}

// ---- Peer health (cluster mode) ----

use super::Shard;
use crate::cluster::{Health, NodeId};

/// Shortest PING period, however small `cluster-node-timeout` is.
const MIN_PING_PERIOD: Duration = Duration::from_millis(100);

/// The PING period for a node timeout: a tenth of it, at least 100 ms.
pub fn ping_period(node_timeout: Duration) -> Duration {
    (node_timeout / 10).max(MIN_PING_PERIOD)
}

/// What a probe and the judge share (both on shard 0).
struct Probe {
    /// Where the node is (a new address starts a new probe).
    host: String,
    port: u16,
    /// When the node last answered (or the probe started: a node gets one
    /// node timeout of grace).
    last_reply: Cell<Instant>,
    /// The current node timeout (CONFIG SET may change it).
    timeout: Cell<Duration>,
    /// Set when the node left the topology: the probe ends.
    stop: Cell<bool>,
}

/// Starts the peer checks (see the module docs) when this is shard 0 of a
/// node in cluster mode; does nothing otherwise.
pub fn spawn_health(shard: &Rc<Shard>) {
    if shard.id != 0 || !shard.cluster_enabled() {
        return;
    }
    let s = shard.clone();
    glommio::spawn_local(async move { judge(s).await }).detach();
}

/// The judge: keeps one probe per other node and turns silence into
/// `Fail` and replies into `Online`.
async fn judge(shard: Rc<Shard>) {
    let mut probes: HashMap<NodeId, Rc<Probe>> = HashMap::new();
    while !shard.shutdown.is_shutting_down() {
        let (topology, me, timeout) = {
            let c = shard.cluster();
            (
                c.topology.clone(),
                c.me,
                Duration::from_millis(c.node_timeout_ms.max(1)),
            )
        };
        glommio::timer::sleep(ping_period(timeout)).await;
        // Follow the topology: a probe per other node, at its address.
        probes.retain(|id, p| {
            let keep = topology.index_of(id).is_some_and(|i| {
                let n = &topology.nodes[i];
                Some(i) != me && n.host == p.host && n.port == p.port
            });
            if !keep {
                p.stop.set(true);
            }
            keep
        });
        for (i, node) in topology.nodes.iter().enumerate() {
            if Some(i) == me || probes.contains_key(&node.id) {
                continue;
            }
            let p = Rc::new(Probe {
                host: node.host.clone(),
                port: node.port,
                last_reply: Cell::new(Instant::now()),
                timeout: Cell::new(timeout),
                stop: Cell::new(false),
            });
            probes.insert(node.id, p.clone());
            glommio::spawn_local(probe(shard.clone(), p)).detach();
        }
        let changes: Vec<(NodeId, Health)> = {
            let c = shard.cluster();
            probes
                .iter()
                .filter_map(|(id, p)| {
                    p.timeout.set(timeout);
                    let now = if p.last_reply.get().elapsed() > timeout {
                        Health::Fail
                    } else {
                        Health::Online
                    };
                    let was = c.health.get(id).copied().unwrap_or_default();
                    (now != was).then_some((*id, now))
                })
                .collect()
        };
        if !changes.is_empty() {
            super::cluster_update(&shard, move |state| {
                for &(id, health) in &changes {
                    match health {
                        Health::Online => state.health.remove(&id),
                        Health::Fail => state.health.insert(id, health),
                    };
                }
            })
            .await;
        }
    }
    for p in probes.values() {
        p.stop.set(true);
    }
}

/// One node's probe: PING every period over a kept connection (a new one
/// after any failure), noting each reply.
async fn probe(shard: Rc<Shard>, p: Rc<Probe>) {
    let mut conn: Option<Peer> = None;
    while !p.stop.get() && !shard.shutdown.is_shutting_down() {
        let timeout = p.timeout.get();
        if conn.is_none() {
            conn = Peer::connect(p.host.as_bytes(), p.port, timeout).await.ok();
        }
        if let Some(c) = conn.as_mut() {
            match c.call(&[b"PING"], timeout).await {
                Ok(_) => p.last_reply.set(Instant::now()),
                Err(_) => conn = None,
            }
        }
        glommio::timer::sleep(ping_period(timeout)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    fn run<F: std::future::Future<Output = ()> + 'static>(f: impl FnOnce() -> F + Send + 'static) {
        glommio::LocalExecutorBuilder::default()
            .spawn(f)
            .unwrap()
            .join()
            .unwrap();
    }

    /// A server that answers each request it reads with `answer`.
    fn fake(answer: &'static [u8], pause: Duration) -> u16 {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for s in l.incoming() {
                let mut s = s.unwrap();
                std::thread::spawn(move || {
                    let mut b = [0u8; 4096];
                    while let Ok(n) = s.read(&mut b) {
                        if n == 0 {
                            return;
                        }
                        std::thread::sleep(pause);
                        // A byte at a time: the reader must put it together.
                        for byte in answer {
                            if s.write_all(&[*byte]).is_err() {
                                return;
                            }
                        }
                    }
                });
            }
        });
        port
    }

    #[test]
    fn call_reads_a_reply_in_pieces() {
        let port = fake(b"*2\r\n$3\r\nabc\r\n:7\r\n", Duration::ZERO);
        run(move || async move {
            let mut p = Peer::connect(b"127.0.0.1", port, Duration::from_secs(2))
                .await
                .unwrap();
            for _ in 0..3 {
                let r = p.call(&[b"PING"], Duration::from_secs(2)).await.unwrap();
                assert_eq!(
                    r,
                    Reply::Array(Some(vec![
                        Reply::Bulk(Some(b"abc".to_vec())),
                        Reply::Int(7)
                    ]))
                );
            }
            let p = Peer::connect(b"localhost", port, Duration::from_secs(2)).await;
            assert!(p.is_ok());
        });
    }

    #[test]
    fn silence_dead_ports_and_bad_names_fail_in_time() {
        let silent = fake(b"+PONG\r\n", Duration::from_secs(5));
        let dead = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        run(move || async move {
            let t = Instant::now();
            let mut p = Peer::connect(b"127.0.0.1", silent, Duration::from_secs(1))
                .await
                .unwrap();
            let r = p.call(&[b"PING"], Duration::from_millis(200)).await;
            assert_eq!(r, Err(PeerError::Read(Why::TimedOut)));
            assert!(t.elapsed() < Duration::from_secs(2));
            let r = Peer::connect(b"127.0.0.1", dead, Duration::from_secs(1)).await;
            assert_eq!(r.err(), Some(PeerError::Connect(Why::Closed)));
            let r = Peer::connect(b"no such host", 1, Duration::from_secs(1)).await;
            assert_eq!(r.err(), Some(PeerError::Address));
            let r = Peer::connect(b"", 1, Duration::from_secs(1)).await;
            assert_eq!(r.err(), Some(PeerError::Address));
        });
    }

    #[test]
    fn pings_come_every_tenth_of_the_node_timeout_at_least_100ms() {
        assert_eq!(
            ping_period(Duration::from_secs(15)),
            Duration::from_millis(1500)
        );
        assert_eq!(
            ping_period(Duration::from_millis(500)),
            Duration::from_millis(100)
        );
        assert_eq!(
            ping_period(Duration::from_millis(1)),
            Duration::from_millis(100)
        );
    }

    #[test]
    fn the_cache_keeps_one_per_name_and_forgets() {
        let port = fake(b"+PONG\r\n", Duration::ZERO);
        run(move || async move {
            let name = cache_name(b"127.0.0.1", port.to_string().as_bytes());
            assert!(cache_take(&name).is_none());
            for _ in 0..2 {
                let p = Peer::connect(b"127.0.0.1", port, Duration::from_secs(1))
                    .await
                    .unwrap();
                cache_put(name.clone(), p);
            }
            assert_eq!(cache_len(), 1);
            let mut p = cache_take(&name).unwrap();
            assert_eq!(cache_len(), 0);
            let r = p.call(&[b"PING"], Duration::from_secs(1)).await.unwrap();
            assert_eq!(r, Reply::Status(b"PONG".to_vec()));
            cache_put(name.clone(), p);
            cache_forget(&name);
            assert_eq!(cache_len(), 0);
        });
    }
}
