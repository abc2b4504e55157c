//! Timing metrics (opt-in, `Builder::metrics`): how long tasks wait in the
//! queue and how long they run, as histograms, and the age of the oldest
//! queued task.
//!
//! - **Where it is measured.** A task of a pool with metrics is wrapped
//!   when it is queued ([`Shared::plain_task`], [`Measured`] for a
//!   cell) with the time of its submission; the wrapper reads the clock when
//!   the task starts and when it ends (also on unwind), on the worker. A
//!   pool without metrics pays one predictable branch per submit.
//! - **No lock.** Each worker records into its own histograms (atomics
//!   that only its thread writes, on lines of their own); a group's
//!   histograms are shared by the workers running its tasks (an atomic
//!   add each). Readers add the histograms up; a reading taken while tasks
//!   end may miss the latest ones, never count one twice.
//! - **Precision.** Buckets are log-linear: exact below 16 ns, then 16 per
//!   power of two, so a percentile is within 1/32 of the true value (it is
//!   reported as its bucket's midpoint, and never above the maximum).
//! - **Not measured:** a task run through a `PendingTask` off the pool's
//!   workers (it left the pool's queue by `shutdown_now`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::runtime::Shared;
use crate::runtime::cell::{Cell, CellEntry, CellRef};
use crate::runtime::entry::{self, Task};
use crate::runtime::mailbox::GroupInner;
use crate::runtime::run;
use crate::task::{Call, StaticCall};

/// Sub-buckets per power of two (4 bits).
const SUB_BITS: u32 = 4;
const SUB: u64 = 1 << SUB_BITS;
/// Buckets: values below `SUB` exactly, then `SUB` per power of two up to
/// 2^63.
const BUCKETS: usize = (SUB + (64 - SUB_BITS as u64) * SUB) as usize;

/// A histogram of nanoseconds.
pub(crate) struct Histogram {
    buckets: Box<[AtomicU64]>,
    max: AtomicU64,
}

fn bucket_of(nanos: u64) -> usize {
    if nanos < SUB {
        return nanos as usize;
    }
    let exp = 63 - nanos.leading_zeros(); // >= SUB_BITS
    let sub = (nanos >> (exp - SUB_BITS)) & (SUB - 1);
    (SUB + u64::from(exp - SUB_BITS) * SUB + sub) as usize
}

/// The smallest value and the width of bucket `index`.
fn bucket_range(index: usize) -> (u64, u64) {
    let index = index as u64;
    if index < SUB {
        return (index, 1);
    }
    let exp = (index - SUB) / SUB + u64::from(SUB_BITS);
    let sub = (index - SUB) % SUB;
    let width = 1u64 << (exp - u64::from(SUB_BITS));
    ((SUB + sub) * width, width)
}

impl Histogram {
    pub(crate) fn new() -> Histogram {
        Histogram {
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            max: AtomicU64::new(0),
        }
    }

    fn record(&self, nanos: u64) {
        // ORDERING: Relaxed: counts read as a snapshot, ordered by nothing.
        self.buckets[bucket_of(nanos)].fetch_add(1, Ordering::Relaxed);
        self.max.fetch_max(nanos, Ordering::Relaxed);
    }

    /// Adds this histogram into `sum`; returns its maximum.
    fn add_to(&self, sum: &mut [u64]) -> u64 {
        for (total, bucket) in sum.iter_mut().zip(self.buckets.iter()) {
            *total += bucket.load(Ordering::Relaxed);
        }
        self.max.load(Ordering::Relaxed)
    }
}

/// The percentiles of the sum of `histograms`.
fn percentiles<'h>(histograms: impl Iterator<Item = &'h Histogram>) -> Percentiles {
    let mut sum = vec![0u64; BUCKETS];
    let max = histograms.map(|h| h.add_to(&mut sum)).max().unwrap_or(0);
    let count: u64 = sum.iter().sum();
    let at = |q: f64| -> Duration {
        if count == 0 {
            return Duration::ZERO;
        }
        // The value of rank ceil(q * count), 1-based.
        let rank = ((q * count as f64).ceil() as u64).clamp(1, count);
        let mut seen = 0;
        for (index, n) in sum.iter().enumerate() {
            seen += n;
            if seen >= rank {
                let (low, width) = bucket_range(index);
                return Duration::from_nanos((low + width / 2).min(max));
            }
        }
        Duration::from_nanos(max)
    };
    Percentiles {
        count,
        p50: at(0.50),
        p90: at(0.90),
        p99: at(0.99),
        max: Duration::from_nanos(max),
    }
}

