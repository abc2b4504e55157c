//! Every error type of the crate, in one place.
//!
//! Each error says precisely what went wrong, and where a value was refused it
//! is handed back inside the error, so nothing is lost: a [`Rejected`] carries
//! the closure the pool would not take, as crossbeam's `SendError<T>` carries
//! the message, and an `IntoJobError` (beside `PendingTask`, which it
//! holds) carries the `PendingTask`.
//!
//! Every error is `std::error::Error + Send + Sync + 'static`, so `?` turns
//! it into a `Box<dyn Error + Send + Sync>` (or an `anyhow::Error`): a
//! [`TaskError`] holding a panic payload and a [`Rejected`] holding a closure
//! that is `Send` but not `Sync` too. The values they hold that are not
//! `Sync` themselves (a closure, a `PendingTask`, a panic payload that is not
//! a string) sit behind a mutex that only `Display` and `Debug` ever lock; the
//! methods that give the value back take `self`, so no lock is shared with
//! anyone else and none is ever contended.
//!
//! # Examples
//!
//! ```
//! use drainpool::{RejectReason, ThreadPool};
//!
//! let pool = ThreadPool::new(1).unwrap();
//! pool.shutdown();
//! let rejected = pool.execute(|| println!("too late")).unwrap_err();
//! assert_eq!(rejected.reason(), RejectReason::Shutdown);
//! let closure = rejected.into_inner(); // the task is ours again
//! closure();
//! ```

use std::any::Any;
use std::fmt;
use std::io;

use parking_lot::Mutex;

/// Why a pool could not be built; returned by [`Builder::build`] and
/// [`ThreadPool::new`].
///
/// When a worker thread fails to spawn, the threads already started are
/// stopped and joined before the error is returned: no thread is leaked.
///
/// [`Builder::build`]: crate::Builder::build
/// [`ThreadPool::new`]: crate::ThreadPool::new
#[derive(Debug)]
#[non_exhaustive]
pub enum BuildError {
    /// The pool was asked for zero worker threads.
    ZeroThreads,
    /// [`Builder::queue_capacity`](crate::Builder::queue_capacity) was zero.
    ZeroQueueCapacity,
    /// More threads than [`Builder::MAX_THREADS`](crate::Builder::MAX_THREADS)
    /// were asked for.
    TooManyThreads {
        /// How many were asked for.
        requested: usize,
        /// The most a pool may have.
        max: usize,
    },
    /// The [`Builder::thread_name`](crate::Builder::thread_name) prefix
    /// holds a NUL byte, which no thread name may contain.
    InvalidThreadName {
        /// The prefix as it was given.
        name: String,
    },
    /// The operating system refused to spawn worker thread `index`.
    Spawn {
        /// The index of the worker that could not be spawned.
        index: usize,
        /// The error the operating system gave.
        source: io::Error,
    },
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::ZeroThreads => f.write_str("a thread pool needs at least one thread"),
            BuildError::ZeroQueueCapacity => {
                f.write_str("a bounded queue needs a capacity of at least one task")
            }
            BuildError::TooManyThreads { requested, max } => {
                write!(
                    f,
                    "{requested} threads asked for; a pool may have at most {max}"
                )
            }
            BuildError::InvalidThreadName { name } => {
                write!(f, "thread name prefix {name:?} holds a NUL byte")
            }
            BuildError::Spawn { index, source } => {
                write!(f, "could not spawn worker thread {index}: {source}")
            }
        }
    }
}

