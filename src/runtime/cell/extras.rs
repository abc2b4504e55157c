//! What few cells need, kept out of line: a name and the task's own stop
//! source.
//!
//! `unsafe` here for a measured need: a lock and an `Option` of the stop
//! source took two words of every cell, and the name a third, where one
//! pointer set once now holds both (`compare` bench, memory per `submit`).
#![allow(unsafe_code)]

use std::ptr;
use std::sync::Arc;

use crate::stop::StopState;
use crate::sync::{AtomicPtr, Ordering};

/// A cell's rarely used parts, in one word of the cell: the name (given
/// at submission, to few tasks) and the task's own stop source (made on
/// first use, by `StopToken::current` inside the task or by a cancel
/// that finds it running; most tasks never make one).
///
/// The parts live in a [`Rare`], made with the cell if it is named,
/// otherwise by the first caller of [`Extras::stop_state`]. Once there, a
/// `Rare` is neither replaced nor freed until the cell goes, so a
/// reference into it lives as long as the borrow of the cell.
///
/// Both pointers are set at most once, from null, by a compare-and-swap:
/// two threads that make one at once keep the winner's, and the loser
/// frees its own, which no one else saw. There is no lock, and no wait.
pub(crate) struct Extras(AtomicPtr<Rare>);

struct Rare {
    name: Option<Arc<str>>,
    /// `Arc::into_raw` of the task's stop source; null until it is made.
    stop: AtomicPtr<StopState>,
}

impl Extras {
    /// A cell's extras: nothing out of line unless it is named.
    #[inline]
    pub(crate) fn new(name: Option<Arc<str>>) -> Extras {
        let rare = match name {
            None => ptr::null_mut(),
            Some(name) => Rare::boxed(Some(name)),
        };
        Extras(AtomicPtr::new(rare))
    }

    /// The task's name, if it was given one.
    #[inline]
    pub(crate) fn name(&self) -> Option<&Arc<str>> {
        // ORDERING: Acquire, pairs with the Release of `set_once`, so the
        // `Rare` behind the pointer is seen whole.
        let rare = self.0.load(Ordering::Acquire);
        if rare.is_null() {
            return None;
        }
        // SAFETY: a `Rare` once published stays until `drop`, which needs
        // `&mut self`: it outlives this borrow.
        unsafe { (*rare).name.as_ref() }
    }

    /// The task's own stop source, made on first use; the same one for
    /// every caller, for as long as the cell lives.
    pub(crate) fn stop_state(&self) -> Arc<StopState> {
        let rare = set_once(
            &self.0,
            || Rare::boxed(None),
            |lost| {
                // SAFETY: `lost` came from `Rare::boxed` and no one else saw it.
                drop(unsafe { Box::from_raw(lost) });
            },
        );
        // SAFETY: as in `name`: the `Rare` outlives this borrow.
        let stop = unsafe { &(*rare).stop };
        let state = set_once(
            stop,
            || Arc::into_raw(StopState::new()).cast_mut(),
            |lost| {
                // SAFETY: `lost` came from `Arc::into_raw` and no one else
                // saw it: this drops the one reference it had.
                drop(unsafe { Arc::from_raw(lost) });
            },
        );
        // SAFETY: `state` came from `Arc::into_raw` and the `Rare` keeps
        // that reference until it is dropped, after this borrow: the count
        // is at least one, and this adds the one the new `Arc` owns.
        unsafe {
            Arc::increment_strong_count(state);
            Arc::from_raw(state)
        }
    }
}

impl Rare {
    fn boxed(name: Option<Arc<str>>) -> *mut Rare {
        Box::into_raw(Box::new(Rare {
            name,
            stop: AtomicPtr::new(ptr::null_mut()),
        }))
    }
}

/// The pointer in `at`, or, if it is null, `make`'s, put there by a
/// compare-and-swap; if another thread's got there first, that one, and
/// ours goes to `lost`.
#[inline]
fn set_once<T>(
    at: &AtomicPtr<T>,
    make: impl FnOnce() -> *mut T,
    lost: impl FnOnce(*mut T),
) -> *mut T {
    // ORDERING: Acquire, pairs with the Release of the winning
    // compare-and-swap: what the pointer points to is seen as made.
    let seen = at.load(Ordering::Acquire);
    if !seen.is_null() {
        return seen;
    }
    let made = make();
    // ORDERING: Release publishes what `made` points to; Acquire on
    // failure, as the load above.
    match at.compare_exchange(ptr::null_mut(), made, Ordering::AcqRel, Ordering::Acquire) {
        Ok(_) => made,
        Err(won) => {
            lost(made);
            won
        }
    }
}

impl Drop for Extras {
    /// Inline, since every cell's drop comes here and nearly every one
    /// finds nothing (a call was ten instructions a task, by callgrind).
    #[inline]
    fn drop(&mut self) {
        // ORDERING: Relaxed: the cell's last reference is dropped after
        // every other use of it (as `Arc` orders it).
        let rare = self.0.load(Ordering::Relaxed);
        if !rare.is_null() {
            free(rare);
        }
    }
}

#[cold]
fn free(rare: *mut Rare) {
    // SAFETY: published by `set_once` or `new` from `Rare::boxed`, and no
    // one can read it any more (the cell is being dropped).
    drop(unsafe { Box::from_raw(rare) });
}

impl Drop for Rare {
    fn drop(&mut self) {
        // ORDERING: Relaxed, as in `Extras::drop`.
        let stop = self.stop.load(Ordering::Relaxed);
        if !stop.is_null() {
            // SAFETY: published by `set_once` from `Arc::into_raw`: this
            // gives back the reference the `Rare` held.
            drop(unsafe { Arc::from_raw(stop) });
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn an_unnamed_task_makes_nothing_until_its_stop_source_is_asked_for() {
        let extras = Extras::new(None);
        assert!(extras.name().is_none());
        assert!(extras.0.load(Ordering::Relaxed).is_null());
        let first = extras.stop_state();
        let again = extras.stop_state();
        assert!(Arc::ptr_eq(&first, &again), "one stop source per task");
        assert!(extras.name().is_none());
        drop(extras);
        // The extras' own reference went with them.
        assert_eq!(Arc::strong_count(&first), 2);
    }

    #[test]
    fn a_named_task_keeps_its_name_beside_its_stop_source() {
        let name: Arc<str> = Arc::from("reindex");
        let extras = Extras::new(Some(name.clone()));
        assert_eq!(extras.name().map(|n| &**n), Some("reindex"));
        let stop = extras.stop_state();
        assert_eq!(extras.name().map(|n| &**n), Some("reindex"));
        assert!(Arc::ptr_eq(&stop, &extras.stop_state()));
        drop(extras);
        assert_eq!(Arc::strong_count(&name), 1);
        assert_eq!(Arc::strong_count(&stop), 1);
    }

    #[test]
    fn threads_that_make_the_stop_source_at_once_all_get_the_same_one() {
        for _ in 0..200 {
            let extras = Extras::new(None);
            let states: Vec<Arc<StopState>> = std::thread::scope(|s| {
                let racers: Vec<_> = (0..4).map(|_| s.spawn(|| extras.stop_state())).collect();
                racers.into_iter().map(|r| r.join().unwrap()).collect()
            });
            assert!(states.windows(2).all(|w| Arc::ptr_eq(&w[0], &w[1])));
            drop(extras);
            assert_eq!(Arc::strong_count(&states[0]), 4);
        }
    }
}
