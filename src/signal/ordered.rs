//! The signal installer and the ordered shutdown it runs (the behaviour a
//! user must know is on `on_signals`, where it renders).
//!
//! The handlers only count the signal and ring a bell (see `handlers.rs`);
//! a listener thread does everything else, on an ordinary thread.

use std::borrow::Borrow;
use std::fmt;
use std::io;
use std::os::raw::c_int;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use parking_lot::Mutex;

use crate::graceful::{self, ShutdownPolicy, StuckTask};
use crate::pool::ThreadPool;
use crate::runtime::Shared;
use crate::signal::handlers::{Handlers, signal_name};
use crate::signal::step::{StepContext, StepOutcome, StepReport};
use crate::stop::{StopSource, StopToken};
use crate::task::TaskId;
use crate::unwind;

/// Starts describing the ordered shutdown that `signals` will trigger.
///
/// Add pools and resource steps in the order they must stop, then
/// [`install`](OrderedShutdown::install).
///
/// ```
/// use drainpool::signal::{on_signals, SHUTDOWN_SIGNALS};
/// use drainpool::{ShutdownPolicy, ThreadPool};
/// use std::time::Duration;
///
/// let ingest = ThreadPool::new(4)?;
/// let export = ThreadPool::new(2)?;
/// let policy = ShutdownPolicy::new(Duration::from_secs(10), Duration::from_secs(5));
/// let guard = on_signals(SHUTDOWN_SIGNALS)
///     .pool("ingest", &ingest, policy)
///     .pool("export", &export, policy)
///     .step("close the database", Duration::from_secs(5), |ctx| {
///         // Runs only after both pools terminated or were given up on.
///         for (pool, task) in ctx.stuck() {
///             eprintln!("{pool}: {task} is still running");
///         }
///     })
///     .install()?;
/// // ... serve until a signal arrives ...
/// # guard.trigger(); // the doctest's stand-in for the first signal
/// for step in guard.wait() {
///     println!("{step}");
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// On the **first** signal the steps run in the order they were added, each
/// with its own budget: a pool step is [`ThreadPool::shutdown_gracefully`]
/// with its policy; a resource step is a closure run on a thread of its own
/// and given up on (logged) if it overruns. A step runs only after every
/// step before it has finished or been given up on, so "close the database"
/// never runs while a pool registered before it may still write to it. The
/// [`SignalGuard::stop_token`] fires at the same moment, for the program's
/// own loops. The **second** signal turns every pool's shutdown into
/// `shutdown_now` at once (the tasks it takes back still reach the reports).
/// The **third** logs what is still running and exits the process with
/// status 128 + the signal number.
///
/// While the [`SignalGuard`] lives, the signals do nothing else (no default
/// action). Once it is dropped, or [`SignalGuard::wait`] returned, each
/// signal's default action is back: a later Ctrl-C ends the process as
/// usual, also during the program's own cleanup.
///
/// On Unix, [`dump_on`](OrderedShutdown::dump_on) adds a signal (say
/// `SIGQUIT`) that logs what every task of the pools is doing, and stops
/// nothing.
///
/// Which signals exist depends on the platform: see
/// [`SHUTDOWN_SIGNALS`](super::SHUTDOWN_SIGNALS) and the constants of
/// [`signal`](super).
pub fn on_signals<I>(signals: I) -> OrderedShutdown
where
    I: IntoIterator,
    I::Item: Borrow<c_int>,
{
    OrderedShutdown {
        signals: signals.into_iter().map(|s| *s.borrow()).collect(),
        dumps: Vec::new(),
        steps: Vec::new(),
    }
}

/// The steps of an ordered shutdown, in order; from [`on_signals`].
#[must_use = "nothing is installed until install is called"]
pub struct OrderedShutdown {
    signals: Vec<c_int>,
    /// The signals that ask for a dump of the running tasks (`dump_on`).
    dumps: Vec<c_int>,
    steps: Vec<Step>,
}

type StepFn = Box<dyn FnOnce(&StepContext) + Send + 'static>;

enum Step {
    Pool {
        name: String,
        pool: Weak<Shared>,
        policy: ShutdownPolicy,
    },
    Resource {
        name: String,
        budget: Duration,
        run: StepFn,
    },
}

impl Step {
    fn name(&self) -> &str {
        match self {
            Step::Pool { name, .. } | Step::Resource { name, .. } => name,
        }
    }
}

