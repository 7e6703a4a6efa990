//! Rate-limited logging: a flood of datagrams must not become a flood of
//! log lines.
//!
//! Every per-datagram log line (garbage SIP, a replayed control message, a
//! refused media intent …) would otherwise cost one line per datagram: at
//! 1 000 datagrams/s, 2.3 MB of WARN lines per 10 s. Counters stay exact;
//! only log lines are limited.
//!
//! **The rule.** Per callsite (one `tracing` macro invocation at WARN or
//! ERROR, [`Rule::least_severe`]: a flood can be of errors; INFO lines of
//! calls and registrations all pass), at most
//! [`Rule::burst`] events pass per [`Rule::interval`]; the rest of that
//! interval's events of the callsite are suppressed and counted. The
//! interval of a callsite starts with its first event after the previous
//! one ended. Its suppressed count is reported in **one** summary event,
//! WARN, target [`TARGET`] (`pinhole::logs`):
//!
//! ```text
//! WARN pinhole::logs: 4995 similar log lines suppressed in the last 10 s suppressed=4995 callsite="pinhole_sip::alg::mpr:718 SIP: unparsable message dropped"
//! ```
//!
//! either just before the callsite's next event after the interval, or at
//! the next [`LogLimit::flush`] once the interval is over (the daemons flush
//! every interval, [`LogLimit::spawn_flusher`]), or at
//! [`LogLimit::flush_all`] (at exit). `callsite` names the event's target
//! and line and its message as first seen (else its file and line).
//! Events of target [`TARGET`] are never limited.
//!
//! [`Limiter`] is the rule alone, sans-IO: keys and [`Instant`]s in,
//! verdicts out. [`LogLimit`] holds one behind a mutex and
//! [`RateLimited`] wraps a `tracing_subscriber` output layer with it:
//!
//! ```
//! use std::time::Duration;
//! use pinhole_net::logs::{LogLimit, Rule};
//! use tracing_subscriber::layer::SubscriberExt;
//!
//! let limit = LogLimit::new(Rule { burst: 5, interval: Duration::from_secs(10), ..Rule::default() });
//! let subscriber = tracing_subscriber::registry()
//!     // Filters stay outside, on the whole stack; the output layer goes inside.
//!     .with(limit.layer(tracing_subscriber::fmt::layer().with_writer(std::io::sink)));
//! tracing::subscriber::with_default(subscriber, || {
//!     for _ in 0..1000 {
//!         tracing::warn!("garbage datagram dropped"); // 5 lines, 995 counted
//!     }
//!     limit.flush_all(); // one summary line: 995 suppressed
//! });
//! ```
//!
//! The mutex is never held while an event is written, so a summary (or any
//! event the writer itself logs) cannot deadlock.

use std::collections::HashMap;
use std::fmt::{self, Write as _};
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tracing::field::{Field, Visit};
use tracing::span;
use tracing::subscriber::Interest;
use tracing::{Dispatch, Event, Level, Metadata, Subscriber};
use tracing_core::callsite::{Callsite, Identifier};
use tracing_core::field::{FieldSet, Value};
use tracing_core::metadata::{Kind, LevelFilter};
use tracing_subscriber::layer::{Context, Layer};

/// The target of the summary events, which are never limited.
pub const TARGET: &str = "pinhole::logs";

/// How many log lines of one callsite pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rule {
    /// Events of one callsite that pass per interval; 0: no limit at all.
    pub burst: u32,
    /// The interval (counted from a callsite's first event in it).
    pub interval: Duration,
    /// Callsites tracked at most. Callsites are static, so a program has a
    /// bounded number; this caps the memory anyway. Past it (after idle
    /// callsites are forgotten), events of untracked callsites are
    /// suppressed and counted together.
    pub max_callsites: usize,
    /// The least severe level limited. Less severe events pass: the INFO
    /// lines of a call's or a registration's life must all be there under
    /// real load, and what anyone on the internet can trigger per datagram
    /// is logged at WARN or ERROR. Default WARN.
    pub least_severe: Level,
}

impl Default for Rule {
    /// 5 WARN or ERROR events per callsite per 10 s, 4096 callsites.
    fn default() -> Self {
        Self {
            burst: 5,
            interval: Duration::from_secs(10),
            max_callsites: 4096,
            least_severe: Level::WARN,
        }
    }
}

