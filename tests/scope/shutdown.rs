//! Scopes meet the pool's shutdown as `ThreadPool::scope` documents in
//! "Shutdown": `shutdown_now` cancels every scope (it cannot hand back a
//! task that borrows) and the scope still returns, promptly, leaking
//! nothing; after `shutdown`, a scope opened outside the pool spawns
//! nothing more, while one opened by a task the drain runs goes on.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Instant;

use drainpool::crossbeam_channel::unbounded;
use drainpool::{TaskId, ThreadPool};

use crate::common::{AT_ONCE, DropCounter, Gate, Latch, Rng, TestPool, WAIT, bounded_join, spin};
use crate::{
    Fates, books, expect_started, finish, shared, spin_until, wait_for_stop, watchdog,
    watchdog_within,
};

#[test]
fn shutdown_now_during_an_outside_scope_ends_it_promptly_and_hands_none_of_it_back() {
    const QUEUED: usize = 100;
    const PLAIN: usize = 5;
    watchdog("the scope meeting shutdown_now", || {
        let pool = TestPool::new(2);
        let drops = DropCounter::default();
        let (runs, woke) = (AtomicUsize::new(0), AtomicUsize::new(0));
        let (started_tx, started) = unbounded();
        let mut created = 0;
        let stopped_at = pool.scope(|s| {
            let running: Vec<_> = (0..2)
                .map(|_| {
                    let tracked = drops.tracked();
                    created += 1;
                    let (started_tx, woke) = (&started_tx, &woke);
                    s.spawn(move || {
                        let _tracked = tracked;
                        if wait_for_stop(started_tx) {
                            woke.fetch_add(1, Ordering::SeqCst);
                        }
                    })
                })
                .collect();
            expect_started(&started, 2);
            let queued: Vec<_> = (0..QUEUED)
                .map(|_| {
                    let tracked = drops.tracked();
                    created += 1;
                    let runs = &runs;
                    s.spawn(move || {
                        let _tracked = tracked;
                        runs.fetch_add(1, Ordering::SeqCst);
                    })
                })
                .collect();
            // Plain tasks queue in the pool beside the scope's.
            let plain: Vec<_> = (0..PLAIN)
                .map(|i| pool.submit(move || i).unwrap())
                .collect();
            let scoped: HashSet<TaskId> = running
                .iter()
                .chain(&queued)
                .map(|h| h.id().expect("accepted"))
                .collect();

            let stopped_at = Instant::now();
            let back = pool.shutdown_now();

            let back_ids: Vec<TaskId> = back.iter().map(|task| task.id()).collect();
            assert!(
                back_ids.iter().all(|id| !scoped.contains(id)),
                "shutdown_now handed back a scoped task: {back_ids:?}"
            );
            let plain_ids: Vec<TaskId> = plain.iter().map(|h| h.id()).collect();
            assert_eq!(back_ids, plain_ids, "the plain tasks come back, in order");
            drop(back);
            for handle in plain {
                assert!(bounded_join(handle).unwrap_err().is_cancelled());
            }
            for (i, handle) in queued.into_iter().enumerate() {
                assert!(handle.join().unwrap_err().is_cancelled(), "queued task {i}");
            }
            for handle in running {
                handle.join().expect("the running task ended by itself");
            }
            stopped_at
        });
        let took = stopped_at.elapsed();
        assert!(
            took < AT_ONCE,
            "the scope took {took:?} to end after shutdown_now"
        );
        assert_eq!(
            drops.count(),
            created,
            "every closure was dropped: none leaked"
        );
        assert_eq!(runs.load(Ordering::SeqCst), 0, "no queued scoped task ran");
        assert_eq!(
            woke.load(Ordering::SeqCst),
            2,
            "the running ones were stopped"
        );
        assert!(pool.await_termination(WAIT));
    });
}

