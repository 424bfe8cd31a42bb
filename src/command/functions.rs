//! Redis 7.0 Functions: FUNCTION LOAD/DELETE/FLUSH/LIST/DUMP/RESTORE/
//! STATS/KILL/HELP, FCALL and FCALL_RO.
//!
//! This module owns the function library registry. Every core holds its
//! own copy in a thread-local `Registry`: the library table (names,
//! code, functions with their flags and descriptions) and each function's
//! Lua callback, created by running the library's code once in that
//! core's scripting engine state (`scripting::engine`), so a
//! function runs exactly as an EVAL script does.
//!
//! FCALL/FCALL_RO check the function, the key count and the write flag as
//! Redis does, then hand the call to the engine (`scripting::run`): it runs
//! on the core owning the declared keys, atomically, called as
//! `f(KEYS, ARGV)`, read-only for a `no-writes` function or FCALL_RO; the
//! engine looks the function up in the registry of the core that runs it.
//! FUNCTION KILL is SCRIPT KILL (`scripting::script_kill`).
//!
//! The copies stay the same on every core because every change (LOAD,
//! DELETE, FLUSH, RESTORE) is applied to all of them as one step of
//! [`crate::coord::all_at_once`]: every shard is locked in ascending order
//! (as EXEC and FLUSHALL lock them) before any core applies the change, so
//! two changes from two cores are applied in the same order everywhere,
//! and each core's copy computes the same reply. The connection's core
//! first runs the change alone, without the lock (a dry run that changes
//! nothing), so a library that fails to load or loops until the load
//! timeout costs one core, not every core.
//!
//! Loading runs the code as Redis 7.0 does: the library sees only
//! `redis.register_function`, `redis.log`, the `redis.LOG_*` levels and
//! `redis.REDIS_VERSION(_NUM)`; any other global (`redis.call`, `string`,
//! `math`…) fails with Redis' "Script attempted to access nonexistent
//! global variable" error, globals are read-only, and a load running
//! longer than 500 ms is stopped ("FUNCTION LOAD timeout"). Names, flags,
//! shebang (`#!lua name=<lib>`) and every error text are Redis 7.0.15's.
//!
//! FUNCTION DUMP writes Redis' payload: each library as the RDB opcode
//! FUNCTION2 (245) and its code as an RDB string, then RDB version 10 and
//! the CRC64 ([`crate::store::rdb`]); RESTORE reads that, LZF-compressed
//! strings and the pre-GA opcode (246) included, with Redis' FLUSH, APPEND
//! and REPLACE policies.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use indexmap::IndexMap;
use mlua::{Function, HookTriggers, Lua, MultiValue, RegistryKey, Table, Value, VmState};

use super::conn::{ClientState, Flow};
use super::scripting::engine::with_engine;
use super::scripting::{self, Engine, Invocation, Style};
use super::{Args, help_reply, subcommand_arity, unknown_subcommand};
use crate::coord::Shard;
use crate::protocol::reply::Resp;
use crate::store::glob::glob_match_nocase;
use crate::store::rdb;

/// Script flags (Redis' `scripts_flags_def`), in the order FUNCTION LIST
/// prints them.
pub(crate) const FLAG_NO_WRITES: u8 = 1;
pub(crate) const FLAG_ALLOW_OOM: u8 = 2;
pub(crate) const FLAG_ALLOW_STALE: u8 = 4;
pub(crate) const FLAG_NO_CLUSTER: u8 = 8;
pub(crate) const FLAG_ALLOW_CROSS_SLOT: u8 = 16;
const FLAG_NAMES: [(u8, &str); 5] = [
    (FLAG_NO_WRITES, "no-writes"),
    (FLAG_ALLOW_OOM, "allow-oom"),
    (FLAG_ALLOW_STALE, "allow-stale"),
    (FLAG_NO_CLUSTER, "no-cluster"),
    (FLAG_ALLOW_CROSS_SLOT, "allow-cross-slot-keys"),
];

/// How long a library's code may run while it loads (Redis'
/// `LOAD_TIMEOUT_MS`); checked every 100 000 Lua instructions as Redis
/// does.
const LOAD_TIMEOUT: Duration = Duration::from_millis(500);
const LOAD_HOOK_EVERY: u32 = 100_000;

const NAME_RULES: &str = "Library names can only contain letters, numbers, or underscores(_) and must be at least one character long";

/// RDB opcodes of a function library (rdb.h): 7.0 GA writes FUNCTION2
/// (the code alone); the release candidates wrote FUNCTION (name, engine,
/// description and code), which 7.0 still reads.
const OPCODE_FUNCTION_PRE_GA: u8 = 246;
const OPCODE_FUNCTION2: u8 = 245;

/// One registered function.
pub(crate) struct FunctionDef {
    pub name: String,
    pub desc: Option<Vec<u8>>,
    pub flags: u8,
    /// In the Lua registry, not as an mlua `Function`: each of those
    /// holds a slot of mlua's reference stack, which has room for about
    /// 8 000 (past that mlua panics and takes the core down).
    pub callback: RegistryKey,
}

/// One loaded library: its whole code (shebang included, as LIST WITHCODE
/// and DUMP give it back) and its functions in registration order.
pub(crate) struct Library {
    pub name: String,
    pub code: Vec<u8>,
    pub functions: Vec<FunctionDef>,
}

/// Libraries by name (case-sensitive, as Redis) and the function index
/// (case-insensitive, as Redis looks functions up).
#[derive(Default)]
struct Libs {
    libs: IndexMap<String, Library>,
    /// Lower-cased function name → its library's name.
    funcs: HashMap<String, String>,
}

impl Libs {
    fn link(&mut self, lib: Library) {
        for f in &lib.functions {
            self.funcs
                .entry(f.name.to_ascii_lowercase())
                .or_insert_with(|| lib.name.clone());
        }
        self.libs.insert(lib.name.clone(), lib);
    }

    fn unlink(&mut self, name: &str) -> Option<Library> {
        let lib = self.libs.shift_remove(name)?;
        for f in &lib.functions {
            let key = f.name.to_ascii_lowercase();
            if self.funcs.get(&key) == Some(&lib.name) {
                self.funcs.remove(&key);
            }
        }
        Some(lib)
    }

