//! A scope's queue: its spawned tasks waiting to start, the turn that
//! stands for them in the pool's queue, and the close that cancels them.
//!
//! A spawn pushes its task here, lock-free ([`Fifo`]), and sends the
//! scope's *turn* (a group token, `Entry::Group`) into the pool's queue
//! only if no turn is out already. A worker that takes the turn
//! ([`ScopeQueue::take_turn`]) takes the first task and, before running
//! it, either sends the turn back (more tasks wait: another worker may
//! start the next one meanwhile) or gives it up; then it goes on taking
//! this scope's tasks without the turn, for a bounded run (`Shared::take_scope_turn`, in `scope.rs`).
//! So a scope costs the pool's queue one turn per run of tasks instead
//! of one per task, and no lock.
//!
//! # The invariant: a queued task has a turn out
//!
//! While the queue is not empty, `scheduled` is true and exactly one turn
//! is in the pool's queue or in the hand of the worker that took it, who
//! ends it by sending it back or by giving it up. No lost turn:
//!
//! - a pusher pushes (a SeqCst compare-and-swap of the tail), then reads
//!   `scheduled` (SeqCst): false, and it swaps it to true and sends a
//!   turn (the swap makes it the only one);
//! - a worker giving the turn up stores `scheduled = false` (SeqCst),
//!   then reads the queue's ends (SeqCst): not empty, and it swaps
//!   `scheduled` back and keeps the turn.
//!
//! By the SeqCst order of those four accesses, either the worker sees
//! the push or the pusher sees `false`; if both, the swap decides who
//! sends. (`tests/loom_scope_queue.rs` checks it: dropping the worker's
//! second look leaves a task queued with no turn out.)
//!
//! # Closing
//!
//! [`ScopeQueue::close`] marks the queue closed, then takes every task
//! left, for the caller to cancel. A push looks at the mark first (a
//! closed queue refuses) and again after pushing: a close between the
//! two may have taken its task or not, so the pusher takes what is left
//! itself ([`Pushed::Closed`]). By the same Dekker pair (the close's
//! SeqCst swap and fence against the push's tail claim and SeqCst look),
//! no task is left in a closed queue once every push has returned. A task
//! a worker took just before the close is cancelled by that worker, which
//! looks at the mark before running it.

use crate::runtime::fifo::Fifo;
use crate::sync::{AtomicBool, CATCH_UP_GAP_NANOS, Ordering, dekker_fence, fence, pause_for};

/// How many times `pop_soon` waits [`CATCH_UP_GAP_NANOS`] and looks again
/// at an empty queue: about 20 µs in all before the worker goes back to
/// the pool's queue (the scope's turn is out meanwhile, so a newly queued
/// task of the scope still finds a worker).
///
/// Unlike a worker of the pool's queue (see [`Streak`](crate::sync::Streak)),
/// a worker here always waits before it looks again, however few tasks it
/// took: a scope is bulk work whose spawner is usually a loop, and a
/// thread waiting for one of its tasks (a join, the scope's end) runs it
/// itself if no worker has. Measured on 2 workers, 100k tiny spawns
/// (median of 50 scopes): looks about 25, 50, 100 ns ... apart took 140-150
/// ns per task where rayon's scope took 130-140; 5 µs apart, 80-100 ns.
/// When the two cores were far apart (a slow phase of this shared machine,
/// rayon's scope at about 400 ns), 490 and 210 ns.
const LOOKS: u32 = 4;

/// A scope's queued tasks and its turn (see the module docs).
pub(crate) struct ScopeQueue<T> {
    tasks: Fifo<T>,
    /// A turn is out: in the pool's queue or in a worker's hand.
    scheduled: AtomicBool,
    /// Closed (the scope was cancelled): pushes are refused.
    closed: AtomicBool,
}

