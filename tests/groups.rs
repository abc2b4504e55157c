//! Task groups: cancel a whole job (also while producers still submit to it,
//! and racing `shutdown_now`), pause and resume it in order, wait for it,
//! watch its progress, and keep its never-started jobs as data. Every task
//! is accounted for exactly once: it ran, it was cancelled, it was handed
//! back, or it was refused and handed back to its submitter.

mod common;

use std::collections::HashSet;
use std::panic;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex, Once, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use common::{
    BRIEF, DropCounter, Gate, Latch, Rng, TestPool, WAIT, bounded_join, bump, sleep_until_stopped,
    spawn, spin,
};
use drainpool::{
    GroupProgress, Interrupted, Job, PendingTask, RejectReason, StopToken, TaskError, TaskGroup,
    TaskHandle, ThreadPool,
};

// ----- support ----------------------------------------------------------------

/// The fate of each of a round's numbered tasks: how often its closure ran,
/// and how often the closure (its [`Probe`]) was dropped. A task that ends
/// correctly has been dropped exactly once and run at most once.
struct Fates {
    runs: Box<[AtomicU8]>,
    drops: Box<[AtomicU8]>,
}

impl Fates {
    fn new(n: usize) -> Arc<Fates> {
        Arc::new(Fates {
            runs: (0..n).map(|_| AtomicU8::new(0)).collect(),
            drops: (0..n).map(|_| AtomicU8::new(0)).collect(),
        })
    }

    /// The value task `index`'s closure owns.
    fn probe(self: &Arc<Self>, index: usize) -> Probe {
        Probe {
            fates: self.clone(),
            index,
        }
    }

    fn runs(&self, index: usize) -> u8 {
        self.runs[index].load(Ordering::SeqCst)
    }

    fn drops(&self, index: usize) -> u8 {
        self.drops[index].load(Ordering::SeqCst)
    }

    /// Dropped without ever running: cancelled, or refused and dropped by
    /// its submitter.
    fn dropped_unrun(&self, index: usize) -> bool {
        self.drops(index) == 1 && self.runs(index) == 0
    }
}

/// Owned by one task's closure: counts the run and the drop of that closure.
struct Probe {
    fates: Arc<Fates>,
    index: usize,
}

impl Probe {
    fn run(&self) -> usize {
        self.fates.runs[self.index].fetch_add(1, Ordering::SeqCst);
        self.index
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        self.fates.drops[self.index].fetch_add(1, Ordering::SeqCst);
    }
}

/// The payload of the panics these tests cause on purpose.
struct Deliberate;

/// Keeps the deliberate panics off stderr; every other panic is printed as
/// usual.
fn quiet_deliberate_panics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if info.payload().downcast_ref::<Deliberate>().is_none() {
                default(info);
            }
        }));
    });
}

/// A little work, so that a backlog builds up for a cancel to meet.
fn work() {
    for i in 0..20_000u32 {
        std::hint::black_box(i);
    }
}

/// A pool whose panic handler swallows the deliberate panics.
fn quiet_pool(threads: usize) -> TestPool {
    quiet_deliberate_panics();
    TestPool::build(ThreadPool::builder().threads(threads).panic_handler(|_| {}))
}

/// `progress` adds up: every task submitted is queued, running, or ended.
fn assert_adds_up(progress: GroupProgress) {
    let ended = progress.completed + progress.panicked + progress.cancelled + progress.returned;
    let live = (progress.queued + progress.running) as u64;
    assert_eq!(
        progress.submitted,
        ended + live,
        "the group's counts do not add up: {progress:?}"
    );
}

/// A group's counts, comparable as a whole (`GroupProgress` is
/// `non_exhaustive`: it cannot be built here).
#[derive(Debug, Default, PartialEq, Eq)]
struct Counts {
    submitted: u64,
    queued: usize,
    running: usize,
    completed: u64,
    panicked: u64,
    cancelled: u64,
    returned: u64,
}

impl From<GroupProgress> for Counts {
    fn from(p: GroupProgress) -> Counts {
        Counts {
            submitted: p.submitted,
            queued: p.queued,
            running: p.running,
            completed: p.completed,
            panicked: p.panicked,
            cancelled: p.cancelled,
            returned: p.returned,
        }
    }
}

/// `group`'s counts now.
fn counts(group: &TaskGroup) -> Counts {
    Counts::from(group.progress())
}

/// What a group holds with nothing queued or running and nothing panicked.
fn quiescent(submitted: u64, completed: u64, cancelled: u64, returned: u64) -> Counts {
    Counts {
        submitted,
        completed,
        cancelled,
        returned,
        ..Counts::default()
    }
}

/// Shuts `pool` down and waits for it to terminate: then every worker has
/// finished its bookkeeping, and the counts are final.
fn finish(pool: &ThreadPool) {
    pool.shutdown();
    assert!(pool.await_termination(WAIT), "the pool terminates");
}

/// Pushes `value` to `log`.
fn push(log: &Arc<Mutex<Vec<usize>>>, value: usize) -> impl FnOnce() + Send + 'static {
    let log = log.clone();
    move || log.lock().unwrap().push(value)
}

fn logged(log: &Arc<Mutex<Vec<usize>>>) -> Vec<usize> {
    log.lock().unwrap().clone()
}

/// Runs a hook at the first `drainpool` log record emitted on this thread,
/// inside the pool's own code: a way to stop a call of the pool half-way,
/// where it logs, and look at what its workers do meanwhile.
struct HookLogger;

thread_local! {
    static AT_LOG: std::cell::RefCell<Option<Box<dyn FnOnce()>>> =
        const { std::cell::RefCell::new(None) };
}

impl log::Log for HookLogger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.target().starts_with("drainpool")
    }

    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata())
            && let Some(hook) = AT_LOG.with(|h| h.borrow_mut().take())
        {
            hook();
        }
    }

    fn flush(&self) {}
}

/// Runs `f` with `hook` armed for the first pool log record on this thread.
fn with_log_hook<T>(hook: impl FnOnce() + 'static, f: impl FnOnce() -> T) -> T {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        if log::set_logger(&HookLogger).is_ok() {
            log::set_max_level(log::LevelFilter::Debug);
        }
    });
    AT_LOG.with(|h| *h.borrow_mut() = Some(Box::new(hook)));
    let result = f();
    drop(AT_LOG.with(|h| h.borrow_mut().take())); // unfired: dropped here
    result
}

// ----- cancel while producers submit --------------------------------------------

const PRODUCERS: usize = 4;
/// At most this many submits per producer and round.
const PER_PRODUCER: usize = 20_000;
/// Submits a producer tries after its first refusal (all must be refused).
const AFTER_REFUSAL: usize = 3;

/// What one producer did in a round.
struct Produced {
    /// Tasks it tried to submit: indices `base..base + attempted`.
    attempted: usize,
    /// The ones refused (and dropped here after `into_inner`).
    refused: Vec<usize>,
    handles: Vec<(usize, TaskHandle<usize>)>,
}

