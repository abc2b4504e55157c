//! The seam between the durable-job machinery and the store that keeps the
//! rows: the [`Journal`] trait and the plain data it speaks in.

use std::fmt;
use std::time::SystemTime;

use crate::journal::error::JournalError;

/// A journaled job's identity: its row in the journal, stable across
/// restarts (unlike a [`TaskId`](crate::TaskId), which is per process).
///
/// It displays as `job#` and the number.
///
/// # Examples
///
/// ```
/// use drainpool::journal::JobId;
///
/// let id = JobId::from_u64(7);
/// assert_eq!(id.as_u64(), 7);
/// assert_eq!(id.to_string(), "job#7");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct JobId(u64);

impl JobId {
    /// The id with this number (a store's row id).
    pub fn from_u64(raw: u64) -> JobId {
        JobId(raw)
    }

    /// The id as a number.
    pub fn as_u64(self) -> u64 {
        self.0
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "job#{}", self.0)
    }
}

/// Where a journaled job is in its life, as its row records it.
///
/// ```text
///  queued ──▶ started ──▶ completed
///    │  ▲        │   └──▶ failed      (its run panicked)
///    │  └────────┘ recovery: its owner's lease expired; or a run that
///    │             stopped early and is to run again
///    └──────────────────▶ cancelled   (cancelled on purpose, never ran)
/// ```
///
/// `Queued` and `Started` rows are *unfinished*: they belong to the
/// process named as their owner while its lease lasts, and to whoever
/// [recovers](crate::journal::JobJournal::recover) them once it has
/// expired.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum JobState {
    /// Recorded, not started (or given back to the queue by recovery).
    Queued,
    /// A process began running it (its row names the process: the owner).
    Started,
    /// Ran to its end.
    Completed,
    /// Its run panicked.
    Failed,
    /// Cancelled on purpose before it started; it will never run.
    Cancelled,
}

impl JobState {
    /// Every state, in lifecycle order.
    pub const ALL: [JobState; 5] = [
        JobState::Queued,
        JobState::Started,
        JobState::Completed,
        JobState::Failed,
        JobState::Cancelled,
    ];

    /// The name a store writes: `queued`, `started`, `completed`, `failed`,
    /// `cancelled`.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Started => "started",
            JobState::Completed => "completed",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
        }
    }

    /// The state named `name` (as [`as_str`](Self::as_str) writes it).
    pub fn parse(name: &str) -> Option<JobState> {
        JobState::ALL
            .into_iter()
            .find(|state| state.as_str() == name)
    }

    /// True for the end states: completed, failed, cancelled.
    pub fn is_final(self) -> bool {
        !matches!(self, JobState::Queued | JobState::Started)
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A job to record as queued: what [`Journal::enqueue`] takes.
#[derive(Clone, Debug)]
pub struct NewJob {
    /// Its kind: [`DurableJob::KIND`](crate::journal::DurableJob::KIND).
    pub kind: &'static str,
    /// The job, serialised (JSON, for the jobs this crate submits).
    pub payload: Vec<u8>,
    /// [`DurableJob::idempotency_key`](crate::journal::DurableJob::idempotency_key).
    pub idempotency_key: Option<String>,
}

/// A state change of a job already recorded: what [`Journal::record`]
/// takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Mark {
    /// The job starts running in this process (the store's owner): the
    /// row becomes `started`, owned by it, and its attempt count grows by
    /// one. Only a `queued` row changes.
    Started,
    /// The run stopped early and the job is to run again
    /// ([`DurableJob::is_complete`](crate::journal::DurableJob::is_complete)
    /// said so): a `started` row goes back to `queued`, still owned by
    /// this process, and the next start recovers it.
    Requeued,
    /// The job reached an end: the row becomes `state` (which
    /// [`is_final`](JobState::is_final)). Only an unfinished row changes,
    /// so a late or repeated mark never undoes an end.
    Ended(JobState),
}

/// An unfinished job a store handed over to this process in
/// [`Journal::claim_abandoned`]: its row, read back.
#[derive(Clone, Debug)]
pub struct StoredJob {
    /// Its id.
    pub id: JobId,
    /// Its kind, as recorded.
    pub kind: String,
    /// The serialised job, as recorded.
    pub payload: Vec<u8>,
    /// Its idempotency key, if it had one.
    pub idempotency_key: Option<String>,
    /// The state it was left in: `Queued` or `Started`.
    pub left_in: JobState,
    /// The owner it was taken from (gone: its lease had expired).
    pub previous_owner: Option<String>,
    /// How many times a run of it started (0: never).
    pub attempts: u32,
}

/// A row a store could not read back whole (a missing column, a state it
/// does not know): claimed like the others, so that it is reported rather
/// than silently left behind, but never run.
#[derive(Clone, Debug)]
pub struct BadRow {
    /// Its id.
    pub id: JobId,
    /// Its kind, if that much could be read.
    pub kind: Option<String>,
    /// What is wrong with it.
    pub reason: String,
}