    fn function_count(&self) -> usize {
        self.libs.values().map(|l| l.functions.len()).sum()
    }

    fn owner_of(&self, function: &str) -> Option<&String> {
        self.funcs.get(&function.to_ascii_lowercase())
    }
}

/// FUNCTION RESTORE's policy for libraries that already exist.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Policy {
    Flush,
    Append,
    Replace,
}

/// A Lua state libraries load into: the load environment and the
/// globals of library code.
struct Loader {
    lua: Lua,
    /// The globals table of every library's code: empty, read-only, reads
    /// go to `__index` of `env_meta` (the load API while a library loads,
    /// `run_api` otherwise).
    env: Table,
    env_meta: Table,
    load_api: Table,
    run_api: Table,
    /// Functions registered by the library being loaded; None outside a
    /// load (redis.register_function then fails as in Redis).
    pending: Rc<RefCell<Option<Vec<FunctionDef>>>>,
    /// Whether redis.log writes (only the dry run on the connection's core
    /// logs, so a load logs once, not once per core).
    log: Rc<Cell<bool>>,
    /// Whether loads run under the 500 ms timeout hook.
    timed: bool,
}

/// A core's function registry: its libraries, the Lua state their
/// functions live in (`runner`: the scripting engine's, so FCALL runs them
/// as EVAL runs scripts) and a private state for dry runs (`checker`,
/// whose load-timeout hook cannot disturb the engine's own hook).
pub(crate) struct Registry {
    runner: Loader,
    checker: Loader,
    libs: Libs,
}

thread_local! {
    static REGISTRY: RefCell<Option<Registry>> = const { RefCell::new(None) };
}

/// Runs `f` on this core's registry (created on first use).
pub(crate) fn with_registry<R>(f: impl FnOnce(&mut Registry) -> R) -> R {
    REGISTRY.with(|r| {
        let mut r = r.borrow_mut();
        f(r.get_or_insert_with(Registry::new))
    })
}

/// Lua helpers of the load environment: Redis' error for a missing global
/// (`luaProtectedTableError`), its read-only error, both raised at the
/// caller's line as Redis' C versions raise them.
const HELPERS: &str = r#"
local error, tostring, type, setmetatable = error, tostring, type, setmetatable
local function missing(_, k)
  if type(k) ~= "string" and type(k) ~= "number" then
    error("Second argument to luaProtectedTableError must be a string or number", 2)
  end
  error("Script attempted to access nonexistent global variable '" .. tostring(k) .. "'", 2)
end
local function readonly()
  error("Attempt to modify a readonly table", 2)
end
local function view(fields)
  setmetatable(fields, {__index = missing, __newindex = readonly, __metatable = false})
  return setmetatable({}, {__index = fields, __newindex = readonly, __metatable = false})
end
return missing, readonly, view
"#;

impl Registry {
    fn new() -> Registry {
        let (lua, run_api) = runtime();
        let checker = Lua::new();
        let globals = checker.globals();
        Registry {
            runner: Loader::build(lua, run_api, false).expect("the functions Lua state builds"),
            checker: Loader::build(checker, globals, true).expect("the functions Lua state builds"),
            libs: Libs::default(),
        }
    }

    /// The function called `name` (case-insensitive), if loaded.
    pub(crate) fn function(&self, name: &[u8]) -> Option<&FunctionDef> {
        let name = std::str::from_utf8(name).ok()?;
        let lib = self.libs.libs.get(self.libs.owner_of(name)?)?;
        lib.functions
            .iter()
            .find(|f| f.name.eq_ignore_ascii_case(name))
    }

    /// Number of libraries and of functions (FUNCTION STATS).
    pub(crate) fn counts(&self) -> (usize, usize) {
        (self.libs.libs.len(), self.libs.function_count())
    }

    /// FUNCTION LOAD: checks and compiles `code` against the libraries as
    /// they are (`libs`), without changing them. The library to link, or
    /// the error text (without its `-`).
    fn prepare_load(
        &self,
        libs: &Libs,
        code: &[u8],
        replace: bool,
        dry: bool,
    ) -> Result<Library, String> {
        let (engine, name, body) = parse_metadata(code)?;
        let Some(name) = valid_name(&name) else {
            return Err(format!("ERR {NAME_RULES}"));
        };
        if !engine.eq_ignore_ascii_case(b"LUA") {
            return Err(format!(
                "ERR Engine '{}' not found",
                String::from_utf8_lossy(&engine)
            ));
        }
        if libs.libs.contains_key(&name) && !replace {
            return Err(format!("ERR Library '{name}' already exists"));
        }
        let loader = if dry { &self.checker } else { &self.runner };
        // Only the dry run logs (once per load, not once per core).
        let functions = loader.compile(&code[body..], dry)?;
        if functions.is_empty() {
            return Err("ERR No functions registered".into());
        }
        for f in &functions {
            if let Some(owner) = libs.owner_of(&f.name)
                && *owner != name
            {
                return Err(format!("ERR Function {} already exists", f.name));
            }
        }
        Ok(Library {
            name,
            code: code.to_vec(),
            functions,
        })
    }

    /// FUNCTION LOAD applied: the library's name, or the error.
    fn load(&mut self, code: &[u8], replace: bool) -> Result<String, String> {
        let lib = self.prepare_load(&self.libs, code, replace, false)?;
        let name = lib.name.clone();
        self.libs.unlink(&name);
        self.libs.link(lib);
        Ok(name)
    }

    fn delete(&mut self, name: &[u8]) -> bool {
        std::str::from_utf8(name)
            .ok()
            .and_then(|n| self.libs.unlink(n))
            .is_some()
    }

    fn flush(&mut self) {
        self.libs = Libs::default();
        let _ = self.runner.lua.gc_collect();
    }

