//! Escalating shutdown: ask nicely, then interrupt, then make a scene.
//!
//! The steps a user sees are on [`ShutdownPolicy`] and
//! [`ThreadPool::shutdown_gracefully`](crate::ThreadPool::shutdown_gracefully),
//! where they render. The escalation itself runs here on the pool's shared
//! state, not on a `ThreadPool`, so that the signal installer (which holds
//! each pool only weakly) runs exactly the same steps, and
//! `Builder::drop_policy` too.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::running::RunningTask;
use crate::runtime::PendingTask;
use crate::runtime::Shared;
use crate::runtime::run;
use crate::state::{PoolState, deadline_after};

/// The time budget of each step of a graceful shutdown: ask nicely, then
/// interrupt, then make a scene.
///
/// [`ThreadPool::shutdown_gracefully`](crate::ThreadPool::shutdown_gracefully)
/// runs three steps, stopping as soon as the pool has terminated:
///
/// 1. [`shutdown`](crate::ThreadPool::shutdown): no new work; every accepted
///    task may still run. Wait up to [`drain`](Self::drain).
/// 2. [`shutdown_now`](crate::ThreadPool::shutdown_now): the tasks that never
///    started are handed back (in [`ShutdownReport::never_started`]), running
///    tasks see their [`StopToken`](crate::StopToken) raised and their
///    interruptible waits wake. Wait up to [`interrupt`](Self::interrupt).
/// 3. Every task still running is logged at error level with its name, id,
///    thread, how long it has run and, if it is blocked in a drainpool wait,
///    on what and for how long ([`RunningTask::blocked_on`]), and listed in
///    [`ShutdownReport::stuck`]. Nothing is killed: the stuck tasks' threads
///    go on, and the call returns.
///
/// A `shutdown_now` from elsewhere during step 1 (a second signal, a
/// [`ShutdownHandle`](crate::ShutdownHandle)) cuts the drain short: step 2
/// follows at once, and the tasks that call handed back are in this report
/// too. The same policy bounds the wait of a dropped pool
/// ([`Builder::drop_policy`](crate::Builder::drop_policy)) and each pool's
/// step of an ordered shutdown on signals.
///
/// # Examples
///
/// ```
/// use drainpool::{ShutdownPolicy, ThreadPool};
/// use std::time::Duration;
///
/// // Ten seconds to drain, then five for running tasks to notice the stop.
/// let policy = ShutdownPolicy::new(Duration::from_secs(10), Duration::from_secs(5));
/// assert_eq!(policy.drain(), Duration::from_secs(10));
/// assert_eq!(policy.interrupt(), Duration::from_secs(5));
///
/// // Dropping this pool runs the same escalation instead of waiting forever.
/// let pool = ThreadPool::builder().threads(2).drop_policy(policy).build().unwrap();
/// let answer = pool.submit(|| 42).unwrap();
/// assert_eq!(answer.join().unwrap(), 42);
/// let report = pool.shutdown_gracefully(policy);
/// assert!(report.terminated); // nothing was left to wait for: step 1 sufficed
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ShutdownPolicy {
    drain: Duration,
    interrupt: Duration,
}

impl ShutdownPolicy {
    /// Waits up to `drain` for the queue to drain after `shutdown`, then up
    /// to `interrupt` for running tasks to stop after `shutdown_now`.
    /// `Duration::ZERO` skips a wait; `Duration::MAX` waits forever.
    pub fn new(drain: Duration, interrupt: Duration) -> ShutdownPolicy {
        ShutdownPolicy { drain, interrupt }
    }

    /// How long step 1 (drain) may take.
    pub fn drain(&self) -> Duration {
        self.drain
    }

    /// How long step 2 (interrupt) may take.
    pub fn interrupt(&self) -> Duration {
        self.interrupt
    }
}

/// A task still running when a graceful shutdown gave up on it; its
/// [`blocked_on`](RunningTask::blocked_on) says what it waits on, if it
/// waits through drainpool.
pub type StuckTask = RunningTask;

