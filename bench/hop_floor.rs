//! What one cross-core hop costs on this machine, below everything Kora
//! adds on top: the floor that the two-shard rows of `bench/compare.sh`
//! stand on. Run with `cargo bench --bench hop_floor [-- ROUNDS]`.
//!
//! Three measurements, each between two threads pinned to the first two
//! cores:
//!
//! - `line`: one cache line passed back and forth (two threads spinning on
//!   an atomic each): the machine's own price of moving a line between
//!   the two cores, which no software removes.
//! - `batch here`: a batch of K GETs run on the thread that built it (a
//!   real `Db` of 100k keys, 64-byte values, GET's op from the command
//!   table), as a connection runs the commands of its own shard.
//! - `batch hop`: the same batch sent as Kora's mesh message
//!   (`Msg::Request` with an `OpBatch`) over a glommio channel mesh to an
//!   executor on the other core, which runs it against its own `Db` and
//!   answers with the batch (`Msg::Response`); the sender waits for the
//!   answer before the next round, as a P=1 client makes its connection
//!   do. Once with both executors spinning between messages and once with
//!   both parking, as Kora's shards do when they have nothing else to run
//!   (the difference is the sleep and wake-up of an executor). Besides
//!   the round trip's wall time it prints the process's CPU time and
//!   voluntary context switches per round trip.
//!
//! With both spinning the round trip is the hop's latency without a sleep
//! (its CPU time then counts the spinning too); with both parking the CPU
//! time is what a foreign batch costs a two-shard server whose cores have
//! nothing else to run, less the socket work, which is the same either
//! way. The README's performance chapter has this VM's numbers.

use std::hint::black_box;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use glommio::channels::channel_mesh::MeshBuilder;
use glommio::{LocalExecutorBuilder, Placement};
use kora::command::table::{Kind, lookup};
use kora::coord::mesh::{Msg, Op, OpBatch, Request, Response};
use kora::metrics::{HotKeys, ShardStats};
use kora::protocol::Args;
use kora::store::{Db, Ttl};

const KEYS: u64 = 100_000;

fn key(i: u64) -> [u8; 16] {
    let mut k = *b"key:000000000000";
    let mut v = i;
    for b in k[4..].iter_mut().rev() {
        *b = b'0' + (v % 10) as u8;
        v /= 10;
    }
    k
}

fn filled() -> Db {
    let mut db = Db::new(Rc::new(ShardStats::default()), HotKeys::new(32, true), 7);
    for i in 0..KEYS {
        db.set_string(&key(i), &[b'v'; 64], Ttl::Clear);
    }
    db
}

/// GET's shard-side op, as a connection puts it into a batch.
fn get_op() -> Op {
    let spec = lookup(b"GET").expect("GET in the command table");
    let Kind::Keyed(handler) = spec.kind else {
        panic!("GET runs on the shard owning its key");
    };
    spec.op(handler)
}

/// Cuts the next `k` GETs of a stride through the keys into `batch`.
fn fill(batch: &mut OpBatch, k: usize, next: &mut u64) {
    let op = get_op();
    batch.clear_commands();
    batch.replies.clear();
    for _ in 0..k {
        *next = (*next + 7919) % KEYS;
        batch.push(op, [&b"GET"[..], &key(*next)].into_iter());
    }
}

/// Runs every command of `batch` against `db` into its replies, as a
/// shard's `exec_ops` does (without its memory and key-lock checks).
fn run(db: &mut Db, batch: &mut OpBatch) {
    for &(op, first, count) in &batch.ops {
        let ranges = &batch.ranges[first as usize..(first + count) as usize];
        (op.handler)(db, &Args::new(&batch.data, ranges), &mut batch.replies.buf);
        batch.replies.seal();
    }
}

/// (utime + stime in ns, voluntary context switches) of the process.
fn usage() -> (u64, u64) {
    // SAFETY: getrusage only writes the struct it is given.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let ns = |t: libc::timeval| t.tv_sec as u64 * 1_000_000_000 + t.tv_usec as u64 * 1_000;
    (ns(u.ru_utime) + ns(u.ru_stime), u.ru_nvcsw as u64)
}

type Cores = (core_affinity::CoreId, core_affinity::CoreId);

/// The first two cores, read before any thread is pinned (a pinned
/// thread's own mask holds one).
fn cores() -> Cores {
    let ids = core_affinity::get_core_ids().unwrap_or_default();
    assert!(ids.len() >= 2, "hop_floor needs two cores");
    (ids[0], ids[1])
}

/// ns per round trip of one cache line between the two cores.
fn line((a, b): Cores, rounds: u64) -> f64 {
    let ping = Arc::new(AtomicU64::new(0));
    let pong = Arc::new(AtomicU64::new(0));
    let (ping2, pong2) = (ping.clone(), pong.clone());
    let peer = std::thread::spawn(move || {
        core_affinity::set_for_current(b);
        for i in 1..=rounds {
            while ping2.load(Ordering::Acquire) != i {
                std::hint::spin_loop();
            }
            pong2.store(i, Ordering::Release);
        }
    });
    core_affinity::set_for_current(a);
    // Both threads running before the clock starts.
    std::thread::sleep(Duration::from_millis(10));
    let t0 = Instant::now();
    for i in 1..=rounds {
        ping.store(i, Ordering::Release);
        while pong.load(Ordering::Acquire) != i {
            std::hint::spin_loop();
        }
    }
    let ns = t0.elapsed().as_nanos() as f64 / rounds as f64;
    peer.join().expect("the line peer");
    ns
}

