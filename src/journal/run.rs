//! What runs on the worker: the [`Durable`] wrapper that records a job's
//! start and end around its run, [`current_job`] for the job's view of
//! itself, and the [`DurableHandle`] a durable submit returns.

use std::any::type_name;
use std::cell::RefCell;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::journal::durable::{Core, DurableJob};
use crate::journal::store::{JobId, JobState, Mark};
use crate::{Job, TaskError, TaskHandle, TaskId};

/// What the journal knows about the job running on this thread.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct JobRun {
    /// Its id in the journal.
    pub id: JobId,
    /// Its [`DurableJob::KIND`].
    pub kind: &'static str,
    /// Which run this is: 1 for the first, more after a recovery.
    pub attempt: u32,
    /// Its [`DurableJob::idempotency_key`].
    pub idempotency_key: Option<String>,
}

thread_local! {
    static CURRENT: RefCell<Option<JobRun>> = const { RefCell::new(None) };
}

/// The journaled job running on this thread, if any: called from inside
/// the [`Job::run`] of a [`DurableJob`], it tells the job its id, its
/// attempt number and its idempotency key; anywhere else, `None`.
///
/// # Examples
///
/// ```
/// assert!(drainpool::journal::current_job().is_none()); // not inside a durable job
/// ```
pub fn current_job() -> Option<JobRun> {
    CURRENT.with(|current| current.borrow().clone())
}

/// Sets [`CURRENT`] for the length of a run, and puts back what was there
/// (a durable job run with `PendingTask::run` inside another) on drop,
/// unwinding included.
#[must_use = "the current job is cleared when the guard drops"]
#[derive(Debug)]
struct CurrentGuard(Option<JobRun>);

impl CurrentGuard {
    fn enter(run: JobRun) -> CurrentGuard {
        CurrentGuard(CURRENT.with(|current| current.replace(Some(run))))
    }
}

impl Drop for CurrentGuard {
    fn drop(&mut self) {
        let previous = self.0.take();
        CURRENT.with(|current| *current.borrow_mut() = previous);
    }
}

/// A journaled job as the pool holds it: the [`Job`] a worker runs, which
/// records the job started, runs it, and records it completed (or failed,
/// if it panics: a drop guard records that while the panic unwinds on to
/// the pool).
///
/// A program meets it in two places: [`PendingTask::into_job`] gives one
/// back after `shutdown_now` (its row is still `queued`; submit it again
/// with [`ThreadPool::submit_job`], or [`JobJournal::cancel`] its
/// [`job_id`](Self::job_id)), and [`Recovered::into_job`] makes one for a
/// typed resubmit.
///
/// # Drop
///
/// Dropping it without running it writes nothing: its row stays `queued`
/// and the job is recovered at the next start. That is what a `shutdown_now`
/// followed by a drop of the handed-back tasks does, on purpose: the
/// process is stopping, not deciding that the job should never run.
///
/// [`PendingTask::into_job`]: crate::PendingTask::into_job
/// [`ThreadPool::submit_job`]: crate::ThreadPool::submit_job
/// [`JobJournal::cancel`]: crate::journal::JobJournal::cancel
/// [`Recovered::into_job`]: crate::journal::Recovered::into_job
pub struct Durable<J> {
    job: J,
    id: JobId,
    attempt: u32,
    core: Arc<Core>,
}

impl<J> Durable<J> {
    pub(crate) fn from_parts(job: J, id: JobId, attempt: u32, core: Arc<Core>) -> Durable<J> {
        Durable {
            job,
            id,
            attempt,
            core,
        }
    }

    /// Its id in the journal.
    pub fn job_id(&self) -> JobId {
        self.id
    }

    /// The job.
    pub fn job(&self) -> &J {
        &self.job
    }

    /// The job, out of its wrapper; its row stays as it is.
    pub fn into_inner(self) -> J {
        self.job
    }
}

impl<J: DurableJob> Job for Durable<J> {
    type Output = J::Output;

