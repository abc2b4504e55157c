//! The lifecycle state machine and the intake gate.
//!
//! ```text
//!             shutdown()                shutdown_now()
//!   Running ─────────────▶ ShuttingDown ─────────────▶ Stopping
//!      │                        │                          │
//!      │ shutdown_now()         │ last worker exits        │ last worker exits
//!      └────────────────────────┼──────────────────────────┤
//!                               ▼                          ▼
//!                          Terminated ◀─────────────────────
//! ```
//!
//! Transitions only go forward (the state is an `AtomicU8` moved with
//! `fetch_max`). `Running` accepts work. `ShuttingDown` refuses new work and
//! drains the queue. `Stopping` refuses new work, and the queue has been
//! emptied into the `Vec<PendingTask>` that `shutdown_now` returned; workers
//! finish the task in hand and exit. `Terminated` is set by the last worker
//! to exit, after `on_terminated` ran.
//!
//! # The accounting invariant
//!
//! At any quiescent moment:
//!
//! ```text
//! submitted = completed + panicked + cancelled + returned_by_shutdown_now_and_still_held
//! ```
//!
//! and every rejected task was handed back inside `Rejected`. The pieces that
//! make it hold:
//!
//! - **Intake is linearised against shutdown by the [`Gate`].** A submitter
//!   enters the gate (bumps its own stripe), then reads the state; only
//!   if it reads `Running` does it enqueue, and it leaves the gate after. The
//!   shutdown side moves the state first and reads the gate after. Both use
//!   `SeqCst`, so (Dekker) either the submitter sees the new state and
//!   rejects, or the shutdown side sees the submitter in the gate and waits
//!   for it: a task is never enqueued behind the back of a worker that has
//!   decided to exit, nor behind a `shutdown_now` that has emptied the queue.
//! - **Workers exit only when the state is past `Running`, the gate is clear
//!   and the queue is empty** (checked in that order), so a drain never
//!   strands an accepted task.
//! - **Every task is claimed once.** A queued submit cell is claimed with a
//!   state change under its own lock, by exactly one of: a worker, a joiner
//!   helping, `cancel`, `shutdown_now`'s `PendingTask`. A task in a chunk of
//!   a batch is taken out of the chunk under the chunk's lock, one at a
//!   time, by a worker about to start it or by `shutdown_now` (see
//!   `chunk.rs`).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::error::RejectReason;
use crate::sync::{
    AtomicU8, AtomicU64, AtomicUsize, Condvar, Mutex, Ordering, Waiters, dekker_fence,
};

/// Where a pool is in its life; from [`ThreadPool::state`].
///
/// States are ordered, and a pool only ever moves to a greater one:
///
/// ```text
///             shutdown()                shutdown_now()
///   Running ─────────────▶ ShuttingDown ─────────────▶ Stopping
///      │                        │                          │
///      │ shutdown_now()         │ last worker exits        │ last worker exits
///      └────────────────────────┼──────────────────────────┤
///                               ▼                          ▼
///                          Terminated ◀─────────────────────
/// ```
///
/// `Running` accepts work. `ShuttingDown` refuses new work and drains: every
/// task already accepted still runs. `Stopping` refuses new work; the tasks
/// that never started were handed back by `shutdown_now`, and the workers
/// finish the task in hand and exit. The last worker to exit runs
/// [`Builder::on_terminated`](crate::Builder::on_terminated) and marks the
/// pool `Terminated` (or, if a scope's caller outside the pool still runs
/// one of its scope's tasks, that caller does once the task has ended: see
/// [`ThreadPool::scope`](crate::ThreadPool::scope)). Calling `shutdown` or `shutdown_now` again, or
/// `shutdown` after `shutdown_now`, never moves a pool back.
///
/// # Examples
///
/// ```
/// use drainpool::{PoolState, ThreadPool};
/// use std::time::Duration;
///
/// let pool = ThreadPool::new(2).unwrap();
/// assert_eq!(pool.state(), PoolState::Running);
/// pool.shutdown();
/// assert!(pool.state() >= PoolState::ShuttingDown); // or already Terminated
/// assert!(pool.await_termination(Duration::from_secs(10)));
/// let _ = pool.shutdown_now(); // too late to move anywhere
/// assert_eq!(pool.state(), PoolState::Terminated);
/// ```
///
/// [`ThreadPool::state`]: crate::ThreadPool::state
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PoolState {
    /// Accepting and running tasks.
    Running,
    /// [`shutdown`](crate::ThreadPool::shutdown) was called: no new tasks are
    /// accepted; every accepted task still runs.
    ShuttingDown,
    /// [`shutdown_now`](crate::ThreadPool::shutdown_now) was called: no new
    /// tasks are accepted, queued tasks were handed back, running tasks see
    /// their stop token raised.
    Stopping,
    /// Every worker has exited and `on_terminated` has run.
    Terminated,
}

