//! A cell as the others see it: the queue and the workers (`CellTask`,
//! counting runs in a `Tally`), its handle (`HandleOps`), and the queue's
//! entry (`CellEntry`).

use std::any::{Any, TypeId};
use std::sync::Arc;
use std::time::Instant;

#[cfg(not(loom))]
use crate::error::Interrupted;
use crate::error::{PanicPayload, TaskError};
use crate::runtime::Shared;
use crate::runtime::ledger::{Custody, Outcome};
use crate::stop::StopState;
#[cfg(not(loom))]
use crate::stop::StopToken;
use crate::unwind;

use super::CellHeader;

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

/// What a claim to run found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ran {
    /// It ran here (to the end or a panic), claimed by its custodian.
    Here(Custody),
    /// Someone else had claimed it already.
    Lost,
    /// Its start deadline had passed: the claim expired it instead.
    Expired,
}

impl Tally<'_> {
    /// The task was claimed to run by its custodian.
    #[inline]
    pub(super) fn started(self, header: &CellHeader, custody: Custody) {
        if let Some(shared) = self.shared {
            shared.ledger.started(custody, header.group_counts());
        }
    }

    #[inline]
    pub(super) fn ended(self, header: &CellHeader, outcome: Outcome) {
        if let Some(shared) = self.shared {
            let by = shared.run_by(self.index);
            shared.ledger.ran(by, outcome, header.group_counts());
        }
    }

    /// The claim found the task past its start deadline and expired it.
    #[cold]
    pub(super) fn expired(self, header: &CellHeader) {
        if let Some(shared) = self.shared {
            shared.task_expired(header);
        }
    }

    /// A panic with no handle left to tell: to the panic handler (already
    /// counted by `ended`).
    #[cold]
    pub(super) fn orphan(self, header: &CellHeader, payload: PanicPayload) {
        if let (Some(scope), Some(shared)) = (header.scope(), self.shared) {
            // Resumed on the scope's caller (or reported, if not the first).
            scope.keep_panic(shared, header.id, header.name().cloned(), payload);
            return;
        }
        match self.shared {
            Some(shared) => {
                shared.report_panic(header.id, header.name().cloned(), self.index, payload);
            }
            None => unwind::drop_quietly(payload),
        }
    }
}

/// What `cancel` found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CancelOutcome {
    /// It had never started; it never will now. Its custody says where
    /// the cancel is counted.
    Cancelled(Custody),
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
    /// Claims and runs the task as `claimant`, counting it in `tally`;
    /// `Ran::Lost` if it was claimed already or `claimant` is not its
    /// custodian (the pool never runs a handed-back task, its holder never
    /// one that is still the pool's).
    fn run(&self, tally: Tally<'_>, claimant: Custody) -> Ran;
    /// Claims the task and drops its closure, resolving the handle as
    /// cancelled. If it is running, `if_running` says whether to raise its
    /// stop flag: a handle's cancel does; the queue and `PendingTask` do
    /// not, since the run they see may be a joiner's, which they must not
    /// disturb.
    fn cancel(&self, if_running: IfRunning) -> CancelOutcome;
    /// Claims the task if it is still queued and the pool's, drops its
    /// closure, counts it in `tally` and resolves its handle as expired, in
    /// that order; true if it did. For the timer, when the start deadline
    /// passes.
    fn expire(&self, tally: Tally<'_>) -> bool;
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
    /// Waits for the end, or until `token` fires.
    #[cfg(not(loom))]
    fn wait_or_stop(&self, token: &StopToken) -> Result<(), Interrupted>;
    fn is_finished(&self) -> bool;
    /// Waits for the end and takes the result.
    fn join(&self) -> Result<T, TaskError>;
    /// Takes the result without waiting, given the handle's reference is
    /// the only one left; `None` if there is no result (then `join`).
    fn take_unshared(&mut self) -> Option<Result<T, TaskError>>;
    /// The handle is going away unjoined; returns a panic nobody saw.
    fn detach(&self) -> Option<PanicPayload>;
    /// The same cell as the queue and the workers see it (what trait
    /// upcasting does from Rust 1.86 on; the MSRV is older).
    fn into_cell_task(self: Arc<Self>) -> Arc<dyn CellTask>
    where
        Self: 'static;
}

/// What a cancel does to a task it finds running.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum IfRunning {
    /// Raises its stop flag (a handle's `cancel`).
    Stop,
    /// Leaves it alone.
    Leave,
}

/// A cell as it sits in the queue. Dropping an entry whose cell was never
/// claimed (the queue itself being dropped) resolves the handle as
/// cancelled, so no handle waits forever.
pub(crate) struct CellEntry(pub(crate) Arc<dyn CellTask>);

impl Drop for CellEntry {
    fn drop(&mut self) {
        if !self.0.header().is_claimed() {
            self.0.cancel(IfRunning::Leave);
        }
    }
}
