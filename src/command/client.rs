//! CLIENT: ID, SETNAME, GETNAME, SETINFO, INFO, LIST, KILL, HELP.
//!
//! Each core keeps a registry of its own connections (`Shard::clients`);
//! CLIENT LIST and CLIENT KILL ask every core for its part over the mesh,
//! so nothing about clients is shared between cores.
//!
//! A registry entry is a [`crate::coord::ClientInfo`] (other cores reach it);
//! how CLIENT LIST renders it lives here.

use std::cell::RefCell;
use std::fmt::Write as _;

use super::Args;
use crate::command::conn::ClientState;
use crate::coord::ClientInfo;
use crate::coord::Shard;
use crate::protocol::reply::Resp;

impl ClientInfo {
    /// One CLIENT LIST line, Redis 7 field order.
    fn line(&self, now_ms: u64, out: &mut String) {
        let text = |c: &RefCell<Option<Box<[u8]>>>| {
            c.borrow()
                .as_deref()
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_default()
        };
        let multi = self.multi.get();
        // `b`: waiting in a blocking command (issue 13).
        let flags = if self.subscribed() {
            // Pub/Sub (issue 14): Redis' 'P' comes before 'x' and 'b'.
            "P"
        } else if self.blocked.get() {
            "b"
        } else if multi >= 0 {
            "x"
        } else {
            "N"
        };
        let qbuf = self.qbuf.get();
        let _ = writeln!(
            out,
            "id={} addr={} laddr={} fd=-1 name={} age={} idle={} flags={} db=0 sub={} psub={} ssub={} \
             multi={} watch={} qbuf={} qbuf-free={} argv-mem=0 multi-mem=0 rbs={} rbp=0 obl=0 oll=0 omem={} \
             tot-mem={} events=r cmd={} user=default redir=-1 resp=2 lib-name={} lib-ver={} \
             tot-net-in={} tot-net-out={} tot-cmds={}",
            self.id,
            self.addr,
            self.laddr,
            text(&self.name),
            now_ms.saturating_sub(self.created_ms) / 1000,
            now_ms.saturating_sub(self.last_active_ms.get()) / 1000,
            flags,
            self.sub.get(),
            self.psub.get(),
            self.ssub.get(),
            multi,
            self.watching.get(),
            qbuf,
            self.qbuf_cap.get().saturating_sub(qbuf),
            self.qbuf_cap.get(),
            self.omem.get(),
            self.qbuf_cap.get() + self.omem.get(),
            self.last_cmd.get(),
            text(&self.lib_name),
            text(&self.lib_ver),
            self.net_in.get(),
            self.net_out.get(),
            self.commands.get(),
        );
    }
}

/// A CLIENT KILL filter (Redis 7's new form; the old `CLIENT KILL addr`
/// is `addr` alone with `skip_me` off).
#[derive(Clone, Default)]
struct KillFilter {
    id: Option<u64>,
    addr: Option<String>,
    laddr: Option<String>,
    max_age: Option<u64>,
    skip: Option<u64>,
}

impl KillFilter {
    fn matches(&self, c: &ClientInfo, now_ms: u64) -> bool {
        self.id.is_none_or(|id| id == c.id)
            && self.addr.as_ref().is_none_or(|a| *a == c.addr)
            && self.laddr.as_ref().is_none_or(|a| *a == c.laddr)
            && self
                .max_age
                .is_none_or(|age| now_ms.saturating_sub(c.created_ms) / 1000 >= age)
            && self.skip != Some(c.id)
    }
}

pub fn set_name(client: &ClientState, name: &[u8]) -> Result<(), &'static str> {
    if name.iter().any(|&b| !(b'!'..=b'~').contains(&b)) {
        return Err("ERR Client names cannot contain spaces, newlines or special characters.");
    }
    *client.info.name.borrow_mut() = (!name.is_empty()).then(|| name.into());
    Ok(())
}

const HELP: &[&str] = &[
    "CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "ID",
    "    Return the ID of the current connection.",
    "INFO",
    "    Return information about the current client connection.",
    "LIST [TYPE NORMAL] [ID <id> [<id> ...]]",
    "    Return information about client connections on every core.",
    "KILL <ip:port>",
    "    Kill connection made from <ip:port>.",
    "KILL <option> <value> [<option> <value> [...]]",
    "    Kill connections. Options are: ID <id>, ADDR <ip:port>, LADDR <ip:port>,",
    "    MAXAGE <seconds>, SKIPME (YES|NO), TYPE NORMAL, USER default.",
    "GETNAME",
    "    Return the name of the current connection.",
    "SETNAME <name>",
    "    Assign the name <name> to the current connection.",
    "SETINFO <LIB-NAME|LIB-VER> <value>",
    "    Set client meta attributes.",
    "REPLY (ON|OFF|SKIP)",
    "    Control the replies sent to the current connection.",
    "HELP",
    "    Prints this help.",
];

