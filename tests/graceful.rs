//! The escalating graceful shutdown (`ThreadPool::shutdown_gracefully`):
//! step 1 drains, step 2 interrupts and hands back the never-started tasks,
//! step 3 names the tasks that ignored both — in the report, in its
//! `Display`, and in an error-level log line. Also the builder's
//! `drop_policy`, which bounds how long dropping a pool may take.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering, Ordering::SeqCst};
use std::sync::{Arc, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use common::{
    AT_ONCE, BRIEF, Gate, Latch, LeakOnPanic, WAIT, at_once, bounded_join, bump, capture_logs,
    logged, named_pool, sleep_until_stopped, spawn, started_sleeper, still_blocked,
};
use drainpool::{
    Interrupted, PoolState, ShutdownPolicy, ShutdownReport, StopToken, TaskError, TaskHandle,
    ThreadPool,
};

/// Slack on top of a budget: how much later than planned a shutdown may end
/// (generous: CI machines stall).
const SLACK: Duration = Duration::from_secs(5);

// ----- helpers ------------------------------------------------------------------

/// Releases a stubborn task when dropped, so a failing assertion cannot
/// leave it spinning (and the pool's drop waiting on it).
struct Release(Arc<AtomicBool>);

impl Drop for Release {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// Busy-loops (yielding) until `released`, ignoring every stop request;
/// as a last resort, so that a broken test still ends, gives up after 30 s.
fn spin_until_released(released: &AtomicBool) {
    let give_up = Instant::now() + Duration::from_secs(30);
    while !released.load(Ordering::SeqCst) && Instant::now() < give_up {
        thread::yield_now();
    }
}

/// A task that ignores every stop request: it never looks at its token and
/// never waits interruptibly; it busy-loops until `released` (see
/// [`spin_until_released`]). Says it started on `started`; returns whether
/// its token had fired by the time it ended.
fn stubborn(
    released: Arc<AtomicBool>,
    started: mpsc::Sender<()>,
) -> impl FnOnce() -> bool + Send + 'static {
    move || {
        started.send(()).unwrap();
        spin_until_released(&released);
        StopToken::current().is_stop_requested()
    }
}

/// Spins (yielding) until `done`; panics after `WAIT`.
fn spin_until(mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < WAIT, "condition never became true");
        thread::yield_now();
    }
}

fn never_started_names(report: &ShutdownReport) -> Vec<Option<String>> {
    report
        .never_started
        .iter()
        .map(|t| t.name().map(str::to_owned))
        .collect()
}

fn assert_within(elapsed: Duration, at_least: Duration, what: &str) {
    assert!(
        elapsed >= at_least,
        "{what}: returned after {elapsed:?}, before its budget of {at_least:?}"
    );
    assert!(
        elapsed < at_least + SLACK,
        "{what}: returned after {elapsed:?}, long after its budget of {at_least:?}"
    );
}

// ----- step 1: drain -------------------------------------------------------------

#[test]
fn an_idle_pool_terminates_in_step_one() {
    let pool = ThreadPool::new(2).unwrap();
    let started = Instant::now();
    let report = pool.shutdown_gracefully(ShutdownPolicy::new(WAIT, WAIT));
    assert!(
        started.elapsed() < SLACK,
        "waited for the budget, not for the pool"
    );
    assert!(report.terminated);
    assert!(report.never_started.is_empty());
    assert!(report.stuck.is_empty());
    assert_eq!(report.completed, 0);
    assert_eq!(report.panicked, 0);
    assert!(report.elapsed <= started.elapsed());
    assert_eq!(pool.state(), PoolState::Terminated);

    let text = report.to_string();
    assert!(text.contains("pool terminated"), "{text}");
    assert!(text.contains("0 stuck"), "{text}");
    assert!(!text.contains("NOT"), "{text}");

    // Again, on a terminated pool: at once, nothing new.
    let again = pool.shutdown_gracefully(ShutdownPolicy::new(WAIT, WAIT));
    assert!(again.terminated);
    assert_eq!(again.completed, 0);
}

