//! The lifecycle half of the performance suite: what it costs to end a pool,
//! and to make one, on 2 worker threads.
//!
//! - `idle_shutdown`: `shutdown` + `await_termination` of an idle pool, both
//!   workers parked on the empty queue (the pool is built, its workers seen
//!   running and given a millisecond to park, outside the timed part).
//!   Floor: a bare crossbeam-channel loop's end (drop the sender, join the
//!   threads). Target: at most 1 ms.
//! - `shutdown_now_1m`: `shutdown_now` with 1M capture-free tasks queued
//!   behind both workers, which are held busy by a latch so that every task
//!   stays queued; reported per returned task. Floor: draining a
//!   crossbeam channel of 1M boxed closures into a `Vec`. A variant with 1M
//!   `submit`ted tasks (whose handles must each be marked handed back) is
//!   measured too. Target: at most 60 ns per returned task.
//! - `new_2_threads`: `ThreadPool::new(2)` and its drop, side by side with
//!   rayon (`ThreadPoolBuilder::build` and drop), `threadpool::ThreadPool::new`
//!   and drop, and the floor, spawning 2 threads that wait on a channel and
//!   joining them. Note what each drop waits for: drainpool's drains and
//!   joins its threads (like the floor); rayon's and threadpool's only tell
//!   their threads to exit and return without waiting.
//!
//! Setups (building pools, queueing a million tasks) and teardowns are
//! outside the timed parts. A closing summary prints every variant's median.
//! Run with `cargo bench --bench suite_lifecycle` (about a minute).

mod common;

use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use common::{
    Group, Hold, SAMPLES, THREADS, Thunk, bare_workers, new_drainpool, new_rayon, parked_drainpool,
};
use criterion::Criterion;

/// Tasks queued for `shutdown_now`.
const QUEUED: usize = 1_000_000;

/// A group of rounds of `units` units each (tasks, or 1).
fn group<'c>(c: &'c mut Criterion, name: &'static str, units: u64) -> Group<'c> {
    Group::new(c, name, units, Duration::from_millis(1500), true)
}

/// Opens the latch when dropped: teardowns drop it before the pool, whose
/// drop waits for the held workers.
struct Release(Arc<Hold>);

impl Drop for Release {
    fn drop(&mut self) {
        self.0.release();
    }
}

/// A drainpool whose workers are both held.
fn held_pool() -> (drainpool::ThreadPool, Release) {
    let pool = new_drainpool();
    let hold = Hold::start(|f| pool.execute(f).expect("running pool accepts"));
    (pool, Release(hold))
}

fn noop() {}

fn idle_shutdown(c: &mut Criterion) {
    let mut g = group(c, "idle_shutdown", 1);
    g.bench("drainpool/shutdown+await_termination", 1, || {
        let pool = parked_drainpool();
        let start = Instant::now();
        pool.shutdown();
        assert!(pool.await_termination(Duration::from_secs(10)));
        let took = start.elapsed();
        drop(pool); // joins the exited threads: not timed
        took
    });
    g.bench("bare/drop_sender+join", 1, || {
        let (tx, rx) = crossbeam_channel::unbounded::<Thunk>();
        let all = Arc::new(Barrier::new(THREADS + 1));
        let workers: Vec<_> = (0..THREADS)
            .map(|_| {
                let (rx, all) = (rx.clone(), all.clone());
                thread::spawn(move || {
                    all.wait();
                    while let Ok(job) = rx.recv() {
                        job();
                    }
                })
            })
            .collect();
        all.wait();
        thread::sleep(Duration::from_millis(1));
        let start = Instant::now();
        drop(tx);
        for w in workers {
            w.join().expect("bare worker panicked");
        }
        start.elapsed()
    });
    g.finish();
}

