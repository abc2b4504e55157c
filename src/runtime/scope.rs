//! Scopes: tasks that borrow from their caller's stack, and the wait that
//! keeps the borrow sound.
//!
//! A scope's tasks are submitted cells queued straight in the pool's queue,
//! so the claim that decides each end (`cell.rs`) and the ledger's counts
//! are a submitted task's, unchanged. Each cell's header names the scope
//! through a [`GroupInner`] whose `scope` is set: its stop source is what
//! the tasks' `StopToken::current` observes, and the group's own counts
//! and mailbox are not used (a scope has no progress to show, and nothing
//! to hand back). What a scope adds is here:
//!
//! - **The borrow.** A scoped cell's closure and result may borrow from the
//!   caller (`'scope`); the queue holds `'static` entries, so the cell's
//!   lifetime is erased when it is queued ([`erase`], the one `unsafe`).
//!   That is sound because the scope's caller does not return before the
//!   last reference to every cell of the scope is gone: each cell's header
//!   counts itself in [`ScopeState::live`] when it is made and out when it
//!   is dropped, which is after the cell's closure and result (see
//!   `CellHeader`'s `Drop`). Nothing reachable from a cell is touched after
//!   the count reaches zero.
//! - **The cancel.** A flag and the stop: a cancelled scope's queued cells
//!   are cancelled (closure dropped, handle resolved, counted) by whoever
//!   reaches them to run them (`run_shared`), and by `shutdown_now`, which
//!   never hands one back.
//! - **The wait.** [`Shared::wait_scope`] returns once `live` is zero. A
//!   caller that is a worker of the scope's pool runs the pool's queued
//!   work itself meanwhile (its scope's tasks among it), so a scope opened
//!   on a one-thread pool's only worker, or nested ten deep, finishes.
//! - **The failure.** A task's panic nobody joins is kept for the caller
//!   ([`ScopeState::keep_panic`]); the face cancels the scope on the first
//!   failure.

use std::sync::Arc;

use crate::error::{PanicPayload, RejectReason};
use crate::runtime::Shared;
use crate::runtime::cell::{Cell, CellEntry, CellTask, HandleOps};
use crate::runtime::entry::{Task, UNSTAMPED};
use crate::runtime::mailbox::GroupInner;
use crate::runtime::queue::Priority;
use crate::runtime::run;
use crate::runtime::worker::{self, Helper};
use crate::state::{GatePass, PoolState, WhenFull};
use crate::sync::{AtomicBool, AtomicU64, AtomicUsize, Mutex, Ordering, Waiters};
use crate::task::{Call, TaskId};

/// What a scope adds to a group (see the module docs).
pub(crate) struct ScopeState {
    /// Cells made in the scope and not yet dropped.
    live: AtomicUsize,
    /// Set once by a cancel: queued cells are cancelled when reached.
    cancelled: AtomicBool,
    /// Bumped by every spawn, so a waiting caller that helps sees a task
    /// to run (an event count: the condition stays made of atomics).
    spawns: AtomicU64,
    /// The scope's caller, waiting in `wait_scope`.
    waiters: Waiters,
    /// The first panic that no handle took, resumed on the caller.
    panic: Mutex<Option<PanicPayload>>,
}

impl ScopeState {
    pub(crate) fn new() -> ScopeState {
        ScopeState {
            live: AtomicUsize::new(0),
            cancelled: AtomicBool::new(false),
            spawns: AtomicU64::new(0),
            waiters: Waiters::new(),
            panic: Mutex::new(None),
        }
    }

    /// A cell of the scope was made (by its spawn, under the mailbox lock).
    pub(crate) fn cell_made(&self) {
        // ORDERING: Relaxed is enough: the caller reads `live` only after
        // its own spawns (program order), and a spawn from a task happens
        // while that task's own cell still counts.
        self.live.fetch_add(1, Ordering::Relaxed);
    }

    /// A cell of the scope was dropped, its closure and result with it.
    pub(crate) fn cell_gone(&self) {
        // ORDERING: Release, so that everything done with the cell happens
        // before the caller's Acquire load that sees the count reach zero;
        // SeqCst as the changer's side of `Waiters`.
        if self.live.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.waiters.notify();
        }
    }

    /// True once the scope was cancelled.
    #[inline]
    pub(crate) fn is_cancelled(&self) -> bool {
        // ORDERING: SeqCst, against the spawn's load below: a spawn that
        // reads false queues a cell that a cancel's reachers cancel.
        self.cancelled.load(Ordering::SeqCst)
    }

    /// True once every cell of the scope is gone.
    fn is_over(&self) -> bool {
        // ORDERING: Acquire (SeqCst), pairing with `cell_gone`.
        self.live.load(Ordering::SeqCst) == 0
    }

    /// Keeps `payload`, the panic of a scoped task no handle will take, for
    /// the scope's caller; a panic after the first goes to the pool's panic
    /// handler, so none is silently lost.
    pub(crate) fn keep_panic(
        &self,
        shared: &Shared,
        id: TaskId,
        name: Option<Arc<str>>,
        payload: PanicPayload,
    ) {
        let mut kept = self.panic.lock();
        if kept.is_none() {
            *kept = Some(payload);
            return;
        }
        drop(kept);
        shared.report_panic(id, name, None, payload);
    }

    /// The first panic no handle took, if any.
    pub(crate) fn take_panic(&self) -> Option<PanicPayload> {
        self.panic.lock().take()
    }
}

