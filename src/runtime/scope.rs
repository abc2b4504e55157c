//! Scopes: tasks that borrow from their caller's stack, and the wait that
//! keeps the borrow sound.
//!
//! A scope is a group of its own kind: a [`GroupInner`] whose `scope` is
//! set. Its tasks are submitted cells, so they have what a group's tasks
//! have: the claim that decides each end (`cell.rs`), the pool's counts in
//! the ledger, the stop source that their `StopToken::current` observes,
//! and a cancel that raises that stop. Three things a group keeps, a scope
//! does without: the mailbox (its tasks wait in a lock-free queue of their
//! own, with one turn in the pool's queue for all of them:
//! `scope_queue.rs`), a ticket per task (its tasks are never handed back,
//! so their place in submission order is never read) and the group's own
//! counts (a scope shows no progress). What a scope adds is here:
//!
//! - **The queue and the turn.** A spawn pushes its cell and sends the
//!   scope's turn if none is out; a worker that takes the turn runs the
//!   scope's tasks one after another for a bounded run
//!   ([`Shared::take_scope_turn`]). A cancel closes the queue and cancels
//!   what is in it ([`Shared::close_scope`]).
//! - **The borrow.** A scoped cell's closure and result may borrow from the
//!   caller (`'scope`); the queue holds `'static` entries, so the cell's
//!   lifetime is erased when it is queued ([`erase`]).
//!   That is sound because the scope's caller does not return before the
//!   last reference to every cell of the scope is gone: each cell is
//!   counted in [`ScopeState::live`] before it is made (by its spawn,
//!   `ScopeState::enlist`; the caller's own spawns from counts it took
//!   ahead and gives back before it waits), and counted out by its header
//!   when it is dropped, which is after the cell's closure and result (see
//!   `CellHeader`'s `Drop`). Nothing reachable from a cell is touched after
//!   the count reaches zero.
//! - **The wait.** [`Shared::wait_scope`] returns once `live` is zero. The
//!   caller runs the scope's queued tasks itself meanwhile: as the worker
//!   it is, or as a guest of the pool (`guest.rs`). So a scope opened on a
//!   one-thread pool's only worker, nested ten deep, or from outside a
//!   pool whose workers are all blocked, finishes.
//! - **The caller's cells.** The cells the caller makes are kept by one
//!   more reference, and the caller makes its next cells in the ones
//!   whose tasks have ended ([`ScopeState::spent`], `Cell::renew`), so a
//!   scope of tiny tasks does not pay a `malloc` and a `free` on two
//!   threads per task. The kept references are let go before the caller
//!   waits, so they count in `live` no longer than its spawning.
//! - **The failure.** A task's panic nobody joins is kept for the caller
//!   ([`ScopeState::keep_panic`]); the face cancels the scope on the first
//!   failure.

use std::collections::VecDeque;
use std::sync::Arc;

use crate::error::{PanicPayload, RejectReason};
use crate::running::{BlockedOn, Blocking};
use crate::runtime::Shared;
use crate::runtime::cell::{CancelOutcome, Cell, CellEntry, CellTask, HandleOps, IfRunning};
use crate::runtime::ledger::Custody;
use crate::runtime::mailbox::GroupInner;
use crate::runtime::run;
use crate::runtime::run::Frame;
use crate::runtime::scope_queue::{Pushed, ScopeQueue};
use crate::runtime::slot::{Clock, Previous, Site, WorkerSlot};
use crate::runtime::worker;
use crate::state::{GatePass, PoolState, WhenFull};
use crate::sync::{AtomicUsize, Mutex, Ordering, Waiters};
use crate::task::{Call, TaskId};

