//! Never deadlocks: the thread waiting in a scope (or joining a scoped
//! handle) on one of the pool's workers runs the scope's queued tasks
//! itself, so a scope opened on the only worker of a one-thread pool, or
//! nested ten deep there, finishes; from outside the pool the caller runs
//! them too, as a guest of the pool (`caller_runs.rs`). On a bounded queue
//! a worker's spawn that finds no room is refused rather than blocked.

use std::sync::atomic::{AtomicUsize, Ordering};

use drainpool::ThreadPool;

use crate::common::{Rng, WAIT, bounded_join, spin};
use crate::{Fates, finish, shared, watchdog};

const ROUNDS: usize = 100;
const TASKS: usize = 50;

/// Opens a scope on `pool` with `TASKS` tasks, joins every other handle
/// (the later ones still queued when joined first), and returns the sum
/// of the joined values.
fn scope_and_join(pool: &ThreadPool, fates: &Fates, rng: &mut Rng) -> usize {
    pool.scope(|s| {
        let handles: Vec<_> = (0..TASKS)
            .map(|i| {
                let probe = fates.probe(i);
                let spins = rng.spins(10);
                s.spawn(move || {
                    spin(spins);
                    probe.run()
                })
            })
            .collect();
        // Last first: the worker that joins runs what is queued before it.
        handles
            .into_iter()
            .rev()
            .step_by(2)
            .map(|h| h.join().unwrap())
            .sum()
    })
}

fn expected_sum() -> usize {
    (0..TASKS).rev().step_by(2).sum()
}

#[test]
fn a_scope_opened_on_the_only_worker_of_a_one_thread_pool_finishes() {
    watchdog("the scope on the only worker", || {
        let (pool, _keep) = shared(ThreadPool::new(1).unwrap());
        for round in 0..ROUNDS {
            let task = {
                let pool = pool.clone();
                move || {
                    let fates = Fates::new(TASKS);
                    let sum = scope_and_join(&pool, &fates, &mut Rng(round as u64 + 1));
                    fates.assert_each_ended_once("on the worker");
                    (sum, fates.ran())
                }
            };
            let handle = pool.submit(task).unwrap();
            assert_eq!(
                bounded_join(handle).unwrap(),
                (expected_sum(), TASKS),
                "round {round}"
            );
        }
        finish(&pool);
    });
}

#[test]
fn a_scope_opened_from_outside_a_one_thread_pool_finishes() {
    watchdog("the scope from outside", || {
        let pool = ThreadPool::new(1).unwrap();
        let mut rng = Rng(0xdead_10c5);
        for round in 0..ROUNDS {
            let fates = Fates::new(TASKS);
            let sum = scope_and_join(&pool, &fates, &mut rng);
            assert_eq!(sum, expected_sum(), "round {round}");
            fates.assert_each_ended_once(&format!("round {round}"));
            assert_eq!(fates.ran(), TASKS, "round {round}");
        }
        finish(&pool);
    });
}

/// Opens a scope on `pool` at `level` (of `depth`), whose first task opens
/// the next level, and whose other tasks (probes of `levels[level - 1]`)
/// queue behind it and are joined; returns how many levels returned.
fn nest(pool: &ThreadPool, level: usize, depth: usize, levels: &[Fates]) -> usize {
    pool.scope(|s| {
        let deeper = (level < depth).then(|| s.spawn(move || nest(pool, level + 1, depth, levels)));
        let fates = &levels[level - 1];
        let handles: Vec<_> = (0..fates.len())
            .map(|i| {
                let probe = fates.probe(i);
                s.spawn(move || probe.run())
            })
            .collect();
        for (i, handle) in handles.into_iter().enumerate() {
            assert_eq!(handle.join().unwrap(), i, "level {level}");
        }
        1 + deeper.map_or(0, |h| h.join().unwrap())
    })
}

#[test]
fn scopes_nested_ten_deep_on_a_one_thread_pool_finish_from_inside_and_outside() {
    const DEPTH: usize = 10;
    watchdog("the nested scopes", || {
        let (pool, _keep) = shared(ThreadPool::new(1).unwrap());
        for round in 0..ROUNDS / 2 {
            // From outside the pool: the first level's caller waits.
            let levels: Vec<Fates> = (0..DEPTH).map(|_| Fates::new(4)).collect();
            assert_eq!(
                nest(&pool, 1, DEPTH, &levels),
                DEPTH,
                "round {round}, outside"
            );
            for fates in &levels {
                fates.assert_each_ended_once("from outside");
                assert_eq!(fates.ran(), fates.len());
            }
            // From inside the only worker: every level's caller is that worker.
            let inside = {
                let pool = pool.clone();
                move || {
                    let levels: Vec<Fates> = (0..DEPTH).map(|_| Fates::new(4)).collect();
                    let returned = nest(&pool, 1, DEPTH, &levels);
                    let ran: usize = levels.iter().map(Fates::ran).sum();
                    (returned, ran)
                }
            };
            let handle = pool.submit(inside).unwrap();
            assert_eq!(
                bounded_join(handle).unwrap(),
                (DEPTH, DEPTH * 4),
                "round {round}, inside"
            );
        }
        finish(&pool);
    });
}

