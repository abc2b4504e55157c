//! Panics: a panicking task never kills its worker; panics with no handle to
//! go to reach the panic handler; panics in hooks, in the panic handler, in
//! stop callbacks and in the `Drop` of payloads and results are contained.

mod common;

use std::panic::{self, AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering, Ordering::SeqCst};
use std::sync::mpsc::{self, Receiver};
use std::thread::{self, ThreadId};
use std::time::Duration;

use common::{Gate, Hooked, Latch, LeakOnPanic, TestPool, WAIT, at_once, bounded_join, named_pool};
use drainpool::{
    Builder, Interrupted, StopSource, StopToken, TaskError, TaskId, TaskPanic, ThreadPool,
};

/// Which thread the pool runs tasks on now: its id and name.
fn worker_thread(pool: &ThreadPool) -> (ThreadId, String) {
    let handle = pool
        .submit(|| {
            let me = thread::current();
            (me.id(), me.name().unwrap_or("<unnamed>").to_owned())
        })
        .unwrap();
    bounded_join(handle).expect("a plain task runs")
}

/// A pool shut down and terminated in time, as the tests end it.
fn shut_down(pool: &ThreadPool) {
    pool.shutdown();
    assert!(pool.await_termination(WAIT), "the pool terminates");
    assert!(pool.is_terminated());
}

/// What the panic handler was told, owned and comparable.
#[derive(Debug, PartialEq)]
struct Report {
    id: TaskId,
    name: Option<String>,
    thread: Option<String>,
    message: Option<String>,
}

impl Report {
    fn of(panic: &TaskPanic) -> Report {
        Report {
            id: panic.id(),
            name: panic.name().map(str::to_owned),
            thread: panic.thread().map(str::to_owned),
            message: panic.message().map(str::to_owned),
        }
    }
}

/// A builder whose panic handler sends a [`Report`] of each panic.
fn reporting() -> (Builder, Receiver<Report>) {
    let (tx, rx) = mpsc::channel();
    let builder = ThreadPool::builder().panic_handler(move |panic| {
        let _ = tx.send(Report::of(&panic));
    });
    (builder, rx)
}

/// A value whose `Drop` panics (once: not while already unwinding), and
/// counts itself.
struct Bomb(Arc<AtomicUsize>);

impl Drop for Bomb {
    fn drop(&mut self) {
        self.0.fetch_add(1, SeqCst);
        if !thread::panicking() {
            panic!("a Bomb went off in Drop");
        }
    }
}

/// The name of the thread this runs on.
fn thread_name() -> String {
    thread::current().name().unwrap_or("?").to_owned()
}

#[test]
fn a_panicking_task_does_not_kill_its_worker() {
    let (builder, reports) = reporting();
    let pool = TestPool::solo(builder);
    let before = worker_thread(&pool);

    pool.execute(|| panic!("first")).unwrap();
    let report = reports.recv_timeout(WAIT).expect("the panic was reported");
    assert_eq!(report.message.as_deref(), Some("first"));

    assert_eq!(worker_thread(&pool), before, "the same worker runs on");
    assert_eq!(before.1, "solo-0");
    assert_eq!(pool.stats().threads, 1);
    shut_down(&pool);
}

#[test]
fn the_panic_handler_gets_id_name_thread_and_message() {
    let (builder, reports) = reporting();
    let pool = TestPool::solo(builder);
    pool.task()
        .name("exploder")
        .execute(|| panic!("kaboom"))
        .unwrap();
    pool.execute(|| panic!("anonymous")).unwrap();

    let named = reports.recv_timeout(WAIT).expect("first report");
    let unnamed = reports.recv_timeout(WAIT).expect("second report");
    assert_eq!(named.name.as_deref(), Some("exploder"));
    assert_eq!(named.thread.as_deref(), Some("solo-0"));
    assert_eq!(named.message.as_deref(), Some("kaboom"));
    assert_eq!(unnamed.name, None);
    assert_eq!(unnamed.thread.as_deref(), Some("solo-0"));
    assert_eq!(unnamed.message.as_deref(), Some("anonymous"));
    assert_ne!(named.id, unnamed.id);
    shut_down(&pool);
}