/// What a scope adds to a group (see the module docs).
pub(crate) struct ScopeState {
    /// Its spawned tasks waiting to start, and its turn in the pool's
    /// queue (see `scope_queue.rs`).
    pub(crate) queue: ScopeQueue<CellEntry>,
    /// Cells made in the scope and not yet dropped, plus the credits the
    /// scope's caller holds (see `enlist`).
    live: AtomicUsize,
    /// Counts taken into `live` ahead by the scope's caller, not yet used
    /// by a spawn of its own; touched only by that thread (`owner`), with
    /// plain loads and stores (see `enlist`).
    credits: AtomicUsize,
    /// The thread that opened the scope (its `thread_mark`).
    owner: usize,
    /// The cells the scope's caller made, oldest first, each kept by one
    /// more reference until the caller makes its next cells in them (see
    /// `spent`); touched by the caller's thread only (`CallerOnly`).
    /// Plain references, not `CellEntry`s: dropping one of an unclaimed
    /// cell cancels it.
    kept: CallerOnly<VecDeque<Arc<dyn CellTask>>>,
    /// The scope's caller, waiting in `wait_scope`.
    waiters: Waiters,
    /// The first panic that no handle took, resumed on the caller.
    panic: Mutex<Option<PanicPayload>>,
    /// Opened by a task of the pool, on one of its workers (or a guest of
    /// the pool, `guest.rs`): part of that task's work, which a drain lets
    /// finish (see `admit_scoped`).
    inside: bool,
}

impl ScopeState {
    pub(crate) fn new(inside: bool) -> ScopeState {
        ScopeState {
            inside,
            queue: ScopeQueue::new(),
            live: AtomicUsize::new(0),
            credits: AtomicUsize::new(0),
            owner: thread_mark(),
            kept: CallerOnly(std::cell::UnsafeCell::new(VecDeque::new())),
            waiters: Waiters::new(),
            panic: Mutex::new(None),
        }
    }

