//! Messages between cores and the request/response plumbing over the
//! glommio channel mesh.
//!
//! Every executor (each shard and the collector) is a [`Node`] of one full
//! mesh. A request carries the sender's id and a request number; the
//! receiver answers with a response carrying that number, which wakes the
//! task waiting for it; a request sent with [`Node::tell`] (fire and
//! forget: Pub/Sub delivery, a dropped lock's release, the collector's
//! spare histograms) gets no response at all. Sends never block the
//! caller: when a channel is full, messages wait in a per-peer local
//! queue drained by one task, so a full channel cannot deadlock two
//! shards answering each other.
//!
//! Layer: coordination. Messages carry [`Handler`]s, the shard-side half
//! of a command, defined here so the mesh needs nothing from the command
//! table.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::task::{Context, Poll, Waker};

use glommio::channels::channel_mesh::{Receivers, Senders};
use glommio::channels::local_channel::{self, LocalSender};
use glommio::{GlommioError, ResourceType};

use crate::coord::Shard;
use crate::metrics::MetricsView;
use crate::protocol::Args;
use crate::protocol::parser::ArgRange;
use crate::store::Db;

/// Runs a command on the owning shard and appends one reply to `out`: the
/// shard-side half of a command, as the table names it and a batch carries
/// it.
pub type Handler = fn(&mut Db, &Args<'_>, &mut Vec<u8>);

/// Whether a command may grow memory (Redis' `denyoom` flag): on a shard
/// over its memory budget such a command first evicts, and is answered OOM
/// when nothing can be evicted; other commands always run.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Growth {
    Grows,
    Bounded,
}

/// A command's shard-side half as a batch carries it: the handler and what
/// the shard's memory check needs to know of the command (so the check
/// reads a field instead of looking the name up again).
#[derive(Clone, Copy)]
pub struct Op {
    pub handler: Handler,
    pub growth: Growth,
}

/// Commands for one shard, cut from one connection's pipeline: argument
/// bytes copied into one block, and per command its handler and argument
/// ranges into that block.
///
/// A batch travels to its shard and back: the shard writes its replies
/// into `replies`, clears the commands and answers with the same batch.
/// So the connection reuses one batch per peer, and every buffer is
/// allocated and freed on the connection's own core — no malloc per
/// message, and no memory freed on a core that did not allocate it.
///
/// A shard runs a batch only until its replies pass [`REPLY_BUDGET`]
/// (always at least one command), then sends it back with `next` saying
/// how far it got. The connection writes what is ready to its client and
/// sends the batch again for the rest, so a client that pipelines large
/// reads without reading its replies holds about one budget per shard,
/// not the replies of its whole pipeline.
#[derive(Default)]
pub struct OpBatch {
    pub data: Vec<u8>,
    pub ranges: Vec<ArgRange>,
    /// (handler, first range, range count).
    pub ops: Vec<(Op, u32, u32)>,
    /// Commands run so far; the next run starts here.
    pub next: u32,
    /// The connection's bookkeeping: the index of the command whose reply
    /// is first in `replies` (earlier ones were written out already).
    pub base: u32,
    pub replies: ReplyBatch,
}

/// How many reply bytes a shard produces for one batch before handing it
/// back to the connection (see [`OpBatch`]).
pub const REPLY_BUDGET: usize = 256 * 1024;

/// A batch whose buffers grew past this (one huge pipeline) is not kept
/// for reuse, so an idle connection does not hold on to it.
const KEEP_CAPACITY: usize = 1 << 20;

impl OpBatch {
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Whether some commands have not run yet.
    pub fn unfinished(&self) -> bool {
        (self.next as usize) < self.ops.len()
    }

