//! Cluster mode (issue 16): the slot check every keyed command passes,
//! the CLUSTER command family, READONLY / READWRITE / ASKING.
//!
//! The check (`plan`, then `resolve` when keys must be looked up) runs
//! on the connection's core before a command is routed, against this
//! core's copy of the cluster state (`Shard::cluster`), in Redis 7.0's
//! order (`getNodeByQuery`): every key in one slot (`-CROSSSLOT`), a slot
//! with a live owner (`-CLUSTERDOWN Hash slot not served`), the cluster
//! up (`-CLUSTERDOWN The cluster is down`), then where the slot is: here
//! (run), moving away with keys missing here (`-ASK` to the target, or
//! `-TRYAGAIN` when only some are missing), imported here for a client
//! that sent ASKING (run), or elsewhere (`-MOVED`). Outside cluster mode
//! nothing is checked and the CLUSTER family answers that cluster support
//! is disabled, as Redis.
//!
//! The topology changes only through `CLUSTER SETTOPOLOGY` (Kora's admin
//! command, pushed by `kora cluster`) and `CLUSTER SETSLOT`; both change
//! every core's copy before they answer (`coord::cluster_update`).

use std::rc::Rc;
use std::sync::Arc;

use super::conn::{ClientState, Flow};
use super::{Args, CommandSpec, help_reply, subcommand_arity, unknown_subcommand};
use crate::cluster::{
    ClusterState, Health, NodeId, Redirect, SLOTS, Serving, SlotMove, Topology, key_slot,
    parse_slot,
};
use crate::coord::{Shard, key_args};
use crate::protocol::reply::Resp;

/// Redis' answer to cluster commands outside cluster mode.
pub(crate) const DISABLED: &str = "ERR This instance has cluster support disabled";

/// Whether the client's next command may use a slot this node imports
/// (ASKING, valid for one command, as Redis' `CLIENT_ASKING`).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub enum Asking {
    #[default]
    No,
    /// ASKING was the previous command.
    Next,
}

/// READONLY / READWRITE: which a client asked for. Kora nodes are all
/// primaries, so it changes nothing but what CLIENT LIST would show.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub enum Reads {
    #[default]
    ReadWrite,
    ReadOnly,
}

/// A connection's cluster flags.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct ClusterClient {
    pub asking: Asking,
    pub reads: Reads,
}

/// What [`plan`] decided.
pub(crate) enum Check {
    /// Run the command.
    Run,
    /// Answer this instead.
    Refuse(Redirect),
    /// The slot is moving: whether the keys are here decides
    /// ([`resolve`], after the pipeline before it has completed).
    Lookup(Pending),
}

/// A decision that waits for a look at the keys.
pub(crate) struct Pending {
    slot: u16,
    keys: Vec<Vec<u8>>,
    serving: Serving,
}

/// How MIGRATE is recognised: it runs in a moving slot whatever its keys.
fn is_migrate(spec: &CommandSpec) -> bool {
    spec.name == "migrate"
}

/// The slot check of one command (cluster mode only; keyless commands
/// always run).
pub(crate) fn plan(
    shard: &Shard,
    client: &ClientState,
    spec: &CommandSpec,
    args: &Args<'_>,
) -> Check {
    // RESTORE-ASKING (Redis' `asking` flag, what MIGRATE sends in cluster
    // mode) runs in an importing slot as if ASKING came before it.
    let asking = if spec.flags.contains(&"asking") {
        Asking::Next
    } else {
        client.cluster.asking
    };
    if crate::command::command_info::keys_need_redis_finder(spec) {
        let keys = crate::command::command_info::keys_like_redis(spec, args);
        return plan_keys(shard, asking, is_migrate(spec), || keys.iter().copied());
    }
    plan_keys(shard, asking, is_migrate(spec), || {
        key_args(spec.keys(), args)
    })
}

