//! A worker's own line (its counters, the task it runs, its clock) and the
//! guards that keep it right when a task unwinds.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering, fence};
use std::time::Duration;

use parking_lot::Mutex;

use crate::running::RunningTask;
use crate::running::{Blocked, BlockedOn, Change, Mark};
use crate::runtime::Shared;
use crate::runtime::ledger::WorkerCounts;
use crate::task::TaskId;

/// Where a task runs: on worker `.0`, stamped as started at `.1`; `None`
/// for a thread outside the pool (a `PendingTask` run by the program).
pub(crate) type At = Option<Site>;

/// A task's place on a worker.
#[derive(Clone, Copy)]
pub(crate) struct Site {
    pub(crate) index: usize,
    /// When it started (the worker's stamp).
    pub(crate) started: u64,
    /// Run inline inside another task (a joiner helping).
    pub(crate) nested: bool,
}

/// A worker's own view of the time, for the start stamps of its tasks.
///
/// Reading the clock costs about as much as running a tiny task, so a worker
/// running tiny tasks back to back reads it once per [`Clock::STRIDE`] tasks
/// and stamps the ones in between with the last reading: their start is then
/// early by at most the run time of the few tiny tasks before them. As soon
/// as a window of tasks takes longer than [`Clock::SLOW`], the worker reads
/// the clock for every task again, and it always does after waking from
/// idle, so a long or stuck task's `running_for` is exact.
pub(crate) struct Clock {
    last: u64,
    left: u32,
    stride: u32,
}

impl Clock {
    const STRIDE: u32 = 32;
    const SLOW: u64 = 50_000; // nanoseconds

    pub(crate) fn new() -> Clock {
        Clock {
            last: 0,
            left: 0,
            stride: 0,
        }
    }

    #[inline]
    pub(crate) fn stamp(&mut self, shared: &Shared) -> u64 {
        if self.left > 0 {
            self.left -= 1;
            return self.last;
        }
        let now = shared.nanos_since_epoch();
        let window = now.saturating_sub(self.last);
        self.stride = if window > Clock::SLOW {
            0
        } else {
            Clock::STRIDE - 1
        };
        self.left = self.stride;
        self.last = now;
        now
    }

    /// The next stamp reads the clock (the worker was idle).
    pub(crate) fn invalidate(&mut self) {
        self.left = 0;
        self.last = 0;
    }
}

/// A worker's own line: its counters and the task it is running.
#[repr(align(128))]
pub(crate) struct WorkerSlot {
    thread_name: String,
    /// Id of the running task, 0 when idle.
    current: AtomicU64,
    /// When it started, in nanoseconds since the pool's epoch.
    started: AtomicU64,
    name: Mutex<Option<Arc<str>>>,
    /// Whether `name` may hold a name, so unnamed tasks skip its lock.
    named: AtomicBool,
    /// The tasks the slot showed before the nested runs now in progress
    /// (a join helping, a scope's caller running its tasks), innermost
    /// last: still running, they wait for the run the slot shows, and
    /// `running_tasks` lists them too. Only nested runs take this lock.
    waiting: Mutex<Vec<Shown>>,
    /// What the running task waits on, if it waits through drainpool (see
    /// `running.rs`): see [`Wait`].
    wait: Wait,
    /// Its counts of the tasks it ran (the ledger's to change).
    pub(crate) counts: WorkerCounts,
}

/// A task a slot showed before a nested run: its id, start, name, and the
/// wait it is in (the one the nested run happens inside, if recorded).
struct Shown(u64, u64, Option<Arc<str>>, Mark);

/// What a slot showed before a nested run, restored after it.
pub(crate) struct Previous {
    current: u64,
    started: u64,
    name: Option<Option<Arc<str>>>,
    wait: Mark,
}

/// The record of the wait the task a slot shows is in: written only by the
/// slot's own thread (a `Blocking` guard, a nested run moving it aside),
/// read by anyone (`running_tasks`). A seqlock: `seq` is odd while the
/// thread writes, and a reader keeps the pair it read only if `seq` was
/// the same even number before and after. A 64-bit count never comes back
/// to a value, so no write between the reader's two looks goes unseen,
/// not even one that puts back a record saved earlier (a nested run's
/// end does).
///
/// In a [`Mark`]: `on` is 0 for no wait, else the kind's code in the low
/// [`Wait::KIND_BITS`] bits and, for `BlockedOn::Task`, the awaited task's
/// id above them; `since` is when the wait began, in nanoseconds since the
/// pool's epoch.
struct Wait {
    seq: AtomicU64,
    on: AtomicU64,
    since: AtomicU64,
}

