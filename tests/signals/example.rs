//! The `signal_service` example as a child process: sent SIGINT / SIGTERM
//! with `kill` once, twice or three times, it drains, interrupts or exits
//! at once, and closes its database last.

use std::collections::{BTreeMap, BTreeSet};
use std::mem;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use crate::CHILD_DEADLINE;
use crate::common::child::{Run, example_binary};

/// How soon "at once" is, for a child told to exit or interrupt.
const PROMPTLY: Duration = Duration::from_secs(5);

/// Starts `signal_service` (built once, with this test's profile) with
/// `args`; every wait on it is bounded by [`CHILD_DEADLINE`].
fn start(args: &[&str]) -> Run {
    let args: Vec<String> = args.iter().map(|&arg| arg.to_owned()).collect();
    Run::start(&example_binary("signal_service", ""), &args, CHILD_DEADLINE)
}

/// How a `signal_service` run ended.
struct Ended {
    status: ExitStatus,
    /// From the moment `finish` was called.
    took: Duration,
    stdout: Vec<String>,
    stderr: Vec<String>,
    transcript: String,
}

/// Waits for the child to exit (bounded) and returns how it ended.
fn finish(mut service: Run) -> Ended {
    let from = Instant::now();
    let status = service.finish();
    Ended {
        status,
        took: from.elapsed(),
        transcript: service.transcript(),
        stdout: mem::take(&mut service.stdout),
        stderr: mem::take(&mut service.stderr),
    }
}

impl Ended {
    fn fail(&self, why: &str) -> ! {
        panic!(
            "{why}; status {}\n--- transcript ---\n{}",
            self.status, self.transcript
        )
    }

    fn check(&self, ok: bool, why: &str) {
        if !ok {
            self.fail(why);
        }
    }

    /// Index of the first stdout line starting with `prefix`.
    fn position(&self, prefix: &str) -> usize {
        match self.stdout.iter().position(|l| l.starts_with(prefix)) {
            Some(i) => i,
            None => self.fail(&format!("no line starting with {prefix:?}")),
        }
    }

    fn line(&self, prefix: &str) -> &str {
        &self.stdout[self.position(prefix)][prefix.len()..]
    }

    /// The `final: STATE=n ...` counts.
    fn finals(&self) -> BTreeMap<String, usize> {
        self.line("final:")
            .split_whitespace()
            .map(|pair| {
                let (state, n) = pair.split_once('=').expect("STATE=n");
                (state.to_owned(), n.parse().expect("a count"))
            })
            .collect()
    }

    /// Job names on a `prefix: job-1 job-2` line.
    fn jobs(&self, prefix: &str) -> BTreeSet<String> {
        self.line(prefix)
            .split_whitespace()
            .map(str::to_owned)
            .collect()
    }

    /// `accepted=n` from the main loop's last line.
    fn accepted(&self) -> usize {
        let line = self.line("main: intake stopped;");
        let n = line
            .split_whitespace()
            .find_map(|w| w.strip_prefix("accepted="))
            .and_then(|n| n.parse().ok());
        match n {
            Some(n) => n,
            None => self.fail("no accepted=n"),
        }
    }

    /// The checks every clean ending passes: exit 0, every job in a final
    /// state, no write refused, the database closed after the pool
    /// terminated, the report and the database agree on what never started.
    fn check_clean(&self) -> BTreeMap<String, usize> {
        self.check(self.status.success(), "the example did not exit 0");
        self.check(
            self.stdout.iter().any(|l| l == "exit: clean"),
            "no `exit: clean`",
        );
        let finals = self.finals();
        for state in ["STARTED", "QUEUED"] {
            self.check(finals[state] == 0, &format!("jobs left {state}"));
        }
        self.check(
            self.line("refused writes after close:").trim() == "0",
            "writes were refused after the database closed",
        );
        // Order: the pool terminated, then the database closed.
        let terminated = self.position("pool jobs: terminated");
        let closed = self.position("step: close database");
        self.check(
            terminated < closed,
            "the database closed before the pool terminated",
        );
        let close_line = &self.stdout[closed];
        self.check(
            close_line.contains("pool terminated before: true")
                && close_line.contains("STARTED at close: 0"),
            "jobs were still running when the database closed",
        );
        // Steps in the order they were registered.
        let intake = self.position("step: stop intake");
        let reports: Vec<usize> = [
            "report: stop intake:",
            "report: jobs:",
            "report: close database:",
        ]
        .iter()
        .map(|p| self.position(p))
        .collect();
        self.check(
            intake < terminated && reports.windows(2).all(|w| w[0] < w[1]),
            "steps out of order",
        );
        self.check(
            self.jobs("report never_started:") == self.jobs("db NEVER_STARTED:"),
            "the pool's report and the database disagree on never-started jobs",
        );
        // Every job that printed STARTED printed how it ended.
        for line in &self.stdout {
            if let Some(job) = line.strip_suffix(": STARTED") {
                let ended = self.stdout.iter().any(|l| {
                    l == &format!("{job}: COMPLETED")
                        || l == &format!("{job}: interrupted, STOPPED")
                });
                self.check(ended, &format!("{job} started but never ended"));
            }
        }
        finals
    }
}