impl std::error::Error for BuildError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            BuildError::Spawn { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Why a task was refused; from [`Rejected::reason`].
///
/// More reasons may come (a new kind of limit), so a `match` on it needs a
/// `_` arm.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RejectReason {
    /// The pool has begun shutting down ([`ThreadPool::shutdown`],
    /// [`ThreadPool::shutdown_now`]) and accepts no new work.
    ///
    /// [`ThreadPool::shutdown`]: crate::ThreadPool::shutdown
    /// [`ThreadPool::shutdown_now`]: crate::ThreadPool::shutdown_now
    Shutdown,
    /// The bounded queue was full and the call was one that never blocks
    /// ([`ThreadPool::try_execute`], [`ThreadPool::try_submit`]).
    ///
    /// [`ThreadPool::try_execute`]: crate::ThreadPool::try_execute
    /// [`ThreadPool::try_submit`]: crate::ThreadPool::try_submit
    QueueFull,
    /// The [`TaskGroup`](crate::TaskGroup) was cancelled
    /// ([`TaskGroup::cancel`](crate::TaskGroup::cancel)).
    Cancelled,
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RejectReason::Shutdown => "the pool is shutting down",
            RejectReason::QueueFull => "the queue is full",
            RejectReason::Cancelled => "the task group was cancelled",
        })
    }
}

/// A task the pool did not accept, handed back to the caller.
///
/// Returned by [`ThreadPool::execute`], [`ThreadPool::submit`] and their
/// `try_` and named forms. The task never started and never will by the
/// pool; [`into_inner`](Rejected::into_inner) gives it back so it can be run
/// elsewhere, stored, or dropped deliberately.
///
/// It is an `Error + Send + Sync` for every `F` that is `Send`, so `?`
/// takes it into a `Box<dyn Error + Send + Sync>` even when the closure is
/// not `Sync`: the task is kept behind a mutex that only
/// [`into_inner`](Rejected::into_inner) opens, and that by value.
/// `Debug` and `Display` show the reason, never the task, so `F` need not
/// be `Debug`. Dropping a `Rejected` drops the task.
///
/// # Examples
///
/// ```
/// use drainpool::{RejectReason, ThreadPool};
/// use std::error::Error;
///
/// fn start(pool: &ThreadPool) -> Result<(), Box<dyn Error + Send + Sync>> {
///     pool.execute(|| println!("hello"))?;
///     Ok(())
/// }
///
/// let pool = ThreadPool::new(1).unwrap();
/// pool.shutdown();
/// let err = start(&pool).unwrap_err();
/// assert_eq!(err.to_string(), "task rejected: the pool is shutting down");
///
/// // Kept as itself, the task comes back out.
/// let rejected = pool.submit(|| 42).unwrap_err();
/// assert_eq!(rejected.reason(), RejectReason::Shutdown);
/// assert_eq!(rejected.into_inner()(), 42);
/// ```
///
/// [`ThreadPool::execute`]: crate::ThreadPool::execute
/// [`ThreadPool::submit`]: crate::ThreadPool::submit
pub struct Rejected<F> {
    reason: RejectReason,
    task: Mutex<F>,
}

impl<F> Rejected<F> {
    pub(crate) fn new(reason: RejectReason, task: F) -> Self {
        Rejected {
            reason,
            task: Mutex::new(task),
        }
    }

    /// The same rejection, holding `f(task)`.
    pub(crate) fn map<G>(self, f: impl FnOnce(F) -> G) -> Rejected<G> {
        Rejected::new(self.reason, f(self.task.into_inner()))
    }

    /// Why the task was refused.
    pub fn reason(&self) -> RejectReason {
        self.reason
    }

    /// True if the pool refused because it is shutting down (or has shut
    /// down): retrying is pointless, and in a serve loop it is the end of
    /// serving, not an error. The first signal of an ordered shutdown (see
    /// `signal::on_signals`) may land between a loop's last look at its
    /// stop token and its next `execute`; a loop that returns this refusal
    /// with `?` skips the shutdown it should now wait for.
    ///
    /// # Examples
    ///
    /// ```
    /// use drainpool::ThreadPool;
    ///
    /// let pool = ThreadPool::new(1)?;
    /// let requests = [1, 2, 3];
    /// pool.shutdown(); // as a signal would, between two requests
    /// for request in requests {
    ///     if let Err(refused) = pool.execute(move || drop(request)) {
    ///         if refused.is_shutdown() {
    ///             break; // stop serving; the shutdown goes on
    ///         }
    ///         return Err(refused.into()); // a full queue, say: a real error
    ///     }
    /// }
    /// # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
    /// ```
    pub fn is_shutdown(&self) -> bool {
        self.reason == RejectReason::Shutdown
    }

