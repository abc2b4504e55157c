//! The crate's own log lines: to `log` always, and to `tracing` as well
//! with the feature `tracing`, so that a program that only installed a
//! `tracing` subscriber (without the `log` bridge) still sees the pool's
//! lifecycle events, stuck tasks and expired deadlines.
//!
//! The macros take what `log::warn!` and friends take (a format string and
//! its arguments; no `target:`).
//!
//! The arguments are evaluated once, whichever of the two takes the line
//! (an argument that moves a value, or costs a call, is fine).

macro_rules! log_at {
    ($log:ident, $tracing:ident, $($arg:tt)+) => {
        match ::core::format_args!($($arg)+) {
            line => {
                ::log::$log!("{}", line);
                #[cfg(feature = "tracing")]
                ::tracing::$tracing!("{}", line);
            }
        }
    };
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

#[cfg(test)]
mod tests {
    /// An argument that moves a value compiles (it did not with the
    /// feature `tracing` when both macros got the arguments), and the
    /// arguments are evaluated once, also when neither takes the line (no
    /// logger here).
    #[test]
    fn arguments_are_evaluated_once() {
        let owned = String::from("moved into the line");
        let mut evaluated = 0;
        log_warn!("{} {}", { owned }, {
            evaluated += 1;
            evaluated
        });
        assert_eq!(evaluated, 1);
    }
}
