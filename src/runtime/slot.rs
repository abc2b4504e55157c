//! A worker's own line (its counters, the task it runs, its clock) and the
//! guards that keep it right when a task unwinds.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;

use crate::runtime::Shared;
use crate::runtime::ledger::WorkerCounts;
use crate::task::{RunningTask, TaskId};

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
    /// Its counts of the tasks it ran (the ledger's to change).
    pub(crate) counts: WorkerCounts,
}

/// A task a slot showed before a nested run: its id, start, and name.
struct Shown(u64, u64, Option<Arc<str>>);

/// What a slot showed before a nested run, restored after it.
pub(crate) struct Previous {
    current: u64,
    started: u64,
    name: Option<Option<Arc<str>>>,
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
                .push(Shown(prev_current, prev_started, prev));
        }
        self.started.store(started, Ordering::Relaxed);
        // ORDERING: Release publishes `started` and `name` to
        // `running_tasks`, which reads `current` with Acquire first.
        self.current.store(id.as_u64(), Ordering::Release);
        Previous {
            current: prev_current,
            started: prev_started,
            name: prev_name,
        }
    }

    /// What the slot shows now, for `end` to put back after runs that
    /// leave the slot idle (a chunk's tasks, run by a worker helping).
    pub(crate) fn save(&self) -> Previous {
        Previous {
            current: self.current.load(Ordering::Relaxed),
            started: self.started.load(Ordering::Relaxed),
            name: Some(self.name.lock().clone()),
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
            .map(|Shown(id, started, name)| RunningTask {
                id: TaskId::from_raw(*id),
                name: name.as_deref().map(str::to_owned),
                thread: self.thread_name.clone(),
                running_for: Duration::from_nanos(now.saturating_sub(*started)),
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
            // A task that ended meanwhile may have left a mix of two tasks'
            // fields; read again until the id is stable around the reads.
            if self.current.load(Ordering::Acquire) == id {
                let now = shared.nanos_since_epoch();
                return Some(RunningTask {
                    id: TaskId::from_raw(id),
                    name,
                    thread: self.thread_name.clone(),
                    running_for: Duration::from_nanos(now.saturating_sub(started)),
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
