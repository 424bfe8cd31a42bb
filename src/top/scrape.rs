//! Reading a server's state for `kora top`: one `GET /metrics` over a plain
//! TCP connection, parsed from the Prometheus text format into the few
//! families the view shows.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

/// A scrape of a healthy server is tens of KiB; anything past this is not
/// Kora's /metrics and is refused rather than buffered.
const MAX_RESPONSE_BYTES: u64 = 16 * 1024 * 1024;

/// Cumulative counters of one `cmd` label.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CommandCounters {
    pub calls: f64,
    pub failed: f64,
    /// `(le, cumulative count)` sorted by `le`, ending with `+Inf`.
    pub buckets: Vec<(f64, f64)>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ShardCounters {
    pub up: bool,
    pub keys: f64,
    pub memory_bytes: f64,
    pub commands: f64,
}

/// What one scrape said, plus when it was taken.
#[derive(Debug, Clone)]
pub struct Scrape {
    pub taken_at: Instant,
    pub commands: BTreeMap<String, CommandCounters>,
    pub shards: BTreeMap<u32, ShardCounters>,
    pub keys: f64,
    pub memory_bytes: f64,
    pub bytes_in: f64,
    pub bytes_out: f64,
    pub connected_clients: f64,
    pub hits: f64,
    pub misses: f64,
    pub expired: f64,
    pub uptime_seconds: f64,
    pub version: String,
    /// Cluster mode (issue 16; `kora top --cluster`): what the node says
    /// of itself. None/empty for a server outside cluster mode.
    pub cluster: ClusterCounters,
}

/// The `kora_cluster_*` families a node exports in cluster mode.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClusterCounters {
    /// `kora_cluster_enabled`.
    pub enabled: bool,
    /// `kora_cluster_node_info`'s `node_id` label.
    pub node_id: String,
    /// `kora_cluster_state`: whether the node sees its cluster as ok.
    pub state_ok: Option<bool>,
    pub slots_owned: Option<f64>,
    pub epoch: Option<f64>,
    pub nodes_failed: Option<f64>,
    /// `kora_cluster_redirections_total`, all types.
    pub redirections: f64,
}

impl Scrape {
    /// Builds a scrape from the text of a `/metrics` answer; lines of other
    /// families are ignored, malformed lines are skipped.
    pub fn parse(text: &str, taken_at: Instant) -> Scrape {
        let mut s = Scrape {
            taken_at,
            commands: BTreeMap::new(),
            shards: BTreeMap::new(),
            keys: 0.0,
            memory_bytes: 0.0,
            bytes_in: 0.0,
            bytes_out: 0.0,
            connected_clients: 0.0,
            hits: 0.0,
            misses: 0.0,
            expired: 0.0,
            uptime_seconds: 0.0,
            version: String::new(),
            cluster: ClusterCounters::default(),
        };
        for line in text.lines() {
            let Some(sample) = Sample::parse(line) else {
                continue;
            };
            let cmd = || sample.label("cmd").unwrap_or("other").to_string();
            let shard = || sample.label("shard").and_then(|v| v.parse::<u32>().ok());
            match sample.name {
                "kora_commands_total" => s.commands.entry(cmd()).or_default().calls = sample.value,
                "kora_command_failed_total" => {
                    s.commands.entry(cmd()).or_default().failed = sample.value
                }
                "kora_command_duration_seconds_bucket" => {
                    if let Some(le) = sample.label("le").and_then(parse_float) {
                        s.commands
                            .entry(cmd())
                            .or_default()
                            .buckets
                            .push((le, sample.value));
                    }
                }
                "kora_keys_total" => s.keys = sample.value,
                "kora_memory_used_bytes" => s.memory_bytes = sample.value,
                "kora_bytes_in_total" => s.bytes_in = sample.value,
                "kora_bytes_out_total" => s.bytes_out = sample.value,
                "kora_connected_clients" => s.connected_clients = sample.value,
                "kora_keyspace_hits_total" => s.hits = sample.value,
                "kora_keyspace_misses_total" => s.misses = sample.value,
                "kora_expired_keys_total" => s.expired = sample.value,
                "kora_uptime_seconds" => s.uptime_seconds = sample.value,
                "kora_build_info" => {
                    s.version = sample.label("version").unwrap_or_default().to_string()
                }
                "kora_cluster_enabled" => s.cluster.enabled = sample.value == 1.0,
                "kora_cluster_node_info" => {
                    s.cluster.node_id = sample.label("node_id").unwrap_or_default().to_string()
                }
                "kora_cluster_state" => s.cluster.state_ok = Some(sample.value == 1.0),
                "kora_cluster_slots_owned" => s.cluster.slots_owned = Some(sample.value),
                "kora_cluster_epoch" => s.cluster.epoch = Some(sample.value),
                "kora_cluster_nodes_failed" => s.cluster.nodes_failed = Some(sample.value),
                "kora_cluster_redirections_total" => s.cluster.redirections += sample.value,
                "kora_shard_up"
                | "kora_shard_keys"
                | "kora_shard_memory_used_bytes"
                | "kora_shard_commands_total" => {
                    if let Some(id) = shard() {
                        let entry = s.shards.entry(id).or_default();
                        match sample.name {
                            "kora_shard_up" => entry.up = sample.value == 1.0,
                            "kora_shard_keys" => entry.keys = sample.value,
                            "kora_shard_memory_used_bytes" => entry.memory_bytes = sample.value,
                            _ => entry.commands = sample.value,
                        }
                    }
                }
                _ => {}
            }
        }
        for counters in s.commands.values_mut() {
            counters.buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        }
        s
    }
}

