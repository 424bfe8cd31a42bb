//! LMOVE, RPOPLPUSH, SMOVE, COPY, SINTERCARD and LMPOP end to end on a
//! 2-worker server: keys on one shard and on two (both orders), the
//! same-key forms, every error text, and inside MULTI/EXEC. Replies are
//! compared as raw RESP, byte for byte (the texts were taken from
//! redis-server 7.0.15).

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;

use common::{Server, keys_on_each_shard, shard_of};

const WRONGTYPE: &str = "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n";
const SYNTAX: &str = "-ERR syntax error\r\n";
const NIL: &str = "$-1\r\n";
const NIL_ARRAY: &str = "*-1\r\n";

/// A raw RESP connection: sends multibulk commands, returns each reply's
/// bytes as text.
struct Raw {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Raw {
    fn new(s: &Server) -> Raw {
        let stream = TcpStream::connect(("127.0.0.1", s.port)).unwrap();
        stream
            .set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        Raw {
            reader: BufReader::new(stream.try_clone().unwrap()),
            writer: stream,
        }
    }

    fn send(&mut self, args: &[&str]) {
        let mut buf = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            buf.extend_from_slice(format!("${}\r\n{a}\r\n", a.len()).as_bytes());
        }
        self.writer.write_all(&buf).unwrap();
    }

    fn read(&mut self) -> String {
        let mut line = String::new();
        self.reader.read_line(&mut line).unwrap();
        match line.as_bytes()[0] {
            b'$' => {
                let n: i64 = line[1..line.len() - 2].parse().unwrap();
                if n >= 0 {
                    let mut body = vec![0u8; n as usize + 2];
                    self.reader.read_exact(&mut body).unwrap();
                    line.push_str(&String::from_utf8(body).unwrap());
                }
                line
            }
            b'*' => {
                let n: i64 = line[1..line.len() - 2].parse().unwrap();
                for _ in 0..n.max(0) {
                    let item = self.read();
                    line.push_str(&item);
                }
                line
            }
            _ => line,
        }
    }

    fn r(&mut self, args: &[&str]) -> String {
        self.send(args);
        self.read()
    }
}

fn bulk(s: &str) -> String {
    format!("${}\r\n{s}\r\n", s.len())
}

fn bulks(items: &[&str]) -> String {
    let mut out = format!("*{}\r\n", items.len());
    for i in items {
        out.push_str(&bulk(i));
    }
    out
}

fn int(n: i64) -> String {
    format!(":{n}\r\n")
}

/// Key pairs (source, destination): on one shard, then across shards in
/// both orders.
fn pairs(prefix: &str) -> Vec<(String, String)> {
    let per = keys_on_each_shard(prefix, 2, 2);
    vec![
        (per[0][0].clone(), per[0][1].clone()),
        (per[0][0].clone(), per[1][0].clone()),
        (per[1][0].clone(), per[0][0].clone()),
    ]
}

fn smembers_sorted(c: &mut Raw, key: &str) -> Vec<String> {
    c.send(&["SMEMBERS", key]);
    let reply = c.read();
    let mut v: Vec<String> = reply
        .split("\r\n")
        .skip(1)
        .filter(|l| !l.starts_with('$') && !l.is_empty())
        .map(str::to_string)
        .collect();
    v.sort();
    v
}

