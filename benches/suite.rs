//! The throughput half of the performance suite: drainpool side by side with
//! rayon, `threadpool` and a bare crossbeam-channel worker loop, 2 worker
//! threads everywhere, one producer thread.
//!
//! Three scenarios:
//!
//! 1. **spawn-to-completion** (`spawn_10k`, `spawn_1m`): the producer
//!    `execute`s N tiny tasks (N = 10k and 1M) and waits until all have run.
//!    Every task bumps a static counter and, if it is the N-th, opens a
//!    `Mutex` + `Condvar` latch the producer sleeps on (as in
//!    `benches/spawn.rs`): every pool is timed to the same end and pays one
//!    wake-up per round. Two closure shapes: capture-free (`free`: the
//!    zero-sized `tick` fn item, so the pool's own cost is all that is
//!    measured) and capturing an `Arc` clone (`arc`: a refcount moving
//!    between threads, and one allocation per task in every pool but
//!    drainpool, which keeps a one-word closure in its queue entry). Peers: rayon
//!    `ThreadPool::spawn`, `threadpool::ThreadPool::execute`, and the floor,
//!    a bare crossbeam-channel loop (one channel of boxed closures, no
//!    bookkeeping). drainpool also runs the whole round as one
//!    `execute_batch` call.
//! 2. **submit-and-join** (`submit_join_100k`): 100k tasks returning a
//!    value, whose results the producer collects. drainpool `submit` (and
//!    `submit_batch`) then `join` each handle; rayon `ThreadPool::scope`
//!    (the scope body runs on a worker) and `in_place_scope` (the body runs
//!    on the producer) with spawns writing into slots; `threadpool` with a
//!    channel per result, and with one channel for all.
//! 3. **fan-out from inside a task** (`fan_out_100k`): one task spawns 100k
//!    children and waits for them. drainpool: the parent `submit`s (or
//!    `submit_batch`es) the children and joins them, and a join on a worker
//!    runs a still-queued child itself (helping); rayon: `rayon::scope`
//!    inside `install`.
//!
//! Pools are built once, outside the timed loops. Every round is also
//! recorded, and a closing summary prints each variant's median cost per
//! task and the ratios the targets are stated in (warm-up rounds
//! included, as in `stop_latency`). The lifecycle and memory scenarios are
//! in `suite_lifecycle` and `suite_memory`; `benches/compare.rs` prints the
//! same comparisons as one markdown table.
//!
//! Run with `cargo bench --bench suite` (about a minute and a half). The machine
//! these are meant for has 2 cores: the producer competes with the 2
//! workers, as it would in a real program, and noise from other jobs moves
//! the absolute figures, so read the ratios within one run.

mod common;

use std::sync::{Arc, mpsc};
use std::time::Duration;

use common::{
    BareLoop, Group, THREADS, drain_submit_batch_join, drain_submit_join, new_drainpool, new_rayon,
    print_medians, print_ratio, rayon_scope_slots, spawn_round, tick, timed_sum,
};
use criterion::Criterion;

/// Tasks per round in submit-and-join and fan-out.
const JOIN_N: u64 = 100_000;

/// A group for rounds of `n` tasks, each round long enough that one
/// iteration per sample is plenty.
fn group<'c>(c: &'c mut Criterion, name: &'static str, n: u64) -> Group<'c> {
    let measurement = if n >= 1_000_000 {
        Duration::from_secs(2)
    } else {
        Duration::from_millis(1500)
    };
    Group::new(c, name, n, measurement, n >= 100_000)
}

// ----- the pools ---------------------------------------------------------------

struct Pools {
    drain: Arc<drainpool::ThreadPool>,
    rayon: rayon::ThreadPool,
    tp: threadpool::ThreadPool,
    bare: BareLoop,
}

impl Pools {
    fn new() -> Pools {
        Pools {
            drain: Arc::new(new_drainpool()),
            rayon: new_rayon(),
            tp: threadpool::ThreadPool::new(THREADS),
            bare: BareLoop::new(),
        }
    }
}

// ----- 1. spawn-to-completion --------------------------------------------------

