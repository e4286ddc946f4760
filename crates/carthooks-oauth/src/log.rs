//! `tracing` glue: events compile to nothing without the `tracing` feature.
//! No event carries a token, a secret or a body.

macro_rules! event {
    ($level:ident, $($arg:tt)*) => {{
        #[cfg(feature = "tracing")]
        tracing::$level!(target: "carthooks", $($arg)*);
    }};
}

pub(crate) use event;
