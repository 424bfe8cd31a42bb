//! The command table: every command Kora knows, its arity, key positions,
//! metrics slot and how it executes. This is the one place that names all
//! commands. A row's metrics slot is its index in [`COMMANDS`]; the
//! subcommands Redis reports separately ([`CONTAINERS`]) take the slots
//! after the rows; both are assigned at compile time (`with_slots`).

use std::sync::OnceLock;

use super::{
    AsyncConn, Handler, LocalConn, Spread, hashes, keys, lists, misc, multikey, server, sets,
    strings, zsets,
};
// Bitmaps and HyperLogLog (issue 13).
use super::{bitmaps, hll};
// Issue 13, dump family.
use super::{dump, sort};
// Geo (issue 13).
use super::geo;
// Scripting (issue 14).
use super::scripting;
// Functions (issue 14).
use super::functions;

pub use crate::metrics::slots::{HOT_NAMES, NUM_SLOTS, SLOT_OTHER, Slot};

const fn has_flag(flags: &[&str], flag: &str) -> bool {
    let mut i = 0;
    while i < flags.len() {
        if const_eq(flags[i], flag) {
            return true;
        }
        i += 1;
    }
    false
}

const fn const_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// How a command the connection runs itself executes.
#[derive(Clone, Copy)]
pub enum Conn {
    /// Answered from the connection alone, without waiting: touches no
    /// shard (PING, ECHO, TIME, AUTH…). A transaction locks nothing for it.
    Local(LocalConn),
    /// May reach every shard or wait (CONFIG, DBSIZE, INFO, SCAN…).
    Async(AsyncConn),
}

#[derive(Clone, Copy)]
pub enum Kind {
    /// Every key of the command is one key: run on the shard owning it.
    Keyed(Handler),
    /// Keys may live on several shards. When they all live on one shard,
    /// `whole` runs there like any keyed command (inline, or in the
    /// pipeline's batch for that shard). Otherwise `spread` runs it from
    /// the connection as one atomic step over the shards involved
    /// ([`crate::coord::Atomic`]), after every earlier command of the
    /// pipeline has been answered.
    Multi { whole: Handler, spread: Spread },
    /// Run by the connection, after every earlier reply of the pipeline:
    /// connection state, every shard, or nothing at all.
    Conn(Conn),
}

pub use crate::coord::KeyFinder;

#[derive(Clone, Copy)]
pub struct CommandSpec {
    pub name: &'static str,
    /// Redis convention: N means exactly N arguments (name included), -N
    /// means at least N.
    pub arity: i32,
    pub flags: &'static [&'static str],
    pub first_key: i32,
    pub last_key: i32,
    pub key_step: i32,
    /// For commands whose key positions depend on their arguments: the
    /// first and last key index (inclusive, step 1), or None when the
    /// arguments name no valid key range (the command's own checks then
    /// answer the error).
    pub movable: Option<KeyFinder>,
    /// Metrics slot: the row's index in [`COMMANDS`] (set by
    /// `with_slots`; the `cmd!` macro leaves 0).
    pub slot: Slot,
    /// For a container (CONFIG, CLIENT…): its subcommands' metric names
    /// (`config|set`), whose slots are `sub_base + index`; empty otherwise.
    pub subs: &'static [&'static str],
    pub sub_base: Slot,
    pub kind: Kind,
    /// Has the `denyoom` flag: refused with OOM on a shard over its
    /// memory budget that cannot evict (read from `flags` once, at compile
    /// time, so the check costs no string compare).
    pub denyoom: bool,
    /// Has the `blocking` flag (BLPOP, BZPOPMIN…): the connection watches
    /// its socket while it runs and does not time the wait.
    pub blocking: bool,
}

impl CommandSpec {
    /// This command's shard-side half as a batch carries it, with whether
    /// it may grow memory (`denyoom`) for the shard's memory check.
    #[inline]
    pub fn op(&self, handler: crate::coord::Handler) -> crate::coord::Op {
        crate::coord::Op {
            handler,
            growth: if self.denyoom {
                crate::coord::Growth::Grows
            } else {
                crate::coord::Growth::Bounded
            },
        }
    }

    /// Where this command's keys are, for the coordination layer.
    #[inline]
    pub fn keys(&self) -> crate::coord::KeySpec {
        crate::coord::KeySpec {
            first: self.first_key,
            last: self.last_key,
            step: self.key_step,
            movable: self.movable,
        }
    }

    pub fn arity_ok(&self, argc: usize) -> bool {
        let argc = argc as i32;
        if self.arity >= 0 {
            argc == self.arity
        } else {
            argc >= -self.arity
        }
    }
}

const W: &[&str] = &["write"];
const WF: &[&str] = &["write", "fast"];
const R: &[&str] = &["readonly"];
const RF: &[&str] = &["readonly", "fast"];
const F: &[&str] = &["fast"];
const A: &[&str] = &["admin"];
const NONE: &[&str] = &[];
/// Allowed before the client authenticates (Redis' `no_auth`).
const FNA: &[&str] = &["fast", "no_auth"];
/// Commands that may grow memory: refused with OOM over `maxmemory` when
/// nothing can be evicted (Redis' `denyoom`, on the same rows as Redis 7.0).
const WD: &[&str] = &["write", "denyoom"];
const WDF: &[&str] = &["write", "denyoom", "fast"];
const WM: &[&str] = &["write", "movablekeys"];
const RM: &[&str] = &["readonly", "movablekeys"];
// Blocking commands (issue 13), with Redis 7.0's flags.
const WB: &[&str] = &["write", "noscript", "blocking"];
const WDNB: &[&str] = &["write", "denyoom", "noscript", "blocking"];
const WBM: &[&str] = &["write", "blocking", "movablekeys"];
const WBF: &[&str] = &["write", "noscript", "blocking", "fast"];
/// Sorted sets' STORE forms (src/command/zsets.rs).
const WDM: &[&str] = &["write", "denyoom", "movablekeys"];

macro_rules! cmd {
    ($name:literal, $arity:expr, $flags:expr, ($first:expr, $last:expr, $step:expr), $kind:expr) => {
        CommandSpec {
            name: $name,
            arity: $arity,
            flags: $flags,
            first_key: $first,
            last_key: $last,
            key_step: $step,
            movable: None,
            slot: 0,
            subs: &[],
            sub_base: 0,
            kind: $kind,
            denyoom: has_flag($flags, "denyoom"),
            blocking: has_flag($flags, "blocking"),
        }
    };
    ($name:literal, $arity:expr, $flags:expr, movable($finder:expr), $kind:expr) => {
        CommandSpec {
            name: $name,
            arity: $arity,
            flags: $flags,
            first_key: 0,
            last_key: 0,
            key_step: 0,
            movable: Some($finder),
            slot: 0,
            subs: &[],
            sub_base: 0,
            kind: $kind,
            denyoom: has_flag($flags, "denyoom"),
            blocking: has_flag($flags, "blocking"),
        }
    };
}

use Conn::{Async, Local};
use Kind::{Conn as Run, Keyed};

