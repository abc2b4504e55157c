//! Guests: threads that are no worker of a pool, running some of its tasks
//! for a while.
//!
//! A scope's caller outside the pool runs its scope's queued tasks while
//! it waits, as a worker of the pool does
//! (`Shared::wait_scope`, `ScopedHandle::join`): so its scope finishes even
//! while every worker is busy or blocked. To run them it borrows one of the
//! pool's `GUESTS` spare slots, and with the slot a worker's standing:
//!
//! - **The slot** shows the task it runs (`running_tasks`, shutdown
//!   reports, what the task waits on) and counts its end (`stats`). The
//!   guest slots follow the workers' in `Shared::slots`, so whatever reads
//!   the slots reads them too.
//! - **The context**: while it holds the slot, the thread's `CONTEXT` is
//!   the pool's, with the slot's index. A task it runs observes the pool's
//!   stop besides its own (`StopToken::current`), and what the task does
//!   (a join, a scope of its own) sees a thread of the pool. The thread
//!   had no context before (see below), and has none after.
//! - **A place in `live`**: the pool terminates when the last of its
//!   workers and guests leaves, so `await_termination` does not return,
//!   and `on_terminated` does not run, while a guest still runs a task of
//!   the pool. A guest counts `GUEST` there; one that comes after the pool
//!   terminated (`live` zero) is turned away.
//!
//! A guest does not take work from the pool's queue (`help_own_pool_until`
//! returns at once for it): it is there for its scope, and its caller is
//! back as soon as the scope ends. At most `GUESTS` threads are guests of a
//! pool at once; a caller that finds no slot free waits while the workers
//! run its tasks.
//!
//! Only a thread that is in no pool's context becomes a guest. A worker of
//! another pool keeps its own: what keeps two pools that wait for each
//! other moving is that worker running its own pool's queue while it waits
//! (`help_own_pool_until`), also inside a task it would run as a guest (a
//! task of B, run by A's worker, joining a task queued in A). A guest's
//! context would hide that it is A's worker, and the join would deadlock.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::runtime::Shared;
use crate::runtime::run::{CONTEXT, Context};

/// How many threads can be guests of one pool at once.
pub(crate) const GUESTS: usize = 4;

/// What one guest counts in `Shared::live`: above any count of workers
/// (`Builder::MAX_THREADS` is 2^16), with room for `GUESTS` of them even in
/// a 32-bit `usize`.
pub(crate) const GUEST: usize = 1 << (usize::BITS - 8);

/// The calling thread as a guest of a pool, until dropped (see the module
/// docs).
pub(crate) struct Guest<'a> {
    shared: &'a Shared,
    index: usize,
}

impl Guest<'_> {
    /// The index of the slot it holds in `Shared::slots`.
    pub(crate) fn index(&self) -> usize {
        self.index
    }
}

impl Shared {
    /// Makes the calling thread a guest of this pool; `None` if every guest
    /// slot is lent, the pool has terminated, or the thread is a worker or
    /// guest of a pool already.
    pub(crate) fn enter_guest(self: &Arc<Shared>) -> Option<Guest<'_>> {
        if CONTEXT.with(|c| c.borrow().is_some()) {
            return None;
        }
        // ORDERING: Acquire on the swap that takes a slot, pairing with the
        // Release that gave it back: the last guest's writes to the slot
        // happen before ours.
        let free = self.lent.iter().position(|lent| {
            !lent.load(Ordering::Relaxed) && !lent.swap(true, Ordering::Acquire)
        })?;
        let mut live = self.live.load(Ordering::Relaxed);
        loop {
            if live == 0 {
                self.lent[free].store(false, Ordering::Release);
                return None;
            }
            // ORDERING: as `left_live`'s decrement (AcqRel): the counts of
            // `live` are totally ordered, so no guest joins after the last
            // one out saw zero.
            match self.live.compare_exchange_weak(
                live,
                live + GUEST,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(now) => live = now,
            }
        }
        let index = self.workers + free;
        CONTEXT.with(|c| {
            *c.borrow_mut() = Some(Context {
                shared: self.clone(),
                index,
                group: None,
            });
        });
        Some(Guest {
            shared: self,
            index,
        })
    }

    /// The workers that have not exited, without the guests.
    pub(crate) fn workers_live(&self) -> usize {
        self.live.load(Ordering::SeqCst) % GUEST
    }

    /// True if worker slot `index` is a guest's.
    pub(crate) fn is_guest(&self, index: usize) -> bool {
        index >= self.workers
    }
}

impl Drop for Guest<'_> {
    fn drop(&mut self) {
        // As for a worker's exit, the context stays until after: if this
        // is the last thread out, `on_terminated` runs here, and is seen
        // as running inside the pool.
        self.shared.left_live(GUEST);
        CONTEXT.with(|c| c.borrow_mut().take());
        // ORDERING: Release, pairing with the next guest's Acquire.
        self.shared.lent[self.index - self.shared.workers].store(false, Ordering::Release);
    }
}