/// [`plan`] over any set of keys (EXEC passes every queued command's).
fn plan_keys<'a, I: Iterator<Item = &'a [u8]>>(
    shard: &Shard,
    asking: Asking,
    migrate: bool,
    keys: impl Fn() -> I,
) -> Check {
    let state = shard.cluster();
    let mut slot = None;
    // As Redis' `multiple_keys`: several *different* keys (a transaction
    // that sets and reads one key names one key).
    let mut first: Option<&[u8]> = None;
    let mut several = false;
    for key in keys() {
        match first {
            None => first = Some(key),
            Some(f) => several |= f != key,
        }
        let s = key_slot(key);
        match slot {
            // As Redis: a first key nobody serves answers CLUSTERDOWN
            // before the other keys are compared with it.
            None if state.topology.owner(s).is_none() => {
                return Check::Refuse(Redirect::Unbound);
            }
            None => slot = Some(s),
            Some(first) if first != s => return Check::Refuse(Redirect::CrossSlot),
            _ => {}
        }
    }
    let Some(slot) = slot else {
        return Check::Run;
    };
    let serving = match state.serving(slot) {
        Ok(s) => s,
        Err(down) => return Check::Refuse(down),
    };
    match serving {
        Serving::Mine => Check::Run,
        Serving::Migrating { .. } | Serving::Importing { .. } if migrate => Check::Run,
        Serving::Elsewhere { owner } => Check::Refuse(Redirect::Moved(slot, state.address(owner))),
        Serving::Importing { owner } if asking == Asking::No => {
            Check::Refuse(Redirect::Moved(slot, state.address(owner)))
        }
        Serving::Importing { .. } if !several => Check::Run,
        Serving::Migrating { .. } | Serving::Importing { .. } => Check::Lookup(Pending {
            slot,
            keys: keys().map(<[u8]>::to_vec).collect(),
            serving,
        }),
    }
}

/// Finishes a [`Check::Lookup`]: counts which keys exist on this node.
/// For commands the connection runs itself (scripts, blocking commands)
/// and queued ones; a keyed command runs through [`run_guarded`], which
/// looks and runs in one step.
pub(crate) async fn resolve(shard: &Shard, pending: Pending) -> Option<Redirect> {
    let mut present = 0;
    let parts: Vec<_> = pending
        .keys
        .into_iter()
        .map(|key| (shard.owner(&key), move |s: &Shard| s.db().contains(&key)))
        .collect();
    let total = parts.len();
    for found in crate::coord::on_parts(shard, parts).await {
        present += usize::from(found == Some(true));
    }
    decide(shard, pending.slot, pending.serving, present, total)
}

/// Redis' answer in a moving slot once it is known how many of the
/// command's `total` keys are `present` here.
fn decide(
    shard: &Shard,
    slot: u16,
    serving: Serving,
    present: usize,
    total: usize,
) -> Option<Redirect> {
    match serving {
        _ if present == total => None,
        Serving::Migrating { to } if present == 0 => {
            Some(Redirect::Ask(slot, shard.cluster().address(to)))
        }
        // Some keys here, some gone (migrating), or several keys not all
        // imported yet (importing): the client must retry.
        _ => Some(Redirect::TryAgain),
    }
}

