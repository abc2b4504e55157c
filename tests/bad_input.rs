//! Bad input, every kind tried (issue 7, item 4): each test gives the pool
//! something a careless or unlucky program might, and asserts a clear result
//! with nothing lost and nothing hung.
//!
//! - A burst of 100 signals at a `ShutdownHandle`.
//!
//! Tests that touch signal handlers hold [`SIGNALS`]. Every wait is
//! bounded.

mod common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use common::{DropCounter, Gate, Hooked, Latch, TestPool, WAIT, bounded_join, bump, spawn};
use drainpool::signal::SIGUSR1;
use drainpool::{PoolState, RejectReason, ShutdownHandle, StopSource, TaskHandle, ThreadPool};
use signal_hook::low_level::{raise, register, unregister};

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
