//! [`SqliteJournal`]: the default store, one SQLite database in WAL mode
//! written by one thread that commits in groups.
//!
//! # The writer thread
//!
//! The `rusqlite::Connection` belongs to one thread, `drainpool-journal`,
//! fed by a channel. Each submit sends its rows and a one-shot reply and
//! blocks on the reply; the writer takes everything waiting in the channel
//! (up to [`MAX_BATCH`] operations), applies it in one `BEGIN IMMEDIATE`
//! transaction and commits once, then answers every caller: while one
//! commit syncs, the next batch gathers, so N concurrent submitters share
//! one transaction and one fsync (group commit). No lock is shared with
//! callers: the channel is the only meeting point, so there is no lock
//! order to keep.
//!
//! If a batch fails, it is rolled back and each operation is applied again
//! alone, so one bad operation (a full disk hits all of them alike, but a
//! row that cannot be written does not) answers only its own caller.
//! Start and end marks have no caller waiting: one that fails is counted in
//! `failed_writes`, logged, and kept to be tried again with the next
//! commit; marks only ever move a row forward (see [`Mark`]), so a retried
//! mark never undoes a later one.
//!
//! # Lease
//!
//! The store's owner row (`drainpool_owners`) holds `lease_until_ms`, wall
//! clock milliseconds; the writer extends it by the lease every third of a
//! lease, in the next commit or on its own when idle. Closing the store
//! sets it to 0 (released): the next process to start recovers this one's
//! queued jobs at once, without waiting for the lease to run out.

use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, bounded, unbounded};
use rusqlite::{Connection, ErrorCode, OptionalExtension, params};

use crate::journal::error::JournalError;
use crate::journal::store::{
    BadRow, Claim, JobCounts, JobId, JobState, Journal, Mark, NewJob, StoredJob,
};

/// The most operations one transaction takes: a bound on the time a
/// caller at the back of a long queue waits for the batch before it.
const MAX_BATCH: usize = 4096;

/// How much of a crash (or power cut) a recorded row survives: SQLite's
/// `synchronous` setting, in WAL mode.
///
/// | level    | `synchronous` | a process crash (kill -9, abort, OOM) | a power cut or OS crash |
/// |----------|---------------|---------------------------------------|-------------------------|
/// | `Full`   | `FULL`        | survives                              | survives: every commit is fsynced before `submit` returns |
/// | `Normal` | `NORMAL`      | survives                              | the last commits may be lost (the database stays consistent) |
/// | `Off`    | `OFF`         | survives                              | the database may be corrupted |
///
/// A row reaches the operating system at every commit in all three, which
/// is why a process crash never loses one; only the sync to the disk
/// differs. `Full` costs one fsync per group commit (shared by every
/// submit in the batch); it is the default.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Durability {
    /// `synchronous=FULL`: survives a power cut.
    #[default]
    Full,
    /// `synchronous=NORMAL`: survives a process crash; a power cut may
    /// lose the last commits.
    Normal,
    /// `synchronous=OFF`: survives a process crash; a power cut may
    /// corrupt the database.
    Off,
}

impl Durability {
    fn pragma(self) -> &'static str {
        match self {
            Durability::Full => "FULL",
            Durability::Normal => "NORMAL",
            Durability::Off => "OFF",
        }
    }
}

/// Options for a [`SqliteJournal`], from [`SqliteJournal::builder`].
#[derive(Clone, Debug)]
pub struct SqliteJournalBuilder {
    path: PathBuf,
    durability: Durability,
    lease: Duration,
    busy_timeout: Duration,
    pragmas: Vec<(String, String)>,
}

