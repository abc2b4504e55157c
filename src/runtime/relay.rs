//! The relay behind a pool's `ShutdownHandle`s: a note (an atomic) and a
//! bell that a signal handler may touch, and the ordinary thread that wakes
//! on the bell and does the shutdown the note asks for (see `bell.rs` and
//! the `ShutdownHandle` docs for what is safe in a handler, and why).

use std::io;
use std::sync::atomic::{AtomicU8, Ordering, fence};
use std::sync::{Arc, Weak};
use std::thread;

use crate::bell::Bell;
use crate::runtime::Shared;
use crate::state::PoolState;

/// The note's bit for `shutdown`.
pub(crate) const SHUTDOWN: u8 = 1;
/// The note's bit for `shutdown_now`.
pub(crate) const SHUTDOWN_NOW: u8 = 2;

/// The note and the bell shared by a pool's handles and its relay thread.
pub(crate) struct Relay {
    requested: AtomicU8,
    bell: Bell,
}

impl Relay {
    /// Makes the relay of `shared` and starts its thread.
    pub(crate) fn start(shared: &Arc<Shared>, thread_name: String) -> io::Result<Arc<Relay>> {
        let relay = Arc::new(Relay {
            requested: AtomicU8::new(0),
            bell: Bell::new()?,
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

    /// Wakes the relay thread. Async-signal-safe (see `bell.rs`).
    pub(crate) fn ring(&self) {
        self.bell.ring();
    }
}

fn relay_main(relay: &Relay, pool: &Weak<Shared>) {
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
                log_debug!(
                    "pool {}: shutdown_now requested through a ShutdownHandle",
                    shared.id
                );
                shared.shutdown_now_to_stash();
            } else if requested & SHUTDOWN != 0 {
                log_debug!(
                    "pool {}: shutdown requested through a ShutdownHandle",
                    shared.id
                );
                shared.shutdown();
            }
        } // no strong reference to the pool while we block
        if let Err(e) = relay.bell.wait() {
            log_error!("a ShutdownHandle relay could not wait for its bell: {e}");
            return;
        }
    }
}
