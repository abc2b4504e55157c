//! Interruptible waits: `sleep`, `recv`, `recv_timeout`, `wait`,
//! `wait_while`, `wait_timeout` and `lock` on a `StopToken`.
//!
//! For each wait: a stop requested before the call returns `Interrupted` at
//! once; a stop requested while it blocks wakes it promptly; without a stop
//! it behaves like the wait it wraps. The lost-wake-up window (a stop landing
//! just as the wait begins) is hammered for every wait. Last, the RAII side:
//! a guard from `token.lock` is released when its task panics, and a task
//! blocked in `token.lock` behind a stuck task does not hold up
//! `shutdown_now`.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use common::{BRIEF, Rng, Spawned, WAIT, named_pool, sleep_until_stopped, spawn, spin};
use crossbeam_channel::{Receiver, Sender};
use drainpool::{Interrupted, StopSource, StopToken, TaskError, ThreadPool, WaitError};
use parking_lot::{Condvar, Mutex, MutexGuard};

/// How fast an interrupted wait must return (generous: CI machines stall).
const PROMPT: Duration = Duration::from_secs(5);
/// A wait's own timeout when only a stop should end it.
const LONG: Duration = Duration::from_secs(60);

/// Every interruptible wait.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Sleep,
    Recv,
    RecvTimeout,
    Wait,
    WaitWhile,
    WaitTimeout,
    Lock,
}

const ALL: [Kind; 7] = [
    Kind::Sleep,
    Kind::Recv,
    Kind::RecvTimeout,
    Kind::Wait,
    Kind::WaitWhile,
    Kind::WaitTimeout,
    Kind::Lock,
];

/// What the waits wait on. Nothing arrives unless a test sends it: the
/// channel stays empty (its sender alive), the condition stays false, and
/// `contended` is held by the test when a `Lock` wait must block.
struct Fixture {
    tx: Sender<u32>,
    rx: Receiver<u32>,
    state: Mutex<bool>,
    cond: Condvar,
    contended: Mutex<u32>,
}

impl Fixture {
    fn new() -> Arc<Fixture> {
        let (tx, rx) = crossbeam_channel::unbounded();
        Arc::new(Fixture {
            tx,
            rx,
            state: Mutex::new(false),
            cond: Condvar::new(),
            contended: Mutex::new(0),
        })
    }
}

/// Waits in `kind` until something other than the fixture ends it: only a
/// stop can. `ready` is called just before the wait begins (for the condvar
/// waits, with the condvar's mutex already held).
fn block(
    kind: Kind,
    token: &StopToken,
    fx: &Fixture,
    ready: impl FnOnce(),
) -> Result<(), WaitError> {
    match kind {
        Kind::Sleep => {
            ready();
            token.sleep(LONG)?;
        }
        Kind::Recv => {
            ready();
            token.recv(&fx.rx)?;
        }
        Kind::RecvTimeout => {
            ready();
            token.recv_timeout(&fx.rx, LONG)?;
        }
        Kind::Wait => {
            let mut guard = fx.state.lock();
            ready();
            // `wait` may end spuriously: only the condition or a stop counts.
            while !*guard {
                token.wait(&fx.cond, &mut guard)?;
            }
        }
        Kind::WaitWhile => {
            let mut guard = fx.state.lock();
            ready();
            token.wait_while(&fx.cond, &mut guard, |ready| !*ready)?;
        }
        Kind::WaitTimeout => {
            let mut guard = fx.state.lock();
            ready();
            while !*guard {
                token.wait_timeout(&fx.cond, &mut guard, LONG)?;
            }
        }
        Kind::Lock => {
            ready();
            let guard = token.lock(&fx.contended)?;
            drop(guard);
        }
    }
    Ok(())
}

