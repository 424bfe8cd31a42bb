//! MIGRATE (issue 16), as Redis 7.0's `migrateCommand`:
//!
//! `MIGRATE host port key|"" destination-db timeout [COPY] [REPLACE]
//! [AUTH password] [AUTH2 username password] [KEYS key ...]`
//!
//! 1. Options are checked in Redis' order (syntax, the KEYS form's empty
//!    key, then timeout and db as integers; a timeout <= 0 means 1000 ms).
//! 2. The keys are held ([`Atomic`]: every other client's command on them
//!    waits) and each shard owning some dumps them in one hop: the DUMP
//!    payload of `crate::store::rdb` and the remaining TTL. None found:
//!    `+NOKEY`, nothing is sent.
//! 3. One request goes to the target over this core's cached connection to
//!    `host:port` ([`crate::coord::peer`], opened within the timeout, kept
//!    10 s idle): AUTH/AUTH2 if given, SELECT when the connection has not
//!    selected that db yet, then one `RESTORE key ttl payload [REPLACE]`
//!    per key (`RESTORE-ASKING` in cluster mode, as Redis). Each write and
//!    read waits at most the timeout; the core runs on meanwhile.
//! 4. Every key the target acknowledged is deleted here (unless COPY),
//!    then the keys are released: no client sees a key in both places or
//!    a write land on a key already moved. The first error the target
//!    sent is the reply (`-ERR Target instance replied with error: …`);
//!    keys it accepted are still deleted, as in Redis.
//!
//! Socket errors follow Redis byte for byte: a host that does not resolve
//! is `-IOERR error or timeout connecting to the client`; a refused or
//! failed connect or send is `-IOERR error or timeout writing to target
//! instance` and a missing reply `-IOERR error or timeout reading to
//! target instance`. A socket error before any reply (a cached connection
//! the target closed) is retried once on a new connection, unless it was a
//! timeout.
//!
//! Layer: command (a connection-level command, so it may use `coord`).

use std::time::Duration;

use super::Args;
use super::conn::Flow;
use crate::coord::peer::{self, Peer, PeerError, Reply};
use crate::coord::{Atomic, Shard};
use crate::protocol::parser::parse_i64;
use crate::protocol::reply::{Resp, err, push_i64};
use crate::store::rdb;

const KEYS_NEED_EMPTY_KEY: &str =
    "ERR When using MIGRATE KEYS option, the key argument must be set to the empty string";
const IOERR_CONNECT: &str = "IOERR error or timeout connecting to the client";
const IOERR_WRITE: &str = "IOERR error or timeout writing to target instance";
const IOERR_READ: &str = "IOERR error or timeout reading to target instance";
const TARGET_ERROR: &[u8] = b"-ERR Target instance replied with error: ";
/// A MIGRATE whose timeout is not positive waits this long (Redis).
const DEFAULT_TIMEOUT_MS: i64 = 1000;

/// Whether the keys stay here too.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Keep {
    /// Delete every key the target acknowledged (the default).
    Move,
    /// COPY: leave them.
    Copy,
}

/// Whether RESTORE may overwrite a key the target has.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Overwrite {
    No,
    /// REPLACE.
    Replace,
}

/// Which RESTORE the target is sent.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Restore {
    /// `RESTORE`, outside cluster mode.
    Plain,
    /// `RESTORE-ASKING`, in cluster mode (the target may be importing the
    /// slot and not own it yet).
    Asking,
}

struct Options<'a> {
    keep: Keep,
    overwrite: Overwrite,
    /// AUTH password, or AUTH2 username and password.
    auth: Option<(Option<&'a [u8]>, &'a [u8])>,
    /// The keys are `args[first_key..]` (the KEYS form) or `args[3]`.
    first_key: usize,
    num_keys: usize,
    db: i64,
    timeout: Duration,
}

