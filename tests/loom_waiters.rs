//! Loom model checks of the crate's one waiting primitive (`sync::Waiters`,
//! through the hidden `drainpool::model::Latch`): a waiter that registers,
//! tests and parks is woken wherever the change and its notify land, also
//! with several waiters. A lost wake-up is a deadlock, which loom reports.
//!
//! `LOOM_MAX_PREEMPTIONS=3 RUSTFLAGS="--cfg loom" cargo test --release --test 'loom_*'`
#![cfg(loom)]

use drainpool::model::Latch;
use loom::sync::Arc;

#[test]
fn a_waiter_is_woken_wherever_the_change_lands() {
    loom::model(|| {
        let latch = Arc::new(Latch::new());
        let opener = {
            let latch = latch.clone();
            loom::thread::spawn(move || latch.open())
        };
        latch.wait();
        opener.join().unwrap();
    });
}

#[test]
fn every_waiter_is_woken() {
    loom::model(|| {
        let latch = Arc::new(Latch::new());
        let waiter = {
            let latch = latch.clone();
            loom::thread::spawn(move || latch.wait())
        };
        let opener = {
            let latch = latch.clone();
            loom::thread::spawn(move || latch.open())
        };
        latch.wait();
        waiter.join().unwrap();
        opener.join().unwrap();
    });
}
