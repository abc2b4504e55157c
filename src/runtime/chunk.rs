//! Batch chunks: a large batch enters the queue as a few entries that each
//! hold many tasks, instead of one entry per task.
//!
//! `execute_batch` of a million tasks would otherwise pay a queue push
//! and a queue take per task, and the two workers would fight over
//! the queue's head for every one of them. A chunk is one queue entry for
//! up to [`MAX_CHUNK`] tasks of one batch, in the order given; a worker that
//! takes it runs its tasks one by one, each with the bookkeeping of a plain
//! task (its own id, slot record, `catch_unwind`, end count).
//!
//! # What must still hold, and how
//!
//! - **`shutdown_now` hands back every task that never started, once, in
//!   order.** A chunk's queued tasks (its *rest*) sit behind the
//!   chunk's own lock; a worker takes one task at a time under it and runs
//!   it after letting go, and `shutdown_now` takes the whole rest under it.
//!   So each task is either started by a worker or handed back, never both.
//!   Every chunk with a rest is also kept in the pool's [`Chunks`] register,
//!   so `shutdown_now` reaches the rest of a chunk a worker is in the middle
//!   of, not only the chunks still queued. A chunk still in the queue comes
//!   back where its entry stood; the rests of chunks already in workers'
//!   hands come first (they were taken off the head of the queue before
//!   anything still in it), in the order they were queued. A worker checks
//!   the pool's state before each task of a chunk and leaves the rest alone
//!   once the pool is `Stopping`.
//! - **Load balance.** Chunks are small next to the batch ([`chunk_size`]:
//!   at most a quarter of a worker's share, at most [`MAX_CHUNK`]). And a
//!   worker that takes a task from a chunk while the queue is otherwise
//!   empty puts a second entry for the same chunk in the queue (at most one
//!   per worker thread), so an idle worker joins in on the rest instead of
//!   waiting for the holder to finish it alone.
//! - **Counting.** Bounded queues, `stats()`, `wait_idle` and
//!   `running_tasks` count tasks, not entries: a task leaves the bounded
//!   queue's room when a worker takes it out of its chunk (or `shutdown_now`
//!   hands it back), and each runs with its own slot record and end count.
//!
//! Batches of few tasks per worker are not chunked at all: each task is its
//! own queue entry, as with `execute`.

use std::mem;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use parking_lot::Mutex;

use crate::runtime::Shared;
use crate::runtime::cell::CellEntry;
use crate::runtime::entry::{self, Entry, Stamp, Task, UNSTAMPED};
use crate::runtime::ledger::Custody;
use crate::runtime::queue::{Priority, Queue};
use crate::runtime::run::{run_shared, run_top};
use crate::runtime::slot::{Clock, Site, WorkerSlot};
use crate::span::{self, SubmitSpan};
use crate::state::PoolState;
use crate::task::IdBlock;
use crate::unwind;

/// The most tasks in one chunk.
///
/// Large enough that the entry's cost (an allocation, a queue push and
/// receive, the register) is small per task; small enough that a High
/// priority task waits for at most this many tasks of a worker's chunk.
pub(crate) const MAX_CHUNK: usize = 128;

/// How many tasks of a batch of `tasks` go in one chunk on a pool of
/// `threads` workers; 1 means "do not chunk".
pub(crate) fn chunk_size(tasks: usize, threads: usize) -> usize {
    (tasks / (threads.max(1) * 4)).clamp(1, MAX_CHUNK)
}

/// When `take_rest` takes a chunk's rest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TakeRest {
    /// Only if no worker has started one of its tasks: `shutdown_now`
    /// meeting the chunk's own entry in the queue, whose rest then comes
    /// back where that entry stood.
    IfUntouched,
    /// Whatever is left (the chunks in workers' hands).
    Always,
}

/// A chunk as the queue, the register and the workers see it.
pub(crate) type ChunkRef = Arc<dyn ChunkTasks>;

