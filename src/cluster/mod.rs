//! Cluster mode (issue 16): Kora speaks the Redis Cluster protocol so that
//! cluster clients (redis-py `RedisCluster`, `redis-cli -c`, Jedis,
//! Lettuce, Envoy) spread keys over many Kora hosts.
//!
//! The model is a *managed* cluster, as Dragonfly's: there is no gossip
//! bus. An operator tool (`kora cluster`) pushes one
//! [`Topology`] — every node's id, address and hash slots, with an epoch —
//! to every node (`CLUSTER SETTOPOLOGY`); each node then checks the slot of
//! every key a command names and answers `-MOVED`, `-ASK`, `-CROSSSLOT`,
//! `-TRYAGAIN` or `-CLUSTERDOWN` exactly as Redis Cluster 7.0 does
//! (`command::cluster`). What a node learns by itself is only whether its
//! peers answer (`coord` health checks): a peer silent for
//! `cluster-node-timeout` is `fail`, and its slots stop being served by
//! anyone rather than served by the wrong node.
//!
//! This module is the leaf part: the key → slot function (CRC16 of the
//! key or its `{hash tag}`, mod 16384), node ids, the topology text, and
//! [`ClusterState`], one core's copy of what it knows (each core keeps its
//! own, changed on every core at once through `coord::cluster_update`, so
//! the data path reads it without sharing). Within a node, keys go to
//! shards by slot (`coord::Routing::Slot`: slot mod shards), so everything
//! one legal cluster command or script names — one slot — is on one core:
//! transactions and scripts take the single-shard path, and a slot's keys
//! are counted, listed and migrated by one shard.
//!
//! Layer: beside `config` (imports only the leaves).

use std::collections::HashMap;
use std::sync::Arc;

pub mod tool;

/// How many hash slots a Redis cluster has.
pub const SLOTS: usize = 16384;

/// The owner index of a slot nobody serves.
const UNOWNED: u16 = u16::MAX;

/// CRC16-CCITT (XModem), the checksum Redis Cluster hashes keys with.
/// Slicing by four: four independent table lookups per four bytes
/// instead of a chain of four dependent ones (it runs for every key of
/// every command in cluster mode).
pub fn crc16(data: &[u8]) -> u16 {
    /// `TABLES[0]` is the byte-at-a-time table; `TABLES[k][v]` is byte `v`
    /// followed by `k` zero bytes.
    static TABLES: [[u16; 256]; 4] = {
        let mut t = [[0u16; 256]; 4];
        let mut i = 0;
        while i < 256 {
            let mut crc = (i as u16) << 8;
            let mut bit = 0;
            while bit < 8 {
                crc = if crc & 0x8000 != 0 {
                    (crc << 1) ^ 0x1021
                } else {
                    crc << 1
                };
                bit += 1;
            }
            t[0][i] = crc;
            i += 1;
        }
        let mut k = 1;
        while k < 4 {
            let mut i = 0;
            while i < 256 {
                let prev = t[k - 1][i];
                t[k][i] = (prev << 8) ^ t[0][(prev >> 8) as usize];
                i += 1;
            }
            k += 1;
        }
        t
    };
    let mut crc = 0u16;
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        let hi = (crc >> 8) as u8 ^ c[0];
        let lo = crc as u8 ^ c[1];
        crc = TABLES[3][hi as usize]
            ^ TABLES[2][lo as usize]
            ^ TABLES[1][c[2] as usize]
            ^ TABLES[0][c[3] as usize];
    }
    for &b in chunks.remainder() {
        crc = (crc << 8) ^ TABLES[0][((crc >> 8) as u8 ^ b) as usize];
    }
    crc
}

/// The hash slot of `key`: CRC16 of the key, or of the part between the
/// first `{` and the next `}` when that part is not empty (a hash tag, so
/// that related keys share a slot), mod 16384.
#[inline]
pub fn key_slot(key: &[u8]) -> u16 {
    let hashed = match memchr::memchr(b'{', key) {
        Some(open) => match memchr::memchr(b'}', &key[open + 1..]) {
            Some(len) if len > 0 => &key[open + 1..open + 1 + len],
            _ => key,
        },
        None => key,
    };
    crc16(hashed) & (SLOTS as u16 - 1)
}

/// A node's id: 40 lower-case hex digits, as Redis Cluster's.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct NodeId([u8; 40]);

