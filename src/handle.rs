//! [`TaskHandle`]: the result of a submitted task, and the cell it shares
//! with the queue.
//!
//! The cell holds the closure until someone claims it, then the result. The
//! claim is one read-modify-write of the cell's flags, so exactly one party
//! runs or cancels the task: a worker that reaches it in the queue, a joiner that
//! helps (see [`TaskHandle::join`]), [`TaskHandle::cancel`], or the
//! [`PendingTask`](crate::PendingTask) that `shutdown_now` handed back.
//!
//! What a user must know (join helps, cancel's two outcomes, a dropped
//! handle's panic goes to the panic handler) is on [`TaskHandle`], where it
//! renders.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[cfg(not(loom))]
use crate::error::Interrupted;
use crate::error::TaskError;
use crate::running::{BlockedOn, Blocking};
use crate::runtime::Shared;
use crate::runtime::cell::{CancelOutcome, HandleOps, IfRunning};
use crate::runtime::run;
use crate::runtime::worker;
use crate::state::deadline_after;
#[cfg(not(loom))]
use crate::stop::StopToken;
use crate::task::TaskId;

/// The pending result of a task given to [`ThreadPool::submit`] (or any
/// other `submit`: batches, named tasks, groups, [`Job`](crate::Job)s).
///
/// [`join`](Self::join) waits for the value; [`cancel`](Self::cancel)
/// keeps a queued task from ever starting, or asks a running one to stop.
/// Every handle resolves: if its task never starts (cancelled, or handed
/// back by `shutdown_now` and then dropped), `join` returns
/// [`TaskError::Cancelled`] rather than waiting forever.
///
/// # Drop
///
/// Dropping a handle detaches the task: it still runs. If it then panics,
/// the panic goes to the pool's
/// [`panic_handler`](crate::Builder::panic_handler) instead, so a panic is
/// never silently lost.
///
/// # Examples
///
/// ```
/// use drainpool::{TaskError, ThreadPool};
///
/// let pool = ThreadPool::new(2).unwrap();
/// let ok = pool.submit(|| "done").unwrap();
/// let boom = pool.submit(|| -> u32 { panic!("boom") }).unwrap();
/// assert_eq!(ok.join().unwrap(), "done");
/// match boom.join() {
///     Err(TaskError::Panicked(_)) => {}
///     other => panic!("expected a panic, got {other:?}"),
/// }
/// ```
///
/// [`ThreadPool::submit`]: crate::ThreadPool::submit
pub struct TaskHandle<T> {
    cell: Arc<dyn HandleOps<T>>,
    shared: Arc<Shared>,
    joined: bool,
    /// Runs the queued task on the calling worker (a joiner's help). Made
    /// where `T: 'static` is known, so the handle's methods need no such
    /// bound: a cell that runs in a worker's frame must be `'static`, and
    /// only a scoped task's is not (which has a `ScopedHandle`).
    run_here: fn(&Arc<dyn HandleOps<T>>),
}

impl<T: 'static> TaskHandle<T> {
    pub(crate) fn new(cell: Arc<dyn HandleOps<T>>, shared: Arc<Shared>) -> Self {
        TaskHandle {
            cell,
            shared,
            joined: false,
            run_here: |cell| run::run_inline(&cell.clone().into_cell_task()),
        }
    }
}

