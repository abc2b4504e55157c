//! Running one task, wherever it runs (taken from the queue, helped by a
//! joiner, or handed back and run by the program), and what the calling
//! thread is running: the frame that decides what `StopToken::current`
//! observes.

use std::cell::{Cell, RefCell};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::ptr::NonNull;
use std::sync::Arc;

use crate::error::PanicPayload;
use crate::runtime::Shared;
use crate::runtime::cell::{CancelOutcome, CellHeader, CellTask, IfRunning, Tally};
use crate::runtime::entry::Task;
use crate::runtime::ledger::{Custody, GroupCounts, Outcome, RunBy};
use crate::runtime::mailbox::GroupInner;
use crate::runtime::slot::{At, Site, SlotGuard, TopGuard, WorkerSlot};
use crate::stop::StopState;
use crate::task::TaskId;
use crate::unwind;

/// Runs a task taken from `group`'s mailbox, with the group's stop token
/// in reach of `StopToken::current` and its counts kept.
pub(crate) fn run_in_group(shared: &Shared, at: Site, group: &Arc<GroupInner>, task: Task) {
    struct InGroup(Option<Arc<GroupInner>>);
    impl Drop for InGroup {
        fn drop(&mut self) {
            swap_context_group(self.0.take());
        }
    }
    let _in_group = InGroup(swap_context_group(Some(group.clone())));
    run_taken(shared, at, task, Some(group));
}

/// Runs a task a worker took off the queue or out of `group`'s mailbox.
pub(crate) fn run_taken(shared: &Shared, at: Site, task: Task, group: Option<&GroupInner>) {
    match task {
        // Its room comes back when its cell is claimed (see `Cell::run`),
        // and the cell counts its end in its group itself: a dead entry
        // (cancelled, or helped by a joiner) did both already.
        Task::Submitted(_, entry) => {
            if !entry.0.header().is_claimed() {
                run_shared(shared, Some(at), &entry.0);
            }
        }
        plain => {
            let group = group.map(|group| &group.counts);
            shared.ledger.started(Custody::Pool, group);
            run_plain(shared, Some(at), plain, None, group);
        }
    }
}

pub(crate) fn swap_context_group(group: Option<Arc<GroupInner>>) -> Option<Arc<GroupInner>> {
    CONTEXT.with(|c| {
        let mut c = c.borrow_mut();
        match c.as_mut() {
            Some(ctx) => std::mem::replace(&mut ctx.group, group),
            None => None,
        }
    })
}

/// Runs a task with no handle, already claimed (`started` counted): an
/// `execute`d closure (`Plain`, `Named`, `Inline`) of `group`, if any;
/// `id` is the one already given to it, if any. Given a submitted task
/// instead, runs it as its cell says (the cell counts and reports its own
/// start and end).
pub(crate) fn run_plain(
    shared: &Shared,
    at: At,
    task: Task,
    id: Option<TaskId>,
    group: Option<&GroupCounts>,
) {
    match task {
        Task::Plain(_, task) | Task::Named(_, task) => {
            let id = id.or_else(|| task.id()).unwrap_or_else(TaskId::next);
            let name = task.name().cloned();
            run_call(shared, at, id, name, group, move || task.call());
        }
        Task::Inline(_, task) => {
            let id = id.unwrap_or_else(TaskId::next);
            run_call(shared, at, id, None, group, move || task.call());
        }
        Task::Submitted(_, entry) => run_shared(shared, at, &entry.0),
    }
}

/// Runs `call`, the closure of an `execute`d task of `group` with this id
/// and name, and counts its end.
pub(crate) fn run_call<C: FnOnce()>(
    shared: &Shared,
    at: At,
    id: TaskId,
    name: Option<Arc<str>>,
    group: Option<&GroupCounts>,
    call: C,
) {
    let index = at.map(|at| at.index);
    let guard = at.map(|at| SlotGuard::enter(&shared.slots[at.index], id, name.as_ref(), at));
    let result = catch_unwind(AssertUnwindSafe(call));
    // A plain task runs off the workers only as a PendingTask's.
    let by = shared.run_by(index);
    shared.ledger.ran(by, Outcome::of(&result), group);
    if let Err(payload) = result {
        shared.report_panic(id, name, index, PanicPayload::new(payload));
    }
    drop(guard);
}

