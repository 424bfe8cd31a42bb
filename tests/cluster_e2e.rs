//! The cluster's end-to-end tests from issue 16, over every part at once:
//! `kora cluster create/reshard/check` (the tool), MIGRATE, peer health
//! checks and the cluster metrics.
//!
//! - A reshard of 1000 slots while a client loops SET/GET with
//!   verification: zero lost or wrong values, every MOVED / ASK followed
//!   by the client itself (a redirect-following client below, no library
//!   magic), TRYAGAIN retried.
//! - Killing one node: within `cluster-node-timeout` its slots answer
//!   CLUSTERDOWN on the others (never data from the wrong node); with
//!   full coverage off the others keep serving theirs; the node back on
//!   the same port with its topology file rejoins.
//! - A real Prometheus scraping all three nodes (file-based discovery, as
//!   tools/prometheus.yml shows it).

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{Server, TempDir, free_port};
use kora::cluster::{key_slot, node_id_for};

// ---------------------------------------------------------------------------
// A small RESP2 client and a cluster client that follows redirections.

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
    fn connect(port: u16) -> std::io::Result<Raw> {
        let s = TcpStream::connect(("127.0.0.1", port))?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        Ok(Raw {
            writer: s.try_clone()?,
            reader: BufReader::new(s),
        })
    }

    fn call(&mut self, args: &[&str]) -> std::io::Result<Reply> {
        let mut out = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            out.extend_from_slice(format!("${}\r\n{a}\r\n", a.len()).as_bytes());
        }
        self.writer.write_all(&out)?;
        self.read()
    }

    fn read(&mut self) -> std::io::Result<Reply> {
        let mut line = String::new();
        if self.reader.read_line(&mut line)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let line = line.trim_end_matches("\r\n");
        let (kind, rest) = line.split_at(1);
        Ok(match kind {
            "+" => Reply::Status(rest.into()),
            "-" => Reply::Error(rest.into()),
            ":" => Reply::Int(rest.parse().unwrap()),
            "$" => {
                let n: i64 = rest.parse().unwrap();
                if n < 0 {
                    return Ok(Reply::Bulk(None));
                }
                let mut buf = vec![0u8; n as usize + 2];
                self.reader.read_exact(&mut buf)?;
                buf.truncate(n as usize);
                Reply::Bulk(Some(buf))
            }
            "*" => {
                let n: i64 = rest.parse().unwrap();
                if n < 0 {
                    return Ok(Reply::Array(None));
                }
                let mut v = Vec::new();
                for _ in 0..n {
                    v.push(self.read()?);
                }
                Reply::Array(Some(v))
            }
            _ => panic!("not RESP2: {line:?}"),
        })
    }
}

fn call(port: u16, args: &[&str]) -> Reply {
    Raw::connect(port).unwrap().call(args).unwrap()
}

fn bulk_text(r: Reply) -> String {
    match r {
        Reply::Bulk(Some(b)) => String::from_utf8(b).unwrap(),
        o => panic!("expected a bulk string, got {o:?}"),
    }
}

/// Counts of what a [`ClusterClient`] met.
#[derive(Default, Debug)]
struct Redirects {
    moved: u64,
    ask: u64,
    tryagain: u64,
}

/// A cluster client as redis-py's or redis-rs' are, written out so that
/// the test sees every redirection: a slot → node map from CLUSTER SLOTS,
/// MOVED updates it and retries, ASK sends ASKING + the command to the
/// named node once, TRYAGAIN waits and retries.
struct ClusterClient {
    owner: Vec<u16>,
    conns: HashMap<u16, Raw>,
    seen: Redirects,
}

fn address_port(addr: &str) -> u16 {
    addr.rsplit_once(':').unwrap().1.parse().unwrap()
}

