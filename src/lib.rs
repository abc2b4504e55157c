//! A pool of `std::thread` workers that **stops cleanly**.
//!
//! ```
//! use drainpool::ThreadPool;
//! use std::time::Duration;
//!
//! let pool = ThreadPool::new(4)?;
//! let answer = pool.submit(|| 6 * 7)?;
//! pool.execute(|| println!("hello from a worker"))?;
//! assert_eq!(answer.join()?, 42);
//!
//! pool.shutdown(); // no new work; everything accepted still runs
//! assert!(pool.await_termination(Duration::from_secs(10)));
//! # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
//! ```
//!
//! Every pool can start work; drainpool is about how it ends. Each task it
//! accepts reaches exactly one end state, a shutdown lets accepted work
//! finish, an urgent stop hands back the work that never started, and a
//! running task is asked to stop, never killed.
//!
//! # The lifecycle
//!
//! A pool only moves forward, `Running → ShuttingDown → Stopping →
//! Terminated`, skipping `Stopping` when a drain ends without a
//! `shutdown_now` and `ShuttingDown` when `shutdown_now` comes first (the
//! diagram is on [`PoolState`]):
//!
//! | state          | entered by                 | intake   | queued tasks                       | running tasks          |
//! |----------------|----------------------------|----------|------------------------------------|------------------------|
//! | `Running`      | [`Builder::build`], [`ThreadPool::new`] | accepted | run, in [`Priority`] order   | run                    |
//! | `ShuttingDown` | [`ThreadPool::shutdown`]   | refused  | still run (the drain)              | run to the end         |
//! | `Stopping`     | [`ThreadPool::shutdown_now`] | refused | handed back as [`PendingTask`]s  | see their [`StopToken`] raised |
//! | `Terminated`   | the last worker exiting, after [`Builder::on_terminated`] ran | refused | none | none |
//!
//! - [`ThreadPool::shutdown`] stops intake and drains;
//!   [`ThreadPool::await_termination`] waits for the end (with a timeout).
//! - [`ThreadPool::shutdown_now`] also returns every task that never started,
//!   in submission order. A dropped [`PendingTask`] resolves its
//!   [`TaskHandle`] as [`TaskError::Cancelled`]: no handle waits forever.
//! - [`ThreadPool::shutdown_gracefully`] escalates: drain, then interrupt,
//!   then name every stuck task in a [`ShutdownReport`] and the log.
//! - [`signal::on_signals`] turns SIGINT/SIGTERM into an ordered shutdown of
//!   pools and resources (a database closes only after the pools that use
//!   it); [`ShutdownHandle`] starts one pool's shutdown from a signal
//!   handler of your own, async-signal-safely.
//! - Every error is `std::error::Error + Send + Sync + 'static`, so `?` takes
//!   it into a `Box<dyn Error + Send + Sync>` (or an `anyhow::Error`), and
//!   still gives back what it holds: [`Rejected::into_inner`] the task,
//!   [`TaskError::into_panic`] the panic payload,
//!   [`IntoJobError::into_pending`] the [`PendingTask`].
//! - Dropping a pool drains and joins it, like the end of a
//!   [`std::thread::scope`] ([`Builder::drop_policy`] bounds that wait).
//!
//! # End states of a task
//!
//! | end state | how a task gets there | what [`TaskHandle::join`] returns |
//! |---|---|---|
//! | completed | ran to the end, on a worker or through [`PendingTask::run`] | `Ok(value)` |
//! | panicked | its closure panicked; the worker survives, and a panic nobody can join goes to the [`Builder::panic_handler`] | [`TaskError::Panicked`] |
//! | cancelled | never started: [`TaskHandle::cancel`] or [`TaskGroup::cancel`] while it was queued, or handed back by `shutdown_now` and then dropped | [`TaskError::Cancelled`] |
//! | rejected | never accepted: the pool was shutting down, its group was cancelled, or a bounded queue was full for a `try_` call (or too small for a batch) | no handle: the closure comes back inside [`Rejected`] |
//!
//! Between `shutdown_now` and one of those ends, a task is *handed back*: a
//! [`PendingTask`] value the caller holds. At any quiet moment every task
//! the pool accepted is counted in [`ThreadPool::stats`] as completed,
//! panicked or cancelled, or is still held as a `PendingTask`; rejected
//! tasks were handed back inside `Rejected` and are counted apart. No task
//! runs twice, and no accepted task vanishes without being counted.
//!
//! # Stopping a running task
//!
//! A running task is asked, never killed. [`StopToken::current`] inside a
//! task fires on `shutdown_now`, on that task's [`TaskHandle::cancel`] and
//! on its group's [`TaskGroup::cancel`]; outside a pool task it is a token
//! that never fires, so the same code runs unchanged on any thread. The
//! token's waits ([`StopToken::sleep`], [`StopToken::recv`],
//! [`StopToken::wait`], [`StopToken::lock`], ...) behave like the waits they
//! wrap, except that they return [`Interrupted`] (or
//! [`WaitError::Interrupted`]) once a stop is requested, whether it came
//! before the wait began or during it. Locks come back as ordinary RAII
//! guards, released when the task returns or unwinds.
//!
//! ```
//! use drainpool::{StopToken, ThreadPool};
//! use drainpool::crossbeam_channel::unbounded;
//!
//! let pool = ThreadPool::new(1)?;
//! let (_keep_open, requests) = unbounded::<u32>();
//! let (started_tx, started) = unbounded();
//! let server = pool.submit(move || {
//!     let stop = StopToken::current();
//!     started_tx.send(()).unwrap();
//!     let mut served = 0;
//!     // Wakes at once when the stop comes, even with no request in sight.
//!     while let Ok(_request) = stop.recv(&requests) {
//!         served += 1;
//!     }
//!     served
//! })?;
//! started.recv()?;
//! let never_started = pool.shutdown_now(); // raises the running task's token
//! assert!(never_started.is_empty());
//! assert_eq!(server.join()?, 0);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Where each story lives
//!
//! - [`ThreadPool`]: intake (`execute`, `submit`, batches, [`Job`] values),
//!   the lifecycle calls, and what the pool tells about itself
//!   ([`PoolStats`], [`RunningTask`] and what it waits on, [`Blocked`]);
//!   [`Builder`] for threads, queue bound and hooks.
//! - [`TaskGroup`]: one job split into many tasks, and how a group queues
//!   them so that it never makes another job wait behind all of it.
//! - [`Priority`]: the order in which workers take tasks, and why a low
//!   level is never starved.
//! - [`ThreadPool::scope`] and [`ThreadPool::try_scope`]: tasks that borrow
//!   from the caller's stack, fail fast, and stop together ([`Scope`],
//!   [`ScopedHandle`]).
//! - [`ShutdownPolicy`]: the three steps of a graceful shutdown.
//! - [`signal`]: what runs in a signal handler and why it is safe, and the
//!   ordered shutdown of pools and resources.
//! - `journal` (feature `journal`): durable jobs that survive a crash, in
//!   a SQLite journal, recovered at the next start.
//!
//! Lifecycle transitions are logged at `debug` level with the [`log`] crate;
//! the library never prints.
//!
//! A task must be `Send + 'static` (a [`Scope`]'s tasks only `Send`: they may
//! borrow from the scope's caller); the compiler refuses anything else:
//!
//! ```compile_fail
//! let pool = drainpool::ThreadPool::new(1).unwrap();
//! let not_send = std::rc::Rc::new(5);
//! pool.execute(move || drop(not_send)).unwrap();
//! ```

