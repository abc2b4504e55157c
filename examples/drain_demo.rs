//! The two ways a drainpool pool ends, on a workload you can watch.
//!
//! ```text
//! cargo run --release --example drain_demo
//! RUST_LOG=debug cargo run --release --example drain_demo   # plus the pool's lifecycle log
//! ```
//!
//! **Part 1, `shutdown()`: finish what was accepted.** 40 named jobs of 50 to
//! 150 ms each run on 4 workers. Once 10 have finished, the pool is shut
//! down: a late job is refused and handed back inside `Rejected` (and run on
//! the main thread instead, so it is not lost), every job already accepted
//! still runs (the drain), and `await_termination` says when the pool is
//! done and how long that took.
//!
//! **Part 2, `shutdown_now()`: stop soon, lose nothing.** The same workload
//! on a second pool. Once 10 jobs have finished, `shutdown_now` returns the
//! jobs that never started as `PendingTask`s, listed by name; the running
//! jobs see `StopToken::current()` raised between two 10 ms steps and stop
//! early, saying how far they got; and every handle resolves: finished,
//! stopped early, or cancelled (a handed-back job that was dropped).
//!
//! The jobs only sleep; a real job would process a file or a batch of rows
//! in small steps, checking its stop token between steps, the same way.

use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

use drainpool::{StopToken, TaskError, TaskHandle, ThreadPool};

const JOBS: usize = 40;
const WORKERS: usize = 4;
/// Jobs finished before the demo pulls the plug.
const STOP_AFTER: u64 = 10;
/// A job works in steps of this length and may stop between two steps.
const STEP: Duration = Duration::from_millis(10);

fn main() {
    env_logger::init();
    CLOCK.get_or_init(Instant::now);
    println!("drain_demo: {JOBS} jobs of 50-150 ms on {WORKERS} workers, twice\n");
    graceful_shutdown();
    println!();
    shutdown_now();
}

// ----- part 1 --------------------------------------------------------------

fn graceful_shutdown() {
    println!("== part 1: shutdown() lets every accepted job finish ==");
    let pool = ThreadPool::builder()
        .threads(WORKERS)
        .thread_name("drain")
        .build()
        .expect("the pool starts");

    let handles: Vec<TaskHandle<Duration>> = (0..JOBS)
        .map(|i| {
            let name = job_name(i);
            pool.task()
                .name(name.clone())
                .submit(move || {
                    let began = Instant::now();
                    for _ in 0..job_steps(i) {
                        thread::sleep(STEP);
                    }
                    let took = began.elapsed();
                    println!(
                        "{} {name} done in {} ms on {}",
                        stamp(),
                        took.as_millis(),
                        thread_name()
                    );
                    took
                })
                .expect("a running pool accepts jobs")
        })
        .collect();

    wait_until_completed(&pool, STOP_AFTER);
    let stats = pool.stats();
    println!(
        "{} shutdown(): {} done, {} running, {} queued; intake closes, the rest drains",
        stamp(),
        stats.completed,
        stats.active,
        stats.queued
    );
    let drain_began = Instant::now();
    pool.shutdown();

    // A job that arrives after shutdown is refused, and comes back whole.
    let late = pool.task().name("job-40 (late)").execute(|| {
        println!("{} job-40 (late) ran on {} instead", stamp(), thread_name());
    });
    match late {
        Ok(()) => println!("{} job-40 (late) was accepted?!", stamp()),
        Err(rejected) => {
            println!(
                "{} job-40 (late) refused: {}; the closure was handed back",
                stamp(),
                rejected.reason()
            );
            let job = rejected.into_inner();
            job();
        }
    }

    let terminated = pool.await_termination(Duration::from_secs(30));
    let drain = drain_began.elapsed();

    let mut completed = 0;
    for handle in handles {
        let name = handle.name().unwrap_or("?").to_owned();
        match handle.join() {
            Ok(_) => completed += 1,
            Err(e) => println!("{name}: {e:?}"),
        }
    }
    println!(
        "part 1: terminated = {terminated}; {completed}/{JOBS} accepted jobs completed, \
         1 late job handed back (and run on main); the drain took {} ms",
        drain.as_millis()
    );
}