#[test]
fn lmove_and_rpoplpush_on_one_and_two_shards() {
    let s = Server::start(2);
    let mut c = Raw::new(&s);
    for (src, dst) in pairs("lm") {
        let (src, dst) = (src.as_str(), dst.as_str());
        let ctx = format!("{src} -> {dst}");
        assert_eq!(c.r(&["FLUSHALL"]), "+OK\r\n");
        // Missing source: nil, even when the destination has another type.
        assert_eq!(c.r(&["LMOVE", src, dst, "LEFT", "RIGHT"]), NIL, "{ctx}");
        assert_eq!(c.r(&["SET", dst, "v"]), "+OK\r\n");
        assert_eq!(c.r(&["LMOVE", src, dst, "LEFT", "RIGHT"]), NIL, "{ctx}");
        assert_eq!(c.r(&["RPOPLPUSH", src, dst]), NIL, "{ctx}");
        // Destination of another type: nothing popped.
        assert_eq!(c.r(&["RPUSH", src, "a", "b", "c"]), int(3));
        assert_eq!(
            c.r(&["LMOVE", src, dst, "LEFT", "RIGHT"]),
            WRONGTYPE,
            "{ctx}"
        );
        assert_eq!(c.r(&["RPOPLPUSH", src, dst]), WRONGTYPE, "{ctx}");
        assert_eq!(c.r(&["LRANGE", src, "0", "-1"]), bulks(&["a", "b", "c"]));
        assert_eq!(c.r(&["GET", dst]), bulk("v"));
        // Source of another type.
        assert_eq!(
            c.r(&["LMOVE", dst, src, "LEFT", "RIGHT"]),
            WRONGTYPE,
            "{ctx}"
        );
        assert_eq!(c.r(&["DEL", dst]), int(1));
        // Directions.
        assert_eq!(c.r(&["LMOVE", src, dst, "LEFT", "middle"]), SYNTAX);
        assert_eq!(c.r(&["LMOVE", src, dst, "up", "LEFT"]), SYNTAX);
        assert_eq!(
            c.r(&["LMOVE", src, dst]),
            "-ERR wrong number of arguments for 'lmove' command\r\n"
        );
        assert_eq!(
            c.r(&["LMOVE", src, dst, "left", "RIGHT"]),
            bulk("a"),
            "{ctx}"
        );
        assert_eq!(
            c.r(&["LMOVE", src, dst, "RIGHT", "left"]),
            bulk("c"),
            "{ctx}"
        );
        assert_eq!(
            c.r(&["LRANGE", dst, "0", "-1"]),
            bulks(&["c", "a"]),
            "{ctx}"
        );
        // The emptied source is deleted.
        assert_eq!(c.r(&["RPOPLPUSH", src, dst]), bulk("b"), "{ctx}");
        assert_eq!(c.r(&["EXISTS", src]), int(0), "{ctx}");
        assert_eq!(c.r(&["LRANGE", dst, "0", "-1"]), bulks(&["b", "c", "a"]));
        // A moved element lands in a new list without the old TTL.
        assert_eq!(c.r(&["EXPIRE", dst, "1000"]), int(1));
        assert_eq!(c.r(&["LMOVE", dst, src, "RIGHT", "RIGHT"]), bulk("a"));
        assert_eq!(c.r(&["TTL", src]), int(-1), "{ctx}");
        assert_eq!(c.r(&["LRANGE", src, "0", "-1"]), bulks(&["a"]));
    }
}

#[test]
fn lmove_same_key_rotates_and_keeps_the_ttl() {
    let s = Server::start(2);
    let mut c = Raw::new(&s);
    assert_eq!(c.r(&["RPUSH", "rot", "a", "b", "c"]), int(3));
    assert_eq!(c.r(&["LMOVE", "rot", "rot", "LEFT", "RIGHT"]), bulk("a"));
    assert_eq!(c.r(&["LRANGE", "rot", "0", "-1"]), bulks(&["b", "c", "a"]));
    assert_eq!(c.r(&["RPOPLPUSH", "rot", "rot"]), bulk("a"));
    assert_eq!(c.r(&["LRANGE", "rot", "0", "-1"]), bulks(&["a", "b", "c"]));
    assert_eq!(c.r(&["LMOVE", "rot", "rot", "LEFT", "LEFT"]), bulk("a"));
    assert_eq!(c.r(&["LRANGE", "rot", "0", "-1"]), bulks(&["a", "b", "c"]));
    assert_eq!(c.r(&["RPUSH", "one", "z"]), int(1));
    assert_eq!(c.r(&["EXPIRE", "one", "1000"]), int(1));
    assert_eq!(c.r(&["LMOVE", "one", "one", "RIGHT", "LEFT"]), bulk("z"));
    let ttl = c.r(&["TTL", "one"]);
    assert!(ttl != int(-1) && ttl != int(-2), "{ttl}");
    assert_eq!(c.r(&["SET", "str", "v"]), "+OK\r\n");
    assert_eq!(c.r(&["LMOVE", "str", "str", "LEFT", "RIGHT"]), WRONGTYPE);
    assert_eq!(c.r(&["LMOVE", "none", "none", "LEFT", "RIGHT"]), NIL);
}

