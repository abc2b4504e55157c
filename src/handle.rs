//! [`TaskHandle`]: the result of a submitted task, and the cell it shares
//! with the queue.
//!
//! The cell holds the closure until someone claims it, then the result. The
//! claim is a state change under the cell's lock, so exactly one party runs
//! or cancels the task: a worker that reaches it in the queue, a joiner that
//! helps (see [`TaskHandle::join`]), [`TaskHandle::cancel`], or the
//! [`PendingTask`](crate::PendingTask) that `shutdown_now` handed back.
//!
//! ```
//! use drainpool::{TaskError, ThreadPool};
//!
//! let pool = ThreadPool::new(2).unwrap();
//! let ok = pool.submit(|| "done").unwrap();
//! let boom = pool.submit(|| -> u32 { panic!("boom") }).unwrap();
//! assert_eq!(ok.join().unwrap(), "done");
//! match boom.join() {
//!     Err(TaskError::Panicked(_)) => {}
//!     other => panic!("expected a panic, got {other:?}"),
//! }
//! ```

use std::any::{Any, TypeId};
use std::fmt;
use std::marker::PhantomData;
use std::mem;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::TaskError;
use crate::group::GroupInner;
use crate::runtime::Shared;
use crate::runtime::worker;
use crate::state::deadline_after;
use crate::stop::StopState;
use crate::sync::{AtomicBool, Condvar, Mutex, Ordering};
use crate::task::{Call, TaskId};
use crate::unwind;

/// What every cell has, whatever its closure and result types.
///
/// Kept small, since every queued task holds one: no pool id (the handle
/// has the pool), and the stop source, rarely made, lives under the slot's
/// lock instead of in a `OnceLock` of its own (112 bytes for the whole
/// `Arc` with a one-word closure and result, down from 128).
pub(crate) struct Header {
    pub(crate) id: TaskId,
    pub(crate) name: Option<Arc<str>>,
    /// Set once the closure has been taken (run or cancelled); lets a worker
    /// skip a dead entry without taking the lock.
    claimed: AtomicBool,
    /// The group it was submitted to, which counts its end wherever it
    /// happens (worker, helping joiner, cancel, `PendingTask`).
    pub(crate) group: Option<Arc<GroupInner>>,
}

impl Header {
    #[inline]
    pub(crate) fn is_claimed(&self) -> bool {
        self.claimed.load(Ordering::Acquire)
    }
}

/// Where a run is counted: the pool, and the worker it runs on.
///
/// A plain struct rather than a callback, so that the cell counts a run's
/// start and end with direct calls (this is on every submitted task's
/// path). The end is counted before the result is published, so that
/// statistics never lag behind a joined handle.
#[derive(Clone, Copy)]
pub(crate) struct Tally<'a> {
    /// The pool whose counts and panic handler the run goes to; `None` only
    /// in the loom models, which count nothing.
    pub(crate) shared: Option<&'a Shared>,
    /// The worker running it; `None` off the pool's threads (a
    /// `PendingTask` run by the program).
    pub(crate) index: Option<usize>,
}

/// Who claims a cell to run it: that decides whether a handed-back task
/// may be run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Runner {
    /// The pool: a worker that took the entry from the queue, or a joiner
    /// helping. It may run a task only while the task is the pool's: never
    /// one `shutdown_now` handed back, which belongs to its `PendingTask`.
    Pool,
    /// The holder of the task's `PendingTask`: it runs only a handed-back
    /// task.
    Holder,
}

/// What a claim to run found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ran {
    /// It ran here (to the end or a panic). `returned`: it had been handed
    /// back by `shutdown_now` first, so the pool counts it as run elsewhere.
    Here { returned: bool },
    /// Someone else had claimed it already.
    Lost,
}

