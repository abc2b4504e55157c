//! `Scope::cancel` racing spawns, hammered: every spawned task ends exactly
//! once (it ran, or its closure was dropped without running), its handle
//! agrees, the pool's books agree, and the scope returns.
//!
//! The two sides are lined up inside each round's race: the spawner stops
//! at a random spawn until the canceller says it is about to cancel, so
//! that both are on a core at that moment however busy the machine is;
//! then the canceller waits a short random spin, so that the cancel lands
//! anywhere near that spawn. Lining them up only before the first spawn
//! was not enough: on a loaded two-core machine the canceller lost its
//! core to the workers the spawns woke, and in 500 rounds no spawn came
//! after the cancel. Each test checks that the window was hit (some
//! rounds both ran tasks and cancelled some, some refused a spawn).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::common::{Rng, TestPool, WAIT, spin};
use crate::{Fates, books, spin_until, watchdog_within};

const ROUNDS: usize = 500;
const TASKS: usize = 100;

/// The pool's books, all rounds so far.
#[derive(Debug, Default, PartialEq, Eq)]
struct Books {
    completed: u64,
    /// Cancelled or rejected.
    never_ran: u64,
    rejected: u64,
}

impl Books {
    fn of(pool: &drainpool::ThreadPool) -> Books {
        let (completed, panicked, cancelled, rejected) = books(pool);
        assert_eq!(panicked, 0);
        Books {
            completed,
            never_ran: cancelled + rejected,
            rejected,
        }
    }
}

/// How the rounds came out: the race is only tested if some were mixed.
#[derive(Debug, Default)]
struct Outcomes {
    /// Some tasks ran, some never did.
    mixed: usize,
    /// Some spawns came after the cancel and were refused.
    refused: usize,
}

#[test]
fn cancel_from_a_task_racing_the_callers_spawns_ends_every_task_once() {
    watchdog_within("the cancel races", 6 * WAIT, || {
        let pool = TestPool::new(3);
        let mut rng = Rng(0xca9c_e115);
        let mut expected = Books::default();
        let mut outcomes = Outcomes::default();
        for round in 0..ROUNDS {
            let what = format!("round {round}");
            let fates = Fates::new(TASKS);
            let (go, cancelling) = (AtomicBool::new(false), AtomicBool::new(false));
            let mut refused = 0;
            let meet_at = rng.next() as usize % TASKS;
            let cancel_spins = rng.spins(12);
            pool.scope(|s| {
                let canceller = s.spawn(|| {
                    spin_until(&go);
                    cancelling.store(true, Ordering::SeqCst);
                    spin(cancel_spins);
                    s.cancel();
                });
                let handles: Vec<_> = (0..TASKS)
                    .map(|i| {
                        if i == meet_at {
                            go.store(true, Ordering::SeqCst);
                            spin_until(&cancelling);
                        }
                        let probe = fates.probe(i);
                        s.spawn(move || probe.run())
                    })
                    .collect();
                for (i, handle) in handles.into_iter().enumerate() {
                    refused += usize::from(handle.id().is_none());
                    match handle.join() {
                        Ok(index) => assert_eq!((index, fates.runs(i)), (i, 1), "{what}"),
                        Err(e) => {
                            assert!(e.is_cancelled(), "{what}: task {i}: {e:?}");
                            assert_eq!(fates.runs(i), 0, "{what}: task {i} ran, yet Cancelled");
                        }
                    }
                }
                canceller.join().unwrap();
                assert!(s.is_cancelled(), "{what}");
            });
            fates.assert_each_ended_once(&what);
            let (ran, unrun) = (fates.ran(), fates.dropped_unrun());
            assert_eq!(ran + unrun, TASKS, "{what}");
            outcomes.mixed += usize::from(ran > 0 && unrun > 0);
            outcomes.refused += usize::from(refused > 0);
            expected.completed += 1 + ran as u64; // the canceller always runs
            expected.never_ran += unrun as u64;
            expected.rejected += refused as u64;
            assert_eq!(Books::of(&pool), expected, "{what}");
        }
        assert!(
            outcomes.mixed > 0 && outcomes.refused > 0,
            "the race window was never hit: {outcomes:?}"
        );
    });
}

#[test]
fn cancel_from_the_caller_racing_a_tasks_spawns_ends_every_task_once() {
    watchdog_within("the cancel races", 6 * WAIT, || {
        let pool = TestPool::new(3);
        let mut rng = Rng(0x5a4e_ca11);
        let mut expected = Books::default();
        let mut outcomes = Outcomes::default();
        for round in 0..ROUNDS {
            let what = format!("round {round}");
            let fates = Fates::new(TASKS);
            let refused = AtomicUsize::new(0);
            let (go, cancelling) = (AtomicBool::new(false), AtomicBool::new(false));
            let meet_at = rng.next() as usize % TASKS;
            let cancel_spins = rng.spins(12);
            let task_spins: Vec<u64> = (0..TASKS).map(|_| rng.spins(8)).collect();
            pool.scope(|s| {
                let (fates, refused, task_spins) = (&fates, &refused, &task_spins);
                let (go, cancelling) = (&go, &cancelling);
                s.spawn(move || {
                    for (i, &spins) in task_spins.iter().enumerate() {
                        if i == meet_at {
                            go.store(true, Ordering::SeqCst);
                            spin_until(cancelling);
                        }
                        let probe = fates.probe(i);
                        let handle = s.spawn(move || {
                            spin(spins);
                            probe.run()
                        });
                        refused.fetch_add(usize::from(handle.id().is_none()), Ordering::SeqCst);
                    }
                });
                spin_until(go);
                cancelling.store(true, Ordering::SeqCst);
                spin(cancel_spins);
                s.cancel();
            });
            fates.assert_each_ended_once(&what);
            let (ran, unrun) = (fates.ran(), fates.dropped_unrun());
            let refused = refused.into_inner();
            assert_eq!(ran + unrun, TASKS, "{what}");
            outcomes.mixed += usize::from(ran > 0 && unrun > 0);
            outcomes.refused += usize::from(refused > 0);
            expected.completed += 1 + ran as u64; // the spawner started before the cancel
            expected.never_ran += unrun as u64;
            expected.rejected += refused as u64;
            assert_eq!(Books::of(&pool), expected, "{what}");
        }
        assert!(
            outcomes.mixed > 0 && outcomes.refused > 0,
            "the race window was never hit: {outcomes:?}"
        );
    });
}
