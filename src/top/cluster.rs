//! `kora top --cluster HOST:PORT`: one row per node of a cluster (issue
//! 16). Each refresh asks the entry node for `CLUSTER NODES` (falling back
//! to any node seen before when the entry node does not answer), asks each
//! node once for its `/metrics` port (`CONFIG GET metrics-port`; the
//! metrics host is the node's own host), scrapes every node's `/metrics`
//! in parallel, and shows rates and p99 over the interval between two
//! scrapes, as plain `kora top` does, plus a row of cluster totals.
//!
//! The parsing and merging are plain functions of text and scrapes, tested
//! here; the loop only does I/O.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::resp::{Reply, RespClient};
use super::scrape::{Scrape, bracket_ipv6, fetch_metrics};
use super::view::{
    Frame, Line, bucket_growth, format_bytes, format_duration, format_rate, histogram_quantile,
};

/// One line of `CLUSTER NODES`.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterNode {
    pub id: String,
    pub host: String,
    pub port: u16,
    /// `myself`, `master`, `fail`, `fail?`, ... as listed.
    pub flags: Vec<String>,
    /// Whether the answering node's link to it is `connected`.
    pub connected: bool,
    /// Slots it serves (migrating/importing markers not counted).
    pub slots: u64,
}

impl ClusterNode {
    /// `host:port` (IPv6 hosts in brackets).
    pub fn address(&self) -> String {
        format!("{}:{}", bracket_ipv6(&self.host), self.port)
    }

    fn has_flag(&self, flag: &str) -> bool {
        self.flags.iter().any(|f| f == flag)
    }

    /// How the answering node sees it: `fail` / `fail?` when marked so,
    /// else `online`.
    pub fn health(&self) -> &'static str {
        if self.has_flag("fail") {
            "fail"
        } else if self.has_flag("fail?") {
            "fail?"
        } else {
            "online"
        }
    }
}

/// Parses `CLUSTER NODES` (Redis 7.0's format, which Kora answers too):
/// `<id> <ip:port@cport[,hostname]> <flags> <master> <ping-sent>
/// <pong-recv> <config-epoch> <link-state> <slot> <slot> ...`.
pub fn parse_cluster_nodes(text: &str) -> Result<Vec<ClusterNode>, String> {
    let mut nodes = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let fields: Vec<&str> = line.split_ascii_whitespace().collect();
        if fields.len() < 8 {
            return Err(format!("unexpected CLUSTER NODES line: {line:?}"));
        }
        let address = fields[1].split(['@', ',']).next().unwrap_or("");
        let (host, port) = address
            .rsplit_once(':')
            .and_then(|(h, p)| Some((h.trim_matches(['[', ']']).to_string(), p.parse().ok()?)))
            .ok_or_else(|| format!("unexpected address in CLUSTER NODES: {:?}", fields[1]))?;
        let mut slots = 0u64;
        for range in &fields[8..] {
            if range.starts_with('[') {
                continue;
            }
            let parsed = match range.split_once('-') {
                Some((a, b)) => a.parse::<u64>().ok().zip(b.parse::<u64>().ok()),
                None => range.parse::<u64>().ok().map(|s| (s, s)),
            };
            match parsed {
                Some((a, b)) if a <= b && b < 16384 => slots += b - a + 1,
                _ => return Err(format!("unexpected slot range in CLUSTER NODES: {range:?}")),
            }
        }
        nodes.push(ClusterNode {
            id: fields[0].to_string(),
            host,
            port,
            flags: fields[2].split(',').map(str::to_string).collect(),
            connected: fields[7] == "connected",
            slots,
        });
    }
    Ok(nodes)
}

/// One node's row.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeRow {
    pub id: String,
    pub address: String,
    /// How the node that answered CLUSTER NODES sees it.
    pub health: &'static str,
    /// The node's own `kora_cluster_state`: `ok`, `fail`, or why it is
    /// unknown (`unreachable`, `no metrics`).
    pub state: String,
    pub slots: u64,
    /// Rates over the interval; None until two scrapes are in.
    pub ops_per_sec: Option<f64>,
    pub p99_seconds: Option<f64>,
    pub redirections_per_sec: Option<f64>,
    pub keys: Option<f64>,
    pub memory_bytes: Option<f64>,
    /// Why the node could not be read, if so.
    pub error: Option<String>,
}

