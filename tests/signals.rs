//! Signals and ordered shutdown (issue 4): `ShutdownHandle` driven from real
//! signal handlers, and the `on_signals` installer's ordered, escalating
//! shutdown.
//!
//! Two kinds of tests, both safe for process-wide signal state:
//!
//! - **Child-process tests** run `examples/signal_service` (built once with
//!   the same profile as this test), send it SIGINT / SIGTERM with `kill`,
//!   and judge it by its output and exit status. Every wait is bounded by
//!   [`CHILD_DEADLINE`]; a child still alive then is killed and the test
//!   fails with the child's transcript. A child is also killed if its test
//!   panics.
//! - **In-process tests** register handlers for SIGUSR1 / SIGUSR2 and raise
//!   them in this process; they hold [`SERIAL`] so that no two touch signal
//!   handlers at once, and bound every wait by [`WAIT`]. One test that must
//!   raise a signal with no installer left re-runs this test binary as a
//!   child, so that a wrong outcome cannot take the whole test run down.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use common::{WAIT, bump, named_pool, spawn};
use drainpool::signal::{StepContext, StepOutcome, StepReport, on_signals};
use drainpool::{
    PendingTask, PoolState, ShutdownPolicy, StopToken, TaskHandle, TaskId, ThreadPool,
};
use signal_hook::consts::{SIGUSR1, SIGUSR2};
use signal_hook::low_level::{raise, register, unregister};
/// The bound on a child process's whole life.
const CHILD_DEADLINE: Duration = Duration::from_secs(25);
/// How soon "at once" is, for a child told to exit or interrupt.
const PROMPTLY: Duration = Duration::from_secs(5);

/// Held by every in-process test that touches signal handlers.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Polls `condition` until it holds, for at most [`WAIT`]. Only for states
/// nothing notifies about (a pool's state seen from outside, /proc).
fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !condition() {
        assert!(Instant::now() < deadline, "{what}: not within {WAIT:?}");
        thread::sleep(Duration::from_millis(1));
    }
}

// ---------------------------------------------------------------------------
// The example as a child process
// ---------------------------------------------------------------------------

/// Builds `examples/signal_service` once, with this test's profile, and
/// returns the path cargo reports for it (whatever the target directory).
fn example_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        let mut cargo = Command::new(env!("CARGO"));
        cargo
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .args([
                "build",
                "--example",
                "signal_service",
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
        let output = bounded_output(child, Duration::from_secs(300));
        let stdout = String::from_utf8_lossy(&output.1);
        let executable = stdout
            .lines()
            .filter(|line| {
                line.contains(r#""reason":"compiler-artifact""#)
                    && line.contains(r#""name":"signal_service""#)
            })
            .find_map(|line| {
                let (_, rest) = line.split_once(r#""executable":""#)?;
                rest.split_once('"').map(|(path, _)| PathBuf::from(path))
            });
        match executable {
            Some(path) if output.0.success() => path,
            _ => panic!(
                "cargo build --example signal_service failed ({}):\n{}",
                output.0,
                String::from_utf8_lossy(&output.2)
            ),
        }
    })
}

/// Waits at most `limit` for `child` to exit; returns its status, stdout,
/// stderr.
fn bounded_output(mut child: Child, limit: Duration) -> (ExitStatus, Vec<u8>, Vec<u8>) {
    let pipe = |mut r: Box<dyn std::io::Read + Send>| {
        thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = r.read_to_end(&mut buf);
            buf
        })
    };
    let out = pipe(Box::new(child.stdout.take().unwrap()));
    let err = pipe(Box::new(child.stderr.take().unwrap()));
    let (tx, rx) = mpsc::channel();
    let id = child.id();
    let waiter = thread::spawn(move || {
        let status = child.wait();
        let _ = tx.send(());
        status
    });
    if rx.recv_timeout(limit).is_err() {
        let _ = Command::new("kill")
            .args(["-KILL", &id.to_string()])
            .status();
        panic!("process {id} did not finish within {limit:?}; killed");
    }
    let status = waiter.join().unwrap().unwrap();
    (status, out.join().unwrap(), err.join().unwrap())
}