fn shutdown_now(c: &mut Criterion) {
    let mut g = group(c, "shutdown_now_1m", QUEUED as u64);
    g.bench("drainpool/execute", QUEUED as u64, || {
        let (pool, release) = held_pool();
        for _ in 0..QUEUED {
            pool.execute(noop).expect("running pool accepts");
        }
        let start = Instant::now();
        let pending = pool.shutdown_now();
        let took = start.elapsed();
        assert_eq!(pending.len(), QUEUED);
        drop(pending); // cancels them: not timed
        drop(release);
        drop(pool);
        took
    });
    g.bench("drainpool/submit", QUEUED as u64, || {
        let (pool, release) = held_pool();
        let handles: Vec<_> = (0..QUEUED)
            .map(|_| pool.submit(noop).expect("running pool accepts"))
            .collect();
        let start = Instant::now();
        let pending = pool.shutdown_now();
        let took = start.elapsed();
        assert_eq!(pending.len(), QUEUED);
        drop(pending);
        drop(handles);
        drop(release);
        drop(pool);
        took
    });
    g.bench("bare/drain_channel", QUEUED as u64, || {
        let (tx, rx) = crossbeam_channel::unbounded::<Thunk>();
        for _ in 0..QUEUED {
            tx.send(Box::new(noop)).expect("receiver alive");
        }
        let start = Instant::now();
        let pending: Vec<Thunk> = rx.try_iter().collect();
        let took = start.elapsed();
        assert_eq!(pending.len(), QUEUED);
        took
    });
    g.finish();
}

fn new_pool(c: &mut Criterion) {
    let mut g = group(c, "new_2_threads", 1);
    g.bench("drainpool/new+drop", 1, || {
        let start = Instant::now();
        drop(new_drainpool());
        start.elapsed()
    });
    g.bench("rayon/build+drop", 1, || {
        let start = Instant::now();
        drop(new_rayon());
        start.elapsed()
    });
    g.bench("threadpool/new+drop", 1, || {
        let start = Instant::now();
        drop(threadpool::ThreadPool::new(THREADS));
        start.elapsed()
    });
    g.bench("bare/spawn+join", 1, || {
        let start = Instant::now();
        let (tx, rx) = crossbeam_channel::unbounded::<Thunk>();
        let workers = bare_workers(&rx);
        drop(tx);
        for w in workers {
            w.join().expect("bare worker panicked");
        }
        start.elapsed()
    });
    g.finish();
}

/// Prints every variant's median and the targets.
fn summary() {
    let samples = SAMPLES.lock().unwrap();
    let median = |key: &str| {
        samples.get(key).map(|s| {
            let mut s = s.clone();
            s.sort_by(f64::total_cmp);
            s[s.len() / 2]
        })
    };
    println!("\nmedians, every round measured:");
    for (key, s) in samples.iter() {
        let m = median(key).unwrap_or(f64::NAN);
        let shown = if key.starts_with("shutdown_now") {
            format!("{m:.1} ns per task")
        } else {
            format!("{:.1} µs", m / 1e3)
        };
        println!("  {key:<50} {shown:>18}  ({} rounds)", s.len());
    }
    let line = |what: &str, ours: &str, theirs: &str, target: &str| {
        if let (Some(a), Some(b)) = (median(ours), median(theirs)) {
            println!("  {what:<44} ratio {:>6.2}   target {target}", a / b);
        }
    };
    println!("\nratios of medians (drainpool / peer):");
    line(
        "idle shutdown + await vs bare drop + join",
        "idle_shutdown/drainpool/shutdown+await_termination",
        "idle_shutdown/bare/drop_sender+join",
        "<= 1 ms absolute",
    );
    line(
        "shutdown_now 1M (execute) vs channel drain",
        "shutdown_now_1m/drainpool/execute",
        "shutdown_now_1m/bare/drain_channel",
        "<= 60 ns/task absolute",
    );
    line(
        "shutdown_now 1M (submit) vs channel drain",
        "shutdown_now_1m/drainpool/submit",
        "shutdown_now_1m/bare/drain_channel",
        "(none)",
    );
    line(
        "new(2) + drop vs bare spawn + join",
        "new_2_threads/drainpool/new+drop",
        "new_2_threads/bare/spawn+join",
        "(none)",
    );
    line(
        "new(2) + drop vs rayon build + drop",
        "new_2_threads/drainpool/new+drop",
        "new_2_threads/rayon/build+drop",
        "(none)",
    );
}

fn main() {
    // Plots take longer to draw than the benchmarks take to run.
    let mut criterion = Criterion::default().without_plots().configure_from_args();
    idle_shutdown(&mut criterion);
    shutdown_now(&mut criterion);
    new_pool(&mut criterion);
    criterion.final_summary();
    summary();
}
