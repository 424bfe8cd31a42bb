//! Blocking commands of issue 13: BLPOP, BRPOP, BLMOVE, BRPOPLPUSH,
//! BLMPOP, BZPOPMIN, BZPOPMAX and BZMPOP — the non-blocking pop or move when it finds something, else
//! the connection waits until a key it names gets an element, its timeout
//! passes, CLIENT UNBLOCK names it, it disconnects, or the server stops.
//!
//! Each is a connection-level command (`Conn::Async`): it needs its
//! connection (to wait, to be unblocked) and may touch keys on several
//! shards. An attempt is one [`Atomic`] step over its keys, in argument
//! order, like LMPOP/LMOVE across shards, so a BLMOVE whose destination
//! is on another shard pops and pushes as one step. An attempt that finds
//! nothing queues the client on each empty key's shard in the same op
//! (`coord::blocking`: per-key first-come-first-served queues, woken one
//! waiter at a time, the woken one retrying here; see that module for why
//! it retries rather than being handed the element). What is generic over
//! "what to pop" is [`Wants`] (which values a waiter takes), `How` (what
//! an attempt does with a value that fits) and `Got` (what it found): the
//! sorted-set forms are one more `How` on the same mechanism, and list and
//! sorted-set waiters on one key do not stand in each other's way.
//!
//! Inside MULTI/EXEC they do not block (Redis 7.0): they answer as the
//! non-blocking form would, nil when there is nothing.

use std::rc::Rc;
use std::time::{Duration, Instant};

use futures_lite::future;

use super::conn::{ClientState, Flow};
use super::keys::SHARD_GONE;
use super::multikey::{Probe, is_list, lmove_local, numkeys, pop_many, probe, push_one, side};
use super::{Args, ConnFuture};
use crate::coord::blocking::Wants;
use crate::coord::{Atomic, Shard};
use crate::protocol::parser::parse_i64;
use crate::protocol::reply::{Resp, err};
use crate::store::{Db, Value};

const TIMEOUT_NOT_FLOAT: &str = "ERR timeout is not a float or out of range";
const TIMEOUT_NEGATIVE: &str = "ERR timeout is negative";
const COUNT_POSITIVE: &str = "ERR count should be greater than 0";
/// CLIENT UNBLOCK id ERROR's reply to the blocked client.
pub(crate) const UNBLOCKED: &str = "UNBLOCKED client unblocked via CLIENT UNBLOCK";
/// CLIENT UNBLOCK's reasons, as `ClientInfo::unblock` holds them.
pub(crate) const UNBLOCK_TIMEOUT: u8 = 1;
pub(crate) const UNBLOCK_ERROR: u8 = 2;

/// List waiters compete with each other only.
const KIND_LIST: u8 = 1;
const WANTS_LIST: Wants = Wants {
    kind: KIND_LIST,
    fits: is_list,
};
/// Sorted-set waiters compete with each other only.
const KIND_ZSET: u8 = 2;
const WANTS_ZSET: Wants = Wants {
    kind: KIND_ZSET,
    fits: is_zset,
};

fn is_zset(v: &Value) -> bool {
    matches!(v, Value::ZSet(_))
}

/// A timeout as Redis 7.0 reads it: seconds as a long double, turned into
/// whole milliseconds (0: wait forever). As in Redis, a value too large
/// for the conversion (`inf`, `1e30`) reads as negative, and a negative
/// value that truncates to 0 ms (`-0.0001`) waits forever. Read as an
/// f64 rather than a long double: within a few units of 2^63 ms (about 292
/// million years) a value Redis accepts can read as negative here.
pub(crate) fn parse_timeout(raw: &[u8]) -> Result<u64, &'static str> {
    let secs: f64 = std::str::from_utf8(raw)
        .ok()
        .filter(|t| !t.starts_with(|c: char| c.is_ascii_whitespace()))
        .and_then(|t| t.parse().ok())
        .filter(|v: &f64| !v.is_nan())
        .ok_or(TIMEOUT_NOT_FLOAT)?;
    let ms = secs * 1000.0;
    // Out of range for a C `long long`: x86 converts to LLONG_MIN.
    const TWO_POW_63: f64 = 9_223_372_036_854_775_808.0;
    if !ms.is_finite() || !(-TWO_POW_63..TWO_POW_63).contains(&ms) {
        return Err(TIMEOUT_NEGATIVE);
    }
    let ms = ms.trunc() as i64;
    u64::try_from(ms).map_err(|_| TIMEOUT_NEGATIVE)
}

