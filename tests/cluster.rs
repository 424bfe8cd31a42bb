//! Cluster mode (issue 16) against a real Redis 7.0 cluster: three Kora
//! nodes (one topology pushed with CLUSTER SETTOPOLOGY, with 1 and with 2
//! shards per node) and three redis-server nodes in cluster mode (slots
//! split as `redis-cli --cluster create` splits them: 0-5460, 5461-10922,
//! 10923-16383) get the same commands; their replies must be the same,
//! byte for byte, once each cluster's ports and node ids are replaced by
//! `P0..P2` / `ID0..ID2` (the two clusters run on different ports).
//!
//! redis-server is required (tools/test.sh installs it), not optional:
//! without it these tests fail rather than pass silently.
//!
//! What has no Redis counterpart (CLUSTER SETTOPOLOGY's epoch rules, the
//! topology file across a restart) is checked against Kora alone.

mod common;
mod redis_ref;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Server, TempDir, free_port, shard_of};
use kora::cluster::{key_slot, node_id_for};

// ---------------------------------------------------------------------------
// A raw RESP2 client: replies kept exactly as sent (status, error, integer,
// bulk, array, nil), so two servers' replies compare byte for byte.

#[derive(Debug, Clone, PartialEq)]
enum Reply {
    Status(String),
    Error(String),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array(Option<Vec<Reply>>),
}

struct Raw {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Raw {
    fn connect(port: u16) -> Raw {
        let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        Raw {
            writer: s.try_clone().unwrap(),
            reader: BufReader::new(s),
        }
    }

    fn send(&mut self, args: &[&[u8]]) {
        let mut out = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            out.extend_from_slice(a);
            out.extend_from_slice(b"\r\n");
        }
        self.writer.write_all(&out).unwrap();
    }

    fn call(&mut self, args: &[&str]) -> Reply {
        let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        self.send(&args);
        self.read()
    }

    fn read(&mut self) -> Reply {
        let mut line = String::new();
        self.reader.read_line(&mut line).unwrap();
        assert!(line.ends_with("\r\n"), "truncated reply line {line:?}");
        let line = &line[..line.len() - 2];
        let (kind, rest) = line.split_at(1);
        match kind {
            "+" => Reply::Status(rest.into()),
            "-" => Reply::Error(rest.into()),
            ":" => Reply::Int(rest.parse().unwrap()),
            "$" => {
                let n: i64 = rest.parse().unwrap();
                if n < 0 {
                    return Reply::Bulk(None);
                }
                let mut buf = vec![0u8; n as usize + 2];
                self.reader.read_exact(&mut buf).unwrap();
                buf.truncate(n as usize);
                Reply::Bulk(Some(buf))
            }
            "*" => {
                let n: i64 = rest.parse().unwrap();
                if n < 0 {
                    return Reply::Array(None);
                }
                Reply::Array(Some((0..n).map(|_| self.read()).collect()))
            }
            _ => panic!("not RESP2: {line:?}"),
        }
    }
}

/// Text of a reply with one cluster's node ports and ids replaced by
/// `P<i>` / `ID<i>`, so two clusters on different ports compare.
fn render(r: &Reply, nodes: &[(u16, String)]) -> String {
    let norm = |s: &str| {
        let mut s = s.to_string();
        for (i, (port, id)) in nodes.iter().enumerate() {
            s = s.replace(id.as_str(), &format!("ID{i}"));
            s = s.replace(&format!("127.0.0.1:{port}"), &format!("127.0.0.1:P{i}"));
        }
        s
    };
    match r {
        Reply::Status(s) => format!("+{}", norm(s)),
        Reply::Error(s) => format!("-{}", norm(s)),
        Reply::Int(n) => match nodes.iter().position(|(p, _)| *p as i64 == *n) {
            Some(i) => format!(":P{i}"),
            None => format!(":{n}"),
        },
        Reply::Bulk(None) => "$nil".into(),
        Reply::Bulk(Some(b)) => format!("${:?}", norm(&String::from_utf8_lossy(b))),
        Reply::Array(None) => "*nil".into(),
        Reply::Array(Some(items)) => format!(
            "[{}]",
            items
                .iter()
                .map(|i| render(i, nodes))
                .collect::<Vec<_>>()
                .join(",")
        ),
    }
}

/// Splits a script line into words; "double quotes" group, `\n` inside
/// them is a newline.
fn words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut any = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                quoted = !quoted;
                any = true;
            }
            '\\' if quoted => match chars.next() {
                Some('n') => cur.push('\n'),
                Some(o) => cur.push(o),
                None => {}
            },
            ' ' if !quoted => {
                if any || !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
                any = false;
            }
            c => cur.push(c),
        }
    }
    if any || !cur.is_empty() {
        out.push(cur);
    }
    out
}

// ---------------------------------------------------------------------------
// The two clusters.

/// A process killed when dropped, also when a test fails before its end.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Three redis-server 7.0 processes forming one cluster.
struct RedisCluster {
    _children: Vec<Killed>,
    nodes: Vec<(u16, String)>,
    _dir: TempDir,
}

/// A free port whose cluster bus port (+10000) is free too.
fn free_port_with_bus() -> u16 {
    loop {
        let p = free_port();
        if p < 55000 && TcpListener::bind(("127.0.0.1", p + 10000)).is_ok() {
            return p;
        }
    }
}

