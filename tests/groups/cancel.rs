//! Cancelling a group: what it drops and returns, when the closures are
//! released, and the refusals that follow.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crate::common::{DropCounter, Gate, TestPool, WAIT, bounded_join, bump};
use crate::{Counts, counts, finish, quiescent};
use drainpool::{RejectReason, TaskHandle};

#[test]
fn cancel_returns_how_many_it_dropped_and_later_submits_are_refused() {
    let pool = TestPool::new(1);
    let gate = Gate::occupying(&pool, 1);
    let group = pool.group("job");
    let ran = Arc::new(AtomicUsize::new(0));
    for _ in 0..5 {
        group.execute(bump(&ran)).unwrap();
    }
    let handles: Vec<_> = (0..3).map(|i| group.submit(move || i).unwrap()).collect();
    assert!(handles[1].cancel(), "cancelled through its handle first");
    assert!(!group.is_cancelled());
    assert_eq!(group.cancel(), 7, "5 executed + 2 submitted still queued");
    assert!(group.is_cancelled());
    assert_eq!(group.cancel(), 0, "a second cancel drops nothing");
    for handle in handles {
        assert!(handle.is_finished(), "resolved at once");
        assert!(handle.join().unwrap_err().is_cancelled());
    }

    let rejected = group.execute(bump(&ran)).unwrap_err();
    assert_eq!(rejected.reason(), RejectReason::Cancelled);
    rejected.into_inner()(); // the closure is ours again
    assert_eq!(ran.load(Ordering::SeqCst), 1);
    let rejected = group.submit(|| 42).unwrap_err();
    assert_eq!(rejected.reason(), RejectReason::Cancelled);
    assert_eq!(rejected.into_inner()(), 42);
    assert_eq!(
        group
            .task()
            .name("late")
            .execute(|| ())
            .unwrap_err()
            .reason(),
        RejectReason::Cancelled
    );
    assert_eq!(
        group.try_execute(|| ()).unwrap_err().reason(),
        RejectReason::Cancelled
    );

    // The pool itself goes on.
    let seven = pool.submit(|| 7).unwrap();
    gate.release();
    assert_eq!(bounded_join(seven).unwrap(), 7);
    assert!(group.wait(WAIT));
    assert!(pool.wait_idle(WAIT));
    assert_eq!(counts(&group), quiescent(8, 0, 8, 0));
    let stats = pool.stats();
    assert_eq!((stats.cancelled, stats.rejected), (8, 4));
    assert_eq!(ran.load(Ordering::SeqCst), 1, "no cancelled task ran");
}

#[test]
fn cancel_releases_the_queued_closures_before_it_returns() {
    const EACH: usize = 1_000;
    let pool = TestPool::new(1);
    let gate = Gate::occupying(&pool, 1);
    let group = pool.group("job");
    let drops = DropCounter::default();
    let mut handles = Vec::new();
    for _ in 0..EACH {
        let tracked = drops.tracked();
        group.execute(move || drop(tracked)).unwrap();
        let tracked = drops.tracked();
        handles.push(group.submit(move || drop(tracked)).unwrap());
    }
    assert_eq!(drops.count(), 0);
    assert_eq!(group.cancel(), 2 * EACH);
    // Not later, when a worker reaches the group's token: now. The handles
    // still exist, but the closures they shared are gone.
    assert_eq!(drops.count(), 2 * EACH);
    assert!(handles.iter().all(TaskHandle::is_finished));
    drop(gate);
    assert!(group.wait(WAIT));
    for handle in handles {
        assert!(handle.join().unwrap_err().is_cancelled());
    }
    assert_eq!(drops.count(), 2 * EACH, "and only once");
}

#[test]
fn a_big_cancelled_group_does_not_hold_up_another_groups_task() {
    const BIG: usize = 200_000;
    let pool = TestPool::new(2);
    let gate = Gate::occupying(&pool, 2);
    let big = pool.group("big");
    let drops = DropCounter::default();
    let ran = Arc::new(AtomicUsize::new(0));
    for _ in 0..BIG {
        let (tracked, ran) = (drops.tracked(), ran.clone());
        // If these ran, they would take 100 s on two workers.
        big.execute(move || {
            ran.fetch_add(1, Ordering::SeqCst);
            thread::sleep(Duration::from_millis(1));
            drop(tracked);
        })
        .unwrap();
    }
    let other = pool.group("other");
    let small = other.submit(|| 42).unwrap();
    assert_eq!(big.progress().queued, BIG);

    let start = Instant::now();
    assert_eq!(big.cancel(), BIG);
    let cancel_took = start.elapsed();
    assert_eq!(drops.count(), BIG, "released when cancel returns");
    assert_eq!(big.progress().queued, 0);
    gate.release();
    assert!(
        small.wait_timeout(WAIT),
        "the other group's task waited behind the cancelled ones"
    );
    let waited = start.elapsed();
    assert_eq!(small.join().unwrap(), 42);
    eprintln!("cancel of {BIG}: {cancel_took:?}; the other task had run {waited:?} after");
    assert!(big.wait(WAIT));
    finish(&pool);
    assert_eq!(ran.load(Ordering::SeqCst), 0);
    assert_eq!(counts(&big), quiescent(BIG as u64, 0, BIG as u64, 0));
    assert_eq!(counts(&other), quiescent(1, 1, 0, 0));
}

#[test]
fn cancelling_a_paused_group_drops_what_it_held() {
    let pool = TestPool::new(2);
    let job = pool.group("job");
    job.pause();
    let ran = Arc::new(AtomicUsize::new(0));
    let drops = DropCounter::default();
    for _ in 0..10 {
        let (ran, tracked) = (ran.clone(), drops.tracked());
        job.execute(move || {
            ran.fetch_add(1, Ordering::SeqCst);
            drop(tracked);
        })
        .unwrap();
    }
    assert_eq!(job.cancel(), 10);
    assert_eq!(drops.count(), 10);
    assert!(job.wait(Duration::ZERO), "nothing left to wait for");
    job.resume();
    finish(&pool);
    assert_eq!(ran.load(Ordering::SeqCst), 0);
    assert_eq!(counts(&job), quiescent(10, 0, 10, 0));
}

#[test]
fn a_group_of_a_pool_that_shut_down_refuses_tasks() {
    let pool = TestPool::new(1);
    pool.shutdown();
    let job = pool.group("late");
    let rejected = job.submit(|| 1).unwrap_err();
    assert_eq!(rejected.reason(), RejectReason::Shutdown);
    assert_eq!(rejected.into_inner()(), 1);
    assert_eq!(job.cancel(), 0);
    assert!(job.wait(Duration::ZERO));
    assert_eq!(counts(&job), Counts::default());
}