/// ns per batch of `k` GETs run where it was built.
fn here((a, _): Cores, k: usize, rounds: u64) -> f64 {
    core_affinity::set_for_current(a);
    let mut db = filled();
    let mut batch = OpBatch::default();
    let mut next = 0;
    let t0 = Instant::now();
    for _ in 0..rounds {
        fill(&mut batch, k, &mut next);
        run(&mut db, &mut batch);
        black_box(&batch.replies.buf);
    }
    t0.elapsed().as_nanos() as f64 / rounds as f64
}

/// How the answering executor waits for the next message.
#[derive(Clone, Copy, Debug)]
enum Waiting {
    Spins,
    Parks,
}

impl Waiting {
    /// An executor on `core` that waits this way.
    fn executor(self, core: core_affinity::CoreId, name: &str) -> LocalExecutorBuilder {
        let builder = LocalExecutorBuilder::new(Placement::Fixed(core.id)).name(name);
        match self {
            Waiting::Spins => builder.spin_before_park(Duration::from_secs(1)),
            Waiting::Parks => builder,
        }
    }
}

/// (wall ns, CPU ns, voluntary context switches) per round trip of a batch
/// of `k` GETs to the other core and back.
fn hop((a, b): Cores, k: usize, waiting: Waiting, rounds: u64) -> (f64, f64, f64) {
    let mesh = MeshBuilder::<Msg, _>::full(2, 16);
    let peer_mesh = mesh.clone();
    let peer = waiting
        .executor(b, "hop-peer")
        .spawn(move || async move {
            let (senders, receivers) = peer_mesh.join().await.expect("the mesh");
            // Mesh ids follow the order of joining.
            let asker = 1 - senders.peer_id();
            let mut db = filled();
            while let Ok(Some(Msg::Request {
                from,
                id,
                req: Request::Exec(mut batch),
            })) = receivers.recv_from(asker).await
            {
                run(&mut db, &mut batch);
                let resp = Msg::Response {
                    id,
                    resp: Response::Exec(batch),
                };
                if senders.send_to(from, resp).await.is_err() {
                    break;
                }
            }
        })
        .expect("the answering executor");
    let asker = waiting
        .executor(a, "hop-asker")
        .spawn(move || async move {
            let (senders, receivers) = mesh.join().await.expect("the mesh");
            let (me, peer) = (senders.peer_id(), 1 - senders.peer_id());
            let mut batch = OpBatch::default();
            let mut next = 0;
            let round = |batch: OpBatch| async {
                let req = Msg::Request {
                    from: me,
                    id: 0,
                    req: Request::Exec(batch),
                };
                assert!(senders.send_to(peer, req).await.is_ok(), "the peer is gone");
                match receivers.recv_from(peer).await {
                    Ok(Some(Msg::Response {
                        resp: Response::Exec(batch),
                        ..
                    })) => batch,
                    _ => panic!("no answer"),
                }
            };
            // Warm both sides (the peer fills its Db before it answers).
            for _ in 0..1000 {
                fill(&mut batch, k, &mut next);
                batch = round(batch).await;
            }
            let (cpu0, csw0) = usage();
            let t0 = Instant::now();
            for _ in 0..rounds {
                fill(&mut batch, k, &mut next);
                batch = round(batch).await;
                assert_eq!(batch.replies.ends.len(), k);
            }
            let wall = t0.elapsed().as_nanos() as f64;
            let (cpu1, csw1) = usage();
            drop(senders);
            let n = rounds as f64;
            (wall / n, (cpu1 - cpu0) as f64 / n, (csw1 - csw0) as f64 / n)
        })
        .expect("the asking executor");
    let out = asker.join().expect("the asking executor");
    peer.join().expect("the answering executor");
    out
}

fn main() {
    // `cargo bench` passes `--bench`; a number among the arguments is
    // the round count.
    let rounds = std::env::args()
        .filter_map(|a| a.parse::<u64>().ok())
        .next()
        .unwrap_or(200_000);
    let cores = cores();
    println!("hop_floor: {rounds} rounds, cores 0 and 1");
    println!("line round trip: {:.0} ns", line(cores, rounds * 5));
    for k in [1, 8] {
        println!("{k} GET(s), run here: {:.0} ns", here(cores, k, rounds));
        for waiting in [Waiting::Spins, Waiting::Parks] {
            let (wall, cpu, csw) = hop(cores, k, waiting, rounds);
            let how = match waiting {
                Waiting::Spins => "both spinning",
                Waiting::Parks => "both parking",
            };
            println!(
                "{k} GET(s), hop, {how}: {wall:.0} ns round trip, {cpu:.0} ns CPU, \
                 {csw:.2} voluntary context switches per round trip"
            );
        }
    }
}
