//! Interruptible waits: sleep, channel receive, condvar wait and lock
//! acquisition that return early when a [`StopToken`] fires.
//!
//! This module is private: what a user must know about each wait (what
//! wakes it, how fast, what it costs) is on the public `StopToken` methods.
//! This note is for maintainers: the three mechanisms, and why none can
//! miss a stop.
//!
//! - Select waits (`sleep`, `recv`, `recv_timeout`) select on the wrapped
//!   channel (or nothing) plus one channel per stop source that is
//!   disconnected when the stop is requested. Disconnection is a state, not
//!   an event, so there is no window in which a request can be missed, and
//!   no polling.
//! - Condvar waits (`wait*` for parking_lot, `wait*_std` for std) all go
//!   through `StopToken::condvar_wait`. The waiter lends its condvar and
//!   mutex (a `Wake`) to a stop callback for the length of one wait, through
//!   a `Loan`; the callback notifies the condvar, then notifies again while
//!   holding the mutex, so the notification cannot fall between the
//!   waiter's check and its park (the waiter holds the mutex then). The
//!   callback only ever *tries* the mutex: if it is held, the process-wide
//!   confirmer thread retries with backoff until it gets it or the wait is
//!   over, so a request to stop never waits on another thread's lock.
//! - Lock waits cannot be woken inside the library's own lock: `lock` waits
//!   in `parking_lot`'s timed lock, in slices, and checks the token between
//!   them; `lock_std` (std has no timed lock) tries, parks with a timeout,
//!   and tries again, and a stop callback unparks it.

use std::convert::Infallible;
use std::sync::{
    LockResult, Mutex as StdMutex, MutexGuard as StdMutexGuard, PoisonError, TryLockError,
};
use std::time::{Duration, Instant};
use std::{mem, ptr, thread};

use crossbeam_channel::{Receiver, Select};
use parking_lot::{Mutex, MutexGuard};

use crate::error::{Interrupted, WaitError};
use crate::running::{BlockedOn, Blocking};
use crate::state::deadline_after;
use crate::stop::StopToken;

mod condvar;
mod loan;

/// The first and largest slice of a `lock` or `lock_std` wait.
const LOCK_SLICE_MIN: Duration = Duration::from_micros(50);
const LOCK_SLICE_MAX: Duration = Duration::from_millis(1);

/// What ended a select-based wait.
enum Woke<T> {
    Message(Result<T, crossbeam_channel::RecvError>),
    Stopped,
    TimedOut,
}

impl StopToken {
    /// Waits on `rx` (if any) and this token's stop channels until the
    /// deadline (`None`: forever); recorded as a wait on `on` meanwhile.
    fn select<T>(
        &self,
        rx: Option<&Receiver<T>>,
        deadline: Option<Instant>,
        on: BlockedOn,
    ) -> Woke<T> {
        if self.is_stop_requested() {
            return Woke::Stopped;
        }
        // Also around a receive that finds a message at once: a record
        // set and cleared within the call, not worth a `try_recv` more.
        let _blocked = Blocking::enter(on);
        let stops: Vec<&Receiver<Infallible>> = self.states().iter().map(|s| s.closed()).collect();
        if rx.is_none() && stops.is_empty() {
            // Nothing can wake us but time.
            match deadline {
                Some(d) => {
                    let now = Instant::now();
                    if d > now {
                        thread::sleep(d - now);
                    }
                }
                None => loop {
                    thread::park();
                },
            }
            return Woke::TimedOut;
        }
        let mut select = Select::new();
        let user = rx.map(|rx| select.recv(rx));
        for stop in &stops {
            select.recv(stop);
        }
        let operation = match deadline {
            None => select.select(),
            Some(d) => match select.select_deadline(d) {
                Ok(operation) => operation,
                Err(_) => return Woke::TimedOut,
            },
        };
        match (user, rx) {
            (Some(index), Some(rx)) if operation.index() == index => {
                Woke::Message(operation.recv(rx))
            }
            _ => {
                let stop = stops[operation.index() - usize::from(user.is_some())];
                let _ = operation.recv(stop); // disconnected: the stop was requested
                Woke::Stopped
            }
        }
    }

