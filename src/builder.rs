//! [`Builder`]: how many threads, what they are called, how big the queue
//! is, and the hooks that run at the edges of a pool's life.
//!
//! `build` spawns the workers one by one; if the system refuses one, the
//! half-built pool is taken down here (`abandon_build`) before the error
//! is returned, so a failed build leaves no thread behind.

use std::fmt;
use std::sync::Arc;
use std::thread;
use std::time::Instant;

use crate::error::BuildError;
use crate::graceful::ShutdownPolicy;
use crate::pool::ThreadPool;
use crate::runtime::worker;
use crate::runtime::{Hooks, Shared};
use crate::state::PoolState;
use crate::task::TaskPanic;

/// Configures and builds a [`ThreadPool`]; from [`ThreadPool::builder`].
///
/// Every setting has a default: as many threads as
/// [`std::thread::available_parallelism`], threads named `drainpool-{index}`,
/// the platform's stack size, an unbounded queue, panics logged with
/// `log::error!`, no hooks, and a drop that waits for the drain however
/// long it takes.
///
/// Hooks are user code: each runs outside every lock of the pool, and a
/// panic in one is caught and logged; the pool goes on.
///
/// # Examples
///
/// ```
/// use drainpool::ThreadPool;
/// use std::sync::atomic::{AtomicBool, Ordering};
/// use std::sync::Arc;
/// use std::time::Duration;
///
/// let ended = Arc::new(AtomicBool::new(false));
/// let flag = ended.clone();
/// let pool = ThreadPool::builder()
///     .threads(2)
///     .thread_name("ingest")
///     .queue_capacity(1024)
///     .panic_handler(|panic| eprintln!("{panic}"))
///     .on_terminated(move || flag.store(true, Ordering::SeqCst))
///     .build()
///     .unwrap();
/// pool.shutdown();
/// assert!(pool.await_termination(Duration::from_secs(10)));
/// assert!(ended.load(Ordering::SeqCst));
/// ```
#[must_use = "a Builder does nothing until build is called"]
pub struct Builder {
    threads: Option<usize>,
    pub(crate) thread_name: Option<String>,
    stack_size: Option<usize>,
    pub(crate) queue_capacity: Option<usize>,
    pub(crate) drop_policy: Option<ShutdownPolicy>,
    hooks: Hooks,
    metrics: bool,
}

impl Builder {
    /// A builder with the default settings; the same as
    /// [`ThreadPool::builder`] and `Builder::default()`.
    ///
    /// # Examples
    ///
    /// ```
    /// use drainpool::Builder;
    ///
    /// let pool = Builder::new().threads(2).build().unwrap();
    /// assert_eq!(pool.threads(), 2);
    /// ```
    pub fn new() -> Builder {
        Builder {
            threads: None,
            thread_name: None,
            stack_size: None,
            queue_capacity: None,
            drop_policy: None,
            hooks: Hooks::default(),
            metrics: false,
        }
    }

    /// Whether the pool records timing metrics: how long tasks wait in the
    /// queue and how long they run, for [`ThreadPool::metrics`] and
    /// [`TaskGroup::metrics`](crate::TaskGroup::metrics). Off by default.
    ///
    /// Off by default because it costs more than the tiniest tasks do: a
    /// clock read at each submit and two on the worker, and a wrapper that
    /// keeps the submission time with each queued task: 70 to 100 ns per
    /// task in all on a 2-core VM (the `compare` bench: 3.1 times the cost
    /// of a capture-free task, 1.14 times that of a task of about 1 µs).
    /// For tasks of tens of microseconds and up it is noise. Recording
    /// takes no lock: each worker writes its own histograms.
    ///
    /// # Examples
    ///
    /// ```
    /// use drainpool::ThreadPool;
    /// use std::time::Duration;
    ///
    /// let pool = ThreadPool::builder().threads(2).metrics(true).build().unwrap();
    /// pool.execute(|| std::thread::sleep(Duration::from_millis(5))).unwrap();
    /// pool.shutdown();
    /// assert!(pool.await_termination(Duration::from_secs(10)));
    /// let run = pool.metrics().run_time;
    /// assert_eq!(run.count, 1);
    /// assert!(run.max >= Duration::from_millis(5));
    /// ```
    pub fn metrics(mut self, on: bool) -> Builder {
        self.metrics = on;
        self
    }