    /// Counts a new cell of the scope in `live`.
    ///
    /// The scope's caller, which makes most of the cells, takes counts
    /// into `live` ahead, `CREDITS` at a time, and uses them up one per
    /// cell, so its spawns do not write the line every worker writes as it
    /// drops a cell (a read-modify-write of a line another core holds
    /// costs several times one of a line of its own: measured, this took a
    /// scope's spawn from about 200 to 165-170 ns). What is left is given
    /// back before the caller waits (`return_credits`); while it holds
    /// credits `live` cannot reach zero, which nothing needs then: only the
    /// caller waits for zero, after giving them back. (Taking strong counts
    /// of the group's `Arc` ahead the same way measured no better, so each
    /// cell clones it.)
    ///
    /// True if the caller made it before it started waiting: its cells
    /// are kept and renewed (see `spent`).
    fn enlist(&self) -> bool {
        // ORDERING: Relaxed is enough: the caller reads `live` only after
        // its own spawns (program order), and a spawn from a task happens
        // while that task's own cell still counts.
        if thread_mark() != self.owner {
            self.live.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        // Only this thread touches `credits`: no read-modify-write.
        match self.credits.load(Ordering::Relaxed) {
            // Given back: the caller waits, and what it spawns now (a
            // task it runs meanwhile spawning) counts one by one.
            SPENT => {
                self.live.fetch_add(1, Ordering::Relaxed);
                return false;
            }
            0 => {
                self.live.fetch_add(CREDITS, Ordering::Relaxed);
                self.credits.store(CREDITS - 1, Ordering::Relaxed);
            }
            left => self.credits.store(left - 1, Ordering::Relaxed),
        }
        true
    }

    /// The caller's oldest kept cell, if it looks spent (only the kept
    /// reference is left: its task has ended and its handle is gone), to
    /// make the next cell in (`Cell::renew`, which makes sure). One that is
    /// not goes to the back, so a handle held long does not stop the cells
    /// behind it from being renewed.
    ///
    /// Each cell the caller makes is kept by one more reference, so that
    /// the worker that runs it drops a reference, not the cell: the
    /// allocation comes back to the thread that made it, instead of going
    /// through the worker's `free` and the caller's `malloc`, which with
    /// glibc takes its slow path for memory freed on other threads. The
    /// kept cells count in `live` until they are let go, which
    /// `return_credits` does before the caller waits.
    fn spent(&self) -> Option<Arc<dyn CellTask>> {
        self.kept.with(self.owner, |kept| {
            let oldest = kept.pop_front()?;
            if Arc::strong_count(&oldest) == 1 {
                return Some(oldest);
            }
            kept.push_back(oldest);
            None
        })
    }

    /// Keeps a cell the caller made (see `spent`); at most `KEPT` of them.
    fn keep(&self, entry: &CellEntry) {
        self.kept.with(self.owner, |kept| {
            if kept.len() < KEPT {
                kept.push_back(entry.0.clone());
            }
        });
    }

    /// The scope's caller, done spawning: gives back the counts it took
    /// ahead (see `enlist`) and did not use.
    fn return_credits(&self) {
        if thread_mark() != self.owner {
            return;
        }
        // Dropped after `with` returns: a kept cell let go here may be the
        // last reference.
        drop(self.kept.with(self.owner, std::mem::take));
        let left = self.credits.swap(SPENT, Ordering::Relaxed);
        if left != SPENT && left > 0 {
            // ORDERING: SeqCst, as `cell_gone` (the caller itself reads
            // the count next: no one else waits for zero).
            self.live.fetch_sub(left, Ordering::SeqCst);
        }
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

/// Counts a scope's caller takes ahead at a time (see
/// `ScopeState::enlist`).
const CREDITS: usize = 64;
/// The most cells a scope's caller keeps to make its next ones in (see
/// `ScopeState::spent`): more are waiting in the queue than it needs.
const KEPT: usize = 1024;
/// `ScopeState::credits` once the caller gave them back.
const SPENT: usize = usize::MAX;

/// What only a scope's caller touches (`ScopeState::kept`): its own
/// thread's, so no lock (two uncontended lock operations per spawn cost a
/// scope's caller, the bottleneck of a scope of tiny tasks, about a tenth
/// of its time by `perf`).
struct CallerOnly<T>(std::cell::UnsafeCell<T>);

// SAFETY: the value is reached only through `with`, which only the thread
// whose mark is the given owner's passes; a mark is unique among live
// threads, and the scope's caller lives (blocked in the scope) as long as
// the scope can be reached. So the value is only ever touched by one
// thread, though the scope is shared; `T: Send` lets it be dropped
// elsewhere.
#[allow(unsafe_code)]
unsafe impl<T: Send> Sync for CallerOnly<T> {}

impl<T> CallerOnly<T> {
    /// Calls `f` with the value, on the thread marked `owner` only.
    #[allow(unsafe_code)]
    #[inline]
    fn with<R>(&self, owner: usize, f: impl FnOnce(&mut T) -> R) -> R {
        assert_eq!(
            thread_mark(),
            owner,
            "a scope's caller-only state, touched by another thread"
        );
        // SAFETY: only the owner's thread gets here (see the `Sync` impl),
        // and `f`, our own code that runs no user code and does not call
        // back in, holds the only borrow until it returns.
        f(unsafe { &mut *self.0.get() })
    }
}

/// An address unique to the calling thread while it lives: which thread
/// opened a scope, without `thread::current`'s reference count.
#[inline]
fn thread_mark() -> usize {
    thread_local! {
        static MARK: u8 = const { 0 };
    }
    MARK.with(|mark| std::ptr::from_ref(mark).addr())
}

/// The scoped task's cell, measured if the pool measures.
fn scoped_cell<'scope, C>(
    shared: &Shared,
    scope: &Arc<GroupInner>,
    call: C,
) -> (CellEntry, Arc<dyn HandleOps<C::Output> + 'scope>)
where
    C: Call + 'scope,
    C::Output: 'scope,
{
    fn made<'scope, C: Call + 'scope>(
        scope: &Arc<GroupInner>,
        mine: bool,
        call: C,
    ) -> (CellEntry, Arc<dyn HandleOps<C::Output> + 'scope>)
    where
        C::Output: 'scope,
    {
        let state = scope.scope().expect("a scope's group");
        let cell = Cell::fresh(None, call, Some(scope.clone()));
        let cell = match mine.then(|| state.spent()).flatten() {
            Some(spent) => Cell::renew(spent, cell).unwrap_or_else(Arc::new),
            None => Arc::new(cell),
        };
        let entry = CellEntry(erase(cell.clone()));
        if mine {
            state.keep(&entry);
        }
        (entry, cell)
    }
    let mine = scope.scope().expect("a scope's group").enlist();
    match shared.measured_call(call) {
        Ok(measured) => made(scope, mine, measured),
        Err(call) => made(scope, mine, call),
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

/// The most tasks of one scope a worker runs in a row, on one turn,
/// before it looks at the pool's queue again.
const TURN_TASKS: u32 = 64;
/// How long a worker goes on with one scope's tasks on one turn, at most
/// (by the worker's clock, which is read once per task when tasks are slow
/// and once in 32 when they are fast), before it looks at the pool's queue
/// again.
const TURN_NANOS: u64 = 200_000;

impl Shared {
    /// Queues `call` in `scope`'s queue; its cell is the handle's to wrap.
    /// Refused (the call comes back with why) once the scope is cancelled,
    /// or the pool takes no more work (see `admit_scoped`).
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
        let refused = |reason, call| {
            self.ledger.rejected(1);
            Err((reason, call))
        };
        let mut pass = match self.admit_scoped(state) {
            Ok(pass) => pass,
            Err(reason) => return refused(reason, call),
        };
        if state.queue.is_closed() {
            self.ledger.unreserve(1);
            // Leaving the gate unaccepted may make the pool idle.
            drop(pass);
            self.notify_idle_waiters();
            return refused(RejectReason::Cancelled, call);
        }
        let (entry, made) = scoped_cell(self, scope, call);
        match state.queue.push(entry) {
            Pushed::Queued { send_turn } => {
                if send_turn {
                    self.send_token(scope.clone());
                }
                if thread_mark() != state.owner {
                    // The caller, helping, may sleep until a task comes.
                    state.waiters.notify();
                }
                pass.accept();
            }
            // Closed since the look above: it never starts.
            Pushed::Refused(entry) => {
                pass.accept();
                run::cancel(self, &*entry.0, IfRunning::Leave);
            }
            Pushed::Closed(left) => {
                pass.accept();
                for entry in left {
                    run::cancel(self, &*entry.0, IfRunning::Leave);
                }
            }
        }
        Ok(made)
    }

    /// Lets a scoped task in: as any task while the pool is running; while
    /// it drains, only into a scope opened by a task of the pool (part of
    /// that task's work, which the drain runs: the opener's worker waits
    /// in the scope and runs what the other workers leave, see
    /// `wait_scope`), whichever thread spawns.
    fn admit_scoped(&self, state: &ScopeState) -> Result<GatePass<'_>, RejectReason> {
        match self.admit(WhenFull::Wait) {
            Err(RejectReason::Shutdown) if state.inside && !self.ledger.is_bounded() => self
                .gate
                .enter_while(&self.lifecycle, 1, PoolState::ShuttingDown)
                .ok_or(RejectReason::Shutdown),
            other => other,
        }
    }

    /// Cancels the scope's queued tasks and closes its queue (`cancel_group`
    /// for a scope); returns how many it cancelled.
    pub(crate) fn close_scope(&self, scope: &GroupInner, state: &ScopeState) -> usize {
        let left = state.queue.close();
        // Callbacks are user code: not while we hold anything.
        scope.stop_state().request();
        left.into_iter()
            .filter(|entry| {
                matches!(
                    run::cancel(self, &*entry.0, IfRunning::Leave),
                    CancelOutcome::Cancelled(_)
                )
            })
            .count()
    }

    /// A worker took `scope`'s turn: runs the scope's queued tasks one
    /// after another, up to `TURN_TASKS` of them or `TURN_NANOS`; `site`
    /// gives each its place (when it starts, and whether it is nested).
    pub(crate) fn take_scope_turn(&self, scope: &Arc<GroupInner>, mut site: impl FnMut() -> Site) {
        let Some(state) = scope.scope() else {
            return;
        };
        let (first, send_turn) = state.queue.take_turn();
        if send_turn {
            // Before running: the scope's next task can start on another
            // worker meanwhile.
            self.send_token(scope.clone());
        }
        let Some(mut entry) = first else {
            return;
        };
        let mut at = site();
        let until = at.started.saturating_add(TURN_NANOS);
        for _ in 1..TURN_TASKS {
            self.run_scoped(state, at, entry);
            entry = match state.queue.pop_soon() {
                Some(entry) => entry,
                None => return,
            };
            at = site();
            if at.started > until {
                break;
            }
        }
        self.run_scoped(state, at, entry);
    }

    /// Runs a task taken from a scope's queue, or cancels it if the scope
    /// was cancelled since (a closed queue's tasks never start) or the
    /// pool is stopping (whose stop cancels every scope: its callback may
    /// not have closed this one yet).
    fn run_scoped(&self, state: &ScopeState, at: Site, entry: CellEntry) {
        if state.queue.is_closed() || self.lifecycle.get() >= PoolState::Stopping {
            run::cancel(self, &*entry.0, IfRunning::Leave);
        } else if !entry.0.header().is_claimed() {
            run::run_shared(self, Some(at), &entry.0);
        }
    }

    /// On worker `index` of this pool, while it waits for the scope (its
    /// end, or a handle's join): runs the scope's queued tasks, nested in
    /// what the worker runs now, while `more()` says so, one is queued and
    /// the pool is not stopping; false if it ran none.
    ///
    /// One burst puts the outer task aside once (listed as waiting, with
    /// its wait, as for a chunk run there: `worker.rs`), shows each task as
    /// the slot's own while it runs, and restores the outer task at the
    /// end, instead of saving and restoring it around every task; the
    /// clock is read once in 32 runs while they are short.
    fn help_scope_while(
        &self,
        state: &ScopeState,
        index: usize,
        mut more: impl FnMut() -> bool,
    ) -> bool {
        /// Puts back what the slot showed, also on unwind.
        struct Restore<'a>(&'a WorkerSlot, Option<Previous>);
        impl Drop for Restore<'_> {
            fn drop(&mut self) {
                if let Some(previous) = self.1.take() {
                    self.0.end(previous);
                }
            }
        }
        let go_on =
            |more: &mut dyn FnMut() -> bool| more() && self.lifecycle.get() < PoolState::Stopping;
        if !go_on(&mut more) {
            return false;
        }
        let Some(mut entry) = state.queue.pop() else {
            return false;
        };
        let slot = &self.slots[index];
        let _restore = Restore(slot, Some(slot.save()));
        // Whatever runs around it, a task of the pool run by its worker.
        let _frame = Frame::enter(None, Custody::Pool);
        let mut clock = Clock::new();
        loop {
            let at = Site {
                index,
                started: clock.stamp(self),
                nested: false,
            };
            self.run_scoped(state, at, entry);
            if !go_on(&mut more) {
                return true;
            }
            entry = match state.queue.pop() {
                Some(entry) => entry,
                None => return true,
            };
        }
    }

    /// Runs the scope's queued tasks on the calling thread while `more()`
    /// says so (see `help_scope_while`): as the worker it is, on one of
    /// this pool's, or as a guest of the pool (`guest.rs`). `None` if it can
    /// be neither: a worker of another pool (which keeps its own pool's
    /// queue moving instead), or no guest slot free.
    pub(crate) fn help_scope_here(
        self: &Arc<Shared>,
        state: &ScopeState,
        more: impl FnMut() -> bool,
    ) -> Option<bool> {
        if let Some(index) = run::worker_index_in(self.id) {
            return Some(self.help_scope_while(state, index, more));
        }
        let guest = self.enter_guest()?;
        Some(self.help_scope_while(state, guest.index(), more))
    }

    /// Waits until every cell of `scope` is gone, running the scope's
    /// queued tasks meanwhile (it may be the only thread that can) until
    /// the pool is stopping: on a worker of this pool as that worker, on a
    /// thread that is no pool's as a guest of the pool (`guest.rs`).
    pub(crate) fn wait_scope(self: &Arc<Shared>, scope: &Arc<GroupInner>) {
        let Some(state) = scope.scope() else {
            return;
        };
        state.return_credits();
        let _blocked = Blocking::enter(BlockedOn::Scope);
        let helps = || self.lifecycle.get() < PoolState::Stopping;
        let has_work = || helps() && !state.queue.is_empty();
        loop {
            if state.is_over() {
                return;
            }
            match self.help_scope_here(state, || !state.is_over()) {
                Some(true) => continue,
                Some(false) => {}
                None => {
                    // On another pool's worker, that pool's queue moves
                    // meanwhile; anywhere else no guest slot was free. The
                    // workers run the scope.
                    worker::help_own_pool_until(&|| state.is_over());
                    state.waiters.wait_until(None, || state.is_over());
                    return;
                }
            }
            // No lost wake-up: `Waiters`; the last `cell_gone`, and every
            // spawn from a thread other than the caller's, notify after
            // changing what the condition reads. (The caller's own spawns
            // come from the caller running, never from it waiting here.)
            state
                .waiters
                .wait_until(None, || state.is_over() || has_work());
        }
    }
}

/// Small enough for Miri (`.ci/run` runs these under it), which checks the
/// `unsafe` of `Cell::renew` and `CallerOnly`: the caller's cells made
/// again in spent ones, of the same layout and of another.
#[cfg(test)]
mod tests {
    use std::sync::mpsc;

    use crate::ThreadPool;
    use crate::runtime::cell::RENEWED;

    /// A one-thread pool whose only worker is held until the sender is
    /// dropped: the scope's caller runs every task of its scope.
    fn blocked_pool() -> (ThreadPool, mpsc::Sender<()>) {
        let pool = ThreadPool::new(1).unwrap();
        let (release, released) = mpsc::channel::<()>();
        let (started, is_started) = mpsc::channel();
        pool.execute(move || {
            started.send(()).unwrap();
            let _ = released.recv();
        })
        .unwrap();
        is_started.recv().unwrap();
        (pool, release)
    }

    /// A result that borrows from the caller and counts its drop.
    struct Counted<'a>(&'a mut u32, u64);

    impl Drop for Counted<'_> {
        fn drop(&mut self) {
            *self.0 += 1;
        }
    }

