//! Structured work: [`ThreadPool::scope`] and [`ThreadPool::try_scope`],
//! whose tasks borrow from the caller's stack, fail fast and stop together.
//!
//! What a user must know is on [`ThreadPool::scope`], where it renders; the
//! runtime side (why the borrow is sound, who runs what while the caller
//! waits) is in `runtime/scope.rs`.

use std::fmt;
use std::marker::PhantomData;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::error::TaskError;
use crate::pool::ThreadPool;
use crate::running::{BlockedOn, Blocking};
use crate::runtime::Shared;
use crate::runtime::cell::HandleOps;
use crate::runtime::mailbox::GroupInner;
use crate::runtime::run;
use crate::runtime::worker;
use crate::stop::{StopCallback, StopToken};
use crate::task::{Closure, TaskId};
use crate::unwind;

impl ThreadPool {
    /// Runs `f` with a [`Scope`] whose tasks may borrow from the caller's
    /// stack, and returns what `f` returns once every task spawned in the
    /// scope has ended: [`std::thread::scope`] on the pool's workers, with
    /// a stop.
    ///
    /// - **Borrowing.** [`Scope::spawn`] takes closures that borrow anything
    ///   that outlives the call (`'env`): a local `Vec`, chunks of a `&mut`
    ///   slice. No `Arc`, no `'static`.
    /// - **Fail fast.** A panic in a task cancels the rest of the scope:
    ///   its queued tasks never start (their closures are dropped, their
    ///   handles resolve [`TaskError::Cancelled`]), and its running ones see
    ///   their [`StopToken::current`] fire, which wakes their interruptible
    ///   waits. Once all have ended, the first panic no
    ///   [`ScopedHandle::join`] took resumes here (a panic of `f` itself
    ///   comes first). [`Scope::cancel`] does the same on demand.
    /// - **Stop flows down.** A scope opened inside a pool task is cancelled
    ///   when that task's token fires (its handle's `cancel`, its group's
    ///   `cancel`, an enclosing scope's cancel, [`shutdown_now`]); every
    ///   scope of this pool is cancelled by its `shutdown_now`, which cannot
    ///   hand a scoped task back (it borrows from here): it cancels it, and
    ///   the scope still returns.
    /// - **Never deadlocks.** The waiting thread runs the scope's queued
    ///   tasks itself (as does a [`ScopedHandle::join`], until its task has
    ///   started), so a scope finishes even when no worker is free: on a
    ///   one-thread pool, nested ten deep, or called from outside a pool
    ///   whose workers are all blocked. Outside the pool the caller runs
    ///   them as a *guest* of the pool: such a task is the pool's like any
    ///   other (it shows in `running_tasks` on the thread
    ///   `{prefix}-scope-caller-{n}`, counts in `stats`, sees the pool's
    ///   stop), and the pool does not terminate before it has ended. Up to
    ///   four threads are guests of a pool at once; a fifth caller waits
    ///   while the workers run its tasks. Called on a worker of another
    ///   pool, the caller runs that pool's queued tasks instead, so two
    ///   pools that wait for each other's work cannot deadlock.
    /// - **Accounting.** Scoped tasks are tasks of the pool: they count in
    ///   [`stats`](Self::stats) and show in
    ///   [`running_tasks`](Self::running_tasks) like any other.
    /// - **Scheduling.** A scope's tasks start in the order they were
    ///   spawned. The pool's queue holds at most one *turn* for the whole
    ///   scope, queued at normal priority: a worker that takes it runs the
    ///   scope's queued tasks one after another, up to 64 of them or about
    ///   200 µs' worth, and if more wait it puts the turn back first, so
    ///   the others join in. Tasks queued in the pool meanwhile (of any
    ///   priority) wait at most that long for that worker.
    ///
    /// # Shutdown
    ///
    /// A scope belongs to the work that opened it. [`shutdown`] (the drain)
    /// lets every scoped task already spawned run. From then on, a scope
    /// opened by a task the drain runs (on one of the pool's workers) goes
    /// on spawning until it ends, and the drain waits for it: its worker
    /// runs what the others leave. A scope opened outside the pool spawns
    /// nothing after `shutdown`: such a spawn is refused, its closure
    /// dropped, and its handle resolves `Cancelled` (as does every spawn
    /// into a cancelled scope, and every spawn after [`shutdown_now`]). On a pool with a bounded queue a spawn waits for
    /// room like [`submit`](Self::submit); one from the pool's own worker
    /// that finds the queue full, or made during the drain, is refused the
    /// same way. Refused spawns count as rejected in `stats`.
    ///
    /// # Panics
    ///
    /// Resumes the first panic of `f` or of a task no handle joined, once
    /// every task of the scope has ended.
    ///
    /// # Examples
    ///
    /// ```
    /// use drainpool::ThreadPool;
    ///
    /// let pool = ThreadPool::new(2).unwrap();
    /// let words = vec!["drain", "pool", "stops", "cleanly"];
    /// let mut lengths = vec![0; words.len()];
    /// pool.scope(|s| {
    ///     for (word, length) in words.iter().zip(lengths.iter_mut()) {
    ///         s.spawn(move || *length = word.len()); // borrows both Vecs
    ///     }
    /// });
    /// assert_eq!(lengths, [5, 4, 5, 7]);
    /// ```
    ///
    /// Fail fast: a panic cancels what has not started and resumes here.
    ///
    /// ```
    /// use drainpool::{StopToken, ThreadPool};
    /// use std::panic::{AssertUnwindSafe, catch_unwind};
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// use std::time::Duration;
    ///
    /// let pool = ThreadPool::new(1).unwrap();
    /// let ran = AtomicUsize::new(0);
    /// let caught = catch_unwind(AssertUnwindSafe(|| {
    ///     pool.scope(|s| {
    ///         s.spawn(|| panic!("bad input"));
    ///         for _ in 0..100 {
    ///             s.spawn(|| {
    ///                 ran.fetch_add(1, Ordering::Relaxed);
    ///                 // An interruptible wait: the cancel ends it.
    ///                 let _ = StopToken::current().sleep(Duration::from_secs(60));
    ///             });
    ///         }
    ///     })
    /// }));
    /// assert_eq!(*caught.unwrap_err().downcast_ref::<&str>().unwrap(), "bad input");
    /// assert!(ran.load(Ordering::Relaxed) < 100); // the rest was cancelled
    /// ```
    ///
    /// [`shutdown`]: Self::shutdown
    /// [`shutdown_now`]: Self::shutdown_now
    pub fn scope<'env, F, R>(&self, f: F) -> R
    where
        F: for<'scope> FnOnce(&'scope Scope<'scope, 'env>) -> R,
    {
        let scope = Scope {
            core: ScopeCore::open(self.shared_arc()),
            _scope: PhantomData,
            _env: PhantomData,
        };
        let result = catch_unwind(AssertUnwindSafe(|| f(&scope)));
        scope.core.finish(result.is_err());
        match result {
            Err(payload) => resume_unwind(payload),
            Ok(value) => {
                scope.core.resume_kept_panic();
                value
            }
        }
    }

    /// [`scope`](Self::scope) for work that fails with errors rather than
    /// panics, in the shape of Go's `errgroup`: each task returns a
    /// `Result`, and the first `Err` (of a task, or of `f`) cancels the rest
    /// of the scope, as a panic does, and is what `try_scope` returns once
    /// every task has ended. Later errors are dropped. A task that returned
    /// `Err` resolves its handle [`TaskError::Failed`]; one that returned
    /// `Ok(value)` gives `value` to its handle.
    ///
    /// Everything else is as in [`scope`](Self::scope): tasks borrow, a
    /// panic cancels the rest and resumes here (it wins over any error),
    /// stop flows down.
    ///
    /// # Errors
    ///
    /// The first error returned by a task of the scope or by `f`.
    ///
    /// # Examples
    ///
    /// ```
    /// use drainpool::ThreadPool;
    ///
    /// let pool = ThreadPool::new(2).unwrap();
    /// let rows = ["1", "2", "x", "4"];
    /// let mut parsed = [0u32; 4];
    /// let result: Result<_, ParseIntError> = pool.try_scope(|s| {
    ///     for (row, out) in rows.iter().zip(parsed.iter_mut()) {
    ///         s.spawn(move || {
    ///             *out = row.parse::<u32>()?;
    ///             Ok(())
    ///         });
    ///     }
    ///     Ok("all parsed")
    /// });
    /// assert!(result.is_err()); // the "x": invalid digit
    /// # use std::num::ParseIntError;
    /// ```
    pub fn try_scope<'env, F, R, E>(&self, f: F) -> Result<R, E>
    where
        F: for<'scope> FnOnce(&'scope TryScope<'scope, 'env, E>) -> Result<R, E>,
        E: Send,
    {
        let scope = TryScope {
            core: ScopeCore::open(self.shared_arc()),
            error: Mutex::new(None),
            _scope: PhantomData,
            _env: PhantomData,
        };
        let result = catch_unwind(AssertUnwindSafe(|| f(&scope)));
        let value = match result {
            Err(payload) => {
                scope.core.finish(true);
                resume_unwind(payload)
            }
            Ok(Err(error)) => {
                scope.fail_with(error);
                None
            }
            Ok(Ok(value)) => Some(value),
        };
        scope.core.finish(false);
        scope.core.resume_kept_panic();
        let first_error = scope.error.lock().take();
        match (first_error, value) {
            (Some(error), _) => Err(error),
            (None, Some(value)) => Ok(value),
            (None, None) => unreachable!("an Err of f is kept before anything"),
        }
    }
}