#[test]
fn a_draining_pool_terminates_in_step_one() {
    const TASKS: usize = 6;
    let pool = ThreadPool::new(2).unwrap();
    let gate = Latch::default();
    let saw_stop = Arc::new(AtomicUsize::new(0));
    let ran = Arc::new(AtomicUsize::new(0));
    let mut handles = Vec::new();
    for i in 0..TASKS {
        let (gate, saw_stop, ran) = (gate.clone(), saw_stop.clone(), ran.clone());
        let handle = pool
            .task()
            .name(format!("drained-{i}"))
            .submit(move || {
                assert!(gate.wait(), "never released");
                if StopToken::current().is_stop_requested() {
                    saw_stop.fetch_add(1, Ordering::SeqCst);
                }
                ran.fetch_add(1, Ordering::SeqCst);
            })
            .unwrap();
        handles.push(handle);
    }
    let gate_for_panic = gate.clone();
    let panicker = pool
        .submit(move || {
            assert!(gate_for_panic.wait());
            panic!("a task panics during the drain");
        })
        .unwrap();

    let report = thread::scope(|s| {
        let shutdown = s.spawn(|| pool.shutdown_gracefully(ShutdownPolicy::new(WAIT, WAIT)));
        // Release the tasks only once step 1 has begun, so they all end
        // within it.
        spin_until(|| pool.is_shutdown());
        gate.open();
        shutdown.join().unwrap()
    });

    assert!(report.terminated, "{report}");
    assert!(report.never_started.is_empty(), "{report}");
    assert!(report.stuck.is_empty(), "{report}");
    assert_eq!(report.completed, TASKS as u64, "{report}");
    assert_eq!(report.panicked, 1, "{report}");
    assert!(report.elapsed < SLACK, "waited for the budget: {report}");
    assert_eq!(ran.load(Ordering::SeqCst), TASKS);
    assert_eq!(saw_stop.load(Ordering::SeqCst), 0, "step 2 never happened");
    for h in handles {
        assert!(h.join().is_ok());
    }
    assert!(panicker.join().unwrap_err().is_panic());
    let text = report.to_string();
    assert!(text.contains(&format!("{TASKS} completed")), "{text}");
    assert!(text.contains("1 panicked"), "{text}");
}

// ----- step 2: interrupt ---------------------------------------------------------

#[test]
fn an_interruptible_task_ends_in_step_two_and_queued_tasks_come_back() {
    capture_logs();
    let drain = Duration::from_millis(100);
    let pool = named_pool(1, "step-two");
    let (started_tx, started_rx) = mpsc::channel();
    let sleeper = pool
        .task()
        .name("sleeper")
        .submit(sleep_until_stopped(started_tx, Duration::MAX))
        .unwrap();
    started_rx.recv_timeout(WAIT).unwrap();
    let ran = Arc::new(AtomicUsize::new(0));
    for i in 0..3 {
        pool.task()
            .name(format!("queued-{i}"))
            .execute(bump(&ran))
            .unwrap();
    }
    let queued_handle = pool
        .task()
        .name("queued-with-handle")
        .submit(|| 42)
        .unwrap();

    let started = Instant::now();
    let report = pool.shutdown_gracefully(ShutdownPolicy::new(drain, WAIT));
    let elapsed = started.elapsed();

    assert!(report.terminated, "{report}");
    assert!(report.stuck.is_empty(), "{report}");
    assert_eq!(
        never_started_names(&report),
        ["queued-0", "queued-1", "queued-2", "queued-with-handle"]
            .map(|n| Some(n.to_owned()))
            .to_vec(),
        "in submission order"
    );
    assert_eq!(report.completed, 1, "the sleeper, interrupted: {report}");
    assert_eq!(report.panicked, 0);
    // Step 1 used its whole budget; step 2 ended as soon as the sleeper did.
    assert!(elapsed >= drain, "{elapsed:?}");
    assert!(elapsed < drain + SLACK, "{elapsed:?}");
    assert_eq!(sleeper.join().unwrap(), Err(Interrupted));

    let text = report.to_string();
    assert!(text.contains("pool terminated"), "{text}");
    assert!(text.contains("4 never started"), "{text}");
    for name in ["queued-0", "queued-1", "queued-2", "queued-with-handle"] {
        assert!(text.contains(name), "{name} missing from: {text}");
    }
    assert!(
        !logged(log::Level::Warn, "step 2").is_empty(),
        "step 2 is logged at warn level"
    );

    // Dropping the report cancels what it holds: no handle waits forever.
    drop(report);
    assert!(queued_handle.wait_timeout(WAIT));
    assert!(matches!(queued_handle.join(), Err(TaskError::Cancelled)));
    assert_eq!(ran.load(Ordering::SeqCst), 0);
    assert_eq!(pool.stats().cancelled, 4);
}

