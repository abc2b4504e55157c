//! Errors that work with `?`: every public error type is
//! `std::error::Error + Send + Sync + 'static`, so `?` takes it into a
//! `Box<dyn Error + Send + Sync>` (what `anyhow` needs), and each still gives
//! back what it holds: the task of a `Rejected`, the payload of a
//! `TaskError`, the `PendingTask` of an `IntoJobError`, the payload of a
//! `TaskPanic`.
//!
//! The helpers at the top are the compile test: each returns a `BoxError`
//! and uses `?` on one error type, with values that are `Send` but not
//! `Sync` wherever an error holds one (a closure owning a `Cell`, a `Cell`
//! as the panic payload).

mod common;

use std::cell::Cell;
use std::error::Error;
#[cfg(not(windows))]
use std::io;
use std::panic::{self, AssertUnwindSafe};
use std::sync::mpsc;

use common::{DropCounter, Gate, TestPool, WAIT, bounded_join};
use drainpool::crossbeam_channel;
use drainpool::{
    BuildError, IntoJobError, Job, PanicPayload, PendingTask, RejectReason, Rejected, StopSource,
    StopToken, TaskError, TaskPanic, ThreadPool, WaitError,
};

/// What `?` must reach: the bound of `anyhow::Error`'s `From`.
type BoxError = Box<dyn Error + Send + Sync + 'static>;

// ----- each error through `?` ------------------------------------------------

fn build(builder: drainpool::Builder) -> Result<ThreadPool, BoxError> {
    Ok(builder.build()?)
}

/// `f` is `Send` but not `Sync` (it owns a `Cell`): its `Rejected` goes
/// through `?` all the same.
fn execute_not_sync(pool: &ThreadPool, tracked: common::Tracked) -> Result<(), BoxError> {
    let cell = Cell::new(0_u32);
    pool.execute(move || {
        cell.set(cell.get() + 1);
        drop(tracked);
    })?;
    Ok(())
}

/// A batch of closures that are not `Sync`: `Rejected<Vec<F>>`.
fn execute_batch_not_sync(pool: &ThreadPool) -> Result<(), BoxError> {
    let tasks = (0..3).map(|i| {
        let cell = Cell::new(i);
        move || cell.set(cell.get() + 1)
    });
    pool.execute_batch(tasks)?;
    Ok(())
}

/// Two errors in one: the `Rejected` of `submit`, the `TaskError` of `join`.
fn submit_and_join(
    pool: &ThreadPool,
    f: impl FnOnce() -> u32 + Send + 'static,
) -> Result<u32, BoxError> {
    Ok(pool.submit(f)?.join()?)
}

fn take_job(task: PendingTask) -> Result<Chunk, BoxError> {
    Ok(task.into_job::<Chunk>()?)
}

fn check(token: &StopToken) -> Result<(), BoxError> {
    token.check()?;
    Ok(())
}

fn receive(token: &StopToken, rx: &crossbeam_channel::Receiver<u32>) -> Result<u32, BoxError> {
    Ok(token.recv(rx)?)
}

/// What a panic handler might do with what it is given.
fn forward(panic: Result<(), TaskPanic>) -> Result<(), BoxError> {
    panic?;
    Ok(())
}

/// Through a box and back, as a caller that downcasts would.
fn round_trip<E: Error + Send + Sync + 'static>(err: E) -> E {
    let boxed: BoxError = err.into();
    *boxed.downcast::<E>().expect("the same type comes back out")
}

#[derive(Debug, PartialEq, Eq)]
struct Chunk(u32);

impl Job for Chunk {
    type Output = u32;
    fn run(self) -> u32 {
        self.0 * 10
    }
}

// ----- BuildError -------------------------------------------------------------

