//! The drain: after `shutdown()`, every accepted task still runs, and every
//! task offered after it comes back inside `Rejected`, whole and callable.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering, Ordering::SeqCst};
use std::sync::{Arc, Barrier};
use std::thread;

use common::{
    DropCounter, Gate, LeakOnPanic, RaceTask, WAIT, bounded_join, bump, spawn, take_back,
};
use drainpool::{Job, PoolState, RejectReason, TaskHandle, ThreadPool};

// 1000 tasks queued behind held workers, then shutdown, then release: all ran.
#[test]
fn every_accepted_task_runs_after_shutdown() {
    const TASKS: usize = 1_000;
    let pool = ThreadPool::new(2).unwrap();
    let gate = Gate::occupying(&pool, 2);

    let ran = Arc::new(AtomicUsize::new(0));
    let mut handles = Vec::new();
    for i in 0..TASKS {
        let ran = ran.clone();
        if i % 2 == 0 {
            pool.execute(move || {
                ran.fetch_add(1, Ordering::SeqCst);
            })
            .unwrap();
        } else {
            handles.push(
                pool.submit(move || {
                    ran.fetch_add(1, Ordering::SeqCst);
                    i
                })
                .unwrap(),
            );
        }
    }

    pool.shutdown();
    assert_eq!(pool.state(), PoolState::ShuttingDown);
    assert_eq!(ran.load(Ordering::SeqCst), 0, "the workers are still held");
    assert_eq!(pool.stats().queued, TASKS);

    gate.release();
    assert!(pool.await_termination(WAIT));
    assert_eq!(ran.load(Ordering::SeqCst), TASKS);
    for (k, handle) in handles.into_iter().enumerate() {
        assert_eq!(bounded_join(handle).unwrap(), 2 * k + 1);
    }
    let stats = pool.stats();
    assert_eq!(stats.completed, TASKS as u64 + 2);
    assert_eq!((stats.cancelled, stats.rejected), (0, 0));
}

// The refused closure is not dropped by the pool and is callable from into_inner.
#[test]
fn execute_after_shutdown_hands_the_closure_back() {
    let pool = ThreadPool::new(1).unwrap();
    pool.shutdown();

    let called = Arc::new(AtomicBool::new(false));
    let drops = DropCounter::default();
    let closure = {
        let (called, tracked) = (called.clone(), drops.tracked());
        move || {
            let _tracked = tracked;
            called.store(true, Ordering::SeqCst);
        }
    };
    let rejected = pool.execute(closure).unwrap_err();
    assert_eq!(rejected.reason(), RejectReason::Shutdown);
    assert_eq!(drops.count(), 0, "the pool dropped our closure");
    assert!(!called.load(Ordering::SeqCst));
    rejected.into_inner()();
    assert!(called.load(Ordering::SeqCst));
    assert_eq!(drops.count(), 1);

    assert!(pool.await_termination(WAIT));
    assert_eq!(pool.stats().rejected, 1);
    assert_eq!(pool.stats().completed, 0);
}

