//! Timing metrics (issue 15, item 4): percentiles of queue wait and run
//! time match known distributions of sleeps, every way of submitting is
//! measured, a group sees only its own tasks, and the oldest queued task's
//! age grows while it waits.
//!
//! Sleeps here are what is measured, never synchronisation; the bounds
//! allow for a sleep that overshoots on a loaded machine (a sleep never
//! undershoots).

mod common;

use std::time::{Duration, Instant};

use common::{Gate, TestPool, WAIT, bounded_join};
use drainpool::{Percentiles, ThreadPool};

fn measuring(threads: usize) -> TestPool {
    TestPool::build(ThreadPool::builder().threads(threads).metrics(true))
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// `got` is `want`, or up to 20% and 15 ms more (a late wake-up), and
/// never less than 97% of it (a bucket's midpoint).
fn assert_near(what: &str, got: Duration, want: Duration) {
    let low = want.mul_f64(0.97);
    let high = want.mul_f64(1.2) + ms(15);
    assert!(
        low <= got && got <= high,
        "{what}: {got:?}, want {want:?} (in {low:?}..={high:?})"
    );
}

fn assert_distribution(what: &str, got: Percentiles, count: u64, p50: u64, p90: u64, max: u64) {
    assert_eq!(got.count, count, "{what}: count");
    assert_near(&format!("{what} p50"), got.p50, ms(p50));
    assert_near(&format!("{what} p90"), got.p90, ms(p90));
    // The maximum is one sample, the one a preempted thread spoils: only
    // bounded loosely from above.
    assert!(
        ms(max).mul_f64(0.97) <= got.max && got.max <= ms(max) + Duration::from_secs(1),
        "{what} max: {:?}, want {max} ms",
        got.max
    );
    assert!(got.p50 <= got.p90 && got.p90 <= got.p99 && got.p99 <= got.max);
}

#[test]
fn run_time_percentiles_match_a_known_distribution_of_sleeps() {
    // 50 tasks sleeping 2, 4, .., 100 ms, all running at once.
    let pool = measuring(50);
    for i in 1..=50u64 {
        pool.execute(move || std::thread::sleep(ms(2 * i))).unwrap();
    }
    assert!(pool.wait_idle(WAIT));
    let m = pool.metrics();
    assert_distribution("run time", m.run_time, 50, 50, 90, 100);
    assert_eq!(m.queue_wait.count, 50);
    assert_eq!(m.oldest_queued, None);
}

#[test]
fn queue_wait_percentiles_match_a_queue_behind_one_worker() {
    // One worker, ten tasks of 20 ms submitted at once: the k-th waits
    // for the k tasks before it, 0, 20, .., 180 ms.
    let pool = measuring(1);
    let handles: Vec<_> = (0..10)
        .map(|_| pool.submit(|| std::thread::sleep(ms(20))).unwrap())
        .collect();
    for handle in handles {
        bounded_join(handle).unwrap();
    }
    let m = pool.metrics();
    // Rank 5 of 10 is the fifth task (80 ms), rank 9 the ninth (160 ms).
    assert_distribution("queue wait", m.queue_wait, 10, 80, 160, 180);
    assert_distribution("run time", m.run_time, 10, 20, 20, 20);
}

#[test]
fn every_way_of_submitting_is_measured() {
    let pool = measuring(2);
    pool.execute(|| ()).unwrap();
    pool.task().name("named").execute(|| ()).unwrap();
    bounded_join(pool.submit(|| ()).unwrap()).unwrap();
    bounded_join(pool.task().start_within(WAIT).submit(|| ()).unwrap()).unwrap();
    pool.execute_batch((0..300).map(|_| || ())).unwrap();
    for handle in pool.submit_batch((0..10).map(|_| || ())).unwrap() {
        bounded_join(handle).unwrap();
    }
    let job = pool.group("job");
    job.execute(|| ()).unwrap();
    bounded_join(job.submit(|| ()).unwrap()).unwrap();
    pool.scope(|s| {
        for _ in 0..5 {
            s.spawn(|| ());
        }
    });
    let panicked = pool.submit(|| panic!("measured all the same")).unwrap();
    assert!(bounded_join(panicked).unwrap_err().is_panic());
    assert!(pool.wait_idle(WAIT));
    let m = pool.metrics();
    let total = 4 + 300 + 10 + 2 + 5 + 1;
    assert_eq!((m.queue_wait.count, m.run_time.count), (total, total));
    let g = job.metrics();
    assert_eq!((g.queue_wait.count, g.run_time.count), (2, 2));
}

#[test]
fn a_groups_metrics_are_its_own_tasks_only() {
    let pool = measuring(2);
    let slow = pool.group("slow");
    let fast = pool.group("fast");
    for _ in 0..4 {
        slow.execute(|| std::thread::sleep(ms(30))).unwrap();
        fast.execute(|| ()).unwrap();
    }
    assert!(slow.wait(WAIT) && fast.wait(WAIT));
    let (s, f) = (slow.metrics().run_time, fast.metrics().run_time);
    assert_eq!((s.count, f.count), (4, 4));
    assert_near("slow group p50", s.p50, ms(30));
    assert!(f.max < ms(30), "fast group: {f:?}");
    assert_eq!(pool.metrics().run_time.count, 8);
}

#[test]
fn the_oldest_queued_tasks_age_grows_while_it_waits_and_is_none_once_it_ran() {
    let pool = measuring(1);
    let first = Instant::now();
    let gate = Gate::occupying(&pool, 1);
    let submitted = Instant::now();
    pool.execute(|| ()).unwrap();
    while submitted.elapsed() < ms(40) {
        std::thread::yield_now();
    }
    let age = pool.metrics().oldest_queued.expect("a task is queued");
    // At least the 40 ms it waited; an estimate from above, by at most the
    // time between its submission and the one before (the gate's task,
    // the newest that started).
    let (at_most, at_least) = (first.elapsed(), ms(40));
    assert!(
        at_least <= age && age <= at_most,
        "{age:?}, want {at_least:?}..={at_most:?}"
    );
    gate.release();
    assert!(pool.wait_idle(WAIT));
    assert_eq!(pool.metrics().oldest_queued, None);
}

#[test]
fn a_pool_built_without_metrics_reports_nothing() {
    let pool = TestPool::new(1);
    bounded_join(pool.submit(|| ()).unwrap()).unwrap();
    assert_eq!(pool.metrics(), drainpool::PoolMetrics::default());
    assert_eq!(pool.group("g").metrics(), drainpool::PoolMetrics::default());
}

#[test]
fn a_task_run_by_its_holder_after_shutdown_now_is_not_measured() {
    let pool = measuring(1);
    let gate = Gate::occupying(&pool, 1);
    let handle = pool.submit(|| 7).unwrap();
    let back = pool.shutdown_now();
    gate.release();
    assert!(pool.await_termination(WAIT));
    for task in back {
        task.run();
    }
    assert_eq!(bounded_join(handle).unwrap(), 7);
    // The gate's task alone.
    assert_eq!(pool.metrics().run_time.count, 1);
}
