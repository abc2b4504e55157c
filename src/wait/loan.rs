//! The loan of a waiter's condvar and mutex to a stop callback, and the
//! confirmer thread that notifies under a mutex someone else holds.

use std::marker::PhantomData;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Condvar as StdCondvar, Mutex as StdMutex, OnceLock, TryLockError};
use std::time::Duration;
use std::{mem, ptr, thread};

use crossbeam_channel::{Receiver, Sender};
use parking_lot::lock_api::RawMutex as _;
use parking_lot::{Condvar, Mutex, RawMutex};

use crate::stop::{StopCallback, StopToken};

/// What a stop callback needs of one condvar waiter: its condvar, and the
/// mutex it waits with. One implementation per library.
pub(super) trait Wake {
    /// Wakes every thread parked on the condvar.
    fn notify(&self);

    /// Notifies while holding the mutex, if it is free: a waiter between
    /// its stop check and its park holds the mutex, so a notify made under
    /// it cannot fall into that window. False (nothing done) if the mutex
    /// is held; never blocks.
    fn notify_locked(&self) -> bool;
}

/// A `parking_lot` condvar and the raw mutex under the waiter's guard.
pub(super) struct LotPair<'a> {
    condvar: &'a Condvar,
    raw: &'a RawMutex,
}

impl<'a> LotPair<'a> {
    #[allow(unsafe_code)]
    pub(super) fn new<T: ?Sized>(condvar: &'a Condvar, mutex: &'a Mutex<T>) -> LotPair<'a> {
        // SAFETY: `raw` is unsafe only because the raw mutex could unlock a
        // lock held through a guard; we unlock only what our own successful
        // `try_lock` locked (see `notify_locked`).
        let raw = unsafe { mutex.raw() };
        LotPair { condvar, raw }
    }
}

impl Wake for LotPair<'_> {
    fn notify(&self) {
        self.condvar.notify_all();
    }

    #[allow(unsafe_code)]
    fn notify_locked(&self) -> bool {
        if !self.raw.try_lock() {
            return false;
        }
        self.condvar.notify_all();
        // SAFETY: the lock was taken just above, on this thread, and is
        // released exactly once.
        unsafe { self.raw.unlock() };
        true
    }
}

/// A std condvar and the mutex of the waiter's guard. `Sync` (as a `Loan`
/// requires) only if `T: Send`.
pub(super) struct StdPair<'a, T: ?Sized> {
    pub(super) condvar: &'a StdCondvar,
    pub(super) mutex: &'a StdMutex<T>,
}

impl<T: ?Sized> Wake for StdPair<'_, T> {
    fn notify(&self) {
        self.condvar.notify_all();
    }

    fn notify_locked(&self) -> bool {
        let _held = match self.mutex.try_lock() {
            Ok(guard) => guard,
            // Held all the same. The poisoning is not ours to report: the
            // waiter reads the flag itself when it has the lock back.
            Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
            Err(TryLockError::WouldBlock) => return false,
        };
        // Our guard never poisons the mutex: nothing here can panic, and a
        // guard taken while the thread was already unwinding does not
        // poison it when dropped.
        self.condvar.notify_all();
        true
    }
}

