//! Tasks: the unit in the queue, its id, and the forms a task takes outside
//! the queue ([`PendingTask`] after `shutdown_now`, [`RunningTask`] in
//! reports, [`TaskPanic`] for the panic handler).
//!
//! A task enters the queue in one of two shapes. `execute` boxes the closure
//! with its id and name: one allocation, nothing shared. `submit` allocates
//! one cell that the queue and the [`TaskHandle`](crate::TaskHandle) share;
//! whoever claims the cell first (a worker, a joiner helping, `cancel`, a
//! `PendingTask`) decides the task's fate, and the queue entry of a cell
//! claimed elsewhere is skipped when a worker reaches it.
//!
//! ```
//! use drainpool::ThreadPool;
//!
//! let pool = ThreadPool::new(1).unwrap();
//! let handle = pool.task().name("chunk-7").submit(|| 6 * 7).unwrap();
//! assert_eq!(handle.name(), Some("chunk-7"));
//! assert_eq!(handle.join().unwrap(), 42);
//! ```

use std::any::{Any, TypeId};
use std::cell::Cell;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::error::{Rejected, panic_message};
use crate::group::TaskGroup;
use crate::handle::TaskHandle;
use crate::inline::Inline;
use crate::pool::ThreadPool;
use crate::runtime::Shared;
use crate::runtime::cell::SharedEntry;
use crate::runtime::chunk::ChunkRef;
use crate::runtime::mailbox::GroupInner;
use crate::runtime::queue::Priority;
use crate::runtime::worker;
use crate::state::WhenFull;

/// A task's identity, unique within the process.
///
/// Ids are handed out in blocks per submitting thread, so they are unique
/// but only roughly increasing across threads; queue order, not id order,
/// is submission order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TaskId(u64);

impl TaskId {
    /// The id as a number.
    pub fn as_u64(self) -> u64 {
        self.0
    }

    pub(crate) fn from_raw(raw: u64) -> TaskId {
        TaskId(raw)
    }

    /// A fresh id. Each thread takes ids from a block of its own, so the
    /// submit path does not touch a shared counter per task.
    #[inline]
    pub(crate) fn next() -> TaskId {
        thread_local! {
            static IDS: Cell<IdBlock> = const { Cell::new(IdBlock::new()) };
        }
        IDS.with(|ids| {
            let mut block = ids.get();
            let id = block.next();
            ids.set(block);
            id
        })
    }
}

/// Fresh ids taken from the process-wide counter a block at a time, for
/// one thread to hand out alone (`TaskId::next`, and a worker's own for
/// the unnamed tasks it runs): an increment per id, not a shared counter.
#[derive(Clone, Copy)]
pub(crate) struct IdBlock {
    next: u64,
    end: u64,
}

impl IdBlock {
    pub(crate) const fn new() -> IdBlock {
        IdBlock { next: 0, end: 0 }
    }

    #[inline]
    pub(crate) fn next(&mut self) -> TaskId {
        const BLOCK: u64 = 1024;
        static NEXT_BLOCK: AtomicU64 = AtomicU64::new(1);
        if self.next == self.end {
            self.next = NEXT_BLOCK.fetch_add(BLOCK, Ordering::Relaxed);
            self.end = self.next + BLOCK;
        }
        let id = self.next;
        self.next += 1;
        TaskId(id)
    }
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// A fire-and-forget task as it sits in the queue.
///
/// An unnamed task is the closure alone ([`Bare`]): boxing a closure that
/// captures nothing allocates nothing, and the task gets its id only when
/// someone can see it (the worker that starts it, or `shutdown_now` handing
/// it back), since `execute` returns none. A named task carries its id and
/// name ([`Named`]).
pub(crate) trait PlainTask: Send {
    fn id(&self) -> Option<TaskId>;
    fn name(&self) -> Option<&Arc<str>>;
    fn call(self: Box<Self>);
}

/// An unnamed `execute`d closure.
pub(crate) struct Bare<F>(F);

/// A named `execute`d closure.
pub(crate) struct Named<F> {
    id: TaskId,
    name: Arc<str>,
    f: F,
}

/// The queue entry of an `execute`d closure. An unnamed one is kept in the
/// entry itself if it is one word (no allocation at all) and boxed
/// otherwise (a capture-free one boxes for free, and measured faster than
/// in place); a named one is boxed with its id and name.
#[inline]
pub(crate) fn plain<F: FnOnce() + Send + 'static>(name: Option<Arc<str>>, f: F) -> Task {
    if let Some(name) = name {
        return Task::Named(Box::new(Named {
            id: TaskId::next(),
            name,
            f,
        }));
    }
    if std::mem::size_of::<F>() == 0 {
        return Task::Plain(Box::new(Bare(f)));
    }
    match Inline::new(f) {
        Ok(inline) => Task::Inline(inline),
        Err(f) => Task::Plain(Box::new(Bare(f))),
    }
}