impl NodeId {
    /// Parses 40 hex digits (either case; kept lower-case).
    pub fn parse(text: &[u8]) -> Option<NodeId> {
        let bytes: [u8; 40] = text.try_into().ok()?;
        bytes
            .iter()
            .all(u8::is_ascii_hexdigit)
            .then(|| NodeId(bytes.map(|b| b.to_ascii_lowercase())))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).expect("hex digits")
    }

    /// The id as bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for NodeId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Display for NodeId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The id of the node announcing `host:port`: the SHA-1 of
/// `kora-node:<host>:<port>`. Deterministic, so a restarted node keeps its
/// id and a hand-written topology may leave ids out.
pub fn node_id_for(host: &str, port: u16) -> NodeId {
    NodeId(crate::protocol::sha1::sha1_hex(
        format!("kora-node:{host}:{port}").as_bytes(),
    ))
}

/// One node of a topology.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    pub id: NodeId,
    pub host: String,
    pub port: u16,
    /// Its slots as inclusive ranges, ascending and merged.
    pub ranges: Vec<(u16, u16)>,
}

impl Node {
    /// `host:port`, as MOVED and ASK name it.
    pub fn address(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// How many slots it owns.
    pub fn slot_count(&self) -> usize {
        self.ranges.iter().map(|&(a, b)| (b - a) as usize + 1).sum()
    }
}

/// Which node serves each slot, with an epoch that orders versions: what
/// the operator tool pushes and every node keeps.
#[derive(Clone, PartialEq, Eq)]
pub struct Topology {
    pub epoch: u64,
    pub nodes: Vec<Node>,
    /// Slot → index into `nodes` (`UNOWNED`: nobody).
    owner: Box<[u16]>,
}

impl std::fmt::Debug for Topology {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_text())
    }
}

impl Default for Topology {
    /// No nodes, no slots: what a cluster node knows before a topology is
    /// pushed (every keyed command answers CLUSTERDOWN).
    fn default() -> Topology {
        Topology {
            epoch: 0,
            nodes: Vec::new(),
            owner: vec![UNOWNED; SLOTS].into_boxed_slice(),
        }
    }
}

/// Parses a slot number (0..16384).
pub fn parse_slot(text: &[u8]) -> Option<u16> {
    let n: u64 = std::str::from_utf8(text).ok()?.parse().ok()?;
    (n < SLOTS as u64).then_some(n as u16)
}

impl Topology {
    /// Builds a topology from nodes, checking that ids and addresses are
    /// unique and no slot has two owners.
    pub fn new(epoch: u64, mut nodes: Vec<Node>) -> Result<Topology, String> {
        if nodes.len() >= UNOWNED as usize {
            return Err("too many nodes".into());
        }
        let mut owner = vec![UNOWNED; SLOTS].into_boxed_slice();
        for (i, node) in nodes.iter_mut().enumerate() {
            node.ranges.sort_unstable();
            for &(a, b) in &node.ranges {
                if a > b || b as usize >= SLOTS {
                    return Err(format!("invalid slot range {a}-{b}"));
                }
                for slot in a..=b {
                    if owner[slot as usize] != UNOWNED {
                        return Err(format!("slot {slot} is assigned twice"));
                    }
                    owner[slot as usize] = i as u16;
                }
            }
        }
        // Sets, not pairwise comparisons: a text may list many nodes.
        let mut ids = std::collections::HashSet::with_capacity(nodes.len());
        let mut addresses = std::collections::HashSet::with_capacity(nodes.len());
        for node in &nodes {
            if !ids.insert(node.id) {
                return Err(format!("node id {} is listed twice", node.id));
            }
            if !addresses.insert((node.host.as_str(), node.port)) {
                return Err(format!("address {} is listed twice", node.address()));
            }
        }
        let mut topology = Topology {
            epoch,
            nodes,
            owner,
        };
        topology.merge_ranges();
        Ok(topology)
    }

    /// Rebuilds every node's ranges from the slot table (merged, sorted).
    fn merge_ranges(&mut self) {
        for node in &mut self.nodes {
            node.ranges.clear();
        }
        let mut slot = 0;
        while slot < SLOTS {
            let o = self.owner[slot];
            let start = slot;
            while slot < SLOTS && self.owner[slot] == o {
                slot += 1;
            }
            if o != UNOWNED {
                self.nodes[o as usize]
                    .ranges
                    .push((start as u16, slot as u16 - 1));
            }
        }
    }

