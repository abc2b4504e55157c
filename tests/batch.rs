//! Batch intake: `execute_batch` and `submit_batch` pass the pool's intake
//! once for many tasks, all or nothing, in the order given.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{BRIEF, Gate, WAIT};
use drainpool::{RejectReason, ThreadPool};
use parking_lot::Mutex;

#[test]
fn a_batch_runs_every_task_in_the_order_given() {
    let pool = ThreadPool::new(1).unwrap();
    let gate = Gate::occupying(&pool, 1);
    let order = Arc::new(Mutex::new(Vec::new()));
    let tasks = (0..100).map(|i| {
        let order = order.clone();
        move || order.lock().push(i)
    });
    pool.execute_batch(tasks).unwrap();
    assert_eq!(pool.stats().queued, 100);
    gate.release();
    assert!(pool.wait_idle(WAIT));
    assert_eq!(*order.lock(), (0..100).collect::<Vec<_>>());
    assert_eq!(pool.stats().completed, 101); // with the gate's task
    pool.shutdown();
    assert!(pool.await_termination(WAIT));
}

#[test]
fn submit_batch_returns_the_handles_in_order() {
    let pool = ThreadPool::new(2).unwrap();
    let handles = pool
        .submit_batch((0..50u32).map(|i| move || i * 3))
        .unwrap();
    let values: Vec<u32> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(values, (0..50).map(|i| i * 3).collect::<Vec<_>>());
    assert!(
        pool.submit_batch(Vec::<fn() -> u8>::new())
            .unwrap()
            .is_empty()
    );
    pool.execute_batch(Vec::<fn()>::new()).unwrap();
    pool.shutdown();
    assert!(pool.await_termination(WAIT));
}

#[test]
fn a_refused_batch_comes_back_whole_and_in_order() {
    let pool = ThreadPool::new(1).unwrap();
    pool.shutdown();
    let ran = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..10)
        .map(|i| {
            let ran = ran.clone();
            move || {
                ran.fetch_add(i, Ordering::SeqCst);
            }
        })
        .collect();
    let rejected = pool.execute_batch(tasks).unwrap_err();
    assert_eq!(rejected.reason(), RejectReason::Shutdown);
    let back = rejected.into_inner();
    assert_eq!(back.len(), 10);
    for task in back {
        task(); // the caller owns them again
    }
    assert_eq!(ran.load(Ordering::SeqCst), 45);
    assert_eq!(pool.stats().rejected, 10);
    let rejected = pool.submit_batch((0..3).map(|i| move || i)).unwrap_err();
    assert_eq!(rejected.into_inner().len(), 3);
    assert_eq!(pool.stats().rejected, 13);
    assert!(pool.await_termination(WAIT));
}

#[test]
fn a_bounded_queue_takes_a_batch_whole_or_not_at_all() {
    let pool = ThreadPool::builder()
        .threads(1)
        .queue_capacity(4)
        .build()
        .unwrap();
    let gate = Gate::occupying(&pool, 1);
    // Larger than the capacity: it could never fit.
    let rejected = pool.execute_batch((0..5).map(|_| || ())).unwrap_err();
    assert_eq!(rejected.reason(), RejectReason::QueueFull);
    assert_eq!(rejected.into_inner().len(), 5);
    // Three places taken; a batch of two must wait for room for both.
    pool.execute_batch((0..3).map(|_| || ())).unwrap();
    let ran = Arc::new(AtomicUsize::new(0));
    let waiter = {
        let pool = Arc::new(pool);
        let for_thread = (pool.clone(), ran.clone());
        let thread = std::thread::spawn(move || {
            let (pool, ran) = for_thread;
            let tasks: Vec<_> = (0..2)
                .map(|_| {
                    let ran = ran.clone();
                    move || {
                        ran.fetch_add(1, Ordering::SeqCst);
                    }
                })
                .collect();
            pool.execute_batch(tasks).is_ok()
        });
        std::thread::sleep(BRIEF);
        assert!(
            !thread.is_finished(),
            "the batch waits for room for both tasks"
        );
        let stats = pool.stats();
        assert_eq!(stats.queued, 3, "none of it was queued meanwhile");
        assert_eq!(
            stats.blocked_submitters, 1,
            "the batch waits as one submitter"
        );
        gate.release();
        (pool, thread)
    };
    let (pool, thread) = waiter;
    assert!(thread.join().unwrap(), "accepted once there was room");
    assert!(pool.wait_idle(WAIT));
    assert_eq!(ran.load(Ordering::SeqCst), 2);
    pool.shutdown();
    assert!(pool.await_termination(WAIT));
}