/// A thread that takes `fx.state`'s lock and, holding it, runs `wait` (a
/// condvar wait on `fx.cond`, and whatever follows it). Returns once the
/// thread holds the lock: whoever takes the lock next finds it parked in
/// the wait.
fn condvar_waiter<T: Send + 'static>(
    fx: &Arc<Fixture>,
    wait: impl FnOnce(&Fixture, &mut MutexGuard<'_, bool>) -> T + Send + 'static,
) -> Spawned<T> {
    let (ready_tx, ready_rx) = mpsc::channel();
    let fx = fx.clone();
    let waiter = spawn(move || {
        let mut guard = fx.state.lock();
        ready_tx.send(()).unwrap(); // sent with the lock held
        wait(&fx, &mut guard)
    });
    ready_rx.recv_timeout(WAIT).unwrap();
    waiter
}

// ----- (a) interrupted before the call --------------------------------------

/// A stop requested before the call: `Interrupted` at once, even when the
/// wait itself could complete (a message waiting, the lock free).
fn interrupted_before(kind: Kind) {
    let fx = Fixture::new();
    fx.tx.send(7).unwrap();
    let source = StopSource::new();
    source.request_stop();
    let started = Instant::now();
    let result = block(kind, &source.token(), &fx, || ());
    let took = started.elapsed();
    assert_eq!(result, Err(WaitError::Interrupted), "{kind:?}");
    assert!(took < PROMPT, "{kind:?} took {took:?}");
    assert_eq!(
        fx.rx.try_recv(),
        Ok(7),
        "{kind:?}: the message is still there"
    );
    assert!(
        !fx.contended.is_locked(),
        "{kind:?}: the lock was not taken"
    );
}

// ----- (b) interrupted during the call --------------------------------------

/// A stop requested while the wait blocks: it returns `Interrupted` promptly.
fn interrupted_during(kind: Kind) {
    let fx = Fixture::new();
    let held = (kind == Kind::Lock).then(|| fx.contended.lock());
    let source = StopSource::new();
    let (ready_tx, ready_rx) = mpsc::channel();
    let (done_tx, done_rx) = mpsc::channel();
    let waiter = {
        let token = source.token();
        let fx = fx.clone();
        spawn(move || {
            let result = block(kind, &token, &fx, || ready_tx.send(()).unwrap());
            done_tx.send((result, Instant::now())).unwrap();
        })
    };
    ready_rx.recv_timeout(WAIT).unwrap();
    assert!(
        done_rx.recv_timeout(BRIEF).is_err(),
        "{kind:?} returned with no stop requested"
    );
    let requested = Instant::now();
    assert!(source.request_stop());
    let (result, woke) = done_rx
        .recv_timeout(PROMPT)
        .unwrap_or_else(|_| panic!("{kind:?} was not interrupted within {PROMPT:?}"));
    assert_eq!(result, Err(WaitError::Interrupted), "{kind:?}");
    let latency = woke.saturating_duration_since(requested);
    assert!(latency < PROMPT, "{kind:?} took {latency:?}");
    waiter.join("the waiter");
    drop(held);
}

