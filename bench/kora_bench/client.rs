//! The load-generating threads. Each thread owns its share of the
//! connections and drives them from one epoll loop: a connection sends a
//! batch of `pipeline` requests with one write, and sends the next batch
//! as soon as every reply of this one is in (what redis-benchmark's -P
//! does). Replies are checked in place in the read buffer; buffers and
//! histograms are allocated once, before the run.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Barrier;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::reply::{Frame, Malformed, frame};
use crate::workload::{Op, Rng, Workload};

/// How a run is bounded.
#[derive(Clone, Copy, Debug)]
pub enum Bound {
    /// This many measured requests in total.
    Requests(u64),
    /// Send measured requests for this long.
    Duration(Duration),
}

pub struct Settings {
    pub workload: Workload,
    pub pipeline: usize,
    pub warmup: Duration,
    pub bound: Bound,
    /// A connection that gets no reply for this long fails the run.
    pub timeout: Duration,
    pub verify: bool,
    pub preload: bool,
    pub seed: u64,
}

/// What the threads share: read-only settings, the keys written (for
/// --verify), one progress slot per thread, and the start line.
pub struct Shared {
    pub settings: Settings,
    pub written: Option<Written>,
    pub progress: Vec<Progress>,
    /// Every thread, and the main thread, meet here after the preload so
    /// that measurement starts at the same moment everywhere.
    pub start_line: Barrier,
}

/// One thread's completed measured requests; written only by that thread,
/// read by the progress bar. Padded so threads never share a cache line.
#[repr(align(128))]
#[derive(Default)]
pub struct Progress {
    pub done: AtomicU64,
}

/// The keys this run has successfully written, one bit per key and data
/// type, shared by all threads: a GET is checked only if its key was
/// marked before the GET was sent, so the SET is known to be ahead of it.
pub struct Written {
    strings: Vec<AtomicU64>,
    hashes: Vec<AtomicU64>,
}

impl Written {
    pub fn new(keyspace: u64) -> Written {
        let words = keyspace.div_ceil(64) as usize;
        let bits = || (0..words).map(|_| AtomicU64::new(0)).collect();
        Written {
            strings: bits(),
            hashes: bits(),
        }
    }

    fn bits(&self, op: Op) -> Option<&[AtomicU64]> {
        match op {
            Op::Set | Op::Get | Op::Mget => Some(&self.strings),
            Op::Hset | Op::Hget => Some(&self.hashes),
            _ => None,
        }
    }

    fn mark(&self, op: Op, key: u64) {
        if let Some(bits) = self.bits(op) {
            let word = &bits[(key / 64) as usize];
            let bit = 1u64 << (key % 64);
            // A plain load first: after the first write of a key, marking
            // costs no read-modify-write on a shared line.
            if word.load(Ordering::Relaxed) & bit == 0 {
                word.fetch_or(bit, Ordering::Relaxed);
            }
        }
    }

    fn is_marked(&self, op: Op, key: u64) -> bool {
        self.bits(op).is_some_and(|bits| {
            bits[(key / 64) as usize].load(Ordering::Relaxed) & (1u64 << (key % 64)) != 0
        })
    }
}

pub struct OpReport {
    /// Measured replies that were what the command should answer.
    pub ok: u64,
    /// Wrong replies, error replies, and requests lost with a connection,
    /// whether measured or not.
    pub errors: u64,
    /// Latency in ns of the measured good replies, from the write of the
    /// batch to the read that completed the reply.
    pub latency: Option<Histogram<u64>>,
}

pub struct ThreadReport {
    pub ops: Vec<OpReport>,
    pub measure_start: Instant,
    pub last_reply: Option<Instant>,
    pub first_error: Option<String>,
}

/// Read buffer per connection; grows when a reply batch does not fit.
const READ_BUFFER: usize = 16 * 1024;
/// Requests per write while preloading, whatever --pipeline says.
const PRELOAD_PIPELINE: usize = 64;

pub fn new_histogram() -> Histogram<u64> {
    // 1 ns .. 100 s at 3 significant digits, as the server's histograms.
    Histogram::new_with_bounds(1, 100_000_000_000, 3).expect("valid histogram bounds")
}

#[derive(Clone, Copy)]
struct Pending {
    op: Op,
    key: u64,
    /// For reads under --verify: bit i set when the i-th key read was
    /// written by this run before the request was sent.
    verify: u64,
    measured: bool,
}

