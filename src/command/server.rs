//! Connection and server commands, run by the connection on its own core:
//! PING, HELLO, SELECT, CLIENT, COMMAND, INFO, DBSIZE, FLUSH*, HOTKEYS,
//! SHUTDOWN, DEBUG. Also the dispatcher for every connection-level
//! command, whichever family it belongs to.
//!
//! These commands may change the
//! connection's state or end it.

use std::fmt::Write as _;

use super::conn::{ClientState, Flow};
use super::table::{NUM_SLOTS, slot_name};
use super::{Args, auth, keys, wrong_arity};
use crate::coord::Shard;
use crate::metrics::MetricsView;
use crate::metrics::errors::ERROR_KINDS;
use crate::protocol::reply::{Resp, err};

/// The Redis version whose behaviour Kora follows (what clients see as
/// `redis_version`).
pub const REDIS_VERSION: &str = "7.2.4";
pub const KORA_VERSION: &str = env!("CARGO_PKG_VERSION");

pub fn echo(_: &Shard, _: &mut ClientState, args: &Args, out: &mut Vec<u8>) -> Flow {
    out.bulk(args.get(1));
    Flow::Continue
}

pub fn auth(shard: &Shard, client: &mut ClientState, args: &Args, out: &mut Vec<u8>) -> Flow {
    super::auth::auth(shard, client, args, out);
    Flow::Continue
}

pub fn select(shard: &Shard, _: &mut ClientState, args: &Args, out: &mut Vec<u8>) -> Flow {
    match args.int(1) {
        Ok(0) => out.ok(),
        Ok(_) if shard.cluster_enabled() => out.error("ERR SELECT is not allowed in cluster mode"),
        Ok(_) => out.error("ERR DB index is out of range"),
        Err(e) => out.error(e),
    }
    Flow::Continue
}

pub fn quit(_: &Shard, _: &mut ClientState, _: &Args, out: &mut Vec<u8>) -> Flow {
    out.ok();
    Flow::Close
}

pub fn shutdown(shard: &Shard, _: &mut ClientState, _: &Args, _: &mut Vec<u8>) -> Flow {
    shard.shutdown().request();
    Flow::Close
}

pub fn time(_: &Shard, _: &mut ClientState, _: &Args, out: &mut Vec<u8>) -> Flow {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    out.array(2);
    out.bulk(now.as_secs().to_string().as_bytes());
    out.bulk(now.subsec_micros().to_string().as_bytes());
    Flow::Continue
}

conn_async!(dbsize, |shard, client, _args, out| {
    let sizes = crate::coord::all_at_once(shard, client.info.id, |s: &Shard| s.db().len()).await;
    out.int(sizes.iter().sum::<usize>() as i64);
    Flow::Continue
});

conn_async!(flush, |shard, client, args, out| {
    if args.len() > 2 || (args.len() == 2 && !args.is(1, "ASYNC") && !args.is(1, "SYNC")) {
        out.error(err::SYNTAX);
        return Flow::Continue;
    }
    // Without a mode, `lazyfree-lazy-user-flush` decides (as Redis 7); the
    // flag is the same on every shard.
    let lazy = if args.len() == 2 {
        args.is(1, "ASYNC")
    } else {
        shard.db().lazy_user_flush
    };
    crate::coord::all_at_once(shard, client.info.id, move |s: &Shard| {
        let mut db = s.db();
        if lazy { db.flush_async() } else { db.flush() }
    })
    .await;
    out.ok();
    Flow::Continue
});

conn_async!(config, |shard, _client, args, out| {
    super::config::config(shard, args, out).await;
    Flow::Continue
});

conn_async!(client, |shard, client, args, out| {
    super::client::client(shard, client, args, out).await;
    Flow::Continue
});

conn_async!(info_cmd, |shard, _client, args, out| {
    info(shard, args, out).await;
    Flow::Continue
});

conn_async!(keys_cmd, |shard, client, args, out| {
    keys::keys_all(shard, client.info.id, args, out).await;
    Flow::Continue
});

conn_async!(scan_cmd, |shard, _client, args, out| {
    keys::scan_all(shard, args, out).await;
    Flow::Continue
});

