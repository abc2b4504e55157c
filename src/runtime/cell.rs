//! A submitted task's cell: the closure until someone claims it, then the
//! result, shared by the queue entry, the workers and the task's handle.
//!
//! The claim is one read-modify-write of the cell's flag byte (setting
//! `CLAIMED` where it was clear), so exactly one party runs or cancels the
//! task: a worker that reaches it in the queue, a joiner that helps, a
//! cancel, or the `PendingTask` that `shutdown_now` handed back (only the
//! task's custodian may run it: see [`Custody`]). There is no lock: the
//! flags say who may touch the cell's one slot, which holds the closure
//! until the claim and the result from its publication until it is taken.
//!
//! # Who touches the slot
//!
//! - Until `CLAIMED` is set, the slot holds the closure, and no one reads
//!   it. The claimant (the one whose read-modify-write set `CLAIMED`)
//!   takes it out, and the slot is the claimant's until it publishes.
//! - `publish` writes the value or the panic, then sets `DONE | RESULT`
//!   and the `REASON` with one read-modify-write (Release); a cancel or an
//!   expiry writes nothing and sets `DONE` and its `REASON` alone (see
//!   [`End`]). If that finds `HANDLE_GONE` already set, nobody will read
//!   the result: the publisher takes it back and disposes of it (drops it,
//!   or hands a panic to whoever takes orphans).
//! - The handle: `join` waits for `DONE` (Acquire) and takes the result.
//!   `detach` (a handle dropped unjoined) sets `HANDLE_GONE` with one
//!   read-modify-write (AcqRel); if that finds `RESULT`, the result is
//!   there and the handle disposes of it, otherwise the publisher will.
//! - Read-modify-writes of the byte are totally ordered, so between
//!   `publish` and `detach` exactly one sees the other's bit: the result
//!   is disposed of once. The cell's `Drop` (the last reference) drops
//!   what the flags say is left: the closure if it was never claimed, the
//!   result if `RESULT` is still set.
//!
//! The loom models in `tests/loom_cell.rs` check these races with loom's
//! `UnsafeCell` under the slot, which reports two threads touching it at
//! once.

use std::any::{Any, TypeId};
use std::mem::ManuallyDrop;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::ptr;
use std::sync::Arc;
use std::time::Instant;

#[cfg(not(loom))]
use crate::error::Interrupted;
use crate::error::{PanicPayload, TaskError};
use crate::runtime::ledger::{Custody, GroupCounts, Outcome};
use crate::runtime::mailbox::GroupInner;
use crate::runtime::scope::ScopeState;
use crate::span::{self, SubmitSpan};
use crate::stop::StopState;
#[cfg(not(loom))]
use crate::stop::StopToken;
use crate::sync::{AtomicU8, Condvar, Mutex, Ordering, RawCell};
use crate::task::{Call, TaskId};
use crate::unwind;

mod extras;
mod ops;

use extras::Extras;
pub(crate) use ops::{
    CancelOutcome, CellEntry, CellRef, CellTask, HandleOps, IfRunning, Ran, Tally,
};

/// What every cell has, whatever its closure and result types.
///
/// Kept small, since every queued task holds one: no pool id (the handle
/// has the pool); the name and the stop source, rarely needed, share one
/// word and live out of line (see [`Extras`]); the claim, the handle's
/// presence, the custody and the end share one byte; and the joiners
/// sleep in a few places shared by all cells (see [`Sleep`]), not in a
/// condvar of each cell's. With a one-word closure and result, the whole
/// `Arc` is 56 bytes (104 before these, 80 with a stop source of its own
/// and a result slot of two words).
pub(crate) struct CellHeader {
    pub(crate) id: TaskId,
    extras: Extras,
    /// `CLAIMED`, `HANDLE_GONE`, `HANDED_BACK`, `DONE`, `WAITING`,
    /// `RESULT` and the two bits of `REASON`: every change is a
    /// read-modify-write, and the module docs say who may touch the slot
    /// given which; `WAITING` and `DONE` pair up as [`Sleep`] says.
    flags: AtomicU8,
    /// The group it was submitted to, which counts its end wherever it
    /// happens (worker, helping joiner, cancel, `PendingTask`); or the
    /// scope it was spawned in (a group of its own kind, see
    /// `runtime/scope.rs`), which counts the header while it lives.
    pub(crate) group: Option<Arc<GroupInner>>,
    /// The submitter's span, entered around the run (feature `tracing`;
    /// zero-sized without it).
    span: SubmitSpan,
}

