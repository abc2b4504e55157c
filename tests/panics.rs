//! Panics: a panicking task never kills its worker; panics with no handle to
//! go to reach the panic handler; panics in hooks, in the panic handler and
//! in the `Drop` of payloads and results are contained.

mod common;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::thread::{self, ThreadId};

use common::{Gate, TestPool, WAIT, bounded_join};
use drainpool::{Builder, TaskError, TaskId, TaskPanic, ThreadPool};

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

/// A value whose `Drop` counts itself, then panics.
struct Bomb(Arc<AtomicUsize>);

impl Drop for Bomb {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
        panic!("a Bomb went off in Drop");
    }
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