    /// Parses the topology text (see the README, "Running a cluster"):
    /// `epoch N` and one `node [ID] HOST:PORT [SLOT|FROM-TO]...` line per
    /// node; `#` starts a comment.
    pub fn parse(text: &str) -> Result<Topology, String> {
        let mut epoch = None;
        let mut nodes = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            let mut words = line.split_ascii_whitespace();
            let at = |what: String| format!("line {}: {what}", n + 1);
            match words.next() {
                None => continue,
                Some("epoch") => {
                    let value = words.next().and_then(|w| w.parse::<u64>().ok());
                    match (value, words.next(), epoch) {
                        (Some(v), None, None) => epoch = Some(v),
                        (_, _, Some(_)) => return Err(at("epoch given twice".into())),
                        _ => return Err(at("expected `epoch <number>`".into())),
                    }
                }
                Some("node") => {
                    let mut word = words
                        .next()
                        .ok_or_else(|| at("node without address".into()))?;
                    let explicit = NodeId::parse(word.as_bytes());
                    if explicit.is_some() {
                        word = words
                            .next()
                            .ok_or_else(|| at("node without address".into()))?;
                    }
                    let (host, port) = split_address(word)
                        .ok_or_else(|| at(format!("invalid address `{word}` (HOST:PORT)")))?;
                    let mut ranges = Vec::new();
                    for w in words {
                        let range = match w.split_once('-') {
                            Some((a, b)) => parse_slot(a.as_bytes()).zip(parse_slot(b.as_bytes())),
                            None => parse_slot(w.as_bytes()).map(|s| (s, s)),
                        };
                        match range {
                            Some((a, b)) if a <= b => ranges.push((a, b)),
                            _ => return Err(at(format!("invalid slot or range `{w}`"))),
                        }
                    }
                    nodes.push(Node {
                        id: explicit.unwrap_or_else(|| node_id_for(&host, port)),
                        host,
                        port,
                        ranges,
                    });
                }
                Some(other) => return Err(at(format!("unknown keyword `{other}`"))),
            }
        }
        Topology::new(epoch.unwrap_or(0), nodes)
    }

    /// The canonical text: ids written out, ranges merged.
    pub fn to_text(&self) -> String {
        let mut text = format!("epoch {}\n", self.epoch);
        for node in &self.nodes {
            text.push_str(&format!("node {} {}", node.id, node.address()));
            for &(a, b) in &node.ranges {
                if a == b {
                    text.push_str(&format!(" {a}"));
                } else {
                    text.push_str(&format!(" {a}-{b}"));
                }
            }
            text.push('\n');
        }
        text
    }

    /// The index of the node serving `slot`, if any.
    #[inline]
    pub fn owner(&self, slot: u16) -> Option<usize> {
        match self.owner[slot as usize] {
            UNOWNED => None,
            i => Some(i as usize),
        }
    }

    /// The index of the node with id `id`.
    pub fn index_of(&self, id: &NodeId) -> Option<usize> {
        self.nodes.iter().position(|n| n.id == *id)
    }

    /// How many slots have an owner.
    pub fn slots_assigned(&self) -> usize {
        self.owner.iter().filter(|&&o| o != UNOWNED).count()
    }

    /// This topology with `slot` served by node `index` (CLUSTER SETSLOT
    /// NODE): same epoch, ranges recomputed.
    pub fn with_owner(&self, slot: u16, index: usize) -> Topology {
        let mut t = self.clone();
        t.owner[slot as usize] = index as u16;
        t.merge_ranges();
        t
    }
}

/// The topology in `cluster-config-file`: None when no file is named or
/// it does not exist yet (a node that has not been given one).
pub fn load_topology(config: &crate::config::Config) -> Result<Option<Topology>, String> {
    if config.cluster_config_file.is_empty() {
        return Ok(None);
    }
    match std::fs::read_to_string(&config.cluster_config_file) {
        Ok(text) => Topology::parse(&text)
            .map(Some)
            .map_err(|e| format!("{}: {e}", config.cluster_config_file)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("{}: {e}", config.cluster_config_file)),
    }
}

/// Writes `topology` to `cluster-config-file` (if named) through a
/// temporary file and a rename, so a crash never leaves half a file.
pub fn save_topology(config: &crate::config::Config, topology: &Topology) -> std::io::Result<()> {
    if config.cluster_config_file.is_empty() {
        return Ok(());
    }
    let path = std::path::Path::new(&config.cluster_config_file);
    let tmp = path.with_extension("tmp-kora");
    std::fs::write(&tmp, topology.to_text())?;
    std::fs::rename(&tmp, path)
}