#[test]
fn smove_on_one_and_two_shards() {
    let s = Server::start(2);
    let mut c = Raw::new(&s);
    for (src, dst) in pairs("sm") {
        let (src, dst) = (src.as_str(), dst.as_str());
        let ctx = format!("{src} -> {dst}");
        assert_eq!(c.r(&["FLUSHALL"]), "+OK\r\n");
        // A missing source is 0 whatever the destination holds.
        assert_eq!(c.r(&["SET", dst, "v"]), "+OK\r\n");
        assert_eq!(c.r(&["SMOVE", src, dst, "x"]), int(0), "{ctx}");
        assert_eq!(c.r(&["SADD", src, "x", "y"]), int(2));
        assert_eq!(c.r(&["SMOVE", src, dst, "x"]), WRONGTYPE, "{ctx}");
        assert_eq!(c.r(&["SMOVE", src, dst, "nope"]), WRONGTYPE, "{ctx}");
        assert_eq!(c.r(&["SMOVE", dst, src, "x"]), WRONGTYPE, "{ctx}");
        assert_eq!(smembers_sorted(&mut c, src), ["x", "y"]);
        assert_eq!(c.r(&["DEL", dst]), int(1));
        assert_eq!(c.r(&["SMOVE", src, dst, "nope"]), int(0), "{ctx}");
        assert_eq!(c.r(&["EXISTS", dst]), int(0), "{ctx}");
        assert_eq!(c.r(&["SMOVE", src, dst, "x"]), int(1), "{ctx}");
        assert_eq!(smembers_sorted(&mut c, dst), ["x"]);
        assert_eq!(c.r(&["SADD", dst, "y"]), int(1));
        // Already a member of the destination: still moved out of the source,
        // which is deleted once empty.
        assert_eq!(c.r(&["SMOVE", src, dst, "y"]), int(1), "{ctx}");
        assert_eq!(c.r(&["EXISTS", src]), int(0), "{ctx}");
        assert_eq!(smembers_sorted(&mut c, dst), ["x", "y"]);
        assert_eq!(c.r(&["SCARD", dst]), int(2));
    }
    // The same key: 1 if the member is there, 0 if not; nothing changes.
    assert_eq!(c.r(&["SADD", "same", "m"]), int(1));
    assert_eq!(c.r(&["SMOVE", "same", "same", "m"]), int(1));
    assert_eq!(c.r(&["SMOVE", "same", "same", "n"]), int(0));
    assert_eq!(c.r(&["SCARD", "same"]), int(1));
    assert_eq!(c.r(&["SET", "str", "v"]), "+OK\r\n");
    assert_eq!(c.r(&["SMOVE", "str", "str", "m"]), WRONGTYPE);
    assert_eq!(
        c.r(&["SMOVE", "a", "b"]),
        "-ERR wrong number of arguments for 'smove' command\r\n"
    );
}

