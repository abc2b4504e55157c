//! What the performance benchmarks and the compare table share: the
//! peers' set-ups, the task body and its latch, the submit-and-join and
//! scope scenarios, workers held on a latch, per-round recording for criterion
//! groups, and a counting global allocator.
//!
//! Each bench, `compare.rs` included, takes it with `mod common;`. Each
//! binary uses part
//! of it, hence `dead_code` is allowed. A `#[global_allocator]` can be
//! declared once per binary, so the allocator *type* is here and the static
//! is declared by each binary that counts.

#![allow(dead_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicIsize, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use criterion::{BenchmarkGroup, Criterion, SamplingMode, Throughput, measurement::WallTime};

/// Worker threads in every pool.
pub(crate) const THREADS: usize = 2;

/// A boxed task, as the bare loop's channel carries it.
pub(crate) type Thunk = Box<dyn FnOnce() + Send>;

// ----- the pools ------------------------------------------------------------------

/// A drainpool of `THREADS` workers.
pub(crate) fn new_drainpool() -> drainpool::ThreadPool {
    drainpool::ThreadPool::new(THREADS).expect("drainpool")
}

/// A rayon pool of `THREADS` workers.
pub(crate) fn new_rayon() -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(THREADS)
        .build()
        .expect("rayon")
}

/// A drainpool with both workers parked on its empty queue: each has run a
/// task (so both threads are up), then had a millisecond to block again.
pub(crate) fn parked_drainpool() -> drainpool::ThreadPool {
    let pool = new_drainpool();
    let all = Arc::new(Barrier::new(THREADS + 1));
    for _ in 0..THREADS {
        let all = all.clone();
        pool.execute(move || {
            all.wait();
        })
        .expect("running pool accepts");
    }
    all.wait();
    // Not synchronisation: time for the workers to go back to sleep, so
    // that what is timed is the shutdown of an idle pool.
    thread::sleep(Duration::from_millis(1));
    pool
}

// ----- the floor: a bare crossbeam-channel worker loop ------------------------------

/// Spawns `THREADS` threads that run the jobs received on `rx` until every
/// sender is gone: the bare loop's workers.
pub(crate) fn bare_workers(rx: &crossbeam_channel::Receiver<Thunk>) -> Vec<thread::JoinHandle<()>> {
    (0..THREADS)
        .map(|_| {
            let rx = rx.clone();
            thread::spawn(move || {
                while let Ok(job) = rx.recv() {
                    job();
                }
            })
        })
        .collect()
}

/// The floor: one unbounded channel of boxed closures, `THREADS` threads
/// receiving, no bookkeeping at all. Dropping it drops the sender and joins
/// the workers, after they have run every job sent.
pub(crate) struct BareLoop {
    tx: Option<crossbeam_channel::Sender<Thunk>>,
    workers: Vec<thread::JoinHandle<()>>,
}

impl BareLoop {
    /// Starts the workers.
    pub(crate) fn new() -> BareLoop {
        let (tx, rx) = crossbeam_channel::unbounded::<Thunk>();
        BareLoop {
            tx: Some(tx),
            workers: bare_workers(&rx),
        }
    }

    /// Boxes `f` and queues it.
    pub(crate) fn execute(&self, f: impl FnOnce() + Send + 'static) {
        self.send(Box::new(f));
    }

    /// Queues a job that is boxed already (without boxing it again).
    pub(crate) fn send(&self, job: Thunk) {
        self.tx
            .as_ref()
            .expect("open until drop")
            .send(job)
            .expect("workers alive");
    }
}

impl Drop for BareLoop {
    fn drop(&mut self) {
        drop(self.tx.take());
        for worker in self.workers.drain(..) {
            worker.join().expect("bare worker panicked");
        }
    }
}

// ----- the task body and the latch ----------------------------------------------------

/// Tasks run in this round.
pub(crate) static COUNTER: AtomicU64 = AtomicU64::new(0);
/// The count at which `tick` opens the latch.
static TARGET: AtomicU64 = AtomicU64::new(u64::MAX);
static DONE: Mutex<bool> = Mutex::new(false);
static DONE_CV: Condvar = Condvar::new();

/// The task body: count, and open the latch when the count reaches the
/// round's target.
#[inline]
pub(crate) fn tick() {
    // ORDERING: only the task that brings the count to the target opens the
    // latch; the latch's mutex orders everything before it with the waiter.
    if COUNTER.fetch_add(1, Ordering::Relaxed) + 1 == TARGET.load(Ordering::Relaxed) {
        open_latch();
    }
}

