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
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{
    Arc, Condvar as StdCondvar, LockResult, Mutex as StdMutex, MutexGuard as StdMutexGuard,
    OnceLock, PoisonError, TryLockError,
};
use std::time::{Duration, Instant};
use std::{mem, ptr, thread};

use crossbeam_channel::{Receiver, Select, Sender};
use parking_lot::lock_api::RawMutex as _;
use parking_lot::{Condvar, Mutex, MutexGuard, RawMutex};

use crate::error::{Interrupted, WaitError};
use crate::state::deadline_after;
use crate::stop::{StopCallback, StopToken};

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
        match self.select::<()>(None, deadline_after(duration)) {
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
    /// # How a stop wakes it
    ///
    /// A stop runs a callback, on the requesting thread, that calls
    /// `condvar.notify_all()`: the waiter wakes at once, and any other
    /// thread waiting on the same condvar sees a spurious wake-up. A stop
    /// landing just as the wait begins is not missed: the callback also
    /// notifies while holding the mutex, which the waiter holds from its
    /// check until it parks. The request never blocks on that mutex: if it
    /// is locked, a background thread (`drainpool-stop-confirm`, one per
    /// process, asleep when idle) retries, after 100 µs and then less and
    /// less often (up to every 8 ms) while the mutex stays locked; so in
    /// that race the wake-up can come up to that much later.
    ///
    /// With a token that can never fire ([`StopToken::never`], or
    /// [`StopToken::current`] outside a pool task) this is the plain wait.
    /// Otherwise each wait registers a stop callback: an allocation and a
    /// short lock.
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
    /// use drainpool::parking_lot::{Condvar, Mutex};
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
        match self.lot_wait(condvar, guard, None) {
            Err(WaitError::Interrupted) => Err(Interrupted),
            _ => Ok(()),
        }
    }

    /// Like [`wait`](Self::wait), giving up after `timeout`
    /// (`Duration::MAX`: never).
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
        self.lot_wait(condvar, guard, deadline_after(timeout))
    }

    /// Waits on `condvar` while `condition` holds, like
    /// [`Condvar::wait_while`], or until a stop is requested. It wakes as
    /// [`wait`](Self::wait) does.
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

    /// A `parking_lot` condvar wait, until `deadline` (`None`: no timeout).
    fn lot_wait<T: ?Sized>(
        &self,
        condvar: &Condvar,
        guard: &mut MutexGuard<'_, T>,
        deadline: Option<Instant>,
    ) -> Result<(), WaitError> {
        let pair = LotPair::new(condvar, MutexGuard::mutex(guard));
        let (_, woke) = self.condvar_wait(&pair, guard, |guard| match deadline {
            None => {
                condvar.wait(guard);
                (guard, false)
            }
            Some(d) => {
                let timed_out = condvar.wait_until(guard, d).timed_out();
                (guard, timed_out)
            }
        });
        woke
    }

    /// Blocks on std's `condvar` like [`std::sync::Condvar::wait`], or
    /// until a stop is requested. The guard goes in and comes back, with
    /// why the wait ended; `mutex` is the mutex `guard` locks (std's guard
    /// cannot name its mutex, and a stop needs it: see below). As with any
    /// condvar, the wait may also end spuriously: re-check the condition, or
    /// use [`wait_while_std`](Self::wait_while_std).
    ///
    /// It wakes as [`wait`](Self::wait) does: a stop notifies `condvar`
    /// (every thread waiting on it wakes) and notifies again while holding
    /// `mutex`, so a stop landing just as the wait begins is not missed; the
    /// request never blocks on `mutex`. That is why `T` must be `Send`: the
    /// stop side locks `mutex` on another thread (it never touches the
    /// data). A mutex no other thread can share could only be woken by the
    /// stop anyway.
    ///
    /// # Errors
    ///
    /// Poisoning is reported as std reports it: `Err(PoisonError)` when
    /// `mutex` is poisoned as the call returns (also when a stop ended it
    /// before it waited); [`PoisonError::into_inner`] gives the same pair as
    /// `Ok`. In the pair, the guard holds the lock, and the outcome is
    /// `Err(Interrupted)` if a stop was requested before or during the wait.
    ///
    /// # Panics
    ///
    /// If `guard` is visibly not a guard of `mutex` (its data does not lie
    /// inside `mutex`). Like std's own wait, it may panic if `condvar` is
    /// used with more than one mutex over time.
    ///
    /// # Examples
    ///
    /// ```
    /// use drainpool::{Interrupted, StopSource};
    /// use std::sync::{Arc, Condvar, Mutex};
    ///
    /// let pair = Arc::new((Mutex::new(false), Condvar::new()));
    /// let source = StopSource::new();
    /// let (token, waiter_pair) = (source.token(), pair.clone());
    /// let waiter = std::thread::spawn(move || {
    ///     let (lock, cvar) = &*waiter_pair;
    ///     let mut ready = lock.lock().unwrap();
    ///     while !*ready {
    ///         let (guard, woke) = token.wait_std(cvar, lock, ready).unwrap();
    ///         ready = guard;
    ///         woke?; // a stop: give up (the guard unlocks as it drops)
    ///     }
    ///     Ok::<(), Interrupted>(())
    /// });
    /// source.request_stop(); // nobody will ever set `ready`
    /// assert_eq!(waiter.join().unwrap(), Err(Interrupted));
    /// ```
    pub fn wait_std<'m, T: Send>(
        &self,
        condvar: &StdCondvar,
        mutex: &'m StdMutex<T>,
        guard: StdMutexGuard<'m, T>,
    ) -> LockResult<(StdMutexGuard<'m, T>, Result<(), Interrupted>)> {
        let (guard, woke) = self.std_wait(condvar, mutex, guard, None);
        let woke = match woke {
            Err(WaitError::Interrupted) => Err(Interrupted),
            _ => Ok(()),
        };
        poisoned_if(mutex, (guard, woke))
    }

    /// Like [`wait_std`](Self::wait_std), giving up after `timeout`
    /// (`Duration::MAX`: never).
    ///
    /// # Errors
    ///
    /// Poisoning as [`wait_std`](Self::wait_std). In the pair, the outcome
    /// is [`WaitError::Interrupted`] if a stop was requested,
    /// [`WaitError::Timeout`] if the timeout elapsed first.
    ///
    /// # Panics
    ///
    /// As [`wait_std`](Self::wait_std).
    ///
    /// # Examples
    ///
    /// ```
    /// use drainpool::{StopSource, WaitError};
    /// use std::sync::{Condvar, Mutex};
    /// use std::time::Duration;
    ///
    /// let (lock, cvar) = (Mutex::new(()), Condvar::new());
    /// let token = StopSource::new().token();
    /// let guard = lock.lock().unwrap();
    /// let (_guard, woke) = token
    ///     .wait_timeout_std(&cvar, &lock, guard, Duration::from_millis(5))
    ///     .unwrap();
    /// // Nobody notified and nobody stopped it (unless it woke spuriously).
    /// assert!(matches!(woke, Err(WaitError::Timeout) | Ok(())));
    /// ```
    pub fn wait_timeout_std<'m, T: Send>(
        &self,
        condvar: &StdCondvar,
        mutex: &'m StdMutex<T>,
        guard: StdMutexGuard<'m, T>,
        timeout: Duration,
    ) -> LockResult<(StdMutexGuard<'m, T>, Result<(), WaitError>)> {
        let woke = self.std_wait(condvar, mutex, guard, deadline_after(timeout));
        poisoned_if(mutex, woke)
    }

    /// Waits on std's `condvar` while `condition` holds, like
    /// [`std::sync::Condvar::wait_while`], or until a stop is requested. It
    /// wakes as [`wait_std`](Self::wait_std) does.
    ///
    /// # Errors
    ///
    /// Like std's `wait_while`, it returns `Err(PoisonError)` as soon as a
    /// wake-up finds `mutex` poisoned, whether the condition still holds or
    /// not. In the pair, the outcome is `Err(Interrupted)` if a stop was
    /// requested while the condition held.
    ///
    /// # Panics
    ///
    /// As [`wait_std`](Self::wait_std).
    ///
    /// # Examples
    ///
    /// ```
    /// use drainpool::StopSource;
    /// use std::sync::{Arc, Condvar, Mutex};
    ///
    /// let pair = Arc::new((Mutex::new(false), Condvar::new()));
    /// let source = StopSource::new();
    /// let (token, waiter_pair) = (source.token(), pair.clone());
    /// let waiter = std::thread::spawn(move || {
    ///     let (lock, cvar) = &*waiter_pair;
    ///     let ready = lock.lock().unwrap();
    ///     let (ready, woke) = token.wait_while_std(cvar, lock, ready, |ready| !*ready).unwrap();
    ///     (*ready, woke)
    /// });
    /// let (lock, cvar) = &*pair;
    /// *lock.lock().unwrap() = true;
    /// cvar.notify_all();
    /// assert_eq!(waiter.join().unwrap(), (true, Ok(())));
    /// ```
    pub fn wait_while_std<'m, T: Send, F>(
        &self,
        condvar: &StdCondvar,
        mutex: &'m StdMutex<T>,
        mut guard: StdMutexGuard<'m, T>,
        mut condition: F,
    ) -> LockResult<(StdMutexGuard<'m, T>, Result<(), Interrupted>)>
    where
        F: FnMut(&mut T) -> bool,
    {
        while condition(&mut *guard) {
            let (back, woke) = self.wait_std(condvar, mutex, guard)?;
            guard = back;
            if woke.is_err() {
                return Ok((guard, woke));
            }
        }
        Ok((guard, Ok(())))
    }

    /// A std condvar wait, until `deadline` (`None`: no timeout). Poisoning
    /// is left to the caller, which reads the mutex's flag while it holds
    /// the lock again (`poisoned_if`).
    fn std_wait<'m, T: Send>(
        &self,
        condvar: &StdCondvar,
        mutex: &'m StdMutex<T>,
        guard: StdMutexGuard<'m, T>,
        deadline: Option<Instant>,
    ) -> (StdMutexGuard<'m, T>, Result<(), WaitError>) {
        assert!(
            guards(mutex, &guard),
            "StopToken::wait*_std: `guard` is not a guard of `mutex`"
        );
        let pair = StdPair { condvar, mutex };
        // `into_inner` here drops no news: the caller reports poisoning from
        // the flag, as std's own `wait` does.
        self.condvar_wait(&pair, guard, |guard| match deadline {
            None => (
                condvar.wait(guard).unwrap_or_else(PoisonError::into_inner),
                false,
            ),
            Some(d) => {
                let (guard, result) = condvar
                    .wait_timeout(guard, d.saturating_duration_since(Instant::now()))
                    .unwrap_or_else(PoisonError::into_inner);
                (guard, result.timed_out())
            }
        })
    }

    /// Every interruptible condvar wait: check, lend `pair` (the condvar
    /// and the mutex `guard` holds) to a stop callback, check again, park,
    /// and say why the wait ended. `park` is the wrapped wait: it releases
    /// the mutex, parks on the condvar, takes the mutex back, and says
    /// whether it timed out.
    fn condvar_wait<G>(
        &self,
        pair: &(dyn Wake + Sync),
        guard: G,
        park: impl FnOnce(G) -> (G, bool),
    ) -> (G, Result<(), WaitError>) {
        if self.is_stop_requested() {
            return (guard, Err(WaitError::Interrupted));
        }
        let (guard, timed_out) = if self.states().is_empty() {
            park(guard) // nothing can request a stop: the plain wait
        } else {
            let _waker = CondvarWaker::register(self, pair);
            // No lost wake-up. A stop requested between the check above and
            // the registration ran our callback here, on this thread, while
            // we hold the mutex: it could wake no one, so look again. A stop
            // requested after this look finds us registered, and its
            // callback notifies while holding the mutex (or has the
            // confirmer do so). We hold the mutex from this look until
            // `park` releases it, atomically with parking; so that notify
            // comes after we park, and wakes us.
            if self.is_stop_requested() {
                return (guard, Err(WaitError::Interrupted));
            }
            park(guard)
            // `_waker` drops here, giving the loan back before the borrow
            // of `pair` ends (its lifetime says so).
        };
        let woke = if self.is_stop_requested() {
            Err(WaitError::Interrupted)
        } else if timed_out {
            Err(WaitError::Timeout)
        } else {
            Ok(())
        };
        (guard, woke)
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

/// True if `guard`'s data lies inside `mutex`, as that of a guard of
/// `mutex` does. (std's guard cannot name its mutex; two mutexes never
/// overlap, unless one holds the other.)
fn guards<T: ?Sized>(mutex: &StdMutex<T>, guard: &StdMutexGuard<'_, T>) -> bool {
    let start = ptr::from_ref(mutex).cast::<u8>().addr();
    let data = ptr::from_ref::<T>(guard).cast::<u8>().addr();
    // Inclusive: a zero-sized value may sit at the very end.
    (start..=start + mem::size_of_val(mutex)).contains(&data)
}

/// What a stop callback needs of one condvar waiter: its condvar, and the
/// mutex it waits with. One implementation per library.
trait Wake {
    /// Wakes every thread parked on the condvar.
    fn notify(&self);

    /// Notifies while holding the mutex, if it is free: a waiter between
    /// its stop check and its park holds the mutex, so a notify made under
    /// it cannot fall into that window. False (nothing done) if the mutex
    /// is held; never blocks.
    fn notify_locked(&self) -> bool;
}

/// A `parking_lot` condvar and the raw mutex under the waiter's guard.
struct LotPair<'a> {
    condvar: &'a Condvar,
    raw: &'a RawMutex,
}