#[test]
fn copy_on_one_and_two_shards() {
    let s = Server::start(2);
    let mut c = Raw::new(&s);
    for (src, dst) in pairs("cp") {
        let (src, dst) = (src.as_str(), dst.as_str());
        let ctx = format!("{src} -> {dst}");
        assert_eq!(c.r(&["FLUSHALL"]), "+OK\r\n");
        assert_eq!(c.r(&["COPY", src, dst]), int(0), "{ctx}");
        assert_eq!(c.r(&["SET", src, "v", "EX", "1000"]), "+OK\r\n");
        assert_eq!(c.r(&["COPY", src, dst]), int(1), "{ctx}");
        assert_eq!(c.r(&["GET", dst]), bulk("v"));
        let ttl = c.r(&["TTL", dst]);
        assert!(
            ttl != int(-1) && ttl != int(-2),
            "{ctx}: TTL copied, got {ttl}"
        );
        // An existing destination needs REPLACE (given any number of times).
        assert_eq!(c.r(&["SADD", src, "x"]), WRONGTYPE);
        assert_eq!(c.r(&["DEL", src]), int(1));
        assert_eq!(c.r(&["SADD", src, "x", "y"]), int(2));
        assert_eq!(c.r(&["COPY", src, dst]), int(0), "{ctx}");
        assert_eq!(c.r(&["GET", dst]), bulk("v"));
        assert_eq!(
            c.r(&["COPY", src, dst, "REPLACE", "replace"]),
            int(1),
            "{ctx}"
        );
        assert_eq!(c.r(&["TYPE", dst]), "+set\r\n");
        assert_eq!(c.r(&["TTL", dst]), int(-1), "{ctx}");
        // Deep: the copy changes on its own.
        assert_eq!(c.r(&["SADD", dst, "z"]), int(1));
        assert_eq!(smembers_sorted(&mut c, src), ["x", "y"]);
        assert_eq!(smembers_sorted(&mut c, dst), ["x", "y", "z"]);
        assert_eq!(c.r(&["DEL", dst]), int(1));
        assert_eq!(c.r(&["RPUSH", "l", "a"]), int(1));
        assert_eq!(c.r(&["COPY", src, dst, "DB", "0"]), int(1), "{ctx}");
        assert_eq!(c.r(&["DEL", src]), int(1));
        assert_eq!(smembers_sorted(&mut c, dst), ["x", "y"]);
        // Errors come from the options before any key is looked at.
        assert_eq!(
            c.r(&["COPY", src, src]),
            "-ERR source and destination objects are the same\r\n"
        );
        assert_eq!(
            c.r(&["COPY", src, src, "DB", "0", "REPLACE"]),
            "-ERR source and destination objects are the same\r\n"
        );
        assert_eq!(
            c.r(&["COPY", src, dst, "DB", "1"]),
            "-ERR DB index is out of range\r\n"
        );
        assert_eq!(
            c.r(&["COPY", src, src, "DB", "-1"]),
            "-ERR DB index is out of range\r\n"
        );
        assert_eq!(
            c.r(&["COPY", src, dst, "DB", "x"]),
            "-ERR value is not an integer or out of range\r\n"
        );
        assert_eq!(
            c.r(&["COPY", src, dst, "DB", "99999999999"]),
            "-ERR value is out of range, value must between -2147483648 and 2147483647\r\n"
        );
        assert_eq!(c.r(&["COPY", src, dst, "DB"]), SYNTAX);
        assert_eq!(c.r(&["COPY", src, dst, "foo"]), SYNTAX);
        assert_eq!(
            c.r(&["COPY", src]),
            "-ERR wrong number of arguments for 'copy' command\r\n"
        );
    }
}