conn_async!(randomkey_cmd, |shard, _client, _args, out| {
    keys::random_key_any(shard, out).await;
    Flow::Continue
});

conn_async!(hotkeys_cmd, |shard, _client, args, out| {
    hotkeys(shard, args, out).await;
    Flow::Continue
});

conn_async!(latency_cmd, |shard, _client, args, out| {
    super::latency::latency(shard, args, out).await;
    Flow::Continue
});

conn_async!(slowlog_cmd, |shard, _client, args, out| {
    super::slowlog::slowlog(shard, args, out).await;
    Flow::Continue
});

conn_async!(memory_cmd, |shard, _client, args, out| {
    super::memory::memory(shard, args, out).await;
    Flow::Continue
});

conn_async!(object_cmd, |shard, _client, args, out| {
    super::object::object(shard, args, out).await;
    Flow::Continue
});

conn_async!(discard_cmd, |shard, client, _args, out| {
    super::transaction::discard(shard, client, out).await;
    Flow::Continue
});

conn_async!(watch_cmd, |shard, client, args, out| {
    super::transaction::watch(shard, client, args, out).await;
    Flow::Continue
});

conn_async!(unwatch_cmd, |shard, client, _args, out| {
    super::transaction::unwatch(shard, client, out).await;
    Flow::Continue
});

pub fn multi_cmd(_: &Shard, client: &mut ClientState, _: &Args, out: &mut Vec<u8>) -> Flow {
    super::transaction::multi(client, out);
    Flow::Continue
}

/// EXEC: the connection replays the queued commands itself
/// (`server::transaction::exec`), so the row only says so.
pub fn exec_cmd(_: &Shard, _: &mut ClientState, _: &Args, _: &mut Vec<u8>) -> Flow {
    Flow::Exec
}

pub fn ping(_: &Shard, client: &mut ClientState, args: &Args, out: &mut Vec<u8>) -> Flow {
    // Pub/Sub (issue 14): in subscribed mode PING answers as a push.
    if client.info.subscribed() && args.len() <= 2 {
        super::pubsub::ping_subscribed(args, out);
        return Flow::Continue;
    }
    match args.len() {
        1 => out.simple("PONG"),
        2 => out.bulk(args.get(1)),
        _ => wrong_arity(out, "ping"),
    }
    Flow::Continue
}

pub fn hello(shard: &Shard, client: &mut ClientState, args: &Args, out: &mut Vec<u8>) -> Flow {
    hello_reply(shard, client, args, out);
    Flow::Continue
}

fn hello_reply(shard: &Shard, client: &mut ClientState, args: &Args, out: &mut Vec<u8>) {
    if args.len() >= 2 {
        match args.int(1) {
            Ok(2) => {}
            Ok(_) => return out.error("NOPROTO sorry, this protocol version is not supported."),
            Err(_) => return out.error("ERR Protocol version is not an integer or out of range"),
        }
    }
    // As Redis 7.0: options take effect in order as they are read (a name
    // is set even if a later option fails or the client is not
    // authenticated), then an unauthenticated client is refused.
    let mut i = 2;
    while i < args.len() {
        if args.is(i, "AUTH") && i + 2 < args.len() {
            if !auth::authenticate(shard, client, args.get(i + 1), args.get(i + 2)) {
                return out.error(auth::WRONGPASS);
            }
            i += 3;
        } else if args.is(i, "SETNAME") && i + 1 < args.len() {
            if let Err(e) = super::client::set_name(client, args.get(i + 1)) {
                return out.error(e);
            }
            i += 2;
        } else {
            return out.error(&format!(
                "ERR Syntax error in HELLO option '{}'",
                String::from_utf8_lossy(args.get(i))
            ));
        }
    }
    if auth::auth_required(shard, client) {
        return out.error(auth::HELLO_NOAUTH);
    }
    out.array(14);
    out.bulk(b"server");
    out.bulk(b"redis");
    out.bulk(b"version");
    out.bulk(REDIS_VERSION.as_bytes());
    out.bulk(b"proto");
    out.int(2);
    out.bulk(b"id");
    out.int(client.info.id as i64);
    out.bulk(b"mode");
    out.bulk(b"standalone");
    out.bulk(b"role");
    out.bulk(b"master");
    out.bulk(b"modules");
    out.array(0);
}

