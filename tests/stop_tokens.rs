//! `StopSource` and `StopToken`: who raises a stop, who sees it, and the
//! callbacks registered with `on_stop` — run once, run at once when late,
//! never run once unregistered, contained when they panic, and waited for
//! when they are unregistered while running. Ends with a hammer test of
//! registration and unregistration racing `request_stop`.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex, mpsc};
use std::thread::{self, ThreadId};
use std::time::{Duration, Instant};

use common::{BRIEF, Rng, WAIT, bump, sleep_until_stopped, spin};
use drainpool::{Interrupted, StopCallback, StopSource, StopToken, TaskError, ThreadPool};

/// A callback counter: how many times the callback ran.
fn counter() -> Arc<AtomicUsize> {
    Arc::new(AtomicUsize::new(0))
}

fn count(counter: &AtomicUsize) -> usize {
    counter.load(Ordering::SeqCst)
}

// ----- StopSource / StopToken ---------------------------------------------

#[test]
fn request_stop_is_true_only_for_the_call_that_flips_it() {
    let source = StopSource::new();
    let token = source.token();
    assert!(!source.is_stop_requested());
    assert!(!token.is_stop_requested());
    assert!(source.request_stop());
    assert!(!source.request_stop());
    assert!(!source.request_stop());
    assert!(source.is_stop_requested());
    assert!(token.is_stop_requested());
}

#[test]
fn concurrent_request_stop_is_true_for_exactly_one_caller() {
    const THREADS: usize = 4;
    for round in 0..200 {
        let source = StopSource::new();
        let barrier = Arc::new(Barrier::new(THREADS));
        let callers: Vec<_> = (0..THREADS)
            .map(|_| {
                let source = source.clone();
                let barrier = barrier.clone();
                thread::spawn(move || {
                    barrier.wait();
                    source.request_stop()
                })
            })
            .collect();
        let flipped = callers
            .into_iter()
            .map(|c| c.join().unwrap())
            .filter(|&flipped| flipped)
            .count();
        assert_eq!(flipped, 1, "round {round}: {flipped} callers flipped it");
        assert!(source.token().is_stop_requested());
    }
}

#[test]
fn clones_share_one_request() {
    let source = StopSource::new();
    let other_source = source.clone();
    let token = source.token();
    let token_clone = token.clone();
    let token_of_clone = other_source.token();
    assert!(!token_clone.is_stop_requested());

    assert!(other_source.request_stop());
    assert!(!source.request_stop(), "the clone raised it already");
    for t in [&token, &token_clone, &token_of_clone] {
        assert!(t.is_stop_requested());
    }
    assert!(source.is_stop_requested());

    // A token made after the request sees it too.
    assert!(source.token().is_stop_requested());
}

#[test]
fn separate_sources_are_independent() {
    let a = StopSource::new();
    let b = StopSource::new();
    a.request_stop();
    assert!(a.token().is_stop_requested());
    assert!(!b.token().is_stop_requested());
}

#[test]
fn dropping_the_source_does_not_request_a_stop() {
    let source = StopSource::new();
    let token = source.token();
    let hits = counter();
    let _cb = token.on_stop(bump(&hits));
    drop(source);
    assert!(!token.is_stop_requested());
    assert!(token.check().is_ok());
    assert_eq!(count(&hits), 0);
}

#[test]
fn tokens_cross_threads() {
    let source = StopSource::new();
    let token = source.token();
    let (tx, rx) = mpsc::channel();
    let observer = thread::spawn(move || {
        tx.send(()).unwrap();
        // Interruptible wait: returns once the main thread requests.
        token.sleep(WAIT)
    });
    rx.recv_timeout(WAIT).unwrap();
    source.request_stop();
    assert_eq!(observer.join().unwrap(), Err(Interrupted));
}

#[test]
fn never_never_fires() {
    let token = StopToken::never();
    let hits = counter();
    let cb = token.on_stop(bump(&hits));
    assert!(!token.is_stop_requested());
    assert_eq!(token.check(), Ok(()));
    assert_eq!(token.sleep(Duration::from_millis(1)), Ok(()));
    drop(cb);
    assert_eq!(count(&hits), 0);

    let default = StopToken::default();
    assert!(!default.is_stop_requested());
    assert_eq!(default.check(), Ok(()));
}

