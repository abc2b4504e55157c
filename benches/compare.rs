//! Prints one markdown table comparing drainpool with its peers, ready to
//! paste into the README: every scenario of the performance suite that has
//! a target, measured side by side in one run on 2 worker threads.
//!
//! ```text
//! cargo bench --bench compare
//! ```
//!
//! It takes 20 to 40 seconds. Each timed scenario is run `ROUNDS` times,
//! the variants of a round one after another (so a burst of noise from
//! other jobs hits all of them alike). The table gives each variant's
//! median round and the ratio of the medians, and beside it the ratio of
//! the best rounds: on a shared machine the best round is the one least
//! disturbed, and the two together show how much noise there was.
//! The criterion benchmarks (`cargo bench --bench suite`, `suite_lifecycle`,
//! `suite_memory`) measure the same things with medians and more rounds.
//!
//! The scenarios, with one producer thread:
//!
//! - spawn-to-completion: N tiny tasks `execute`d and run to the end; each
//!   bumps a static counter and the N-th opens a latch the producer sleeps
//!   on. Capture-free (a zero-sized fn item: the pool's own cost) and
//!   capturing an `Arc` clone. Peers: a bare crossbeam-channel worker loop
//!   (the floor), `threadpool::execute`, rayon `ThreadPool::spawn`.
//! - batch intake: the same round as one `execute_batch` call.
//! - timing metrics: the capture-free round, and a round of 100k tasks of
//!   about a microsecond, on a pool built with `Builder::metrics(true)`,
//!   vs the same without.
//! - submit-and-join: 100k tasks with results joined by the producer, vs
//!   rayon `ThreadPool::scope` with spawns writing into slots.
//! - fan-out: one task submits 100k children and joins them, vs
//!   `rayon::scope` inside `install`.
//! - scope: `pool.scope` with 100k spawns, each writing one slot of a
//!   borrowed slice, called from the producer (outside the pool) and from
//!   inside a task (its worker helps), vs `rayon::scope` inside `install`
//!   doing the same (the target's peer); and the call from outside vs
//!   rayon's own call from outside its pool, `in_place_scope`, whose
//!   caller waits as ours does (no target). `benches/scope.rs` measures
//!   them with criterion.
//! - `shutdown_now` with 1M tasks queued behind held workers, per returned
//!   task, vs draining a channel of 1M boxed closures into a `Vec`.
//! - many producers: the capture-free spawn round and submit-and-join with
//!   2 and 4 producer threads, each submitting its share (rayon: one
//!   `scope` per producer), against the same peers.
//! - round trip: 10k requests one at a time (a task that answers through a
//!   channel, waited for before the next), vs the bare loop: what a
//!   worker's pause before it looks again would cost a request.
//! - idle `shutdown` + `await_termination`, vs a bare loop's drop-and-join.
//! - drop of a 2-, 4- and 8-worker pool whose exit hooks sleep 200 ms, vs
//!   one hook's time (the hooks run at once on every worker).
//! - `ThreadPool::new(2)` + drop, vs spawning and joining 2 threads.
//! - memory: bytes per queued task, with a counting global allocator that is
//!   switched on only while 100k tasks are queued behind held workers (so
//!   it costs the timed scenarios one untaken branch per allocation).

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{
    BareLoop, Hold, THREADS, Thunk, drain_scope_slots, drain_scope_slots_inside,
    drain_submit_batch_join, drain_submit_join, new_drainpool, new_rayon, parked_drainpool,
    rayon_in_place_scope_slots, rayon_scope_slots, spawn_round, tick, timed_sum,
};

/// The many-producer spawn rounds: producers, and the keys of drainpool's,
/// the bare loop's and `threadpool`'s rounds.
const MANY_SPAWN: [(u64, &str, &str, &str); 2] = [
    (
        2,
        "spawn 1M x2/drainpool",
        "spawn 1M x2/bare",
        "spawn 1M x2/threadpool",
    ),
    (
        4,
        "spawn 1M x4/drainpool",
        "spawn 1M x4/bare",
        "spawn 1M x4/threadpool",
    ),
];
/// The many-producer submit-and-join rounds: producers, and the keys of
/// drainpool's and rayon's rounds.
const MANY_JOIN: [(u64, &str, &str); 2] = [
    (2, "submit join x2/drainpool", "submit join x2/rayon scope"),
    (4, "submit join x4/drainpool", "submit join x4/rayon scope"),
];

