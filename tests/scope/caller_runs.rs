//! The caller runs its scope's tasks, also from outside the pool: a scope
//! (or a scoped handle's join) whose caller is no worker of the pool
//! finishes even while every worker is blocked, and a task its caller runs
//! is the pool's like any other: listed in `running_tasks`, counted in
//! `stats`, told to stop by the scope and the pool, and the pool does not
//! terminate under it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::thread;

use drainpool::{StopToken, ThreadPool};

use crate::common::WAIT;
use crate::{finish, watchdog};

/// A one-thread pool whose only worker is blocked until the returned
/// sender sends (or is dropped).
fn blocked_pool() -> (ThreadPool, mpsc::Sender<()>) {
    block_the_worker(ThreadPool::new(1).unwrap())
}

/// Blocks `pool`'s only worker until the returned sender sends (or is
/// dropped).
fn block_the_worker(pool: ThreadPool) -> (ThreadPool, mpsc::Sender<()>) {
    let (release, released) = mpsc::channel::<()>();
    let (started, is_started) = mpsc::channel();
    pool.execute(move || {
        started.send(()).unwrap();
        let _ = released.recv();
    })
    .unwrap();
    is_started.recv_timeout(WAIT).expect("the worker started");
    (pool, release)
}

#[test]
fn a_scope_from_outside_finishes_while_every_worker_is_blocked() {
    watchdog("the scope over a blocked pool", || {
        let (pool, release) = blocked_pool();
        let caller = thread::current().id();
        let joined_on = pool.scope(|s| {
            // A join from outside runs the task too.
            s.spawn(|| thread::current().id()).join().unwrap()
        });
        // It could not have run on the blocked worker.
        assert_eq!(joined_on, caller);
        drop(release);
        finish(&pool);
    });
}

#[test]
fn the_scope_waits_for_a_task_its_caller_does_not_join_while_the_pool_is_blocked() {
    watchdog("the scope's end over a blocked pool", || {
        let (pool, release) = blocked_pool();
        let caller = thread::current().id();
        let mut ran_on = None;
        pool.scope(|s| {
            s.spawn(|| ran_on = Some(thread::current().id()));
        });
        assert_eq!(ran_on, Some(caller));
        drop(release);
        finish(&pool);
    });
}

#[test]
fn a_task_its_caller_runs_is_listed_counted_and_told_to_stop() {
    watchdog("the caller's task, seen from the pool", || {
        let (pool, release) = blocked_pool();
        let before = pool.stats();
        let (listed, stopped) = pool.scope(|s| {
            s.spawn(|| {
                // The blocked worker's task, and this one.
                let listed = pool.running_tasks();
                s.cancel();
                (listed, StopToken::current().is_stop_requested())
            })
            .join()
            .unwrap()
        });
        assert_eq!(listed.len(), 2, "running: {listed:?}");
        assert!(
            stopped,
            "the scope's cancel reached the task its caller ran"
        );
        let after = pool.stats();
        assert_eq!(after.completed, before.completed + 1, "{after:?}");
        drop(release);
        finish(&pool);
    });
}

#[test]
fn shutdown_now_reaches_a_task_its_caller_runs() {
    watchdog("shutdown_now and the caller's task", || {
        let (pool, release) = blocked_pool();
        let woke = pool.scope(|s| {
            s.spawn(|| {
                assert!(pool.shutdown_now().is_empty(), "nothing was queued");
                StopToken::current().is_stop_requested()
            })
            .join()
            .unwrap()
        });
        assert!(woke, "the pool's stop reached the task its caller ran");
        drop(release);
        assert!(pool.await_termination(WAIT));
    });
}

#[test]
fn the_pool_does_not_terminate_while_a_caller_runs_one_of_its_tasks() {
    watchdog("termination after the caller's task", || {
        let scoped_ended = Arc::new(AtomicBool::new(false));
        let ended_first = Arc::new(AtomicBool::new(false));
        let pool = ThreadPool::builder()
            .threads(1)
            .on_terminated({
                let scoped_ended = scoped_ended.clone();
                let ended_first = ended_first.clone();
                move || ended_first.store(scoped_ended.load(Ordering::SeqCst), Ordering::SeqCst)
            })
            .build()
            .unwrap();
        let (pool, release_worker) = block_the_worker(pool);
        let (in_task, is_in_task) = mpsc::channel();
        let (release_task, task_released) = mpsc::channel::<()>();
        thread::scope(|outside| {
            let (pool, scoped_ended) = (&pool, &scoped_ended);
            let caller = outside.spawn(move || {
                pool.scope(|s| {
                    s.spawn(move || {
                        in_task.send(()).unwrap();
                        let _ = task_released.recv();
                        scoped_ended.store(true, Ordering::SeqCst);
                    });
                });
            });
            // The scope's caller runs its task: the worker is blocked.
            is_in_task
                .recv_timeout(WAIT)
                .expect("the caller ran its task");
            pool.shutdown();
            drop(release_worker);
            // The worker drains an empty queue and exits.
            let deadline = std::time::Instant::now() + WAIT;
            while pool.stats().threads > 0 {
                assert!(std::time::Instant::now() < deadline, "the worker exited");
                thread::yield_now();
            }
            assert!(
                !pool.is_terminated(),
                "terminated while a task of the pool still runs"
            );
            drop(release_task);
            caller.join().unwrap();
        });
        assert!(pool.await_termination(WAIT));
        assert!(
            ended_first.load(Ordering::SeqCst),
            "on_terminated ran before the caller's task ended"
        );
    });
}

#[test]
fn more_callers_than_guest_slots_all_finish_and_every_task_ends_once() {
    /// Callers at once: twice the pool's four guest slots.
    const CALLERS: usize = 8;
    const ROUNDS: usize = 200;
    const TASKS: usize = 40;
    watchdog("eight callers at once", || {
        let pool = ThreadPool::new(1).unwrap();
        thread::scope(|outside| {
            for caller in 0..CALLERS {
                let pool = &pool;
                outside.spawn(move || {
                    for round in 0..ROUNDS {
                        let fates = crate::Fates::new(TASKS);
                        let sum: usize = pool.scope(|s| {
                            let handles: Vec<_> = (0..TASKS)
                                .map(|i| {
                                    let probe = fates.probe(i);
                                    s.spawn(move || probe.run())
                                })
                                .collect();
                            // Every other one joined, the rest left to the wait.
                            handles
                                .into_iter()
                                .step_by(2)
                                .map(|h| h.join().unwrap())
                                .sum()
                        });
                        let what = format!("caller {caller}, round {round}");
                        assert_eq!(sum, (0..TASKS).step_by(2).sum::<usize>(), "{what}");
                        fates.assert_each_ended_once(&what);
                        assert_eq!(fates.ran(), TASKS, "{what}");
                    }
                });
            }
        });
        let stats = pool.stats();
        let total = (CALLERS * ROUNDS * TASKS) as u64;
        assert_eq!(stats.completed, total, "{stats:?}");
        finish(&pool);
    });
}