/// A chunk's tasks, whatever their closure type.
pub(crate) trait ChunkTasks: Send + Sync {
    /// Runs the chunk's tasks on the worker of `runner`, one at a time,
    /// each taken out under the chunk's lock and run after letting go of
    /// it, until none is left or the runner may not start another.
    fn run(&self, runner: &mut ChunkRunner<'_>);

    /// Takes every task that never started, as plain queue entries in
    /// order; with `TakeRest::IfUntouched`, only if no worker has taken a
    /// task from the chunk yet (`None` otherwise).
    fn take_rest(&self, which: TakeRest) -> Option<Vec<Task>>;

    /// The counters outside the lock.
    fn header(&self) -> &ChunkHeader;
}

/// What every chunk has outside its lock.
pub(crate) struct ChunkHeader {
    /// Its place among the pool's chunks: they are numbered in the order
    /// they are queued.
    seq: u64,
    /// The place of its tasks in submission order (see `entry::Stamp`).
    stamp: Stamp,
    /// Tasks still queued. Only ever goes down, and is 0 for good once
    /// it reads 0 (so a stale read is safe for pruning the register).
    left: AtomicUsize,
    /// Queue entries ever made for this chunk (its own, and the extra ones
    /// asking idle workers to help).
    entries: AtomicUsize,
    /// The submitter's span, entered while a worker runs the chunk's tasks
    /// (feature `tracing`; zero-sized without it).
    span: SubmitSpan,
}

impl ChunkHeader {
    fn new(seq: u64, stamp: Stamp, left: usize) -> ChunkHeader {
        ChunkHeader {
            seq,
            stamp,
            left: AtomicUsize::new(left),
            entries: AtomicUsize::new(1),
            span: span::current(),
        }
    }

    /// Its number, in the order chunks were queued.
    pub(crate) fn seq(&self) -> u64 {
        self.seq
    }

    /// No task left to start. A hint outside the lock, but a true one when
    /// it says so.
    pub(crate) fn is_empty(&self) -> bool {
        // ORDERING: Relaxed: `left` is written under the chunk's lock and
        // only goes down, so a read of 0 is final; a stale non-zero read
        // only makes the caller look under the lock.
        self.left.load(Ordering::Relaxed) == 0
    }

    /// Counts one more queue entry for the chunk if it has fewer than
    /// `limit`; true if the caller may make it.
    pub(crate) fn add_entry(&self, limit: usize) -> bool {
        // ORDERING: Relaxed: a bound on extra entries, ordering nothing.
        self.entries
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n < limit).then_some(n + 1)
            })
            .is_ok()
    }
}

/// What a chunk can hold: the tasks of one batch form.
pub(crate) trait Item: Send + 'static {
    /// Runs the task on the runner's worker; `left` tasks follow it.
    fn run(self, runner: &mut ChunkRunner<'_>, left: usize);
    /// The task as a queue entry of its own, to hand back.
    fn into_task(self) -> Task;
}

/// An `execute_batch`ed closure.
pub(crate) struct Executed<F>(F);

impl<F: FnOnce() + Send + 'static> Item for Executed<F> {
    #[inline]
    fn run(self, runner: &mut ChunkRunner<'_>, left: usize) {
        runner.run(left, self.0);
    }

    fn into_task(self) -> Task {
        entry::plain(None, self.0)
    }
}

/// A `submit_batch`ed task: its cell, shared with its handle.
impl Item for CellEntry {
    #[inline]
    fn run(self, runner: &mut ChunkRunner<'_>, left: usize) {
        runner.run_cell(left, &self);
    }

    fn into_task(self) -> Task {
        Task::Submitted(UNSTAMPED, self)
    }
}

/// A chunk of tasks of one type.
///
/// Aligned to its own cache lines: chunks of one batch are allocated one
/// after the other, and two workers each taking tasks from neighbouring
/// chunks must not share the line of their locks (measured: unaligned, a
/// batch of tiny tasks took about 1.5 times the cycles per task).
#[repr(align(128))]
struct Chunk<T> {
    header: ChunkHeader,
    rest: Mutex<Rest<T>>,
}

struct Rest<T> {
    tasks: std::vec::IntoIter<T>,
    /// A worker has taken a task from it.
    touched: bool,
}

impl<T> Rest<T> {
    /// Takes the next task, updating `left`.
    #[inline]
    fn pop(&mut self, header: &ChunkHeader) -> Option<(T, usize)> {
        let task = self.tasks.next()?;
        self.touched = true;
        let left = self.tasks.len();
        if left == 0 {
            // Free the buffer now: the register may hold the chunk a while.
            self.tasks = Vec::new().into_iter();
        }
        header.left.store(left, Ordering::Relaxed);
        Some((task, left))
    }

    fn take_all(&mut self, header: &ChunkHeader) -> Vec<T> {
        header.left.store(0, Ordering::Relaxed);
        mem::replace(&mut self.tasks, Vec::new().into_iter()).collect()
    }
}

