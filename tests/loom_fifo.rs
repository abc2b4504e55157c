//! Loom model checks of the FIFO under each level of the pool's queue
//! (`runtime/fifo.rs`, through the hidden `drainpool::model::Fifo`), with
//! blocks of three slots so that pushes and takes race across block ends:
//! every entry comes out exactly once and in each pusher's order, every
//! block is freed (counted: loom does not see a block that is never
//! freed) or made again empty for a pusher, and a taker that sleeps on an empty queue is woken by a push wherever it
//! lands (a lost wake-up is a deadlock, which loom reports).
//!
//! `LOOM_MAX_PREEMPTIONS=3 RUSTFLAGS="--cfg loom" cargo test --release --test 'loom_*'`
#![cfg(loom)]

use drainpool::model::{Fifo, model_freeing_blocks};
use loom::sync::Arc;

/// Two pushers race over a block end; one taker races them; what is left
/// is taken after the joins.
#[test]
fn racing_pushers_and_a_taker_lose_and_repeat_nothing() {
    model_freeing_blocks(|| {
        let fifo = Arc::new(Fifo::new());
        fifo.push(0); // the race starts at the block's second slot
        let pushers: Vec<_> = [10u32, 20]
            .into_iter()
            .map(|base| {
                let fifo = fifo.clone();
                loom::thread::spawn(move || {
                    fifo.push(base);
                    fifo.push(base + 1);
                })
            })
            .collect();
        let taker = {
            let fifo = fifo.clone();
            loom::thread::spawn(move || (fifo.pop(), fifo.pop()))
        };
        pushers.into_iter().for_each(|p| p.join().unwrap());
        let (a, b) = taker.join().unwrap();
        let mut all: Vec<u32> = [a, b].into_iter().flatten().collect();
        while let Some(v) = fifo.pop() {
            all.push(v);
        }
        assert!(fifo.is_empty());
        // Each pusher's entries in its order.
        for base in [10, 20] {
            let mine: Vec<u32> = all
                .iter()
                .copied()
                .filter(|v| v / 10 == base / 10)
                .collect();
            assert_eq!(mine, [base, base + 1]);
        }
        all.sort_unstable();
        assert_eq!(all, [0, 10, 11, 20, 21]);
    });
}

/// Two takers race over the block end that the last slot's taker moves
/// the head across, while the queue is freed behind them.
#[test]
fn racing_takers_take_each_entry_once() {
    model_freeing_blocks(|| {
        let fifo = Arc::new(Fifo::new());
        for v in 0..4 {
            fifo.push(v); // the fourth lands in the second block
        }
        let takers: Vec<_> = (0..2)
            .map(|_| {
                let fifo = fifo.clone();
                loom::thread::spawn(move || (fifo.pop(), fifo.pop()))
            })
            .collect();
        let mut all: Vec<u32> = takers
            .into_iter()
            .flat_map(|t| {
                let (a, b) = t.join().unwrap();
                [a, b]
            })
            .flatten()
            .collect();
        all.sort_unstable();
        assert_eq!(all, [0, 1, 2, 3]);
        assert_eq!(fifo.len(), 0);
    });
}

/// A taker sleeps on the empty queue; a push wakes it, wherever the push
/// lands in the taker's look-then-sleep.
#[test]
fn a_sleeping_taker_is_woken_by_a_push() {
    model_freeing_blocks(|| {
        let fifo = Arc::new(Fifo::new());
        let taker = {
            let fifo = fifo.clone();
            loom::thread::spawn(move || fifo.pop_wait())
        };
        fifo.push(7);
        assert_eq!(taker.join().unwrap(), 7);
    });
}

/// Two sleeping takers, two pushes: both wake (a notify that finds a taker
/// between its wake and its uncount must not strand the other).
#[test]
fn two_sleeping_takers_are_woken_by_two_pushes() {
    model_freeing_blocks(|| {
        let fifo = Arc::new(Fifo::new());
        let takers: Vec<_> = (0..2)
            .map(|_| {
                let fifo = fifo.clone();
                loom::thread::spawn(move || fifo.pop_wait())
            })
            .collect();
        fifo.push(1);
        fifo.push(2);
        let mut got: Vec<u32> = takers.into_iter().map(|t| t.join().unwrap()).collect();
        got.sort_unstable();
        assert_eq!(got, [1, 2]);
    });
}

/// A block whose every slot a taker has read is kept as the spare and
/// made again, empty, for the next pusher that needs a block: a taker
/// racing into the block made again finds nothing of what it held before.
#[test]
fn a_block_let_go_is_made_again_as_new() {
    model_freeing_blocks(|| {
        let fifo = Arc::new(Fifo::new());
        for v in 0..3 {
            fifo.push(v); // fills the first block; the last made the second
        }
        for v in 0..3 {
            assert_eq!(fifo.pop(), Some(v)); // the first is the spare now
        }
        let taker = {
            let fifo = fifo.clone();
            loom::thread::spawn(move || {
                let mut taken = Vec::new();
                for _ in 0..4 {
                    taken.extend(fifo.pop());
                }
                taken
            })
        };
        let pusher = {
            let fifo = fifo.clone();
            loom::thread::spawn(move || {
                for v in 3..7 {
                    // 5 makes the third block, out of the spare; 6 goes
                    // into it
                    fifo.push(v);
                }
            })
        };
        pusher.join().unwrap();
        let mut all = taker.join().unwrap();
        all.extend(std::iter::from_fn(|| fifo.pop()));
        assert_eq!(all, [3, 4, 5, 6]);
        assert!(fifo.is_empty());
    });
}