/// Runs a keyed command of a moving slot: on the slot's shard (keys go to
/// shards by slot), in one step, its keys are looked up and, when the
/// slot check lets it, the command runs. A MIGRATE on another connection
/// cannot take a key between the look and the run, which would answer
/// nil for a key that exists (Redis does both in one step too). The
/// reply, or the redirection to answer instead.
pub(crate) async fn run_guarded(
    shard: &Shard,
    pending: Pending,
    op: crate::coord::Op,
    args: &Args<'_>,
) -> Result<Vec<u8>, Redirect> {
    let target = crate::coord::Routing::slot_shard(pending.slot, shard.nshards());
    // A moving slot is rare: the copy of the arguments is fine here.
    let mut data = Vec::new();
    let mut ranges = Vec::with_capacity(args.len());
    for arg in args.iter_from(0) {
        let start = data.len();
        data.extend_from_slice(arg);
        ranges.push((start, data.len()));
    }
    let Pending {
        slot,
        keys,
        serving,
    } = pending;
    crate::coord::on(shard, target, move |s: &Shard| {
        let present = {
            let mut db = s.db();
            keys.iter().filter(|k| db.contains(k)).count()
        };
        match decide(s, slot, serving, present, keys.len()) {
            Some(redirect) => Err(redirect),
            None => {
                let mut out = Vec::new();
                s.run_inline(op, &Args::new(&data, &ranges), &mut out);
                Ok(out)
            }
        }
    })
    .await
    .unwrap_or_else(|| Ok(format!("-{}\r\n", crate::command::keys::SHARD_GONE).into_bytes()))
}

/// The slot check of EXEC: every queued command's keys together, as
/// Redis checks a transaction (one slot for all of them).
pub(crate) async fn plan_exec(shard: &Shard, client: &ClientState) -> Option<Redirect> {
    let queued = client.multi.as_ref()?;
    let commands: Vec<(Args<'_>, &'static CommandSpec)> = (0..queued.len())
        .filter_map(|i| {
            let args = queued.args(i);
            super::lookup(args.get(0)).map(|spec| (args, spec))
        })
        .collect();
    let found: Vec<&[u8]> = commands
        .iter()
        .flat_map(|(args, spec)| {
            if crate::command::command_info::keys_need_redis_finder(spec) {
                crate::command::command_info::keys_like_redis(spec, args)
            } else {
                key_args(spec.keys(), args).collect()
            }
        })
        .collect();
    let keys = || found.iter().copied();
    match plan_keys(shard, client.cluster.asking, false, keys) {
        Check::Run => None,
        Check::Refuse(r) => Some(r),
        Check::Lookup(pending) => resolve(shard, pending).await,
    }
}

/// Writes a refusal as the error reply, and counts it.
pub(crate) fn refuse(shard: &Shard, redirect: &Redirect, out: &mut Vec<u8>) {
    shard.metrics().stats.count_redirect(redirect.kind());
    out.error(&redirect.text());
}

/// ASKING: the next command may use a slot this node imports.
pub fn asking(shard: &Shard, client: &mut ClientState, _: &Args, out: &mut Vec<u8>) -> Flow {
    if !shard.cluster_enabled() {
        out.error(DISABLED);
        return Flow::Continue;
    }
    client.cluster.asking = Asking::Next;
    out.ok();
    Flow::Continue
}

/// READONLY / READWRITE.
pub fn readonly(shard: &Shard, client: &mut ClientState, args: &Args, out: &mut Vec<u8>) -> Flow {
    if !shard.cluster_enabled() {
        out.error(DISABLED);
        return Flow::Continue;
    }
    client.cluster.reads = if args.get(0).eq_ignore_ascii_case(b"readonly") {
        Reads::ReadOnly
    } else {
        Reads::ReadWrite
    };
    out.ok();
    Flow::Continue
}

/// The subcommands and their arities (Redis' convention).
const SUBCOMMANDS: &[(&[u8], i32)] = &[
    (b"INFO", 2),
    (b"MYID", 2),
    (b"SLOTS", 2),
    (b"SHARDS", 2),
    (b"NODES", 2),
    (b"KEYSLOT", 3),
    (b"COUNTKEYSINSLOT", 3),
    (b"GETKEYSINSLOT", 4),
    (b"LINKS", 2),
    (b"SETSLOT", -4),
    (b"HELP", 2),
    (b"SETTOPOLOGY", -3),
    (b"GETTOPOLOGY", 2),
];

