//! Seed 001, fixed: on Ctrl-C every job records a final state in the
//! database *before* the database closes.
//!
//! ```text
//! cargo run --example signal_service                     # triggers itself after 1 s
//! cargo run --example signal_service -- --auto-trigger-ms 0   # waits for Ctrl-C / SIGTERM
//! cargo run --example signal_service -- --self-signal 2  # sends itself SIGINT twice
//! cargo run --example signal_service -- --self-signal 3 --stubborn-ms 5000   # exits 130
//! ```
//!
//! A small service: a main loop submits a job every few milliseconds to a
//! pool of 2 workers; each job writes its state to a fake database (STARTED,
//! then COMPLETED, or STOPPED if it was interrupted). The database refuses
//! writes once it is closed and counts the refused ones: in the Spring Batch
//! story of seed 001, the shutdown hook that should record the jobs' states
//! ran after the database was closed, and the jobs were left STARTED forever.
//!
//! Here the shutdown is one ordered sequence, installed with
//! `drainpool::signal::on_signals([SIGINT, SIGTERM])`:
//!
//! 1. step `stop intake`: the main loop (which also fires on the guard's
//!    stop token) confirms it will submit and write nothing more;
//! 2. pool `jobs`: drain; every accepted job still runs to COMPLETED;
//! 3. step `close database`: runs only once the pool has terminated (or was
//!    given up on); it records the jobs that never started, then closes.
//!
//! A second signal interrupts the running jobs (they record STOPPED) and
//! hands the queued ones back (they end NEVER_STARTED); a third exits at
//! once with status 128 + the signal number (130 for SIGINT).
//!
//! **Where NEVER_STARTED comes from.** A job's row is written QUEUED by the
//! main loop before the job is submitted. A job that never starts is handed
//! back inside the pool's report as a `PendingTask`, and that report only
//! reaches `main` from `SignalGuard::wait`, after *every* step, including
//! `close database`, has run. So recording NEVER_STARTED when those tasks are
//! dropped (a guard in the closure whose `Drop` writes) would write to a
//! closed database: the seed-001 bug again. Instead, `close database`, which
//! runs after the pool terminated, when no queued job can start any more,
//! turns every row still QUEUED into NEVER_STARTED before closing, and
//! `main` then checks those rows against the never-started tasks the pool's
//! report names. Dropping the report's tasks afterwards writes nothing.
//!
//! Options: `--self-signal N` (send itself SIGINT N times after a short
//! warm-up, waiting for the first to take effect before the next),
//! `--auto-trigger-ms MS` (call `guard.trigger()` if no signal came by then;
//! 0 = never; default 1000, or never with `--self-signal`), `--job-ms MS`
//! (a job's typical length; they run 0.5 to 1.5 times that, default 200),
//! `--drain-ms MS` / `--interrupt-ms MS` (the pool's shutdown policy,
//! default 10000 / 2000), `--stubborn-ms MS` (job 1 ignores stop requests
//! for that long; default 0: no such job).
//!
//! **With the real database: `--journal PATH`** (feature `journal`; see
//! `signal_service/journal.rs`). The job repository is drainpool's SQLite
//! journal instead of the fake database: every job is recorded before the
//! pool gets it, and its row says QUEUED, STARTED (by this process, under
//! a lease), COMPLETED, or QUEUED again if a second signal interrupted it.
//! At the end it prints every job's row. Kill it with `kill -9` and start
//! it again with the same `--journal`: it lists the jobs the dead process
//! left (once its lease, `--lease-ms`, default 2000, has run out), runs
//! them, and goes on.
//!
//! ```text
//! cargo run --features journal --example signal_service -- --journal /tmp/service.db --auto-trigger-ms 0
//! ```
//!
//! Output, one fact per line, for people and for `tests/signals/example.rs`:
//! `ready`, `main: backlog full (4 queued)` (once), `job-N:
//! STARTED|COMPLETED|interrupted, STOPPED`, `pool jobs:
//! terminated`, `step: ...`, `report: ...`, `final: COMPLETED=.. STOPPED=..
//! NEVER_STARTED=.. ...`, `refused writes after close: 0`, `late writes of
//! ABANDONED jobs (expected): N`, `exit: clean`. The exit status is 0 if
//! every job reached a final state and no write was refused, 1 otherwise.
//! A job that ignores its stop request past the interrupt budget
//! (`--stubborn-ms` longer than `--interrupt-ms`) is recorded ABANDONED
//! before the database closes; when it finishes later, its write is refused
//! and counted apart: its final state was recorded in time, nothing is
//! lost.

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use drainpool::signal::{
    SIGINT, SIGTERM, SignalGuard, StepContext, StepOutcome, StepReport, on_signals,
};