impl OrderedShutdown {
    /// Adds a pool, shut down with [`ThreadPool::shutdown_gracefully`] and
    /// `policy`. The installer holds the pool weakly: a pool dropped before
    /// the signal is skipped (its report says
    /// [`StepOutcome::PoolGone`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use drainpool::signal::{on_signals, StepOutcome, SIGTERM};
    /// use drainpool::{ShutdownPolicy, ThreadPool};
    /// use std::time::Duration;
    ///
    /// let ingest = ThreadPool::new(2)?;
    /// let export = ThreadPool::new(1)?;
    /// let scratch = ThreadPool::new(1)?;
    /// let policy = ShutdownPolicy::new(Duration::from_secs(10), Duration::from_secs(5));
    /// let guard = on_signals([SIGTERM])
    ///     .pool("ingest", &ingest, policy) // stops first: it feeds export
    ///     .pool("export", &export, policy)
    ///     .pool("scratch", &scratch, policy)
    ///     .install()?;
    /// drop(scratch); // gone before the signal: skipped
    ///
    /// guard.trigger(); // as the first SIGTERM would
    /// let reports = guard.wait();
    /// let names: Vec<&str> = reports.iter().map(|step| step.name.as_str()).collect();
    /// assert_eq!(names, ["ingest", "export", "scratch"]);
    /// assert!(ingest.is_terminated() && export.is_terminated());
    /// assert!(matches!(reports[2].outcome, StepOutcome::PoolGone));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn pool(
        mut self,
        name: impl Into<String>,
        pool: &ThreadPool,
        policy: ShutdownPolicy,
    ) -> Self {
        self.steps.push(Step::Pool {
            name: name.into(),
            pool: Arc::downgrade(pool.shared_arc()),
            policy,
        });
        self
    }

    /// Adds a resource step: `run` is called on a thread of its own, after
    /// every earlier step, with the tasks still stuck in earlier pools. If it
    /// panics or runs longer than `budget`, that is logged and the sequence
    /// goes on (an overrunning step is left to finish on its own).
    ///
    /// # Examples
    ///
    /// The database closes only once the pool that writes to it has
    /// terminated.
    ///
    /// ```
    /// use drainpool::crossbeam_channel::bounded;
    /// use drainpool::signal::{on_signals, StepOutcome, SIGTERM};
    /// use drainpool::{ShutdownPolicy, ThreadPool};
    /// use std::sync::atomic::{AtomicBool, Ordering};
    /// use std::sync::Arc;
    /// use std::time::Duration;
    ///
    /// let terminated = Arc::new(AtomicBool::new(false));
    /// let flag = terminated.clone();
    /// let writers = ThreadPool::builder()
    ///     .threads(2)
    ///     .on_terminated(move || flag.store(true, Ordering::SeqCst))
    ///     .build()?;
    /// let (closed_tx, closed) = bounded(1);
    /// let policy = ShutdownPolicy::new(Duration::from_secs(10), Duration::from_secs(5));
    /// let guard = on_signals([SIGTERM])
    ///     .pool("writers", &writers, policy)
    ///     .step("close the database", Duration::from_secs(5), move |_ctx| {
    ///         // db.close(): no writer task can still be running.
    ///         closed_tx.send(terminated.load(Ordering::SeqCst)).unwrap();
    ///     })
    ///     .install()?;
    /// guard.trigger();
    /// let reports = guard.wait();
    /// assert!(closed.recv()?); // the pool had terminated when the step ran
    /// assert!(matches!(reports[1].outcome, StepOutcome::Completed(_)));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn step<F>(mut self, name: impl Into<String>, budget: Duration, run: F) -> Self
    where
        F: FnOnce(&StepContext) + Send + 'static,
    {
        self.steps.push(Step::Resource {
            name: name.into(),
            budget,
            run: Box::new(run),
        });
        self
    }

    /// Adds `signal` as a request for a **dump**: when it arrives, every
    /// task running in the pools added with [`pool`](Self::pool) is logged,
    /// with how long it has run and what it waits on
    /// ([`RunningTask::blocked_on`](crate::RunningTask::blocked_on)), and
    /// nothing stops: the JVM's thread dump on `SIGQUIT`, for a pool.
    ///
    /// The dump is written with [`log`] at `warn` level, one line per
    /// task after a header per pool:
    ///
    /// ```text
    /// SIGQUIT received: the running tasks of 1 pool(s) follow (nothing stops)
    /// pool jobs: Running, 2 running, 14 queued, 4 thread(s)
    /// pool jobs: task #1025 (import) on drainpool-0 for 75.2s, blocked in recv for 75.1s
    /// pool jobs: task #1031 on drainpool-2 for 0.3s
    /// ```
    ///
    /// The handler does what the shutdown signals' handler does (counts
    /// the arrival, rings a bell: async-signal-safe); the listener thread
    /// reads the pools and logs. A dump signal is no shutdown signal: it
    /// neither starts nor escalates the ordered shutdown, and it still
    /// dumps while one runs (what is a stuck drain waiting on?). While the
    /// [`SignalGuard`] lives the signal's default action (for `SIGQUIT`, a
    /// core dump) is replaced; afterwards it is back.
    ///
    /// Unix only: Windows has no signal to spare for this.
    ///
    /// # Errors
    ///
    /// [`install`](Self::install) refuses (`InvalidInput`) a signal that is
    /// both a shutdown signal and a dump signal.
    ///
    /// # Examples
    ///
    /// ```
    /// use drainpool::signal::{on_signals, SHUTDOWN_SIGNALS, SIGQUIT};
    /// use drainpool::{ShutdownPolicy, ThreadPool};
    /// use std::time::Duration;
    ///
    /// let pool = ThreadPool::new(4)?;
    /// let policy = ShutdownPolicy::new(Duration::from_secs(10), Duration::from_secs(5));
    /// let guard = on_signals(SHUTDOWN_SIGNALS)
    ///     .pool("jobs", &pool, policy)
    ///     .dump_on(SIGQUIT) // `kill -QUIT <pid>`, or Ctrl-\ in a terminal
    ///     .install()?;
    /// // ... serve; each SIGQUIT logs what every task of "jobs" is doing ...
    /// # drop(guard);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[cfg(unix)]
    #[cfg_attr(docsrs, doc(cfg(unix)))]
    pub fn dump_on(mut self, signal: c_int) -> Self {
        if !self.dumps.contains(&signal) {
            self.dumps.push(signal);
        }
        self
    }

    /// Registers the signal handlers and starts the listener thread.
    ///
    /// Until the returned [`SignalGuard`] is dropped (or its
    /// [`wait`](SignalGuard::wait) returns), the signals run the ordered
    /// shutdown instead of their default action. Several installers may
    /// watch the same signal; each runs its own sequence.
    ///
    /// # Errors
    ///
    /// The error signal-hook gives if a handler cannot be registered (for
    /// instance for `SIGKILL`), or the error of spawning a thread;
    /// `InvalidInput` for a signal given both to [`on_signals`] and to
    /// `dump_on`.
    ///
    /// # Examples
    ///
    /// ```
    /// use drainpool::signal::{on_signals, SHUTDOWN_SIGNALS};
    /// use drainpool::{ShutdownPolicy, ThreadPool};
    /// use std::time::Duration;
    ///
    /// let pool = ThreadPool::new(2)?;
    /// let policy = ShutdownPolicy::new(Duration::from_secs(10), Duration::from_secs(5));
    /// let guard = on_signals(SHUTDOWN_SIGNALS).pool("jobs", &pool, policy).install()?;
    /// assert!(!guard.stop_token().is_stop_requested());
    /// // ... the program runs; no signal came ...
    /// drop(guard); // handlers gone: the signals' default action is back
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn install(self) -> io::Result<SignalGuard> {
        if let Some(both) = self.dumps.iter().find(|s| self.signals.contains(s)) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "{} is given both as a shutdown signal and as a dump signal",
                    signal_name(*both)
                ),
            ));
        }
        let stop = StopSource::new();
        let (start_tx, start_rx) = crossbeam_channel::bounded::<()>(1);
        let (done_tx, done_rx) = crossbeam_channel::bounded(1);
        let pools: Vec<(String, Weak<Shared>)> = self
            .steps
            .iter()
            .filter_map(|step| match step {
                Step::Pool { name, pool, .. } => Some((name.clone(), pool.clone())),
                Step::Resource { .. } => None,
            })
            .collect();
        let shared = Arc::new(Trigger {
            events: AtomicUsize::new(0),
            start: Mutex::new(Some(start_tx)),
            stop: stop.clone(),
            pools,
        });
        let steps = self.steps;
        let sequence = thread::Builder::new()
            .name("drainpool-shutdown".into())
            .spawn(move || {
                if start_rx.recv().is_ok() {
                    let _ = done_tx.send(run_sequence(steps));
                }
            })?;
        let trigger = shared.clone();
        let dumps = self.dumps;
        let mut signals = self.signals;
        signals.extend(&dumps);
        let handlers = Handlers::install(&signals, move |signal| {
            if dumps.contains(&signal) {
                trigger.dump(signal);
                return;
            }
            let count = trigger.events.fetch_add(1, Ordering::SeqCst) + 1;
            trigger.on_signal(count, signal);
        })?;
        Ok(SignalGuard {
            trigger: shared,
            handlers: Some(handlers),
            sequence: Some(sequence),
            done: done_rx,
        })
    }
}