#[test]
fn the_default_panic_handler_keeps_the_pool_working() {
    let pool = TestPool::build(ThreadPool::builder().threads(2));
    for _ in 0..3 {
        pool.execute(|| panic!("logged, not fatal")).unwrap();
    }
    drop(pool.submit(|| panic!("orphaned, logged")).unwrap());

    assert_eq!(bounded_join(pool.submit(|| 1 + 1).unwrap()).unwrap(), 2);
    assert!(pool.wait_idle(WAIT));
    assert_eq!(pool.stats().panicked, 4);
    assert_eq!(pool.stats().threads, 2);
    shut_down(&pool);
}

#[test]
fn a_panic_inside_the_panic_handler_is_caught() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    let pool = TestPool::solo(ThreadPool::builder().panic_handler(move |panic| {
        counted.fetch_add(1, Ordering::SeqCst);
        panic!("the handler broke on {:?}", panic.message());
    }));
    let before = worker_thread(&pool);
    for _ in 0..3 {
        pool.execute(|| panic!("task")).unwrap();
    }

    // One worker, FIFO: by now the handler ran for all three.
    assert_eq!(worker_thread(&pool), before, "the worker survived");
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    shut_down(&pool);
}

#[test]
fn a_panic_in_on_thread_start_is_caught() {
    let starts = Arc::new(AtomicUsize::new(0));
    let counted = starts.clone();
    let pool = TestPool::build(
        ThreadPool::builder()
            .threads(2)
            .on_thread_start(move |index| {
                counted.fetch_add(1, Ordering::SeqCst);
                panic!("on_thread_start {index} broke");
            }),
    );
    let handles: Vec<_> = (0..10).map(|i| pool.submit(move || i).unwrap()).collect();
    for (i, handle) in handles.into_iter().enumerate() {
        assert_eq!(bounded_join(handle).unwrap(), i);
    }
    assert_eq!(pool.stats().threads, 2);
    shut_down(&pool);
    assert_eq!(starts.load(Ordering::SeqCst), 2);
}

#[test]
fn a_panic_in_on_thread_exit_is_caught() {
    let exits = Arc::new(AtomicUsize::new(0));
    let counted = exits.clone();
    let (terminated_tx, terminated_rx) = mpsc::channel();
    let pool = TestPool::build(
        ThreadPool::builder()
            .threads(2)
            .on_thread_exit(move |index| {
                counted.fetch_add(1, Ordering::SeqCst);
                panic!("on_thread_exit {index} broke");
            })
            .on_terminated(move || terminated_tx.send(()).unwrap()),
    );
    assert_eq!(bounded_join(pool.submit(|| 3).unwrap()).unwrap(), 3);
    shut_down(&pool);
    assert_eq!(exits.load(Ordering::SeqCst), 2);
    terminated_rx
        .recv_timeout(WAIT)
        .expect("on_terminated still ran");
}

#[test]
fn a_panic_in_on_terminated_is_caught() {
    let (terminated_tx, terminated_rx) = mpsc::channel();
    let pool = TestPool::build(ThreadPool::builder().threads(2).on_terminated(move || {
        terminated_tx.send(()).unwrap();
        panic!("on_terminated broke");
    }));
    assert_eq!(bounded_join(pool.submit(|| 4).unwrap()).unwrap(), 4);
    shut_down(&pool);
    terminated_rx.recv_timeout(WAIT).expect("on_terminated ran");
}

