//! The pool's lifecycle: `Running → ShuttingDown → Stopping → Terminated`,
//! the calls that move it and wait on it, and what it reports about itself.
//! (How it is built, or refuses to be, is `builder.rs`.)

mod common;

use std::sync::atomic::{AtomicUsize, Ordering, Ordering::SeqCst};
use std::sync::{Arc, Mutex, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use common::{
    AT_ONCE, BRIEF, Gate, LeakOnPanic, WAIT, at_once, bounded_join, bump, named_pool, spawn,
    still_blocked,
};
use drainpool::{PoolState, ShutdownPolicy, ThreadPool};

// Each call moves the state forward only, and an observer sampling it throughout never sees it
// go back.
#[test]
fn states_only_move_forward() {
    let pool = Arc::new(ThreadPool::new(2).unwrap());
    let gate = Gate::occupying(&pool, 1);

    // An observer sampling the state the whole time never sees it go back.
    let (first_tx, first_rx) = mpsc::channel();
    let observer = {
        let pool = pool.clone();
        thread::spawn(move || {
            let deadline = Instant::now() + WAIT;
            let mut seen = vec![pool.state()];
            first_tx.send(()).unwrap();
            while *seen.last().unwrap() != PoolState::Terminated {
                assert!(Instant::now() < deadline, "never terminated: {seen:?}");
                let now = pool.state();
                assert!(
                    now >= *seen.last().unwrap(),
                    "went back: {seen:?} then {now:?}"
                );
                if now != *seen.last().unwrap() {
                    seen.push(now);
                }
                thread::yield_now();
            }
            seen
        })
    };

    first_rx.recv_timeout(WAIT).unwrap();
    assert_eq!(pool.state(), PoolState::Running);
    assert!(!pool.is_shutdown());
    assert!(!pool.is_terminated());

    pool.shutdown();
    assert_eq!(pool.state(), PoolState::ShuttingDown);
    assert!(pool.is_shutdown());
    assert!(!pool.is_terminated());

    assert!(pool.shutdown_now().is_empty());
    assert_eq!(pool.state(), PoolState::Stopping);
    pool.shutdown(); // must not move it back
    assert_eq!(pool.state(), PoolState::Stopping);
    assert!(pool.is_shutdown());
    assert!(!pool.is_terminated());

    gate.release();
    assert!(pool.await_termination(WAIT));
    assert_eq!(pool.state(), PoolState::Terminated);
    assert!(pool.is_shutdown());
    assert!(pool.is_terminated());

    // Nothing moves a terminated pool.
    pool.shutdown();
    assert!(pool.shutdown_now().is_empty());
    assert_eq!(pool.state(), PoolState::Terminated);

    let seen = observer.join().unwrap();
    assert_eq!(seen.first(), Some(&PoolState::Running));
    assert_eq!(seen.last(), Some(&PoolState::Terminated));
}

// Running → Stopping directly (no stop in ShuttingDown), then Terminated.
#[test]
fn shutdown_now_from_running_skips_shutting_down() {
    let pool = ThreadPool::new(1).unwrap();
    assert!(pool.shutdown_now().is_empty());
    assert!(matches!(
        pool.state(),
        PoolState::Stopping | PoolState::Terminated
    ));
    assert!(pool.await_termination(WAIT));
    assert_eq!(pool.state(), PoolState::Terminated);
}

// Repeated shutdown() returns at once while a task is held; nothing changes.
#[test]
fn shutdown_is_idempotent_and_does_not_wait_for_tasks() {
    let pool = ThreadPool::new(1).unwrap();
    let gate = Gate::new();
    let held = pool.submit(gate.task()).unwrap();
    gate.wait_entered(1);

    for _ in 0..3 {
        pool.shutdown();
        // Returned while the task is still held: shutdown did not wait.
        assert!(!held.is_finished());
        assert_eq!(pool.state(), PoolState::ShuttingDown);
    }

    gate.release();
    assert!(held.wait_timeout(WAIT));
    assert!(pool.await_termination(WAIT));
    pool.shutdown();
    assert_eq!(pool.state(), PoolState::Terminated);
    assert_eq!(pool.stats().completed, 1);
}

// False (after the full timeout) while a task is held, true once it ends; ZERO and MAX work.
#[test]
fn await_termination_times_out_while_a_task_is_held() {
    let pool = ThreadPool::new(2).unwrap();
    let gate = Gate::occupying(&pool, 1);

    // Running and not shut down: cannot terminate.
    assert!(!pool.await_termination(Duration::ZERO));
    assert!(!pool.await_termination(BRIEF));

    pool.shutdown();
    assert!(!pool.await_termination(Duration::ZERO));
    let start = Instant::now();
    assert!(!pool.await_termination(BRIEF));
    assert!(
        start.elapsed() >= BRIEF,
        "returned false before the timeout"
    );
    assert!(!pool.is_terminated());

    gate.release();
    assert!(pool.await_termination(WAIT));
    assert!(pool.await_termination(Duration::ZERO));
    assert!(pool.await_termination(Duration::MAX));
}

/// `wait(pool, Duration::MAX)` on another thread, while the only worker of
/// `pool` (shut down first if `shut_down`) is held: it stays blocked (and
/// does not panic on `now + MAX`), and returns true once the worker is
/// released.
fn duration_max_waits_without_overflow(shut_down: bool, wait: fn(&ThreadPool, Duration) -> bool) {
    let pool = Arc::new(ThreadPool::new(1).unwrap());
    let gate = Gate::occupying(&pool, 1);
    if shut_down {
        pool.shutdown();
    }

    let (tx, rx) = mpsc::channel();
    let waiter = {
        let pool = pool.clone();
        thread::spawn(move || tx.send(wait(&pool, Duration::MAX)).unwrap())
    };
    // Still blocked (and not panicked on `now + MAX`).
    assert_eq!(rx.recv_timeout(BRIEF), Err(mpsc::RecvTimeoutError::Timeout));

    gate.release();
    assert_eq!(rx.recv_timeout(WAIT), Ok(true));
    waiter.join().unwrap();
}

#[test]
fn await_termination_with_duration_max_waits_without_overflow() {
    duration_max_waits_without_overflow(true, ThreadPool::await_termination);
}

#[test]
fn await_termination_with_zero_and_max() {
    let pool = Arc::new(ThreadPool::new(1).unwrap());
    let _leak = LeakOnPanic(pool.clone());
    let gate = Gate::occupying(&pool, 1);
    assert!(!at_once("await_termination(ZERO) while running", || {
        pool.await_termination(Duration::ZERO)
    }));
    pool.shutdown();
    assert!(!at_once("await_termination(ZERO) while draining", || {
        pool.await_termination(Duration::ZERO)
    }));
    let waiter = spawn({
        let pool = pool.clone();
        move || pool.await_termination(Duration::MAX)
    });
    still_blocked("await_termination(MAX)", &waiter);
    gate.release();
    assert!(waiter.join("await_termination(Duration::MAX)"));
    assert!(at_once("await_termination(ZERO) once terminated", || {
        pool.await_termination(Duration::ZERO)
    }));
    assert!(pool.await_termination(Duration::MAX));
}

// on_terminated sees every on_thread_exit done, runs once, and before await_termination says true.
#[test]
fn on_terminated_runs_once_after_every_worker_exited() {
    const THREADS: usize = 4;
    let started = Arc::new(AtomicUsize::new(0));
    let exited = Arc::new(AtomicUsize::new(0));
    let calls = Arc::new(AtomicUsize::new(0));
    // `exited` as on_terminated saw it.
    let exited_seen = Arc::new(AtomicUsize::new(usize::MAX));
    let pool = {
        let (started, exited, calls, exited_seen) = (
            started.clone(),
            exited.clone(),
            calls.clone(),
            exited_seen.clone(),
        );
        let exited_hook = exited.clone();
        ThreadPool::builder()
            .threads(THREADS)
            .on_thread_start(move |_| {
                started.fetch_add(1, Ordering::SeqCst);
            })
            .on_thread_exit(move |_| {
                exited_hook.fetch_add(1, Ordering::SeqCst);
            })
            .on_terminated(move || {
                exited_seen.store(exited.load(Ordering::SeqCst), Ordering::SeqCst);
                calls.fetch_add(1, Ordering::SeqCst);
            })
            .build()
            .unwrap()
    };
    let pool = Arc::new(pool);
    let gate = Gate::occupying(&pool, THREADS);

    // A waiter blocked before shutdown: when it wakes with true, the hook
    // has already run.
    let waiter = {
        let (pool, calls) = (pool.clone(), calls.clone());
        thread::spawn(move || {
            let terminated = pool.await_termination(WAIT);
            (terminated, calls.load(Ordering::SeqCst))
        })
    };

    pool.shutdown();
    assert_eq!(
        calls.load(Ordering::SeqCst),
        0,
        "ran before the workers exited"
    );
    gate.release();

    assert_eq!(waiter.join().unwrap(), (true, 1));
    assert!(pool.await_termination(WAIT));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(started.load(Ordering::SeqCst), THREADS);
    assert_eq!(exited.load(Ordering::SeqCst), THREADS);
    assert_eq!(exited_seen.load(Ordering::SeqCst), THREADS);

    // More shutdowns and the final drop do not run it again.
    pool.shutdown();
    drop(pool.shutdown_now());
    drop(Arc::into_inner(pool).expect("the only owner left"));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[test]
fn on_terminated_runs_once_when_the_pool_is_dropped() {
    let calls = Arc::new(AtomicUsize::new(0));
    let pool = {
        let calls = calls.clone();
        ThreadPool::builder()
            .threads(3)
            .on_terminated(move || {
                calls.fetch_add(1, Ordering::SeqCst);
            })
            .build()
            .unwrap()
    };
    pool.execute(|| ()).unwrap();
    drop(pool);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

// wait_idle: false while a task is held (and its queue backs up), true once all ran; no shutdown
// implied.
#[test]
fn wait_idle_is_true_once_nothing_is_queued_or_running() {
    let pool = ThreadPool::new(2).unwrap();
    assert!(pool.wait_idle(Duration::ZERO), "a fresh pool is idle");

    let gate = Gate::occupying(&pool, 1);
    let ran = Arc::new(AtomicUsize::new(0));
    for _ in 0..20 {
        pool.execute(gate.hold(bump(&ran))).unwrap();
    }

    assert!(!pool.wait_idle(Duration::ZERO));
    let start = Instant::now();
    assert!(!pool.wait_idle(BRIEF));
    assert!(
        start.elapsed() >= BRIEF,
        "returned false before the timeout"
    );

    gate.release();
    assert!(pool.wait_idle(WAIT));
    assert_eq!(ran.load(Ordering::SeqCst), 20);
    assert_eq!(pool.stats().queued, 0);
    // Idle is not shut down: the pool still takes work.
    assert_eq!(pool.state(), PoolState::Running);
    assert_eq!(bounded_join(pool.submit(|| 7).unwrap()).unwrap(), 7);
    assert!(pool.wait_idle(WAIT));
    assert!(pool.wait_idle(Duration::MAX));
}

// Once wait_idle says idle, stats().active and running_tasks() agree.
#[test]
fn after_wait_idle_no_task_shows_as_running() {
    // wait_idle promises "no task running": stats and running_tasks must
    // agree once it has returned true. Hammered, since the window between a
    // task being counted as ended and its worker being seen as free is short.
    let pool = ThreadPool::new(4).unwrap();
    for round in 0..2_000 {
        bounded_join(pool.submit(|| ()).unwrap()).unwrap();
        assert!(pool.wait_idle(WAIT));
        let stats = pool.stats();
        let running = pool.running_tasks();
        assert!(
            stats.active == 0 && stats.queued == 0 && running.is_empty(),
            "round {round}: wait_idle returned true, yet {stats:?}, running {running:?}"
        );
    }
}

#[test]
fn wait_idle_with_duration_max_waits_without_overflow() {
    duration_max_waits_without_overflow(false, ThreadPool::wait_idle);
}

#[test]
fn wait_idle_with_zero_and_max() {
    let pool = Arc::new(ThreadPool::new(1).unwrap());
    let _leak = LeakOnPanic(pool.clone());
    assert!(at_once("wait_idle(ZERO) when idle", || {
        pool.wait_idle(Duration::ZERO)
    }));
    let gate = Gate::occupying(&pool, 1);
    let ran = Arc::new(AtomicUsize::new(0));
    pool.execute(bump(&ran)).unwrap();
    assert!(!at_once("wait_idle(ZERO) when busy", || {
        pool.wait_idle(Duration::ZERO)
    }));
    let waiter = spawn({
        let pool = pool.clone();
        move || pool.wait_idle(Duration::MAX)
    });
    still_blocked("wait_idle(MAX)", &waiter);
    gate.release();
    assert!(waiter.join("wait_idle(Duration::MAX)"));
    assert_eq!(ran.load(SeqCst), 1, "idle before the queued task ran");
    assert!(pool.wait_idle(Duration::ZERO));
    pool.shutdown();
    assert!(pool.await_termination(WAIT));
}

// await_termination/wait_idle on a worker of the same pool return false at once; the pool still
// terminates.
#[test]
fn waiting_from_inside_a_worker_returns_false_at_once() {
    let pool = Arc::new(ThreadPool::new(2).unwrap());
    let handle = {
        let pool = pool.clone();
        pool.clone()
            .submit(move || {
                let start = Instant::now();
                let idle = pool.wait_idle(WAIT);
                pool.shutdown();
                let terminated = pool.await_termination(WAIT);
                let idle_after = pool.wait_idle(Duration::MAX);
                let terminated_after = pool.await_termination(Duration::MAX);
                (
                    idle,
                    terminated,
                    idle_after,
                    terminated_after,
                    start.elapsed(),
                )
            })
            .unwrap()
    };
    assert!(handle.wait_timeout(WAIT * 3), "a wait inside a worker hung");
    let (idle, terminated, idle_after, terminated_after, elapsed) = bounded_join(handle).unwrap();
    assert!(!idle && !terminated && !idle_after && !terminated_after);
    assert!(
        elapsed < WAIT / 2,
        "took {elapsed:?}: it waited instead of returning at once"
    );
    // The pool still terminates once that task has ended.
    assert!(pool.await_termination(WAIT));
}

/// `wait_idle`, `await_termination` and `shutdown_gracefully` from a task of
/// the same pool could only deadlock: each returns at once (false / not
/// terminated), even with `Duration::MAX`, and the pool terminates once
/// the task ends.
#[test]
fn blocking_calls_from_a_worker_return_at_once() {
    let pool = Arc::new(ThreadPool::new(2).unwrap());
    let _leak = LeakOnPanic(pool.clone());
    let handle = pool
        .submit({
            let pool = pool.clone();
            move || {
                let start = Instant::now();
                let idle = pool.wait_idle(Duration::MAX) || pool.wait_idle(Duration::ZERO);
                let terminated = pool.await_termination(Duration::MAX);
                let report =
                    pool.shutdown_gracefully(ShutdownPolicy::new(Duration::MAX, Duration::MAX));
                (
                    idle,
                    terminated,
                    report.terminated,
                    report.never_started.len(),
                    start.elapsed(),
                )
            }
        })
        .unwrap();
    let (idle, terminated, graceful, never_started, took) = bounded_join(handle).unwrap();
    assert!(!idle && !terminated && !graceful);
    assert_eq!(never_started, 0);
    assert!(took < AT_ONCE, "took {took:?}: a call waited");
    assert!(pool.is_shutdown(), "shutdown_gracefully still shut down");
    assert!(pool.await_termination(WAIT));
}

// Every PoolStats field, while workers are held and after termination.
#[test]
fn stats_are_exact_at_quiescence() {
    let handler_calls = Arc::new(AtomicUsize::new(0));
    let pool = {
        let handler_calls = handler_calls.clone();
        ThreadPool::builder()
            .threads(2)
            .panic_handler(move |_| {
                handler_calls.fetch_add(1, Ordering::SeqCst);
            })
            .build()
            .unwrap()
    };
    assert_eq!(pool.stats().threads, 2);

    // Both workers held, so the rest queues up where it can be counted.
    let gate = Gate::occupying(&pool, 2);

    let ok: Vec<_> = (0..10).map(|i| pool.submit(move || i).unwrap()).collect();
    for _ in 0..3 {
        pool.execute(|| panic!("planned panic (execute)")).unwrap();
    }
    let boom: Vec<_> = (0..2)
        .map(|_| {
            pool.submit(|| -> u32 { panic!("planned panic (submit)") })
                .unwrap()
        })
        .collect();
    let doomed: Vec<_> = (0..2).map(|_| pool.submit(|| ()).unwrap()).collect();
    for handle in &doomed {
        assert!(handle.cancel());
    }

    let held = pool.stats();
    assert_eq!(held.threads, 2);
    assert_eq!(held.active, 2);
    assert_eq!(held.queued, 15);
    assert_eq!(held.completed, 0);
    assert_eq!(held.cancelled, 2);

    gate.release();
    assert!(pool.wait_idle(WAIT));
    for (i, handle) in ok.into_iter().enumerate() {
        assert_eq!(bounded_join(handle).unwrap(), i);
    }
    for handle in boom {
        assert!(bounded_join(handle).unwrap_err().is_panic());
    }
    for handle in doomed {
        assert!(bounded_join(handle).unwrap_err().is_cancelled());
    }

    pool.shutdown();
    for _ in 0..3 {
        assert!(pool.execute(|| ()).is_err());
    }
    assert!(pool.await_termination(WAIT));

    let stats = pool.stats();
    assert_eq!(stats.threads, 0, "every worker has exited");
    assert_eq!(stats.queued, 0);
    assert_eq!(stats.active, 0);
    assert_eq!(stats.completed, 12, "10 submitted + 2 gate tasks");
    assert_eq!(stats.panicked, 5);
    assert_eq!(stats.cancelled, 2);
    assert_eq!(stats.rejected, 3);
    assert_eq!(
        handler_calls.load(Ordering::SeqCst),
        3,
        "only the execute panics"
    );
}

// id, name, thread name "{prefix}-{i}" and a growing running_for of a held task.
#[test]
fn running_tasks_shows_the_held_task() {
    let pool = named_pool(2, "lc");
    assert!(pool.running_tasks().is_empty());

    let gate = Gate::new();
    let (tx, rx) = mpsc::channel();
    let hold = gate.task();
    let held = pool
        .task()
        .name("x")
        .submit(move || {
            tx.send(thread::current().name().map(str::to_owned))
                .unwrap();
            hold();
        })
        .unwrap();
    // The name of the thread the task runs on, as the task itself sees it.
    let held_thread = rx
        .recv_timeout(WAIT)
        .unwrap()
        .expect("worker threads are named");
    gate.wait_entered(1);

    let running = pool.running_tasks();
    assert_eq!(running.len(), 1, "{running:?}");
    let task = &running[0];
    assert_eq!(task.id, held.id());
    assert_eq!(task.name.as_deref(), Some("x"));
    assert_eq!(task.thread, held_thread);
    assert!(
        task.thread == "lc-0" || task.thread == "lc-1",
        "{}",
        task.thread
    );
    assert!(task.running_for > Duration::ZERO);
    let later = pool.running_tasks();
    assert_eq!(later.len(), 1);
    assert!(later[0].running_for >= task.running_for);

    gate.release();
    bounded_join(held).unwrap();
    pool.shutdown();
    assert!(pool.await_termination(WAIT));
    assert!(pool.running_tasks().is_empty());
}

/// Regression (issue 12, defect 11): one exiting worker consumed every
/// shutdown wake-up and passed one on only after its exit hook, so with
/// hooks that wait for each other the workers reached their hooks in waves
/// of 1 to 3 and the drop took 6 to 26 s. Each worker reaches its exit on
/// its own.
#[test]
fn workers_reach_their_exit_hooks_independently() {
    use std::sync::Condvar;
    const THREADS: usize = 16;
    let inside = Arc::new((Mutex::new(0usize), Condvar::new()));
    let alone = Arc::new(AtomicUsize::new(0));
    let pool = {
        let (inside, alone) = (inside.clone(), alone.clone());
        ThreadPool::builder()
            .threads(THREADS)
            .on_thread_exit(move |_| {
                let (count, changed) = &*inside;
                let mut count = count.lock().unwrap();
                *count += 1;
                changed.notify_all();
                let (count, waited) = changed
                    .wait_timeout_while(count, Duration::from_secs(2), |n| *n < THREADS)
                    .unwrap();
                drop(count);
                if waited.timed_out() {
                    alone.fetch_add(1, Ordering::SeqCst);
                }
            })
            .build()
            .unwrap()
    };
    let dropped = common::spawn(move || drop(pool));
    dropped.join_within("the drop", Duration::from_secs(120));
    assert_eq!(
        alone.load(Ordering::SeqCst),
        0,
        "some workers waited in their exit hook for others that never came"
    );
}
