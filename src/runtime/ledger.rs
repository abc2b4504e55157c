//! The ledger: the one place where a task's end is recorded.
//!
//! A task's end is *decided* by one claim (see `cell.rs` and the runtime's
//! README); it is *recorded* here, once, by one of the ledger's events, which
//! keep every count that depends on it in step: the pool's counts, the
//! count of the worker that ran it, its group's progress, and the room in
//! a bounded queue. The counters' fields are private to this file; the
//! rest of the crate reads them through the snapshots here and changes
//! them only through the events of [`Ledger`] (the table of who calls
//! which, and what each changes, is in the runtime's `README.md`).
//!
//! A handed-back task was counted as returned when it was handed back; its
//! later run or cancel is counted apart (so `stats` can say how it ended)
//! and changes nothing in its group, which counted it as returned.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering, fence};
use std::time::Instant;

use crate::error::{PanicPayload, RejectReason};
use crate::runtime::Shared;
use crate::state::{Bound, Lifecycle, WhenFull};
use crate::sync::Waiters;
use crate::task::{TaskId, TaskPanic};
use crate::unwind::call_logged;

/// Whose a task that never started is; only its custodian may run it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Custody {
    /// The pool's: queued (in a level, a chunk or a group's mailbox). A
    /// worker taking it from the queue, or a joiner helping, may run it.
    Pool,
    /// Handed back by `shutdown_now` (or `TaskGroup::cancel_returning`):
    /// its `PendingTask`'s alone, never the pool's again.
    HandedBack,
}

/// How a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    Completed,
    Panicked,
}

impl Outcome {
    /// The outcome of a run caught by `catch_unwind`.
    #[inline(always)]
    pub(crate) fn of<T, E>(result: &Result<T, E>) -> Outcome {
        match result {
            Ok(_) => Outcome::Completed,
            Err(_) => Outcome::Panicked,
        }
    }
}

/// Who ran a task, which says where its end is counted.
#[derive(Clone, Copy)]
pub(crate) enum RunBy<'a> {
    /// One of the pool's workers (from the queue, or helping a joiner):
    /// the task was the pool's, and the worker's counts take its end.
    Worker(&'a WorkerCounts),
    /// The holder of a handed-back task, through its `PendingTask`.
    Holder,
}

/// The ledger of a pool: its counts of ends kept off the workers, and the
/// room in its bounded queue. Events change it; see the module docs.
pub(crate) struct Ledger {
    /// The room left in a bounded queue; `None` for an unbounded one.
    room: Option<Bound>,
    /// Tasks handed back by `shutdown_now` (or `cancel_returning`).
    returned: AtomicU64,
    /// Handed-back tasks later run through their `PendingTask`.
    returned_completed: AtomicU64,
    returned_panicked: AtomicU64,
    /// Cancelled while still the pool's (a handle's or a group's cancel).
    cancelled_queued: AtomicU64,
    /// Handed-back tasks cancelled (a dropped `PendingTask`, their handle).
    cancelled_returned: AtomicU64,
    /// Not started within their start deadline (always the pool's then).
    expired: AtomicU64,
    rejected: AtomicU64,
}

/// A worker's counts of the tasks it ran. Single writer (its worker), so a
/// load and a store replace a locked read-modify-write; readers order it
/// with fences (see `Shared::notify_idle_waiters`).
pub(crate) struct WorkerCounts {
    completed: AtomicU64,
    panicked: AtomicU64,
}

/// A group's counts, and the `TaskGroup::wait` callers waiting on them.
pub(crate) struct GroupCounts {
    submitted: AtomicU64,
    completed: AtomicU64,
    panicked: AtomicU64,
    cancelled: AtomicU64,
    expired: AtomicU64,
    returned: AtomicU64,
    running: AtomicUsize,
    waiters: Waiters,
}

impl Ledger {
    /// The ledger of a pool whose queue holds at most `capacity` tasks
    /// (`None`: unbounded).
    pub(crate) fn new(capacity: Option<usize>) -> Ledger {
        Ledger {
            room: capacity.map(Bound::new),
            returned: AtomicU64::new(0),
            returned_completed: AtomicU64::new(0),
            returned_panicked: AtomicU64::new(0),
            cancelled_queued: AtomicU64::new(0),
            cancelled_returned: AtomicU64::new(0),
            expired: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
        }
    }