#[test]
fn check_works_with_the_question_mark() {
    fn one_unit(token: &StopToken, done: &mut u32) -> Result<(), Interrupted> {
        token.check()?;
        *done += 1;
        Ok(())
    }
    fn work(token: &StopToken, stop_after: u32) -> (u32, Result<(), Interrupted>) {
        let mut done = 0;
        let result = (|| {
            loop {
                one_unit(token, &mut done)?;
                if done == stop_after {
                    return Ok(());
                }
            }
        })();
        (done, result)
    }

    let source = StopSource::new();
    assert_eq!(work(&source.token(), 3), (3, Ok(())));
    source.request_stop();
    assert_eq!(work(&source.token(), 3), (0, Err(Interrupted)));
    assert_eq!(source.token().check(), Err(Interrupted));
    assert_eq!(
        Interrupted.to_string(),
        "interrupted: a stop was requested",
        "Display is for people"
    );
}

// ----- StopToken::current -------------------------------------------------

#[test]
fn current_outside_a_pool_never_fires() {
    let token = StopToken::current();
    let hits = counter();
    let _cb = token.on_stop(bump(&hits));

    // Not even a shutdown_now of a pool reaches a token taken outside it.
    let pool = ThreadPool::new(1).unwrap();
    let seen_in_task = pool
        .submit(|| StopToken::current().is_stop_requested())
        .unwrap();
    assert!(!seen_in_task.join().unwrap());
    drop(pool.shutdown_now());
    assert!(pool.await_termination(WAIT));

    assert!(!token.is_stop_requested());
    assert_eq!(token.check(), Ok(()));
    assert_eq!(count(&hits), 0);
    assert!(!StopToken::current().is_stop_requested());
    // A spawned non-pool thread is "outside" too.
    let elsewhere = thread::spawn(|| StopToken::current().check())
        .join()
        .unwrap();
    assert_eq!(elsewhere, Ok(()));
}

#[test]
fn current_in_a_task_fires_on_shutdown_now() {
    let pool = ThreadPool::new(2).unwrap();
    let (token_tx, token_rx) = mpsc::channel();
    // The task keeps its callback registered until the test has checked it
    // ran: dropping it earlier (as soon as the sleep wakes) may unregister
    // it before `shutdown_now` gets to it, which `on_stop` allows.
    let (checked_tx, checked_rx) = mpsc::channel::<()>();
    let hits = counter();
    let callback_hits = hits.clone();
    let handle = pool
        .submit(move || {
            let token = StopToken::current();
            let cb = token.on_stop(move || {
                callback_hits.fetch_add(1, Ordering::SeqCst);
            });
            token_tx.send(token.clone()).unwrap();
            let slept = token.sleep(WAIT);
            let _ = checked_rx.recv_timeout(WAIT);
            drop(cb);
            (slept, token.is_stop_requested())
        })
        .unwrap();
    let token = token_rx.recv_timeout(WAIT).unwrap();
    assert!(!token.is_stop_requested(), "nobody asked yet");
    assert_eq!(count(&hits), 0);

    let started = Instant::now();
    let pending = pool.shutdown_now();
    assert!(pending.is_empty());
    // The request is raised (and its callbacks have run) when shutdown_now returns.
    assert!(token.is_stop_requested());
    assert_eq!(count(&hits), 1);
    checked_tx.send(()).unwrap();

    let (slept, seen) = handle.join().unwrap();
    assert_eq!(slept, Err(Interrupted));
    assert!(seen);
    assert!(started.elapsed() < WAIT / 2, "the sleep was interrupted");
    assert!(pool.await_termination(WAIT));
    assert_eq!(count(&hits), 1, "a callback runs once");
}