    fn run(self) -> J::Output {
        let Durable {
            job,
            id,
            attempt,
            core,
        } = self;
        core.mark(id, Mark::Started);
        let end = EndGuard { core: &core, id };
        let _current = CurrentGuard::enter(JobRun {
            id,
            kind: J::KIND,
            attempt,
            idempotency_key: job.idempotency_key(),
        });
        let output = job.run();
        if J::is_complete(&output) {
            EndGuard::ended(end, Mark::Ended(JobState::Completed));
        } else {
            EndGuard::ended(end, Mark::Requeued);
        }
        output
    }
}

impl<J> fmt::Debug for Durable<J> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Durable")
            .field("id", &self.id)
            .field("job", &type_name::<J>())
            .field("attempt", &self.attempt)
            .finish_non_exhaustive()
    }
}

/// Records a run's end: `completed` (or queued again) through
/// [`EndGuard::ended`], `failed` when dropped without it (the job panicked and the panic is
/// unwinding through the run).
#[must_use = "dropping the guard records the job failed"]
struct EndGuard<'a> {
    core: &'a Core,
    id: JobId,
}

impl EndGuard<'_> {
    /// Records how the run ended (completed, or to run again).
    fn ended(guard: Self, mark: Mark) {
        guard.core.mark(guard.id, mark);
        // Disarmed: the end is recorded.
        std::mem::forget(guard);
    }
}

impl Drop for EndGuard<'_> {
    fn drop(&mut self) {
        self.core.mark(self.id, Mark::Ended(JobState::Failed));
    }
}

impl fmt::Debug for EndGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EndGuard").field("id", &self.id).finish()
    }
}

/// The handle of a durable submit: a [`TaskHandle`] that also knows the
/// job's [`JobId`], and whose [`cancel`](Self::cancel) records the
/// cancellation in the journal.
///
/// Dropping it detaches the job (it still runs and records its end), as
/// dropping a [`TaskHandle`] does.
pub struct DurableHandle<T> {
    handle: TaskHandle<T>,
    id: JobId,
    core: Arc<Core>,
}

impl<T> DurableHandle<T> {
    pub(crate) fn new(handle: TaskHandle<T>, id: JobId, core: Arc<Core>) -> DurableHandle<T> {
        DurableHandle { handle, id, core }
    }

    /// The job's id in the journal.
    pub fn job_id(&self) -> JobId {
        self.id
    }

    /// The pool task's id ([`TaskHandle::id`]).
    pub fn task_id(&self) -> TaskId {
        self.handle.id()
    }

    /// Waits for the job's output ([`TaskHandle::join`]).
    ///
    /// # Errors
    ///
    /// As [`TaskHandle::join`]: the job panicked (its row says `failed`),
    /// or was cancelled.
    pub fn join(self) -> Result<T, TaskError> {
        self.handle.join()
    }

    /// Waits up to `timeout` for the job to end; true once it has.
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        self.handle.wait_timeout(timeout)
    }

    /// True once the job has ended.
    pub fn is_finished(&self) -> bool {
        self.handle.is_finished()
    }

    /// Cancels the job if it has not started ([`TaskHandle::cancel`]) and
    /// then records it `cancelled` in the journal, durably, so that no
    /// recovery brings it back. Returns true if it will never start. A
    /// failure to record is logged (the job is then recovered at the next
    /// start, where it can be cancelled again).
    pub fn cancel(&self) -> bool {
        let cancelled = self.handle.cancel();
        if cancelled {
            if let Err(e) = self.core.cancel(self.id) {
                log_error!(
                    "journal: {} was cancelled but could not be recorded so: {e}",
                    self.id
                );
            }
        }
        cancelled
    }

    /// The plain [`TaskHandle`] (its `cancel` does not write to the journal).
    pub fn into_task_handle(self) -> TaskHandle<T> {
        self.handle
    }
}

impl<T> fmt::Debug for DurableHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DurableHandle")
            .field("job_id", &self.id)
            .field("task", &self.handle)
            .finish()
    }
}
