//! The crate's own log lines: to `log` always, and to `tracing` as well
//! with the feature `tracing`, so that a program that only installed a
//! `tracing` subscriber (without the `log` bridge) still sees the pool's
//! lifecycle events, stuck tasks and expired deadlines.
//!
//! The macros take what `log::warn!` and friends take (a format string and
//! its arguments; no `target:`).

macro_rules! log_at {
    ($log:ident, $tracing:ident, $($arg:tt)+) => {{
        ::log::$log!($($arg)+);
        #[cfg(feature = "tracing")]
        ::tracing::$tracing!($($arg)+);
    }};
}

macro_rules! log_error {
    ($($arg:tt)+) => { log_at!(error, error, $($arg)+) };
}

macro_rules! log_warn {
    ($($arg:tt)+) => { log_at!(warn, warn, $($arg)+) };
}

macro_rules! log_debug {
    ($($arg:tt)+) => { log_at!(debug, debug, $($arg)+) };
}