pub async fn client(shard: &Shard, client: &mut ClientState, args: &Args<'_>, out: &mut Vec<u8>) {
    let sub = args.get(1).to_ascii_uppercase();
    let argc = args.len();
    match (sub.as_slice(), argc) {
        (b"ID", 2) => out.int(client.info.id as i64),
        (b"SETNAME", 3) => match set_name(client, args.get(2)) {
            Ok(()) => out.ok(),
            Err(e) => out.error(e),
        },
        (b"GETNAME", 2) => match &*client.info.name.borrow() {
            Some(n) => out.bulk(n),
            None => out.nil(),
        },
        (b"SETINFO", 4) => {
            let value = args.get(3);
            if value.iter().any(|&b| !(b'!'..=b'~').contains(&b)) {
                return out.error(&format!(
                    "ERR {} cannot contain spaces, newlines or special characters.",
                    String::from_utf8_lossy(args.get(2)).to_lowercase()
                ));
            }
            let slot = if args.is(2, "LIB-NAME") {
                &client.info.lib_name
            } else if args.is(2, "LIB-VER") {
                &client.info.lib_ver
            } else {
                return out.error(&format!(
                    "ERR Unrecognized option '{}'",
                    String::from_utf8_lossy(args.get(2))
                ));
            };
            *slot.borrow_mut() = Some(value.into());
            out.ok();
        }
        (b"INFO", 2) => {
            let mut line = String::new();
            client.info.line(crate::store::unix_ms(), &mut line);
            out.bulk(line.as_bytes());
        }
        (b"LIST", _) => list(shard, args, out).await,
        (b"KILL", 3) => {
            // Old form: the address alone; no match is an error.
            let filter = KillFilter {
                addr: Some(String::from_utf8_lossy(args.get(2)).into_owned()),
                ..KillFilter::default()
            };
            match kill(shard, filter).await {
                0 => out.error("ERR No such client"),
                _ => out.ok(),
            }
        }
        (b"KILL", n) if n >= 4 && n % 2 == 0 => match kill_filter(client, args) {
            Ok(filter) => out.int(kill(shard, filter).await as i64),
            Err(e) => out.error(&e),
        },
        // Blocking commands (issue 13): CLIENT UNBLOCK.
        (b"UNBLOCK", 3 | 4) => unblock(shard, args, out).await,
        (b"UNBLOCK", 2) => out.error("ERR wrong number of arguments for 'client|unblock' command"),
        (b"UNBLOCK", _) => out.error(
            "ERR unknown subcommand or wrong number of arguments for 'UNBLOCK'. Try CLIENT HELP.",
        ),
        (b"HELP", 2) => {
            out.array(HELP.len());
            for line in HELP {
                out.simple(line);
            }
        }
        // Issue 13 (misc): CLIENT REPLY. OFF and SKIP answer nothing; the
        // connection loop drops the replies the mode silences.
        (b"REPLY", 3) => {
            use crate::command::conn::ReplyMode;
            if args.is(2, "ON") {
                client.reply = ReplyMode::On;
                out.ok();
            } else if args.is(2, "OFF") {
                client.reply = ReplyMode::Off;
            } else if args.is(2, "SKIP") {
                if client.reply != ReplyMode::Off {
                    client.reply = ReplyMode::SkipNext;
                }
            } else {
                out.error(crate::protocol::reply::err::SYNTAX);
            }
        }
        (b"REPLY", _) => out.error("ERR wrong number of arguments for 'client|reply' command"),
        (b"NO-EVICT" | b"NO-TOUCH", 3) if args.is(2, "ON") || args.is(2, "OFF") => out.ok(),
        (b"ID" | b"SETNAME" | b"GETNAME" | b"SETINFO" | b"INFO" | b"KILL" | b"HELP", _) => out
            .error(&format!(
                "ERR wrong number of arguments for 'client|{}' command",
                String::from_utf8_lossy(&sub).to_lowercase()
            )),
        _ => out.error(&format!(
            "ERR unknown subcommand '{}'. Try CLIENT HELP.",
            String::from_utf8_lossy(args.get(1))
        )),
    }
}

fn kill_filter(client: &ClientState, args: &Args) -> Result<KillFilter, String> {
    let mut filter = KillFilter {
        skip: Some(client.info.id),
        ..KillFilter::default()
    };
    let text = |i: usize| String::from_utf8_lossy(args.get(i)).into_owned();
    let mut i = 2;
    while i + 1 < args.len() {
        let value = text(i + 1);
        let number = || {
            value
                .parse::<u64>()
                .map_err(|_| "ERR syntax error".to_string())
        };
        if args.is(i, "ID") {
            match value.parse::<u64>() {
                Ok(id) if id > 0 => filter.id = Some(id),
                _ => return Err("ERR client-id should be greater than 0".into()),
            }
        } else if args.is(i, "ADDR") {
            filter.addr = Some(value);
        } else if args.is(i, "LADDR") {
            filter.laddr = Some(value);
        } else if args.is(i, "MAXAGE") {
            filter.max_age = Some(number()?);
        } else if args.is(i, "SKIPME") {
            filter.skip = match value.to_ascii_lowercase().as_str() {
                "yes" => Some(client.info.id),
                "no" => None,
                _ => return Err("ERR syntax error".into()),
            };
        } else if args.is(i, "TYPE") {
            // Kora has normal clients only: other types match nobody.
            if !value.eq_ignore_ascii_case("normal") {
                filter.id = Some(0);
            }
        } else if args.is(i, "USER") {
            if value != "default" {
                return Err(format!("ERR No such user '{value}'"));
            }
        } else {
            return Err("ERR syntax error".into());
        }
        i += 2;
    }
    Ok(filter)
}

