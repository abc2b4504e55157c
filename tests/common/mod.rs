//! Support code shared by the integration tests: the bounds on waiting, a
//! latch, a gate that holds workers busy, bounded joins of task handles and
//! of helper threads, drop counters, the closure and the hand-back of the
//! shutdown races, a pool wrapper that must terminate when its test ends,
//! small pool builders, checks that a call returned at once or is still
//! blocked, hooks that count their calls, and a logger that keeps what
//! the library logs.
//!
//! Every wait here is bounded by [`WAIT`], so that a bug fails a test
//! instead of hanging CI.

// Each test binary compiles this whole module in (`mod common;`) but uses
// only part of it; what one binary leaves unused would warn as dead code.
#![allow(dead_code)]

#[cfg(unix)]
pub(crate) mod child;

use std::ops::Deref;
use std::panic;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering, Ordering::SeqCst};
use std::sync::{Arc, Condvar, Mutex, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use drainpool::{
    Builder, Interrupted, RejectReason, Rejected, StopToken, TaskError, TaskHandle, ThreadPool,
};

/// The bound on every wait: a bug fails the test instead of hanging CI.
pub(crate) const WAIT: Duration = Duration::from_secs(10);
/// How long something must stay blocked to count as "still blocked".
pub(crate) const BRIEF: Duration = Duration::from_millis(50);

// ----- latch and gate -------------------------------------------------------

/// A one-shot latch: opened once, waited on with a bound; clones share it.
/// Waiting never panics, so a thread-local destructor may wait on one.
#[derive(Clone, Default)]
pub(crate) struct Latch(Arc<(Mutex<bool>, Condvar)>);

impl Latch {
    /// Opens the latch, for the threads waiting now and any that come later.
    pub(crate) fn open(&self) {
        let (open, cond) = &*self.0;
        *open.lock().unwrap() = true;
        cond.notify_all();
    }

    /// Waits until the latch is open, for at most [`WAIT`]; true if it is.
    pub(crate) fn wait(&self) -> bool {
        let (open, cond) = &*self.0;
        let Ok(guard) = open.lock() else { return false };
        match cond.wait_timeout_while(guard, WAIT, |open| !*open) {
            Ok((guard, _)) => *guard,
            Err(_) => false,
        }
    }

    /// Waits like [`Latch::wait`]; fails (panics) if the latch did not open.
    pub(crate) fn expect_open(&self) {
        assert!(self.wait(), "the latch was never opened");
    }
}

/// Holds workers busy: each task from [`Gate::hold`] says it has started,
/// then blocks until [`Gate::release`] (or [`WAIT`], so a failing test still
/// ends). Dropping the gate releases it.
#[derive(Default)]
pub(crate) struct Gate {
    entered: Arc<(Mutex<usize>, Condvar)>,
    released: Latch,
}

impl Gate {
    /// A gate that holds nothing yet.
    pub(crate) fn new() -> Gate {
        Gate::default()
    }

    /// A gate holding `workers` workers of `pool` with tasks from
    /// [`Gate::task`] (given to `execute`); returns once they have all
    /// started.
    pub(crate) fn occupying(pool: &ThreadPool, workers: usize) -> Gate {
        let gate = Gate::new();
        for _ in 0..workers {
            pool.execute(gate.task()).unwrap();
        }
        gate.wait_entered(workers);
        gate
    }

    /// A task that holds its worker until released, then runs `then`.
    pub(crate) fn hold<T>(
        &self,
        then: impl FnOnce() -> T + Send + 'static,
    ) -> impl FnOnce() -> T + Send + 'static {
        let entered = self.entered.clone();
        let released = self.released.clone();
        move || {
            *entered.0.lock().unwrap() += 1;
            entered.1.notify_all();
            released.wait();
            then()
        }
    }

    /// A task that holds its worker until released.
    pub(crate) fn task(&self) -> impl FnOnce() + Send + 'static {
        self.hold(|| ())
    }

    /// Waits until `n` held tasks have started; fails the test otherwise.
    pub(crate) fn wait_entered(&self, n: usize) {
        let guard = self.entered.0.lock().unwrap();
        let (guard, _) = self
            .entered
            .1
            .wait_timeout_while(guard, WAIT, |entered| *entered < n)
            .unwrap();
        assert!(*guard >= n, "only {} of {n} held tasks started", *guard);
    }

    /// Lets every held task, present and future, go on.
    pub(crate) fn release(&self) {
        self.released.open();
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        self.release();
    }
}

/// A task that says it started on `started`, then sleeps for `duration`
/// unless its stop token fires first: interrupted, it ends at once, with
/// `Err(Interrupted)`.
pub(crate) fn sleep_until_stopped(
    started: mpsc::Sender<()>,
    duration: Duration,
) -> impl FnOnce() -> Result<(), Interrupted> + Send + 'static {
    move || {
        started.send(()).unwrap();
        StopToken::current().sleep(duration)
    }
}

