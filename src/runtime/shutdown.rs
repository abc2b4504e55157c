//! The lifecycle: `shutdown`, `shutdown_now` and what it hands back, the
//! workers' exit and termination.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;
use std::sync::atomic::{Ordering, fence};
use std::time::Duration;

use crate::running::RunningTask;
use crate::runtime::PendingTask;
use crate::runtime::Shared;
use crate::runtime::chunk::TakeRest;
use crate::runtime::entry::{Entry, Stamp, Task};
use crate::runtime::mailbox::GroupInner;
use crate::runtime::queue::Priority;
use crate::runtime::relay::Relay;
use crate::runtime::run;
use crate::state::{PoolState, deadline_after};
use crate::unwind::call_logged;

impl Shared {
    // ----- lifecycle ----------------------------------------------------

    pub(crate) fn shutdown(&self) {
        // Inside the gate until the paused groups are queued again: a worker
        // that finds the queue empty meanwhile waits for us before it calls
        // the drain over (found by tests/groups/shutdown.rs).
        let _hold = self.gate.hold(&self.lifecycle);
        if self.lifecycle.advance(PoolState::ShuttingDown) == PoolState::Running {
            log_debug!(
                "pool {}: shutdown: intake closed, draining {} queued task(s)",
                self.id,
                self.queued()
            );
            self.close_intake();
            // A drain runs everything accepted, also what paused groups hold.
            for group in self.live_groups() {
                group.resume_for_shutdown(self);
            }
            self.send_wakes(self.workers);
        }
    }

    pub(crate) fn shutdown_now(self: &Arc<Self>) -> Vec<PendingTask> {
        self.stop_now(HandBackTo::Caller)
    }

    /// `shutdown_now` for a `ShutdownHandle` or a second signal, where no
    /// caller can receive the tasks: they go to the stash, for the
    /// program's next `shutdown_now` (or the graceful shutdown's report).
    pub(crate) fn shutdown_now_to_stash(self: &Arc<Self>) {
        let unkept = self.stop_now(HandBackTo::Stash);
        drop(unkept); // the pool was dropped: nobody can ask for them; cancel
    }

