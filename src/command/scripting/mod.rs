//! Lua scripting: EVAL, EVALSHA, EVAL_RO, EVALSHA_RO and SCRIPT
//! LOAD/EXISTS/FLUSH/KILL/DEBUG/HELP, with Redis 7.0's semantics and
//! texts, on Lua 5.1 (mlua, vendored). FCALL/FUNCTION build on the same
//! engine (see "API for FUNCTION" below).
//!
//! # Where a script runs
//!
//! Every core has its own Lua state and script cache (`engine`). A
//! script runs on the core that owns its declared keys, as ONE
//! synchronous op there (`coord::on`): a core runs one thing at a time, so
//! nothing interleaves with the script, and each `redis.call` is a direct
//! call of the command's handler on that core's keyspace (no hop). A
//! script without keys runs on the connection's own core. The op waits,
//! as any op, for multi-key commands holding keys there and for a
//! transaction holding the shard, so the script sees none of them half
//! done. Inside MULTI/EXEC the transaction already holds the shards; the
//! script's op passes its locks.
//!
//! # The undeclared-key rule
//!
//! A script may touch keys it did not declare in KEYS only if they live on
//! the shard the script runs on (the declared keys' shard; the
//! connection's for a script without keys). Any other key gets
//! `-ERR Script attempted to access a key that was not declared in KEYS
//! and lives on another shard than the declared keys` (raised by
//! `redis.call`, returned by `redis.pcall`), as Dragonfly does. Declare
//! every key and the rule never bites. Declared keys on several shards:
//! see "Keys on several shards".
//!
//! # Commands inside scripts
//!
//! Redis 7.0's `noscript` commands (MULTI, WATCH, SUBSCRIBE, blocking
//! pops, CLIENT, CONFIG, SCRIPT, EVAL…) answer `This Redis command is not
//! allowed from script`. PING, ECHO, TIME and SELECT 0 run. The other
//! connection-level commands reach every shard (KEYS, SCAN, DBSIZE,
//! FLUSHALL, INFO, RANDOMKEY…), which a script does not hold: they answer
//! `ERR This command reaches every shard or the connection; Kora does not
//! run it from scripts`. Commands run by a script count in commandstats,
//! latency and errorstats of the shard they ran on, as Redis counts them.
//!
//! # Script cache
//!
//! SCRIPT LOAD and the first EVAL of a body on a core compile it there
//! and send it to every core (once per new sha per core), before
//! answering, so EVALSHA works from a connection on any core. SCRIPT FLUSH
//! empties every core's cache. EVALSHA of an unknown sha answers
//! `-NOSCRIPT No matching script. Please use EVAL.`
//!
//! # Limits
//!
//! Two per-core bounds keep scripts from growing memory without end
//! (`engine::Limits`, CONFIG SET on every core): `lua-eval-cache-limit`
//! (500) EVAL scripts per core, dropped least recently used first (Redis
//! 7.4's rule; SCRIPT LOAD's are kept), and `lua-memory-limit` (1gb) of
//! Lua heap, past which an allocation fails and the script ends with an
//! error. Each core orders its own uses, so the cores' caches may differ
//! after evictions: EVAL therefore ships its body with the run, and the
//! running core compiles it again if it dropped it (EVAL never answers
//! NOSCRIPT; EVALSHA may, and clients fall back to EVAL).
//!
//! # Busy scripts
//!
//! A count hook runs every 100 000 Lua instructions. Past
//! `busy-reply-threshold` (`lua-time-limit`, 5000 ms) the script is
//! marked busy in a per-core slot readable by other cores; SCRIPT KILL
//! from any core stops it if it has not written (`-UNKILLABLE` otherwise,
//! `-NOTBUSY` when no script is busy); a requested shutdown (SHUTDOWN
//! NOSAVE from another core, SIGTERM) stops it too. While a core is busy,
//! EVAL/EVALSHA bound to it from other cores answer `-BUSY …`; other
//! commands bound to the busy core wait until it is free (a Kora core is
//! single-threaded: only the other cores can answer), and commands on other
//! cores' keys run on.
//!
//! # API for FUNCTION / FCALL
//!
//! - `engine::new_state` / `engine::install`: a Lua state with the
//!   libraries, the `redis` API, `math.random` and the globals protection;
//!   `engine::with_engine` gives this core's state (`engine::Engine`:
//!   `lua` and `sandbox`), the one scripts run in; `engine::compile`
//!   compiles code in the sandbox's read-only environment.
//! - `run`: runs a function (found on the executing core by an
//!   `engine::Finder`) with KEYS/ARGV as globals (EVAL) or as its two
//!   table arguments (FCALL), read-only or not, on the right core under
//!   the rules above, and appends its reply.
//!
//! Layer: command (connection-level commands, `Conn::Async`).

