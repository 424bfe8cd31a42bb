//! Starting the executors: one glommio executor per shard plus the
//! collector, all joined into one channel mesh; and stopping them.
//!
//! `cpu-affinity yes` pins each executor to a core of its own; the default
//! (no) lets the kernel place the threads. On the 2-core box of issue 15,
//! with the client on the same cores, unpinned shards cost less CPU per
//! request (GET P=1: 8.9 against 10.4 µs with one shard, 12.3 against 18.7
//! with two): a pinned shard cannot leave a core the client or another
//! process is busy on, and two pinned shards always pay a cross-core
//! wake-up per mesh message. The glommio copy in tools/vendor/glommio (see its
//! KORA.md) is what every executor runs on: it changes how an executor waits
//! for input (one multishot poll per connection), how it sleeps (one
//! `io_uring_enter`, timers kept armed), and how a peer wakes it (a fence on
//! each side of the handshake instead of a `membarrier` per sleep).
//!
//! Layer: server. The collector sits above the server, so it is not
//! imported here: the caller ([`crate::run`]) hands its executor's main
//! function in as the mesh's last peer.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures_lite::future;
use std::future::Future;

use glommio::channels::channel_mesh::{Full, MeshBuilder};
use glommio::net::TcpListener;
use glommio::{LocalExecutorBuilder, Placement};

use super::connection;
use crate::config::Config;
use crate::coord::mesh::Msg;
use crate::coord::{Admission, Shard};

/// Messages queued per direction between two cores before senders wait.
const MESH_CAPACITY: usize = 1024;
/// We do no direct file I/O, so the executors need little registered
/// memory; staying small keeps us under default memlock limits.
const IO_MEMORY: usize = 512 * 1024;
const SHUTDOWN_POLL: Duration = Duration::from_millis(50);
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// A listening socket on `addr` for this executor: SO_REUSEPORT so every
/// shard can listen on the same port (the kernel spreads connections), and
/// SO_REUSEADDR so a restart right after a shutdown with clients connected
/// does not fail with "Address already in use" while the old connections
/// sit in TIME_WAIT (glommio's own `bind` sets only SO_REUSEPORT).
pub(crate) fn listen(addr: &str) -> io::Result<TcpListener> {
    use std::net::ToSocketAddrs;
    use std::os::fd::IntoRawFd;
    let addr = addr
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "empty address"))?;
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    // SAFETY: the descriptor is a bound, listening TCP socket we own and
    // hand over whole.
    Ok(unsafe { std::os::fd::FromRawFd::from_raw_fd(socket.into_raw_fd()) })
}

/// The main function of the mesh's last peer, the collector's executor.
pub trait PeerMain<F>:
    FnOnce(Config, MeshBuilder<Msg, Full>, Arc<AtomicBool>) -> F + Send + 'static
where
    F: Future<Output = io::Result<()>> + 'static,
{
}

impl<T, F> PeerMain<F> for T
where
    T: FnOnce(Config, MeshBuilder<Msg, Full>, Arc<AtomicBool>) -> F + Send + 'static,
    F: Future<Output = io::Result<()>> + 'static,
{
}

