//! [`ThreadPool`]: intake, the lifecycle calls, and what the pool tells about
//! itself.
//!
//! `ThreadPool` is a thin owner of an `Arc<Shared>`, the state its workers,
//! handles and pending tasks share. Dropping the `ThreadPool` drains and
//! joins; the `Shared` lives on as long as a handle or pending task needs it.
//!
//! ```
//! use drainpool::{PoolState, ThreadPool};
//! use std::time::Duration;
//!
//! let pool = ThreadPool::new(2).unwrap();
//! let handle = pool.submit(|| 2 + 2).unwrap();
//! pool.shutdown(); // refuse new work, finish the accepted work
//! assert!(pool.execute(|| ()).is_err());
//! assert_eq!(handle.join().unwrap(), 4);
//! assert!(pool.await_termination(Duration::from_secs(10)));
//! assert_eq!(pool.state(), PoolState::Terminated);
//! ```

use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering, fence};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::builder::{Builder, Hooks};
use crate::error::{RejectReason, Rejected};
use crate::graceful::ShutdownPolicy;
use crate::group::{GroupInner, TaskGroup};
use crate::handle::{Cell, SharedEntry, TaskHandle};
use crate::runtime::chunk::{self, Chunks};
use crate::runtime::queue::{Priority, Queue};
use crate::runtime::worker::{self, WorkerSlot};
use crate::signal::Relay;
use crate::state::{Bound, Gate, GatePass, Lifecycle, PoolState, WhenFull, deadline_after};
use crate::stop::StopState;
use crate::task::{
    self, Call, Closure, Job, JobCall, PendingTask, RunningTask, Task, TaskBuilder, TaskId,
    TaskPanic,
};
use crate::unwind::{call_logged, drop_quietly};

/// A pool of worker threads that stops cleanly.
///
/// Tasks go in with [`execute`](Self::execute) (fire and forget) or
/// [`submit`](Self::submit) (with a [`TaskHandle`]). The pool ends in one of
/// two ways: [`shutdown`](Self::shutdown) refuses new work and lets every
/// accepted task run; [`shutdown_now`](Self::shutdown_now) refuses new work,
/// hands back every task that has not started, and raises the stop token of
/// the running ones. [`await_termination`](Self::await_termination) waits for
/// the end.
///
/// # Drop
///
/// Dropping the pool is `shutdown` followed by waiting for termination and
/// joining the threads, like the end of a [`std::thread::scope`]: accepted
/// work is never silently abandoned. A [`Builder::drop_policy`] bounds that
/// wait with an escalating [`shutdown_gracefully`](Self::shutdown_gracefully).
/// Dropped from one of its own workers, or inside a stop callback (a
/// [`StopToken::on_stop`](crate::StopToken::on_stop) callback, which a task
/// dropping its `StopCallback` may be waiting for), where waiting could
/// deadlock, it only calls `shutdown` and logs a warning; the pool
/// terminates once its tasks end.
///
/// # Examples
///
/// ```
/// use drainpool::ThreadPool;
/// use std::time::Duration;
///
/// let pool = ThreadPool::builder().threads(2).thread_name("crunch").build().unwrap();
/// let handles: Vec<_> = (0..8u64).map(|i| pool.submit(move || i * i).unwrap()).collect();
/// let sum: u64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
/// assert_eq!(sum, 140);
/// pool.shutdown();
/// assert!(pool.await_termination(Duration::from_secs(10)));
/// ```
pub struct ThreadPool {
    shared: Arc<Shared>,
}

/// What the pool's workers, handles and pending tasks share.
pub(crate) struct Shared {
    /// Unique per pool in the process; tells a pool's own workers apart.
    pub(crate) id: u64,
    pub(crate) lifecycle: Lifecycle,
    pub(crate) gate: Gate,
    pub(crate) queue: Queue,
    /// The chunks of batches that may still hold tasks (see `chunk.rs`).
    pub(crate) chunks: Chunks,
    /// The room left in a bounded queue; `None` for an unbounded one.
    bound: Option<Bound>,
    /// The pool's task groups, for shutdown (resume the paused ones) and
    /// `shutdown_now` (empty their mailboxes). Held strongly: a paused
    /// group whose every handle was dropped still holds accepted tasks.
    /// Settled groups are pruned as new ones come, and all when the
    /// `ThreadPool` is dropped (not at termination: a `shutdown_now` still
    /// draining may need them; found by tests/stress.rs).
    groups: Mutex<Vec<Arc<GroupInner>>>,
    /// The pool-wide stop source, raised by `shutdown_now`.
    pub(crate) stop: Arc<StopState>,
    pub(crate) slots: Box<[WorkerSlot]>,
    /// Workers that have not exited yet.
    live: AtomicUsize,
    counters: Counters,
    idle: IdleWaiters,
    hooks: Hooks,
    threads: Mutex<Vec<JoinHandle<()>>>,
    epoch: Instant,
    drop_policy: Option<ShutdownPolicy>,
    /// Made by the first `shutdown_handle`.
    relay: OnceLock<Arc<Relay>>,
    /// Tasks handed back by a `shutdown_now` requested through a
    /// `ShutdownHandle`, kept for the program's next `shutdown_now`. `None`
    /// once the `ThreadPool` is dropped: nobody can ask then, and keeping
    /// them here would be a reference cycle (a `PendingTask` holds the pool).
    stash: Mutex<Option<Vec<PendingTask>>>,
}

/// End-state counts kept outside the workers' slots (rare events).
#[derive(Default)]
struct Counters {
    /// Tasks handed back by `shutdown_now`.
    returned: AtomicU64,
    /// Handed-back tasks later run with `PendingTask::run` (or a joiner).
    returned_completed: AtomicU64,
    returned_panicked: AtomicU64,
    /// Cancelled while still the pool's (handle cancel of a queued task).
    cancelled_queued: AtomicU64,
    /// Handed-back tasks cancelled (dropped `PendingTask`, or their handle).
    cancelled_returned: AtomicU64,
    rejected: AtomicU64,
}

