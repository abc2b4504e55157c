//! What `shutdown_now` promises, one call at a time: intake closes, the
//! running tasks are asked to stop, every never-started task comes back
//! once and in submission order (across priorities and groups), and the
//! program runs or drops each one.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::thread;
use std::time::Duration;

use crate::common::{
    self, DropCounter, Gate, LeakOnPanic, WAIT, bounded_join, bump, named_pool, started_sleeper,
};
use crate::held_pool;
use drainpool::{
    Interrupted, PendingTask, PoolState, RejectReason, StopToken, TaskError, TaskHandle, TaskId,
    ThreadPool,
};

// Names in queue order, ids matching the handles; the held (running) task is not among them.
#[test]
fn returns_never_started_tasks_in_submission_order() {
    let gate = Gate::new();
    let pool = held_pool(&gate);
    let mut submitted_ids = Vec::new();
    for i in 0..10usize {
        let task = pool.task().name(format!("t{i}"));
        if i % 2 == 0 {
            submitted_ids.push((i, task.submit(move || i).unwrap().id()));
        } else {
            task.execute(|| ()).unwrap();
        }
    }
    pool.execute(|| ()).unwrap(); // unnamed

    let pending = pool.shutdown_now();
    let names: Vec<_> = pending.iter().map(PendingTask::name).collect();
    let mut expected: Vec<_> = (0..10).map(|i| format!("t{i}")).collect();
    expected.push(String::new());
    let expected: Vec<_> = expected
        .iter()
        .map(|n| (!n.is_empty()).then_some(n.as_str()))
        .collect();
    assert_eq!(names, expected);
    for (i, id) in submitted_ids {
        assert_eq!(pending[i].id(), id, "task t{i}");
    }
    let ids: BTreeSet<TaskId> = pending.iter().map(PendingTask::id).collect();
    assert_eq!(ids.len(), pending.len(), "ids are unique");

    gate.release();
    assert!(pool.await_termination(WAIT));
    drop(pending);
    let stats = pool.stats();
    assert_eq!((stats.completed, stats.cancelled), (1, 11));
}

// Returns while tasks are held; they then see StopToken::current() raised (execute and submit).
#[test]
fn does_not_wait_and_raises_the_stop_flag_of_running_tasks() {
    let pool = ThreadPool::new(2).unwrap();
    let gate = Gate::new();
    // Each task reports: stop seen at start, and after release through a
    // token taken at start and through a fresh `current()`.
    let observe = || {
        let at_start = StopToken::current();
        let before = at_start.is_stop_requested();
        move || {
            (
                before,
                at_start.is_stop_requested(),
                StopToken::current().is_stop_requested(),
            )
        }
    };
    let submitted = pool
        .submit({
            let hold = gate.task();
            move || {
                let report = observe();
                hold();
                report()
            }
        })
        .unwrap();
    let (tx, rx) = mpsc::channel();
    pool.execute({
        let hold = gate.task();
        move || {
            let report = observe();
            hold();
            tx.send(report()).unwrap();
        }
    })
    .unwrap();
    gate.wait_entered(2);

    assert!(pool.shutdown_now().is_empty());
    // It returned while both tasks are still held: it did not wait.
    assert!(!submitted.is_finished());
    assert_eq!(rx.try_recv(), Err(mpsc::TryRecvError::Empty));
    assert_eq!(pool.state(), PoolState::Stopping);
    // Outside a pool task, the current token never fires.
    assert!(!StopToken::current().is_stop_requested());

    gate.release();
    assert_eq!(bounded_join(submitted).unwrap(), (false, true, true));
    assert_eq!(rx.recv_timeout(WAIT).unwrap(), (false, true, true));
    assert!(pool.await_termination(WAIT));
    assert_eq!(pool.stats().completed, 2);
}

