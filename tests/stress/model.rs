//! The stress harness's model: where each closure ran or was dropped, and
//! the ledger that checks every task by id.

use super::*;

// ----- where a closure was run or dropped -------------------------------------

/// What the current thread is doing with a task's closure when it runs or
/// drops it. Pool workers never set it (they are `Pool`); the test's own
/// threads are `Outside` unless one of the other contexts is entered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Ctx {
    /// A pool worker (also a worker helping a join).
    Pool,
    /// A test thread doing nothing in particular: no closure may be run or
    /// dropped here.
    Outside,
    /// `PendingTask::run` of a handed-back task.
    PendingRun,
    /// Dropping a handed-back `PendingTask`.
    PendingDrop,
    /// `TaskHandle::cancel`.
    HandleCancel,
    /// `TaskGroup::cancel`.
    GroupCancel,
    /// Running a closure that came back inside `Rejected`.
    RejectRun,
    /// Dropping a closure that came back inside `Rejected`.
    RejectDrop,
    /// Running a job taken back with `PendingTask::into_job`.
    JobRun,
    /// Dropping a job taken back with `PendingTask::into_job`.
    JobDrop,
    /// A test thread inside `pool.scope`: it runs its scope's tasks while
    /// it waits (as a guest of the pool), and only those.
    ScopeCaller,
}

impl Ctx {
    const ALL: [Ctx; 11] = [
        Ctx::Pool,
        Ctx::Outside,
        Ctx::PendingRun,
        Ctx::PendingDrop,
        Ctx::HandleCancel,
        Ctx::GroupCancel,
        Ctx::RejectRun,
        Ctx::RejectDrop,
        Ctx::JobRun,
        Ctx::JobDrop,
        Ctx::ScopeCaller,
    ];

    pub(crate) fn from_u8(v: u8) -> Ctx {
        Ctx::ALL[usize::from(v)]
    }
}

thread_local! {
    pub(crate) static CTX: Cell<Ctx> = const { Cell::new(Ctx::Pool) };
}

pub(crate) fn ctx_now() -> Ctx {
    CTX.with(Cell::get)
}

/// Runs `f` in context `ctx`, restoring the previous one after (also on
/// unwind).
pub(crate) fn in_ctx<R>(ctx: Ctx, f: impl FnOnce() -> R) -> R {
    struct Restore(Ctx);
    impl Drop for Restore {
        fn drop(&mut self) {
            CTX.with(|c| c.set(self.0));
        }
    }
    let _restore = Restore(CTX.with(|c| c.replace(ctx)));
    f()
}

// ----- the ledger -------------------------------------------------------------

/// What a task does when it runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Spins a little; sometimes feeds the channel the `Recv` tasks read.
    Quick,
    /// Panics with a [`StressPanic`] carrying its id.
    Panic,
    /// `StopToken::current().sleep` for up to a millisecond.
    Sleep,
    /// Sends one message, then `StopToken::current().recv` one (there is
    /// always one to receive, so it never waits long unless stopped).
    Recv,
    /// Submits a child task (`try_submit`) and joins it from the worker.
    Parent,
}

/// The panic payload of a `Kind::Panic` task.
pub(crate) struct StressPanic(pub(crate) u64);

pub(crate) const UNKNOWN: u8 = 0;
pub(crate) const ACCEPTED: u8 = 1;
pub(crate) const REJECTED: u8 = 2;

pub(crate) const NO_HANDLE: u8 = 0;
pub(crate) const PENDING: u8 = 1;
pub(crate) const JOINED_OK: u8 = 2;
pub(crate) const JOINED_PANICKED: u8 = 3;
pub(crate) const JOINED_CANCELLED: u8 = 4;
pub(crate) const DETACHED: u8 = 5;
pub(crate) const UNRESOLVED: u8 = 6;

