//! What a pool tells about itself: its counts, its timing, its running
//! tasks.

use crate::running::RunningTask;
use crate::runtime::{PoolMetrics, PoolStats};

use super::ThreadPool;

impl ThreadPool {
    /// A snapshot of the pool's counters (what each counts is on
    /// [`PoolStats`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use drainpool::ThreadPool;
    ///
    /// let pool = ThreadPool::new(2).unwrap();
    /// let ok = pool.submit(|| ()).unwrap();
    /// let boom = pool.submit(|| -> u32 { panic!("boom") }).unwrap();
    /// ok.join().unwrap();
    /// assert!(boom.join().is_err());
    ///
    /// let stats = pool.stats();
    /// assert_eq!(stats.threads, 2);
    /// assert_eq!((stats.completed, stats.panicked), (1, 1));
    /// ```
    pub fn stats(&self) -> PoolStats {
        self.shared.stats()
    }

    /// How long tasks waited in the queue and how long they ran, as
    /// percentiles, and how long the oldest queued task has waited: for a
    /// status page, or to tell a pool that is too small (long queue waits)
    /// from tasks that are too slow (long run times). Empty unless the pool
    /// was built with [`Builder::metrics`](crate::Builder::metrics) on.
    ///
    /// # Examples
    ///
    /// ```
    /// use drainpool::ThreadPool;
    /// use std::time::Duration;
    ///
    /// let pool = ThreadPool::builder().threads(1).metrics(true).build().unwrap();
    /// for ms in [1, 2, 3] {
    ///     pool.execute(move || std::thread::sleep(Duration::from_millis(ms))).unwrap();
    /// }
    /// assert!(pool.wait_idle(Duration::from_secs(10)));
    /// let m = pool.metrics();
    /// assert_eq!((m.queue_wait.count, m.run_time.count), (3, 3));
    /// assert!(m.run_time.max >= Duration::from_millis(3));
    /// assert!(m.queue_wait.max >= Duration::from_millis(3)); // the last waited for the first two
    /// assert_eq!(m.oldest_queued, None); // nothing queued now
    /// ```
    pub fn metrics(&self) -> PoolMetrics {
        self.shared.metrics()
    }

    /// The tasks running now, with how long each has run: what a
    /// watchdog or a status page shows; each [`RunningTask`] displays as
    /// one line.
    ///
    /// A task whose worker runs another one inside it (a
    /// [`join`](crate::TaskHandle::join) that helps, a
    /// [`scope`](Self::scope)'s caller running the scope's tasks) is still
    /// running, and listed: just before the task it waits for, on the same
    /// thread.
    ///
    /// A task blocked in one of drainpool's waits says on what, and for how
    /// long ([`RunningTask::blocked_on`]): a stop token's `sleep`, `recv`,
    /// condvar wait or lock, a wait for another task, a scope.
    ///
    /// # Examples
    ///
    /// ```
    /// use drainpool::crossbeam_channel::bounded;
    /// use drainpool::ThreadPool;
    ///
    /// let pool = ThreadPool::builder().threads(1).thread_name("import").build().unwrap();
    /// let (started_tx, started) = bounded(1);
    /// let (release, released) = bounded::<()>(1);
    /// pool.task()
    ///     .name("customers.csv")
    ///     .execute(move || {
    ///         started_tx.send(()).unwrap();
    ///         released.recv().unwrap();
    ///     })
    ///     .unwrap();
    /// started.recv().unwrap();
    ///
    /// let running = pool.running_tasks();
    /// assert_eq!(running.len(), 1);
    /// assert_eq!(running[0].name.as_deref(), Some("customers.csv"));
    /// assert_eq!(running[0].thread, "import-0");
    /// assert_eq!(running[0].blocked_on(), None); // a plain recv: not drainpool's
    /// println!("{}", running[0]); // task #.. (customers.csv) on import-0 for ..ms
    /// release.send(()).unwrap();
    /// ```
    pub fn running_tasks(&self) -> Vec<RunningTask> {
        self.shared.running_tasks()
    }
}
