//! Submitting durably: concurrent submitters, the states a pool's life
//! leaves in the journal (drain, panic, `shutdown_now`, cancel), the job's
//! view of itself.

use std::sync::Arc;
use std::time::Duration;

use drainpool::journal::{Durable, DurableRejectReason, JobState};
use drainpool::{RejectReason, ThreadPool};

use crate::common::{Gate, TestPool, WAIT, bounded_join, spawn};
use crate::{Blocker, Boom, Square, TempDb, entered, fresh, gate, row_state};

#[test]
fn concurrent_submitters_each_get_their_job_recorded_and_run() {
    let _watchdog = crate::watchdog("concurrent_submitters_each_get_their_job_recorded_and_run");
    let db = TempDb::new("concurrent");
    let journal = db.journal();
    let pool = Arc::new(TestPool::new(4));
    const THREADS: u64 = 8;
    const EACH: u64 = 100;
    let submitters: Vec<_> = (0..THREADS)
        .map(|t| {
            let (journal, pool) = (journal.clone(), pool.clone());
            spawn(move || {
                let mut ids = Vec::new();
                for i in 0..EACH {
                    let n = t * EACH + i;
                    let handle = journal.submit(&pool, Square(n)).unwrap();
                    ids.push(handle.job_id());
                    let (square, attempt, key) = bounded_join(handle.into_task_handle()).unwrap();
                    assert_eq!((square, attempt), (n * n, 1));
                    assert_eq!(key.as_deref(), Some(format!("square-{n}").as_str()));
                }
                ids
            })
        })
        .collect();
    let mut ids: Vec<_> = submitters
        .into_iter()
        .flat_map(|s| s.join("a submitter"))
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(
        ids.len() as u64,
        THREADS * EACH,
        "every submit got its own id"
    );

    journal.flush().unwrap();
    let counts = journal.counts().unwrap();
    assert_eq!(counts.completed, THREADS * EACH);
    assert_eq!(counts.total(), THREADS * EACH);
    let stats = journal.stats();
    assert_eq!(
        (stats.submitted, stats.rejected, stats.failed_writes),
        (THREADS * EACH, 0, 0)
    );
    // Group commit: the submits and their start and end marks shared
    // transactions (one each would be three per job).
    eprintln!("{} commits for {} jobs", stats.commits, THREADS * EACH);
    assert!(stats.commits < THREADS * EACH * 3, "{stats:?}");
}

#[test]
fn submit_all_records_a_batch_in_one_go() {
    let _watchdog = crate::watchdog("submit_all_records_a_batch_in_one_go");
    let db = TempDb::new("batch");
    let journal = db.journal();
    let pool = TestPool::new(2);
    let handles = journal.submit_all(&pool, (1..=50).map(Square)).unwrap();
    let ids: Vec<u64> = handles.iter().map(|h| h.job_id().as_u64()).collect();
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "ids follow the order given"
    );
    for (n, handle) in (1..=50u64).zip(handles) {
        assert_eq!(bounded_join(handle.into_task_handle()).unwrap().0, n * n);
    }
}

#[test]
fn a_drain_records_every_end() {
    let _watchdog = crate::watchdog("a_drain_records_every_end");
    let db = TempDb::new("drain");
    let journal = db.journal();
    let pool = ThreadPool::new(2).unwrap();
    for n in 0..40 {
        journal.submit(&pool, Square(n)).unwrap();
    }
    journal.submit(&pool, Boom).unwrap();
    pool.shutdown();
    assert!(pool.await_termination(WAIT));
    journal.flush().unwrap();
    let counts = journal.counts().unwrap();
    assert_eq!((counts.completed, counts.failed), (40, 1));
    assert_eq!((counts.queued, counts.started), (0, 0));
}

#[test]
fn a_panicking_job_is_recorded_failed_and_its_panic_reaches_the_handle() {
    let _watchdog =
        crate::watchdog("a_panicking_job_is_recorded_failed_and_its_panic_reaches_the_handle");
    let db = TempDb::new("panic");
    let journal = db.journal();
    let pool = TestPool::new(1);
    let handle = journal.submit(&pool, Boom).unwrap();
    let id = handle.job_id();
    let err = bounded_join(handle.into_task_handle()).unwrap_err();
    assert!(err.is_panic());
    // The worker survived.
    let after = journal.submit(&pool, Square(3)).unwrap();
    assert_eq!(bounded_join(after.into_task_handle()).unwrap().0, 9);
    journal.flush().unwrap();
    assert_eq!(row_state(&db, id.as_u64()), "failed");
}

