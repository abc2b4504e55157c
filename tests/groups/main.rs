//! Task groups: cancel a whole job (also while producers still submit to it,
//! and racing `shutdown_now`), pause and resume it in order, wait for it,
//! watch its progress, and keep its never-started jobs as data. Every task
//! is accounted for exactly once: it ran, it was cancelled, it was handed
//! back, or it was refused and handed back to its submitter.
//!
//! One module per capability; the support they share is here.

mod bounded_queue;
mod cancel;
mod cancel_races;
#[path = "../common/mod.rs"]
mod common;
mod jobs;
mod pause;
mod progress;
mod shutdown;
mod stop_tokens;

use std::panic;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, Once};

use common::{TestPool, WAIT};
use drainpool::{GroupProgress, TaskGroup, ThreadPool};

// ----- support ----------------------------------------------------------------

/// The fate of each of a round's numbered tasks: how often its closure ran,
/// and how often the closure (its [`Probe`]) was dropped. A task that ends
/// correctly has been dropped exactly once and run at most once.
struct Fates {
    runs: Box<[AtomicU8]>,
    drops: Box<[AtomicU8]>,
}

impl Fates {
    fn new(n: usize) -> Arc<Fates> {
        Arc::new(Fates {
            runs: (0..n).map(|_| AtomicU8::new(0)).collect(),
            drops: (0..n).map(|_| AtomicU8::new(0)).collect(),
        })
    }

    /// The value task `index`'s closure owns.
    fn probe(self: &Arc<Self>, index: usize) -> Probe {
        Probe {
            fates: self.clone(),
            index,
        }
    }

    fn runs(&self, index: usize) -> u8 {
        self.runs[index].load(Ordering::SeqCst)
    }

    fn drops(&self, index: usize) -> u8 {
        self.drops[index].load(Ordering::SeqCst)
    }

    /// Dropped, never started: cancelled, or refused and dropped by
    /// its submitter.
    fn dropped_never_started(&self, index: usize) -> bool {
        self.drops(index) == 1 && self.runs(index) == 0
    }
}

/// Owned by one task's closure: counts the run and the drop of that closure.
struct Probe {
    fates: Arc<Fates>,
    index: usize,
}

impl Probe {
    fn run(&self) -> usize {
        self.fates.runs[self.index].fetch_add(1, Ordering::SeqCst);
        self.index
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        self.fates.drops[self.index].fetch_add(1, Ordering::SeqCst);
    }
}

/// The payload of the panics these tests cause on purpose.
struct Deliberate;

/// Keeps the deliberate panics off stderr; every other panic is printed as
/// usual.
fn quiet_deliberate_panics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if info.payload().downcast_ref::<Deliberate>().is_none() {
                default(info);
            }
        }));
    });
}

/// A pool whose panic handler swallows the deliberate panics.
fn quiet_pool(threads: usize) -> TestPool {
    quiet_deliberate_panics();
    TestPool::build(ThreadPool::builder().threads(threads).panic_handler(|_| {}))
}

/// `progress` adds up: every task submitted is queued, running, or ended.
fn assert_adds_up(progress: GroupProgress) {
    let ended = progress.completed + progress.panicked + progress.cancelled + progress.returned;
    let live = (progress.queued + progress.running) as u64;
    assert_eq!(
        progress.submitted,
        ended + live,
        "the group's counts do not add up: {progress:?}"
    );
}

/// A group's counts, comparable as a whole (`GroupProgress` is
/// `non_exhaustive`: it cannot be built here).
#[derive(Debug, Default, PartialEq, Eq)]
struct Counts {
    submitted: u64,
    queued: usize,
    running: usize,
    completed: u64,
    panicked: u64,
    cancelled: u64,
    returned: u64,
}

impl From<GroupProgress> for Counts {
    fn from(p: GroupProgress) -> Counts {
        Counts {
            submitted: p.submitted,
            queued: p.queued,
            running: p.running,
            completed: p.completed,
            panicked: p.panicked,
            cancelled: p.cancelled,
            returned: p.returned,
        }
    }
}

/// `group`'s counts now.
fn counts(group: &TaskGroup) -> Counts {
    Counts::from(group.progress())
}

/// What a group holds with nothing queued or running and nothing panicked.
fn quiescent(submitted: u64, completed: u64, cancelled: u64, returned: u64) -> Counts {
    Counts {
        submitted,
        completed,
        cancelled,
        returned,
        ..Counts::default()
    }
}

/// Shuts `pool` down and waits for it to terminate: then every worker has
/// finished its bookkeeping, and the counts are final.
fn finish(pool: &ThreadPool) {
    pool.shutdown();
    assert!(pool.await_termination(WAIT), "the pool terminates");
}

/// Pushes `value` to `log`.
fn push(log: &Arc<Mutex<Vec<usize>>>, value: usize) -> impl FnOnce() + Send + 'static {
    let log = log.clone();
    move || log.lock().unwrap().push(value)
}

fn logged(log: &Arc<Mutex<Vec<usize>>>) -> Vec<usize> {
    log.lock().unwrap().clone()
}