/// A scope of [`ThreadPool::scope`]: spawns tasks that may borrow from
/// outside it (anything living longer than `'env`).
///
/// `'scope` is the scope's own life (tasks and handles live within it);
/// `'env` is what the tasks may borrow, as in [`std::thread::Scope`].
pub struct Scope<'scope, 'env: 'scope> {
    core: ScopeCore,
    _scope: PhantomData<&'scope mut &'scope ()>,
    _env: PhantomData<&'env mut &'env ()>,
}

/// A scope of [`ThreadPool::try_scope`]: its tasks return `Result<T, E>`,
/// and the first `Err` cancels the rest.
pub struct TryScope<'scope, 'env: 'scope, E> {
    core: ScopeCore,
    /// The first error of a task or of the scope's closure.
    error: Mutex<Option<E>>,
    _scope: PhantomData<&'scope mut &'scope ()>,
    _env: PhantomData<&'env mut &'env ()>,
}

/// What both kinds of scope are made of.
struct ScopeCore {
    shared: Arc<Shared>,
    group: Arc<GroupInner>,
    /// Cancels the scope when the opener's stop token or the pool's stop
    /// fires; unregistered when the scope ends.
    _parent: StopCallback,
}

impl<'scope> Scope<'scope, '_> {
    /// Spawns `f` as a task of the scope, on the pool; `f` may borrow from
    /// outside the scope. The returned handle may be joined, or dropped
    /// (the scope waits for the task either way).
    ///
    /// A panic in `f` cancels the rest of the scope (see
    /// [`ThreadPool::scope`]). Spawning into a cancelled scope, or into a
    /// pool that takes no more work (see "Shutdown" there), never starts
    /// `f`: it is dropped, and the handle resolves
    /// [`TaskError::Cancelled`].
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = drainpool::ThreadPool::new(2).unwrap();
    /// let numbers = [1, 2, 3, 4, 5, 6];
    /// let total: i32 = pool.scope(|s| {
    ///     let halves = numbers.split_at(3);
    ///     let left = s.spawn(|| halves.0.iter().sum::<i32>());
    ///     let right = s.spawn(|| halves.1.iter().sum::<i32>());
    ///     left.join().unwrap() + right.join().unwrap()
    /// });
    /// assert_eq!(total, 21);
    /// ```
    pub fn spawn<F, T>(&'scope self, f: F) -> ScopedHandle<'scope, T>
    where
        F: FnOnce() -> T + Send + 'scope,
        T: Send + 'scope,
    {
        let core = &self.core;
        core.spawn(move || match catch_unwind(AssertUnwindSafe(f)) {
            Ok(value) => Some(value),
            Err(payload) => {
                core.cancel();
                resume_unwind(payload)
            }
        })
    }

    /// Cancels the scope: its queued tasks never start (their closures are
    /// dropped, their handles resolve [`TaskError::Cancelled`]), later
    /// spawns are refused the same way, and its running tasks see their
    /// [`StopToken::current`] fire. The scope still waits for the running
    /// ones to end. Scopes opened inside its tasks are cancelled too.
    ///
    /// # Examples
    ///
    /// ```
    /// use drainpool::{StopToken, ThreadPool};
    /// use std::time::Duration;
    ///
    /// let pool = ThreadPool::new(2).unwrap();
    /// let stopped = pool.scope(|s| {
    ///     let watcher = s.spawn(|| StopToken::current().sleep(Duration::MAX).is_err());
    ///     s.cancel();
    ///     watcher.join().unwrap_or(true) // woken by the cancel, or never started
    /// });
    /// assert!(stopped);
    /// ```
    pub fn cancel(&self) {
        self.core.cancel();
    }

    /// True once the scope was cancelled (by [`cancel`](Self::cancel), a
    /// panic of one of its tasks, or a stop from above).
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = drainpool::ThreadPool::new(1).unwrap();
    /// pool.scope(|s| {
    ///     assert!(!s.is_cancelled());
    ///     s.cancel();
    ///     assert!(s.is_cancelled());
    /// });
    /// ```
    pub fn is_cancelled(&self) -> bool {
        self.core.is_cancelled()
    }

    /// A token that fires when the scope is cancelled, for code that works
    /// for the scope outside its tasks (the tasks' own
    /// [`StopToken::current`] fires then too).
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = drainpool::ThreadPool::new(1).unwrap();
    /// pool.scope(|s| {
    ///     let stop = s.stop_token();
    ///     s.spawn(|| panic::resume_unwind(Box::new("fail"))).join().ok();
    ///     assert!(stop.is_stop_requested()); // the panic cancelled the scope
    /// });
    /// # use std::panic;
    /// ```
    pub fn stop_token(&self) -> StopToken {
        self.core.stop_token()
    }
}

