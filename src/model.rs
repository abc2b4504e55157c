//! The model-checked pieces of the core, for `tests/loom_*.rs` only.
//!
//! This module exists only under `cfg(loom)` and is hidden from the docs:
//! nothing here is part of the API. It wraps crate-private types in a small
//! public surface so that integration tests can drive the real code from
//! loom's threads, with every primitive it uses taken from loom (see
//! `sync.rs`):
//!
//! - [`Intake`]: the lifecycle and the intake gate, which linearise a
//!   submit against `shutdown` and `shutdown_now`;
//! - [`Cell`]: a submitted task's cell, whose claim decides between a
//!   worker (or a joiner) running it, `shutdown_now` handing it back, the
//!   handed-back `PendingTask` running or being dropped, its handle's
//!   `cancel`, and the timer expiring it at its start deadline;
//! - stop requests need no wrapper: `StopSource`, `StopToken::on_stop` and
//!   `StopCallback` are public, and `stop.rs` takes its primitives from
//!   loom too.
//!
//! Run the models with
//! `LOOM_MAX_PREEMPTIONS=3 RUSTFLAGS="--cfg loom" cargo test --release --test 'loom_*'`.

#![allow(missing_docs, missing_debug_implementations)]

use std::sync::Arc;

use crate::error::TaskError;
use crate::runtime::cell::{self, CancelOutcome, HandleOps, IfRunning, Ran, Tally};
use crate::runtime::ledger::Custody;
use crate::runtime::timer::Timed;
use crate::state::{Gate, Lifecycle};
use crate::task::Closure;

pub use crate::state::PoolState;

/// The pool's lifecycle and intake gate, without the pool.
pub struct Intake {
    lifecycle: Lifecycle,
    gate: Gate,
}

impl Intake {
    pub fn new() -> Intake {
        Intake {
            lifecycle: Lifecycle::new(),
            gate: Gate::new(),
        }
    }

    /// Submits one task as the pool does: enters the gate, and if the pool
    /// is still running runs `enqueue` and accepts. True if accepted.
    pub fn submit(&self, enqueue: impl FnOnce()) -> bool {
        match self.gate.enter(&self.lifecycle, 1) {
            Some(mut pass) => {
                enqueue();
                pass.accept();
                true
            }
            None => false,
        }
    }

    /// Moves the state forward (never back); returns the state before.
    pub fn advance(&self, to: PoolState) -> PoolState {
        self.lifecycle.advance(to)
    }

    pub fn state(&self) -> PoolState {
        self.lifecycle.get()
    }

    /// Blocks until no submitter is inside the gate (what a drain does once
    /// the state has moved past `Running`).
    pub fn wait_clear(&self) {
        self.gate.wait_clear();
    }

    /// Tasks ever accepted through the gate.
    pub fn accepted(&self) -> u64 {
        self.gate.accepted()
    }
}

impl Default for Intake {
    fn default() -> Self {
        Intake::new()
    }
}

/// What a claim on the cell did, as the pool counts it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    /// It ran here; `returned`: it had been handed back first.
    Ran { returned: bool },
    /// It was cancelled here; `returned`: it had been handed back first.
    Cancelled { returned: bool },
    /// It was running elsewhere (a handle's cancel raised its stop flag).
    Running,
    /// Someone else claimed it already.
    Lost,
    /// Its start deadline had passed: expired here.
    Expired,
}

/// A submitted task's cell, with a closure returning `u32`, and the ways
/// the pool and the program reach it.
#[derive(Clone)]
pub struct Cell(Arc<dyn HandleOps<u32>>);

impl Cell {
    pub fn new(f: impl FnOnce() -> u32 + Send + 'static) -> Cell {
        Cell(cell::Cell::new(None, Closure(f), None))
    }

    /// A cell whose start deadline has already passed: whoever claims it
    /// for the pool expires it.
    pub fn past_its_deadline(f: impl FnOnce() -> u32 + Send + 'static) -> Cell {
        let now = std::time::Instant::now();
        Cell(cell::Cell::new(
            None,
            Timed::new(Closure(f), Some(now), None),
            None,
        ))
    }

