//! Scopes: tasks that borrow from their caller's stack, and the wait that
//! keeps the borrow sound.
//!
//! A scope is a group of its own kind: a [`GroupInner`] whose `scope` is
//! set. Its tasks are submitted cells queued in its mailbox, so they have
//! what a group's tasks have: the claim that decides each end (`cell.rs`),
//! the pool's counts in the ledger, the stop source that their
//! `StopToken::current` observes, and a cancel that empties the mailbox
//! and raises that stop. Two things a group keeps, a scope does not need:
//! a ticket per task (its tasks are never handed back, so their place in
//! submission order is never read) and the group's own counts (a scope
//! shows no progress). What a scope adds is here:
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
//! - **The wait.** [`Shared::wait_scope`] returns once `live` is zero. A
//!   caller that is a worker of the scope's pool runs the scope's queued
//!   tasks itself meanwhile, so a scope opened on a one-thread pool's only
//!   worker, or nested ten deep, finishes.
//! - **The failure.** A task's panic nobody joins is kept for the caller
//!   ([`ScopeState::keep_panic`]); the face cancels the scope on the first
//!   failure.

use std::marker::PhantomData;
use std::sync::Arc;

use crate::error::{PanicPayload, RejectReason};
use crate::running::{BlockedOn, Blocking};
use crate::runtime::Shared;
use crate::runtime::cell::{Cell, CellEntry, CellTask, HandleOps};
use crate::runtime::entry::{Task, UNSTAMPED};
use crate::runtime::mailbox::{GroupInner, MakeTask};
use crate::runtime::run;
use crate::runtime::worker;
use crate::state::{GatePass, PoolState, WhenFull};
use crate::sync::{AtomicU64, AtomicUsize, Mutex, Ordering, Waiters};
use crate::task::{Call, TaskId};

/// What a scope adds to a group (see the module docs).
pub(crate) struct ScopeState {
    /// Cells made in the scope and not yet dropped.
    live: AtomicUsize,
    /// Bumped by every spawn, so a waiting caller that helps sees a task
    /// to run (an event count: the condition stays made of atomics).
    spawns: AtomicU64,
    /// The scope's caller, waiting in `wait_scope`.
    waiters: Waiters,
    /// The first panic that no handle took, resumed on the caller.
    panic: Mutex<Option<PanicPayload>>,
    /// Opened by a task of the pool, on one of its workers: part of that
    /// task's work, which a drain lets finish (see `admit_scoped`).
    inside: bool,
}

impl ScopeState {
    pub(crate) fn new(inside: bool) -> ScopeState {
        ScopeState {
            inside,
            live: AtomicUsize::new(0),
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

/// Makes a scoped task's cell once its spawn is admitted.
struct ScopedMaker<'scope, C> {
    call: C,
    scope: Arc<GroupInner>,
    _borrows: PhantomData<&'scope ()>,
}

impl<'scope, C> MakeTask for ScopedMaker<'scope, C>
where
    C: Call + 'scope,
    C::Output: 'scope,
{
    type Made = Arc<dyn HandleOps<C::Output> + 'scope>;
    fn make(self, shared: &Shared) -> (Task, Self::Made) {
        fn made<'scope, C: Call + 'scope>(
            cell: Arc<Cell<C, C::Output>>,
        ) -> (Task, Arc<dyn HandleOps<C::Output> + 'scope>)
        where
            C::Output: 'scope,
        {
            let entry = CellEntry(erase(cell.clone()));
            (Task::Submitted(UNSTAMPED, entry), cell)
        }
        match shared.measured_call(self.call) {
            Ok(measured) => made(Cell::new(None, measured, Some(self.scope))),
            Err(call) => made(Cell::new(None, call, Some(self.scope))),
        }
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
    /// Queues `call` in `scope`'s mailbox; its cell is the handle's to
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
        let maker = ScopedMaker {
            call,
            scope: scope.clone(),
            _borrows: PhantomData,
        };
        let made = self
            .enqueue_in_group(scope, || self.admit_scoped(scope), maker)
            .map_err(|(reason, maker)| {
                self.ledger.rejected(1);
                (reason, maker.call)
            })?;
        if let Some(state) = scope.scope() {
            // ORDERING: SeqCst, the changer's side of `Waiters`.
            state.spawns.fetch_add(1, Ordering::SeqCst);
            state.waiters.notify();
        }
        Ok(made)
    }

    /// Lets a scoped task in: as any task while the pool is running; while
    /// it drains, only into a scope opened by a task of the pool (part of
    /// that task's work, which the drain runs: the opener's worker waits
    /// in the scope and runs what the other workers leave, see
    /// `wait_scope`), whichever thread spawns.
    fn admit_scoped(&self, scope: &GroupInner) -> Result<GatePass<'_>, RejectReason> {
        let inside = scope.scope().is_some_and(|state| state.inside);
        match self.admit(WhenFull::Wait) {
            Err(RejectReason::Shutdown) if inside && !self.ledger.is_bounded() => self
                .gate
                .enter_while(&self.lifecycle, 1, PoolState::ShuttingDown)
                .ok_or(RejectReason::Shutdown),
            other => other,
        }
    }

    /// Waits until every cell of `scope` is gone. On a worker of this pool
    /// it runs the scope's queued tasks itself meanwhile (it may be the
    /// only thread that can), until the pool is stopping.
    pub(crate) fn wait_scope(&self, scope: &Arc<GroupInner>) {
        let Some(state) = scope.scope() else {
            return;
        };
        let _blocked = Blocking::enter(BlockedOn::Scope);
        let helps = run::is_worker_of(self.id);
        if !helps {
            // On another pool's worker, that pool's queue moves meanwhile.
            worker::help_own_pool_until(&|| state.is_over());
        }
        loop {
            // Read before looking in the mailbox: a spawn after this wakes us.
            let seen = state.spawns.load(Ordering::SeqCst);
            if state.is_over() {
                return;
            }
            if helps && self.lifecycle.get() < PoolState::Stopping {
                if let Some(task) = scope.take_for_help() {
                    run::help_with(self, scope, task);
                    continue;
                }
            }
            // No lost wake-up: `Waiters`; the last `cell_gone` and every
            // spawn notify after changing what the condition reads.
            state.waiters.wait_until(None, || {
                state.is_over() || (helps && state.spawns.load(Ordering::SeqCst) != seen)
            });
        }
    }
}