impl<'a> LotPair<'a> {
    #[allow(unsafe_code)]
    fn new<T: ?Sized>(condvar: &'a Condvar, mutex: &'a Mutex<T>) -> LotPair<'a> {
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
struct StdPair<'a, T: ?Sized> {
    condvar: &'a StdCondvar,
    mutex: &'a StdMutex<T>,
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
struct Loan {
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

const LENT: u8 = 0;
const IN_USE: u8 = 1;
const RETURNED: u8 = 2;

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
fn confirm_later(loan: Arc<Loan>) {
    static CONFIRMER: OnceLock<Option<Sender<Arc<Loan>>>> = OnceLock::new();
    let sender = CONFIRMER.get_or_init(|| {
        let (tx, rx) = crossbeam_channel::unbounded();
        let spawned = thread::Builder::new()
            .name("drainpool-stop-confirm".into())
            .spawn(move || confirmer(&rx));
        match spawned {
            Ok(_) => Some(tx),
            Err(e) => {
                log::error!("could not start the stop-confirmer thread: {e}");
                None
            }
        }
    });
    if let Some(sender) = sender {
        let _ = sender.send(loan);
    }
}

fn confirmer(rx: &Receiver<Arc<Loan>>) {
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
struct CondvarWaker<'w> {
    loan: Arc<Loan>,
    registration: Option<StopCallback>,
    lent: PhantomData<&'w (dyn Wake + Sync + 'w)>,
}

impl<'w> CondvarWaker<'w> {
    /// Lends `waiter` to a stop callback until dropped.
    #[allow(unsafe_code)]
    fn register(token: &StopToken, waiter: &'w (dyn Wake + Sync + 'w)) -> CondvarWaker<'w> {
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
    use crate::stop::StopSource;

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
        let (unit, other) = (StdMutex::new(()), StdMutex::new(()));
        let guard = unit.lock().unwrap();
        assert!(guards(&unit, &guard));
        assert!(!guards(&other, &guard));
    }
}
