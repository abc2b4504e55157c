//! Pausing and resuming a group: its tasks are held, in order, while
//! other groups go on.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::common::{BRIEF, DropCounter, Gate, Latch, TestPool, WAIT, bounded_join, bump};
use crate::{counts, finish, logged, push, quiescent};

#[test]
fn pause_holds_a_group_in_order_while_another_group_goes_on() {
    const N: usize = 200;
    const PAUSE_AT: usize = 50;
    let pool = TestPool::new(1);
    let job = pool.group("job");
    let log = Arc::new(Mutex::new(Vec::new()));
    // Task 0 holds the only worker until the group is paused.
    let (started, go) = (Latch::default(), Latch::default());
    {
        let (started, go, log) = (started.clone(), go.clone(), log.clone());
        job.execute(move || {
            log.lock().unwrap().push(0);
            started.open();
            go.wait();
        })
        .unwrap();
    }
    // Task PAUSE_AT pauses its own group: the tasks after it wait.
    let paused_itself = Latch::default();
    for k in 1..N {
        if k == PAUSE_AT {
            let (job2, log, latch) = (job.clone(), log.clone(), paused_itself.clone());
            job.execute(move || {
                log.lock().unwrap().push(k);
                job2.pause();
                latch.open();
            })
            .unwrap();
        } else {
            job.execute(push(&log, k)).unwrap();
        }
    }
    started.expect_open();
    job.pause();
    assert!(job.is_paused());
    go.open();

    // Another group runs through the pause.
    let other = pool.group("other");
    let handles: Vec<_> = (0..20)
        .map(|j| other.submit(move || j * 2).unwrap())
        .collect();
    for (j, handle) in handles.into_iter().enumerate() {
        assert_eq!(bounded_join(handle).unwrap(), j * 2);
    }
    assert!(other.wait(WAIT));
    assert_eq!(logged(&log), vec![0]);
    let held = job.progress();
    assert_eq!((held.completed, held.queued, held.running), (1, N - 1, 0));
    assert!(!job.wait(BRIEF), "still held");
    assert_eq!(logged(&log), vec![0]);

    job.resume(); // (task PAUSE_AT may pause it again at once)
    paused_itself.expect_open();
    // The task that paused the group ended; the others stay held.
    let other2 = other.submit(|| "after").unwrap();
    assert_eq!(bounded_join(other2).unwrap(), "after");
    assert_eq!(logged(&log), (0..=PAUSE_AT).collect::<Vec<_>>());
    assert!(job.is_paused());
    assert_eq!(job.progress().queued, N - 1 - PAUSE_AT);

    job.resume();
    assert!(job.wait(WAIT));
    assert_eq!(logged(&log), (0..N).collect::<Vec<_>>(), "in order");
    finish(&pool);
    assert_eq!(counts(&job), quiescent(N as u64, N as u64, 0, 0));
    assert_eq!(counts(&other), quiescent(21, 21, 0, 0));
}

#[test]
fn pause_and_resume_again_and_again_keep_the_order() {
    const N: usize = 2_000;
    let pool = TestPool::new(1);
    let job = pool.group("job");
    let other = pool.group("other");
    let log = Arc::new(Mutex::new(Vec::new()));
    let other_ran = Arc::new(AtomicUsize::new(0));
    for k in 0..N {
        job.execute(push(&log, k)).unwrap();
        if k % 10 == 0 {
            other.execute(bump(&other_ran)).unwrap();
        }
    }
    for _ in 0..200 {
        job.pause();
        job.resume();
    }
    assert!(job.wait(WAIT) && other.wait(WAIT));
    assert_eq!(logged(&log), (0..N).collect::<Vec<_>>());
    assert_eq!(other_ran.load(Ordering::SeqCst), N / 10);
}

#[test]
fn pause_after_shutdown_does_nothing() {
    let pool = TestPool::new(1);
    let gate = Gate::occupying(&pool, 1);
    let job = pool.group("job");
    let ran = Arc::new(AtomicUsize::new(0));
    for _ in 0..10 {
        job.execute(bump(&ran)).unwrap();
    }
    pool.shutdown();
    job.pause();
    assert!(!job.is_paused(), "a drain runs everything accepted");
    gate.release();
    assert!(pool.await_termination(WAIT));
    assert_eq!(ran.load(Ordering::SeqCst), 10);
    assert_eq!(counts(&job), quiescent(10, 10, 0, 0));
}

#[test]
fn dropping_every_clone_of_a_paused_group_loses_no_task() {
    let pool = TestPool::new(1);
    let job = pool.group("job");
    job.pause();
    let ran = Arc::new(AtomicUsize::new(0));
    let drops = DropCounter::default();
    for _ in 0..3 {
        let (ran, tracked) = (ran.clone(), drops.tracked());
        job.execute(move || {
            ran.fetch_add(1, Ordering::SeqCst);
            drop(tracked);
        })
        .unwrap();
    }
    // "Dropping every clone does not cancel the group; its tasks still run."
    drop(job);
    let dropped_never_started = drops.count();
    pool.shutdown(); // resumes paused groups: the drain runs them
    assert!(pool.await_termination(WAIT));
    let ran = ran.load(Ordering::SeqCst);
    let stats = pool.stats();
    assert!(
        dropped_never_started == 0 && ran == 3 && stats.completed == 3,
        "dropping the last clone of a paused group dropped {dropped_never_started} of its 3 \
         queued tasks, never started; then the drain ran {ran}; the pool counts completed {}, \
         cancelled {}",
        stats.completed,
        stats.cancelled
    );
}
