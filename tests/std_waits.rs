//! Interruptible waits on std's primitives: `wait_std`, `wait_while_std`,
//! `wait_timeout_std` (std's `Condvar`) and `lock_std` (std's `Mutex`) on a
//! `StopToken`.
//!
//! For each wait: a stop requested before the call returns `Interrupted` at
//! once; a stop requested while it blocks wakes it; the stop racing the
//! park is hammered over many rounds; a stop requested while another thread
//! holds the waiter's mutex does not block the request and still wakes the
//! waiter (the confirmer's path). Then poisoning, reported as std reports
//! it, and the waits without a stop, which behave like std's own.
//!
//! Every wait that a bug could leave blocked, and every stop request that a
//! bug could block on the waiter's mutex, runs on a watched thread: the test
//! fails after `WAIT` instead of hanging. `sleep` appears only to check that
//! something is still blocked.

mod common;

use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, TryLockError, mpsc};
use std::thread;
use std::time::Duration;

use common::{BRIEF, LeakOnPanic, Rng, WAIT, spawn, spin};
use drainpool::{Interrupted, StopSource, StopToken, ThreadPool, WaitError};

/// A wait's own timeout when only a stop should end it.
const LONG: Duration = Duration::from_secs(60);

/// Every interruptible wait on a std primitive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Wait,
    WaitWhile,
    WaitTimeout,
    Lock,
}

const ALL: [Kind; 4] = [Kind::Wait, Kind::WaitWhile, Kind::WaitTimeout, Kind::Lock];

/// What the waits wait on. Nothing arrives unless a test sends it: the
/// condition stays false, and `contended` is held by the test when a `Lock`
/// wait must block.
#[derive(Default)]
struct Fixture {
    state: Mutex<bool>,
    cond: Condvar,
    contended: Mutex<u32>,
}

/// True if the calling thread cannot take `mutex`: it is held (by the
/// caller, when it holds a guard).
fn is_held<T>(mutex: &Mutex<T>) -> bool {
    matches!(mutex.try_lock(), Err(TryLockError::WouldBlock))
}

/// Waits in `kind` until something other than the fixture ends it: only a
/// stop can. `ready` is called just before the wait begins (for the condvar
/// waits, with the mutex already held). Checks that a condvar wait hands
/// the guard back still holding the lock, and that nothing is poisoned.
fn block(
    kind: Kind,
    token: &StopToken,
    fx: &Fixture,
    ready: impl FnOnce(),
) -> Result<(), WaitError> {
    let back = |(guard, woke): (MutexGuard<'_, bool>, Result<(), WaitError>)| {
        assert!(is_held(&fx.state), "{kind:?}: the guard came back unlocked");
        assert!(!*guard);
        woke
    };
    match kind {
        Kind::Wait => {
            let mut guard = fx.state.lock().unwrap();
            ready();
            // `wait_std` may end spuriously: only the condition or a stop
            // counts.
            while !*guard {
                let (again, woke) = token.wait_std(&fx.cond, &fx.state, guard).unwrap();
                guard = again;
                if woke.is_err() {
                    return back((guard, woke.map_err(WaitError::from)));
                }
            }
            unreachable!("nobody sets the condition");
        }
        Kind::WaitWhile => {
            let guard = fx.state.lock().unwrap();
            ready();
            let (guard, woke) = token
                .wait_while_std(&fx.cond, &fx.state, guard, |ready| !*ready)
                .unwrap();
            back((guard, woke.map_err(WaitError::from)))
        }
        Kind::WaitTimeout => {
            let mut guard = fx.state.lock().unwrap();
            ready();
            loop {
                let (again, woke) = token
                    .wait_timeout_std(&fx.cond, &fx.state, guard, LONG)
                    .unwrap();
                guard = again;
                if woke.is_err() {
                    return back((guard, woke));
                }
            }
        }
        Kind::Lock => {
            ready();
            let guard = token.lock_std(&fx.contended)?;
            drop(guard.unwrap());
            Ok(())
        }
    }
}

