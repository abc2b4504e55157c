//! The durable face: [`DurableJob`], and the [`JobJournal`] handle that
//! registers kinds, submits and recovers (the wrapper a worker runs is in
//! `run.rs`).
//!
//! # Lock order
//!
//! One lock: the registry of kinds (`Core::kinds`, a `parking_lot`
//! `RwLock`). It is held only to look a kind up or insert one, never while
//! any other lock is held and never while user code runs (a decoder, which
//! runs the job type's `Deserialize`, is copied out first and called after
//! the guard is gone).

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::RwLock;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::journal::error::{DurableRejectReason, DurableRejected, JournalError};
use crate::journal::recover::{Recovered, Recovery, RecoveryReport, SkipReason, SkippedJob};
use crate::journal::run::{Durable, DurableHandle};
use crate::journal::sqlite::SqliteJournal;
use crate::journal::store::{JobCounts, JobId, JobState, Journal, Mark, NewJob};
use crate::journal::target::{JobTarget, Target};
use crate::{Job, RejectReason, TaskId};

/// A [`Job`] that can be journaled: serialisable, with a stable kind name.
///
/// The kind is what the journal stores beside the serialised job, and
/// what recovery decodes it by: keep it stable across versions of the
/// program (a renamed type keeps its kind), and unique among the program's
/// job types. A journal row whose kind no registered type has is skipped
/// at recovery, logged and listed (see [`SkipReason::UnknownKind`]), never
/// dropped.
///
/// Jobs run **at least once**: a job that was running when its process
/// died runs again after recovery, and so does one whose completion could
/// not be recorded. An effect that must not happen twice checks for itself
/// (an `INSERT OR IGNORE`, a conditional update) with the help of
/// [`idempotency_key`](Self::idempotency_key) and [`current_job`](crate::journal::current_job).
///
/// # Examples
///
/// ```
/// use drainpool::Job;
/// use drainpool::journal::DurableJob;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Serialize, Deserialize)]
/// struct SendInvoice {
///     invoice: u64,
/// }
///
/// impl Job for SendInvoice {
///     type Output = ();
///     fn run(self) {
///         // mail it
///     }
/// }
///
/// impl DurableJob for SendInvoice {
///     const KIND: &'static str = "billing.send_invoice";
///     fn idempotency_key(&self) -> Option<String> {
///         Some(format!("invoice-{}", self.invoice))
///     }
/// }
/// ```
pub trait DurableJob: Job + Serialize + DeserializeOwned {
    /// The job's kind: a stable, unique name, stored with each job.
    const KIND: &'static str;

    /// A key that names the job's effect, stored with it and given back
    /// to every run through [`current_job`](crate::journal::current_job) and to recovery through
    /// [`Recovered::idempotency_key`]: a rerun looks it up to see whether
    /// the effect already happened. Default: none.
    fn idempotency_key(&self) -> Option<String> {
        None
    }

    /// Whether a run that returned `output` finished the job; default:
    /// always. Return false for a run that stopped early at a stop request
    /// ([`StopToken::current`](crate::StopToken::current) fired: a
    /// `shutdown_now`, a cancel) with work left: its row goes back to
    /// `queued` instead of `completed`, and the next start recovers it. (A
    /// run that panics is recorded `failed` either way.)
    fn is_complete(output: &Self::Output) -> bool {
        let _ = output;
        true
    }
}

/// A registered kind: the type and how to decode a payload into it.
#[derive(Clone, Copy)]
pub(crate) struct Kind {
    type_id: TypeId,
    decode: Decode,
}

/// Decodes a payload into a job of the registered type (serde's message
/// on failure).
type Decode = fn(&[u8]) -> Result<Box<dyn ErasedJob>, String>;

/// A decoded job of some registered type, for [`Recovered`].
pub(crate) trait ErasedJob: Send {
    /// Submits it as job `id`, run number `attempt`.
    fn submit(
        self: Box<Self>,
        core: &Arc<Core>,
        id: JobId,
        attempt: u32,
        target: Target<'_>,
    ) -> Result<TaskId, (Box<dyn ErasedJob>, RejectReason)>;
    fn as_any(&self) -> &dyn Any;
    fn into_any(self: Box<Self>) -> Box<dyn Any + Send>;
}

