//! The per-core Lua engine: one Lua 5.1 state per core (a thread-local,
//! created on first use), its sandbox (`prelude.lua`), the `redis.call`
//! bridge to the shard, the Lua↔RESP2 conversions, the script cache, and
//! the count hook that makes a long script killable.
//!
//! A script runs synchronously on the core that owns its keys
//! (`run_here`): while it runs nothing else runs on that core, so it is
//! atomic with respect to every other client, and each `redis.call` is a
//! direct call of the command's handler on this core's `Db` (zero hops).
//! The running script's context (which shard, read-only or not, whether
//! it wrote) lives in a thread-local for the duration of the run; the Lua
//! callbacks read it there.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use mlua::{
    ChunkMode, Function, HookTriggers, Lua, LuaOptions, MultiValue, RegistryKey, StdLib, Table,
    Value, VmState,
};

use crate::command::{Conn, Kind, lookup};
use crate::coord::Shard;
use crate::metrics::CommandTimer;
use crate::protocol::Args;
use crate::protocol::reply::Resp;
use crate::protocol::sha1::sha1_hex;

pub(crate) const NOSCRIPT: &str = "NOSCRIPT No matching script. Please use EVAL.";
const UNKNOWN: &str = "ERR Unknown Redis command called from script";
const ARITY: &str = "ERR Wrong number of args calling Redis command from script";
const NOT_ALLOWED: &str = "ERR This Redis command is not allowed from script";
const RO_WRITE: &str = "ERR Write commands are not allowed from read-only scripts.";
const BAD_ARG: &str = "ERR Lua redis lib command arguments must be strings or integers";
const NO_ARGS: &str = "ERR Please specify at least one argument for this redis lib call";
/// A key on a shard the script does not hold (see the module docs of
/// `scripting`: the undeclared-key rule).
pub(crate) const UNDECLARED: &str = "ERR Script attempted to access a key that was not declared in KEYS and lives on another shard than the declared keys";
/// Whole-keyspace and connection commands a script cannot run atomically.
const NOT_IN_SCRIPT: &str =
    "ERR This command reaches every shard or the connection; Kora does not run it from scripts";
pub(crate) const KILLED: &str = "ERR Script killed by user with SCRIPT KILL...";
const SHUTTING_DOWN: &str = "ERR Script stopped: the server is shutting down";

/// Redis 7.0's `noscript` commands (from its COMMAND INFO): refused inside
/// scripts whatever Kora's table says about them.
const NOSCRIPT_COMMANDS: &[&str] = &[
    "acl",
    "auth",
    "bgrewriteaof",
    "bgsave",
    "blmove",
    "blpop",
    "brpop",
    "brpoplpush",
    "bzpopmax",
    "bzpopmin",
    "client",
    "cluster",
    "config",
    "debug",
    "discard",
    "eval",
    "eval_ro",
    "evalsha",
    "evalsha_ro",
    "exec",
    "failover",
    "fcall",
    "fcall_ro",
    "function",
    "hello",
    "latency",
    "module",
    "monitor",
    "multi",
    "psubscribe",
    "psync",
    "punsubscribe",
    "quit",
    "replconf",
    "replicaof",
    "reset",
    "role",
    "save",
    "script",
    "shutdown",
    "slaveof",
    "ssubscribe",
    "subscribe",
    "sunsubscribe",
    "sync",
    "unsubscribe",
    "unwatch",
    "wait",
    "watch",
];

/// Instructions between two runs of the count hook: cheap (Redis uses
/// the same period) and a few milliseconds at most between checks.
const HOOK_PERIOD: u32 = 100_000;

// ---- Busy scripts, across cores ----

thread_local! {
    /// This core's `busy-reply-threshold` once CONFIG SET changed it (it
    /// sets every core's); until then the configuration's.
    static BUSY_THRESHOLD_MS: Cell<Option<u64>> = const { Cell::new(None) };
}

/// This core's `busy-reply-threshold` in milliseconds.
pub(crate) fn busy_threshold_ms(shard: &Shard) -> u64 {
    BUSY_THRESHOLD_MS
        .with(Cell::get)
        .unwrap_or(shard.config().busy_reply_threshold)
}

/// CONFIG SET busy-reply-threshold, on this core.
pub(crate) fn set_busy_threshold_ms(ms: u64) {
    BUSY_THRESHOLD_MS.with(|t| t.set(Some(ms)));
}

/// One core's running-script state as other cores see it. Written by the
/// count hook once a script has run past the busy threshold (and by the
/// script's writes after that), read by SCRIPT KILL and by EVALs on
/// other cores. Touched by SCRIPT KILL and the hook only, never on the
/// data path: a script under the threshold never touches it.
pub(crate) struct BusySlot {
    pub busy: AtomicBool,
    pub wrote: AtomicBool,
    pub kill: AtomicBool,
}

const MAX_SLOTS: usize = 1024;
pub(crate) static SLOTS: [BusySlot; MAX_SLOTS] = [const {
    BusySlot {
        busy: AtomicBool::new(false),
        wrote: AtomicBool::new(false),
        kill: AtomicBool::new(false),
    }
}; MAX_SLOTS];

pub(crate) fn slot(core: usize) -> Option<&'static BusySlot> {
    SLOTS.get(core)
}

// ---- The running script's context ----

struct RunCtx {
    /// The shard this script runs on; valid for the whole run (the run is
    /// one synchronous call inside an op on that shard, see `run_here`).
    shard: *const Shard,
    read_only: bool,
    wrote: bool,
    /// Over `maxmemory` with nothing to evict when the script started: its
    /// first `denyoom` command (before any write) is refused (Redis 7).
    pre_oom: bool,
    start: Instant,
    busy: bool,
    /// Set by the hook: why the script is being stopped.
    abort: Option<&'static str>,
    nshards: usize,
    routing: crate::coord::Routing,
    /// Multi-shard mode (see `run_spread`): the connection's shard, the
    /// shards the script holds (ascending) and its transaction id.
    spread: Option<(Rc<Shard>, Vec<usize>, u64)>,
    /// Cluster mode (issue 16): the topology and this node's place in it
    /// when the script started; keys of slots it does not own are refused.
    cluster: Option<(std::sync::Arc<crate::cluster::Topology>, Option<usize>)>,
}

/// A script's view of the cluster (None outside cluster mode).
fn cluster_view(
    shard: &Shard,
) -> Option<(std::sync::Arc<crate::cluster::Topology>, Option<usize>)> {
    shard.cluster_enabled().then(|| {
        let state = shard.cluster();
        (state.topology.clone(), state.me)
    })
}

/// Redis 7.0's text for a key of a slot another node serves.
const NON_LOCAL: &str = "ERR Script attempted to access a non local key in a cluster node";

thread_local! {
    static CTX: RefCell<Option<RunCtx>> = const { RefCell::new(None) };
    static ENGINE: RefCell<Option<Engine>> = const { RefCell::new(None) };
    /// rand48 state of `math.random`, per core, from Redis' initial state.
    static RAND48: Cell<u64> = const { Cell::new(0x1234_ABCD_330E) };
}

/// Clears the context when a run ends, however it ends.
struct CtxGuard(usize);

impl Drop for CtxGuard {
    fn drop(&mut self) {
        let busy = CTX.with(|c| c.borrow_mut().take().is_some_and(|ctx| ctx.busy));
        if busy && let Some(slot) = slot(self.0) {
            slot.busy.store(false, Ordering::SeqCst);
            slot.wrote.store(false, Ordering::SeqCst);
            slot.kill.store(false, Ordering::SeqCst);
        }
    }
}

// ---- The engine ----

