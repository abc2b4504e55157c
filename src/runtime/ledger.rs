//! The ledger: the counts of tasks' ends, the statistics made of them, and
//! the waiters for idleness.

use std::sync::Arc;
use std::sync::atomic::{Ordering, fence};
use std::time::Instant;

use crate::runtime::Shared;
use crate::runtime::slot::WorkerSlot;
use crate::state::Bound;
use crate::task::{TaskId, TaskPanic};
use crate::unwind::call_logged;

impl Shared {
    // ----- accounting ---------------------------------------------------

    /// A task ended on worker `index` (or elsewhere, `None`).
    #[inline]
    pub(crate) fn count_end(&self, index: Option<usize>, panicked: bool, returned: bool) {
        match index {
            Some(i) if !returned => self.slots[i].record_end(panicked),
            _ => {
                debug_assert!(returned, "only handed-back tasks run off the workers");
                let counter = if panicked {
                    &self.counters.returned_panicked
                } else {
                    &self.counters.returned_completed
                };
                counter.fetch_add(1, Ordering::SeqCst);
            }
        }
    }

    /// A task that will never start was cancelled: while still the pool's
    /// (then its room comes back now, not when a worker skips its dead
    /// entry), or after `shutdown_now` handed it back (`returned`).
    pub(crate) fn count_cancelled(&self, returned: bool) {
        let counter = if returned {
            &self.counters.cancelled_returned
        } else {
            &self.counters.cancelled_queued
        };
        counter.fetch_add(1, Ordering::SeqCst);
        if !returned {
            self.release_room(1);
            self.notify_idle_waiters();
        }
    }

    /// Tasks accepted and not yet ended, never an underestimate: the ended
    /// counts are read before the accepted count, and both only grow.
    pub(crate) fn outstanding(&self) -> u64 {
        let ended = self
            .slots
            .iter()
            .map(|s| s.completed() + s.panicked())
            .sum::<u64>()
            + self.counters.cancelled_queued.load(Ordering::SeqCst)
            + self.counters.returned.load(Ordering::SeqCst);
        fence(Ordering::SeqCst);
        self.gate.accepted().saturating_sub(ended)
    }

    pub(crate) fn active(&self) -> usize {
        self.slots.iter().filter(|s| s.is_busy()).count()
    }

    pub(crate) fn queued(&self) -> usize {
        let outstanding = usize::try_from(self.outstanding()).unwrap_or(usize::MAX);
        outstanding.saturating_sub(self.active())
    }

    pub(crate) fn stats(&self) -> PoolStats {
        let c = &self.counters;
        PoolStats {
            threads: self.live.load(Ordering::SeqCst),
            queued: self.queued(),
            active: self.active(),
            completed: self.slots.iter().map(WorkerSlot::completed).sum::<u64>()
                + c.returned_completed.load(Ordering::SeqCst),
            panicked: self.slots.iter().map(WorkerSlot::panicked).sum::<u64>()
                + c.returned_panicked.load(Ordering::SeqCst),
            cancelled: c.cancelled_queued.load(Ordering::SeqCst)
                + c.cancelled_returned.load(Ordering::SeqCst),
            rejected: c.rejected.load(Ordering::SeqCst),
            blocked_submitters: self.bound.as_ref().map_or(0, Bound::waiting),
        }
    }

    /// Hands a panic nobody can join to the panic handler; `worker` is the
    /// index of the worker it happened on, if any (its thread is named in
    /// the report). Out of line: off every hot path.
    #[cold]
    #[inline(never)]
    pub(crate) fn report_panic(
        &self,
        id: TaskId,
        name: Option<Arc<str>>,
        worker: Option<usize>,
        payload: Box<dyn std::any::Any + Send + 'static>,
    ) {
        let panic = TaskPanic {
            id,
            name,
            thread: worker.map(|i| self.slots[i].thread_name().to_owned()),
            payload,
        };
        let what = format_args!("pool {}: the panic handler", self.id);
        match &self.hooks.panic_handler {
            Some(handler) => call_logged(what, || handler(panic)),
            None => call_logged(what, || {
                log::error!("pool {}: {panic}", self.id);
                drop(panic);
            }),
        };
    }

    // ----- idleness -----------------------------------------------------

    /// Wakes `wait_idle` callers, if there are any and the pool is idle.
    pub(crate) fn notify_idle_waiters(&self) {
        // ORDERING: `notify_if` fences before it reads, ordering this
        // thread's earlier stores (counters, slot cleared) before the loads
        // of `is_idle` (Dekker with `wait_idle`'s registration; and between
        // two workers going idle at once: at least one of them sees both
        // slots clear, so the last one out always notifies).
        self.idle.notify_if(|| self.is_idle());
    }

    pub(crate) fn wait_idle(&self, deadline: Option<Instant>) -> bool {
        // No lost wake-up: a worker that ends the last task either is seen
        // by the test, or sees our registration and notifies (`Waiters`).
        self.idle.wait_until(deadline, || self.is_idle())
    }

    /// Nothing queued or running: every accepted task has ended, and every
    /// worker has finished its bookkeeping (a task is counted as ended just
    /// before its worker's slot is cleared; the worker notifies waiters only
    /// after that, from its idle path).
    pub(crate) fn is_idle(&self) -> bool {
        self.outstanding() == 0 && self.active() == 0
    }
}

/// A snapshot of a pool's counters; from [`ThreadPool::stats`](crate::ThreadPool::stats).
///
/// Counts are exact at quiescence; while tasks are moving, `queued` and
/// `active` are momentary. At quiescence, every task ever accepted is
/// `completed + panicked + cancelled`, or was handed back by
/// `shutdown_now` and is still held as a [`PendingTask`](crate::PendingTask).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PoolStats {
    /// Worker threads that have not exited.
    pub threads: usize,
    /// Tasks accepted and not yet started.
    pub queued: usize,
    /// Tasks running now.
    pub active: usize,
    /// Tasks that ran to the end (also those run from a [`PendingTask`](crate::PendingTask)).
    pub completed: u64,
    /// Tasks that panicked.
    pub panicked: u64,
    /// Tasks that will never start: cancelled through their handle, or
    /// handed back by `shutdown_now` and dropped.
    pub cancelled: u64,
    /// Tasks refused (and handed back inside [`Rejected`](crate::Rejected)).
    pub rejected: u64,
    /// Submitters blocked waiting for room in a bounded queue: the pool's
    /// backpressure. Their tasks are not counted anywhere else until they
    /// are accepted.
    pub blocked_submitters: usize,
}

/// Counts of a group's tasks; from [`TaskGroup::progress`](crate::TaskGroup::progress).
///
/// At quiescence `submitted = completed + panicked + cancelled + returned +
/// queued + running`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct GroupProgress {
    /// Tasks accepted into the group.
    pub submitted: u64,
    /// Tasks waiting in the group's mailbox (also while paused).
    pub queued: usize,
    /// Tasks running now.
    pub running: usize,
    /// Tasks that ran to the end.
    pub completed: u64,
    /// Tasks that panicked.
    pub panicked: u64,
    /// Tasks that will never start: cancelled with the group or through
    /// their handle.
    pub cancelled: u64,
    /// Tasks handed back by `shutdown_now` (the program holds them now).
    pub returned: u64,
}
