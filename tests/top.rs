//! `kora top` against a real server: the plain output on a pipe under
//! load, its errors, and the terminal mode on a pseudo-terminal.

mod common;

use std::collections::HashMap;
use std::io::Read;
use std::os::fd::{FromRawFd, OwnedFd};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{Server, free_port};

fn top(server_port: u16, metrics_port: u16, extra: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kora"));
    cmd.arg("top")
        .args(["--host", "127.0.0.1"])
        .args(["--port", &server_port.to_string()])
        .args(["--metrics-port", &metrics_port.to_string()])
        .args(extra);
    cmd
}

fn output_within(mut child: Child, limit: Duration) -> Output {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    panic!(
        "kora top did not finish within {limit:?}; stdout so far:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// Keeps a skewed workload running (one hot key read 20 times per round,
/// plus a STRLEN and a CONFIG GET)
/// until dropped, at most 30 s.
struct Load {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<u64>>,
}

impl Load {
    fn start(server: &Server) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let mut con = server.client();
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(30);
            let mut rounds = 0u64;
            while !flag.load(Ordering::Relaxed) && Instant::now() < deadline {
                let mut pipe = redis::pipe();
                for _ in 0..20 {
                    pipe.cmd("GET").arg("hot:key").ignore();
                }
                pipe.cmd("SET")
                    .arg(format!("k:{}", rounds % 500))
                    .arg("v")
                    .ignore();
                pipe.cmd("INCR").arg("counter").ignore();
                // A command outside the seed's 32 slots and a subcommand:
                // each has a row of its own since issue 13.
                pipe.cmd("STRLEN").arg("hot:key").ignore();
                pipe.cmd("CONFIG").arg("GET").arg("maxmemory").ignore();
                pipe.query::<()>(&mut con).unwrap();
                rounds += 1;
            }
            rounds
        });
        Load {
            stop,
            thread: Some(thread),
        }
    }

    fn finish(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().unwrap().join().unwrap()
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// One refresh of the plain output, split into its sections.
#[derive(Debug)]
struct Block {
    summary: HashMap<String, String>,
    /// cmd -> [ops/s, ops%, p50, p99, err/s]
    commands: HashMap<String, Vec<String>>,
    /// shard rows: [shard, state, keys, keys%, ops/s, ops%, memory…]
    shards: Vec<Vec<String>>,
    hotkeys: Vec<(String, u64)>,
}

fn parse_blocks(stdout: &str) -> Vec<Block> {
    let mut blocks = Vec::new();
    for text in stdout.split("kora top - ").skip(1) {
        let lines: Vec<&str> = text.lines().collect();
        let mut block = Block {
            summary: HashMap::new(),
            commands: HashMap::new(),
            shards: Vec::new(),
            hotkeys: Vec::new(),
        };
        // "ops/s 123  clients 2  keys 502  memory 1.0 KiB  net in …"
        let words: Vec<&str> = lines[1].split_whitespace().collect();
        for pair in words.windows(2) {
            if ["ops/s", "clients", "keys", "hits"].contains(&pair[0]) {
                block
                    .summary
                    .insert(pair[0].to_string(), pair[1].to_string());
            }
        }
        let mut section = "";
        for line in &lines[2..] {
            let fields: Vec<String> = line.split_whitespace().map(str::to_string).collect();
            if fields.is_empty() {
                section = "";
                continue;
            }
            match (section, fields[0].as_str()) {
                (_, "CMD") => section = "cmd",
                (_, "SHARD") => section = "shard",
                (_, "HOTKEYS") => section = "hot",
                ("cmd", _) => {
                    block
                        .commands
                        .insert(fields[0].clone(), fields[1..].to_vec());
                }
                ("shard", _) => block.shards.push(fields),
                ("hot", _) if fields.len() == 3 => block
                    .hotkeys
                    .push((fields[1].clone(), fields[2].parse().unwrap())),
                _ => {}
            }
        }
        blocks.push(block);
    }
    blocks
}

fn seconds(shown: &str) -> f64 {
    let (number, scale) = if let Some(n) = shown.strip_suffix("us") {
        (n, 1e-6)
    } else if let Some(n) = shown.strip_suffix("ms") {
        (n, 1e-3)
    } else {
        (shown.strip_suffix('s').unwrap(), 1.0)
    };
    number.parse::<f64>().unwrap() * scale
}

#[test]
fn plain_output_shows_rates_latency_shards_and_the_hot_key() {
    let server = Server::start(2);
    let mut con = server.client();
    for i in 0..500 {
        redis::cmd("SET")
            .arg(format!("k:{i}"))
            .arg("v")
            .query::<()>(&mut con)
            .unwrap();
    }
    redis::cmd("SET")
        .arg("hot:key")
        .arg("hello")
        .query::<()>(&mut con)
        .unwrap();
    redis::cmd("SET")
        .arg("counter")
        .arg("0")
        .query::<()>(&mut con)
        .unwrap();
    let load = Load::start(&server);
    std::thread::sleep(Duration::from_millis(200));

    let child = top(
        server.port,
        server.metrics_port,
        &["--iterations", "2", "--interval", "0.5"],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let out = output_within(child, Duration::from_secs(20));
    let rounds = load.finish();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(rounds > 0);
    assert!(
        !stdout.contains('\x1b'),
        "escape codes on a pipe:\n{stdout}"
    );

    let blocks = parse_blocks(&stdout);
    assert_eq!(blocks.len(), 2, "{stdout}");
    let dbsize: u64 = redis::cmd("DBSIZE").query(&mut con).unwrap();
    assert_eq!(dbsize, 502);
    for block in &blocks {
        for cmd in ["get", "set", "incr", "strlen", "config|get"] {
            let row = block
                .commands
                .get(cmd)
                .unwrap_or_else(|| panic!("no {cmd} row:\n{stdout}"));
            let ops: f64 = row[0].parse().unwrap();
            assert!(ops > 0.0, "{cmd} at {ops} ops/s:\n{stdout}");
            let (p50, p99) = (seconds(&row[2]), seconds(&row[3]));
            assert!(0.0 < p50 && p50 <= p99 && p99 < 1.0, "{cmd}: {row:?}");
        }
        // The load reads hot:key 20 times for each SET.
        let ops = |cmd: &str| block.commands[cmd][0].parse::<f64>().unwrap();
        assert!(ops("get") > 10.0 * ops("set"), "{stdout}");
        assert_eq!(block.summary["keys"], "502", "{stdout}");
        assert!(block.summary["clients"].parse::<u64>().unwrap() >= 2);
        assert_eq!(block.summary["hits"], "100.0%", "{stdout}");

        assert_eq!(block.shards.len(), 2, "{stdout}");
        let mut shard_keys = 0;
        for (i, row) in block.shards.iter().enumerate() {
            assert_eq!(row[0], i.to_string());
            assert_eq!(row[1], "up");
            shard_keys += row[2].parse::<u64>().unwrap();
        }
        assert_eq!(shard_keys, 502);

        let (first, count) = &block.hotkeys[0];
        assert_eq!(first, "hot:key", "{stdout}");
        assert!(
            *count > 5 * block.hotkeys.get(1).map_or(0, |h| h.1),
            "{stdout}"
        );
    }
}

#[test]
fn unreachable_server_is_reported_and_fails() {
    let (port, metrics_port) = (free_port(), free_port());
    let child = top(
        port,
        metrics_port,
        &["--iterations", "1", "--interval", "0.2"],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let out = output_within(child, Duration::from_secs(10));
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let expected = format!("cannot reach metrics at 127.0.0.1:{metrics_port}");
    assert!(stdout.contains(&format!("error: {expected}")), "{stdout}");
    assert!(stderr.contains(&expected), "{stderr}");
}

#[test]
fn bad_arguments_exit_2() {
    for args in [
        &["--interval", "0"][..],
        &["--interval", "x"],
        &["--iterations", "0"],
        &["--nonsense"],
    ] {
        let out = top(1, 1, args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(!out.stderr.is_empty());
    }
    let help = top(1, 1, &["--help"]).output().unwrap();
    assert!(help.status.success());
    assert!(String::from_utf8_lossy(&help.stdout).contains("--metrics-port"));
}

/// On a terminal: the alternate screen, a redraw per refresh, `q` quits
/// with status 0 and the terminal settings come back as they were.
#[test]
fn terminal_mode_quits_on_q_and_restores_the_terminal() {
    let server = Server::start(1);
    redis::cmd("SET")
        .arg("hot:key")
        .arg("v")
        .query::<()>(&mut server.client())
        .unwrap();
    let (master, slave) = open_pty(30, 100);
    let before = termios_of(&slave);
    let child = top(server.port, server.metrics_port, &["--interval", "0.2"])
        .stdin(Stdio::from(slave.try_clone().unwrap()))
        .stdout(Stdio::from(slave.try_clone().unwrap()))
        .stderr(Stdio::from(slave.try_clone().unwrap()))
        .spawn()
        .unwrap();
    let mut master = std::fs::File::from(master);
    let mut seen = Vec::new();
    let until = |seen: &mut Vec<u8>, master: &mut std::fs::File, want: &[u8]| {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut buf = [0u8; 4096];
        while Instant::now() < deadline {
            if contains(seen, want) {
                return true;
            }
            match master.read(&mut buf) {
                Ok(n) if n > 0 => seen.extend_from_slice(&buf[..n]),
                _ => std::thread::sleep(Duration::from_millis(20)),
            }
        }
        contains(seen, want)
    };
    // Raw mode is set before the first frame is drawn.
    assert!(
        until(&mut seen, &mut master, b"HOTKEYS"),
        "{}",
        String::from_utf8_lossy(&seen)
    );
    let during = termios_of(&slave);
    assert_eq!(during.c_lflag & libc::ICANON, 0, "not in raw mode");
    assert!(contains(&seen, b"\x1b[?1049h"), "no alternate screen");
    assert!(contains(&seen, b"hot:key"));

    std::io::Write::write_all(&mut master, b"q").unwrap();
    let mut child = child;
    let deadline = Instant::now() + Duration::from_secs(5);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "kora top ignored q");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success());
    until(&mut seen, &mut master, b"\x1b[?1049l");
    assert!(contains(&seen, b"\x1b[?1049l"), "alternate screen not left");
    let after = termios_of(&slave);
    assert_eq!(after.c_lflag, before.c_lflag, "terminal not restored");
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn open_pty(rows: u16, cols: u16) -> (OwnedFd, OwnedFd) {
    let (mut master, mut slave) = (-1, -1);
    let size = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: openpty fills two descriptors we then own.
    unsafe {
        assert_eq!(
            libc::openpty(
                &mut master,
                &mut slave,
                std::ptr::null_mut(),
                std::ptr::null(),
                &size
            ),
            0
        );
        let flags = libc::fcntl(master, libc::F_GETFL);
        libc::fcntl(master, libc::F_SETFL, flags | libc::O_NONBLOCK);
        (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave))
    }
}

fn termios_of(fd: &OwnedFd) -> libc::termios {
    use std::os::fd::AsRawFd;
    // SAFETY: tcgetattr writes one termios.
    unsafe {
        let mut t: libc::termios = std::mem::zeroed();
        assert_eq!(libc::tcgetattr(fd.as_raw_fd(), &mut t), 0);
        t
    }
}

/// `kora top --cluster` (issue 16): three cluster-mode servers with a
/// topology pushed; one plain block has a row per node (id, address,
/// health, state, slots, ops/s, keys) and a total row; a stopped node
/// shows as unreachable while the others keep their rows.
#[test]
fn cluster_mode_shows_one_row_per_node_and_a_total() {
    let mut servers: Vec<Server> = (0..3)
        .map(|_| Server::start_with(2, &["--cluster-enabled", "yes"]))
        .collect();
    let ports: Vec<u16> = servers.iter().map(|s| s.port).collect();
    let topology = format!(
        "epoch 1\nnode 127.0.0.1:{} 0-5460\nnode 127.0.0.1:{} 5461-10922\nnode 127.0.0.1:{} 10923-16383\n",
        ports[0], ports[1], ports[2]
    );
    let mut ids = Vec::new();
    for s in &servers {
        let mut c = s.client();
        let ok: String = common::q(&mut c, &["CLUSTER", "SETTOPOLOGY", &topology]);
        assert_eq!(ok, "OK");
        ids.push(common::q::<String>(&mut c, &["CLUSTER", "MYID"]));
    }
    // One key on each node, in its own slots: "x3" is slot 1984,
    // "{user1}:a" 8106, "foo" 12182; two more on the first.
    for (s, keys) in servers
        .iter()
        .zip([&["x3", "{x3}a", "{x3}b"][..], &["{user1}:a"], &["foo"]])
    {
        let mut c = s.client();
        for k in keys {
            let _: () = common::q(&mut c, &["SET", k, "v"]);
        }
    }
    // Traffic on the first node while top measures.
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let mut c = servers[0].client();
    let load = std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !flag.load(Ordering::Relaxed) && Instant::now() < deadline {
            let _: Option<String> = common::q(&mut c, &["GET", "x3"]);
        }
    });
    let entry = format!("127.0.0.1:{}", ports[1]);
    let run = |iterations: &str| {
        let child = Command::new(env!("CARGO_BIN_EXE_kora"))
            .args(["top", "--cluster", &entry, "--iterations", iterations])
            .args(["--interval", "0.5"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        output_within(child, Duration::from_secs(20))
    };
    let out = run("1");
    stop.store(true, Ordering::Relaxed);
    load.join().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: HashMap<String, Vec<String>> = stdout
        .lines()
        .map(|l| l.split_whitespace().map(str::to_string).collect::<Vec<_>>())
        .filter(|f| f.len() >= 10)
        .map(|f| (f[0].clone(), f))
        .collect();
    let slots = ["5461", "5462", "5461"];
    let keys = ["3", "1", "1"];
    for i in 0..3 {
        let row = rows
            .get(&ids[i][..8])
            .unwrap_or_else(|| panic!("no row for {}:\n{stdout}", ids[i]));
        // NODE ADDRESS HEALTH STATE SLOTS OPS/S P99 REDIR/S KEYS MEMORY(2 words)
        assert_eq!(row[1], format!("127.0.0.1:{}", ports[i]), "{stdout}");
        assert_eq!(
            (row[2].as_str(), row[3].as_str()),
            ("online", "ok"),
            "{stdout}"
        );
        assert_eq!(row[4], slots[i], "{stdout}");
        assert_eq!(row[8], keys[i], "{stdout}");
    }
    let busy: f64 = rows[&ids[0][..8]][5].parse().unwrap();
    assert!(busy > 10.0, "the first node's ops/s: {stdout}");
    assert!(seconds(&rows[&ids[0][..8]][6]) > 0.0, "{stdout}");
    let total = rows
        .get("TOTAL")
        .unwrap_or_else(|| panic!("no total:\n{stdout}"));
    // TOTAL 3 nodes SLOTS OPS/S P99 REDIR/S KEYS MEMORY
    assert_eq!(
        (total[1].as_str(), total[3].as_str()),
        ("3", "16384"),
        "{stdout}"
    );
    assert_eq!(total[7], "5", "{stdout}");
    assert!(
        stdout.contains("nodes 3 (3 see the cluster ok)  slots 16384/16384  epoch 1"),
        "{stdout}"
    );

    // A stopped node: still listed by the others, its row unreachable.
    let third = servers.pop().unwrap();
    drop(third);
    let out = run("1");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{stdout}");
    let line = stdout
        .lines()
        .find(|l| l.starts_with(&ids[2][..8]))
        .unwrap_or_else(|| panic!("no row for the stopped node:\n{stdout}"));
    assert!(line.contains("unreachable"), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "{} 127.0.0.1:{}: cannot reach",
            &ids[2][..8],
            ports[2]
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("{} 127.0.0.1:{} ", &ids[0][..8], ports[0])),
        "{stdout}"
    );
}

#[test]
fn cluster_mode_against_a_standalone_server_or_nothing_fails() {
    let s = Server::start(1);
    let entry = format!("127.0.0.1:{}", s.port);
    let out = Command::new(env!("CARGO_BIN_EXE_kora"))
        .args([
            "top",
            "--cluster",
            &entry,
            "--iterations",
            "1",
            "--interval",
            "0.2",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("This instance has cluster support disabled"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for args in [
        &["--cluster", "nocolon"][..],
        &["--cluster", "h:1", "--port", "2"],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_kora"))
            .arg("top")
            .args(args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
    }
}
