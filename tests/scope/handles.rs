//! Scoped handles and panics: a joined panic is the joiner's (the scope
//! goes on); an unjoined one, whether its handle was dropped before or
//! after the panic, resumes on the scope's caller; a second unjoined panic
//! goes to the pool's panic handler rather than vanishing.
//!
//! Not tested here: `ScopedHandle::join` called from inside the task itself
//! (documented to panic). Safe code cannot get a task its own handle: the
//! handle's type names the scope's `'scope`, a lifetime each call of the
//! scope's closure makes anew, so no slot outside the closure can hold it,
//! and a slot inside it does not live long enough for a task to borrow.

use std::sync::{Arc, Mutex};

use drainpool::ThreadPool;

use crate::common::{Gate, Latch, TestPool};
use crate::{panic_message_of, quiet_deliberate_panics, quiet_pool, until, watchdog};

#[test]
fn a_joined_panic_is_the_joiners_and_does_not_resume_on_the_caller() {
    watchdog("the scope with a joined panic", || {
        let pool = quiet_pool(2);
        let value = pool.scope(|s| {
            let error = s.spawn(|| panic!("deliberate: joined")).join().unwrap_err();
            assert_eq!(error.panic_message(), Some("deliberate: joined"));
            "returned normally"
        });
        assert_eq!(value, "returned normally");
    });
}

#[test]
fn a_panic_whose_handle_was_dropped_before_it_panicked_resumes_on_the_caller() {
    watchdog("the scope with an unjoined panic", || {
        let pool = quiet_pool(2);
        let go = Latch::default();
        let message = panic_message_of(|| {
            pool.scope(|s| {
                drop(s.spawn(|| {
                    assert!(go.wait(), "the latch was opened");
                    panic!("deliberate: dropped before");
                }));
                go.open();
            })
        });
        assert_eq!(message, "deliberate: dropped before");
    });
}

#[test]
fn a_panic_whose_handle_was_dropped_after_it_panicked_resumes_on_the_caller() {
    watchdog("the scope with an unjoined panic", || {
        let pool = quiet_pool(2);
        let message = panic_message_of(|| {
            pool.scope(|s| {
                let handle = s.spawn(|| panic!("deliberate: dropped after"));
                until("the task panicked", || handle.is_finished());
                drop(handle);
            })
        });
        assert_eq!(message, "deliberate: dropped after");
    });
}

#[test]
fn a_second_unjoined_panic_goes_to_the_pools_panic_handler() {
    watchdog("the scope with two panics", || {
        quiet_deliberate_panics();
        let handled = Arc::new(Mutex::new(Vec::new()));
        let pool = TestPool::build(ThreadPool::builder().threads(2).panic_handler({
            let handled = handled.clone();
            move |panic| {
                handled
                    .lock()
                    .unwrap()
                    .push(panic.message().map(str::to_owned))
            }
        }));
        let gate = Gate::new();
        let message = panic_message_of(|| {
            pool.scope(|s| {
                // Both run before either panics: neither is cancelled.
                s.spawn(gate.hold(|| panic!("deliberate: one")));
                s.spawn(gate.hold(|| panic!("deliberate: two")));
                gate.wait_entered(2);
                gate.release();
            })
        });
        let handled = handled.lock().unwrap().clone();
        assert!(
            message == "deliberate: one" || message == "deliberate: two",
            "{message}"
        );
        let other = if message == "deliberate: one" {
            "deliberate: two"
        } else {
            "deliberate: one"
        };
        assert_eq!(
            handled,
            [Some(other.to_owned())],
            "the other panic was handled, once"
        );
    });
}
