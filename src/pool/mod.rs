//! [`ThreadPool`]: intake, the lifecycle calls, and what the pool tells about
//! itself.
//!
//! `ThreadPool` is a thin owner of an `Arc<Shared>`, the state its workers,
//! handles and `PendingTask`s share. Dropping the `ThreadPool` drains and
//! joins; the `Shared` lives on as long as a handle or `PendingTask` needs it.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::error::Rejected;
use crate::graceful::{self, ShutdownPolicy, ShutdownReport};
use crate::group::TaskGroup;
use crate::handle::TaskHandle;
use crate::runtime::PendingTask;
use crate::runtime::Shared;
use crate::runtime::queue::Priority;
use crate::runtime::run;
use crate::state::{PoolState, WhenFull, deadline_after};
use crate::task::{Closure, Job, JobCall};
use crate::task_builder::TaskBuilder;

mod observe;

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
    /// The bound on `Drop`'s wait ([`Builder::drop_policy`](crate::Builder::drop_policy)).
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
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = drainpool::ThreadPool::builder().threads(3).build().unwrap();
    /// assert_eq!(pool.threads(), 3);
    /// ```
    pub fn threads(&self) -> usize {
        self.shared.workers
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
    ///
    /// # Examples
    ///
    /// A bounded queue of one task, full behind a busy worker: the next task
    /// comes back at once, to be run elsewhere or dropped deliberately.
    ///
    /// ```
    /// use drainpool::crossbeam_channel::bounded;
    /// use drainpool::{RejectReason, ThreadPool};
    ///
    /// let pool = ThreadPool::builder().threads(1).queue_capacity(1).build().unwrap();
    /// let (started_tx, started) = bounded(1);
    /// let (release, released) = bounded::<()>(1);
    /// pool.execute(move || {
    ///     started_tx.send(()).unwrap();
    ///     released.recv().unwrap();
    /// })
    /// .unwrap();
    /// started.recv().unwrap(); // running: it no longer takes room in the queue
    /// pool.try_execute(|| ()).unwrap(); // queued: the queue is full now
    ///
    /// let refused = pool.try_execute(|| println!("run me elsewhere")).unwrap_err();
    /// assert_eq!(refused.reason(), RejectReason::QueueFull);
    /// let task = refused.into_inner(); // the closure is ours again
    /// task();
    /// release.send(()).unwrap();
    /// ```
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
    ///
    /// # Examples
    ///
    /// ```
    /// use drainpool::crossbeam_channel::bounded;
    /// use drainpool::{RejectReason, ThreadPool};
    ///
    /// let pool = ThreadPool::builder().threads(1).queue_capacity(1).build().unwrap();
    /// let (started_tx, started) = bounded(1);
    /// let (release, released) = bounded::<()>(1);
    /// pool.execute(move || {
    ///     started_tx.send(()).unwrap();
    ///     released.recv().unwrap();
    /// })
    /// .unwrap();
    /// started.recv().unwrap(); // the only worker is busy
    /// let queued = pool.try_submit(|| 1).unwrap(); // fills the queue
    ///
    /// let answer = match pool.try_submit(|| 6 * 7) {
    ///     Ok(handle) => handle.join().unwrap(),
    ///     Err(full) => {
    ///         assert_eq!(full.reason(), RejectReason::QueueFull);
    ///         full.into_inner()() // run it here instead
    ///     }
    /// };
    /// assert_eq!(answer, 42);
    /// release.send(()).unwrap();
    /// assert_eq!(queued.join().unwrap(), 1);
    /// ```
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
    ///
    /// # Examples
    ///
    /// ```
    /// use drainpool::{Job, ThreadPool};
    ///
    /// struct Checksum(Vec<u8>);
    ///
    /// impl Job for Checksum {
    ///     type Output = u32;
    ///     fn run(self) -> u32 {
    ///         self.0.iter().map(|&b| u32::from(b)).sum()
    ///     }
    /// }
    ///
    /// let pool = ThreadPool::new(2).unwrap();
    /// let handle = pool.submit_job(Checksum(vec![1, 2, 3])).unwrap();
    /// assert_eq!(handle.join().unwrap(), 6);
    /// ```
    pub fn submit_job<J: Job>(&self, job: J) -> Result<TaskHandle<J::Output>, Rejected<J>> {
        self.shared
            .submit(None, Priority::Normal, JobCall(job), WhenFull::Wait)
            .map(|cell| TaskHandle::new(cell, self.shared.clone()))
            .map_err(|rejected| rejected.map(|call| call.0))
    }

    /// A new [`TaskGroup`] of this pool: a set of tasks cancelled, paused
    /// and waited for as one (one job split into many tasks). Each call makes
    /// a new group; the name, which need not be unique, shows in the
    /// group's `Debug` and in the log.
    ///
    /// # Examples
    ///
    /// ```
    /// use drainpool::ThreadPool;
    /// use std::time::Duration;
    ///
    /// let pool = ThreadPool::new(2).unwrap();
    /// let import = pool.group("import");
    /// let parts: Vec<_> = (1..=4u32).map(|i| import.submit(move || i * 10).unwrap()).collect();
    /// assert!(import.wait(Duration::from_secs(10)));
    /// assert_eq!(import.progress().completed, 4);
    /// let total: u32 = parts.into_iter().map(|h| h.join().unwrap()).sum();
    /// assert_eq!(total, 100);
    /// ```
    pub fn group(&self, name: impl Into<String>) -> TaskGroup {
        TaskGroup::new(self.shared.clone(), name.into())
    }

    /// A [`TaskBuilder`], to give a task a name or a [`Priority`] before
    /// submitting it.
    ///
    /// # Examples
    ///
    /// ```
    /// use drainpool::{Priority, ThreadPool};
    ///
    /// let pool = ThreadPool::new(1).unwrap();
    /// let handle = pool
    ///     .task()
    ///     .name("resize cat.png")
    ///     .priority(Priority::High)
    ///     .submit(|| 640)
    ///     .unwrap();
    /// assert_eq!(handle.name(), Some("resize cat.png"));
    /// assert_eq!(handle.join().unwrap(), 640);
    /// ```
    pub fn task(&self) -> TaskBuilder<'_> {
        TaskBuilder::new(&self.shared)
    }

    /// Stops intake and lets every accepted task run: idempotent and
    /// non-blocking. Workers exit once the queue is empty; wait for that
    /// with [`await_termination`](Self::await_termination).
    ///
    /// The pool moves to [`PoolState::ShuttingDown`]. Every task accepted
    /// before the call still runs (the drain), paused groups included: a
    /// shutdown resumes them. Every submission after it is refused with
    /// [`RejectReason::Shutdown`](crate::RejectReason::Shutdown), the task
    /// handed back inside the [`Rejected`]; submitters blocked on a full
    /// bounded queue wake with that refusal too. The last worker to exit
    /// runs [`Builder::on_terminated`](crate::Builder::on_terminated) and the
    /// pool is [`PoolState::Terminated`].
    ///
    /// # Examples
    ///
    /// ```
    /// use drainpool::{PoolState, RejectReason, ThreadPool};
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// use std::sync::Arc;
    /// use std::time::Duration;
    ///
    /// let pool = ThreadPool::new(2).unwrap();
    /// let ran = Arc::new(AtomicUsize::new(0));
    /// for _ in 0..100 {
    ///     let ran = ran.clone();
    ///     pool.execute(move || {
    ///         ran.fetch_add(1, Ordering::Relaxed);
    ///     })
    ///     .unwrap();
    /// }
    /// pool.shutdown(); // refuse new work, finish the accepted work
    /// pool.shutdown(); // idempotent
    /// let refused = pool.execute(|| ()).unwrap_err();
    /// assert_eq!(refused.reason(), RejectReason::Shutdown);
    ///
    /// assert!(pool.await_termination(Duration::from_secs(10)));
    /// assert_eq!(pool.state(), PoolState::Terminated);
    /// assert_eq!(ran.load(Ordering::Relaxed), 100); // the drain ran them all
    /// ```
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
    /// or repeated calls; calls made at once take the queue back one at a
    /// time, and one that meets a `ShutdownHandle`'s request under way
    /// waits for it and returns what it took back. A task a worker had already taken off the queue
    /// when the call began runs, with its stop flag raised. Dropping a
    /// returned [`PendingTask`] cancels it: its handle resolves as
    /// [`TaskError::Cancelled`](crate::TaskError::Cancelled). Run it on the
    /// calling thread with [`PendingTask::run`], or take a [`Job`] value back
    /// with [`PendingTask::into_job`], to lose nothing.
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
    /// let busy = pool
    ///     .submit(move || {
    ///         let stop = StopToken::current();
    ///         started_tx.send(()).unwrap();
    ///         stop.sleep(Duration::MAX).is_err() // woken by the stop request
    ///     })
    ///     .unwrap();
    /// started.recv().unwrap(); // the only worker is busy: the rest stays queued
    /// let first = pool.task().name("first").submit(|| 1).unwrap();
    /// pool.task().name("second").execute(|| ()).unwrap();
    ///
    /// let pending = pool.shutdown_now();
    /// let names: Vec<_> = pending.iter().map(|task| task.name()).collect();
    /// assert_eq!(names, [Some("first"), Some("second")]);
    /// assert!(busy.join().unwrap()); // it saw its stop token raised
    ///
    /// drop(pending); // never started: cancelled
    /// assert!(first.join().unwrap_err().is_cancelled());
    /// assert!(pool.await_termination(Duration::from_secs(10)));
    /// ```
    ///
    /// [`StopToken::current`]: crate::StopToken::current
    #[must_use = "the returned tasks never started; drop them deliberately to cancel them"]
    pub fn shutdown_now(&self) -> Vec<PendingTask> {
        self.shared.shutdown_now()
    }

    /// Waits up to `timeout` for the pool to terminate; true once it has.
    /// `Duration::MAX` waits forever.
    ///
    /// It does not shut the pool down: call [`shutdown`](Self::shutdown) or
    /// [`shutdown_now`](Self::shutdown_now) first, or it waits for nothing.
    /// Called from one of the pool's own workers (where it could never
    /// return true) it returns false at once and logs a warning.
    ///
    /// # Examples
    ///
    /// ```
    /// use drainpool::crossbeam_channel::bounded;
    /// use drainpool::ThreadPool;
    /// use std::time::Duration;
    ///
    /// let pool = ThreadPool::new(2).unwrap();
    /// let (release, released) = bounded::<()>(0);
    /// pool.execute(move || released.recv().unwrap()).unwrap();
    /// pool.shutdown();
    /// assert!(!pool.await_termination(Duration::ZERO)); // still draining
    /// release.send(()).unwrap();
    /// assert!(pool.await_termination(Duration::from_secs(10)));
    /// assert!(pool.is_terminated());
    /// ```
    pub fn await_termination(&self, timeout: Duration) -> bool {
        self.shared.await_termination(timeout)
    }

    /// Waits up to `timeout` until no task is queued or running; true if
    /// that happened. `Duration::MAX` waits forever.
    ///
    /// Unlike [`await_termination`](Self::await_termination), the pool stays
    /// open: this is the way to wait for a burst of work and then submit
    /// more. Called from one of the pool's own workers (whose own task is
    /// running) it returns false at once and logs a warning.
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
    /// for round in 1..=2 {
    ///     for _ in 0..10 {
    ///         let done = done.clone();
    ///         pool.execute(move || {
    ///             done.fetch_add(1, Ordering::Relaxed);
    ///         })
    ///         .unwrap();
    ///     }
    ///     assert!(pool.wait_idle(Duration::from_secs(10)));
    ///     assert_eq!(done.load(Ordering::Relaxed), round * 10);
    /// }
    /// assert!(!pool.is_shutdown());
    /// ```
    pub fn wait_idle(&self, timeout: Duration) -> bool {
        if run::is_worker_of(self.shared.id) {
            log_warn!(
                "pool {}: wait_idle called from the pool's own worker; returning false instead of \
                 deadlocking",
                self.shared.id
            );
            return false;
        }
        self.shared.wait_idle(deadline_after(timeout))
    }

    /// Where the pool is in its life (the states and their order are on
    /// [`PoolState`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use drainpool::{PoolState, ThreadPool};
    ///
    /// let pool = ThreadPool::new(1).unwrap();
    /// assert_eq!(pool.state(), PoolState::Running);
    /// let _ = pool.shutdown_now();
    /// assert!(pool.state() >= PoolState::Stopping);
    /// ```
    pub fn state(&self) -> PoolState {
        self.shared.lifecycle.get()
    }

    /// True once [`shutdown`](Self::shutdown) or
    /// [`shutdown_now`](Self::shutdown_now) was called: the pool refuses new
    /// work.
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = drainpool::ThreadPool::new(1).unwrap();
    /// assert!(!pool.is_shutdown());
    /// pool.shutdown();
    /// assert!(pool.is_shutdown());
    /// ```
    pub fn is_shutdown(&self) -> bool {
        self.state() >= PoolState::ShuttingDown
    }

    /// True once every worker has exited and `on_terminated` has run; the
    /// non-blocking form of [`await_termination`](Self::await_termination).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let pool = drainpool::ThreadPool::new(1).unwrap();
    /// pool.shutdown();
    /// assert!(pool.await_termination(Duration::from_secs(10)));
    /// assert!(pool.is_terminated());
    /// ```
    pub fn is_terminated(&self) -> bool {
        self.state() == PoolState::Terminated
    }
}