    /// The pool's timer, at the start deadline.
    pub fn expire(&self) -> End {
        let tally = Tally {
            shared: None,
            index: None,
        };
        if self.0.expire(tally) {
            End::Expired
        } else {
            End::Lost
        }
    }

    /// A worker that took the cell's entry from the queue, or a joiner
    /// helping: skips it if claimed, else claims and runs it (never once it
    /// was handed back).
    pub fn run(&self) -> End {
        if self.0.header().is_claimed() {
            return End::Lost;
        }
        self.run_as(Custody::Pool)
    }

    /// The program runs the task's `PendingTask` (after `hand_back`).
    pub fn run_pending(&self) -> End {
        self.run_as(Custody::HandedBack)
    }

    fn run_as(&self, claimant: Custody) -> End {
        let tally = Tally {
            shared: None,
            index: None,
        };
        match self.0.run(tally, claimant) {
            Ran::Here(custody) => End::Ran {
                returned: custody == Custody::HandedBack,
            },
            Ran::Lost => End::Lost,
            Ran::Expired => End::Expired,
        }
    }

    /// `shutdown_now` found the cell's entry in the queue: true if it is
    /// handed back (a `PendingTask` now owns it).
    pub fn hand_back(&self) -> bool {
        self.0.hand_back()
    }

    /// The handed-back `PendingTask` is dropped.
    pub fn drop_pending(&self) -> End {
        self.claim_to_cancel(IfRunning::Leave)
    }

    /// The handle's `cancel`.
    pub fn cancel(&self) -> End {
        self.claim_to_cancel(IfRunning::Stop)
    }

    fn claim_to_cancel(&self, if_running: IfRunning) -> End {
        match self.0.cancel(if_running) {
            CancelOutcome::Cancelled(custody) => End::Cancelled {
                returned: custody == Custody::HandedBack,
            },
            CancelOutcome::Running => End::Running,
            CancelOutcome::Finished => End::Lost,
        }
    }

    /// The handle's `join`: waits for the end, takes the result.
    pub fn join(&self) -> Result<u32, TaskError> {
        self.0.join()
    }

    pub fn is_finished(&self) -> bool {
        self.0.is_finished()
    }

    /// The task's own stop flag (raised by a cancel that found it running).
    pub fn stop_requested(&self) -> bool {
        self.0.stop_state().is_requested()
    }

    /// Raises the task's own stop flag, as a cancel that found it running
    /// does (making its stop source if no one has yet).
    pub fn request_stop(&self) {
        self.0.stop_state().request();
    }
}

/// A latch over the crate's one waiting primitive (`sync::Waiters`), with
/// a flag as the condition: what the lifecycle, the gate, `wait_idle` and
/// `TaskGroup::wait` build on.
pub struct Latch {
    waiters: crate::sync::Waiters,
    open: crate::sync::AtomicBool,
}

impl Default for Latch {
    fn default() -> Latch {
        Latch::new()
    }
}

impl Latch {
    pub fn new() -> Latch {
        Latch {
            waiters: crate::sync::Waiters::new(),
            open: crate::sync::AtomicBool::new(false),
        }
    }

    /// Opens the latch: the change, then the notify.
    pub fn open(&self) {
        self.open.store(true, crate::sync::Ordering::SeqCst);
        self.waiters.notify();
    }

    /// Waits until the latch is open (no deadline: a lost wake-up is a
    /// deadlock, which loom reports).
    pub fn wait(&self) {
        let open = self
            .waiters
            .wait_until(None, || self.open.load(crate::sync::Ordering::SeqCst));
        assert!(open);
    }
}

/// The FIFO under each level of the pool's queue (`runtime/fifo.rs`), of
/// `u32`s, with blocks of three slots under loom so that the models cross
/// block ends.
pub struct Fifo(crate::runtime::fifo::Fifo<u32>);

impl Fifo {
    pub fn new() -> Fifo {
        Fifo(crate::runtime::fifo::Fifo::new())
    }

    pub fn push(&self, value: u32) {
        self.0.push(value);
    }

    /// Takes the oldest, if any.
    pub fn pop(&self) -> Option<u32> {
        self.0.pop()
    }

