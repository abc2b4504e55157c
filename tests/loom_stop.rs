//! Loom model checks of stop requests against the registration of the
//! callbacks that waiters rely on to be woken (`StopSource`,
//! `StopToken::on_stop`, `StopCallback`), with every lock and atomic of
//! `stop.rs` taken from loom.
//!
//! `LOOM_MAX_PREEMPTIONS=3 RUSTFLAGS="--cfg loom" cargo test --release --test 'loom_*'`
//!
//! Every interruptible wait of the crate registers such a callback (or
//! selects on the channel the request disconnects, a state change a late
//! waiter cannot miss) and then parks; the models check the registration
//! protocol the waits build on: no lost callback, no callback run twice,
//! none running after its `StopCallback` was dropped, and a waiter that
//! registers, checks and parks is always woken.
#![cfg(loom)]

use drainpool::StopSource;
use loom::sync::atomic::AtomicUsize;
use loom::sync::atomic::Ordering::SeqCst;
use loom::sync::{Arc, Condvar, Mutex};

/// A callback registered while another thread requests the stop runs
/// exactly once, before or after registration returns.
#[test]
fn a_callback_registered_during_a_request_runs_exactly_once() {
    loom::model(|| {
        let source = StopSource::new();
        let token = source.token();
        let hits = Arc::new(AtomicUsize::new(0));
        let requester = loom::thread::spawn(move || source.request_stop());
        let callback = {
            let hits = hits.clone();
            token.on_stop(move || {
                hits.fetch_add(1, SeqCst);
            })
        };
        assert!(requester.join().unwrap());
        assert_eq!(hits.load(SeqCst), 1);
        drop(callback);
        assert_eq!(hits.load(SeqCst), 1);
    });
}

/// Dropping a `StopCallback` while the stop is requested: once the drop
/// returns, the callback is not running and never runs; before, it ran
/// at most once.
#[test]
fn a_dropped_callback_is_not_running_after_the_drop_returns() {
    loom::model(|| {
        let source = StopSource::new();
        let token = source.token();
        // 1: inside the callback; 2: it finished.
        let state = Arc::new(AtomicUsize::new(0));
        let callback = {
            let state = state.clone();
            token.on_stop(move || {
                assert_eq!(state.swap(1, SeqCst), 0, "ran twice");
                loom::thread::yield_now();
                state.store(2, SeqCst);
            })
        };
        let requester = loom::thread::spawn(move || source.request_stop());
        drop(callback);
        let after_drop = state.load(SeqCst);
        assert_ne!(
            after_drop, 1,
            "the callback is running after its drop returned"
        );
        requester.join().unwrap();
        assert_eq!(
            state.load(SeqCst),
            after_drop,
            "the callback ran after its drop"
        );
    });
}

/// Two requests race: exactly one reports that it raised the flag, and
/// the callback runs once.
#[test]
fn racing_requests_raise_once_and_run_each_callback_once() {
    loom::model(|| {
        let source = StopSource::new();
        let hits = Arc::new(AtomicUsize::new(0));
        let _callback = {
            let hits = hits.clone();
            source.token().on_stop(move || {
                hits.fetch_add(1, SeqCst);
            })
        };
        let other = {
            let source = source.clone();
            loom::thread::spawn(move || source.request_stop())
        };
        let mine = source.request_stop();
        let theirs = other.join().unwrap();
        assert!(mine != theirs, "raised by {mine} and {theirs}");
        assert_eq!(hits.load(SeqCst), 1);
    });
}

/// The shape of every condvar-based interruptible wait: register a
/// callback that sets a flag and notifies under the waiter's lock, check
/// the token, park until woken. A request at any point, before the
/// registration, between it and the check, or during the park, wakes the
/// waiter: no lost wake-up.
#[test]
fn a_waiter_that_registers_checks_and_parks_is_always_woken() {
    loom::model(|| {
        let source = StopSource::new();
        let token = source.token();
        let pair = Arc::new((Mutex::new(false), Condvar::new()));
        let requester = loom::thread::spawn(move || source.request_stop());
        let _callback = {
            let pair = pair.clone();
            token.on_stop(move || {
                let (woken, condvar) = &*pair;
                *woken.lock().unwrap() = true;
                condvar.notify_all();
            })
        };
        let (woken, condvar) = &*pair;
        let mut guard = woken.lock().unwrap();
        while !*guard && !token.is_stop_requested() {
            guard = condvar.wait(guard).unwrap();
        }
        drop(guard);
        assert!(token.is_stop_requested());
        requester.join().unwrap();
    });
}