impl<J: DurableJob> ErasedJob for J {
    fn submit(
        self: Box<Self>,
        core: &Arc<Core>,
        id: JobId,
        attempt: u32,
        target: Target<'_>,
    ) -> Result<TaskId, (Box<dyn ErasedJob>, RejectReason)> {
        let durable = Durable::from_parts(*self, id, attempt, core.clone());
        match target.submit_job(durable) {
            Ok(handle) => Ok(handle.id()),
            Err(rejected) => {
                let reason = rejected.reason();
                Err((Box::new(rejected.into_inner().into_inner()), reason))
            }
        }
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn into_any(self: Box<Self>) -> Box<dyn Any + Send> {
        self
    }
}

fn decode<J: DurableJob>(payload: &[u8]) -> Result<Box<dyn ErasedJob>, String> {
    serde_json::from_slice::<J>(payload)
        .map(|job| Box::new(job) as Box<dyn ErasedJob>)
        .map_err(|e| e.to_string())
}

/// Counters behind [`JobJournal::stats`].
#[derive(Default)]
struct Counters {
    submitted: AtomicU64,
    rejected: AtomicU64,
    recovered: AtomicU64,
    skipped_unknown_kind: AtomicU64,
    skipped_undecodable: AtomicU64,
    failed_marks: AtomicU64,
}

/// Counts of what a [`JobJournal`] did since it was made: [`JobJournal::stats`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct JournalStats {
    /// Jobs recorded and handed to the pool.
    pub submitted: u64,
    /// Submits refused (by the journal or the pool); each job was handed
    /// back.
    pub rejected: u64,
    /// Jobs recovered (decoded and handed to the program by
    /// [`JobJournal::recover`]).
    pub recovered: u64,
    /// Rows recovery skipped because no registered type has their kind.
    pub skipped_unknown_kind: u64,
    /// Rows recovery skipped because they could not be read or decoded.
    pub skipped_undecodable: u64,
    /// Start and end marks that could not be written (each was logged; the
    /// row stays behind, so its job is rerun at recovery).
    pub failed_writes: u64,
    /// Transactions the store committed ([`Journal::commits`]): with
    /// group commit, far fewer than the jobs submitted and their marks.
    pub commits: u64,
}

/// What a [`JobJournal`] and every job it submitted share.
pub(crate) struct Core {
    store: Box<dyn Journal>,
    kinds: RwLock<HashMap<&'static str, Kind>>,
    stats: Counters,
}

impl Core {
    /// Records `mark` for `id`; never fails, never panics: a store that
    /// refuses is logged and counted.
    pub(crate) fn mark(&self, id: JobId, mark: Mark) {
        if let Err(e) = self.store.record(id, mark) {
            // ORDERING: a statistic; nothing is published through it.
            self.stats.failed_marks.fetch_add(1, Ordering::Relaxed);
            log_error!(
                "journal: could not record {id} as {mark:?}: {e}; the job will be rerun at recovery"
            );
        }
    }

    /// Records `id` cancelled and waits until it is durable.
    pub(crate) fn cancel(&self, id: JobId) -> Result<(), JournalError> {
        self.store.record(id, Mark::Ended(JobState::Cancelled))?;
        self.store.flush()
    }

    fn kind(&self, kind: &str) -> Option<Kind> {
        self.kinds.read().get(kind).copied()
    }

    fn register<J: DurableJob>(&self) -> Result<(), JournalError> {
        let wanted = TypeId::of::<J>();
        if let Some(kind) = self.kind(J::KIND) {
            return if kind.type_id == wanted {
                Ok(())
            } else {
                Err(JournalError::KindConflict { kind: J::KIND })
            };
        }
        let mut kinds = self.kinds.write();
        let kind = kinds.entry(J::KIND).or_insert(Kind {
            type_id: wanted,
            decode: decode::<J>,
        });
        if kind.type_id == wanted {
            Ok(())
        } else {
            Err(JournalError::KindConflict { kind: J::KIND })
        }
    }
}

