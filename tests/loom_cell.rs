//! Loom model checks of a submitted task's cell: the claim that decides,
//! exactly once, between a worker (or a helping joiner) running the task,
//! `shutdown_now` handing it back, the handed-back `PendingTask` running
//! or being dropped, and the handle's `cancel`; and the handle's wait for
//! the result, which must not miss its wake-up. The real cell
//! (`drainpool::model::Cell`), every lock and atomic taken from loom.
//!
//! `LOOM_MAX_PREEMPTIONS=3 RUSTFLAGS="--cfg loom" cargo test --release --test 'loom_*'`
//!
//! A plain `execute` task has no cell: its queue entry is taken by exactly
//! one party (a worker or `shutdown_now`'s drain) because each slot of the
//! queue is claimed once; `loom_fifo.rs` models that.
#![cfg(loom)]

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

use drainpool::TaskError;
use drainpool::model::{Cell, End};

/// A cell whose closure counts its runs (a std counter: read only after
/// every thread was joined).
fn counted() -> (Cell, std::sync::Arc<AtomicUsize>) {
    let runs = std::sync::Arc::new(AtomicUsize::new(0));
    let cell = {
        let runs = runs.clone();
        Cell::new(move || {
            runs.fetch_add(1, SeqCst);
            42
        })
    };
    (cell, runs)
}

/// The ends everyone saw: exactly one party ran or cancelled the task, and
/// the handle's result says which.
fn check(ends: &[End], runs: usize, joined: Result<u32, TaskError>) {
    let ran: Vec<_> = ends
        .iter()
        .filter(|e| matches!(e, End::Ran { .. }))
        .collect();
    let cancelled: Vec<_> = ends
        .iter()
        .filter(|e| matches!(e, End::Cancelled { .. }))
        .collect();
    assert_eq!(ran.len() + cancelled.len(), 1, "claimed {ends:?}");
    assert_eq!(runs, ran.len(), "the closure ran {runs} times: {ends:?}");
    match joined {
        Ok(v) => assert!(v == 42 && ran.len() == 1, "{ends:?}"),
        Err(e) => assert!(e.is_cancelled() && cancelled.len() == 1, "{ends:?}"),
    }
}

/// A worker takes the task while `shutdown_now` hands it back and then
/// drops the `PendingTask`; the program joins. Never both run and handed
/// back: if the hand-back won, the end is counted as returned, once.
#[test]
fn shutdown_now_vs_a_worker_taking_the_same_task() {
    loom::model(|| {
        let (cell, runs) = counted();
        let worker = {
            let cell = cell.clone();
            loom::thread::spawn(move || cell.run())
        };
        let stopper = {
            let cell = cell.clone();
            loom::thread::spawn(move || cell.hand_back().then(|| cell.drop_pending()))
        };
        let joined = cell.join();
        let ran = worker.join().unwrap();
        let handed = stopper.join().unwrap();
        let mut ends = vec![ran];
        ends.extend(handed);
        check(&ends, runs.load(SeqCst), joined);
        if handed.is_some() {
            // Handed back: whoever ended it counts it as returned.
            assert!(
                ends.iter().any(|e| matches!(
                    e,
                    End::Ran { returned: true } | End::Cancelled { returned: true }
                )),
                "{ends:?}"
            );
        } else {
            assert_eq!(ran, End::Ran { returned: false });
        }
    });
}

/// The handle's `cancel` races the task starting on a worker: `cancel`
/// wins (it never starts, the handle resolves `Cancelled`), or the task
/// runs and `cancel` reports it running (its stop flag raised) or ended.
#[test]
fn handle_cancel_vs_start() {
    loom::model(|| {
        let (cell, runs) = counted();
        let worker = {
            let cell = cell.clone();
            loom::thread::spawn(move || cell.run())
        };
        let cancelled = cell.cancel();
        let ran = worker.join().unwrap();
        let joined = cell.join();
        check(&[ran, cancelled], runs.load(SeqCst), joined);
        match cancelled {
            End::Cancelled { returned } => assert!(!returned && ran == End::Lost),
            End::Running => assert!(cell.stop_requested(), "cancel of a running task"),
            End::Lost => assert_eq!(ran, End::Ran { returned: false }),
            End::Ran { .. } | End::Expired => unreachable!(),
        }
    });
}

