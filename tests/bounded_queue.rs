//! A bounded queue: `try_` calls refuse with `QueueFull`, blocking calls wait
//! for room and wake with `Shutdown` when the pool stops (from the pool's
//! own worker, which could wait forever, they refuse at once), and under a
//! race every task is run, handed back or rejected exactly once.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Barrier};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use common::{BRIEF, DropCounter, Gate, Latch, TestPool, WAIT, bounded_join, bump, spawn};
use drainpool::{PendingTask, Priority, RejectReason, TaskError, ThreadPool};

/// The queue bound of the single-worker tests.
const CAPACITY: usize = 2;

/// A single-worker pool with a queue of [`CAPACITY`]: its worker held by the
/// gate returned with it, its queue full of tasks that bump `fillers`.
fn full_pool(fillers: &Arc<AtomicUsize>) -> (Arc<TestPool>, Gate) {
    let pool = Arc::new(TestPool::build(
        ThreadPool::builder().threads(1).queue_capacity(CAPACITY),
    ));
    // Off the queue and running: the queue is empty now.
    let hold = Gate::occupying(&pool, 1);
    for _ in 0..CAPACITY {
        pool.try_execute(bump(fillers)).expect("room in the queue");
    }
    (pool, hold)
}

/// How a submitter offers its task.
#[derive(Clone, Copy, Debug)]
enum Intake {
    Execute,
    Submit,
}

/// A thread offering one task with a blocking call.
struct Submitter {
    outcome: Receiver<Result<(), RejectReason>>,
    thread: JoinHandle<()>,
}

impl Submitter {
    /// Offers a task that bumps `ran`. A rejected task is run by the
    /// submitter from `into_inner`, so `ran` reaches 1 either way when the
    /// task was handed back whole.
    fn spawn(pool: &Arc<TestPool>, intake: Intake, ran: &Arc<AtomicUsize>) -> Submitter {
        let (pool, task) = (pool.clone(), bump(ran));
        let (tx, outcome) = mpsc::channel();
        let thread = thread::spawn(move || {
            let result = match intake {
                Intake::Execute => pool.execute(task),
                Intake::Submit => pool.submit(task).map(drop),
            };
            tx.send(result.as_ref().map(|_| ()).map_err(|r| r.reason()))
                .unwrap();
            if let Err(rejected) = result {
                rejected.into_inner()();
            }
        });
        Submitter { outcome, thread }
    }

    fn is_blocked(&self) -> bool {
        self.outcome.recv_timeout(BRIEF) == Err(RecvTimeoutError::Timeout)
    }

    /// How the call ended, once it has.
    fn finish(self) -> Result<(), RejectReason> {
        let outcome = self
            .outcome
            .recv_timeout(WAIT)
            .expect("the submitter returned");
        self.thread.join().expect("the submitter did not panic");
        outcome
    }
}

fn counters(n: usize) -> Arc<Vec<AtomicUsize>> {
    Arc::new((0..n).map(|_| AtomicUsize::new(0)).collect())
}

fn sum(counters: &[AtomicUsize]) -> usize {
    counters.iter().map(|c| c.load(Ordering::SeqCst)).sum()
}

/// `shutdown_now` on another thread, so that a hang fails the test.
fn shutdown_now_within(pool: &Arc<TestPool>) -> Vec<PendingTask> {
    let pool = pool.clone();
    spawn(move || pool.shutdown_now()).join("shutdown_now")
}

/// Spins (yielding) until `done`, or for at most a moment: it only paces a
/// race, so it asserts nothing and a miss costs coverage, not a failure.
fn spin_until(mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_millis(200);
    while !done() && Instant::now() < deadline {
        thread::yield_now();
    }
}

#[test]
fn try_calls_refuse_a_full_queue_and_hand_the_task_back() {
    let fillers = Arc::new(AtomicUsize::new(0));
    let (pool, hold) = full_pool(&fillers);
    let by_caller = Arc::new(AtomicUsize::new(0));

    let rejected = pool.try_execute(bump(&by_caller)).unwrap_err();
    assert_eq!(rejected.reason(), RejectReason::QueueFull);
    rejected.into_inner()();
    assert_eq!(by_caller.load(Ordering::SeqCst), 1, "the closure came back");

    let rejected = pool.try_submit(|| 7).unwrap_err();
    assert_eq!(rejected.reason(), RejectReason::QueueFull);
    assert_eq!(rejected.into_inner()(), 7);

    let rejected = pool.task().name("n").try_execute(|| ()).unwrap_err();
    assert_eq!(rejected.reason(), RejectReason::QueueFull);
    let rejected = pool.task().name("n").try_submit(|| ()).unwrap_err();
    assert_eq!(rejected.reason(), RejectReason::QueueFull);
    assert_eq!(pool.stats().rejected, 4);
    assert_eq!(pool.stats().queued, CAPACITY);

    hold.release();
    assert!(pool.wait_idle(WAIT));
    assert_eq!(fillers.load(Ordering::SeqCst), CAPACITY);
    assert_eq!(bounded_join(pool.try_submit(|| 1).unwrap()).unwrap(), 1);
}

