//! The pool's queue: three FIFO levels of [`Priority`], each a
//! [`Fifo`] of our own (its protocol, memory reclamation and lost-wake-up
//! argument are in `fifo.rs`).
//!
//! The rule a user sees (highest level first, FIFO within a level, every
//! 8th take from the lowest level up) is on [`Priority`], where it
//! renders. How it is kept here:
//!
//! - A chunk of a large batch (see `chunk.rs`) is one entry, one take: its
//!   worker runs all its tasks before taking again.
//! - Only takes by the rule count as turns (`try_take_by_rule`); a
//!   wake-up entry is skipped and counts for nothing.
//! - A pool whose tasks are all Normal (the default) pays one load of a
//!   counter nobody writes for the other levels (`elsewhere`). A High or Low
//!   entry also puts a wake-up in the Normal level, which is where idle
//!   workers block.

use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};

use crate::runtime::entry::{Entry, Stamp, Task};
use crate::runtime::fifo::Fifo;

/// How urgent a task or a group is.
///
/// A worker takes the oldest task of the highest level that has one: High,
/// then Normal, then Low; within a level, submission order. So that a low
/// level is slowed by busy higher ones but never starved, every 8th task a
/// worker takes (while any High or Low task is queued) it looks from the
/// lowest level up instead: a task at the head of a lower level waits for
/// at most 8 takes of each worker. (A large
/// [`execute_batch`](crate::ThreadPool::execute_batch) is taken in chunks
/// of up to 128 tasks, a chunk in one take.)
///
/// Set it per task with [`TaskBuilder::priority`](crate::TaskBuilder::priority)
/// or per group with [`TaskGroup::set_priority`](crate::TaskGroup::set_priority);
/// a group's tasks take their turns at the group's level, in the group's
/// order. Priority decides only which queued task starts next: a running
/// task is never preempted, and [`ThreadPool::shutdown_now`](crate::ThreadPool::shutdown_now)
/// hands tasks back in submission order whatever their priority.
///
/// # Examples
///
/// One busy worker, three tasks queued behind it, lowest priority first:
/// they start highest first.
///
/// ```
/// use drainpool::crossbeam_channel::unbounded;
/// use drainpool::{Priority, ThreadPool};
/// use std::time::Duration;
///
/// let pool = ThreadPool::new(1).unwrap();
/// let (started_tx, started) = unbounded();
/// let (release, released) = unbounded::<()>();
/// pool.execute(move || {
///     started_tx.send(()).unwrap();
///     released.recv().unwrap();
/// })
/// .unwrap();
/// started.recv().unwrap(); // the only worker is busy: the rest queues
///
/// let (order_tx, order) = unbounded();
/// for priority in [Priority::Low, Priority::Normal, Priority::High] {
///     let order_tx = order_tx.clone();
///     pool.task()
///         .priority(priority)
///         .execute(move || order_tx.send(priority).unwrap())
///         .unwrap();
/// }
/// let reindex = pool.group("reindex");
/// reindex.set_priority(Priority::Low); // background work yields to the rest
///
/// release.send(()).unwrap();
/// pool.shutdown();
/// assert!(pool.await_termination(Duration::from_secs(10)));
/// let started: Vec<Priority> = order.try_iter().collect();
/// assert_eq!(started, [Priority::High, Priority::Normal, Priority::Low]);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Priority {
    /// Taken before Normal and Low tasks.
    High,
    /// The default.
    #[default]
    Normal,
    /// Taken after High and Normal tasks (but never starved by them).
    Low,
}

/// Every this many takes, a worker looks from the lowest level up.
pub(crate) const STARVATION_TURN: u32 = 8;

/// Three FIFOs (`fifo.rs`); see the module docs.
pub(crate) struct Queue {
    /// High, Normal, Low.
    levels: [Fifo<Entry>; 3],
    /// Entries in the High and Low levels.
    elsewhere: AtomicUsize,
    /// The submission-order counter (see `entry::Stamp`), advanced only by
    /// rare submissions, on a line of its own: the Normal submitters that
    /// read it never share a line that others write on the hot path.
    order: Order,
}

#[repr(align(128))]
struct Order(AtomicU32);

impl Queue {
    pub(crate) fn new() -> Queue {
        Queue {
            levels: [Fifo::new(), Fifo::new(), Fifo::new()],
            elsewhere: AtomicUsize::new(0),
            order: Order(AtomicU32::new(0)),
        }
    }

    fn level(&self, priority: Priority) -> &Fifo<Entry> {
        &self.levels[priority as usize]
    }

    /// The stamp of a Normal entry queued now (see `entry::Stamp`).
    #[inline(always)]
    pub(crate) fn normal_stamp(&self) -> Stamp {
        // ORDERING: Relaxed: only the order of one thread's own
        // submissions is promised, and a thread's load sees its own
        // earlier increments (coherence).
        self.order.0.load(Ordering::Relaxed)
    }

