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
//! - **In-process tests** register handlers for SIGUSR1 / SIGUSR2 (on
//!   Windows, SIGTERM / SIGBREAK, which only `raise` sends there) and raise
//!   them in this process; they hold [`SERIAL`] so that no two touch signal
//!   handlers at once, and bound every wait by [`WAIT`]. One test that must
//!   raise a signal with no installer left re-runs this test binary as a
//!   child, so that a wrong outcome cannot take the whole test run down.
//!
//! One module per capability (`example`, `shutdown_handle`, `installer`),
//! all in this one binary so that [`SERIAL`] serialises every test that
//! touches signal handlers; what they share is here.

#[path = "../common/mod.rs"]
mod common;
#[cfg(all(unix, feature = "signal"))]
mod example;
#[cfg(feature = "signal")]
mod installer;
mod shutdown_handle;

use std::process::{Child, Command, ExitStatus};
use std::sync::{Mutex, MutexGuard, PoisonError, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use common::WAIT;

/// The bound on a child process's whole life.
#[cfg_attr(not(feature = "signal"), allow(dead_code))]
const CHILD_DEADLINE: Duration = Duration::from_secs(25);

/// The signal the in-process `ShutdownHandle` tests raise: one nothing else
/// sends (Windows has no SIGUSR1; there, `raise` is the only sender of
/// SIGTERM).
#[cfg(unix)]
const TEST_SIGNAL: i32 = signal_hook::consts::SIGUSR1;
#[cfg(windows)]
const TEST_SIGNAL: i32 = signal_hook::consts::SIGTERM;

/// The signal the in-process installer tests raise (see [`TEST_SIGNAL`]).
#[cfg(unix)]
#[cfg_attr(not(feature = "signal"), allow(dead_code))]
const OTHER_TEST_SIGNAL: i32 = signal_hook::consts::SIGUSR2;
#[cfg(windows)]
#[cfg_attr(not(feature = "signal"), allow(dead_code))]
const OTHER_TEST_SIGNAL: i32 = 21; // SIGBREAK

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

/// Waits at most `limit` for `child` to exit; returns its status, stdout,
/// stderr.
#[cfg_attr(not(feature = "signal"), allow(dead_code))]
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