/// The Redis Cluster subcommands Kora's managed mode replaces with
/// `kora cluster` (no gossip bus, no replicas).
const MANAGED_ELSEWHERE: &[&[u8]] = &[
    b"MEET",
    b"ADDSLOTS",
    b"ADDSLOTSRANGE",
    b"DELSLOTS",
    b"DELSLOTSRANGE",
    b"FLUSHSLOTS",
    b"FORGET",
    b"REPLICATE",
    b"FAILOVER",
    b"RESET",
    b"SAVECONFIG",
    b"BUMPEPOCH",
    b"SET-CONFIG-EPOCH",
    b"COUNT-FAILURE-REPORTS",
    b"REPLICAS",
    b"SLAVES",
];

conn_async!(
    /// `CLUSTER <subcommand> ...`
    cluster_cmd,
    |shard, _client, args, out| {
        let sub = args.get(1).to_ascii_uppercase();
        let Some(&(_, arity)) = SUBCOMMANDS.iter().find(|(name, _)| *name == sub.as_slice())
        else {
            // As Redis: a subcommand Redis does not have is unknown whether
            // or not cluster mode is on; one it has is refused as disabled
            // outside cluster mode.
            if !MANAGED_ELSEWHERE.contains(&sub.as_slice()) {
                unknown_subcommand(out, "CLUSTER", args.get(1));
            } else if shard.cluster_enabled() {
                out.error(&format!(
                    "ERR CLUSTER {} is not supported: Kora clusters are managed (push a topology with `kora cluster`)",
                    String::from_utf8_lossy(&sub)
                ));
            } else {
                out.error(DISABLED);
            }
            return Flow::Continue;
        };
        let fits = if arity < 0 {
            args.len() >= (-arity) as usize
        } else {
            args.len() == arity as usize
        };
        if !fits {
            subcommand_arity(out, "cluster", args.get(1));
            return Flow::Continue;
        }
        if sub == b"HELP" {
            help(out);
            return Flow::Continue;
        }
        if !shard.cluster_enabled() {
            out.error(DISABLED);
            return Flow::Continue;
        }
        match sub.as_slice() {
            b"INFO" => out.bulk(info(&shard.cluster()).as_bytes()),
            b"MYID" => out.bulk(shard.cluster().my_id.as_bytes()),
            b"SLOTS" => slots(&shard.cluster(), out),
            b"SHARDS" => shards(&shard.cluster(), out),
            b"NODES" => out.bulk(nodes(&shard.cluster()).as_bytes()),
            b"LINKS" => out.array(0),
            b"KEYSLOT" => out.int(key_slot(args.get(2)) as i64),
            b"COUNTKEYSINSLOT" => countkeysinslot(shard, args, out).await,
            b"GETKEYSINSLOT" => getkeysinslot(shard, args, out).await,
            b"SETSLOT" => setslot(shard, args, out).await,
            b"SETTOPOLOGY" => settopology(shard, args, out).await,
            b"GETTOPOLOGY" => out.bulk(shard.cluster().topology.to_text().as_bytes()),
            _ => unreachable!("listed in SUBCOMMANDS"),
        }
        Flow::Continue
    }
);

fn help(out: &mut Vec<u8>) {
    help_reply(
        out,
        "CLUSTER",
        &[
            "COUNTKEYSINSLOT <slot>",
            "    Return the number of keys in <slot>.",
            "GETKEYSINSLOT <slot> <count>",
            "    Return key names stored by current node in a slot.",
            "INFO",
            "    Return information about the cluster.",
            "KEYSLOT <key>",
            "    Return the hash slot for <key>.",
            "LINKS",
            "    Return information about all network links between this node and its peers.",
            "    Output format is an array where each array element is a map containing attributes of a link",
            "MYID",
            "    Return the node id.",
            "NODES",
            "    Return cluster configuration seen by node. Output format:",
            "    <id> <ip:port@bus-port[,hostname]> <flags> <master> <pings> <pongs> <epoch> <link> <slot> ...",
            "SETSLOT <slot> (IMPORTING <node-id>|MIGRATING <node-id>|STABLE|NODE <node-id>)",
            "    Set slot state.",
            "SHARDS",
            "    Return information about slot range mappings and the nodes associated with them.",
            "SLOTS",
            "    Return information about slots range mappings. Each range is made of:",
            "    start, end, master and replicas IP addresses, ports and ids",
            "SETTOPOLOGY <topology text> [FORCE]",
            "    (Kora) Replace the topology on this node; refused for an older epoch.",
            "GETTOPOLOGY",
            "    (Kora) Return this node's topology as text.",
        ],
    );
}

