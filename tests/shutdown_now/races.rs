//! `shutdown_now` racing: concurrent calls, producers, a joiner that
//! would run a handed-back task, and a second caller that must also
//! return with the stop raised. Every task is accounted for once.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, mpsc};
use std::thread;
use std::time::Duration;

use crate::common::{
    self, DropCounter, Gate, LeakOnPanic, RaceTask, WAIT, bounded_join, spawn, take_back,
};
use crate::held_pool;
use drainpool::{PendingTask, RejectReason, StopToken, TaskError, TaskHandle, TaskId, ThreadPool};

// Several threads call shutdown_now at once: the union is every queued task, none twice, each
// share in order.
#[test]
fn concurrent_calls_return_each_task_once() {
    const ROUNDS: usize = 50;
    const TASKS: usize = 200;
    const CALLERS: usize = 4;
    for round in 0..ROUNDS {
        let queued = Queued::new(TASKS);
        let (pool, order) = (&queued.pool, &queued.order);

        let start = Arc::new(Barrier::new(CALLERS));
        let callers: Vec<_> = (0..CALLERS)
            .map(|_| {
                let (pool, start) = (pool.clone(), start.clone());
                spawn(move || {
                    start.wait();
                    pool.shutdown_now()
                })
            })
            .collect();
        let mut all = Vec::new();
        for caller in callers {
            let pending = caller.join("a shutdown_now caller");
            let ids: Vec<TaskId> = pending.iter().map(PendingTask::id).collect();
            // Each caller's share is in submission order too.
            let positions: Vec<usize> = ids
                .iter()
                .map(|id| order.iter().position(|o| o == id).expect("one of ours"))
                .collect();
            assert!(
                positions.windows(2).all(|w| w[0] < w[1]),
                "round {round}: out of order {positions:?}"
            );
            all.extend(pending);
        }
        let ids: BTreeSet<TaskId> = all.iter().map(PendingTask::id).collect();
        assert_eq!(all.len(), TASKS, "round {round}: returned {}", all.len());
        assert_eq!(ids, order.iter().copied().collect(), "round {round}");

        drop(all);
        queued.finish_cancelled(round);
    }
}

/// A round's pool, its one worker held, with tasks submitted behind it.
struct Queued {
    gate: Gate,
    pool: Arc<ThreadPool>,
    _leak: LeakOnPanic,
    handles: Vec<TaskHandle<usize>>,
    /// Their ids, in submission order.
    order: Vec<TaskId>,
}

impl Queued {
    fn new(tasks: usize) -> Queued {
        let gate = Gate::new();
        let pool = Arc::new(held_pool(&gate));
        let handles: Vec<_> = (0..tasks)
            .map(|i| pool.submit(move || i).unwrap())
            .collect();
        Queued {
            gate,
            _leak: LeakOnPanic(pool.clone()),
            pool,
            order: handles.iter().map(TaskHandle::id).collect(),
            handles,
        }
    }

    /// Once every task was handed back and dropped: each handle resolves
    /// cancelled, each is counted so, and the pool terminates.
    fn finish_cancelled(self, round: usize) {
        let tasks = self.handles.len() as u64;
        for handle in self.handles {
            assert!(
                matches!(bounded_join(handle), Err(TaskError::Cancelled)),
                "round {round}"
            );
        }
        self.gate.release();
        assert!(
            self.pool.await_termination(WAIT),
            "round {round}: no termination"
        );
        assert_eq!(self.pool.stats().cancelled, tasks, "round {round}");
    }
}

/// One task of the race, as its producer and the test saw it.
struct Attempt {
    runs: Arc<AtomicU8>,
    /// Refused at intake (and handed back inside `Rejected`).
    rejected: bool,
    /// `TaskHandle::cancel` returned true: it will never start.
    cancelled: bool,
    /// Handed back by `shutdown_now`, then run here (true) or dropped.
    returned: Option<bool>,
    handle: Option<TaskHandle<usize>>,
}

impl Attempt {
    /// Whether it must have run, once everything has settled.
    fn must_have_run(&self) -> bool {
        !self.rejected && !self.cancelled && self.returned.unwrap_or(true)
    }
}