/// A handle on a journal: submits jobs durably to a pool and recovers the
/// jobs a previous run left unfinished. Cheap to clone (an `Arc`).
///
/// See the [module docs](crate::journal) for the story; in short:
///
/// 1. [`JobJournal::open`] (or [`JobJournal::new`] over any [`Journal`]);
/// 2. [`register`](Self::register) every [`DurableJob`] type a previous
///    run may have left behind;
/// 3. [`recover`](Self::recover) (look first) or
///    [`recover_and_resubmit`](Self::recover_and_resubmit);
/// 4. [`submit`](Self::submit) new jobs: each returns once recorded.
///
/// # Drop
///
/// The store closes (for SQLite: the last marks are written and the lease
/// is released) when the last handle *and* the last job it submitted are
/// gone: a job still queued in a pool keeps the journal open until it has
/// run or been dropped.
///
/// # Examples
///
/// ```
/// use drainpool::{Job, ThreadPool};
/// use drainpool::journal::{DurableJob, JobJournal};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Serialize, Deserialize)]
/// struct Square(u64);
/// impl Job for Square {
///     type Output = u64;
///     fn run(self) -> u64 {
///         self.0 * self.0
///     }
/// }
/// impl DurableJob for Square {
///     const KIND: &'static str = "doc.square";
/// }
///
/// let dir = std::env::temp_dir().join(format!("drainpool-doc-journal-{}", std::process::id()));
/// std::fs::create_dir_all(&dir)?;
/// let pool = ThreadPool::new(2)?;
/// let journal = JobJournal::open(dir.join("jobs.db"))?;
/// journal.register::<Square>()?;
/// let report = journal.recover_and_resubmit(&pool)?; // what a crash left behind
/// assert_eq!(report.resubmitted, 0);
///
/// let handle = journal.submit(&pool, Square(7))?; // returns once recorded
/// assert_eq!(handle.join()?, 49);
/// journal.flush()?;
/// assert_eq!(journal.counts()?.completed, 1);
/// # drop((pool, journal));
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
/// ```
#[derive(Clone)]
pub struct JobJournal {
    core: Arc<Core>,
}

impl JobJournal {
    /// A journal over `store`.
    pub fn new(store: impl Journal) -> JobJournal {
        JobJournal {
            core: Arc::new(Core {
                store: Box::new(store),
                kinds: RwLock::new(HashMap::new()),
                stats: Counters::default(),
            }),
        }
    }

    /// A journal in the SQLite database at `path` (created if need be),
    /// with [`SqliteJournal`]'s default options; use
    /// [`SqliteJournal::builder`] and [`JobJournal::new`] for others.
    ///
    /// # Errors
    ///
    /// As [`SqliteJournalBuilder::open`](crate::journal::SqliteJournalBuilder::open).
    pub fn open(path: impl AsRef<std::path::Path>) -> Result<JobJournal, JournalError> {
        SqliteJournal::open(path).map(JobJournal::new)
    }

    /// The store.
    pub fn store(&self) -> &dyn Journal {
        &*self.core.store
    }

    /// Teaches the journal the job type `J`, so that recovery can decode
    /// rows of kind [`J::KIND`](DurableJob::KIND). [`submit`](Self::submit)
    /// registers its type itself; call this before
    /// [`recover`](Self::recover) for every type a previous run may have
    /// left behind. Registering a type twice is harmless.
    ///
    /// # Errors
    ///
    /// [`JournalError::KindConflict`] if another type already has this kind.
    pub fn register<J: DurableJob>(&self) -> Result<(), JournalError> {
        self.core.register::<J>()
    }

    /// Records `job` as queued, then submits it to `pool`; returns once the
    /// row is durable (concurrent submits share one commit). Its run
    /// records it started (with this process as owner), then completed, or
    /// failed if it panics.
    ///
    /// # Errors
    ///
    /// A [`DurableRejected`] holding `job`:
    /// [`DurableRejectReason::Journal`] if the journal could not record it
    /// (nothing recorded: a full disk, a locked database, a job that does
    /// not serialise); [`DurableRejectReason::Pool`] if the pool refused it
    /// after it was recorded (its row is then marked cancelled).
    ///
    /// # Examples
    ///
    /// See [`JobJournal`].
    pub fn submit<J: DurableJob>(
        &self,
        pool: &impl JobTarget,
        job: J,
    ) -> Result<DurableHandle<J::Output>, DurableRejected<J>> {
        self.submit_all(pool, std::iter::once(job))
            .map(|mut handles| handles.remove(0))
            .map_err(|rejected| {
                let (reason, job_id) = (rejected.reason().clone(), rejected.job_id());
                let job = rejected.into_inner().remove(0);
                DurableRejected::new(job, reason, job_id)
            })
    }