#[test]
fn never_started_tasks_can_still_be_run_by_the_caller() {
    let pool = ThreadPool::new(1).unwrap();
    let (started_tx, started_rx) = mpsc::channel();
    pool.execute(move || {
        started_tx.send(()).unwrap();
        let _ = StopToken::current().sleep(Duration::MAX);
    })
    .unwrap();
    started_rx.recv_timeout(WAIT).unwrap();
    let later = pool.task().name("later").submit(|| 7).unwrap();
    let report = pool.shutdown_gracefully(ShutdownPolicy::new(Duration::ZERO, WAIT));
    assert!(report.terminated);
    let mut never_started = report.never_started;
    assert_eq!(never_started.len(), 1);
    never_started.pop().unwrap().run();
    assert_eq!(later.join().unwrap(), 7);
}

// ----- step 3: make a scene ----------------------------------------------------

#[test]
fn a_task_that_ignores_every_stop_request_is_named_as_stuck() {
    capture_logs();
    let drain = Duration::from_millis(200);
    let interrupt = Duration::from_millis(300);
    let pool = named_pool(2, "scene");
    let released = Arc::new(AtomicBool::new(false));
    let release = Release(released.clone());
    let (started_tx, started_rx) = mpsc::channel();
    let stuck_handle = pool
        .task()
        .name("stubborn-ignores-all")
        .submit(stubborn(released.clone(), started_tx.clone()))
        .unwrap();
    let polite = pool
        .task()
        .name("polite")
        .submit(sleep_until_stopped(started_tx, Duration::MAX))
        .unwrap();
    started_rx.recv_timeout(WAIT).unwrap();
    started_rx.recv_timeout(WAIT).unwrap();

    let started = Instant::now();
    let report = pool.shutdown_gracefully(ShutdownPolicy::new(drain, interrupt));
    let elapsed = started.elapsed();

    assert_within(elapsed, drain + interrupt, "shutdown_gracefully");
    assert_within(report.elapsed, drain + interrupt, "report.elapsed");
    assert!(!report.terminated, "{report}");
    assert!(report.never_started.is_empty(), "{report}");
    assert_eq!(report.completed, 1, "the polite task stopped: {report}");
    assert_eq!(report.stuck.len(), 1, "{report}");
    let stuck = &report.stuck[0];
    assert_eq!(stuck.name.as_deref(), Some("stubborn-ignores-all"));
    assert_eq!(stuck.id, stuck_handle.id());
    assert!(stuck.thread.starts_with("scene-"), "{}", stuck.thread);
    assert!(
        stuck.running_for >= drain + interrupt,
        "it ran the whole shutdown: {:?}",
        stuck.running_for
    );
    assert_eq!(polite.join().unwrap(), Err(Interrupted));

    let text = report.to_string();
    assert!(text.contains("NOT terminated"), "{text}");
    assert!(text.contains("1 stuck"), "{text}");
    assert!(text.contains("stuck: "), "{text}");
    assert!(text.contains("stubborn-ignores-all"), "{text}");
    assert!(text.contains(&stuck.thread), "{text}");
    assert!(
        !text.contains("polite"),
        "only the stuck task is named: {text}"
    );

    let errors = logged(log::Level::Error, "stubborn-ignores-all");
    assert!(
        errors.iter().any(|line| line.contains("stuck")),
        "step 3 logs the stuck task at error level; got {errors:?}"
    );

    // Still running, not lost: once it lets go, the pool terminates.
    assert!(!stuck_handle.is_finished());
    assert_eq!(pool.state(), PoolState::Stopping);
    drop(release);
    assert!(pool.await_termination(WAIT));
    assert!(
        stuck_handle.join().unwrap(),
        "its token had fired; it ignored it"
    );
}

