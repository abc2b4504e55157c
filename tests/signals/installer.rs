//! The `on_signals` installer in this process: its stop token, `trigger`,
//! ordered steps that panic or overrun, pools shut down before the
//! resources, the second signal that interrupts the drain, and a dropped
//! guard that unregisters.

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering, Ordering::SeqCst};
use std::sync::{Arc, Mutex, mpsc};
use std::thread;
use std::time::Duration;

use crate::common::{Latch, WAIT, at_once, named_pool, spawn};
use crate::{CHILD_DEADLINE, OTHER_TEST_SIGNAL, bounded_output, eventually, serial};
use drainpool::signal::{StepContext, StepOutcome, StepReport, on_signals};
use drainpool::{PendingTask, ShutdownPolicy, StopToken, TaskHandle, TaskId, ThreadPool};
use signal_hook::low_level::raise;

#[test]
#[cfg_attr(
    windows,
    ignore = "Wine: signal-hook's handlers crash when a signal is delivered (Wine's signal() lacks SIG_GET, so signal-hook chains to the address 2)"
)]
fn installer_without_pools_gives_a_stop_token_for_the_programs_own_loops() {
    let _serial = serial();
    let guard = on_signals([OTHER_TEST_SIGNAL]).install().unwrap();
    let token = guard.stop_token();
    assert!(!token.is_stop_requested());
    raise(OTHER_TEST_SIGNAL).unwrap();
    // Bounded: `sleep` returns Err(Interrupted) as soon as the token fires.
    assert!(token.sleep(WAIT).is_err(), "the stop token did not fire");
    assert!(guard.stop_token().is_stop_requested());
    assert!(!guard.trigger(), "already started by the signal");
    let reports = spawn(move || guard.wait()).join("guard.wait()");
    assert!(reports.is_empty());
}

#[test]
fn trigger_starts_the_sequence_without_a_signal_once() {
    let _serial = serial();
    let ran = Arc::new(AtomicUsize::new(0));
    let guard = on_signals([OTHER_TEST_SIGNAL])
        .step("count", WAIT, {
            let ran = ran.clone();
            move |_| {
                ran.fetch_add(1, Ordering::SeqCst);
            }
        })
        .install()
        .unwrap();
    assert!(
        guard.wait_timeout(Duration::from_millis(20)).is_none(),
        "started by itself"
    );
    assert!(guard.trigger());
    assert!(!guard.trigger());
    assert!(guard.stop_token().is_stop_requested());
    let reports = guard.wait_timeout(WAIT).expect("the sequence ends");
    assert_eq!(reports.len(), 1);
    assert!(matches!(reports[0].outcome, StepOutcome::Completed(_)));
    assert_eq!(ran.load(Ordering::SeqCst), 1);
}

#[test]
fn a_panicking_and_an_overrunning_step_are_reported_and_later_steps_still_run_in_order() {
    let _serial = serial();
    let order = Arc::new(Mutex::new(Vec::new()));
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let note = |name: &'static str| {
        let order = order.clone();
        move || order.lock().unwrap().push(name)
    };
    let guard = on_signals([OTHER_TEST_SIGNAL])
        .step("first", WAIT, {
            let note = note("first");
            move |_| note()
        })
        .step("panics", WAIT, {
            let note = note("panics");
            move |_| {
                note();
                panic!("a shutdown step panics");
            }
        })
        .step("overruns", Duration::from_millis(100), {
            let note = note("overruns");
            move |_| {
                note();
                let _ = release_rx.recv_timeout(WAIT); // far beyond its budget
            }
        })
        .step("last", WAIT, {
            let note = note("last");
            move |_| note()
        })
        .install()
        .unwrap();
    assert!(guard.trigger());
    let reports = spawn(move || guard.wait()).join("guard.wait()");
    let _ = release_tx.send(());
    let names: Vec<&str> = reports.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["first", "panics", "overruns", "last"]);
    assert!(matches!(reports[0].outcome, StepOutcome::Completed(_)));
    assert!(
        matches!(reports[1].outcome, StepOutcome::Failed),
        "{}",
        reports[1]
    );
    assert!(
        matches!(reports[2].outcome, StepOutcome::Overran),
        "{}",
        reports[2]
    );
    assert!(matches!(reports[3].outcome, StepOutcome::Completed(_)));
    assert_eq!(
        *order.lock().unwrap(),
        ["first", "panics", "overruns", "last"]
    );
    for report in &reports {
        println!("{report}");
    }
}