/// What a graceful shutdown achieved; from
/// [`ThreadPool::shutdown_gracefully`](crate::ThreadPool::shutdown_gracefully).
///
/// Its `Display` is a few lines meant for a log: the counts, then the
/// first [`ShutdownReport::LISTED`] stuck tasks (each with what it waits
/// on, as in `stuck: task #7 (import) on drainpool-0 for 12.0s, blocked in
/// recv for 11.9s`) and the first `LISTED` never-started ones by name,
/// each list ending with how many more there are (the fields hold them
/// all).
///
/// Dropping the report drops the [`PendingTask`]s in
/// [`never_started`](Self::never_started), which cancels them: take them
/// out first to run or keep them.
///
/// # Examples
///
/// A task that ignores its stop token is named as stuck; the task queued
/// behind it comes back never started.
///
/// ```
/// use drainpool::crossbeam_channel::bounded;
/// use drainpool::{ShutdownPolicy, ThreadPool};
/// use std::time::Duration;
///
/// let pool = ThreadPool::new(1).unwrap();
/// let (started_tx, started) = bounded(1);
/// let (release, released) = bounded::<()>(1);
/// pool.task()
///     .name("stubborn")
///     .execute(move || {
///         started_tx.send(()).unwrap();
///         released.recv().unwrap(); // a wait the stop token cannot wake
///     })
///     .unwrap();
/// started.recv().unwrap();
/// pool.task().name("late").execute(|| ()).unwrap();
///
/// let report = pool.shutdown_gracefully(ShutdownPolicy::new(
///     Duration::ZERO,
///     Duration::from_millis(20),
/// ));
/// assert!(!report.terminated);
/// assert_eq!(report.stuck[0].name.as_deref(), Some("stubborn"));
/// assert_eq!(report.never_started[0].name(), Some("late"));
/// let text = report.to_string();
/// assert!(text.contains("pool NOT terminated"));
/// assert!(text.contains("stuck: task") && text.contains("(stubborn)"));
///
/// for task in report.never_started {
///     task.run(); // on this thread: nothing is lost
/// }
/// release.send(()).unwrap();
/// assert!(pool.await_termination(Duration::from_secs(10)));
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub struct ShutdownReport {
    /// True if the pool terminated within the budget.
    pub terminated: bool,
    /// Tasks that ran to the end while the shutdown ran; a task that saw its
    /// stop token and returned early counts here too (it ended normally).
    pub completed: u64,
    /// Tasks that panicked while the shutdown ran.
    pub panicked: u64,
    /// Tasks handed back by step 2, in submission order. Dropping them
    /// cancels them; run them or keep them to lose nothing.
    pub never_started: Vec<PendingTask>,
    /// Tasks still running when the budget ran out.
    pub stuck: Vec<StuckTask>,
    /// How long the whole shutdown took.
    pub elapsed: Duration,
}

impl ShutdownReport {
    /// How many stuck and how many never-started tasks `Display` names; it
    /// counts the rest.
    pub const LISTED: usize = 10;
}

/// Writes `"\n  {what}: {item}"` for the first `ShutdownReport::LISTED`
/// items, then one line counting the rest.
fn list_some<T>(
    f: &mut fmt::Formatter<'_>,
    what: &str,
    items: &[T],
    mut write_one: impl FnMut(&mut fmt::Formatter<'_>, &T) -> fmt::Result,
) -> fmt::Result {
    for item in items.iter().take(ShutdownReport::LISTED) {
        write!(f, "\n  {what}: ")?;
        write_one(f, item)?;
    }
    if items.len() > ShutdownReport::LISTED {
        write!(
            f,
            "\n  ... and {} more {what}",
            items.len() - ShutdownReport::LISTED
        )?;
    }
    Ok(())
}

impl fmt::Display for ShutdownReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.terminated {
            write!(f, "pool terminated after {:.3?}", self.elapsed)?;
        } else {
            write!(f, "pool NOT terminated after {:.3?}", self.elapsed)?;
        }
        write!(
            f,
            ": {} completed, {} panicked, {} never started, {} stuck",
            self.completed,
            self.panicked,
            self.never_started.len(),
            self.stuck.len()
        )?;
        list_some(f, "stuck", &self.stuck, |f, task| write!(f, "{task}"))?;
        list_some(f, "never started", &self.never_started, |f, task| {
            write!(f, "task {}", task.id())?;
            match task.name() {
                Some(name) => write!(f, " ({name})"),
                None => Ok(()),
            }
        })
    }
}

