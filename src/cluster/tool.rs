//! `kora cluster`: the operator tool of the managed cluster mode. Kora has
//! no gossip bus: this tool is what makes the nodes agree. It splits the
//! 16384 hash slots over the nodes (`create`), pushes a topology file to
//! every node (`push`), checks that all nodes hold the same topology and
//! that every slot has an owner (`check`), moves slots with their keys
//! while clients keep working (`reshard`, and `fix` to finish a move that
//! failed half way) and shows one row per node (`info`).
//!
//! It talks to the nodes over RESP only, like any client, with the
//! blocking client of `kora top` ([`crate::top::resp`]): `CLUSTER MYID`,
//! `CLUSTER INFO`, `CLUSTER NODES` (for the open-slot markers), `CLUSTER
//! GETTOPOLOGY` / `SETTOPOLOGY` (Kora's admin pair), `CLUSTER SETSLOT`,
//! `CLUSTER GETKEYSINSLOT`, `MIGRATE … KEYS` and `DBSIZE`.
//!
//! A slot moves as `redis-cli --cluster reshard` moves it: IMPORTING on the
//! destination, MIGRATING on the source (from then on the source answers
//! `-ASK` for keys it no longer has), batches of `GETKEYSINSLOT` + `MIGRATE
//! KEYS` until the source has none left, then `SETSLOT NODE` on the
//! destination, the source and the other nodes. At the end a new topology
//! (epoch + 1) with the moved slots goes to every node, so that the nodes'
//! copies agree again under a higher epoch.
//!
//! Output is plain text on stdout; exit status 0 when everything worked
//! and the cluster checks out, 1 when something failed or the check found
//! a problem, 2 for bad arguments.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::str::FromStr;
use std::sync::OnceLock;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::top::resp::{Reply, RespClient};

use super::{Node, NodeId, SLOTS, Topology};

/// Connect, read and write timeout of the admin commands.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Prints a line on stdout; a closed pipe (`| head`) is not an error
/// worth a panic.
macro_rules! say {
    ($($arg:tt)*) => {{
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

#[derive(Parser, Debug)]
#[command(
    name = "kora cluster",
    about = "Create, check, reshard and inspect a Kora cluster (managed topology, no gossip bus).",
    version
)]
pub(crate) struct ClusterArgs {
    #[command(subcommand)]
    action: Action,
    /// The nodes' password (`requirepass`), sent with AUTH on every
    /// connection and with MIGRATE; default: $REDISCLI_AUTH, as redis-cli.
    #[arg(long, global = true, value_name = "PASSWORD")]
    pass: Option<String>,
}

/// The nodes' password, set once from `--pass` or `$REDISCLI_AUTH`.
static PASSWORD: OnceLock<Option<String>> = OnceLock::new();

fn password() -> Option<&'static str> {
    PASSWORD.get().and_then(|p| p.as_deref())
}

#[derive(Subcommand, Debug, PartialEq)]
enum Action {
    /// Split the 16384 slots evenly over the nodes, in the order given (as
    /// redis-cli --cluster create), and push that topology to every node.
    Create {
        /// The nodes, HOST:PORT as clients should reach them.
        #[arg(required = true, num_args = 1..)]
        nodes: Vec<Addr>,
        /// Create even if a node already has slots assigned or holds keys.
        #[arg(long)]
        force: bool,
    },
    /// Check that every node holds the entry node's topology, that all
    /// 16384 slots are covered and that no slot is left open.
    Check {
        /// Entry node, HOST:PORT.
        node: Addr,
    },
    /// Push a topology file to every node it lists (and to the nodes of
    /// NODE's current topology, so that a removed node learns it too).
    Push {
        /// Topology file (`epoch N` and `node [ID] HOST:PORT SLOTS…` lines).
        file: PathBuf,
        /// Entry node whose current topology's nodes get the file too.
        node: Option<Addr>,
        /// Let the nodes take the file even if its epoch is not above theirs.
        #[arg(long)]
        force: bool,
    },
    /// Move slots, with their keys, from one node to another while clients
    /// keep reading and writing.
    Reshard {
        /// Entry node, HOST:PORT.
        node: Addr,
        /// Source node: its id, a unique id prefix, or HOST:PORT.
        #[arg(long)]
        from: String,
        /// Destination node: its id, a unique id prefix, or HOST:PORT.
        #[arg(long)]
        to: String,
        /// How many slots to move (the source's lowest).
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=SLOTS as i64))]
        slots: u32,
        #[command(flatten)]
        moving: MoveArgs,
    },
    /// Finish moves a failed reshard left open (MIGRATING/IMPORTING slots).
    Fix {
        /// Entry node, HOST:PORT.
        node: Addr,
        #[command(flatten)]
        moving: MoveArgs,
    },
    /// One row per node: id, address, slots, keys, epoch, state.
    Info {
        /// Entry node, HOST:PORT.
        node: Addr,
    },
}

/// How keys move (reshard and fix).
#[derive(clap::Args, Debug, PartialEq, Clone, Copy)]
struct MoveArgs {
    /// Keys per GETKEYSINSLOT + MIGRATE round.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    batch: u32,
    /// MIGRATE's timeout (ms) for each I/O with the destination.
    #[arg(long, default_value_t = 5000, value_parser = clap::value_parser!(u64).range(1..=3_600_000))]
    timeout_ms: u64,
}

impl MoveArgs {
    /// The tool's own read timeout on the source while it runs a MIGRATE:
    /// MIGRATE may spend its timeout on each of several I/Os.
    fn io_timeout(&self) -> Duration {
        ADMIN_TIMEOUT + Duration::from_millis(self.timeout_ms.saturating_mul(3))
    }
}

/// `--force` of create and push.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Force {
    Yes,
    No,
}

impl From<bool> for Force {
    fn from(force: bool) -> Force {
        if force { Force::Yes } else { Force::No }
    }
}

/// A node's address as HOST:PORT (`[v6]:PORT` for IPv6).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Addr {
    host: String,
    port: u16,
}

impl FromStr for Addr {
    type Err = String;

    fn from_str(s: &str) -> Result<Addr, String> {
        let bad = || format!("{s:?} is not HOST:PORT");
        let (host, port) = s.rsplit_once(':').ok_or_else(bad)?;
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        let port: u16 = port.parse().map_err(|_| bad())?;
        if host.is_empty() || port == 0 || host.contains(char::is_whitespace) {
            return Err(bad());
        }
        Ok(Addr {
            host: host.to_string(),
            port,
        })
    }
}