/// A line from the child, or the end of one of its output streams.
enum Event {
    Out(String),
    Err(String),
    Eof,
}

/// A running `signal_service`, read line by line, killed on drop.
struct Service {
    child: Child,
    events: Receiver<Event>,
    open_streams: usize,
    started: Instant,
    /// Every line so far, `out| ` or `err| ` first, for failure messages.
    transcript: Vec<String>,
    /// The stdout lines so far.
    stdout: Vec<String>,
    /// The stderr lines so far.
    stderr: Vec<String>,
}

/// How a `Service` ended.
struct Ended {
    status: ExitStatus,
    /// From the moment `finish` was called.
    took: Duration,
    stdout: Vec<String>,
    stderr: Vec<String>,
    transcript: String,
}

impl Service {
    fn start(args: &[&str]) -> Service {
        let mut child = Command::new(example_binary())
            .args(args)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("signal_service starts");
        let (tx, events) = mpsc::channel();
        let out = BufReader::new(child.stdout.take().unwrap());
        let err = BufReader::new(child.stderr.take().unwrap());
        let tx2 = tx.clone();
        thread::spawn(move || {
            for line in out.lines().map_while(Result::ok) {
                let _ = tx.send(Event::Out(line));
            }
            let _ = tx.send(Event::Eof);
        });
        thread::spawn(move || {
            for line in err.lines().map_while(Result::ok) {
                let _ = tx2.send(Event::Err(line));
            }
            let _ = tx2.send(Event::Eof);
        });
        Service {
            child,
            events,
            open_streams: 2,
            started: Instant::now(),
            transcript: Vec::new(),
            stdout: Vec::new(),
            stderr: Vec::new(),
        }
    }

    /// Kills the child and fails the test, showing what it printed.
    fn fail(&mut self, why: &str) -> ! {
        let _ = self.child.kill();
        let _ = self.child.wait();
        panic!(
            "{why} (after {:.1?})\n--- transcript ---\n{}",
            self.started.elapsed(),
            self.transcript.join("\n")
        );
    }

    /// The next event, or `None` at the child's deadline.
    fn next_event(&mut self) -> Option<Event> {
        let left = CHILD_DEADLINE.checked_sub(self.started.elapsed())?;
        let event = self.events.recv_timeout(left).ok()?;
        match &event {
            Event::Out(line) => {
                self.transcript.push(format!("out| {line}"));
                self.stdout.push(line.clone());
            }
            Event::Err(line) => {
                self.transcript.push(format!("err| {line}"));
                self.stderr.push(line.clone());
            }
            Event::Eof => self.open_streams -= 1,
        }
        Some(event)
    }

    /// Waits for a stdout line matching `matches`; returns it.
    fn expect(&mut self, what: &str, matches: impl Fn(&str) -> bool) -> String {
        if let Some(line) = self.stdout.iter().find(|l| matches(l)) {
            return line.clone();
        }
        loop {
            match self.next_event() {
                Some(Event::Out(line)) if matches(&line) => return line,
                Some(_) if self.open_streams > 0 => {}
                Some(_) => self.fail(&format!("the child exited before printing {what}")),
                None => self.fail(&format!("no {what} within {CHILD_DEADLINE:?}")),
            }
        }
    }

    /// Sends `signal` ("INT", "TERM") with `kill`.
    fn signal(&mut self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("kill runs");
        if !status.success() {
            self.fail(&format!("kill -{signal} failed: {status}"));
        }
    }

