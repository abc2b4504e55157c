//! Scoped tasks are tasks of the pool: they count in `stats` as completed,
//! panicked, cancelled or rejected, the pool's accounting invariant holds
//! after a scope, and `running_tasks` lists a scoped task while it runs.

use drainpool::crossbeam_channel::unbounded;

use std::sync::Arc;

use drainpool::ThreadPool;

use crate::common::{Latch, WAIT, bounded_join};
use crate::{Fates, books, expect_started, finish, quiet_pool, shared, wait_for_stop, watchdog};

#[test]
fn stats_count_scoped_tasks_completed_panicked_cancelled_and_rejected() {
    watchdog("the counted scope", || {
        let pool = quiet_pool(1);
        let queued = Fates::new(4);
        let refused = Fates::new(2);
        let (started_tx, started) = unbounded();
        pool.scope(|s| {
            for i in 0..5 {
                assert_eq!(s.spawn(move || i).join().unwrap(), i);
            }
            let panicked = s.spawn(|| panic!("deliberate: counted as panicked"));
            // Joined: the panic is this caller's, and the scope goes on.
            assert!(panicked.join().unwrap_err().is_panic());
            // The panic cancelled the scope; a fresh one shows the rest.
        });
        pool.scope(|s| {
            let running = s.spawn(|| wait_for_stop(&started_tx));
            expect_started(&started, 1);
            for i in 0..4 {
                let probe = queued.probe(i);
                s.spawn(move || probe.run());
            }
            s.cancel();
            for i in 0..2 {
                let probe = refused.probe(i);
                s.spawn(move || probe.run());
            }
            assert!(running.join().unwrap(), "woken by the cancel");
        });
        assert_eq!((queued.dropped_unrun(), refused.dropped_unrun()), (4, 2));
        let (completed, panicked, cancelled, rejected) = books(&pool);
        assert_eq!(
            (completed, panicked, cancelled, rejected),
            (6, 1, 4, 2),
            "5 joined + the woken one completed, 1 panicked, 4 queued cancelled, 2 refused"
        );
        let accepted = 5 + 1 + 1 + 4;
        assert_eq!(
            completed + panicked + cancelled,
            accepted,
            "the invariant holds"
        );
    });
}

#[test]
fn running_tasks_lists_a_scoped_task_while_it_runs_and_not_after() {
    watchdog("the listed scope", || {
        let pool = drainpool::ThreadPool::builder()
            .threads(2)
            .thread_name("scoped")
            .build()
            .unwrap();
        let release = Latch::default();
        let (started_tx, started) = unbounded();
        pool.scope(|s| {
            let handle = s.spawn(|| {
                started_tx.send(()).unwrap();
                assert!(release.wait(), "released");
            });
            expect_started(&started, 1);
            let id = handle.id().expect("accepted");
            let running = pool.running_tasks();
            let listed = running.iter().find(|task| task.id == id);
            let listed = listed.unwrap_or_else(|| panic!("{id} is not in {running:?}"));
            assert!(listed.thread.starts_with("scoped"), "{listed}");
            assert_eq!(pool.stats().active, 1);
            release.open();
            handle.join().unwrap();
            assert!(pool.wait_idle(WAIT));
            assert!(
                pool.running_tasks().iter().all(|task| task.id != id),
                "{id} is still listed after it ended"
            );
        });
        assert_eq!(books(&pool), (1, 0, 0, 0));
        pool.shutdown();
        assert!(pool.await_termination(WAIT));
    });
}

/// On a one-thread pool, a task (the opener) opens a scope and spawns a
/// task that blocks until `release`; the only worker, waiting for the
/// scope, runs that task itself. Returns the opener's handle and the
/// scoped task's id once the scoped task runs.
fn helped_scope(
    pool: &Arc<ThreadPool>,
    release: &Latch,
) -> (drainpool::TaskHandle<()>, drainpool::TaskId) {
    let (id_tx, id) = unbounded();
    let (started_tx, started) = unbounded();
    let opener = pool
        .submit({
            let (pool, release) = (pool.clone(), release.clone());
            move || {
                pool.scope(|s| {
                    let helped = s.spawn(|| {
                        started_tx.send(()).unwrap();
                        assert!(release.wait(), "released");
                    });
                    id_tx.send(helped.id().expect("accepted")).unwrap();
                    // The only worker waits here, and runs it itself.
                })
            }
        })
        .unwrap();
    let helped = id.recv_timeout(WAIT).expect("the scope spawned");
    expect_started(&started, 1);
    (opener, helped)
}

#[test]
fn running_tasks_lists_a_scoped_task_run_by_the_worker_waiting_for_its_scope() {
    watchdog("the helped task", || {
        let (pool, _keep) = shared(ThreadPool::new(1).unwrap());
        let release = Latch::default();
        let (opener, helped) = helped_scope(&pool, &release);
        let running = pool.running_tasks();
        assert!(
            running.iter().any(|task| task.id == helped),
            "{helped}, run by the waiting worker, is not in {running:?}"
        );
        release.open();
        bounded_join(opener).unwrap();
        assert_eq!(books(&pool), (2, 0, 0, 0), "the opener and the helped task");
        finish(&pool);
    });
}

#[test]
fn running_tasks_still_lists_a_task_while_its_worker_runs_a_task_of_its_scope() {
    watchdog("the helping opener", || {
        let (pool, _keep) = shared(ThreadPool::new(1).unwrap());
        let release = Latch::default();
        let (opener, _) = helped_scope(&pool, &release);
        let running = pool.running_tasks();
        release.open();
        let opener_id = opener.id();
        bounded_join(opener).unwrap();
        finish(&pool);
        // The opener has not ended: it waits in its scope (helping). A
        // watchdog or the graceful shutdown's stuck list must see it.
        assert!(
            running.iter().any(|task| task.id == opener_id),
            "{opener_id}, still running (waiting for its scope), is not in {running:?}"
        );
    });
}
