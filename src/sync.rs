//! The synchronisation primitives of the model-checked core, swapped for
//! loom's under `cfg(loom)`.
//!
//! It also holds the crate's one waiting primitive, [`Waiters`].
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
pub(crate) use std::sync::atomic::{
    AtomicBool, AtomicPtr, AtomicU8, AtomicU64, AtomicUsize, Ordering, fence,
};
#[cfg(not(loom))]
pub(crate) use std::thread::{ThreadId, current as current_thread};

#[cfg(loom)]
pub(crate) use self::model::{Condvar, Mutex};
#[cfg(loom)]
pub(crate) use loom::sync::atomic::{
    AtomicBool, AtomicPtr, AtomicU8, AtomicU64, AtomicUsize, Ordering, fence,
};
// Loom's threads are coroutines on one OS thread: std's ids would all match.
#[cfg(loom)]
pub(crate) use loom::thread::{ThreadId, current as current_thread};

/// A cell written and read through raw pointers: `std`'s `UnsafeCell`, or
/// under loom loom's, which checks that no two threads touch it at once.
#[cfg(not(loom))]
pub(crate) struct RawCell<T>(std::cell::UnsafeCell<T>);

#[cfg(not(loom))]
impl<T> RawCell<T> {
    #[inline(always)]
    pub(crate) fn new(value: T) -> RawCell<T> {
        RawCell(std::cell::UnsafeCell::new(value))
    }

    /// Runs `f` with a pointer to the value; the caller is the only one
    /// touching it meanwhile.
    #[inline(always)]
    pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
        f(self.0.get())
    }
}

#[cfg(loom)]
pub(crate) struct RawCell<T>(loom::cell::UnsafeCell<T>);

#[cfg(loom)]
impl<T> RawCell<T> {
    pub(crate) fn new(value: T) -> RawCell<T> {
        RawCell(loom::cell::UnsafeCell::new(value))
    }

    pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
        self.0.with_mut(f)
    }
}

/// The turns of `spin_turn` that spin; every later one yields.
pub(crate) const SPIN_TURNS: u32 = 6;

/// One turn of a short wait for another thread that is in the middle of a
/// few instructions (a producer between claiming a slot and filling it):
/// a spin hint for the first turns, then the processor is given up, so a
/// preempted writer gets to finish. Under loom, always a yield (loom must
/// switch threads for the loop to end).
#[inline]
pub(crate) fn spin_turn(turn: &mut u32) {
    #[cfg(loom)]
    {
        let _ = turn;
        loom::thread::yield_now();
    }
    #[cfg(not(loom))]
    {
        if *turn < SPIN_TURNS {
            for _ in 0..(1u32 << *turn) {
                std::hint::spin_loop();
            }
            *turn += 1;
        } else {
            std::thread::yield_now();
        }
    }
}

/// Entries a taker took in a row without finding its queue empty: tells a
/// taker that has just caught up with a stream of entries (a producer
/// queueing tiny tasks in a loop) from one that gets an entry now and
/// then.
///
/// A worker of the pool's queue that caught up with a stream waits
/// [`CATCH_UP_GAP_NANOS`] before it looks again, instead of looking again
/// at once, as it does otherwise (where the next entry's latency is what
/// counts). Each look at an empty queue reads the tail the producer
/// writes at every push, and a taker right behind the producer also
/// writes the slot and task lines the producer is writing next: those
/// lines then move between the two cores at every push, and the producer,
/// the bottleneck of a stream of tiny tasks, slows down. After the gap the
/// taker takes what came meanwhile with one read of the tail (`fifo.rs`),
/// and its streak is long again. Measured in the compare bench (2
/// workers, one producer, tiny tasks): `execute` of 1M from 38-45 to 27
/// ns per task, `submit` + `join` of 100k from 190-260 to 130-155. A
/// request now and then (one task, then its answer, through a channel) is
/// never in a long streak: its round trip measured the same (0.5-0.6 µs;
/// 12 µs with a gap after every take). A scope's queue always waits
/// (`scope_queue.rs`).
#[derive(Default)]
pub(crate) struct Streak(u32);

/// Entries in a row that make a streak long (see [`Streak`]).
const LONG_STREAK: u32 = 16;

/// How long a taker that caught up with a stream waits before it looks
/// again (see [`Streak`]): 2.5, 5 and 10 µs measured alike; a spin hint
/// about 25 ns looked again too soon.
pub(crate) const CATCH_UP_GAP_NANOS: u64 = 5_000;