/// Waiters of `wait_idle`.
struct IdleWaiters {
    count: AtomicUsize,
    lock: Mutex<()>,
    cond: Condvar,
}

impl Shared {
    pub(crate) fn new(builder: &mut Builder, threads: usize, epoch: Instant) -> Shared {
        static NEXT_POOL_ID: AtomicU64 = AtomicU64::new(1);
        let prefix = builder.thread_name.as_deref().unwrap_or("drainpool");
        Shared {
            id: NEXT_POOL_ID.fetch_add(1, Ordering::Relaxed),
            lifecycle: Lifecycle::new(),
            gate: Gate::new(),
            queue: Queue::new(),
            chunks: Chunks::new(),
            bound: builder.queue_capacity.map(Bound::new),
            groups: Mutex::new(Vec::new()),
            stop: StopState::new(),
            slots: (0..threads)
                .map(|i| WorkerSlot::new(format!("{prefix}-{i}")))
                .collect(),
            live: AtomicUsize::new(threads),
            counters: Counters::default(),
            idle: IdleWaiters {
                count: AtomicUsize::new(0),
                lock: Mutex::new(()),
                cond: Condvar::new(),
            },
            hooks: builder.take_hooks(),
            threads: Mutex::new(Vec::with_capacity(threads)),
            epoch,
            drop_policy: builder.drop_policy,
            relay: OnceLock::new(),
            stash: Mutex::new(Some(Vec::new())),
        }
    }

    pub(crate) fn add_thread(&self, handle: JoinHandle<()>) {
        self.threads.lock().push(handle);
    }

    pub(crate) fn nanos_since_epoch(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    // ----- intake -------------------------------------------------------

    pub(crate) fn execute<F>(
        &self,
        name: Option<Arc<str>>,
        priority: Priority,
        f: F,
        when_full: WhenFull,
    ) -> Result<(), Rejected<F>>
    where
        F: FnOnce() + Send + 'static,
    {
        match self.admit(when_full) {
            Ok(pass) => {
                self.enqueue(priority, task::plain(name, f), pass);
                Ok(())
            }
            Err(reason) => Err(self.reject(reason, f)),
        }
    }

    /// `execute` of an unnamed task at Normal priority: the hot path. Its
    /// enqueue stays in the branch that passed the gate (merged with the
    /// general path's, the pass went through the stack: 18 more
    /// instructions per task, callgrind).
    #[inline]
    pub(crate) fn execute_unnamed<F>(&self, f: F, when_full: WhenFull) -> Result<(), Rejected<F>>
    where
        F: FnOnce() + Send + 'static,
    {
        if let Some(mut pass) = self.pass_unbounded() {
            self.queue.push(Priority::Normal, task::plain(None, f));
            pass.accept();
            return Ok(());
        }
        self.execute(None, Priority::Normal, f, when_full)
    }

    pub(crate) fn submit<C: Call>(
        self: &Arc<Self>,
        name: Option<Arc<str>>,
        priority: Priority,
        f: C,
        when_full: WhenFull,
    ) -> Result<TaskHandle<C::Output>, Rejected<C>> {
        match self.admit(when_full) {
            Ok(pass) => {
                let cell = Cell::new(name, f, None);
                self.enqueue(priority, Task::Shared(SharedEntry(cell.clone())), pass);
                Ok(TaskHandle::new(cell, self.clone()))
            }
            Err(reason) => Err(self.reject(reason, f)),
        }
    }

    /// Lets a submitter in: through the gate (the pool is `Running`), and,
    /// for a bounded pool, with a reserved place in the queue.
    ///
    /// The common case passes inline (`pass_unbounded`); a bounded queue or
    /// a refusal takes `admit_many`, which decides and counts.
    #[inline]
    pub(crate) fn admit(&self, when_full: WhenFull) -> Result<GatePass<'_>, RejectReason> {
        match self.pass_unbounded() {
            Some(pass) => Ok(pass),
            None => self.admit_many(1, when_full),
        }
    }

