//! Pub/Sub commands (issue 14): SUBSCRIBE, UNSUBSCRIBE, PSUBSCRIBE,
//! PUNSUBSCRIBE, SSUBSCRIBE, SUNSUBSCRIBE, PUBLISH, SPUBLISH, PUBSUB and
//! RESET, with Redis 7.0's RESP2 replies byte for byte.
//!
//! Subscriptions are the connection's ([`ClientState::pubsub`], a
//! [`Subscriber`]) and its core's ([`crate::coord::pubsub::Registry`]):
//! subscribing never leaves the core. PUBLISH reaches every core through
//! [`crate::coord::publish`] (one mesh message per other core) and answers
//! the receivers of all of them. PUBSUB CHANNELS / NUMSUB / NUMPAT gather
//! every core's registry and merge (a name subscribed on two cores is one
//! channel). While a connection has a subscription it is in subscribed
//! mode: the connection loop waits on its mailbox beside its socket and
//! only the commands `allowed_when_subscribed` names run.
//!
//! Layer: command (connection-level commands; reach other cores through
//! `coord`).

use std::collections::HashSet;
use std::rc::Rc;

use super::Args;
use super::conn::{ClientState, Flow, ReplyMode};
use crate::coord::Shard;
use crate::coord::pubsub::{Space, Subscriber};
use crate::protocol::reply::Resp;

/// Whether `name` may run in subscribed mode (RESP2), as Redis 7.0's
/// processCommand allows.
pub(crate) fn allowed_when_subscribed(name: &str) -> bool {
    matches!(
        name,
        "ping"
            | "subscribe"
            | "ssubscribe"
            | "unsubscribe"
            | "sunsubscribe"
            | "psubscribe"
            | "punsubscribe"
            | "quit"
            | "reset"
    )
}

/// Redis 7.0's refusal of another command in subscribed mode; `name` is
/// the command's full name (`config|get` for a subcommand).
#[cold]
pub(crate) fn refuse_when_subscribed(name: &str, out: &mut Vec<u8>) {
    out.error(&format!(
        "ERR Can't execute '{name}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context"
    ));
}

/// PING in subscribed mode: `["pong", ""]` or `["pong", message]`.
pub(crate) fn ping_subscribed(args: &Args, out: &mut Vec<u8>) {
    out.array(2);
    out.bulk(b"pong");
    out.bulk(if args.len() > 1 { args.get(1) } else { b"" });
}

fn event(space: Space, subscribe: bool) -> &'static [u8] {
    match (space, subscribe) {
        (Space::Channel, true) => b"subscribe",
        (Space::Channel, false) => b"unsubscribe",
        (Space::Pattern, true) => b"psubscribe",
        (Space::Pattern, false) => b"punsubscribe",
        (Space::Shard, true) => b"ssubscribe",
        (Space::Shard, false) => b"sunsubscribe",
    }
}

/// `[kind, name or nil, count]`.
fn notify(out: &mut Vec<u8>, kind: &[u8], name: Option<&[u8]>, count: usize) {
    out.array(3);
    out.bulk(kind);
    match name {
        Some(n) => out.bulk(n),
        None => out.nil(),
    }
    out.int(count as i64);
}

/// Messages delivered before a (un)subscribe go out before its replies,
/// as they would in Redis' reply buffer.
fn flush_mailbox(client: &ClientState, out: &mut Vec<u8>) {
    if let Some(sub) = &client.pubsub {
        sub.mailbox.drain_into(out);
    }
}

async fn subscribe(
    shard: &Shard,
    client: &mut ClientState,
    args: &Args<'_>,
    out: &mut Vec<u8>,
    space: Space,
) {
    if space == Space::Shard && shard.in_transaction() {
        // Redis 7.0 refuses SSUBSCRIBE inside EXEC (a "deny blocking"
        // client); SUBSCRIBE and PSUBSCRIBE are allowed there.
        out.error("ERR SSUBSCRIBE isn't allowed for a DENY BLOCKING client");
        return;
    }
    flush_mailbox(client, out);
    let sub = client
        .pubsub
        .get_or_insert_with(|| Box::new(Subscriber::new(client.info.clone())));
    let stats = &shard.metrics().stats;
    for name in args.iter_from(1) {
        shard.pubsub().subscribe(stats, sub, space, name);
        notify(out, event(space, true), Some(name), sub.count(space));
    }
    crate::coord::pubsub_tell_peers(shard).await;
}