/// Rounds per timed scenario.
const ROUNDS: usize = 15;
/// Repetitions per round of the scenarios that take microseconds.
const SHORT_REPS: usize = 20;
/// Tasks in the big spawn-to-completion and `shutdown_now` rounds.
const BIG: u64 = 1_000_000;
/// Tasks in the small spawn-to-completion round.
const SMALL: u64 = 10_000;
/// Tasks in submit-and-join, fan-out, scope and the memory measurement.
const MID: u64 = 100_000;
/// Requests in the one-at-a-time round trip.
const PINGS: u64 = 10_000;

/// Counts only while memory is measured (`common::set_counting`), so it
/// costs the timed scenarios one untaken branch per allocation.
#[global_allocator]
static ALLOCATOR: common::Counting = common::Counting;

/// Every round's time, by variant.
#[derive(Default)]
struct Rounds(BTreeMap<&'static str, Vec<Duration>>);

impl Rounds {
    fn record(&mut self, key: &'static str, took: Duration) {
        self.0.entry(key).or_default().push(took);
    }

    fn sorted(&self, key: &str) -> Vec<Duration> {
        let mut all = self.0[key].clone();
        all.sort();
        all
    }

    /// Nanoseconds per unit of the median round.
    fn per(&self, key: &str, units: u64) -> f64 {
        let all = self.sorted(key);
        all[all.len() / 2].as_secs_f64() * 1e9 / units as f64
    }

    /// Nanoseconds per unit of the best round.
    fn best(&self, key: &str, units: u64) -> f64 {
        self.sorted(key)[0].as_secs_f64() * 1e9 / units as f64
    }
}

fn noop() {}

/// One round of every timed scenario.
/// About a microsecond of work that the optimiser cannot remove.
fn work_1us() {
    let mut acc = 0u64;
    for i in 0..1000u64 {
        acc = std::hint::black_box(acc.wrapping_mul(31).wrapping_add(i));
    }
    std::hint::black_box(acc);
}

/// `PINGS` requests one at a time: `send` queues a task that answers
/// through the sender it is given, and the answer is waited for before the
/// next request.
fn round_trips(send: impl Fn(crossbeam_channel::Sender<()>)) -> Duration {
    let (answer, answers) = crossbeam_channel::bounded::<()>(1);
    let start = Instant::now();
    for _ in 0..PINGS {
        send(answer.clone());
        answers.recv().expect("answered");
    }
    start.elapsed()
}

fn round(
    rounds: &mut Rounds,
    drain: &Arc<drainpool::ThreadPool>,
    measured: &drainpool::ThreadPool,
    rayon: &rayon::ThreadPool,
) {
    let tp = threadpool::ThreadPool::new(THREADS);
    let bare = BareLoop::new();
    let shared = Arc::new(());
    let with_arc = || common::with_arc(&shared, tick);

    for (n, drain_key, bare_key) in [
        (BIG, "spawn 1M/drainpool", "spawn 1M/bare"),
        (SMALL, "spawn 10k/drainpool", "spawn 10k/bare"),
    ] {
        let took = spawn_round(n, || {
            (0..n).for_each(|_| drain.execute(tick).expect("accepted"))
        });
        rounds.record(drain_key, took);
        let took = spawn_round(n, || (0..n).for_each(|_| bare.execute(tick)));
        rounds.record(bare_key, took);
    }
    let took = spawn_round(BIG, || {
        drain
            .execute_batch((0..BIG).map(|_| tick))
            .expect("accepted")
    });
    rounds.record("spawn 1M/drainpool batch", took);
    // The cost of timing metrics (`Builder::metrics`): tiny tasks, and
    // tasks of about a microsecond, on a pool that measures and one that
    // does not.
    let took = spawn_round(BIG, || {
        (0..BIG).for_each(|_| measured.execute(tick).expect("accepted"))
    });
    rounds.record("spawn 1M/drainpool metrics", took);
    for (pool, key) in [
        (&**drain, "spawn 100k 1us/drainpool"),
        (measured, "spawn 100k 1us/drainpool metrics"),
    ] {
        let took = spawn_round(MID, || {
            (0..MID).for_each(|_| {
                pool.execute(|| {
                    work_1us();
                    tick();
                })
                .expect("accepted")
            })
        });
        rounds.record(key, took);
    }
    let took = spawn_round(BIG, || (0..BIG).for_each(|_| tp.execute(tick)));
    rounds.record("spawn 1M/threadpool", took);
    let took = spawn_round(BIG, || (0..BIG).for_each(|_| rayon.spawn(tick)));
    rounds.record("spawn 1M/rayon", took);
    let took = spawn_round(BIG, || {
        (0..BIG).for_each(|_| drain.execute(with_arc()).expect("accepted"))
    });
    rounds.record("spawn arc 1M/drainpool", took);
    let took = spawn_round(BIG, || (0..BIG).for_each(|_| bare.execute(with_arc())));
    rounds.record("spawn arc 1M/bare", took);

    // The same with 2 and 4 producers, each submitting its share.
    for (producers, drain_key, bare_key, tp_key) in MANY_SPAWN {
        let took = spawn_round(BIG, || {
            from_producers(producers, BIG, || drain.execute(tick).expect("accepted"))
        });
        rounds.record(drain_key, took);
        let took = spawn_round(BIG, || {
            from_producers(producers, BIG, || bare.execute(tick))
        });
        rounds.record(bare_key, took);
        let took = spawn_round(BIG, || from_producers(producers, BIG, || tp.execute(tick)));
        rounds.record(tp_key, took);
    }
    for (producers, drain_key, rayon_key) in MANY_JOIN {
        let took = timed_sum(MID, || {
            joined_from_producers(producers, MID, |n| drain_submit_join(drain, n))
        });
        rounds.record(drain_key, took);
        let took = timed_sum(MID, || {
            joined_from_producers(producers, MID, |n| rayon.install(|| rayon_scope_slots(n)))
        });
        rounds.record(rayon_key, took);
    }

    let took = timed_sum(MID, || drain_submit_join(drain, MID));
    rounds.record("submit join/drainpool", took);
    let took = timed_sum(MID, || drain_submit_batch_join(drain, MID));
    rounds.record("submit join/drainpool batch", took);
    let took = timed_sum(MID, || rayon.install(|| rayon_scope_slots(MID)));
    rounds.record("submit join/rayon scope", took);

    let inner = drain.clone();
    let took = timed_sum(MID, || {
        let parent = drain.submit(move || drain_submit_join(&inner, MID));
        parent.expect("accepted").join().expect("ran")
    });
    rounds.record("fan out/drainpool", took);
    let took = timed_sum(MID, || rayon.install(|| rayon_scope_slots(MID)));
    rounds.record("fan out/rayon", took);

    // A scope filling a borrowed slice; its own rayon round, side by side.
    let took = timed_sum(MID, || drain_scope_slots(drain, MID));
    rounds.record("scope/drainpool outside", took);
    let took = timed_sum(MID, || drain_scope_slots_inside(drain, MID));
    rounds.record("scope/drainpool inside", took);
    let took = timed_sum(MID, || rayon.install(|| rayon_scope_slots(MID)));
    rounds.record("scope/rayon", took);
    let took = timed_sum(MID, || rayon_in_place_scope_slots(rayon, MID));
    rounds.record("scope/rayon in place", took);

    // One request at a time (where a worker's wait before it looks again
    // would show as latency).
    let took = round_trips(|answer| {
        drain
            .execute(move || answer.send(()).expect("the producer waits"))
            .expect("accepted")
    });
    rounds.record("ping/drainpool", took);
    let took =
        round_trips(|answer| bare.execute(move || answer.send(()).expect("the producer waits")));
    rounds.record("ping/bare", took);

    // shutdown_now with BIG tasks queued behind held workers.
    {
        let pool = new_drainpool();
        let hold = Hold::start(|f| pool.execute(f).expect("accepted"));
        (0..BIG).for_each(|_| pool.execute(noop).expect("accepted"));
        let start = Instant::now();
        let pending = pool.shutdown_now();
        rounds.record("shutdown_now/drainpool", start.elapsed());
        assert_eq!(pending.len() as u64, BIG);
        drop(pending);
        hold.release();
        drop(pool);

        let (tx, rx) = crossbeam_channel::unbounded::<Thunk>();
        (0..BIG).for_each(|_| tx.send(Box::new(noop)).expect("receiver alive"));
        let start = Instant::now();
        let drained: Vec<Thunk> = rx.try_iter().collect();
        rounds.record("shutdown_now/bare drain", start.elapsed());
        assert_eq!(drained.len() as u64, BIG);
    }

    for _ in 0..SHORT_REPS {
        let pool = parked_drainpool();
        let start = Instant::now();
        pool.shutdown();
        assert!(pool.await_termination(Duration::from_secs(10)));
        rounds.record("idle shutdown/drainpool", start.elapsed());
        drop(pool);

        let idle = BareLoop::new();
        let all = Arc::new(Barrier::new(THREADS + 1));
        for _ in 0..THREADS {
            let all = all.clone();
            idle.execute(move || {
                all.wait();
            });
        }
        all.wait();
        thread::sleep(Duration::from_millis(1));
        let start = Instant::now();
        drop(idle); // drops the sender and joins the workers
        rounds.record("idle shutdown/bare", start.elapsed());

        let start = Instant::now();
        drop(new_drainpool());
        rounds.record("new/drainpool", start.elapsed());
        let start = Instant::now();
        drop(BareLoop::new());
        rounds.record("new/bare", start.elapsed());
        let start = Instant::now();
        drop(new_rayon());
        rounds.record("new/rayon", start.elapsed());
    }

    drop(bare);
    tp.join();
}

/// Runs `submit_one` `n` times in all, from `producers` threads at once.
fn from_producers(producers: u64, n: u64, submit_one: impl Fn() + Sync) {
    thread::scope(|s| {
        for _ in 0..producers {
            s.spawn(|| (0..n / producers).for_each(|_| submit_one()));
        }
    });
}

/// Runs `round(n / producers)` on `producers` threads at once, each
/// summing `0 + 2 + ... + 2(k-1)` for its share `k`, and gives the sum
/// that one round of `n` would (so `timed_sum` checks it).
fn joined_from_producers(producers: u64, n: u64, round: impl Fn(u64) -> u64 + Sync) -> u64 {
    let share = n / producers;
    let sums: Vec<u64> = thread::scope(|s| {
        let all: Vec<_> = (0..producers).map(|_| s.spawn(|| round(share))).collect();
        all.into_iter()
            .map(|h| h.join().expect("producer"))
            .collect()
    });
    for sum in sums {
        assert_eq!(sum, share * (share - 1));
    }
    n * (n - 1)
}

/// Drops a pool of `threads` workers whose exit hooks each sleep
/// `HOOK`, timed from the drop to its return.
fn drop_with_slow_exit_hooks(threads: usize) -> Duration {
    let pool = drainpool::ThreadPool::builder()
        .threads(threads)
        .on_thread_exit(|_| thread::sleep(HOOK))
        .build()
        .expect("drainpool");
    (0..1000).for_each(|_| pool.execute(noop).expect("accepted"));
    let start = Instant::now();
    drop(pool);
    start.elapsed()
}

/// What each exit hook takes in `drop_with_slow_exit_hooks`.
const HOOK: Duration = Duration::from_millis(200);

// ----- memory ---------------------------------------------------------------------------

/// Live bytes added per task by `queue`, which queues `MID` tasks while
/// the workers are held by `hold`.
fn bytes_per_task(hold: Arc<Hold>, queue: impl FnOnce()) -> f64 {
    let (bytes0, _) = common::live();
    common::set_counting(true);
    queue();
    common::set_counting(false);
    let (bytes1, _) = common::live();
    hold.release();
    (bytes1 - bytes0) as f64 / MID as f64
}

/// A task capturing one word.
fn capture8(i: u64) -> impl FnOnce() + Send + 'static {
    move || {
        std::hint::black_box(i);
    }
}