/// Three set keys: two on shard 0 and one on shard 1, so that the same
/// command sees one shard (first two) or two.
#[test]
fn sintercard_on_one_and_two_shards() {
    let s = Server::start(2);
    let mut c = Raw::new(&s);
    let per = keys_on_each_shard("si", 2, 2);
    let (a, b, x) = (per[0][0].as_str(), per[0][1].as_str(), per[1][0].as_str());
    assert_eq!(c.r(&["SADD", a, "1", "2", "3", "4", "5"]), int(5));
    assert_eq!(c.r(&["SADD", b, "2", "3", "4", "5", "6"]), int(5));
    assert_eq!(c.r(&["SADD", x, "3", "4", "5", "6", "7"]), int(3 + 2));
    assert_eq!(c.r(&["SINTERCARD", "1", a]), int(5));
    assert_eq!(c.r(&["SINTERCARD", "2", a, b]), int(4));
    assert_eq!(c.r(&["SINTERCARD", "2", a, x]), int(3));
    assert_eq!(c.r(&["SINTERCARD", "3", a, b, x]), int(3));
    assert_eq!(c.r(&["SINTERCARD", "3", x, b, a, "LIMIT", "2"]), int(2));
    assert_eq!(c.r(&["SINTERCARD", "2", a, b, "limit", "3"]), int(3));
    assert_eq!(c.r(&["SINTERCARD", "3", a, b, x, "LIMIT", "0"]), int(3));
    assert_eq!(
        c.r(&["SINTERCARD", "3", a, b, x, "LIMIT", "1", "LIMIT", "0"]),
        int(3)
    );
    assert_eq!(c.r(&["SINTERCARD", "2", a, a]), int(5));
    assert_eq!(c.r(&["SINTERCARD", "3", a, x, "none"]), int(0));
    // The smallest set on the other shard; an intersection that empties.
    let y = per[1][1].as_str();
    assert_eq!(c.r(&["SADD", y, "4", "5", "9"]), int(3));
    assert_eq!(c.r(&["SINTERCARD", "3", a, b, y]), int(2));
    assert_eq!(c.r(&["SINTERCARD", "4", a, y, b, x, "LIMIT", "1"]), int(1));
    assert_eq!(c.r(&["SADD", b, "9"]), int(1));
    assert_eq!(c.r(&["SINTERCARD", "2", y, b]), int(3));
    assert_eq!(c.r(&["SREM", a, "4", "5"]), int(2));
    assert_eq!(c.r(&["SINTERCARD", "3", y, a, x]), int(0));
    // WRONGTYPE wins over a missing key anywhere in the list.
    assert_eq!(c.r(&["SET", "str", "v"]), "+OK\r\n");
    for keys in [[a, "str"], ["str", x], ["none", "str"]] {
        assert_eq!(c.r(&["SINTERCARD", "2", keys[0], keys[1]]), WRONGTYPE);
    }
    assert_eq!(c.r(&["SINTERCARD", "3", "none", x, "str"]), WRONGTYPE);
    let numkeys = "-ERR numkeys should be greater than 0\r\n";
    for n in ["0", "-1", "x", "99999999999999999999"] {
        assert_eq!(c.r(&["SINTERCARD", n, a]), numkeys, "{n}");
    }
    assert_eq!(
        c.r(&["SINTERCARD", "3", a, b]),
        "-ERR Number of keys can't be greater than number of args\r\n"
    );
    let limit = "-ERR LIMIT can't be negative\r\n";
    assert_eq!(c.r(&["SINTERCARD", "1", a, "LIMIT", "-1"]), limit);
    assert_eq!(c.r(&["SINTERCARD", "2", a, x, "LIMIT", "x"]), limit);
    assert_eq!(c.r(&["SINTERCARD", "1", a, "LIMIT"]), SYNTAX);
    assert_eq!(c.r(&["SINTERCARD", "1", a, "foo", "1"]), SYNTAX);
    assert_eq!(c.r(&["SINTERCARD", "2", a, x, "foo"]), SYNTAX);
    assert_eq!(
        c.r(&["SINTERCARD", "1"]),
        "-ERR wrong number of arguments for 'sintercard' command\r\n"
    );
}

