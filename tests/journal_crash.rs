//! The `durable_jobs` example as a child process, killed with SIGKILL at
//! random moments and aborting itself with `--crash-after`, ten times over
//! one database; then a last run finishes it: every job done exactly as
//! recorded, its result written, none lost, none left started (issue 17).
//!
//! The kill moments come from a seed printed at the start; set
//! `DRAINPOOL_CRASH_SEED` to replay one. Every child is bounded by
//! [`CHILD_DEADLINE`] and killed if its test fails.
#![cfg(all(unix, feature = "journal"))]

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// The bound on one child's life.
const CHILD_DEADLINE: Duration = Duration::from_secs(120);
/// Jobs per database.
const JOBS: u64 = 2000;

/// Builds `examples/durable_jobs` once, with this test's profile and the
/// feature `journal`, and returns the path cargo reports for it (as
/// `tests/signals/example.rs` does for `signal_service`).
fn example_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        let mut cargo = Command::new(env!("CARGO"));
        cargo
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .args([
                "build",
                "--example",
                "durable_jobs",
                "--features",
                "journal",
                "--message-format=json",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if !cfg!(debug_assertions) {
            cargo.arg("--release");
        }
        let child = cargo.spawn().expect("cargo starts");
        // Bounded: a cargo waiting forever on a lock must not hang the run.
        let (status, stdout, stderr) = bounded_output(child, Duration::from_secs(600));
        let stdout = String::from_utf8_lossy(&stdout);
        let executable = stdout
            .lines()
            .filter(|line| {
                line.contains(r#""reason":"compiler-artifact""#)
                    && line.contains(r#""name":"durable_jobs""#)
            })
            .find_map(|line| {
                let (_, rest) = line.split_once(r#""executable":""#)?;
                rest.split_once('"').map(|(path, _)| PathBuf::from(path))
            });
        match executable {
            Some(path) if status.success() => path,
            _ => panic!(
                "cargo build --example durable_jobs failed ({status}):\n{}",
                String::from_utf8_lossy(&stderr)
            ),
        }
    })
}

/// Waits at most `limit` for `child` to exit; returns its status, stdout,
/// stderr. Used for cargo.
fn bounded_output(mut child: Child, limit: Duration) -> (ExitStatus, Vec<u8>, Vec<u8>) {
    let pipe = |r: Option<Box<dyn Read + Send>>| {
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut r) = r {
                let _ = r.read_to_end(&mut bytes);
            }
            let _ = tx.send(bytes);
        });
        rx
    };
    let out = pipe(
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    );
    let err = pipe(
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    );
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the child did not exit within {limit:?}");
        }
        thread::sleep(Duration::from_millis(5));
    };
    let left = deadline.saturating_duration_since(Instant::now()) + Duration::from_secs(5);
    (
        status,
        out.recv_timeout(left).unwrap_or_default(),
        err.recv_timeout(left).unwrap_or_default(),
    )
}

/// A line from the child, or the end of one of its streams.
enum Event {
    Out(String),
    Err(String),
    Eof,
}

/// A running `durable_jobs`, read line by line; killed on drop.
struct Run {
    child: Child,
    events: mpsc::Receiver<Event>,
    open_streams: usize,
    deadline: Instant,
    stdout: Vec<String>,
    stderr: Vec<String>,
}

impl Run {
    fn start(db: &Path, extra: &[String]) -> Run {
        let mut child = Command::new(example_binary())
            .arg("--db")
            .arg(db)
            .args(["--jobs", &JOBS.to_string()])
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("durable_jobs starts");
        let (tx, events) = mpsc::channel();
        let lines = |r: Box<dyn Read + Send>, wrap: fn(String) -> Event| {
            let tx = tx.clone();
            thread::spawn(move || {
                for line in BufReader::new(r).lines().map_while(Result::ok) {
                    let _ = tx.send(wrap(line));
                }
                let _ = tx.send(Event::Eof);
            });
        };
        lines(Box::new(child.stdout.take().unwrap()), Event::Out);
        lines(Box::new(child.stderr.take().unwrap()), Event::Err);
        Run {
            child,
            events,
            open_streams: 2,
            deadline: Instant::now() + CHILD_DEADLINE,
            stdout: Vec::new(),
            stderr: Vec::new(),
        }
    }

    /// The next event; fails the test at the child's deadline.
    fn next(&mut self) -> Event {
        let left = self.deadline.saturating_duration_since(Instant::now());
        match self.events.recv_timeout(left) {
            Ok(Event::Out(line)) => {
                self.stdout.push(line.clone());
                Event::Out(line)
            }
            Ok(Event::Err(line)) => {
                self.stderr.push(line.clone());
                Event::Err(line)
            }
            Ok(Event::Eof) => {
                self.open_streams -= 1;
                Event::Eof
            }
            Err(_) => panic!(
                "durable_jobs did not finish within {CHILD_DEADLINE:?}:\n{}",
                self.transcript()
            ),
        }
    }

    /// Waits for a stdout line `wanted` accepts; false if the child ended
    /// first.
    fn wait_for(&mut self, wanted: impl Fn(&str) -> bool) -> bool {
        while self.open_streams > 0 {
            if let Event::Out(line) = self.next() {
                if wanted(&line) {
                    return true;
                }
            }
        }
        false
    }