/// A task capturing 32 bytes.
fn capture32(i: u64) -> impl FnOnce() + Send + 'static {
    let data = [i; 4];
    move || {
        std::hint::black_box(data);
    }
}

struct Memory {
    execute: f64,
    execute8: f64,
    execute32: f64,
    submit: f64,
    bare: f64,
    bare8: f64,
    bare32: f64,
}

fn memory() -> Memory {
    let pool = new_drainpool();
    let hold = Hold::start(|f| pool.execute(f).expect("accepted"));
    let execute = bytes_per_task(hold, || {
        (0..MID).for_each(|_| pool.execute(noop).expect("accepted"))
    });
    let hold = Hold::start(|f| pool.execute(f).expect("accepted"));
    let execute8 = bytes_per_task(hold, || {
        (0..MID).for_each(|i| pool.execute(capture8(i)).expect("accepted"))
    });
    let hold = Hold::start(|f| pool.execute(f).expect("accepted"));
    let execute32 = bytes_per_task(hold, || {
        (0..MID).for_each(|i| pool.execute(capture32(i)).expect("accepted"))
    });
    let hold = Hold::start(|f| pool.execute(f).expect("accepted"));
    let mut handles = Vec::with_capacity(MID as usize);
    let submit = bytes_per_task(hold, || {
        (0..MID).for_each(|_| handles.push(pool.submit(noop).expect("accepted")))
    });
    handles.into_iter().for_each(|h| h.join().expect("ran"));
    drop(pool);

    let bare = BareLoop::new();
    let hold = Hold::start(|f| bare.send(f));
    let bare0 = bytes_per_task(hold, || (0..MID).for_each(|_| bare.execute(noop)));
    let hold = Hold::start(|f| bare.send(f));
    let bare8 = bytes_per_task(hold, || (0..MID).for_each(|i| bare.execute(capture8(i))));
    let hold = Hold::start(|f| bare.send(f));
    let bare32 = bytes_per_task(hold, || (0..MID).for_each(|i| bare.execute(capture32(i))));
    drop(bare);
    Memory {
        execute,
        execute8,
        execute32: execute32 - 32.0,
        submit,
        bare: bare0,
        bare8,
        bare32: bare32 - 32.0,
    }
}