impl<F: FnOnce() + Send + 'static> PlainTask for Bare<F> {
    fn id(&self) -> Option<TaskId> {
        None
    }
    fn name(&self) -> Option<&Arc<str>> {
        None
    }
    fn call(self: Box<Self>) {
        (self.0)()
    }
}

impl<F: FnOnce() + Send + 'static> PlainTask for Named<F> {
    fn id(&self) -> Option<TaskId> {
        Some(self.id)
    }
    fn name(&self) -> Option<&Arc<str>> {
        Some(&self.name)
    }
    fn call(self: Box<Self>) {
        (self.f)()
    }
}

/// What a submit cell runs: a closure, or a [`Job`] value (which a
/// [`PendingTask`] can give back as a value, see
/// [`PendingTask::into_job`]).
pub(crate) trait Call: Send + 'static {
    type Output: Send + 'static;
    fn call(self) -> Self::Output;
}

/// A submitted closure.
pub(crate) struct Closure<F>(pub(crate) F);

impl<F, T> Call for Closure<F>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    type Output = T;
    fn call(self) -> T {
        (self.0)()
    }
}

/// A submitted job value.
pub(crate) struct JobCall<J>(pub(crate) J);

impl<J: Job> Call for JobCall<J> {
    type Output = J::Output;
    fn call(self) -> J::Output {
        self.0.run()
    }
}

/// A unit of work as a value rather than a closure; submitted with
/// [`ThreadPool::submit_job`].
///
/// A job that never started comes back from
/// [`ThreadPool::shutdown_now`] as a [`PendingTask`], and
/// [`PendingTask::into_job`] turns it back into the job value: a program
/// can store it (it is the program's own type, so it can be serialised) and
/// submit it again after a restart.
///
/// # Examples
///
/// ```
/// use drainpool::{Job, ThreadPool};
///
/// struct Resize {
///     image: String,
///     width: u32,
/// }
///
/// impl Job for Resize {
///     type Output = String;
///     fn run(self) -> String {
///         format!("{} at {} px", self.image, self.width)
///     }
/// }
///
/// let pool = ThreadPool::new(1).unwrap();
/// let handle = pool.submit_job(Resize { image: "cat.png".into(), width: 640 }).unwrap();
/// assert_eq!(handle.join().unwrap(), "cat.png at 640 px");
/// ```
pub trait Job: Send + 'static {
    /// What [`run`](Job::run) returns; what the job's handle gives.
    type Output: Send + 'static;
    /// Does the work, on a worker thread.
    fn run(self) -> Self::Output;
}

/// One entry of the queue.
pub(crate) enum Task {
    /// From `execute`, without a name.
    Plain(Box<dyn PlainTask>),
    /// From `execute`, with a name (its own variant, so that a worker
    /// running an unnamed one never asks for a name).
    Named(Box<dyn PlainTask>),
    /// From `execute`: an unnamed closure of one word, in place.
    Inline(Inline),
    /// From `submit`: a cell shared with its handle.
    Shared(SharedEntry),
    /// A group's token: its next task is in the group's mailbox.
    Group(Arc<GroupInner>),
    /// Many tasks of one batch (see `chunk.rs`); never handed out as one
    /// task: `shutdown_now` takes its tasks out one by one.
    Chunk(ChunkRef),
    /// No work: wakes a worker blocked on an empty queue so that it sees the
    /// pool is shutting down. Each exiting worker sends one on, so a worker
    /// that blocked just before shutdown is always woken.
    Wake,
}

