//! Commands: the table (`table.rs`, the one place naming every command)
//! and one file per command family with its handlers.
//!
//! A shard-side handler has the signature [`Handler`]: it runs on the shard
//! that owns the command's key(s), reads its arguments as slices, and
//! appends exactly one RESP reply to `out`. Connection-level commands
//! (fan-out, cross-shard, connection state) are [`Conn`] rows, run by the
//! connection in [`crate::server::connection`].
//!
//! Layer: `command`, above `store` and coordination (see the crate docs,
//! "Layers and imports"). Owns the table, argument access ([`Args`]), the
//! shared reply helpers ([`wrong_arity`], [`help_reply`], …) and every
//! handler. Shard-side handlers ([`Handler`]) may import only `store` and
//! the leaves (`protocol`, `metrics`): they run on one shard with one
//! `&mut Db` and know nothing of other cores. Connection-level commands
//! (`async fn`s taking `&Shard`) may also use coordination to reach other
//! shards through [`crate::coord`]; what they may change of their
//! connection is [`conn::ClientState`], and they tell the server what to
//! do next with a [`conn::Flow`].
//!
//! # Adding a command
//!
//! A command is one row in [`table::COMMANDS`] plus one handler, and two
//! tests: a unit test of the handler and an integration test against the
//! real server. STRLEN, as it is in the code, from row to test:
//!
//! **1. The table row** ([`table`], under `// Strings`):
//!
//! ```text
//! cmd!("strlen", 2, RF, (1, 1, 1), Keyed(strings::strlen)),
//! ```
//!
//! - `"strlen"`: the lower-case name, at most 24 bytes; [`lookup`] finds
//!   it case-insensitively and a table test checks names are unique.
//!   COMMAND, COMMAND COUNT/INFO/LIST read the same row, so the new
//!   command shows up there with no further work; so do routing,
//!   pipelining, MULTI/EXEC queuing, metrics and the slow log.
//! - `2`: the arity, Redis' convention — exactly 2 arguments with the name
//!   (`-N` means at least N). The connection checks it before anything
//!   runs and answers `-ERR wrong number of arguments for 'strlen'
//!   command`; a handler never sees a wrong count (commands with a variable
//!   tail still check their options).
//! - `RF`: the flags (`readonly`, `fast`), what COMMAND INFO lists; `fast`
//!   also files its latency spikes under the monitor's `fast-command`
//!   event. Copy Redis 7's flags for the command.
//! - `(1, 1, 1)`: first key, last key, step, as in COMMAND INFO. For a
//!   `Keyed` command the first key picks the shard: the connection routes
//!   the command to `shard_of(args[first_key])`.
//! - `Keyed(strings::strlen)`: how it runs — one key, on the shard that
//!   owns it ([`Kind::Keyed`]). Commands with several keys are
//!   [`Kind::Multi`]: a `whole` handler for when every key lives on one
//!   shard, and a `spread` driver (declared with `spread!`) that runs the
//!   command across shards as one atomic step with [`crate::coord::Atomic`]
//!   — see `strings::mget_across` for the shape. Anything that needs
//!   connection state or every shard is a [`Kind::Conn`] row naming its
//!   function: [`Conn::Local`] (answered without waiting, e.g.
//!   `server::ping`) or [`Conn::Async`] (e.g. `server::dbsize`).
//!
//! The metric slot is the row's index, assigned at compile time: every
//! command gets its own `cmd` label, and a container listed in
//! `table::CONTAINERS` one per subcommand (`config|set`). `/metrics`
//! exports the [`HOT_NAMES`] from zero and any other command from its first
//! call; unknown commands count as `other`.
//!
//! **2. The handler** ([`strings::strlen`]), a [`Handler`]: it gets the
//! shard's `Db`, the arguments as slices of the request buffer, and
//! appends exactly one reply (with the `Resp` trait of
//! [`crate::protocol::reply`]); error texts are Redis 7's, byte for byte,
//! from [`crate::protocol::reply::err`]:
//!
//! ```ignore
//! pub fn strlen(db: &mut Db, args: &Args, out: &mut Vec<u8>) {
//!     match read_str(db, args.get(1)) {
//!         Ok(v) => out.int(v.map_or(0, |v| v.len()) as i64),
//!         Err(e) => out.error(e), // WRONGTYPE
//!     }
//! }
//! ```
//!
//! A handler that changes a value in place must report the size change to
//! the `Db` (see the family's `//!` notes) so that memory accounting stays
//! exact, and must delete an aggregate that becomes empty.
//!
//! **3. A unit test** beside the handler (`strings.rs`, `mod tests`), with
//! `testing`'s `db()` (an empty shard keyspace) and `run` (runs one
//! handler on an argument list and returns the raw reply):
//!
//! ```ignore
//! #[test]
//! fn strlen_counts_bytes() {
//!     let mut db = db();
//!     assert_eq!(run(&mut db, strlen, &[b"STRLEN", b"k"]), b":0\r\n");
//!     run(&mut db, set, &[b"SET", b"k", b"hello"]);
//!     assert_eq!(run(&mut db, strlen, &[b"STRLEN", b"k"]), b":5\r\n");
//!     run(&mut db, lpush, &[b"LPUSH", b"l", b"x"]);
//!     assert!(run(&mut db, strlen, &[b"STRLEN", b"l"]).starts_with(b"-WRONGTYPE"));
//! }
//! ```
//!
//! Families with many in-place updates also run randomized sequences
//! through `testing::check_step`, which checks the memory accounting
//! against a full recount after every command.
//!
//! **4. An integration test** in `tests/` against the real binary: the
//! `Server` of `tests/common/mod.rs` starts `kora` on a free loopback port
//! (`Server::start(workers)`, or `Server::start_with(workers, &[flags])`)
//! and `client()` connects the `redis` crate; `q` runs a command that must
//! succeed, `e` returns an error reply's text. STRLEN's lives in
//! `tests/strings_keys.rs` (`append_and_strlen`, run with 1 and 2 shards);
//! its core:
//!
//! ```ignore
//! let s = Server::start(2);
//! let mut c = s.client();
//! assert_eq!(q::<i64>(&mut c, &["STRLEN", "k"]), 0);
//! assert_eq!(q::<i64>(&mut c, &["APPEND", "k", "Hello"]), 5);
//! assert_eq!(q::<i64>(&mut c, &["STRLEN", "k"]), 5);
//! assert_eq!(
//!     e(&mut c, &["STRLEN", "a", "b"]),
//!     "ERR wrong number of arguments for 'strlen' command"
//! );
//! ```
//!
//! Compare the replies with Redis 7.0's (`redis-server` from apt on a free
//! loopback port) rather than with the documentation.
//!
//! **5. Users:** add the command to the README's "Commands" list (and take
//! it off "Commands Kora does not have").