/// Redis' `migrateGetKeys` as a key finder: `key`, or everything after
/// KEYS when `key` is empty; None when KEYS ends the command.
pub fn migrate_keys(args: &Args<'_>) -> Option<(usize, usize)> {
    let (mut first, mut num) = (3, 1);
    if args.len() > 6
        && args.get(3).is_empty()
        && let Some(i) = (6..args.len()).find(|&i| args.is(i, "keys"))
    {
        first = i + 1;
        num = args.len() - first;
    }
    (num > 0).then(|| (first, first + num - 1))
}

fn options<'a>(args: &Args<'a>) -> Result<Options<'a>, &'static str> {
    let mut o = Options {
        keep: Keep::Move,
        overwrite: Overwrite::No,
        auth: None,
        first_key: 3,
        num_keys: 1,
        db: 0,
        timeout: Duration::ZERO,
    };
    let mut j = 6;
    while j < args.len() {
        let more = args.len() - 1 - j;
        if args.is(j, "copy") {
            o.keep = Keep::Copy;
        } else if args.is(j, "replace") {
            o.overwrite = Overwrite::Replace;
        } else if args.is(j, "auth") {
            if more < 1 {
                return Err(err::SYNTAX);
            }
            j += 1;
            o.auth = Some((None, args.get(j)));
        } else if args.is(j, "auth2") {
            if more < 2 {
                return Err(err::SYNTAX);
            }
            o.auth = Some((Some(args.get(j + 1)), args.get(j + 2)));
            j += 2;
        } else if args.is(j, "keys") {
            if !args.get(3).is_empty() {
                return Err(KEYS_NEED_EMPTY_KEY);
            }
            o.first_key = j + 1;
            o.num_keys = args.len() - j - 1;
            break;
        } else {
            return Err(err::SYNTAX);
        }
        j += 1;
    }
    let timeout = parse_i64(args.get(5)).ok_or(err::NOT_INTEGER)?;
    o.db = parse_i64(args.get(4)).ok_or(err::NOT_INTEGER)?;
    let ms = if timeout <= 0 {
        DEFAULT_TIMEOUT_MS
    } else {
        timeout
    };
    o.timeout = Duration::from_millis(ms as u64);
    Ok(o)
}

/// C's `atoi`, which Redis reads the port with: leading blanks, a sign,
/// digits up to the first non-digit ("7000x" is 7000, "x" is 0). None for
/// a negative port (getaddrinfo refuses it); ports past 65535 wrap as the
/// resolver truncates them.
fn port_of(arg: &[u8]) -> Option<u16> {
    let s = arg.trim_ascii_start();
    let (neg, digits) = match s.first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let mut n: i64 = 0;
    for &d in digits.iter().take_while(|d| d.is_ascii_digit()) {
        n = (n * 10 + (d - b'0') as i64).min(i64::from(i32::MAX));
    }
    if neg && n > 0 {
        return None;
    }
    Some((n & 0xffff) as u16)
}

/// One key found here: its argument position, payload and remaining TTL
/// in ms (0: none).
type Found = (usize, Vec<u8>, i64);

conn_async!(
    /// `MIGRATE` (see the module docs).
    migrate,
    |shard, client, args, out| {
        run(shard, client.info.id, args, out).await;
        Flow::Continue
    }
);