fn spawn_to_completion(c: &mut Criterion, pools: &Pools, n: u64, name: &'static str) {
    let Pools {
        drain,
        rayon,
        tp,
        bare,
    } = pools;
    let mut g = group(c, name, n);

    g.bench("drainpool/free", n, || {
        spawn_round(n, || {
            for _ in 0..n {
                drain.execute(tick).expect("running pool accepts");
            }
        })
    });
    g.bench("drainpool_batch/free", n, || {
        spawn_round(n, || {
            drain
                .execute_batch((0..n).map(|_| tick))
                .expect("running pool accepts");
        })
    });
    g.bench("rayon/free", n, || {
        spawn_round(n, || (0..n).for_each(|_| rayon.spawn(tick)))
    });
    g.bench("threadpool/free", n, || {
        spawn_round(n, || (0..n).for_each(|_| tp.execute(tick)))
    });
    g.bench("bare/free", n, || {
        spawn_round(n, || (0..n).for_each(|_| bare.execute(tick)))
    });

    // Each task captures an `Arc` clone, as real tasks capture their inputs.
    let shared = Arc::new(());
    let with_arc = || common::with_arc(&shared, tick);
    g.bench("drainpool/arc", n, || {
        spawn_round(n, || {
            for _ in 0..n {
                drain.execute(with_arc()).expect("running pool accepts");
            }
        })
    });
    g.bench("drainpool_batch/arc", n, || {
        spawn_round(n, || {
            drain
                .execute_batch((0..n).map(|_| with_arc()))
                .expect("running pool accepts");
        })
    });
    g.bench("rayon/arc", n, || {
        spawn_round(n, || (0..n).for_each(|_| rayon.spawn(with_arc())))
    });
    g.bench("threadpool/arc", n, || {
        spawn_round(n, || (0..n).for_each(|_| tp.execute(with_arc())))
    });
    g.bench("bare/arc", n, || {
        spawn_round(n, || (0..n).for_each(|_| bare.execute(with_arc())))
    });
    g.finish();
}

// ----- 2. submit-and-join ------------------------------------------------------

fn submit_and_join(c: &mut Criterion, pools: &Pools) {
    let n = JOIN_N;
    let Pools {
        drain, rayon, tp, ..
    } = pools;
    let mut g = group(c, "submit_join_100k", n);
    g.bench("drainpool/submit", n, || {
        timed_sum(n, || drain_submit_join(drain, n))
    });
    g.bench("drainpool/submit_batch", n, || {
        timed_sum(n, || drain_submit_batch_join(drain, n))
    });
    g.bench("rayon/scope", n, || {
        timed_sum(n, || rayon.install(|| rayon_scope_slots(n)))
    });
    g.bench("rayon/in_place_scope", n, || {
        timed_sum(n, || {
            let mut slots = vec![0u64; n as usize];
            rayon.in_place_scope(|s| {
                for (i, slot) in slots.iter_mut().enumerate() {
                    s.spawn(move |_| *slot = i as u64 * 2);
                }
            });
            slots.iter().sum()
        })
    });
    g.bench("threadpool/channel_per_result", n, || {
        timed_sum(n, || {
            let results: Vec<_> = (0..n)
                .map(|i| {
                    let (tx, rx) = mpsc::channel();
                    tp.execute(move || tx.send(i * 2).expect("receiver alive"));
                    rx
                })
                .collect();
            results.into_iter().map(|rx| rx.recv().expect("ran")).sum()
        })
    });
    g.bench("threadpool/one_channel", n, || {
        timed_sum(n, || {
            let (tx, rx) = mpsc::channel();
            for i in 0..n {
                let tx = tx.clone();
                tp.execute(move || tx.send(i * 2).expect("receiver alive"));
            }
            drop(tx);
            rx.iter().sum()
        })
    });
    g.finish();
}

// ----- 3. fan-out from inside a task -------------------------------------------

