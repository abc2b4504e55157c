//! The memory part of the performance suite: bytes per queued task.
//!
//! A counting global allocator (`common::Counting`, a thin wrapper over
//! [`std::alloc::System`] that keeps the bytes and blocks allocated minus
//! freed, switched on for the whole run) measures what queueing 100k tasks
//! behind held workers costs: every worker is blocked in a task waiting on
//! a latch, so each task queued stays queued, and nothing else allocates or
//! frees meanwhile. The difference in live bytes before and after, divided
//! by the number of tasks, is the cost of a queued task: its boxed closure
//! (if the closure is not zero-sized) plus the pool's own overhead. The
//! table reports both, and the overhead beyond the closure, for:
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

mod common;

use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;

use common::{BareLoop, Hold, THREADS, Thunk, live, new_drainpool, new_rayon};

/// Tasks queued per measurement.
const N: usize = 100_000;

#[global_allocator]
static ALLOCATOR: common::Counting = common::Counting;

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
    let hold = Hold::start(spawn_hold);
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

fn main() {
    // Count every allocation from here on: each measurement is a difference
    // of live bytes and blocks.
    common::set_counting(true);
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
        let pool = new_drainpool();
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
        let pool = new_drainpool();
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
        let bare = BareLoop::new();
        let spawn = |f: Thunk| bare.send(f);
        let row = measure(what, closure, spawn, || {
            for i in 0..N {
                let job: Thunk = if closure == 0 {
                    Box::new(noop)
                } else {
                    Box::new(capture32(i))
                };
                bare.send(job);
            }
        });
        rows.push(row);
        drop(bare);
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
        let rayon = new_rayon();
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