/// Splits `host:port` (the last colon, so IPv6 hosts work).
pub fn split_address(text: &str) -> Option<(String, u16)> {
    let (host, port) = text.rsplit_once(':')?;
    let port: u16 = port.parse().ok()?;
    (!host.is_empty() && port != 0).then(|| (host.trim_matches(['[', ']']).to_string(), port))
}

/// Whether a peer answers its PINGs (`coord`'s health checks).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub enum Health {
    #[default]
    Online,
    /// Silent for `cluster-node-timeout`: its slots are not served.
    Fail,
}

/// Whether a node may serve a slot's keys without owning it all.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum SlotMove {
    /// CLUSTER SETSLOT MIGRATING: keys are moving from here to this node.
    MigratingTo(NodeId),
    /// CLUSTER SETSLOT IMPORTING: keys are moving from this node to here.
    ImportingFrom(NodeId),
}

/// `cluster-require-full-coverage`: whether one unserved slot stops the
/// whole cluster (Redis' default) or only that slot.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Coverage {
    Full,
    Partial,
}

/// One core's copy of what this node knows of its cluster. Each core has
/// its own; `coord::cluster_update` changes all of them at once.
#[derive(Clone, Debug)]
pub struct ClusterState {
    /// This node's id (from its announced address).
    pub my_id: NodeId,
    /// This node's announced address, for the CLUSTER replies of a node
    /// that is not in the topology (yet).
    pub my_host: String,
    pub my_port: u16,
    pub topology: Arc<Topology>,
    /// Index of this node in `topology`, if it is listed.
    pub me: Option<usize>,
    /// Slots being moved, as CLUSTER SETSLOT left them.
    pub moves: HashMap<u16, SlotMove>,
    /// Peers' health by node id (absent: online).
    pub health: HashMap<NodeId, Health>,
    pub coverage: Coverage,
    /// `cluster-node-timeout`: how long a peer may stay silent.
    pub node_timeout_ms: u64,
    /// Slots served by a live node and the cluster state, recomputed by
    /// [`ClusterState::refresh`] after every change (not per command).
    served: usize,
    ok: bool,
}

/// What a command in cluster mode must be answered instead of running.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Redirect {
    /// `-MOVED <slot> <host:port>`.
    Moved(u16, String),
    /// `-ASK <slot> <host:port>`.
    Ask(u16, String),
    /// `-CROSSSLOT …`.
    CrossSlot,
    /// `-TRYAGAIN …`: some keys of a multi-key command are moving.
    TryAgain,
    /// `-CLUSTERDOWN Hash slot not served`.
    Unbound,
    /// `-CLUSTERDOWN The cluster is down`.
    Down,
}

impl Redirect {
    /// The error line (without `-` and CRLF), Redis 7.0's text.
    pub fn text(&self) -> String {
        match self {
            Redirect::Moved(slot, addr) => format!("MOVED {slot} {addr}"),
            Redirect::Ask(slot, addr) => format!("ASK {slot} {addr}"),
            Redirect::CrossSlot => "CROSSSLOT Keys in request don't hash to the same slot".into(),
            Redirect::TryAgain => "TRYAGAIN Multiple keys request during rehashing of slot".into(),
            Redirect::Unbound => "CLUSTERDOWN Hash slot not served".into(),
            Redirect::Down => "CLUSTERDOWN The cluster is down".into(),
        }
    }

    /// This kind of answer's index in `metrics::counters::REDIRECT_KINDS` (its
    /// metric label).
    pub fn kind(&self) -> usize {
        match self {
            Redirect::Moved(..) => 0,
            Redirect::Ask(..) => 1,
            Redirect::CrossSlot => 2,
            Redirect::TryAgain => 3,
            Redirect::Unbound | Redirect::Down => 4,
        }
    }
}

/// How the slot of a command's keys is held here, once it has an owner.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Serving {
    /// This node owns the slot and it is not moving: run.
    Mine,
    /// This node owns it and is migrating it to `to`: run only if the keys
    /// are still here.
    Migrating { to: usize },
    /// Another node owns it and this one imports it: run only for a client
    /// that sent ASKING.
    Importing { owner: usize },
    /// Another node owns it.
    Elsewhere { owner: usize },
}