impl<'scope, E: Send + 'scope> TryScope<'scope, '_, E> {
    /// Spawns `f`, which returns `Result<T, E>`: an `Err` goes to the
    /// scope (the first one is what [`ThreadPool::try_scope`] returns) and
    /// cancels the rest of it; the handle then resolves
    /// [`TaskError::Failed`]. An `Ok` value goes to the handle. Otherwise
    /// as [`Scope::spawn`].
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = drainpool::ThreadPool::new(2).unwrap();
    /// let sizes = pool.try_scope(|s| {
    ///     let a = s.spawn(|| Ok::<_, String>(3));
    ///     let b = s.spawn(|| Ok(4));
    ///     Ok(a.join().unwrap() + b.join().unwrap())
    /// });
    /// assert_eq!(sizes, Ok(7));
    /// ```
    pub fn spawn<F, T>(&'scope self, f: F) -> ScopedHandle<'scope, T>
    where
        F: FnOnce() -> Result<T, E> + Send + 'scope,
        T: Send + 'scope,
    {
        self.core
            .spawn(move || match catch_unwind(AssertUnwindSafe(f)) {
                Ok(Ok(value)) => Some(value),
                Ok(Err(error)) => {
                    self.fail_with(error);
                    None
                }
                Err(payload) => {
                    self.core.cancel();
                    resume_unwind(payload)
                }
            })
    }

    /// Cancels the scope, as [`Scope::cancel`]; `try_scope` then returns
    /// what `f` returns, or the first error, as usual.
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = drainpool::ThreadPool::new(1).unwrap();
    /// let result = pool.try_scope(|s| {
    ///     s.cancel();
    ///     let late = s.spawn(|| Ok::<_, ()>(1));
    ///     assert!(late.join().unwrap_err().is_cancelled());
    ///     Ok("cancelled, without an error")
    /// });
    /// assert_eq!(result, Ok("cancelled, without an error"));
    /// ```
    pub fn cancel(&self) {
        self.core.cancel();
    }

    /// True once the scope was cancelled (on demand, by an error or a
    /// panic, or by a stop from above).
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = drainpool::ThreadPool::new(1).unwrap();
    /// let _ = pool.try_scope(|s| {
    ///     s.spawn(|| Err::<(), _>("bad")).join().ok();
    ///     assert!(s.is_cancelled());
    ///     Ok(())
    /// });
    /// ```
    pub fn is_cancelled(&self) -> bool {
        self.core.is_cancelled()
    }

    /// A token that fires when the scope is cancelled.
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = drainpool::ThreadPool::new(1).unwrap();
    /// let result = pool.try_scope(|s| {
    ///     let stop = s.stop_token();
    ///     s.spawn(|| Err::<(), _>("bad")).join().ok();
    ///     assert!(stop.is_stop_requested());
    ///     Ok(())
    /// });
    /// assert_eq!(result, Err("bad"));
    /// ```
    pub fn stop_token(&self) -> StopToken {
        self.core.stop_token()
    }

    /// Keeps `error` if it is the first, and cancels the scope.
    fn fail_with(&self, error: E) {
        let later = {
            let mut first = self.error.lock();
            match *first {
                None => {
                    *first = Some(error);
                    None
                }
                Some(_) => Some(error),
            }
        };
        // A later error's Drop is user code: not under our lock.
        unwind::drop_quietly(later);
        self.core.cancel();
    }
}

impl ScopeCore {
    /// Opens a scope on `shared`'s pool, cancelled when the calling task's
    /// stop token (if the caller is a task) or the pool's stop fires.
    fn open(shared: &Arc<Shared>) -> ScopeCore {
        let group = Arc::new(GroupInner::new_scope(run::is_worker_of(shared.id)));
        let mut parents = StopToken::current().states().to_vec();
        if !parents.iter().any(|state| Arc::ptr_eq(state, &shared.stop)) {
            parents.push(shared.stop.clone());
        }
        let parent = StopToken::from_states(parents).on_stop({
            let shared = shared.clone();
            let group = group.clone();
            move || {
                shared.cancel_group(&group);
            }
        });
        ScopeCore {
            shared: shared.clone(),
            group,
            _parent: parent,
        }
    }

