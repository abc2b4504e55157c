//! Stop flows down: a scope opened inside a pool task is cancelled when
//! that task's stop token fires (its handle's `cancel`, its group's
//! `cancel`, an enclosing scope's `cancel`, `shutdown_now`). Its scoped
//! task blocked in an interruptible wait wakes, its queued tasks never run,
//! and the task that opened it returns.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use drainpool::ThreadPool;
use drainpool::crossbeam_channel::{Sender, unbounded};

use crate::common::{WAIT, bounded_join};
use crate::{Fates, expect_started, finish, shared, wait_for_stop, watchdog};

const ROUNDS: usize = 100;
/// Queued behind the blocked tasks of each inner scope.
const QUEUED: usize = 30;

/// Where the stop comes from.
#[derive(Clone, Copy, Debug)]
enum From {
    /// `TaskHandle::cancel` of the task that opened the scope, while it runs.
    HandleCancel,
    /// `TaskGroup::cancel` of that task's group.
    GroupCancel,
    /// `Scope::cancel` of the scope that task belongs to.
    OuterScopeCancel,
    /// `ThreadPool::shutdown_now`.
    ShutdownNow,
}

/// What the inner scope's tasks did.
struct Inner {
    /// One per worker, blocked until the stop (one of them on the worker
    /// that waits for the scope, which runs it itself).
    blockers: usize,
    started: Sender<()>,
    woke: AtomicUsize,
    queued: Fates,
}

impl Inner {
    fn new(blockers: usize, started: Sender<()>) -> Inner {
        Inner {
            blockers,
            started,
            woke: AtomicUsize::new(0),
            queued: Fates::new(QUEUED),
        }
    }

    /// Opens a scope on `pool` (from inside one of its tasks): as many
    /// blocked tasks as the pool has workers, so that every worker is held
    /// and the queued tasks behind them can only start if the stop fails
    /// to cancel them.
    fn open(&self, pool: &ThreadPool) -> &'static str {
        pool.scope(|s| {
            for _ in 0..self.blockers {
                s.spawn(|| {
                    if wait_for_stop(&self.started) {
                        self.woke.fetch_add(1, Ordering::SeqCst);
                    }
                });
            }
            for i in 0..QUEUED {
                let probe = self.queued.probe(i);
                s.spawn(move || probe.run());
            }
            "the inner scope returned"
        })
    }

    fn check(&self, what: &str) {
        assert_eq!(
            self.woke.load(Ordering::SeqCst),
            self.blockers,
            "{what}: every blocked scoped task was woken by the stop"
        );
        self.queued.assert_each_ended_once(what);
        assert_eq!(self.queued.ran(), 0, "{what}: no queued scoped task ran");
    }
}

fn stop_flows_down(from: From) {
    watchdog(&format!("stop from {from:?}"), move || {
        for round in 0..ROUNDS {
            let threads = if round % 2 == 0 { 1 } else { 3 };
            let what = format!("{from:?}, round {round}, {threads} threads");
            let (pool, _keep) = shared(ThreadPool::new(threads).unwrap());
            let (started_tx, started) = unbounded();
            let inner = Arc::new(Inner::new(threads, started_tx));
            let opener = {
                let (pool, inner) = (pool.clone(), inner.clone());
                move || inner.open(&pool)
            };
            match from {
                From::HandleCancel => {
                    let handle = pool.submit(opener).unwrap();
                    expect_started(&started, threads);
                    assert!(!handle.cancel(), "{what}: running, so asked to stop");
                    assert_eq!(bounded_join(handle).unwrap(), "the inner scope returned");
                }
                From::GroupCancel => {
                    let group = pool.group("job");
                    let handle = group.submit(opener).unwrap();
                    expect_started(&started, threads);
                    assert_eq!(group.cancel(), 0, "{what}: nothing of the group queued");
                    assert_eq!(bounded_join(handle).unwrap(), "the inner scope returned");
                    assert!(group.wait(WAIT), "{what}: the group ended");
                }
                From::OuterScopeCancel => {
                    let returned = pool.scope(|outer| {
                        let handle = outer.spawn(opener);
                        expect_started(&started, threads);
                        outer.cancel();
                        handle.join()
                    });
                    assert_eq!(returned.unwrap(), "the inner scope returned");
                }
                From::ShutdownNow => {
                    let handle = pool.submit(opener).unwrap();
                    expect_started(&started, threads);
                    let back = pool.shutdown_now();
                    assert!(
                        back.is_empty(),
                        "{what}: scoped tasks are cancelled, never handed back; got {} back",
                        back.len()
                    );
                    assert_eq!(bounded_join(handle).unwrap(), "the inner scope returned");
                }
            }
            inner.check(&what);
            finish(&pool);
        }
    });
}