/// CLUSTER INFO's text (Redis 7.0's fields; no bus, so no messages).
fn info(state: &ClusterState) -> String {
    let t = &state.topology;
    let assigned = t.slots_assigned();
    let ok = state.slots_ok();
    format!(
        "cluster_state:{}\r\ncluster_slots_assigned:{assigned}\r\ncluster_slots_ok:{ok}\r\n\
         cluster_slots_pfail:0\r\ncluster_slots_fail:{}\r\ncluster_known_nodes:{}\r\n\
         cluster_size:{}\r\ncluster_current_epoch:{}\r\ncluster_my_epoch:{}\r\n\
         cluster_stats_messages_sent:0\r\ncluster_stats_messages_received:0\r\n\
         total_cluster_links_buffer_limit_exceeded:0\r\n",
        if state.ok() { "ok" } else { "fail" },
        assigned - ok,
        t.nodes.len(),
        t.nodes.iter().filter(|n| !n.ranges.is_empty()).count(),
        t.epoch,
        t.epoch,
    )
}

/// Every slot range with its node, ascending.
fn ranges(t: &Topology) -> Vec<(u16, u16, usize)> {
    let mut all: Vec<(u16, u16, usize)> = t
        .nodes
        .iter()
        .enumerate()
        .flat_map(|(i, n)| n.ranges.iter().map(move |&(a, b)| (a, b, i)))
        .collect();
    all.sort_unstable();
    all
}

/// CLUSTER SLOTS: `[start, end, [host, port, id, []]]` per range.
fn slots(state: &ClusterState, out: &mut Vec<u8>) {
    let t = &state.topology;
    let all = ranges(t);
    out.array(all.len());
    for (a, b, i) in all {
        let node = &t.nodes[i];
        out.array(3);
        out.int(a as i64);
        out.int(b as i64);
        out.array(4);
        out.bulk(node.host.as_bytes());
        out.int(node.port as i64);
        out.bulk(node.id.as_bytes());
        out.array(0);
    }
}

/// CLUSTER SHARDS: one shard per node (no replicas), Redis 7.0's fields.
fn shards(state: &ClusterState, out: &mut Vec<u8>) {
    let t = &state.topology;
    let alone = state.me.is_none();
    out.array(t.nodes.len() + usize::from(alone));
    if alone {
        // As a Redis node that has met nobody: a shard of its own.
        let me = crate::cluster::Node {
            id: state.my_id,
            host: state.my_host.clone(),
            port: state.my_port,
            ranges: Vec::new(),
        };
        shard_entry(&me, Health::Online, out);
    }
    for (i, node) in t.nodes.iter().enumerate() {
        shard_entry(node, state.health_of(i), out);
    }
}

/// One CLUSTER SHARDS entry: a node and its slots.
fn shard_entry(node: &crate::cluster::Node, health: Health, out: &mut Vec<u8>) {
    out.array(4);
    out.bulk(b"slots");
    out.array(node.ranges.len() * 2);
    for &(a, b) in &node.ranges {
        out.int(a as i64);
        out.int(b as i64);
    }
    out.bulk(b"nodes");
    out.array(1);
    out.array(14);
    out.bulk(b"id");
    out.bulk(node.id.as_bytes());
    out.bulk(b"port");
    out.int(node.port as i64);
    out.bulk(b"ip");
    out.bulk(node.host.as_bytes());
    out.bulk(b"endpoint");
    out.bulk(node.host.as_bytes());
    out.bulk(b"role");
    out.bulk(b"master");
    out.bulk(b"replication-offset");
    out.int(0);
    out.bulk(b"health");
    out.bulk(match health {
        Health::Online => b"online".as_slice(),
        Health::Fail => b"fail",
    });
}

