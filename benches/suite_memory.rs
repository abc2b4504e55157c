//! The memory part of the performance suite: bytes per queued task.
//!
//! A counting global allocator (a thin wrapper over [`System`] that keeps
//! the bytes and blocks allocated minus freed) measures what queueing
//! 100k tasks behind held workers costs: every worker is blocked in a task
//! waiting on a latch, so each task queued stays queued, and nothing else
//! allocates or frees meanwhile. The difference in live bytes before and
//! after, divided by the number of tasks, is the cost of a queued task: its
//! boxed closure (if the closure is not zero-sized) plus the pool's own
//! overhead. The table reports both, and the overhead beyond the closure,
//! for:
//!
//! - drainpool `execute` and `execute_batch`, with a capture-free closure
//!   and with one capturing 32 bytes;
//! - drainpool `submit` (the task's shared cell; the caller's `TaskHandle`
//!   values are kept in a `Vec` allocated before the measurement, so they
//!   are not counted: a handle is `size_of::<TaskHandle<()>>()` bytes
//!   wherever the caller keeps it);
//! - the bare crossbeam channel of boxed closures (the floor), `threadpool`
//!   and rayon `spawn`.
//!
//! Sizes are the sizes requested from the allocator; the allocator's own
//! per-block overhead comes on top. The target: at most 64 bytes of
//! pool overhead per queued task beyond the closure.
//!
//! Run with `cargo bench --bench suite_memory` (a second or two). It is a
//! plain program, not a criterion benchmark: nothing is timed.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicIsize, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;

/// Worker threads in every pool.
const THREADS: usize = 2;
/// Tasks queued per measurement.
const N: usize = 100_000;

/// Counts live bytes and blocks; forwards everything to [`System`].
struct Counting;

static LIVE_BYTES: AtomicIsize = AtomicIsize::new(0);
static LIVE_BLOCKS: AtomicIsize = AtomicIsize::new(0);

fn count(bytes: isize, blocks: isize) {
    // ORDERING: Relaxed; the counters are read only while every other
    // thread is blocked, after synchronising with them through a lock.
    LIVE_BYTES.fetch_add(bytes, Ordering::Relaxed);
    LIVE_BLOCKS.fetch_add(blocks, Ordering::Relaxed);
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

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Live bytes and blocks now.
fn live() -> (isize, isize) {
    (
        LIVE_BYTES.load(Ordering::Relaxed),
        LIVE_BLOCKS.load(Ordering::Relaxed),
    )
}

/// A latch that holds the workers until it is opened.
#[derive(Default)]
struct Hold {
    started: AtomicUsize,
    open: Mutex<bool>,
    cv: Condvar,
}

impl Hold {
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

    fn release(&self) {
        *self.open.lock().unwrap() = true;
        self.cv.notify_all();
    }
}

/// One row of the table.
struct Row {
    what: &'static str,
    closure: usize,
    bytes: f64,
    blocks: f64,
}

/// Holds the workers with `spawn_hold`, measures `queue` (which queues `N`
/// tasks), then releases the workers and waits until the tasks have run.
fn measure(
    what: &'static str,
    closure: usize,
    spawn_hold: impl Fn(Thunk),
    queue: impl FnOnce(),
) -> Row {
    let hold = Arc::new(Hold::default());
    for _ in 0..THREADS {
        let hold = hold.clone();
        spawn_hold(Box::new(move || hold.hold()));
    }
    hold.until_held(THREADS);
    RAN.store(0, Ordering::Relaxed);
    let (bytes0, blocks0) = live();
    queue();
    let (bytes1, blocks1) = live();
    hold.release();
    while RAN.load(Ordering::Relaxed) < N {
        thread::yield_now();
    }
    Row {
        what,
        closure,
        bytes: (bytes1 - bytes0) as f64 / N as f64,
        blocks: (blocks1 - blocks0) as f64 / N as f64,
    }
}

/// Queued tasks that have run, so that a measurement ends only once its
/// pool's tasks are gone (rayon's and threadpool's drops do not wait).
static RAN: AtomicUsize = AtomicUsize::new(0);

/// A capture-free task.
fn noop() {
    RAN.fetch_add(1, Ordering::Relaxed);
}

/// A task capturing 32 bytes.
fn capture32(i: usize) -> impl FnOnce() + Send + 'static {
    let data = [i as u64; 4];
    move || {
        black_box(data);
        noop();
    }
}

type Thunk = Box<dyn FnOnce() + Send>;

