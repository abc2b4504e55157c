//! Small closures stored in the queue entry itself, without a box.
//!
//! Many fire-and-forget tasks capture a single word: an `Arc` of shared
//! state, an index, a `Box`. Boxing such a closure costs a `malloc` on the
//! producer and a `free` on a worker, and with glibc's allocator that pair
//! is the most expensive part of a tiny task: the producer's thread
//! allocates, a worker's thread frees, and the chunk crosses cores every
//! time (measured: a task capturing one `Arc` ran at about 1.4x the bare
//! channel loop when boxed). An [`Inline`] keeps a closure of at most
//! [`WORDS`] words in place, with a pointer to the two functions that know
//! its type: one to call it, one to drop it uncalled.
//!
//! One word, not two: two would make every queue entry (and every
//! `PendingTask` that `shutdown_now` returns) a word larger, which measured
//! about 10% slower on a `shutdown_now` of a million tasks, for closures of
//! two words only. Capture-free closures are boxed (a zero-sized box
//! allocates nothing), which measured faster than storing them here.
//!
//! This is the crate's second measured need for `unsafe` (the first is in
//! `wait.rs`); every block has a `SAFETY` comment, and the type is kept to
//! this module.
//!
//! What a user sees of this (a closure of one word is queued without
//! allocating) is on `ThreadPool::execute`, where it renders.

#![allow(unsafe_code)]

use std::marker::PhantomData;
use std::mem::{self, ManuallyDrop, MaybeUninit};

/// Words of room in an [`Inline`] (see the module docs for why one).
pub(crate) const WORDS: usize = 1;

/// The room: `WORDS` words, word-aligned.
type Room = MaybeUninit<[usize; WORDS]>;

/// The two things that know the stored closure's type.
struct VTable {
    /// Moves the closure out of a room (a copy of the one it was written
    /// to) and calls it.
    call: unsafe fn(Room),
    /// Drops the closure in place, uncalled.
    drop: unsafe fn(&mut Room),
}

/// The vtable of closure type `F`, one per type as a promoted constant.
struct VTableOf<F>(F);

impl<F: FnOnce()> VTableOf<F> {
    const VTABLE: VTable = VTable {
        call: call_in::<F>,
        drop: drop_in::<F>,
    };
}

/// # Safety
///
/// `room` holds a valid `F`, written by [`Inline::new`], and no other copy
/// of it will be used or dropped.
unsafe fn call_in<F: FnOnce()>(room: Room) {
    // SAFETY: the caller guarantees a valid `F` that we now own; `new`
    // checked size and alignment, so the read is in bounds and aligned.
    let f = unsafe { room.as_ptr().cast::<F>().read() };
    f();
}

/// # Safety
///
/// `room` holds a valid `F`, written by [`Inline::new`], and it is never
/// used again.
unsafe fn drop_in<F>(room: &mut Room) {
    // SAFETY: as for `call_in`; the value is dropped exactly once, here.
    unsafe { room.as_mut_ptr().cast::<F>().drop_in_place() };
}

/// A closure of at most [`WORDS`] words, stored in place.
///
/// Its `Send` and `Sync` are stated below, not inferred: the compiler sees
/// only plain words in the room and would take any closure for both.
pub(crate) struct Inline {
    room: Room,
    vtable: &'static VTable,
    /// Opts out of the inferred `Send` and `Sync` (a raw pointer has
    /// neither), so that the impls below are the only ones.
    _not_inferred: PhantomData<*const ()>,
}

// SAFETY: the room holds a closure of a type `F: Send` (`new` requires it),
// so moving the room to another thread, where it is called or dropped,
// moves an `F`, which is allowed.
unsafe impl Send for Inline {}

// SAFETY: a shared `&Inline` gives no access to the closure: calling takes
// `self` by value and dropping needs `&mut`, and no method reads the room
// through `&self`. Sharing one between threads lets them do nothing with
// the `F` inside, whatever `F` is.
unsafe impl Sync for Inline {}

impl Inline {
    /// Whether closures of type `F` fit.
    pub(crate) const fn fits<F>() -> bool {
        mem::size_of::<F>() <= mem::size_of::<Room>()
            && mem::align_of::<F>() <= mem::align_of::<Room>()
    }

    /// Stores `f`, or hands it back if it does not fit.
    #[inline]
    pub(crate) fn new<F: FnOnce() + Send + 'static>(f: F) -> Result<Inline, F> {
        if !Self::fits::<F>() {
            return Err(f);
        }
        let mut room = Room::uninit();
        // SAFETY: `fits` checked that an `F` is no larger and no more
        // aligned than the room, so the write is in bounds and aligned;
        // the room now owns `f`, and `call`/`Drop` use it exactly once.
        unsafe { room.as_mut_ptr().cast::<F>().write(f) };
        Ok(Inline {
            room,
            vtable: &VTableOf::<F>::VTABLE,
            _not_inferred: PhantomData,
        })
    }

    /// Calls the closure (consuming it).
    #[inline]
    pub(crate) fn call(self) {
        // Not dropped: ownership of the closure moves to `call_in`.
        let this = ManuallyDrop::new(self);
        // SAFETY: the room holds the valid `F` that `new` wrote and the
        // vtable is `F`'s; `this` is never dropped, so the closure is used
        // once, by `call_in` (which drops it, also if it panics).
        unsafe { (this.vtable.call)(this.room) }
    }
}

impl Drop for Inline {
    fn drop(&mut self) {
        // SAFETY: the room holds the valid `F` that `new` wrote (a called
        // `Inline` is never dropped, see `call`), and the vtable is `F`'s.
        unsafe { (self.vtable.drop)(&mut self.room) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct CountDrop(Arc<AtomicUsize>);
    impl Drop for CountDrop {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn a_called_closure_runs_once_and_drops_its_captures_once() {
        let drops = Arc::new(AtomicUsize::new(0));
        let guard = CountDrop(drops.clone());
        // One word: the guard's Arc; the closure counts its run through it.
        let task = Inline::new(move || {
            guard.0.fetch_add(10, Ordering::SeqCst);
            drop(guard);
        })
        .ok()
        .expect("one word fits");
        assert_eq!(drops.load(Ordering::SeqCst), 0);
        task.call();
        assert_eq!(drops.load(Ordering::SeqCst), 11, "ran once, dropped once");
    }

    #[test]
    fn a_dropped_closure_drops_its_captures_once_uncalled() {
        let drops = Arc::new(AtomicUsize::new(0));
        let guard = CountDrop(drops.clone());
        let task = Inline::new(move || drop(guard))
            .ok()
            .expect("one word fits");
        drop(task);
        assert_eq!(drops.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_panicking_closure_still_drops_its_captures_once() {
        let drops = Arc::new(AtomicUsize::new(0));
        let guard = CountDrop(drops.clone());
        let task = Inline::new(move || {
            let _guard = guard;
            panic!("boom");
        })
        .ok()
        .expect("fits");
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| task.call()));
        assert!(result.is_err());
        assert_eq!(drops.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn large_or_overaligned_closures_are_handed_back() {
        let big = [0u64; 2];
        assert!(Inline::new(move || assert_eq!(big[1], 0)).is_err());
        #[repr(align(32))]
        struct Aligned(u8);
        let aligned = Aligned(1);
        // The whole value is captured (a field alone would be captured as a u8).
        assert!(
            Inline::new(move || {
                let whole = aligned;
                assert_eq!(whole.0, 1);
            })
            .is_err()
        );
        assert!(Inline::fits::<fn()>());
        assert!(Inline::fits::<Arc<()>>());
        assert!(!Inline::fits::<(Arc<()>, usize)>());
    }
}
