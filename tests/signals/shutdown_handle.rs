//! `ShutdownHandle` driven from real signal handlers in this process: a
//! request drains or stops the pool once, whatever the burst, and a
//! handle outlives its pool harmlessly.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering, Ordering::SeqCst};
use std::sync::{Arc, mpsc};
use std::thread;
use std::time::Duration;
#[cfg(target_os = "linux")]
use std::time::Instant;

use crate::common::{DropCounter, Gate, Hooked, WAIT, bounded_join, bump, named_pool, spawn};
#[cfg(target_os = "linux")]
use crate::eventually;
use crate::{TEST_SIGNAL, serial};
use drainpool::{
    PendingTask, PoolState, ShutdownHandle, StopToken, TaskHandle, TaskId, ThreadPool,
};
use signal_hook::low_level::{raise, register, unregister};

/// A handler for `signal` registered with signal-hook, unregistered on drop.
struct Handler(signal_hook::SigId);

impl Handler {
    /// `action` must be async-signal-safe.
    fn register(signal: i32, action: impl Fn() + Send + Sync + 'static) -> Handler {
        // SAFETY: every action these tests register only calls
        // `ShutdownHandle::request_shutdown{,_now}` (an atomic `fetch_or` and
        // a non-blocking `write(2)`, see drainpool's `signal` module docs) and
        // bumps atomics: no allocation, no lock, nothing that could deadlock
        // or be corrupted when the handler interrupts the thread.
        let id = unsafe { register(signal, action) }.expect("register a handler");
        Handler(id)
    }
}

impl Drop for Handler {
    fn drop(&mut self) {
        unregister(self.0);
    }
}

#[test]
#[cfg_attr(
    windows,
    ignore = "Wine: signal-hook's handlers crash when a signal is delivered (Wine's signal() lacks SIG_GET, so signal-hook chains to the address 2)"
)]
fn handle_in_a_real_signal_handler_drains_and_terminates_the_pool() {
    let _serial = serial();
    let pool = named_pool(2, "sig-drain");
    let handle = pool.shutdown_handle();
    let _handler = Handler::register(TEST_SIGNAL, move || handle.request_shutdown());
    let handles: Vec<TaskHandle<usize>> = (0..20)
        .map(|i| {
            pool.submit(move || {
                thread::sleep(Duration::from_millis(1));
                i
            })
            .unwrap()
        })
        .collect();
    raise(TEST_SIGNAL).unwrap();
    assert!(pool.await_termination(WAIT), "the pool did not terminate");
    assert_eq!(pool.state(), PoolState::Terminated);
    assert!(pool.execute(|| ()).is_err(), "intake still open");
    // A drain: every accepted task ran.
    for (i, handle) in handles.into_iter().enumerate() {
        assert_eq!(handle.join().unwrap(), i);
    }
    assert_eq!(pool.stats().completed, 20);
}

#[test]
#[cfg_attr(
    windows,
    ignore = "Wine: signal-hook's handlers crash when a signal is delivered (Wine's signal() lacks SIG_GET, so signal-hook chains to the address 2)"
)]
fn shutdown_now_requested_by_a_signal_hands_tasks_to_the_next_shutdown_now() {
    // Hammered: the relay takes the queue back, then stashes it. The pool
    // can terminate in between (its workers exit as soon as it is
    // `Stopping`), and the program's own `shutdown_now`, called once
    // `await_termination` says the pool is done, must still get every task,
    // once, in submission order. A long queue widens the window.
    let _serial = serial();
    for round in 0..500 {
        let pool = named_pool(1, "sig-now");
        let handle = pool.shutdown_handle();
        let _handler = Handler::register(TEST_SIGNAL, move || handle.request_shutdown_now());
        let (started_tx, started_rx) = mpsc::channel();
        let running = pool
            .submit(move || {
                started_tx.send(()).unwrap();
                StopToken::current().sleep(WAIT).is_err()
            })
            .unwrap();
        started_rx
            .recv_timeout(WAIT)
            .expect("the first task starts");
        let queued: Vec<TaskHandle<usize>> =
            (0..1000).map(|i| pool.submit(move || i).unwrap()).collect();
        raise(TEST_SIGNAL).unwrap();
        assert!(
            pool.await_termination(WAIT),
            "round {round}: not terminated"
        );
        assert!(
            running.join().unwrap(),
            "round {round}: running task not interrupted"
        );
        let back = pool.shutdown_now();
        let back_ids: Vec<TaskId> = back.iter().map(PendingTask::id).collect();
        let queued_ids: Vec<TaskId> = queued.iter().map(TaskHandle::id).collect();
        assert!(
            back_ids == queued_ids,
            "round {round}: the next shutdown_now returned {} of the {} tasks a \
             signal-requested shutdown_now took back{}",
            back_ids.len(),
            queued_ids.len(),
            if back_ids.is_sorted() {
                ""
            } else {
                ", out of order"
            }
        );
        assert!(pool.shutdown_now().is_empty(), "returned twice");
        // Run the first on this thread; dropping the others cancels them.
        let mut back = back.into_iter();
        back.next().unwrap().run();
        drop(back);
        for (i, handle) in queued.into_iter().enumerate() {
            match handle.join() {
                Ok(n) => assert!(i == 0 && n == 0, "round {round}: task {i} ran"),
                Err(e) => assert!(i > 0 && e.is_cancelled(), "round {round}: task {i}: {e:?}"),
            }
        }
    }
}