#[test]
fn current_in_a_task_fires_on_its_own_handle_cancel_only() {
    let pool = ThreadPool::new(2).unwrap();
    let (started_tx, started_rx) = mpsc::channel();
    let spawn_sleeper = |label: &'static str| {
        let started_tx = started_tx.clone();
        pool.task()
            .name(label)
            .submit(move || {
                let token = StopToken::current();
                started_tx.send((label, token.clone())).unwrap();
                token.sleep(WAIT)
            })
            .unwrap()
    };
    let victim = spawn_sleeper("victim");
    let bystander = spawn_sleeper("bystander");
    let mut tokens = std::collections::HashMap::new();
    for _ in 0..2 {
        let (label, token) = started_rx.recv_timeout(WAIT).unwrap();
        tokens.insert(label, token);
    }

    assert!(!victim.cancel(), "running: cancel cannot prevent the start");
    assert!(tokens["victim"].is_stop_requested());
    assert_eq!(victim.join().unwrap(), Err(Interrupted));

    // The other task, and the pool, are untouched.
    assert!(!tokens["bystander"].is_stop_requested());
    assert!(!bystander.is_finished());
    let after = pool.submit(|| StopToken::current().check()).unwrap();
    assert_eq!(after.join().unwrap(), Ok(()));
    assert!(!tokens["bystander"].is_stop_requested());

    assert!(!bystander.cancel());
    assert_eq!(bystander.join().unwrap(), Err(Interrupted));
    pool.shutdown();
    assert!(pool.await_termination(WAIT));
}

#[test]
fn a_cancelled_queued_task_never_sees_a_token() {
    let pool = ThreadPool::new(1).unwrap();
    let (started_tx, started_rx) = mpsc::channel();
    let blocker = pool.submit(sleep_until_stopped(started_tx, WAIT)).unwrap();
    started_rx.recv_timeout(WAIT).unwrap();
    let ran = Arc::new(AtomicBool::new(false));
    let ran_in_task = ran.clone();
    let queued = pool
        .submit(move || ran_in_task.store(true, Ordering::SeqCst))
        .unwrap();
    assert!(queued.cancel(), "still queued: it will never start");
    assert!(matches!(queued.join(), Err(TaskError::Cancelled)));
    assert!(!blocker.cancel());
    assert_eq!(blocker.join().unwrap(), Err(Interrupted));
    pool.shutdown();
    assert!(pool.await_termination(WAIT));
    assert!(!ran.load(Ordering::SeqCst));
}

// ----- on_stop --------------------------------------------------------------

/// A callback that bumps `hits` and notes, in the cell returned with it,
/// the thread it ran on.
fn bump_and_note_thread(
    hits: &Arc<AtomicUsize>,
) -> (impl FnOnce() + Send + 'static, Arc<Mutex<Option<ThreadId>>>) {
    let ran_on = Arc::new(Mutex::new(None));
    let (bump, ran_on_in_cb) = (bump(hits), ran_on.clone());
    let callback = move || {
        bump();
        *ran_on_in_cb.lock().unwrap() = Some(thread::current().id());
    };
    (callback, ran_on)
}

#[test]
fn on_stop_runs_once_on_the_requesting_thread() {
    let source = StopSource::new();
    let hits = counter();
    let (callback, ran_on) = bump_and_note_thread(&hits);
    let _cb = source.token().on_stop(callback);
    assert_eq!(count(&hits), 0, "not before the request");

    let requester = {
        let source = source.clone();
        thread::spawn(move || {
            assert!(source.request_stop());
            thread::current().id()
        })
    };
    let requester_id = requester.join().unwrap();
    assert_eq!(count(&hits), 1);
    assert_eq!(*ran_on.lock().unwrap(), Some(requester_id));

    assert!(!source.request_stop());
    assert_eq!(count(&hits), 1, "a second request runs nothing");
}

#[test]
fn on_stop_runs_every_registered_callback() {
    let source = StopSource::new();
    let counters: Vec<_> = (0..10).map(|_| counter()).collect();
    let callbacks: Vec<StopCallback> = counters
        .iter()
        .map(|h| source.token().on_stop(bump(h)))
        .collect();
    source.request_stop();
    for (i, h) in counters.iter().enumerate() {
        assert_eq!(count(h), 1, "callback {i}");
    }
    drop(callbacks);
    for h in &counters {
        assert_eq!(count(h), 1, "dropping after the run changes nothing");
    }
}