    fn spawn<'scope, F, T>(&'scope self, f: F) -> ScopedHandle<'scope, T>
    where
        F: FnOnce() -> Option<T> + Send + 'scope,
        T: Send + 'scope,
    {
        let cell = match self.shared.spawn_scoped(&self.group, Closure(f)) {
            Ok(cell) => Some(cell),
            Err((reason, refused)) => {
                log_debug!(
                    "pool {}: a scoped spawn was refused ({reason:?}); it never starts",
                    self.shared.id
                );
                // Its captures' Drop is user code: it must not unwind here.
                unwind::drop_quietly(refused);
                None
            }
        };
        ScopedHandle {
            cell,
            core: self,
            joined: false,
        }
    }

    fn cancel(&self) {
        self.shared.cancel_group(&self.group);
    }

    fn is_cancelled(&self) -> bool {
        self.group
            .scope()
            .is_some_and(|state| state.queue.is_closed())
    }

    fn stop_token(&self) -> StopToken {
        StopToken::from_states(vec![self.group.stop_state().clone()])
    }

    /// The scope's closure returned (`failed`: by a panic, which cancels
    /// the rest): waits until every task of the scope has ended.
    fn finish(&self, failed: bool) {
        if failed {
            self.cancel();
        }
        self.shared.wait_scope(&self.group);
    }