// ----- the table --------------------------------------------------------------------------

/// Today's date (UTC) as `YYYY-MM-DD`.
fn today() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    // Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
    let z = (secs / 86_400) as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

/// The CPU model, if `/proc/cpuinfo` tells.
fn cpu_model() -> Option<String> {
    let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("model name"))?;
    Some(line.split_once(':')?.1.trim().to_owned())
}

fn ns(v: f64) -> String {
    format!("{v:.0} ns")
}

fn us(v: f64) -> String {
    format!("{:.0} µs", v / 1e3)
}

fn main() {
    let started = Instant::now();
    // First, while no other pool's threads are about.
    let mem = memory();
    let drain = Arc::new(new_drainpool());
    let measured = drainpool::ThreadPool::builder()
        .threads(common::THREADS)
        .metrics(true)
        .build()
        .expect("drainpool with metrics");
    let rayon = new_rayon();
    let mut rounds = Rounds::default();
    for _ in 0..ROUNDS {
        round(&mut rounds, &drain, &measured, &rayon);
    }
    for pool in [&*drain, &measured] {
        pool.shutdown();
        assert!(pool.await_termination(Duration::from_secs(60)));
    }
    // Drops whose exit hooks take 200 ms: the hooks run at once on every
    // worker, so the drop should take one hook's time. Three rounds each
    // (they take 200 ms apiece).
    let mut hooks = Rounds::default();
    for _ in 0..3 {
        for (threads, key) in [(2, "hooks/2"), (4, "hooks/4"), (8, "hooks/8")] {
            hooks.record(key, drop_with_slow_exit_hooks(threads));
            hooks.record("hooks/one hook", HOOK);
        }
    }

    let r = &rounds;
    let mut rows: Vec<[String; 6]> = Vec::new();
    // A timed row: medians of ours and the peer's rounds, their ratio, and
    // the ratio of the two best rounds.
    let mut timed = |scenario: &str,
                     (ours, ours_units): (&str, u64),
                     (peer_name, peer, peer_units): (&str, &str, u64),
                     unit: fn(f64) -> String,
                     target: &str| {
        let (o, p) = (r.per(ours, ours_units), r.per(peer, peer_units));
        let best = r.best(ours, ours_units) / r.best(peer, peer_units);
        rows.push([
            scenario.to_owned(),
            unit(o),
            format!("{peer_name}: {}", unit(p)),
            format!("{:.2}", o / p),
            format!("{best:.2}"),
            target.to_owned(),
        ]);
    };
    let spawn = "spawn-to-completion, 1M capture-free tasks, per task";
    for (peer, key, target) in [
        ("bare crossbeam loop", "spawn 1M/bare", "≤ 1.1"),
        ("`threadpool`", "spawn 1M/threadpool", "≤ 0.35"),
        ("rayon `spawn`", "spawn 1M/rayon", "≤ 0.25"),
    ] {
        timed(
            spawn,
            ("spawn 1M/drainpool", BIG),
            (peer, key, BIG),
            ns,
            target,
        );
    }
    for (producers, ours, bare_key, tp_key) in MANY_SPAWN {
        let scenario = format!(
            "spawn-to-completion, 1M capture-free tasks from {producers} producers, per task"
        );
        timed(
            &scenario,
            (ours, BIG),
            ("bare crossbeam loop", bare_key, BIG),
            ns,
            "≤ 1.1",
        );
        timed(
            &scenario,
            (ours, BIG),
            ("`threadpool`", tp_key, BIG),
            ns,
            "≤ 0.35",
        );
    }
    timed(
        "spawn-to-completion, 10k capture-free tasks, per task",
        ("spawn 10k/drainpool", SMALL),
        ("bare crossbeam loop", "spawn 10k/bare", SMALL),
        ns,
        "≤ 1.5",
    );
    timed(
        "spawn-to-completion, 1M tasks capturing an `Arc`, per task",
        ("spawn arc 1M/drainpool", BIG),
        ("bare crossbeam loop", "spawn arc 1M/bare", BIG),
        ns,
        "≤ 1.1",
    );
    timed(
        "`execute_batch` of 1M capture-free tasks, per task",
        ("spawn 1M/drainpool batch", BIG),
        ("drainpool `execute`", "spawn 1M/drainpool", BIG),
        ns,
        "≤ 0.5",
    );
    timed(
        "spawn-to-completion, 1M capture-free tasks, with timing metrics (`Builder::metrics`), per task",
        ("spawn 1M/drainpool metrics", BIG),
        ("without", "spawn 1M/drainpool", BIG),
        ns,
        "≤ 1.05, or opt-in (it is)",
    );
    timed(
        "spawn-to-completion, 100k tasks of ~1 µs, with timing metrics, per task",
        ("spawn 100k 1us/drainpool metrics", MID),
        ("without", "spawn 100k 1us/drainpool", MID),
        ns,
        "≤ 1.05, or opt-in (it is)",
    );
    for (what, key) in [
        (
            "submit-and-join, 100k tasks (`submit` + `join`), per task",
            "submit join/drainpool",
        ),
        (
            "submit-and-join, 100k tasks (`submit_batch` + `join`), per task",
            "submit join/drainpool batch",
        ),
    ] {
        timed(
            what,
            (key, MID),
            ("rayon `scope`", "submit join/rayon scope", MID),
            ns,
            "≤ 1.0",
        );
    }
    for (producers, ours, peer) in MANY_JOIN {
        timed(
            &format!(
                "submit-and-join, 100k tasks from {producers} producers (`submit` + `join`), \
                 per task"
            ),
            (ours, MID),
            ("rayon `scope`, one per producer", peer, MID),
            ns,
            "≤ 1.0",
        );
    }
    timed(
        "fan-out: a task submits 100k children and joins them, per child",
        ("fan out/drainpool", MID),
        ("`rayon::scope` in `install`", "fan out/rayon", MID),
        ns,
        "—",
    );
    for (what, key) in [
        (
            "`pool.scope`: 100k spawns into a borrowed slice, called from outside the pool, \
             per task",
            "scope/drainpool outside",
        ),
        (
            "`pool.scope`: 100k spawns into a borrowed slice, called inside a task, per task",
            "scope/drainpool inside",
        ),
    ] {
        timed(
            what,
            (key, MID),
            ("`rayon::scope` in `install`", "scope/rayon", MID),
            ns,
            "≤ 1.0",
        );
    }
    timed(
        "`pool.scope` called from outside the pool, vs rayon's call from outside its pool",
        ("scope/drainpool outside", MID),
        ("rayon `in_place_scope`", "scope/rayon in place", MID),
        ns,
        "—",
    );
    timed(
        "round trip: one task at a time, answering through a channel, per request",
        ("ping/drainpool", PINGS),
        ("bare crossbeam loop", "ping/bare", PINGS),
        ns,
        "—",
    );
    timed(
        "`shutdown_now` with 1M queued, per returned task",
        ("shutdown_now/drainpool", BIG),
        (
            "draining a channel into a `Vec`",
            "shutdown_now/bare drain",
            BIG,
        ),
        ns,
        "≤ 2.0",
    );
    timed(
        "idle `shutdown` + `await_termination`",
        ("idle shutdown/drainpool", 1),
        ("bare loop, drop sender + join", "idle shutdown/bare", 1),
        us,
        "≤ 1 ms",
    );
    for (peer, key) in [
        ("spawn + join 2 threads", "new/bare"),
        ("rayon build + drop (no join)", "new/rayon"),
    ] {
        timed(
            "`ThreadPool::new(2)` + drop",
            ("new/drainpool", 1),
            (peer, key, 1),
            us,
            "—",
        );
    }
    for (threads, key) in [(2, "hooks/2"), (4, "hooks/4"), (8, "hooks/8")] {
        let (o, p) = (hooks.per(key, 1), hooks.per("hooks/one hook", 1));
        rows.push([
            format!("drop of a {threads}-worker pool whose exit hooks take 200 ms"),
            format!("{:.0} ms", o / 1e6),
            format!("one hook: {:.0} ms", p / 1e6),
            format!("{:.2}", o / p),
            format!("{:.2}", hooks.best(key, 1) / p),
            "≤ 1.1".to_owned(),
        ]);
    }
    for (scenario, ours, bare) in [
        (
            "memory: pool overhead per queued capture-free task",
            mem.execute,
            mem.bare,
        ),
        (
            "memory: per queued task capturing one word (an `Arc`, an index)",
            mem.execute8,
            mem.bare8,
        ),
        (
            "memory: overhead per queued task beyond a 32-byte closure",
            mem.execute32,
            mem.bare32,
        ),
        (
            "memory: per queued `submit` task (cell + queue slot, handle not counted)",
            mem.submit,
            mem.bare,
        ),
    ] {
        rows.push([
            scenario.to_owned(),
            format!("{ours:.0} B"),
            format!("bare crossbeam channel: {bare:.0} B"),
            format!("{:.2}", ours / bare),
            "—".to_owned(),
            "≤ 64 B".to_owned(),
        ]);
    }

    println!(
        "Measured {} with `cargo bench --bench compare`: {} worker threads, one \
         producer, {ROUNDS} rounds; medians, and the ratio of the best rounds, from this one run.",
        today(),
        THREADS
    );
    let cores = thread::available_parallelism().map_or(0, |n| n.get());
    match cpu_model() {
        Some(model) => println!("machine: {cores} cores ({model})"),
        None => println!("machine: {cores} cores"),
    }
    println!();
    println!("| scenario | drainpool | peer | ratio | ratio of best rounds | target |");
    println!("|---|---|---|---|---|---|");
    for [scenario, ours, peer, ratio, best, target] in &rows {
        println!("| {scenario} | {ours} | {peer} | {ratio} | {best} | {target} |");
    }
    eprintln!("\n(ran in {:.1} s)", started.elapsed().as_secs_f64());
}