    /// The arguments of command `index`, kept until `clear_commands`
    /// (none for an index the batch does not hold).
    pub fn args(&self, index: u32) -> Args<'_> {
        let ranges = match self.ops.get(index as usize) {
            Some(&(_, first, count)) => &self.ranges[first as usize..(first + count) as usize],
            None => &[],
        };
        Args::new(&self.data, ranges)
    }

    /// Whether the reply of command `index` is in `replies`.
    pub fn has_reply(&self, index: u32) -> bool {
        index >= self.base && ((index - self.base) as usize) < self.replies.ends.len()
    }

    /// The reply of command `index` (see [`OpBatch::has_reply`]).
    pub fn reply(&self, index: u32) -> &[u8] {
        self.replies.get((index - self.base) as usize)
    }

    /// Drops the replies of the commands before `index`, which have been
    /// written out.
    pub fn forget_replies_before(&mut self, index: u32) {
        let n = index.saturating_sub(self.base) as usize;
        if n == 0 {
            return;
        }
        self.replies.drop_first(n);
        self.base += n as u32;
    }

    /// Forgets the commands, keeping the buffers (and the replies).
    pub fn clear_commands(&mut self) {
        self.data.clear();
        self.ranges.clear();
        self.ops.clear();
        self.next = 0;
        self.base = 0;
    }

    /// Gives large buffers back after a pipeline that needed them.
    pub fn trim(&mut self) {
        use std::mem::size_of;
        let held = self.data.capacity()
            + self.ranges.capacity() * size_of::<ArgRange>()
            + self.ops.capacity() * size_of::<(Op, u32, u32)>()
            + self.replies.buf.capacity()
            + self.replies.ends.capacity() * size_of::<u32>();
        if held > KEEP_CAPACITY {
            *self = OpBatch::default();
        }
    }

    pub fn push<'a>(&mut self, op: Op, args: impl Iterator<Item = &'a [u8]>) -> u32 {
        let first = self.ranges.len() as u32;
        for arg in args {
            let start = self.data.len();
            self.data.extend_from_slice(arg);
            self.ranges.push((start, self.data.len()));
        }
        self.ops.push((op, first, self.ranges.len() as u32 - first));
        self.ops.len() as u32 - 1
    }
}

/// The replies to an `OpBatch`, concatenated; `ends[i]` is where reply `i`
/// ends in `buf`.
#[derive(Default, Debug)]
pub struct ReplyBatch {
    pub buf: Vec<u8>,
    pub ends: Vec<u32>,
}

impl ReplyBatch {
    pub fn get(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        &self.buf[start..self.ends[i] as usize]
    }

    pub fn clear(&mut self) {
        self.buf.clear();
        self.ends.clear();
    }

    /// Removes the first `n` replies (`n <= ends.len()`).
    pub fn drop_first(&mut self, n: usize) {
        let cut = self.ends[n - 1] as usize;
        self.buf.drain(..cut);
        self.ends.drain(..n);
        for end in &mut self.ends {
            *end -= cut as u32;
        }
    }

    /// Bytes held (what CLIENT LIST counts in `omem`).
    pub fn held(&self) -> usize {
        self.buf.len()
    }

    pub fn seal(&mut self) -> u32 {
        self.ends.push(self.buf.len() as u32);
        self.ends.len() as u32 - 1
    }
}

pub type Call = Box<dyn FnOnce(&Shard) -> Box<dyn Any + Send> + Send>;

pub enum Request {
    Exec(OpBatch),
    /// Any other work: a closure run on the target shard (fan-out commands,
    /// snapshots, cross-shard moves). Rare, so the box is fine.
    Call(Call),
    /// To the collector: the merged metrics of every shard, as INFO and
    /// LATENCY show them (counters since the last CONFIG RESETSTAT).
    View,
    /// MULTI/EXEC across shards: take this shard's lock for a transaction
    /// (answered with `Locked` once granted), release it, and run work for
    /// the holder while other requests wait.
    Lock(u64),
    /// Take this shard's lock for a multi-key command (waiting behind
    /// earlier holders like `Lock`), then run the closure while holding
    /// it; answered with `Call`. Saves the separate `Lock` hop.
    LockCall(u64, Call),
    /// Take these keys of this shard for a multi-key command (waiting for
    /// their holders, see `keylock`), then run the closure; answered with
    /// `Call`.
    KeyLockCall(u64, Vec<Box<[u8]>>, Call),
    Unlock(u64),
    TxExec(u64, OpBatch),
    TxCall(u64, Call),
    /// To the collector: CONFIG RESETSTAT. What INFO and LATENCY HISTOGRAM
    /// show starts again from zero; `/metrics` is not affected.
    ResetStats,
    /// Pub/Sub (issue 14): a closure that touches no keyspace data, run
    /// as soon as it arrives — never behind a transaction's shard lock or
    /// held keys — so the calls one core sends another run in the order
    /// sent (`coord::on_others_now`); answered with `Call` unless sent
    /// with `Node::tell`. Run without refreshing the keyspace clock.
    Now(Call),
}

pub enum Response {
    /// The batch back, `replies` filled for the commands it ran.
    Exec(OpBatch),
    Call(Box<dyn Any + Send>),
    View(Box<MetricsView>),
    Locked,
    /// The peer could not be reached (it stopped).
    Gone,
}