/// Key positions: (first, last, step) as in Redis' COMMAND reply; last -1
/// means "to the end", (0, 0, 0) means no keys.
pub static COMMANDS: &[CommandSpec] = &with_slots([
    // Strings
    cmd!("get", 2, RF, (1, 1, 1), Keyed(strings::get)),
    cmd!("set", -3, WD, (1, 1, 1), Keyed(strings::set)),
    cmd!("setnx", 3, WDF, (1, 1, 1), Keyed(strings::setnx)),
    cmd!("setex", 4, WD, (1, 1, 1), Keyed(strings::setex)),
    cmd!("psetex", 4, WD, (1, 1, 1), Keyed(strings::psetex)),
    cmd!("getset", 3, WDF, (1, 1, 1), Keyed(strings::getset)),
    cmd!("getdel", 2, WF, (1, 1, 1), Keyed(strings::getdel)),
    cmd!("getex", -2, WF, (1, 1, 1), Keyed(strings::getex)),
    cmd!("append", 3, WDF, (1, 1, 1), Keyed(strings::append)),
    cmd!("strlen", 2, RF, (1, 1, 1), Keyed(strings::strlen)),
    cmd!("getrange", 4, R, (1, 1, 1), Keyed(strings::getrange)),
    cmd!("substr", 4, R, (1, 1, 1), Keyed(strings::getrange)),
    cmd!("setrange", 4, WD, (1, 1, 1), Keyed(strings::setrange)),
    cmd!("incr", 2, WDF, (1, 1, 1), Keyed(strings::incr)),
    cmd!("decr", 2, WDF, (1, 1, 1), Keyed(strings::decr)),
    cmd!("incrby", 3, WDF, (1, 1, 1), Keyed(strings::incrby)),
    cmd!("decrby", 3, WDF, (1, 1, 1), Keyed(strings::decrby)),
    cmd!(
        "incrbyfloat",
        3,
        WDF,
        (1, 1, 1),
        Keyed(strings::incrbyfloat)
    ),
    cmd!(
        "mget",
        -2,
        RF,
        (1, -1, 1),
        Kind::Multi {
            whole: strings::mget,
            spread: strings::mget_spread
        }
    ),
    cmd!(
        "mset",
        -3,
        WD,
        (1, -1, 2),
        Kind::Multi {
            whole: strings::mset,
            spread: strings::mset_spread
        }
    ),
    cmd!(
        "msetnx",
        -3,
        WD,
        (1, -1, 2),
        Kind::Multi {
            whole: strings::msetnx,
            spread: strings::msetnx_spread
        }
    ),
    // Keys
    cmd!(
        "del",
        -2,
        W,
        (1, -1, 1),
        Kind::Multi {
            whole: keys::del,
            spread: keys::del_spread
        }
    ),
    cmd!(
        "unlink",
        -2,
        WF,
        (1, -1, 1),
        Kind::Multi {
            whole: keys::unlink,
            spread: keys::unlink_spread
        }
    ),
    cmd!(
        "exists",
        -2,
        RF,
        (1, -1, 1),
        Kind::Multi {
            whole: keys::exists,
            spread: keys::exists_spread
        }
    ),
    cmd!(
        "touch",
        -2,
        RF,
        (1, -1, 1),
        Kind::Multi {
            whole: keys::exists,
            spread: keys::exists_spread
        }
    ),
    cmd!("type", 2, RF, (1, 1, 1), Keyed(keys::type_of)),
    cmd!("expire", -3, WF, (1, 1, 1), Keyed(keys::expire)),
    cmd!("pexpire", -3, WF, (1, 1, 1), Keyed(keys::pexpire)),
    cmd!("expireat", -3, WF, (1, 1, 1), Keyed(keys::expireat)),
    cmd!("pexpireat", -3, WF, (1, 1, 1), Keyed(keys::pexpireat)),
    cmd!("ttl", 2, RF, (1, 1, 1), Keyed(keys::ttl)),
    cmd!("pttl", 2, RF, (1, 1, 1), Keyed(keys::pttl)),
    cmd!("expiretime", 2, RF, (1, 1, 1), Keyed(keys::expiretime)),
    cmd!("pexpiretime", 2, RF, (1, 1, 1), Keyed(keys::pexpiretime)),
    cmd!("persist", 2, WF, (1, 1, 1), Keyed(keys::persist)),
    cmd!("keys", 2, R, (0, 0, 0), Run(Async(server::keys_cmd))),
    cmd!("scan", -2, R, (0, 0, 0), Run(Async(server::scan_cmd))),
    cmd!(
        "randomkey",
        1,
        R,
        (0, 0, 0),
        Run(Async(server::randomkey_cmd))
    ),
    cmd!(
        "rename",
        3,
        W,
        (1, 2, 1),
        Kind::Multi {
            whole: keys::rename,
            spread: keys::rename_spread
        }
    ),
    cmd!(
        "renamenx",
        3,
        WF,
        (1, 2, 1),
        Kind::Multi {
            whole: keys::renamenx,
            spread: keys::renamenx_spread
        }
    ),
    // Lists
    cmd!("lpush", -3, WDF, (1, 1, 1), Keyed(lists::lpush)),
    cmd!("rpush", -3, WDF, (1, 1, 1), Keyed(lists::rpush)),
    cmd!("lpushx", -3, WDF, (1, 1, 1), Keyed(lists::lpushx)),
    cmd!("rpushx", -3, WDF, (1, 1, 1), Keyed(lists::rpushx)),
    cmd!("lpop", -2, WF, (1, 1, 1), Keyed(lists::lpop)),
    cmd!("rpop", -2, WF, (1, 1, 1), Keyed(lists::rpop)),
    cmd!("llen", 2, RF, (1, 1, 1), Keyed(lists::llen)),
    cmd!("lrange", 4, R, (1, 1, 1), Keyed(lists::lrange)),
    cmd!("lindex", 3, R, (1, 1, 1), Keyed(lists::lindex)),
    cmd!("lset", 4, WD, (1, 1, 1), Keyed(lists::lset)),
    cmd!("lrem", 4, W, (1, 1, 1), Keyed(lists::lrem)),
    cmd!("ltrim", 4, W, (1, 1, 1), Keyed(lists::ltrim)),
    cmd!("linsert", 5, WD, (1, 1, 1), Keyed(lists::linsert)),
    cmd!("lpos", -3, R, (1, 1, 1), Keyed(lists::lpos)),
    // Hashes
    cmd!("hset", -4, WDF, (1, 1, 1), Keyed(hashes::hset)),
    cmd!("hmset", -4, WDF, (1, 1, 1), Keyed(hashes::hmset)),
    cmd!("hsetnx", 4, WDF, (1, 1, 1), Keyed(hashes::hsetnx)),
    cmd!("hget", 3, RF, (1, 1, 1), Keyed(hashes::hget)),
    cmd!("hmget", -3, RF, (1, 1, 1), Keyed(hashes::hmget)),
    cmd!("hgetall", 2, R, (1, 1, 1), Keyed(hashes::hgetall)),
    cmd!("hdel", -3, WF, (1, 1, 1), Keyed(hashes::hdel)),
    cmd!("hexists", 3, RF, (1, 1, 1), Keyed(hashes::hexists)),
    cmd!("hlen", 2, RF, (1, 1, 1), Keyed(hashes::hlen)),
    cmd!("hkeys", 2, R, (1, 1, 1), Keyed(hashes::hkeys)),
    cmd!("hvals", 2, R, (1, 1, 1), Keyed(hashes::hvals)),
    cmd!("hincrby", 4, WDF, (1, 1, 1), Keyed(hashes::hincrby)),
    cmd!(
        "hincrbyfloat",
        4,
        WDF,
        (1, 1, 1),
        Keyed(hashes::hincrbyfloat)
    ),
    cmd!("hstrlen", 3, RF, (1, 1, 1), Keyed(hashes::hstrlen)),
    cmd!("hscan", -3, R, (1, 1, 1), Keyed(hashes::hscan)),
    // Sets
    cmd!("sadd", -3, WDF, (1, 1, 1), Keyed(sets::sadd)),
    cmd!("srem", -3, WF, (1, 1, 1), Keyed(sets::srem)),
    cmd!("smembers", 2, R, (1, 1, 1), Keyed(sets::smembers)),
    cmd!("sismember", 3, RF, (1, 1, 1), Keyed(sets::sismember)),
    cmd!("smismember", -3, RF, (1, 1, 1), Keyed(sets::smismember)),
    cmd!("scard", 2, RF, (1, 1, 1), Keyed(sets::scard)),
    cmd!("spop", -2, WF, (1, 1, 1), Keyed(sets::spop)),
    cmd!("srandmember", -2, R, (1, 1, 1), Keyed(sets::srandmember)),
    cmd!("sscan", -3, R, (1, 1, 1), Keyed(sets::sscan)),
    cmd!(
        "sinter",
        -2,
        R,
        (1, -1, 1),
        Kind::Multi {
            whole: sets::sinter,
            spread: sets::sinter_spread
        }
    ),
    cmd!(
        "sunion",
        -2,
        R,
        (1, -1, 1),
        Kind::Multi {
            whole: sets::sunion,
            spread: sets::sunion_spread
        }
    ),
    cmd!(
        "sdiff",
        -2,
        R,
        (1, -1, 1),
        Kind::Multi {
            whole: sets::sdiff,
            spread: sets::sdiff_spread
        }
    ),
    cmd!(
        "sinterstore",
        -3,
        WD,
        (1, -1, 1),
        Kind::Multi {
            whole: sets::sinterstore,
            spread: sets::sinterstore_spread
        }
    ),
    cmd!(
        "sunionstore",
        -3,
        WD,
        (1, -1, 1),
        Kind::Multi {
            whole: sets::sunionstore,
            spread: sets::sunionstore_spread
        }
    ),
    cmd!(
        "sdiffstore",
        -3,
        WD,
        (1, -1, 1),
        Kind::Multi {
            whole: sets::sdiffstore,
            spread: sets::sdiffstore_spread
        }
    ),
    // Multi-key commands of issue 11 (src/command/multikey.rs).
    cmd!(
        "lmove",
        5,
        WD,
        (1, 2, 1),
        Kind::Multi {
            whole: multikey::lmove,
            spread: multikey::lmove_spread
        }
    ),
    cmd!(
        "rpoplpush",
        3,
        WD,
        (1, 2, 1),
        Kind::Multi {
            whole: multikey::rpoplpush,
            spread: multikey::rpoplpush_spread
        }
    ),
    cmd!(
        "lmpop",
        -4,
        WM,
        movable(multikey::lmpop_keys),
        Kind::Multi {
            whole: multikey::lmpop,
            spread: multikey::lmpop_spread
        }
    ),
    cmd!(
        "smove",
        4,
        WF,
        (1, 2, 1),
        Kind::Multi {
            whole: multikey::smove,
            spread: multikey::smove_spread
        }
    ),
    cmd!(
        "sintercard",
        -3,
        RM,
        movable(multikey::sintercard_keys),
        Kind::Multi {
            whole: multikey::sintercard,
            spread: multikey::sintercard_spread
        }
    ),
    cmd!(
        "copy",
        -3,
        WD,
        (1, 2, 1),
        Kind::Multi {
            whole: multikey::copy,
            spread: multikey::copy_spread
        }
    ),
    // Sorted sets (src/command/zsets.rs).
    cmd!("zadd", -4, WDF, (1, 1, 1), Keyed(zsets::zadd)),
    cmd!("zincrby", 4, WDF, (1, 1, 1), Keyed(zsets::zincrby)),
    cmd!("zrem", -3, WF, (1, 1, 1), Keyed(zsets::zrem)),
    cmd!("zcard", 2, RF, (1, 1, 1), Keyed(zsets::zcard)),
    cmd!("zcount", 4, RF, (1, 1, 1), Keyed(zsets::zcount)),
    cmd!("zlexcount", 4, RF, (1, 1, 1), Keyed(zsets::zlexcount)),
    cmd!("zscore", 3, RF, (1, 1, 1), Keyed(zsets::zscore)),
    cmd!("zmscore", -3, RF, (1, 1, 1), Keyed(zsets::zmscore)),
    cmd!("zrank", 3, RF, (1, 1, 1), Keyed(zsets::zrank)),
    cmd!("zrevrank", 3, RF, (1, 1, 1), Keyed(zsets::zrevrank)),
    cmd!("zrange", -4, R, (1, 1, 1), Keyed(zsets::zrange)),
    cmd!("zrevrange", -4, R, (1, 1, 1), Keyed(zsets::zrevrange)),
    cmd!(
        "zrangebyscore",
        -4,
        R,
        (1, 1, 1),
        Keyed(zsets::zrangebyscore)
    ),
    cmd!(
        "zrevrangebyscore",
        -4,
        R,
        (1, 1, 1),
        Keyed(zsets::zrevrangebyscore)
    ),
    cmd!("zrangebylex", -4, R, (1, 1, 1), Keyed(zsets::zrangebylex)),
    cmd!(
        "zrevrangebylex",
        -4,
        R,
        (1, 1, 1),
        Keyed(zsets::zrevrangebylex)
    ),
    cmd!(
        "zremrangebyrank",
        4,
        W,
        (1, 1, 1),
        Keyed(zsets::zremrangebyrank)
    ),
    cmd!(
        "zremrangebyscore",
        4,
        W,
        (1, 1, 1),
        Keyed(zsets::zremrangebyscore)
    ),
    cmd!(
        "zremrangebylex",
        4,
        W,
        (1, 1, 1),
        Keyed(zsets::zremrangebylex)
    ),
    cmd!("zpopmin", -2, WF, (1, 1, 1), Keyed(zsets::zpopmin)),
    cmd!("zpopmax", -2, WF, (1, 1, 1), Keyed(zsets::zpopmax)),
    cmd!("zrandmember", -2, R, (1, 1, 1), Keyed(zsets::zrandmember)),
    cmd!("zscan", -3, R, (1, 1, 1), Keyed(zsets::zscan)),
    cmd!(
        "zrangestore",
        -5,
        WD,
        (1, 2, 1),
        Kind::Multi {
            whole: zsets::zrangestore,
            spread: zsets::zrangestore_spread
        }
    ),
    cmd!(
        "zmpop",
        -4,
        WM,
        movable(zsets::zmpop_keys),
        Kind::Multi {
            whole: zsets::zmpop,
            spread: zsets::zmpop_spread
        }
    ),
    cmd!(
        "zunion",
        -3,
        RM,
        movable(zsets::algebra_keys),
        Kind::Multi {
            whole: zsets::zunion,
            spread: zsets::zunion_spread
        }
    ),
    cmd!(
        "zinter",
        -3,
        RM,
        movable(zsets::algebra_keys),
        Kind::Multi {
            whole: zsets::zinter,
            spread: zsets::zinter_spread
        }
    ),
    cmd!(
        "zdiff",
        -3,
        RM,
        movable(zsets::algebra_keys),
        Kind::Multi {
            whole: zsets::zdiff,
            spread: zsets::zdiff_spread
        }
    ),
    cmd!(
        "zintercard",
        -3,
        RM,
        movable(zsets::algebra_keys),
        Kind::Multi {
            whole: zsets::zintercard,
            spread: zsets::zintercard_spread
        }
    ),
    cmd!(
        "zunionstore",
        -4,
        WDM,
        movable(zsets::algebra_store_keys),
        Kind::Multi {
            whole: zsets::zunionstore,
            spread: zsets::zunionstore_spread
        }
    ),
    cmd!(
        "zinterstore",
        -4,
        WDM,
        movable(zsets::algebra_store_keys),
        Kind::Multi {
            whole: zsets::zinterstore,
            spread: zsets::zinterstore_spread
        }
    ),
    cmd!(
        "zdiffstore",
        -4,
        WDM,
        movable(zsets::algebra_store_keys),
        Kind::Multi {
            whole: zsets::zdiffstore,
            spread: zsets::zdiffstore_spread
        }
    ),
    // Connection and server
    cmd!("ping", -1, F, (0, 0, 0), Run(Local(server::ping))),
    cmd!("echo", 2, F, (0, 0, 0), Run(Local(server::echo))),
    cmd!("hello", -1, FNA, (0, 0, 0), Run(Local(server::hello))),
    cmd!("auth", -2, FNA, (0, 0, 0), Run(Local(server::auth))),
    cmd!("select", 2, F, (0, 0, 0), Run(Local(server::select))),
    cmd!("command", -1, NONE, (0, 0, 0), Run(Local(server::command))),
    cmd!("config", -2, A, (0, 0, 0), Run(Async(server::config))),
    cmd!("client", -2, NONE, (0, 0, 0), Run(Async(server::client))),
    cmd!("quit", -1, FNA, (0, 0, 0), Run(Local(server::quit))),
    // Cross-protocol scripting guard, as Redis registers them: an HTTP
    // request's first line and Host header sent to the RESP port.
    cmd!(
        "post",
        -1,
        FNA,
        (0, 0, 0),
        Run(Local(super::auth::security_warning))
    ),
    cmd!(
        "host:",
        -1,
        FNA,
        (0, 0, 0),
        Run(Local(super::auth::security_warning))
    ),
    cmd!("shutdown", -1, A, (0, 0, 0), Run(Local(server::shutdown))),
    cmd!("time", 1, F, (0, 0, 0), Run(Local(server::time))),
    cmd!("dbsize", 1, RF, (0, 0, 0), Run(Async(server::dbsize))),
    cmd!("flushdb", -1, W, (0, 0, 0), Run(Async(server::flush))),
    cmd!("flushall", -1, W, (0, 0, 0), Run(Async(server::flush))),
    cmd!("info", -1, NONE, (0, 0, 0), Run(Async(server::info_cmd))),
    cmd!("hotkeys", -1, R, (0, 0, 0), Run(Async(server::hotkeys_cmd))),
    cmd!(
        "latency",
        -2,
        NONE,
        (0, 0, 0),
        Run(Async(server::latency_cmd))
    ),
    cmd!("debug", -2, A, (0, 0, 0), Run(Local(server::debug))),
    // Transactions
    cmd!("multi", 1, F, (0, 0, 0), Run(Local(server::multi_cmd))),
    cmd!("exec", 1, NONE, (0, 0, 0), Run(Local(server::exec_cmd))),
    cmd!("discard", 1, F, (0, 0, 0), Run(Async(server::discard_cmd))),
    cmd!("watch", -2, F, (1, -1, 1), Run(Async(server::watch_cmd))),
    cmd!("unwatch", 1, F, (0, 0, 0), Run(Async(server::unwatch_cmd))),
    // Introspection
    cmd!("slowlog", -2, A, (0, 0, 0), Run(Async(server::slowlog_cmd))),
    cmd!("memory", -2, R, (0, 0, 0), Run(Async(server::memory_cmd))),
    cmd!("object", -2, R, (0, 0, 0), Run(Async(server::object_cmd))),
    // Scripting (issue 14, src/command/scripting/): EVAL family and SCRIPT.
    cmd!("eval", -3, NONE, (0, 0, 0), Run(Async(scripting::eval))),
    cmd!(
        "evalsha",
        -3,
        NONE,
        (0, 0, 0),
        Run(Async(scripting::evalsha))
    ),
    cmd!("eval_ro", -3, R, (0, 0, 0), Run(Async(scripting::eval_ro))),
    cmd!(
        "evalsha_ro",
        -3,
        R,
        (0, 0, 0),
        Run(Async(scripting::evalsha_ro))
    ),
    cmd!("script", -2, NONE, (0, 0, 0), Run(Async(scripting::script))),
    // Functions (issue 14, src/command/functions.rs).
    cmd!(
        "fcall",
        -3,
        NONE,
        (0, 0, 0),
        Run(Async(functions::fcall_cmd))
    ),
    cmd!(
        "fcall_ro",
        -3,
        R,
        (0, 0, 0),
        Run(Async(functions::fcall_ro_cmd))
    ),
    cmd!(
        "function",
        -2,
        NONE,
        (0, 0, 0),
        Run(Async(functions::function_cmd))
    ),
    // Bitmaps (issue 13, src/command/bitmaps.rs).
    cmd!("setbit", 4, WD, (1, 1, 1), Keyed(bitmaps::setbit)),
    cmd!("getbit", 3, RF, (1, 1, 1), Keyed(bitmaps::getbit)),
    cmd!("bitcount", -2, R, (1, 1, 1), Keyed(bitmaps::bitcount)),
    cmd!("bitpos", -3, R, (1, 1, 1), Keyed(bitmaps::bitpos)),
    cmd!(
        "bitop",
        -4,
        WD,
        (2, -1, 1),
        Kind::Multi {
            whole: bitmaps::bitop,
            spread: bitmaps::bitop_spread
        }
    ),
    cmd!("bitfield", -2, WD, (1, 1, 1), Keyed(bitmaps::bitfield)),
    cmd!(
        "bitfield_ro",
        -2,
        RF,
        (1, 1, 1),
        Keyed(bitmaps::bitfield_ro)
    ),
    // HyperLogLog (issue 13, src/command/hll.rs).
    cmd!("pfadd", -2, WDF, (1, 1, 1), Keyed(hll::pfadd)),
    cmd!(
        "pfcount",
        -2,
        R,
        (1, -1, 1),
        Kind::Multi {
            whole: hll::pfcount,
            spread: hll::pfcount_spread
        }
    ),
    cmd!(
        "pfmerge",
        -2,
        WD,
        (1, -1, 1),
        Kind::Multi {
            whole: hll::pfmerge,
            spread: hll::pfmerge_spread
        }
    ),
    // Issue 13, dump family: DUMP/RESTORE (src/command/dump.rs).
    cmd!("dump", 2, R, (1, 1, 1), Keyed(dump::dump)),
    cmd!("restore", -4, WD, (1, 1, 1), Keyed(dump::restore)),
    // MIGRATE (issue 16, src/command/migrate.rs) and the RESTORE it sends
    // in cluster mode (`asking`: runs in a slot being imported).
    cmd!(
        "migrate",
        -6,
        WM,
        movable(super::migrate::migrate_keys),
        Run(Async(super::migrate::migrate))
    ),
    cmd!(
        "restore-asking",
        -4,
        &["write", "denyoom", "asking"],
        (1, 1, 1),
        Keyed(dump::restore)
    ),
    // SORT / SORT_RO (src/command/sort.rs): BY/GET patterns name keys on
    // any shard, so the connection runs them through `coord`.
    cmd!("sort", -2, WDM, (1, 1, 1), Run(Async(sort::sort))),
    cmd!("sort_ro", -2, RM, (1, 1, 1), Run(Async(sort::sort_ro))),
    cmd!(
        "pfdebug",
        3,
        &["write", "denyoom", "admin"],
        (2, 2, 1),
        Keyed(hll::pfdebug)
    ),
    // Geo (issue 13, src/command/geo.rs): sorted sets of geohash scores.
    cmd!("geoadd", -5, WD, (1, 1, 1), Keyed(geo::geoadd)),
    cmd!("geodist", -4, R, (1, 1, 1), Keyed(geo::geodist)),
    cmd!("geohash", -2, R, (1, 1, 1), Keyed(geo::geohash_cmd)),
    cmd!("geopos", -2, R, (1, 1, 1), Keyed(geo::geopos)),
    cmd!("geosearch", -7, R, (1, 1, 1), Keyed(geo::search_cmd)),
    cmd!("georadius_ro", -6, R, (1, 1, 1), Keyed(geo::search_cmd)),
    cmd!(
        "georadiusbymember_ro",
        -5,
        R,
        (1, 1, 1),
        Keyed(geo::search_cmd)
    ),
    cmd!(
        "geosearchstore",
        -8,
        WD,
        (1, 2, 1),
        Kind::Multi {
            whole: geo::search_cmd,
            spread: geo::search_spread
        }
    ),
    cmd!(
        "georadius",
        -6,
        &["write", "denyoom", "movablekeys"],
        movable(geo::radius_keys),
        Kind::Multi {
            whole: geo::search_cmd,
            spread: geo::search_spread
        }
    ),
    cmd!(
        "georadiusbymember",
        -5,
        &["write", "denyoom", "movablekeys"],
        movable(geo::radius_keys),
        Kind::Multi {
            whole: geo::search_cmd,
            spread: geo::search_spread
        }
    ),
    // Blocking commands of issue 13 (src/command/blocking.rs): connection
    // commands, since they wait on their connection.
    cmd!(
        "blpop",
        -3,
        WB,
        (1, -2, 1),
        Run(Async(super::blocking::blpop))
    ),
    cmd!(
        "brpop",
        -3,
        WB,
        (1, -2, 1),
        Run(Async(super::blocking::brpop))
    ),
    cmd!(
        "brpoplpush",
        4,
        WDNB,
        (1, 2, 1),
        Run(Async(super::blocking::brpoplpush))
    ),
    cmd!(
        "blmove",
        6,
        WDNB,
        (1, 2, 1),
        Run(Async(super::blocking::blmove))
    ),
    cmd!(
        "blmpop",
        -5,
        WBM,
        movable(super::blocking::blmpop_keys),
        Run(Async(super::blocking::blmpop))
    ),
    cmd!(
        "bzpopmin",
        -3,
        WBF,
        (1, -2, 1),
        Run(Async(super::blocking::bzpopmin))
    ),
    cmd!(
        "bzpopmax",
        -3,
        WBF,
        (1, -2, 1),
        Run(Async(super::blocking::bzpopmax))
    ),
    cmd!(
        "bzmpop",
        -5,
        WBM,
        movable(super::blocking::blmpop_keys),
        Run(Async(super::blocking::bzmpop))
    ),
    // Issue 13, misc (src/command/misc.rs): HRANDFIELD, LCS, SWAPDB, MOVE.
    cmd!("hrandfield", -2, R, (1, 1, 1), Keyed(misc::hrandfield)),
    cmd!(
        "lcs",
        -3,
        R,
        (1, 2, 1),
        Kind::Multi {
            whole: misc::lcs,
            spread: misc::lcs_spread
        }
    ),
    cmd!("swapdb", 3, WF, (0, 0, 0), Run(Local(misc::swapdb))),
    cmd!("move", 3, WF, (1, 1, 1), Run(Local(misc::move_cmd))),
    // Pub/Sub (issue 14, src/command/pubsub.rs): connection commands;
    // PUBLISH reaches the other cores through coord::publish, without
    // waiting for them; (un)subscribes wait until every core knows.
    cmd!(
        "subscribe",
        -2,
        PUBSUB_FLAGS,
        (0, 0, 0),
        Run(Async(super::pubsub::subscribe_cmd))
    ),
    cmd!(
        "unsubscribe",
        -1,
        PUBSUB_FLAGS,
        (0, 0, 0),
        Run(Async(super::pubsub::unsubscribe_cmd))
    ),
    cmd!(
        "psubscribe",
        -2,
        PUBSUB_FLAGS,
        (0, 0, 0),
        Run(Async(super::pubsub::psubscribe_cmd))
    ),
    cmd!(
        "punsubscribe",
        -1,
        PUBSUB_FLAGS,
        (0, 0, 0),
        Run(Async(super::pubsub::punsubscribe_cmd))
    ),
    cmd!(
        "ssubscribe",
        -2,
        PUBSUB_FLAGS,
        (1, -1, 1),
        Run(Async(super::pubsub::ssubscribe_cmd))
    ),
    cmd!(
        "sunsubscribe",
        -1,
        PUBSUB_FLAGS,
        (1, -1, 1),
        Run(Async(super::pubsub::sunsubscribe_cmd))
    ),
    cmd!(
        "publish",
        3,
        &["pubsub", "loading", "stale", "fast", "may_replicate"],
        (0, 0, 0),
        Run(Local(super::pubsub::publish_cmd))
    ),
    cmd!(
        "spublish",
        3,
        &["pubsub", "loading", "stale", "fast", "may_replicate"],
        (1, 1, 1),
        Run(Local(super::pubsub::spublish_cmd))
    ),
    cmd!(
        "pubsub",
        -2,
        NONE,
        (0, 0, 0),
        Run(Async(super::pubsub::pubsub_cmd))
    ),
    cmd!(
        "reset",
        1,
        &[
            "noscript",
            "loading",
            "stale",
            "fast",
            "no_auth",
            "allow_busy"
        ],
        (0, 0, 0),
        Run(Async(super::pubsub::reset))
    ),
    // Cluster mode (issue 16, src/command/cluster.rs).
    cmd!(
        "cluster",
        -2,
        NONE,
        (0, 0, 0),
        Run(Async(super::cluster::cluster_cmd))
    ),
    cmd!(
        "asking",
        1,
        F,
        (0, 0, 0),
        Run(Local(super::cluster::asking))
    ),
    cmd!(
        "readonly",
        1,
        &["fast", "loading", "stale"],
        (0, 0, 0),
        Run(Local(super::cluster::readonly))
    ),
    cmd!(
        "readwrite",
        1,
        &["fast", "loading", "stale"],
        (0, 0, 0),
        Run(Local(super::cluster::readonly))
    ),
]);