    /// The refused task, given back.
    pub fn into_inner(self) -> F {
        self.task.into_inner()
    }
}

impl<F> fmt::Debug for Rejected<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rejected")
            .field("reason", &self.reason)
            .finish_non_exhaustive()
    }
}

impl<F> fmt::Display for Rejected<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "task rejected: {}", self.reason)
    }
}

impl<F> std::error::Error for Rejected<F> {}

/// How a task ended without producing its value; returned by
/// [`TaskHandle::join`](crate::TaskHandle::join).
///
/// An `Error + Send + Sync + 'static` even when it holds a panic payload
/// (which is only `Send`; see [`PanicPayload`]), so `?` takes it into a
/// `Box<dyn Error + Send + Sync>`, as tokio's `JoinError`.
///
/// More ends may come, so a `match` on it needs a `_` arm.
///
/// # Examples
///
/// ```
/// use drainpool::{TaskError, ThreadPool};
/// use std::error::Error;
///
/// let pool = ThreadPool::new(1).unwrap();
/// let answer = pool.submit(|| 6 * 7).unwrap();
/// let boom = pool.submit(|| -> u32 { panic!("boom") }).unwrap();
///
/// fn value(h: drainpool::TaskHandle<u32>) -> Result<u32, Box<dyn Error + Send + Sync>> {
///     Ok(h.join()?)
/// }
/// assert_eq!(value(answer).unwrap(), 42);
///
/// let err: TaskError = boom.join().unwrap_err();
/// assert_eq!(err.to_string(), "task panicked: boom");
/// let payload = err.into_panic(); // as `std::thread::JoinHandle::join` gives it
/// assert_eq!(payload.downcast_ref::<&str>(), Some(&"boom"));
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum TaskError {
    /// The task panicked; this holds the panic payload, which
    /// [`TaskError::into_panic`] (or [`PanicPayload::into_inner`]) gives
    /// back as the `Box<dyn Any + Send>` that
    /// [`std::thread::JoinHandle::join`] would give.
    Panicked(PanicPayload),
    /// The task never started and never will: it was cancelled through its
    /// handle or group, or it was returned by
    /// [`ThreadPool::shutdown_now`](crate::ThreadPool::shutdown_now) and that
    /// [`PendingTask`](crate::PendingTask) was dropped.
    Cancelled,
    /// The task, spawned in a [`ThreadPool::try_scope`](crate::ThreadPool::try_scope),
    /// returned an `Err`: the error went to the scope, which returns the
    /// first one and drops the rest (the shape of Go's `errgroup`).
    Failed,
    /// The task never started and never will: it was not started within
    /// its start deadline ([`TaskBuilder::start_within`](crate::TaskBuilder::start_within)),
    /// so its closure was dropped when the deadline passed.
    Expired,
}

impl TaskError {
    /// True if the task was cancelled before it started.
    ///
    /// # Examples
    ///
    /// ```
    /// use drainpool::ThreadPool;
    ///
    /// let pool = ThreadPool::new(1).unwrap();
    /// let (release, released) = drainpool::crossbeam_channel::bounded::<()>(0);
    /// pool.execute(move || drop(released.recv())).unwrap(); // the worker is busy
    /// let queued = pool.submit(|| 7).unwrap();
    /// assert!(queued.cancel()); // still queued: it never starts
    /// release.send(()).unwrap();
    /// let err = queued.join().unwrap_err();
    /// assert!(err.is_cancelled() && !err.is_panic());
    /// ```
    pub fn is_cancelled(&self) -> bool {
        matches!(self, TaskError::Cancelled)
    }

    /// True if the task, spawned in a
    /// [`try_scope`](crate::ThreadPool::try_scope), returned an `Err` (which
    /// the scope took).
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = drainpool::ThreadPool::new(2).unwrap();
    /// let result: Result<(), &str> = pool.try_scope(|s| {
    ///     let bad = s.spawn(|| Err::<u32, _>("bad row"));
    ///     assert!(bad.join().unwrap_err().is_failed());
    ///     Ok(())
    /// });
    /// assert_eq!(result, Err("bad row")); // the error itself went to the scope
    /// ```
    pub fn is_failed(&self) -> bool {
        matches!(self, TaskError::Failed)
    }