/// Every hook panics, and a stop callback too: each panic is caught and
/// logged, the pool keeps working, each hook still runs as often as it
/// should, the other callbacks still run, and the pool terminates.
#[test]
fn panics_in_every_hook_and_in_stop_callbacks_are_contained() {
    let handler_calls = Arc::new(AtomicUsize::new(0));
    let hooked = Hooked::default();
    let builder = {
        let (calls, started, exited, terminated) = (
            handler_calls.clone(),
            hooked.started.clone(),
            hooked.exited.clone(),
            hooked.terminated.clone(),
        );
        ThreadPool::builder()
            .threads(2)
            .panic_handler(move |_| {
                calls.fetch_add(1, SeqCst);
                panic!("the panic handler panics");
            })
            .on_thread_start(move |_| {
                started.fetch_add(1, SeqCst);
                panic!("on_thread_start panics");
            })
            .on_thread_exit(move |_| {
                exited.fetch_add(1, SeqCst);
                panic!("on_thread_exit panics");
            })
            .on_terminated(move || {
                terminated.fetch_add(1, SeqCst);
                panic!("on_terminated panics");
            })
    };
    let pool = Arc::new(builder.build().unwrap());
    let _leak = LeakOnPanic(pool.clone());
    assert_eq!(bounded_join(pool.submit(|| 7).unwrap()).unwrap(), 7);
    pool.execute(|| panic!("a task panics")).unwrap();
    assert!(pool.wait_idle(WAIT));
    assert_eq!(handler_calls.load(SeqCst), 1);
    assert_eq!(bounded_join(pool.submit(|| 8).unwrap()).unwrap(), 8);

    // Stop callbacks of a running task: one panics, the other still runs.
    // The stop is requested by a handle's cancel, then by shutdown_now;
    // both run the callbacks on the requesting thread (this one), which
    // must not unwind. The stop wakes the task's sleep before the callbacks
    // run, so the task holds its registrations until `keep` opens (a
    // callback dropped first is unregistered, and rightly never runs).
    let after = Arc::new(AtomicUsize::new(0));
    let (started_tx, started) = mpsc::channel();
    let task = |started_tx: mpsc::Sender<()>, after: Arc<AtomicUsize>, keep: Latch| {
        move || {
            let token = StopToken::current();
            let _bad = token.on_stop(|| panic!("a stop callback panics"));
            let _good = token.on_stop(move || {
                after.fetch_add(1, SeqCst);
            });
            started_tx.send(()).unwrap();
            let slept = token.sleep(Duration::MAX);
            keep.wait();
            slept
        }
    };
    let keep = Latch::default();
    let cancelled = pool
        .submit(task(started_tx.clone(), after.clone(), keep.clone()))
        .unwrap();
    started.recv_timeout(WAIT).expect("the task started");
    assert!(!at_once("cancel", || cancelled.cancel()));
    assert_eq!(after.load(SeqCst), 1);
    keep.open();
    assert_eq!(bounded_join(cancelled).unwrap(), Err(Interrupted));
    let keep = Latch::default();
    let stopped = pool
        .submit(task(started_tx, after.clone(), keep.clone()))
        .unwrap();
    started.recv_timeout(WAIT).expect("the task started");
    assert!(at_once("shutdown_now", || pool.shutdown_now()).is_empty());
    assert_eq!(after.load(SeqCst), 2);
    keep.open();
    assert_eq!(bounded_join(stopped).unwrap(), Err(Interrupted));
    // A plain source too.
    let source = StopSource::new();
    let _bad = source.token().on_stop(|| panic!("a stop callback panics"));
    let _good = source.token().on_stop({
        let after = after.clone();
        move || {
            after.fetch_add(1, SeqCst);
        }
    });
    assert!(source.request_stop());
    assert_eq!(after.load(SeqCst), 3);

    assert!(pool.await_termination(WAIT));
    assert_eq!(hooked.counts(), (2, 2, 1));
    let stats = pool.stats();
    assert_eq!((stats.completed, stats.panicked, stats.threads), (4, 1, 0));
}