    /// Records every job of `jobs` as queued in one transaction (all or
    /// none), then submits them to `pool` in order; returns once the rows
    /// are durable.
    ///
    /// # Errors
    ///
    /// A [`DurableRejected`] holding the jobs not accepted: all of them if
    /// the journal could not record them; if the pool refused one midway
    /// (it began shutting down), that one and every one after it (their
    /// rows marked cancelled), while the ones before it were accepted and
    /// run (their handles are dropped: they run detached).
    pub fn submit_all<J: DurableJob>(
        &self,
        pool: &impl JobTarget,
        jobs: impl IntoIterator<Item = J>,
    ) -> Result<Vec<DurableHandle<J::Output>>, DurableRejected<Vec<J>>> {
        let jobs: Vec<J> = jobs.into_iter().collect();
        let refuse = |jobs: Vec<J>, reason| {
            // ORDERING: a statistic; nothing is published through it.
            self.core.stats.rejected.fetch_add(1, Ordering::Relaxed);
            Err(DurableRejected::new(jobs, reason, None))
        };
        let target = pool.target();
        if target.refuses_work() {
            return refuse(jobs, DurableRejectReason::Pool(RejectReason::Shutdown));
        }
        if let Err(e) = self.core.register::<J>() {
            return refuse(jobs, DurableRejectReason::Journal(e));
        }
        let mut rows = Vec::with_capacity(jobs.len());
        for job in &jobs {
            match serde_json::to_vec(job) {
                Ok(payload) => rows.push(NewJob {
                    kind: J::KIND,
                    payload,
                    idempotency_key: job.idempotency_key(),
                }),
                Err(e) => {
                    let e = JournalError::Encode {
                        kind: J::KIND,
                        message: e.to_string(),
                    };
                    return refuse(jobs, DurableRejectReason::Journal(e));
                }
            }
        }
        let ids = match self.core.store.enqueue_all(rows) {
            Ok(ids) => ids,
            Err(e) => return refuse(jobs, DurableRejectReason::Journal(e)),
        };
        let mut handles = Vec::with_capacity(jobs.len());
        let mut jobs = jobs.into_iter().zip(ids);
        while let Some((job, id)) = jobs.next() {
            let durable = Durable::from_parts(job, id, 1, self.core.clone());
            match target.submit_job(durable) {
                Ok(handle) => handles.push(DurableHandle::new(handle, id, self.core.clone())),
                Err(rejected) => {
                    let reason = rejected.reason();
                    let first = rejected.into_inner();
                    let mut back = vec![first.into_inner()];
                    let mut cancel = vec![id];
                    for (job, id) in jobs {
                        back.push(job);
                        cancel.push(id);
                    }
                    for &id in &cancel {
                        self.core.mark(id, Mark::Ended(JobState::Cancelled));
                    }
                    if let Err(e) = self.core.store.flush() {
                        log_error!(
                            "journal: the pool refused {} job(s) and their rows could not be \
                             marked cancelled ({e}): they will be recovered at the next start",
                            cancel.len()
                        );
                    }
                    // ORDERING: a statistic; nothing is published through it.
                    self.core.stats.rejected.fetch_add(1, Ordering::Relaxed);
                    self.core
                        .stats
                        .submitted
                        .fetch_add(handles.len() as u64, Ordering::Relaxed);
                    return Err(DurableRejected::new(
                        back,
                        DurableRejectReason::Pool(reason),
                        Some(cancel[0]),
                    ));
                }
            }
        }
        // ORDERING: a statistic; nothing is published through it.
        self.core
            .stats
            .submitted
            .fetch_add(handles.len() as u64, Ordering::Relaxed);
        Ok(handles)
    }

