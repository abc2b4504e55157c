//! A stop ends every wait with `Interrupted`: requested before the call,
//! while it blocks (and, hammered, just as it begins), and inside pool
//! tasks by `shutdown_now` or the handle's cancel.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use crate::common::{BRIEF, Rng, WAIT, spawn, spin};
use crate::{ALL, Fixture, Kind, PROMPT, block, condvar_waiter};
use drainpool::{Interrupted, StopSource, StopToken, ThreadPool, WaitError};
use parking_lot::{Condvar, Mutex};

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
        if n % 64 == 0 {
            thread::yield_now();
            assert!(started.elapsed() < WAIT, "the waiter never became ready");
        } else {
            std::hint::spin_loop();
        }
    }
}