fn main() {
    let mut rows = Vec::new();
    let c32 = size_of_val(&capture32(0));
    assert_eq!(c32, 32);

    // drainpool
    for (what, closure, batch) in [
        ("drainpool execute, capture-free", 0, false),
        ("drainpool execute, 32-byte capture", c32, false),
        ("drainpool execute_batch, capture-free", 0, true),
        ("drainpool execute_batch, 32-byte capture", c32, true),
    ] {
        let pool = drainpool::ThreadPool::new(THREADS).expect("drainpool");
        let spawn = |f: Thunk| pool.execute(f).expect("running pool accepts");
        let row = measure(what, closure, spawn, || match (closure, batch) {
            (0, false) => (0..N).for_each(|_| pool.execute(noop).expect("accepted")),
            (0, true) => pool.execute_batch((0..N).map(|_| noop)).expect("accepted"),
            (_, false) => (0..N).for_each(|i| pool.execute(capture32(i)).expect("accepted")),
            (_, true) => pool.execute_batch((0..N).map(capture32)).expect("accepted"),
        });
        rows.push(row);
        drop(pool);
    }
    for (what, closure) in [
        ("drainpool submit, capture-free", 0),
        ("drainpool submit, 32-byte capture", c32),
    ] {
        let pool = drainpool::ThreadPool::new(THREADS).expect("drainpool");
        let spawn = |f: Thunk| pool.execute(f).expect("running pool accepts");
        let mut handles = Vec::with_capacity(N);
        let row = measure(what, closure, spawn, || {
            for i in 0..N {
                let handle = if closure == 0 {
                    pool.submit(noop).expect("accepted")
                } else {
                    pool.submit(capture32(i)).expect("accepted")
                };
                handles.push(handle);
            }
        });
        rows.push(row);
        for h in handles {
            h.join().expect("ran");
        }
        drop(pool);
    }

    // The floor: a bare crossbeam channel of boxed closures.
    for (what, closure) in [
        ("bare channel, capture-free", 0),
        ("bare channel, 32-byte capture", c32),
    ] {
        let (tx, rx) = crossbeam_channel::unbounded::<Thunk>();
        let workers: Vec<_> = (0..THREADS)
            .map(|_| {
                let rx = rx.clone();
                thread::spawn(move || rx.iter().for_each(|job| job()))
            })
            .collect();
        let spawn = |f: Thunk| tx.send(f).expect("workers alive");
        let row = measure(what, closure, spawn, || {
            for i in 0..N {
                let job: Thunk = if closure == 0 {
                    Box::new(noop)
                } else {
                    Box::new(capture32(i))
                };
                tx.send(job).expect("workers alive");
            }
        });
        rows.push(row);
        drop(tx);
        workers.into_iter().for_each(|w| w.join().unwrap());
    }

    // threadpool and rayon
    for (what, closure) in [
        ("threadpool execute, capture-free", 0),
        ("threadpool execute, 32-byte capture", c32),
    ] {
        let tp = threadpool::ThreadPool::new(THREADS);
        let row = measure(
            what,
            closure,
            |f| tp.execute(f),
            || {
                for i in 0..N {
                    if closure == 0 {
                        tp.execute(noop);
                    } else {
                        tp.execute(capture32(i));
                    }
                }
            },
        );
        rows.push(row);
        tp.join();
    }
    for (what, closure) in [
        ("rayon spawn, capture-free", 0),
        ("rayon spawn, 32-byte capture", c32),
    ] {
        let rayon = rayon::ThreadPoolBuilder::new()
            .num_threads(THREADS)
            .build()
            .expect("rayon");
        let row = measure(
            what,
            closure,
            |f| rayon.spawn(f),
            || {
                for i in 0..N {
                    if closure == 0 {
                        rayon.spawn(noop);
                    } else {
                        rayon.spawn(capture32(i));
                    }
                }
            },
        );
        rows.push(row);
        drop(rayon);
    }

    println!(
        "\nbytes per queued task ({N} tasks queued behind {THREADS} held workers; sizes as \
         requested from the allocator)\n"
    );
    println!(
        "| queued task | closure bytes | bytes per task | allocations per task | overhead \
         beyond the closure |"
    );
    println!("|---|---|---|---|---|");
    for r in &rows {
        println!(
            "| {} | {} | {:.1} | {:.2} | {:.1} |",
            r.what,
            r.closure,
            r.bytes,
            r.blocks,
            r.bytes - r.closure as f64
        );
    }
    println!(
        "\nA submitted task's `TaskHandle<()>` is another {} bytes wherever the caller keeps it \
         (not counted above). Target: pool overhead <= 64 bytes per queued task beyond the \
         closure.",
        size_of::<drainpool::TaskHandle<()>>()
    );
}