impl<T: Item> ChunkTasks for Chunk<T> {
    fn run(&self, runner: &mut ChunkRunner<'_>) {
        span::in_span(&self.header.span, || {
            while runner.may_start() {
                // The guard is a temporary: the lock is released before the
                // task runs.
                let Some((task, left)) = self.rest.lock().pop(&self.header) else {
                    return;
                };
                if left == 0 {
                    runner.emptied_chunk();
                }
                task.run(runner, left);
            }
        });
    }

    fn take_rest(&self, which: TakeRest) -> Option<Vec<Task>> {
        let tasks = {
            let mut rest = self.rest.lock();
            if which == TakeRest::IfUntouched && rest.touched {
                return None;
            }
            rest.take_all(&self.header)
        };
        let stamp = self.header.stamp;
        Some(
            tasks
                .into_iter()
                .map(|task| task.into_task().stamped(stamp))
                .collect(),
        )
    }

    fn header(&self) -> &ChunkHeader {
        &self.header
    }
}

/// Cuts `tasks` into parts of `size`, in order.
fn split<T: Item>(tasks: impl Iterator<Item = T>, size: usize) -> impl Iterator<Item = Vec<T>> {
    let mut tasks = tasks.peekable();
    std::iter::from_fn(move || {
        tasks.peek()?;
        Some(tasks.by_ref().take(size).collect())
    })
}

/// The closures of an `execute_batch`, in parts of `size`, in order.
pub(crate) fn calls<F: FnOnce() + Send + 'static>(
    tasks: Vec<F>,
    size: usize,
) -> impl Iterator<Item = Vec<impl Item>> {
    split(tasks.into_iter().map(Executed), size)
}

/// The cells of a `submit_batch`, in parts of `size`, in order.
pub(crate) fn cells(
    cells: impl Iterator<Item = CellEntry>,
    size: usize,
) -> impl Iterator<Item = Vec<impl Item>> {
    split(cells, size)
}

/// The pool's register of chunks that may still hold tasks, in the order
/// they were queued: how `shutdown_now` reaches the rest of a chunk a
/// worker is running.
pub(crate) struct Chunks {
    inner: Mutex<Register>,
    /// Chunks emptied by workers since the register was last pruned.
    emptied: AtomicUsize,
}

struct Register {
    /// In the order they were queued, which is the order of their numbers.
    live: Vec<ChunkRef>,
    /// The number of the next chunk.
    next_seq: u64,
    /// Prune emptied chunks when `live` reaches this length.
    prune_at: usize,
}

impl Register {
    /// Forgets the chunks with no task left.
    fn prune(&mut self) {
        self.live.retain(|c| !c.header().is_empty());
        self.prune_at = (self.live.len() * 2).max(Chunks::PRUNE_FLOOR);
    }
}

impl Chunks {
    const PRUNE_FLOOR: usize = 64;

    pub(crate) fn new() -> Chunks {
        Chunks {
            inner: Mutex::new(Register {
                live: Vec::new(),
                next_seq: 0,
                prune_at: Chunks::PRUNE_FLOOR,
            }),
            emptied: AtomicUsize::new(0),
        }
    }

    /// A worker took the last task out of a chunk. Once half the register
    /// may be empty chunks, prunes it, if its lock is free (a batch being
    /// queued holds it; then a later call does it): so a pool that ran a
    /// large batch does not keep its chunks' shells until the next one.
    pub(crate) fn note_emptied(&self) {
        // ORDERING: Relaxed: a heuristic count; pruning looks at each chunk.
        let emptied = self.emptied.fetch_add(1, Ordering::Relaxed) + 1;
        if emptied < Chunks::PRUNE_FLOOR {
            return;
        }
        if let Some(mut register) = self.inner.try_lock() {
            if emptied * 2 >= register.live.len() {
                self.emptied.store(0, Ordering::Relaxed);
                register.prune();
            }
        }
    }

    /// Makes a chunk of each part, registers and queues them, in order.
    /// Under the register's lock, so that chunks are numbered, registered
    /// and queued in one order, also when two batches are queued at once.
    pub(crate) fn enqueue<T: Item>(&self, queue: &Queue, parts: impl Iterator<Item = Vec<T>>) {
        let mut register = self.inner.lock();
        if register.live.len() >= register.prune_at {
            register.prune();
        }
        for part in parts {
            let seq = register.next_seq;
            register.next_seq += 1;
            let chunk: ChunkRef = Arc::new(Chunk {
                header: ChunkHeader::new(seq, queue.normal_stamp(), part.len()),
                rest: Mutex::new(Rest {
                    tasks: part.into_iter(),
                    touched: false,
                }),
            });
            register.live.push(chunk.clone());
            queue.push_control(Priority::Normal, Entry::Chunk(chunk));
        }
    }

