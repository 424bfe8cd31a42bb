//! One client connection: read, parse every complete command, run local
//! ones inline, send one batch per other shard over the mesh, reassemble
//! replies in request order and write them with one write.
//!
//! Before the commands of a read run, they are parsed ahead and the
//! keyspace memory of their local keys is prefetched in one go
//! (`Prepared`, `Db::prefetch_keys`), so that a pipelined batch's cache
//! misses overlap; the main loop then reuses that parse.
//!
//! Layer: server. May import every layer below: `protocol`, `metrics`,
//! `store`, coordination (`Shard`, the mesh) and `command`.

use std::rc::Rc;

use futures_lite::{AsyncReadExt, AsyncWriteExt, future};
use glommio::net::TcpStream;

use super::transaction;
use crate::command::conn::{ClientState, Flow, ReplyMode};
use crate::command::transaction::unwatch_all;
use crate::command::{Args, CommandSpec, Conn, Kind, auth, lookup, slowlog, wrong_arity};
use crate::coord::Shard;
use crate::coord::mesh::{OpBatch, ReplyBatch, Response, ResponseFuture};
use crate::coord::{ClientInfo, Op};
use crate::metrics::CommandTimer;
use crate::protocol::parser::{ArgRange, Parsed, parse_command_with};
use crate::protocol::reply::Resp;

/// The read buffer's usual size, and the most read at once while it is
/// small. A command larger than the buffer grows it only as its bytes
/// arrive (see `run`).
const READ_CHUNK: usize = 16 * 1024;
/// How far ahead of the bytes that have arrived the read buffer grows for
/// a large command: a 32-byte header declaring a 512 MB argument costs
/// this much, not 512 MB.
const READ_AHEAD: usize = 1 << 20;
/// A read buffer grown past this for a large command is given back once
/// that command has run.
const READ_KEEP: usize = 256 * 1024;
/// Replies are written once this much has accumulated, so a huge pipeline
/// does not buffer all of its replies.
const WRITE_THRESHOLD: usize = 256 * 1024;
/// Most input one connection takes without waiting for more before it lets
/// the other connections of its core in: a client that keeps its socket
/// full (a flood of pipelined commands whose replies it reads at once)
/// would otherwise never make its task wait, and glommio runs other tasks,
/// and reaps the core's I/O, only between runs of its task queue. Redis
/// reads at most 16 KiB per client per event-loop turn. A connection that
/// used up its turn yields to I/O (`yield_to_io`, KORA.md item 12): the
/// executor polls I/O and runs every connection that became ready before
/// this one goes on, without waiting for anything. (The first form of this
/// paused on a 1 µs timer, and an executor with nothing else to do then
/// slept until an unrelated wake-up, often tens of milliseconds, KORA.md
/// item 13: a 240 MB pipelined load took 5-28 s instead of 0.3 s, and once
/// a read of the memory tests waited 30 s.)
const INPUT_TURN: usize = 64 * 1024;
/// During shutdown a connection closes after this long without input.
const SHUTDOWN_DRAIN_IDLE: std::time::Duration = std::time::Duration::from_millis(100);
/// Redis' reply to a client over `maxclients`, written before closing.
pub const MAXCLIENTS_REPLY: &[u8] = b"-ERR max number of clients reached\r\n";

/// How far [`complete`] got.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Progress {
    /// Every reply of the pipeline is in `out`.
    Done,
    /// A shard handed back a batch before running all of it (its replies
    /// reached the budget): `out` holds the replies that are ready, in
    /// order; write them, then call `complete` again for the rest.
    Partial,
}

/// `Item::shard` of replies produced on the connection's own shard.
const LOCAL: u16 = u16::MAX;

/// The reply of a command whose shard stopped answering.
const GONE_REPLY: &[u8] = b"-ERR shard unavailable\r\n"; // keys::SHARD_GONE, as a reply line

/// Where one reply will come from.
#[derive(Clone, Copy)]
struct Item {
    shard: u16,
    index: u32,
}

struct Planned<'m> {
    item: Item,
    /// Present for commands whose reply is not ready yet (remote parts).
    /// Their arguments, which the slow log needs when the timer ends, are
    /// in their batch (`OpBatch::args`) until the pipeline completes.
    timer: Option<CommandTimer<'m>>,
}

/// The in-flight part of a pipeline: commands parsed but not yet answered.
pub struct Pipeline<'m> {
    local: ReplyBatch,
    batches: Vec<OpBatch>,
    /// Per peer: its last answer was not a batch (the shard stopped), so
    /// its commands are answered with an error.
    gone: Vec<bool>,
    plan: Vec<Planned<'m>>,
    /// Batches sent and not yet answered (reused between pipelines).
    waiting: Vec<(usize, ResponseFuture)>,
    remote_pending: bool,
}

impl<'m> Pipeline<'m> {
    fn new(nshards: usize) -> Self {
        Pipeline {
            local: ReplyBatch::default(),
            batches: (0..nshards).map(|_| OpBatch::default()).collect(),
            gone: vec![false; nshards],
            plan: Vec::new(),
            waiting: Vec::new(),
            remote_pending: false,
        }
    }

    fn is_empty(&self) -> bool {
        self.plan.is_empty()
    }

    /// Reply bytes held for commands not written out yet (`omem`).
    fn held(&self) -> usize {
        self.local.held() + self.batches.iter().map(|b| b.replies.held()).sum::<usize>()
    }
}

/// Where replies come from while a pipeline completes (the parts of
/// `Pipeline` that `complete` reads while it walks the plan).
struct Replies<'p> {
    local: &'p ReplyBatch,
    batches: &'p [OpBatch],
    gone: &'p [bool],
}

