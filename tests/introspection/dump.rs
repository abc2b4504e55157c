//! `on_signals(..).dump_on(SIGQUIT)`: a child process (this test binary,
//! run again) gets a real SIGQUIT from `kill`, logs every running task of
//! its pool with what it waits on, and keeps running; it then ends its task
//! and exits normally when told to.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use drainpool::crossbeam_channel::unbounded;
use drainpool::signal::{SIGQUIT, SIGTERM, on_signals};
use drainpool::{BlockedOn, ShutdownPolicy, StopToken, ThreadPool};

use crate::blocked;
use crate::common::WAIT;

/// Set in the child run of the test below.
const CHILD_ENV: &str = "DRAINPOOL_INTROSPECTION_DUMP_CHILD";
/// The bound on the child's whole life.
const CHILD_DEADLINE: Duration = Duration::from_secs(25);
const TEST: &str =
    "dump::sigquit_logs_every_running_task_and_its_wait_and_the_process_keeps_running";

#[test]
fn sigquit_logs_every_running_task_and_its_wait_and_the_process_keeps_running() {
    if std::env::var_os(CHILD_ENV).is_some() {
        child();
        return;
    }
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", TEST, "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, "1")
        .env_remove("RUST_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let killer = Killer(child.id());
    let stdout = lines(child.stdout.take().unwrap());
    let stderr = lines(child.stderr.take().unwrap());
    let mut out = Transcript::default();

    // The test harness may print its "test ... " prefix on the same line.
    out.wait_for(&stdout, "the child's ready line", |l| {
        l.ends_with("child: ready")
    });
    let sent = Command::new("kill")
        .args(["-QUIT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success(), "kill -QUIT: {sent}");
    let task_line = out.wait_for(&stderr, "the dump's line for the task", |l| {
        l.contains("pool jobs: task ")
    });
    assert!(task_line.contains("(stuck-here) on dumped-"), "{out}");
    assert!(task_line.contains(", blocked in recv for "), "{out}");
    assert!(
        out.seen.iter().any(|l| l.contains("SIGQUIT received")),
        "no header: {out}"
    );
    assert!(
        out.seen
            .iter()
            .any(|l| l.contains("pool jobs: Running, 1 running, 0 queued, 2 thread(s)")),
        "no pool line: {out}"
    );

    // Still running: it answers, ends its task and exits normally.
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"go on\n").unwrap();
    drop(stdin);
    out.wait_for(&stdout, "the child's last line", |l| {
        l.contains("child: still running after the dump")
    });
    let status = exit_within(child, CHILD_DEADLINE);
    killer.disarm();
    assert!(status.success(), "{status}: {out}");
}

/// The child: a pool with a task blocked in a `recv`, the installer with
/// `dump_on(SIGQUIT)`; says it is ready, then waits for the parent.
fn child() {
    env_logger::Builder::new()
        .parse_filters("warn")
        .target(env_logger::Target::Stderr)
        .init();
    let pool = ThreadPool::builder()
        .threads(2)
        .thread_name("dumped")
        .build()
        .unwrap();
    let (release, rx) = unbounded::<u32>();
    let task = pool
        .task()
        .name("stuck-here")
        .submit(move || StopToken::current().recv(&rx))
        .unwrap();
    let (_, seen) = blocked(&pool, task.id());
    assert_eq!(seen.on, BlockedOn::Recv);
    let policy = ShutdownPolicy::new(WAIT, WAIT);
    let guard = on_signals([SIGTERM])
        .pool("jobs", &pool, policy)
        .dump_on(SIGQUIT)
        .install()
        .unwrap();
    println!("child: ready");
    std::io::stdout().flush().unwrap();
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).unwrap();
    release.send(3).unwrap();
    assert_eq!(task.join().unwrap(), Ok(3));
    assert!(
        !guard.stop_token().is_stop_requested(),
        "a dump stops nothing"
    );
    println!(
        "child: still running after the dump; pool state {:?}",
        pool.state()
    );
    drop(guard);
}

/// The lines `from` gives, as they come.
fn lines(from: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(from).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

/// Every line read from the child so far, for failure messages.
#[derive(Default)]
struct Transcript {
    seen: Vec<String>,
}

impl Transcript {
    /// Reads `from` until a line satisfies `wanted`, within [`WAIT`];
    /// returns it.
    fn wait_for(
        &mut self,
        from: &mpsc::Receiver<String>,
        what: &str,
        wanted: impl Fn(&str) -> bool,
    ) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match from.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if wanted(&line) {
                        return line;
                    }
                }
                Err(_) => panic!("{what}: not within {WAIT:?}; {self}"),
            }
        }
    }
}

impl std::fmt::Display for Transcript {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "the child wrote:")?;
        for line in &self.seen {
            writeln!(f, "  {line}")?;
        }
        Ok(())
    }
}

/// Waits at most `limit` for `child` to exit.
fn exit_within(mut child: Child, limit: Duration) -> ExitStatus {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(child.wait());
    });
    rx.recv_timeout(limit)
        .unwrap_or_else(|_| panic!("the child did not exit within {limit:?}"))
        .unwrap()
}

/// Kills the child if the test fails before it exits.
struct Killer(u32);

impl Killer {
    fn disarm(self) {
        std::mem::forget(self);
    }
}

impl Drop for Killer {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", &self.0.to_string()])
            .status();
    }
}

/// A signal cannot both start a shutdown and ask for a dump: `install`
/// refuses it before registering anything.
#[test]
fn a_signal_for_both_shutdown_and_dumps_is_refused() {
    let refused = on_signals([SIGTERM, SIGQUIT])
        .dump_on(SIGQUIT)
        .install()
        .unwrap_err();
    assert_eq!(refused.kind(), std::io::ErrorKind::InvalidInput);
    assert!(refused.to_string().contains("SIGQUIT"), "{refused}");
}