#[test]
fn a_build_error_goes_through_question_mark_with_its_source() {
    let err = build(ThreadPool::builder().threads(0)).unwrap_err();
    assert_eq!(err.to_string(), "a thread pool needs at least one thread");
    assert!(err.source().is_none());
    assert!(matches!(
        err.downcast_ref::<BuildError>(),
        Some(BuildError::ZeroThreads)
    ));

    // No thread can have this stack: the operating system's error is the
    // source (see builder.rs for the cleanup). Not under Windows, whose
    // test runs are Wine's, which crashes creating such a thread (see
    // builder.rs::an_unspawnable_stack_size_is_a_spawn_error_that_starts_nothing).
    #[cfg(not(windows))]
    {
        let err = build(ThreadPool::builder().threads(1).stack_size(usize::MAX)).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("could not spawn worker thread 0: "),
            "{err}"
        );
        let source = err.source().expect("the spawn error is the source");
        assert!(source.downcast_ref::<io::Error>().is_some(), "{source:?}");
    }
}

// ----- Rejected ---------------------------------------------------------------

#[test]
fn a_rejected_closure_that_is_not_sync_goes_through_question_mark() {
    let pool = TestPool::new(1);
    pool.shutdown();
    let drops = DropCounter::default();

    let err = execute_not_sync(&pool, drops.tracked()).unwrap_err();
    assert_eq!(err.to_string(), "task rejected: the pool is shutting down");
    assert!(err.source().is_none());
    assert_eq!(format!("{err:?}"), "Rejected { reason: Shutdown, .. }");
    assert_eq!(drops.count(), 0, "the box holds the task");
    drop(err);
    assert_eq!(drops.count(), 1, "dropping the error drops the task, once");

    let err = execute_batch_not_sync(&pool).unwrap_err();
    assert_eq!(err.to_string(), "task rejected: the pool is shutting down");
}

#[test]
fn a_rejected_task_comes_back_out_of_the_box() {
    let pool = TestPool::new(1);
    pool.shutdown();
    let drops = DropCounter::default();
    let tracked = drops.tracked();
    let cell = Cell::new(41_u32); // not `Sync`
    let rejected = pool
        .execute(move || {
            cell.set(cell.get() + 1);
            assert_eq!(cell.get(), 42);
            drop(tracked);
        })
        .unwrap_err();
    let rejected = round_trip(rejected);
    assert_eq!(rejected.reason(), RejectReason::Shutdown);
    let task = rejected.into_inner();
    assert_eq!(drops.count(), 0, "given back, not dropped");
    task(); // the very closure: it runs, here
    assert_eq!(drops.count(), 1);

    // A batch comes back whole, in order.
    let tasks: Vec<Box<dyn FnOnce() -> u32 + Send>> = vec![Box::new(|| 1), Box::new(|| 2)];
    let rejected: Rejected<Vec<_>> = round_trip(pool.submit_batch(tasks).unwrap_err());
    let results: Vec<u32> = rejected.into_inner().into_iter().map(|f| f()).collect();
    assert_eq!(results, [1, 2]);
}

// ----- TaskError --------------------------------------------------------------