/// A condvar waiter, as the stop side sees it: the waiter's `Wake` (its
/// condvar and mutex), usable only while `state` says so.
///
/// The waiter lends it for the length of one wait. Whoever uses it (the
/// stop callback, the confirmer thread) first moves `state` from `LENT` to
/// `IN_USE` and back; the waiter, when its wait ends, moves it to
/// `RETURNED`, spinning only while a use is in progress (a notify and a
/// `try_lock`: microseconds). After that nobody touches it again.
///
/// It is kept as a pointer, not as an address in a `usize`: the reference
/// made from it carries the provenance of the borrow it came from (Miri's
/// strict provenance checks that). Its `'static` is a lie told once, in
/// `CondvarWaker::register`, and kept honest by `state`.
pub(super) struct Loan {
    state: AtomicU8,
    waiter: *const (dyn Wake + Sync + 'static),
}

// SAFETY: the pointer is only turned into a reference inside `with`, under
// the `IN_USE` state that keeps the waiter's borrow alive (see there), on
// whichever thread holds the loan; what it points to is `Sync`. So the loan
// may move to, and be shared with, the stop callback's thread and the
// confirmer thread.
#[allow(unsafe_code)]
unsafe impl Send for Loan {}
// SAFETY: as for `Send`: every use goes through the `state` protocol.
#[allow(unsafe_code)]
unsafe impl Sync for Loan {}

pub(super) const LENT: u8 = 0;
pub(super) const IN_USE: u8 = 1;
pub(super) const RETURNED: u8 = 2;

impl Loan {
    /// Runs `f` with the borrowed waiter, unless it was returned.
    #[allow(unsafe_code)]
    fn with<R>(&self, f: impl FnOnce(&(dyn Wake + Sync)) -> R) -> Option<R> {
        // ORDERING: `state` is a lock on the waiter's borrow. Acquire here
        // and the Release store below order each use after the one before;
        // `give_back`'s Acquire orders every use before the borrow ends.
        if self
            .state
            .compare_exchange(LENT, IN_USE, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return None; // returned: the waiter's borrow may be gone
        }
        // SAFETY: the pointer comes from the borrow `CondvarWaker::register`
        // took for its lifetime 'w. The waker moves `state` to RETURNED in
        // its `drop`, before 'w ends, and cannot do so while we hold
        // IN_USE. So the waiter is alive here.
        let waiter = unsafe { &*self.waiter };
        let result = f(waiter);
        self.state.store(LENT, Ordering::Release);
        Some(result)
    }

    /// Notifies while holding the waiter's mutex (see
    /// `Wake::notify_locked`). True once done, or no longer needed.
    fn try_confirm(&self) -> bool {
        self.with(|waiter| waiter.notify_locked()).unwrap_or(true)
    }

    /// The waiter's wait is over: no one may use the borrow any more.
    fn give_back(&self) {
        loop {
            // ORDERING: Acquire pairs with the Release in `with`: the last
            // use happens before the waiter's borrow ends.
            match self
                .state
                .compare_exchange(LENT, RETURNED, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) | Err(RETURNED) => return,
                Err(_) => thread::yield_now(), // a notify is in progress
            }
        }
    }
}

/// Hands a loan the stop callback could not confirm at once (its mutex was
/// held) to the confirmer thread, which retries until it can, or until the
/// waiter gives the loan back. One such thread serves the whole process and
/// sleeps when it has nothing to confirm; a request to stop never blocks on
/// a mutex held by someone else.
pub(super) fn confirm_later(loan: Arc<Loan>) {
    static CONFIRMER: OnceLock<Option<Sender<Arc<Loan>>>> = OnceLock::new();
    let sender = CONFIRMER.get_or_init(|| {
        let (tx, rx) = crossbeam_channel::unbounded();
        let spawned = thread::Builder::new()
            .name("drainpool-stop-confirm".into())
            .spawn(move || confirmer(&rx));
        match spawned {
            Ok(_) => Some(tx),
            Err(e) => {
                log_error!("could not start the stop-confirmer thread: {e}");
                None
            }
        }
    });
    if let Some(sender) = sender {
        let _ = sender.send(loan);
    }
}

pub(super) fn confirmer(rx: &Receiver<Arc<Loan>>) {
    const FIRST: Duration = Duration::from_micros(100);
    const MOST: Duration = Duration::from_millis(8);
    let mut loans: Vec<Arc<Loan>> = Vec::new();
    let mut backoff = FIRST;
    loop {
        let next = if loans.is_empty() {
            rx.recv().ok()
        } else {
            rx.recv_timeout(backoff).ok()
        };
        match next {
            Some(loan) => {
                loans.push(loan);
                backoff = FIRST;
            }
            None => backoff = (backoff * 2).min(MOST),
        }
        loans.extend(rx.try_iter());
        loans.retain(|loan| !loan.try_confirm());
    }
}

/// A stop callback that wakes one condvar waiter, registered for the length
/// of one wait: the lifetime `'w` of the waiter's borrow.
///
/// Never `mem::forget` one: its `drop` is what ends the loan.
pub(super) struct CondvarWaker<'w> {
    loan: Arc<Loan>,
    registration: Option<StopCallback>,
    lent: PhantomData<&'w (dyn Wake + Sync + 'w)>,
}

