//! After a `SignalGuard` goes (dropped, or `wait` returned), a signal takes
//! its default action again: a Ctrl-C during the program's own cleanup ends
//! the process (issue 13: it used to be ignored for the rest of the
//! process). Each case runs in a child process, the test binary run again
//! with `DRAINPOOL_DISPOSITION_CHILD` naming the case, judged by how it
//! exited. Unix only: the child is judged by the signal that ended it.
#![cfg(all(unix, feature = "signal"))]

use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use drainpool::signal::{SIGINT, SIGTERM, on_signals};
use drainpool::{ShutdownPolicy, ThreadPool};
use signal_hook::low_level::raise;

const CHILD_ENV: &str = "DRAINPOOL_DISPOSITION_CHILD";

/// Runs this test binary again as a child doing `case`, with a deadline,
/// and returns the signal that ended it (`None`: it exited).
fn child_ended_by(test: &str, case: &str) -> Option<i32> {
    let exe = std::env::current_exe().expect("the test binary's path");
    let mut child = Command::new(exe)
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, case)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn the child");
    let pid = child.id();
    let (tx, rx) = crossbeam_channel::bounded(1);
    std::thread::spawn(move || tx.send(child.wait().expect("wait for the child")));
    match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(status) => status.signal(),
        Err(_) => {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            panic!("the child ({case}) did not end within 60 s; killed");
        }
    }
}

/// In the child: what the case says, then a signal; returning means the
/// signal was ignored (the child then exits 0, which the parent rejects).
fn child_case() -> bool {
    let Ok(case) = std::env::var(CHILD_ENV) else {
        return false;
    };
    let pool = ThreadPool::new(1).unwrap();
    let signal = if case.ends_with("sigterm") {
        SIGTERM
    } else {
        SIGINT
    };
    match case.as_str() {
        "dropped-sigint" | "dropped-sigterm" => {
            let guard = on_signals([signal])
                .pool(
                    "jobs",
                    &pool,
                    ShutdownPolicy::new(Duration::ZERO, Duration::from_secs(5)),
                )
                .install()
                .unwrap();
            drop(guard);
        }
        "waited" => {
            let guard = on_signals([signal]).install().unwrap();
            guard.trigger();
            let _ = guard.wait();
        }
        "two-guards-one-dropped" => {
            // While another guard still watches the signal, it is that
            // guard's: the process lives and its shutdown starts.
            let first = on_signals([signal]).install().unwrap();
            let second = on_signals([signal]).install().unwrap();
            drop(first);
            raise(signal).unwrap();
            assert!(second.wait_timeout(Duration::from_secs(30)).is_some());
            return true; // exits 0
        }
        other => panic!("unknown case {other}"),
    }
    raise(signal).unwrap();
    // A signal is delivered before `raise` returns to a single-threaded
    // caller; with threads, give it a moment, bounded.
    std::thread::sleep(Duration::from_secs(5));
    true
}

#[test]
fn ctrl_c_after_the_guard_is_dropped_ends_the_process() {
    if child_case() {
        return;
    }
    let test = "ctrl_c_after_the_guard_is_dropped_ends_the_process";
    assert_eq!(child_ended_by(test, "dropped-sigint"), Some(SIGINT));
}

#[test]
fn sigterm_after_the_guard_is_dropped_ends_the_process() {
    if child_case() {
        return;
    }
    let test = "sigterm_after_the_guard_is_dropped_ends_the_process";
    assert_eq!(child_ended_by(test, "dropped-sigterm"), Some(SIGTERM));
}

#[test]
fn ctrl_c_after_wait_returned_ends_the_process() {
    if child_case() {
        return;
    }
    let test = "ctrl_c_after_wait_returned_ends_the_process";
    assert_eq!(child_ended_by(test, "waited"), Some(SIGINT));
}

#[test]
fn a_signal_still_watched_by_another_guard_does_not_end_the_process() {
    if child_case() {
        return;
    }
    let test = "a_signal_still_watched_by_another_guard_does_not_end_the_process";
    assert_eq!(child_ended_by(test, "two-guards-one-dropped"), None);
}