/// The histograms of one recorder: a worker, or a group.
pub(crate) struct Recorder {
    queue_wait: Histogram,
    run_time: Histogram,
    /// The submission time (pool nanoseconds) of the latest-submitted task
    /// it saw start, for `oldest_queued`.
    newest_started: AtomicU64,
}

impl Recorder {
    pub(crate) fn new() -> Recorder {
        Recorder {
            queue_wait: Histogram::new(),
            run_time: Histogram::new(),
            newest_started: AtomicU64::new(0),
        }
    }

    fn started(&self, submitted: u64, start: u64) {
        self.queue_wait.record(start.saturating_sub(submitted));
        // ORDERING: Relaxed, as the histograms.
        self.newest_started.fetch_max(submitted, Ordering::Relaxed);
    }

    fn ended(&self, start: u64, end: u64) {
        self.run_time.record(end.saturating_sub(start));
    }
}

/// A pool's metrics: a recorder per worker, and the first submission.
pub(crate) struct Metrics {
    workers: Box<[Padded]>,
    /// The submission time of the first measured task (0: none yet; a
    /// submission at exactly 0 ns is taken as 1).
    first_submitted: AtomicU64,
}

/// A worker's recorder, on lines of its own.
#[repr(align(128))]
struct Padded(Recorder);

impl Metrics {
    pub(crate) fn new(workers: usize) -> Metrics {
        Metrics {
            workers: (0..workers).map(|_| Padded(Recorder::new())).collect(),
            first_submitted: AtomicU64::new(0),
        }
    }

    fn submitted(&self, at: u64) {
        // ORDERING: Relaxed: a one-time hint for `oldest_queued`.
        if self.first_submitted.load(Ordering::Relaxed) == 0 {
            let _ = self.first_submitted.compare_exchange(
                0,
                at.max(1),
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
        }
    }
}

/// Timing of a pool's or a group's tasks; from
/// [`ThreadPool::metrics`](crate::ThreadPool::metrics) and
/// [`TaskGroup::metrics`](crate::TaskGroup::metrics).
///
/// Everything is since the pool was built (or the group made), and empty
/// for a pool built without [`Builder::metrics`](crate::Builder::metrics).
///
/// # Examples
///
/// ```
/// use drainpool::ThreadPool;
///
/// let pool = ThreadPool::builder().threads(2).metrics(true).build().unwrap();
/// for _ in 0..100 {
///     pool.execute(|| ()).unwrap();
/// }
/// pool.wait_idle(std::time::Duration::from_secs(10));
/// let m = pool.metrics();
/// assert_eq!(m.run_time.count, 100);
/// println!("queue wait p99 {:?}, run time p99 {:?}", m.queue_wait.p99, m.run_time.p99);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PoolMetrics {
    /// From submission to start, of every task that started.
    pub queue_wait: Percentiles,
    /// From start to end (or panic), of every task that ended.
    pub run_time: Percentiles,
    /// How long the oldest queued task has waited; `None` when nothing is
    /// queued. An estimate from above, exact to within the time between
    /// two submissions for tasks of one priority level: it is the age of
    /// the next submission after the newest task that started, so a task
    /// of a lower level, or of a paused group, that was passed over by
    /// newer ones may have waited longer.
    pub oldest_queued: Option<Duration>,
}

/// A distribution of durations: how many, and its percentiles.
///
/// A percentile is within about 3% of the true value (the histogram
/// behind it has 16 buckets per power of two) and never above `max`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Percentiles {
    /// How many durations were recorded.
    pub count: u64,
    /// The median.
    pub p50: Duration,
    /// 90% were at most this.
    pub p90: Duration,
    /// 99% were at most this.
    pub p99: Duration,
    /// The longest.
    pub max: Duration,
}