impl PoolState {
    #[inline]
    fn from_u8(v: u8) -> PoolState {
        match v {
            0 => PoolState::Running,
            1 => PoolState::ShuttingDown,
            2 => PoolState::Stopping,
            _ => PoolState::Terminated,
        }
    }
}

/// The pool's state word and the latch that `await_termination` waits on.
pub(crate) struct Lifecycle {
    state: AtomicU8,
    /// Notified on termination and on the move to `Stopping`.
    waiters: Waiters,
}

impl Lifecycle {
    pub(crate) fn new() -> Self {
        Lifecycle {
            state: AtomicU8::new(PoolState::Running as u8),
            waiters: Waiters::new(),
        }
    }

    /// The current state.
    #[inline]
    pub(crate) fn get(&self) -> PoolState {
        // ORDERING: SeqCst pairs with the SeqCst stripe increment in
        // `Gate::enter` (see the module docs: Dekker between intake and
        // shutdown). Everywhere else Acquire would do; one ordering keeps it
        // simple and this load is not on a contended line.
        PoolState::from_u8(self.state.load(Ordering::SeqCst))
    }

    /// Moves forward to `to` unless already there or beyond; returns the
    /// state before the call.
    pub(crate) fn advance(&self, to: PoolState) -> PoolState {
        debug_assert!(to != PoolState::Terminated, "use set_terminated");
        // ORDERING: SeqCst, the shutdown half of the Dekker pair with
        // `Gate::enter`.
        let before = self.state.fetch_max(to as u8, Ordering::SeqCst);
        dekker_fence();
        PoolState::from_u8(before)
    }

    /// Marks the pool terminated and wakes every `await_termination`.
    pub(crate) fn set_terminated(&self) {
        self.state
            .store(PoolState::Terminated as u8, Ordering::SeqCst);
        self.waiters.notify();
    }

    /// Waits until terminated or the deadline (`None`: forever) passes.
    pub(crate) fn wait_terminated(&self, deadline: Option<Instant>) -> bool {
        self.wait_at_least(PoolState::Terminated, deadline) == PoolState::Terminated
    }

    /// Waits until the state is at least `state` or the deadline (`None`:
    /// forever) passes; returns the state then.
    pub(crate) fn wait_at_least(&self, state: PoolState, deadline: Option<Instant>) -> PoolState {
        // No lost wake-up: every move a waiter may wait for is followed by
        // `notify_waiters` (or is `set_terminated`), which notifies; see
        // `Waiters`.
        self.waiters.wait_until(deadline, || self.get() >= state);
        self.get()
    }

    /// Wakes `wait_at_least` callers after a move to `Stopping`.
    pub(crate) fn notify_waiters(&self) {
        self.waiters.notify();
    }
}

/// Number of stripes of the gate; submitters pick one by thread.
const GATE_STRIPES: usize = 8;
/// Low bits of a gate stripe: submitters inside now.
const INSIDE_MASK: u64 = 0xFFFF;
/// High bits of a gate stripe: tasks accepted through it, ever.
const ACCEPTED_ONE: u64 = 1 << 16;

/// One cache line per stripe, so producers on different threads never share a
/// line on the submit path.
#[repr(align(128))]
#[derive(Default)]
struct Stripe(AtomicU64);

/// The intake gate: counts submitters between "checked the state" and
/// "enqueued the task", and the tasks accepted through it.
///
/// Each stripe packs two counters in one word, so entering is one RMW and
/// leaving (with the task accepted or not) is one more: the low 16 bits count
/// submitters inside (at most 65 535 at once per stripe), the high 48 bits count
/// accepted tasks. A task is counted as accepted when its submitter enters,
/// before it can possibly run, and uncounted if it is refused: so the
/// accepted count never lags behind a task that has already ended, and
/// "accepted minus ended" never underestimates the work in the pool. Slots are striped by thread so producers on different
/// threads touch different cache lines; the readers (shutdown, statistics,
/// `wait_idle`) sum the stripes.
pub(crate) struct Gate {
    stripes: [Stripe; GATE_STRIPES],
    /// `wait_clear` callers.
    cleared: Waiters,
}