/// The ordered shutdown's budgets: a step with a ZERO budget is given up on
/// (and the next step still runs), a MAX budget waits; the guard's
/// `wait_timeout` polls with ZERO and waits with MAX.
#[test]
fn ordered_shutdown_budgets_and_wait_timeout_with_zero_and_max() {
    let _serial = serial();
    let pool = named_pool(1, "ordered");
    let slow_may_end = Latch::default();
    let after_ran = Arc::new(AtomicBool::new(false));
    let guard = on_signals([OTHER_TEST_SIGNAL])
        .pool(
            "pool",
            &pool,
            ShutdownPolicy::new(Duration::MAX, Duration::MAX),
        )
        .step("slow", Duration::ZERO, {
            let slow_may_end = slow_may_end.clone();
            move |_| {
                slow_may_end.wait();
            }
        })
        .step("after", Duration::MAX, {
            let after_ran = after_ran.clone();
            move |_| after_ran.store(true, SeqCst)
        })
        .install()
        .unwrap();
    assert!(
        at_once("wait_timeout(ZERO) before the start", || {
            guard.wait_timeout(Duration::ZERO)
        })
        .is_none()
    );
    assert!(guard.trigger());
    let reports = guard
        .wait_timeout(Duration::MAX)
        .expect("the sequence finished");
    slow_may_end.open();
    let outcomes: Vec<_> = reports.iter().map(|r| (&*r.name, &r.outcome)).collect();
    assert!(
        matches!(
            outcomes[..],
            [
                ("pool", StepOutcome::Pool(_)),
                ("slow", StepOutcome::Overran),
                ("after", StepOutcome::Completed(_))
            ]
        ),
        "{reports:?}"
    );
    assert!(after_ran.load(SeqCst));
    assert!(pool.is_terminated());
}