/// Claims and runs a submitted task, unless someone else claimed it. `at`
/// is its place on a worker of its pool; `None` for a handed-back task run
/// through its `PendingTask`.
pub(crate) fn run_shared(shared: &Shared, at: At, task: &Arc<dyn CellTask>) {
    let header = task.header();
    let tally = Tally {
        shared: Some(shared),
        index: at.map(|at| at.index),
    };
    // The guards drop in reverse order: the current task is restored
    // before the slot shows the end.
    match at {
        // Taken from the queue: the slot goes from idle to this task and
        // back, with nothing to save (`TopGuard`, as for a chunk's task).
        Some(at) if !at.nested => {
            let slot = &shared.slots[at.index];
            slot.begin_top(header.id, header.name(), at.started);
            let _idle = TopGuard(slot);
            let _current = ContextTask::enter(task);
            task.run(tally, Custody::Pool);
        }
        // Helped by a joiner on a worker of its pool.
        Some(at) => {
            let slot = &shared.slots[at.index];
            let _restore = SlotGuard::enter(slot, header.id, header.name(), at);
            let _frame = Frame::enter(Some(task), Custody::Pool);
            task.run(tally, Custody::Pool);
        }
        None => {
            let _frame = Frame::enter(Some(task), Custody::HandedBack);
            task.run(tally, Custody::HandedBack);
        }
    }
}

/// A run nested inside another on this thread (a joiner helping) or off
/// the pool's workers (a handed-back task): makes `task` the current one,
/// and says whether it runs as a handed-back task, until dropped; then
/// restores what it found, also on unwind.
pub(crate) struct Frame {
    outer_task: Option<Current>,
    outer_custody: Custody,
}

impl Frame {
    /// `task` must outlive the frame (see [`Current`]).
    pub(crate) fn enter(task: Option<&Arc<dyn CellTask>>, custody: Custody) -> Frame {
        Frame {
            outer_task: swap_context_task(task),
            outer_custody: INNERMOST.with(|c| c.replace(custody)),
        }
    }
}

impl Drop for Frame {
    fn drop(&mut self) {
        restore_context_task(self.outer_task);
        INNERMOST.with(|c| c.set(self.outer_custody));
    }
}

/// Makes a submitted task the thread's current one (for
/// `StopToken::current`) and restores the outer one on drop, also when a
/// `Drop` of the task's result unwinds. The task must outlive the guard
/// (see [`Current`]).
pub(crate) struct ContextTask {
    outer: Option<Current>,
}

impl ContextTask {
    #[inline]
    fn enter(task: &Arc<dyn CellTask>) -> ContextTask {
        ContextTask {
            outer: swap_context_task(Some(task)),
        }
    }
}

impl Drop for ContextTask {
    #[inline]
    fn drop(&mut self) {
        restore_context_task(self.outer);
    }
}

/// The submitted task a thread runs now, as `CURRENT_TASK` holds it: the
/// address `Arc::as_ptr` gives for the cell, which the run that set it
/// keeps alive (it borrows an `Arc` of the cell for longer than the guard,
/// `ContextTask` or `Frame`, that puts the outer one back). A borrow, not
/// an `Arc` of its own: no reference-count increment and decrement, on a
/// line the task's handle shares, for every submitted task run.
type Current = NonNull<dyn CellTask>;

/// Makes `task` the thread's current one; returns the one it replaces,
/// for the guard to put back. `task` must outlive that guard.
#[inline]
fn swap_context_task(task: Option<&Arc<dyn CellTask>>) -> Option<Current> {
    let task = task.and_then(|task| NonNull::new(Arc::as_ptr(task).cast_mut()));
    CURRENT_TASK.with(|current| current.replace(task))
}

#[inline]
fn restore_context_task(outer: Option<Current>) {
    CURRENT_TASK.with(|current| current.set(outer));
}

