//! An example run as a child process: built once per test binary with the
//! test's profile (and the features asked for), read line by line, killed
//! on drop, every wait bounded by a deadline. Shared by the child-process
//! tests of the signals (`tests/signals/example.rs`) and of the journal
//! (`tests/journal_crash.rs`, `tests/journal_service.rs`).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Mutex, mpsc};
use std::thread;
use std::time::{Duration, Instant};

/// Builds `examples/{name}` with `features` (`""`: the default ones only)
/// and this test's profile, once per test binary, and returns the path
/// cargo reports for it (whatever the target directory).
pub(crate) fn example_binary(name: &str, features: &str) -> PathBuf {
    static BUILT: Mutex<Option<HashMap<String, PathBuf>>> = Mutex::new(None);
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    let key = format!("{name}/{features}");
    if let Some(path) = built.get_or_insert_with(HashMap::new).get(&key) {
        return path.clone();
    }
    let mut cargo = Command::new(env!("CARGO"));
    cargo
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["build", "--example", name, "--features", features])
        .arg("--message-format=json")
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
                && line.contains(&format!(r#""name":"{name}""#))
        })
        .find_map(|line| {
            let (_, rest) = line.split_once(r#""executable":""#)?;
            rest.split_once('"').map(|(path, _)| PathBuf::from(path))
        });
    match executable {
        Some(path) if status.success() => {
            built
                .get_or_insert_with(HashMap::new)
                .insert(key, path.clone());
            path
        }
        _ => panic!(
            "cargo build --example {name} --features {features} failed ({status}):\n{}",
            String::from_utf8_lossy(&stderr)
        ),
    }
}

/// Waits at most `limit` for `child` to exit (killing it then, and failing
/// the test); returns its status, stdout and stderr.
pub(crate) fn bounded_output(mut child: Child, limit: Duration) -> (ExitStatus, Vec<u8>, Vec<u8>) {
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

/// A running example, read line by line; killed on drop.
pub(crate) struct Run {
    child: Child,
    events: mpsc::Receiver<Event>,
    open_streams: usize,
    deadline: Instant,
    limit: Duration,
    pub(crate) stdout: Vec<String>,
    pub(crate) stderr: Vec<String>,
    /// Every line so far in the order it came, `out| ` or `err| ` first.
    in_order: Vec<String>,
}

impl Run {
    /// Starts `binary` with `args`; every wait on it ends by `limit` from
    /// now (then the test fails, showing what the child printed).
    pub(crate) fn start(binary: &Path, args: &[String], limit: Duration) -> Run {
        let mut child = Command::new(binary)
            .args(args)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the example starts");
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
            deadline: Instant::now() + limit,
            limit,
            stdout: Vec::new(),
            stderr: Vec::new(),
            in_order: Vec::new(),
        }
    }

    /// The next event; fails the test at the deadline, even while the
    /// child keeps printing.
    fn next(&mut self) -> Event {
        let event = self
            .deadline
            .checked_duration_since(Instant::now())
            .and_then(|left| self.events.recv_timeout(left).ok());
        match event {
            Some(Event::Out(line)) => {
                self.in_order.push(format!("out| {line}"));
                self.stdout.push(line.clone());
                Event::Out(line)
            }
            Some(Event::Err(line)) => {
                self.in_order.push(format!("err| {line}"));
                self.stderr.push(line.clone());
                Event::Err(line)
            }
            Some(Event::Eof) => {
                self.open_streams -= 1;
                Event::Eof
            }
            None => {
                let _ = self.child.kill();
                panic!(
                    "the child did not finish within {:?}:\n{}",
                    self.limit,
                    self.transcript()
                )
            }
        }
    }

    /// Waits for a stdout line `wanted` accepts (already printed, or to
    /// come); false if the child ended first.
    pub(crate) fn wait_for(&mut self, wanted: impl Fn(&str) -> bool) -> bool {
        if self.stdout.iter().any(|l| wanted(l)) {
            return true;
        }
        while self.open_streams > 0 {
            if let Event::Out(line) = self.next() {
                if wanted(&line) {
                    return true;
                }
            }
        }
        false
    }

    /// Like [`Run::wait_for`], failing the test if the child ended first.
    pub(crate) fn expect(&mut self, what: &str, wanted: impl Fn(&str) -> bool) {
        if !self.wait_for(wanted) {
            panic!("the child ended before {what}:\n{}", self.transcript());
        }
    }

    /// SIGKILL (a child that already exited is left as it is).
    pub(crate) fn kill(&mut self) {
        let _ = self.child.kill();
    }

    /// Sends `signal` ("INT", "TERM") with `kill`.
    pub(crate) fn signal(&mut self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("kill runs");
        assert!(
            status.success(),
            "kill -{signal} failed: {status}:\n{}",
            self.transcript()
        );
    }

    /// Waits for the child to exit; its status.
    pub(crate) fn finish(&mut self) -> ExitStatus {
        while self.open_streams > 0 {
            self.next();
        }
        self.child.wait().expect("wait for the child")
    }

    /// Everything it printed so far, in the order it came, each line marked
    /// `out| ` or `err| ` (a log line shows where it fell among the output).
    pub(crate) fn transcript(&self) -> String {
        self.in_order.join("\n")
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
