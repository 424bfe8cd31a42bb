//! `kora cluster` against three real `kora --cluster-enabled yes` servers:
//! create splits the slots as redis-cli does and every node serves that
//! topology; check sees disagreement, holes and open slots; push takes a
//! hand-written file; reshard and fix move slots with their keys (with
//! MIGRATE and RESTORE-ASKING).

mod common;

use std::process::{Command, Output};

use common::Server;

fn cluster_node() -> Server {
    Server::start_with(1, &["--cluster-enabled", "yes"])
}

fn three_nodes() -> [Server; 3] {
    [cluster_node(), cluster_node(), cluster_node()]
}

fn addr(s: &Server) -> String {
    format!("127.0.0.1:{}", s.port)
}

/// Runs `kora cluster ARGS…`; returns the exit code and stdout+stderr.
fn tool(args: &[&str]) -> (i32, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = Command::new(env!("CARGO_BIN_EXE_kora"))
        .arg("cluster")
        .args(args)
        .output()
        .expect("run kora cluster");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&stdout),
        String::from_utf8_lossy(&stderr)
    );
    (status.code().unwrap_or(-1), text)
}

fn create(nodes: &[Server; 3]) {
    let (code, out) = tool(&[
        "create",
        &addr(&nodes[0]),
        &addr(&nodes[1]),
        &addr(&nodes[2]),
    ]);
    assert_eq!(code, 0, "create failed:\n{out}");
}

/// CLUSTER SLOTS as (first, last, port of the master).
fn slots(server: &Server) -> Vec<(i64, i64, i64)> {
    let reply: redis::Value = redis::cmd("CLUSTER")
        .arg("SLOTS")
        .query(&mut server.client())
        .unwrap();
    let redis::Value::Array(ranges) = reply else {
        panic!("CLUSTER SLOTS: {reply:?}")
    };
    let mut out: Vec<(i64, i64, i64)> = ranges
        .into_iter()
        .map(|r| match r {
            redis::Value::Array(items) => match items.as_slice() {
                [
                    redis::Value::Int(a),
                    redis::Value::Int(b),
                    redis::Value::Array(master),
                    ..,
                ] => match master.get(1) {
                    Some(redis::Value::Int(port)) => (*a, *b, *port),
                    other => panic!("master entry {other:?}"),
                },
                other => panic!("range {other:?}"),
            },
            other => panic!("range {other:?}"),
        })
        .collect();
    out.sort();
    out
}

fn myid(server: &Server) -> String {
    redis::cmd("CLUSTER")
        .arg("MYID")
        .query(&mut server.client())
        .unwrap()
}

fn topology(server: &Server) -> String {
    redis::cmd("CLUSTER")
        .arg("GETTOPOLOGY")
        .query(&mut server.client())
        .unwrap()
}

fn epoch(server: &Server) -> u64 {
    let info: String = redis::cmd("CLUSTER")
        .arg("INFO")
        .query(&mut server.client())
        .unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("cluster_current_epoch:"))
        .expect("cluster_current_epoch")
        .trim()
        .parse()
        .unwrap()
}