/// Submits to `group` until it is refused (then `AFTER_REFUSAL` more, which
/// must all be refused too), alternating `execute` and `submit`. Starts
/// with the others at `start`, says `ready` after its first 64 submits.
fn produce(
    producer: usize,
    group: TaskGroup,
    fates: Arc<Fates>,
    cancel_returned: Arc<AtomicBool>,
    start: Arc<Barrier>,
    ready: mpsc::Sender<()>,
) -> Produced {
    start.wait();
    let base = producer * PER_PRODUCER;
    let mut out = Produced {
        attempted: 0,
        refused: Vec::new(),
        handles: Vec::new(),
    };
    for k in 0..PER_PRODUCER {
        let index = base + k;
        let probe = fates.probe(index);
        let after_cancel = cancel_returned.load(Ordering::SeqCst);
        // Each refusal hands the closure back: dropping it drops this very
        // task's probe, which proves it is ours, whole.
        let refused = if k % 2 == 0 {
            match group.execute(move || {
                probe.run();
            }) {
                Ok(()) => None,
                Err(rejected) => {
                    let reason = rejected.reason();
                    drop(rejected.into_inner());
                    Some(reason)
                }
            }
        } else {
            match group.submit(move || probe.run()) {
                Ok(handle) => {
                    out.handles.push((index, handle));
                    None
                }
                Err(rejected) => {
                    let reason = rejected.reason();
                    drop(rejected.into_inner());
                    Some(reason)
                }
            }
        };
        out.attempted = k + 1;
        match refused {
            None => {
                assert!(
                    !after_cancel,
                    "task {index} was accepted after cancel() returned"
                );
                assert!(
                    out.refused.is_empty(),
                    "task {index} was accepted after an earlier refusal"
                );
            }
            Some(reason) => {
                assert_eq!(reason, RejectReason::Cancelled);
                assert_eq!(fates.drops(index), 1, "into_inner gave task {index} back");
                assert_eq!(fates.runs(index), 0);
                out.refused.push(index);
                if out.refused.len() > AFTER_REFUSAL {
                    break;
                }
            }
        }
        if k == 64 {
            ready.send(()).unwrap();
        }
    }
    out
}

#[test]
fn cancel_while_producers_still_submit_accounts_for_every_task() {
    const ROUNDS: usize = 20;
    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    let mut rounds_with_refusals = 0;
    let (mut ran_total, mut cancelled_total, mut refused_total) = (0, 0, 0);
    for round in 0..ROUNDS {
        let pool = TestPool::new(3);
        let group = pool.group(format!("producers-{round}"));
        let fates = Fates::new(PRODUCERS * PER_PRODUCER);
        let cancel_returned = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = mpsc::channel();
        let start = Arc::new(Barrier::new(PRODUCERS));
        let producers: Vec<_> = (0..PRODUCERS)
            .map(|p| {
                let (group, fates) = (group.clone(), fates.clone());
                let (flag, ready) = (cancel_returned.clone(), ready_tx.clone());
                let start = start.clone();
                spawn(move || produce(p, group, fates, flag, start, ready))
            })
            .collect();
        for _ in 0..PRODUCERS {
            ready_rx
                .recv_timeout(WAIT)
                .expect("every producer got going");
        }
        spin(rng.spins(14));
        let dropped = group.cancel();
        cancel_returned.store(true, Ordering::SeqCst);
        assert!(group.is_cancelled());
        let produced: Vec<Produced> = producers
            .into_iter()
            .map(|p| p.join("a producer"))
            .collect();

        assert!(group.wait(WAIT), "the cancelled group ends");
        let mut attempted = 0;
        let mut refused = 0;
        for (p, out) in produced.into_iter().enumerate() {
            rounds_with_refusals += usize::from(!out.refused.is_empty());
            attempted += out.attempted;
            refused += out.refused.len();
            for (index, handle) in out.handles {
                match bounded_join(handle) {
                    Ok(value) => {
                        assert_eq!(value, index);
                        assert_eq!(fates.runs(index), 1);
                    }
                    Err(TaskError::Cancelled) => assert_eq!(fates.runs(index), 0),
                    Err(e) => panic!("task {index}: {e:?}"),
                }
            }
            let base = p * PER_PRODUCER;
            for index in base..base + out.attempted {
                assert_eq!(fates.drops(index), 1, "task {index} dropped once");
                assert!(fates.runs(index) <= 1, "task {index} ran twice");
            }
        }
        finish(&pool);
        let ran: usize = (0..PRODUCERS * PER_PRODUCER)
            .map(|i| usize::from(fates.runs(i)))
            .sum();
        // Neither ran nor refused: dropped by the cancel, and counted in
        // what it returned.
        assert_eq!(attempted - refused - ran, dropped, "round {round}");
        let accepted = (attempted - refused) as u64;
        assert_eq!(
            counts(&group),
            quiescent(accepted, ran as u64, dropped as u64, 0),
            "round {round}"
        );
        let stats = pool.stats();
        assert_eq!(stats.completed, ran as u64);
        assert_eq!(stats.cancelled, dropped as u64);
        assert_eq!(stats.rejected, refused as u64);
        assert_eq!((stats.queued, stats.active, stats.panicked), (0, 0, 0));
        assert_eq!(group.cancel(), 0, "a second cancel drops nothing");
        ran_total += ran;
        cancelled_total += dropped;
        refused_total += refused;
    }
    eprintln!(
        "{ROUNDS} rounds: ran {ran_total}, cancelled {cancelled_total}, refused {refused_total}; \
         {rounds_with_refusals} of {} producers were refused",
        ROUNDS * PRODUCERS
    );
    assert!(
        rounds_with_refusals > 0,
        "no producer ever met the cancel: the test did not test it"
    );
}

// ----- cancel vs shutdown_now -------------------------------------------------

