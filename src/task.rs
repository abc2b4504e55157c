//! Tasks: the unit in the queue, its id, and the forms a task takes outside
//! the queue ([`PendingTask`](crate::PendingTask) after `shutdown_now`, [`RunningTask`](crate::RunningTask) in
//! reports, [`TaskPanic`] for the panic handler).
//!
//! A task enters the queue in one of two shapes. `execute` boxes the closure
//! with its id and name: one allocation, nothing shared. `submit` allocates
//! one cell that the queue and the [`TaskHandle`](crate::TaskHandle) share;
//! whoever claims the cell first (a worker, a joiner helping, `cancel`, a
//! `PendingTask`) decides the task's fate, and the queue entry of a cell
//! claimed elsewhere is skipped when a worker reaches it.

use std::any::{Any, TypeId};
use std::cell::Cell;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use crate::error::PanicPayload;

/// A task's identity, unique within the process.
///
/// Ids are handed out in blocks per submitting thread, so they are unique
/// but only roughly increasing across threads; queue order, not id order,
/// is submission order. It displays as `#` and the number, as in the log
/// and in reports.
///
/// # Examples
///
/// ```
/// let pool = drainpool::ThreadPool::new(1).unwrap();
/// let handle = pool.submit(|| ()).unwrap();
/// let id = handle.id();
/// assert_eq!(id.to_string(), format!("#{}", id.as_u64()));
/// ```
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

/// What a submit cell runs: a closure, or a [`Job`] value (which a
/// [`PendingTask`](crate::PendingTask) can give back as a value, see
/// [`PendingTask::into_job`](crate::PendingTask::into_job)).
///
/// Not `'static`: a scoped task's closure borrows from its scope (see
/// `runtime/scope.rs`); the public `submit`s ask for `'static` themselves.
pub(crate) trait Call: Send {
    type Output: Send;
    fn call(self) -> Self::Output;
    /// The type a `PendingTask::into_job` may take back out of the cell:
    /// a job's; `None` for a closure, which no program can name.
    fn job_type() -> Option<TypeId>
    where
        Self: Sized,
    {
        None
    }
    /// The value itself, once `job_type` matched.
    fn into_any(self) -> Option<Box<dyn Any + Send>>
    where
        Self: Sized,
    {
        None
    }
    /// The start deadline (see `runtime/timer.rs`): a worker that claims
    /// the task after it expires it instead of running it. `None` for
    /// every call but a timed one, so the check costs nothing there.
    #[inline(always)]
    fn start_by(&self) -> Option<Instant> {
        None
    }
}

/// A [`Call`] with nothing borrowed: what every submit but a scope's takes.
pub(crate) trait StaticCall: Call<Output: 'static> + 'static {}

impl<C> StaticCall for C
where
    C: Call + 'static,
    C::Output: 'static,
{
}

/// A submitted closure.
pub(crate) struct Closure<F>(pub(crate) F);

impl<F, T> Call for Closure<F>
where
    F: FnOnce() -> T + Send,
    T: Send,
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
    fn job_type() -> Option<TypeId> {
        Some(TypeId::of::<JobCall<J>>())
    }
    fn into_any(self) -> Option<Box<dyn Any + Send>> {
        Some(Box::new(self))
    }
}

/// A unit of work as a value rather than a closure; submitted with
/// [`ThreadPool::submit_job`](crate::ThreadPool::submit_job).
///
/// A job that never started comes back from
/// [`ThreadPool::shutdown_now`](crate::ThreadPool::shutdown_now) as a [`PendingTask`](crate::PendingTask), and
/// [`PendingTask::into_job`](crate::PendingTask::into_job) turns it back into the job value: a program
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

/// A task that panicked with no handle to report to; given to the
/// [`Builder::panic_handler`](crate::Builder::panic_handler).
///
/// That is an `execute`d task, or a submitted task whose handle was dropped
/// without being joined. The default handler logs it with `log::error!`;
/// its `Display` is the line it logs.
///
/// It is an `Error + Send + Sync + 'static` (its payload is a
/// [`PanicPayload`]), so a handler may pass it on to whatever reports the
/// program's errors, or send it to another thread.
///
/// # Examples
///
/// ```
/// use drainpool::crossbeam_channel::unbounded;
/// use drainpool::ThreadPool;
///
/// let (panics_tx, panics) = unbounded();
/// let pool = ThreadPool::builder()
///     .threads(1)
///     .thread_name("parse")
///     .panic_handler(move |panic| panics_tx.send(panic).unwrap())
///     .build()
///     .unwrap();
/// pool.task().name("row-17").execute(|| panic!("bad date")).unwrap();
///
/// let panic = panics.recv().unwrap();
/// assert_eq!(panic.name(), Some("row-17"));
/// assert_eq!(panic.thread(), Some("parse-0"));
/// assert_eq!(panic.message(), Some("bad date"));
/// println!("{panic}"); // task #.. (row-17) on parse-0 panicked: bad date
/// let payload = panic.into_payload(); // for std::panic::resume_unwind, say
/// assert_eq!(payload.downcast_ref::<&str>(), Some(&"bad date"));
/// ```
pub struct TaskPanic {
    pub(crate) id: TaskId,
    pub(crate) name: Option<Arc<str>>,
    pub(crate) thread: Option<String>,
    pub(crate) payload: PanicPayload,
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
    /// not known: for a task run with [`PendingTask::run`](crate::PendingTask::run), or a panic
    /// reported only when its unjoined handle was dropped.
    pub fn thread(&self) -> Option<&str> {
        self.thread.as_deref()
    }

    /// The panic message, when the payload is a string.
    pub fn message(&self) -> Option<&str> {
        self.payload.message()
    }

    /// The panic payload, as [`std::thread::JoinHandle::join`] gives it.
    pub fn into_payload(self) -> Box<dyn Any + Send + 'static> {
        self.payload.into_inner()
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

impl std::error::Error for TaskPanic {}