// THE race: producers (execute, submit, cancel) vs two shutdown_now callers; every task ran, was
// returned, cancelled or rejected, exactly once.
#[test]
fn racing_shutdown_now_accounts_for_every_task_once() {
    const ROUNDS: usize = 200;
    const PRODUCERS: usize = 4;
    /// Refusals a producer collects before it stops: it keeps submitting
    /// until then, so every round straddles the shutdown.
    const REFUSALS: usize = 4;
    /// A shutdown that never lands fails the test instead of eating memory.
    const CAP: usize = 1_000_000;

    let mut rounds_with_returns = 0;
    for round in 0..ROUNDS {
        let pool = Arc::new(ThreadPool::new(2).unwrap());
        let _leak = LeakOnPanic(pool.clone());
        // Every other round holds both workers until the stop, so the queue
        // surely holds tasks for shutdown_now to hand back; the other rounds
        // let the workers race the stop.
        let holders = if round % 2 == 1 { 2 } else { 0 };
        let gate = Gate::occupying(&pool, holders);
        let drops = DropCounter::default();
        let attempted = Arc::new(AtomicUsize::new(0));
        let start = Arc::new(Barrier::new(PRODUCERS + 3)); // and two stoppers, and us

        // Producers mix execute and submit, all named "{producer}/{index}",
        // and cancel every fourth submitted task at once: cancel races the
        // workers and shutdown_now for the same task.
        let producers: Vec<_> = (0..PRODUCERS)
            .map(|p| {
                let (pool, drops) = (pool.clone(), drops.clone());
                let (attempted, start) = (attempted.clone(), start.clone());
                spawn(move || {
                    let mut attempts: Vec<Attempt> = Vec::new();
                    let mut refusals = 0;
                    start.wait();
                    while refusals < REFUSALS {
                        let index = attempts.len();
                        assert!(index < CAP, "shutdown_now never refused a task");
                        let runs = Arc::new(AtomicU8::new(0));
                        let task = RaceTask::new(runs.clone(), index, &drops);
                        attempted.fetch_add(1, Ordering::SeqCst);
                        let builder = pool.task().name(format!("{p}/{index}"));
                        let (outcome, handle) = if index % 2 == 0 {
                            let outcome = builder.execute(move || {
                                task.run();
                            });
                            (outcome.map_err(take_back), None)
                        } else {
                            match builder.submit(move || task.run()) {
                                Ok(handle) => (Ok(()), Some(handle)),
                                Err(r) => (Err(take_back(r)), None),
                            }
                        };
                        let cancelled =
                            index % 8 == 7 && handle.as_ref().is_some_and(|h| h.cancel());
                        if let Err(reason) = outcome {
                            assert_eq!(reason, RejectReason::Shutdown);
                            refusals += 1;
                        }
                        attempts.push(Attempt {
                            runs,
                            rejected: outcome.is_err(),
                            cancelled,
                            returned: None,
                            handle,
                        });
                        // Two cores are common in CI: give the stopper
                        // threads a chance to run mid-stream.
                        thread::yield_now();
                    }
                    attempts
                })
            })
            .collect();

        // Two stoppers race each other and the producers, after a number of
        // attempts that moves from round to round.
        let threshold = (round * 37) % 1_000;
        let stoppers: Vec<_> = (0..2)
            .map(|_| {
                let (pool, attempted, start) = (pool.clone(), attempted.clone(), start.clone());
                spawn(move || {
                    start.wait();
                    while attempted.load(Ordering::SeqCst) < threshold {
                        thread::yield_now();
                    }
                    pool.shutdown_now()
                })
            })
            .collect();
        start.wait();

        let mut pending: Vec<PendingTask> = Vec::new();
        for stopper in stoppers {
            pending.extend(stopper.join("a shutdown_now caller"));
        }
        gate.release();
        let mut attempts: Vec<Vec<Attempt>> = producers
            .into_iter()
            .map(|p| p.join("a producer"))
            .collect();
        assert!(
            pool.shutdown_now().is_empty(),
            "round {round}: returned late"
        );
        assert!(
            pool.await_termination(WAIT),
            "round {round}: no termination"
        );
        if !pending.is_empty() {
            rounds_with_returns += 1;
        }
        let ok = attempts.iter().flatten().filter(|a| !a.rejected).count() as u64;
        let rejected = attempts.iter().flatten().filter(|a| a.rejected).count() as u64;
        let cancelled = attempts.iter().flatten().filter(|a| a.cancelled).count() as u64;

        // Which task each handed-back one is; each is handed back once, and
        // only if accepted and never started.
        let mut returned = Vec::new();
        for task in &pending {
            let name = task.name().expect("every task of the race is named");
            let (p, index) = name.split_once('/').unwrap();
            let (p, index): (usize, usize) = (p.parse().unwrap(), index.parse().unwrap());
            let attempt = &attempts[p][index];
            assert!(
                !attempt.rejected,
                "round {round}: {name} rejected and handed back"
            );
            assert_eq!(
                attempt.runs.load(Ordering::SeqCst),
                0,
                "round {round}: {name} was handed back after it ran"
            );
            returned.push((p, index));
        }
        let mut unique = returned.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(
            unique.len(),
            returned.len(),
            "round {round}: handed back twice"
        );

        // The invariant while the handed-back tasks are still held. A task
        // cancelled through its handle after it was handed back counts as
        // cancelled; its PendingTask is an empty shell.
        let held = returned
            .iter()
            .filter(|&&(p, i)| !attempts[p][i].cancelled)
            .count() as u64;
        let stats = pool.stats();
        assert_eq!(
            stats.completed + stats.panicked + stats.cancelled + held,
            ok + holders as u64,
            "round {round}: {stats:?}, {held} held"
        );
        assert_eq!(
            (stats.queued, stats.active, stats.threads, stats.rejected),
            (0, 0, 0, rejected),
            "round {round}: {stats:?}"
        );

        // Run half of the handed-back tasks here, drop the other half.
        let mut dropped_live = 0;
        for (k, (task, (p, index))) in pending.into_iter().zip(returned).enumerate() {
            let run_here = k % 2 == 0;
            attempts[p][index].returned = Some(run_here);
            if run_here {
                task.run();
            } else {
                if !attempts[p][index].cancelled {
                    dropped_live += 1;
                }
                drop(task);
            }
        }

        // Every task ended exactly one way, and its handle says which.
        for (p, attempts) in attempts.iter_mut().enumerate() {
            for (index, attempt) in attempts.iter_mut().enumerate() {
                let ran = attempt.runs.load(Ordering::SeqCst);
                let expected = u8::from(attempt.must_have_run());
                let fate = (attempt.rejected, attempt.cancelled, attempt.returned);
                assert_eq!(
                    ran, expected,
                    "round {round}: task {p}/{index} (rejected, cancelled, returned) = {fate:?}"
                );
                if let Some(handle) = attempt.handle.take() {
                    match bounded_join(handle) {
                        Ok(v) if expected == 1 => assert_eq!(v, index),
                        Err(TaskError::Cancelled) if expected == 0 => {}
                        other => {
                            panic!("round {round}: task {p}/{index} {fate:?} joined {other:?}")
                        }
                    }
                }
            }
        }

        let attempts_total = attempts.iter().flatten().count();
        assert_eq!(
            drops.count(),
            attempts_total,
            "round {round}: leak or double drop"
        );
        let ran_total = attempts
            .iter()
            .flatten()
            .filter(|a| a.must_have_run())
            .count() as u64;
        let stats = pool.stats();
        let holders = holders as u64; // the holding tasks completed too
        assert_eq!(
            stats.completed,
            ran_total + holders,
            "round {round}: {stats:?}"
        );
        assert_eq!(
            stats.cancelled,
            cancelled + dropped_live,
            "round {round}: {stats:?}"
        );
        assert_eq!(
            stats.completed + stats.cancelled,
            ok + holders,
            "round {round}: {stats:?}"
        );
        assert_eq!(stats.panicked, 0, "round {round}: {stats:?}");
    }
    // Worth something only if shutdown_now found tasks to hand back: the
    // held rounds guarantee it in half of them.
    assert!(
        rounds_with_returns >= ROUNDS / 2,
        "only {rounds_with_returns} of {ROUNDS} rounds handed tasks back"
    );
}