#[test]
fn a_panic_goes_through_question_mark_and_its_payload_comes_back() {
    let pool = TestPool::new(1);
    let n = std::hint::black_box(7); // a runtime value: the payload is a String
    let err = submit_and_join(&pool, move || panic!("boom {n}")).unwrap_err();
    assert_eq!(err.to_string(), "task panicked: boom 7");
    assert!(err.source().is_none());

    let err: TaskError = *err.downcast::<TaskError>().expect("a TaskError");
    assert!(err.is_panic() && !err.is_cancelled());
    assert_eq!(err.panic_message(), Some("boom 7"));
    assert_eq!(format!("{err:?}"), r#"Panicked(PanicPayload("boom 7"))"#);
    let payload = err.into_panic();
    assert_eq!(payload.downcast_ref::<String>().unwrap(), "boom 7");

    // The payload resumes as itself.
    let resumed = panic::catch_unwind(AssertUnwindSafe(|| panic::resume_unwind(payload)));
    assert_eq!(
        resumed.unwrap_err().downcast::<String>().unwrap().as_str(),
        "boom 7"
    );

    // A literal message is a `&'static str`, and comes back as one.
    let err = round_trip(
        bounded_join(pool.submit(|| -> u32 { panic!("literal") }).unwrap()).unwrap_err(),
    );
    assert_eq!(err.to_string(), "task panicked: literal");
    let resumed = panic::catch_unwind(AssertUnwindSafe(|| err.resume()));
    assert_eq!(
        resumed.unwrap_err().downcast_ref::<&str>(),
        Some(&"literal")
    );
}

#[test]
fn a_payload_that_is_not_sync_goes_through_question_mark() {
    let pool = TestPool::new(1);
    // A `Cell` is `Send` but not `Sync`: the payload the old `TaskError`
    // could not carry into a `Box<dyn Error + Send + Sync>`.
    let err = submit_and_join(&pool, || panic::panic_any(Cell::new(17_u32))).unwrap_err();
    assert_eq!(err.to_string(), "task panicked");
    let err = *err.downcast::<TaskError>().expect("a TaskError");
    assert_eq!(err.panic_message(), None);
    assert_eq!(
        format!("{err:?}"),
        "Panicked(PanicPayload(<non-string payload>))"
    );

    let TaskError::Panicked(mut payload) = err else {
        panic!("expected a panic, got {err:?}");
    };
    let cell = payload
        .get_mut()
        .downcast_ref::<Cell<u32>>()
        .expect("the cell");
    assert_eq!(cell.get(), 17);
    let payload = payload.into_inner();
    assert_eq!(payload.downcast_ref::<Cell<u32>>().unwrap().get(), 17);

    // Made by hand, as a test double of the program's own might.
    let made = TaskError::Panicked(PanicPayload::new(Box::new(5_i64)));
    assert_eq!(made.into_panic().downcast_ref::<i64>(), Some(&5));
}

#[test]
fn a_cancelled_task_error_is_not_a_panic() {
    let pool = TestPool::new(1);
    let gate = Gate::occupying(&pool, 1);
    let handle = pool.submit(|| 1_u32).unwrap();
    assert!(handle.cancel(), "still queued: the cancel wins");
    gate.release();

    let result: Result<u32, BoxError> = bounded_join(handle).map_err(Into::into);
    let err = result.unwrap_err();
    assert_eq!(err.to_string(), "task was cancelled before it started");
    assert!(err.source().is_none());

    let err = *err.downcast::<TaskError>().unwrap();
    assert!(err.is_cancelled() && !err.is_panic());
    assert_eq!(err.panic_message(), None);
    let err = err.try_into_panic().unwrap_err();
    assert!(matches!(err, TaskError::Cancelled));
    let refused = panic::catch_unwind(AssertUnwindSafe(|| err.into_panic()));
    assert!(refused.is_err(), "into_panic of a cancel panics");
}

// ----- IntoJobError -----------------------------------------------------------

#[test]
fn into_job_of_another_type_goes_through_question_mark_and_gives_the_task_back() {
    let pool = TestPool::new(1);
    let gate = Gate::occupying(&pool, 1);
    let closure = pool.task().name("seven").submit(|| 7_u32).unwrap();
    let job = pool.submit_job(Chunk(3)).unwrap();
    let mut pending = pool.shutdown_now();
    gate.release();
    assert_eq!(pending.len(), 2);
    let job_task = pending.pop().unwrap();
    let closure_task = pending.pop().unwrap();
    let id = closure_task.id();

    let err = take_job(closure_task).unwrap_err();
    let shown = err.to_string();
    assert!(
        shown.starts_with(&format!("task {id} (seven) is not a pending job of type `")),
        "{shown}"
    );
    assert!(shown.contains("Chunk`"), "{shown}");
    assert!(err.source().is_none());

    // The task inside is whole: it runs, and its handle gets the value.
    let err: IntoJobError = *err.downcast::<IntoJobError>().expect("an IntoJobError");
    let debug = format!("{err:?}");
    assert!(
        debug.starts_with("IntoJobError { task: PendingTask {"),
        "{debug}"
    );
    assert!(
        debug.contains("job_type: ") && debug.contains("Chunk"),
        "{debug}"
    );
    err.into_pending().run();
    assert_eq!(bounded_join(closure).unwrap(), 7);

    // A job asked for as the wrong type comes back, and then as the right one.
    let Err(err) = job_task.into_job::<WrongJob>() else {
        panic!("a Chunk is not a WrongJob");
    };
    let err = round_trip(err);
    assert!(err.to_string().contains("WrongJob`"), "{err}");
    let chunk = take_job(err.into_pending()).expect("it is a Chunk");
    assert_eq!(chunk, Chunk(3));
    assert!(bounded_join(job).unwrap_err().is_cancelled());
    assert_eq!(pool.stats().cancelled, 1, "the taken job, once");
}

#[test]
fn dropping_an_into_job_error_cancels_its_task() {
    let pool = TestPool::new(1);
    let gate = Gate::occupying(&pool, 1);
    let drops = DropCounter::default();
    let tracked = drops.tracked();
    let handle = pool.submit(move || drop(tracked)).unwrap();
    let mut pending = pool.shutdown_now();
    gate.release();
    let err = take_job(pending.pop().unwrap()).unwrap_err();
    assert_eq!(drops.count(), 0, "the error holds the task");
    drop(err);
    assert_eq!(drops.count(), 1, "dropped once, with the error");
    assert!(bounded_join(handle).unwrap_err().is_cancelled());
    assert!(pool.await_termination(WAIT));
    assert_eq!(pool.stats().cancelled, 1);
}

struct WrongJob;

impl Job for WrongJob {
    type Output = ();
    fn run(self) {}
}

// ----- Interrupted and WaitError ----------------------------------------------

#[test]
fn interrupted_and_wait_errors_go_through_question_mark() {
    let source = StopSource::new();
    let token = source.token();
    let (tx, rx) = crossbeam_channel::unbounded();
    tx.send(5).unwrap();
    assert_eq!(receive(&token, &rx).unwrap(), 5);
    drop(tx);
    let err = receive(&token, &rx).unwrap_err();
    assert_eq!(err.to_string(), "the channel is disconnected");
    assert_eq!(
        err.downcast_ref::<WaitError>(),
        Some(&WaitError::Disconnected)
    );

    assert!(check(&token).is_ok());
    source.request_stop();
    let err = check(&token).unwrap_err();
    assert_eq!(err.to_string(), "interrupted: a stop was requested");
    assert!(err.source().is_none());
    let err = receive(&token, &rx).unwrap_err();
    assert_eq!(err.to_string(), "interrupted: a stop was requested");
    assert_eq!(
        err.downcast_ref::<WaitError>(),
        Some(&WaitError::Interrupted)
    );
}

// ----- TaskPanic --------------------------------------------------------------

#[test]
fn a_panic_handler_passes_a_task_panic_on_through_question_mark() {
    let (tx, rx) = mpsc::channel::<BoxError>();
    let pool = TestPool::build(
        ThreadPool::builder()
            .threads(1)
            .thread_name("errs")
            .panic_handler(move |panic| {
                let err = forward(Err(panic)).unwrap_err();
                tx.send(err).unwrap();
            }),
    );
    pool.task()
        .name("bad")
        .execute(|| panic!("kaboom"))
        .unwrap();
    let err = rx.recv_timeout(WAIT).expect("the handler ran");
    let shown = err.to_string();
    assert!(shown.starts_with("task #"), "{shown}");
    assert!(
        shown.ends_with(" (bad) on errs-0 panicked: kaboom"),
        "{shown}"
    );
    assert!(err.source().is_none());

    let panic = *err.downcast::<TaskPanic>().expect("a TaskPanic");
    assert_eq!(panic.name(), Some("bad"));
    assert_eq!(panic.thread(), Some("errs-0"));
    assert_eq!(panic.message(), Some("kaboom"));
    assert_eq!(panic.into_payload().downcast_ref::<&str>(), Some(&"kaboom"));
}
