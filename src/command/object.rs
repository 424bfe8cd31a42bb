//! OBJECT ENCODING | FREQ | IDLETIME | REFCOUNT | HELP, answered by the
//! shard that owns the key, without the lookup counting as an access.
//!
//! A string's ENCODING is the one Redis 7.0 reports, which depends on the
//! command that wrote it (`StrEncoding`: APPEND and SETRANGE make "raw",
//! INCRBYFLOAT never "int"). Aggregates are stored one way per type, so
//! ENCODING names the encoding Redis 7.2 would use for a value of this
//! shape with its default thresholds (which CONFIG GET lists). FREQ
//! answers from the shard's hot-key sketch under any eviction policy.

use super::{Args, help_reply, subcommand_arity, unknown_subcommand};
use crate::protocol::parser::parse_i64;
use crate::protocol::reply::Resp;
use crate::shard::Shard;
use crate::store::Value;

pub const HASH_MAX_LISTPACK_ENTRIES: usize = 128;
pub const HASH_MAX_LISTPACK_VALUE: usize = 64;
pub const SET_MAX_INTSET_ENTRIES: usize = 512;
pub const SET_MAX_LISTPACK_ENTRIES: usize = 128;
pub const SET_MAX_LISTPACK_VALUE: usize = 64;
/// `list-max-listpack-size -2`: a list stays one listpack up to 8 KiB.
const LIST_MAX_LISTPACK_BYTES: usize = 8 * 1024;
/// Redis shares the objects of the integers 0..10000 (OBJ_SHARED_INTEGERS);
/// their refcount reads as INT_MAX.
const SHARED_INTEGERS: i64 = 10_000;
const SHARED_REFCOUNT: i64 = i32::MAX as i64;

fn is_integer(bytes: &[u8]) -> bool {
    bytes.len() <= 20 && parse_i64(bytes).is_some()
}

/// The encoding Redis 7.2 would report for a value of this shape.
pub fn encoding(value: &Value) -> &'static str {
    match value {
        // As the writing command chose it (`StrEncoding`), as Redis 7.0.
        Value::Str(s) => s.encoding(),
        Value::List(l) => {
            // A listpack entry costs its bytes plus about two of header and
            // back-length; the listpack itself 7 bytes.
            let bytes = 7 + l.iter().map(|e| e.len() + 2).sum::<usize>();
            if bytes <= LIST_MAX_LISTPACK_BYTES {
                "listpack"
            } else {
                "quicklist"
            }
        }
        Value::Hash(h) => {
            let small = h.len() <= HASH_MAX_LISTPACK_ENTRIES
                && h.iter().all(|(f, v)| {
                    f.len() <= HASH_MAX_LISTPACK_VALUE && v.len() <= HASH_MAX_LISTPACK_VALUE
                });
            if small { "listpack" } else { "hashtable" }
        }
        Value::Set(s) => {
            if s.len() <= SET_MAX_INTSET_ENTRIES && s.iter().all(|m| is_integer(m)) {
                "intset"
            } else if s.len() <= SET_MAX_LISTPACK_ENTRIES
                && s.iter().all(|m| m.len() <= SET_MAX_LISTPACK_VALUE)
            {
                "listpack"
            } else {
                "hashtable"
            }
        }
    }
}

#[derive(Clone, Copy)]
enum Question {
    Encoding,
    Freq,
    IdleTime,
    RefCount,
}