/// The escalation itself, on the shared state (the signal installer holds a
/// pool only through that). `pool` names the pool in the log: the name it
/// was registered under, or `pool {id}`.
pub(crate) fn shutdown_gracefully(
    shared: &Arc<Shared>,
    policy: ShutdownPolicy,
    pool: &dyn fmt::Display,
) -> ShutdownReport {
    let start = Instant::now();
    let before = shared.stats();
    let mut never_started = Vec::new();
    let terminated = if run::is_worker_of(shared.id) {
        shared.shutdown();
        log_warn!(
            "{pool}: shutdown_gracefully called from the pool's own worker; shutting down \
             without waiting"
        );
        false
    } else {
        log_debug!(
            "{pool}: graceful shutdown, step 1: drain for up to {:?}",
            policy.drain
        );
        shared.shutdown();
        // Step 1 also ends early if someone else (a second signal) moved the
        // pool to Stopping: then only the interrupt budget is left.
        let state = shared
            .lifecycle
            .wait_at_least(PoolState::Stopping, deadline_after(policy.drain));
        state == PoolState::Terminated || {
            never_started = shared.shutdown_now();
            let why = if state == PoolState::Stopping {
                format!(
                    "the drain was cut short after {:.3?} by a shutdown_now from elsewhere \
                     (a second signal?)",
                    start.elapsed()
                )
            } else {
                format!("the drain did not finish in {:?}", policy.drain)
            };
            log_warn!(
                "{pool}: graceful shutdown, step 2: {why}; interrupting {} running task(s), \
                 {} never-started task(s) handed back",
                shared.stats().active,
                never_started.len()
            );
            shared.await_termination(policy.interrupt)
        }
    };
    // A shutdown_now requested from elsewhere meanwhile (a second signal)
    // kept the tasks it took back in the pool: they belong in this report,
    // after ours (anything our own shutdown_now found stashed came first).
    never_started.extend(shared.take_stashed());
    let stuck = if terminated {
        Vec::new()
    } else {
        shared.running_tasks()
    };
    for task in &stuck {
        log_error!("{pool}: graceful shutdown, step 3: {task}, still running: stuck");
    }
    let after = shared.stats();
    ShutdownReport {
        terminated,
        completed: after.completed - before.completed,
        panicked: after.panicked - before.panicked,
        never_started,
        stuck,
        elapsed: start.elapsed(),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::{ShutdownPolicy, ShutdownReport, StopToken, ThreadPool};

    /// A report of 25 never-started tasks names the first
    /// `ShutdownReport::LISTED` and counts the rest, instead of printing a
    /// line per task (7,546 lines for 7,536 tasks, seen from outside).
    #[test]
    fn a_long_report_names_the_first_few_and_counts_the_rest() {
        let pool = ThreadPool::new(1).unwrap();
        let (_keep, never) = crossbeam_channel::bounded::<()>(0);
        let (started_tx, started) = crossbeam_channel::bounded(0);
        pool.execute(move || {
            started_tx.send(()).unwrap();
            // Busy until step 2 raises the stop.
            let _ = StopToken::current().recv(&never);
        })
        .unwrap();
        started.recv().unwrap(); // the only worker is busy: the rest stays queued
        for i in 0..25 {
            pool.task()
                .name(format!("chunk-{i}"))
                .execute(|| ())
                .unwrap();
        }
        let report =
            pool.shutdown_gracefully(ShutdownPolicy::new(Duration::ZERO, Duration::from_secs(30)));
        assert!(report.terminated);
        assert_eq!(report.never_started.len(), 25);
        let text = report.to_string();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 1 + ShutdownReport::LISTED + 1, "{text}");
        assert!(lines[1].ends_with("(chunk-0)"), "{text}");
        assert!(
            lines[ShutdownReport::LISTED].ends_with("(chunk-9)"),
            "{text}"
        );
        assert_eq!(
            lines.last().unwrap().trim(),
            "... and 15 more never started"
        );
    }
}