/// Submits a task that sleeps interruptibly until it is stopped, and waits
/// until it has started: a worker kept busy until `shutdown_now` or the
/// handle's `cancel`.
pub(crate) fn started_sleeper(pool: &ThreadPool) -> TaskHandle<Result<(), Interrupted>> {
    let (started_tx, started) = mpsc::channel();
    let handle = pool
        .submit(sleep_until_stopped(started_tx, Duration::MAX))
        .unwrap();
    started.recv_timeout(WAIT).expect("the sleeper started");
    handle
}

// ----- bounded joins ----------------------------------------------------------

/// A thread whose result is waited for with a bound, so that a hang in the
/// pool fails the test instead of hanging CI.
pub(crate) struct Spawned<T> {
    result: mpsc::Receiver<thread::Result<T>>,
    thread: thread::JoinHandle<()>,
}

/// Runs `f` on a thread of its own; a panic in `f` reaches whoever joins it.
pub(crate) fn spawn<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Spawned<T> {
    let (tx, result) = mpsc::channel();
    let thread = thread::spawn(move || {
        let _ = tx.send(panic::catch_unwind(panic::AssertUnwindSafe(f)));
    });
    Spawned { result, thread }
}

impl<T> Spawned<T> {
    /// Whether the thread has ended.
    pub(crate) fn is_finished(&self) -> bool {
        self.thread.is_finished()
    }

    /// The thread's result, waited for at most [`WAIT`]: see
    /// [`Spawned::join_within`].
    pub(crate) fn join(self, what: &str) -> T {
        self.join_within(what, WAIT)
    }

    /// The thread's result; its panic is raised again here. Fails the test,
    /// naming `what`, if the thread has not finished within `bound` (it is
    /// then left behind).
    pub(crate) fn join_within(self, what: &str, bound: Duration) -> T {
        match self.result.recv_timeout(bound) {
            Ok(Ok(value)) => value,
            Ok(Err(payload)) => panic::resume_unwind(payload),
            Err(_) => panic!("{what} did not finish within {bound:?}"),
        }
    }
}

/// Joins a task handle, failing the test (not hanging it) if the task does
/// not end within [`WAIT`].
pub(crate) fn bounded_join<T>(handle: TaskHandle<T>) -> Result<T, TaskError> {
    assert!(
        handle.wait_timeout(WAIT),
        "task {} did not end within {WAIT:?}",
        handle.id()
    );
    handle.join()
}

// ----- pools ------------------------------------------------------------------

/// A pool that must terminate within [`WAIT`] when the test ends. A pool
/// that hangs is leaked and fails the test, rather than hanging it in `Drop`.
pub(crate) struct TestPool(Option<ThreadPool>);

impl TestPool {
    /// A pool of `threads` workers, otherwise as the builder's defaults.
    pub(crate) fn new(threads: usize) -> TestPool {
        TestPool::build(ThreadPool::builder().threads(threads))
    }

    /// The pool `builder` builds.
    pub(crate) fn build(builder: Builder) -> TestPool {
        TestPool(Some(builder.build().expect("the pool builds")))
    }

    /// A single worker named `solo-0`, so that "the same thread" is checkable.
    pub(crate) fn solo(builder: Builder) -> TestPool {
        TestPool::build(builder.threads(1).thread_name("solo"))
    }
}

impl Deref for TestPool {
    type Target = ThreadPool;
    fn deref(&self) -> &ThreadPool {
        self.0.as_ref().expect("the pool is alive until drop")
    }
}

impl Drop for TestPool {
    fn drop(&mut self) {
        let Some(pool) = self.0.take() else { return };
        pool.shutdown();
        if pool.await_termination(WAIT) {
            drop(pool);
        } else {
            std::mem::forget(pool);
            if !thread::panicking() {
                panic!("the pool did not terminate within {WAIT:?}");
            }
        }
    }
}

/// Keeps a pool alive for good if the test panics: dropping the last handle
/// on a pool waits for it to terminate, which would turn a failing test
/// into a hung one.
pub(crate) struct LeakOnPanic(
    /// The pool to keep alive.
    pub(crate) Arc<ThreadPool>,
);

impl Drop for LeakOnPanic {
    fn drop(&mut self) {
        if thread::panicking() {
            std::mem::forget(self.0.clone());
        }
    }
}

/// A pool of `threads` workers named `{prefix}-{index}`.
pub(crate) fn named_pool(threads: usize, prefix: &str) -> ThreadPool {
    ThreadPool::builder()
        .threads(threads)
        .thread_name(prefix)
        .build()
        .unwrap()
}

// ----- counting ---------------------------------------------------------------

/// A task (or stop callback) that adds one to `counter` when it runs.
pub(crate) fn bump(counter: &Arc<AtomicUsize>) -> impl FnOnce() + Send + 'static {
    let counter = counter.clone();
    move || {
        counter.fetch_add(1, Ordering::SeqCst);
    }
}

/// Counts how many of its [`Tracked`] values were dropped: proves that a
/// closure's captures are dropped exactly once.
#[derive(Clone, Default)]
pub(crate) struct DropCounter(Arc<AtomicUsize>);

/// A value that counts itself in its [`DropCounter`] when dropped.
pub(crate) struct Tracked(Arc<AtomicUsize>);