#[test]
fn condvar_waiters_behind_a_stuck_lock_holder_do_not_stretch_the_budget() {
    // Twelve tasks wait on one condvar; a stuck task then takes the
    // condvar's mutex and ignores every stop. Step 2 must still take about
    // `interrupt`, not some fixed cost per waiter on top.
    const WAITERS: usize = 12;
    let drain = Duration::from_millis(100);
    let interrupt = Duration::from_millis(100);
    let pool = ThreadPool::new(WAITERS + 1).unwrap();
    let shared = Arc::new((parking_lot::Mutex::new(false), parking_lot::Condvar::new()));
    let (waiting_tx, waiting_rx) = mpsc::channel();
    let waiters: Vec<_> = (0..WAITERS)
        .map(|_| {
            let shared = shared.clone();
            let waiting_tx = waiting_tx.clone();
            pool.submit(move || {
                let (lock, cond) = &*shared;
                let mut ready = lock.lock();
                waiting_tx.send(()).unwrap(); // sent holding the lock
                StopToken::current().wait_while(cond, &mut ready, |ready| !*ready)
            })
            .unwrap()
        })
        .collect();
    for _ in 0..WAITERS {
        waiting_rx.recv_timeout(WAIT).unwrap();
    }
    let released = Arc::new(AtomicBool::new(false));
    let release = Release(released.clone());
    let (held_tx, held_rx) = mpsc::channel();
    let holder = {
        let shared = shared.clone();
        pool.task()
            .name("lock-holder")
            .submit(move || {
                // Taking the lock means every waiter is parked in its wait.
                let _guard = shared.0.lock();
                held_tx.send(()).unwrap();
                spin_until_released(&released);
            })
            .unwrap()
    };
    held_rx.recv_timeout(WAIT).unwrap();

    let started = Instant::now();
    let report = pool.shutdown_gracefully(ShutdownPolicy::new(drain, interrupt));
    let elapsed = started.elapsed();
    drop(release);
    assert!(pool.await_termination(WAIT));
    for w in waiters {
        assert_eq!(w.join().unwrap(), Err(Interrupted));
    }
    assert!(holder.join().is_ok());
    assert!(!report.terminated, "{report}");
    assert_eq!(report.stuck.len(), 1 + WAITERS, "{report}");
    assert!(
        elapsed < drain + interrupt + Duration::from_secs(1),
        "shutdown_gracefully({drain:?}, {interrupt:?}) took {elapsed:?} with {WAITERS} \
         condvar waiters whose mutex a stuck task holds"
    );
}

/// `ShutdownPolicy::new(ZERO, ZERO)`: no patience at all. The call returns
/// at once; the stubborn task is named as stuck, the queued ones come back;
/// nothing is lost and the pool still terminates when the task ends.
#[test]
fn shutdown_gracefully_with_zero_budgets_returns_at_once_and_loses_nothing() {
    let pool = Arc::new(named_pool(1, "zero"));
    let _leak = LeakOnPanic(pool.clone());
    let gate = Gate::new();
    pool.task().name("stubborn").execute(gate.task()).unwrap();
    gate.wait_entered(1);
    let queued: Vec<TaskHandle<u32>> = (0..3).map(|i| pool.submit(move || i).unwrap()).collect();
    let report = at_once("shutdown_gracefully(ZERO, ZERO)", || {
        pool.shutdown_gracefully(ShutdownPolicy::new(Duration::ZERO, Duration::ZERO))
    });
    assert!(!report.terminated);
    assert_eq!(report.stuck.len(), 1, "{report}");
    assert_eq!(report.stuck[0].name.as_deref(), Some("stubborn"));
    let ids: Vec<_> = queued.iter().map(TaskHandle::id).collect();
    let back: Vec<_> = report.never_started.iter().map(|t| t.id()).collect();
    assert_eq!(back, ids, "the queued tasks come back, in order");
    for task in report.never_started {
        task.run();
    }
    for (i, handle) in queued.into_iter().enumerate() {
        assert_eq!(bounded_join(handle).unwrap(), i as u32);
    }
    gate.release();
    assert!(pool.await_termination(WAIT));
    let stats = pool.stats();
    assert_eq!((stats.completed, stats.cancelled), (4, 0));
}

