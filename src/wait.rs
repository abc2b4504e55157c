//! Interruptible waits: sleep, channel receive, condvar wait and lock
//! acquisition that return early when a [`StopToken`] fires.
//!
//! A running task hears a stop request only if its waits wake up. Each wait
//! here behaves exactly like the wait it wraps, except that it returns
//! [`Interrupted`] (or [`WaitError::Interrupted`]) once a stop is requested,
//! whether the request came a moment before the wait began or during it.
//!
//! ```
//! use drainpool::{StopSource, WaitError};
//! use std::time::Duration;
//!
//! let source = StopSource::new();
//! let token = source.token();
//! let (_tx, rx) = crossbeam_channel::unbounded::<u32>();
//! let waiter = std::thread::spawn(move || token.recv(&rx));
//! source.request_stop(); // wakes the receive at once
//! assert_eq!(waiter.join().unwrap(), Err(WaitError::Interrupted));
//! assert!(source.token().sleep(Duration::from_secs(60)).is_err()); // no wait at all
//! ```
//!
//! # How each wait wakes
//!
//! - `sleep`, `recv`, `recv_timeout` select on the wrapped channel (or
//!   nothing) plus one channel per stop source that is disconnected when the
//!   stop is requested. Disconnection is a state, not an event, so there is
//!   no window in which a request can be missed, and no polling.
//! - `wait`, `wait_while`, `wait_timeout` park on the caller's condvar; a
//!   stop callback notifies that condvar while holding the caller's mutex, so
//!   the notification cannot fall between the waiter's check and its park.
//!   If another thread holds that mutex for long, the callback gives up
//!   confirming after 100 ms and notifies anyway (logged at warn level).
//! - `lock` cannot be woken inside `parking_lot`'s own park, so it waits in
//!   timed slices (growing from 50 µs to 1 ms) and checks the token between
//!   them: a lock holder's unlock still wakes it at once, and a stop wakes it
//!   within about a millisecond.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Select};
use parking_lot::lock_api::{RawMutex as _, RawMutexTimed};
use parking_lot::{Condvar, Mutex, MutexGuard, RawMutex};

use crate::error::{Interrupted, WaitError};
use crate::state::deadline_after;
use crate::stop::{StopCallback, StopToken};

/// How long a stop callback keeps trying to take a condvar waiter's mutex
/// (to notify it without a lost wake-up) before notifying without it.
pub(crate) const CONFIRM_LIMIT: Duration = Duration::from_millis(100);