impl fmt::Display for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// Entry point for `kora cluster ARGS…` (`args` without the leading `kora
/// cluster`).
pub fn main(args: impl IntoIterator<Item = OsString>) -> ExitCode {
    let args = match ClusterArgs::try_parse_from(
        std::iter::once(OsString::from("kora cluster")).chain(args),
    ) {
        Ok(a) => a,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let pass = args
        .pass
        .clone()
        .or_else(|| std::env::var("REDISCLI_AUTH").ok())
        .filter(|p| !p.is_empty());
    let _ = PASSWORD.set(pass);
    match run(&args.action) {
        Ok(Outcome::Healthy) => ExitCode::SUCCESS,
        Ok(Outcome::Problems) => ExitCode::from(1),
        Err(e) => {
            eprintln!("kora cluster: {e}");
            ExitCode::from(1)
        }
    }
}

/// What a subcommand found, when it could run at all.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Outcome {
    Healthy,
    Problems,
}

fn run(action: &Action) -> Result<Outcome, String> {
    match action {
        Action::Create { nodes, force } => create(nodes, Force::from(*force)),
        Action::Check { node } => check(node),
        Action::Push { file, node, force } => push(file, node.as_ref(), Force::from(*force)),
        Action::Reshard {
            node,
            from,
            to,
            slots,
            moving,
        } => reshard(node, from, to, *slots, *moving),
        Action::Fix { node, moving } => fix(node, *moving),
        Action::Info { node } => info(node),
    }
}

// ---------------------------------------------------------------------------
// The topology as this tool sees it

/// One node of a topology.
#[derive(Debug, Clone, PartialEq)]
struct Member {
    id: String,
    addr: Addr,
}

/// A topology as a slot → node table, which is what the subcommands edit.
#[derive(Debug, Clone, PartialEq)]
struct Layout {
    epoch: u64,
    nodes: Vec<Member>,
    /// Index into `nodes` of each slot's owner.
    owner: Vec<Option<usize>>,
}

/// The tool's view of a [`Topology`].
fn layout_of(topology: &Topology) -> Layout {
    Layout {
        epoch: topology.epoch,
        nodes: topology
            .nodes
            .iter()
            .map(|node| Member {
                id: node.id.to_string(),
                addr: Addr {
                    host: node.host.clone(),
                    port: node.port,
                },
            })
            .collect(),
        owner: (0..SLOTS as u16).map(|s| topology.owner(s)).collect(),
    }
}

/// Parses topology text (a file, or a node's GETTOPOLOGY answer).
fn parse_layout(text: &str) -> Result<Layout, String> {
    Topology::parse(text).map(|t| layout_of(&t))
}

impl Layout {
    /// The canonical topology text, built by [`Topology::new`] (which
    /// refuses what a node would refuse).
    fn text(&self) -> Result<String, String> {
        let nodes = self
            .nodes
            .iter()
            .enumerate()
            .map(|(index, member)| {
                let id = NodeId::parse(member.id.as_bytes()).ok_or_else(|| {
                    format!("{} has an invalid node id {:?}", member.addr, member.id)
                })?;
                Ok(Node {
                    id,
                    host: member.addr.host.clone(),
                    port: member.addr.port,
                    ranges: self.ranges(index),
                })
            })
            .collect::<Result<Vec<Node>, String>>()?;
        Ok(Topology::new(self.epoch, nodes)?.to_text())
    }

    /// The slots of node `index` as merged ranges.
    fn ranges(&self, index: usize) -> Vec<(u16, u16)> {
        ranges_where(|slot| self.owner[slot] == Some(index))
    }

    fn slot_count(&self, index: usize) -> usize {
        self.owner.iter().filter(|o| **o == Some(index)).count()
    }

    fn uncovered(&self) -> Vec<(u16, u16)> {
        ranges_where(|slot| self.owner[slot].is_none())
    }

