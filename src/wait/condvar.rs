//! The condvar waits: parking_lot's and std's, one `condvar_wait` under both.

use std::sync::{
    Condvar as StdCondvar, LockResult, Mutex as StdMutex, MutexGuard as StdMutexGuard, PoisonError,
};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, MutexGuard};

use super::loan::{CondvarWaker, LotPair, StdPair, Wake};
use super::{guards, poisoned_if};
use crate::error::{Interrupted, WaitError};
use crate::running::{BlockedOn, Blocking};
use crate::state::deadline_after;
use crate::stop::StopToken;

impl StopToken {
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
    ///
    /// # Examples
    ///
    /// ```
    /// use drainpool::parking_lot::{Condvar, Mutex};
    /// use drainpool::{StopSource, WaitError};
    /// use std::time::Duration;
    ///
    /// let (lock, cvar) = (Mutex::new(()), Condvar::new());
    /// let source = StopSource::new();
    /// let mut guard = lock.lock();
    /// let waited = source.token().wait_timeout(&cvar, &mut guard, Duration::from_millis(1));
    /// assert_eq!(waited, Err(WaitError::Timeout)); // nobody notified
    /// source.request_stop();
    /// let waited = source.token().wait_timeout(&cvar, &mut guard, Duration::MAX);
    /// assert_eq!(waited, Err(WaitError::Interrupted)); // at once: no wait at all
    /// ```
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
    ///
    /// # Examples
    ///
    /// ```
    /// use drainpool::parking_lot::{Condvar, Mutex};
    /// use drainpool::StopSource;
    /// use std::sync::Arc;
    ///
    /// let queue = Arc::new((Mutex::new(Vec::<u32>::new()), Condvar::new()));
    /// let source = StopSource::new();
    /// let consumer = {
    ///     let (queue, token) = (queue.clone(), source.token());
    ///     std::thread::spawn(move || {
    ///         let (items, ready) = &*queue;
    ///         let mut items = items.lock();
    ///         // Wait for work, or for the stop, whichever comes first.
    ///         token.wait_while(ready, &mut items, |items| items.is_empty())?;
    ///         Ok::<_, drainpool::Interrupted>(items.pop())
    ///     })
    /// };
    /// let (items, ready) = &*queue;
    /// items.lock().push(7);
    /// ready.notify_all();
    /// assert_eq!(consumer.join().unwrap(), Ok(Some(7)));
    /// ```
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
    /// inside `mutex`; for a zero-sized `T` that cannot be seen, and the
    /// guard is taken on trust). Like std's own wait, it may panic if `condvar` is
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
    pub(super) fn condvar_wait<G>(
        &self,
        pair: &(dyn Wake + Sync),
        guard: G,
        park: impl FnOnce(G) -> (G, bool),
    ) -> (G, Result<(), WaitError>) {
        if self.is_stop_requested() {
            return (guard, Err(WaitError::Interrupted));
        }
        let blocked = Blocking::enter(BlockedOn::Condvar);
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
        drop(blocked);
        let woke = if self.is_stop_requested() {
            Err(WaitError::Interrupted)
        } else if timed_out {
            Err(WaitError::Timeout)
        } else {
            Ok(())
        };
        (guard, woke)
    }
}
