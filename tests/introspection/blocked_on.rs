//! `RunningTask::blocked_on`, one test per wait kind: shown while the task
//! blocks in the wait, gone once the wait has returned (the task still
//! running), and named in the task's `Display`.

use std::sync::{Arc, Condvar as StdCondvar, Mutex as StdMutex};
use std::time::Duration;

use drainpool::crossbeam_channel::{Receiver, bounded, unbounded};
use drainpool::parking_lot::{Condvar, Mutex};
use drainpool::{BlockedOn, StopSource, StopToken, TaskHandle, ThreadPool};

use crate::common::{LeakOnPanic, TestPool, WAIT, bounded_join};
use crate::{After, blocked, listed};

/// A timeout far beyond any test: the wait ends by its release.
const LONG: Duration = Duration::from_secs(600);

/// Runs `wait` in a task of `pool`; checks that `running_tasks` shows it
/// blocked on `on` while it waits, says so in its `Display`, and shows no
/// wait once `release` let the wait return (while the task still runs).
/// Returns what the wait returned.
fn probe<R: Send + 'static>(
    pool: &ThreadPool,
    on: BlockedOn,
    wait: impl FnOnce() -> R + Send + 'static,
    release: impl FnOnce(),
) -> R {
    let after = After::default();
    let task = pool
        .submit({
            let after = after.clone();
            move || {
                let waited = wait();
                after.spin();
                waited
            }
        })
        .unwrap();
    check(pool, task, on, release, &after)
}

/// The checks of [`probe`], for a `task` that waits, then calls
/// `after.spin()`; returns the task's value.
fn check<R>(
    pool: &ThreadPool,
    task: TaskHandle<R>,
    on: BlockedOn,
    release: impl FnOnce(),
    after: &After,
) -> R {
    let (shown, seen) = blocked(pool, task.id());
    assert_eq!(seen.on, on, "{shown}");
    let text = shown.to_string();
    assert!(text.ends_with(&format!(", {seen}")), "{text}");
    release();
    after.wait_past();
    let still = listed(pool, task.id()).expect("the task still runs");
    assert_eq!(still.blocked_on(), None, "{still}");
    assert!(!still.to_string().contains("blocked"), "{still}");
    after.finish();
    bounded_join(task).expect("the task ends")
}

#[test]
fn sleep() {
    let pool = TestPool::new(1);
    let source = StopSource::new();
    let token = source.token();
    let slept = probe(
        &pool,
        BlockedOn::Sleep,
        move || token.sleep(Duration::MAX),
        || {
            source.request_stop();
        },
    );
    assert!(slept.is_err(), "woken by the stop");
}

#[test]
fn recv() {
    let pool = TestPool::new(1);
    let (tx, rx) = unbounded();
    let received = probe(
        &pool,
        BlockedOn::Recv,
        move || StopToken::current().recv(&rx),
        || tx.send(7).unwrap(),
    );
    assert_eq!(received, Ok(7));
}

#[test]
fn recv_timeout() {
    let pool = TestPool::new(1);
    let (tx, rx) = unbounded();
    let received = probe(
        &pool,
        BlockedOn::Recv,
        move || StopToken::current().recv_timeout(&rx, LONG),
        || tx.send(7).unwrap(),
    );
    assert_eq!(received, Ok(7));
}

/// A flag and the condvar that says it changed.
type Flag = Arc<(Mutex<bool>, Condvar)>;

fn raise(flag: &Flag) {
    *flag.0.lock() = true;
    flag.1.notify_all();
}

#[test]
fn condvar_wait_while() {
    let pool = TestPool::new(1);
    let flag = Flag::default();
    let waiting = flag.clone();
    let woke = probe(
        &pool,
        BlockedOn::Condvar,
        move || {
            let (lock, ready) = &*waiting;
            let mut set = lock.lock();
            StopToken::current().wait_while(ready, &mut set, |set| !*set)
        },
        || raise(&flag),
    );
    assert_eq!(woke, Ok(()));
}

#[test]
fn condvar_wait_timeout() {
    let pool = TestPool::new(1);
    let flag = Flag::default();
    let waiting = flag.clone();
    let set = probe(
        &pool,
        BlockedOn::Condvar,
        move || {
            let (lock, ready) = &*waiting;
            let mut set = lock.lock();
            while !*set {
                StopToken::current()
                    .wait_timeout(ready, &mut set, LONG)
                    .unwrap();
            }
            *set
        },
        || raise(&flag),
    );
    assert!(set);
}

#[test]
fn std_condvar_wait_while() {
    let pool = TestPool::new(1);
    let flag = Arc::new((StdMutex::new(false), StdCondvar::new()));
    let waiting = flag.clone();
    let woke = probe(
        &pool,
        BlockedOn::Condvar,
        move || {
            let (lock, ready) = &*waiting;
            let set = lock.lock().unwrap();
            let (set, woke) = StopToken::current()
                .wait_while_std(ready, lock, set, |set| !*set)
                .unwrap();
            (*set, woke)
        },
        || {
            *flag.0.lock().unwrap() = true;
            flag.1.notify_all();
        },
    );
    assert_eq!(woke, (true, Ok(())));
}