/// A task handed back by `shutdown_now` is run by the program (through
/// its `PendingTask`) while its handle is cancelled from another thread:
/// one of them wins, counted once as returned.
#[test]
fn a_handed_back_task_run_by_the_program_vs_its_handles_cancel() {
    loom::model(|| {
        let (cell, runs) = counted();
        assert!(cell.hand_back());
        let canceller = {
            let cell = cell.clone();
            loom::thread::spawn(move || cell.cancel())
        };
        let ran = cell.run_pending();
        let cancelled = canceller.join().unwrap();
        let joined = cell.join();
        check(&[ran, cancelled], runs.load(SeqCst), joined);
        assert!(
            matches!(ran, End::Ran { returned: true } | End::Lost)
                && matches!(
                    cancelled,
                    End::Cancelled { returned: true } | End::Running | End::Lost
                ),
            "{ran:?} {cancelled:?}"
        );
    });
}

/// Two workers race for the same cell (a worker and a joiner helping):
/// exactly one runs it, and a third thread's join wakes up.
#[test]
fn two_runners_and_a_joiner() {
    loom::model(|| {
        let (cell, runs) = counted();
        let runners: Vec<_> = (0..2)
            .map(|_| {
                let cell = cell.clone();
                loom::thread::spawn(move || cell.run())
            })
            .collect();
        let joiner = {
            let cell = cell.clone();
            loom::thread::spawn(move || cell.join())
        };
        let ends: Vec<End> = runners.into_iter().map(|r| r.join().unwrap()).collect();
        let joined = joiner.join().unwrap();
        check(&ends, runs.load(SeqCst), joined);
        assert!(cell.is_finished());
    });
}

/// A joiner helping (or a worker) races `shutdown_now` handing the task
/// back, whose program then runs the `PendingTask`: the task runs exactly
/// once, and never by the pool once it was handed back (issue 12, defect 5:
/// the joiner used to run a handed-back task, and the program's run or
/// `into_job` then found it gone).
#[test]
fn a_joiner_helping_never_runs_a_handed_back_task() {
    loom::model(|| {
        let (cell, runs) = counted();
        let helper = {
            let cell = cell.clone();
            loom::thread::spawn(move || cell.run())
        };
        let stopper = {
            let cell = cell.clone();
            loom::thread::spawn(move || cell.hand_back().then(|| cell.run_pending()))
        };
        let joined = cell.join();
        let helped = helper.join().unwrap();
        let handed = stopper.join().unwrap();
        let mut ends = vec![helped];
        ends.extend(handed);
        check(&ends, runs.load(SeqCst), joined);
        match handed {
            Some(held) => {
                assert_eq!(helped, End::Lost);
                assert_eq!(held, End::Ran { returned: true });
            }
            None => assert_eq!(helped, End::Ran { returned: false }),
        }
    });
}