/// A Lua state with Kora's sandbox installed (see `install`): what a
/// script sees as its globals and the functions that run one.
#[derive(Clone)]
pub(crate) struct Sandbox {
    /// The table behind scripts' globals (KEYS and ARGV are set here).
    pub globals: Table,
    /// The read-only environment scripts are compiled with.
    pub env: Table,
    run: Function,
    run_with: Function,
    /// Runs a script as a coroutine, for the multi-shard mode.
    run_co: Function,
    /// Switches redis.call/pcall between the direct (one shard) and the
    /// awaiting (several shards) versions.
    use_async: Function,
}

/// This core's Lua state and script cache.
pub(crate) struct Engine {
    pub lua: Lua,
    pub sandbox: Sandbox,
    /// Scripts by sha (lower-case hex).
    scripts: HashMap<[u8; 40], Cached>,
    /// Their bodies' bytes (INFO `used_memory_scripts_eval`).
    scripts_bytes: usize,
    /// How many of `scripts` came from EVAL (`Origin::Eval`): the ones
    /// `lua-eval-cache-limit` bounds.
    evictable: usize,
    /// The cache's use clock: one tick per use of an EVAL script.
    clock: u64,
    /// EVAL scripts by their uses, oldest first: one `(sha, tick)` per
    /// use. Only the entry whose tick is the script's last use counts;
    /// the others are dropped when eviction reaches them, or by `touch`
    /// when they outnumber the live ones (so the queue stays within a
    /// constant factor of the cache, at O(1) per use amortized).
    uses: VecDeque<([u8; 40], u64)>,
    /// EVAL scripts dropped for `lua-eval-cache-limit` since start
    /// (INFO `evicted_scripts`, `kora_scripts_evicted_total`).
    evicted: u64,
}

/// How a script came into the cache (Redis 7.4's rule: only what EVAL
/// cached may be evicted; SCRIPT LOAD is an explicit request to keep it).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Origin {
    /// SCRIPT LOAD: kept until SCRIPT FLUSH.
    Load,
    /// EVAL / EVAL_RO: dropped, least recently used first, once more
    /// than `lua-eval-cache-limit` of them are cached on the core.
    Eval,
}

/// A compiled script in the cache.
struct Cached {
    /// In the Lua registry, not as an mlua `Function`: each of those
    /// holds a slot of mlua's reference stack, which has room for about
    /// 8 000 (past that mlua panics and takes the core down).
    f: RegistryKey,
    /// The body's length in bytes.
    len: usize,
    flags: ScriptFlags,
    origin: Origin,
    /// The cache clock at its last use (EVAL scripts only).
    used: u64,
}

/// The scripting limits of this core (`lua-memory-limit`,
/// `lua-eval-cache-limit`): set from the configuration when the core
/// starts (`configure`) and by CONFIG SET on every core; read when the
/// engine is created and when a script is cached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Limits {
    /// Bytes this core's Lua heap may hold; 0: no limit.
    pub lua_memory: u64,
    /// EVAL scripts this core caches; 0: no limit.
    pub eval_cache: u64,
}

impl Limits {
    /// The configuration's defaults, for engines of threads that were
    /// never configured (unit tests).
    pub(crate) const DEFAULT: Limits = Limits {
        lua_memory: crate::config::DEFAULT_LUA_MEMORY_LIMIT,
        eval_cache: crate::config::DEFAULT_LUA_EVAL_CACHE_LIMIT,
    };
}

thread_local! {
    static LIMITS: Cell<Limits> = const { Cell::new(Limits::DEFAULT) };
}

/// This core's scripting limits.
pub(crate) fn limits() -> Limits {
    LIMITS.with(Cell::get)
}

/// Publishes this core's script cache and Lua heap sizes, if the core
/// has an engine yet (see [`Engine::note_sizes`]).
pub(crate) fn note_sizes(s: &Shard) {
    ENGINE.with(|e| {
        if let Ok(slot) = e.try_borrow()
            && let Some(engine) = slot.as_ref()
        {
            engine.note_sizes(s);
        }
    });
}

/// Sets this core's scripting limits (at the core's start, and by CONFIG
/// SET on every core): the Lua heap's limit applies at once; a lower
/// cache limit evicts EVAL scripts down to it now.
pub(crate) fn configure(limits: Limits) {
    LIMITS.with(|l| l.set(limits));
    ENGINE.with(|e| {
        if let Ok(mut slot) = e.try_borrow_mut()
            && let Some(engine) = slot.as_mut()
        {
            engine.apply(limits);
        }
    });
}

/// Creates a Lua 5.1 state with the libraries Redis 7.0 loads and Kora's
/// sandbox installed.
pub(crate) fn new_state() -> mlua::Result<(Lua, Sandbox)> {
    // SAFETY: `debug` is loaded only so that the sandbox's error handler
    // can keep `debug.getinfo` as a local; scripts never see it (their
    // globals are the sandbox's allow-list, see prelude.lua).
    let lua = unsafe {
        Lua::unsafe_new_with(
            StdLib::TABLE | StdLib::STRING | StdLib::MATH | StdLib::DEBUG,
            LuaOptions::new(),
        )
    };
    open_libraries(&lua)?;
    let sandbox = install(&lua)?;
    Ok((lua, sandbox))
}

/// The `cjson`, `cmsgpack`, `bit` and `struct` libraries.
fn open_libraries(lua: &Lua) -> mlua::Result<()> {
    crate::command::lualib::open(lua)
}