impl DropCounter {
    /// A new value to capture, counted here when it is dropped.
    pub(crate) fn tracked(&self) -> Tracked {
        Tracked(self.0.clone())
    }

    /// How many of its values were dropped so far.
    pub(crate) fn count(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

// ----- the shutdown races -----------------------------------------------------

/// One closure of a shutdown race: counts its runs in its own cell, and its
/// drop.
pub(crate) struct RaceTask {
    runs: Arc<AtomicU8>,
    index: usize,
    _drop: Tracked,
}

impl RaceTask {
    /// The producer's `index`-th task: counts its runs in `runs`, its drop
    /// in `drops`.
    pub(crate) fn new(runs: Arc<AtomicU8>, index: usize, drops: &DropCounter) -> RaceTask {
        RaceTask {
            runs,
            index,
            _drop: drops.tracked(),
        }
    }

    /// Runs the task; returns its index.
    pub(crate) fn run(self) -> usize {
        // A little work, so that a backlog builds up in the queue for the
        // shutdown to meet.
        for i in 0..10_000u32 {
            std::hint::black_box(i);
        }
        self.runs.fetch_add(1, Ordering::SeqCst);
        self.index
    }
}

/// Takes a refused task back (it must come back whole) and drops it,
/// never started.
pub(crate) fn take_back<F>(rejected: Rejected<F>) -> RejectReason {
    let reason = rejected.reason();
    drop(rejected.into_inner());
    reason
}

// ----- randomised timing ------------------------------------------------------

/// A small xorshift generator: deterministic, no dependency.
pub(crate) struct Rng(
    /// The state; never zero.
    pub(crate) u64,
);

impl Rng {
    /// The next number.
    pub(crate) fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// A spin count spread over `scales` orders of magnitude (powers of
    /// two), below `2^(scales - 1)`: every scale is as likely as the next,
    /// so that most counts are small and some are large.
    pub(crate) fn spins(&mut self, scales: u64) -> u64 {
        let scale = self.next() % scales;
        self.next() % (1 << scale)
    }
}

/// Busy-waits for `n` spins.
pub(crate) fn spin(n: u64) {
    for _ in 0..n {
        std::hint::spin_loop();
    }
}

// ----- at once, still blocked, counting hooks ----------------------------------

/// "At once": far below [`WAIT`], far above any scheduling hiccup.
pub(crate) const AT_ONCE: Duration = Duration::from_secs(2);

/// Asserts that `f` returns within [`AT_ONCE`]; returns its value.
pub(crate) fn at_once<T>(what: &str, f: impl FnOnce() -> T) -> T {
    let start = Instant::now();
    let value = f();
    let took = start.elapsed();
    assert!(took < AT_ONCE, "{what} took {took:?}: it waited");
    value
}

/// Asserts that the thread `waiter` is still blocked after [`BRIEF`].
pub(crate) fn still_blocked<T>(what: &str, waiter: &Spawned<T>) {
    thread::sleep(BRIEF);
    assert!(
        !waiter.is_finished(),
        "{what} returned while it should wait"
    );
}

/// Hooks that count, for proving that a refused build started nothing.
#[derive(Clone, Default)]
pub(crate) struct Hooked {
    pub(crate) started: Arc<AtomicUsize>,
    pub(crate) exited: Arc<AtomicUsize>,
    pub(crate) terminated: Arc<AtomicUsize>,
}

impl Hooked {
    pub(crate) fn builder(&self) -> drainpool::Builder {
        let (started, exited, terminated) = (
            self.started.clone(),
            self.exited.clone(),
            self.terminated.clone(),
        );
        ThreadPool::builder()
            .on_thread_start(move |_| {
                started.fetch_add(1, SeqCst);
            })
            .on_thread_exit(move |_| {
                exited.fetch_add(1, SeqCst);
            })
            .on_terminated(move || {
                terminated.fetch_add(1, SeqCst);
            })
    }

    pub(crate) fn counts(&self) -> (usize, usize, usize) {
        (
            self.started.load(SeqCst),
            self.exited.load(SeqCst),
            self.terminated.load(SeqCst),
        )
    }
}

// ----- a logger that keeps what the library logs ---------------------------------

struct Capture;

static LINES: Mutex<Vec<(log::Level, String)>> = Mutex::new(Vec::new());

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &log::Record<'_>) {
        LINES
            .lock()
            .unwrap()
            .push((record.level(), record.args().to_string()));
    }
    fn flush(&self) {}
}

/// Installs the capturing logger (once per test binary; a binary that
/// calls it can have no other logger).
pub(crate) fn capture_logs() {
    static INSTALLED: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    INSTALLED.get_or_init(|| {
        log::set_logger(&Capture).expect("no other logger in this test binary");
        log::set_max_level(log::LevelFilter::Debug);
    });
}

/// The captured lines at `level` that contain `needle`.
pub(crate) fn logged(level: log::Level, needle: &str) -> Vec<String> {
    LINES
        .lock()
        .unwrap()
        .iter()
        .filter(|(l, line)| *l == level && line.contains(needle))
        .map(|(_, line)| line.clone())
        .collect()
}
