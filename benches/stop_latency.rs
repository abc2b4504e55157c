//! Stop latency: the time from `StopSource::request_stop()` to a thread
//! blocked in `token.sleep`, `token.recv`, `token.wait` (parking_lot
//! condvar), `token.wait_std` (std condvar) or `token.lock_std` (a std
//! mutex the bench holds) running again — side by side with the floors, a
//! plain `Condvar::notify_one` (parking_lot's, and std's) to a thread
//! blocked in `Condvar::wait`.
//!
//! One waiter thread per kind is reused across iterations. Each iteration:
//!
//! 1. the bench hands the waiter a fresh token (outside the timed part);
//! 2. the waiter stores "about to wait" in an atomic and waits;
//! 3. the bench spins until it sees that, proves the condvar waiters parked
//!    (by taking and releasing their mutex, which they give up only inside
//!    the wait), and spins `SETTLE` more so that every waiter is asleep in
//!    the kernel, not still on its way there (the `lock_std` waiter is then
//!    parked in its first or second timed slice, or between them trying the
//!    lock the bench holds);
//! 4. timed: `request_stop()` (or, for the plain condvar, set the flag
//!    under the lock and `notify_one`), then spin until the waiter stores
//!    "woke" in a second atomic right after its wait returns.
//!
//! The bench thread spins while it waits for the wake-up (yielding every
//! 128 spins, for small machines), so the measurement is not delayed by the
//! bench thread's own wake-up. The untimed part of an iteration (handing
//! over the token, settling) costs far more than the timed part; criterion
//! budgets by wall time, so the run still takes about ten seconds a kind.
//!
//! Criterion's estimate is a mean over samples, which one slow wake-up in a
//! sample can move; the closing summary therefore also prints exact
//! percentiles of every individual wake-up measured (warm-up included), and
//! each median's ratio to that of the plain condvar of the same library.
//! The targets: median under 50 µs, and within 2× of the plain
//! condvar.
//!
//! Run with `cargo bench --bench stop_latency` (about 90 s) on an otherwise
//! idle machine: a busy core turns microseconds into scheduler quanta.

use std::collections::BTreeMap;
use std::hint::spin_loop;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar as StdCondvar, Mutex as StdMutex};
use std::thread;
use std::time::{Duration, Instant};

use criterion::Criterion;
use crossbeam_channel::{Receiver, Sender};
use drainpool::{StopSource, StopToken};
use parking_lot::{Condvar, Mutex};

/// How long the bench spins after the waiter says it is about to wait, so
/// that it has really gone to sleep.
const SETTLE: Duration = Duration::from_micros(50);

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Sleep,
    Recv,
    Wait,
    PlainCondvar,
    WaitStd,
    LockStd,
    PlainStdCondvar,
}

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Kind::Sleep => "token.sleep",
            Kind::Recv => "token.recv",
            Kind::Wait => "token.wait (condvar)",
            Kind::PlainCondvar => "plain Condvar::notify_one",
            Kind::WaitStd => "token.wait_std (std condvar)",
            Kind::LockStd => "token.lock_std (std mutex)",
            Kind::PlainStdCondvar => "plain std Condvar::notify_one",
        }
    }

    /// The plain condvar wake-up to compare with: std's for std's waits.
    fn floor(self) -> Kind {
        match self {
            Kind::WaitStd | Kind::LockStd | Kind::PlainStdCondvar => Kind::PlainStdCondvar,
            _ => Kind::PlainCondvar,
        }
    }
}

/// Every individual wake-up measured, per kind.
static SAMPLES: StdMutex<BTreeMap<Kind, Vec<Duration>>> = StdMutex::new(BTreeMap::new());

