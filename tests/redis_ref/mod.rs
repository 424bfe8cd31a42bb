//! A real redis-server 7.0 to compare replies with, for the bitmap,
//! HyperLogLog, geo, SORT and DUMP/RESTORE tests: started on a free loopback port when
//! /usr/bin/redis-server exists (CI installs it), killed on drop. Without
//! it the comparison parts of those tests print a note and are skipped.
// Each test file uses a part of it.
#![allow(dead_code)]

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use redis::Value;

pub const REDIS_SERVER: &str = "/usr/bin/redis-server";

pub struct RedisRef {
    child: Child,
    pub port: u16,
}

impl RedisRef {
    /// Starts redis-server, or None (with a printed note) when it is not
    /// installed. Ready means it answered PING with +PONG while its process
    /// lives: a bare connect can succeed before it listens (a loopback
    /// connect to a free ephemeral port may connect to itself), and if it
    /// could not bind `port` it is started again on another free one.
    pub fn start(port: u16, what: &str) -> Option<RedisRef> {
        if !std::path::Path::new(REDIS_SERVER).exists() {
            eprintln!(
                "note: {REDIS_SERVER} not found, skipping the comparison with Redis ({what})"
            );
            return None;
        }
        let mut port = port;
        for _ in 0..5 {
            let child = Command::new(REDIS_SERVER)
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start redis-server");
            let mut r = RedisRef { child, port };
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = r.child.try_wait() {
                    break;
                }
                if answers_pong(port) {
                    return Some(r);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            drop(r);
            port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map(|a| a.port())
                .expect("a free port");
        }
        panic!("redis-server did not start");
    }

    pub fn client(&self) -> redis::Connection {
        redis::Client::open(format!("redis://127.0.0.1:{}/", self.port))
            .unwrap()
            .get_connection()
            .unwrap()
    }
}

fn answers_pong(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let mut buf = [0u8; 7];
    s.write_all(b"PING\r\n").is_ok() && s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
}

impl Drop for RedisRef {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A reply as text, errors included, so two servers' replies compare with
/// `assert_eq!` and read well when they differ.
pub fn render(v: &Value) -> String {
    match v {
        Value::Nil => "nil".into(),
        Value::Int(n) => n.to_string(),
        Value::BulkString(b) => format!("{:?}", String::from_utf8_lossy(b)),
        Value::SimpleString(s) => format!("+{s}"),
        Value::Okay => "+OK".into(),
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(render).collect::<Vec<_>>().join(",")
        ),
        other => format!("{other:?}"),
    }
}

/// Runs `args` and renders the reply or the error line.
pub fn reply(c: &mut redis::Connection, args: &[&str]) -> String {
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    match cmd.query::<Value>(c) {
        Ok(v) => render(&v),
        Err(e) => match (e.code(), e.detail()) {
            (Some(code), Some(detail)) => format!("-{code} {detail}"),
            (Some(code), None) => format!("-{code}"),
            _ => format!("-{e}"),
        },
    }
}