/// `--journal PATH`: the same service with the SQLite journal as its job
/// repository (feature `journal`).
#[cfg(feature = "journal")]
#[path = "signal_service/journal.rs"]
mod journal;
use drainpool::{ShutdownPolicy, StopToken, ThreadPool};
use parking_lot::Mutex;

/// The state of a job's row in the database.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum JobState {
    /// Accepted by the pool and queued (not final).
    Queued,
    /// Running (not final: this is what seed 001 left behind).
    Started,
    /// Ran to its end.
    Completed,
    /// Interrupted by a stop request; stopped early, cleanly.
    Stopped,
    /// Accepted but never started: handed back by the shutdown.
    NeverStarted,
    /// Refused by the pool (it was already shutting down).
    Rejected,
    /// Still running when the database closed (a stuck job).
    Abandoned,
}

impl JobState {
    const ALL: [JobState; 7] = [
        JobState::Completed,
        JobState::Stopped,
        JobState::NeverStarted,
        JobState::Rejected,
        JobState::Abandoned,
        JobState::Started,
        JobState::Queued,
    ];

    fn is_final(self) -> bool {
        !matches!(self, JobState::Queued | JobState::Started)
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            JobState::Queued => "QUEUED",
            JobState::Started => "STARTED",
            JobState::Completed => "COMPLETED",
            JobState::Stopped => "STOPPED",
            JobState::NeverStarted => "NEVER_STARTED",
            JobState::Rejected => "REJECTED",
            JobState::Abandoned => "ABANDONED",
        })
    }
}

/// A write the database refused because it was closed.
#[derive(Debug)]
struct Closed;

/// The fake database: one row per job; refuses writes after `close`.
#[derive(Default)]
struct Database {
    inner: Mutex<Tables>,
}

#[derive(Default)]
struct Tables {
    closed: bool,
    jobs: BTreeMap<u64, JobState>,
    /// Writes refused after close for jobs that were not ABANDONED: each is
    /// a state lost, the seed-001 bug.
    refused: u64,
    /// Writes refused after close for jobs recorded ABANDONED before it:
    /// a job that ignored its stop request past its budget finishing late.
    /// Its final state (ABANDONED) was written in time; the late write is
    /// expected and loses nothing.
    late_abandoned: u64,
}

impl Database {
    fn write(&self, job: u64, state: JobState) -> Result<(), Closed> {
        let mut tables = self.inner.lock();
        if tables.closed {
            if tables.jobs.get(&job) == Some(&JobState::Abandoned) {
                tables.late_abandoned += 1;
                drop(tables);
                println!(
                    "db: late write job-{job} -> {state} refused: it was recorded ABANDONED \
                     before the database closed"
                );
            } else {
                tables.refused += 1;
                drop(tables);
                println!("db: REFUSED write job-{job} -> {state}: database is closed");
            }
            return Err(Closed);
        }
        tables.jobs.insert(job, state);
        Ok(())
    }

    /// Turns every QUEUED row into NEVER_STARTED, then closes; returns those
    /// jobs and how many rows were still STARTED. Only correct once no
    /// queued job can start any more (the pool has terminated or handed its
    /// queue back), which is why it runs as the step after the pool's.
    fn finalise_and_close(&self) -> (Vec<u64>, usize) {
        let mut tables = self.inner.lock();
        let mut never_started = Vec::new();
        let mut started = 0;
        for (&job, state) in tables.jobs.iter_mut() {
            match *state {
                JobState::Queued => {
                    *state = JobState::NeverStarted;
                    never_started.push(job);
                }
                JobState::Started => started += 1,
                _ => {}
            }
        }
        tables.closed = true;
        (never_started, started)
    }

    /// Reads the closed database (reading is allowed; writing is not).
    fn summary(&self) -> (BTreeMap<JobState, usize>, Vec<u64>, u64, u64) {
        let tables = self.inner.lock();
        let mut counts = BTreeMap::new();
        let mut never_started = Vec::new();
        for (&job, &state) in &tables.jobs {
            *counts.entry(state).or_insert(0) += 1;
            if state == JobState::NeverStarted {
                never_started.push(job);
            }
        }
        (counts, never_started, tables.refused, tables.late_abandoned)
    }
}