/// A waiter thread and what it shares with the bench.
struct Waiter {
    kind: Kind,
    jobs: Option<Sender<(u64, StopToken)>>,
    /// The round the waiter is about to wait in.
    ready: Arc<AtomicU64>,
    /// The round whose wait has returned.
    woke: Arc<AtomicU64>,
    /// The condvar kinds' mutex (flag: "go") and condvar.
    pair: Arc<(Mutex<bool>, Condvar)>,
    /// The same for std's condvar kinds; for `LockStd`, the mutex the bench
    /// holds while the waiter waits for it.
    std_pair: Arc<(StdMutex<bool>, StdCondvar)>,
    thread: Option<thread::JoinHandle<()>>,
    round: u64,
}

impl Waiter {
    fn start(kind: Kind) -> Waiter {
        let (jobs, job_rx) = crossbeam_channel::unbounded::<(u64, StopToken)>();
        let ready = Arc::new(AtomicU64::new(0));
        let woke = Arc::new(AtomicU64::new(0));
        let pair = Arc::new((Mutex::new(false), Condvar::new()));
        let std_pair = Arc::new((StdMutex::new(false), StdCondvar::new()));
        let thread = {
            let (ready, woke) = (ready.clone(), woke.clone());
            let (pair, std_pair) = (pair.clone(), std_pair.clone());
            thread::Builder::new()
                .name(format!("waiter-{kind:?}"))
                .spawn(move || waiter_loop(kind, &job_rx, &ready, &woke, &pair, &std_pair))
                .unwrap()
        };
        Waiter {
            kind,
            jobs: Some(jobs),
            ready,
            woke,
            pair,
            std_pair,
            thread: Some(thread),
            round: 0,
        }
    }

    /// One measured wake-up.
    fn once(&mut self) -> Duration {
        self.round += 1;
        let round = self.round;
        let source = StopSource::new();
        // Held until the waiter has woken: only the stop can end its wait.
        let held = (self.kind == Kind::LockStd).then(|| self.std_pair.0.lock().unwrap());
        self.jobs
            .as_ref()
            .unwrap()
            .send((round, source.token()))
            .unwrap();
        spin_until(|| self.ready.load(Ordering::Acquire) == round);
        match self.kind {
            // The waiter holds the mutex until its wait releases it.
            Kind::Wait | Kind::PlainCondvar => drop(self.pair.0.lock()),
            Kind::WaitStd | Kind::PlainStdCondvar => drop(self.std_pair.0.lock().unwrap()),
            _ => {}
        }
        let settle = Instant::now();
        while settle.elapsed() < SETTLE {
            spin_loop();
        }

        let started = Instant::now();
        match self.kind {
            Kind::PlainCondvar => {
                *self.pair.0.lock() = true;
                self.pair.1.notify_one();
            }
            Kind::PlainStdCondvar => {
                *self.std_pair.0.lock().unwrap() = true;
                self.std_pair.1.notify_one();
            }
            _ => {
                source.request_stop();
            }
        }
        spin_until(|| self.woke.load(Ordering::Acquire) == round);
        let took = started.elapsed();
        drop(held);
        SAMPLES
            .lock()
            .unwrap()
            .entry(self.kind)
            .or_default()
            .push(took);
        took
    }
}

/// Spins until `done`, yielding now and then: on a machine with fewer free
/// cores than spinning threads, the waiter still gets to run.
fn spin_until(mut done: impl FnMut() -> bool) {
    let mut n = 0u32;
    while !done() {
        n = n.wrapping_add(1);
        if n % 128 == 0 {
            thread::yield_now();
        } else {
            spin_loop();
        }
    }
}

impl Drop for Waiter {
    fn drop(&mut self) {
        drop(self.jobs.take());
        if let Some(thread) = self.thread.take() {
            thread.join().unwrap();
        }
    }
}

