//! COMMAND and its subcommands (COUNT, LIST `[FILTERBY]`, INFO, DOCS,
//! GETKEYS, GETKEYSANDFLAGS, HELP) with Redis 7.0's reply shapes.
//!
//! The data is Redis 7.0's own: `tools/gen-command-docs.py` asks a
//! redis-server 7.0.15 for `COMMAND` and `COMMAND DOCS` and checks in every
//! command's INFO entry and DOCS map as raw RESP2 (`redis_commands.resp`)
//! with a sorted index (`redis_commands.rs`). Kora answers for the commands
//! its table has ([`super::table::COMMANDS`], and the subcommands of its
//! containers), copying Redis' bytes when Redis' arity and key positions
//! agree with the row; a row Redis lacks (HOTKEYS…) or disagrees with gets
//! an entry built from the table. All of Redis 7.0's commands are in the
//! data, so a row added to the table later answers COMMAND INFO / DOCS with
//! no new data. Replies are written straight from the static bytes: no
//! allocation beyond the reply.

use super::table::{self, CommandSpec};
use super::{Args, help_reply, subcommand_arity, unknown_subcommand};
use crate::protocol::reply::{Resp, err};

#[rustfmt::skip]
#[path = "redis_commands.rs"]
mod generated;

/// One Redis 7.0 command (or subcommand, named `container|sub`) as
/// redis-server reported it; `info` and `docs` are byte ranges of
/// [`BLOB`].
pub(crate) struct RedisCommand {
    pub name: &'static str,
    pub arity: i32,
    pub first: i32,
    pub last: i32,
    pub step: i32,
    /// ACL categories, without the `@`.
    pub acl: &'static [&'static str],
    /// The key specifications, in order.
    pub specs: &'static [KeySpec],
    pub info: (usize, usize),
    pub docs: (usize, usize),
}

/// One key specification of a Redis 7.0 command: where the search for its
/// keys begins and how they are found from there.
pub(crate) struct KeySpec {
    /// RO, RW, OW, RM, access, update, insert, delete, incomplete…
    pub flags: &'static [&'static str],
    pub begin: Bs,
    pub find: Fk,
}

/// A key specification's `begin_search`.
pub(crate) enum Bs {
    /// At this argument index.
    Index(i64),
    /// After this keyword, searched from `startfrom` (negative: from the
    /// end, backwards).
    Keyword(&'static str, i64),
    Unknown,
}

/// A key specification's `find_keys`.
pub(crate) enum Fk {
    /// (lastkey, keystep, limit).
    Range(i64, i64, i64),
    /// (keynumidx, firstkey, keystep).
    Keynum(i64, i64, i64),
    Unknown,
}

static BLOB: &[u8] = include_bytes!("redis_commands.resp");

/// Redis 7.0's entry for `name` (any case), if Redis has that command.
pub(crate) fn redis(name: &[u8]) -> Option<&'static RedisCommand> {
    generated::COMMANDS
        .binary_search_by(|c| {
            let a = c.name.as_bytes();
            for (x, y) in a.iter().zip(name) {
                match x.cmp(&y.to_ascii_lowercase()) {
                    std::cmp::Ordering::Equal => {}
                    other => return other,
                }
            }
            a.len().cmp(&name.len())
        })
        .ok()
        .map(|i| &generated::COMMANDS[i])
}

/// Redis' entry for a row, when it agrees with the row's arity and key
/// positions (then its bytes are Kora's answer). A row whose keys a
/// finder locates (`movable`) has no positions of its own to compare.
pub(crate) fn redis_for(spec: &CommandSpec) -> Option<&'static RedisCommand> {
    redis(spec.name.as_bytes()).filter(|r| {
        r.arity == spec.arity
            && (spec.movable.is_some()
                || (r.first == spec.first_key
                    && r.last == spec.last_key
                    && r.step == spec.key_step))
    })
}

