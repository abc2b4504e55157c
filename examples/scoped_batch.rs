//! A batch job as one scope: chunks of a local input, processed on the
//! pool's workers straight out of the caller's `Vec` (no `Arc`, no copies),
//! each writing its result into its own slot of a `&mut` slice; cancelled
//! on Ctrl-C (or after a number of chunks), with every chunk accounted for.
//!
//! ```text
//! cargo run --release --example scoped_batch                       # cancels itself about midway
//! cargo run --release --example scoped_batch -- --cancel-after 0   # no self-cancel: runs to the end, or Ctrl-C
//! cargo run --release --example scoped_batch -- --cancel-after 0 --chunk-ms 200   # 10 s: time for a Ctrl-C
//! cargo run --release --example scoped_batch -- --chunks 1000 --steps 4 --threads 2
//! ```
//!
//! The input (synthetic, the same on every run) is one local `Vec<u8>` of
//! `--chunks` chunks of 16 KiB, and the outputs one local `Vec` of a slot
//! per chunk, each starting as "never started". Inside
//! [`pool.scope`](drainpool::ThreadPool::scope), one task per chunk borrows
//! its chunk (`&[u8]`) and its slot (`&mut Outcome`): it works through the
//! chunk in `--steps` steps (each waits its share of `--chunk-ms`, standing
//! for slow I/O, then hashes its part), and writes its outcome into the
//! slot: the digest, or, if it was stopped, how many steps it had done.
//!
//! The scope's closure runs on the main thread, outside the pool: it
//! spawns the chunks, then follows them. It waits on their ends (a channel)
//! and on the stop token of `drainpool::signal::on_signals`, which the first
//! Ctrl-C (SIGINT) or SIGTERM fires, in one interruptible
//! [`recv`](drainpool::StopToken::recv): no polling, and a signal wakes it
//! at once. `--cancel-after N` (by default half of the chunks, so that the
//! example ends by itself in about a second; `0` = never) fires that same
//! token once N chunks are done, with
//! [`SignalGuard::trigger`](drainpool::signal::SignalGuard::trigger), as the
//! first signal would: a run that cancels itself takes the signal's path.
//! When the token fires, the closure calls
//! [`Scope::cancel`](drainpool::Scope::cancel), and then:
//!
//! - chunks that never started never will: the scope drops their closures,
//!   their slots stay "never started", and their handles say `Cancelled`;
//! - running chunks see their [`StopToken::current`] fire, which wakes the
//!   wait of the step they are in; they stop between two steps (never in
//!   the middle of one) and write "stopped after k steps" into their slot;
//! - the scope returns once every chunk has ended, as it must: its tasks
//!   borrow the input and the outputs, which live on this stack frame.
//!
//! Then the closure joins every chunk's handle and checks it against the
//! chunk's slot, and `main` prints how many chunks were done, stopped, and
//! never started, and checks every done chunk's digest against the input.
//! Exit status: 0 when every chunk is accounted for (done, stopped or never
//! started, its handle agreeing with its slot, and every digest right), 1
//! otherwise, 2 for bad arguments.
//!
//! Options: `--chunks N` (default 200), `--steps N` (per chunk, default 8),
//! `--chunk-ms MS` (how long a chunk's steps wait in all, default 40),
//! `--threads N` (default 4), `--cancel-after N`.

use std::error::Error;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use drainpool::crossbeam_channel::unbounded;
use drainpool::signal::{SIGINT, SIGTERM, on_signals};
use drainpool::{StopToken, TaskError, ThreadPool, WaitError};

const USAGE: &str = "usage: scoped_batch [--chunks N] [--steps N] [--chunk-ms MS] [--threads N] \
                     [--cancel-after N]";
/// The size of one chunk of input.
const CHUNK_BYTES: usize = 16 * 1024;

/// The command line.
#[derive(Debug)]
struct Options {
    chunks: usize,
    steps: usize,
    chunk_time: Duration,
    threads: usize,
    /// `None`: half of the chunks.
    cancel_after: Option<usize>,
}

fn parse_args() -> Result<Options, String> {
    let mut opts = Options {
        chunks: 200,
        steps: 8,
        chunk_time: Duration::from_millis(40),
        threads: 4,
        cancel_after: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--chunks" => opts.chunks = number(&value("--chunks")?)?,
            "--steps" => opts.steps = number(&value("--steps")?)?,
            "--chunk-ms" => {
                opts.chunk_time = Duration::from_millis(number(&value("--chunk-ms")?)?);
            }
            "--threads" => opts.threads = number(&value("--threads")?)?,
            "--cancel-after" => opts.cancel_after = Some(number(&value("--cancel-after")?)?),
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if opts.steps == 0 || opts.steps > CHUNK_BYTES {
        return Err(format!("--steps must be between 1 and {CHUNK_BYTES}"));
    }
    Ok(opts)
}

fn number<T: std::str::FromStr>(s: &str) -> Result<T, String> {
    s.parse().map_err(|_| format!("not a number: {s:?}"))
}

// ----- the work --------------------------------------------------------------------

/// What became of a chunk: its slot in the outputs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    /// What every slot holds until its chunk writes to it: a chunk that the
    /// cancel dropped before it started leaves it so.
    NeverStarted,
    /// Every step done: the chunk's digest.
    Done(u64),
    /// Stopped between two steps, after this many.
    Stopped { steps: usize },
}

