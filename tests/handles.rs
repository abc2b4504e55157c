//! Task handles: `join`, `wait_timeout`, `is_finished`, `cancel`, `id`,
//! `name`, detaching by drop, and join-helping from inside a worker.

mod common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::{
    BRIEF, DropCounter, Gate, Latch, TestPool, WAIT, at_once, bounded_join, spawn, still_blocked,
};
use drainpool::{StopToken, TaskError, TaskHandle, ThreadPool};

/// Submits a task that returns `value` once the gate returned with it is
/// released; returns once the task runs.
fn held_task<T: Send + 'static>(pool: &ThreadPool, value: T) -> (TaskHandle<T>, Gate) {
    let gate = Gate::new();
    let handle = pool.submit(gate.hold(move || value)).unwrap();
    gate.wait_entered(1);
    (handle, gate)
}

fn thread_name() -> String {
    thread::current().name().unwrap_or("<unnamed>").to_owned()
}

#[test]
fn join_returns_the_value() {
    let pool = TestPool::new(2);
    let handle = pool.submit(|| 6 * 7).unwrap();
    assert_eq!(bounded_join(handle).unwrap(), 42);
}

#[test]
fn join_returns_the_panic_payload() {
    let pool = TestPool::new(2);

    let n = std::hint::black_box(7); // a runtime value: the payload is a String
    let formatted = pool.submit(move || -> u32 { panic!("boom {n}") }).unwrap();
    let err = bounded_join(formatted).unwrap_err();
    assert!(err.is_panic());
    assert!(!err.is_cancelled());
    assert_eq!(err.panic_message(), Some("boom 7"));
    let TaskError::Panicked(payload) = err else {
        panic!("expected Panicked")
    };
    let payload = payload.into_inner();
    assert_eq!(payload.downcast_ref::<String>().unwrap(), "boom 7");

    let literal = pool.submit(|| panic!("static message")).unwrap();
    let err: TaskError = bounded_join::<()>(literal).unwrap_err();
    assert_eq!(err.panic_message(), Some("static message"));

    let custom = pool.submit(|| std::panic::panic_any(17_u8)).unwrap();
    let err: TaskError = bounded_join::<()>(custom).unwrap_err();
    assert_eq!(
        err.panic_message(),
        None,
        "a non-string payload has no message"
    );
    assert_eq!(err.into_panic().downcast_ref::<u8>(), Some(&17));
}

/// Once the pool has terminated, a handle holds the only reference to its
/// task's cell, and `join` reads the result without the cell's lock: each
/// end (a value, a panic, a cancel) still comes out once, and the value is
/// the caller's to drop.
#[test]
fn join_after_termination_gives_each_end_once() {
    let pool = TestPool::new(1);
    let hold = Gate::occupying(&pool, 1);
    let drops = DropCounter::default();
    let value = {
        let tracked = drops.tracked();
        pool.submit(move || tracked).unwrap()
    };
    let panicked = pool.submit(|| -> u32 { panic!("boom") }).unwrap();
    let cancelled = pool.submit(|| 7).unwrap();
    assert!(cancelled.cancel());
    hold.release();
    pool.shutdown();
    assert!(pool.await_termination(WAIT));

    let tracked = value.join().expect("it ran");
    assert_eq!(drops.count(), 0, "the value is handed over, not dropped");
    drop(tracked);
    assert_eq!(drops.count(), 1);
    assert_eq!(panicked.join().unwrap_err().panic_message(), Some("boom"));
    assert!(cancelled.join().unwrap_err().is_cancelled());
}

#[test]
fn cancelling_a_queued_task_drops_it_at_once_and_it_never_runs() {
    let pool = TestPool::new(1);
    let hold = Gate::occupying(&pool, 1);
    let drops = DropCounter::default();
    let ran = Arc::new(AtomicBool::new(false));
    let handle = {
        let tracked = drops.tracked();
        let ran = ran.clone();
        pool.submit(move || {
            let _tracked = tracked;
            ran.store(true, Ordering::SeqCst);
        })
        .unwrap()
    };

    assert!(!handle.is_finished());
    assert!(handle.cancel(), "a queued task can be cancelled");
    assert!(handle.is_finished(), "a cancelled handle resolves at once");
    assert!(handle.wait_timeout(Duration::ZERO));
    assert_eq!(drops.count(), 1, "the captures drop at cancel time");
    assert!(!handle.cancel(), "there is nothing left to cancel");

    hold.release();
    // One worker, FIFO: once this marker ran, the cancelled slot was passed.
    bounded_join(pool.submit(|| ()).unwrap()).unwrap();
    assert!(matches!(bounded_join(handle), Err(TaskError::Cancelled)));
    assert!(
        !ran.load(Ordering::SeqCst),
        "the cancelled task never started"
    );
    assert_eq!(drops.count(), 1, "the closure was dropped exactly once");
    assert_eq!(pool.stats().cancelled, 1);
}

