//! Starting the executors: one pinned glommio executor per shard plus the
//! collector, all joined into one channel mesh; and stopping them.
//!
//! Layer: server. Imports `collector` to start its executor (a break of the
//! layering, see [`crate::shard`]).

use std::io;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures_lite::future;
use glommio::channels::channel_mesh::MeshBuilder;
use glommio::net::TcpListener;
use glommio::{LocalExecutorBuilder, Placement};

use super::connection;
use super::{Admission, Shard};
use crate::collector;
use crate::config::Config;
use crate::coord::mesh::{Msg, Node};

/// Messages queued per direction between two cores before senders wait.
const MESH_CAPACITY: usize = 1024;
/// We do no direct file I/O, so the executors need little registered
/// memory; staying small keeps us under default memlock limits.
const IO_MEMORY: usize = 512 * 1024;
const SHUTDOWN_POLL: Duration = Duration::from_millis(50);
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// Pause between two lazy-free slices: long enough for the executor to
/// park and poll I/O, short enough that freeing keeps most of an idle core.
const LAZYFREE_PAUSE: Duration = Duration::from_micros(50);
/// How often a shard looks whether it is over its memory budget when no
/// write has made it evict.
const EVICT_TICK: Duration = Duration::from_millis(10);

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

/// Runs the server until SIGINT/SIGTERM or SHUTDOWN. Returns once every
/// executor has stopped.
pub fn run(config: Config) -> io::Result<()> {
    let shutdown = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, shutdown.clone())?;
    }
    run_with_flag(config, shutdown)
}