#[test]
fn cancel_racing_shutdown_now_ends_each_task_once() {
    const ROUNDS: usize = 400;
    const TASKS: usize = 200;
    let panics = |i: usize| i % 11 == 5;
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    // ran, cancelled by the group, handed back: over all rounds.
    let mut totals = [0usize; 3];
    // Rounds where the cancel took the queued tasks, and where the
    // hand-back did (each takes the whole mailbox at once).
    let (mut cancel_won, mut shutdown_won) = (0, 0);
    for round in 0..ROUNDS {
        let pool = quiet_pool(2);
        let group = pool.group(format!("race-{round}"));
        // The canceller waits at the barrier before the tasks are in; the
        // workers are held until the race starts, so that a backlog meets
        // it, and tasks start while it goes on.
        let barrier = Arc::new(Barrier::new(2));
        let canceller = {
            let (group, barrier) = (group.clone(), barrier.clone());
            let delay = rng.spins(16);
            spawn(move || {
                barrier.wait();
                spin(delay);
                group.cancel()
            })
        };
        let gate = Gate::occupying(&pool, 2);
        let fates = Fates::new(TASKS);
        let mut handles = Vec::new();
        for i in 0..TASKS {
            let probe = fates.probe(i);
            let panicky = panics(i);
            let task = group.task().name(i.to_string());
            if i % 2 == 0 {
                task.execute(move || {
                    probe.run();
                    work();
                    if panicky {
                        panic::panic_any(Deliberate);
                    }
                })
                .unwrap();
            } else {
                let handle = task
                    .submit(move || {
                        probe.run();
                        work();
                        if panicky {
                            panic::panic_any(Deliberate);
                        }
                        i
                    })
                    .unwrap();
                handles.push((i, handle));
            }
        }
        // A few are cancelled through their handles before the race.
        let by_handle: HashSet<usize> = handles
            .iter()
            .filter(|(i, handle)| i % 13 == 1 && handle.cancel())
            .map(|(i, _)| *i)
            .collect();

        barrier.wait();
        gate.release();
        spin(rng.spins(16));
        let pending = pool.shutdown_now();
        let dropped = canceller.join("the cancel");
        assert!(pool.await_termination(WAIT), "round {round}: terminates");

        // Handed back at most once, and still whole (neither run nor
        // dropped) while the program holds it.
        let mut returned = HashSet::new();
        for task in &pending {
            let i: usize = task.name().expect("named").parse().unwrap();
            assert!(returned.insert(i), "round {round}: task {i} returned twice");
            assert_eq!((fates.runs(i), fates.drops(i)), (0, 0), "task {i}");
        }
        let mut ran = 0;
        let mut ran_ok = 0;
        let mut unrun = 0;
        for i in 0..TASKS {
            let outcomes = usize::from(fates.runs(i) == 1)
                + usize::from(fates.dropped_unrun(i))
                + usize::from(returned.contains(&i));
            assert_eq!(outcomes, 1, "round {round}: task {i} has one end state");
            assert!(fates.runs(i) <= 1 && fates.drops(i) <= 1, "task {i}");
            ran += usize::from(fates.runs(i) == 1);
            ran_ok += usize::from(fates.runs(i) == 1 && !panics(i));
            unrun += usize::from(fates.dropped_unrun(i));
        }
        // The handle cancels are not in what the group's cancel returns.
        assert_eq!(unrun, dropped + by_handle.len(), "round {round}");
        let progress = group.progress();
        assert_eq!(
            Counts::from(progress),
            Counts {
                submitted: TASKS as u64,
                completed: ran_ok as u64,
                panicked: (ran - ran_ok) as u64,
                cancelled: unrun as u64,
                returned: pending.len() as u64,
                ..Counts::default()
            },
            "round {round}"
        );
        assert_eq!(group.cancel(), 0, "round {round}: second cancel");
        assert!(pool.shutdown_now().is_empty(), "returned only once");
        totals[0] += ran;
        totals[1] += dropped;
        totals[2] += pending.len();
        cancel_won += usize::from(dropped > 0);
        shutdown_won += usize::from(!pending.is_empty());

        // The program decides: run some of the returned tasks, drop the rest.
        for task in pending {
            let i: usize = task.name().unwrap().parse().unwrap();
            if i.is_multiple_of(3) {
                task.run();
                assert_eq!(fates.runs(i), 1);
            } else {
                drop(task);
                assert!(fates.dropped_unrun(i));
            }
        }
        for (i, handle) in handles {
            let result = bounded_join(handle);
            match (fates.runs(i), panics(i)) {
                (1, false) => assert_eq!(result.unwrap(), i),
                (1, true) => assert!(result.unwrap_err().is_panic()),
                _ => assert!(result.unwrap_err().is_cancelled(), "task {i}"),
            }
        }
        for i in 0..TASKS {
            assert_eq!(fates.drops(i), 1, "round {round}: task {i} dropped once");
        }
        // Every task is accounted for exactly once, in the pool and in the
        // group (which counts the handed-back ones as returned, whatever the
        // program did with them).
        let ran_now: Vec<usize> = (0..TASKS).filter(|&i| fates.runs(i) == 1).collect();
        let panicked = ran_now.iter().filter(|&&i| panics(i)).count() as u64;
        let stats = pool.stats();
        // The two gate tasks completed too.
        assert_eq!(stats.completed, ran_now.len() as u64 - panicked + 2);
        assert_eq!(stats.panicked, panicked);
        assert_eq!(stats.cancelled, (TASKS - ran_now.len()) as u64);
        assert_eq!(
            stats.completed + stats.panicked + stats.cancelled,
            TASKS as u64 + 2
        );
        assert_eq!((stats.queued, stats.active, stats.rejected), (0, 0, 0));
        assert_eq!(group.progress(), progress, "the group's counts are final");
        assert_adds_up(progress);
    }
    eprintln!(
        "{ROUNDS} rounds of {TASKS}: ran {}, cancelled by the group {}, handed back {}; \
         the cancel took the queue in {cancel_won} rounds, shutdown_now in {shutdown_won}",
        totals[0], totals[1], totals[2]
    );
}

// ----- cancel -------------------------------------------------------------------

#[test]
fn cancel_returns_how_many_it_dropped_and_later_submits_are_refused() {
    let pool = TestPool::new(1);
    let gate = Gate::occupying(&pool, 1);
    let group = pool.group("job");
    let ran = Arc::new(AtomicUsize::new(0));
    for _ in 0..5 {
        group.execute(bump(&ran)).unwrap();
    }
    let handles: Vec<_> = (0..3).map(|i| group.submit(move || i).unwrap()).collect();
    assert!(handles[1].cancel(), "cancelled through its handle first");
    assert!(!group.is_cancelled());
    assert_eq!(group.cancel(), 7, "5 executed + 2 submitted still queued");
    assert!(group.is_cancelled());
    assert_eq!(group.cancel(), 0, "a second cancel drops nothing");
    for handle in handles {
        assert!(handle.is_finished(), "resolved at once");
        assert!(handle.join().unwrap_err().is_cancelled());
    }

    let rejected = group.execute(bump(&ran)).unwrap_err();
    assert_eq!(rejected.reason(), RejectReason::Cancelled);
    rejected.into_inner()(); // the closure is ours again
    assert_eq!(ran.load(Ordering::SeqCst), 1);
    let rejected = group.submit(|| 42).unwrap_err();
    assert_eq!(rejected.reason(), RejectReason::Cancelled);
    assert_eq!(rejected.into_inner()(), 42);
    assert_eq!(
        group
            .task()
            .name("late")
            .execute(|| ())
            .unwrap_err()
            .reason(),
        RejectReason::Cancelled
    );
    assert_eq!(
        group.try_execute(|| ()).unwrap_err().reason(),
        RejectReason::Cancelled
    );

    // The pool itself goes on.
    let seven = pool.submit(|| 7).unwrap();
    gate.release();
    assert_eq!(bounded_join(seven).unwrap(), 7);
    assert!(group.wait(WAIT));
    assert!(pool.wait_idle(WAIT));
    assert_eq!(counts(&group), quiescent(8, 0, 8, 0));
    let stats = pool.stats();
    assert_eq!((stats.cancelled, stats.rejected), (8, 4));
    assert_eq!(ran.load(Ordering::SeqCst), 1, "no cancelled task ran");
}

#[test]
fn cancel_releases_the_queued_closures_before_it_returns() {
    const EACH: usize = 1_000;
    let pool = TestPool::new(1);
    let gate = Gate::occupying(&pool, 1);
    let group = pool.group("job");
    let drops = DropCounter::default();
    let mut handles = Vec::new();
    for _ in 0..EACH {
        let tracked = drops.tracked();
        group.execute(move || drop(tracked)).unwrap();
        let tracked = drops.tracked();
        handles.push(group.submit(move || drop(tracked)).unwrap());
    }
    assert_eq!(drops.count(), 0);
    assert_eq!(group.cancel(), 2 * EACH);
    // Not later, when a worker reaches the group's token: now. The handles
    // still exist, but the closures they shared are gone.
    assert_eq!(drops.count(), 2 * EACH);
    assert!(handles.iter().all(TaskHandle::is_finished));
    drop(gate);
    assert!(group.wait(WAIT));
    for handle in handles {
        assert!(handle.join().unwrap_err().is_cancelled());
    }
    assert_eq!(drops.count(), 2 * EACH, "and only once");
}

