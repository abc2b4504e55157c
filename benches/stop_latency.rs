//! Stop latency: the time from `StopSource::request_stop()` to a thread
//! blocked in `token.sleep`, `token.recv` or `token.wait` (parking_lot
//! condvar) running again — side by side with the floor, a plain parking_lot
//! `Condvar::notify_one` to a thread blocked in `Condvar::wait`.
//!
//! One waiter thread per kind is reused across iterations. Each iteration:
//!
//! 1. the bench hands the waiter a fresh token (outside the timed part);
//! 2. the waiter stores "about to wait" in an atomic and waits;
//! 3. the bench spins until it sees that, proves the condvar waiters parked
//!    (by taking and releasing their mutex, which they give up only inside
//!    the wait), and spins `SETTLE` more so that every waiter is asleep in
//!    the kernel, not still on its way there;
//! 4. timed: `request_stop()` (or, for the plain condvar, set the flag
//!    under the lock and `notify_one`), then spin until the waiter stores
//!    "woke" in a second atomic right after its wait returns.
//!
//! The bench thread spins while it waits for the wake-up (yielding every
//! 128 spins, for small machines), so the measurement is not delayed by the
//! bench thread's own wake-up. The untimed part of an iteration (handing
//! over the token, settling) costs far more than the timed part; criterion
//! budgets by wall time, so the run still takes about a minute.
//!
//! Criterion's estimate is a mean over samples, which one slow wake-up in a
//! sample can move; the closing summary therefore also prints exact
//! percentiles of every individual wake-up measured (warm-up included), and
//! each median's ratio to the plain condvar's. The targets: median
//! under 50 µs, and within 2× of the plain condvar.
//!
//! Run with `cargo bench --bench stop_latency` (about 45 s) on an otherwise
//! idle machine: a busy core turns microseconds into scheduler quanta.

use std::collections::BTreeMap;
use std::hint::spin_loop;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex as StdMutex};
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
}

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Kind::Sleep => "token.sleep",
            Kind::Recv => "token.recv",
            Kind::Wait => "token.wait (condvar)",
            Kind::PlainCondvar => "plain Condvar::notify_one",
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
    thread: Option<thread::JoinHandle<()>>,
    round: u64,
}

impl Waiter {
    fn start(kind: Kind) -> Waiter {
        let (jobs, job_rx) = crossbeam_channel::unbounded::<(u64, StopToken)>();
        let ready = Arc::new(AtomicU64::new(0));
        let woke = Arc::new(AtomicU64::new(0));
        let pair = Arc::new((Mutex::new(false), Condvar::new()));
        let thread = {
            let (ready, woke, pair) = (ready.clone(), woke.clone(), pair.clone());
            thread::Builder::new()
                .name(format!("waiter-{kind:?}"))
                .spawn(move || waiter_loop(kind, &job_rx, &ready, &woke, &pair))
                .unwrap()
        };
        Waiter {
            kind,
            jobs: Some(jobs),
            ready,
            woke,
            pair,
            thread: Some(thread),
            round: 0,
        }
    }

    /// One measured wake-up.
    fn once(&mut self) -> Duration {
        self.round += 1;
        let round = self.round;
        let source = StopSource::new();
        self.jobs
            .as_ref()
            .unwrap()
            .send((round, source.token()))
            .unwrap();
        spin_until(|| self.ready.load(Ordering::Acquire) == round);
        if matches!(self.kind, Kind::Wait | Kind::PlainCondvar) {
            // The waiter holds the mutex until its wait releases it.
            drop(self.pair.0.lock());
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
            _ => {
                source.request_stop();
            }
        }
        spin_until(|| self.woke.load(Ordering::Acquire) == round);
        let took = started.elapsed();
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
) {
    // A channel nobody sends on, for `token.recv`.
    let (_keep, silent) = crossbeam_channel::unbounded::<()>();
    let (lock, cond) = pair;
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
        }
    }
}

fn stop_latency(c: &mut Criterion) {
    let mut group = c.benchmark_group("stop_latency");
    for kind in [Kind::PlainCondvar, Kind::Sleep, Kind::Recv, Kind::Wait] {
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
/// median to the plain condvar's.
fn summary() {
    let samples = SAMPLES.lock().unwrap();
    let Some(floor) = samples.get(&Kind::PlainCondvar).map(|s| {
        let mut s = s.clone();
        s.sort();
        percentile(&s, 0.5)
    }) else {
        return;
    };
    println!("\nstop latency, every wake-up measured (µs):");
    println!(
        "  {:<28} {:>9} {:>8} {:>8} {:>8} {:>8}  median vs plain condvar",
        "", "wake-ups", "p10", "median", "p90", "p99"
    );
    for (kind, s) in samples.iter() {
        let mut s = s.clone();
        s.sort();
        let median = percentile(&s, 0.5);
        println!(
            "  {:<28} {:>9} {:>8.1} {:>8.1} {:>8.1} {:>8.1}  {:.2}x",
            kind.label(),
            s.len(),
            micros(percentile(&s, 0.1)),
            micros(median),
            micros(percentile(&s, 0.9)),
            micros(percentile(&s, 0.99)),
            median.as_secs_f64() / floor.as_secs_f64()
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
