//! Bad input, every kind tried (issue 7, item 4): each test gives the pool
//! something a careless or unlucky program might, and asserts a clear result
//! with nothing lost and nothing hung.
//!
//! - Panics where they hurt most: a payload whose `Drop` panics, a result
//!   whose `Drop` panics, every hook, stop callbacks.
//! - A burst of 100 signals at a `ShutdownHandle`.
//!
//! Tests that touch signal handlers hold [`SIGNALS`]. Every wait is
//! bounded.

mod common;

use std::collections::HashSet;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use common::{
    DropCounter, Gate, Hooked, Latch, LeakOnPanic, TestPool, WAIT, at_once, bounded_join, bump,
    named_pool, spawn,
};
use drainpool::signal::SIGUSR1;
use drainpool::{
    Interrupted, PoolState, RejectReason, ShutdownHandle, StopSource, StopToken, TaskError,
    TaskHandle, ThreadPool,
};
use signal_hook::low_level::{raise, register, unregister};

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

// ============================================================================
// Panics where they hurt
// ============================================================================

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

// ============================================================================
// Signals
// ============================================================================

/// Held by every test that touches signal handlers.
static SIGNALS: Mutex<()> = Mutex::new(());

fn signals() -> MutexGuard<'static, ()> {
    SIGNALS.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A SIGUSR1 handler that counts deliveries and asks `handle` for a
/// shutdown (`now`: a shutdown_now); unregistered on drop.
struct OnSigusr1(signal_hook::SigId);

impl OnSigusr1 {
    fn register(handle: ShutdownHandle, now: bool, delivered: Arc<AtomicUsize>) -> OnSigusr1 {
        // SAFETY: the handler does only async-signal-safe work: an atomic
        // add, and a ShutdownHandle request, which is one atomic fetch_or
        // and one non-blocking write(2) to a socket made in advance (see
        // drainpool::signal). It allocates, locks and frees nothing: the
        // handle and the counter are dropped only when it is unregistered.
        let id = unsafe {
            register(SIGUSR1, move || {
                delivered.fetch_add(1, SeqCst);
                if now {
                    handle.request_shutdown_now();
                } else {
                    handle.request_shutdown();
                }
            })
        }
        .expect("a SIGUSR1 handler");
        OnSigusr1(id)
    }
}

impl Drop for OnSigusr1 {
    fn drop(&mut self) {
        unregister(self.0);
    }
}

/// 100 SIGUSR1 in a burst, each asking for a shutdown: the pool shuts down
/// once, drains every queued task exactly once, and terminates once.
#[test]
fn a_burst_of_100_shutdown_signals_drains_once_and_loses_nothing() {
    let _serial = signals();
    let hooked = Hooked::default();
    let pool = hooked.builder().threads(2).build().unwrap();
    let gate = Gate::occupying(&pool, 2);
    let ran = Arc::new(AtomicUsize::new(0));
    let handles: Vec<TaskHandle<()>> = (0..200).map(|_| pool.submit(bump(&ran)).unwrap()).collect();
    let delivered = Arc::new(AtomicUsize::new(0));
    let handler = OnSigusr1::register(pool.shutdown_handle(), false, delivered.clone());
    for _ in 0..100 {
        raise(SIGUSR1).unwrap();
    }
    // `raise` runs the handler on this thread before it returns.
    assert_eq!(delivered.load(SeqCst), 100);
    gate.release();
    assert!(pool.await_termination(WAIT), "the pool did not terminate");
    drop(handler);
    for handle in handles {
        bounded_join(handle).expect("a drained task completes");
    }
    assert_eq!(ran.load(SeqCst), 200, "a task ran twice or never");
    assert_eq!(hooked.counts(), (2, 2, 1), "terminated more than once");
    assert_eq!(pool.stats().completed, 202);
    assert!(pool.shutdown_now().is_empty());
}