/// The id of a request sent with [`Node::tell`]: no answer is sent for it.
/// Ids of awaited requests index the sender's slots, never this many.
const NO_ANSWER: u32 = u32::MAX;

pub enum Msg {
    Request { from: usize, id: u32, req: Request },
    Response { id: u32, resp: Response },
}

enum Slot {
    Free,
    Waiting(Option<Waker>),
    Ready(Response),
    /// The requester went away; free the slot when the answer comes.
    Abandoned,
}

struct Outbox {
    queue: LocalSender<Msg>,
    /// Messages queued or being sent by the drain task. While non-zero,
    /// new messages must queue too, to keep per-peer FIFO order.
    backlog: Rc<Cell<usize>>,
}

pub struct Node {
    pub id: usize,
    senders: Rc<Senders<Msg>>,
    outboxes: Vec<Outbox>,
    slots: RefCell<Vec<Slot>>,
    free: RefCell<Vec<u32>>,
}

impl Node {
    /// Wraps this executor's sending end of the mesh and starts one drain
    /// task per peer. Nothing is received until [`Node::listen`].
    pub fn new(senders: Senders<Msg>) -> Rc<Node> {
        let senders = Rc::new(senders);
        Rc::new_cyclic(|me: &Weak<Node>| {
            let outboxes = (0..senders.nr_consumers())
                .map(|peer| {
                    let (queue, rx) = local_channel::new_unbounded::<Msg>();
                    let backlog = Rc::new(Cell::new(0));
                    let (senders, drained, me) = (senders.clone(), backlog.clone(), me.clone());
                    glommio::spawn_local(async move {
                        while let Some(msg) = rx.recv().await {
                            if let Err(GlommioError::Closed(ResourceType::Channel(msg))) =
                                senders.send_to(peer, msg).await
                                && let Some(node) = me.upgrade()
                            {
                                node.undeliverable(msg);
                            }
                            drained.set(drained.get() - 1);
                        }
                    })
                    .detach();
                    Outbox { queue, backlog }
                })
                .collect();
            Node {
                id: senders.peer_id(),
                senders: senders.clone(),
                outboxes,
                slots: RefCell::new(Vec::new()),
                free: RefCell::new(Vec::new()),
            }
        })
    }

    /// A message whose peer is gone (it stopped during shutdown): a request
    /// is answered with `Response::Gone` so its waiter does not wait forever.
    fn undeliverable(&self, msg: Msg) {
        if let Msg::Request { id, .. } = msg
            && id != NO_ANSWER
        {
            self.complete(id, Response::Gone);
        }
    }

    /// Starts receiving: requests go to `on_request`, responses wake their
    /// waiters. Called once whatever serves requests exists, so that no
    /// early request can find nobody to answer it.
    pub fn listen(
        self: &Rc<Self>,
        mut receivers: Receivers<Msg>,
        on_request: Rc<dyn Fn(usize, u32, Request)>,
    ) {
        for (_, rx) in receivers.streams() {
            let node = self.clone();
            let on_request = on_request.clone();
            glommio::spawn_local(async move {
                while let Some(msg) = rx.recv().await {
                    match msg {
                        Msg::Request { from, id, req } => on_request(from, id, req),
                        Msg::Response { id, resp } => node.complete(id, resp),
                    }
                }
            })
            .detach();
        }
    }

    /// Queues `msg` for `peer` without ever waiting.
    pub fn post(&self, peer: usize, msg: Msg) {
        let outbox = &self.outboxes[peer];
        let msg = if outbox.backlog.get() == 0 {
            match self.senders.try_send_to(peer, msg) {
                Ok(()) => return,
                Err(GlommioError::WouldBlock(ResourceType::Channel(msg))) => msg,
                Err(GlommioError::Closed(ResourceType::Channel(msg))) => {
                    return self.undeliverable(msg);
                }
                Err(_) => return,
            }
        } else {
            msg
        };
        outbox.backlog.set(outbox.backlog.get() + 1);
        if let Err(GlommioError::Closed(ResourceType::Channel(msg))) = outbox.queue.try_send(msg) {
            outbox.backlog.set(outbox.backlog.get() - 1);
            self.undeliverable(msg);
        }
    }

    /// Sends a request and waits for its response; None if the peer is
    /// gone.
    pub fn request(self: &Rc<Self>, peer: usize, req: Request) -> ResponseFuture {
        let id = {
            let mut slots = self.slots.borrow_mut();
            match self.free.borrow_mut().pop() {
                Some(id) => {
                    slots[id as usize] = Slot::Waiting(None);
                    id
                }
                None => {
                    slots.push(Slot::Waiting(None));
                    slots.len() as u32 - 1
                }
            }
        };
        self.post(
            peer,
            Msg::Request {
                from: self.id,
                id,
                req,
            },
        );
        ResponseFuture {
            node: self.clone(),
            id,
            done: false,
        }
    }