#[test]
fn lmpop_on_one_and_two_shards() {
    let s = Server::start(2);
    let mut c = Raw::new(&s);
    let per = keys_on_each_shard("mp", 2, 3);
    // Same shard: p, q; other shard: r.
    let (p, q, r) = (per[0][0].as_str(), per[0][1].as_str(), per[1][0].as_str());
    let w = per[1][1].as_str();
    assert_eq!(c.r(&["SET", w, "v"]), "+OK\r\n");
    assert_eq!(c.r(&["LMPOP", "2", p, q, "LEFT"]), NIL_ARRAY);
    assert_eq!(c.r(&["LMPOP", "2", p, r, "LEFT"]), NIL_ARRAY);
    assert_eq!(c.r(&["RPUSH", q, "a", "b", "c", "d"]), int(4));
    assert_eq!(c.r(&["RPUSH", r, "e", "f"]), int(2));
    // The first key holding something wins, in argument order.
    assert_eq!(
        c.r(&["LMPOP", "2", p, q, "LEFT"]),
        format!("*2\r\n{}{}", bulk(q), bulks(&["a"]))
    );
    assert_eq!(
        c.r(&["LMPOP", "3", p, r, q, "right", "COUNT", "1"]),
        format!("*2\r\n{}{}", bulk(r), bulks(&["f"]))
    );
    assert_eq!(
        c.r(&["LMPOP", "3", p, q, r, "RIGHT", "count", "2"]),
        format!("*2\r\n{}{}", bulk(q), bulks(&["d", "c"]))
    );
    // WRONGTYPE only for a key before the first list.
    assert_eq!(c.r(&["LMPOP", "3", p, w, q, "LEFT"]), WRONGTYPE);
    assert_eq!(c.r(&["LMPOP", "2", w, r, "LEFT"]), WRONGTYPE);
    assert_eq!(
        c.r(&["LMPOP", "3", p, r, w, "LEFT", "COUNT", "10"]),
        format!("*2\r\n{}{}", bulk(r), bulks(&["e"]))
    );
    assert_eq!(c.r(&["EXISTS", r]), int(0));
    assert_eq!(
        c.r(&["LMPOP", "2", q, q, "LEFT", "COUNT", "5"]),
        format!("*2\r\n{}{}", bulk(q), bulks(&["b"]))
    );
    assert_eq!(c.r(&["EXISTS", q]), int(0));
    assert_eq!(c.r(&["LMPOP", "3", p, q, r, "LEFT"]), NIL_ARRAY);
    // Errors, checked before any key.
    let numkeys = "-ERR numkeys should be greater than 0\r\n";
    for n in ["0", "-1", "x", "99999999999999999999"] {
        assert_eq!(c.r(&["LMPOP", n, p, "LEFT"]), numkeys, "{n}");
    }
    assert_eq!(c.r(&["LMPOP", "9223372036854775807", p, "LEFT"]), SYNTAX);
    assert_eq!(c.r(&["LMPOP", "2", p, "LEFT"]), SYNTAX);
    assert_eq!(c.r(&["LMPOP", "2", p, r, "middle"]), SYNTAX);
    let count = "-ERR count should be greater than 0\r\n";
    for n in ["0", "-1", "x"] {
        assert_eq!(c.r(&["LMPOP", "2", p, r, "LEFT", "COUNT", n]), count, "{n}");
    }
    assert_eq!(c.r(&["LMPOP", "1", p, "LEFT", "COUNT"]), SYNTAX);
    assert_eq!(
        c.r(&["LMPOP", "2", p, r, "LEFT", "COUNT", "1", "COUNT", "2"]),
        SYNTAX
    );
    assert_eq!(c.r(&["LMPOP", "1", p, "LEFT", "foo"]), SYNTAX);
    assert_eq!(
        c.r(&["LMPOP", "1", p]),
        "-ERR wrong number of arguments for 'lmpop' command\r\n"
    );
}