/// Everything recorded about one task, by id.
pub(crate) struct Slot {
    pub(crate) id: u64,
    pub(crate) kind: Kind,
    pub(crate) group: Option<usize>,
    /// UNKNOWN / ACCEPTED / REJECTED, set by whoever submitted it.
    pub(crate) intake: AtomicU8,
    pub(crate) runs: AtomicU8,
    pub(crate) run_ctx: AtomicU8,
    pub(crate) drops: AtomicU8,
    pub(crate) drop_ctx: AtomicU8,
    /// NO_HANDLE, PENDING, or how the handle ended.
    pub(crate) handle: AtomicU8,
    /// `TaskHandle::cancel` returned true.
    pub(crate) cancelled_by_handle: AtomicBool,
    /// Calls of the panic handler with this task's payload.
    pub(crate) panic_reports: AtomicU8,
    /// Spawned in a `pool.scope` (see `Op::Scope`).
    pub(crate) scoped: AtomicBool,
}

impl Slot {
    pub(crate) fn ran_in_pool(&self) -> bool {
        self.runs.load(SeqCst) == 1
            && matches!(
                Ctx::from_u8(self.run_ctx.load(SeqCst)),
                Ctx::Pool | Ctx::PendingRun | Ctx::ScopeCaller
            )
    }
}

/// What the tasks of one round share: the ledger, the pool (weakly: a task
/// must never keep its own pool alive), the channel of the `Recv` tasks.
pub(crate) struct TaskEnv {
    pub(crate) seed: u64,
    pub(crate) slots: Mutex<Vec<Arc<Slot>>>,
    pub(crate) pool: OnceLock<Weak<ThreadPool>>,
    pub(crate) tx: Sender<u64>,
    pub(crate) rx: Receiver<u64>,
    pub(crate) violations: Mutex<Vec<String>>,
    /// Ids of every `PendingTask` handed back so far: none may come twice.
    pub(crate) returned: Mutex<HashSet<TaskId>>,
}

impl TaskEnv {
    pub(crate) fn new(seed: u64) -> Arc<TaskEnv> {
        let (tx, rx) = crossbeam_channel::unbounded();
        Arc::new(TaskEnv {
            seed,
            slots: Mutex::new(Vec::new()),
            pool: OnceLock::new(),
            tx,
            rx,
            violations: Mutex::new(Vec::new()),
            returned: Mutex::new(HashSet::new()),
        })
    }

    pub(crate) fn violation(&self, what: String) {
        self.violations.lock().unwrap().push(what);
    }

    pub(crate) fn slot(&self, id: u64) -> Option<Arc<Slot>> {
        let index = usize::try_from(id).ok()?;
        self.slots.lock().unwrap().get(index).cloned()
    }

    pub(crate) fn note_returned(&self, id: TaskId) {
        if !self.returned.lock().unwrap().insert(id) {
            self.violation(format!("pool task {id} was handed back twice"));
        }
    }
}

/// Captured by each task's closure: records its run and its drop.
pub(crate) struct Tracker {
    pub(crate) slot: Arc<Slot>,
    pub(crate) env: Arc<TaskEnv>,
}

impl Tracker {
    pub(crate) fn new(env: &Arc<TaskEnv>, kind: Kind, group: Option<usize>) -> Tracker {
        let mut slots = env.slots.lock().unwrap();
        let slot = Arc::new(Slot {
            id: slots.len() as u64,
            kind,
            group,
            intake: AtomicU8::new(UNKNOWN),
            runs: AtomicU8::new(0),
            run_ctx: AtomicU8::new(Ctx::Outside as u8),
            drops: AtomicU8::new(0),
            drop_ctx: AtomicU8::new(Ctx::Outside as u8),
            handle: AtomicU8::new(NO_HANDLE),
            cancelled_by_handle: AtomicBool::new(false),
            panic_reports: AtomicU8::new(0),
            scoped: AtomicBool::new(false),
        });
        slots.push(slot.clone());
        Tracker {
            slot,
            env: env.clone(),
        }
    }