pub fn command(_: &Shard, _: &mut ClientState, args: &Args, out: &mut Vec<u8>) -> Flow {
    super::command_info::command(args, out);
    Flow::Continue
}

async fn hotkeys(shard: &Shard, args: &Args<'_>, out: &mut Vec<u8>) {
    let mut count = 10usize;
    match args.len() {
        1 => {}
        3 if args.is(1, "COUNT") => match args.int(2) {
            Ok(n) if n > 0 => count = n as usize,
            Ok(_) => return out.error(err::OUT_OF_RANGE_POSITIVE),
            Err(e) => return out.error(e),
        },
        _ => return out.error(err::SYNTAX),
    }
    let per_shard = crate::coord::all(shard, |s: &Shard| s.db().hot.top()).await;
    let mut all: Vec<(Vec<u8>, u64)> = per_shard.into_iter().flatten().collect();
    all.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    all.truncate(count);
    out.array(all.len());
    for (key, n) in all {
        out.array(2);
        out.bulk(&key);
        out.int(n as i64);
    }
}

/// DEBUG SLEEP seconds: blocks this core's thread, as a stuck shard would
/// (used to test that scrapes and other cores carry on).
pub fn debug(shard: &Shard, _: &mut ClientState, args: &Args, out: &mut Vec<u8>) -> Flow {
    debug_reply(shard, args, out);
    Flow::Continue
}

fn debug_reply(shard: &Shard, args: &Args, out: &mut Vec<u8>) {
    if !shard.config().enable_debug_command {
        return out.error(
            "ERR DEBUG command not allowed. If the enable-debug-command option is set to \"no\", you can change it with --enable-debug-command.",
        );
    }
    if args.is(1, "SLEEP") && args.len() == 3 {
        match crate::protocol::float::parse_f64(args.get(2)) {
            Some(secs) if (0.0..=3600.0).contains(&secs) => {
                std::thread::sleep(std::time::Duration::from_secs_f64(secs));
                out.ok();
            }
            _ => out.error(err::NOT_FLOAT),
        }
    } else {
        out.error(&format!(
            "ERR unknown subcommand '{}'. Try DEBUG HELP.",
            String::from_utf8_lossy(args.get(1))
        ));
    }
}

/// The process' resident set size (src/alloc.rs).
pub fn rss_bytes() -> u64 {
    crate::alloc::rss_bytes()
}

/// Physical memory of the host, as Redis' total_system_memory.
fn total_system_memory() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let pages = unsafe { libc::sysconf(libc::_SC_PHYS_PAGES) };
    (pages.max(0) as u64) * crate::alloc::page_size() as u64
}

fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "K", "M", "G", "T"];
    let mut v = b as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{b}B")
    } else {
        format!("{v:.2}{}", UNITS[unit])
    }
}

/// The process-wide run id, fixed for the life of the process.
/// Kernel name and release as Redis prints them (`Linux 6.1.0-18-amd64`).
fn os_name() -> &'static str {
    static OS: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    OS.get_or_init(|| {
        // SAFETY: uname fills the zeroed struct; its fields are
        // NUL-terminated C strings.
        let mut u: libc::utsname = unsafe { std::mem::zeroed() };
        if unsafe { libc::uname(&mut u) } != 0 {
            return std::env::consts::OS.to_string();
        }
        let field = |f: &[libc::c_char]| {
            let bytes: Vec<u8> = f
                .iter()
                .take_while(|&&c| c != 0)
                .map(|&c| c as u8)
                .collect();
            String::from_utf8_lossy(&bytes).into_owned()
        };
        format!("{} {}", field(&u.sysname), field(&u.release))
    })
}

fn run_id() -> &'static str {
    static ID: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    ID.get_or_init(|| {
        let seed = ahash::RandomState::new();
        (0..5)
            .map(|i| format!("{:08x}", seed.hash_one(i) as u32))
            .collect()
    })
}