impl Wait {
    const KIND_BITS: u32 = 3;
    const KIND_MASK: u64 = (1 << Wait::KIND_BITS) - 1;

    fn new() -> Wait {
        Wait {
            seq: AtomicU64::new(0),
            on: AtomicU64::new(0),
            since: AtomicU64::new(0),
        }
    }

    /// The record of a wait on `on` that began at `since`.
    fn mark(on: BlockedOn, since: u64) -> Mark {
        let code = match on {
            BlockedOn::Sleep => 1,
            BlockedOn::Recv => 2,
            BlockedOn::Condvar => 3,
            BlockedOn::Lock => 4,
            // Task ids come from a 64-bit counter that hands out blocks of
            // 1024 a thread at a time: they stay far below 2^61.
            BlockedOn::Task(id) => (id.as_u64() << Wait::KIND_BITS) | 5,
            BlockedOn::Scope => 6,
        };
        Mark { on: code, since }
    }

    /// The wait a record says, and when it began; `None` for no wait.
    fn unmark(mark: Mark) -> Option<(BlockedOn, u64)> {
        let on = match mark.on & Wait::KIND_MASK {
            1 => BlockedOn::Sleep,
            2 => BlockedOn::Recv,
            3 => BlockedOn::Condvar,
            4 => BlockedOn::Lock,
            5 => BlockedOn::Task(TaskId::from_raw(mark.on >> Wait::KIND_BITS)),
            6 => BlockedOn::Scope,
            _ => return None,
        };
        Some((on, mark.since))
    }

    /// Writes `mark`, returns the record it replaces. Only the slot's own
    /// thread writes: plain loads and stores, no read-modify-write.
    fn swap(&self, mark: Mark) -> Mark {
        let old = Mark {
            on: self.on.load(Ordering::Relaxed),
            since: self.since.load(Ordering::Relaxed),
        };
        if old == mark {
            return old;
        }
        let seq = self.seq.load(Ordering::Relaxed);
        self.seq.store(seq.wrapping_add(1), Ordering::Relaxed);
        // ORDERING: the seqlock's writer side: the odd `seq` is ordered
        // before the data stores, so a reader that reads any of them sees
        // the odd `seq` (or later) on its second look (see `load`).
        fence(Ordering::Release);
        self.on.store(mark.on, Ordering::Relaxed);
        self.since.store(mark.since, Ordering::Relaxed);
        // ORDERING: Release publishes the data stores to a reader whose
        // first look at `seq` (Acquire) sees this even value.
        self.seq.store(seq.wrapping_add(2), Ordering::Release);
        old
    }

    /// The record, consistent; `None` if it kept changing under the reads
    /// (a wait beginning or ending as we look: nothing to say about it).
    fn load(&self) -> Option<Mark> {
        for _ in 0..4 {
            // ORDERING: Acquire pairs with the even `seq` stored (Release)
            // after a write's data: that write's data, or later, is seen.
            let before = self.seq.load(Ordering::Acquire);
            if before % 2 == 1 {
                std::hint::spin_loop();
                continue;
            }
            let mark = Mark {
                on: self.on.load(Ordering::Relaxed),
                since: self.since.load(Ordering::Relaxed),
            };
            // ORDERING: the seqlock's reader side: if a data load above saw
            // a later write's store, this fence synchronises with that
            // write's Release fence, and the load of `seq` below sees its
            // odd value or later: a different count.
            fence(Ordering::Acquire);
            if self.seq.load(Ordering::Relaxed) == before {
                return Some(mark);
            }
        }
        None
    }
}

impl WorkerSlot {
    pub(crate) fn new(thread_name: String) -> Self {
        WorkerSlot {
            thread_name,
            current: AtomicU64::new(0),
            started: AtomicU64::new(0),
            name: Mutex::new(None),
            named: AtomicBool::new(false),
            waiting: Mutex::new(Vec::new()),
            wait: Wait::new(),
            counts: WorkerCounts::new(),
        }
    }

    pub(crate) fn thread_name(&self) -> &str {
        &self.thread_name
    }

    pub(crate) fn is_busy(&self) -> bool {
        self.current.load(Ordering::Acquire) != 0
    }