#[test]
fn shutdown_now_through_a_shutdown_handle_stashes_none_of_an_outside_scopes_tasks() {
    const QUEUED: usize = 50;
    const PLAIN: usize = 5;
    watchdog("the scope meeting a requested shutdown_now", || {
        let pool = TestPool::new(1);
        let queued = Fates::new(QUEUED);
        let (started_tx, started) = unbounded();
        pool.scope(|s| {
            let running = s.spawn(|| wait_for_stop(&started_tx));
            expect_started(&started, 1);
            let handles: Vec<_> = (0..QUEUED)
                .map(|i| {
                    let probe = queued.probe(i);
                    s.spawn(move || probe.run())
                })
                .collect();
            let plain: Vec<_> = (0..PLAIN)
                .map(|i| pool.submit(move || i).unwrap())
                .collect();
            let scoped: HashSet<TaskId> =
                handles.iter().map(|h| h.id().expect("accepted")).collect();

            // Taken back into the pool's stash (its stop is raised after
            // that), for the next `shutdown_now` to return.
            pool.shutdown_handle().request_shutdown_now();
            assert!(running.join().unwrap(), "the running task was stopped");
            let stashed: Vec<TaskId> = pool.shutdown_now().iter().map(|t| t.id()).collect();

            assert!(
                stashed.iter().all(|id| !scoped.contains(id)),
                "a scoped task (it borrows from here) was stashed: {} of {}",
                stashed.iter().filter(|id| scoped.contains(id)).count(),
                stashed.len()
            );
            let plain_ids: Vec<TaskId> = plain.iter().map(|h| h.id()).collect();
            assert_eq!(stashed, plain_ids, "the plain tasks come back, in order");
            for (i, handle) in handles.into_iter().enumerate() {
                assert!(handle.join().unwrap_err().is_cancelled(), "queued task {i}");
            }
        });
        queued.assert_each_ended_once("after the scope");
        assert_eq!(queued.ran(), 0, "no queued scoped task ran");
        assert!(pool.await_termination(WAIT));
    });
}

#[test]
fn shutdown_now_racing_an_outside_scopes_spawns_leaves_every_task_ended_once() {
    const ROUNDS: usize = 200;
    const TASKS: usize = 200;
    watchdog("the scopes racing shutdown_now", || {
        let mut rng = Rng(0x5707_0000_0001);
        // Rounds where the stop landed among the spawns (some refused), and
        // where it found tasks both run and queued: the race was hit.
        let (mut refused_some, mut mixed) = (0, 0);
        for round in 0..ROUNDS {
            let what = format!("round {round}");
            let (pool, _keep) = shared(ThreadPool::new(3).unwrap());
            let fates = Fates::new(TASKS);
            // The two meet at a random spawn, so that both are on a core
            // there however busy the machine is (see `cancel_races`).
            let (go, stopping) = (
                Arc::new(AtomicBool::new(false)),
                Arc::new(AtomicBool::new(false)),
            );
            let meet_at = rng.next() as usize % TASKS;
            let stopper = {
                let (pool, go, stopping) = (pool.clone(), go.clone(), stopping.clone());
                let spins = rng.spins(12);
                crate::common::spawn(move || {
                    spin_until(&go);
                    stopping.store(true, Ordering::SeqCst);
                    spin(spins);
                    pool.shutdown_now()
                        .iter()
                        .map(|task| task.id())
                        .collect::<Vec<_>>()
                })
            };
            let scoped: HashSet<TaskId> = pool.scope(|s| {
                let mut ids = HashSet::new();
                for i in 0..TASKS {
                    if i == meet_at {
                        go.store(true, Ordering::SeqCst);
                        spin_until(&stopping);
                    }
                    let probe = fates.probe(i);
                    let spins = rng.spins(12);
                    let handle = s.spawn(move || {
                        probe.run();
                        spin(spins);
                    });
                    ids.extend(handle.id());
                }
                ids
            });
            let back = stopper.join("shutdown_now");
            assert!(
                back.is_empty(),
                "{what}: shutdown_now handed back {} tasks, {} of them scoped, of no others",
                back.len(),
                back.iter().filter(|id| scoped.contains(id)).count()
            );
            fates.assert_each_ended_once(&what);
            let (ran, unrun) = (fates.ran(), fates.dropped_unrun());
            assert_eq!(ran + unrun, TASKS, "{what}");
            assert!(pool.await_termination(WAIT), "{what}: terminated");
            let refused = TASKS - scoped.len();
            let (completed, panicked, cancelled, rejected) = books(&pool);
            assert_eq!(panicked, 0);
            assert_eq!(completed as usize, ran, "{what}");
            assert_eq!((cancelled + rejected) as usize, unrun, "{what}");
            assert_eq!(
                rejected as usize, refused,
                "{what}: a refused spawn has no id and counts as rejected"
            );
            refused_some += usize::from(refused > 0);
            mixed += usize::from(ran > 0 && unrun > refused);
        }
        assert!(
            refused_some > 0 && mixed > 0,
            "the race window was never hit: {refused_some} rounds refused spawns, {mixed} \
             cancelled queued tasks beside run ones"
        );
    });
}