/// `$name`: an [`AsyncConn`] whose body is the block, with the
/// connection's shard, client state, arguments and output (the same
/// signature for every connection command that may wait).
macro_rules! conn_async {
    ($(#[$meta:meta])* $name:ident, |$shard:ident, $client:ident, $args:ident, $out:ident| $body:block) => {
        $(#[$meta])*
        pub fn $name<'a>(
            $shard: &'a std::rc::Rc<crate::coord::Shard>,
            $client: &'a mut crate::command::conn::ClientState,
            $args: &'a crate::command::Args<'a>,
            $out: &'a mut Vec<u8>,
        ) -> crate::command::ConnFuture<'a> {
            Box::pin(async move { $body })
        }
    };
}

/// Declares `$name` as a [`Spread`] that runs the async fn `$body`
/// (boxing its future: spreads are the rare cross-shard path).
macro_rules! spread {
    ($name:ident => $body:path) => {
        #[doc = concat!("[`Spread`](crate::command::Spread) of `", stringify!($body), "`.")]
        pub fn $name<'a>(
            shard: &'a crate::coord::Shard,
            tx: u64,
            args: &'a crate::command::Args<'a>,
            out: &'a mut Vec<u8>,
        ) -> crate::command::SpreadFuture<'a> {
            Box::pin($body(shard, tx, args, out))
        }
    };
}

pub mod auth;
// Blocking commands (issue 13).
pub mod blocking;
pub mod client;
pub mod command_info;
pub mod config;
pub mod conn;
pub mod hashes;
pub mod keys;
pub mod latency;
pub mod lists;
pub mod memory;
pub mod misc;
pub mod multikey;
pub mod object;
pub mod scripting;
pub mod server;
pub mod sets;
pub mod slowlog;
pub mod strings;
pub mod table;
pub mod transaction;
// Bitmaps and HyperLogLog (issue 13).
pub mod bitmaps;
pub mod hll;
// Issue 13, dump: DUMP/RESTORE (Redis 7.0 payloads) and SORT/SORT_RO.
pub mod dump;
pub mod sort;
pub mod zsets;
// Geo (issue 13).
pub mod geo;
// Pub/Sub (issue 14).
pub(crate) mod lualib;
pub mod pubsub; // Lua libraries for scripts (issue 14).
// Functions: FUNCTION, FCALL, FCALL_RO (issue 14).
pub mod functions;
// Cluster mode (issue 16).
pub mod cluster;
// MIGRATE (issue 16).
pub mod migrate;

pub use table::{CommandSpec, Conn, HOT_NAMES, Kind, NUM_SLOTS, SLOT_OTHER, Slot, lookup};

use crate::protocol::parser::ArgRange;
use crate::protocol::reply::{Resp, err};

