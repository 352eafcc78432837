//! SIGTERM, SIGINT and SIGHUP wait while refreshed tokens are being saved.
//!
//! Once a refresh request is out, a server that rotates refresh tokens may
//! already have retired the stored one; stopping before the vault holding
//! the answer is renamed into place would lose the grant (the next refresh
//! replays the old token and the server revokes the whole grant). So from
//! the first request until the write is done these signals are held, then
//! honoured: the process ends as the signal's default action would, after
//! saving. A second signal while held stops at once (exit 128 + signal),
//! for a person who would rather re-authorize than wait; systemd sends one
//! SIGTERM and, after `TimeoutStopSec`, SIGKILL. SIGKILL cannot be held.

use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};

const HELD: [i32; 3] = [SIGTERM, SIGINT, SIGHUP];

/// Shared with the handlers, which only touch atomics.
struct State {
    /// True outside a held section: the signal's default action runs.
    passing: Arc<AtomicBool>,
    /// True once a held signal arrived: a second one exits at once.
    received: Arc<AtomicBool>,
    /// The last held signal that arrived (0: none).
    pending: Arc<AtomicUsize>,
}

static STATE: OnceLock<Option<State>> = OnceLock::new();

fn install() -> Option<State> {
    let state = State {
        passing: Arc::new(AtomicBool::new(true)),
        received: Arc::new(AtomicBool::new(false)),
        pending: Arc::new(AtomicUsize::new(0)),
    };
    for signal in HELD {
        // Order matters: each action sees the flags the earlier ones left.
        // 1. Outside a held section: the default action, as if no handler.
        // 2. A second signal while held: exit now.
        // 3. Remember the signal for the end of the section.
        let registered =
            signal_hook::flag::register_conditional_default(signal, Arc::clone(&state.passing))
                .and_then(|_| {
                    signal_hook::flag::register_conditional_shutdown(
                        signal,
                        128 + signal,
                        Arc::clone(&state.received),
                    )
                })
                .and_then(|_| signal_hook::flag::register(signal, Arc::clone(&state.received)))
                .and_then(|_| {
                    signal_hook::flag::register_usize(
                        signal,
                        Arc::clone(&state.pending),
                        usize::try_from(signal).unwrap_or(0),
                    )
                });
        if let Err(error) = registered {
            tracing::warn!(
                "cannot hold stop signals while saving ({error}); a stop during a refresh may lose a rotated token"
            );
            return None;
        }
    }
    Some(state)
}

/// While alive, SIGTERM, SIGINT and SIGHUP are held; dropping it honours
/// one that arrived.
pub(crate) struct HeldStopSignals {
    state: Option<&'static State>,
}

impl HeldStopSignals {
    /// Starts holding (installs the handlers on first use).
    pub(crate) fn hold() -> Self {
        let state = STATE.get_or_init(install).as_ref();
        if let Some(state) = state {
            state.passing.store(false, Ordering::SeqCst);
        }
        Self { state }
    }
}

impl Drop for HeldStopSignals {
    fn drop(&mut self) {
        let Some(state) = self.state else {
            return;
        };
        state.passing.store(true, Ordering::SeqCst);
        let pending = state.pending.swap(0, Ordering::SeqCst);
        state.received.store(false, Ordering::SeqCst);
        if let Ok(signal) = i32::try_from(pending)
            && signal != 0
        {
            let name = signal_hook::low_level::signal_name(signal).unwrap_or("a stop signal");
            tracing::warn!(
                "{name} arrived during the refresh; it was held until the vault was saved, stopping now"
            );
            // The default action of these signals ends the process; exit
            // the same way if it somehow returns.
            let _ = signal_hook::low_level::emulate_default_handler(signal);
            signal_hook::low_level::exit(128 + signal);
        }
    }
}
