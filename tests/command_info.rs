//! COMMAND and its subcommands on a 2-worker server: every row of Kora's
//! table answers COMMAND INFO with its own arity and key positions, and
//! the replies (INFO, DOCS, LIST FILTERBY, GETKEYS[ANDFLAGS], errors) are
//! redis-server 7.0.15's, byte for byte.

mod common;

use common::{Server, raw_exchange};
use redis::Value;

fn resp(cmds: &[&str]) -> Vec<u8> {
    let mut out = Vec::new();
    for c in cmds {
        let words: Vec<&str> = c.split(' ').collect();
        out.extend_from_slice(format!("*{}\r\n", words.len()).as_bytes());
        for w in words {
            out.extend_from_slice(format!("${}\r\n{w}\r\n", w.len()).as_bytes());
        }
    }
    out
}

fn exchange(s: &mut std::net::TcpStream, cmds: &[&str]) -> String {
    String::from_utf8(raw_exchange(s, &resp(cmds))).unwrap()
}

fn int(v: &Value) -> i64 {
    match v {
        Value::Int(n) => *n,
        other => panic!("not an integer: {other:?}"),
    }
}

#[test]
fn every_row_has_command_info_agreeing_with_the_table() {
    let s = Server::start(2);
    let mut c = s.client();
    let rows = kora::command::table::COMMANDS;
    let count: i64 = common::q(&mut c, &["COMMAND", "COUNT"]);
    assert_eq!(count, rows.len() as i64);
    for row in rows {
        let reply: Vec<Value> = common::q(&mut c, &["COMMAND", "INFO", row.name]);
        let Value::Array(entry) = &reply[0] else {
            panic!("{}: no COMMAND INFO: {reply:?}", row.name);
        };
        assert_eq!(entry.len(), 10, "{}", row.name);
        assert_eq!(
            entry[0],
            Value::BulkString(row.name.as_bytes().to_vec()),
            "{}",
            row.name
        );
        assert_eq!(int(&entry[1]), row.arity as i64, "{} arity", row.name);
        if row.movable.is_none() {
            let keys = (int(&entry[3]), int(&entry[4]), int(&entry[5]));
            let want = (
                row.first_key as i64,
                row.last_key as i64,
                row.key_step as i64,
            );
            assert_eq!(keys, want, "{} first/last/step", row.name);
        }
        // Docs too, for every row.
        let docs: Vec<Value> = common::q(&mut c, &["COMMAND", "DOCS", row.name]);
        assert_eq!(docs.len(), 2, "{}", row.name);
    }
    // The whole list: one entry per row.
    let all: Vec<Value> = common::q(&mut c, &["COMMAND"]);
    assert_eq!(all.len(), rows.len());
    let all: Vec<Value> = common::q(&mut c, &["COMMAND", "INFO"]);
    assert_eq!(all.len(), rows.len());
    let docs: Vec<Value> = common::q(&mut c, &["COMMAND", "DOCS"]);
    assert_eq!(docs.len(), 2 * rows.len());
}