/// A task that was accepted but never started, handed back by
/// [`ThreadPool::shutdown_now`].
///
/// Keep it, run it on the calling thread with [`run`](PendingTask::run), or
/// drop it. Dropping it cancels it: its handle, if any, resolves
/// `Err(TaskError::Cancelled)` and the pool counts it as cancelled.
///
/// # Examples
///
/// ```
/// use drainpool::ThreadPool;
/// use std::sync::mpsc;
///
/// let pool = ThreadPool::new(1).unwrap();
/// let (started_tx, started_rx) = mpsc::channel();
/// let (release_tx, release_rx) = mpsc::channel::<()>();
/// pool.execute(move || {
///     started_tx.send(()).unwrap();
///     release_rx.recv().ok();
/// })
/// .unwrap();
/// started_rx.recv().unwrap(); // the only worker is busy now
/// let handle = pool.task().name("late").submit(|| 1 + 1).unwrap();
/// let pending = pool.shutdown_now();
/// release_tx.send(()).unwrap();
/// assert_eq!(pending.len(), 1);
/// assert_eq!(pending[0].name(), Some("late"));
/// for task in pending {
///     task.run(); // on this thread; the handle gets the result
/// }
/// assert_eq!(handle.join().unwrap(), 2);
/// ```
pub struct PendingTask {
    id: TaskId,
    task: Option<Task>,
    shared: Arc<Shared>,
}

impl PendingTask {
    #[inline]
    pub(crate) fn new(task: Task, shared: Arc<Shared>) -> PendingTask {
        let id = match &task {
            Task::Plain(t) | Task::Named(t) => t.id().unwrap_or_else(TaskId::next),
            Task::Inline(_) => TaskId::next(),
            Task::Shared(t) => t.0.header().id,
            Task::Group(_) | Task::Chunk(_) | Task::Wake => {
                unreachable!("tokens, chunks and wake-ups are not tasks")
            }
        };
        PendingTask {
            id,
            task: Some(task),
            shared,
        }
    }

    fn task(&self) -> &Task {
        self.task
            .as_ref()
            .expect("a PendingTask holds its task until consumed")
    }

    /// The task's id.
    pub fn id(&self) -> TaskId {
        self.id
    }

    /// The task's name, if it was given one with
    /// [`TaskBuilder::name`].
    pub fn name(&self) -> Option<&str> {
        match self.task() {
            Task::Plain(t) | Task::Named(t) => t.name().map(|n| &**n),
            Task::Inline(_) => None,
            Task::Shared(t) => t.0.header().name.as_deref(),
            Task::Group(_) | Task::Chunk(_) | Task::Wake => unreachable!(),
        }
    }

    /// Gives back the [`Job`] value of a task submitted with
    /// [`ThreadPool::submit_job`], so it can be kept and submitted again
    /// later. Its handle resolves `Err(TaskError::Cancelled)` (it never ran
    /// in the pool), and the pool counts it as cancelled.
    ///
    /// # Errors
    ///
    /// The `PendingTask` itself, unchanged, if it is not a job of type `J`
    /// (a closure, or a job of another type), or if it was meanwhile run
    /// or cancelled through its handle.
    ///
    /// # Examples
    ///
    /// ```
    /// use drainpool::{Job, ThreadPool};
    /// use std::sync::mpsc;
    ///
    /// #[derive(Debug, PartialEq)]
    /// struct Chunk(u32);
    /// impl Job for Chunk {
    ///     type Output = u32;
    ///     fn run(self) -> u32 {
    ///         self.0 * 2
    ///     }
    /// }
    ///
    /// let pool = ThreadPool::new(1).unwrap();
    /// let (started_tx, started_rx) = mpsc::channel();
    /// let (release_tx, release_rx) = mpsc::channel::<()>();
    /// pool.execute(move || {
    ///     started_tx.send(()).unwrap();
    ///     release_rx.recv().ok();
    /// })
    /// .unwrap();
    /// started_rx.recv().unwrap(); // the only worker is busy
    /// let handle = pool.submit_job(Chunk(7)).unwrap();
    /// let mut pending = pool.shutdown_now();
    /// release_tx.send(()).unwrap();
    /// let chunk: Chunk = pending.pop().unwrap().into_job().unwrap();
    /// assert_eq!(chunk, Chunk(7)); // ours again: save it, resubmit it later
    /// assert!(handle.join().unwrap_err().is_cancelled());
    /// ```
    pub fn into_job<J: Job>(mut self) -> Result<J, PendingTask> {
        let taken = match self.task() {
            Task::Shared(entry) => entry.0.take_back(TypeId::of::<JobCall<J>>()),
            Task::Plain(_)
            | Task::Named(_)
            | Task::Inline(_)
            | Task::Group(_)
            | Task::Chunk(_)
            | Task::Wake => None,
        };
        match taken.map(|any| any.downcast::<JobCall<J>>()) {
            Some(Ok(job)) => {
                self.task = None; // taken: nothing left to cancel on drop
                self.shared.count_cancelled(true);
                Ok(job.0)
            }
            Some(Err(_)) => unreachable!("take_back checked the type"),
            None => Err(self),
        }
    }