/// Processes one chunk in `steps` steps, stopping between two of them if
/// the task's stop token fires (the scope was cancelled).
fn process(chunk: &[u8], steps: usize, step_time: Duration) -> Outcome {
    let stop = StopToken::current(); // once, at the start: it allocates
    let mut digest = FNV_OFFSET;
    for step in 0..steps {
        // The step's slow part (fetching the data, say): the wait a cancel
        // wakes. The step's effect (the hash) comes after it, so a stop
        // lands between two steps, never in the middle of one.
        if stop.sleep(step_time).is_err() {
            return Outcome::Stopped { steps: step };
        }
        let part = &chunk[step * chunk.len() / steps..(step + 1) * chunk.len() / steps];
        digest = fnv1a(digest, part);
    }
    Outcome::Done(digest)
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// FNV-1a, continued from `hash` over `data`.
fn fnv1a(hash: u64, data: &[u8]) -> u64 {
    data.iter().fold(hash, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The whole input: `chunks` chunks of synthetic bytes, the same every run.
fn input(chunks: usize) -> Vec<u8> {
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    (0..chunks * CHUNK_BYTES)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

// ----- the run ---------------------------------------------------------------------

fn main() -> ExitCode {
    let opts = match parse_args() {
        Ok(opts) => opts,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("scoped_batch: {e}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(&opts) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("scoped_batch: {e}");
            ExitCode::FAILURE
        }
    }
}

/// How a chunk's task ended, as its handle says.
type Joined = Result<(), TaskError>;

/// Runs the job; true if every chunk is accounted for.
fn run(opts: &Options) -> Result<bool, Box<dyn Error>> {
    let cancel_after = opts.cancel_after.unwrap_or(opts.chunks / 2);
    let step_time = opts.chunk_time / opts.steps as u32;
    // Both local: the tasks borrow them, which only a scope allows.
    let input = input(opts.chunks);
    let mut outputs = vec![Outcome::NeverStarted; opts.chunks];
    println!(
        "scoped_batch: {} chunks of {} KiB in {} steps each, on {} thread{}{}",
        opts.chunks,
        CHUNK_BYTES / 1024,
        opts.steps,
        opts.threads,
        if opts.threads == 1 { "" } else { "s" },
        if cancel_after > 0 {
            format!(", cancelling after {cancel_after} done")
        } else {
            String::new()
        }
    );

    // The first Ctrl-C / SIGTERM fires this token (no pool is registered
    // with the installer: the stop is the scope's cancel, below). A third
    // signal still exits at once.
    let signals = on_signals([SIGINT, SIGTERM]).install()?;
    let interrupted = signals.stop_token();
    let pool = ThreadPool::builder()
        .threads(opts.threads)
        .thread_name("chunk")
        .build()?;

    let started = Instant::now();
    let joined: Vec<Joined> = pool.scope(|s| {
        // Each task sends its outcome when it ends, and holds a sender
        // until then: once every task has ended (or was dropped by a
        // cancel without starting), the channel disconnects.
        let (ended_tx, ended) = unbounded::<Outcome>();
        let handles: Vec<_> = input
            .chunks(CHUNK_BYTES)
            .zip(outputs.iter_mut())
            .map(|(chunk, slot)| {
                let ended_tx = ended_tx.clone();
                s.spawn(move || {
                    *slot = process(chunk, opts.steps, step_time);
                    let _ = ended_tx.send(*slot);
                })
            })
            .collect();
        drop(ended_tx);

        // Follow the chunks until they have all ended, or the token fires.
        let mut done = 0;
        let mut self_cancelled = false;
        loop {
            match interrupted.recv(&ended) {
                Ok(Outcome::Done(_)) => {
                    done += 1;
                    if done == cancel_after {
                        // As the first Ctrl-C would; the next turn sees it.
                        self_cancelled = signals.trigger();
                    }
                }
                // Stopped: only after a cancel, and we stop listening then.
                Ok(Outcome::Stopped { .. } | Outcome::NeverStarted) => {}
                Err(WaitError::Disconnected) => break, // every chunk has ended
                Err(_interrupted) => {
                    let why = if self_cancelled {
                        format!("--cancel-after {cancel_after}")
                    } else {
                        "a signal (Ctrl-C or SIGTERM)".to_owned()
                    };
                    println!(
                        "cancelled by {why} after {:.2?}, {done} chunks done: cancelling the scope",
                        started.elapsed()
                    );
                    s.cancel();
                    break;
                }
            }
        }
        // Joining from outside the pool only waits; a chunk the cancel
        // dropped resolves at once.
        handles.into_iter().map(|handle| handle.join()).collect()
    });
    let elapsed = started.elapsed();
    pool.shutdown();

    // The scope has returned: the outputs are ours again. Every chunk ends
    // in exactly one place, and its slot and its handle must agree.
    let (mut done, mut stopped, mut never_started, mut wrong) = (0, 0, 0, 0);
    for (index, ((outcome, joined), chunk)) in outputs
        .iter()
        .zip(&joined)
        .zip(input.chunks(CHUNK_BYTES))
        .enumerate()
    {
        match (outcome, joined) {
            (Outcome::Done(digest), Ok(())) if *digest == fnv1a(FNV_OFFSET, chunk) => done += 1,
            (Outcome::Stopped { steps }, Ok(())) if *steps < opts.steps => stopped += 1,
            (Outcome::NeverStarted, Err(TaskError::Cancelled)) => never_started += 1,
            (outcome, joined) => {
                eprintln!("chunk {index}: slot says {outcome:?}, its handle {joined:?}");
                wrong += 1;
            }
        }
    }
    println!(
        "summary: {done} done, {stopped} stopped between steps, {never_started} never started, \
         {wrong} unaccounted for, of {} chunks, in {elapsed:.2?}",
        opts.chunks
    );
    let ok = wrong == 0 && done + stopped + never_started == opts.chunks;
    if ok {
        println!("every chunk accounted for; the digests of the {done} done chunks are right");
    } else {
        eprintln!("scoped_batch: accounting error");
    }
    Ok(ok)
}
