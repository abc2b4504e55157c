//! Owners and leases: a dead owner's jobs are recovered once its lease has
//! run out, never before; a live owner's heartbeat keeps its jobs its own.

use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use drainpool::journal::JobState;

use crate::common::{TestPool, WAIT, bounded_join};
use crate::{Blocker, Square, TempDb, entered, eventually, fresh, gate, row_state};

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Writes what a process that died while running `Square(n)` leaves: its
/// owner row, with a lease until `lease_ms` from now, and the job started.
fn dead_owner_left_a_started_job(db: &TempDb, n: u64, lease_ms: i64) -> u64 {
    drop(db.journal()); // the tables
    let conn = db.raw();
    let now = now_ms();
    conn.execute(
        "INSERT INTO drainpool_owners (owner, pid, started_ms, lease_until_ms) \
         VALUES ('dead-1', 1, ?1, ?2)",
        [now, now + lease_ms],
    )
    .unwrap();
    conn.execute(
        "INSERT INTO drainpool_jobs (kind, payload, idempotency_key, state, owner, attempts, \
         created_ms, updated_ms) VALUES ('test.square', ?1, ?2, 'started', 'dead-1', 1, ?3, ?3)",
        rusqlite::params![format!("{n}"), format!("square-{n}"), now],
    )
    .unwrap();
    conn.last_insert_rowid() as u64
}

#[test]
fn a_dead_owners_started_job_is_recovered_once_its_lease_runs_out() {
    let _watchdog =
        crate::watchdog("a_dead_owners_started_job_is_recovered_once_its_lease_runs_out");
    let db = TempDb::new("lease-expiry");
    let id = dead_owner_left_a_started_job(&db, 9, 400);
    let journal = db.journal();

    let early = journal.recover().unwrap();
    assert!(early.jobs.is_empty(), "the lease still runs: not taken");
    assert_eq!(early.held_elsewhere, 1);
    let wait = early.retry_after.expect("when to look again");
    assert!(wait <= Duration::from_millis(400), "{wait:?}");

    let recovered = eventually("the lease running out", WAIT, || {
        let mut recovery = journal.recover().unwrap();
        recovery.jobs.pop()
    });
    assert_eq!(recovered.id().as_u64(), id);
    assert_eq!(recovered.left_in(), JobState::Started);
    assert_eq!(recovered.attempts(), 1);
    assert_eq!(recovered.previous_owner(), Some("dead-1"));
    assert_eq!(recovered.idempotency_key(), Some("square-9"));
    assert_eq!(row_state(&db, id), "queued", "ours now, not started yet");

    // Typed resubmit: the run knows it is the second attempt.
    let durable = recovered.into_job::<Square>().unwrap();
    let pool = TestPool::new(1);
    let (square, attempt, key) = bounded_join(pool.submit_job(durable).unwrap()).unwrap();
    assert_eq!((square, attempt, key.as_deref()), (81, 2, Some("square-9")));
    journal.flush().unwrap();
    assert_eq!(row_state(&db, id), "completed");
    assert!(journal.recover().unwrap().jobs.is_empty(), "taken once");
}

#[test]
fn a_live_owner_keeps_its_running_job_past_many_leases() {
    let _watchdog = crate::watchdog("a_live_owner_keeps_its_running_job_past_many_leases");
    let db = TempDb::new("lease-live");
    let lease = Duration::from_millis(90);
    let owner = db.journal_with_lease(lease);
    let pool = TestPool::new(1);
    let n = fresh();
    let handle = owner.submit(&pool, Blocker(n)).unwrap();
    entered(n).expect_open();

    let other = db.journal_with_lease(lease);
    // Still held after five leases: the heartbeat renews it (this sleep
    // checks that something stays so; it synchronises nothing).
    for _ in 0..10 {
        let recovery = other.recover().unwrap();
        assert!(recovery.jobs.is_empty(), "a live owner's job was taken");
        assert_eq!(recovery.held_elsewhere, 1);
        thread::sleep(lease / 2);
    }
    gate(n).open();
    bounded_join(handle.into_task_handle()).unwrap();
    owner.flush().unwrap();
    assert_eq!(row_state(&db, handle_id(&db)), "completed");
}

fn handle_id(db: &TempDb) -> u64 {
    db.raw()
        .query_row("SELECT MAX(id) FROM drainpool_jobs", [], |row| {
            row.get::<_, i64>(0)
        })
        .unwrap() as u64
}

#[test]
fn two_journals_recovering_at_once_never_take_the_same_job() {
    let _watchdog = crate::watchdog("two_journals_recovering_at_once_never_take_the_same_job");
    let db = TempDb::new("lease-race");
    drop(db.journal());
    {
        let conn = db.raw();
        for n in 0..200 {
            conn.execute(
                "INSERT INTO drainpool_jobs (kind, payload, state, owner, attempts, created_ms, \
                 updated_ms) VALUES ('test.square', ?1, 'queued', 'gone', 0, 0, 0)",
                [format!("{n}")],
            )
            .unwrap();
        }
    }
    let (a, b) = (db.journal(), db.journal());
    let ta = crate::common::spawn(move || {
        let ids: Vec<u64> = a
            .recover()
            .unwrap()
            .jobs
            .iter()
            .map(|j| j.id().as_u64())
            .collect();
        (ids, a)
    });
    let tb = crate::common::spawn(move || {
        let ids: Vec<u64> = b
            .recover()
            .unwrap()
            .jobs
            .iter()
            .map(|j| j.id().as_u64())
            .collect();
        (ids, b)
    });
    let (ids_a, _a) = ta.join("recovery a");
    let (ids_b, _b) = tb.join("recovery b");
    assert_eq!(ids_a.len() + ids_b.len(), 200, "each job taken once");
    assert!(ids_a.iter().all(|id| !ids_b.contains(id)));
}

#[test]
fn huge_leases_and_busy_timeouts_mean_forever_not_a_panic() {
    let _watchdog = crate::watchdog("huge_leases_and_busy_timeouts_mean_forever_not_a_panic");
    let db = TempDb::new("lease-max");
    let store = drainpool::journal::SqliteJournal::builder(db.path())
        .lease(Duration::MAX)
        .busy_timeout(Duration::MAX)
        .open()
        .unwrap();
    let journal = drainpool::journal::JobJournal::new(store);
    let pool = TestPool::new(1);
    let handle = journal.submit(&pool, Square(2)).unwrap();
    assert_eq!(bounded_join(handle.into_task_handle()).unwrap().0, 4);
}