impl ClusterClient {
    fn new(entry: u16) -> ClusterClient {
        let mut c = ClusterClient {
            owner: vec![entry; 16384],
            conns: HashMap::new(),
            seen: Redirects::default(),
        };
        let Reply::Array(Some(ranges)) = call(entry, &["CLUSTER", "SLOTS"]) else {
            panic!("CLUSTER SLOTS")
        };
        for r in ranges {
            let Reply::Array(Some(r)) = r else { panic!() };
            let (Reply::Int(a), Reply::Int(b), Reply::Array(Some(node))) = (&r[0], &r[1], &r[2])
            else {
                panic!("{r:?}")
            };
            let Reply::Int(port) = node[1] else { panic!() };
            for s in *a..=*b {
                c.owner[s as usize] = port as u16;
            }
        }
        c
    }

    fn conn(&mut self, port: u16) -> &mut Raw {
        self.conns
            .entry(port)
            .or_insert_with(|| Raw::connect(port).expect("connect to a cluster node"))
    }

    /// Runs a command on `args[1]`'s slot, following redirections.
    fn exec(&mut self, args: &[&str]) -> Result<Reply, String> {
        let slot = key_slot(args[1].as_bytes());
        let mut port = self.owner[slot as usize];
        let mut asking = false;
        for _ in 0..50 {
            if asking {
                let r = self
                    .conn(port)
                    .call(&["ASKING"])
                    .map_err(|e| e.to_string())?;
                if r != Reply::Status("OK".into()) {
                    return Err(format!("ASKING answered {r:?}"));
                }
            }
            let reply = self.conn(port).call(args).map_err(|e| e.to_string())?;
            asking = false;
            match &reply {
                Reply::Error(e) if e.starts_with("MOVED ") => {
                    let mut w = e.split(' ').skip(1);
                    let s: usize = w.next().unwrap().parse().unwrap();
                    let to = address_port(w.next().unwrap());
                    assert_eq!(s, slot as usize, "MOVED names the key's slot");
                    self.owner[s] = to;
                    port = to;
                    self.seen.moved += 1;
                }
                Reply::Error(e) if e.starts_with("ASK ") => {
                    port = address_port(e.split(' ').nth(2).unwrap());
                    asking = true;
                    self.seen.ask += 1;
                }
                Reply::Error(e) if e.starts_with("TRYAGAIN") => {
                    self.seen.tryagain += 1;
                    std::thread::sleep(Duration::from_millis(5));
                }
                _ => return Ok(reply),
            }
        }
        Err(format!("{args:?}: more than 50 redirections"))
    }
}

// ---------------------------------------------------------------------------

