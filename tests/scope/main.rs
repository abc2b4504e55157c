//! Structured scopes (`pool.scope`, `pool.try_scope`): their tasks borrow
//! from the caller's stack, fail fast, stop together (also when the stop
//! comes from above), never deadlock the pool that runs them, count in its
//! books like any task, survive user `Drop`s that panic, and meet the
//! pool's shutdown as documented.
//!
//! Every task is accounted for exactly once: it ran, or its closure was
//! dropped without running (cancelled, or refused at its spawn).
//!
//! A scope blocks its caller until every task of it has ended, so every
//! test runs its scopes on a thread of its own under a watchdog
//! ([`watchdog`]): a scope that never returns fails the test instead of
//! hanging it.
//!
//! One module per capability; the support they share is here.

mod accounting;
mod borrowing;
mod caller_runs;
mod cancel;
mod cancel_races;
#[path = "../common/mod.rs"]
mod common;
mod deadlock_free;
mod drops;
mod fail_fast;
mod handles;
mod shutdown;
mod stop_flow;
mod try_scope;

use std::any::Any;
use std::panic;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Once};
use std::time::Duration;

use common::{TestPool, WAIT};
use drainpool::crossbeam_channel::{Receiver, Sender};
use drainpool::{PoolStats, StopToken, ThreadPool};

// ----- the watchdog -----------------------------------------------------------

/// Runs `body` on a thread of its own and returns its value; fails the test
/// (naming `what`) if it has not finished within `bound`. Its panic is
/// raised again here.
fn watchdog_within<T: Send + 'static>(
    what: &str,
    bound: Duration,
    body: impl FnOnce() -> T + Send + 'static,
) -> T {
    common::spawn(body).join_within(what, bound)
}

/// [`watchdog_within`] with a bound of three [`WAIT`]s: the bounded waits
/// inside `body` (each at most one `WAIT`) fail with their own message
/// first.
fn watchdog<T: Send + 'static>(what: &str, body: impl FnOnce() -> T + Send + 'static) -> T {
    watchdog_within(what, 3 * WAIT, body)
}

// ----- fates of numbered tasks -------------------------------------------------

/// The fate of each of a round's numbered tasks: how often its closure ran,
/// and how often the closure (its [`Probe`]) was dropped. A task that ends
/// correctly was dropped exactly once and ran at most once.
struct Fates {
    runs: Box<[AtomicU8]>,
    drops: Box<[AtomicU8]>,
}

impl Fates {
    fn new(n: usize) -> Fates {
        Fates {
            runs: (0..n).map(|_| AtomicU8::new(0)).collect(),
            drops: (0..n).map(|_| AtomicU8::new(0)).collect(),
        }
    }

    /// The value task `index`'s closure owns.
    fn probe(&self, index: usize) -> Probe<'_> {
        Probe { fates: self, index }
    }

    fn len(&self) -> usize {
        self.runs.len()
    }

    fn runs(&self, index: usize) -> u8 {
        self.runs[index].load(Ordering::SeqCst)
    }

    fn drops(&self, index: usize) -> u8 {
        self.drops[index].load(Ordering::SeqCst)
    }

    /// How many tasks ran.
    fn ran(&self) -> usize {
        (0..self.len()).filter(|&i| self.runs(i) > 0).count()
    }

    /// How many tasks were dropped without running: cancelled, or refused.
    fn dropped_unrun(&self) -> usize {
        (0..self.len())
            .filter(|&i| self.runs(i) == 0 && self.drops(i) > 0)
            .count()
    }

    /// Fails unless every task's closure was dropped exactly once and ran
    /// at most once: nothing leaked, nothing ran twice.
    fn assert_each_ended_once(&self, what: &str) {
        for i in 0..self.len() {
            let (runs, drops) = (self.runs(i), self.drops(i));
            assert!(
                drops == 1 && runs <= 1,
                "{what}: task {i} ran {runs} times and was dropped {drops} times"
            );
        }
    }
}

/// Owned by one task's closure: counts the run and the drop of that closure.
/// Borrows its [`Fates`]: scoped tasks may.
struct Probe<'f> {
    fates: &'f Fates,
    index: usize,
}

