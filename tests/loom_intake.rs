//! Loom model checks of the intake protocol: every interleaving of a
//! submitter against `shutdown` and `shutdown_now`, on the real lifecycle
//! and gate (`drainpool::model::Intake`).
//!
//! `LOOM_MAX_PREEMPTIONS=3 RUSTFLAGS="--cfg loom" cargo test --release --test 'loom_*'`
//!
//! The queue is modelled by a loom counter: what the protocol must
//! guarantee is that a drain, which runs after the state moved and the gate
//! cleared, sees every task the gate accepted.
#![cfg(loom)]

use drainpool::model::{Intake, PoolState};
use loom::sync::Arc;
use loom::sync::atomic::AtomicUsize;
use loom::sync::atomic::Ordering::SeqCst;

/// One submitter against `shutdown`: the drain (a worker that saw the
/// state move, waited for the gate to clear, then looked at the queue)
/// sees every task the submitter was told was accepted.
#[test]
fn a_drain_never_misses_an_accepted_task() {
    loom::model(|| {
        let intake = Arc::new(Intake::new());
        let queue = Arc::new(AtomicUsize::new(0));
        let submitter = {
            let (intake, queue) = (intake.clone(), queue.clone());
            loom::thread::spawn(move || {
                intake.submit(|| {
                    queue.fetch_add(1, SeqCst);
                })
            })
        };
        intake.advance(PoolState::ShuttingDown);
        intake.wait_clear();
        let seen = queue.load(SeqCst);
        let accepted = submitter.join().unwrap();
        assert_eq!(
            seen,
            usize::from(accepted),
            "accepted behind the drain's back"
        );
        assert_eq!(intake.accepted(), u64::from(accepted));
    });
}

/// Two submitters against `shutdown_now`'s drain: after it, nothing an
/// accepted submitter enqueued is left behind, and refused ones left
/// nothing counted.
#[test]
fn shutdown_now_takes_every_accepted_task_once() {
    loom::model(|| {
        let intake = Arc::new(Intake::new());
        let queue = Arc::new(AtomicUsize::new(0));
        let submitters: Vec<_> = (0..2)
            .map(|_| {
                let (intake, queue) = (intake.clone(), queue.clone());
                loom::thread::spawn(move || {
                    intake.submit(|| {
                        queue.fetch_add(1, SeqCst);
                    })
                })
            })
            .collect();
        intake.advance(PoolState::Stopping);
        intake.wait_clear();
        let drained = queue.swap(0, SeqCst);
        let accepted = submitters
            .into_iter()
            .map(|t| usize::from(t.join().unwrap()))
            .sum::<usize>();
        assert_eq!(
            drained, accepted,
            "a task entered the queue after the drain"
        );
        assert_eq!(queue.load(SeqCst), 0);
        assert_eq!(intake.accepted(), accepted as u64);
    });
}

/// A submitter that is refused sees the state already moved: once a
/// submit is refused, every later one is too (no task accepted after a
/// refusal, whatever the interleaving).
#[test]
fn a_refusal_is_final() {
    loom::model(|| {
        let intake = Arc::new(Intake::new());
        let submitter = {
            let intake = intake.clone();
            loom::thread::spawn(move || {
                let first = intake.submit(|| ());
                let second = intake.submit(|| ());
                (first, second)
            })
        };
        intake.advance(PoolState::ShuttingDown);
        let (first, second) = submitter.join().unwrap();
        assert!(first || !second, "accepted after a refusal");
        assert_eq!(intake.accepted(), u64::from(first) + u64::from(second));
    });
}

/// The state only moves forward, whatever two callers race, and exactly
/// one of them moved it off `Running`.
#[test]
fn the_state_only_moves_forward() {
    loom::model(|| {
        let intake = Arc::new(Intake::new());
        let other = {
            let intake = intake.clone();
            loom::thread::spawn(move || intake.advance(PoolState::Stopping))
        };
        let before = intake.advance(PoolState::ShuttingDown);
        let other_before = other.join().unwrap();
        assert_eq!(intake.state(), PoolState::Stopping);
        assert!(
            (before == PoolState::Running) != (other_before == PoolState::Running),
            "{before:?} {other_before:?}"
        );
    });
}
