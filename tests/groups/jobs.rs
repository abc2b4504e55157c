//! A group's never-started tasks as data: `shutdown_now` and
//! `cancel_returning` hand them back, and jobs come back as values that
//! can be submitted again.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::common::{Gate, TestPool, WAIT, bounded_join, bump};
use crate::{counts, quiescent};
use drainpool::{Job, PendingTask, RejectReason};

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

#[test]
fn a_groups_never_started_jobs_come_back_as_values() {
    let pool = TestPool::new(1);
    let job = pool.group("job");
    assert_eq!(
        bounded_join(job.submit_job(Chunk { index: 7 }).unwrap()).unwrap(),
        70
    );

    let gate = Gate::occupying(&pool, 1);
    let mut handles = Vec::new();
    for index in 0..5 {
        handles.push(job.submit_job(Chunk { index }).unwrap());
    }
    handles.push(
        job.task()
            .name("chunk-5")
            .submit_job(Chunk { index: 5 })
            .unwrap(),
    );
    let ran = Arc::new(AtomicUsize::new(0));
    job.execute(bump(&ran)).unwrap(); // a closure: not a job
    let pending = pool.shutdown_now();
    gate.release();
    assert_eq!(pending.len(), 7);
    assert_eq!(pending[5].name(), Some("chunk-5"));
    assert_eq!(counts(&job), quiescent(8, 1, 0, 7));

    let mut chunks = Vec::new();
    let mut others: Vec<PendingTask> = Vec::new();
    for task in pending {
        match task.into_job::<Chunk>() {
            Ok(chunk) => chunks.push(chunk),
            Err(err) => others.push(err.into_pending()),
        }
    }
    assert_eq!(
        chunks,
        (0..6).map(|index| Chunk { index }).collect::<Vec<_>>()
    );
    assert_eq!(others.len(), 1);
    others.pop().unwrap().run();
    assert_eq!(ran.load(Ordering::SeqCst), 1);
    for handle in handles {
        assert!(handle.join().unwrap_err().is_cancelled());
    }
    assert!(pool.await_termination(WAIT));
    let stats = pool.stats();
    assert_eq!((stats.completed, stats.cancelled), (3, 6)); // 7, gate, closure
    assert_eq!(job.progress().returned, 7);

    // Resubmitted after a "restart": the same values run.
    let again = TestPool::new(2);
    let resumed = again.group("job, resumed");
    let outputs: Vec<u32> = chunks
        .into_iter()
        .map(|chunk| resumed.submit_job(chunk).unwrap())
        .map(|handle| bounded_join(handle).unwrap())
        .collect();
    assert_eq!(outputs, vec![0, 10, 20, 30, 40, 50]);
}

#[test]
fn a_cancelled_groups_job_is_handed_back_refused() {
    let pool = TestPool::new(1);
    let job = pool.group("job");
    job.cancel();
    let rejected = job.submit_job(Chunk { index: 3 }).unwrap_err();
    assert_eq!(rejected.reason(), RejectReason::Cancelled);
    assert_eq!(rejected.into_inner(), Chunk { index: 3 });
}

#[test]
fn cancel_returning_hands_one_jobs_rest_back_and_the_books_add_up() {
    #[derive(Debug, PartialEq)]
    struct Chunk(u32);
    impl drainpool::Job for Chunk {
        type Output = u32;
        fn run(self) -> u32 {
            self.0
        }
    }
    let pool = TestPool::new(1);
    let job = pool.group("import");
    let other = pool.group("other");
    job.pause();
    job.task().name("plain").execute(|| ()).unwrap();
    let closure = job.task().name("closure").submit(|| 7u32).unwrap();
    let chunk = job.task().name("chunk").submit_job(Chunk(9)).unwrap();

    let rest = job.cancel_returning();
    let names: Vec<_> = rest.iter().map(|t| t.name().unwrap().to_owned()).collect();
    assert_eq!(names, ["plain", "closure", "chunk"]);
    assert!(
        !closure.is_finished() && !chunk.is_finished(),
        "the program decides now"
    );
    let refused = job.execute(|| ()).unwrap_err();
    assert_eq!(refused.reason(), drainpool::RejectReason::Cancelled);
    // The rest of the pool goes on.
    assert_eq!(bounded_join(other.submit(|| 5).unwrap()).unwrap(), 5);

    let p = job.progress();
    assert_eq!(
        (p.submitted, p.returned, p.queued, p.cancelled),
        (3, 3, 0, 0)
    );
    assert!(job.wait(WAIT), "handed back counts as ended for the group");

    let mut rest = rest.into_iter();
    rest.next().unwrap().run(); // the plain one, here and now
    rest.next().unwrap().run(); // the closure: its handle gets the value
    let value: Chunk = rest.next().unwrap().into_job().unwrap();
    assert_eq!(value, Chunk(9));
    assert_eq!(bounded_join(closure).unwrap(), 7);
    assert!(bounded_join(chunk).unwrap_err().is_cancelled());

    let stats = pool.stats();
    // other's task, plain and closure completed; the chunk taken back counts
    // as cancelled; nothing is still held.
    assert_eq!((stats.completed, stats.cancelled), (3, 1));
    assert!(pool.wait_idle(WAIT));
}