    /// Takes the oldest, sleeping until there is one.
    pub fn pop_wait(&self) -> u32 {
        self.0
            .pop_wait(None)
            .expect("an untimed wait returns an entry")
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Default for Fifo {
    fn default() -> Self {
        Fifo::new()
    }
}

/// Runs `model` under loom, and checks that every block of a FIFO (a
/// [`Fifo`], a [`ScopeQueue`]) it made was freed once its queue was
/// dropped: blocks are counted as they are made and freed (loom does not
/// see a block that is never freed; a model's threads share the test's
/// thread, whose count this is).
pub fn model_freeing_blocks(model: impl Fn() + Sync + Send + 'static) {
    loom::model(move || {
        let alive = || crate::runtime::fifo::LIVE_BLOCKS.with(std::cell::Cell::get);
        let before = alive();
        model();
        assert_eq!(alive(), before, "a block was not freed");
    });
}

/// What [`ScopeQueue::push`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum Pushed {
    /// Queued; `send_turn`: this push must send the scope's turn.
    Queued { send_turn: bool },
    /// Refused: the queue was closed.
    Refused,
    /// Queued, then found closed: what was left, for the pusher to cancel.
    Closed(Vec<u32>),
}

/// A scope's queue of `u32`s and its turn (`runtime/scope_queue.rs`).
pub struct ScopeQueue(crate::runtime::scope_queue::ScopeQueue<u32>);

impl ScopeQueue {
    pub fn new() -> ScopeQueue {
        ScopeQueue(crate::runtime::scope_queue::ScopeQueue::new())
    }

    pub fn push(&self, value: u32) -> Pushed {
        use crate::runtime::scope_queue::Pushed as P;
        match self.0.push(value) {
            P::Queued { send_turn } => Pushed::Queued { send_turn },
            P::Refused(_) => Pushed::Refused,
            P::Closed(left) => Pushed::Closed(left),
        }
    }

    /// A worker that took the turn: the first task, and whether it must
    /// send the turn back.
    pub fn take_turn(&self) -> (Option<u32>, bool) {
        self.0.take_turn()
    }

    /// A worker going on without the turn.
    pub fn pop(&self) -> Option<u32> {
        self.0.pop()
    }

    pub fn is_closed(&self) -> bool {
        self.0.is_closed()
    }

    /// Closes it; what was left, for the closer to cancel.
    pub fn close(&self) -> Vec<u32> {
        self.0.close()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Default for ScopeQueue {
    fn default() -> Self {
        ScopeQueue::new()
    }
}

/// Counts its drops (a std counter: read only after every thread was
/// joined): a task's result, or its closure's capture.
pub struct Counted(pub Arc<std::sync::atomic::AtomicUsize>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// A cell whose result (or, never run, whose closure) counts its drops:
/// for the races of a handle's drop with the result's publication.
pub struct ResultCell(Arc<dyn HandleOps<Counted>>);

impl ResultCell {
    /// A cell whose closure holds one `Counted` and returns another, both
    /// counting into `drops`.
    pub fn new(drops: &Arc<std::sync::atomic::AtomicUsize>) -> ResultCell {
        let (held, made) = (Counted(drops.clone()), drops.clone());
        ResultCell(cell::Cell::new(
            None,
            Closure(move || {
                drop(held);
                Counted(made)
            }),
            None,
        ))
    }

    /// A worker runs it (unless claimed already).
    pub fn run(&self) -> bool {
        let tally = Tally {
            shared: None,
            index: None,
        };
        matches!(self.0.run(tally, Custody::Pool), Ran::Here(_))
    }

    /// The handle's cancel.
    pub fn cancel(&self) -> bool {
        matches!(self.0.cancel(IfRunning::Stop), CancelOutcome::Cancelled(_))
    }

    /// The handle is dropped unjoined.
    pub fn detach(&self) {
        assert!(self.0.detach().is_none(), "no task here panics");
    }

    /// The handle's join; the result is dropped at once.
    pub fn join(&self) -> bool {
        self.0.join().is_ok()
    }
}

impl Clone for ResultCell {
    fn clone(&self) -> Self {
        ResultCell(self.0.clone())
    }
}