    /// A ticket for a rare submission (High, Low, a group's task).
    pub(crate) fn ticket(&self) -> Stamp {
        // ORDERING: Relaxed, as for `normal_stamp`.
        self.order.0.fetch_add(1, Ordering::Relaxed)
    }

    /// Appends `task` at `priority`, stamped with its place in submission
    /// order.
    #[inline]
    pub(crate) fn push(&self, priority: Priority, task: Task) {
        if priority == Priority::Normal {
            self.send(priority, Entry::Task(task.stamped(self.normal_stamp())));
        } else {
            let task = task.stamped(self.ticket());
            self.push_elsewhere(priority, Entry::Task(task));
        }
    }

    /// Appends a control entry (a group's token, a chunk's extra entry)
    /// at `priority`: no task, no stamp.
    pub(crate) fn push_control(&self, priority: Priority, entry: Entry) {
        if priority == Priority::Normal {
            self.send(priority, entry);
        } else {
            self.push_elsewhere(priority, entry);
        }
    }

    /// `push` at High or Low: out of line, so the Normal case stays small.
    #[inline(never)]
    fn push_elsewhere(&self, priority: Priority, entry: Entry) {
        // ORDERING: counted before it is visible, so a worker that sees the
        // entry also sees a non-zero count.
        self.elsewhere.fetch_add(1, Ordering::SeqCst);
        self.send(priority, entry);
        self.send(Priority::Normal, Entry::Wake); // idle workers block there
    }

    #[inline]
    fn send(&self, priority: Priority, entry: Entry) {
        self.level(priority).push(entry);
    }

    /// A wake-up for a worker blocked on the empty queue.
    pub(crate) fn push_wake(&self) {
        self.send(Priority::Normal, Entry::Wake);
    }

    /// The next entry by the rule; `turn` is the worker's take counter.
    #[inline(always)]
    pub(crate) fn try_take(&self, turn: &mut u32) -> Option<Entry> {
        if self.elsewhere.load(Ordering::Relaxed) == 0 {
            return self.try_take_at(Priority::Normal);
        }
        self.try_take_by_rule(turn)
    }

    /// `try_take` when some level other than Normal has entries.
    #[inline(never)]
    fn try_take_by_rule(&self, turn: &mut u32) -> Option<Entry> {
        loop {
            let lowest_first = turn.wrapping_add(1) % STARVATION_TURN == 0;
            let order = if lowest_first {
                [Priority::Low, Priority::Normal, Priority::High]
            } else {
                [Priority::High, Priority::Normal, Priority::Low]
            };
            match order.into_iter().find_map(|p| self.try_take_at(p))? {
                // A wake-up matters only to an idle worker; a busy one skips
                // it, and only tasks count as turns.
                Entry::Wake => continue,
                task => {
                    *turn = turn.wrapping_add(1);
                    return Some(task);
                }
            }
        }
    }

    #[inline]
    fn try_take_at(&self, priority: Priority) -> Option<Entry> {
        let task = self.level(priority).pop()?;
        if priority != Priority::Normal {
            self.elsewhere.fetch_sub(1, Ordering::SeqCst);
        }
        Some(task)
    }

    /// Blocks until an entry arrives in the Normal level (every entry of
    /// another level brings a wake-up there).
    pub(crate) fn take_blocking(&self) -> Option<Entry> {
        self.level(Priority::Normal).pop_wait(None)
    }

    /// Like `take_blocking`, for at most `timeout`.
    pub(crate) fn take_timeout(&self, timeout: std::time::Duration) -> Option<Entry> {
        let deadline = std::time::Instant::now().checked_add(timeout);
        self.level(Priority::Normal).pop_wait(deadline)
    }

    /// Takes any entry, High first: for drains.
    #[inline]
    pub(crate) fn drain_one(&self) -> Option<Entry> {
        // ORDERING: an entry of another level is counted before it is sent
        // (see `push`), so a zero count means those levels are empty.
        if self.elsewhere.load(Ordering::SeqCst) == 0 {
            return self.try_take_at(Priority::Normal);
        }
        [Priority::High, Priority::Normal, Priority::Low]
            .into_iter()
            .find_map(|p| self.try_take_at(p))
    }

    /// Takes every entry of one level, in order: for `shutdown_now`, which
    /// merges the levels by stamp.
    pub(crate) fn drain_level(&self, priority: Priority) -> impl Iterator<Item = Entry> + '_ {
        std::iter::from_fn(move || self.try_take_at(priority))
    }

    /// Entries queued now, of every level (a chunk or a group's token
    /// counts one): a size hint for drains.
    pub(crate) fn len(&self) -> usize {
        self.levels.iter().map(Fifo::len).sum()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.levels.iter().all(Fifo::is_empty)
    }
}