impl SqliteJournalBuilder {
    /// How durable a recorded row is; default [`Durability::Full`].
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// How long this process's claim on its unfinished jobs lasts without
    /// a heartbeat; default 30 s, at least 30 ms. The writer renews it every
    /// third of it. After a crash, another process recovers the jobs once
    /// the lease has run out; too short a lease, and a process whose
    /// writer is stalled (a disk that hangs) may see its running jobs
    /// recovered and run a second time elsewhere.
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease.max(Duration::from_millis(30));
        self
    }

    /// How long a write waits for another connection's lock before it
    /// fails with [`JournalError::Busy`]; default 5 s.
    pub fn busy_timeout(mut self, timeout: Duration) -> Self {
        self.busy_timeout = timeout;
        self
    }

    /// Runs `PRAGMA name = value` on the connection once the journal has
    /// set it up (WAL mode, `synchronous`, the busy timeout, its tables and
    /// its owner row): for `cache_size`, `max_page_count`, ...
    pub fn pragma(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.pragmas.push((name.into(), value.into()));
        self
    }

    /// Opens (or creates) the database and its tables, registers this
    /// process as an owner and starts the writer thread.
    ///
    /// # Errors
    ///
    /// [`JournalError::Busy`] if another connection holds the database
    /// locked past the busy timeout; [`JournalError::Corrupt`] if the file
    /// is not a database; [`JournalError::Store`] for anything else (a
    /// directory that does not exist, a pragma SQLite refuses).
    pub fn open(self) -> Result<SqliteJournal, JournalError> {
        let owner = new_owner_id();
        let conn = Connection::open(&self.path).map_err(map_err)?;
        conn.busy_timeout(self.busy_timeout).map_err(map_err)?;
        let mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
            .map_err(map_err)?;
        if !mode.eq_ignore_ascii_case("wal") && !mode.eq_ignore_ascii_case("memory") {
            return Err(JournalError::Store(Arc::new(StoreMessage(format!(
                "SQLite refused WAL mode (journal_mode is {mode})"
            )))));
        }
        conn.execute_batch(&format!(
            "PRAGMA synchronous = {}",
            self.durability.pragma()
        ))
        .map_err(map_err)?;
        let lease_ms = i64::try_from(self.lease.as_millis()).unwrap_or(i64::MAX / 4);
        conn.execute_batch(SCHEMA).map_err(map_err)?;
        let now = now_ms();
        conn.execute(
            "INSERT INTO drainpool_owners (owner, pid, started_ms, lease_until_ms) \
             VALUES (?1, ?2, ?3, ?4)",
            params![owner, std::process::id(), now, now.saturating_add(lease_ms)],
        )
        .map_err(map_err)?;
        // Owners long gone that hold no unfinished row: forget them.
        conn.execute(
            "DELETE FROM drainpool_owners WHERE lease_until_ms <= ?1 AND owner NOT IN \
             (SELECT owner FROM drainpool_jobs WHERE owner IS NOT NULL \
              AND state NOT IN ('completed', 'failed', 'cancelled'))",
            params![now],
        )
        .map_err(map_err)?;

        for (name, value) in &self.pragmas {
            conn.execute_batch(&format!("PRAGMA {name} = {value}"))
                .map_err(map_err)?;
        }

        let (tx, rx) = unbounded();
        let failed = Arc::new(AtomicU64::new(0));
        let writer = Writer {
            conn,
            owner: owner.clone(),
            lease_ms,
            heartbeat_every: self.lease / 3,
            next_heartbeat: Instant::now() + self.lease / 3,
            retry: Vec::new(),
            last_error: None,
            failed: failed.clone(),
        };
        let thread = thread::Builder::new()
            .name("drainpool-journal".into())
            .spawn(move || writer.run(rx))
            .map_err(JournalError::store)?;
        log_debug!(
            "journal {}: opened as owner {owner} ({:?}, lease {:?})",
            self.path.display(),
            self.durability,
            self.lease
        );
        Ok(SqliteJournal {
            tx,
            owner,
            path: self.path,
            failed,
            writer: Some(thread),
        })
    }
}

/// The tables. Payloads are JSON text for the jobs this crate submits;
/// `owner` names the process that holds an unfinished row.
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS drainpool_jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    payload NOT NULL,
    idempotency_key TEXT,
    state TEXT NOT NULL,
    owner TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    created_ms INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS drainpool_jobs_state ON drainpool_jobs (state, owner);
CREATE TABLE IF NOT EXISTS drainpool_owners (
    owner TEXT PRIMARY KEY,
    pid INTEGER NOT NULL,
    started_ms INTEGER NOT NULL,
    lease_until_ms INTEGER NOT NULL
);
";

