//! Pub/Sub (issue 14): each core's registry of its own subscribed
//! connections, their mailboxes, and delivery of published messages.
//!
//! Subscriptions never leave their core: a SUBSCRIBE adds the
//! connection's [`Mailbox`] to this core's [`Registry`] (channel →
//! local subscribers, pattern → local subscribers, shard channel → local
//! subscribers). Every other core keeps a view of them: how many
//! subscriptions each core has per channel, pattern and shard channel. A
//! (un)subscribe tells the other cores and waits for them before it
//! answers, so once a client has its SUBSCRIBE reply, a PUBLISH on any
//! core counts and reaches it.
//!
//! A PUBLISH delivers to its own core's subscribers, counts the other
//! cores' receivers from its view (channel subscribers plus pattern
//! matches, as Redis counts them) and sends ONE mesh message to each core
//! that has a receiver, without waiting for it: a PUBLISH costs no round
//! trip, and nothing is sent to cores without subscribers.
//!
//! Order: the mesh is FIFO per pair of cores and delivery messages run on
//! arrival (they never wait for locks or held keys), so every subscriber
//! sees one publisher's messages in publish order.
//!
//! A [`Mailbox`] is a subscribed connection's queue of encoded frames
//! (shared `Rc<[u8]>`: one encoding per core and message, not per
//! subscriber). The connection waits on it beside its socket only while
//! subscribed. Frames count against `client-output-buffer-limit pubsub`
//! together with what the connection holds unwritten (`omem`): past the
//! hard limit, or past the soft limit for its seconds, the mailbox stops
//! taking frames and the connection is closed (as Redis closes it), so a
//! subscriber that never reads holds at most about the hard limit.
//!
//! Layer: coordination. Imports `store` (the glob matcher), `config`,
//! `metrics`.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::rc::Rc;
use std::task::{Poll, Waker};

use indexmap::IndexSet;

use super::clients::ClientInfo;
use crate::config::BufferLimit;
use crate::metrics::ShardStats;
use crate::protocol::reply::Resp;
use crate::store::glob::glob_match;

/// The three namespaces of Redis 7.0's Pub/Sub.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(usize)]
pub enum Space {
    /// SUBSCRIBE / PUBLISH.
    Channel,
    /// PSUBSCRIBE: glob patterns over the channel namespace.
    Pattern,
    /// SSUBSCRIBE / SPUBLISH (no cluster: the same delivery, its own
    /// names; patterns do not see it).
    Shard,
}

/// One subscribed connection's queue of frames to write.
pub struct Mailbox {
    info: Rc<ClientInfo>,
    frames: RefCell<VecDeque<Rc<[u8]>>>,
    /// Bytes of `frames`.
    bytes: Cell<usize>,
    waker: Cell<Option<Waker>>,
    /// Passed `client-output-buffer-limit pubsub`: takes nothing more; the
    /// connection closes.
    overflowed: Cell<bool>,
}

impl Mailbox {
    fn new(info: Rc<ClientInfo>) -> Mailbox {
        Mailbox {
            info,
            frames: RefCell::default(),
            bytes: Cell::new(0),
            waker: Cell::new(None),
            overflowed: Cell::new(false),
        }
    }

    /// Queues one frame unless the limit is passed (then marks the mailbox
    /// overflowed and wakes the connection, which closes).
    fn push(&self, frame: &Rc<[u8]>, limit: BufferLimit) {
        if self.overflowed.get() {
            return;
        }
        let total = (self.bytes.get() + frame.len() + self.info.omem.get()) as u64;
        let over = if limit.hard > 0 && total >= limit.hard {
            true
        } else if limit.soft > 0 && total >= limit.soft {
            let now = std::time::Instant::now();
            let since = self.info.soft_limit_since.get().unwrap_or(now);
            self.info.soft_limit_since.set(Some(since));
            now.duration_since(since).as_secs() >= limit.soft_seconds
        } else {
            // Back under the soft limit: its clock starts again next time.
            self.info.soft_limit_since.set(None);
            false
        };
        if over {
            self.overflowed.set(true);
            // Also ends a write that is blocked on the client (the
            // connection then reports the output limit, not a kill).
            self.info.kill.signal(1);
        } else {
            self.frames.borrow_mut().push_back(frame.clone());
            self.bytes.set(self.bytes.get() + frame.len());
        }
        if let Some(w) = self.waker.take() {
            w.wake();
        }
    }