impl CellHeader {
    /// A scoped cell's group comes from `ScopeState::enlist`, which counts
    /// the cell in its scope.
    fn new(name: Option<Arc<str>>, group: Option<Arc<GroupInner>>) -> CellHeader {
        CellHeader {
            id: TaskId::next(),
            extras: Extras::new(name),
            flags: AtomicU8::new(0),
            group,
            span: span::current(),
        }
    }

    /// The scope the task was spawned in, if it is a scoped task.
    #[inline]
    pub(crate) fn scope(&self) -> Option<&ScopeState> {
        self.group.as_deref().and_then(GroupInner::scope)
    }
}

/// The closure has been taken (run, cancelled, expired or taken back).
const CLAIMED: u8 = 1;
/// The result (or why there is none) is published: the handle's wait is
/// over. Set by `publish`, with a read-modify-write (see [`Sleep`]).
const DONE: u8 = 8;
/// A joiner is (or was) asleep on the cell's sleep: `publish` must wake
/// it. Never cleared.
const WAITING: u8 = 16;
/// The handle was joined or dropped: no one will read a result.
const HANDLE_GONE: u8 = 2;
/// `shutdown_now` handed the task back: its `PendingTask`'s alone (set only
/// while `CLAIMED` is clear, by the same kind of read-modify-write as the
/// claim, so a cancel or run racing with the hand-back counts it in exactly
/// one place).
const HANDED_BACK: u8 = 4;
/// The slot holds a published value or panic that no one has taken yet.
const RESULT: u8 = 32;
/// How the task ended, set with `DONE` in the same read-modify-write (see
/// [`End`]): a value, a panic (these two in the slot), a cancel or an
/// expiry (these two in these bits alone).
const REASON: u8 = 64 | 128;
const REASON_VALUE: u8 = 0;
const REASON_PANICKED: u8 = 64;
const REASON_CANCELLED: u8 = 128;
const REASON_EXPIRED: u8 = 64 | 128;

/// How a task ended, as its cell keeps it: a value or a panic in the
/// slot, a cancel or an expiry in the flags alone (`REASON`). So the slot
/// is as big as the closure, the value or a panic's one word, whichever is
/// largest, not as a `Result<T, TaskError>` (a word more for most `T`).
/// A cell never ends `Failed`: that is the scope's word for a value
/// (see `scope.rs`).
pub(crate) enum End<T> {
    Value(T),
    Panicked(PanicPayload),
    Cancelled,
    Expired,
}

impl<T> End<T> {
    /// What the handle's `join` returns.
    #[inline]
    pub(crate) fn into_result(self) -> Result<T, TaskError> {
        match self {
            End::Value(value) => Ok(value),
            End::Panicked(payload) => Err(TaskError::Panicked(payload)),
            End::Cancelled => Err(TaskError::Cancelled),
            End::Expired => Err(TaskError::Expired),
        }
    }

    /// The flags `publish` sets.
    #[inline]
    fn flags(&self) -> u8 {
        match self {
            End::Value(_) => DONE | RESULT | REASON_VALUE,
            End::Panicked(_) => DONE | RESULT | REASON_PANICKED,
            End::Cancelled => DONE | REASON_CANCELLED,
            End::Expired => DONE | REASON_EXPIRED,
        }
    }
}

/// A scoped cell's header is the last thing of it to go: the cell's
/// fields drop in order, so its closure and result (which may borrow from
/// the scope) are gone before the scope hears that the cell is.
impl Drop for CellHeader {
    fn drop(&mut self) {
        if let Some(scope) = self.scope() {
            scope.cell_gone();
        }
    }
}