    /// Takes over the jobs a previous run left unfinished and decodes them,
    /// without running any: the jobs left queued, and the jobs left
    /// started by an owner whose lease expired (it died). Each comes back
    /// as a [`Recovered`] to inspect, then [resubmit](Recovered::resubmit),
    /// [cancel](Recovered::cancel), or drop (it stays queued and comes back
    /// at the next start).
    ///
    /// Rows that cannot be decoded (a kind nobody registered, a payload
    /// that no longer parses, a damaged row) are not lost: each is logged
    /// at `warn` level, counted in [`stats`](Self::stats), listed in
    /// [`Recovery::skipped`], and left in the journal for a later version
    /// of the program (or a person) to deal with.
    ///
    /// Jobs held by another live owner are not taken:
    /// [`Recovery::held_elsewhere`] counts them, and
    /// [`Recovery::retry_after`] says when the first of their leases runs
    /// out. Right after a crash, the dead process's lease is still running:
    /// call again after that delay.
    ///
    /// # Errors
    ///
    /// Why the journal could not be read; nothing was claimed.
    ///
    /// # Examples
    ///
    /// A run stops with jobs still queued; the next start looks at them
    /// before it decides, as a program does with the [`PendingTask`]s of a
    /// `shutdown_now`:
    ///
    /// ```
    /// use drainpool::{Job, ThreadPool};
    /// use drainpool::journal::{DurableJob, JobJournal, JobState};
    /// use serde::{Deserialize, Serialize};
    /// use std::time::Duration;
    ///
    /// #[derive(Serialize, Deserialize)]
    /// struct Email {
    ///     to: String,
    /// }
    /// impl Job for Email {
    ///     type Output = ();
    ///     fn run(self) {}
    /// }
    /// impl DurableJob for Email {
    ///     const KIND: &'static str = "doc.email";
    /// }
    ///
    /// # let dir = std::env::temp_dir().join(format!("drainpool-doc-recover-{}", std::process::id()));
    /// # std::fs::create_dir_all(&dir)?;
    /// let path = dir.join("jobs.db");
    /// {
    ///     // A first run: its one worker is busy when it stops.
    ///     let pool = ThreadPool::new(1)?;
    ///     let journal = JobJournal::open(&path)?;
    ///     let (release, busy) = std::sync::mpsc::channel::<()>();
    ///     pool.execute(move || drop(busy.recv()))?;
    ///     journal.submit(&pool, Email { to: "ada@example.com".into() })?;
    ///     journal.submit(&pool, Email { to: "spam@example.com".into() })?;
    ///     drop(pool.shutdown_now()); // never started: still queued in the journal
    ///     release.send(()).ok();
    /// }
    ///
    /// // The next start: look first, then decide.
    /// let pool = ThreadPool::new(2)?;
    /// let journal = JobJournal::open(&path)?;
    /// journal.register::<Email>()?;
    /// let recovery = journal.recover()?;
    /// assert_eq!(recovery.jobs.len(), 2);
    /// for job in recovery.jobs {
    ///     assert_eq!(job.left_in(), JobState::Queued);
    ///     let spam = job.job::<Email>().is_some_and(|email| email.to.starts_with("spam"));
    ///     if spam {
    ///         job.cancel()?; // recorded: it never comes back
    ///     } else {
    ///         job.resubmit(&pool)?;
    ///     }
    /// }
    /// pool.shutdown();
    /// assert!(pool.await_termination(Duration::from_secs(10)));
    /// journal.flush()?;
    /// let counts = journal.counts()?;
    /// assert_eq!((counts.completed, counts.cancelled), (1, 1));
    /// # drop(journal);
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
    /// ```
    ///
    /// [`PendingTask`]: crate::PendingTask
    pub fn recover(&self) -> Result<Recovery, JournalError> {
        let claim = self.core.store.claim_abandoned()?;
        let mut jobs = Vec::new();
        let mut skipped = Vec::new();
        for row in claim.jobs {
            let stored = match row {
                Ok(stored) => stored,
                Err(bad) => {
                    skipped.push(SkippedJob {
                        id: bad.id,
                        kind: bad.kind,
                        reason: SkipReason::BadRow(bad.reason),
                    });
                    continue;
                }
            };
            let Some(kind) = self.core.kind(&stored.kind) else {
                skipped.push(SkippedJob {
                    id: stored.id,
                    kind: Some(stored.kind),
                    reason: SkipReason::UnknownKind,
                });
                continue;
            };
            // The job type's Deserialize runs here, with no lock held.
            match (kind.decode)(&stored.payload) {
                Ok(job) => jobs.push(Recovered::new(stored, job, self.core.clone())),
                Err(e) => skipped.push(SkippedJob {
                    id: stored.id,
                    kind: Some(stored.kind),
                    reason: SkipReason::Undecodable(e),
                }),
            }
        }
        for skip in &skipped {
            let counter = match skip.reason {
                SkipReason::UnknownKind => &self.core.stats.skipped_unknown_kind,
                SkipReason::Undecodable(_) | SkipReason::BadRow(_) => {
                    &self.core.stats.skipped_undecodable
                }
            };
            // ORDERING: a statistic; nothing is published through it.
            counter.fetch_add(1, Ordering::Relaxed);
            log_warn!("journal: recovery skipped {skip}; it stays in the journal");
        }
        // ORDERING: a statistic; nothing is published through it.
        self.core
            .stats
            .recovered
            .fetch_add(jobs.len() as u64, Ordering::Relaxed);
        let retry_after = claim.next_expiry.map(|at| {
            at.duration_since(std::time::SystemTime::now())
                .unwrap_or(Duration::ZERO)
        });
        Ok(Recovery {
            jobs,
            skipped,
            held_elsewhere: claim.held_elsewhere,
            retry_after,
        })
    }