/// Opens the latch and wakes the waiter.
#[inline]
pub(crate) fn open_latch() {
    *DONE.lock().unwrap() = true;
    DONE_CV.notify_one();
}

/// Resets the counter and the latch for a round of `n` tasks; call before
/// submitting.
pub(crate) fn reset(n: u64) {
    COUNTER.store(0, Ordering::Relaxed);
    TARGET.store(n, Ordering::Relaxed);
    *DONE.lock().unwrap() = false;
}

/// Sleeps until the last task opened the latch.
pub(crate) fn wait_latch() {
    let mut done = DONE.lock().unwrap();
    while !*done {
        done = DONE_CV.wait(done).unwrap();
    }
}

/// One spawn-to-completion round: `submit_all` hands the pool `n` tasks
/// running `tick`; timed until the last has run.
pub(crate) fn spawn_round(n: u64, submit_all: impl FnOnce()) -> Duration {
    reset(n);
    let start = Instant::now();
    submit_all();
    wait_latch();
    start.elapsed()
}

/// A task that captures a clone of `shared`, as real tasks capture their
/// inputs, then runs `body`. With a fn item for `body` the closure is one
/// `Arc` wide, so every pool allocates once per task for it.
#[inline]
pub(crate) fn with_arc<F>(shared: &Arc<()>, body: F) -> impl FnOnce() + Send + 'static
where
    F: FnOnce() + Send + 'static,
{
    let s = shared.clone();
    move || {
        drop(s);
        body();
    }
}

// ----- submit-and-join ------------------------------------------------------------------

/// Times `round`, checking it summed `0 + 2 + ... + 2(n-1)`.
pub(crate) fn timed_sum(n: u64, round: impl FnOnce() -> u64) -> Duration {
    let start = Instant::now();
    let sum = round();
    let took = start.elapsed();
    assert_eq!(sum, n * (n - 1));
    took
}

/// drainpool: `submit` `n` tasks returning `2i`, then join each handle and
/// sum the results.
pub(crate) fn drain_submit_join(pool: &drainpool::ThreadPool, n: u64) -> u64 {
    let handles: Vec<_> = (0..n)
        .map(|i| pool.submit(move || i * 2).expect("running pool accepts"))
        .collect();
    handles.into_iter().map(|h| h.join().expect("ran")).sum()
}

/// drainpool: the same tasks as [`drain_submit_join`], as one `submit_batch`.
pub(crate) fn drain_submit_batch_join(pool: &drainpool::ThreadPool, n: u64) -> u64 {
    let handles = pool
        .submit_batch((0..n).map(|i| move || i * 2))
        .expect("running pool accepts");
    handles.into_iter().map(|h| h.join().expect("ran")).sum()
}

/// rayon: `rayon::scope` spawns writing `2i` into slots, summed (call inside
/// the pool).
pub(crate) fn rayon_scope_slots(n: u64) -> u64 {
    let mut slots = vec![0u64; n as usize];
    rayon_scope_fill(&mut slots);
    slots.iter().sum()
}

/// rayon: [`ThreadPool::in_place_scope`](rayon::ThreadPool::in_place_scope)
/// called from outside the pool over `n` new slots, summed: the scope's
/// body runs on the caller, which then waits while the workers run the
/// spawns.
pub(crate) fn rayon_in_place_scope_slots(pool: &rayon::ThreadPool, n: u64) -> u64 {
    let mut slots = vec![0u64; n as usize];
    pool.in_place_scope(|s| {
        for (i, slot) in slots.iter_mut().enumerate() {
            s.spawn(move |_| *slot = i as u64 * 2);
        }
    });
    slots.iter().sum()
}

// ----- a scope filling a borrowed slice -------------------------------------------------

/// rayon: one `rayon::scope` spawn per slot, writing `2i` into slot `i`
/// (call inside the pool: the scope runs on the current worker).
pub(crate) fn rayon_scope_fill(slots: &mut [u64]) {
    rayon::scope(|s| {
        for (i, slot) in slots.iter_mut().enumerate() {
            s.spawn(move |_| *slot = i as u64 * 2);
        }
    });
}