    /// The gate pass of the common case, an unbounded pool that is running;
    /// `None` sends the caller to `admit_many`, which decides (the state
    /// only moves forward, so a refusal here is one there too) and counts.
    #[inline]
    fn pass_unbounded(&self) -> Option<GatePass<'_>> {
        if self.bound.is_some() {
            return None;
        }
        self.gate.enter(&self.lifecycle, 1)
    }

    /// Admits `n` tasks at once: one pass through the gate, all their
    /// places reserved in a bounded queue, or none. Out of line: a single
    /// task comes here only from a bounded queue or a refusal.
    #[inline(never)]
    fn admit_many(&self, n: usize, when_full: WhenFull) -> Result<GatePass<'_>, RejectReason> {
        // Room first, outside the gate: a submitter waiting for room is not
        // counted as accepted meanwhile (and shutdown wakes it through the
        // bound, not the gate).
        if let Some(bound) = &self.bound {
            bound.reserve(&self.lifecycle, n, when_full, || {
                worker::is_worker_of(self.id)
            })?;
        }
        match self.gate.enter(&self.lifecycle, n as u64) {
            Some(pass) => Ok(pass),
            None => {
                self.release_room(n); // give the room back
                // The gate counted us as accepted optimistically; that was
                // taken back when the pass dropped, which may make the pool
                // idle.
                self.notify_idle_waiters();
                Err(RejectReason::Shutdown)
            }
        }
    }

    pub(crate) fn execute_batch<F>(&self, tasks: Vec<F>) -> Result<(), Rejected<Vec<F>>>
    where
        F: FnOnce() + Send + 'static,
    {
        if tasks.is_empty() {
            return Ok(());
        }
        let size = chunk::chunk_size(tasks.len(), self.slots.len());
        match self.admit_many(tasks.len(), WhenFull::Wait) {
            Ok(mut pass) => {
                if size > 1 {
                    self.chunks.enqueue(&self.queue, chunk::calls(tasks, size));
                } else {
                    for f in tasks {
                        self.queue.push(Priority::Normal, task::plain(None, f));
                    }
                }
                pass.accept();
                Ok(())
            }
            Err(reason) => Err(self.reject_batch(reason, tasks)),
        }
    }

    pub(crate) fn submit_batch<F, T>(
        self: &Arc<Self>,
        tasks: Vec<F>,
    ) -> Result<Vec<TaskHandle<T>>, Rejected<Vec<F>>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        if tasks.is_empty() {
            return Ok(Vec::new());
        }
        let size = chunk::chunk_size(tasks.len(), self.slots.len());
        match self.admit_many(tasks.len(), WhenFull::Wait) {
            Ok(mut pass) => {
                let mut handles = Vec::with_capacity(tasks.len());
                let cells = tasks.into_iter().map(|f| {
                    let cell = Cell::new(None, Closure(f), None);
                    handles.push(TaskHandle::new(cell.clone(), self.clone()));
                    SharedEntry(cell)
                });
                if size > 1 {
                    // Made as they are queued, so the first chunks can start
                    // while the rest are made.
                    self.chunks.enqueue(&self.queue, chunk::cells(cells, size));
                } else {
                    for cell in cells {
                        self.queue.push(Priority::Normal, Task::Shared(cell));
                    }
                }
                pass.accept();
                Ok(handles)
            }
            Err(reason) => Err(self.reject_batch(reason, tasks)),
        }
    }

    fn reject_batch<F>(&self, reason: RejectReason, tasks: Vec<F>) -> Rejected<Vec<F>> {
        self.counters
            .rejected
            .fetch_add(tasks.len() as u64, Ordering::Relaxed);
        Rejected::new(reason, tasks)
    }

    /// Enqueues an admitted task; the pass leaves the gate after.
    #[inline]
    fn enqueue(&self, priority: Priority, task: Task, mut pass: GatePass<'_>) {
        self.queue.push(priority, task);
        pass.accept();
    }

    /// Puts a group's token in the queue (the group has tasks to run).
    pub(crate) fn send_token(&self, group: Arc<GroupInner>) {
        self.queue.push(group.priority(), Task::Group(group));
    }

    pub(crate) fn register_group(&self, group: &Arc<GroupInner>) {
        let mut groups = self.groups.lock();
        if groups.len() >= 16 && groups.len().is_power_of_two() {
            groups.retain(|g| !g.is_settled());
        }
        groups.push(group.clone());
    }

    fn live_groups(&self) -> Vec<Arc<GroupInner>> {
        self.groups.lock().clone()
    }

    /// `n` tasks stopped being the queue's: their end was decided (a plain
    /// task taken by a worker, a submitted task's cell claimed, a cancel, a
    /// hand-back) or they were refused after all. Their places in a bounded
    /// queue are free again.
    #[inline]
    pub(crate) fn release_room(&self, n: usize) {
        if let Some(bound) = &self.bound {
            bound.release(n);
        }
    }

    pub(crate) fn reject<F>(&self, reason: RejectReason, f: F) -> Rejected<F> {
        self.counters.rejected.fetch_add(1, Ordering::Relaxed);
        Rejected::new(reason, f)
    }

    // ----- lifecycle ----------------------------------------------------

    pub(crate) fn shutdown(&self) {
        // Inside the gate until the paused groups are queued again: a worker
        // that finds the queue empty meanwhile waits for us before it calls
        // the drain over (found by tests/groups.rs).
        let _hold = self.gate.hold(&self.lifecycle);
        if self.lifecycle.advance(PoolState::ShuttingDown) == PoolState::Running {
            log::debug!(
                "pool {}: shutdown: intake closed, draining {} queued task(s)",
                self.id,
                self.queued()
            );
            self.close_intake();
            // A drain runs everything accepted, also what paused groups hold.
            for group in self.live_groups() {
                group.resume_for_shutdown(self);
            }
            self.send_wakes(self.slots.len());
        }
    }

    pub(crate) fn shutdown_now(self: &Arc<Self>) -> Vec<PendingTask> {
        self.stop_now(false)
    }

    /// `shutdown_now` for a `ShutdownHandle` or a second signal, where no
    /// caller can receive the tasks: they go to the stash, for the
    /// program's next `shutdown_now` (or the graceful shutdown's report).
    pub(crate) fn shutdown_now_to_stash(self: &Arc<Self>) {
        let unkept = self.stop_now(true);
        drop(unkept); // the pool was dropped: nobody can ask for them; cancel
    }

    fn stop_now(self: &Arc<Self>, to_stash: bool) -> Vec<PendingTask> {
        // Going to the stash, its lock is held from before the pool can
        // terminate until every task taken back is in, so whoever looks at
        // the stash after termination waits for them instead of missing them.
        let mut stash = to_stash.then(|| self.stash.lock());
        let first = self.lifecycle.advance(PoolState::Stopping) < PoolState::Stopping;
        if first {
            log::debug!(
                "pool {}: shutdown_now: intake closed, stop requested",
                self.id
            );
            self.close_intake();
        }
        if !to_stash {
            // Every caller, not only the first: none may return before the
            // running tasks can see the stop (the first may still be on its
            // way here). Callbacks are user code: not under our lock. (A
            // stashing call raises it at its end instead, once the stash
            // lock is released: a callback may call `shutdown_now`.)
            self.stop.request();
        }
        // Submitters that read `Running` before the state moved finish their
        // enqueue first; after this no task can enter the queue.
        self.gate.wait_clear();
        // Tasks an earlier, stashed call took back come first: they were
        // submitted before anything still in the queue.
        let mut pending = if to_stash {
            Vec::new()
        } else {
            self.take_stashed()
        };
        // Sized once for what is queued (each chunk counts one: a hint), so
        // a million handed-back tasks are not copied a dozen times over.
        pending.reserve(self.queue.len());
        let stashed = pending.len();
        // Where the tasks of each chunk found in the queue end in `pending`.
        let mut chunk_ends: Vec<(u64, usize)> = Vec::new();
        while let Some(task) = self.queue.drain_one() {
            match task {
                Task::Wake => {}
                // A group's tasks come back where its token stood.
                Task::Group(group) => self.hand_back_group(&group, &mut pending),
                // So do a chunk's, if no worker has taken one of them yet
                // (then this is the chunk's own entry, and its tasks were
                // queued here); otherwise this is an extra entry asking for
                // help, and the rest comes back with the chunks in hand.
                Task::Chunk(chunk) => {
                    if let Some(rest) = chunk.take_rest(true) {
                        for task in rest {
                            self.hand_back_one(task, &mut pending);
                        }
                        chunk_ends.push((chunk.header().seq(), pending.len()));
                    }
                }
                task => {
                    self.hand_back_one(task, &mut pending);
                }
            }
        }
        // The rests of chunks that workers took off the queue.
        let in_hand = self.chunks.take_all_rests();
        if !in_hand.is_empty() {
            pending = self.place_in_hand(pending, stashed, &chunk_ends, in_hand);
        }
        // Groups with no token queued (paused ones) still hold tasks.
        for group in self.live_groups() {
            self.hand_back_group(&group, &mut pending);
        }
        // Each task handed back here was the pool's until now (dead entries
        // gave their room back when they were claimed).
        let taken = pending.len() - stashed;
        self.release_room(taken);
        self.counters
            .returned
            .fetch_add(taken as u64, Ordering::SeqCst);
        if let Some(kept) = stash.as_mut().and_then(|stash| stash.as_mut()) {
            kept.append(&mut pending);
        }
        drop(stash);
        if first {
            if to_stash {
                self.stop.request();
            }
            self.lifecycle.notify_waiters(); // a graceful drain wait moves on
        }
        self.send_wakes(self.slots.len());
        self.notify_idle_waiters();
        if taken > 0 {
            log::debug!(
                "pool {}: shutdown_now: handed back {taken} never-started task(s)",
                self.id
            );
        }
        pending
    }

    /// Puts the rests of chunks that workers took off the queue (`in_hand`,
    /// by number) where they were queued, among the tasks `pending` that
    /// `shutdown_now` found in the queue (after the first `stashed`; the
    /// chunks among them end where `chunk_ends` says).
    ///
    /// A chunk a worker took is queued before every chunk still found in
    /// the queue, except one taken while `shutdown_now` was emptying the
    /// queue (the worker then starts none of its tasks): so each goes right
    /// after the tasks of the last chunk found in the queue that was queued
    /// before it, or first if there is none, and those of one place in the
    /// order they were queued. Chunks are numbered in queue order, so this
    /// is exact for chunks, and the tasks queued between two chunks of one
    /// batch (by other threads, while it was queued) are the only ones
    /// whose place relative to a taken chunk is not known.
    fn place_in_hand(
        self: &Arc<Self>,
        pending: Vec<PendingTask>,
        stashed: usize,
        chunk_ends: &[(u64, usize)],
        in_hand: Vec<(u64, Vec<Task>)>,
    ) -> Vec<PendingTask> {
        let mut inserts: Vec<(usize, Vec<PendingTask>)> = Vec::new();
        for (seq, rest) in in_hand {
            let before = chunk_ends.partition_point(|&(s, _)| s < seq);
            let at = match before {
                0 => stashed,
                n => chunk_ends[n - 1].1,
            };
            let mut tasks = Vec::with_capacity(rest.len());
            for task in rest {
                self.hand_back_one(task, &mut tasks);
            }
            match inserts.last_mut() {
                Some((last, more)) if *last == at => more.append(&mut tasks),
                _ => inserts.push((at, tasks)),
            }
        }
        // In number order, so the places only grow.
        let extra: usize = inserts.iter().map(|(_, tasks)| tasks.len()).sum();
        let mut placed = Vec::with_capacity(pending.len() + extra);
        let mut inserts = inserts.into_iter().peekable();
        for (i, task) in pending.into_iter().enumerate() {
            while let Some((_, tasks)) = inserts.next_if(|(at, _)| *at == i) {
                placed.extend(tasks);
            }
            placed.push(task);
        }
        placed.extend(inserts.flat_map(|(_, tasks)| tasks));
        placed
    }

    /// Adds a never-started task to `pending`, unless it was claimed already
    /// (a cancelled or helped submitted task).
    #[inline]
    fn hand_back_one(self: &Arc<Self>, task: Task, pending: &mut Vec<PendingTask>) -> bool {
        let keep = match &task {
            Task::Plain(_) | Task::Named(_) | Task::Inline(_) => true,
            Task::Shared(entry) => entry.0.hand_back(),
            Task::Group(_) | Task::Chunk(_) | Task::Wake => false,
        };
        if keep {
            pending.push(PendingTask::new(task, self.clone()));
        }
        keep
    }

    /// Hands back the never-started ones among `tasks` (taken out of a
    /// cancelled group's mailbox), counting them as returned.
    pub(crate) fn hand_back_tasks(
        self: &Arc<Self>,
        tasks: impl IntoIterator<Item = Task>,
    ) -> Vec<PendingTask> {
        let mut pending = Vec::new();
        for task in tasks {
            self.hand_back_one(task, &mut pending);
        }
        self.release_room(pending.len());
        self.counters
            .returned
            .fetch_add(pending.len() as u64, Ordering::SeqCst);
        self.notify_idle_waiters();
        pending
    }

    /// Empties `group`'s mailbox into `pending`.
    fn hand_back_group(self: &Arc<Self>, group: &GroupInner, pending: &mut Vec<PendingTask>) {
        let returned = group
            .take_all()
            .into_iter()
            .map(|task| usize::from(self.hand_back_one(task, pending)))
            .sum();
        group.handed_back(returned);
    }

    /// Tasks kept by `shutdown_now_to_stash` that no `shutdown_now` has
    /// returned yet.
    pub(crate) fn take_stashed(&self) -> Vec<PendingTask> {
        self.stash
            .lock()
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    /// The relay of this pool's `ShutdownHandle`s, started on first use.
    pub(crate) fn relay(self: &Arc<Self>) -> Arc<Relay> {
        let relay = self
            .relay
            .get_or_init(|| {
                let name = format!("{}-relay", self.thread_prefix());
                Relay::start(self, name).unwrap_or_else(|e| {
                    panic!("drainpool: could not start the ShutdownHandle relay: {e}")
                })
            })
            .clone();
        // The relay thread may have looked at the state before termination
        // and blocked, and `terminate` may have looked for a relay before
        // it was published (it is published only once its thread runs).
        // ORDERING: SeqCst fence between publishing the relay and reading
        // the state, against `terminate`'s between storing Terminated and
        // reading the relay (Dekker): one of the two sees the other, and
        // rings.
        fence(Ordering::SeqCst);
        if self.lifecycle.get() == PoolState::Terminated {
            relay.ring();
        }
        relay
    }

    fn thread_prefix(&self) -> &str {
        let first = self.slots[0].thread_name();
        first.rsplit_once('-').map_or(first, |(prefix, _)| prefix)
    }

    /// Wakes submitters blocked on a full bounded queue, to be refused.
    fn close_intake(&self) {
        if let Some(bound) = &self.bound {
            bound.wake_all();
        }
    }

    /// Puts `n` wake-ups in the queue, for workers blocked on it.
    pub(crate) fn send_wakes(&self, n: usize) {
        for _ in 0..n {
            self.queue.push_wake();
        }
    }

    /// Called by a worker that found the queue empty while the pool is past
    /// `Running`: true when it may exit.
    pub(crate) fn drain_is_over(&self) -> bool {
        // Order matters (see state.rs): first wait out the submitters that
        // were admitted before the state moved, then look at the queue.
        self.gate.wait_clear();
        self.queue.is_empty()
    }

    /// `n` workers have exited (or, for a failed build, will never start).
    pub(crate) fn worker_exited(&self, n: usize) {
        if self.live.fetch_sub(n, Ordering::AcqRel) == n {
            self.terminate();
        }
    }

    pub(crate) fn take_on_terminated(&self) -> Option<Box<dyn FnOnce() + Send + 'static>> {
        self.hooks.on_terminated.lock().take()
    }

    fn terminate(&self) {
        if let Some(hook) = self.take_on_terminated() {
            call_logged(format_args!("pool {}: on_terminated", self.id), hook);
        }
        log::debug!("pool {}: terminated", self.id);
        self.lifecycle.set_terminated();
        self.notify_idle_waiters();
        // ORDERING: pairs with the fence in the relay thread (see signal.rs).
        fence(Ordering::SeqCst);
        if let Some(relay) = self.relay.get() {
            relay.ring(); // let it see the pool is gone and exit
        }
    }

    pub(crate) fn run_thread_hook(&self, start: bool, index: usize) {
        let hook = if start {
            &self.hooks.on_thread_start
        } else {
            &self.hooks.on_thread_exit
        };
        if let Some(hook) = hook {
            let what = format_args!(
                "{}: on_thread_{}",
                self.slots[index].thread_name(),
                if start { "start" } else { "exit" }
            );
            call_logged(what, || hook(index));
        }
    }

    pub(crate) fn await_termination(&self, timeout: Duration) -> bool {
        if self.lifecycle.get() == PoolState::Terminated {
            return true;
        }
        if worker::is_worker_of(self.id) {
            log::warn!(
                "pool {}: await_termination called from the pool's own worker; returning false \
                 instead of deadlocking",
                self.id
            );
            return false;
        }
        self.lifecycle.wait_terminated(deadline_after(timeout))
    }

    pub(crate) fn running_tasks(&self) -> Vec<RunningTask> {
        self.slots
            .iter()
            .filter_map(|slot| slot.running(self))
            .collect()
    }

    // ----- accounting ---------------------------------------------------

    /// A task ended on worker `index` (or elsewhere, `None`).
    #[inline]
    pub(crate) fn count_end(&self, index: Option<usize>, panicked: bool, returned: bool) {
        match index {
            Some(i) if !returned => self.slots[i].record_end(panicked),
            _ => {
                debug_assert!(returned, "only handed-back tasks run off the workers");
                let counter = if panicked {
                    &self.counters.returned_panicked
                } else {
                    &self.counters.returned_completed
                };
                counter.fetch_add(1, Ordering::SeqCst);
            }
        }
    }

    /// A task that will never start was cancelled: while still the pool's
    /// (then its room comes back now, not when a worker skips its dead
    /// entry), or after `shutdown_now` handed it back (`returned`).
    pub(crate) fn count_cancelled(&self, returned: bool) {
        let counter = if returned {
            &self.counters.cancelled_returned
        } else {
            &self.counters.cancelled_queued
        };
        counter.fetch_add(1, Ordering::SeqCst);
        if !returned {
            self.release_room(1);
            self.notify_idle_waiters();
        }
    }

    /// Tasks accepted and not yet ended, never an underestimate: the ended
    /// counts are read before the accepted count, and both only grow.
    fn outstanding(&self) -> u64 {
        let ended = self
            .slots
            .iter()
            .map(|s| s.completed() + s.panicked())
            .sum::<u64>()
            + self.counters.cancelled_queued.load(Ordering::SeqCst)
            + self.counters.returned.load(Ordering::SeqCst);
        fence(Ordering::SeqCst);
        self.gate.accepted().saturating_sub(ended)
    }

    fn active(&self) -> usize {
        self.slots.iter().filter(|s| s.is_busy()).count()
    }

    fn queued(&self) -> usize {
        let outstanding = usize::try_from(self.outstanding()).unwrap_or(usize::MAX);
        outstanding.saturating_sub(self.active())
    }

    pub(crate) fn stats(&self) -> PoolStats {
        let c = &self.counters;
        PoolStats {
            threads: self.live.load(Ordering::SeqCst),
            queued: self.queued(),
            active: self.active(),
            completed: self.slots.iter().map(WorkerSlot::completed).sum::<u64>()
                + c.returned_completed.load(Ordering::SeqCst),
            panicked: self.slots.iter().map(WorkerSlot::panicked).sum::<u64>()
                + c.returned_panicked.load(Ordering::SeqCst),
            cancelled: c.cancelled_queued.load(Ordering::SeqCst)
                + c.cancelled_returned.load(Ordering::SeqCst),
            rejected: c.rejected.load(Ordering::SeqCst),
            blocked_submitters: self.bound.as_ref().map_or(0, Bound::waiting),
        }
    }

    /// Hands a panic nobody can join to the panic handler; `worker` is the
    /// index of the worker it happened on, if any (its thread is named in
    /// the report). Out of line: off every hot path.
    #[cold]
    #[inline(never)]
    pub(crate) fn report_panic(
        &self,
        id: TaskId,
        name: Option<Arc<str>>,
        worker: Option<usize>,
        payload: Box<dyn std::any::Any + Send + 'static>,
    ) {
        let panic = TaskPanic {
            id,
            name,
            thread: worker.map(|i| self.slots[i].thread_name().to_owned()),
            payload,
        };
        let what = format_args!("pool {}: the panic handler", self.id);
        match &self.hooks.panic_handler {
            Some(handler) => call_logged(what, || handler(panic)),
            None => call_logged(what, || {
                log::error!("pool {}: {panic}", self.id);
                drop(panic);
            }),
        };
    }

    // ----- idleness -----------------------------------------------------

    /// Wakes `wait_idle` callers, if there are any and the pool is idle.
    pub(crate) fn notify_idle_waiters(&self) {
        // ORDERING: the fence orders this thread's earlier stores (counters,
        // slot cleared) before the loads that follow (Dekker with `wait_idle`,
        // which bumps the count and fences before reading; and between two
        // workers going idle at once: at least one of them sees both slots
        // clear, so the last one out always notifies).
        fence(Ordering::SeqCst);
        if self.idle.count.load(Ordering::Relaxed) > 0 && self.is_idle() {
            let _guard = self.idle.lock.lock();
            self.idle.cond.notify_all();
        }
    }

    fn wait_idle(&self, deadline: Option<Instant>) -> bool {
        struct Registered<'a>(&'a AtomicUsize);
        impl Drop for Registered<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::SeqCst);
            }
        }
        self.idle.count.fetch_add(1, Ordering::SeqCst);
        let _registered = Registered(&self.idle.count);
        fence(Ordering::SeqCst);
        let mut guard = self.idle.lock.lock();
        // No lost wake-up: a worker that ends the last task either is seen by
        // the check below, or sees our registration (the fences) and then
        // notifies under `lock`, which it cannot take between our check and
        // our wait.
        loop {
            if self.is_idle() {
                return true;
            }
            match deadline {
                None => self.idle.cond.wait(&mut guard),
                Some(d) => {
                    if self.idle.cond.wait_until(&mut guard, d).timed_out() {
                        return self.is_idle();
                    }
                }
            }
        }
    }

    /// Nothing queued or running: every accepted task has ended, and every
    /// worker has finished its bookkeeping (a task is counted as ended just
    /// before its worker's slot is cleared; the worker notifies waiters only
    /// after that, from its idle path).
    fn is_idle(&self) -> bool {
        self.outstanding() == 0 && self.active() == 0
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        // Only reachable with tasks still queued if workers never ran them
        // (e.g. a failed build); their handles must not wait forever.
        while let Some(task) = self.queue.drain_one() {
            drop_quietly(task);
        }
    }
}

