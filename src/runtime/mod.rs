//! The runtime under the public faces: intake, the queue, the workers,
//! shutdown, and the one claim that decides each task's end.
//!
//! The design notes (a task's end-state machine, where each end is
//! counted, the lock order of every internal mutex, and why no wait misses
//! its wake-up) are in `README.md` beside this file; keep them up to date.

pub(crate) mod cell;
pub(crate) mod chunk;
pub(crate) mod entry;
pub(crate) mod fifo;
pub(crate) mod guest;
pub(crate) mod intake;
pub(crate) mod ledger;
pub(crate) mod mailbox;
pub(crate) mod metrics;
pub(crate) mod pending;
pub(crate) mod queue;
pub(crate) mod relay;
pub(crate) mod run;
pub(crate) mod scope;
pub(crate) mod scope_queue;
pub(crate) mod shared;
pub(crate) mod shutdown;
pub(crate) mod slot;
pub(crate) mod timer;
pub(crate) mod worker;

pub use ledger::{GroupProgress, PoolStats};
pub use metrics::{Percentiles, PoolMetrics};
pub use pending::{IntoJobError, PendingTask};
pub(crate) use shared::{Hooks, Shared};