impl Rule {
    /// Whether this rule limits anything (`burst > 0`).
    pub fn limits(&self) -> bool {
        self.burst > 0
    }
}

/// What [`Limiter::admit`] says about one event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admit {
    /// Let it through.
    Pass,
    /// Let it through after a summary: its key's previous interval held
    /// back `suppressed` events (a new interval starts with this one).
    PassAfter {
        /// Events of the key suppressed in its previous interval.
        suppressed: u64,
    },
    /// Hold it back; it is counted.
    Suppress,
}

/// One key's current interval.
#[derive(Clone, Copy, Debug)]
struct Window {
    start: Instant,
    passed: u32,
    suppressed: u64,
}

impl Window {
    fn over(&self, now: Instant, interval: Duration) -> bool {
        now.saturating_duration_since(self.start) >= interval
    }
}

/// The rule, sans-IO: per key, at most `burst` events pass per interval,
/// the rest are counted until reported ([`Admit::PassAfter`], [`due`],
/// [`drain`]).
///
/// ```
/// use std::time::{Duration, Instant};
/// use pinhole_net::logs::{Admit, Limiter, Rule};
///
/// let t0 = Instant::now();
/// let mut l = Limiter::new(Rule { burst: 2, interval: Duration::from_secs(10), max_callsites: 8, ..Rule::default() });
/// assert_eq!(l.admit("a", t0), Admit::Pass);
/// assert_eq!(l.admit("a", t0), Admit::Pass);
/// assert_eq!(l.admit("a", t0), Admit::Suppress);
/// assert_eq!(l.due(t0 + Duration::from_secs(10)), vec![("a", 1)]);
/// ```
///
/// [`due`]: Limiter::due
/// [`drain`]: Limiter::drain
#[derive(Debug)]
pub struct Limiter<K> {
    rule: Rule,
    windows: HashMap<K, Window>,
    /// Events of keys not tracked (the table full) suppressed since the
    /// last [`Limiter::take_overflow`].
    overflow: u64,
    /// When idle keys were last forgotten (at most once per interval).
    swept: Option<Instant>,
}

impl<K: Eq + Hash + Clone> Limiter<K> {
    /// A limiter with nothing tracked yet.
    pub fn new(rule: Rule) -> Self {
        Self {
            rule,
            windows: HashMap::new(),
            overflow: 0,
            swept: None,
        }
    }

    /// The rule it applies.
    pub fn rule(&self) -> Rule {
        self.rule
    }

    /// Keys tracked now (at most [`Rule::max_callsites`]).
    pub fn tracked(&self) -> usize {
        self.windows.len()
    }

    /// The verdict on one event of `key` at `now`.
    pub fn admit(&mut self, key: K, now: Instant) -> Admit {
        let Rule {
            burst, interval, ..
        } = self.rule;
        if burst == 0 {
            return Admit::Pass;
        }
        if let Some(w) = self.windows.get_mut(&key) {
            if w.over(now, interval) {
                let suppressed = std::mem::take(&mut w.suppressed);
                *w = Window {
                    start: now,
                    passed: 1,
                    suppressed: 0,
                };
                return match suppressed {
                    0 => Admit::Pass,
                    n => Admit::PassAfter { suppressed: n },
                };
            }
            if w.passed < burst {
                w.passed += 1;
                return Admit::Pass;
            }
            w.suppressed += 1;
            return Admit::Suppress;
        }
        if self.windows.len() >= self.rule.max_callsites {
            self.sweep(now);
        }
        if self.windows.len() >= self.rule.max_callsites {
            self.overflow += 1;
            return Admit::Suppress;
        }
        self.windows.insert(
            key,
            Window {
                start: now,
                passed: 1,
                suppressed: 0,
            },
        );
        Admit::Pass
    }

    /// Forgets keys whose interval is over with nothing to report, at most
    /// once per interval (the table is full: a scan per new key would cost
    /// every event of an untracked key the whole table).
    fn sweep(&mut self, now: Instant) {
        let interval = self.rule.interval;
        if self
            .swept
            .is_some_and(|t| now.saturating_duration_since(t) < interval)
        {
            return;
        }
        self.swept = Some(now);
        self.windows
            .retain(|_, w| w.suppressed > 0 || !w.over(now, interval));
    }

