//! One connection's entry in its core's client registry: what CLIENT
//! LIST shows and what CLIENT KILL signals.
//!
//! It lives in the coordination layer because other cores reach it (CLIENT
//! LIST and CLIENT KILL gather every core's registry through [`crate::coord`]);
//! how it is rendered lives with the CLIENT command.

use std::cell::{Cell, RefCell};

use glommio::sync::Semaphore;

/// What CLIENT LIST shows about one connection. Owned by the connection's
/// core; the connection updates it with plain cell writes.
pub struct ClientInfo {
    pub id: u64,
    pub addr: String,
    pub laddr: String,
    /// Unix ms, from the shard's cached clock.
    pub created_ms: u64,
    pub name: RefCell<Option<Box<[u8]>>>,
    pub lib_name: RefCell<Option<Box<[u8]>>>,
    pub lib_ver: RefCell<Option<Box<[u8]>>>,
    /// The last command's name (`cmd=` in CLIENT LIST).
    pub last_cmd: Cell<&'static str>,
    pub last_active_ms: Cell<u64>,
    pub net_in: Cell<u64>,
    pub net_out: Cell<u64>,
    pub commands: Cell<u64>,
    /// Unparsed input bytes and the read buffer's size.
    pub qbuf: Cell<usize>,
    pub qbuf_cap: Cell<usize>,
    /// Reply bytes held for the client and not written yet (`omem`).
    pub omem: Cell<usize>,
    /// Since when `omem` has been at or above the soft output limit.
    pub soft_limit_since: Cell<Option<std::time::Instant>>,
    /// Queued commands since MULTI, or -1 outside MULTI.
    pub multi: Cell<i64>,
    pub watching: Cell<usize>,
    /// Closed by CLIENT KILL: wakes the connection's read, which then ends.
    pub kill: Semaphore,
    pub killed: Cell<bool>,
    // ---- Blocking commands (issue 13) ----
    /// Signalled when a key it waits on may have something for it, when
    /// CLIENT UNBLOCK names it, or when its socket closed while blocked.
    pub wake: Semaphore,
    /// Waiting in a blocking command (INFO blocked_clients, CLIENT UNBLOCK).
    pub blocked: Cell<bool>,
    /// CLIENT UNBLOCK's request while blocked: 1 TIMEOUT, 2 ERROR.
    pub unblock: Cell<u8>,
    /// The peer closed its end while the client was blocked.
    pub peer_closed: Cell<bool>,
    // ---- Pub/Sub (issue 14) ----
    /// Channels, patterns and shard channels subscribed (CLIENT LIST
    /// `sub=` `psub=` `ssub=`); any of them non-zero is subscribed mode.
    pub sub: Cell<usize>,
    pub psub: Cell<usize>,
    pub ssub: Cell<usize>,
}

impl ClientInfo {
    /// In subscribed mode (Pub/Sub, issue 14): its output counts against
    /// `client-output-buffer-limit pubsub`, as Redis' pubsub class.
    #[inline]
    pub fn subscribed(&self) -> bool {
        self.sub.get() + self.psub.get() + self.ssub.get() > 0
    }

    pub fn new(id: u64, addr: String, laddr: String, now_ms: u64) -> ClientInfo {
        ClientInfo {
            id,
            addr,
            laddr,
            created_ms: now_ms,
            name: RefCell::new(None),
            lib_name: RefCell::new(None),
            lib_ver: RefCell::new(None),
            last_cmd: Cell::new("NULL"),
            last_active_ms: Cell::new(now_ms),
            net_in: Cell::new(0),
            net_out: Cell::new(0),
            commands: Cell::new(0),
            qbuf: Cell::new(0),
            qbuf_cap: Cell::new(0),
            omem: Cell::new(0),
            soft_limit_since: Cell::new(None),
            multi: Cell::new(-1),
            watching: Cell::new(0),
            kill: Semaphore::new(0),
            killed: Cell::new(false),
            wake: Semaphore::new(0),
            blocked: Cell::new(false),
            unblock: Cell::new(0),
            peer_closed: Cell::new(false),
            sub: Cell::new(0),
            psub: Cell::new(0),
            ssub: Cell::new(0),
        }
    }
}
