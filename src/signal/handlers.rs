//! The signal handlers behind [`on_signals`](super::on_signals): what runs
//! in them (atomics and a bell, nothing else), the listener thread that
//! does the rest, and the default action that comes back once no installer
//! watches a signal any more.

use std::io;
use std::os::raw::c_int;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::{self, JoinHandle};

use parking_lot::Mutex;
use signal_hook::SigId;

use crate::bell::Bell;

/// What the handlers and the listener share. A handler touches only the
/// atomics and the bell (see `bell.rs` for why ringing is safe there).
struct Inbox {
    /// The signals handled, and how many of each arrived so far.
    signals: Vec<(c_int, AtomicUsize)>,
    /// Set when the installer goes: the listener returns.
    closed: AtomicBool,
    bell: Bell,
}

/// Installed handlers and their listener; dropping it uninstalls them.
pub(super) struct Handlers {
    inbox: Arc<Inbox>,
    ids: Vec<SigId>,
    watched: Vec<c_int>,
    listener: Option<JoinHandle<()>>,
}

/// How many installers watch each signal now, by number; read by the
/// handler that brings the default action back (`restore_default_for`).
/// Signal numbers are small on every platform (under 65).
static WATCHERS: [AtomicUsize; 65] = [const { AtomicUsize::new(0) }; 65];

/// The signals whose default-action handler is registered (once per
/// signal, for the life of the process).
static RESTORERS: Mutex<Vec<c_int>> = Mutex::new(Vec::new());

fn watchers(signal: c_int) -> Option<&'static AtomicUsize> {
    usize::try_from(signal).ok().and_then(|i| WATCHERS.get(i))
}

impl Handlers {
    /// Registers a handler for each of `signals` and starts the listener
    /// thread, which calls `on_signal(signal)` once per arrival, in the
    /// order it sees them (arrivals of different signals in one burst may
    /// be reordered).
    ///
    /// `unsafe` is allowed here for signal-hook's `register` alone: its safe
    /// registrations either set a flag (no wake-up: the listener would have
    /// to poll) or write to a Unix pipe (no Windows); a handler of our own
    /// counts every arrival and wakes the listener on every platform.
    #[allow(unsafe_code)]
    pub(super) fn install(
        signals: &[c_int],
        on_signal: impl FnMut(c_int) + Send + 'static,
    ) -> io::Result<Handlers> {
        let mut unique: Vec<c_int> = Vec::new();
        for &signal in signals {
            if watchers(signal).is_none() {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("{signal} is not a signal number drainpool can handle"),
                ));
            }
            if !unique.contains(&signal) {
                unique.push(signal);
            }
        }
        let inbox = Arc::new(Inbox {
            signals: unique.iter().map(|&s| (s, AtomicUsize::new(0))).collect(),
            closed: AtomicBool::new(false),
            bell: Bell::new()?,
        });
        let mut handlers = Handlers {
            inbox: inbox.clone(),
            ids: Vec::with_capacity(unique.len()),
            watched: Vec::with_capacity(unique.len()),
            listener: None,
        };
        for (index, &signal) in unique.iter().enumerate() {
            // Watched first, so the default-action handler stands aside
            // from the moment it exists (dropping `handlers` on an error
            // below takes the count back).
            if let Some(count) = watchers(signal) {
                count.fetch_add(1, Ordering::SeqCst);
                handlers.watched.push(signal);
            }
            restore_default_for(signal)?;
            let inbox = inbox.clone();
            // SAFETY: the action only does async-signal-safe work: an atomic
            // add on memory allocated before registration (the `Arc` is
            // moved in here and neither cloned nor dropped in the handler)
            // and `Bell::ring`, which is one non-blocking `write(2)` on Unix
            // and an unpark elsewhere, where handlers run on a thread of
            // their own (see `bell.rs`). No allocation, no lock, no log.
            let id = unsafe {
                signal_hook::low_level::register(signal, move || {
                    inbox.signals[index].1.fetch_add(1, Ordering::SeqCst);
                    inbox.bell.ring();
                })
            }?;
            handlers.ids.push(id);
        }
        let listener = thread::Builder::new()
            .name("drainpool-signals".into())
            .spawn(move || listen(&inbox, on_signal))?;
        handlers.listener = Some(listener);
        Ok(handlers)
    }
}

impl Drop for Handlers {
    fn drop(&mut self) {
        for id in self.ids.drain(..) {
            signal_hook::low_level::unregister(id);
        }
        // After the handlers are gone: a signal from here on finds no
        // installer watching it and takes its default action.
        for signal in self.watched.drain(..) {
            if let Some(count) = watchers(signal) {
                count.fetch_sub(1, Ordering::SeqCst);
            }
        }
        self.inbox.closed.store(true, Ordering::SeqCst);
        self.inbox.bell.ring();
        if let Some(listener) = self.listener.take() {
            let _ = listener.join();
        }
    }
}

fn listen(inbox: &Inbox, mut on_signal: impl FnMut(c_int)) {
    let mut seen = vec![0usize; inbox.signals.len()];
    loop {
        if inbox.closed.load(Ordering::SeqCst) {
            return;
        }
        for ((signal, arrived), seen) in inbox.signals.iter().zip(&mut seen) {
            let arrived = arrived.load(Ordering::SeqCst);
            while *seen < arrived {
                *seen += 1;
                on_signal(*signal);
            }
        }
        // No lost wake-up: a handler counts its signal before it rings, and
        // a ring after our loads above wakes the `wait` below (see `Bell`).
        if let Err(e) = inbox.bell.wait() {
            log_error!("the signal listener could not wait for its bell: {e}; signals are lost");
            return;
        }
    }
}

/// Registers, once per signal for the process, a handler that takes the
/// signal's default action (ends the process, for the termination signals)
/// while no installer watches it: signal-hook keeps its own handler in
/// place after the last registration is removed, which would otherwise
/// leave the signal ignored for good.
#[allow(unsafe_code)] // see `Handlers::install`
fn restore_default_for(signal: c_int) -> io::Result<()> {
    let mut restorers = RESTORERS.lock();
    if restorers.contains(&signal) {
        return Ok(());
    }
    // SAFETY: the action loads an atomic of a static and, when nobody
    // watches the signal, calls signal-hook's `emulate_default_handler`,
    // made to be called from a handler (it restores the default disposition
    // and raises the signal again), or `_exit`, both async-signal-safe.
    unsafe {
        signal_hook::low_level::register(signal, move || {
            let watched = watchers(signal).is_some_and(|n| n.load(Ordering::SeqCst) > 0);
            if !watched && signal_hook::low_level::emulate_default_handler(signal).is_err() {
                // A signal signal-hook has no default for (Windows' SIGBREAK,
                // whose default is to end the process): end it the same way.
                signal_hook::low_level::exit(128 + signal);
            }
        })
    }?;
    restorers.push(signal);
    Ok(())
}

/// A signal's name, for the log.
pub(super) fn signal_name(signal: c_int) -> &'static str {
    #[cfg(windows)]
    if signal == super::SIGBREAK {
        return "SIGBREAK";
    }
    signal_hook::low_level::signal_name(signal).unwrap_or("signal")
}