#[test]
fn intake_is_refused_after_shutdown_now() {
    let pool = ThreadPool::new(1).unwrap();
    drop(pool.shutdown_now());
    let rejected = pool.submit(|| 3).unwrap_err();
    assert_eq!(rejected.reason(), RejectReason::Shutdown);
    assert_eq!(rejected.into_inner()(), 3);
    let rejected = pool.execute(|| ()).unwrap_err();
    assert_eq!(rejected.reason(), RejectReason::Shutdown);
    assert!(pool.await_termination(WAIT));
    assert_eq!(pool.stats().rejected, 2);
}

// run() on the caller thread: handles get values and panics; stats count them.
#[test]
fn pending_task_run_runs_on_the_calling_thread() {
    let gate = Gate::new();
    let pool = held_pool(&gate);
    let value = pool
        .task()
        .name("value")
        .submit(|| (thread::current().id(), 42))
        .unwrap();
    let (tx, rx) = mpsc::channel();
    pool.execute(move || tx.send(thread::current().id()).unwrap())
        .unwrap();
    let boom = pool
        .submit(|| -> u32 { panic!("planned panic in a handed-back task") })
        .unwrap();

    let pending = pool.shutdown_now();
    assert_eq!(pending.len(), 3);
    assert!(!value.is_finished());
    for task in pending {
        task.run();
    }
    let me = thread::current().id();
    assert!(value.is_finished());
    assert_eq!(bounded_join(value).unwrap(), (me, 42));
    assert_eq!(rx.recv_timeout(WAIT).unwrap(), me);
    assert!(bounded_join(boom).unwrap_err().is_panic());

    gate.release();
    assert!(pool.await_termination(WAIT));
    let stats = pool.stats();
    assert_eq!(
        stats.completed, 3,
        "the held task and two run here: {stats:?}"
    );
    assert_eq!((stats.panicked, stats.cancelled), (1, 0), "{stats:?}");
}

// Closures dropped exactly once, handles resolve Cancelled, stats().cancelled counts them.
#[test]
fn dropping_a_pending_task_cancels_it() {
    let gate = Gate::new();
    let pool = held_pool(&gate);
    let drops = DropCounter::default();
    let ran = Arc::new(AtomicUsize::new(0));
    let mut handles = Vec::new();
    for i in 0..5usize {
        let tracked = drops.tracked();
        let ran = ran.clone();
        let task = move || {
            let _tracked = tracked;
            ran.fetch_add(1, Ordering::SeqCst);
        };
        if i % 2 == 0 {
            handles.push(pool.submit(task).unwrap());
        } else {
            pool.execute(task).unwrap();
        }
    }

    let pending = pool.shutdown_now();
    assert_eq!(pending.len(), 5);
    assert_eq!(drops.count(), 0, "held tasks are kept whole");
    for handle in &handles {
        assert!(!handle.wait_timeout(Duration::ZERO));
    }
    drop(pending);
    assert_eq!(drops.count(), 5);
    assert_eq!(ran.load(Ordering::SeqCst), 0);
    for handle in handles {
        assert!(handle.is_finished());
        assert!(!handle.cancel(), "already cancelled");
        assert!(matches!(bounded_join(handle), Err(TaskError::Cancelled)));
    }

    gate.release();
    assert!(pool.await_termination(WAIT));
    let stats = pool.stats();
    assert_eq!((stats.completed, stats.cancelled), (1, 5), "{stats:?}");
}

// cancel() on a handed-back task wins; running or dropping its PendingTask then does nothing more.
#[test]
fn cancelling_a_handed_back_task_through_its_handle_counts_once() {
    let gate = Gate::new();
    let pool = held_pool(&gate);
    let ran = Arc::new(AtomicUsize::new(0));
    let handles: Vec<_> = (0..2).map(|_| pool.submit(bump(&ran)).unwrap()).collect();
    let mut pending = pool.shutdown_now();
    assert_eq!(pending.len(), 2);
    for handle in &handles {
        assert!(handle.cancel(), "it never started");
    }
    // Running or dropping the pending tasks now does nothing more.
    pending.pop().unwrap().run();
    drop(pending);
    assert_eq!(ran.load(Ordering::SeqCst), 0);
    for handle in handles {
        assert!(matches!(bounded_join(handle), Err(TaskError::Cancelled)));
    }
    gate.release();
    assert!(pool.await_termination(WAIT));
    let stats = pool.stats();
    assert_eq!((stats.completed, stats.cancelled), (1, 2), "{stats:?}");
}