#[test]
fn after_shutdown_an_outside_scope_refuses_spawns_and_counts_them_rejected() {
    watchdog("the scope opened after shutdown", || {
        let pool = TestPool::new(2);
        pool.shutdown();
        let fates = Fates::new(10);
        pool.scope(|s| {
            for i in 0..10 {
                let probe = fates.probe(i);
                let handle = s.spawn(move || probe.run());
                assert_eq!(fates.drops(i), 1, "the refused closure was dropped at once");
                assert_eq!(handle.id(), None);
                assert!(handle.join().unwrap_err().is_cancelled());
            }
        });
        assert_eq!(fates.ran(), 0);
        assert!(pool.await_termination(WAIT));
        assert_eq!(books(&pool), (0, 0, 0, 10));
    });
}

#[test]
fn shutdown_during_an_outside_scope_runs_what_it_spawned_before_and_refuses_the_rest() {
    watchdog("the scope meeting shutdown", || {
        let pool = TestPool::new(1);
        let gate = Gate::occupying(&pool, 1);
        let before = Fates::new(10);
        let after = Fates::new(5);
        pool.scope(|s| {
            let handles: Vec<_> = (0..10)
                .map(|i| {
                    let probe = before.probe(i);
                    s.spawn(move || probe.run())
                })
                .collect();
            pool.shutdown();
            for i in 0..5 {
                let probe = after.probe(i);
                let handle = s.spawn(move || probe.run());
                assert!(
                    handle.join().unwrap_err().is_cancelled(),
                    "spawn {i} after shutdown"
                );
            }
            assert!(
                !s.is_cancelled(),
                "shutdown (the drain) does not cancel the scope"
            );
            gate.release();
            for (i, handle) in handles.into_iter().enumerate() {
                assert_eq!(
                    handle.join().unwrap(),
                    i,
                    "spawned before shutdown: it runs"
                );
            }
        });
        before.assert_each_ended_once("before");
        after.assert_each_ended_once("after");
        assert_eq!((before.ran(), after.ran()), (10, 0));
        assert!(pool.await_termination(WAIT));
        assert_eq!(
            books(&pool),
            (11, 0, 0, 5),
            "the gate's task, 10 scoped; 5 refused"
        );
    });
}