/// One sample line: `name{label="value",...} value [timestamp]`.
#[derive(Debug, PartialEq)]
pub struct Sample<'a> {
    pub name: &'a str,
    labels: Vec<(&'a str, String)>,
    pub value: f64,
}

impl<'a> Sample<'a> {
    pub fn parse(line: &'a str) -> Option<Sample<'a>> {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            return None;
        }
        let name_end = line.find(['{', ' ', '\t']).unwrap_or(line.len());
        let name = &line[..name_end];
        let mut rest = &line[name_end..];
        let mut labels = Vec::new();
        if let Some(body) = rest.strip_prefix('{') {
            let (parsed, after) = parse_labels(body)?;
            labels = parsed;
            rest = after;
        }
        let value = parse_float(rest.split_whitespace().next()?)?;
        Some(Sample {
            name,
            labels,
            value,
        })
    }

    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Parses `a="x",b="y"}` and returns the labels and what follows the `}`.
#[allow(clippy::type_complexity)]
fn parse_labels(mut s: &str) -> Option<(Vec<(&str, String)>, &str)> {
    let mut labels = Vec::new();
    loop {
        s = s.trim_start_matches([' ', ',']);
        if let Some(after) = s.strip_prefix('}') {
            return Some((labels, after));
        }
        let eq = s.find('=')?;
        let name = s[..eq].trim();
        s = s[eq + 1..].trim_start().strip_prefix('"')?;
        let mut value = String::new();
        let mut chars = s.char_indices();
        let end = loop {
            match chars.next()? {
                (i, '"') => break i,
                (_, '\\') => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                (_, c) => value.push(c),
            }
        };
        labels.push((name, value));
        s = &s[end + 1..];
    }
}

fn parse_float(s: &str) -> Option<f64> {
    match s {
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        _ => s.parse().ok(),
    }
}

/// `GET /metrics` on `host:port` and returns the body.
pub fn fetch_metrics(host: &str, port: u16, timeout: Duration) -> Result<String, String> {
    let target = format!("{}:{port}", bracket_ipv6(host));
    let mut stream = connect(host, port, timeout)
        .map_err(|e| format!("cannot reach metrics at {target}: {e}"))?;
    stream.set_read_timeout(Some(timeout)).ok();
    stream.set_write_timeout(Some(timeout)).ok();
    let request = format!(
        "GET /metrics HTTP/1.1\r\nHost: {target}\r\nUser-Agent: kora-top\r\nConnection: close\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .map_err(|e| format!("metrics request to {target} failed: {e}"))?;
    let mut raw = Vec::new();
    (&mut stream)
        .take(MAX_RESPONSE_BYTES + 1)
        .read_to_end(&mut raw)
        .map_err(|e| format!("reading metrics from {target} failed: {e}"))?;
    if raw.len() as u64 > MAX_RESPONSE_BYTES {
        return Err(format!("metrics answer from {target} is too large"));
    }
    let head_end = memchr::memmem::find(&raw, b"\r\n\r\n")
        .ok_or_else(|| format!("bad HTTP answer from {target}"))?;
    let head = String::from_utf8_lossy(&raw[..head_end]);
    let status = head.split_whitespace().nth(1).unwrap_or("");
    if status != "200" {
        let line = head.lines().next().unwrap_or("");
        return Err(format!("metrics at {target} answered {line:?}"));
    }
    let mut body = &raw[head_end + 4..];
    let length = head.lines().find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.trim()
            .eq_ignore_ascii_case("content-length")
            .then(|| value.trim().parse::<usize>().ok())?
    });
    if let Some(length) = length {
        body = &body[..length.min(body.len())];
    }
    Ok(String::from_utf8_lossy(body).into_owned())
}