impl Probe<'_> {
    /// Counts the run; returns the task's index.
    fn run(&self) -> usize {
        self.fates.runs[self.index].fetch_add(1, Ordering::SeqCst);
        self.index
    }
}

impl Drop for Probe<'_> {
    fn drop(&mut self) {
        self.fates.drops[self.index].fetch_add(1, Ordering::SeqCst);
    }
}

// ----- deliberate panics -------------------------------------------------------

/// Every panic these tests cause on purpose has a message starting so.
const DELIBERATE: &str = "deliberate";

/// The message of a panic payload (`&str` or `String`), if it has one.
fn message(payload: &(dyn Any + Send)) -> Option<&str> {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
}

/// Keeps the deliberate panics off stderr; every other panic is printed as
/// usual.
fn quiet_deliberate_panics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if !message(info.payload()).is_some_and(|m| m.starts_with(DELIBERATE)) {
                default(info);
            }
        }));
    });
}

/// A pool of `threads` workers whose deliberate panics stay quiet.
fn quiet_pool(threads: usize) -> TestPool {
    quiet_deliberate_panics();
    TestPool::build(ThreadPool::builder().threads(threads).panic_handler(|_| {}))
}

/// Runs `f`, which must panic; returns the panic's message.
fn panic_message_of<T>(f: impl FnOnce() -> T) -> String {
    match panic::catch_unwind(panic::AssertUnwindSafe(f)) {
        Ok(_) => panic!("expected a panic, the call returned"),
        Err(payload) => message(&*payload)
            .expect("the panic payload is a string")
            .to_owned(),
    }
}

// ----- blocked tasks ---------------------------------------------------------

/// A task's body: says it started on `started`, then waits until its
/// [`StopToken::current`] fires, for at most [`WAIT`]. True if the stop
/// woke it (false: it waited in vain).
fn wait_for_stop(started: &Sender<()>) -> bool {
    started.send(()).expect("the test listens");
    StopToken::current().sleep(WAIT).is_err()
}

/// Waits until `n` tasks have said they started on `started`.
fn expect_started(started: &Receiver<()>, n: usize) {
    for i in 0..n {
        started
            .recv_timeout(WAIT)
            .unwrap_or_else(|_| panic!("only {i} of {n} tasks started within {WAIT:?}"));
    }
}

// ----- the books ---------------------------------------------------------------

/// Waits until `pool` is idle: every task's end is then in its books.
fn settle(pool: &ThreadPool) {
    assert!(pool.wait_idle(WAIT), "the pool became idle");
}

/// The pool's books as (completed, panicked, cancelled, rejected), with
/// nothing queued or running.
fn books(pool: &ThreadPool) -> (u64, u64, u64, u64) {
    settle(pool);
    let PoolStats {
        queued,
        active,
        completed,
        panicked,
        cancelled,
        rejected,
        ..
    } = pool.stats();
    assert_eq!((queued, active), (0, 0), "quiescent: {:?}", pool.stats());
    (completed, panicked, cancelled, rejected)
}

/// Shuts `pool` down and waits for it to terminate.
fn finish(pool: &ThreadPool) {
    pool.shutdown();
    assert!(pool.await_termination(WAIT), "the pool terminates");
}

/// Shares `pool` with tasks that open scopes on it; see
/// [`common::LeakOnPanic`] for why the test keeps its own handle.
fn shared(pool: ThreadPool) -> (Arc<ThreadPool>, common::LeakOnPanic) {
    let pool = Arc::new(pool);
    (pool.clone(), common::LeakOnPanic(pool))
}

/// Waits (yielding, for at most [`WAIT`]) until `done` holds; fails the
/// test, naming `what`, otherwise.
fn until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + WAIT;
    while !done() {
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: not within {WAIT:?}"
        );
        std::thread::yield_now();
    }
}

/// Spins until `flag` is set, for at most [`WAIT`]: lines two racing sides
/// up, so that a random spin after it lands inside the window raced.
fn spin_until(flag: &std::sync::atomic::AtomicBool) {
    let deadline = std::time::Instant::now() + WAIT;
    while !flag.load(Ordering::SeqCst) {
        assert!(
            std::time::Instant::now() < deadline,
            "the other side never came"
        );
        std::hint::spin_loop();
    }
}
