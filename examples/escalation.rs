//! Ask nicely, interrupt, make a scene: the three steps of
//! `ThreadPool::shutdown_gracefully` against workers of growing stubbornness
//! (the pattern of seed 002).
//!
//! Four workers:
//!
//! - `polite` works in small units and stops when it sees its stop flag
//!   (`StopToken::is_stop_requested`), which step 2 raises;
//! - `waiter` is blocked in an interruptible `token.recv` on a channel nobody
//!   sends on: only step 2's interruption wakes it;
//! - `stubborn` ignores both (a loop of plain `std::thread::sleep`s): step 3
//!   names it as stuck, in the report and in an error-level log line. It
//!   gives up by itself after 3 s, so that this example ends;
//! - the fourth worker runs `chunk-N` tasks, short pieces of work that end
//!   by themselves: the drain (step 1) runs the first few, step 2 hands the
//!   rest back, never started.
//!
//! ```text
//! cargo run --example escalation
//! RUST_LOG=debug cargo run --example escalation   # the library's own logs too
//! ```

use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use drainpool::{ShutdownPolicy, StopToken, ThreadPool};

const DRAIN: Duration = Duration::from_millis(200);
const INTERRUPT: Duration = Duration::from_millis(500);

/// What the tasks say about how they ended, and when (relative to the start
/// of the shutdown).
#[derive(Clone, Default)]
struct Journal {
    lines: Arc<Mutex<Vec<String>>>,
    began: Arc<Mutex<Option<Instant>>>,
}

impl Journal {
    fn shutdown_begins(&self) {
        *self.began.lock().unwrap() = Some(Instant::now());
    }

    fn note(&self, line: impl AsRef<str>) {
        let line = line.as_ref();
        let entry = match *self.began.lock().unwrap() {
            None => format!("  (before the shutdown)  {line}"),
            Some(began) => {
                let at = began.elapsed();
                let step = if at < DRAIN {
                    "during step 1, drain"
                } else if at < DRAIN + INTERRUPT {
                    "during step 2, interrupt"
                } else {
                    "after the report"
                };
                format!("  +{at:>8.1?}  {line}  [{step}]")
            }
        };
        self.lines.lock().unwrap().push(entry);
    }

    fn print_last(&self) {
        if let Some(line) = self.lines.lock().unwrap().last() {
            println!("{line}");
        }
    }

    fn print(&self) {
        for line in self.lines.lock().unwrap().iter() {
            println!("{line}");
        }
    }
}

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();

    let pool = ThreadPool::builder()
        .threads(4)
        .thread_name("escalation")
        .build()
        .expect("four threads");
    let journal = Journal::default();
    let (started_tx, started_rx) = crossbeam_channel::unbounded();

    // 1. Stops on the flag: checks it between units of work.
    {
        let (journal, started) = (journal.clone(), started_tx.clone());
        pool.task()
            .name("polite")
            .execute(move || {
                started.send(()).unwrap();
                let token = StopToken::current();
                let mut units = 0u32;
                while !token.is_stop_requested() {
                    thread::sleep(Duration::from_millis(5)); // one unit of work
                    units += 1;
                }
                journal.note(format!(
                    "polite: saw its stop flag after {units} units of work"
                ));
            })
            .expect("running pool");
    }

    // 2. Stops only because its wait is interrupted.
    let (_never_sends, nothing) = crossbeam_channel::unbounded::<String>();
    {
        let (journal, started) = (journal.clone(), started_tx.clone());
        pool.task()
            .name("waiter")
            .execute(move || {
                started.send(()).unwrap();
                let result = StopToken::current().recv(&nothing);
                journal.note(format!(
                    "waiter: its interruptible recv returned {result:?}"
                ));
            })
            .expect("running pool");
    }

    // 3. Ignores both; bounded only so that the example exits.
    {
        let (journal, started) = (journal.clone(), started_tx.clone());
        pool.task()
            .name("stubborn")
            .execute(move || {
                started.send(()).unwrap();
                let until = Instant::now() + Duration::from_secs(3);
                while Instant::now() < until {
                    thread::sleep(Duration::from_millis(10)); // deaf to tokens
                }
                journal.note("stubborn: gave up by itself");
            })
            .expect("running pool");
    }
    for _ in 0..3 {
        started_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("the three stubbornness levels are running");
    }

    // Short pieces of work for the fourth worker, queued behind each other.
    for n in 1..=6 {
        let (journal, started) = (journal.clone(), started_tx.clone());
        pool.task()
            .name(format!("chunk-{n}"))
            .execute(move || {
                let _ = started.send(());
                thread::sleep(Duration::from_millis(80));
                journal.note(format!("chunk-{n}: finished by itself"));
            })
            .expect("running pool");
    }
    started_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the first chunk is running");

    println!(
        "shutting down gracefully: drain {DRAIN:?}, then interrupt {INTERRUPT:?}, then report\n"
    );
    journal.shutdown_begins();
    let report = pool.shutdown_gracefully(ShutdownPolicy::new(DRAIN, INTERRUPT));

    println!("what the tasks said (time since the shutdown began):");
    journal.print();
    println!("\nthe report:\n{report}\n");

    println!("step by step:");
    println!(
        "  1. drain {DRAIN:?}: intake closed; queued chunks kept running and ended by themselves"
    );
    let never_started: Vec<_> = report
        .never_started
        .iter()
        .map(|t| t.name().unwrap_or("<unnamed>"))
        .collect();
    println!(
        "  2. interrupt {INTERRUPT:?}: handed back, never started: {never_started:?}; stop flags \
         raised (polite stopped) and waits woken (waiter stopped)"
    );
    for task in &report.stuck {
        println!(
            "  3. make a scene: {} is stuck on {}, running for {:.1?} (logged at error level)",
            task.name.as_deref().unwrap_or("<unnamed>"),
            task.thread,
            task.running_for
        );
    }
    // Dropping the never-started tasks cancels them; a real program would
    // run them (`PendingTask::run`) or persist them.
    drop(report);

    let terminated = pool.await_termination(Duration::from_secs(10));
    println!("\nonce the stubborn task gave up by itself, terminated: {terminated}");
    journal.print_last();
}