#[test]
fn a_handle_outlives_its_pool_harmlessly() {
    let _serial = serial();
    let pool = named_pool(1, "outl");
    let handle = pool.shutdown_handle();
    let clone = handle.clone();
    pool.execute(|| ()).unwrap();
    drop(pool);
    // Many requests to a dead pool: the socket buffer fills up; every
    // request still returns at once, and nothing panics.
    spawn(move || {
        for _ in 0..10_000 {
            clone.request_shutdown();
            clone.request_shutdown_now();
        }
    })
    .join("requests to a dropped pool");
    handle.request_shutdown();
    drop(handle);
    // The relay thread has gone too.
    #[cfg(target_os = "linux")]
    eventually("the relay thread exits", || {
        !std::fs::read_dir("/proc/self/task").unwrap().any(|task| {
            let comm = task.unwrap().path().join("comm");
            std::fs::read_to_string(comm).is_ok_and(|name| name.trim() == "outl-relay")
        })
    });
}

#[test]
#[cfg_attr(
    windows,
    ignore = "Wine: signal-hook's handlers crash when a signal is delivered (Wine's signal() lacks SIG_GET, so signal-hook chains to the address 2)"
)]
fn a_burst_of_100_signals_terminates_the_pool_once_and_loses_nothing() {
    let _serial = serial();
    let terminations = Arc::new(AtomicUsize::new(0));
    let pool = ThreadPool::builder()
        .threads(2)
        .thread_name("burst")
        .on_terminated({
            let terminations = terminations.clone();
            move || {
                terminations.fetch_add(1, Ordering::SeqCst);
            }
        })
        .build()
        .unwrap();
    let ran = Arc::new(AtomicUsize::new(0));
    let handles: Vec<TaskHandle<()>> = (0..200).map(|_| pool.submit(bump(&ran)).unwrap()).collect();
    let delivered = Arc::new(AtomicUsize::new(0));
    let handle = pool.shutdown_handle();
    let _handler = Handler::register(TEST_SIGNAL, {
        let delivered = delivered.clone();
        move || {
            delivered.fetch_add(1, Ordering::SeqCst);
            handle.request_shutdown();
        }
    });
    for _ in 0..100 {
        raise(TEST_SIGNAL).unwrap();
    }
    // `raise` runs the handler on this thread before it returns.
    assert_eq!(delivered.load(Ordering::SeqCst), 100);
    assert!(pool.await_termination(WAIT), "the pool did not terminate");
    assert_eq!(
        terminations.load(Ordering::SeqCst),
        1,
        "terminated more than once"
    );
    for handle in handles {
        handle.join().expect("a drained task completes");
    }
    assert_eq!(ran.load(Ordering::SeqCst), 200, "a task ran twice or never");
    assert_eq!(pool.stats().completed, 200);
    assert!(pool.shutdown_now().is_empty());
}

#[test]
#[cfg_attr(
    windows,
    ignore = "Wine: signal-hook's handlers crash when a signal is delivered (Wine's signal() lacks SIG_GET, so signal-hook chains to the address 2)"
)]
fn a_burst_of_mixed_requests_accounts_for_every_task_once() {
    let _serial = serial();
    let pool = named_pool(2, "mixed");
    let ran = Arc::new(AtomicUsize::new(0));
    let handles: Vec<TaskHandle<()>> = (0..500).map(|_| pool.submit(bump(&ran)).unwrap()).collect();
    let handle = pool.shutdown_handle();
    let delivered = Arc::new(AtomicUsize::new(0));
    let _handler = Handler::register(TEST_SIGNAL, {
        let delivered = delivered.clone();
        move || {
            if delivered.fetch_add(1, Ordering::SeqCst) % 2 == 0 {
                handle.request_shutdown();
            } else {
                handle.request_shutdown_now();
            }
        }
    });
    for _ in 0..100 {
        raise(TEST_SIGNAL).unwrap();
    }
    assert!(pool.await_termination(WAIT), "the pool did not terminate");
    // Whatever the relay took back is either with the next shutdown_now or
    // (the race above) still in the pool; dropping the pool cancels it.
    let back = pool.shutdown_now();
    let returned = back.len();
    drop(back);
    drop(pool);
    let (mut completed, mut cancelled) = (0, 0);
    for handle in handles {
        match spawn(move || handle.join()).join("a handle resolves") {
            Ok(()) => completed += 1,
            Err(e) => {
                assert!(e.is_cancelled(), "{e:?}");
                cancelled += 1;
            }
        }
    }
    assert_eq!(completed, ran.load(Ordering::SeqCst));
    assert_eq!(completed + cancelled, 500);
    assert!(returned <= cancelled);
}