impl CellHeader {
    /// Its group's counts, if it belongs to a group.
    #[inline]
    pub(crate) fn group_counts(&self) -> Option<&GroupCounts> {
        // A scope counts nothing (it has no progress to show: see
        // `runtime/scope.rs`), which spares each of its tasks three shared
        // counters.
        self.group
            .as_deref()
            .filter(|group| group.scope().is_none())
            .map(|group| &group.counts)
    }

    #[inline]
    pub(crate) fn is_claimed(&self) -> bool {
        // ORDERING: Acquire, pairs with the claim's Release (see `claim`).
        self.flags.load(Ordering::Acquire) & CLAIMED != 0
    }

    /// The task's name, if it was given one.
    #[inline]
    pub(crate) fn name(&self) -> Option<&Arc<str>> {
        self.extras.name()
    }
}

/// Whose a task with these flags is (see [`Custody`]).
#[inline]
fn custody_of(flags: u8) -> Custody {
    if flags & HANDED_BACK != 0 {
        Custody::HandedBack
    } else {
        Custody::Pool
    }
}

/// The closure until the claim, the value or the panic from `publish`
/// until it is taken: never two at once, so they share the place (see the
/// module docs for who may touch it when, and `REASON` for which it
/// holds).
union Slot<F, T> {
    f: ManuallyDrop<F>,
    value: ManuallyDrop<T>,
    panic: ManuallyDrop<PanicPayload>,
}

/// The fields drop in their order: the header last (see its `Drop`), after
/// the cell's own `Drop` has emptied the slot.
pub(crate) struct Cell<F, T> {
    /// What the flags say (see the module docs).
    slot: RawCell<Slot<F, T>>,
    /// Under loom, each cell has its own place to sleep (a model cannot
    /// share statics between runs); otherwise cells share `SLEEPS`.
    #[cfg(loom)]
    sleep: Sleep,
    header: CellHeader,
}

// SAFETY: `&Cell` moves the closure and the result between threads (both
// `Send`) only as the flags' protocol allows (see the module docs): one
// thread at a time touches the slot, and each hand-over is a Release
// read-modify-write of the flags seen by the next one's Acquire.
#[allow(unsafe_code)]
unsafe impl<F: Send, T: Send> Sync for Cell<F, T> {}

/// Where a cell's joiners sleep until its result is published.
///
/// # No lost wake-up
///
/// A joiner takes the sleep's lock, then sets `WAITING` in the cell's
/// flags with a read-modify-write that also reads `DONE`, and waits (still
/// holding the lock until the wait releases it) only if `DONE` was not
/// set. `publish` sets `DONE` with a read-modify-write of the same byte
/// that also reads `WAITING`, and if it was set, notifies under the
/// sleep's lock. Read-modify-writes of one location are totally ordered:
/// either the joiner's came first (then `publish` sees `WAITING` and its
/// notify, which needs the lock, comes after the joiner is waiting), or
/// `publish`'s did (then the joiner sees `DONE` and does not wait).
/// Cells share a few sleeps by address: a notify wakes every joiner of
/// the sleep, and each looks at its own cell's `DONE` again.
struct Sleep {
    lock: Mutex<()>,
    ready: Condvar,
}