/// What a push did.
#[derive(Debug)]
pub(crate) enum Pushed<T> {
    /// Queued; `send_turn`: no turn was out, the caller must send one.
    Queued { send_turn: bool },
    /// The queue was closed first: the value comes back.
    Refused(T),
    /// Queued, but the queue was closed meanwhile: what was left in it
    /// (the value itself, unless a worker or the close took it), for the
    /// caller to cancel.
    Closed(Vec<T>),
}

impl<T> ScopeQueue<T> {
    pub(crate) fn new() -> ScopeQueue<T> {
        ScopeQueue {
            tasks: Fifo::new(),
            scheduled: AtomicBool::new(false),
            closed: AtomicBool::new(false),
        }
    }

    /// Queues `value` (see [`Pushed`]).
    #[inline]
    pub(crate) fn push(&self, value: T) -> Pushed<T> {
        if self.is_closed() {
            return Pushed::Refused(value);
        }
        // The tail's SeqCst claim, then (after `dekker_fence`, which only
        // marks the pair for loom) the two SeqCst looks below.
        self.tasks.push(value);
        dekker_fence();
        // ORDERING: SeqCst, one side of the close's Dekker pair.
        if self.closed.load(Ordering::SeqCst) {
            return Pushed::Closed(self.take_all());
        }
        // ORDERING: SeqCst, one side of the turn's Dekker pair; the swap
        // makes one pusher the sender.
        let send_turn =
            !self.scheduled.load(Ordering::SeqCst) && !self.scheduled.swap(true, Ordering::SeqCst);
        Pushed::Queued { send_turn }
    }

    /// For the worker that took the turn: the first queued task, if any,
    /// and whether it must send the turn back into the pool's queue (more
    /// tasks wait). Otherwise the turn is given up here.
    pub(crate) fn take_turn(&self) -> (Option<T>, bool) {
        let first = self.tasks.pop();
        if !self.tasks.is_empty() {
            return (first, true);
        }
        // ORDERING: SeqCst store, then the SeqCst looks of `is_empty`:
        // the worker's side of the turn's Dekker pair.
        self.scheduled.store(false, Ordering::SeqCst);
        dekker_fence();
        // A push in between: the turn is ours again unless its pusher
        // took it (and sends it) first.
        let again = !self.tasks.is_empty() && !self.scheduled.swap(true, Ordering::SeqCst);
        (first, again)
    }

    /// The oldest queued task, taken without the turn (a worker going on
    /// with its run, or the scope's caller helping).
    #[inline]
    pub(crate) fn pop(&self) -> Option<T> {
        self.tasks.pop()
    }

    /// `pop`, looking again a few times, [`CATCH_UP_GAP_NANOS`] apart,
    /// before it gives up: a worker at the end of its run, while the scope's
    /// caller is likely still spawning.
    #[inline]
    pub(crate) fn pop_soon(&self) -> Option<T> {
        for _ in 0..LOOKS {
            if let Some(value) = self.tasks.pop() {
                return Some(value);
            }
            pause_for(CATCH_UP_GAP_NANOS);
        }
        std::thread::yield_now();
        self.tasks.pop()
    }

    /// True if nothing was queued when it looked.
    pub(crate) fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    /// True once the queue was closed.
    #[inline]
    pub(crate) fn is_closed(&self) -> bool {
        // ORDERING: Acquire, pairs with the close's swap: a worker that
        // sees the mark sees the cancel that set it.
        self.closed.load(Ordering::Acquire)
    }

    /// Closes the queue (later pushes are refused) and takes every task
    /// left in it, for the caller to cancel.
    pub(crate) fn close(&self) -> Vec<T> {
        // ORDERING: SeqCst store and a SeqCst fence before the queue's
        // looks: the close's side of the Dekker pair with a push.
        self.closed.store(true, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        self.take_all()
    }

    fn take_all(&self) -> Vec<T> {
        std::iter::from_fn(|| self.tasks.pop()).collect()
    }
}