fn fan_out(c: &mut Criterion, pools: &Pools) {
    let n = JOIN_N;
    let Pools { drain, rayon, .. } = pools;
    let mut g = group(c, "fan_out_100k", n);
    g.bench("drainpool/submit", n, || {
        let inner = drain.clone();
        timed_sum(n, || {
            drain
                .submit(move || drain_submit_join(&inner, n))
                .expect("running pool accepts")
                .join()
                .expect("ran")
        })
    });
    g.bench("drainpool/submit_batch", n, || {
        let inner = drain.clone();
        timed_sum(n, || {
            drain
                .submit(move || drain_submit_batch_join(&inner, n))
                .expect("running pool accepts")
                .join()
                .expect("ran")
        })
    });
    g.bench("rayon/scope_in_install", n, || {
        timed_sum(n, || rayon.install(|| rayon_scope_slots(n)))
    });
    g.finish();
}

// ----- summary -------------------------------------------------------------------

/// Prints each variant's median, then the targets of the issue as ratios.
fn summary() {
    print_medians(48);
    println!("\nratios of medians (drainpool / peer), with the issue's targets:");
    let ratio = |what: &str, ours: &str, theirs: &str, target: &str| {
        print_ratio(58, what, ours, theirs, target);
    };
    for group in ["spawn_10k", "spawn_1m"] {
        let k = |v: &str| format!("{group}/{v}");
        ratio(
            &format!("{group}: free, vs bare loop"),
            &k("drainpool/free"),
            &k("bare/free"),
            "<= 1.5",
        );
        ratio(
            &format!("{group}: free, vs threadpool"),
            &k("drainpool/free"),
            &k("threadpool/free"),
            "<= 0.5",
        );
        ratio(
            &format!("{group}: free, vs rayon spawn"),
            &k("drainpool/free"),
            &k("rayon/free"),
            "<= 0.25",
        );
        ratio(
            &format!("{group}: arc, vs bare loop"),
            &k("drainpool/arc"),
            &k("bare/arc"),
            "<= 1.1",
        );
        ratio(
            &format!("{group}: execute_batch vs execute, free"),
            &k("drainpool_batch/free"),
            &k("drainpool/free"),
            "<= 0.5",
        );
        ratio(
            &format!("{group}: execute_batch vs execute, arc"),
            &k("drainpool_batch/arc"),
            &k("drainpool/arc"),
            "(none)",
        );
    }
    let k = |v: &str| format!("submit_join_100k/{v}");
    ratio(
        "submit_join_100k: submit vs rayon scope",
        &k("drainpool/submit"),
        &k("rayon/scope"),
        "<= 1.0",
    );
    ratio(
        "submit_join_100k: submit_batch vs rayon scope",
        &k("drainpool/submit_batch"),
        &k("rayon/scope"),
        "<= 1.0",
    );
    ratio(
        "submit_join_100k: submit vs rayon in_place_scope",
        &k("drainpool/submit"),
        &k("rayon/in_place_scope"),
        "(none)",
    );
    ratio(
        "submit_join_100k: submit vs threadpool + channel per result",
        &k("drainpool/submit"),
        &k("threadpool/channel_per_result"),
        "(none)",
    );
    ratio(
        "submit_join_100k: submit_batch vs submit",
        &k("drainpool/submit_batch"),
        &k("drainpool/submit"),
        "<= 0.5",
    );
    let k = |v: &str| format!("fan_out_100k/{v}");
    ratio(
        "fan_out_100k: submit + join vs rayon scope in install",
        &k("drainpool/submit"),
        &k("rayon/scope_in_install"),
        "(none)",
    );
    ratio(
        "fan_out_100k: submit_batch + join vs rayon scope",
        &k("drainpool/submit_batch"),
        &k("rayon/scope_in_install"),
        "(none)",
    );
}

fn main() {
    // Plots take longer to draw than the benchmarks take to run.
    let mut criterion = Criterion::default().without_plots().configure_from_args();
    let pools = Pools::new();
    spawn_to_completion(&mut criterion, &pools, 10_000, "spawn_10k");
    spawn_to_completion(&mut criterion, &pools, 1_000_000, "spawn_1m");
    submit_and_join(&mut criterion, &pools);
    fan_out(&mut criterion, &pools);
    criterion.final_summary();

    pools.drain.shutdown();
    assert!(pools.drain.await_termination(Duration::from_secs(60)));
    summary();
}