/// A task submitted before `shutdown` opens a scope once the pool is
/// shutting down (its worker runs it in the drain); the scope's tasks
/// spawn more into it. Every spawn is admitted and runs, the opener
/// returns, and the drain then ends.
fn scope_in_the_drain(threads: usize) {
    const FAN: usize = 5;
    let (pool, _keep) = shared(ThreadPool::new(threads).unwrap());
    let shut = Latch::default();
    let opener = pool
        .submit({
            let (pool, shut) = (pool.clone(), shut.clone());
            move || {
                assert!(shut.wait(), "the test shut the pool down");
                assert!(pool.is_shutdown());
                let fates = Fates::new(FAN * FAN);
                let refused = AtomicUsize::new(0);
                pool.scope(|s| {
                    for i in 0..FAN {
                        let (fates, refused) = (&fates, &refused);
                        let handle = s.spawn(move || {
                            // Spawned from a task of the scope, on any
                            // worker, during the drain.
                            for j in 0..FAN {
                                let probe = fates.probe(i * FAN + j);
                                let handle = s.spawn(move || probe.run());
                                refused.fetch_add(
                                    usize::from(handle.id().is_none()),
                                    Ordering::SeqCst,
                                );
                            }
                        });
                        refused.fetch_add(usize::from(handle.id().is_none()), Ordering::SeqCst);
                    }
                });
                fates.assert_each_ended_once("in the drain");
                (fates.ran(), refused.into_inner())
            }
        })
        .unwrap();
    pool.shutdown();
    shut.open();
    assert_eq!(
        bounded_join(opener).unwrap(),
        (FAN * FAN, 0),
        "all ran, none refused"
    );
    assert!(
        pool.await_termination(WAIT),
        "the drain waited for the scope, then ended"
    );
    assert_eq!(books(&pool), ((1 + FAN + FAN * FAN) as u64, 0, 0, 0));
}

#[test]
fn a_scope_opened_by_a_task_the_drain_runs_keeps_spawning_and_its_tasks_run() {
    // Two workers: the other one may still be there, or may have exited
    // (the queue looked empty to it), leaving the opener's worker alone.
    watchdog_within("the scopes in the drain", 6 * WAIT, || {
        for _ in 0..20 {
            scope_in_the_drain(2);
        }
    });
}

#[test]
fn a_scope_opened_in_the_drain_of_a_one_thread_pool_runs_on_its_only_worker() {
    watchdog("the scope in the drain", || scope_in_the_drain(1));
}

#[test]
fn a_join_in_a_scope_opened_in_the_drain_of_a_one_thread_pool_returns() {
    // As above, but the only worker waits in `ScopedHandle::join`, which
    // runs the queued work itself until the joined task has started.
    watchdog("the join in the drain", || {
        let (pool, _keep) = shared(ThreadPool::new(1).unwrap());
        let shut = Latch::default();
        let opener = pool
            .submit({
                let (pool, shut) = (pool.clone(), shut.clone());
                move || {
                    assert!(shut.wait(), "the test shut the pool down");
                    pool.scope(|s| s.spawn(|| "joined").join())
                }
            })
            .unwrap();
        pool.shutdown();
        shut.open();
        assert_eq!(bounded_join(opener).unwrap().unwrap(), "joined");
        assert!(pool.await_termination(WAIT));
    });
}

#[test]
fn a_scope_opened_by_a_task_the_drain_runs_on_a_bounded_pool_is_refused() {
    watchdog("the bounded scope in the drain", || {
        let (pool, _keep) = shared(
            ThreadPool::builder()
                .threads(2)
                .queue_capacity(16)
                .build()
                .unwrap(),
        );
        let shut = Latch::default();
        let opener = pool
            .submit({
                let (pool, shut) = (pool.clone(), shut.clone());
                move || {
                    assert!(shut.wait(), "the test shut the pool down");
                    let fates = Fates::new(5);
                    pool.scope(|s| {
                        for i in 0..5 {
                            let probe = fates.probe(i);
                            let handle = s.spawn(move || probe.run());
                            assert!(handle.join().unwrap_err().is_cancelled(), "spawn {i}");
                        }
                    });
                    fates.assert_each_ended_once("in the drain");
                    fates.ran()
                }
            })
            .unwrap();
        pool.shutdown();
        shut.open();
        assert_eq!(
            bounded_join(opener).unwrap(),
            0,
            "a bounded pool's drain refuses them"
        );
        assert!(pool.await_termination(WAIT));
        assert_eq!(books(&pool), (1, 0, 0, 5));
    });
}