// submit/try_*/named forms, before and after termination: Shutdown, closure back.
#[test]
fn every_intake_form_is_refused_after_shutdown() {
    let pool = ThreadPool::new(1).unwrap();
    pool.shutdown();

    let rejected = pool.submit(|| 40 + 2).unwrap_err();
    assert_eq!(rejected.reason(), RejectReason::Shutdown);
    assert_eq!(rejected.into_inner()(), 42);

    let rejected = pool.try_submit(|| "try").unwrap_err();
    assert_eq!(rejected.reason(), RejectReason::Shutdown);
    assert_eq!(rejected.into_inner()(), "try");

    let hit = Arc::new(AtomicUsize::new(0));
    let rejected = pool.try_execute(bump(&hit)).unwrap_err();
    assert_eq!(rejected.reason(), RejectReason::Shutdown);
    rejected.into_inner()();
    let rejected = pool.task().name("named").execute(bump(&hit)).unwrap_err();
    assert_eq!(rejected.reason(), RejectReason::Shutdown);
    rejected.into_inner()();
    let rejected = pool
        .task()
        .name("named")
        .try_execute(bump(&hit))
        .unwrap_err();
    assert_eq!(rejected.reason(), RejectReason::Shutdown);
    rejected.into_inner()();
    assert_eq!(hit.load(Ordering::SeqCst), 3);

    let rejected = pool.task().name("named").submit(|| 7).unwrap_err();
    assert_eq!(rejected.reason(), RejectReason::Shutdown);
    assert_eq!(rejected.into_inner()(), 7);
    let rejected = pool.task().name("named").try_submit(|| 8).unwrap_err();
    assert_eq!(rejected.reason(), RejectReason::Shutdown);
    assert_eq!(rejected.into_inner()(), 8);

    // Still refused once terminated.
    assert!(pool.await_termination(WAIT));
    let rejected = pool.submit(|| 9).unwrap_err();
    assert_eq!(rejected.reason(), RejectReason::Shutdown);
    assert_eq!(rejected.into_inner()(), 9);

    let stats = pool.stats();
    assert_eq!(stats.rejected, 8);
    assert_eq!(stats.completed, 0);
}

// A running task that submits during the drain gets Rejected(Shutdown) and its closures back.
#[test]
fn tasks_submitted_from_a_task_during_shutdown_are_handed_back() {
    let pool = Arc::new(ThreadPool::new(2).unwrap());
    let gate = Gate::new();
    let inner_ran = Arc::new(AtomicUsize::new(0));
    let handle = {
        let (pool, inner_ran) = (pool.clone(), inner_ran.clone());
        pool.clone()
            .submit(gate.hold(move || {
                let bump = {
                    let inner_ran = inner_ran.clone();
                    move || {
                        inner_ran.fetch_add(1, Ordering::SeqCst);
                    }
                };
                let executed = pool.execute(bump).unwrap_err();
                let submitted = pool.submit(|| 5).unwrap_err();
                let reasons = (executed.reason(), submitted.reason());
                // The closures came back whole: run them here.
                executed.into_inner()();
                (reasons, submitted.into_inner()())
            }))
            .unwrap()
    };
    gate.wait_entered(1);
    pool.shutdown();
    gate.release();

    assert!(handle.wait_timeout(WAIT));
    let (reasons, value) = bounded_join(handle).unwrap();
    assert_eq!(reasons, (RejectReason::Shutdown, RejectReason::Shutdown));
    assert_eq!(value, 5);
    assert_eq!(inner_ran.load(Ordering::SeqCst), 1);
    assert!(pool.await_termination(WAIT));
    let stats = pool.stats();
    assert_eq!((stats.completed, stats.rejected), (1, 2));
}

/// A job value, for `submit_job`.
struct Count {
    ran: Arc<AtomicUsize>,
    _tracked: common::Tracked,
}

impl Job for Count {
    type Output = ();
    fn run(self) {
        self.ran.fetch_add(1, SeqCst);
    }
}

