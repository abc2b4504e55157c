//! Waits with nested runs inside them: a join that runs the awaited task
//! inline, and a worker that, waiting for another pool, runs its own
//! pool's work. The waiting task keeps its record for the whole wait; the
//! task run inside shows only its own waits, never the outer one's.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use drainpool::crossbeam_channel::{bounded, unbounded};
use drainpool::{BlockedOn, StopToken, TaskHandle};

use crate::common::{TestPool, WAIT, bounded_join};
use crate::{After, blocked, eventually, listed};

/// A one-thread pool: T joins U, queued behind it, and runs it inline.
/// While U runs, T shows `Task(U)`, and U shows nothing (it spins) and
/// then `Recv` (its own wait), never T's; after the join T shows nothing.
#[test]
fn a_join_that_runs_the_task_inline_keeps_its_record_and_the_inner_task_shows_its_own() {
    let pool = TestPool::solo(drainpool::ThreadPool::builder());
    let (handle_tx, handle_rx) = bounded::<TaskHandle<u32>>(1);
    let outer_after = After::default();
    let outer = pool
        .submit({
            let after = outer_after.clone();
            move || {
                let inner = handle_rx.recv().unwrap();
                let value = inner.join().unwrap();
                after.spin();
                value
            }
        })
        .unwrap();
    let inner_spins = After::default();
    let (tx, rx) = unbounded();
    let inner = pool
        .submit({
            let spins = inner_spins.clone();
            move || {
                spins.spin(); // running, in no drainpool wait
                StopToken::current().recv(&rx).unwrap()
            }
        })
        .unwrap();
    let (outer_id, inner_id) = (outer.id(), inner.id());
    handle_tx.send(inner).unwrap();

    // The inner task runs inline, in no wait: the outer one waits for it.
    inner_spins.wait_past();
    let (shown, seen) = blocked(&pool, outer_id);
    assert_eq!(seen.on, BlockedOn::Task(inner_id), "{shown}");
    let running = listed(&pool, inner_id).expect("the inner task runs");
    assert_eq!(running.blocked_on(), None, "{running}");
    assert_eq!(running.thread, shown.thread, "inline, on the same worker");

    // The inner task's own wait is its own; the outer record stays.
    inner_spins.finish();
    let (shown, seen) = blocked(&pool, inner_id);
    assert_eq!(seen.on, BlockedOn::Recv, "{shown}");
    let waiting = listed(&pool, outer_id).expect("the outer task still runs");
    assert_eq!(
        waiting.blocked_on().map(|b| b.on),
        Some(BlockedOn::Task(inner_id)),
        "{waiting}"
    );

    // The join returned: the outer task runs on, no wait recorded.
    tx.send(42).unwrap();
    outer_after.wait_past();
    let running = listed(&pool, outer_id).expect("the outer task still runs");
    assert_eq!(running.blocked_on(), None, "{running}");
    outer_after.finish();
    assert_eq!(bounded_join(outer).unwrap(), 42);
}

/// Pool A has one worker. Its task S joins T, queued behind it, and runs
/// it inline; T joins a task of pool B, so A's worker runs A's queue
/// meanwhile: a batch, queued in chunks. While a chunk's task runs, S and
/// T are still listed, each with its wait, and the chunk's task shows no
/// wait; once the batch is done, S and T are both still listed (before
/// `save` listed the waiting task, the chunk's end dropped S from the
/// list while T still waited).
#[test]
fn a_chunk_run_inside_a_wait_for_another_pool_keeps_every_waiting_task_listed() {
    let a = TestPool::solo(drainpool::ThreadPool::builder());
    let b = TestPool::new(1);
    let (release_b, b_gate) = bounded::<()>(1);
    let (b_started_tx, b_started) = bounded(1);
    let on_b = b
        .submit(move || {
            b_started_tx.send(()).unwrap();
            b_gate.recv().unwrap();
        })
        .unwrap();
    b_started.recv_timeout(WAIT).expect("B's task started");
    let b_id = on_b.id();

    let (t_tx, t_rx) = bounded::<TaskHandle<()>>(1);
    let s = a
        .submit(move || {
            let t = t_rx.recv().unwrap();
            t.join().unwrap();
        })
        .unwrap();
    let t = a.submit(move || on_b.join().unwrap()).unwrap();
    let (s_id, t_id) = (s.id(), t.id());

    // A batch big enough to be queued in chunks; its first task holds the
    // worker until released.
    let (release_chunk, chunk_gate) = bounded::<()>(1);
    let ran = Arc::new(AtomicUsize::new(0));
    const BATCH: usize = 16;
    let tasks: Vec<Box<dyn FnOnce() + Send>> = (0..BATCH)
        .map(|i| {
            let (ran, gate) = (ran.clone(), chunk_gate.clone());
            Box::new(move || {
                if i == 0 {
                    gate.recv().unwrap();
                }
                ran.fetch_add(1, Ordering::SeqCst);
            }) as Box<dyn FnOnce() + Send>
        })
        .collect();
    a.execute_batch(tasks).unwrap();
    t_tx.send(t).unwrap();

    // The batch's first task runs inside T's wait, inside S's.
    let (shown, seen) = blocked(&a, t_id);
    assert_eq!(seen.on, BlockedOn::Task(b_id), "{shown}");
    eventually("S, T and a task of the batch listed", || {
        let running = a.running_tasks();
        (running.len() == 3).then_some(())
    });
    let running = a.running_tasks();
    let listed_ids: Vec<_> = running.iter().map(|task| task.id).collect();
    assert_eq!(&listed_ids[..2], [s_id, t_id], "{running:?}");
    assert_eq!(
        running[0].blocked_on().map(|b| b.on),
        Some(BlockedOn::Task(t_id))
    );
    assert_eq!(
        running[1].blocked_on().map(|b| b.on),
        Some(BlockedOn::Task(b_id))
    );
    assert_eq!(running[2].blocked_on(), None, "{}", running[2]);

    // The batch done, S and T still wait, both listed with their waits.
    release_chunk.send(()).unwrap();
    eventually("the batch ran", || {
        (ran.load(Ordering::SeqCst) == BATCH).then_some(())
    });
    let running = eventually("S and T listed again", || {
        let running = a.running_tasks();
        (running.len() == 2).then_some(running)
    });
    let waits: Vec<_> = running
        .iter()
        .map(|task| (task.id, task.blocked_on().map(|b| b.on)))
        .collect();
    assert_eq!(
        waits,
        [
            (s_id, Some(BlockedOn::Task(t_id))),
            (t_id, Some(BlockedOn::Task(b_id)))
        ]
    );

    release_b.send(()).unwrap();
    bounded_join(s).unwrap();
}
