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
//! What a user sees of this (the drain runs every accepted task, the last
//! worker runs `on_terminated`) is on `ThreadPool::shutdown` and
//! `PoolState`, where it renders.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::Duration;

use crate::runtime::Shared;
use crate::runtime::chunk::{ChunkRef, ChunkRunner};
use crate::runtime::entry::{Entry, Task};
use crate::runtime::ledger::Custody;
use crate::runtime::mailbox::GroupInner;
use crate::runtime::queue::Priority;
use crate::runtime::run::{
    CONTEXT, Context, Frame, nested_at, run_in_group, run_taken, run_top, worker_here,
};
use crate::runtime::shutdown::ThreadEdge;
use crate::runtime::slot::{Clock, Previous, Site, WorkerSlot};
use crate::state::PoolState;
use crate::sync::{CATCH_UP_GAP_NANOS, Streak, pause_for};
use crate::task::IdBlock;
use crate::unwind;

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
    log_debug!("{}: started", shared.slots[index].thread_name());
    shared.run_thread_hook(ThreadEdge::Start, index);
    // Tasks run under their own `catch_unwind`; this one is for the pool's
    // bookkeeping around them (or a `Drop` of a task's result), caught once
    // for the whole loop rather than once per task: a panic there is logged
    // and the loop starts again, so the worker never dies with the pool
    // still counting on it.
    while let Err(payload) = catch_unwind(AssertUnwindSafe(|| work(&shared, index))) {
        log_error!(
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
    shared.run_thread_hook(ThreadEdge::Exit, index);
    log_debug!("{}: exiting", shared.slots[index].thread_name());
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

fn work(shared: &Arc<Shared>, index: usize) {
    let mut clock = Clock::new();
    let mut ids = IdBlock::new();
    let mut turn = 0u32;
    let mut streak = Streak::default();
    let slot = &shared.slots[index];
    loop {
        if shared.lifecycle.get() >= PoolState::Stopping {
            return;
        }
        let mut taken = shared.queue.try_take(&mut turn);
        if taken.is_none() && streak.caught_up() {
            // Let the producer get ahead (see `Streak`).
            pause_for(CATCH_UP_GAP_NANOS);
            taken = shared.queue.try_take(&mut turn);
        }
        let entry = match taken {
            Some(entry) => entry,
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
                    Some(entry) => entry,
                    None => return,
                }
            }
        };
        streak.took();
        match entry {
            // The hot path, kept flat: no call that is not needed.
            Entry::Task(Task::Inline(_, task)) => {
                shared.ledger.started(Custody::Pool, None);
                let started = clock.stamp(shared);
                run_top(shared, slot, index, ids.next(), started, move || {
                    task.call()
                });
            }
            Entry::Task(Task::Plain(_, task)) => {
                shared.ledger.started(Custody::Pool, None);
                let started = clock.stamp(shared);
                run_top(shared, slot, index, ids.next(), started, move || {
                    task.call()
                });
            }
            Entry::Task(task) => {
                let at = Site {
                    index,
                    started: clock.stamp(shared),
                    nested: false,
                };
                run_taken(shared, at, task, None);
            }
            Entry::Group(group) if group.scope().is_some() => {
                shared.take_scope_turn(&group, || Site {
                    index,
                    started: clock.stamp(shared),
                    nested: false,
                });
            }
            Entry::Group(group) => {
                let at = Site {
                    index,
                    started: clock.stamp(shared),
                    nested: false,
                };
                take_group_turn(shared, at, group);
            }
            Entry::Chunk(chunk) => run_chunk(shared, index, &mut clock, &mut ids, chunk),
            // Only wakes an idle worker; the loop looks at the state again.
            Entry::Wake => {}
        }
    }
}

/// The shortest and longest naps of `help_own_pool_until` between two
/// looks at what it waits for, when its own queue is empty.
const NAP_MIN: Duration = Duration::from_micros(20);
const NAP_MAX: Duration = Duration::from_millis(1);