/// From a task, while the pool shuts down: every intake form is refused
/// with `Shutdown` and hands its closure back whole. The task runs half of
/// them and drops the rest; each ran or was dropped exactly once.
#[test]
fn every_intake_form_from_a_task_during_shutdown_is_refused_and_handed_back() {
    let pool = Arc::new(ThreadPool::new(2).unwrap());
    let _leak = LeakOnPanic(pool.clone());
    let group = pool.group("late");
    let drops = DropCounter::default();
    let ran = Arc::new(AtomicUsize::new(0));
    let gate = Gate::new();
    let inside = pool
        .submit(gate.hold({
            let (pool, drops, ran) = (pool.clone(), drops.clone(), ran.clone());
            move || {
                // A closure that counts its run and its drop.
                let task = || {
                    let (ran, tracked) = (ran.clone(), drops.tracked());
                    move || {
                        let _tracked = tracked;
                        ran.fetch_add(1, SeqCst);
                    }
                };
                let job = || Count {
                    ran: ran.clone(),
                    _tracked: drops.tracked(),
                };
                let mut reasons = Vec::new();
                let mut keep = |reason: RejectReason, run: Box<dyn FnOnce()>, n: usize| {
                    reasons.push(reason);
                    // Run every other one; drop the rest.
                    if n % 2 == 0 {
                        run();
                    }
                };
                let r = pool.execute(task()).unwrap_err();
                keep(r.reason(), Box::new(r.into_inner()), 0);
                let r = pool.try_execute(task()).unwrap_err();
                keep(r.reason(), Box::new(r.into_inner()), 1);
                let r = pool.submit(task()).unwrap_err();
                keep(r.reason(), Box::new(r.into_inner()), 2);
                let r = pool.try_submit(task()).unwrap_err();
                keep(r.reason(), Box::new(r.into_inner()), 3);
                let r = pool.task().name("named").execute(task()).unwrap_err();
                keep(r.reason(), Box::new(r.into_inner()), 4);
                let r = pool.task().name("named").submit(task()).unwrap_err();
                keep(r.reason(), Box::new(r.into_inner()), 5);
                let r = pool.submit_job(job()).unwrap_err();
                let (reason, back) = (r.reason(), r.into_inner());
                keep(reason, Box::new(move || back.run()), 6);
                let r = group.execute(task()).unwrap_err();
                keep(r.reason(), Box::new(r.into_inner()), 7);
                let r = group.submit(task()).unwrap_err();
                keep(r.reason(), Box::new(r.into_inner()), 8);
                let r = group.submit_job(job()).unwrap_err();
                let (reason, back) = (r.reason(), r.into_inner());
                keep(reason, Box::new(move || back.run()), 9);
                let r = pool.execute_batch([task(), task()]).unwrap_err();
                let (reason, back) = (r.reason(), r.into_inner());
                assert_eq!(back.len(), 2, "a refused batch comes back whole");
                keep(
                    reason,
                    Box::new(move || back.into_iter().for_each(|f| f())),
                    10,
                );
                let r = pool.submit_batch([task(), task()]).unwrap_err();
                let (reason, back) = (r.reason(), r.into_inner());
                assert_eq!(back.len(), 2, "a refused batch comes back whole");
                keep(
                    reason,
                    Box::new(move || back.into_iter().for_each(|f| f())),
                    11,
                );
                reasons
            }
        }))
        .unwrap();
    gate.wait_entered(1);
    pool.shutdown();
    gate.release();
    let reasons = bounded_join(inside).unwrap();
    assert_eq!(reasons.len(), 12);
    assert!(
        reasons.iter().all(|r| *r == RejectReason::Shutdown),
        "{reasons:?}"
    );
    assert!(pool.await_termination(WAIT));
    // Run: forms 0, 2, 4, 6, 8 (one each) and 10 (a batch of two).
    assert_eq!(ran.load(SeqCst), 7, "each handed-back closure ran once");
    assert_eq!(drops.count(), 14, "every closure was dropped exactly once");
    let stats = pool.stats();
    assert_eq!((stats.rejected, stats.completed), (14, 1));
}

/// What one producer of the race saw; `runs[i]` is the run count of its
/// `i`-th attempt.
#[derive(Default)]
struct Report {
    runs: Vec<Arc<AtomicU8>>,
    ok: usize,
    rejected: Vec<usize>,
    handles: Vec<(usize, TaskHandle<usize>)>,
}