/// A name COMMAND INFO / DOCS answers for: a row of the table, or a
/// subcommand (`config|get`) Redis has of a container the table has.
enum Known {
    Row(&'static CommandSpec),
    Sub(&'static RedisCommand),
}

fn known(name: &[u8]) -> Option<Known> {
    match name.iter().position(|&b| b == b'|') {
        None => table::lookup(name).map(Known::Row),
        Some(bar) => {
            table::lookup(&name[..bar])?;
            redis(name).map(Known::Sub)
        }
    }
}

/// ACL categories Kora gives a row Redis lacks.
fn own_categories(spec: &CommandSpec) -> impl Iterator<Item = &'static str> + '_ {
    let has = |f: &str| spec.flags.contains(&f);
    [
        (has("readonly"), "@read"),
        (has("write"), "@write"),
        (has("admin"), "@admin"),
        (has("fast"), "@fast"),
        (!has("fast"), "@slow"),
        (has("admin"), "@dangerous"),
    ]
    .into_iter()
    .filter_map(|(on, c)| on.then_some(c))
}

fn categories_of(spec: &CommandSpec, cat: &[u8]) -> bool {
    match redis(spec.name.as_bytes()) {
        Some(r) => r.acl.iter().any(|c| c.as_bytes().eq_ignore_ascii_case(cat)),
        None => own_categories(spec).any(|c| c.as_bytes()[1..].eq_ignore_ascii_case(cat)),
    }
}

/// One COMMAND INFO entry.
fn info(spec: &CommandSpec, out: &mut Vec<u8>) {
    if let Some(r) = redis_for(spec) {
        return out.extend_from_slice(&BLOB[r.info.0..r.info.1]);
    }
    out.array(10);
    out.bulk(spec.name.as_bytes());
    out.int(spec.arity as i64);
    out.array(spec.flags.len());
    for f in spec.flags {
        out.simple(f);
    }
    out.int(spec.first_key as i64);
    out.int(spec.last_key as i64);
    out.int(spec.key_step as i64);
    match redis(spec.name.as_bytes()) {
        Some(r) => {
            out.array(r.acl.len());
            for c in r.acl {
                out.push(b'+');
                out.push(b'@');
                out.extend_from_slice(c.as_bytes());
                out.extend_from_slice(b"\r\n");
            }
        }
        None => {
            out.array(own_categories(spec).count());
            for c in own_categories(spec) {
                out.simple(c);
            }
        }
    }
    // Tips, key specifications, subcommands: none known.
    for _ in 0..3 {
        out.array(0);
    }
}

/// One COMMAND DOCS map (without its name).
fn docs(spec: &CommandSpec, out: &mut Vec<u8>) {
    if let Some(r) = redis(spec.name.as_bytes()) {
        return out.extend_from_slice(&BLOB[r.docs.0..r.docs.1]);
    }
    let summary: &str = match spec.name {
        "hotkeys" => "Returns the most accessed keys (Kora).",
        "post" | "host:" => "Closes a connection that sends an HTTP request to the RESP port.",
        _ => "A Kora command.",
    };
    out.array(6);
    out.bulk(b"summary");
    out.bulk(summary.as_bytes());
    out.bulk(b"since");
    out.bulk(b"0.1.0");
    out.bulk(b"group");
    out.bulk(b"server");
}

/// Names COMMAND LIST shows: every row and its containers' subcommands.
fn listed() -> impl Iterator<Item = (&'static str, Option<&'static CommandSpec>)> {
    table::all().iter().flat_map(|spec| {
        std::iter::once((spec.name, Some(spec))).chain(spec.subs.iter().map(|s| (*s, None)))
    })
}

fn listed_matches(name: &str, spec: Option<&CommandSpec>, by: &[u8], arg: &[u8]) -> bool {
    if by.eq_ignore_ascii_case(b"MODULE") {
        false
    } else if by.eq_ignore_ascii_case(b"ACLCAT") {
        match spec {
            Some(spec) => categories_of(spec, arg),
            None => redis(name.as_bytes())
                .is_some_and(|r| r.acl.iter().any(|c| c.as_bytes().eq_ignore_ascii_case(arg))),
        }
    } else {
        crate::store::glob::glob_match_nocase(arg, name.as_bytes())
    }
}

const HELP: &[&str] = &[
    "(no subcommand)",
    "    Return details about all Redis commands.",
    "COUNT",
    "    Return the total number of commands in this Redis server.",
    "LIST",
    "    Return a list of all commands in this Redis server.",
    "INFO [<command-name> ...]",
    "    Return details about multiple Redis commands.",
    "    If no command names are given, documentation details for all",
    "    commands are returned.",
    "DOCS [<command-name> ...]",
    "    Return documentation details about multiple Redis commands.",
    "    If no command names are given, documentation details for all",
    "    commands are returned.",
    "GETKEYS <full-command>",
    "    Return the keys from a full Redis command.",
    "GETKEYSANDFLAGS <full-command>",
    "    Return the keys and the access flags from a full Redis command.",
];

/// COMMAND [subcommand …].
pub fn command(args: &Args, out: &mut Vec<u8>) {
    let all = table::all();
    if args.len() == 1 {
        out.array(all.len());
        for spec in all {
            info(spec, out);
        }
        return;
    }
    let sub = args.get(1);
    let mut lower = [0u8; 16];
    let n = sub.len().min(lower.len());
    for (d, s) in lower.iter_mut().zip(&sub[..n]) {
        *d = s.to_ascii_lowercase();
    }
    let sub_name: &[u8] = if sub.len() <= lower.len() {
        &lower[..n]
    } else {
        b""
    };
    let Some(sub_spec) = [
        "command|count",
        "command|docs",
        "command|getkeys",
        "command|getkeysandflags",
        "command|help",
        "command|info",
        "command|list",
    ]
    .iter()
    .find(|n| n.as_bytes()[8..] == *sub_name)
    .and_then(|n| redis(n.as_bytes())) else {
        return unknown_subcommand(out, "COMMAND", sub);
    };
    // Redis checks a subcommand's own arity first.
    let argc = args.len() as i32;
    if (sub_spec.arity >= 0 && argc != sub_spec.arity) || argc < -sub_spec.arity {
        return subcommand_arity(out, "command", sub);
    }
    match sub_name {
        b"count" => out.int(all.len() as i64),
        b"help" => help_reply(out, "COMMAND", HELP),
        b"list" => {
            let filter = match args.len() {
                2 => None,
                5 if args.is(2, "FILTERBY")
                    && (args.is(3, "MODULE") || args.is(3, "ACLCAT") || args.is(3, "PATTERN")) =>
                {
                    Some((args.get(3), args.get(4)))
                }
                _ => return out.error(err::SYNTAX),
            };
            let keep = |(name, spec): &(&str, Option<&CommandSpec>)| {
                filter.is_none_or(|(by, arg)| listed_matches(name, *spec, by, arg))
            };
            out.array(listed().filter(keep).count());
            for (name, _) in listed().filter(keep) {
                out.bulk(name.as_bytes());
            }
        }
        b"info" if args.len() == 2 => {
            out.array(all.len());
            for spec in all {
                info(spec, out);
            }
        }
        b"info" => {
            out.array(args.len() - 2);
            for name in args.iter_from(2) {
                match known(name) {
                    Some(Known::Row(spec)) => info(spec, out),
                    Some(Known::Sub(r)) => out.extend_from_slice(&BLOB[r.info.0..r.info.1]),
                    None => out.nil(),
                }
            }
        }
        b"docs" if args.len() == 2 => {
            out.array(2 * all.len());
            for spec in all {
                out.bulk(spec.name.as_bytes());
                docs(spec, out);
            }
        }
        b"docs" => {
            // Unknown names are left out, as Redis leaves them.
            out.array(2 * args.iter_from(2).filter(|n| known(n).is_some()).count());
            for name in args.iter_from(2) {
                match known(name) {
                    Some(Known::Row(spec)) => {
                        out.bulk(spec.name.as_bytes());
                        docs(spec, out);
                    }
                    Some(Known::Sub(r)) => {
                        out.bulk(r.name.as_bytes());
                        out.extend_from_slice(&BLOB[r.docs.0..r.docs.1]);
                    }
                    None => {}
                }
            }
        }
        _ => getkeys(args, sub_name == b"getkeysandflags", out),
    }
}

/// COMMAND GETKEYS / GETKEYSANDFLAGS: the keys of the command in
/// `args[2..]`, found as Kora routes it; the flags are those of Redis'
/// key specification for that key.
fn getkeys(args: &Args, with_flags: bool, out: &mut Vec<u8>) {
    let Some(spec) = table::lookup(args.get(2)) else {
        return out.error("ERR Invalid command specified");
    };
    let redis = redis(spec.name.as_bytes());
    let has_keys = spec.first_key > 0
        || spec.movable.is_some()
        || redis.is_some_and(|r| r.specs.iter().any(|s| !s.flags.contains(&"not_key")));
    if !has_keys {
        return out.error("ERR The command has no key arguments");
    }
    let ranges = &args.ranges()[2..];
    let inner = Args::new(args.buf(), ranges);
    if !spec.arity_ok(inner.len()) {
        return out.error("ERR Invalid number of arguments specified for command");
    }
    // Redis' own way when its key specifications are complete; otherwise
    // where Kora's table finds the keys.
    // No keys: an error, unless the command may have none (EVAL … 0).
    let none = |out: &mut Vec<u8>| {
        let optional = redis.is_some_and(|r| {
            BLOB[r.info.0..r.info.1]
                .windows(19)
                .any(|w| w == b"+no_mandatory_keys\r")
        });
        if optional {
            out.array(0);
        } else {
            out.error("ERR Invalid arguments specified for command");
        }
    };
    if let Some(found) = redis.and_then(|r| keys_by_specs(r, &inner)) {
        if found.is_empty() {
            return none(out);
        }
        out.array(found.len());
        for (at, flags) in found {
            if with_flags {
                out.array(2);
                out.bulk(inner.get(at));
                out.array(flags.len());
                for flag in flags {
                    out.simple(flag);
                }
            } else {
                out.bulk(inner.get(at));
            }
        }
        return;
    }
    let keys = keys_like_redis(spec, &inner);
    if keys.is_empty() {
        return none(out);
    }
    out.array(keys.len());
    for key in keys {
        if with_flags {
            out.array(2);
            out.bulk(key);
            out.array(0);
        } else {
            out.bulk(key);
        }
    }
}

/// The keys of a command as Redis 7.0 finds them (`getKeysFromCommand`):
/// its key specifications, the subcommand's for a container (OBJECT
/// ENCODING, MEMORY USAGE), SORT's own finder for its STORE key, and the
/// table's positions where Redis' data says nothing more. For the cluster
/// slot check of commands whose keys the table's positions do not give
/// exactly (scripts, containers, movable keys); others use
/// `coord::key_args` without allocating.
pub(crate) fn keys_like_redis<'a>(spec: &CommandSpec, args: &Args<'a>) -> Vec<&'a [u8]> {
    let from_specs = |r: &RedisCommand| {
        keys_by_specs(r, args).map(|found| found.into_iter().map(|(at, _)| args.get(at)).collect())
    };
    if spec.name == "sort" || spec.name == "sort_ro" {
        return sort_keys(args);
    }
    let sub = (args.len() > 1)
        .then(|| {
            let mut name = [0u8; 64];
            let (cmd, sub) = (spec.name.as_bytes(), args.get(1));
            let len = cmd.len() + 1 + sub.len();
            (len <= name.len()).then(|| {
                name[..cmd.len()].copy_from_slice(cmd);
                name[cmd.len()] = b'|';
                name[cmd.len() + 1..len].copy_from_slice(sub);
                redis(&name[..len])
            })
        })
        .flatten()
        .flatten();
    if let Some(keys) = sub
        .or_else(|| redis(spec.name.as_bytes()))
        .and_then(from_specs)
    {
        return keys;
    }
    crate::coord::key_args(spec.keys(), args).collect()
}