impl ClusterState {
    /// The state of a node that has no topology yet.
    pub fn new(host: &str, port: u16, coverage: Coverage, node_timeout_ms: u64) -> ClusterState {
        ClusterState {
            my_id: node_id_for(host, port),
            my_host: host.to_string(),
            my_port: port,
            served: 0,
            ok: false,
            node_timeout_ms,
            topology: Arc::new(Topology::default()),
            me: None,
            moves: HashMap::new(),
            health: HashMap::new(),
            coverage,
        }
    }

    /// Takes `topology` as the current one. Slot moves that no longer make
    /// sense are dropped (migrating a slot this node no longer owns,
    /// importing one it now owns), as Redis does when a slot is assigned.
    pub fn set_topology(&mut self, topology: Arc<Topology>) {
        self.me = topology.index_of(&self.my_id);
        let me = self.me;
        self.moves.retain(|&slot, m| {
            let owner = topology.owner(slot);
            match m {
                SlotMove::MigratingTo(_) => owner.is_some() && owner == me,
                SlotMove::ImportingFrom(_) => owner != me,
            }
        });
        self.health.retain(|id, _| topology.index_of(id).is_some());
        self.topology = topology;
        self.refresh();
    }

    /// Recomputes what depends on the topology, the peers' health and the
    /// coverage setting; `coord::cluster_update` calls it after a change.
    pub fn refresh(&mut self) {
        self.served = (0..SLOTS as u16).filter(|&s| self.served(s)).count();
        self.ok = match self.coverage {
            Coverage::Full => self.served == SLOTS,
            Coverage::Partial => self.me.is_some(),
        };
    }

    /// The health of node `index` (this node is always online).
    pub fn health_of(&self, index: usize) -> Health {
        if Some(index) == self.me {
            return Health::Online;
        }
        let id = &self.topology.nodes[index].id;
        self.health.get(id).copied().unwrap_or_default()
    }

    /// Whether `slot` has an owner that is not failed.
    fn served(&self, slot: u16) -> bool {
        self.topology
            .owner(slot)
            .is_some_and(|o| self.health_of(o) == Health::Online)
    }

    /// How many slots are served by a node that is not failed.
    pub fn slots_ok(&self) -> usize {
        self.served
    }

    /// Redis' `cluster_state:ok`: with full coverage, every slot served
    /// by a live node; otherwise this node is at least listed.
    pub fn ok(&self) -> bool {
        self.ok
    }

    /// How `slot` is served here, or the CLUSTERDOWN answer.
    pub fn serving(&self, slot: u16) -> Result<Serving, Redirect> {
        let Some(owner) = self.topology.owner(slot) else {
            return Err(Redirect::Unbound);
        };
        if self.coverage == Coverage::Partial && self.health_of(owner) == Health::Fail {
            return Err(Redirect::Unbound);
        }
        if !self.ok {
            return Err(Redirect::Down);
        }
        if Some(owner) == self.me {
            // Checked per command: most of the time no slot is moving.
            if !self.moves.is_empty()
                && let Some(SlotMove::MigratingTo(to)) = self.moves.get(&slot)
                && let Some(to) = self.topology.index_of(to)
            {
                return Ok(Serving::Migrating { to });
            }
            return Ok(Serving::Mine);
        }
        if !self.moves.is_empty()
            && let Some(SlotMove::ImportingFrom(_)) = self.moves.get(&slot)
        {
            return Ok(Serving::Importing { owner });
        }
        Ok(Serving::Elsewhere { owner })
    }