impl Tally<'_> {
    /// The task was claimed to run while still the pool's (not handed
    /// back): its place in a bounded queue is free from now on.
    #[inline]
    fn left_queue(self) {
        if let Some(shared) = self.shared {
            shared.release_room(1);
        }
    }

    #[inline]
    fn ended(self, header: &Header, panicked: bool, returned: bool) {
        if let Some(shared) = self.shared {
            shared.count_end(self.index, panicked, returned);
        }
        if let Some(group) = &header.group {
            group.record_end(panicked, returned);
        }
    }

    /// A panic with no handle left to tell: to the panic handler (already
    /// counted by `ended`).
    #[cold]
    fn orphan(self, header: &Header, payload: Box<dyn Any + Send + 'static>) {
        match self.shared {
            Some(shared) => {
                shared.report_panic(header.id, header.name.clone(), self.index, payload);
            }
            None => unwind::drop_quietly(payload),
        }
    }
}

/// What `cancel` found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CancelOutcome {
    /// It was queued; it will never run now. `returned`: it had been
    /// handed back by `shutdown_now` first.
    Cancelled { returned: bool },
    /// It is running; its stop flag was raised.
    Running,
    /// It had already ended.
    Finished,
}

/// A cell as the queue and the workers see it.
pub(crate) trait SharedTask: Send + Sync {
    fn header(&self) -> &Header;
    /// The task's own stop source, made on first use.
    fn stop_state(&self) -> Arc<StopState>;
    /// Claims and runs the task for `runner`, counting it in `tally`;
    /// `Ran::Lost` if it was claimed already or is not `runner`'s to run.
    fn run(&self, tally: Tally<'_>, runner: Runner) -> Ran;
    /// Claims the task and drops its closure, resolving the handle as
    /// cancelled. If it is running, raises its stop flag when `stop_running`
    /// (a handle's cancel); the queue and `PendingTask` pass false, since the
    /// run they see may be a joiner's, which they must not disturb.
    fn cancel(&self, stop_running: bool) -> CancelOutcome;
    /// Marks a queued task as handed back by `shutdown_now`; false if it was
    /// claimed already (then it must not be handed back).
    fn hand_back(&self) -> bool;
    /// Takes the queued callable back out if it is of type `want` (a job
    /// the program wants as a value again); its handle resolves as
    /// cancelled. `None` if it is of another type or was claimed already.
    fn take_back(&self, want: TypeId) -> Option<Box<dyn Any + Send>>;
}

/// A cell as its handle sees it.
pub(crate) trait HandleOps<T>: SharedTask {
    fn wait(&self, deadline: Option<Instant>) -> bool;
    fn is_finished(&self) -> bool;
    /// Waits for the end and takes the result, under one lock.
    fn join(&self) -> Result<T, TaskError>;
    /// Takes the result without the lock, given the handle's reference is
    /// the only one left; `None` if there is no result (then `join`).
    fn take_unshared(&mut self) -> Option<Result<T, TaskError>>;
    /// The handle is going away unjoined; returns a panic nobody saw.
    fn detach(&self) -> Option<Box<dyn Any + Send + 'static>>;
}

enum Stage<F, T> {
    Queued(F),
    Running,
    Done(Result<T, TaskError>),
    Taken,
}

struct Slot<F, T> {
    stage: Stage<F, T>,
    /// The task's own stop source, made on first use (by
    /// `StopToken::current` inside the task, or a cancel that finds it
    /// running). Kept after the end, so a token handed out stays the one.
    stop: Option<Arc<StopState>>,
    /// False once the handle is dropped (or never given out).
    handle_alive: bool,
    /// Handed back by `shutdown_now`; decided under the lock, so a cancel or
    /// run racing with the hand-back counts it in exactly one place.
    returned: bool,
}

pub(crate) struct Cell<F, T> {
    header: Header,
    slot: Mutex<Slot<F, T>>,
    done: Condvar,
}

impl<F, T> Cell<F, T>
where
    F: Call<Output = T>,
    T: Send + 'static,
{
    pub(crate) fn new(name: Option<Arc<str>>, f: F, group: Option<Arc<GroupInner>>) -> Arc<Self> {
        Arc::new(Cell {
            header: Header {
                id: TaskId::next(),
                name,
                claimed: AtomicBool::new(false),
                group,
            },
            slot: Mutex::new(Slot {
                stage: Stage::Queued(f),
                stop: None,
                handle_alive: true,
                returned: false,
            }),
            done: Condvar::new(),
        })
    }

    fn publish(&self, slot: &mut Slot<F, T>, result: Result<T, TaskError>) {
        slot.stage = Stage::Done(result);
        self.done.notify_all();
    }
}

impl<F, T> SharedTask for Cell<F, T>
where
    F: Call<Output = T>,
    T: Send + 'static,
{
    fn header(&self) -> &Header {
        &self.header
    }

    fn stop_state(&self) -> Arc<StopState> {
        self.slot
            .lock()
            .stop
            .get_or_insert_with(StopState::new)
            .clone()
    }

    fn run(&self, tally: Tally<'_>, runner: Runner) -> Ran {
        let (f, returned) = {
            let mut slot = self.slot.lock();
            // A handed-back task is its holder's alone; any other is the
            // pool's alone (never both, never neither).
            if slot.returned != (runner == Runner::Holder) {
                return Ran::Lost;
            }
            match mem::replace(&mut slot.stage, Stage::Running) {
                Stage::Queued(f) => {
                    // Under the lock, so that whoever sees `claimed` false
                    // and then takes the lock finds the stage still Queued.
                    self.header.claimed.store(true, Ordering::Release);
                    (f, slot.returned)
                }
                other => {
                    slot.stage = other;
                    return Ran::Lost;
                }
            }
        };
        if !returned {
            tally.left_queue();
        }
        if let Some(group) = &self.header.group {
            group.task_started();
        }
        let result = catch_unwind(AssertUnwindSafe(move || f.call())).map_err(TaskError::Panicked);
        tally.ended(&self.header, result.is_err(), returned);
        let mut slot = self.slot.lock();
        if slot.handle_alive {
            self.publish(&mut slot, result);
        } else {
            slot.stage = Stage::Taken;
            drop(slot);
            match result {
                // No one will read the value: drop it here, quietly (its
                // Drop is user code, and this may be the program's thread
                // running a PendingTask).
                Ok(value) => unwind::drop_quietly(value),
                Err(TaskError::Panicked(payload)) => tally.orphan(&self.header, payload),
                Err(TaskError::Cancelled) => {}
            }
        }
        Ran::Here { returned }
    }

    fn cancel(&self, stop_running: bool) -> CancelOutcome {
        let mut slot = self.slot.lock();
        match &slot.stage {
            Stage::Queued(_) => {
                self.header.claimed.store(true, Ordering::Release);
                let Stage::Queued(f) = mem::replace(&mut slot.stage, Stage::Taken) else {
                    unreachable!()
                };
                if slot.handle_alive {
                    self.publish(&mut slot, Err(TaskError::Cancelled));
                }
                let returned = slot.returned;
                drop(slot);
                // The captures drop outside our lock, and a panicking Drop
                // among them must not skip the caller's bookkeeping.
                unwind::drop_quietly(f);
                CancelOutcome::Cancelled { returned }
            }
            Stage::Running => {
                if stop_running {
                    let stop = slot.stop.get_or_insert_with(StopState::new).clone();
                    drop(slot);
                    // Callbacks are user code: not under our lock.
                    stop.request();
                }
                CancelOutcome::Running
            }
            Stage::Done(_) | Stage::Taken => CancelOutcome::Finished,
        }
    }

    fn take_back(&self, want: TypeId) -> Option<Box<dyn Any + Send>> {
        if want != TypeId::of::<F>() {
            return None;
        }
        let mut slot = self.slot.lock();
        if !matches!(slot.stage, Stage::Queued(_)) {
            return None;
        }
        self.header.claimed.store(true, Ordering::Release);
        let Stage::Queued(f) = mem::replace(&mut slot.stage, Stage::Taken) else {
            unreachable!()
        };
        if slot.handle_alive {
            self.publish(&mut slot, Err(TaskError::Cancelled));
        }
        Some(Box::new(f))
    }

    fn hand_back(&self) -> bool {
        let mut slot = self.slot.lock();
        if matches!(slot.stage, Stage::Queued(_)) {
            slot.returned = true;
            true
        } else {
            false
        }
    }
}

impl<F, T> HandleOps<T> for Cell<F, T>
where
    F: Call<Output = T>,
    T: Send + 'static,
{
    fn wait(&self, deadline: Option<Instant>) -> bool {
        let mut slot = self.slot.lock();
        // No lost wake-up: results are published and notified under `slot`'s
        // lock, and we test the stage under it.
        loop {
            if matches!(slot.stage, Stage::Done(_) | Stage::Taken) {
                return true;
            }
            match deadline {
                None => self.done.wait(&mut slot),
                Some(d) => {
                    if self.done.wait_until(&mut slot, d).timed_out() {
                        return matches!(slot.stage, Stage::Done(_) | Stage::Taken);
                    }
                }
            }
        }
    }

    fn is_finished(&self) -> bool {
        matches!(self.slot.lock().stage, Stage::Done(_) | Stage::Taken)
    }

    fn join(&self) -> Result<T, TaskError> {
        let mut slot = self.slot.lock();
        // No lost wake-up: as in `wait`, the stage is tested under the lock
        // the result is published and notified under. A result already
        // there (the common case for a joiner that submitted many tasks
        // first) costs this one lock and no condvar.
        while !matches!(slot.stage, Stage::Done(_) | Stage::Taken) {
            self.done.wait(&mut slot);
        }
        slot.handle_alive = false;
        match mem::replace(&mut slot.stage, Stage::Taken) {
            Stage::Done(result) => result,
            _ => unreachable!("tested under the same lock"),
        }
    }

    fn take_unshared(&mut self) -> Option<Result<T, TaskError>> {
        let slot = self.slot.get_mut();
        match mem::replace(&mut slot.stage, Stage::Taken) {
            Stage::Done(result) => {
                slot.handle_alive = false;
                Some(result)
            }
            other => {
                slot.stage = other;
                None
            }
        }
    }

    fn detach(&self) -> Option<Box<dyn Any + Send + 'static>> {
        let mut slot = self.slot.lock();
        slot.handle_alive = false;
        match mem::replace(&mut slot.stage, Stage::Taken) {
            Stage::Done(Err(TaskError::Panicked(payload))) => Some(payload),
            Stage::Done(Ok(value)) => {
                drop(slot);
                // A result nobody will read: its Drop (user code) must not
                // unwind into whoever dropped the handle.
                unwind::drop_quietly(value);
                None
            }
            other => {
                slot.stage = other;
                None
            }
        }
    }
}