    /// The number of worker threads: at least 1, at most
    /// [`Builder::MAX_THREADS`] (checked by [`build`](Builder::build)). By
    /// default, [`std::thread::available_parallelism`], or 1 if that is
    /// unknown.
    ///
    /// # Examples
    ///
    /// ```
    /// use drainpool::{BuildError, ThreadPool};
    ///
    /// let pool = ThreadPool::builder().threads(3).build().unwrap();
    /// assert_eq!(pool.threads(), 3);
    /// assert!(matches!(ThreadPool::builder().threads(0).build(), Err(BuildError::ZeroThreads)));
    /// ```
    pub fn threads(mut self, threads: usize) -> Builder {
        self.threads = Some(threads);
        self
    }

    /// Names the threads `{prefix}-{index}`, index from 0 (and the relay
    /// thread of [`ThreadPool::shutdown_handle`] `{prefix}-relay`). A prefix
    /// with a NUL byte makes [`build`](Builder::build) fail with
    /// [`BuildError::InvalidThreadName`]. The names show in panic messages,
    /// debuggers, [`ThreadPool::running_tasks`] and shutdown reports.
    ///
    /// # Examples
    ///
    /// ```
    /// use drainpool::ThreadPool;
    ///
    /// let pool = ThreadPool::builder().threads(1).thread_name("ingest").build().unwrap();
    /// let name = pool.submit(|| std::thread::current().name().map(str::to_owned)).unwrap();
    /// assert_eq!(name.join().unwrap().as_deref(), Some("ingest-0"));
    /// ```
    pub fn thread_name(mut self, prefix: impl Into<String>) -> Builder {
        self.thread_name = Some(prefix.into());
        self
    }

    /// The stack size of each worker thread, in bytes; raised to at least
    /// [`Builder::MIN_STACK_SIZE`], so that a panicking task (whose panic
    /// hook may print a backtrace) cannot overflow its worker's stack and
    /// abort the process. By default, the platform's default for a spawned
    /// thread (see [`std::thread::Builder::stack_size`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use drainpool::ThreadPool;
    ///
    /// // Deep recursion in the tasks: 8 MiB per worker.
    /// let pool = ThreadPool::builder().threads(2).stack_size(8 << 20).build().unwrap();
    /// let depth = pool.submit(|| {
    ///     fn down(n: u32) -> u32 {
    ///         if n == 0 { 0 } else { 1 + down(n - 1) }
    ///     }
    ///     down(10_000)
    /// });
    /// assert_eq!(depth.unwrap().join().unwrap(), 10_000);
    /// ```
    pub fn stack_size(mut self, bytes: usize) -> Builder {
        self.stack_size = Some(bytes.max(Builder::MIN_STACK_SIZE));
        self
    }

    /// The smallest stack a worker is given (64 KiB).
    pub const MIN_STACK_SIZE: usize = 64 * 1024;

    /// The most worker threads a pool may ask for (65 536); more is surely
    /// a mistake, refused with [`BuildError::TooManyThreads`].
    pub const MAX_THREADS: usize = 1 << 16;