    /// Whether the limit was passed (the connection must close).
    pub fn overflowed(&self) -> bool {
        self.overflowed.get()
    }

    /// Bytes queued and not yet taken by the connection.
    pub fn queued(&self) -> usize {
        self.bytes.get()
    }

    /// Resolves once a frame is queued or the limit was passed.
    pub async fn ready(&self) {
        std::future::poll_fn(|cx| {
            if self.bytes.get() > 0 || self.overflowed.get() {
                Poll::Ready(())
            } else {
                self.waker.set(Some(cx.waker().clone()));
                Poll::Pending
            }
        })
        .await
    }

    /// Appends every queued frame to `out`, in arrival order.
    pub fn drain_into(&self, out: &mut Vec<u8>) {
        if self.bytes.get() == 0 {
            return;
        }
        let mut frames = self.frames.borrow_mut();
        out.reserve(self.bytes.get());
        for frame in frames.drain(..) {
            out.extend_from_slice(&frame);
        }
        self.bytes.set(0);
        if frames.capacity() > 1024 {
            frames.shrink_to(64);
        }
    }
}

/// A connection's subscriptions (kept in its `ClientState` once it first
/// subscribes): its mailbox and the names it is subscribed to, per space.
pub struct Subscriber {
    pub mailbox: Rc<Mailbox>,
    channels: IndexSet<Box<[u8]>>,
    patterns: IndexSet<Box<[u8]>>,
    shard_channels: IndexSet<Box<[u8]>>,
}

impl Subscriber {
    pub fn new(info: Rc<ClientInfo>) -> Subscriber {
        Subscriber {
            mailbox: Rc::new(Mailbox::new(info)),
            channels: IndexSet::new(),
            patterns: IndexSet::new(),
            shard_channels: IndexSet::new(),
        }
    }

    fn set(&self, space: Space) -> &IndexSet<Box<[u8]>> {
        match space {
            Space::Channel => &self.channels,
            Space::Pattern => &self.patterns,
            Space::Shard => &self.shard_channels,
        }
    }

    fn set_mut(&mut self, space: Space) -> &mut IndexSet<Box<[u8]>> {
        match space {
            Space::Channel => &mut self.channels,
            Space::Pattern => &mut self.patterns,
            Space::Shard => &mut self.shard_channels,
        }
    }

    /// The names subscribed in `space`, in subscription order (a name
    /// unsubscribed meanwhile may have moved).
    pub fn names(&self, space: Space) -> Vec<Box<[u8]>> {
        self.set(space).iter().cloned().collect()
    }

    /// Redis' count in (un)subscribe replies: channels plus patterns, or
    /// shard channels alone.
    pub fn count(&self, space: Space) -> usize {
        match space {
            Space::Channel | Space::Pattern => self.channels.len() + self.patterns.len(),
            Space::Shard => self.shard_channels.len(),
        }
    }

    /// Subscribed to anything: the connection is in subscribed mode.
    pub fn active(&self) -> bool {
        !(self.channels.is_empty() && self.patterns.is_empty() && self.shard_channels.is_empty())
    }
}

/// Name → `V`, hashed with ahash (keyed per map, as std's SipHash is, and
/// cheaper on short names: a PUBLISH looks its channel up in two of these).
type ByName<V> = HashMap<Box<[u8]>, V, ahash::RandomState>;

/// This core's subscriptions: name → this core's subscribed mailboxes.
///
/// For the server-wide gauges it also keeps the names *homed* on this
/// core (`shard_of(name)`): how many cores have a subscriber of each. A
/// core tells a name's home when the name appears in or leaves its own
/// registry (`changes`, sent by `coord::pubsub_tell_homes`), so the sum of
/// every core's homed names counts each name once.
#[derive(Default)]
pub struct Registry {
    channels: ByName<Vec<Rc<Mailbox>>>,
    patterns: ByName<Vec<Rc<Mailbox>>>,
    shard_channels: ByName<Vec<Rc<Mailbox>>>,
    /// Per space: name homed here → cores with a subscriber of it.
    homed: [ByName<u32>; 3],
    /// Names that appeared (+1) or left (-1) here, for their homes.
    pub(super) changes: Vec<(Space, Box<[u8]>, i32)>,
    /// Every subscription added (+1) or dropped (-1) here since the other
    /// cores were last told (`coord::pubsub_tell_peers`).
    pub(super) deltas: Vec<(Space, Box<[u8]>, i32)>,
    /// What every other core told of its subscriptions: per core and
    /// space, name → its subscriptions there. A PUBLISH counts the
    /// receivers of the other cores from this view and sends the message
    /// only to cores with a receiver, without waiting for them.
    peers: Vec<[ByName<u32>; 3]>,
}