/// `ShutdownPolicy::new(ZERO, MAX)`: straight to the interrupt, then wait
/// for as long as it takes.
#[test]
fn shutdown_gracefully_with_zero_drain_and_max_interrupt_interrupts_and_waits() {
    let pool = Arc::new(named_pool(1, "interrupt"));
    let _leak = LeakOnPanic(pool.clone());
    let sleeper = started_sleeper(&pool);
    let queued = pool.submit(|| 1).unwrap();
    let report = spawn({
        let pool = pool.clone();
        move || pool.shutdown_gracefully(ShutdownPolicy::new(Duration::ZERO, Duration::MAX))
    })
    .join("shutdown_gracefully(ZERO, MAX)");
    assert!(report.terminated, "{report}");
    assert!(report.stuck.is_empty());
    assert_eq!(report.never_started.len(), 1);
    drop(report);
    assert!(bounded_join(queued).unwrap_err().is_cancelled());
    assert_eq!(bounded_join(sleeper).unwrap(), Err(Interrupted));
}

/// `ShutdownPolicy::new(MAX, _)`: the drain may take forever, and does not
/// overflow; it ends when the held task does, and runs the queue.
#[test]
fn shutdown_gracefully_with_max_drain_waits_for_the_drain() {
    for interrupt in [Duration::ZERO, Duration::MAX] {
        let pool = Arc::new(ThreadPool::new(1).unwrap());
        let _leak = LeakOnPanic(pool.clone());
        let gate = Gate::occupying(&pool, 1);
        let ran = Arc::new(AtomicUsize::new(0));
        for _ in 0..5 {
            pool.execute(bump(&ran)).unwrap();
        }
        let graceful = spawn({
            let pool = pool.clone();
            move || pool.shutdown_gracefully(ShutdownPolicy::new(Duration::MAX, interrupt))
        });
        still_blocked("shutdown_gracefully(MAX, _)", &graceful);
        gate.release();
        let report = graceful.join("shutdown_gracefully(MAX, _)");
        assert!(report.terminated, "{report}");
        assert!(report.never_started.is_empty() && report.stuck.is_empty());
        assert_eq!(report.completed, 6);
        assert_eq!(ran.load(SeqCst), 5);
    }
}

// ----- Builder::drop_policy ------------------------------------------------------