#[test]
fn a_panic_of_a_task_whose_handle_was_dropped_goes_to_the_panic_handler() {
    let (builder, reports) = reporting();
    let pool = TestPool::solo(builder);
    let gate = Gate::new();
    let handle = pool
        .task()
        .name("orphan")
        .submit(gate.hold(|| -> u32 { panic!("nobody is listening") }))
        .unwrap();
    let id = handle.id();
    drop(handle);
    gate.release();

    let report = reports
        .recv_timeout(WAIT)
        .expect("the orphaned panic was reported");
    let expected = Report {
        id,
        name: Some("orphan".to_owned()),
        thread: Some("solo-0".to_owned()),
        message: Some("nobody is listening".to_owned()),
    };
    assert_eq!(report, expected);
    shut_down(&pool);
    assert_eq!(pool.stats().panicked, 1);
}

#[test]
fn a_panic_is_reported_when_its_handle_is_dropped_unjoined_afterwards() {
    let (builder, reports) = reporting();
    let pool = TestPool::solo(builder);
    let handle = pool
        .task()
        .name("late")
        .submit(|| -> u32 { panic!("seen only at drop") })
        .unwrap();
    assert!(handle.wait_timeout(WAIT));
    assert!(
        reports.try_recv().is_err(),
        "the handle still holds the panic"
    );
    let id = handle.id();
    drop(handle);

    // The handle reports as it is dropped, on this thread.
    let report = reports.try_recv().expect("reported on drop");
    assert_eq!(report.id, id);
    assert_eq!(report.name.as_deref(), Some("late"));
    assert_eq!(report.message.as_deref(), Some("seen only at drop"));
    shut_down(&pool);
}

#[test]
fn stats_count_every_panic() {
    let (builder, reports) = reporting();
    let pool = TestPool::build(builder.threads(2));
    for _ in 0..3 {
        pool.execute(|| panic!("executed")).unwrap();
    }
    let joined: Vec<_> = (0..2)
        .map(|_| pool.submit(|| panic!("joined")).unwrap())
        .collect();
    drop(pool.submit(|| panic!("orphaned")).unwrap());
    let fine = pool.submit(|| ()).unwrap();

    for handle in joined {
        let err: TaskError = bounded_join::<()>(handle).unwrap_err();
        assert_eq!(err.panic_message(), Some("joined"));
    }
    bounded_join(fine).unwrap();
    assert!(pool.wait_idle(WAIT));
    let stats = pool.stats();
    assert_eq!((stats.panicked, stats.completed), (6, 1));
    shut_down(&pool);
    assert_eq!(reports.try_iter().count(), 4, "3 executed + 1 orphaned");
}

#[test]
fn a_panic_payload_whose_drop_panics_does_not_kill_the_worker() {
    let bombs = Arc::new(AtomicUsize::new(0));

    // Default handler: the payload is dropped after logging.
    let pool = TestPool::solo(ThreadPool::builder());
    let before = worker_thread(&pool);
    let bomb = bombs.clone();
    pool.execute(move || std::panic::panic_any(Bomb(bomb)))
        .unwrap();
    let bomb = bombs.clone();
    drop(
        pool.submit(move || std::panic::panic_any(Bomb(bomb)))
            .unwrap(),
    );
    assert_eq!(worker_thread(&pool), before, "the worker survived");
    shut_down(&pool);
    assert_eq!(
        bombs.load(Ordering::SeqCst),
        2,
        "both payloads were dropped"
    );

    // A custom handler that drops the panic it was given.
    let pool = TestPool::solo(ThreadPool::builder().panic_handler(drop));
    let before = worker_thread(&pool);
    let bomb = bombs.clone();
    pool.execute(move || std::panic::panic_any(Bomb(bomb)))
        .unwrap();
    assert_eq!(worker_thread(&pool), before, "the worker survived");
    shut_down(&pool);
    assert_eq!(bombs.load(Ordering::SeqCst), 3);
}

