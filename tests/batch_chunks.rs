//! Large batches are queued in chunks (many tasks per queue entry): what a
//! chunk must not change. `shutdown_now` hands back every never-started
//! task of a chunk (also the rest of one a worker is in the middle of), in
//! order, each once; a panic mid-chunk loses nothing; a bounded
//! queue, `stats()` and `running_tasks` count tasks, not chunks; an idle
//! worker helps with a chunk another is running; priorities still apply
//! between chunks.
//!
//! Sizes: a batch of `n` tasks on `t` workers is cut into chunks of
//! `n / (4 t)` tasks (at most 128), so a batch of 64 is 4 chunks of 16 on
//! one worker and 8 chunks of 8 on two.

mod common;

use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use common::{DropCounter, Gate, Latch, Rng, TestPool, Tracked, WAIT, bounded_join, spin};
use drainpool::{PendingTask, Priority, RejectReason, TaskError, ThreadPool};

/// Indices in the order their tasks ran.
#[derive(Clone, Default)]
struct Order(Arc<Mutex<Vec<usize>>>);

impl Order {
    fn push(&self, i: usize) {
        self.0.lock().unwrap().push(i);
    }

    fn take(&self) -> Vec<usize> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }

    /// A task recording `i`.
    fn task(&self, i: usize) -> impl FnOnce() + Send + 'static {
        let order = self.clone();
        move || order.push(i)
    }
}

/// Runs the handed-back tasks here, in the order given; what they record
/// in `order` is the order they came back in.
fn run_all(pending: Vec<PendingTask>, order: &Order) -> Vec<usize> {
    for task in pending {
        task.run();
    }
    order.take()
}

#[test]
fn shutdown_now_mid_chunk_hands_back_the_rest_of_the_chunk_then_the_queue_in_order() {
    let pool = TestPool::new(1);
    let order = Order::default();
    let held = Gate::new();
    let tasks: Vec<Box<dyn FnOnce() + Send>> = (0..64)
        .map(|i| -> Box<dyn FnOnce() + Send> {
            let task = order.task(i);
            if i == 2 {
                Box::new(held.hold(task))
            } else {
                Box::new(task)
            }
        })
        .collect();
    pool.execute_batch(tasks).unwrap();
    held.wait_entered(1); // task 2 of the first chunk is running
    pool.execute(order.task(1000)).unwrap(); // queued behind the batch
    assert_eq!(pool.stats().queued, 62);
    assert_eq!(pool.stats().active, 1);
    assert_eq!(pool.running_tasks().len(), 1);

    let pending = pool.shutdown_now();
    assert_eq!(pending.len(), 62, "3..64 and the task after the batch");
    assert_eq!(order.take(), [0, 1], "only what started before ran");
    held.release();
    assert!(pool.await_termination(WAIT));
    assert_eq!(order.take(), [2], "the running task finished");
    let mut expected: Vec<usize> = (3..64).collect();
    expected.push(1000);
    assert_eq!(run_all(pending, &order), expected);
    let stats = pool.stats();
    assert_eq!((stats.completed, stats.queued, stats.active), (65, 0, 0));
}

#[test]
fn shutdown_now_with_two_workers_mid_chunk_hands_back_both_rests_first() {
    let pool = TestPool::new(2);
    let order = Order::default();
    // Both workers held while the batch is queued, so that each then takes
    // a chunk of its own: chunk 0 (tasks 0..8) and chunk 1 (8..16).
    let start = Gate::occupying(&pool, 2);
    let held = Gate::new();
    let tasks: Vec<Box<dyn FnOnce() + Send>> = (0..64)
        .map(|i| -> Box<dyn FnOnce() + Send> {
            let task = order.task(i);
            if i == 0 || i == 8 {
                Box::new(held.hold(task))
            } else {
                Box::new(task)
            }
        })
        .collect();
    pool.execute_batch(tasks).unwrap();
    pool.execute(order.task(1000)).unwrap();
    start.release();
    held.wait_entered(2);
    assert_eq!(pool.stats().active, 2);
    assert_eq!(pool.stats().queued, 63);

    let pending = pool.shutdown_now();
    held.release();
    assert!(pool.await_termination(WAIT));
    let mut ran = order.take();
    ran.sort_unstable();
    assert_eq!(ran, [0, 8]);
    let expected: Vec<usize> = (1..64).filter(|&i| i != 8).chain([1000]).collect();
    assert_eq!(run_all(pending, &order), expected);
}