#[cfg(test)]
thread_local! {
    /// Cells this thread made in spent ones (`Cell::renew`), for the tests.
    pub(crate) static RENEWED: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// The sleeps cells share, by address (see [`Sleep`]).
#[cfg(not(loom))]
static SLEEPS: [Sleep; 64] = [const {
    Sleep {
        lock: parking_lot::const_mutex(()),
        ready: Condvar::new(),
    }
}; 64];

#[allow(unsafe_code)]
impl<F, T> Cell<F, T>
where
    F: Call<Output = T>,
    T: Send,
{
    pub(crate) fn new(name: Option<Arc<str>>, f: F, group: Option<Arc<GroupInner>>) -> Arc<Self> {
        Arc::new(Cell::fresh(name, f, group))
    }

    /// A cell, not yet in an allocation of its own (see `renew`).
    pub(crate) fn fresh(name: Option<Arc<str>>, f: F, group: Option<Arc<GroupInner>>) -> Self {
        Cell {
            header: CellHeader::new(name, group),
            slot: RawCell::new(Slot {
                f: ManuallyDrop::new(f),
            }),
            #[cfg(loom)]
            sleep: Sleep {
                lock: Mutex::new(()),
                ready: Condvar::new(),
            },
        }
    }

    /// Puts `cell` in the allocation of `spent`, a cell of any type that
    /// nothing else refers to any more, if the two have the same size and
    /// alignment; otherwise lets `spent` go and gives `cell` back. What the
    /// old cell still holds (its header, a stop source) is dropped first,
    /// in place, as its own type.
    ///
    /// It spares a scope's caller an allocation per spawn, and the worker
    /// that ran the old cell its `free`: with glibc, a thread whose
    /// allocations are freed on other threads takes `malloc`'s slow path
    /// for most of them (a quarter of a scope caller's time, by `perf`).
    pub(crate) fn renew<'a>(spent: Arc<dyn CellTask + 'a>, cell: Self) -> Result<Arc<Self>, Self> {
        // The only reference: no other `Arc` (and none can appear, we hold
        // the only one to clone), no `Weak` (none can appear either: a
        // `Weak` is made from an `Arc`). Two loads, not `Arc::get_mut`'s
        // compare-and-swap on a line another core wrote last.
        if Arc::strong_count(&spent) != 1
            || Arc::weak_count(&spent) != 0
            || std::mem::size_of_val(&*spent) != std::mem::size_of::<Self>()
            || std::mem::align_of_val(&*spent) != std::mem::align_of::<Self>()
        {
            return Err(cell);
        }
        // ORDERING: Acquire, as `Arc`'s own drop of the last reference:
        // every other reference's last use (each ended by a Release
        // decrement) happens before what follows.
        std::sync::atomic::fence(std::sync::atomic::Ordering::Acquire);
        let old = Arc::into_raw(spent).cast_mut();
        // A panic in what is dropped (a leaked stop callback's `Drop`, say)
        // leaves the old value dropped all the same (the rest of its drop
        // glue runs as the panic unwinds); it goes no further than here, as
        // it would go no further than the worker dropping the last
        // reference.
        unwind::call_logged("a Drop of a value the pool discarded", || {
            // SAFETY: this is the only reference (checked above), and the
            // fence orders every other reference's last use before this,
            // so nothing else reads the old value as it is dropped, and it
            // is dropped once, as its own type (through the trait object).
            unsafe { ptr::drop_in_place(old) };
        });
        let new = old.cast::<Self>();
        // SAFETY: the allocation holds `size_of::<Self>()` bytes aligned
        // for `Self` (checked above), no longer holding a value, and ours
        // alone; `Arc::from_raw` accepts what `Arc::<U>::into_raw` gave for
        // an unsized `U` whose value has the size and alignment of `Self`
        // (its documented requirement), with the reference count it had:
        // one, ours.
        unsafe {
            new.write(cell);
            #[cfg(test)]
            RENEWED.with(|renewed| renewed.set(renewed.get() + 1));
            Ok(Arc::from_raw(new))
        }
    }

    /// Where this cell's joiners sleep.
    #[inline]
    fn sleep(&self) -> &Sleep {
        #[cfg(loom)]
        {
            &self.sleep
        }
        #[cfg(not(loom))]
        {
            let at = std::ptr::from_ref(self).addr();
            &SLEEPS[(at / 64) % SLEEPS.len()]
        }
    }

    /// The claim: takes the closure out of a task still queued, if
    /// `claimant` (when given) is its custodian; with the custody it had.
    /// `None` if someone claimed it first, or it is not `claimant`'s.
    #[inline]
    fn claim(&self, claimant: Option<Custody>) -> Option<(F, Custody)> {
        // ORDERING: AcqRel: Release pairs with `is_claimed`'s Acquire; the
        // closure itself was stored before the cell was shared, which the
        // sharing ordered before us.
        let flags = self
            .header
            .flags
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |flags| {
                let free = flags & CLAIMED == 0
                    && claimant.is_none_or(|claimant| claimant == custody_of(flags));
                free.then_some(flags | CLAIMED)
            })
            .ok()?;
        // SAFETY: our read-modify-write set CLAIMED where it was clear, so
        // the closure is still in the slot and the slot is ours alone until
        // we publish (see the module docs).
        let f = self
            .slot
            .with_mut(|slot| unsafe { ManuallyDrop::take(&mut (*slot).f) });
        Some((f, custody_of(flags)))
    }

    /// Stores the claimant's result and wakes the joiners (see [`Sleep`]);
    /// returns it instead if the handle is gone, for the caller to dispose
    /// of (no one else will).
    #[inline(always)]
    fn publish(&self, end: End<T>) -> Option<End<T>> {
        let flags = end.flags();
        // SAFETY: the slot is the claimant's until the read-modify-write
        // below (see `claim`), and its closure was taken out.
        self.slot.with_mut(|slot| unsafe {
            match end {
                End::Value(value) => {
                    ptr::addr_of_mut!((*slot).value).write(ManuallyDrop::new(value));
                }
                End::Panicked(payload) => {
                    ptr::addr_of_mut!((*slot).panic).write(ManuallyDrop::new(payload));
                }
                End::Cancelled | End::Expired => {}
            }
        });
        // ORDERING: AcqRel: Release hands the result to whoever sees DONE
        // or RESULT; a read-modify-write of the byte that the joiner's
        // WAITING and the handle's HANDLE_GONE go to (see `Sleep` and the
        // module docs), so exactly one of us sees the other.
        let before = self.header.flags.fetch_or(flags, Ordering::AcqRel);
        if before & WAITING != 0 {
            let sleep = self.sleep();
            let _guard = sleep.lock.lock();
            sleep.ready.notify_all();
        }
        // The handle left before: the result is ours to dispose of.
        (before & HANDLE_GONE != 0).then(|| self.take_result())
    }

    /// Takes the published result out of the slot (or out of `REASON`).
    ///
    /// The caller must be the one the module docs name: the handle once it
    /// saw `DONE` (or `RESULT` in `detach`), or the publisher that found the
    /// handle gone.
    #[inline]
    fn take_result(&self) -> End<T> {
        // ORDERING: Relaxed: a read-modify-write (a joiner may be setting
        // WAITING); only the cell's `Drop` reads RESULT after this, and the
        // last reference's drop orders it after every use. The caller saw
        // DONE (Acquire) or set it, and REASON came with it.
        let flags = self.header.flags.fetch_and(!RESULT, Ordering::Relaxed);
        self.end_in(flags)
    }

    /// Takes the end that `flags`, read as RESULT was cleared, say the
    /// cell holds; the caller is the one `take_result` names.
    #[inline]
    fn end_in(&self, flags: u8) -> End<T> {
        if flags & (RESULT | REASON) == RESULT | REASON_VALUE {
            // SAFETY: RESULT was set with REASON_VALUE, so the slot holds
            // the value, and the caller is the one the protocol gives it
            // to: no one else touches the slot now.
            return End::Value(
                self.slot
                    .with_mut(|slot| unsafe { ManuallyDrop::take(&mut (*slot).value) }),
            );
        }
        self.other_end_in(flags)
    }

    /// `end_in` of anything but a value: out of line, as it is rare.
    #[cold]
    fn other_end_in(&self, flags: u8) -> End<T> {
        match (flags & RESULT != 0, flags & REASON) {
            // SAFETY: as in `end_in`, with the panic.
            (true, _) => End::Panicked(
                self.slot
                    .with_mut(|slot| unsafe { ManuallyDrop::take(&mut (*slot).panic) }),
            ),
            (false, REASON_EXPIRED) => End::Expired,
            (false, _) => End::Cancelled,
        }
    }

    /// Under the sleep's lock: marks a joiner waiting; true if the result
    /// is already published (see [`Sleep`]).
    #[inline]
    fn done_or_waiting(&self) -> bool {
        // ORDERING: AcqRel, the joiner's half of the pair in `Sleep`.
        self.header.flags.fetch_or(WAITING, Ordering::AcqRel) & DONE != 0
    }

    /// Ends a task claimed to expire: drops its closure, counts it, then
    /// resolves its handle, in that order, so that a joiner who sees
    /// `Expired` also sees the closure dropped and the end counted (as a
    /// run's end is counted before its result is published). Meanwhile it
    /// is no longer queued: a cancel, a hand-back or a take-back finds
    /// nothing to do.
    fn expire_claimed(&self, f: F, tally: Tally<'_>) {
        // A panicking Drop must not skip the count.
        unwind::drop_quietly(f);
        tally.expired(&self.header);
        drop(self.publish(End::Expired));
    }

    /// Claims a queued task that will never run (cancelled or taken back):
    /// its handle gets `Cancelled`; the closure and the custody it had are
    /// the caller's.
    fn claim_unrun(&self) -> Option<(F, Custody)> {
        let (f, custody) = self.claim(None)?;
        drop(self.publish(End::Cancelled));
        Some((f, custody))
    }
}

