//! The stress harness's generator: the operations, their weights, and
//! how a round is produced.

use super::*;

// ----- the generator ----------------------------------------------------------

/// One kind of run.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Config {
    pub(crate) name: &'static str,
    /// A bounded queue (small, so that submitters block and `try_` forms
    /// refuse). Groups are not paused then: a paused group's tasks hold
    /// their places in the queue, and producers blocked on it could wait for
    /// a resume that only they would send.
    pub(crate) bounded: bool,
    /// Shutdown requests come early and often.
    pub(crate) storm: bool,
}

pub(crate) const MIXED: Config = Config {
    name: "mixed",
    bounded: false,
    storm: false,
};
pub(crate) const BOUNDED: Config = Config {
    name: "bounded",
    bounded: true,
    storm: false,
};
pub(crate) const STORM: Config = Config {
    name: "storm",
    bounded: false,
    storm: true,
};

#[derive(Clone, Copy, Debug)]
pub(crate) enum Op {
    Execute,
    TryExecute,
    NamedExecute,
    Submit,
    TrySubmit,
    SubmitJob,
    ExecuteBatch,
    SubmitBatch,
    GroupExecute,
    GroupSubmit,
    GroupSubmitJob,
    GroupCancel,
    GroupCancelReturning,
    Pause,
    Resume,
    HandleCancel,
    DropHandle,
    PollHandle,
    Shutdown,
    ShutdownNow,
    SignalShutdown,
    SignalShutdownNow,
    Scope,
}

pub(crate) const WEIGHTS: &[(u64, Op)] = &[
    (14, Op::Execute),
    (4, Op::TryExecute),
    (3, Op::NamedExecute),
    (14, Op::Submit),
    (4, Op::TrySubmit),
    (6, Op::SubmitJob),
    (4, Op::ExecuteBatch),
    (4, Op::SubmitBatch),
    (8, Op::GroupExecute),
    (8, Op::GroupSubmit),
    (3, Op::GroupSubmitJob),
    (1, Op::GroupCancel),
    (1, Op::GroupCancelReturning),
    (2, Op::Pause),
    (3, Op::Resume),
    (8, Op::HandleCancel),
    (3, Op::DropHandle),
    (4, Op::PollHandle),
    (3, Op::Scope),
];

pub(crate) const SHUTDOWNS: [Op; 4] = [
    Op::Shutdown,
    Op::ShutdownNow,
    Op::SignalShutdown,
    Op::SignalShutdownNow,
];

/// A round's shape, drawn from its seed.
#[derive(Debug)]
pub(crate) struct Shape {
    pub(crate) threads: usize,
    pub(crate) producers: usize,
    pub(crate) ops: usize,
    pub(crate) groups: usize,
    pub(crate) capacity: Option<usize>,
    /// One op in this many is a shutdown of some kind (0: none).
    pub(crate) shutdown_odds: u64,
    pub(crate) end: End,
    pub(crate) drain: Duration,
}

/// How a round ends, after the producers are done.
#[derive(Clone, Copy, Debug)]
pub(crate) enum End {
    /// Resume every group, `wait_idle`, then shut down and await.
    IdleThenShutdown,
    /// `shutdown_gracefully` with a short drain budget.
    Graceful,
    /// `shutdown` and `await_termination`.
    Shutdown,
    /// `shutdown_now` and `await_termination`.
    ShutdownNow,
}

impl Shape {
    pub(crate) fn draw(cfg: &Config, rng: &mut Rng) -> Shape {
        let shutdown_odds = if cfg.storm {
            [15, 40, 120][(rng.next() % 3) as usize]
        } else {
            [0, 0, 3000, 800, 300][(rng.next() % 5) as usize]
        };
        let ops = if cfg.storm {
            40 + (rng.next() % 120) as usize
        } else {
            100 + (rng.next() % 250) as usize
        };
        Shape {
            threads: 1 + (rng.next() % 4) as usize,
            producers: 2 + (rng.next() % 3) as usize,
            ops,
            groups: 1 + (rng.next() % 3) as usize,
            capacity: cfg.bounded.then(|| 1 + (rng.next() % 24) as usize),
            shutdown_odds,
            end: [
                End::IdleThenShutdown,
                End::Graceful,
                End::Shutdown,
                End::ShutdownNow,
            ][(rng.next() % 4) as usize],
            drain: Duration::from_micros(rng.next() % 5000),
        }
    }
}

