//! A submitted task's cell: the closure until someone claims it, then the
//! result, shared by the queue entry, the workers and the task's handle.
//!
//! The claim is a state change under the cell's lock, so exactly one party
//! runs or cancels the task: a worker that reaches it in the queue, a joiner
//! that helps, a cancel, or the `PendingTask` that `shutdown_now` handed back
//! (see [`Runner`] for who may run it when).

use std::any::{Any, TypeId};
use std::mem;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::Instant;

use crate::error::TaskError;
use crate::runtime::Shared;
use crate::runtime::mailbox::GroupInner;
use crate::stop::StopState;
use crate::sync::{AtomicBool, Condvar, Mutex, Ordering};
use crate::task::{Call, TaskId};
use crate::unwind;

/// What every cell has, whatever its closure and result types.
///
/// Kept small, since every queued task holds one: no pool id (the handle
/// has the pool), and the stop source, rarely made, lives under the slot's
/// lock instead of in a `OnceLock` of its own (112 bytes for the whole
/// `Arc` with a one-word closure and result, down from 128).
pub(crate) struct CellHeader {
    pub(crate) id: TaskId,
    pub(crate) name: Option<Arc<str>>,
    /// Set once the closure has been taken (run or cancelled); lets a worker
    /// skip a dead entry without taking the lock.
    claimed: AtomicBool,
    /// The group it was submitted to, which counts its end wherever it
    /// happens (worker, helping joiner, cancel, `PendingTask`).
    pub(crate) group: Option<Arc<GroupInner>>,
}

impl CellHeader {
    #[inline]
    pub(crate) fn is_claimed(&self) -> bool {
        self.claimed.load(Ordering::Acquire)
    }
}

/// Where a run is counted: the pool, and the worker it runs on.
///
/// A plain struct rather than a callback, so that the cell counts a run's
/// start and end with direct calls (this is on every submitted task's
/// path). The end is counted before the result is published, so that
/// statistics never lag behind a joined handle.
#[derive(Clone, Copy)]
pub(crate) struct Tally<'a> {
    /// The pool whose counts and panic handler the run goes to; `None` only
    /// in the loom models, which count nothing.
    pub(crate) shared: Option<&'a Shared>,
    /// The worker running it; `None` off the pool's threads (a
    /// `PendingTask` run by the program).
    pub(crate) index: Option<usize>,
}

/// Who claims a cell to run it: that decides whether a handed-back task
/// may be run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Runner {
    /// The pool: a worker that took the entry from the queue, or a joiner
    /// helping. It may run a task only while the task is the pool's: never
    /// one `shutdown_now` handed back, which belongs to its `PendingTask`.
    Pool,
    /// The holder of the task's `PendingTask`: it runs only a handed-back
    /// task.
    Holder,
}

/// What a claim to run found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ran {
    /// It ran here (to the end or a panic). `returned`: it had been handed
    /// back by `shutdown_now` first, so the pool counts it as run elsewhere.
    Here { returned: bool },
    /// Someone else had claimed it already.
    Lost,
}

impl Tally<'_> {
    /// The task was claimed to run while still the pool's (not handed
    /// back): its place in a bounded queue is free from now on.
    #[inline]
    fn left_queue(self) {
        if let Some(shared) = self.shared {
            shared.release_room(1);
        }
    }

    #[inline]
    fn ended(self, header: &CellHeader, panicked: bool, returned: bool) {
        if let Some(shared) = self.shared {
            shared.count_end(self.index, panicked, returned);
        }
        if let Some(group) = &header.group {
            group.record_end(panicked, returned);
        }
    }

    /// A panic with no handle left to tell: to the panic handler (already
    /// counted by `ended`).
    #[cold]
    fn orphan(self, header: &CellHeader, payload: Box<dyn Any + Send + 'static>) {
        match self.shared {
            Some(shared) => {
                shared.report_panic(header.id, header.name.clone(), self.index, payload);
            }
            None => unwind::drop_quietly(payload),
        }
    }
}

/// What `cancel` found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CancelOutcome {
    /// It was queued; it will never run now. `returned`: it had been
    /// handed back by `shutdown_now` first.
    Cancelled { returned: bool },
    /// It is running; its stop flag was raised.
    Running,
    /// It had already ended.
    Finished,
}