/// A snapshot of a pool's counters; from [`ThreadPool::stats`].
///
/// Counts are exact at quiescence; while tasks are moving, `queued` and
/// `active` are momentary. At quiescence, every task ever accepted is
/// `completed + panicked + cancelled`, or was handed back by
/// `shutdown_now` and is still held as a [`PendingTask`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PoolStats {
    /// Worker threads that have not exited.
    pub threads: usize,
    /// Tasks accepted and not yet started.
    pub queued: usize,
    /// Tasks running now.
    pub active: usize,
    /// Tasks that ran to the end (also those run from a [`PendingTask`]).
    pub completed: u64,
    /// Tasks that panicked.
    pub panicked: u64,
    /// Tasks that will never start: cancelled through their handle, or
    /// handed back by `shutdown_now` and dropped.
    pub cancelled: u64,
    /// Tasks refused (and handed back inside [`Rejected`]).
    pub rejected: u64,
    /// Submitters blocked waiting for room in a bounded queue: the pool's
    /// backpressure. Their tasks are not counted anywhere else until they
    /// are accepted.
    pub blocked_submitters: usize,
}

impl ThreadPool {
    /// A pool with `threads` workers and default settings.
    ///
    /// # Errors
    ///
    /// [`BuildError::ZeroThreads`](crate::BuildError::ZeroThreads) if
    /// `threads` is 0; [`BuildError::Spawn`](crate::BuildError::Spawn) if a
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
    pub fn builder() -> Builder {
        Builder::new()
    }