#[test]
fn a_big_cancelled_group_does_not_hold_up_another_groups_task() {
    const BIG: usize = 200_000;
    let pool = TestPool::new(2);
    let gate = Gate::occupying(&pool, 2);
    let big = pool.group("big");
    let drops = DropCounter::default();
    let ran = Arc::new(AtomicUsize::new(0));
    for _ in 0..BIG {
        let (tracked, ran) = (drops.tracked(), ran.clone());
        // If these ran, they would take 100 s on two workers.
        big.execute(move || {
            ran.fetch_add(1, Ordering::SeqCst);
            thread::sleep(Duration::from_millis(1));
            drop(tracked);
        })
        .unwrap();
    }
    let other = pool.group("other");
    let small = other.submit(|| 42).unwrap();
    assert_eq!(big.progress().queued, BIG);

    let start = Instant::now();
    assert_eq!(big.cancel(), BIG);
    let cancel_took = start.elapsed();
    assert_eq!(drops.count(), BIG, "released when cancel returns");
    assert_eq!(big.progress().queued, 0);
    gate.release();
    assert!(
        small.wait_timeout(WAIT),
        "the other group's task waited behind the cancelled ones"
    );
    let waited = start.elapsed();
    assert_eq!(small.join().unwrap(), 42);
    eprintln!("cancel of {BIG}: {cancel_took:?}; the other task had run {waited:?} after");
    assert!(big.wait(WAIT));
    finish(&pool);
    assert_eq!(ran.load(Ordering::SeqCst), 0);
    assert_eq!(counts(&big), quiescent(BIG as u64, 0, BIG as u64, 0));
    assert_eq!(counts(&other), quiescent(1, 1, 0, 0));
}

#[test]
fn cancelling_a_paused_group_drops_what_it_held() {
    let pool = TestPool::new(2);
    let job = pool.group("job");
    job.pause();
    let ran = Arc::new(AtomicUsize::new(0));
    let drops = DropCounter::default();
    for _ in 0..10 {
        let (ran, tracked) = (ran.clone(), drops.tracked());
        job.execute(move || {
            ran.fetch_add(1, Ordering::SeqCst);
            drop(tracked);
        })
        .unwrap();
    }
    assert_eq!(job.cancel(), 10);
    assert_eq!(drops.count(), 10);
    assert!(job.wait(Duration::ZERO), "nothing left to wait for");
    job.resume();
    finish(&pool);
    assert_eq!(ran.load(Ordering::SeqCst), 0);
    assert_eq!(counts(&job), quiescent(10, 0, 10, 0));
}

#[test]
fn a_group_of_a_pool_that_shut_down_refuses_tasks() {
    let pool = TestPool::new(1);
    pool.shutdown();
    let job = pool.group("late");
    let rejected = job.submit(|| 1).unwrap_err();
    assert_eq!(rejected.reason(), RejectReason::Shutdown);
    assert_eq!(rejected.into_inner()(), 1);
    assert_eq!(job.cancel(), 0);
    assert!(job.wait(Duration::ZERO));
    assert_eq!(counts(&job), Counts::default());
}

// ----- pause and resume -------------------------------------------------------

#[test]
fn pause_holds_a_group_in_order_while_another_group_goes_on() {
    const N: usize = 200;
    const PAUSE_AT: usize = 50;
    let pool = TestPool::new(1);
    let job = pool.group("job");
    let log = Arc::new(Mutex::new(Vec::new()));
    // Task 0 holds the only worker until the group is paused.
    let (started, go) = (Latch::default(), Latch::default());
    {
        let (started, go, log) = (started.clone(), go.clone(), log.clone());
        job.execute(move || {
            log.lock().unwrap().push(0);
            started.open();
            go.wait();
        })
        .unwrap();
    }
    // Task PAUSE_AT pauses its own group: the tasks after it wait.
    let paused_itself = Latch::default();
    for k in 1..N {
        if k == PAUSE_AT {
            let (job2, log, latch) = (job.clone(), log.clone(), paused_itself.clone());
            job.execute(move || {
                log.lock().unwrap().push(k);
                job2.pause();
                latch.open();
            })
            .unwrap();
        } else {
            job.execute(push(&log, k)).unwrap();
        }
    }
    started.expect_open();
    job.pause();
    assert!(job.is_paused());
    go.open();

    // Another group runs through the pause.
    let other = pool.group("other");
    let handles: Vec<_> = (0..20)
        .map(|j| other.submit(move || j * 2).unwrap())
        .collect();
    for (j, handle) in handles.into_iter().enumerate() {
        assert_eq!(bounded_join(handle).unwrap(), j * 2);
    }
    assert!(other.wait(WAIT));
    assert_eq!(logged(&log), vec![0]);
    let held = job.progress();
    assert_eq!((held.completed, held.queued, held.running), (1, N - 1, 0));
    assert!(!job.wait(BRIEF), "still held");
    assert_eq!(logged(&log), vec![0]);

    job.resume(); // (task PAUSE_AT may pause it again at once)
    paused_itself.expect_open();
    // The task that paused the group ended; the others stay held.
    let other2 = other.submit(|| "after").unwrap();
    assert_eq!(bounded_join(other2).unwrap(), "after");
    assert_eq!(logged(&log), (0..=PAUSE_AT).collect::<Vec<_>>());
    assert!(job.is_paused());
    assert_eq!(job.progress().queued, N - 1 - PAUSE_AT);

    job.resume();
    assert!(job.wait(WAIT));
    assert_eq!(logged(&log), (0..N).collect::<Vec<_>>(), "in order");
    finish(&pool);
    assert_eq!(counts(&job), quiescent(N as u64, N as u64, 0, 0));
    assert_eq!(counts(&other), quiescent(21, 21, 0, 0));
}

#[test]
fn pause_and_resume_again_and_again_keep_the_order() {
    const N: usize = 2_000;
    let pool = TestPool::new(1);
    let job = pool.group("job");
    let other = pool.group("other");
    let log = Arc::new(Mutex::new(Vec::new()));
    let other_ran = Arc::new(AtomicUsize::new(0));
    for k in 0..N {
        job.execute(push(&log, k)).unwrap();
        if k % 10 == 0 {
            other.execute(bump(&other_ran)).unwrap();
        }
    }
    for _ in 0..200 {
        job.pause();
        job.resume();
    }
    assert!(job.wait(WAIT) && other.wait(WAIT));
    assert_eq!(logged(&log), (0..N).collect::<Vec<_>>());
    assert_eq!(other_ran.load(Ordering::SeqCst), N / 10);
}