pub(crate) mod engine;

use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::conn::{ClientState, Flow};
use super::{Args, help_reply, subcommand_arity, unknown_subcommand};
use crate::coord::Shard;
use crate::protocol::reply::Resp;
pub(crate) use engine::{Engine, Invocation, Origin, Style};

const BUSY: &str =
    "BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.";
const NOTBUSY: &str = "NOTBUSY No scripts in execution right now.";
const UNKILLABLE: &str = "UNKILLABLE Sorry the script already executed write commands against the dataset. You can either wait the script termination or kill the server in a hard way using the SHUTDOWN NOSAVE command.";
const NEGATIVE_KEYS: &str = "ERR Number of keys can't be negative";
const TOO_MANY_KEYS: &str = "ERR Number of keys can't be greater than number of args";

conn_async!(
    /// EVAL script numkeys [key ...] [arg ...]
    eval,
    |shard, client, args, out| {
        eval_generic(shard, client, args, out, false, false).await;
        Flow::Continue
    }
);

conn_async!(
    /// EVAL_RO: EVAL whose write commands are refused.
    eval_ro,
    |shard, client, args, out| {
        eval_generic(shard, client, args, out, false, true).await;
        Flow::Continue
    }
);

conn_async!(
    /// EVALSHA sha1 numkeys [key ...] [arg ...]
    evalsha,
    |shard, client, args, out| {
        eval_generic(shard, client, args, out, true, false).await;
        Flow::Continue
    }
);

conn_async!(
    /// EVALSHA_RO
    evalsha_ro,
    |shard, client, args, out| {
        eval_generic(shard, client, args, out, true, true).await;
        Flow::Continue
    }
);

/// Owned arguments (KEYS or ARGV) shipped to the core that runs a script.
pub(crate) type KeyList = Vec<Box<[u8]>>;

/// KEYS and ARGV of an EVAL-style command: `args[at]` is numkeys.
pub(crate) fn keys_and_args(args: &Args, at: usize) -> Result<(KeyList, KeyList), &'static str> {
    let numkeys = args.int(at)?;
    if numkeys < 0 {
        return Err(NEGATIVE_KEYS);
    }
    let first = at + 1;
    if numkeys as u64 > (args.len() - first) as u64 {
        return Err(TOO_MANY_KEYS);
    }
    let split = first + numkeys as usize;
    let keys = (first..split).map(|i| Box::from(args.get(i))).collect();
    let argv = (split..args.len())
        .map(|i| Box::from(args.get(i)))
        .collect();
    Ok((keys, argv))
}

async fn eval_generic(
    shard: &Rc<Shard>,
    client: &mut ClientState,
    args: &Args<'_>,
    out: &mut Vec<u8>,
    by_sha: bool,
    read_only: bool,
) {
    let (keys, argv) = match keys_and_args(args, 2) {
        Ok(parts) => parts,
        Err(e) => return out.error(e),
    };
    let sha: [u8; 40] = if by_sha {
        let raw = args.get(1);
        let Ok(mut sha) = <[u8; 40]>::try_from(raw) else {
            return out.error(engine::NOSCRIPT);
        };
        sha.make_ascii_lowercase();
        if !engine::with_engine(|e| e.has(&sha)) {
            return out.error(engine::NOSCRIPT);
        }
        sha
    } else {
        match ensure_loaded(shard, args.get(1), Origin::Eval).await {
            Ok(sha) => sha,
            Err(e) => return out.error(&e),
        }
    };
    let flags = engine::with_engine(|e| e.flags(&sha)).unwrap_or_default();
    if read_only && flags.shebang && !flags.no_writes {
        return out.error("ERR Can not execute a script with write flag using *_ro command.");
    }
    let label = String::from_utf8_lossy(&sha).into_owned();
    let mut inv = Invocation::new(find_script, &sha, &label, Style::Globals, keys, argv);
    inv.read_only = read_only || flags.no_writes;
    inv.allow_oom = flags.allow_oom || flags.no_writes;
    inv.deny_oom = flags.shebang && !inv.allow_oom;
    if !by_sha {
        inv.body = Some(args.get(1).into());
    }
    run(shard, client, inv, out).await;
}