#[allow(unsafe_code)]
impl<F, T> Drop for Cell<F, T> {
    fn drop(&mut self) {
        // ORDERING: Relaxed: the last reference's drop is ordered after
        // every other use of the cell.
        let flags = self.header.flags.load(Ordering::Relaxed);
        // SAFETY: no one else can touch the slot now, and the flags say
        // what it holds: the closure if it was never claimed, a result if
        // RESULT is set, nothing otherwise.
        self.slot.with_mut(|slot| unsafe {
            if flags & CLAIMED == 0 {
                ManuallyDrop::drop(&mut (*slot).f);
            } else if flags & RESULT != 0 {
                if flags & REASON == REASON_VALUE {
                    ManuallyDrop::drop(&mut (*slot).value);
                } else {
                    ManuallyDrop::drop(&mut (*slot).panic);
                }
            }
        });
    }
}

impl<F, T> CellTask for Cell<F, T>
where
    F: Call<Output = T>,
    T: Send,
{
    fn header(&self) -> &CellHeader {
        &self.header
    }

    fn stop_state(&self) -> Arc<StopState> {
        self.header.extras.stop_state()
    }

    fn run(&self, tally: Tally<'_>, claimant: Custody) -> Ran {
        // A handed-back task is its holder's alone; any other is the
        // pool's alone (never both, never neither).
        let Some((f, _)) = self.claim(Some(claimant)) else {
            return Ran::Lost;
        };
        // The pool honours a start deadline; a handed-back task is its
        // holder's to run when it likes.
        if claimant == Custody::Pool && f.start_by().is_some_and(|by| Instant::now() >= by) {
            self.expire_claimed(f, tally);
            return Ran::Expired;
        }
        tally.started(&self.header, claimant);
        let span = &self.header.span;
        let result = catch_unwind(AssertUnwindSafe(move || {
            span::in_span(span, move || f.call())
        }));
        tally.ended(&self.header, Outcome::of(&result));
        let end = match result {
            Ok(value) => End::Value(value),
            Err(payload) => End::Panicked(PanicPayload::new(payload)),
        };
        match self.publish(end) {
            None => {}
            // No one will read the value: drop it here, quietly (its Drop
            // is user code, and this may be the program's thread running a
            // PendingTask).
            Some(End::Value(value)) => unwind::drop_quietly(value),
            Some(End::Panicked(payload)) => tally.orphan(&self.header, payload),
            Some(End::Cancelled | End::Expired) => {}
        }
        Ran::Here(claimant)
    }

    fn cancel(&self, if_running: IfRunning) -> CancelOutcome {
        if let Some((f, custody)) = self.claim_unrun() {
            // The captures drop outside any lock of ours, and a panicking
            // Drop among them must not skip the caller's bookkeeping.
            unwind::drop_quietly(f);
            return CancelOutcome::Cancelled(custody);
        }
        // ORDERING: Acquire, as `is_finished`.
        if self.header.flags.load(Ordering::Acquire) & DONE != 0 {
            return CancelOutcome::Finished;
        }
        // Claimed and not ended: running (or about to be resolved by
        // another claim, which a raised stop does not disturb).
        if if_running == IfRunning::Stop {
            // Callbacks are user code: not under our lock.
            self.stop_state().request();
        }
        CancelOutcome::Running
    }

    fn take_back(&self, want: TypeId) -> Option<Box<dyn Any + Send>> {
        if F::job_type() != Some(want) {
            return None;
        }
        self.claim_unrun()?.0.into_any()
    }

    fn expire(&self, tally: Tally<'_>) -> bool {
        let Some((f, _)) = self.claim(Some(Custody::Pool)) else {
            return false;
        };
        self.expire_claimed(f, tally);
        true
    }

    fn hand_back(&self) -> bool {
        // A scoped task borrows from its scope: only cancelled, never
        // handed back (its scope is cancelled by the pool's stop).
        if self.header.scope().is_some() {
            return false;
        }
        // ORDERING: AcqRel, as the claim it excludes (see `claim`).
        self.header
            .flags
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |flags| {
                (flags & CLAIMED == 0).then_some(flags | HANDED_BACK)
            })
            .is_ok()
    }
}

