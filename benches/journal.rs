//! Durable submits (feature `journal`): what recording a job in the SQLite
//! journal costs, against a plain `submit_job`.
//!
//! Each figure is the whole life of a trivial job, per job: submit (for a
//! durable one, it returns once the row is committed), run, and, for a
//! durable one, its start and end marks written (`wait_idle` and `flush`
//! end each timed batch):
//!
//! - `durable/full/1`, `durable/full/8`: [`Durability::Full`] (an fsync per
//!   group commit), with 1 and 8 threads submitting at once; with 8, their
//!   submits share transactions (group commit), so the cost per job falls;
//! - `durable/normal/1`, `durable/normal/8`: the same at
//!   [`Durability::Normal`] (no fsync at commit in WAL mode);
//! - `plain/submit_job/1`: the same job through `ThreadPool::submit_job`.
//!
//! The closing summary times fixed batches outside criterion and prints
//! the cost per job and the ratio to a plain submit.
//!
//! Run with `cargo bench --features journal --bench journal`. The database
//! lives in the temp directory: its file system decides the cost of an
//! fsync (a tmpfs has none).

use std::path::PathBuf;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use drainpool::journal::{Durability, DurableJob, JobJournal, SqliteJournal};
use drainpool::{Job, ThreadPool};
use serde::{Deserialize, Serialize};

/// The bound on waiting for the pool to go idle.
const BOUND: Duration = Duration::from_secs(60);

/// A job that does nothing: the cost measured is the journal's.
#[derive(Serialize, Deserialize)]
struct Noop(u64);

impl Job for Noop {
    type Output = u64;
    fn run(self) -> u64 {
        std::hint::black_box(self.0)
    }
}

impl DurableJob for Noop {
    const KIND: &'static str = "bench.noop";
}

/// A journal in a fresh file; removed on drop.
struct Rig {
    journal: JobJournal,
    pool: Arc<ThreadPool>,
    path: PathBuf,
}

impl Rig {
    fn new(name: &str, durability: Durability) -> Rig {
        let path =
            std::env::temp_dir().join(format!("drainpool-bench-{}-{name}.db", std::process::id()));
        remove(&path);
        let store = SqliteJournal::builder(&path)
            .durability(durability)
            .open()
            .expect("the journal opens");
        Rig {
            journal: JobJournal::new(store),
            pool: Arc::new(ThreadPool::new(4).expect("the pool builds")),
            path,
        }
    }

    /// Submits `n` jobs durably from `threads` threads at once; returns
    /// once every job ran and its marks are on disk.
    fn durable(&self, n: u64, threads: u64) -> Duration {
        let start = Instant::now();
        thread::scope(|s| {
            for t in 0..threads {
                let (journal, pool) = (&self.journal, &self.pool);
                s.spawn(move || {
                    for i in (t..n).step_by(threads as usize) {
                        drop(journal.submit(pool, Noop(i)).expect("submitted"));
                    }
                });
            }
        });
        assert!(self.pool.wait_idle(BOUND), "the pool did not go idle");
        self.journal.flush().expect("flushed");
        start.elapsed()
    }

    /// Submits `n` jobs with a plain `submit_job`; returns once every job
    /// ran.
    fn plain(&self, n: u64) -> Duration {
        let start = Instant::now();
        for i in 0..n {
            drop(self.pool.submit_job(Noop(i)).expect("submitted"));
        }
        assert!(self.pool.wait_idle(BOUND), "the pool did not go idle");
        start.elapsed()
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        self.pool.shutdown();
        self.pool.await_termination(BOUND);
        remove(&self.path);
    }
}

fn remove(path: &std::path::Path) {
    for suffix in ["", "-wal", "-shm"] {
        let mut p = path.to_owned().into_os_string();
        p.push(suffix);
        let _ = std::fs::remove_file(p);
    }
}

fn benches(c: &mut Criterion) {
    let mut group = c.benchmark_group("journal");
    group.throughput(Throughput::Elements(1));
    for (name, durability) in [("full", Durability::Full), ("normal", Durability::Normal)] {
        let rig = Rig::new(name, durability);
        for threads in [1, 8] {
            group.bench_function(format!("durable/{name}/{threads}"), |b| {
                b.iter_custom(|iters| rig.durable(iters, threads))
            });
        }
    }
    let rig = Rig::new("plain", Durability::Normal);
    group.bench_function("plain/submit_job/1", |b| {
        b.iter_custom(|iters| rig.plain(iters))
    });
    group.finish();
}

/// Fixed batches, timed outside criterion: cost per job and the ratio to
/// a plain submit.
fn summary() {
    let per_job = |d: Duration, n: u64| d.as_secs_f64() * 1e6 / n as f64;
    let plain_rig = Rig::new("summary-plain", Durability::Normal);
    plain_rig.plain(10_000); // warm-up
    let plain = per_job(plain_rig.plain(100_000), 100_000);
    drop(plain_rig);
    println!("summary (cost per job: submit, run, marks on disk):");
    println!("  plain submit_job           {plain:>10.3} µs/job");
    for (name, durability) in [("full", Durability::Full), ("normal", Durability::Normal)] {
        for threads in [1u64, 8] {
            let rig = Rig::new(&format!("summary-{name}-{threads}"), durability);
            let n = if threads == 1 { 2_000 } else { 16_000 };
            rig.durable(n / 10, threads); // warm-up
            let commits_before = rig.journal.stats().commits;
            let us = per_job(rig.durable(n, threads), n);
            let commits = rig.journal.stats().commits - commits_before;
            println!(
                "  durable {name:<6} {threads} thread(s) {us:>10.3} µs/job  ({:.0}x plain, \
                 {:.0} jobs/s, {:.1} jobs per commit)",
                us / plain,
                1e6 / us,
                n as f64 / commits.max(1) as f64
            );
        }
    }
}

fn main() {
    let mut criterion = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    benches(&mut criterion);
    criterion.final_summary();
    summary();
}