#[test]
fn on_stop_runs_at_once_when_already_requested() {
    let source = StopSource::new();
    source.request_stop();
    let hits = counter();
    let (callback, ran_on) = bump_and_note_thread(&hits);
    let cb = source.token().on_stop(callback);
    assert_eq!(count(&hits), 1, "ran before on_stop returned");
    assert_eq!(*ran_on.lock().unwrap(), Some(thread::current().id()));
    drop(cb);
    source.request_stop();
    assert_eq!(count(&hits), 1);
}

#[test]
fn dropped_callback_never_runs() {
    let source = StopSource::new();
    let dropped = counter();
    let kept = counter();
    let cb_dropped = source.token().on_stop(bump(&dropped));
    let _cb_kept = source.token().on_stop(bump(&kept));
    drop(cb_dropped);
    source.request_stop();
    assert_eq!(count(&dropped), 0);
    assert_eq!(count(&kept), 1);
}

#[test]
fn dropping_a_callback_drops_its_captures() {
    let source = StopSource::new();
    let capture = Arc::new(());
    let in_cb = capture.clone();
    let cb = source.token().on_stop(move || drop(in_cb));
    assert_eq!(Arc::strong_count(&capture), 2);
    drop(cb);
    assert_eq!(Arc::strong_count(&capture), 1, "unregistering frees it");

    let in_cb = capture.clone();
    let _cb = source.token().on_stop(move || drop(in_cb));
    source.request_stop();
    assert_eq!(Arc::strong_count(&capture), 1, "running consumes it");
}

#[test]
fn panicking_callback_is_contained_and_the_others_still_run() {
    let source = StopSource::new();
    let before = counter();
    let after = counter();
    let _a = source.token().on_stop(bump(&before));
    let _boom = source.token().on_stop(|| panic!("a callback panics"));
    let _b = source.token().on_stop(bump(&after));
    let _boom2 = source.token().on_stop(|| std::panic::panic_any(42_u32));

    assert!(
        source.request_stop(),
        "the panic does not reach the requester"
    );
    assert_eq!(count(&before), 1);
    assert_eq!(count(&after), 1);
    assert!(source.token().is_stop_requested());

    // A late registration runs at once on this thread: its panic is contained too.
    let late = counter();
    let _late_boom = source.token().on_stop(|| panic!("a late callback panics"));
    let _late = source.token().on_stop(bump(&late));
    assert_eq!(count(&late), 1);
}

