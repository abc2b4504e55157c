//! Durable jobs (feature `journal`): a job journal that survives a crash,
//! with SQLite as the default store.
//!
//! A pool's queue lives in memory: a `kill -9`, an OOM kill or a power cut
//! loses every queued job and leaves the running ones half done with no
//! record. A [`JobJournal`] writes each job to a database before the pool
//! gets it, records every run's start and end, and on the next start hands
//! back whatever was left unfinished.
//!
//! ```
//! use drainpool::{Job, ThreadPool};
//! use drainpool::journal::{DurableJob, JobJournal};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize)]
//! struct Thumbnail {
//!     image: String,
//! }
//!
//! impl Job for Thumbnail {
//!     type Output = ();
//!     fn run(self) {
//!         // make the thumbnail of self.image
//!     }
//! }
//!
//! impl DurableJob for Thumbnail {
//!     const KIND: &'static str = "images.thumbnail"; // stable across versions
//! }
//!
//! # let dir = std::env::temp_dir().join(format!("drainpool-doc-mod-{}", std::process::id()));
//! # std::fs::create_dir_all(&dir)?;
//! # let path = dir.join("jobs.db");
//! let pool = ThreadPool::new(4)?;
//! let journal = JobJournal::open(&path)?;
//! journal.register::<Thumbnail>()?;
//! // First, whatever a crashed run left behind:
//! let report = journal.recover_and_resubmit(&pool)?;
//! assert!(report.skipped.is_empty());
//! // Then new work; `submit` returns once the job is on disk.
//! journal.submit(&pool, Thumbnail { image: "cat.png".into() })?;
//!
//! pool.shutdown(); // drains: every job runs and records its end
//! # assert!(pool.await_termination(std::time::Duration::from_secs(10)));
//! # drop(journal);
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
//! ```
//!
//! # A job's life in the journal
//!
//! ```text
//!  submit ──▶ queued ──▶ started ──▶ completed
//!               │  ▲      (owner,  └─▶ failed       its run panicked
//!               │  │       lease)
//!               │  └── recovery, once the owner's lease expired
//!               └──────────────────▶ cancelled      DurableHandle::cancel,
//!                                                   Recovered::cancel, JobJournal::cancel
//! ```
//!
//! - [`JobJournal::submit`] records the job `queued` and returns only once
//!   the row is durable, then hands it to the pool wrapped in a
//!   [`Durable`]. Concurrent submits share one transaction and one fsync
//!   (group commit, see [`SqliteJournal`]); [`JobJournal::submit_all`]
//!   records a whole batch in one transaction. The jobs go to a pool or to
//!   a [`TaskGroup`](crate::TaskGroup) of one (see [`JobTarget`]).
//! - The worker records it `started` (this process as *owner*, the attempt
//!   count one higher), runs it, and records `completed`, or `failed` if it
//!   panics (a drop guard does that while the panic unwinds on to the
//!   pool, which handles it as it handles any panic).
//! - Start and end marks do not make the worker wait for the disk: they go
//!   to the journal's next group commit, usually within milliseconds. A
//!   mark lost in a crash leaves the row one step *behind*, so the job runs
//!   again: never lost, at least once.
//!
//! # Shutdown
//!
//! | what the program does | what the journal records |
//! |---|---|
//! | [`ThreadPool::shutdown`](crate::ThreadPool::shutdown) (a drain) | every accepted job runs: each row ends `completed` or `failed` |
//! | [`ThreadPool::shutdown_now`](crate::ThreadPool::shutdown_now) | running jobs see their stop token and record their end; jobs that never started stay `queued`, whether the program drops the handed-back [`PendingTask`](crate::PendingTask)s or keeps them, and the next start recovers them |
//! | a running job that stops early at its stop token and says so ([`DurableJob::is_complete`] returns false) | `queued` again: the next start recovers it |
//! | [`DurableHandle::cancel`] on a queued job | `cancelled`, durably; it never comes back |
//! | [`TaskGroup::cancel`](crate::TaskGroup::cancel), or a plain [`TaskHandle::cancel`](crate::TaskHandle::cancel) | nothing: the row stays `queued` and the next start recovers it (the pool cannot tell the journal; use [`JobJournal::cancel`] with the job's id to make it final, as [`JobTarget`] shows for a group) |
//! | a crash, `kill -9`, `abort`, or `std::process::exit` (which runs no destructor) | nothing more: rows stay `queued` or `started` (or one step behind: marks not yet committed are lost, so the job reruns), and the process's lease runs out; call [`JobJournal::flush`] before a deliberate `exit` |
//!
//! A job handed back by `shutdown_now` can be taken out with
//! [`PendingTask::into_job::<Durable<J>>`](crate::PendingTask::into_job):
//! it still has its journal id, and [`ThreadPool::submit_job`](crate::ThreadPool::submit_job)
//! runs it under that id.
//!
//! # Recovery: owners and leases
//!
//! Each open journal is an *owner*: an id made of the pid and 64 random
//! bits, with a row in `drainpool_owners` holding a lease, which the
//! journal's writer renews every third of the lease
//! ([`SqliteJournalBuilder::lease`], default 30 s). Unfinished rows name
//! their owner. A closed journal releases its lease; a crashed process's
//! lease simply runs out.
//!
//! [`JobJournal::recover`] takes over every unfinished row whose owner's
//! lease has run out, in one transaction (two processes recovering at once
//! never take the same row), makes it `queued` and owned by this process,
//! and decodes it by its kind into a [`Recovered`], which the program may
//! inspect ([`Recovered::left_in`], [`Recovered::attempts`], the job itself)
//! before it resubmits, cancels or leaves it. Rows held by a live owner are
//! counted in [`Recovery::held_elsewhere`], with the time to wait in
//! [`Recovery::retry_after`]: right after a `kill -9`, the dead process's
//! lease has not run out yet.
//!
//! A job left `started` may have done its effect, or half of it. Jobs run
//! **at least once**; a job whose effect must not happen twice makes its
//! effect idempotent, helped by [`DurableJob::idempotency_key`] and
//! [`current_job`] (its attempt number). A lease that runs out while its
//! process still lives (a writer stalled longer than the lease on a hung
//! disk) lets another process rerun its jobs: choose a lease well above
//! any stall you expect.
//!
//! # Errors
//!
//! Nothing is lost silently and no worker panics because of the journal:
//!
//! - a submit the journal cannot record (a full disk, a database locked
//!   past the busy timeout, a job that does not serialise) fails with a
//!   [`JournalError`] inside a [`DurableRejected`] that hands the job back;
//! - a start or end mark that cannot be written is logged at `error`
//!   level, counted in [`JournalStats::failed_writes`], and retried with
//!   the next commit; if it never succeeds the row stays behind and the
//!   job reruns at recovery;
//! - a row recovery cannot decode (a kind no type was registered for, a
//!   payload that no longer parses, a damaged row) is logged at `warn`
//!   level, counted, listed in [`Recovery::skipped`], and left in the
//!   journal.
//!
//! # Other stores
//!
//! [`JobJournal::new`] takes any [`Journal`]: the trait is the seam for a
//! server database, or a test double that fails on purpose.
//!
//! # Threads and locks
//!
//! [`SqliteJournal`] runs one thread, `drainpool-journal`, that owns the
//! database connection; callers meet it only through a channel. The one
//! internal lock, the registry of kinds, is never held while another lock
//! is or while user code (a job's `Deserialize`) runs.

mod durable;
mod error;
mod recover;
mod run;
mod sqlite;
mod store;
mod target;

pub use durable::{DurableJob, JobJournal, JournalStats};
pub use error::{DurableRejectReason, DurableRejected, JournalError};
pub use recover::{Recovered, Recovery, RecoveryReport, SkipReason, SkippedJob};
pub use run::{Durable, DurableHandle, JobRun, current_job};
pub use sqlite::{Durability, SqliteJournal, SqliteJournalBuilder};
pub use store::{BadRow, Claim, JobCounts, JobId, JobState, Journal, Mark, NewJob, StoredJob};
pub use target::{JobTarget, Target};
