//! The writer thread of a [`SqliteJournal`](super::SqliteJournal): the
//! one owner of the connection, applying what callers send in group
//! commits (see the parent module's docs for the protocol).

use std::cell::Cell;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use rusqlite::{Connection, ErrorCode, OptionalExtension, params};

use crate::journal::error::JournalError;
use crate::journal::store::{BadRow, Claim, JobCounts, JobId, JobState, Mark, NewJob, StoredJob};

/// The most operations one transaction takes: a bound on the time a
/// caller at the back of a long queue waits for the batch before it.
const MAX_BATCH: usize = 4096;

/// What the writer is asked to do.
pub(super) enum Op {
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
pub(super) struct Writer {
    conn: Connection,
    busy_timeout: Duration,
    owner: String,
    lease_ms: i64,
    heartbeat_every: Duration,
    next_heartbeat: Instant,
    /// Marks whose write failed, to try again with the next commit.
    retry: Vec<(JobId, Mark)>,
    last_error: Option<JournalError>,
    counters: Arc<Counters>,
}

/// What the writer counts, read by [`SqliteJournal`](super::SqliteJournal).
#[derive(Debug, Default)]
pub(super) struct Counters {
    /// Marks that failed to be written (each once, however often retried).
    pub(super) failed_writes: AtomicU64,
    /// Transactions committed.
    pub(super) commits: AtomicU64,
}

impl Writer {
    /// The writer of `conn` for `owner`, renewing a lease of `lease_ms`
    /// every `heartbeat_every`; counts in `counters`.
    pub(super) fn new(
        conn: Connection,
        owner: String,
        lease_ms: i64,
        heartbeat_every: Duration,
        busy_timeout: Duration,
        counters: Arc<Counters>,
    ) -> Writer {
        Writer {
            conn,
            busy_timeout,
            owner,
            lease_ms,
            heartbeat_every,
            next_heartbeat: Instant::now() + heartbeat_every,
            retry: Vec::new(),
            last_error: None,
            counters,
        }
    }

    /// The thread's body: batches until `Op::Close`, then releases the
    /// lease.
    pub(super) fn run(mut self, rx: Receiver<Op>) {
        BUSY_TIMEOUT.with(|timeout| timeout.set(self.busy_timeout));
        if let Err(e) = self.conn.busy_handler(Some(busy_handler)) {
            log_warn!("journal: keeping SQLite's own busy handler: {e}");
        }
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
            // ORDERING: a statistic; nothing is published through it.
            self.counters.commits.fetch_add(1, Ordering::Relaxed);
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
            Op::Mark {
                id,
                mark: Mark::Requeued,
            } => {
                conn.prepare_cached(
                    "UPDATE drainpool_jobs SET state = 'queued', updated_ms = ?2 \
                     WHERE id = ?1 AND state = 'started'",
                )?
                .execute(params![id.as_u64() as i64, now])?;
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
                    self.counters.failed_writes.fetch_add(1, Ordering::Relaxed);
                    log_error!(
                        "journal: could not record {id} as {}: {e}; will retry at the next commit \
                         (if it never succeeds, the job is rerun at recovery)",
                        match mark {
                            Mark::Started => "started",
                            Mark::Requeued => "queued again",
                            Mark::Ended(state) => state.as_str(),
                        }
                    );
                }
                self.retry.push((id, mark));
                self.last_error = Some(e);
            }
            Op::Heartbeat => {
                // Not at once again (a full disk fails at once, and the
                // loop would spin), but sooner than a normal renewal.
                self.next_heartbeat = Instant::now() + self.heartbeat_every / 3;
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

thread_local! {
    /// The writer thread's busy timeout, for [`busy_handler`].
    static BUSY_TIMEOUT: Cell<Duration> = const { Cell::new(Duration::ZERO) };
    /// When the current wait for the lock began.
    static BUSY_SINCE: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// The writer's busy handler: polls for the lock every 50 µs, doubling to
/// 1 ms, until the busy timeout. SQLite's own handler sleeps 1, 2, 5, 10,
/// ... 100 ms between tries; against connections that commit back to back
/// (a program's jobs writing their effects to the same database) it loses
/// the lock nearly every time, and the journal's marks fell hundreds of
/// jobs behind. The writer commits everything waiting in one go, so
/// letting it in promptly costs the others one short wait per batch.
///
/// It runs on the writer thread only (the connection never leaves it),
/// which is why thread-locals can carry its state.
fn busy_handler(tries: i32) -> bool {
    let now = Instant::now();
    if tries == 0 {
        BUSY_SINCE.with(|since| since.set(Some(now)));
    }
    let since = BUSY_SINCE.with(Cell::get).unwrap_or(now);
    if now.duration_since(since) >= BUSY_TIMEOUT.with(Cell::get) {
        return false;
    }
    let pause = Duration::from_micros(50u64 << tries.clamp(0, 5)).min(Duration::from_millis(1));
    std::thread::sleep(pause);
    true
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
pub(super) struct StoreMessage(pub(super) String);

impl fmt::Display for StoreMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StoreMessage {}

/// SQLite's result codes to the journal's error kinds.
pub(super) fn map_err(e: rusqlite::Error) -> JournalError {
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
pub(super) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 4))
}
