//! Journal errors: a full disk, a locked database, a store that fails its
//! marks, a corrupt row, a kind nobody registered, a job that does not
//! serialise. Each is a clear error that hands the job back, or a logged,
//! counted skip; never a silent loss, never a panic in a worker.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use drainpool::Job;
use drainpool::journal::{
    Claim, DurableJob, DurableRejectReason, JobCounts, JobId, JobJournal, JobState, Journal,
    JournalError, Mark, NewJob, SkipReason, SqliteJournal,
};
use serde::{Deserialize, Serialize, Serializer};

use crate::common::{TestPool, WAIT, bounded_join, capture_logs, logged};
use crate::{Square, TempDb, row_state};

#[test]
fn a_full_database_refuses_the_submit_and_hands_the_job_back() {
    let _watchdog = crate::watchdog("a_full_database_refuses_the_submit_and_hands_the_job_back");
    let db = TempDb::new("full");
    drop(db.journal()); // the tables
    let store = SqliteJournal::builder(db.path())
        .pragma("max_page_count", "1") // no room to grow past what is there
        .open()
        .unwrap();
    let journal = JobJournal::new(store);
    let pool = TestPool::new(1);
    // A job too big for the room left.
    let big = Payload("x".repeat(64 * 1024));
    let rejected = journal.submit(&pool, big.clone()).unwrap_err();
    assert!(
        matches!(
            rejected.reason(),
            DurableRejectReason::Journal(JournalError::Full)
        ),
        "{rejected}"
    );
    assert!(rejected.to_string().contains("full"), "{rejected}");
    assert_eq!(rejected.job_id(), None);
    assert_eq!(rejected.into_inner(), big, "handed back whole");
    assert_eq!(
        journal.counts().unwrap().total(),
        0,
        "nothing half recorded"
    );
    assert_eq!(journal.stats().rejected, 1);
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Payload(String);

impl Job for Payload {
    type Output = usize;
    fn run(self) -> usize {
        self.0.len()
    }
}

impl DurableJob for Payload {
    const KIND: &'static str = "test.payload";
}

#[test]
fn a_locked_database_gives_busy_at_submit_and_marks_wait_for_the_lock() {
    let _watchdog =
        crate::watchdog("a_locked_database_gives_busy_at_submit_and_marks_wait_for_the_lock");
    let db = TempDb::new("locked");
    let store = SqliteJournal::builder(db.path())
        .busy_timeout(Duration::from_millis(50))
        .open()
        .unwrap();
    let journal = JobJournal::new(store);
    let pool = TestPool::new(1);
    let first = journal.submit(&pool, Square(1)).unwrap();
    let id = first.job_id();
    bounded_join(first.into_task_handle()).unwrap();
    journal.flush().unwrap();

    let holder = db.raw();
    holder.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let rejected = journal.submit(&pool, Square(2)).unwrap_err();
    assert!(
        matches!(
            rejected.reason(),
            DurableRejectReason::Journal(JournalError::Busy)
        ),
        "{rejected}"
    );
    assert!(rejected.reason_is_transient());
    assert_eq!(rejected.into_inner(), Square(2));
    // A mark that meets the lock fails, is counted, and is kept for later.
    journal.cancel(id).unwrap_err();
    holder.execute_batch("ROLLBACK").unwrap();

    let second = journal.submit(&pool, Square(3)).unwrap();
    bounded_join(second.into_task_handle()).unwrap();
    journal.flush().unwrap();
    assert_eq!(journal.counts().unwrap().completed, 2);
}

trait TransientReason {
    fn reason_is_transient(&self) -> bool;
}

impl<J> TransientReason for drainpool::journal::DurableRejected<J> {
    fn reason_is_transient(&self) -> bool {
        matches!(self.reason(), DurableRejectReason::Journal(e) if e.is_transient())
    }
}

/// A store that fails on purpose: the seam for simulating a full disk
/// anywhere in a job's life.
#[derive(Debug)]
struct Failing {
    inner: SqliteJournal,
    enqueue_full: AtomicBool,
    record_full: Arc<AtomicBool>,
}

impl Journal for Failing {
    fn owner(&self) -> &str {
        self.inner.owner()
    }
    fn enqueue_all(&self, jobs: Vec<NewJob>) -> Result<Vec<JobId>, JournalError> {
        if self.enqueue_full.load(Ordering::SeqCst) {
            return Err(JournalError::Full);
        }
        self.inner.enqueue_all(jobs)
    }
    fn record(&self, id: JobId, mark: Mark) -> Result<(), JournalError> {
        if self.record_full.load(Ordering::SeqCst) {
            return Err(JournalError::Full);
        }
        self.inner.record(id, mark)
    }
    fn flush(&self) -> Result<(), JournalError> {
        self.inner.flush()
    }
    fn claim_abandoned(&self) -> Result<Claim, JournalError> {
        self.inner.claim_abandoned()
    }
    fn counts(&self) -> Result<JobCounts, JournalError> {
        self.inner.counts()
    }
    fn failed_writes(&self) -> u64 {
        self.inner.failed_writes()
    }
}

#[test]
fn a_store_that_fails_its_marks_never_panics_a_worker_and_the_job_reruns() {
    let _watchdog =
        crate::watchdog("a_store_that_fails_its_marks_never_panics_a_worker_and_the_job_reruns");
    capture_logs();
    let db = TempDb::new("failing-marks");
    let record_full = Arc::new(AtomicBool::new(true));
    let journal = JobJournal::new(Failing {
        inner: SqliteJournal::open(db.path()).unwrap(),
        enqueue_full: AtomicBool::new(false),
        record_full: record_full.clone(),
    });
    let pool = TestPool::new(1);
    let handle = journal.submit(&pool, Square(5)).unwrap();
    let id = handle.job_id();
    // The job ran and its worker is fine, though neither mark was written.
    assert_eq!(bounded_join(handle.into_task_handle()).unwrap().0, 25);
    let again = journal.submit(&pool, Square(6)).unwrap();
    assert_eq!(bounded_join(again.into_task_handle()).unwrap().0, 36);
    assert_eq!(journal.stats().failed_writes, 4, "two marks of two jobs");
    assert!(!logged(log::Level::Error, &format!("could not record {id}")).is_empty());
    assert_eq!(
        row_state(&db, id.as_u64()),
        "queued",
        "left behind, not lost"
    );

    // The next start reruns it: at least once.
    drop(journal);
    let next = db.journal();
    let recovery = next.recover().unwrap();
    assert_eq!(recovery.jobs.len(), 2);
    assert_eq!(recovery.jobs[0].id(), id);
}

#[test]
fn a_store_that_cannot_enqueue_hands_the_job_back() {
    let _watchdog = crate::watchdog("a_store_that_cannot_enqueue_hands_the_job_back");
    let db = TempDb::new("failing-enqueue");
    let journal = JobJournal::new(Failing {
        inner: SqliteJournal::open(db.path()).unwrap(),
        enqueue_full: AtomicBool::new(true),
        record_full: Arc::new(AtomicBool::new(false)),
    });
    let pool = TestPool::new(1);
    let rejected = journal.submit(&pool, Square(7)).unwrap_err();
    assert!(matches!(
        rejected.reason(),
        DurableRejectReason::Journal(JournalError::Full)
    ));
    assert_eq!(rejected.into_inner(), Square(7));
    assert!(pool.wait_idle(WAIT));
    assert_eq!(pool.stats().completed, 0, "nothing unrecorded ran");
}

/// Inserts a row as a previous run could have left it, owned by nobody.
fn insert_row(db: &TempDb, kind: &str, payload: &str, state: &str) -> u64 {
    drop(db.journal()); // the tables
    let conn = db.raw();
    conn.execute(
        "INSERT INTO drainpool_jobs (kind, payload, state, owner, attempts, created_ms, \
         updated_ms) VALUES (?1, ?2, ?3, NULL, 0, 0, 0)",
        [kind, payload, state],
    )
    .unwrap();
    conn.last_insert_rowid() as u64
}

#[test]
fn a_corrupt_payload_is_skipped_logged_counted_and_kept() {
    let _watchdog = crate::watchdog("a_corrupt_payload_is_skipped_logged_counted_and_kept");
    capture_logs();
    let db = TempDb::new("corrupt");
    let bad = insert_row(&db, "test.square", "{not json", "queued");
    let good = insert_row(&db, "test.square", "4", "queued");
    let journal = db.journal();
    let recovery = journal.recover().unwrap();
    assert_eq!(recovery.jobs.len(), 1);
    assert_eq!(recovery.jobs[0].id().as_u64(), good);
    assert_eq!(recovery.skipped.len(), 1);
    let skipped = &recovery.skipped[0];
    assert_eq!(skipped.id.as_u64(), bad);
    assert!(
        matches!(skipped.reason, SkipReason::Undecodable(_)),
        "{skipped}"
    );
    assert_eq!(journal.stats().skipped_undecodable, 1);
    assert!(!logged(log::Level::Warn, &format!("recovery skipped job#{bad}")).is_empty());
    drop(recovery);
    drop(journal);
    assert_eq!(
        row_state(&db, bad),
        "queued",
        "kept for someone who can read it"
    );
    // Listed again at the next start.
    let next = db.journal();
    assert_eq!(next.recover().unwrap().skipped.len(), 1);
}

#[test]
fn a_blob_of_garbage_in_the_payload_column_is_skipped_too() {
    let _watchdog = crate::watchdog("a_blob_of_garbage_in_the_payload_column_is_skipped_too");
    let db = TempDb::new("garbage-blob");
    let id = insert_row(&db, "test.square", "1", "queued");
    db.raw()
        .execute(
            "UPDATE drainpool_jobs SET payload = ?1 WHERE id = ?2",
            rusqlite::params![vec![0xffu8, 0x00, 0x13, 0x37], id as i64],
        )
        .unwrap();
    let journal = db.journal();
    let recovery = journal.recover().unwrap();
    assert!(recovery.jobs.is_empty());
    assert_eq!(recovery.skipped.len(), 1);
    assert!(matches!(
        recovery.skipped[0].reason,
        SkipReason::Undecodable(_)
    ));
}

#[test]
fn a_kind_nobody_registered_is_skipped_and_listed() {
    let _watchdog = crate::watchdog("a_kind_nobody_registered_is_skipped_and_listed");
    capture_logs();
    let db = TempDb::new("unknown-kind");
    let id = insert_row(&db, "retired.job", "{}", "started");
    let journal = db.journal();
    let recovery = journal.recover().unwrap();
    assert!(recovery.jobs.is_empty());
    let skipped = &recovery.skipped[0];
    assert_eq!(
        (
            skipped.id.as_u64(),
            skipped.kind.as_deref(),
            &skipped.reason
        ),
        (id, Some("retired.job"), &SkipReason::UnknownKind)
    );
    assert!(skipped.to_string().contains("no registered job type"));
    assert_eq!(journal.stats().skipped_unknown_kind, 1);
    assert!(!logged(log::Level::Warn, "retired.job").is_empty());
    journal.flush().unwrap();
    assert_eq!(journal.counts().unwrap().get(JobState::Queued), 1, "kept");
}

#[test]
fn a_row_in_a_state_nobody_knows_is_listed_as_damaged() {
    let _watchdog = crate::watchdog("a_row_in_a_state_nobody_knows_is_listed_as_damaged");
    let db = TempDb::new("bad-state");
    let id = insert_row(&db, "test.square", "3", "half-eaten");
    let journal = db.journal();
    let recovery = journal.recover().unwrap();
    assert!(recovery.jobs.is_empty());
    assert!(
        matches!(&recovery.skipped[0].reason, SkipReason::BadRow(why) if why.contains("half-eaten"))
    );
    assert_eq!(row_state(&db, id), "half-eaten", "left as it was");
}

#[test]
fn two_types_with_one_kind_are_refused() {
    let _watchdog = crate::watchdog("two_types_with_one_kind_are_refused");
    #[derive(Debug, Serialize, Deserialize)]
    struct Impostor;
    impl Job for Impostor {
        type Output = ();
        fn run(self) {}
    }
    impl DurableJob for Impostor {
        const KIND: &'static str = "test.square";
    }
    let db = TempDb::new("kind-conflict");
    let journal = db.journal();
    assert!(matches!(
        journal.register::<Impostor>(),
        Err(JournalError::KindConflict {
            kind: "test.square"
        })
    ));
    let pool = TestPool::new(1);
    assert!(journal.submit(&pool, Impostor).is_err());
}

#[test]
fn a_job_that_does_not_serialise_is_handed_back() {
    let _watchdog = crate::watchdog("a_job_that_does_not_serialise_is_handed_back");
    #[derive(Debug, PartialEq, Deserialize)]
    struct Unserialisable(u8);
    impl Serialize for Unserialisable {
        fn serialize<S: Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
            Err(serde::ser::Error::custom("not today"))
        }
    }
    impl Job for Unserialisable {
        type Output = ();
        fn run(self) {}
    }
    impl DurableJob for Unserialisable {
        const KIND: &'static str = "test.unserialisable";
    }
    let db = TempDb::new("encode");
    let journal = db.journal();
    let pool = TestPool::new(1);
    let rejected = journal.submit(&pool, Unserialisable(1)).unwrap_err();
    assert!(rejected.to_string().contains("not today"), "{rejected}");
    assert_eq!(rejected.into_inner(), Unserialisable(1));
}

#[test]
fn a_file_that_is_not_a_database_is_a_clear_error() {
    let _watchdog = crate::watchdog("a_file_that_is_not_a_database_is_a_clear_error");
    let db = TempDb::new("not-a-db");
    std::fs::write(db.path(), vec![0x5a; 8192]).unwrap();
    let err = SqliteJournal::open(db.path()).unwrap_err();
    assert!(matches!(err, JournalError::Corrupt(_)), "{err}");
}

#[test]
fn errors_cross_threads() {
    let _watchdog = crate::watchdog("errors_cross_threads");
    fn error<E: std::error::Error + Send + Sync + 'static>() {}
    error::<JournalError>();
    error::<drainpool::journal::DurableRejected<Square>>();
}