impl<T> TaskHandle<T> {
    /// Waits for the task to end and returns its value.
    ///
    /// Called from a worker of the same pool while the task is still queued,
    /// the joiner takes the task out of the queue and runs it itself, so a
    /// task that joins another never deadlocks the pool. Called from a
    /// worker of *another* pool, it runs that worker's own pool's queued
    /// tasks while it waits (as rayon does), so two pools whose tasks wait
    /// for each other's cannot deadlock; it then returns once the task it
    /// runs when the awaited one ends has ended too.
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
        if let Some(result) = Arc::get_mut(&mut self.cell).and_then(|cell| cell.take_unshared()) {
            self.joined = true;
            return result;
        }
        if run::is_running(self.cell.header()) {
            panic!(
                "task {}: join called from inside the task itself, which would wait for itself \
                 forever",
                self.id()
            );
        }
        // Recorded for the whole wait, the help included: an inline run
        // moves it aside and back (see `running.rs`).
        let _blocked = Blocking::enter(BlockedOn::Task(self.id()));
        self.help(&|| false);
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
    ///
    /// # Examples
    ///
    /// ```
    /// use drainpool::crossbeam_channel::bounded;
    /// use drainpool::ThreadPool;
    /// use std::time::Duration;
    ///
    /// let pool = ThreadPool::new(1).unwrap();
    /// let (release, released) = bounded::<()>(0);
    /// let handle = pool.submit(move || released.recv().unwrap()).unwrap();
    /// assert!(!handle.wait_timeout(Duration::ZERO)); // a poll: still waiting
    /// release.send(()).unwrap();
    /// assert!(handle.wait_timeout(Duration::from_secs(10)));
    /// handle.join().unwrap(); // returns at once now
    /// ```
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        if run::is_running(self.cell.header()) {
            log_warn!(
                "task {}: wait_timeout called from inside the task itself; returning false \
                 instead of waiting for itself",
                self.id()
            );
            return false;
        }
        let deadline = deadline_after(timeout);
        if timeout.is_zero() {
            return self.cell.wait(deadline); // a poll, not a wait
        }
        let _blocked = Blocking::enter(BlockedOn::Task(self.id()));
        self.help(&|| deadline.is_some_and(|d| Instant::now() >= d));
        self.cell.wait(deadline)
    }

    /// True once the task has ended (completed, panicked or cancelled):
    /// [`join`](Self::join) then returns without waiting. Never blocks.
    ///
    /// # Examples
    ///
    /// ```
    /// use drainpool::ThreadPool;
    /// use std::time::Duration;
    ///
    /// let pool = ThreadPool::new(1).unwrap();
    /// let handle = pool.submit(|| 1).unwrap();
    /// assert!(handle.wait_timeout(Duration::from_secs(10)));
    /// assert!(handle.is_finished());
    /// assert_eq!(handle.join().unwrap(), 1);
    /// ```
    pub fn is_finished(&self) -> bool {
        self.cell.is_finished()
    }

    /// Cancels the task if it is still queued: returns true, and the task
    /// never starts (its queue slot is skipped, its closure dropped now,
    /// and [`join`](Self::join) returns `Err(TaskError::Cancelled)`).
    ///
    /// If the task is already running, raises its stop token (see
    /// [`StopToken::current`](crate::StopToken::current)) and returns false;
    /// if it has ended, returns false. A running task is never killed: it
    /// stops only if it looks at its token, and then it ends however it
    /// returns (its value, or the panic it raised).
    ///
    /// # Examples
    ///
    /// ```
    /// use drainpool::crossbeam_channel::bounded;
    /// use drainpool::{StopToken, ThreadPool};
    /// use std::time::Duration;
    ///
    /// let pool = ThreadPool::new(1).unwrap();
    /// let (started_tx, started) = bounded(1);
    /// let running = pool
    ///     .submit(move || {
    ///         let stop = StopToken::current();
    ///         started_tx.send(()).unwrap();
    ///         stop.sleep(Duration::MAX).is_err() // true once asked to stop
    ///     })
    ///     .unwrap();
    /// started.recv().unwrap(); // the only worker is busy
    /// let queued = pool.submit(|| "never runs").unwrap();
    ///
    /// assert!(queued.cancel()); // still queued: it will never start
    /// assert!(queued.join().unwrap_err().is_cancelled());
    ///
    /// assert!(!running.cancel()); // already running: asked to stop instead
    /// assert!(running.join().unwrap());
    /// ```
    pub fn cancel(&self) -> bool {
        matches!(
            run::cancel(&self.shared, &*self.cell, IfRunning::Stop),
            CancelOutcome::Cancelled(_)
        )
    }

    /// The task's id: the one [`ThreadPool::running_tasks`], panic reports
    /// and [`PendingTask::id`](crate::PendingTask::id) give for this task.
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = drainpool::ThreadPool::new(1).unwrap();
    /// let a = pool.submit(|| ()).unwrap();
    /// let b = pool.submit(|| ()).unwrap();
    /// assert_ne!(a.id(), b.id());
    /// println!("waiting for task {}", a.id()); // "waiting for task #1025"
    /// ```
    ///
    /// [`ThreadPool::running_tasks`]: crate::ThreadPool::running_tasks
    pub fn id(&self) -> TaskId {
        self.cell.header().id
    }

    /// The task's name, if it was given one with
    /// [`TaskBuilder::name`](crate::TaskBuilder::name).
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = drainpool::ThreadPool::new(1).unwrap();
    /// let named = pool.task().name("reindex").submit(|| ()).unwrap();
    /// let plain = pool.submit(|| ()).unwrap();
    /// assert_eq!(named.name(), Some("reindex"));
    /// assert_eq!(plain.name(), None);
    /// ```
    pub fn name(&self) -> Option<&str> {
        self.cell.header().name().map(|name| &**name)
    }

    /// Waits for the end, or until `token` fires; see [`StopToken::wait_task`].
    #[cfg(not(loom))]
    fn wait_or_stop(&self, token: &StopToken) -> Result<(), Interrupted> {
        if run::is_running(self.cell.header()) {
            panic!(
                "task {}: wait_task called from inside the task itself, which can only end \
                 once it stops waiting",
                self.id()
            );
        }
        token.check()?;
        let _blocked = Blocking::enter(BlockedOn::Task(self.id()));
        self.help(&|| token.is_stop_requested());
        self.cell.wait_or_stop(token)
    }

    /// Before a wait: on a worker of the task's pool, runs the task here
    /// if it is still queued (waiting could wait for this very worker); on
    /// a worker of another pool, runs that pool's queued work until the
    /// task ends or `give_up` says so (see `help_own_pool_until`: two pools
    /// whose tasks wait for each other's cannot deadlock).
    fn help(&self, give_up: &dyn Fn() -> bool) {
        if run::is_worker_of(self.shared.id) {
            if !self.cell.header().is_claimed() {
                (self.run_here)(&self.cell);
            }
        } else if run::is_worker_of_another(self.shared.id) {
            worker::help_own_pool_until(&|| self.cell.is_finished() || give_up());
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
                .report_panic(header.id, header.name().cloned(), None, payload);
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

#[cfg(not(loom))]
impl StopToken {
    /// Waits until `task` has ended, or until this token fires, whichever
    /// comes first: `Ok(())` once the task has ended (its
    /// [`join`](TaskHandle::join) then returns at once), `Err(Interrupted)`
    /// if a stop was requested before or during the wait.
    ///
    /// The interruptible form of `join`, for a task that waits for another
    /// task's result and must still hear its own stop (as Java's
    /// `Future.get` hears an interrupt). Called from a worker of the task's
    /// own pool while the task is still queued, it runs the task inline
    /// first, as `join` does, so a one-thread pool cannot deadlock on it.
    ///
    /// # Errors
    ///
    /// [`Interrupted`] if a stop was requested before the task ended.
    ///
    /// # Panics
    ///
    /// Called from inside `task` itself, which cannot end while it waits.
    ///
    /// # Examples
    ///
    /// ```
    /// use drainpool::crossbeam_channel::bounded;
    /// use drainpool::{Interrupted, StopToken, ThreadPool};
    ///
    /// let pool = ThreadPool::new(2).unwrap();
    /// let (release, released) = bounded::<()>(0);
    /// let (started_tx, started) = bounded(2);
    /// // A task whose result another task waits for, and that takes long.
    /// let slow = pool
    ///     .submit({
    ///         let started_tx = started_tx.clone();
    ///         move || {
    ///             started_tx.send(()).unwrap();
    ///             released.recv().unwrap();
    ///         }
    ///     })
    ///     .unwrap();
    /// // Running before the waiter comes: a waiter that found it still
    /// // queued would run it inline, and then wait in its `recv`.
    /// started.recv().unwrap();
    /// let waiter = pool
    ///     .submit(move || {
    ///         started_tx.send(()).unwrap();
    ///         StopToken::current().wait_task(&slow)?; // the waiter's own stop wakes it
    ///         slow.join().map_err(|_| Interrupted)
    ///     })
    ///     .unwrap();
    /// started.recv().unwrap(); // both running
    /// assert!(!waiter.cancel()); // running: raises the waiter's stop token
    /// assert_eq!(waiter.join().unwrap(), Err(Interrupted));
    /// release.send(()).unwrap(); // the slow task was never disturbed
    /// ```
    pub fn wait_task<T>(&self, task: &TaskHandle<T>) -> Result<(), Interrupted> {
        task.wait_or_stop(self)
    }
}