/// The pool and index of the calling thread, if it is a worker.
pub(crate) fn worker_here() -> Option<(Arc<Shared>, usize)> {
    CONTEXT.with(|c| {
        c.borrow()
            .as_ref()
            .map(|ctx| (ctx.shared.clone(), ctx.index))
    })
}

/// Calls `f` with the pool, the index and the group (if any) of the
/// task this worker runs now, for its metrics; `None` off a worker, and
/// for a handed-back task (no longer the pool's). `f` must not run user
/// code: the thread's context is borrowed meanwhile.
pub(crate) fn with_worker_here<R>(
    f: impl FnOnce(&Shared, usize, Option<&GroupInner>) -> R,
) -> Option<R> {
    if INNERMOST.with(Cell::get) != Custody::Pool {
        return None;
    }
    CONTEXT.with(|c| {
        let c = c.borrow();
        let ctx = c.as_ref()?;
        if let Some(group) = &ctx.group {
            return Some(f(&ctx.shared, ctx.index, Some(group)));
        }
        Some(with_current_task(|task| {
            let group = task.and_then(|task| task.header().group.as_deref());
            f(&ctx.shared, ctx.index, group)
        }))
    })
}

/// The place of a run nested, from now, in what worker `index` runs (a
/// joiner's help, a scope's caller, a worker waiting for another pool).
pub(crate) fn nested_at(shared: &Shared, index: usize) -> Site {
    Site {
        index,
        started: shared.nanos_since_epoch(),
        nested: true,
    }
}

/// Runs a queued task on the calling worker, for a joiner that would
/// otherwise wait for it (see `TaskHandle::join`).
pub(crate) fn run_inline(task: &Arc<dyn CellTask>) {
    if let Some((shared, index)) = worker_here() {
        run_shared(&shared, Some(nested_at(&shared, index)), task);
    }
}

/// Runs a task handed back by `shutdown_now` on the calling thread.
pub(crate) fn run_elsewhere(shared: &Shared, task: Task, id: TaskId) {
    match task {
        // Its frame is entered by `run_shared`.
        Task::Submitted(_, entry) => run_shared(shared, None, &entry.0),
        plain => {
            // Not the thread's task: its token is its own (which nothing
            // can raise), not the one of whatever runs around it.
            let _frame = Frame::enter(None, Custody::HandedBack);
            shared.ledger.started(Custody::HandedBack, None);
            run_plain(shared, None, plain, Some(id), None);
        }
    }
}

/// Cancels a task taken out of a cancelled group's mailbox; true if it was
/// still to run (a submitted one may have been cancelled or run already).
pub(crate) fn cancel_queued(shared: &Shared, group: &GroupInner, task: Task) -> bool {
    match task {
        task @ (Task::Plain(_, _) | Task::Named(_, _) | Task::Inline(_, _)) => {
            unwind::drop_quietly(task);
            shared.ledger.cancelled(Custody::Pool, Some(&group.counts));
            shared.notify_idle_waiters();
            true
        }
        Task::Submitted(_, entry) => matches!(
            cancel(shared, &*entry.0, IfRunning::Leave),
            CancelOutcome::Cancelled(_)
        ),
    }
}

/// Cancels a submitted task (for its handle, a cancelled group, or its
/// `PendingTask`), and records the end if this cancel decided it.
pub(crate) fn cancel(
    shared: &Shared,
    task: &(impl CellTask + ?Sized),
    if_running: IfRunning,
) -> CancelOutcome {
    let outcome = task.cancel(if_running);
    if let CancelOutcome::Cancelled(custody) = outcome {
        shared
            .ledger
            .cancelled(custody, task.header().group_counts());
        if custody == Custody::Pool {
            shared.notify_idle_waiters();
        }
    }
    outcome
}