impl Streak {
    /// The taker took an entry.
    #[inline]
    pub(crate) fn took(&mut self) {
        self.0 = self.0.saturating_add(1);
    }

    /// The taker found its queue empty: true if its streak was long (it
    /// caught up with a stream, and should wait before it looks again).
    /// A new streak starts.
    #[inline]
    pub(crate) fn caught_up(&mut self) -> bool {
        std::mem::take(&mut self.0) >= LONG_STREAK
    }
}

/// Spins for about `nanos` nanoseconds, reading the clock once per 32 spin
/// hints (whose length differs from one processor to the next by ten
/// times). Under loom, one yield.
#[inline]
pub(crate) fn pause_for(nanos: u64) {
    #[cfg(loom)]
    {
        let _ = nanos;
        loom::thread::yield_now();
    }
    #[cfg(not(loom))]
    {
        let start = std::time::Instant::now();
        while start.elapsed().as_nanos() < u128::from(nanos) {
            for _ in 0..32 {
                std::hint::spin_loop();
            }
        }
    }
}

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

/// The crate's one waiting primitive: threads wait, with a deadline or
/// without, until a condition holds; the threads that change what the
/// condition reads then call [`Waiters::notify`]. It keeps the count of
/// waiters, so a change nobody waits for costs a fence and a load, not a
/// lock (as crossbeam-utils' `WaitGroup` and parker keep the waiting in
/// one place instead of a deadline loop and a waiter counter at each call
/// site). The condition must read only atomics: it is tested under this
/// primitive's own lock, not under the lock of the data.
///
/// Used by `await_termination` and the graceful drain (the lifecycle),
/// the drain's wait for the intake gate to clear, `wait_idle`, and
/// `TaskGroup::wait`. (A cell's `join` waits for a result that lives under
/// the cell's own lock, so it keeps its condvar there.)
///
/// # No lost wake-up
///
/// A waiter counts itself (SeqCst) and fences before it first tests the
/// condition, and tests it under `lock`. A changer changes the state
/// first, then fences and reads the count (`notify`); seeing a waiter, it
/// notifies under `lock`. By the two fences, either the waiter's test sees
/// the change, or the changer sees the waiter; and then it cannot notify
/// between the waiter's test and its park, both being under `lock`.
pub(crate) struct Waiters {
    count: AtomicUsize,
    lock: Mutex<()>,
    cond: Condvar,
}

impl Waiters {
    pub(crate) fn new() -> Waiters {
        Waiters {
            count: AtomicUsize::new(0),
            lock: Mutex::new(()),
            cond: Condvar::new(),
        }
    }

    /// Waits until `done` returns true or the deadline (`None`: none)
    /// passes; returns what `done` said last.
    pub(crate) fn wait_until(
        &self,
        deadline: Option<std::time::Instant>,
        mut done: impl FnMut() -> bool,
    ) -> bool {
        if done() {
            return true;
        }
        struct Registered<'a>(&'a AtomicUsize);
        impl Drop for Registered<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::SeqCst);
            }
        }
        // ORDERING: SeqCst registration and fence, against the changer's
        // fence and count load in `notify` (see the type's docs).
        self.count.fetch_add(1, Ordering::SeqCst);
        let _registered = Registered(&self.count);
        fence(Ordering::SeqCst);
        let mut guard = self.lock.lock();
        loop {
            if done() {
                return true;
            }
            match deadline {
                None => self.cond.wait(&mut guard),
                Some(deadline) => {
                    if self.cond.wait_until(&mut guard, deadline).timed_out() {
                        return done();
                    }
                }
            }
        }
    }

    /// Wakes the waiters, if there are any, after the caller changed what
    /// their condition reads.
    #[inline]
    pub(crate) fn notify(&self) {
        self.notify_if(|| true);
    }

    /// Like `notify`, only if `worth_it` (tested after the fence, so it
    /// sees what the waiters' registrations ordered before it).
    #[inline]
    pub(crate) fn notify_if(&self, worth_it: impl FnOnce() -> bool) {
        // ORDERING: the fence orders the caller's change before the count
        // load (see the type's docs).
        fence(Ordering::SeqCst);
        if self.count.load(Ordering::Relaxed) > 0 && worth_it() {
            self.wake_all();
        }
    }

    #[cold]
    #[inline(never)]
    fn wake_all(&self) {
        let _guard = self.lock.lock();
        self.cond.notify_all();
    }
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

        pub(crate) fn notify_one(&self) -> bool {
            self.0.notify_one();
            true
        }
    }
}