#[test]
fn shutdown_now_leaves_never_started_jobs_queued_and_the_next_start_runs_them() {
    let _watchdog = crate::watchdog(
        "shutdown_now_leaves_never_started_jobs_queued_and_the_next_start_runs_them",
    );
    let db = TempDb::new("shutdown-now");
    let first = db.journal();
    let pool = ThreadPool::new(1).unwrap();
    let gate = Gate::occupying(&pool, 1);
    let ids: Vec<_> = (1..=5)
        .map(|n| first.submit(&pool, Square(n)).unwrap().job_id())
        .collect();
    let pending = pool.shutdown_now();
    assert_eq!(pending.len(), 5);
    drop(pending); // dropped, not cancelled on purpose: they stay queued
    gate.release();
    assert!(pool.await_termination(WAIT));
    first.flush().unwrap();
    assert_eq!(first.counts().unwrap().queued, 5);
    drop(first); // closes: the lease is released

    let second = db.journal();
    let recovery = second.recover().unwrap();
    assert_eq!(recovery.held_elsewhere, 0);
    assert!(recovery.skipped.is_empty());
    let found: Vec<_> = recovery.jobs.iter().map(|job| job.id()).collect();
    assert_eq!(found, ids, "every queued job, in order");
    for job in &recovery.jobs {
        assert_eq!(job.left_in(), JobState::Queued);
        assert_eq!(job.attempts(), 0);
        assert_eq!(job.kind(), "test.square");
        assert!(job.job::<Square>().is_some());
    }
    let pool = TestPool::new(2);
    for job in recovery.jobs {
        job.resubmit(&pool).unwrap();
    }
    assert!(pool.wait_idle(WAIT));
    second.flush().unwrap();
    let counts = second.counts().unwrap();
    assert_eq!((counts.completed, counts.queued), (5, 0));
    assert_eq!(second.stats().recovered, 5);
}

#[test]
fn a_handed_back_job_comes_out_as_a_durable_value_and_runs_under_its_id() {
    let _watchdog =
        crate::watchdog("a_handed_back_job_comes_out_as_a_durable_value_and_runs_under_its_id");
    let db = TempDb::new("into-job");
    let journal = db.journal();
    let pool = ThreadPool::new(1).unwrap();
    let gate = Gate::occupying(&pool, 1);
    let id = journal.submit(&pool, Square(6)).unwrap().job_id();
    let mut pending = pool.shutdown_now();
    let durable: Durable<Square> = pending.pop().unwrap().into_job().unwrap();
    assert_eq!((durable.job_id(), durable.job()), (id, &Square(6)));
    gate.release();
    assert!(pool.await_termination(WAIT));

    let other = TestPool::new(1);
    let handle = other.submit_job(durable).unwrap();
    assert_eq!(bounded_join(handle).unwrap().0, 36);
    journal.flush().unwrap();
    assert_eq!(row_state(&db, id.as_u64()), "completed");
    assert_eq!(journal.counts().unwrap().total(), 1, "no second row");
}

#[test]
fn cancelling_a_queued_job_records_it_cancelled_for_good() {
    let _watchdog = crate::watchdog("cancelling_a_queued_job_records_it_cancelled_for_good");
    let db = TempDb::new("cancel");
    let journal = db.journal();
    let pool = TestPool::new(1);
    let gate = Gate::occupying(&pool, 1);
    let handle = journal.submit(&pool, Square(2)).unwrap();
    assert!(handle.cancel());
    assert_eq!(row_state(&db, handle.job_id().as_u64()), "cancelled");
    gate.release();
    assert!(
        bounded_join(handle.into_task_handle())
            .unwrap_err()
            .is_cancelled()
    );
    drop(journal);
    let again = db.journal();
    assert!(again.recover().unwrap().jobs.is_empty(), "never comes back");
}

#[test]
fn a_pool_that_refuses_gets_the_job_handed_back() {
    let _watchdog = crate::watchdog("a_pool_that_refuses_gets_the_job_handed_back");
    let db = TempDb::new("refused");
    let journal = db.journal();
    let pool = ThreadPool::new(1).unwrap();
    pool.shutdown();
    let rejected = journal.submit(&pool, Square(4)).unwrap_err();
    assert!(matches!(
        rejected.reason(),
        DurableRejectReason::Pool(RejectReason::Shutdown)
    ));
    assert_eq!(rejected.into_inner(), Square(4));
    assert_eq!(journal.counts().unwrap().total(), 0, "nothing recorded");
    assert_eq!(journal.stats().rejected, 1);
}