/// CLUSTER NODES: Redis' line format; `@0` for the bus port (there is no
/// bus); this node's moving slots as `[slot->-id]` / `[slot-<-id]`.
fn nodes(state: &ClusterState) -> String {
    let t = &state.topology;
    let mut text = String::new();
    if state.me.is_none() {
        // As a Redis node that has met nobody: itself, with no slots.
        text.push_str(&format!(
            "{} {}:{}@0 myself,master - 0 0 {} connected\n",
            state.my_id, state.my_host, state.my_port, t.epoch
        ));
    }
    for (i, node) in t.nodes.iter().enumerate() {
        let me = Some(i) == state.me;
        let failed = state.health_of(i) == Health::Fail;
        let flags = match (me, failed) {
            (true, _) => "myself,master",
            (false, true) => "master,fail",
            (false, false) => "master",
        };
        let link = if failed { "disconnected" } else { "connected" };
        text.push_str(&format!(
            "{} {}:{}@0 {flags} - 0 0 {} {link}",
            node.id, node.host, node.port, t.epoch
        ));
        for &(a, b) in &node.ranges {
            if a == b {
                text.push_str(&format!(" {a}"));
            } else {
                text.push_str(&format!(" {a}-{b}"));
            }
        }
        if me {
            let mut moves: Vec<_> = state.moves.iter().collect();
            moves.sort_unstable_by_key(|(slot, _)| **slot);
            for (slot, m) in moves {
                match m {
                    SlotMove::MigratingTo(id) => text.push_str(&format!(" [{slot}->-{id}]")),
                    SlotMove::ImportingFrom(id) => text.push_str(&format!(" [{slot}-<-{id}]")),
                }
            }
        }
        text.push('\n');
    }
    text
}

/// A slot argument: Redis' texts for a non-integer and an out-of-range one.
fn slot_arg(args: &Args, i: usize, out: &mut Vec<u8>, range_error: &str) -> Option<u16> {
    match args.int(i) {
        Err(e) => {
            out.error(e);
            None
        }
        Ok(n) if (0..SLOTS as i64).contains(&n) => Some(n as u16),
        Ok(_) => {
            out.error(range_error);
            None
        }
    }
}

/// The shard holding `slot`'s keys (cluster mode routes keys by slot).
fn slot_shard(shard: &Shard, slot: u16) -> usize {
    crate::coord::Routing::slot_shard(slot, shard.nshards())
}

/// How many keys `slot` has on this node.
async fn keys_in_slot(shard: &Shard, slot: u16) -> u64 {
    crate::coord::on(shard, slot_shard(shard, slot), move |s| {
        s.db().count_in_slot(slot)
    })
    .await
    .unwrap_or(0)
}

async fn countkeysinslot(shard: &Rc<Shard>, args: &Args<'_>, out: &mut Vec<u8>) {
    let Some(slot) = slot_arg(args, 2, out, "ERR Invalid slot") else {
        return;
    };
    out.int(keys_in_slot(shard, slot).await as i64);
}

async fn getkeysinslot(shard: &Rc<Shard>, args: &Args<'_>, out: &mut Vec<u8>) {
    const INVALID: &str = "ERR Invalid slot or number of keys";
    let (slot, count) = match (args.int(2), args.int(3)) {
        (Err(e), _) | (_, Err(e)) => return out.error(e),
        (Ok(slot), Ok(count)) => (slot, count),
    };
    if !(0..SLOTS as i64).contains(&slot) || count < 0 {
        return out.error(INVALID);
    }
    let (slot, count) = (slot as u16, count as usize);
    let keys = crate::coord::on(shard, slot_shard(shard, slot), move |s| {
        s.db().keys_in_slot(slot, count)
    })
    .await
    .unwrap_or_default();
    out.array(keys.len());
    for key in &keys {
        out.bulk(key);
    }
}

