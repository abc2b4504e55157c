//! [`ThreadPool`]: intake, the lifecycle calls, and what the pool tells about
//! itself.
//!
//! `ThreadPool` is a thin owner of an `Arc<Shared>`, the state its workers,
//! handles and `PendingTask`s share. Dropping the `ThreadPool` drains and
//! joins; the `Shared` lives on as long as a handle or `PendingTask` needs it.
//!
//! ```
//! use drainpool::{PoolState, ThreadPool};
//! use std::time::Duration;
//!
//! let pool = ThreadPool::new(2).unwrap();
//! let handle = pool.submit(|| 2 + 2).unwrap();
//! pool.shutdown(); // refuse new work, finish the accepted work
//! assert!(pool.execute(|| ()).is_err());
//! assert_eq!(handle.join().unwrap(), 4);
//! assert!(pool.await_termination(Duration::from_secs(10)));
//! assert_eq!(pool.state(), PoolState::Terminated);
//! ```

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::error::Rejected;
use crate::graceful::{self, ShutdownPolicy, ShutdownReport};
use crate::group::TaskGroup;
use crate::handle::TaskHandle;
use crate::runtime::PendingTask;
use crate::runtime::queue::Priority;
use crate::runtime::run;
use crate::runtime::{PoolStats, Shared};
use crate::state::{PoolState, WhenFull, deadline_after};
use crate::task::{Closure, Job, JobCall, RunningTask};
use crate::task_builder::TaskBuilder;

/// A pool of worker threads that stops cleanly.
///
/// Tasks go in with [`execute`](Self::execute) (fire and forget) or
/// [`submit`](Self::submit) (with a [`TaskHandle`]). The pool ends in one of
/// two ways: [`shutdown`](Self::shutdown) refuses new work and lets every
/// accepted task run; [`shutdown_now`](Self::shutdown_now) refuses new work,
/// hands back every task that never started, and raises the stop token of
/// the running ones. [`await_termination`](Self::await_termination) waits for
/// the end.
///
/// # Drop
///
/// Dropping the pool is `shutdown` followed by waiting for termination and
/// joining the threads, like the end of a [`std::thread::scope`]: accepted
/// work is never silently abandoned. A [`Builder::drop_policy`](crate::Builder::drop_policy) bounds that
/// wait with an escalating [`shutdown_gracefully`](Self::shutdown_gracefully).
/// Dropped from one of its own workers, or inside a stop callback (a
/// [`StopToken::on_stop`](crate::StopToken::on_stop) callback, which a task
/// dropping its `StopCallback` may be waiting for), where waiting could
/// deadlock, it only calls `shutdown` and logs a warning; the pool
/// terminates once its tasks end.
///
/// # Examples
///
/// ```
/// use drainpool::ThreadPool;
/// use std::time::Duration;
///
/// let pool = ThreadPool::builder().threads(2).thread_name("crunch").build().unwrap();
/// let handles: Vec<_> = (0..8u64).map(|i| pool.submit(move || i * i).unwrap()).collect();
/// let sum: u64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
/// assert_eq!(sum, 140);
/// pool.shutdown();
/// assert!(pool.await_termination(Duration::from_secs(10)));
/// ```
pub struct ThreadPool {
    shared: Arc<Shared>,
    /// The bound on `Drop`'s wait ([`Builder::drop_policy`]).
    drop_policy: Option<ShutdownPolicy>,
}

impl ThreadPool {
    pub(crate) fn from_shared(
        shared: Arc<Shared>,
        drop_policy: Option<ShutdownPolicy>,
    ) -> ThreadPool {
        ThreadPool {
            shared,
            drop_policy,
        }
    }

    pub(crate) fn shared(&self) -> &Shared {
        &self.shared
    }