/// Installs the `redis` API, the deterministic `math.random` and the
/// globals protection into `lua` (which must have the base, table, string,
/// math and debug libraries loaded), sets the count hook, and returns the
/// sandbox. Libraries loaded into `lua`'s globals before this call
/// (`cjson`…) are exposed to scripts read-only.
pub(crate) fn install(lua: &Lua) -> mlua::Result<Sandbox> {
    let raw = lua.create_table()?;
    let readonly = lua.create_table()?;
    let weak = lua.create_table()?;
    weak.raw_set("__mode", "k")?;
    readonly.set_metatable(Some(weak))?;
    raw.set("readonly", readonly.clone())?;
    raw.set("call", lua.create_function(raw_call)?)?;
    raw.set(
        "call_raise",
        lua.create_function(|lua, args: MultiValue| {
            let (v, e) = raw_call(lua, args)?;
            match e {
                Value::String(text) => Err(raise(&text.to_string_lossy())),
                _ => Ok(v),
            }
        })?,
    )?;
    raw.set("acall", lua.create_async_function(acall)?)?;
    raw.set(
        "aborting",
        lua.create_function(|_, ()| {
            Ok(CTX.with(|c| c.borrow().as_ref().is_some_and(|c| c.abort.is_some())))
        })?,
    )?;
    raw.set(
        "abort_text",
        lua.create_function(|_, e: Value| Ok(error_value_text(&e)))?,
    )?;
    raw.set(
        "sha1hex",
        lua.create_function(|lua, args: MultiValue| {
            if args.len() != 1 {
                return Err(raise("ERR wrong number of arguments"));
            }
            let bytes: Vec<u8> = match &args[0] {
                Value::String(s) => s.as_bytes().to_vec(),
                Value::Integer(i) => i.to_string().into_bytes(),
                Value::Number(n) => lua_number_text(*n),
                _ => Vec::new(),
            };
            lua.create_string(sha1_hex(&bytes))
        })?,
    )?;
    raw.set(
        "log",
        lua.create_function(|_, args: MultiValue| {
            if args.len() < 2 {
                return Err(raise("ERR redis.log() requires two arguments or more."));
            }
            let Some(level) = as_number(&args[0]) else {
                return Err(raise("ERR First argument must be a number."));
            };
            if !(0.0..=3.0).contains(&level) {
                return Err(raise("ERR Invalid debug level."));
            }
            let mut msg = Vec::new();
            for v in args.iter().skip(1) {
                let part = match v {
                    Value::String(s) => s.as_bytes().to_vec(),
                    Value::Integer(i) => i.to_string().into_bytes(),
                    Value::Number(n) => lua_number_text(*n),
                    _ => continue,
                };
                if !msg.is_empty() {
                    msg.push(b' ');
                }
                msg.extend_from_slice(&part);
            }
            // Kora logs to stderr; DEBUG and VERBOSE are below its level.
            if level >= 2.0 {
                eprintln!("kora: script: {}", String::from_utf8_lossy(&msg));
            }
            Ok(())
        })?,
    )?;
    raw.set(
        "setresp",
        lua.create_function(|_, args: MultiValue| {
            if args.len() != 1 {
                return Err(raise("ERR redis.setresp() requires one argument."));
            }
            match as_number(&args[0]) {
                Some(2.0) => Ok(()),
                // Kora speaks RESP2 only.
                Some(3.0) => Err(raise(
                    "ERR Kora speaks RESP2 only: redis.setresp(3) is not supported.",
                )),
                _ => Err(raise("ERR RESP version must be 2 or 3.")),
            }
        })?,
    )?;
    raw.set(
        "set_repl",
        lua.create_function(|_, args: MultiValue| {
            if args.len() != 1 {
                return Err(raise("ERR redis.set_repl() requires one argument."));
            }
            match as_number(&args[0]) {
                // Kora does not replicate: every valid value is accepted.
                Some(f) if (0.0..=3.0).contains(&f) && f.fract() == 0.0 => Ok(()),
                _ => Err(raise(
                    "ERR Invalid replication flags. Use REPL_AOF, REPL_REPLICA, REPL_ALL or REPL_NONE.",
                )),
            }
        })?,
    )?;
    let ro = readonly.clone();
    raw.set(
        "rawset",
        lua.create_function(move |_, (t, k, v): (Table, Value, Value)| {
            if ro.raw_get::<Value>(t.clone())? != Value::Nil {
                return Err(raise("ERR Attempt to modify a readonly table"));
            }
            t.raw_set(k, v)?;
            Ok(t)
        })?,
    )?;
    let ro = readonly;
    raw.set(
        "setmetatable",
        lua.create_function(move |_, (t, m): (Table, Option<Table>)| {
            if ro.raw_get::<Value>(t.clone())? != Value::Nil {
                return Err(raise("ERR Attempt to modify a readonly table"));
            }
            if let Some(old) = t.metatable()
                && old.raw_get::<Value>("__metatable")? != Value::Nil
            {
                return Err(raise("ERR cannot change a protected metatable"));
            }
            t.set_metatable(m)?;
            Ok(t)
        })?,
    )?;
    raw.set(
        "random",
        lua.create_function(|lua, args: MultiValue| {
            // Lua 5.1's math.random over Redis' rand48.
            let r = (lrand48() % 2_147_483_647) as f64 / 2_147_483_647.0;
            let int = |i: usize| -> mlua::Result<f64> {
                let v = args.get(i).unwrap_or(&Value::Nil);
                as_number(v).map(f64::trunc).ok_or_else(|| {
                    let got = match v {
                        Value::Nil => "no value",
                        other => other.type_name(),
                    };
                    arg_error(lua, i + 1, "random", &format!("number expected, got {got}"))
                })
            };
            match args.len() {
                0 => Ok(r),
                1 => {
                    let u = int(0)?;
                    if u < 1.0 {
                        return Err(arg_error(lua, 1, "random", "interval is empty"));
                    }
                    Ok((r * u).floor() + 1.0)
                }
                2 => {
                    let (l, u) = (int(0)?, int(1)?);
                    if l > u {
                        return Err(arg_error(lua, 2, "random", "interval is empty"));
                    }
                    Ok((r * (u - l + 1.0)).floor() + l)
                }
                _ => Err(raise(&format!(
                    "ERR {}wrong number of arguments",
                    caller(lua)
                ))),
            }
        })?,
    )?;
    raw.set(
        "randomseed",
        lua.create_function(|lua, seed: Value| {
            let Some(n) = as_number(&seed) else {
                let got = match seed {
                    Value::Nil => "no value",
                    ref other => other.type_name(),
                };
                return Err(arg_error(
                    lua,
                    1,
                    "randomseed",
                    &format!("number expected, got {got}"),
                ));
            };
            srand48(n as i32);
            Ok(())
        })?,
    )?;
    let built: Table = lua
        .load(include_str!("prelude.lua"))
        .set_name("=kora_prelude")
        .call((lua.globals(), raw))?;
    lua.set_global_hook(
        HookTriggers::new().every_nth_instruction(HOOK_PERIOD),
        |_, _| hook(),
    )?;
    Ok(Sandbox {
        globals: built.get("G")?,
        env: built.get("env")?,
        run: built.get("run")?,
        run_with: built.get("run_with")?,
        run_co: built.get("run_co")?,
        use_async: built.get("use_async")?,
    })
}

/// Runs `f` with this core's engine, creating it on first use.
pub(crate) fn with_engine<R>(f: impl FnOnce(&mut Engine) -> R) -> R {
    ENGINE.with(|e| {
        let mut slot = e.borrow_mut();
        let engine = slot.get_or_insert_with(|| {
            let (lua, sandbox) = new_state().expect("the Lua sandbox installs");
            let mut engine = Engine {
                lua,
                sandbox,
                scripts: HashMap::new(),
                scripts_bytes: 0,
                evictable: 0,
                clock: 0,
                uses: VecDeque::new(),
                evicted: 0,
            };
            // After the sandbox is in: a limit below what it needs makes
            // scripts fail, never the engine's creation.
            engine.apply(limits());
            engine
        });
        f(engine)
    })
}

/// Compiles `body` as a chunk named `chunkname` ("@user_script" for EVAL)
/// in the sandbox's environment. The error is Lua's message.
pub(crate) fn compile(
    lua: &Lua,
    sandbox: &Sandbox,
    body: &[u8],
    chunkname: &str,
) -> Result<Function, String> {
    let attempt = || {
        lua.load(body)
            .set_name(chunkname)
            .set_mode(ChunkMode::Text)
            .set_environment(sandbox.env.clone())
            .into_function()
    };
    let compiled = match attempt() {
        // Lua 5.1 collects no garbage when an allocation fails: what a
        // script left behind may be all that stands in the way.
        Err(mlua::Error::MemoryError(_)) => {
            collect_garbage(lua);
            attempt()
        }
        other => other,
    };
    compiled.map_err(|e| match e {
        mlua::Error::SyntaxError { message, .. } => message,
        mlua::Error::MemoryError(_) => OUT_OF_MEMORY.to_string(),
        other => other.to_string(),
    })
}

/// What a script gets when its core's Lua heap reaches `lua-memory-limit`
/// (Redis has no such limit, so no text to follow).
const OUT_OF_MEMORY: &str = "not enough memory: the Lua heap reached lua-memory-limit";

/// A script's `#!lua flags=...` (Redis 7.0). Without a shebang a script
/// runs in compatibility mode: it may write, and only its first write is
/// checked against maxmemory.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct ScriptFlags {
    pub shebang: bool,
    pub no_writes: bool,
    pub allow_oom: bool,
}