/// The default store: a SQLite database (bundled SQLite, WAL mode), written
/// by one thread that commits concurrent submits together (group commit).
///
/// It keeps two tables beside whatever else the database holds:
/// `drainpool_jobs` (one row per job: `id`, `kind`, `payload` as JSON,
/// `idempotency_key`, `state`, `owner`, `attempts`, timestamps) and
/// `drainpool_owners` (one row per process that opened the journal, with
/// its lease). See [`Durability`] for what a recorded row survives, and the
/// [module docs](crate::journal) for the whole story.
///
/// # Drop
///
/// Dropping it (with the last [`JobJournal`](crate::journal::JobJournal)
/// and the last job that refers to it) writes every mark still waiting,
/// releases this process's lease, so that the next start recovers its
/// queued jobs at once, and joins the writer thread.
///
/// # Examples
///
/// ```
/// use drainpool::journal::{Durability, JobJournal, SqliteJournal};
/// use std::time::Duration;
///
/// let dir = std::env::temp_dir().join(format!("drainpool-doc-sqlite-{}", std::process::id()));
/// std::fs::create_dir_all(&dir)?;
/// let store = SqliteJournal::builder(dir.join("jobs.db"))
///     .durability(Durability::Normal)
///     .lease(Duration::from_secs(10))
///     .open()?;
/// let journal = JobJournal::new(store);
/// assert_eq!(journal.counts()?.total(), 0);
/// # drop(journal);
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
/// ```
pub struct SqliteJournal {
    tx: Sender<Op>,
    owner: String,
    path: PathBuf,
    failed: Arc<AtomicU64>,
    writer: Option<JoinHandle<()>>,
}

impl SqliteJournal {
    /// Opens (or creates) the journal at `path` with the default options:
    /// [`Durability::Full`], a 30 s lease, a 5 s busy timeout.
    ///
    /// # Errors
    ///
    /// As [`SqliteJournalBuilder::open`].
    pub fn open(path: impl AsRef<Path>) -> Result<SqliteJournal, JournalError> {
        SqliteJournal::builder(path).open()
    }

    /// Options for the journal at `path`.
    pub fn builder(path: impl AsRef<Path>) -> SqliteJournalBuilder {
        SqliteJournalBuilder {
            path: path.as_ref().to_owned(),
            durability: Durability::default(),
            lease: Duration::from_secs(30),
            busy_timeout: Duration::from_secs(5),
            pragmas: Vec::new(),
        }
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Sends `op` built around a fresh reply channel and waits for the
    /// answer.
    fn ask<T>(
        &self,
        op: impl FnOnce(Sender<Result<T, JournalError>>) -> Op,
    ) -> Result<T, JournalError> {
        let (reply, answer) = bounded(1);
        self.tx.send(op(reply)).map_err(|_| JournalError::Closed)?;
        // The writer answers every operation it takes, even when its
        // commit fails; a disconnect means it has gone.
        answer.recv().unwrap_or(Err(JournalError::Closed))
    }
}

impl Journal for SqliteJournal {
    fn owner(&self) -> &str {
        &self.owner
    }

    fn enqueue_all(&self, jobs: Vec<NewJob>) -> Result<Vec<JobId>, JournalError> {
        if jobs.is_empty() {
            return Ok(Vec::new());
        }
        self.ask(|reply| Op::Enqueue { jobs, reply })
    }

    fn record(&self, id: JobId, mark: Mark) -> Result<(), JournalError> {
        self.tx
            .send(Op::Mark { id, mark })
            .map_err(|_| JournalError::Closed)
    }

    fn flush(&self) -> Result<(), JournalError> {
        self.ask(|reply| Op::Flush { reply })
    }

    fn claim_abandoned(&self) -> Result<Claim, JournalError> {
        self.ask(|reply| Op::Claim { reply })
    }

    fn counts(&self) -> Result<JobCounts, JournalError> {
        self.ask(|reply| Op::Counts { reply })
    }

    fn failed_writes(&self) -> u64 {
        // ORDERING: a statistic; nothing is published through it.
        self.failed.load(Ordering::Relaxed)
    }
}

impl fmt::Debug for SqliteJournal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteJournal")
            .field("path", &self.path)
            .field("owner", &self.owner)
            .field("failed_writes", &self.failed_writes())
            .finish_non_exhaustive()
    }
}