fn wait_pong(port: u16, child: &mut Child) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) {
            let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
            let mut buf = [0u8; 7];
            if s.write_all(b"PING\r\n").is_ok()
                && s.read_exact(&mut buf).is_ok()
                && &buf == b"+PONG\r\n"
            {
                return true;
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

fn redis_node(dir: &std::path::Path, extra: &[&str]) -> (Child, u16) {
    assert!(
        std::path::Path::new(redis_ref::REDIS_SERVER).exists(),
        "{} is required for the cluster comparison (tools/test.sh installs redis-server)",
        redis_ref::REDIS_SERVER
    );
    for _ in 0..5 {
        let port = free_port_with_bus();
        let node_dir = dir.join(port.to_string());
        std::fs::create_dir_all(&node_dir).unwrap();
        let mut child = Command::new(redis_ref::REDIS_SERVER)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args([
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
            ])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(&node_dir)
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        if wait_pong(port, &mut child) {
            return (child, port);
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    panic!("redis-server did not start");
}

impl RedisCluster {
    /// Three nodes, slots as `redis-cli --cluster create` splits them,
    /// joined with CLUSTER MEET; returns once every node sees all three
    /// and the cluster is ok.
    fn start() -> RedisCluster {
        let dir = TempDir::new("redis");
        let mut children = Vec::new();
        let mut ports = Vec::new();
        for _ in 0..3 {
            let (child, port) = redis_node(&dir.0, &[]);
            children.push(Killed(child));
            ports.push(port);
        }
        let mut cluster = RedisCluster {
            _children: children,
            nodes: Vec::new(),
            _dir: dir,
        };
        let ranges = [(0, 5460), (5461, 10922), (10923, 16383)];
        for (i, &port) in ports.iter().enumerate() {
            let mut c = Raw::connect(port);
            let (a, b) = ranges[i];
            let r = c.call(&["CLUSTER", "ADDSLOTSRANGE", &a.to_string(), &b.to_string()]);
            assert_eq!(r, Reply::Status("OK".into()));
            let Reply::Bulk(Some(id)) = c.call(&["CLUSTER", "MYID"]) else {
                panic!("no id")
            };
            cluster.nodes.push((port, String::from_utf8(id).unwrap()));
        }
        let mut first = Raw::connect(ports[0]);
        for &p in &ports[1..] {
            let r = first.call(&["CLUSTER", "MEET", "127.0.0.1", &p.to_string()]);
            assert_eq!(r, Reply::Status("OK".into()));
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        'wait: loop {
            assert!(Instant::now() < deadline, "redis cluster did not form");
            std::thread::sleep(Duration::from_millis(100));
            for &p in &ports {
                let mut c = Raw::connect(p);
                let Reply::Bulk(Some(info)) = c.call(&["CLUSTER", "INFO"]) else {
                    continue 'wait;
                };
                let info = String::from_utf8(info).unwrap();
                if !info.contains("cluster_state:ok\r\n")
                    || !info.contains("cluster_known_nodes:3\r\n")
                {
                    continue 'wait;
                }
                // Every node knows every other's address (CLUSTER SLOTS
                // lists each port).
                let slots = render(&c.call(&["CLUSTER", "SLOTS"]), &cluster.nodes);
                if !(0..3).all(|i| slots.contains(&format!(":P{i}"))) {
                    continue 'wait;
                }
            }
            break;
        }
        cluster
    }
}

impl RedisCluster {
    /// Waits until every node's CLUSTER SLOTS shows the three starting
    /// ranges again (a scenario that moved a slot back leaves the others
    /// to learn it by gossip), so the next run starts from the same state.
    fn wait_settled(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let expected = "[[:0,:5460,[$\"127.0.0.1\",:P0,$\"ID0\",[]]],\
                [:5461,:10922,[$\"127.0.0.1\",:P1,$\"ID1\",[]]],\
                [:10923,:16383,[$\"127.0.0.1\",:P2,$\"ID2\",[]]]]";
            let mut last = String::new();
            let all_default = self.nodes.iter().all(|(p, _)| {
                let mut slots = Raw::connect(*p).call(&["CLUSTER", "SLOTS"]);
                if let Reply::Array(Some(v)) = &mut slots {
                    v.sort_by_key(|r| match r {
                        Reply::Array(Some(range)) => match range[0] {
                            Reply::Int(start) => start,
                            _ => -1,
                        },
                        _ => -1,
                    });
                }
                last = render(&slots, &self.nodes);
                last == expected
            });
            if all_default {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "redis cluster did not settle: {last}, expected {expected}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// The topology text giving three nodes Redis' default split.
fn topology(epoch: u64, ports: &[u16]) -> String {
    format!(
        "epoch {epoch}\nnode 127.0.0.1:{} 0-5460\nnode 127.0.0.1:{} 5461-10922\nnode 127.0.0.1:{} 10923-16383\n",
        ports[0], ports[1], ports[2]
    )
}

/// Three Kora nodes with one topology pushed to each.
struct KoraCluster {
    _servers: Vec<Server>,
    nodes: Vec<(u16, String)>,
}

impl KoraCluster {
    fn start(workers: usize, extra: &[&str]) -> KoraCluster {
        let mut args = vec!["--cluster-enabled", "yes"];
        args.extend_from_slice(extra);
        let servers: Vec<Server> = (0..3).map(|_| Server::start_with(workers, &args)).collect();
        let ports: Vec<u16> = servers.iter().map(|s| s.port).collect();
        let text = topology(1, &ports);
        for &p in &ports {
            let r = Raw::connect(p).call(&["CLUSTER", "SETTOPOLOGY", &text]);
            assert_eq!(r, Reply::Status("OK".into()), "SETTOPOLOGY on {p}");
        }
        let nodes = ports
            .iter()
            .map(|&p| (p, node_id_for("127.0.0.1", p).to_string()))
            .collect();
        KoraCluster {
            _servers: servers,
            nodes,
        }
    }
}

/// A Redis cluster and a Kora cluster side by side, one connection to
/// each node of each.
struct Pair {
    redis: RedisCluster,
    kora: KoraCluster,
    r: Vec<Raw>,
    k: Vec<Raw>,
    workers: usize,
}

impl Pair {
    fn new(redis: RedisCluster, workers: usize) -> Pair {
        let kora = KoraCluster::start(workers, &[]);
        let r = redis.nodes.iter().map(|(p, _)| Raw::connect(*p)).collect();
        let k = kora.nodes.iter().map(|(p, _)| Raw::connect(*p)).collect();
        Pair {
            redis,
            kora,
            r,
            k,
            workers,
        }
    }

    /// Runs `args` on node `node` of both clusters; returns both renders.
    fn both(&mut self, node: usize, args: &[&str]) -> (String, String) {
        let a = render(&self.r[node].call(args), &self.redis.nodes);
        let b = render(&self.k[node].call(args), &self.kora.nodes);
        (a, b)
    }

    /// Runs `args` on node `node` of both; the replies must be the same.
    fn same(&mut self, node: usize, args: &[&str]) -> String {
        let (a, b) = self.both(node, args);
        assert_eq!(
            b, a,
            "{args:?} on node {node} ({} shard(s) per Kora node): Kora (left) differs from Redis (right)",
            self.workers
        );
        a
    }

    /// Runs a script: one command per line, `N command args...` runs on
    /// node N (default 0), `=> reply` after a command also checks Redis'
    /// reply (so that a scenario cannot pass by both servers misbehaving
    /// alike unnoticed); `#` lines are comments.
    fn script(&mut self, text: &str) {
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (cmd, expected) = match line.split_once(" => ") {
                Some((c, e)) => (c, Some(e)),
                None => (line, None),
            };
            let mut w = words(cmd);
            let node = match w[0].parse::<usize>() {
                Ok(n) if w[0].len() == 1 => {
                    w.remove(0);
                    n
                }
                _ => 0,
            };
            let args: Vec<&str> = w.iter().map(String::as_str).collect();
            let got = self.same(node, &args);
            if let Some(e) = expected {
                assert_eq!(got, e, "{line}: Redis' reply is not what the script says");
            }
        }
    }

    /// FLUSHALL on every node of both clusters.
    fn flush(&mut self) {
        for i in 0..3 {
            self.same(i, &["FLUSHALL"]);
        }
    }
}

/// Starts one Redis cluster and runs `scenario` against it beside a Kora
/// cluster with 1 and then 2 shards per node.
fn compare(scenario: fn(&mut Pair)) {
    let mut redis = Some(RedisCluster::start());
    for workers in [1, 2] {
        let mut pair = Pair::new(redis.take().unwrap(), workers);
        pair.flush();
        scenario(&mut pair);
        pair.flush();
        pair.redis.wait_settled();
        redis = Some(pair.redis);
    }
}

/// Keys used below, by the node that serves them in both clusters
/// (slots: k2 449, k3 4576, k6 325 on node 0; k0 8579 on node 1; foo
/// 12182, a 15495, x 16287 on node 2).
#[test]
fn key_slots_used_below() {
    for (key, slot) in [
        ("k2", 449),
        ("k3", 4576),
        ("k6", 325),
        ("k0", 8579),
        ("foo", 12182),
        ("a", 15495),
        ("x", 16287),
        ("b", 3300),
    ] {
        assert_eq!(key_slot(key.as_bytes()), slot, "{key}");
    }
}

/// `{tag}` keys of one slot that live on different shards of a 2-shard
/// node (so the 2-shard runs cover a slot split over cores).
fn same_slot_two_shards(tag: &str) -> (String, String) {
    let mut on = [None, None];
    for i in 0.. {
        let key = format!("{{{tag}}}{i}");
        let s = shard_of(&key, 2);
        if on[s].is_none() {
            on[s] = Some(key);
        }
        if let [Some(a), Some(b)] = &on {
            return (a.clone(), b.clone());
        }
    }
    unreachable!()
}

// ---------------------------------------------------------------------------
// Redirections.

#[test]
fn moved_for_single_and_multi_key_commands() {
    compare(|p| {
        let (s0, s1) = same_slot_two_shards("k0");
        p.script(&format!(
            "
            get foo => -MOVED 12182 127.0.0.1:P2
            set foo bar => -MOVED 12182 127.0.0.1:P2
            get k0 => -MOVED 8579 127.0.0.1:P1
            1 get foo => -MOVED 12182 127.0.0.1:P2
            2 get k2 => -MOVED 449 127.0.0.1:P0
            exists k0
            del k0
            incr x
            lpush k0 a
            hset k0 f v
            expire k0 10
            ttl k0
            type k0
            dump k0
            watch k0 => -MOVED 8579 127.0.0.1:P1
            mget {s0} {s1} => -MOVED 8579 127.0.0.1:P1
            mset {s0} 1 {s1} 2
            del {s0} {s1}
            1 mset {s0} 1 {s1} 2 => +OK
            1 mget {s0} {s1} => [$\"1\",$\"2\"]
            1 rename {s0} {s1} => +OK
            1 mget {s0} {s1} => [$nil,$\"1\"]
            1 sadd {{k0}}s1 a b c
            1 sadd {{k0}}s2 b c d
            1 sinterstore {s0} {{k0}}s1 {{k0}}s2 => :2
            sinterstore {s0} {{k0}}s1 {{k0}}s2
            smove {{k0}}s1 {{k0}}s2 a
            1 lmove {s0} {s1} left left
            1 del {s0} {s1} {{k0}}s1 {{k0}}s2 => :4
            # Wrong arity is answered before the slot check, as Redis.
            get
            1 get
            mget
            "
        ));
    });
}

#[test]
fn crossslot_for_keys_in_two_slots() {
    compare(|p| {
        let cross = "-CROSSSLOT Keys in request don't hash to the same slot";
        p.script(&format!(
            "
            mget k2 k3 => {cross}
            mget k2 k0 => {cross}
            mset k2 1 k3 2 => {cross}
            del k2 k3 => {cross}
            unlink k2 k0 => {cross}
            exists k2 k3 => {cross}
            touch k2 k3 => {cross}
            rename k2 k3 => {cross}
            renamenx k2 k3 => {cross}
            copy k2 k3 => {cross}
            sinterstore k2 k3 k6 => {cross}
            sunion k2 k3 => {cross}
            smove k2 k3 m => {cross}
            lmove k2 k3 left left => {cross}
            rpoplpush k2 k3 => {cross}
            zunionstore k2 2 k2 k3 => {cross}
            zinter 2 k2 k0 => {cross}
            sintercard 2 k2 k3 => {cross}
            lmpop 2 k2 k3 left => {cross}
            bitop and k2 k3 => {cross}
            pfcount k2 k3 => {cross}
            pfmerge k2 k3 => {cross}
            georadius k2 0 0 1 km store k3 => {cross}
            watch k2 k3 => {cross}
            # Keys of other nodes' slots: still CROSSSLOT first.
            1 mget k2 k3 => {cross}
            "
        ));
    });
}

#[test]
fn hash_tags_keep_keys_together() {
    compare(|p| {
        let (s0, s1) = same_slot_two_shards("user1");
        p.script(&format!(
            "
            cluster keyslot {{user1}}:a => :8106
            cluster keyslot {{}}a
            cluster keyslot a{{}}
            cluster keyslot a{{b}}{{c}} => :3300
            cluster keyslot {{{{a}}}}
            cluster keyslot \"\" => :0
            cluster keyslot {{
            cluster keyslot }}{{
            cluster keyslot \"a b\"
            1 mset {s0} 1 {s1} 2 {{user1}}:x 3 => +OK
            1 mget {s0} {s1} {{user1}}:x => [$\"1\",$\"2\",$\"3\"]
            get {s0} => -MOVED 8106 127.0.0.1:P1
            1 mset {{k2}}a 1 => -MOVED 449 127.0.0.1:P0
            mset {{k2}}a 1 k2 2 {{k2}} 3 => +OK
            mget k2 {{k2}}a {{k2}} => [$\"2\",$\"1\",$\"3\"]
            # {{}} is no tag: the whole key is hashed.
            mget {{}}k2 k2
            "
        ));
    });
}

#[test]
fn transactions_in_cluster_mode() {
    compare(|p| {
        let (s0, s1) = same_slot_two_shards("k2");
        p.script(&format!(
            "
            # A queued command for another node: EXECABORT at EXEC.
            multi => +OK
            set k0 1 => -MOVED 8579 127.0.0.1:P1
            set k2 1 => +QUEUED
            exec => -EXECABORT Transaction discarded because of previous errors.
            get k2 => $nil
            exec => -ERR EXEC without MULTI
            # Queued commands in two slots of this node: CROSSSLOT at EXEC.
            multi
            set k2 1
            set k3 1
            exec => -CROSSSLOT Keys in request don't hash to the same slot
            exec => -ERR EXEC without MULTI
            get k2 => $nil
            get k3 => $nil
            # One slot (two shards with 2 workers): runs.
            watch {s0}
            multi
            set {s0} a
            set {s1} b
            get {s0}
            exec => [+OK,+OK,$\"a\"]
            # A CROSSSLOT command while queuing.
            multi
            mget k2 k3 => -CROSSSLOT Keys in request don't hash to the same slot
            exec => -EXECABORT Transaction discarded because of previous errors.
            # DISCARD after a redirection.
            multi
            get k0
            discard => +OK
            # WATCH across nodes / slots.
            watch k0 => -MOVED 8579 127.0.0.1:P1
            watch k2 k3
            watch k2 => +OK
            unwatch
            # Keyless commands queue anywhere.
            multi
            ping
            echo x
            exec => [+PONG,$\"x\"]
            "
        ));
    });
}

#[test]
fn keys_in_slot_commands_and_their_errors() {
    compare(|p| {
        let (s0, s1) = same_slot_two_shards("k2");
        p.script(&format!(
            "
            cluster keyslot foo => :12182
            cluster keyslot
            cluster keyslot a b
            mset k2 1 {s0} 2 {s1} 3 k3 4 => -CROSSSLOT Keys in request don't hash to the same slot
            mset k2 1 {s0} 2 {s1} 3
            set k3 4
            cluster countkeysinslot 449 => :3
            cluster countkeysinslot 4576 => :1
            cluster countkeysinslot 8579 => :0
            1 cluster countkeysinslot 449 => :0
            cluster countkeysinslot 16384 => -ERR Invalid slot
            cluster countkeysinslot -1 => -ERR Invalid slot
            cluster countkeysinslot x => -ERR value is not an integer or out of range
            cluster countkeysinslot
            cluster getkeysinslot 449 0 => []
            cluster getkeysinslot 4576 5 => [$\"k3\"]
            cluster getkeysinslot 0 -1 => -ERR Invalid slot or number of keys
            cluster getkeysinslot 16384 1 => -ERR Invalid slot or number of keys
            cluster getkeysinslot -1 1 => -ERR Invalid slot or number of keys
            cluster getkeysinslot x 1 => -ERR value is not an integer or out of range
            cluster getkeysinslot 1 x => -ERR value is not an integer or out of range
            cluster getkeysinslot 1
            del k2 => :1
            cluster countkeysinslot 449 => :2
            "
        ));
        // Which keys GETKEYSINSLOT lists first is each server's own order
        // (Redis: newest first): compared as sets, and COUNT caps it.
        let sorted = |r: Reply| match r {
            Reply::Array(Some(mut v)) => {
                v.sort_by_key(|x| format!("{x:?}"));
                v
            }
            other => panic!("{other:?}"),
        };
        let args = ["CLUSTER", "GETKEYSINSLOT", "449", "10"];
        let a = sorted(p.r[0].call(&args));
        let b = sorted(p.k[0].call(&args));
        assert_eq!(b, a);
        assert_eq!(a.len(), 2);
        let args = ["CLUSTER", "GETKEYSINSLOT", "449", "1"];
        let (a, b) = (sorted(p.r[0].call(&args)), sorted(p.k[0].call(&args)));
        assert_eq!((a.len(), b.len()), (1, 1));
    });
}

#[test]
fn setslot_errors() {
    compare(|p| {
        p.script(
            "
            cluster setslot 16384 stable => -ERR Invalid or out of range slot
            cluster setslot -1 stable => -ERR Invalid or out of range slot
            cluster setslot x stable => -ERR Invalid or out of range slot
            cluster setslot 1 foo => -ERR Invalid CLUSTER SETSLOT action or number of arguments. Try CLUSTER HELP
            cluster setslot 1 stable x
            cluster setslot 1 importing
            cluster setslot 1 node
            cluster setslot 1 migrating abc => -ERR I don't know about node abc
            cluster setslot 6000 migrating abc => -ERR I'm not the owner of hash slot 6000
            cluster setslot 1 importing abc => -ERR I'm already the owner of hash slot 1
            cluster setslot 6000 importing abc => -ERR I don't know about node abc
            cluster setslot 1 node abc => -ERR Unknown node abc
            cluster setslot 6000 node abc
            cluster setslot 1 stable => +OK
            cluster setslot
            cluster setslot 1
            cluster nosuch
            cluster
            cluster info x
            cluster myid x
            cluster slots x
            asking x
            readonly x
            readonly => +OK
            readwrite => +OK
            get k2 => $nil
            ",
        );
    });
}

/// MIGRATING on node 0 and IMPORTING on node 1 for slot 449 (k2): ASK
/// for missing keys, TRYAGAIN for a partial multi-key command, ASKING
/// valid for one command, SETSLOT NODE refused while keys remain, then
/// the slot handed over and back.
#[test]
fn migrating_and_importing_slots() {
    compare(|p| {
        let (s0, s1) = same_slot_two_shards("k2");
        let ids: Vec<String> = (0..3).map(|i| format!("ID{i}")).collect();
        // The scripts name node ids as ID<i>; each cluster gets its own.
        let run = |p: &mut Pair, text: &str| {
            for line in text.lines() {
                let line = line.trim();
                if line.is_empty() {
                    continue;
                }
                let mut w = words(line);
                let node: usize = w.remove(0).parse().unwrap();
                let mut rw = w.clone();
                let mut kw = w.clone();
                for (i, id) in ids.iter().enumerate() {
                    for (words, nodes) in [(&mut rw, &p.redis.nodes), (&mut kw, &p.kora.nodes)] {
                        for word in words.iter_mut() {
                            if word == id {
                                *word = nodes[i].1.clone();
                            }
                        }
                    }
                }
                let ra: Vec<&str> = rw.iter().map(String::as_str).collect();
                let ka: Vec<&str> = kw.iter().map(String::as_str).collect();
                let a = render(&p.r[node].call(&ra), &p.redis.nodes);
                let b = render(&p.k[node].call(&ka), &p.kora.nodes);
                assert_eq!(
                    b, a,
                    "{line} ({} shard(s)): Kora left, Redis right",
                    p.workers
                );
            }
        };
        run(
            p,
            &format!(
                "
                0 set {s0} here0
                0 set {s1} here1
                1 cluster setslot 449 importing ID0
                0 cluster setslot 449 migrating ID1
                0 get {s0}
                0 get k2
                0 set k2 v
                0 mget {s0} {s1}
                0 mget {s0} k2
                0 mget k2 {{k2}}zz
                0 exists k2
                0 del {s0} k2
                0 set {s0} here0
                1 get k2
                1 asking
                1 get k2
                1 get k2
                1 asking
                1 set k2 new
                1 asking
                1 ping
                1 get k2
                1 asking
                1 mget k2 {{k2}}yy
                1 asking
                1 mget k2 k2
                1 asking
                1 mget {{k2}}none {{k2}}none
                1 asking
                1 mset k2 1 {{k2}}yy 2
                0 get k2
                0 cluster countkeysinslot 449
                1 cluster countkeysinslot 449
                0 cluster setslot 449 importing ID1
                1 cluster setslot 449 migrating ID0
                0 cluster setslot 449 node ID1
                0 del {s0} {s1}
                1 asking
                1 del k2
                0 cluster setslot 449 node ID1
                0 get k2
                1 get k2
                2 get k2
                1 cluster setslot 449 node ID1
                1 get k2
                1 set k2 mine
                0 cluster setslot 449 importing ID1
                1 cluster setslot 449 migrating ID0
                0 get k2
                0 asking
                0 get k2
                1 del k2
                1 cluster setslot 449 node ID0
                0 cluster setslot 449 node ID0
                0 get k2
                1 get k2
                0 cluster setslot 449 stable
                1 cluster setslot 449 stable
                "
            ),
        );
        // After a SETSLOT NODE each side's own view changed: Redis gossips
        // it to node 2, Kora waits for the tool's next topology push, so
        // node 2 is not compared here. CLUSTER NODES shows the moves.
        for i in 0..2 {
            let shape = |r: Reply, nodes: &[(u16, String)]| nodes_shape(&r, nodes);
            let a = shape(p.r[i].call(&["CLUSTER", "NODES"]), &p.redis.nodes);
            let b = shape(p.k[i].call(&["CLUSTER", "NODES"]), &p.kora.nodes);
            assert_eq!(b, a, "CLUSTER NODES on node {i}");
        }
    });
}

#[test]
fn migrating_slot_shows_in_cluster_nodes() {
    compare(|p| {
        let (rid1, kid1) = (p.redis.nodes[1].1.clone(), p.kora.nodes[1].1.clone());
        let (rid0, kid0) = (p.redis.nodes[0].1.clone(), p.kora.nodes[0].1.clone());
        p.r[0].call(&["CLUSTER", "SETSLOT", "449", "MIGRATING", &rid1]);
        p.k[0].call(&["CLUSTER", "SETSLOT", "449", "MIGRATING", &kid1]);
        p.r[1].call(&["CLUSTER", "SETSLOT", "449", "IMPORTING", &rid0]);
        p.k[1].call(&["CLUSTER", "SETSLOT", "449", "IMPORTING", &kid0]);
        for i in 0..3 {
            let a = nodes_shape(&p.r[i].call(&["CLUSTER", "NODES"]), &p.redis.nodes);
            let b = nodes_shape(&p.k[i].call(&["CLUSTER", "NODES"]), &p.kora.nodes);
            assert_eq!(b, a, "CLUSTER NODES on node {i}");
        }
        assert!(
            nodes_shape(&p.k[0].call(&["CLUSTER", "NODES"]), &p.kora.nodes).contains("[449->-ID1]")
        );
        for i in 0..2 {
            p.same(i, &["CLUSTER", "SETSLOT", "449", "STABLE"]);
        }
    });
}

/// CLUSTER NODES reduced to what both clusters agree on: one line per
/// node sorted by node, with id, address (bus port dropped), flags,
/// master, link state and slots; ping/pong times and epochs dropped.
fn nodes_shape(r: &Reply, nodes: &[(u16, String)]) -> String {
    let Reply::Bulk(Some(text)) = r else {
        panic!("CLUSTER NODES: {r:?}")
    };
    let text = render(&Reply::Bulk(Some(text.clone())), nodes);
    let text: String = serde_unquote(&text);
    let mut lines: Vec<String> = text
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            assert!(f.len() >= 8, "CLUSTER NODES line {l:?}");
            let addr = f[1].split('@').next().unwrap();
            let mut kept = vec![f[0], addr, f[2], f[3], f[7]];
            kept.extend(&f[8..]);
            kept.join(" ")
        })
        .collect();
    lines.sort();
    lines.join("\n")
}

/// Undoes `render`'s `$"..."` quoting of a bulk string.
fn serde_unquote(s: &str) -> String {
    let inner = s
        .strip_prefix("$\"")
        .and_then(|s| s.strip_suffix('"'))
        .unwrap();
    inner.replace("\\n", "\n").replace("\\\"", "\"")
}

#[test]
fn topology_replies_have_redis_shapes() {
    compare(|p| {
        for i in 0..3 {
            p.same(i, &["CLUSTER", "SLOTS"]);
            p.same(i, &["CLUSTER", "KEYSLOT", "x"]);
            // SHARDS: same shards, in any order.
            let shards = |r: Reply, nodes: &[(u16, String)]| -> Vec<String> {
                let Reply::Array(Some(v)) = r else { panic!() };
                let mut v: Vec<String> = v.iter().map(|s| render(s, nodes)).collect();
                v.sort();
                v
            };
            let a = shards(p.r[i].call(&["CLUSTER", "SHARDS"]), &p.redis.nodes);
            let b = shards(p.k[i].call(&["CLUSTER", "SHARDS"]), &p.kora.nodes);
            assert_eq!(b, a, "CLUSTER SHARDS on node {i}");
            let a = nodes_shape(&p.r[i].call(&["CLUSTER", "NODES"]), &p.redis.nodes);
            let b = nodes_shape(&p.k[i].call(&["CLUSTER", "NODES"]), &p.kora.nodes);
            assert_eq!(b, a, "CLUSTER NODES on node {i}");
            assert!(b.contains(&format!("ID{i} 127.0.0.1:P{i} myself,master - connected")));
            // MYID is the node's id in the others' views.
            let id = render(&p.k[i].call(&["CLUSTER", "MYID"]), &p.kora.nodes);
            assert_eq!(id, format!("$\"ID{i}\""));
            p.same(i, &["CLUSTER", "MYID"]);
            // CLUSTER INFO: the same fields up to the message counters
            // (no bus) and epochs (a pushed topology has one epoch).
            let info = |r: Reply| -> Vec<String> {
                let Reply::Bulk(Some(t)) = r else { panic!() };
                String::from_utf8(t)
                    .unwrap()
                    .lines()
                    .filter(|l| !l.contains("_epoch:") && !l.contains("cluster_stats_messages"))
                    .map(String::from)
                    .collect()
            };
            let a = info(p.r[i].call(&["CLUSTER", "INFO"]));
            let b = info(p.k[i].call(&["CLUSTER", "INFO"]));
            assert_eq!(b, a, "CLUSTER INFO on node {i}");
        }
    });
}

#[test]
fn keyless_commands_run_anywhere_and_one_database() {
    compare(|p| {
        p.script(
            "
            set k2 v => +OK
            1 set k0 w => +OK
            ping => +PONG
            1 ping => +PONG
            echo hi => $\"hi\"
            dbsize => :1
            1 dbsize => :1
            2 dbsize => :0
            keys * => [$\"k2\"]
            1 keys * => [$\"k0\"]
            scan 0 => [$\"0\",[$\"k2\"]]
            randomkey => $\"k2\"
            2 randomkey => $nil
            publish ch m => :0
            config get cluster-enabled
            select 0 => +OK
            select 1 => -ERR SELECT is not allowed in cluster mode
            select 16 => -ERR SELECT is not allowed in cluster mode
            select x
            swapdb 0 1 => -ERR SWAPDB is not allowed in cluster mode
            swapdb x 0
            flushdb => +OK
            dbsize => :0
            1 flushall => +OK
            ",
        );
    });
}

/// ASKING then MULTI: Redis keeps the ASKING flag for the whole
/// transaction.
#[test]
fn asking_holds_for_a_transaction() {
    compare(|p| {
        let (r0, k0) = (p.redis.nodes[0].1.clone(), p.kora.nodes[0].1.clone());
        let (r1, k1) = (p.redis.nodes[1].1.clone(), p.kora.nodes[1].1.clone());
        p.r[1].call(&["CLUSTER", "SETSLOT", "449", "IMPORTING", &r0]);
        p.k[1].call(&["CLUSTER", "SETSLOT", "449", "IMPORTING", &k0]);
        p.r[0].call(&["CLUSTER", "SETSLOT", "449", "MIGRATING", &r1]);
        p.k[0].call(&["CLUSTER", "SETSLOT", "449", "MIGRATING", &k1]);
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            p.script(
                "
                1 asking => +OK
                1 multi => +OK
                1 set k2 v => +QUEUED
                1 get k2 => +QUEUED
                1 exec => [+OK,$\"v\"]
                ",
            )
        }));
        for i in 0..2 {
            p.same(i, &["CLUSTER", "SETSLOT", "449", "STABLE"]);
        }
        if let Err(e) = result {
            std::panic::resume_unwind(e);
        }
    });
}

/// EVAL / EVALSHA / FCALL: the declared keys are slot-checked.
#[test]
fn script_keys_are_slot_checked() {
    compare(|p| {
        p.script(
            "
            eval \"return 1\" 1 foo => -MOVED 12182 127.0.0.1:P2
            eval \"return 1\" 2 k2 k3 => -CROSSSLOT Keys in request don't hash to the same slot
            eval_ro \"return 1\" 1 foo => -MOVED 12182 127.0.0.1:P2
            evalsha 1234567890123456789012345678901234567890 1 foo => -MOVED 12182 127.0.0.1:P2
            fcall f 1 foo => -MOVED 12182 127.0.0.1:P2
            fcall_ro f 1 foo => -MOVED 12182 127.0.0.1:P2
            eval \"return 1\" 0 => :1
            eval \"return 1\" 1 k2 => :1
            multi
            eval \"return 1\" 1 foo => -MOVED 12182 127.0.0.1:P2
            exec => -EXECABORT Transaction discarded because of previous errors.
            ",
        );
    });
}

/// A script touching a key of another node's slot.
#[test]
fn script_non_local_keys() {
    compare(|p| {
        p.script(
            "
            eval \"return redis.call('get','k0')\" 1 k2 => -ERR Script attempted to access a non local key in a cluster node script: 42fad9a2b2c9a039bf2991295ba3f226494eea96, on @user_script:1.
            eval \"return redis.call('get','k0')\" 0 => -ERR Script attempted to access a non local key in a cluster node script: 42fad9a2b2c9a039bf2991295ba3f226494eea96, on @user_script:1.
            ",
        );
    });
}

/// Subcommands with keys (OBJECT, MEMORY USAGE) and SORT ... STORE.
#[test]
fn keys_of_subcommands_and_sort_store() {
    compare(|p| {
        p.script(
            "
            object encoding k0 => -MOVED 8579 127.0.0.1:P1
            object freq k0 => -MOVED 8579 127.0.0.1:P1
            memory usage k0 => -MOVED 8579 127.0.0.1:P1
            sort k2 store k3 => -CROSSSLOT Keys in request don't hash to the same slot
            ",
        );
    });
}

/// Commands whose key positions are not one plain range: the blocking
/// pops' trailing timeout, ZUNIONSTORE/ZINTERSTORE/ZDIFFSTORE's numkeys,
/// GEORADIUS ... STORE's arguments between the two keys. Kora counts those
/// words as keys, so keys of one hash tag answer CROSSSLOT (redis-py's own
/// cluster suite fails 14 tests on this).
#[test]
fn keys_of_one_tag_with_words_between() {
    compare(|p| {
        p.script(
            "
            2 rpush {foo}a 1 2 3
            2 zadd {foo}z 1 a 2 b
            2 zadd {foo}y 1 a 3 c
            2 blpop {foo}b {foo}a 1 => [$\"{foo}a\",$\"1\"]
            2 brpop {foo}b {foo}a 1 => [$\"{foo}a\",$\"3\"]
            2 bzpopmax {foo}q {foo}z 1 => [$\"{foo}z\",$\"b\",$\"2\"]
            2 bzpopmin {foo}q {foo}y 1 => [$\"{foo}y\",$\"a\",$\"1\"]
            2 zadd {foo}z 1 a 2 b
            2 zunionstore {foo}d 2 {foo}z {foo}y weights 1 2 => :3
            2 zinterstore {foo}d 2 {foo}z {foo}y => :0
            2 zdiffstore {foo}d 2 {foo}z {foo}y => :2
            2 geoadd {foo}g 2.19 41.43 p1 => :1
            2 georadius {foo}g 2.191 41.433 1000 m store {foo}places => :1
            2 georadiusbymember {foo}g p1 1000 m store {foo}places => :1
            zunionstore k2 2 k2 k0 => -CROSSSLOT Keys in request don't hash to the same slot
            1 zunionstore {k0}d 2 {k0}s1 {k0}s2 => :0
            zunionstore {k0}d 2 {k0}s1 {k0}s2 => -MOVED 8579 127.0.0.1:P1
            ",
        );
    });
}

/// Redis checks the first key's slot for an owner before it compares the
/// next key's slot: keys in two unserved slots are CLUSTERDOWN, not
/// CROSSSLOT.
#[test]
fn unbound_first_key_beats_crossslot() {
    let dir = TempDir::new("lone2");
    let (redis, rport) = redis_node(&dir.0, &[]);
    let _redis = Killed(redis);
    let kora = Server::start_with(1, &["--cluster-enabled", "yes"]);
    let none: Vec<(u16, String)> = Vec::new();
    let args = ["MGET", "a", "b"];
    let a = render(&Raw::connect(rport).call(&args), &none);
    let b = render(&Raw::connect(kora.port).call(&args), &none);
    assert_eq!(a, "-CLUSTERDOWN Hash slot not served");
    assert_eq!(b, a);
}

/// MOVE and COPY ... DB in cluster mode.
#[test]
fn one_database_texts() {
    compare(|p| {
        p.script(
            "
            move k2 1 => -ERR MOVE is not allowed in cluster mode
            copy k2 {k2}x db 1 => -ERR Copying to another database is not allowed in cluster mode
            ",
        );
    });
}

/// INFO's cluster section says cluster_enabled:1 (redis-py's test suite
/// and other tools decide cluster mode from it).
#[test]
fn info_says_cluster_enabled() {
    compare(|p| {
        let info = |r: Reply| match r {
            Reply::Bulk(Some(t)) => String::from_utf8(t).unwrap(),
            o => panic!("{o:?}"),
        };
        let a = info(p.r[0].call(&["INFO", "cluster"]));
        let b = info(p.k[0].call(&["INFO", "cluster"]));
        assert_eq!(b, a);
    });
}

// ---------------------------------------------------------------------------
// Before a topology, and the topology itself.

#[test]
fn clusterdown_before_a_topology_is_pushed() {
    let dir = TempDir::new("lone");
    let (redis, rport) = redis_node(&dir.0, &[]);
    let _redis = Killed(redis);
    let kora = Server::start_with(2, &["--cluster-enabled", "yes"]);
    let mut r = Raw::connect(rport);
    let mut k = Raw::connect(kora.port);
    let none: Vec<(u16, String)> = Vec::new();
    for args in [
        &["GET", "x"][..],
        &["SET", "x", "1"],
        &["MGET", "{a}1", "{a}2"],
        &["EXISTS", "k2"],
        &["PING"],
        &["DBSIZE"],
        &["CLUSTER", "SLOTS"],
        &["CLUSTER", "COUNTKEYSINSLOT", "1"],
        &["CLUSTER", "KEYSLOT", "x"],
    ] {
        let a = render(&r.call(args), &none);
        let b = render(&k.call(args), &none);
        assert_eq!(b, a, "{args:?}");
    }
    assert_eq!(
        render(&k.call(&["GET", "x"]), &none),
        "-CLUSTERDOWN Hash slot not served"
    );
    let info = |c: &mut Raw| match c.call(&["CLUSTER", "INFO"]) {
        Reply::Bulk(Some(t)) => String::from_utf8(t).unwrap(),
        o => panic!("{o:?}"),
    };
    for c in [&mut r, &mut k] {
        let i = info(c);
        assert!(
            i.starts_with(
                "cluster_state:fail\r\ncluster_slots_assigned:0\r\ncluster_slots_ok:0\r\n"
            ),
            "{i}"
        );
    }
}

/// Redis lists the node itself in CLUSTER NODES / SHARDS before it has
/// slots or peers.
#[test]
fn a_lone_node_lists_itself() {
    let kora = Server::start_with(1, &["--cluster-enabled", "yes"]);
    let mut k = Raw::connect(kora.port);
    let id = node_id_for("127.0.0.1", kora.port).to_string();
    let Reply::Bulk(Some(nodes)) = k.call(&["CLUSTER", "NODES"]) else {
        panic!()
    };
    let nodes = String::from_utf8(nodes).unwrap();
    assert!(
        nodes.starts_with(&format!("{id} 127.0.0.1:{}@", kora.port)),
        "{nodes:?}"
    );
    let Reply::Array(Some(shards)) = k.call(&["CLUSTER", "SHARDS"]) else {
        panic!()
    };
    assert_eq!(shards.len(), 1);
}

fn ok(r: Reply) {
    assert_eq!(r, Reply::Status("OK".into()));
}

fn err(r: Reply) -> String {
    match r {
        Reply::Error(e) => e,
        o => panic!("expected an error, got {o:?}"),
    }
}

#[test]
fn settopology_epoch_rules() {
    let kora = Server::start_with(2, &["--cluster-enabled", "yes"]);
    let mut c = Raw::connect(kora.port);
    let me = kora.port;
    let t = |epoch: u64, range: &str| format!("epoch {epoch}\nnode 127.0.0.1:{me} {range}\n");
    ok(c.call(&["CLUSTER", "SETTOPOLOGY", &t(2, "0-16383")]));
    // The same text again is fine (a re-push by the tool).
    ok(c.call(&["CLUSTER", "SETTOPOLOGY", &t(2, "0-16383")]));
    assert_eq!(
        err(c.call(&["CLUSTER", "SETTOPOLOGY", &t(1, "0-16383")])),
        "ERR Topology epoch 1 is older than this node's epoch 2"
    );
    assert_eq!(
        err(c.call(&["CLUSTER", "SETTOPOLOGY", &t(2, "0-100")])),
        "ERR Topology epoch 2 is this node's epoch with a different topology (bump the epoch or add FORCE)"
    );
    // Refusals changed nothing.
    let get = |c: &mut Raw| match c.call(&["CLUSTER", "GETTOPOLOGY"]) {
        Reply::Bulk(Some(t)) => String::from_utf8(t).unwrap(),
        o => panic!("{o:?}"),
    };
    let id = node_id_for("127.0.0.1", me);
    assert_eq!(
        get(&mut c),
        format!("epoch 2\nnode {id} 127.0.0.1:{me} 0-16383\n")
    );
    ok(c.call(&["SET", "k2", "v"]));
    // FORCE takes an older epoch or the same epoch with other content.
    ok(c.call(&["CLUSTER", "SETTOPOLOGY", &t(2, "0-100"), "FORCE"]));
    assert_eq!(
        get(&mut c),
        format!("epoch 2\nnode {id} 127.0.0.1:{me} 0-100\n")
    );
    // k12912 (slot 5) is served but not every slot is: the cluster is
    // down; k3 (slot 4576) has no owner at all.
    assert_eq!(key_slot(b"k12912"), 5);
    assert_eq!(
        err(c.call(&["GET", "k12912"])),
        "CLUSTERDOWN The cluster is down"
    );
    assert_eq!(
        err(c.call(&["GET", "k3"])),
        "CLUSTERDOWN Hash slot not served"
    );
    ok(c.call(&["CLUSTER", "SETTOPOLOGY", &t(1, "0-16383"), "force"]));
    assert_eq!(
        get(&mut c),
        format!("epoch 1\nnode {id} 127.0.0.1:{me} 0-16383\n")
    );
    // A newer epoch is taken.
    ok(c.call(&["CLUSTER", "SETTOPOLOGY", &t(5, "0-16383")]));
    let Reply::Bulk(Some(info)) = c.call(&["CLUSTER", "INFO"]) else {
        panic!()
    };
    let info = String::from_utf8(info).unwrap();
    assert!(
        info.contains("cluster_current_epoch:5\r\ncluster_my_epoch:5\r\n"),
        "{info}"
    );
    // Invalid texts and arguments.
    for (text, expected) in [
        (
            "junk",
            "ERR Invalid topology: line 1: unknown keyword `junk`",
        ),
        (
            "epoch 9\nnode 127.0.0.1:1 0-16384\n",
            "ERR Invalid topology: line 2: invalid slot or range `0-16384`",
        ),
        (
            "epoch 9\nnode 127.0.0.1:1 0-10\nnode 127.0.0.1:2 10\n",
            "ERR Invalid topology: slot 10 is assigned twice",
        ),
    ] {
        assert_eq!(err(c.call(&["CLUSTER", "SETTOPOLOGY", text])), expected);
    }
    assert_eq!(
        err(c.call(&["CLUSTER", "SETTOPOLOGY", &t(9, "0-16383"), "NOW"])),
        "ERR syntax error"
    );
    assert_eq!(
        get(&mut c),
        format!("epoch 5\nnode {id} 127.0.0.1:{me} 0-16383\n")
    );
    // The data survived every push.
    assert_eq!(c.call(&["GET", "k2"]), Reply::Bulk(Some(b"v".to_vec())));
}

/// Starts kora on a given port (the restart test needs the same port
/// again, which `Server` does not offer).
struct Fixed(Child, u16);

impl Fixed {
    fn start(port: u16, workers: usize, extra: &[&str]) -> Fixed {
        let mut child = Command::new(env!("CARGO_BIN_EXE_kora"))
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--metrics-port", "0", "--workers", &workers.to_string()])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start kora");
        assert!(
            wait_pong(port, &mut child),
            "kora did not restart on {port}"
        );
        Fixed(child, port)
    }
}

impl Drop for Fixed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn config_file_is_written_on_push_and_read_at_restart() {
    let dir = TempDir::new("conf");
    let files: Vec<String> = (0..3)
        .map(|i| dir.0.join(format!("node{i}.conf")).display().to_string())
        .collect();
    let servers: Vec<Server> = files
        .iter()
        .map(|f| {
            Server::start_with(
                2,
                &[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    f.as_str(),
                ],
            )
        })
        .collect();
    let ports: Vec<u16> = servers.iter().map(|s| s.port).collect();
    assert!(
        !std::path::Path::new(&files[0]).exists(),
        "no file before a push"
    );
    let text = topology(3, &ports);
    for &p in &ports {
        ok(Raw::connect(p).call(&["CLUSTER", "SETTOPOLOGY", &text]));
    }
    let canonical = match Raw::connect(ports[0]).call(&["CLUSTER", "GETTOPOLOGY"]) {
        Reply::Bulk(Some(t)) => String::from_utf8(t).unwrap(),
        o => panic!("{o:?}"),
    };
    for f in &files {
        assert_eq!(std::fs::read_to_string(f).unwrap(), canonical, "{f}");
    }
    let mut c = Raw::connect(ports[1]);
    ok(c.call(&["SET", "k0", "kept?"]));
    let before_nodes = c.call(&["CLUSTER", "NODES"]);
    let before_id = c.call(&["CLUSTER", "MYID"]);
    drop(c);
    // Restart node 1 on the same port with the same file.
    let mut servers = servers;
    let old = servers.remove(1);
    assert!(old.terminate().success());
    let restarted = Fixed::start(
        ports[1],
        2,
        &[
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            &files[1],
        ],
    );
    let mut c = Raw::connect(restarted.1);
    assert_eq!(c.call(&["CLUSTER", "MYID"]), before_id);
    assert_eq!(
        before_id,
        Reply::Bulk(Some(
            node_id_for("127.0.0.1", ports[1]).to_string().into_bytes()
        ))
    );
    assert_eq!(c.call(&["CLUSTER", "NODES"]), before_nodes);
    assert_eq!(
        c.call(&["CLUSTER", "GETTOPOLOGY"]),
        Reply::Bulk(Some(canonical.clone().into_bytes()))
    );
    let Reply::Bulk(Some(info)) = c.call(&["CLUSTER", "INFO"]) else {
        panic!()
    };
    assert!(
        String::from_utf8(info)
            .unwrap()
            .starts_with("cluster_state:ok\r\n")
    );
    assert_eq!(
        err(c.call(&["GET", "k2"])),
        format!("MOVED 449 127.0.0.1:{}", ports[0])
    );
    // An older push is still refused after the restart (the epoch came back).
    assert_eq!(
        err(c.call(&["CLUSTER", "SETTOPOLOGY", &topology(2, &ports)])),
        "ERR Topology epoch 2 is older than this node's epoch 3"
    );
    // A newer one is taken and written again.
    let newer = topology(4, &[ports[0], ports[1], ports[2]]);
    ok(c.call(&["CLUSTER", "SETTOPOLOGY", &newer]));
    assert!(
        std::fs::read_to_string(&files[1])
            .unwrap()
            .starts_with("epoch 4\n")
    );
    // A file that does not parse stops the start with a message, not a
    // silent empty topology.
    std::fs::write(dir.0.join("bad.conf"), "epoch x\n").unwrap();
    let bad = dir.0.join("bad.conf").display().to_string();
    let out = Command::new(env!("CARGO_BIN_EXE_kora"))
        .args(["--bind", "127.0.0.1", "--port", &free_port().to_string()])
        .args(["--metrics-port", "0", "--workers", "1"])
        .args(["--cluster-enabled", "yes", "--cluster-config-file", &bad])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("bad.conf"), "{stderr}");
}

#[test]
fn cluster_commands_without_cluster_mode() {
    let kora = Server::start(1);
    let r = redis_ref::RedisRef::start(free_port(), "cluster disabled").expect("redis-server");
    let mut k = Raw::connect(kora.port);
    let mut rc = Raw::connect(r.port);
    let none: Vec<(u16, String)> = Vec::new();
    for args in [
        &["CLUSTER", "INFO"][..],
        &["CLUSTER", "SLOTS"],
        &["CLUSTER", "NODES"],
        &["CLUSTER", "MYID"],
        &["CLUSTER", "KEYSLOT", "x"],
        &["CLUSTER", "NOSUCH"],
        &["CLUSTER", "MEET", "127.0.0.1", "1"],
        &["CLUSTER", "ADDSLOTS", "1"],
        &["CLUSTER", "KEYSLOT"],
        &["ASKING"],
        &["READONLY"],
        &["READWRITE"],
    ] {
        let a = render(&rc.call(args), &none);
        let b = render(&k.call(args), &none);
        assert_eq!(b, a, "{args:?}");
    }
    assert_eq!(
        render(&k.call(&["CLUSTER", "INFO"]), &none),
        "-ERR This instance has cluster support disabled"
    );
}
