//! [`JobTarget`]: where a durable job goes, a pool or one of its groups.

use crate::{Job, Rejected, TaskGroup, TaskHandle, ThreadPool};

/// Where [`JobJournal::submit`](crate::journal::JobJournal::submit) and
/// recovery hand a journaled job once it is recorded: a [`ThreadPool`], or
/// a [`TaskGroup`] of one (to pause, wait for and watch durable jobs as one
/// job).
///
/// Sealed: implemented for `ThreadPool` and `TaskGroup` only, and for
/// whatever derefs to one (an `Arc<ThreadPool>`, say).
///
/// A group's [`cancel`](TaskGroup::cancel) drops its queued tasks without
/// telling the journal: their rows stay `queued` and the next start
/// recovers them. To make such a cancel final, take the tasks back with
/// [`TaskGroup::cancel_returning`], turn each into its
/// [`Durable`](crate::journal::Durable) with
/// [`PendingTask::into_job`](crate::PendingTask::into_job), and
/// [`JobJournal::cancel`](crate::journal::JobJournal::cancel) its
/// [`job_id`](crate::journal::Durable::job_id).
pub trait JobTarget: sealed::Sealed {
    /// The target as one of the two kinds.
    #[doc(hidden)]
    fn target(&self) -> Target<'_>;
}

/// A [`JobTarget`], resolved (for the type-erased resubmit of a recovered
/// job, which cannot be generic over the target).
#[doc(hidden)]
#[derive(Clone, Copy, Debug)]
pub enum Target<'a> {
    /// A pool.
    Pool(&'a ThreadPool),
    /// A group.
    Group(&'a TaskGroup),
}

impl Target<'_> {
    /// Submits `job` to the pool or the group.
    pub(crate) fn submit_job<J: Job>(self, job: J) -> Result<TaskHandle<J::Output>, Rejected<J>> {
        match self {
            Target::Pool(pool) => pool.submit_job(job),
            Target::Group(group) => group.submit_job(job),
        }
    }

    /// True when it surely refuses new work: nothing need be recorded.
    pub(crate) fn refuses_work(self) -> bool {
        match self {
            Target::Pool(pool) => pool.is_shutdown(),
            Target::Group(group) => group.is_cancelled(),
        }
    }
}

impl JobTarget for ThreadPool {
    fn target(&self) -> Target<'_> {
        Target::Pool(self)
    }
}

impl JobTarget for TaskGroup {
    fn target(&self) -> Target<'_> {
        Target::Group(self)
    }
}

/// Through a smart pointer (`Arc<ThreadPool>`, a wrapper that derefs to a
/// pool), as a `&ThreadPool` argument would coerce.
impl<P> JobTarget for P
where
    P: std::ops::Deref,
    P::Target: JobTarget,
{
    fn target(&self) -> Target<'_> {
        (**self).target()
    }
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for crate::ThreadPool {}
    impl Sealed for crate::TaskGroup {}
    impl<P> Sealed for P
    where
        P: std::ops::Deref,
        P::Target: Sealed,
    {
    }
}