/// Connects to the first address of `host` that answers: "localhost" may
/// resolve to ::1 first while the server listens on 127.0.0.1 only.
pub fn connect(host: &str, port: u16, timeout: Duration) -> io::Result<TcpStream> {
    let mut last_error = None;
    for addr in (host, port).to_socket_addrs()? {
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(stream) => return Ok(stream),
            Err(e) => last_error = Some(e),
        }
    }
    Err(last_error
        .unwrap_or_else(|| io::Error::new(io::ErrorKind::NotFound, "host has no address")))
}

pub fn bracket_ipv6(host: &str) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_lines_with_labels_escapes_and_special_values() {
        let s = Sample::parse(r#"kora_x{cmd="get",note="a \"q\" \\ b\nc"} 12.5"#).unwrap();
        assert_eq!(s.name, "kora_x");
        assert_eq!(s.label("cmd"), Some("get"));
        assert_eq!(s.label("note"), Some("a \"q\" \\ b\nc"));
        assert_eq!(s.value, 12.5);
        let s = Sample::parse("kora_keys_total 42 1700000000000").unwrap();
        assert_eq!((s.name, s.value), ("kora_keys_total", 42.0));
        let s = Sample::parse(r#"b{le="+Inf"} NaN"#).unwrap();
        assert_eq!(s.label("le").and_then(parse_float), Some(f64::INFINITY));
        assert!(s.value.is_nan());
        assert_eq!(Sample::parse("# TYPE kora_keys_total gauge"), None);
        assert_eq!(Sample::parse(r#"broken{cmd="get" 1"#), None);
        assert_eq!(Sample::parse("novalue"), None);
    }

    #[test]
    fn scrape_collects_commands_shards_and_gauges() {
        let text = "\
# TYPE kora_commands_total counter
kora_commands_total{cmd=\"get\"} 10
kora_command_failed_total{cmd=\"get\"} 1
kora_command_duration_seconds_bucket{cmd=\"get\",le=\"+Inf\"} 10
kora_command_duration_seconds_bucket{cmd=\"get\",le=\"0.00001\"} 4
kora_command_duration_seconds_bucket{cmd=\"get\",le=\"0.000005\"} 2
kora_keys_total 7
kora_memory_used_bytes 1024
kora_shard_up{shard=\"1\"} 0
kora_shard_keys{shard=\"1\"} 3
kora_shard_commands_total{shard=\"1\"} 9
kora_build_info{version=\"0.1.0\",redis_version=\"7.2.4\",shards=\"2\"} 1
";
        let s = Scrape::parse(text, Instant::now());
        let get = &s.commands["get"];
        assert_eq!((get.calls, get.failed), (10.0, 1.0));
        assert_eq!(
            get.buckets,
            vec![(0.000005, 2.0), (0.00001, 4.0), (f64::INFINITY, 10.0)]
        );
        assert_eq!((s.keys, s.memory_bytes), (7.0, 1024.0));
        assert_eq!(
            s.shards[&1],
            ShardCounters {
                up: false,
                keys: 3.0,
                memory_bytes: 0.0,
                commands: 9.0
            }
        );
        assert_eq!(s.version, "0.1.0");
        assert_eq!(s.cluster, ClusterCounters::default());
    }

    #[test]
    fn scrape_reads_the_cluster_families() {
        let text = "\
kora_cluster_enabled 1
kora_cluster_redirections_total{type=\"moved\"} 5
kora_cluster_redirections_total{type=\"ask\"} 2
kora_cluster_node_info{node_id=\"0123456789abcdef0123456789abcdef01234567\",address=\"127.0.0.1:7000\"} 1
kora_cluster_state 0
kora_cluster_slots_owned 5461
kora_cluster_epoch 3
kora_cluster_nodes_failed 1
";
        let s = Scrape::parse(text, Instant::now());
        assert_eq!(
            s.cluster,
            ClusterCounters {
                enabled: true,
                node_id: "0123456789abcdef0123456789abcdef01234567".into(),
                state_ok: Some(false),
                slots_owned: Some(5461.0),
                epoch: Some(3.0),
                nodes_failed: Some(1.0),
                redirections: 7.0,
            }
        );
    }
}