/// What [`Journal::claim_abandoned`] found.
#[derive(Clone, Debug, Default)]
pub struct Claim {
    /// The unfinished jobs whose owner is gone, now owned by this process
    /// and `queued`, in id order; and the rows among them that could not
    /// be read.
    pub jobs: Vec<Result<StoredJob, BadRow>>,
    /// Unfinished jobs still held by another live owner (its lease has not
    /// expired): not claimed.
    pub held_elsewhere: usize,
    /// When the first of those leases runs out, if any: the moment to look
    /// again (after a crash, the dead process's lease is still running).
    pub next_expiry: Option<SystemTime>,
}

/// How many journaled jobs are in each state: [`Journal::counts`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct JobCounts {
    /// Rows `queued`.
    pub queued: u64,
    /// Rows `started`.
    pub started: u64,
    /// Rows `completed`.
    pub completed: u64,
    /// Rows `failed`.
    pub failed: u64,
    /// Rows `cancelled`.
    pub cancelled: u64,
}

impl JobCounts {
    /// Every row.
    pub fn total(&self) -> u64 {
        self.queued + self.started + self.completed + self.failed + self.cancelled
    }

    /// The count for `state`.
    pub fn get(&self, state: JobState) -> u64 {
        match state {
            JobState::Queued => self.queued,
            JobState::Started => self.started,
            JobState::Completed => self.completed,
            JobState::Failed => self.failed,
            JobState::Cancelled => self.cancelled,
        }
    }

    pub(crate) fn add(&mut self, state: JobState, n: u64) {
        match state {
            JobState::Queued => self.queued += n,
            JobState::Started => self.started += n,
            JobState::Completed => self.completed += n,
            JobState::Failed => self.failed += n,
            JobState::Cancelled => self.cancelled += n,
        }
    }
}

/// A store of journaled jobs: the seam between
/// [`JobJournal`](crate::journal::JobJournal) and where its rows live.
/// [`SqliteJournal`](crate::journal::SqliteJournal) is the one this crate
/// ships; another (a server database, a test double that fails on
/// purpose) implements this trait.
///
/// A store belongs to one *owner*, the process (or the store instance)
/// that runs the jobs it enqueues: every unfinished row names its owner,
/// and the owner keeps a lease on its rows alive (a heartbeat) for as long
/// as it lives. A row whose owner's lease expired is abandoned, and
/// [`claim_abandoned`](Self::claim_abandoned) hands it to whoever asks.
///
/// # Contract
///
/// - [`enqueue`](Self::enqueue) and [`enqueue_all`](Self::enqueue_all)
///   return only once the rows are durable (at the store's durability
///   level); an `Err` means nothing was recorded.
/// - [`record`](Self::record) may return before the change is durable (the
///   SQLite journal queues it for its next group commit); a change that
///   fails later must be logged and counted in
///   [`failed_writes`](Self::failed_writes), never dropped silently, and a
///   lost change may only leave a row *behind* its true state (so that the
///   job runs again: at least once, never lost). Changes of one job are
///   applied in the order they were recorded.
/// - [`flush`](Self::flush) returns once every change recorded before it
///   is durable, or says why not.
/// - Every method is called from worker threads as well as the program's:
///   none may panic on a store failure.
pub trait Journal: Send + Sync + fmt::Debug + 'static {
    /// This store's owner id: who the rows it enqueues and starts belong
    /// to.
    fn owner(&self) -> &str;

    /// Records `job` as `queued`, owned by this store's owner; returns its
    /// new id once the row is durable.
    ///
    /// # Errors
    ///
    /// Why nothing was recorded.
    fn enqueue(&self, job: NewJob) -> Result<JobId, JournalError> {
        let ids = self.enqueue_all(vec![job])?;
        ids.into_iter().next().ok_or_else(|| {
            JournalError::store(std::io::Error::other(
                "the store recorded a job but returned no id for it",
            ))
        })
    }
    /// Records every job of `jobs` as `queued`, all or none, in one
    /// transaction; returns their ids in the same order.
    ///
    /// # Errors
    ///
    /// Why nothing was recorded.
    fn enqueue_all(&self, jobs: Vec<NewJob>) -> Result<Vec<JobId>, JournalError>;

    /// Records a state change of job `id` (see the contract above: it may
    /// become durable later).
    ///
    /// # Errors
    ///
    /// Why the change could not even be accepted (the store is closed).
    fn record(&self, id: JobId, mark: Mark) -> Result<(), JournalError>;

    /// Waits until every change recorded before the call is durable.
    ///
    /// # Errors
    ///
    /// Why some could not be written (they stay counted in
    /// [`failed_writes`](Self::failed_writes)).
    fn flush(&self) -> Result<(), JournalError>;

    /// Takes over every unfinished row whose owner's lease expired (or
    /// which has no owner): each becomes `queued` and owned by this
    /// store's owner, in one transaction, and is returned as it was.
    ///
    /// # Errors
    ///
    /// Why the rows could not be claimed (nothing was).
    fn claim_abandoned(&self) -> Result<Claim, JournalError>;

    /// How many rows are in each state.
    ///
    /// # Errors
    ///
    /// Why they could not be counted.
    fn counts(&self) -> Result<JobCounts, JournalError>;

    /// How many recorded changes failed to be written after
    /// [`record`](Self::record) had accepted them (each was logged).
    fn failed_writes(&self) -> u64;

    /// How many transactions the store committed, for statistics: jobs and
    /// marks per commit show how much group commit shares. Default: 0, for
    /// a store that does not count them.
    fn commits(&self) -> u64 {
        0
    }
}