#[test]
fn cancelling_a_running_task_raises_only_its_stop_flag() {
    // Runs until its own stop token fires; false if it never did.
    fn spin_until_stopped(started: mpsc::Sender<()>) -> impl FnOnce() -> bool + Send {
        move || {
            let token = StopToken::current();
            started.send(()).unwrap();
            let deadline = Instant::now() + WAIT;
            while !token.is_stop_requested() {
                if Instant::now() > deadline {
                    return false;
                }
                thread::yield_now();
            }
            true
        }
    }

    let pool = TestPool::new(2);
    let (started_tx, started_rx) = mpsc::channel();
    let target = pool.submit(spin_until_stopped(started_tx.clone())).unwrap();
    let bystander = pool.submit(spin_until_stopped(started_tx)).unwrap();
    for _ in 0..2 {
        started_rx.recv_timeout(WAIT).expect("both tasks started");
    }

    assert!(!target.cancel(), "a running task cannot be un-started");
    assert!(bounded_join(target).unwrap(), "the task saw its stop flag");
    assert!(
        !bystander.wait_timeout(BRIEF),
        "another task's stop flag stays down"
    );
    assert!(!bystander.cancel());
    assert!(bounded_join(bystander).unwrap());
    assert_eq!(pool.stats().cancelled, 0, "a running task is not cancelled");
}

#[test]
fn cancelling_a_finished_task_returns_false() {
    let pool = TestPool::new(1);
    let handle = pool.submit(|| 5).unwrap();
    assert!(handle.wait_timeout(WAIT));
    assert!(!handle.cancel());
    assert_eq!(bounded_join(handle).unwrap(), 5, "the result survives");
    assert_eq!(pool.stats().cancelled, 0);
}

#[test]
fn wait_timeout_is_false_while_the_task_is_held_and_true_after() {
    let pool = TestPool::new(1);
    let (running, hold) = held_task(&pool, 3);
    let ran = Arc::new(AtomicBool::new(false));
    let queued = {
        let ran = ran.clone();
        pool.submit(move || ran.store(true, Ordering::SeqCst))
            .unwrap()
    };

    assert!(!running.wait_timeout(BRIEF));
    assert!(!queued.wait_timeout(BRIEF));
    assert!(
        !ran.load(Ordering::SeqCst),
        "waiting from outside the pool never runs a task inline"
    );

    hold.release();
    assert!(running.wait_timeout(WAIT));
    assert!(queued.wait_timeout(WAIT));
    assert!(ran.load(Ordering::SeqCst));
    assert_eq!(running.join().unwrap(), 3);
}

#[test]
fn wait_timeout_zero_polls_and_max_waits_without_overflow() {
    let pool = TestPool::new(1);
    let (handle, hold) = held_task(&pool, ());
    assert!(!handle.wait_timeout(Duration::ZERO));

    let handle = Arc::new(handle);
    let (done_tx, done_rx) = mpsc::channel();
    {
        let handle = handle.clone();
        thread::spawn(move || done_tx.send(handle.wait_timeout(Duration::MAX)).unwrap());
    }
    assert_eq!(
        done_rx.recv_timeout(BRIEF),
        Err(RecvTimeoutError::Timeout),
        "Duration::MAX waits (and does not panic on overflow)"
    );
    hold.release();
    assert_eq!(done_rx.recv_timeout(WAIT), Ok(true));
    assert!(
        handle.wait_timeout(Duration::ZERO),
        "ZERO on a finished task"
    );
}

