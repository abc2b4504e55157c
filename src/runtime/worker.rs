//! The worker loop: take a task, run it under `catch_unwind`, record its end
//! state, and exit only when the pool says the drain is over.
//!
//! Each worker owns a [`WorkerSlot`] (one cache line, written only by its
//! worker) holding its counters and the task it is running, so the take path
//! touches no shared counter; statistics sum the slots when asked.
//!
//! A worker exits when the pool is `Stopping`, or when the pool is past
//! `Running`, no submitter is inside the intake gate, and the queue is empty
//! (in that order: see `state.rs`). The last worker out runs `on_terminated`
//! and marks the pool `Terminated`.
//!
//! ```
//! use drainpool::ThreadPool;
//! use std::sync::atomic::{AtomicUsize, Ordering};
//! use std::sync::Arc;
//! use std::time::Duration;
//!
//! let pool = ThreadPool::new(2).unwrap();
//! let ran = Arc::new(AtomicUsize::new(0));
//! for _ in 0..100 {
//!     let ran = ran.clone();
//!     pool.execute(move || {
//!         ran.fetch_add(1, Ordering::Relaxed);
//!     })
//!     .unwrap();
//! }
//! pool.shutdown();
//! assert!(pool.await_termination(Duration::MAX));
//! assert_eq!(ran.load(Ordering::Relaxed), 100); // the drain ran them all
//! ```

use std::cell::{Cell, RefCell};
use std::mem::ManuallyDrop;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;

use crate::runtime::Shared;
use crate::runtime::cell;
use crate::runtime::cell::{CancelOutcome, Header, Runner, SharedEntry, SharedTask, Tally};
use crate::runtime::chunk::ChunkRef;
use crate::runtime::entry::Task;
use crate::runtime::mailbox::GroupInner;
use crate::runtime::queue::Priority;
use crate::state::PoolState;
use crate::stop::StopState;
use crate::task::{IdBlock, RunningTask, TaskId};
use crate::unwind;

/// What the current thread is doing for a pool, if it is a worker.
struct Context {
    shared: Arc<Shared>,
    index: usize,
    /// The group of the task running now, for `StopToken::current`.
    group: Option<Arc<GroupInner>>,
}

thread_local! {
    static CONTEXT: RefCell<Option<Context>> = const { RefCell::new(None) };
    /// The submitted task running on this thread now, for
    /// `StopToken::current`; set on a worker, and around a handed-back task
    /// run by the program. Not a field of `CONTEXT`: it is set and restored
    /// around every submitted task, and swapping a `Cell` costs a fraction
    /// of borrowing the context mutably twice.
    ///
    /// `ManuallyDrop`, so that the slot needs no destructor and each access
    /// skips the check for one: every run puts back what it found, ending
    /// with `None`, so there is nothing to drop at thread exit.
    static CURRENT_TASK: Cell<ManuallyDrop<Option<Arc<dyn SharedTask>>>> =
        const { Cell::new(ManuallyDrop::new(None)) };
    /// True while the innermost run on this thread is a task handed back by
    /// `shutdown_now` and run through its `PendingTask`: that task is the
    /// program's now, not the pool's, and not the thread's (which may be a
    /// worker of another pool, in the middle of a task of its own).
    static ELSEWHERE: Cell<bool> = const { Cell::new(false) };
}

/// True if the calling thread is a worker of the pool `pool_id`.
pub(crate) fn is_worker_of(pool_id: u64) -> bool {
    CONTEXT.with(|c| {
        c.borrow()
            .as_ref()
            .is_some_and(|ctx| ctx.shared.id == pool_id)
    })
}

/// A copy of the submitted task running on this thread, if any.
fn current_task() -> Option<Arc<dyn SharedTask>> {
    CURRENT_TASK.with(|current| {
        let task = current.replace(ManuallyDrop::new(None));
        let copy = Option::clone(&task);
        current.set(task);
        copy
    })
}