    pub(crate) fn run(self) -> u64 {
        let slot = &self.slot;
        slot.run_ctx.store(ctx_now() as u8, SeqCst);
        slot.runs.fetch_add(1, SeqCst);
        let id = slot.id;
        let mut rng = Rng(mix(self.env.seed ^ id.wrapping_mul(0x9E37_79B9_7F4A_7C15)));
        match slot.kind {
            Kind::Quick => {
                spin(rng.spins(10));
                if rng.next() % 8 == 0 {
                    let _ = self.env.tx.send(id);
                }
            }
            Kind::Panic => {
                spin(rng.spins(8));
                panic::panic_any(StressPanic(id));
            }
            Kind::Sleep => {
                let _ = StopToken::current().sleep(Duration::from_micros(rng.next() % 1000));
            }
            Kind::Recv => {
                let _ = self.env.tx.send(id);
                let _ = StopToken::current().recv(&self.env.rx);
            }
            Kind::Parent => self.parent(&mut rng),
        }
        id
    }

    /// Submits a child and joins it: from a worker, the wait helps (runs
    /// the child inline if it is still queued), so it can never deadlock.
    pub(crate) fn parent(&self, rng: &mut Rng) {
        let Some(pool) = self.env.pool.get().and_then(Weak::upgrade) else {
            return;
        };
        let kind = if rng.next() % 4 == 0 {
            Kind::Panic
        } else {
            Kind::Quick
        };
        let child = Tracker::new(&self.env, kind, None);
        let slot = child.slot.clone();
        // `try_submit`: a worker blocked on a full bounded queue could wait
        // for the other workers doing the same.
        match pool.try_submit(move || child.run()) {
            // The wait hears the parent's stop: a `shutdown_now` (also a
            // `ShutdownHandle`'s, whose stash keeps the handed-back child
            // until the round ends) wakes it, and it detaches. A plain
            // wait here sat out its whole bound (CI, under Wine: "did not
            // resolve within 10s", then dropped from the stash).
            Ok(handle) if ctx_now() == Ctx::Pool => {
                slot.intake.store(ACCEPTED, SeqCst);
                if StopToken::current().wait_task(&handle).is_ok() {
                    slot.handle.store(PENDING, SeqCst);
                    resolve(&self.env, &slot, handle, WAIT);
                } else {
                    slot.handle.store(DETACHED, SeqCst);
                    drop(handle);
                }
            }
            // Off the pool (a handed-back parent run by a producer) the join
            // cannot help, and the child may sit in the stash of a
            // `ShutdownHandle`'s shutdown_now until the end of the round:
            // detach instead of waiting for it.
            Ok(handle) => {
                slot.intake.store(ACCEPTED, SeqCst);
                slot.handle.store(DETACHED, SeqCst);
                drop(handle);
            }
            Err(rejected) => {
                slot.intake.store(REJECTED, SeqCst);
                check_reason(&self.env, &slot, &rejected, true);
                let f = rejected.into_inner();
                give_back(rng, move || {
                    f();
                });
            }
        }
    }
}

impl Drop for Tracker {
    fn drop(&mut self) {
        self.slot.drop_ctx.store(ctx_now() as u8, SeqCst);
        self.slot.drops.fetch_add(1, SeqCst);
    }
}

/// A task submitted as a [`Job`] value, which `into_job` can give back.
pub(crate) struct StressJob(pub(crate) Tracker);

impl Job for StressJob {
    type Output = u64;
    fn run(self) -> u64 {
        self.0.run()
    }
}