impl Replies<'_> {
    /// The reply of `item`, if it has arrived.
    fn ready(&self, item: &Item) -> Option<&[u8]> {
        if item.shard == LOCAL {
            return Some(self.local.get(item.index as usize));
        }
        let batch = &self.batches[item.shard as usize];
        if batch.has_reply(item.index) {
            Some(batch.reply(item.index))
        } else if self.gone[item.shard as usize] {
            Some(GONE_REPLY)
        } else {
            None
        }
    }
}

/// Why a connection ended other than by the client leaving or asking.
#[derive(Debug)]
enum Closed {
    /// The socket failed (the client reset it, most often): nothing to
    /// report.
    Io,
    /// Its unwritten replies passed `client-output-buffer-limit`.
    OutputLimit,
    /// CLIENT KILL, or the server shutting down, while a write was blocked.
    Killed,
}

impl From<std::io::Error> for Closed {
    fn from(_: std::io::Error) -> Self {
        Closed::Io
    }
}

pub async fn serve(shard: Rc<Shard>, mut stream: TcpStream) {
    let stats = shard.metrics().stats.clone();
    stats.connections_accepted.add(1);
    let Some(_place) = shard.admission().admit() else {
        // As Redis: tell the client why, then close. The write is one
        // small segment into an empty socket buffer; never wait on it long.
        stats.rejected_connections.add(1);
        let _ = future::or(stream.write_all(MAXCLIENTS_REPLY), async {
            glommio::timer::sleep(std::time::Duration::from_millis(100)).await;
            Ok(())
        })
        .await;
        return;
    };
    let peer = stream.peer_addr().ok().map(|a| a.ip());
    if auth::protected_mode_denies(
        shard.auth().protected_mode(),
        shard.auth().has_password(),
        peer,
    ) {
        stats.protected_mode_denied.add(1);
        let _ = stream.write_all(auth::DENIED).await;
        return;
    }
    stats.connections_current.inc();
    let _ = stream.set_nodelay(true);
    let id = shard.next_client_id();
    let info = Rc::new(ClientInfo::new(
        id,
        stream
            .peer_addr()
            .map(|a| a.to_string())
            .unwrap_or_default(),
        stream
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default(),
        crate::store::unix_ms(),
    ));
    shard.register_client(info.clone());
    let mut client = ClientState {
        info,
        multi: None,
        watched: Vec::new(),
        authenticated: auth::authenticated_at_connect(&shard),
        reply: Default::default(),
        pubsub: None,
        cluster: Default::default(),
    };
    if let Err(Closed::OutputLimit) = run(&shard, &mut stream, &mut client).await {
        eprintln!(
            "kora: client id={} addr={} closed for overcoming of output buffer limits",
            client.info.id, client.info.addr
        );
    }
    // Pub/Sub (issue 14): no more deliveries to a closed connection.
    crate::command::pubsub::forget(&shard, &mut client).await;
    unwatch_all(&shard, &mut client).await;
    shard.unregister_client(id);
    stats.connections_current.dec();
}