/// A thread that takes `fx.state`'s lock and, holding it, runs `wait` (a
/// condvar wait on `fx.cond`). Returns once the thread holds the lock:
/// whoever takes the lock next finds it parked in the wait.
fn condvar_waiter<T: Send + 'static>(
    fx: &Arc<Fixture>,
    wait: impl for<'a> FnOnce(&'a Fixture, MutexGuard<'a, bool>) -> T + Send + 'static,
) -> common::Spawned<T> {
    let (ready_tx, ready_rx) = mpsc::channel();
    let fx = fx.clone();
    let waiter = spawn(move || {
        let guard = fx.state.lock().unwrap_or_else(PoisonError::into_inner);
        ready_tx.send(()).unwrap(); // sent with the lock held
        wait(&fx, guard)
    });
    ready_rx.recv_timeout(WAIT).unwrap();
    waiter
}

/// Requests the stop on a watched thread: a request that blocks (on the
/// waiter's mutex, say) fails the test instead of hanging it.
fn request_watched(source: &StopSource) {
    let source = source.clone();
    let requester = spawn(move || source.request_stop());
    assert!(requester.join("request_stop (it blocked)"));
}

/// Runs `f`, which must panic, on a watched thread: to poison a mutex it
/// locks. Returns once it has panicked.
fn panics_elsewhere(f: impl FnOnce() + Send + 'static) {
    let unwound = spawn(move || panic::catch_unwind(AssertUnwindSafe(f)).is_err());
    assert!(unwound.join("the poisoner"), "it did not panic");
}

// ----- a stop before, during, and racing the wait ----------------------------

/// A stop requested before the call: `Interrupted` at once, even when the
/// lock is free; the lock is not taken.
fn interrupted_before(kind: Kind) {
    let fx = Fixture::default();
    let source = StopSource::new();
    source.request_stop();
    assert_eq!(
        block(kind, &source.token(), &fx, || ()),
        Err(WaitError::Interrupted),
        "{kind:?}"
    );
    assert!(
        fx.contended.try_lock().is_ok(),
        "{kind:?}: the lock was left taken"
    );
}

/// A stop requested while the wait blocks: it returns `Interrupted`.
fn interrupted_during(kind: Kind) {
    let fx = Arc::new(Fixture::default());
    let held = (kind == Kind::Lock).then(|| fx.contended.lock().unwrap());
    let source = StopSource::new();
    let (ready_tx, ready_rx) = mpsc::channel();
    let waiter = {
        let (token, fx) = (source.token(), fx.clone());
        spawn(move || block(kind, &token, &fx, || ready_tx.send(()).unwrap()))
    };
    ready_rx.recv_timeout(WAIT).unwrap();
    thread::sleep(BRIEF);
    assert!(!waiter.is_finished(), "{kind:?} returned with no stop");
    request_watched(&source);
    assert_eq!(
        waiter.join(&format!("{kind:?}, stopped")),
        Err(WaitError::Interrupted)
    );
    drop(held);
}

/// Runs `ROUNDS` waits of `kind` on one waiter thread; in each, a requester
/// thread requests the stop after a random spin counted from the moment the
/// waiter says it is about to wait, so that it lands before the wait's
/// check, between the check and the park, and during the park. Every wait
/// must end `Interrupted`. A missed stop leaves the waiter parked, a request
/// that blocks leaves the requester stuck: either way the watchdog (this
/// thread's `recv_timeout`) fails the test instead of hanging it.
fn hammer(kind: Kind) {
    const ROUNDS: u64 = 2_000;
    let fx = Arc::new(Fixture::default());
    let held = (kind == Kind::Lock).then(|| fx.contended.lock().unwrap());
    let ready = Arc::new(AtomicU64::new(u64::MAX));
    let (job_tx, job_rx) = mpsc::channel::<(u64, StopToken)>();
    let (stop_tx, stop_rx) = mpsc::channel::<(u64, StopSource, u64)>();
    let (done_tx, done_rx) = mpsc::channel();
    let waiter = {
        let (fx, ready) = (fx.clone(), ready.clone());
        spawn(move || {
            for (round, token) in job_rx {
                let result = block(kind, &token, &fx, || ready.store(round, Ordering::SeqCst));
                if done_tx.send((round, result)).is_err() {
                    return;
                }
            }
        })
    };
    let requester = {
        let ready = ready.clone();
        spawn(move || {
            for (round, source, spins) in stop_rx {
                spin_until(|| ready.load(Ordering::SeqCst) == round);
                spin(spins);
                source.request_stop();
            }
        })
    };
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (kind as u64 + 1));
    for round in 0..ROUNDS {
        let source = StopSource::new();
        job_tx.send((round, source.token())).unwrap();
        // Spread over 0..8192: most land around the start of the wait,
        // some well inside it.
        let spins = rng.spins(14);
        stop_tx.send((round, source, spins)).unwrap();
        match done_rx.recv_timeout(WAIT) {
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
                 began its wait was missed (lost wake-up), or the request blocked: \
                 still blocked after {WAIT:?}"
            ),
        }
    }
    drop((job_tx, stop_tx));
    waiter.join("the waiter");
    requester.join("the requester");
    drop(held);
}