pub use crate::coord::Handler;
pub use crate::protocol::Args;

/// Runs a multi-key command whose keys live on several shards, from the
/// connection, as one atomic step ([`crate::coord::Atomic`]) with the
/// given transaction id; appends one reply to `out`.
pub type Spread =
    for<'a> fn(&'a crate::coord::Shard, u64, &'a Args<'a>, &'a mut Vec<u8>) -> SpreadFuture<'a>;

/// A command the connection answers by itself, without waiting (see
/// [`Conn::Local`]).
pub type LocalConn = fn(
    &crate::coord::Shard,
    &mut crate::command::conn::ClientState,
    &Args<'_>,
    &mut Vec<u8>,
) -> crate::command::conn::Flow;

/// A command the connection runs and may wait in (see [`Conn::Async`]).
pub type AsyncConn = for<'a> fn(
    &'a std::rc::Rc<crate::coord::Shard>,
    &'a mut crate::command::conn::ClientState,
    &'a Args<'a>,
    &'a mut Vec<u8>,
) -> ConnFuture<'a>;

/// The future an [`AsyncConn`] returns.
pub type ConnFuture<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = crate::command::conn::Flow> + 'a>>;

/// The future a [`Spread`] returns.
pub type SpreadFuture<'a> = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + 'a>>;

/// Owned copies of some of a command's arguments, to run on another
/// shard (an op's closure must own what it reads).
#[derive(Default, Debug)]
pub struct Shipped {
    data: Vec<u8>,
    ranges: Vec<ArgRange>,
}

impl Shipped {
    pub fn push(&mut self, arg: &[u8]) {
        let start = self.data.len();
        self.data.extend_from_slice(arg);
        self.ranges.push((start, self.data.len()));
    }

    pub fn len(&self) -> usize {
        self.ranges.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    pub fn get(&self, i: usize) -> &[u8] {
        let (s, e) = self.ranges[i];
        &self.data[s..e]
    }

    pub fn iter(&self) -> impl Iterator<Item = &[u8]> + '_ {
        self.ranges.iter().map(|&(s, e)| &self.data[s..e])
    }
}

/// One shard's part of a multi-key command: its arguments and, for each
/// group of `step` arguments, the group's index in the command.
#[derive(Debug)]
pub struct Part {
    pub shard: usize,
    pub args: Shipped,
    pub groups: Vec<usize>,
}

/// Splits `args[first..]` into groups of `step` arguments (a key, or a
/// key and its value) and ships each group to the shard owning its key.
/// Parts come in ascending shard order, the order an
/// [`Atomic`](crate::coord::Atomic) locks them in.
pub fn parts_by_owner(
    shard: &crate::coord::Shard,
    args: &Args,
    first: usize,
    step: usize,
) -> Vec<Part> {
    let mut parts: Vec<Part> = Vec::new();
    for (group, i) in (first..args.len()).step_by(step).enumerate() {
        let owner = shard.owner(args.get(i));
        let at = match parts.iter().position(|p| p.shard == owner) {
            Some(at) => at,
            None => {
                parts.push(Part {
                    shard: owner,
                    args: Shipped::default(),
                    groups: Vec::new(),
                });
                parts.len() - 1
            }
        };
        let part = &mut parts[at];
        for j in i..(i + step).min(args.len()) {
            part.args.push(args.get(j));
        }
        part.groups.push(group);
    }
    parts.sort_unstable_by_key(|p| p.shard);
    parts
}

/// `-ERR wrong number of arguments for 'xxx' command`.
pub fn wrong_arity(out: &mut Vec<u8>, name: &str) {
    out.error(&format!(
        "ERR wrong number of arguments for '{name}' command"
    ));
}

/// `-ERR unknown subcommand 'x'. Try CMD HELP.` for a container command
/// (CONFIG, SLOWLOG, …) named `cmd` in upper case.
pub fn unknown_subcommand(out: &mut Vec<u8>, cmd: &str, sub: &[u8]) {
    out.error(&format!(
        "ERR unknown subcommand '{}'. Try {cmd} HELP.",
        String::from_utf8_lossy(&sub[..sub.len().min(128)])
    ));
}

/// `-ERR wrong number of arguments for 'cmd|sub' command`, Redis 7's text
/// for a known subcommand with the wrong argument count.
pub fn subcommand_arity(out: &mut Vec<u8>, cmd: &str, sub: &[u8]) {
    wrong_arity(
        out,
        &format!("{cmd}|{}", String::from_utf8_lossy(sub).to_lowercase()),
    );
}

/// Redis' reply to `CMD HELP`: status lines, a header and a footer.
pub fn help_reply(out: &mut Vec<u8>, cmd: &str, lines: &[&str]) {
    out.array(lines.len() + 3);
    out.simple(&format!(
        "{cmd} <subcommand> [<arg> [value] [opt] ...]. Subcommands are:"
    ));
    for line in lines {
        out.simple(line);
    }
    out.simple("HELP");
    out.simple("    Prints this help.");
}

