//! Cancelling a group while producers still submit to it, and while
//! `shutdown_now` races it: every task ends exactly once.

use std::collections::HashSet;
use std::panic;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier, mpsc};

use crate::common::{Gate, Rng, TestPool, WAIT, bounded_join, spawn, spin};
use crate::{Counts, Deliberate, Fates, assert_adds_up, counts, finish, quiescent, quiet_pool};
use drainpool::{RejectReason, TaskError, TaskGroup, TaskHandle};

/// A little work, so that a backlog builds up for a cancel to meet.
fn work() {
    for i in 0..20_000u32 {
        std::hint::black_box(i);
    }
}

// ----- cancel while producers submit --------------------------------------------

const PRODUCERS: usize = 4;
/// At most this many submits per producer and round.
const PER_PRODUCER: usize = 20_000;
/// Submits a producer tries after its first refusal (all must be refused).
const AFTER_REFUSAL: usize = 3;

/// What one producer did in a round.
struct Produced {
    /// Tasks it tried to submit: indices `base..base + attempted`.
    attempted: usize,
    /// The ones refused (and dropped here after `into_inner`).
    refused: Vec<usize>,
    handles: Vec<(usize, TaskHandle<usize>)>,
}

/// Submits to `group` until it is refused (then `AFTER_REFUSAL` more, which
/// must all be refused too), alternating `execute` and `submit`. Starts
/// with the others at `start`, says `ready` after its first 64 submits.
fn produce(
    producer: usize,
    group: TaskGroup,
    fates: Arc<Fates>,
    cancel_returned: Arc<AtomicBool>,
    start: Arc<Barrier>,
    ready: mpsc::Sender<()>,
) -> Produced {
    start.wait();
    let base = producer * PER_PRODUCER;
    let mut out = Produced {
        attempted: 0,
        refused: Vec::new(),
        handles: Vec::new(),
    };
    for k in 0..PER_PRODUCER {
        let index = base + k;
        let probe = fates.probe(index);
        let after_cancel = cancel_returned.load(Ordering::SeqCst);
        // Each refusal hands the closure back: dropping it drops this very
        // task's probe, which proves it is ours, whole.
        let refused = if k % 2 == 0 {
            match group.execute(move || {
                probe.run();
            }) {
                Ok(()) => None,
                Err(rejected) => {
                    let reason = rejected.reason();
                    drop(rejected.into_inner());
                    Some(reason)
                }
            }
        } else {
            match group.submit(move || probe.run()) {
                Ok(handle) => {
                    out.handles.push((index, handle));
                    None
                }
                Err(rejected) => {
                    let reason = rejected.reason();
                    drop(rejected.into_inner());
                    Some(reason)
                }
            }
        };
        out.attempted = k + 1;
        match refused {
            None => {
                assert!(
                    !after_cancel,
                    "task {index} was accepted after cancel() returned"
                );
                assert!(
                    out.refused.is_empty(),
                    "task {index} was accepted after an earlier refusal"
                );
            }
            Some(reason) => {
                assert_eq!(reason, RejectReason::Cancelled);
                assert_eq!(fates.drops(index), 1, "into_inner gave task {index} back");
                assert_eq!(fates.runs(index), 0);
                out.refused.push(index);
                if out.refused.len() > AFTER_REFUSAL {
                    break;
                }
            }
        }
        if k == 64 {
            ready.send(()).unwrap();
        }
    }
    out
}

