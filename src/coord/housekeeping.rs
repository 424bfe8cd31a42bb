//! A shard's own timers: noticing a requested shutdown, draining requests
//! deferred behind a transaction lock, active expiry, lazy free in slices,
//! eviction down to the shard's share of maxmemory, the ops-rate sampler
//! (which also recalibrates the command clock) and hot-key decay. Each is
//! a task on the shard's executor that ends when the shard shuts down.

use std::rc::Rc;
use std::time::Duration;

use futures_lite::future;

use super::Shard;

/// How often a shard looks at the process-wide stop request.
const SHUTDOWN_POLL: Duration = Duration::from_millis(50);
/// Pause between two lazy-free slices: long enough for the executor to
/// park and poll I/O, short enough that freeing keeps most of an idle core.
const LAZYFREE_PAUSE: Duration = Duration::from_micros(50);
/// How often a shard looks whether it is over its memory budget when no
/// write has made it evict.
const EVICT_TICK: Duration = Duration::from_millis(10);

/// Timers of a shard: shutdown polling, active expiry, hot-key decay.
pub fn spawn_housekeeping(shard: &Rc<Shard>) {
    // Blocking commands (issue 13): wakes blocked clients after writes.
    super::blocking::spawn_dispatcher(shard);
    // Cluster mode (issue 16): shard 0 PINGs the other nodes.
    super::peer::spawn_health(shard);

    let s = shard.clone();
    glommio::spawn_local(async move {
        while !s.shutdown.poll() {
            glommio::timer::sleep(SHUTDOWN_POLL).await;
        }
    })
    .detach();

    // Transaction locks: requests queued behind a released lock run once
    // this core's own waiting connections had their turn.
    let s = shard.clone();
    glommio::spawn_local(async move {
        while s.tx.drain_later.acquire(1).await.is_ok() {
            s.drain_deferred();
        }
    })
    .detach();

    let s = shard.clone();
    glommio::spawn_local(async move {
        while !s.shutdown.is_shutting_down() {
            glommio::timer::sleep(Duration::from_millis(100)).await;
            s.metrics.ops_rate.sample(s.metrics.total_calls());
            s.metrics.clock.recalibrate();
        }
    })
    .detach();

    // The shard's memory figure drifts with blocks freed on other cores;
    // its arena's exact figure resets it (src/alloc.rs).
    let s = shard.clone();
    glommio::spawn_local(async move {
        while !s.shutdown.is_shutting_down() {
            glommio::timer::sleep(crate::alloc::CALIBRATE_EVERY).await;
            crate::alloc::calibrate();
        }
    })
    .detach();

    let s = shard.clone();
    glommio::spawn_local(async move {
        let period = Duration::from_millis(s.config.active_expire_ms.max(1));
        while !s.shutdown.is_shutting_down() {
            glommio::timer::sleep(period).await;
            // A transaction holding this shard sees its keys as of its
            // start: no expiry cycle in between.
            if !s.tx.blocks_current() {
                let mut db = s.db.borrow_mut();
                db.active_expire(16);
                db.shrink_sparse_tables();
            }
        }
    })
    .detach();

    // Eviction (src/store/evict.rs): every EVICT_TICK, a shard over its
    // share of maxmemory evicts in slices of the tenacity time (500 µs by
    // default), sleeping between slices like lazy free so the core keeps
    // serving its clients, until it is back under budget. This is what
    // brings usage down after CONFIG SET maxmemory without any traffic.
    // Not while a transaction holds the shard or a multi-key command holds
    // keys here: they see their keys as of their start, as with expiry.
    let s = shard.clone();
    glommio::spawn_local(async move {
        while !s.shutdown.is_shutting_down() {
            glommio::timer::sleep(EVICT_TICK).await;
            // Under budget, `make_room` is one comparison (and ends the
            // "over budget since" clock of INFO).
            while !s.shutdown.is_shutting_down() && !s.tx.blocks_current() && s.keys.is_empty() {
                let outcome = {
                    let mut db = s.db.borrow_mut();
                    if db.budget() == 0 {
                        break;
                    }
                    db.refresh_clock();
                    db.make_room()
                };
                if outcome != crate::store::evict::Outcome::Running {
                    break;
                }
                glommio::timer::sleep(LAZYFREE_PAUSE).await;
            }
        }
    })
    .detach();

    // Lazy free (UNLINK, FLUSH* ASYNC): parked while the queue is empty;
    // otherwise one bounded slice, then a short sleep so that the executor
    // polls I/O and runs this core's connections before the next slice (a
    // plain yield would not: glommio reaps I/O only once its task queues
    // are empty or its 100 ms preemption timer fires).
    let s = shard.clone();
    glommio::spawn_local(async move {
        loop {
            let queued = future::or(
                future::poll_fn(|cx| {
                    if s.db.borrow_mut().lazyfree_idle(cx.waker()) {
                        std::task::Poll::Pending
                    } else {
                        std::task::Poll::Ready(true)
                    }
                }),
                async {
                    s.shutdown.wait().await;
                    false
                },
            )
            .await;
            if !queued {
                break;
            }
            while !s.shutdown.is_shutting_down()
                && s.db.borrow_mut().lazyfree_slice(
                    crate::store::lazyfree::SLICE_ELEMENTS,
                    crate::store::lazyfree::SLICE_TIME,
                )
            {
                glommio::timer::sleep(LAZYFREE_PAUSE).await;
            }
            if s.shutdown.is_shutting_down() {
                break;
            }
        }
    })
    .detach();

    let s = shard.clone();
    glommio::spawn_local(async move {
        // Short ticks so that a CONFIG SET of the interval applies within
        // 100 ms instead of after the old interval.
        let mut last_decay = std::time::Instant::now();
        while !s.shutdown.is_shutting_down() {
            let period = Duration::from_millis(s.hotkeys_decay_ms.get().max(1));
            glommio::timer::sleep(period.min(Duration::from_millis(100))).await;
            if last_decay.elapsed() >= period {
                s.db.borrow_mut().hot.decay();
                last_decay = std::time::Instant::now();
            }
        }
    })
    .detach();
}