#[test]
fn shutdown_now_hands_back_a_paused_groups_tasks_in_order() {
    const N: usize = 50;
    let pool = TestPool::new(2);
    let job = pool.group("job");
    job.pause();
    let fates = Fates::new(N);
    let mut handles = Vec::new();
    for i in 0..N {
        let probe = fates.probe(i);
        let task = job.task().name(format!("chunk-{i}"));
        if i % 2 == 0 {
            task.execute(move || {
                probe.run();
            })
            .unwrap();
        } else {
            handles.push(task.submit(move || probe.run()).unwrap());
        }
    }
    let progress = job.progress();
    assert_eq!((progress.submitted, progress.queued), (N as u64, N));
    assert!(!job.wait(BRIEF), "a paused group's tasks have not ended");

    let pending = pool.shutdown_now();
    let names: Vec<_> = pending
        .iter()
        .map(|t| t.name().unwrap().to_owned())
        .collect();
    let expected: Vec<_> = (0..N).map(|i| format!("chunk-{i}")).collect();
    assert_eq!(names, expected, "all of them, in submission order");
    assert_eq!(counts(&job), quiescent(N as u64, 0, 0, N as u64));
    assert!(job.wait(Duration::ZERO), "handed back counts as ended");
    assert!(pool.await_termination(WAIT));
    assert!((0..N).all(|i| fates.runs(i) == 0 && fates.drops(i) == 0));

    drop(pending);
    assert!((0..N).all(|i| fates.dropped_unrun(i)));
    for handle in handles {
        assert!(handle.join().unwrap_err().is_cancelled());
    }
    assert_eq!(pool.stats().cancelled, N as u64);
    assert_eq!(job.progress().returned, N as u64);
}

#[test]
fn shutdown_resumes_a_paused_group_and_the_drain_runs_it() {
    const N: usize = 100;
    let pool = TestPool::new(1);
    let job = pool.group("job");
    job.pause();
    let log = Arc::new(Mutex::new(Vec::new()));
    for k in 0..N {
        job.execute(push(&log, k)).unwrap();
    }
    assert!(!job.wait(BRIEF), "held while paused");
    pool.shutdown();
    assert!(!job.is_paused(), "shutdown resumed it");
    assert!(pool.await_termination(WAIT));
    assert_eq!(logged(&log), (0..N).collect::<Vec<_>>());
    assert_eq!(counts(&job), quiescent(N as u64, N as u64, 0, 0));
}

#[test]
fn shutdown_runs_a_paused_groups_tasks_however_it_meets_the_workers() {
    // The drain must see the paused group's tasks whatever the workers are
    // doing when `shutdown` comes: still starting, finishing a task, idle.
    const ROUNDS: usize = 2_000;
    let mut rng = Rng(0xD1B5_4A32_D192_ED03);
    let mut lost = Vec::new();
    for round in 0..ROUNDS {
        let pool = TestPool::new(2);
        let job = pool.group("job");
        job.pause();
        let ran = Arc::new(AtomicUsize::new(0));
        job.execute(bump(&ran)).unwrap();
        job.execute(bump(&ran)).unwrap();
        let spins = rng.spins(14);
        pool.execute(move || spin(spins)).unwrap();
        spin(rng.spins(12));
        pool.shutdown();
        assert!(pool.await_termination(WAIT));
        let ran = ran.load(Ordering::SeqCst);
        if ran != 2 {
            lost.push((round, ran, pool.stats()));
        }
    }
    assert!(
        lost.is_empty(),
        "{} of {ROUNDS} rounds: the pool terminated without running a paused group's tasks; \
         first: {:?}",
        lost.len(),
        lost.first()
    );
}

#[test]
fn shutdown_resumes_a_paused_group_before_a_worker_can_find_the_drain_over() {
    // `shutdown` moves the state, logs, then resumes the paused groups. A
    // worker that finishes its task in between finds the queue empty and
    // the pool past Running: if it may take that for the end of the drain,
    // it exits, and the paused group's tasks are never run. The log hook
    // holds `shutdown` at its log line while the worker finishes its task.
    let (exited_tx, exited) = mpsc::channel();
    let pool = TestPool::build(ThreadPool::builder().threads(1).on_thread_exit(move |_| {
        let _ = exited_tx.send(());
    }));
    let gate = Gate::occupying(&pool, 1);
    let job = pool.group("job");
    job.pause();
    let ran = Arc::new(AtomicUsize::new(0));
    job.execute(bump(&ran)).unwrap();
    job.execute(bump(&ran)).unwrap();
    let worker_exited = Arc::new(AtomicBool::new(false));
    let hook = {
        let worker_exited = worker_exited.clone();
        move || {
            gate.release();
            // A correct pool keeps its worker for the drain: this times out.
            let exited = exited.recv_timeout(Duration::from_millis(500)).is_ok();
            worker_exited.store(exited, Ordering::SeqCst);
        }
    };
    with_log_hook(hook, || pool.shutdown());
    assert!(pool.await_termination(WAIT));
    let ran = ran.load(Ordering::SeqCst);
    assert_eq!(
        ran,
        2,
        "the pool terminated with the paused group's tasks unrun (the worker exited during \
         shutdown, before the group was resumed: {})",
        worker_exited.load(Ordering::SeqCst)
    );
}

#[test]
fn pause_after_shutdown_does_nothing() {
    let pool = TestPool::new(1);
    let gate = Gate::occupying(&pool, 1);
    let job = pool.group("job");
    let ran = Arc::new(AtomicUsize::new(0));
    for _ in 0..10 {
        job.execute(bump(&ran)).unwrap();
    }
    pool.shutdown();
    job.pause();
    assert!(!job.is_paused(), "a drain runs everything accepted");
    gate.release();
    assert!(pool.await_termination(WAIT));
    assert_eq!(ran.load(Ordering::SeqCst), 10);
    assert_eq!(counts(&job), quiescent(10, 10, 0, 0));
}

#[test]
fn dropping_every_clone_of_a_paused_group_loses_no_task() {
    let pool = TestPool::new(1);
    let job = pool.group("job");
    job.pause();
    let ran = Arc::new(AtomicUsize::new(0));
    let drops = DropCounter::default();
    for _ in 0..3 {
        let (ran, tracked) = (ran.clone(), drops.tracked());
        job.execute(move || {
            ran.fetch_add(1, Ordering::SeqCst);
            drop(tracked);
        })
        .unwrap();
    }
    // "Dropping every clone does not cancel the group; its tasks still run."
    drop(job);
    let dropped_unrun = drops.count();
    pool.shutdown(); // resumes paused groups: the drain runs them
    assert!(pool.await_termination(WAIT));
    let ran = ran.load(Ordering::SeqCst);
    let stats = pool.stats();
    assert!(
        dropped_unrun == 0 && ran == 3 && stats.completed == 3,
        "dropping the last clone of a paused group dropped {dropped_unrun} of its 3 queued \
         closures unrun; then the drain ran {ran}; the pool counts completed {}, cancelled {}",
        stats.completed,
        stats.cancelled
    );
}

// ----- progress and wait --------------------------------------------------------

#[test]
fn progress_counts_queued_running_and_ended_tasks() {
    quiet_deliberate_panics();
    let pool = quiet_pool(2);
    let job = pool.group("job");
    assert_eq!(counts(&job), Counts::default());

    let gate = Gate::new();
    job.execute(gate.task()).unwrap();
    gate.wait_entered(1);
    let p = job.progress();
    assert_eq!((p.submitted, p.queued, p.running), (1, 0, 1));

    job.pause();
    for _ in 0..5 {
        job.execute(|| ()).unwrap();
    }
    job.execute(|| panic::panic_any(Deliberate)).unwrap();
    let cancelled = job.submit(|| ()).unwrap();
    let p = job.progress();
    assert_eq!((p.submitted, p.queued, p.running), (8, 7, 1));
    assert_adds_up(p);

    gate.release();
    assert!(cancelled.cancel());
    job.resume();
    assert!(job.wait(WAIT));
    finish(&pool);
    assert_eq!(
        counts(&job),
        Counts {
            submitted: 8,
            completed: 6,
            panicked: 1,
            cancelled: 1,
            ..Counts::default()
        }
    );
    let stats = pool.stats();
    assert_eq!(
        (stats.completed, stats.panicked, stats.cancelled),
        (6, 1, 1)
    );
}