    pub(crate) fn from_shared(shared: Arc<Shared>) -> ThreadPool {
        ThreadPool { shared }
    }

    pub(crate) fn shared(&self) -> &Shared {
        &self.shared
    }

    pub(crate) fn shared_arc(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// The number of worker threads the pool was built with.
    pub fn threads(&self) -> usize {
        self.shared.slots.len()
    }

    /// Runs `f` on a worker; fire and forget.
    ///
    /// With a bounded queue ([`Builder::queue_capacity`]) this blocks while
    /// the queue is full. If `f` panics, the panic goes to the
    /// [`panic_handler`](Builder::panic_handler) (by default, `log::error!`).
    ///
    /// A closure that captures nothing or a single word (an `Arc`, an index,
    /// a `Box`) is queued without allocating; a larger one is boxed once.
    ///
    /// # Errors
    ///
    /// [`Rejected`] with [`RejectReason::Shutdown`], holding `f`, if the pool
    /// is shutting down, also when shutdown begins while this call waits for
    /// room in a full queue.
    ///
    /// # Examples
    ///
    /// ```
    /// use drainpool::ThreadPool;
    /// use std::sync::mpsc;
    ///
    /// let pool = ThreadPool::new(2).unwrap();
    /// let (tx, rx) = mpsc::channel();
    /// pool.execute(move || tx.send("hello").unwrap()).unwrap();
    /// assert_eq!(rx.recv().unwrap(), "hello");
    /// ```
    pub fn execute<F>(&self, f: F) -> Result<(), Rejected<F>>
    where
        F: FnOnce() + Send + 'static,
    {
        self.shared.execute_unnamed(f, WhenFull::Wait)
    }

    /// Like [`execute`](Self::execute), but never blocks.
    ///
    /// # Errors
    ///
    /// [`Rejected`] holding `f`: [`RejectReason::QueueFull`] if the bounded
    /// queue is full, [`RejectReason::Shutdown`] if the pool is shutting down.
    pub fn try_execute<F>(&self, f: F) -> Result<(), Rejected<F>>
    where
        F: FnOnce() + Send + 'static,
    {
        self.shared.execute_unnamed(f, WhenFull::Refuse)
    }

    /// Runs `f` on a worker and returns a [`TaskHandle`] for its result.
    ///
    /// Blocks like [`execute`](Self::execute) on a full bounded queue.
    /// Dropping the handle detaches the task; it still runs.
    ///
    /// # Errors
    ///
    /// As [`execute`](Self::execute).
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = drainpool::ThreadPool::new(2).unwrap();
    /// let handle = pool.submit(|| "forty-two".len()).unwrap();
    /// assert_eq!(handle.join().unwrap(), 9);
    /// ```
    pub fn submit<F, T>(&self, f: F) -> Result<TaskHandle<T>, Rejected<F>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.shared
            .submit(None, Priority::Normal, Closure(f), WhenFull::Wait)
            .map_err(|rejected| rejected.map(|call| call.0))
    }