macro_rules! per_kind {
    ($($name:ident: $kind:expr;)*) => {
        mod before {
            //! (a) A stop requested before the call.
            use super::*;
            $(#[test] fn $name() { interrupted_before($kind) })*
        }
        mod during {
            //! (b) A stop requested while the wait blocks.
            use super::*;
            $(#[test] fn $name() { interrupted_during($kind) })*
        }
        mod lost_wake_up {
            //! The stop lands at random offsets around the start of the wait.
            use super::*;
            $(#[test] fn $name() { hammer($kind) })*
        }
    };
}

per_kind! {
    sleep: Kind::Sleep;
    recv: Kind::Recv;
    recv_timeout: Kind::RecvTimeout;
    wait: Kind::Wait;
    wait_while: Kind::WaitWhile;
    wait_timeout: Kind::WaitTimeout;
    lock: Kind::Lock;
}

#[test]
fn recv_prefers_a_stop_requested_before_the_call_over_a_waiting_message() {
    let (tx, rx) = crossbeam_channel::unbounded();
    tx.send(1).unwrap();
    let source = StopSource::new();
    source.request_stop();
    assert_eq!(source.token().recv(&rx), Err(WaitError::Interrupted));
    assert_eq!(
        source.token().recv_timeout(&rx, Duration::ZERO),
        Err(WaitError::Interrupted)
    );
    assert_eq!(rx.try_recv(), Ok(1));
}

#[test]
fn wait_while_with_a_false_condition_does_not_wait_even_when_stopped() {
    let m = Mutex::new(true);
    let cv = Condvar::new();
    let source = StopSource::new();
    source.request_stop();
    let mut guard = m.lock();
    assert_eq!(
        source.token().wait_while(&cv, &mut guard, |ready| !*ready),
        Ok(())
    );
}

#[test]
fn an_interrupted_condvar_wait_still_holds_the_lock() {
    let fx = Fixture::new();
    let source = StopSource::new();
    let token = source.token();
    let waiter = condvar_waiter(&fx, move |fx, guard| {
        let result = token.wait(&fx.cond, guard);
        // Still ours: nobody could have changed it meanwhile.
        **guard = true;
        (result, fx.state.is_locked())
    });
    source.request_stop();
    let (result, locked) = waiter.join_within("the waiter", PROMPT);
    assert_eq!(result, Err(Interrupted));
    assert!(locked);
    assert!(*fx.state.lock());
}

// ----- (c) never interrupted: like the wrapped wait --------------------------

#[test]
fn sleep_without_a_stop_sleeps_the_whole_duration() {
    let source = StopSource::new();
    for token in [source.token(), StopToken::never(), StopToken::current()] {
        let started = Instant::now();
        assert_eq!(token.sleep(Duration::from_millis(30)), Ok(()));
        assert!(started.elapsed() >= Duration::from_millis(30));
        assert_eq!(token.sleep(Duration::ZERO), Ok(()));
    }
}

#[test]
fn recv_without_a_stop_is_a_plain_recv() {
    let source = StopSource::new();
    for token in [source.token(), StopToken::never()] {
        let (tx, rx) = crossbeam_channel::unbounded();
        tx.send(1).unwrap();
        tx.send(2).unwrap();
        assert_eq!(token.recv(&rx), Ok(1));
        assert_eq!(token.recv(&rx), Ok(2));

        // A message sent while blocked wakes it.
        let (ready_tx, ready_rx) = mpsc::channel();
        let waiter = {
            let token = token.clone();
            let rx = rx.clone();
            spawn(move || {
                ready_tx.send(()).unwrap();
                token.recv(&rx)
            })
        };
        ready_rx.recv_timeout(WAIT).unwrap();
        thread::sleep(BRIEF);
        assert!(!waiter.is_finished(), "recv returned with nothing sent");
        tx.send(3).unwrap();
        assert_eq!(waiter.join("the waiter"), Ok(3));

        // Messages first, then Disconnected.
        tx.send(4).unwrap();
        drop(tx);
        assert_eq!(token.recv(&rx), Ok(4));
        assert_eq!(token.recv(&rx), Err(WaitError::Disconnected));
    }
    assert!(!source.is_stop_requested());
}

#[test]
fn recv_from_a_rendezvous_channel() {
    let source = StopSource::new();
    let (tx, rx) = crossbeam_channel::bounded(0);
    let sender = spawn(move || tx.send("hand-off"));
    assert_eq!(source.token().recv(&rx), Ok("hand-off"));
    assert!(sender.join("the sender").is_ok());
    assert_eq!(source.token().recv(&rx), Err(WaitError::Disconnected));
}

#[test]
fn a_disconnect_while_blocked_wakes_recv() {
    let source = StopSource::new();
    let (tx, rx) = crossbeam_channel::unbounded::<u32>();
    let (ready_tx, ready_rx) = mpsc::channel();
    let token = source.token();
    let waiter = spawn(move || {
        ready_tx.send(()).unwrap();
        token.recv(&rx)
    });
    ready_rx.recv_timeout(WAIT).unwrap();
    drop(tx);
    assert_eq!(
        waiter.join_within("the waiter", PROMPT),
        Err(WaitError::Disconnected)
    );
}

#[test]
fn recv_timeout_without_a_stop_is_a_plain_recv_timeout() {
    let source = StopSource::new();
    for token in [source.token(), StopToken::never()] {
        let (tx, rx) = crossbeam_channel::unbounded();
        let started = Instant::now();
        assert_eq!(
            token.recv_timeout(&rx, Duration::from_millis(30)),
            Err(WaitError::Timeout)
        );
        assert!(started.elapsed() >= Duration::from_millis(30));

        tx.send(5).unwrap();
        assert_eq!(token.recv_timeout(&rx, WAIT), Ok(5));

        let sender = spawn(move || {
            tx.send(6).unwrap();
            tx // keep it alive until joined
        });
        assert_eq!(token.recv_timeout(&rx, WAIT), Ok(6));
        drop(sender.join("the sender"));
        assert_eq!(token.recv_timeout(&rx, WAIT), Err(WaitError::Disconnected));
        // An overflowing timeout means forever, not a panic.
        let (tx, rx) = crossbeam_channel::unbounded();
        tx.send(8).unwrap();
        assert_eq!(token.recv_timeout(&rx, Duration::MAX), Ok(8));
    }
}

/// A waiter that blocks on `fx.cond` until `fx.state` is true, through
/// `wait` (looping) or `wait_while`; `notify_all` releases it.
fn condvar_is_woken_by_notify(token: StopToken, use_wait_while: bool) {
    let fx = Fixture::new();
    let waiter = condvar_waiter(&fx, move |fx, guard| {
        if use_wait_while {
            token.wait_while(&fx.cond, guard, |ready| !*ready)
        } else {
            while !**guard {
                token.wait(&fx.cond, guard)?;
            }
            Ok(())
        }
    });
    thread::sleep(BRIEF);
    assert!(!waiter.is_finished(), "returned with the condition false");
    {
        // Taking the lock proves the waiter is parked in the wait.
        let mut guard = fx.state.lock();
        *guard = true;
        fx.cond.notify_one();
    }
    assert_eq!(waiter.join("the waiter"), Ok(()));
}

#[test]
fn wait_without_a_stop_is_woken_by_notify() {
    condvar_is_woken_by_notify(StopSource::new().token(), false);
    condvar_is_woken_by_notify(StopToken::never(), false);
}

#[test]
fn wait_while_without_a_stop_is_woken_by_notify() {
    condvar_is_woken_by_notify(StopSource::new().token(), true);
    condvar_is_woken_by_notify(StopToken::never(), true);
    // A false condition: no wait at all.
    let m = Mutex::new(true);
    let mut guard = m.lock();
    assert_eq!(
        StopSource::new()
            .token()
            .wait_while(&Condvar::new(), &mut guard, |ready| !*ready),
        Ok(())
    );
}

#[test]
fn wait_timeout_without_a_stop_times_out_or_is_woken() {
    let source = StopSource::new();
    for token in [source.token(), StopToken::never()] {
        let m = Mutex::new(false);
        let cv = Condvar::new();
        let mut guard = m.lock();
        let started = Instant::now();
        assert_eq!(
            token.wait_timeout(&cv, &mut guard, Duration::from_millis(30)),
            Err(WaitError::Timeout)
        );
        assert!(started.elapsed() >= Duration::from_millis(30));
        drop(guard);

        let fx = Fixture::new();
        let waiter = condvar_waiter(&fx, move |fx, guard| {
            while !**guard {
                token.wait_timeout(&fx.cond, guard, WAIT)?;
            }
            Ok::<(), WaitError>(())
        });
        {
            let mut guard = fx.state.lock();
            *guard = true;
            fx.cond.notify_all();
        }
        assert_eq!(waiter.join("the waiter"), Ok(()));
    }
}

#[test]
fn a_finished_condvar_wait_leaves_no_stop_callback_behind() {
    // After a condvar wait ends normally, a stop requested while the waiter
    // still holds the mutex must not find a callback that tries to take it
    // (it would stall the requester).
    let fx = Fixture::new();
    let source = StopSource::new();
    let token = source.token();
    let (woke_tx, woke_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let waiter = {
        let fx = fx.clone();
        spawn(move || {
            let mut guard = fx.state.lock();
            let result = token.wait_timeout(&fx.cond, &mut guard, Duration::from_millis(1));
            woke_tx.send(result).unwrap();
            // Keep the mutex while the main thread requests the stop.
            let _ = release_rx.recv_timeout(WAIT);
        })
    };
    assert_eq!(woke_rx.recv_timeout(WAIT).unwrap(), Err(WaitError::Timeout));
    assert!(fx.state.is_locked());
    let started = Instant::now();
    assert!(source.request_stop());
    let took = started.elapsed();
    release_tx.send(()).unwrap();
    waiter.join("the waiter");
    assert!(
        took < Duration::from_millis(50),
        "request_stop took {took:?}: a callback of a finished wait was still registered"
    );
}

#[test]
fn request_stop_while_holding_the_waiters_mutex_does_not_stall() {
    // A natural pattern: change the shared state and request the stop under
    // the same lock the waiter's condvar uses. The waiter is parked (it is
    // not holding the mutex), so nothing can be missed; the requester must
    // not stall trying to take a mutex it holds itself.
    let fx = Fixture::new();
    let source = StopSource::new();
    let token = source.token();
    let waiter = condvar_waiter(&fx, move |fx, guard| {
        token.wait_while(&fx.cond, guard, |ready| !*ready)
    });
    let took = {
        // Taking the lock proves the waiter is parked in its wait.
        let mut guard = fx.state.lock();
        *guard = false; // still not ready: only the stop may end the wait
        let started = Instant::now();
        assert!(source.request_stop());
        started.elapsed()
    };
    assert_eq!(waiter.join_within("the waiter", PROMPT), Err(Interrupted));
    assert!(
        took < Duration::from_millis(50),
        "request_stop stalled {took:?} because the requesting thread holds the waiter's mutex"
    );
}

#[test]
fn lock_without_a_stop_is_a_plain_lock() {
    let source = StopSource::new();
    for token in [source.token(), StopToken::never()] {
        let data = Arc::new(Mutex::new(0u32));
        // Uncontended.
        *token.lock(&data).unwrap() += 1;

        // Contended: acquired once the holder lets go, not before.
        let released = Arc::new(AtomicBool::new(false));
        let held = data.lock();
        let (ready_tx, ready_rx) = mpsc::channel();
        let waiter = {
            let token = token.clone();
            let data = data.clone();
            let released = released.clone();
            spawn(move || {
                ready_tx.send(()).unwrap();
                let mut guard = token.lock(&data)?;
                *guard += 1;
                Ok::<bool, Interrupted>(released.load(Ordering::SeqCst))
            })
        };
        ready_rx.recv_timeout(WAIT).unwrap();
        thread::sleep(BRIEF);
        assert!(!waiter.is_finished(), "took a lock that was held");
        released.store(true, Ordering::SeqCst);
        drop(held);
        assert_eq!(waiter.join("the waiter"), Ok(true));
        assert_eq!(*data.lock(), 2);
    }
}

// ----- inside pool tasks ------------------------------------------------------

/// Every wait, blocked inside a pool task, ends with `Interrupted` when
/// `interrupt` is applied to the pool or to the task's handle.
fn every_wait_in_a_task_is_interrupted(by_shutdown_now: bool) {
    let pool = ThreadPool::new(ALL.len()).unwrap();
    let fx = Fixture::new();
    let held = fx.contended.lock();
    let (ready_tx, ready_rx) = mpsc::channel();
    let handles: Vec<_> = ALL
        .iter()
        .map(|&kind| {
            let fx = fx.clone();
            let ready_tx = ready_tx.clone();
            pool.task()
                .name(format!("{kind:?}"))
                .submit(move || {
                    let token = StopToken::current();
                    block(kind, &token, &fx, || ready_tx.send(kind).unwrap())
                })
                .unwrap()
        })
        .collect();
    for _ in ALL {
        ready_rx.recv_timeout(WAIT).unwrap();
    }
    thread::sleep(BRIEF);
    for (kind, h) in ALL.iter().zip(&handles) {
        assert!(!h.is_finished(), "{kind:?} returned with no stop requested");
    }
    if by_shutdown_now {
        assert!(pool.shutdown_now().is_empty());
    } else {
        for h in &handles {
            assert!(
                !h.cancel(),
                "running tasks cannot be cancelled, only stopped"
            );
        }
    }
    for (kind, h) in ALL.iter().zip(handles) {
        assert!(h.wait_timeout(PROMPT), "{kind:?} was not interrupted");
        assert_eq!(h.join().unwrap(), Err(WaitError::Interrupted), "{kind:?}");
    }
    drop(held);
    pool.shutdown();
    assert!(pool.await_termination(WAIT));
}

#[test]
fn every_wait_in_a_task_is_interrupted_by_shutdown_now() {
    every_wait_in_a_task_is_interrupted(true);
}

#[test]
fn every_wait_in_a_task_is_interrupted_by_its_handle_cancel() {
    every_wait_in_a_task_is_interrupted(false);
}

// ----- the lost-wake-up hammer --------------------------------------------------

/// Runs `ROUNDS` waits of `kind` on one waiter thread; in each, the test
/// thread requests the stop after a random spin counted from the moment the
/// waiter says it is about to wait. Every wait must end `Interrupted`, within
/// `PROMPT`: a stop that falls between the wait's check and its park and is
/// missed shows up as a timeout here.
fn hammer(kind: Kind) {
    const ROUNDS: u64 = 2_000;
    let fx = Fixture::new();
    let held = (kind == Kind::Lock).then(|| fx.contended.lock());
    let ready = Arc::new(AtomicU64::new(u64::MAX));
    let (job_tx, job_rx) = crossbeam_channel::unbounded::<(u64, StopToken)>();
    let (done_tx, done_rx) = mpsc::channel();
    let waiter = {
        let fx = fx.clone();
        let ready = ready.clone();
        spawn(move || {
            for (round, token) in job_rx {
                let result = block(kind, &token, &fx, || ready.store(round, Ordering::SeqCst));
                if done_tx.send((round, result)).is_err() {
                    return;
                }
            }
        })
    };
    let mut rng = Rng(0x2545_F491_4F6C_DD1D ^ (kind as u64 + 1));
    let mut slowest = Duration::ZERO;
    for round in 0..ROUNDS {
        let source = StopSource::new();
        job_tx.send((round, source.token())).unwrap();
        spin_until(|| ready.load(Ordering::SeqCst) == round);
        // Spread over 0..8192: most land around the start of the wait, some
        // well inside it.
        let spins = rng.spins(14);
        spin(spins);
        let requested = Instant::now();
        source.request_stop();
        match done_rx.recv_timeout(PROMPT) {
            Ok((r, result)) => {
                assert_eq!(r, round);
                assert_eq!(
                    result,
                    Err(WaitError::Interrupted),
                    "{kind:?}, round {round}, stop after {spins} spins"
                );
            }
            Err(_) => panic!(
                "{kind:?}, round {round}: a stop requested {spins} spins after the waiter \
                 began its wait was missed: still blocked after {PROMPT:?} (lost wake-up)"
            ),
        }
        slowest = slowest.max(requested.elapsed());
    }
    drop(job_tx);
    waiter.join("the waiter");
    drop(held);
    eprintln!("{kind:?}: {ROUNDS} rounds, slowest wake-up {slowest:?}");
}

/// Spins (yielding now and then, for small machines) until `done`; panics
/// after `WAIT`.
fn spin_until(mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    let mut n = 0u32;
    while !done() {
        n = n.wrapping_add(1);
        if n.is_multiple_of(64) {
            thread::yield_now();
            assert!(started.elapsed() < WAIT, "the waiter never became ready");
        } else {
            std::hint::spin_loop();
        }
    }
}

// ----- RAII guards ----------------------------------------------------------------

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
    // Cancellation before start means the closure (and its lock attempt)
    // never runs at all.
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