    /// Resumes the first panic of a task that no handle took, if any.
    fn resume_kept_panic(&self) {
        if let Some(state) = self.group.scope() {
            if let Some(payload) = state.take_panic() {
                resume_unwind(payload.into_inner());
            }
        }
    }
}

/// The handle of a task spawned in a scope: [`join`](Self::join) for its
/// value. It lives within the scope; dropping it leaves the task running
/// (the scope waits for it), and a panic it then has resumes on the
/// scope's caller. As with [`std::thread::ScopedJoinHandle`], a handle
/// passed to [`std::mem::forget`] keeps its task's result alive for good,
/// and its scope then waits forever.
pub struct ScopedHandle<'scope, T> {
    /// `None`: the spawn was refused (the task never starts).
    cell: Option<Arc<dyn HandleOps<Option<T>> + 'scope>>,
    core: &'scope ScopeCore,
    joined: bool,
}

impl<T> ScopedHandle<'_, T> {
    /// Waits for the task to end and returns its value. Called on one of
    /// the pool's workers while the task is still queued, it runs the
    /// scope's queued tasks itself until this one has started, so joining
    /// never deadlocks the pool.
    ///
    /// # Errors
    ///
    /// [`TaskError::Panicked`] if the task panicked (the panic is then
    /// this caller's: it does not resume on the scope's caller);
    /// [`TaskError::Cancelled`] if it never started;
    /// [`TaskError::Failed`] if, in a `try_scope`, it returned an `Err`.
    ///
    /// # Panics
    ///
    /// Called from inside the task itself.
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = drainpool::ThreadPool::new(1).unwrap();
    /// let text = String::from("borrowed");
    /// let length = pool.scope(|s| s.spawn(|| text.len()).join().unwrap());
    /// assert_eq!(length, 8);
    /// ```
    pub fn join(mut self) -> Result<T, TaskError> {
        let Some(cell) = self.cell.clone() else {
            self.joined = true;
            return Err(TaskError::Cancelled);
        };
        if run::is_running(cell.header()) {
            panic!(
                "task {}: join called from inside the task itself, which would wait for itself \
                 forever",
                cell.header().id
            );
        }
        // A wait for the scope's work: its own wait kind, as the scope's
        // end (`wait_scope`) records; the help runs inside it.
        let _blocked = Blocking::enter(BlockedOn::Scope);
        self.help();
        self.joined = true;
        cell.join()?.ok_or(TaskError::Failed)
    }

    /// True once the task has ended (or never started): [`join`](Self::join)
    /// then returns without waiting. Never blocks.
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = drainpool::ThreadPool::new(1).unwrap();
    /// pool.scope(|s| {
    ///     let handle = s.spawn(|| 1);
    ///     while !handle.is_finished() {
    ///         std::thread::yield_now();
    ///     }
    ///     assert_eq!(handle.join().unwrap(), 1);
    /// });
    /// ```
    pub fn is_finished(&self) -> bool {
        self.cell.as_ref().is_none_or(|cell| cell.is_finished())
    }

    /// The task's id (as [`ThreadPool::running_tasks`] shows it); `None` if
    /// the spawn was refused.
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = drainpool::ThreadPool::new(1).unwrap();
    /// pool.scope(|s| {
    ///     let a = s.spawn(|| ());
    ///     let b = s.spawn(|| ());
    ///     assert_ne!(a.id(), b.id());
    /// });
    /// ```
    pub fn id(&self) -> Option<TaskId> {
        self.cell.as_ref().map(|cell| cell.header().id)
    }

    /// Runs the scope's queued tasks until this one is claimed (it may be
    /// the only thread that can): on a worker of the scope's pool as that
    /// worker, on a thread that is no pool's as a guest of the pool
    /// (`runtime/guest.rs`).
    fn help(&self) {
        let (Some(cell), core) = (&self.cell, self.core) else {
            return;
        };
        let Some(state) = core.group.scope() else {
            return;
        };
        let unclaimed = || !cell.header().is_claimed();
        if core.shared.help_scope_here(state, unclaimed).is_none() {
            // On another pool's worker, that pool's queue moves meanwhile.
            worker::help_own_pool_until(&|| cell.is_finished());
        }
    }
}