/// Parses a body's shebang line, as Redis 7.0 (texts included); returns
/// the flags and the code to compile: the body from the end of the
/// shebang line on, so that line numbers stay the body's.
pub(crate) fn shebang(body: &[u8]) -> Result<(ScriptFlags, &[u8]), String> {
    if !body.starts_with(b"#!") {
        return Ok((ScriptFlags::default(), body));
    }
    let Some(end) = body.iter().position(|&b| b == b'\n') else {
        return Err("ERR Invalid script shebang".into());
    };
    let words = crate::protocol::parser::split_words(&body[..end]).unwrap_or_default();
    let mut parts = words.iter().map(|w| String::from_utf8_lossy(w));
    let Some(engine) = parts.next() else {
        return Err("ERR Invalid engine in script shebang".into());
    };
    if engine != "#!lua" {
        return Err(format!("ERR Unexpected engine in script shebang: {engine}"));
    }
    let mut flags = ScriptFlags {
        shebang: true,
        ..ScriptFlags::default()
    };
    for part in parts {
        let Some(list) = part.strip_prefix("flags=") else {
            return Err(format!("ERR Unknown lua shebang option: {part}"));
        };
        // As Redis' sdssplitlen: `flags=` names none, `a,,b` an empty one.
        for flag in list.split(',').filter(|_| !list.is_empty()) {
            match flag {
                "no-writes" => flags.no_writes = true,
                "allow-oom" => flags.allow_oom = true,
                // Replication, cluster and stale-replica flags: nothing
                // to do on a standalone Kora.
                "allow-stale" | "no-cluster" | "allow-cross-slot-keys" => {}
                other => return Err(format!("ERR Unexpected flag in script shebang: {other}")),
            }
        }
    }
    Ok((flags, &body[end..]))
}

/// Whether [`Engine::load`] changed this core's cache: compiled a body it
/// did not have, or made an EVAL-cached one permanent (SCRIPT LOAD). A
/// change here is what must be sent to the other cores (each keeps its
/// own cache; SCRIPT FLUSH empties all).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Fresh {
    New,
    Known,
}

impl Engine {
    /// Caches a script (compiling it if it is not cached yet) as `origin`
    /// asks; its sha, and whether this core's cache changed. A cached
    /// EVAL script counts as used.
    pub(crate) fn load(
        &mut self,
        body: &[u8],
        origin: Origin,
    ) -> Result<([u8; 40], Fresh), String> {
        let sha = sha1_hex(body);
        if let Some(cached) = self.scripts.get_mut(&sha) {
            if origin == Origin::Eval {
                self.touch(&sha);
            } else if cached.origin == Origin::Eval {
                cached.origin = Origin::Load;
                self.evictable -= 1;
                return Ok((sha, Fresh::New));
            }
            return Ok((sha, Fresh::Known));
        }
        let (flags, code) = shebang(body)?;
        let f = compile(&self.lua, &self.sandbox, code, "@user_script")
            .and_then(|f| {
                self.lua
                    .create_registry_value(f)
                    .map_err(|_| OUT_OF_MEMORY.to_string())
            })
            .map_err(|m| format!("ERR Error compiling script (new function): {m}"))?;
        if origin == Origin::Eval {
            let limit = limits().eval_cache;
            if limit != 0 {
                // Room for this one first, so the cache never holds more.
                self.evict_to(limit - 1);
            }
            self.evictable += 1;
        }
        let cached = Cached {
            f,
            len: body.len(),
            flags,
            origin,
            used: 0,
        };
        self.scripts.insert(sha, cached);
        self.touch(&sha);
        self.scripts_bytes += body.len();
        Ok((sha, Fresh::New))
    }

    /// Applies `limits` to this engine (see [`configure`]).
    fn apply(&mut self, limits: Limits) {
        let bytes = usize::try_from(limits.lua_memory).unwrap_or(usize::MAX);
        // Fails only for a Lua state without Kora's allocator, which
        // `new_state` never makes.
        let _ = self.lua.set_memory_limit(bytes);
        if limits.eval_cache != 0 {
            self.evict_to(limits.eval_cache);
        }
    }

    /// Records a use of the cached script `sha` (EVAL scripts only: the
    /// others are never evicted).
    fn touch(&mut self, sha: &[u8; 40]) {
        let Some(cached) = self.scripts.get_mut(sha) else {
            return;
        };
        if cached.origin != Origin::Eval {
            return;
        }
        self.clock += 1;
        cached.used = self.clock;
        self.uses.push_back((*sha, self.clock));
        if self.uses.len() > 2 * self.evictable + 64 {
            let scripts = &self.scripts;
            self.uses
                .retain(|(sha, tick)| scripts.get(sha).is_some_and(|c| c.used == *tick));
        }
    }

    /// Drops the least recently used EVAL scripts until at most `keep`
    /// remain.
    fn evict_to(&mut self, keep: u64) {
        let before = self.evicted;
        while self.evictable as u64 > keep {
            let Some((sha, tick)) = self.uses.pop_front() else {
                break;
            };
            let last_use = self
                .scripts
                .get(&sha)
                .is_some_and(|c| c.origin == Origin::Eval && c.used == tick);
            if last_use && let Some(gone) = self.scripts.remove(&sha) {
                self.scripts_bytes -= gone.len;
                self.evictable -= 1;
                self.evicted += 1;
            }
        }
        if self.evicted != before {
            // Lets the registry drop the evicted functions now rather than
            // when their slots are reused.
            self.lua.expire_registry_values();
        }
    }

    /// A cached script, counted as used (the eviction order).
    pub(crate) fn script(&mut self, sha: &[u8]) -> Option<Function> {
        let sha: &[u8; 40] = sha.try_into().ok()?;
        let f = self.lua.registry_value(&self.scripts.get(sha)?.f).ok()?;
        self.touch(sha);
        Some(f)
    }

    /// A cached script's shebang flags.
    pub(crate) fn flags(&self, sha: &[u8]) -> Option<ScriptFlags> {
        let sha: &[u8; 40] = sha.try_into().ok()?;
        self.scripts.get(sha).map(|c| c.flags)
    }

    pub(crate) fn has(&self, sha: &[u8]) -> bool {
        <&[u8; 40]>::try_from(sha).is_ok_and(|sha| self.scripts.contains_key(sha))
    }

    /// SCRIPT FLUSH on this core.
    pub(crate) fn flush(&mut self) {
        self.scripts.clear();
        self.scripts_bytes = 0;
        self.evictable = 0;
        self.uses.clear();
        self.lua.expire_registry_values();
        let _ = self.lua.gc_collect();
    }

    /// Publishes this core's script cache and Lua heap sizes to its
    /// instruments (INFO memory, /metrics).
    pub(crate) fn note_sizes(&self, s: &Shard) {
        let stats = &s.metrics().stats;
        stats.scripts_cached.set(self.scripts.len() as u64);
        stats.scripts_bytes.set(self.scripts_bytes as u64);
        stats.scripts_evicted.set(self.evicted);
        stats.lua_memory_bytes.set(self.lua.used_memory() as u64);
    }
}

// ---- Running ----

/// How the function receives KEYS and ARGV.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Style {
    /// EVAL: as the globals `KEYS` and `ARGV`.
    Globals,
    /// FCALL: as its two arguments, `f(keys, args)`.
    Args,
}

/// Finds the function to run in the engine of the core that runs it.
pub(crate) type Finder = fn(&mut Engine, &[u8]) -> Option<Function>;