/// What an attempt does once it finds a list.
#[derive(Clone, Debug)]
enum How {
    /// BLPOP/BRPOP (`multi` false: `[key, element]`) and BLMPOP (`multi`
    /// true: `[key, [elements]]`).
    Pop {
        left: bool,
        count: usize,
        multi: bool,
    },
    /// BZPOPMIN/BZPOPMAX (`multi` false: `[key, member, score]`) and
    /// BZMPOP (`multi` true: `[key, [[member, score], ...]]`).
    ZPop {
        max: bool,
        count: usize,
        multi: bool,
    },
    /// BLMOVE/BRPOPLPUSH: the single source is `keys[0]`.
    Move {
        dst: Box<[u8]>,
        from_left: bool,
        to_left: bool,
    },
}

/// A parsed blocking command.
struct Blocking {
    keys: Vec<Box<[u8]>>,
    how: How,
    timeout_ms: u64,
}

/// What one attempt found.
enum Got {
    Popped(Box<[u8]>, Vec<Box<[u8]>>),
    ZPopped(Box<[u8]>, Vec<(Box<[u8]>, f64)>),
    Moved(Box<[u8]>),
    Error(&'static str),
    /// Nothing for this client yet (it is queued where it found nothing,
    /// when blocking).
    Nothing,
}

fn parse_pop(args: &Args, left: bool) -> Result<Blocking, &'static str> {
    let last = args.len() - 1;
    let timeout_ms = parse_timeout(args.get(last))?;
    Ok(Blocking {
        keys: (1..last).map(|i| Box::from(args.get(i))).collect(),
        how: How::Pop {
            left,
            count: 1,
            multi: false,
        },
        timeout_ms,
    })
}

fn parse_move(args: &Args, sides: Option<(bool, bool)>) -> Result<Blocking, &'static str> {
    let (from_left, to_left, at) = match sides {
        Some((from, to)) => (from, to, 3),
        None => (side(args, 3)?, side(args, 4)?, 5),
    };
    let timeout_ms = parse_timeout(args.get(at))?;
    Ok(Blocking {
        keys: vec![Box::from(args.get(1))],
        how: How::Move {
            dst: Box::from(args.get(2)),
            from_left,
            to_left,
        },
        timeout_ms,
    })
}

fn parse_zpop(args: &Args, max: bool) -> Result<Blocking, &'static str> {
    let mut cmd = parse_pop(args, true)?;
    cmd.how = How::ZPop {
        max,
        count: 1,
        multi: false,
    };
    Ok(cmd)
}

/// BZMPOP timeout numkeys key [key ...] MIN|MAX [COUNT count]: BLMPOP's
/// checks with MIN|MAX for the side.
fn parse_bzmpop(args: &Args) -> Result<Blocking, &'static str> {
    let n = numkeys(args, 2)?;
    let where_at = n
        .checked_add(3)
        .filter(|&w| w < args.len())
        .ok_or(err::SYNTAX)?;
    let max = if args.is(where_at, "MIN") {
        false
    } else if args.is(where_at, "MAX") {
        true
    } else {
        return Err(err::SYNTAX);
    };
    let count = parse_count(args, where_at + 1)?;
    let timeout_ms = parse_timeout(args.get(1))?;
    Ok(Blocking {
        keys: (3..where_at).map(|i| Box::from(args.get(i))).collect(),
        how: How::ZPop {
            max,
            count,
            multi: true,
        },
        timeout_ms,
    })
}

