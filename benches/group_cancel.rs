//! Cancelling a big group: a group with 1M queued tasks is cancelled while
//! another group's single task waits behind them. Two figures:
//!
//! - **other task's wait**: from the moment `big.cancel()` is called until
//!   the other group's task has run (it stamps the time when it starts);
//! - **cancel per task**: how long `big.cancel()` takes, divided by the
//!   number of tasks it drops (criterion reports the whole cancel, with its
//!   throughput in tasks per second; the summary gives ns per task).
//!
//! Each iteration, on a pool of one worker:
//!
//! 1. the worker is held by a task that spins on a flag (so that its
//!    release costs no wake-up from sleep);
//! 2. `BIG` tasks are executed into group `big` (each closure owns a value
//!    that must be dropped, one allocation per task, as an `execute` of a
//!    small closure is), then one task into group `other`: the queue holds
//!    `big`'s token, then `other`'s;
//! 3. timed from here: the worker is released and, at once, `big.cancel()`
//!    is called. The worker goes on meanwhile, as a pool's workers do while
//!    a program cancels a job: it takes `big`'s token, finds the mailbox
//!    emptied (or takes one last task of `big` if it got there first), and
//!    then takes `other`'s token and runs its task.
//!
//! A pool that queued every task by itself would make `other`'s task wait
//! until a worker had popped (and skipped) a million dead entries; here the
//! pool's queue holds one entry for the whole group, and the cancel empties
//! the group's mailbox (dropping the closures on the cancelling thread, so
//! their memory is freed by the time `cancel` returns).
//!
//! Building the million tasks (not timed) costs more than the timed part, so
//! an iteration takes about a quarter of a second of wall time; criterion
//! plans its iterations on wall time, so the sample counts below keep the
//! whole run near a minute. The closing summary prints exact percentiles of
//! every iteration (warm-up included).
//!
//! Run with `cargo bench --bench group_cancel` on an otherwise idle machine.

use std::hint::{black_box, spin_loop};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use criterion::{Criterion, SamplingMode, Throughput};
use crossbeam_channel::{Receiver, bounded};
use drainpool::ThreadPool;

/// Tasks in the cancelled group.
const BIG: usize = 1_000_000;
/// The bound on waiting for anything in the rig.
const BOUND: Duration = Duration::from_secs(30);

/// What one iteration measured.
#[derive(Clone, Copy, Debug)]
struct Measured {
    /// From the cancel call (and the worker's release) until the other
    /// group's task started.
    wait: Duration,
    /// The cancel call itself.
    cancel: Duration,
}

/// Every iteration measured, for the summary.
static MEASURED: Mutex<Vec<Measured>> = Mutex::new(Vec::new());

/// A one-worker pool, reused across iterations.
struct Rig {
    pool: ThreadPool,
}

impl Rig {
    fn new() -> Rig {
        let pool = ThreadPool::builder()
            .threads(1)
            .thread_name("bench")
            .build()
            .expect("the pool builds");
        Rig { pool }
    }

    /// Holds the worker, spinning until the flag is raised; returns once it
    /// has started.
    fn hold(&self) -> Arc<AtomicBool> {
        let release = Arc::new(AtomicBool::new(false));
        let (started_tx, started) = bounded(1);
        let flag = release.clone();
        self.pool
            .execute(move || {
                started_tx.send(()).unwrap();
                let deadline = Instant::now() + BOUND;
                while !flag.load(Ordering::Acquire) && Instant::now() < deadline {
                    for _ in 0..64 {
                        spin_loop();
                    }
                }
            })
            .unwrap();
        started.recv_timeout(BOUND).expect("the holder started");
        release
    }

    fn once(&self) -> Measured {
        let release = self.hold();
        let big = self.pool.group("big");
        for i in 0..BIG as u64 {
            let payload = i; // dropped by the cancel
            big.execute(move || {
                black_box(payload);
            })
            .unwrap();
        }
        let other = self.pool.group("other");
        let (ran_tx, ran): (_, Receiver<Instant>) = bounded(1);
        other
            .execute(move || ran_tx.send(Instant::now()).unwrap())
            .unwrap();

        let start = Instant::now();
        release.store(true, Ordering::Release);
        let dropped = big.cancel();
        let cancelled = Instant::now();
        let ran_at = ran.recv_timeout(BOUND).expect("the other group's task ran");
        assert!(dropped >= BIG - 1, "the worker took at most one of them");
        assert!(other.wait(BOUND) && self.pool.wait_idle(BOUND));
        let measured = Measured {
            wait: ran_at.saturating_duration_since(start),
            cancel: cancelled - start,
        };
        MEASURED.lock().unwrap().push(measured);
        measured
    }
}

fn group_cancel(c: &mut Criterion) {
    let rig = Rig::new();
    let mut group = c.benchmark_group("group_cancel");
    group.sampling_mode(SamplingMode::Flat);
    group.bench_function("other task's wait, 1M cancelled ahead", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| rig.once().wait).sum());
    });
    group.throughput(Throughput::Elements(BIG as u64));
    group.bench_function("cancel of 1M queued tasks", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| rig.once().cancel).sum());
    });
    group.finish();
    rig.pool.shutdown();
    assert!(rig.pool.await_termination(BOUND));
}

fn percentile<T: Copy>(sorted: &[T], p: f64) -> T {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Exact percentiles over every iteration.
fn summary() {
    let measured = MEASURED.lock().unwrap();
    if measured.is_empty() {
        return;
    }
    let mut waits: Vec<f64> = measured
        .iter()
        .map(|m| m.wait.as_secs_f64() * 1e6)
        .collect();
    let mut per_task: Vec<f64> = measured
        .iter()
        .map(|m| m.cancel.as_secs_f64() * 1e9 / BIG as f64)
        .collect();
    let before_cancel_returned = measured.iter().filter(|m| m.wait < m.cancel).count();
    waits.sort_by(f64::total_cmp);
    per_task.sort_by(f64::total_cmp);
    println!(
        "\ngroup cancel, {} iterations of {BIG} queued tasks:",
        measured.len()
    );
    println!(
        "  {:<40} {:>9} {:>9} {:>9} {:>9}",
        "", "p10", "median", "p90", "max"
    );
    for (label, values) in [
        ("other group's task waited (µs)", &waits),
        ("cancel, per dropped task (ns)", &per_task),
    ] {
        println!(
            "  {:<40} {:>9.2} {:>9.2} {:>9.2} {:>9.2}",
            label,
            percentile(values, 0.1),
            percentile(values, 0.5),
            percentile(values, 0.9),
            percentile(values, 1.0)
        );
    }
    println!(
        "  the other group's task had run before cancel() returned in {before_cancel_returned} \
         of {} iterations",
        measured.len()
    );
}

fn main() {
    let mut criterion = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(15))
        .configure_from_args();
    group_cancel(&mut criterion);
    criterion.final_summary();
    summary();
}
