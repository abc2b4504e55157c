//! The synchronisation primitives of the model-checked core, swapped for
//! loom's under `cfg(loom)`.
//!
//! `state.rs` (the lifecycle, the intake gate, the bounded queue's room),
//! `handle.rs` (a submitted task's cell and its claim) and `stop.rs` (stop
//! requests and their callbacks) take their atomics, mutexes, condvars and
//! thread ids from here, so that
//! `RUSTFLAGS="--cfg loom" cargo test --release --test 'loom_*'` explores
//! every interleaving of the protocols that keep a racing shutdown, cancel
//! or stop request from losing a task or a wake-up (the models are in
//! `tests/loom_*.rs`; they reach the pieces through the hidden
//! `drainpool::model` module, which exists only under `cfg(loom)`).
//!
//! Outside loom these are `std`'s atomics and `parking_lot`'s locks,
//! unchanged. Under loom, a timed wait cannot model time and waits as an
//! untimed one; the models do not use timeouts.

#[cfg(not(loom))]
pub(crate) use parking_lot::{Condvar, Mutex};
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering};
#[cfg(not(loom))]
pub(crate) use std::thread::{ThreadId, current as current_thread};

#[cfg(loom)]
pub(crate) use self::model::{Condvar, Mutex};
#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering};
// Loom's threads are coroutines on one OS thread: std's ids would all match.
#[cfg(loom)]
pub(crate) use loom::thread::{ThreadId, current as current_thread};

/// Marks the middle of a Dekker pair: a SeqCst write here, a SeqCst read of
/// another location after it.
///
/// Outside loom the SeqCst accesses alone order the pair (their single
/// total order), so this is nothing. Loom regards SeqCst *accesses* as
/// AcqRel and raises false alarms on such pairs (its README, "Unsupported
/// features"), but models `fence(SeqCst)`; so under loom this is that fence,
/// and the models check the protocol's logic with the ordering the real
/// accesses provide.
#[inline(always)]
pub(crate) fn dekker_fence() {
    #[cfg(loom)]
    loom::sync::atomic::fence(Ordering::SeqCst);
}

/// `parking_lot`'s lock API over loom's std-like one.
#[cfg(loom)]
mod model {
    use std::ops::{Deref, DerefMut};
    use std::time::Instant;

    #[derive(Debug, Default)]
    pub(crate) struct Mutex<T>(loom::sync::Mutex<T>);

    #[derive(Debug)]
    pub(crate) struct MutexGuard<'a, T>(Option<loom::sync::MutexGuard<'a, T>>);

    impl<T> Mutex<T> {
        pub(crate) fn new(value: T) -> Self {
            Mutex(loom::sync::Mutex::new(value))
        }

        pub(crate) fn get_mut(&mut self) -> &mut T {
            self.0
                .get_mut()
                .expect("loom mutexes are not poisoned here")
        }

        pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
            MutexGuard(Some(
                self.0.lock().expect("loom mutexes are not poisoned here"),
            ))
        }
    }

    impl<T> Deref for MutexGuard<'_, T> {
        type Target = T;
        fn deref(&self) -> &T {
            self.0.as_ref().expect("guard present")
        }
    }

    impl<T> DerefMut for MutexGuard<'_, T> {
        fn deref_mut(&mut self) -> &mut T {
            self.0.as_mut().expect("guard present")
        }
    }

    #[derive(Debug, Default)]
    pub(crate) struct Condvar(loom::sync::Condvar);

    /// Like `parking_lot::WaitTimeoutResult`; never timed out under loom.
    pub(crate) struct WaitTimeoutResult;

    impl WaitTimeoutResult {
        pub(crate) fn timed_out(&self) -> bool {
            false
        }
    }

    impl Condvar {
        pub(crate) fn new() -> Self {
            Condvar(loom::sync::Condvar::new())
        }

        pub(crate) fn wait<T>(&self, guard: &mut MutexGuard<'_, T>) {
            let inner = guard.0.take().expect("guard present");
            guard.0 = Some(self.0.wait(inner).expect("not poisoned"));
        }

        pub(crate) fn wait_until<T>(
            &self,
            guard: &mut MutexGuard<'_, T>,
            _deadline: Instant,
        ) -> WaitTimeoutResult {
            self.wait(guard);
            WaitTimeoutResult
        }

        pub(crate) fn notify_all(&self) -> bool {
            self.0.notify_all();
            true
        }
    }
}