/// The cluster's sums, and the p99 of all commands on all nodes.
#[derive(Debug, Clone, PartialEq)]
pub struct TotalRow {
    pub nodes: usize,
    pub nodes_ok: usize,
    pub slots: u64,
    pub ops_per_sec: f64,
    pub p99_seconds: Option<f64>,
    pub redirections_per_sec: f64,
    pub keys: f64,
    pub memory_bytes: f64,
}

/// Interval buckets of all commands of a node, added up per `le` bound
/// (every command has the same bounds), sorted by `le`.
fn all_commands_buckets(previous: &Scrape, current: &Scrape) -> Vec<(f64, f64)> {
    let mut total: Vec<(f64, f64)> = Vec::new();
    for (cmd, now) in &current.commands {
        let before = previous
            .commands
            .get(cmd)
            .map_or(&[][..], |c| &c.buckets[..]);
        add_buckets(&mut total, &bucket_growth(before, &now.buckets));
    }
    total
}

/// Adds cumulative buckets `more` into `total`, bound by bound.
fn add_buckets(total: &mut Vec<(f64, f64)>, more: &[(f64, f64)]) {
    for &(le, n) in more {
        match total.iter_mut().find(|(l, _)| *l == le) {
            Some(slot) => slot.1 += n,
            None => total.push((le, n)),
        }
    }
    total.sort_by(|a, b| a.0.total_cmp(&b.0));
}

/// What one node's scrapes gave: the latest (or why it failed) and the
/// one before, for rates.
#[derive(Debug, Default)]
pub struct NodeScrapes {
    pub previous: Option<Scrape>,
    pub current: Option<Result<Scrape, String>>,
}

/// Builds the rows from the nodes CLUSTER NODES listed and their scrapes
/// (by node id), and the totals over the nodes that could be read.
pub fn rows(
    nodes: &[ClusterNode],
    scrapes: &HashMap<String, NodeScrapes>,
) -> (Vec<NodeRow>, TotalRow) {
    let mut out = Vec::with_capacity(nodes.len());
    let mut total = TotalRow {
        nodes: nodes.len(),
        nodes_ok: 0,
        slots: 0,
        ops_per_sec: 0.0,
        p99_seconds: None,
        redirections_per_sec: 0.0,
        keys: 0.0,
        memory_bytes: 0.0,
    };
    let mut buckets = Vec::new();
    for node in nodes {
        total.slots += node.slots;
        let mut row = NodeRow {
            id: node.id.chars().take(8).collect(),
            address: node.address(),
            health: node.health(),
            state: "unreachable".into(),
            slots: node.slots,
            ops_per_sec: None,
            p99_seconds: None,
            redirections_per_sec: None,
            keys: None,
            memory_bytes: None,
            error: None,
        };
        let scraped = scrapes.get(&node.id);
        match scraped.and_then(|s| s.current.as_ref()) {
            None => row.error = Some("not scraped yet".into()),
            Some(Err(e)) => row.error = Some(e.clone()),
            Some(Ok(current)) => {
                row.state = match current.cluster.state_ok {
                    Some(true) => "ok".into(),
                    Some(false) => "fail".into(),
                    None => "no cluster metrics".into(),
                };
                if current.cluster.state_ok == Some(true) {
                    total.nodes_ok += 1;
                }
                if !current.cluster.node_id.is_empty() && current.cluster.node_id != node.id {
                    row.error = Some(format!(
                        "its metrics say node id {}: another server answers there",
                        current.cluster.node_id
                    ));
                }
                row.keys = Some(current.keys);
                row.memory_bytes = Some(current.memory_bytes);
                total.keys += current.keys;
                total.memory_bytes += current.memory_bytes;
                if let Some(previous) = scraped.and_then(|s| s.previous.as_ref()) {
                    let frame = Frame::between(previous, current);
                    let interval = all_commands_buckets(previous, current);
                    let seconds = frame.interval_seconds;
                    let redirections =
                        (current.cluster.redirections - previous.cluster.redirections).max(0.0)
                            / seconds;
                    row.ops_per_sec = Some(frame.ops_per_sec);
                    row.p99_seconds = histogram_quantile(0.99, &interval);
                    row.redirections_per_sec = Some(redirections);
                    total.ops_per_sec += frame.ops_per_sec;
                    total.redirections_per_sec += redirections;
                    add_buckets(&mut buckets, &interval);
                }
            }
        }
        out.push(row);
    }
    total.p99_seconds = histogram_quantile(0.99, &buckets);
    (out, total)
}