/// Whether [`keys_like_redis`] may find other keys than the table's
/// positions: scripts and functions, containers, movable keys.
pub(crate) fn keys_need_redis_finder(spec: &CommandSpec) -> bool {
    spec.movable.is_some()
        || !spec.subs.is_empty()
        || matches!(spec.kind, crate::command::Kind::Conn(_))
}

/// SORT's keys as Redis' `sortGetKeys`: the sorted key, and the STORE
/// destination (BY and GET patterns are not keys).
fn sort_keys<'a>(args: &Args<'a>) -> Vec<&'a [u8]> {
    let mut keys = vec![args.get(1)];
    let mut i = 2;
    while i < args.len() {
        let word = args.get(i);
        let skip = if word.eq_ignore_ascii_case(b"LIMIT") {
            2
        } else if word.eq_ignore_ascii_case(b"GET") || word.eq_ignore_ascii_case(b"BY") {
            1
        } else if word.eq_ignore_ascii_case(b"STORE") {
            if i + 1 < args.len() {
                // As Redis: the last STORE wins.
                keys.truncate(1);
                keys.push(args.get(i + 1));
            }
            1
        } else {
            0
        };
        i += 1 + skip;
    }
    keys
}

/// Redis 7.0's `getKeysUsingKeySpecs`: the keys' positions in `args` with
/// their specification's flags, or None when a specification cannot say
/// (unknown or incomplete, a bad key count, out of bounds), where Redis
/// falls back to the command's own key finder.
fn keys_by_specs(r: &RedisCommand, args: &Args) -> Option<Vec<(usize, &'static [&'static str])>> {
    if r.specs.is_empty() || r.specs.iter().any(|s| s.flags.contains(&"variable_flags")) {
        return None;
    }
    let argc = args.len() as i64;
    let mut found = Vec::new();
    for spec in r.specs {
        if spec.flags.contains(&"not_key") {
            continue;
        }
        let mut first = match spec.begin {
            Bs::Index(at) => at,
            Bs::Keyword(word, from) => {
                let start = if from > 0 { from } else { argc + from };
                let end = if from > 0 { argc - 1 } else { 1 };
                let mut i = start;
                let mut at = 0;
                while i != end {
                    if i >= argc || i < 1 {
                        break;
                    }
                    if args.get(i as usize).eq_ignore_ascii_case(word.as_bytes()) {
                        at = i + 1;
                        break;
                    }
                    i = if start <= end { i + 1 } else { i - 1 };
                }
                if at == 0 {
                    // As Redis: a keyword that is not there names no key
                    // (GEORADIUS without STORE).
                    continue;
                }
                at
            }
            Bs::Unknown => return None,
        };
        let (last, step) = match spec.find {
            Fk::Range(lastkey, step, limit) => {
                let last = if lastkey >= 0 {
                    first + lastkey
                } else if limit == 0 {
                    argc + lastkey
                } else {
                    first + ((argc - first) / limit + lastkey)
                };
                (last, step)
            }
            Fk::Keynum(idx, firstkey, step) => {
                if idx >= argc || first + idx >= argc {
                    return None;
                }
                let n = crate::protocol::parser::parse_i64(args.get((first + idx) as usize))
                    .filter(|n| *n >= 0)?;
                first += firstkey;
                (first.checked_add(n - 1)?, step)
            }
            Fk::Unknown => return None,
        };
        if last >= argc || last < first || first >= argc {
            return None;
        }
        let mut i = first;
        while i <= last {
            found.push((i as usize, spec.flags));
            i += step.max(1);
        }
        if spec.flags.contains(&"incomplete") {
            return None;
        }
    }
    Some(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_is_sorted_and_spans_are_replies() {
        assert_eq!(generated::VERSION, "7.0.15");
        let all = generated::COMMANDS;
        assert!(all.windows(2).all(|w| w[0].name < w[1].name));
        for c in all {
            let info = &BLOB[c.info.0..c.info.1];
            let head = format!("*10\r\n${}\r\n{}\r\n", c.name.len(), c.name);
            assert!(info.starts_with(head.as_bytes()), "{}", c.name);
            assert!(BLOB[c.docs.0..c.docs.1].starts_with(b"*"), "{}", c.name);
        }
        assert!(redis(b"GET").is_some() && redis(b"config|GET").is_some());
        assert!(redis(b"nosuch").is_none());
    }

    /// Rows whose arity or key positions differ from Redis 7.0's answer
    /// COMMAND INFO from the table; this lists them, so a row that drifts
    /// from Redis by mistake shows up here.
    #[test]
    fn rows_agree_with_redis_but_the_known_ones() {
        let differ: Vec<&str> = table::all()
            .iter()
            .filter(|s| redis_for(s).is_none())
            .map(|s| s.name)
            .collect();
        assert_eq!(differ, KORA_OWN, "rows not answered with Redis' data");
    }

    /// Rows Kora answers from its own table: commands Redis 7.0 lacks.
    const KORA_OWN: &[&str] = &["post", "host:", "hotkeys"];
}