async fn run(shard: &Shard, tx: u64, args: &Args<'_>, out: &mut Vec<u8>) {
    let o = match options(args) {
        Ok(o) => o,
        Err(e) => return out.error(e),
    };
    let keys: Vec<&[u8]> = args
        .iter_from(o.first_key)
        .take(o.num_keys)
        .collect::<Vec<_>>();
    // Hold the keys from the dump to the delete (see the module docs).
    let mut atomic = Atomic::new(shard, tx, keys.iter().copied());
    let targets: Vec<usize> = atomic.shards().collect();
    let mut found: Vec<Found> = Vec::new();
    for &target in &targets {
        let mine: Vec<(usize, Box<[u8]>)> = keys
            .iter()
            .enumerate()
            .filter(|(_, k)| shard.owner(k) == target)
            .map(|(i, k)| (i, Box::<[u8]>::from(*k)))
            .collect();
        let dumped = atomic.on(target, move |s: &Shard| dump_keys(s, mine)).await;
        found.extend(dumped.unwrap_or_default());
    }
    if found.is_empty() {
        return out.simple("NOKEY");
    }
    found.sort_unstable_by_key(|f| f.0);
    let restore = restore_kind(shard);
    let acked = match exchange(args, &o, &keys, &found, restore, out).await {
        Some(acked) => acked,
        None => return,
    };
    if o.keep == Keep::Move {
        for &target in &targets {
            let gone: Vec<Box<[u8]>> = acked
                .iter()
                .map(|&j| keys[found[j].0])
                .filter(|k| shard.owner(k) == target)
                .map(Box::from)
                .collect();
            if gone.is_empty() {
                continue;
            }
            atomic
                .on(target, move |s: &Shard| {
                    let mut db = s.db();
                    for k in &gone {
                        db.delete(k);
                    }
                })
                .await;
        }
    }
    drop(atomic);
}

/// On the shard owning them: each live key's payload and remaining TTL.
fn dump_keys(s: &Shard, keys: Vec<(usize, Box<[u8]>)>) -> Vec<Found> {
    let mut db = s.db();
    let now = db.now_ms as i64;
    let mut found = Vec::new();
    for (i, key) in keys {
        let Some((value, expire_at)) = db.get_with_expire(&key) else {
            continue;
        };
        let ttl = match expire_at {
            0 => 0,
            at => (at as i64 - now).max(1),
        };
        let mut payload = Vec::new();
        rdb::dump(value, &mut payload);
        found.push((i, payload, ttl));
    }
    found
}

/// RESTORE-ASKING in cluster mode, RESTORE otherwise (as Redis).
fn restore_kind(shard: &Shard) -> Restore {
    if shard.cluster_enabled() {
        Restore::Asking
    } else {
        Restore::Plain
    }
}

/// Sends everything to the target and reads its replies, retrying once as
/// Redis does. Returns the positions (in `found`) of the keys the target
/// accepted, with the reply written (+OK or the target's first error); or
/// None after an I/O error reply (then nothing was accepted, or what was
/// is unknown and every key stays here).
async fn exchange(
    args: &Args<'_>,
    o: &Options<'_>,
    keys: &[&[u8]],
    found: &[Found],
    restore: Restore,
    out: &mut Vec<u8>,
) -> Option<Vec<usize>> {
    let host = args.get(1);
    let name = peer::cache_name(host, args.get(2));
    let mut may_retry = true;
    loop {
        let conn = match peer::cache_take(&name) {
            Some(c) => Ok(c),
            None => match port_of(args.get(2)) {
                None => Err(PeerError::Address),
                Some(port) => Peer::connect(host, port, o.timeout).await,
            },
        };
        let attempt = match conn {
            Err(PeerError::Address) => {
                out.error(IOERR_CONNECT);
                return None;
            }
            // Redis' connect reports nothing (it waits for the socket to
            // be writable and goes on); its first write fails.
            Err(e) => Attempt::SocketError(IOERR_WRITE, retry(e), Vec::new()),
            Ok(conn) => attempt(conn, name.clone(), o, keys, found, restore, out).await,
        };
        match attempt {
            Attempt::Done(acked) => return Some(acked),
            Attempt::SocketError(_, Retry::Allowed, _) if may_retry => may_retry = false,
            Attempt::SocketError(e, _, acked) => {
                out.error(e);
                return Some(acked);
            }
        }
    }
}

