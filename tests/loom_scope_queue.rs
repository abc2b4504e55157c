//! Loom model checks of a scope's queue and its turn
//! (`runtime/scope_queue.rs`, through the hidden
//! `drainpool::model::ScopeQueue`): a queued task always has a turn out
//! (in the pool's queue, modelled by a count, or in a worker's hand), no
//! more than one turn is ever out, and a close leaves nothing queued once
//! every push has returned, with every task taken exactly once (run by a
//! worker, or cancelled by the close or the pusher).
//!
//! `LOOM_MAX_PREEMPTIONS=3 RUSTFLAGS="--cfg loom" cargo test --release --test 'loom_*'`
#![cfg(loom)]

use drainpool::model::{Pushed, ScopeQueue, model_freeing_blocks};
use loom::sync::Arc;
use loom::sync::atomic::{AtomicUsize, Ordering};

/// The pool's queue, as far as turns go: how many are in it.
struct Turns(AtomicUsize);

impl Turns {
    fn send(&self) {
        let before = self.0.fetch_add(1, Ordering::SeqCst);
        assert_eq!(before, 0, "a second turn was sent while one was out");
    }

    fn take(&self) -> bool {
        self.0
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    }
}

/// A worker: `rounds` times, takes the turn if it is in the pool's queue,
/// takes the first task and sends the turn back or gives it up, then (if
/// `goes_on`) takes one more task without the turn.
fn worker(queue: &ScopeQueue, turns: &Turns, rounds: usize, goes_on: bool) -> Vec<u32> {
    let mut ran = Vec::new();
    for _ in 0..rounds {
        if !turns.take() {
            loom::thread::yield_now();
            continue;
        }
        let (first, send) = queue.take_turn();
        if send {
            turns.send();
        }
        ran.extend(first);
        if goes_on {
            ran.extend(queue.pop());
        }
    }
    ran
}

/// Whatever the interleaving: once everyone is done, a task left queued
/// has its turn in the pool's queue, so some worker will take it. (The
/// worker takes nothing without the turn here, which would hide a lost
/// turn.)
#[test]
fn a_queued_task_always_has_a_turn_out() {
    model_freeing_blocks(|| {
        let queue = Arc::new(ScopeQueue::new());
        let turns = Arc::new(Turns(AtomicUsize::new(0)));
        let spawner = {
            let (queue, turns) = (queue.clone(), turns.clone());
            loom::thread::spawn(move || {
                for value in [1, 2] {
                    match queue.push(value) {
                        Pushed::Queued { send_turn: true } => turns.send(),
                        Pushed::Queued { send_turn: false } => {}
                        other => panic!("never closed, yet {other:?}"),
                    }
                }
            })
        };
        let taker = {
            let (queue, turns) = (queue.clone(), turns.clone());
            loom::thread::spawn(move || worker(&queue, &turns, 2, false))
        };
        spawner.join().unwrap();
        let mut ran = taker.join().unwrap();
        if !queue.is_empty() {
            assert_eq!(
                turns.0.load(Ordering::SeqCst),
                1,
                "a task queued, no turn out"
            );
        }
        // Drain as the workers would, one turn at a time.
        while turns.take() {
            let (first, send) = queue.take_turn();
            ran.extend(first);
            if send {
                turns.send();
            }
        }
        assert!(queue.is_empty());
        ran.sort_unstable();
        assert_eq!(ran, [1, 2]);
    });
}

/// Two workers race for the turn and the tasks of one push each.
#[test]
fn two_workers_share_one_turn() {
    model_freeing_blocks(|| {
        let queue = Arc::new(ScopeQueue::new());
        let turns = Arc::new(Turns(AtomicUsize::new(0)));
        if let Pushed::Queued { send_turn: true } = queue.push(1) {
            turns.send();
        }
        let spawner = {
            let (queue, turns) = (queue.clone(), turns.clone());
            loom::thread::spawn(move || {
                if let Pushed::Queued { send_turn: true } = queue.push(2) {
                    turns.send();
                }
            })
        };
        let workers: Vec<_> = (0..2)
            .map(|_| {
                let (queue, turns) = (queue.clone(), turns.clone());
                loom::thread::spawn(move || worker(&queue, &turns, 1, true))
            })
            .collect();
        spawner.join().unwrap();
        let mut ran: Vec<u32> = workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect();
        if !queue.is_empty() {
            assert_eq!(
                turns.0.load(Ordering::SeqCst),
                1,
                "a task queued, no turn out"
            );
        }
        while let Some(value) = queue.pop() {
            ran.push(value);
        }
        ran.sort_unstable();
        assert_eq!(ran, [1, 2]);
    });
}

/// A close races two pushes and a worker that looks at the mark before it
/// runs: each task ends once (ran before the close was seen, or
/// cancelled), and nothing stays queued.
#[test]
fn a_close_leaves_nothing_queued() {
    model_freeing_blocks(|| {
        let queue = Arc::new(ScopeQueue::new());
        let spawner = {
            let queue = queue.clone();
            loom::thread::spawn(move || {
                let mut cancelled = Vec::new();
                for value in [1, 2] {
                    match queue.push(value) {
                        Pushed::Queued { .. } => {}
                        Pushed::Refused => cancelled.push(value),
                        Pushed::Closed(left) => cancelled.extend(left),
                    }
                }
                cancelled
            })
        };
        let closer = {
            let queue = queue.clone();
            loom::thread::spawn(move || queue.close())
        };
        let taker = {
            let queue = queue.clone();
            loom::thread::spawn(move || {
                let taken = queue.pop();
                (taken, queue.is_closed())
            })
        };
        let mut ended = spawner.join().unwrap();
        ended.extend(closer.join().unwrap());
        let (taken, _) = taker.join().unwrap();
        ended.extend(taken);
        assert!(queue.is_empty(), "a task left queued after the close");
        ended.sort_unstable();
        assert_eq!(ended, [1, 2]);
    });
}