// Producers submit until refused while shutdown() lands mid-stream: each closure runs once or
// comes back, none leaks.
#[test]
fn racing_shutdown_runs_or_hands_back_every_task() {
    const ROUNDS: usize = 200;
    const PRODUCERS: usize = 4;
    /// Refusals a producer collects before it stops: it keeps submitting
    /// until then, so every round straddles the shutdown.
    const REFUSALS: usize = 4;
    /// A shutdown that never lands fails the test instead of eating memory.
    const CAP: usize = 1_000_000;

    for round in 0..ROUNDS {
        let pool = Arc::new(ThreadPool::new(2).unwrap());
        let _leak = LeakOnPanic(pool.clone());
        let drops = DropCounter::default();
        let attempted = Arc::new(AtomicUsize::new(0));
        let start = Arc::new(Barrier::new(PRODUCERS + 1));

        let producers: Vec<_> = (0..PRODUCERS)
            .map(|_| {
                let (pool, drops) = (pool.clone(), drops.clone());
                let (attempted, start) = (attempted.clone(), start.clone());
                spawn(move || {
                    let mut report = Report::default();
                    start.wait();
                    while report.rejected.len() < REFUSALS {
                        let index = report.runs.len();
                        assert!(index < CAP, "shutdown never refused a task");
                        let runs = Arc::new(AtomicU8::new(0));
                        report.runs.push(runs.clone());
                        let task = RaceTask::new(runs, index, &drops);
                        attempted.fetch_add(1, Ordering::SeqCst);
                        let outcome = if index % 2 == 0 {
                            pool.execute(move || {
                                task.run();
                            })
                            .map_err(take_back)
                        } else {
                            pool.submit(move || task.run())
                                .map(|handle| report.handles.push((index, handle)))
                                .map_err(take_back)
                        };
                        // Two cores are common in CI: give the stopper
                        // thread a chance to run mid-stream.
                        thread::yield_now();
                        match outcome {
                            Ok(()) => report.ok += 1,
                            Err(reason) => {
                                assert_eq!(reason, RejectReason::Shutdown);
                                report.rejected.push(index);
                            }
                        }
                    }
                    report
                })
            })
            .collect();

        // Shut down while the producers are busy, after a number of
        // attempts that moves from round to round.
        start.wait();
        let threshold = (round * 37) % 1_000;
        while attempted.load(Ordering::SeqCst) < threshold {
            thread::yield_now();
        }
        pool.shutdown();

        let reports: Vec<Report> = producers
            .into_iter()
            .map(|p| p.join("a producer"))
            .collect();
        assert!(
            pool.await_termination(WAIT),
            "round {round}: no termination"
        );

        let (mut attempts, mut ok, mut rejected) = (0, 0, 0);
        for (p, report) in reports.into_iter().enumerate() {
            for (index, handle) in report.handles {
                assert!(handle.wait_timeout(WAIT), "round {round}: a handle hangs");
                assert_eq!(handle.join().unwrap(), index);
            }
            let mut was_rejected = vec![false; report.runs.len()];
            for &index in &report.rejected {
                was_rejected[index] = true;
            }
            for (index, runs) in report.runs.iter().enumerate() {
                let ran = runs.load(Ordering::SeqCst);
                // Exactly one fate each: ran once, or handed back (never started).
                assert!(
                    matches!((ran, was_rejected[index]), (1, false) | (0, true)),
                    "round {round}: producer {p}'s task {index} ran {ran} time(s), \
                     rejected: {}",
                    was_rejected[index]
                );
            }
            let ran = report
                .runs
                .iter()
                .filter(|r| r.load(Ordering::SeqCst) == 1)
                .count();
            assert_eq!(ran, report.ok, "round {round}: producer {p}");
            attempts += report.runs.len();
            ok += report.ok;
            rejected += report.rejected.len();
        }
        assert_eq!(ok + rejected, attempts, "round {round}");
        assert_eq!(
            drops.count(),
            attempts,
            "round {round}: leak or double drop"
        );

        let stats = pool.stats();
        assert_eq!(stats.completed, ok as u64, "round {round}: {stats:?}");
        assert_eq!(stats.rejected, rejected as u64, "round {round}: {stats:?}");
        assert_eq!(
            (
                stats.cancelled,
                stats.panicked,
                stats.queued,
                stats.active,
                stats.threads
            ),
            (0, 0, 0, 0, 0),
            "round {round}: {stats:?}"
        );
    }
}