#[test]
fn a_paused_groups_progress_adds_up() {
    // Two ways a task of a paused group ends while its entry is still in
    // the group's mailbox: cancelled through its handle, and run by a
    // worker joining it. Either way, it is no longer queued.
    let pool = TestPool::new(1);
    let job = pool.group("paused");
    job.pause();
    let cancelled = job.submit(|| 1).unwrap();
    let helped = job.submit(|| 2).unwrap();
    let waiting = job.submit(|| 3).unwrap();
    assert!(cancelled.cancel());
    // A worker of the pool joining a queued task runs it itself.
    let joiner = pool.submit(move || helped.join().unwrap()).unwrap();
    assert_eq!(bounded_join(joiner).unwrap(), 2);
    let p = job.progress();
    assert_eq!((p.completed, p.cancelled, p.running), (1, 1, 0));
    assert_eq!(p.queued, 1, "only the task still waiting is queued: {p:?}");
    assert_adds_up(p);
    job.resume();
    assert_eq!(bounded_join(waiting).unwrap(), 3);
}

#[test]
fn once_wait_returns_the_progress_adds_up() {
    // `wait` says every task has ended; `progress` taken right after must
    // not still count one of them as running (on top of completed).
    const ROUNDS: usize = 5_000;
    let pool = TestPool::new(2);
    let mut lagging = Vec::new();
    for round in 0..ROUNDS {
        let job = pool.group("job");
        job.execute(|| ()).unwrap();
        drop(job.submit(|| ()).unwrap());
        assert!(job.wait(WAIT));
        let p = job.progress();
        if p.running != 0 || p.completed != 2 {
            lagging.push((round, Counts::from(p)));
        }
    }
    assert!(
        lagging.is_empty(),
        "{} of {ROUNDS} rounds: progress() right after wait() returned true still counted a \
         task running; first: {:?}",
        lagging.len(),
        lagging.first()
    );
}

#[test]
fn wait_is_true_when_done_and_false_on_timeout() {
    let pool = TestPool::new(1);
    let job = pool.group("job");
    assert!(job.wait(Duration::ZERO), "an empty group is done");
    let go = Latch::default();
    let (started_tx, started_rx) = mpsc::channel();
    {
        let go = go.clone();
        job.execute(move || {
            started_tx.send(()).unwrap();
            go.wait();
        })
        .unwrap();
    }
    job.execute(|| ()).unwrap();
    started_rx.recv_timeout(WAIT).unwrap();
    assert!(!job.wait(Duration::ZERO));
    let start = Instant::now();
    assert!(!job.wait(BRIEF));
    assert!(start.elapsed() >= BRIEF, "waited the timeout out");

    let forever = {
        let job = job.clone();
        spawn(move || job.wait(Duration::MAX))
    };
    thread::sleep(BRIEF);
    assert!(!forever.is_finished(), "Duration::MAX waits");
    go.open();
    assert!(forever.join("wait(Duration::MAX)"));
    assert!(job.wait(Duration::ZERO));
    assert!(job.wait(WAIT));
    finish(&pool);
    assert_eq!(counts(&job), quiescent(2, 2, 0, 0));
}

// ----- stop tokens ----------------------------------------------------------------

#[test]
fn a_group_tasks_current_stop_token_fires_on_group_cancel() {
    let pool = TestPool::new(3);
    let job = pool.group("job");
    let bystanders = pool.group("bystanders");
    let (started_tx, started_rx) = mpsc::channel();
    let submitted = job
        .submit(sleep_until_stopped(started_tx.clone(), WAIT))
        .unwrap();
    let (result_tx, result_rx) = mpsc::channel();
    let executed = sleep_until_stopped(started_tx, WAIT);
    job.execute(move || result_tx.send(executed()).unwrap())
        .unwrap();
    // Another group's task: its token must not fire.
    let (seen_tx, seen_rx) = mpsc::channel();
    let go = Latch::default();
    let bystander = {
        let go = go.clone();
        bystanders
            .submit(move || {
                let token = StopToken::current();
                seen_tx.send(()).unwrap();
                go.wait();
                token.is_stop_requested()
            })
            .unwrap()
    };
    for _ in 0..2 {
        started_rx.recv_timeout(WAIT).unwrap();
    }
    seen_rx.recv_timeout(WAIT).unwrap();

    assert_eq!(job.cancel(), 0, "running tasks are not dropped");
    assert_eq!(bounded_join(submitted).unwrap(), Err(Interrupted));
    assert_eq!(result_rx.recv_timeout(WAIT).unwrap(), Err(Interrupted));
    go.open();
    assert!(!bounded_join(bystander).unwrap());
    assert!(job.wait(WAIT));
    finish(&pool);
    assert_eq!(counts(&job), quiescent(2, 2, 0, 0));
}

#[test]
fn a_group_tasks_current_stop_token_fires_on_shutdown_now() {
    let pool = TestPool::new(1);
    let job = pool.group("job");
    let (started_tx, started_rx) = mpsc::channel();
    let handle = job.submit(sleep_until_stopped(started_tx, WAIT)).unwrap();
    started_rx.recv_timeout(WAIT).unwrap();
    assert!(pool.shutdown_now().is_empty());
    assert_eq!(bounded_join(handle).unwrap(), Err(Interrupted));
    assert!(pool.await_termination(WAIT));
    assert!(
        !job.stop_token().is_stop_requested(),
        "the group was not cancelled"
    );
}

#[test]
fn the_group_stop_token_fires_once_on_cancel() {
    let pool = TestPool::new(1);
    let job = pool.group("job");
    let token = job.stop_token();
    let fired = Arc::new(AtomicUsize::new(0));
    let _callback = token.on_stop(bump(&fired));
    let sleeper = {
        let token = job.stop_token();
        spawn(move || token.sleep(WAIT))
    };
    assert!(!token.is_stop_requested());
    assert!(token.check().is_ok());
    job.cancel();
    assert!(token.is_stop_requested());
    assert_eq!(token.check(), Err(Interrupted));
    assert_eq!(sleeper.join("a sleep on the group token"), Err(Interrupted));
    assert_eq!(fired.load(Ordering::SeqCst), 1);
    job.cancel();
    assert_eq!(fired.load(Ordering::SeqCst), 1, "callbacks run once");
    // A task of another group, started after, sees no stop.
    let fresh = pool.group("fresh");
    let handle = fresh
        .submit(|| StopToken::current().is_stop_requested())
        .unwrap();
    assert!(!bounded_join(handle).unwrap());
}

// ----- joins from inside the pool ----------------------------------------------