/// 100 SIGUSR1 in a burst, each asking for a shutdown_now while both
/// workers are held: every queued task comes back exactly once, from the
/// program's next shutdown_now (the relay keeps what it took back), and
/// each handle then resolves by what the program did with it.
#[test]
fn a_burst_of_100_shutdown_now_signals_hands_every_task_back_once() {
    let _serial = signals();
    let hooked = Hooked::default();
    let pool = hooked.builder().threads(2).build().unwrap();
    let gate = Gate::occupying(&pool, 2);
    let ran = Arc::new(AtomicUsize::new(0));
    let drops = DropCounter::default();
    let handles: Vec<TaskHandle<()>> = (0..300)
        .map(|_| {
            let (ran, tracked) = (ran.clone(), drops.tracked());
            pool.submit(move || {
                let _tracked = tracked;
                ran.fetch_add(1, SeqCst);
            })
            .unwrap()
        })
        .collect();
    let delivered = Arc::new(AtomicUsize::new(0));
    let handler = OnSigusr1::register(pool.shutdown_handle(), true, delivered.clone());
    for _ in 0..100 {
        raise(SIGUSR1).unwrap();
    }
    assert_eq!(delivered.load(SeqCst), 100);
    // Whether the relay got there first or not, this call returns them all.
    let back = pool.shutdown_now();
    assert_eq!(pool.state(), PoolState::Stopping);
    let ids: Vec<_> = back.iter().map(|t| t.id()).collect();
    let unique: HashSet<_> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "a task came back twice");
    let expected: Vec<_> = handles.iter().map(TaskHandle::id).collect();
    assert_eq!(ids, expected, "every queued task, in submission order");
    for (i, task) in back.into_iter().enumerate() {
        if i.is_multiple_of(2) {
            task.run();
        }
    }
    gate.release();
    assert!(pool.await_termination(WAIT), "the pool did not terminate");
    drop(handler);
    for (i, handle) in handles.into_iter().enumerate() {
        match bounded_join(handle) {
            Ok(()) => assert!(i.is_multiple_of(2), "task {i} ran but was dropped"),
            Err(e) => assert!(e.is_cancelled() && !i.is_multiple_of(2), "task {i}: {e:?}"),
        }
    }
    assert_eq!(ran.load(SeqCst), 150);
    assert_eq!(drops.count(), 300);
    assert_eq!(hooked.counts(), (2, 2, 1));
    let stats = pool.stats();
    assert_eq!((stats.completed, stats.cancelled), (152, 150));
    assert!(pool.shutdown_now().is_empty());
}

// ----- regressions: names and blocking that is not detected --------------------

/// Regression (issue 12, defect 12): a worker's blocking `execute` into its
/// own pool's full bounded queue blocked forever (on a one-thread pool
/// nothing else could ever make room). It returns `QueueFull` at once, with
/// the task handed back, for every intake form.
#[test]
fn a_workers_blocking_submit_into_its_own_full_queue_returns_at_once() {
    let pool = Arc::new(TestPool::build(
        ThreadPool::builder().threads(1).queue_capacity(1),
    ));
    let inner = pool.clone();
    let reasons = pool
        .submit(move || {
            inner.execute(|| ()).expect("room for one");
            let group = inner.group("g");
            [
                inner.execute(|| ()).unwrap_err().reason(),
                inner.submit(|| ()).unwrap_err().reason(),
                inner.task().name("n").execute(|| ()).unwrap_err().reason(),
                group.execute(|| ()).unwrap_err().reason(),
                group.submit(|| ()).unwrap_err().reason(),
                inner.execute_batch(vec![|| ()]).unwrap_err().reason(),
            ]
        })
        .unwrap();
    let reasons = bounded_join(reasons).unwrap();
    assert!(
        reasons.iter().all(|r| *r == RejectReason::QueueFull),
        "{reasons:?}"
    );
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

/// Regression (issue 12, defect 12): dropping the pool inside a stop
/// callback deadlocked when a task of the pool was unregistering that very
/// callback (its drop waits for the running callback, which waited for the
/// pool to terminate). The drop only shuts down then, like a drop from a
/// worker.
#[test]
fn dropping_the_pool_inside_a_stop_callback_does_not_deadlock() {
    let source = StopSource::new();
    let slot = Arc::new(Mutex::new(None::<ThreadPool>));
    let (registered_tx, registered) = mpsc::channel();
    let token = source.token();
    let in_callback = slot.clone();
    let terminated = Arc::new(AtomicBool::new(false));
    let pool = {
        let terminated = terminated.clone();
        ThreadPool::builder()
            .threads(1)
            .on_terminated(move || terminated.store(true, SeqCst))
            .build()
            .unwrap()
    };
    let running = Latch::default();
    let in_task = running.clone();
    pool.execute(move || {
        let callback = token.on_stop(move || {
            running.open();
            let last = in_callback
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take();
            drop(last); // the last handle on the pool
        });
        registered_tx.send(()).unwrap();
        let _ = token.sleep(WAIT);
        // Dropped before the requester reached it, the callback would just
        // be unregistered unrun; the deadlock needs it running.
        in_task.wait();
        drop(callback); // waits for the running callback
    })
    .unwrap();
    *slot.lock().unwrap() = Some(pool);
    registered
        .recv_timeout(WAIT)
        .expect("the callback registered");
    let requester = spawn(move || source.request_stop());
    assert!(requester.join("request_stop whose callback drops the pool"));
    let deadline = Instant::now() + WAIT;
    while !terminated.load(SeqCst) {
        assert!(Instant::now() < deadline, "the pool never terminated");
        thread::yield_now();
    }
}
