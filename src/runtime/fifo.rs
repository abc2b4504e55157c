//! [`Fifo`]: the unbounded many-producer, many-consumer queue under each
//! level of the pool's queue (`queue.rs`), made for what the pool does with
//! it and nothing else: push, take the oldest, sleep until there is one,
//! and drain everything for `shutdown_now`. No disconnection, no select,
//! no bounded mode, no deadline bookkeeping on the hot path (what a
//! general channel carries, and what measured about half of a tiny task's
//! instructions on each side).
//!
//! # Shape
//!
//! Entries live in blocks of `BLOCK` slots, linked oldest to newest. Each
//! end (`head` for takers, `tail` for pushers) is a position and the block
//! it falls in, on a cache line of its own. A position counts `LAP`
//! (a power of two, `BLOCK + 1`) per block: offsets `0..BLOCK` are slots,
//! offset `BLOCK` means "this end is moving to the next block". A pusher
//! claims a slot with one compare-and-swap of the tail position, writes the
//! entry and sets the slot's `WRITTEN` bit; a taker claims the oldest slot
//! with one compare-and-swap of the head position and waits (a few
//! instructions at most: the pusher has claimed it) for `WRITTEN`. Whoever
//! claims a block's last slot links (pusher) or follows (taker) the next
//! block, and moves its end there; the others wait while the offset reads
//! `BLOCK`. A taker reads the tail (to see whether the queue is empty)
//! only while the head's block is the last one: the head's word carries a
//! `HAS_NEXT` bit once a later block is known, so in a long queue takers
//! and pushers share no line but the slots'. In the last block, a taker
//! reads the tail only once the head has caught up with the last tail a
//! taker saw (kept beside the head), so a worker that waits between its
//! looks at a short queue takes what came meanwhile with one read.
//!
//! # Memory reclamation
//!
//! A block is freed once every one of its slots has been read, by the last
//! reader, without a shared counter: the reader of the last slot walks the
//! others; one not read yet gets a `DESTROY` bit, and its reader, which
//! finds that bit when it marks the slot `READ`, carries on the walk from
//! the next slot. Nobody holds a block's address past that point: a pusher
//! or taker dereferences a block only after its compare-and-swap has won a
//! slot of it (a failed one retries with a fresh load), and the one that
//! wins the last slot links or follows the next block before its slot can
//! be read. (crossbeam-channel's list flavour, which this replaces, frees
//! its blocks the same way; the positions, the ends and the walk are
//! written down here.) The one who ends the walk keeps the block as the
//! queue's spare, if it has none, and the next pusher that needs a block
//! takes it (one swap) and empties its slots' states: a block address may
//! so come back at a later position, which no one can mistake for the old
//! one, since every claim compares positions, which do not come back
//! (before 2^63 of them), not addresses.
//!
//! # No lost wake-up
//!
//! A taker that found the queue empty may sleep (`pop_wait`). It counts
//! itself in `sleepers` (SeqCst) under `lock`, then looks again, and waits
//! on `ready` without releasing `lock` in between. A pusher's claim is a
//! SeqCst compare-and-swap of the tail, followed by a SeqCst load of
//! `sleepers`; seeing a sleeper, it takes `lock` and notifies one. In the
//! single order of those four SeqCst operations, either the sleeper's look
//! comes after the claim (and sees a non-empty queue), or the pusher's load
//! comes after the count (and it notifies, under the lock the sleeper holds
//! until it waits). `sleepers` changes only under `lock`, and counts the
//! takers waiting and not yet notified: `wake_one` uncounts the one its
//! notify wakes (so the pushes that follow, before that taker runs, do not
//! take the lock again), a taker that finds an entry on its second look or
//! wakes by its deadline uncounts itself. Every counted taker is waiting
//! whenever a pusher holds the lock, so a notify always finds one.

#![allow(unsafe_code)]

use std::mem::MaybeUninit;
use std::ptr;
use std::time::Instant;

use crate::sync::{
    AtomicPtr, AtomicUsize, Condvar, Mutex, Ordering, RawCell, SPIN_TURNS, dekker_fence, spin_turn,
};

/// Positions per block: a power of two, so that positions may wrap.
/// Small under loom, so that the models cross blocks.
#[cfg(not(loom))]
const LAP: usize = 64;
#[cfg(loom)]
const LAP: usize = 4;
/// Slots per block; offset `BLOCK` marks an end moving to the next block.
const BLOCK: usize = LAP - 1;