#[test]
fn lock() {
    let pool = TestPool::new(1);
    let mutex = Arc::new(Mutex::new(0));
    let held = mutex.lock();
    let contended = mutex.clone();
    let value = probe(
        &pool,
        BlockedOn::Lock,
        move || StopToken::current().lock(&contended).map(|value| *value),
        || drop(held),
    );
    assert_eq!(value, Ok(0));
}

/// A token that can never fire takes the plain blocking lock: still a
/// drainpool wait, recorded the same.
#[test]
fn lock_with_a_token_that_never_fires() {
    let pool = TestPool::new(1);
    let mutex = Arc::new(Mutex::new(0));
    let held = mutex.lock();
    let contended = mutex.clone();
    let value = probe(
        &pool,
        BlockedOn::Lock,
        move || StopToken::never().lock(&contended).map(|value| *value),
        || drop(held),
    );
    assert_eq!(value, Ok(0));
}

#[test]
fn lock_std() {
    let pool = TestPool::new(1);
    let mutex = Arc::new(StdMutex::new(0));
    let held = mutex.lock().unwrap();
    let contended = mutex.clone();
    let value = probe(
        &pool,
        BlockedOn::Lock,
        move || {
            StopToken::current()
                .lock_std(&contended)
                .map(|locked| *locked.unwrap())
        },
        || drop(held),
    );
    assert_eq!(value, Ok(0));
}

/// A task of `pool` that blocks in a plain `recv` (a wait drainpool cannot
/// see) until `gate` sends, started before this returns.
fn slow_task(pool: &ThreadPool, gate: Receiver<()>) -> TaskHandle<()> {
    let (started_tx, started) = bounded(1);
    let slow = pool
        .submit(move || {
            started_tx.send(()).unwrap();
            gate.recv().unwrap();
        })
        .unwrap();
    started.recv_timeout(WAIT).expect("the slow task started");
    slow
}

#[test]
fn wait_task() {
    let pool = TestPool::new(2);
    let (release, gate) = bounded(1);
    let slow = slow_task(&pool, gate);
    let on = BlockedOn::Task(slow.id());
    let waited = probe(
        &pool,
        on,
        move || StopToken::current().wait_task(&slow),
        || release.send(()).unwrap(),
    );
    assert_eq!(waited, Ok(()));
}

#[test]
fn join_that_waits() {
    let pool = TestPool::new(2);
    let (release, gate) = bounded(1);
    let slow = slow_task(&pool, gate);
    let on = BlockedOn::Task(slow.id());
    let joined = probe(
        &pool,
        on,
        move || slow.join().is_ok(),
        || release.send(()).unwrap(),
    );
    assert!(joined);
}

#[test]
fn wait_timeout_on_a_handle() {
    let pool = TestPool::new(2);
    let (release, gate) = bounded(1);
    let slow = slow_task(&pool, gate);
    let on = BlockedOn::Task(slow.id());
    let ended = probe(
        &pool,
        on,
        move || slow.wait_timeout(LONG),
        || release.send(()).unwrap(),
    );
    assert!(ended);
}

/// A join of a task that has ended is not a wait: no record, ever (the
/// task would show one only if it blocked).
#[test]
fn join_of_an_ended_task_is_no_wait() {
    let pool = TestPool::new(2);
    let done = pool.submit(|| 5).unwrap();
    assert!(done.wait_timeout(WAIT));
    let after = After::default();
    let task = pool
        .submit({
            let after = after.clone();
            move || {
                let value = done.join().unwrap();
                after.spin();
                value
            }
        })
        .unwrap();
    after.wait_past();
    let shown = listed(&pool, task.id()).expect("the task still runs");
    assert_eq!(shown.blocked_on(), None, "{shown}");
    after.finish();
    assert_eq!(bounded_join(task).unwrap(), 5);
}

/// A pool shared with its own tasks (a scope is opened on it from one of
/// them); kept alive for good if the test fails.
fn shared_pool(threads: usize) -> (Arc<ThreadPool>, LeakOnPanic) {
    let pool = Arc::new(ThreadPool::new(threads).unwrap());
    let leak = LeakOnPanic(pool.clone());
    (pool, leak)
}

/// Ends a pool shared with its tasks, with a bound.
fn end(pool: &ThreadPool) {
    pool.shutdown();
    assert!(pool.await_termination(WAIT), "the pool terminated");
}

#[test]
fn scoped_handle_join() {
    let (pool, _leak) = shared_pool(2);
    let (release, gate) = bounded::<()>(1);
    let inner = pool.clone();
    let joined = probe(
        &pool,
        BlockedOn::Scope,
        move || {
            inner.scope(|s| {
                let task = s.spawn(move || gate.recv().unwrap());
                task.join().is_ok()
            })
        },
        || release.send(()).unwrap(),
    );
    assert!(joined);
    end(&pool);
}

/// The scope's caller waiting for the scope's tasks at its end. Needs the
/// `Blocking` guard in `runtime/scope.rs::wait_scope`.
#[test]
fn scope_end() {
    let (pool, _leak) = shared_pool(2);
    let (release, gate) = bounded::<()>(1);
    let inner = pool.clone();
    probe(
        &pool,
        BlockedOn::Scope,
        move || {
            inner.scope(|s| {
                s.spawn(move || gate.recv().unwrap());
            })
        },
        || release.send(()).unwrap(),
    );
    end(&pool);
}