/// A cell's call, with the time it was submitted (see the module docs).
pub(crate) struct Measured<C> {
    pub(crate) call: C,
    submitted: u64,
}

impl<C: Call> Call for Measured<C> {
    type Output = C::Output;

    fn call(self) -> C::Output {
        measure(self.submitted, || self.call.call())
    }

    fn job_type() -> Option<std::any::TypeId> {
        C::job_type()
    }

    fn into_any(self) -> Option<Box<dyn std::any::Any + Send>> {
        self.call.into_any()
    }

    #[inline(always)]
    fn start_by(&self) -> Option<std::time::Instant> {
        self.call.start_by()
    }
}

/// Runs `f`, a task submitted at `submitted`, recording its queue wait
/// and run time on the worker running it (and in its group's, if any).
fn measure<R>(submitted: u64, f: impl FnOnce() -> R) -> R {
    /// Records the end, also on unwind.
    struct Ended {
        start: u64,
    }
    impl Drop for Ended {
        fn drop(&mut self) {
            record_here(|recorder, end| recorder.ended(self.start, end));
        }
    }
    let start = record_here(|recorder, start| recorder.started(submitted, start));
    let _ended = start.map(|start| Ended { start });
    f()
}

/// Reads the clock and calls `record` with the time and each recorder of
/// the task this worker runs: the worker's, and its group's if that
/// measures. `None` (nothing recorded) off the pool's workers.
fn record_here(record: impl Fn(&Recorder, u64)) -> Option<u64> {
    run::with_worker_here(|shared, index, group| {
        let now = shared.nanos_since_epoch();
        if let Some(metrics) = &shared.metrics {
            record(&metrics.workers[index].0, now);
        }
        if let Some(group) = group.and_then(|g| g.metrics.as_ref()) {
            record(group, now);
        }
        now
    })
}

impl Shared {
    /// The submission time of a task queued now, if the pool measures.
    #[inline(always)]
    fn measuring(&self) -> Option<u64> {
        let metrics = self.metrics.as_ref()?;
        let now = self.nanos_since_epoch();
        metrics.submitted(now);
        Some(now)
    }

