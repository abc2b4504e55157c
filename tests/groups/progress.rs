//! A group's progress and wait: the counts add up at every moment, and
//! `wait` says when every task has ended.

use std::panic;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use crate::common::{
    BRIEF, Gate, Latch, TestPool, WAIT, at_once, bounded_join, bump, spawn, still_blocked,
};
use crate::{
    Counts, Deliberate, assert_adds_up, counts, finish, quiescent, quiet_deliberate_panics,
    quiet_pool,
};

#[test]
fn progress_counts_queued_running_and_ended_tasks() {
    quiet_deliberate_panics();
    let pool = quiet_pool(2);
    let job = pool.group("job");
    assert_eq!(counts(&job), Counts::default());

    let gate = Gate::new();
    job.execute(gate.task()).unwrap();
    gate.wait_entered(1);
    let p = job.progress();
    assert_eq!((p.submitted, p.queued, p.running), (1, 0, 1));

    job.pause();
    for _ in 0..5 {
        job.execute(|| ()).unwrap();
    }
    job.execute(|| panic::panic_any(Deliberate)).unwrap();
    let cancelled = job.submit(|| ()).unwrap();
    let p = job.progress();
    assert_eq!((p.submitted, p.queued, p.running), (8, 7, 1));
    assert_adds_up(p);

    gate.release();
    assert!(cancelled.cancel());
    job.resume();
    assert!(job.wait(WAIT));
    finish(&pool);
    assert_eq!(
        counts(&job),
        Counts {
            submitted: 8,
            completed: 6,
            panicked: 1,
            cancelled: 1,
            ..Counts::default()
        }
    );
    let stats = pool.stats();
    assert_eq!(
        (stats.completed, stats.panicked, stats.cancelled),
        (6, 1, 1)
    );
}

#[test]
fn a_paused_groups_progress_adds_up() {
    // Two ways a task of a paused group ends while its entry is still in
    // the group's mailbox: cancelled through its handle, and run by a
    // worker joining it. Either way, it is no longer queued.
    let pool = TestPool::new(1);
    let job = pool.group("paused");
    job.pause();
    let cancelled = job.submit(|| 1).unwrap();
    let helped = job.submit(|| 2).unwrap();
    let waiting = job.submit(|| 3).unwrap();
    assert!(cancelled.cancel());
    // A worker of the pool joining a queued task runs it itself.
    let joiner = pool.submit(move || helped.join().unwrap()).unwrap();
    assert_eq!(bounded_join(joiner).unwrap(), 2);
    let p = job.progress();
    assert_eq!((p.completed, p.cancelled, p.running), (1, 1, 0));
    assert_eq!(p.queued, 1, "only the task still waiting is queued: {p:?}");
    assert_adds_up(p);
    job.resume();
    assert_eq!(bounded_join(waiting).unwrap(), 3);
}

#[test]
fn once_wait_returns_the_progress_adds_up() {
    // `wait` says every task has ended; `progress` taken right after must
    // not still count one of them as running (on top of completed).
    const ROUNDS: usize = 5_000;
    let pool = TestPool::new(2);
    let mut lagging = Vec::new();
    for round in 0..ROUNDS {
        let job = pool.group("job");
        job.execute(|| ()).unwrap();
        drop(job.submit(|| ()).unwrap());
        assert!(job.wait(WAIT));
        let p = job.progress();
        if p.running != 0 || p.completed != 2 {
            lagging.push((round, Counts::from(p)));
        }
    }
    assert!(
        lagging.is_empty(),
        "{} of {ROUNDS} rounds: progress() right after wait() returned true still counted a \
         task running; first: {:?}",
        lagging.len(),
        lagging.first()
    );
}

#[test]
fn wait_is_true_when_done_and_false_on_timeout() {
    let pool = TestPool::new(1);
    let job = pool.group("job");
    assert!(job.wait(Duration::ZERO), "an empty group is done");
    let go = Latch::default();
    let (started_tx, started_rx) = mpsc::channel();
    {
        let go = go.clone();
        job.execute(move || {
            started_tx.send(()).unwrap();
            go.wait();
        })
        .unwrap();
    }
    job.execute(|| ()).unwrap();
    started_rx.recv_timeout(WAIT).unwrap();
    assert!(!job.wait(Duration::ZERO));
    let start = Instant::now();
    assert!(!job.wait(BRIEF));
    assert!(start.elapsed() >= BRIEF, "waited the timeout out");

    let forever = {
        let job = job.clone();
        spawn(move || job.wait(Duration::MAX))
    };
    thread::sleep(BRIEF);
    assert!(!forever.is_finished(), "Duration::MAX waits");
    go.open();
    assert!(forever.join("wait(Duration::MAX)"));
    assert!(job.wait(Duration::ZERO));
    assert!(job.wait(WAIT));
    finish(&pool);
    assert_eq!(counts(&job), quiescent(2, 2, 0, 0));
}

#[test]
fn group_wait_with_zero_and_max() {
    let pool = TestPool::new(1);
    let group = pool.group("g");
    assert!(at_once("an empty group's wait(ZERO)", || {
        group.wait(Duration::ZERO)
    }));
    let gate = Gate::new();
    group.execute(gate.task()).unwrap();
    gate.wait_entered(1);
    let ran = Arc::new(AtomicUsize::new(0));
    group.execute(bump(&ran)).unwrap();
    assert!(!at_once("wait(ZERO) while running", || {
        group.wait(Duration::ZERO)
    }));
    let waiter = spawn({
        let group = group.clone();
        move || group.wait(Duration::MAX)
    });
    still_blocked("TaskGroup::wait(MAX)", &waiter);
    gate.release();
    assert!(waiter.join("TaskGroup::wait(Duration::MAX)"));
    assert_eq!(ran.load(SeqCst), 1);
    assert!(group.wait(Duration::ZERO));
    // A paused group's queued task has not ended: ZERO says so at once.
    group.pause();
    group.execute(bump(&ran)).unwrap();
    assert!(!at_once("a paused group's wait(ZERO)", || {
        group.wait(Duration::ZERO)
    }));
    group.resume();
    assert!(group.wait(WAIT));
    assert_eq!(ran.load(SeqCst), 2);
}

/// Regression (issue 12, defect 12): `TaskGroup::wait` from a task of that
/// group waited for itself, forever. It returns false at once.
#[test]
fn group_wait_from_a_task_of_that_group_returns_at_once() {
    let pool = TestPool::new(2);
    let group = pool.group("self");
    let inner = group.clone();
    let waited = group.submit(move || inner.wait(Duration::MAX)).unwrap();
    assert!(!bounded_join(waited).unwrap());
    assert!(group.wait(WAIT));
}