/// `[COUNT count]` from `args[from..]`: 1 when absent.
fn parse_count(args: &Args, from: usize) -> Result<usize, &'static str> {
    let mut count = None;
    let mut i = from;
    while i < args.len() {
        if count.is_none() && args.is(i, "COUNT") && i + 1 < args.len() {
            count = Some(match parse_i64(args.get(i + 1)) {
                Some(c) if c >= 1 => usize::try_from(c).unwrap_or(usize::MAX),
                _ => return Err(COUNT_POSITIVE),
            });
            i += 2;
        } else {
            return Err(err::SYNTAX);
        }
    }
    Ok(count.unwrap_or(1))
}

/// BLMPOP timeout numkeys key [key ...] LEFT|RIGHT [COUNT count], checked
/// in Redis' order: numkeys, the side, the options, then the timeout.
fn parse_blmpop(args: &Args) -> Result<Blocking, &'static str> {
    let n = numkeys(args, 2)?;
    let where_at = n
        .checked_add(3)
        .filter(|&w| w < args.len())
        .ok_or(err::SYNTAX)?;
    let left = side(args, where_at)?;
    let count = parse_count(args, where_at + 1)?;
    let timeout_ms = parse_timeout(args.get(1))?;
    Ok(Blocking {
        keys: (3..where_at).map(|i| Box::from(args.get(i))).collect(),
        how: How::Pop {
            left,
            count,
            multi: true,
        },
        timeout_ms,
    })
}

/// BLMPOP's keys for COMMAND GETKEYS and routing checks: `args[3..=2+n]`.
pub fn blmpop_keys(args: &Args) -> Option<(usize, usize)> {
    let n = numkeys(args, 2).ok()?;
    (n.checked_add(3)? < args.len()).then_some((3, 2 + n))
}

macro_rules! blocking_cmd {
    ($name:ident, $parse:expr) => {
        #[doc = concat!("`", stringify!($name), "`: see the module docs.")]
        pub fn $name<'a>(
            shard: &'a Rc<Shard>,
            client: &'a mut ClientState,
            args: &'a Args<'a>,
            out: &'a mut Vec<u8>,
        ) -> ConnFuture<'a> {
            Box::pin(async move {
                let parse: fn(&Args) -> Result<Blocking, &'static str> = $parse;
                match parse(args) {
                    Ok(cmd) => run(shard, client, cmd, out).await,
                    Err(e) => {
                        out.error(e);
                        Flow::Continue
                    }
                }
            })
        }
    };
}

blocking_cmd!(blpop, |args| parse_pop(args, true));
blocking_cmd!(brpop, |args| parse_pop(args, false));
blocking_cmd!(blmove, |args| parse_move(args, None));
blocking_cmd!(brpoplpush, |args| parse_move(args, Some((false, true))));
blocking_cmd!(blmpop, parse_blmpop);
blocking_cmd!(bzpopmin, |args| parse_zpop(args, false));
blocking_cmd!(bzpopmax, |args| parse_zpop(args, true));
blocking_cmd!(bzmpop, parse_bzmpop);

/// Why a blocked client stopped waiting without being served.
enum Ended {
    Timeout,
    UnblockError,
    /// Disconnected, killed or the server stopping: no reply.
    Gone,
}