pub fn run_with_flag(mut config: Config, shutdown: Arc<AtomicBool>) -> io::Result<()> {
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
        let placement = match cores.get(id % cores.len().max(1)) {
            Some(core) => Placement::Fixed(core.id),
            None => Placement::Unbound,
        };
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
    let placement = match cores.get(n) {
        Some(core) => Placement::Fixed(core.id),
        None => Placement::Unbound,
    };
    let (c_config, c_mesh, c_shutdown) = (config.clone(), mesh.clone(), shutdown.clone());
    handles.push((
        "the collector".to_string(),
        LocalExecutorBuilder::new(placement)
            .name("kora-collector")
            .io_memory(IO_MEMORY)
            .spawn(move || collector::collector_main(c_config, c_mesh, c_shutdown))
            .map_err(|e| io::Error::other(format!("cannot start collector: {e}")))?,
    ));
    join_all(
        handles,
        &shutdown,
        Duration::from_secs(config.shutdown_timeout),
    )
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
    let (senders, receivers) = mesh
        .join()
        .await
        .map_err(|e| io::Error::other(format!("shard {id} cannot join the mesh: {e}")))?;
    assert_eq!(
        senders.peer_id(),
        id,
        "mesh peer ids follow executor spawn order"
    );
    let node = Node::new(senders);
    let shard = Rc::new(Shard::new(
        id,
        config.clone(),
        node.clone(),
        shutdown_flag,
        admission,
    ));
    let serving = shard.clone();
    node.listen(
        receivers,
        Rc::new(move |from, req_id, req| serving.admit_request(from, req_id, req)),
    );

    let listener = match listen(&config.listen_addr()) {
        Ok(l) => l,
        Err(e) => {
            shard.shutdown_flag.store(true, Ordering::SeqCst);
            return Err(io::Error::other(format!(
                "cannot listen on {}: {e}",
                config.listen_addr()
            )));
        }
    };
    spawn_housekeeping(&shard);

    loop {
        let accepted = future::or(async { Some(listener.accept().await) }, async {
            let _ = shard.shutdown.acquire(1).await;
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
    while shard.metrics.stats.connections_current.get() > 0 && std::time::Instant::now() < deadline
    {
        glommio::timer::sleep(Duration::from_millis(10)).await;
    }
    // Peers may still ask us for their in-flight batches for a moment.
    glommio::timer::sleep(Duration::from_millis(50)).await;
    // The process exits: do not free a lazy-free backlog piece by piece.
    shard.db.borrow_mut().lazyfree_abandon();
    Ok(())
}

/// Timers of a shard: shutdown polling, active expiry, hot-key decay.
fn spawn_housekeeping(shard: &Rc<Shard>) {
    let s = shard.clone();
    glommio::spawn_local(async move {
        loop {
            glommio::timer::sleep(SHUTDOWN_POLL).await;
            if s.shutdown_flag.load(Ordering::Relaxed) {
                s.shutting_down.set(true);
                s.shutdown.close();
                break;
            }
        }
    })
    .detach();

    // Transaction locks: requests queued behind a released lock run once
    // this core's own waiting connections had their turn.
    let s = shard.clone();
    glommio::spawn_local(async move {
        while s.tx.drain_later.acquire(1).await.is_ok() {
            s.drain_deferred();
        }
    })
    .detach();

    let s = shard.clone();
    glommio::spawn_local(async move {
        while !s.shutting_down.get() {
            glommio::timer::sleep(Duration::from_millis(100)).await;
            s.metrics.ops_rate.sample(s.metrics.total_calls());
        }
    })
    .detach();

    let s = shard.clone();
    glommio::spawn_local(async move {
        let period = Duration::from_millis(s.config.active_expire_ms.max(1));
        while !s.shutting_down.get() {
            glommio::timer::sleep(period).await;
            // A transaction holding this shard sees its keys as of its
            // start: no expiry cycle in between.
            if !s.tx.blocks_current() {
                s.db.borrow_mut().active_expire(16);
            }
        }
    })
    .detach();

    // Eviction (src/store/evict.rs): every EVICT_TICK, a shard over its
    // share of maxmemory evicts in slices of the tenacity time (500 µs by
    // default), sleeping between slices like lazy free so the core keeps
    // serving its clients, until it is back under budget. This is what
    // brings usage down after CONFIG SET maxmemory without any traffic.
    // Not while a transaction holds the shard or a multi-key command holds
    // keys here: they see their keys as of their start, as with expiry.
    let s = shard.clone();
    glommio::spawn_local(async move {
        while !s.shutting_down.get() {
            glommio::timer::sleep(EVICT_TICK).await;
            // Under budget, `make_room` is one comparison (and ends the
            // "over budget since" clock of INFO).
            while !s.shutting_down.get() && !s.tx.blocks_current() && s.keys.is_empty() {
                let outcome = {
                    let mut db = s.db.borrow_mut();
                    if db.budget() == 0 {
                        break;
                    }
                    db.refresh_clock();
                    db.make_room()
                };
                if outcome != crate::store::evict::Outcome::Running {
                    break;
                }
                glommio::timer::sleep(LAZYFREE_PAUSE).await;
            }
        }
    })
    .detach();

    // Lazy free (UNLINK, FLUSH* ASYNC): parked while the queue is empty;
    // otherwise one bounded slice, then a short sleep so that the executor
    // polls I/O and runs this core's connections before the next slice (a
    // plain yield would not: glommio reaps I/O only once its task queues
    // are empty or its 100 ms preemption timer fires).
    let s = shard.clone();
    glommio::spawn_local(async move {
        loop {
            let queued = future::or(
                future::poll_fn(|cx| {
                    if s.db.borrow_mut().lazyfree_idle(cx.waker()) {
                        std::task::Poll::Pending
                    } else {
                        std::task::Poll::Ready(true)
                    }
                }),
                async {
                    let _ = s.shutdown.acquire(1).await;
                    false
                },
            )
            .await;
            if !queued {
                break;
            }
            while !s.shutting_down.get()
                && s.db.borrow_mut().lazyfree_slice(
                    crate::store::lazyfree::SLICE_ELEMENTS,
                    crate::store::lazyfree::SLICE_TIME,
                )
            {
                glommio::timer::sleep(LAZYFREE_PAUSE).await;
            }
            if s.shutting_down.get() {
                break;
            }
        }
    })
    .detach();

    let s = shard.clone();
    glommio::spawn_local(async move {
        // Short ticks so that a CONFIG SET of the interval applies within
        // 100 ms instead of after the old interval.
        let mut last_decay = std::time::Instant::now();
        while !s.shutting_down.get() {
            let period = Duration::from_millis(s.hotkeys_decay_ms.get().max(1));
            glommio::timer::sleep(period.min(Duration::from_millis(100))).await;
            if last_decay.elapsed() >= period {
                s.db.borrow_mut().hot.decay();
                last_decay = std::time::Instant::now();
            }
        }
    })
    .detach();
}