/// A SCAN-family cursor: unsigned decimal digits and nothing else.
pub fn parse_cursor(raw: &[u8]) -> Result<u64, &'static str> {
    let invalid = "ERR invalid cursor";
    if raw.is_empty() || !raw.iter().all(u8::is_ascii_digit) {
        return Err(invalid);
    }
    std::str::from_utf8(raw)
        .ok()
        .and_then(|c| c.parse().ok())
        .ok_or(invalid)
}

/// Options of SCAN, HSCAN and SSCAN after the cursor.
#[derive(Debug, Default)]
pub struct ScanOptions<'a> {
    pub count: usize,
    /// None also for "*", which matches everything.
    pub pattern: Option<&'a [u8]>,
    pub type_name: Option<&'a [u8]>,
    pub novalues: bool,
}

/// Which options a SCAN variant accepts besides MATCH and COUNT.
#[derive(Clone, Copy)]
pub enum ScanExtra {
    None,
    /// SCAN's `TYPE name`.
    Type,
    /// HSCAN's `NOVALUES` flag.
    NoValues,
}

pub fn parse_scan_options<'a>(
    args: &Args<'a>,
    from: usize,
    extra: ScanExtra,
) -> Result<ScanOptions<'a>, &'static str> {
    let mut opts = ScanOptions {
        count: 10,
        ..Default::default()
    };
    let mut i = from;
    while i < args.len() {
        if matches!(extra, ScanExtra::NoValues) && args.is(i, "NOVALUES") {
            opts.novalues = true;
            i += 1;
            continue;
        }
        if i + 1 >= args.len() {
            return Err(err::SYNTAX);
        }
        if args.is(i, "MATCH") {
            opts.pattern = Some(args.get(i + 1)).filter(|p| *p != b"*");
        } else if args.is(i, "COUNT") {
            match args.int(i + 1)? {
                n if n >= 1 => opts.count = n as usize,
                _ => return Err(err::SYNTAX),
            }
        } else if matches!(extra, ScanExtra::Type) && args.is(i, "TYPE") {
            opts.type_name = Some(args.get(i + 1));
        } else {
            return Err(err::SYNTAX);
        }
        i += 2;
    }
    Ok(opts)
}

/// Helpers for the handler unit tests of every family.
#[cfg(test)]
pub mod testing {
    use std::rc::Rc;

    use super::{Args, Handler};
    use crate::metrics::{HotKeys, ShardStats};
    use crate::store::Db;

    pub fn db() -> Db {
        Db::new(Rc::new(ShardStats::default()), HotKeys::new(8, true), 7)
    }

    /// Runs one handler on `argv` and returns its raw reply.
    pub fn run(db: &mut Db, handler: Handler, argv: &[&[u8]]) -> Vec<u8> {
        let mut buf = Vec::new();
        let mut ranges = Vec::new();
        for a in argv {
            ranges.push((buf.len(), buf.len() + a.len()));
            buf.extend_from_slice(a);
        }
        let mut out = Vec::new();
        handler(db, &Args::new(&buf, &ranges), &mut out);
        out
    }

    /// A seeded xorshift generator for the randomized handler tests:
    /// `next(n)` is in `0..n`, the same sequence on every run.
    pub fn rng(mut state: u64) -> impl FnMut(u64) -> u64 {
        move |n: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % n
        }
    }

    pub fn text(reply: Vec<u8>) -> String {
        String::from_utf8(reply).unwrap()
    }

    /// The invariants the randomized handler tests check after every
    /// command: one reply, WRONGTYPE where expected, memory accounting equal
    /// to a full recount, and no empty aggregate left behind. Returns
    /// whether the command succeeded.
    pub fn check_step(
        db: &Db,
        reply: &[u8],
        expect_wrong_type: bool,
        what: &dyn std::fmt::Debug,
    ) -> bool {
        assert!(!reply.is_empty(), "every command replies: {what:?}");
        if expect_wrong_type {
            assert!(reply.starts_with(b"-WRONGTYPE"), "{what:?}");
        }
        assert_eq!(db.mem_used(), db.mem_recomputed(), "{what:?}");
        for (k, e) in db.iter() {
            let empty = match e {
                crate::store::Value::List(l) => l.is_empty(),
                crate::store::Value::Hash(h) => h.is_empty(),
                crate::store::Value::Set(s) => s.is_empty(),
                crate::store::Value::ZSet(z) => z.is_empty(),
                crate::store::Value::Str(_) => false,
            };
            assert!(!empty, "empty aggregate left under {k:?} after {what:?}");
        }
        !expect_wrong_type && reply[0] != b'-'
    }
}