    pub(crate) fn shared_arc(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// The number of worker threads the pool was built with.
    pub fn threads(&self) -> usize {
        self.shared.slots.len()
    }

    /// Runs `f` on a worker; fire and forget.
    ///
    /// With a bounded queue ([`Builder::queue_capacity`](crate::Builder::queue_capacity)) this blocks while
    /// the queue is full. If `f` panics, the panic goes to the
    /// [`panic_handler`](crate::Builder::panic_handler) (by default, `log::error!`).
    ///
    /// A closure that captures nothing or a single word (an `Arc`, an index,
    /// a `Box`) is queued without allocating; a larger one is boxed once.
    ///
    /// # Errors
    ///
    /// [`Rejected`] with [`RejectReason::Shutdown`](crate::RejectReason::Shutdown), holding `f`, if the pool
    /// is shutting down, also when shutdown begins while this call waits for
    /// room in a full queue.
    ///
    /// # Examples
    ///
    /// ```
    /// use drainpool::ThreadPool;
    /// use std::sync::mpsc;
    ///
    /// let pool = ThreadPool::new(2).unwrap();
    /// let (tx, rx) = mpsc::channel();
    /// pool.execute(move || tx.send("hello").unwrap()).unwrap();
    /// assert_eq!(rx.recv().unwrap(), "hello");
    /// ```
    pub fn execute<F>(&self, f: F) -> Result<(), Rejected<F>>
    where
        F: FnOnce() + Send + 'static,
    {
        self.shared.execute_unnamed(f, WhenFull::Wait)
    }

    /// Like [`execute`](Self::execute), but never blocks.
    ///
    /// # Errors
    ///
    /// [`Rejected`] holding `f`: [`RejectReason::QueueFull`](crate::RejectReason::QueueFull) if the bounded
    /// queue is full, [`RejectReason::Shutdown`](crate::RejectReason::Shutdown) if the pool is shutting down.
    pub fn try_execute<F>(&self, f: F) -> Result<(), Rejected<F>>
    where
        F: FnOnce() + Send + 'static,
    {
        self.shared.execute_unnamed(f, WhenFull::Refuse)
    }

    /// Runs `f` on a worker and returns a [`TaskHandle`] for its result.
    ///
    /// Blocks like [`execute`](Self::execute) on a full bounded queue.
    /// Dropping the handle detaches the task; it still runs.
    ///
    /// # Errors
    ///
    /// As [`execute`](Self::execute).
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = drainpool::ThreadPool::new(2).unwrap();
    /// let handle = pool.submit(|| "forty-two".len()).unwrap();
    /// assert_eq!(handle.join().unwrap(), 9);
    /// ```
    pub fn submit<F, T>(&self, f: F) -> Result<TaskHandle<T>, Rejected<F>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.shared
            .submit(None, Priority::Normal, Closure(f), WhenFull::Wait)
            .map(|cell| TaskHandle::new(cell, self.shared.clone()))
            .map_err(|rejected| rejected.map(|call| call.0))
    }