    /// The keys whose interval is over at `now` with events suppressed,
    /// and how many, in no particular order; their counts restart at 0
    /// (each suppressed event is reported once).
    pub fn due(&mut self, now: Instant) -> Vec<(K, u64)> {
        let interval = self.rule.interval;
        self.windows
            .iter_mut()
            .filter(|(_, w)| w.suppressed > 0 && w.over(now, interval))
            .map(|(k, w)| (k.clone(), std::mem::take(&mut w.suppressed)))
            .collect()
    }

    /// Every key with events suppressed, interval over or not, and how
    /// many (at exit: nothing counted goes unreported).
    pub fn drain(&mut self) -> Vec<(K, u64)> {
        self.windows
            .iter_mut()
            .filter(|(_, w)| w.suppressed > 0)
            .map(|(k, w)| (k.clone(), std::mem::take(&mut w.suppressed)))
            .collect()
    }

    /// Events of untracked keys (the table was full) suppressed since the
    /// last call.
    pub fn take_overflow(&mut self) -> u64 {
        std::mem::take(&mut self.overflow)
    }
}

/// A callsite as a key: its static metadata, compared by callsite.
#[derive(Clone, Copy)]
struct Site(&'static Metadata<'static>);

impl PartialEq for Site {
    fn eq(&self, other: &Self) -> bool {
        self.0.callsite() == other.0.callsite()
    }
}

impl Eq for Site {}

impl Hash for Site {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.callsite().hash(state);
    }
}

/// Longest message kept to name a callsite, in characters.
const MESSAGE_CHARS: usize = 80;

/// The `message` field of an event, shortened.
#[derive(Default)]
struct MessageOf(String);

impl Visit for MessageOf {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            let mut s = String::new();
            let _ = write!(s, "{value:?}");
            self.0 = match s.char_indices().nth(MESSAGE_CHARS) {
                Some((cut, _)) => format!("{}…", &s[..cut]),
                None => s,
            };
        }
    }
}

/// `<target>:<line> <message>`, or `<target>:<line> <file>:<line>` when
/// the message is not known.
fn label(meta: &Metadata<'_>, message: Option<&str>) -> String {
    let mut s = meta.target().to_owned();
    if let Some(line) = meta.line() {
        let _ = write!(s, ":{line}");
    }
    match (message, meta.file(), meta.line()) {
        (Some(m), _, _) if !m.is_empty() => {
            let _ = write!(s, " {m}");
        }
        (_, Some(f), Some(l)) => {
            let _ = write!(s, " {f}:{l}");
        }
        (_, Some(f), None) => {
            let _ = write!(s, " {f}");
        }
        _ => {
            let _ = write!(s, " {}", meta.name());
        }
    }
    s
}

/// `10 s`, or `1500 ms` for an interval not in whole seconds.
fn span_text(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{} ms", d.as_millis())
    }
}

fn summary_text(suppressed: u64, interval: Duration) -> String {
    format!(
        "{suppressed} similar log lines suppressed in the last {}",
        span_text(interval)
    )
}

/// The label of the events of untracked callsites, counted together.
const OVERFLOW_LABEL: &str = "(callsites past the limit of tracked callsites)";

/// The clock of a [`LogLimit`].
type Clock = Box<dyn Fn() -> Instant + Send + Sync>;

struct State {
    limiter: Limiter<Site>,
    /// Callsites' messages as first seen (at most `max_callsites`).
    messages: HashMap<Identifier, Box<str>>,
}

struct Shared {
    rule: Rule,
    clock: Clock,
    state: Mutex<State>,
}

/// The limiter of a process's log lines, shared by its [`RateLimited`]
/// layer and whoever calls [`flush`](Self::flush). Cloning shares it.
#[derive(Clone)]
pub struct LogLimit {
    shared: Arc<Shared>,
}

impl fmt::Debug for LogLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogLimit")
            .field("rule", &self.shared.rule)
            .finish_non_exhaustive()
    }
}

impl LogLimit {
    /// A limiter on the real clock.
    pub fn new(rule: Rule) -> Self {
        Self::with_clock(rule, Instant::now)
    }