/// The stop sources the task running on this thread observes, decided by
/// the innermost run alone (never by what runs around it):
///
/// - a task of a pool, run by a worker of that pool (taken from the queue
///   or helped by a joiner): the pool's stop, its group's, and for a
///   submitted task its own;
/// - a handed-back task run through its `PendingTask`, on any thread: its
///   group's and its own (a plain one has neither, and never fires);
/// - anything else: none.
pub(crate) fn current_stop_states() -> Vec<Arc<StopState>> {
    let task = current_task();
    if ELSEWHERE.with(Cell::get) {
        return task.map_or_else(Vec::new, |task| own_stop_states(&*task));
    }
    CONTEXT.with(|c| {
        let c = c.borrow();
        let Some(ctx) = c.as_ref() else {
            return Vec::new();
        };
        let mut states = vec![ctx.shared.stop.clone()];
        match &task {
            Some(task) => states.extend(own_stop_states(&**task)),
            // A plain task: the group whose mailbox it came from.
            None => states.extend(ctx.group.as_ref().map(|g| g.stop_state().clone())),
        }
        states
    })
}

/// A submitted task's group's stop and its own.
fn own_stop_states(task: &dyn SharedTask) -> Vec<Arc<StopState>> {
    let mut states = Vec::with_capacity(2);
    if let Some(group) = &task.header().group {
        states.push(group.stop_state().clone());
    }
    states.push(task.stop_state());
    states
}

/// True if the calling thread is running the submitted task `header`
/// belongs to (innermost run): a wait for it here would wait for itself.
pub(crate) fn is_running(header: &Header) -> bool {
    current_task().is_some_and(|task| std::ptr::eq(task.header(), header))
}

/// True if the calling thread is running a task of `group` (a plain one
/// from its mailbox, or a submitted one): waiting for the group here would
/// wait for itself.
pub(crate) fn is_in_group(group: &Arc<GroupInner>) -> bool {
    let in_context = CONTEXT.with(|c| {
        c.borrow()
            .as_ref()
            .and_then(|ctx| ctx.group.as_ref())
            .is_some_and(|g| Arc::ptr_eq(g, group))
    });
    in_context
        || (!ELSEWHERE.with(Cell::get)
            && current_task().is_some_and(|task| {
                task.header()
                    .group
                    .as_ref()
                    .is_some_and(|g| Arc::ptr_eq(g, group))
            }))
}

/// A worker's own line: its counters and the task it is running.
#[repr(align(128))]
pub(crate) struct WorkerSlot {
    thread_name: String,
    /// Id of the running task, 0 when idle.
    current: AtomicU64,
    /// When it started, in nanoseconds since the pool's epoch.
    started: AtomicU64,
    name: Mutex<Option<Arc<str>>>,
    /// Whether `name` may hold a name, so unnamed tasks skip its lock.
    named: AtomicBool,
    completed: AtomicU64,
    panicked: AtomicU64,
}

/// What a slot showed before a nested run, restored after it.
struct Previous {
    current: u64,
    started: u64,
    name: Option<Option<Arc<str>>>,
}

impl WorkerSlot {
    pub(crate) fn new(thread_name: String) -> Self {
        WorkerSlot {
            thread_name,
            current: AtomicU64::new(0),
            started: AtomicU64::new(0),
            name: Mutex::new(None),
            named: AtomicBool::new(false),
            completed: AtomicU64::new(0),
            panicked: AtomicU64::new(0),
        }
    }

    pub(crate) fn thread_name(&self) -> &str {
        &self.thread_name
    }

    pub(crate) fn completed(&self) -> u64 {
        self.completed.load(Ordering::Relaxed)
    }

    pub(crate) fn panicked(&self) -> u64 {
        self.panicked.load(Ordering::Relaxed)
    }

    pub(crate) fn is_busy(&self) -> bool {
        self.current.load(Ordering::Acquire) != 0
    }