/// Waits for `handle` (at most `bound`) and records how it ended.
pub(crate) fn resolve(env: &TaskEnv, slot: &Slot, handle: TaskHandle<u64>, bound: Duration) {
    if !handle.wait_timeout(bound) {
        slot.handle.store(UNRESOLVED, SeqCst);
        env.violation(format!(
            "task {} ({:?}): its handle did not resolve within {bound:?}",
            slot.id, slot.kind
        ));
        return;
    }
    let state = match handle.join() {
        Ok(value) => {
            if value != slot.id {
                env.violation(format!("task {}: its handle gave {value}", slot.id));
            }
            JOINED_OK
        }
        Err(TaskError::Panicked(mut payload)) => {
            match payload.get_mut().downcast_ref::<StressPanic>() {
                Some(p) if p.0 == slot.id => {}
                _ => env.violation(format!("task {}: its handle got a foreign panic", slot.id)),
            }
            JOINED_PANICKED
        }
        Err(TaskError::Cancelled) => JOINED_CANCELLED,
        Err(other) => {
            slot.handle.store(UNRESOLVED, SeqCst);
            env.violation(format!("task {}: its handle gave {other:?}", slot.id));
            return;
        }
    };
    slot.handle.store(state, SeqCst);
}

/// Checks the reason of a refusal: `QueueFull` only from a call that may
/// refuse for it.
pub(crate) fn check_reason<F>(
    env: &TaskEnv,
    slot: &Slot,
    rejected: &Rejected<F>,
    may_be_full: bool,
) {
    let ok = match rejected.reason() {
        RejectReason::Shutdown => true,
        RejectReason::QueueFull => may_be_full,
        RejectReason::Cancelled => slot.group.is_some(),
        _ => false, // a reason this model does not know
    };
    if !ok {
        env.violation(format!(
            "task {} ({:?}, group {:?}): refused for {:?}",
            slot.id,
            slot.kind,
            slot.group,
            rejected.reason()
        ));
    }
}

/// A closure that came back inside `Rejected`: run it or drop it.
pub(crate) fn give_back(rng: &mut Rng, f: impl FnOnce()) {
    if rng.next() % 2 == 0 {
        in_ctx(Ctx::RejectRun, || {
            let _ = panic::catch_unwind(AssertUnwindSafe(f));
        });
    } else {
        in_ctx(Ctx::RejectDrop, || drop(f));
    }
}

/// A refused batch: every task refused for an expected reason, and the
/// whole batch back in the `Rejected`, each closure run or dropped here.
pub(crate) fn refused_batch<F, R>(
    env: &TaskEnv,
    rng: &mut Rng,
    slots: &[Arc<Slot>],
    rejected: Rejected<Vec<F>>,
    may_be_full: bool,
) where
    F: FnOnce() -> R,
{
    for slot in slots {
        check_reason(env, slot, &rejected, may_be_full);
        slot.intake.store(REJECTED, SeqCst);
    }
    let back = rejected.into_inner();
    if back.len() != slots.len() {
        env.violation(format!(
            "a refused batch of {} came back as {}",
            slots.len(),
            back.len()
        ));
    }
    for f in back {
        give_back(rng, move || {
            f();
        });
    }
}

/// Tasks handed back by `shutdown_now`, `cancel_returning` or a graceful
/// shutdown: run some, drop some, take some jobs back out as values.
pub(crate) fn settle(env: &TaskEnv, rng: &mut Rng, pending: Vec<PendingTask>) {
    for task in pending {
        env.note_returned(task.id());
        match rng.next() % 5 {
            0 | 1 => in_ctx(Ctx::PendingRun, || task.run()),
            2 | 3 => in_ctx(Ctx::PendingDrop, || drop(task)),
            _ => match task.into_job::<StressJob>() {
                Ok(job) => {
                    if rng.next() % 2 == 0 {
                        in_ctx(Ctx::JobRun, || {
                            let _ = panic::catch_unwind(AssertUnwindSafe(|| job.run()));
                        });
                    } else {
                        in_ctx(Ctx::JobDrop, || drop(job));
                    }
                }
                Err(err) => in_ctx(Ctx::PendingDrop, || drop(err.into_pending())),
            },
        }
    }
}