/// A cell as the queue and the workers see it.
pub(crate) trait CellTask: Send + Sync {
    fn header(&self) -> &CellHeader;
    /// The task's own stop source, made on first use.
    fn stop_state(&self) -> Arc<StopState>;
    /// Claims and runs the task for `runner`, counting it in `tally`;
    /// `Ran::Lost` if it was claimed already or is not `runner`'s to run.
    fn run(&self, tally: Tally<'_>, runner: Runner) -> Ran;
    /// Claims the task and drops its closure, resolving the handle as
    /// cancelled. If it is running, raises its stop flag when `stop_running`
    /// (a handle's cancel); the queue and `PendingTask` pass false, since the
    /// run they see may be a joiner's, which they must not disturb.
    fn cancel(&self, stop_running: bool) -> CancelOutcome;
    /// Marks a queued task as handed back by `shutdown_now`; false if it was
    /// claimed already (then it must not be handed back).
    fn hand_back(&self) -> bool;
    /// Takes the queued callable back out if it is of type `want` (a job
    /// the program wants as a value again); its handle resolves as
    /// cancelled. `None` if it is of another type or was claimed already.
    fn take_back(&self, want: TypeId) -> Option<Box<dyn Any + Send>>;
}

/// A cell as its handle sees it, whatever its closure type.
pub(crate) type CellRef<T> = Arc<dyn HandleOps<T>>;

/// A cell as its handle sees it.
pub(crate) trait HandleOps<T>: CellTask {
    fn wait(&self, deadline: Option<Instant>) -> bool;
    fn is_finished(&self) -> bool;
    /// Waits for the end and takes the result, under one lock.
    fn join(&self) -> Result<T, TaskError>;
    /// Takes the result without the lock, given the handle's reference is
    /// the only one left; `None` if there is no result (then `join`).
    fn take_unshared(&mut self) -> Option<Result<T, TaskError>>;
    /// The handle is going away unjoined; returns a panic nobody saw.
    fn detach(&self) -> Option<Box<dyn Any + Send + 'static>>;
}

enum Stage<F, T> {
    Queued(F),
    Running,
    Done(Result<T, TaskError>),
    Taken,
}

struct CellState<F, T> {
    stage: Stage<F, T>,
    /// The task's own stop source, made on first use (by
    /// `StopToken::current` inside the task, or a cancel that finds it
    /// running). Kept after the end, so a token handed out stays the one.
    stop: Option<Arc<StopState>>,
    /// False once the handle is dropped (or never given out).
    handle_alive: bool,
    /// Handed back by `shutdown_now`; decided under the lock, so a cancel or
    /// run racing with the hand-back counts it in exactly one place.
    returned: bool,
}

pub(crate) struct Cell<F, T> {
    header: CellHeader,
    slot: Mutex<CellState<F, T>>,
    done: Condvar,
}

impl<F, T> Cell<F, T>
where
    F: Call<Output = T>,
    T: Send + 'static,
{
    pub(crate) fn new(name: Option<Arc<str>>, f: F, group: Option<Arc<GroupInner>>) -> Arc<Self> {
        Arc::new(Cell {
            header: CellHeader {
                id: TaskId::next(),
                name,
                claimed: AtomicBool::new(false),
                group,
            },
            slot: Mutex::new(CellState {
                stage: Stage::Queued(f),
                stop: None,
                handle_alive: true,
                returned: false,
            }),
            done: Condvar::new(),
        })
    }

    fn publish(&self, slot: &mut CellState<F, T>, result: Result<T, TaskError>) {
        slot.stage = Stage::Done(result);
        self.done.notify_all();
    }
}

impl<F, T> CellTask for Cell<F, T>
where
    F: Call<Output = T>,
    T: Send + 'static,
{
    fn header(&self) -> &CellHeader {
        &self.header
    }

    fn stop_state(&self) -> Arc<StopState> {
        self.slot
            .lock()
            .stop
            .get_or_insert_with(StopState::new)
            .clone()
    }

    fn run(&self, tally: Tally<'_>, runner: Runner) -> Ran {
        let (f, returned) = {
            let mut slot = self.slot.lock();
            // A handed-back task is its holder's alone; any other is the
            // pool's alone (never both, never neither).
            if slot.returned != (runner == Runner::Holder) {
                return Ran::Lost;
            }
            match mem::replace(&mut slot.stage, Stage::Running) {
                Stage::Queued(f) => {
                    // Under the lock, so that whoever sees `claimed` false
                    // and then takes the lock finds the stage still Queued.
                    self.header.claimed.store(true, Ordering::Release);
                    (f, slot.returned)
                }
                other => {
                    slot.stage = other;
                    return Ran::Lost;
                }
            }
        };
        if !returned {
            tally.left_queue();
        }
        if let Some(group) = &self.header.group {
            group.task_started();
        }
        let result = catch_unwind(AssertUnwindSafe(move || f.call())).map_err(TaskError::Panicked);
        tally.ended(&self.header, result.is_err(), returned);
        let mut slot = self.slot.lock();
        if slot.handle_alive {
            self.publish(&mut slot, result);
        } else {
            slot.stage = Stage::Taken;
            drop(slot);
            match result {
                // No one will read the value: drop it here, quietly (its
                // Drop is user code, and this may be the program's thread
                // running a PendingTask).
                Ok(value) => unwind::drop_quietly(value),
                Err(TaskError::Panicked(payload)) => tally.orphan(&self.header, payload),
                Err(TaskError::Cancelled) => {}
            }
        }
        Ran::Here { returned }
    }

    fn cancel(&self, stop_running: bool) -> CancelOutcome {
        let mut slot = self.slot.lock();
        match &slot.stage {
            Stage::Queued(_) => {
                self.header.claimed.store(true, Ordering::Release);
                let Stage::Queued(f) = mem::replace(&mut slot.stage, Stage::Taken) else {
                    unreachable!()
                };
                if slot.handle_alive {
                    self.publish(&mut slot, Err(TaskError::Cancelled));
                }
                let returned = slot.returned;
                drop(slot);
                // The captures drop outside our lock, and a panicking Drop
                // among them must not skip the caller's bookkeeping.
                unwind::drop_quietly(f);
                CancelOutcome::Cancelled { returned }
            }
            Stage::Running => {
                if stop_running {
                    let stop = slot.stop.get_or_insert_with(StopState::new).clone();
                    drop(slot);
                    // Callbacks are user code: not under our lock.
                    stop.request();
                }
                CancelOutcome::Running
            }
            Stage::Done(_) | Stage::Taken => CancelOutcome::Finished,
        }
    }

    fn take_back(&self, want: TypeId) -> Option<Box<dyn Any + Send>> {
        if want != TypeId::of::<F>() {
            return None;
        }
        let mut slot = self.slot.lock();
        if !matches!(slot.stage, Stage::Queued(_)) {
            return None;
        }
        self.header.claimed.store(true, Ordering::Release);
        let Stage::Queued(f) = mem::replace(&mut slot.stage, Stage::Taken) else {
            unreachable!()
        };
        if slot.handle_alive {
            self.publish(&mut slot, Err(TaskError::Cancelled));
        }
        Some(Box::new(f))
    }

    fn hand_back(&self) -> bool {
        let mut slot = self.slot.lock();
        if matches!(slot.stage, Stage::Queued(_)) {
            slot.returned = true;
            true
        } else {
            false
        }
    }
}

impl<F, T> HandleOps<T> for Cell<F, T>
where
    F: Call<Output = T>,
    T: Send + 'static,
{
    fn wait(&self, deadline: Option<Instant>) -> bool {
        let mut slot = self.slot.lock();
        // No lost wake-up: results are published and notified under `slot`'s
        // lock, and we test the stage under it.
        loop {
            if matches!(slot.stage, Stage::Done(_) | Stage::Taken) {
                return true;
            }
            match deadline {
                None => self.done.wait(&mut slot),
                Some(d) => {
                    if self.done.wait_until(&mut slot, d).timed_out() {
                        return matches!(slot.stage, Stage::Done(_) | Stage::Taken);
                    }
                }
            }
        }
    }

    fn is_finished(&self) -> bool {
        matches!(self.slot.lock().stage, Stage::Done(_) | Stage::Taken)
    }

    fn join(&self) -> Result<T, TaskError> {
        let mut slot = self.slot.lock();
        // No lost wake-up: as in `wait`, the stage is tested under the lock
        // the result is published and notified under. A result already
        // there (the common case for a joiner that submitted many tasks
        // first) costs this one lock and no condvar.
        while !matches!(slot.stage, Stage::Done(_) | Stage::Taken) {
            self.done.wait(&mut slot);
        }
        slot.handle_alive = false;
        match mem::replace(&mut slot.stage, Stage::Taken) {
            Stage::Done(result) => result,
            _ => unreachable!("tested under the same lock"),
        }
    }

    fn take_unshared(&mut self) -> Option<Result<T, TaskError>> {
        let slot = self.slot.get_mut();
        match mem::replace(&mut slot.stage, Stage::Taken) {
            Stage::Done(result) => {
                slot.handle_alive = false;
                Some(result)
            }
            other => {
                slot.stage = other;
                None
            }
        }
    }

    fn detach(&self) -> Option<Box<dyn Any + Send + 'static>> {
        let mut slot = self.slot.lock();
        slot.handle_alive = false;
        match mem::replace(&mut slot.stage, Stage::Taken) {
            Stage::Done(Err(TaskError::Panicked(payload))) => Some(payload),
            Stage::Done(Ok(value)) => {
                drop(slot);
                // A result nobody will read: its Drop (user code) must not
                // unwind into whoever dropped the handle.
                unwind::drop_quietly(value);
                None
            }
            other => {
                slot.stage = other;
                None
            }
        }
    }
}

/// Counts a submitted task that will never start, in the pool and in its
/// group.
pub(crate) fn count_cancelled(shared: &Shared, header: &CellHeader, returned: bool) {
    shared.count_cancelled(returned);
    if let Some(group) = &header.group {
        group.record_cancelled(returned);
    }
}

/// A cell as it sits in the queue. Dropping an entry whose cell was never
/// claimed (the queue itself being dropped) resolves the handle as
/// cancelled, so no handle waits forever.
pub(crate) struct CellEntry(pub(crate) Arc<dyn CellTask>);

impl Drop for CellEntry {
    fn drop(&mut self) {
        if !self.0.header().is_claimed() {
            self.0.cancel(false);
        }
    }
}
