//! Cancelling a scope on demand (`Scope::cancel`), watching it
//! (`Scope::is_cancelled`, `Scope::stop_token`): the queued tasks are
//! dropped at once and resolve `Cancelled`, the running ones see their
//! stop token fire, later spawns never run, and the scope still returns its
//! closure's value.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Instant;

use drainpool::Interrupted;
use drainpool::crossbeam_channel::unbounded;

use crate::common::{AT_ONCE, DropCounter, Gate, TestPool, WAIT};
use crate::{Fates, expect_started, wait_for_stop, watchdog};

#[test]
fn cancel_drops_the_queued_tasks_at_once_and_stops_the_running_one() {
    watchdog("the cancelled scope", || {
        let pool = TestPool::new(1);
        let fates = Fates::new(10);
        let (started_tx, started) = unbounded();
        let value = pool.scope(|s| {
            let stop = s.stop_token();
            let fired = Arc::new(AtomicBool::new(false));
            let _callback = stop.on_stop({
                let fired = fired.clone();
                move || fired.store(true, Ordering::SeqCst)
            });
            let running = s.spawn(|| wait_for_stop(&started_tx));
            expect_started(&started, 1);
            let queued: Vec<_> = (0..10)
                .map(|i| {
                    let probe = fates.probe(i);
                    s.spawn(move || probe.run())
                })
                .collect();
            assert!(!s.is_cancelled() && !stop.is_stop_requested());

            s.cancel();

            assert!(s.is_cancelled(), "is_cancelled after cancel");
            assert!(stop.is_stop_requested(), "the scope's token fired");
            assert!(fired.load(Ordering::SeqCst), "its callback ran");
            // `Scope::cancel` (and `TaskGroup::cancel`): the queued
            // closures go, and their handles resolve, at once.
            assert_eq!(
                fates.dropped_unrun(),
                10,
                "the queued closures went at once"
            );
            for (i, handle) in queued.into_iter().enumerate() {
                assert!(handle.is_finished(), "task {i} resolved at once");
                assert!(handle.join().unwrap_err().is_cancelled(), "task {i}");
            }
            assert!(running.join().unwrap(), "the running task was woken");
            s.cancel(); // again: nothing more to do
            assert!(s.is_cancelled());
            "the closure's value"
        });
        assert_eq!(value, "the closure's value");
        fates.assert_each_ended_once("after the scope");
        assert_eq!(fates.ran(), 0);
    });
}

#[test]
fn a_cancelled_scope_returns_without_waiting_for_busy_workers_to_reach_its_queued_tasks() {
    // `Scope::cancel`: "The scope still waits for the running ones to
    // end" -- for them only: not for the pool to get round to the queued
    // ones, which may be behind long work that is none of the scope's.
    watchdog("the cancelled scope on a busy pool", || {
        let pool = TestPool::new(2);
        let gate = Gate::occupying(&pool, 2); // unrelated work holds both workers
        let fates = Fates::new(10);
        let took = pool.scope(|s| {
            for i in 0..10 {
                let probe = fates.probe(i);
                s.spawn(move || probe.run());
            }
            s.cancel();
            Instant::now()
        });
        // Measured before the release: a gate task lets go by itself only
        // after WAIT, far beyond AT_ONCE.
        let took = took.elapsed();
        gate.release();
        assert!(
            took < AT_ONCE,
            "the cancelled scope took {took:?} to return: it waited for the busy workers"
        );
        fates.assert_each_ended_once("after the scope");
        assert_eq!(fates.ran(), 0);
    });
}

#[test]
fn a_spawn_after_cancel_never_runs_its_closure_is_dropped_and_its_handle_is_cancelled() {
    watchdog("the cancelled scope", || {
        let pool = TestPool::new(2);
        let drops = DropCounter::default();
        let ran = AtomicUsize::new(0);
        pool.scope(|s| {
            s.cancel();
            for i in 0..100 {
                let tracked = drops.tracked();
                let handle = s.spawn(|| {
                    let _tracked = tracked;
                    ran.fetch_add(1, Ordering::SeqCst);
                });
                assert_eq!(
                    drops.count(),
                    i + 1,
                    "the refused closure was dropped at once"
                );
                assert!(handle.is_finished());
                assert_eq!(handle.id(), None, "a refused spawn has no task id");
                assert!(handle.join().unwrap_err().is_cancelled());
            }
        });
        assert_eq!(ran.load(Ordering::SeqCst), 0);
        assert_eq!(drops.count(), 100);
    });
}

#[test]
fn cancel_from_a_task_wakes_the_callers_wait_on_the_scopes_token() {
    watchdog("the scope cancelled by its task", || {
        let pool = TestPool::new(2);
        let fates = Fates::new(50);
        let stopped = pool.scope(|s| {
            let stop = s.stop_token();
            s.spawn(|| s.cancel());
            // The caller works for the scope until it is cancelled.
            let stopped = stop.sleep(WAIT);
            for i in 0..50 {
                let probe = fates.probe(i);
                s.spawn(move || probe.run());
            }
            stopped
        });
        assert_eq!(stopped, Err(Interrupted), "the cancel woke the caller");
        fates.assert_each_ended_once("after the scope");
        assert_eq!(
            fates.dropped_unrun(),
            50,
            "spawns after the cancel never ran"
        );
    });
}

#[test]
fn a_new_scope_is_not_cancelled_and_its_tokens_do_not_fire_on_their_own() {
    watchdog("the plain scope", || {
        let pool = TestPool::new(2);
        let (fired_outside, fired_inside) = pool.scope(|s| {
            let inside = s.spawn(|| drainpool::StopToken::current().is_stop_requested());
            let inside = inside.join().unwrap();
            (
                s.is_cancelled() || s.stop_token().is_stop_requested(),
                inside,
            )
        });
        assert!(!fired_outside && !fired_inside);
    });
}
