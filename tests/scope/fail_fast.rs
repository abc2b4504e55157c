//! Fail fast: a panic in a scoped task cancels the rest of its scope (the
//! queued tasks never start, their closures are dropped and their handles
//! resolve `Cancelled`; the running ones see their stop token fire), and
//! once all have ended the panic resumes on the scope's caller.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use drainpool::crossbeam_channel::unbounded;
use drainpool::{StopToken, crossbeam_channel};

use crate::common::{AT_ONCE, Gate, Latch, Rng, WAIT, bounded_join, spin};
use crate::{
    Fates, expect_started, finish, panic_message_of, quiet_pool, shared, until, wait_for_stop,
    watchdog,
};

#[test]
fn a_panic_in_one_of_1000_tasks_cancels_the_queued_rest_and_resumes_on_the_caller() {
    /// The tasks besides the one that panics.
    const OTHERS: usize = 999;
    /// The task that blocks in `recv` until the scope is cancelled.
    const IN_RECV: usize = 5;
    /// The task that lets the panic happen, then sleeps until cancelled.
    const IN_SLEEP: usize = 9;

    watchdog("the failing scope", || {
        // Three workers: one for the task that panics, two for the others,
        // until IN_RECV and IN_SLEEP hold both; the rest stays queued.
        let pool = quiet_pool(3);
        let fates = Fates::new(OTHERS);
        let go = Latch::default();
        let (in_recv_tx, in_recv) = unbounded();
        let (_never_tx, never) = crossbeam_channel::unbounded::<()>();
        let (woke_in_recv, woke_in_sleep) = (AtomicBool::new(false), AtomicBool::new(false));
        let (mut joined_ok, mut joined_cancelled) = (0, 0);

        let message = panic_message_of(|| {
            pool.scope(|s| {
                // Its handle is dropped unjoined: the panic is the caller's.
                s.spawn(|| {
                    assert!(go.wait(), "the latch was opened");
                    panic!("deliberate: task 0 failed");
                });
                let handles: Vec<_> = (0..OTHERS)
                    .map(|i| {
                        let probe = fates.probe(i);
                        let (go, in_recv_tx, in_recv, never) = (&go, &in_recv_tx, &in_recv, &never);
                        let (woke_in_recv, woke_in_sleep) = (&woke_in_recv, &woke_in_sleep);
                        s.spawn(move || {
                            let index = probe.run();
                            if index == IN_RECV {
                                in_recv_tx.send(()).unwrap();
                                let woke = StopToken::current().recv(never).is_err();
                                woke_in_recv.store(woke, Ordering::SeqCst);
                            }
                            if index == IN_SLEEP {
                                expect_started(in_recv, 1);
                                go.open();
                                let woke = StopToken::current().sleep(Duration::MAX).is_err();
                                woke_in_sleep.store(woke, Ordering::SeqCst);
                            }
                            index
                        })
                    })
                    .collect();
                // A join runs queued tasks of the scope (its caller helps):
                // none until the panic has cancelled the scope, so the
                // tasks queued then stay unrun.
                until("the panic cancels the scope", || s.is_cancelled());
                for (i, handle) in handles.into_iter().enumerate() {
                    match handle.join() {
                        Ok(index) => {
                            assert_eq!(index, i);
                            assert_eq!(fates.runs(i), 1, "task {i}'s handle has a value");
                            joined_ok += 1;
                        }
                        Err(error) => {
                            assert!(error.is_cancelled(), "task {i}: {error:?}");
                            assert_eq!(fates.runs(i), 0, "task {i} resolved Cancelled");
                            joined_cancelled += 1;
                        }
                    }
                }
                assert!(s.is_cancelled(), "the panic cancelled the scope");
                assert!(s.stop_token().is_stop_requested());
            })
        });

        assert_eq!(message, "deliberate: task 0 failed");
        fates.assert_each_ended_once("after the scope");
        let (ran, unrun) = (fates.ran(), fates.dropped_unrun());
        assert_eq!(ran + unrun, OTHERS, "ran {ran}, dropped unrun {unrun}");
        assert!(unrun > 0, "the panic cancelled queued tasks (ran {ran})");
        assert!(ran > IN_SLEEP, "ran {ran}: the blocked tasks started first");
        assert_eq!((joined_ok, joined_cancelled), (ran, unrun));
        assert!(woke_in_recv.load(Ordering::SeqCst), "recv was interrupted");
        assert!(
            woke_in_sleep.load(Ordering::SeqCst),
            "sleep was interrupted"
        );
    });
}

#[test]
fn a_panic_at_a_random_moment_leaves_every_task_ended_exactly_once() {
    const ROUNDS: usize = 300;
    const TASKS: usize = 200;
    watchdog("the failing scopes", || {
        let pool = quiet_pool(4);
        let mut rng = Rng(0xfa11_fa57);
        let mut cancelled_some = 0;
        for round in 0..ROUNDS {
            let fates = Fates::new(TASKS);
            let fails = (rng.next() as usize) % TASKS;
            let message = panic_message_of(|| {
                pool.scope(|s| {
                    for i in 0..TASKS {
                        let probe = fates.probe(i);
                        let spins = rng.spins(12);
                        s.spawn(move || {
                            let index = probe.run();
                            spin(spins);
                            if index == fails {
                                panic!("deliberate: task {index} failed");
                            }
                        });
                    }
                })
            });
            assert_eq!(
                message,
                format!("deliberate: task {fails} failed"),
                "round {round}"
            );
            fates.assert_each_ended_once(&format!("round {round}"));
            assert_eq!(fates.runs(fails), 1, "round {round}");
            assert_eq!(fates.ran() + fates.dropped_unrun(), TASKS, "round {round}");
            cancelled_some += usize::from(fates.dropped_unrun() > 0);
        }
        // Not a property of one round (the panic may come last), but of many.
        assert!(cancelled_some > 0, "no panic ever cancelled a queued task");
    });
}

