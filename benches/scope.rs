//! Scopes (issue 14): a scope with 100k tiny spawns that each write one
//! slot of a borrowed slice, drainpool's `pool.scope` side by side with
//! rayon's, 2 worker threads everywhere. The target: per task, at most
//! 1.0× `rayon::scope`.
//!
//! One group, `scope_100k`; every round fills the same `Vec` of 100k slots
//! (borrowed as `&mut [u64]`: each task writes `2i` into slot `i`), and only
//! the scope call is timed. After each round the slots are checked and
//! cleared, untimed. The variants:
//!
//! - `drainpool/outside`: `pool.scope` called by the bench thread, which is
//!   not one of the pool's workers: it spawns, then waits while the two
//!   workers run the tasks.
//! - `drainpool/inside`: the bench thread submits one task that opens the
//!   scope, and joins it. The scope's caller is then a worker, which runs
//!   the scope's queued tasks itself while it waits (it helps), as the
//!   other worker does. The `Vec` moves into the task and back, so only
//!   the submit, the join and one wake-up are added to the scope.
//! - `rayon/scope`: `rayon::scope` inside `install` (what
//!   `ThreadPool::scope` does): the scope body runs on a worker, which
//!   helps. The peer of the target.
//! - `rayon/in_place_scope`: `ThreadPool::in_place_scope` called by the
//!   bench thread: the body runs there, and the thread waits outside the
//!   pool, like `drainpool/outside`.
//!
//! Throughput is one element per task, so criterion's time per element is
//! the time per task. Every round is also recorded, and a closing summary
//! prints each variant's median per task and the ratios against rayon.
//! `benches/compare.rs` has the same scenario as a row of its table.
//!
//! Run with `cargo bench --bench scope` (about 20 seconds). On a 2-core
//! machine the bench thread competes with the two workers (and, from
//! outside, is one more thread to wake), and noise from other jobs moves
//! the absolute figures: read the ratios within one run.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{
    Group, drain_scope_fill, drain_scope_fill_inside, new_drainpool, new_rayon, print_medians,
    print_ratio, rayon_scope_fill,
};
use criterion::Criterion;

/// Tasks (slots) per round.
const N: u64 = 100_000;

/// Checks that the round wrote `2i` into every slot `i`, and clears them
/// for the next round.
fn check_and_clear(slots: &mut [u64]) {
    for (i, slot) in slots.iter_mut().enumerate() {
        assert_eq!(*slot, i as u64 * 2, "slot {i} not written");
        *slot = 0;
    }
}

/// Times `fill` over `slots`, then checks them (untimed).
fn timed_fill(slots: &mut Vec<u64>, fill: impl FnOnce(&mut Vec<u64>)) -> Duration {
    let start = Instant::now();
    fill(slots);
    let took = start.elapsed();
    check_and_clear(slots);
    took
}

fn scope_100k(c: &mut Criterion) {
    let drain = Arc::new(new_drainpool());
    let rayon = new_rayon();
    let mut slots = vec![0u64; N as usize];
    let mut g = Group::new(c, "scope_100k", N, Duration::from_secs(3), true);

    g.bench("drainpool/outside", N, || {
        timed_fill(&mut slots, |slots| drain_scope_fill(&drain, slots))
    });
    g.bench("drainpool/inside", N, || {
        timed_fill(&mut slots, |slots| {
            *slots = drain_scope_fill_inside(&drain, std::mem::take(slots));
        })
    });
    g.bench("rayon/scope", N, || {
        timed_fill(&mut slots, |slots| {
            rayon.install(|| rayon_scope_fill(slots))
        })
    });
    g.bench("rayon/in_place_scope", N, || {
        timed_fill(&mut slots, |slots| {
            rayon.in_place_scope(|s| {
                for (i, slot) in slots.iter_mut().enumerate() {
                    s.spawn(move |_| *slot = i as u64 * 2);
                }
            })
        })
    });
    g.finish();

    drain.shutdown();
    assert!(drain.await_termination(Duration::from_secs(60)));
}

// ----- summary -------------------------------------------------------------------

/// Prints each variant's median, then the ratios against rayon.
fn summary() {
    print_medians(40);
    println!("\nratios of medians (drainpool / rayon), with the issue's target:");
    let k = |v: &str| format!("scope_100k/{v}");
    for (what, ours, theirs, target) in [
        (
            "scope from outside vs rayon scope",
            "drainpool/outside",
            "rayon/scope",
            "<= 1.0",
        ),
        (
            "scope inside a task vs rayon scope",
            "drainpool/inside",
            "rayon/scope",
            "<= 1.0",
        ),
        (
            "scope from outside vs rayon in_place_scope",
            "drainpool/outside",
            "rayon/in_place_scope",
            "(none)",
        ),
    ] {
        print_ratio(44, what, &k(ours), &k(theirs), target);
    }
}

fn main() {
    // Plots take longer to draw than the benchmarks take to run.
    let mut criterion = Criterion::default().without_plots().configure_from_args();
    scope_100k(&mut criterion);
    criterion.final_summary();
    summary();
}