/// The first and largest slice of a `lock` wait.
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
    /// deadline (`None`: forever).
    fn select<T>(&self, rx: Option<&Receiver<T>>, deadline: Option<Instant>) -> Woke<T> {
        if self.is_stop_requested() {
            return Woke::Stopped;
        }
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
        match self.select::<()>(None, deadline_after(duration)) {
            Woke::Stopped => Err(Interrupted),
            Woke::TimedOut | Woke::Message(_) => Ok(()),
        }
    }

    /// Receives from `rx`, like [`Receiver::recv`], or returns early when a
    /// stop is requested.
    ///
    /// # Errors
    ///
    /// [`WaitError::Interrupted`] if a stop was requested before or during
    /// the wait (a stop requested before the call wins over a waiting
    /// message); [`WaitError::Disconnected`] if the channel is empty and
    /// disconnected.
    pub fn recv<T>(&self, rx: &Receiver<T>) -> Result<T, WaitError> {
        self.recv_deadline(rx, None)
    }

    /// Like [`recv`](Self::recv), giving up after `timeout`.
    ///
    /// # Errors
    ///
    /// As [`recv`](Self::recv), and [`WaitError::Timeout`] when the timeout
    /// elapses first.
    pub fn recv_timeout<T>(&self, rx: &Receiver<T>, timeout: Duration) -> Result<T, WaitError> {
        self.recv_deadline(rx, deadline_after(timeout))
    }

    fn recv_deadline<T>(
        &self,
        rx: &Receiver<T>,
        deadline: Option<Instant>,
    ) -> Result<T, WaitError> {
        match self.select(Some(rx), deadline) {
            Woke::Message(Ok(value)) => Ok(value),
            Woke::Message(Err(_)) => Err(WaitError::Disconnected),
            Woke::Stopped => Err(WaitError::Interrupted),
            Woke::TimedOut => Err(WaitError::Timeout),
        }
    }

    /// Blocks on `condvar` like [`Condvar::wait`], or until a stop is
    /// requested. As with any condvar, the wait may also end spuriously:
    /// re-check the condition, or use [`wait_while`](Self::wait_while).
    ///
    /// # Errors
    ///
    /// [`Interrupted`] if a stop was requested before or during the wait;
    /// the guard still holds the lock.
    ///
    /// # Examples
    ///
    /// ```
    /// use drainpool::StopSource;
    /// use parking_lot::{Condvar, Mutex};
    /// use std::sync::Arc;
    ///
    /// let pair = Arc::new((Mutex::new(false), Condvar::new()));
    /// let source = StopSource::new();
    /// let (token, waiter_pair) = (source.token(), pair.clone());
    /// let waiter = std::thread::spawn(move || {
    ///     let (lock, cvar) = &*waiter_pair;
    ///     let mut ready = lock.lock();
    ///     token.wait_while(cvar, &mut ready, |ready| !*ready)
    /// });
    /// source.request_stop(); // nobody will ever set `ready`
    /// assert!(waiter.join().unwrap().is_err());
    /// ```
    pub fn wait<T: ?Sized>(
        &self,
        condvar: &Condvar,
        guard: &mut MutexGuard<'_, T>,
    ) -> Result<(), Interrupted> {
        match self.condvar_wait(condvar, guard, None) {
            Err(WaitError::Interrupted) => Err(Interrupted),
            _ => Ok(()),
        }
    }

    /// Like [`wait`](Self::wait), giving up after `timeout`.
    ///
    /// # Errors
    ///
    /// [`WaitError::Interrupted`] if a stop was requested,
    /// [`WaitError::Timeout`] if the timeout elapsed first.
    pub fn wait_timeout<T: ?Sized>(
        &self,
        condvar: &Condvar,
        guard: &mut MutexGuard<'_, T>,
        timeout: Duration,
    ) -> Result<(), WaitError> {
        self.condvar_wait(condvar, guard, deadline_after(timeout))
    }

    /// Waits on `condvar` while `condition` holds, like
    /// [`Condvar::wait_while`], or until a stop is requested.
    ///
    /// # Errors
    ///
    /// [`Interrupted`] if a stop was requested while the condition held.
    pub fn wait_while<T: ?Sized, F>(
        &self,
        condvar: &Condvar,
        guard: &mut MutexGuard<'_, T>,
        mut condition: F,
    ) -> Result<(), Interrupted>
    where
        F: FnMut(&mut T) -> bool,
    {
        while condition(&mut **guard) {
            self.wait(condvar, guard)?;
        }
        Ok(())
    }

    fn condvar_wait<T: ?Sized>(
        &self,
        condvar: &Condvar,
        guard: &mut MutexGuard<'_, T>,
        deadline: Option<Instant>,
    ) -> Result<(), WaitError> {
        self.check()?;
        let timed_out = if self.states().is_empty() {
            match deadline {
                None => {
                    condvar.wait(guard);
                    false
                }
                Some(d) => condvar.wait_until(guard, d).timed_out(),
            }
        } else {
            let mutex = MutexGuard::mutex(guard);
            let _waker = CondvarWaker::register(self, condvar, mutex);
            // A stop requested between `check` and registering ran our
            // callback already; it is waiting for the mutex we hold and
            // notifies once `wait` releases it, so we do not miss it.
            match deadline {
                None => {
                    condvar.wait(guard);
                    false
                }
                Some(d) => condvar.wait_until(guard, d).timed_out(),
            }
            // `_waker` drops here, before the borrows of `condvar` and
            // `mutex` end; see `CondvarWaker::register`.
        };
        if self.is_stop_requested() {
            Err(WaitError::Interrupted)
        } else if timed_out {
            Err(WaitError::Timeout)
        } else {
            Ok(())
        }
    }

    /// Locks `mutex`, or gives up when a stop is requested. The guard is
    /// the ordinary `parking_lot` guard: it releases the lock when dropped,
    /// also when the thread unwinds from a panic.
    ///
    /// An unlock by the holder wakes this wait at once; a stop wakes it
    /// within about a millisecond (see the module docs for why).
    ///
    /// # Errors
    ///
    /// [`Interrupted`] if a stop was requested before the lock was taken.
    ///
    /// # Examples
    ///
    /// ```
    /// use drainpool::StopToken;
    /// use parking_lot::Mutex;
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
        if self.states().is_empty() {
            return Ok(mutex.lock());
        }
        let mut slice = LOCK_SLICE_MIN;
        loop {
            if let Some(guard) = mutex.try_lock_for(slice) {
                return Ok(guard);
            }
            self.check()?;
            slice = (slice * 2).min(LOCK_SLICE_MAX);
        }
    }
}

