//! What the queue and a group's mailbox hold: a task's entry.

use std::sync::Arc;

use crate::inline::Inline;
use crate::runtime::cell::CellEntry;
use crate::runtime::chunk::ChunkRef;
use crate::runtime::mailbox::GroupInner;
use crate::task::TaskId;

/// Where a task stands in submission order across the queue's levels and
/// the groups' mailboxes, so that `shutdown_now` can hand tasks back in
/// that order by merging (each level and mailbox is in order already).
///
/// One counter, the queue's, is advanced only by the *rare* submissions
/// (a High or Low task, a task into a group): each takes a ticket, the
/// counter's value before its increment. A Normal entry reads the counter
/// (a plain load, no increment: the hot path stays without a shared write)
/// and keeps that value. A rare task with ticket `t` was submitted before
/// a Normal one with stamp `s` exactly when `t < s`. Tasks of one
/// submitting thread come back in the order that thread submitted them;
/// tasks submitted at once from several threads, in one of the orders
/// they could have had. 32 bits, compared with wrap-around (only stamps
/// less than 2^31 apart are ever compared: the tasks queued at once).
///
/// It fits in the padding after the entry's tag, so an entry stays three
/// words (see the test below).
pub(crate) type Stamp = u32;

/// The stamp of an entry not queued yet: `Queue::push` and the group
/// intake give it its real one.
pub(crate) const UNSTAMPED: Stamp = 0;

/// A queued task, wherever it waits: in the queue (inside an
/// [`Entry`]), in a group's mailbox, in a chunk's rest, or in a
/// `PendingTask`.
pub(crate) enum Task {
    /// From `execute`, without a name.
    Plain(Stamp, Box<dyn PlainTask>),
    /// From `execute`, with a name (its own variant, so that a worker
    /// running an unnamed one never asks for a name).
    Named(Stamp, Box<dyn PlainTask>),
    /// From `execute`: an unnamed closure of one word, in place.
    Inline(Stamp, Inline),
    /// From `submit`: a cell shared with its handle.
    Submitted(Stamp, CellEntry),
}

/// One entry of the queue: a task, or a control entry that only steers the
/// workers (as rayon keeps its `JobRef` apart from what steers its
/// scheduler). Three words, like a task: the control entries live in the
/// values the task's tag leaves unused.
pub(crate) enum Entry {
    /// A task, to run.
    Task(Task),
    /// A group's token: its next task is in the group's mailbox.
    Group(Arc<GroupInner>),
    /// Many tasks of one batch (see `chunk.rs`); never handed out as one
    /// task: `shutdown_now` takes its tasks out one by one. Its stamp is in
    /// its header.
    Chunk(ChunkRef),
    /// No work: wakes a worker blocked on an empty queue so that it sees the
    /// pool is shutting down. Each exiting worker sends one on, so a worker
    /// that blocked just before shutdown is always woken.
    Wake,
}

impl Task {
    /// Gives the task its stamp.
    #[inline(always)]
    pub(crate) fn stamped(mut self, stamp: Stamp) -> Task {
        match &mut self {
            Task::Plain(s, _) | Task::Named(s, _) | Task::Inline(s, _) | Task::Submitted(s, _) => {
                *s = stamp;
            }
        }
        self
    }

    /// The task's stamp.
    pub(crate) fn stamp(&self) -> Stamp {
        match self {
            Task::Plain(s, _) | Task::Named(s, _) | Task::Inline(s, _) | Task::Submitted(s, _) => {
                *s
            }
        }
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
    #[cfg(feature = "tracing")]
    {
        // The submitter's span goes with the task, when there is one.
        let span = crate::span::current();
        if !span.is_disabled() {
            return plain_as_is(name, move || crate::span::in_span(&span, f));
        }
    }
    plain_as_is(name, f)
}

#[inline]
fn plain_as_is<F: FnOnce() + Send + 'static>(name: Option<Arc<str>>, f: F) -> Task {
    if let Some(name) = name {
        return Task::Named(
            UNSTAMPED,
            Box::new(Named {
                id: TaskId::next(),
                name,
                f,
            }),
        );
    }
    if std::mem::size_of::<F>() == 0 {
        return Task::Plain(UNSTAMPED, Box::new(Bare(f)));
    }
    match Inline::new(f) {
        Ok(inline) => Task::Inline(UNSTAMPED, inline),
        Err(f) => Task::Plain(UNSTAMPED, Box::new(Bare(f))),
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
        assert!(std::mem::size_of::<Entry>() <= 3 * std::mem::size_of::<usize>());
    }
}