async fn run(
    shard: &Rc<Shard>,
    client: &mut ClientState,
    cmd: Blocking,
    out: &mut Vec<u8>,
) -> Flow {
    let info = client.info.clone();
    let me = info.id;
    // A permit left from an earlier command would only cost a retry, but
    // a flag left set would end this one.
    while info.wake.try_acquire(1).unwrap_or(false) {}
    info.unblock.set(0);
    // Inside EXEC: the non-blocking form (the transaction holds its
    // shards; waiting would hold them for ever).
    let blocking = !shard.in_transaction();
    let mut got = attempt(shard, me, &cmd, blocking, true).await;
    if !matches!(got, Got::Nothing) || !blocking {
        if blocking && cmd.keys.len() > 1 {
            // Keys before the one that answered had nothing: it queued
            // there on the way.
            leave_queues(shard, me, &cmd).await;
        }
        reply(out, &cmd, got, false);
        return Flow::Continue;
    }
    // Queued on every key that had nothing: wait for a wake-up.
    let stats = &shard.metrics().stats;
    stats.blocked_clients.inc();
    info.blocked.set(true);
    let deadline = (cmd.timeout_ms > 0)
        .then(|| Instant::now() + Duration::from_millis(cmd.timeout_ms.min(u64::MAX / 4)));
    let ended = loop {
        if let Some(ended) = wait(shard, &info, deadline).await {
            break Some(ended);
        }
        // Permits that came meanwhile are covered by the attempt below: it
        // runs on each shard after whatever write sent them.
        while info.wake.try_acquire(1).unwrap_or(false) {}
        if let Some(ended) = interrupted(shard, &info) {
            break Some(ended);
        }
        got = attempt(shard, me, &cmd, true, false).await;
        if !matches!(got, Got::Nothing) {
            break None;
        }
    };
    info.blocked.set(false);
    stats.blocked_clients.dec();
    leave_queues(shard, me, &cmd).await;
    info.unblock.set(0);
    match ended {
        None => reply(out, &cmd, got, false),
        Some(Ended::Timeout) => reply(out, &cmd, Got::Nothing, true),
        Some(Ended::UnblockError) => out.error(UNBLOCKED),
        Some(Ended::Gone) => return Flow::Close,
    }
    Flow::Continue
}

/// A reason to stop waiting that does not depend on the keys.
fn interrupted(shard: &Shard, info: &crate::coord::ClientInfo) -> Option<Ended> {
    if info.peer_closed.get() || info.killed.get() || shard.shutdown().is_shutting_down() {
        return Some(Ended::Gone);
    }
    match info.unblock.get() {
        UNBLOCK_TIMEOUT => Some(Ended::Timeout),
        UNBLOCK_ERROR => Some(Ended::UnblockError),
        _ => None,
    }
}

/// Sleeps until a wake-up (None: try again) or a reason to stop.
async fn wait(
    shard: &Shard,
    info: &crate::coord::ClientInfo,
    deadline: Option<Instant>,
) -> Option<Ended> {
    if let Some(ended) = interrupted(shard, info) {
        return Some(ended);
    }
    let woken = async {
        let _ = info.wake.acquire(1).await;
        None
    };
    let timer = async {
        match deadline {
            Some(at) => {
                glommio::timer::sleep(at.saturating_duration_since(Instant::now())).await;
                Some(Ended::Timeout)
            }
            None => future::pending().await,
        }
    };
    let stop = async {
        future::or(
            async {
                shard.shutdown().wait().await;
            },
            async {
                let _ = info.kill.acquire(1).await;
            },
        )
        .await;
        Some(Ended::Gone)
    };
    future::or(woken, future::or(timer, stop)).await
}

/// Takes the client out of every queue it may be in.
async fn leave_queues(shard: &Shard, me: u64, cmd: &Blocking) {
    let mut parts: Vec<(usize, Vec<Box<[u8]>>)> = Vec::new();
    for key in &cmd.keys {
        let owner = shard.owner(key);
        match parts.iter_mut().find(|(s, _)| *s == owner) {
            Some((_, keys)) => keys.push(key.clone()),
            None => parts.push((owner, vec![key.clone()])),
        }
    }
    let ops = parts
        .into_iter()
        .map(|(s, keys)| {
            (s, move |sh: &Shard| {
                for key in &keys {
                    sh.unblock_from(key, me);
                }
            })
        })
        .collect();
    crate::coord::on_parts(shard, ops).await;
}