/// One submitter of each intake, both blocked on the full queue of `pool`,
/// offering tasks that bump `ran`.
fn blocked_submitters(pool: &Arc<TestPool>, ran: &Arc<AtomicUsize>) -> [Submitter; 2] {
    let submitters = [Intake::Execute, Intake::Submit].map(|i| Submitter::spawn(pool, i, ran));
    for submitter in &submitters {
        assert!(submitter.is_blocked());
    }
    submitters
}

/// Once the pool stops, both [`blocked_submitters`] wake with `Shutdown`
/// and their tasks come back to them whole (they run them: `ran` is 2).
fn assert_refused_and_handed_back(submitters: [Submitter; 2], ran: &AtomicUsize) {
    for submitter in submitters {
        assert_eq!(submitter.finish(), Err(RejectReason::Shutdown));
    }
    assert_eq!(
        ran.load(Ordering::SeqCst),
        2,
        "both came back to the caller"
    );
}

/// The task offered to a full queue waits until the worker frees a slot.
fn blocks_until_a_slot_frees(intake: Intake) {
    let fillers = Arc::new(AtomicUsize::new(0));
    let (pool, hold) = full_pool(&fillers);
    let ran = Arc::new(AtomicUsize::new(0));
    let submitter = Submitter::spawn(&pool, intake, &ran);
    assert!(
        submitter.is_blocked(),
        "{intake:?} waits while the queue is full"
    );

    hold.release();
    assert_eq!(submitter.finish(), Ok(()));
    assert!(pool.wait_idle(WAIT));
    assert_eq!(ran.load(Ordering::SeqCst), 1, "the pool ran it");
    assert_eq!(fillers.load(Ordering::SeqCst), CAPACITY);
    assert_eq!(pool.stats().rejected, 0);
}

#[test]
fn execute_blocks_while_the_queue_is_full() {
    blocks_until_a_slot_frees(Intake::Execute);
}

#[test]
fn submit_blocks_while_the_queue_is_full() {
    blocks_until_a_slot_frees(Intake::Submit);
}

#[test]
fn blocked_submitters_wake_with_shutdown_on_shutdown() {
    let fillers = Arc::new(AtomicUsize::new(0));
    let (pool, hold) = full_pool(&fillers);
    let ran = Arc::new(AtomicUsize::new(0));
    let submitters = blocked_submitters(&pool, &ran);

    pool.shutdown();
    assert_refused_and_handed_back(submitters, &ran);
    hold.release();
    assert!(pool.await_termination(WAIT));
    assert_eq!(
        fillers.load(Ordering::SeqCst),
        CAPACITY,
        "the queue drained"
    );
    assert_eq!(pool.stats().rejected, 2);
}

#[test]
fn blocked_submitters_wake_with_shutdown_on_shutdown_now() {
    let fillers = Arc::new(AtomicUsize::new(0));
    let (pool, hold) = full_pool(&fillers);
    let ran = Arc::new(AtomicUsize::new(0));
    let submitters = blocked_submitters(&pool, &ran);

    let pending = shutdown_now_within(&pool);
    assert_refused_and_handed_back(submitters, &ran);
    assert_eq!(
        pending.len(),
        CAPACITY,
        "only the queued tasks are handed back"
    );
    drop(pending);
    hold.release();
    assert!(pool.await_termination(WAIT));
    assert_eq!(
        fillers.load(Ordering::SeqCst),
        0,
        "the fillers never started"
    );
    let stats = pool.stats();
    assert_eq!((stats.rejected, stats.cancelled), (2, CAPACITY as u64));
}