async fn unsubscribe(
    shard: &Shard,
    client: &mut ClientState,
    args: &Args<'_>,
    out: &mut Vec<u8>,
    space: Space,
) {
    flush_mailbox(client, out);
    let kind = event(space, false);
    let Some(sub) = client.pubsub.as_mut() else {
        // Never subscribed: each name (or a nil for "all") with count 0.
        if args.len() == 1 {
            notify(out, kind, None, 0);
        }
        for name in args.iter_from(1) {
            notify(out, kind, Some(name), 0);
        }
        return;
    };
    let stats = &shard.metrics().stats;
    if args.len() == 1 {
        let names = sub.names(space);
        if names.is_empty() {
            notify(out, kind, None, sub.count(space));
        }
        for name in names {
            shard.pubsub().unsubscribe(stats, sub, space, &name);
            notify(out, kind, Some(&name), sub.count(space));
        }
    } else {
        for name in args.iter_from(1) {
            shard.pubsub().unsubscribe(stats, sub, space, name);
            notify(out, kind, Some(name), sub.count(space));
        }
    }
    crate::coord::pubsub_tell_peers(shard).await;
}

/// Drops every subscription of a closing connection, and waits until the
/// other cores know (before its socket closes: a client that saw it close
/// then publishes is not counted as a receiver).
pub(crate) async fn forget(shard: &Shard, client: &mut ClientState) {
    drop_subscriptions(shard, client);
    crate::coord::pubsub_tell_peers(shard).await;
}

fn drop_subscriptions(shard: &Shard, client: &mut ClientState) {
    if let Some(sub) = client.pubsub.as_mut() {
        shard.pubsub().unsubscribe_all(&shard.metrics().stats, sub);
    }
    client.pubsub = None;
}

conn_async!(subscribe_cmd, |shard, client, args, out| {
    subscribe(shard, client, args, out, Space::Channel).await;
    Flow::Continue
});

conn_async!(psubscribe_cmd, |shard, client, args, out| {
    subscribe(shard, client, args, out, Space::Pattern).await;
    Flow::Continue
});

conn_async!(ssubscribe_cmd, |shard, client, args, out| {
    subscribe(shard, client, args, out, Space::Shard).await;
    Flow::Continue
});

conn_async!(unsubscribe_cmd, |shard, client, args, out| {
    unsubscribe(shard, client, args, out, Space::Channel).await;
    Flow::Continue
});

conn_async!(punsubscribe_cmd, |shard, client, args, out| {
    unsubscribe(shard, client, args, out, Space::Pattern).await;
    Flow::Continue
});

conn_async!(sunsubscribe_cmd, |shard, client, args, out| {
    unsubscribe(shard, client, args, out, Space::Shard).await;
    Flow::Continue
});

/// PUBLISH: answered from this core without waiting for the others
/// (`coord::publish`).
pub fn publish_cmd(
    shard: &Shard,
    _client: &mut ClientState,
    args: &Args,
    out: &mut Vec<u8>,
) -> Flow {
    let n = crate::coord::publish(shard, Space::Channel, args.get(1), args.get(2));
    out.int(n as i64);
    Flow::Continue
}

pub fn spublish_cmd(
    shard: &Shard,
    _client: &mut ClientState,
    args: &Args,
    out: &mut Vec<u8>,
) -> Flow {
    let n = crate::coord::publish(shard, Space::Shard, args.get(1), args.get(2));
    out.int(n as i64);
    Flow::Continue
}

const HELP: &[&str] = &[
    "CHANNELS [<pattern>]",
    "    Return the currently active channels matching a <pattern> (default: '*').",
    "NUMPAT",
    "    Return number of subscriptions to patterns.",
    "NUMSUB [<channel> ...]",
    "    Return the number of subscribers for the specified channels, excluding",
    "    pattern subscriptions(default: no channels).",
    "SHARDCHANNELS [<pattern>]",
    "    Return the currently active shard level channels matching a <pattern> (default: '*').",
    "SHARDNUMSUB [<shardchannel> ...]",
    "    Return the number of subscribers for the specified shard level channel(s)",
];

/// Names with a subscriber on any core (each once), matching `pattern`.
async fn names_everywhere(shard: &Shard, space: Space, pattern: Option<&[u8]>) -> Vec<Box<[u8]>> {
    let pattern: Option<Box<[u8]>> = pattern.map(Into::into);
    let parts = crate::coord::all(shard, move |s: &Shard| {
        s.pubsub().names(space, pattern.as_deref())
    })
    .await;
    let mut seen: HashSet<Box<[u8]>> = HashSet::new();
    let mut names = Vec::new();
    for name in parts.into_iter().flatten() {
        if seen.insert(name.clone()) {
            names.push(name);
        }
    }
    names
}