fn find_script(engine: &mut Engine, name: &[u8]) -> Option<mlua::Function> {
    engine.script(name)
}

/// Makes sure every core has the script `body` compiled and cached as
/// `origin` asks: compiles it here (a compile error is the reply) and,
/// when this core's cache changed, sends it to every core before
/// answering.
async fn ensure_loaded(shard: &Shard, body: &[u8], origin: Origin) -> Result<[u8; 40], String> {
    // A busy core would hold the broadcast (and this client) until its
    // script ends: answer BUSY, as Redis answers everything then. Checked
    // before compiling, so a body is never new here without being sent.
    if any_busy(shard) && !engine::with_engine(|e| e.has(&crate::protocol::sha1::sha1_hex(body))) {
        return Err(BUSY.into());
    }
    let (sha, fresh) = engine::with_engine(|e| e.load(body, origin))?;
    if fresh == engine::Fresh::New {
        let body: Arc<[u8]> = Arc::from(body);
        crate::coord::all(shard, move |s: &Shard| {
            engine::with_engine(|e| {
                let _ = e.load(&body, origin);
                e.note_sizes(s);
            })
        })
        .await;
    }
    Ok(sha)
}

/// Runs a script or function (see the module docs, "API for FUNCTION"):
/// on the core owning its declared keys (the connection's for none), as
/// one synchronous op there, and appends its reply to `out`.
pub(crate) async fn run(
    shard: &Rc<Shard>,
    client: &ClientState,
    inv: Invocation,
    out: &mut Vec<u8>,
) {
    let mut owners: Vec<usize> = inv.keys.iter().map(|k| shard.owner(k)).collect();
    owners.sort_unstable();
    owners.dedup();
    let target = match owners.as_slice() {
        [] => shard.id(),
        [one] => *one,
        _ => return run_across(shard, client, owners, inv, out).await,
    };
    if target != shard.id() && is_busy(target) {
        return out.error(BUSY);
    }
    match crate::coord::on(shard, target, move |s: &Shard| engine::run_here(s, inv)).await {
        Some(outcome) => out.extend_from_slice(&outcome.reply),
        None => out.error(super::keys::SHARD_GONE),
    }
    shard.db().refresh_clock();
}

fn is_busy(core: usize) -> bool {
    engine::slot(core).is_some_and(|s| s.busy.load(Ordering::Relaxed))
}

fn any_busy(shard: &Shard) -> bool {
    (0..shard.nshards()).any(|core| core != shard.id() && is_busy(core))
}

/// Declared keys on several shards: the script locks those shards and its
/// connection's own (ascending, as EXEC locks them) for its transaction
/// (the client id), then runs on the connection's core with redis.call
/// hopping to the held shards (`engine::run_spread`). Inside EXEC the
/// transaction (this client's id too) already holds every shard.
async fn run_across(
    shard: &Rc<Shard>,
    client: &ClientState,
    mut held: Vec<usize>,
    inv: Invocation,
    out: &mut Vec<u8>,
) {
    if held.iter().any(|&s| s != shard.id() && is_busy(s)) {
        return out.error(BUSY);
    }
    let tx = client.info.id;
    if shard.in_transaction() {
        let held: Vec<usize> = (0..shard.nshards()).collect();
        let pre_oom = !crate::coord::room_for_write(shard, &held).await;
        let outcome = engine::run_spread(shard, tx, held, pre_oom, inv).await;
        out.extend_from_slice(&outcome.reply);
        shard.db().refresh_clock();
        return;
    }
    held.push(shard.id());
    held.sort_unstable();
    held.dedup();
    let run = async {
        if !shard.lock_shards(tx, &held).await {
            return None;
        }
        let pre_oom = !crate::coord::room_for_write(shard, &held).await;
        let outcome = engine::run_spread(shard, tx, held.clone(), pre_oom, inv).await;
        shard.unlock_shards(tx, &held).await;
        Some(outcome)
    };
    let mut run = std::pin::pin!(run);
    match shard.with_tx(tx, run.as_mut()).await {
        Some(outcome) => out.extend_from_slice(&outcome.reply),
        None => out.error(super::keys::SHARD_GONE),
    }
    shard.db().refresh_clock();
}