#[cfg(not(loom))]
thread_local! {
    /// The calling thread's stripe, assigned on its first pass (`usize::MAX`
    /// until then); const-initialised so reading it is a plain load.
    static GATE_STRIPE: std::cell::Cell<usize> = const { std::cell::Cell::new(usize::MAX) };
}

/// The calling thread's stripe of the gate.
#[cfg(not(loom))]
#[inline]
fn gate_stripe() -> usize {
    let stripe = GATE_STRIPE.with(std::cell::Cell::get);
    if stripe != usize::MAX {
        return stripe;
    }
    // Not modelled (it only spreads threads over stripes): plain std.
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let stripe = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % GATE_STRIPES;
    GATE_STRIPE.with(|s| s.set(stripe));
    stripe
}

// Loom's threads share one OS thread, and so std's thread-locals: give each
// its own stripe, in an order that is part of the explored schedule.
#[cfg(loom)]
loom::lazy_static! {
    static ref NEXT_GATE_STRIPE: AtomicUsize = AtomicUsize::new(0);
}
#[cfg(loom)]
loom::thread_local! {
    static GATE_STRIPE: usize = NEXT_GATE_STRIPE.fetch_add(1, Ordering::Relaxed) % GATE_STRIPES;
}

#[cfg(loom)]
fn gate_stripe() -> usize {
    GATE_STRIPE.with(|s| *s)
}

/// Proof of being inside the gate; leaving happens on drop, also on unwind.
#[must_use = "the submitter leaves the gate when this is dropped"]
pub(crate) struct GatePass<'a> {
    gate: &'a Gate,
    lifecycle: &'a Lifecycle,
    stripe: usize,
    /// Tasks counted as accepted on entry and given back on drop: zero once
    /// they were enqueued (`accept`).
    give_back: u64,
}

impl GatePass<'_> {
    /// Records that the task(s) were enqueued; if this is never called, the
    /// count taken on entry is given back when the pass is dropped.
    pub(crate) fn accept(&mut self) {
        self.give_back = 0;
    }
}

impl Gate {
    pub(crate) fn new() -> Self {
        Gate {
            stripes: Default::default(),
            cleared: Waiters::new(),
        }
    }

    /// Enters the gate, for `tasks` tasks, if the pool is still `Running`.
    #[inline]
    pub(crate) fn enter<'a>(
        &'a self,
        lifecycle: &'a Lifecycle,
        tasks: u64,
    ) -> Option<GatePass<'a>> {
        self.enter_while(lifecycle, tasks, PoolState::Running)
    }

    /// Enters the gate, for `tasks` tasks, if the pool is at most at
    /// `last`: `Running` for every submitter; `ShuttingDown` for a scope
    /// opened by a task the drain runs, on that task's worker (a worker
    /// about to exit waits for the gate to clear first, and then sees the
    /// task queued: see `drain_is_over`).
    #[inline]
    pub(crate) fn enter_while<'a>(
        &'a self,
        lifecycle: &'a Lifecycle,
        tasks: u64,
        last: PoolState,
    ) -> Option<GatePass<'a>> {
        let stripe = gate_stripe();
        // ORDERING: SeqCst increment, then SeqCst state load: see the module
        // docs. If we read Running, the shutdown side's later sum sees us.
        self.stripes[stripe]
            .0
            .fetch_add(tasks * ACCEPTED_ONE + 1, Ordering::SeqCst);
        dekker_fence();
        let pass = GatePass {
            gate: self,
            lifecycle,
            stripe,
            give_back: tasks,
        };
        if lifecycle.get() <= last {
            Some(pass)
        } else {
            None // dropping `pass` leaves the gate
        }
    }

    /// Stands inside the gate without a task, whatever the state: workers
    /// that find the queue empty wait for the gate to clear before they
    /// decide the drain is over, so whatever the holder still enqueues
    /// (`shutdown` re-queuing paused groups) is drained too.
    pub(crate) fn hold<'a>(&'a self, lifecycle: &'a Lifecycle) -> GatePass<'a> {
        let stripe = gate_stripe();
        // ORDERING: SeqCst, before the caller moves the state (see `enter`).
        self.stripes[stripe].0.fetch_add(1, Ordering::SeqCst);
        dekker_fence();
        GatePass {
            gate: self,
            lifecycle,
            stripe,
            give_back: 0,
        }
    }

    /// True if no submitter is inside the gate.
    pub(crate) fn is_clear(&self) -> bool {
        // ORDERING: SeqCst loads after the caller's SeqCst state change; a
        // load that reads a submitter's leaving RMW synchronises with it, so
        // the task that submitter enqueued is visible to us.
        self.stripes
            .iter()
            .all(|s| s.0.load(Ordering::SeqCst) & INSIDE_MASK == 0)
    }

    /// How many tasks were ever accepted through the gate, counting those of
    /// submitters still inside.
    pub(crate) fn accepted(&self) -> u64 {
        self.stripes
            .iter()
            .map(|s| s.0.load(Ordering::SeqCst) >> 16)
            .sum()
    }

    /// Blocks until no submitter is inside. Only meaningful once the state is
    /// past `Running` (no one new can enter then), and short: submitters in
    /// the gate either enqueue without blocking or are woken by shutdown.
    pub(crate) fn wait_clear(&self) {
        // No lost wake-up: a leaving submitter that sees the state past
        // Running notifies after its leaving RMW; see `Waiters`.
        self.cleared.wait_until(None, || self.is_clear());
    }
}