impl fmt::Debug for OrderedShutdown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OrderedShutdown")
            .field("signals", &self.signals)
            .field("dumps", &self.dumps)
            .field(
                "steps",
                &self.steps.iter().map(Step::name).collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// What the listener thread and the guard share.
struct Trigger {
    /// Signals so far, and a `trigger()` counts as the first: a signal after
    /// it escalates.
    events: AtomicUsize,
    /// Taken by the first trigger: starts the sequence.
    start: Mutex<Option<Sender<()>>>,
    stop: StopSource,
    pools: Vec<(String, Weak<Shared>)>,
}

impl Trigger {
    fn start(&self) -> bool {
        let start = self.start.lock().take();
        match start {
            Some(start) => {
                self.stop.request_stop();
                let _ = start.send(());
                true
            }
            None => false,
        }
    }

    fn on_signal(&self, count: usize, signal: c_int) {
        let name = signal_name(signal);
        match count {
            1 => {
                log_warn!(
                    "{name} received: shutting down in order (again to interrupt running tasks, \
                     a third time to exit at once)"
                );
                self.start();
            }
            2 => {
                log_warn!("{name} received again: interrupting every pool (shutdown_now)");
                self.start();
                for (_, pool) in &self.pools {
                    if let Some(shared) = pool.upgrade() {
                        shared.shutdown_now_to_stash(); // reaches the pool's report
                    }
                }
            }
            _ => {
                log_error!("{name} received a third time: exiting now");
                for (pool_name, pool) in &self.pools {
                    if let Some(shared) = pool.upgrade() {
                        for task in shared.running_tasks() {
                            log_error!("pool {pool_name}: abandoned while running: {task}");
                        }
                    }
                }
                std::process::exit(128 + signal);
            }
        }
    }
}

impl Trigger {
    /// Logs every running task of every pool (a dump signal came), on the
    /// listener thread; starts nothing.
    fn dump(&self, signal: c_int) {
        log_warn!(
            "{} received: the running tasks of {} pool(s) follow (nothing stops)",
            signal_name(signal),
            self.pools.len()
        );
        for (name, pool) in &self.pools {
            let Some(shared) = pool.upgrade() else {
                log_warn!("pool {name}: dropped");
                continue;
            };
            let tasks = shared.running_tasks();
            let stats = shared.stats();
            log_warn!(
                "pool {name}: {:?}, {} running, {} queued, {} thread(s)",
                shared.lifecycle.get(),
                tasks.len(),
                stats.queued,
                stats.threads
            );
            for task in tasks {
                log_warn!("pool {name}: {task}");
            }
        }
    }
}

fn run_sequence(steps: Vec<Step>) -> Vec<StepReport> {
    let mut reports = Vec::with_capacity(steps.len());
    let mut stuck: Vec<(String, StuckTask)> = Vec::new();
    let mut never_started: Vec<(String, TaskId, Option<String>)> = Vec::new();
    for step in steps {
        let report = match step {
            Step::Pool { name, pool, policy } => {
                let outcome = match pool.upgrade() {
                    Some(shared) => {
                        log_debug!("ordered shutdown: pool {name}");
                        let report = graceful::shutdown_gracefully(
                            &shared,
                            policy,
                            &format_args!("pool {name}"),
                        );
                        stuck.extend(report.stuck.iter().map(|t| (name.clone(), t.clone())));
                        never_started.extend(
                            report
                                .never_started
                                .iter()
                                .map(|t| (name.clone(), t.id(), t.name().map(str::to_owned))),
                        );
                        StepOutcome::Pool(report)
                    }
                    None => StepOutcome::PoolGone,
                };
                StepReport { name, outcome }
            }
            Step::Resource { name, budget, run } => {
                log_debug!("ordered shutdown: step {name}");
                let ctx = StepContext {
                    stuck: stuck.clone(),
                    never_started: never_started.clone(),
                };
                let outcome = run_step(&name, budget, run, ctx);
                StepReport { name, outcome }
            }
        };
        reports.push(report);
    }
    reports
}

/// Runs a resource step on its own thread, waiting at most `budget`.
fn run_step(name: &str, budget: Duration, run: StepFn, ctx: StepContext) -> StepOutcome {
    let start = Instant::now();
    let (tx, rx) = crossbeam_channel::bounded(1);
    let what = format!("shutdown step {name:?}");
    let spawned = thread::Builder::new()
        .name(format!("drainpool-step-{name}"))
        .spawn(move || {
            let ok = unwind::call_logged(what, || run(&ctx));
            let _ = tx.send(ok);
        });
    if let Err(e) = spawned {
        log_error!("shutdown step {name:?} could not start: {e}");
        return StepOutcome::Failed;
    }
    match rx.recv_timeout(budget) {
        Ok(true) => StepOutcome::Completed(start.elapsed()),
        Ok(false) => StepOutcome::Failed,
        Err(_) => {
            log_error!(
                "shutdown step {name:?} overran its budget of {budget:?}; going on without it"
            );
            StepOutcome::Overran
        }
    }
}

/// Keeps the signal handlers installed; from [`OrderedShutdown::install`].
///
/// [`stop_token`](Self::stop_token) tells the program's own loops that the
/// first signal came; [`wait`](Self::wait) waits for the ordered shutdown to
/// finish and returns its reports; [`trigger`](Self::trigger) starts it
/// without a signal.
///
/// # Drop
///
/// Dropping it unregisters the handlers and stops the listener thread; the
/// signals take their default action again (a Ctrl-C ends the process). A
/// sequence already started goes on to its end on its own thread.
pub struct SignalGuard {
    trigger: Arc<Trigger>,
    handlers: Option<Handlers>,
    sequence: Option<JoinHandle<()>>,
    done: Receiver<Vec<StepReport>>,
}

impl SignalGuard {
    /// A token that fires on the first signal (or [`trigger`](Self::trigger)),
    /// for the program's own loops; useful with no pool at all.
    ///
    /// # Examples
    ///
    /// A serve loop must expect the pool to refuse work: the first signal
    /// may land between the loop's last look at the token and its next
    /// `execute`. That refusal is the end of serving, not an error to
    /// return with `?`, which would skip the whole shutdown sequence.
    ///
    /// ```
    /// use drainpool::crossbeam_channel::unbounded;
    /// use drainpool::signal::{on_signals, SHUTDOWN_SIGNALS};
    /// use drainpool::{ShutdownPolicy, ThreadPool};
    /// use std::time::Duration;
    ///
    /// fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    ///     let jobs = ThreadPool::new(4)?;
    ///     let policy = ShutdownPolicy::new(Duration::from_secs(10), Duration::from_secs(5));
    ///     let guard = on_signals(SHUTDOWN_SIGNALS)
    ///         .pool("jobs", &jobs, policy)
    ///         .step("close the database", Duration::from_secs(5), |_ctx| { /* db.close() */ })
    ///         .install()?;
    ///     let (listener, requests) = unbounded::<u64>(); // stands for the network
    ///     for request in 0..3 {
    ///         listener.send(request)?;
    ///     }
    /// #   guard.trigger(); // the doctest's stand-in for the first signal
    ///
    ///     let stop = guard.stop_token(); // fires on the first signal
    ///     // `recv` returns Err once the stop fires (or the listener is gone).
    ///     while let Ok(request) = stop.recv(&requests) {
    ///         if let Err(refused) = jobs.execute(move || { /* handle(request) */ let _ = request; }) {
    ///             if refused.is_shutdown() {
    ///                 break; // the signal came first: go and wait for the shutdown
    ///             }
    ///             return Err(refused.into()); // a full queue, say: a real error
    ///         }
    ///     }
    ///     for step in guard.wait() {
    ///         println!("{step}"); // each pool's report, then each resource step
    ///     }
    ///     Ok(())
    /// }
    /// ```
    pub fn stop_token(&self) -> StopToken {
        self.trigger.stop.token()
    }

    /// Starts the ordered shutdown now, as the first signal would; false if
    /// it had already started. A signal after it counts as the second (it
    /// interrupts every pool), the next as the third (it exits).
    ///
    /// For a shutdown the program decides on itself (a fatal error, an
    /// admin command), so that it runs the same steps as a signal would.
    ///
    /// # Examples
    ///
    /// ```
    /// use drainpool::signal::{on_signals, SIGTERM};
    /// use drainpool::{ShutdownPolicy, ThreadPool};
    /// use std::time::Duration;
    ///
    /// let pool = ThreadPool::new(2)?;
    /// let policy = ShutdownPolicy::new(Duration::from_secs(10), Duration::from_secs(5));
    /// let guard = on_signals([SIGTERM]).pool("jobs", &pool, policy).install()?;
    /// assert!(guard.trigger()); // started it
    /// assert!(!guard.trigger()); // already under way
    /// assert!(guard.stop_token().is_stop_requested());
    /// guard.wait();
    /// assert!(pool.is_terminated());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn trigger(&self) -> bool {
        let started = self.trigger.start();
        if started {
            self.trigger.events.fetch_max(1, Ordering::SeqCst);
        }
        started
    }

    /// Blocks until the ordered shutdown (started by a signal or
    /// [`trigger`](Self::trigger)) has run every step; returns one report
    /// per step, in order. Then the guard is gone: the signals' default
    /// action is back, so a Ctrl-C during the program's own cleanup ends
    /// the process as usual.
    ///
    /// # Examples
    ///
    /// ```
    /// use drainpool::signal::{on_signals, StepOutcome, SIGTERM};
    /// use drainpool::{ShutdownPolicy, ThreadPool};
    /// use std::time::Duration;
    ///
    /// let pool = ThreadPool::new(2)?;
    /// let policy = ShutdownPolicy::new(Duration::from_secs(10), Duration::from_secs(5));
    /// let guard = on_signals([SIGTERM]).pool("jobs", &pool, policy).install()?;
    /// # guard.trigger(); // the doctest's stand-in for the first signal
    /// // Blocks until a SIGTERM came and every step has run.
    /// let reports = guard.wait();
    /// assert_eq!(reports.len(), 1);
    /// match &reports[0].outcome {
    ///     StepOutcome::Pool(report) => assert!(report.terminated),
    ///     other => panic!("not a pool step: {other:?}"),
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn wait(mut self) -> Vec<StepReport> {
        let reports = self.done.recv().unwrap_or_default();
        if let Some(sequence) = self.sequence.take() {
            let _ = sequence.join();
        }
        reports
    }

    /// Like [`wait`](Self::wait), giving up after `timeout`: `None` if the
    /// sequence has not finished (or not started) by then. The reports are
    /// given out once: after this returned them, `wait` returns none.
    ///
    /// # Examples
    ///
    /// ```
    /// use drainpool::signal::{on_signals, SIGTERM};
    /// use drainpool::{ShutdownPolicy, ThreadPool};
    /// use std::time::Duration;
    ///
    /// let pool = ThreadPool::new(2)?;
    /// let policy = ShutdownPolicy::new(Duration::from_secs(10), Duration::from_secs(5));
    /// let guard = on_signals([SIGTERM]).pool("jobs", &pool, policy).install()?;
    /// assert!(guard.wait_timeout(Duration::ZERO).is_none()); // no signal yet
    /// guard.trigger();
    /// let reports = guard.wait_timeout(Duration::from_secs(30)).expect("the sequence ended");
    /// assert_eq!(reports[0].name, "jobs");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn wait_timeout(&self, timeout: Duration) -> Option<Vec<StepReport>> {
        self.done.recv_timeout(timeout).ok()
    }
}

impl Drop for SignalGuard {
    fn drop(&mut self) {
        // Unregisters the handlers (the signals' default action is back)
        // and stops the listener.
        drop(self.handlers.take());
        // A sequence that never started sees its start channel close and exits.
        drop(self.trigger.start.lock().take());
    }
}

impl fmt::Debug for SignalGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignalGuard")
            .field("stop_requested", &self.trigger.stop.is_stop_requested())
            .finish_non_exhaustive()
    }
}