#[test]
fn a_panic_mid_chunk_is_reported_and_the_rest_of_the_chunk_still_runs() {
    let panics = Arc::new(Mutex::new(Vec::new()));
    let pool = {
        let panics = panics.clone();
        TestPool::build(
            ThreadPool::builder()
                .threads(1)
                .thread_name("chunky")
                .panic_handler(move |p| {
                    panics.lock().unwrap().push((
                        p.message().map(str::to_owned),
                        p.thread().map(str::to_owned),
                    ))
                }),
        )
    };
    let order = Order::default();
    let tasks = (0..64).map(|i| {
        let record = order.task(i);
        move || {
            if i == 5 {
                panic!("task five");
            }
            record();
        }
    });
    pool.execute_batch(tasks).unwrap();
    assert!(pool.wait_idle(WAIT));
    let expected: Vec<usize> = (0..64).filter(|&i| i != 5).collect();
    assert_eq!(order.take(), expected);
    assert_eq!(
        *panics.lock().unwrap(),
        [(Some("task five".to_owned()), Some("chunky-0".to_owned()))]
    );
    let stats = pool.stats();
    assert_eq!((stats.completed, stats.panicked), (63, 1));
    // The worker survived.
    let ran = Arc::new(AtomicUsize::new(0));
    pool.execute(common::bump(&ran)).unwrap();
    assert!(pool.wait_idle(WAIT));
    assert_eq!(ran.load(Ordering::SeqCst), 1);
}

#[test]
fn a_bounded_queue_gives_room_back_task_by_task_as_a_chunk_runs() {
    let pool = TestPool::build(ThreadPool::builder().threads(1).queue_capacity(64));
    let start = Gate::occupying(&pool, 1);
    let held = Gate::new();
    let tasks: Vec<Box<dyn FnOnce() + Send>> = (0..64)
        .map(|i| -> Box<dyn FnOnce() + Send> {
            if i == 10 {
                Box::new(held.task())
            } else {
                Box::new(|| ())
            }
        })
        .collect();
    pool.execute_batch(tasks).unwrap(); // exactly the capacity
    let full = pool.try_execute(|| ()).unwrap_err();
    assert_eq!(full.reason(), RejectReason::QueueFull);
    start.release();
    held.wait_entered(1); // tasks 0..=10 have left the queue
    let stats = pool.stats();
    assert_eq!((stats.queued, stats.active), (53, 1));
    for _ in 0..11 {
        pool.try_execute(|| ())
            .expect("room freed by the tasks started");
    }
    let full = pool.try_execute(|| ()).unwrap_err();
    assert_eq!(full.reason(), RejectReason::QueueFull);
    held.release();
    assert!(pool.wait_idle(WAIT));
    assert_eq!(pool.stats().completed, 1 + 64 + 11);
}

#[test]
fn a_cancelled_handle_inside_a_queued_chunk_is_skipped_and_counted_once() {
    let pool = TestPool::new(1);
    let start = Gate::occupying(&pool, 1);
    let ran = Arc::new(AtomicUsize::new(0));
    let handles = pool
        .submit_batch((0..64usize).map(|i| {
            let ran = ran.clone();
            move || {
                ran.fetch_add(1, Ordering::SeqCst);
                i
            }
        }))
        .unwrap();
    assert!(handles[20].cancel(), "still queued, inside its chunk");
    start.release();
    for (i, handle) in handles.into_iter().enumerate() {
        match bounded_join(handle) {
            Ok(v) => assert_eq!(v, i),
            Err(e) => assert!(i == 20 && e.is_cancelled(), "task {i}: {e:?}"),
        }
    }
    assert!(pool.wait_idle(WAIT));
    assert_eq!(ran.load(Ordering::SeqCst), 63);
    let stats = pool.stats();
    assert_eq!((stats.completed, stats.cancelled), (64, 1));
}