    /// A node by id, unique id prefix, or address.
    fn find(&self, selector: &str) -> Result<usize, String> {
        if let Ok(addr) = selector.parse::<Addr>()
            && let Some(i) = self.nodes.iter().position(|n| n.addr == addr)
        {
            return Ok(i);
        }
        let selector_lower = selector.to_ascii_lowercase();
        if let Some(i) = self.nodes.iter().position(|n| n.id == selector_lower) {
            return Ok(i);
        }
        let matches: Vec<usize> = (0..self.nodes.len())
            .filter(|&i| !selector.is_empty() && self.nodes[i].id.starts_with(&selector_lower))
            .collect();
        match matches.as_slice() {
            [i] => Ok(*i),
            [] => Err(format!(
                "no node {selector:?} in the topology (nodes: {})",
                self.nodes
                    .iter()
                    .map(|n| format!("{} {}", short(&n.id), n.addr))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            _ => Err(format!("{selector:?} matches several node ids")),
        }
    }

    fn describe(&self, index: usize) -> String {
        let node = &self.nodes[index];
        format!("{} ({})", node.addr, short(&node.id))
    }
}

/// Merged ranges of the slots for which `pick` holds.
fn ranges_where(pick: impl Fn(usize) -> bool) -> Vec<(u16, u16)> {
    let mut ranges = Vec::new();
    let mut start: Option<usize> = None;
    for slot in 0..=SLOTS {
        let inside = slot < SLOTS && pick(slot);
        match (inside, start) {
            (true, None) => start = Some(slot),
            (false, Some(first)) => {
                ranges.push((first as u16, (slot - 1) as u16));
                start = None;
            }
            _ => {}
        }
    }
    ranges
}

fn show_ranges(ranges: &[(u16, u16)]) -> String {
    ranges
        .iter()
        .map(|&(a, b)| {
            if a == b {
                a.to_string()
            } else {
                format!("{a}-{b}")
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// The first 8 characters of a node id, as redis-cli shows it.
fn short(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}

/// The slot ranges `redis-cli --cluster create` gives `nodes` masters:
/// 16384/n slots each as a float, every boundary rounded, the last node
/// taking the rest (so 3 nodes get 0-5460, 5461-10922, 10923-16383).
fn split_slots(nodes: usize) -> Result<Vec<(u16, u16)>, String> {
    if nodes == 0 || nodes > SLOTS {
        return Err(format!("a cluster has 1 to {SLOTS} nodes, not {nodes}"));
    }
    // f32 as redis-cli computes it, so that the boundaries match its own.
    let per_node = SLOTS as f32 / nodes as f32;
    let mut cursor = 0.0f32;
    let mut first = 0i64;
    let mut ranges = Vec::with_capacity(nodes);
    for i in 0..nodes {
        let mut last = (cursor + per_node - 1.0).round() as i64;
        if last > SLOTS as i64 - 1 || i == nodes - 1 {
            last = SLOTS as i64 - 1;
        }
        if last < first {
            last = first;
        }
        ranges.push((first as u16, last as u16));
        first = last + 1;
        cursor += per_node;
    }
    Ok(ranges)
}

// ---------------------------------------------------------------------------
// Talking to nodes

/// A connection to one node; every failure names the node.
struct Conn {
    addr: Addr,
    client: RespClient,
    /// An I/O error leaves the stream at an unknown place in a reply.
    broken: bool,
}

impl Conn {
    fn open(addr: &Addr, timeout: Duration) -> Result<Conn, String> {
        let mut conn = RespClient::connect(&addr.host, addr.port, timeout)
            .map(|client| Conn {
                addr: addr.clone(),
                client,
                broken: false,
            })
            .map_err(|e| format!("cannot reach {addr}: {e}"))?;
        if let Some(pass) = password() {
            conn.ok(&[b"AUTH", pass.as_bytes()])?;
        }
        Ok(conn)
    }

    fn call(&mut self, args: &[&[u8]]) -> Result<Reply, String> {
        // "CLUSTER SETSLOT", "MIGRATE": enough to say what failed.
        let words = if args
            .first()
            .is_some_and(|a| a.eq_ignore_ascii_case(b"CLUSTER"))
        {
            2
        } else {
            1
        };
        let name = args
            .iter()
            .take(words)
            .map(|a| String::from_utf8_lossy(a).to_ascii_uppercase())
            .collect::<Vec<_>>()
            .join(" ");
        if self.broken {
            return Err(format!("{}: connection lost earlier", self.addr));
        }
        match self.client.call(args) {
            Ok(Reply::Error(e)) => Err(format!("{}: {name}: {e}", self.addr)),
            Ok(reply) => Ok(reply),
            Err(e) => {
                self.broken = true;
                Err(format!("{}: {name}: {e}", self.addr))
            }
        }
    }

    fn text(&mut self, args: &[&[u8]]) -> Result<String, String> {
        match self.call(args)? {
            Reply::Bulk(Some(b)) => {
                String::from_utf8(b).map_err(|_| format!("{}: non-UTF-8 answer", self.addr))
            }
            Reply::Status(s) => Ok(s),
            other => Err(format!("{}: unexpected answer {other:?}", self.addr)),
        }
    }

    fn ok(&mut self, args: &[&[u8]]) -> Result<(), String> {
        match self.call(args)? {
            Reply::Status(s) if s == "OK" => Ok(()),
            other => Err(format!("{}: unexpected answer {other:?}", self.addr)),
        }
    }

    fn int(&mut self, args: &[&[u8]]) -> Result<i64, String> {
        match self.call(args)? {
            Reply::Int(n) => Ok(n),
            other => Err(format!("{}: unexpected answer {other:?}", self.addr)),
        }
    }

    fn myid(&mut self) -> Result<String, String> {
        self.text(&[b"CLUSTER", b"MYID"])
    }

    fn info(&mut self) -> Result<ClusterInfo, String> {
        let text = self.text(&[b"CLUSTER", b"INFO"])?;
        Ok(ClusterInfo::parse(&text))
    }

    fn topology(&mut self) -> Result<(String, Layout), String> {
        let text = self.text(&[b"CLUSTER", b"GETTOPOLOGY"])?;
        let layout =
            parse_layout(&text).map_err(|e| format!("{}: unreadable topology: {e}", self.addr))?;
        Ok((text, layout))
    }

    fn open_slots(&mut self) -> Result<Vec<OpenSlot>, String> {
        Ok(open_slots(&self.text(&[b"CLUSTER", b"NODES"])?))
    }

    fn set_topology(&mut self, text: &str, force: Force) -> Result<(), String> {
        match force {
            Force::Yes => self.ok(&[b"CLUSTER", b"SETTOPOLOGY", text.as_bytes(), b"FORCE"]),
            Force::No => self.ok(&[b"CLUSTER", b"SETTOPOLOGY", text.as_bytes()]),
        }
    }

    fn setslot(&mut self, slot: u16, how: &[u8], id: Option<&str>) -> Result<(), String> {
        let slot = slot.to_string();
        match id {
            Some(id) => self.ok(&[b"CLUSTER", b"SETSLOT", slot.as_bytes(), how, id.as_bytes()]),
            None => self.ok(&[b"CLUSTER", b"SETSLOT", slot.as_bytes(), how]),
        }
    }
}

/// The fields of CLUSTER INFO this tool reads.
#[derive(Debug, Default, PartialEq)]
struct ClusterInfo {
    state_ok: bool,
    current_epoch: u64,
    slots_assigned: u64,
}

impl ClusterInfo {
    fn parse(text: &str) -> ClusterInfo {
        let mut info = ClusterInfo::default();
        for line in text.lines() {
            let Some((name, value)) = line.trim_end().split_once(':') else {
                continue;
            };
            match name {
                "cluster_state" => info.state_ok = value == "ok",
                "cluster_current_epoch" => info.current_epoch = value.parse().unwrap_or(0),
                "cluster_slots_assigned" => info.slots_assigned = value.parse().unwrap_or(0),
                _ => {}
            }
        }
        info
    }
}

/// Which side of a move a node is on.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Side {
    /// `[slot->-peer]`: keys leave this node for `peer`.
    Migrating,
    /// `[slot-<-peer]`: keys arrive from `peer`.
    Importing,
}

#[derive(Debug, Clone, PartialEq)]
struct OpenSlot {
    slot: u16,
    side: Side,
    peer: String,
}

/// The open-slot markers of CLUSTER NODES' `myself` line.
fn open_slots(nodes: &str) -> Vec<OpenSlot> {
    let Some(line) = nodes.lines().find(|l| {
        l.split(' ')
            .nth(2)
            .is_some_and(|flags| flags.split(',').any(|f| f == "myself"))
    }) else {
        return Vec::new();
    };
    line.split(' ')
        .filter_map(|word| {
            let inner = word.strip_prefix('[')?.strip_suffix(']')?;
            let (slot, side, peer) = if let Some((slot, peer)) = inner.split_once("->-") {
                (slot, Side::Migrating, peer)
            } else {
                let (slot, peer) = inner.split_once("-<-")?;
                (slot, Side::Importing, peer)
            };
            Some(OpenSlot {
                slot: slot.parse().ok()?,
                side,
                peer: peer.to_string(),
            })
        })
        .collect()
}

// ---------------------------------------------------------------------------
// check

/// What one node says, as far as it could be asked.
struct NodeReport {
    id: Result<String, String>,
    topology: Result<(String, Layout), String>,
    info: Result<ClusterInfo, String>,
    open: Result<Vec<OpenSlot>, String>,
}

fn inspect(addr: &Addr) -> Result<NodeReport, String> {
    let mut conn = Conn::open(addr, ADMIN_TIMEOUT)?;
    let report = NodeReport {
        id: conn.myid(),
        topology: conn.topology(),
        info: conn.info(),
        open: conn.open_slots(),
    };
    if conn.broken {
        // One line for a node that went away (a process that exits can
        // accept a connection and reset it), not one per question.
        let first = [
            report.id.as_ref().err(),
            report.topology.as_ref().err(),
            report.info.as_ref().err(),
            report.open.as_ref().err(),
        ]
        .into_iter()
        .flatten()
        .next()
        .cloned()
        .unwrap_or_default();
        return Err(format!(
            "cannot reach {addr}: lost the connection ({first})"
        ));
    }
    Ok(report)
}

/// The entry node's topology, which must list at least one node.
fn entry_topology(entry: &Addr) -> Result<(String, Layout), String> {
    let (text, layout) = Conn::open(entry, ADMIN_TIMEOUT)?.topology()?;
    if layout.nodes.is_empty() {
        return Err(format!(
            "{entry} has no topology: run `kora cluster create` or `kora cluster push` first"
        ));
    }
    Ok((text, layout))
}

fn check(entry: &Addr) -> Result<Outcome, String> {
    let (text, layout) = Conn::open(entry, ADMIN_TIMEOUT)?.topology()?;
    Ok(check_layout(entry, &text, &layout))
}

/// Checks the nodes of `layout` (the entry node's topology, `text`)
/// against it and prints the report.
fn check_layout(entry: &Addr, text: &str, layout: &Layout) -> Outcome {
    say!(
        ">>> Checking the cluster through {entry}: epoch {}, {} node(s)",
        layout.epoch,
        layout.nodes.len()
    );
    let mut problems: Vec<String> = Vec::new();
    let mut open_count = 0usize;
    if layout.nodes.is_empty() {
        problems.push(format!(
            "{entry} has no topology: run `kora cluster create` or `kora cluster push`"
        ));
    }
    for (index, node) in layout.nodes.iter().enumerate() {
        say!("N: {} {}", node.id, node.addr);
        say!(
            "   slots:[{}] ({} slots)",
            show_ranges(&layout.ranges(index)),
            layout.slot_count(index)
        );
        let report = match inspect(&node.addr) {
            Ok(r) => r,
            Err(e) => {
                problems.push(format!("{e} (node {})", short(&node.id)));
                continue;
            }
        };
        match &report.id {
            Ok(id) if *id != node.id => problems.push(format!(
                "{} answers as node {id}, the topology says {}",
                node.addr, node.id
            )),
            Ok(_) => {}
            Err(e) => problems.push(e.clone()),
        }
        match &report.topology {
            Ok((their_text, theirs)) if their_text != text => {
                let differing = (0..SLOTS)
                    .filter(|&s| {
                        layout.owner[s].map(|i| &layout.nodes[i].id)
                            != theirs.owner[s].map(|i| &theirs.nodes[i].id)
                    })
                    .count();
                problems.push(format!(
                    "{} disagrees: its topology has epoch {} ({} at {entry}), {differing} slot(s) with another owner",
                    node.addr, theirs.epoch, layout.epoch
                ));
            }
            Ok(_) => {}
            Err(e) => problems.push(e.clone()),
        }
        match &report.info {
            Ok(info) if !info.state_ok => {
                problems.push(format!("{} reports cluster_state:fail", node.addr))
            }
            Ok(_) => {}
            Err(e) => problems.push(e.clone()),
        }
        match &report.open {
            Ok(open) => {
                for o in open {
                    open_count += 1;
                    let peer = layout
                        .find(&o.peer)
                        .map(|i| layout.describe(i))
                        .unwrap_or_else(|_| o.peer.clone());
                    problems.push(match o.side {
                        Side::Migrating => {
                            format!(
                                "{} has slot {} open: MIGRATING to {peer}",
                                node.addr, o.slot
                            )
                        }
                        Side::Importing => format!(
                            "{} has slot {} open: IMPORTING from {peer}",
                            node.addr, o.slot
                        ),
                    });
                }
            }
            Err(e) => problems.push(e.clone()),
        }
    }
    let uncovered = layout.uncovered();
    let missing: usize = uncovered.iter().map(|&(a, b)| (b - a) as usize + 1).sum();
    if missing > 0 {
        problems.push(format!(
            "{missing} slot(s) have no owner: {}",
            show_ranges(&uncovered)
        ));
    } else {
        say!("[OK] All {SLOTS} slots covered.");
    }
    if open_count > 0 {
        problems.push(format!(
            "{open_count} open slot marker(s): a reshard is running or failed; `kora cluster fix {entry}` finishes the moves"
        ));
    }
    if problems.is_empty() {
        say!(
            "[OK] All {} node(s) agree on the topology (epoch {}).",
            layout.nodes.len(),
            layout.epoch
        );
        Outcome::Healthy
    } else {
        for p in &problems {
            say!("[ERR] {p}");
        }
        Outcome::Problems
    }
}

// ---------------------------------------------------------------------------
// create and push

fn create(addrs: &[Addr], force: Force) -> Result<Outcome, String> {
    for (i, a) in addrs.iter().enumerate() {
        if addrs[..i].contains(a) {
            return Err(format!("{a} is given twice"));
        }
    }
    let ranges = split_slots(addrs.len())?;
    let mut nodes = Vec::with_capacity(addrs.len());
    let mut max_epoch = 0u64;
    let mut refusals = Vec::new();
    for addr in addrs {
        let mut conn = Conn::open(addr, ADMIN_TIMEOUT)?;
        let id = conn.myid()?;
        let info = conn.info()?;
        let keys = conn.int(&[b"DBSIZE"])?;
        max_epoch = max_epoch.max(info.current_epoch);
        if info.slots_assigned > 0 {
            refusals.push(format!(
                "{addr} already has {} slot(s) assigned (epoch {})",
                info.slots_assigned, info.current_epoch
            ));
        }
        if keys > 0 {
            refusals.push(format!("{addr} holds {keys} key(s)"));
        }
        if nodes.iter().any(|m: &Member| m.id == id) {
            return Err(format!(
                "{addr} answers with node id {id}, as another node given: the same server twice?"
            ));
        }
        nodes.push(Member {
            id,
            addr: addr.clone(),
        });
    }
    if !refusals.is_empty() && force == Force::No {
        return Err(format!(
            "not creating a cluster over nodes in use ({}); --force creates it anyway",
            refusals.join("; ")
        ));
    }
    let mut layout = Layout {
        epoch: max_epoch + 1,
        nodes,
        owner: vec![None; SLOTS],
    };
    for (index, &(first, last)) in ranges.iter().enumerate() {
        for slot in first..=last {
            layout.owner[slot as usize] = Some(index);
        }
    }
    say!(
        ">>> Creating a cluster of {} node(s), epoch {}",
        addrs.len(),
        layout.epoch
    );
    for (index, node) in layout.nodes.iter().enumerate() {
        say!(
            "Node {} {} -> slots {} ({} slots)",
            short(&node.id),
            node.addr,
            show_ranges(&layout.ranges(index)),
            layout.slot_count(index)
        );
    }
    let text = layout.text()?;
    let targets: Vec<Addr> = addrs.to_vec();
    if push_text(&text, &targets, Force::No) > 0 {
        return Ok(Outcome::Problems);
    }
    check(&addrs[0])
}

/// Sends `text` to every target, printing one line per node; returns how
/// many refused or could not be reached.
fn push_text(text: &str, targets: &[Addr], force: Force) -> usize {
    say!(">>> Pushing the topology to {} node(s)", targets.len());
    let mut failed = 0;
    for addr in targets {
        match Conn::open(addr, ADMIN_TIMEOUT).and_then(|mut c| c.set_topology(text, force)) {
            Ok(()) => say!("{addr}: OK"),
            Err(e) => {
                failed += 1;
                say!("[ERR] {e}");
            }
        }
    }
    failed
}

fn push(file: &PathBuf, entry: Option<&Addr>, force: Force) -> Result<Outcome, String> {
    let raw = std::fs::read_to_string(file)
        .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    let layout = parse_layout(&raw).map_err(|e| format!("{}: {e}", file.display()))?;
    if layout.nodes.is_empty() {
        return Err(format!("{} lists no node", file.display()));
    }
    let mut targets: Vec<Addr> = layout.nodes.iter().map(|n| n.addr.clone()).collect();
    if let Some(entry) = entry {
        let (_, current) = Conn::open(entry, ADMIN_TIMEOUT)?.topology()?;
        for addr in std::iter::once(entry).chain(current.nodes.iter().map(|n| &n.addr)) {
            if !targets.contains(addr) {
                targets.push(addr.clone());
            }
        }
    }
    if force == Force::No {
        let highest = highest_epoch(&targets);
        if layout.epoch < highest {
            return Err(format!(
                "{} has epoch {}, below the nodes' {highest}: write `epoch {}` in it (or push with --force)",
                file.display(),
                layout.epoch,
                highest + 1
            ));
        }
        let stranded = stranded_keys(&layout, &targets);
        if !stranded.is_empty() {
            return Err(format!(
                "pushing {} would leave keys where clients no longer look: {}; move those slots with \
                 `kora cluster reshard` first (or push with --force)",
                file.display(),
                stranded.join("; ")
            ));
        }
    }
    let text = layout.text()?;
    if push_text(&text, &targets, force) > 0 {
        if force == Force::No {
            say!(
                "A node takes a topology whose epoch is above its own, or equal with the same content: \
                 raise the file's epoch (or push with --force)."
            );
        }
        return Ok(Outcome::Problems);
    }
    check(&layout.nodes[0].addr)
}

/// Nodes that hold keys in slots they own now and would not own under
/// `layout` (a push changes owners, it does not move keys). Nodes that do
/// not answer are left to the push to report.
fn stranded_keys(layout: &Layout, targets: &[Addr]) -> Vec<String> {
    let mut found = Vec::new();
    for addr in targets {
        let Ok(mut conn) = Conn::open(addr, ADMIN_TIMEOUT) else {
            continue;
        };
        let (Ok(id), Ok((_, current)), Ok(keys)) =
            (conn.myid(), conn.topology(), conn.int(&[b"DBSIZE"]))
        else {
            continue;
        };
        let Some(me) = current.nodes.iter().position(|n| n.id == id) else {
            continue;
        };
        if keys == 0 {
            continue;
        }
        let next = layout.nodes.iter().position(|n| n.id == id);
        let mut losing = vec![false; SLOTS];
        let mut count = 0i64;
        for (slot, lost) in losing.iter_mut().enumerate() {
            if current.owner[slot] != Some(me) || (next.is_some() && layout.owner[slot] == next) {
                continue;
            }
            let n = conn
                .int(&[b"CLUSTER", b"COUNTKEYSINSLOT", slot.to_string().as_bytes()])
                .unwrap_or(0);
            if n > 0 {
                count += n;
                *lost = true;
            }
        }
        if count > 0 {
            found.push(format!(
                "{addr} holds {count} key(s) in slots it would no longer own ({})",
                show_ranges(&ranges_where(|s| losing[s]))
            ));
        }
    }
    found
}

/// The highest `cluster_current_epoch` among the nodes that answer.
fn highest_epoch(targets: &[Addr]) -> u64 {
    targets
        .iter()
        .filter_map(|a| Conn::open(a, ADMIN_TIMEOUT).and_then(|mut c| c.info()).ok())
        .map(|i| i.current_epoch)
        .max()
        .unwrap_or(0)
}

// ---------------------------------------------------------------------------
// reshard and fix

/// Moves one slot's keys from `src` to `dst` and hands the slot over: the
/// steps of `redis-cli --cluster reshard`. An error leaves the slot open.
fn move_slot(
    src: &mut Conn,
    dst: &mut Conn,
    src_id: &str,
    dst_id: &str,
    slot: u16,
    moving: MoveArgs,
) -> Result<u64, String> {
    dst.setslot(slot, b"IMPORTING", Some(src_id))?;
    src.setslot(slot, b"MIGRATING", Some(dst_id))?;
    let host = dst.addr.host.clone();
    let port = dst.addr.port.to_string();
    let timeout = moving.timeout_ms.to_string();
    let slot_arg = slot.to_string();
    let batch = moving.batch.to_string();
    let mut moved = 0u64;
    let mut previous: Vec<Vec<u8>> = Vec::new();
    loop {
        let keys = match src.call(&[
            b"CLUSTER",
            b"GETKEYSINSLOT",
            slot_arg.as_bytes(),
            batch.as_bytes(),
        ])? {
            Reply::Array(Some(items)) => items
                .into_iter()
                .map(|k| match k {
                    Reply::Bulk(Some(k)) => Ok(k),
                    other => Err(format!("{}: unexpected key {other:?}", src.addr)),
                })
                .collect::<Result<Vec<_>, _>>()?,
            other => return Err(format!("{}: unexpected answer {other:?}", src.addr)),
        };
        if keys.is_empty() {
            break;
        }
        if keys == previous {
            return Err(format!(
                "{}: MIGRATE answered OK but the keys are still there",
                src.addr
            ));
        }
        let mut args: Vec<&[u8]> = vec![
            b"MIGRATE",
            host.as_bytes(),
            port.as_bytes(),
            b"",
            b"0",
            timeout.as_bytes(),
            b"REPLACE",
        ];
        if let Some(pass) = password() {
            args.extend([b"AUTH".as_slice(), pass.as_bytes()]);
        }
        args.push(b"KEYS");
        args.extend(keys.iter().map(|k| k.as_slice()));
        match src.call(&args)? {
            // NOKEY: they expired or were deleted since GETKEYSINSLOT.
            Reply::Status(s) if s == "OK" || s == "NOKEY" => {}
            other => return Err(format!("{}: MIGRATE answered {other:?}", src.addr)),
        }
        moved += keys.len() as u64;
        previous = keys;
    }
    // The destination first: once the source says NODE it redirects every
    // client there, and the destination must then serve them.
    dst.setslot(slot, b"NODE", Some(dst_id))?;
    src.setslot(slot, b"NODE", Some(dst_id))?;
    Ok(moved)
}

/// Opens every node of `layout`, refusing to go on if one cannot be reached.
fn open_all(layout: &Layout, timeout: Duration) -> Result<Vec<Conn>, String> {
    layout
        .nodes
        .iter()
        .map(|n| Conn::open(&n.addr, timeout))
        .collect()
}

/// Tells the nodes other than `src` and `dst` that `slot` is now `dst_id`'s
/// (their copy, until the new topology arrives; best effort).
fn announce(conns: &mut [Conn], skip: [usize; 2], slot: u16, dst_id: &str) {
    for (i, conn) in conns.iter_mut().enumerate() {
        if skip.contains(&i) {
            continue;
        }
        if let Err(e) = conn.setslot(slot, b"NODE", Some(dst_id)) {
            say!("[WARN] {e}");
        }
    }
}

/// Two distinct elements of a slice, mutably.
fn pair_mut<T>(items: &mut [T], a: usize, b: usize) -> (&mut T, &mut T) {
    assert_ne!(a, b);
    if a < b {
        let (left, right) = items.split_at_mut(b);
        (&mut left[a], &mut right[0])
    } else {
        let (left, right) = items.split_at_mut(a);
        (&mut right[0], &mut left[b])
    }
}

/// Pushes `layout` with the moves done so far under a new epoch and checks.
fn publish(entry: &Addr, mut layout: Layout) -> Result<Outcome, String> {
    let targets: Vec<Addr> = layout.nodes.iter().map(|n| n.addr.clone()).collect();
    layout.epoch = highest_epoch(&targets).max(layout.epoch) + 1;
    let text = layout.text()?;
    say!(">>> New topology: epoch {}", layout.epoch);
    if push_text(&text, &targets, Force::No) > 0 {
        return Ok(Outcome::Problems);
    }
    check(entry)
}

fn reshard(
    entry: &Addr,
    from: &str,
    to: &str,
    count: u32,
    moving: MoveArgs,
) -> Result<Outcome, String> {
    let (text, mut layout) = entry_topology(entry)?;
    let src = layout.find(from)?;
    let dst = layout.find(to)?;
    if src == dst {
        return Err("--from and --to name the same node".to_string());
    }
    if check_layout(entry, &text, &layout) == Outcome::Problems {
        return Err(
            "the cluster must check out before a reshard (see above; `kora cluster fix` closes open slots)"
                .to_string(),
        );
    }
    let slots: Vec<u16> = (0..SLOTS)
        .filter(|&s| layout.owner[s] == Some(src))
        .take(count as usize)
        .map(|s| s as u16)
        .collect();
    if slots.len() < count as usize {
        return Err(format!(
            "{} owns {} slot(s), fewer than --slots {count}",
            layout.describe(src),
            slots.len()
        ));
    }
    let mut conns = open_all(&layout, moving.io_timeout())?;
    let src_id = layout.nodes[src].id.clone();
    let dst_id = layout.nodes[dst].id.clone();
    say!(
        ">>> Moving {count} slot(s) from {} to {}",
        layout.describe(src),
        layout.describe(dst)
    );
    let mut total = 0u64;
    for (done, &slot) in slots.iter().enumerate() {
        let (s, d) = pair_mut(&mut conns, src, dst);
        match move_slot(s, d, &src_id, &dst_id, slot, moving) {
            Ok(keys) => {
                total += keys;
                announce(&mut conns, [src, dst], slot, &dst_id);
                layout.owner[slot as usize] = Some(dst);
                say!("Moved slot {slot} ({keys} keys) [{}/{count}]", done + 1);
            }
            Err(e) => {
                say!("[ERR] slot {slot}: {e}");
                say!(
                    "[ERR] slot {slot} is left open (IMPORTING on {}, MIGRATING on {}); once the cause is fixed, `kora cluster fix {entry}` finishes the move",
                    layout.nodes[dst].addr,
                    layout.nodes[src].addr
                );
                if done > 0 {
                    say!(">>> Publishing the {done} slot(s) moved before the failure");
                    publish(entry, layout)?;
                }
                return Ok(Outcome::Problems);
            }
        }
    }
    say!(">>> Moved {count} slot(s), {total} key(s)");
    publish(entry, layout)
}

fn fix(entry: &Addr, moving: MoveArgs) -> Result<Outcome, String> {
    let (_, mut layout) = entry_topology(entry)?;
    let mut conns = open_all(&layout, moving.io_timeout())?;
    // slot → (source, destination), from either side's marker.
    let mut moves: BTreeMap<u16, (usize, usize)> = BTreeMap::new();
    for (node, conn) in conns.iter_mut().enumerate() {
        for open in conn.open_slots()? {
            let Ok(peer) = layout.find(&open.peer) else {
                say!(
                    "[WARN] {}: slot {} is open towards unknown node {}: clearing it",
                    conn.addr,
                    open.slot,
                    open.peer
                );
                conn.setslot(open.slot, b"STABLE", None)?;
                continue;
            };
            let pair = match open.side {
                Side::Migrating => (node, peer),
                Side::Importing => (peer, node),
            };
            // A migrating marker names the move for sure; an importing one
            // only if the source still owns the slot.
            moves
                .entry(open.slot)
                .and_modify(|p| {
                    if open.side == Side::Migrating {
                        *p = pair
                    }
                })
                .or_insert(pair);
        }
    }
    if moves.is_empty() {
        say!("No open slots.");
        return check(entry);
    }
    for (&slot, &(src, dst)) in &moves {
        say!(
            ">>> Finishing the move of slot {slot} from {} to {}",
            layout.describe(src),
            layout.describe(dst)
        );
        let src_id = layout.nodes[src].id.clone();
        let dst_id = layout.nodes[dst].id.clone();
        let (s, d) = pair_mut(&mut conns, src, dst);
        let keys = move_slot(s, d, &src_id, &dst_id, slot, moving)
            .map_err(|e| format!("slot {slot} is still open: {e}"))?;
        announce(&mut conns, [src, dst], slot, &dst_id);
        layout.owner[slot as usize] = Some(dst);
        say!("Moved slot {slot} ({keys} keys)");
    }
    publish(entry, layout)
}

// ---------------------------------------------------------------------------
// info

fn info(entry: &Addr) -> Result<Outcome, String> {
    let (_, layout) = entry_topology(entry)?;
    let mut rows = vec![[
        "ID".to_string(),
        "ADDRESS".to_string(),
        "SLOTS".to_string(),
        "KEYS".to_string(),
        "EPOCH".to_string(),
        "STATE".to_string(),
    ]];
    let mut outcome = Outcome::Healthy;
    let mut keys_total = 0i64;
    for (index, node) in layout.nodes.iter().enumerate() {
        let answered = Conn::open(&node.addr, ADMIN_TIMEOUT)
            .and_then(|mut c| Ok((c.int(&[b"DBSIZE"])?, c.info()?)));
        let (keys, epoch, state) = match answered {
            Ok((keys, info)) => {
                keys_total += keys;
                if !info.state_ok {
                    outcome = Outcome::Problems;
                }
                (
                    keys.to_string(),
                    info.current_epoch.to_string(),
                    if info.state_ok { "ok" } else { "fail" }.to_string(),
                )
            }
            Err(_) => {
                outcome = Outcome::Problems;
                ("-".into(), "-".into(), "unreachable".into())
            }
        };
        rows.push([
            short(&node.id).to_string(),
            node.addr.to_string(),
            layout.slot_count(index).to_string(),
            keys,
            epoch,
            state,
        ]);
    }
    let mut widths = [0usize; 6];
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    for row in &rows {
        let line: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        say!("{}", line.join("  ").trim_end());
    }
    let assigned = layout.owner.iter().filter(|o| o.is_some()).count();
    say!(
        "{keys_total} key(s) in {} node(s), {assigned} of {SLOTS} slots assigned, epoch {}",
        layout.nodes.len(),
        layout.epoch
    );
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_split_as_redis_cli_does() {
        // Printed by redis-cli 7.0 --cluster create for 3, 4, 5 and 7 masters.
        assert_eq!(
            split_slots(3).unwrap(),
            vec![(0, 5460), (5461, 10922), (10923, 16383)]
        );
        assert_eq!(
            split_slots(4).unwrap(),
            vec![(0, 4095), (4096, 8191), (8192, 12287), (12288, 16383)]
        );
        assert_eq!(
            split_slots(5).unwrap(),
            vec![
                (0, 3276),
                (3277, 6553),
                (6554, 9829),
                (9830, 13106),
                (13107, 16383)
            ]
        );
        assert_eq!(
            split_slots(7).unwrap(),
            vec![
                (0, 2340),
                (2341, 4680),
                (4681, 7021),
                (7022, 9361),
                (9362, 11702),
                (11703, 14042),
                (14043, 16383)
            ]
        );
        assert_eq!(split_slots(1).unwrap(), vec![(0, 16383)]);
        assert!(split_slots(0).is_err());
        assert!(split_slots(SLOTS + 1).is_err());
    }

    #[test]
    fn every_split_covers_all_slots_once_and_evenly() {
        for n in [1, 2, 3, 6, 10, 100, 1000, 5461, 16383, SLOTS] {
            let ranges = split_slots(n).unwrap();
            assert_eq!(ranges.len(), n);
            assert_eq!(ranges[0].0, 0);
            assert_eq!(ranges[n - 1].1, 16383);
            for pair in ranges.windows(2) {
                assert_eq!(pair[0].1 + 1, pair[1].0, "{n} nodes: contiguous");
            }
            let sizes: Vec<usize> = ranges.iter().map(|&(a, b)| (b - a) as usize + 1).collect();
            let (min, max) = (sizes.iter().min().unwrap(), sizes.iter().max().unwrap());
            assert!(max - min <= 1, "{n} nodes: sizes {min}..{max}");
        }
    }

    fn parse(args: &[&str]) -> Result<Action, clap::Error> {
        ClusterArgs::try_parse_from(std::iter::once("kora cluster").chain(args.iter().copied()))
            .map(|a| a.action)
    }

    fn addr(s: &str) -> Addr {
        s.parse().unwrap()
    }

    #[test]
    fn arguments() {
        assert_eq!(
            parse(&["create", "127.0.0.1:7000", "10.0.0.2:7001"]).unwrap(),
            Action::Create {
                nodes: vec![addr("127.0.0.1:7000"), addr("10.0.0.2:7001")],
                force: false
            }
        );
        assert!(parse(&["create"]).is_err());
        assert!(parse(&["create", "127.0.0.1"]).is_err());
        assert!(parse(&["create", "127.0.0.1:0"]).is_err());
        assert!(parse(&["create", "127.0.0.1:70000"]).is_err());
        assert_eq!(
            parse(&[
                "reshard", "h:1", "--from", "abc", "--to", "h:2", "--slots", "10"
            ])
            .unwrap(),
            Action::Reshard {
                node: addr("h:1"),
                from: "abc".into(),
                to: "h:2".into(),
                slots: 10,
                moving: MoveArgs {
                    batch: 100,
                    timeout_ms: 5000
                }
            }
        );
        for bad in [
            &["reshard", "h:1", "--from", "a", "--to", "b"][..],
            &["reshard", "h:1", "--from", "a", "--to", "b", "--slots", "0"],
            &[
                "reshard", "h:1", "--from", "a", "--to", "b", "--slots", "16385",
            ],
            &[
                "reshard", "h:1", "--from", "a", "--to", "b", "--slots", "1", "--batch", "0",
            ],
            &["check"],
            &["nonsense", "h:1"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            parse(&["push", "t.conf", "--force"]).unwrap(),
            Action::Push {
                file: "t.conf".into(),
                node: None,
                force: true
            }
        );
        assert_eq!(
            parse(&["fix", "h:1", "--batch", "7", "--timeout-ms", "20"]).unwrap(),
            Action::Fix {
                node: addr("h:1"),
                moving: MoveArgs {
                    batch: 7,
                    timeout_ms: 20
                }
            }
        );
    }

    #[test]
    fn addresses() {
        assert_eq!(addr("[::1]:7000").host, "::1");
        assert_eq!(addr("[::1]:7000").to_string(), "[::1]:7000");
        assert_eq!(
            addr("node-a.example:6379").to_string(),
            "node-a.example:6379"
        );
        assert!(":7000".parse::<Addr>().is_err());
        assert!("h:x".parse::<Addr>().is_err());
    }

    #[test]
    fn open_slot_markers_of_the_myself_line() {
        // Real Redis 7.0 CLUSTER NODES lines, with a migrating and an
        // importing slot.
        let nodes = "383b73d76ef4d88e2986f3aee066a3a8fc20601a 127.0.0.1:7201@17201 master - 0 1796100221000 2 connected 2341-4680 \n\
            9dcbec7aa28b98cb60f7b49f4101785a7f17c6c5 127.0.0.1:7200@17200 myself,master - 0 1796100219000 1 connected 0-2340 [0->-383b73d76ef4d88e2986f3aee066a3a8fc20601a] [7-<-383b73d76ef4d88e2986f3aee066a3a8fc20601a]\n";
        assert_eq!(
            open_slots(nodes),
            vec![
                OpenSlot {
                    slot: 0,
                    side: Side::Migrating,
                    peer: "383b73d76ef4d88e2986f3aee066a3a8fc20601a".into()
                },
                OpenSlot {
                    slot: 7,
                    side: Side::Importing,
                    peer: "383b73d76ef4d88e2986f3aee066a3a8fc20601a".into()
                },
            ]
        );
        assert!(open_slots("x 1.2.3.4:5@0 master - 0 0 1 connected 0-16383\n").is_empty());
    }

    #[test]
    fn cluster_info_fields() {
        let info = ClusterInfo::parse(
            "cluster_state:ok\r\ncluster_slots_assigned:16384\r\ncluster_current_epoch:7\r\n",
        );
        assert_eq!(
            info,
            ClusterInfo {
                state_ok: true,
                current_epoch: 7,
                slots_assigned: 16384
            }
        );
        assert!(!ClusterInfo::parse("cluster_state:fail\r\n").state_ok);
    }

    const A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    #[test]
    fn layout_round_trip_and_lookups() {
        let text = format!(
            "epoch 3\nnode {A} 10.0.0.1:7000 0-100 200\nnode {B} 10.0.0.2:7000 101-199 201-16383\n"
        );
        let mut layout = parse_layout(&text).unwrap();
        assert_eq!(layout.epoch, 3);
        assert_eq!(layout.ranges(0), vec![(0, 100), (200, 200)]);
        assert_eq!(layout.slot_count(1), 16384 - 102);
        assert!(layout.uncovered().is_empty());
        assert_eq!(layout.find("10.0.0.2:7000"), Ok(1));
        assert_eq!(layout.find(A), Ok(0));
        assert_eq!(layout.find("BBBB"), Ok(1));
        assert!(layout.find("c").is_err());
        assert!(layout.find("").is_err());
        // Moving slot 200 to B merges B's ranges; giving 0 back leaves a hole.
        layout.owner[200] = Some(1);
        layout.owner[0] = None;
        layout.epoch = 4;
        let moved = parse_layout(&layout.text().unwrap()).unwrap();
        assert_eq!(moved.ranges(1), vec![(101, 16383)]);
        assert_eq!(moved.ranges(0), vec![(1, 100)]);
        assert_eq!(moved.uncovered(), vec![(0, 0)]);
        assert_eq!(moved.epoch, 4);
        assert_eq!(show_ranges(&moved.ranges(0)), "1-100");
        assert_eq!(show_ranges(&[]), "");
    }

    #[test]
    fn pair_mut_either_order() {
        let mut v = [1, 2, 3];
        let (a, b) = pair_mut(&mut v, 2, 0);
        assert_eq!((*a, *b), (3, 1));
        let (a, b) = pair_mut(&mut v, 0, 1);
        assert_eq!((*a, *b), (1, 2));
    }
}
