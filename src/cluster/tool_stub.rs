//! TEMPORARY stand-in for the lead's `crate::cluster` items (Topology,
//! node_id_for) until they land on main; deleted at the merge.
#![allow(dead_code)]

/// Number of hash slots.
pub const SLOTS: usize = 16384;

#[derive(Debug, Clone, PartialEq)]
pub struct TopoNode {
    pub id: String,
    pub host: String,
    pub port: u16,
    pub slots: Vec<(u16, u16)>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Topology {
    pub epoch: u64,
    pub nodes: Vec<TopoNode>,
}

pub fn node_id_for(host: &str, port: u16) -> String {
    let mut h: u64 = 1469598103934665603;
    for b in format!("kora-node:{host}:{port}").bytes() {
        h = (h ^ b as u64).wrapping_mul(1099511628211);
    }
    format!("{h:016x}{h:016x}{:08x}", h as u32)
}

impl Topology {
    pub fn parse(text: &str) -> Result<Topology, String> {
        let mut epoch = 0;
        let mut nodes: Vec<TopoNode> = Vec::new();
        let mut owner = vec![false; SLOTS];
        for (n, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap().trim();
            if line.is_empty() {
                continue;
            }
            let err = |m: &str| format!("line {}: {m}", n + 1);
            let mut words = line.split_whitespace();
            match words.next() {
                Some("epoch") => {
                    epoch = words
                        .next()
                        .and_then(|w| w.parse().ok())
                        .ok_or_else(|| err("bad epoch"))?
                }
                Some("node") => {
                    let mut w = words.next().ok_or_else(|| err("no address"))?;
                    let id = if w.len() == 40 && !w.contains(':') {
                        let id = w.to_string();
                        w = words.next().ok_or_else(|| err("no address"))?;
                        Some(id)
                    } else {
                        None
                    };
                    let (host, port) = w.rsplit_once(':').ok_or_else(|| err("bad address"))?;
                    let port: u16 = port.parse().map_err(|_| err("bad port"))?;
                    let id = id.unwrap_or_else(|| node_id_for(host, port));
                    let mut slots = Vec::new();
                    for r in words {
                        let (a, b) = r.split_once('-').unwrap_or((r, r));
                        let a: u16 = a.parse().map_err(|_| err("bad slot"))?;
                        let b: u16 = b.parse().map_err(|_| err("bad slot"))?;
                        if a > b || b as usize >= SLOTS {
                            return Err(err("bad range"));
                        }
                        for s in a..=b {
                            if owner[s as usize] {
                                return Err(err("slot owned twice"));
                            }
                            owner[s as usize] = true;
                        }
                        slots.push((a, b));
                    }
                    if nodes
                        .iter()
                        .any(|x| x.id == id || (x.host == host && x.port == port))
                    {
                        return Err(err("duplicate node"));
                    }
                    nodes.push(TopoNode {
                        id,
                        host: host.to_string(),
                        port,
                        slots,
                    });
                }
                _ => return Err(err("unknown line")),
            }
        }
        Ok(Topology { epoch, nodes })
    }

    pub fn to_text(&self) -> String {
        let mut s = format!("epoch {}\n", self.epoch);
        for n in &self.nodes {
            s.push_str(&format!("node {} {}:{}", n.id, n.host, n.port));
            for (a, b) in &n.slots {
                if a == b {
                    s.push_str(&format!(" {a}"));
                } else {
                    s.push_str(&format!(" {a}-{b}"));
                }
            }
            s.push('\n');
        }
        s
    }
}
