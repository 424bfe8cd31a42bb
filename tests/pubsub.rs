//! Pub/Sub (issue 14) against the real server with 2 shards: Redis 7.0's
//! RESP2 replies byte for byte (compared with a real redis-server when
//! installed), subscribed-mode restrictions, RESET, fan-out and ordering
//! with subscribers and publishers on both cores, PUBLISH counts across
//! cores, the pubsub output limit against a subscriber that never reads,
//! and the metrics / INFO / CLIENT LIST figures.

mod common;
mod redis_ref;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{Server, free_port, q};

/// A raw connection that reads whole RESP frames, so a test knows exactly
/// which bytes belong to which reply (and never waits on a quiet period).
struct Raw {
    s: TcpStream,
    buf: Vec<u8>,
}

/// Length of the first complete RESP frame in `b`, if it is complete.
fn frame_len(b: &[u8]) -> Option<usize> {
    let line_end = b.windows(2).position(|w| w == b"\r\n")?;
    let head = std::str::from_utf8(&b[1..line_end]).ok()?;
    let after = line_end + 2;
    match b.first()? {
        b'+' | b'-' | b':' => Some(after),
        b'$' => {
            let n: i64 = head.parse().ok()?;
            if n < 0 {
                return Some(after);
            }
            let end = after + n as usize + 2;
            (b.len() >= end).then_some(end)
        }
        b'*' => {
            let n: i64 = head.parse().ok()?;
            let mut at = after;
            for _ in 0..n.max(0) {
                at += frame_len(&b[at..])?;
            }
            Some(at)
        }
        _ => panic!("not RESP: {:?}", String::from_utf8_lossy(b)),
    }
}