/// Pub/Sub (issue 14): Redis 7.0's flags of (P|S)(UN)SUBSCRIBE.
const PUBSUB_FLAGS: &[&str] = &["pubsub", "noscript", "loading", "stale"];

/// The subcommands Redis 7.0 counts separately (`INFO commandstats` shows
/// `cmdstat_config|set`…), per container, as redis-server 7.0.15's
/// `COMMAND INFO` lists them (plus CLIENT SETINFO, Redis 7.2's, which
/// Kora answers and client libraries send on connect). A container without
/// a row in [`COMMANDS`] gets no slots. An unknown subcommand counts under
/// `other` like an unknown command (Redis rejects both before choosing a
/// command, so neither has a row of its own); the container's own slot
/// counts only calls without a subcommand (wrong arity).
pub static CONTAINERS: &[(&str, &[&str])] = &[
    (
        "config",
        &[
            "config|get",
            "config|set",
            "config|resetstat",
            "config|rewrite",
            "config|help",
        ],
    ),
    (
        "client",
        &[
            "client|caching",
            "client|getname",
            "client|getredir",
            "client|help",
            "client|id",
            "client|info",
            "client|kill",
            "client|list",
            "client|no-evict",
            "client|pause",
            "client|reply",
            "client|setinfo",
            "client|setname",
            "client|tracking",
            "client|trackinginfo",
            "client|unblock",
            "client|unpause",
        ],
    ),
    (
        "command",
        &[
            "command|count",
            "command|docs",
            "command|getkeys",
            "command|getkeysandflags",
            "command|help",
            "command|info",
            "command|list",
        ],
    ),
    (
        "latency",
        &[
            "latency|doctor",
            "latency|graph",
            "latency|help",
            "latency|histogram",
            "latency|history",
            "latency|latest",
            "latency|reset",
        ],
    ),
    (
        "slowlog",
        &[
            "slowlog|get",
            "slowlog|help",
            "slowlog|len",
            "slowlog|reset",
        ],
    ),
    (
        "memory",
        &[
            "memory|doctor",
            "memory|help",
            "memory|malloc-stats",
            "memory|purge",
            "memory|stats",
            "memory|usage",
        ],
    ),
    (
        "cluster",
        &[
            "cluster|countkeysinslot",
            "cluster|getkeysinslot",
            "cluster|gettopology",
            "cluster|help",
            "cluster|info",
            "cluster|keyslot",
            "cluster|links",
            "cluster|myid",
            "cluster|nodes",
            "cluster|setslot",
            "cluster|settopology",
            "cluster|shards",
            "cluster|slots",
        ],
    ),
    (
        "object",
        &[
            "object|encoding",
            "object|freq",
            "object|help",
            "object|idletime",
            "object|refcount",
        ],
    ),
    (
        "script",
        &[
            "script|debug",
            "script|exists",
            "script|flush",
            "script|help",
            "script|kill",
            "script|load",
        ],
    ),
    (
        "function",
        &[
            "function|delete",
            "function|dump",
            "function|flush",
            "function|help",
            "function|kill",
            "function|list",
            "function|load",
            "function|restore",
            "function|stats",
        ],
    ),
    // Pub/Sub (issue 14).
    (
        "pubsub",
        &[
            "pubsub|channels",
            "pubsub|help",
            "pubsub|numpat",
            "pubsub|numsub",
            "pubsub|shardchannels",
            "pubsub|shardnumsub",
        ],
    ),
];