#[test]
fn a_running_job_is_recorded_started_by_this_process() {
    let _watchdog = crate::watchdog("a_running_job_is_recorded_started_by_this_process");
    let db = TempDb::new("started");
    let journal = db.journal();
    let pool = TestPool::new(1);
    let n = fresh();
    let handle = journal.submit(&pool, Blocker(n)).unwrap();
    entered(n).expect_open();
    journal.flush().unwrap();
    let (state, owner, attempts): (String, String, i64) = db
        .raw()
        .query_row(
            "SELECT state, owner, attempts FROM drainpool_jobs WHERE id = ?1",
            [handle.job_id().as_u64() as i64],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
        )
        .unwrap();
    assert_eq!((state.as_str(), attempts), ("started", 1));
    assert_eq!(owner, journal.store().owner());
    assert!(owner.starts_with(&format!("{}-", std::process::id())));
    gate(n).open();
    bounded_join(handle.into_task_handle()).unwrap();
    assert!(pool.wait_idle(Duration::from_secs(10)));
}

/// Works until its stop token fires (or, bounded, for [`WAIT`]); says
/// whether it finished.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Patient(u64);

impl drainpool::Job for Patient {
    type Output = bool;
    fn run(self) -> bool {
        entered(self.0).open();
        drainpool::StopToken::current().sleep(WAIT).is_ok()
    }
}

impl drainpool::journal::DurableJob for Patient {
    const KIND: &'static str = "test.patient";
    fn is_complete(finished: &bool) -> bool {
        *finished
    }
}

#[test]
fn a_run_stopped_early_goes_back_to_queued_for_the_next_start() {
    let _watchdog = crate::watchdog("a_run_stopped_early_goes_back_to_queued_for_the_next_start");
    let db = TempDb::new("requeued");
    let journal = db.journal();
    let pool = ThreadPool::new(1).unwrap();
    let n = fresh();
    let handle = journal.submit(&pool, Patient(n)).unwrap();
    entered(n).expect_open();
    assert!(pool.shutdown_now().is_empty());
    assert!(
        !bounded_join(handle.into_task_handle()).unwrap(),
        "it was interrupted"
    );
    assert!(pool.await_termination(WAIT));
    journal.flush().unwrap();
    drop(journal);

    let next = db.journal();
    next.register::<Patient>().unwrap();
    let recovery = next.recover().unwrap();
    assert_eq!(recovery.jobs.len(), 1);
    assert_eq!(recovery.jobs[0].left_in(), JobState::Queued);
    assert_eq!(recovery.jobs[0].attempts(), 1, "it had started once");
}

#[test]
fn a_group_takes_durable_jobs_and_its_cancel_leaves_them_queued_unless_recorded() {
    let _watchdog = crate::watchdog("a_group_takes_durable_jobs");
    let db = TempDb::new("group");
    let journal = db.journal();
    let pool = TestPool::new(2);

    // Run through a group, waited for as one job.
    let import = pool.group("import");
    let handles = journal.submit_all(&import, (1..=4).map(Square)).unwrap();
    assert!(import.wait(WAIT));
    assert_eq!(import.progress().completed, 4);
    drop(handles);

    // A plain group cancel: the rows stay queued for the next start.
    let kept = pool.group("kept");
    kept.pause();
    let kept_ids: Vec<_> = (5..=6)
        .map(|n| journal.submit(&kept, Square(n)).unwrap().job_id())
        .collect();
    assert_eq!(kept.cancel(), 2);

    // Taken back and cancelled in the journal: final.
    let dropped = pool.group("dropped");
    dropped.pause();
    journal.submit(&dropped, Square(7)).unwrap();
    for task in dropped.cancel_returning() {
        let durable: Durable<Square> = task.into_job().unwrap();
        journal.cancel(durable.job_id()).unwrap();
    }
    // A cancelled group refuses, and nothing is recorded.
    assert!(journal.submit(&dropped, Square(8)).is_err());

    journal.flush().unwrap();
    let counts = journal.counts().unwrap();
    assert_eq!(
        (counts.completed, counts.queued, counts.cancelled),
        (4, 2, 1)
    );
    assert_eq!(counts.total(), 7);
    drop(journal);
    let next = db.journal();
    let found: Vec<_> = next
        .recover()
        .unwrap()
        .jobs
        .iter()
        .map(|j| j.id())
        .collect();
    assert_eq!(found, kept_ids);
}