impl<'w> CondvarWaker<'w> {
    /// Lends `waiter` to a stop callback until dropped.
    #[allow(unsafe_code)]
    pub(super) fn register(
        token: &StopToken,
        waiter: &'w (dyn Wake + Sync + 'w),
    ) -> CondvarWaker<'w> {
        let waiter: *const (dyn Wake + Sync + 'w) = ptr::from_ref(waiter);
        // SAFETY: changes the lifetime bound only (same type, same layout),
        // so that the loan can go to a `'static` stop callback and to the
        // confirmer thread. The pointer is used only inside `Loan::with`,
        // which stops using it once `drop` below has given the loan back;
        // the returned waker holds the borrow for `'w`, so the compiler sees
        // to it that `drop` runs before the waiter goes away.
        let waiter = unsafe {
            mem::transmute::<*const (dyn Wake + Sync + 'w), *const (dyn Wake + Sync + 'static)>(
                waiter,
            )
        };
        let loan = Arc::new(Loan {
            state: AtomicU8::new(LENT),
            waiter,
        });
        let for_callback = loan.clone();
        let registration = token.on_stop(move || {
            // Wakes a waiter already parked at once; then makes sure one that
            // was about to park cannot miss it.
            for_callback.with(|waiter| waiter.notify());
            if !for_callback.try_confirm() {
                confirm_later(for_callback);
            }
        });
        CondvarWaker {
            loan,
            registration: Some(registration),
            lent: PhantomData,
        }
    }
}

impl Drop for CondvarWaker<'_> {
    fn drop(&mut self) {
        self.loan.give_back();
        drop(self.registration.take());
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;

    use super::*;
    use crate::error::WaitError;
    use crate::stop::StopSource;
    use crate::wait::guards;
    use parking_lot::MutexGuard;

    /// Runs `f` on a thread of its own; fails, instead of hanging, if it
    /// has not returned within a minute (a lost wake-up).
    fn watched<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let _ = tx.send(f());
        });
        rx.recv_timeout(Duration::from_secs(60))
            .expect("the waiter was never woken: a lost wake-up (or it panicked)")
    }

    /// Requests the stop on another thread and waits for the request to
    /// return: its callback has run, and, the mutex being ours, could only
    /// hand the confirmation to the confirmer thread.
    fn request_elsewhere(source: &StopSource) {
        thread::scope(|s| {
            s.spawn(|| assert!(source.request_stop()));
        });
    }

    // The stop lands after the waiter's last check and before its park,
    // while it holds the mutex: the unlocked notify finds nobody parked, the
    // locked one cannot take the mutex. Only the confirmer, retrying once
    // the park releases the mutex, can wake it. Without it these hang.

    #[test]
    fn a_stop_between_check_and_park_is_confirmed_std() {
        let woke = watched(|| {
            let source = StopSource::new();
            let (mutex, condvar) = (StdMutex::new(()), StdCondvar::new());
            let pair = StdPair {
                condvar: &condvar,
                mutex: &mutex,
            };
            let guard = mutex.lock().unwrap();
            let (guard, woke) = source.token().condvar_wait(&pair, guard, |guard| {
                request_elsewhere(&source);
                (condvar.wait(guard).unwrap(), false)
            });
            drop(guard);
            woke
        });
        assert_eq!(woke, Err(WaitError::Interrupted));
    }

    #[test]
    fn a_stop_between_check_and_park_is_confirmed_parking_lot() {
        let woke = watched(|| {
            let source = StopSource::new();
            let (mutex, condvar) = (Mutex::new(()), Condvar::new());
            let mut guard = mutex.lock();
            let pair = LotPair::new(&condvar, MutexGuard::mutex(&guard));
            let (_, woke) = source.token().condvar_wait(&pair, &mut guard, |guard| {
                request_elsewhere(&source);
                condvar.wait(guard);
                (guard, false)
            });
            woke
        });
        assert_eq!(woke, Err(WaitError::Interrupted));
    }

    #[test]
    fn a_guard_is_recognised_by_its_mutex_alone() {
        let (a, b) = (StdMutex::new(1u64), StdMutex::new(2u64));
        let guard = a.lock().unwrap();
        assert!(guards(&a, &guard));
        assert!(!guards(&b, &guard));
        // Zero-sized data cannot be placed: such a guard is taken on trust.
        let (unit, other) = (StdMutex::new(()), StdMutex::new(()));
        let guard = unit.lock().unwrap();
        assert!(guards(&unit, &guard));
        assert!(guards(&other, &guard));
    }
}