#[test]
fn producers_blocked_on_a_full_queue_race_shutdown() {
    const ROUNDS: usize = 1_000;
    const PRODUCERS: usize = 4;
    const PER_PRODUCER: usize = 50;
    const TASKS: usize = PRODUCERS * PER_PRODUCER;
    const QUEUE: usize = 2;
    let (mut total_rejected, mut total_returned) = (0, 0);

    for round in 0..ROUNDS {
        // Rounds alternate shutdown_now and shutdown. Every other pair holds
        // the workers, so the stop finds every producer blocked on the full
        // queue; the others stop at a different point of progress each time.
        let now = round % 2 == 1;
        let held = round % 4 >= 2;
        let pool = Arc::new(TestPool::build(
            ThreadPool::builder().threads(2).queue_capacity(QUEUE),
        ));
        let (ran, rejected) = (counters(TASKS), counters(TASKS));
        let drops = DropCounter::default();
        let resume = Latch::default();
        if !held {
            resume.open();
        }
        let start = Arc::new(Barrier::new(PRODUCERS + 1));
        let (done_tx, done_rx) = mpsc::channel();

        let producers: Vec<_> = (0..PRODUCERS)
            .map(|p| {
                let (pool, ran, rejected) = (pool.clone(), ran.clone(), rejected.clone());
                let (drops, resume) = (drops.clone(), resume.clone());
                let (start, done) = (start.clone(), done_tx.clone());
                thread::spawn(move || {
                    start.wait();
                    let mut handles = Vec::new();
                    for i in p * PER_PRODUCER..(p + 1) * PER_PRODUCER {
                        let (ran, tracked, resume) = (ran.clone(), drops.tracked(), resume.clone());
                        let task = move || {
                            let _tracked = tracked;
                            resume.wait();
                            ran[i].fetch_add(1, Ordering::SeqCst);
                        };
                        // Named by index, so a handed-back task says which it is.
                        let builder = pool.task().name(i.to_string());
                        let result = if p % 2 == 0 {
                            builder.execute(task).map(|()| None)
                        } else {
                            builder.submit(task).map(Some)
                        };
                        match result {
                            Ok(handle) => handles.extend(handle.map(|h| (i, h))),
                            Err(refused) => {
                                assert_eq!(refused.reason(), RejectReason::Shutdown);
                                rejected[i].fetch_add(1, Ordering::SeqCst);
                                drop(refused.into_inner());
                            }
                        }
                    }
                    done.send(handles).unwrap();
                })
            })
            .collect();
        start.wait();

        if held {
            // Two tasks held on the workers, two queued, and every producer
            // blocked waiting for room.
            spin_until(|| {
                let stats = pool.stats();
                stats.queued >= QUEUE && stats.blocked_submitters >= PRODUCERS
            });
        } else {
            let target = round % 40 * 5;
            spin_until(|| sum(&ran) >= target);
        }
        let mut returned = vec![0_usize; TASKS];
        if now {
            for task in shutdown_now_within(&pool) {
                let i: usize = task.name().expect("named").parse().unwrap();
                returned[i] += 1;
            } // each PendingTask is dropped here: cancelled
        } else {
            pool.shutdown();
        }
        resume.open();

        let mut handles = Vec::new();
        for _ in 0..PRODUCERS {
            handles.extend(done_rx.recv_timeout(WAIT).expect("a producer finished"));
        }
        for producer in producers {
            producer.join().expect("a producer did not panic");
        }
        assert!(pool.await_termination(WAIT), "round {round}: terminated");

        for (i, handle) in handles {
            match bounded_join(handle) {
                Ok(()) => assert_eq!(ran[i].load(Ordering::SeqCst), 1),
                Err(TaskError::Cancelled) => assert_eq!(returned[i], 1),
                Err(e) => panic!("round {round}, task {i}: unexpected {e:?}"),
            }
        }
        for (i, returned) in returned.iter().enumerate() {
            let ran = ran[i].load(Ordering::SeqCst);
            let rejected = rejected[i].load(Ordering::SeqCst);
            assert_eq!(
                ran + returned + rejected,
                1,
                "round {round}, task {i}: ran {ran}, returned {returned}, rejected {rejected}"
            );
        }
        let returned: usize = returned.iter().sum();
        if !now {
            assert_eq!(returned, 0, "shutdown hands nothing back");
        }
        assert_eq!(drops.count(), TASKS, "every closure dropped exactly once");
        let stats = pool.stats();
        assert_eq!(stats.completed, sum(&ran) as u64);
        assert_eq!(stats.rejected, sum(&rejected) as u64);
        assert_eq!(stats.cancelled, returned as u64);
        total_rejected += sum(&rejected);
        total_returned += returned;
    }
    assert!(total_rejected > 0, "the stop caught producers mid-way");
    assert!(total_returned > 0, "shutdown_now found queued tasks");
}