impl ThreadPool {
    /// Shuts the pool down in escalating steps, stopping as soon as it has
    /// terminated: [`shutdown`](Self::shutdown) and drain for up to
    /// `policy.drain()`; then [`shutdown_now`](Self::shutdown_now) (the
    /// tasks that never started are handed back, running tasks see their
    /// stop token raised) and wait up to `policy.interrupt()`; then log every
    /// task still running at error level and list it in the report as stuck.
    /// Returns after about `drain + interrupt` at most. The steps in detail
    /// are on [`ShutdownPolicy`]; what comes back is a [`ShutdownReport`].
    ///
    /// Called from one of the pool's own workers, where waiting for the pool
    /// cannot work, it calls `shutdown`, logs a warning and returns at once
    /// with `terminated == false`.
    ///
    /// # Examples
    ///
    /// A task that waits through its [`StopToken`](crate::StopToken) outlives
    /// the drain and is woken by the interrupt.
    ///
    /// ```
    /// use drainpool::{ShutdownPolicy, StopToken, ThreadPool};
    /// use std::time::Duration;
    ///
    /// let pool = ThreadPool::new(1).unwrap();
    /// pool.task()
    ///     .name("poller")
    ///     .execute(|| {
    ///         // Sleeps until interrupted: step 2 wakes it.
    ///         let _ = StopToken::current().sleep(Duration::MAX);
    ///     })
    ///     .unwrap();
    /// let report = pool.shutdown_gracefully(ShutdownPolicy::new(
    ///     Duration::from_millis(50),
    ///     Duration::from_secs(10),
    /// ));
    /// assert!(report.terminated);
    /// assert!(report.stuck.is_empty());
    /// println!("{report}"); // pool terminated after 50.2ms: 1 completed, ...
    /// ```
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
            log_warn!(
                "pool {}: dropped from its own worker; shutting down without waiting",
                self.shared.id
            );
            return;
        }
        if crate::stop::in_stop_callback() {
            log_warn!(
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
                    log_error!(
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