#[test]
fn running_siblings_of_a_panicking_task_see_their_stop_token_fire() {
    watchdog("the failing scope", || {
        let pool = quiet_pool(3);
        let (started_tx, started) = unbounded();
        let woke = AtomicUsize::new(0);
        let message = panic_message_of(|| {
            pool.scope(|s| {
                let stop = s.stop_token();
                for _ in 0..2 {
                    s.spawn(|| {
                        if wait_for_stop(&started_tx) {
                            woke.fetch_add(1, Ordering::SeqCst);
                        }
                    });
                }
                s.spawn(|| {
                    expect_started(&started, 2);
                    panic!("deliberate: the sibling failed");
                });
                // The caller's own wait, on the scope's token, wakes too.
                assert!(stop.sleep(WAIT).is_err(), "the scope's token fired");
            })
        });
        assert_eq!(message, "deliberate: the sibling failed");
        assert_eq!(woke.load(Ordering::SeqCst), 2, "both siblings were woken");
    });
}

#[test]
fn a_panic_of_the_scope_closure_cancels_its_queued_tasks_and_stops_the_running_ones() {
    watchdog("the failing scope", || {
        let pool = quiet_pool(1);
        let fates = Fates::new(20);
        let (started_tx, started) = unbounded();
        let woke = AtomicBool::new(false);
        let message = panic_message_of(|| {
            pool.scope(|s| {
                s.spawn(|| woke.store(wait_for_stop(&started_tx), Ordering::SeqCst));
                for i in 0..20 {
                    let probe = fates.probe(i);
                    s.spawn(move || probe.run());
                }
                expect_started(&started, 1);
                panic!("deliberate: the closure failed");
            })
        });
        assert_eq!(message, "deliberate: the closure failed");
        assert!(woke.load(Ordering::SeqCst), "the running task was stopped");
        fates.assert_each_ended_once("after the scope");
        assert_eq!(fates.dropped_unrun(), 20, "no queued task ran");
    });
}

#[test]
fn a_panic_of_the_scope_closure_resumes_rather_than_an_earlier_unjoined_task_panic() {
    watchdog("the failing scope", || {
        let pool = quiet_pool(2);
        let message = panic_message_of(|| {
            pool.scope(|s| {
                let failed = s.spawn(|| panic!("deliberate: a task failed first"));
                until("the failing task ended", || failed.is_finished());
                drop(failed); // unjoined: its panic would be the caller's
                panic!("deliberate: the closure failed second");
            })
        });
        assert_eq!(message, "deliberate: the closure failed second");
    });
}

#[test]
fn a_panic_in_a_scope_opened_on_a_worker_cancels_the_rest_and_resumes_in_the_opening_task() {
    const OTHERS: usize = 100;
    watchdog("the failing scope on the only worker", || {
        let (pool, _keep) = shared(
            drainpool::ThreadPool::builder()
                .threads(1)
                .panic_handler(|_| {})
                .build()
                .unwrap(),
        );
        crate::quiet_deliberate_panics();
        let fates = std::sync::Arc::new(Fates::new(OTHERS));
        let opener = pool
            .submit({
                let (pool, fates) = (pool.clone(), fates.clone());
                move || {
                    pool.scope(|s| {
                        s.spawn(|| panic!("deliberate: failed on the worker"));
                        for i in 0..OTHERS {
                            let probe = fates.probe(i);
                            s.spawn(move || probe.run());
                        }
                        // The only worker runs them, in order, from here.
                    });
                    unreachable!("the scope resumed the panic");
                }
            })
            .unwrap();
        let error = bounded_join(opener).unwrap_err();
        assert_eq!(
            error.panic_message(),
            Some("deliberate: failed on the worker")
        );
        fates.assert_each_ended_once("after the scope");
        assert_eq!(
            fates.ran(),
            0,
            "the panic came first and cancelled them all"
        );
        assert_eq!(fates.dropped_unrun(), OTHERS);
        finish(&pool);
    });
}

#[test]
fn a_panicking_scope_closure_returns_without_waiting_for_busy_workers_to_reach_its_tasks() {
    // Fail fast: the queued tasks never start, and the panic resumes once
    // the *running* ones have ended -- none here: unrelated work holds
    // every worker, and the scope must not wait for it.
    watchdog("the failing scope on a busy pool", || {
        let pool = quiet_pool(2);
        let gate = Gate::occupying(&pool, 2);
        let fates = Fates::new(10);
        let start = Instant::now();
        let message = panic_message_of(|| {
            pool.scope(|s| {
                for i in 0..10 {
                    let probe = fates.probe(i);
                    s.spawn(move || probe.run());
                }
                panic!("deliberate: the closure failed on a busy pool");
            })
        });
        // Measured before the release: a gate task lets go by itself only
        // after WAIT, far beyond AT_ONCE.
        let took = start.elapsed();
        gate.release();
        assert_eq!(message, "deliberate: the closure failed on a busy pool");
        assert!(
            took < AT_ONCE,
            "the failed scope took {took:?} to return: it waited for the busy workers"
        );
        fates.assert_each_ended_once("after the scope");
        assert_eq!(fates.ran(), 0);
    });
}