fn waiter_loop(
    kind: Kind,
    jobs: &Receiver<(u64, StopToken)>,
    ready: &AtomicU64,
    woke: &AtomicU64,
    pair: &(Mutex<bool>, Condvar),
    std_pair: &(StdMutex<bool>, StdCondvar),
) {
    // A channel nobody sends on, for `token.recv`.
    let (_keep, silent) = crossbeam_channel::unbounded::<()>();
    let (lock, cond) = pair;
    let (std_lock, std_cond) = std_pair;
    for (round, token) in jobs {
        match kind {
            Kind::Sleep => {
                ready.store(round, Ordering::Release);
                let result = token.sleep(Duration::MAX);
                woke.store(round, Ordering::Release);
                assert!(result.is_err());
            }
            Kind::Recv => {
                ready.store(round, Ordering::Release);
                let result = token.recv(&silent);
                woke.store(round, Ordering::Release);
                assert!(result.is_err());
            }
            Kind::Wait => {
                let mut guard = lock.lock();
                ready.store(round, Ordering::Release);
                while token.wait(cond, &mut guard).is_ok() {}
                woke.store(round, Ordering::Release);
            }
            Kind::PlainCondvar => {
                let mut go = lock.lock();
                ready.store(round, Ordering::Release);
                while !*go {
                    cond.wait(&mut go);
                }
                woke.store(round, Ordering::Release);
                *go = false;
            }
            Kind::WaitStd => {
                let mut guard = std_lock.lock().unwrap();
                ready.store(round, Ordering::Release);
                loop {
                    let (again, stopped) = token.wait_std(std_cond, std_lock, guard).unwrap();
                    guard = again;
                    if stopped.is_err() {
                        break;
                    }
                }
                woke.store(round, Ordering::Release);
            }
            Kind::LockStd => {
                ready.store(round, Ordering::Release);
                let result = token.lock_std(std_lock).map(drop);
                woke.store(round, Ordering::Release);
                assert!(result.is_err());
            }
            Kind::PlainStdCondvar => {
                let mut go = std_lock.lock().unwrap();
                ready.store(round, Ordering::Release);
                while !*go {
                    go = std_cond.wait(go).unwrap();
                }
                woke.store(round, Ordering::Release);
                *go = false;
            }
        }
    }
}

fn stop_latency(c: &mut Criterion) {
    let mut group = c.benchmark_group("stop_latency");
    for kind in [
        Kind::PlainCondvar,
        Kind::Sleep,
        Kind::Recv,
        Kind::Wait,
        Kind::PlainStdCondvar,
        Kind::WaitStd,
        Kind::LockStd,
    ] {
        let mut waiter = Waiter::start(kind);
        group.bench_function(kind.label(), |b| {
            b.iter_custom(|iters| (0..iters).map(|_| waiter.once()).sum());
        });
    }
    group.finish();
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// Exact percentiles of every wake-up measured, and the ratio of each
/// median to that of the plain condvar of the same library.
fn summary() {
    let samples = SAMPLES.lock().unwrap();
    let median_of = |kind: Kind| {
        samples.get(&kind).map(|s| {
            let mut s = s.clone();
            s.sort();
            percentile(&s, 0.5)
        })
    };
    println!("\nstop latency, every wake-up measured (µs):");
    println!(
        "  {:<30} {:>9} {:>8} {:>8} {:>8} {:>8}  median vs plain condvar",
        "", "wake-ups", "p10", "median", "p90", "p99"
    );
    for (kind, s) in samples.iter() {
        let mut s = s.clone();
        s.sort();
        let median = percentile(&s, 0.5);
        // A filtered run may have measured no floor.
        let ratio = median_of(kind.floor()).map_or_else(
            || "-".to_owned(),
            |floor| format!("{:.2}x", median.as_secs_f64() / floor.as_secs_f64()),
        );
        println!(
            "  {:<30} {:>9} {:>8.1} {:>8.1} {:>8.1} {:>8.1}  {ratio}",
            kind.label(),
            s.len(),
            micros(percentile(&s, 0.1)),
            micros(median),
            micros(percentile(&s, 0.9)),
            micros(percentile(&s, 0.99)),
        );
    }
}

fn main() {
    let mut criterion = Criterion::default()
        .sample_size(50)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(8))
        .configure_from_args();
    stop_latency(&mut criterion);
    criterion.final_summary();
    summary();
}