const DEFAULT_SECTIONS: &[&str] = &[
    "server",
    "clients",
    "memory",
    "persistence",
    "stats",
    "replication",
    "cpu",
    "errorstats",
    "cluster",
    "keyspace",
];
const ALL_SECTIONS: &[&str] = &[
    "server",
    "clients",
    "memory",
    "persistence",
    "stats",
    "replication",
    "cpu",
    "commandstats",
    "errorstats",
    "latencystats",
    "cluster",
    "keyspace",
];

async fn info(shard: &Shard, args: &Args<'_>, out: &mut Vec<u8>) {
    let mut sections: Vec<&str> = Vec::new();
    if args.len() == 1 {
        sections.extend(DEFAULT_SECTIONS);
    }
    for arg in args.iter_from(1) {
        let name = String::from_utf8_lossy(arg).to_lowercase();
        match name.as_str() {
            "default" => sections.extend(DEFAULT_SECTIONS),
            "all" | "everything" => sections.extend(ALL_SECTIONS),
            other => {
                if let Some(s) = ALL_SECTIONS.iter().find(|s| **s == other) {
                    sections.push(s);
                }
            }
        }
    }
    let mut view = shard.metrics_view().await;
    // Pub/Sub (issue 14): the names subscribed on every core, each once.
    if sections.contains(&"stats") && view.merged.pubsub_names.iter().any(|&n| n > 0) {
        view.merged.pubsub_names = super::pubsub::distinct_counts(shard).await;
    }
    let text = render_info(shard, &view, &sections);
    out.bulk(text.as_bytes());
}