impl Drop for SqliteJournal {
    fn drop(&mut self) {
        let _ = self.tx.send(Op::Close);
        if let Some(writer) = self.writer.take() {
            if writer.join().is_err() {
                log_error!(
                    "journal {}: the writer thread panicked",
                    self.path.display()
                );
            }
        }
    }
}

/// What the writer is asked to do.
enum Op {
    Enqueue {
        jobs: Vec<NewJob>,
        reply: Sender<Result<Vec<JobId>, JournalError>>,
    },
    Mark {
        id: JobId,
        mark: Mark,
    },
    Flush {
        reply: Sender<Result<(), JournalError>>,
    },
    Claim {
        reply: Sender<Result<Claim, JournalError>>,
    },
    Counts {
        reply: Sender<Result<JobCounts, JournalError>>,
    },
    Heartbeat,
    Close,
}

/// Where a transaction failed.
enum Failed {
    /// Beginning or committing it: every operation fails alike.
    Transaction(rusqlite::Error),
    /// One of its operations: the others may succeed alone.
    Operation(rusqlite::Error),
}

/// What an operation produced, kept until its transaction commits.
enum Out {
    Ids(Vec<JobId>),
    Unit,
    Claim(Claim),
    Counts(JobCounts),
}

/// The writer thread's state: the connection and the marks to retry.
struct Writer {
    conn: Connection,
    owner: String,
    lease_ms: i64,
    heartbeat_every: Duration,
    next_heartbeat: Instant,
    /// Marks whose write failed, to try again with the next commit.
    retry: Vec<(JobId, Mark)>,
    last_error: Option<JournalError>,
    failed: Arc<AtomicU64>,
}