/// Spins (yielding now and then, for small machines) until `done`; panics
/// after `WAIT`.
fn spin_until(mut done: impl FnMut() -> bool) {
    let started = std::time::Instant::now();
    let mut n = 0u32;
    while !done() {
        n = n.wrapping_add(1);
        if n % 64 == 0 {
            thread::yield_now();
            assert!(started.elapsed() < WAIT, "the waiter never became ready");
        } else {
            std::hint::spin_loop();
        }
    }
}

macro_rules! per_kind {
    ($($name:ident: $kind:expr;)*) => {
        mod before {
            //! A stop requested before the call.
            use super::*;
            $(#[test] fn $name() { interrupted_before($kind) })*
        }
        mod during {
            //! A stop requested while the wait blocks.
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
    wait_std: Kind::Wait;
    wait_while_std: Kind::WaitWhile;
    wait_timeout_std: Kind::WaitTimeout;
    lock_std: Kind::Lock;
}

// ----- the confirmer: the waiter's mutex held by someone else ---------------

/// A thread parked in `wait_while_std` until `fx.state` is true or `token`
/// fires; it returns the state and the outcome.
fn waiting_until_ready(
    fx: &Arc<Fixture>,
    token: StopToken,
) -> common::Spawned<(bool, Result<(), Interrupted>)> {
    condvar_waiter(fx, move |fx, guard| {
        let (guard, woke) = token
            .wait_while_std(&fx.cond, &fx.state, guard, |ready| !*ready)
            .unwrap();
        (*guard, woke)
    })
}

#[test]
fn a_stop_while_another_thread_holds_the_mutex_wakes_the_waiter_once_it_is_released() {
    // The stop callback cannot take the mutex (a third thread holds it), so
    // the request hands the locked notify to the confirmer thread and
    // returns; the waiter ends once the holder lets go.
    let fx = Arc::new(Fixture::default());
    let source = StopSource::new();
    let waiter = waiting_until_ready(&fx, source.token());
    let (holding_tx, holding_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let holder = {
        let fx = fx.clone();
        spawn(move || {
            // Taking the lock proves the waiter is parked in its wait.
            let _guard = fx.state.lock().unwrap();
            holding_tx.send(()).unwrap();
            let _ = release_rx.recv_timeout(WAIT);
        })
    };
    holding_rx.recv_timeout(WAIT).unwrap();
    // A request that blocked on the held mutex would fail here, not hang.
    request_watched(&source);
    release_tx.send(()).unwrap();
    holder.join("the holder");
    assert_eq!(waiter.join("the waiter"), (false, Err(Interrupted)));
}

#[test]
fn request_stop_from_the_thread_holding_the_waiters_mutex_does_not_block() {
    // A natural pattern: change the shared state and request the stop under
    // the same lock the waiter's condvar uses. std's lock is not reentrant:
    // a callback that locked (rather than tried) would deadlock here.
    let fx = Arc::new(Fixture::default());
    let source = StopSource::new();
    let waiter = waiting_until_ready(&fx, source.token());
    let requester = {
        let (fx, source) = (fx.clone(), source.clone());
        spawn(move || {
            // Taking the lock proves the waiter is parked in its wait.
            let _guard = fx.state.lock().unwrap();
            source.request_stop()
        })
    };
    assert!(requester.join("request_stop under the waiter's mutex"));
    assert_eq!(waiter.join("the waiter"), (false, Err(Interrupted)));
}

// ----- poisoning, as std reports it -----------------------------------------

/// Poisons `fx.state`: a thread panics while holding it.
fn poison(fx: &Arc<Fixture>) {
    let fx2 = fx.clone();
    panics_elsewhere(move || {
        let _guard = fx2.state.lock().unwrap();
        panic!("poisoning the mutex on purpose");
    });
    assert!(fx.state.is_poisoned());
}

#[test]
fn a_wake_up_that_finds_the_mutex_poisoned_reports_it() {
    // The notifier panics while holding the lock (after notifying): the
    // waiter wakes to a poisoned mutex, and, like std's `wait_while`, returns
    // `Err(PoisonError)` with the guard, the condition still holding.
    let fx = Arc::new(Fixture::default());
    let token = StopSource::new().token();
    let waiter = condvar_waiter(&fx, move |fx, guard| {
        match token.wait_while_std(&fx.cond, &fx.state, guard, |ready| !*ready) {
            Ok(_) => panic!("the poisoning was not reported"),
            Err(poisoned) => {
                let (guard, woke) = poisoned.into_inner();
                (*guard, woke, is_held(&fx.state))
            }
        }
    });
    let notifier = fx.clone();
    panics_elsewhere(move || {
        let _guard = notifier.state.lock().unwrap(); // the waiter is parked
        notifier.cond.notify_all();
        panic!("poisoning the mutex on purpose");
    });
    assert_eq!(waiter.join("the waiter"), (false, Ok(()), true));
}

#[test]
fn a_stop_on_a_poisoned_mutex_reports_both() {
    let fx = Arc::new(Fixture::default());
    poison(&fx);
    let source = StopSource::new();
    let token = source.token();
    let waiter = condvar_waiter(&fx, move |fx, guard| {
        let err = token
            .wait_std(&fx.cond, &fx.state, guard)
            .expect_err("the poisoning was not reported");
        let (guard, woke) = err.into_inner();
        (*guard, woke)
    });
    // Taking the lock proves the waiter is parked.
    drop(fx.state.lock().unwrap_or_else(PoisonError::into_inner));
    request_watched(&source);
    assert_eq!(waiter.join("the waiter"), (false, Err(Interrupted)));

    // Before the call too: no wait, the poisoning still reported.
    let guard = fx.state.lock().unwrap_or_else(PoisonError::into_inner);
    let err = source
        .token()
        .wait_timeout_std(&fx.cond, &fx.state, guard, LONG)
        .expect_err("the poisoning was not reported");
    assert_eq!(err.into_inner().1, Err(WaitError::Interrupted));
}

#[test]
fn a_mutex_poisoned_during_a_wait_that_a_stop_ends_is_reported() {
    // The holder panics while the stop is pending on it: the waiter gets its
    // lock back poisoned, and says so, with the stop.
    let fx = Arc::new(Fixture::default());
    let source = StopSource::new();
    let token = source.token();
    let waiter = condvar_waiter(&fx, move |fx, guard| {
        let err = token
            .wait_while_std(&fx.cond, &fx.state, guard, |ready| !*ready)
            .expect_err("the poisoning was not reported");
        err.into_inner().1
    });
    let holder = fx.clone();
    panics_elsewhere(move || {
        let _guard = holder.state.lock().unwrap(); // the waiter is parked
        source.request_stop(); // its locked notify goes to the confirmer
        panic!("poisoning the mutex on purpose");
    });
    assert_eq!(waiter.join("the waiter"), Err(Interrupted));
}

#[test]
fn lock_std_hands_back_a_poisoned_lock_as_std_does() {
    let data = Arc::new(Mutex::new(1u32));
    let in_poisoner = data.clone();
    panics_elsewhere(move || {
        let _guard = in_poisoner.lock().unwrap();
        panic!("poisoning the mutex on purpose");
    });
    let source = StopSource::new();
    // Uncontended: `Ok(Err(PoisonError))`, the guard inside.
    let mut guard = source
        .token()
        .lock_std(&data)
        .unwrap()
        .expect_err("the poisoning was not reported")
        .into_inner();
    *guard += 1;

    // Contended: the holder panics while the waiter waits.
    data.clear_poison();
    let (ready_tx, ready_rx) = mpsc::channel();
    let waiter = {
        let (token, data) = (source.token(), data.clone());
        spawn(move || {
            ready_tx.send(()).unwrap();
            match token.lock_std(&data) {
                Ok(Err(poisoned)) => Ok(*poisoned.into_inner()),
                Ok(Ok(_)) => panic!("the poisoning was not reported"),
                Err(interrupted) => Err(interrupted),
            }
        })
    };
    ready_rx.recv_timeout(WAIT).unwrap();
    thread::sleep(BRIEF);
    assert!(!waiter.is_finished(), "took a lock that was held");
    let unwound = panic::catch_unwind(AssertUnwindSafe(move || {
        let _held = guard;
        panic!("poisoning the mutex on purpose");
    }));
    assert!(unwound.is_err());
    assert_eq!(waiter.join("the waiter"), Ok(2));
    assert!(!source.is_stop_requested());
}

#[test]
fn an_interrupted_lock_std_leaves_the_mutex_untouched() {
    let data = Mutex::new(0u32);
    let source = StopSource::new();
    source.request_stop();
    assert!(matches!(source.token().lock_std(&data), Err(Interrupted)));
    assert!(!data.is_poisoned());
    assert_eq!(*data.try_lock().unwrap(), 0);
}

// ----- without a stop: like std's own waits ---------------------------------

#[test]
fn wait_std_without_a_stop_is_woken_by_notify() {
    for token in [StopSource::new().token(), StopToken::never()] {
        let fx = Arc::new(Fixture::default());
        let waiter = condvar_waiter(&fx, move |fx, mut guard| {
            while !*guard {
                let (again, woke) = token.wait_std(&fx.cond, &fx.state, guard).unwrap();
                guard = again;
                woke?;
            }
            Ok::<bool, Interrupted>(is_held(&fx.state))
        });
        thread::sleep(BRIEF);
        assert!(!waiter.is_finished(), "returned with the condition false");
        {
            // Taking the lock proves the waiter is parked in the wait.
            let mut guard = fx.state.lock().unwrap();
            *guard = true;
            fx.cond.notify_one();
        }
        assert_eq!(waiter.join("the waiter"), Ok(true));
    }
}

#[test]
fn wait_while_std_with_a_false_condition_does_not_wait_even_when_stopped() {
    let (lock, cvar) = (Mutex::new(true), Condvar::new());
    let source = StopSource::new();
    source.request_stop();
    let guard = lock.lock().unwrap();
    let (guard, woke) = source
        .token()
        .wait_while_std(&cvar, &lock, guard, |ready| !*ready)
        .unwrap();
    assert!(*guard);
    assert_eq!(woke, Ok(()));
}

#[test]
fn wait_timeout_std_without_a_stop_times_out() {
    for token in [StopSource::new().token(), StopToken::never()] {
        let (lock, cvar) = (Mutex::new(()), Condvar::new());
        let mut guard = lock.lock().unwrap();
        // A spurious wake-up ends a wait early with `Ok`; a timeout ends it
        // with `Timeout`, the guard back.
        let woke = loop {
            let (again, woke) = token
                .wait_timeout_std(&cvar, &lock, guard, Duration::from_millis(5))
                .unwrap();
            guard = again;
            if woke.is_err() {
                break woke;
            }
        };
        assert_eq!(woke, Err(WaitError::Timeout));
        assert!(is_held(&lock));
    }
}

#[test]
fn lock_std_without_a_stop_is_a_plain_lock() {
    for token in [StopSource::new().token(), StopToken::never()] {
        let data = Arc::new(Mutex::new(0u32));
        // Uncontended.
        *token.lock_std(&data).unwrap().unwrap() += 1;

        // Contended: taken once the holder lets go, not before.
        let released = Arc::new(AtomicBool::new(false));
        let held = data.lock().unwrap();
        let (ready_tx, ready_rx) = mpsc::channel();
        let waiter = {
            let (token, data, released) = (token.clone(), data.clone(), released.clone());
            spawn(move || {
                ready_tx.send(()).unwrap();
                let mut guard = token.lock_std(&data)?.unwrap();
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
        assert_eq!(*data.lock().unwrap(), 2);
    }
}

#[test]
#[should_panic(expected = "not a guard of `mutex`")]
fn a_guard_of_another_mutex_is_refused() {
    let (lock, other, cvar) = (Mutex::new(false), Mutex::new(false), Condvar::new());
    let guard = other.lock().unwrap();
    let _ = StopSource::new().token().wait_std(&cvar, &lock, guard);
}

// ----- inside pool tasks ------------------------------------------------------

#[test]
fn every_std_wait_in_a_task_is_interrupted_by_shutdown_now() {
    let pool = Arc::new(ThreadPool::new(ALL.len()).unwrap());
    let _leak = LeakOnPanic(pool.clone()); // a pool that hangs must not hang the test
    let fx = Arc::new(Fixture::default());
    let held = fx.contended.lock().unwrap();
    let (ready_tx, ready_rx) = mpsc::channel();
    let handles: Vec<_> = ALL
        .iter()
        .map(|&kind| {
            let (fx, ready_tx) = (fx.clone(), ready_tx.clone());
            pool.submit(move || {
                block(kind, &StopToken::current(), &fx, || {
                    ready_tx.send(kind).unwrap();
                })
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
    let stopper = {
        let pool = pool.clone();
        spawn(move || pool.shutdown_now().len())
    };
    assert_eq!(stopper.join("shutdown_now (a stop request blocked)"), 0);
    for (kind, h) in ALL.iter().zip(handles) {
        assert!(h.wait_timeout(WAIT), "{kind:?} was not interrupted");
        assert_eq!(h.join().unwrap(), Err(WaitError::Interrupted), "{kind:?}");
    }
    drop(held);
    assert!(pool.await_termination(WAIT));
}

// ----- how fast lock_std notices a stop (a measurement, not a check) ----------

/// Prints the distribution of the time from `request_stop()` to a
/// `lock_std` blocked behind a held mutex returning, with the stop landing
/// anywhere in the first 5 ms of the wait: in its short first slices and in
/// its 1 ms ones. Asserts nothing about time (the machine may be busy). Run
/// with `cargo test --release --test std_waits -- --ignored --nocapture`.
#[test]
#[ignore = "a measurement: prints the latency distribution"]
fn lock_std_stop_latency() {
    const ROUNDS: usize = 1_000;
    let data = Arc::new(Mutex::new(()));
    let (job_tx, job_rx) = mpsc::channel::<StopToken>();
    let (ready_tx, ready_rx) = mpsc::channel();
    let (woke_tx, woke_rx) = mpsc::channel();
    let waiter = {
        let data = data.clone();
        spawn(move || {
            for token in job_rx {
                ready_tx.send(()).unwrap();
                let result = token.lock_std(&data).map(drop);
                woke_tx.send((std::time::Instant::now(), result)).unwrap();
            }
        })
    };
    let mut rng = Rng(0x0123_4567_89AB_CDEF);
    let mut latencies = Vec::with_capacity(ROUNDS);
    for _ in 0..ROUNDS {
        let held = data.lock().unwrap();
        let source = StopSource::new();
        job_tx.send(source.token()).unwrap();
        ready_rx.recv_timeout(WAIT).unwrap();
        // How long the waiter has waited when the stop comes: the condition
        // measured, not a synchronisation.
        thread::sleep(Duration::from_micros(rng.next() % 5_000));
        let requested = std::time::Instant::now();
        source.request_stop();
        let (woke, result) = woke_rx
            .recv_timeout(WAIT)
            .expect("lock_std was not interrupted");
        assert_eq!(result, Err(Interrupted));
        latencies.push(woke.saturating_duration_since(requested));
        drop(held);
    }
    drop(job_tx);
    waiter.join("the waiter");
    latencies.sort();
    let at = |p: f64| latencies[((latencies.len() - 1) as f64 * p).round() as usize];
    println!(
        "lock_std stop latency over {ROUNDS} stops, 0-5 ms into the wait: \
         p10 {:?}, median {:?}, p90 {:?}, p99 {:?}, max {:?}",
        at(0.1),
        at(0.5),
        at(0.9),
        at(0.99),
        at(1.0)
    );
}