struct Conn {
    stream: TcpStream,
    fd: RawFd,
    rbuf: Vec<u8>,
    rstart: usize,
    rend: usize,
    wbuf: Vec<u8>,
    wpos: usize,
    /// The requests of the batch in flight; `next` is the first one whose
    /// reply has not been read yet.
    pending: Vec<Pending>,
    next: usize,
    sent_at: Instant,
    alive: bool,
    wants_writable: bool,
}

impl Conn {
    fn busy(&self) -> bool {
        self.alive && self.next < self.pending.len()
    }
}

enum Verdict<'a> {
    Good,
    ErrorReply(&'a [u8]),
    Wrong(&'static str),
}

enum Phase {
    /// SET (and HSET) every key of this thread's part of the keyspace.
    Preload {
        next: u64,
        end: u64,
        op: usize,
    },
    Run,
}

/// Everything of a thread except its connections, so that a connection's
/// read buffer can be borrowed while the thread's state is updated.
struct Ctx<'a> {
    shared: &'a Shared,
    id: usize,
    rng: Rng,
    phase: Phase,
    preload_ops: Vec<Op>,
    measure_start: Instant,
    stop_sending_at: Option<Instant>,
    /// Measured requests this thread may still send (--requests).
    quota: Option<u64>,
    ops: Vec<OpReport>,
    done: u64,
    last_reply: Option<Instant>,
    last_activity: Instant,
    first_error: Option<String>,
    expected: Vec<u8>,
}

struct Epoll(RawFd);

