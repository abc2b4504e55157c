//! The journal's errors: [`JournalError`], and [`DurableRejected`], which
//! hands a job back.
//!
//! They live beside the feature rather than in `error.rs`: without the
//! feature `journal` they do not exist, and none of the pool's own errors
//! refers to them.

use std::error::Error;
use std::fmt;
use std::sync::Arc;

use crate::RejectReason;
use crate::journal::store::JobId;

/// Why the journal could not do what was asked. Nothing is ever half done:
/// a failed [`submit`](crate::journal::JobJournal::submit) hands its job
/// back inside [`DurableRejected`], a failed
/// [`recover`](crate::journal::JobJournal::recover) claimed nothing.
///
/// It is `Clone` (a group commit that fails gives the same error to every
/// submit in the batch), and an `Error + Send + Sync + 'static`.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum JournalError {
    /// The store is full: the disk, or a size limit such as SQLite's
    /// `max_page_count`. Free space and try again.
    Full,
    /// The database stayed locked by another connection for longer than
    /// the busy timeout
    /// ([`SqliteJournalBuilder::busy_timeout`](crate::journal::SqliteJournalBuilder::busy_timeout)).
    /// Transient: try again.
    Busy,
    /// The database file is damaged or is not a database.
    Corrupt(String),
    /// The job could not be serialised (its `Serialize` impl failed).
    Encode {
        /// Its [`DurableJob::KIND`](crate::journal::DurableJob::KIND).
        kind: &'static str,
        /// What serde said.
        message: String,
    },
    /// Two different job types were registered with the same
    /// [`DurableJob::KIND`](crate::journal::DurableJob::KIND).
    KindConflict {
        /// The kind both claim.
        kind: &'static str,
    },
    /// The store's writer has stopped (the journal was closed, or its
    /// thread could not be started).
    Closed,
    /// Opening the store failed or the store failed otherwise; the source
    /// says how.
    Store(Arc<dyn Error + Send + Sync + 'static>),
}

impl JournalError {
    /// A store failure with `source` as its cause.
    pub fn store(source: impl Error + Send + Sync + 'static) -> JournalError {
        JournalError::Store(Arc::new(source))
    }

    /// True for the errors that may pass if tried again (`Busy`, `Full`).
    pub fn is_transient(&self) -> bool {
        matches!(self, JournalError::Busy | JournalError::Full)
    }
}

impl fmt::Display for JournalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JournalError::Full => f.write_str("journal full: the disk or the database size limit"),
            JournalError::Busy => {
                f.write_str("journal busy: the database stayed locked past the busy timeout")
            }
            JournalError::Corrupt(what) => write!(f, "journal database corrupt: {what}"),
            JournalError::Encode { kind, message } => {
                write!(f, "job of kind {kind:?} could not be serialised: {message}")
            }
            JournalError::KindConflict { kind } => {
                write!(f, "two job types registered with the same kind {kind:?}")
            }
            JournalError::Closed => f.write_str("journal closed: its writer has stopped"),
            JournalError::Store(source) => write!(f, "journal store failed: {source}"),
        }
    }
}

impl Error for JournalError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            JournalError::Store(source) => Some(&**source),
            _ => None,
        }
    }
}

/// Why a durable submit was refused.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum DurableRejectReason {
    /// The journal could not record the job: nothing was recorded.
    Journal(JournalError),
    /// The journal recorded the job but the pool refused it (it was
    /// shutting down, or a bounded queue was full); the row was marked
    /// `cancelled` ([`DurableRejected::job_id`] names it).
    Pool(RejectReason),
}

/// A job [`JobJournal::submit`](crate::journal::JobJournal::submit) did
/// not accept, handed back whole: nothing is lost.
///
/// It is an `Error + Send + Sync + 'static` when the job is `Send` (every
/// job is), like [`Rejected`](crate::Rejected): the job sits behind a
/// mutex that `Debug` never locks.
pub struct DurableRejected<J> {
    job: parking_lot::Mutex<J>,
    reason: DurableRejectReason,
    job_id: Option<JobId>,
}

impl<J> DurableRejected<J> {
    pub(crate) fn new(job: J, reason: DurableRejectReason, job_id: Option<JobId>) -> Self {
        DurableRejected {
            job: parking_lot::Mutex::new(job),
            reason,
            job_id,
        }
    }

    /// Why it was refused.
    pub fn reason(&self) -> &DurableRejectReason {
        &self.reason
    }

    /// The id the journal gave the job before the pool refused it (its row
    /// is `cancelled`); `None` when the journal recorded nothing.
    pub fn job_id(&self) -> Option<JobId> {
        self.job_id
    }

    /// The job, given back.
    pub fn into_inner(self) -> J {
        self.job.into_inner()
    }
}

impl<J> fmt::Debug for DurableRejected<J> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DurableRejected")
            .field("reason", &self.reason)
            .field("job_id", &self.job_id)
            .finish_non_exhaustive()
    }
}

impl<J> fmt::Display for DurableRejected<J> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.reason {
            DurableRejectReason::Journal(e) => write!(f, "durable submit refused: {e}"),
            DurableRejectReason::Pool(reason) => {
                write!(f, "durable submit refused by the pool ({reason:?})")
            }
        }
    }
}

impl<J: Send> Error for DurableRejected<J> {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match &self.reason {
            DurableRejectReason::Journal(e) => Some(e),
            DurableRejectReason::Pool(_) => None,
        }
    }
}
