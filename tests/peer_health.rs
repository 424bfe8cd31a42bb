//! Cluster mode across real processes, what needs a node to reach the
//! others: peer health (a killed node is `fail` for the others within a
//! few node timeouts, so they answer CLUSTERDOWN, and back to ok once it
//! answers again) and MIGRATE into a slot the target imports (RESTORE-ASKING).

mod common;
mod redis_ref;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Server, e, free_port, q};
use redis::Connection;
use redis_ref::reply;

const NODE: &[&str] = &["--cluster-enabled", "yes", "--cluster-node-timeout", "500"];

fn topology(ports: &[u16]) -> String {
    let ranges = ["0-5460", "5461-10922", "10923-16383"];
    let mut text = String::from("epoch 1\n");
    for (p, r) in ports.iter().zip(ranges) {
        text.push_str(&format!("node 127.0.0.1:{p} {r}\n"));
    }
    text
}

fn client(port: u16) -> Connection {
    redis::Client::open(format!("redis://127.0.0.1:{port}/"))
        .unwrap()
        .get_connection_with_timeout(Duration::from_secs(5))
        .unwrap()
}

/// A key whose slot node `i` of [`topology`] owns.
fn key_on(c: &mut Connection, i: usize) -> String {
    let bounds = [(0, 5460), (5461, 10922), (10923, 16383)][i];
    (0..)
        .map(|n| format!("key{n}"))
        .find(|k| {
            let slot: i64 = q(c, &["CLUSTER", "KEYSLOT", k]);
            (bounds.0..=bounds.1).contains(&slot)
        })
        .unwrap()
}

/// Polls until `f` holds, for at most `within`.
fn eventually(within: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// A Kora cluster node on a given port (a restarted node keeps its port).
fn start_on(port: u16) -> Option<Child> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kora"))
        .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
        .args(["--metrics-port", &free_port().to_string(), "--workers", "1"])
        .args(NODE)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let up = eventually(Duration::from_secs(10), || {
        matches!(child.try_wait(), Ok(None))
            && redis::Client::open(format!("redis://127.0.0.1:{port}/"))
                .unwrap()
                .get_connection_with_timeout(Duration::from_millis(500))
                .ok()
                .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c).ok())
                .is_some()
    });
    if !up {
        let _ = child.kill();
        let _ = child.wait();
        return None;
    }
    Some(child)
}

#[test]
fn a_silent_node_fails_and_comes_back() {
    let nodes: Vec<Server> = (0..3).map(|_| Server::start_with(1, NODE)).collect();
    let ports: Vec<u16> = nodes.iter().map(|s| s.port).collect();
    let text = topology(&ports);
    for p in &ports {
        assert_eq!(
            reply(&mut client(*p), &["CLUSTER", "SETTOPOLOGY", &text]),
            "+OK"
        );
    }
    let mut c = client(ports[0]);
    let mine = key_on(&mut c, 0);
    q::<()>(&mut c, &["SET", &mine, "v"]);
    // Everyone is up: CLUSTER NODES says so, and stays so over several
    // node timeouts (the PINGs are answered).
    std::thread::sleep(Duration::from_millis(1500));
    let listing: String = q(&mut c, &["CLUSTER", "NODES"]);
    assert!(!listing.contains("fail"), "{listing}");
    assert_eq!(q::<String>(&mut c, &["GET", &mine]), "v");

    // Kill the third node: within a few seconds the others stop serving.
    let dead = ports[2];
    let mut nodes = nodes;
    drop(nodes.pop());
    for p in &ports[..2] {
        let mut c = client(*p);
        assert!(
            eventually(Duration::from_secs(5), || reply(&mut c, &["GET", &mine])
                == "-CLUSTERDOWN The cluster is down"),
            "node {p} still serves"
        );
        let listing: String = q(&mut c, &["CLUSTER", "NODES"]);
        let line = listing
            .lines()
            .find(|l| l.contains(&format!("127.0.0.1:{dead}@")))
            .unwrap()
            .to_string();
        assert!(line.contains(" master,fail "), "{line}");
        assert!(line.ends_with(" disconnected 10923-16383"), "{line}");
        let info: String = q(&mut c, &["CLUSTER", "INFO"]);
        assert!(info.starts_with("cluster_state:fail\r\n"), "{info}");
    }

    // Back on the same port (its PING answers even before it has a
    // topology): ok again.
    let mut back = None;
    for _ in 0..5 {
        back = start_on(dead);
        if back.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let mut back = back.expect("the node restarts on its port");
    for p in &ports[..2] {
        let mut c = client(*p);
        // (The second node redirects: the key's slot is the first's.)
        let want = if *p == ports[0] {
            "\"v\"".to_string()
        } else {
            format!(
                "-MOVED {} 127.0.0.1:{}",
                q::<i64>(&mut c, &["CLUSTER", "KEYSLOT", &mine]),
                ports[0]
            )
        };
        assert!(
            eventually(Duration::from_secs(5), || reply(&mut c, &["GET", &mine])
                == want),
            "node {p} serves again"
        );
        let listing: String = q(&mut c, &["CLUSTER", "NODES"]);
        assert!(!listing.contains("fail"), "{listing}");
    }
    let _ = back.kill();
    let _ = back.wait();
}

#[test]
fn migrate_moves_a_key_into_an_importing_slot() {
    let nodes: Vec<Server> = (0..3).map(|_| Server::start_with(2, NODE)).collect();
    let ports: Vec<u16> = nodes.iter().map(|s| s.port).collect();
    let text = topology(&ports);
    for p in &ports {
        assert_eq!(
            reply(&mut client(*p), &["CLUSTER", "SETTOPOLOGY", &text]),
            "+OK"
        );
    }
    let (mut src, mut dst) = (client(ports[0]), client(ports[1]));
    let key = key_on(&mut src, 0);
    let slot: i64 = q(&mut src, &["CLUSTER", "KEYSLOT", &key]);
    let slot = slot.to_string();
    let src_id: String = q(&mut src, &["CLUSTER", "MYID"]);
    let dst_id: String = q(&mut dst, &["CLUSTER", "MYID"]);
    q::<()>(&mut src, &["SET", &key, "moving", "EX", "100"]);
    q::<()>(
        &mut dst,
        &["CLUSTER", "SETSLOT", &slot, "IMPORTING", &src_id],
    );
    q::<()>(
        &mut src,
        &["CLUSTER", "SETSLOT", &slot, "MIGRATING", &dst_id],
    );
    // The target does not own the slot yet: a plain RESTORE would be MOVED,
    // MIGRATE's RESTORE-ASKING is not.
    let port = ports[1].to_string();
    assert_eq!(
        reply(
            &mut src,
            &["MIGRATE", "127.0.0.1", &port, &key, "0", "2000"]
        ),
        "+OK"
    );
    assert_eq!(
        e(&mut src, &["GET", &key]),
        format!("ASK {slot} 127.0.0.1:{}", ports[1])
    );
    assert!(e(&mut dst, &["GET", &key]).starts_with("MOVED "));
    q::<()>(&mut dst, &["ASKING"]);
    assert_eq!(q::<String>(&mut dst, &["GET", &key]), "moving");
    q::<()>(&mut dst, &["ASKING"]);
    let ttl: i64 = q(&mut dst, &["TTL", &key]);
    assert!(ttl > 90 && ttl <= 100, "{ttl}");
}