impl<T> Drop for ScopedHandle<'_, T> {
    fn drop(&mut self) {
        if self.joined {
            return;
        }
        let Some(cell) = &self.cell else {
            return;
        };
        // A panic nobody will see here goes to the scope's caller.
        if let (Some(payload), Some(state)) = (cell.detach(), self.core.group.scope()) {
            let header = cell.header();
            state.keep_panic(
                &self.core.shared,
                header.id,
                header.name().cloned(),
                payload,
            );
        }
    }
}

impl<T> fmt::Debug for ScopedHandle<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScopedHandle")
            .field("id", &self.id())
            .field("finished", &self.is_finished())
            .finish()
    }
}

impl fmt::Debug for Scope<'_, '_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scope")
            .field("cancelled", &self.is_cancelled())
            .finish_non_exhaustive()
    }
}

impl<E> fmt::Debug for TryScope<'_, '_, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TryScope")
            .field("cancelled", &self.core.is_cancelled())
            .finish_non_exhaustive()
    }
}

/// Small enough for Miri (`cargo +nightly miri test --lib scope`, with
/// `MIRIFLAGS=-Zmiri-strict-provenance`), which checks the one `unsafe`
/// of scopes: every borrow of a scoped task ends before its scope does.
#[cfg(test)]
mod tests {
    use std::panic::{AssertUnwindSafe, catch_unwind};

