//! The relay behind a pool's `ShutdownHandle`s: a note (an atomic) and a
//! bell (a socket) that a signal handler may touch, and the ordinary thread
//! that wakes on the bell and does the shutdown the note asks for (see the
//! `signal` module docs for what is async-signal-safe and why).

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicU8, Ordering, fence};
use std::sync::{Arc, Weak};
use std::thread;

use crate::runtime::Shared;
use crate::state::PoolState;

/// The note's bit for `shutdown`.
pub(crate) const SHUTDOWN: u8 = 1;
/// The note's bit for `shutdown_now`.
pub(crate) const SHUTDOWN_NOW: u8 = 2;

/// The note and the bell shared by a pool's handles and its relay thread.
pub(crate) struct Relay {
    requested: AtomicU8,
    bell: UnixStream,
    listener: UnixStream,
}

impl Relay {
    /// Makes the relay of `shared` and starts its thread.
    pub(crate) fn start(shared: &Arc<Shared>, thread_name: String) -> io::Result<Arc<Relay>> {
        let (bell, listener) = UnixStream::pair()?;
        bell.set_nonblocking(true)?;
        let relay = Arc::new(Relay {
            requested: AtomicU8::new(0),
            bell,
            listener,
        });
        let for_thread = relay.clone();
        let pool = Arc::downgrade(shared);
        thread::Builder::new()
            .name(thread_name)
            .spawn(move || relay_main(&for_thread, &pool))?;
        Ok(relay)
    }

    /// Leaves `what` in the note and rings. Async-signal-safe.
    pub(crate) fn request(&self, what: u8) {
        // ORDERING: Release, so the relay that sees the byte sees the bits.
        self.requested.fetch_or(what, Ordering::Release);
        self.ring();
    }

    /// The note's bits not yet taken by the relay thread.
    pub(crate) fn pending(&self) -> u8 {
        self.requested.load(Ordering::Relaxed)
    }

    /// Wakes the relay thread. Async-signal-safe (see the module docs).
    pub(crate) fn ring(&self) {
        // One non-blocking write; any error (a full buffer) is ignored: the
        // relay has unread bytes then and will look at the note anyway.
        let _ = (&self.bell).write(&[1]);
    }
}

fn relay_main(relay: &Relay, pool: &Weak<Shared>) {
    let mut buf = [0u8; 64];
    loop {
        {
            let Some(shared) = pool.upgrade() else {
                return;
            };
            // ORDERING: the fence pairs with the one in `Shared::terminate`
            // (Dekker): either we see Terminated here, or `terminate` sees
            // this relay and rings it, so we never block on a dead pool.
            fence(Ordering::SeqCst);
            if shared.lifecycle.get() == PoolState::Terminated {
                return;
            }
            let requested = relay.requested.swap(0, Ordering::Acquire);
            if requested & SHUTDOWN_NOW != 0 {
                log::debug!(
                    "pool {}: shutdown_now requested through a ShutdownHandle",
                    shared.id
                );
                shared.shutdown_now_to_stash();
            } else if requested & SHUTDOWN != 0 {
                log::debug!(
                    "pool {}: shutdown requested through a ShutdownHandle",
                    shared.id
                );
                shared.shutdown();
            }
        } // no strong reference to the pool while we block
        match (&relay.listener).read(&mut buf) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                log::error!("a ShutdownHandle relay could not read its socket: {e}");
                return;
            }
        }
    }
}