fn encode(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

impl Raw {
    fn connect(port: u16) -> Raw {
        let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.set_nodelay(true).unwrap();
        Raw { s, buf: Vec::new() }
    }

    fn send(&mut self, args: &[&str]) {
        let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        self.s.write_all(&encode(&args)).unwrap();
    }

    /// The next `n` frames, concatenated.
    fn frames(&mut self, n: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for _ in 0..n {
            let len = loop {
                if let Some(len) = frame_len(&self.buf) {
                    break len;
                }
                let mut chunk = [0u8; 65536];
                let got = self.s.read(&mut chunk).expect("a reply in time");
                assert!(got > 0, "connection closed");
                self.buf.extend_from_slice(&chunk[..got]);
            };
            out.extend(self.buf.drain(..len));
        }
        out
    }

    /// Sends one command and returns its `n` reply frames.
    fn call(&mut self, args: &[&str], n: usize) -> Vec<u8> {
        self.send(args);
        self.frames(n)
    }

    /// Nothing more arrives for a moment.
    fn quiet(&mut self) -> bool {
        self.s
            .set_read_timeout(Some(Duration::from_millis(150)))
            .unwrap();
        let mut b = [0u8; 64];
        let got = self.s.read(&mut b);
        self.s
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        self.buf.is_empty() && got.is_err()
    }

    /// This connection's core: client ids are congruent to it.
    fn core(&mut self, nshards: u64) -> usize {
        let reply = self.call(&["CLIENT", "ID"], 1);
        let id: u64 = std::str::from_utf8(&reply[1..reply.len() - 2])
            .unwrap()
            .parse()
            .unwrap();
        (id % nshards) as usize
    }
}

/// Raw connections, one per core (index = core).
fn one_per_core(port: u16, n: usize) -> Vec<Raw> {
    let mut per: Vec<Option<Raw>> = (0..n).map(|_| None).collect();
    for _ in 0..200 {
        let mut c = Raw::connect(port);
        let core = c.core(n as u64);
        if per[core].is_none() {
            per[core] = Some(c);
        }
        if per.iter().all(Option::is_some) {
            break;
        }
    }
    per.into_iter()
        .map(|c| c.expect("a connection on every core"))
        .collect()
}

fn message(channel: &str, payload: &str) -> Vec<u8> {
    encode(&[b"message", channel.as_bytes(), payload.as_bytes()])
}

fn pmessage(pattern: &str, channel: &str, payload: &str) -> Vec<u8> {
    encode(&[
        b"pmessage",
        pattern.as_bytes(),
        channel.as_bytes(),
        payload.as_bytes(),
    ])
}

/// One scripted session: (connection, command, reply frames). Connection
/// 0 subscribes, connection 1 publishes and asks.
#[allow(clippy::type_complexity)]
const SESSION: &[(usize, &[&str], usize)] = &[
    (0, &["UNSUBSCRIBE"], 1),
    (0, &["PUNSUBSCRIBE"], 1),
    (0, &["SUNSUBSCRIBE"], 1),
    (0, &["UNSUBSCRIBE", "a", "b"], 2),
    (1, &["PUBSUB"], 1),
    (1, &["PUBSUB", "FOO"], 1),
    (1, &["PUBSUB", "CHANNELS", "a", "b"], 1),
    (1, &["PUBSUB", "NUMPAT", "x"], 1),
    (1, &["PUBSUB", "HELP", "x"], 1),
    (1, &["PUBSUB", "NUMSUB"], 1),
    (1, &["PUBSUB", "help"], 1),
    (1, &["SUBSCRIBE"], 1),
    (1, &["PUBLISH", "a"], 1),
    (1, &["RESET", "x"], 1),
    (0, &["SUBSCRIBE", "news.1", "news.2", "news.1"], 3),
    // Only one pattern matches a channel published below: the order of
    // several matching patterns is a hash order in Redis.
    (0, &["PSUBSCRIBE", "news.*", "x?"], 2),
    (0, &["SSUBSCRIBE", "orders"], 1),
    (0, &["GET", "k"], 1),
    (0, &["CONFIG", "GET", "maxmemory"], 1),
    (0, &["MULTI"], 1),
    (0, &["PING"], 1),
    (0, &["PING", "hi"], 1),
    (0, &["PING", "a", "b"], 1),
    (1, &["PUBLISH", "news.1", "hello"], 1),
    // The subscriber's message and its pattern match.
    (0, &[], 2),
    (1, &["PUBLISH", "news.9", "x"], 1),
    (0, &[], 1),
    (1, &["PUBLISH", "nobody", "x"], 1),
    (1, &["SPUBLISH", "orders", "o1"], 1),
    (0, &[], 1),
    (1, &["SPUBLISH", "news.1", "not-a-shard-channel"], 1),
    (1, &["PUBSUB", "CHANNELS", "news.1"], 1),
    (1, &["PUBSUB", "NUMSUB", "news.1", "zz"], 1),
    (1, &["PUBSUB", "NUMPAT"], 1),
    (1, &["PUBSUB", "SHARDCHANNELS"], 1),
    (1, &["PUBSUB", "SHARDNUMSUB", "orders", "x"], 1),
    (0, &["UNSUBSCRIBE", "news.2", "zz"], 2),
    (0, &["PUNSUBSCRIBE", "x?"], 1),
    // One of each left: "unsubscribe all" order is the only order.
    (0, &["UNSUBSCRIBE"], 1),
    (0, &["PUNSUBSCRIBE"], 1),
    (0, &["GET", "k"], 1),
    (0, &["SUNSUBSCRIBE"], 1),
    (0, &["GET", "k"], 1),
    (0, &["PING"], 1),
    (0, &["SUBSCRIBE", "z"], 1),
    (0, &["RESET"], 1),
    (0, &["GET", "k"], 1),
    (1, &["PUBLISH", "z", "gone"], 1),
    (0, &["MULTI"], 1),
    (0, &["SUBSCRIBE", "q"], 1),
    (0, &["SSUBSCRIBE", "q"], 1),
    (0, &["EXEC"], 1),
    (0, &["SET", "k", "v"], 1),
    (0, &["RESET"], 1),
    (1, &["CLIENT", "REPLY", "OFF"], 0),
    (1, &["RESET"], 1),
    (1, &["PING"], 1),
];

fn run_session(port: u16) -> Vec<Vec<u8>> {
    let mut conns = [Raw::connect(port), Raw::connect(port)];
    let mut replies = Vec::new();
    for (who, cmd, n) in SESSION {
        let c = &mut conns[*who];
        if !cmd.is_empty() {
            c.send(cmd);
        }
        replies.push(c.frames(*n));
    }
    assert!(conns[0].quiet() && conns[1].quiet(), "no stray replies");
    replies
}

#[test]
fn replies_match_redis_byte_for_byte() {
    let s = Server::start(2);
    let kora = run_session(s.port);
    // Without redis-server, the known answers still hold.
    let shown = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let at = |cmd: &[&str]| SESSION.iter().position(|(_, c, _)| c == &cmd).unwrap();
    assert_eq!(
        shown(&kora[at(&["GET", "k"])]),
        "-ERR Can't execute 'get': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context\r\n"
    );
    assert_eq!(
        shown(&kora[at(&["PING", "hi"])]),
        "*2\r\n$4\r\npong\r\n$2\r\nhi\r\n"
    );
    assert_eq!(shown(&kora[at(&["PUBLISH", "news.1", "hello"])]), ":2\r\n");
    let Some(redis) = redis_ref::RedisRef::start(free_port(), "pub/sub replies") else {
        return;
    };
    let reference = run_session(redis.port);
    for (i, (k, r)) in kora.iter().zip(&reference).enumerate() {
        assert_eq!(
            shown(k),
            shown(r),
            "step {i}: {:?} differs from Redis",
            SESSION[i].1
        );
    }
}

#[test]
fn fan_out_and_order_with_subscribers_and_publishers_on_both_cores() {
    let s = Server::start(2);
    let mut subs = one_per_core(s.port, 2);
    let mut psubs = one_per_core(s.port, 2);
    for c in subs.iter_mut() {
        c.call(&["SUBSCRIBE", "feed"], 1);
    }
    for c in psubs.iter_mut() {
        c.call(&["PSUBSCRIBE", "fe*"], 1);
    }
    // Publishers on both cores; core 0's pipelines its whole stream in one
    // write, core 1's sends one command at a time.
    let mut pubs = one_per_core(s.port, 2);
    let per = 300;
    let mut pipelined = Vec::new();
    for i in 0..per {
        pipelined.extend(encode(&[b"PUBLISH", b"feed", format!("p0-{i}").as_bytes()]));
    }
    pubs[0].s.write_all(&pipelined).unwrap();
    for i in 0..per {
        assert_eq!(
            pubs[1].call(&["PUBLISH", "feed", &format!("p1-{i}")], 1),
            b":4\r\n",
            "2 subscribers and 2 pattern subscribers, one of each per core"
        );
    }
    assert_eq!(pubs[0].frames(per), b":4\r\n".repeat(per));
    // Every subscriber got every message once, each publisher's in order.
    for (kind, group) in [("channel", &mut subs), ("pattern", &mut psubs)] {
        for (core, c) in group.iter_mut().enumerate() {
            let mut next = [0usize; 2];
            for _ in 0..2 * per {
                let frame = c.frames(1);
                let text = String::from_utf8_lossy(&frame).into_owned();
                let payload = text
                    .split("\r\n")
                    .nth(if kind == "channel" { 6 } else { 8 })
                    .unwrap();
                let (from, seq) = payload.split_once('-').unwrap();
                let from: usize = from[1..].parse().unwrap();
                let seq: usize = seq.parse().unwrap();
                assert_eq!(
                    seq, next[from],
                    "{kind} subscriber on core {core}: order of publisher {from}"
                );
                next[from] += 1;
                let expected = if kind == "channel" {
                    message("feed", payload)
                } else {
                    pmessage("fe*", "feed", payload)
                };
                assert_eq!(frame, expected);
            }
            assert_eq!(next, [per, per]);
            assert!(c.quiet(), "no duplicate deliveries");
        }
    }
}

/// PUBLISH delivers to the other core by a message that nobody waits for,
/// so a pipelined flood outruns the core-to-core queue (1024 messages per
/// direction): the rest wait in the publishing core's outbox, whose task
/// waits for room (and so do the answers coming back). All arrive, once
/// and in order. (The wake-up of a core waiting for room is tested in the
/// vendored glommio, `a_producer_waiting_for_room_is_woken_by_the_pop_that_makes_it`:
/// here the answers flowing back wake the publishing core anyway.)
#[test]
fn a_publish_flood_larger_than_the_core_to_core_queue_arrives_whole_and_in_order() {
    let s = Server::start(2);
    let mut subs = one_per_core(s.port, 2);
    let mut sub = subs.pop().expect("core 1");
    sub.call(&["SUBSCRIBE", "flood"], 1);
    let mut publisher = one_per_core(s.port, 2).swap_remove(0);
    const N: usize = 100_000;
    let mut pipelined = Vec::new();
    for i in 0..N {
        pipelined.extend(encode(&[b"PUBLISH", b"flood", i.to_string().as_bytes()]));
    }
    let reader = std::thread::spawn(move || {
        for i in 0..N {
            let frame = sub.frames(1);
            assert_eq!(frame, message("flood", &i.to_string()), "message {i}");
        }
        sub
    });
    let mut writer = publisher.s.try_clone().unwrap();
    let send = std::thread::spawn(move || writer.write_all(&pipelined).unwrap());
    assert_eq!(publisher.frames(N), b":1\r\n".repeat(N));
    send.join().unwrap();
    let mut sub = reader.join().expect("every message, in order");
    assert!(sub.quiet(), "no duplicate deliveries");
}

#[test]
fn publish_counts_and_pubsub_introspection_span_cores() {
    let s = Server::start(2);
    let mut a = one_per_core(s.port, 2);
    let mut b = one_per_core(s.port, 2);
    // The same channel and pattern subscribed on both cores, plus one
    // channel per core.
    for (core, c) in a.iter_mut().enumerate() {
        c.call(&["SUBSCRIBE", "both", &format!("only{core}")], 2);
        c.call(&["PSUBSCRIBE", "b*"], 1);
        c.call(&["SSUBSCRIBE", "shard"], 1);
    }
    b[1].call(&["SUBSCRIBE", "both"], 1);
    let mut c = s.client();
    // 3 subscribers of "both" + 2 pattern subscribers.
    assert_eq!(q::<i64>(&mut c, &["PUBLISH", "both", "m"]), 5);
    assert_eq!(q::<i64>(&mut c, &["PUBLISH", "only1", "m"]), 1);
    assert_eq!(q::<i64>(&mut c, &["PUBLISH", "bzz", "m"]), 2);
    assert_eq!(q::<i64>(&mut c, &["PUBLISH", "none", "m"]), 0);
    assert_eq!(q::<i64>(&mut c, &["SPUBLISH", "shard", "m"]), 2);
    assert_eq!(q::<i64>(&mut c, &["SPUBLISH", "both", "m"]), 0);
    let mut channels: Vec<String> = q(&mut c, &["PUBSUB", "CHANNELS"]);
    channels.sort();
    assert_eq!(channels, ["both", "only0", "only1"]);
    let mut matching: Vec<String> = q(&mut c, &["PUBSUB", "CHANNELS", "only*"]);
    matching.sort();
    assert_eq!(matching, ["only0", "only1"]);
    let numsub: Vec<redis::Value> = q(&mut c, &["PUBSUB", "NUMSUB", "both", "only0", "x"]);
    assert_eq!(numsub.len(), 6);
    assert_eq!(numsub[1], redis::Value::Int(3));
    assert_eq!(numsub[3], redis::Value::Int(1));
    assert_eq!(numsub[5], redis::Value::Int(0));
    // One pattern, subscribed on two cores: one pattern, as in Redis.
    assert_eq!(q::<i64>(&mut c, &["PUBSUB", "NUMPAT"]), 1);
    assert_eq!(
        q::<Vec<String>>(&mut c, &["PUBSUB", "SHARDCHANNELS"]),
        ["shard"]
    );
    let shardnumsub: Vec<redis::Value> = q(&mut c, &["PUBSUB", "SHARDNUMSUB", "shard"]);
    assert_eq!(shardnumsub[1], redis::Value::Int(2));
    let info: String = q(&mut c, &["INFO", "stats"]);
    for line in [
        "pubsub_channels:3",
        "pubsub_patterns:1",
        "pubsubshard_channels:1",
    ] {
        assert!(
            info.contains(&format!("{line}\r\n")),
            "INFO lacks {line}: {info}"
        );
    }
    // CLIENT LIST: sub/psub/ssub and the P flag.
    let list: String = q(&mut c, &["CLIENT", "LIST"]);
    assert_eq!(
        list.lines()
            .filter(|l| l.contains(" flags=P ") && l.contains(" sub=2 psub=1 ssub=1 "))
            .count(),
        2,
        "{list}"
    );
    // A disconnected subscriber no longer counts.
    drop(b);
    let deadline = Instant::now() + Duration::from_secs(5);
    while q::<i64>(&mut c, &["PUBLISH", "both", "m"]) != 4 {
        assert!(
            Instant::now() < deadline,
            "the closed subscriber still counts"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // Server-wide gauges count each name once (b[1]'s "both" is gone, a's
    // remain); each core tells a name's home core, so poll briefly.
    let wanted = [
        "kora_pubsub_channels 3\n",
        "kora_pubsub_patterns 1\n",
        "kora_pubsub_shard_channels 1\n",
    ];
    let deadline = Instant::now() + Duration::from_secs(5);
    while !wanted.iter().all(|w| s.metrics().contains(w)) {
        assert!(
            Instant::now() < deadline,
            "server-wide gauges: {}",
            s.metrics()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // Metrics: per-core gauges (the shared channel counts on each core).
    let metrics = s.metrics();
    for sample in [
        "kora_shard_pubsub_channels{shard=\"0\"} 2",
        "kora_shard_pubsub_channels{shard=\"1\"} 2",
        "kora_shard_pubsub_patterns{shard=\"0\"} 1",
        "kora_shard_pubsub_shard_channels{shard=\"1\"} 1",
    ] {
        assert!(metrics.contains(sample), "metrics lack {sample}");
    }
    let counter = |name: &str| -> u64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no {name}"))
            .parse()
            .unwrap()
    };
    assert!(counter("kora_pubsub_messages_published_total") >= 7);
    // 5 + 1 + 2 + 0 + 2 + 0 + at least one 4.
    assert!(counter("kora_pubsub_messages_delivered_total") >= 14);
    // Unsubscribing everything brings the gauges back to zero.
    for c in a.iter_mut() {
        c.call(&["RESET"], 1);
    }
    let mut c2 = s.client();
    assert_eq!(q::<i64>(&mut c2, &["PUBSUB", "NUMPAT"]), 0);
    assert_eq!(
        q::<Vec<String>>(&mut c2, &["PUBSUB", "CHANNELS"]),
        Vec::<String>::new()
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while !s.metrics().contains("kora_pubsub_channels 0\n") {
        assert!(Instant::now() < deadline, "server-wide gauge stays up");
        std::thread::sleep(Duration::from_millis(20));
    }
    let metrics = s.metrics();
    assert!(metrics.contains("kora_pubsub_patterns 0\n"));
    assert!(metrics.contains("kora_shard_pubsub_channels{shard=\"0\"} 0"));
    assert!(metrics.contains("kora_shard_pubsub_channels{shard=\"1\"} 0"));
}

#[test]
fn reset_clears_the_connection_state_like_redis() {
    let s = Server::start(2);
    // Set at runtime (the harness' start-up PING has no password).
    let _: () = q(&mut s.client(), &["CONFIG", "SET", "requirepass", "pw"]);
    let mut c = Raw::connect(s.port);
    assert_eq!(c.call(&["AUTH", "pw"], 1), b"+OK\r\n");
    c.call(&["CLIENT", "SETNAME", "worker"], 1);
    c.call(&["WATCH", "w"], 1);
    c.call(&["MULTI"], 1);
    c.call(&["SET", "k", "1"], 1);
    c.call(&["PSUBSCRIBE", "x"], 1);
    assert_eq!(c.call(&["RESET"], 1), b"+RESET\r\n");
    // Back to the default user, who needs a password: not authenticated.
    assert_eq!(
        c.call(&["GET", "k"], 1),
        b"-NOAUTH Authentication required.\r\n"
    );
    assert_eq!(c.call(&["AUTH", "pw"], 1), b"+OK\r\n");
    // MULTI was discarded (SET never ran), the name is gone.
    assert_eq!(c.call(&["GET", "k"], 1), b"$-1\r\n");
    assert_eq!(c.call(&["CLIENT", "GETNAME"], 1), b"$-1\r\n");
    assert_eq!(c.call(&["EXEC"], 1), b"-ERR EXEC without MULTI\r\n");
    // The WATCH is gone: a change to the key does not abort a new EXEC.
    let mut other = Raw::connect(s.port);
    other.call(&["AUTH", "pw"], 1);
    assert_eq!(other.call(&["PUBLISH", "x", "m"], 1), b":0\r\n");
    c.call(&["MULTI"], 1);
    other.call(&["SET", "w", "changed"], 1);
    c.call(&["SET", "k", "2"], 1);
    assert_eq!(c.call(&["EXEC"], 1), b"*1\r\n+OK\r\n");
    // CLIENT REPLY OFF is undone, and RESET itself answers.
    c.send(&["CLIENT", "REPLY", "OFF"]);
    assert_eq!(c.call(&["RESET"], 1), b"+RESET\r\n");
    // Allowed before authenticating, as Redis' no_auth flag.
    assert_eq!(c.call(&["RESET"], 1), b"+RESET\r\n");
    assert!(c.quiet());
}

fn info_u64(c: &mut redis::Connection, field: &str) -> u64 {
    let info: String = q(c, &["INFO"]);
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field}"))
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn a_subscriber_that_never_reads_is_disconnected_at_the_pubsub_limit() {
    let s = Server::start_with(2, &["--client-output-buffer-limit", "pubsub 4mb 1mb 60"]);
    let mut c = s.client();
    let before = info_u64(&mut c, "used_memory");
    // Subscribers on both cores that never read, and one that keeps up.
    let mut stuck = one_per_core(s.port, 2);
    for st in stuck.iter_mut() {
        st.call(&["SUBSCRIBE", "flood"], 1);
    }
    let mut publisher = Raw::connect(s.port);
    let payload = "x".repeat(64 * 1024);
    let mut peak = 0;
    let start = Instant::now();
    let mut receivers = 2;
    // Up to 1 GB offered; the stuck subscribers must be closed long before.
    for round in 0..16_000 {
        let n = publisher.call(&["PUBLISH", "flood", &payload], 1);
        receivers = String::from_utf8_lossy(&n[1..n.len() - 2])
            .parse::<u64>()
            .unwrap();
        if receivers == 0 {
            break;
        }
        if round % 256 == 0 {
            peak = peak.max(info_u64(&mut c, "used_memory"));
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "flood took too long"
        );
    }
    assert_eq!(receivers, 0, "the stuck subscribers were never closed");
    peak = peak.max(info_u64(&mut c, "used_memory"));
    // Each held at most about its 4 MB limit (plus what the kernel took).
    assert!(
        peak < before + (32 << 20),
        "used_memory grew from {before} to {peak}"
    );
    assert!(s.rss_bytes() < 512 << 20, "RSS {}", s.rss_bytes());
    assert_eq!(
        info_u64(&mut c, "client_output_buffer_limit_disconnections"),
        2
    );
    assert!(
        s.metrics()
            .contains("kora_client_output_buffer_limit_disconnections_total 2")
    );
    // The stuck sockets end with EOF after what the kernel buffered.
    for st in stuck.iter_mut() {
        st.s.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut sink = vec![0u8; 1 << 20];
        let mut total = 0usize;
        loop {
            match st.s.read(&mut sink) {
                Ok(0) => break,
                Ok(n) => total += n,
                Err(e) => panic!("expected EOF after {total} bytes: {e}"),
            }
        }
    }
    // The server goes on: a new subscriber gets messages.
    let mut fresh = Raw::connect(s.port);
    fresh.call(&["SUBSCRIBE", "flood"], 1);
    assert_eq!(publisher.call(&["PUBLISH", "flood", "hi"], 1), b":1\r\n");
    assert_eq!(fresh.frames(1), message("flood", "hi"));
}

#[test]
fn soft_limit_closes_a_subscriber_that_stays_behind() {
    let s = Server::start_with(2, &["--client-output-buffer-limit", "pubsub 0 256kb 1"]);
    let mut stuck = Raw::connect(s.port);
    stuck.call(&["SUBSCRIBE", "slow"], 1);
    let mut publisher = Raw::connect(s.port);
    let payload = "y".repeat(16 * 1024);
    let start = Instant::now();
    // Over the soft limit quickly, then past its second: closed. Without
    // the soft limit (no hard limit here) it would stay forever.
    loop {
        let n = publisher.call(&["PUBLISH", "slow", &payload], 1);
        if n == b":0\r\n" {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "never closed");
        if start.elapsed() > Duration::from_millis(200) {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    assert!(
        start.elapsed() >= Duration::from_millis(900),
        "closed before the soft limit's second"
    );
    let mut c = s.client();
    assert_eq!(
        info_u64(&mut c, "client_output_buffer_limit_disconnections"),
        1
    );
    // CONFIG SET applies to subscribers at once.
    let _: () = q(
        &mut c,
        &[
            "CONFIG",
            "SET",
            "client-output-buffer-limit",
            "pubsub 0 0 0",
        ],
    );
    let mut keeps = Raw::connect(s.port);
    keeps.call(&["SUBSCRIBE", "slow"], 1);
    for _ in 0..40 {
        assert_eq!(publisher.call(&["PUBLISH", "slow", &payload], 1), b":1\r\n");
    }
}

#[test]
fn client_kill_quit_and_shutdown_end_subscribers() {
    let s = Server::start(2);
    let mut subs = one_per_core(s.port, 2);
    for c in subs.iter_mut() {
        c.call(&["SUBSCRIBE", "k"], 1);
    }
    let mut c = s.client();
    let id = {
        let reply = subs[1].call(&["PING"], 1);
        assert_eq!(reply, b"*2\r\n$4\r\npong\r\n$0\r\n\r\n");
        let list: String = q(&mut c, &["CLIENT", "LIST"]);
        list.lines()
            .filter(|l| l.contains(" sub=1 "))
            .map(|l| l[3..l.find(' ').unwrap()].parse::<u64>().unwrap())
            .find(|id| id % 2 == 1)
            .unwrap()
    };
    assert_eq!(
        q::<i64>(&mut c, &["CLIENT", "KILL", "ID", &id.to_string()]),
        1
    );
    let mut b = [0u8; 16];
    assert_eq!(subs[1].s.read(&mut b).unwrap(), 0, "killed: closed");
    assert_eq!(q::<i64>(&mut c, &["PUBLISH", "k", "m"]), 1);
    assert_eq!(subs[0].frames(1), message("k", "m"));
    // QUIT is allowed in subscribed mode and closes.
    assert_eq!(subs[0].call(&["QUIT"], 1), b"+OK\r\n");
    assert_eq!(subs[0].s.read(&mut b).unwrap(), 0);
    assert_eq!(q::<i64>(&mut c, &["PUBLISH", "k", "m"]), 0);
    // A waiting subscriber does not hold up a shutdown.
    let mut last = Raw::connect(s.port);
    last.call(&["PSUBSCRIBE", "*"], 1);
    let start = Instant::now();
    let status = s.terminate();
    assert!(status.success());
    assert!(start.elapsed() < Duration::from_secs(5));
}

/// Glob as the model sees it: only `*` and `?` appear in the test's
/// patterns.
fn model_match(p: &[u8], s: &[u8]) -> bool {
    match (p.first(), s.first()) {
        (None, None) => true,
        (Some(b'*'), _) => model_match(&p[1..], s) || (!s.is_empty() && model_match(p, &s[1..])),
        (Some(b'?'), Some(_)) => model_match(&p[1..], &s[1..]),
        (Some(a), Some(b)) if a == b => model_match(&p[1..], &s[1..]),
        _ => false,
    }
}

#[test]
fn random_subscriptions_on_both_cores_match_a_model() {
    let s = Server::start(2);
    let mut subs: Vec<Raw> = Vec::new();
    for _ in 0..3 {
        subs.extend(one_per_core(s.port, 2));
    }
    let mut publisher = Raw::connect(s.port);
    let channels = ["a", "b", "ab", "ba"];
    let patterns = ["a*", "?b", "*", "b?"];
    // Per connection: its channels and patterns, in the model.
    let mut model: Vec<(Vec<&str>, Vec<&str>)> = vec![(Vec::new(), Vec::new()); subs.len()];
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = |n: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n as u64) as usize
    };
    for step in 0..400 {
        let who = next(subs.len());
        let (chans, pats) = &mut model[who];
        match next(5) {
            0 => {
                let ch = channels[next(channels.len())];
                if !chans.contains(&ch) {
                    chans.push(ch);
                }
                let count = chans.len() + pats.len();
                let reply = subs[who].call(&["SUBSCRIBE", ch], 1);
                let head = encode(&[b"subscribe", ch.as_bytes()]);
                assert!(reply.ends_with(format!(":{count}\r\n").as_bytes()));
                assert_eq!(reply[4..head.len()], head[4..], "step {step}");
                let text = String::from_utf8_lossy(&reply).into_owned();
                assert!(
                    text.ends_with(&format!(":{count}\r\n")),
                    "step {step}: {text}"
                );
            }
            1 => {
                let p = patterns[next(patterns.len())];
                if !pats.contains(&p) {
                    pats.push(p);
                }
                let count = chans.len() + pats.len();
                let text =
                    String::from_utf8_lossy(&subs[who].call(&["PSUBSCRIBE", p], 1)).into_owned();
                assert!(
                    text.ends_with(&format!(":{count}\r\n")),
                    "step {step}: {text}"
                );
            }
            2 => {
                let ch = channels[next(channels.len())];
                chans.retain(|c| *c != ch);
                let count = chans.len() + pats.len();
                let text =
                    String::from_utf8_lossy(&subs[who].call(&["UNSUBSCRIBE", ch], 1)).into_owned();
                assert!(
                    text.ends_with(&format!(":{count}\r\n")),
                    "step {step}: {text}"
                );
            }
            3 => {
                let p = patterns[next(patterns.len())];
                pats.retain(|c| *c != p);
                let count = chans.len() + pats.len();
                let text =
                    String::from_utf8_lossy(&subs[who].call(&["PUNSUBSCRIBE", p], 1)).into_owned();
                assert!(
                    text.ends_with(&format!(":{count}\r\n")),
                    "step {step}: {text}"
                );
            }
            _ => {
                let ch = channels[next(channels.len())];
                let payload = format!("m{step}");
                let mut total = 0;
                let mut expected: Vec<Vec<Vec<u8>>> = Vec::new();
                for (chans, pats) in &model {
                    let mut frames = Vec::new();
                    if chans.contains(&ch) {
                        frames.push(message(ch, &payload));
                    }
                    for p in pats
                        .iter()
                        .filter(|p| model_match(p.as_bytes(), ch.as_bytes()))
                    {
                        frames.push(pmessage(p, ch, &payload));
                    }
                    total += frames.len();
                    expected.push(frames);
                }
                assert_eq!(
                    publisher.call(&["PUBLISH", ch, &payload], 1),
                    format!(":{total}\r\n").into_bytes(),
                    "step {step}"
                );
                for (c, mut frames) in subs.iter_mut().zip(expected) {
                    let mut got: Vec<Vec<u8>> = (0..frames.len()).map(|_| c.frames(1)).collect();
                    // Several matching patterns come in no set order.
                    got.sort();
                    frames.sort();
                    assert_eq!(got, frames, "step {step}");
                }
            }
        }
    }
    // Introspection agrees with the model; nothing stray arrived.
    let mut c = s.client();
    for ch in channels {
        let n = model.iter().filter(|(cs, _)| cs.contains(&ch)).count() as i64;
        let reply: Vec<redis::Value> = q(&mut c, &["PUBSUB", "NUMSUB", ch]);
        assert_eq!(reply[1], redis::Value::Int(n), "NUMSUB {ch}");
    }
    let mut pats: Vec<&str> = model.iter().flat_map(|(_, p)| p.iter().copied()).collect();
    pats.sort();
    pats.dedup();
    assert_eq!(q::<i64>(&mut c, &["PUBSUB", "NUMPAT"]), pats.len() as i64);
    let mut chans: Vec<&str> = model.iter().flat_map(|(c, _)| c.iter().copied()).collect();
    chans.sort();
    chans.dedup();
    let wanted = [
        format!("kora_pubsub_channels {}\n", chans.len()),
        format!("kora_pubsub_patterns {}\n", pats.len()),
    ];
    let deadline = Instant::now() + Duration::from_secs(5);
    while !wanted.iter().all(|w| s.metrics().contains(w.as_str())) {
        assert!(Instant::now() < deadline, "{wanted:?}: {}", s.metrics());
        std::thread::sleep(Duration::from_millis(20));
    }
    for sub in subs.iter_mut() {
        assert!(sub.quiet());
    }
}