#[test]
fn a_scope_on_a_terminated_pool_refuses_every_spawn_and_returns() {
    watchdog("the scope on a terminated pool", || {
        let pool = TestPool::new(2);
        finish(&pool);
        let fates = Fates::new(10);
        let value = pool.scope(|s| {
            for i in 0..10 {
                let probe = fates.probe(i);
                assert!(
                    s.spawn(move || probe.run())
                        .join()
                        .unwrap_err()
                        .is_cancelled()
                );
            }
            assert!(!s.stop_token().is_stop_requested() || s.is_cancelled());
            "returned"
        });
        assert_eq!(value, "returned");
        fates.assert_each_ended_once("on the terminated pool");
        assert_eq!(fates.ran(), 0);
        assert_eq!(pool.stats().rejected, 10);
    });
}

#[test]
fn a_task_of_an_outside_scope_spawning_after_shutdown_is_refused_like_its_caller() {
    watchdog("the outside scope's task spawning in the drain", || {
        let pool = TestPool::new(2);
        let shut = Latch::default();
        let late = Fates::new(5);
        let refused = pool.scope(|s| {
            // Runs on a worker; spawns into the outside scope once the
            // pool is shutting down.
            let spawner = s.spawn(|| {
                assert!(shut.wait(), "the test shut the pool down");
                (0..5)
                    .filter(|&i| {
                        let probe = late.probe(i);
                        s.spawn(move || probe.run()).id().is_none()
                    })
                    .count()
            });
            pool.shutdown();
            shut.open();
            spawner.join().unwrap()
        });
        late.assert_each_ended_once("spawned in the drain");
        assert_eq!(
            (refused, late.ran()),
            (5, 0),
            "\"Shutdown\" on ThreadPool::scope: a scope opened outside the pool spawns nothing \
             after shutdown, whichever thread spawns"
        );
        assert!(pool.await_termination(WAIT));
    });
}

#[test]
fn a_graceful_shutdown_during_an_outside_scope_reports_none_of_its_tasks_as_never_started() {
    const QUEUED: usize = 20;
    const PLAIN: usize = 3;
    watchdog("the scope meeting a graceful shutdown", || {
        let (pool, _keep) = shared(ThreadPool::new(2).unwrap());
        let queued = Fates::new(QUEUED);
        let woke = AtomicUsize::new(0);
        let (started_tx, started) = unbounded();
        let (report, scoped) = pool.scope(|s| {
            for _ in 0..2 {
                s.spawn(|| {
                    if wait_for_stop(&started_tx) {
                        woke.fetch_add(1, Ordering::SeqCst);
                    }
                });
            }
            expect_started(&started, 2);
            let handles: Vec<_> = (0..QUEUED)
                .map(|i| {
                    let probe = queued.probe(i);
                    s.spawn(move || probe.run())
                })
                .collect();
            for i in 0..PLAIN {
                pool.execute(move || assert!(i < PLAIN)).unwrap();
            }
            let scoped: HashSet<TaskId> = handles.iter().filter_map(|h| h.id()).collect();
            // The drain cannot finish (both workers wait for a stop), so
            // the shutdown goes on to interrupt them.
            let policy = drainpool::ShutdownPolicy::new(crate::common::BRIEF, WAIT);
            let report = pool.shutdown_gracefully(policy);
            (report, scoped)
        });
        assert!(report.terminated, "{report}");
        assert!(report.stuck.is_empty(), "{report}");
        let never: Vec<TaskId> = report.never_started.iter().map(|t| t.id()).collect();
        assert_eq!(never.len(), PLAIN, "only the plain tasks: {report}");
        assert!(never.iter().all(|id| !scoped.contains(id)), "{report}");
        assert_eq!(
            woke.load(Ordering::SeqCst),
            2,
            "the running scoped tasks were stopped"
        );
        queued.assert_each_ended_once("after the graceful shutdown");
        assert_eq!(queued.ran(), 0);
    });
}