    pub(crate) fn stop_now(self: &Arc<Self>, to: HandBackTo) -> Vec<PendingTask> {
        let to_stash = to == HandBackTo::Stash;
        // Every call drains holding the stash's lock, so two calls never
        // drain at once: a call that finds a stashing call draining (the
        // relay's, for a `ShutdownHandle`) waits, then returns what that
        // one took back with the rest, as `request_shutdown_now` promises.
        // (Two drains at once split the tasks, and the stashed share
        // waited for a call that never came; test in `races.rs`:
        // the_next_shutdown_now_returns_what_a_racing_request_took_back.)
        // Going to the stash, the lock is taken before the pool can
        // terminate, so whoever looks at the stash after termination waits
        // for the tasks instead of missing them.
        let stash = to_stash.then(|| self.stash.lock());
        let first = self.lifecycle.advance(PoolState::Stopping) < PoolState::Stopping;
        if first {
            log_debug!(
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
        let mut stash = stash.unwrap_or_else(|| self.stash.lock());
        // Submitters that read `Running` before the state moved finish their
        // enqueue first; after this no task can enter the queue.
        self.gate.wait_clear();
        // Tasks an earlier, stashed call took back come first: they were
        // submitted before anything still in the queue.
        let mut pending = match stash.as_mut() {
            Some(kept) if !to_stash => std::mem::take(kept),
            _ => Vec::new(),
        };
        // The Normal level, where nearly everything is, in queue order.
        // Sized once for what is queued (each chunk counts one: a hint), so
        // a million handed-back tasks are not copied a dozen times over.
        let mut normal = Vec::with_capacity(self.queue.len());
        // Where the tasks of each chunk found in the queue end in `normal`.
        let mut chunk_ends: Vec<(u64, usize)> = Vec::new();
        for entry in self.queue.drain_level(Priority::Normal) {
            match entry {
                // Control entries: a group's tasks come from its mailbox.
                Entry::Wake | Entry::Group(_) => {}
                // A chunk's tasks come back where its entry stood, if no
                // worker has taken one of them yet (then this is the
                // chunk's own entry); otherwise this is an extra entry
                // asking for help, and the rest comes back with the chunks
                // in hand.
                Entry::Chunk(chunk) => {
                    if let Some(rest) = chunk.take_rest(TakeRest::IfUntouched) {
                        for task in rest {
                            self.hand_back_one(task, &mut normal);
                        }
                        chunk_ends.push((chunk.header().seq(), normal.len()));
                    }
                }
                Entry::Task(task) => {
                    self.hand_back_one(task, &mut normal);
                }
            }
        }
        // The rests of chunks that workers took off the queue.
        let in_hand = self.chunks.take_all_rests();
        if !in_hand.is_empty() {
            normal = self.place_in_hand(normal, &chunk_ends, in_hand);
        }
        // Each task handed back here was the pool's until now (dead entries
        // gave their room back when they were claimed).
        self.ledger.handed_back(normal.len(), None);
        // The rare ones, each source in order: the High and Low levels and
        // every group's mailbox (paused ones too: every group holding tasks
        // is in the list).
        let mut rare: Vec<Vec<PendingTask>> = Vec::new();
        for priority in [Priority::High, Priority::Low] {
            let mut level = Vec::new();
            for entry in self.queue.drain_level(priority) {
                if let Entry::Task(task) = entry {
                    self.hand_back_one(task, &mut level);
                }
            }
            self.ledger.handed_back(level.len(), None);
            rare.push(level);
        }
        for group in self.live_groups() {
            let mut tasks = Vec::new();
            self.hand_back_group(&group, &mut tasks);
            rare.push(tasks);
        }
        rare.retain(|source| !source.is_empty());
        let stashed = pending.len();
        merge_in_order(&mut pending, normal, rare, self.queue.normal_stamp());
        let taken = pending.len() - stashed;
        if let Some(kept) = stash.as_mut().filter(|_| to_stash) {
            kept.append(&mut pending);
        }
        drop(stash);
        if first {
            if to_stash {
                self.stop.request();
            }
            self.lifecycle.notify_waiters(); // a graceful drain wait moves on
        }
        self.send_wakes(self.workers);
        self.notify_idle_waiters();
        if taken > 0 {
            log_debug!(
                "pool {}: shutdown_now: handed back {taken} never-started task(s)",
                self.id
            );
        }
        pending
    }

    /// Puts the rests of chunks that workers took off the queue (`in_hand`,
    /// by number) where they were queued, among the Normal tasks `pending`
    /// that `shutdown_now` found in the queue (the chunks among them end
    /// where `chunk_ends` says).
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
    pub(crate) fn place_in_hand(
        self: &Arc<Self>,
        pending: Vec<PendingTask>,
        chunk_ends: &[(u64, usize)],
        in_hand: Vec<(u64, Vec<Task>)>,
    ) -> Vec<PendingTask> {
        let mut inserts: Vec<(usize, Vec<PendingTask>)> = Vec::new();
        for (seq, rest) in in_hand {
            let before = chunk_ends.partition_point(|&(s, _)| s < seq);
            let at = match before {
                0 => 0,
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
    pub(crate) fn hand_back_one(
        self: &Arc<Self>,
        task: Task,
        pending: &mut Vec<PendingTask>,
    ) -> bool {
        let keep = match &task {
            Task::Plain(_, _) | Task::Named(_, _) | Task::Inline(_, _) => true,
            Task::Submitted(_, entry) => entry.0.hand_back(),
        };
        if keep {
            pending.push(PendingTask::new(task, self.clone()));
        }
        keep
    }

    /// Hands back the never-started ones among `tasks` (taken out of
    /// `group`'s mailbox when it was cancelled), counting them as returned.
    pub(crate) fn hand_back_tasks(
        self: &Arc<Self>,
        group: &GroupInner,
        tasks: impl IntoIterator<Item = Task>,
    ) -> Vec<PendingTask> {
        let mut pending = Vec::new();
        for task in tasks {
            self.hand_back_one(task, &mut pending);
        }
        self.ledger.handed_back(pending.len(), Some(&group.counts));
        self.notify_idle_waiters();
        pending
    }

    /// Empties `group`'s mailbox into `pending`.
    pub(crate) fn hand_back_group(
        self: &Arc<Self>,
        group: &GroupInner,
        pending: &mut Vec<PendingTask>,
    ) {
        let returned = group
            .take_all()
            .into_iter()
            .map(|task| usize::from(self.hand_back_one(task, pending)))
            .sum();
        self.ledger.handed_back(returned, Some(&group.counts));
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

    pub(crate) fn thread_prefix(&self) -> &str {
        let first = self.slots[0].thread_name();
        first.rsplit_once('-').map_or(first, |(prefix, _)| prefix)
    }

    /// Wakes submitters blocked on a full bounded queue, to be refused.
    pub(crate) fn close_intake(&self) {
        self.ledger.wake_blocked_submitters();
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
        self.left_live(n);
    }

    /// Takes `n` off `live` (workers, or a guest: see `guest.rs`); the
    /// last one out terminates the pool.
    pub(crate) fn left_live(&self, n: usize) {
        if self.live.fetch_sub(n, Ordering::AcqRel) == n {
            self.terminate();
        }
    }

    pub(crate) fn take_on_terminated(&self) -> Option<Box<dyn FnOnce() + Send + 'static>> {
        self.hooks.on_terminated.lock().take()
    }

    pub(crate) fn terminate(&self) {
        if let Some(hook) = self.take_on_terminated() {
            call_logged(format_args!("pool {}: on_terminated", self.id), hook);
        }
        log_debug!("pool {}: terminated", self.id);
        self.lifecycle.set_terminated();
        self.notify_idle_waiters();
        // ORDERING: pairs with the fence in the relay thread (see signal.rs).
        fence(Ordering::SeqCst);
        if let Some(relay) = self.relay.get() {
            relay.ring(); // let it see the pool is gone and exit
        }
    }

    pub(crate) fn run_thread_hook(&self, edge: ThreadEdge, index: usize) {
        let (hook, which) = match edge {
            ThreadEdge::Start => (&self.hooks.on_thread_start, "start"),
            ThreadEdge::Exit => (&self.hooks.on_thread_exit, "exit"),
        };
        if let Some(hook) = hook {
            let thread = self.slots[index].thread_name();
            call_logged(format_args!("{thread}: on_thread_{which}"), || hook(index));
        }
    }

    pub(crate) fn await_termination(&self, timeout: Duration) -> bool {
        if self.lifecycle.get() == PoolState::Terminated {
            return true;
        }
        if run::is_worker_of(self.id) {
            log_warn!(
                "pool {}: await_termination called from the pool's own worker; returning false \
                 instead of deadlocking",
                self.id
            );
            return false;
        }
        self.lifecycle.wait_terminated(deadline_after(timeout))
    }

    pub(crate) fn running_tasks(&self) -> Vec<RunningTask> {
        // A task waiting for a nested run on its worker (a join helping,
        // a scope's caller) is still running: listed before the one it
        // waits for.
        let mut tasks = Vec::new();
        for slot in self.slots.iter() {
            tasks.extend(slot.waiting(self));
            tasks.extend(slot.running(self));
        }
        if let Some(Some(timer)) = self.timer.get() {
            for task in &mut tasks {
                task.over_limit = timer.over_limit(task.id);
            }
        }
        tasks
    }
}

/// Appends to `out` the Normal tasks (`normal`, in queue order) and the
/// rare ones (`rare`: the High and Low levels and the groups' mailboxes,
/// each in its own order) merged into submission order by their stamps
/// (see `entry::Stamp`): a rare task goes right before the first Normal
/// task stamped after its ticket. Merged, not sorted: each source keeps
/// its order, and a pool with only Normal tasks just moves them. `now` is
/// the queue's order counter, which every stamp compared here is at most
/// 2^31 behind.
fn merge_in_order(
    out: &mut Vec<PendingTask>,
    normal: Vec<PendingTask>,
    rare: Vec<Vec<PendingTask>>,
    now: Stamp,
) {
    if rare.is_empty() {
        if out.is_empty() {
            *out = normal;
        } else {
            out.extend(normal);
        }
        return;
    }
    let base = now.wrapping_sub(1 << 31);
    // Monotone over the stamps in flight: `now` maps to 2^31, older ones
    // below it.
    let key = |task: &PendingTask| task.stamp().wrapping_sub(base);
    let total = normal.len() + rare.iter().map(Vec::len).sum::<usize>();
    out.reserve(total);
    let mut sources: Vec<std::vec::IntoIter<PendingTask>> =
        rare.into_iter().map(Vec::into_iter).collect();
    // The head of each rare source, smallest key first (ties: the lower
    // source, High before Low before the groups, as listed).
    let mut heads: BinaryHeap<Reverse<(u32, usize)>> = BinaryHeap::new();
    let mut next: Vec<Option<PendingTask>> = Vec::with_capacity(sources.len());
    for (i, source) in sources.iter_mut().enumerate() {
        let head = source.next();
        if let Some(task) = &head {
            heads.push(Reverse((key(task), i)));
        }
        next.push(head);
    }
    let mut take_rare = |out: &mut Vec<PendingTask>, i: usize, heads: &mut BinaryHeap<_>| {
        if let Some(task) = next[i].take() {
            out.push(task);
        }
        next[i] = sources[i].next();
        if let Some(task) = &next[i] {
            heads.push(Reverse((key(task), i)));
        }
    };
    for task in normal {
        let stamp = key(&task);
        while let Some(&Reverse((ticket, i))) = heads.peek() {
            if ticket >= stamp {
                break;
            }
            heads.pop();
            take_rare(out, i, &mut heads);
        }
        out.push(task);
    }
    while let Some(Reverse((_, i))) = heads.pop() {
        take_rare(out, i, &mut heads);
    }
}

/// Where `shutdown_now` puts the tasks it takes back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum HandBackTo {
    /// The caller, as the returned `Vec`.
    Caller,
    /// The pool's stash, for the program's next `shutdown_now` (a request
    /// through a `ShutdownHandle`, where nobody can receive them).
    Stash,
}

/// Which end of a worker thread's life a hook marks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ThreadEdge {
    /// `on_thread_start`.
    Start,
    /// `on_thread_exit`.
    Exit,
}
