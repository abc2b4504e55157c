//! Scoped tasks borrow from the caller's stack: a local `Vec` read by all,
//! disjoint `&mut` chunks written one per task; the scope returns its
//! closure's value, and only once every task has ended, so that all the
//! tasks' writes are there when it returns.

use std::sync::atomic::{AtomicUsize, Ordering};

use crate::common::{Latch, Rng, TestPool, spin};
use crate::watchdog;

const ROUNDS: usize = 200;

#[test]
fn tasks_read_a_borrowed_vec_and_write_borrowed_mut_chunks_visible_when_scope_returns() {
    watchdog("the borrowing scopes", || {
        let pool = TestPool::new(4);
        let mut rng = Rng(0x5c0b_e001);
        for round in 0..ROUNDS {
            let input: Vec<u64> = (0..1_000).map(|i| i * 3 + round as u64).collect();
            let mut output = vec![0u64; input.len()];
            let chunk = 1 + (rng.next() % 97) as usize;
            let returned = pool.scope(|s| {
                for (c, out) in output.chunks_mut(chunk).enumerate() {
                    let input = &input; // a shared borrow of the caller's Vec
                    let spins = rng.spins(12);
                    s.spawn(move || {
                        spin(spins);
                        for (j, slot) in out.iter_mut().enumerate() {
                            *slot = input[c * chunk + j] * 2;
                        }
                    });
                }
                (round, "the closure's value")
            });
            assert_eq!(returned, (round, "the closure's value"));
            // The borrow of `output` ended with the scope: every write is here.
            for (i, (o, x)) in output.iter().zip(&input).enumerate() {
                assert_eq!(*o, x * 2, "round {round}: element {i} (chunks of {chunk})");
            }
        }
    });
}

#[test]
fn scope_returns_only_after_every_task_ended_even_with_handles_dropped() {
    watchdog("the waiting scopes", || {
        let pool = TestPool::new(3);
        let mut rng = Rng(0x0bad_cafe);
        for round in 0..ROUNDS {
            let released = Latch::default();
            let ended = AtomicUsize::new(0);
            let mut late_write = None;
            let mut last_write = 0u64;
            pool.scope(|s| {
                let (released, ended) = (&released, &ended);
                let late_write = &mut late_write;
                // Blocks on a latch that only a task spawned after it opens.
                s.spawn(move || {
                    assert!(released.wait(), "round {round}: the latch was opened");
                    *late_write = Some(round);
                    ended.fetch_add(1, Ordering::SeqCst);
                });
                let spins = rng.spins(16);
                let last_write = &mut last_write;
                s.spawn(move || {
                    spin(spins);
                    released.open();
                    spin(spins);
                    *last_write = spins + 1;
                    ended.fetch_add(1, Ordering::SeqCst);
                });
                // Both handles are dropped here, unjoined: the scope waits
                // for the tasks all the same.
            });
            assert_eq!(
                ended.load(Ordering::SeqCst),
                2,
                "round {round}: the scope returned before its tasks ended"
            );
            assert_eq!(late_write, Some(round), "round {round}");
            assert!(last_write > 0, "round {round}");
        }
    });
}

#[test]
fn handles_give_each_task_its_value_and_the_scope_returns_what_its_closure_does() {
    watchdog("the joining scope", || {
        let pool = TestPool::new(2);
        let words = ["drain", "pool", "stops", "cleanly", "and", "waits"];
        let total: usize = pool.scope(|s| {
            let handles: Vec<_> = words.iter().map(|w| s.spawn(move || w.len())).collect();
            handles.into_iter().map(|h| h.join().unwrap()).sum()
        });
        assert_eq!(total, words.iter().map(|w| w.len()).sum::<usize>());
    });
}

#[test]
fn tasks_spawn_more_tasks_into_their_own_scope_and_the_scope_waits_for_them_all() {
    watchdog("the fan-out scope", || {
        const FAN: usize = 8;
        let pool = TestPool::new(3);
        let mut cells = vec![0usize; FAN * FAN];
        pool.scope(|s| {
            for (i, row) in cells.chunks_mut(FAN).enumerate() {
                s.spawn(move || {
                    for (j, cell) in row.iter_mut().enumerate() {
                        // A grandchild, spawned from inside a task of the scope.
                        s.spawn(move || *cell = i * FAN + j + 1);
                    }
                });
            }
        });
        let expected: Vec<usize> = (1..=FAN * FAN).collect();
        assert_eq!(cells, expected, "every grandchild's write is visible");
    });
}
