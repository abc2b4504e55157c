//! The runtime under the public faces: the worker loop, the queue and the
//! chunks of batches.

pub(crate) mod chunk;
pub(crate) mod queue;
pub(crate) mod worker;