// `unsafe` only for a measured need, each kept to its module with a SAFETY
// comment on every block: an interruptible condvar wait must lend the
// caller's condvar and mutex to a stop callback for the length of the wait
// (wait/); a small closure is stored in its queue entry instead of a box
// (inline.rs: the malloc/free pair was the largest cost of a task capturing
// an `Arc`); the queue's own FIFO (runtime/fifo.rs) and a submitted task's
// cell, whose slot holds the closure then the result under a claim of one
// byte, whose extras are one pointer set once, and which a scope's caller
// reuses (runtime/cell.rs, runtime/cell/extras.rs, runtime/scope.rs); a
// worker's pointer to the task it runs (runtime/run.rs); and a signal
// handler that counts each arrival and wakes a thread on every platform is
// registered with signal-hook's one `unsafe` function (signal/handlers.rs).
// Nothing else may use it.
#![deny(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]
// The last line of the crate docs: without the feature `signal`,
// `on_signals` does not exist, and the link goes to the module, which says
// what the feature brings.
#![cfg_attr(not(feature = "signal"), doc = "[`signal::on_signals`]: signal")]

#[macro_use]
mod logging;

mod bell;
mod builder;
mod error;
mod graceful;
mod group;
mod handle;
mod inline;
#[cfg(feature = "journal")]
#[cfg_attr(docsrs, doc(cfg(feature = "journal")))]
pub mod journal;
#[cfg(loom)]
#[doc(hidden)]
pub mod model;
mod pool;
mod running;
mod runtime;
mod scope;
pub mod signal;
mod span;
mod state;
mod stop;
mod sync;
mod task;
mod task_builder;
mod unwind;
mod wait;

