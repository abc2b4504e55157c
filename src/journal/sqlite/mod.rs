//! [`SqliteJournal`]: the default store, one SQLite database in WAL mode
//! written by one thread that commits in groups.
//!
//! # The writer thread
//!
//! The `rusqlite::Connection` belongs to one thread, `drainpool-journal`,
//! fed by a channel. Each submit sends its rows and a one-shot reply and
//! blocks on the reply; the writer takes everything waiting in the channel
//! (up to 4096 operations), applies it in one `BEGIN IMMEDIATE`
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
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{Sender, bounded, unbounded};
use rusqlite::{Connection, params};

use crate::journal::error::JournalError;
use crate::journal::store::{Claim, JobCounts, JobId, Journal, Mark, NewJob};

mod writer;

use writer::{Counters, Op, StoreMessage, Writer, map_err, now_ms};

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

/// The longest lease: a longer one would only overflow the clock.
const YEAR: Duration = Duration::from_secs(365 * 24 * 3600);

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
    /// a heartbeat; default 30 s, at least 30 ms and at most a year (a
    /// longer one is taken as a year: in effect, forever). The writer renews it every
    /// third of it. After a crash, another process recovers the jobs once
    /// the lease has run out; too short a lease, and a process whose
    /// writer is stalled (a disk that hangs) may see its running jobs
    /// recovered and run a second time elsewhere.
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease.clamp(Duration::from_millis(30), YEAR);
        self
    }

    /// How long a write waits for another connection's lock before it
    /// fails with [`JournalError::Busy`]; default 5 s; at most 24 days
    /// (SQLite counts it in `i32` milliseconds: a longer one, such as
    /// `Duration::MAX`, is taken as that, in effect forever).
    pub fn busy_timeout(mut self, timeout: Duration) -> Self {
        self.busy_timeout = timeout.min(Duration::from_millis(i32::MAX as u64));
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
        let counters = Arc::new(Counters::default());
        let writer = Writer::new(
            conn,
            owner.clone(),
            lease_ms,
            self.lease / 3,
            self.busy_timeout,
            counters.clone(),
        );
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
            counters,
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
/// Ended rows are kept (they are the record of what ran); the journal
/// never deletes them. A program that wants them gone deletes them with
/// its own connection, e.g. `DELETE FROM drainpool_jobs WHERE state IN
/// ('completed', 'failed', 'cancelled') AND updated_ms < ?` (milliseconds
/// since the Unix epoch).
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
    counters: Arc<Counters>,
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
        self.counters.failed_writes.load(Ordering::Relaxed)
    }

    fn commits(&self) -> u64 {
        // ORDERING: a statistic; nothing is published through it.
        self.counters.commits.load(Ordering::Relaxed)
    }
}

impl fmt::Debug for SqliteJournal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteJournal")
            .field("path", &self.path)
            .field("owner", &self.owner)
            .field("commits", &self.commits())
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