    /// Counts a task this worker ran. Single writer (the slot's worker), so
    /// a load and a store replace a locked read-modify-write; readers order
    /// it with fences (see `Shared::notify_idle_waiters`).
    #[inline(always)]
    pub(crate) fn record_end(&self, panicked: bool) {
        let counter = if panicked {
            &self.panicked
        } else {
            &self.completed
        };
        counter.store(counter.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
    }

    /// Shows a task taken from the queue (the slot was idle).
    #[inline(always)]
    fn begin_top(&self, id: TaskId, name: Option<&Arc<str>>, started: u64) {
        if name.is_some() || self.named.load(Ordering::Relaxed) {
            self.set_name(name);
        }
        self.started.store(started, Ordering::Relaxed);
        // ORDERING: Release publishes `started` and `name` to
        // `running_tasks`, which reads `current` with Acquire first.
        self.current.store(id.as_u64(), Ordering::Release);
    }

    /// Shows `name` (named tasks are the slow path: a lock).
    #[inline(never)]
    fn set_name(&self, name: Option<&Arc<str>>) {
        *self.name.lock() = name.cloned();
        self.named.store(name.is_some(), Ordering::Relaxed);
    }

    /// Marks the slot idle again after a task taken from the queue.
    #[inline(always)]
    fn end_top(&self) {
        // ORDERING: Release, so a reader that sees the slot idle also sees
        // the task's counts (stored before).
        self.current.store(0, Ordering::Release);
    }

    /// Shows a task run inline by a joiner, saving what the slot showed.
    fn begin(&self, id: TaskId, name: Option<&Arc<str>>, started: u64) -> Previous {
        let prev_current = self.current.load(Ordering::Relaxed);
        let prev_started = self.started.load(Ordering::Relaxed);
        let mut prev_name = None;
        if name.is_some() || self.named.load(Ordering::Relaxed) {
            let mut slot_name = self.name.lock();
            prev_name = Some(slot_name.take());
            *slot_name = name.cloned();
            self.named.store(name.is_some(), Ordering::Relaxed);
        }
        self.started.store(started, Ordering::Relaxed);
        // ORDERING: Release publishes `started` and `name` to
        // `running_tasks`, which reads `current` with Acquire first.
        self.current.store(id.as_u64(), Ordering::Release);
        Previous {
            current: prev_current,
            started: prev_started,
            name: prev_name,
        }
    }

    fn end(&self, prev: Previous) {
        // ORDERING: Release, so a reader that sees the restored id also sees
        // the restored fields; only `running_tasks` and `stats().active` read
        // `current` (idleness is counted, not read from here).
        self.current.store(prev.current, Ordering::Release);
        self.started.store(prev.started, Ordering::Relaxed);
        if let Some(name) = prev.name {
            let named = name.is_some();
            *self.name.lock() = name;
            self.named.store(named, Ordering::Relaxed);
        }
    }

    /// The task running in this slot now, if any.
    pub(crate) fn running(&self, shared: &Shared) -> Option<RunningTask> {
        for _ in 0..4 {
            let id = self.current.load(Ordering::Acquire);
            if id == 0 {
                return None;
            }
            let started = self.started.load(Ordering::Relaxed);
            let name = self.name.lock().as_deref().map(str::to_owned);
            // A task that ended meanwhile may have left a mix of two tasks'
            // fields; read again until the id is stable around the reads.
            if self.current.load(Ordering::Acquire) == id {
                let now = shared.nanos_since_epoch();
                return Some(RunningTask {
                    id: TaskId::from_raw(id),
                    name,
                    thread: self.thread_name.clone(),
                    running_for: Duration::from_nanos(now.saturating_sub(started)),
                });
            }
        }
        None
    }
}

/// Ends a slot's record of a task even if bookkeeping unwinds.
///
/// A task the worker took from the queue starts from idle, so ending it
/// just marks the slot idle again; only a task run inline by a joiner (see
/// `TaskHandle::join`) saves and restores what the slot showed.
struct SlotGuard<'a> {
    slot: &'a WorkerSlot,
    /// `None` for a task taken from the queue: back to idle at the end.
    outer: Option<Previous>,
}

impl<'a> SlotGuard<'a> {
    #[inline]
    fn enter(slot: &'a WorkerSlot, id: TaskId, name: Option<&Arc<str>>, at: Site) -> Self {
        let outer = match at.nested {
            false => {
                slot.begin_top(id, name, at.started);
                None
            }
            true => Some(slot.begin(id, name, at.started)),
        };
        SlotGuard { slot, outer }
    }
}