/// Counts a submitted task that will never start, in the pool and in its
/// group.
pub(crate) fn count_cancelled(shared: &Shared, header: &Header, returned: bool) {
    shared.count_cancelled(returned);
    if let Some(group) = &header.group {
        group.record_cancelled(returned);
    }
}

/// A cell as it sits in the queue. Dropping an entry whose cell was never
/// claimed (the queue itself being dropped) resolves the handle as
/// cancelled, so no handle waits forever.
pub(crate) struct SharedEntry(pub(crate) Arc<dyn SharedTask>);

impl Drop for SharedEntry {
    fn drop(&mut self) {
        if !self.0.header().is_claimed() {
            self.0.cancel(false);
        }
    }
}

/// The pending result of a task given to [`ThreadPool::submit`].
///
/// Dropping a handle detaches the task: it still runs. If it then panics,
/// the panic goes to the pool's
/// [`panic_handler`](crate::Builder::panic_handler) instead, so a panic is
/// never silently lost.
///
/// [`ThreadPool::submit`]: crate::ThreadPool::submit
pub struct TaskHandle<T> {
    cell: Arc<dyn HandleOps<T>>,
    shared: Arc<Shared>,
    joined: bool,
    _result: PhantomData<fn() -> T>,
}

impl<T> TaskHandle<T> {
    pub(crate) fn new(cell: Arc<dyn HandleOps<T>>, shared: Arc<Shared>) -> Self {
        TaskHandle {
            cell,
            shared,
            joined: false,
            _result: PhantomData,
        }
    }

