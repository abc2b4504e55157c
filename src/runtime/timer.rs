//! Deadlines: the pool's timer thread, which expires a queued task that was
//! not started within its start deadline and raises the stop of a task
//! that runs past its time limit.
//!
//! - **Who pays.** Only a task built with `start_within` or `time_limit`:
//!   its call is wrapped in [`Timed`], and the pool's timer thread is
//!   started by the first such task. Every other call's `start_by` is a
//!   constant `None`, so the claim's check folds away.
//! - **Start deadline.** The submit registers a weak reference to the
//!   task's cell. When the deadline passes, the timer claims the cell if it
//!   is still queued and the pool's (`CellTask::expire`), which drops the
//!   closure at once, whether or not any worker is free, counts the end,
//!   and only then resolves the handle (so a joiner that sees `Expired`
//!   sees the rest done). A worker that
//!   claims the task late (the timer runs behind, or has not got to it yet)
//!   expires it instead of running it (`Cell::run` reads `Call::start_by`).
//!   Either way the claim decides, so it expires exactly once, and
//!   [`Shared::task_expired`] counts and logs it. A handed-back task is its
//!   holder's: the pool's deadline no longer binds it.
//! - **Time limit.** [`Timed::call`] registers a [`RunLimit`] with the
//!   timer before the closure runs and disarms it when the closure returns
//!   or unwinds. When it fires first, the task's own stop is raised (as its
//!   handle's `cancel` would) and the task is listed as over its limit
//!   until it ends. A three-state word decides between the two sides, and
//!   the `over` lock orders the listing against the disarm (see
//!   [`RunLimit`]).
//! - **Lifetime.** The timer thread holds the timer and a weak reference to
//!   the pool; it stops when the pool's state is dropped (`Shared`'s
//!   `Drop`), since a handed-back task may still run, with its time limit,
//!   after the pool terminated.
//!
//! Lock order: `Timer::due`, then nothing (the timer fires outside it);
//! `Timer::over`, then nothing. Neither is held while user code runs: a
//! closure's drop and a stop's callbacks run outside both.

use std::cmp::Ordering as CmpOrdering;
use std::collections::{BinaryHeap, HashMap};
use std::io;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Weak};
use std::thread;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex, MutexGuard};

use crate::runtime::Shared;
use crate::runtime::cell::{CellHeader, CellTask, Tally};
use crate::runtime::run;
use crate::stop::StopState;
use crate::task::{Call, TaskId};

/// A pool's timer (see the module docs).
pub(crate) struct Timer {
    due: Mutex<Due>,
    /// Wakes the timer thread: a new earliest deadline, or the stop.
    ring: Condvar,
    /// Tasks running past their time limit, with that limit.
    over: Mutex<HashMap<TaskId, Duration>>,
}

struct Due {
    heap: BinaryHeap<Deadline>,
    /// Breaks ties between equal instants, first registered first.
    next_seq: u64,
    stopped: bool,
}

struct Deadline {
    at: Instant,
    seq: u64,
    what: What,
}

enum What {
    /// Expire the task if it is still queued.
    Start(Weak<dyn CellTask>),
    /// Raise the running task's stop.
    Run(Arc<RunLimit>),
}

// A min-heap by (at, seq): `BinaryHeap` is a max-heap, so the order is
// reversed.
impl Ord for Deadline {
    fn cmp(&self, other: &Self) -> CmpOrdering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

impl PartialOrd for Deadline {
    fn partial_cmp(&self, other: &Self) -> Option<CmpOrdering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Deadline {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == CmpOrdering::Equal
    }
}

impl Eq for Deadline {}

impl Timer {
    /// Makes the timer of `shared` and starts its thread.
    pub(crate) fn start(shared: &Arc<Shared>, thread_name: String) -> io::Result<Arc<Timer>> {
        let timer = Arc::new(Timer {
            due: Mutex::new(Due {
                heap: BinaryHeap::new(),
                next_seq: 0,
                stopped: false,
            }),
            ring: Condvar::new(),
            over: Mutex::new(HashMap::new()),
        });
        let for_thread = timer.clone();
        let pool = Arc::downgrade(shared);
        thread::Builder::new()
            .name(thread_name)
            .spawn(move || timer_main(&for_thread, &pool))?;
        Ok(timer)
    }

    /// Stops the timer thread; what is still due never fires.
    pub(crate) fn stop(&self) {
        self.due.lock().stopped = true;
        self.ring.notify_one();
    }

    fn add(&self, at: Instant, what: What) {
        let mut due = self.due.lock();
        let seq = due.next_seq;
        due.next_seq += 1;
        let earliest = due.heap.peek().is_none_or(|first| at < first.at);
        due.heap.push(Deadline { at, seq, what });
        drop(due);
        // No lost wake-up: the thread tests the heap under `due`'s lock,
        // which we held while pushing; it only needs waking if it sleeps
        // until a later instant than this one.
        if earliest {
            self.ring.notify_one();
        }
    }

    /// Expires `task` at `at` if it is still queued then.
    pub(crate) fn expire_at(&self, at: Instant, task: Weak<dyn CellTask>) {
        self.add(at, What::Start(task));
    }

    /// The time limit task `id` is running past, if it is.
    pub(crate) fn over_limit(&self, id: TaskId) -> Option<Duration> {
        let over = self.over.lock();
        if over.is_empty() {
            return None;
        }
        over.get(&id).copied()
    }

    /// The time limit of the task running on this thread; disarmed when
    /// the returned guard drops. `None` off a submitted task (never, for a
    /// `Timed` call, which only a cell runs).
    fn limit_current(&self, limit: Duration) -> Option<LimitGuard<'_>> {
        let task = run::current_task()?;
        let header = task.header();
        let entry = Arc::new(RunLimit {
            id: header.id,
            name: header.name().cloned(),
            limit,
            stop: task.stop_state(),
            state: AtomicU8::new(ARMED),
        });
        self.add(Instant::now() + limit, What::Run(entry.clone()));
        Some(LimitGuard { timer: self, entry })
    }
}