#[test]
fn shutdown_now_mid_chunk_of_submit_batch_resolves_the_handles_of_the_rest() {
    let pool = TestPool::new(1);
    let held = Gate::new();
    let handles = pool
        .submit_batch((0..64usize).map(|i| {
            let hold = (i == 3).then(|| held.task());
            move || {
                if let Some(hold) = hold {
                    hold();
                }
                i
            }
        }))
        .unwrap();
    held.wait_entered(1);
    let pending = pool.shutdown_now();
    assert_eq!(pending.len(), 60);
    let ids: Vec<_> = pending.iter().map(PendingTask::id).collect();
    let expected: Vec<_> = handles[4..].iter().map(|h| h.id()).collect();
    assert_eq!(ids, expected, "the rest, in submission order");
    // Half are run here, half dropped (cancelled).
    for (n, task) in pending.into_iter().enumerate() {
        if n % 2 == 0 {
            task.run();
        } else {
            drop(task);
        }
    }
    held.release();
    for (i, handle) in handles.into_iter().enumerate() {
        match bounded_join(handle) {
            Ok(_) => assert!(i < 4 || (i - 4) % 2 == 0, "task {i} ran"),
            Err(TaskError::Cancelled) => assert!(i >= 4 && (i - 4) % 2 == 1, "task {i}"),
            Err(e) => panic!("task {i}: {e:?}"),
        }
    }
    assert!(pool.await_termination(WAIT));
    let stats = pool.stats();
    assert_eq!((stats.completed, stats.cancelled), (34, 30));
}

#[test]
fn an_idle_worker_joins_in_on_the_chunk_another_is_running() {
    // The last chunk of the batch (tasks 56..64) is taken when nothing else
    // is queued. Its first task waits until a second task of that chunk
    // has started: on the other worker, which can only get there by
    // helping, since the chunk is in the first one's hands.
    let pool = TestPool::new(2);
    let started = Arc::new((Mutex::new(0usize), Condvar::new()));
    let helped = Arc::new(AtomicU8::new(0));
    let tasks = (0..64).map(|i| {
        let (started, helped) = (started.clone(), helped.clone());
        move || {
            if i < 56 {
                return;
            }
            let (count, cond) = &*started;
            let mut count = count.lock().unwrap();
            *count += 1;
            cond.notify_all();
            if i == 56 {
                let (count, _) = cond
                    .wait_timeout_while(count, WAIT, |count| *count < 2)
                    .unwrap();
                helped.store(u8::from(*count >= 2), Ordering::SeqCst);
            }
        }
    });
    pool.execute_batch(tasks).unwrap();
    assert!(pool.wait_idle(WAIT * 2));
    assert_eq!(
        helped.load(Ordering::SeqCst),
        1,
        "the idle worker never helped with the last chunk"
    );
    assert_eq!(pool.stats().completed, 64);
}

#[test]
fn a_high_priority_task_waits_at_most_for_the_rest_of_the_running_chunk() {
    let pool = TestPool::new(1);
    let order = Order::default();
    let held = Gate::new();
    let tasks: Vec<Box<dyn FnOnce() + Send>> = (0..64)
        .map(|i| -> Box<dyn FnOnce() + Send> {
            let task = order.task(i);
            if i == 2 {
                Box::new(held.hold(task))
            } else {
                Box::new(task)
            }
        })
        .collect();
    pool.execute_batch(tasks).unwrap();
    held.wait_entered(1);
    pool.task()
        .priority(Priority::High)
        .execute(order.task(1000))
        .unwrap();
    held.release();
    assert!(pool.wait_idle(WAIT));
    let ran = order.take();
    let high = ran.iter().position(|&i| i == 1000).unwrap();
    // The first chunk is 0..16: the rest of it, then the urgent task, then
    // the next chunk.
    assert_eq!(high, 16, "{ran:?}");
    let batch: Vec<usize> = ran.into_iter().filter(|&i| i != 1000).collect();
    assert_eq!(batch, (0..64).collect::<Vec<_>>());
}