    /// Runs the task on the calling thread, now. A submitted task's handle
    /// receives the result; a panic of an `execute`d task goes to the pool's
    /// panic handler, as it would have on a worker. The pool's `completed`
    /// or `panicked` count includes it.
    pub fn run(mut self) {
        let task = self
            .task
            .take()
            .expect("a PendingTask holds its task until consumed");
        worker::run_elsewhere(&self.shared, task, self.id);
    }
}

impl Drop for PendingTask {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            worker::cancel_returned(&self.shared, task);
        }
    }
}

impl fmt::Debug for PendingTask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("PendingTask");
        d.field("id", &self.id);
        if self.task.is_some() {
            d.field("name", &self.name());
        }
        d.finish_non_exhaustive()
    }
}

/// Builds a task with options before handing it to the pool; from
/// [`ThreadPool::task`].
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
}

/// Where a built task goes.
enum Target<'p> {
    Pool(&'p ThreadPool),
    Group(&'p TaskGroup),
}

impl<'p> TaskBuilder<'p> {
    pub(crate) fn new(pool: &'p ThreadPool) -> Self {
        TaskBuilder {
            target: Target::Pool(pool),
            name: None,
            priority: Priority::Normal,
        }
    }

    pub(crate) fn for_group(group: &'p TaskGroup) -> Self {
        TaskBuilder {
            target: Target::Group(group),
            name: None,
            priority: Priority::Normal,
        }
    }

    fn execute_as<F>(self, f: F, when_full: WhenFull) -> Result<(), Rejected<F>>
    where
        F: FnOnce() + Send + 'static,
    {
        match self.target {
            Target::Pool(pool) => pool
                .shared()
                .execute(self.name, self.priority, f, when_full),
            Target::Group(group) => group.execute_named(self.name, f, when_full),
        }
    }

    fn submit_as<C: Call>(
        self,
        call: C,
        when_full: WhenFull,
    ) -> Result<TaskHandle<C::Output>, Rejected<C>> {
        match self.target {
            Target::Pool(pool) => {
                pool.shared_arc()
                    .submit(self.name, self.priority, call, when_full)
            }
            Target::Group(group) => group.submit_call(self.name, call, when_full),
        }
    }

    /// Names the task: the name shows in [`ThreadPool::running_tasks`],
    /// panic reports, [`PendingTask::name`] and shutdown reports.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(Arc::from(name.into()));
        self
    }

    /// The task's [`Priority`] (default Normal; the rule is in its docs).
    /// A group's tasks run in the group's order at
    /// the group's priority ([`TaskGroup::set_priority`]), so for a task of
    /// a group this setting has no effect.
    pub fn priority(mut self, priority: Priority) -> Self {
        self.priority = priority;
        self
    }

    /// Like [`ThreadPool::execute`], with this builder's options.
    ///
    /// # Errors
    ///
    /// As [`ThreadPool::execute`].
    pub fn execute<F>(self, f: F) -> Result<(), Rejected<F>>
    where
        F: FnOnce() + Send + 'static,
    {
        self.execute_as(f, WhenFull::Wait)
    }

    /// Like [`ThreadPool::try_execute`], with this builder's options.
    ///
    /// # Errors
    ///
    /// As [`ThreadPool::try_execute`].
    pub fn try_execute<F>(self, f: F) -> Result<(), Rejected<F>>
    where
        F: FnOnce() + Send + 'static,
    {
        self.execute_as(f, WhenFull::Refuse)
    }

    /// Like [`ThreadPool::submit`], with this builder's options.
    ///
    /// # Errors
    ///
    /// As [`ThreadPool::submit`].
    pub fn submit<F, T>(self, f: F) -> Result<TaskHandle<T>, Rejected<F>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.submit_as(Closure(f), WhenFull::Wait)
            .map_err(|rejected| rejected.map(|call| call.0))
    }

    /// Like [`ThreadPool::submit_job`], with this builder's options.
    ///
    /// # Errors
    ///
    /// As [`ThreadPool::submit_job`].
    pub fn submit_job<J: Job>(self, job: J) -> Result<TaskHandle<J::Output>, Rejected<J>> {
        self.submit_as(JobCall(job), WhenFull::Wait)
            .map_err(|rejected| rejected.map(|call| call.0))
    }

    /// Like [`ThreadPool::try_submit`], with this builder's options.
    ///
    /// # Errors
    ///
    /// As [`ThreadPool::try_submit`].
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
            Target::Group(group) => format!("group {}", group.name()),
        };
        f.debug_struct("TaskBuilder")
            .field("target", &target)
            .field("name", &self.name)
            .field("priority", &self.priority)
            .finish_non_exhaustive()
    }
}

