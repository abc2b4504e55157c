//! [`Shared`]: what a pool's workers, handles and `PendingTask`s share.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::Instant;

use parking_lot::Mutex;

use crate::running::{Change, Mark};
use crate::runtime::PendingTask;
use crate::runtime::chunk::Chunks;
use crate::runtime::guest::GUESTS;
use crate::runtime::ledger::Ledger;
use crate::runtime::mailbox::GroupInner;
use crate::runtime::metrics::Metrics;
use crate::runtime::queue::Queue;
use crate::runtime::relay::Relay;
use crate::runtime::run;
use crate::runtime::slot::WorkerSlot;
use crate::runtime::timer::Timer;
use crate::state::{Gate, Lifecycle};
use crate::stop::StopState;
use crate::sync::Waiters;
use crate::task::TaskPanic;
use crate::unwind::drop_quietly;

pub(crate) type PanicHandler = Arc<dyn Fn(TaskPanic) + Send + Sync + 'static>;
pub(crate) type ThreadHook = Arc<dyn Fn(usize) + Send + Sync + 'static>;
pub(crate) type TerminatedHook = Box<dyn FnOnce() + Send + 'static>;

/// The user code a pool calls at the edges of its life. Each hook runs
/// under `catch_unwind` with no pool lock held; a panic is logged and the
/// pool goes on.
#[derive(Default)]
pub(crate) struct Hooks {
    pub(crate) panic_handler: Option<PanicHandler>,
    pub(crate) on_thread_start: Option<ThreadHook>,
    pub(crate) on_thread_exit: Option<ThreadHook>,
    pub(crate) on_terminated: Mutex<Option<TerminatedHook>>,
}

/// What the pool's workers, handles and `PendingTask`s share.
pub(crate) struct Shared {
    /// Unique per pool in the process; tells a pool's own workers apart.
    pub(crate) id: u64,
    pub(crate) lifecycle: Lifecycle,
    pub(crate) gate: Gate,
    pub(crate) queue: Queue,
    /// The chunks of batches that may still hold tasks (see `chunk.rs`).
    pub(crate) chunks: Chunks,
    /// The pool's task groups, for shutdown (resume the paused ones) and
    /// `shutdown_now` (empty their mailboxes). Held strongly: a paused
    /// group whose every handle was dropped still holds accepted tasks.
    /// Settled groups are pruned as new ones come; the rest stay until the
    /// pool itself goes: a `shutdown_now` still to come (the drop policy's,
    /// a `ShutdownHandle`'s) must find every group holding tasks, also one
    /// whose token a worker holds (issue 12, defect 1; an earlier version
    /// cleared the list at termination, then at the drop, and lost tasks
    /// both ways). A task capturing its own group makes a cycle only while
    /// queued, and a terminated pool has none queued.
    pub(crate) groups: Mutex<Vec<Arc<GroupInner>>>,
    /// The pool-wide stop source, raised by `shutdown_now`.
    pub(crate) stop: Arc<StopState>,
    /// The workers' slots, then the `GUESTS` slots lent to threads that
    /// run a scope's tasks while they wait for it (see `guest.rs`).
    pub(crate) slots: Box<[WorkerSlot]>,
    /// How many workers the pool has: the first `workers` slots are theirs.
    pub(crate) workers: usize,
    /// Which guest slots are lent now (see `guest.rs`).
    pub(crate) lent: [AtomicBool; GUESTS],
    /// Workers that have not exited yet, plus `GUEST` for each thread that
    /// holds a guest slot: the pool terminates when the last of them
    /// leaves (see `guest.rs`).
    pub(crate) live: AtomicUsize,
    /// Where every task's end is recorded, with the bounded queue's room.
    pub(crate) ledger: Ledger,
    /// `wait_idle` callers.
    pub(crate) idle: Waiters,
    pub(crate) hooks: Hooks,
    pub(crate) threads: Mutex<Vec<JoinHandle<()>>>,
    pub(crate) epoch: Instant,
    /// Made by the first `shutdown_handle`.
    pub(crate) relay: OnceLock<Arc<Relay>>,
    /// Started by the first task with a deadline (`None` inside: its
    /// thread could not start); stopped when this state is dropped.
    pub(crate) timer: OnceLock<Option<Arc<Timer>>>,
    /// The timing metrics, if the pool records them (`Builder::metrics`).
    pub(crate) metrics: Option<Metrics>,
    /// Tasks handed back by a `shutdown_now` requested through a
    /// `ShutdownHandle`, kept for the program's next `shutdown_now`. `None`
    /// once the `ThreadPool` is dropped: nobody can ask then, and keeping
    /// them here would be a reference cycle (a `PendingTask` holds the pool).
    pub(crate) stash: Mutex<Option<Vec<PendingTask>>>,
}

impl Shared {
    /// The state of a pool of `threads` workers named `{prefix}-{index}`,
    /// with a queue of `capacity` tasks (`None`: unbounded).
    pub(crate) fn new(
        prefix: &str,
        threads: usize,
        capacity: Option<usize>,
        hooks: Hooks,
        epoch: Instant,
        metrics: bool,
    ) -> Shared {
        static NEXT_POOL_ID: AtomicU64 = AtomicU64::new(1);
        crate::stop::find_current_sources_with(crate::runtime::run::current_stop_states);
        crate::running::record_with(record_wait_here);
        Shared {
            id: NEXT_POOL_ID.fetch_add(1, Ordering::Relaxed),
            lifecycle: Lifecycle::new(),
            gate: Gate::new(),
            queue: Queue::new(),
            chunks: Chunks::new(),
            groups: Mutex::new(Vec::new()),
            stop: StopState::new(),
            slots: (0..threads)
                .map(|i| WorkerSlot::new(format!("{prefix}-{i}")))
                .chain((0..GUESTS).map(|i| WorkerSlot::new(format!("{prefix}-scope-caller-{i}"))))
                .collect(),
            workers: threads,
            lent: std::array::from_fn(|_| AtomicBool::new(false)),
            live: AtomicUsize::new(threads),
            ledger: Ledger::new(capacity),
            idle: Waiters::new(),
            hooks,
            threads: Mutex::new(Vec::with_capacity(threads)),
            epoch,
            relay: OnceLock::new(),
            timer: OnceLock::new(),
            metrics: metrics.then(|| Metrics::new(threads + GUESTS)),
            stash: Mutex::new(Some(Vec::new())),
        }
    }

    pub(crate) fn add_thread(&self, handle: JoinHandle<()>) {
        self.threads.lock().push(handle);
    }

    pub(crate) fn nanos_since_epoch(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}

/// Applies a `Blocking` guard's change to the slot of the worker the
/// calling thread is (see `running.rs`); `None` on any other thread, and
/// in a thread-local destructor after the context is gone.
fn record_wait_here(change: Change) -> Option<Mark> {
    run::CONTEXT
        .try_with(|context| {
            let context = context.try_borrow().ok()?;
            let context = context.as_ref()?;
            let slot = context.shared.slots.get(context.index)?;
            slot.change_wait(&context.shared, change)
        })
        .ok()
        .flatten()
}

impl Drop for Shared {
    fn drop(&mut self) {
        // Only reachable with tasks still queued if no worker ever took them
        // (e.g. a failed build); their handles must not wait forever.
        while let Some(task) = self.queue.drain_one() {
            drop_quietly(task);
        }
        if let Some(Some(timer)) = self.timer.get() {
            timer.stop();
        }
    }
}