/// What the producers of a round share.
pub(crate) struct Round {
    pub(crate) cfg: Config,
    pub(crate) env: Arc<TaskEnv>,
    pub(crate) pool: Arc<ThreadPool>,
    pub(crate) groups: Vec<TaskGroup>,
    pub(crate) signals: ShutdownHandle,
    pub(crate) shape: Shape,
    /// Sum of what `TaskGroup::cancel` returned.
    pub(crate) group_cancelled: AtomicUsize,
    /// How many `TaskHandle::cancel` calls returned true.
    pub(crate) handle_cancelled: AtomicUsize,
}

pub(crate) type Held = Vec<(Arc<Slot>, TaskHandle<u64>)>;

/// One producer: `ops` random operations; returns the handles it still holds.
pub(crate) fn produce(round: &Round, mut rng: Rng) -> Held {
    CTX.with(|c| c.set(Ctx::Outside));
    let mut held: Held = Vec::new();
    let total: u64 = WEIGHTS.iter().map(|(w, _)| w).sum();
    for _ in 0..round.shape.ops {
        let op = if round.shape.shutdown_odds > 0 && rng.next() % round.shape.shutdown_odds == 0 {
            SHUTDOWNS[(rng.next() % 4) as usize]
        } else {
            let mut pick = rng.next() % total;
            WEIGHTS
                .iter()
                .find(|(w, _)| {
                    if pick < *w {
                        true
                    } else {
                        pick -= w;
                        false
                    }
                })
                .map(|(_, op)| *op)
                .expect("the weights cover the range")
        };
        step(round, &mut rng, &mut held, op);
    }
    held
}

/// The length of a batch: mostly small (one queue entry per task), now and
/// then large enough to be queued in chunks on any number of workers.
pub(crate) fn batch_len(rng: &mut Rng) -> usize {
    if rng.next() % 4 == 0 {
        1 + (rng.next() % 64) as usize
    } else {
        1 + (rng.next() % 8) as usize
    }
}

pub(crate) fn draw_kind(rng: &mut Rng) -> Kind {
    match rng.next() % 100 {
        0..60 => Kind::Quick,
        60..70 => Kind::Panic,
        70..82 => Kind::Sleep,
        82..90 => Kind::Recv,
        _ => Kind::Parent,
    }
}

/// A scoped task's kind: any but `Panic` (a scoped panic resumes on the
/// scope's caller instead of reaching the panic handler, which the books
/// of this model count).
fn draw_scoped_kind(rng: &mut Rng) -> Kind {
    match draw_kind(rng) {
        Kind::Panic => Kind::Quick,
        kind => kind,
    }
}

/// `pool.scope` from the producer: a batch of spawns, sometimes cancelled
/// part way. Once the scope returns, every one of its tasks has ended:
/// its closure was run or dropped, once.
fn scope_op(round: &Round, rng: &mut Rng) {
    let env = &round.env;
    let n = batch_len(rng);
    let cancel_at = (rng.next() % 3 == 0).then(|| (rng.next() % (n as u64 + 1)) as usize);
    let trackers: Vec<Tracker> = (0..n)
        .map(|_| {
            let t = Tracker::new(env, draw_scoped_kind(rng), None);
            t.slot.scoped.store(true, SeqCst);
            t
        })
        .collect();
    let slots: Vec<Arc<Slot>> = trackers.iter().map(|t| t.slot.clone()).collect();
    // The caller runs its scope's tasks too (and the closures its spawns
    // refuse are dropped here).
    let outer = CTX.with(|c| c.replace(Ctx::ScopeCaller));
    round.pool.scope(|s| {
        for (i, t) in trackers.into_iter().enumerate() {
            if cancel_at == Some(i) {
                s.cancel();
            }
            let slot = t.slot.clone();
            let handle = s.spawn(move || {
                t.run();
            });
            let intake = if handle.id().is_some() {
                ACCEPTED
            } else {
                REJECTED
            };
            slot.intake.store(intake, SeqCst);
        }
    });
    CTX.with(|c| c.set(outer));
    for slot in &slots {
        let drops = slot.drops.load(SeqCst);
        if drops != 1 {
            env.violation(format!(
                "scoped task {}: its closure was dropped {drops} times when its scope returned",
                slot.id
            ));
        }
    }
}