#[test]
fn repeated_calls_return_nothing_more() {
    let gate = Gate::new();
    let pool = held_pool(&gate);
    for _ in 0..5 {
        pool.execute(|| ()).unwrap();
    }
    let first = pool.shutdown_now();
    assert_eq!(first.len(), 5);
    assert!(pool.shutdown_now().is_empty());
    pool.shutdown();
    assert!(pool.shutdown_now().is_empty());
    assert_eq!(pool.state(), PoolState::Stopping);
    gate.release();
    assert!(pool.await_termination(WAIT));
    assert!(pool.shutdown_now().is_empty());
    drop(first);
    assert_eq!(pool.stats().cancelled, 5);
}

// shutdown() then shutdown_now(): the not-yet-drained tasks come back instead of running.
#[test]
fn shutdown_now_during_a_drain_hands_back_the_rest() {
    let gate = Gate::new();
    let pool = held_pool(&gate);
    let ran = Arc::new(AtomicUsize::new(0));
    for _ in 0..5 {
        pool.execute(bump(&ran)).unwrap();
    }
    pool.shutdown();
    let pending = pool.shutdown_now();
    assert_eq!(pending.len(), 5);
    assert_eq!(pool.state(), PoolState::Stopping);
    gate.release();
    assert!(pool.await_termination(WAIT));
    assert_eq!(ran.load(Ordering::SeqCst), 0, "the drain was abandoned");
    for task in pending {
        task.run();
    }
    assert_eq!(ran.load(Ordering::SeqCst), 5);
    assert_eq!(pool.stats().completed, 6);
}

/// `shutdown_now` called by a task: it gets the queued tasks (it may run
/// them right there), its own stop token and the other running task's are
/// raised, and the pool terminates when the tasks end.
#[test]
fn shutdown_now_from_inside_a_task_hands_the_queue_to_it() {
    let pool = Arc::new(named_pool(2, "inner"));
    let _leak = LeakOnPanic(pool.clone());
    let sleeper = started_sleeper(&pool);
    let gate = Gate::new();
    let stopper = pool
        .submit(gate.hold({
            let pool = pool.clone();
            move || {
                let back = pool.shutdown_now();
                let own_stop = StopToken::current().is_stop_requested();
                let n = back.len();
                let mut back = back.into_iter();
                if let Some(first) = back.next() {
                    first.run(); // on this worker, now
                }
                drop(back); // cancels the rest
                (n, own_stop)
            }
        }))
        .unwrap();
    gate.wait_entered(1);
    let queued: Vec<TaskHandle<u32>> = (0..10).map(|i| pool.submit(move || i).unwrap()).collect();
    gate.release();
    let (returned, own_stop) = bounded_join(stopper).unwrap();
    assert_eq!(returned, 10);
    assert!(own_stop, "the caller's own stop token was not raised");
    assert_eq!(bounded_join(sleeper).unwrap(), Err(Interrupted));
    let results: Vec<_> = queued.into_iter().map(bounded_join).collect();
    assert_eq!(results[0].as_ref().ok(), Some(&0));
    assert!(
        results[1..]
            .iter()
            .all(|r| matches!(r, Err(e) if e.is_cancelled()))
    );
    assert!(pool.await_termination(WAIT));
    let stats = pool.stats();
    assert_eq!((stats.completed, stats.cancelled), (3, 9));
}