/// SCRIPT LOAD/EXISTS/FLUSH/KILL/DEBUG/HELP
pub fn script<'a>(
    shard: &'a Rc<Shard>,
    _client: &'a mut ClientState,
    args: &'a Args<'a>,
    out: &'a mut Vec<u8>,
) -> super::ConnFuture<'a> {
    Box::pin(async move {
        script_cmd(shard, args, out).await;
        Flow::Continue
    })
}

async fn script_cmd(shard: &Rc<Shard>, args: &Args<'_>, out: &mut Vec<u8>) {
    let sub = args.get(1);
    let arity_ok = |n: i32| {
        let argc = args.len() as i32;
        if n >= 0 { argc == n } else { argc >= -n }
    };
    let (name, arity) = match () {
        _ if args.is(1, "LOAD") => ("load", 3),
        _ if args.is(1, "EXISTS") => ("exists", -3),
        _ if args.is(1, "FLUSH") => ("flush", -2),
        _ if args.is(1, "KILL") => ("kill", 2),
        _ if args.is(1, "DEBUG") => ("debug", 3),
        _ if args.is(1, "HELP") => ("help", 2),
        _ => return unknown_subcommand(out, "SCRIPT", sub),
    };
    if !arity_ok(arity) {
        return subcommand_arity(out, "script", sub);
    }
    match name {
        "load" => match ensure_loaded(shard, args.get(2), Origin::Load).await {
            Ok(sha) => out.bulk(&sha),
            Err(e) => out.error(&e),
        },
        "exists" => {
            out.array(args.len() - 2);
            for i in 2..args.len() {
                let mut sha = args.get(i).to_vec();
                sha.make_ascii_lowercase();
                out.int(engine::with_engine(|e| e.has(&sha)) as i64);
            }
        }
        "flush" => {
            if args.len() == 3 && !(args.is(2, "ASYNC") || args.is(2, "SYNC")) || args.len() > 3 {
                return out.error("ERR SCRIPT FLUSH only support SYNC|ASYNC option");
            }
            if any_busy(shard) {
                return out.error(BUSY);
            }
            crate::coord::all(shard, |s: &Shard| {
                engine::with_engine(|e| {
                    e.flush();
                    e.note_sizes(s);
                })
            })
            .await;
            out.ok();
        }
        "kill" => match script_kill(shard) {
            "" => out.ok(),
            e => out.error(e),
        },
        "debug" => {
            if args.is(2, "NO") {
                out.ok()
            } else if args.is(2, "YES") || args.is(2, "SYNC") {
                out.error("ERR Kora has no Lua debugger (SCRIPT DEBUG YES/SYNC is not supported)")
            } else {
                out.error("ERR Use SCRIPT DEBUG YES/SYNC/NO")
            }
        }
        _ => help_reply(
            out,
            "SCRIPT",
            &[
                "DEBUG (YES|SYNC|NO)",
                "    Set the debug mode for subsequent scripts executed.",
                "EXISTS <sha1> [<sha1> ...]",
                "    Return information about the existence of the scripts in the script cache.",
                "FLUSH [ASYNC|SYNC]",
                "    Flush the Lua scripts cache. Very dangerous on replicas.",
                "    When called without the optional mode argument, the behavior is determined by the",
                "    lazyfree-lazy-user-flush configuration directive. Valid modes are:",
                "    * ASYNC: Asynchronously flush the scripts cache.",
                "    * SYNC: Synchronously flush the scripts cache.",
                "KILL",
                "    Kill the currently executing Lua script.",
                "LOAD <script>",
                "    Load a script into the scripts cache without executing it.",
            ],
        ),
    }
}

/// SCRIPT KILL (and FUNCTION KILL): asks every busy core's script to
/// stop. The reply as an error text (`NOTBUSY …`, `UNKILLABLE …`), or ""
/// for +OK (written by the caller).
pub(crate) fn script_kill(shard: &Shard) -> &'static str {
    let mut busy = false;
    let mut unkillable = false;
    for core in 0..shard.nshards() {
        let Some(slot) = engine::slot(core) else {
            continue;
        };
        if slot.busy.load(Ordering::SeqCst) {
            busy = true;
            if slot.wrote.load(Ordering::SeqCst) {
                unkillable = true;
            } else {
                slot.kill.store(true, Ordering::SeqCst);
            }
        }
    }
    match (busy, unkillable) {
        (false, _) => NOTBUSY,
        (true, true) => UNKILLABLE,
        (true, false) => "",
    }
}
