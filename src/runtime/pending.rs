//! [`PendingTask`]: a task `shutdown_now` handed back, the program's now.

use std::any::{TypeId, type_name};
use std::fmt;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::runtime::Shared;
use crate::runtime::entry::{Stamp, Task};
use crate::runtime::ledger::Custody;
use crate::runtime::run;
use crate::task::{Job, JobCall, TaskId};

/// A task that was accepted but never started, handed back by
/// [`ThreadPool::shutdown_now`](crate::ThreadPool::shutdown_now) (or
/// [`TaskGroup::cancel_returning`](crate::TaskGroup::cancel_returning), or in
/// [`ShutdownReport::never_started`](crate::ShutdownReport::never_started)).
///
/// It is the program's now, not the pool's: no worker will run it. Keep
/// it, run it on the calling thread with [`run`](PendingTask::run), take a
/// [`Job`] value back out with [`into_job`](PendingTask::into_job), or drop
/// it.
///
/// # Drop
///
/// Dropping it cancels it: its handle, if any, resolves
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
            Task::Plain(_, t) | Task::Named(_, t) => t.id().unwrap_or_else(TaskId::next),
            Task::Inline(_, _) => TaskId::next(),
            Task::Submitted(_, t) => t.0.header().id,
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

    /// Its place in submission order (see `entry::Stamp`).
    pub(crate) fn stamp(&self) -> Stamp {
        self.task().stamp()
    }

    /// The task's id: the same as its handle's
    /// [`TaskHandle::id`](crate::TaskHandle::id).
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = drainpool::ThreadPool::new(1).unwrap();
    /// let job = pool.group("import");
    /// job.pause(); // keep the task queued for the example
    /// let handle = job.submit(|| 7).unwrap();
    /// let pending = job.cancel_returning();
    /// assert_eq!(pending[0].id(), handle.id());
    /// ```
    pub fn id(&self) -> TaskId {
        self.id
    }

    /// The task's name, if it was given one with
    /// [`TaskBuilder::name`](crate::TaskBuilder::name).
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = drainpool::ThreadPool::new(1).unwrap();
    /// let job = pool.group("import");
    /// job.pause(); // keep the tasks queued for the example
    /// job.task().name("chunk-0").execute(|| ()).unwrap();
    /// job.execute(|| ()).unwrap();
    /// let pending = job.cancel_returning();
    /// let names: Vec<_> = pending.iter().map(|task| task.name()).collect();
    /// assert_eq!(names, [Some("chunk-0"), None]);
    /// ```
    pub fn name(&self) -> Option<&str> {
        match self.task() {
            Task::Plain(_, t) | Task::Named(_, t) => t.name().map(|n| &**n),
            Task::Inline(_, _) => None,
            Task::Submitted(_, t) => t.0.header().name().map(|name| &**name),
        }
    }

    /// Gives back the [`Job`] value of a task submitted with
    /// [`ThreadPool::submit_job`](crate::ThreadPool::submit_job), so it can be kept and submitted again
    /// later. Its handle resolves `Err(TaskError::Cancelled)` (it never started
    /// in the pool), and the pool counts it as cancelled.
    ///
    /// # Errors
    ///
    /// An [`IntoJobError`] holding the `PendingTask` itself, unchanged
    /// ([`IntoJobError::into_pending`] gives it back), if it is not a job
    /// of type `J` (a closure, or a job of another type), or if it was
    /// meanwhile run or cancelled through its handle.
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
    pub fn into_job<J: Job>(mut self) -> Result<J, IntoJobError> {
        let taken = match self.task() {
            Task::Submitted(_, entry) => entry.0.take_back(TypeId::of::<JobCall<J>>()),
            Task::Plain(_, _) | Task::Named(_, _) | Task::Inline(_, _) => None,
        };
        match taken.map(|any| any.downcast::<JobCall<J>>()) {
            Some(Ok(job)) => {
                self.task = None; // taken: nothing left to cancel on drop
                self.shared.ledger.cancelled(Custody::HandedBack, None);
                Ok(job.0)
            }
            Some(Err(_)) => unreachable!("take_back checked the type"),
            None => Err(IntoJobError::new(self, type_name::<J>())),
        }
    }

    /// Runs the task on the calling thread, now. A submitted task's handle
    /// receives the result; a panic of an `execute`d task goes to the pool's
    /// panic handler, as it would have on a worker. The pool's `completed`
    /// or `panicked` count includes it.
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = drainpool::ThreadPool::new(1).unwrap();
    /// let job = pool.group("import");
    /// job.pause(); // keep the task queued for the example
    /// let handle = job.submit(|| 6 * 7).unwrap();
    /// for task in job.cancel_returning() {
    ///     task.run(); // here, now
    /// }
    /// assert_eq!(handle.join().unwrap(), 42);
    /// ```
    pub fn run(mut self) {
        let task = self
            .task
            .take()
            .expect("a PendingTask holds its task until consumed");
        run::run_elsewhere(&self.shared, task, self.id);
    }
}

impl Drop for PendingTask {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            run::cancel_returned(&self.shared, task);
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

/// A [`PendingTask`] that is not the job [`PendingTask::into_job`] was
/// asked for, handed back whole.
///
/// That is a closure, a job of another type, or a job that meanwhile ran
/// or was cancelled through its handle. [`into_pending`](Self::into_pending)
/// gives the task back, to run, keep or drop; dropping the error drops the
/// task, which cancels it as dropping a [`PendingTask`] does.
///
/// It is an `Error + Send + Sync + 'static`, so `?` takes it into a
/// `Box<dyn Error + Send + Sync>`. A [`PendingTask`] is only `Send` (it
/// holds a closure that need not be `Sync`); the error keeps it behind a
/// mutex that only `Display` and `Debug` lock, to read its id and name.
///
/// # Examples
///
/// ```
/// use drainpool::{Job, ThreadPool};
/// use std::sync::mpsc;
///
/// struct Chunk(u32);
/// impl Job for Chunk {
///     type Output = u32;
///     fn run(self) -> u32 {
///         self.0
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
/// let handle = pool.task().name("closure").submit(|| 7).unwrap();
/// let mut pending = pool.shutdown_now();
/// release_tx.send(()).unwrap();
///
/// let Err(err) = pending.pop().unwrap().into_job::<Chunk>() else {
///     unreachable!("a closure is not a Chunk");
/// };
/// assert!(err.to_string().contains("is not a pending job of type"));
/// err.into_pending().run(); // still whole: it runs, its handle gets 7
/// assert_eq!(handle.join().unwrap(), 7);
/// ```
pub struct IntoJobError {
    task: Mutex<PendingTask>,
    job_type: &'static str,
}

impl IntoJobError {
    /// `task` was asked for as a job of type `job_type`.
    pub(crate) fn new(task: PendingTask, job_type: &'static str) -> IntoJobError {
        IntoJobError {
            task: Mutex::new(task),
            job_type,
        }
    }

    /// The task, given back unchanged.
    pub fn into_pending(self) -> PendingTask {
        self.task.into_inner()
    }
}

impl fmt::Debug for IntoJobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IntoJobError")
            .field("task", &*self.task.lock())
            .field("job_type", &self.job_type)
            .finish()
    }
}

impl fmt::Display for IntoJobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let task = self.task.lock();
        write!(f, "task {}", task.id())?;
        if let Some(name) = task.name() {
            write!(f, " ({name})")?;
        }
        write!(
            f,
            " is not a pending job of type `{}`: it is a closure, a job of another \
             type, or it already ran or was cancelled",
            self.job_type
        )
    }
}

impl std::error::Error for IntoJobError {}