impl Drop for SlotGuard<'_> {
    fn drop(&mut self) {
        match self.outer.take() {
            None => self.slot.end_top(),
            Some(outer) => self.slot.end(outer),
        }
    }
}

/// Marks a slot idle again at the end of a task taken from the queue, also
/// if bookkeeping unwinds: `SlotGuard` for a task that is never nested.
#[must_use = "the slot is marked idle when this is dropped"]
struct TopGuard<'a>(&'a WorkerSlot);

impl Drop for TopGuard<'_> {
    #[inline]
    fn drop(&mut self) {
        self.0.end_top();
    }
}

/// The body of worker thread `index`.
pub(crate) fn main(shared: Arc<Shared>, index: usize) {
    CONTEXT.with(|c| {
        *c.borrow_mut() = Some(Context {
            shared: shared.clone(),
            index,
            group: None,
        })
    });
    // Whatever happens from here on (a panicking exit hook or logger
    // included), the pool learns that this worker is gone.
    let _exit = Exit(&shared);
    log::debug!("{}: started", shared.slots[index].thread_name());
    shared.run_thread_hook(true, index);
    // Tasks run under their own `catch_unwind`; this one is for the pool's
    // bookkeeping around them (or a `Drop` of a task's result), caught once
    // for the whole loop rather than once per task: a panic there is logged
    // and the loop starts again, so the worker never dies with the pool
    // still counting on it.
    while let Err(payload) = catch_unwind(AssertUnwindSafe(|| work(&shared, index))) {
        log::error!(
            "{}: a panic escaped a task's cleanup (a Drop of its result?): {}",
            shared.slots[index].thread_name(),
            unwind::message(payload.as_ref())
        );
        unwind::drop_quietly(payload);
    }
    // Pass the wake on, before our exit hook: a worker that blocked just
    // before shutdown began may not have been woken by the one sent then
    // (this one may have taken them all), and it must reach its own exit
    // whatever our hook does.
    shared.send_wakes(1);
    shared.run_thread_hook(false, index);
    log::debug!("{}: exiting", shared.slots[index].thread_name());
}

/// Counts its worker out of the pool when dropped, also on unwind.
struct Exit<'a>(&'a Shared);

impl Drop for Exit<'_> {
    fn drop(&mut self) {
        // The context stays until after `worker_exited`, so that
        // `on_terminated` (run here by the last worker) is also seen as
        // running inside the pool.
        self.0.worker_exited(1);
        CONTEXT.with(|c| c.borrow_mut().take());
    }
}

/// A worker's own view of the time, for the start stamps of its tasks.
///
/// Reading the clock costs about as much as running a tiny task, so a worker
/// running tiny tasks back to back reads it once per [`Clock::STRIDE`] tasks
/// and stamps the ones in between with the last reading: their start is then
/// early by at most the run time of the few tiny tasks before them. As soon
/// as a window of tasks takes longer than [`Clock::SLOW`], the worker reads
/// the clock for every task again, and it always does after waking from
/// idle, so a long or stuck task's `running_for` is exact.
struct Clock {
    last: u64,
    left: u32,
    stride: u32,
}

impl Clock {
    const STRIDE: u32 = 32;
    const SLOW: u64 = 50_000; // nanoseconds

    fn new() -> Clock {
        Clock {
            last: 0,
            left: 0,
            stride: 0,
        }
    }

    #[inline]
    fn stamp(&mut self, shared: &Shared) -> u64 {
        if self.left > 0 {
            self.left -= 1;
            return self.last;
        }
        let now = shared.nanos_since_epoch();
        let window = now.saturating_sub(self.last);
        self.stride = if window > Clock::SLOW {
            0
        } else {
            Clock::STRIDE - 1
        };
        self.left = self.stride;
        self.last = now;
        now
    }

    /// The next stamp reads the clock (the worker was idle).
    fn invalidate(&mut self) {
        self.left = 0;
        self.last = 0;
    }
}

