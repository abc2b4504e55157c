//! A group's mailbox: its queued tasks in submission order, its pause and
//! cancel flags, its counts, and the token that stands for it in the pool's
//! queue (the group's *turn*, as the `TaskGroup` docs call it, where how
//! a group queues its tasks renders).

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use parking_lot::Mutex;

use crate::error::{RejectReason, Rejected};
use crate::runtime::Shared;
use crate::runtime::cell::CellRef;
use crate::runtime::entry::{Task, UNSTAMPED};
use crate::runtime::ledger::GroupCounts;
use crate::runtime::metrics::Recorder;
use crate::runtime::queue::Priority;
use crate::runtime::run;
use crate::runtime::scope::ScopeState;
use crate::state::{GatePass, WhenFull};
use crate::stop::StopState;
use crate::task::StaticCall;

/// What a group's tasks, its handles and the pool share.
pub(crate) struct GroupInner {
    pub(crate) name: Arc<str>,
    /// A `Priority` as its discriminant.
    pub(crate) priority: AtomicU8,
    pub(crate) mailbox: Mutex<Mailbox>,
    pub(crate) stop: Arc<StopState>,
    /// Its counts (the ledger's to change) and their waiters.
    pub(crate) counts: GroupCounts,
    /// Set for a scope's group (see `runtime/scope.rs`).
    scope: Option<ScopeState>,
    /// Its timing metrics, if the pool records them (never a scope's).
    pub(crate) metrics: Option<Recorder>,
}

pub(crate) struct Mailbox {
    pub(crate) tasks: VecDeque<Task>,
    pub(crate) paused: bool,
    pub(crate) cancelled: bool,
    /// The group's token is in the pool's queue (or in a worker's hand).
    /// Invariant: tasks non-empty and not paused implies scheduled.
    pub(crate) scheduled: bool,
}

impl GroupInner {
    /// A task group; `metrics`: the pool records timing metrics.
    pub(crate) fn new(name: String, metrics: bool) -> GroupInner {
        GroupInner {
            metrics: metrics.then(Recorder::new),
            ..GroupInner::with_scope(name, None)
        }
    }

    /// The group of a scope; `inside`: opened by a task of the pool, on
    /// one of its workers.
    pub(crate) fn new_scope(inside: bool) -> GroupInner {
        GroupInner::with_scope(String::from("scope"), Some(ScopeState::new(inside)))
    }

    fn with_scope(name: String, scope: Option<ScopeState>) -> GroupInner {
        GroupInner {
            name: Arc::from(name),
            priority: AtomicU8::new(Priority::Normal as u8),
            mailbox: Mutex::new(Mailbox {
                tasks: VecDeque::new(),
                paused: false,
                cancelled: false,
                scheduled: false,
            }),
            stop: StopState::new(),
            counts: GroupCounts::new(),
            scope,
            metrics: None,
        }
    }

    /// What the group has of a scope, if it is one.
    #[inline]
    pub(crate) fn scope(&self) -> Option<&ScopeState> {
        self.scope.as_ref()
    }

    pub(crate) fn priority(&self) -> Priority {
        match self.priority.load(Ordering::Relaxed) {
            0 => Priority::High,
            1 => Priority::Normal,
            _ => Priority::Low,
        }
    }

    pub(crate) fn stop_state(&self) -> &Arc<StopState> {
        &self.stop
    }

    /// Takes the first task for a worker that took the group's token; the
    /// second value says whether the token must go back into the queue.
    pub(crate) fn take_next(&self) -> (Option<Task>, bool) {
        let mut mailbox = self.mailbox.lock();
        if mailbox.paused || mailbox.tasks.is_empty() {
            mailbox.scheduled = false;
            return (None, false);
        }
        let task = mailbox.tasks.pop_front();
        let more = !mailbox.tasks.is_empty();
        mailbox.scheduled = more;
        (task, more)
    }

    /// Marks the group cancelled, raises its stop, and takes every queued
    /// task out of its mailbox (for the caller to cancel or hand back).
    pub(crate) fn close(&self) -> VecDeque<Task> {
        let tasks = {
            let mut mailbox = self.mailbox.lock();
            mailbox.cancelled = true;
            // A queued token of ours stays; the worker that takes it finds
            // the mailbox empty and skips it.
            std::mem::take(&mut mailbox.tasks)
        };
        // Callbacks are user code: not under our lock.
        self.stop.request();
        tasks
    }

    /// Every task still in the mailbox, for `shutdown_now`.
    pub(crate) fn take_all(&self) -> VecDeque<Task> {
        let mut mailbox = self.mailbox.lock();
        mailbox.scheduled = false;
        std::mem::take(&mut mailbox.tasks)
    }

    /// True when the pool no longer needs to keep the group: nothing queued,
    /// nothing running, and no handle on it but the pool's.
    pub(crate) fn is_settled(self: &Arc<Self>) -> bool {
        Arc::strong_count(self) == 1
            && self.counts.running() == 0
            && self.mailbox.lock().tasks.is_empty()
    }

