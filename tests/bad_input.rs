//! Bad input, every kind tried (issue 7, item 4): each test gives the pool
//! something a careless or unlucky program might, and asserts a clear result
//! with nothing lost and nothing hung.
//!
//! Every wait is bounded.

mod common;

use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use common::{Latch, TestPool, WAIT, bounded_join, spawn};
use drainpool::{RejectReason, StopSource, ThreadPool};

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
