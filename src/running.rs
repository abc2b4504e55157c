//! A running task as the pool shows it ([`RunningTask`]), and what it
//! waits on: [`Blocked`] and [`BlockedOn`] as
//! [`RunningTask::blocked_on`](crate::RunningTask::blocked_on) gives them,
//! and the guard every wait of the crate enters around its blocking part.
//!
//! # How a wait is recorded
//!
//! Every wait a task can make through drainpool is the crate's own code:
//! the [`StopToken`](crate::StopToken) waits, `wait_task`, a join that
//! waits, a scope's end. Each enters a [`Blocking`] guard around the part
//! that may block, and the guard writes what it waits on, and since when,
//! into the slot of the worker the calling thread is (two atomic words,
//! `runtime/slot.rs`); its `Drop` puts back what was there before, so a
//! wait that unwinds leaves no record behind. A wait on a thread that is
//! not a pool's worker records nothing: no slot shows it.
//!
//! The runtime sits above this module, so it hands in the function that
//! reaches the calling worker's slot when a pool is built (as it does for
//! `StopToken::current`, see `stop.rs`); until then no thread is a worker,
//! and a guard is a load of an empty `OnceLock`.
//!
//! # Nested runs
//!
//! A waiting task's worker may run other tasks inside the wait: a join
//! helps by running the awaited task inline, a scope's caller runs the
//! scope's tasks, a worker waiting for another pool runs its own pool's
//! queue. The slot then shows the inner task, and the waiting one is
//! listed apart (`WorkerSlot::waiting`). The slot moves the waiting task's
//! record aside with it when the nested run begins and puts it back when
//! the run ends, so:
//!
//! - the inner task shows only its own waits (none, unless it waits too),
//!   never the outer task's;
//! - the outer task, listed as waiting, still shows what it waits on (a
//!   join's `Task(id)`, say) and since when: it waits through the whole
//!   nested run, which is exactly what the record says.
//!
//! A guard inside the inner run records over an empty record and restores
//! it empty; the outer record comes back only when the nested run ends.
//! Guards of one thread nest like its calls, so restoring what each found
//! is always right.
//!
//! # A wait inside a wait
//!
//! Some waits wait through another: `wait_task` waits in a condvar wait of
//! the task's cell. The outermost wait is what the task waits for, so a
//! guard entered while its task's wait is recorded records nothing and
//! restores nothing.

use std::fmt;
use std::sync::OnceLock;
use std::time::Duration;

use crate::task::TaskId;

/// What a task blocked in a drainpool wait waits on; in [`Blocked`].
///
/// Its `Display` names the wait: `sleep`, `recv`, `condvar wait`, `lock`,
/// `task #7`, `scope`.
///
/// # Examples
///
/// ```
/// use drainpool::BlockedOn;
///
/// assert_eq!(BlockedOn::Recv.to_string(), "recv");
/// assert_ne!(BlockedOn::Sleep, BlockedOn::Lock);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BlockedOn {
    /// [`StopToken::sleep`](crate::StopToken::sleep).
    Sleep,
    /// [`StopToken::recv`](crate::StopToken::recv) or
    /// [`recv_timeout`](crate::StopToken::recv_timeout), with no message
    /// to take.
    Recv,
    /// One of the condvar waits: [`StopToken::wait`](crate::StopToken::wait),
    /// `wait_while`, `wait_timeout` and their `_std` forms.
    Condvar,
    /// [`StopToken::lock`](crate::StopToken::lock) or
    /// [`lock_std`](crate::StopToken::lock_std), on a mutex someone else
    /// holds.
    Lock,
    /// Another task's end: [`StopToken::wait_task`](crate::StopToken::wait_task),
    /// or [`TaskHandle::join`](crate::TaskHandle::join) and
    /// [`wait_timeout`](crate::TaskHandle::wait_timeout) on a task that has
    /// not ended.
    Task(TaskId),
    /// A scope's end: the end of [`ThreadPool::scope`](crate::ThreadPool::scope)
    /// or [`try_scope`](crate::ThreadPool::try_scope), which waits for every
    /// task of the scope, or [`ScopedHandle::join`](crate::ScopedHandle::join).
    Scope,
}

impl fmt::Display for BlockedOn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BlockedOn::Sleep => f.write_str("sleep"),
            BlockedOn::Recv => f.write_str("recv"),
            BlockedOn::Condvar => f.write_str("condvar wait"),
            BlockedOn::Lock => f.write_str("lock"),
            BlockedOn::Task(id) => write!(f, "task {id}"),
            BlockedOn::Scope => f.write_str("scope"),
        }
    }
}