// One-word closures (kept in their queue entries, not boxed) through the
// general intake path: a bounded queue, every priority, with and without a
// name. Those that ran ran once; the rest come back from shutdown_now; every
// capture is dropped exactly once.
#[test]
fn one_word_closures_at_every_priority_run_or_come_back_once() {
    let pool = ThreadPool::builder()
        .threads(1)
        .queue_capacity(64)
        .build()
        .unwrap();
    let hold = Gate::occupying(&pool, 1);
    let drops = DropCounter::default();
    let runs = Arc::new(AtomicUsize::new(0));
    let priorities = [Priority::High, Priority::Normal, Priority::Low];
    for i in 0..30usize {
        let tracked = drops.tracked(); // one word: the closure is inline
        let task = pool.task().priority(priorities[i % 3]);
        let task = if i % 2 == 0 {
            task
        } else {
            task.name(format!("t{i}"))
        };
        task.try_execute(move || drop(tracked)).unwrap();
    }
    // Ten more that run: the held worker is released first.
    hold.release();
    for _ in 0..10 {
        pool.execute(bump(&runs)).unwrap();
    }
    assert!(pool.wait_idle(WAIT));
    assert_eq!(runs.load(Ordering::SeqCst), 10);
    assert_eq!(drops.count(), 30, "the 30 ran, each capture dropped once");
    let stats = pool.stats();
    assert_eq!(stats.completed, 41);

    // And handed back: queued behind a held worker, then shutdown_now.
    let hold = Gate::occupying(&pool, 1);
    let drops = DropCounter::default();
    for i in 0..30usize {
        let tracked = drops.tracked();
        pool.task()
            .priority(priorities[i % 3])
            .try_execute(move || drop(tracked))
            .unwrap();
    }
    let pending = pool.shutdown_now();
    hold.release();
    assert_eq!(pending.len(), 30);
    assert_eq!(drops.count(), 0, "none ran, none dropped yet");
    let mut ran = 0;
    for (i, task) in pending.into_iter().enumerate() {
        if i % 2 == 0 {
            task.run();
            ran += 1;
        }
    }
    assert_eq!(drops.count(), 30);
    assert!(pool.await_termination(WAIT));
    let stats = pool.stats();
    assert_eq!(stats.completed, 42 + ran);
    assert_eq!(stats.cancelled, 30 - ran);
}

// ----- regressions: room and refusals -----------------------------------------

/// Regression (issue 12, defect 10): on a full bounded queue after
/// `shutdown`, `try_execute` and `try_submit` said `QueueFull`; a caller
/// must not retry a shut-down pool: the reason is `Shutdown`.
#[test]
fn a_full_queue_after_shutdown_refuses_with_shutdown() {
    let fillers = Arc::new(AtomicUsize::new(0));
    let (pool, hold) = full_pool(&fillers);
    let group = pool.group("g");
    pool.shutdown();
    let reasons = [
        pool.try_execute(|| ()).unwrap_err().reason(),
        pool.try_submit(|| ()).unwrap_err().reason(),
        pool.task()
            .name("n")
            .try_execute(|| ())
            .unwrap_err()
            .reason(),
        pool.task()
            .name("n")
            .try_submit(|| ())
            .unwrap_err()
            .reason(),
        group.try_execute(|| ()).unwrap_err().reason(),
        group.try_submit(|| ()).unwrap_err().reason(),
        pool.execute_batch(vec![|| (); CAPACITY + 1])
            .unwrap_err()
            .reason(),
    ];
    assert!(
        reasons.iter().all(|r| *r == RejectReason::Shutdown),
        "{reasons:?}"
    );
    drop(hold);
    assert!(pool.await_termination(WAIT));
    assert_eq!(fillers.load(Ordering::SeqCst), CAPACITY);
}