/// Gives every row its metrics slot (its index) and every container its
/// subcommands' slots (after all rows), at compile time; fails the build
/// when rows plus subcommands outgrow [`NUM_SLOTS`].
const fn with_slots<const N: usize>(mut rows: [CommandSpec; N]) -> [CommandSpec; N] {
    let mut next = N;
    let mut i = 0;
    while i < N {
        rows[i].slot = i as Slot;
        let mut c = 0;
        while c < CONTAINERS.len() {
            if const_eq(CONTAINERS[c].0, rows[i].name) {
                rows[i].subs = CONTAINERS[c].1;
                rows[i].sub_base = next as Slot;
                next += CONTAINERS[c].1.len();
            }
            c += 1;
        }
        i += 1;
    }
    assert!(
        next <= SLOT_OTHER as usize,
        "more commands and subcommands than metric slots: raise NUM_SLOTS"
    );
    rows
}

/// The metrics slot of a call: the row's, or for a container with a known
/// subcommand that subcommand's. No allocation; a plain command pays one
/// compare.
#[inline]
pub fn slot_of(spec: &CommandSpec, args: &crate::protocol::Args<'_>) -> Slot {
    if spec.subs.is_empty() || args.len() < 2 {
        spec.slot
    } else {
        sub_slot(spec, args.get(1))
    }
}

