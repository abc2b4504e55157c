//! `StopToken::wait_task`: waiting for another task's end that still hears
//! the waiter's own stop (issue 14, item 6: a task blocked in `join` did not
//! notice its stop token). Every wait runs on a watched thread or is
//! bounded, so a lost wake-up fails the test instead of hanging it.

mod common;

use std::panic::{self, AssertUnwindSafe};
use std::sync::mpsc;

use common::{Gate, Rng, TestPool, WAIT, spawn, spin};
use drainpool::{Interrupted, StopSource, StopToken, TaskHandle, ThreadPool};

#[test]
fn it_returns_once_the_task_has_ended_and_join_then_returns_at_once() {
    let pool = TestPool::new(2);
    let gate = Gate::new();
    let handle = pool.submit(gate.hold(|| 5)).unwrap();
    gate.wait_entered(1);
    let waiter = spawn(move || {
        let ended = StopToken::never().wait_task(&handle);
        (ended, handle)
    });
    gate.release();
    let (ended, handle) = waiter.join("wait_task for a task that ends");
    assert_eq!(ended, Ok(()));
    assert!(handle.is_finished());
    assert_eq!(handle.join().unwrap(), 5);
}

#[test]
fn a_stop_before_the_wait_returns_at_once() {
    let pool = TestPool::new(1);
    let gate = Gate::occupying(&pool, 1);
    let queued = pool.submit(|| 1).unwrap();
    let source = StopSource::new();
    source.request_stop();
    // Not even from a worker would it help: the stop came first.
    assert_eq!(source.token().wait_task(&queued), Err(Interrupted));
    assert!(!queued.is_finished());
    gate.release();
    assert_eq!(queued.join().unwrap(), 1);
}

/// The stop lands at a random moment around the waiter's park, 500 rounds:
/// the task it waits for never ends on its own, so only the stop can end the
/// wait, and it must.
#[test]
fn a_stop_during_the_wait_wakes_it_wherever_it_lands() {
    let pool = TestPool::new(1);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for round in 0..500 {
        let gate = Gate::new();
        let blocked = pool.submit(gate.hold(|| ())).unwrap();
        gate.wait_entered(1);
        let source = StopSource::new();
        let token = source.token();
        let (ready_tx, ready) = mpsc::channel();
        let waiter = spawn(move || {
            ready_tx.send(()).unwrap();
            let woke = token.wait_task(&blocked);
            (woke, blocked)
        });
        ready.recv_timeout(WAIT).unwrap();
        spin(rng.spins(16));
        source.request_stop();
        let (woke, blocked) = waiter.join(&format!("round {round}: the interrupted wait"));
        assert_eq!(woke, Err(Interrupted), "round {round}");
        assert!(!blocked.is_finished(), "round {round}");
        gate.release();
        blocked.join().unwrap();
    }
}

/// The task's end and the stop race, 500 rounds: the wait ends either way,
/// `Ok` only if the task has ended.
#[test]
fn the_tasks_end_racing_the_stop_ends_the_wait_either_way() {
    let pool = TestPool::new(1);
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    for round in 0..500 {
        let gate = Gate::new();
        let task = pool.submit(gate.hold(|| ())).unwrap();
        gate.wait_entered(1);
        let source = StopSource::new();
        let token = source.token();
        let waiter = spawn(move || {
            let woke = token.wait_task(&task);
            (woke, task)
        });
        let (first, second) = (rng.spins(12), rng.spins(12));
        spin(first);
        gate.release();
        spin(second);
        source.request_stop();
        let (woke, task) = waiter.join(&format!("round {round}: the racing wait"));
        if woke.is_ok() {
            assert!(task.is_finished(), "round {round}: Ok before the end");
        }
        task.join().unwrap();
    }
}

/// On a one-thread pool, a task waiting for a task queued behind it runs
/// it inline (as `join` does) instead of waiting for a worker that is
/// itself.
#[test]
fn a_worker_waiting_for_a_task_queued_behind_it_runs_it() {
    let pool = TestPool::solo(ThreadPool::builder());
    let (handle_tx, handle_rx) = mpsc::channel::<TaskHandle<u32>>();
    let outer = pool
        .submit(move || {
            let inner = handle_rx.recv_timeout(WAIT).expect("the handle arrives");
            StopToken::current().wait_task(&inner)?;
            Ok::<_, Interrupted>(inner.join().unwrap() + 1)
        })
        .unwrap();
    handle_tx.send(pool.submit(|| 41).unwrap()).unwrap();
    assert!(outer.wait_timeout(WAIT), "the one-thread pool deadlocked");
    assert_eq!(outer.join().unwrap(), Ok(42));
}

/// `shutdown_now` raises the waiter's token: a task waiting for another
/// that ignores its own stop still ends.
#[test]
fn shutdown_now_ends_a_task_waiting_for_another() {
    let pool = TestPool::new(2);
    let gate = Gate::new();
    let deaf = pool.submit(gate.hold(|| ())).unwrap();
    let (started_tx, started) = mpsc::channel();
    let waiter = pool
        .submit(move || {
            started_tx.send(()).unwrap();
            StopToken::current().wait_task(&deaf)
        })
        .unwrap();
    gate.wait_entered(1);
    started.recv_timeout(WAIT).unwrap();
    assert!(pool.shutdown_now().is_empty());
    assert!(
        waiter.wait_timeout(WAIT),
        "the waiter did not hear shutdown_now"
    );
    assert_eq!(waiter.join().unwrap(), Err(Interrupted));
    gate.release();
}

#[test]
fn waiting_for_itself_panics_with_a_message_that_says_so() {
    let pool = TestPool::new(2);
    let (handle_tx, handle_rx) = mpsc::channel::<TaskHandle<()>>();
    let (outcome_tx, outcome) = mpsc::channel();
    let me = pool
        .submit(move || {
            let me = handle_rx.recv_timeout(WAIT).expect("the handle arrives");
            let waited =
                panic::catch_unwind(AssertUnwindSafe(|| StopToken::current().wait_task(&me)));
            let message = waited
                .err()
                .and_then(|payload| payload.downcast_ref::<String>().cloned());
            outcome_tx.send(message).unwrap();
        })
        .unwrap();
    handle_tx.send(me).unwrap();
    let message = outcome
        .recv_timeout(WAIT)
        .expect("a wait for itself returned")
        .expect("a wait for itself panics");
    assert!(message.contains("inside the task itself"), "{message}");
}