// ----- regressions ------------------------------------------------------------

/// Regression (issue 12, defect 5): a task handed back by `shutdown_now`
/// was still run by a running task that joined its handle (the joiner helped
/// and ran it inline), so the program's `into_job` failed. Never both, never
/// neither: the handed-back task is the program's alone.
#[test]
fn a_handed_back_task_is_never_also_run_by_a_joiner() {
    use common::Latch;
    use drainpool::Job;
    use std::sync::atomic::AtomicBool;

    struct Chunk(Arc<AtomicBool>);
    impl Job for Chunk {
        type Output = ();
        fn run(self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    let pool = common::TestPool::new(1);
    let started = Latch::default();
    let go_on = Latch::default();
    let (handle_tx, handle_rx) = mpsc::channel::<TaskHandle<()>>();
    let joiner = pool
        .submit({
            let (started, go_on) = (started.clone(), go_on.clone());
            move || {
                started.open();
                let queued = handle_rx.recv_timeout(WAIT).expect("the handle arrives");
                go_on.wait();
                // Long enough to show it is not run here; not the program's.
                let ended = queued.wait_timeout(Duration::from_millis(200));
                (ended, queued)
            }
        })
        .unwrap();
    started.expect_open();
    let ran = Arc::new(AtomicBool::new(false));
    let queued = pool.submit_job(Chunk(ran.clone())).unwrap();
    handle_tx.send(queued).unwrap();
    let mut pending = pool.shutdown_now();
    assert_eq!(pending.len(), 1);
    go_on.open();
    let (ended, queued) = bounded_join(joiner).unwrap();
    assert!(!ended, "the joiner ran a task that had been handed back");
    let job: Chunk = pending
        .pop()
        .unwrap()
        .into_job()
        .expect("handed back, so the program's to take");
    assert!(!ran.load(Ordering::SeqCst));
    assert!(bounded_join(queued).unwrap_err().is_cancelled());
    drop(job);
}

/// A logger that is slow on one line: the one the first `shutdown_now`
/// logs between moving the state and raising the stop. A slow logger is
/// what real programs have; here it widens that window to 20 µs.
struct SlowAtShutdownNow;

impl log::Log for SlowAtShutdownNow {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.target().starts_with("drainpool")
    }

    fn log(&self, record: &log::Record<'_>) {
        if record
            .args()
            .to_string()
            .contains("shutdown_now: intake closed")
        {
            let until = std::time::Instant::now() + Duration::from_micros(20);
            while std::time::Instant::now() < until {
                std::hint::spin_loop();
            }
        }
    }

    fn flush(&self) {}
}

fn slow_logger_at_the_first_shutdown_now() {
    static INSTALL: std::sync::Once = std::sync::Once::new();
    INSTALL.call_once(|| {
        log::set_logger(&SlowAtShutdownNow).expect("no other logger in this test binary");
        log::set_max_level(log::LevelFilter::Debug);
    });
}

/// Regression (issue 12, defect 6): of two threads calling `shutdown_now`
/// at once, the one that did not move the state could return while a
/// running task's `StopToken::current()` still read false (about 1 round in
/// 20,000; every few rounds with a slow logger). Every call returns with
/// the stop raised.
#[test]
fn every_shutdown_now_returns_with_the_stop_raised() {
    slow_logger_at_the_first_shutdown_now();
    for round in 0..2000 {
        let pool = Arc::new(ThreadPool::new(1).unwrap());
        let (token_tx, token_rx) = mpsc::channel();
        pool.execute(move || {
            let token = StopToken::current();
            token_tx.send(token.clone()).unwrap();
            let _ = token.sleep(WAIT);
        })
        .unwrap();
        let token = token_rx.recv_timeout(WAIT).expect("the task started");
        let barrier = Arc::new(Barrier::new(2));
        let other = {
            let (pool, barrier, token) = (pool.clone(), barrier.clone(), token.clone());
            spawn(move || {
                barrier.wait();
                drop(pool.shutdown_now());
                token.is_stop_requested()
            })
        };
        barrier.wait();
        drop(pool.shutdown_now());
        let mine = token.is_stop_requested();
        let theirs = other.join("the other shutdown_now");
        assert!(
            mine && theirs,
            "round {round}: mine {mine}, theirs {theirs}"
        );
        assert!(pool.await_termination(WAIT));
    }
}

// `ShutdownHandle::request_shutdown_now` promises that the program's next
// `shutdown_now` returns what the request took back. The request runs on
// the pool's relay thread, so the two drains may overlap: the program's call
// must then wait for the relay's share and return it too, in order. (Found
// under load by the signals test of a burst of 100 requests: the program's
// call returned a share, the relay kept the rest for a call that never came.)
#[test]
fn the_next_shutdown_now_returns_what_a_racing_request_took_back() {
    const ROUNDS: usize = 300;
    const TASKS: usize = 3_000;
    let mut rng = common::Rng(0x9E37_79B9_7F4A_7C15);
    for round in 0..ROUNDS {
        let queued = Queued::new(TASKS);
        let pool = &queued.pool;
        pool.shutdown_handle().request_shutdown_now();
        // Lands before, during or after the relay's drain.
        common::spin(rng.spins(16));
        let back = {
            let pool = pool.clone();
            spawn(move || pool.shutdown_now()).join("the program's shutdown_now")
        };
        let ids: Vec<TaskId> = back.iter().map(PendingTask::id).collect();
        assert_eq!(ids, queued.order, "round {round}: not every task, in order");
        drop(back);
        queued.finish_cancelled(round);
    }
}