/// drainpool: one `pool.scope` spawn per slot, writing `2i` into slot `i`;
/// the handles are dropped, as rayon's spawns return none. From outside
/// the pool the caller waits; on one of its workers it helps.
pub(crate) fn drain_scope_fill(pool: &drainpool::ThreadPool, slots: &mut [u64]) {
    pool.scope(|s| {
        for (i, slot) in slots.iter_mut().enumerate() {
            s.spawn(move || *slot = i as u64 * 2);
        }
    });
}

/// drainpool: [`drain_scope_fill`] called from the producer (outside the
/// pool), summed.
pub(crate) fn drain_scope_slots(pool: &drainpool::ThreadPool, n: u64) -> u64 {
    let mut slots = vec![0u64; n as usize];
    drain_scope_fill(pool, &mut slots);
    slots.iter().sum()
}

/// drainpool: [`drain_scope_fill`] over `slots`, called inside a task of
/// `pool` (so the scope's caller is a worker, which runs the scope's tasks
/// too) that the producer submits and joins. The slots move into the task
/// and back, so the task is `'static` and the scope still borrows them.
pub(crate) fn drain_scope_fill_inside(
    pool: &Arc<drainpool::ThreadPool>,
    mut slots: Vec<u64>,
) -> Vec<u64> {
    let inner = pool.clone();
    pool.submit(move || {
        drain_scope_fill(&inner, &mut slots);
        slots
    })
    .expect("running pool accepts")
    .join()
    .expect("ran")
}

/// drainpool: [`drain_scope_fill_inside`] over `n` new slots, summed.
pub(crate) fn drain_scope_slots_inside(pool: &Arc<drainpool::ThreadPool>, n: u64) -> u64 {
    drain_scope_fill_inside(pool, vec![0u64; n as usize])
        .iter()
        .sum()
}

// ----- holding workers --------------------------------------------------------------------

/// A latch that holds the workers until it is opened.
#[derive(Default)]
pub(crate) struct Hold {
    started: AtomicUsize,
    open: Mutex<bool>,
    cv: Condvar,
}

impl Hold {
    /// Hands `THREADS` holding tasks to `spawn` and waits until every one
    /// has blocked on the latch.
    pub(crate) fn start(spawn: impl Fn(Thunk)) -> Arc<Hold> {
        let hold = Arc::new(Hold::default());
        for _ in 0..THREADS {
            let hold = hold.clone();
            spawn(Box::new(move || hold.hold()));
        }
        hold.until_held(THREADS);
        hold
    }

    /// The body of a holding task: say so, then wait for the latch.
    fn hold(&self) {
        self.started.fetch_add(1, Ordering::SeqCst);
        let mut open = self.open.lock().unwrap();
        while !*open {
            open = self.cv.wait(open).unwrap();
        }
    }

    /// Waits until `n` holding tasks have started, and until each has
    /// blocked (it holds the lock until its wait releases it).
    fn until_held(&self, n: usize) {
        while self.started.load(Ordering::SeqCst) < n {
            thread::yield_now();
        }
        drop(self.open.lock().unwrap());
    }

    /// Opens the latch: the held tasks return.
    pub(crate) fn release(&self) {
        *self.open.lock().unwrap() = true;
        self.cv.notify_all();
    }
}

// ----- recording every round, for the summaries --------------------------------------------

/// Every round measured, in nanoseconds per unit, by benchmark id.
pub(crate) static SAMPLES: Mutex<BTreeMap<String, Vec<f64>>> = Mutex::new(BTreeMap::new());

/// The median of the rounds recorded under `key`, in nanoseconds.
pub(crate) fn median(key: &str) -> Option<f64> {
    let samples = SAMPLES.lock().unwrap();
    let mut s = samples.get(key)?.clone();
    s.sort_by(f64::total_cmp);
    Some(s[s.len() / 2])
}

/// Prints every recorded variant's median (ns per task), keys padded to
/// `width`.
pub(crate) fn print_medians(width: usize) {
    println!("\nmedian ns per task, every round measured:");
    for (key, s) in SAMPLES.lock().unwrap().iter() {
        let mut s = s.clone();
        s.sort_by(f64::total_cmp);
        println!(
            "  {key:<width$} {:>9.1}  ({} rounds)",
            s[s.len() / 2],
            s.len()
        );
    }
}

/// Prints `ours / theirs` of the medians recorded under those keys, with
/// the target it is judged by, the label padded to `width`.
pub(crate) fn print_ratio(width: usize, what: &str, ours: &str, theirs: &str, target: &str) {
    if let (Some(a), Some(b)) = (median(ours), median(theirs)) {
        println!(
            "  {what:<width$} {a:>8.1} / {b:>8.1} ns = {:>5.2}   target {target}",
            a / b
        );
    }
}