/// One script run, sent to the core that runs it (see
/// `crate::command::scripting` for the API).
pub(crate) struct Invocation {
    /// Looks the function up on the running core by `name`.
    pub finder: Finder,
    pub name: Box<[u8]>,
    /// Shown in error replies: `... script: <label>, on @user_script:1.`
    pub label: Box<str>,
    /// The reply when the finder finds nothing (`-NOSCRIPT ...`).
    pub missing: &'static str,
    pub style: Style,
    pub keys: Vec<Box<[u8]>>,
    pub argv: Vec<Box<[u8]>>,
    pub read_only: bool,
    /// Refused with OOM before it runs when the shard is over maxmemory
    /// (scripts with a shebang and without `no-writes`/`allow-oom`).
    pub deny_oom: bool,
    /// Its writes are never refused for memory (`allow-oom`).
    pub allow_oom: bool,
    /// EVAL's body: compiled on the running core if its cache has
    /// dropped the script since the connection's core looked
    /// (`lua-eval-cache-limit`), so EVAL never answers NOSCRIPT.
    pub body: Option<Box<[u8]>>,
}

impl Invocation {
    /// A run of the function `finder` finds under `name`, read-write, with
    /// `-NOSCRIPT` when it is missing. Set the other fields after (new
    /// fields get defaults here, so callers of `new` keep compiling).
    pub(crate) fn new(
        finder: Finder,
        name: &[u8],
        label: &str,
        style: Style,
        keys: Vec<Box<[u8]>>,
        argv: Vec<Box<[u8]>>,
    ) -> Invocation {
        Invocation {
            finder,
            name: name.into(),
            label: label.into(),
            missing: NOSCRIPT,
            style,
            keys,
            argv,
            read_only: false,
            deny_oom: false,
            allow_oom: false,
            body: None,
        }
    }

    /// The function to run, on the running core's `engine`.
    fn find(&self, engine: &mut Engine) -> Option<Function> {
        if let Some(f) = (self.finder)(engine, &self.name) {
            return Some(f);
        }
        let body = self.body.as_deref()?;
        let (sha, _) = engine.load(body, Origin::Eval).ok()?;
        engine.script(&sha)
    }
}

/// What a run produced: its RESP2 reply (counted in the `kora_script_*`
/// metrics of the core that ran it).
pub(crate) struct Outcome {
    pub reply: Vec<u8>,
}

/// Runs `inv` on this core's shard `s`, synchronously: called inside an op
/// on `s` (`coord::on`), so nothing else runs on this core meanwhile.
pub(crate) fn run_here(s: &Shard, inv: Invocation) -> Outcome {
    let started = Instant::now();
    let mut reply = Vec::new();
    with_engine(|engine| {
        let Some(f) = inv.find(engine) else {
            reply.error(inv.missing);
            return;
        };
        let lua = engine.lua.clone();
        let sb = engine.sandbox.clone();
        let built = (|| -> mlua::Result<(Table, Table)> {
            Ok((sequence(&lua, &inv.keys)?, sequence(&lua, &inv.argv)?))
        })();
        let Ok((keys, argv)) = built else {
            return out_of_memory(&lua, &inv.label, &mut reply);
        };
        let pre_oom = !inv.allow_oom && {
            let mut db = s.db();
            db.over_budget() && !db.admit_write()
        };
        if pre_oom && inv.deny_oom {
            reply.error(crate::store::evict::OOM);
            return;
        }
        CTX.with(|c| {
            *c.borrow_mut() = Some(RunCtx {
                shard: s as *const Shard,
                read_only: inv.read_only,
                wrote: false,
                pre_oom,
                start: started,
                busy: false,
                abort: None,
                nshards: s.nshards(),
                routing: s.routing(),
                spread: None,
                cluster: cluster_view(s),
            })
        });
        let _guard = CtxGuard(s.id());
        let result = match inv.style {
            Style::Globals => {
                let _ = sb.globals.raw_set("KEYS", keys);
                let _ = sb.globals.raw_set("ARGV", argv);
                sb.run.call::<MultiValue>(f)
            }
            Style::Args => sb.run_with.call::<MultiValue>((f, keys, argv)),
        };
        finish(&lua, result, &inv.label, &mut reply);
        collect_if_large(&lua);
        engine.note_sizes(s);
    });
    outcome(s, reply, started)
}

/// Counts a finished run in `s`'s instruments (kora_script_*).
fn outcome(s: &Shard, reply: Vec<u8>, started: Instant) -> Outcome {
    let failed = reply.first() == Some(&b'-');
    let nanos = started.elapsed().as_nanos() as u64;
    let stats = &s.metrics().stats;
    stats.script_calls.add(1);
    stats.script_nanos.add(nanos);
    if failed {
        stats.script_errors.add(1);
    }
    Outcome { reply }
}

fn sequence(lua: &Lua, items: &[Box<[u8]>]) -> mlua::Result<Table> {
    let t = lua.create_table_with_capacity(items.len(), 0)?;
    for (i, item) in items.iter().enumerate() {
        t.raw_set(i + 1, lua.create_string(item)?)?;
    }
    Ok(t)
}

/// The reply of a finished run: its first result converted, or its error
/// as Redis 7.0 words it (`-<err> script: <label>, on <source>:<line>.`).
///
/// A run that ran out of Lua heap (`lua-memory-limit`) ends with
/// `-ERR not enough memory: … script: <label>`, and its garbage is
/// collected at once: Lua 5.1 does not collect when an allocation fails,
/// so the next script would otherwise fail on what this one left.
fn finish(lua: &Lua, result: mlua::Result<MultiValue>, label: &str, out: &mut Vec<u8>) {
    let mut values = match result {
        Ok(v) => v.into_iter(),
        Err(mlua::Error::MemoryError(_)) => return out_of_memory(lua, label, out),
        Err(e) => return out.error(&format!("ERR {}", e)),
    };
    let ok = matches!(values.next(), Some(Value::Boolean(true)));
    let first = values.next().unwrap_or(Value::Nil);
    if ok {
        return lua_to_resp(&first, out, 0);
    }
    let t = match first {
        Value::Table(t) => t,
        // A memory error skips the error handler (Lua 5.1 calls none for
        // LUA_ERRMEM): Lua's own text comes back as is.
        Value::String(s) if s.as_bytes().as_ref() == b"not enough memory" => {
            return out_of_memory(lua, label, out);
        }
        _ => return out.error("ERR execution failure"),
    };
    let err: String = t
        .raw_get::<mlua::String>("err")
        .map(|s| String::from_utf8_lossy(&s.as_bytes()).into_owned())
        .unwrap_or_else(|_| "ERR execution failure".into());
    let source: Option<String> = t.raw_get("source").ok();
    let line: Option<i64> = t.raw_get("line").ok();
    match (source, line) {
        (Some(source), Some(line)) => {
            out.error(&format!("{err} script: {label}, on {source}:{line}."))
        }
        _ => out.error(&err),
    }
}

fn out_of_memory(lua: &Lua, label: &str, out: &mut Vec<u8>) {
    collect_garbage(lua);
    out.error(&format!("ERR {OUT_OF_MEMORY} script: {label}"));
}

/// After a run: a heap past half its limit is collected at once, so that
/// what one script left (a caught memory error, a large reply's tables)
/// does not make the next one fail. Costs only runs that left that much.
fn collect_if_large(lua: &Lua) {
    let limit = limits().lua_memory;
    if limit != 0 && lua.used_memory() as u64 > limit / 2 {
        collect_garbage(lua);
    }
}

/// A full garbage collection with the heap limit lifted while it runs: a
/// collection allocates too (it shrinks the string table into a new
/// one), and at the limit that allocation would abort it.
fn collect_garbage(lua: &Lua) {
    let limit = lua.set_memory_limit(0).unwrap_or(0);
    let _ = lua.gc_collect();
    let _ = lua.set_memory_limit(limit);
}