#[test]
fn a_scope_inside_a_task_is_cancelled_by_that_tasks_handle_cancel() {
    stop_flows_down(From::HandleCancel);
}

#[test]
fn a_scope_inside_a_group_task_is_cancelled_by_the_groups_cancel() {
    stop_flows_down(From::GroupCancel);
}

#[test]
fn a_scope_inside_a_scoped_task_is_cancelled_by_the_outer_scopes_cancel() {
    stop_flows_down(From::OuterScopeCancel);
}

#[test]
fn a_scope_inside_a_task_is_cancelled_by_shutdown_now() {
    stop_flows_down(From::ShutdownNow);
}

/// Ten scopes, each opened by the first task of the one above, on a
/// one-thread pool; probes queue behind at every level.
struct Nest {
    depth: usize,
    levels: Vec<Fates>,
    returned: AtomicUsize,
    started: Sender<()>,
    woke: AtomicUsize,
}

impl Nest {
    /// Opens level `level`'s scope on `pool`, from inside level
    /// `level - 1`'s first task (level 1: from the first task of the
    /// test's own scope, opened outside the pool).
    fn open(&self, pool: &ThreadPool, level: usize) {
        pool.scope(|s| {
            if level < self.depth {
                s.spawn(|| self.open(pool, level + 1));
            } else {
                s.spawn(|| {
                    if wait_for_stop(&self.started) {
                        self.woke.fetch_add(1, Ordering::SeqCst);
                    }
                });
            }
            for i in 0..self.levels[level - 1].len() {
                let probe = self.levels[level - 1].probe(i);
                s.spawn(move || probe.run());
            }
        });
        self.returned.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn cancel_of_the_outermost_scope_reaches_a_scope_nested_ten_deep() {
    const DEPTH: usize = 10;
    watchdog("the nested scopes", || {
        for round in 0..ROUNDS {
            let pool = ThreadPool::new(1).unwrap();
            let (started_tx, started) = unbounded();
            let nest = Nest {
                depth: DEPTH,
                levels: (0..DEPTH).map(|_| Fates::new(5)).collect(),
                returned: AtomicUsize::new(0),
                started: started_tx,
                woke: AtomicUsize::new(0),
            };
            pool.scope(|top| {
                top.spawn(|| nest.open(&pool, 1));
                expect_started(&started, 1);
                top.cancel();
            });
            assert_eq!(nest.woke.load(Ordering::SeqCst), 1, "round {round}: woken");
            assert_eq!(
                nest.returned.load(Ordering::SeqCst),
                DEPTH,
                "round {round}: every level returned"
            );
            // The worker waiting at each level runs its own scope's queued
            // tasks only: every level's are still queued when the cancel
            // comes down, and none runs.
            for (level, fates) in nest.levels.iter().enumerate() {
                let what = format!("round {round}, level {}", level + 1);
                fates.assert_each_ended_once(&what);
                assert_eq!(fates.ran(), 0, "{what}: a queued task ran");
            }
            finish(&pool);
        }
    });
}
