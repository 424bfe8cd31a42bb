//! Cluster mode's observability (issue 16): `/metrics` carries the node's
//! identity and cluster state, redirections are counted by type, INFO has
//! Redis' `# Cluster` section; checked on real servers.

mod common;

use std::process::Command;

use common::{Server, e, q};

/// The samples of one scrape, as (name, labels, value).
struct Scrape {
    samples: Vec<prometheus_parse::Sample>,
    text: String,
}

impl Scrape {
    fn of(s: &Server) -> Scrape {
        let text = s.metrics();
        let parsed =
            prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).unwrap();
        Scrape {
            samples: parsed.samples,
            text,
        }
    }

    fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let sample = self
            .samples
            .iter()
            .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(v)))?;
        match &sample.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => Some(*v),
            other => panic!("{name}: unexpected value {other:?}"),
        }
    }

    fn value(&self, name: &str) -> f64 {
        self.get(name, &[])
            .unwrap_or_else(|| panic!("no sample {name} in\n{}", self.text))
    }

    fn redirections(&self, kind: &str) -> f64 {
        self.get("kora_cluster_redirections_total", &[("type", kind)])
            .unwrap_or_else(|| panic!("no redirections of type {kind}"))
    }

    fn node_info(&self) -> (String, String) {
        let info: Vec<_> = self
            .samples
            .iter()
            .filter(|s| s.metric == "kora_cluster_node_info")
            .collect();
        assert_eq!(info.len(), 1, "one node_info series:\n{}", self.text);
        let label = |k: &str| info[0].labels.get(k).unwrap().to_string();
        (label("node_id"), label("address"))
    }
}

/// `promtool check metrics` on the text, when promtool is installed; it
/// fails on malformed text and on naming mistakes.
fn promtool_accepts(text: &str) {
    use std::io::Write;
    let Ok(mut child) = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
    else {
        eprintln!("promtool not installed: skipping its check");
        return;
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let report =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    // The metric contract's kora_keys_total (a gauge) is promtool's one
    // known lint finding (tools/prometheus-e2e.sh): anything else, a
    // parse error or a remark about the cluster families, fails.
    assert_eq!(
        report.trim(),
        "kora_keys_total non-counter metrics should not have \"_total\" suffix",
        "promtool check metrics"
    );
}

fn topology(ports: &[u16]) -> String {
    let mut text = String::from("epoch 1\n");
    let ranges = ["0-5460", "5461-10922", "10923-16383"];
    for (port, range) in ports.iter().zip(ranges) {
        text.push_str(&format!("node 127.0.0.1:{port} {range}\n"));
    }
    text
}

#[test]
fn standalone_server_reports_cluster_disabled_and_nothing_else() {
    let s = Server::start(1);
    let m = Scrape::of(&s);
    assert_eq!(m.value("kora_cluster_enabled"), 0.0);
    let cluster_lines: Vec<_> = m
        .text
        .lines()
        .filter(|l| l.contains("kora_cluster_") && !l.contains("kora_cluster_enabled"))
        .collect();
    assert!(cluster_lines.is_empty(), "{cluster_lines:?}");
    let info: String = q(&mut s.client(), &["INFO", "cluster"]);
    assert_eq!(info, "# Cluster\r\ncluster_enabled:0\r\n");
}

#[test]
fn cluster_metrics_follow_the_topology_and_count_redirections() {
    let servers: Vec<Server> = (0..3)
        .map(|_| Server::start_with(2, &["--cluster-enabled", "yes"]))
        .collect();
    let ports: Vec<u16> = servers.iter().map(|s| s.port).collect();

    // Before a topology: a node that knows nobody, cluster state fail.
    for s in &servers {
        let m = Scrape::of(s);
        assert_eq!(m.value("kora_cluster_enabled"), 1.0);
        assert_eq!(m.value("kora_cluster_state"), 0.0);
        assert_eq!(m.value("kora_cluster_slots_assigned"), 0.0);
        assert_eq!(m.value("kora_cluster_slots_owned"), 0.0);
        assert_eq!(m.value("kora_cluster_known_nodes"), 0.0);
        assert_eq!(m.value("kora_cluster_epoch"), 0.0);
        let myid: String = q(&mut s.client(), &["CLUSTER", "MYID"]);
        assert_eq!(m.node_info(), (myid, format!("127.0.0.1:{}", s.port)));
        let info: String = q(&mut s.client(), &["INFO", "cluster"]);
        assert_eq!(info, "# Cluster\r\ncluster_enabled:1\r\n");
        promtool_accepts(&m.text);
    }
    // A keyed command now is refused with CLUSTERDOWN, counted as down.
    let mut c0 = servers[0].client();
    assert_eq!(
        e(&mut c0, &["GET", "foo"]),
        "CLUSTERDOWN Hash slot not served"
    );
    assert_eq!(Scrape::of(&servers[0]).redirections("down"), 1.0);

    let text = topology(&ports);
    for s in &servers {
        let ok: String = q(&mut s.client(), &["CLUSTER", "SETTOPOLOGY", &text]);
        assert_eq!(ok, "OK");
    }
    let owned = [5461.0, 5462.0, 5461.0];
    for (s, owned) in servers.iter().zip(owned) {
        let m = Scrape::of(s);
        assert_eq!(m.value("kora_cluster_state"), 1.0);
        assert_eq!(m.value("kora_cluster_slots_assigned"), 16384.0);
        assert_eq!(m.value("kora_cluster_slots_ok"), 16384.0);
        assert_eq!(m.value("kora_cluster_slots_owned"), owned);
        assert_eq!(m.value("kora_cluster_known_nodes"), 3.0);
        assert_eq!(m.value("kora_cluster_epoch"), 1.0);
        assert_eq!(m.value("kora_cluster_nodes_failed"), 0.0);
        let myid: String = q(&mut s.client(), &["CLUSTER", "MYID"]);
        assert_eq!(m.node_info().0, myid);
        promtool_accepts(&m.text);
    }

    // "foo" hashes to slot 12182 (the third node's), "x3" to 1984 (the
    // first's): from the first node, one MOVED and one CROSSSLOT.
    assert_eq!(
        e(&mut c0, &["GET", "foo"]),
        format!("MOVED 12182 127.0.0.1:{}", ports[2])
    );
    assert_eq!(
        e(&mut c0, &["MGET", "foo", "x3"]),
        "CROSSSLOT Keys in request don't hash to the same slot"
    );
    let _: () = q(&mut c0, &["SET", "x3", "v"]);
    let m = Scrape::of(&servers[0]);
    assert_eq!(m.redirections("moved"), 1.0);
    assert_eq!(m.redirections("crossslot"), 1.0);
    assert_eq!(m.redirections("down"), 1.0);
    assert_eq!(m.redirections("ask"), 0.0);
    assert_eq!(m.redirections("tryagain"), 0.0);
    // The other nodes answered nothing of the kind.
    assert_eq!(Scrape::of(&servers[2]).redirections("moved"), 0.0);

    // Every node's series can be joined to its node id: three distinct ids.
    let mut ids: Vec<String> = servers
        .iter()
        .map(|s| Scrape::of(s).node_info().0)
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 3);
}