#[test]
fn cancel_while_producers_still_submit_accounts_for_every_task() {
    const ROUNDS: usize = 20;
    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    let mut rounds_with_refusals = 0;
    let (mut ran_total, mut cancelled_total, mut refused_total) = (0, 0, 0);
    for round in 0..ROUNDS {
        let pool = TestPool::new(3);
        let group = pool.group(format!("producers-{round}"));
        let fates = Fates::new(PRODUCERS * PER_PRODUCER);
        let cancel_returned = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = mpsc::channel();
        let start = Arc::new(Barrier::new(PRODUCERS));
        let producers: Vec<_> = (0..PRODUCERS)
            .map(|p| {
                let (group, fates) = (group.clone(), fates.clone());
                let (flag, ready) = (cancel_returned.clone(), ready_tx.clone());
                let start = start.clone();
                spawn(move || produce(p, group, fates, flag, start, ready))
            })
            .collect();
        for _ in 0..PRODUCERS {
            ready_rx
                .recv_timeout(WAIT)
                .expect("every producer got going");
        }
        spin(rng.spins(14));
        let dropped = group.cancel();
        cancel_returned.store(true, Ordering::SeqCst);
        assert!(group.is_cancelled());
        let produced: Vec<Produced> = producers
            .into_iter()
            .map(|p| p.join("a producer"))
            .collect();

        assert!(group.wait(WAIT), "the cancelled group ends");
        let mut attempted = 0;
        let mut refused = 0;
        for (p, out) in produced.into_iter().enumerate() {
            rounds_with_refusals += usize::from(!out.refused.is_empty());
            attempted += out.attempted;
            refused += out.refused.len();
            for (index, handle) in out.handles {
                match bounded_join(handle) {
                    Ok(value) => {
                        assert_eq!(value, index);
                        assert_eq!(fates.runs(index), 1);
                    }
                    Err(TaskError::Cancelled) => assert_eq!(fates.runs(index), 0),
                    Err(e) => panic!("task {index}: {e:?}"),
                }
            }
            let base = p * PER_PRODUCER;
            for index in base..base + out.attempted {
                assert_eq!(fates.drops(index), 1, "task {index} dropped once");
                assert!(fates.runs(index) <= 1, "task {index} ran twice");
            }
        }
        finish(&pool);
        let ran: usize = (0..PRODUCERS * PER_PRODUCER)
            .map(|i| usize::from(fates.runs(i)))
            .sum();
        // Neither ran nor refused: dropped by the cancel, and counted in
        // what it returned.
        assert_eq!(attempted - refused - ran, dropped, "round {round}");
        let accepted = (attempted - refused) as u64;
        assert_eq!(
            counts(&group),
            quiescent(accepted, ran as u64, dropped as u64, 0),
            "round {round}"
        );
        let stats = pool.stats();
        assert_eq!(stats.completed, ran as u64);
        assert_eq!(stats.cancelled, dropped as u64);
        assert_eq!(stats.rejected, refused as u64);
        assert_eq!((stats.queued, stats.active, stats.panicked), (0, 0, 0));
        assert_eq!(group.cancel(), 0, "a second cancel drops nothing");
        ran_total += ran;
        cancelled_total += dropped;
        refused_total += refused;
    }
    eprintln!(
        "{ROUNDS} rounds: ran {ran_total}, cancelled {cancelled_total}, refused {refused_total}; \
         {rounds_with_refusals} of {} producers were refused",
        ROUNDS * PRODUCERS
    );
    assert!(
        rounds_with_refusals > 0,
        "no producer ever met the cancel: the test did not test it"
    );
}

// ----- cancel vs shutdown_now -------------------------------------------------