#[test]
fn a_worker_spawn_into_a_full_bounded_queue_is_refused_not_blocked() {
    watchdog("the scope on a full queue", || {
        let (pool, _keep) = shared(
            ThreadPool::builder()
                .threads(1)
                .queue_capacity(2)
                .build()
                .unwrap(),
        );
        let task = {
            let pool = pool.clone();
            move || {
                let fates = Fates::new(TASKS);
                let refused = AtomicUsize::new(0);
                pool.scope(|s| {
                    for i in 0..TASKS {
                        let probe = fates.probe(i);
                        let handle = s.spawn(move || probe.run());
                        if handle.id().is_none() {
                            refused.fetch_add(1, Ordering::SeqCst);
                            assert!(handle.join().unwrap_err().is_cancelled());
                        }
                    }
                });
                fates.assert_each_ended_once("on the full queue");
                (fates.ran(), fates.dropped_unrun(), refused.into_inner())
            }
        };
        let handle = pool.submit(task).unwrap();
        let (ran, unrun, refused) = bounded_join(handle).unwrap();
        assert_eq!(ran + unrun, TASKS);
        assert_eq!(unrun, refused, "only the refused ones did not run");
        assert!(
            refused > 0,
            "the only worker cannot wait for room it must make"
        );
        finish(&pool);
        assert_eq!(pool.stats().rejected as usize, refused);
    });
}

#[test]
fn an_outside_spawn_into_a_full_bounded_queue_waits_for_room() {
    watchdog("the outside scope on a full queue", || {
        let pool = ThreadPool::builder()
            .threads(1)
            .queue_capacity(2)
            .build()
            .unwrap();
        let fates = Fates::new(TASKS);
        pool.scope(|s| {
            for i in 0..TASKS {
                let probe = fates.probe(i);
                let handle = s.spawn(move || probe.run());
                assert!(
                    handle.id().is_some(),
                    "spawn {i} waited for room, as submit does"
                );
            }
        });
        fates.assert_each_ended_once("from outside");
        assert_eq!(fates.ran(), TASKS);
        pool.shutdown();
        assert!(pool.await_termination(WAIT));
    });
}

/// A task of `s` that spawns the next link of a chain into `s` and joins
/// it: on a one-thread pool only the joining worker can run it.
fn link<'scope>(s: &'scope drainpool::Scope<'scope, '_>, left: usize) -> usize {
    if left == 0 {
        return 0;
    }
    1 + s.spawn(move || link(s, left - 1)).join().unwrap()
}

#[test]
fn a_task_joining_a_sibling_it_spawned_on_a_one_thread_pool_runs_it_itself() {
    const CHAIN: usize = 10;
    watchdog("the chain of joins", || {
        let (pool, _keep) = shared(ThreadPool::new(1).unwrap());
        for round in 0..ROUNDS {
            // From outside: the chain runs on the worker, each link joined
            // by the one before it.
            let links = pool.scope(|s| s.spawn(move || link(s, CHAIN)).join().unwrap());
            assert_eq!(links, CHAIN, "round {round}, outside");
            // From inside the only worker.
            let inside = {
                let pool = pool.clone();
                move || pool.scope(|s| link(s, CHAIN))
            };
            let handle = pool.submit(inside).unwrap();
            assert_eq!(
                bounded_join(handle).unwrap(),
                CHAIN,
                "round {round}, inside"
            );
        }
        finish(&pool);
    });
}

/// A one-thread pool with room for one queued task, its worker held by a
/// scoped task of `s` and its queue filled by another: the next spawn of
/// `s` from outside waits for room. `stop` runs, on a thread or task of
/// its own, once that spawn waits; the spawn must then come back refused.
fn blocked_spawn_released_by(stop: impl Fn(&ThreadPool, &drainpool::Scope<'_, '_>) + Sync) {
    let pool = ThreadPool::builder()
        .threads(1)
        .queue_capacity(1)
        .build()
        .unwrap();
    let fates = Fates::new(2);
    let (started_tx, started) = drainpool::crossbeam_channel::unbounded();
    pool.scope(|s| {
        let running = s.spawn(|| crate::wait_for_stop(&started_tx));
        crate::expect_started(&started, 1);
        let probe = fates.probe(0);
        let queued = s.spawn(move || probe.run());
        assert!(queued.id().is_some(), "the queue had room for one");
        let (pool, stop) = (&pool, &stop);
        std::thread::scope(|t| {
            t.spawn(move || {
                crate::until("the spawn waits for room", || {
                    pool.stats().blocked_submitters == 1
                });
                stop(pool, s);
            });
            let probe = fates.probe(1);
            let blocked = s.spawn(move || probe.run());
            assert!(blocked.join().unwrap_err().is_cancelled(), "refused");
        });
        assert!(queued.join().unwrap_err().is_cancelled());
        assert!(running.join().unwrap(), "the running task was stopped");
    });
    fates.assert_each_ended_once("the blocked spawn");
    assert_eq!(fates.ran(), 0);
    pool.shutdown();
    assert!(pool.await_termination(WAIT));
}

#[test]
fn a_spawn_waiting_for_room_in_a_bounded_queue_is_released_by_shutdown_now() {
    watchdog("the spawn waiting for room", || {
        blocked_spawn_released_by(|pool, _| {
            assert!(pool.shutdown_now().is_empty(), "no scoped task handed back");
        });
    });
}

#[test]
fn a_spawn_waiting_for_room_in_a_bounded_queue_is_released_by_the_scopes_cancel() {
    watchdog("the spawn waiting for room", || {
        blocked_spawn_released_by(|_, s| s.cancel());
    });
}