impl Writer {
    fn run(mut self, rx: Receiver<Op>) {
        let mut batch = Vec::new();
        let mut closing = false;
        while !closing {
            let wait = self
                .next_heartbeat
                .saturating_duration_since(Instant::now());
            match rx.recv_timeout(wait) {
                Ok(op) => batch.push(op),
                Err(RecvTimeoutError::Timeout) => {}
                // Cannot happen while the SqliteJournal lives (it holds the
                // sender and sends Close on drop); treated as a close.
                Err(RecvTimeoutError::Disconnected) => closing = true,
            }
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(op) => batch.push(op),
                    Err(_) => break,
                }
            }
            if batch.iter().any(|op| matches!(op, Op::Close)) {
                closing = true;
            }
            if Instant::now() >= self.next_heartbeat && !closing {
                batch.push(Op::Heartbeat);
            }
            if !batch.is_empty() || !self.retry.is_empty() {
                self.commit(&mut batch);
            }
        }
        self.release();
    }

    /// Applies `batch` (and the marks to retry) in one transaction, then
    /// answers every caller.
    fn commit(&mut self, batch: &mut Vec<Op>) {
        let retry: Vec<Op> = self
            .retry
            .drain(..)
            .map(|(id, mark)| Op::Mark { id, mark })
            .collect();
        let retried = retry.len();
        let mut ops = retry;
        ops.append(batch);
        match self.apply_all(&ops) {
            Ok(outs) => {
                self.after_heartbeat(&ops);
                for (op, out) in ops.into_iter().zip(outs) {
                    self.answer(op, Ok(out));
                }
            }
            Err(Failed::Transaction(e)) => {
                // The transaction itself failed (the lock was not to be
                // had): the same answer for every operation; trying each
                // alone would only wait out the busy timeout again and again.
                let e = map_err(e);
                for (n, op) in ops.into_iter().enumerate() {
                    self.failed_op(op, e.clone(), n < retried);
                }
            }
            Err(Failed::Operation(_)) => {
                // One at a time: each caller gets its own outcome.
                for (n, op) in ops.into_iter().enumerate() {
                    let one = std::slice::from_ref(&op);
                    match self.apply_all(one) {
                        Ok(mut outs) => {
                            self.after_heartbeat(one);
                            self.answer(op, Ok(outs.remove(0)));
                        }
                        Err(Failed::Transaction(e) | Failed::Operation(e)) => {
                            self.failed_op(op, map_err(e), n < retried);
                        }
                    }
                }
            }
        }
    }

    fn after_heartbeat(&mut self, ops: &[Op]) {
        if ops.iter().any(|op| matches!(op, Op::Heartbeat)) {
            self.next_heartbeat = Instant::now() + self.heartbeat_every;
        }
    }

    fn apply_all(&self, ops: &[Op]) -> Result<Vec<Out>, Failed> {
        self.conn
            .execute_batch("BEGIN IMMEDIATE")
            .map_err(Failed::Transaction)?;
        let now = now_ms();
        let outs = ops
            .iter()
            .map(|op| self.apply(op, now))
            .collect::<rusqlite::Result<Vec<Out>>>()
            .map_err(Failed::Operation);
        let result = outs.and_then(|outs| {
            self.conn
                .execute_batch("COMMIT")
                .map_err(Failed::Transaction)?;
            Ok(outs)
        });
        if result.is_err() && !self.conn.is_autocommit() {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
        result
    }

    fn apply(&self, op: &Op, now: i64) -> rusqlite::Result<Out> {
        let conn = &self.conn;
        match op {
            Op::Enqueue { jobs, .. } => {
                let mut insert = conn.prepare_cached(
                    "INSERT INTO drainpool_jobs \
                     (kind, payload, idempotency_key, state, owner, attempts, created_ms, updated_ms) \
                     VALUES (?1, ?2, ?3, 'queued', ?4, 0, ?5, ?5)",
                )?;
                let mut ids = Vec::with_capacity(jobs.len());
                for job in jobs {
                    match std::str::from_utf8(&job.payload) {
                        Ok(text) => insert.execute(params![
                            job.kind,
                            text,
                            job.idempotency_key,
                            self.owner,
                            now
                        ])?,
                        Err(_) => insert.execute(params![
                            job.kind,
                            job.payload,
                            job.idempotency_key,
                            self.owner,
                            now
                        ])?,
                    };
                    ids.push(JobId::from_u64(conn.last_insert_rowid() as u64));
                }
                Ok(Out::Ids(ids))
            }
            Op::Mark {
                id,
                mark: Mark::Started,
            } => {
                conn.prepare_cached(
                    "UPDATE drainpool_jobs SET state = 'started', owner = ?2, \
                     attempts = attempts + 1, updated_ms = ?3 WHERE id = ?1 AND state = 'queued'",
                )?
                .execute(params![id.as_u64() as i64, self.owner, now])?;
                Ok(Out::Unit)
            }
            Op::Mark {
                id,
                mark: Mark::Ended(state),
            } => {
                conn.prepare_cached(
                    "UPDATE drainpool_jobs SET state = ?2, updated_ms = ?3 \
                     WHERE id = ?1 AND state IN ('queued', 'started')",
                )?
                .execute(params![id.as_u64() as i64, state.as_str(), now])?;
                Ok(Out::Unit)
            }
            Op::Heartbeat => {
                conn.prepare_cached(
                    "INSERT INTO drainpool_owners (owner, pid, started_ms, lease_until_ms) \
                     VALUES (?1, ?2, ?3, ?4) \
                     ON CONFLICT (owner) DO UPDATE SET lease_until_ms = excluded.lease_until_ms",
                )?
                .execute(params![
                    self.owner,
                    std::process::id(),
                    now,
                    now.saturating_add(self.lease_ms)
                ])?;
                Ok(Out::Unit)
            }
            Op::Flush { .. } | Op::Close => Ok(Out::Unit),
            Op::Claim { .. } => self.claim(now).map(Out::Claim),
            Op::Counts { .. } => {
                let mut counts = JobCounts::default();
                let mut stmt = conn
                    .prepare_cached("SELECT state, COUNT(*) FROM drainpool_jobs GROUP BY state")?;
                let rows = stmt.query_map([], |row| {
                    Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?))
                })?;
                for row in rows {
                    let (state, n) = row?;
                    if let Some(state) = JobState::parse(&state) {
                        counts.add(state, n as u64);
                    }
                }
                Ok(Out::Counts(counts))
            }
        }
    }

    fn claim(&self, now: i64) -> rusqlite::Result<Claim> {
        let conn = &self.conn;
        let mut select = conn.prepare_cached(
            "SELECT j.id, j.kind, j.payload, j.idempotency_key, j.state, j.owner, j.attempts \
             FROM drainpool_jobs j \
             WHERE j.state NOT IN ('completed', 'failed', 'cancelled') \
             AND (j.owner IS NULL OR (j.owner <> ?1 AND NOT EXISTS \
                 (SELECT 1 FROM drainpool_owners o WHERE o.owner = j.owner AND o.lease_until_ms > ?2))) \
             ORDER BY j.id",
        )?;
        let rows = select.query_map(params![self.owner, now], read_row)?;
        let mut jobs = Vec::new();
        for row in rows {
            jobs.push(row?);
        }
        let mut take = conn.prepare_cached(
            "UPDATE drainpool_jobs SET state = 'queued', owner = ?2, updated_ms = ?3 WHERE id = ?1",
        )?;
        for job in jobs.iter().flatten() {
            take.execute(params![job.id.as_u64() as i64, self.owner, now])?;
        }
        let (held_elsewhere, next_expiry): (i64, Option<i64>) = conn
            .prepare_cached(
                "SELECT COUNT(*), MIN(o.lease_until_ms) FROM drainpool_jobs j \
                 JOIN drainpool_owners o ON o.owner = j.owner \
                 WHERE j.state NOT IN ('completed', 'failed', 'cancelled') \
                 AND j.owner <> ?1 AND o.lease_until_ms > ?2",
            )?
            .query_row(params![self.owner, now], |row| {
                Ok((row.get(0)?, row.get(1)?))
            })
            .optional()?
            .unwrap_or((0, None));
        Ok(Claim {
            jobs,
            held_elsewhere: held_elsewhere as usize,
            next_expiry: next_expiry
                .map(|ms| UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0))),
        })
    }

    /// Gives `op` its result.
    fn answer(&mut self, op: Op, out: Result<Out, JournalError>) {
        // A caller that stopped waiting (it cannot: it blocks on the
        // reply) would make `send` fail; nothing to do then.
        match (op, out) {
            (Op::Enqueue { reply, .. }, Ok(Out::Ids(ids))) => drop(reply.send(Ok(ids))),
            (Op::Flush { reply }, Ok(_)) => {
                let outcome = match (&self.last_error, self.retry.is_empty()) {
                    (_, true) => Ok(()),
                    (Some(e), false) => Err(e.clone()),
                    (None, false) => Err(JournalError::Closed),
                };
                drop(reply.send(outcome));
            }
            (Op::Claim { reply }, Ok(Out::Claim(claim))) => drop(reply.send(Ok(claim))),
            (Op::Counts { reply }, Ok(Out::Counts(counts))) => drop(reply.send(Ok(counts))),
            (Op::Enqueue { reply, .. }, Err(e)) => drop(reply.send(Err(e))),
            (Op::Flush { reply }, Err(e)) => drop(reply.send(Err(e))),
            (Op::Claim { reply }, Err(e)) => drop(reply.send(Err(e))),
            (Op::Counts { reply }, Err(e)) => drop(reply.send(Err(e))),
            (Op::Mark { .. } | Op::Heartbeat | Op::Close, _) => {}
            (Op::Enqueue { reply, .. }, Ok(_)) => drop(reply.send(Err(JournalError::Closed))),
            (Op::Claim { reply }, Ok(_)) => drop(reply.send(Err(JournalError::Closed))),
            (Op::Counts { reply }, Ok(_)) => drop(reply.send(Err(JournalError::Closed))),
        }
    }

    /// `op` failed even alone.
    fn failed_op(&mut self, op: Op, e: JournalError, was_retry: bool) {
        match op {
            Op::Mark { id, mark } => {
                if !was_retry {
                    // ORDERING: a statistic; nothing is published through it.
                    self.failed.fetch_add(1, Ordering::Relaxed);
                    log_error!(
                        "journal: could not record {id} as {}: {e}; will retry at the next commit \
                         (if it never succeeds, the job is rerun at recovery)",
                        match mark {
                            Mark::Started => "started",
                            Mark::Ended(state) => state.as_str(),
                        }
                    );
                }
                self.retry.push((id, mark));
                self.last_error = Some(e);
            }
            Op::Heartbeat => {
                log_warn!(
                    "journal: could not renew the lease of owner {}: {e}",
                    self.owner
                );
            }
            other => self.answer(other, Err(e)),
        }
    }

    /// On close: one last try for the marks that failed, then the lease is
    /// released.
    fn release(&mut self) {
        if !self.retry.is_empty() {
            let mut none = Vec::new();
            self.commit(&mut none);
        }
        if !self.retry.is_empty() {
            log_error!(
                "journal: closing with {} mark(s) never recorded (last error: {}); \
                 their jobs will be rerun at recovery",
                self.retry.len(),
                self.last_error
                    .as_ref()
                    .map_or_else(String::new, ToString::to_string)
            );
        }
        if let Err(e) = self.conn.execute(
            "UPDATE drainpool_owners SET lease_until_ms = 0 WHERE owner = ?1",
            params![self.owner],
        ) {
            let e = map_err(e);
            log_warn!(
                "journal: could not release the lease of owner {}: {e}; its jobs are recovered \
                 once the lease runs out",
                self.owner
            );
        }
    }
}