/// CLUSTER SETSLOT <slot> IMPORTING|MIGRATING <id> | STABLE | NODE <id>,
/// with Redis 7.0's checks and texts.
async fn setslot(shard: &Rc<Shard>, args: &Args<'_>, out: &mut Vec<u8>) {
    let Some(slot) = parse_slot(args.get(2)) else {
        return out.error("ERR Invalid or out of range slot");
    };
    let action = args.get(3).to_ascii_uppercase();
    let node_arg = match (action.as_slice(), args.len()) {
        (b"IMPORTING" | b"MIGRATING" | b"NODE", 5) => Some(args.get(4)),
        (b"STABLE", 4) => None,
        _ => {
            return out.error(
                "ERR Invalid CLUSTER SETSLOT action or number of arguments. Try CLUSTER HELP",
            );
        }
    };
    let lossy = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let (node, owner, me) = {
        let state = shard.cluster();
        let node = node_arg.map(|id| {
            NodeId::parse(id).and_then(|id| state.topology.index_of(&id).map(|i| (id, i)))
        });
        (node, state.topology.owner(slot), state.me)
    };
    let change: Arc<dyn Fn(&mut ClusterState) + Send + Sync> = match action.as_slice() {
        b"MIGRATING" => {
            if owner.is_none() || owner != me {
                return out.error(&format!("ERR I'm not the owner of hash slot {slot}"));
            }
            let Some(Some((id, _))) = node else {
                return out.error(&format!(
                    "ERR I don't know about node {}",
                    lossy(args.get(4))
                ));
            };
            Arc::new(move |s| {
                s.moves.insert(slot, SlotMove::MigratingTo(id));
            })
        }
        b"IMPORTING" => {
            if owner.is_some() && owner == me {
                return out.error(&format!("ERR I'm already the owner of hash slot {slot}"));
            }
            let Some(Some((id, _))) = node else {
                return out.error(&format!(
                    "ERR I don't know about node {}",
                    lossy(args.get(4))
                ));
            };
            Arc::new(move |s| {
                s.moves.insert(slot, SlotMove::ImportingFrom(id));
            })
        }
        b"STABLE" => Arc::new(move |s| {
            s.moves.remove(&slot);
        }),
        _ => {
            let Some(Some((_, index))) = node else {
                return out.error(&format!("ERR Unknown node {}", lossy(args.get(4))));
            };
            if owner == me && owner.is_some() && Some(index) != me {
                // As Redis: a node gives a slot away only once its keys are.
                if keys_in_slot(shard, slot).await > 0 {
                    return out.error(&format!(
                        "ERR Can't assign hashslot {slot} to a different node while I still hold keys for this hash slot."
                    ));
                }
            }
            Arc::new(move |s| {
                let t = s.topology.with_owner(slot, index);
                s.moves.remove(&slot);
                s.set_topology(Arc::new(t));
            })
        }
    };
    crate::coord::cluster_update(shard, move |s| change(s)).await;
    if action.as_slice() == b"NODE" {
        // As Redis saves nodes.conf: a restarted node keeps the new owner
        // even when no topology push follows (redis-cli --cluster reshard).
        let topology = shard.cluster().topology.clone();
        if let Err(e) = crate::cluster::save_topology(shard.config(), &topology) {
            return out.error(&format!(
                "ERR Slot assigned but not saved to {}: {e}",
                shard.config().cluster_config_file
            ));
        }
    }
    out.ok();
}