/// The command line.
#[derive(Debug)]
struct Options {
    self_signal: u32,
    auto_trigger: Option<Duration>,
    job: Duration,
    drain: Duration,
    interrupt: Duration,
    stubborn: Duration,
    /// `--journal PATH`: the SQLite journal is the job repository.
    journal: Option<std::path::PathBuf>,
    /// `--lease-ms MS`: the journal's lease (default 2000).
    #[cfg_attr(not(feature = "journal"), allow(dead_code))]
    lease: Duration,
}

fn parse_options() -> Result<Options, String> {
    let mut self_signal = 0;
    let mut auto_trigger_ms = None;
    let mut job_ms = 200;
    let mut drain_ms = 10_000;
    let mut interrupt_ms = 2_000;
    let mut stubborn_ms = 0;
    let mut journal = None;
    let mut lease_ms = 2_000;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || -> Result<u64, String> {
            let value = args.next().ok_or(format!("{arg} needs a value"))?;
            value.parse().map_err(|e| format!("{arg} {value}: {e}"))
        };
        match arg.as_str() {
            "--self-signal" => self_signal = u32::try_from(value()?).map_err(|e| e.to_string())?,
            "--auto-trigger-ms" => auto_trigger_ms = Some(value()?),
            "--job-ms" => job_ms = value()?.max(10),
            "--drain-ms" => drain_ms = value()?,
            "--interrupt-ms" => interrupt_ms = value()?,
            "--stubborn-ms" => stubborn_ms = value()?,
            "--lease-ms" => lease_ms = value()?,
            "--journal" => {
                let path = args.next().ok_or("--journal needs a path")?;
                journal = Some(std::path::PathBuf::from(path));
            }
            _ => return Err(format!("unknown argument {arg:?} (see the example's docs)")),
        }
    }
    let default_auto = if self_signal > 0 { 0 } else { 1000 };
    let auto_trigger_ms = auto_trigger_ms.unwrap_or(default_auto);
    Ok(Options {
        self_signal,
        auto_trigger: (auto_trigger_ms > 0).then(|| Duration::from_millis(auto_trigger_ms)),
        job: Duration::from_millis(job_ms),
        drain: Duration::from_millis(drain_ms),
        interrupt: Duration::from_millis(interrupt_ms),
        stubborn: Duration::from_millis(stubborn_ms),
        journal,
        lease: Duration::from_millis(lease_ms),
    })
}

/// Keep at most this many jobs queued: a service applies back-pressure
/// rather than let its backlog (and its drain) grow without bound.
const BACKLOG: usize = 4;
/// The pause between two submissions.
const SUBMIT_GAP: Duration = Duration::from_millis(5);
/// The step in which a job checks its stop token.
const JOB_STEP: Duration = Duration::from_millis(10);

/// One job: records STARTED, works in small interruptible steps, records
/// COMPLETED, or STOPPED as soon as it is interrupted.
fn job(db: Arc<Database>, id: u64, length: Duration) -> impl FnOnce() + Send + 'static {
    move || {
        if db.write(id, JobState::Started).is_err() {
            return;
        }
        println!("job-{id}: STARTED");
        let token = StopToken::current();
        let mut left = length;
        while !left.is_zero() {
            let step = left.min(JOB_STEP);
            if token.sleep(step).is_err() {
                println!("job-{id}: interrupted, STOPPED");
                let _ = db.write(id, JobState::Stopped);
                return;
            }
            left -= step;
        }
        if db.write(id, JobState::Completed).is_ok() {
            println!("job-{id}: COMPLETED");
        }
    }
}

/// A job that ignores stop requests (a blocking call with no timeout, say).
fn stubborn_job(db: Arc<Database>, id: u64, length: Duration) -> impl FnOnce() + Send + 'static {
    move || {
        if db.write(id, JobState::Started).is_err() {
            return;
        }
        println!("job-{id}: STARTED (stubborn: ignores stop requests for {length:?})");
        thread::sleep(length);
        if db.write(id, JobState::Completed).is_ok() {
            println!("job-{id}: COMPLETED");
        }
    }
}