async fn run(
    shard: &Rc<Shard>,
    stream: &mut TcpStream,
    client: &mut ClientState,
) -> Result<(), Closed> {
    let metrics = shard.metrics();
    let mut rbuf: Vec<u8> = vec![0; READ_CHUNK];
    let (mut start, mut end) = (0usize, 0usize);
    // Do not re-parse until this many bytes from `start` are buffered.
    let mut need = 1usize;
    let mut argv: Vec<ArgRange> = Vec::with_capacity(16);
    let mut out: Vec<u8> = Vec::with_capacity(READ_CHUNK);
    let mut pipe = Pipeline::new(shard.nshards());
    let mut prepared = Prepared::default();
    // Input taken since this task last waited (see INPUT_TURN).
    let mut unwaited = 0usize;
    loop {
        // Make room: compact, then grow for a frame larger than the buffer,
        // but only READ_AHEAD past what has arrived: the buffer follows the
        // bytes, never a length a header merely declares.
        if start > 0 && (start == end || rbuf.len() - end < READ_CHUNK / 2) {
            rbuf.copy_within(start..end, 0);
            end -= start;
            start = 0;
        }
        let missing = (start + need).saturating_sub(end);
        let want = end + missing.clamp(READ_CHUNK / 2, READ_AHEAD);
        if want > rbuf.len() {
            // Only the new part is zeroed (at most READ_AHEAD); `Vec`'s
            // doubling reserves address space, which costs no memory
            // until the bytes arrive.
            rbuf.resize(want, 0);
        }
        // Pub/Sub (issue 14): a subscribed connection also waits for its
        // mailbox; only in that mode, so the usual path is untouched.
        let n = if let Some(sub) = client.pubsub.as_ref().filter(|s| s.active()) {
            let mailbox = sub.mailbox.clone();
            match subscribed_read(shard, stream, &mut rbuf[end..], &client.info, &mailbox).await? {
                Some(n) => n,
                None => {
                    if mailbox.overflowed() {
                        return Err(over_limit(shard));
                    }
                    if client.info.killed.get() || shard.shutdown().is_shutting_down() {
                        return Ok(());
                    }
                    mailbox.drain_into(&mut out);
                    write_out(shard, &client.info, stream, &mut out, 0).await?;
                    continue;
                }
            }
        } else {
            let read = stream.read(&mut rbuf[end..]);
            let draining = shard.shutdown().is_shutting_down();
            let (n, waited) = noting_wait(future::or(read, async {
                if draining {
                    // Shutting down: answer what the client already sent,
                    // then close once it goes quiet.
                    glommio::timer::sleep(SHUTDOWN_DRAIN_IDLE).await;
                } else {
                    // Shutdown or CLIENT KILL: end as if the client had left.
                    stopped(shard, &client.info).await;
                }
                Ok(0)
            }))
            .await;
            let n = n?;
            unwaited = if waited == Waited::Yes {
                0
            } else {
                unwaited + n
            };
            n
        };
        if n == 0 {
            return Ok(());
        }
        // Time is read once per batch of input, as Redis caches it per
        // event-loop turn: expiry needs milliseconds, not a clock read per
        // command.
        shard.db().refresh_clock();
        metrics.forget_stamp();
        end += n;
        metrics.stats.bytes_in.add(n as u64);
        let info = &client.info;
        info.net_in.set(info.net_in.get() + n as u64);
        info.last_active_ms.set(shard.db().now_ms);
        if end - start < need {
            continue;
        }
        // Parsing ahead uses an authenticated client's limits: a client
        // that has not authenticated gets its frames parsed one at a time
        // under its own (smaller) limits, as before.
        if auth::auth_required(shard, client) {
            prepared.clear();
        } else {
            prepared.scan(shard, &mut rbuf, (start, end), &mut argv);
        }
        let mut flow = Flow::Continue;
        while start < end {
            let unauthenticated = auth::auth_required(shard, client);
            let ahead = prepared.take(start, unauthenticated, &mut argv);
            let parsed = match ahead {
                Some(frame) => Ok(Parsed::Command {
                    consumed: frame.consumed,
                }),
                None => {
                    parse_command_with(&mut rbuf[start..end], start, &mut argv, unauthenticated)
                }
            };
            match parsed {
                Ok(Parsed::Incomplete { need: n })
                    if n > shard.config().client_query_buffer_limit =>
                {
                    // One command may not make us buffer more than Redis'
                    // client-query-buffer-limit, whatever its arguments say.
                    flush(shard, client, stream, &mut pipe, &mut out).await?;
                    out.error("ERR Protocol error: query buffer limit exceeded");
                    flow = Flow::Close;
                    break;
                }
                Ok(Parsed::Incomplete { need: n }) => {
                    need = n;
                    break;
                }
                Ok(Parsed::Command { consumed }) => {
                    need = 1;
                    if !argv.is_empty() {
                        let args = Args::new(&rbuf, &argv);
                        let command = match ahead {
                            Some(frame) => frame.command,
                            None => Recognized::by_name(&args),
                        };
                        let spec = command.spec;
                        // A command that waits for every reply before it:
                        // write them as they come rather than gathering
                        // them all.
                        if pipe.remote_pending
                            && spec.is_some_and(|s| waits_for_pipeline(shard, s, &args))
                        {
                            settle(shard, client, stream, &mut pipe, &mut out).await?;
                        }
                        // CLIENT REPLY OFF / SKIP: run the command alone
                        // and drop what it answered (the rare path).
                        let silenced = match client.reply {
                            ReplyMode::On => None,
                            ReplyMode::SkipNext => {
                                client.reply = ReplyMode::Skip;
                                Some(mark_silence(shard, client, &mut pipe, &mut out).await)
                            }
                            ReplyMode::Off | ReplyMode::Skip => {
                                Some(mark_silence(shard, client, &mut pipe, &mut out).await)
                            }
                        };
                        flow = if client.multi.is_none() && spec.is_some_and(|s| s.blocking) {
                            // Blocking commands (issue 13): a client that
                            // leaves while blocked must stop waiting.
                            let info = client.info.clone();
                            future::or(
                                dispatch(shard, client, &args, command, &mut pipe, &mut out),
                                watch_peer(stream, &info),
                            )
                            .await
                        } else {
                            dispatch(shard, client, &args, command, &mut pipe, &mut out).await
                        };
                        note_slow(shard, client, &args);
                        if flow == Flow::Exec {
                            transaction::exec(shard, client, &mut pipe, &mut out).await;
                            note_slow(shard, client, &args);
                            flow = Flow::Continue;
                        }
                        if let Some(mark) = silenced {
                            complete_all(shard, client, &mut pipe, &mut out).await;
                            match client.reply {
                                // CLIENT REPLY ON answers even when off.
                                ReplyMode::On => {}
                                ReplyMode::Skip => {
                                    out.truncate(mark);
                                    client.reply = ReplyMode::On;
                                }
                                ReplyMode::Off | ReplyMode::SkipNext => out.truncate(mark),
                            }
                        }
                    }
                    start += consumed;
                    if flow == Flow::Abort {
                        out.clear();
                        return Ok(());
                    }
                    // Killed (by itself or another client): nothing more it
                    // sent runs, as in Redis.
                    if client.info.killed.get() {
                        flow = Flow::Close;
                    }
                    if flow == Flow::Close {
                        break;
                    }
                    if out.len() + pipe.local.held() >= WRITE_THRESHOLD {
                        flush(shard, client, stream, &mut pipe, &mut out).await?;
                        shard.db().refresh_clock();
                        metrics.forget_stamp();
                    }
                }
                Err(e) => {
                    flush(shard, client, stream, &mut pipe, &mut out).await?;
                    out.error(&format!("ERR {}", e.0));
                    flow = Flow::Close;
                    break;
                }
            }
        }
        flush(shard, client, stream, &mut pipe, &mut out).await?;
        if start == end && rbuf.len() > READ_KEEP {
            // A large command has run: give its buffer back rather than
            // keep it for the life of the connection.
            rbuf = vec![0; READ_CHUNK];
            (start, end) = (0, 0);
        }
        client.info.qbuf.set(end - start);
        client.info.qbuf_cap.set(rbuf.len());
        if flow == Flow::Close || client.info.killed.get() {
            return Ok(());
        }
        if unwaited >= INPUT_TURN {
            unwaited = 0;
            glommio::executor().yield_to_io().await;
        }
    }
}

/// Whether a future made its task wait before it completed.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Waited {
    Yes,
    No,
}