/// CLUSTER SETTOPOLOGY <text> [FORCE]: takes a new topology on every core
/// (then writes it to `cluster-config-file`). An older epoch, or the same
/// epoch with other content, is refused unless FORCE.
async fn settopology(shard: &Rc<Shard>, args: &Args<'_>, out: &mut Vec<u8>) {
    let force = match args.len() {
        3 => false,
        4 if args.get(3).eq_ignore_ascii_case(b"FORCE") => true,
        _ => return out.error("ERR syntax error"),
    };
    let Ok(text) = std::str::from_utf8(args.get(2)) else {
        return out.error("ERR Invalid topology: not UTF-8 text");
    };
    let topology = match Topology::parse(text) {
        Ok(t) => t,
        Err(e) => return out.error(&format!("ERR Invalid topology: {e}")),
    };
    {
        let current = &shard.cluster().topology;
        if !force && topology.epoch < current.epoch {
            return out.error(&format!(
                "ERR Topology epoch {} is older than this node's epoch {}",
                topology.epoch, current.epoch
            ));
        }
        if !force && topology.epoch == current.epoch && **current != topology && current.epoch != 0
        {
            return out.error(&format!(
                "ERR Topology epoch {} is this node's epoch with a different topology (bump the epoch or add FORCE)",
                topology.epoch
            ));
        }
    }
    let topology = Arc::new(topology);
    let shared = topology.clone();
    // Each core gets a copy of its own: a script run clones its core's
    // `Arc`, and a count shared by every core would be an atomic shared
    // across cores on the data path.
    crate::coord::cluster_update(shard, move |s| {
        s.set_topology(Arc::new(Topology::clone(&shared)))
    })
    .await;
    match crate::cluster::save_topology(shard.config(), &topology) {
        Ok(()) => out.ok(),
        Err(e) => out.error(&format!(
            "ERR Topology applied but not saved to {}: {e}",
            shard.config().cluster_config_file
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::Coverage;

    fn state() -> ClusterState {
        let mut s = ClusterState::new("127.0.0.1", 7000, Coverage::Full, 15000);
        s.set_topology(Arc::new(
            Topology::parse(
                "epoch 4\nnode 127.0.0.1:7000 0-5460\nnode 127.0.0.1:7001 5461-16383\n",
            )
            .unwrap(),
        ));
        s
    }

    #[test]
    fn nodes_and_info_follow_redis_formats() {
        let mut s = state();
        let other = s.topology.nodes[1].id;
        s.moves.insert(5, SlotMove::MigratingTo(other));
        let text = nodes(&s);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            format!(
                "{} 127.0.0.1:7000@0 myself,master - 0 0 4 connected 0-5460 [5->-{other}]",
                s.my_id
            )
        );
        assert!(lines[1].ends_with("master - 0 0 4 connected 5461-16383"));
        s.health.insert(other, Health::Fail);
        s.refresh();
        assert!(nodes(&s).contains("master,fail - 0 0 4 disconnected"));
        let info = info(&s);
        assert!(info.starts_with("cluster_state:fail\r\ncluster_slots_assigned:16384\r\n"));
        assert!(info.contains("cluster_slots_ok:5461\r\n"));
        assert!(info.contains("cluster_slots_fail:10923\r\n"));
        assert!(info.contains("cluster_current_epoch:4\r\n"));
    }

    #[test]
    fn slots_reply_lists_ranges_in_order() {
        let s = state();
        let mut out = Vec::new();
        slots(&s, &mut out);
        let expected = format!(
            "*2\r\n*3\r\n:0\r\n:5460\r\n*4\r\n$9\r\n127.0.0.1\r\n:7000\r\n$40\r\n{}\r\n*0\r\n\
             *3\r\n:5461\r\n:16383\r\n*4\r\n$9\r\n127.0.0.1\r\n:7001\r\n$40\r\n{}\r\n*0\r\n",
            s.topology.nodes[0].id, s.topology.nodes[1].id
        );
        assert_eq!(String::from_utf8(out).unwrap(), expected);
    }
}