#[test]
fn drop_policy_bounds_dropping_a_pool_with_a_stubborn_task() {
    capture_logs();
    let drain = Duration::from_millis(100);
    let interrupt = Duration::from_millis(100);
    let pool = ThreadPool::builder()
        .threads(1)
        .thread_name("drop-stubborn")
        .drop_policy(ShutdownPolicy::new(drain, interrupt))
        .build()
        .unwrap();
    let released = Arc::new(AtomicBool::new(false));
    let release = Release(released.clone());
    let (started_tx, started_rx) = mpsc::channel();
    let stuck_handle = pool
        .task()
        .name("stubborn-at-drop")
        .submit(stubborn(released, started_tx))
        .unwrap();
    started_rx.recv_timeout(WAIT).unwrap();
    let queued = pool.task().name("queued-at-drop").submit(|| 1).unwrap();

    let (dropped_tx, dropped_rx) = mpsc::channel();
    let dropper = thread::spawn(move || {
        let started = Instant::now();
        drop(pool);
        dropped_tx.send(started.elapsed()).unwrap();
    });
    let took = dropped_rx
        .recv_timeout(drain + interrupt + SLACK)
        .expect("dropping the pool hung despite its drop policy");
    assert_within(took, drain + interrupt, "drop");
    dropper.join().unwrap();

    // The queued task was cancelled, the stubborn one named and left running.
    assert!(queued.wait_timeout(WAIT));
    assert!(matches!(queued.join(), Err(TaskError::Cancelled)));
    assert!(
        logged(log::Level::Error, "stubborn-at-drop")
            .iter()
            .any(|line| line.contains("stuck")),
        "the stuck task is logged at error level"
    );
    assert!(!stuck_handle.is_finished());
    thread::sleep(BRIEF);
    assert!(!stuck_handle.is_finished(), "still running, detached");

    // Released, it ends by itself; its handle still gets the result.
    drop(release);
    assert!(stuck_handle.wait_timeout(WAIT));
    assert!(stuck_handle.join().unwrap());
}

#[test]
fn drop_policy_with_a_cooperative_task_terminates_and_joins() {
    let exited = Arc::new(AtomicUsize::new(0));
    let exited_in_hook = exited.clone();
    let pool = ThreadPool::builder()
        .threads(2)
        .drop_policy(ShutdownPolicy::new(Duration::from_millis(20), WAIT))
        .on_thread_exit(move |_| {
            exited_in_hook.fetch_add(1, Ordering::SeqCst);
        })
        .build()
        .unwrap();
    let sleeper = started_sleeper(&pool);
    let (dropped_tx, dropped_rx) = mpsc::channel();
    thread::spawn(move || {
        let started = Instant::now();
        drop(pool);
        dropped_tx.send(started.elapsed()).unwrap();
    });
    let took = dropped_rx
        .recv_timeout(WAIT)
        .expect("dropping the pool hung");
    assert!(took < SLACK, "{took:?}");
    assert_eq!(
        exited.load(Ordering::SeqCst),
        2,
        "terminated: the drop joined every worker"
    );
    assert_eq!(sleeper.join().unwrap(), Err(Interrupted));
}

/// A `drop_policy` of zero budgets bounds the drop of a pool whose task
/// never stops: the drop returns at once, the stuck worker is left to
/// finish on its own, and does.
#[test]
fn drop_policy_with_zero_budgets_returns_at_once_and_the_worker_ends_later() {
    let exited = Latch::default();
    let pool = ThreadPool::builder()
        .threads(1)
        .drop_policy(ShutdownPolicy::new(Duration::ZERO, Duration::ZERO))
        .on_thread_exit({
            let exited = exited.clone();
            move |_| exited.open()
        })
        .build()
        .unwrap();
    let gate = Gate::occupying(&pool, 1);
    let dropped = spawn(move || {
        let start = Instant::now();
        drop(pool);
        start.elapsed()
    });
    let took = dropped.join("dropping the pool");
    assert!(took < AT_ONCE, "the drop took {took:?}");
    gate.release();
    exited.expect_open();
}

// ----- misuse ----------------------------------------------------------------------

#[test]
fn shutdown_gracefully_from_a_worker_does_not_deadlock() {
    let pool = Arc::new(ThreadPool::new(2).unwrap());
    let in_task = pool.clone();
    let handle = pool
        .submit(move || {
            let started = Instant::now();
            let report = in_task.shutdown_gracefully(ShutdownPolicy::new(WAIT, WAIT));
            (report.terminated, started.elapsed())
        })
        .unwrap();
    assert!(handle.wait_timeout(WAIT), "deadlocked on its own worker");
    let (terminated, took) = handle.join().unwrap();
    assert!(!terminated);
    assert!(took < SLACK, "{took:?}");
    assert!(pool.is_shutdown());
    assert!(pool.await_termination(WAIT));
}