    /// SIGKILL (a child that already exited is left as it is).
    fn kill(&mut self) {
        let _ = self.child.kill();
    }

    /// Waits for the child to exit; its status.
    fn finish(&mut self) -> ExitStatus {
        while self.open_streams > 0 {
            self.next();
        }
        self.child.wait().expect("wait for durable_jobs")
    }

    fn transcript(&self) -> String {
        let mut all = self.stdout.join("\n");
        if !self.stderr.is_empty() {
            all.push_str("\nstderr:\n");
            all.push_str(&self.stderr.join("\n"));
        }
        all
    }

    /// `done=` on the `start:` line: the jobs recorded completed so far.
    fn done_at_start(&self) -> u64 {
        self.stdout
            .iter()
            .find(|l| l.starts_with("start:"))
            .and_then(|l| l.split_whitespace().find_map(|w| w.strip_prefix("done=")))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A small xorshift generator: the kill moments, replayable from a seed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// The database file, removed (with `-wal` and `-shm`) on drop.
struct TempDb(PathBuf);

impl Drop for TempDb {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm"] {
            let mut path = self.0.clone().into_os_string();
            path.push(suffix);
            let _ = std::fs::remove_file(path);
        }
    }
}

#[test]
fn killed_ten_times_then_finished_loses_no_job() {
    let seed = std::env::var("DRAINPOOL_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    println!("DRAINPOOL_CRASH_SEED={seed}");
    let mut rng = Rng(seed);
    let db = TempDb(std::env::temp_dir().join(format!(
        "drainpool-crash-test-{}-{seed}.db",
        std::process::id()
    )));
    drop(TempDb(db.0.clone())); // a fresh file
    example_binary();

    let mut transcript = Vec::new();
    let mut interrupted = 0;
    for round in 1..=10 {
        let mut run;
        let how = match round % 3 {
            // Abort itself after a random number of jobs: few enough that
            // a run surely gets there (it reruns at least every job left).
            0 => {
                let k = 1 + rng.below(100);
                run = Run::start(&db.0, &["--crash-after".into(), k.to_string()]);
                format!("--crash-after {k}")
            }
            // SIGKILL at a random moment of the first 40 ms: start-up,
            // recovery, the wait for the dead run's lease, seeding.
            1 => {
                run = Run::start(&db.0, &[]);
                let after = Duration::from_millis(rng.below(40));
                thread::sleep(after); // the random moment (not a synchronisation)
                run.kill();
                format!("SIGKILL after {after:?}")
            }
            // SIGKILL once a random number of jobs ran in this run, at most
            // a third of those left, so that later rounds have work too.
            _ => {
                run = Run::start(&db.0, &[]);
                assert!(
                    run.wait_for(|l| l.starts_with("start:")),
                    "{}",
                    run.transcript()
                );
                let left = JOBS.saturating_sub(run.done_at_start());
                let target = 50 * (1 + rng.below((left / 150).max(1)));
                let reached = run.wait_for(|l| {
                    l.strip_prefix("progress: done=")
                        .and_then(|n| n.parse::<u64>().ok())
                        .is_some_and(|n| n >= target)
                });
                run.kill();
                format!("SIGKILL after {target} jobs (reached: {reached})")
            }
        };
        let status = run.finish();
        if !status.success() {
            interrupted += 1;
        }
        transcript.push(format!(
            "--- round {round}: {how}: {status}\n{}",
            run.transcript()
        ));
        assert!(
            !run.stderr.iter().any(|l| l.contains("panicked")),
            "a run panicked (seed {seed}):\n{}",
            transcript.join("\n")
        );
    }
    // Most rounds must really have been cut short, or the test proves little.
    assert!(
        interrupted >= 8,
        "only {interrupted} of 10 runs were interrupted (seed {seed}):\n{}",
        transcript.join("\n")
    );

    let mut run = Run::start(&db.0, &[]);
    let status = run.finish();
    transcript.push(format!("--- last run: {status}\n{}", run.transcript()));
    let last = run.stdout.last().cloned().unwrap_or_default();
    let expected = format!("jobs: total={JOBS} done={JOBS} started=0 queued=0 results={JOBS}");
    assert!(
        status.success() && last == expected,
        "the last run ended {status} with {last:?}, not {expected:?} (seed {seed}):\n{}",
        transcript.join("\n")
    );

    // Shown with --nocapture: what each round did.
    println!("{}", transcript.join("\n"));

    // The database agrees: one row per job, each completed, each result there.
    let conn = rusqlite::Connection::open(&db.0).unwrap();
    let rows: (i64, i64, i64) = conn
        .query_row(
            "SELECT COUNT(*), COUNT(DISTINCT payload), SUM(state = 'completed') FROM drainpool_jobs",
            [],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
        )
        .unwrap();
    assert_eq!(rows, (JOBS as i64, JOBS as i64, JOBS as i64), "seed {seed}");
    let results: (i64, i64, i64) = conn
        .query_row(
            "SELECT COUNT(*), MIN(job), MAX(job) FROM results",
            [],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
        )
        .unwrap();
    assert_eq!(results, (JOBS as i64, 1, JOBS as i64), "seed {seed}");
}