/// Runs `fut` to completion, noting whether it ever made the task wait
/// (returned `Pending`): then the core ran its other tasks meanwhile.
async fn noting_wait<F: std::future::Future>(fut: F) -> (F::Output, Waited) {
    let mut fut = std::pin::pin!(fut);
    let mut waited = Waited::No;
    let out = std::future::poll_fn(|cx| {
        let poll = fut.as_mut().poll(cx);
        if poll.is_pending() {
            waited = Waited::Yes;
        }
        poll
    })
    .await;
    (out, waited)
}

/// Most commands of one read that [`Prepared::scan`] looks at.
const PREFETCH_MAX: usize = 32;

/// One multibulk frame parsed ahead by [`Prepared::scan`].
#[derive(Clone, Copy)]
struct Frame {
    /// Where it starts in the read buffer, and its length.
    pos: usize,
    consumed: usize,
    /// Its argument ranges: `Prepared::argv[first..first + count]`.
    first: u32,
    count: u32,
    /// Its table row and, for a command with keys, the shard of its first
    /// key: routed once here for both the prefetch and `dispatch` (it was
    /// three routing hashes of the key with two shards: the prefetch's
    /// filter ran twice).
    command: Recognized,
}

/// The commands of one read, parsed before any of them runs so that the
/// keyspace memory their keys touch can be loaded all at once
/// (`Db::prefetch_keys`): the cache misses of a pipelined batch's lookups then
/// overlap instead of each command waiting for its own in turn (issue 15:
/// at P=16 the lookup was about a third of a shard's CPU, mostly waiting
/// on memory). The main loop takes each frame's parse and command from
/// here instead of parsing it again.
///
/// Only what is cheap to find: multibulk frames (an inline command, which
/// parsing may rewrite, ends the scan), at most [`PREFETCH_MAX`]
/// commands, the first key of a command with keys, keys of this shard;
/// and prefetches only when the read holds two commands or more (a lone
/// command has nothing to overlap with). A frame is parsed with the
/// limits of an authenticated client, so the main loop uses it only for
/// one (`run` does not scan for a client that must still authenticate,
/// and `take` checks again); prefetching changes nothing, so it cannot
/// change a reply.
#[derive(Default)]
struct Prepared {
    frames: Vec<Frame>,
    argv: Vec<ArgRange>,
    /// The next frame `take` hands out.
    next: usize,
}

impl Prepared {
    /// Parses the frames of `rbuf[start..end]` ahead and prefetches their
    /// keys; `scratch` is the connection's argument vector (parsing clears
    /// it, so ranges are copied out of it).
    fn scan(
        &mut self,
        shard: &Shard,
        rbuf: &mut [u8],
        (start, end): (usize, usize),
        scratch: &mut Vec<ArgRange>,
    ) {
        self.clear();
        let mut pos = start;
        while pos < end && self.frames.len() < PREFETCH_MAX && rbuf[pos] == b'*' {
            let Ok(Parsed::Command { consumed }) =
                parse_command_with(&mut rbuf[pos..end], pos, scratch, false)
            else {
                break;
            };
            let args = Args::new(rbuf, scratch);
            let spec = if args.is_empty() {
                None
            } else {
                lookup(args.get(0))
            };
            let owner = spec
                .filter(|spec| spec.first_key > 0 && (spec.first_key as usize) < args.len())
                .map(|spec| shard.owner(args.get(spec.first_key as usize)) as u16);
            self.frames.push(Frame {
                pos,
                consumed,
                first: self.argv.len() as u32,
                count: scratch.len() as u32,
                command: Recognized { spec, owner },
            });
            self.argv.extend_from_slice(scratch);
            pos += consumed;
        }
        scratch.clear();
        if self.frames.len() < 2 {
            return;
        }
        let rbuf = &*rbuf;
        let here = Some(shard.id() as u16);
        let keys = self
            .frames
            .iter()
            .filter(|f| f.command.owner == here)
            .map(|f| {
                let first_key = f.command.spec.map_or(0, |spec| spec.first_key as u32);
                let (s, e) = self.argv[(f.first + first_key) as usize];
                &rbuf[s..e]
            });
        shard.db().prefetch_keys(keys);
    }

    /// Forgets every frame parsed ahead.
    fn clear(&mut self) {
        self.frames.clear();
        self.argv.clear();
        self.next = 0;
    }

    /// The frame at `start` if it was parsed ahead (for an authenticated
    /// client only: see the type's docs): its ranges go into `argv`.
    #[inline]
    fn take(
        &mut self,
        start: usize,
        unauthenticated: bool,
        argv: &mut Vec<ArgRange>,
    ) -> Option<Frame> {
        let f = *self.frames.get(self.next)?;
        if f.pos != start || unauthenticated {
            self.frames.clear();
            return None;
        }
        self.next += 1;
        argv.clear();
        argv.extend_from_slice(&self.argv[f.first as usize..(f.first + f.count) as usize]);
        Some(f)
    }
}

/// Pub/Sub (issue 14): a subscribed connection's wait for input. Some(n)
/// when the socket gave `n` bytes (0: the client left); None when its
/// mailbox has frames to write or passed its output limit, or the
/// connection must end (CLIENT KILL, shutdown). Frames already queued are
/// taken first, so a client that keeps sending cannot starve them. A
/// dropped read loses nothing (glommio reads only once the socket is
/// readable).
async fn subscribed_read(
    shard: &Shard,
    stream: &mut TcpStream,
    buf: &mut [u8],
    info: &ClientInfo,
    mailbox: &crate::coord::pubsub::Mailbox,
) -> Result<Option<usize>, Closed> {
    if mailbox.queued() > 0 || mailbox.overflowed() {
        return Ok(None);
    }
    let read = async { Some(stream.read(buf).await) };
    let other = async {
        future::or(stopped(shard, info), mailbox.ready()).await;
        None
    };
    match future::or(read, other).await {
        Some(n) => Ok(Some(n?)),
        None => Ok(None),
    }
}