/// A task past its start deadline: the timer expires it while a worker
/// takes it (and expires it too, finding the deadline passed) and the
/// handle cancels it; the program joins. Exactly one party ends it, the
/// closure never runs, and a joiner that sees `Expired` sees the closure
/// already dropped.
#[test]
fn the_timer_expiring_vs_a_worker_taking_vs_a_cancel() {
    loom::model(|| {
        let dropped = std::sync::Arc::new(loom::sync::atomic::AtomicUsize::new(0));
        let runs = std::sync::Arc::new(AtomicUsize::new(0));
        let cell = {
            struct CountsDrop(std::sync::Arc<loom::sync::atomic::AtomicUsize>);
            impl Drop for CountsDrop {
                fn drop(&mut self) {
                    self.0.fetch_add(1, SeqCst);
                }
            }
            let (keep, runs) = (CountsDrop(dropped.clone()), runs.clone());
            Cell::past_its_deadline(move || {
                let _keep = keep;
                runs.fetch_add(1, SeqCst);
                42
            })
        };
        let timer = {
            let cell = cell.clone();
            loom::thread::spawn(move || cell.expire())
        };
        let worker = {
            let cell = cell.clone();
            loom::thread::spawn(move || cell.run())
        };
        let cancelled = cell.cancel();
        let joined = cell.join();
        if let Err(TaskError::Expired) = joined {
            assert_eq!(dropped.load(SeqCst), 1, "resolved before the drop");
        }
        let ends = [timer.join().unwrap(), worker.join().unwrap(), cancelled];
        let expired = ends.iter().filter(|e| matches!(e, End::Expired)).count();
        let cancels = ends
            .iter()
            .filter(|e| matches!(e, End::Cancelled { .. }))
            .count();
        assert_eq!(expired + cancels, 1, "claimed {ends:?}");
        assert_eq!(runs.load(SeqCst), 0, "a task past its deadline never runs");
        assert_eq!(dropped.load(SeqCst), 1);
        match joined {
            Err(TaskError::Expired) => assert_eq!(expired, 1, "{ends:?}"),
            Err(TaskError::Cancelled) => assert_eq!(cancels, 1, "{ends:?}"),
            other => panic!("{other:?} after {ends:?}"),
        }
    });
}

/// The handle dropped while a worker runs the task: the result is dropped
/// exactly once, by whichever of the two sees the other (`publish` and
/// `detach` in `cell.rs`), and the closure's capture once. Loom's
/// `UnsafeCell` under the slot reports the two touching it at once.
#[test]
fn a_dropped_handle_vs_the_result_being_published() {
    loom::model(|| {
        let drops = std::sync::Arc::new(AtomicUsize::new(0));
        let cell = drainpool::model::ResultCell::new(&drops);
        let worker = {
            let cell = cell.clone();
            loom::thread::spawn(move || cell.run())
        };
        cell.detach();
        assert!(worker.join().unwrap());
        // Disposed of by the handle or the worker, not left for the last
        // reference (a panic there would reach no one).
        assert_eq!(
            drops.load(SeqCst),
            2,
            "the capture and the result, once each"
        );
        drop(cell);
        assert_eq!(drops.load(SeqCst), 2);
    });
}

/// A cancel and a run race while the handle joins or is dropped: whoever
/// claims, the capture is dropped once, and a result, if there was one,
/// once; the last reference drops nothing twice.
#[test]
fn a_cancel_vs_a_run_vs_the_handle() {
    for joins in [true, false] {
        loom::model(move || {
            let drops = std::sync::Arc::new(AtomicUsize::new(0));
            let cell = drainpool::model::ResultCell::new(&drops);
            let worker = {
                let cell = cell.clone();
                loom::thread::spawn(move || cell.run())
            };
            let cancelled = cell.cancel();
            if joins {
                assert_eq!(cell.join(), !cancelled);
            } else {
                cell.detach();
            }
            let ran = worker.join().unwrap();
            assert_ne!(ran, cancelled, "exactly one claim");
            drop(cell);
            let results = usize::from(ran);
            assert_eq!(drops.load(SeqCst), 1 + results);
        });
    }
}

/// A cancel raises the stop flag of a running task while the task asks
/// for its own stop source (`StopToken::current`): neither has made the
/// source yet, so both make one at once. One is kept, the raised flag is
/// on it, and the other is dropped (checked by mutation: a store instead
/// of the compare-and-swap loses the flag).
#[test]
fn two_threads_making_a_tasks_stop_source_at_once_share_one() {
    loom::model(|| {
        let cell = Cell::new(|| 1);
        let canceller = {
            let cell = cell.clone();
            loom::thread::spawn(move || cell.request_stop())
        };
        let _ = cell.stop_requested();
        canceller.join().unwrap();
        assert!(
            cell.stop_requested(),
            "the flag went to a stop source no one keeps"
        );
    });
}