/// Cancels a never-started task that `shutdown_now` handed back, when its
/// `PendingTask` is dropped.
pub(crate) fn cancel_returned(shared: &Shared, task: Task) {
    match task {
        task @ (Task::Plain(_, _) | Task::Named(_, _) | Task::Inline(_, _)) => {
            unwind::drop_quietly(task);
            shared.ledger.cancelled(Custody::HandedBack, None);
        }
        Task::Submitted(_, entry) => {
            cancel(shared, &*entry.0, IfRunning::Leave);
        }
    }
}

/// Runs `call`, an unnamed task with no handle that worker `index` (whose
/// `slot` the caller looked up once, outside its loop) took from the queue
/// (so the slot goes from idle to it and back), and counts its end: the hot
/// path, always inlined.
#[inline(always)]
pub(crate) fn run_top<C: FnOnce()>(
    shared: &Shared,
    slot: &WorkerSlot,
    index: usize,
    id: TaskId,
    started: u64,
    call: C,
) {
    slot.begin_top(id, None, started);
    let guard = TopGuard(slot);
    let result = catch_unwind(AssertUnwindSafe(call));
    shared
        .ledger
        .ran(RunBy::Worker(&slot.counts), Outcome::of(&result), None);
    if let Err(payload) = result {
        shared.report_panic(id, None, Some(index), PanicPayload::new(payload));
    }
    drop(guard);
}

/// What the current thread is doing for a pool, if it is a worker.
pub(crate) struct Context {
    pub(crate) shared: Arc<Shared>,
    pub(crate) index: usize,
    /// The group of the task running now, for `StopToken::current`.
    pub(crate) group: Option<Arc<GroupInner>>,
}

thread_local! {
    pub(crate) static CONTEXT: RefCell<Option<Context>> = const { RefCell::new(None) };
    /// The submitted task running on this thread now, for
    /// `StopToken::current`; set on a worker, and around a handed-back task
    /// run by the program. Not a field of `CONTEXT`: it is set and restored
    /// around every submitted task, and swapping a `Cell` costs a fraction
    /// of borrowing the context mutably twice.
    ///
    ///
    /// A borrowed pointer (see [`Current`]): no destructor, and every run
    /// puts back what it found.
    static CURRENT_TASK: Cell<Option<Current>> = const { Cell::new(None) };
    /// Whose the innermost run on this thread is: `HandedBack` while it is
    /// a task handed back by `shutdown_now` and run through its
    /// `PendingTask`, which is the program's now, not the pool's, and not
    /// the thread's (which may be a worker of another pool, in the middle
    /// of a task of its own).
    static INNERMOST: Cell<Custody> = const { Cell::new(Custody::Pool) };
}

/// True if the calling thread is a worker of the pool `pool_id`.
pub(crate) fn is_worker_of(pool_id: u64) -> bool {
    worker_index_in(pool_id).is_some()
}

/// The calling thread's index among the workers of the pool `pool_id`, if
/// it is one of them.
pub(crate) fn worker_index_in(pool_id: u64) -> Option<usize> {
    CONTEXT.with(|c| {
        c.borrow()
            .as_ref()
            .filter(|ctx| ctx.shared.id == pool_id)
            .map(|ctx| ctx.index)
    })
}

/// True if the calling thread is a worker of a pool other than `pool_id`.
pub(crate) fn is_worker_of_another(pool_id: u64) -> bool {
    CONTEXT.with(|c| {
        c.borrow()
            .as_ref()
            .is_some_and(|ctx| ctx.shared.id != pool_id)
    })
}

/// Calls `f` with the submitted task running on this thread, if any,
/// looked at in place rather than cloned: `is_running` is on every join's
/// path. `f` must not run user code.
#[allow(unsafe_code)]
fn with_current_task<R>(f: impl FnOnce(Option<&dyn CellTask>) -> R) -> R {
    let task = CURRENT_TASK.with(Cell::get);
    // SAFETY: a pointer in `CURRENT_TASK` is to a cell the run that set it
    // keeps alive until its guard takes it out (see `Current`), which
    // cannot happen while `f`, our own code, runs on this thread.
    f(task.map(|task| unsafe { task.as_ref() }))
}