    /// Bounds the queue to `capacity` tasks (at least 1). When it is full,
    /// [`ThreadPool::execute`] and [`ThreadPool::submit`] block until there
    /// is room or shutdown begins; [`ThreadPool::try_execute`] and
    /// [`ThreadPool::try_submit`] return
    /// [`RejectReason::QueueFull`](crate::RejectReason::QueueFull).
    ///
    /// A task takes room from when it is accepted until it starts (or is
    /// cancelled or handed back); running tasks take none. By default the
    /// queue is unbounded. A capacity of 0 makes [`build`](Builder::build)
    /// fail with [`BuildError::ZeroQueueCapacity`].
    ///
    /// # Examples
    ///
    /// Backpressure: once two tasks wait behind the busy worker, a producer
    /// that must not block is told so.
    ///
    /// ```
    /// use drainpool::crossbeam_channel::bounded;
    /// use drainpool::{RejectReason, ThreadPool};
    /// use std::time::Duration;
    ///
    /// let pool = ThreadPool::builder().threads(1).queue_capacity(2).build().unwrap();
    /// let (started_tx, started) = bounded(1);
    /// let (release, released) = bounded::<()>(1);
    /// pool.execute(move || {
    ///     started_tx.send(()).unwrap();
    ///     released.recv().unwrap();
    /// })
    /// .unwrap();
    /// started.recv().unwrap(); // running: takes no room
    /// pool.try_execute(|| ()).unwrap();
    /// pool.try_execute(|| ()).unwrap();
    /// let full = pool.try_execute(|| ()).unwrap_err();
    /// assert_eq!(full.reason(), RejectReason::QueueFull);
    ///
    /// release.send(()).unwrap();
    /// pool.execute(full.into_inner()).unwrap(); // blocks until there is room
    /// assert!(pool.wait_idle(Duration::from_secs(10)));
    /// ```
    pub fn queue_capacity(mut self, capacity: usize) -> Builder {
        self.queue_capacity = Some(capacity);
        self
    }

    /// How dropping the pool ends it. By default a drop drains and waits for
    /// as long as that takes (like the end of a `std::thread::scope`). With a
    /// policy, a drop runs [`ThreadPool::shutdown_gracefully`] instead: tasks
    /// still queued after `drain` are cancelled, and if the pool has not
    /// terminated after `interrupt`, the stuck tasks are logged and their
    /// threads left to finish on their own (detached), so the drop returns.
    ///
    /// # Examples
    ///
    /// A task that would keep a plain drop waiting forever is interrupted
    /// once the drain budget is spent.
    ///
    /// ```
    /// use drainpool::crossbeam_channel::bounded;
    /// use drainpool::{ShutdownPolicy, StopToken, ThreadPool};
    /// use std::time::Duration;
    ///
    /// let pool = ThreadPool::builder()
    ///     .threads(1)
    ///     .drop_policy(ShutdownPolicy::new(Duration::ZERO, Duration::from_secs(10)))
    ///     .build()
    ///     .unwrap();
    /// let (started_tx, started) = bounded(1);
    /// let poller = pool
    ///     .submit(move || {
    ///         started_tx.send(()).unwrap();
    ///         StopToken::current().sleep(Duration::MAX).is_err() // until interrupted
    ///     })
    ///     .unwrap();
    /// started.recv().unwrap();
    /// drop(pool); // drains for zero seconds, then interrupts
    /// assert!(poller.join().unwrap());
    /// ```
    pub fn drop_policy(mut self, policy: ShutdownPolicy) -> Builder {
        self.drop_policy = Some(policy);
        self
    }

    /// Called with each panic that has no [`TaskHandle`](crate::TaskHandle)
    /// to go to: of an `execute`d task, or of a submitted task whose handle
    /// was dropped unjoined. Runs on the thread where the task ran (or where
    /// the handle was dropped). The default logs it with `log::error!`.
    /// The worker survives the panic either way; a panic in the handler
    /// itself is caught and logged.
    ///
    /// # Examples
    ///
    /// ```
    /// use drainpool::crossbeam_channel::unbounded;
    /// use drainpool::ThreadPool;
    ///
    /// let (panics_tx, panics) = unbounded();
    /// let pool = ThreadPool::builder()
    ///     .threads(1)
    ///     .panic_handler(move |panic| panics_tx.send(panic.to_string()).unwrap())
    ///     .build()
    ///     .unwrap();
    /// pool.task().name("parse").execute(|| panic!("bad input")).unwrap();
    /// let report = panics.recv().unwrap(); // "task #.. (parse) on drainpool-0 panicked: bad input"
    /// assert!(report.contains("(parse)") && report.ends_with("panicked: bad input"));
    /// ```
    pub fn panic_handler<H>(mut self, handler: H) -> Builder
    where
        H: Fn(TaskPanic) + Send + Sync + 'static,
    {
        self.hooks.panic_handler = Some(Arc::new(handler));
        self
    }