/// Lets a scoped cell sit in the queue, which holds `'static` entries.
#[allow(unsafe_code)]
fn erase<'scope>(cell: Arc<dyn CellTask + 'scope>) -> Arc<dyn CellTask> {
    // SAFETY: only the lifetime bound of the trait object changes (the
    // pointer, its metadata and the allocation are the same). The cell is
    // made in a scope whose caller does not return, and so does not end
    // `'scope`, before the cell is dropped (see the module docs: its
    // header counts it in `ScopeState::live`, and goes after the closure
    // and result). So no `'scope` borrow inside it is used after `'scope`
    // ends, through this reference or any clone of it.
    unsafe { std::mem::transmute::<Arc<dyn CellTask + 'scope>, Arc<dyn CellTask>>(cell) }
}

impl Shared {
    /// Queues `call` as a task of `scope`; its cell is the handle's to
    /// wrap. Refused (the call comes back with why) once the scope is
    /// cancelled, or the pool takes no more work (see `admit_scoped`).
    pub(crate) fn spawn_scoped<'scope, C>(
        &self,
        scope: &Arc<GroupInner>,
        call: C,
    ) -> Result<Arc<dyn HandleOps<C::Output> + 'scope>, (RejectReason, C)>
    where
        C: Call + 'scope,
        C::Output: 'scope,
    {
        let state = scope.scope().expect("a scope's group");
        let admitted = match state.is_cancelled() {
            true => Err(RejectReason::Cancelled),
            false => self.admit_scoped(),
        };
        let mut pass = match admitted {
            Ok(pass) => pass,
            Err(reason) => {
                self.ledger.rejected(1);
                return Err((reason, call));
            }
        };
        // A cancel from here on finds the cell when it is reached.
        let cell = Cell::new(None, call, Some(scope.clone()));
        let entry = CellEntry(erase(cell.clone()));
        self.queue
            .push(Priority::Normal, Task::Submitted(UNSTAMPED, entry));
        pass.accept();
        drop(pass);
        // ORDERING: SeqCst, the changer's side of `Waiters`.
        state.spawns.fetch_add(1, Ordering::SeqCst);
        state.waiters.notify();
        Ok(cell)
    }

    /// Lets a scoped task in: as any task while the pool is running; while
    /// it drains, only from one of its own workers (the scope belongs to a
    /// task the drain runs, and that worker finishes it, see `wait_scope`).
    fn admit_scoped(&self) -> Result<GatePass<'_>, RejectReason> {
        match self.admit(WhenFull::Wait) {
            Err(RejectReason::Shutdown)
                if !self.ledger.is_bounded() && run::is_worker_of(self.id) =>
            {
                self.gate
                    .enter_while(&self.lifecycle, 1, PoolState::ShuttingDown)
                    .ok_or(RejectReason::Shutdown)
            }
            other => other,
        }
    }

    /// Cancels `scope`: its queued tasks never start (each is cancelled,
    /// its closure dropped and its handle resolved, by whoever reaches it),
    /// later spawns are refused, and its stop token fires, which its
    /// running tasks observe and which cancels the scopes opened inside
    /// them.
    pub(crate) fn cancel_scope(&self, scope: &GroupInner) {
        if let Some(state) = scope.scope() {
            state.cancelled.store(true, Ordering::SeqCst);
        }
        // Callbacks are user code; no lock of ours is held here.
        scope.stop_state().request();
    }

    /// Waits until every cell of `scope` is gone. On a worker of this pool
    /// it runs the pool's queued work itself meanwhile (the scope's tasks
    /// are among it, and it may be the only thread that can run them),
    /// until the pool is stopping; on another pool's worker, that pool's
    /// (see `help_own_pool_until`).
    pub(crate) fn wait_scope(&self, scope: &GroupInner) {
        let Some(state) = scope.scope() else {
            return;
        };
        let mut helper = match run::is_worker_of(self.id) {
            true => Helper::new(),
            false => {
                worker::help_own_pool_until(&|| state.is_over());
                None
            }
        };
        loop {
            // Read before looking in the queue: a spawn after this wakes us.
            let seen = state.spawns.load(Ordering::SeqCst);
            if state.is_over() {
                return;
            }
            if let Some(helper) = helper.as_mut() {
                if helper.run_one(None) {
                    continue;
                }
            }
            // No lost wake-up: `Waiters`; the last `cell_gone` and every
            // spawn notify after changing what the condition reads. (A
            // task queued by anyone else is a worker's to run: the caller
            // waits for its own scope's only.)
            let helps = helper.is_some();
            state.waiters.wait_until(None, || {
                state.is_over() || (helps && state.spawns.load(Ordering::SeqCst) != seen)
            });
        }
    }
}