#[test]
fn a_group_task_helped_by_a_joining_worker_counts_once() {
    let pool = TestPool::new(1);
    let job = pool.group("job");
    let side = pool.group("side");
    let (tx, rx) = mpsc::channel::<(TaskHandle<u32>, TaskHandle<u32>)>();
    // The only worker runs `outer`; it joins two tasks queued behind it,
    // one of its own group, one of another: it must run them itself.
    let outer = job
        .submit(move || {
            let (same, other) = rx.recv_timeout(WAIT).unwrap();
            same.join().unwrap() + other.join().unwrap()
        })
        .unwrap();
    let same = job.submit(|| 20).unwrap();
    let other = side.submit(|| 22).unwrap();
    tx.send((same, other)).unwrap();
    assert_eq!(bounded_join(outer).unwrap(), 42);
    assert!(job.wait(WAIT) && side.wait(WAIT));
    // Once the drain has passed the helped tasks' queue entries, nothing is
    // queued and each task was counted once.
    finish(&pool);
    assert_eq!(counts(&job), quiescent(2, 2, 0, 0));
    assert_eq!(counts(&side), quiescent(1, 1, 0, 0));
    let stats = pool.stats();
    assert_eq!((stats.completed, stats.cancelled), (3, 0));
}

#[test]
fn a_task_run_by_a_joiner_of_another_group_sees_its_own_groups_cancel() {
    let pool = TestPool::new(1);
    let outer_group = pool.group("outer");
    let inner_group = pool.group("inner");
    let (tx, rx) = mpsc::channel::<TaskHandle<Result<(), Interrupted>>>();
    let (started_tx, started_rx) = mpsc::channel();
    let outer = outer_group
        .submit(move || {
            let inner = rx.recv_timeout(WAIT).unwrap();
            let result = inner.join().unwrap();
            // The joiner's own group was not cancelled.
            (result, StopToken::current().is_stop_requested())
        })
        .unwrap();
    let inner = inner_group
        .submit(sleep_until_stopped(started_tx, WAIT))
        .unwrap();
    tx.send(inner).unwrap();
    started_rx.recv_timeout(WAIT).unwrap(); // running inline, in the joiner
    assert_eq!(inner_group.cancel(), 0, "it is running, not queued");
    assert_eq!(bounded_join(outer).unwrap(), (Err(Interrupted), false));
    finish(&pool);
    assert_eq!(counts(&inner_group), quiescent(1, 1, 0, 0));
    assert_eq!(counts(&outer_group), quiescent(1, 1, 0, 0));
}

// ----- jobs as data --------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq)]
struct Chunk {
    index: u32,
}

impl Job for Chunk {
    type Output = u32;
    fn run(self) -> u32 {
        self.index * 10
    }
}

#[test]
fn a_groups_never_started_jobs_come_back_as_values() {
    let pool = TestPool::new(1);
    let job = pool.group("job");
    assert_eq!(
        bounded_join(job.submit_job(Chunk { index: 7 }).unwrap()).unwrap(),
        70
    );

    let gate = Gate::occupying(&pool, 1);
    let mut handles = Vec::new();
    for index in 0..5 {
        handles.push(job.submit_job(Chunk { index }).unwrap());
    }
    handles.push(
        job.task()
            .name("chunk-5")
            .submit_job(Chunk { index: 5 })
            .unwrap(),
    );
    let ran = Arc::new(AtomicUsize::new(0));
    job.execute(bump(&ran)).unwrap(); // a closure: not a job
    let pending = pool.shutdown_now();
    gate.release();
    assert_eq!(pending.len(), 7);
    assert_eq!(pending[5].name(), Some("chunk-5"));
    assert_eq!(counts(&job), quiescent(8, 1, 0, 7));

    let mut chunks = Vec::new();
    let mut others: Vec<PendingTask> = Vec::new();
    for task in pending {
        match task.into_job::<Chunk>() {
            Ok(chunk) => chunks.push(chunk),
            Err(task) => others.push(task),
        }
    }
    assert_eq!(
        chunks,
        (0..6).map(|index| Chunk { index }).collect::<Vec<_>>()
    );
    assert_eq!(others.len(), 1);
    others.pop().unwrap().run();
    assert_eq!(ran.load(Ordering::SeqCst), 1);
    for handle in handles {
        assert!(handle.join().unwrap_err().is_cancelled());
    }
    assert!(pool.await_termination(WAIT));
    let stats = pool.stats();
    assert_eq!((stats.completed, stats.cancelled), (3, 6)); // 7, gate, closure
    assert_eq!(job.progress().returned, 7);

    // Resubmitted after a "restart": the same values run.
    let again = TestPool::new(2);
    let resumed = again.group("job, resumed");
    let outputs: Vec<u32> = chunks
        .into_iter()
        .map(|chunk| resumed.submit_job(chunk).unwrap())
        .map(|handle| bounded_join(handle).unwrap())
        .collect();
    assert_eq!(outputs, vec![0, 10, 20, 30, 40, 50]);
}

#[test]
fn a_cancelled_groups_job_is_handed_back_refused() {
    let pool = TestPool::new(1);
    let job = pool.group("job");
    job.cancel();
    let rejected = job.submit_job(Chunk { index: 3 }).unwrap_err();
    assert_eq!(rejected.reason(), RejectReason::Cancelled);
    assert_eq!(rejected.into_inner(), Chunk { index: 3 });
}

// ----- bounded queues -------------------------------------------------------------

fn bounded_pool(capacity: usize) -> TestPool {
    TestPool::build(ThreadPool::builder().threads(1).queue_capacity(capacity))
}

#[test]
fn a_full_bounded_queue_refuses_a_groups_try_execute() {
    let pool = bounded_pool(2);
    let gate = Gate::occupying(&pool, 1);
    let job = pool.group("job");
    let ran = Arc::new(AtomicUsize::new(0));
    job.try_execute(bump(&ran)).unwrap();
    job.try_execute(bump(&ran)).unwrap();
    let rejected = job.try_execute(bump(&ran)).unwrap_err();
    assert_eq!(rejected.reason(), RejectReason::QueueFull);
    rejected.into_inner()();
    assert_eq!(ran.load(Ordering::SeqCst), 1, "handed back whole");
    let rejected = job.try_submit(|| 9).unwrap_err();
    assert_eq!(rejected.reason(), RejectReason::QueueFull);
    assert_eq!(rejected.into_inner()(), 9);
    assert_eq!(
        pool.try_execute(|| ()).unwrap_err().reason(),
        RejectReason::QueueFull,
        "groups share the pool's bound"
    );

    // Cancelling the group frees its places.
    assert_eq!(job.cancel(), 2);
    let other = pool.group("other");
    other.try_execute(bump(&ran)).unwrap();
    let handle = other.try_submit(|| 1).unwrap();
    gate.release();
    assert_eq!(bounded_join(handle).unwrap(), 1);
    assert!(other.wait(WAIT));
    assert_eq!(ran.load(Ordering::SeqCst), 2);
}

#[test]
fn a_groups_execute_blocked_on_a_full_queue_wakes_refused_on_shutdown() {
    let pool = bounded_pool(2);
    let gate = Gate::occupying(&pool, 1);
    let job = pool.group("job");
    let ran = Arc::new(AtomicUsize::new(0));
    job.execute(bump(&ran)).unwrap();
    job.execute(bump(&ran)).unwrap();
    let blocked = {
        let (job, ran) = (job.clone(), ran.clone());
        spawn(move || job.execute(bump(&ran)).map_err(|r| r.reason()))
    };
    thread::sleep(BRIEF);
    assert!(!blocked.is_finished(), "blocked while the queue is full");
    pool.shutdown();
    assert_eq!(
        blocked.join("the blocked execute"),
        Err(RejectReason::Shutdown)
    );
    gate.release();
    assert!(pool.await_termination(WAIT));
    assert_eq!(ran.load(Ordering::SeqCst), 2, "the accepted ones drained");
    assert_eq!(counts(&job), quiescent(2, 2, 0, 0));
}

