//! `try_scope`, the errgroup: the first `Err` (of a task or of the closure)
//! cancels the rest and is what it returns; no task starts after it; a
//! failed task's handle says `Failed`; `Ok` values reach handles and the
//! caller; a panic wins over any error.

use std::sync::atomic::{AtomicBool, Ordering};

use drainpool::TaskError;
use drainpool::crossbeam_channel::unbounded;

use crate::common::{Latch, Rng, TestPool, spin};
use crate::{Fates, expect_started, panic_message_of, quiet_pool, until, wait_for_stop, watchdog};

#[test]
fn every_task_ok_gives_each_handle_its_value_and_try_scope_the_closures_value() {
    watchdog("the succeeding try_scope", || {
        let pool = TestPool::new(3);
        let rows = ["1", "2", "3", "4", "5"];
        let mut parsed = [0u32; 5];
        let result: Result<_, std::num::ParseIntError> = pool.try_scope(|s| {
            let handles: Vec<_> = rows
                .iter()
                .zip(parsed.iter_mut())
                .map(|(row, out)| {
                    s.spawn(move || {
                        *out = row.parse::<u32>()?;
                        Ok(*out * 10)
                    })
                })
                .collect();
            let sum: u32 = handles.into_iter().map(|h| h.join().unwrap()).sum();
            assert!(!s.is_cancelled());
            Ok(sum)
        });
        assert_eq!(result, Ok(150));
        assert_eq!(parsed, [1, 2, 3, 4, 5]);
    });
}

#[test]
fn the_first_err_is_returned_and_the_tasks_queued_behind_it_never_start() {
    watchdog("the failing try_scope", || {
        // One worker: the failing task holds it while the others queue.
        let pool = TestPool::new(1);
        let fates = Fates::new(50);
        let go = Latch::default();
        let result = pool.try_scope(|s| {
            let failing = s.spawn(|| {
                assert!(go.wait(), "the latch was opened");
                Err::<(), _>("first")
            });
            let queued: Vec<_> = (0..50)
                .map(|i| {
                    let probe = fates.probe(i);
                    s.spawn(move || Ok(probe.run()))
                })
                .collect();
            go.open();
            let error = failing.join().unwrap_err();
            assert!(error.is_failed() && !error.is_cancelled() && !error.is_panic());
            assert!(matches!(error, TaskError::Failed));
            assert!(s.is_cancelled(), "the error cancelled the scope");
            assert!(s.stop_token().is_stop_requested());
            for (i, handle) in queued.into_iter().enumerate() {
                assert!(handle.join().unwrap_err().is_cancelled(), "task {i}");
            }
            // Spawned once the error is recorded: never starts either.
            let late = s.spawn(|| Ok::<_, &str>(fates.probe(0).run()));
            assert!(late.join().unwrap_err().is_cancelled());
            Ok("the closure's value, which loses to the error")
        });
        assert_eq!(result, Err("first"));
        fates.assert_each_ended_once("after the scope");
        assert_eq!(fates.ran(), 0, "no task started after the error");
    });
}

#[test]
fn later_errors_are_dropped_and_both_failed_handles_say_failed() {
    watchdog("the twice failing try_scope", || {
        let pool = TestPool::new(2);
        let (started_tx, started) = unbounded();
        let result = pool.try_scope(|s| {
            // Fails only once the second task runs.
            let first = s.spawn(|| {
                expect_started(&started, 1);
                Err::<(), _>(String::from("first"))
            });
            // Fails only once the first error has cancelled the scope.
            let second = s.spawn(|| {
                let woken = wait_for_stop(&started_tx);
                Err::<(), _>(format!("second, woken by the first: {woken}"))
            });
            assert!(first.join().unwrap_err().is_failed());
            assert!(second.join().unwrap_err().is_failed());
            Ok(())
        });
        assert_eq!(result, Err(String::from("first")));
    });
}