    /// Waits for the task to end and returns its value.
    ///
    /// Called from a worker of the same pool while the task is still queued,
    /// the joiner takes the task out of the queue and runs it itself, so a
    /// task that joins another never deadlocks the pool.
    ///
    /// # Errors
    ///
    /// [`TaskError::Panicked`] with the payload if the task panicked;
    /// [`TaskError::Cancelled`] if it was cancelled before it started.
    ///
    /// # Panics
    ///
    /// If called from inside the task itself (a task that got hold of its
    /// own handle): it would wait for itself forever.
    ///
    /// # Examples
    ///
    /// ```
    /// use drainpool::ThreadPool;
    ///
    /// let pool = ThreadPool::new(1).unwrap();
    /// let outer = {
    ///     let inner = pool.submit(|| 20).unwrap();
    ///     // One worker: `inner` is queued behind `outer`; joining helps.
    ///     pool.submit(move || inner.join().unwrap() + 22).unwrap()
    /// };
    /// assert_eq!(outer.join().unwrap(), 42);
    /// ```
    pub fn join(mut self) -> Result<T, TaskError> {
        // Only the handle holds the cell: its queue entry is gone, and so is
        // every runner (each holds a reference while it runs), so the task
        // has ended. `get_mut`'s Acquire check of the count pairs with the
        // Release decrements of those references, after the result was
        // published: it can be read without the lock, one atomic operation
        // instead of two on the joiner's path.
        if let Some(cell) = Arc::get_mut(&mut self.cell)
            && let Some(result) = cell.take_unshared()
        {
            self.joined = true;
            return result;
        }
        if worker::is_running(self.cell.header()) {
            panic!(
                "task {}: join called from inside the task itself, which would wait for itself \
                 forever",
                self.id()
            );
        }
        self.help();
        // Only now: should our own bookkeeping unwind out of `help`, the
        // drop still detaches the handle (a later panic gets reported).
        self.joined = true;
        self.cell.join()
    }