#[test]
fn replies_are_redis_7_0s() {
    let s = Server::start(2);
    let mut c = s.raw();
    // Taken from redis-server 7.0.15 with the same pipeline.
    assert_eq!(
        exchange(
            &mut c,
            &[
                "command getkeysandflags lmove a b left right",
                "command getkeys mset a b c d",
                "command getkeys foo a",
                "command getkeys ping x",
                "command getkeys get",
                "command getkeys get a b",
                "command foo",
                "command count x",
                "command list foo",
                "command info nosuch",
                "command docs nosuch",
                "command list filterby aclcat nosuchcat",
                "command list filterby module x",
                "command getkeys lmpop 2 a b left",
                "command getkeysandflags copy a b",
                "command getkeys eval x 0",
                "command getkeys eval x 3 k1 k2 k3 a1",
                "command getkeys eval x 4 k1",
                "command getkeys lmpop 0 a left",
            ]
        ),
        "*2\r\n*2\r\n$1\r\na\r\n*3\r\n+RW\r\n+access\r\n+delete\r\n*2\r\n$1\r\nb\r\n*2\r\n+RW\r\n+insert\r\n\
         *2\r\n$1\r\na\r\n$1\r\nc\r\n-ERR Invalid command specified\r\n\
         -ERR The command has no key arguments\r\n\
         -ERR wrong number of arguments for 'command|getkeys' command\r\n\
         -ERR Invalid number of arguments specified for command\r\n\
         -ERR unknown subcommand 'foo'. Try COMMAND HELP.\r\n\
         -ERR wrong number of arguments for 'command|count' command\r\n-ERR syntax error\r\n\
         *1\r\n$-1\r\n*0\r\n*0\r\n*0\r\n*2\r\n$1\r\na\r\n$1\r\nb\r\n\
         *2\r\n*2\r\n$1\r\na\r\n*2\r\n+RO\r\n+access\r\n*2\r\n$1\r\nb\r\n*2\r\n+OW\r\n+update\r\n\
         *0\r\n*3\r\n$2\r\nk1\r\n$2\r\nk2\r\n$2\r\nk3\r\n*0\r\n\
         -ERR Invalid arguments specified for command\r\n"
    );
    assert_eq!(
        exchange(&mut c, &["command info config|get get"]),
        "*2\r\n*10\r\n$10\r\nconfig|get\r\n:-3\r\n*4\r\n+admin\r\n+noscript\r\n+loading\r\n+stale\r\n\
         :0\r\n:0\r\n:0\r\n*3\r\n+@admin\r\n+@slow\r\n+@dangerous\r\n*0\r\n*0\r\n*0\r\n\
         *10\r\n$3\r\nget\r\n:2\r\n*2\r\n+readonly\r\n+fast\r\n:1\r\n:1\r\n:1\r\n\
         *3\r\n+@read\r\n+@string\r\n+@fast\r\n*0\r\n*1\r\n*6\r\n$5\r\nflags\r\n*2\r\n+RO\r\n+access\r\n\
         $12\r\nbegin_search\r\n*4\r\n$4\r\ntype\r\n$5\r\nindex\r\n$4\r\nspec\r\n*2\r\n$5\r\nindex\r\n:1\r\n\
         $9\r\nfind_keys\r\n*4\r\n$4\r\ntype\r\n$5\r\nrange\r\n$4\r\nspec\r\n*6\r\n$7\r\nlastkey\r\n:0\r\n\
         $7\r\nkeystep\r\n:1\r\n$5\r\nlimit\r\n:0\r\n*0\r\n"
    );
    let docs = exchange(&mut c, &["command docs CONFIG|get"]);
    assert!(
        docs.starts_with(
            "*2\r\n$10\r\nconfig|get\r\n*12\r\n$7\r\nsummary\r\n\
             $42\r\nGet the values of configuration parameters\r\n$5\r\nsince\r\n$5\r\n2.0.0\r\n"
        ),
        "{docs}"
    );
    let help = exchange(&mut c, &["command help"]);
    assert!(help.starts_with(
        "*21\r\n+COMMAND <subcommand> [<arg> [value] [opt] ...]. Subcommands are:\r\n\
         +(no subcommand)\r\n"
    ));
    assert!(help.ends_with("+HELP\r\n+    Prints this help.\r\n"));
}

#[test]
fn list_filters() {
    let s = Server::start(2);
    let mut c = s.client();
    let mut config: Vec<String> = common::q(
        &mut c,
        &["COMMAND", "LIST", "FILTERBY", "PATTERN", "CONFIG*"],
    );
    config.sort();
    assert_eq!(
        config,
        [
            "config",
            "config|get",
            "config|help",
            "config|resetstat",
            "config|rewrite",
            "config|set"
        ]
    );
    // Redis' ACL categories: every list command Kora has is @list.
    let lists: Vec<String> = common::q(&mut c, &["COMMAND", "LIST", "FILTERBY", "ACLCAT", "list"]);
    for name in ["lpush", "rpop", "lrange", "lmove", "lmpop"] {
        assert!(lists.iter().any(|n| n == name), "{name} in {lists:?}");
    }
    assert!(!lists.iter().any(|n| n == "get"));
    // Kora's own HOTKEYS gets categories from its flags.
    let read: Vec<String> = common::q(&mut c, &["COMMAND", "LIST", "FILTERBY", "ACLCAT", "read"]);
    assert!(read.iter().any(|n| n == "hotkeys") && read.iter().any(|n| n == "get"));
    let all: Vec<String> = common::q(&mut c, &["COMMAND", "LIST"]);
    assert!(all.iter().any(|n| n == "client|reply") && all.iter().any(|n| n == "get"));
}