#[test]
fn an_err_of_the_closure_is_returned_and_cancels_the_scope() {
    watchdog("the try_scope whose closure fails", || {
        let pool = TestPool::new(1);
        let fates = Fates::new(20);
        let (started_tx, started) = unbounded();
        let woke = AtomicBool::new(false);
        let result: Result<(), _> = pool.try_scope(|s| {
            s.spawn(|| {
                woke.store(wait_for_stop(&started_tx), Ordering::SeqCst);
                Ok(())
            });
            for i in 0..20 {
                let probe = fates.probe(i);
                s.spawn(move || Ok(probe.run()));
            }
            expect_started(&started, 1);
            Err("the closure's error")
        });
        assert_eq!(result, Err("the closure's error"));
        assert!(woke.load(Ordering::SeqCst), "the running task was stopped");
        fates.assert_each_ended_once("after the scope");
        assert_eq!(fates.dropped_unrun(), 20, "no queued task ran");
    });
}

#[test]
fn a_tasks_err_recorded_first_wins_over_the_closures_err() {
    watchdog("the try_scope failing twice", || {
        let pool = TestPool::new(2);
        let result: Result<(), _> = pool.try_scope(|s| {
            let failing = s.spawn(|| Err::<(), _>("the task's error"));
            assert!(failing.join().unwrap_err().is_failed());
            Err("the closure's error")
        });
        assert_eq!(result, Err("the task's error"));
    });
}

#[test]
fn cancel_without_an_error_returns_the_closures_ok() {
    watchdog("the cancelled try_scope", || {
        let pool = TestPool::new(2);
        let fates = Fates::new(10);
        let result = pool.try_scope(|s| {
            s.cancel();
            assert!(s.is_cancelled() && s.stop_token().is_stop_requested());
            for i in 0..10 {
                let probe = fates.probe(i);
                let handle = s.spawn(move || Ok::<_, ()>(probe.run()));
                assert!(handle.join().unwrap_err().is_cancelled());
            }
            Ok("cancelled, without an error")
        });
        assert_eq!(result, Ok("cancelled, without an error"));
        assert_eq!(fates.dropped_unrun(), 10);
    });
}

#[test]
fn a_panic_after_an_err_wins_over_it() {
    watchdog("the try_scope that errs, then panics", || {
        let pool = quiet_pool(2);
        let (started_tx, started) = unbounded();
        let message = panic_message_of(|| {
            pool.try_scope(|s| {
                s.spawn(|| {
                    expect_started(&started, 1);
                    Err::<(), _>("the error")
                });
                s.spawn(|| -> Result<(), &str> {
                    // Woken by the error's cancel, then panics.
                    assert!(wait_for_stop(&started_tx), "woken by the error");
                    panic!("deliberate: a panic after the error")
                });
                Ok(())
            })
        });
        assert_eq!(message, "deliberate: a panic after the error");
    });
}

#[test]
fn a_panic_before_an_err_wins_over_it() {
    watchdog("the try_scope that panics, then errs", || {
        let pool = quiet_pool(2);
        let message = panic_message_of(|| {
            pool.try_scope(|s| {
                let panicked = s.spawn(|| -> Result<(), &str> {
                    panic!("deliberate: a panic before the error")
                });
                until("the panicking task ended", || panicked.is_finished());
                drop(panicked); // unjoined: the panic is the caller's
                let erring = s.spawn(|| Err::<(), _>("the error"));
                drop(erring); // refused (the scope is cancelled) or failed
                Err::<(), _>("the closure's error")
            })
        });
        assert_eq!(message, "deliberate: a panic before the error");
    });
}

#[test]
fn an_err_at_a_random_moment_is_returned_and_every_task_ends_exactly_once() {
    const ROUNDS: usize = 300;
    const TASKS: usize = 100;
    watchdog("the failing try_scopes", || {
        let pool = TestPool::new(4);
        let mut rng = Rng(0xe770_9009);
        for round in 0..ROUNDS {
            let fates = Fates::new(TASKS);
            let fails = (rng.next() as usize) % TASKS;
            let result: Result<(), usize> = pool.try_scope(|s| {
                for i in 0..TASKS {
                    let probe = fates.probe(i);
                    let spins = rng.spins(12);
                    s.spawn(move || {
                        let index = probe.run();
                        spin(spins);
                        if index == fails {
                            Err(index)
                        } else {
                            Ok(index)
                        }
                    });
                }
                Ok(())
            });
            assert_eq!(result, Err(fails), "round {round}");
            fates.assert_each_ended_once(&format!("round {round}"));
            assert_eq!(fates.ran() + fates.dropped_unrun(), TASKS, "round {round}");
        }
    });
}