const HEADER: [&str; 10] = [
    "NODE", "ADDRESS", "HEALTH", "STATE", "SLOTS", "OPS/S", "P99", "REDIR/S", "KEYS", "MEMORY",
];

fn row_text(cells: [&str; 10]) -> String {
    format!(
        "{:<8} {:<21} {:<7} {:<11} {:>6} {:>10} {:>10} {:>8} {:>12} {:>11}",
        cells[0],
        cells[1],
        cells[2],
        cells[3],
        cells[4],
        cells[5],
        cells[6],
        cells[7],
        cells[8],
        cells[9]
    )
}

fn or_dash(v: Option<String>) -> String {
    v.unwrap_or_else(|| "-".into())
}

/// The lines of one refresh.
pub fn render(
    title: &str,
    source: &str,
    nodes: &[NodeRow],
    total: &TotalRow,
    epoch: Option<f64>,
) -> Vec<Line> {
    let line = |text: String, heading: bool| Line { text, heading };
    let mut lines = vec![line(title.to_string(), true)];
    lines.push(line(
        format!(
            "nodes {} ({} see the cluster ok)  slots {}/16384  epoch {}  ops/s {}  keys {}  memory {}  (nodes from {source})",
            total.nodes,
            total.nodes_ok,
            total.slots,
            epoch.map_or("-".into(), |e| e.to_string()),
            format_rate(total.ops_per_sec),
            total.keys,
            format_bytes(total.memory_bytes),
        ),
        false,
    ));
    lines.push(line(String::new(), false));
    lines.push(line(row_text(HEADER), true));
    for r in nodes {
        let cells = [
            r.id.clone(),
            r.address.clone(),
            r.health.to_string(),
            r.state.clone(),
            r.slots.to_string(),
            or_dash(r.ops_per_sec.map(format_rate)),
            if r.ops_per_sec.is_some() {
                format_duration(r.p99_seconds)
            } else {
                "-".into()
            },
            or_dash(r.redirections_per_sec.map(format_rate)),
            or_dash(r.keys.map(|k| k.to_string())),
            or_dash(r.memory_bytes.map(format_bytes)),
        ];
        lines.push(line(row_text(cells.each_ref().map(|s| s.as_str())), false));
    }
    let totals = [
        "TOTAL".to_string(),
        format!("{} nodes", total.nodes),
        String::new(),
        String::new(),
        total.slots.to_string(),
        format_rate(total.ops_per_sec),
        format_duration(total.p99_seconds),
        format_rate(total.redirections_per_sec),
        total.keys.to_string(),
        format_bytes(total.memory_bytes),
    ];
    lines.push(line(row_text(totals.each_ref().map(|s| s.as_str())), true));
    let errors: Vec<&NodeRow> = nodes.iter().filter(|r| r.error.is_some()).collect();
    if !errors.is_empty() {
        lines.push(line(String::new(), false));
        for r in errors {
            lines.push(line(
                format!(
                    "{} {}: {}",
                    r.id,
                    r.address,
                    r.error.as_deref().unwrap_or("")
                ),
                false,
            ));
        }
    }
    lines
}

/// Splits `HOST:PORT` (IPv6 hosts may be bracketed).
pub fn parse_host_port(s: &str) -> Result<(String, u16), String> {
    let (host, port) = s
        .rsplit_once(':')
        .ok_or_else(|| format!("expected HOST:PORT, got {s:?}"))?;
    let port: u16 = port
        .parse()
        .ok()
        .filter(|&p| p != 0)
        .ok_or_else(|| format!("bad port in {s:?}"))?;
    let host = host.trim_matches(['[', ']']);
    if host.is_empty() {
        return Err(format!("expected HOST:PORT, got {s:?}"));
    }
    Ok((host.to_string(), port))
}