    /// Waits up to `timeout` for the task to end; true if it has.
    /// `Duration::MAX` waits forever; `Duration::ZERO` polls. Helps like
    /// [`join`](Self::join) when called from a worker of the same pool
    /// (with a timeout above zero).
    ///
    /// Called from inside the task itself, it returns false at once and
    /// logs a warning: the task cannot end while it waits.
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        if worker::is_running(self.cell.header()) {
            log::warn!(
                "task {}: wait_timeout called from inside the task itself; returning false \
                 instead of waiting for itself",
                self.id()
            );
            return false;
        }
        if !timeout.is_zero() {
            self.help();
        }
        self.cell.wait(deadline_after(timeout))
    }

    /// True once the task has ended (completed, panicked or cancelled).
    pub fn is_finished(&self) -> bool {
        self.cell.is_finished()
    }

    /// Cancels the task if it has not started: returns true, and the task
    /// will never run (its queue slot is skipped, its closure dropped now,
    /// and [`join`](Self::join) returns `Err(TaskError::Cancelled)`).
    ///
    /// If the task is already running, raises its stop token (see
    /// [`StopToken::current`](crate::StopToken::current)) and returns false;
    /// if it has ended, returns false.
    pub fn cancel(&self) -> bool {
        match self.cell.cancel(true) {
            CancelOutcome::Cancelled { returned } => {
                count_cancelled(&self.shared, self.cell.header(), returned);
                true
            }
            CancelOutcome::Running | CancelOutcome::Finished => false,
        }
    }

    /// The task's id.
    pub fn id(&self) -> TaskId {
        self.cell.header().id
    }

    /// The task's name, if it was given one.
    pub fn name(&self) -> Option<&str> {
        self.cell.header().name.as_deref()
    }

    fn help(&self) {
        let header = self.cell.header();
        if !header.is_claimed() && worker::is_worker_of(self.shared.id) {
            let task: Arc<dyn SharedTask> = self.cell.clone();
            worker::run_inline(&task);
        }
    }
}

impl<T> Drop for TaskHandle<T> {
    #[inline]
    fn drop(&mut self) {
        // The check inline, the rest out of line: most handles were joined.
        if !self.joined {
            self.drop_unjoined();
        }
    }
}

impl<T> TaskHandle<T> {
    /// Lets the task go on alone; a panic it already had, which nobody
    /// will see now, goes to the pool's panic handler.
    #[inline(never)]
    fn drop_unjoined(&mut self) {
        if let Some(payload) = self.cell.detach() {
            let header = self.cell.header();
            self.shared
                .report_panic(header.id, header.name.clone(), None, payload);
        }
    }
}

impl<T> fmt::Debug for TaskHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskHandle")
            .field("id", &self.id())
            .field("name", &self.name())
            .field("finished", &self.is_finished())
            .finish()
    }
}
