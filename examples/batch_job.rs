//! Seed 003, fixed: a batch job split into chunks, processed as one task
//! group with a progress bar, cancelled on Ctrl-C (or after a number of
//! chunks), and resumed by a second run from the chunks that never started.
//!
//! ```text
//! cargo run --example batch_job                        # cancels itself about midway, saves the rest
//! cargo run --example batch_job -- --resume            # processes only the saved chunks
//! cargo run --example batch_job -- --cancel-after 0    # no self-cancel: runs to the end, or Ctrl-C
//! cargo run --example batch_job -- --chunks 1000 --chunk-ms 5 --state /tmp/job.resume
//! ```
//!
//! The input (synthetic, the same on every run) is split into `--chunks`
//! chunks of 16 KiB. Each chunk is a `Chunk` value that implements
//! [`drainpool::Job`]: it hashes its bytes, then "writes the result" (a
//! `--chunk-ms` pause, interruptible through its stop token). All chunks go
//! into one [`drainpool::TaskGroup`], whose
//! [`progress`](drainpool::TaskGroup::progress) drives an `indicatif` bar.
//!
//! The job is cancelled by the first Ctrl-C (SIGINT) or SIGTERM, through the
//! stop token of `drainpool::signal::on_signals`, or once `--cancel-after N`
//! chunks have completed (by default half of them on a fresh run, so that
//! the example ends by itself in about a second; never with `--resume`;
//! `0` = never). Then nothing is lost:
//!
//! - chunks that never started come back from `shutdown_now` as
//!   `PendingTask`s, and `into_job::<Chunk>()` gives each one back as the
//!   very `Chunk` value that was submitted;
//! - chunks that were running see their stop token fire, stop before
//!   writing their result, and hand themselves back (`Err(chunk)`);
//! - their indices are saved to the state file (`--state FILE`, default
//!   `target/batch_job.resume`), with the checksum of the chunks done so far.
//!
//! `--resume` reads that file and processes only those chunks. When the last
//! one is done, the checksum over all chunks is checked against that of an
//! uninterrupted run, and the state file is removed.
//!
//! Other options: `--threads N` (default 4). Exit status: 0 when every chunk
//! is accounted for (done, or saved for later), 1 otherwise, 2 for bad
//! arguments.

use std::collections::BTreeSet;
use std::error::Error;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use drainpool::signal::{SIGINT, SIGTERM, on_signals};
use drainpool::{Job, StopToken, TaskError, TaskHandle, ThreadPool};
use indicatif::{ProgressBar, ProgressStyle};

const USAGE: &str = "usage: batch_job [--resume] [--chunks N] [--threads N] [--chunk-ms MS] \
                     [--cancel-after N] [--state FILE]";
/// The size of one chunk of input.
const CHUNK_BYTES: usize = 16 * 1024;
/// How often the progress bar is updated (and the cancel conditions checked).
const TICK: Duration = Duration::from_millis(10);
/// The bound on waiting for the pool to stop once cancelled.
const STOP_BOUND: Duration = Duration::from_secs(10);

/// The command line.
#[derive(Debug)]
struct Options {
    resume: bool,
    chunks: u32,
    threads: usize,
    chunk_time: Duration,
    /// `None`: the default for the kind of run.
    cancel_after: Option<u64>,
    state: PathBuf,
}