    /// Like [`submit`](Self::submit), but never blocks.
    ///
    /// # Errors
    ///
    /// As [`try_execute`](Self::try_execute).
    pub fn try_submit<F, T>(&self, f: F) -> Result<TaskHandle<T>, Rejected<F>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.shared
            .submit(None, Priority::Normal, Closure(f), WhenFull::Refuse)
            .map(|cell| TaskHandle::new(cell, self.shared.clone()))
            .map_err(|rejected| rejected.map(|call| call.0))
    }

    /// Runs every closure of `tasks` on the workers, taken in the order
    /// given: like calling [`execute`](Self::execute) for each, for a
    /// fraction of the cost (the batch passes the pool's intake once).
    ///
    /// All or nothing: either every task is accepted, or none is and they
    /// all come back in the error, in order. With a bounded queue, blocks
    /// until there is room for the whole batch.
    ///
    /// A large batch is queued in chunks of consecutive tasks (up to 128,
    /// and at most a quarter of each worker's share), one queue entry per
    /// chunk: that is what makes a batch cheaper per task than `execute`.
    /// A worker runs the tasks of the chunk it took one after the other,
    /// each as if `execute`d on its own (counted, shown by
    /// [`running_tasks`](Self::running_tasks), its panic reported); an idle
    /// worker joins in on a chunk another one is running. Every task still
    /// counts alone: in a bounded queue's capacity (a task leaves the queue
    /// when it starts), in [`stats`](Self::stats), for
    /// [`wait_idle`](Self::wait_idle); and
    /// [`shutdown_now`](Self::shutdown_now) hands back every task of the
    /// batch that never started, also the rest of a chunk a worker is in
    /// the middle of, in order. One difference: a worker takes the next
    /// queue entry only when its chunk is done, so a
    /// [`Priority::High`] task queued meanwhile
    /// starts once a worker has finished the chunk it is running.
    ///
    /// # Errors
    ///
    /// [`Rejected`] holding every task: [`RejectReason::Shutdown`](crate::RejectReason::Shutdown) as for
    /// `execute`; [`RejectReason::QueueFull`](crate::RejectReason::QueueFull) if the batch is larger than a
    /// bounded queue's capacity (it could never fit).
    ///
    /// # Examples
    ///
    /// ```
    /// use drainpool::ThreadPool;
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// use std::sync::Arc;
    /// use std::time::Duration;
    ///
    /// let pool = ThreadPool::new(2).unwrap();
    /// let done = Arc::new(AtomicUsize::new(0));
    /// let chunks = (0..1000).map(|_| {
    ///     let done = done.clone();
    ///     move || {
    ///         done.fetch_add(1, Ordering::Relaxed);
    ///     }
    /// });
    /// pool.execute_batch(chunks).unwrap();
    /// assert!(pool.wait_idle(Duration::from_secs(10)));
    /// assert_eq!(done.load(Ordering::Relaxed), 1000);
    /// ```
    pub fn execute_batch<I>(&self, tasks: I) -> Result<(), Rejected<Vec<I::Item>>>
    where
        I: IntoIterator,
        I::Item: FnOnce() + Send + 'static,
    {
        self.shared.execute_batch(tasks.into_iter().collect())
    }

    /// Like [`submit`](Self::submit) for each closure of `tasks`, passing
    /// the pool's intake once; returns the handles in the order given.
    /// Queued in chunks like [`execute_batch`](Self::execute_batch); each
    /// handle still stands for its one task (cancel it, join it).
    ///
    /// # Errors
    ///
    /// As [`execute_batch`](Self::execute_batch): all or nothing.
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = drainpool::ThreadPool::new(2).unwrap();
    /// let handles = pool.submit_batch((1..=4u64).map(|i| move || i * i)).unwrap();
    /// let squares: Vec<u64> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    /// assert_eq!(squares, [1, 4, 9, 16]);
    /// ```
    pub fn submit_batch<I, T>(&self, tasks: I) -> Result<Vec<TaskHandle<T>>, Rejected<Vec<I::Item>>>
    where
        I: IntoIterator,
        I::Item: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.shared
            .submit_batch(tasks.into_iter().collect())
            .map(|cells| {
                cells
                    .into_iter()
                    .map(|cell| TaskHandle::new(cell, self.shared.clone()))
                    .collect()
            })
    }

    /// Runs `job` on a worker and returns a [`TaskHandle`] for its output:
    /// like [`submit`](Self::submit), with a [`Job`] value instead of a
    /// closure, which [`PendingTask::into_job`] can give back if the job
    /// never started.
    ///
    /// # Errors
    ///
    /// As [`execute`](Self::execute); the [`Rejected`] holds `job`.
    pub fn submit_job<J: Job>(&self, job: J) -> Result<TaskHandle<J::Output>, Rejected<J>> {
        self.shared
            .submit(None, Priority::Normal, JobCall(job), WhenFull::Wait)
            .map(|cell| TaskHandle::new(cell, self.shared.clone()))
            .map_err(|rejected| rejected.map(|call| call.0))
    }

    /// A new [`TaskGroup`] of this pool: a set of tasks cancelled, paused
    /// and waited for as one (one job split into many tasks).
    pub fn group(&self, name: impl Into<String>) -> TaskGroup {
        TaskGroup::new(self.shared.clone(), name.into())
    }

    /// A [`TaskBuilder`], to give a task a name before submitting it.
    pub fn task(&self) -> TaskBuilder<'_> {
        TaskBuilder::new(&self.shared)
    }

    /// Stops intake and lets every accepted task run: idempotent and
    /// non-blocking. Workers exit once the queue is empty; wait for that
    /// with [`await_termination`](Self::await_termination).
    ///
    /// Submitters blocked on a full bounded queue wake with
    /// [`RejectReason::Shutdown`](crate::RejectReason::Shutdown).
    pub fn shutdown(&self) {
        self.shared.shutdown();
    }

    /// Stops intake, removes every task that never started and returns
    /// them in submission order, and raises the pool-wide stop flag that
    /// running tasks see through [`StopToken::current`]. Does not wait for
    /// running tasks; every call returns with the flag raised.
    ///
    /// Submission order holds across priorities and groups (paused ones
    /// too): the tasks one thread submitted come back in the order it
    /// submitted them, whatever their priority or group; tasks submitted at
    /// the same time from several threads come back in one of the orders
    /// they could have been submitted in. Tasks handed back earlier by a
    /// [`ShutdownHandle::request_shutdown_now`](crate::ShutdownHandle::request_shutdown_now)
    /// and not yet returned come first.
    ///
    /// Each task is returned at most once, whatever the number of concurrent
    /// or repeated calls. A task a worker had already taken off the queue
    /// when the call began runs, with its stop flag raised. Dropping a
    /// returned [`PendingTask`] cancels it.
    ///
    /// [`StopToken::current`]: crate::StopToken::current
    #[must_use = "the returned tasks never started; drop them deliberately to cancel them"]
    pub fn shutdown_now(&self) -> Vec<PendingTask> {
        self.shared.shutdown_now()
    }

    /// Waits up to `timeout` for the pool to terminate; true once it has.
    /// `Duration::MAX` waits forever.
    ///
    /// Called from one of the pool's own workers (where it could never
    /// return true) it returns false at once and logs a warning.
    pub fn await_termination(&self, timeout: Duration) -> bool {
        self.shared.await_termination(timeout)
    }

    /// Waits up to `timeout` until no task is queued or running; true if
    /// that happened. `Duration::MAX` waits forever.
    ///
    /// Called from one of the pool's own workers (whose own task is
    /// running) it returns false at once and logs a warning.
    pub fn wait_idle(&self, timeout: Duration) -> bool {
        if run::is_worker_of(self.shared.id) {
            log::warn!(
                "pool {}: wait_idle called from the pool's own worker; returning false instead of \
                 deadlocking",
                self.shared.id
            );
            return false;
        }
        self.shared.wait_idle(deadline_after(timeout))
    }

    /// Where the pool is in its life.
    pub fn state(&self) -> PoolState {
        self.shared.lifecycle.get()
    }

    /// True once [`shutdown`](Self::shutdown) or
    /// [`shutdown_now`](Self::shutdown_now) was called.
    pub fn is_shutdown(&self) -> bool {
        self.state() >= PoolState::ShuttingDown
    }

    /// True once every worker has exited and `on_terminated` has run.
    pub fn is_terminated(&self) -> bool {
        self.state() == PoolState::Terminated
    }

    /// A snapshot of the pool's counters.
    pub fn stats(&self) -> PoolStats {
        self.shared.stats()
    }

    /// The tasks running now, with how long each has run.
    pub fn running_tasks(&self) -> Vec<RunningTask> {
        self.shared.running_tasks()
    }
}

