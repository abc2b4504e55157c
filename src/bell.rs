//! A bell: a wake-up that a signal handler may ring and one ordinary
//! thread waits for. Behind a `ShutdownHandle`'s relay and the signal
//! installer's listener.
//!
//! On Unix, a signal handler may only do async-signal-safe work, so the
//! bell is a pair of connected sockets: ringing is one non-blocking
//! `write(2)` of one byte (on POSIX's list of async-signal-safe
//! functions), waiting is a blocking `read(2)`.
//!
//! Elsewhere (Windows), there are no asynchronous signals: a console
//! control handler, and the C runtime's `SIGINT` and `SIGBREAK` handlers
//! built on it, run on a thread of their own that the system starts for
//! the event. There the bell is a flag and the waiting thread's park
//! token: ringing sets the flag and unparks the waiter, which takes no
//! lock and never blocks.

use std::io;

/// A bell; see the module docs. One thread waits on it at a time.
pub(crate) struct Bell {
    inner: imp::Bell,
}

impl Bell {
    /// A bell nobody has rung.
    pub(crate) fn new() -> io::Result<Bell> {
        Ok(Bell {
            inner: imp::Bell::new()?,
        })
    }

    /// Wakes the waiter, or the next `wait` if nobody waits now. Safe in a
    /// signal handler: see the module docs for what runs.
    #[inline]
    pub(crate) fn ring(&self) {
        self.inner.ring();
    }

    /// Blocks until the bell was rung since the last `wait` returned (at
    /// once if it was). May return without a ring, rarely (an interrupted
    /// read); callers look at what they wait for and wait again. An error
    /// means the bell is broken for good (logged by the caller).
    pub(crate) fn wait(&self) -> io::Result<()> {
        self.inner.wait()
    }
}

#[cfg(not(unix))]
use self::park as imp;
#[cfg(unix)]
use self::socket as imp;

#[cfg(unix)]
mod socket {
    use std::io::{self, Read, Write};
    use std::os::unix::net::UnixStream;

    pub(super) struct Bell {
        ringer: UnixStream,
        listener: UnixStream,
    }

    impl Bell {
        pub(super) fn new() -> io::Result<Bell> {
            let (ringer, listener) = UnixStream::pair()?;
            ringer.set_nonblocking(true)?;
            Ok(Bell { ringer, listener })
        }

        pub(super) fn ring(&self) {
            // One non-blocking write; any error (a full buffer) is ignored
            // without being formatted: the waiter has unread bytes then and
            // wakes anyway. The read end lives as long as the bell, so the
            // write never raises SIGPIPE.
            let _ = (&self.ringer).write(&[1]);
        }

        pub(super) fn wait(&self) -> io::Result<()> {
            // Takes every ring so far in one read: one wake-up for a burst.
            let mut buf = [0u8; 64];
            match (&self.listener).read(&mut buf) {
                Ok(0) => Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the bell's socket was closed",
                )),
                Ok(_) => Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(()),
                Err(e) => Err(e),
            }
        }
    }
}