#[test]
#[cfg_attr(
    windows,
    ignore = "Wine: signal-hook's handlers crash when a signal is delivered (Wine's signal() lacks SIG_GET, so signal-hook chains to the address 2)"
)]
fn a_resource_step_runs_after_the_pool_and_is_told_what_is_stuck() {
    let _serial = serial();
    let terminated = Arc::new(AtomicBool::new(false));
    let fast = ThreadPool::builder()
        .threads(2)
        .thread_name("fast")
        .on_terminated({
            let terminated = terminated.clone();
            move || terminated.store(true, Ordering::SeqCst)
        })
        .build()
        .unwrap();
    let stuck = named_pool(1, "stuck");
    let ran = Arc::new(AtomicUsize::new(0));
    for _ in 0..20 {
        let ran = ran.clone();
        fast.execute(move || {
            thread::sleep(Duration::from_millis(2));
            ran.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
    }
    // Ignores its stop token: only the test releases it.
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let (started_tx, started_rx) = mpsc::channel();
    stuck
        .task()
        .name("deaf")
        .execute(move || {
            started_tx.send(()).unwrap();
            let _ = release_rx.recv_timeout(WAIT);
        })
        .unwrap();
    started_rx.recv_timeout(WAIT).unwrap();
    let seen = Arc::new(Mutex::new(None));
    let short = ShutdownPolicy::new(Duration::from_millis(50), Duration::from_millis(50));
    let guard = on_signals([OTHER_TEST_SIGNAL])
        .pool("fast", &fast, ShutdownPolicy::new(WAIT, WAIT))
        .pool("stuck", &stuck, short)
        .step("close", WAIT, {
            let seen = seen.clone();
            let (terminated, ran) = (terminated.clone(), ran.clone());
            move |ctx: &StepContext| {
                let stuck: Vec<(String, Option<String>)> = ctx
                    .stuck()
                    .iter()
                    .map(|(pool, task)| (pool.clone(), task.name.clone()))
                    .collect();
                let ran = ran.load(Ordering::SeqCst);
                *seen.lock().unwrap() = Some((terminated.load(Ordering::SeqCst), ran, stuck));
            }
        })
        .install()
        .unwrap();
    raise(OTHER_TEST_SIGNAL).unwrap();
    let reports = spawn(move || guard.wait()).join("guard.wait()");
    let _ = release_tx.send(());
    let seen = seen.lock().unwrap().take().expect("the step ran");
    assert_eq!(
        seen,
        (
            true,
            20,
            vec![("stuck".to_owned(), Some("deaf".to_owned()))]
        ),
        "(fast pool terminated, its tasks run, stuck tasks) as the step saw them"
    );
    let names: Vec<&str> = reports.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["fast", "stuck", "close"]);
    match &reports[0].outcome {
        StepOutcome::Pool(r) => assert!(r.terminated && r.stuck.is_empty(), "{r}"),
        other => panic!("{other:?}"),
    }
    match &reports[1].outcome {
        StepOutcome::Pool(r) => assert!(!r.terminated && r.stuck.len() == 1, "{r}"),
        other => panic!("{other:?}"),
    }
    assert!(stuck.await_termination(WAIT));
}

/// The pool report of an ordered shutdown's first step.
fn pool_report(reports: &[StepReport]) -> &drainpool::ShutdownReport {
    match &reports[0].outcome {
        StepOutcome::Pool(report) => report,
        other => panic!("not a pool step: {other:?}"),
    }
}

#[test]
#[cfg_attr(
    windows,
    ignore = "Wine: signal-hook's handlers crash when a signal is delivered (Wine's signal() lacks SIG_GET, so signal-hook chains to the address 2)"
)]
fn a_second_signal_interrupts_the_drain_and_the_report_lists_never_started_tasks() {
    // Hammered: the listener's shutdown_now hands the queue back while the
    // sequence thread may already be building the pool's report.
    let _serial = serial();
    for round in 0..100 {
        let pool = named_pool(1, "second");
        let (started_tx, started_rx) = mpsc::channel();
        let running = pool
            .task()
            .name("long")
            .submit(move || {
                started_tx.send(()).unwrap();
                StopToken::current().sleep(WAIT).is_err()
            })
            .unwrap();
        started_rx.recv_timeout(WAIT).unwrap();
        // A long queue widens the window.
        let queued: Vec<TaskHandle<()>> = (0..300).map(|_| pool.submit(|| ()).unwrap()).collect();
        // A drain budget far beyond the test's bound: only the second
        // signal can end it in time.
        let policy = ShutdownPolicy::new(Duration::from_secs(60), WAIT);
        let guard = on_signals([OTHER_TEST_SIGNAL])
            .pool("p", &pool, policy)
            .install()
            .unwrap();
        raise(OTHER_TEST_SIGNAL).unwrap();
        assert!(
            guard.stop_token().sleep(WAIT).is_err(),
            "round {round}: first signal lost"
        );
        eventually("the drain starts", || pool.is_shutdown());
        raise(OTHER_TEST_SIGNAL).unwrap();
        let reports = spawn(move || guard.wait()).join("guard.wait()");
        assert!(
            running.join().unwrap(),
            "round {round}: the running task was not interrupted"
        );
        let report = pool_report(&reports);
        assert!(report.terminated, "round {round}: {report}");
        assert!(report.elapsed < WAIT, "round {round}: {report}");
        let listed: Vec<TaskId> = report.never_started.iter().map(PendingTask::id).collect();
        let queued_ids: Vec<TaskId> = queued.iter().map(TaskHandle::id).collect();
        assert!(
            listed == queued_ids,
            "round {round}: the report lists {} of the {} never-started tasks{}",
            listed.len(),
            queued_ids.len(),
            if listed.is_sorted() {
                ""
            } else {
                ", out of order"
            }
        );
        drop(reports);
        for handle in queued {
            assert!(handle.join().unwrap_err().is_cancelled());
        }
    }
}

#[test]
#[cfg_attr(
    windows,
    ignore = "Wine: signal-hook's handlers crash when a signal is delivered (Wine's signal() lacks SIG_GET, so signal-hook chains to the address 2)"
)]
fn a_second_signal_moves_a_stuck_drain_on_to_the_interrupt_budget() {
    // A task that ignores its stop token: after the second signal no drain
    // can succeed, so the sequence should wait the interrupt budget (100 ms)
    // for it, not what is left of the drain budget (60 s), before going on
    // to the steps after the pool.
    let _serial = serial();
    let pool = named_pool(1, "deaf");
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let (started_tx, started_rx) = mpsc::channel();
    pool.task()
        .name("deaf")
        .execute(move || {
            started_tx.send(()).unwrap();
            let _ = release_rx.recv_timeout(Duration::from_secs(60));
        })
        .unwrap();
    started_rx.recv_timeout(WAIT).unwrap();
    let policy = ShutdownPolicy::new(Duration::from_secs(60), Duration::from_millis(100));
    let closed = Arc::new(AtomicBool::new(false));
    let guard = on_signals([OTHER_TEST_SIGNAL])
        .pool("p", &pool, policy)
        .step("close", WAIT, {
            let closed = closed.clone();
            move |_| closed.store(true, Ordering::SeqCst)
        })
        .install()
        .unwrap();
    raise(OTHER_TEST_SIGNAL).unwrap();
    assert!(guard.stop_token().sleep(WAIT).is_err(), "first signal lost");
    eventually("the drain starts", || pool.is_shutdown());
    raise(OTHER_TEST_SIGNAL).unwrap();
    let bound = Duration::from_secs(5);
    let reports = guard.wait_timeout(bound);
    let _ = release_tx.send(());
    let reports = reports.unwrap_or_else(|| {
        panic!(
            "after a second signal the sequence was still waiting out the 60 s drain budget \
             {bound:?} later, for a task that ignores its stop token (close step ran: {})",
            closed.load(Ordering::SeqCst)
        )
    });
    let report = pool_report(&reports);
    assert!(!report.terminated && report.stuck.len() == 1, "{report}");
    assert!(closed.load(Ordering::SeqCst));
    assert!(pool.await_termination(WAIT));
}