/// Blocking commands (issue 13): while one waits, tells it when the peer
/// closes its end (a peek, so input sent meanwhile stays for later); never
/// resolves itself. Input that arrives while blocked ends the watch, as
/// Redis reads it only after the command.
async fn watch_peer(stream: &TcpStream, info: &ClientInfo) -> Flow {
    let mut byte = [0u8; 1];
    if matches!(stream.peek(&mut byte).await, Ok(0) | Err(_)) {
        info.peer_closed.set(true);
        info.wake.signal(1);
    }
    future::pending().await
}

/// Before a command whose reply CLIENT REPLY drops: completes every
/// earlier reply, so that the dropped one is what `out` gains after the
/// returned length.
async fn mark_silence<'m>(
    shard: &'m Rc<Shard>,
    client: &ClientState,
    pipe: &mut Pipeline<'m>,
    out: &mut Vec<u8>,
) -> usize {
    complete_all(shard, client, pipe, out).await;
    out.len()
}

/// Resolves when the connection must end: CLIENT KILL or shutdown.
async fn stopped(shard: &Shard, info: &ClientInfo) {
    future::or(
        async {
            shard.shutdown().wait().await;
        },
        async {
            let _ = info.kill.acquire(1).await;
        },
    )
    .await
}

/// Completes the pipeline and writes its replies, a budget at a time when
/// shards hand back partial batches.
async fn flush<'m>(
    shard: &'m Rc<Shard>,
    client: &ClientState,
    stream: &mut TcpStream,
    pipe: &mut Pipeline<'m>,
    out: &mut Vec<u8>,
) -> Result<(), Closed> {
    settle(shard, client, stream, pipe, out).await?;
    write_out(shard, &client.info, stream, out, pipe.held()).await
}

/// Completes the pipeline, writing only when a shard handed back a partial
/// batch (so memory stays bounded); otherwise the replies wait in `out`
/// for the pipeline's one write.
async fn settle<'m>(
    shard: &'m Rc<Shard>,
    client: &ClientState,
    stream: &mut TcpStream,
    pipe: &mut Pipeline<'m>,
    out: &mut Vec<u8>,
) -> Result<(), Closed> {
    while complete(shard, client, pipe, out).await == Progress::Partial {
        write_out(shard, &client.info, stream, out, pipe.held()).await?;
    }
    Ok(())
}

/// Writes `out` to the client. Enforces `client-output-buffer-limit`
/// against everything the connection holds for the client (`out` plus
/// `held` bytes of replies not in `out` yet), and ends the connection
/// when it is killed or the soft limit's time runs out while the client
/// does not read.
async fn write_out(
    shard: &Shard,
    info: &ClientInfo,
    stream: &mut TcpStream,
    out: &mut Vec<u8>,
    held: usize,
) -> Result<(), Closed> {
    if out.is_empty() {
        info.omem.set(held);
        return Ok(());
    }
    let total = (out.len() + held) as u64;
    info.omem.set(total as usize);
    // Pub/Sub (issue 14): a subscribed client is in Redis' pubsub class.
    let limit = if info.subscribed() {
        shard.output_limits().get().pubsub
    } else {
        shard.output_limits().get().normal
    };
    if limit.hard > 0 && total >= limit.hard {
        return Err(over_limit(shard));
    }
    let soft_deadline = if limit.soft > 0 && total >= limit.soft {
        let since = info.soft_limit_since.get().unwrap_or_else(|| {
            let now = std::time::Instant::now();
            info.soft_limit_since.set(Some(now));
            now
        });
        Some(since + std::time::Duration::from_secs(limit.soft_seconds))
    } else {
        info.soft_limit_since.set(None);
        None
    };
    // Most writes complete at once: only a write that has to wait races
    // the kill, shutdown and soft-limit clocks (arming them costs a waiter
    // registration on two semaphores, per write).
    let mut write = std::pin::pin!(stream.write_all(out));
    if let Some(result) = future::poll_once(write.as_mut()).await {
        result?;
        wrote(shard, info, out, held, limit.soft);
        return Ok(());
    }
    let written = future::or(async { Some(write.as_mut().await) }, async {
        match soft_deadline {
            Some(at) => {
                future::or(stopped(shard, info), async {
                    glommio::timer::sleep(at.saturating_duration_since(std::time::Instant::now()))
                        .await
                })
                .await
            }
            None => stopped(shard, info).await,
        }
        None
    })
    .await;
    match written {
        Some(result) => result?,
        None if info.killed.get() || shard.shutdown().is_shutting_down() => {
            return Err(Closed::Killed);
        }
        None => return Err(over_limit(shard)),
    }
    wrote(shard, info, out, held, limit.soft);
    Ok(())
}

/// Bookkeeping after `out` was written whole.
fn wrote(shard: &Shard, info: &ClientInfo, out: &mut Vec<u8>, held: usize, soft: u64) {
    shard.metrics().stats.bytes_out.add(out.len() as u64);
    info.net_out.set(info.net_out.get() + out.len() as u64);
    out.clear();
    if out.capacity() > 4 * WRITE_THRESHOLD {
        out.shrink_to(READ_CHUNK);
    }
    info.omem.set(held);
    if (held as u64) < soft {
        info.soft_limit_since.set(None);
    }
}

#[cold]
fn over_limit(shard: &Shard) -> Closed {
    shard.metrics().stats.output_limit_disconnections.add(1);
    Closed::OutputLimit
}

/// A command as far as its caller has recognized it, for [`dispatch`].
#[derive(Clone, Copy)]
pub struct Recognized {
    /// Its table row; None for an unknown command.
    pub spec: Option<&'static CommandSpec>,
    /// The shard of its first key, when the caller has routed it already
    /// (a frame parsed ahead of the main loop), so that `dispatch` does not
    /// hash the key again.
    pub owner: Option<u16>,
}