/// Reads one row of the claim query; a row that cannot be read whole is a
/// [`BadRow`], not an error of the whole claim.
fn read_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Result<StoredJob, BadRow>> {
    use rusqlite::types::ValueRef;
    let id = JobId::from_u64(row.get::<_, i64>(0)? as u64);
    let kind = match row.get_ref(1)? {
        ValueRef::Text(text) => Some(String::from_utf8_lossy(text).into_owned()),
        _ => None,
    };
    let bad = |reason: String| {
        Ok(Err(BadRow {
            id,
            kind: kind.clone(),
            reason,
        }))
    };
    let Some(kind_text) = kind.clone() else {
        return bad("its kind is not text".into());
    };
    let payload = match row.get_ref(2)? {
        ValueRef::Text(bytes) | ValueRef::Blob(bytes) => bytes.to_vec(),
        other => return bad(format!("its payload is {:?}, not text", other.data_type())),
    };
    let idempotency_key = match row.get_ref(3)? {
        ValueRef::Null => None,
        ValueRef::Text(text) => Some(String::from_utf8_lossy(text).into_owned()),
        other => return bad(format!("its idempotency key is {:?}", other.data_type())),
    };
    let left_in = match row.get_ref(4)? {
        ValueRef::Text(text) => match std::str::from_utf8(text).ok().and_then(JobState::parse) {
            Some(state) => state,
            None => {
                return bad(format!(
                    "its state {:?} is not one the journal knows",
                    String::from_utf8_lossy(text)
                ));
            }
        },
        other => return bad(format!("its state is {:?}", other.data_type())),
    };
    let previous_owner = match row.get_ref(5)? {
        ValueRef::Text(text) => Some(String::from_utf8_lossy(text).into_owned()),
        _ => None,
    };
    let attempts = match row.get_ref(6)? {
        ValueRef::Integer(n) => u32::try_from(n).unwrap_or(u32::MAX),
        _ => 0,
    };
    Ok(Ok(StoredJob {
        id,
        kind: kind_text,
        payload,
        idempotency_key,
        left_in,
        previous_owner,
        attempts,
    }))
}

/// A store failure described in words (no error value to wrap).
#[derive(Debug)]
struct StoreMessage(String);

impl fmt::Display for StoreMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StoreMessage {}

/// SQLite's result codes to the journal's error kinds.
fn map_err(e: rusqlite::Error) -> JournalError {
    match e.sqlite_error_code() {
        Some(ErrorCode::DiskFull) => JournalError::Full,
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => JournalError::Busy,
        Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => {
            JournalError::Corrupt(e.to_string())
        }
        _ => JournalError::store(e),
    }
}

/// Wall-clock milliseconds since the Unix epoch: leases are compared
/// across processes, so a monotonic clock would not do. Clocks of the
/// processes sharing a database must roughly agree (they share a machine,
/// or a file system, usually both).
fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 4))
}

/// A fresh owner id: the pid (for people reading the table) and 64 random
/// bits (a pid is reused; this is not), e.g. `4711-9f0c3a...`.
fn new_owner_id() -> String {
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u128(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    static SEQ: AtomicU64 = AtomicU64::new(0);
    // ORDERING: only uniqueness matters.
    hasher.write_u64(SEQ.fetch_add(1, Ordering::Relaxed));
    format!("{}-{:016x}", std::process::id(), hasher.finish())
}
