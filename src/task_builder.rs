//! [`TaskBuilder`]: a task with a name, a priority or deadlines, for a pool
//! or a group.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::Rejected;
use crate::handle::TaskHandle;
use crate::runtime::Shared;
use crate::runtime::cell::CellRef;
use crate::runtime::mailbox::GroupInner;
use crate::runtime::queue::Priority;
use crate::runtime::timer::Timed;
use crate::state::WhenFull;
use crate::task::{Closure, Job, JobCall, StaticCall};

/// Builds a task with options before handing it to the pool; from
/// [`ThreadPool::task`](crate::ThreadPool::task), or
/// [`TaskGroup::task`](crate::TaskGroup::task) for a task of a group.
///
/// The options are a name, which follows the task everywhere the pool
/// tells about it, a [`Priority`], a start deadline
/// ([`start_within`](TaskBuilder::start_within)) and a run deadline
/// ([`time_limit`](TaskBuilder::time_limit)). The builder is consumed by
/// the call that hands the task over; it does nothing until then.
///
/// # Examples
///
/// ```
/// use drainpool::ThreadPool;
///
/// let pool = ThreadPool::new(2).unwrap();
/// for i in 0..4 {
///     pool.task().name(format!("chunk-{i}")).execute(move || {
///         let _ = i * 2;
///     })
///     .unwrap();
/// }
/// # pool.shutdown();
/// ```
#[must_use = "a TaskBuilder does nothing until execute or submit is called"]
pub struct TaskBuilder<'p> {
    target: Target<'p>,
    name: Option<Arc<str>>,
    priority: Priority,
    start_within: Option<Duration>,
    time_limit: Option<Duration>,
}

/// Where a built task goes.
enum Target<'p> {
    Pool(&'p Arc<Shared>),
    Group(&'p Arc<Shared>, &'p Arc<GroupInner>),
}

impl<'p> TaskBuilder<'p> {
    pub(crate) fn new(shared: &'p Arc<Shared>) -> Self {
        TaskBuilder {
            target: Target::Pool(shared),
            name: None,
            priority: Priority::Normal,
            start_within: None,
            time_limit: None,
        }
    }

    pub(crate) fn for_group(shared: &'p Arc<Shared>, group: &'p Arc<GroupInner>) -> Self {
        TaskBuilder {
            target: Target::Group(shared, group),
            name: None,
            priority: Priority::Normal,
            start_within: None,
            time_limit: None,
        }
    }

    fn execute_as<F>(self, f: F, when_full: WhenFull) -> Result<(), Rejected<F>>
    where
        F: FnOnce() + Send + 'static,
    {
        if self.has_deadline() {
            // A deadline needs a cell to claim: a submit whose handle is
            // dropped at once (its panic goes to the panic handler, as an
            // executed task's does).
            return self
                .submit_as(Closure(f), when_full)
                .map(drop)
                .map_err(|rejected| rejected.map(|call| call.0));
        }
        match self.target {
            Target::Pool(shared) => shared.execute(self.name, self.priority, f, when_full),
            Target::Group(shared, group) => shared.execute_in_group(group, self.name, f, when_full),
        }
    }

    fn has_deadline(&self) -> bool {
        self.start_within.is_some() || self.time_limit.is_some()
    }