/// An end's position is kept in its word shifted left by one: a word
/// advances by `STEP` per position (so both ends wrap alike).
const STEP: usize = 2;
/// In the head's word: the head's block is known to have a next block, so
/// each of its slots has been claimed by a pusher and the queue is not
/// empty before the block end. Takers then do not read the tail, whose
/// line the pushers write: in a long queue, takers and pushers share no
/// line but the slots'.
const HAS_NEXT: usize = 1;

/// Looks at an empty queue before a taker sleeps: the spin of `spin_turn`,
/// then yields. A sleeping taker costs the next push a lock and a futex
/// wake, and the taker a wake-up: in bursts of ten thousand tiny tasks
/// with 10 looks the pool ran 1.4x slower than with 40 (or than crossbeam's
/// channel, which also spins twice, before and after it registers), and
/// 40 looks cost an idle worker some tens of microseconds once, as it goes
/// idle. Under loom, one look: the models need no more.
#[cfg(not(loom))]
const SPINS_BEFORE_SLEEP: usize = 40;
#[cfg(loom)]
const SPINS_BEFORE_SLEEP: usize = 1;

#[cfg(loom)]
thread_local! {
    /// Blocks made and not yet freed, for the models (`model::Fifo`): a
    /// loom model's threads share the test's thread, and loom itself does
    /// not see a block that is never freed.
    pub(crate) static LIVE_BLOCKS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// A slot's entry has been written.
const WRITTEN: usize = 1;
/// A slot's entry has been read (moved out).
const READ: usize = 2;
/// The block's walk stopped at this slot: its reader carries it on.
const DESTROY: usize = 4;

struct Slot<T> {
    value: RawCell<MaybeUninit<T>>,
    state: AtomicUsize,
}

struct Block<T> {
    next: AtomicPtr<Block<T>>,
    slots: [Slot<T>; BLOCK],
}

impl<T> Block<T> {
    #[cfg(not(loom))]
    fn new() -> *mut Block<T> {
        // Zeroed memory straight from the allocator, not a 2 KiB block
        // built on the stack and copied.
        // (`Box::new_zeroed` would say it in one line, from Rust 1.92.)
        let layout = std::alloc::Layout::new::<Block<T>>();
        // SAFETY: the layout is a block's, not zero-sized (it has slots).
        let block = unsafe { std::alloc::alloc_zeroed(layout) }.cast::<Block<T>>();
        if block.is_null() {
            std::alloc::handle_alloc_error(layout);
        }
        // All zeroes is a valid block: a null `next`, slots with state 0
        // (empty) and an uninitialised value (any bytes are). Freed with
        // `Box::from_raw`, whose layout is the same.
        block
    }

    /// Under loom, whose atomics are not plain memory.
    #[cfg(loom)]
    fn new() -> *mut Block<T> {
        LIVE_BLOCKS.with(|live| live.set(live.get() + 1));
        Box::into_raw(Box::new(Block {
            next: AtomicPtr::new(ptr::null_mut()),
            slots: std::array::from_fn(|_| Slot {
                value: RawCell::new(MaybeUninit::uninit()),
                state: AtomicUsize::new(0),
            }),
        }))
    }

    /// Waits for the block after this one (its last slot is claimed, so
    /// its claimant is linking it).
    fn wait_next(&self) -> *mut Block<T> {
        let mut turn = 0;
        loop {
            // ORDERING: Acquire, pairs with the linking store: the new
            // block's contents are visible.
            let next = self.next.load(Ordering::Acquire);
            if !next.is_null() {
                return next;
            }
            spin_turn(&mut turn);
        }
    }

    /// Frees `block`.
    ///
    /// # Safety
    ///
    /// It came from `Block::new` and no one uses it any more.
    unsafe fn free(block: *mut Block<T>) {
        #[cfg(loom)]
        LIVE_BLOCKS.with(|live| live.set(live.get() - 1));
        // SAFETY: the caller's; `Block::new` makes blocks with the layout
        // `Box` frees.
        drop(unsafe { Box::from_raw(block) });
    }

    /// True once slots `start..BLOCK - 1` have all been read (the last
    /// slot has been, by the caller or by the walk's starter): the block is
    /// then the caller's alone. Stops at the first that has not, leaving
    /// its reader to carry on.
    ///
    /// # Safety
    ///
    /// `block` is live, its last slot has been read, and the caller is the
    /// reader of slot `start - 1` (or the last slot's, for `start == 0`).
    unsafe fn release(block: *mut Block<T>, start: usize) -> bool {
        for i in start..BLOCK - 1 {
            // SAFETY: the block stays live until this walk ends it.
            let slot = unsafe { &(*block).slots[i] };
            // ORDERING: AcqRel, against the reader's fetch_or of READ: one
            // of the two sees the other's bit.
            if slot.state.load(Ordering::Acquire) & READ == 0
                && slot.state.fetch_or(DESTROY, Ordering::AcqRel) & READ == 0
            {
                return false; // its reader carries on
            }
        }
        true
    }

    /// Makes a block the caller owns (every slot read) as good as new:
    /// empty slots, no next block. (The values are `MaybeUninit`: nothing
    /// to drop.)
    fn reset(&self) {
        // ORDERING: Relaxed: the block is the caller's alone; it is shared
        // again through the tail's Release stores, as a new one is.
        self.next.store(ptr::null_mut(), Ordering::Relaxed);
        for slot in &self.slots {
            slot.state.store(0, Ordering::Relaxed);
        }
    }
}

/// One end of the queue, on its own cache line.
#[repr(align(128))]
struct End<T> {
    position: AtomicUsize,
    block: AtomicPtr<Block<T>>,
    /// At the head only: a tail position some taker read (see `pop`);
    /// zero and unused at the tail.
    seen_tail: AtomicUsize,
}

/// True if position `later` is past position `earlier`, across
/// wrap-around (the positions compared are never half the range apart).
#[inline]
fn is_past(later: usize, earlier: usize) -> bool {
    let distance = later.wrapping_sub(earlier) & (POSITIONS - 1);
    distance != 0 && distance < POSITIONS / 2
}

/// The entries between positions `head` and `tail` (read in that order,
/// so `head` is not past `tail`): the positions between them, less the
/// block ends among them. Exact across wrap-around, `LAP` being a power
/// of two.
#[inline]
fn between(head: usize, tail: usize) -> usize {
    // Positions are words halved: they wrap at `POSITIONS`.
    let positions = tail.wrapping_sub(head) & (POSITIONS - 1);
    positions - (head % LAP + positions) / LAP
}

/// Positions wrap at this (a power of two, as `LAP` is).
const POSITIONS: usize = (usize::MAX / STEP) + 1;

/// An unbounded FIFO for many pushers and many takers; see the module
/// docs.
pub(crate) struct Fifo<T> {
    head: End<T>,
    tail: End<T>,
    /// A block every slot of which has been read, kept for the next
    /// pusher that needs a block (see `recycle`); null if none.
    spare: AtomicPtr<Block<T>>,
    sleepers: AtomicUsize,
    lock: Mutex<()>,
    ready: Condvar,
}

// SAFETY: entries move between threads (T: Send); the slots are shared
// through the claim protocol, which gives each entry one writer and one
// reader.
unsafe impl<T: Send> Send for Fifo<T> {}
// SAFETY: as for Send: `&Fifo` only moves whole entries in and out.
unsafe impl<T: Send> Sync for Fifo<T> {}

impl<T> Fifo<T> {
    pub(crate) fn new() -> Fifo<T> {
        let first = Block::new();
        Fifo {
            head: End {
                position: AtomicUsize::new(0),
                block: AtomicPtr::new(first),
                seen_tail: AtomicUsize::new(0),
            },
            tail: End {
                position: AtomicUsize::new(0),
                block: AtomicPtr::new(first),
                seen_tail: AtomicUsize::new(0),
            },
            spare: AtomicPtr::new(ptr::null_mut()),
            sleepers: AtomicUsize::new(0),
            lock: Mutex::new(()),
            ready: Condvar::new(),
        }
    }

    /// Appends `value`, and wakes a sleeping taker if there is one.
    #[inline]
    pub(crate) fn push(&self, value: T) {
        let mut turn = 0;
        // ORDERING: Acquire: a position in a new block comes with the
        // block's address (stored before it, Release).
        let mut word = self.tail.position.load(Ordering::Acquire);
        let mut block = self.tail.block.load(Ordering::Acquire);
        let mut next: *mut Block<T> = ptr::null_mut();
        loop {
            let offset = (word / STEP) % LAP;
            if offset == BLOCK {
                // Another pusher is linking the next block.
                spin_turn(&mut turn);
                word = self.tail.position.load(Ordering::Acquire);
                block = self.tail.block.load(Ordering::Acquire);
                continue;
            }
            if offset + 1 == BLOCK && next.is_null() {
                // Made before the claim, so the claimant of a last slot
                // links at once and the others wait only for two stores.
                next = self.new_block();
            }
            // ORDERING: SeqCst: one half of the Dekker pair with a sleeper
            // (see the module docs); it also publishes nothing, the slot's
            // WRITTEN bit does.
            match self.tail.position.compare_exchange_weak(
                word,
                word.wrapping_add(STEP),
                Ordering::SeqCst,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    if offset + 1 == BLOCK {
                        // ORDERING: the block before the position (Release),
                        // as the loads above expect.
                        self.tail.block.store(next, Ordering::Release);
                        self.tail
                            .position
                            .store(word.wrapping_add(2 * STEP), Ordering::Release);
                        // SAFETY: our claim of a slot keeps the block live.
                        unsafe { (*block).next.store(next, Ordering::Release) };
                        next = ptr::null_mut();
                    }
                    // SAFETY: we won slot `offset` of a live block; no one
                    // reads it before WRITTEN is set.
                    let slot = unsafe { &(*block).slots[offset] };
                    slot.value.with_mut(|cell| {
                        // SAFETY: ours alone until WRITTEN (see above).
                        unsafe { cell.write(MaybeUninit::new(value)) }
                    });
                    // ORDERING: Release publishes the entry to its reader;
                    // fetch_or keeps a DESTROY bit a walk may have set.
                    slot.state.fetch_or(WRITTEN, Ordering::Release);
                    break;
                }
                Err(now) => {
                    word = now;
                    block = self.tail.block.load(Ordering::Acquire);
                    spin_turn(&mut turn);
                }
            }
        }
        if !next.is_null() {
            // A block made for a last slot someone else claimed.
            // SAFETY: never shared; from `Block::new`.
            unsafe { self.recycle(next) };
        }
        dekker_fence();
        // ORDERING: SeqCst, the other half of the Dekker pair.
        if self.sleepers.load(Ordering::SeqCst) > 0 {
            self.wake_one();
        }
    }

    #[cold]
    #[inline(never)]
    fn wake_one(&self) {
        let _guard = self.lock.lock();
        // The sleeper woken is uncounted here, not when it gets the lock
        // back: the pushes in between then see no sleeper to wake, instead
        // of each taking the lock the sleeper is waking up for.
        // ORDERING: SeqCst, as every access to `sleepers` (see the module
        // docs); changed only under `lock`.
        if self.sleepers.load(Ordering::SeqCst) > 0 && self.ready.notify_one() {
            self.sleepers.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// Takes the oldest entry, if there is one.
    #[inline]
    pub(crate) fn pop(&self) -> Option<T> {
        let mut turn = 0;
        let mut word = self.head.position.load(Ordering::Acquire);
        let mut block = self.head.block.load(Ordering::Acquire);
        loop {
            let position = word / STEP;
            let offset = position % LAP;
            if offset == BLOCK {
                // Another taker is moving the head to the next block.
                spin_turn(&mut turn);
                word = self.head.position.load(Ordering::Acquire);
                block = self.head.block.load(Ordering::Acquire);
                continue;
            }
            let mut new = word.wrapping_add(STEP);
            if word & HAS_NEXT == 0 {
                // A tail a taker read before, if it is past our position,
                // tells as well as the tail itself that our slot has been
                // claimed (the tail only moves on), without touching the
                // line the pushers write: one read of the tail serves the
                // takes of every entry queued by then. Only the tail
                // itself says "empty".
                // ORDERING: a position says only that its slots were
                // claimed (the entry comes with WRITTEN), so Relaxed would
                // do; SeqCst because loom 0.7 trips on an assertion of its
                // own with anything weaker here (tokio-rs/loom#252). On
                // x86 the load is a plain load, and the store (only when a
                // taker sees the tail move on) one exchange on the line
                // the takers' compare-and-swap writes anyway: no
                // difference measured.
                let seen = self.head.seen_tail.load(Ordering::SeqCst);
                let tail = if is_past(seen, position) {
                    seen
                } else {
                    // ORDERING: SeqCst: a sleeper's look (see the module
                    // docs).
                    let tail = self.tail.position.load(Ordering::SeqCst) / STEP;
                    if position == tail {
                        return None;
                    }
                    if is_past(tail, seen) {
                        self.head.seen_tail.store(tail, Ordering::SeqCst);
                    }
                    tail
                };
                if position / LAP != tail / LAP {
                    // The tail is in a later block: ours has a next.
                    new |= HAS_NEXT;
                }
            }
            match self.head.position.compare_exchange_weak(
                word,
                new,
                Ordering::SeqCst,
                Ordering::Acquire,
            ) {
                // SAFETY: we won slot `offset` of `block`, which a pusher
                // has claimed (the tail is past it).
                Ok(_) => return Some(unsafe { self.read(block, word) }),
                Err(now) => {
                    word = now;
                    block = self.head.block.load(Ordering::Acquire);
                    spin_turn(&mut turn);
                }
            }
        }
    }

    /// Reads the slot this taker won, moving the head on first if it is
    /// the block's last.
    ///
    /// # Safety
    ///
    /// The caller won the slot at the head's word `word` (its position and
    /// flag before the claim), in the live `block`.
    #[inline]
    unsafe fn read(&self, block: *mut Block<T>, word: usize) -> T {
        let offset = (word / STEP) % LAP;
        // SAFETY: live while our slot is unread.
        let block_ref = unsafe { &*block };
        if offset + 1 == BLOCK {
            let next = block_ref.wait_next();
            // SAFETY: the next block lives at least until its slots are
            // read, which starts only once the head is there.
            let has_next = unsafe { !(*next).next.load(Ordering::Acquire).is_null() };
            // Past the block end, to the next block's first slot; no one
            // else writes the head while its offset reads `BLOCK`.
            let start = (word & !HAS_NEXT).wrapping_add(2 * STEP);
            self.head.block.store(next, Ordering::Release);
            self.head.position.store(
                if has_next { start | HAS_NEXT } else { start },
                Ordering::Release,
            );
        }
        let slot = &block_ref.slots[offset];
        let mut turn = 0;
        // ORDERING: Acquire, pairs with the pusher's Release of WRITTEN.
        while slot.state.load(Ordering::Acquire) & WRITTEN == 0 {
            spin_turn(&mut turn);
        }
        // SAFETY: written, and ours alone to read.
        let value = slot
            .value
            .with_mut(|cell| unsafe { cell.read().assume_init() });
        let released = if offset + 1 == BLOCK {
            // SAFETY: we read the last slot.
            unsafe { Block::release(block, 0) }
        } else if slot.state.fetch_or(READ, Ordering::AcqRel) & DESTROY != 0 {
            // SAFETY: the walk stopped at our slot: ours to carry on.
            unsafe { Block::release(block, offset + 1) }
        } else {
            false
        };
        if released {
            // SAFETY: every slot has been read and no one else holds the
            // block (see the module docs).
            unsafe { self.recycle(block) };
        }
        value
    }

    /// Keeps `block`, every slot of which has been read, as the spare for
    /// the next pusher that needs a block, or frees it if there is a spare
    /// already.
    ///
    /// A block is made by a pusher and let go by a taker: freed there, the
    /// 2 KiB (too big for glibc's per-thread cache) went back to the
    /// pusher's arena under its lock, which the pusher's own allocations
    /// (a submitted task's cell) were taking at the same time: in a
    /// profile of 100k `submit`s and their joins, an eighth of the samples
    /// were the two threads waking each other on that lock.
    ///
    /// # Safety
    ///
    /// `block` came from `Block::new`, and no one else holds it.
    unsafe fn recycle(&self, block: *mut Block<T>) {
        // ORDERING: Release, so that the next owner (`new_block`'s Acquire
        // swap) sees everything done with the block before.
        if self
            .spare
            .compare_exchange(ptr::null_mut(), block, Ordering::Release, Ordering::Relaxed)
            .is_err()
        {
            // SAFETY: the caller's.
            unsafe { Block::free(block) };
        }
    }

    /// A block for a pusher: the spare made as good as new, or a new one.
    fn new_block(&self) -> *mut Block<T> {
        // ORDERING: Acquire, pairs with `recycle`'s Release.
        let spare = self.spare.swap(ptr::null_mut(), Ordering::Acquire);
        if spare.is_null() {
            return Block::new();
        }
        // SAFETY: the swap made the spare ours alone; it is live (only
        // `recycle`, `Drop` and this free or take it).
        unsafe { (*spare).reset() };
        spare
    }

    /// Takes the oldest entry, sleeping until one comes or `deadline`
    /// passes (`None`: no deadline).
    pub(crate) fn pop_wait(&self, deadline: Option<Instant>) -> Option<T> {
        // A short spin first: an entry usually follows soon, and a sleep
        // costs the pusher a wake.
        let mut turn = 0;
        for _ in 0..SPINS_BEFORE_SLEEP {
            if let Some(value) = self.pop() {
                return Some(value);
            }
            // The looks that yield stop at the deadline. On an idle machine
            // the 34 yields take about 17 µs; on a loaded one each lasts a
            // time slice of whatever else is runnable: with six busy
            // processes on this machine's 2 cores the 34 took 100-160 ms,
            // and a worker waiting for another pool's task, whose 20 µs
            // naps are waits here, took 100 ms per round of
            // `cross_pool.rs`'s mutual wait instead of 50 µs. (Without a
            // deadline the looks go on: each still sees a push, and a
            // bound on them made the workers of an idle pool sleep between
            // a round trip's requests.)
            if turn >= SPIN_TURNS && deadline.is_some_and(|d| Instant::now() >= d) {
                break;
            }
            spin_turn(&mut turn);
        }
        loop {
            let mut guard = self.lock.lock();
            // ORDERING: SeqCst, the sleeper's half of the Dekker pair.
            self.sleepers.fetch_add(1, Ordering::SeqCst);
            dekker_fence();
            if let Some(value) = self.pop() {
                self.sleepers.fetch_sub(1, Ordering::SeqCst);
                return Some(value);
            }
            // A notify uncounts the sleeper it wakes (`wake_one`); one that
            // woke by its deadline was not woken by a notify (parking_lot
            // tells the two apart, and has no spurious wake-ups) and
            // uncounts itself.
            let timed_out = match deadline {
                None => {
                    self.ready.wait(&mut guard);
                    false
                }
                Some(deadline) => self.ready.wait_until(&mut guard, deadline).timed_out(),
            };
            if timed_out {
                self.sleepers.fetch_sub(1, Ordering::SeqCst);
            }
            drop(guard);
            if let Some(value) = self.pop() {
                return Some(value);
            }
            if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
                return None;
            }
        }
    }

    /// Entries queued now (a snapshot: pushes and takes may be under way).
    pub(crate) fn len(&self) -> usize {
        // ORDERING: SeqCst, so that the head read first is not past the
        // tail read second.
        let head = self.head.position.load(Ordering::SeqCst) / STEP;
        let tail = self.tail.position.load(Ordering::SeqCst) / STEP;
        between(head, tail)
    }

    /// True if nothing was queued at the moment the tail was read (the
    /// head is read first, and never passes the tail).
    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<T> Drop for Fifo<T> {
    fn drop(&mut self) {
        // No one else is here: every claimed slot has been written and
        // every taken one read.
        let mut position = self.head.position.load(Ordering::Relaxed) / STEP;
        let tail = self.tail.position.load(Ordering::Relaxed) / STEP;
        let mut block = self.head.block.load(Ordering::Relaxed);
        while position != tail {
            let offset = position % LAP;
            if offset < BLOCK {
                // SAFETY: a written, unread slot of a live block.
                unsafe {
                    (*block).slots[offset]
                        .value
                        .with_mut(|cell| (*cell).assume_init_drop());
                }
            } else {
                // SAFETY: the block is live; its every slot is dealt with.
                unsafe {
                    let next = (*block).next.load(Ordering::Relaxed);
                    Block::free(block);
                    block = next;
                }
            }
            position = position.wrapping_add(1) & (POSITIONS - 1);
        }
        // SAFETY: the last block, from `Box::into_raw`, no longer shared.
        unsafe {
            Block::free(block);
        }
        let spare = self.spare.load(Ordering::Relaxed);
        if !spare.is_null() {
            // SAFETY: a spare is no one else's.
            unsafe { Block::free(spare) };
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests;
