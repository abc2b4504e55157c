use super::*;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize as Count;
use std::thread;
use std::time::Duration;

#[test]
fn entries_come_out_in_order_across_blocks() {
    let fifo = Fifo::new();
    for round in 0..3 {
        for i in 0..(LAP * 3 + 5) {
            fifo.push(i);
            assert_eq!(fifo.len(), i + 1, "round {round}");
        }
        for i in 0..(LAP * 3 + 5) {
            assert_eq!(fifo.pop(), Some(i));
        }
        assert!(fifo.is_empty());
        assert_eq!(fifo.pop(), None);
    }
}

#[test]
fn the_count_skips_block_ends() {
    assert_eq!(between(0, 0), 0);
    assert_eq!(between(0, BLOCK), BLOCK);
    assert_eq!(between(0, LAP), BLOCK); // the end position counts nothing
    assert_eq!(between(BLOCK, LAP), 0);
    assert_eq!(between(BLOCK - 1, LAP + 1), 2);
    // Across wrap-around.
    let head = POSITIONS - 2 * LAP;
    let tail = (head + 2 * LAP + 3) & (POSITIONS - 1);
    assert_eq!(between(head, tail), 2 * BLOCK + 3);
}

/// Counts its drops.
struct Counted(Arc<Count>);
impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn dropping_the_queue_drops_what_is_left_once() {
    for taken in [0, 1, BLOCK - 1, BLOCK, LAP + 2] {
        let drops = Arc::new(Count::new(0));
        let fifo = Fifo::new();
        for _ in 0..(2 * LAP + 7) {
            fifo.push(Counted(drops.clone()));
        }
        for _ in 0..taken {
            drop(fifo.pop());
        }
        assert_eq!(drops.load(Ordering::SeqCst), taken);
        drop(fifo);
        assert_eq!(drops.load(Ordering::SeqCst), 2 * LAP + 7, "taken {taken}");
    }
}

/// Many pushers and takers: every entry comes out exactly once, and
/// each pusher's entries in its order.
#[test]
fn many_pushers_and_takers_lose_and_repeat_nothing() {
    const PUSHERS: usize = 3;
    const TAKERS: usize = 3;
    // Miri runs this too (the blocks' reclamation is checked there).
    const EACH: usize = if cfg!(miri) { 100 } else { 20_000 };
    const ROUNDS: usize = if cfg!(miri) { 2 } else { 20 };
    for _round in 0..ROUNDS {
        let fifo: Arc<Fifo<(usize, usize)>> = Arc::new(Fifo::new());
        let done = Arc::new(Count::new(0));
        let takers: Vec<_> = (0..TAKERS)
            .map(|_| {
                let (fifo, done) = (fifo.clone(), done.clone());
                thread::spawn(move || {
                    let mut seen = Vec::new();
                    let mut last = [None::<usize>; PUSHERS];
                    loop {
                        match fifo.pop() {
                            Some((who, i)) => {
                                assert!(last[who].is_none_or(|l| l < i), "out of order");
                                last[who] = Some(i);
                                seen.push((who, i));
                            }
                            None if done.load(Ordering::SeqCst) == PUSHERS => match fifo.pop() {
                                Some(entry) => seen.push(entry),
                                None => return seen,
                            },
                            None => thread::yield_now(),
                        }
                    }
                })
            })
            .collect();
        let pushers: Vec<_> = (0..PUSHERS)
            .map(|who| {
                let (fifo, done) = (fifo.clone(), done.clone());
                thread::spawn(move || {
                    for i in 0..EACH {
                        fifo.push((who, i));
                    }
                    done.fetch_add(1, Ordering::SeqCst);
                })
            })
            .collect();
        pushers.into_iter().for_each(|p| p.join().unwrap());
        let mut all: Vec<(usize, usize)> =
            takers.into_iter().flat_map(|t| t.join().unwrap()).collect();
        all.sort_unstable();
        assert_eq!(all.len(), PUSHERS * EACH);
        all.dedup();
        assert_eq!(all.len(), PUSHERS * EACH, "an entry came out twice");
        assert!(fifo.is_empty());
    }
}

/// A sleeping taker is woken by each push, wherever it lands.
#[test]
fn a_sleeping_taker_wakes_for_every_push() {
    for _round in 0..if cfg!(miri) { 3 } else { 200 } {
        let fifo = Arc::new(Fifo::new());
        let taker = {
            let fifo = fifo.clone();
            thread::spawn(move || {
                let deadline = Instant::now() + Duration::from_secs(10);
                (0..3)
                    .map(|_| fifo.pop_wait(Some(deadline)))
                    .collect::<Vec<_>>()
            })
        };
        for i in 0..3 {
            fifo.push(i);
        }
        assert_eq!(taker.join().unwrap(), [Some(0), Some(1), Some(2)]);
    }
}

#[test]
fn a_timed_wait_on_an_empty_queue_returns_none() {
    let fifo = Fifo::<u32>::new();
    let deadline = Instant::now() + Duration::from_millis(5);
    assert_eq!(fifo.pop_wait(Some(deadline)), None);
    assert!(Instant::now() >= deadline);
}

/// With every processor busy, each yield among the looks before a sleep
/// lasts a time slice of the busy threads: the 34 of them kept a 200 µs
/// wait going for hundreds of milliseconds (a worker's naps while it waits
/// for another pool are such waits). The looks stop at the deadline, so
/// the wait ends within a slice or two of it. The bound, 50 ms, is far
/// above that and below what the looks took with four busy threads per
/// processor here (medians of 150-176 ms; now 4-12 ms).
#[test]
#[cfg_attr(
    miri,
    ignore = "timed: Miri switches threads on its own schedule, not the kernel's slices"
)]
fn a_timed_wait_ends_near_its_deadline_with_every_processor_busy() {
    use std::sync::atomic::AtomicBool;
    let stop = Arc::new(AtomicBool::new(false));
    let busy = thread::available_parallelism().map_or(2, |n| n.get()) * 4;
    let hogs: Vec<_> = (0..busy)
        .map(|_| {
            let stop = stop.clone();
            thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    std::hint::spin_loop();
                }
            })
        })
        .collect();
    let fifo = Fifo::<u32>::new();
    let mut took: Vec<Duration> = (0..5)
        .map(|_| {
            let start = Instant::now();
            assert_eq!(
                fifo.pop_wait(Some(start + Duration::from_micros(200))),
                None
            );
            start.elapsed()
        })
        .collect();
    stop.store(true, Ordering::Relaxed);
    hogs.into_iter().for_each(|hog| hog.join().unwrap());
    took.sort();
    assert!(
        took[2] < Duration::from_millis(50),
        "median {:?} of {took:?}",
        took[2]
    );
}