/// A running task's wait through drainpool: what it waits on, and for how
/// long so far; from [`RunningTask::blocked_on`](crate::RunningTask::blocked_on).
///
/// Its `Display` is a phrase for a log line: `blocked in recv for 4.2s`,
/// `sleeping for 1.0s`, `waiting for task #7 for 1.0s`, `waiting for its
/// scope for 0.3s`.
///
/// # Examples
///
/// ```
/// use drainpool::{Blocked, BlockedOn, ThreadPool};
///
/// let pool = ThreadPool::new(2).unwrap();
/// for task in pool.running_tasks() {
///     match task.blocked_on() {
///         Some(Blocked { on: BlockedOn::Lock, for_, .. }) if for_.as_secs() > 10 => {
///             eprintln!("lock contention? {task}");
///         }
///         _ => {}
///     }
/// }
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Blocked {
    /// What it waits on.
    pub on: BlockedOn,
    /// How long it has waited so far (since this wait began: a loop of
    /// short waits shows the current one).
    pub for_: Duration,
}

impl fmt::Display for Blocked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let for_ = self.for_;
        match self.on {
            BlockedOn::Sleep => write!(f, "sleeping for {for_:.1?}"),
            BlockedOn::Task(id) => write!(f, "waiting for task {id} for {for_:.1?}"),
            BlockedOn::Scope => write!(f, "waiting for its scope for {for_:.1?}"),
            on => write!(f, "blocked in {on} for {for_:.1?}"),
        }
    }
}

/// A slot's record of a wait, opaque here: the runtime packs and reads it
/// (`runtime/slot.rs`); this module only saves it and hands it back.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Mark {
    pub(crate) on: u64,
    pub(crate) since: u64,
}

/// What the runtime's function is asked to do to the calling worker's slot.
pub(crate) enum Change {
    /// Record a wait on this, starting now.
    Enter(BlockedOn),
    /// Put back a record saved by `Enter`.
    Restore(Mark),
}

/// Applies a `Change` to the calling worker's slot and returns the record
/// it replaced; `None` if it changed nothing: the calling thread is no
/// pool's worker, or its task is in a recorded wait already (which the
/// slot keeps: the outermost wait says what the task waits for).
type Record = fn(Change) -> Option<Mark>;

/// Where a guard reaches the calling worker's slot (see the module docs).
static RECORD: OnceLock<Record> = OnceLock::new();

/// Sets where [`Blocking`] records (see [`RECORD`]); the first call wins,
/// and every pool passes the same function.
pub(crate) fn record_with(record: Record) {
    let _ = RECORD.set(record);
}

/// Records, until dropped, that the task running on this worker waits on
/// something; then puts back what the slot recorded before, also when the
/// wait unwinds. On a thread that is not a pool's worker it does nothing.
#[must_use = "the wait is recorded only while the guard lives"]
#[derive(Debug)]
pub(crate) struct Blocking {
    /// What the slot recorded before; `None`: nothing to put back (not a
    /// worker, or inside a recorded wait).
    saved: Option<Mark>,
}

impl Blocking {
    /// Records a wait on `on`, starting now.
    #[inline]
    pub(crate) fn enter(on: BlockedOn) -> Blocking {
        Blocking {
            saved: RECORD.get().and_then(|record| record(Change::Enter(on))),
        }
    }
}