    /// Waits for the child to exit (bounded) and returns how it ended.
    fn finish(&mut self) -> Ended {
        let from = Instant::now();
        while self.open_streams > 0 {
            if self.next_event().is_none() {
                self.fail(&format!("the child did not exit within {CHILD_DEADLINE:?}"));
            }
        }
        let took = from.elapsed();
        // Both streams are closed: the child has exited or is exiting.
        let status = self.child.wait().expect("wait for the child");
        Ended {
            status,
            took,
            stdout: self.stdout.clone(),
            stderr: self.stderr.clone(),
            transcript: self.transcript.join("\n"),
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        // A no-op once it exited; otherwise no orphan outlives a failed test.
        let _ = self.child.kill();
        let _ = self.child.wait();
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
    let mut service = Service::start(&["--auto-trigger-ms", "20000", "--job-ms", "200"]);
    service.expect("ready", |l| l.starts_with("ready"));
    service.expect("job-2 running", |l| l == "job-2: STARTED");
    service.signal(signal);
    let ended = service.finish();
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
    let mut service = Service::start(&[
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
    let ended = service.finish();
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
    let mut service = Service::start(&[
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
    let ended = service.finish();
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
    let mut service = Service::start(&[]);
    let ended = service.finish();
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
    let mut service = Service::start(&["--self-signal", "2", "--job-ms", "1000"]);
    let ended = service.finish();
    let finals = ended.check_clean();
    ended.check(
        finals["STOPPED"] >= 1,
        "the second signal interrupted nothing",
    );
}

// ---------------------------------------------------------------------------
// ShutdownHandle from real signal handlers, in this process
// ---------------------------------------------------------------------------

/// A handler for `signal` registered with signal-hook, unregistered on drop.
struct Handler(signal_hook::SigId);

impl Handler {
    /// `action` must be async-signal-safe.
    fn register(signal: i32, action: impl Fn() + Send + Sync + 'static) -> Handler {
        // SAFETY: every action these tests register only calls
        // `ShutdownHandle::request_shutdown{,_now}` (an atomic `fetch_or` and
        // a non-blocking `write(2)`, see drainpool's `signal` module docs) and
        // bumps atomics: no allocation, no lock, nothing that could deadlock
        // or be corrupted when the handler interrupts the thread.
        let id = unsafe { register(signal, action) }.expect("register a handler");
        Handler(id)
    }
}

impl Drop for Handler {
    fn drop(&mut self) {
        unregister(self.0);
    }
}

#[test]
fn handle_in_a_real_signal_handler_drains_and_terminates_the_pool() {
    let _serial = serial();
    let pool = named_pool(2, "sig-drain");
    let handle = pool.shutdown_handle();
    let _handler = Handler::register(SIGUSR1, move || handle.request_shutdown());
    let handles: Vec<TaskHandle<usize>> = (0..20)
        .map(|i| {
            pool.submit(move || {
                thread::sleep(Duration::from_millis(1));
                i
            })
            .unwrap()
        })
        .collect();
    raise(SIGUSR1).unwrap();
    assert!(pool.await_termination(WAIT), "the pool did not terminate");
    assert_eq!(pool.state(), PoolState::Terminated);
    assert!(pool.execute(|| ()).is_err(), "intake still open");
    // A drain: every accepted task ran.
    for (i, handle) in handles.into_iter().enumerate() {
        assert_eq!(handle.join().unwrap(), i);
    }
    assert_eq!(pool.stats().completed, 20);
}

#[test]
fn shutdown_now_requested_by_a_signal_hands_tasks_to_the_next_shutdown_now() {
    // Hammered: the relay takes the queue back, then stashes it. The pool
    // can terminate in between (its workers exit as soon as it is
    // `Stopping`), and the program's own `shutdown_now`, called once
    // `await_termination` says the pool is done, must still get every task,
    // once, in submission order. A long queue widens the window.
    let _serial = serial();
    for round in 0..500 {
        let pool = named_pool(1, "sig-now");
        let handle = pool.shutdown_handle();
        let _handler = Handler::register(SIGUSR1, move || handle.request_shutdown_now());
        let (started_tx, started_rx) = mpsc::channel();
        let running = pool
            .submit(move || {
                started_tx.send(()).unwrap();
                StopToken::current().sleep(WAIT).is_err()
            })
            .unwrap();
        started_rx
            .recv_timeout(WAIT)
            .expect("the first task starts");
        let queued: Vec<TaskHandle<usize>> =
            (0..1000).map(|i| pool.submit(move || i).unwrap()).collect();
        raise(SIGUSR1).unwrap();
        assert!(
            pool.await_termination(WAIT),
            "round {round}: not terminated"
        );
        assert!(
            running.join().unwrap(),
            "round {round}: running task not interrupted"
        );
        let back = pool.shutdown_now();
        let back_ids: Vec<TaskId> = back.iter().map(PendingTask::id).collect();
        let queued_ids: Vec<TaskId> = queued.iter().map(TaskHandle::id).collect();
        assert!(
            back_ids == queued_ids,
            "round {round}: the next shutdown_now returned {} of the {} tasks a \
             signal-requested shutdown_now took back{}",
            back_ids.len(),
            queued_ids.len(),
            if back_ids.is_sorted() {
                ""
            } else {
                ", out of order"
            }
        );
        assert!(pool.shutdown_now().is_empty(), "returned twice");
        // Run the first on this thread; dropping the others cancels them.
        let mut back = back.into_iter();
        back.next().unwrap().run();
        drop(back);
        for (i, handle) in queued.into_iter().enumerate() {
            match handle.join() {
                Ok(n) => assert!(i == 0 && n == 0, "round {round}: task {i} ran"),
                Err(e) => assert!(i > 0 && e.is_cancelled(), "round {round}: task {i}: {e:?}"),
            }
        }
    }
}

#[test]
fn a_handle_outlives_its_pool_harmlessly() {
    let _serial = serial();
    let pool = named_pool(1, "outl");
    let handle = pool.shutdown_handle();
    let clone = handle.clone();
    pool.execute(|| ()).unwrap();
    drop(pool);
    // Many requests to a dead pool: the socket buffer fills up; every
    // request still returns at once, and nothing panics.
    spawn(move || {
        for _ in 0..10_000 {
            clone.request_shutdown();
            clone.request_shutdown_now();
        }
    })
    .join("requests to a dropped pool");
    handle.request_shutdown();
    drop(handle);
    // The relay thread has gone too.
    #[cfg(target_os = "linux")]
    eventually("the relay thread exits", || {
        !std::fs::read_dir("/proc/self/task").unwrap().any(|task| {
            let comm = task.unwrap().path().join("comm");
            std::fs::read_to_string(comm).is_ok_and(|name| name.trim() == "outl-relay")
        })
    });
}

#[test]
fn a_burst_of_100_signals_terminates_the_pool_once_and_loses_nothing() {
    let _serial = serial();
    let terminations = Arc::new(AtomicUsize::new(0));
    let pool = ThreadPool::builder()
        .threads(2)
        .thread_name("burst")
        .on_terminated({
            let terminations = terminations.clone();
            move || {
                terminations.fetch_add(1, Ordering::SeqCst);
            }
        })
        .build()
        .unwrap();
    let ran = Arc::new(AtomicUsize::new(0));
    let handles: Vec<TaskHandle<()>> = (0..200).map(|_| pool.submit(bump(&ran)).unwrap()).collect();
    let delivered = Arc::new(AtomicUsize::new(0));
    let handle = pool.shutdown_handle();
    let _handler = Handler::register(SIGUSR1, {
        let delivered = delivered.clone();
        move || {
            delivered.fetch_add(1, Ordering::SeqCst);
            handle.request_shutdown();
        }
    });
    for _ in 0..100 {
        raise(SIGUSR1).unwrap();
    }
    // `raise` runs the handler on this thread before it returns.
    assert_eq!(delivered.load(Ordering::SeqCst), 100);
    assert!(pool.await_termination(WAIT), "the pool did not terminate");
    assert_eq!(
        terminations.load(Ordering::SeqCst),
        1,
        "terminated more than once"
    );
    for handle in handles {
        handle.join().expect("a drained task completes");
    }
    assert_eq!(ran.load(Ordering::SeqCst), 200, "a task ran twice or never");
    assert_eq!(pool.stats().completed, 200);
    assert!(pool.shutdown_now().is_empty());
}

#[test]
fn a_burst_of_mixed_requests_accounts_for_every_task_once() {
    let _serial = serial();
    let pool = named_pool(2, "mixed");
    let ran = Arc::new(AtomicUsize::new(0));
    let handles: Vec<TaskHandle<()>> = (0..500).map(|_| pool.submit(bump(&ran)).unwrap()).collect();
    let handle = pool.shutdown_handle();
    let delivered = Arc::new(AtomicUsize::new(0));
    let _handler = Handler::register(SIGUSR1, {
        let delivered = delivered.clone();
        move || {
            if delivered.fetch_add(1, Ordering::SeqCst).is_multiple_of(2) {
                handle.request_shutdown();
            } else {
                handle.request_shutdown_now();
            }
        }
    });
    for _ in 0..100 {
        raise(SIGUSR1).unwrap();
    }
    assert!(pool.await_termination(WAIT), "the pool did not terminate");
    // Whatever the relay took back is either with the next shutdown_now or
    // (the race above) still in the pool; dropping the pool cancels it.
    let back = pool.shutdown_now();
    let returned = back.len();
    drop(back);
    drop(pool);
    let (mut completed, mut cancelled) = (0, 0);
    for handle in handles {
        match spawn(move || handle.join()).join("a handle resolves") {
            Ok(()) => completed += 1,
            Err(e) => {
                assert!(e.is_cancelled(), "{e:?}");
                cancelled += 1;
            }
        }
    }
    assert_eq!(completed, ran.load(Ordering::SeqCst));
    assert_eq!(completed + cancelled, 500);
    assert!(returned <= cancelled);
}

// ---------------------------------------------------------------------------
// The installer, in this process
// ---------------------------------------------------------------------------

#[test]
fn installer_without_pools_gives_a_stop_token_for_the_programs_own_loops() {
    let _serial = serial();
    let guard = on_signals([SIGUSR2]).install().unwrap();
    let token = guard.stop_token();
    assert!(!token.is_stop_requested());
    raise(SIGUSR2).unwrap();
    // Bounded: `sleep` returns Err(Interrupted) as soon as the token fires.
    assert!(token.sleep(WAIT).is_err(), "the stop token did not fire");
    assert!(guard.stop_token().is_stop_requested());
    assert!(!guard.trigger(), "already started by the signal");
    let reports = spawn(move || guard.wait()).join("guard.wait()");
    assert!(reports.is_empty());
}

#[test]
fn trigger_starts_the_sequence_without_a_signal_once() {
    let _serial = serial();
    let ran = Arc::new(AtomicUsize::new(0));
    let guard = on_signals([SIGUSR2])
        .step("count", WAIT, {
            let ran = ran.clone();
            move |_| {
                ran.fetch_add(1, Ordering::SeqCst);
            }
        })
        .install()
        .unwrap();
    assert!(
        guard.wait_timeout(Duration::from_millis(20)).is_none(),
        "started by itself"
    );
    assert!(guard.trigger());
    assert!(!guard.trigger());
    assert!(guard.stop_token().is_stop_requested());
    let reports = guard.wait_timeout(WAIT).expect("the sequence ends");
    assert_eq!(reports.len(), 1);
    assert!(matches!(reports[0].outcome, StepOutcome::Completed(_)));
    assert_eq!(ran.load(Ordering::SeqCst), 1);
}

#[test]
fn a_panicking_and_an_overrunning_step_are_reported_and_later_steps_still_run_in_order() {
    let _serial = serial();
    let order = Arc::new(Mutex::new(Vec::new()));
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let note = |name: &'static str| {
        let order = order.clone();
        move || order.lock().unwrap().push(name)
    };
    let guard = on_signals([SIGUSR2])
        .step("first", WAIT, {
            let note = note("first");
            move |_| note()
        })
        .step("panics", WAIT, {
            let note = note("panics");
            move |_| {
                note();
                panic!("a shutdown step panics");
            }
        })
        .step("overruns", Duration::from_millis(100), {
            let note = note("overruns");
            move |_| {
                note();
                let _ = release_rx.recv_timeout(WAIT); // far beyond its budget
            }
        })
        .step("last", WAIT, {
            let note = note("last");
            move |_| note()
        })
        .install()
        .unwrap();
    assert!(guard.trigger());
    let reports = spawn(move || guard.wait()).join("guard.wait()");
    let _ = release_tx.send(());
    let names: Vec<&str> = reports.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["first", "panics", "overruns", "last"]);
    assert!(matches!(reports[0].outcome, StepOutcome::Completed(_)));
    assert!(
        matches!(reports[1].outcome, StepOutcome::Failed),
        "{}",
        reports[1]
    );
    assert!(
        matches!(reports[2].outcome, StepOutcome::Overran),
        "{}",
        reports[2]
    );
    assert!(matches!(reports[3].outcome, StepOutcome::Completed(_)));
    assert_eq!(
        *order.lock().unwrap(),
        ["first", "panics", "overruns", "last"]
    );
    for report in &reports {
        println!("{report}");
    }
}

#[test]
fn a_resource_step_runs_after_the_pool_and_is_told_what_is_stuck() {
    let _serial = serial();
    let terminated = Arc::new(AtomicBool::new(false));
    let fast = ThreadPool::builder()
        .threads(2)
        .thread_name("fast")
        .on_terminated({
            let terminated = terminated.clone();
            move || terminated.store(true, Ordering::SeqCst)
        })
        .build()
        .unwrap();
    let stuck = named_pool(1, "stuck");
    let ran = Arc::new(AtomicUsize::new(0));
    for _ in 0..20 {
        let ran = ran.clone();
        fast.execute(move || {
            thread::sleep(Duration::from_millis(2));
            ran.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
    }
    // Ignores its stop token: only the test releases it.
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let (started_tx, started_rx) = mpsc::channel();
    stuck
        .task()
        .name("deaf")
        .execute(move || {
            started_tx.send(()).unwrap();
            let _ = release_rx.recv_timeout(WAIT);
        })
        .unwrap();
    started_rx.recv_timeout(WAIT).unwrap();
    let seen = Arc::new(Mutex::new(None));
    let short = ShutdownPolicy::new(Duration::from_millis(50), Duration::from_millis(50));
    let guard = on_signals([SIGUSR2])
        .pool("fast", &fast, ShutdownPolicy::new(WAIT, WAIT))
        .pool("stuck", &stuck, short)
        .step("close", WAIT, {
            let seen = seen.clone();
            let (terminated, ran) = (terminated.clone(), ran.clone());
            move |ctx: &StepContext| {
                let stuck: Vec<(String, Option<String>)> = ctx
                    .stuck()
                    .iter()
                    .map(|(pool, task)| (pool.clone(), task.name.clone()))
                    .collect();
                let ran = ran.load(Ordering::SeqCst);
                *seen.lock().unwrap() = Some((terminated.load(Ordering::SeqCst), ran, stuck));
            }
        })
        .install()
        .unwrap();
    raise(SIGUSR2).unwrap();
    let reports = spawn(move || guard.wait()).join("guard.wait()");
    let _ = release_tx.send(());
    let seen = seen.lock().unwrap().take().expect("the step ran");
    assert_eq!(
        seen,
        (
            true,
            20,
            vec![("stuck".to_owned(), Some("deaf".to_owned()))]
        ),
        "(fast pool terminated, its tasks run, stuck tasks) as the step saw them"
    );
    let names: Vec<&str> = reports.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["fast", "stuck", "close"]);
    match &reports[0].outcome {
        StepOutcome::Pool(r) => assert!(r.terminated && r.stuck.is_empty(), "{r}"),
        other => panic!("{other:?}"),
    }
    match &reports[1].outcome {
        StepOutcome::Pool(r) => assert!(!r.terminated && r.stuck.len() == 1, "{r}"),
        other => panic!("{other:?}"),
    }
    assert!(stuck.await_termination(WAIT));
}

/// The pool report of an ordered shutdown's first step.
fn pool_report(reports: &[StepReport]) -> &drainpool::ShutdownReport {
    match &reports[0].outcome {
        StepOutcome::Pool(report) => report,
        other => panic!("not a pool step: {other:?}"),
    }
}

#[test]
fn a_second_signal_interrupts_the_drain_and_the_report_lists_never_started_tasks() {
    // Hammered: the listener's shutdown_now hands the queue back while the
    // sequence thread may already be building the pool's report.
    let _serial = serial();
    for round in 0..100 {
        let pool = named_pool(1, "second");
        let (started_tx, started_rx) = mpsc::channel();
        let running = pool
            .task()
            .name("long")
            .submit(move || {
                started_tx.send(()).unwrap();
                StopToken::current().sleep(WAIT).is_err()
            })
            .unwrap();
        started_rx.recv_timeout(WAIT).unwrap();
        // A long queue widens the window.
        let queued: Vec<TaskHandle<()>> = (0..300).map(|_| pool.submit(|| ()).unwrap()).collect();
        // A drain budget far beyond the test's bound: only the second
        // signal can end it in time.
        let policy = ShutdownPolicy::new(Duration::from_secs(60), WAIT);
        let guard = on_signals([SIGUSR2])
            .pool("p", &pool, policy)
            .install()
            .unwrap();
        raise(SIGUSR2).unwrap();
        assert!(
            guard.stop_token().sleep(WAIT).is_err(),
            "round {round}: first signal lost"
        );
        eventually("the drain starts", || pool.is_shutdown());
        raise(SIGUSR2).unwrap();
        let reports = spawn(move || guard.wait()).join("guard.wait()");
        assert!(
            running.join().unwrap(),
            "round {round}: the running task was not interrupted"
        );
        let report = pool_report(&reports);
        assert!(report.terminated, "round {round}: {report}");
        assert!(report.elapsed < WAIT, "round {round}: {report}");
        let listed: Vec<TaskId> = report.never_started.iter().map(PendingTask::id).collect();
        let queued_ids: Vec<TaskId> = queued.iter().map(TaskHandle::id).collect();
        assert!(
            listed == queued_ids,
            "round {round}: the report lists {} of the {} never-started tasks{}",
            listed.len(),
            queued_ids.len(),
            if listed.is_sorted() {
                ""
            } else {
                ", out of order"
            }
        );
        drop(reports);
        for handle in queued {
            assert!(handle.join().unwrap_err().is_cancelled());
        }
    }
}

#[test]
fn a_second_signal_moves_a_stuck_drain_on_to_the_interrupt_budget() {
    // A task that ignores its stop token: after the second signal no drain
    // can succeed, so the sequence should wait the interrupt budget (100 ms)
    // for it, not what is left of the drain budget (60 s), before going on
    // to the steps after the pool.
    let _serial = serial();
    let pool = named_pool(1, "deaf");
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let (started_tx, started_rx) = mpsc::channel();
    pool.task()
        .name("deaf")
        .execute(move || {
            started_tx.send(()).unwrap();
            let _ = release_rx.recv_timeout(Duration::from_secs(60));
        })
        .unwrap();
    started_rx.recv_timeout(WAIT).unwrap();
    let policy = ShutdownPolicy::new(Duration::from_secs(60), Duration::from_millis(100));
    let closed = Arc::new(AtomicBool::new(false));
    let guard = on_signals([SIGUSR2])
        .pool("p", &pool, policy)
        .step("close", WAIT, {
            let closed = closed.clone();
            move |_| closed.store(true, Ordering::SeqCst)
        })
        .install()
        .unwrap();
    raise(SIGUSR2).unwrap();
    assert!(guard.stop_token().sleep(WAIT).is_err(), "first signal lost");
    eventually("the drain starts", || pool.is_shutdown());
    raise(SIGUSR2).unwrap();
    let bound = Duration::from_secs(5);
    let reports = guard.wait_timeout(bound);
    let _ = release_tx.send(());
    let reports = reports.unwrap_or_else(|| {
        panic!(
            "after a second signal the sequence was still waiting out the 60 s drain budget \
             {bound:?} later, for a task that ignores its stop token (close step ran: {})",
            closed.load(Ordering::SeqCst)
        )
    });
    let report = pool_report(&reports);
    assert!(!report.terminated && report.stuck.len() == 1, "{report}");
    assert!(closed.load(Ordering::SeqCst));
    assert!(pool.await_termination(WAIT));
}

#[test]
fn dropping_the_guard_unregisters_so_a_new_installer_works() {
    let _serial = serial();
    let old_ran = Arc::new(AtomicBool::new(false));
    let old = on_signals([SIGUSR2])
        .step("old", WAIT, {
            let old_ran = old_ran.clone();
            move |_| old_ran.store(true, Ordering::SeqCst)
        })
        .install()
        .unwrap();
    let old_token = old.stop_token();
    spawn(move || drop(old)).join("dropping a guard");
    let guard = on_signals([SIGUSR2])
        .step("new", WAIT, |_| ())
        .install()
        .unwrap();
    raise(SIGUSR2).unwrap();
    assert!(
        guard.stop_token().sleep(WAIT).is_err(),
        "the new installer missed the signal"
    );
    let reports = spawn(move || guard.wait()).join("guard.wait()");
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0].name, "new");
    assert!(
        !old_token.is_stop_requested(),
        "the dropped installer saw the signal"
    );
    assert!(
        !old_ran.load(Ordering::SeqCst),
        "the dropped installer ran its steps"
    );
}

/// Set in the child run of the test below.
const CHILD_ENV: &str = "DRAINPOOL_SIGNALS_TEST_CHILD";

#[test]
fn after_the_guard_is_dropped_the_signal_starts_nothing() {
    if std::env::var_os(CHILD_ENV).is_some() {
        // The child: with no installer left, raise the signal.
        let ran = Arc::new(AtomicBool::new(false));
        let guard = on_signals([SIGUSR2])
            .step("step", WAIT, {
                let ran = ran.clone();
                move |_| ran.store(true, Ordering::SeqCst)
            })
            .install()
            .unwrap();
        let token = guard.stop_token();
        drop(guard);
        raise(SIGUSR2).unwrap();
        // The listener and sequence threads are gone: nothing can start
        // after `raise` has returned.
        println!(
            "child: survived; token fired: {}; step ran: {}",
            token.is_stop_requested(),
            ran.load(Ordering::SeqCst)
        );
        return;
    }
    let child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "after_the_guard_is_dropped_the_signal_starts_nothing",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (status, stdout, stderr) = bounded_output(child, CHILD_DEADLINE);
    let stdout = String::from_utf8_lossy(&stdout);
    let stderr = String::from_utf8_lossy(&stderr);
    let survived = stdout
        .lines()
        .find_map(|l| l.find("child: survived").map(|at| &l[at..]));
    if let Some(line) = survived {
        assert!(status.success(), "{status}\n{stdout}\n{stderr}");
        assert_eq!(
            line, "child: survived; token fired: false; step ran: false",
            "a dropped installer reacted to its signal"
        );
    } else {
        // The signal's default action (terminate) was restored: also fine,
        // and nothing could have started either.
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(
            status.signal(),
            Some(SIGUSR2),
            "neither survived nor killed by SIGUSR2: {status}\n{stdout}\n{stderr}"
        );
    }
}

/// The names of this process's threads (Linux: `/proc/self/task`).
#[cfg(target_os = "linux")]
fn thread_names() -> Vec<String> {
    std::fs::read_dir("/proc/self/task")
        .map(|tasks| {
            tasks
                .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
                .map(|name| name.trim_end().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Regression (issue 12, defect 2): a `shutdown_handle()` taken while
/// another thread shut a one-thread pool down leaked its relay thread,
/// blocked in a socket read forever, a few rounds in 3,000: the relay was
/// published only after its thread started, so termination could ring
/// nobody.
#[cfg(target_os = "linux")]
#[test]
fn a_handle_taken_while_the_pool_terminates_leaves_no_relay_thread_behind() {
    const ROUNDS: usize = 3000;
    for round in 0..ROUNDS {
        let pool = Arc::new(named_pool(1, &format!("rl{round}")));
        let shutter = {
            let pool = pool.clone();
            spawn(move || pool.shutdown())
        };
        let handle = pool.shutdown_handle();
        shutter.join("the shutdown");
        assert!(pool.await_termination(WAIT));
        drop(handle);
        drop(pool);
    }
    // Every relay rung at termination exits; poll until they have.
    let deadline = Instant::now() + WAIT;
    loop {
        let left: Vec<String> = thread_names()
            .into_iter()
            .filter(|name| name.starts_with("rl") && name.ends_with("-relay"))
            .collect();
        if left.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "relay threads of terminated pools never exited: {left:?}"
        );
        thread::sleep(Duration::from_millis(10));
    }
}