fn tool(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_kora"))
        .arg("cluster")
        .args(args)
        .output()
        .expect("run kora cluster");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn addr(port: u16) -> String {
    format!("127.0.0.1:{port}")
}

/// Keys `prefix<i>` whose slots are in `slots`, `count` of them.
fn keys_in(prefix: &str, slots: std::ops::Range<u16>, count: usize) -> Vec<String> {
    (0..)
        .map(|i| format!("{prefix}{i}"))
        .filter(|k| slots.contains(&key_slot(k.as_bytes())))
        .take(count)
        .collect()
}

/// A reshard of 1000 slots (node 0's lowest, 0..999, to node 1) with
/// `kora cluster reshard` while a client loops SET then GET with
/// verification over keys in the moving slots and elsewhere, following
/// every MOVED and ASK itself: no lost or wrong value, and the keys end
/// where the new topology says.
#[test]
fn reshard_1000_slots_under_a_verifying_load() {
    let servers: Vec<Server> = (0..3)
        .map(|_| Server::start_with(2, &["--cluster-enabled", "yes"]))
        .collect();
    let ports: Vec<u16> = servers.iter().map(|s| s.port).collect();
    let (ok, out) = tool(&["create", &addr(ports[0]), &addr(ports[1]), &addr(ports[2])]);
    assert!(ok, "kora cluster create:\n{out}");

    // 3000 keys in the slots that move, 1000 in slots that do not.
    let mut keys = keys_in("mv:", 0..1000, 3000);
    keys.extend(keys_in("st:", 1000..16384, 1000));
    let keys = Arc::new(keys);
    let mut model: HashMap<String, String> = HashMap::new();
    let mut c = ClusterClient::new(ports[0]);
    for k in keys.iter() {
        let v = format!("{k}=0");
        assert_eq!(c.exec(&["SET", k, &v]), Ok(Reply::Status("OK".into())));
        model.insert(k.clone(), v);
    }

    let stop = Arc::new(AtomicBool::new(false));
    let worker = {
        let (stop, keys, entry) = (stop.clone(), keys.clone(), ports[2]);
        std::thread::spawn(move || {
            let mut c = ClusterClient::new(entry);
            let mut errors = Vec::new();
            let mut ops = 0u64;
            let mut x = 0x2545F4914F6CDD1Du64;
            let mut rng = || {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x
            };
            while !stop.load(Ordering::Relaxed) && errors.len() < 20 {
                let k = &keys[(rng() % keys.len() as u64) as usize];
                let v = format!("{k}={ops}");
                match c.exec(&["SET", k, &v]) {
                    Ok(Reply::Status(s)) if s == "OK" => {
                        model.insert(k.clone(), v.clone());
                    }
                    other => errors.push(format!("SET {k}: {other:?}")),
                }
                match c.exec(&["GET", k]) {
                    Ok(Reply::Bulk(Some(got))) if got == v.as_bytes() => {}
                    other => errors.push(format!("GET {k} just after SET {v}: {other:?}")),
                }
                // And a key written earlier: it must still hold its last value.
                let k2 = &keys[(rng() % keys.len() as u64) as usize];
                let want = model[k2].clone();
                match c.exec(&["GET", k2]) {
                    Ok(Reply::Bulk(Some(got))) if got == want.as_bytes() => {}
                    other => errors.push(format!("GET {k2}, last wrote {want}: {other:?}")),
                }
                ops += 1;
            }
            (errors, ops, c.seen, model)
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    let (ok, out) = tool(&[
        "reshard",
        &addr(ports[0]),
        "--from",
        &addr(ports[0]),
        "--to",
        &addr(ports[1]),
        "--slots",
        "1000",
    ]);
    let took = started.elapsed();
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    let (errors, ops, seen, model) = worker.join().unwrap();
    assert!(ok, "kora cluster reshard:\n{out}");
    // Lost writes (checked first, through fresh clients) are told apart
    // from wrong reads during the move (the loop's errors, checked last).
    let mut lost = Vec::new();
    for &p in &ports {
        let mut fresh = ClusterClient::new(p);
        for (k, v) in &model {
            let got = fresh.exec(&["GET", k]);
            if got != Ok(Reply::Bulk(Some(v.clone().into_bytes()))) {
                lost.push(format!("{k} via entry {p}: {got:?}, last wrote {v}"));
            }
        }
    }
    assert!(
        lost.is_empty(),
        "{} keys lost or wrong after the reshard: {:#?}\n(and {} errors during it: {errors:#?})",
        lost.len(),
        &lost[..lost.len().min(10)],
        errors.len()
    );
    assert!(
        errors.is_empty(),
        "no key lost, but {} wrong replies during the reshard: {:#?}",
        errors.len(),
        &errors[..errors.len().min(20)]
    );
    assert!(ops > 100, "the client made only {ops} rounds");
    // Keys of the moving slots were touched during the move: the client
    // must have been redirected (MOVED after, ASK during).
    assert!(seen.moved > 0, "no MOVED seen: {seen:?}");
    eprintln!("reshard took {took:?}; client: {ops} rounds, {seen:?}");

    // The new topology everywhere, and every key where it belongs.
    let (ok, out) = tool(&["check", &addr(ports[2])]);
    assert!(ok, "kora cluster check after the reshard:\n{out}");
    for &p in &ports {
        let mut fresh = ClusterClient::new(p);
        assert_eq!(fresh.owner[0], ports[1]);
        assert_eq!(fresh.owner[999], ports[1]);
        assert_eq!(fresh.owner[1000], ports[0]);
        for (k, v) in &model {
            assert_eq!(
                fresh.exec(&["GET", k]),
                Ok(Reply::Bulk(Some(v.clone().into_bytes()))),
                "{k} via entry {p}"
            );
        }
        assert_eq!(fresh.seen.moved, 0, "a fresh client's map is right");
    }
    for slot in [0, 500, 999] {
        let s = slot.to_string();
        assert_eq!(
            call(ports[0], &["CLUSTER", "COUNTKEYSINSLOT", &s]),
            Reply::Int(0)
        );
        let on_dst = call(ports[1], &["CLUSTER", "COUNTKEYSINSLOT", &s]);
        let expected = model
            .keys()
            .filter(|k| key_slot(k.as_bytes()) == slot)
            .count();
        assert_eq!(
            on_dst,
            Reply::Int(expected as i64),
            "slot {slot} on the new owner"
        );
    }
    // No slot left MIGRATING/IMPORTING.
    for &p in &ports {
        let nodes = bulk_text(call(p, &["CLUSTER", "NODES"]));
        assert!(!nodes.contains("->-") && !nodes.contains("-<-"), "{nodes}");
    }
}

// ---------------------------------------------------------------------------

/// kora on a given port (a killed node comes back on the same one).
struct Node {
    child: Option<Child>,
    port: u16,
    args: Vec<String>,
}

impl Node {
    fn start(port: u16, args: &[String]) -> Node {
        let mut n = Node {
            child: None,
            port,
            args: args.to_vec(),
        };
        n.restart();
        n
    }

    fn restart(&mut self) {
        let mut child = Command::new(env!("CARGO_BIN_EXE_kora"))
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--metrics-port", "0", "--workers", "2"])
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start kora");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            assert!(
                Instant::now() < deadline,
                "kora did not start on {}",
                self.port
            );
            assert!(child.try_wait().unwrap().is_none(), "kora exited");
            if let Ok(mut c) = Raw::connect(self.port)
                && c.call(&["PING"]).ok() == Some(Reply::Status("PONG".into()))
            {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.child = Some(child);
    }

    /// SIGKILL: a crash, not a clean stop.
    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

fn info_field(port: u16, field: &str) -> String {
    bulk_text(call(port, &["CLUSTER", "INFO"]))
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")).map(str::to_string))
        .unwrap_or_else(|| panic!("no {field} in CLUSTER INFO"))
}

/// Kill node 2: within node-timeout (500 ms here) its slots answer
/// CLUSTERDOWN on nodes 0 and 1, never a value; with full coverage (the
/// default) the whole cluster is down, as Redis; with
/// cluster-require-full-coverage no only its slots are; back on its port
/// with its topology file, it rejoins and the cluster is ok again.
#[test]
fn a_killed_node_takes_its_slots_down() {
    const TIMEOUT_MS: u64 = 500;
    let dir = TempDir::new("kill");
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let topology = format!(
        "epoch 1\nnode 127.0.0.1:{} 0-5460\nnode 127.0.0.1:{} 5461-10922\nnode 127.0.0.1:{} 10923-16383\n",
        ports[0], ports[1], ports[2]
    );
    let mut nodes: Vec<Node> = (0..3)
        .map(|i| {
            let file = dir.0.join(format!("node{i}.conf"));
            std::fs::write(&file, &topology).unwrap();
            let args: Vec<String> = [
                "--cluster-enabled",
                "yes",
                "--cluster-node-timeout",
                &TIMEOUT_MS.to_string(),
                "--cluster-config-file",
                file.to_str().unwrap(),
            ]
            .iter()
            .map(|s| s.to_string())
            .collect();
            Node::start(ports[i], &args)
        })
        .collect();
    for &p in &ports {
        assert_eq!(info_field(p, "cluster_state"), "ok");
    }
    // foo: slot 12182 (node 2); k2: slot 449 (node 0); k0: 8579 (node 1).
    let mut c = ClusterClient::new(ports[0]);
    for k in ["foo", "k2", "k0"] {
        assert_eq!(c.exec(&["SET", k, "v"]), Ok(Reply::Status("OK".into())));
    }
    let moved = Reply::Error(format!("MOVED 12182 127.0.0.1:{}", ports[2]));
    assert_eq!(call(ports[0], &["GET", "foo"]), moved);

    let killed = Instant::now();
    nodes[2].kill();
    let mut c0 = Raw::connect(ports[0]).unwrap();
    let down = loop {
        let r = c0.call(&["GET", "foo"]).unwrap();
        match &r {
            Reply::Error(e) if e.starts_with("CLUSTERDOWN") => break r,
            r if *r == moved => {}
            other => {
                panic!("GET foo on node 0 after node 2 died: {other:?} (data from the wrong node?)")
            }
        }
        assert!(
            killed.elapsed() < Duration::from_millis(TIMEOUT_MS * 3 + 2000),
            "node 0 still redirects to the dead node after {:?}",
            killed.elapsed()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let after = killed.elapsed();
    assert!(
        after >= Duration::from_millis(TIMEOUT_MS / 2),
        "failed after {after:?}, before the node timeout"
    );
    eprintln!("node 0 answered {down:?} {after:?} after the kill");
    // Full coverage (default): the whole cluster is down, as Redis.
    for &p in &ports[..2] {
        let deadline = Instant::now() + Duration::from_millis(TIMEOUT_MS * 3 + 2000);
        while info_field(p, "cluster_state") != "fail" {
            assert!(
                Instant::now() < deadline,
                "node on {p} never saw the failure"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        for k in ["foo", "k2", "k0"] {
            assert_eq!(
                call(p, &["GET", k]),
                Reply::Error("CLUSTERDOWN The cluster is down".into()),
                "GET {k} on {p}"
            );
        }
        let nodes = bulk_text(call(p, &["CLUSTER", "NODES"]));
        let line = nodes
            .lines()
            .find(|l| l.contains(&format!("127.0.0.1:{}@", ports[2])))
            .unwrap();
        assert!(line.contains(" master,fail "), "{line}");
        assert_eq!(info_field(p, "cluster_slots_fail"), "5461");
    }
    // Full coverage off: the others serve their own slots again; the dead
    // node's slots are not served by anyone.
    for &p in &ports[..2] {
        assert_eq!(
            call(p, &["CONFIG", "SET", "cluster-require-full-coverage", "no"]),
            Reply::Status("OK".into())
        );
    }
    let mut c = ClusterClient::new(ports[1]);
    assert_eq!(c.exec(&["GET", "k2"]), Ok(Reply::Bulk(Some(b"v".to_vec()))));
    assert_eq!(c.exec(&["GET", "k0"]), Ok(Reply::Bulk(Some(b"v".to_vec()))));
    for &p in &ports[..2] {
        assert_eq!(
            call(p, &["GET", "foo"]),
            Reply::Error("CLUSTERDOWN Hash slot not served".into())
        );
    }
    // Back on its port with its topology file: it rejoins.
    nodes[2].restart();
    let back = Instant::now();
    for &p in &ports[..2] {
        call(
            p,
            &["CONFIG", "SET", "cluster-require-full-coverage", "yes"],
        );
        while info_field(p, "cluster_state") != "ok" {
            assert!(
                back.elapsed() < Duration::from_millis(TIMEOUT_MS * 3 + 2000),
                "node on {p} never saw node 2 back"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(call(p, &["GET", "foo"]), moved);
    }
    assert_eq!(info_field(ports[2], "cluster_state"), "ok");
    // A cache restarted empty: the key is gone, not served stale.
    assert_eq!(call(ports[2], &["GET", "foo"]), Reply::Bulk(None));
}

// ---------------------------------------------------------------------------

/// GET `path` from 127.0.0.1:`port` as JSON; None while nothing answers
/// (Prometheus starting). HTTP/1.0, so the body is plain, to the close.
fn http_json(port: u16, path: &str) -> Option<serde_json::Value> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").as_bytes())
        .ok()?;
    let mut response = Vec::new();
    s.read_to_end(&mut response).ok()?;
    let text = String::from_utf8(response).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    if !head.starts_with("HTTP/1.0 200") && !head.starts_with("HTTP/1.1 200") {
        return None;
    }
    serde_json::from_str(body).ok()
}

/// PromQL `query` on the Prometheus at `port`: the result vector.
fn promql(port: u16, query: &str) -> Vec<serde_json::Value> {
    let mut q = String::new();
    for b in query.bytes() {
        if b.is_ascii_alphanumeric() || b"_-.".contains(&b) {
            q.push(b as char);
        } else {
            q.push_str(&format!("%{b:02X}"));
        }
    }
    http_json(port, &format!("/api/v1/query?query={q}"))
        .and_then(|v| v["data"]["result"].as_array().cloned())
        .unwrap_or_default()
}

/// A real Prometheus scrapes all three nodes through file-based discovery
/// (a targets file as tools/cluster-targets.json): every node is up, each
/// carries its own node id, and the cluster-wide sums add up.
#[test]
fn prometheus_scrapes_all_three_nodes() {
    assert!(
        Command::new("prometheus").arg("--version").output().is_ok(),
        "prometheus is required (tools/test.sh installs it)"
    );
    let dir = TempDir::new("prom");
    let servers: Vec<Server> = (0..3)
        .map(|_| Server::start_with(1, &["--cluster-enabled", "yes"]))
        .collect();
    let ports: Vec<u16> = servers.iter().map(|s| s.port).collect();
    let topology = format!(
        "epoch 1\nnode 127.0.0.1:{} 0-5460\nnode 127.0.0.1:{} 5461-10922\nnode 127.0.0.1:{} 10923-16383\n",
        ports[0], ports[1], ports[2]
    );
    for &p in &ports {
        assert_eq!(
            call(p, &["CLUSTER", "SETTOPOLOGY", &topology]),
            Reply::Status("OK".into())
        );
    }
    let targets: Vec<String> = servers
        .iter()
        .map(|s| format!("\"127.0.0.1:{}\"", s.metrics_port))
        .collect();
    std::fs::write(
        dir.0.join("targets.json"),
        format!(
            "[{{\"targets\": [{}], \"labels\": {{\"cluster\": \"test\"}}}}]\n",
            targets.join(", ")
        ),
    )
    .unwrap();
    std::fs::write(
        dir.0.join("prometheus.yml"),
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: kora\n    file_sd_configs:\n      - files: [\"{}\"]\n        refresh_interval: 1s\n",
            dir.0.join("targets.json").display()
        ),
    )
    .unwrap();
    let pport = free_port();
    let mut prom = Command::new("prometheus")
        .arg(format!(
            "--config.file={}",
            dir.0.join("prometheus.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.0.join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{pport}"))
        .arg("--log.level=warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start prometheus");
    struct Kill<'a>(&'a mut Child);
    impl Drop for Kill<'_> {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _guard = Kill(&mut prom);
    let deadline = Instant::now() + Duration::from_secs(60);
    let up = loop {
        let up = promql(pport, "up{job=\"kora\"} == 1");
        let info = promql(pport, "kora_cluster_node_info");
        if up.len() == 3 && info.len() == 3 {
            break up;
        }
        assert!(
            Instant::now() < deadline,
            "prometheus did not see 3 nodes up: {up:?}"
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    assert_eq!(up.len(), 3);
    let mut ids: Vec<String> = promql(pport, "kora_cluster_node_info")
        .iter()
        .map(|s| s["metric"]["node_id"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    let mut expected: Vec<String> = ports
        .iter()
        .map(|&p| node_id_for("127.0.0.1", p).to_string())
        .collect();
    expected.sort();
    assert_eq!(
        ids, expected,
        "each node's /metrics carries its own node id"
    );
    let scalar = |q: &str| -> f64 {
        let r = promql(pport, q);
        assert_eq!(r.len(), 1, "{q}: {r:?}");
        r[0]["value"][1].as_str().unwrap().parse().unwrap()
    };
    assert_eq!(scalar("sum(kora_cluster_slots_owned)"), 16384.0);
    assert_eq!(scalar("min(kora_cluster_state)"), 1.0);
    assert_eq!(scalar("count(kora_cluster_enabled == 1)"), 3.0);
}