/// A TEST_SIGNAL handler that counts deliveries and asks `handle` for a
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
            register(TEST_SIGNAL, move || {
                delivered.fetch_add(1, SeqCst);
                if now {
                    handle.request_shutdown_now();
                } else {
                    handle.request_shutdown();
                }
            })
        }
        .expect("a TEST_SIGNAL handler");
        OnSigusr1(id)
    }
}

impl Drop for OnSigusr1 {
    fn drop(&mut self) {
        unregister(self.0);
    }
}

/// 100 TEST_SIGNAL in a burst, each asking for a shutdown: the pool shuts down
/// once, drains every queued task exactly once, and terminates once.
#[test]
#[cfg_attr(
    windows,
    ignore = "Wine: signal-hook's handlers crash when a signal is delivered (Wine's signal() lacks SIG_GET, so signal-hook chains to the address 2)"
)]
fn a_burst_of_100_shutdown_signals_drains_once_and_loses_nothing() {
    let _serial = serial();
    let hooked = Hooked::default();
    let pool = hooked.builder().threads(2).build().unwrap();
    let gate = Gate::occupying(&pool, 2);
    let ran = Arc::new(AtomicUsize::new(0));
    let handles: Vec<TaskHandle<()>> = (0..200).map(|_| pool.submit(bump(&ran)).unwrap()).collect();
    let delivered = Arc::new(AtomicUsize::new(0));
    let handler = OnSigusr1::register(pool.shutdown_handle(), false, delivered.clone());
    for _ in 0..100 {
        raise(TEST_SIGNAL).unwrap();
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

/// 100 TEST_SIGNAL in a burst, each asking for a shutdown_now while both
/// workers are held: every queued task comes back exactly once, from the
/// program's next shutdown_now (the relay keeps what it took back), and
/// each handle then resolves by what the program did with it.
#[test]
#[cfg_attr(
    windows,
    ignore = "Wine: signal-hook's handlers crash when a signal is delivered (Wine's signal() lacks SIG_GET, so signal-hook chains to the address 2)"
)]
fn a_burst_of_100_shutdown_now_signals_hands_every_task_back_once() {
    let _serial = serial();
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
        raise(TEST_SIGNAL).unwrap();
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
        if i % 2 == 0 {
            task.run();
        }
    }
    gate.release();
    assert!(pool.await_termination(WAIT), "the pool did not terminate");
    drop(handler);
    for (i, handle) in handles.into_iter().enumerate() {
        match bounded_join(handle) {
            Ok(()) => assert!(i % 2 == 0, "task {i} ran but was dropped"),
            Err(e) => assert!(e.is_cancelled() && i % 2 != 0, "task {i}: {e:?}"),
        }
    }
    assert_eq!(ran.load(SeqCst), 150);
    assert_eq!(drops.count(), 300);
    assert_eq!(hooked.counts(), (2, 2, 1));
    let stats = pool.stats();
    assert_eq!((stats.completed, stats.cancelled), (152, 150));
    assert!(pool.shutdown_now().is_empty());
}

/// The names of this process's threads (Linux: `/proc/self/task`).
#[cfg(target_os = "linux")]
fn thread_names() -> Vec<String> {
    std::fs::read_dir("/proc/self/task")
        .map(|tasks| {
            tasks
                .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
                .map(|name| name.trim_end().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Regression (issue 12, defect 2): a `shutdown_handle()` taken while
/// another thread shut a one-thread pool down leaked its relay thread,
/// blocked in a socket read forever, a few rounds in 3,000: the relay was
/// published only after its thread started, so termination could ring
/// nobody.
#[cfg(target_os = "linux")]
#[test]
fn a_handle_taken_while_the_pool_terminates_leaves_no_relay_thread_behind() {
    const ROUNDS: usize = 3000;
    for round in 0..ROUNDS {
        let pool = Arc::new(named_pool(1, &format!("rl{round}")));
        let shutter = {
            let pool = pool.clone();
            spawn(move || pool.shutdown())
        };
        let handle = pool.shutdown_handle();
        shutter.join("the shutdown");
        assert!(pool.await_termination(WAIT));
        drop(handle);
        drop(pool);
    }
    // Every relay rung at termination exits; poll until they have.
    let deadline = Instant::now() + WAIT;
    loop {
        let left: Vec<String> = thread_names()
            .into_iter()
            .filter(|name| name.starts_with("rl") && name.ends_with("-relay"))
            .collect();
        if left.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "relay threads of terminated pools never exited: {left:?}"
        );
        thread::sleep(Duration::from_millis(10));
    }
}