    /// Called on each worker thread as it starts, with its index, before the
    /// worker takes its first task: to set up thread-local state, say.
    ///
    /// # Examples
    ///
    /// ```
    /// use drainpool::crossbeam_channel::unbounded;
    /// use drainpool::ThreadPool;
    ///
    /// let (started_tx, started) = unbounded();
    /// let pool = ThreadPool::builder()
    ///     .threads(2)
    ///     .on_thread_start(move |index| started_tx.send(index).unwrap())
    ///     .build()
    ///     .unwrap();
    /// let mut indexes = [started.recv().unwrap(), started.recv().unwrap()];
    /// indexes.sort();
    /// assert_eq!(indexes, [0, 1]);
    /// ```
    pub fn on_thread_start<H>(mut self, hook: H) -> Builder
    where
        H: Fn(usize) + Send + Sync + 'static,
    {
        self.hooks.on_thread_start = Some(Arc::new(hook));
        self
    }

    /// Called on each worker thread as it exits, with its index, after its
    /// last task: every exit hook has run once
    /// [`await_termination`](ThreadPool::await_termination) returns true.
    ///
    /// # Examples
    ///
    /// ```
    /// use drainpool::ThreadPool;
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// use std::sync::Arc;
    /// use std::time::Duration;
    ///
    /// let exited = Arc::new(AtomicUsize::new(0));
    /// let counter = exited.clone();
    /// let pool = ThreadPool::builder()
    ///     .threads(2)
    ///     .on_thread_exit(move |_index| {
    ///         counter.fetch_add(1, Ordering::SeqCst);
    ///     })
    ///     .build()
    ///     .unwrap();
    /// pool.shutdown();
    /// assert!(pool.await_termination(Duration::from_secs(10)));
    /// assert_eq!(exited.load(Ordering::SeqCst), 2);
    /// ```
    pub fn on_thread_exit<H>(mut self, hook: H) -> Builder
    where
        H: Fn(usize) + Send + Sync + 'static,
    {
        self.hooks.on_thread_exit = Some(Arc::new(hook));
        self
    }

    /// Called once, on the last worker thread to exit, after every other
    /// worker has exited and before
    /// [`await_termination`](ThreadPool::await_termination) returns true.
    /// Not called if [`build`](Self::build) fails. (If a scope's caller
    /// outside the pool is still running one of its scope's tasks then, as
    /// it may while it waits, see [`ThreadPool::scope`], the hook runs on
    /// that thread instead, once the task has ended.)
    ///
    /// The place to release what the tasks used, knowing that none runs any
    /// more; it runs on a thread of the pool, so it must not wait for the
    /// pool.
    ///
    /// # Examples
    ///
    /// ```
    /// use drainpool::crossbeam_channel::bounded;
    /// use drainpool::ThreadPool;
    /// use std::time::Duration;
    ///
    /// let (ended_tx, ended) = bounded(1);
    /// let pool = ThreadPool::builder()
    ///     .threads(2)
    ///     .on_terminated(move || ended_tx.send("all workers gone").unwrap())
    ///     .build()
    ///     .unwrap();
    /// pool.execute(|| ()).unwrap();
    /// pool.shutdown();
    /// assert!(pool.await_termination(Duration::from_secs(10)));
    /// assert_eq!(ended.try_recv().unwrap(), "all workers gone"); // it ran first
    /// ```
    pub fn on_terminated<H>(mut self, hook: H) -> Builder
    where
        H: FnOnce() + Send + 'static,
    {
        *self.hooks.on_terminated.get_mut() = Some(Box::new(hook));
        self
    }