    /// Sleeps for `duration`, or until a stop is requested.
    /// `Duration::MAX` sleeps until a stop is requested.
    ///
    /// A stop wakes it at once, also one requested just as the sleep
    /// begins: the sleep selects on a channel that the request disconnects,
    /// a state that a late sleeper still sees. Nothing polls.
    ///
    /// # Errors
    ///
    /// [`Interrupted`] if a stop was requested before or during the sleep.
    ///
    /// # Examples
    ///
    /// ```
    /// use drainpool::StopToken;
    /// use std::time::Duration;
    ///
    /// // Outside a pool task the current token never fires: a plain sleep.
    /// assert!(StopToken::current().sleep(Duration::from_millis(1)).is_ok());
    /// ```
    pub fn sleep(&self, duration: Duration) -> Result<(), Interrupted> {
        match self.select::<()>(None, deadline_after(duration), BlockedOn::Sleep) {
            Woke::Stopped => Err(Interrupted),
            Woke::TimedOut | Woke::Message(_) => Ok(()),
        }
    }

    /// Receives from `rx`, like [`Receiver::recv`], or returns early when a
    /// stop is requested.
    ///
    /// A stop wakes it at once, as it does [`sleep`](Self::sleep): the
    /// receive selects on `rx` and on a channel that the request
    /// disconnects. Nothing polls.
    ///
    /// # Errors
    ///
    /// [`WaitError::Interrupted`] if a stop was requested before or during
    /// the wait (a stop requested before the call wins over a waiting
    /// message); [`WaitError::Disconnected`] if the channel is empty and
    /// disconnected.
    ///
    /// # Examples
    ///
    /// ```
    /// use drainpool::{StopSource, WaitError};
    /// use std::time::Duration;
    ///
    /// let source = StopSource::new();
    /// let token = source.token();
    /// let (_tx, rx) = drainpool::crossbeam_channel::unbounded::<u32>();
    /// let waiter = std::thread::spawn(move || token.recv(&rx));
    /// source.request_stop(); // wakes the receive at once
    /// assert_eq!(waiter.join().unwrap(), Err(WaitError::Interrupted));
    /// assert!(source.token().sleep(Duration::from_secs(60)).is_err()); // no wait at all
    /// ```
    pub fn recv<T>(&self, rx: &Receiver<T>) -> Result<T, WaitError> {
        self.recv_deadline(rx, None)
    }

    /// Like [`recv`](Self::recv), giving up after `timeout`
    /// (`Duration::MAX`: never).
    ///
    /// # Errors
    ///
    /// As [`recv`](Self::recv), and [`WaitError::Timeout`] when the timeout
    /// elapses first.
    ///
    /// # Examples
    ///
    /// ```
    /// use drainpool::{StopToken, WaitError};
    /// use std::time::Duration;
    ///
    /// let (tx, rx) = drainpool::crossbeam_channel::unbounded();
    /// tx.send(5).unwrap();
    /// let token = StopToken::never();
    /// assert_eq!(token.recv_timeout(&rx, Duration::ZERO), Ok(5));
    /// assert_eq!(token.recv_timeout(&rx, Duration::ZERO), Err(WaitError::Timeout));
    /// ```
    pub fn recv_timeout<T>(&self, rx: &Receiver<T>, timeout: Duration) -> Result<T, WaitError> {
        self.recv_deadline(rx, deadline_after(timeout))
    }

    fn recv_deadline<T>(
        &self,
        rx: &Receiver<T>,
        deadline: Option<Instant>,
    ) -> Result<T, WaitError> {
        match self.select(Some(rx), deadline, BlockedOn::Recv) {
            Woke::Message(Ok(value)) => Ok(value),
            Woke::Message(Err(_)) => Err(WaitError::Disconnected),
            Woke::Stopped => Err(WaitError::Interrupted),
            Woke::TimedOut => Err(WaitError::Timeout),
        }
    }