/// A copy of the submitted task running on this thread, if any.
#[allow(unsafe_code)]
pub(crate) fn current_task() -> Option<Arc<dyn CellTask>> {
    let task = CURRENT_TASK.with(Cell::get)?;
    let task = task.as_ptr().cast_const();
    // SAFETY: the pointer came from `Arc::as_ptr` of an `Arc` that the run
    // keeps alive while it is set (see `Current`): one more strong count
    // for the `Arc` made from it here.
    unsafe {
        Arc::increment_strong_count(task);
        Some(Arc::from_raw(task))
    }
}

/// The stop sources the task running on this thread observes, decided by
/// the innermost run alone (never by what runs around it):
///
/// - a task of a pool, run by a worker of that pool (taken from the queue
///   or helped by a joiner): the pool's stop, its group's, and for a
///   submitted task its own;
/// - a handed-back task run through its `PendingTask`, on any thread: its
///   group's and its own (a plain one has neither, and never fires);
/// - anything else: none.
pub(crate) fn current_stop_states() -> Vec<Arc<StopState>> {
    if INNERMOST.with(Cell::get) == Custody::HandedBack {
        return with_current_task(|task| task.map_or_else(Vec::new, own_stop_states));
    }
    let task = current_task();
    CONTEXT.with(|c| {
        let c = c.borrow();
        let Some(ctx) = c.as_ref() else {
            return Vec::new();
        };
        let mut states = vec![ctx.shared.stop.clone()];
        match &task {
            Some(task) => states.extend(own_stop_states(&**task)),
            // A plain task: the group whose mailbox it came from.
            None => states.extend(ctx.group.as_ref().map(|g| g.stop_state().clone())),
        }
        states
    })
}

/// A submitted task's group's stop and its own.
pub(crate) fn own_stop_states(task: &dyn CellTask) -> Vec<Arc<StopState>> {
    let mut states = Vec::with_capacity(2);
    if let Some(group) = &task.header().group {
        states.push(group.stop_state().clone());
    }
    states.push(task.stop_state());
    states
}

/// True if the calling thread is running the submitted task `header`
/// belongs to (innermost run): a wait for it here would wait for itself.
pub(crate) fn is_running(header: &CellHeader) -> bool {
    with_current_task(|task| task.is_some_and(|task| std::ptr::eq(task.header(), header)))
}

/// True if the calling thread is running a task of `group` (a plain one
/// from its mailbox, or a submitted one): waiting for the group here would
/// wait for itself.
pub(crate) fn is_in_group(group: &Arc<GroupInner>) -> bool {
    let in_context = CONTEXT.with(|c| {
        c.borrow()
            .as_ref()
            .and_then(|ctx| ctx.group.as_ref())
            .is_some_and(|g| Arc::ptr_eq(g, group))
    });
    in_context
        || (INNERMOST.with(Cell::get) == Custody::Pool
            && with_current_task(|task| {
                task.and_then(|task| task.header().group.as_ref())
                    .is_some_and(|g| Arc::ptr_eq(g, group))
            }))
}

/// Small enough for Miri (`.ci/run` runs these under it), which checks the
/// `unsafe` of this file: the thread's current task is a borrowed pointer,
/// cloned into an `Arc` by `StopToken::current`.
#[cfg(test)]
mod tests {
    use crate::{StopToken, ThreadPool};

    #[test]
    fn a_tasks_own_token_outlives_its_run_and_nested_runs_restore_the_outer() {
        let pool = ThreadPool::new(1).unwrap();
        let inner = pool.submit(StopToken::current).unwrap();
        let outer = pool
            .submit(move || {
                let before = StopToken::current();
                // One worker: joining runs `inner` here, nested.
                let from_inner = inner.join().unwrap();
                let after = StopToken::current();
                (before, from_inner, after)
            })
            .unwrap();
        let (before, from_inner, after) = outer.join().unwrap();
        drop(pool);
        // Each token still answers after its task and the pool are gone.
        assert!(!before.is_stop_requested());
        assert!(!from_inner.is_stop_requested());
        assert!(!after.is_stop_requested());
    }
}
