//! Task groups: one job split into many tasks, cancelled, paused and watched
//! as one.
//!
//! [`TaskGroup`] is a face over the group's mailbox (`runtime/mailbox.rs`),
//! which keeps the tasks, the pause and cancel flags and the counts; how a
//! group queues its tasks, which a user must know, is on `TaskGroup`, where
//! it renders.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::error::Rejected;
use crate::handle::TaskHandle;
use crate::runtime::PendingTask;
use crate::runtime::Shared;
use crate::runtime::mailbox::GroupInner;
use crate::runtime::queue::Priority;
use crate::runtime::{GroupProgress, PoolMetrics};
use crate::state::{PoolState, WhenFull, deadline_after};
use crate::stop::StopToken;
use crate::task::{Closure, Job, JobCall, StaticCall};
use crate::task_builder::TaskBuilder;

/// A named set of tasks of one pool, cancelled, paused and waited for as
/// one; from [`ThreadPool::group`](crate::ThreadPool::group).
///
/// A group takes tasks like the pool does ([`execute`](Self::execute),
/// [`submit`](Self::submit), [`task`](Self::task) for named ones) and runs
/// them on the pool's workers; what it adds is that one job split into many
/// tasks can be handled as one.
///
/// # How a group queues its tasks
///
/// A group keeps its tasks in a mailbox of its own, in submission order. The
/// pool's queue holds at most one *turn* per group: a worker that takes the
/// group's turn takes the first task of the mailbox and, if more remain,
/// puts the turn back at the end of the pool's queue before running it. So
/// a group's tasks still run in parallel, groups and plain tasks take turns,
/// and a group with a million tasks queued never makes another group's task
/// wait behind all of them. The turn is queued at the group's
/// [`Priority`] ([`set_priority`](Self::set_priority)).
///
/// - [`cancel`](Self::cancel) empties the mailbox at once: every
///   never-started task is dropped without running (its memory freed now,
///   its handle resolved as cancelled), running tasks see the group's stop
///   token raised, and later submits are refused with
///   [`RejectReason::Cancelled`](crate::RejectReason::Cancelled).
///   [`cancel_returning`](Self::cancel_returning) hands those tasks back
///   instead.
/// - [`pause`](Self::pause) holds the mailbox: its tasks stay queued, in
///   order, but no worker takes one until [`resume`](Self::resume). Other
///   groups go on. A pool that shuts down resumes its paused groups (a
///   drain runs everything accepted), and `pause` does nothing once the
///   pool is shutting down; `shutdown_now` hands held tasks back too, in
///   submission order with the rest.
///
/// Cheap to clone: clones are the same group. Dropping every clone does not
/// cancel the group; its tasks still run.
///
/// # Examples
///
/// ```
/// use drainpool::ThreadPool;
/// use std::time::Duration;
///
/// let pool = ThreadPool::new(2).unwrap();
/// let job = pool.group("job-17");
/// for chunk in 0..100 {
///     job.task().name(format!("chunk-{chunk}")).execute(move || {
///         let _ = chunk * 2; // process one chunk
///     })
///     .unwrap();
/// }
/// assert!(job.wait(Duration::from_secs(10)));
/// assert_eq!(job.progress().completed, 100);
/// ```
#[derive(Clone)]
pub struct TaskGroup {
    shared: Arc<Shared>,
    inner: Arc<GroupInner>,
}

impl TaskGroup {
    pub(crate) fn new(shared: Arc<Shared>, name: String) -> TaskGroup {
        let inner = Arc::new(GroupInner::new(name, shared.metrics.is_some()));
        shared.register_group(&inner);
        TaskGroup { shared, inner }
    }

    /// The group's name, as given to [`ThreadPool::group`](crate::ThreadPool::group).
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = drainpool::ThreadPool::new(1).unwrap();
    /// assert_eq!(pool.group("job-17").name(), "job-17");
    /// ```
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Sets the [`Priority`] of the group's tasks (default Normal): its
    /// tasks take their turns at that level, in the group's order. Takes
    /// effect from the group's next turn.
    ///
    /// # Examples
    ///
    /// ```
    /// use drainpool::{Priority, ThreadPool};
    ///
    /// let pool = ThreadPool::new(2).unwrap();
    /// let reindex = pool.group("reindex");
    /// reindex.set_priority(Priority::Low); // background work yields to the rest
    /// assert_eq!(reindex.priority(), Priority::Low);
    /// for shard in 0..8 {
    ///     reindex.execute(move || {
    ///         let _ = shard; // reindex one shard
    ///     })
    ///     .unwrap();
    /// }
    /// ```
    pub fn set_priority(&self, priority: Priority) {
        self.inner.priority.store(priority as u8, Ordering::Relaxed);
    }