/// One task of the race: counts its runs, its drop, and where it came
/// back from.
struct Counted {
    index: usize,
    runs: Arc<Vec<AtomicU8>>,
    order: Order,
    trigger: Option<Latch>,
    work: u64,
    _drop: Tracked,
}

impl Counted {
    fn run(self) {
        spin(self.work);
        self.runs[self.index].fetch_add(1, Ordering::SeqCst);
        self.order.push(self.index);
        if let Some(trigger) = &self.trigger {
            trigger.open();
        }
    }
}

#[test]
fn shutdown_now_racing_workers_inside_chunks_accounts_for_every_task_once() {
    const N: usize = 600;
    let mut rng = Rng(0x5eed_c4a7_0b5e_55ed);
    for round in 0..300 {
        let threads = 1 + (rng.next() % 3) as usize;
        let pool = TestPool::new(threads);
        let runs: Arc<Vec<AtomicU8>> = Arc::new((0..N).map(|_| AtomicU8::new(0)).collect());
        let drops = DropCounter::default();
        let ran_on_workers = Order::default();
        let trigger = Latch::default();
        let at = (rng.next() % N as u64) as usize;
        let wait_for_trigger = rng.next() % 2 == 0;
        let tasks: Vec<_> = (0..N)
            .map(|index| {
                let task = Counted {
                    index,
                    runs: runs.clone(),
                    order: ran_on_workers.clone(),
                    trigger: (index == at).then(|| trigger.clone()),
                    work: rng.spins(10),
                    _drop: drops.tracked(),
                };
                move || task.run()
            })
            .collect();
        pool.execute_batch(tasks).unwrap();
        if wait_for_trigger {
            trigger.expect_open();
        } else {
            spin(rng.spins(18));
        }
        let pending = pool.shutdown_now();
        assert!(pool.await_termination(WAIT), "round {round}");

        // Ran on a worker xor handed back; handed back in order.
        let mut on_workers = ran_on_workers.take();
        let handed_back = run_all(pending, &ran_on_workers);
        assert!(
            handed_back.windows(2).all(|w| w[0] < w[1]),
            "round {round}: handed back out of order: {handed_back:?}"
        );
        on_workers.extend(&handed_back);
        on_workers.sort_unstable();
        assert_eq!(
            on_workers,
            (0..N).collect::<Vec<_>>(),
            "round {round}: a task ran twice or never"
        );
        assert!(runs.iter().all(|r| r.load(Ordering::SeqCst) == 1));
        assert_eq!(
            drops.count(),
            N,
            "round {round}: every closure dropped once"
        );
        let stats = pool.stats();
        assert_eq!(
            (stats.completed, stats.queued, stats.active),
            (N as u64, 0, 0),
            "round {round}"
        );
        drop(pool);
    }
}

#[test]
fn shutdown_racing_chunks_runs_every_task_once() {
    let mut rng = Rng(0xd4a1_2b3c_0ffe_e001);
    for round in 0..100 {
        let pool = TestPool::new(1 + (rng.next() % 3) as usize);
        let ran = Arc::new(AtomicUsize::new(0));
        let n = 1 + (rng.next() % 2000) as usize;
        pool.execute_batch((0..n).map(|_| common::bump(&ran)))
            .unwrap();
        spin(rng.spins(16));
        pool.shutdown();
        assert!(pool.await_termination(WAIT), "round {round}");
        assert_eq!(ran.load(Ordering::SeqCst), n, "round {round}");
    }
}

#[test]
fn dropping_the_pool_drains_every_chunk() {
    let ran = Arc::new(AtomicUsize::new(0));
    {
        let pool = ThreadPool::new(2).unwrap();
        pool.execute_batch((0..5000).map(|_| common::bump(&ran)))
            .unwrap();
    }
    assert_eq!(ran.load(Ordering::SeqCst), 5000);
}