/// A task that panicked with no handle to report to; given to the
/// [`Builder::panic_handler`](crate::Builder::panic_handler).
///
/// That is an `execute`d task, or a submitted task whose handle was dropped
/// without being joined. The default handler logs it with `log::error!`.
pub struct TaskPanic {
    pub(crate) id: TaskId,
    pub(crate) name: Option<Arc<str>>,
    pub(crate) thread: Option<String>,
    pub(crate) payload: Box<dyn Any + Send + 'static>,
}

impl TaskPanic {
    /// The id of the task that panicked.
    pub fn id(&self) -> TaskId {
        self.id
    }

    /// Its name, if it had one.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// The name of the worker thread it panicked on; `None` when that is
    /// not known: for a task run with [`PendingTask::run`], or a panic
    /// reported only when its unjoined handle was dropped.
    pub fn thread(&self) -> Option<&str> {
        self.thread.as_deref()
    }

    /// The panic message, when the payload is a string.
    pub fn message(&self) -> Option<&str> {
        panic_message(self.payload.as_ref())
    }

    /// The panic payload.
    pub fn into_payload(self) -> Box<dyn Any + Send + 'static> {
        self.payload
    }
}

impl fmt::Debug for TaskPanic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskPanic")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("thread", &self.thread)
            .field("message", &self.message())
            .finish()
    }
}

impl fmt::Display for TaskPanic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "task {}", self.id)?;
        if let Some(name) = &self.name {
            write!(f, " ({name})")?;
        }
        if let Some(thread) = &self.thread {
            write!(f, " on {thread}")?;
        }
        match self.message() {
            Some(msg) => write!(f, " panicked: {msg}"),
            None => f.write_str(" panicked"),
        }
    }
}

/// A task running now; from [`ThreadPool::running_tasks`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RunningTask {
    /// The task's id.
    pub id: TaskId,
    /// Its name, if it was given one.
    pub name: Option<String>,
    /// The name of the worker thread running it.
    pub thread: String,
    /// How long it has been running.
    pub running_for: Duration,
}

impl fmt::Display for RunningTask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "task {}", self.id)?;
        if let Some(name) = &self.name {
            write!(f, " ({name})")?;
        }
        write!(f, " on {} for {:.1?}", self.thread, self.running_for)
    }
}