/// Closes the matching connections on every core; returns how many.
async fn kill(shard: &Shard, filter: KillFilter) -> usize {
    crate::coord::all(shard, move |s: &Shard| {
        let now = crate::store::unix_ms();
        let clients = s.clients();
        let mut killed = 0;
        for c in clients.values().filter(|c| filter.matches(c, now)) {
            c.killed.set(true);
            c.kill.close();
            killed += 1;
        }
        killed
    })
    .await
    .into_iter()
    .sum()
}

async fn list(shard: &Shard, args: &Args<'_>, out: &mut Vec<u8>) {
    let mut ids: Option<Vec<u64>> = None;
    let mut i = 2;
    while i < args.len() {
        if args.is(i, "TYPE") && i + 1 < args.len() {
            let t = String::from_utf8_lossy(args.get(i + 1)).to_ascii_lowercase();
            match t.as_str() {
                "normal" => {}
                "master" | "replica" | "slave" | "pubsub" => ids = Some(Vec::new()),
                _ => return out.error(&format!("ERR Unknown client type '{t}'")),
            }
            i += 2;
        } else if args.is(i, "ID") && i + 1 < args.len() {
            let mut wanted = Vec::new();
            for arg in args.iter_from(i + 1) {
                match std::str::from_utf8(arg)
                    .ok()
                    .and_then(|s| s.parse::<u64>().ok())
                {
                    Some(id) if id > 0 => wanted.push(id),
                    _ => return out.error("ERR Invalid client ID"),
                }
            }
            ids = Some(wanted);
            i = args.len();
        } else {
            return out.error("ERR syntax error");
        }
    }
    let parts = crate::coord::all(shard, move |s: &Shard| {
        let now = crate::store::unix_ms();
        let clients = s.clients();
        let mut mine: Vec<&ClientInfo> = clients
            .values()
            .map(|c| &**c)
            .filter(|c| ids.as_ref().is_none_or(|ids| ids.contains(&c.id)))
            .collect();
        mine.sort_by_key(|c| c.id);
        let mut text = String::new();
        for c in mine {
            c.line(now, &mut text);
        }
        text
    })
    .await;
    // Lines in id order across cores, as Redis lists them.
    let mut lines: Vec<&str> = parts.iter().flat_map(|p| p.lines()).collect();
    lines.sort_by_key(|l| {
        l.strip_prefix("id=")
            .and_then(|r| r.split(' ').next())
            .and_then(|id| id.parse::<u64>().ok())
            .unwrap_or(0)
    });
    let mut text = String::with_capacity(parts.iter().map(String::len).sum());
    for l in lines {
        text.push_str(l);
        text.push('\n');
    }
    out.bulk(text.as_bytes());
}

// ---- Blocking commands (issue 13): CLIENT UNBLOCK ----

/// CLIENT UNBLOCK id [TIMEOUT|ERROR]: ends the wait of a client blocked in
/// BLPOP and the like, on whichever core it is (its id says which), as if
/// it timed out or with an error. 1 if it was blocked, else 0.
async fn unblock(shard: &Shard, args: &Args<'_>, out: &mut Vec<u8>) {
    use super::blocking::{UNBLOCK_ERROR, UNBLOCK_TIMEOUT};
    let Some(id) = crate::protocol::parser::parse_i64(args.get(2)) else {
        return out.error(crate::protocol::reply::err::NOT_INTEGER);
    };
    let reason = if args.len() == 3 || args.is(3, "TIMEOUT") {
        UNBLOCK_TIMEOUT
    } else if args.is(3, "ERROR") {
        UNBLOCK_ERROR
    } else {
        return out.error("ERR CLIENT UNBLOCK reason should be TIMEOUT or ERROR");
    };
    let Ok(id) = u64::try_from(id) else {
        return out.int(0);
    };
    let core = shard.core_of_client(id);
    let done = crate::coord::on(shard, core, move |s: &Shard| {
        let clients = s.clients();
        match clients.get(&id) {
            Some(info) if info.blocked.get() && info.unblock.get() == 0 => {
                info.unblock.set(reason);
                info.wake.signal(1);
                true
            }
            _ => false,
        }
    })
    .await;
    out.int(i64::from(done == Some(true)));
}