fn work(shared: &Arc<Shared>, index: usize) {
    let mut clock = Clock::new();
    let mut ids = IdBlock::new();
    let mut turn = 0u32;
    let slot = &shared.slots[index];
    loop {
        if shared.lifecycle.get() >= PoolState::Stopping {
            return;
        }
        let task = match shared.queue.try_take(&mut turn) {
            Some(task) => task,
            None => {
                shared.notify_idle_waiters();
                if shared.lifecycle.get() != PoolState::Running {
                    if shared.drain_is_over() {
                        return;
                    }
                    continue;
                }
                clock.invalidate();
                match shared.queue.take_blocking() {
                    Some(task) => task,
                    None => return,
                }
            }
        };
        match task {
            // The hot path, kept flat: no call that is not needed.
            Task::Inline(task) => {
                shared.release_room(1);
                let started = clock.stamp(shared);
                run_top(shared, slot, index, ids.next(), started, move || {
                    task.call()
                });
            }
            Task::Plain(task) => {
                shared.release_room(1);
                let started = clock.stamp(shared);
                run_top(shared, slot, index, ids.next(), started, move || {
                    task.call()
                });
            }
            Task::Chunk(chunk) => run_chunk(shared, index, &mut clock, &mut ids, chunk),
            task => {
                let at = Site {
                    index,
                    started: clock.stamp(shared),
                    nested: false,
                };
                process(shared, at, task);
            }
        }
    }
}

/// Runs `call`, an unnamed task with no handle that worker `index` (whose
/// `slot` the caller looked up once, outside its loop) took from the queue
/// (so the slot goes from idle to it and back), and counts its end: the hot
/// path, always inlined.
#[inline(always)]
fn run_top<C: FnOnce()>(
    shared: &Shared,
    slot: &WorkerSlot,
    index: usize,
    id: TaskId,
    started: u64,
    call: C,
) {
    slot.begin_top(id, None, started);
    let guard = TopGuard(slot);
    let result = catch_unwind(AssertUnwindSafe(call));
    slot.record_end(result.is_err());
    if let Err(payload) = result {
        shared.report_panic(id, None, Some(index), payload);
    }
    drop(guard);
}

/// Where a task runs: on worker `.0`, stamped as started at `.1`; `None`
/// for a thread outside the pool (a `PendingTask` run by the program).
type At = Option<Site>;

/// A task's place on a worker.
#[derive(Clone, Copy)]
struct Site {
    index: usize,
    /// When it started (the worker's stamp).
    started: u64,
    /// Run inline inside another task (a joiner helping).
    nested: bool,
}

fn process(shared: &Shared, at: Site, task: Task) {
    match task {
        task @ (Task::Plain(_) | Task::Named(_) | Task::Inline(_)) => {
            shared.release_room(1);
            run_plain(shared, Some(at), task, None);
        }
        // Its room comes back when its cell is claimed (see `Cell::run`):
        // a dead entry (cancelled, or helped by a joiner) gave it already.
        Task::Shared(entry) => {
            if !entry.0.header().is_claimed() {
                run_shared(shared, Some(at), &entry.0);
            }
        }
        Task::Group(group) => {
            let (task, more) = group.take_next();
            if more {
                // Back to the end of the queue before running: the group's
                // next task can start on another worker, after the tasks
                // queued meanwhile.
                shared.send_token(group.clone());
            }
            if let Some(task) = task {
                run_in_group(shared, at, &group, task);
            }
        }
        // Taken apart by `work`, which stamps each of its tasks.
        Task::Chunk(_) | Task::Wake => {}
    }
}

/// Runs the tasks of a chunk taken from the queue, one by one, until it is
/// empty (other workers may be taking from it too) or the pool is
/// `Stopping` (then `shutdown_now` hands the rest back).
fn run_chunk(shared: &Shared, index: usize, clock: &mut Clock, ids: &mut IdBlock, chunk: ChunkRef) {
    // Should our own bookkeeping unwind mid-chunk, the rest goes back into
    // the queue instead of waiting for a `shutdown_now` that may never come.
    struct Requeue<'a> {
        shared: &'a Shared,
        chunk: ChunkRef,
    }
    impl Drop for Requeue<'_> {
        fn drop(&mut self) {
            if std::thread::panicking() && !self.chunk.header().is_empty() {
                self.shared
                    .queue
                    .push(Priority::Normal, Task::Chunk(self.chunk.clone()));
            }
        }
    }
    let requeue = Requeue { shared, chunk };
    let mut runner = ChunkRunner {
        shared,
        index,
        slot: &shared.slots[index],
        clock,
        ids,
        chunk: &requeue.chunk,
        until_check: 0,
    };
    requeue.chunk.run(&mut runner);
}