    /// Unpauses; true if the group's token must be sent.
    pub(crate) fn unpause(&self) -> bool {
        let mut mailbox = self.mailbox.lock();
        mailbox.paused = false;
        let send = !mailbox.tasks.is_empty() && !mailbox.scheduled;
        mailbox.scheduled |= send;
        send
    }

    /// `shutdown` resumes paused groups so the drain runs everything.
    pub(crate) fn resume_for_shutdown(self: &Arc<Self>, shared: &Shared) {
        if self.unpause() {
            shared.send_token(self.clone());
        }
    }
}

impl Shared {
    /// Cancels `group` (a task group's or a scope's): its queued tasks
    /// never start (their closures are dropped now, their handles resolve
    /// as cancelled), later submissions are refused, and its stop token
    /// fires, which its running tasks observe (and which cancels the
    /// scopes opened inside them). Returns how many queued tasks it
    /// dropped; a dead entry (cancelled through its handle) gave its room
    /// back already, and is not counted.
    pub(crate) fn cancel_group(&self, group: &Arc<GroupInner>) -> usize {
        if let Some(scope) = group.scope() {
            return self.close_scope(group, scope);
        }
        let tasks = group.close();
        let taken = tasks.len();
        let dropped = tasks
            .into_iter()
            .map(|task| usize::from(run::cancel_queued(self, group, task)))
            .sum();
        if taken > 0 {
            log_debug!(
                "group {}: cancelled, {dropped} queued task(s) dropped",
                group.name
            );
        }
        dropped
    }

    /// `execute` into `group`'s mailbox.
    pub(crate) fn execute_in_group<F>(
        &self,
        group: &Arc<GroupInner>,
        name: Option<Arc<str>>,
        f: F,
        when_full: WhenFull,
    ) -> Result<(), Rejected<F>>
    where
        F: FnOnce() + Send + 'static,
    {
        self.enqueue_in_group(group, || self.admit(when_full), PlainMaker { name, f })
            .map_err(|(reason, maker)| self.reject(reason, maker.f))
    }

    /// `submit` into `group`'s mailbox; the cell is the handle's to wrap.
    pub(crate) fn submit_in_group<C: StaticCall>(
        &self,
        group: &Arc<GroupInner>,
        name: Option<Arc<str>>,
        call: C,
        when_full: WhenFull,
    ) -> Result<CellRef<C::Output>, Rejected<C>> {
        let maker = CellMaker {
            name,
            call,
            group: group.clone(),
        };
        self.enqueue_in_group(group, || self.admit(when_full), maker)
            .map_err(|(reason, maker)| self.reject(reason, maker.call))
    }

    /// Admits a task into the pool (through `admit`) and `group`'s
    /// mailbox; the maker builds the entry once admitted, so a refused task
    /// is handed back as it came.
    pub(crate) fn enqueue_in_group<'a, M: MakeTask>(
        &'a self,
        group: &Arc<GroupInner>,
        admit: impl FnOnce() -> Result<GatePass<'a>, RejectReason>,
        maker: M,
    ) -> Result<M::Made, (RejectReason, M)> {
        let mut pass = match admit() {
            Ok(pass) => pass,
            Err(reason) => return Err((reason, maker)),
        };
        let (made, send_token) = {
            let mut mailbox = group.mailbox.lock();
            if mailbox.cancelled {
                drop(mailbox);
                self.ledger.unreserve(1);
                drop(pass);
                self.notify_idle_waiters();
                return Err((RejectReason::Cancelled, maker));
            }
            let (task, made) = maker.make(self);
            if group.scope().is_none() {
                // The ticket under the mailbox lock: a mailbox is in
                // ticket order, which `shutdown_now`'s merge relies on.
                mailbox.tasks.push_back(task.stamped(self.queue.ticket()));
                self.ledger.accepted_in(&group.counts);
            } else {
                // A scope's tasks are never handed back (no ticket), and a
                // scope counts nothing.
                mailbox.tasks.push_back(task);
            }
            let send = !mailbox.paused && !mailbox.scheduled;
            mailbox.scheduled |= send;
            (made, send)
        };
        if send_token {
            self.send_token(group.clone());
        }
        pass.accept();
        Ok(made)
    }
}

/// Builds a queue entry once the task is admitted.
pub(crate) trait MakeTask {
    type Made;
    fn make(self, shared: &Shared) -> (Task, Self::Made);
}

struct PlainMaker<F> {
    name: Option<Arc<str>>,
    f: F,
}

impl<F: FnOnce() + Send + 'static> MakeTask for PlainMaker<F> {
    type Made = ();
    fn make(self, shared: &Shared) -> (Task, ()) {
        (shared.plain_task(self.name, self.f), ())
    }
}

struct CellMaker<C> {
    name: Option<Arc<str>>,
    call: C,
    group: Arc<GroupInner>,
}

impl<C: StaticCall> MakeTask for CellMaker<C> {
    type Made = CellRef<C::Output>;
    fn make(self, shared: &Shared) -> (Task, Self::Made) {
        let (cell, entry) = shared.new_cell(self.name, self.call, Some(self.group));
        (Task::Submitted(UNSTAMPED, entry), cell)
    }
}
