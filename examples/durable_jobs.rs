//! Durable jobs that survive `kill -9`: run it, kill it at any moment, run
//! it again with the same `--db`, until it prints
//! `jobs: total=N done=N started=0 queued=0 results=N`.
//!
//! ```text
//! cargo run --release --features journal --example durable_jobs -- --db /tmp/jobs.db --jobs 2000
//! cargo run --release --features journal --example durable_jobs -- --db /tmp/jobs.db --crash-after 300
//! ```
//!
//! Each job's effect is an `INSERT OR IGNORE` of its number into a
//! `results` table of the same database: idempotent, so a job that ran but
//! whose completion was never recorded (the process died in between) can
//! run again harmlessly. That is the at-least-once contract of the journal.
//!
//! A run:
//!
//! 1. opens the journal (SQLite, WAL) and registers the job type;
//! 2. recovers what an earlier run left: jobs still queued, and jobs left
//!    started by a process whose lease ran out. Right after a kill the
//!    dead run's lease is still going, so it waits for it (the journal
//!    says how long) and looks again;
//! 3. records the jobs not recorded yet, 100 at a time, each batch in one
//!    transaction: jobs `1..=N`, numbered in order, so the count of rows
//!    says where an interrupted run stopped;
//! 4. drains the pool and prints the counts.
//!
//! Options: `--db PATH` (default: `drainpool_durable_jobs.db` in the temp
//! directory), `--jobs N` (default 2000), `--crash-after K` (abort, with no
//! unwinding and no destructors, once K jobs completed in this run),
//! `--threads T` (default 4), `--lease-ms MS` (default 1000),
//! `--durability full|normal|off` (default full).
//!
//! Output: `start: ...` (the journal as found), `recovered: ...` (per
//! look), `recorded: ...`, `progress: done=K` every 50 jobs completed in
//! this run, and last `jobs: total=.. done=.. started=..
//! queued=.. results=..`. Exit status 0 when every job is done and has
//! its result, 1 otherwise.

use std::cell::RefCell;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use drainpool::journal::{Durability, DurableJob, JobJournal, SqliteJournal};
use drainpool::{Job, ThreadPool};
use rusqlite::Connection;
use serde::{Deserialize, Serialize};

/// The kind under which the jobs are journaled.
const KIND: &str = "durable_jobs.record";
/// A `progress:` line every this many jobs completed in a run.
const PROGRESS: u64 = 50;
/// Jobs recorded per transaction while seeding.
const BATCH: u64 = 100;

/// What every job needs to know: the database and when to crash.
struct Setup {
    db: PathBuf,
    durability: Durability,
    crash_after: Option<u64>,
}

static SETUP: OnceLock<Setup> = OnceLock::new();
/// Jobs completed in this run.
static DONE: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// Each worker's own connection for the effect.
    static RESULTS: RefCell<Option<Connection>> = const { RefCell::new(None) };
}

fn open_results(setup: &Setup) -> rusqlite::Result<Connection> {
    let conn = Connection::open(&setup.db)?;
    conn.busy_timeout(Duration::from_secs(10))?;
    let sync = match setup.durability {
        Durability::Normal => "NORMAL",
        Durability::Off => "OFF",
        _ => "FULL",
    };
    conn.execute_batch(&format!("PRAGMA synchronous = {sync}"))?;
    Ok(conn)
}

/// The effect: `n` goes into `results`, once however often it runs.
fn record(setup: &Setup, n: u64) -> rusqlite::Result<()> {
    RESULTS.with(|slot| {
        let mut slot = slot.borrow_mut();
        if slot.is_none() {
            *slot = Some(open_results(setup)?);
        }
        let conn = slot.as_ref().expect("just opened");
        conn.execute(
            "INSERT OR IGNORE INTO results (job) VALUES (?1)",
            [n as i64],
        )
        .map(drop)
    })
}

/// The job: record that job `n` happened.
#[derive(Debug, Serialize, Deserialize)]
struct Record {
    n: u64,
}

impl Job for Record {
    type Output = ();

    fn run(self) {
        let setup = SETUP.get().expect("set before the pool starts");
        let mut tries = 0;
        while let Err(e) = record(setup, self.n) {
            // Still locked after the busy timeout: try again; a panic
            // would record the job failed.
            tries += 1;
            if tries == 10 {
                panic!("job {}: {e}", self.n);
            }
            eprintln!("job {}: {e}; retrying", self.n);
        }
        let done = DONE.fetch_add(1, Ordering::SeqCst) + 1;
        if done % PROGRESS == 0 {
            println!("progress: done={done}");
        }
        if setup.crash_after == Some(done) {
            println!("crash: aborting after {done} completed jobs");
            std::process::abort();
        }
    }
}