/// Tasks of a chunk between two looks at whether idle workers could help.
const HELP_STRIDE: u32 = 16;

/// A worker running the tasks of one chunk: what the chunk's own loop (in
/// `chunk.rs`, generic over the closure type) calls around each task, so
/// that the whole loop is compiled for that type, task call included.
pub(crate) struct ChunkRunner<'a> {
    shared: &'a Shared,
    index: usize,
    slot: &'a WorkerSlot,
    clock: &'a mut Clock,
    ids: &'a mut IdBlock,
    chunk: &'a ChunkRef,
    until_check: u32,
}

impl ChunkRunner<'_> {
    /// Whether the next task of the chunk may start: not once the pool is
    /// `Stopping`, when the rest is `shutdown_now`'s to hand back.
    #[inline]
    pub(crate) fn may_start(&self) -> bool {
        self.shared.lifecycle.get() < PoolState::Stopping
    }

    /// Runs `f`, a task just taken out of the chunk with `left` more behind
    /// it: what `run_plain` does for an unnamed task, without the box.
    #[inline]
    pub(crate) fn run<F: FnOnce()>(&mut self, left: usize, f: F) {
        let shared = self.shared;
        shared.release_room(1);
        self.offer_help(left);
        let started = self.clock.stamp(shared);
        // Never nested (a chunk is only ever run from the queue), so the
        // slot goes from idle to this task and back.
        let id = self.ids.next();
        run_top(shared, self.slot, self.index, id, started, f);
    }

    /// The chunk's last task was just taken out: the pool's register of
    /// chunks may forget it.
    #[inline]
    pub(crate) fn emptied_chunk(&self) {
        self.shared.chunks.note_emptied();
    }

    /// Runs a submitted task just taken out of the chunk, with `left` more
    /// behind it, unless its cell was claimed meanwhile (cancelled through
    /// its handle, or run by a joiner helping).
    #[inline]
    pub(crate) fn run_cell(&mut self, left: usize, entry: &SharedEntry) {
        // Its room comes back when its cell is claimed (see `Cell::run`).
        self.offer_help(left);
        if !entry.0.header().is_claimed() {
            let at = Site {
                index: self.index,
                started: self.clock.stamp(self.shared),
                nested: false,
            };
            run_shared(self.shared, Some(at), &entry.0);
        }
    }

    /// If the chunk has tasks left and nothing else is queued, puts another
    /// entry for it in the queue, so that an idle worker joins in instead
    /// of waiting for this one to finish the chunk alone. Looked at on the
    /// first task and then every few: the question is not free.
    #[inline]
    fn offer_help(&mut self, left: usize) {
        if self.until_check == 0 {
            self.until_check = HELP_STRIDE;
            let threads = self.shared.slots.len();
            if left > 0
                && threads > 1
                && self.shared.queue.is_empty()
                && self.chunk.header().add_entry(threads)
            {
                self.shared
                    .queue
                    .push(Priority::Normal, Task::Chunk(self.chunk.clone()));
            }
        }
        self.until_check -= 1;
    }
}

/// Runs a task taken from `group`'s mailbox, with the group's stop token
/// in reach of `StopToken::current` and its counts kept.
fn run_in_group(shared: &Shared, at: Site, group: &Arc<GroupInner>, task: Task) {
    struct InGroup(Option<Arc<GroupInner>>);
    impl Drop for InGroup {
        fn drop(&mut self) {
            swap_context_group(self.0.take());
        }
    }
    let _in_group = InGroup(swap_context_group(Some(group.clone())));
    match task {
        task @ (Task::Plain(_) | Task::Named(_) | Task::Inline(_)) => {
            shared.release_room(1);
            group.task_started();
            let panicked = run_plain(shared, Some(at), task, None);
            group.record_end(panicked, false);
        }
        // The cell counts its end in its group itself (see `run_shared`).
        Task::Shared(entry) => {
            if !entry.0.header().is_claimed() {
                run_shared(shared, Some(at), &entry.0);
            }
        }
        Task::Group(_) | Task::Chunk(_) | Task::Wake => {}
    }
}

