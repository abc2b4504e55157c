//! [`TaskBuilder`]: a task with a name or a priority, for a pool or a group.

use std::fmt;
use std::sync::Arc;

use crate::error::Rejected;
use crate::handle::TaskHandle;
use crate::runtime::Shared;
use crate::runtime::mailbox::GroupInner;
use crate::runtime::queue::Priority;
use crate::state::WhenFull;
use crate::task::{Call, Closure, Job, JobCall};

/// Builds a task with options before handing it to the pool; from
/// [`ThreadPool::task`](crate::ThreadPool::task).
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
    Pool(&'p Arc<Shared>),
    Group(&'p Arc<Shared>, &'p Arc<GroupInner>),
}

impl<'p> TaskBuilder<'p> {
    pub(crate) fn new(shared: &'p Arc<Shared>) -> Self {
        TaskBuilder {
            target: Target::Pool(shared),
            name: None,
            priority: Priority::Normal,
        }
    }

    pub(crate) fn for_group(shared: &'p Arc<Shared>, group: &'p Arc<GroupInner>) -> Self {
        TaskBuilder {
            target: Target::Group(shared, group),
            name: None,
            priority: Priority::Normal,
        }
    }

    fn execute_as<F>(self, f: F, when_full: WhenFull) -> Result<(), Rejected<F>>
    where
        F: FnOnce() + Send + 'static,
    {
        match self.target {
            Target::Pool(shared) => shared.execute(self.name, self.priority, f, when_full),
            Target::Group(shared, group) => shared.execute_in_group(group, self.name, f, when_full),
        }
    }

    fn submit_as<C: Call>(
        self,
        call: C,
        when_full: WhenFull,
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
        cell.map(|cell| TaskHandle::new(cell, shared.clone()))
    }

    /// Names the task: the name shows in [`ThreadPool::running_tasks`](crate::ThreadPool::running_tasks),
    /// panic reports, [`PendingTask::name`](crate::PendingTask::name) and shutdown reports.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(Arc::from(name.into()));
        self
    }

    /// The task's [`Priority`] (default Normal; the rule is in its docs).
    /// A group's tasks run in the group's order at
    /// the group's priority ([`TaskGroup::set_priority`](crate::TaskGroup::set_priority)), so for a task of
    /// a group this setting has no effect.
    pub fn priority(mut self, priority: Priority) -> Self {
        self.priority = priority;
        self
    }

    /// Like [`ThreadPool::execute`](crate::ThreadPool::execute), with this builder's options.
    ///
    /// # Errors
    ///
    /// As [`ThreadPool::execute`](crate::ThreadPool::execute).
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
    pub fn submit_job<J: Job>(self, job: J) -> Result<TaskHandle<J::Output>, Rejected<J>> {
        self.submit_as(JobCall(job), WhenFull::Wait)
            .map_err(|rejected| rejected.map(|call| call.0))
    }

    /// Like [`ThreadPool::try_submit`](crate::ThreadPool::try_submit), with this builder's options.
    ///
    /// # Errors
    ///
    /// As [`ThreadPool::try_submit`](crate::ThreadPool::try_submit).
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
            .finish_non_exhaustive()
    }
}