/// Runs the example, waits until both workers run a job, sends one signal.
fn one_signal(signal: &str) {
    let mut service = start(&["--auto-trigger-ms", "20000", "--job-ms", "200"]);
    service.expect("ready", |l| l.starts_with("ready"));
    service.expect("job-2 running", |l| l == "job-2: STARTED");
    service.signal(signal);
    let ended = finish(service);
    let finals = ended.check_clean();
    // Only one signal: the drain ran every accepted job to its end.
    ended.check(
        finals["STOPPED"] == 0 && finals["NEVER_STARTED"] == 0,
        "one signal interrupted or dropped jobs",
    );
    ended.check(
        finals["COMPLETED"] == ended.accepted() && finals["COMPLETED"] >= 2,
        "not every accepted job completed",
    );
    ended.check(
        ended
            .stderr
            .iter()
            .any(|l| l.contains(&format!("SIG{signal}"))),
        "the signal was not logged",
    );
}

#[test]
fn child_one_sigint_drains_every_job_and_closes_the_database_last() {
    one_signal("INT");
}

#[test]
fn child_one_sigterm_drains_every_job_and_closes_the_database_last() {
    one_signal("TERM");
}

#[test]
fn child_two_sigints_interrupt_running_jobs_and_list_never_started_ones() {
    // Jobs of about 2 s and a 20 s drain: the drain is surely under way
    // when the second signal comes, and a clean ending well before 20 s
    // shows that the signal, not the drain budget, ended it.
    let mut service = start(&[
        "--auto-trigger-ms",
        "20000",
        "--job-ms",
        "2000",
        "--drain-ms",
        "20000",
        "--interrupt-ms",
        "5000",
    ]);
    service.expect("ready", |l| l.starts_with("ready"));
    service.expect("job-2 running", |l| l == "job-2: STARTED");
    service.expect("a full backlog", |l| l.starts_with("main: backlog full"));
    service.signal("INT");
    // The listener has handled the first signal (so the second cannot merge
    // with it) and the pool's drain comes next.
    service.expect("the intake step", |l| l.starts_with("step: stop intake"));
    service.signal("INT");
    let ended = finish(service);
    let finals = ended.check_clean();
    ended.check(
        ended.took < PROMPTLY,
        "the second signal did not cut the drain short",
    );
    let stopped = ended
        .stdout
        .iter()
        .filter(|l| l.ends_with(": interrupted, STOPPED"))
        .count();
    ended.check(
        finals["STOPPED"] >= 1 && finals["STOPPED"] == stopped,
        "running jobs were not interrupted (STOPPED)",
    );
    ended.check(
        finals["NEVER_STARTED"] >= 1
            && ended.jobs("report never_started:").len() == finals["NEVER_STARTED"],
        "queued jobs were not listed as never started",
    );
    ended.check(
        finals["COMPLETED"] + finals["STOPPED"] + finals["NEVER_STARTED"] == ended.accepted(),
        "an accepted job is unaccounted for",
    );
}

/// Three signals: exit at once with 128 + signo, naming the stuck job.
fn three_signals(signal: &str, status: i32) {
    // Job 1 ignores stop requests for 20 s, so only the third signal can
    // end the process early.
    let mut service = start(&[
        "--auto-trigger-ms",
        "20000",
        "--job-ms",
        "2000",
        "--stubborn-ms",
        "20000",
        "--drain-ms",
        "20000",
        "--interrupt-ms",
        "20000",
    ]);
    service.expect("ready", |l| l.starts_with("ready"));
    service.expect("job-1 running", |l| l.starts_with("job-1: STARTED"));
    service.expect("job-2 running", |l| l == "job-2: STARTED");
    service.signal(signal);
    service.expect("the intake step", |l| l.starts_with("step: stop intake"));
    service.signal(signal);
    // Proof that the second signal was handled: a running job stops.
    service.expect("an interrupted job", |l| {
        l.ends_with(": interrupted, STOPPED")
    });
    service.signal(signal);
    let ended = finish(service);
    ended.check(
        ended.status.code() == Some(status),
        &format!("expected exit status {status}"),
    );
    ended.check(
        ended.took < PROMPTLY,
        "the third signal did not exit at once",
    );
    ended.check(
        !ended.stdout.iter().any(|l| l.starts_with("final:")),
        "the sequence ran to its end instead of exiting",
    );
    ended.check(
        ended.stderr.iter().any(|l| l.contains("job-1")),
        "the still-running job was not logged before exiting",
    );
}

#[test]
fn child_three_sigints_exit_130_at_once() {
    three_signals("INT", 130);
}

#[test]
fn child_three_sigterms_exit_143_at_once() {
    three_signals("TERM", 143);
}

#[test]
fn child_without_arguments_triggers_itself_and_exits_0() {
    let ended = finish(start(&[]));
    let finals = ended.check_clean();
    ended.check(
        ended
            .stdout
            .iter()
            .any(|l| l.starts_with("main: no signal after")),
        "it did not trigger itself",
    );
    ended.check(finals["COMPLETED"] >= 1, "no job completed");
}

#[test]
fn child_self_signal_twice_demo_exits_0() {
    let ended = finish(start(&["--self-signal", "2", "--job-ms", "1000"]));
    let finals = ended.check_clean();
    ended.check(
        finals["STOPPED"] >= 1,
        "the second signal interrupted nothing",
    );
}
