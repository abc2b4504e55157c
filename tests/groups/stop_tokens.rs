//! A group's stop token: the group's cancel raises it for the group's own
//! tasks only, also for a task that a joiner from another group runs
//! inline (and which counts once, in its own group).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};

use crate::common::{Latch, TestPool, WAIT, bounded_join, bump, sleep_until_stopped, spawn};
use crate::{counts, finish, quiescent};
use drainpool::{Interrupted, StopToken, TaskHandle};

#[test]
fn a_group_tasks_current_stop_token_fires_on_group_cancel() {
    let pool = TestPool::new(3);
    let job = pool.group("job");
    let bystanders = pool.group("bystanders");
    let (started_tx, started_rx) = mpsc::channel();
    let submitted = job
        .submit(sleep_until_stopped(started_tx.clone(), WAIT))
        .unwrap();
    let (result_tx, result_rx) = mpsc::channel();
    let executed = sleep_until_stopped(started_tx, WAIT);
    job.execute(move || result_tx.send(executed()).unwrap())
        .unwrap();
    // Another group's task: its token must not fire.
    let (seen_tx, seen_rx) = mpsc::channel();
    let go = Latch::default();
    let bystander = {
        let go = go.clone();
        bystanders
            .submit(move || {
                let token = StopToken::current();
                seen_tx.send(()).unwrap();
                go.wait();
                token.is_stop_requested()
            })
            .unwrap()
    };
    for _ in 0..2 {
        started_rx.recv_timeout(WAIT).unwrap();
    }
    seen_rx.recv_timeout(WAIT).unwrap();

    assert_eq!(job.cancel(), 0, "running tasks are not dropped");
    assert_eq!(bounded_join(submitted).unwrap(), Err(Interrupted));
    assert_eq!(result_rx.recv_timeout(WAIT).unwrap(), Err(Interrupted));
    go.open();
    assert!(!bounded_join(bystander).unwrap());
    assert!(job.wait(WAIT));
    finish(&pool);
    assert_eq!(counts(&job), quiescent(2, 2, 0, 0));
}

#[test]
fn a_group_tasks_current_stop_token_fires_on_shutdown_now() {
    let pool = TestPool::new(1);
    let job = pool.group("job");
    let (started_tx, started_rx) = mpsc::channel();
    let handle = job.submit(sleep_until_stopped(started_tx, WAIT)).unwrap();
    started_rx.recv_timeout(WAIT).unwrap();
    assert!(pool.shutdown_now().is_empty());
    assert_eq!(bounded_join(handle).unwrap(), Err(Interrupted));
    assert!(pool.await_termination(WAIT));
    assert!(
        !job.stop_token().is_stop_requested(),
        "the group was not cancelled"
    );
}

#[test]
fn the_group_stop_token_fires_once_on_cancel() {
    let pool = TestPool::new(1);
    let job = pool.group("job");
    let token = job.stop_token();
    let fired = Arc::new(AtomicUsize::new(0));
    let _callback = token.on_stop(bump(&fired));
    let sleeper = {
        let token = job.stop_token();
        spawn(move || token.sleep(WAIT))
    };
    assert!(!token.is_stop_requested());
    assert!(token.check().is_ok());
    job.cancel();
    assert!(token.is_stop_requested());
    assert_eq!(token.check(), Err(Interrupted));
    assert_eq!(sleeper.join("a sleep on the group token"), Err(Interrupted));
    assert_eq!(fired.load(Ordering::SeqCst), 1);
    job.cancel();
    assert_eq!(fired.load(Ordering::SeqCst), 1, "callbacks run once");
    // A task of another group, started after, sees no stop.
    let fresh = pool.group("fresh");
    let handle = fresh
        .submit(|| StopToken::current().is_stop_requested())
        .unwrap();
    assert!(!bounded_join(handle).unwrap());
}

// ----- joins from inside the pool ----------------------------------------------

#[test]
fn a_group_task_helped_by_a_joining_worker_counts_once() {
    let pool = TestPool::new(1);
    let job = pool.group("job");
    let side = pool.group("side");
    let (tx, rx) = mpsc::channel::<(TaskHandle<u32>, TaskHandle<u32>)>();
    // The only worker runs `outer`; it joins two tasks queued behind it,
    // one of its own group, one of another: it must run them itself.
    let outer = job
        .submit(move || {
            let (same, other) = rx.recv_timeout(WAIT).unwrap();
            same.join().unwrap() + other.join().unwrap()
        })
        .unwrap();
    let same = job.submit(|| 20).unwrap();
    let other = side.submit(|| 22).unwrap();
    tx.send((same, other)).unwrap();
    assert_eq!(bounded_join(outer).unwrap(), 42);
    assert!(job.wait(WAIT) && side.wait(WAIT));
    // Once the drain has passed the helped tasks' queue entries, nothing is
    // queued and each task was counted once.
    finish(&pool);
    assert_eq!(counts(&job), quiescent(2, 2, 0, 0));
    assert_eq!(counts(&side), quiescent(1, 1, 0, 0));
    let stats = pool.stats();
    assert_eq!((stats.completed, stats.cancelled), (3, 0));
}

#[test]
fn a_task_run_by_a_joiner_of_another_group_sees_its_own_groups_cancel() {
    let pool = TestPool::new(1);
    let outer_group = pool.group("outer");
    let inner_group = pool.group("inner");
    let (tx, rx) = mpsc::channel::<TaskHandle<Result<(), Interrupted>>>();
    let (started_tx, started_rx) = mpsc::channel();
    let outer = outer_group
        .submit(move || {
            let inner = rx.recv_timeout(WAIT).unwrap();
            let result = inner.join().unwrap();
            // The joiner's own group was not cancelled.
            (result, StopToken::current().is_stop_requested())
        })
        .unwrap();
    let inner = inner_group
        .submit(sleep_until_stopped(started_tx, WAIT))
        .unwrap();
    tx.send(inner).unwrap();
    started_rx.recv_timeout(WAIT).unwrap(); // running inline, in the joiner
    assert_eq!(inner_group.cancel(), 0, "it is running, not queued");
    assert_eq!(bounded_join(outer).unwrap(), (Err(Interrupted), false));
    finish(&pool);
    assert_eq!(counts(&inner_group), quiescent(1, 1, 0, 0));
    assert_eq!(counts(&outer_group), quiescent(1, 1, 0, 0));
}

/// Regression (issue 12, defect 4): a worker running a task of group `g1`
/// that joins a task outside the group runs that task inline; the helped
/// task used to observe `g1`'s stop token, so `g1.cancel()` interrupted a
/// task that is not in `g1`.
#[test]
fn a_task_helped_by_a_joining_group_task_does_not_see_that_groups_cancel() {
    let pool = TestPool::new(1);
    let g1 = pool.group("g1");
    let (handle_tx, handle_rx) = mpsc::channel::<TaskHandle<bool>>();
    let joiner = g1
        .submit(move || {
            let helped = handle_rx.recv_timeout(WAIT).expect("the handle arrives");
            helped.join()
        })
        .unwrap();
    let started = Latch::default();
    let go_on = Latch::default();
    let helped = pool
        .submit({
            let (started, go_on) = (started.clone(), go_on.clone());
            move || {
                let token = StopToken::current();
                started.open();
                go_on.wait();
                token.is_stop_requested()
            }
        })
        .unwrap();
    handle_tx.send(helped).unwrap();
    started.expect_open(); // running inline on the joiner's worker
    g1.cancel();
    go_on.open();
    let seen_stop = bounded_join(joiner).unwrap().unwrap();
    assert!(!seen_stop, "a task outside g1 saw g1's cancel");
}