    /// Builds the pool and starts its threads.
    ///
    /// # Errors
    ///
    /// [`BuildError::ZeroThreads`], [`BuildError::TooManyThreads`],
    /// [`BuildError::ZeroQueueCapacity`], [`BuildError::InvalidThreadName`],
    /// or [`BuildError::Spawn`] if the operating system refused a thread; then
    /// the threads already started are stopped and joined first, and
    /// `on_terminated` is not called.
    ///
    /// # Examples
    ///
    /// ```
    /// use drainpool::{BuildError, ThreadPool};
    ///
    /// let pool = ThreadPool::builder().threads(2).build().unwrap();
    /// assert_eq!(pool.threads(), 2);
    ///
    /// let bad = ThreadPool::builder().thread_name("bad\0name").build();
    /// assert!(matches!(bad, Err(BuildError::InvalidThreadName { .. })));
    /// let bad = ThreadPool::builder().queue_capacity(0).build();
    /// assert!(matches!(bad, Err(BuildError::ZeroQueueCapacity)));
    /// ```
    pub fn build(mut self) -> Result<ThreadPool, BuildError> {
        let threads = match self.threads {
            Some(0) => return Err(BuildError::ZeroThreads),
            Some(n) if n > Builder::MAX_THREADS => {
                return Err(BuildError::TooManyThreads {
                    requested: n,
                    max: Builder::MAX_THREADS,
                });
            }
            Some(n) => n,
            None => thread::available_parallelism().map_or(1, |n| n.get()),
        };
        if self.queue_capacity == Some(0) {
            return Err(BuildError::ZeroQueueCapacity);
        }
        if let Some(name) = self.thread_name.as_ref().filter(|n| n.contains('\0')) {
            return Err(BuildError::InvalidThreadName { name: name.clone() });
        }
        let prefix = self.thread_name.as_deref().unwrap_or("drainpool");
        let shared = Arc::new(Shared::new(
            prefix,
            threads,
            self.queue_capacity,
            std::mem::take(&mut self.hooks),
            Instant::now(),
            self.metrics,
        ));
        for index in 0..threads {
            let mut spawn =
                thread::Builder::new().name(shared.slots[index].thread_name().to_owned());
            if let Some(bytes) = self.stack_size {
                spawn = spawn.stack_size(bytes);
            }
            let for_worker = shared.clone();
            match spawn.spawn(move || worker::main(for_worker, index)) {
                Ok(handle) => shared.add_thread(handle),
                Err(source) => {
                    abandon_build(ThreadPool::from_shared(shared, None), threads - index);
                    return Err(BuildError::Spawn { index, source });
                }
            }
        }
        log_debug!("pool {}: started {threads} worker(s)", shared.id);
        Ok(ThreadPool::from_shared(shared, self.drop_policy))
    }
}

/// Stops a half-built pool: the `never_spawned` workers will never exit by
/// themselves, so they are counted out here; dropping the pool then shuts it
/// down and joins the threads that did start.
fn abandon_build(pool: ThreadPool, never_spawned: usize) {
    let shared = pool.shared();
    drop(shared.take_on_terminated());
    shared.lifecycle.advance(PoolState::Stopping);
    shared.send_wakes(shared.workers);
    shared.worker_exited(never_spawned);
    drop(pool);
}

impl ThreadPool {
    /// A pool with `threads` workers and default settings.
    ///
    /// # Errors
    ///
    /// [`BuildError::ZeroThreads`] if
    /// `threads` is 0; [`BuildError::Spawn`] if a
    /// thread could not be spawned.
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = drainpool::ThreadPool::new(4).unwrap();
    /// assert_eq!(pool.threads(), 4);
    /// assert!(drainpool::ThreadPool::new(0).is_err());
    /// ```
    pub fn new(threads: usize) -> Result<ThreadPool, crate::BuildError> {
        Builder::new().threads(threads).build()
    }

    /// A [`Builder`] to configure a pool.
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = drainpool::ThreadPool::builder()
    ///     .threads(2)
    ///     .thread_name("export")
    ///     .build()
    ///     .unwrap();
    /// assert_eq!(pool.threads(), 2);
    /// ```
    pub fn builder() -> Builder {
        Builder::new()
    }
}

impl Default for Builder {
    fn default() -> Self {
        Builder::new()
    }
}

impl fmt::Debug for Builder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("threads", &self.threads)
            .field("thread_name", &self.thread_name)
            .field("stack_size", &self.stack_size)
            .field("queue_capacity", &self.queue_capacity)
            .field("drop_policy", &self.drop_policy)
            .field("panic_handler", &self.hooks.panic_handler.is_some())
            .field("on_thread_start", &self.hooks.on_thread_start.is_some())
            .field("on_thread_exit", &self.hooks.on_thread_exit.is_some())
            .field("metrics", &self.metrics)
            .finish_non_exhaustive()
    }
}