/// How one attempt at the exchange ended.
enum Attempt {
    /// Every reply arrived: the positions (in `found`) of the keys the
    /// target accepted; the reply (+OK or the target's error) is written.
    Done(Vec<usize>),
    /// The connection failed (the error to answer, whether a new
    /// connection may try again, and the keys accepted before it failed);
    /// nothing is written.
    SocketError(&'static str, Retry, Vec<usize>),
}

/// Whether a failed attempt may be made again on a new connection: only
/// when nothing was answered and the time did not run out (Redis).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Retry {
    Allowed,
    No,
}

fn retry(e: PeerError) -> Retry {
    if e.timed_out() {
        Retry::No
    } else {
        Retry::Allowed
    }
}

/// One attempt over `conn` (see [`exchange`]); gives the connection back
/// to this core's cache unless a socket error made it useless.
async fn attempt(
    mut conn: Peer,
    name: Box<[u8]>,
    o: &Options<'_>,
    keys: &[&[u8]],
    found: &[Found],
    restore: Restore,
    out: &mut Vec<u8>,
) -> Attempt {
    let mut request = Vec::new();
    if let Some((user, password)) = o.auth {
        match user {
            Some(user) => peer::encode_command(&mut request, &[b"AUTH", user, password]),
            None => peer::encode_command(&mut request, &[b"AUTH", password]),
        }
    }
    let select = conn.selected_db != Some(o.db);
    let mut number = Vec::new();
    if select {
        push_i64(&mut number, o.db);
        peer::encode_command(&mut request, &[b"SELECT", &number]);
    }
    let command: &[u8] = match restore {
        Restore::Plain => b"RESTORE",
        Restore::Asking => b"RESTORE-ASKING",
    };
    for (i, payload, ms) in found {
        number.clear();
        push_i64(&mut number, *ms);
        let restore: [&[u8]; 5] = [command, keys[*i], &number, payload, b"REPLACE"];
        let n = match o.overwrite {
            Overwrite::Replace => 5,
            Overwrite::No => 4,
        };
        peer::encode_command(&mut request, &restore[..n]);
    }
    if let Err(e) = conn.send(&request, o.timeout).await {
        return Attempt::SocketError(IOERR_WRITE, retry(e), Vec::new());
    }
    drop(request);
    // AUTH's and SELECT's replies first; an error there is the reply, and
    // no key counts as accepted (as Redis).
    let mut first_error: Option<Vec<u8>> = None;
    for wanted in [o.auth.is_some(), select] {
        if !wanted {
            continue;
        }
        match conn.read_reply(o.timeout).await {
            Err(e) => return Attempt::SocketError(IOERR_READ, retry(e), Vec::new()),
            Ok(Reply::Error(text)) if first_error.is_none() => first_error = Some(text),
            Ok(_) => {}
        }
    }
    let setup_failed = first_error.is_some();
    let mut acked = Vec::with_capacity(found.len());
    let mut broken = false;
    for j in 0..found.len() {
        match conn.read_reply(o.timeout).await {
            Err(e) => {
                if first_error.is_some() {
                    // The target's error is the reply; the socket goes.
                    broken = true;
                    break;
                }
                let again = if j == 0 { retry(e) } else { Retry::No };
                return Attempt::SocketError(IOERR_READ, again, acked);
            }
            Ok(Reply::Error(text)) => {
                first_error.get_or_insert(text);
            }
            Ok(_) if !setup_failed => acked.push(j),
            Ok(_) => {}
        }
    }
    match first_error {
        Some(text) => {
            out.extend_from_slice(TARGET_ERROR);
            out.extend(
                text.iter()
                    .map(|&b| if b == b'\r' || b == b'\n' { b' ' } else { b }),
            );
            out.extend_from_slice(b"\r\n");
            // Redis selects again next time after any error.
            conn.selected_db = None;
        }
        None => {
            conn.selected_db = Some(o.db);
            out.ok();
        }
    }
    if !broken {
        peer::cache_put(name, conn);
    }
    Attempt::Done(acked)
}