    /// True if the task was not started within its start deadline
    /// ([`TaskBuilder::start_within`](crate::TaskBuilder::start_within)):
    /// it never ran.
    ///
    /// # Examples
    ///
    /// ```
    /// use drainpool::ThreadPool;
    /// use std::time::Duration;
    ///
    /// let pool = ThreadPool::new(1).unwrap();
    /// let (release, released) = drainpool::crossbeam_channel::bounded::<()>(0);
    /// pool.execute(move || drop(released.recv())).unwrap(); // the worker is busy
    /// let late = pool.task().start_within(Duration::from_millis(20)).submit(|| 7).unwrap();
    /// let err = late.join().unwrap_err(); // resolves when the deadline passes
    /// assert!(err.is_expired() && !err.is_cancelled());
    /// release.send(()).unwrap();
    /// ```
    pub fn is_expired(&self) -> bool {
        matches!(self, TaskError::Expired)
    }

    /// True if the task panicked.
    pub fn is_panic(&self) -> bool {
        matches!(self, TaskError::Panicked(_))
    }

    /// The panic message, when the payload is a `&str` or a `String` (what
    /// `panic!` with a message produces).
    ///
    /// # Examples
    ///
    /// ```
    /// use drainpool::ThreadPool;
    ///
    /// let pool = ThreadPool::new(1).unwrap();
    /// let err = pool.submit(|| panic!("row {} is bad", 17)).unwrap().join().unwrap_err();
    /// assert!(err.is_panic());
    /// assert_eq!(err.panic_message(), Some("row 17 is bad"));
    /// ```
    pub fn panic_message(&self) -> Option<&str> {
        match self {
            TaskError::Panicked(payload) => payload.message(),
            TaskError::Cancelled | TaskError::Failed | TaskError::Expired => None,
        }
    }

    /// The panic payload, as [`std::thread::JoinHandle::join`] gives it:
    /// for a downcast, or for [`std::panic::resume_unwind`].
    ///
    /// # Panics
    ///
    /// If the task did not panic ([`is_panic`](Self::is_panic) is false);
    /// [`try_into_panic`](Self::try_into_panic) does not.
    ///
    /// # Examples
    ///
    /// ```
    /// use drainpool::ThreadPool;
    ///
    /// let pool = ThreadPool::new(1).unwrap();
    /// let handle = pool.submit(|| std::panic::panic_any(17_u8)).unwrap();
    /// let err = handle.join().unwrap_err();
    /// assert!(err.is_panic());
    /// assert_eq!(err.into_panic().downcast_ref::<u8>(), Some(&17));
    /// ```
    #[track_caller]
    pub fn into_panic(self) -> Box<dyn Any + Send + 'static> {
        match self.try_into_panic() {
            Ok(payload) => payload,
            Err(err) => panic!("TaskError::into_panic on an error that is not a panic: {err}"),
        }
    }

    /// The panic payload if the task panicked; otherwise the error itself,
    /// unchanged.
    ///
    /// # Errors
    ///
    /// `self` if it is not [`TaskError::Panicked`].
    ///
    /// # Examples
    ///
    /// ```
    /// use drainpool::{TaskError, ThreadPool};
    ///
    /// let pool = ThreadPool::new(1).unwrap();
    /// let err = pool.submit(|| -> u32 { panic!("boom") }).unwrap().join().unwrap_err();
    /// let payload = err.try_into_panic().unwrap();
    /// assert_eq!(payload.downcast_ref::<&str>(), Some(&"boom"));
    ///
    /// let not_a_panic = TaskError::Cancelled.try_into_panic().unwrap_err();
    /// assert!(not_a_panic.is_cancelled());
    /// ```
    pub fn try_into_panic(self) -> Result<Box<dyn Any + Send + 'static>, TaskError> {
        match self {
            TaskError::Panicked(payload) => Ok(payload.into_inner()),
            other => Err(other),
        }
    }

    /// Turns this error back into the panic, resuming it on the calling
    /// thread, as `handle.join().unwrap_or_else(|e| e.resume())` would want.
    ///
    /// # Panics
    ///
    /// Always: with the task's own payload if it panicked, or with a message
    /// saying it was cancelled.
    ///
    /// # Examples
    ///
    /// ```
    /// use drainpool::ThreadPool;
    /// use std::panic::{self, AssertUnwindSafe};
    ///
    /// let pool = ThreadPool::new(1).unwrap();
    /// let handle = pool.submit(|| -> u32 { panic!("boom") }).unwrap();
    /// // As if the task had panicked on this thread: a caller up the stack
    /// // (or the test harness) sees the task's own payload.
    /// let caught = panic::catch_unwind(AssertUnwindSafe(|| {
    ///     handle.join().unwrap_or_else(|e| e.resume())
    /// }));
    /// let payload = caught.unwrap_err();
    /// assert_eq!(payload.downcast_ref::<&str>(), Some(&"boom"));
    /// ```
    pub fn resume(self) -> ! {
        match self {
            TaskError::Panicked(payload) => std::panic::resume_unwind(payload.into_inner()),
            TaskError::Cancelled => panic!("task was cancelled before it started"),
            TaskError::Failed => panic!("task returned an error, which went to its scope"),
            TaskError::Expired => panic!("task expired: it did not start within its deadline"),
        }
    }
}

