//! Feature `tracing`: the span current when a task is submitted is the
//! current span inside the task, on the worker, whichever way it was
//! submitted; a task submitted outside any span runs in none. And the
//! pool's own log lines reach a `tracing` subscriber too.
#![cfg(feature = "tracing")]

mod common;

use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use common::{TestPool, bounded_join};
use drainpool::crossbeam_channel::unbounded;
use tracing::Span;
use tracing_subscriber::layer::{Context, SubscriberExt};

/// Every event's level and message, as the subscriber saw them.
static EVENTS: Mutex<Vec<(tracing::Level, String)>> = Mutex::new(Vec::new());

/// Keeps each event's `message` field.
struct Capture;

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Capture {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        struct Message(String);
        impl tracing::field::Visit for Message {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                if field.name() == "message" {
                    self.0 = format!("{value:?}");
                }
            }
        }
        let mut message = Message(String::new());
        event.record(&mut message);
        EVENTS
            .lock()
            .unwrap()
            .push((*event.metadata().level(), message.0));
    }
}

/// The registry, with the capture, as the process-wide subscriber (the
/// workers are other threads), installed once per test binary.
fn subscriber() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        let subscriber = tracing_subscriber::registry().with(Capture);
        tracing::subscriber::set_global_default(subscriber)
            .expect("no other subscriber in this test binary");
    });
}

/// The name of the span current here, if any.
fn current_name() -> Option<&'static str> {
    Span::current().metadata().map(|meta| meta.name())
}

#[test]
fn a_submitted_task_runs_in_its_submitters_span() {
    subscriber();
    let pool = TestPool::new(2);
    let span = tracing::info_span!("import batch 7");
    let handle = span.in_scope(|| {
        pool.submit(|| (current_name(), Span::current().id()))
            .unwrap()
    });
    let (name, id) = bounded_join(handle).unwrap();
    assert_eq!(name, Some("import batch 7"));
    assert_eq!(id, span.id(), "the very span, not one of the same name");
}

#[test]
fn executed_named_group_and_batch_tasks_run_in_their_submitters_span() {
    subscriber();
    let pool = TestPool::new(2);
    let (tx, seen) = unbounded();
    let span = tracing::info_span!("nightly export");
    span.in_scope(|| {
        let tx1 = tx.clone();
        pool.execute(move || tx1.send(("execute", current_name())).unwrap())
            .unwrap();
        let tx2 = tx.clone();
        pool.task()
            .name("named")
            .execute(move || tx2.send(("named", current_name())).unwrap())
            .unwrap();
        let job = pool.group("export");
        let tx3 = tx.clone();
        job.execute(move || tx3.send(("group", current_name())).unwrap())
            .unwrap();
        let batch: Vec<_> = (0..300)
            .map(|_| {
                let tx = tx.clone();
                move || tx.send(("batch", current_name())).unwrap()
            })
            .collect();
        pool.execute_batch(batch).unwrap();
        let tx4 = tx.clone();
        pool.task()
            .start_within(std::time::Duration::from_secs(60))
            .execute(move || tx4.send(("deadline", current_name())).unwrap())
            .unwrap();
    });
    drop(tx);
    let mut count = 0;
    for (how, name) in seen.iter() {
        assert_eq!(name, Some("nightly export"), "{how}");
        count += 1;
    }
    assert_eq!(count, 304);
}

#[test]
fn a_scoped_task_runs_in_the_span_of_its_spawn() {
    subscriber();
    let pool = TestPool::new(2);
    let outer = tracing::info_span!("scope");
    let names = outer.in_scope(|| {
        pool.scope(|s| {
            let inner = tracing::info_span!("shard 3");
            let a = s.spawn(current_name);
            let b = inner.in_scope(|| s.spawn(current_name));
            (a.join().unwrap(), b.join().unwrap())
        })
    });
    assert_eq!(names, (Some("scope"), Some("shard 3")));
}

#[test]
fn a_task_submitted_outside_any_span_runs_in_none() {
    subscriber();
    let pool = TestPool::new(1);
    let handle = pool.submit(current_name).unwrap();
    assert_eq!(bounded_join(handle).unwrap(), None);
}

#[test]
fn the_pools_warnings_reach_a_tracing_subscriber_without_the_log_bridge() {
    subscriber();
    let pool = TestPool::new(1);
    let (release, released) = unbounded::<()>();
    pool.execute(move || {
        let _ = released.recv();
    })
    .unwrap();
    let late = pool
        .task()
        .name("traced expiry")
        .start_within(Duration::from_millis(20))
        .submit(|| ())
        .unwrap();
    assert!(bounded_join(late).unwrap_err().is_expired());
    release.send(()).unwrap();
    let events = EVENTS.lock().unwrap();
    let seen: Vec<_> = events
        .iter()
        .filter(|(_, message)| message.contains("traced expiry"))
        .collect();
    assert_eq!(seen.len(), 1, "{events:?}");
    assert_eq!(seen[0].0, tracing::Level::WARN);
}
