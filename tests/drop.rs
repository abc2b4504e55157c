//! Dropping a pool: it drains and joins; dropped from its own worker or
//! inside a stop callback it does not deadlock and still terminates;
//! dropped after `shutdown_now` it ends.

mod common;

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering, Ordering::SeqCst};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use common::{AT_ONCE, BRIEF, DropCounter, Gate, Latch, Tracked, WAIT, bounded_join, bump, spawn};
use drainpool::{StopSource, StopToken, TaskError, ThreadPool};

/// Drops `pool` on another thread; the receiver hears when the drop returned.
/// (A drop that hangs leaks that thread instead of hanging the test.)
fn drop_elsewhere(pool: ThreadPool) -> mpsc::Receiver<()> {
    let (dropped_tx, dropped_rx) = mpsc::channel();
    thread::spawn(move || {
        drop(pool);
        dropped_tx.send(()).unwrap();
    });
    dropped_rx
}

/// Lives in a worker's thread-local storage; its drop, as the thread ends,
/// waits for `gone` and then counts.
struct ThreadEnd {
    _tracked: Tracked,
    gone: Latch,
}

impl Drop for ThreadEnd {
    fn drop(&mut self) {
        self.gone.wait(); // `_tracked` counts after this
    }
}

thread_local! {
    static THREAD_END: RefCell<Option<ThreadEnd>> = const { RefCell::new(None) };
}

#[test]
fn dropping_the_pool_drains_every_accepted_task() {
    const THREADS: usize = 2;
    const QUEUED: usize = 500;
    let exits = Arc::new(AtomicUsize::new(0));
    let terminated = Arc::new(AtomicBool::new(false));
    let pool = {
        let (exits, terminated) = (exits.clone(), terminated.clone());
        ThreadPool::builder()
            .threads(THREADS)
            .on_thread_exit(move |_| {
                exits.fetch_add(1, Ordering::SeqCst);
            })
            .on_terminated(move || terminated.store(true, Ordering::SeqCst))
            .build()
            .unwrap()
    };
    let gate = Gate::occupying(&pool, THREADS);
    let ran = Arc::new(AtomicUsize::new(0));
    let drops = DropCounter::default();
    let handles: Vec<_> = (0..QUEUED)
        .map(|i| {
            let (ran, tracked) = (ran.clone(), drops.tracked());
            pool.submit(move || {
                let _tracked = tracked;
                ran.fetch_add(1, Ordering::SeqCst);
                i
            })
            .unwrap()
        })
        .collect();

    let dropped = drop_elsewhere(pool);
    assert_eq!(
        dropped.recv_timeout(BRIEF),
        Err(RecvTimeoutError::Timeout),
        "drop waits for the accepted work"
    );
    gate.release();
    dropped.recv_timeout(WAIT).expect("drop returned");

    // Everything below was true by the time drop returned.
    assert_eq!(ran.load(Ordering::SeqCst), QUEUED, "every queued task ran");
    assert_eq!(drops.count(), QUEUED);
    assert_eq!(exits.load(Ordering::SeqCst), THREADS, "every thread exited");
    assert!(terminated.load(Ordering::SeqCst), "on_terminated ran");
    for (i, handle) in handles.into_iter().enumerate() {
        assert!(handle.is_finished());
        assert_eq!(handle.join().unwrap(), i, "handles outlive the pool");
    }
}

#[test]
fn dropping_the_pool_joins_its_threads() {
    // Each worker's thread-local value dies with its thread, after the
    // worker's body (and on_thread_exit) returned, and waits for `gone`
    // as it does: a drop that only waited for the workers' loops to end, and
    // did not join the threads, returns while it waits.
    const THREADS: usize = 3;
    let lives = DropCounter::default();
    let gone = Latch::default();
    let exited = Arc::new(Mutex::new(Vec::new()));
    let pool = {
        let (lives, gone, exited) = (lives.clone(), gone.clone(), exited.clone());
        ThreadPool::builder()
            .threads(THREADS)
            .on_thread_start(move |_| {
                let end = ThreadEnd {
                    _tracked: lives.tracked(),
                    gone: gone.clone(),
                };
                THREAD_END.with(|slot| *slot.borrow_mut() = Some(end));
            })
            .on_thread_exit(move |index| exited.lock().unwrap().push(index))
            .build()
            .unwrap()
    };
    let handles: Vec<_> = (0..THREADS * 10)
        .map(|i| pool.submit(move || i).unwrap())
        .collect();
    for handle in handles {
        bounded_join(handle).unwrap();
    }

    let dropped = drop_elsewhere(pool);
    assert_eq!(
        dropped.recv_timeout(BRIEF),
        Err(RecvTimeoutError::Timeout),
        "drop waits until the worker threads are gone"
    );
    gone.open();
    dropped.recv_timeout(WAIT).expect("drop returned");
    assert_eq!(lives.count(), THREADS, "every worker thread is gone");
    let mut exited = exited.lock().unwrap().clone();
    exited.sort_unstable();
    assert_eq!(
        exited,
        (0..THREADS).collect::<Vec<_>>(),
        "on_thread_exit ran for each"
    );
}