impl Drop for Blocking {
    #[inline]
    fn drop(&mut self) {
        if let (Some(saved), Some(record)) = (self.saved.take(), RECORD.get()) {
            record(Change::Restore(saved));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{Blocked, BlockedOn};
    use crate::task::TaskId;

    #[test]
    fn display_names_each_wait() {
        let blocked = |on| Blocked {
            on,
            for_: Duration::from_millis(4210),
        };
        assert_eq!(
            blocked(BlockedOn::Recv).to_string(),
            "blocked in recv for 4.2s"
        );
        assert_eq!(blocked(BlockedOn::Sleep).to_string(), "sleeping for 4.2s");
        assert_eq!(
            blocked(BlockedOn::Condvar).to_string(),
            "blocked in condvar wait for 4.2s"
        );
        assert_eq!(
            blocked(BlockedOn::Lock).to_string(),
            "blocked in lock for 4.2s"
        );
        assert_eq!(
            blocked(BlockedOn::Task(TaskId::from_raw(7))).to_string(),
            "waiting for task #7 for 4.2s"
        );
        assert_eq!(
            blocked(BlockedOn::Scope).to_string(),
            "waiting for its scope for 4.2s"
        );
    }
}

/// A task running now; from [`ThreadPool::running_tasks`](crate::ThreadPool::running_tasks),
/// and, as [`StuckTask`](crate::StuckTask), in shutdown reports.
///
/// Its `Display` is one line: id, name, thread and how long it has run,
/// and what it waits on if it is blocked in a drainpool wait (see
/// [`blocked_on`](Self::blocked_on)).
///
/// # Examples
///
/// ```
/// use drainpool::ThreadPool;
/// use std::time::Duration;
///
/// let pool = ThreadPool::new(2).unwrap();
/// // One round of a watchdog: name every task running for over a minute.
/// for task in pool.running_tasks() {
///     if task.running_for > Duration::from_secs(60) {
///         // slow: task #7 (import) on drainpool-1 for 75.2s, blocked in recv for 75.1s
///         eprintln!("slow: {task}");
///     }
/// }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RunningTask {
    /// The task's id.
    pub id: TaskId,
    /// Its name, if it was given one.
    pub name: Option<String>,
    /// The name of the worker thread running it; for a scope's task run
    /// by the scope's caller outside the pool, `{prefix}-scope-caller-{n}`
    /// (see [`ThreadPool::scope`](crate::ThreadPool::scope)).
    pub thread: String,
    /// How long it has been running.
    pub running_for: Duration,
    /// What it waits on, if it is blocked in a drainpool wait.
    pub(crate) blocked: Option<Blocked>,
    /// The time limit it has run past, if it has.
    pub(crate) over_limit: Option<Duration>,
}

impl RunningTask {
    /// What the task waits on, and for how long so far, if it is blocked in
    /// one of drainpool's waits; `None` while it runs (or blocks in a wait
    /// of its own, which drainpool cannot see).
    ///
    /// The waits it sees are the [`StopToken`](crate::StopToken) ones
    /// (`sleep`, `recv`, `recv_timeout`, the condvar `wait`s, `lock`,
    /// `lock_std`), [`StopToken::wait_task`](crate::StopToken::wait_task),
    /// [`TaskHandle::join`](crate::TaskHandle::join) and
    /// [`wait_timeout`](crate::TaskHandle::wait_timeout) on a task that has
    /// not ended, and a scope waiting for its tasks, whatever token the
    /// wait takes. A lock taken at once, a join of a task that has ended,
    /// are not waits and leave no record.
    ///
    /// A task whose worker runs another task inside its wait (a join that
    /// runs the awaited task inline, a scope's caller running the scope's
    /// tasks) still shows that wait, for its whole length; the inner task
    /// shows only its own. Recording a wait costs a clock read and a few
    /// stores on the worker's own line, no lock.
    ///
    /// # Examples
    ///
    /// ```
    /// use drainpool::crossbeam_channel::bounded;
    /// use drainpool::{BlockedOn, StopToken, ThreadPool};
    ///
    /// let pool = ThreadPool::new(1).unwrap();
    /// let (tx, rx) = bounded::<u32>(0);
    /// let task = pool.submit(move || StopToken::current().recv(&rx)).unwrap();
    /// let blocked = loop {
    ///     let running = pool.running_tasks();
    ///     if let Some(blocked) = running.first().and_then(|task| task.blocked_on()) {
    ///         break blocked;
    ///     }
    ///     std::thread::yield_now();
    /// };
    /// assert_eq!(blocked.on, BlockedOn::Recv);
    /// println!("{}", pool.running_tasks()[0]); // task #1 on drainpool-0 for 0.1ms, blocked in recv for 0.1ms
    /// tx.send(7).unwrap();
    /// assert_eq!(task.join().unwrap(), Ok(7));
    /// ```
    pub fn blocked_on(&self) -> Option<Blocked> {
        self.blocked
    }

    /// The time limit the task has run past, if it was given one
    /// ([`TaskBuilder::time_limit`](crate::TaskBuilder::time_limit)) and
    /// has: its stop token fired then, and it runs on, ignoring it (or not
    /// yet seeing it). `Display` says it too.
    ///
    /// # Examples
    ///
    /// ```
    /// use drainpool::ThreadPool;
    /// use drainpool::crossbeam_channel::bounded;
    /// use std::time::Duration;
    ///
    /// let pool = ThreadPool::new(1).unwrap();
    /// let (release, released) = bounded::<()>(0);
    /// pool.task()
    ///     .name("stubborn")
    ///     .time_limit(Duration::from_millis(20))
    ///     .execute(move || drop(released.recv())) // not a drainpool wait: no stop seen
    ///     .unwrap();
    /// let over = loop {
    ///     if let Some(limit) = pool.running_tasks().first().and_then(|t| t.over_time_limit()) {
    ///         break limit;
    ///     }
    ///     std::thread::yield_now();
    /// };
    /// assert_eq!(over, Duration::from_millis(20));
    /// println!("{}", pool.running_tasks()[0]); // task #1 (stubborn) on drainpool-0 for 20.1ms, over its time limit of 20ms
    /// release.send(()).unwrap();
    /// ```
    pub fn over_time_limit(&self) -> Option<Duration> {
        self.over_limit
    }
}

impl fmt::Display for RunningTask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "task {}", self.id)?;
        if let Some(name) = &self.name {
            write!(f, " ({name})")?;
        }
        write!(f, " on {} for {:.1?}", self.thread, self.running_for)?;
        if let Some(limit) = self.over_limit {
            write!(f, ", over its time limit of {limit:?}")?;
        }
        if let Some(blocked) = &self.blocked {
            write!(f, ", {blocked}")?;
        }
        Ok(())
    }
}