    fn shared(&self) -> &'p Arc<Shared> {
        match self.target {
            Target::Pool(shared) | Target::Group(shared, _) => shared,
        }
    }

    /// Submits `call`, wrapped with the deadlines if it has any (see
    /// `runtime/timer.rs`).
    fn submit_as<C: StaticCall>(
        self,
        call: C,
        when_full: WhenFull,
    ) -> Result<TaskHandle<C::Output>, Rejected<C>> {
        if !self.has_deadline() {
            return self.submit_cell(call, when_full, |_| ());
        }
        let shared = self.shared();
        let timer = shared.timer();
        // From the submission on, also while it waits for room.
        let start_by = self.start_within.map(|within| Instant::now() + within);
        let limit = self.time_limit.zip(timer.cloned());
        let timed = Timed::new(call, start_by, limit);
        let expire = |cell: &CellRef<C::Output>| {
            if let (Some(at), Some(timer)) = (start_by, timer) {
                timer.expire_at(at, Arc::downgrade(&cell.clone().into_cell_task()));
            }
        };
        self.submit_cell(timed, when_full, expire)
            .map_err(|rejected| rejected.map(|timed| timed.call))
    }

    /// Submits `call` as it is; `queued` sees its cell once it is queued.
    fn submit_cell<C: StaticCall>(
        self,
        call: C,
        when_full: WhenFull,
        queued: impl FnOnce(&CellRef<C::Output>),
    ) -> Result<TaskHandle<C::Output>, Rejected<C>> {
        let (shared, cell) = match self.target {
            Target::Pool(shared) => (
                shared,
                shared.submit(self.name, self.priority, call, when_full),
            ),
            Target::Group(shared, group) => (
                shared,
                shared.submit_in_group(group, self.name, call, when_full),
            ),
        };
        cell.map(|cell| {
            queued(&cell);
            TaskHandle::new(cell, shared.clone())
        })
    }

    /// Names the task: the name shows in [`ThreadPool::running_tasks`](crate::ThreadPool::running_tasks),
    /// panic reports, [`PendingTask::name`](crate::PendingTask::name) and shutdown reports.
    ///
    /// # Examples
    ///
    /// ```
    /// use drainpool::ThreadPool;
    ///
    /// let pool = ThreadPool::new(1).unwrap();
    /// let handle = pool.task().name("invoice-2024-117").submit(|| "sent").unwrap();
    /// assert_eq!(handle.name(), Some("invoice-2024-117"));
    /// assert_eq!(handle.join().unwrap(), "sent");
    /// ```
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(Arc::from(name.into()));
        self
    }

    /// The task's [`Priority`] (default Normal; the rule is in its docs).
    /// A group's tasks run in the group's order at
    /// the group's priority ([`TaskGroup::set_priority`](crate::TaskGroup::set_priority)), so for a task of
    /// a group this setting has no effect.
    ///
    /// # Examples
    ///
    /// ```
    /// use drainpool::{Priority, ThreadPool};
    ///
    /// let pool = ThreadPool::new(2).unwrap();
    /// // Housekeeping that should never delay the real work.
    /// pool.task().name("vacuum").priority(Priority::Low).execute(|| ()).unwrap();
    /// let urgent = pool.task().priority(Priority::High).submit(|| "first in line").unwrap();
    /// assert_eq!(urgent.join().unwrap(), "first in line");
    /// ```
    pub fn priority(mut self, priority: Priority) -> Self {
        self.priority = priority;
        self
    }

    /// A start deadline: if the task has not started within `deadline` of
    /// its submission, it never starts. Its closure is dropped as soon as
    /// the deadline passes (by the pool's timer thread, not when a worker
    /// gets to it), its handle resolves [`TaskError::Expired`](crate::TaskError::Expired),
    /// it is counted in [`PoolStats::expired`](crate::PoolStats::expired)
    /// (and its group's [`GroupProgress::expired`](crate::GroupProgress::expired)),
    /// and a warning naming it is logged. The deadline counts from the
    /// submit call, including a wait for room in a bounded queue.
    ///
    /// For work that is worthless when late: a request whose client has
    /// given up, a cache refresh overtaken by the next one. Folly's
    /// `add(func, expiration, expireCallback)` is the model.
    ///
    /// The pool keeps the deadline while the task is its own: an expired
    /// task is never handed back by [`ThreadPool::shutdown_now`](crate::ThreadPool::shutdown_now),
    /// but a task handed back before its deadline is its holder's to run
    /// when it likes. The first task with a deadline starts the pool's
    /// timer thread (`{name}-timer`), which ends with the pool.
    ///
    /// # Examples
    ///
    /// A one-worker pool busy with a long task: the request behind it
    /// expires instead of running late.
    ///
    /// ```
    /// use drainpool::{TaskError, ThreadPool};
    /// use drainpool::crossbeam_channel::bounded;
    /// use std::time::Duration;
    ///
    /// let pool = ThreadPool::new(1).unwrap();
    /// let (release, released) = bounded::<()>(0);
    /// pool.execute(move || drop(released.recv())).unwrap(); // the worker is busy
    ///
    /// let reply = pool
    ///     .task()
    ///     .name("reply to client 7")
    ///     .start_within(Duration::from_millis(50))
    ///     .submit(|| "hello")
    ///     .unwrap();
    /// assert!(matches!(reply.join(), Err(TaskError::Expired)));
    /// assert_eq!(pool.stats().expired, 1);
    /// release.send(()).unwrap();
    /// ```
    pub fn start_within(mut self, deadline: Duration) -> Self {
        self.start_within = Some(deadline);
        self
    }

    /// A run deadline: once the task has run for `limit`, its stop token
    /// fires (as its handle's [`cancel`](crate::TaskHandle::cancel) would),
    /// so [`StopToken::current`](crate::StopToken::current) inside it
    /// reports a stop and its interruptible waits wake with
    /// [`Interrupted`](crate::Interrupted). A warning naming it is logged.
    ///
    /// Stopping is cooperative: a task that ignores its token runs on, and
    /// [`ThreadPool::running_tasks`](crate::ThreadPool::running_tasks)
    /// names it as over its limit until it ends. The first task with a
    /// deadline starts the pool's timer thread (`{name}-timer`).
    ///
    /// # Examples
    ///
    /// ```
    /// use drainpool::{StopToken, ThreadPool, WaitError};
    /// use drainpool::crossbeam_channel::unbounded;
    /// use std::time::Duration;
    ///
    /// let pool = ThreadPool::new(1).unwrap();
    /// let (_tx, rx) = unbounded::<u32>(); // nothing ever comes
    /// let poll = pool
    ///     .task()
    ///     .time_limit(Duration::from_millis(50))
    ///     .submit(move || StopToken::current().recv(&rx))
    ///     .unwrap();
    /// assert!(matches!(poll.join().unwrap(), Err(WaitError::Interrupted)));
    /// ```
    pub fn time_limit(mut self, limit: Duration) -> Self {
        self.time_limit = Some(limit);
        self
    }

    /// Like [`ThreadPool::execute`](crate::ThreadPool::execute), with this builder's options.
    ///
    /// # Errors
    ///
    /// As [`ThreadPool::execute`](crate::ThreadPool::execute).
    ///
    /// # Examples
    ///
    /// ```
    /// use drainpool::crossbeam_channel::unbounded;
    /// use drainpool::ThreadPool;
    ///
    /// let pool = ThreadPool::new(2).unwrap();
    /// let (done_tx, done) = unbounded();
    /// for chunk in 0..4 {
    ///     let done_tx = done_tx.clone();
    ///     pool.task()
    ///         .name(format!("chunk-{chunk}"))
    ///         .execute(move || done_tx.send(chunk).unwrap())
    ///         .unwrap();
    /// }
    /// let mut chunks: Vec<i32> = done.iter().take(4).collect();
    /// chunks.sort();
    /// assert_eq!(chunks, [0, 1, 2, 3]);
    /// ```
    pub fn execute<F>(self, f: F) -> Result<(), Rejected<F>>
    where
        F: FnOnce() + Send + 'static,
    {
        self.execute_as(f, WhenFull::Wait)
    }

    /// Like [`ThreadPool::try_execute`](crate::ThreadPool::try_execute), with this builder's options.
    ///
    /// # Errors
    ///
    /// As [`ThreadPool::try_execute`](crate::ThreadPool::try_execute).
    ///
    /// # Examples
    ///
    /// Shedding load: a producer that must not block runs the task itself
    /// when the bounded queue is full.
    ///
    /// ```
    /// use drainpool::{RejectReason, ThreadPool};
    ///
    /// let pool = ThreadPool::builder().threads(1).queue_capacity(64).build().unwrap();
    /// match pool.task().name("thumbnail").try_execute(|| ()) {
    ///     Ok(()) => {}
    ///     Err(full) if full.reason() == RejectReason::QueueFull => full.into_inner()(),
    ///     Err(refused) => panic!("{refused}"),
    /// }
    /// ```
    pub fn try_execute<F>(self, f: F) -> Result<(), Rejected<F>>
    where
        F: FnOnce() + Send + 'static,
    {
        self.execute_as(f, WhenFull::Refuse)
    }

    /// Like [`ThreadPool::submit`](crate::ThreadPool::submit), with this builder's options.
    ///
    /// # Errors
    ///
    /// As [`ThreadPool::submit`](crate::ThreadPool::submit).
    ///
    /// # Examples
    ///
    /// ```
    /// use drainpool::ThreadPool;
    ///
    /// let pool = ThreadPool::new(2).unwrap();
    /// let handle = pool.task().name("sum").submit(|| (1..=100u64).sum::<u64>()).unwrap();
    /// assert_eq!(handle.join().unwrap(), 5050);
    /// ```
    pub fn submit<F, T>(self, f: F) -> Result<TaskHandle<T>, Rejected<F>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.submit_as(Closure(f), WhenFull::Wait)
            .map_err(|rejected| rejected.map(|call| call.0))
    }

    /// Like [`ThreadPool::submit_job`](crate::ThreadPool::submit_job), with this builder's options.
    ///
    /// # Errors
    ///
    /// As [`ThreadPool::submit_job`](crate::ThreadPool::submit_job).
    ///
    /// # Examples
    ///
    /// ```
    /// use drainpool::{Job, ThreadPool};
    ///
    /// struct Export {
    ///     batch: u32,
    /// }
    ///
    /// impl Job for Export {
    ///     type Output = u32;
    ///     fn run(self) -> u32 {
    ///         self.batch
    ///     }
    /// }
    ///
    /// let pool = ThreadPool::new(1).unwrap();
    /// let handle = pool.task().name("export-7").submit_job(Export { batch: 7 }).unwrap();
    /// assert_eq!(handle.name(), Some("export-7"));
    /// assert_eq!(handle.join().unwrap(), 7);
    /// ```
    pub fn submit_job<J: Job>(self, job: J) -> Result<TaskHandle<J::Output>, Rejected<J>> {
        self.submit_as(JobCall(job), WhenFull::Wait)
            .map_err(|rejected| rejected.map(|call| call.0))
    }

    /// Like [`ThreadPool::try_submit`](crate::ThreadPool::try_submit), with this builder's options.
    ///
    /// # Errors
    ///
    /// As [`ThreadPool::try_submit`](crate::ThreadPool::try_submit).
    ///
    /// # Examples
    ///
    /// ```
    /// use drainpool::{RejectReason, ThreadPool};
    ///
    /// let pool = ThreadPool::builder().threads(1).queue_capacity(64).build().unwrap();
    /// let area = match pool.task().name("area").try_submit(|| 6 * 7) {
    ///     Ok(handle) => handle.join().unwrap(),
    ///     Err(full) if full.reason() == RejectReason::QueueFull => full.into_inner()(),
    ///     Err(refused) => panic!("{refused}"),
    /// };
    /// assert_eq!(area, 42);
    /// ```
    pub fn try_submit<F, T>(self, f: F) -> Result<TaskHandle<T>, Rejected<F>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.submit_as(Closure(f), WhenFull::Refuse)
            .map_err(|rejected| rejected.map(|call| call.0))
    }
}

impl fmt::Debug for TaskBuilder<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let target = match &self.target {
            Target::Pool(_) => "pool".to_owned(),
            Target::Group(_, group) => format!("group {}", group.name),
        };
        f.debug_struct("TaskBuilder")
            .field("target", &target)
            .field("name", &self.name)
            .field("priority", &self.priority)
            .field("start_within", &self.start_within)
            .field("time_limit", &self.time_limit)
            .finish_non_exhaustive()
    }
}