fn swap_context_group(group: Option<Arc<GroupInner>>) -> Option<Arc<GroupInner>> {
    CONTEXT.with(|c| {
        let mut c = c.borrow_mut();
        match c.as_mut() {
            Some(ctx) => std::mem::replace(&mut ctx.group, group),
            None => None,
        }
    })
}

/// Runs an `execute`d task (a `Plain`, `Named` or `Inline` entry); `id`
/// is the one already given to it, if any. Returns whether it panicked.
fn run_plain(shared: &Shared, at: At, task: Task, id: Option<TaskId>) -> bool {
    match task {
        Task::Plain(task) | Task::Named(task) => {
            let id = id.or_else(|| task.id()).unwrap_or_else(TaskId::next);
            let name = task.name().cloned();
            run_call(shared, at, id, name, move || task.call())
        }
        Task::Inline(task) => {
            let id = id.unwrap_or_else(TaskId::next);
            run_call(shared, at, id, None, move || task.call())
        }
        Task::Shared(_) | Task::Group(_) | Task::Chunk(_) | Task::Wake => {
            unreachable!("only execute'd tasks run as plain ones")
        }
    }
}

/// Runs `call`, the closure of an `execute`d task with this id and name,
/// and counts its end. Returns whether it panicked.
fn run_call<C: FnOnce()>(
    shared: &Shared,
    at: At,
    id: TaskId,
    name: Option<Arc<str>>,
    call: C,
) -> bool {
    let index = at.map(|at| at.index);
    let guard = at.map(|at| SlotGuard::enter(&shared.slots[at.index], id, name.as_ref(), at));
    let result = catch_unwind(AssertUnwindSafe(call));
    // A plain task runs off the workers only as a PendingTask: returned.
    let returned = index.is_none();
    let panicked = result.is_err();
    match result {
        Ok(()) => shared.count_end(index, false, returned),
        Err(payload) => {
            shared.count_end(index, true, returned);
            shared.report_panic(id, name, index, payload);
        }
    }
    drop(guard);
    panicked
}

/// Claims and runs a submitted task, unless someone else claimed it. `at`
/// is its place on a worker of its pool; `None` for a handed-back task run
/// through its `PendingTask`.
fn run_shared(shared: &Shared, at: At, task: &Arc<dyn SharedTask>) {
    let header = task.header();
    let tally = Tally {
        shared: Some(shared),
        index: at.map(|at| at.index),
    };
    // The guards drop in reverse order: the current task is restored
    // before the slot shows the end.
    match at {
        // Taken from the queue: the slot goes from idle to this task and
        // back, with nothing to save (`TopGuard`, as for a chunk's task).
        Some(at) if !at.nested => {
            let slot = &shared.slots[at.index];
            slot.begin_top(header.id, header.name.as_ref(), at.started);
            let _idle = TopGuard(slot);
            let _current = ContextTask::enter(task.clone());
            task.run(tally, Runner::Pool);
        }
        // Helped by a joiner on a worker of its pool.
        Some(at) => {
            let slot = &shared.slots[at.index];
            let _restore = SlotGuard::enter(slot, header.id, header.name.as_ref(), at);
            let _frame = Frame::enter(Some(task.clone()), false);
            task.run(tally, Runner::Pool);
        }
        None => {
            let _frame = Frame::enter(Some(task.clone()), true);
            task.run(tally, Runner::Holder);
        }
    }
}

/// A run nested inside another on this thread (a joiner helping) or off
/// the pool's workers (a handed-back task): makes `task` the current one,
/// and says whether it runs as a handed-back task, until dropped; then
/// restores what it found, also on unwind.
struct Frame {
    outer_task: Option<Arc<dyn SharedTask>>,
    outer_elsewhere: bool,
}