/// An error raised by Kora's Rust functions (redis.call, redis.log…): its
/// text is the error reply's, code included ("ERR ...", "WRONGTYPE ...").
#[derive(Debug)]
struct ScriptError(String);

impl std::fmt::Display for ScriptError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ScriptError {}

/// "user_script:3: " for the Lua function calling the running Rust one,
/// as luaL_where(L, 1) writes it.
fn caller(lua: &Lua) -> String {
    lua.inspect_stack(1, |d| {
        let line = d.current_line();
        let src = d.source().short_src.map(|s| s.into_owned());
        match (src, line) {
            (Some(src), Some(line)) if line > 0 => format!("{src}:{line}: "),
            _ => String::new(),
        }
    })
    .unwrap_or_default()
}

/// luaL_argerror's text, with the caller's position.
fn arg_error(lua: &Lua, n: usize, fname: &str, msg: &str) -> mlua::Error {
    raise(&format!(
        "ERR {}bad argument #{n} to '{fname}' ({msg})",
        caller(lua)
    ))
}

fn raise(text: &str) -> mlua::Error {
    mlua::Error::external(ScriptError(text.to_string()))
}

/// The text of an error value that is not a Lua table or string: a
/// pending abort (SCRIPT KILL, shutdown), a `ScriptError`, or another
/// mlua error (then with ERR).
fn error_value_text(e: &Value) -> String {
    if let Some(text) = CTX.with(|c| c.borrow().as_ref().and_then(|c| c.abort)) {
        return text.to_string();
    }
    match e {
        Value::Error(e) => match root_error(e) {
            mlua::Error::ExternalError(inner) => match inner.downcast_ref::<ScriptError>() {
                Some(ScriptError(text)) => text.clone(),
                None => format!("ERR {inner}"),
            },
            mlua::Error::RuntimeError(m) => format!("ERR {m}"),
            other => format!("ERR {other}"),
        },
        Value::String(s) => format!("ERR {}", s.to_string_lossy()),
        other => format!("ERR {other:?}"),
    }
}

fn root_error(e: &mlua::Error) -> &mlua::Error {
    match e {
        mlua::Error::CallbackError { cause, .. } => root_error(cause),
        other => other,
    }
}

fn as_number(v: &Value) -> Option<f64> {
    match v {
        Value::Integer(i) => Some(*i as f64),
        Value::Number(n) => Some(*n),
        Value::String(s) => std::str::from_utf8(&s.as_bytes()).ok()?.trim().parse().ok(),
        _ => None,
    }
}

/// A number as Lua's tostring writes it (`%.14g`).
fn lua_number_text(n: f64) -> Vec<u8> {
    printf_g(c"%.14g", n)
}

// ---- redis.call ----

/// `raw.call(...)`: runs one command for the script; returns its reply as
/// a Lua value, or (nil, error text) — the Lua side (prelude.lua) raises
/// it for `redis.call` and returns it as `{err=...}` for `redis.pcall`.
fn raw_call(lua: &Lua, args: MultiValue) -> mlua::Result<(Value, Value)> {
    let (buf, ranges) = match encode_args(&args) {
        Ok(parts) => parts,
        Err(text) => return fail(lua, text),
    };
    let args = Args::new(&buf, &ranges);
    let reply = CTX.with(|c| {
        let mut c = c.borrow_mut();
        let ctx = c.as_mut().expect("redis.call runs inside a script");
        // SAFETY: the pointer was set by `run_here` from the `&Shard` it
        // runs on, and the context is cleared before that call returns.
        let shard = unsafe { &*ctx.shard };
        match plan(shard.id(), ctx, &args, |owner| owner == shard.id())? {
            Plan::Answered(reply) => Ok(reply),
            Plan::Run { handler, spec, .. } => Ok(run_handler(shard, spec, handler, &args)),
            // Only reachable with several shards held (the async path).
            Plan::Spread(_) => Err(UNDECLARED.to_string()),
        }
    });
    reply_to_lua(lua, reply)
}

fn fail(lua: &Lua, text: &str) -> mlua::Result<(Value, Value)> {
    Ok((Value::Nil, Value::String(lua.create_string(text)?)))
}

/// A command's reply (or a refusal) as redis.call's two results.
fn reply_to_lua(lua: &Lua, reply: Result<Vec<u8>, String>) -> mlua::Result<(Value, Value)> {
    match reply {
        Err(text) => fail(lua, &text),
        Ok(reply) if reply.first() == Some(&b'-') => {
            let text =
                String::from_utf8_lossy(&reply[1..reply.len().saturating_sub(2)]).into_owned();
            fail(lua, &error_code_text(&text))
        }
        Ok(reply) => {
            let mut pos = 0;
            Ok((resp_to_lua(lua, &reply, &mut pos)?, Value::Nil))
        }
    }
}

type ArgBuf = (Vec<u8>, Vec<crate::protocol::parser::ArgRange>);

/// redis.call's arguments as a command: strings as they are, numbers as
/// Redis 7.0 formats them (`%.17g`), anything else refused.
fn encode_args(args: &MultiValue) -> Result<ArgBuf, &'static str> {
    if args.is_empty() {
        return Err(NO_ARGS);
    }
    let mut buf = Vec::new();
    let mut ranges = Vec::with_capacity(args.len());
    for v in args.iter() {
        let start = buf.len();
        match v {
            Value::String(s) => buf.extend_from_slice(&s.as_bytes()),
            Value::Integer(i) => buf.extend_from_slice(i.to_string().as_bytes()),
            Value::Number(n) => buf.extend_from_slice(&format_number(*n)),
            _ => return Err(BAD_ARG),
        }
        ranges.push((start, buf.len()));
    }
    Ok((buf, ranges))
}

/// Redis' error table text: "CODE message"; a message without a code
/// gets ERR.
fn error_code_text(text: &str) -> String {
    let text = text.trim_end_matches(['\r', '\n']);
    if text.contains(' ') {
        text.to_string()
    } else {
        format!("ERR {text}")
    }
}