    /// Locks `mutex`, or gives up when a stop is requested. The guard is
    /// the ordinary `parking_lot` guard: it releases the lock when dropped,
    /// also when the thread unwinds from a panic.
    ///
    /// An unlock by the holder wakes this wait at once. A stop cannot wake
    /// `parking_lot`'s own lock wait, so this waits in timed slices, growing
    /// from 50 µs to 1 ms, and checks the token between them: a stop is
    /// noticed within about a millisecond. An uncontended lock costs one
    /// `try_lock` more than a plain one; a token that can never fire takes
    /// the plain blocking lock.
    ///
    /// # Errors
    ///
    /// [`Interrupted`] if a stop was requested before the lock was taken.
    ///
    /// # Examples
    ///
    /// ```
    /// use drainpool::StopToken;
    /// use drainpool::parking_lot::Mutex;
    ///
    /// let data = Mutex::new(vec![1, 2]);
    /// let mut guard = StopToken::never().lock(&data).unwrap();
    /// guard.push(3);
    /// ```
    pub fn lock<'m, T: ?Sized>(
        &self,
        mutex: &'m Mutex<T>,
    ) -> Result<MutexGuard<'m, T>, Interrupted> {
        self.check()?;
        if let Some(guard) = mutex.try_lock() {
            return Ok(guard);
        }
        let _blocked = Blocking::enter(BlockedOn::Lock);
        if self.states().is_empty() {
            return Ok(mutex.lock());
        }
        let mut slice = LOCK_SLICE_MIN;
        loop {
            // No lost wake-up to argue: nothing parks untimed; the token is
            // looked at again after every slice.
            if let Some(guard) = mutex.try_lock_for(slice) {
                return Ok(guard);
            }
            self.check()?;
            slice = (slice * 2).min(LOCK_SLICE_MAX);
        }
    }

    /// Locks std's `mutex`, like [`std::sync::Mutex::lock`], or gives up
    /// when a stop is requested. The guard is std's ordinary guard.
    ///
    /// # How the wait is bounded, and what it costs
    ///
    /// std has no timed lock, and nothing but an unlock wakes its lock
    /// wait; so this tries the lock, and while it is held, parks the
    /// thread with a timeout and tries again. The timeouts grow from 50 µs
    /// to 1 ms.
    ///
    /// - A stop wakes it at once: a stop callback unparks the thread, so
    ///   neither how long it has waited nor its slice matters. Measured on
    ///   a shared, busy 2-core machine, for stops landing 0 to 5 ms into the
    ///   wait: 11 to 15 µs from `request_stop()` to this call returning
    ///   (median), 99% within 35 µs (the ignored test
    ///   `lock_std_stop_latency` in `tests/std_waits.rs`; `cargo bench
    ///   --bench stop_latency` sets it beside the other waits). Waiting out
    ///   the slice instead would take 0.4 ms (median), up to 1 ms.
    /// - An unlock is noticed at the next try: after a long hold, within
    ///   about 1 ms of the unlock. The wait is not fair: a thread blocked in
    ///   a plain `lock()` is woken by the unlock and usually gets the lock
    ///   first.
    /// - While it waits, the thread wakes to try the lock after 50, 100,
    ///   200, 400 and 800 µs, then once a millisecond: about a thousand
    ///   wake-ups a second per waiting thread, each one `try_lock`. An
    ///   uncontended lock costs one `try_lock`; a contended one also
    ///   registers a stop callback (an allocation). With a token that can
    ///   never fire this is the plain blocking `lock()`.
    /// - It parks with `std::thread::park_timeout`: code of your own that
    ///   uses `thread::park` on this thread may see a spurious wake-up,
    ///   which `park` allows anyway.
    ///
    /// # Errors
    ///
    /// `Err(`[`Interrupted`]`)` if a stop was requested before the lock was
    /// taken (a stop requested before the call wins over a free lock).
    /// Otherwise `Ok` with std's own [`LockResult`]: `Err(PoisonError)`,
    /// holding the guard, if the mutex is poisoned.
    ///
    /// # Examples
    ///
    /// ```
    /// use drainpool::{Interrupted, StopSource, StopToken};
    /// use std::sync::{Arc, Mutex};
    ///
    /// let data = Arc::new(Mutex::new(vec![1, 2]));
    /// StopToken::never().lock_std(&data)?.unwrap().push(3);
    ///
    /// // Blocked behind a holder that never lets go, until a stop.
    /// let held = data.lock().unwrap();
    /// let source = StopSource::new();
    /// let (token, in_thread) = (source.token(), data.clone());
    /// let waiter = std::thread::spawn(move || token.lock_std(&in_thread).map(drop));
    /// source.request_stop();
    /// assert_eq!(waiter.join().unwrap(), Err(Interrupted));
    /// drop(held);
    /// # Ok::<(), Interrupted>(())
    /// ```
    pub fn lock_std<'m, T: ?Sized>(
        &self,
        mutex: &'m StdMutex<T>,
    ) -> Result<LockResult<StdMutexGuard<'m, T>>, Interrupted> {
        self.check()?;
        if let Some(locked) = try_lock_std(mutex) {
            return Ok(locked);
        }
        let _blocked = Blocking::enter(BlockedOn::Lock);
        if self.states().is_empty() {
            return Ok(mutex.lock());
        }
        let me = thread::current();
        let _unpark = self.on_stop(move || me.unpark());
        let mut slice = LOCK_SLICE_MIN;
        loop {
            // No lost wake-up: the callback is registered before this check.
            // A stop requested before it is seen here; one requested after
            // it unparks us after raising the flag: either before we park
            // (the park returns at once: unpark leaves a token) or while we
            // are parked. Either way the next check sees it.
            self.check()?;
            thread::park_timeout(slice);
            if let Some(locked) = try_lock_std(mutex) {
                return Ok(locked);
            }
            slice = (slice * 2).min(LOCK_SLICE_MAX);
        }
    }
}

