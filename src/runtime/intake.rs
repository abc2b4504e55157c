//! Intake: admitting tasks through the gate and the bounded queue's room,
//! and queueing them.

use std::sync::Arc;

use crate::error::{RejectReason, Rejected};
use crate::runtime::Shared;
use crate::runtime::cell::CellRef;
use crate::runtime::chunk;
use crate::runtime::entry::{Entry, Task, UNSTAMPED};
use crate::runtime::mailbox::GroupInner;
use crate::runtime::queue::Priority;
use crate::runtime::run;
use crate::state::{GatePass, WhenFull};
use crate::task::{Closure, StaticCall};

impl Shared {
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
                self.enqueue(priority, self.plain_task(name, f), pass);
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
            self.queue.push(Priority::Normal, self.plain_task(None, f));
            pass.accept();
            return Ok(());
        }
        self.execute(None, Priority::Normal, f, when_full)
    }

    pub(crate) fn submit<C: StaticCall>(
        self: &Arc<Self>,
        name: Option<Arc<str>>,
        priority: Priority,
        f: C,
        when_full: WhenFull,
    ) -> Result<CellRef<C::Output>, Rejected<C>> {
        match self.admit(when_full) {
            Ok(pass) => {
                let (cell, entry) = self.new_cell(name, f, None);
                self.enqueue(priority, Task::Submitted(UNSTAMPED, entry), pass);
                Ok(cell)
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
    pub(crate) fn pass_unbounded(&self) -> Option<GatePass<'_>> {
        if self.ledger.is_bounded() {
            return None;
        }
        self.gate.enter(&self.lifecycle, 1)
    }

    /// Admits `n` tasks at once: one pass through the gate, all their
    /// places reserved in a bounded queue, or none. Out of line: a single
    /// task comes here only from a bounded queue or a refusal.
    #[inline(never)]
    pub(crate) fn admit_many(
        &self,
        n: usize,
        when_full: WhenFull,
    ) -> Result<GatePass<'_>, RejectReason> {
        // Room first, outside the gate: a submitter waiting for room is not
        // counted as accepted meanwhile (and shutdown wakes it through the
        // bound, not the gate).
        self.ledger
            .reserve(&self.lifecycle, n, when_full, || run::is_worker_of(self.id))?;
        match self.gate.enter(&self.lifecycle, n as u64) {
            Some(pass) => Ok(pass),
            None => {
                self.ledger.unreserve(n);
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
        let size = chunk::chunk_size(tasks.len(), self.workers);
        match self.admit_many(tasks.len(), WhenFull::Wait) {
            Ok(mut pass) => {
                if size > 1 {
                    match self.measured_batch(tasks) {
                        Ok(tasks) => self.chunks.enqueue(&self.queue, chunk::calls(tasks, size)),
                        Err(tasks) => self.chunks.enqueue(&self.queue, chunk::calls(tasks, size)),
                    }
                } else {
                    for f in tasks {
                        self.queue.push(Priority::Normal, self.plain_task(None, f));
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
    ) -> Result<Vec<CellRef<T>>, Rejected<Vec<F>>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        if tasks.is_empty() {
            return Ok(Vec::new());
        }
        let size = chunk::chunk_size(tasks.len(), self.workers);
        match self.admit_many(tasks.len(), WhenFull::Wait) {
            Ok(mut pass) => {
                let mut handles = Vec::with_capacity(tasks.len());
                let cells = tasks.into_iter().map(|f| {
                    let (cell, entry) = self.new_cell(None, Closure(f), None);
                    handles.push(cell);
                    entry
                });
                if size > 1 {
                    // Made as they are queued, so the first chunks can start
                    // while the rest are made.
                    self.chunks.enqueue(&self.queue, chunk::cells(cells, size));
                } else {
                    for cell in cells {
                        self.queue
                            .push(Priority::Normal, Task::Submitted(UNSTAMPED, cell));
                    }
                }
                pass.accept();
                Ok(handles)
            }
            Err(reason) => Err(self.reject_batch(reason, tasks)),
        }
    }

    pub(crate) fn reject_batch<F>(&self, reason: RejectReason, tasks: Vec<F>) -> Rejected<Vec<F>> {
        self.ledger.rejected(tasks.len());
        Rejected::new(reason, tasks)
    }

    /// Enqueues an admitted task; the pass leaves the gate after.
    #[inline]
    pub(crate) fn enqueue(&self, priority: Priority, task: Task, mut pass: GatePass<'_>) {
        self.queue.push(priority, task);
        pass.accept();
    }

    /// Puts a group's token in the queue (the group has tasks to run).
    pub(crate) fn send_token(&self, group: Arc<GroupInner>) {
        self.queue
            .push_control(group.priority(), Entry::Group(group));
    }

    pub(crate) fn register_group(&self, group: &Arc<GroupInner>) {
        let mut groups = self.groups.lock();
        if groups.len() >= 16 && groups.len().is_power_of_two() {
            groups.retain(|g| !g.is_settled());
        }
        groups.push(group.clone());
    }

    pub(crate) fn live_groups(&self) -> Vec<Arc<GroupInner>> {
        self.groups.lock().clone()
    }

    pub(crate) fn reject<F>(&self, reason: RejectReason, f: F) -> Rejected<F> {
        self.ledger.rejected(1);
        Rejected::new(reason, f)
    }
}