    // ----- intake -------------------------------------------------------

    /// Whether the queue is bounded (then every admission reserves room).
    #[inline]
    pub(crate) fn is_bounded(&self) -> bool {
        self.room.is_some()
    }

    /// Reserves room for `n` tasks in a bounded queue (always succeeds on
    /// an unbounded one); see `Bound::reserve`.
    pub(crate) fn reserve(
        &self,
        lifecycle: &Lifecycle,
        n: usize,
        when_full: WhenFull,
        on_own_worker: impl FnOnce() -> bool,
    ) -> Result<(), RejectReason> {
        match &self.room {
            Some(room) => room.reserve(lifecycle, n, when_full, on_own_worker),
            None => Ok(()),
        }
    }

    /// `n` tasks that had reserved room were refused after all.
    pub(crate) fn unreserve(&self, n: usize) {
        self.release_room(n);
    }

    /// Submitters waiting for room in a bounded queue now.
    pub(crate) fn blocked_submitters(&self) -> usize {
        self.room.as_ref().map_or(0, Bound::waiting)
    }

    /// Wakes the submitters waiting for room, to be refused (shutdown).
    pub(crate) fn wake_blocked_submitters(&self) {
        if let Some(room) = &self.room {
            room.wake_all();
        }
    }

    /// `n` tasks were refused and handed back inside `Rejected`.
    pub(crate) fn rejected(&self, n: usize) {
        self.rejected.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// A task was accepted into `group`'s mailbox.
    pub(crate) fn accepted_in(&self, group: &GroupCounts) {
        group.submitted.fetch_add(1, Ordering::SeqCst);
    }

    // ----- claims and ends ----------------------------------------------

    /// A task was claimed to run: taken by a worker, helped by a joiner
    /// (custody `Pool`: its room comes back now), or run by the holder of
    /// its `PendingTask` (custody `HandedBack`: its room came back when it
    /// was handed back). Its group counts it as running.
    #[inline(always)]
    pub(crate) fn started(&self, custody: Custody, group: Option<&GroupCounts>) {
        if custody == Custody::Pool {
            self.release_room(1);
        }
        if let Some(group) = group {
            group.running.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// A task claimed by `started` ran to its end or panicked. Counted
    /// before its result is published, so statistics never lag behind a
    /// joined handle. Its group counts it as no longer running before it
    /// counts it as ended, so whoever sees it ended (`TaskGroup::wait`)
    /// never sees it still running.
    #[inline(always)]
    pub(crate) fn ran(&self, by: RunBy<'_>, outcome: Outcome, group: Option<&GroupCounts>) {
        match by {
            RunBy::Worker(counts) => counts.add(outcome),
            RunBy::Holder => {
                let counter = match outcome {
                    Outcome::Completed => &self.returned_completed,
                    Outcome::Panicked => &self.returned_panicked,
                };
                counter.fetch_add(1, Ordering::SeqCst);
            }
        }
        if let Some(group) = group {
            group.running.fetch_sub(1, Ordering::SeqCst);
            if let RunBy::Worker(_) = by {
                let counter = match outcome {
                    Outcome::Completed => &group.completed,
                    Outcome::Panicked => &group.panicked,
                };
                counter.fetch_add(1, Ordering::SeqCst);
            }
            group.waiters.notify();
        }
    }

    /// A task that never started was cancelled: while still the pool's
    /// (its room comes back now, not when a worker skips its dead entry),
    /// or after it was handed back. The caller wakes `wait_idle`.
    pub(crate) fn cancelled(&self, custody: Custody, group: Option<&GroupCounts>) {
        match custody {
            Custody::Pool => {
                self.cancelled_queued.fetch_add(1, Ordering::SeqCst);
                self.release_room(1);
                if let Some(group) = group {
                    group.cancelled.fetch_add(1, Ordering::SeqCst);
                    group.waiters.notify();
                }
            }
            Custody::HandedBack => {
                self.cancelled_returned.fetch_add(1, Ordering::SeqCst);
            }
        }
    }

    /// A queued task was not started within its start deadline: expired
    /// by the pool's timer, or by the worker that reached it late. Only
    /// the pool's tasks expire (a handed-back one is its holder's), so its
    /// room comes back now. The caller wakes `wait_idle`.
    pub(crate) fn expired(&self, group: Option<&GroupCounts>) {
        self.expired.fetch_add(1, Ordering::SeqCst);
        self.release_room(1);
        if let Some(group) = group {
            group.expired.fetch_add(1, Ordering::SeqCst);
            group.waiters.notify();
        }
    }

    /// `n` tasks that never started were handed back (all of `group`'s,
    /// or none of any group's). The caller wakes `wait_idle`.
    pub(crate) fn handed_back(&self, n: usize, group: Option<&GroupCounts>) {
        if n == 0 {
            return;
        }
        self.returned.fetch_add(n as u64, Ordering::SeqCst);
        self.release_room(n);
        if let Some(group) = group {
            group.returned.fetch_add(n as u64, Ordering::SeqCst);
            group.waiters.notify();
        }
    }

    #[inline(always)]
    fn release_room(&self, n: usize) {
        if let Some(room) = &self.room {
            room.release(n);
        }
    }
}

impl WorkerCounts {
    pub(crate) fn new() -> WorkerCounts {
        WorkerCounts {
            completed: AtomicU64::new(0),
            panicked: AtomicU64::new(0),
        }
    }

    #[inline(always)]
    fn add(&self, outcome: Outcome) {
        let counter = match outcome {
            Outcome::Completed => &self.completed,
            Outcome::Panicked => &self.panicked,
        };
        counter.store(counter.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
    }

    fn completed(&self) -> u64 {
        self.completed.load(Ordering::Relaxed)
    }

    fn panicked(&self) -> u64 {
        self.panicked.load(Ordering::Relaxed)
    }
}

impl GroupCounts {
    pub(crate) fn new() -> GroupCounts {
        GroupCounts {
            submitted: AtomicU64::new(0),
            completed: AtomicU64::new(0),
            panicked: AtomicU64::new(0),
            cancelled: AtomicU64::new(0),
            expired: AtomicU64::new(0),
            returned: AtomicU64::new(0),
            running: AtomicUsize::new(0),
            waiters: Waiters::new(),
        }
    }

    /// Tasks of the group running now.
    pub(crate) fn running(&self) -> usize {
        self.running.load(Ordering::SeqCst)
    }

    /// Every task accepted into the group has ended (or was handed back).
    pub(crate) fn is_done(&self) -> bool {
        let ended = self.completed.load(Ordering::SeqCst)
            + self.panicked.load(Ordering::SeqCst)
            + self.cancelled.load(Ordering::SeqCst)
            + self.expired.load(Ordering::SeqCst)
            + self.returned.load(Ordering::SeqCst);
        ended >= self.submitted.load(Ordering::SeqCst)
    }

    /// Waits until `is_done` or the deadline (`None`: none) passes.
    pub(crate) fn wait_done(&self, deadline: Option<Instant>) -> bool {
        // No lost wake-up: every event that changes a count this reads
        // notifies after the change; see `Waiters`.
        self.waiters.wait_until(deadline, || self.is_done())
    }

    /// The counts now, for `TaskGroup::progress`.
    pub(crate) fn progress(&self) -> GroupProgress {
        // Ended counts first, running next, submitted last: a task stops
        // running before it counts as ended, and is submitted before it
        // runs, so `queued` below never counts a task twice and is exact at
        // quiescence.
        let completed = self.completed.load(Ordering::SeqCst);
        let panicked = self.panicked.load(Ordering::SeqCst);
        let cancelled = self.cancelled.load(Ordering::SeqCst);
        let expired = self.expired.load(Ordering::SeqCst);
        let returned = self.returned.load(Ordering::SeqCst);
        let running = self.running.load(Ordering::SeqCst);
        let submitted = self.submitted.load(Ordering::SeqCst);
        let ended = completed + panicked + cancelled + expired + returned;
        let queued = submitted.saturating_sub(ended + running as u64);
        GroupProgress {
            submitted,
            queued: usize::try_from(queued).unwrap_or(usize::MAX),
            running,
            completed,
            panicked,
            cancelled,
            expired,
            returned,
        }
    }
}

// ----- reading the ledger -------------------------------------------------

impl Shared {
    /// Who ran a task on worker `index` (`None`: off the pool's workers,
    /// which only a handed-back task's holder runs on).
    #[inline(always)]
    pub(crate) fn run_by(&self, index: Option<usize>) -> RunBy<'_> {
        match index {
            Some(i) => RunBy::Worker(&self.slots[i].counts),
            None => RunBy::Holder,
        }
    }

    /// Tasks accepted and not yet ended, never an underestimate: the ended
    /// counts are read before the accepted count, and both only grow.
    pub(crate) fn outstanding(&self) -> u64 {
        let ended = self
            .slots
            .iter()
            .map(|s| s.counts.completed() + s.counts.panicked())
            .sum::<u64>()
            + self.ledger.cancelled_queued.load(Ordering::SeqCst)
            + self.ledger.expired.load(Ordering::SeqCst)
            + self.ledger.returned.load(Ordering::SeqCst);
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
        let c = &self.ledger;
        PoolStats {
            threads: self.workers_live(),
            queued: self.queued(),
            active: self.active(),
            completed: self.slots.iter().map(|s| s.counts.completed()).sum::<u64>()
                + c.returned_completed.load(Ordering::SeqCst),
            panicked: self.slots.iter().map(|s| s.counts.panicked()).sum::<u64>()
                + c.returned_panicked.load(Ordering::SeqCst),
            cancelled: c.cancelled_queued.load(Ordering::SeqCst)
                + c.cancelled_returned.load(Ordering::SeqCst),
            expired: c.expired.load(Ordering::SeqCst),
            rejected: c.rejected.load(Ordering::SeqCst),
            blocked_submitters: c.blocked_submitters(),
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
        payload: PanicPayload,
    ) {
        let panic = TaskPanic {
            id,
            name,
            thread: worker.map(|i| self.slots[i].thread_name().to_owned()),
            payload,
        };
        let id = self.id;
        match &self.hooks.panic_handler {
            Some(handler) => call_logged(format_args!("pool {id}: the panic handler"), || {
                handler(panic);
            }),
            None => call_logged(format_args!("pool {id}: the panic handler"), || {
                log_error!("pool {}: {panic}", self.id);
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
///
/// # Examples
///
/// ```
/// use drainpool::ThreadPool;
/// use std::time::Duration;
///
/// let pool = ThreadPool::new(2).unwrap();
/// for i in 0..10 {
///     pool.execute(move || {
///         if i == 3 {
///             panic!("task 3 fails");
///         }
///     })
///     .unwrap();
/// }
/// pool.shutdown();
/// let _refused = pool.execute(|| ()); // counted apart
/// assert!(pool.await_termination(Duration::from_secs(10)));
///
/// let stats = pool.stats();
/// assert_eq!(stats.completed + stats.panicked + stats.cancelled, 10); // every accepted task
/// assert_eq!((stats.panicked, stats.rejected), (1, 1));
/// assert_eq!((stats.queued, stats.active), (0, 0));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PoolStats {
    /// Worker threads that have not exited.
    pub threads: usize,
    /// Tasks accepted and queued, waiting for a worker.
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
    /// Tasks that never started because they were not started within their
    /// start deadline ([`TaskBuilder::start_within`](crate::TaskBuilder::start_within)).
    pub expired: u64,
    /// Tasks refused (and handed back inside [`Rejected`](crate::Rejected)).
    pub rejected: u64,
    /// Submitters blocked waiting for room in a bounded queue: the pool's
    /// backpressure. Their tasks are not counted anywhere else until they
    /// are accepted.
    pub blocked_submitters: usize,
}

/// Counts of a group's tasks; from [`TaskGroup::progress`](crate::TaskGroup::progress).
///
/// At quiescence `submitted = completed + panicked + cancelled + expired +
/// returned + queued + running`.
///
/// # Examples
///
/// ```
/// let pool = drainpool::ThreadPool::new(1).unwrap();
/// let job = pool.group("import");
/// job.pause(); // hold the tasks for the example
/// for _ in 0..5 {
///     job.execute(|| ()).unwrap();
/// }
/// let p = job.progress();
/// assert_eq!((p.submitted, p.queued, p.running), (5, 5, 0));
/// job.cancel();
/// let p = job.progress();
/// assert_eq!((p.queued, p.cancelled), (0, 5));
/// ```
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
    /// Tasks that never started because they were not started within their
    /// start deadline ([`TaskBuilder::start_within`](crate::TaskBuilder::start_within)).
    pub expired: u64,
    /// Tasks handed back by `shutdown_now` (the program holds them now).
    pub returned: u64,
}
