//! Every error type of the crate, in one place.
//!
//! Each error says precisely what went wrong, and where a value was refused it
//! is handed back inside the error, so nothing is lost: a [`Rejected`] carries
//! the closure the pool would not take, as crossbeam's `SendError<T>` carries
//! the message.
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

/// Why a task was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
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
/// [`ThreadPool::execute`]: crate::ThreadPool::execute
/// [`ThreadPool::submit`]: crate::ThreadPool::submit
pub struct Rejected<F> {
    reason: RejectReason,
    task: F,
}

impl<F> Rejected<F> {
    pub(crate) fn new(reason: RejectReason, task: F) -> Self {
        Rejected { reason, task }
    }

    /// The same rejection, holding `f(task)`.
    pub(crate) fn map<G>(self, f: impl FnOnce(F) -> G) -> Rejected<G> {
        Rejected {
            reason: self.reason,
            task: f(self.task),
        }
    }

    /// Why the task was refused.
    pub fn reason(&self) -> RejectReason {
        self.reason
    }

    /// The refused task, given back.
    pub fn into_inner(self) -> F {
        self.task
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
pub enum TaskError {
    /// The task panicked; this is the panic payload, as
    /// [`std::thread::JoinHandle::join`] gives it.
    Panicked(Box<dyn Any + Send + 'static>),
    /// The task never started and never will: it was cancelled through its
    /// handle or group, or it was returned by
    /// [`ThreadPool::shutdown_now`](crate::ThreadPool::shutdown_now) and that
    /// [`PendingTask`](crate::PendingTask) was dropped.
    Cancelled,
}

impl TaskError {
    /// True if the task was cancelled before it started.
    pub fn is_cancelled(&self) -> bool {
        matches!(self, TaskError::Cancelled)
    }

    /// True if the task panicked.
    pub fn is_panic(&self) -> bool {
        matches!(self, TaskError::Panicked(_))
    }

    /// The panic message, when the payload is a `&str` or a `String` (what
    /// `panic!` with a message produces).
    pub fn panic_message(&self) -> Option<&str> {
        match self {
            TaskError::Panicked(payload) => panic_message(payload.as_ref()),
            TaskError::Cancelled => None,
        }
    }

    /// Turns this error back into the panic, resuming it on the calling
    /// thread, as `handle.join().unwrap_or_else(|e| e.resume())` would want.
    ///
    /// # Panics
    ///
    /// Always: with the task's own payload if it panicked, or with a message
    /// saying it was cancelled.
    pub fn resume(self) -> ! {
        match self {
            TaskError::Panicked(payload) => std::panic::resume_unwind(payload),
            TaskError::Cancelled => panic!("task was cancelled before it started"),
        }
    }
}

impl fmt::Debug for TaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TaskError::Panicked(payload) => f
                .debug_tuple("Panicked")
                .field(&panic_message(payload.as_ref()).unwrap_or("<non-string payload>"))
                .finish(),
            TaskError::Cancelled => f.write_str("Cancelled"),
        }
    }
}

impl fmt::Display for TaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TaskError::Panicked(payload) => match panic_message(payload.as_ref()) {
                Some(msg) => write!(f, "task panicked: {msg}"),
                None => f.write_str("task panicked"),
            },
            TaskError::Cancelled => f.write_str("task was cancelled before it started"),
        }
    }
}

impl std::error::Error for TaskError {}

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

/// Why an interruptible channel receive ended without a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WaitError {
    /// A stop was requested.
    Interrupted,
    /// The channel is empty and every sender is gone.
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