    /// [`recover`](Self::recover), then resubmits every recovered job to
    /// `pool`, in id order.
    ///
    /// # Errors
    ///
    /// As [`recover`](Self::recover). A job the pool refuses (it began
    /// shutting down) is not an error: it stays queued in the journal and
    /// is counted in [`RecoveryReport::left_queued`].
    pub fn recover_and_resubmit(
        &self,
        pool: &impl JobTarget,
    ) -> Result<RecoveryReport, JournalError> {
        let recovery = self.recover()?;
        let mut report = RecoveryReport {
            resubmitted: 0,
            left_queued: 0,
            skipped: recovery.skipped,
            held_elsewhere: recovery.held_elsewhere,
            retry_after: recovery.retry_after,
        };
        for job in recovery.jobs {
            match job.resubmit(pool) {
                Ok(_) => report.resubmitted += 1,
                Err(_) => report.left_queued += 1,
            }
        }
        Ok(report)
    }

    /// Records job `id` as cancelled, if it has not ended, and waits until
    /// that is durable. It does not stop a run already under way (cancel
    /// its [`DurableHandle`] for that); a queued job that is then taken by
    /// a worker still runs, but recovery will never bring it back.
    ///
    /// # Errors
    ///
    /// Why it could not be recorded.
    pub fn cancel(&self, id: JobId) -> Result<(), JournalError> {
        self.core.cancel(id)
    }

    /// Waits until every start and end mark recorded so far is durable.
    ///
    /// # Errors
    ///
    /// Why some could not be written (the journal retries them; see
    /// [`JournalStats::failed_writes`]).
    pub fn flush(&self) -> Result<(), JournalError> {
        self.core.store.flush()
    }

    /// How many journaled jobs are in each state (marks not yet flushed
    /// are not counted; call [`flush`](Self::flush) first for exact
    /// figures).
    ///
    /// # Errors
    ///
    /// Why the journal could not be read.
    pub fn counts(&self) -> Result<JobCounts, JournalError> {
        self.core.store.counts()
    }

    /// What this journal did since it was made.
    pub fn stats(&self) -> JournalStats {
        let s = &self.core.stats;
        // ORDERING: statistics; nothing is published through them.
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        JournalStats {
            submitted: get(&s.submitted),
            rejected: get(&s.rejected),
            recovered: get(&s.recovered),
            skipped_unknown_kind: get(&s.skipped_unknown_kind),
            skipped_undecodable: get(&s.skipped_undecodable),
            failed_writes: get(&s.failed_marks) + self.core.store.failed_writes(),
            commits: self.core.store.commits(),
        }
    }
}

impl fmt::Debug for JobJournal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobJournal")
            .field("store", &self.core.store)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}