    /// Shows a task taken from the queue (the slot was idle).
    #[inline(always)]
    pub(crate) fn begin_top(&self, id: TaskId, name: Option<&Arc<str>>, started: u64) {
        if name.is_some() || self.named.load(Ordering::Relaxed) {
            self.set_name(name);
        }
        self.started.store(started, Ordering::Relaxed);
        // ORDERING: Release publishes `started` and `name` to
        // `running_tasks`, which reads `current` with Acquire first.
        self.current.store(id.as_u64(), Ordering::Release);
    }

    /// Shows `name` (named tasks are the slow path: a lock).
    #[inline(never)]
    pub(crate) fn set_name(&self, name: Option<&Arc<str>>) {
        *self.name.lock() = name.cloned();
        self.named.store(name.is_some(), Ordering::Relaxed);
    }

    /// Marks the slot idle again after a task taken from the queue.
    #[inline(always)]
    pub(crate) fn end_top(&self) {
        // ORDERING: Release, so a reader that sees the slot idle also sees
        // the task's counts (stored before).
        self.current.store(0, Ordering::Release);
    }

    /// Shows a task run inline by a joiner, saving what the slot showed.
    pub(crate) fn begin(&self, id: TaskId, name: Option<&Arc<str>>, started: u64) -> Previous {
        let prev_current = self.current.load(Ordering::Relaxed);
        let prev_started = self.started.load(Ordering::Relaxed);
        // The outer task's wait goes aside with it, before the slot shows
        // the inner task: a reader that sees the inner id (Acquire) sees
        // the record cleared, never the outer wait as the inner task's.
        let prev_wait = self.wait.swap(Mark::default());
        let mut prev_name = None;
        if name.is_some() || self.named.load(Ordering::Relaxed) {
            let mut slot_name = self.name.lock();
            prev_name = Some(slot_name.take());
            *slot_name = name.cloned();
            self.named.store(name.is_some(), Ordering::Relaxed);
        }
        if prev_current != 0 {
            let prev = prev_name.as_ref().and_then(Clone::clone);
            self.waiting
                .lock()
                .push(Shown(prev_current, prev_started, prev, prev_wait));
        }
        self.started.store(started, Ordering::Relaxed);
        // ORDERING: Release publishes `started`, `name` and the cleared
        // wait to `running_tasks`, which reads `current` with Acquire first.
        self.current.store(id.as_u64(), Ordering::Release);
        Previous {
            current: prev_current,
            started: prev_started,
            name: prev_name,
            wait: prev_wait,
        }
    }

    /// What the slot shows now, for `end` to put back after runs that
    /// leave the slot idle (a chunk's tasks, run by a worker helping).
    /// The task it shows waits for those runs, as for a nested run
    /// (`begin`): it is listed as waiting meanwhile, with its wait, which
    /// goes aside so that the chunk's tasks do not show it as theirs.
    pub(crate) fn save(&self) -> Previous {
        let current = self.current.load(Ordering::Relaxed);
        let started = self.started.load(Ordering::Relaxed);
        let name = self.name.lock().clone();
        let wait = self.wait.swap(Mark::default());
        if current != 0 {
            // `end` pops one entry for a `Previous` with a task: push it,
            // or `end` would pop the entry of a task further out.
            self.waiting
                .lock()
                .push(Shown(current, started, name.clone(), wait));
        }
        Previous {
            current,
            started,
            name: Some(name),
            wait,
        }
    }

    pub(crate) fn end(&self, prev: Previous) {
        if prev.current != 0 {
            self.waiting.lock().pop();
        }
        // ORDERING: Release, so a reader that sees the restored id also sees
        // the restored fields; only `running_tasks` and `stats().active` read
        // `current` (idleness is counted, not read from here).
        self.current.store(prev.current, Ordering::Release);
        self.started.store(prev.started, Ordering::Relaxed);
        if let Some(name) = prev.name {
            let named = name.is_some();
            *self.name.lock() = name;
            self.named.store(named, Ordering::Relaxed);
        }
        // After the id: until a reader sees the outer task again, it must
        // not see the outer wait (it would take it for the inner task's).
        // In between it sees the outer task without its wait, for a moment.
        self.wait.swap(prev.wait);
    }