// Built on Unix too under test, so that Linux runs its tests.
#[cfg(any(not(unix), test))]
mod park {
    use std::io;
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicBool, Ordering, fence};
    use std::thread::{self, Thread};

    pub(super) struct Bell {
        rung: AtomicBool,
        /// The waiting thread, set by its first `wait`.
        waiter: OnceLock<Thread>,
    }

    impl Bell {
        #[allow(clippy::unnecessary_wraps)] // the socket bell's can fail
        pub(super) fn new() -> io::Result<Bell> {
            Ok(Bell {
                rung: AtomicBool::new(false),
                waiter: OnceLock::new(),
            })
        }

        pub(super) fn ring(&self) {
            self.rung.store(true, Ordering::Release);
            // ORDERING: the fence orders the store above before the load of
            // `waiter` (Dekker with `wait`, which publishes itself, fences,
            // then loads `rung`): either the waiter sees the flag, or we see
            // the waiter and unpark it.
            fence(Ordering::SeqCst);
            if let Some(waiter) = self.waiter.get() {
                waiter.unpark();
            }
        }

        pub(super) fn wait(&self) -> io::Result<()> {
            let me = self.waiter.get_or_init(thread::current);
            debug_assert_eq!(me.id(), thread::current().id(), "one waiter per bell");
            // ORDERING: see `ring`.
            fence(Ordering::SeqCst);
            // No lost wake-up: a ring after the load below unparks us, and
            // an unpark before `park` makes it return at once (the token).
            while !self.rung.swap(false, Ordering::Acquire) {
                thread::park();
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::thread;
    use std::time::Duration;

    /// Runs `f` on a thread of its own and fails if it has not returned
    /// within a minute: a lost wake-up fails the test instead of hanging it.
    fn within_a_minute(what: &str, f: impl FnOnce() + Send + 'static) {
        let (done_tx, done_rx) = crossbeam_channel::bounded(1);
        let worker = thread::spawn(move || {
            f();
            let _ = done_tx.send(());
        });
        match done_rx.recv_timeout(Duration::from_secs(60)) {
            Ok(()) => worker.join().unwrap(),
            Err(_) if worker.is_finished() => worker.join().unwrap(), // it panicked
            Err(_) => panic!("{what}: still blocked after a minute (a lost wake-up)"),
        }
    }

    /// Runs `f` on a thread of its own and fails if `progress` stands
    /// still for 20 seconds before `f` returns: a lost wake-up fails the
    /// test instead of hanging it, while a loaded machine, which may take
    /// minutes over 20,000 wake-ups, only makes it slower.
    fn without_stalling(
        what: &str,
        progress: &Arc<AtomicUsize>,
        f: impl FnOnce() + Send + 'static,
    ) {
        const STALL: Duration = Duration::from_secs(20);
        let (done_tx, done_rx) = crossbeam_channel::bounded(1);
        let worker = thread::spawn(move || {
            f();
            let _ = done_tx.send(());
        });
        let mut last = progress.load(Ordering::Acquire);
        loop {
            match done_rx.recv_timeout(STALL) {
                Ok(()) => return worker.join().unwrap(),
                Err(_) if worker.is_finished() => return worker.join().unwrap(), // it panicked
                Err(_) => {
                    let now = progress.load(Ordering::Acquire);
                    assert_ne!(
                        now, last,
                        "{what}: stuck at {now} for {STALL:?} (a lost wake-up)"
                    );
                    last = now;
                }
            }
        }
    }

    macro_rules! bell_tests {
        ($name:ident, $bell:ty) => {
            mod $name {
                use super::*;

                #[test]
                fn a_ring_before_the_wait_is_not_lost() {
                    within_a_minute("wait after ring", || {
                        let bell = <$bell>::new().unwrap();
                        bell.ring();
                        bell.wait().unwrap();
                    });
                }

                /// The ringer rings once the waiter has taken the last ring,
                /// 20,000 times: each ring races with the waiter going back
                /// to sleep.
                #[test]
                fn every_ring_from_another_thread_wakes_the_waiter() {
                    const ROUNDS: usize = 20_000;
                    let seen = Arc::new(AtomicUsize::new(0));
                    let progress = seen.clone();
                    without_stalling("ring and wait, 20,000 rounds", &progress, move || {
                        let bell = Arc::new(<$bell>::new().unwrap());
                        let ringer = {
                            let (bell, seen) = (bell.clone(), seen.clone());
                            thread::spawn(move || {
                                for round in 1..=ROUNDS {
                                    while seen.load(Ordering::Acquire) != round - 1 {
                                        thread::yield_now();
                                    }
                                    bell.ring();
                                }
                            })
                        };
                        for round in 1..=ROUNDS {
                            bell.wait().unwrap();
                            seen.store(round, Ordering::Release);
                        }
                        ringer.join().unwrap();
                    });
                }
            }
        };
    }

    #[cfg(unix)]
    bell_tests!(socket_bell, crate::bell::socket::Bell);
    bell_tests!(park_bell, crate::bell::park::Bell);
}