// ----- part 2 --------------------------------------------------------------

/// How a job of part 2 ended, as its handle reports it.
enum Outcome {
    Finished,
    StoppedEarly { steps: u32, of: u32 },
}

fn shutdown_now() {
    println!("== part 2: shutdown_now() hands back never-started jobs, stops running ones ==");
    let pool = ThreadPool::builder()
        .threads(WORKERS)
        .thread_name("stop")
        .build()
        .expect("the pool starts");

    let handles: Vec<TaskHandle<Outcome>> = (0..JOBS)
        .map(|i| {
            let name = job_name(i);
            pool.task()
                .name(name.clone())
                .submit(move || {
                    // Raised by shutdown_now (or by cancelling this job's
                    // handle); checked between steps, never mid-step.
                    let stop = StopToken::current();
                    let of = job_steps(i);
                    for step in 0..of {
                        if stop.is_stop_requested() {
                            println!(
                                "{} {name} saw the stop request after {step}/{of} steps; \
                                 stopping cleanly",
                                stamp()
                            );
                            return Outcome::StoppedEarly { steps: step, of };
                        }
                        thread::sleep(STEP);
                    }
                    println!("{} {name} done ({of} steps) on {}", stamp(), thread_name());
                    Outcome::Finished
                })
                .expect("a running pool accepts jobs")
        })
        .collect();

    wait_until_completed(&pool, STOP_AFTER);
    for task in pool.running_tasks() {
        println!("{} running now: {task}", stamp());
    }
    let stop_began = Instant::now();
    let pending = pool.shutdown_now();
    println!(
        "{} shutdown_now(): {} never-started jobs handed back:",
        stamp(),
        pending.len()
    );
    let names: Vec<&str> = pending.iter().map(|t| t.name().unwrap_or("?")).collect();
    for line in names.chunks(10) {
        println!("           {}", line.join(" "));
    }
    // A real program would record these (or run them: `task.run()`); the
    // demo drops them, which cancels them and resolves their handles.
    let handed_back = pending.len();
    drop(pending);

    let terminated = pool.await_termination(Duration::from_secs(30));
    let stop_took = stop_began.elapsed();

    let (mut finished, mut cancelled) = (0, 0);
    let mut stopped = Vec::new();
    for handle in handles {
        let name = handle.name().unwrap_or("?").to_owned();
        match handle.join() {
            Ok(Outcome::Finished) => finished += 1,
            Ok(Outcome::StoppedEarly { steps, of }) => {
                stopped.push(format!("{name} ({steps}/{of})"))
            }
            Err(TaskError::Cancelled) => cancelled += 1,
            Err(e) => println!("{name}: {e:?}"),
        }
    }
    println!(
        "part 2: terminated = {terminated}; {finished} finished, {} stopped early [{}], \
         {cancelled} handed back and cancelled ({handed_back} returned); \
         {}/{JOBS} accounted for; stopping took {} ms",
        stopped.len(),
        stopped.join(", "),
        finished + stopped.len() + cancelled,
        stop_took.as_millis()
    );
}

// ----- helpers -------------------------------------------------------------

static CLOCK: OnceLock<Instant> = OnceLock::new();

/// Milliseconds since the demo started, as a log-line prefix.
fn stamp() -> String {
    let ms = CLOCK.get_or_init(Instant::now).elapsed().as_millis();
    format!("[{ms:>5} ms]")
}

fn thread_name() -> String {
    thread::current().name().unwrap_or("?").to_owned()
}

fn job_name(i: usize) -> String {
    format!("job-{i:02}")
}

/// A job's length in steps: 5 to 15 (50 to 150 ms), spread over the jobs.
fn job_steps(i: usize) -> u32 {
    5 + (i * 7 % 11) as u32
}

/// Polls the pool's counters until `n` jobs have completed.
fn wait_until_completed(pool: &ThreadPool, n: u64) {
    while pool.stats().completed < n {
        thread::sleep(Duration::from_millis(2));
    }
}
