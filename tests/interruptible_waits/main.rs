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
//!
//! One module per capability; the waits, the fixture they wait on and the
//! bounds they share are here.

#[path = "../common/mod.rs"]
mod common;
mod lock_guards;
mod stopped;
mod without_a_stop;
mod zero_and_max;

use std::sync::{Arc, mpsc};
use std::time::Duration;

use common::{Spawned, WAIT, spawn};
use crossbeam_channel::{Receiver, Sender};
use drainpool::{StopToken, WaitError};
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
