//! Running user code so that its panics never escape into the pool.
//!
//! Every hook, callback and discarded value goes through here: the panic is
//! caught, logged at error level with what was running, and its payload is
//! dropped with the same care (a payload whose own `Drop` panics is leaked
//! rather than allowed to abort the process).

use std::any::Any;
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};

use crate::error::panic_message;

/// Runs `f`; if it panics, logs "`what` panicked: message" and goes on.
/// Returns true if `f` returned normally.
pub(crate) fn call_logged<F: FnOnce()>(what: impl fmt::Display, f: F) -> bool {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(()) => true,
        Err(payload) => {
            log_error!("{what} panicked: {}", message(payload.as_ref()));
            forget_payload(payload);
            false
        }
    }
}

/// Drops a value whose `Drop` is user code, logging instead of unwinding.
pub(crate) fn drop_quietly<T>(value: T) {
    call_logged("a Drop of a value the pool discarded", move || drop(value));
}

/// Drops a panic payload; if its own `Drop` panics, leaks that second
/// payload instead of risking an abort.
fn forget_payload(payload: Box<dyn Any + Send>) {
    if let Err(second) = catch_unwind(AssertUnwindSafe(move || drop(payload))) {
        log_error!("a panic payload's Drop panicked; leaking it");
        std::mem::forget(second);
    }
}

/// The message of a payload, or a placeholder.
pub(crate) fn message(payload: &(dyn Any + Send)) -> &str {
    panic_message(payload).unwrap_or("<non-string payload>")
}
