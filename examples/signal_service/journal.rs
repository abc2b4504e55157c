//! `signal_service --journal PATH`: seed 001 with a real job repository.
//!
//! The fake database of the plain mode stands in for Spring Batch's job
//! repository; here drainpool's SQLite journal is that repository. What
//! changes:
//!
//! - a job is recorded QUEUED *before* the pool gets it
//!   (`JobJournal::submit` returns once the row is on disk), and its run
//!   records STARTED (with this process as owner, under a lease) and then
//!   COMPLETED. A job interrupted by a second signal says so through
//!   `DurableJob::is_complete`, and its row goes back to QUEUED: it was not
//!   done, and the next start does it;
//! - the ordered shutdown is the same (stop intake, drain the pool, then
//!   the repository), and its last step flushes the journal: every state
//!   change is on disk before the program reads the rows back and prints
//!   every job's final state;
//! - after a `kill -9` nothing more is written, and nothing is needed: the
//!   next start with the same `--journal` finds the jobs the dead process
//!   left QUEUED or STARTED once its lease has run out, lists them, and
//!   runs them before it takes new work.
//!
//! Output: `recovered: job-N left STARTED (attempts: 1)` per job found,
//! `ready (pid .., journal ..)`, `job-N: STARTED (attempt k)`,
//! `job-N: COMPLETED` or `job-N: interrupted, QUEUED again`, the steps and
//! the reports as in the plain mode, then one `journal: job-N STATE
//! (attempts: k)` line per row, and `journal final: QUEUED=.. STARTED=..
//! COMPLETED=.. FAILED=.. CANCELLED=..`. The exit status is 0 when no row
//! is left STARTED and every state change was written.

use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::thread;
use std::time::{Duration, Instant};

use drainpool::journal::{Durable, DurableJob, JobJournal, JobState, SqliteJournal, current_job};
use drainpool::signal::StepOutcome;
use drainpool::{Job, StopToken};
use serde::{Deserialize, Serialize};

use super::{
    BACKLOG, JOB_STEP, Options, SUBMIT_GAP, intake_stopped, jobs_pool, ordered_shutdown,
    self_signal,
};

/// One job of the service: works `length_ms` in small interruptible steps.
#[derive(Debug, Serialize, Deserialize)]
struct ServiceJob {
    length_ms: u64,
}

impl Job for ServiceJob {
    /// True when it ran to its end; false when a stop request cut it short.
    type Output = bool;

    fn run(self) -> bool {
        let name = current_job().map_or_else(
            || "job-?".to_owned(),
            |run| format!("job-{} (attempt {})", run.id.as_u64(), run.attempt),
        );
        println!("{name}: STARTED");
        let token = StopToken::current();
        let mut left = Duration::from_millis(self.length_ms);
        while !left.is_zero() {
            let step = left.min(JOB_STEP);
            if token.sleep(step).is_err() {
                println!("{name}: interrupted, QUEUED again");
                return false;
            }
            left -= step;
        }
        println!("{name}: COMPLETED");
        true
    }
}

impl DurableJob for ServiceJob {
    const KIND: &'static str = "signal_service.job";

    fn is_complete(ran_to_the_end: &bool) -> bool {
        *ran_to_the_end
    }
}

/// Runs the service over the journal at `path`.
pub(crate) fn run(path: &Path, options: &Options) -> ExitCode {
    match serve(path, options) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("signal_service: journal {}: {e}", path.display());
            ExitCode::from(2)
        }
    }
}