/// Sends this process SIGINT `count` times: the first after a warm-up,
/// each next one once the previous has visibly taken effect (a signal
/// raised while the same one is still pending would merge with it).
fn self_signal(count: u32, stop: StopToken) {
    thread::sleep(Duration::from_millis(500));
    for n in 1..=count {
        println!("self-signal: raising SIGINT #{n}");
        if let Err(e) = signal_hook::low_level::raise(SIGINT) {
            println!("self-signal: raise failed: {e}");
            return;
        }
        if n == 1 {
            // Bounded: the first signal fires the guard's stop token.
            let _ = stop.clone().sleep(Duration::from_secs(10));
        }
        // Let the drain get under way before escalating.
        thread::sleep(Duration::from_millis(300));
    }
}

/// Installs the service's ordered shutdown on SIGINT and SIGTERM, the same
/// in both modes: `stop intake`, the pool `jobs`, then the job repository's
/// step, named `last` (`close database`, or `flush journal` with
/// `--journal`), which runs `close`. Returns the guard and the sender the
/// main loop drops to tell `stop intake` it is done.
fn ordered_shutdown(
    pool: &ThreadPool,
    options: &Options,
    last: &str,
    close: impl FnOnce(&StepContext) + Send + 'static,
) -> io::Result<(SignalGuard, crossbeam_channel::Sender<()>)> {
    let (intake_done_tx, intake_done_rx) = crossbeam_channel::bounded::<()>(0);
    let guard = on_signals([SIGINT, SIGTERM])
        // Producers first: after this step the main loop writes nothing.
        .step("stop intake", Duration::from_secs(5), move |_| {
            let stopped = intake_done_rx.recv_timeout(Duration::from_secs(5)).is_err();
            println!("step: stop intake (main loop stopped: {stopped})");
        })
        // Then the workers: drain, and interrupt if the drain overruns.
        .pool(
            "jobs",
            pool,
            ShutdownPolicy::new(options.drain, options.interrupt),
        )
        // Resources last: the pool has terminated (or was given up on, and
        // then `ctx.stuck()` names the jobs still running).
        .step(last, Duration::from_secs(5), close)
        .install()?;
    Ok((guard, intake_done_tx))
}

/// The main loop is done: says what it took in, lets `stop intake` go on,
/// waits for the ordered shutdown to end and prints each step's report.
fn intake_stopped(
    accepted: u64,
    rejected: u64,
    intake_done_tx: crossbeam_channel::Sender<()>,
    guard: SignalGuard,
) -> Vec<StepReport> {
    println!("main: intake stopped; accepted={accepted} rejected={rejected}");
    drop(intake_done_tx);
    let reports = guard.wait();
    for report in &reports {
        for line in report.to_string().lines() {
            println!("report: {line}");
        }
    }
    reports
}