/// Regression (issue 12, defect 13): a batch waiting for room starved
/// behind single submitters (8 tasks at capacity 8 waited 3 s while ~21,000
/// single tasks got in). Waiters get room in the order they came.
#[test]
fn a_batch_waiting_for_room_is_not_starved_by_single_submitters() {
    use std::sync::atomic::AtomicBool;
    const ROOM: usize = 8;
    let pool = Arc::new(TestPool::build(
        ThreadPool::builder().threads(2).queue_capacity(ROOM),
    ));
    let stop = Arc::new(AtomicBool::new(false));
    let singles = Arc::new(AtomicUsize::new(0));
    // Two submitters of single tasks slower to run than to submit: the
    // queue stays full, and each place a worker frees is wanted at once.
    let single_submitters: Vec<_> = (0..2)
        .map(|_| {
            let (pool, stop, singles) = (pool.clone(), stop.clone(), singles.clone());
            spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    if pool.execute(|| common::spin(5000)).is_err() {
                        break;
                    }
                    singles.fetch_add(1, Ordering::SeqCst);
                }
            })
        })
        .collect();
    let deadline = Instant::now() + WAIT;
    while singles.load(Ordering::SeqCst) < 100 {
        assert!(Instant::now() < deadline, "the single submitter got stuck");
        thread::yield_now();
    }
    let batch = {
        let (pool, singles) = (pool.clone(), singles.clone());
        spawn(move || {
            let before = singles.load(Ordering::SeqCst);
            let accepted = pool
                .execute_batch(vec![|| common::spin(5000); ROOM])
                .is_ok();
            (accepted, singles.load(Ordering::SeqCst) - before)
        })
    };
    let (accepted, overtaken) = batch.join("the batch waiting for room");
    assert!(accepted);
    stop.store(true, Ordering::SeqCst);
    for submitter in single_submitters {
        submitter.join("a single submitter");
    }
    assert!(
        overtaken <= 4 * ROOM,
        "{overtaken} single tasks got in while the batch waited"
    );
}

/// Regression (issue 12, defect 8): two queued tasks cancelled through their
/// handles kept their room in a bounded queue until a worker skipped their
/// dead entries: `stats().queued` said 0 while `try_submit` said `QueueFull`.
/// The room comes back when the task's end is decided.
#[test]
fn cancelled_tasks_give_their_room_back_at_once() {
    let pool = TestPool::build(ThreadPool::builder().threads(1).queue_capacity(CAPACITY));
    let busy = Gate::occupying(&pool, 1);
    let handles: Vec<_> = (0..CAPACITY).map(|_| pool.submit(|| ()).unwrap()).collect();
    let refused = pool.try_execute(|| ()).unwrap_err();
    assert_eq!(refused.reason(), RejectReason::QueueFull);
    for handle in &handles {
        assert!(handle.cancel());
    }
    assert_eq!(pool.stats().queued, 0);
    let group = pool.group("g");
    let in_group: Vec<_> = (0..CAPACITY)
        .map(|_| {
            group
                .try_submit(|| ())
                .expect("the room of the cancelled tasks")
        })
        .collect();
    for handle in &in_group {
        assert!(handle.cancel());
    }
    let ran = Arc::new(AtomicUsize::new(0));
    for _ in 0..CAPACITY {
        pool.try_execute(bump(&ran))
            .expect("the room of the cancelled group tasks");
    }
    busy.release();
    assert!(pool.wait_idle(WAIT));
    assert_eq!(ran.load(Ordering::SeqCst), CAPACITY);
    let stats = pool.stats();
    assert_eq!(stats.cancelled, 2 * CAPACITY as u64);
    assert_eq!(stats.queued, 0);
}

/// Regression (issue 12, defect 12): a worker's blocking `execute` into its
/// own pool's full bounded queue blocked forever (on a one-thread pool
/// nothing else could ever make room). It returns `QueueFull` at once, with
/// the task handed back, for every intake form.
#[test]
fn a_workers_blocking_submit_into_its_own_full_queue_returns_at_once() {
    let pool = Arc::new(TestPool::build(
        ThreadPool::builder().threads(1).queue_capacity(1),
    ));
    let inner = pool.clone();
    let reasons = pool
        .submit(move || {
            inner.execute(|| ()).expect("room for one");
            let group = inner.group("g");
            [
                inner.execute(|| ()).unwrap_err().reason(),
                inner.submit(|| ()).unwrap_err().reason(),
                inner.task().name("n").execute(|| ()).unwrap_err().reason(),
                group.execute(|| ()).unwrap_err().reason(),
                group.submit(|| ()).unwrap_err().reason(),
                inner.execute_batch(vec![|| ()]).unwrap_err().reason(),
            ]
        })
        .unwrap();
    let reasons = bounded_join(reasons).unwrap();
    assert!(
        reasons.iter().all(|r| *r == RejectReason::QueueFull),
        "{reasons:?}"
    );
}