#[test]
fn inside_multi_exec() {
    let s = Server::start(2);
    let mut c = Raw::new(&s);
    let per = keys_on_each_shard("tx", 2, 3);
    let (a, b) = (per[0][0].as_str(), per[1][0].as_str());
    let (a2, b2) = (per[0][1].as_str(), per[1][1].as_str());
    let (a3, b3) = (per[0][2].as_str(), per[1][2].as_str());
    assert_eq!(shard_of(a, 2), 0);
    assert_eq!(shard_of(b, 2), 1);
    assert_eq!(c.r(&["RPUSH", a, "1", "2"]), int(2));
    assert_eq!(c.r(&["SADD", b, "m", "n"]), int(2));
    assert_eq!(c.r(&["SET", a3, "v"]), "+OK\r\n");
    // Keys on both shards.
    let queued: [&[&str]; 9] = [
        &["LMOVE", a, a2, "LEFT", "RIGHT"],
        &["RPOPLPUSH", a, b2],
        &["SMOVE", b, a2, "m"],
        &["SMOVE", b, b3, "m"],
        &["COPY", b, a3],
        &["COPY", b, a3, "REPLACE"],
        &["SINTERCARD", "2", b, a3],
        &["LMPOP", "3", a, a2, b2, "RIGHT", "COUNT", "5"],
        &["COPY", b, a3, "DB", "1"],
    ];
    assert_eq!(c.r(&["MULTI"]), "+OK\r\n");
    for cmd in queued {
        assert_eq!(c.r(cmd), "+QUEUED\r\n", "{cmd:?}");
    }
    let expected = [
        bulk("1"),
        bulk("2"),
        WRONGTYPE.to_string(),
        int(1),
        int(0),
        int(1),
        int(1),
        format!("*2\r\n{}{}", bulk(a2), bulks(&["1"])),
        "-ERR DB index is out of range\r\n".to_string(),
    ];
    assert_eq!(
        c.r(&["EXEC"]),
        format!("*{}\r\n{}", expected.len(), expected.concat())
    );
    assert_eq!(c.r(&["LRANGE", b2, "0", "-1"]), bulks(&["2"]));
    assert_eq!(smembers_sorted(&mut c, b), ["n"]);
    assert_eq!(smembers_sorted(&mut c, b3), ["m"]);
    assert_eq!(smembers_sorted(&mut c, a3), ["n"]);
    assert_eq!(c.r(&["EXISTS", a, a2]), int(0));
    // Errors at queue time: arity; the transaction is discarded.
    assert_eq!(c.r(&["MULTI"]), "+OK\r\n");
    assert_eq!(
        c.r(&["LMOVE", a, b]),
        "-ERR wrong number of arguments for 'lmove' command\r\n"
    );
    assert_eq!(
        c.r(&["EXEC"]),
        "-EXECABORT Transaction discarded because of previous errors.\r\n"
    );
    // Same-shard forms inside a transaction.
    assert_eq!(c.r(&["RPUSH", a, "x", "y"]), int(2));
    assert_eq!(c.r(&["MULTI"]), "+OK\r\n");
    assert_eq!(c.r(&["LMOVE", a, a, "LEFT", "RIGHT"]), "+QUEUED\r\n");
    assert_eq!(c.r(&["SINTERCARD", "0", a]), "+QUEUED\r\n");
    assert_eq!(c.r(&["LMPOP", "1", a, "LEFT", "COUNT", "9"]), "+QUEUED\r\n");
    assert_eq!(
        c.r(&["EXEC"]),
        format!(
            "*3\r\n{}-ERR numkeys should be greater than 0\r\n*2\r\n{}{}",
            bulk("x"),
            bulk(a),
            bulks(&["y", "x"])
        )
    );
}

/// Two clients move elements back and forth between lists on different
/// shards while a third watches: the total is never seen off, because each
/// LMOVE is one atomic step and MULTI/EXEC reads both lists at once.
#[test]
fn cross_shard_moves_are_never_seen_half_done() {
    let s = Server::start(2);
    let per = keys_on_each_shard("iso", 2, 1);
    let (a, b) = (per[0][0].clone(), per[1][0].clone());
    let mut c = Raw::new(&s);
    let items: Vec<String> = (0..20).map(|i| i.to_string()).collect();
    let mut push = vec!["RPUSH", a.as_str()];
    push.extend(items.iter().map(String::as_str));
    assert_eq!(c.r(&push), int(20));
    let movers: Vec<_> = [(a.clone(), b.clone()), (b.clone(), a.clone())]
        .into_iter()
        .map(|(from, to)| {
            let mut m = Raw::new(&s);
            std::thread::spawn(move || {
                for _ in 0..300 {
                    let r = m.r(&["LMOVE", &from, &to, "LEFT", "RIGHT"]);
                    assert!(r.starts_with('$'), "{r}");
                }
            })
        })
        .collect();
    for _ in 0..200 {
        assert_eq!(c.r(&["MULTI"]), "+OK\r\n");
        assert_eq!(c.r(&["LLEN", &a]), "+QUEUED\r\n");
        assert_eq!(c.r(&["LLEN", &b]), "+QUEUED\r\n");
        let reply = c.r(&["EXEC"]);
        let lens: Vec<i64> = reply
            .split("\r\n")
            .skip(1)
            .filter_map(|l| l.strip_prefix(':'))
            .map(|n| n.parse().unwrap())
            .collect();
        assert_eq!(lens.iter().sum::<i64>(), 20, "{reply}");
    }
    for m in movers {
        m.join().unwrap();
    }
}