/// The pool `jobs` of both modes (2 workers), and the flag its
/// `on_terminated` sets as it prints `pool jobs: terminated`.
fn jobs_pool() -> Result<(ThreadPool, Arc<AtomicBool>), drainpool::BuildError> {
    let terminated = Arc::new(AtomicBool::new(false));
    let pool = ThreadPool::builder()
        .threads(2)
        .thread_name("jobs")
        .on_terminated({
            let terminated = terminated.clone();
            move || {
                terminated.store(true, Ordering::SeqCst);
                println!("pool jobs: terminated");
            }
        })
        .build()?;
    Ok((pool, terminated))
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let options = match parse_options() {
        Ok(options) => options,
        Err(e) => {
            eprintln!("signal_service: {e}");
            return ExitCode::from(2);
        }
    };

    if let Some(path) = &options.journal {
        #[cfg(feature = "journal")]
        return journal::run(path, &options);
        #[cfg(not(feature = "journal"))]
        {
            eprintln!(
                "signal_service: --journal {} needs the feature journal \
                 (cargo run --features journal --example signal_service -- --journal PATH)",
                path.display()
            );
            return ExitCode::from(2);
        }
    }

    let db = Arc::new(Database::default());
    let (pool, pool_terminated) = jobs_pool().expect("a pool of 2 threads");

    // The main loop tells "stop intake" it is done by dropping this sender.
    let (guard, intake_done_tx) = ordered_shutdown(&pool, &options, "close database", {
        let db = db.clone();
        let pool_terminated = pool_terminated.clone();
        move |ctx| {
            for (pool, task) in ctx.stuck() {
                println!("step: close database: {pool}: {task} is stuck; ABANDONED");
                let id = task.name.as_deref().and_then(|n| n.strip_prefix("job-"));
                if let Some(id) = id.and_then(|id| id.parse().ok()) {
                    let _ = db.write(id, JobState::Abandoned);
                }
            }
            let (never_started, started) = db.finalise_and_close();
            println!(
                "step: close database (pool terminated before: {}, STARTED at close: {}, \
                 QUEUED -> NEVER_STARTED: {})",
                pool_terminated.load(Ordering::SeqCst),
                started,
                never_started.len()
            );
        }
    })
    .expect("signal handlers for SIGINT and SIGTERM");
    let stop = guard.stop_token();
    println!("ready (pid {})", std::process::id());

    if options.self_signal > 0 {
        let (count, stop) = (options.self_signal, stop.clone());
        thread::spawn(move || self_signal(count, stop));
    }

    // The service loop: submit until the stop token fires or the pool
    // refuses a job.
    let serving_since = Instant::now();
    let (mut next, mut accepted, mut rejected) = (1u64, 0u64, 0u64);
    let mut backlog_full = false;
    loop {
        if stop.sleep(SUBMIT_GAP).is_err() {
            println!("main: stop requested");
            break;
        }
        if options
            .auto_trigger
            .is_some_and(|after| serving_since.elapsed() >= after)
        {
            println!(
                "main: no signal after {:?}; triggering",
                options.auto_trigger.unwrap()
            );
            guard.trigger();
            continue; // the token has fired: the next sleep returns at once
        }
        if pool.stats().queued >= BACKLOG {
            if !backlog_full {
                backlog_full = true;
                println!("main: backlog full ({BACKLOG} queued)");
            }
            continue;
        }
        let id = next;
        next += 1;
        if db.write(id, JobState::Queued).is_err() {
            break; // cannot happen before "stop intake" has finished
        }
        let submitted = if id == 1 && !options.stubborn.is_zero() {
            let task = stubborn_job(db.clone(), id, options.stubborn);
            pool.task()
                .name(format!("job-{id}"))
                .execute(task)
                .map_err(drop)
        } else {
            // 0.5 to 1.5 times the typical length, varying from job to job.
            let ms = options.job.as_millis() as u64;
            let length = Duration::from_millis(ms / 2 + (id * 37) % ms);
            let task = job(db.clone(), id, length);
            pool.task()
                .name(format!("job-{id}"))
                .execute(task)
                .map_err(drop)
        };
        match submitted {
            Ok(()) => accepted += 1,
            Err(()) => {
                // The closure came back inside `Rejected` and was dropped.
                rejected += 1;
                let _ = db.write(id, JobState::Rejected);
                println!("main: job-{id} rejected: the pool is shutting down");
                break;
            }
        }
    }
    let reports = intake_stopped(accepted, rejected, intake_done_tx, guard);
    let mut report_never_started = Vec::new();
    for report in &reports {
        if let StepOutcome::Pool(pool_report) = &report.outcome {
            report_never_started.extend(pool_report.never_started.iter().map(|task| {
                task.name()
                    .map_or_else(|| format!("task {}", task.id()), str::to_owned)
            }));
        }
    }
    // Cancels the never-started tasks: their closures are dropped without running and
    // write nothing.
    drop(reports);
    drop(pool);

    let (counts, db_never_started, refused, late_abandoned) = db.summary();
    let db_never_started: Vec<String> = db_never_started
        .iter()
        .map(|id| format!("job-{id}"))
        .collect();
    println!("report never_started: {}", report_never_started.join(" "));
    println!("db NEVER_STARTED: {}", db_never_started.join(" "));
    let line: Vec<String> = JobState::ALL
        .iter()
        .map(|state| format!("{state}={}", counts.get(state).copied().unwrap_or(0)))
        .collect();
    println!("final: {}", line.join(" "));
    println!("refused writes after close: {refused}");
    println!("late writes of ABANDONED jobs (expected): {late_abandoned}");

    let not_final: usize = counts
        .iter()
        .filter(|(state, _)| !state.is_final())
        .map(|(_, n)| n)
        .sum();
    let mut sorted_report = report_never_started.clone();
    sorted_report.sort();
    let mut sorted_db = db_never_started.clone();
    sorted_db.sort();
    let mut broken = Vec::new();
    if not_final > 0 {
        broken.push(format!("{not_final} job(s) not in a final state"));
    }
    if refused > 0 {
        broken.push(format!("{refused} write(s) refused after close"));
    }
    if sorted_report != sorted_db {
        broken.push("the pool's report and the database disagree on never-started jobs".into());
    }
    if broken.is_empty() {
        println!("exit: clean");
        ExitCode::SUCCESS
    } else {
        println!("exit: BROKEN: {}", broken.join("; "));
        ExitCode::FAILURE
    }
}