impl Registry {
    fn map(&mut self, space: Space) -> &mut ByName<Vec<Rc<Mailbox>>> {
        match space {
            Space::Channel => &mut self.channels,
            Space::Pattern => &mut self.patterns,
            Space::Shard => &mut self.shard_channels,
        }
    }

    /// Names with a subscriber on this core, in `space`.
    pub fn len(&self, space: Space) -> usize {
        match space {
            Space::Channel => self.channels.len(),
            Space::Pattern => self.patterns.len(),
            Space::Shard => self.shard_channels.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.channels.is_empty() && self.patterns.is_empty() && self.shard_channels.is_empty()
    }

    /// Subscribes `sub` to `name`; false if it already was.
    pub fn subscribe(
        &mut self,
        stats: &ShardStats,
        sub: &mut Subscriber,
        space: Space,
        name: &[u8],
    ) -> bool {
        if sub.set(space).contains(name) {
            return false;
        }
        sub.set_mut(space).insert(name.into());
        let map = self.map(space);
        let list = match map.get_mut(name) {
            Some(list) => list,
            None => {
                gauge(stats, space).inc();
                self.changes.push((space, name.into(), 1));
                self.map(space).entry(name.into()).or_default()
            }
        };
        list.push(sub.mailbox.clone());
        count_cell(&sub.mailbox.info, space).set(sub.set(space).len());
        self.deltas.push((space, name.into(), 1));
        true
    }

    /// Unsubscribes `sub` from `name`; false if it was not subscribed.
    pub fn unsubscribe(
        &mut self,
        stats: &ShardStats,
        sub: &mut Subscriber,
        space: Space,
        name: &[u8],
    ) -> bool {
        if !sub.set_mut(space).swap_remove(name) {
            return false;
        }
        count_cell(&sub.mailbox.info, space).set(sub.set(space).len());
        self.deltas.push((space, name.into(), -1));
        let map = self.map(space);
        if let Some(list) = map.get_mut(name) {
            list.retain(|m| !Rc::ptr_eq(m, &sub.mailbox));
            if list.is_empty() {
                map.remove(name);
                gauge(stats, space).dec();
                self.changes.push((space, name.into(), -1));
            }
        }
        true
    }

    /// A core gained (+1) or lost (-1) its last subscriber of `name`,
    /// homed on this core: keeps the server-wide gauge of distinct names.
    pub fn count_home(&mut self, stats: &ShardStats, space: Space, name: &[u8], delta: i32) {
        let gauge = match space {
            Space::Channel => &stats.pubsub_home_channels,
            Space::Pattern => &stats.pubsub_home_patterns,
            Space::Shard => &stats.pubsub_home_shard_channels,
        };
        let homed = &mut self.homed[space as usize];
        if delta > 0 {
            let n = homed.entry(name.into()).or_insert(0);
            *n += 1;
            if *n == 1 {
                gauge.inc();
            }
        } else if let Some(n) = homed.get_mut(name) {
            *n -= 1;
            if *n == 0 {
                homed.remove(name);
                gauge.dec();
            }
        }
    }

    /// Applies subscriptions core `from` added or dropped to this core's
    /// view of it.
    pub fn apply_peer(&mut self, from: usize, deltas: &[(Space, Box<[u8]>, i32)]) {
        if self.peers.len() <= from {
            self.peers.resize_with(from + 1, Default::default);
        }
        let view = &mut self.peers[from];
        for (space, name, delta) in deltas {
            let map = &mut view[*space as usize];
            if *delta > 0 {
                *map.entry(name.clone()).or_insert(0) += 1;
            } else if let Some(n) = map.get_mut(name) {
                *n -= 1;
                if *n == 0 {
                    map.remove(name);
                }
            }
        }
    }

    /// Receivers core `peer` has for a message on `channel` in `space`, as
    /// far as it told this core: subscribers of the channel plus, outside
    /// the shard space, subscriptions of matching patterns.
    pub fn peer_receivers(&self, peer: usize, space: Space, channel: &[u8]) -> usize {
        let Some(view) = self.peers.get(peer) else {
            return 0;
        };
        let direct = match space {
            Space::Shard => &view[Space::Shard as usize],
            _ => &view[Space::Channel as usize],
        };
        let mut n = direct.get(channel).map_or(0, |&n| n as usize);
        if space != Space::Shard {
            for (pattern, &subs) in &view[Space::Pattern as usize] {
                if glob_match(pattern, channel) {
                    n += subs as usize;
                }
            }
        }
        n
    }

    /// Drops every subscription of `sub` (RESET, disconnect).
    pub fn unsubscribe_all(&mut self, stats: &ShardStats, sub: &mut Subscriber) {
        for space in [Space::Channel, Space::Pattern, Space::Shard] {
            for name in sub.names(space) {
                self.unsubscribe(stats, sub, space, &name);
            }
        }
    }

    /// Delivers `message` on `channel` to this core's subscribers (of the
    /// channel and, outside the shard space, of matching patterns);
    /// returns how many received it.
    pub fn deliver(
        &self,
        stats: &ShardStats,
        space: Space,
        channel: &[u8],
        message: &[u8],
        limit: BufferLimit,
    ) -> usize {
        let mut receivers = 0;
        let direct = match space {
            Space::Shard => &self.shard_channels,
            _ => &self.channels,
        };
        if let Some(list) = direct.get(channel) {
            let kind: &[u8] = if space == Space::Shard {
                b"smessage"
            } else {
                b"message"
            };
            let frame = frame(&[kind, channel, message]);
            for mailbox in list {
                mailbox.push(&frame, limit);
            }
            receivers += list.len();
        }
        if space != Space::Shard {
            for (pattern, list) in &self.patterns {
                if !glob_match(pattern, channel) {
                    continue;
                }
                let frame = frame(&[b"pmessage", pattern, channel, message]);
                for mailbox in list {
                    mailbox.push(&frame, limit);
                }
                receivers += list.len();
            }
        }
        stats.pubsub_delivered.add(receivers as u64);
        receivers
    }

    /// The names in `space` with a subscriber here, matching `pattern`
    /// when given (PUBSUB CHANNELS, NUMPAT, SHARDCHANNELS).
    pub fn names(&self, space: Space, pattern: Option<&[u8]>) -> Vec<Box<[u8]>> {
        let map = match space {
            Space::Channel => &self.channels,
            Space::Pattern => &self.patterns,
            Space::Shard => &self.shard_channels,
        };
        map.keys()
            .filter(|name| pattern.is_none_or(|p| glob_match(p, name)))
            .cloned()
            .collect()
    }

    /// Subscribers here of each of `names` (PUBSUB NUMSUB, SHARDNUMSUB).
    pub fn counts(&self, space: Space, names: &[Box<[u8]>]) -> Vec<usize> {
        let map = match space {
            Space::Shard => &self.shard_channels,
            _ => &self.channels,
        };
        names
            .iter()
            .map(|n| map.get(n).map_or(0, Vec::len))
            .collect()
    }
}

fn gauge(stats: &ShardStats, space: Space) -> &crate::metrics::Gauge {
    match space {
        Space::Channel => &stats.pubsub_channels,
        Space::Pattern => &stats.pubsub_patterns,
        Space::Shard => &stats.pubsub_shard_channels,
    }
}

fn count_cell(info: &ClientInfo, space: Space) -> &Cell<usize> {
    match space {
        Space::Channel => &info.sub,
        Space::Pattern => &info.psub,
        Space::Shard => &info.ssub,
    }
}

/// A RESP2 array of bulk strings, encoded once and shared. (Written with
/// the reply encoder rather than `write!`: `fmt` was ~9% of a publishing
/// core's CPU.)
fn frame(parts: &[&[u8]]) -> Rc<[u8]> {
    let mut out = Vec::with_capacity(16 + parts.iter().map(|p| p.len() + 16).sum::<usize>());
    out.array(parts.len());
    for p in parts {
        out.bulk(p);
    }
    out.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info() -> Rc<ClientInfo> {
        Rc::new(ClientInfo::new(1, String::new(), String::new(), 0))
    }

    const NO_LIMIT: BufferLimit = BufferLimit {
        hard: 0,
        soft: 0,
        soft_seconds: 0,
    };

    #[test]
    fn frames_are_resp2_arrays_of_bulks() {
        assert_eq!(
            &*frame(&[b"message", b"ch", b""]),
            b"*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$0\r\n\r\n"
        );
    }

    #[test]
    fn registry_counts_subscribers_patterns_and_gauges() {
        let stats = ShardStats::default();
        let mut reg = Registry::default();
        let (mut a, mut b) = (Subscriber::new(info()), Subscriber::new(info()));
        assert!(reg.subscribe(&stats, &mut a, Space::Channel, b"c"));
        assert!(!reg.subscribe(&stats, &mut a, Space::Channel, b"c"));
        assert!(reg.subscribe(&stats, &mut b, Space::Channel, b"c"));
        assert!(reg.subscribe(&stats, &mut b, Space::Pattern, b"c*"));
        assert!(reg.subscribe(&stats, &mut b, Space::Shard, b"c"));
        assert_eq!((a.count(Space::Channel), b.count(Space::Pattern)), (1, 2));
        assert_eq!(b.count(Space::Shard), 1);
        assert_eq!(stats.pubsub_channels.get(), 1);
        assert_eq!(stats.pubsub_patterns.get(), 1);
        // Two channel subscribers and one pattern match; the shard space
        // is separate and patterns do not see it.
        assert_eq!(reg.deliver(&stats, Space::Channel, b"c", b"m", NO_LIMIT), 3);
        assert_eq!(reg.deliver(&stats, Space::Shard, b"c", b"m", NO_LIMIT), 1);
        assert_eq!(
            reg.deliver(&stats, Space::Channel, b"cx", b"m", NO_LIMIT),
            1
        );
        assert_eq!(reg.deliver(&stats, Space::Channel, b"x", b"m", NO_LIMIT), 0);
        assert_eq!(stats.pubsub_delivered.get(), 5);
        let mut out = Vec::new();
        a.mailbox.drain_into(&mut out);
        assert_eq!(out, &*frame(&[b"message", b"c", b"m"]));
        assert_eq!(reg.counts(Space::Channel, &[b"c".as_slice().into()]), [2]);
        reg.unsubscribe_all(&stats, &mut b);
        assert!(!b.active());
        assert!(reg.unsubscribe(&stats, &mut a, Space::Channel, b"c"));
        assert!(reg.is_empty());
        assert_eq!(stats.pubsub_channels.get(), 0);
        assert_eq!(stats.pubsub_patterns.get(), 0);
        assert_eq!(stats.pubsub_shard_channels.get(), 0);
    }

    #[test]
    fn names_appearing_and_leaving_are_counted_once_at_home() {
        let stats = ShardStats::default();
        let mut reg = Registry::default();
        let (mut a, mut b) = (Subscriber::new(info()), Subscriber::new(info()));
        reg.subscribe(&stats, &mut a, Space::Channel, b"c");
        reg.subscribe(&stats, &mut b, Space::Channel, b"c");
        reg.unsubscribe(&stats, &mut a, Space::Channel, b"c");
        // Only the first subscriber and the last to leave are changes.
        assert_eq!(reg.changes.len(), 1);
        reg.unsubscribe(&stats, &mut b, Space::Channel, b"c");
        assert_eq!(reg.changes.len(), 2);
        // Two cores with a subscriber of "c" make one homed name.
        reg.count_home(&stats, Space::Channel, b"c", 1);
        reg.count_home(&stats, Space::Channel, b"c", 1);
        assert_eq!(stats.pubsub_home_channels.get(), 1);
        reg.count_home(&stats, Space::Channel, b"c", -1);
        assert_eq!(stats.pubsub_home_channels.get(), 1);
        reg.count_home(&stats, Space::Channel, b"c", -1);
        assert_eq!(stats.pubsub_home_channels.get(), 0);
        // A late -1 for a name never counted changes nothing.
        reg.count_home(&stats, Space::Pattern, b"p", -1);
        assert_eq!(stats.pubsub_home_patterns.get(), 0);
    }

    #[test]
    fn a_mailbox_past_its_hard_limit_takes_nothing_more() {
        let stats = ShardStats::default();
        let mut reg = Registry::default();
        let mut a = Subscriber::new(info());
        reg.subscribe(&stats, &mut a, Space::Channel, b"c");
        let limit = BufferLimit {
            hard: 1000,
            soft: 0,
            soft_seconds: 0,
        };
        let big = vec![b'x'; 300];
        for _ in 0..10 {
            reg.deliver(&stats, Space::Channel, b"c", &big, limit);
        }
        assert!(a.mailbox.overflowed());
        assert!(a.mailbox.queued() < 1000);
        // What the connection already holds unwritten counts too.
        let b = Subscriber::new(info());
        b.mailbox.info.omem.set(990);
        b.mailbox.push(&frame(&[b"m"]), limit);
        assert!(b.mailbox.overflowed());
    }
}