impl Drop for GatePass<'_> {
    #[inline]
    fn drop(&mut self) {
        let stripe = &self.gate.stripes[self.stripe].0;
        // ORDERING: SeqCst (at least Release) so that the enqueue before it
        // is visible to whoever reads the new value. We subtract only what
        // `enter` added.
        stripe.fetch_sub(self.give_back * ACCEPTED_ONE + 1, Ordering::SeqCst);
        dekker_fence();
        if self.lifecycle.get() != PoolState::Running {
            self.gate.notify_cleared();
        }
    }
}

impl Gate {
    /// Wakes `wait_clear` callers: out of line, it only happens once the
    /// pool is shutting down.
    #[cold]
    #[inline(never)]
    fn notify_cleared(&self) {
        self.cleared.notify();
    }
}

/// The room left in a bounded queue ([`Builder::queue_capacity`]).
///
/// A submitter reserves a place before it enters the gate and enqueues. The
/// place comes back when the task's end is decided (see the runtime notes):
/// a worker taking a plain task, the claim of a submitted task's cell (run,
/// cancel), a hand-back by `shutdown_now`, a group's cancel, or a refusal at
/// the gate. So a cancelled task gives its room back at once, not when a
/// worker skips its dead entry. Only bounded pools have one, so an unbounded
/// pool's submit path touches no shared counter for it. The queue itself is
/// always unbounded (`runtime/fifo.rs`): internal entries (wake-ups) never compete
/// with tasks for room, and a worker never blocks on a full queue.
///
/// Waiters are served in the order they came: a submitter that finds others
/// waiting joins the end of the line instead of taking a place that frees
/// up, so a batch waiting for many places is not starved by single
/// submitters that each need one.
///
/// [`Builder::queue_capacity`]: crate::Builder::queue_capacity
pub(crate) struct Bound {
    capacity: usize,
    queued: AtomicUsize,
    /// Submitters in `line`, readable without the lock.
    waiters: AtomicUsize,
    line: Mutex<Line>,
    room: Condvar,
}

/// The submitters waiting for room, by ticket, in arrival order.
struct Line {
    next_ticket: u64,
    waiting: VecDeque<u64>,
}

/// What a reservation may do when the queue is full.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WhenFull {
    /// Refuse at once with `QueueFull` (`try_execute`, `try_submit`).
    Refuse,
    /// Wait for room, in line (`execute`, `submit`, batches).
    Wait,
}

impl Bound {
    pub(crate) fn new(capacity: usize) -> Bound {
        Bound {
            capacity,
            queued: AtomicUsize::new(0),
            waiters: AtomicUsize::new(0),
            line: Mutex::new(Line {
                next_ticket: 0,
                waiting: VecDeque::new(),
            }),
            room: Condvar::new(),
        }
    }

    fn try_take(&self, n: usize) -> bool {
        let mut queued = self.queued.load(Ordering::SeqCst);
        while queued + n <= self.capacity {
            match self.queued.compare_exchange_weak(
                queued,
                queued + n,
                Ordering::SeqCst,
                Ordering::SeqCst,
            ) {
                Ok(_) => return true,
                Err(now) => queued = now,
            }
        }
        false
    }