fn parse_args() -> Result<Options, String> {
    let mut opts = Options {
        resume: false,
        chunks: 200,
        threads: 4,
        chunk_time: Duration::from_millis(20),
        cancel_after: None,
        state: PathBuf::from("target/batch_job.resume"),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--resume" => opts.resume = true,
            "--chunks" => opts.chunks = number(&value("--chunks")?)?,
            "--threads" => opts.threads = number(&value("--threads")?)?,
            "--chunk-ms" => {
                opts.chunk_time = Duration::from_millis(number(&value("--chunk-ms")?)?);
            }
            "--cancel-after" => opts.cancel_after = Some(number(&value("--cancel-after")?)?),
            "--state" => opts.state = PathBuf::from(value("--state")?),
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(opts)
}

fn number<T: std::str::FromStr>(s: &str) -> Result<T, String> {
    s.parse().map_err(|_| format!("not a number: {s:?}"))
}

// ----- the job ------------------------------------------------------------------

/// One chunk of the input: where it is, and its bytes.
///
/// A [`Job`] value rather than a closure: a chunk that never started comes
/// back from `shutdown_now` as this very value (`PendingTask::into_job`), so
/// the program can save it.
#[derive(Debug)]
struct Chunk {
    index: u32,
    data: Vec<u8>,
    /// How long writing the result takes.
    write_time: Duration,
}

impl Job for Chunk {
    /// The chunk's digest; or, if the job was stopped before the result was
    /// written, the chunk itself, to be done again later.
    type Output = Result<u64, Chunk>;

    fn run(self) -> Result<u64, Chunk> {
        let digest = fnv1a(&self.data);
        // "Writing the result": the slow part. It waits on the task's stop
        // token, which fires when the pool is stopped with `shutdown_now`
        // (and would on the group's `cancel`), so a cancel does not wait for
        // running chunks to finish.
        match StopToken::current().sleep(self.write_time) {
            Ok(()) => Ok(digest),
            Err(_interrupted) => Err(self),
        }
    }
}

fn fnv1a(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The whole input: `chunks` chunks of synthetic bytes, the same every run.
fn input(chunks: u32) -> Vec<u8> {
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    (0..chunks as usize * CHUNK_BYTES)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn chunk_bytes(input: &[u8], index: u32) -> &[u8] {
    let start = index as usize * CHUNK_BYTES;
    &input[start..start + CHUNK_BYTES]
}

/// The checksum of an uninterrupted run: the sum of every chunk's digest.
fn full_checksum(input: &[u8], chunks: u32) -> u64 {
    (0..chunks).fold(0u64, |sum, i| {
        sum.wrapping_add(fnv1a(chunk_bytes(input, i)))
    })
}

// ----- the state file -------------------------------------------------------------

/// What a cancelled run leaves for the next one.
#[derive(Debug, Default)]
struct State {
    /// Chunks in the whole job.
    chunks: u32,
    /// Chunks done so far, over all runs.
    done: u32,
    /// The sum of their digests.
    checksum: u64,
    /// Chunks still to process, in order.
    left: Vec<u32>,
}

impl State {
    fn save(&self, path: &Path) -> Result<(), Box<dyn Error>> {
        let mut text = String::from("# drainpool batch_job: chunks left to process\n");
        writeln!(text, "chunks {}", self.chunks)?;
        writeln!(text, "done {}", self.done)?;
        writeln!(text, "checksum {}", self.checksum)?;
        for index in &self.left {
            writeln!(text, "left {index}")?;
        }
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::create_dir_all(dir)?;
        }
        // Written whole, then renamed: a crash never leaves half a state.
        let tmp = path.with_extension("tmp");
        fs::write(&tmp, text)?;
        fs::rename(&tmp, path)?;
        Ok(())
    }

    fn load(path: &Path) -> Result<State, Box<dyn Error>> {
        let text = fs::read_to_string(path).map_err(|e| {
            format!(
                "cannot read the state of a cancelled run at {}: {e}",
                path.display()
            )
        })?;
        let mut state = State::default();
        for line in text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
        {
            let (key, value) = line
                .split_once(' ')
                .ok_or_else(|| format!("bad line in {}: {line:?}", path.display()))?;
            match key {
                "chunks" => state.chunks = value.parse()?,
                "done" => state.done = value.parse()?,
                "checksum" => state.checksum = value.parse()?,
                "left" => state.left.push(value.parse()?),
                _ => return Err(format!("unknown key in {}: {key:?}", path.display()).into()),
            }
        }
        if let Some(bad) = state.left.iter().find(|&&i| i >= state.chunks) {
            return Err(format!("chunk {bad} is out of range in {}", path.display()).into());
        }
        Ok(state)
    }
}

// ----- the run ----------------------------------------------------------------------

fn main() -> ExitCode {
    let opts = match parse_args() {
        Ok(opts) => opts,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("batch_job: {e}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(&opts) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("batch_job: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(opts: &Options) -> Result<ExitCode, Box<dyn Error>> {
    let mut state = if opts.resume {
        State::load(&opts.state)?
    } else {
        State {
            chunks: opts.chunks,
            left: (0..opts.chunks).collect(),
            ..State::default()
        }
    };
    let todo = std::mem::take(&mut state.left);
    let cancel_after = opts.cancel_after.unwrap_or(if opts.resume {
        0
    } else {
        todo.len() as u64 / 2
    });
    let input = input(state.chunks);
    println!(
        "batch_job: {} {} of {} chunks on {} threads{}",
        if opts.resume {
            "resuming"
        } else {
            "processing"
        },
        todo.len(),
        state.chunks,
        opts.threads,
        if cancel_after > 0 {
            format!(", cancelling after {cancel_after}")
        } else {
            String::new()
        }
    );

    // The first Ctrl-C / SIGTERM fires this token; no pool is registered
    // with the installer, so the stop is ours to carry out (below). A third
    // signal still exits at once.
    let signals = on_signals([SIGINT, SIGTERM]).install()?;
    let interrupted = signals.stop_token();

    let pool = ThreadPool::builder()
        .threads(opts.threads)
        .thread_name("batch")
        .build()?;
    let job = pool.group("batch-job");
    let started = Instant::now();
    let mut handles: Vec<(u32, TaskHandle<Result<u64, Chunk>>)> = Vec::with_capacity(todo.len());
    for &index in &todo {
        let chunk = Chunk {
            index,
            data: chunk_bytes(&input, index).to_vec(),
            write_time: opts.chunk_time,
        };
        let handle = job
            .task()
            .name(format!("chunk-{index}"))
            .submit_job(chunk)
            .map_err(|rejected| format!("chunk {index} refused: {}", rejected.reason()))?;
        handles.push((index, handle));
    }

    let bar = ProgressBar::new(todo.len() as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:40.cyan/blue} {pos}/{len} chunks  {msg}",
        )?
        .progress_chars("=> "),
    );
    let cancelled_by = loop {
        let finished = job.wait(TICK);
        let progress = job.progress();
        bar.set_position(progress.completed + progress.panicked);
        bar.set_message(format!(
            "{} running, {} queued",
            progress.running, progress.queued
        ));
        if finished {
            break None;
        }
        if interrupted.is_stop_requested() {
            break Some("a signal (Ctrl-C)".to_owned());
        }
        if cancel_after > 0 && progress.completed >= cancel_after {
            break Some(format!("--cancel-after {cancel_after}"));
        }
    };

    let mut left = BTreeSet::new();
    let mut never_started = 0;
    match &cancelled_by {
        None => {
            bar.finish_with_message("all done");
            pool.shutdown();
        }
        Some(why) => {
            bar.abandon_with_message(format!("cancelled by {why}"));
            // Why `shutdown_now` and not `job.cancel()`: a group's cancel is
            // for a job nobody wants any more; it drops the queued chunks at
            // once (that is what unclogs the queue in seed 003). Here we want
            // them back, to save, and `shutdown_now` is the call that hands
            // never-started tasks back, in submission order. This pool runs
            // only this job, so stopping it is what we want anyway; running
            // chunks see their stop token fire and hand themselves back.
            let progress = job.progress();
            println!(
                "cancelled by {why}: {} chunks completed, {} running, {} queued",
                progress.completed, progress.running, progress.queued
            );
            for task in pool.shutdown_now() {
                // The very `Chunk` we submitted (its handle now resolves
                // `Cancelled`). Only chunks were submitted to this pool; were
                // it anything else, `?` would end the run with an error
                // naming the task and the type it is not.
                let chunk: Chunk = task.into_job()?;
                left.insert(chunk.index);
                never_started += 1;
            }
        }
    }
    if !pool.await_termination(STOP_BOUND) {
        return Err(format!("the pool did not stop within {STOP_BOUND:?}").into());
    }

    // Every chunk of this run ends in exactly one place: done, stopped while
    // running (handed back by its own job), or never started (handed back by
    // `shutdown_now`, so its handle says Cancelled).
    let (mut done, mut stopped, mut panicked) = (0u32, 0, 0);
    for (index, handle) in handles {
        match handle.join() {
            Ok(Ok(digest)) => {
                state.checksum = state.checksum.wrapping_add(digest);
                done += 1;
            }
            Ok(Err(chunk)) => {
                left.insert(chunk.index);
                stopped += 1;
            }
            Err(TaskError::Cancelled) if left.contains(&index) => {}
            Err(TaskError::Cancelled) => {
                return Err(format!("chunk {index} was cancelled but not handed back").into());
            }
            Err(e) => {
                eprintln!("chunk {index} failed ({e}); it will be processed again");
                left.insert(index);
                panicked += 1;
            }
        }
    }
    state.done += done;
    let elapsed = started.elapsed();
    println!(
        "summary: {done} done, {stopped} stopped while running, {never_started} never started, \
         {panicked} failed, in {elapsed:.2?}"
    );
    println!("group progress: {:?}", job.progress());
    if done as usize + left.len() != todo.len() {
        eprintln!(
            "batch_job: accounting error: {} chunks, {done} done + {} left",
            todo.len(),
            left.len()
        );
        return Ok(ExitCode::FAILURE);
    }

    if !left.is_empty() {
        state.left = left.into_iter().collect();
        state.save(&opts.state)?;
        println!(
            "saved {} chunks to {}; run again with --resume{}",
            state.left.len(),
            opts.state.display(),
            if opts.state == Path::new("target/batch_job.resume") {
                String::new()
            } else {
                format!(" --state {}", opts.state.display())
            }
        );
        return Ok(ExitCode::SUCCESS);
    }
    if opts.resume {
        fs::remove_file(&opts.state)?;
    }
    let expected = full_checksum(&input, state.chunks);
    let matches = state.done == state.chunks && state.checksum == expected;
    println!(
        "all {} chunks done; checksum {:#018x} {}",
        state.chunks,
        state.checksum,
        if matches {
            "matches an uninterrupted run"
        } else {
            "DOES NOT match an uninterrupted run"
        }
    );
    Ok(if matches {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