/// The `parking_lot` this crate's interruptible waits take
/// ([`StopToken::wait`], [`StopToken::lock`]): use it to build the mutex and
/// condvar you pass, and your versions never have to match by hand.
pub use parking_lot;

/// The `crossbeam-channel` whose receivers [`StopToken::recv`] takes: use it
/// to make the channel, and your versions never have to match by hand.
pub use crossbeam_channel;

pub use builder::Builder;
pub use error::{
    BuildError, Interrupted, PanicPayload, RejectReason, Rejected, TaskError, WaitError,
};
pub use graceful::{ShutdownPolicy, ShutdownReport, StuckTask};
pub use group::TaskGroup;
pub use handle::TaskHandle;
#[cfg(feature = "journal")]
pub use journal::{
    Durable, DurableHandle, DurableJob, DurableRejected, JobJournal, Journal, JournalError,
    SqliteJournal,
};
pub use pool::ThreadPool;
pub use running::{Blocked, BlockedOn, RunningTask};
pub use runtime::queue::Priority;
pub use runtime::{GroupProgress, Percentiles, PoolMetrics, PoolStats};
pub use runtime::{IntoJobError, PendingTask};
pub use scope::{Scope, ScopedHandle, TryScope};
pub use signal::ShutdownHandle;
#[cfg(feature = "signal")]
pub use signal::{OrderedShutdown, SignalGuard, StepContext, StepOutcome, StepReport};
pub use state::PoolState;
pub use stop::{StopCallback, StopSource, StopToken};
pub use task::{Job, TaskId, TaskPanic};
pub use task_builder::TaskBuilder;

#[cfg(test)]
mod auto_traits {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}

    #[test]
    fn public_types_cross_threads() {
        send_sync::<crate::ThreadPool>();
        send_sync::<crate::TaskHandle<u32>>();
        send_sync::<crate::StopToken>();
        send_sync::<crate::StopSource>();
        send_sync::<crate::StopCallback>();
        send_sync::<crate::PoolStats>();
        send_sync::<crate::PoolMetrics>();
        send::<crate::PendingTask>();
    }

    /// Every error goes through `?` into `Box<dyn Error + Send + Sync>`:
    /// it is `Send + Sync` whatever it holds, when what it holds is `Send`.
    #[test]
    fn errors_cross_threads() {
        use std::cell::Cell;
        use std::error::Error;

        fn error<E: Error + Send + Sync + 'static>() {}

        error::<crate::BuildError>();
        error::<crate::Interrupted>();
        error::<crate::IntoJobError>();
        error::<crate::TaskError>();
        error::<crate::TaskPanic>();
        error::<crate::WaitError>();
        // A closure that is `Send` but not `Sync` (it owns a `Cell`).
        error::<crate::Rejected<Box<dyn FnOnce() + Send>>>();
        error::<crate::Rejected<Cell<u32>>>();
        error::<crate::Rejected<Vec<Box<dyn FnOnce() + Send>>>>();
        send_sync::<crate::PanicPayload>();
        send_sync::<crate::RejectReason>();
    }
}
