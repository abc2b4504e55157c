//! What the queue and a group's mailbox hold: a task's entry.

use std::sync::Arc;

use crate::inline::Inline;
use crate::runtime::cell::SharedEntry;
use crate::runtime::chunk::ChunkRef;
use crate::runtime::mailbox::GroupInner;
use crate::task::TaskId;

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_queue_entry_stays_three_words() {
        assert!(std::mem::size_of::<Task>() <= 3 * std::mem::size_of::<usize>());
    }
}