    /// Takes the rest of every registered chunk, with its number, in
    /// order, and forgets them all: for `shutdown_now`, after it has
    /// emptied the queue (so what is left was taken off it by workers) and
    /// when no batch can be queued any more.
    pub(crate) fn take_all_rests(&self) -> Vec<(u64, Vec<Task>)> {
        let live = mem::take(&mut self.inner.lock().live);
        live.into_iter()
            .filter(|chunk| !chunk.header().is_empty())
            .filter_map(|chunk| Some((chunk.header().seq(), chunk.take_rest(TakeRest::Always)?)))
            .filter(|(_, rest)| !rest.is_empty())
            .collect()
    }
}

impl Drop for Chunks {
    fn drop(&mut self) {
        // Only with tasks left if the pool is dropped without its workers
        // ever running them (a failed build): their Drop is user code.
        for (_, rest) in self.take_all_rests() {
            rest.into_iter().for_each(unwind::drop_quietly);
        }
    }
}

/// Tasks of a chunk between two looks at whether idle workers could help.
const HELP_STRIDE: u32 = 16;

/// A worker running the tasks of one chunk: what the chunk's own loop (in
/// `chunk.rs`, generic over the closure type) calls around each task, so
/// that the whole loop is compiled for that type, task call included.
pub(crate) struct ChunkRunner<'a> {
    pub(crate) shared: &'a Shared,
    pub(crate) index: usize,
    pub(crate) slot: &'a WorkerSlot,
    pub(crate) clock: &'a mut Clock,
    pub(crate) ids: &'a mut IdBlock,
    pub(crate) chunk: &'a ChunkRef,
    pub(crate) until_check: u32,
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
        shared.ledger.started(Custody::Pool, None);
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
    pub(crate) fn run_cell(&mut self, left: usize, entry: &CellEntry) {
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
            let threads = self.shared.workers;
            if left > 0
                && threads > 1
                && self.shared.queue.is_empty()
                && self.chunk.header().add_entry(threads)
            {
                self.shared
                    .queue
                    .push_control(Priority::Normal, Entry::Chunk(self.chunk.clone()));
            }
        }
        self.until_check -= 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noop() {}

    #[test]
    fn the_register_forgets_emptied_chunks() {
        let queue = Queue::new();
        let chunks = Chunks::new();
        chunks.enqueue(&queue, calls(vec![noop as fn(); 2000], 2));
        assert_eq!(chunks.inner.lock().live.len(), 1000);
        while let Some(task) = queue.drain_one() {
            let Entry::Chunk(chunk) = task else {
                panic!("only chunks were queued")
            };
            assert_eq!(
                chunk.take_rest(TakeRest::Always).map(|rest| rest.len()),
                Some(2)
            );
            chunks.note_emptied();
        }
        assert!(chunks.inner.lock().live.len() < Chunks::PRUNE_FLOOR);
        assert!(chunks.take_all_rests().is_empty());
    }

    #[test]
    fn chunks_are_numbered_and_handed_back_in_queue_order() {
        let queue = Queue::new();
        let chunks = Chunks::new();
        chunks.enqueue(&queue, calls(vec![noop as fn(); 10], 4));
        chunks.enqueue(&queue, calls(vec![noop as fn(); 3], 4));
        let rests = chunks.take_all_rests();
        let seqs: Vec<u64> = rests.iter().map(|(seq, _)| *seq).collect();
        let sizes: Vec<usize> = rests.iter().map(|(_, rest)| rest.len()).collect();
        assert_eq!(seqs, [0, 1, 2, 3]);
        assert_eq!(sizes, [4, 4, 2, 3]);
        // Their entries are still queued, now empty.
        let mut entries = 0;
        while let Some(task) = queue.drain_one() {
            let Entry::Chunk(chunk) = task else {
                panic!("only chunks were queued")
            };
            assert!(chunk.header().is_empty());
            entries += 1;
        }
        assert_eq!(entries, 4);
    }

    #[test]
    fn chunk_sizes() {
        assert_eq!(chunk_size(1, 2), 1);
        assert_eq!(chunk_size(15, 2), 1);
        assert_eq!(chunk_size(64, 2), 8);
        assert_eq!(chunk_size(64, 1), 16);
        assert_eq!(chunk_size(1_000_000, 2), MAX_CHUNK);
        assert_eq!(chunk_size(100, 0), 25);
    }
}