/// Where and how one command of a script runs.
enum Plan {
    /// Answered without a shard (PING, TIME…).
    Answered(Vec<u8>),
    /// Its handler on shard `target`.
    Run {
        target: usize,
        spec: &'static crate::command::CommandSpec,
        handler: crate::command::Handler,
    },
    /// A multi-key command over several held shards.
    Spread(&'static crate::command::CommandSpec),
}

/// Checks one command of a script (Redis 7.0's checks and texts, then
/// Kora's key rule: every key on a shard the script holds) and says where
/// it runs. `here` is the core the script runs on.
fn plan(
    here: usize,
    ctx: &mut RunCtx,
    args: &Args,
    holds: impl Fn(usize) -> bool,
) -> Result<Plan, String> {
    let spec = lookup(args.get(0)).ok_or(UNKNOWN)?;
    if !spec.arity_ok(args.len()) {
        return Err(ARITY.into());
    }
    if NOSCRIPT_COMMANDS.contains(&spec.name) || spec.flags.contains(&"noscript") {
        return Err(NOT_ALLOWED.into());
    }
    let write = spec.flags.contains(&"write");
    if write && ctx.read_only {
        return Err(RO_WRITE.into());
    }
    if spec.denyoom && ctx.pre_oom && !ctx.wrote {
        return Err(crate::store::evict::OOM.into());
    }
    let (handler, spread) = match spec.kind {
        Kind::Keyed(h) => (h, false),
        Kind::Multi { whole, .. } => {
            if spec.key_step > 1 && !(args.len() - 1).is_multiple_of(spec.key_step as usize) {
                return Err(ARITY.into());
            }
            (whole, true)
        }
        Kind::Conn(Conn::Local(_) | Conn::Async(_)) => {
            return conn_command(spec.name, args).map(Plan::Answered);
        }
    };
    if let Some((topology, me)) = &ctx.cluster
        && crate::coord::key_args(spec.keys(), args)
            .any(|k| me.is_none() || topology.owner(crate::cluster::key_slot(k)) != *me)
    {
        return Err(NON_LOCAL.into());
    }
    let (nshards, routing) = (ctx.nshards, ctx.routing);
    let mut owners = crate::coord::key_args(spec.keys(), args).map(|k| routing.shard(k, nshards));
    let target = owners.next().unwrap_or(here);
    let mut several = false;
    if !holds(target) {
        return Err(UNDECLARED.into());
    }
    for owner in owners {
        if !holds(owner) {
            return Err(UNDECLARED.into());
        }
        several |= owner != target;
    }
    if write {
        ctx.wrote = true;
        if ctx.busy
            && let Some(slot) = slot(here)
        {
            slot.wrote.store(true, Ordering::SeqCst);
        }
    }
    if several && spread {
        return Ok(Plan::Spread(spec));
    }
    Ok(Plan::Run {
        target,
        spec,
        handler,
    })
}

/// Runs a command's handler on `s`, timed in `s`'s commandstats.
fn run_handler(
    s: &Shard,
    spec: &'static crate::command::CommandSpec,
    handler: crate::command::Handler,
    args: &Args,
) -> Vec<u8> {
    let mut out = Vec::new();
    // A fresh start (the chained stamp would count the Lua code before
    // this command as its time).
    s.metrics().forget_stamp();
    let mut timer = CommandTimer::start(s.metrics(), crate::command::table::slot_of(spec, args));
    handler(&mut s.db(), args, &mut out);
    timer.set_reply(&out);
    drop(timer);
    // As Redis, the slow log shows the script (EVAL), not the commands it
    // ran; a pending entry would be logged under the next command here.
    let _ = s.metrics().take_slow();
    out
}

/// `raw.acall(...)`: redis.call in the multi-shard mode, an async
/// function: a command on another held shard awaits a hop there (the
/// shards are locked for the script's transaction, so the hop passes and
/// nobody else runs there meanwhile).
async fn acall(lua: Lua, args: MultiValue) -> mlua::Result<(Value, Value)> {
    let (buf, ranges) = match encode_args(&args) {
        Ok(parts) => parts,
        Err(text) => return fail(&lua, text),
    };
    drop(args);
    let planned = CTX.with(|c| {
        let mut c = c.borrow_mut();
        let ctx = c.as_mut().expect("redis.call runs inside a script");
        let (shard, held, tx) = ctx.spread.clone().expect("the multi-shard mode");
        let args = Args::new(&buf, &ranges);
        plan(shard.id(), ctx, &args, |owner| {
            held.binary_search(&owner).is_ok()
        })
        .map(|p| (p, shard, tx))
    });
    let reply = match planned {
        Err(text) => Err(text),
        Ok((Plan::Answered(reply), _, _)) => Ok(reply),
        Ok((
            Plan::Run {
                target,
                spec,
                handler,
            },
            shard,
            _,
        )) if target == shard.id() => Ok(run_handler(
            &shard,
            spec,
            handler,
            &Args::new(&buf, &ranges),
        )),
        Ok((
            Plan::Run {
                target,
                spec,
                handler,
            },
            shard,
            _,
        )) => {
            let op = move |s: &Shard| run_handler(s, spec, handler, &Args::new(&buf, &ranges));
            crate::coord::on(&shard, target, op)
                .await
                .ok_or_else(|| crate::command::keys::SHARD_GONE.to_string())
        }
        Ok((Plan::Spread(spec), shard, tx)) => {
            let Kind::Multi { spread, .. } = spec.kind else {
                unreachable!("Plan::Spread is made for multi-key commands")
            };
            let args = Args::new(&buf, &ranges);
            let mut out = Vec::new();
            shard.metrics().forget_stamp();
            let mut timer =
                CommandTimer::start(shard.metrics(), crate::command::table::slot_of(spec, &args));
            spread(&shard, tx, &args, &mut out).await;
            timer.set_reply(&out);
            drop(timer);
            let _ = shard.metrics().take_slow();
            Ok(out)
        }
    };
    reply_to_lua(&lua, reply)
}

/// Restores the direct redis.call when a multi-shard run ends.
struct AsyncModeGuard(Function);

impl Drop for AsyncModeGuard {
    fn drop(&mut self) {
        let _ = self.0.call::<()>(false);
    }
}

/// Runs `inv` on the connection's core while the script's transaction
/// `tx` holds `held` (ascending; the connection's own shard among them):
/// the multi-shard mode. The script is a coroutine; a redis.call on
/// another held shard awaits a hop. Nothing else runs Lua on this core
/// meanwhile: every other script bound to this core waits for the lock on
/// its shard, which this script holds.
pub(crate) async fn run_spread(
    shard: &Rc<Shard>,
    tx: u64,
    held: Vec<usize>,
    pre_oom: bool,
    inv: Invocation,
) -> Outcome {
    let started = Instant::now();
    let mut reply = Vec::new();
    let found = with_engine(|engine| {
        let f = inv.find(engine)?;
        Some((engine.lua.clone(), engine.sandbox.clone(), f))
    });
    let Some((lua, sb, f)) = found else {
        reply.error(inv.missing);
        return outcome(shard, reply, started);
    };
    let built = (|| -> mlua::Result<(Table, Table)> {
        Ok((sequence(&lua, &inv.keys)?, sequence(&lua, &inv.argv)?))
    })();
    let Ok((keys, argv)) = built else {
        out_of_memory(&lua, &inv.label, &mut reply);
        return outcome(shard, reply, started);
    };
    let pre_oom = pre_oom && !inv.allow_oom;
    if pre_oom && inv.deny_oom {
        reply.error(crate::store::evict::OOM);
        return outcome(shard, reply, started);
    }
    CTX.with(|c| {
        *c.borrow_mut() = Some(RunCtx {
            shard: Rc::as_ptr(shard),
            read_only: inv.read_only,
            wrote: false,
            pre_oom,
            start: started,
            busy: false,
            abort: None,
            nshards: shard.nshards(),
            routing: shard.routing(),
            spread: Some((shard.clone(), held, tx)),
            cluster: cluster_view(shard),
        })
    });
    let _guard = CtxGuard(shard.id());
    let _ = sb.use_async.call::<()>(true);
    let _mode = AsyncModeGuard(sb.use_async.clone());
    let globals = inv.style == Style::Globals;
    if globals {
        let _ = sb.globals.raw_set("KEYS", keys.clone());
        let _ = sb.globals.raw_set("ARGV", argv.clone());
    }
    let result = sb
        .run_co
        .call_async::<MultiValue>((f, keys, argv, globals))
        .await;
    finish(&lua, result, &inv.label, &mut reply);
    collect_if_large(&lua);
    with_engine(|e| e.note_sizes(shard));
    outcome(shard, reply, started)
}

/// The connection-level commands a script may run: those that need no
/// connection and no other shard.
fn conn_command(name: &str, args: &Args) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    match name {
        "ping" => match args.len() {
            1 => out.simple("PONG"),
            _ => out.bulk(args.get(1)),
        },
        "echo" => out.bulk(args.get(1)),
        "time" => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            out.array(2);
            out.bulk(now.as_secs().to_string().as_bytes());
            out.bulk(now.subsec_micros().to_string().as_bytes());
        }
        "select" => match args.int(1) {
            Ok(0) => out.ok(),
            Ok(_) => out.error("ERR DB index is out of range"),
            Err(e) => out.error(e),
        },
        _ => return Err(NOT_IN_SCRIPT.into()),
    }
    Ok(out)
}