/// Runs the server until SIGINT/SIGTERM or SHUTDOWN, with `collector` as
/// the mesh's last peer. Returns once every executor has stopped.
pub fn run<F: Future<Output = io::Result<()>> + 'static>(
    mut config: Config,
    collector: impl PeerMain<F>,
) -> io::Result<()> {
    crate::alloc::set_background_thread(config.jemalloc_bg_thread);
    let shutdown = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, shutdown.clone())?;
    }
    // Fail early and clearly if the port is taken by a process that did not
    // set SO_REUSEPORT (e.g. redis-server).
    let mut addrs = vec![config.listen_addr()];
    if config.metrics_port != 0 {
        addrs.push(config.metrics_addr());
    }
    for addr in addrs {
        std::net::TcpListener::bind(&addr)
            .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))?;
    }
    config.maxclients = fit_open_files(&config)?;
    let admission = Arc::new(Admission::new(config.maxclients as usize));
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    let n = config.workers;
    let mesh = MeshBuilder::<Msg, _>::full(n + 1, MESH_CAPACITY);
    let mut handles = Vec::with_capacity(n + 1);
    // Executor ids, and so mesh peer ids, follow spawn order: shards first
    // (peer i is shard i), the collector last (peer n).
    for id in 0..n {
        let placement = placement(&config, cores.get(id % cores.len().max(1)));
        let (config, mesh, shutdown, admission) = (
            config.clone(),
            mesh.clone(),
            shutdown.clone(),
            admission.clone(),
        );
        let handle = LocalExecutorBuilder::new(placement)
            .name(&format!("kora-shard-{id}"))
            .io_memory(IO_MEMORY)
            .spawn(move || shard_main(id, config, mesh, shutdown, admission))
            .map_err(|e| io::Error::other(format!("cannot start shard {id}: {e}")))?;
        handles.push((format!("shard {id}"), handle));
    }
    // The collector gets a core of its own when one is free; on a small
    // machine it shares and stays idle between scrapes.
    let placement = placement(&config, cores.get(n));
    let (c_config, c_mesh, c_shutdown) = (config.clone(), mesh.clone(), shutdown.clone());
    handles.push((
        "the collector".to_string(),
        LocalExecutorBuilder::new(placement)
            .name("kora-collector")
            .io_memory(IO_MEMORY)
            .spawn(move || collector(c_config, c_mesh, c_shutdown))
            .map_err(|e| io::Error::other(format!("cannot start collector: {e}")))?,
    ));
    join_all(
        handles,
        &shutdown,
        Duration::from_secs(config.shutdown_timeout),
    )
}

/// Where an executor runs: on `core` with `cpu-affinity yes`, else (or
/// without a core for it) wherever the kernel puts it.
fn placement(config: &Config, core: Option<&core_affinity::CoreId>) -> Placement {
    match core {
        Some(core) if config.cpu_affinity => Placement::Fixed(core.id),
        _ => Placement::Unbound,
    }
}

/// Waits for every executor to stop. Once shutdown has begun, waits at
/// most `timeout`: a core stuck in a long command must not keep the
/// process (and its port) alive, so past the deadline this returns an
/// error naming the cores that did not stop; leaving `main` ends their
/// threads.
fn join_all(
    handles: Vec<(String, glommio::ExecutorJoinHandle<io::Result<()>>)>,
    shutdown: &AtomicBool,
    timeout: Duration,
) -> io::Result<()> {
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let names: Vec<String> = handles.iter().map(|(name, _)| name.clone()).collect();
    for (i, (_, handle)) in handles.into_iter().enumerate() {
        let done = done_tx.clone();
        std::thread::spawn(move || {
            let result = match handle.join() {
                Ok(r) => r,
                Err(e) => Err(io::Error::other(e.to_string())),
            };
            let _ = done.send((i, result));
        });
    }
    let mut running: Vec<bool> = vec![true; names.len()];
    let mut result = Ok(());
    let mut deadline: Option<std::time::Instant> = None;
    while running.iter().any(|r| *r) {
        if deadline.is_none() && shutdown.load(Ordering::SeqCst) {
            deadline = Some(std::time::Instant::now() + timeout);
        }
        let wait = match deadline {
            Some(at) => at.saturating_duration_since(std::time::Instant::now()),
            None => SHUTDOWN_POLL,
        };
        match done_rx.recv_timeout(wait.min(SHUTDOWN_POLL)) {
            Ok((i, r)) => {
                running[i] = false;
                if let Err(e) = r {
                    // One executor failing stops the others.
                    shutdown.store(true, Ordering::SeqCst);
                    result = Err(e);
                }
            }
            Err(_) if deadline.is_some_and(|at| std::time::Instant::now() >= at) => {
                let stuck: Vec<&str> = names
                    .iter()
                    .zip(&running)
                    .filter(|(_, r)| **r)
                    .map(|(n, _)| n.as_str())
                    .collect();
                // `main` logs it and exits non-zero.
                return Err(io::Error::other(format!(
                    "{} did not stop within shutdown-timeout ({} s); exiting anyway",
                    stuck.join(", "),
                    timeout.as_secs()
                )));
            }
            Err(_) => {}
        }
    }
    result
}

