//! Stopping: one [`Shutdown`] per core.
//!
//! A stop is requested process-wide (SIGINT/SIGTERM set a shared flag, so
//! does SHUTDOWN or a core that cannot listen); each core notices it on
//! its own timer and from then on is *shutting down*: its accept loop and
//! idle connections wake up and leave, its housekeeping tasks end. The
//! flag is the one piece of state shared between cores for this, read by
//! a timer, never on the data path.

use std::cell::Cell;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use glommio::sync::Semaphore;

/// One core's view of the process stopping (see the module docs).
pub struct Shutdown {
    /// Set by SIGINT/SIGTERM or SHUTDOWN; shared by every core.
    requested: Arc<AtomicBool>,
    /// Closed when this core starts shutting down: wakes every waiter.
    begun: Semaphore,
    shutting_down: Cell<bool>,
}

impl Shutdown {
    pub(crate) fn new(requested: Arc<AtomicBool>) -> Shutdown {
        Shutdown {
            requested,
            begun: Semaphore::new(0),
            shutting_down: Cell::new(false),
        }
    }

    /// Asks every core to stop (SHUTDOWN, a core that cannot listen).
    pub fn request(&self) {
        self.requested.store(true, Ordering::SeqCst);
    }

    /// Whether a stop was requested (by any core), before this core's
    /// timer has noticed it: a long-running script polls it (scripting).
    pub fn requested(&self) -> bool {
        self.requested.load(Ordering::Relaxed)
    }

    /// Whether this core has begun shutting down.
    #[inline]
    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.get()
    }

    /// Resolves once this core begins shutting down.
    pub async fn wait(&self) {
        let _ = self.begun.acquire(1).await;
    }

    /// Polled by the core's timer: begins shutting down once a stop was
    /// requested. True when it has begun.
    pub(crate) fn poll(&self) -> bool {
        if !self.shutting_down.get() && self.requested.load(Ordering::Relaxed) {
            self.shutting_down.set(true);
            self.begun.close();
        }
        self.shutting_down.get()
    }
}
