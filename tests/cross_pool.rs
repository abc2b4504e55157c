//! Two pools whose tasks wait for each other's (issue 14, item 6): a worker
//! that waits for another pool's task or scope runs its own pool's queued
//! work meanwhile, so two one-thread pools that "install into each other"
//! (pool A's task joins pool B's task, which joins a task queued in A)
//! finish, where a worker that only blocked would deadlock. Every case runs
//! on a watched thread: a deadlock fails the test instead of hanging it.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;

use common::{TestPool, spawn};
use drainpool::{StopToken, TaskHandle, ThreadPool};

/// Pool A (one worker) runs `outer`, which hands `waits` the handle of a
/// task queued in A behind itself; `waits` gives back what `outer` returns.
fn a_task_waits_on_b_which_waits_on_a_queued_task(
    waits: impl FnOnce(&ThreadPool, TaskHandle<u32>) -> u32 + Send + 'static,
) -> u32 {
    let a = TestPool::new(1);
    let b = Arc::new(TestPool::new(1));
    let (handle_tx, handle_rx) = mpsc::channel::<TaskHandle<u32>>();
    let outer = {
        let b = b.clone();
        a.submit(move || {
            // Queued in A behind this very task, which holds A's only worker.
            let queued_in_a = handle_rx.recv().unwrap();
            waits(&b, queued_in_a)
        })
        .unwrap()
    };
    handle_tx.send(a.submit(|| 40).unwrap()).unwrap();
    spawn(move || outer.join().unwrap()).join("A's task waiting on B waiting on A")
}

#[test]
fn a_join_on_another_pools_task_keeps_its_own_pool_moving() {
    let got = a_task_waits_on_b_which_waits_on_a_queued_task(|b, queued_in_a| {
        let on_b = b.submit(move || queued_in_a.join().unwrap() + 1).unwrap();
        on_b.join().unwrap() + 1
    });
    assert_eq!(got, 42);
}

#[test]
fn wait_task_and_wait_timeout_on_another_pools_task_keep_their_pool_moving() {
    let got = a_task_waits_on_b_which_waits_on_a_queued_task(|b, queued_in_a| {
        let on_b = b.submit(move || queued_in_a.join().unwrap() + 1).unwrap();
        StopToken::current().wait_task(&on_b).unwrap();
        assert!(on_b.wait_timeout(common::WAIT));
        on_b.join().unwrap() + 1
    });
    assert_eq!(got, 42);
}

#[test]
fn a_scope_on_another_pool_keeps_the_openers_pool_moving() {
    let got = a_task_waits_on_b_which_waits_on_a_queued_task(|b, queued_in_a| {
        let mut out = 0;
        b.scope(|s| {
            s.spawn(|| out = queued_in_a.join().unwrap() + 2);
        });
        out
    });
    assert_eq!(got, 42);
}

#[test]
fn a_scoped_handle_joined_from_another_pools_worker_keeps_that_pool_moving() {
    let got = a_task_waits_on_b_which_waits_on_a_queued_task(|b, queued_in_a| {
        b.scope(|s| {
            let on_b = s.spawn(|| queued_in_a.join().unwrap() + 1);
            on_b.join().unwrap() + 1
        })
    });
    assert_eq!(got, 42);
}

/// Many rounds of the mutual case, alternating directions, with the waited
/// for tasks queued as a batch (chunks) behind the waiting task: every task
/// runs once, and no round deadlocks.
#[test]
fn pools_waiting_on_each_other_in_both_directions_never_deadlock() {
    let a = Arc::new(TestPool::new(1));
    let b = Arc::new(TestPool::new(1));
    let ran = Arc::new(AtomicUsize::new(0));
    let rounds = 200;
    let driver = {
        let (a, b, ran) = (a.clone(), b.clone(), ran.clone());
        spawn(move || {
            for round in 0..rounds {
                let (first, second) = if round % 2 == 0 { (&a, &b) } else { (&b, &a) };
                let (handles_tx, handles_rx) = mpsc::channel::<Vec<TaskHandle<()>>>();
                let second = second.clone();
                // Holds `first`'s only worker while the batch queues behind it.
                let outer = first
                    .submit(move || {
                        let queued = handles_rx.recv().unwrap();
                        second
                            .submit(move || {
                                for handle in queued {
                                    handle.join().unwrap();
                                }
                            })
                            .unwrap()
                            .join()
                            .unwrap();
                    })
                    .unwrap();
                let batch: Vec<_> = (0..64)
                    .map(|_| {
                        let ran = ran.clone();
                        move || {
                            ran.fetch_add(1, Ordering::Relaxed);
                        }
                    })
                    .collect();
                handles_tx.send(first.submit_batch(batch).unwrap()).unwrap();
                outer.join().unwrap();
            }
        })
    };
    driver.join("rounds of pools waiting on each other");
    assert_eq!(ran.load(Ordering::Relaxed), rounds * 64);
}
