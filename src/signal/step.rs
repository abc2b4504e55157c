//! What a step of an ordered shutdown is told ([`StepContext`]) and how it
//! went ([`StepReport`], [`StepOutcome`]).

use std::fmt;
use std::time::Duration;

use crate::graceful::{ShutdownReport, StuckTask};
use crate::task::TaskId;

/// What a resource step is told about the pools before it: the tasks still
/// running (to wait for, warn about or work around) and the tasks handed
/// back without ever starting (to record, say, before a database closes).
#[derive(Debug, Clone, Default)]
pub struct StepContext {
    pub(super) stuck: Vec<(String, StuckTask)>,
    pub(super) never_started: Vec<(String, TaskId, Option<String>)>,
}

impl StepContext {
    /// `(pool name, task)` for every task still running in a pool whose
    /// step came before this one and did not terminate.
    ///
    /// # Examples
    ///
    /// ```
    /// use drainpool::crossbeam_channel::{bounded, unbounded};
    /// use drainpool::signal::{on_signals, SIGTERM};
    /// use drainpool::{ShutdownPolicy, ThreadPool};
    /// use std::time::Duration;
    ///
    /// let pool = ThreadPool::new(1)?;
    /// let (started_tx, started) = bounded(1);
    /// let (release, released) = bounded::<()>(1);
    /// pool.task().name("stubborn").execute(move || {
    ///     started_tx.send(()).unwrap();
    ///     released.recv().unwrap(); // deaf to its stop token
    /// })?;
    /// started.recv()?;
    ///
    /// let (seen_tx, seen) = unbounded();
    /// let guard = on_signals([SIGTERM])
    ///     .pool("jobs", &pool, ShutdownPolicy::new(Duration::ZERO, Duration::from_millis(20)))
    ///     .step("close the database", Duration::from_secs(10), move |ctx| {
    ///         for (pool, task) in ctx.stuck() {
    ///             // Still running: close around it, or wait for it a little.
    ///             seen_tx.send((pool.clone(), task.name.clone())).unwrap();
    ///         }
    ///     })
    ///     .install()?;
    /// guard.trigger();
    /// guard.wait();
    /// let stuck: Vec<_> = seen.try_iter().collect();
    /// assert_eq!(stuck, [("jobs".to_owned(), Some("stubborn".to_owned()))]);
    /// release.send(())?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn stuck(&self) -> &[(String, StuckTask)] {
        &self.stuck
    }

    /// `(pool name, task id, task name)` for every task a pool before this
    /// step handed back without starting it. The tasks themselves are in
    /// that pool's report, which [`SignalGuard::wait`](super::SignalGuard::wait) returns.
    ///
    /// # Examples
    ///
    /// ```
    /// use drainpool::signal::{on_signals, SIGTERM};
    /// use drainpool::{ShutdownPolicy, StopToken, ThreadPool};
    /// use std::time::Duration;
    ///
    /// let pool = ThreadPool::new(1)?;
    /// let (_never, rx) = drainpool::crossbeam_channel::bounded::<()>(0);
    /// pool.execute(move || drop(StopToken::current().recv(&rx)))?; // busy until interrupted
    /// pool.task().name("late").execute(|| ())?;
    /// let (seen_tx, seen) = drainpool::crossbeam_channel::unbounded();
    /// let guard = on_signals([SIGTERM])
    ///     .pool("jobs", &pool, ShutdownPolicy::new(Duration::ZERO, Duration::from_secs(10)))
    ///     .step("record", Duration::from_secs(10), move |ctx| {
    ///         for (pool, _id, name) in ctx.never_started() {
    ///             seen_tx.send((pool.clone(), name.clone())).unwrap();
    ///         }
    ///     })
    ///     .install()?;
    /// guard.trigger(); // as the first signal would
    /// let reports = guard.wait();
    /// assert_eq!(reports.len(), 2);
    /// assert!(seen.try_iter().any(|(pool, name)| pool == "jobs" && name.as_deref() == Some("late")));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn never_started(&self) -> &[(String, TaskId, Option<String>)] {
        &self.never_started
    }
}

/// How one step of an ordered shutdown went; from [`SignalGuard::wait`](super::SignalGuard::wait).
///
/// Its `Display` is one line for a resource step, and the pool's
/// [`ShutdownReport`] for a pool step.
///
/// # Examples
///
/// ```
/// use drainpool::signal::{on_signals, StepOutcome, SIGTERM};
/// use drainpool::{ShutdownPolicy, ThreadPool};
/// use std::time::Duration;
///
/// let pool = ThreadPool::new(1)?;
/// let policy = ShutdownPolicy::new(Duration::from_secs(10), Duration::from_secs(5));
/// let guard = on_signals([SIGTERM])
///     .pool("jobs", &pool, policy)
///     .step("flush the log", Duration::from_secs(5), |_ctx| ())
///     .install()?;
/// guard.trigger();
/// for step in guard.wait() {
///     match &step.outcome {
///         StepOutcome::Pool(report) if !report.terminated => eprintln!("{step}"),
///         StepOutcome::Failed | StepOutcome::Overran => eprintln!("{step}"),
///         _ => println!("{step}"), // "jobs: pool terminated after ...", "flush the log: done in ..."
///     }
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub struct StepReport {
    /// The name the step was added with.
    pub name: String,
    /// What happened.
    pub outcome: StepOutcome,
}

/// The outcome of one step.
#[derive(Debug)]
#[non_exhaustive]
pub enum StepOutcome {
    /// A pool step: the pool's graceful shutdown report.
    Pool(ShutdownReport),
    /// A pool step whose pool had been dropped before the signal.
    PoolGone,
    /// A resource step that returned, after this long.
    Completed(Duration),
    /// A resource step that panicked (logged) or could not start.
    Failed,
    /// A resource step that overran its budget; it was left running.
    Overran,
}

impl fmt::Display for StepReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.name)?;
        match &self.outcome {
            StepOutcome::Pool(report) => write!(f, "{report}"),
            StepOutcome::PoolGone => f.write_str("pool already dropped"),
            StepOutcome::Completed(took) => write!(f, "done in {took:.3?}"),
            StepOutcome::Failed => f.write_str("FAILED (see the log)"),
            StepOutcome::Overran => f.write_str("OVERRAN its budget; left running"),
        }
    }
}
