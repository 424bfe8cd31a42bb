//! CLIENT LIST / INFO / KILL / SETNAME / GETNAME / ID across cores.

mod common;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::thread;
use std::time::Duration;

use common::Server;
use redis::Commands;

fn fields(line: &str) -> HashMap<String, String> {
    line.split(' ')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn list(c: &mut redis::Connection) -> Vec<HashMap<String, String>> {
    let text: String = redis::cmd("CLIENT").arg("LIST").query(c).unwrap();
    assert!(text.ends_with('\n'));
    text.lines().map(fields).collect()
}

fn id_of(c: &mut redis::Connection) -> u64 {
    redis::cmd("CLIENT").arg("ID").query(c).unwrap()
}

#[test]
fn client_list_shows_every_connection_on_every_core_with_redis_fields() {
    let s = Server::start(2);
    let mut conns: Vec<redis::Connection> = Vec::new();
    let mut ids = Vec::new();
    // At least 8, and more until both cores hold some (SO_REUSEPORT spreads
    // them at random; ids are congruent to their core).
    while conns.len() < 8 || !(ids.iter().any(|id| id % 2 == 0) && ids.iter().any(|id| id % 2 == 1))
    {
        assert!(conns.len() < 64, "every connection landed on one core");
        let i = conns.len();
        let mut c = s.client();
        let _: () = redis::cmd("CLIENT")
            .arg("SETNAME")
            .arg(format!("worker-{i}"))
            .query(&mut c)
            .unwrap();
        let _: () = c.set(format!("k{i}"), "v".repeat(100)).unwrap();
        ids.push(id_of(&mut c));
        conns.push(c);
    }

    let mut me = s.client();
    let my_id = id_of(&mut me);
    let rows = list(&mut me);
    assert_eq!(rows.len(), conns.len() + 1, "{rows:?}");
    let listed: Vec<u64> = rows.iter().map(|r| r["id"].parse().unwrap()).collect();
    let mut sorted = listed.clone();
    sorted.sort();
    assert_eq!(listed, sorted, "CLIENT LIST is in id order");
    for key in [
        "id",
        "addr",
        "laddr",
        "name",
        "age",
        "idle",
        "flags",
        "db",
        "multi",
        "qbuf",
        "omem",
        "cmd",
        "tot-net-in",
        "tot-net-out",
        "tot-cmds",
        "resp",
        "lib-name",
    ] {
        assert!(rows.iter().all(|r| r.contains_key(key)), "field {key}");
    }
    for (i, id) in ids.iter().enumerate() {
        let row = rows.iter().find(|r| r["id"] == id.to_string()).unwrap();
        assert_eq!(row["name"], format!("worker-{i}"));
        assert_eq!(row["cmd"], "client", "last command was CLIENT ID");
        assert_eq!(row["db"], "0");
        assert_eq!(row["laddr"], format!("127.0.0.1:{}", s.port));
        assert!(row["addr"].starts_with("127.0.0.1:"));
        // SETNAME + SET (100-byte value) + CLIENT ID went in.
        assert!(row["tot-net-in"].parse::<u64>().unwrap() > 100);
        assert!(row["tot-net-out"].parse::<u64>().unwrap() >= 5 + 5);
        // The three above, plus whatever the client library sent on
        // connect (redis-rs announces itself with CLIENT SETINFO).
        assert!(row["tot-cmds"].parse::<u64>().unwrap() >= 3);
    }
    let mine = rows.iter().find(|r| r["id"] == my_id.to_string()).unwrap();
    assert_eq!(mine["name"], "");

    // LIST ID filters; INFO is this connection's own line.
    let text: String = redis::cmd("CLIENT")
        .arg("LIST")
        .arg("ID")
        .arg(ids[0])
        .arg(ids[5])
        .query(&mut me)
        .unwrap();
    let filtered: Vec<u64> = text
        .lines()
        .map(|l| fields(l)["id"].parse().unwrap())
        .collect();
    let mut want = vec![ids[0], ids[5]];
    want.sort();
    assert_eq!(filtered, want);
    let info: String = redis::cmd("CLIENT")
        .arg("INFO")
        .query(&mut conns[3])
        .unwrap();
    let info = fields(info.trim_end());
    assert_eq!(info["id"], ids[3].to_string());
    assert_eq!(info["name"], "worker-3");

    // Closed connections leave the list.
    drop(conns);
    let mut left = 0;
    for _ in 0..50 {
        left = list(&mut me).len();
        if left == 1 {
            break;
        }
        thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(left, 1);
}

#[test]
fn client_list_shows_a_transaction_in_progress() {
    let s = Server::start(2);
    let mut c = s.client();
    let _: () = redis::cmd("WATCH").arg("a").arg("b").query(&mut c).unwrap();
    let _: () = redis::cmd("MULTI").query(&mut c).unwrap();
    let _: String = redis::cmd("SET").arg("a").arg(1).query(&mut c).unwrap();
    let _: String = redis::cmd("SET").arg("b").arg(1).query(&mut c).unwrap();
    let id = id_of(&mut s.client());
    let _ = id;
    let rows = list(&mut s.client());
    let row = rows
        .iter()
        .find(|r| r["multi"] != "-1")
        .expect("a client in MULTI");
    assert_eq!(row["multi"], "2");
    assert_eq!(row["watch"], "2");
    assert_eq!(row["flags"], "x");
}

#[test]
fn client_kill_by_id_and_addr_closes_connections_on_any_core() {
    let s = Server::start(2);
    // A victim is served (so registered) once it has its PONG.
    let victim = || {
        let mut v = s.raw();
        v.write_all(b"PING\r\n").unwrap();
        let mut pong = [0u8; 7];
        v.read_exact(&mut pong).unwrap();
        assert_eq!(&pong, b"+PONG\r\n");
        v
    };
    let mut victims: Vec<std::net::TcpStream> = (0..6).map(|_| victim()).collect();
    let mut killer = s.client();
    let killer_id = id_of(&mut killer);
    // SO_REUSEPORT spreads connections at random: add victims until both
    // cores have at least one (client ids are congruent to their core).
    let mut rows = list(&mut killer);
    while [0, 1].iter().any(|core| {
        !rows.iter().any(|r| {
            r["id"] != killer_id.to_string() && r["id"].parse::<u64>().unwrap() % 2 == *core
        })
    }) {
        assert!(victims.len() < 64, "every connection landed on one core");
        victims.push(victim());
        rows = list(&mut killer);
    }
    let others: Vec<&HashMap<String, String>> = rows
        .iter()
        .filter(|r| r["id"] != killer_id.to_string())
        .collect();
    assert_eq!(others.len(), victims.len());

    // By id: one on each core.
    let mut killed_ids = Vec::new();
    for core in [0, 1] {
        let victim = others
            .iter()
            .find(|r| r["id"].parse::<u64>().unwrap() % 2 == core)
            .expect("a victim on each core");
        let n: i64 = redis::cmd("CLIENT")
            .arg("KILL")
            .arg("ID")
            .arg(&victim["id"])
            .query(&mut killer)
            .unwrap();
        assert_eq!(n, 1);
        killed_ids.push(victim["id"].clone());
    }
    // By address, new form (count) and old form (+OK).
    let by_addr = others
        .iter()
        .find(|r| !killed_ids.contains(&r["id"]))
        .unwrap();
    let n: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("ADDR")
        .arg(&by_addr["addr"])
        .query(&mut killer)
        .unwrap();
    assert_eq!(n, 1);
    killed_ids.push(by_addr["id"].clone());
    let old_form = others
        .iter()
        .find(|r| !killed_ids.contains(&r["id"]))
        .unwrap();
    let ok: String = redis::cmd("CLIENT")
        .arg("KILL")
        .arg(&old_form["addr"])
        .query(&mut killer)
        .unwrap();
    assert_eq!(ok, "OK");
    killed_ids.push(old_form["id"].clone());

    // The killed sockets see EOF; the others still answer.
    let killed_addrs: Vec<String> = others
        .iter()
        .filter(|r| killed_ids.contains(&r["id"]))
        .map(|r| r["addr"].clone())
        .collect();
    for v in victims.iter_mut() {
        let local = v.local_addr().unwrap().to_string();
        v.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        if killed_addrs.contains(&local) {
            let mut buf = [0u8; 16];
            assert_eq!(v.read(&mut buf).unwrap(), 0, "{local} was closed");
        } else {
            let got = common::raw_exchange(v, b"PING\r\n");
            assert_eq!(got, b"+PONG\r\n");
        }
    }
    let rows = list(&mut killer);
    assert_eq!(
        rows.len(),
        1 + victims.len() - 4,
        "killer + survivors: {rows:?}"
    );

    // No match: old form errors, new form counts 0; SKIPME protects self.
    let err = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("127.0.0.1:1")
        .query::<String>(&mut killer)
        .unwrap_err();
    assert!(err.to_string().contains("No such client"), "{err}");
    let n: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("ID")
        .arg(killer_id)
        .query(&mut killer)
        .unwrap();
    assert_eq!(n, 0);
    let n: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("ID")
        .arg(killer_id)
        .arg("SKIPME")
        .arg("no")
        .query(&mut killer)
        .unwrap();
    assert_eq!(n, 1);
    assert!(redis::cmd("PING").query::<String>(&mut killer).is_err());
}

#[test]
fn client_names_and_errors() {
    let s = Server::start(1);
    let mut c = s.client();
    let none: Option<String> = redis::cmd("CLIENT").arg("GETNAME").query(&mut c).unwrap();
    assert_eq!(none, None);
    let _: () = redis::cmd("CLIENT")
        .arg("SETNAME")
        .arg("app")
        .query(&mut c)
        .unwrap();
    let name: String = redis::cmd("CLIENT").arg("GETNAME").query(&mut c).unwrap();
    assert_eq!(name, "app");
    let err = redis::cmd("CLIENT")
        .arg("SETNAME")
        .arg("has space")
        .query::<()>(&mut c)
        .unwrap_err();
    assert!(err.to_string().contains("cannot contain spaces"), "{err}");
    let err = redis::cmd("CLIENT")
        .arg("BOGUS")
        .query::<()>(&mut c)
        .unwrap_err();
    assert!(err.to_string().contains("unknown subcommand"), "{err}");
    let err = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("ID")
        .arg("x")
        .query::<()>(&mut c)
        .unwrap_err();
    assert!(err.to_string().contains("client-id"), "{err}");
    let _: () = redis::cmd("CLIENT")
        .arg("SETINFO")
        .arg("LIB-NAME")
        .arg("mylib")
        .query(&mut c)
        .unwrap();
    let info: String = redis::cmd("CLIENT").arg("INFO").query(&mut c).unwrap();
    assert!(info.contains(" lib-name=mylib "), "{info}");
}

#[test]
fn a_client_that_kills_itself_runs_nothing_it_sent_after() {
    let s = Server::start(1);
    let mut me = s.raw();
    let got = common::raw_exchange(&mut me, b"CLIENT ID\r\n");
    let id = String::from_utf8_lossy(&got[1..got.len() - 2]).to_string();
    let kill = format!("CLIENT KILL ID {id} SKIPME no\r\nSET after-kill 1\r\n");
    let got = common::raw_exchange(&mut me, kill.as_bytes());
    assert_eq!(got, b":1\r\n", "only the KILL is answered, then the close");
    let mut c = s.client();
    let exists: bool = c.exists("after-kill").unwrap();
    assert!(!exists, "a command after the kill ran");
    let err = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("ID")
        .arg(0)
        .query::<i64>(&mut c)
        .unwrap_err();
    assert!(err.to_string().contains("greater than 0"), "{err}");
}