    /// Records that the task this slot shows waits on `on` from now, or
    /// puts a saved record back (see `running.rs`); returns the record it
    /// replaced, `None` if it changed nothing. Only the slot's own thread
    /// calls it.
    ///
    /// A wait inside a recorded wait of the same task changes nothing:
    /// the outer one says what the task waits for (a `wait_task` waits in
    /// a condvar wait of the cell's, and is a wait for a task, not for a
    /// condvar). A nested run's task starts with no record (`begin`), so
    /// its own waits are recorded.
    pub(crate) fn change_wait(&self, shared: &Shared, change: Change) -> Option<Mark> {
        let mark = match change {
            Change::Enter(_) if self.wait.on.load(Ordering::Relaxed) != 0 => return None,
            Change::Enter(on) => Wait::mark(on, shared.nanos_since_epoch()),
            Change::Restore(mark) => mark,
        };
        Some(self.wait.swap(mark))
    }

    /// What `mark` says, seen at `now`.
    fn blocked(mark: Mark, now: u64) -> Option<Blocked> {
        Wait::unmark(mark).map(|(on, since)| Blocked {
            on,
            for_: Duration::from_nanos(now.saturating_sub(since)),
        })
    }

    /// The tasks of this slot waiting for a nested run (see `waiting`).
    pub(crate) fn waiting(&self, shared: &Shared) -> Vec<RunningTask> {
        let waiting = self.waiting.lock();
        if waiting.is_empty() {
            return Vec::new();
        }
        let now = shared.nanos_since_epoch();
        waiting
            .iter()
            .map(|Shown(id, started, name, wait)| RunningTask {
                id: TaskId::from_raw(*id),
                name: name.as_deref().map(str::to_owned),
                thread: self.thread_name.clone(),
                running_for: Duration::from_nanos(now.saturating_sub(*started)),
                blocked: WorkerSlot::blocked(*wait, now),
                over_limit: None,
            })
            .collect()
    }

    /// The task running in this slot now, if any.
    pub(crate) fn running(&self, shared: &Shared) -> Option<RunningTask> {
        for _ in 0..4 {
            let id = self.current.load(Ordering::Acquire);
            if id == 0 {
                return None;
            }
            let started = self.started.load(Ordering::Relaxed);
            let name = self.name.lock().as_deref().map(str::to_owned);
            // Between the two looks at the id, so the wait read is this
            // task's: a nested run clears it before it shows its task, and
            // puts the outer one back only after the outer id (`begin`,
            // `end`). A whole nested run between the two looks can still
            // mix the runs' fields, as it can `started`. A record that kept
            // changing under the reads is shown as no wait.
            let wait = self.wait.load().unwrap_or_default();
            // A task that ended meanwhile may have left a mix of two tasks'
            // fields; read again until the id is stable around the reads.
            if self.current.load(Ordering::Acquire) == id {
                let now = shared.nanos_since_epoch();
                return Some(RunningTask {
                    id: TaskId::from_raw(id),
                    name,
                    thread: self.thread_name.clone(),
                    running_for: Duration::from_nanos(now.saturating_sub(started)),
                    blocked: WorkerSlot::blocked(wait, now),
                    over_limit: None,
                });
            }
        }
        None
    }
}

/// Ends a slot's record of a task even if bookkeeping unwinds.
///
/// A task the worker took from the queue starts from idle, so ending it
/// just marks the slot idle again; only a task run inline by a joiner (see
/// `TaskHandle::join`) saves and restores what the slot showed.
pub(crate) struct SlotGuard<'a> {
    slot: &'a WorkerSlot,
    /// `None` for a task taken from the queue: back to idle at the end.
    outer: Option<Previous>,
}

impl<'a> SlotGuard<'a> {
    #[inline]
    pub(crate) fn enter(
        slot: &'a WorkerSlot,
        id: TaskId,
        name: Option<&Arc<str>>,
        at: Site,
    ) -> Self {
        let outer = match at.nested {
            false => {
                slot.begin_top(id, name, at.started);
                None
            }
            true => Some(slot.begin(id, name, at.started)),
        };
        SlotGuard { slot, outer }
    }
}

impl Drop for SlotGuard<'_> {
    fn drop(&mut self) {
        match self.outer.take() {
            None => self.slot.end_top(),
            Some(outer) => self.slot.end(outer),
        }
    }
}

/// Marks a slot idle again at the end of a task taken from the queue, also
/// if bookkeeping unwinds: `SlotGuard` for a task that is never nested.
#[must_use = "the slot is marked idle when this is dropped"]
pub(crate) struct TopGuard<'a>(pub(crate) &'a WorkerSlot);

impl Drop for TopGuard<'_> {
    #[inline]
    fn drop(&mut self) {
        self.0.end_top();
    }
}
