//! A group on a bounded queue: groups share the pool's bound, and a
//! group's blocked `execute` is refused when the pool shuts down or the
//! group is cancelled.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;

use crate::common::{BRIEF, Gate, TestPool, WAIT, bounded_join, bump, spawn};
use crate::{counts, quiescent};
use drainpool::{RejectReason, ThreadPool};

fn bounded_pool(capacity: usize) -> TestPool {
    TestPool::build(ThreadPool::builder().threads(1).queue_capacity(capacity))
}

#[test]
fn a_full_bounded_queue_refuses_a_groups_try_execute() {
    let pool = bounded_pool(2);
    let gate = Gate::occupying(&pool, 1);
    let job = pool.group("job");
    let ran = Arc::new(AtomicUsize::new(0));
    job.try_execute(bump(&ran)).unwrap();
    job.try_execute(bump(&ran)).unwrap();
    let rejected = job.try_execute(bump(&ran)).unwrap_err();
    assert_eq!(rejected.reason(), RejectReason::QueueFull);
    rejected.into_inner()();
    assert_eq!(ran.load(Ordering::SeqCst), 1, "handed back whole");
    let rejected = job.try_submit(|| 9).unwrap_err();
    assert_eq!(rejected.reason(), RejectReason::QueueFull);
    assert_eq!(rejected.into_inner()(), 9);
    assert_eq!(
        pool.try_execute(|| ()).unwrap_err().reason(),
        RejectReason::QueueFull,
        "groups share the pool's bound"
    );

    // Cancelling the group frees its places.
    assert_eq!(job.cancel(), 2);
    let other = pool.group("other");
    other.try_execute(bump(&ran)).unwrap();
    let handle = other.try_submit(|| 1).unwrap();
    gate.release();
    assert_eq!(bounded_join(handle).unwrap(), 1);
    assert!(other.wait(WAIT));
    assert_eq!(ran.load(Ordering::SeqCst), 2);
}

#[test]
fn a_groups_execute_blocked_on_a_full_queue_wakes_refused_on_shutdown() {
    let pool = bounded_pool(2);
    let gate = Gate::occupying(&pool, 1);
    let job = pool.group("job");
    let ran = Arc::new(AtomicUsize::new(0));
    job.execute(bump(&ran)).unwrap();
    job.execute(bump(&ran)).unwrap();
    let blocked = {
        let (job, ran) = (job.clone(), ran.clone());
        spawn(move || job.execute(bump(&ran)).map_err(|r| r.reason()))
    };
    thread::sleep(BRIEF);
    assert!(!blocked.is_finished(), "blocked while the queue is full");
    pool.shutdown();
    assert_eq!(
        blocked.join("the blocked execute"),
        Err(RejectReason::Shutdown)
    );
    gate.release();
    assert!(pool.await_termination(WAIT));
    assert_eq!(ran.load(Ordering::SeqCst), 2, "the accepted ones drained");
    assert_eq!(counts(&job), quiescent(2, 2, 0, 0));
}

#[test]
fn a_groups_execute_blocked_on_a_full_queue_is_refused_when_the_group_is_cancelled() {
    let pool = bounded_pool(2);
    let gate = Gate::occupying(&pool, 1);
    let job = pool.group("job");
    job.execute(|| ()).unwrap();
    job.execute(|| ()).unwrap();
    let blocked = {
        let job = job.clone();
        spawn(move || job.execute(|| ()).map_err(|r| r.reason()))
    };
    thread::sleep(BRIEF);
    assert!(!blocked.is_finished(), "blocked while the queue is full");
    assert_eq!(job.cancel(), 2);
    assert_eq!(
        blocked.join("the blocked execute"),
        Err(RejectReason::Cancelled)
    );
    // The refused one gave its place back: the queue has room for two.
    pool.try_execute(|| ()).unwrap();
    pool.try_execute(|| ()).unwrap();
    gate.release();
    assert!(pool.wait_idle(WAIT));
    assert_eq!(counts(&job), quiescent(2, 0, 2, 0));
}