impl Epoll {
    fn new() -> io::Result<Epoll> {
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Epoll(fd))
    }

    fn ctl(&self, op: i32, fd: RawFd, token: usize, events: u32) -> io::Result<()> {
        let mut event = libc::epoll_event {
            events,
            u64: token as u64,
        };
        if unsafe { libc::epoll_ctl(self.0, op, fd, &mut event) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    fn wait(&self, events: &mut [libc::epoll_event], timeout_ms: i32) -> usize {
        let n = unsafe {
            libc::epoll_wait(self.0, events.as_mut_ptr(), events.len() as i32, timeout_ms)
        };
        // EINTR and friends: just poll again.
        n.max(0) as usize
    }
}

impl Drop for Epoll {
    fn drop(&mut self) {
        unsafe { libc::close(self.0) };
    }
}

const READABLE: u32 = (libc::EPOLLIN | libc::EPOLLRDHUP) as u32;
const WRITABLE: u32 = libc::EPOLLOUT as u32;

/// Runs one thread's connections through the preload (if any), the start
/// line, the warmup and the measured part, and reports what it saw.
pub fn run_thread(
    id: usize,
    streams: Vec<TcpStream>,
    preload: std::ops::Range<u64>,
    quota: Option<u64>,
    shared: &Shared,
) -> ThreadReport {
    let settings = &shared.settings;
    let epoll = Epoll::new().expect("epoll_create1");
    let mut conns: Vec<Conn> = streams
        .into_iter()
        .enumerate()
        .map(|(token, stream)| {
            stream.set_nonblocking(true).expect("non-blocking socket");
            let fd = stream.as_raw_fd();
            epoll
                .ctl(libc::EPOLL_CTL_ADD, fd, token, READABLE)
                .expect("epoll_ctl add");
            Conn {
                stream,
                fd,
                rbuf: vec![0; READ_BUFFER],
                rstart: 0,
                rend: 0,
                wbuf: Vec::with_capacity(64 * settings.pipeline.max(PRELOAD_PIPELINE)),
                wpos: 0,
                pending: Vec::with_capacity(settings.pipeline.max(PRELOAD_PIPELINE)),
                next: 0,
                sent_at: Instant::now(),
                alive: true,
                wants_writable: false,
            }
        })
        .collect();
    let mix = &settings.workload.mix;
    let mut preload_ops = Vec::new();
    if settings.preload {
        preload_ops.push(Op::Set);
        if mix.contains(Op::Hget) || mix.contains(Op::Hset) {
            preload_ops.push(Op::Hset);
        }
    }
    let now = Instant::now();
    let mut ctx = Ctx {
        shared,
        id,
        rng: Rng::new(
            settings
                .seed
                .wrapping_add(id as u64)
                .wrapping_mul(0x2545_F491_4F6C_DD1D),
        ),
        phase: Phase::Preload {
            next: preload.start,
            end: preload.end,
            op: 0,
        },
        preload_ops,
        measure_start: now,
        stop_sending_at: None,
        quota,
        ops: Op::ALL
            .iter()
            .map(|op| OpReport {
                ok: 0,
                errors: 0,
                latency: mix.contains(*op).then(new_histogram),
            })
            .collect(),
        done: 0,
        last_reply: None,
        last_activity: now,
        first_error: None,
        expected: Vec::with_capacity(settings.workload.value_size),
    };

    if settings.preload {
        ctx.drive(&epoll, &mut conns);
    }
    shared.start_line.wait();

    let start = Instant::now();
    ctx.phase = Phase::Run;
    ctx.measure_start = start + settings.warmup;
    if let Bound::Duration(d) = settings.bound {
        ctx.stop_sending_at = Some(ctx.measure_start + d);
    }
    ctx.drive(&epoll, &mut conns);
    shared.progress[id].done.store(ctx.done, Ordering::Relaxed);

    ThreadReport {
        ops: ctx.ops,
        measure_start: ctx.measure_start,
        last_reply: ctx.last_reply,
        first_error: ctx.first_error,
    }
}

impl Ctx<'_> {
    /// Sends a first batch on every connection, then keeps them busy until
    /// the phase has nothing more to send and every reply is in.
    fn drive(&mut self, epoll: &Epoll, conns: &mut [Conn]) {
        self.last_activity = Instant::now();
        for (token, conn) in conns.iter_mut().enumerate() {
            self.send_batch(epoll, token, conn);
        }
        let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; conns.len().max(1)];
        while conns.iter().any(Conn::busy) {
            let n = epoll.wait(&mut events, 50);
            for event in &events[..n] {
                let (token, flags) = (event.u64 as usize, event.events);
                let conn = &mut conns[token];
                if !conn.alive {
                    continue;
                }
                if flags & WRITABLE != 0 {
                    self.flush(epoll, token, conn);
                }
                if flags & !WRITABLE != 0 {
                    self.on_readable(epoll, token, conn);
                }
            }
            self.shared.progress[self.id]
                .done
                .store(self.done, Ordering::Relaxed);
            if n == 0 && self.last_activity.elapsed() > self.shared.settings.timeout {
                let why = format!(
                    "no reply for {:?}; giving up on the requests in flight",
                    self.shared.settings.timeout
                );
                for (token, conn) in conns.iter_mut().enumerate() {
                    if conn.busy() {
                        self.fail(epoll, token, conn, &why);
                    }
                }
            }
        }
    }

    /// The next request of the current phase, or None when this thread
    /// must stop sending.
    fn next_request(&mut self, now: Instant) -> Option<Pending> {
        let workload = &self.shared.settings.workload;
        match &mut self.phase {
            Phase::Preload { next, end, op } => {
                if *next >= *end {
                    return None;
                }
                let request = Pending {
                    op: self.preload_ops[*op],
                    key: *next,
                    verify: 0,
                    measured: false,
                };
                *op += 1;
                if *op == self.preload_ops.len() {
                    *op = 0;
                    *next += 1;
                }
                Some(request)
            }
            Phase::Run => {
                if self.stop_sending_at.is_some_and(|end| now >= end) {
                    return None;
                }
                let measured = now >= self.measure_start;
                if measured && let Some(quota) = &mut self.quota {
                    if *quota == 0 {
                        return None;
                    }
                    *quota -= 1;
                }
                let op = workload.mix.pick(&mut self.rng);
                let key = workload.key(&mut self.rng);
                let mut verify = 0;
                if let Some(written) = &self.shared.written {
                    match op {
                        Op::Get | Op::Hget => verify = written.is_marked(op, key) as u64,
                        Op::Mget => {
                            for i in 0..workload.mget_keys {
                                let marked = written.is_marked(op, workload.mget_key(key, i));
                                verify |= (marked as u64) << i;
                            }
                        }
                        _ => {}
                    }
                }
                Some(Pending {
                    op,
                    key,
                    verify,
                    measured,
                })
            }
        }
    }

    /// Composes the next batch and writes it. A connection with nothing
    /// more to send stays idle.
    fn send_batch(&mut self, epoll: &Epoll, token: usize, conn: &mut Conn) {
        conn.pending.clear();
        conn.next = 0;
        conn.wbuf.clear();
        conn.wpos = 0;
        if !conn.alive {
            return;
        }
        let depth = match self.phase {
            Phase::Preload { .. } => PRELOAD_PIPELINE,
            Phase::Run => self.shared.settings.pipeline,
        };
        let now = Instant::now();
        let workload = &self.shared.settings.workload;
        for _ in 0..depth {
            let Some(request) = self.next_request(now) else {
                break;
            };
            let member = if request.op == Op::Sadd {
                self.rng.below(workload.keyspace)
            } else {
                0
            };
            workload.encode(request.op, request.key, member, &mut conn.wbuf);
            conn.pending.push(request);
        }
        if conn.pending.is_empty() {
            return;
        }
        conn.sent_at = now;
        self.flush(epoll, token, conn);
    }

    fn flush(&mut self, epoll: &Epoll, token: usize, conn: &mut Conn) {
        while conn.wpos < conn.wbuf.len() {
            match (&conn.stream).write(&conn.wbuf[conn.wpos..]) {
                Ok(0) => return self.fail(epoll, token, conn, "connection closed while writing"),
                Ok(n) => conn.wpos += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if !conn.wants_writable {
                        conn.wants_writable = true;
                        let _ = epoll.ctl(libc::EPOLL_CTL_MOD, conn.fd, token, READABLE | WRITABLE);
                    }
                    return;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return self.fail(epoll, token, conn, &format!("write failed: {e}")),
            }
        }
        if conn.wants_writable {
            conn.wants_writable = false;
            let _ = epoll.ctl(libc::EPOLL_CTL_MOD, conn.fd, token, READABLE);
        }
    }

    fn on_readable(&mut self, epoll: &Epoll, token: usize, conn: &mut Conn) {
        if conn.rend == conn.rbuf.len() {
            if conn.rstart > 0 {
                conn.rbuf.copy_within(conn.rstart..conn.rend, 0);
                conn.rend -= conn.rstart;
                conn.rstart = 0;
            } else {
                // One reply bigger than the buffer (large values, MGET).
                let bigger = conn.rbuf.len() * 2;
                conn.rbuf.resize(bigger, 0);
            }
        }
        match (&conn.stream).read(&mut conn.rbuf[conn.rend..]) {
            Ok(0) => return self.fail(epoll, token, conn, "server closed the connection"),
            Ok(n) => conn.rend += n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) =>
            {
                return;
            }
            Err(e) => return self.fail(epoll, token, conn, &format!("read failed: {e}")),
        }
        let now = Instant::now();
        self.last_activity = now;
        let latency = now.duration_since(conn.sent_at).as_nanos() as u64;
        while conn.next < conn.pending.len() {
            let request = conn.pending[conn.next];
            let available = &conn.rbuf[conn.rstart..conn.rend];
            match self.check(available, request) {
                Ok(Some((used, verdict))) => {
                    self.account(request, verdict, latency, now);
                    conn.rstart += used;
                    conn.next += 1;
                }
                Ok(None) => break,
                Err(Malformed(why)) => {
                    let why = format!("unparsable reply to {}: {why}", request.op.name());
                    return self.fail(epoll, token, conn, &why);
                }
            }
        }
        if conn.rstart == conn.rend {
            conn.rstart = 0;
            conn.rend = 0;
        }
        if conn.next == conn.pending.len() {
            if conn.rend > conn.rstart {
                return self.fail(epoll, token, conn, "server sent a reply nobody asked for");
            }
            self.send_batch(epoll, token, conn);
        }
    }

    fn account(&mut self, request: Pending, verdict: Verdict, latency_ns: u64, now: Instant) {
        let stats = &mut self.ops[request.op.index()];
        if request.measured {
            self.done += 1;
            self.last_reply = Some(now);
        }
        match verdict {
            Verdict::Good => {
                if request.measured {
                    stats.ok += 1;
                    if let Some(h) = &mut stats.latency {
                        h.saturating_record(latency_ns.max(1));
                    }
                }
                if let (Some(written), Op::Set | Op::Hset) = (&self.shared.written, request.op) {
                    written.mark(request.op, request.key);
                }
            }
            Verdict::ErrorReply(text) => {
                stats.errors += 1;
                if self.first_error.is_none() {
                    self.first_error = Some(format!(
                        "{}: -{}",
                        request.op.name(),
                        String::from_utf8_lossy(text)
                    ));
                }
            }
            Verdict::Wrong(why) => {
                stats.errors += 1;
                if self.first_error.is_none() {
                    self.first_error = Some(format!("{}: {why}", request.op.name()));
                }
            }
        }
    }

    /// Checks the reply at the start of `buf` against what `request` must
    /// get; returns its length and the verdict, or None if incomplete.
    fn check<'b>(
        &mut self,
        buf: &'b [u8],
        request: Pending,
    ) -> Result<Option<(usize, Verdict<'b>)>, Malformed> {
        let Some((reply, mut used)) = frame(buf)? else {
            return Ok(None);
        };
        let verdict = match (request.op, reply) {
            (_, Frame::Error(text)) => Verdict::ErrorReply(text),
            (Op::Mget, Frame::Array(n)) => {
                let workload = &self.shared.settings.workload;
                let mut verdict = if n as u64 == workload.mget_keys {
                    Verdict::Good
                } else {
                    Verdict::Wrong("MGET answered with the wrong number of values")
                };
                for i in 0..n as u64 {
                    let Some((element, len)) = frame(&buf[used..])? else {
                        return Ok(None);
                    };
                    used += len;
                    if let Frame::Array(_) = element {
                        return Err(Malformed("nested array in an MGET reply"));
                    }
                    if let Verdict::Good = verdict {
                        let key = workload.mget_key(request.key, i);
                        verdict = self.check_value(element, key, request.verify >> i & 1 != 0);
                    }
                }
                verdict
            }
            (_, Frame::Array(n)) => {
                // Skip the elements to stay in step with the stream.
                for _ in 0..n {
                    match frame(&buf[used..])? {
                        Some((Frame::Array(_), _)) => {
                            return Err(Malformed("nested array where none was expected"));
                        }
                        Some((_, len)) => used += len,
                        None => return Ok(None),
                    }
                }
                Verdict::Wrong("unexpected array reply")
            }
            (Op::Ping, Frame::Simple(b"PONG")) | (Op::Set, Frame::Simple(b"OK")) => Verdict::Good,
            (Op::Ping, _) => Verdict::Wrong("expected +PONG"),
            (Op::Set, _) => Verdict::Wrong("expected +OK"),
            (Op::Get | Op::Hget, reply) => {
                self.check_value(reply, request.key, request.verify != 0)
            }
            (Op::Lpop, Frame::Bulk(_) | Frame::Nil) => Verdict::Good,
            (Op::Lpop, _) => Verdict::Wrong("expected a bulk string or nil"),
            (Op::Incr, Frame::Int(_)) => Verdict::Good,
            (Op::Lpush | Op::Rpush, Frame::Int(n)) if n >= 1 => Verdict::Good,
            (Op::Hset | Op::Sadd, Frame::Int(0 | 1)) => Verdict::Good,
            (Op::Incr | Op::Lpush | Op::Rpush | Op::Hset | Op::Sadd, _) => {
                Verdict::Wrong("expected an integer in range")
            }
            (Op::Mget, _) => Verdict::Wrong("expected an array"),
        };
        Ok(Some((used, verdict)))
    }

    fn check_value<'b>(&mut self, reply: Frame<'b>, key: u64, verify: bool) -> Verdict<'b> {
        match reply {
            Frame::Bulk(value) if verify => {
                self.expected.clear();
                self.shared
                    .settings
                    .workload
                    .write_value(key, &mut self.expected);
                if value == self.expected.as_slice() {
                    Verdict::Good
                } else {
                    Verdict::Wrong("--verify: value differs from the one written")
                }
            }
            Frame::Bulk(_) => Verdict::Good,
            Frame::Nil if verify => Verdict::Wrong("--verify: nil for a key that was written"),
            Frame::Nil => Verdict::Good,
            _ => Verdict::Wrong("expected a bulk string or nil"),
        }
    }

    /// The connection is unusable: every request still in flight on it is
    /// an error, and it sends nothing more.
    fn fail(&mut self, epoll: &Epoll, token: usize, conn: &mut Conn, why: &str) {
        for request in &conn.pending[conn.next..] {
            self.ops[request.op.index()].errors += 1;
            if request.measured {
                self.done += 1;
            }
        }
        if self.first_error.is_none() {
            self.first_error = Some(format!("connection {token}: {why}"));
        }
        conn.next = conn.pending.len();
        conn.alive = false;
        let _ = epoll.ctl(libc::EPOLL_CTL_DEL, conn.fd, token, 0);
        let _ = conn.stream.shutdown(std::net::Shutdown::Both);
    }
}