impl ThreadPool {
    /// Shuts the pool down in escalating steps (see the [module
    /// docs](crate::ShutdownPolicy)): drain for up to `policy.drain()`, then
    /// interrupt for up to `policy.interrupt()`, then log and report what is
    /// stuck. Returns after about `drain + interrupt` at most.
    ///
    /// Called from one of the pool's own workers, where waiting for the pool
    /// cannot work, it calls `shutdown`, logs a warning and returns at once
    /// with `terminated == false`.
    pub fn shutdown_gracefully(&self, policy: ShutdownPolicy) -> ShutdownReport {
        let id = self.shared.id;
        graceful::shutdown_gracefully(&self.shared, policy, &format_args!("pool {id}"))
    }
}

impl Drop for ThreadPool {
    fn drop(&mut self) {
        let stashed = self.shared.stash.lock().take();
        drop(stashed); // never-started tasks nobody can ask for now: cancel
        self.shared.shutdown();
        // The list of groups stays: a `shutdown_now` still to come (the drop
        // policy's, or a `ShutdownHandle`'s) must find every group holding
        // tasks, also one whose token a worker holds right now. A task that
        // captured its own group makes a cycle only while it is queued, and
        // a terminated pool has no queued task.
        if run::is_worker_of(self.shared.id) {
            log::warn!(
                "pool {}: dropped from its own worker; shutting down without waiting",
                self.shared.id
            );
            return;
        }
        if crate::stop::in_stop_callback() {
            log::warn!(
                "pool {}: dropped inside a stop callback; shutting down without waiting (a task \
                 dropping that callback may be waiting for it)",
                self.shared.id
            );
            return;
        }
        match self.drop_policy {
            None => {
                self.shared.lifecycle.wait_terminated(None);
            }
            Some(policy) => {
                let report = self.shutdown_gracefully(policy);
                if !report.terminated {
                    log::error!(
                        "pool {}: dropped without terminating; its threads are left to finish \
                         on their own: {report}",
                        self.shared.id
                    );
                    return;
                }
            }
        }
        let threads = std::mem::take(&mut *self.shared.threads.lock());
        for thread in threads {
            // A worker's own panics are caught; a join error is impossible
            // unless the runtime itself failed. Nothing to hand back then.
            let _ = thread.join();
        }
    }
}

impl fmt::Debug for ThreadPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ThreadPool")
            .field("id", &self.shared.id)
            .field("state", &self.state())
            .field("stats", &self.stats())
            .finish()
    }
}
