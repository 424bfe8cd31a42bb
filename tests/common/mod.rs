//! Test harness: starts the real `kora` binary on free loopback ports and
//! stops it when dropped.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct Server {
    pub port: u16,
    pub metrics_port: u16,
    pub workers: usize,
    child: Option<Child>,
}

/// A port nobody listens on right now, never handed out twice in this
/// process (with SO_REUSEPORT two servers of parallel tests would share
/// one), and below the kernel's ephemeral range: a port from bind(0) is in
/// that range, where any test's outgoing connection may take it as its
/// local port before the server binds it (a cluster node of a test run in
/// parallel with another's many clients once exited at start with "Address
/// already in use").
pub fn free_port() -> u16 {
    static GIVEN: Mutex<Vec<u16>> = Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap();
    let ephemeral = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    // Ports [low, ephemeral), probed from a point that differs between
    // processes, so that test binaries running at once rarely probe alike.
    let low = ephemeral.saturating_sub(12000).max(1024);
    let span = u32::from(ephemeral.saturating_sub(low));
    let start = std::process::id().wrapping_mul(7919) % span.max(1);
    for i in 0..span {
        let port = low + ((start + i) % span) as u16;
        if !given.contains(&port) && TcpListener::bind(("127.0.0.1", port)).is_ok() {
            given.push(port);
            return port;
        }
    }
    loop {
        let probe = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = probe.local_addr().unwrap().port();
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

impl Server {
    pub fn start(workers: usize) -> Server {
        Server::start_with(workers, &[])
    }

    pub fn start_with(workers: usize, extra: &[&str]) -> Server {
        'attempts: for _attempt in 0..3 {
            let port = free_port();
            let metrics_port = free_port();
            let mut child = Command::new(env!("CARGO_BIN_EXE_kora"))
                .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
                .args(["--metrics-port", &metrics_port.to_string()])
                .args(["--workers", &workers.to_string()])
                .args(extra)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start kora");
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) {
                    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                    if s.write_all(b"PING\r\n").is_ok() {
                        let mut buf = [0u8; 7];
                        if s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n" {
                            let server = Server {
                                port,
                                metrics_port,
                                workers,
                                child: Some(child),
                            };
                            // SO_REUSEPORT would let a server another test started on the
                            // same free port answer too: make sure it is ours.
                            if server.owns_ports() {
                                return server;
                            }
                            drop(server);
                            continue 'attempts;
                        }
                    }
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("kora did not start");
    }

    fn owns_ports(&self) -> bool {
        let pid = self.child.as_ref().map(|c| c.id()).unwrap_or(0);
        let mut c = self.client();
        let ours = (0..8).all(|_| {
            let info: String = redis::cmd("INFO")
                .arg("server")
                .query(&mut c)
                .unwrap_or_default();
            let fresh: String = redis::cmd("INFO")
                .arg("server")
                .query(&mut self.client())
                .unwrap_or_default();
            [info, fresh]
                .iter()
                .all(|i| i.contains(&format!("process_id:{pid}\r\n")))
        });
        let metrics = std::panic::catch_unwind(|| self.metrics()).unwrap_or_default();
        ours && metrics.contains("# TYPE kora_commands_total counter")
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    pub fn client(&self) -> redis::Connection {
        let client = redis::Client::open(self.url()).unwrap();
        client
            .get_connection_with_timeout(Duration::from_secs(5))
            .unwrap()
    }

    /// A raw socket for byte-level protocol tests.
    pub fn raw(&self) -> TcpStream {
        let s = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// The server process' resident memory, from /proc.
    pub fn rss_bytes(&self) -> u64 {
        rss_of(self.pid())
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().unwrap();
        unsafe {
            libc::kill(child.id() as i32, libc::SIGTERM);
        }
        wait_timeout(&mut child, Duration::from_secs(10)).expect("kora exits after SIGTERM")
    }

    pub fn wait_exit(mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let mut child = self.child.take().unwrap();
        let status = wait_timeout(&mut child, timeout);
        if status.is_none() {
            let _ = child.kill();
            let _ = child.wait();
        }
        status
    }

    /// GET a path from the metrics endpoint; returns (status, headers, body).
    pub fn http(&self, request: &str) -> (u16, String, Vec<u8>) {
        http_request(self.metrics_port, request)
    }

    pub fn metrics(&self) -> String {
        let (status, _, body) =
            self.http("GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        assert_eq!(status, 200);
        String::from_utf8(body).unwrap()
    }
}

pub fn http_request(port: u16, request: &str) -> (u16, String, Vec<u8>) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut reader = BufReader::new(s);
    read_http_response(&mut reader, request.starts_with("HEAD"))
}

pub fn read_http_response(reader: &mut impl BufRead, head_only: bool) -> (u16, String, Vec<u8>) {
    let mut status_line = String::new();
    reader.read_line(&mut status_line).unwrap();
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let mut headers = String::new();
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        if line == "\r\n" || line.is_empty() {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = v.trim().parse().unwrap();
        }
        headers.push_str(&line);
    }
    let mut body = vec![0u8; if head_only { 0 } else { length }];
    reader.read_exact(&mut body).unwrap();
    (status, headers, body)
}

/// Resident memory of process `pid` in bytes (VmRSS).
pub fn rss_of(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

pub fn wait_timeout(child: &mut Child, timeout: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The shard that owns `key` with `n` shards — the same function the
/// server routes with.
pub fn shard_of(key: &str, n: usize) -> usize {
    kora::coord::shard_of(key.as_bytes(), n)
}

/// Keys with the given prefix, `count` of them on each of `n` shards.
pub fn keys_on_each_shard(prefix: &str, n: usize, count: usize) -> Vec<Vec<String>> {
    let mut per: Vec<Vec<String>> = vec![Vec::new(); n];
    let mut i = 0;
    while per.iter().any(|v| v.len() < count) {
        let key = format!("{prefix}{i}");
        let s = shard_of(&key, n);
        if per[s].len() < count {
            per[s].push(key);
        }
        i += 1;
    }
    per
}

/// Sends raw bytes and reads whatever arrives until the server stops
/// sending for a moment or closes.
pub fn raw_exchange(stream: &mut TcpStream, bytes: &[u8]) -> Vec<u8> {
    stream.write_all(bytes).unwrap();
    read_available(stream)
}

pub fn read_available(stream: &mut TcpStream) -> Vec<u8> {
    stream
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(_) => break,
        }
    }
    out
}

/// A command from its words.
pub fn cmd(args: &[&str]) -> redis::Cmd {
    let mut c = redis::cmd(args[0]);
    for a in &args[1..] {
        c.arg(*a);
    }
    c
}

/// Runs a command that must succeed and converts its reply.
pub fn q<T: redis::FromRedisValue>(c: &mut redis::Connection, args: &[&str]) -> T {
    cmd(args)
        .query(c)
        .unwrap_or_else(|e| panic!("{args:?} failed: {e}"))
}

/// The full error line (without the leading '-') of a command that must fail.
/// A field of `INFO section`, as text (trimmed); panics if it is missing.
pub fn info_field(c: &mut redis::Connection, section: &str, field: &str) -> String {
    let info: String = q(c, &["INFO", section]);
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in INFO {section}"))
        .trim()
        .to_string()
}

/// The value `CONFIG GET name` answers.
pub fn config_get(c: &mut redis::Connection, name: &str) -> String {
    let v: Vec<String> = q(c, &["CONFIG", "GET", name]);
    v[1].clone()
}

pub fn e(c: &mut redis::Connection, args: &[&str]) -> String {
    match cmd(args).query::<redis::Value>(c) {
        Ok(reply) => panic!("{args:?}: expected an error, got {reply:?}"),
        Err(err) => error_text(&err),
    }
}

/// Rebuilds the server's error line from what redis-rs split into code and
/// detail ("ERR" + "syntax error").
pub fn error_text(err: &redis::RedisError) -> String {
    match (err.code(), err.detail()) {
        (Some(code), Some(detail)) => format!("{code} {detail}"),
        (Some(code), None) => code.to_string(),
        _ => err.to_string(),
    }
}

/// A directory under the system temp dir, removed on drop; `what` names
/// the test in its name.
pub struct TempDir(pub std::path::PathBuf);

impl TempDir {
    pub fn new(what: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!(
            "kora-test-{what}-{}-{}",
            std::process::id(),
            free_port()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