#[test]
fn handle_wait_timeout_with_zero_and_max() {
    let pool = TestPool::new(1);
    let gate = Gate::new();
    let handle = Arc::new(pool.submit(gate.hold(|| 5)).unwrap());
    assert!(!at_once("wait_timeout(ZERO) while running", || {
        handle.wait_timeout(Duration::ZERO)
    }));
    let waiter = spawn({
        let handle = handle.clone();
        move || handle.wait_timeout(Duration::MAX)
    });
    still_blocked("TaskHandle::wait_timeout(MAX)", &waiter);
    gate.release();
    assert!(waiter.join("TaskHandle::wait_timeout(Duration::MAX)"));
    assert!(handle.wait_timeout(Duration::ZERO));
    let handle = Arc::into_inner(handle).expect("the waiter let go of it");
    assert_eq!(bounded_join(handle).unwrap(), 5);
    // A cancelled task's handle resolves at once, also for ZERO.
    let gate = Gate::occupying(&pool, 1);
    let queued = pool.submit(|| 6).unwrap();
    assert!(!queued.wait_timeout(Duration::ZERO));
    assert!(queued.cancel());
    assert!(queued.wait_timeout(Duration::ZERO));
    assert!(queued.wait_timeout(Duration::MAX));
    assert!(queued.join().unwrap_err().is_cancelled());
    gate.release();
}

#[test]
fn is_finished_turns_true_when_the_task_ends() {
    let pool = TestPool::new(1);
    let (handle, hold) = held_task(&pool, 1);
    assert!(!handle.is_finished());
    hold.release();
    assert!(handle.wait_timeout(WAIT));
    assert!(handle.is_finished());
    assert_eq!(handle.join().unwrap(), 1);
}

