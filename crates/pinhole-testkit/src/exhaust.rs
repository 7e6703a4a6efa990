//! The exhaustion path, for every protocol's tests: take every relay port
//! pair of an MPR engine, and count the log events a piece of code emits
//! (issue 18: a CMPH refused for lack of ports must not turn into a storm
//! of CMPHs or of log lines).
//!
//! ```
//! use pinhole_core::mpr::{Config, Engine, NetworkConfig};
//! use pinhole_core::ports::PortRange;
//! use pinhole_testkit::base_instant;
//! use pinhole_testkit::exhaust::{LogCount, counted, take_every_port};
//!
//! let now = base_instant();
//! let mut cfg = Config::new("203.0.113.10".parse().unwrap(), [1; 32]);
//! cfg.ports = PortRange::new(30_000, 30_007).unwrap();
//! cfg.networks.push(NetworkConfig::new("corp9", b"s".to_vec()));
//! let mut mpr = Engine::new(cfg, now).unwrap();
//! let (calls, logs): (usize, LogCount) = counted(|| take_every_port(&mut mpr, now));
//! assert_eq!((calls, mpr.free_port_pairs()), (2, 0));
//! assert_eq!(logs.warn, 1, "the one offer refused for lack of ports");
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use pinhole_core::intent::{IntentKind, MediaEndpoint, MediaIntent, Origin};
use pinhole_core::mpr::{Engine, IntentError};
use pinhole_core::types::{CallKey, Side};
use tracing::Subscriber;
use tracing::span::{Attributes, Id, Record};

/// Plans one-stream calls between two public parties (2 legs each) until
/// the engine has no port pair left; how many it planned. Use a relay
/// range with an even number of pairs, or one pair stays free.
///
/// # Panics
/// If a plan fails for another reason than exhausted ports.
pub fn take_every_port(mpr: &mut Engine, now: Instant) -> usize {
    let ep = [MediaEndpoint::rtp(
        0,
        "192.0.2.200:7000".parse().expect("literal"),
    )];
    for n in 0.. {
        let intent = MediaIntent {
            kind: IntentKind::Offer,
            from: Side::A,
            origin: Origin::Public,
            toward: Origin::Public,
            endpoints: &ep,
            stranger: None,
        };
        match mpr.handle_intent(
            now,
            &CallKey::new(format!("filler-{n}").into_bytes()),
            &intent,
        ) {
            Ok(_) => {}
            Err(IntentError::PortsExhausted) => return n,
            Err(e) => panic!("filling the relay: {e}"),
        }
    }
    unreachable!("the port range is finite")
}

/// Log events by level.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LogCount {
    /// ERROR events.
    pub error: u64,
    /// WARN events.
    pub warn: u64,
    /// INFO events.
    pub info: u64,
    /// DEBUG and TRACE events.
    pub debug: u64,
}

/// Runs `f` with a subscriber that counts the log events emitted on this
/// thread; `f`'s result and the counts.
pub fn counted<R>(f: impl FnOnce() -> R) -> (R, LogCount) {
    let counter = Counter::default();
    let levels = Arc::clone(&counter.levels);
    let r = tracing::subscriber::with_default(counter, f);
    let get = |i: usize| levels[i].load(Ordering::Relaxed);
    (
        r,
        LogCount {
            error: get(0),
            warn: get(1),
            info: get(2),
            debug: get(3),
        },
    )
}

#[derive(Default)]
struct Counter {
    levels: Arc<[AtomicU64; 4]>,
    spans: AtomicU64,
}

impl Subscriber for Counter {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }

    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(self.spans.fetch_add(1, Ordering::Relaxed) + 1)
    }

    fn record(&self, _: &Id, _: &Record<'_>) {}

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &tracing::Event<'_>) {
        let i = match *event.metadata().level() {
            tracing::Level::ERROR => 0,
            tracing::Level::WARN => 1,
            tracing::Level::INFO => 2,
            _ => 3,
        };
        self.levels[i].fetch_add(1, Ordering::Relaxed);
    }

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}
}
