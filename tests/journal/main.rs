//! Durable jobs (issue 17): the SQLite journal under concurrent submitters,
//! the states it records through a pool's life, leases and recovery, and
//! every journal error (full, locked, corrupt row, unknown kind, a store
//! that fails) as a clear error or a logged, counted skip.
//!
//! Every test has its own database file in the temp directory, removed
//! when the test ends. Every wait is bounded by [`WAIT`].
#![cfg(feature = "journal")]

#[path = "../common/mod.rs"]
mod common;
mod errors;
mod lease;
mod submit;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use drainpool::Job;
use drainpool::journal::{DurableJob, JobJournal, SqliteJournal, current_job};
use serde::{Deserialize, Serialize};

use common::{Latch, WAIT};

/// The bound on a whole test: calls into the journal (a submit waiting for
/// its commit, a flush, a recovery) have no timeout of their own.
const WATCHDOG: Duration = Duration::from_secs(60);

/// Held for the length of a test: if the test has not ended within
/// [`WATCHDOG`], the test binary aborts with a message, so a hang in the
/// journal fails the run instead of stalling it.
pub(crate) struct Watchdog(#[allow(dead_code)] mpsc::Sender<()>);

pub(crate) fn watchdog(test: &'static str) -> Watchdog {
    let (tx, rx) = mpsc::channel::<()>();
    thread::spawn(move || {
        // Disconnected: the test ended (its guard dropped).
        if let Err(RecvTimeoutError::Timeout) = rx.recv_timeout(WATCHDOG) {
            eprintln!("watchdog: {test} did not end within {WATCHDOG:?}; aborting");
            std::process::abort();
        }
    });
    Watchdog(tx)
}

/// A database file of its own for one test; removed (with its `-wal` and
/// `-shm`) when dropped.
pub(crate) struct TempDb(PathBuf);

impl TempDb {
    pub(crate) fn new(name: &str) -> TempDb {
        static SEQ: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "drainpool-journal-test-{}-{name}-{}.db",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let db = TempDb(path);
        db.remove();
        db
    }

    pub(crate) fn path(&self) -> &Path {
        &self.0
    }

    /// A journal on it with a short lease and the default durability.
    pub(crate) fn journal(&self) -> JobJournal {
        self.journal_with_lease(Duration::from_secs(30))
    }

    pub(crate) fn journal_with_lease(&self, lease: Duration) -> JobJournal {
        let store = SqliteJournal::builder(self.path())
            .lease(lease)
            .open()
            .expect("the journal opens");
        let journal = JobJournal::new(store);
        journal.register::<Square>().unwrap();
        journal.register::<Blocker>().unwrap();
        journal.register::<Boom>().unwrap();
        journal
    }

    /// A plain connection, to look at or damage the tables.
    pub(crate) fn raw(&self) -> rusqlite::Connection {
        let conn = rusqlite::Connection::open(self.path()).unwrap();
        conn.busy_timeout(WAIT).unwrap();
        conn
    }

    fn remove(&self) {
        for suffix in ["", "-wal", "-shm"] {
            let mut path = self.0.clone().into_os_string();
            path.push(suffix);
            let _ = std::fs::remove_file(path);
        }
    }
}

impl Drop for TempDb {
    fn drop(&mut self) {
        self.remove();
    }
}

/// Squares its number; says which attempt and key it ran with.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct Square(pub(crate) u64);

impl Job for Square {
    type Output = (u64, u32, Option<String>);
    fn run(self) -> Self::Output {
        let run = current_job().expect("a durable job knows it is one");
        (self.0 * self.0, run.attempt, run.idempotency_key)
    }
}

impl DurableJob for Square {
    const KIND: &'static str = "test.square";
    fn idempotency_key(&self) -> Option<String> {
        Some(format!("square-{}", self.0))
    }
}

/// Blocks until its gate (by number) opens: a job that stays `started`.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Blocker(pub(crate) u64);

impl Job for Blocker {
    type Output = ();
    fn run(self) {
        entered(self.0).open();
        assert!(gate(self.0).wait(), "gate {} never opened", self.0);
    }
}

impl DurableJob for Blocker {
    const KIND: &'static str = "test.blocker";
}

/// Panics.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Boom;

impl Job for Boom {
    type Output = ();
    fn run(self) {
        panic!("boom");
    }
}

impl DurableJob for Boom {
    const KIND: &'static str = "test.boom";
}

fn latches(which: &'static str, n: u64) -> Latch {
    static LATCHES: OnceLock<Mutex<HashMap<(&'static str, u64), Latch>>> = OnceLock::new();
    LATCHES
        .get_or_init(Default::default)
        .lock()
        .unwrap()
        .entry((which, n))
        .or_default()
        .clone()
}

/// The gate `Blocker(n)` waits on.
pub(crate) fn gate(n: u64) -> Latch {
    latches("gate", n)
}

/// Opened once `Blocker(n)` runs.
pub(crate) fn entered(n: u64) -> Latch {
    latches("entered", n)
}

/// A number no other test uses, for gates.
pub(crate) fn fresh() -> u64 {
    static NEXT: AtomicUsize = AtomicUsize::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed) as u64
}

/// Polls `check` until it gives a value, for at most `bound`. Only for
/// states nothing notifies about (another process's lease running out).
pub(crate) fn eventually<T>(
    what: &str,
    bound: Duration,
    mut check: impl FnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + bound;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "{what}: not within {bound:?}");
        thread::sleep(Duration::from_millis(5));
    }
}

/// The state of job `id`'s row, read with a plain connection.
pub(crate) fn row_state(db: &TempDb, id: u64) -> String {
    db.raw()
        .query_row(
            "SELECT state FROM drainpool_jobs WHERE id = ?1",
            [id as i64],
            |row| row.get(0),
        )
        .unwrap()
}
