//! What recovery hands the program: [`Recovered`] jobs to inspect and
//! resubmit or cancel, [`SkippedJob`]s it could not decode, and the
//! summaries [`Recovery`] and [`RecoveryReport`].

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::TaskId;
use crate::journal::durable::{Core, DurableJob, ErasedJob};
use crate::journal::error::{DurableRejectReason, DurableRejected, JournalError};
use crate::journal::run::Durable;
use crate::journal::store::{JobId, JobState, StoredJob};
use crate::journal::target::JobTarget;

/// A job a previous run left unfinished, claimed by this process and
/// decoded: [`JobJournal::recover`](crate::journal::JobJournal::recover)
/// returns them, in id order.
///
/// Its row is `queued` and owned by this process now. Look at it, then:
///
/// - [`resubmit`](Self::resubmit) it to a pool (untyped: its output is
///   dropped), or [`into_job`](Self::into_job) and
///   [`ThreadPool::submit_job`](crate::ThreadPool::submit_job) for a typed [`TaskHandle`](crate::TaskHandle);
/// - [`cancel`](Self::cancel) it: its row becomes `cancelled` and it never
///   comes back;
/// - or drop it: the row stays `queued`, and the next start of the program
///   recovers it again (as `shutdown_now` leaves never-started jobs).
pub struct Recovered {
    stored: Box<StoredJob>,
    job: Box<dyn ErasedJob>,
    core: Arc<Core>,
}

impl Recovered {
    pub(crate) fn new(mut stored: StoredJob, job: Box<dyn ErasedJob>, core: Arc<Core>) -> Self {
        stored.payload = Vec::new(); // decoded: the bytes are not needed
        Recovered {
            stored: Box::new(stored),
            job,
            core,
        }
    }

    /// Its id in the journal.
    pub fn id(&self) -> JobId {
        self.stored.id
    }

    /// Its kind.
    pub fn kind(&self) -> &str {
        &self.stored.kind
    }

    /// The state it was left in: `Queued` (it never started) or `Started`
    /// (it was running when its process died: its effect may be half done,
    /// or done with no record of it).
    pub fn left_in(&self) -> JobState {
        self.stored.left_in
    }

    /// How many runs of it started before (0: none).
    pub fn attempts(&self) -> u32 {
        self.stored.attempts
    }

    /// The owner it was taken from (a process that is gone).
    pub fn previous_owner(&self) -> Option<&str> {
        self.stored.previous_owner.as_deref()
    }

    /// Its [`DurableJob::idempotency_key`], as recorded.
    pub fn idempotency_key(&self) -> Option<&str> {
        self.stored.idempotency_key.as_deref()
    }

    /// The job, if it is a `J`.
    pub fn job<J: DurableJob>(&self) -> Option<&J> {
        self.job.as_any().downcast_ref()
    }

    /// Submits it to `pool` under its id; its next run is attempt
    /// `attempts() + 1`. Returns the pool task's id.
    ///
    /// # Errors
    ///
    /// The pool refused it (it is shutting down): it comes back, and its
    /// row stays `queued`.
    pub fn resubmit(self, pool: &impl JobTarget) -> Result<TaskId, DurableRejected<Recovered>> {
        let Recovered { stored, job, core } = self;
        let attempt = stored.attempts.saturating_add(1);
        match job.submit(&core, stored.id, attempt, pool.target()) {
            Ok(task) => Ok(task),
            Err((job, reason)) => {
                let id = stored.id;
                Err(DurableRejected::new(
                    Recovered { stored, job, core },
                    DurableRejectReason::Pool(reason),
                    Some(id),
                ))
            }
        }
    }

    /// The job as a [`Durable`] `J`, to submit with
    /// [`ThreadPool::submit_job`](crate::ThreadPool::submit_job) for a typed handle; gives itself back if
    /// the job is not a `J`.
    ///
    /// # Errors
    ///
    /// `self`, unchanged, when the job is of another type.
    pub fn into_job<J: DurableJob>(self) -> Result<Durable<J>, Recovered> {
        if self.job::<J>().is_none() {
            return Err(self);
        }
        let Recovered { stored, job, core } = self;
        let job = *job
            .into_any()
            .downcast::<J>()
            .unwrap_or_else(|_| unreachable!("the type was checked above"));
        Ok(Durable::from_parts(
            job,
            stored.id,
            stored.attempts.saturating_add(1),
            core,
        ))
    }

    /// Records it `cancelled`, durably: it never runs and never comes back.
    ///
    /// # Errors
    ///
    /// Why it could not be recorded (it stays `queued`).
    pub fn cancel(self) -> Result<(), JournalError> {
        self.core.cancel(self.stored.id)
    }
}

impl fmt::Debug for Recovered {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Recovered")
            .field("id", &self.stored.id)
            .field("kind", &self.stored.kind)
            .field("left_in", &self.stored.left_in)
            .field("attempts", &self.stored.attempts)
            .field("previous_owner", &self.stored.previous_owner)
            .field("idempotency_key", &self.stored.idempotency_key)
            .finish_non_exhaustive()
    }
}

/// Why recovery skipped a row.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SkipReason {
    /// No registered type has its kind (the program no longer knows it, or
    /// forgot to [`register`](crate::journal::JobJournal::register) it).
    UnknownKind,
    /// Its payload does not decode as its kind's type (what serde said).
    Undecodable(String),
    /// The row itself is damaged (what is wrong with it).
    BadRow(String),
}

/// A row recovery could not turn into a job. It is not lost: it stays in
/// the journal (queued, or as it was if the row is damaged), is logged at
/// `warn` level, counted in
/// [`JournalStats`](crate::journal::JournalStats), and listed again at
/// every recovery until a program that knows it runs or cancels it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SkippedJob {
    /// Its id.
    pub id: JobId,
    /// Its kind, if the row had a readable one.
    pub kind: Option<String>,
    /// Why it was skipped.
    pub reason: SkipReason,
}

impl fmt::Display for SkippedJob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.id)?;
        if let Some(kind) = &self.kind {
            write!(f, " (kind {kind:?})")?;
        }
        match &self.reason {
            SkipReason::UnknownKind => f.write_str(": no registered job type has this kind"),
            SkipReason::Undecodable(e) => write!(f, ": its payload does not decode: {e}"),
            SkipReason::BadRow(e) => write!(f, ": damaged row: {e}"),
        }
    }
}

/// What [`JobJournal::recover`](crate::journal::JobJournal::recover) found.
#[derive(Debug)]
#[non_exhaustive]
pub struct Recovery {
    /// The jobs taken over, decoded, in id order.
    pub jobs: Vec<Recovered>,
    /// The rows that could not be decoded.
    pub skipped: Vec<SkippedJob>,
    /// Unfinished jobs still held by another live owner (not taken).
    pub held_elsewhere: usize,
    /// When to look again for those: the time left on the first of their
    /// leases. `None` when no other owner holds any.
    pub retry_after: Option<Duration>,
}

/// What [`JobJournal::recover_and_resubmit`](crate::journal::JobJournal::recover_and_resubmit) did.
#[derive(Debug)]
#[non_exhaustive]
pub struct RecoveryReport {
    /// Jobs resubmitted to the pool.
    pub resubmitted: usize,
    /// Jobs the pool refused (it was shutting down): still queued in the
    /// journal.
    pub left_queued: usize,
    /// The rows that could not be decoded.
    pub skipped: Vec<SkippedJob>,
    /// As [`Recovery::held_elsewhere`].
    pub held_elsewhere: usize,
    /// As [`Recovery::retry_after`].
    pub retry_after: Option<Duration>,
}