#[test]
fn dropping_a_running_callback_waits_for_it_to_return() {
    let source = StopSource::new();
    let (entered_tx, entered_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let finished = Arc::new(AtomicBool::new(false));
    let finished_in_cb = finished.clone();
    let cb = source.token().on_stop(move || {
        entered_tx.send(()).unwrap();
        // Bounded: a broken drop fails the test instead of hanging it.
        let _ = release_rx.recv_timeout(WAIT);
        finished_in_cb.store(true, Ordering::SeqCst);
    });

    let requester = {
        let source = source.clone();
        thread::spawn(move || source.request_stop())
    };
    entered_rx.recv_timeout(WAIT).expect("the callback started");

    let (dropped_tx, dropped_rx) = mpsc::channel();
    let finished_at_drop = finished.clone();
    let dropper = thread::spawn(move || {
        drop(cb);
        // Read right after the drop returned: must see the callback's end.
        let seen = finished_at_drop.load(Ordering::SeqCst);
        dropped_tx.send(seen).unwrap();
    });

    // The drop must still be waiting while the callback runs.
    assert_eq!(
        dropped_rx.recv_timeout(BRIEF),
        Err(mpsc::RecvTimeoutError::Timeout),
        "StopCallback::drop returned while its callback was running"
    );
    release_tx.send(()).unwrap();
    let seen_finished = dropped_rx.recv_timeout(WAIT).expect("the drop returned");
    assert!(
        seen_finished,
        "the callback was still running after drop returned"
    );
    assert!(requester.join().unwrap());
    dropper.join().unwrap();
}

#[test]
fn a_callback_may_drop_its_own_registration() {
    let source = StopSource::new();
    let slot: Arc<Mutex<Option<StopCallback>>> = Arc::new(Mutex::new(None));
    let slot_in_cb = slot.clone();
    let hits = counter();
    let h = hits.clone();
    let cb = source.token().on_stop(move || {
        h.fetch_add(1, Ordering::SeqCst);
        // Dropping our own StopCallback from inside the callback must not
        // wait for ourselves.
        let own = slot_in_cb.lock().unwrap().take();
        drop(own);
    });
    *slot.lock().unwrap() = Some(cb);

    let requester = {
        let source = source.clone();
        thread::spawn(move || source.request_stop())
    };
    let (done_tx, done_rx) = mpsc::channel();
    thread::spawn(move || done_tx.send(requester.join().unwrap()).unwrap());
    assert_eq!(
        done_rx.recv_timeout(WAIT),
        Ok(true),
        "request_stop deadlocked on a callback dropping itself"
    );
    assert_eq!(count(&hits), 1);
    assert!(slot.lock().unwrap().is_none());
}

#[test]
fn a_callback_may_register_another_and_request_again() {
    let source = StopSource::new();
    let inner_hits = counter();
    let inner = inner_hits.clone();
    let source_in_cb = source.clone();
    let keep: Arc<Mutex<Vec<StopCallback>>> = Arc::new(Mutex::new(Vec::new()));
    let keep_in_cb = keep.clone();
    let _cb = source.token().on_stop(move || {
        assert!(!source_in_cb.request_stop(), "already raised");
        // Registered during the request: runs at once.
        let cb = source_in_cb.token().on_stop(bump(&inner));
        keep_in_cb.lock().unwrap().push(cb);
    });
    let requester = thread::spawn(move || source.request_stop());
    let (done_tx, done_rx) = mpsc::channel();
    thread::spawn(move || done_tx.send(requester.join().unwrap()).unwrap());
    assert_eq!(done_rx.recv_timeout(WAIT), Ok(true));
    assert_eq!(count(&inner_hits), 1);
}

// ----- the hammer -----------------------------------------------------------

/// Every callback of one round: how often it ran, and what its registering
/// thread decided to do with it.
struct Probe {
    hits: Arc<AtomicUsize>,
    /// Set by the registering thread: the hit count right after its drop
    /// returned (`None`: never dropped before the request finished).
    at_drop: Option<usize>,
    /// A stop had been requested before `on_stop` was called.
    late: bool,
    /// The hit count right after `on_stop` returned.
    at_register: usize,
}

#[test]
fn callbacks_registered_and_dropped_concurrently_with_request_stop() {
    const ROUNDS: u64 = 2_000;
    const REGISTRARS: usize = 2;
    const PER_THREAD: usize = 8;
    /// Spin counts spread over 0..4096 (see [`Rng::spins`]).
    const SCALES: u64 = 13;
    #[derive(Debug, Default)]
    struct Seen {
        late: usize,
        dropped_unrun: usize,
        dropped_after_run: usize,
    }
    let mut seen = Seen::default();
    for round in 0..ROUNDS {
        let source = StopSource::new();
        let barrier = Arc::new(Barrier::new(REGISTRARS + 1));
        let registrars: Vec<_> = (0..REGISTRARS)
            .map(|t| {
                let token = source.token();
                let barrier = barrier.clone();
                thread::spawn(move || {
                    let mut rng = Rng((0x9E37_79B9_7F4A_7C15 ^ (round << 8) ^ t as u64) | 1);
                    barrier.wait();
                    let mut probes = Vec::with_capacity(PER_THREAD);
                    let mut kept = Vec::new();
                    for _ in 0..PER_THREAD {
                        spin(rng.spins(SCALES) / 8);
                        let hits = counter();
                        let late = token.is_stop_requested();
                        let cb = token.on_stop(bump(&hits));
                        let at_register = hits.load(Ordering::SeqCst);
                        let at_drop = if rng.next() % 2 == 0 {
                            spin(rng.spins(SCALES) / 8);
                            drop(cb);
                            Some(hits.load(Ordering::SeqCst))
                        } else {
                            kept.push(cb);
                            None
                        };
                        probes.push(Probe {
                            hits,
                            at_drop,
                            late,
                            at_register,
                        });
                    }
                    // Keep the rest registered until the round is judged.
                    (probes, kept)
                })
            })
            .collect();
        let mut rng = Rng((0xD1B5_4A32_D192_ED03 ^ round) | 1);
        barrier.wait();
        spin(rng.spins(SCALES));
        assert!(source.request_stop());
        for (t, registrar) in registrars.into_iter().enumerate() {
            let (probes, kept) = registrar.join().expect("a registrar panicked");
            for (i, p) in probes.iter().enumerate() {
                let hits = count(&p.hits);
                let what = format!("round {round}, thread {t}, callback {i}");
                assert!(hits <= 1, "{what}: ran {hits} times");
                if p.late {
                    assert_eq!(p.at_register, 1, "{what}: late, must run at once");
                    seen.late += 1;
                }
                match p.at_drop {
                    // Never dropped: the request must have run it.
                    None => assert_eq!(hits, 1, "{what}: registered, never ran"),
                    // Dropped: whatever it was when the drop returned, it stays.
                    Some(at_drop) => {
                        assert_eq!(hits, at_drop, "{what}: ran after its drop returned");
                        if at_drop == 0 {
                            seen.dropped_unrun += 1;
                        } else if !p.late {
                            seen.dropped_after_run += 1;
                        }
                    }
                }
            }
            // A drop after the request changes nothing either.
            drop(kept);
            for p in &probes {
                assert!(count(&p.hits) <= 1);
            }
        }
    }
    // The rounds really did race: each outcome happened somewhere.
    eprintln!("hammer coverage: {seen:?}");
    assert!(seen.late > 0, "{seen:?}");
    assert!(seen.dropped_unrun > 0, "{seen:?}");
    assert!(seen.dropped_after_run > 0, "{seen:?}");
}

#[test]
fn many_sources_linked_into_one_pool_task_token_fire_once() {
    // Inside a submitted task the token observes two sources (the pool's and
    // the task's own); a callback on it runs once even when both fire.
    let pool = ThreadPool::new(1).unwrap();
    let hits = counter();
    let h = hits.clone();
    let (ready_tx, ready_rx) = mpsc::channel();
    let handle = pool
        .submit(move || {
            let token = StopToken::current();
            let cb = token.on_stop(bump(&h));
            ready_tx.send(()).unwrap();
            let slept = token.sleep(WAIT);
            (slept, cb)
        })
        .unwrap();
    ready_rx.recv_timeout(WAIT).unwrap();
    assert!(!handle.cancel()); // the task's own source
    drop(pool.shutdown_now()); // the pool's source
    let (slept, cb) = handle.join().unwrap();
    assert_eq!(slept, Err(Interrupted));
    assert_eq!(count(&hits), 1);
    drop(cb);
    assert!(pool.await_termination(WAIT));
    assert_eq!(count(&hits), 1);
}

/// Regression (issue 12, defect 13): `request_stop` with many callbacks
/// took them from the front of a vector, one by one: quadratic (10k: 15 ms,
/// 40k: 273 ms, so 400k would take about half a minute). Linear, it runs
/// 400k callbacks well within the bound.
#[test]
fn request_stop_with_many_callbacks_is_linear() {
    const CALLBACKS: usize = 400_000;
    let source = StopSource::new();
    let token = source.token();
    let ran = Arc::new(AtomicUsize::new(0));
    let callbacks: Vec<StopCallback> = (0..CALLBACKS).map(|_| token.on_stop(bump(&ran))).collect();
    let requester = common::spawn(move || source.request_stop());
    assert!(requester.join("request_stop of 400k callbacks"));
    assert_eq!(ran.load(Ordering::SeqCst), CALLBACKS);
    let dropper = common::spawn(move || drop(callbacks));
    dropper.join("dropping 400k ran callbacks");
    // Unregistering as many that never ran is linear too.
    let unrun: Vec<StopCallback> = (0..CALLBACKS)
        .map(|_| StopSource::new().token())
        .take(1)
        .flat_map(|token| (0..CALLBACKS).map(move |_| token.on_stop(|| ())))
        .collect();
    let dropper = common::spawn(move || drop(unrun));
    dropper.join("dropping 400k callbacks that never ran");
}