    #[test]
    fn the_callers_cells_are_made_again_in_spent_ones() {
        // The only worker is held: the caller runs each task itself when
        // it joins it, so once `join` returns only the caller's kept
        // reference is left, and its next spawn makes its cell in it.
        let (pool, release) = blocked_pool();
        let renewed_before = RENEWED.with(std::cell::Cell::get);
        let (mut firsts, mut seconds, mut unread) = ([0u32; 4], [0u32; 4], 0u32);
        pool.scope(|s| {
            for (round, (first, second)) in firsts.iter_mut().zip(seconds.iter_mut()).enumerate() {
                let round = round as u64;
                // After the larger cell below: not renewed (another size).
                let a = s.spawn(move || Counted(first, round));
                assert_eq!(a.join().unwrap().1, round);
                // The same type as `a`: made in `a`'s spent cell.
                let b = s.spawn(move || Counted(second, round + 10));
                assert_eq!(b.join().unwrap().1, round + 10);
                // A larger result: not made in `b`'s cell.
                assert_eq!(s.spawn(move || [round; 16]).join().unwrap()[15], round);
            }
            // Never joined: run by the caller at the scope's end, its
            // result dropped unread where it is published.
            drop(s.spawn(|| Counted(&mut unread, 0)));
        });
        assert_eq!((firsts, seconds, unread), ([1; 4], [1; 4], 1));
        let renewed = RENEWED.with(std::cell::Cell::get) - renewed_before;
        assert_eq!(renewed, 4, "one renewed cell per round: `b`'s");
        drop(release);
        pool.shutdown();
    }

    #[test]
    fn a_handle_held_long_does_not_stop_the_cells_behind_it_from_being_renewed() {
        let (pool, release) = blocked_pool();
        let renewed_before = RENEWED.with(std::cell::Cell::get);
        pool.scope(|s| {
            // The oldest kept cell, never spent while the others come.
            let held = s.spawn(|| 0u64);
            for round in 1..=10u64 {
                assert_eq!(s.spawn(move || round).join().unwrap(), round);
            }
            assert_eq!(held.join().unwrap(), 0);
        });
        let renewed = RENEWED.with(std::cell::Cell::get) - renewed_before;
        // The held cell goes to the back each time it is found first:
        // six of the ten find a spent cell in front (none would, if it
        // stayed in front).
        assert_eq!(renewed, 6);
        drop(release);
        pool.shutdown();
    }
}
