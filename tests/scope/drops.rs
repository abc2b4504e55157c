//! User `Drop`s that panic (of a cancelled task's captures, of a refused
//! spawn's closure, of a result nobody joined, of a later error of a
//! `try_scope`) leave the scope and the pool consistent: the scope
//! returns, the pool's books add up, its workers live on, and it still
//! terminates.

use std::thread;

use drainpool::crossbeam_channel::unbounded;

use crate::common::TestPool;
use crate::{
    Fates, expect_started, message, panic_message_of, quiet_pool, settle, wait_for_stop, watchdog,
};

/// Panics when dropped (unless already unwinding), with `self.0`.
struct PanicOnDrop(&'static str);

impl Drop for PanicOnDrop {
    fn drop(&mut self) {
        if !thread::panicking() {
            panic!("{}", self.0);
        }
    }
}

/// The pool still works: its workers are all there, a fresh scope runs
/// every task, and its books add up.
fn assert_pool_sound(pool: &TestPool, threads: usize, accepted: u64) {
    let fates = Fates::new(20);
    pool.scope(|s| {
        for i in 0..20 {
            let probe = fates.probe(i);
            s.spawn(move || probe.run());
        }
    });
    assert_eq!(fates.ran(), 20, "a fresh scope runs every task");
    settle(pool);
    let stats = pool.stats();
    assert_eq!(stats.threads, threads, "no worker died: {stats:?}");
    assert_eq!(
        stats.completed + stats.panicked + stats.cancelled,
        accepted + 20,
        "the books add up: {stats:?}"
    );
}

#[test]
fn panicking_drops_of_cancelled_and_refused_tasks_captures_do_not_unwind_into_the_scope() {
    watchdog("the scope with panicking captures", || {
        let pool = quiet_pool(1);
        let (started_tx, started) = unbounded();
        let value = pool.scope(|s| {
            let running = s.spawn(|| wait_for_stop(&started_tx));
            expect_started(&started, 1);
            for _ in 0..5 {
                let bomb = PanicOnDrop("deliberate: a cancelled capture's drop");
                s.spawn(move || drop(bomb));
            }
            s.cancel(); // drops the five queued closures
            for _ in 0..5 {
                let bomb = PanicOnDrop("deliberate: a refused capture's drop");
                let handle = s.spawn(move || drop(bomb));
                assert!(handle.join().unwrap_err().is_cancelled());
            }
            assert!(running.join().unwrap());
            "returned normally"
        });
        assert_eq!(value, "returned normally");
        // 1 completed, 5 cancelled; the 5 refused were never accepted.
        assert_pool_sound(&pool, 1, 6);
        assert_eq!(pool.stats().rejected, 5);
    });
}

#[test]
fn a_panicking_drop_of_a_result_nobody_joined_leaves_the_pool_sound() {
    const TASKS: usize = 20;
    watchdog("the scope with panicking results", || {
        let pool = quiet_pool(2);
        // Whatever the scope does with the panic (resume it here, or
        // report it), it must end, and the pool must stay whole.
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            pool.scope(|s| {
                for _ in 0..TASKS {
                    drop(s.spawn(|| PanicOnDrop("deliberate: an unjoined result's drop")));
                }
            })
        }));
        if let Err(payload) = outcome {
            assert_eq!(
                message(&*payload),
                Some("deliberate: an unjoined result's drop")
            );
        }
        assert_pool_sound(&pool, 2, TASKS as u64);
    });
}

/// A `try_scope` error; the later one's drop panics.
enum Failure {
    First,
    Later(#[allow(dead_code)] PanicOnDrop),
}

#[test]
fn a_panicking_drop_of_a_later_error_is_not_what_try_scope_returns_or_raises() {
    watchdog("the try_scope with panicking errors", || {
        let pool = quiet_pool(2);
        let (started_tx, started) = unbounded();
        let result: Result<(), Failure> = pool.try_scope(|s| {
            s.spawn(|| {
                expect_started(&started, 1);
                Err::<(), _>(Failure::First)
            });
            s.spawn(|| {
                // Fails after the first error cancelled the scope: the
                // scope drops this error, and its drop panics.
                assert!(wait_for_stop(&started_tx), "woken by the first error");
                Err::<(), _>(Failure::Later(PanicOnDrop(
                    "deliberate: a later error's drop",
                )))
            });
            Ok(())
        });
        assert!(
            matches!(result, Err(Failure::First)),
            "the first error is returned"
        );
        assert_pool_sound(&pool, 2, 2);
    });
}

#[test]
fn a_panicking_drop_inside_a_task_is_that_tasks_panic() {
    watchdog("the scope whose task drops a bomb", || {
        let pool = quiet_pool(2);
        let message = panic_message_of(|| {
            pool.scope(|s| {
                let bomb = PanicOnDrop("deliberate: a capture dropped by the task");
                s.spawn(move || drop(bomb));
            })
        });
        assert_eq!(message, "deliberate: a capture dropped by the task");
        assert_pool_sound(&pool, 2, 1);
    });
}