/// The slot of `spec`'s subcommand `sub` (any case), or [`SLOT_OTHER`]
/// when `sub` is not one of its subcommands.
#[inline(never)]
fn sub_slot(spec: &CommandSpec, sub: &[u8]) -> Slot {
    let skip = spec.name.len() + 1;
    spec.subs
        .iter()
        .position(|full| full.as_bytes()[skip..].eq_ignore_ascii_case(sub))
        .map_or(SLOT_OTHER, |k| spec.sub_base + k as Slot)
}

/// The metric name of a slot (`get`, `config|set`, `other`), or None for
/// a slot no command uses.
pub fn slot_name(slot: usize) -> Option<&'static str> {
    if let Some(spec) = COMMANDS.get(slot) {
        return Some(spec.name);
    }
    if slot == SLOT_OTHER as usize {
        return Some("other");
    }
    COMMANDS.iter().find_map(|spec| {
        let k = slot.checked_sub(spec.sub_base as usize)?;
        spec.subs.get(k).copied()
    })
}

/// The slots a user's name stands for, as Redis' LATENCY HISTOGRAM reads
/// it: a command (`get`), a subcommand (`config|set`, any case), or a
/// container (`config`: each of its subcommands). Empty for unknown names.
pub fn slots_named(name: &[u8]) -> Vec<Slot> {
    let (cmd, sub) = match name.iter().position(|&b| b == b'|') {
        Some(bar) => (&name[..bar], Some(&name[bar + 1..])),
        None => (name, None),
    };
    let Some(spec) = lookup(cmd) else {
        return Vec::new();
    };
    match sub {
        Some(sub) => {
            let slot = sub_slot(spec, sub);
            if slot == SLOT_OTHER {
                Vec::new()
            } else {
                vec![slot]
            }
        }
        None if !spec.subs.is_empty() => (0..spec.subs.len())
            .map(|k| spec.sub_base + k as Slot)
            .collect(),
        None => vec![spec.slot],
    }
}