/// CRC16/XMODEM of the key or its {hash tag}, mod 16384: Redis' key slot,
/// written out here so that the test does not trust the server's own.
fn key_slot(key: &[u8]) -> u16 {
    let mut key = key;
    if let Some(open) = key.iter().position(|&b| b == b'{')
        && let Some(len) = key[open + 1..].iter().position(|&b| b == b'}')
        && len > 0
    {
        key = &key[open + 1..open + 1 + len];
    }
    let mut crc: u16 = 0;
    for &byte in key {
        crc ^= (byte as u16) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc & 16383
}

/// `count` keys whose slots are below `below`.
fn keys_in_low_slots(prefix: &str, below: u16, count: usize) -> Vec<String> {
    (0..)
        .map(|i| format!("{prefix}{i}"))
        .filter(|k| key_slot(k.as_bytes()) < below)
        .take(count)
        .collect()
}

#[test]
fn key_slot_matches_redis() {
    assert_eq!(key_slot(b"foo"), 12182);
    assert_eq!(key_slot(b"{user1000}.following"), key_slot(b"user1000"));
    // CLUSTER KEYSLOT of Redis 7.0: an empty tag hashes the whole key.
    assert_eq!(key_slot(b"foo{}{bar}"), 8363);
    assert_eq!(key_slot(b"123456789"), 12739);
}

#[test]
fn create_splits_as_redis_cli_and_every_node_agrees() {
    let nodes = three_nodes();
    let (code, out) = tool(&[
        "create",
        &addr(&nodes[0]),
        &addr(&nodes[1]),
        &addr(&nodes[2]),
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("[OK] All 16384 slots covered."), "{out}");
    assert!(out.contains("[OK] All 3 node(s) agree"), "{out}");
    let expected = vec![
        (0, 5460, nodes[0].port as i64),
        (5461, 10922, nodes[1].port as i64),
        (10923, 16383, nodes[2].port as i64),
    ];
    for node in &nodes {
        assert_eq!(slots(node), expected);
        assert_eq!(epoch(node), 1);
        assert_eq!(topology(node), topology(&nodes[0]));
    }
    for node in &nodes {
        let (code, out) = tool(&["check", &addr(node)]);
        assert_eq!(code, 0, "{out}");
    }
    // Creating again over nodes that have slots needs --force, which
    // raises the epoch.
    let (code, out) = tool(&[
        "create",
        &addr(&nodes[2]),
        &addr(&nodes[1]),
        &addr(&nodes[0]),
    ]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("--force"), "{out}");
    assert_eq!(epoch(&nodes[0]), 1);
    let (code, out) = tool(&[
        "create",
        "--force",
        &addr(&nodes[2]),
        &addr(&nodes[1]),
        &addr(&nodes[0]),
    ]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(slots(&nodes[0])[0], (0, 5460, nodes[2].port as i64));
    assert_eq!(epoch(&nodes[1]), 2);

    let (code, out) = tool(&["info", &addr(&nodes[0])]);
    assert_eq!(code, 0, "{out}");
    for node in &nodes {
        let id = myid(node);
        let row = out
            .lines()
            .find(|l| l.starts_with(&id[..8]))
            .unwrap_or_else(|| panic!("no row for {id}:\n{out}"));
        assert!(row.contains(&addr(node)), "{row}");
        assert!(row.ends_with("ok"), "{row}");
    }
    assert!(
        out.contains("16384 of 16384 slots assigned, epoch 2"),
        "{out}"
    );
}

#[test]
fn check_reports_disagreement_holes_and_unreachable_nodes() {
    let nodes = three_nodes();
    create(&nodes);
    let ids: Vec<String> = nodes.iter().map(myid).collect();
    // Node 2 alone gets a topology of a higher epoch where slot 0 has no owner.
    let holed = format!(
        "epoch 5\nnode {} {} 1-5460\nnode {} {} 5461-10922\nnode {} {} 10923-16383\n",
        ids[0],
        addr(&nodes[0]),
        ids[1],
        addr(&nodes[1]),
        ids[2],
        addr(&nodes[2])
    );
    let _: () = redis::cmd("CLUSTER")
        .arg("SETTOPOLOGY")
        .arg(&holed)
        .query(&mut nodes[2].client())
        .unwrap();
    let (code, out) = tool(&["check", &addr(&nodes[0])]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!("{} disagrees", addr(&nodes[2]))),
        "{out}"
    );
    assert!(out.contains("epoch 5"), "{out}");
    let (code, out) = tool(&["check", &addr(&nodes[2])]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("1 slot(s) have no owner: 0"), "{out}");

    // An unreachable node fails the check and shows in info.
    let gone = addr(&nodes[1]);
    let [a, b, c] = nodes;
    drop(b);
    let (code, out) = tool(&["check", &addr(&a)]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains(&format!("cannot reach {gone}")), "{out}");
    let (code, out) = tool(&["info", &addr(&a)]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.lines()
            .any(|l| l.contains(&gone) && l.ends_with("unreachable")),
        "{out}"
    );
    drop(c);
}

#[test]
fn push_a_topology_file_to_every_node() {
    let nodes = three_nodes();
    let dir = std::env::temp_dir().join(format!("kora-cluster-tool-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("topology.conf");
    // Ids left out: the nodes derive them from their addresses.
    std::fs::write(
        &file,
        format!(
            "# three nodes, uneven\nepoch 10\nnode {} 0-99\nnode {} 100-16000\n\nnode {} 16001-16383\n",
            addr(&nodes[0]),
            addr(&nodes[1]),
            addr(&nodes[2])
        ),
    )
    .unwrap();
    let (code, out) = tool(&["push", file.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    for node in &nodes {
        assert_eq!(epoch(node), 10);
        assert_eq!(
            slots(node),
            vec![
                (0, 99, nodes[0].port as i64),
                (100, 16000, nodes[1].port as i64),
                (16001, 16383, nodes[2].port as i64)
            ]
        );
    }
    // A push that takes slots holding keys away from their node is
    // refused (the keys would stay where no client looks), unless --force.
    let key = (0..)
        .map(|i| format!("p:{i}"))
        .find(|k| key_slot(k.as_bytes()) < 99)
        .unwrap();
    let _: () = redis::cmd("SET")
        .arg(&key)
        .arg("v")
        .query(&mut nodes[0].client())
        .unwrap();
    let moved_away = format!(
        "epoch 11\nnode {} 99\nnode {} 0-98 100-16000\nnode {} 16001-16383\n",
        addr(&nodes[0]),
        addr(&nodes[1]),
        addr(&nodes[2])
    );
    std::fs::write(&file, &moved_away).unwrap();
    let (code, out) = tool(&["push", file.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!(
            "{} holds 1 key(s) in slots it would no longer own ({})",
            addr(&nodes[0]),
            key_slot(key.as_bytes())
        )),
        "{out}"
    );
    assert_eq!(epoch(&nodes[0]), 10);
    let _: () = redis::cmd("DEL")
        .arg(&key)
        .query(&mut nodes[0].client())
        .unwrap();
    // An older epoch is refused before any node sees it.
    std::fs::write(
        &file,
        format!(
            "epoch 3\nnode {} 0-16383\nnode {}\nnode {}\n",
            addr(&nodes[0]),
            addr(&nodes[1]),
            addr(&nodes[2])
        ),
    )
    .unwrap();
    let (code, out) = tool(&["push", file.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("write `epoch 11`"), "{out}");
    assert_eq!(epoch(&nodes[1]), 10);
    // A file with a slot owned twice is refused with its line.
    std::fs::write(
        &file,
        format!(
            "epoch 20\nnode {} 0-10\nnode {} 10-16383\n",
            addr(&nodes[0]),
            addr(&nodes[1])
        ),
    )
    .unwrap();
    let (code, out) = tool(&["push", file.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("topology.conf"), "{out}");
    assert_eq!(epoch(&nodes[0]), 10);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn reshard_moves_slots_with_their_keys() {
    let nodes = three_nodes();
    create(&nodes);
    // Keys in slots 0..20, which node 0 owns: the ones a 20-slot reshard
    // from node 0 moves. Batches of 7 keys make several MIGRATE rounds.
    let keys = keys_in_low_slots("rk:", 20, 150);
    let mut c0 = nodes[0].client();
    for k in &keys {
        let _: () = redis::cmd("SET")
            .arg(k)
            .arg(format!("v-{k}"))
            .query(&mut c0)
            .unwrap();
    }
    // And one in a slot node 0 keeps.
    let stays = (0..)
        .map(|i| format!("stays:{i}"))
        .find(|k| (20..5461).contains(&key_slot(k.as_bytes())))
        .unwrap();
    let _: () = redis::cmd("SET")
        .arg(&stays)
        .arg("here")
        .query(&mut c0)
        .unwrap();
    let before = epoch(&nodes[0]);
    let (code, out) = tool(&[
        "reshard",
        &addr(&nodes[0]),
        "--from",
        &addr(&nodes[0]),
        "--to",
        &myid(&nodes[1])[..10],
        "--slots",
        "20",
        "--batch",
        "7",
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("Moved 20 slot(s), 150 key(s)"), "{out}");
    for node in &nodes {
        assert_eq!(epoch(node), before + 1);
        assert_eq!(
            slots(node),
            vec![
                (0, 19, nodes[1].port as i64),
                (20, 5460, nodes[0].port as i64),
                (5461, 10922, nodes[1].port as i64),
                (10923, 16383, nodes[2].port as i64)
            ]
        );
    }
    let mut c1 = nodes[1].client();
    for k in &keys {
        let v: String = redis::cmd("GET").arg(k).query(&mut c1).unwrap();
        assert_eq!(v, format!("v-{k}"));
        let moved = redis::cmd("GET")
            .arg(k)
            .query::<String>(&mut c0)
            .unwrap_err();
        assert!(
            format!("{moved:?}").contains(&format!("{}", nodes[1].port)),
            "{moved:?}"
        );
    }
    let dbsize: i64 = redis::cmd("DBSIZE").query(&mut c0).unwrap();
    assert_eq!(dbsize, 1, "node 0 kept no key of the moved slots");
    let v: String = redis::cmd("GET").arg(&stays).query(&mut c0).unwrap();
    assert_eq!(v, "here");
    let (code, out) = tool(&["check", &addr(&nodes[2])]);
    assert_eq!(code, 0, "{out}");
    // The source does not own that many slots any more.
    let (code, out) = tool(&[
        "reshard",
        &addr(&nodes[0]),
        "--from",
        &addr(&nodes[0]),
        "--to",
        &addr(&nodes[2]),
        "--slots",
        "6000",
    ]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("fewer than --slots 6000"), "{out}");
}

#[test]
fn fix_finishes_a_move_left_open() {
    let nodes = three_nodes();
    create(&nodes);
    let (src, dst) = (&nodes[0], &nodes[2]);
    let keys = keys_in_low_slots("fx:", 1, 30);
    let mut c = src.client();
    for k in &keys {
        let _: () = redis::cmd("SET").arg(k).arg(k).query(&mut c).unwrap();
    }
    // A move of slot 0 left half done, as a failed reshard leaves it.
    let _: () = redis::cmd("CLUSTER")
        .arg(&["SETSLOT", "0", "IMPORTING", &myid(src)])
        .query(&mut dst.client())
        .unwrap();
    let _: () = redis::cmd("CLUSTER")
        .arg(&["SETSLOT", "0", "MIGRATING", &myid(dst)])
        .query(&mut c)
        .unwrap();
    let (code, out) = tool(&["check", &addr(src)]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("slot 0 open: MIGRATING to"), "{out}");
    assert!(out.contains("slot 0 open: IMPORTING from"), "{out}");
    // A reshard refuses to start over an open slot.
    let (code, out) = tool(&[
        "reshard",
        &addr(src),
        "--from",
        &addr(src),
        "--to",
        &addr(dst),
        "--slots",
        "1",
    ]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("must check out"), "{out}");
    let (code, out) = tool(&["fix", &addr(src)]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(&format!("Moved slot 0 ({} keys)", keys.len())),
        "{out}"
    );
    let mut d = dst.client();
    for k in &keys {
        let v: String = redis::cmd("GET").arg(k).query(&mut d).unwrap();
        assert_eq!(&v, k);
    }
    assert_eq!(slots(&nodes[1])[0], (0, 0, dst.port as i64));
    let (code, out) = tool(&["check", &addr(&nodes[1])]);
    assert_eq!(code, 0, "{out}");
}

#[test]
fn bad_arguments_and_unreachable_entry() {
    let (code, out) = tool(&[]);
    assert_eq!(code, 2, "{out}");
    let (code, out) = tool(&["create"]);
    assert_eq!(code, 2, "{out}");
    let (code, out) = tool(&["check", "not-an-address"]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("HOST:PORT"), "{out}");
    let port = common::free_port();
    let (code, out) = tool(&["check", &format!("127.0.0.1:{port}")]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!("cannot reach 127.0.0.1:{port}")),
        "{out}"
    );
    // A cluster-mode node that was never given a topology.
    let fresh = cluster_node();
    for args in [
        &["check", &addr(&fresh)][..],
        &["info", &addr(&fresh)],
        &[
            "reshard",
            &addr(&fresh),
            "--from",
            "a",
            "--to",
            "b",
            "--slots",
            "1",
        ],
        &["fix", &addr(&fresh)],
    ] {
        let (code, out) = tool(args);
        assert_eq!(code, 1, "{args:?}: {out}");
        assert!(out.contains("has no topology"), "{args:?}: {out}");
    }
    let (code, out) = tool(&["--help"]);
    assert_eq!(code, 0, "{out}");
    for sub in ["create", "check", "push", "reshard", "fix", "info"] {
        assert!(out.contains(sub), "{out}");
    }
    let (code, out) = tool(&["create", "127.0.0.1:1", "127.0.0.1:1"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("given twice"), "{out}");
}

#[test]
fn password_protected_nodes() {
    // The harness needs an open PING to see the server up: the password
    // comes after.
    let nodes = three_nodes();
    for n in &nodes {
        let _: () = redis::cmd("CONFIG")
            .arg(&["SET", "requirepass", "s3cret"])
            .query(&mut n.client())
            .unwrap();
    }
    let list = [addr(&nodes[0]), addr(&nodes[1]), addr(&nodes[2])];
    let (code, out) = tool(&["create", &list[0], &list[1], &list[2]]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("NOAUTH"), "{out}");
    // redis-cli's variable, or --pass.
    let out = Command::new(env!("CARGO_BIN_EXE_kora"))
        .args(["cluster", "create", &list[0], &list[1], &list[2]])
        .env("REDISCLI_AUTH", "s3cret")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let (code, out) = tool(&["check", &list[1], "--pass", "s3cret"]);
    assert_eq!(code, 0, "{out}");
    let (code, out) = tool(&["--pass", "wrong", "info", &list[1]]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("WRONGPASS"), "{out}");
}

#[test]
fn reshard_with_a_password() {
    let nodes = three_nodes();
    create(&nodes);
    let keys = keys_in_low_slots("pw:", 2, 10);
    for n in &nodes {
        let _: () = redis::cmd("CONFIG")
            .arg(&["SET", "requirepass", "s3cret"])
            .query(&mut n.client())
            .unwrap();
    }
    let url = |s: &Server| format!("redis://:s3cret@127.0.0.1:{}/", s.port);
    let mut src = redis::Client::open(url(&nodes[0]))
        .unwrap()
        .get_connection()
        .unwrap();
    for k in &keys {
        let _: () = redis::cmd("SET").arg(k).arg(k).query(&mut src).unwrap();
    }
    // MIGRATE must give the target the password too (AUTH before KEYS).
    let (code, out) = tool(&[
        "--pass",
        "s3cret",
        "reshard",
        &addr(&nodes[0]),
        "--from",
        &addr(&nodes[0]),
        "--to",
        &addr(&nodes[1]),
        "--slots",
        "2",
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("Moved 2 slot(s), 10 key(s)"), "{out}");
    let mut dst = redis::Client::open(url(&nodes[1]))
        .unwrap()
        .get_connection()
        .unwrap();
    for k in &keys {
        let v: String = redis::cmd("GET").arg(k).query(&mut dst).unwrap();
        assert_eq!(&v, k);
    }
}