impl Recognized {
    /// Looks the command up by its name; `dispatch` routes it.
    pub fn by_name(args: &Args) -> Recognized {
        Recognized {
            spec: lookup(args.get(0)),
            owner: None,
        }
    }
}

/// Routes one command: inline on this shard, into a batch for another
/// shard, or (connection commands) run here after the pipeline drains.
pub async fn dispatch<'m>(
    shard: &'m Rc<Shard>,
    client: &mut ClientState,
    args: &Args<'_>,
    command: Recognized,
    pipe: &mut Pipeline<'m>,
    out: &mut Vec<u8>,
) -> Flow {
    let Recognized { spec, owner } = command;
    let metrics = shard.metrics();
    // Cluster mode (issue 16): a command whose keys this node does not
    // serve is redirected before anything else looks at it (also while
    // queuing in MULTI, which then aborts at EXEC, as Redis).
    if shard.cluster_enabled()
        && let Some(spec) = spec
        && spec.arity_ok(args.len())
        && (!auth::auth_required(shard, client) || auth::allowed_before_auth(spec))
    {
        match cluster_check(shard, client, spec, args, pipe, out).await {
            Verdict::Run => {}
            Verdict::Refuse(redirect) => {
                crate::command::transaction::reject_queued(client);
                let mut timer =
                    CommandTimer::start(metrics, crate::command::table::slot_of(spec, args));
                timer.set_rejected();
                local_reply(pipe, timer, |buf| {
                    crate::command::cluster::refuse(shard, &redirect, buf)
                });
                return Flow::Continue;
            }
            Verdict::Ran(reply) => {
                let timer =
                    CommandTimer::start(metrics, crate::command::table::slot_of(spec, args));
                local_reply(pipe, timer, |buf| buf.extend_from_slice(&reply));
                return Flow::Continue;
            }
        }
    }
    if client.multi.is_some()
        && let Some(spec) = spec
        && crate::command::transaction::refused_when_out_of_memory(spec)
        && spec.arity_ok(args.len())
        && !room_across(shard, spec, args).await
    {
        // As Redis: while queuing, any command is refused when its shards
        // are out of memory (the queue grows too), and EXEC then aborts.
        crate::command::transaction::reject_queued(client);
        let mut timer = CommandTimer::start(metrics, crate::command::table::slot_of(spec, args));
        timer.set_rejected();
        local_reply(pipe, timer, |buf| buf.error(crate::store::evict::OOM));
        return Flow::Continue;
    }
    if client.multi.is_some()
        && crate::command::transaction::queue_if_multi(shard, client, args, &mut pipe.local.buf)
    {
        plan_local_reply(pipe);
        return Flow::Continue;
    }
    let Some(spec) = spec else {
        let mut timer = CommandTimer::start(metrics, crate::command::SLOT_OTHER);
        timer.set_rejected();
        local_reply(pipe, timer, |buf| unknown_command(args, buf));
        return Flow::Continue;
    };
    let mut timer = CommandTimer::start(metrics, crate::command::table::slot_of(spec, args));
    let info = &client.info;
    info.last_cmd.set(spec.name);
    info.commands.set(info.commands.get() + 1);
    if !spec.arity_ok(args.len()) {
        timer.set_rejected();
        local_reply(pipe, timer, |buf| wrong_arity(buf, spec.name));
        return Flow::Continue;
    }
    // After the unknown-command and arity checks, as in Redis.
    if auth::auth_required(shard, client) && !auth::allowed_before_auth(spec) {
        timer.set_rejected();
        local_reply(pipe, timer, |buf| buf.error(auth::NOAUTH));
        return Flow::Continue;
    }
    // Pub/Sub (issue 14): subscribed mode (RESP2) runs only a few commands.
    if client.pubsub.is_some()
        && client.info.subscribed()
        && !crate::command::pubsub::allowed_when_subscribed(spec.name)
    {
        timer.set_rejected();
        let slot = crate::command::table::slot_of(spec, args);
        let name = crate::command::table::slot_name(slot as usize)
            .filter(|n| *n != "other")
            .unwrap_or(spec.name);
        local_reply(pipe, timer, |buf| {
            crate::command::pubsub::refuse_when_subscribed(name, buf)
        });
        return Flow::Continue;
    }
    match spec.kind {
        Kind::Keyed(handler) => {
            let target = owner.map_or_else(
                || shard.owner(args.get(spec.first_key as usize)),
                usize::from,
            );
            if target == shard.id() {
                shard.wait_local_turn(args).await;
            }
            route(shard, pipe, timer, spec.op(handler), target, args);
        }
        Kind::Multi { whole, spread } => {
            if spec.key_step > 1 && !(args.len() - 1).is_multiple_of(spec.key_step as usize) {
                // MSET / MSETNX: keys and values come in pairs.
                timer.set_rejected();
                local_reply(pipe, timer, |buf| wrong_arity(buf, spec.name));
                return Flow::Continue;
            }
            match single_owner(shard, args, spec) {
                Some(target) => {
                    // A transaction holding this shard: wait before running
                    // here (never while holding anything, so no cycle).
                    if target == shard.id() {
                        shard.wait_local_turn(args).await;
                    }
                    route(shard, pipe, timer, spec.op(whole), target, args);
                }
                None => {
                    // Across shards: after everything before it, as one
                    // atomic step (inside EXEC, under EXEC's locks).
                    complete_all(shard, client, pipe, out).await;
                    let mark = out.len();
                    if spec.denyoom
                        && !shard.in_transaction()
                        && !room_across(shard, spec, args).await
                    {
                        // All or nothing: refused before any shard ran it.
                        out.error(crate::store::evict::OOM);
                    } else {
                        spread(shard, client.info.id, args, out).await;
                    }
                    shard.db().refresh_clock();
                    let mut timer = timer;
                    timer.set_reply(&out[mark..]);
                }
            }
        }
        Kind::Conn(run) => {
            // Connection commands see every earlier command's effect.
            complete_all(shard, client, pipe, out).await;
            let mark = out.len();
            let flow = match run {
                Conn::Local(run) => run(shard, client, args, out),
                Conn::Async(run) => {
                    let flow = run(shard, client, args, out).await;
                    // It may have waited on other shards (or blocked): later
                    // commands of this batch must not expire keys by a
                    // stale clock. A local one did not wait.
                    shard.db().refresh_clock();
                    flow
                }
            };
            if flow == Flow::Exec {
                timer.cancel(); // EXEC times itself
                return flow;
            }
            // Blocking commands (issue 13): as in Redis, the time spent
            // blocked is not the command's (latency, slow log); it counts
            // as a call that took no time.
            let timer = if spec.blocking {
                timer.cancel();
                CommandTimer::start(metrics, crate::command::table::slot_of(spec, args))
            } else {
                timer
            };
            let mut timer = timer;
            timer.set_reply(&out[mark..]);
            return flow;
        }
    }
    Flow::Continue
}