/// The slot of a command name (no subcommand); for callers that time a
/// command outside the dispatcher (EXEC).
pub fn slot_of_name(name: &str) -> Slot {
    lookup(name.as_bytes()).map_or(SLOT_OTHER, |spec| spec.slot)
}

/// Finds a command by name, case-insensitively, without allocating.
///
/// Every command of every connection comes through here, so the index is
/// built for it: a name is at most 24 bytes, read as three
/// words, lowercased a word at a time and hashed with one multiply into an
/// open-addressed table of row numbers (the words of each row's name sit
/// beside it). A `HashMap` with a seeded hasher and a byte-by-byte
/// lowercase took ~22 ns per name here; this takes about a quarter of that
/// (`cargo bench --bench resp -- lookup`).
pub fn lookup(name: &[u8]) -> Option<&'static CommandSpec> {
    static INDEX: OnceLock<NameIndex> = OnceLock::new();
    let index = INDEX.get_or_init(|| NameIndex::new(COMMANDS));
    index.find(&NameKey::of(name)?).map(|row| &COMMANDS[row])
}

/// A command name as [`lookup`] compares it: its length and its bytes,
/// ASCII-lowercased and zero-padded, in three little-endian words.
#[derive(Clone, Copy)]
struct NameKey {
    words: [u64; 3],
    len: usize,
}