/// Called by a task that waits for work of *another* pool (a join of its
/// task, a scope opened on it): until `done()`, runs its own pool's queued
/// work on this worker, nested in the waiting task, as rayon's worker does
/// while it waits for another pool. So two pools whose tasks wait for each
/// other's cannot deadlock: a worker that waits keeps its own queue moving
/// (pool A's task waits for pool B's, which waits for one queued in A: A's
/// waiting worker runs it).
///
/// It returns at once on a thread that is no pool's worker (nor for a
/// guest of a pool: `guest.rs`), and once its pool is stopping; the
/// caller then waits as usual. (While the pool drains it goes on: the
/// drain runs everything. A wake-up entry it takes is meant for a worker
/// deciding whether to exit: it is passed on, and the loop naps before it
/// looks again.)
///
/// No lost wake-up, by construction: nothing wakes this loop but its own
/// queue. When that is empty it naps in the queue for at most `NAP_MAX`
/// (doubling from `NAP_MIN`) and looks at `done()` again, so the end of
/// what it waits for is seen within `NAP_MAX`; new work of its own pool
/// wakes it at once.
pub(crate) fn help_own_pool_until(done: &dyn Fn() -> bool) {
    let Some((shared, index)) = worker_here() else {
        return;
    };
    if shared.is_guest(index) {
        // There for its scope only (see `guest.rs`).
        return;
    }
    let mut clock = Clock::new();
    let mut ids = IdBlock::new();
    let mut turn = 0u32;
    let mut nap = NAP_MIN;
    while !done() {
        if shared.lifecycle.get() >= PoolState::Stopping {
            return;
        }
        let entry = match shared.queue.try_take(&mut turn) {
            Some(entry) => entry,
            None => match shared.queue.take_timeout(nap) {
                Some(entry) => entry,
                None => {
                    nap = (nap * 2).min(NAP_MAX);
                    continue;
                }
            },
        };
        if let Entry::Wake = entry {
            shared.queue.push_wake();
            std::thread::sleep(nap);
            nap = (nap * 2).min(NAP_MAX);
            continue;
        }
        nap = NAP_MIN;
        run_nested(&shared, index, &mut clock, &mut ids, entry);
    }
}

/// Runs an entry taken from the queue by a worker that is in the middle of
/// a task (see `help_own_pool_until`): the slot shows the inner task and
/// then the outer one again, and the inner one's `StopToken::current` is
/// its own.
fn run_nested(shared: &Shared, index: usize, clock: &mut Clock, ids: &mut IdBlock, entry: Entry) {
    let _frame = Frame::enter(None, Custody::Pool);
    let at = nested_at(shared, index);
    match entry {
        Entry::Task(task) => run_taken(shared, at, task, None),
        Entry::Group(group) if group.scope().is_some() => {
            shared.take_scope_turn(&group, || nested_at(shared, index));
        }
        Entry::Group(group) => take_group_turn(shared, at, group),
        Entry::Chunk(chunk) => {
            // A chunk's runs leave the slot idle after each task: put back
            // what it showed (the waiting task) afterwards.
            struct Restore<'a>(&'a WorkerSlot, Option<Previous>);
            impl Drop for Restore<'_> {
                fn drop(&mut self) {
                    if let Some(previous) = self.1.take() {
                        self.0.end(previous);
                    }
                }
            }
            let slot = &shared.slots[index];
            let _restore = Restore(slot, Some(slot.save()));
            run_chunk(shared, index, clock, ids, chunk);
        }
        Entry::Wake => {}
    }
}

/// A worker took `group`'s token: runs the group's next task.
fn take_group_turn(shared: &Shared, at: Site, group: Arc<GroupInner>) {
    let (task, more) = group.take_next();
    if more {
        // Back to the end of the queue before running: the group's next
        // task can start on another worker, after the tasks queued
        // meanwhile.
        shared.send_token(group.clone());
    }
    if let Some(task) = task {
        run_in_group(shared, at, &group, task);
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
                    .push_control(Priority::Normal, Entry::Chunk(self.chunk.clone()));
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
