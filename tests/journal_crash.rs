//! The `durable_jobs` example as a child process, killed with SIGKILL at
//! random moments and aborting itself with `--crash-after`, ten times over
//! one database; then a last run finishes it: every job done exactly as
//! recorded, its result written, none lost, none left started (issue 17).
//!
//! The kill moments come from a seed printed at the start; set
//! `DRAINPOOL_CRASH_SEED` to replay one. Every child is bounded by
//! [`CHILD_DEADLINE`] and killed if its test fails (see `common/child.rs`,
//! which builds the example as `tests/signals/example.rs` does).
#![cfg(all(unix, feature = "journal"))]

#[path = "common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::thread;
use std::time::Duration;

use common::child::{Run, example_binary};

/// The bound on one child's life.
const CHILD_DEADLINE: Duration = Duration::from_secs(120);
/// Jobs per database.
const JOBS: u64 = 2000;

/// Starts `durable_jobs` on `db` with `extra` arguments.
fn start(db: &Path, extra: &[String]) -> Run {
    let mut args = vec![
        "--db".to_owned(),
        db.display().to_string(),
        "--jobs".to_owned(),
        JOBS.to_string(),
    ];
    args.extend_from_slice(extra);
    Run::start(
        &example_binary("durable_jobs", "journal"),
        &args,
        CHILD_DEADLINE,
    )
}

/// `done=` on the `start:` line: the jobs recorded completed so far.
fn done_at_start(run: &Run) -> u64 {
    run.stdout
        .iter()
        .find(|l| l.starts_with("start:"))
        .and_then(|l| l.split_whitespace().find_map(|w| w.strip_prefix("done=")))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// A small xorshift generator: the kill moments, replayable from a seed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// The database file, removed (with `-wal` and `-shm`) on drop.
struct TempDb(PathBuf);

impl Drop for TempDb {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm"] {
            let mut path = self.0.clone().into_os_string();
            path.push(suffix);
            let _ = std::fs::remove_file(path);
        }
    }
}

#[test]
fn killed_ten_times_then_finished_loses_no_job() {
    let seed = std::env::var("DRAINPOOL_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    println!("DRAINPOOL_CRASH_SEED={seed}");
    let mut rng = Rng(seed);
    let db = TempDb(std::env::temp_dir().join(format!(
        "drainpool-crash-test-{}-{seed}.db",
        std::process::id()
    )));
    drop(TempDb(db.0.clone())); // a fresh file
    example_binary("durable_jobs", "journal");

    let mut transcript = Vec::new();
    let mut interrupted = 0;
    for round in 1..=10 {
        let mut run;
        let how = match round % 3 {
            // Abort itself after a random number of jobs: few enough that
            // a run surely gets there (it reruns at least every job left).
            0 => {
                let k = 1 + rng.below(100);
                run = start(&db.0, &["--crash-after".into(), k.to_string()]);
                format!("--crash-after {k}")
            }
            // SIGKILL at a random moment of the first 40 ms: start-up,
            // recovery, the wait for the dead run's lease, seeding.
            1 => {
                run = start(&db.0, &[]);
                let after = Duration::from_millis(rng.below(40));
                thread::sleep(after); // the random moment (not a synchronisation)
                run.kill();
                format!("SIGKILL after {after:?}")
            }
            // SIGKILL once a random number of jobs ran in this run, at most
            // a third of those left, so that later rounds have work too.
            _ => {
                run = start(&db.0, &[]);
                assert!(
                    run.wait_for(|l| l.starts_with("start:")),
                    "{}",
                    run.transcript()
                );
                let left = JOBS.saturating_sub(done_at_start(&run));
                let target = 50 * (1 + rng.below((left / 150).max(1)));
                let reached = run.wait_for(|l| {
                    l.strip_prefix("progress: done=")
                        .and_then(|n| n.parse::<u64>().ok())
                        .is_some_and(|n| n >= target)
                });
                run.kill();
                format!("SIGKILL after {target} jobs (reached: {reached})")
            }
        };
        let status = run.finish();
        if !status.success() {
            interrupted += 1;
        }
        transcript.push(format!(
            "--- round {round}: {how}: {status}\n{}",
            run.transcript()
        ));
        assert!(
            !run.stderr.iter().any(|l| l.contains("panicked")),
            "a run panicked (seed {seed}):\n{}",
            transcript.join("\n")
        );
    }
    // Most rounds must really have been cut short, or the test proves little.
    assert!(
        interrupted >= 8,
        "only {interrupted} of 10 runs were interrupted (seed {seed}):\n{}",
        transcript.join("\n")
    );

    let mut run = start(&db.0, &[]);
    let status = run.finish();
    transcript.push(format!("--- last run: {status}\n{}", run.transcript()));
    let last = run.stdout.last().cloned().unwrap_or_default();
    let expected = format!("jobs: total={JOBS} done={JOBS} started=0 queued=0 results={JOBS}");
    assert!(
        status.success() && last == expected,
        "the last run ended {status} with {last:?}, not {expected:?} (seed {seed}):\n{}",
        transcript.join("\n")
    );

    // Shown with --nocapture: what each round did.
    println!("{}", transcript.join("\n"));

    // The database agrees: one row per job, each completed, each result there.
    let conn = rusqlite::Connection::open(&db.0).unwrap();
    let rows: (i64, i64, i64) = conn
        .query_row(
            "SELECT COUNT(*), COUNT(DISTINCT payload), SUM(state = 'completed') FROM drainpool_jobs",
            [],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
        )
        .unwrap();
    assert_eq!(rows, (JOBS as i64, JOBS as i64, JOBS as i64), "seed {seed}");
    let results: (i64, i64, i64) = conn
        .query_row(
            "SELECT COUNT(*), MIN(job), MAX(job) FROM results",
            [],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
        )
        .unwrap();
    assert_eq!(results, (JOBS as i64, 1, JOBS as i64), "seed {seed}");
}
