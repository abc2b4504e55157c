//! Without a stop, each wait behaves like the wait it wraps: it sleeps,
//! receives, times out, is woken by a notify or takes the lock, and
//! leaves no stop callback behind.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use crate::common::{BRIEF, WAIT, spawn};
use crate::{Fixture, PROMPT, condvar_waiter};
use drainpool::{Interrupted, StopSource, StopToken, WaitError};
use parking_lot::{Condvar, Mutex};

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