impl NameKey {
    /// The longest name an index holds; a longer one names no command.
    const MAX: usize = 24;

    #[inline(always)]
    fn of(name: &[u8]) -> Option<NameKey> {
        if name.len() > Self::MAX {
            return None;
        }
        let word = |i: usize| {
            let part = name
                .get(i * 8..name.len().min(i * 8 + 8))
                .unwrap_or_default();
            ascii_lowercase_word(load_le(part))
        };
        Some(NameKey {
            words: [word(0), word(1), word(2)],
            len: name.len(),
        })
    }

    /// `==` in scalar registers: a derived `==` compared the words as a
    /// 16-byte load of a key just stored as two 8-byte words, which the
    /// core cannot forward from its store buffer (the lookup took 1.5
    /// times as long).
    #[inline(always)]
    fn same(&self, other: &NameKey) -> bool {
        let [a, b, c] = self.words;
        let [x, y, z] = other.words;
        ((a ^ x) | (b ^ y) | (c ^ z) | (self.len ^ other.len) as u64) == 0
    }

    #[inline(always)]
    fn hash(&self) -> u64 {
        let [a, b, c] = self.words;
        (a ^ b.rotate_left(21) ^ c.rotate_left(42) ^ self.len as u64)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
    }
}

/// Up to 8 bytes as a little-endian word, zero-padded, in at most three
/// loads straight from the name. Copying the name into a zeroed stack
/// buffer and reading that back as words was 2.8 times slower for the
/// whole lookup: the core cannot forward a word from the copy's narrower
/// stores, so each read waits for them to reach the cache. Overlapping
/// loads read the same bytes, so or-ing them is exact.
#[inline(always)]
fn load_le(b: &[u8]) -> u64 {
    let n = b.len();
    let u32_at = |at: usize| u64::from(u32::from_le_bytes(b[at..at + 4].try_into().expect("4")));
    match n {
        0 => 0,
        1..=3 => {
            u64::from(b[0])
                | u64::from(b[n / 2]) << (n / 2 * 8)
                | u64::from(b[n - 1]) << ((n - 1) * 8)
        }
        4..=7 => u32_at(0) | u32_at(n - 4) << ((n - 4) * 8),
        _ => u64::from_le_bytes(b[..8].try_into().expect("8 bytes")),
    }
}

/// ASCII `A`-`Z` in each byte of `w` to `a`-`z`, every other byte as it
/// was (the same arithmetic as the standard library's
/// `make_ascii_lowercase` on a word).
#[inline(always)]
fn ascii_lowercase_word(w: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // Each byte's low seven bits plus a constant sets that byte's high bit
    // exactly when the byte is at least `A` (resp. past `Z`); no byte
    // carries into the next.
    let low = w & !HIGH;
    let from_a = low.wrapping_add(ONES * (0x80 - b'A' as u64));
    let past_z = low.wrapping_add(ONES * (0x80 - b'Z' as u64 - 1));
    let upper = from_a & !past_z & !w & HIGH;
    w | (upper >> 2)
}

/// Open-addressed table from [`NameKey`] to a row of the command table.
struct NameIndex {
    /// Row + 1 per slot, 0 for an empty slot; a power of two, under a
    /// quarter full.
    slots: Box<[u16]>,
    keys: Box<[NameKey]>,
}

impl NameIndex {
    fn new(rows: &[CommandSpec]) -> NameIndex {
        let size = (rows.len() * 4).next_power_of_two();
        let mut slots = vec![0u16; size].into_boxed_slice();
        let keys: Box<[NameKey]> = rows
            .iter()
            .map(|row| NameKey::of(row.name.as_bytes()).expect("command names are short"))
            .collect();
        for (row, key) in keys.iter().enumerate() {
            let mut at = key.hash() as usize & (size - 1);
            while slots[at] != 0 {
                at = (at + 1) & (size - 1);
            }
            slots[at] = u16::try_from(row + 1).expect("fewer rows than u16");
        }
        NameIndex { slots, keys }
    }

    #[inline(always)]
    fn find(&self, key: &NameKey) -> Option<usize> {
        let mask = self.slots.len() - 1;
        let mut at = key.hash() as usize & mask;
        loop {
            let row = usize::from(self.slots[at]).checked_sub(1)?;
            if self.keys[row].same(key) {
                return Some(row);
            }
            at = (at + 1) & mask;
        }
    }
}