#[test]
fn ids_are_unique_across_threads_and_names_are_kept() {
    let pool = TestPool::new(2);
    let ids: Vec<_> = thread::scope(|s| {
        let submitters: Vec<_> = (0..4)
            .map(|_| {
                s.spawn(|| {
                    (0..500)
                        .map(|_| pool.submit(|| ()).unwrap().id())
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        submitters
            .into_iter()
            .flat_map(|s| s.join().unwrap())
            .collect()
    });
    let unique: HashSet<_> = ids.iter().copied().collect();
    assert_eq!(unique.len(), ids.len(), "every task id is unique");

    let named = pool.task().name("chunk-7").submit(|| ()).unwrap();
    let unnamed = pool.submit(|| ()).unwrap();
    assert_eq!(named.name(), Some("chunk-7"));
    assert_eq!(unnamed.name(), None);
    assert_ne!(named.id(), unnamed.id());
    assert!(!unique.contains(&named.id()));
}

#[test]
fn dropping_a_handle_detaches_the_task() {
    let pool = TestPool::new(1);
    let hold = Gate::occupying(&pool, 1);
    let (ran_tx, ran_rx) = mpsc::channel();
    let drops = DropCounter::default();
    let result = drops.tracked();
    drop(
        pool.submit(move || {
            ran_tx.send(()).unwrap();
            result
        })
        .unwrap(),
    );

    hold.release();
    ran_rx
        .recv_timeout(WAIT)
        .expect("the detached task still ran");
    pool.shutdown();
    assert!(pool.await_termination(WAIT));
    assert_eq!(drops.count(), 1, "its unclaimed result was dropped once");
}

#[test]
fn join_from_a_worker_runs_the_queued_task_inline() {
    let pool = TestPool::solo(ThreadPool::builder());
    let (inner_tx, inner_rx) = mpsc::channel::<TaskHandle<String>>();
    let outer = pool
        .submit(move || {
            let inner = inner_rx.recv_timeout(WAIT).expect("the inner handle");
            inner.join().expect("the inner task ran")
        })
        .unwrap();
    // Queued behind `outer` on the only worker.
    let inner = pool.submit(thread_name).unwrap();
    inner_tx.send(inner).unwrap();

    assert!(
        outer.wait_timeout(WAIT),
        "deadlock: the joiner did not run the queued task"
    );
    assert_eq!(outer.join().unwrap(), "solo-0");
    assert!(pool.wait_idle(WAIT));
    assert_eq!(pool.stats().completed, 2, "the inner task ran exactly once");
}

#[test]
fn wait_timeout_from_a_worker_runs_the_queued_task_inline() {
    let pool = TestPool::new(1);
    let (inner_tx, inner_rx) = mpsc::channel::<TaskHandle<u32>>();
    let outer = pool
        .submit(move || {
            let inner = inner_rx.recv_timeout(WAIT).expect("the inner handle");
            let start = Instant::now();
            let finished = inner.wait_timeout(WAIT);
            (finished, start.elapsed(), inner.join().ok())
        })
        .unwrap();
    inner_tx.send(pool.submit(|| 9).unwrap()).unwrap();

    assert!(outer.wait_timeout(WAIT), "deadlock in wait_timeout");
    let (finished, waited, value) = outer.join().unwrap();
    assert!(finished, "the waiter ran the queued task itself");
    assert!(waited < WAIT / 2, "it did not just sit out the timeout");
    assert_eq!(value, Some(9));
}

/// One worker; the running task joins a task queued behind it. Waiting
/// would deadlock, so the join runs the queued task inline, on the same
/// worker; also through `wait_timeout(MAX)`, and for a task held in a
/// paused group.
#[test]
fn join_of_a_task_queued_behind_it_on_a_one_thread_pool_runs_it_inline() {
    let pool = TestPool::solo(ThreadPool::builder());
    let paused = pool.group("paused");
    paused.pause();
    let (tx, rx) = crossbeam_channel::bounded::<[TaskHandle<String>; 3]>(1);
    let outer = pool
        .submit(move || {
            let [joined, waited, held] = rx.recv_timeout(WAIT).expect("the handles came");
            let waited_ok = waited.wait_timeout(Duration::MAX);
            (
                thread_name(),
                joined.join().unwrap(),
                waited_ok,
                waited.join().unwrap(),
                held.join().unwrap(),
            )
        })
        .unwrap();
    let handles = [
        pool.submit(thread_name).unwrap(),
        pool.submit(thread_name).unwrap(),
        paused.submit(thread_name).unwrap(),
    ];
    tx.send(handles).unwrap();
    let (outer_thread, joined, waited_ok, waited, held) = bounded_join(outer).unwrap();
    assert_eq!(outer_thread, "solo-0");
    assert!(waited_ok);
    assert_eq!([joined, waited, held], ["solo-0", "solo-0", "solo-0"]);
    assert_eq!(pool.stats().completed, 4);
}

#[test]
fn join_helping_nests_several_levels_deep() {
    const DEPTH: usize = 6;
    let pool = TestPool::solo(ThreadPool::builder());
    let mut senders = Vec::new();
    let mut handles = Vec::new();
    // Level `n` joins level `n + 1`, queued behind it; every level is
    // queued before any handle is handed over.
    for level in 0..DEPTH {
        let (next_tx, next_rx) = mpsc::channel::<TaskHandle<Vec<(usize, String)>>>();
        senders.push(next_tx);
        let handle = pool
            .submit(move || {
                let mut trail = vec![(level, thread_name())];
                if level + 1 < DEPTH {
                    let next = next_rx.recv_timeout(WAIT).expect("the next handle");
                    trail.extend(next.join().expect("the next level ran"));
                }
                trail
            })
            .unwrap();
        handles.push(handle);
    }
    let mut handles = handles.into_iter();
    let top = handles.next().unwrap();
    for (sender, next) in senders.iter().zip(handles) {
        sender.send(next).unwrap();
    }

    assert!(top.wait_timeout(WAIT), "deadlock in nested joins");
    let trail = top.join().unwrap();
    let expected: Vec<_> = (0..DEPTH).map(|l| (l, "solo-0".to_owned())).collect();
    assert_eq!(trail, expected);
    assert!(pool.wait_idle(WAIT));
    let stats = pool.stats();
    assert_eq!(stats.completed, DEPTH as u64, "each level ran exactly once");
    assert_eq!(stats.queued, 0);
}

#[test]
fn a_cancelled_task_is_skipped_and_later_tasks_run_in_order() {
    let pool = TestPool::new(1);
    let hold = Gate::occupying(&pool, 1);
    let order = Arc::new(Mutex::new(Vec::new()));
    let submit = |label: &'static str| {
        let order = order.clone();
        pool.submit(move || order.lock().unwrap().push(label))
            .unwrap()
    };
    let (a, b, c, d) = (submit("a"), submit("b"), submit("c"), submit("d"));
    assert_eq!(pool.stats().queued, 4);

    assert!(b.cancel());
    let stats = pool.stats();
    assert_eq!(stats.queued, 3, "the cancelled task left the queue count");
    assert_eq!(stats.cancelled, 1);

    hold.release();
    for handle in [a, c, d] {
        bounded_join(handle).unwrap();
    }
    assert!(matches!(bounded_join(b), Err(TaskError::Cancelled)));
    assert_eq!(*order.lock().unwrap(), ["a", "c", "d"]);
    assert!(pool.wait_idle(WAIT));
    let stats = pool.stats();
    assert_eq!(
        (stats.queued, stats.completed, stats.cancelled),
        (0, 4, 1),
        "the holder and a, c, d completed; b was cancelled"
    );
}

#[test]
fn concurrent_cancels_resolve_each_task_exactly_once() {
    const ROUNDS: usize = 5;
    const TASKS: usize = 2_000;
    const WORKERS: usize = 4;
    const CANCELLERS: usize = 4;

    for round in 0..ROUNDS {
        let pool = TestPool::new(WORKERS);
        // The choreography makes sure both sides win some races in every
        // round, whatever the scheduler does: the cancellers win one each
        // while the workers are held, then wait for the workers' first run,
        // and from there on everyone races.
        let (workers_go, cancellers_go) = (Latch::default(), Latch::default());
        let (first_cancel, first_run) = (Latch::default(), Latch::default());
        let (ready_tx, ready_rx) = mpsc::channel();
        for _ in 0..WORKERS {
            let (go, ready) = (workers_go.clone(), ready_tx.clone());
            pool.execute(move || {
                ready.send(()).unwrap();
                go.expect_open();
            })
            .unwrap();
        }
        for _ in 0..WORKERS {
            ready_rx.recv_timeout(WAIT).expect("every worker is held");
        }

        let drops = DropCounter::default();
        let runs: Arc<Vec<AtomicUsize>> = Arc::new((0..TASKS).map(|_| 0.into()).collect());
        let handles: Vec<_> = (0..TASKS)
            .map(|i| {
                let (runs, tracked, first_run) = (runs.clone(), drops.tracked(), first_run.clone());
                pool.submit(move || {
                    let _tracked = tracked;
                    runs[i].fetch_add(1, Ordering::SeqCst);
                    first_run.open();
                    i
                })
                .unwrap()
            })
            .collect();
        let handles = Arc::new(handles);

        // Cancellers start mid-queue; pairs walk the same way, so two threads
        // race on each handle while the workers race up from the front.
        let cancellers: Vec<_> = (0..CANCELLERS)
            .map(|c| {
                let handles = handles.clone();
                let (go, first_cancel, first_run) = (
                    cancellers_go.clone(),
                    first_cancel.clone(),
                    first_run.clone(),
                );
                thread::spawn(move || {
                    go.expect_open();
                    let mut won = Vec::new();
                    for step in 0..TASKS {
                        let i = if c % 2 == 0 {
                            (TASKS / 2 + step) % TASKS
                        } else {
                            (TASKS / 2 + TASKS - 1 - step) % TASKS
                        };
                        if handles[i].cancel() {
                            won.push(i);
                            first_cancel.open();
                        }
                        if step == 0 {
                            first_run.expect_open();
                        }
                    }
                    won
                })
            })
            .collect();
        cancellers_go.open();
        first_cancel.expect_open();
        workers_go.open();

        let mut cancels = vec![0_usize; TASKS];
        for canceller in cancellers {
            for i in canceller.join().unwrap() {
                cancels[i] += 1;
            }
        }
        let handles = Arc::try_unwrap(handles).expect("the cancellers are done");
        for (i, handle) in handles.into_iter().enumerate() {
            let ran = runs[i].load(Ordering::SeqCst);
            match bounded_join(handle) {
                Ok(value) => {
                    assert_eq!(value, i);
                    assert_eq!((ran, cancels[i]), (1, 0), "task {i} ran once");
                }
                Err(TaskError::Cancelled) => {
                    assert_eq!((ran, cancels[i]), (0, 1), "task {i} cancelled once");
                }
                Err(e) => panic!("task {i}: unexpected {e:?}"),
            }
        }
        assert!(pool.wait_idle(WAIT));
        let ran: usize = runs.iter().map(|r| r.load(Ordering::SeqCst)).sum();
        let cancelled: usize = cancels.iter().sum();
        assert_eq!(ran + cancelled, TASKS);
        assert!(ran > 0 && cancelled > 0, "round {round}: both sides won");
        assert_eq!(drops.count(), TASKS, "every closure dropped exactly once");
        let stats = pool.stats();
        assert_eq!(stats.cancelled, cancelled as u64);
        assert_eq!(stats.completed, (ran + WORKERS) as u64);
    }
}

// ----- regressions: whose task a run belongs to -------------------------------

/// Regression (issue 12, defect 3): a `PendingTask` run on a worker of
/// another pool ran under the *outer* task's stop token: cancelling the
/// outer task's handle interrupted it, cancelling its own did not.
#[test]
fn a_pending_task_run_on_another_pools_worker_observes_its_own_token() {
    use drainpool::Interrupted;
    let a = TestPool::new(1);
    let busy = Gate::occupying(&a, 1);
    let (started_tx, started) = mpsc::channel();
    let inner = a
        .submit(move || {
            started_tx.send(()).unwrap();
            StopToken::current().sleep(Duration::MAX)
        })
        .unwrap();
    let mut pending = a.shutdown_now();
    busy.release();
    assert_eq!(pending.len(), 1);
    let pending = pending.pop().unwrap();
    let b = TestPool::new(1);
    let outer = b.submit(move || pending.run()).unwrap();
    started
        .recv_timeout(WAIT)
        .expect("the handed-back task started on b's worker");
    assert!(!outer.cancel(), "the outer task is running");
    assert!(
        !inner.wait_timeout(BRIEF),
        "cancelling the outer task interrupted the task it runs"
    );
    assert!(!inner.cancel(), "the inner task is running");
    assert_eq!(bounded_join(inner).unwrap(), Err(Interrupted));
    bounded_join(outer).unwrap();
}

/// A `PendingTask` run by the program's own thread also observes its own
/// handle's cancel.
#[test]
fn a_pending_task_run_by_the_program_observes_its_own_handles_cancel() {
    use drainpool::Interrupted;
    let pool = TestPool::new(1);
    let busy = Gate::occupying(&pool, 1);
    let (started_tx, started) = mpsc::channel();
    let handle = pool
        .submit(move || {
            started_tx.send(()).unwrap();
            StopToken::current().sleep(Duration::MAX)
        })
        .unwrap();
    let pending = pool.shutdown_now().pop().expect("handed back");
    busy.release();
    let runner = common::spawn(move || pending.run());
    started.recv_timeout(WAIT).expect("it started");
    assert!(!handle.cancel());
    assert_eq!(bounded_join(handle).unwrap(), Err(Interrupted));
    runner.join("the program's run of the pending task");
}

/// Regression (issue 12, defect 12): `wait_timeout(Duration::ZERO)` from a
/// worker ran the queued task inline instead of polling.
#[test]
fn wait_timeout_zero_from_a_worker_polls_without_running_the_task() {
    let pool = TestPool::new(1);
    let (handle_tx, handle_rx) = mpsc::channel::<TaskHandle<()>>();
    let outer = pool
        .submit(move || {
            let queued = handle_rx.recv_timeout(WAIT).expect("the handle arrives");
            let ended = queued.wait_timeout(Duration::ZERO);
            (ended, queued)
        })
        .unwrap();
    let ran = Arc::new(AtomicBool::new(false));
    let queued = pool
        .submit({
            let ran = ran.clone();
            move || ran.store(true, Ordering::SeqCst)
        })
        .unwrap();
    handle_tx.send(queued).unwrap();
    let (ended, queued) = bounded_join(outer).unwrap();
    assert!(!ended, "a zero wait ran the queued task instead of polling");
    bounded_join(queued).unwrap();
    assert!(ran.load(Ordering::SeqCst));
}

/// Regression (issue 12, defect 12): a task waiting on its own handle
/// blocked forever. `wait_timeout` now returns false at once, and `join`
/// panics with a message that says why.
#[test]
fn a_task_waiting_on_its_own_handle_returns_at_once() {
    let pool = TestPool::new(2);
    let (handle_tx, handle_rx) = mpsc::channel::<TaskHandle<Option<String>>>();
    let (outcome_tx, outcome) = mpsc::channel();
    let me = pool
        .submit(move || {
            let me = handle_rx.recv_timeout(WAIT).expect("the handle arrives");
            let waited = me.wait_timeout(Duration::MAX);
            let joined = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| me.join()));
            let message = joined.err().and_then(|payload| {
                payload
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            });
            outcome_tx.send((waited, message)).unwrap();
            None
        })
        .unwrap();
    handle_tx.send(me).unwrap();
    let (waited, message) = outcome
        .recv_timeout(WAIT)
        .expect("a wait on its own handle returned");
    assert!(!waited);
    let message = message.expect("join of its own handle panics");
    assert!(message.contains("the task itself"), "{message}");
}