/// One try: the keys in argument order, each on its shard, all held as
/// one step. `blocking`: queue on (or re-arm) each key that gives nothing,
/// and leave a key's element to the clients queued before this one.
/// `first`: a key of another type is an error (later, a blocked client
/// only waits for a list to appear there, as in Redis).
async fn attempt(shard: &Shard, me: u64, cmd: &Blocking, blocking: bool, first: bool) -> Got {
    let declared = cmd.keys.iter().map(|k| &k[..]).chain(match &cmd.how {
        How::Move { dst, .. } => Some(&dst[..]),
        How::Pop { .. } | How::ZPop { .. } => None,
    });
    let mut atomic = Atomic::new(shard, me, declared);
    match cmd.how.clone() {
        how @ (How::Pop { .. } | How::ZPop { .. }) => {
            let wants = match how {
                How::ZPop { .. } => WANTS_ZSET,
                _ => WANTS_LIST,
            };
            for key in &cmd.keys {
                let key = key.clone();
                let how = how.clone();
                let found = atomic
                    .on(shard.owner(&key), move |s: &Shard| {
                        let state = probe(&mut s.db(), &key, wants.fits);
                        let got = match state {
                            Probe::Wrong if first => return Got::Error(err::WRONGTYPE),
                            Probe::Fits if !(blocking && s.waits_behind(&key, me, wants.kind)) => {
                                return pop(&mut s.db(), key, &how);
                            }
                            _ => Got::Nothing,
                        };
                        if blocking {
                            s.block_on(&key, me, wants);
                        }
                        got
                    })
                    .await;
                match found {
                    None => return Got::Error(SHARD_GONE),
                    Some(Got::Nothing) => {}
                    Some(got) => return got,
                }
            }
            Got::Nothing
        }
        How::Move {
            dst,
            from_left,
            to_left,
        } => {
            let src = cmd.keys[0].clone();
            let (from, to) = (shard.owner(&src), shard.owner(&dst));
            let dst_state = if from == to {
                None
            } else {
                let key = dst.clone();
                match atomic
                    .on(to, move |s: &Shard| probe(&mut s.db(), &key, is_list))
                    .await
                {
                    Some(state) => Some(state),
                    None => return Got::Error(SHARD_GONE),
                }
            };
            let moved = atomic
                .on(from, move |s: &Shard| {
                    let state = probe(&mut s.db(), &src, is_list);
                    match state {
                        Probe::Wrong if first => return Got::Error(err::WRONGTYPE),
                        Probe::Fits if !(blocking && s.waits_behind(&src, me, KIND_LIST)) => {
                            match dst_state {
                                // Same shard: LMOVE's own handler (rotation,
                                // order of checks) decides.
                                None => {
                                    let mut out = Vec::new();
                                    lmove_local(
                                        &mut s.db(),
                                        &src,
                                        &dst,
                                        from_left,
                                        to_left,
                                        &mut out,
                                    );
                                    return moved_reply(&out);
                                }
                                Some(Probe::Wrong) => return Got::Error(err::WRONGTYPE),
                                Some(_) => {
                                    return match pop_many(&mut s.db(), &src, from_left, 1).pop() {
                                        Some(elem) => Got::Popped(dst, vec![elem]),
                                        None => Got::Nothing,
                                    };
                                }
                            }
                        }
                        _ => {}
                    }
                    if blocking {
                        s.block_on(&src, me, WANTS_LIST);
                    }
                    Got::Nothing
                })
                .await;
            match moved {
                None => Got::Error(SHARD_GONE),
                // Popped on the source's shard: push on the destination's,
                // still held.
                Some(Got::Popped(dst, mut elems)) => {
                    let Some(elem) = elems.pop() else {
                        return Got::Nothing;
                    };
                    let pushed = atomic
                        .on(to, move |s: &Shard| {
                            push_one(&mut s.db(), &dst, &elem, to_left);
                            elem
                        })
                        .await;
                    match pushed {
                        Some(elem) => Got::Moved(elem),
                        None => Got::Error(SHARD_GONE),
                    }
                }
                Some(got) => got,
            }
        }
    }
}