    use crate::ThreadPool;

    /// A result that borrows from the caller, dropped on a worker.
    struct Borrows<'a>(&'a mut u32);

    impl Drop for Borrows<'_> {
        fn drop(&mut self) {
            *self.0 += 1;
        }
    }

    #[test]
    fn borrowed_closures_and_results_end_before_the_scope() {
        let pool = ThreadPool::new(2).unwrap();
        let input = [1u32, 2, 3, 4];
        let mut drops = [0u32; 4];
        let mut out = [0u32; 4];
        pool.scope(|s| {
            for ((x, o), d) in input.iter().zip(out.iter_mut()).zip(drops.iter_mut()) {
                let handle = s.spawn(move || {
                    *o = x * 10;
                    Borrows(d)
                });
                drop(handle); // the result is dropped wherever it ends
            }
        });
        assert_eq!(out, [10, 20, 30, 40]);
        assert_eq!(drops, [1; 4]);
        let text = String::from("borrowed");
        let joined = pool.scope(|s| s.spawn(|| text.len()).join().unwrap());
        assert_eq!(joined, 8);
    }

    #[test]
    fn a_panic_and_a_cancel_drop_what_never_ran_before_the_scope_returns() {
        let pool = ThreadPool::new(1).unwrap();
        let mut counts = [0u32; 3];
        let caught = catch_unwind(AssertUnwindSafe(|| {
            pool.scope(|s| {
                let [a, b, c] = &mut counts;
                s.spawn(move || *a += 1);
                s.spawn(|| panic!("fails"));
                let late = Borrows(b);
                s.spawn(move || drop(late));
                s.cancel();
                s.spawn(move || *c += 1); // refused: dropped here
            })
        }));
        assert!(caught.is_err() || counts[2] == 0);
        assert_eq!(counts[2], 0);
        assert!(counts[1] <= 1);
    }
}