    /// The group's [`Priority`]; Normal unless
    /// [`set_priority`](Self::set_priority) changed it.
    ///
    /// # Examples
    ///
    /// ```
    /// use drainpool::{Priority, ThreadPool};
    ///
    /// let pool = ThreadPool::new(1).unwrap();
    /// assert_eq!(pool.group("import").priority(), Priority::Normal);
    /// ```
    pub fn priority(&self) -> Priority {
        self.inner.priority()
    }

    /// Like [`ThreadPool::execute`](crate::ThreadPool::execute), into this
    /// group.
    ///
    /// # Errors
    ///
    /// As `ThreadPool::execute`, and [`RejectReason::Cancelled`](crate::RejectReason::Cancelled) once the
    /// group was cancelled.
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
    /// let job = pool.group("resize");
    /// let resized = Arc::new(AtomicUsize::new(0));
    /// for _ in 0..10 {
    ///     let resized = resized.clone();
    ///     job.execute(move || {
    ///         resized.fetch_add(1, Ordering::Relaxed);
    ///     })
    ///     .unwrap();
    /// }
    /// assert!(job.wait(Duration::from_secs(10)));
    /// assert_eq!(resized.load(Ordering::Relaxed), 10);
    /// ```
    pub fn execute<F>(&self, f: F) -> Result<(), Rejected<F>>
    where
        F: FnOnce() + Send + 'static,
    {
        self.shared
            .execute_in_group(&self.inner, None, f, WhenFull::Wait)
    }

    /// Like [`ThreadPool::try_execute`](crate::ThreadPool::try_execute),
    /// into this group.
    ///
    /// # Errors
    ///
    /// As [`execute`](Self::execute), and `QueueFull` for a full bounded
    /// queue.
    ///
    /// # Examples
    ///
    /// ```
    /// use drainpool::{RejectReason, ThreadPool};
    ///
    /// let pool = ThreadPool::builder().threads(1).queue_capacity(64).build().unwrap();
    /// let job = pool.group("thumbnails");
    /// job.try_execute(|| ()).unwrap();
    /// job.cancel();
    /// let refused = job.try_execute(|| ()).unwrap_err();
    /// assert_eq!(refused.reason(), RejectReason::Cancelled); // the job is over
    /// ```
    pub fn try_execute<F>(&self, f: F) -> Result<(), Rejected<F>>
    where
        F: FnOnce() + Send + 'static,
    {
        self.shared
            .execute_in_group(&self.inner, None, f, WhenFull::Refuse)
    }