impl Frame {
    fn enter(task: Option<Arc<dyn SharedTask>>, elsewhere: bool) -> Frame {
        Frame {
            outer_task: swap_context_task(task),
            outer_elsewhere: ELSEWHERE.with(|e| e.replace(elsewhere)),
        }
    }
}

impl Drop for Frame {
    fn drop(&mut self) {
        swap_context_task(self.outer_task.take());
        ELSEWHERE.with(|e| e.set(self.outer_elsewhere));
    }
}

/// Makes a submitted task the thread's current one (for
/// `StopToken::current`) and restores the outer one on drop, also when a
/// `Drop` of the task's result unwinds.
struct ContextTask {
    outer: Option<Arc<dyn SharedTask>>,
}

impl ContextTask {
    #[inline]
    fn enter(task: Arc<dyn SharedTask>) -> ContextTask {
        ContextTask {
            outer: swap_context_task(Some(task)),
        }
    }
}

impl Drop for ContextTask {
    #[inline]
    fn drop(&mut self) {
        swap_context_task(self.outer.take());
    }
}

#[inline]
fn swap_context_task(task: Option<Arc<dyn SharedTask>>) -> Option<Arc<dyn SharedTask>> {
    ManuallyDrop::into_inner(CURRENT_TASK.with(|current| current.replace(ManuallyDrop::new(task))))
}

/// Runs a queued task on the calling worker, for a joiner that would
/// otherwise wait for it (see `TaskHandle::join`).
pub(crate) fn run_inline(task: &Arc<dyn SharedTask>) {
    let Some((shared, index)) = CONTEXT.with(|c| {
        c.borrow()
            .as_ref()
            .map(|ctx| (ctx.shared.clone(), ctx.index))
    }) else {
        return;
    };
    let started = shared.nanos_since_epoch();
    let at = Site {
        index,
        started,
        nested: true,
    };
    run_shared(&shared, Some(at), task);
}

/// Runs a task handed back by `shutdown_now` on the calling thread.
pub(crate) fn run_elsewhere(shared: &Shared, task: Task, id: TaskId) {
    match task {
        task @ (Task::Plain(_) | Task::Named(_) | Task::Inline(_)) => {
            // Not the thread's task: its token is its own (which nothing
            // can raise), not the one of whatever runs around it.
            let _frame = Frame::enter(None, true);
            run_plain(shared, None, task, Some(id));
        }
        Task::Shared(entry) => {
            run_shared(shared, None, &entry.0);
        }
        Task::Group(_) | Task::Chunk(_) | Task::Wake => {}
    }
}

/// Cancels a task taken out of a cancelled group's mailbox; true if it was
/// still to run (a submitted one may have been cancelled or run already).
pub(crate) fn cancel_queued(shared: &Shared, group: &GroupInner, task: Task) -> bool {
    match task {
        task @ (Task::Plain(_) | Task::Named(_) | Task::Inline(_)) => {
            unwind::drop_quietly(task);
            shared.count_cancelled(false);
            group.record_cancelled(false);
            true
        }
        Task::Shared(entry) => match entry.0.cancel(false) {
            CancelOutcome::Cancelled { returned } => {
                cell::count_cancelled(shared, entry.0.header(), returned);
                true
            }
            CancelOutcome::Running | CancelOutcome::Finished => false,
        },
        Task::Group(_) | Task::Chunk(_) | Task::Wake => false,
    }
}

/// Cancels a task handed back by `shutdown_now` that will not run now.
pub(crate) fn cancel_returned(shared: &Shared, task: Task) {
    let cancelled = match task {
        task @ (Task::Plain(_) | Task::Named(_) | Task::Inline(_)) => {
            unwind::drop_quietly(task);
            true
        }
        Task::Shared(entry) => match entry.0.cancel(false) {
            CancelOutcome::Cancelled { returned } => {
                if let Some(group) = &entry.0.header().group {
                    group.record_cancelled(returned);
                }
                true
            }
            CancelOutcome::Running | CancelOutcome::Finished => false,
        },
        Task::Group(_) | Task::Chunk(_) | Task::Wake => false,
    };
    if cancelled {
        shared.count_cancelled(true);
    }
}