/// What the cluster slot check decided for one command.
enum Verdict {
    /// Route and run it as usual.
    Run,
    /// Answer this instead.
    Refuse(crate::cluster::Redirect),
    /// It ran already, guarded (a keyed command of a moving slot): its
    /// reply.
    Ran(Vec<u8>),
}

/// The cluster slot check of one command (`command::cluster`). ASKING
/// holds for the next command only (for a whole transaction while
/// queuing, as Redis).
async fn cluster_check<'m>(
    shard: &'m Rc<Shard>,
    client: &mut ClientState,
    spec: &CommandSpec,
    args: &Args<'_>,
    pipe: &mut Pipeline<'m>,
    out: &mut Vec<u8>,
) -> Verdict {
    use crate::command::cluster::{Asking, Check, plan, resolve, run_guarded};
    let check = plan(shard, client, spec, args);
    // As Redis' resetClient: neither ASKING nor MULTI, nor anything
    // queued in a transaction, ends ASKING.
    if !matches!(spec.name, "asking" | "multi") && client.multi.is_none() {
        client.cluster.asking = Asking::No;
    }
    match check {
        Check::Run => Verdict::Run,
        Check::Refuse(redirect) => Verdict::Refuse(redirect),
        Check::Lookup(pending) => {
            // Whether the keys are here must see the pipeline's earlier
            // writes (a slot being migrated: rare).
            complete_all(shard, client, pipe, out).await;
            let handler = match spec.kind {
                Kind::Keyed(handler) => Some(handler),
                Kind::Multi { whole, .. } => Some(whole),
                Kind::Conn(_) => None,
            };
            match handler {
                Some(handler) if client.multi.is_none() => {
                    match run_guarded(shard, pending, spec.op(handler), args).await {
                        Ok(reply) => Verdict::Ran(reply),
                        Err(redirect) => Verdict::Refuse(redirect),
                    }
                }
                _ => match resolve(shard, pending).await {
                    Some(redirect) => Verdict::Refuse(redirect),
                    None => Verdict::Run,
                },
            }
        }
    }
}

fn unknown_command(args: &Args, out: &mut Vec<u8>) {
    let mut text = format!(
        "ERR unknown command '{}', with args beginning with: ",
        String::from_utf8_lossy(&args.get(0)[..args.get(0).len().min(128)])
    );
    // As Redis: quote arguments until the list reaches 128 characters,
    // cutting the last one to what is left.
    let mut listed = 0;
    for arg in args.iter_from(1) {
        if listed >= 128 {
            break;
        }
        let shown = String::from_utf8_lossy(&arg[..arg.len().min(128 - listed)]);
        listed += shown.len() + 3;
        text.push('\'');
        text.push_str(&shown);
        text.push_str("' ");
    }
    out.error(&text);
}

/// Whether every shard a command touches (this one for a command without
/// keys) can take a write (`coord::room_for_write`).
async fn room_across(shard: &Shard, spec: &CommandSpec, args: &Args<'_>) -> bool {
    if shard.db().budget() == 0 {
        return true;
    }
    let mut owners: Vec<usize> = shard.key_owners(spec.keys(), args).collect();
    if owners.is_empty() {
        owners.push(shard.id());
    }
    owners.sort_unstable();
    owners.dedup();
    crate::coord::room_for_write(shard, &owners).await
}

/// Whether a command runs only after every reply before it has arrived:
/// connection commands and multi-key commands across shards.
fn waits_for_pipeline(shard: &Shard, spec: &CommandSpec, args: &Args) -> bool {
    match spec.kind {
        Kind::Conn(_) => true,
        Kind::Multi { .. } => single_owner(shard, args, spec).is_none(),
        Kind::Keyed(_) => false,
    }
}

/// The shard owning every key of `args`, if it is one shard.
fn single_owner(shard: &Shard, args: &Args, spec: &CommandSpec) -> Option<usize> {
    let mut owners = shard.key_owners(spec.keys(), args);
    let first = owners.next()?;
    owners.all(|s| s == first).then_some(first)
}

/// Records a reply produced right here (errors, inline commands).
fn local_reply<'m>(
    pipe: &mut Pipeline<'m>,
    mut timer: CommandTimer<'m>,
    f: impl FnOnce(&mut Vec<u8>),
) {
    let mark = pipe.local.buf.len();
    f(&mut pipe.local.buf);
    timer.set_reply(&pipe.local.buf[mark..]);
    drop(timer);
    plan_local_reply(pipe);
}

/// Seals the reply just written to the local buffer as the next one of the
/// pipeline.
fn plan_local_reply(pipe: &mut Pipeline<'_>) {
    let index = pipe.local.seal();
    pipe.plan.push(Planned {
        item: Item {
            shard: LOCAL,
            index,
        },
        timer: None,
    });
}