/// Keyspace hits and misses as Redis counts them: COPY reads its source;
/// SINTERCARD reads every key, or up to the first of another type; the
/// write commands count nothing.
#[test]
fn keyspace_statistics_match_redis() {
    let s = Server::start(2);
    let mut c = Raw::new(&s);
    let per = keys_on_each_shard("st", 2, 2);
    let (a, b) = (per[0][0].as_str(), per[1][0].as_str());
    let (a2, b2) = (per[0][1].as_str(), per[1][1].as_str());
    let stats = |c: &mut Raw, args: &[&str]| -> (i64, i64) {
        assert_eq!(c.r(&["CONFIG", "RESETSTAT"]), "+OK\r\n");
        c.r(args);
        let info = c.r(&["INFO", "stats"]);
        let field = |name: &str| -> i64 {
            let at = info.find(&format!("{name}:")).unwrap() + name.len() + 1;
            info[at..].split("\r\n").next().unwrap().parse().unwrap()
        };
        (field("keyspace_hits"), field("keyspace_misses"))
    };
    assert_eq!(c.r(&["SET", a, "v"]), "+OK\r\n");
    assert_eq!(c.r(&["SADD", b, "m"]), int(1));
    assert_eq!(c.r(&["SADD", b2, "m"]), int(1));
    // Redis values measured on redis-server 7.0.15.
    assert_eq!(stats(&mut c, &["SINTERCARD", "2", a, b]), (1, 0));
    assert_eq!(stats(&mut c, &["SINTERCARD", "3", b, a, b2]), (2, 0));
    assert_eq!(stats(&mut c, &["SINTERCARD", "3", a2, b, b2]), (2, 1));
    assert_eq!(stats(&mut c, &["SINTERCARD", "2", b, b2]), (2, 0));
    assert_eq!(stats(&mut c, &["COPY", b, a2]), (1, 0));
    assert_eq!(stats(&mut c, &["COPY", "none", a2]), (0, 1));
    assert_eq!(stats(&mut c, &["SMOVE", b, a2, "m"]), (0, 0));
    assert_eq!(stats(&mut c, &["LMPOP", "2", a2, a, "LEFT"]), (0, 0));
    assert_eq!(stats(&mut c, &["LMOVE", b2, a, "LEFT", "LEFT"]), (0, 0));
}

/// A move across shards invalidates a WATCH on either key; a command that
/// changes nothing (missing source, member not there) does not.
#[test]
fn watch_sees_cross_shard_moves_only_when_something_moved() {
    let s = Server::start(2);
    let per = keys_on_each_shard("w", 2, 1);
    let (a, b) = (per[0][0].as_str(), per[1][0].as_str());
    let mut c = Raw::new(&s);
    let mut other = Raw::new(&s);
    let attempt = |c: &mut Raw, other: &mut Raw, watched: &str, cmd: &[&str]| -> String {
        assert_eq!(c.r(&["WATCH", watched]), "+OK\r\n");
        other.r(cmd);
        assert_eq!(c.r(&["MULTI"]), "+OK\r\n");
        assert_eq!(c.r(&["PING"]), "+QUEUED\r\n");
        c.r(&["EXEC"])
    };
    let ran = "*1\r\n+PONG\r\n";
    assert_eq!(
        attempt(&mut c, &mut other, b, &["LMOVE", a, b, "LEFT", "LEFT"]),
        ran
    );
    assert_eq!(attempt(&mut c, &mut other, b, &["SMOVE", a, b, "m"]), ran);
    assert_eq!(other.r(&["RPUSH", a, "x"]), int(1));
    assert_eq!(
        attempt(&mut c, &mut other, b, &["LMOVE", a, b, "LEFT", "LEFT"]),
        NIL_ARRAY
    );
    assert_eq!(
        attempt(&mut c, &mut other, b, &["LMOVE", b, a, "LEFT", "LEFT"]),
        NIL_ARRAY
    );
    assert_eq!(other.r(&["DEL", a]), int(1));
    assert_eq!(other.r(&["SADD", a, "m"]), int(1));
    assert_eq!(
        attempt(&mut c, &mut other, a, &["SMOVE", a, b, "nope"]),
        ran
    );
    assert_eq!(
        attempt(&mut c, &mut other, a, &["SMOVE", a, b, "m"]),
        NIL_ARRAY
    );
    assert_eq!(attempt(&mut c, &mut other, a, &["COPY", b, a]), NIL_ARRAY);
}
