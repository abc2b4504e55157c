//! Task groups: one job split into many tasks, cancelled, paused and watched
//! as one.
//!
//! ```
//! use drainpool::ThreadPool;
//! use std::time::Duration;
//!
//! let pool = ThreadPool::new(2).unwrap();
//! let job = pool.group("job-17");
//! for chunk in 0..100 {
//!     job.task().name(format!("chunk-{chunk}")).execute(move || {
//!         let _ = chunk * 2; // process one chunk
//!     })
//!     .unwrap();
//! }
//! assert!(job.wait(Duration::from_secs(10)));
//! assert_eq!(job.progress().completed, 100);
//! ```
//!
//! # How a group queues its tasks
//!
//! A group keeps its tasks in a mailbox of its own, in submission order. The
//! pool's queue holds at most one *token* per group: a worker that takes the
//! token takes the first task of the mailbox and, if more remain, puts the
//! token back at the end of the pool's queue before running it. So a group's
//! tasks still run in parallel, groups and plain tasks take turns, and a
//! group with a million tasks queued never makes another group's task wait
//! behind all of them.
//!
//! - [`cancel`](TaskGroup::cancel) empties the mailbox at once: every
//!   never-started task is dropped without running (its memory freed now,
//!   its handle resolved as cancelled), running tasks see the group's stop
//!   token raised, and later submits are refused with
//!   [`RejectReason::Cancelled`](crate::RejectReason::Cancelled).
//! - [`pause`](TaskGroup::pause) holds the mailbox: its tasks stay queued, in
//!   order, but no worker takes one until [`resume`](TaskGroup::resume).
//!   Other groups go on. A pool that shuts down resumes its paused groups
//!   (a drain runs everything accepted), and `pause` does nothing once the
//!   pool is shutting down; `shutdown_now` hands held tasks back too.

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::error::Rejected;
use crate::handle::TaskHandle;
use crate::runtime::GroupProgress;
use crate::runtime::PendingTask;
use crate::runtime::Shared;
use crate::runtime::entry::Task;
use crate::runtime::mailbox::GroupInner;
use crate::runtime::queue::Priority;
use crate::state::{PoolState, WhenFull, deadline_after};
use crate::stop::StopToken;
use crate::task::{Call, Closure, Job, JobCall};
use crate::task_builder::TaskBuilder;

/// A named set of tasks of one pool, cancelled, paused and waited for as
/// one; from [`ThreadPool::group`](crate::ThreadPool::group).
///
/// Cheap to clone: clones are the same group. Dropping every clone does not
/// cancel the group; its tasks still run.
#[derive(Clone)]
pub struct TaskGroup {
    shared: Arc<Shared>,
    inner: Arc<GroupInner>,
}

impl TaskGroup {
    pub(crate) fn new(shared: Arc<Shared>, name: String) -> TaskGroup {
        let inner = Arc::new(GroupInner::new(name));
        shared.register_group(&inner);
        TaskGroup { shared, inner }
    }

    /// The group's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Sets the [`Priority`] of the group's tasks (default Normal): its
    /// tasks take their turns at that level, in the group's order. Takes
    /// effect from the group's next turn.
    pub fn set_priority(&self, priority: Priority) {
        self.inner.priority.store(priority as u8, Ordering::Relaxed);
    }

    /// The group's [`Priority`].
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
    pub fn submit_job<J: Job>(&self, job: J) -> Result<TaskHandle<J::Output>, Rejected<J>> {
        self.submit_call(JobCall(job), WhenFull::Wait)
            .map_err(|rejected| rejected.map(|call| call.0))
    }

    /// A [`TaskBuilder`] for a named task of this group.
    pub fn task(&self) -> TaskBuilder<'_> {
        TaskBuilder::for_group(&self.shared, &self.inner)
    }

    fn submit_call<C: Call>(
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
    /// [`TaskError::Cancelled`]: crate::TaskError::Cancelled
    pub fn cancel(&self) -> usize {
        let tasks = self.close();
        let taken = tasks.len();
        // Each task cancelled here gives its room back as it is counted; a
        // dead entry (cancelled through its handle) gave it already.
        let mut dropped = 0;
        for task in tasks {
            if crate::runtime::run::cancel_queued(&self.shared, &self.inner, task) {
                dropped += 1;
            }
        }
        if taken > 0 {
            log::debug!(
                "group {}: cancelled, {dropped} queued task(s) dropped",
                self.inner.name
            );
        }
        dropped
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
        let tasks = self.close();
        self.shared.hand_back_tasks(&self.inner, tasks)
    }

    /// Marks the group cancelled, raises its stop token, and takes every
    /// queued task out of its mailbox.
    fn close(&self) -> VecDeque<Task> {
        let tasks = {
            let mut mailbox = self.inner.mailbox.lock();
            mailbox.cancelled = true;
            // A queued token of ours stays; the worker that takes it finds
            // the mailbox empty and skips it.
            std::mem::take(&mut mailbox.tasks)
        };
        self.inner.stop.request();
        tasks
    }

    /// Holds the group's queued tasks: they stay queued, in order, but none
    /// starts until [`resume`](Self::resume). Running tasks go on. Does
    /// nothing once the pool is shutting down (a drain runs everything).
    /// A worker that joins one of the held tasks runs it anyway (waiting
    /// for the resume could deadlock the pool).
    pub fn pause(&self) {
        let mut mailbox = self.inner.mailbox.lock();
        // Checked under the mailbox lock: `shutdown` moves the state first
        // and then resumes each group under this lock, so either we see the
        // shutdown here, or it sees our pause and undoes it.
        if self.shared.lifecycle.get() == PoolState::Running {
            mailbox.paused = true;
        }
    }

    /// Lets a paused group's tasks start again, in their order.
    pub fn resume(&self) {
        if self.inner.unpause() {
            self.shared.send_token(self.inner.clone());
        }
    }

    /// True while the group is paused.
    pub fn is_paused(&self) -> bool {
        self.inner.mailbox.lock().paused
    }

    /// True once the group was cancelled.
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
    pub fn wait(&self, timeout: Duration) -> bool {
        if crate::runtime::run::is_in_group(&self.inner) {
            log::warn!(
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
    pub fn progress(&self) -> GroupProgress {
        self.inner.counts.progress()
    }

    /// A token that fires when the group is cancelled (the tokens of its
    /// running tasks fire then too).
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
