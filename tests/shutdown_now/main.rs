//! `shutdown_now`: refuses intake, hands back every never-started task once
//! and in submission order, raises the stop flag of the running ones, and
//! does not wait. Handed-back tasks run on the caller's thread or, dropped,
//! resolve their handles as cancelled; every task is accounted for once.
//!
//! One module per capability; the helper they share is here.

#[path = "../common/mod.rs"]
mod common;
mod contract;
mod races;

use common::Gate;
use drainpool::ThreadPool;

/// A one-thread pool whose only worker is held by `gate`.
fn held_pool(gate: &Gate) -> ThreadPool {
    let pool = ThreadPool::new(1).unwrap();
    pool.execute(gate.task()).unwrap();
    gate.wait_entered(1);
    pool
}
