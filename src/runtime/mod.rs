//! The runtime under the public faces: the worker loop, the queue and the
//! chunks of batches.

pub(crate) mod chunk;
pub(crate) mod intake;
pub(crate) mod ledger;
pub(crate) mod queue;
pub(crate) mod shared;
pub(crate) mod shutdown;
pub(crate) mod worker;

pub use ledger::PoolStats;
pub(crate) use shared::{Hooks, Shared};
pub(crate) mod cell;
pub(crate) mod entry;
pub(crate) mod mailbox;
pub(crate) mod pending;

pub use pending::PendingTask;
pub(crate) mod relay;
pub(crate) mod run;
pub(crate) mod slot;