    /// A limiter on `clock` (tests drive time with it).
    pub fn with_clock(rule: Rule, clock: impl Fn() -> Instant + Send + Sync + 'static) -> Self {
        Self {
            shared: Arc::new(Shared {
                rule,
                clock: Box::new(clock),
                state: Mutex::new(State {
                    limiter: Limiter::new(rule),
                    messages: HashMap::new(),
                }),
            }),
        }
    }

    /// The rule it applies.
    pub fn rule(&self) -> Rule {
        self.shared.rule
    }

    /// `inner` (an output layer, such as `tracing_subscriber::fmt::layer()`)
    /// with its events limited. Install one such layer per `LogLimit`, and
    /// put filters (`EnvFilter`, levels) on the stack outside it, not on
    /// `inner`: an event `inner` would filter out still counts here.
    pub fn layer<L>(&self, inner: L) -> RateLimited<L> {
        RateLimited {
            inner,
            limit: self.clone(),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while the lock was held leaves only counters behind.
        self.shared
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Emits one summary event per callsite whose interval is over with
    /// events suppressed (through the current dispatcher, like any event);
    /// returns how many. Call it every interval: a callsite whose flood
    /// stopped has no next event to carry its summary.
    pub fn flush(&self) -> usize {
        let now = (self.shared.clock)();
        let due = {
            let mut st = self.state();
            let due = st.limiter.due(now);
            self.labelled(&mut st, due)
        };
        self.emit(due)
    }

    /// Emits a summary for every callsite with events suppressed, interval
    /// over or not (at exit); returns how many.
    pub fn flush_all(&self) -> usize {
        let due = {
            let mut st = self.state();
            let due = st.limiter.drain();
            self.labelled(&mut st, due)
        };
        self.emit(due)
    }

    fn labelled(&self, st: &mut State, due: Vec<(Site, u64)>) -> Vec<(String, u64)> {
        let mut out: Vec<(String, u64)> = due
            .into_iter()
            .map(|(site, n)| {
                let message = st.messages.get(&site.0.callsite()).map(|m| &**m);
                (label(site.0, message), n)
            })
            .collect();
        match st.limiter.take_overflow() {
            0 => {}
            n => out.push((OVERFLOW_LABEL.to_owned(), n)),
        }
        out.sort();
        out
    }

    fn emit(&self, due: Vec<(String, u64)>) -> usize {
        let interval = self.shared.rule.interval;
        for (callsite, n) in &due {
            let text = summary_text(*n, interval);
            tracing::warn!(target: TARGET, suppressed = *n, callsite = callsite.as_str(), "{text}");
        }
        due.len()
    }

    /// Spawns a task on the current tokio runtime that calls
    /// [`flush`](Self::flush) every interval (abort it to stop).
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    pub fn spawn_flusher(&self) -> tokio::task::JoinHandle<()> {
        let limit = self.clone();
        let period = self.shared.rule.interval.max(Duration::from_millis(10));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                limit.flush();
            }
        })
    }

    /// The verdict on `event`, with its callsite's label when a summary
    /// must go first.
    fn admit(&self, event: &Event<'_>) -> Verdict {
        let meta = event.metadata();
        let site = Site(meta);
        let now = (self.shared.clock)();
        let max = self.shared.rule.max_callsites;
        let mut st = self.state();
        if !st.messages.contains_key(&meta.callsite()) && st.messages.len() < max {
            // First sight of the callsite: its message, formatted without
            // the lock held.
            drop(st);
            let mut m = MessageOf::default();
            event.record(&mut m);
            st = self.state();
            if st.messages.len() < max {
                st.messages
                    .entry(meta.callsite())
                    .or_insert_with(|| m.0.into_boxed_str());
            }
        }
        match st.limiter.admit(site, now) {
            Admit::Pass => Verdict::Pass,
            Admit::Suppress => Verdict::Suppress,
            Admit::PassAfter { suppressed } => {
                let message = st.messages.get(&meta.callsite()).map(|m| &**m);
                Verdict::PassAfter(label(meta, message), suppressed)
            }
        }
    }
}

enum Verdict {
    Pass,
    PassAfter(String, u64),
    Suppress,
}

/// The callsite of summaries written from inside [`RateLimited::on_event`]
/// (the dispatcher is busy there: a `tracing` macro would go nowhere, so
/// the event is built here and handed to the inner layer directly).
struct SummaryCallsite;

static SUMMARY_CALLSITE: SummaryCallsite = SummaryCallsite;

