//! Timeouts at the edges: `Duration::ZERO` polls and `Duration::MAX`
//! waits, without overflow, until a stop, a message or a notify; a stop
//! requested before the call wins over both.

use std::sync::Arc;
use std::time::Duration;

use crate::common::{TestPool, at_once, bounded_join, spawn, started_sleeper, still_blocked};
use drainpool::{Interrupted, StopSource, StopToken, WaitError};

#[test]
fn token_sleep_with_zero_and_max() {
    // ZERO: returns at once, Ok unless a stop was requested.
    assert_eq!(
        at_once("never().sleep(ZERO)", || StopToken::never()
            .sleep(Duration::ZERO)),
        Ok(())
    );
    let source = StopSource::new();
    assert_eq!(source.token().sleep(Duration::ZERO), Ok(()));
    // MAX: until the stop, which wakes it.
    let token = source.token();
    let sleeper = spawn(move || token.sleep(Duration::MAX));
    still_blocked("StopToken::sleep(MAX)", &sleeper);
    assert!(source.request_stop());
    assert_eq!(sleeper.join("sleep(Duration::MAX)"), Err(Interrupted));
    // Stopped already: both return Interrupted at once.
    assert_eq!(source.token().sleep(Duration::ZERO), Err(Interrupted));
    assert_eq!(
        at_once("a stopped sleep(MAX)", || source
            .token()
            .sleep(Duration::MAX)),
        Err(Interrupted)
    );
    // Inside a task: StopToken::current().sleep(MAX) ends on the handle's
    // cancel.
    let pool = TestPool::new(1);
    let handle = started_sleeper(&pool);
    assert!(!handle.cancel(), "a running task cannot be cancelled");
    assert_eq!(bounded_join(handle).unwrap(), Err(Interrupted));
}

#[test]
fn token_recv_timeout_with_zero_and_max() {
    let (tx, rx) = crossbeam_channel::unbounded::<u32>();
    let source = StopSource::new();
    let token = source.token();
    // ZERO: polls.
    assert_eq!(
        at_once("recv_timeout(ZERO) on an empty channel", || {
            token.recv_timeout(&rx, Duration::ZERO)
        }),
        Err(WaitError::Timeout)
    );
    tx.send(1).unwrap();
    assert_eq!(token.recv_timeout(&rx, Duration::ZERO), Ok(1));
    // MAX: until a message...
    let waiter = spawn({
        let (token, rx) = (token.clone(), rx.clone());
        move || token.recv_timeout(&rx, Duration::MAX)
    });
    still_blocked("recv_timeout(MAX)", &waiter);
    tx.send(2).unwrap();
    assert_eq!(waiter.join("recv_timeout(MAX) and a message"), Ok(2));
    // ...or a stop.
    let waiter = spawn({
        let (token, rx) = (token.clone(), rx.clone());
        move || token.recv_timeout(&rx, Duration::MAX)
    });
    still_blocked("recv_timeout(MAX)", &waiter);
    source.request_stop();
    assert_eq!(
        waiter.join("recv_timeout(MAX) and a stop"),
        Err(WaitError::Interrupted)
    );
    tx.send(3).unwrap();
    assert_eq!(
        token.recv_timeout(&rx, Duration::ZERO),
        Err(WaitError::Interrupted),
        "a stop requested before the call wins, also with ZERO"
    );
    // Disconnected: at once, whatever the timeout.
    let (tx, rx) = crossbeam_channel::unbounded::<u32>();
    drop(tx);
    for timeout in [Duration::ZERO, Duration::MAX] {
        assert_eq!(
            at_once("recv_timeout on a disconnected channel", || {
                StopToken::never().recv_timeout(&rx, timeout)
            }),
            Err(WaitError::Disconnected)
        );
    }
}

#[test]
fn token_wait_timeout_with_zero_and_max() {
    let pair = Arc::new((parking_lot::Mutex::new(0u32), parking_lot::Condvar::new()));
    let source = StopSource::new();
    {
        let (lock, cvar) = &*pair;
        let mut guard = lock.lock();
        let result = at_once("wait_timeout(ZERO)", || {
            source
                .token()
                .wait_timeout(cvar, &mut guard, Duration::ZERO)
        });
        assert_eq!(result, Err(WaitError::Timeout));
        *guard += 1; // the guard still holds the lock
    }
    // MAX: woken by a notify...
    let waiter = spawn({
        let (pair, token) = (pair.clone(), source.token());
        move || {
            let (lock, cvar) = &*pair;
            let mut guard = lock.lock();
            while *guard < 2 {
                token.wait_timeout(cvar, &mut guard, Duration::MAX)?;
            }
            Ok::<u32, WaitError>(*guard)
        }
    });
    still_blocked("wait_timeout(MAX)", &waiter);
    *pair.0.lock() = 2;
    pair.1.notify_all();
    assert_eq!(waiter.join("wait_timeout(MAX) and a notify"), Ok(2));
    // ...or by a stop.
    let waiter = spawn({
        let (pair, token) = (pair.clone(), source.token());
        move || {
            let (lock, cvar) = &*pair;
            let mut guard = lock.lock();
            loop {
                if let Err(e) = token.wait_timeout(cvar, &mut guard, Duration::MAX) {
                    break e;
                }
            }
        }
    });
    still_blocked("wait_timeout(MAX)", &waiter);
    source.request_stop();
    assert_eq!(
        waiter.join("wait_timeout(MAX) and a stop"),
        WaitError::Interrupted
    );
    let mut guard = pair.0.lock();
    assert_eq!(
        source
            .token()
            .wait_timeout(&pair.1, &mut guard, Duration::ZERO),
        Err(WaitError::Interrupted)
    );
}