impl fmt::Display for TaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TaskError::Panicked(payload) => match payload.message() {
                Some(msg) => write!(f, "task panicked: {msg}"),
                None => f.write_str("task panicked"),
            },
            TaskError::Cancelled => f.write_str("task was cancelled before it started"),
            TaskError::Failed => f.write_str("task returned an error, which went to its scope"),
            TaskError::Expired => f.write_str("task expired: it did not start within its deadline"),
        }
    }
}

impl std::error::Error for TaskError {}

/// The payload of a task's panic: what [`std::thread::JoinHandle::join`]
/// gives, but `Sync`; held by [`TaskError::Panicked`] and
/// [`TaskPanic`](crate::TaskPanic).
///
/// A panic payload is a `Box<dyn Any + Send>`, which is not `Sync`, and an
/// error that is not `Sync` cannot go through `?` into a
/// `Box<dyn Error + Send + Sync>`. A `PanicPayload` is `Send + Sync`
/// whatever the payload, without `unsafe`: a string payload (what `panic!`
/// makes) is kept as the string, which is `Sync` and readable through
/// `&self` ([`message`](Self::message)); any other payload is kept behind a
/// mutex and reached only through `&mut self` ([`get_mut`](Self::get_mut))
/// or by value ([`into_inner`](Self::into_inner)).
///
/// # Examples
///
/// ```
/// use drainpool::{PanicPayload, TaskError, ThreadPool};
///
/// let pool = ThreadPool::new(1).unwrap();
/// let handle = pool.submit(|| std::panic::panic_any(17_u8)).unwrap();
/// match handle.join() {
///     Err(TaskError::Panicked(mut payload)) => {
///         assert_eq!(payload.message(), None); // not a string
///         assert_eq!(payload.get_mut().downcast_ref::<u8>(), Some(&17));
///         let payload: Box<dyn std::any::Any + Send> = payload.into_inner();
///         assert!(payload.is::<u8>());
///     }
///     other => panic!("expected a panic, got {other:?}"),
/// }
/// ```
pub struct PanicPayload(Box<Payload>);