#[test]
fn a_result_whose_drop_panics_does_not_kill_the_worker() {
    let bombs = Arc::new(AtomicUsize::new(0));
    let pool = TestPool::solo(ThreadPool::builder());
    let before = worker_thread(&pool);
    let gate = Gate::new();
    let bomb = bombs.clone();
    let handle = pool.submit(gate.hold(move || Bomb(bomb))).unwrap();
    // Nobody will take the result: the worker must drop it.
    drop(handle);
    gate.release();

    assert_eq!(worker_thread(&pool), before, "the worker survived");
    assert_eq!(bombs.load(Ordering::SeqCst), 1, "the result was dropped");
    assert!(pool.wait_idle(WAIT));
    assert_eq!(pool.stats().completed, 3, "the task counts as completed");
    shut_down(&pool);
}

/// A panic payload whose own `Drop` panics, in every place the pool handles
/// a payload: dropped by the default handler, by a custom one, reported for
/// a detached handle, given to a joiner, and from a `PendingTask::run`. The
/// worker survives each, and every payload is dropped exactly once.
#[test]
fn a_panic_payload_whose_drop_panics_is_contained_everywhere() {
    let bombs = Arc::new(AtomicUsize::new(0));
    let bomb = |bombs: &Arc<AtomicUsize>| {
        let bombs = bombs.clone();
        move || -> u32 { panic::panic_any(Bomb(bombs)) }
    };
    for custom_handler in [false, true] {
        let builder = if custom_handler {
            ThreadPool::builder().panic_handler(drop)
        } else {
            ThreadPool::builder()
        };
        let pool = TestPool::solo(builder);
        bombs.store(0, SeqCst);
        // execute: to the panic handler.
        let f = bomb(&bombs);
        pool.execute(move || {
            f();
        })
        .unwrap();
        // submit, handle dropped before it runs: to the panic handler.
        let gate = Gate::occupying(&pool, 1);
        drop(pool.submit(bomb(&bombs)).unwrap());
        gate.release();
        assert!(pool.wait_idle(WAIT));
        // submit, joined: the payload is the joiner's, whole.
        let err = bounded_join(pool.submit(bomb(&bombs)).unwrap()).unwrap_err();
        let TaskError::Panicked(payload) = err else {
            panic!("expected a panic");
        };
        let payload = payload.into_inner();
        assert!(payload.downcast_ref::<Bomb>().is_some());
        assert!(panic::catch_unwind(AssertUnwindSafe(|| drop(payload))).is_err());
        assert_eq!(bombs.load(SeqCst), 3);
        assert_eq!(
            bounded_join(pool.submit(thread_name).unwrap()).unwrap(),
            "solo-0",
            "the worker survived"
        );
        let stats = pool.stats();
        assert_eq!((stats.panicked, stats.threads), (3, 1));
    }
    // From a PendingTask::run: to the panic handler, on the calling thread.
    let pool = Arc::new(named_pool(1, "pending"));
    let _leak = LeakOnPanic(pool.clone());
    let gate = Gate::occupying(&pool, 1);
    bombs.store(0, SeqCst);
    let f = bomb(&bombs);
    pool.execute(move || {
        f();
    })
    .unwrap();
    let back = pool.shutdown_now();
    assert_eq!(back.len(), 1);
    for task in back {
        at_once("PendingTask::run", || task.run()); // does not unwind
    }
    gate.release();
    assert!(pool.await_termination(WAIT));
    assert_eq!(bombs.load(SeqCst), 1);
    assert_eq!(pool.stats().panicked, 1);
}