/// One shard's answer, sent back over the mesh.
enum Answer {
    Missing,
    Text(&'static str),
    Int(i64),
}

pub async fn object(shard: &Shard, args: &Args<'_>, out: &mut Vec<u8>) {
    let sub = args.get(1).to_ascii_uppercase();
    let question = match sub.as_slice() {
        b"ENCODING" => Question::Encoding,
        b"FREQ" => Question::Freq,
        b"IDLETIME" => Question::IdleTime,
        b"REFCOUNT" => Question::RefCount,
        b"HELP" if args.len() == 2 => {
            return help_reply(
                out,
                "OBJECT",
                &[
                    "ENCODING <key>",
                    "    Return the kind of internal representation used in order to store the value",
                    "    associated with a <key>.",
                    "FREQ <key>",
                    "    Return the access frequency index of the <key>. Kora answers from its hot-key",
                    "    sketch (an estimate of recent accesses) under any maxmemory-policy.",
                    "IDLETIME <key>",
                    "    Return the idle time of the <key>, that is the approximated number of",
                    "    seconds elapsed since the last access to the key.",
                    "REFCOUNT <key>",
                    "    Return the number of references of the value associated with the specified",
                    "    <key>.",
                ],
            );
        }
        b"HELP" => return subcommand_arity(out, "object", &sub),
        _ => return unknown_subcommand(out, "OBJECT", args.get(1)),
    };
    if args.len() != 3 {
        return subcommand_arity(out, "object", &sub);
    }
    let key = args.get(2).to_vec();
    let owner = shard.owner(&key);
    let answer = crate::coord::on(shard, owner, move |s: &Shard| {
        let mut db = s.db.borrow_mut();
        let freq = db.hot.estimate(&key);
        let now = db.now_secs();
        let Some(entry) = db.peek(&key) else {
            return Answer::Missing;
        };
        match question {
            Question::Encoding => Answer::Text(encoding(&entry.value)),
            Question::Freq => Answer::Int(freq as i64),
            Question::IdleTime => Answer::Int(now.saturating_sub(entry.accessed) as i64),
            Question::RefCount => Answer::Int(match &entry.value {
                Value::Str(v) if v.encoding() == "int" => match parse_i64(v) {
                    Some(n) if (0..SHARED_INTEGERS).contains(&n) => SHARED_REFCOUNT,
                    _ => 1,
                },
                _ => 1,
            }),
        }
    })
    .await;
    match answer {
        Some(Answer::Text(t)) => out.bulk(t.as_bytes()),
        Some(Answer::Int(n)) => out.int(n),
        Some(Answer::Missing) => out.nil(),
        None => out.error(super::keys::SHARD_GONE),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{HashValue, SetValue};

    fn str_value(s: &str) -> Value {
        Value::Str(s.as_bytes().to_vec().into())
    }

    #[test]
    fn string_encodings_follow_redis() {
        assert_eq!(encoding(&str_value("12345")), "int");
        assert_eq!(encoding(&str_value("-7")), "int");
        assert_eq!(encoding(&str_value("007")), "embstr", "not canonical");
        assert_eq!(
            encoding(&str_value("99999999999999999999")),
            "embstr",
            "overflows i64"
        );
        assert_eq!(encoding(&str_value(&"x".repeat(44))), "embstr");
        assert_eq!(encoding(&str_value(&"x".repeat(45))), "raw");
    }

    #[test]
    fn aggregate_encodings_switch_at_the_default_thresholds() {
        let list = |n: usize, len: usize| {
            Value::List(Box::new(
                (0..n).map(|_| vec![b'a'; len].into_boxed_slice()).collect(),
            ))
        };
        assert_eq!(encoding(&list(10, 10)), "listpack");
        assert_eq!(encoding(&list(100, 100)), "quicklist");

        let hash = |n: usize, len: usize| {
            let mut h = HashValue::default();
            for i in 0..n {
                h.insert(format!("f{i}").into_bytes().into(), vec![b'v'; len].into());
            }
            Value::Hash(Box::new(h))
        };
        assert_eq!(encoding(&hash(128, 64)), "listpack");
        assert_eq!(encoding(&hash(129, 1)), "hashtable");
        assert_eq!(encoding(&hash(1, 65)), "hashtable");

        let set = |members: Vec<String>| {
            let mut s = SetValue::default();
            for m in members {
                s.insert(m.into_bytes().into());
            }
            Value::Set(Box::new(s))
        };
        assert_eq!(
            encoding(&set((0..512).map(|i| i.to_string()).collect())),
            "intset"
        );
        assert_eq!(
            encoding(&set((0..513).map(|i| i.to_string()).collect())),
            "hashtable"
        );
        assert_eq!(
            encoding(&set((0..128).map(|i| format!("m{i}")).collect())),
            "listpack"
        );
        assert_eq!(
            encoding(&set((0..129).map(|i| format!("m{i}")).collect())),
            "hashtable"
        );
        assert_eq!(encoding(&set(vec!["x".repeat(65)])), "hashtable");
    }
}