/// A payload, with the two kinds `panic!` makes kept as themselves.
///
/// Boxed in [`PanicPayload`] so that a `Result<T, TaskError>` stays small
/// (16 bytes for a `u32`, against 32 unboxed): the box costs an allocation
/// only when a task panics.
enum Payload {
    /// `panic!("literal")`.
    Str(&'static str),
    /// `panic!("{formatted}")`.
    String(String),
    /// Anything else (`std::panic::panic_any`). Only `Send`; the mutex
    /// makes it `Sync`, and is never locked: `get_mut` reaches the payload
    /// through `&mut self`, `into_inner` by value.
    Other(Mutex<Box<dyn Any + Send + 'static>>),
}

impl PanicPayload {
    /// Wraps a payload as [`std::panic::catch_unwind`] gives it.
    pub fn new(payload: Box<dyn Any + Send + 'static>) -> PanicPayload {
        let payload = match payload.downcast::<&'static str>() {
            Ok(s) => Payload::Str(*s),
            Err(payload) => match payload.downcast::<String>() {
                Ok(s) => Payload::String(*s),
                Err(payload) => Payload::Other(Mutex::new(payload)),
            },
        };
        PanicPayload(Box::new(payload))
    }

    /// The panic message, when the payload is a `&str` or a `String` (what
    /// `panic!` with a message produces).
    pub fn message(&self) -> Option<&str> {
        match &*self.0 {
            Payload::Str(s) => Some(s),
            Payload::String(s) => Some(s),
            Payload::Other(_) => None,
        }
    }

    /// The payload in place, to downcast without taking it out.
    pub fn get_mut(&mut self) -> &mut (dyn Any + Send + 'static) {
        match &mut *self.0 {
            Payload::Str(s) => s,
            Payload::String(s) => s,
            // The payload, not its box (a `Box` is `Any` too).
            Payload::Other(boxed) => &mut **boxed.get_mut(),
        }
    }

    /// The payload, given back as a `Box<dyn Any + Send>` of its own type,
    /// for a downcast or for [`std::panic::resume_unwind`].
    pub fn into_inner(self) -> Box<dyn Any + Send + 'static> {
        match *self.0 {
            Payload::Str(s) => Box::new(s),
            Payload::String(s) => Box::new(s),
            Payload::Other(boxed) => boxed.into_inner(),
        }
    }
}

impl fmt::Debug for PanicPayload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_tuple("PanicPayload");
        match self.message() {
            Some(msg) => d.field(&msg),
            None => d.field(&format_args!("<non-string payload>")),
        };
        d.finish()
    }
}

/// A stop was requested while waiting; returned by
/// [`StopToken::check`](crate::StopToken::check) and the interruptible waits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Interrupted;

impl fmt::Display for Interrupted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("interrupted: a stop was requested")
    }
}

impl std::error::Error for Interrupted {}

/// Why an interruptible wait ended without what it waited for; from
/// [`StopToken::recv`](crate::StopToken::recv),
/// [`StopToken::recv_timeout`](crate::StopToken::recv_timeout) and
/// [`StopToken::wait_timeout`](crate::StopToken::wait_timeout).
///
/// More reasons may come (a new kind of wait), so a `match` on it needs a
/// `_` arm.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum WaitError {
    /// A stop was requested.
    Interrupted,
    /// The channel is empty and every sender is gone (only from the
    /// `recv` forms).
    Disconnected,
    /// The timeout elapsed first (only from the `_timeout` forms).
    Timeout,
}

impl fmt::Display for WaitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            WaitError::Interrupted => "interrupted: a stop was requested",
            WaitError::Disconnected => "the channel is disconnected",
            WaitError::Timeout => "timed out",
        })
    }
}

impl std::error::Error for WaitError {}

impl From<Interrupted> for WaitError {
    fn from(_: Interrupted) -> Self {
        WaitError::Interrupted
    }
}

/// The message of a panic payload, when it has one.
pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> Option<&str> {
    payload
        .downcast_ref::<&'static str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
}

#[cfg(test)]
mod tests {
    use super::TaskError;

    /// The payload is boxed once more (see `Payload`) so that the
    /// `Result<T, TaskError>` every cell holds stays small: a pointer and a
    /// tag (two unit variants, `Cancelled` and `Failed`, need the tag; one
    /// fitted in the pointer's niche), where a bare `Box<dyn Any + Send>`
    /// took three words; a small result fits beside the tag.
    #[test]
    fn a_task_result_stays_two_words() {
        assert_eq!(size_of::<TaskError>(), 2 * size_of::<usize>());
        assert_eq!(size_of::<Result<u32, TaskError>>(), 2 * size_of::<usize>());
        assert_eq!(size_of::<Result<(), TaskError>>(), 2 * size_of::<usize>());
    }
}