    /// `host:port` of node `index`.
    pub fn address(&self, index: usize) -> String {
        self.topology.nodes[index].address()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_redis_cluster_slots() {
        // From a real Redis 7.0 cluster (CLUSTER KEYSLOT).
        assert_eq!(key_slot(b"foo"), 12182);
        assert_eq!(key_slot(b"{user1}:a"), 8106);
        assert_eq!(key_slot(b"k12912"), 5);
        assert_eq!(key_slot(b"{k12912}a"), 5);
        assert_eq!(key_slot(b"x3"), 1984);
        // Empty or unclosed tags hash the whole key.
        assert_eq!(key_slot(b"{}foo"), crc16(b"{}foo") % 16384);
        assert_eq!(key_slot(b"{foo"), crc16(b"{foo") % 16384);
        assert_eq!(key_slot(b"a{b}{c}"), key_slot(b"b"));
        assert_eq!(crc16(b"123456789"), 0x31c3);
        // The sliced loop agrees with the bit-by-bit definition at every
        // length and alignment.
        let bitwise = |data: &[u8]| {
            data.iter().fold(0u16, |mut crc, &b| {
                crc ^= (b as u16) << 8;
                for _ in 0..8 {
                    crc = if crc & 0x8000 != 0 {
                        (crc << 1) ^ 0x1021
                    } else {
                        crc << 1
                    };
                }
                crc
            })
        };
        let data: Vec<u8> = (0..100u32).map(|i| (i * 37 + 11) as u8).collect();
        for start in 0..4 {
            for end in start..data.len() {
                assert_eq!(crc16(&data[start..end]), bitwise(&data[start..end]));
            }
        }
    }

    #[test]
    fn redirects_are_counted_under_their_labels() {
        use crate::metrics::counters::REDIRECT_KINDS;
        let label = |r: Redirect| REDIRECT_KINDS[r.kind()];
        assert_eq!(label(Redirect::Moved(1, "a:1".into())), "moved");
        assert_eq!(label(Redirect::Ask(1, "a:1".into())), "ask");
        assert_eq!(label(Redirect::CrossSlot), "crossslot");
        assert_eq!(label(Redirect::TryAgain), "tryagain");
        assert_eq!(label(Redirect::Unbound), "down");
        assert_eq!(label(Redirect::Down), "down");
    }

    #[test]
    fn topology_text_round_trips_and_validates() {
        let t = Topology::parse(
            "# three nodes\nepoch 3\nnode 127.0.0.1:7000 0-5460\n\
             node 127.0.0.1:7001 5461-10922 12000\nnode 127.0.0.1:7002 10923-11999 12001-16383\n",
        )
        .unwrap();
        assert_eq!(t.epoch, 3);
        assert_eq!(t.slots_assigned(), SLOTS);
        assert_eq!(t.owner(12000), Some(1));
        assert_eq!(t.nodes[0].id, node_id_for("127.0.0.1", 7000));
        assert_eq!(Topology::parse(&t.to_text()).unwrap(), t);
        assert!(Topology::parse("node 127.0.0.1:1 0-10\nnode 127.0.0.1:2 10\n").is_err());
        assert!(Topology::parse("node 127.0.0.1:1 0-16384\n").is_err());
        assert!(Topology::parse("node 127.0.0.1:1\nnode 127.0.0.1:1\n").is_err());
        assert!(Topology::parse("node nothing\n").is_err());
        assert!(Topology::parse("epoch x\n").is_err());
        // Adjacent ranges merge.
        let t = Topology::parse("node 127.0.0.1:1 0-5 6 7-9\n").unwrap();
        assert_eq!(t.nodes[0].ranges, vec![(0, 9)]);
    }

    #[test]
    fn serving_follows_owner_moves_and_health() {
        let t = Arc::new(
            Topology::parse("epoch 1\nnode 127.0.0.1:1 0-8191\nnode 127.0.0.1:2 8192-16383\n")
                .unwrap(),
        );
        let mut s = ClusterState::new("127.0.0.1", 1, Coverage::Full, 15000);
        assert_eq!(s.serving(0), Err(Redirect::Unbound));
        s.set_topology(t.clone());
        assert_eq!(s.serving(0), Ok(Serving::Mine));
        assert_eq!(s.serving(9000), Ok(Serving::Elsewhere { owner: 1 }));
        let other = t.nodes[1].id;
        s.moves.insert(5, SlotMove::MigratingTo(other));
        s.moves.insert(9000, SlotMove::ImportingFrom(other));
        assert_eq!(s.serving(5), Ok(Serving::Migrating { to: 1 }));
        assert_eq!(s.serving(9000), Ok(Serving::Importing { owner: 1 }));
        s.health.insert(other, Health::Fail);
        s.refresh();
        assert_eq!(s.serving(0), Err(Redirect::Down));
        s.coverage = Coverage::Partial;
        s.refresh();
        assert_eq!(s.serving(0), Ok(Serving::Mine));
        assert_eq!(s.serving(9000), Err(Redirect::Unbound));
        // A new topology giving slot 5 away ends its migration.
        s.set_topology(Arc::new(t.with_owner(5, 1)));
        assert!(!s.moves.contains_key(&5));
    }
}
