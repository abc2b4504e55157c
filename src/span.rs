//! The submitter's `tracing` span, carried to the worker (feature
//! `tracing`); without the feature, a zero-sized nothing, so the carrying
//! code needs no `cfg`.

/// The span current when a task was submitted.
#[cfg(feature = "tracing")]
pub(crate) type SubmitSpan = tracing::Span;

/// Without the `tracing` feature there is no span to carry.
#[cfg(not(feature = "tracing"))]
pub(crate) type SubmitSpan = ();

/// The span current on this thread now.
#[inline(always)]
pub(crate) fn current() -> SubmitSpan {
    #[cfg(feature = "tracing")]
    {
        tracing::Span::current()
    }
}

/// Runs `f` inside `span` (entered on this thread, exited after `f`, also
/// on unwind).
#[inline(always)]
pub(crate) fn in_span<R>(span: &SubmitSpan, f: impl FnOnce() -> R) -> R {
    #[cfg(feature = "tracing")]
    {
        span.in_scope(f)
    }
    #[cfg(not(feature = "tracing"))]
    {
        let _ = span;
        f()
    }
}