/// Kept out of the hot path: the server module answers COMMAND with this.
pub fn all() -> &'static [CommandSpec] {
    COMMANDS
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `lookup` must answer, the slow way.
    fn lookup_reference(name: &[u8]) -> Option<&'static CommandSpec> {
        COMMANDS
            .iter()
            .find(|c| c.name.as_bytes().eq_ignore_ascii_case(name))
    }

    #[test]
    fn short_byte_strings_load_as_zero_padded_words() {
        let bytes = *b"\x01\x82\x03\xf4\x05\x06\x07\x08";
        for n in 0..=8 {
            let mut padded = [0u8; 8];
            padded[..n].copy_from_slice(&bytes[..n]);
            assert_eq!(
                load_le(&bytes[..n]),
                u64::from_le_bytes(padded),
                "{n} bytes"
            );
        }
    }

    #[test]
    fn a_word_is_lowercased_as_each_of_its_bytes_would_be() {
        for byte in 0..=255u8 {
            for at in 0..8 {
                // The byte among neighbours on both sides of the A-Z range.
                let mut bytes = *b"@AZ[`az{";
                bytes[at] = byte;
                let want = bytes.map(|b| b.to_ascii_lowercase());
                let got = ascii_lowercase_word(u64::from_le_bytes(bytes)).to_le_bytes();
                assert_eq!(got, want, "byte {byte:#x} at {at}");
            }
        }
    }

    #[test]
    fn every_name_is_found_in_any_case() {
        for (row, spec) in COMMANDS.iter().enumerate() {
            let name = spec.name.as_bytes();
            let upper = name.to_ascii_uppercase();
            let mixed: Vec<u8> = name
                .iter()
                .enumerate()
                .map(|(i, b)| {
                    if i % 2 == 0 {
                        b.to_ascii_uppercase()
                    } else {
                        *b
                    }
                })
                .collect();
            for n in [name, &upper[..], &mixed[..]] {
                assert!(
                    std::ptr::eq(lookup(n).unwrap(), &COMMANDS[row]),
                    "{}",
                    spec.name
                );
            }
            // A name with a NUL after it is another name (the padding is
            // zeros too), and so is one byte short.
            let mut padded = name.to_vec();
            padded.push(0);
            assert!(lookup(&padded).is_none(), "{}", spec.name);
            assert_eq!(
                lookup(&name[..name.len() - 1]).map(|c| c.name),
                lookup_reference(&name[..name.len() - 1]).map(|c| c.name)
            );
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(20_000))]

        /// Bytes next to the letters' ranges (`@`, `[`, `` ` ``, `{`, and
        /// the same with the high bit set), `_` and its DEL lookalike, NUL.
        #[test]
        fn lookup_agrees_with_a_scan(
            name in proptest::collection::vec(proptest::sample::select(
                b"getGETsSxX_-|@[`{\x7f\x00\xc7\xe5\xdf\x5fro".to_vec()), 0..30),
        ) {
            proptest::prop_assert_eq!(
                lookup(&name).map(|c| c.name),
                lookup_reference(&name).map(|c| c.name)
            );
        }

        /// Real names with one byte replaced by a neighbour of a letter.
        #[test]
        fn a_real_name_with_one_byte_changed_agrees_with_a_scan(
            row in 0..COMMANDS.len(),
            at in 0usize..24,
            byte in proptest::sample::select(b"@[`{\x7f\x00\xc1\xdaAZaz_-".to_vec()),
        ) {
            let mut name = COMMANDS[row].name.as_bytes().to_vec();
            let at = at % name.len();
            name[at] = byte;
            proptest::prop_assert_eq!(
                lookup(&name).map(|c| c.name),
                lookup_reference(&name).map(|c| c.name)
            );
        }
    }

    #[test]
    fn lookup_is_case_insensitive_and_unique() {
        assert_eq!(lookup(b"GeT").unwrap().name, "get");
        assert!(lookup(b"nosuchcommand").is_none());
        assert!(lookup(&[b'a'; 100]).is_none());
        let mut names: Vec<_> = COMMANDS.iter().map(|c| c.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), COMMANDS.len());
    }

    #[test]
    fn every_row_and_subcommand_has_its_own_slot() {
        let mut seen = std::collections::HashSet::new();
        for (i, spec) in COMMANDS.iter().enumerate() {
            assert_eq!(spec.slot as usize, i, "{}", spec.name);
            assert!(seen.insert(spec.slot), "{}", spec.name);
            assert_eq!(slot_name(i), Some(spec.name));
            for (k, full) in spec.subs.iter().enumerate() {
                let slot = spec.sub_base + k as Slot;
                assert!(seen.insert(slot), "{full}");
                assert!((slot as usize) >= COMMANDS.len() && slot < SLOT_OTHER);
                assert_eq!(slot_name(slot as usize), Some(*full));
                assert!(full.starts_with(&format!("{}|", spec.name)), "{full}");
                assert_eq!(slots_named(full.to_uppercase().as_bytes()), vec![slot]);
            }
        }
        assert!(!seen.contains(&SLOT_OTHER));
        assert_eq!(slot_name(SLOT_OTHER as usize), Some("other"));
        // Every container listed has a row (a typo would lose its slots).
        for (name, _) in CONTAINERS {
            assert!(!lookup(name.as_bytes()).unwrap().subs.is_empty(), "{name}");
        }
    }

    #[test]
    fn subcommands_resolve_without_the_container_slot_leaking() {
        let slot_of_call = |argv: &[&[u8]]| {
            let buf: Vec<u8> = argv.concat();
            let mut at = 0;
            let ranges: Vec<_> = argv
                .iter()
                .map(|a| {
                    at += a.len();
                    (at - a.len(), at)
                })
                .collect();
            let args = crate::protocol::Args::new(&buf, &ranges);
            slot_of(lookup(argv[0]).unwrap(), &args)
        };
        let config = lookup(b"config").unwrap();
        let set = slots_named(b"config|set")[0];
        assert_eq!(slot_name(set as usize), Some("config|set"));
        assert_eq!(slot_of_call(&[b"CONFIG", b"SeT", b"x", b"y"]), set);
        assert_eq!(slot_of_call(&[b"CONFIG", b"nosuch"]), SLOT_OTHER);
        assert_eq!(slot_of_call(&[b"CONFIG"]), config.slot);
        let get = lookup(b"get").unwrap();
        assert_eq!(slot_of_call(&[b"GET", b"k"]), get.slot);
        assert_eq!(slots_named(b"config").len(), 5);
        assert_eq!(slots_named(b"GET"), vec![get.slot]);
        assert!(slots_named(b"config|nosuch").is_empty());
        assert!(slots_named(b"get|x").is_empty());
        assert!(slots_named(b"nosuch").is_empty());
        assert_eq!(slot_of_name("exec"), lookup(b"exec").unwrap().slot);
        assert_ne!(slot_of_name("append"), SLOT_OTHER, "no more lumping");
    }

    #[test]
    fn blocking_rows_are_redis_7_0s() {
        let mut ours: Vec<&str> = COMMANDS
            .iter()
            .filter(|c| c.blocking)
            .map(|c| c.name)
            .collect();
        ours.sort_unstable();
        assert_eq!(
            ours,
            [
                "blmove",
                "blmpop",
                "blpop",
                "brpop",
                "brpoplpush",
                "bzmpop",
                "bzpopmax",
                "bzpopmin"
            ]
        );
    }

    #[test]
    fn denyoom_rows_are_redis_7_0s() {
        // `COMMAND INFO` of redis-server 7.0.15, every command Kora has
        // that Redis flags denyoom (FUNCTION's flag is on its LOAD and
        // RESTORE subcommands, not on the container).
        let redis = [
            "set",
            "setnx",
            "setex",
            "psetex",
            "getset",
            "append",
            "setrange",
            "incr",
            "decr",
            "incrby",
            "decrby",
            "incrbyfloat",
            "lpush",
            "rpush",
            "lpushx",
            "rpushx",
            "lset",
            "linsert",
            "hset",
            "hmset",
            "hsetnx",
            "hincrby",
            "hincrbyfloat",
            "sadd",
            "mset",
            "msetnx",
            "sinterstore",
            "sunionstore",
            "sdiffstore",
            "lmove",
            "rpoplpush",
            "copy",
            // Bitmaps (issue 13).
            "setbit",
            "bitop",
            "bitfield",
            // HyperLogLog (issue 13).
            "pfadd",
            "pfmerge",
            "pfdebug",
            // DUMP/RESTORE and SORT (issue 13).
            "restore",
            "restore-asking",
            "sort",
            // Sorted sets.
            "zadd",
            "zincrby",
            "zrangestore",
            "zunionstore",
            "zinterstore",
            "zdiffstore",
            // Geo.
            "geoadd",
            "geosearchstore",
            "georadius",
            "georadiusbymember",
            // Blocking commands.
            "blmove",
            "brpoplpush",
        ];
        let mut ours: Vec<&str> = COMMANDS
            .iter()
            .filter(|c| c.denyoom)
            .map(|c| c.name)
            .collect();
        let mut redis = redis.to_vec();
        ours.sort_unstable();
        redis.sort_unstable();
        assert_eq!(ours, redis);
        for c in COMMANDS {
            assert_eq!(c.denyoom, c.flags.contains(&"denyoom"), "{}", c.name);
        }
    }

    #[test]
    fn every_hot_name_is_a_command_or_other() {
        for name in &HOT_NAMES[..HOT_NAMES.len() - 1] {
            assert!(lookup(name.as_bytes()).is_some(), "{name}");
        }
    }
}
