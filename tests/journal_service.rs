//! `signal_service --journal PATH` as a child process: seed 001 with the
//! SQLite journal as its job repository. After Ctrl-C every job's row holds
//! its final state; after a second Ctrl-C the interrupted and never-started
//! jobs are QUEUED for the next start; after `kill -9` the next start lists
//! and runs every job the dead process left (issue 17).
#![cfg(all(unix, feature = "journal", feature = "signal"))]

#[path = "common/mod.rs"]
mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::child::{Run, example_binary};

/// The bound on one child's life.
const CHILD_DEADLINE: Duration = Duration::from_secs(60);

/// The database file, removed (with `-wal` and `-shm`) on drop.
struct TempDb(PathBuf);

impl TempDb {
    fn new(name: &str) -> TempDb {
        let db = TempDb(std::env::temp_dir().join(format!(
            "drainpool-service-test-{}-{name}.db",
            std::process::id()
        )));
        db.remove();
        db
    }

    fn remove(&self) {
        for suffix in ["", "-wal", "-shm"] {
            let mut path = self.0.clone().into_os_string();
            path.push(suffix);
            let _ = std::fs::remove_file(path);
        }
    }

    /// Ids of the rows in `state`, read with a plain connection.
    fn rows(&self, states: &[&str]) -> BTreeSet<i64> {
        let conn = rusqlite::Connection::open(&self.0).unwrap();
        let mut stmt = conn
            .prepare("SELECT id, state FROM drainpool_jobs")
            .unwrap();
        stmt.query_map([], |row| {
            Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?))
        })
        .unwrap()
        .map(Result::unwrap)
        .filter(|(_, state)| states.contains(&state.as_str()))
        .map(|(id, _)| id)
        .collect()
    }
}

impl Drop for TempDb {
    fn drop(&mut self) {
        self.remove();
    }
}

fn start(db: &Path, args: &[&str]) -> Run {
    let mut all = vec!["--journal".to_owned(), db.display().to_string()];
    all.extend(args.iter().map(|a| a.to_string()));
    Run::start(
        &example_binary("signal_service", "journal"),
        &all,
        CHILD_DEADLINE,
    )
}

/// Ends the run and checks what every clean ending shows: exit 0, `exit:
/// clean`, no row left STARTED. Returns the `journal final:` counts.
fn finish_clean(run: &mut Run) -> std::collections::BTreeMap<String, usize> {
    let status = run.finish();
    let transcript = run.transcript();
    assert!(status.success(), "exit {status}:\n{transcript}");
    assert!(
        run.stdout.iter().any(|l| l == "exit: clean"),
        "no `exit: clean`:\n{transcript}"
    );
    let finals: std::collections::BTreeMap<String, usize> = run
        .stdout
        .iter()
        .find_map(|l| l.strip_prefix("journal final: "))
        .unwrap_or_else(|| panic!("no `journal final:`:\n{transcript}"))
        .split_whitespace()
        .map(|pair| {
            let (state, n) = pair.split_once('=').unwrap();
            (state.to_owned(), n.parse().unwrap())
        })
        .collect();
    assert_eq!(finals["STARTED"], 0, "rows left STARTED:\n{transcript}");
    finals
}

/// Lines `main: job-N QUEUED`: the jobs this run submitted.
fn submitted(run: &Run) -> usize {
    run.stdout
        .iter()
        .filter(|l| l.starts_with("main: job-") && l.ends_with(" QUEUED"))
        .count()
}

#[test]
fn ctrl_c_drains_and_every_row_ends_completed() {
    let db = TempDb::new("ctrl-c");
    let mut run = start(&db.0, &["--auto-trigger-ms", "20000", "--job-ms", "200"]);
    run.expect("job 2 running", |l| l == "job-2 (attempt 1): STARTED");
    run.signal("INT");
    let finals = finish_clean(&mut run);
    let transcript = run.transcript();
    assert_eq!(finals["QUEUED"], 0, "{transcript}");
    assert_eq!(finals["COMPLETED"], submitted(&run), "{transcript}");
    assert_eq!(db.rows(&["completed"]).len(), submitted(&run));
    // The journal was flushed after the pool terminated.
    let flush = run
        .stdout
        .iter()
        .position(|l| l.starts_with("step: flush journal"))
        .expect("the flush step");
    assert!(run.stdout[flush].contains("pool terminated before: true, flushed: ok"));
}

#[test]
fn two_ctrl_cs_leave_interrupted_and_never_started_jobs_queued() {
    let db = TempDb::new("two-ctrl-c");
    let mut run = start(
        &db.0,
        &[
            "--auto-trigger-ms",
            "20000",
            "--job-ms",
            "2000",
            "--drain-ms",
            "20000",
            "--interrupt-ms",
            "5000",
        ],
    );
    run.expect("job 2 running", |l| l == "job-2 (attempt 1): STARTED");
    run.expect("a backlog", |l| l == "main: job-5 QUEUED");
    run.signal("INT");
    run.expect("the intake step", |l| l.starts_with("step: stop intake"));
    run.signal("INT");
    let finals = finish_clean(&mut run);
    let transcript = run.transcript();
    let interrupted = run
        .stdout
        .iter()
        .filter(|l| l.ends_with(": interrupted, QUEUED again"))
        .count();
    let never_started = run
        .stdout
        .iter()
        .find_map(|l| l.strip_prefix("report never_started (QUEUED for the next start): "))
        .map_or(0, |jobs| jobs.split_whitespace().count());
    assert!(interrupted >= 1, "nothing was interrupted:\n{transcript}");
    assert!(
        never_started >= 1,
        "nothing was left unstarted:\n{transcript}"
    );
    assert_eq!(
        finals["QUEUED"],
        interrupted + never_started,
        "{transcript}"
    );
    assert_eq!(
        finals["QUEUED"] + finals["COMPLETED"],
        submitted(&run),
        "{transcript}"
    );
}

#[test]
fn after_kill_9_the_next_start_runs_every_job_the_dead_process_left() {
    let db = TempDb::new("kill-9");
    let mut first = start(
        &db.0,
        &[
            "--auto-trigger-ms",
            "0",
            "--job-ms",
            "1000",
            "--lease-ms",
            "500",
        ],
    );
    first.expect("job 2 running", |l| l == "job-2 (attempt 1): STARTED");
    first.expect("a backlog", |l| l == "main: job-4 QUEUED");
    first.kill();
    first.finish();
    let left = db.rows(&["queued", "started"]);
    assert!(left.len() >= 2, "{left:?}:\n{}", first.transcript());

    let mut second = start(
        &db.0,
        &[
            "--auto-trigger-ms",
            "1500",
            "--job-ms",
            "200",
            "--lease-ms",
            "500",
        ],
    );
    let finals = finish_clean(&mut second);
    let transcript = second.transcript();
    let recovered: BTreeSet<i64> = second
        .stdout
        .iter()
        .filter_map(|l| l.strip_prefix("recovered: job-"))
        .filter_map(|rest| rest.split_whitespace().next()?.parse().ok())
        .collect();
    assert_eq!(recovered, left, "every job left was listed:\n{transcript}");
    for id in &left {
        assert!(
            second
                .stdout
                .iter()
                .any(|l| l.starts_with(&format!("job-{id} (attempt ")) && l.ends_with("COMPLETED")),
            "job-{id} was not run to its end:\n{transcript}"
        );
    }
    assert_eq!(finals["QUEUED"], 0, "{transcript}");
    assert!(db.rows(&["queued", "started"]).is_empty());
}