impl<F, T> HandleOps<T> for Cell<F, T>
where
    F: Call<Output = T>,
    T: Send,
{
    fn into_cell_task(self: Arc<Self>) -> Arc<dyn CellTask>
    where
        Self: 'static,
    {
        self
    }

    #[cfg(not(loom))]
    fn wait_or_stop(&self, token: &StopToken) -> Result<(), Interrupted> {
        if self.is_finished() {
            return Ok(());
        }
        let sleep = self.sleep();
        let mut guard = sleep.lock.lock();
        // No lost wake-up: see `Sleep`; a stop wakes it as any
        // `wait_while` (see `StopToken::wait_while`).
        token.wait_while(&sleep.ready, &mut guard, |_| !self.done_or_waiting())
    }

    fn wait(&self, deadline: Option<Instant>) -> bool {
        if self.is_finished() {
            return true;
        }
        let sleep = self.sleep();
        let mut guard = sleep.lock.lock();
        // No lost wake-up: see `Sleep`.
        loop {
            if self.done_or_waiting() {
                return true;
            }
            match deadline {
                None => sleep.ready.wait(&mut guard),
                Some(d) => {
                    if sleep.ready.wait_until(&mut guard, d).timed_out() {
                        return self.is_finished();
                    }
                }
            }
        }
    }

    fn is_finished(&self) -> bool {
        // ORDERING: Acquire, pairs with `publish`'s read-modify-write, so
        // a handle that sees DONE sees the result.
        self.header.flags.load(Ordering::Acquire) & DONE != 0
    }

    fn join(&self) -> Result<T, TaskError> {
        // A result already there (the common case for a joiner that
        // submitted many tasks first) costs a load and one
        // read-modify-write.
        self.wait(None);
        // DONE seen (Acquire): the result is the handle's (module docs).
        self.take_result().into_result()
    }

    fn take_unshared(&mut self) -> Option<Result<T, TaskError>> {
        // ORDERING: Relaxed: this is the only reference (`Arc::get_mut`'s
        // Acquire ordered every other use before). So nothing else touches
        // the byte either: a plain store clears RESULT, where `take_result`
        // needs a read-modify-write.
        let flags = self.header.flags.load(Ordering::Relaxed);
        if flags & DONE == 0 {
            return None;
        }
        self.header.flags.store(flags & !RESULT, Ordering::Relaxed);
        Some(self.end_in(flags).into_result())
    }

    fn detach(&self) -> Option<PanicPayload> {
        // ORDERING: AcqRel: Acquire to see the result a publish before us
        // stored; one total order with `publish`'s read-modify-write
        // decides which of us disposes of the result (module docs).
        if self.header.flags.fetch_or(HANDLE_GONE, Ordering::AcqRel) & RESULT == 0 {
            return None;
        }
        match self.take_result() {
            End::Panicked(payload) => Some(payload),
            // A result nobody will read: its Drop (user code) must not
            // unwind into whoever dropped the handle.
            End::Value(value) => {
                unwind::drop_quietly(value);
                None
            }
            End::Cancelled | End::Expired => None,
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests;
