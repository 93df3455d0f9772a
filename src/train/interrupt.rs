//! Ctrl-C (SIGINT) and SIGTERM during training: the first one asks the loop to stop after the
//! current step and save a checkpoint; a second one ends the process at once.

use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use signal_hook::consts::{SIGINT, SIGTERM};

/// The exit status of a run stopped by a signal (the shell's 128 + SIGINT).
pub const EXIT_INTERRUPTED: i32 = 130;

fn flag() -> &'static Arc<AtomicBool> {
    static FLAG: OnceLock<Arc<AtomicBool>> = OnceLock::new();
    FLAG.get_or_init(|| {
        let flag = Arc::new(AtomicBool::new(false));
        for signal in [SIGINT, SIGTERM] {
            // Registered first, so it only fires once the flag is already set: a second signal.
            let _ = signal_hook::flag::register_conditional_shutdown(
                signal,
                EXIT_INTERRUPTED,
                Arc::clone(&flag),
            );
            let _ = signal_hook::flag::register(signal, Arc::clone(&flag));
        }
        flag
    })
}

/// Starts listening for the signals (idempotent); call before training starts.
pub fn listen() {
    flag();
}

/// Whether a stop was asked for since [`listen`].
pub fn requested() -> bool {
    flag().load(Ordering::Relaxed)
}