    /// Sends a request nobody waits for: its answer is dropped on the
    /// core that would have sent it, instead of travelling back as one more
    /// message (and, to a sleeping core, one more wake-up). The mesh's
    /// per-peer order still holds, which is all its senders rely on.
    pub fn tell(&self, peer: usize, req: Request) {
        self.post(
            peer,
            Msg::Request {
                from: self.id,
                id: NO_ANSWER,
                req,
            },
        );
    }

    pub fn respond(&self, peer: usize, id: u32, resp: Response) {
        if id != NO_ANSWER {
            self.post(peer, Msg::Response { id, resp });
        }
    }

    fn complete(&self, id: u32, resp: Response) {
        let mut slots = self.slots.borrow_mut();
        let Some(slot) = slots.get_mut(id as usize) else {
            return;
        };
        match std::mem::replace(slot, Slot::Free) {
            Slot::Waiting(waker) => {
                *slot = Slot::Ready(resp);
                if let Some(w) = waker {
                    w.wake();
                }
            }
            Slot::Abandoned => self.free.borrow_mut().push(id),
            other => *slot = other,
        }
    }
}

pub struct ResponseFuture {
    node: Rc<Node>,
    id: u32,
    done: bool,
}

impl Future for ResponseFuture {
    type Output = Response;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Response> {
        let mut slots = self.node.slots.borrow_mut();
        let slot = &mut slots[self.id as usize];
        match std::mem::replace(slot, Slot::Free) {
            Slot::Ready(resp) => {
                drop(slots);
                self.node.free.borrow_mut().push(self.id);
                self.done = true;
                Poll::Ready(resp)
            }
            Slot::Waiting(_) => {
                *slot = Slot::Waiting(Some(cx.waker().clone()));
                Poll::Pending
            }
            other => {
                *slot = other;
                Poll::Pending
            }
        }
    }
}

impl Drop for ResponseFuture {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let mut slots = self.node.slots.borrow_mut();
        let slot = &mut slots[self.id as usize];
        match slot {
            Slot::Ready(_) => {
                *slot = Slot::Free;
                drop(slots);
                self.node.free.borrow_mut().push(self.id);
            }
            _ => *slot = Slot::Abandoned,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use glommio::channels::channel_mesh::MeshBuilder;

    /// Core 1 answers every request it gets, as a shard does. Core 0 tells
    /// it a few requests, then asks one and reads its own end of the mesh
    /// by hand: the mesh is FIFO per pair of cores, so an answer to any of
    /// the told requests would arrive before the asked one's.
    #[test]
    fn a_told_request_is_not_answered_an_asked_one_is() {
        let mesh = MeshBuilder::<Msg, _>::full(2, 16);
        let answering = mesh.clone();
        let core1 = glommio::LocalExecutorBuilder::default()
            .spawn(move || async move {
                let (senders, receivers) = answering.join().await.unwrap();
                let node = Node::new(senders);
                let handled = Rc::new(Cell::new(0));
                let (me, count) = (Rc::downgrade(&node), handled.clone());
                let on_request: Rc<dyn Fn(usize, u32, Request)> = Rc::new(move |from, id, _| {
                    count.set(count.get() + 1);
                    me.upgrade().unwrap().respond(from, id, Response::Gone);
                });
                node.listen(receivers, on_request);
                while handled.get() < 4 {
                    glommio::timer::sleep(std::time::Duration::from_millis(1)).await;
                }
            })
            .unwrap();
        let core0 = glommio::LocalExecutorBuilder::default()
            .spawn(move || async move {
                let (senders, mut receivers) = mesh.join().await.unwrap();
                let node = Node::new(senders);
                // Mesh ids follow the order the executors joined in.
                let other = 1 - node.id;
                for _ in 0..3 {
                    node.tell(other, Request::View);
                }
                let asked = node.request(other, Request::View);
                let (_, rx) = receivers.streams().pop().unwrap();
                match rx.recv().await {
                    Some(Msg::Response { id, resp }) => {
                        assert_eq!(id, asked.id, "the first answer is the asked one's");
                        assert!(matches!(resp, Response::Gone));
                    }
                    _ => panic!("an answer"),
                }
            })
            .unwrap();
        core0.join().unwrap();
        core1.join().unwrap();
    }
}