// Closures of every size (none, one, two and three words: boxed, stored in
// the queue entry, boxed, boxed) come back, run or drop exactly once, and
// are counted.
#[test]
fn handed_back_closures_of_every_size_run_or_drop_once() {
    let gate = Gate::new();
    let pool = held_pool(&gate);
    let drops = DropCounter::default();
    let runs = Arc::new(AtomicUsize::new(0));
    fn nothing() {}
    for i in 0..40usize {
        let tracked = drops.tracked();
        let runs = runs.clone();
        let extra = [i as u64; 1];
        match i % 4 {
            0 => pool.execute(nothing).unwrap(),
            1 => pool.execute(move || drop(tracked)).unwrap(),
            2 => pool
                .execute(move || {
                    drop(tracked);
                    runs.fetch_add(1, Ordering::SeqCst);
                })
                .unwrap(),
            _ => pool
                .execute(move || {
                    drop(tracked);
                    runs.fetch_add(usize::from(extra[0] < 40), Ordering::SeqCst);
                })
                .unwrap(),
        }
    }
    // Tracked values not moved into a closure (the capture-free case) are
    // dropped here: 10 of them.
    assert_eq!(drops.count(), 10);
    let pending = pool.shutdown_now();
    assert_eq!(pending.len(), 40);
    let mut ran = 0;
    for (i, task) in pending.into_iter().enumerate() {
        if i % 3 == 0 {
            task.run();
            ran += 1;
        } // else dropped: cancelled
    }
    assert_eq!(drops.count(), 40, "every capture dropped exactly once");
    let expected_runs = (0..40).filter(|i| i % 3 == 0 && i % 4 >= 2).count();
    assert_eq!(runs.load(Ordering::SeqCst), expected_runs);
    gate.release();
    assert!(pool.await_termination(WAIT));
    let stats = pool.stats();
    assert_eq!(stats.completed, 1 + ran as u64);
    assert_eq!(stats.cancelled, 40 - ran as u64);
}

/// Regression (issue 12, defect 7): the docs promise submission order, but
/// with priorities and groups it was not kept (plain 0, group 1, plain 2,
/// group 3, High 4 came back as 4, 0, 1, 3, 2). Across levels, groups
/// (paused ones too), named and submitted tasks: the order they came in.
#[test]
fn shutdown_now_hands_back_in_submission_order_across_levels_and_groups() {
    use drainpool::Priority;
    let pool = common::TestPool::new(1);
    let busy = Gate::occupying(&pool, 1);
    let group = pool.group("g");
    let low = pool.group("low");
    low.set_priority(Priority::Low);
    let paused = pool.group("paused");
    paused.pause();
    let mut handles = Vec::new();
    for round in 0..3 {
        let n = |i: usize| format!("{}", round * 10 + i);
        pool.task().name(n(0)).execute(|| ()).unwrap();
        group.task().name(n(1)).execute(|| ()).unwrap();
        handles.push(pool.task().name(n(2)).submit(|| ()).unwrap());
        handles.push(group.task().name(n(3)).submit(|| ()).unwrap());
        pool.task()
            .name(n(4))
            .priority(Priority::High)
            .execute(|| ())
            .unwrap();
        low.task().name(n(5)).execute(|| ()).unwrap();
        handles.push(
            pool.task()
                .name(n(6))
                .priority(Priority::Low)
                .submit(|| ())
                .unwrap(),
        );
        paused.task().name(n(7)).execute(|| ()).unwrap();
        pool.task().name(n(8)).execute(|| ()).unwrap();
    }
    let names: Vec<String> = pool
        .shutdown_now()
        .iter()
        .map(|task| task.name().expect("every task is named").to_owned())
        .collect();
    drop(busy);
    let expected: Vec<String> = (0..3)
        .flat_map(|round| (0..9).map(move |i| format!("{}", round * 10 + i)))
        .collect();
    assert_eq!(names, expected);
    for handle in handles {
        assert!(bounded_join(handle).unwrap_err().is_cancelled());
    }
}