#[test]
fn dropping_the_pool_from_its_own_worker_does_not_deadlock() {
    let (terminated_tx, terminated_rx) = mpsc::channel();
    let pool = Arc::new(
        ThreadPool::builder()
            .threads(1)
            .on_terminated(move || terminated_tx.send(()).unwrap())
            .build()
            .unwrap(),
    );
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let (report_tx, report_rx) = mpsc::channel();
    let own = pool.clone();
    pool.execute(move || {
        let _ = go_rx.recv_timeout(WAIT);
        let last = Arc::try_unwrap(own);
        let was_last = last.is_ok();
        drop(last); // the ThreadPool itself, dropped on its own worker
        report_tx.send(was_last).unwrap();
    })
    .unwrap();
    // Queued behind the dropping task on the only worker.
    let ran = Arc::new(AtomicUsize::new(0));
    for _ in 0..5 {
        pool.execute(bump(&ran)).unwrap();
    }

    drop(pool); // not the last reference: the task holds one
    go_tx.send(()).unwrap();
    assert_eq!(
        report_rx.recv_timeout(WAIT),
        Ok(true),
        "the last reference was dropped inside the task, and that drop returned"
    );
    terminated_rx
        .recv_timeout(WAIT)
        .expect("the pool still terminated");
    assert_eq!(ran.load(Ordering::SeqCst), 5, "the accepted tasks drained");
}

/// The last handle on a pool dropped inside one of its tasks: `Drop` would
/// wait for the very task it runs in, so it only shuts down; the queued
/// tasks still drain, every worker exits and `on_terminated` runs.
#[test]
fn dropping_the_pool_from_its_own_worker_drains_and_terminates() {
    let terminated = Latch::default();
    let exits = Arc::new(AtomicUsize::new(0));
    let pool = Arc::new(
        ThreadPool::builder()
            .threads(1)
            .on_thread_exit({
                let exits = exits.clone();
                move |_| {
                    exits.fetch_add(1, SeqCst);
                }
            })
            .on_terminated({
                let terminated = terminated.clone();
                move || terminated.open()
            })
            .build()
            .unwrap(),
    );
    let gate = Gate::new();
    let owner = pool.clone();
    let dropped_in = Arc::new(Mutex::new(None));
    pool.execute(gate.hold({
        let dropped_in = dropped_in.clone();
        move || {
            let start = Instant::now();
            drop(owner);
            *dropped_in.lock().unwrap() = Some(start.elapsed());
        }
    }))
    .unwrap();
    gate.wait_entered(1);
    let ran = Arc::new(AtomicUsize::new(0));
    for _ in 0..10 {
        pool.execute(bump(&ran)).unwrap();
    }
    drop(pool); // not the last handle: the task holds one
    gate.release();
    terminated.expect_open();
    let took = dropped_in.lock().unwrap().expect("the drop returned");
    assert!(took < AT_ONCE, "the drop inside the task took {took:?}");
    assert_eq!(ran.load(SeqCst), 10, "the drain ran every queued task");
    assert_eq!(exits.load(SeqCst), 1);
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

#[test]
fn dropping_the_pool_after_shutdown_now_terminates() {
    const THREADS: usize = 2;
    const QUEUED: usize = 10;
    let (terminated_tx, terminated_rx) = mpsc::channel();
    let pool = ThreadPool::builder()
        .threads(THREADS)
        .on_terminated(move || terminated_tx.send(()).unwrap())
        .build()
        .unwrap();
    // Every worker runs a task that ends only when its stop flag is raised.
    let (started_tx, started_rx) = mpsc::channel();
    let (saw_stop_tx, saw_stop_rx) = mpsc::channel();
    for _ in 0..THREADS {
        let (started, saw_stop) = (started_tx.clone(), saw_stop_tx.clone());
        pool.execute(move || {
            let token = StopToken::current();
            started.send(()).unwrap();
            let deadline = Instant::now() + WAIT;
            while !token.is_stop_requested() && Instant::now() < deadline {
                thread::yield_now();
            }
            saw_stop.send(token.is_stop_requested()).unwrap();
        })
        .unwrap();
    }
    for _ in 0..THREADS {
        started_rx.recv_timeout(WAIT).expect("every worker is busy");
    }
    let drops = DropCounter::default();
    let mut handles = Vec::new();
    for i in 0..QUEUED {
        let tracked = drops.tracked();
        if i % 2 == 0 {
            pool.execute(move || drop(tracked)).unwrap();
        } else {
            handles.push(pool.submit(move || drop(tracked)).unwrap());
        }
    }

    let pending = pool.shutdown_now();
    assert_eq!(pending.len(), QUEUED);
    drop(pending);
    assert_eq!(drops.count(), QUEUED, "the returned tasks were dropped");
    for handle in handles {
        assert!(matches!(bounded_join(handle), Err(TaskError::Cancelled)));
    }
    assert_eq!(pool.stats().cancelled, QUEUED as u64);

    drop_elsewhere(pool)
        .recv_timeout(WAIT)
        .expect("drop returned");
    terminated_rx
        .recv_timeout(Duration::ZERO)
        .expect("terminated before drop returned");
    for _ in 0..THREADS {
        assert_eq!(saw_stop_rx.recv_timeout(WAIT), Ok(true));
    }
}