fn timer_main(timer: &Timer, pool: &Weak<Shared>) {
    let mut due = timer.due.lock();
    loop {
        if due.stopped {
            return;
        }
        let now = Instant::now();
        match due.heap.peek().map(|first| first.at) {
            Some(at) if at <= now => {
                let Some(deadline) = due.heap.pop() else {
                    continue;
                };
                // Fired outside the lock: it may drop a closure and raise
                // a stop, both user code.
                MutexGuard::unlocked(&mut due, || fire(timer, pool, deadline.what));
            }
            // No lost wake-up: `add` and `stop` change `due` under its lock
            // and then ring, and we test it under that lock before parking.
            Some(at) => {
                timer.ring.wait_until(&mut due, at);
            }
            None => timer.ring.wait(&mut due),
        }
    }
}

fn fire(timer: &Timer, pool: &Weak<Shared>, what: What) {
    match what {
        What::Start(task) => {
            // Ran and gone already, or the pool is: nothing to expire.
            let (Some(task), Some(shared)) = (task.upgrade(), pool.upgrade()) else {
                return;
            };
            task.expire(Tally {
                shared: Some(&shared),
                index: None,
            });
        }
        What::Run(entry) => entry.fire(timer),
    }
}

const ARMED: u8 = 0;
const FIRED: u8 = 1;
const DISARMED: u8 = 2;

/// A running task's time limit, shared by the timer and the run.
///
/// `state` goes from `ARMED` to exactly one of `FIRED` (the timer won) or
/// `DISARMED` (the run ended first). The timer moves it, and lists the task
/// in `Timer::over`, under the `over` lock; a disarm that finds it `FIRED`
/// takes that lock to unlist it, so it cannot unlist before the listing.
struct RunLimit {
    id: TaskId,
    name: Option<Arc<str>>,
    limit: Duration,
    stop: Arc<StopState>,
    state: AtomicU8,
}

impl RunLimit {
    fn fire(&self, timer: &Timer) {
        {
            let mut over = timer.over.lock();
            // ORDERING: the word is only a decision between two parties;
            // the listing it guards is ordered by the `over` lock.
            if self
                .state
                .compare_exchange(ARMED, FIRED, Ordering::AcqRel, Ordering::Acquire)
                .is_err()
            {
                return;
            }
            over.insert(self.id, self.limit);
        }
        let name = self
            .name
            .as_deref()
            .map(|n| format!(" ({n})"))
            .unwrap_or_default();
        log_warn!(
            "task {}{name}: ran past its time limit of {:?}; its stop token fired",
            self.id,
            self.limit
        );
        // Callbacks are user code: not under our lock.
        self.stop.request();
    }
}

/// Disarms a time limit when the run ends (also on unwind).
struct LimitGuard<'t> {
    timer: &'t Timer,
    entry: Arc<RunLimit>,
}

impl Drop for LimitGuard<'_> {
    fn drop(&mut self) {
        // ORDERING: see `RunLimit`.
        let fired = self
            .entry
            .state
            .compare_exchange(ARMED, DISARMED, Ordering::AcqRel, Ordering::Acquire)
            .is_err();
        if fired {
            self.timer.over.lock().remove(&self.entry.id);
        }
    }
}

/// A call with a start deadline, a time limit, or both (see the module
/// docs).
pub(crate) struct Timed<C> {
    pub(crate) call: C,
    start_by: Option<Instant>,
    limit: Option<(Duration, Arc<Timer>)>,
}

impl<C> Timed<C> {
    pub(crate) fn new(
        call: C,
        start_by: Option<Instant>,
        limit: Option<(Duration, Arc<Timer>)>,
    ) -> Self {
        Timed {
            call,
            start_by,
            limit,
        }
    }
}

impl<C: Call> Call for Timed<C> {
    type Output = C::Output;

    fn call(self) -> C::Output {
        let _limit = self
            .limit
            .as_ref()
            .and_then(|(limit, timer)| timer.limit_current(*limit));
        self.call.call()
    }

    fn job_type() -> Option<std::any::TypeId> {
        C::job_type()
    }

    fn into_any(self) -> Option<Box<dyn std::any::Any + Send>> {
        self.call.into_any()
    }

    #[inline(always)]
    fn start_by(&self) -> Option<Instant> {
        self.start_by
    }
}

impl Shared {
    /// The pool's timer, started by the first task with a deadline; `None`
    /// if its thread could not be started (logged once: a start deadline
    /// is then kept only when a worker reaches the task, a time limit not
    /// at all).
    pub(crate) fn timer(self: &Arc<Self>) -> Option<&Arc<Timer>> {
        self.timer
            .get_or_init(|| {
                let name = format!("{}-timer", self.thread_prefix());
                Timer::start(self, name)
                    .map_err(|e| {
                        log_error!(
                            "pool {}: no timer thread, deadlines are not kept on time: {e}",
                            self.id
                        )
                    })
                    .ok()
            })
            .as_ref()
    }

    /// A queued task was expired by its claim (the timer's, or a worker's
    /// that reached it late): counted, logged, and `wait_idle` woken.
    #[cold]
    pub(crate) fn task_expired(&self, header: &CellHeader) {
        self.ledger.expired(header.group_counts());
        let name = header.name().map(|n| format!(" ({n})")).unwrap_or_default();
        log_warn!(
            "task {}{name}: expired, not started within its start deadline; it will never run",
            header.id
        );
        self.notify_idle_waiters();
    }
}