impl DurableJob for Record {
    const KIND: &'static str = KIND;
    fn idempotency_key(&self) -> Option<String> {
        Some(format!("results/{}", self.n))
    }
}

struct Options {
    db: PathBuf,
    jobs: u64,
    crash_after: Option<u64>,
    threads: usize,
    lease: Duration,
    durability: Durability,
}

fn parse_options() -> Result<Options, String> {
    let mut options = Options {
        db: std::env::temp_dir().join("drainpool_durable_jobs.db"),
        jobs: 2000,
        crash_after: None,
        threads: 4,
        lease: Duration::from_millis(1000),
        durability: Durability::Full,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let value = args.next().ok_or(format!("{arg} needs a value"))?;
        let number = || {
            value
                .parse::<u64>()
                .map_err(|e| format!("{arg} {value}: {e}"))
        };
        match arg.as_str() {
            "--db" => options.db = PathBuf::from(&value),
            "--jobs" => options.jobs = number()?,
            "--crash-after" => options.crash_after = Some(number()?.max(1)),
            "--threads" => options.threads = number()?.max(1) as usize,
            "--lease-ms" => options.lease = Duration::from_millis(number()?),
            "--durability" => {
                options.durability = match value.as_str() {
                    "full" => Durability::Full,
                    "normal" => Durability::Normal,
                    "off" => Durability::Off,
                    _ => return Err(format!("--durability {value}: full, normal or off")),
                }
            }
            _ => return Err(format!("unknown argument {arg:?} (see the example's docs)")),
        }
    }
    Ok(options)
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("durable_jobs: {e}");
            ExitCode::from(2)
        }
    }
}

fn run() -> Result<bool, Box<dyn std::error::Error + Send + Sync>> {
    let options = parse_options()?;
    let store = SqliteJournal::builder(&options.db)
        .durability(options.durability)
        .lease(options.lease)
        .open()?;
    let journal = JobJournal::new(store);
    journal.register::<Record>()?;
    let setup = Setup {
        db: options.db.clone(),
        durability: options.durability,
        crash_after: options.crash_after,
    };
    open_results(&setup)?
        .execute_batch("CREATE TABLE IF NOT EXISTS results (job INTEGER PRIMARY KEY)")?;
    let _ = SETUP.set(setup);

    let found = journal.counts()?;
    println!(
        "start: db={} total={} done={} started={} queued={} (pid {})",
        options.db.display(),
        found.total(),
        found.completed,
        found.started,
        found.queued,
        std::process::id()
    );

    let pool = ThreadPool::builder()
        .threads(options.threads)
        .thread_name("job")
        .build()?;

    // What earlier runs left. A killed run's lease is still going for up
    // to a lease: wait for it and look again.
    loop {
        let report = journal.recover_and_resubmit(&pool)?;
        println!(
            "recovered: resubmitted={} skipped={} held_elsewhere={}",
            report.resubmitted,
            report.skipped.len(),
            report.held_elsewhere
        );
        match report.retry_after {
            Some(wait) if report.held_elsewhere > 0 => {
                std::thread::sleep(wait + Duration::from_millis(20));
            }
            _ => break,
        }
    }

    // The jobs not recorded yet: rows are numbered 1..=total in order, one
    // transaction per batch, so the count says where seeding stopped.
    let mut next = journal.counts()?.total() + 1;
    let first = next;
    while next <= options.jobs {
        let end = (next + BATCH - 1).min(options.jobs);
        journal
            .submit_all(&pool, (next..=end).map(|n| Record { n }))
            .map_err(|e| e.to_string())?;
        next = end + 1;
    }
    println!("recorded: jobs {first}..={}", options.jobs);

    pool.shutdown();
    pool.await_termination(Duration::MAX);
    journal.flush()?;
    let counts = journal.counts()?;
    let results: i64 =
        Connection::open(&options.db)?
            .query_row("SELECT COUNT(*) FROM results", [], |row| row.get(0))?;
    let stats = journal.stats();
    if stats.failed_writes > 0 || stats.skipped_unknown_kind + stats.skipped_undecodable > 0 {
        println!("journal: {stats:?}");
    }
    println!(
        "jobs: total={} done={} started={} queued={} results={}",
        counts.total(),
        counts.completed,
        counts.started,
        counts.queued,
        results
    );
    let n = options.jobs;
    Ok(counts.total() == n
        && counts.completed == n
        && counts.started == 0
        && counts.queued == 0
        && results as u64 == n)
}