/// Runs a single-shard command inline, or queues it for its shard.
fn route<'m>(
    shard: &'m Rc<Shard>,
    pipe: &mut Pipeline<'m>,
    mut timer: CommandTimer<'m>,
    op: Op,
    target: usize,
    args: &Args,
) {
    let item = queue(shard, pipe, op, target, args);
    if item.shard == LOCAL {
        timer.set_reply(pipe.local.get(item.index as usize));
        drop(timer);
        pipe.plan.push(Planned { item, timer: None });
    } else {
        pipe.plan.push(Planned {
            item,
            timer: Some(timer),
        });
    }
}

/// Executes one op inline when this shard owns it, else appends it to the
/// owner's batch.
fn queue(shard: &Shard, pipe: &mut Pipeline<'_>, op: Op, target: usize, args: &Args) -> Item {
    if target == shard.id() {
        shard.run_inline(op, args, &mut pipe.local.buf);
        Item {
            shard: LOCAL,
            index: pipe.local.seal(),
        }
    } else {
        pipe.remote_pending = true;
        let index = pipe.batches[target].push(op, args.iter_from(0));
        Item {
            shard: target as u16,
            index,
        }
    }
}

/// Every reply of the pipeline into `out`, in request order, without
/// writing any: for EXEC and the commands that must see everything before
/// them.
pub async fn complete_all<'m>(
    shard: &'m Rc<Shard>,
    client: &ClientState,
    pipe: &mut Pipeline<'m>,
    out: &mut Vec<u8>,
) {
    while complete(shard, client, pipe, out).await == Progress::Partial {}
}

/// Sends the batches that have commands left, waits for their answers,
/// and appends to `out`, in request order, every reply that is ready.
pub async fn complete<'m>(
    shard: &'m Rc<Shard>,
    client: &ClientState,
    pipe: &mut Pipeline<'m>,
    out: &mut Vec<u8>,
) -> Progress {
    if pipe.is_empty() {
        return Progress::Done;
    }
    if !pipe.remote_pending {
        // Everything ran inline, in order: the local replies are the output.
        if out.is_empty() {
            std::mem::swap(out, &mut pipe.local.buf);
        } else {
            out.extend_from_slice(&pipe.local.buf);
        }
        pipe.local.clear();
        pipe.plan.clear();
        return Progress::Done;
    }
    // A batch goes (again) once every reply it brought was written: so
    // each shard holds at most one budget of this client's replies.
    for (target, batch) in pipe.batches.iter_mut().enumerate() {
        if batch.unfinished() && batch.replies.ends.is_empty() && !pipe.gone[target] {
            let batch = std::mem::take(batch);
            pipe.waiting.push((target, shard.send_batch(target, batch)));
        }
    }
    for (target, fut) in pipe.waiting.drain(..) {
        match fut.await {
            Response::Exec(batch) => pipe.batches[target] = batch,
            _ => pipe.gone[target] = true,
        }
    }
    let replies = Replies {
        local: &pipe.local,
        batches: &pipe.batches,
        gone: &pipe.gone,
    };
    let mut emitted = 0;
    for planned in pipe.plan.iter_mut() {
        let Some(reply) = replies.ready(&planned.item) else {
            break;
        };
        emitted += 1;
        let mark = out.len();
        out.extend_from_slice(reply);
        if let Some(mut timer) = planned.timer.take() {
            timer.set_reply(&out[mark..]);
            drop(timer);
            if let Some(nanos) = shard.metrics().take_slow() {
                // A timer is only planned for a remote command; its batch
                // still holds its arguments (none if its shard stopped).
                let batch = &pipe.batches[planned.item.shard as usize];
                log_slow(shard, client, &batch.args(planned.item.index), nanos);
            }
        }
    }
    if emitted < pipe.plan.len() {
        forget_written(pipe, emitted);
        return Progress::Partial;
    }
    pipe.plan.clear();
    pipe.local.clear();
    pipe.remote_pending = false;
    pipe.gone.fill(false);
    for batch in &mut pipe.batches {
        batch.clear_commands();
        batch.replies.clear();
        batch.trim();
    }
    Progress::Done
}

/// After a partial round: drops the first `emitted` plan entries and the
/// remote replies they used. Each batch's items appear in the plan in
/// command order, so a batch's first item still planned is where its
/// unwritten replies start. The scratch table is one allocation per
/// partial round (a cold path); a scan of the plan per batch instead would
/// cost shards × plan entries.
#[cold]
fn forget_written(pipe: &mut Pipeline<'_>, emitted: usize) {
    pipe.plan.drain(..emitted);
    let mut first_left: Vec<Option<u32>> = vec![None; pipe.batches.len()];
    for Planned { item, .. } in &pipe.plan {
        if item.shard != LOCAL && first_left[item.shard as usize].is_none() {
            first_left[item.shard as usize] = Some(item.index);
        }
    }
    for (batch, first) in pipe.batches.iter_mut().zip(first_left) {
        let written = first.unwrap_or(batch.next);
        batch.forget_replies_before(written);
    }
}

/// Slow-log and latency-monitor bookkeeping for the command whose timer
/// just ended: one Cell read when it was not slow.
#[inline]
pub fn note_slow(shard: &Shard, client: &ClientState, args: &Args) {
    if let Some(nanos) = shard.metrics().take_slow() {
        log_slow(shard, client, args, nanos);
    }
}

#[cold]
fn log_slow(shard: &Shard, client: &ClientState, args: &Args, nanos: u64) {
    let name = client.info.name.borrow();
    slowlog::log_slow(
        shard,
        args,
        &client.info.addr,
        name.as_deref().unwrap_or_default(),
        nanos,
    );
}