/// INFO's `pubsub_channels`, `pubsub_patterns`, `pubsubshard_channels`:
/// names with a subscriber on any core, each counted once.
pub(crate) async fn distinct_counts(shard: &Shard) -> [u64; 3] {
    let mut counts = [0u64; 3];
    for (i, space) in [Space::Channel, Space::Pattern, Space::Shard]
        .into_iter()
        .enumerate()
    {
        counts[i] = names_everywhere(shard, space, None).await.len() as u64;
    }
    counts
}

async fn numsub(shard: &Shard, args: &Args<'_>, space: Space, out: &mut Vec<u8>) {
    let names: Vec<Box<[u8]>> = args.iter_from(2).map(Into::into).collect();
    let mut totals = vec![0usize; names.len()];
    if !names.is_empty() {
        let ask = names.clone();
        let parts = crate::coord::all(shard, move |s: &Shard| s.pubsub().counts(space, &ask)).await;
        for part in parts {
            for (t, n) in totals.iter_mut().zip(part) {
                *t += n;
            }
        }
    }
    out.array(names.len() * 2);
    for (name, n) in names.iter().zip(totals) {
        out.bulk(name);
        out.int(n as i64);
    }
}

async fn channels(shard: &Shard, args: &Args<'_>, space: Space, out: &mut Vec<u8>) {
    let pattern = (args.len() == 3).then(|| args.get(2));
    let names = names_everywhere(shard, space, pattern).await;
    out.array(names.len());
    for name in names {
        out.bulk(&name);
    }
}

conn_async!(pubsub_cmd, |shard, _client, args, out| {
    let sub = args.get(1);
    let is = |name: &str| sub.eq_ignore_ascii_case(name.as_bytes());
    let argc = args.len();
    // Redis 7.0: a subcommand's own arity first, then PUBSUB's syntax check.
    let arity_ok = match () {
        _ if is("help") || is("numpat") => Some(argc == 2),
        _ if is("channels") || is("shardchannels") => Some(argc <= 3),
        _ if is("numsub") || is("shardnumsub") => Some(true),
        _ => None,
    };
    match arity_ok {
        None => super::unknown_subcommand(out, "PUBSUB", sub),
        Some(false) if is("help") || is("numpat") => super::subcommand_arity(out, "pubsub", sub),
        Some(false) => out.error(&format!(
            "ERR unknown subcommand or wrong number of arguments for '{}'. Try PUBSUB HELP.",
            String::from_utf8_lossy(&sub[..sub.len().min(128)])
        )),
        Some(true) if is("help") => super::help_reply(out, "PUBSUB", HELP),
        Some(true) if is("numpat") => {
            let n = names_everywhere(shard, Space::Pattern, None).await.len();
            out.int(n as i64);
        }
        Some(true) if is("channels") => channels(shard, args, Space::Channel, out).await,
        Some(true) if is("shardchannels") => channels(shard, args, Space::Shard, out).await,
        Some(true) if is("numsub") => numsub(shard, args, Space::Channel, out).await,
        Some(true) => numsub(shard, args, Space::Shard, out).await,
    }
    Flow::Continue
});

/// RESET (Redis 7.0's clearClientConnectionState): discards MULTI, drops
/// the WATCHes, every subscription (without notifications), CLIENT REPLY
/// OFF/SKIP and the name; back to db 0 and RESP2 (Kora has only those);
/// authenticated again only if the default user needs no password, as
/// Redis' `clientSetDefaultAuth`. Answers `+RESET`.
pub fn reset<'a>(
    shard: &'a Rc<Shard>,
    client: &'a mut ClientState,
    _args: &'a Args<'a>,
    out: &'a mut Vec<u8>,
) -> super::ConnFuture<'a> {
    Box::pin(async move {
        if client.multi.take().is_some() {
            client.info.multi.set(-1);
            shard.metrics().stats.tx_discarded.add(1);
        }
        super::transaction::unwatch_all(shard, client).await;
        // Messages that arrived before RESET still go out, as those in
        // Redis' reply buffer do.
        flush_mailbox(client, out);
        drop_subscriptions(shard, client);
        crate::coord::pubsub_tell_peers(shard).await;
        client.reply = ReplyMode::On;
        *client.info.name.borrow_mut() = None;
        client.authenticated = super::auth::authenticated_at_connect(shard);
        out.simple("RESET");
        Flow::Continue
    })
}