    /// Like [`ThreadPool::submit`](crate::ThreadPool::submit), into this
    /// group.
    ///
    /// # Errors
    ///
    /// As [`execute`](Self::execute).
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = drainpool::ThreadPool::new(2).unwrap();
    /// let job = pool.group("sums");
    /// let parts: Vec<_> = (0..4u64)
    ///     .map(|i| job.submit(move || (i * 100..(i + 1) * 100).sum::<u64>()).unwrap())
    ///     .collect();
    /// let total: u64 = parts.into_iter().map(|h| h.join().unwrap()).sum();
    /// assert_eq!(total, (0..400).sum());
    /// ```
    pub fn submit<F, T>(&self, f: F) -> Result<TaskHandle<T>, Rejected<F>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.submit_call(Closure(f), WhenFull::Wait)
            .map_err(|rejected| rejected.map(|call| call.0))
    }

    /// Like [`ThreadPool::try_submit`](crate::ThreadPool::try_submit), into
    /// this group.
    ///
    /// # Errors
    ///
    /// As [`try_execute`](Self::try_execute).
    ///
    /// # Examples
    ///
    /// ```
    /// use drainpool::{RejectReason, ThreadPool};
    ///
    /// let pool = ThreadPool::builder().threads(1).queue_capacity(64).build().unwrap();
    /// let job = pool.group("areas");
    /// let area = match job.try_submit(|| 6 * 7) {
    ///     Ok(handle) => handle.join().unwrap(),
    ///     Err(full) if full.reason() == RejectReason::QueueFull => full.into_inner()(),
    ///     Err(refused) => panic!("{refused}"),
    /// };
    /// assert_eq!(area, 42);
    /// ```
    pub fn try_submit<F, T>(&self, f: F) -> Result<TaskHandle<T>, Rejected<F>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.submit_call(Closure(f), WhenFull::Refuse)
            .map_err(|rejected| rejected.map(|call| call.0))
    }

    /// Like [`ThreadPool::submit_job`](crate::ThreadPool::submit_job), into
    /// this group.
    ///
    /// # Errors
    ///
    /// As [`execute`](Self::execute).
    ///
    /// # Examples
    ///
    /// ```
    /// use drainpool::{Job, ThreadPool};
    ///
    /// struct Page(u32);
    ///
    /// impl Job for Page {
    ///     type Output = String;
    ///     fn run(self) -> String {
    ///         format!("page {} rendered", self.0)
    ///     }
    /// }
    ///
    /// let pool = ThreadPool::new(2).unwrap();
    /// let book = pool.group("book");
    /// let pages: Vec<_> = (1..=3).map(|n| book.submit_job(Page(n)).unwrap()).collect();
    /// assert_eq!(pages.into_iter().last().unwrap().join().unwrap(), "page 3 rendered");
    /// ```
    pub fn submit_job<J: Job>(&self, job: J) -> Result<TaskHandle<J::Output>, Rejected<J>> {
        self.submit_call(JobCall(job), WhenFull::Wait)
            .map_err(|rejected| rejected.map(|call| call.0))
    }

    /// A [`TaskBuilder`] for a named task of this group. (The task runs at
    /// the group's priority: [`TaskBuilder::priority`] has no effect here.)
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = drainpool::ThreadPool::new(1).unwrap();
    /// let job = pool.group("import");
    /// let handle = job.task().name("chunk-7").submit(|| 7).unwrap();
    /// assert_eq!(handle.name(), Some("chunk-7"));
    /// assert_eq!(handle.join().unwrap(), 7);
    /// ```
    pub fn task(&self) -> TaskBuilder<'_> {
        TaskBuilder::for_group(&self.shared, &self.inner)
    }

    fn submit_call<C: StaticCall>(
        &self,
        call: C,
        when_full: WhenFull,
    ) -> Result<TaskHandle<C::Output>, Rejected<C>> {
        self.shared
            .submit_in_group(&self.inner, None, call, when_full)
            .map(|cell| TaskHandle::new(cell, self.shared.clone()))
    }

    /// Cancels the group: every task of it that never started is dropped
    /// without running (wherever it is queued; its handle resolves
    /// `Err(TaskError::Cancelled)` at once), running tasks see the group's
    /// stop token raised, and later submits are refused. Returns how many
    /// tasks were dropped. Cancelling again returns 0.
    ///
    /// # Examples
    ///
    /// ```
    /// use drainpool::crossbeam_channel::bounded;
    /// use drainpool::{StopToken, ThreadPool};
    /// use std::time::Duration;
    ///
    /// let pool = ThreadPool::new(1).unwrap();
    /// let job = pool.group("import");
    /// let (started_tx, started) = bounded(1);
    /// let first = job
    ///     .submit(move || {
    ///         let stop = StopToken::current();
    ///         started_tx.send(()).unwrap();
    ///         stop.sleep(Duration::MAX).is_err() // until the group is cancelled
    ///     })
    ///     .unwrap();
    /// started.recv().unwrap(); // the only worker is busy
    /// let rest: Vec<_> = (0..3).map(|i| job.submit(move || i).unwrap()).collect();
    ///
    /// assert_eq!(job.cancel(), 3); // the queued three never start
    /// assert!(first.join().unwrap()); // the running one saw the group's stop
    /// for handle in rest {
    ///     assert!(handle.join().unwrap_err().is_cancelled());
    /// }
    /// assert!(job.execute(|| ()).is_err()); // the job is over
    /// assert_eq!(job.cancel(), 0);
    /// ```
    ///
    /// [`TaskError::Cancelled`]: crate::TaskError::Cancelled
    pub fn cancel(&self) -> usize {
        self.shared.cancel_group(&self.inner)
    }

    /// Like [`cancel`](Self::cancel), but hands the never-started tasks back
    /// instead of dropping them, in their order, as [`PendingTask`]s (run
    /// them, keep them, or take a [`Job`] back out with
    /// [`PendingTask::into_job`]): to save one job's remaining work without
    /// shutting the pool down.
    ///
    /// # Examples
    ///
    /// ```
    /// use drainpool::ThreadPool;
    ///
    /// let pool = ThreadPool::new(1).unwrap();
    /// let job = pool.group("import");
    /// job.pause(); // keep everything queued for the example
    /// for chunk in 0..3 {
    ///     job.task().name(format!("chunk-{chunk}")).execute(|| ()).unwrap();
    /// }
    /// let rest = job.cancel_returning();
    /// let names: Vec<_> = rest.iter().map(|t| t.name().unwrap().to_owned()).collect();
    /// assert_eq!(names, ["chunk-0", "chunk-1", "chunk-2"]);
    /// # pool.shutdown();
    /// ```
    pub fn cancel_returning(&self) -> Vec<PendingTask> {
        let tasks = self.inner.close();
        self.shared.hand_back_tasks(&self.inner, tasks)
    }

    /// Holds the group's queued tasks: they stay queued, in order, but none
    /// starts until [`resume`](Self::resume). Running tasks go on. Does
    /// nothing once the pool is shutting down (a drain runs everything).
    /// A worker that joins one of the held tasks runs it anyway (waiting
    /// for the resume could deadlock the pool).
    ///
    /// # Examples
    ///
    /// ```
    /// use drainpool::ThreadPool;
    /// use std::time::Duration;
    ///
    /// let pool = ThreadPool::new(2).unwrap();
    /// let export = pool.group("export");
    /// export.pause();
    /// let handles: Vec<_> = (0..3).map(|i| export.submit(move || i).unwrap()).collect();
    /// let held = export.progress();
    /// assert_eq!((held.queued, held.running, held.completed), (3, 0, 0)); // nothing starts
    ///
    /// export.resume();
    /// assert!(export.wait(Duration::from_secs(10)));
    /// let order: Vec<i32> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    /// assert_eq!(order, [0, 1, 2]);
    /// ```
    pub fn pause(&self) {
        let mut mailbox = self.inner.mailbox.lock();
        // Checked under the mailbox lock: `shutdown` moves the state first
        // and then resumes each group under this lock, so either we see the
        // shutdown here, or it sees our pause and undoes it.
        if self.shared.lifecycle.get() == PoolState::Running {
            mailbox.paused = true;
        }
    }

    /// Lets a paused group's tasks start again, in their order. Does
    /// nothing to a group that is not paused.
    ///
    /// # Examples
    ///
    /// ```
    /// use drainpool::ThreadPool;
    /// use std::time::Duration;
    ///
    /// let pool = ThreadPool::new(2).unwrap();
    /// let job = pool.group("nightly");
    /// job.pause(); // queue the whole job first, start it later
    /// for part in 0..4 {
    ///     job.execute(move || {
    ///         let _ = part;
    ///     })
    ///     .unwrap();
    /// }
    /// job.resume();
    /// assert!(!job.is_paused());
    /// assert!(job.wait(Duration::from_secs(10)));
    /// ```
    pub fn resume(&self) {
        if self.inner.unpause() {
            self.shared.send_token(self.inner.clone());
        }
    }

    /// True while the group is paused.
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = drainpool::ThreadPool::new(1).unwrap();
    /// let job = pool.group("export");
    /// job.pause();
    /// assert!(job.is_paused());
    /// pool.shutdown(); // a drain runs everything: the group is resumed
    /// assert!(!job.is_paused());
    /// job.pause(); // and stays so
    /// assert!(!job.is_paused());
    /// ```
    pub fn is_paused(&self) -> bool {
        self.inner.mailbox.lock().paused
    }

    /// True once the group was cancelled, by [`cancel`](Self::cancel) or
    /// [`cancel_returning`](Self::cancel_returning) on any of its clones.
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = drainpool::ThreadPool::new(1).unwrap();
    /// let job = pool.group("import");
    /// let same_job = job.clone();
    /// assert!(!job.is_cancelled());
    /// same_job.cancel();
    /// assert!(job.is_cancelled());
    /// ```
    pub fn is_cancelled(&self) -> bool {
        self.inner.mailbox.lock().cancelled
    }

    /// Waits up to `timeout` until every task submitted to the group so far
    /// has ended (completed, panicked, cancelled, or handed back by
    /// `shutdown_now`); true if that happened. `Duration::MAX` waits
    /// forever. A paused group's queued tasks have not ended.
    ///
    /// Called from a task of this group, which cannot end while it waits,
    /// it returns false at once and logs a warning.
    ///
    /// # Examples
    ///
    /// ```
    /// use drainpool::ThreadPool;
    /// use std::time::Duration;
    ///
    /// let pool = ThreadPool::new(2).unwrap();
    /// let job = pool.group("job-17");
    /// for chunk in 0..100 {
    ///     job.execute(move || {
    ///         let _ = chunk * 2; // process one chunk
    ///     })
    ///     .unwrap();
    /// }
    /// assert!(job.wait(Duration::from_secs(10)));
    /// assert_eq!(job.progress().completed, 100);
    /// ```
    pub fn wait(&self, timeout: Duration) -> bool {
        if crate::runtime::run::is_in_group(&self.inner) {
            log_warn!(
                "group {}: wait called from one of its own tasks, which cannot end while it \
                 waits; returning false instead of waiting for itself",
                self.inner.name
            );
            return false;
        }
        self.inner.counts.wait_done(deadline_after(timeout))
    }

    /// The group's counts now. Cheap (no walk over the queued tasks), so a
    /// progress bar may poll it.
    ///
    /// # Examples
    ///
    /// ```
    /// use drainpool::ThreadPool;
    /// use std::time::Duration;
    ///
    /// let pool = ThreadPool::new(2).unwrap();
    /// let job = pool.group("import");
    /// job.execute(|| ()).unwrap();
    /// let bad = job.submit(|| -> u32 { panic!("malformed row") }).unwrap();
    /// assert!(job.wait(Duration::from_secs(10)));
    /// let p = job.progress();
    /// assert_eq!((p.submitted, p.completed, p.panicked), (2, 1, 1));
    /// println!("{}/{} done", p.completed + p.panicked + p.cancelled, p.submitted);
    /// assert!(bad.join().unwrap_err().is_panic());
    /// ```
    pub fn progress(&self) -> GroupProgress {
        self.inner.counts.progress()
    }

    /// The timing of this group's tasks: queue wait, run time and the age
    /// of its oldest queued task, as [`ThreadPool::metrics`](crate::ThreadPool::metrics)
    /// gives for the whole pool. Empty unless the pool was built with
    /// [`Builder::metrics`](crate::Builder::metrics) on.
    ///
    /// # Examples
    ///
    /// ```
    /// use drainpool::ThreadPool;
    /// use std::time::Duration;
    ///
    /// let pool = ThreadPool::builder().threads(2).metrics(true).build().unwrap();
    /// let import = pool.group("import");
    /// for _ in 0..10 {
    ///     import.execute(|| ()).unwrap();
    /// }
    /// pool.execute(|| ()).unwrap(); // not the group's
    /// assert!(import.wait(Duration::from_secs(10)));
    /// assert_eq!(import.metrics().run_time.count, 10);
    /// ```
    pub fn metrics(&self) -> PoolMetrics {
        self.shared.group_metrics(&self.inner)
    }

    /// A token that fires when the group is cancelled (the tokens of its
    /// running tasks fire then too): for code outside the pool that works
    /// for the job, such as the thread that feeds it.
    ///
    /// # Examples
    ///
    /// ```
    /// use drainpool::ThreadPool;
    /// use std::time::Duration;
    ///
    /// let pool = ThreadPool::new(1).unwrap();
    /// let job = pool.group("crawl");
    /// let stop = job.stop_token();
    /// let feeder = std::thread::spawn(move || {
    ///     // ... feed the job until it is cancelled ...
    ///     stop.sleep(Duration::MAX).is_err()
    /// });
    /// job.cancel();
    /// assert!(feeder.join().unwrap());
    /// ```
    pub fn stop_token(&self) -> StopToken {
        StopToken::from_states(vec![self.inner.stop.clone()])
    }
}

impl fmt::Debug for TaskGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskGroup")
            .field("name", &self.inner.name)
            .field("progress", &self.progress())
            .finish()
    }
}