/// A result whose `Drop` panics, dropped by the worker (its handle went
/// away first): the worker survives and the task counts as completed. A
/// joined result is the joiner's, whole.
#[test]
fn a_task_result_whose_drop_panics_does_not_hurt_the_worker() {
    let bombs = Arc::new(AtomicUsize::new(0));
    let pool = TestPool::solo(ThreadPool::builder());
    let gate = Gate::new();
    let handle = pool
        .submit(gate.hold({
            let bombs = bombs.clone();
            move || Bomb(bombs)
        }))
        .unwrap();
    gate.wait_entered(1);
    drop(handle);
    gate.release();
    assert!(pool.wait_idle(WAIT));
    assert_eq!(bombs.load(SeqCst), 1, "the worker dropped the result");
    assert_eq!(
        bounded_join(pool.submit(thread_name).unwrap()).unwrap(),
        "solo-0",
        "the worker survived"
    );
    let joined = bounded_join(
        pool.submit({
            let bombs = bombs.clone();
            move || Bomb(bombs)
        })
        .unwrap(),
    )
    .unwrap();
    assert_eq!(bombs.load(SeqCst), 1, "the joined result is not dropped");
    assert!(panic::catch_unwind(AssertUnwindSafe(|| drop(joined))).is_err());
    let stats = pool.stats();
    assert_eq!((stats.completed, stats.panicked, stats.threads), (3, 0, 1));
}

/// A result nobody will read is dropped quietly wherever it is discarded,
/// as on a worker: out of `PendingTask::run` (a handed-back task whose
/// handle was dropped) and out of `drop(handle)` of a finished, unjoined
/// task. A panic in its `Drop` is caught and logged, never unwinding into
/// the program (it used to, and dropping a handle while already unwinding
/// then aborted the process), and the books stay right.
#[test]
fn a_discarded_result_whose_drop_panics_never_unwinds_into_the_program() {
    let bombs = Arc::new(AtomicUsize::new(0));
    let pool = Arc::new(named_pool(1, "discard"));
    let _leak = LeakOnPanic(pool.clone());
    let make = || {
        let bombs = bombs.clone();
        move || Bomb(bombs)
    };
    // A finished task whose handle is dropped unjoined; the next task on
    // the one worker ending proves the worker has let go of the first.
    let finished = pool.submit(make()).unwrap();
    bounded_join(pool.submit(|| ()).unwrap()).unwrap();
    assert!(finished.is_finished());
    let dropping_the_handle = panic::catch_unwind(AssertUnwindSafe(|| drop(finished)));
    // A handed-back task, its handle dropped, run by the program.
    let gate = Gate::occupying(&pool, 1);
    drop(pool.submit(make()).unwrap());
    let back = pool.shutdown_now();
    assert_eq!(back.len(), 1);
    let running_it = panic::catch_unwind(AssertUnwindSafe(|| {
        back.into_iter().for_each(drainpool::PendingTask::run);
    }));
    gate.release();
    assert!(pool.await_termination(WAIT));
    assert_eq!(bombs.load(SeqCst), 2, "both results were dropped");
    assert_eq!(pool.stats().completed, 4);
    assert!(
        dropping_the_handle.is_ok(),
        "drop(handle) of a finished task unwound with its result's Drop panic"
    );
    assert!(
        running_it.is_ok(),
        "PendingTask::run unwound with its discarded result's Drop panic"
    );
}

#[test]
fn cancelling_a_task_whose_captures_panic_on_drop_keeps_the_books() {
    // Cancel drops the closure, which is user code: a panic there must not
    // leave the task uncounted (or `wait_idle` would wait for it forever).
    let bombs = Arc::new(AtomicUsize::new(0));
    let pool = TestPool::solo(ThreadPool::builder());
    let gate = Gate::new();
    pool.execute(gate.task()).unwrap();
    let bomb = Bomb(bombs.clone());
    let handle = pool
        .submit(move || {
            let _bomb = &bomb;
        })
        .unwrap();

    // Whether the Drop panic reaches the caller is the pool's choice.
    let cancelled = catch_unwind(AssertUnwindSafe(|| handle.cancel()));
    assert_eq!(bombs.load(Ordering::SeqCst), 1, "the closure was dropped");
    assert!(cancelled.unwrap_or(true));
    assert!(handle.is_finished());
    gate.release();
    assert!(matches!(bounded_join(handle), Err(TaskError::Cancelled)));
    assert_eq!(pool.stats().cancelled, 1, "the cancel was counted");
    assert!(pool.wait_idle(WAIT), "no accepted task is left outstanding");
    shut_down(&pool);
}
