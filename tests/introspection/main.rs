//! Introspection (issue 15): what a running task waits on
//! (`RunningTask::blocked_on`), in `running_tasks`, in a graceful
//! shutdown's report of stuck tasks, and in the dump a signal asks for.
//!
//! A task's wait is recorded on its worker's slot, which nothing notifies
//! about: the tests poll `running_tasks` until the record shows (bounded by
//! [`WAIT`], so a record that never comes fails instead of hanging), then
//! release the wait and check the record is gone while the task still runs
//! (it then spins on a flag, a wait drainpool cannot see).
//!
//! One module per capability; the support they share is here.

mod blocked_on;
#[path = "../common/mod.rs"]
mod common;
#[cfg(all(unix, feature = "signal"))]
mod dump;
mod nested;
mod report;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use common::WAIT;
use drainpool::{Blocked, RunningTask, TaskId, ThreadPool};

/// Polls `look` until it gives a value, for at most [`WAIT`]: only for
/// states nothing notifies about (a slot's record seen from outside).
fn eventually<T>(what: &str, mut look: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(value) = look() {
            return value;
        }
        assert!(Instant::now() < deadline, "{what}: not within {WAIT:?}");
        thread::sleep(Duration::from_millis(1));
    }
}

/// Task `id` as `pool.running_tasks()` lists it now, if it does.
fn listed(pool: &ThreadPool, id: TaskId) -> Option<RunningTask> {
    pool.running_tasks().into_iter().find(|task| task.id == id)
}

/// Waits until `pool` lists task `id` as blocked; returns the record.
fn blocked(pool: &ThreadPool, id: TaskId) -> (RunningTask, Blocked) {
    eventually(&format!("task {id} shown as blocked"), || {
        let task = listed(pool, id)?;
        let blocked = task.blocked_on()?;
        Some((task, blocked))
    })
}

/// The two phases of a probed task after its wait: it says it got past
/// the wait (`past`), then spins until told to end (`end`), still running
/// but no longer in a drainpool wait.
#[derive(Clone, Default)]
struct After {
    past: Arc<AtomicBool>,
    end: Arc<AtomicBool>,
}

impl After {
    /// Called by the task once its wait returned: spins until `finish`
    /// (or [`WAIT`], so that a failing test's task still ends).
    fn spin(&self) {
        self.past.store(true, Ordering::SeqCst);
        let deadline = Instant::now() + WAIT;
        while !self.end.load(Ordering::SeqCst) && Instant::now() < deadline {
            std::hint::spin_loop();
            thread::yield_now();
        }
    }

    /// Waits until the task is past its wait.
    fn wait_past(&self) {
        eventually("the task got past its wait", || {
            self.past.load(Ordering::SeqCst).then_some(())
        });
    }

    /// Lets the task end.
    fn finish(&self) {
        self.end.store(true, Ordering::SeqCst);
    }
}