/// File descriptors Kora needs besides client connections: each executor's
/// rings and event fds, listeners, /metrics connections, and Redis' margin
/// of 32 for the unexpected.
fn reserved_fds(config: &Config) -> u64 {
    32 + 8 * (config.workers as u64 + 1) + config.metrics_max_connections as u64
}

/// Raises the open-files soft limit to the hard limit and returns the
/// `maxclients` that fits in it, as Redis does at start: a server at its
/// descriptor limit cannot even accept a connection to refuse it, so the
/// clients it admits must leave room for everything else.
fn fit_open_files(config: &Config) -> io::Result<u64> {
    let reserved = reserved_fds(config);
    let wanted = config.maxclients + reserved;
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Ok(config.maxclients);
    }
    let before = lim.rlim_cur;
    if lim.rlim_cur < wanted && lim.rlim_cur < lim.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: lim.rlim_max.min(wanted.max(lim.rlim_cur)),
            rlim_max: lim.rlim_max,
        };
        // SAFETY: as above.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            lim.rlim_cur = raised.rlim_cur;
            eprintln!(
                "kora: open files limit raised from {before} to {}",
                lim.rlim_cur
            );
        }
    }
    let limit = lim.rlim_cur;
    if limit >= wanted {
        return Ok(config.maxclients);
    }
    if limit <= reserved {
        return Err(io::Error::other(format!(
            "the open files limit ({limit}) is too low to start: need more than {reserved} \
             (raise it with `ulimit -n` or LimitNOFILE=)"
        )));
    }
    let fitted = limit - reserved;
    eprintln!(
        "kora: maxclients {} needs {wanted} open files but the limit is {limit}; \
         maxclients lowered to {fitted}",
        config.maxclients
    );
    Ok(fitted)
}

async fn shard_main(
    id: usize,
    config: Config,
    mesh: MeshBuilder<Msg, glommio::channels::channel_mesh::Full>,
    shutdown_flag: Arc<AtomicBool>,
    admission: Arc<Admission>,
) -> io::Result<()> {
    // Before the shard allocates its keyspace: everything this thread
    // allocates from here on is counted in the shard's own arena.
    crate::alloc::bind_shard_arena();
    let (senders, receivers) = mesh
        .join()
        .await
        .map_err(|e| io::Error::other(format!("shard {id} cannot join the mesh: {e}")))?;
    assert_eq!(
        senders.peer_id(),
        id,
        "mesh peer ids follow executor spawn order"
    );
    let shard = Shard::start(
        id,
        config.clone(),
        senders,
        receivers,
        shutdown_flag,
        admission,
    );
    crate::command::scripting::engine::configure(crate::command::scripting::engine::Limits {
        lua_memory: config.lua_memory_limit,
        eval_cache: config.lua_eval_cache_limit,
    });

    let listener = match listen(&config.listen_addr()) {
        Ok(l) => l,
        Err(e) => {
            shard.shutdown().request();
            return Err(io::Error::other(format!(
                "cannot listen on {}: {e}",
                config.listen_addr()
            )));
        }
    };
    crate::coord::spawn_housekeeping(&shard);

    loop {
        let accepted = future::or(async { Some(listener.accept().await) }, async {
            shard.shutdown().wait().await;
            None
        })
        .await;
        match accepted {
            Some(Ok(stream)) => {
                glommio::spawn_local(connection::serve(shard.clone(), stream)).detach();
            }
            // Out of descriptors or similar: back off instead of spinning.
            Some(Err(_)) => glommio::timer::sleep(Duration::from_millis(10)).await,
            None => break,
        }
    }
    drop(listener);
    // Let connections finish the batch they are in, then leave.
    let deadline = std::time::Instant::now() + SHUTDOWN_GRACE;
    while shard.metrics().stats.connections_current.get() > 0
        && std::time::Instant::now() < deadline
    {
        glommio::timer::sleep(Duration::from_millis(10)).await;
    }
    // Peers may still ask us for their in-flight batches for a moment.
    glommio::timer::sleep(Duration::from_millis(50)).await;
    // The process exits: do not free a lazy-free backlog piece by piece.
    shard.db().lazyfree_abandon();
    Ok(())
}