/// One RESP call on a fresh connection.
fn call(host: &str, port: u16, args: &[&[u8]], timeout: Duration) -> Result<Reply, String> {
    let target = format!("{}:{port}", bracket_ipv6(host));
    let mut client = RespClient::connect(host, port, timeout)
        .map_err(|e| format!("cannot reach {target}: {e}"))?;
    match client.call(args) {
        Ok(Reply::Error(e)) => Err(format!("{target}: {e}")),
        Ok(reply) => Ok(reply),
        Err(e) => Err(format!("{target}: {e}")),
    }
}

/// `CLUSTER NODES` of `host:port`.
fn cluster_nodes(host: &str, port: u16, timeout: Duration) -> Result<Vec<ClusterNode>, String> {
    match call(host, port, &[b"CLUSTER", b"NODES"], timeout)? {
        Reply::Bulk(Some(text)) => parse_cluster_nodes(&String::from_utf8_lossy(&text)),
        other => Err(format!("unexpected CLUSTER NODES reply: {other:?}")),
    }
}

/// The node's `/metrics` port (`CONFIG GET metrics-port`; 0 = disabled).
fn metrics_port(host: &str, port: u16, timeout: Duration) -> Result<u16, String> {
    match call(host, port, &[b"CONFIG", b"GET", b"metrics-port"], timeout)? {
        Reply::Array(Some(items)) => match items.as_slice() {
            [_, Reply::Bulk(Some(value))] => std::str::from_utf8(value)
                .ok()
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| "bad metrics-port value".to_string()),
            _ => Err("the server has no metrics-port setting (not Kora?)".into()),
        },
        other => Err(format!("unexpected CONFIG GET reply: {other:?}")),
    }
}

/// A node's metrics port and scrape, or why there is none.
type Scraped = Result<(u16, Scrape), String>;

/// What the loop keeps between refreshes.
struct Watch {
    entry: (String, u16),
    timeout: Duration,
    /// The last node list, to fall back on when the entry node is down.
    nodes: Vec<ClusterNode>,
    /// Metrics port by node address, asked once (again after a failure).
    ports: HashMap<String, u16>,
    scrapes: HashMap<String, NodeScrapes>,
}

impl Watch {
    /// Refreshes the node list: the entry node first, then the nodes seen
    /// before. Returns where it came from.
    fn refresh_nodes(&mut self) -> Result<String, String> {
        let (host, port) = self.entry.clone();
        let first = match cluster_nodes(&host, port, self.timeout) {
            Ok(nodes) => {
                self.nodes = nodes;
                return Ok(format!("{}:{port}", bracket_ipv6(&host)));
            }
            Err(e) => e,
        };
        let known: Vec<(String, u16)> = self
            .nodes
            .iter()
            .map(|n| (n.host.clone(), n.port))
            .filter(|a| *a != self.entry)
            .collect();
        for (host, port) in known {
            if let Ok(nodes) = cluster_nodes(&host, port, self.timeout) {
                self.nodes = nodes;
                return Ok(format!(
                    "{}:{port}, entry node failed: {first}",
                    bracket_ipv6(&host)
                ));
            }
        }
        Err(first)
    }