/// std's `try_lock` as `lock` would answer: `None` while the mutex is held.
fn try_lock_std<T: ?Sized>(mutex: &StdMutex<T>) -> Option<LockResult<StdMutexGuard<'_, T>>> {
    match mutex.try_lock() {
        Ok(guard) => Some(Ok(guard)),
        Err(TryLockError::Poisoned(poisoned)) => Some(Err(poisoned)),
        Err(TryLockError::WouldBlock) => None,
    }
}

/// `value`, as std's `Condvar::wait` reports it: inside a `PoisonError` if
/// `mutex` is poisoned. The caller holds the lock (the guard is in
/// `value`), so no other holder's panic can poison it meanwhile.
fn poisoned_if<T: ?Sized, V>(mutex: &StdMutex<T>, value: V) -> LockResult<V> {
    if mutex.is_poisoned() {
        Err(PoisonError::new(value))
    } else {
        Ok(value)
    }
}

/// False if `guard`'s data visibly does not lie inside `mutex`, as that of
/// a guard of `mutex` does. (std's guard cannot name its mutex; two
/// mutexes never overlap, unless one holds the other.) A zero-sized value
/// may sit at the very end of its mutex, which is where the next object
/// begins, so for one the check cannot tell two adjacent mutexes apart and
/// says true (seen on Windows: the test below failed there).
fn guards<T: ?Sized>(mutex: &StdMutex<T>, guard: &StdMutexGuard<'_, T>) -> bool {
    if mem::size_of_val::<T>(guard) == 0 {
        return true;
    }
    let start = ptr::from_ref(mutex).cast::<u8>().addr();
    let data = ptr::from_ref::<T>(guard).cast::<u8>().addr();
    (start..start + mem::size_of_val(mutex)).contains(&data)
}