// ---- Conversions ----

/// A Lua number as Redis 7.0 passes it to a command: `%.17g`.
pub(crate) fn format_number(n: f64) -> Vec<u8> {
    printf_g(c"%.17g", n)
}

fn printf_g(format: &std::ffi::CStr, n: f64) -> Vec<u8> {
    let mut buf = [0u8; 64];
    // SAFETY: snprintf writes at most buf.len() bytes, NUL included, and
    // the format takes exactly one double.
    let len = unsafe { libc::snprintf(buf.as_mut_ptr().cast(), buf.len(), format.as_ptr(), n) };
    buf[..(len.max(0) as usize).min(buf.len() - 1)].to_vec()
}

/// A Lua number as a RESP integer: truncated, as C's cast on x86 (NaN and
/// out-of-range values give i64::MIN).
fn number_to_int(n: f64) -> i64 {
    // 2^63: i64's range as doubles.
    const LIMIT: f64 = 9_223_372_036_854_775_808.0;
    if n.is_nan() || !(-LIMIT..LIMIT).contains(&n) {
        i64::MIN
    } else {
        n as i64
    }
}

/// Nesting deeper than this is answered with an error, not a stack
/// overflow (a table may even contain itself).
const MAX_DEPTH: usize = 1000;

/// A script's result as RESP2, as Redis documents: strings are bulk,
/// numbers integers (truncated), true is 1, false and nil are nil, a table
/// with `err` is an error, with `ok` a status, else an array up to its
/// first nil.
pub(crate) fn lua_to_resp(v: &Value, out: &mut Vec<u8>, depth: usize) {
    match v {
        Value::String(s) => out.bulk(&s.as_bytes()),
        Value::Integer(i) => out.int(*i),
        Value::Number(n) => out.int(number_to_int(*n)),
        Value::Boolean(true) => out.int(1),
        Value::Table(t) => {
            if depth >= MAX_DEPTH {
                return out.error("ERR reached lua stack limit");
            }
            if let Ok(Value::String(e)) = t.raw_get::<Value>("err") {
                return out.error(&String::from_utf8_lossy(&e.as_bytes()));
            }
            if let Ok(Value::String(s)) = t.raw_get::<Value>("ok") {
                return out.simple(&sanitize(&String::from_utf8_lossy(&s.as_bytes())));
            }
            let mut items = Vec::new();
            loop {
                match t.raw_get::<Value>(items.len() + 1) {
                    Ok(Value::Nil) | Err(_) => break,
                    Ok(v) => items.push(v),
                }
            }
            out.array(items.len());
            for item in &items {
                lua_to_resp(item, out, depth + 1);
            }
        }
        _ => out.nil(),
    }
}

fn sanitize(s: &str) -> String {
    s.replace(['\r', '\n'], " ")
}

/// A command's RESP2 reply as a Lua value, as Redis documents: integers
/// are numbers, bulk strings strings, nil false, a status `{ok=...}`, an
/// error `{err=...}`, arrays tables.
fn resp_to_lua(lua: &Lua, buf: &[u8], pos: &mut usize) -> mlua::Result<Value> {
    let line_end = |from: usize| -> usize {
        memchr::memchr(b'\r', &buf[from..]).map_or(buf.len(), |i| from + i)
    };
    let kind = buf.get(*pos).copied().unwrap_or(b'$');
    let end = line_end(*pos + 1);
    let line = &buf[(*pos + 1).min(end)..end];
    *pos = end + 2;
    let number = || crate::protocol::parser::parse_i64(line).unwrap_or(0);
    Ok(match kind {
        b'+' => {
            let t = lua.create_table()?;
            t.raw_set("ok", lua.create_string(line)?)?;
            Value::Table(t)
        }
        b'-' => {
            let t = lua.create_table()?;
            let text = error_code_text(&String::from_utf8_lossy(line));
            t.raw_set("err", lua.create_string(text)?)?;
            Value::Table(t)
        }
        b':' => Value::Integer(number()),
        b'$' => {
            let n = number();
            if n < 0 {
                Value::Boolean(false)
            } else {
                let start = *pos;
                let stop = (start + n as usize).min(buf.len());
                *pos = stop + 2;
                Value::String(lua.create_string(&buf[start..stop])?)
            }
        }
        b'*' => {
            let n = number();
            if n < 0 {
                Value::Boolean(false)
            } else {
                let t = lua.create_table_with_capacity(n as usize, 0)?;
                for i in 0..n as usize {
                    let v = resp_to_lua(lua, buf, pos)?;
                    t.raw_set(i + 1, v)?;
                }
                Value::Table(t)
            }
        }
        _ => Value::Nil,
    })
}

// ---- math.random: Redis' rand48 ----

fn lrand48() -> i64 {
    RAND48.with(|x| {
        let next = (0x5_DEEC_E66D_u64.wrapping_mul(x.get()).wrapping_add(0xB)) & ((1 << 48) - 1);
        x.set(next);
        (next >> 17) as i64
    })
}

fn srand48(seed: i32) {
    RAND48.with(|x| x.set((((seed as u32) as u64) << 16) | 0x330E));
}

// ---- The count hook ----

/// Every `HOOK_PERIOD` instructions: past `busy-reply-threshold` the
/// script is marked busy for other cores (SCRIPT KILL, BUSY replies), and
/// stopped if SCRIPT KILL asked (it has not written) or the server is
/// shutting down. A Lua 5.1 hook cannot yield; it raises an error.
fn hook() -> mlua::Result<VmState> {
    CTX.with(|c| {
        let mut c = c.borrow_mut();
        let Some(ctx) = c.as_mut() else {
            return Ok(VmState::Continue);
        };
        // SAFETY: as in `raw_call`.
        let shard = unsafe { &*ctx.shard };
        let slot = slot(shard.id());
        if !ctx.busy {
            let threshold = busy_threshold_ms(shard);
            if (ctx.start.elapsed().as_millis() as u64) < threshold {
                return Ok(VmState::Continue);
            }
            ctx.busy = true;
            if let Some(slot) = slot {
                slot.wrote.store(ctx.wrote, Ordering::SeqCst);
                slot.busy.store(true, Ordering::SeqCst);
            }
        }
        if ctx.abort.is_none() {
            if slot.is_some_and(|s| s.kill.load(Ordering::SeqCst)) && !ctx.wrote {
                ctx.abort = Some(KILLED);
            } else if shard.shutdown().requested() {
                ctx.abort = Some(SHUTTING_DOWN);
            }
        }
        match ctx.abort {
            Some(text) => Err(mlua::Error::RuntimeError(text.to_string())),
            None => Ok(VmState::Continue),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rand48_matches_redis() {
        // Redis 7.0.15 on a fresh server: math.random() gives these.
        RAND48.with(|x| x.set(0x1234_ABCD_330E));
        let r = (lrand48() % 2147483647) as f64 / 2147483647.0;
        assert!((r - 0.39646477363839).abs() < 1e-12);
        srand48(0);
        let r = (lrand48() % 2147483647) as f64 / 2147483647.0;
        assert!((r - 0.17082803611217).abs() < 1e-12);
    }

    #[test]
    fn numbers_format_like_redis() {
        assert_eq!(format_number(0.1), b"0.10000000000000001");
        assert_eq!(format_number(1e20), b"1e+20");
        assert_eq!(format_number(3.0), b"3");
        assert_eq!(format_number(f64::INFINITY), b"inf");
        assert_eq!(number_to_int(1e300), i64::MIN);
        assert_eq!(number_to_int(-3.99), -3);
    }
}