    /// `f` as the queue takes it: wrapped to be measured if the pool
    /// measures (see the module docs).
    #[inline(always)]
    pub(crate) fn measured_plain<F: FnOnce() + Send + 'static>(
        &self,
        f: F,
    ) -> Result<impl FnOnce() + Send + 'static, F> {
        match self.measuring() {
            Some(submitted) => Ok(move || measure(submitted, f)),
            None => Err(f),
        }
    }

    /// `call` as a cell takes it: wrapped to be measured if the pool
    /// measures.
    #[inline(always)]
    pub(crate) fn measured_call<C: Call>(&self, call: C) -> Result<Measured<C>, C> {
        match self.measuring() {
            Some(submitted) => Ok(Measured { call, submitted }),
            None => Err(call),
        }
    }

    /// A plain task for the queue, measured if the pool measures.
    #[inline(always)]
    pub(crate) fn plain_task<F: FnOnce() + Send + 'static>(
        &self,
        name: Option<Arc<str>>,
        f: F,
    ) -> Task {
        match self.measured_plain(f) {
            Ok(measured) => entry::plain(name, measured),
            Err(f) => entry::plain(name, f),
        }
    }

    /// A batch's tasks, measured if the pool measures; given back as they
    /// came if not.
    pub(crate) fn measured_batch<F: FnOnce() + Send + 'static>(
        &self,
        tasks: Vec<F>,
    ) -> Result<Vec<impl FnOnce() + Send + 'static>, Vec<F>> {
        match self.measuring() {
            Some(submitted) => Ok(tasks
                .into_iter()
                .map(|f| move || measure(submitted, f))
                .collect()),
            None => Err(tasks),
        }
    }

    /// A submitted task's cell, measured if the pool measures, with its
    /// queue entry.
    #[inline(always)]
    pub(crate) fn new_cell<C: StaticCall>(
        &self,
        name: Option<Arc<str>>,
        call: C,
        group: Option<Arc<GroupInner>>,
    ) -> (CellRef<C::Output>, CellEntry) {
        fn made<C: StaticCall>(cell: Arc<Cell<C, C::Output>>) -> (CellRef<C::Output>, CellEntry) {
            (cell.clone(), CellEntry(cell))
        }
        match self.measured_call(call) {
            Ok(measured) => made(Cell::new(name, measured, group)),
            Err(call) => made(Cell::new(name, call, group)),
        }
    }

    /// The pool's metrics now.
    pub(crate) fn metrics(&self) -> PoolMetrics {
        let Some(metrics) = &self.metrics else {
            return PoolMetrics::default();
        };
        let recorders = || metrics.workers.iter().map(|w| &w.0);
        let newest = recorders()
            .map(|r| r.newest_started.load(Ordering::Relaxed))
            .max()
            .unwrap_or(0);
        let queued = self.queued() > 0;
        PoolMetrics {
            queue_wait: percentiles(recorders().map(|r| &r.queue_wait)),
            run_time: percentiles(recorders().map(|r| &r.run_time)),
            oldest_queued: self.oldest(queued, newest, &metrics.first_submitted),
        }
    }

    /// The metrics of `group`'s tasks now.
    pub(crate) fn group_metrics(&self, group: &GroupInner) -> PoolMetrics {
        let Some(recorder) = &group.metrics else {
            return PoolMetrics::default();
        };
        let queued = group.counts.progress().queued > 0;
        let newest = recorder.newest_started.load(Ordering::Relaxed);
        let first = self.metrics.as_ref().map(|m| &m.first_submitted);
        PoolMetrics {
            queue_wait: percentiles(std::iter::once(&recorder.queue_wait)),
            run_time: percentiles(std::iter::once(&recorder.run_time)),
            oldest_queued: first.and_then(|first| self.oldest(queued, newest, first)),
        }
    }

    /// The age of the oldest queued task, estimated from the submission of
    /// the newest one that started (see `PoolMetrics::oldest_queued`).
    fn oldest(&self, queued: bool, newest_started: u64, first: &AtomicU64) -> Option<Duration> {
        if !queued {
            return None;
        }
        let since = match newest_started {
            0 => first.load(Ordering::Relaxed),
            newest => newest,
        };
        let now = self.nanos_since_epoch();
        Some(Duration::from_nanos(now.saturating_sub(since)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_falls_in_the_bucket_whose_range_holds_it() {
        let mut values: Vec<u64> = (0..5000).collect();
        values.extend((4..64).flat_map(|exp| {
            let p = 1u64 << exp;
            [p - 1, p, p + 1, p + p / 3]
        }));
        values.push(u64::MAX);
        for v in values {
            let index = bucket_of(v);
            assert!(index < BUCKETS, "{v}");
            let (low, width) = bucket_range(index);
            assert!(
                low <= v && v - low < width,
                "{v}: bucket {index} is {low}+{width}"
            );
            // Within 1/16 of the value: the midpoint is within 1/32.
            assert!(width == 1 || width <= low / (SUB - 1), "{v}");
        }
    }

    #[test]
    fn percentiles_of_a_known_distribution() {
        let h = Histogram::new();
        for ms in 1..=100u64 {
            h.record(ms * 1_000_000);
        }
        let p = percentiles(std::iter::once(&h));
        assert_eq!(p.count, 100);
        assert_eq!(p.max, Duration::from_millis(100));
        for (got, want) in [(p.p50, 50.0), (p.p90, 90.0), (p.p99, 99.0)] {
            let got = got.as_secs_f64() * 1e3;
            assert!((got - want).abs() <= want / 30.0, "{got} ms, want {want}");
        }
    }

    #[test]
    fn an_empty_histogram_says_zero() {
        let p = percentiles(std::iter::once(&Histogram::new()));
        assert_eq!(p, Percentiles::default());
    }
}
