//! Throughput of fire-and-forget tasks: 100k tiny tasks run to completion on
//! 2 worker threads, on drainpool and, side by side, on `threadpool`, rayon
//! (`ThreadPool::spawn`) and a bare crossbeam-channel worker loop (the floor:
//! one boxed closure per task through one channel, no bookkeeping at all).
//!
//! Every task bumps a static counter and, if it is the last one, opens a
//! static latch; its body allocates nothing. Two shapes of closure are
//! measured: capture-free (the zero-sized `tick` fn item) and one capturing
//! an `Arc` clone (what real tasks look like: they carry their inputs). What
//! is measured is each pool's own cost per task (boxing, queueing, waking,
//! bookkeeping), plus the time to notice the end.
//!
//! How the end is awaited, and why that is fair:
//!
//! - The `latch` and `arc_capture` variants all wait the same way: the task
//!   that brings the counter to N opens a `Mutex<bool>` + `Condvar` latch the
//!   benchmark thread sleeps on. The benchmark thread does not spin, so on a
//!   2-core machine it does not steal a core from the 2 workers while it
//!   waits, and every pool pays exactly one wake-up per iteration. This is
//!   the like-for-like comparison.
//! - The `native` variants use each pool's own "wait until done" call:
//!   drainpool's `wait_idle(Duration::MAX)` and threadpool's `join()`. rayon
//!   has no such call for `spawn`ed work, and the bare loop has none at all.
//!
//! Pools are built once, outside the timed loop. Run with
//! `cargo bench --bench spawn`; it takes a little over a minute.

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{BareLoop, COUNTER, THREADS, new_drainpool, new_rayon, reset, wait_latch};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

/// Tasks per iteration.
const N: u64 = 100_000;

/// The task body: count, and open the latch when the count reaches `N`.
/// (Not `common::tick`: the target here is a constant, as it always was in
/// this bench, so the task loads no round target.)
#[inline]
fn tick() {
    // ORDERING: only the task that sees N - 1 opens the latch; the latch's
    // mutex orders everything before it with the waiter.
    if COUNTER.fetch_add(1, Ordering::Relaxed) == N - 1 {
        common::open_latch();
    }
}

/// One timed round: reset, submit `N` tasks with `submit`, wait on the latch.
fn latch_round(submit: impl Fn()) {
    reset(N);
    for _ in 0..N {
        submit();
    }
    wait_latch();
}

fn spawn(c: &mut Criterion) {
    let drain = new_drainpool();
    let tp = threadpool::ThreadPool::new(THREADS);
    let rayon = new_rayon();
    let bare = BareLoop::new();

    let mut group = c.benchmark_group("spawn_100k");
    group
        .throughput(Throughput::Elements(N))
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));

    // Capture-free: the closure is the zero-sized `tick` fn item. Note that
    // `Box<dyn FnOnce()>` of a zero-sized closure does not allocate, so
    // threadpool and the bare loop queue it with no allocation at all, while
    // drainpool boxes it together with the task's id and name (one
    // allocation) and rayon boxes it into a heap job (one allocation).
    group.bench_function("drainpool/latch", |b| {
        b.iter(|| latch_round(|| drain.execute(tick).expect("running pool accepts")))
    });
    group.bench_function("threadpool/latch", |b| {
        b.iter(|| latch_round(|| tp.execute(tick)))
    });
    group.bench_function("rayon/latch", |b| {
        b.iter(|| latch_round(|| rayon.spawn(tick)))
    });
    group.bench_function("bare_crossbeam/latch", |b| {
        b.iter(|| latch_round(|| bare.execute(tick)))
    });

    // Each pool's own "until everything ran" wait (rayon and the bare loop
    // have none for fire-and-forget work).
    group.bench_function("drainpool/native_wait_idle", |b| {
        b.iter(|| {
            reset(N);
            for _ in 0..N {
                drain.execute(tick).expect("running pool accepts");
            }
            assert!(drain.wait_idle(Duration::MAX));
            assert_eq!(COUNTER.load(Ordering::Relaxed), N);
        })
    });
    group.bench_function("threadpool/native_join", |b| {
        b.iter(|| {
            reset(N);
            for _ in 0..N {
                tp.execute(tick);
            }
            tp.join();
            assert_eq!(COUNTER.load(Ordering::Relaxed), N);
        })
    });

    // Each task captures an `Arc` clone, as real tasks capture their inputs:
    // the closure is no longer zero-sized, so every pool (and the bare loop)
    // allocates once per task, and the refcount moves between threads.
    let shared = Arc::new(());
    let with_arc = || common::with_arc(&shared, tick);
    group.bench_function("drainpool/arc_capture", |b| {
        b.iter(|| latch_round(|| drain.execute(with_arc()).expect("running pool accepts")))
    });
    group.bench_function("threadpool/arc_capture", |b| {
        b.iter(|| latch_round(|| tp.execute(with_arc())))
    });
    group.bench_function("rayon/arc_capture", |b| {
        b.iter(|| latch_round(|| rayon.spawn(with_arc())))
    });
    group.bench_function("bare_crossbeam/arc_capture", |b| {
        b.iter(|| latch_round(|| bare.execute(with_arc())))
    });

    group.finish();

    drain.shutdown();
    assert!(drain.await_termination(Duration::from_secs(60)));
}

criterion_group!(benches, spawn);
criterion_main!(benches);