/// Pops from `key`, which holds a value of the kind `how` takes.
fn pop(db: &mut Db, key: Box<[u8]>, how: &How) -> Got {
    match *how {
        How::Pop { left, count, .. } => {
            let popped = pop_many(db, &key, left, count);
            Got::Popped(key, popped)
        }
        How::ZPop { max, count, .. } => {
            let mut popped = Vec::new();
            if let Some(mut entry) = db.entry_mut(&key)
                && let Ok(mut z) = entry.zset()
            {
                while popped.len() < count {
                    match z.pop(max, |m, s| (Box::from(m), s)) {
                        Some(e) => popped.push(e),
                        None => break,
                    }
                }
            }
            Got::ZPopped(key, popped)
        }
        How::Move { .. } => Got::Nothing,
    }
}

/// LMOVE's reply (a bulk, nil or an error) as what an attempt got.
fn moved_reply(out: &[u8]) -> Got {
    match out.first() {
        Some(b'$') if out.starts_with(b"$-1") => Got::Nothing,
        Some(b'$') => {
            // `$<len>\r\n<bytes>\r\n`
            let start = out.iter().position(|&b| b == b'\n').map_or(0, |p| p + 1);
            Got::Moved(Box::from(&out[start..out.len() - 2]))
        }
        _ => Got::Error(err::WRONGTYPE),
    }
}

/// Writes the command's reply. `timed_out`: the blocking timeout's nil,
/// which is a nil array for every form in RESP2 (Redis 7.0); a
/// non-blocking miss (inside EXEC) is the non-blocking form's nil.
fn reply(out: &mut Vec<u8>, cmd: &Blocking, got: Got, timed_out: bool) {
    match got {
        Got::Error(e) => out.error(e),
        Got::Moved(elem) => out.bulk(&elem),
        Got::Popped(key, elems) => match cmd.how {
            How::Pop { multi: true, .. } => {
                out.array(2);
                out.bulk(&key);
                out.array(elems.len());
                for e in &elems {
                    out.bulk(e);
                }
            }
            _ => {
                out.array(2);
                out.bulk(&key);
                out.bulk(elems.first().map_or(&b""[..], |e| &e[..]));
            }
        },
        Got::ZPopped(key, elems) => match cmd.how {
            How::ZPop { multi: true, .. } => {
                out.array(2);
                out.bulk(&key);
                out.array(elems.len());
                for (m, score) in &elems {
                    out.array(2);
                    out.bulk(m);
                    super::zsets::reply_score(out, *score);
                }
            }
            _ => {
                out.array(3);
                out.bulk(&key);
                let (m, score) = elems.first().map_or((&b""[..], 0.0), |(m, s)| (&m[..], *s));
                out.bulk(m);
                super::zsets::reply_score(out, score);
            }
        },
        Got::Nothing => match cmd.how {
            How::Move { .. } if !timed_out => out.nil(),
            _ => out.nil_array(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_parse_as_redis_7_0() {
        assert_eq!(parse_timeout(b"0"), Ok(0));
        assert_eq!(parse_timeout(b"1.5"), Ok(1500));
        assert_eq!(parse_timeout(b"0.0015"), Ok(1));
        assert_eq!(parse_timeout(b"-0.0001"), Ok(0));
        assert_eq!(parse_timeout(b"9223372036854"), Ok(9_223_372_036_854_000));
        for bad in [&b"abc"[..], b"", b" 1", b"1 ", b"nan", b"1e"] {
            assert_eq!(parse_timeout(bad), Err(TIMEOUT_NOT_FLOAT), "{bad:?}");
        }
        for neg in [&b"-1"[..], b"inf", b"-inf", b"1e30", b"1e400"] {
            assert_eq!(parse_timeout(neg), Err(TIMEOUT_NEGATIVE), "{neg:?}");
        }
    }

    #[test]
    fn moved_reply_reads_lmove_replies() {
        assert!(matches!(moved_reply(b"$-1\r\n"), Got::Nothing));
        assert!(matches!(moved_reply(b"$2\r\nab\r\n"), Got::Moved(e) if &*e == b"ab"));
        assert!(matches!(moved_reply(b"$0\r\n\r\n"), Got::Moved(e) if e.is_empty()));
        assert!(matches!(moved_reply(b"-WRONGTYPE x\r\n"), Got::Error(_)));
    }
}
