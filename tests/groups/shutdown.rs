//! A group meets the pool's shutdown: `shutdown_now` hands a paused
//! group's tasks back, `shutdown` resumes it and drains it, and a dropped
//! pool strands no group task.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Once, mpsc};
use std::time::Duration;

use crate::common::{BRIEF, Gate, Rng, TestPool, WAIT, bump, spawn, spin};
use crate::{Fates, counts, logged, push, quiescent};
use drainpool::{TaskHandle, ThreadPool};

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
    assert!((0..N).all(|i| fates.dropped_never_started(i)));
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
        "{} of {ROUNDS} rounds: the pool terminated with a paused group's tasks never started; \
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
    // it exits, and the paused group's tasks never start. The log hook
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
        "the pool terminated with the paused group's tasks never started (the worker exited \
         during shutdown, before the group was resumed: {})",
        worker_exited.load(Ordering::SeqCst)
    );
}

// ----- regressions: a group's tasks stranded or disturbed -----------------------

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