    /// Scrapes every node in parallel; keeps each node's last good scrape
    /// as the base for rates.
    fn scrape_all(&mut self) {
        let timeout = self.timeout;
        let jobs: Vec<(String, String, u16, Option<u16>)> = self
            .nodes
            .iter()
            .map(|n| {
                (
                    n.id.clone(),
                    n.host.clone(),
                    n.port,
                    self.ports.get(&n.address()).copied(),
                )
            })
            .collect();
        let results: Vec<(String, String, Scraped)> = std::thread::scope(|scope| {
            let handles: Vec<_> = jobs
                .into_iter()
                .map(|(id, host, port, known_port)| {
                    scope.spawn(move || {
                        let address = format!("{}:{port}", bracket_ipv6(&host));
                        let result = (|| {
                            let mport = match known_port {
                                Some(p) => p,
                                None => metrics_port(&host, port, timeout)?,
                            };
                            if mport == 0 {
                                return Err("metrics-port is 0 (no /metrics)".to_string());
                            }
                            let text = fetch_metrics(&host, mport, timeout)?;
                            Ok((mport, Scrape::parse(&text, Instant::now())))
                        })();
                        (id, address, result)
                    })
                })
                .collect();
            handles.into_iter().filter_map(|h| h.join().ok()).collect()
        });
        let listed: Vec<&str> = self.nodes.iter().map(|n| n.id.as_str()).collect();
        self.scrapes.retain(|id, _| listed.contains(&id.as_str()));
        for (id, address, result) in results {
            let entry = self.scrapes.entry(id).or_default();
            match result {
                Ok((mport, scrape)) => {
                    self.ports.insert(address, mport);
                    if let Some(Ok(last)) = entry.current.take() {
                        entry.previous = Some(last);
                    }
                    entry.current = Some(Ok(scrape));
                }
                Err(e) => {
                    // Ask for the port again next time: the node may have
                    // been restarted with another one.
                    self.ports.remove(&address);
                    if let Some(Ok(last)) = entry.current.take() {
                        entry.previous = Some(last);
                    }
                    entry.current = Some(Err(e));
                }
            }
        }
    }

    /// Whether every listed node has two scrapes (rates can be shown).
    fn has_rates(&self) -> bool {
        self.nodes.iter().all(|n| {
            self.scrapes
                .get(&n.id)
                .is_some_and(|s| s.previous.is_some() || matches!(s.current, Some(Err(_))))
        })
    }
}