static SUMMARY: Metadata<'static> = Metadata::new(
    "pinhole::logs summary",
    TARGET,
    Level::WARN,
    Some(file!()),
    Some(line!()),
    Some(module_path!()),
    FieldSet::new(
        &["message", "suppressed", "callsite"],
        tracing_core::identify_callsite!(&SUMMARY_CALLSITE),
    ),
    Kind::EVENT,
);

impl Callsite for SummaryCallsite {
    fn set_interest(&self, _: Interest) {}

    fn metadata(&self) -> &Metadata<'_> {
        &SUMMARY
    }
}

/// An output layer whose events are limited by a [`LogLimit`]
/// ([`LogLimit::layer`]); everything else passes to it unchanged.
pub struct RateLimited<L> {
    inner: L,
    limit: LogLimit,
}

impl<L: fmt::Debug> fmt::Debug for RateLimited<L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimited")
            .field("inner", &self.inner)
            .field("limit", &self.limit)
            .finish()
    }
}

impl<L> RateLimited<L> {
    /// The shared limiter, to flush.
    pub fn limit(&self) -> &LogLimit {
        &self.limit
    }
}

impl<S, L> Layer<S> for RateLimited<L>
where
    S: Subscriber,
    L: Layer<S>,
{
    fn on_register_dispatch(&self, subscriber: &Dispatch) {
        self.inner.on_register_dispatch(subscriber);
    }

    fn on_layer(&mut self, subscriber: &mut S) {
        self.inner.on_layer(subscriber);
    }

    fn register_callsite(&self, metadata: &'static Metadata<'static>) -> Interest {
        self.inner.register_callsite(metadata)
    }

    fn enabled(&self, metadata: &Metadata<'_>, ctx: Context<'_, S>) -> bool {
        self.inner.enabled(metadata, ctx)
    }

    fn on_new_span(&self, attrs: &span::Attributes<'_>, id: &span::Id, ctx: Context<'_, S>) {
        self.inner.on_new_span(attrs, id, ctx);
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        self.inner.max_level_hint()
    }

    fn on_record(&self, span: &span::Id, values: &span::Record<'_>, ctx: Context<'_, S>) {
        self.inner.on_record(span, values, ctx);
    }

    fn on_follows_from(&self, span: &span::Id, follows: &span::Id, ctx: Context<'_, S>) {
        self.inner.on_follows_from(span, follows, ctx);
    }

    fn event_enabled(&self, event: &Event<'_>, ctx: Context<'_, S>) -> bool {
        self.inner.event_enabled(event, ctx)
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let rule = &self.limit.shared.rule;
        // tracing orders levels by verbosity: less severe is greater.
        if !rule.limits()
            || event.metadata().target() == TARGET
            || *event.metadata().level() > rule.least_severe
        {
            self.inner.on_event(event, ctx);
            return;
        }
        match self.limit.admit(event) {
            Verdict::Suppress => {}
            Verdict::Pass => self.inner.on_event(event, ctx),
            Verdict::PassAfter(callsite, n) => {
                let text = summary_text(n, self.limit.shared.rule.interval);
                let fields = SUMMARY.fields();
                let mut f = fields.iter();
                if let (Some(message), Some(suppressed), Some(site)) =
                    (f.next(), f.next(), f.next())
                {
                    let values = [
                        (&message, Some(&text.as_str() as &dyn Value)),
                        (&suppressed, Some(&n as &dyn Value)),
                        (&site, Some(&callsite.as_str() as &dyn Value)),
                    ];
                    let values = fields.value_set(&values);
                    self.inner
                        .on_event(&Event::new(&SUMMARY, &values), ctx.clone());
                }
                self.inner.on_event(event, ctx);
            }
        }
    }

    fn on_enter(&self, id: &span::Id, ctx: Context<'_, S>) {
        self.inner.on_enter(id, ctx);
    }

    fn on_exit(&self, id: &span::Id, ctx: Context<'_, S>) {
        self.inner.on_exit(id, ctx);
    }

    fn on_close(&self, id: span::Id, ctx: Context<'_, S>) {
        self.inner.on_close(id, ctx);
    }

    fn on_id_change(&self, old: &span::Id, new: &span::Id, ctx: Context<'_, S>) {
        self.inner.on_id_change(old, new, ctx);
    }
}

#[cfg(test)]
mod tests;