pub(crate) fn accepted(slot: &Arc<Slot>, handle: Option<TaskHandle<u64>>, held: &mut Held) {
    slot.intake.store(ACCEPTED, SeqCst);
    if let Some(handle) = handle {
        slot.handle.store(PENDING, SeqCst);
        held.push((slot.clone(), handle));
    }
}

pub(crate) fn step(round: &Round, rng: &mut Rng, held: &mut Held, op: Op) {
    let env = &round.env;
    let pool = &*round.pool;
    let group_index = (rng.next() % round.groups.len() as u64) as usize;
    let group = &round.groups[group_index];
    match op {
        Op::Scope => scope_op(round, rng),
        Op::Execute | Op::TryExecute | Op::NamedExecute => {
            let t = Tracker::new(env, draw_kind(rng), None);
            let slot = t.slot.clone();
            let f = move || {
                t.run();
            };
            let result = match op {
                Op::Execute => pool.execute(f),
                Op::TryExecute => pool.try_execute(f),
                _ => pool.task().name(format!("t{}", slot.id)).execute(f),
            };
            match result {
                Ok(()) => accepted(&slot, None, held),
                Err(rejected) => refused(env, rng, &slot, rejected, matches!(op, Op::TryExecute)),
            }
        }
        Op::Submit | Op::TrySubmit => {
            let t = Tracker::new(env, draw_kind(rng), None);
            let slot = t.slot.clone();
            let f = move || t.run();
            let result = if matches!(op, Op::Submit) {
                pool.submit(f)
            } else {
                pool.try_submit(f)
            };
            match result {
                Ok(handle) => accepted(&slot, Some(handle), held),
                Err(rejected) => {
                    check_reason(env, &slot, &rejected, matches!(op, Op::TrySubmit));
                    slot.intake.store(REJECTED, SeqCst);
                    let f = rejected.into_inner();
                    give_back(rng, move || {
                        f();
                    });
                }
            }
        }
        Op::SubmitJob | Op::GroupSubmitJob => {
            let in_group = matches!(op, Op::GroupSubmitJob).then_some(group_index);
            let t = Tracker::new(env, draw_kind(rng), in_group);
            let slot = t.slot.clone();
            let result = if in_group.is_some() {
                group.submit_job(StressJob(t))
            } else {
                pool.submit_job(StressJob(t))
            };
            match result {
                Ok(handle) => accepted(&slot, Some(handle), held),
                Err(rejected) => {
                    check_reason(env, &slot, &rejected, false);
                    slot.intake.store(REJECTED, SeqCst);
                    let job = rejected.into_inner();
                    give_back(rng, move || {
                        job.run();
                    });
                }
            }
        }
        Op::ExecuteBatch => {
            let n = batch_len(rng);
            let trackers: Vec<Tracker> = (0..n)
                .map(|_| Tracker::new(env, draw_kind(rng), None))
                .collect();
            let slots: Vec<Arc<Slot>> = trackers.iter().map(|t| t.slot.clone()).collect();
            let tasks: Vec<_> = trackers
                .into_iter()
                .map(|t| {
                    move || {
                        t.run();
                    }
                })
                .collect();
            match pool.execute_batch(tasks) {
                Ok(()) => slots.iter().for_each(|s| accepted(s, None, held)),
                Err(rejected) => {
                    let full = round.shape.capacity.is_some_and(|c| n > c);
                    refused_batch(env, rng, &slots, rejected, full);
                }
            }
        }
        Op::SubmitBatch => {
            let n = batch_len(rng);
            let trackers: Vec<Tracker> = (0..n)
                .map(|_| Tracker::new(env, draw_kind(rng), None))
                .collect();
            let slots: Vec<Arc<Slot>> = trackers.iter().map(|t| t.slot.clone()).collect();
            let tasks: Vec<_> = trackers.into_iter().map(|t| move || t.run()).collect();
            match pool.submit_batch(tasks) {
                Ok(handles) => {
                    if handles.len() != n {
                        env.violation(format!("a batch of {n} gave {} handles", handles.len()));
                    }
                    for (slot, handle) in slots.iter().zip(handles) {
                        accepted(slot, Some(handle), held);
                    }
                }
                Err(rejected) => {
                    let full = round.shape.capacity.is_some_and(|c| n > c);
                    refused_batch(env, rng, &slots, rejected, full);
                }
            }
        }
        Op::GroupExecute => {
            let t = Tracker::new(env, draw_kind(rng), Some(group_index));
            let slot = t.slot.clone();
            let f = move || {
                t.run();
            };
            let try_form = round.cfg.bounded && rng.next() % 2 == 0;
            let result = if try_form {
                group.try_execute(f)
            } else if rng.next() % 4 == 0 {
                group.task().name(format!("g{}", slot.id)).execute(f)
            } else {
                group.execute(f)
            };
            match result {
                Ok(()) => accepted(&slot, None, held),
                Err(rejected) => refused(env, rng, &slot, rejected, try_form),
            }
        }
        Op::GroupSubmit => {
            let t = Tracker::new(env, draw_kind(rng), Some(group_index));
            let slot = t.slot.clone();
            let f = move || t.run();
            let try_form = round.cfg.bounded && rng.next() % 2 == 0;
            let result = if try_form {
                group.try_submit(f)
            } else {
                group.submit(f)
            };
            match result {
                Ok(handle) => accepted(&slot, Some(handle), held),
                Err(rejected) => {
                    check_reason(env, &slot, &rejected, try_form);
                    slot.intake.store(REJECTED, SeqCst);
                    let f = rejected.into_inner();
                    give_back(rng, move || {
                        f();
                    });
                }
            }
        }
        Op::GroupCancel => {
            let dropped = in_ctx(Ctx::GroupCancel, || group.cancel());
            round.group_cancelled.fetch_add(dropped, SeqCst);
        }
        Op::GroupCancelReturning => {
            let pending = group.cancel_returning();
            settle(env, rng, pending);
        }
        Op::Pause => {
            if !round.cfg.bounded {
                group.pause();
            }
        }
        Op::Resume => group.resume(),
        Op::HandleCancel => {
            if held.is_empty() {
                return;
            }
            let i = (rng.next() % held.len() as u64) as usize;
            let (slot, handle) = &held[i];
            if in_ctx(Ctx::HandleCancel, || handle.cancel()) {
                slot.cancelled_by_handle.store(true, SeqCst);
                round.handle_cancelled.fetch_add(1, SeqCst);
                if !handle.is_finished() || !handle.wait_timeout(Duration::ZERO) {
                    env.violation(format!(
                        "task {}: cancel returned true but its handle is not resolved",
                        slot.id
                    ));
                }
            }
        }
        Op::DropHandle => {
            if held.is_empty() {
                return;
            }
            let i = (rng.next() % held.len() as u64) as usize;
            let (slot, handle) = held.swap_remove(i);
            slot.handle.store(DETACHED, SeqCst);
            drop(handle);
        }
        Op::PollHandle => {
            if held.is_empty() {
                return;
            }
            let i = (rng.next() % held.len() as u64) as usize;
            if held[i].1.wait_timeout(Duration::ZERO) {
                let (slot, handle) = held.swap_remove(i);
                resolve(env, &slot, handle, Duration::ZERO);
            }
        }
        Op::Shutdown => pool.shutdown(),
        Op::ShutdownNow => {
            let pending = pool.shutdown_now();
            settle(env, rng, pending);
        }
        Op::SignalShutdown => round.signals.request_shutdown(),
        Op::SignalShutdownNow => round.signals.request_shutdown_now(),
    }
}

/// An `execute`d closure refused: it must come back whole.
pub(crate) fn refused<F: FnOnce()>(
    env: &TaskEnv,
    rng: &mut Rng,
    slot: &Slot,
    r: Rejected<F>,
    full: bool,
) {
    check_reason(env, slot, &r, full);
    slot.intake.store(REJECTED, SeqCst);
    give_back(rng, r.into_inner());
}
