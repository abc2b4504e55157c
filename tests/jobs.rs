//! Jobs as data: `submit_job` runs a `Job` value, and a job that never
//! started comes back from `shutdown_now` as that value through
//! `PendingTask::into_job`, so a program can keep it and resubmit it.

use std::sync::mpsc;
use std::time::Duration;

use drainpool::{Job, PendingTask, RejectReason, TaskError, ThreadPool};

const BOUND: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, PartialEq, Eq)]
struct Chunk {
    index: u32,
}

impl Job for Chunk {
    type Output = u32;
    fn run(self) -> u32 {
        self.index * 10
    }
}

#[derive(Debug, PartialEq, Eq)]
struct Other(u8);

impl Job for Other {
    type Output = ();
    fn run(self) {}
}

struct Explode;

impl Job for Explode {
    type Output = u32;
    fn run(self) -> u32 {
        panic!("job exploded")
    }
}

/// Occupies the only worker of `pool` until the returned sender is dropped
/// or sent to; returns once the worker is surely busy.
fn hold_the_worker(pool: &ThreadPool) -> mpsc::Sender<()> {
    let (started_tx, started_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    pool.execute(move || {
        started_tx.send(()).unwrap();
        let _ = release_rx.recv_timeout(BOUND);
    })
    .unwrap();
    started_rx
        .recv_timeout(BOUND)
        .expect("the worker started the holder");
    release_tx
}

fn finish(pool: &ThreadPool) {
    pool.shutdown();
    assert!(pool.await_termination(BOUND), "the pool terminates");
}

#[test]
fn a_job_runs_and_its_handle_gets_the_output() {
    let pool = ThreadPool::new(2).unwrap();
    let handle = pool.submit_job(Chunk { index: 4 }).unwrap();
    assert!(handle.wait_timeout(BOUND));
    assert_eq!(handle.join().unwrap(), 40);
    let named = pool
        .task()
        .name("chunk-5")
        .submit_job(Chunk { index: 5 })
        .unwrap();
    assert_eq!(named.name(), Some("chunk-5"));
    assert!(named.wait_timeout(BOUND));
    assert_eq!(named.join().unwrap(), 50);
    finish(&pool);
}

#[test]
fn a_refused_job_is_handed_back_as_the_value() {
    let pool = ThreadPool::new(1).unwrap();
    pool.shutdown();
    let rejected = pool.submit_job(Chunk { index: 9 }).unwrap_err();
    assert_eq!(rejected.reason(), RejectReason::Shutdown);
    assert_eq!(rejected.into_inner(), Chunk { index: 9 });
    assert_eq!(pool.stats().rejected, 1);
    finish(&pool);
}

#[test]
fn a_never_started_job_comes_back_as_the_value_in_order() {
    let pool = ThreadPool::new(1).unwrap();
    let release = hold_the_worker(&pool);
    let handles: Vec<_> = (0..5)
        .map(|index| pool.submit_job(Chunk { index }).unwrap())
        .collect();
    let pending = pool.shutdown_now();
    drop(release);
    assert_eq!(pending.len(), 5);
    let jobs: Vec<Chunk> = pending
        .into_iter()
        .map(|task| task.into_job::<Chunk>().expect("a Chunk job"))
        .collect();
    assert_eq!(
        jobs,
        (0..5).map(|index| Chunk { index }).collect::<Vec<_>>()
    );
    for handle in handles {
        assert!(handle.wait_timeout(BOUND));
        assert!(matches!(handle.join(), Err(TaskError::Cancelled)));
    }
    assert!(pool.await_termination(BOUND));
    let stats = pool.stats();
    // The holder completed; the five jobs taken back count as cancelled.
    assert_eq!((stats.completed, stats.cancelled), (1, 5));
    // Taken back, the values can be submitted again (here to a new pool).
    let again = ThreadPool::new(1).unwrap();
    let outputs: Vec<u32> = jobs
        .into_iter()
        .map(|job| again.submit_job(job).unwrap())
        .map(|handle| handle.join().unwrap())
        .collect();
    assert_eq!(outputs, vec![0, 10, 20, 30, 40]);
    finish(&again);
}

#[test]
fn into_job_of_the_wrong_kind_leaves_the_task_untouched() {
    let pool = ThreadPool::new(1).unwrap();
    let release = hold_the_worker(&pool);
    let job = pool.submit_job(Chunk { index: 3 }).unwrap();
    let closure = pool.submit(|| 7u32).unwrap();
    let mut pending = pool.shutdown_now();
    drop(release);
    assert_eq!(pending.len(), 2);
    let closure_task = pending.pop().unwrap();
    let job_task = pending.pop().unwrap();

    // A job of another type, and a closure, are not `Chunk`s.
    let job_task: PendingTask = job_task.into_job::<Other>().unwrap_err().into_pending();
    let closure_task: PendingTask = closure_task.into_job::<Chunk>().unwrap_err().into_pending();
    assert!(!job.is_finished() && !closure.is_finished());

    // Both are still whole tasks: they run, and their handles get the values.
    job_task.run();
    closure_task.run();
    assert_eq!(job.join().unwrap(), 30);
    assert_eq!(closure.join().unwrap(), 7);
    assert!(pool.await_termination(BOUND));
    assert_eq!(pool.stats().cancelled, 0);
}

#[test]
fn a_job_cancelled_through_its_handle_cannot_be_taken_back_nor_counted_twice() {
    let pool = ThreadPool::new(1).unwrap();
    let release = hold_the_worker(&pool);
    let handle = pool.submit_job(Chunk { index: 1 }).unwrap();
    let mut pending = pool.shutdown_now();
    drop(release);
    assert!(handle.cancel(), "still queued: the cancel wins");
    let task = pending.pop().unwrap();
    let task = task.into_job::<Chunk>().unwrap_err();
    drop(task); // already cancelled: not counted again
    assert!(pool.await_termination(BOUND));
    assert_eq!(pool.stats().cancelled, 1);
    assert!(matches!(handle.join(), Err(TaskError::Cancelled)));
}

#[test]
fn a_panicking_job_reports_to_its_handle() {
    let pool = ThreadPool::new(1).unwrap();
    let handle = pool.submit_job(Explode).unwrap();
    assert!(handle.wait_timeout(BOUND));
    let err = handle.join().unwrap_err();
    assert_eq!(err.panic_message(), Some("job exploded"));
    assert_eq!(pool.stats().panicked, 1);
    finish(&pool);
}