    /// FUNCTION DUMP's payload.
    fn dump(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for lib in self.libs.libs.values() {
            out.push(OPCODE_FUNCTION2);
            rdb::put_rdb_string(&mut out, &lib.code);
        }
        out.extend_from_slice(&rdb::RDB_VERSION.to_le_bytes());
        let crc = rdb::crc64(0, &out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    /// FUNCTION RESTORE without changing anything: the libraries of the
    /// payload, checked against the current ones by `policy`.
    fn prepare_restore(&self, payload: &[u8], policy: Policy, dry: bool) -> Result<Libs, String> {
        if rdb::verify(payload).is_err() {
            return Err("ERR DUMP payload version or checksum are wrong".into());
        }
        let mut new = Libs::default();
        let mut pos = 0;
        // As Redis' rio buffer: strings are read from the whole payload
        // (a bad length can run into the footer), libraries while more
        // than the 10 footer bytes remain.
        while payload.len() - pos > 10 {
            let ty = payload[pos];
            pos += 1;
            let code = match ty {
                OPCODE_FUNCTION2 => rdb::read_string_at(payload, &mut pos)
                    .ok_or("ERR Failed loading library payload")?,
                OPCODE_FUNCTION_PRE_GA => pre_ga_code(payload, &mut pos)?,
                _ => return Err("ERR given type is not a function".into()),
            };
            let lib = self.prepare_load(&new, &code, false, dry)?;
            new.link(lib);
        }
        if policy != Policy::Flush {
            for name in new.libs.keys() {
                if self.libs.libs.contains_key(name) && policy == Policy::Append {
                    return Err(format!("ERR Library {name} already exists"));
                }
            }
            for lib in new.libs.values() {
                for f in &lib.functions {
                    if let Some(owner) = self.libs.owner_of(&f.name)
                        && !(policy == Policy::Replace && new.libs.contains_key(owner))
                    {
                        return Err(format!("ERR Function {} already exists", f.name));
                    }
                }
            }
        }
        Ok(new)
    }

    fn restore(&mut self, payload: &[u8], policy: Policy) -> Result<(), String> {
        let new = self.prepare_restore(payload, policy, false)?;
        if policy == Policy::Flush {
            self.libs = new;
            return Ok(());
        }
        for (_, lib) in new.libs {
            self.libs.unlink(&lib.name);
            self.libs.link(lib);
        }
        Ok(())
    }
}

/// The Lua state functions run in and the globals they see at run time:
/// this core's scripting engine's state and its read-only script
/// environment (the `redis` API with `call`, the libraries…), so FCALL
/// runs functions exactly as EVAL runs scripts.
fn runtime() -> (Lua, Table) {
    with_engine(|e| (e.lua.clone(), e.sandbox.env.clone()))
}

/// INFO memory's `number_of_functions`, `number_of_libraries` and
/// `used_memory_functions` (the libraries' code bytes) of this core's
/// registry, without creating it.
pub(crate) fn counts_here() -> (usize, usize, usize) {
    REGISTRY.with(|r| {
        let Ok(r) = r.try_borrow() else {
            return (0, 0, 0);
        };
        r.as_ref().map_or((0, 0, 0), |r| {
            let (libs, funcs) = r.counts();
            let code = r.libs.libs.values().map(|l| l.code.len()).sum();
            (funcs, libs, code)
        })
    })
}

/// The engine's [`Finder`] for FCALL: the function `name` in the registry
/// of the core that runs it (which never creates the registry: the engine
/// is borrowed while it looks).
fn find_function(engine: &mut Engine, name: &[u8]) -> Option<Function> {
    REGISTRY.with(|r| {
        let r = r.try_borrow().ok()?;
        let f = r.as_ref()?.function(name)?;
        engine.lua.registry_value(&f.callback).ok()
    })
}

impl Loader {
    fn build(lua: Lua, run_api: Table, timed: bool) -> mlua::Result<Loader> {
        let (_missing, readonly, view): (Function, Function, Function) =
            lua.load(HELPERS).set_name("=functions_helpers").eval()?;
        let pending: Rc<RefCell<Option<Vec<FunctionDef>>>> = Rc::new(RefCell::new(None));
        let log = Rc::new(Cell::new(false));

        let redis = lua.create_table()?;
        let p = pending.clone();
        redis.set(
            "register_function",
            lua.create_function(move |lua, args: MultiValue| register_function(lua, args, &p))?,
        )?;
        let l = log.clone();
        redis.set(
            "log",
            lua.create_function(move |lua, args: MultiValue| redis_log(lua, args, l.get()))?,
        )?;
        for (name, level) in [
            ("LOG_DEBUG", 0),
            ("LOG_VERBOSE", 1),
            ("LOG_NOTICE", 2),
            ("LOG_WARNING", 3),
        ] {
            redis.set(name, level)?;
        }
        let version = super::server::REDIS_VERSION;
        redis.set("REDIS_VERSION", version)?;
        redis.set("REDIS_VERSION_NUM", version_num(version))?;
        let redis: Table = view.call(redis)?;
        let load_fields = lua.create_table()?;
        load_fields.set("redis", redis)?;
        let load_api: Table = view.call(load_fields)?;

        let env_meta = lua.create_table()?;
        env_meta.set("__index", run_api.clone())?;
        env_meta.set("__newindex", readonly)?;
        env_meta.set("__metatable", false)?;
        let env = lua.create_table()?;
        env.set_metatable(Some(env_meta.clone()))?;
        Ok(Loader {
            lua,
            env,
            env_meta,
            load_api,
            run_api,
            pending,
            log,
            timed,
        })
    }

    /// Runs a library's code (after its shebang line) in the load
    /// environment (under the load timeout if `timed`); the functions it
    /// registered.
    fn compile(&self, body: &[u8], log: bool) -> Result<Vec<FunctionDef>, String> {
        let chunk = self
            .lua
            .load(body)
            .set_name("@user_function")
            .set_mode(mlua::ChunkMode::Text)
            .set_environment(self.env.clone())
            .into_function()
            .map_err(|e| format!("ERR Error compiling function: {}", lua_message(&e)))?;
        *self.pending.borrow_mut() = Some(Vec::new());
        self.log.set(log);
        let swapped = self.env_meta.raw_set("__index", self.load_api.clone());
        let start = Instant::now();
        let hooked = if self.timed {
            self.lua.set_hook(
                HookTriggers::new().every_nth_instruction(LOAD_HOOK_EVERY),
                move |_, _| {
                    if start.elapsed() > LOAD_TIMEOUT {
                        Err(mlua::Error::RuntimeError("FUNCTION LOAD timeout".into()))
                    } else {
                        Ok(VmState::Continue)
                    }
                },
            )
        } else {
            Ok(())
        };
        let ran = swapped.and(hooked).and_then(|()| chunk.call::<()>(()));
        if self.timed {
            self.lua.remove_hook();
        }
        let _ = self.env_meta.raw_set("__index", self.run_api.clone());
        self.log.set(false);
        let functions = self.pending.borrow_mut().take().unwrap_or_default();
        ran.map_err(|e| format!("ERR Error registering functions: ERR {}", lua_message(&e)))?;
        Ok(functions)
    }
}

/// `REDIS_VERSION_NUM`: 0x00MMmmpp.
fn version_num(v: &str) -> i64 {
    let mut parts = v.split('.').map(|p| p.parse::<i64>().unwrap_or(0));
    let (a, b, c) = (
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
    );
    (a << 16) | (b << 8) | c
}

/// The text of a Lua error as Redis shows it (the message, with the
/// `chunk:line:` Lua put in front of it).
fn lua_message(e: &mlua::Error) -> String {
    match e {
        // mlua's call appends a traceback to a Lua error; Redis shows none.
        mlua::Error::RuntimeError(s) => match s.rfind("\nstack traceback:\n") {
            Some(i) => s[..i].to_string(),
            None => s.clone(),
        },
        mlua::Error::MemoryError(s) => s.clone(),
        mlua::Error::SyntaxError { message, .. } => message.clone(),
        mlua::Error::CallbackError { cause, .. } => lua_message(cause),
        mlua::Error::WithContext { cause, .. } => lua_message(cause),
        other => other.to_string(),
    }
}

fn raise<T>(msg: &str) -> mlua::Result<T> {
    Err(mlua::Error::RuntimeError(msg.into()))
}

/// Redis' `lua_isstring`: a string or a number (converted as Lua prints
/// it).
fn lua_string(lua: &Lua, v: &Value) -> mlua::Result<Option<Vec<u8>>> {
    Ok(match v {
        Value::String(s) => Some(s.as_bytes().to_vec()),
        Value::Integer(_) | Value::Number(_) => {
            lua.coerce_string(v.clone())?.map(|s| s.as_bytes().to_vec())
        }
        _ => None,
    })
}

/// `redis.register_function(name, callback)` or
/// `redis.register_function{function_name=, callback=, flags=, description=}`.
fn register_function(
    lua: &Lua,
    args: MultiValue,
    pending: &RefCell<Option<Vec<FunctionDef>>>,
) -> mlua::Result<()> {
    if pending.borrow().is_none() {
        return raise("redis.register_function can only be called on FUNCTION LOAD command");
    }
    let args: Vec<Value> = args.into_iter().collect();
    let (name, desc, callback, flags) = match args.len() {
        1 => named_args(lua, &args[0])?,
        2 => {
            let Some(name) = lua_string(lua, &args[0])? else {
                return raise("first argument to redis.register_function must be a string");
            };
            let Value::Function(f) = &args[1] else {
                return raise("second argument to redis.register_function must be a function");
            };
            (name, None, f.clone(), 0)
        }
        _ => return raise("wrong number of arguments to redis.register_function"),
    };
    let Some(name) = valid_name(&name) else {
        return raise(NAME_RULES);
    };
    let mut pending = pending.borrow_mut();
    let list = pending.as_mut().expect("checked above");
    if list.iter().any(|f| f.name == name) {
        return raise("Function already exists in the library");
    }
    let callback = lua.create_registry_value(callback)?;
    list.push(FunctionDef {
        name,
        desc,
        flags,
        callback,
    });
    Ok(())
}

type Registration = (Vec<u8>, Option<Vec<u8>>, Function, u8);

/// The table form of `redis.register_function`, read key by key in table
/// order as Redis reads it (so the same first error is reported).
fn named_args(lua: &Lua, arg: &Value) -> mlua::Result<Registration> {
    let Value::Table(t) = arg else {
        return raise(
            "calling redis.register_function with a single argument is only applicable to Lua table (representing named arguments).",
        );
    };
    let (mut name, mut desc, mut callback, mut flags) = (None, None, None, 0u8);
    for pair in t.clone().pairs::<Value, Value>() {
        let (k, v) = pair?;
        let Some(key) = lua_string(lua, &k)? else {
            return raise("named argument key given to redis.register_function is not a string");
        };
        if key.eq_ignore_ascii_case(b"function_name") {
            let Some(n) = lua_string(lua, &v)? else {
                return raise(
                    "function_name argument given to redis.register_function must be a string",
                );
            };
            name = Some(n);
        } else if key.eq_ignore_ascii_case(b"description") {
            let Some(d) = lua_string(lua, &v)? else {
                return raise(
                    "description argument given to redis.register_function must be a string",
                );
            };
            desc = Some(d);
        } else if key.eq_ignore_ascii_case(b"callback") {
            let Value::Function(f) = v else {
                return raise(
                    "callback argument given to redis.register_function must be a function",
                );
            };
            callback = Some(f);
        } else if key.eq_ignore_ascii_case(b"flags") {
            let Value::Table(list) = v else {
                return raise(
                    "flags argument to redis.register_function must be a table representing function flags",
                );
            };
            flags = read_flags(lua, &list)?;
        } else {
            return raise("unknown argument given to redis.register_function");
        }
    }
    let Some(name) = name else {
        return raise("redis.register_function must get a function name argument");
    };
    let Some(callback) = callback else {
        return raise("redis.register_function must get a callback argument");
    };
    Ok((name, desc, callback, flags))
}

/// A flags list: `t[1]`, `t[2]`… until nil, each a known flag name
/// (case-insensitive).
fn read_flags(lua: &Lua, list: &Table) -> mlua::Result<u8> {
    let mut flags = 0;
    // A list longer than the table's own length cannot be: `get` stops at
    // the first nil; the bound only guards against a metatable.
    for j in 1..=i64::from(u32::MAX) {
        let v: Value = list.get(j)?;
        if v.is_nil() {
            break;
        }
        let known = lua_string(lua, &v)?.and_then(|s| {
            FLAG_NAMES
                .iter()
                .find(|(_, n)| s.eq_ignore_ascii_case(n.as_bytes()))
                .map(|(f, _)| *f)
        });
        match known {
            Some(f) => flags |= f,
            None => return raise("unknown flag given"),
        }
    }
    Ok(flags)
}

/// `redis.log(level, message…)` at load time. Kora logs to stderr at
/// Redis' default verbosity (notice): DEBUG and VERBOSE lines are dropped.
fn redis_log(lua: &Lua, args: MultiValue, enabled: bool) -> mlua::Result<()> {
    let args: Vec<Value> = args.into_iter().collect();
    if args.len() < 2 {
        return raise("redis.log() requires two arguments or more.");
    }
    let level = match &args[0] {
        Value::Integer(n) => *n as f64,
        Value::Number(n) => *n,
        Value::String(s) => match std::str::from_utf8(&s.as_bytes())
            .ok()
            .and_then(|s| s.trim().parse::<f64>().ok())
        {
            Some(n) => n,
            None => return raise("First argument must be a number (log level)."),
        },
        _ => return raise("First argument must be a number (log level)."),
    };
    let level = level as i64;
    if !(0..=3).contains(&level) {
        return raise("Invalid debug level.");
    }
    if !enabled || level < 2 {
        return Ok(());
    }
    let mut line = Vec::new();
    for (i, v) in args[1..].iter().enumerate() {
        if let Some(s) = lua_string(lua, v)? {
            if i > 0 {
                line.push(b' ');
            }
            line.extend_from_slice(&s);
        }
    }
    eprintln!("kora: {}", String::from_utf8_lossy(&line));
    Ok(())
}

/// Function and library names: letters, digits and `_`, at least one.
fn valid_name(name: &[u8]) -> Option<String> {
    if name.is_empty() || !name.iter().all(|&b| b.is_ascii_alphanumeric() || b == b'_') {
        return None;
    }
    Some(String::from_utf8(name.to_vec()).expect("ASCII"))
}

/// `functionExtractLibMetaData`: the shebang line `#!<engine> name=<lib>`
/// split as Redis' `sdssplitargs` splits it. (engine, library name, where
/// the code after the shebang starts: at its newline, so Lua's line
/// numbers count the shebang line.)
fn parse_metadata(code: &[u8]) -> Result<(Vec<u8>, Vec<u8>, usize), String> {
    if !code.starts_with(b"#!") {
        return Err("ERR Missing library metadata".into());
    }
    // C string functions: the text ends at the first NUL.
    let text = &code[..memchr::memchr(0, code).unwrap_or(code.len())];
    let Some(end) = memchr::memchr(b'\n', text) else {
        return Err("ERR Invalid library metadata".into());
    };
    let parts = match crate::protocol::parser::split_words(&text[..end]) {
        Some(p) if !p.is_empty() => p,
        _ => return Err("ERR Invalid library metadata".into()),
    };
    let engine = parts[0].get(2..).unwrap_or_default().to_vec();
    let mut name: Option<Vec<u8>> = None;
    for part in &parts[1..] {
        if part.len() >= 5 && part[..5].eq_ignore_ascii_case(b"name=") {
            if name.is_some() {
                return Err(
                    "ERR Invalid metadata value, name argument was given multiple times".into(),
                );
            }
            name = Some(part[5..].to_vec());
            continue;
        }
        return Err(format!(
            "ERR Invalid metadata value given: {}",
            String::from_utf8_lossy(part)
        ));
    }
    let Some(name) = name else {
        return Err("ERR Library name was not given".into());
    };
    Ok((engine, name, end))
}

/// A pre-GA library record (name, engine, optional description, code) as
/// Redis 7.0 reads it: turned into a shebang library.
fn pre_ga_code(payload: &[u8], pos: &mut usize) -> Result<Vec<u8>, String> {
    let name = rdb::read_string_at(payload, pos).ok_or("ERR Failed loading library name")?;
    let engine = rdb::read_string_at(payload, pos).ok_or("ERR Failed loading engine name")?;
    let has_desc =
        rdb::read_len_at(payload, pos).ok_or("ERR Failed loading library description")?;
    if has_desc != 0 {
        rdb::read_string_at(payload, pos).ok_or("ERR Failed loading library description")?;
    }
    let blob = rdb::read_string_at(payload, pos).ok_or("ERR Failed loading library blob")?;
    let mut code = b"#!".to_vec();
    code.extend_from_slice(&engine);
    code.extend_from_slice(b" name=");
    code.extend_from_slice(&name);
    code.push(b'\n');
    code.extend_from_slice(&blob);
    Ok(code)
}

// ------------------------------------------------------------- commands

const HELP: &[&str] = &[
    "LOAD [REPLACE] <FUNCTION CODE>",
    "    Create a new library with the given library name and code.",
    "DELETE <LIBRARY NAME>",
    "    Delete the given library.",
    "LIST [LIBRARYNAME PATTERN] [WITHCODE]",
    "    Return general information on all the libraries:",
    "    * Library name",
    "    * The engine used to run the Library",
    "    * Library description",
    "    * Functions list",
    "    * Library code (if WITHCODE is given)",
    "    It also possible to get only function that matches a pattern using LIBRARYNAME argument.",
    "STATS",
    "    Return information about the current function running:",
    "    * Function name",
    "    * Command used to run the function",
    "    * Duration in MS that the function is running",
    "    If no function is running, return nil",
    "    In addition, returns a list of available engines.",
    "KILL",
    "    Kill the current running function.",
    "FLUSH [ASYNC|SYNC]",
    "    Delete all the libraries.",
    "    When called without the optional mode argument, the behavior is determined by the",
    "    lazyfree-lazy-user-flush configuration directive. Valid modes are:",
    "    * ASYNC: Asynchronously flush the libraries.",
    "    * SYNC: Synchronously flush the libraries.",
    "DUMP",
    "    Return a serialized payload representing the current libraries, can be restored using FUNCTION RESTORE command",
    "RESTORE <PAYLOAD> [FLUSH|APPEND|REPLACE]",
    "    Restore the libraries represented by the given payload, it is possible to give a restore policy to",
    "    control how to handle existing libraries (default APPEND):",
    "    * FLUSH: delete all existing libraries.",
    "    * APPEND: appends the restored libraries to the existing libraries. On collision, abort.",
    "    * REPLACE: appends the restored libraries to the existing libraries, On collision, replace the old",
    "      libraries with the new libraries (notice that even on this option there is a chance of failure",
    "      in case of functions name collision with another library).",
];

/// FUNCTION's subcommands and their arities (Redis 7.0's command table).
const SUBCOMMANDS: &[(&str, i32)] = &[
    ("load", -3),
    ("delete", 3),
    ("flush", -2),
    ("list", -2),
    ("dump", 2),
    ("restore", -3),
    ("stats", 2),
    ("kill", 2),
    ("help", 2),
];

conn_async!(
    /// The FUNCTION row's handler ([`super::AsyncConn`]).
    function_cmd,
    |shard, client, args, out| {
        function(shard, client, args, out).await;
        Flow::Continue
    }
);

conn_async!(
    /// The FCALL row's handler.
    fcall_cmd,
    |shard, client, args, out| {
        fcall(shard, client, args, out, false).await;
        Flow::Continue
    }
);

conn_async!(
    /// The FCALL_RO row's handler.
    fcall_ro_cmd,
    |shard, client, args, out| {
        fcall(shard, client, args, out, true).await;
        Flow::Continue
    }
);

async fn function(shard: &Rc<Shard>, client: &ClientState, args: &Args<'_>, out: &mut Vec<u8>) {
    let sub = args.get(1);
    let Some(&(name, arity)) = SUBCOMMANDS
        .iter()
        .find(|(n, _)| sub.eq_ignore_ascii_case(n.as_bytes()))
    else {
        return unknown_subcommand(out, "FUNCTION", sub);
    };
    let argc = args.len() as i32;
    if (arity >= 0 && argc != arity) || (arity < 0 && argc < -arity) {
        return subcommand_arity(out, "function", sub);
    }
    match name {
        "load" => load(shard, client, args, out).await,
        "delete" => delete(shard, client, args, out).await,
        "flush" => flush(shard, client, args, out).await,
        "list" => with_registry(|r| list(r, args, out)),
        "dump" => out.bulk(&with_registry(|r| r.dump())),
        "restore" => restore(shard, client, args, out).await,
        "stats" => stats(out),
        "kill" => match scripting::script_kill(shard) {
            "" => out.ok(),
            e => out.error(e),
        },
        _ => help_reply(out, "FUNCTION", HELP),
    }
}

/// `-ERR unknown subcommand or wrong number of arguments for 'x'. Try
/// FUNCTION HELP.` (Redis' `addReplySubcommandSyntaxError`).
fn subcommand_syntax(out: &mut Vec<u8>, sub: &[u8]) {
    out.error(&format!(
        "ERR unknown subcommand or wrong number of arguments for '{}'. Try FUNCTION HELP.",
        String::from_utf8_lossy(&sub[..sub.len().min(128)])
    ));
}

/// Applies `op` to the registry of every core as one step (see the
/// module docs) and returns this core's result (every core's is the same).
async fn everywhere<R, F>(shard: &Rc<Shard>, client: &ClientState, op: F) -> Option<R>
where
    R: Send + 'static,
    F: Fn(&mut Registry) -> R + Send + Clone + 'static,
{
    let me = shard.id();
    crate::coord::all_at_once(shard, client.info.id, move |s: &Shard| {
        (s.id(), with_registry(|r| op(r)))
    })
    .await
    .into_iter()
    .find(|(id, _)| *id == me)
    .map(|(_, r)| r)
}

const SHUTTING_DOWN: &str = "ERR server is shutting down";

async fn load(shard: &Rc<Shard>, client: &ClientState, args: &Args<'_>, out: &mut Vec<u8>) {
    let mut replace = false;
    let mut i = 2;
    while i < args.len() - 1 {
        if !args.is(i, "REPLACE") {
            return out.error(&format!(
                "ERR Unknown option given: {}",
                String::from_utf8_lossy(args.get(i))
            ));
        }
        replace = true;
        i += 1;
    }
    if i >= args.len() {
        return out.error("ERR Function code is missing");
    }
    let code = args.get(i);
    // The dry run: errors (and a load that times out) stop here, on this
    // core alone.
    if let Err(e) = with_registry(|r| r.prepare_load(&r.libs, code, replace, true)) {
        return out.error(&e);
    }
    let code: Arc<[u8]> = Arc::from(code);
    match everywhere(shard, client, move |r| r.load(&code, replace)).await {
        Some(Ok(name)) => out.bulk(name.as_bytes()),
        Some(Err(e)) => out.error(&e),
        None => out.error(SHUTTING_DOWN),
    }
}

async fn delete(shard: &Rc<Shard>, client: &ClientState, args: &Args<'_>, out: &mut Vec<u8>) {
    let name: Arc<[u8]> = Arc::from(args.get(2));
    match everywhere(shard, client, move |r| r.delete(&name)).await {
        Some(true) => out.ok(),
        Some(false) => out.error("ERR Library not found"),
        None => out.error(SHUTTING_DOWN),
    }
}

async fn flush(shard: &Rc<Shard>, client: &ClientState, args: &Args<'_>, out: &mut Vec<u8>) {
    if args.len() > 3 {
        return subcommand_syntax(out, args.get(1));
    }
    // ASYNC and SYNC free the same way here: a core's libraries are its
    // Lua state's, collected at once.
    if args.len() == 3 && !args.is(2, "SYNC") && !args.is(2, "ASYNC") {
        return out.error("ERR FUNCTION FLUSH only supports SYNC|ASYNC option");
    }
    match everywhere(shard, client, |r| r.flush()).await {
        Some(()) => out.ok(),
        None => out.error(SHUTTING_DOWN),
    }
}

async fn restore(shard: &Rc<Shard>, client: &ClientState, args: &Args<'_>, out: &mut Vec<u8>) {
    if args.len() > 4 {
        return subcommand_syntax(out, args.get(1));
    }
    let policy = if args.len() == 4 {
        if args.is(3, "APPEND") {
            Policy::Append
        } else if args.is(3, "REPLACE") {
            Policy::Replace
        } else if args.is(3, "FLUSH") {
            Policy::Flush
        } else {
            return out.error(
                "ERR Wrong restore policy given, value should be either FLUSH, APPEND or REPLACE.",
            );
        }
    } else {
        Policy::Append
    };
    let payload = args.get(2);
    if let Err(e) = with_registry(|r| r.prepare_restore(payload, policy, true).map(drop)) {
        return out.error(&e);
    }
    let payload: Arc<[u8]> = Arc::from(payload);
    match everywhere(shard, client, move |r| r.restore(&payload, policy)).await {
        Some(Ok(())) => out.ok(),
        Some(Err(e)) => out.error(&e),
        None => out.error(SHUTTING_DOWN),
    }
}

/// FUNCTION LIST [LIBRARYNAME pattern] [WITHCODE]; the pattern matches
/// library names case-insensitively, as Redis' does.
fn list(r: &Registry, args: &Args<'_>, out: &mut Vec<u8>) {
    let mut with_code = false;
    let mut pattern: Option<&[u8]> = None;
    let mut i = 2;
    while i < args.len() {
        if !with_code && args.is(i, "WITHCODE") {
            with_code = true;
        } else if pattern.is_none() && args.is(i, "LIBRARYNAME") {
            if i >= args.len() - 1 {
                return out.error("ERR library name argument was not given");
            }
            i += 1;
            pattern = Some(args.get(i));
        } else {
            return out.error(&format!(
                "ERR Unknown argument {}",
                String::from_utf8_lossy(args.get(i))
            ));
        }
        i += 1;
    }
    let shown: Vec<&Library> = r
        .libs
        .libs
        .values()
        .filter(|l| pattern.is_none_or(|p| glob_match_nocase(p, l.name.as_bytes())))
        .collect();
    out.array(shown.len());
    for lib in shown {
        out.array(if with_code { 8 } else { 6 });
        out.bulk(b"library_name");
        out.bulk(lib.name.as_bytes());
        out.bulk(b"engine");
        out.bulk(b"LUA");
        out.bulk(b"functions");
        out.array(lib.functions.len());
        for f in &lib.functions {
            out.array(6);
            out.bulk(b"name");
            out.bulk(f.name.as_bytes());
            out.bulk(b"description");
            match &f.desc {
                Some(d) => out.bulk(d),
                None => out.nil(),
            }
            out.bulk(b"flags");
            out.array(FLAG_NAMES.iter().filter(|(b, _)| f.flags & b != 0).count());
            for (bit, name) in FLAG_NAMES {
                if f.flags & bit != 0 {
                    out.simple(name);
                }
            }
        }
        if with_code {
            out.bulk(b"library_code");
            out.bulk(&lib.code);
        }
    }
}

/// FUNCTION STATS: no function runs while a connection on this core
/// reads its registry.
fn stats(out: &mut Vec<u8>) {
    let (libraries, functions) = with_registry(|r| r.counts());
    out.array(4);
    out.bulk(b"running_script");
    out.nil();
    out.bulk(b"engines");
    out.array(2);
    out.bulk(b"LUA");
    out.array(4);
    out.bulk(b"libraries_count");
    out.int(libraries as i64);
    out.bulk(b"functions_count");
    out.int(functions as i64);
}

/// FCALL / FCALL_RO: the function looked up, the key count and the
/// write flag checked as Redis checks them, in Redis' order; then the
/// function runs through the scripting engine, as EVAL runs a script (on
/// the core owning its keys, atomically; see `scripting`'s docs), called
/// with (KEYS, ARGV). A `no-writes` function, or any function under
/// FCALL_RO, runs read-only.
async fn fcall(
    shard: &Rc<Shard>,
    client: &mut ClientState,
    args: &Args<'_>,
    out: &mut Vec<u8>,
    ro: bool,
) {
    let name = args.get(1);
    let Some(flags) = with_registry(|r| r.function(name).map(|f| f.flags)) else {
        return out.error("ERR Function not found");
    };
    let Some(numkeys) = crate::protocol::parser::parse_i64(args.get(2)) else {
        return out.error("ERR Bad number of keys provided");
    };
    if numkeys > args.len() as i64 - 3 {
        return out.error("ERR Number of keys can't be greater than number of args");
    }
    if numkeys < 0 {
        return out.error("ERR Number of keys can't be negative");
    }
    if ro && flags & FLAG_NO_WRITES == 0 {
        return out.error("ERR Can not execute a script with write flag using *_ro command.");
    }
    let (keys, argv) = match scripting::keys_and_args(args, 2) {
        Ok(split) => split,
        Err(e) => return out.error(e),
    };
    // Redis labels errors with the name as called.
    let label = String::from_utf8_lossy(name);
    let mut inv = Invocation::new(find_function, name, &label, Style::Args, keys, argv);
    inv.read_only = ro || flags & FLAG_NO_WRITES != 0;
    // Functions always run with flags (Redis 7 has no compatibility mode
    // for them): without no-writes or allow-oom one is refused up front
    // over maxmemory.
    inv.allow_oom = flags & (FLAG_ALLOW_OOM | FLAG_NO_WRITES) != 0;
    inv.deny_oom = !inv.allow_oom;
    inv.missing = "ERR Function not found";
    scripting::run(shard, client, inv, out).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lib(name: &str, body: &str) -> Vec<u8> {
        format!("#!lua name={name}\n{body}").into_bytes()
    }

    #[test]
    fn shebang_errors_are_redis() {
        let r = Registry::new();
        let e = |code: &[u8]| r.prepare_load(&r.libs, code, false, true).err().unwrap();
        assert_eq!(e(b"return 1"), "ERR Missing library metadata");
        assert_eq!(e(b"#!lua"), "ERR Invalid library metadata");
        assert_eq!(e(b"#!lua name=\"a\nx"), "ERR Invalid library metadata");
        assert_eq!(e(b"#!lua\nx"), "ERR Library name was not given");
        assert_eq!(e(b"#!\nx"), "ERR Library name was not given");
        assert_eq!(
            e(b"#!lua name=a b=c\nx"),
            "ERR Invalid metadata value given: b=c"
        );
        assert_eq!(
            e(b"#!lua name=a name=b\nx"),
            "ERR Invalid metadata value, name argument was given multiple times"
        );
        assert_eq!(e(b"#!foo name=a\nx"), "ERR Engine 'foo' not found");
        assert_eq!(e(b"#! name=a\nx"), "ERR Engine '' not found");
        assert_eq!(e(b"#!foo name=a-b\nx"), format!("ERR {NAME_RULES}"));
        assert_eq!(e(b"#!lua name=\"a c\"\nx"), format!("ERR {NAME_RULES}"));
        assert_eq!(
            e(b"#!lua name=a\nx"),
            "ERR Error compiling function: user_function:2: '=' expected near '<eof>'"
        );
        assert_eq!(e(b"#!lua name=a\n"), "ERR No functions registered");
    }

    #[test]
    fn load_environment_is_redis_7_0s() {
        let r = Registry::new();
        let e = |body: &str| {
            r.prepare_load(&r.libs, &lib("a", body), false, true)
                .err()
                .unwrap()
        };
        assert_eq!(
            e("redis.call('ping')"),
            "ERR Error registering functions: ERR user_function:2: Script attempted to access nonexistent global variable 'call'"
        );
        assert_eq!(
            e("local x = string.format('%d', 1)"),
            "ERR Error registering functions: ERR user_function:2: Script attempted to access nonexistent global variable 'string'"
        );
        assert_eq!(
            e("x = 1"),
            "ERR Error registering functions: ERR user_function:2: Attempt to modify a readonly table"
        );
        assert_eq!(
            e("redis.log = 1"),
            "ERR Error registering functions: ERR user_function:2: Attempt to modify a readonly table"
        );
        assert_eq!(
            e("local v = redis.REDIS_VERSION .. redis.LOG_WARNING"),
            "ERR No functions registered"
        );
        assert_eq!(
            e("while true do end"),
            "ERR Error registering functions: ERR FUNCTION LOAD timeout"
        );
    }

    #[test]
    fn register_function_errors_are_redis() {
        let r = Registry::new();
        let e = |body: &str| {
            r.prepare_load(&r.libs, &lib("a", body), false, true)
                .err()
                .unwrap()
                .trim_start_matches("ERR Error registering functions: ERR ")
                .to_string()
        };
        let f = "function() end";
        assert_eq!(
            e("redis.register_function()"),
            "wrong number of arguments to redis.register_function"
        );
        assert_eq!(
            e("redis.register_function(1)"),
            "calling redis.register_function with a single argument is only applicable to Lua table (representing named arguments)."
        );
        assert_eq!(
            e("redis.register_function({})"),
            "redis.register_function must get a function name argument"
        );
        assert_eq!(
            e("redis.register_function({function_name='x'})"),
            "redis.register_function must get a callback argument"
        );
        assert_eq!(
            e(&format!(
                "redis.register_function{{function_name='x', callback={f}, flags={{'bad'}}}}"
            )),
            "unknown flag given"
        );
        assert_eq!(
            e(&format!(
                "redis.register_function{{function_name='x', callback={f}, flags='no-writes'}}"
            )),
            "flags argument to redis.register_function must be a table representing function flags"
        );
        assert_eq!(
            e("redis.register_function{function_name='x', callback=1}"),
            "callback argument given to redis.register_function must be a function"
        );
        assert_eq!(
            e(&format!(
                "redis.register_function{{function_name={{}}, callback={f}}}"
            )),
            "function_name argument given to redis.register_function must be a string"
        );
        assert_eq!(
            e(&format!(
                "redis.register_function{{function_name='x', callback={f}, description={{}}}}"
            )),
            "description argument given to redis.register_function must be a string"
        );
        assert_eq!(
            e(&format!(
                "redis.register_function{{function_name='x', callback={f}, foo=1}}"
            )),
            "unknown argument given to redis.register_function"
        );
        assert_eq!(
            e(&format!("redis.register_function({{}}, {f})")),
            "first argument to redis.register_function must be a string"
        );
        assert_eq!(
            e("redis.register_function('x', 1)"),
            "second argument to redis.register_function must be a function"
        );
        assert_eq!(
            e(&format!("redis.register_function('b-c', {f})")),
            NAME_RULES
        );
        assert_eq!(
            e(&format!(
                "redis.register_function('x', {f})\nredis.register_function('x', {f})"
            )),
            "Function already exists in the library"
        );
    }

    #[test]
    fn registry_load_replace_delete() {
        let mut r = Registry::new();
        let body = "redis.register_function{function_name='f', callback=function() end, flags={'no-writes', 'ALLOW-OOM'}, description='d'}";
        assert_eq!(r.load(&lib("l", body), false), Ok("l".into()));
        assert_eq!(
            r.load(&lib("l", body), false),
            Err("ERR Library 'l' already exists".into())
        );
        assert_eq!(r.load(&lib("l", body), true), Ok("l".into()));
        assert_eq!(
            r.load(&lib("m", body), false),
            Err("ERR Function f already exists".into())
        );
        let f = r.function(b"F").unwrap();
        assert_eq!(f.flags, FLAG_NO_WRITES | FLAG_ALLOW_OOM);
        assert_eq!(f.desc.as_deref(), Some(&b"d"[..]));
        assert_eq!(r.counts(), (1, 1));
        assert!(r.delete(b"l"));
        assert!(!r.delete(b"l"));
        assert!(r.function(b"f").is_none());
        assert_eq!(r.counts(), (0, 0));
    }

    #[test]
    fn dump_restores_with_every_policy() {
        let mut r = Registry::new();
        r.load(
            &lib("a", "redis.register_function('fa', function() end)"),
            false,
        )
        .unwrap();
        let payload = r.dump();
        assert_eq!(
            r.restore(&payload, Policy::Append),
            Err("ERR Library a already exists".into())
        );
        assert_eq!(r.restore(&payload, Policy::Replace), Ok(()));
        r.load(
            &lib("b", "redis.register_function('fb', function() end)"),
            false,
        )
        .unwrap();
        assert_eq!(r.restore(&payload, Policy::Flush), Ok(()));
        assert_eq!(r.counts(), (1, 1));
        let mut bad = payload.clone();
        bad[3] ^= 1;
        assert_eq!(
            r.restore(&bad, Policy::Flush),
            Err("ERR DUMP payload version or checksum are wrong".into())
        );
    }

    #[test]
    fn split_args_is_sdssplitargs() {
        let s = |l: &[u8]| crate::protocol::parser::split_words(l);
        assert_eq!(
            s(b"#!lua  name=x "),
            Some(vec![b"#!lua".to_vec(), b"name=x".to_vec()])
        );
        assert_eq!(
            s(b"a \"b\\x41\\n\" 'c\\'d'"),
            Some(vec![b"a".to_vec(), b"bA\n".to_vec(), b"c'd".to_vec()])
        );
        assert_eq!(s(b"\"a\"b"), None);
        assert_eq!(s(b"'a"), None);
        assert_eq!(s(b""), Some(vec![]));
    }
}