    /// Like [`submit`](Self::submit), but never blocks.
    ///
    /// # Errors
    ///
    /// As [`try_execute`](Self::try_execute).
    pub fn try_submit<F, T>(&self, f: F) -> Result<TaskHandle<T>, Rejected<F>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.shared
            .submit(None, Priority::Normal, Closure(f), WhenFull::Refuse)
            .map_err(|rejected| rejected.map(|call| call.0))
    }

    /// Runs every closure of `tasks` on the workers, taken in the order
    /// given: like calling [`execute`](Self::execute) for each, for a
    /// fraction of the cost (the batch passes the pool's intake once).
    ///
    /// All or nothing: either every task is accepted, or none is and they
    /// all come back in the error, in order. With a bounded queue, blocks
    /// until there is room for the whole batch.
    ///
    /// A large batch is queued in chunks of consecutive tasks (up to 128,
    /// and at most a quarter of each worker's share), one queue entry per
    /// chunk: that is what makes a batch cheaper per task than `execute`.
    /// A worker runs the tasks of the chunk it took one after the other,
    /// each as if `execute`d on its own (counted, shown by
    /// [`running_tasks`](Self::running_tasks), its panic reported); an idle
    /// worker joins in on a chunk another one is running. Every task still
    /// counts alone: in a bounded queue's capacity (a task leaves the queue
    /// when it starts), in [`stats`](Self::stats), for
    /// [`wait_idle`](Self::wait_idle); and
    /// [`shutdown_now`](Self::shutdown_now) hands back every task of the
    /// batch that has not started, also the rest of a chunk a worker is in
    /// the middle of, in order. One difference: a worker takes the next
    /// queue entry only when its chunk is done, so a
    /// [`Priority::High`] task queued meanwhile
    /// starts once a worker has finished the chunk it is running.
    ///
    /// # Errors
    ///
    /// [`Rejected`] holding every task: [`RejectReason::Shutdown`] as for
    /// `execute`; [`RejectReason::QueueFull`] if the batch is larger than a
    /// bounded queue's capacity (it could never fit).
    ///
    /// # Examples
    ///
    /// ```
    /// use drainpool::ThreadPool;
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// use std::sync::Arc;
    /// use std::time::Duration;
    ///
    /// let pool = ThreadPool::new(2).unwrap();
    /// let done = Arc::new(AtomicUsize::new(0));
    /// let chunks = (0..1000).map(|_| {
    ///     let done = done.clone();
    ///     move || {
    ///         done.fetch_add(1, Ordering::Relaxed);
    ///     }
    /// });
    /// pool.execute_batch(chunks).unwrap();
    /// assert!(pool.wait_idle(Duration::from_secs(10)));
    /// assert_eq!(done.load(Ordering::Relaxed), 1000);
    /// ```
    pub fn execute_batch<I>(&self, tasks: I) -> Result<(), Rejected<Vec<I::Item>>>
    where
        I: IntoIterator,
        I::Item: FnOnce() + Send + 'static,
    {
        self.shared.execute_batch(tasks.into_iter().collect())
    }

    /// Like [`submit`](Self::submit) for each closure of `tasks`, passing
    /// the pool's intake once; returns the handles in the order given.
    /// Queued in chunks like [`execute_batch`](Self::execute_batch); each
    /// handle still stands for its one task (cancel it, join it).
    ///
    /// # Errors
    ///
    /// As [`execute_batch`](Self::execute_batch): all or nothing.
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = drainpool::ThreadPool::new(2).unwrap();
    /// let handles = pool.submit_batch((1..=4u64).map(|i| move || i * i)).unwrap();
    /// let squares: Vec<u64> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    /// assert_eq!(squares, [1, 4, 9, 16]);
    /// ```
    pub fn submit_batch<I, T>(&self, tasks: I) -> Result<Vec<TaskHandle<T>>, Rejected<Vec<I::Item>>>
    where
        I: IntoIterator,
        I::Item: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.shared.submit_batch(tasks.into_iter().collect())
    }

    /// Runs `job` on a worker and returns a [`TaskHandle`] for its output:
    /// like [`submit`](Self::submit), with a [`Job`] value instead of a
    /// closure, which [`PendingTask::into_job`] can give back if the job
    /// never started.
    ///
    /// # Errors
    ///
    /// As [`execute`](Self::execute); the [`Rejected`] holds `job`.
    pub fn submit_job<J: Job>(&self, job: J) -> Result<TaskHandle<J::Output>, Rejected<J>> {
        self.shared
            .submit(None, Priority::Normal, JobCall(job), WhenFull::Wait)
            .map_err(|rejected| rejected.map(|call| call.0))
    }

    /// A new [`TaskGroup`] of this pool: a set of tasks cancelled, paused
    /// and waited for as one (one job split into many tasks).
    pub fn group(&self, name: impl Into<String>) -> TaskGroup {
        TaskGroup::new(self.shared.clone(), name.into())
    }

    /// A [`TaskBuilder`], to give a task a name before submitting it.
    pub fn task(&self) -> TaskBuilder<'_> {
        TaskBuilder::new(self)
    }

    /// Stops intake and lets every accepted task run: idempotent and
    /// non-blocking. Workers exit once the queue is empty; wait for that
    /// with [`await_termination`](Self::await_termination).
    ///
    /// Submitters blocked on a full bounded queue wake with
    /// [`RejectReason::Shutdown`].
    pub fn shutdown(&self) {
        self.shared.shutdown();
    }

    /// Stops intake, removes every task that has not started and returns
    /// them in submission order, and raises the pool-wide stop flag that
    /// running tasks see through [`StopToken::current`]. Does not wait for
    /// running tasks.
    ///
    /// Each task is returned at most once, whatever the number of concurrent
    /// or repeated calls. A task a worker had already taken off the queue
    /// when the call began runs, with its stop flag raised. Dropping a
    /// returned [`PendingTask`] cancels it.
    ///
    /// [`StopToken::current`]: crate::StopToken::current
    #[must_use = "the returned tasks were never run; drop them deliberately to cancel them"]
    pub fn shutdown_now(&self) -> Vec<PendingTask> {
        self.shared.shutdown_now()
    }

    /// Waits up to `timeout` for the pool to terminate; true once it has.
    /// `Duration::MAX` waits forever.
    ///
    /// Called from one of the pool's own workers (where it could never
    /// return true) it returns false at once and logs a warning.
    pub fn await_termination(&self, timeout: Duration) -> bool {
        self.shared.await_termination(timeout)
    }

    /// Waits up to `timeout` until no task is queued or running; true if
    /// that happened. `Duration::MAX` waits forever.
    ///
    /// Called from one of the pool's own workers (whose own task is
    /// running) it returns false at once and logs a warning.
    pub fn wait_idle(&self, timeout: Duration) -> bool {
        if worker::is_worker_of(self.shared.id) {
            log::warn!(
                "pool {}: wait_idle called from the pool's own worker; returning false instead of \
                 deadlocking",
                self.shared.id
            );
            return false;
        }
        self.shared.wait_idle(deadline_after(timeout))
    }

    /// Where the pool is in its life.
    pub fn state(&self) -> PoolState {
        self.shared.lifecycle.get()
    }

    /// True once [`shutdown`](Self::shutdown) or
    /// [`shutdown_now`](Self::shutdown_now) was called.
    pub fn is_shutdown(&self) -> bool {
        self.state() >= PoolState::ShuttingDown
    }

    /// True once every worker has exited and `on_terminated` has run.
    pub fn is_terminated(&self) -> bool {
        self.state() == PoolState::Terminated
    }

    /// A snapshot of the pool's counters.
    pub fn stats(&self) -> PoolStats {
        self.shared.stats()
    }

    /// The tasks running now, with how long each has run.
    pub fn running_tasks(&self) -> Vec<RunningTask> {
        self.shared.running_tasks()
    }
}