    /// Reserves `n` places at once (one task, or a whole batch).
    ///
    /// A pool that no longer runs refuses with `Shutdown` first, whatever
    /// the room (a caller must not retry a shut-down pool). Otherwise, if
    /// the places are free and nobody is waiting, they are taken; if not,
    /// `Refuse` (and a batch larger than the capacity, which could never
    /// fit) fails with `QueueFull`, and `Wait` joins the line, unless
    /// `on_own_worker` says the caller is one of the pool's workers: there
    /// waiting could wait for itself (on a one-thread pool it always would),
    /// so it fails with `QueueFull` at once and logs a warning. A waiter
    /// gives up with `Shutdown` as soon as the pool stops taking work.
    pub(crate) fn reserve(
        &self,
        lifecycle: &Lifecycle,
        n: usize,
        when_full: WhenFull,
        on_own_worker: impl FnOnce() -> bool,
    ) -> Result<(), RejectReason> {
        if lifecycle.get() != PoolState::Running {
            return Err(RejectReason::Shutdown);
        }
        if self.waiters.load(Ordering::SeqCst) == 0 && self.try_take(n) {
            return Ok(());
        }
        if when_full == WhenFull::Refuse || n > self.capacity {
            return Err(RejectReason::QueueFull);
        }
        if on_own_worker() {
            log_warn!(
                "a blocking submit from one of the pool's own workers found its bounded queue \
                 full; refusing with QueueFull instead of waiting for itself"
            );
            return Err(RejectReason::QueueFull);
        }
        self.wait_in_line(lifecycle, n)
    }

    #[cold]
    #[inline(never)]
    fn wait_in_line(&self, lifecycle: &Lifecycle, n: usize) -> Result<(), RejectReason> {
        // ORDERING: SeqCst registration before the checks below, against the
        // SeqCst release-then-load of `waiters` in `release` (Dekker): either
        // we see the freed place, or the releaser sees us and notifies.
        self.waiters.fetch_add(1, Ordering::SeqCst);
        let mut line = self.line.lock();
        let ticket = line.next_ticket;
        line.next_ticket += 1;
        line.waiting.push_back(ticket);
        // No lost wake-up: releases, `wake_all` and a served waiter leaving
        // the head of the line all notify under `line`'s lock, and we check
        // under it.
        let outcome = loop {
            if lifecycle.get() != PoolState::Running {
                break Err(RejectReason::Shutdown);
            }
            if line.waiting.front() == Some(&ticket) && self.try_take(n) {
                break Ok(());
            }
            self.room.wait(&mut line);
        };
        if let Some(at) = line.waiting.iter().position(|&t| t == ticket) {
            line.waiting.remove(at);
        }
        self.waiters.fetch_sub(1, Ordering::SeqCst);
        // The next in line may fit in what is left.
        self.room.notify_all();
        outcome
    }

    /// Submitters waiting for room now.
    pub(crate) fn waiting(&self) -> usize {
        self.waiters.load(Ordering::SeqCst)
    }

    /// Gives back `n` places.
    pub(crate) fn release(&self, n: usize) {
        if n == 0 {
            return;
        }
        self.queued.fetch_sub(n, Ordering::SeqCst);
        if self.waiters.load(Ordering::SeqCst) > 0 {
            let _line = self.line.lock();
            self.room.notify_all();
        }
    }

    /// Wakes every waiting submitter, to look at the state (shutdown).
    pub(crate) fn wake_all(&self) {
        let _line = self.line.lock();
        self.room.notify_all();
    }
}

/// `Instant::now() + timeout`, or `None` (wait forever) if that overflows,
/// so that `Duration::MAX` means "no deadline" rather than a panic.
pub(crate) fn deadline_after(timeout: Duration) -> Option<Instant> {
    Instant::now().checked_add(timeout)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_only_move_forward() {
        let l = Lifecycle::new();
        assert_eq!(l.advance(PoolState::Stopping), PoolState::Running);
        assert_eq!(l.advance(PoolState::ShuttingDown), PoolState::Stopping);
        assert_eq!(l.get(), PoolState::Stopping);
        l.set_terminated();
        assert_eq!(l.advance(PoolState::Stopping), PoolState::Terminated);
        assert_eq!(l.get(), PoolState::Terminated);
    }

    #[test]
    fn gate_refuses_after_shutdown_and_clears() {
        let l = Lifecycle::new();
        let g = Gate::new();
        let mut pass = g.enter(&l, 1).expect("running pool admits");
        assert!(!g.is_clear());
        pass.accept();
        l.advance(PoolState::ShuttingDown);
        assert!(g.enter(&l, 1).is_none());
        drop(pass);
        assert!(g.is_clear());
        assert_eq!(g.accepted(), 1);
        g.wait_clear();
    }

    #[test]
    fn huge_timeout_means_forever() {
        assert!(deadline_after(Duration::MAX).is_none());
        assert!(deadline_after(Duration::from_secs(1)).is_some());
    }
}
