//! The RAII side of `token.lock`: its guard is released when its task
//! panics, a task blocked in it behind a stuck task does not hold up
//! `shutdown_now`, and a cancelled task never takes the lock.

use std::sync::{Arc, mpsc};
use std::thread;
use std::time::Instant;

use crate::PROMPT;
use crate::common::{BRIEF, WAIT, named_pool, sleep_until_stopped};
use drainpool::{Interrupted, StopToken, TaskError, ThreadPool};
use parking_lot::Mutex;

#[test]
fn a_guard_from_token_lock_is_released_when_its_task_panics() {
    let pool = named_pool(1, "raii");
    let data = Arc::new(Mutex::new(0u32));

    let in_task = data.clone();
    let panicker = pool
        .submit(move || {
            let mut guard = StopToken::current().lock(&in_task).unwrap();
            *guard += 1;
            if *guard == 1 {
                panic!("panic while holding the guard");
            }
            thread::current().name().map(str::to_owned)
        })
        .unwrap();
    let err = panicker.join().unwrap_err();
    assert!(err.is_panic());
    assert_eq!(err.panic_message(), Some("panic while holding the guard"));
    assert!(!data.is_locked(), "the unwind released the lock");

    // The next task (on the same, surviving worker) takes the lock.
    let in_task = data.clone();
    let next = pool
        .submit(move || {
            let mut guard = StopToken::current().lock(&in_task)?;
            *guard += 1;
            Ok::<_, Interrupted>((*guard, thread::current().name().map(str::to_owned)))
        })
        .unwrap();
    assert!(next.wait_timeout(WAIT), "the next task never got the lock");
    let (value, thread_name) = next.join().unwrap().unwrap();
    assert_eq!(value, 2, "the panicking task's write stayed");
    assert_eq!(thread_name.as_deref(), Some("raii-0"));

    let stats = pool.stats();
    assert_eq!(stats.threads, 1, "the worker survived");
    assert_eq!(stats.panicked, 1);
    assert_eq!(stats.completed, 1);
    pool.shutdown();
    assert!(pool.await_termination(WAIT));
}

#[test]
fn a_task_blocked_in_token_lock_behind_a_stuck_task_does_not_block_shutdown_now() {
    let pool = ThreadPool::new(2).unwrap();
    let lock = Arc::new(Mutex::new(()));
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let (held_tx, held_rx) = mpsc::channel();

    // Stuck: holds the lock and ignores every stop request until the test
    // lets go (bounded, so a failure cannot hang the run).
    let in_stuck = lock.clone();
    let stuck = pool
        .task()
        .name("stuck")
        .submit(move || {
            let _guard = in_stuck.lock();
            held_tx.send(()).unwrap();
            let _ = release_rx.recv_timeout(WAIT);
        })
        .unwrap();
    held_rx.recv_timeout(WAIT).unwrap();

    let (ready_tx, ready_rx) = mpsc::channel();
    let in_blocked = lock.clone();
    let blocked = pool
        .task()
        .name("blocked")
        .submit(move || {
            ready_tx.send(()).unwrap();
            StopToken::current().lock(&in_blocked).map(drop)
        })
        .unwrap();
    ready_rx.recv_timeout(WAIT).unwrap();
    thread::sleep(BRIEF);
    assert!(!blocked.is_finished(), "took a lock the stuck task holds");

    let requested = Instant::now();
    let pending = pool.shutdown_now();
    assert!(pending.is_empty());
    assert!(
        blocked.wait_timeout(PROMPT),
        "token.lock was not interrupted by shutdown_now"
    );
    assert!(requested.elapsed() < PROMPT);
    assert_eq!(blocked.join().unwrap(), Err(Interrupted));

    // The pool is down to the stuck task alone.
    assert!(!pool.await_termination(BRIEF));
    assert_eq!(pool.running_tasks().len(), 1);
    assert_eq!(pool.running_tasks()[0].name.as_deref(), Some("stuck"));
    release_tx.send(()).unwrap();
    assert!(pool.await_termination(WAIT));
    assert!(stuck.join().is_ok());
    assert!(!lock.is_locked());
}

#[test]
fn a_cancelled_queued_task_never_takes_the_lock() {
    // A task cancelled before it starts stays never started: its lock
    // attempt is never made.
    let pool = ThreadPool::new(1).unwrap();
    let (started_tx, started_rx) = mpsc::channel();
    let blocker = pool.submit(sleep_until_stopped(started_tx, WAIT)).unwrap();
    started_rx.recv_timeout(WAIT).unwrap();
    let data = Arc::new(Mutex::new(0));
    let in_task = data.clone();
    let queued = pool
        .submit(move || {
            *StopToken::current().lock(&in_task).unwrap() += 1;
        })
        .unwrap();
    assert!(queued.cancel());
    assert!(matches!(queued.join(), Err(TaskError::Cancelled)));
    assert!(!blocker.cancel());
    assert_eq!(blocker.join().unwrap(), Err(Interrupted));
    pool.shutdown();
    assert!(pool.await_termination(WAIT));
    assert_eq!(*data.lock(), 0);
}
