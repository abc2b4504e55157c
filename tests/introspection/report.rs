//! A graceful shutdown's report, and its log lines, say what each stuck
//! task waits on.

use std::time::Duration;

use drainpool::crossbeam_channel::bounded;
use drainpool::{BlockedOn, ShutdownPolicy, StopToken, ThreadPool};

use crate::blocked;
use crate::common::WAIT;

/// A task blocked in a `recv` that no stop can wake (its token never
/// fires) is stuck; the report names it, and its wait.
#[test]
fn the_report_names_what_a_stuck_task_waits_on() {
    let pool = ThreadPool::new(1).unwrap();
    let (release, rx) = bounded::<()>(1);
    let stubborn = pool
        .task()
        .name("stubborn")
        .submit(move || StopToken::never().recv(&rx))
        .unwrap();
    let (_, seen) = blocked(&pool, stubborn.id());
    assert_eq!(seen.on, BlockedOn::Recv);

    let report = pool.shutdown_gracefully(ShutdownPolicy::new(
        Duration::ZERO,
        Duration::from_millis(20),
    ));
    assert!(!report.terminated);
    assert_eq!(report.stuck.len(), 1, "{report}");
    let stuck = &report.stuck[0];
    assert_eq!(stuck.id, stubborn.id());
    let blocked = stuck.blocked_on().expect("the stuck task's wait");
    assert_eq!(blocked.on, BlockedOn::Recv);
    assert!(blocked.for_ >= seen.for_, "{blocked:?} after {seen:?}");
    let text = report.to_string();
    let line = text
        .lines()
        .find(|line| line.contains("stuck: task"))
        .unwrap_or_else(|| panic!("no stuck line in:\n{text}"));
    assert!(line.contains("(stubborn)"), "{text}");
    assert!(line.contains(", blocked in recv for "), "{text}");

    release.send(()).unwrap();
    assert!(pool.await_termination(WAIT));
    assert!(stubborn.join().unwrap().is_ok());
}