impl Drop for ThreadPool {
    fn drop(&mut self) {
        let stashed = self.shared.stash.lock().take();
        drop(stashed); // never-started tasks nobody can ask for now: cancel
        self.shared.shutdown();
        // The list of groups stays: a `shutdown_now` still to come (the drop
        // policy's, or a `ShutdownHandle`'s) must find every group holding
        // tasks, also one whose token a worker holds right now. A task that
        // captured its own group makes a cycle only while it is queued, and
        // a terminated pool has no queued task.
        if worker::is_worker_of(self.shared.id) {
            log::warn!(
                "pool {}: dropped from its own worker; shutting down without waiting",
                self.shared.id
            );
            return;
        }
        if crate::stop::in_stop_callback() {
            log::warn!(
                "pool {}: dropped inside a stop callback; shutting down without waiting (a task \
                 dropping that callback may be waiting for it)",
                self.shared.id
            );
            return;
        }
        match self.shared.drop_policy {
            None => {
                self.shared.lifecycle.wait_terminated(None);
            }
            Some(policy) => {
                let report = self.shutdown_gracefully(policy);
                if !report.terminated {
                    log::error!(
                        "pool {}: dropped without terminating; its threads are left to finish \
                         on their own: {report}",
                        self.shared.id
                    );
                    return;
                }
            }
        }
        let threads = std::mem::take(&mut *self.shared.threads.lock());
        for thread in threads {
            // A worker's own panics are caught; a join error is impossible
            // unless the runtime itself failed. Nothing to hand back then.
            let _ = thread.join();
        }
    }
}

impl fmt::Debug for ThreadPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ThreadPool")
            .field("id", &self.shared.id)
            .field("state", &self.state())
            .field("stats", &self.stats())
            .finish()
    }
}