/// A criterion group that also records every round in [`SAMPLES`].
pub(crate) struct Group<'c> {
    inner: BenchmarkGroup<'c, WallTime>,
    name: &'static str,
}

impl<'c> Group<'c> {
    /// A group of rounds of `units` units each (tasks, or 1), each round long
    /// enough that one iteration per sample is plenty: 10 samples, 300 ms of
    /// warm-up, `measurement` of measuring, and `SamplingMode::Flat` if
    /// `flat` (criterion's default mode otherwise).
    pub(crate) fn new(
        c: &'c mut Criterion,
        name: &'static str,
        units: u64,
        measurement: Duration,
        flat: bool,
    ) -> Group<'c> {
        let mut inner = c.benchmark_group(name);
        inner
            .throughput(Throughput::Elements(units))
            .sample_size(10)
            .warm_up_time(Duration::from_millis(300))
            .measurement_time(measurement);
        if flat {
            inner.sampling_mode(SamplingMode::Flat);
        }
        Group { inner, name }
    }

    /// Registers `round` as `id`: it sets up untimed, and returns the timed
    /// part's duration for `units` units; every round is recorded in
    /// nanoseconds per unit.
    pub(crate) fn bench(&mut self, id: &str, units: u64, mut round: impl FnMut() -> Duration) {
        let key = format!("{}/{id}", self.name);
        self.inner.bench_function(id, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                let mut rounds = Vec::with_capacity(iters as usize);
                for _ in 0..iters {
                    let took = round();
                    total += took;
                    rounds.push(took.as_secs_f64() * 1e9 / units as f64);
                }
                SAMPLES
                    .lock()
                    .unwrap()
                    .entry(key.clone())
                    .or_default()
                    .extend(rounds);
                total
            })
        });
    }

    /// Ends the group.
    pub(crate) fn finish(self) {
        self.inner.finish();
    }
}

// ----- a counting allocator --------------------------------------------------------------

/// A global allocator that forwards everything to [`System`] and, while
/// counting is on ([`set_counting`]), keeps the live bytes and blocks
/// (allocated minus freed). Off, it costs one untaken branch per call.
/// Declare it in a binary with
/// `#[global_allocator] static ALLOCATOR: common::Counting = common::Counting;`.
pub(crate) struct Counting;

static COUNTING: AtomicBool = AtomicBool::new(false);
static LIVE_BYTES: AtomicIsize = AtomicIsize::new(0);
static LIVE_BLOCKS: AtomicIsize = AtomicIsize::new(0);

/// Switches counting on or off.
pub(crate) fn set_counting(on: bool) {
    COUNTING.store(on, Ordering::Relaxed);
}

/// Live bytes and blocks counted so far.
pub(crate) fn live() -> (isize, isize) {
    (
        LIVE_BYTES.load(Ordering::Relaxed),
        LIVE_BLOCKS.load(Ordering::Relaxed),
    )
}

fn count(bytes: isize, blocks: isize) {
    // ORDERING: Relaxed everywhere; the counters are read only while every
    // other thread is blocked, after synchronising with them through a lock,
    // and counting is switched by the thread that reads them.
    if COUNTING.load(Ordering::Relaxed) {
        LIVE_BYTES.fetch_add(bytes, Ordering::Relaxed);
        LIVE_BLOCKS.fetch_add(blocks, Ordering::Relaxed);
    }
}

// SAFETY: every method passes its arguments unchanged to `System` and
// returns what `System` returned, so `System`'s guarantees are ours; the
// bookkeeping around it only touches atomics and never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: our caller upholds `GlobalAlloc::alloc`'s contract.
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            count(layout.size() as isize, 1);
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: our caller upholds `GlobalAlloc::alloc_zeroed`'s contract.
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            count(layout.size() as isize, 1);
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: our caller upholds `GlobalAlloc::dealloc`'s contract: `ptr`
        // came from this allocator, that is from `System`, with `layout`.
        unsafe { System.dealloc(ptr, layout) };
        count(-(layout.size() as isize), -1);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: our caller upholds `GlobalAlloc::realloc`'s contract.
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            count(new_size as isize - layout.size() as isize, 0);
        }
        new
    }
}
