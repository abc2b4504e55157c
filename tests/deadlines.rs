//! Deadlines (issue 15): `start_within` expires a task not started in time,
//! at once and exactly once, whoever decides it (the timer, or a worker
//! that reaches it late); `time_limit` fires a running task's stop.
//!
//! Every wait here is bounded ([`bounded_join`], the [`Gate`]'s `WAIT`,
//! [`Spawned::join`]), so a broken deadline fails a test instead of
//! hanging it.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{BRIEF, DropCounter, Gate, TestPool, WAIT, bounded_join, capture_logs, logged};
use drainpool::crossbeam_channel::{bounded, unbounded};
use drainpool::{StopToken, TaskError, ThreadPool, WaitError};

/// The captured warnings that contain `needle`.
fn warned(needle: &str) -> Vec<String> {
    logged(log::Level::Warn, needle)
}

/// Waits (bounded) until `done`: for a task with no handle to join.
fn eventually(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !done() {
        assert!(Instant::now() < deadline, "{what}: not within {WAIT:?}");
        std::thread::yield_now();
    }
}

// ----- start deadlines ------------------------------------------------------------

#[test]
fn a_task_queued_behind_a_blocker_expires_at_its_deadline_without_a_worker() {
    capture_logs();
    let pool = TestPool::new(1);
    let gate = Gate::occupying(&pool, 1);
    let (drops, runs) = (DropCounter::default(), Arc::new(AtomicUsize::new(0)));
    let (tracked, ran) = (drops.tracked(), runs.clone());
    let submitted = Instant::now();
    let late = pool
        .task()
        .name("late reply")
        .start_within(Duration::from_millis(50))
        .submit(move || {
            let _keep = tracked;
            ran.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
    let err = bounded_join(late).unwrap_err();
    assert!(err.is_expired(), "{err:?}");
    assert!(
        submitted.elapsed() >= Duration::from_millis(50),
        "expired before its deadline"
    );
    // Its closure was dropped, and its end counted, before its handle
    // said so.
    assert_eq!(drops.count(), 1, "the closure is dropped at the deadline");
    assert_eq!(runs.load(Ordering::SeqCst), 0);
    // The only worker is still held: the timer, not a worker, expired it.
    let stats = pool.stats();
    assert_eq!((stats.expired, stats.queued, stats.active), (1, 0, 1));
    assert_eq!(warned("late reply").len(), 1, "{:?}", warned("late reply"));
    gate.release();
    pool.shutdown();
    assert!(pool.await_termination(WAIT));
    assert_eq!(runs.load(Ordering::SeqCst), 0, "it never runs, also later");
    let stats = pool.stats();
    assert_eq!((stats.completed, stats.expired, stats.cancelled), (1, 1, 0));
}

#[test]
fn a_task_that_starts_within_its_deadline_runs_and_the_timer_leaves_it() {
    let pool = TestPool::new(2);
    let handle = pool
        .task()
        .start_within(Duration::from_secs(60))
        .submit(|| 6 * 7)
        .unwrap();
    assert_eq!(bounded_join(handle).unwrap(), 42);
    let stats = pool.stats();
    assert_eq!((stats.completed, stats.expired), (1, 0));
}

#[test]
fn an_executed_task_with_a_deadline_expires_too_and_its_closure_is_dropped() {
    let pool = TestPool::new(1);
    let gate = Gate::occupying(&pool, 1);
    let drops = DropCounter::default();
    let tracked = drops.tracked();
    pool.task()
        .start_within(BRIEF)
        .execute(move || drop(tracked))
        .unwrap();
    eventually("expired", || pool.stats().expired == 1);
    assert_eq!(drops.count(), 1);
    gate.release();
}

#[test]
fn a_group_task_that_expires_counts_in_the_groups_progress_and_wait_returns() {
    let pool = TestPool::new(1);
    let gate = Gate::occupying(&pool, 1);
    let job = pool.group("import");
    let ran = Arc::new(AtomicUsize::new(0));
    let handles: Vec<_> = (0..3)
        .map(|_| {
            let ran = ran.clone();
            job.task()
                .start_within(BRIEF)
                .submit(move || ran.fetch_add(1, Ordering::SeqCst))
                .unwrap()
        })
        .collect();
    for handle in handles {
        assert!(bounded_join(handle).unwrap_err().is_expired());
    }
    assert_eq!(pool.stats().active, 1, "expired by the timer, not a worker");
    assert!(job.wait(WAIT), "a group whose tasks all expired is done");
    let progress = job.progress();
    assert_eq!(
        (progress.submitted, progress.expired, progress.queued),
        (3, 3, 0)
    );
    gate.release();
    assert_eq!(ran.load(Ordering::SeqCst), 0);
}

#[test]
fn a_deadline_of_zero_always_expires_whoever_reaches_it_first() {
    // The worker usually reaches these before the timer: the claim in the
    // run expires them; the timer's claim then finds nothing to do.
    let pool = TestPool::new(2);
    let drops = DropCounter::default();
    let handles: Vec<_> = (0..500)
        .map(|_| {
            let tracked = drops.tracked();
            pool.task()
                .start_within(Duration::ZERO)
                .submit(move || drop(tracked))
                .unwrap()
        })
        .collect();
    for handle in handles {
        assert!(bounded_join(handle).unwrap_err().is_expired());
    }
    assert_eq!(drops.count(), 500);
    let stats = pool.stats();
    assert_eq!((stats.expired, stats.completed), (500, 0));
}

#[test]
fn deadlines_racing_workers_end_every_task_exactly_once() {
    // Deadlines spread around the time the workers reach the tasks: some
    // run, some expire, and the books add up.
    let pool = TestPool::new(2);
    let runs: Arc<Vec<AtomicUsize>> = Arc::new((0..2000).map(|_| AtomicUsize::new(0)).collect());
    let drops = DropCounter::default();
    let handles: Vec<_> = (0..2000)
        .map(|i| {
            let (runs, tracked) = (runs.clone(), drops.tracked());
            pool.task()
                .start_within(Duration::from_micros((i % 50) as u64 * 20))
                .submit(move || {
                    let _keep = tracked;
                    runs[i].fetch_add(1, Ordering::SeqCst);
                    std::hint::black_box((0..200).sum::<u64>())
                })
                .unwrap()
        })
        .collect();
    let (mut ran, mut expired) = (0, 0);
    for (i, handle) in handles.into_iter().enumerate() {
        match bounded_join(handle) {
            Ok(_) => {
                assert_eq!(runs[i].load(Ordering::SeqCst), 1);
                ran += 1;
            }
            Err(e) => {
                assert!(e.is_expired(), "task {i}: {e:?}");
                assert_eq!(
                    runs[i].load(Ordering::SeqCst),
                    0,
                    "task {i} ran, yet expired"
                );
                expired += 1;
            }
        }
    }
    assert_eq!(drops.count(), 2000);
    pool.shutdown();
    assert!(pool.await_termination(WAIT));
    let stats = pool.stats();
    assert_eq!((stats.completed, stats.expired), (ran, expired));
    assert!(expired > 0, "the deadlines never bit");
}

#[test]
fn an_expired_task_frees_its_room_in_a_bounded_queue() {
    let pool = TestPool::build(ThreadPool::builder().threads(1).queue_capacity(1));
    let gate = Gate::occupying(&pool, 1);
    let late = pool.task().start_within(BRIEF).submit(|| ()).unwrap();
    assert!(pool.try_execute(|| ()).is_err(), "the queue is full");
    assert!(bounded_join(late).unwrap_err().is_expired());
    assert_eq!(pool.stats().active, 1, "expired by the timer, not a worker");
    pool.try_execute(|| ())
        .expect("the expired task gave its room back");
    gate.release();
}

#[test]
fn shutdown_now_hands_back_a_task_before_its_deadline_and_the_holder_may_run_it_late() {
    let pool = TestPool::new(1);
    let gate = Gate::occupying(&pool, 1);
    let handle = pool
        .task()
        .start_within(BRIEF)
        .submit(|| "ran late, by its holder")
        .unwrap();
    let back = pool.shutdown_now();
    assert_eq!(back.len(), 1);
    // Past the deadline: the pool no longer holds it, so it does not expire.
    let past = Instant::now() + BRIEF * 2;
    while Instant::now() < past {
        std::thread::yield_now();
    }
    assert!(!handle.is_finished(), "a handed-back task is its holder's");
    for task in back {
        task.run();
    }
    assert_eq!(bounded_join(handle).unwrap(), "ran late, by its holder");
    gate.release();
    assert_eq!(pool.stats().expired, 0);
}

#[test]
fn shutdown_now_does_not_hand_back_an_expired_task() {
    let pool = TestPool::new(1);
    let gate = Gate::occupying(&pool, 1);
    let late = pool.task().start_within(BRIEF).submit(|| ()).unwrap();
    let kept = pool.submit(|| ()).unwrap();
    assert!(bounded_join(late).unwrap_err().is_expired());
    assert_eq!(pool.stats().active, 1, "expired by the timer, not a worker");
    let back = pool.shutdown_now();
    let ids: Vec<_> = back.iter().map(|task| task.id()).collect();
    assert_eq!(ids, [kept.id()], "only the task that had not expired");
    gate.release();
}

// ----- time limits ------------------------------------------------------------------

#[test]
fn a_time_limit_wakes_a_task_blocked_in_recv_with_interrupted() {
    capture_logs();
    let pool = TestPool::new(1);
    let (_keep_open, rx) = unbounded::<u32>();
    let started = Instant::now();
    let handle = pool
        .task()
        .name("poll forever")
        .time_limit(Duration::from_millis(50))
        .submit(move || StopToken::current().recv(&rx))
        .unwrap();
    assert!(matches!(
        bounded_join(handle).unwrap(),
        Err(WaitError::Interrupted)
    ));
    assert!(started.elapsed() >= Duration::from_millis(50));
    assert_eq!(
        warned("poll forever").len(),
        1,
        "{:?}",
        warned("poll forever")
    );
}

#[test]
fn a_task_that_ignores_its_time_limit_is_listed_as_over_it_until_it_ends() {
    let pool = TestPool::new(1);
    let (release, released) = bounded::<()>(0);
    pool.task()
        .name("stubborn")
        .time_limit(BRIEF)
        .execute(move || {
            let _ = released.recv_timeout(WAIT);
        })
        .unwrap();
    let deadline = Instant::now() + WAIT;
    let listed = loop {
        let running = pool.running_tasks();
        if let Some(task) = running.iter().find(|t| t.over_time_limit().is_some()) {
            break task.clone();
        }
        assert!(Instant::now() < deadline, "never listed as over its limit");
        std::thread::yield_now();
    };
    assert_eq!(listed.over_time_limit(), Some(BRIEF));
    assert!(listed.running_for >= BRIEF, "{listed}");
    let line = listed.to_string();
    assert!(
        line.contains("(stubborn)") && line.contains("over its time limit of 50ms"),
        "{line}"
    );
    release.send(()).unwrap();
    assert!(pool.wait_idle(WAIT));
    // Unlisted once it ended: the next task on the same worker is not over.
    let (release, released) = bounded::<()>(0);
    pool.execute(move || {
        let _ = released.recv_timeout(WAIT);
    })
    .unwrap();
    let deadline = Instant::now() + WAIT;
    let running = loop {
        let running = pool.running_tasks();
        if !running.is_empty() {
            break running;
        }
        assert!(Instant::now() < deadline, "the second task never started");
        std::thread::yield_now();
    };
    assert_eq!(running[0].over_time_limit(), None);
    release.send(()).unwrap();
}

#[test]
fn a_task_that_ends_within_its_time_limit_is_never_stopped() {
    let pool = TestPool::new(2);
    let handles: Vec<_> = (0..200)
        .map(|i| {
            pool.task()
                .time_limit(Duration::from_secs(60))
                .submit(move || (i, StopToken::current().is_stop_requested()))
                .unwrap()
        })
        .collect();
    for (i, handle) in handles.into_iter().enumerate() {
        assert_eq!(bounded_join(handle).unwrap(), (i, false));
    }
}

#[test]
fn a_time_limit_fires_the_stop_of_that_task_only() {
    let pool = TestPool::new(2);
    let (_keep_open, rx) = unbounded::<u32>();
    let other_rx = rx.clone();
    let limited = pool
        .task()
        .time_limit(BRIEF)
        .submit(move || StopToken::current().recv(&rx))
        .unwrap();
    let (tx, stopped) = unbounded();
    let other = pool
        .submit(move || {
            let token = StopToken::current();
            let _ = stopped.recv_timeout(WAIT);
            (token.is_stop_requested(), other_rx.len())
        })
        .unwrap();
    assert!(matches!(
        bounded_join(limited).unwrap(),
        Err(WaitError::Interrupted)
    ));
    tx.send(()).unwrap();
    assert_eq!(bounded_join(other).unwrap(), (false, 0));
}

#[test]
fn a_cancel_before_the_deadline_decides_and_the_timer_counts_nothing() {
    // A deadline in a group that is cancelled first: the cancel decides,
    // the timer's later claim finds the task ended, and nothing counts twice.
    let pool = TestPool::new(1);
    let gate = Gate::occupying(&pool, 1);
    let job = pool.group("cancelled first");
    let handle = job.task().start_within(BRIEF).submit(|| ()).unwrap();
    // Registered later, due later: once it has expired, the timer is past
    // the group task's deadline.
    let sentinel = pool.task().start_within(BRIEF).submit(|| ()).unwrap();
    job.cancel();
    assert!(bounded_join(handle).unwrap_err().is_cancelled());
    assert!(bounded_join(sentinel).unwrap_err().is_expired());
    let progress = job.progress();
    assert_eq!((progress.cancelled, progress.expired), (1, 0));
    assert_eq!(pool.stats().expired, 1, "the sentinel alone");
    gate.release();
}

#[test]
fn task_error_expired_says_what_happened() {
    let err = TaskError::Expired;
    assert!(err.is_expired() && !err.is_cancelled() && !err.is_panic());
    assert_eq!(
        err.to_string(),
        "task expired: it did not start within its deadline"
    );
}