fn serve(
    path: &Path,
    options: &Options,
) -> Result<ExitCode, Box<dyn std::error::Error + Send + Sync>> {
    let store = SqliteJournal::builder(path).lease(options.lease).open()?;
    let journal = JobJournal::new(store);
    journal.register::<ServiceJob>()?;

    let (pool, pool_terminated) = jobs_pool()?;

    // What an earlier run left: list it, then run it. Right after a
    // `kill -9` the dead run's lease still runs: wait it out.
    loop {
        let recovery = journal.recover()?;
        for job in recovery.jobs {
            println!(
                "recovered: job-{} left {} (attempts: {})",
                job.id().as_u64(),
                job.left_in().as_str().to_uppercase(),
                job.attempts()
            );
            if let Err(refused) = job.resubmit(&pool) {
                println!("recovered: {refused}; it stays QUEUED");
            }
        }
        for skipped in &recovery.skipped {
            println!("recovered: skipped {skipped}");
        }
        match recovery.retry_after {
            Some(wait) if recovery.held_elsewhere > 0 => {
                println!(
                    "recovered: {} job(s) held by a process whose lease runs {wait:?} more; waiting",
                    recovery.held_elsewhere
                );
                thread::sleep(wait + Duration::from_millis(20));
            }
            _ => break,
        }
    }

    // The repository last: every state change on disk once the pool is
    // done with the jobs.
    let (guard, intake_done_tx) = ordered_shutdown(&pool, options, "flush journal", {
        let journal = journal.clone();
        let pool_terminated = pool_terminated.clone();
        move |_| {
            let flushed = journal.flush();
            println!(
                "step: flush journal (pool terminated before: {}, flushed: {})",
                pool_terminated.load(Ordering::SeqCst),
                flushed
                    .as_ref()
                    .map_or_else(ToString::to_string, |()| "ok".into())
            );
        }
    })?;
    let stop = guard.stop_token();
    println!(
        "ready (pid {}, journal {})",
        std::process::id(),
        path.display()
    );
    if options.self_signal > 0 {
        let (count, stop) = (options.self_signal, stop.clone());
        thread::spawn(move || self_signal(count, stop));
    }

    let serving_since = Instant::now();
    let (mut accepted, mut rejected) = (0u64, 0u64);
    let mut next = 0u64;
    loop {
        if stop.sleep(SUBMIT_GAP).is_err() {
            println!("main: stop requested");
            break;
        }
        if let Some(after) = options.auto_trigger {
            if serving_since.elapsed() >= after {
                println!("main: no signal after {after:?}; triggering");
                guard.trigger();
                continue;
            }
        }
        if pool.stats().queued >= BACKLOG {
            continue;
        }
        next += 1;
        let ms = options.job.as_millis() as u64;
        let job = ServiceJob {
            length_ms: ms / 2 + (next * 37) % ms,
        };
        match journal.submit(&pool, job) {
            Ok(handle) => {
                accepted += 1;
                println!("main: job-{} QUEUED", handle.job_id().as_u64());
            }
            Err(refused) => {
                rejected += 1;
                println!("main: {refused}");
                break;
            }
        }
    }
    let reports = intake_stopped(accepted, rejected, intake_done_tx, guard);
    let mut never_started = Vec::new();
    for report in reports {
        if let StepOutcome::Pool(pool_report) = report.outcome {
            for task in pool_report.never_started {
                // Dropping it would leave its row QUEUED as well; taking it
                // out names it.
                match task.into_job::<Durable<ServiceJob>>() {
                    Ok(job) => never_started.push(format!("job-{}", job.job_id().as_u64())),
                    Err(other) => never_started.push(other.into_pending().id().to_string()),
                }
            }
        }
    }
    println!(
        "report never_started (QUEUED for the next start): {}",
        never_started.join(" ")
    );
    drop(pool);

    let flushed = journal.flush();
    let conn = rusqlite::Connection::open(path)?;
    let mut rows = conn.prepare("SELECT id, state, attempts FROM drainpool_jobs ORDER BY id")?;
    let rows = rows.query_map([], |row| {
        Ok((
            row.get::<_, i64>(0)?,
            row.get::<_, String>(1)?,
            row.get::<_, i64>(2)?,
        ))
    })?;
    for row in rows {
        let (id, state, attempts) = row?;
        println!(
            "journal: job-{id} {} (attempts: {attempts})",
            state.to_uppercase()
        );
    }
    let counts = journal.counts()?;
    let line: Vec<String> = JobState::ALL
        .iter()
        .map(|&state| format!("{}={}", state.as_str().to_uppercase(), counts.get(state)))
        .collect();
    println!("journal final: {}", line.join(" "));
    let stats = journal.stats();
    if flushed.is_ok() && counts.started == 0 && stats.failed_writes == 0 {
        println!("exit: clean");
        Ok(ExitCode::SUCCESS)
    } else {
        println!(
            "exit: BROKEN: started={} flushed={flushed:?} failed_writes={}",
            counts.started, stats.failed_writes
        );
        Ok(ExitCode::FAILURE)
    }
}