#[test]
fn a_groups_execute_blocked_on_a_full_queue_is_refused_when_the_group_is_cancelled() {
    let pool = bounded_pool(2);
    let gate = Gate::occupying(&pool, 1);
    let job = pool.group("job");
    job.execute(|| ()).unwrap();
    job.execute(|| ()).unwrap();
    let blocked = {
        let job = job.clone();
        spawn(move || job.execute(|| ()).map_err(|r| r.reason()))
    };
    thread::sleep(BRIEF);
    assert!(!blocked.is_finished(), "blocked while the queue is full");
    assert_eq!(job.cancel(), 2);
    assert_eq!(
        blocked.join("the blocked execute"),
        Err(RejectReason::Cancelled)
    );
    // The refused one gave its place back: the queue has room for two.
    pool.try_execute(|| ()).unwrap();
    pool.try_execute(|| ()).unwrap();
    gate.release();
    assert!(pool.wait_idle(WAIT));
    assert_eq!(counts(&job), quiescent(2, 0, 2, 0));
}

#[test]
fn cancel_returning_hands_one_jobs_rest_back_and_the_books_add_up() {
    #[derive(Debug, PartialEq)]
    struct Chunk(u32);
    impl drainpool::Job for Chunk {
        type Output = u32;
        fn run(self) -> u32 {
            self.0
        }
    }
    let pool = TestPool::new(1);
    let job = pool.group("import");
    let other = pool.group("other");
    job.pause();
    job.task().name("plain").execute(|| ()).unwrap();
    let closure = job.task().name("closure").submit(|| 7u32).unwrap();
    let chunk = job.task().name("chunk").submit_job(Chunk(9)).unwrap();

    let rest = job.cancel_returning();
    let names: Vec<_> = rest.iter().map(|t| t.name().unwrap().to_owned()).collect();
    assert_eq!(names, ["plain", "closure", "chunk"]);
    assert!(
        !closure.is_finished() && !chunk.is_finished(),
        "the program decides now"
    );
    let refused = job.execute(|| ()).unwrap_err();
    assert_eq!(refused.reason(), drainpool::RejectReason::Cancelled);
    // The rest of the pool goes on.
    assert_eq!(bounded_join(other.submit(|| 5).unwrap()).unwrap(), 5);

    let p = job.progress();
    assert_eq!(
        (p.submitted, p.returned, p.queued, p.cancelled),
        (3, 3, 0, 0)
    );
    assert!(job.wait(WAIT), "handed back counts as ended for the group");

    let mut rest = rest.into_iter();
    rest.next().unwrap().run(); // the plain one, here and now
    rest.next().unwrap().run(); // the closure: its handle gets the value
    let value: Chunk = rest.next().unwrap().into_job().unwrap();
    assert_eq!(value, Chunk(9));
    assert_eq!(bounded_join(closure).unwrap(), 7);
    assert!(bounded_join(chunk).unwrap_err().is_cancelled());

    let stats = pool.stats();
    // other's task, plain and closure completed; the chunk taken back counts
    // as cancelled; nothing is still held.
    assert_eq!((stats.completed, stats.cancelled), (3, 1));
    assert!(pool.wait_idle(WAIT));
}

// ----- regressions: a group's tasks stranded or disturbed -----------------------

/// Regression (issue 12, defect 4): a worker running a task of group `g1`
/// that joins a task outside the group runs that task inline; the helped
/// task used to observe `g1`'s stop token, so `g1.cancel()` interrupted a
/// task that is not in `g1`.
#[test]
fn a_task_helped_by_a_joining_group_task_does_not_see_that_groups_cancel() {
    let pool = TestPool::new(1);
    let g1 = pool.group("g1");
    let (handle_tx, handle_rx) = mpsc::channel::<TaskHandle<bool>>();
    let joiner = g1
        .submit(move || {
            let helped = handle_rx.recv_timeout(WAIT).expect("the handle arrives");
            helped.join()
        })
        .unwrap();
    let started = Latch::default();
    let go_on = Latch::default();
    let helped = pool
        .submit({
            let (started, go_on) = (started.clone(), go_on.clone());
            move || {
                let token = StopToken::current();
                started.open();
                go_on.wait();
                token.is_stop_requested()
            }
        })
        .unwrap();
    handle_tx.send(helped).unwrap();
    started.expect_open(); // running inline on the joiner's worker
    g1.cancel();
    go_on.open();
    let seen_stop = bounded_join(joiner).unwrap().unwrap();
    assert!(!seen_stop, "a task outside g1 saw g1's cancel");
}

/// A group of 2,000 submitted tasks on a pool that is dropped at once: every
/// handle resolves and the group's books add up, however the drop meets the
/// workers.
fn drop_with_a_full_group_strands_nothing(round: usize, stop_now_during_drop: bool) {
    use drainpool::ShutdownPolicy;
    const TASKS: u64 = 2000;
    let builder = ThreadPool::builder().threads(2);
    let builder = if stop_now_during_drop {
        builder
    } else {
        builder.drop_policy(ShutdownPolicy::new(Duration::ZERO, WAIT))
    };
    let pool = builder.build().unwrap();
    let group = pool.group("job");
    let handles: Vec<TaskHandle<u64>> = (0..TASKS)
        .map(|i| {
            group
                .submit(move || {
                    spin(50);
                    i
                })
                .unwrap()
        })
        .collect();
    let requester = stop_now_during_drop.then(|| {
        let handle = pool.shutdown_handle();
        spawn(move || handle.request_shutdown_now())
    });
    drop(pool);
    if let Some(requester) = requester {
        requester.join("the shutdown_now request");
    }
    for handle in &handles {
        assert!(
            handle.wait_timeout(WAIT),
            "round {round}: task {} never resolved: {:?}",
            handle.id(),
            group.progress()
        );
    }
    // The tokens the requests' shutdown_now took back may still be dropping.
    assert!(group.wait(WAIT), "round {round}: {:?}", group.progress());
    let p = group.progress();
    assert_eq!(p.submitted, TASKS);
    assert_eq!((p.queued, p.running), (0, 0), "round {round}: {p:?}");
    assert_eq!(
        p.completed + p.panicked + p.cancelled + p.returned,
        TASKS,
        "round {round}: {p:?}"
    );
}

/// Regression (issue 12, defect 1): the drop emptied the pool's list of
/// groups while a worker held a group's token between taking it from the
/// queue and putting it back; the drop policy's `shutdown_now` then found
/// the group neither in the queue nor in the list, and ~1,800 handles never
/// resolved (about 1 round in 30).
#[test]
fn shutdown_now_of_a_drop_policy_strands_no_group_task() {
    for round in 0..150 {
        drop_with_a_full_group_strands_nothing(round, false);
    }
}

/// Regression (issue 12, defect 1): the same, with the `shutdown_now`
/// requested through a `ShutdownHandle` (a second signal) while a plain
/// drop drains.
#[test]
fn shutdown_now_requested_during_a_plain_drop_strands_no_group_task() {
    for round in 0..150 {
        drop_with_a_full_group_strands_nothing(round, true);
    }
}