#[test]
fn cancel_racing_shutdown_now_ends_each_task_once() {
    const ROUNDS: usize = 400;
    const TASKS: usize = 200;
    let panics = |i: usize| i % 11 == 5;
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    // ran, cancelled by the group, handed back: over all rounds.
    let mut totals = [0usize; 3];
    // Rounds where the cancel took the queued tasks, and where the
    // hand-back did (each takes the whole mailbox at once).
    let (mut cancel_won, mut shutdown_won) = (0, 0);
    for round in 0..ROUNDS {
        let pool = quiet_pool(2);
        let group = pool.group(format!("race-{round}"));
        // The canceller waits at the barrier before the tasks are in; the
        // workers are held until the race starts, so that a backlog meets
        // it, and tasks start while it goes on.
        let barrier = Arc::new(Barrier::new(2));
        let canceller = {
            let (group, barrier) = (group.clone(), barrier.clone());
            let delay = rng.spins(16);
            spawn(move || {
                barrier.wait();
                spin(delay);
                group.cancel()
            })
        };
        let gate = Gate::occupying(&pool, 2);
        let fates = Fates::new(TASKS);
        let mut handles = Vec::new();
        for i in 0..TASKS {
            let probe = fates.probe(i);
            let panicky = panics(i);
            let task = group.task().name(i.to_string());
            if i % 2 == 0 {
                task.execute(move || {
                    probe.run();
                    work();
                    if panicky {
                        panic::panic_any(Deliberate);
                    }
                })
                .unwrap();
            } else {
                let handle = task
                    .submit(move || {
                        probe.run();
                        work();
                        if panicky {
                            panic::panic_any(Deliberate);
                        }
                        i
                    })
                    .unwrap();
                handles.push((i, handle));
            }
        }
        // A few are cancelled through their handles before the race.
        let by_handle: HashSet<usize> = handles
            .iter()
            .filter(|(i, handle)| i % 13 == 1 && handle.cancel())
            .map(|(i, _)| *i)
            .collect();

        barrier.wait();
        gate.release();
        spin(rng.spins(16));
        let pending = pool.shutdown_now();
        let dropped = canceller.join("the cancel");
        assert!(pool.await_termination(WAIT), "round {round}: terminates");

        // Handed back at most once, and still whole (neither run nor
        // dropped) while the program holds it.
        let mut returned = HashSet::new();
        for task in &pending {
            let i: usize = task.name().expect("named").parse().unwrap();
            assert!(returned.insert(i), "round {round}: task {i} returned twice");
            assert_eq!((fates.runs(i), fates.drops(i)), (0, 0), "task {i}");
        }
        let mut ran = 0;
        let mut ran_ok = 0;
        let mut never_started = 0;
        for i in 0..TASKS {
            let outcomes = usize::from(fates.runs(i) == 1)
                + usize::from(fates.dropped_never_started(i))
                + usize::from(returned.contains(&i));
            assert_eq!(outcomes, 1, "round {round}: task {i} has one end state");
            assert!(fates.runs(i) <= 1 && fates.drops(i) <= 1, "task {i}");
            ran += usize::from(fates.runs(i) == 1);
            ran_ok += usize::from(fates.runs(i) == 1 && !panics(i));
            never_started += usize::from(fates.dropped_never_started(i));
        }
        // The handle cancels are not in what the group's cancel returns.
        assert_eq!(never_started, dropped + by_handle.len(), "round {round}");
        let progress = group.progress();
        assert_eq!(
            Counts::from(progress),
            Counts {
                submitted: TASKS as u64,
                completed: ran_ok as u64,
                panicked: (ran - ran_ok) as u64,
                cancelled: never_started as u64,
                returned: pending.len() as u64,
                ..Counts::default()
            },
            "round {round}"
        );
        assert_eq!(group.cancel(), 0, "round {round}: second cancel");
        assert!(pool.shutdown_now().is_empty(), "returned only once");
        totals[0] += ran;
        totals[1] += dropped;
        totals[2] += pending.len();
        cancel_won += usize::from(dropped > 0);
        shutdown_won += usize::from(!pending.is_empty());

        // The program decides: run some of the returned tasks, drop the rest.
        for task in pending {
            let i: usize = task.name().unwrap().parse().unwrap();
            if i % 3 == 0 {
                task.run();
                assert_eq!(fates.runs(i), 1);
            } else {
                drop(task);
                assert!(fates.dropped_never_started(i));
            }
        }
        for (i, handle) in handles {
            let result = bounded_join(handle);
            match (fates.runs(i), panics(i)) {
                (1, false) => assert_eq!(result.unwrap(), i),
                (1, true) => assert!(result.unwrap_err().is_panic()),
                _ => assert!(result.unwrap_err().is_cancelled(), "task {i}"),
            }
        }
        for i in 0..TASKS {
            assert_eq!(fates.drops(i), 1, "round {round}: task {i} dropped once");
        }
        // Every task is accounted for exactly once, in the pool and in the
        // group (which counts the handed-back ones as returned, whatever the
        // program did with them).
        let ran_now: Vec<usize> = (0..TASKS).filter(|&i| fates.runs(i) == 1).collect();
        let panicked = ran_now.iter().filter(|&&i| panics(i)).count() as u64;
        let stats = pool.stats();
        // The two gate tasks completed too.
        assert_eq!(stats.completed, ran_now.len() as u64 - panicked + 2);
        assert_eq!(stats.panicked, panicked);
        assert_eq!(stats.cancelled, (TASKS - ran_now.len()) as u64);
        assert_eq!(
            stats.completed + stats.panicked + stats.cancelled,
            TASKS as u64 + 2
        );
        assert_eq!((stats.queued, stats.active, stats.rejected), (0, 0, 0));
        assert_eq!(group.progress(), progress, "the group's counts are final");
        assert_adds_up(progress);
    }
    eprintln!(
        "{ROUNDS} rounds of {TASKS}: ran {}, cancelled by the group {}, handed back {}; \
         the cancel took the queue in {cancel_won} rounds, shutdown_now in {shutdown_won}",
        totals[0], totals[1], totals[2]
    );
}