/// The `--cluster` loop: same refresh, iterations and quit rules as plain
/// `kora top`.
pub fn run(args: &super::TopArgs, entry: &str) -> Result<(), String> {
    let entry = parse_host_port(entry)?;
    let interval = Duration::from_secs_f64(args.interval);
    let timeout = interval.clamp(Duration::from_millis(500), Duration::from_secs(2));
    let terminal = !args.plain && super::term::is_terminal(libc::STDOUT_FILENO);
    let mut watch = Watch {
        entry: entry.clone(),
        timeout,
        nodes: Vec::new(),
        ports: HashMap::new(),
        scrapes: HashMap::new(),
    };
    let target = format!("cluster via {}:{}", bracket_ipv6(&entry.0), entry.1);
    let screen = terminal.then(super::term::Screen::enter);
    let mut refreshes = 0u64;
    let mut last_error: Option<String> = None;
    let mut next = Instant::now();
    loop {
        let title = format!(
            "kora top - {target} - {} - every {:.1}s, q quits",
            super::clock(),
            args.interval
        );
        let lines = match watch.refresh_nodes() {
            Err(e) => {
                refreshes += 1;
                last_error = Some(e.clone());
                Some(vec![
                    Line {
                        text: title,
                        heading: true,
                    },
                    Line {
                        text: format!("error: {e}"),
                        heading: false,
                    },
                ])
            }
            Ok(source) => {
                let first_round = watch.scrapes.is_empty();
                watch.scrape_all();
                if first_round && !watch.has_rates() {
                    // The first scrapes only set the baseline for rates.
                    terminal.then(|| {
                        vec![
                            Line {
                                text: title,
                                heading: true,
                            },
                            Line {
                                text: "reading a second scrape of every node to compute rates..."
                                    .into(),
                                heading: false,
                            },
                        ]
                    })
                } else {
                    refreshes += 1;
                    last_error = None;
                    let (nodes, total) = rows(&watch.nodes, &watch.scrapes);
                    let epoch = watch
                        .scrapes
                        .values()
                        .filter_map(|s| match &s.current {
                            Some(Ok(scrape)) => scrape.cluster.epoch,
                            _ => None,
                        })
                        .reduce(f64::max);
                    Some(render(&title, &source, &nodes, &total, epoch))
                }
            }
        };
        match super::show_and_wait(
            lines.as_deref(),
            screen.as_ref(),
            args,
            refreshes,
            &mut next,
        ) {
            super::Pace::Again => {}
            super::Pace::Done => break,
            // The reader went away (closed pipe): nothing left to do.
            super::Pace::Closed => return Ok(()),
        }
    }
    drop(screen);
    match last_error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::top::scrape::Scrape;

    const NODES: &str = "\
07c37dfeb235213a872192d90877d0cd55635b91 127.0.0.1:30004@31004,host-a slave e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca 0 1426238317239 4 connected
67ed2db8d677e59ec4a4cefb06858cf2a1a89fa1 127.0.0.1:30002@31002 master - 0 1426238316232 2 connected 5461-10922
292f8b365bb7edb5e285caf0b7e6ddc7265d2f4f 127.0.0.1:30003@31003 master,fail - 0 1426238318243 3 disconnected 10923-16383
e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca 127.0.0.1:30001@0 myself,master - 0 0 1 connected 0-5459 5460 [5460->-67ed2db8d677e59ec4a4cefb06858cf2a1a89fa1]
";

    #[test]
    fn cluster_nodes_lines_give_ids_addresses_health_and_slot_counts() {
        let nodes = parse_cluster_nodes(NODES).unwrap();
        assert_eq!(nodes.len(), 4);
        assert_eq!(nodes[0].address(), "127.0.0.1:30004");
        assert_eq!(nodes[0].slots, 0);
        assert_eq!(nodes[1].slots, 5462);
        assert_eq!(
            (nodes[2].health(), nodes[2].connected, nodes[2].slots),
            ("fail", false, 5461)
        );
        assert_eq!(nodes[3].slots, 5461, "the migrating marker is not a slot");
        assert_eq!(nodes[3].health(), "online");
        assert!(nodes[3].has_flag("myself"));
        assert_eq!(nodes[3].port, 30001);
        // IPv6 and garbage.
        let v6 = parse_cluster_nodes(
            "e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca ::1:7000@0 master - 0 0 1 connected 0",
        )
        .unwrap();
        assert_eq!(
            (v6[0].host.as_str(), v6[0].address()),
            ("::1", "[::1]:7000".to_string())
        );
        assert!(parse_cluster_nodes("not a node line").is_err());
        assert!(parse_cluster_nodes("a 1.2.3.4:1@0 master - 0 0 1 connected 5-x").is_err());
        assert!(parse_cluster_nodes("a 1.2.3.4:1@0 master - 0 0 1 connected 9-3").is_err());
    }

    fn scrape(at: Instant, id: &str, get: f64, slow: f64, keys: f64, redirects: f64) -> Scrape {
        // `get` calls at <= 10 us, `slow` calls in (1 ms, 2.5 ms].
        let text = format!(
            "kora_commands_total{{cmd=\"get\"}} {}\n\
             kora_command_duration_seconds_bucket{{cmd=\"get\",le=\"0.00001\"}} {get}\n\
             kora_command_duration_seconds_bucket{{cmd=\"get\",le=\"0.001\"}} {get}\n\
             kora_command_duration_seconds_bucket{{cmd=\"get\",le=\"0.0025\"}} {}\n\
             kora_command_duration_seconds_bucket{{cmd=\"get\",le=\"+Inf\"}} {}\n\
             kora_keys_total {keys}\nkora_memory_used_bytes 1024\n\
             kora_cluster_enabled 1\nkora_cluster_state 1\nkora_cluster_epoch 2\n\
             kora_cluster_node_info{{node_id=\"{id}\",address=\"x\"}} 1\n\
             kora_cluster_redirections_total{{type=\"moved\"}} {redirects}\n",
            get + slow,
            get + slow,
            get + slow,
        );
        Scrape::parse(&text, at)
    }

    #[test]
    fn rows_rate_each_node_and_total_the_cluster() {
        let nodes = parse_cluster_nodes(
            "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa 127.0.0.1:1@0 myself,master - 0 0 1 connected 0-8191\n\
             bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb 127.0.0.1:2@0 master,fail - 0 0 1 disconnected 8192-16383\n\
             cccccccccccccccccccccccccccccccccccccccc 127.0.0.1:3@0 master - 0 0 1 connected\n",
        )
        .unwrap();
        let t0 = Instant::now();
        let t1 = t0 + Duration::from_secs(2);
        let a = "a".repeat(40);
        let c = "c".repeat(40);
        let mut scrapes = HashMap::new();
        // a: 200 fast GETs in 2 s -> 100 ops/s, p99 in the first bucket.
        scrapes.insert(
            a.clone(),
            NodeScrapes {
                previous: Some(scrape(t0, &a, 0.0, 0.0, 10.0, 0.0)),
                current: Some(Ok(scrape(t1, &a, 200.0, 0.0, 10.0, 4.0))),
            },
        );
        scrapes.insert(
            "b".repeat(40),
            NodeScrapes {
                previous: None,
                current: Some(Err("cannot reach metrics".into())),
            },
        );
        // c: 100 fast and 100 slow in 2 s -> 100 ops/s, p99 in (1, 2.5] ms.
        scrapes.insert(
            c.clone(),
            NodeScrapes {
                previous: Some(scrape(t0, &c, 0.0, 0.0, 5.0, 0.0)),
                current: Some(Ok(scrape(t1, &c, 100.0, 100.0, 5.0, 0.0))),
            },
        );
        let (rows, total) = rows(&nodes, &scrapes);
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0].id, "aaaaaaaa");
        assert_eq!(rows[0].state, "ok");
        assert_eq!(rows[0].ops_per_sec, Some(100.0));
        assert_eq!(rows[0].redirections_per_sec, Some(2.0));
        assert!(rows[0].p99_seconds.unwrap() <= 0.00001);
        assert_eq!(
            (rows[1].health, rows[1].state.as_str()),
            ("fail", "unreachable")
        );
        assert_eq!(rows[1].error.as_deref(), Some("cannot reach metrics"));
        assert_eq!(rows[1].ops_per_sec, None);
        let p99 = rows[2].p99_seconds.unwrap();
        assert!(p99 > 0.001 && p99 <= 0.0025, "{p99}");
        assert_eq!(total.nodes, 3);
        assert_eq!(total.nodes_ok, 2);
        assert_eq!(total.slots, 16384);
        assert_eq!(total.ops_per_sec, 200.0);
        assert_eq!(total.keys, 15.0);
        assert_eq!(total.memory_bytes, 2048.0);
        assert_eq!(total.redirections_per_sec, 2.0);
        // 400 calls, 100 slow: p99 is in the slow bucket.
        let p99 = total.p99_seconds.unwrap();
        assert!(p99 > 0.001 && p99 <= 0.0025, "{p99}");
        let text: Vec<String> = render("t", "src", &rows, &total, Some(2.0))
            .into_iter()
            .map(|l| l.text)
            .collect();
        assert!(text[1].starts_with("nodes 3 (2 see the cluster ok)  slots 16384/16384  epoch 2"));
        assert!(text[3].starts_with("NODE"));
        assert!(text[4].starts_with("aaaaaaaa 127.0.0.1:1"), "{text:?}");
        assert!(text[7].starts_with("TOTAL"), "{text:?}");
        assert!(
            text.iter()
                .any(|l| l.contains("bbbbbbbb 127.0.0.1:2: cannot reach metrics"))
        );
    }

    #[test]
    fn a_different_server_behind_an_address_is_flagged() {
        let nodes = parse_cluster_nodes(
            "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa 127.0.0.1:1@0 master - 0 0 1 connected 0-10\n",
        )
        .unwrap();
        let mut scrapes = HashMap::new();
        scrapes.insert(
            "a".repeat(40),
            NodeScrapes {
                previous: None,
                current: Some(Ok(scrape(
                    Instant::now(),
                    &"d".repeat(40),
                    1.0,
                    0.0,
                    1.0,
                    0.0,
                ))),
            },
        );
        let (rows, _) = rows(&nodes, &scrapes);
        assert!(rows[0].error.as_deref().unwrap().contains("another server"));
    }

    #[test]
    fn host_port_arguments() {
        assert_eq!(
            parse_host_port("127.0.0.1:7000"),
            Ok(("127.0.0.1".into(), 7000))
        );
        assert_eq!(parse_host_port("[::1]:7000"), Ok(("::1".into(), 7000)));
        assert!(parse_host_port("7000").is_err());
        assert!(parse_host_port(":7000").is_err());
        assert!(parse_host_port("h:0").is_err());
        assert!(parse_host_port("h:x").is_err());
    }
}