#[test]
#[cfg_attr(
    windows,
    ignore = "Wine: signal-hook's handlers crash when a signal is delivered (Wine's signal() lacks SIG_GET, so signal-hook chains to the address 2)"
)]
fn dropping_the_guard_unregisters_so_a_new_installer_works() {
    let _serial = serial();
    let old_ran = Arc::new(AtomicBool::new(false));
    let old = on_signals([OTHER_TEST_SIGNAL])
        .step("old", WAIT, {
            let old_ran = old_ran.clone();
            move |_| old_ran.store(true, Ordering::SeqCst)
        })
        .install()
        .unwrap();
    let old_token = old.stop_token();
    spawn(move || drop(old)).join("dropping a guard");
    let guard = on_signals([OTHER_TEST_SIGNAL])
        .step("new", WAIT, |_| ())
        .install()
        .unwrap();
    raise(OTHER_TEST_SIGNAL).unwrap();
    assert!(
        guard.stop_token().sleep(WAIT).is_err(),
        "the new installer missed the signal"
    );
    let reports = spawn(move || guard.wait()).join("guard.wait()");
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0].name, "new");
    assert!(
        !old_token.is_stop_requested(),
        "the dropped installer saw the signal"
    );
    assert!(
        !old_ran.load(Ordering::SeqCst),
        "the dropped installer ran its steps"
    );
}

/// Set in the child run of the test below.
const CHILD_ENV: &str = "DRAINPOOL_SIGNALS_TEST_CHILD";

#[test]
#[cfg_attr(
    windows,
    ignore = "Wine: signal-hook's handlers crash when a signal is delivered (Wine's signal() lacks SIG_GET, so signal-hook chains to the address 2)"
)]
fn after_the_guard_is_dropped_the_signal_starts_nothing() {
    if std::env::var_os(CHILD_ENV).is_some() {
        // The child: with no installer left, raise the signal.
        let ran = Arc::new(AtomicBool::new(false));
        let guard = on_signals([OTHER_TEST_SIGNAL])
            .step("step", WAIT, {
                let ran = ran.clone();
                move |_| ran.store(true, Ordering::SeqCst)
            })
            .install()
            .unwrap();
        let token = guard.stop_token();
        drop(guard);
        raise(OTHER_TEST_SIGNAL).unwrap();
        // The listener and sequence threads are gone: nothing can start
        // after `raise` has returned.
        println!(
            "child: survived; token fired: {}; step ran: {}",
            token.is_stop_requested(),
            ran.load(Ordering::SeqCst)
        );
        return;
    }
    let child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "installer::after_the_guard_is_dropped_the_signal_starts_nothing",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (status, stdout, stderr) = bounded_output(child, CHILD_DEADLINE);
    let stdout = String::from_utf8_lossy(&stdout);
    let stderr = String::from_utf8_lossy(&stderr);
    let survived = stdout
        .lines()
        .find_map(|l| l.find("child: survived").map(|at| &l[at..]));
    if let Some(line) = survived {
        assert!(status.success(), "{status}\n{stdout}\n{stderr}");
        assert_eq!(
            line, "child: survived; token fired: false; step ran: false",
            "a dropped installer reacted to its signal"
        );
    } else {
        // The signal's default action (terminate) was restored: also fine,
        // and nothing could have started either.
        #[cfg(unix)]
        {
            use std::os::unix::process::ExitStatusExt;
            assert_eq!(
                status.signal(),
                Some(OTHER_TEST_SIGNAL),
                "neither survived nor killed by OTHER_TEST_SIGNAL: {status}\n{stdout}\n{stderr}"
            );
        }
        #[cfg(not(unix))]
        assert!(
            !status.success(),
            "neither survived nor ended by OTHER_TEST_SIGNAL: {status}\n{stdout}\n{stderr}"
        );
    }
}
