//! OBJECT ENCODING | FREQ | IDLETIME | REFCOUNT | HELP, answered by the
//! shard that owns the key, without the lookup counting as an access.
//!
//! ENCODING names how the value is stored. A string's is the one Redis 7.0
//! reports, which depends on the command that wrote it (`StrEncoding`:
//! APPEND and SETRANGE make "raw", INCRBYFLOAT never "int"). Aggregates
//! name the encoding Kora really uses, as Redis 7.0 names it
//! (`listpack`/`hashtable` for hashes, `intset`/`hashtable` for sets,
//! `quicklist` for every list), plus Redis 7.2's `listpack` for a small set
//! of non-integer members, which 7.0 would store as a `hashtable`. FREQ is
//! the key's LFU counter (after decay) under an LFU `maxmemory-policy` and
//! IDLETIME the seconds since its last access under any other, each with
//! Redis 7.0's error under the wrong kind of policy (src/store/evict.rs).

use super::{Args, help_reply, subcommand_arity, unknown_subcommand};
use crate::coord::Shard;
use crate::protocol::parser::parse_i64;
use crate::protocol::reply::Resp;
use crate::store::Value;

/// Redis shares the objects of the integers 0..10000 (OBJ_SHARED_INTEGERS);
/// their refcount reads as INT_MAX.
const SHARED_INTEGERS: i64 = 10_000;
const SHARED_REFCOUNT: i64 = i32::MAX as i64;

/// Redis 7.0's OBJECT FREQ error under a non-LFU policy.
const NOT_LFU: &str = "ERR An LFU maxmemory policy is not selected, access frequency not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust.";
/// Redis 7.0's OBJECT IDLETIME error under an LFU policy.
const LFU: &str = "ERR An LFU maxmemory policy is selected, idle time not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust.";

/// OBJECT ENCODING's answer for `value`.
pub fn encoding(value: &Value) -> &'static str {
    match value {
        // As the writing command chose it (`StrEncoding`), as Redis 7.0.
        Value::Str(s) => s.encoding(),
        // Redis 7.0 reports every list as a quicklist.
        Value::List(_) => "quicklist",
        Value::Hash(h) => h.encoding(),
        Value::Set(s) => s.encoding(),
        // Sorted sets: listpack or skiplist (src/store/zset.rs).
        Value::ZSet(z) => z.encoding(),
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
    Error(&'static str),
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
                    "    Return the access frequency index of the <key>. The returned integer is",
                    "    proportional to the logarithm of the recent access frequency of the key.",
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
        let mut db = s.db();
        let now = db.now_secs();
        let lfu = db.lfu_policy();
        let decay = db.eviction().lfu_decay_time;
        let Some((k, value)) = db.peek_key(&key) else {
            return Answer::Missing;
        };
        match question {
            Question::Encoding => Answer::Text(encoding(value)),
            Question::Freq if lfu => {
                Answer::Int(crate::store::evict::lfu_decayed(k.accessed(), now, decay) as i64)
            }
            Question::Freq => Answer::Error(NOT_LFU),
            Question::IdleTime if lfu => Answer::Error(LFU),
            Question::IdleTime => Answer::Int(now.saturating_sub(k.accessed()) as i64),
            Question::RefCount => Answer::Int(match value {
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
        Some(Answer::Error(e)) => out.error(e),
        None => out.error(super::keys::SHARD_GONE),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        use crate::store::{Hash, List, Set, agg::Limits};
        let lim = Limits::default();
        let mut d = 0;
        let mut l = List::default();
        l.push_back(b"a", &lim);
        assert_eq!(encoding(&Value::List(Box::new(l))), "quicklist");

        let hash = |n: usize, len: usize| {
            let mut h = Hash::default();
            for i in 0..n {
                h.insert(
                    format!("f{i}").as_bytes(),
                    &vec![b'v'; len],
                    false,
                    &lim,
                    &mut 0,
                );
            }
            Value::Hash(Box::new(h))
        };
        assert_eq!(encoding(&hash(512, 64)), "listpack");
        assert_eq!(encoding(&hash(513, 1)), "hashtable");
        assert_eq!(encoding(&hash(1, 65)), "hashtable");

        let mut set = |members: Vec<String>| {
            let mut s = Set::default();
            for m in members {
                s.insert(m.as_bytes(), &lim, &mut d);
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