pub fn render_info(shard: &Shard, view: &MetricsView, sections: &[&str]) -> String {
    let snap = &view.merged;
    let mut s = String::with_capacity(4096);
    let uptime = shard.uptime().as_secs();
    let wants = |name: &str| sections.contains(&name);
    let section = |s: &mut String, title: &str| {
        if !s.is_empty() {
            s.push_str("\r\n");
        }
        let _ = write!(s, "# {title}\r\n");
    };
    if wants("server") {
        section(&mut s, "Server");
        let _ = write!(
            s,
            "redis_version:{REDIS_VERSION}\r\nkora_version:{KORA_VERSION}\r\nredis_mode:standalone\r\nos:{} {}\r\narch_bits:64\r\nmultiplexing_api:io_uring\r\nprocess_id:{}\r\nrun_id:{}\r\ntcp_port:{}\r\nuptime_in_seconds:{uptime}\r\nuptime_in_days:{}\r\nshards:{}\r\n",
            os_name(),
            std::env::consts::ARCH,
            std::process::id(),
            run_id(),
            shard.config().port,
            uptime / 86400,
            shard.nshards(),
        );
    }
    if wants("clients") {
        section(&mut s, "Clients");
        let _ = write!(
            s,
            "connected_clients:{}\r\nmaxclients:{}\r\nblocked_clients:{}\r\n",
            snap.connections_current,
            shard.admission().max(),
            snap.blocked_clients
        );
    }
    if wants("memory") {
        section(&mut s, "Memory");
        // True figures from the allocator (src/alloc.rs), formatted as
        // Redis 7.0 prints them; the keyspace estimate beside them.
        let a = view.allocator;
        let rss = rss_bytes();
        let used = a.allocated;
        let peak = view.peak_memory_bytes.max(used);
        let ratio = |num: u64, den: u64| {
            if den == 0 {
                0.0
            } else {
                num as f64 / den as f64
            }
        };
        let diff = |x: u64, y: u64| x as i64 - y as i64;
        let _ = write!(
            s,
            "used_memory:{used}\r\nused_memory_human:{}\r\nused_memory_rss:{rss}\r\nused_memory_rss_human:{}\r\nused_memory_peak:{peak}\r\nused_memory_peak_human:{}\r\nused_memory_peak_perc:{:.2}%\r\n",
            human_bytes(used),
            human_bytes(rss),
            human_bytes(peak),
            ratio(used, peak) * 100.0,
        );
        // Redis' overhead is its fixed per-key costs and buffers; here the
        // cost model's per-key table and TTL-index estimate (as MEMORY
        // STATS' overhead.total).
        let overhead = snap.keys * crate::store::cost::ENTRY as u64
            + snap.expires * crate::store::cost::EXPIRE as u64;
        let dataset = used.saturating_sub(overhead);
        let _ = write!(
            s,
            "used_memory_overhead:{overhead}\r\nused_memory_startup:0\r\nused_memory_dataset:{dataset}\r\nused_memory_dataset_perc:{:.2}%\r\n",
            ratio(dataset, used) * 100.0,
        );
        let _ = write!(
            s,
            "allocator_allocated:{}\r\nallocator_active:{}\r\nallocator_resident:{}\r\n",
            a.allocated, a.active, a.resident
        );
        let system = total_system_memory();
        let _ = write!(
            s,
            "total_system_memory:{system}\r\ntotal_system_memory_human:{}\r\n",
            human_bytes(system)
        );
        // The knobs are the same on every shard; this one's copy will do.
        let eviction = *shard.db().eviction();
        let _ = write!(
            s,
            "maxmemory:{}\r\nmaxmemory_human:{}\r\nmaxmemory_policy:{}\r\n",
            eviction.maxmemory,
            human_bytes(eviction.maxmemory),
            eviction.policy.name()
        );
        let _ = write!(
            s,
            "allocator_frag_ratio:{:.2}\r\nallocator_frag_bytes:{}\r\nallocator_rss_ratio:{:.2}\r\nallocator_rss_bytes:{}\r\nrss_overhead_ratio:{:.2}\r\nrss_overhead_bytes:{}\r\nmem_fragmentation_ratio:{:.2}\r\nmem_fragmentation_bytes:{}\r\n",
            ratio(a.active, a.allocated),
            diff(a.active, a.allocated),
            ratio(a.resident, a.active),
            diff(a.resident, a.active),
            ratio(rss, a.resident),
            diff(rss, a.resident),
            ratio(rss, used),
            diff(rss, used),
        );
        let _ = write!(
            s,
            "mem_allocator:{}\r\nlazyfree_pending_objects:{}\r\nlazyfreed_objects:{}\r\nused_memory_estimate:{}\r\n",
            crate::alloc::allocator_name(),
            snap.lazyfree_pending,
            snap.lazyfreed,
            snap.dataset_bytes,
        );
        // Scripting (issue 14): Redis 7.0's EVAL fields (the Lua heap of
        // every core; the cache, which every core holds whole, once).
        let _ = write!(
            s,
            "used_memory_lua:{lua}\r\nused_memory_vm_eval:{lua}\r\nused_memory_lua_human:{}\r\nused_memory_scripts_eval:{scripts}\r\nnumber_of_cached_scripts:{}\r\nused_memory_scripts:{scripts}\r\nused_memory_scripts_human:{}\r\n",
            human_bytes(snap.lua_memory_bytes),
            snap.scripts_cached,
            human_bytes(snap.scripts_bytes),
            lua = snap.lua_memory_bytes,
            scripts = snap.scripts_bytes,
        );
        // Functions (issue 14): every core holds the same registry; this
        // core's copy answers.
        let (functions, libraries, code) = super::functions::counts_here();
        let _ = write!(
            s,
            "number_of_functions:{functions}\r\nnumber_of_libraries:{libraries}\r\nused_memory_functions:{code}\r\n",
        );
    }
    if wants("persistence") {
        section(&mut s, "Persistence");
        s.push_str("loading:0\r\nrdb_changes_since_last_save:0\r\nrdb_bgsave_in_progress:0\r\naof_enabled:0\r\n");
    }
    if wants("stats") {
        section(&mut s, "Stats");
        let _ = write!(
            s,
            "total_connections_received:{}\r\ntotal_commands_processed:{}\r\ninstantaneous_ops_per_sec:{}\r\ntotal_net_input_bytes:{}\r\ntotal_net_output_bytes:{}\r\nrejected_connections:{}\r\nexpired_keys:{}\r\nevicted_keys:{}\r\nkeyspace_hits:{}\r\nkeyspace_misses:{}\r\ntotal_error_replies:{}\r\n",
            snap.connections_accepted,
            // As Redis: commands refused before running are not processed.
            snap.total_calls()
                .saturating_sub(snap.rejected.iter().sum::<u64>()),
            snap.ops_per_sec,
            snap.bytes_in,
            snap.bytes_out,
            // As Redis, protected-mode refusals count here too.
            snap.rejected_connections + snap.protected_mode_denied,
            snap.expired_keys,
            snap.evicted_keys,
            snap.keyspace_hits,
            snap.keyspace_misses,
            snap.total_errors(),
        );
        let _ = write!(
            s,
            "client_output_buffer_limit_disconnections:{}\r\n",
            snap.output_limit_disconnections
        );
        // Redis 7's eviction timers: time over maxmemory, summed over the
        // shards, and the longest current stretch.
        let _ = write!(
            s,
            "total_eviction_exceeded_time:{}\r\ncurrent_eviction_exceeded_time:{}\r\n",
            snap.eviction_exceeded_total_ms, snap.eviction_exceeded_current_ms
        );
        // Redis 7.2's name (INFO stats) for failed AUTH / HELLO AUTH.
        let _ = write!(s, "acl_access_denied_auth:{}\r\n", snap.auth_failures);
        // Redis 7.4's: EVAL scripts dropped from the cache.
        let _ = write!(s, "evicted_scripts:{}\r\n", snap.scripts_evicted);
        // Pub/Sub (issue 14).
        let _ = write!(
            s,
            "pubsub_channels:{}\r\npubsub_patterns:{}\r\npubsubshard_channels:{}\r\n",
            snap.pubsub_names[0], snap.pubsub_names[1], snap.pubsub_names[2]
        );
    }
    if wants("replication") {
        section(&mut s, "Replication");
        s.push_str("role:master\r\nconnected_slaves:0\r\n");
    }
    if wants("cpu") {
        section(&mut s, "CPU");
        let (user, sys) = cpu_times();
        let _ = write!(s, "used_cpu_sys:{sys:.6}\r\nused_cpu_user:{user:.6}\r\n");
    }
    if wants("commandstats") {
        section(&mut s, "Commandstats");
        for (slot, name) in (0..NUM_SLOTS)
            .filter(|&i| snap.calls[i] > 0)
            .filter_map(|i| Some((i, slot_name(i)?)))
        {
            let usec = snap.nanos[slot] / 1000;
            // Redis' calls and failed_calls leave out rejected commands.
            let rejected = snap.rejected[slot];
            let calls = snap.calls[slot].saturating_sub(rejected);
            let _ = write!(
                s,
                "cmdstat_{name}:calls={calls},usec={usec},usec_per_call={:.2},rejected_calls={rejected},failed_calls={}\r\n",
                if calls == 0 {
                    0.0
                } else {
                    usec as f64 / calls as f64
                },
                snap.failed[slot].saturating_sub(rejected),
            );
        }
    }
    if wants("errorstats") {
        section(&mut s, "Errorstats");
        for (kind, count) in ERROR_KINDS.iter().zip(&snap.errors) {
            if *count > 0 {
                let _ = write!(s, "errorstat_{kind}:count={count}\r\n");
            }
        }
    }
    if wants("latencystats") {
        section(&mut s, "Latencystats");
        for (lat, name) in view
            .latency
            .iter()
            .filter_map(|l| Some((l, slot_name(l.slot as usize)?)))
        {
            let [p50, _, p99, p999] = lat.quantiles_ns.map(|ns| ns as f64 / 1000.0);
            let _ = write!(
                s,
                "latency_percentiles_usec_{name}:p50={p50:.3},p99={p99:.3},p99.9={p999:.3}\r\n",
            );
        }
    }
    if wants("cluster") {
        section(&mut s, "Cluster");
        let _ = write!(s, "cluster_enabled:{}\r\n", shard.cluster_enabled() as u8);
    }
    if wants("keyspace") {
        section(&mut s, "Keyspace");
        if snap.keys > 0 {
            let _ = write!(
                s,
                "db0:keys={},expires={},avg_ttl={}\r\n",
                snap.keys, snap.expires, snap.avg_ttl_ms
            );
        }
    }
    s
}

fn cpu_times() -> (f64, f64) {
    // SAFETY: getrusage only writes into the struct we hand it.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return (0.0, 0.0);
    }
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    (secs(usage.ru_utime), secs(usage.ru_stime))
}