/// A stop callback that wakes one condvar waiter, registered for the length
/// of one wait.
struct CondvarWaker {
    /// Tells a callback still trying to take the mutex that the wait is
    /// over, so it stops trying; set before the registration is dropped.
    done: Arc<AtomicBool>,
    registration: Option<StopCallback>,
}

impl CondvarWaker {
    /// Registers the callback. The returned value must be dropped before
    /// `condvar` and `mutex` go out of scope; `condvar_wait` keeps it in a
    /// local that does (also on unwind).
    #[allow(unsafe_code)]
    fn register<T: ?Sized>(token: &StopToken, condvar: &Condvar, mutex: &Mutex<T>) -> CondvarWaker {
        // SAFETY: `raw` is unsafe only because the raw mutex could be used to
        // unlock a lock held through a guard; the callback below unlocks only
        // what its own successful `try_lock_for` locked.
        let raw: &RawMutex = unsafe { mutex.raw() };
        let raw = raw as *const RawMutex as usize;
        let condvar = condvar as *const Condvar as usize;
        let done = Arc::new(AtomicBool::new(false));
        let callback_done = done.clone();
        let registration = token.on_stop(move || {
            // SAFETY: both addresses point into the `condvar_wait` frame's
            // borrows, which outlive this callback: the registration is
            // dropped before that function returns or unwinds past them,
            // and dropping a `StopCallback` unregisters the callback and, if
            // it is running on another thread, waits until it has returned
            // (see `StopState::unregister`). So these references are never
            // used after the borrows end.
            let (condvar, raw) =
                unsafe { (&*(condvar as *const Condvar), &*(raw as *const RawMutex)) };
            notify_holding(condvar, raw, &callback_done);
        });
        CondvarWaker {
            done,
            registration: Some(registration),
        }
    }
}

impl Drop for CondvarWaker {
    fn drop(&mut self) {
        self.done.store(true, Ordering::SeqCst);
        drop(self.registration.take());
    }
}

/// Notifies `condvar` while holding its mutex, so that a waiter between its
/// stop check and its park (it holds the mutex then) cannot miss it.
#[allow(unsafe_code)]
fn notify_holding(condvar: &Condvar, raw: &RawMutex, done: &AtomicBool) {
    condvar.notify_all(); // wakes a waiter already parked at once
    let start = Instant::now();
    while !done.load(Ordering::SeqCst) {
        if let Some(held) = raw.try_lock_for(LOCK_SLICE_MAX) {
            condvar.notify_all();
            // SAFETY: `held` is the token of the lock we took just above on
            // this thread; we give it back exactly once.
            unsafe { raw.unlock(held) };
            return;
        }
        if start.elapsed() >= CONFIRM_LIMIT {
            log::warn!(
                "stop request: a condvar waiter's mutex has been held by another thread for over \
                 {CONFIRM_LIMIT:?}; notifying without it"
            );
            condvar.notify_all();
            return;
        }
    }
}
