#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tracing::Dispatch;
use tracing_subscriber::layer::SubscriberExt;

use super::*;

const TEN: Duration = Duration::from_secs(10);

fn rule(burst: u32, max_callsites: usize) -> Rule {
    Rule {
        burst,
        interval: TEN,
        max_callsites,
        least_severe: Level::WARN,
    }
}

// ---- Limiter, sans time ----

#[test]
fn the_burst_passes_and_the_rest_is_suppressed_and_counted() {
    let t0 = Instant::now();
    let mut l = Limiter::new(rule(5, 16));
    let verdicts: Vec<Admit> = (0..1000)
        .map(|i| l.admit("a", t0 + Duration::from_millis(i)))
        .collect();
    assert!(verdicts[..5].iter().all(|v| *v == Admit::Pass));
    assert!(verdicts[5..].iter().all(|v| *v == Admit::Suppress));
    // Nothing is due before the interval is over ...
    assert_eq!(l.due(t0 + TEN - Duration::from_nanos(1)), vec![]);
    // ... then the exact count, once.
    assert_eq!(l.due(t0 + TEN), vec![("a", 995)]);
    assert_eq!(l.due(t0 + TEN + TEN), vec![]);
    assert_eq!(l.drain(), vec![]);
}

#[test]
fn the_next_event_after_the_interval_carries_the_summary_and_a_new_burst() {
    let t0 = Instant::now();
    let mut l = Limiter::new(rule(2, 16));
    for _ in 0..2 {
        assert_eq!(l.admit("a", t0), Admit::Pass);
    }
    for _ in 0..7 {
        assert_eq!(l.admit("a", t0 + Duration::from_secs(9)), Admit::Suppress);
    }
    // The interval counts from its first event: at t0 + 10 s a new one starts.
    let t1 = t0 + TEN;
    assert_eq!(l.admit("a", t1), Admit::PassAfter { suppressed: 7 });
    assert_eq!(l.admit("a", t1), Admit::Pass);
    assert_eq!(l.admit("a", t1), Admit::Suppress);
    // Reported once: not due again with the new interval's count.
    assert_eq!(l.due(t1 + TEN), vec![("a", 1)]);
    // An interval without suppression carries no summary.
    assert_eq!(l.admit("a", t1 + TEN + TEN), Admit::Pass);
    assert_eq!(l.due(t1 + TEN * 5), vec![]);
}

#[test]
fn callsites_are_limited_independently() {
    let t0 = Instant::now();
    let mut l = Limiter::new(rule(3, 16));
    let mut passed = [0; 3];
    for i in 0..300 {
        let k = i % 3;
        if l.admit(k, t0) == Admit::Pass {
            passed[k] += 1;
        }
    }
    assert_eq!(passed, [3, 3, 3]);
    let mut due = l.due(t0 + TEN);
    due.sort_unstable();
    assert_eq!(due, vec![(0, 97), (1, 97), (2, 97)]);
}

#[test]
fn drain_reports_intervals_not_over_yet() {
    let t0 = Instant::now();
    let mut l = Limiter::new(rule(1, 16));
    for _ in 0..4 {
        l.admit("a", t0);
    }
    l.admit("b", t0);
    assert_eq!(l.due(t0), vec![]);
    assert_eq!(l.drain(), vec![("a", 3)]);
    assert_eq!(l.drain(), vec![]);
}

#[test]
fn tracked_callsites_are_capped() {
    let t0 = Instant::now();
    let mut l = Limiter::new(rule(1, 2));
    assert_eq!(l.admit(1, t0), Admit::Pass);
    assert_eq!(l.admit(2, t0), Admit::Pass);
    // The table is full: a third key is not tracked, its events are
    // suppressed and counted together.
    for _ in 0..10 {
        assert_eq!(l.admit(3, t0), Admit::Suppress);
    }
    assert_eq!(l.tracked(), 2);
    assert_eq!(l.take_overflow(), 10);
    assert_eq!(l.take_overflow(), 0);
    // Once 1 and 2 are idle (interval over, nothing to report) they are
    // forgotten and 3 gets their place.
    let t1 = t0 + TEN;
    assert_eq!(l.admit(3, t1), Admit::Pass);
    assert_eq!(l.tracked(), 1);
    // A key with a count not yet reported is never forgotten.
    assert_eq!(l.admit(4, t1), Admit::Pass);
    assert_eq!(l.admit(4, t1), Admit::Suppress);
    let t2 = t1 + TEN;
    assert_eq!(l.admit(5, t2), Admit::Pass);
    assert_eq!(l.tracked(), 2);
    assert_eq!(l.due(t2), vec![(4, 1)]);
}

#[test]
fn a_burst_of_zero_limits_nothing() {
    let t0 = Instant::now();
    let mut l = Limiter::new(rule(0, 1));
    for k in 0..100 {
        assert_eq!(l.admit(k, t0), Admit::Pass);
    }
    assert_eq!(l.tracked(), 0);
    assert!(!l.rule().limits());
}

// ---- The layer, on a capturing formatter and a driven clock ----

/// Everything the formatter wrote.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Capture {
    fn lines(&self) -> Vec<String> {
        String::from_utf8(self.0.lock().unwrap().clone())
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

impl io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A clock the test moves.
#[derive(Clone)]
struct Clock {
    t0: Instant,
    ms: Arc<AtomicU64>,
}

impl Clock {
    fn new() -> Self {
        Self {
            t0: Instant::now(),
            ms: Arc::default(),
        }
    }

    fn now(&self) -> Instant {
        self.t0 + Duration::from_millis(self.ms.load(Ordering::SeqCst))
    }

    fn advance(&self, d: Duration) {
        self.ms
            .fetch_add(u64::try_from(d.as_millis()).unwrap(), Ordering::SeqCst);
    }
}

/// A subscriber writing human lines (no colours) to `out` through a
/// `LogLimit` on `clock`.
fn human(r: Rule, clock: &Clock, out: &Capture) -> (Dispatch, LogLimit) {
    let c = clock.clone();
    let limit = LogLimit::with_clock(r, move || c.now());
    let o = out.clone();
    let fmt = tracing_subscriber::fmt::layer()
        .with_ansi(false)
        .without_time()
        .with_writer(move || o.clone());
    let d = Dispatch::new(tracing_subscriber::registry().with(limit.layer(fmt)));
    (d, limit)
}

/// The value of `key=` in a human line.
fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let at = line.find(&format!(" {key}="))? + key.len() + 2;
    let rest = &line[at..];
    Some(match rest.strip_prefix('"') {
        Some(q) => &q[..q.find('"')?],
        None => rest.split(' ').next()?,
    })
}

#[test]
fn ten_thousand_warnings_from_one_callsite_make_five_lines_and_one_exact_summary() {
    let (clock, out) = (Clock::new(), Capture::default());
    let (dispatch, limit) = human(Rule::default(), &clock, &out);
    let line = tracing::dispatcher::with_default(&dispatch, || {
        let line = line!() + 2;
        for i in 0..10_000 {
            tracing::warn!(i, "garbage datagram dropped");
        }
        assert_eq!(out.lines().len(), 5);
        // Not due before the interval is over.
        assert_eq!(limit.flush(), 0);
        clock.advance(TEN);
        assert_eq!(limit.flush(), 1);
        assert_eq!(limit.flush(), 0);
        line
    });
    let lines = out.lines();
    assert_eq!(lines.len(), 6, "{lines:#?}");
    for (i, l) in lines[..5].iter().enumerate() {
        assert!(l.contains("garbage datagram dropped"), "{l}");
        assert_eq!(field(l, "i"), Some(&*i.to_string()), "{l}");
    }
    let summary = &lines[5];
    assert!(summary.starts_with(" WARN pinhole::logs: "), "{summary}");
    assert!(
        summary.contains("9995 similar log lines suppressed in the last 10 s"),
        "{summary}"
    );
    assert_eq!(field(summary, "suppressed"), Some("9995"), "{summary}");
    assert_eq!(
        field(summary, "callsite"),
        Some(&*format!(
            "pinhole_net::logs::tests:{line} garbage datagram dropped"
        )),
        "{summary}"
    );
}

#[test]
fn the_next_event_after_the_interval_writes_the_summary_first() {
    let (clock, out) = (Clock::new(), Capture::default());
    let (dispatch, limit) = human(rule(2, 16), &clock, &out);
    tracing::dispatcher::with_default(&dispatch, || {
        let warn = |i: u32| tracing::warn!(i, "refused");
        for i in 0..9 {
            warn(i);
        }
        clock.advance(TEN);
        warn(9);
        warn(10);
        warn(11);
        // The summary went out with event 9; nothing is left to flush
        // but event 11.
        assert_eq!(limit.flush(), 0);
        assert_eq!(limit.flush_all(), 1);
    });
    let lines = out.lines();
    let shown: Vec<String> = lines
        .iter()
        .map(|l| {
            field(l, "i")
                .or_else(|| field(l, "suppressed"))
                .unwrap()
                .to_owned()
        })
        .collect();
    // Events 0 and 1; the summary of 7; events 9 and 10; the summary of 1.
    assert_eq!(shown, ["0", "1", "7", "9", "10", "1"], "{lines:#?}");
    assert!(lines[2].contains("7 similar log lines suppressed in the last 10 s"));
    assert!(lines[5].contains("1 similar log lines suppressed"));
    assert!(field(&lines[2], "callsite").unwrap().ends_with(" refused"));
}

#[test]
fn errors_are_limited_too_and_callsites_independently_and_info_is_not() {
    let (clock, out) = (Clock::new(), Capture::default());
    let (dispatch, limit) = human(rule(3, 16), &clock, &out);
    tracing::dispatcher::with_default(&dispatch, || {
        for _ in 0..100 {
            tracing::error!("relay socket failed");
            tracing::warn!("control message replayed");
            tracing::warn!(target: "pinhole_net::driver", "intent refused");
            // INFO lines (a call's life) are not limited.
            tracing::info!("call anchored");
        }
        clock.advance(TEN);
        assert_eq!(limit.flush(), 3);
    });
    let lines = out.lines();
    assert_eq!(lines.len(), 3 * 3 + 3 + 100, "{lines:#?}");
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.ends_with("call anchored"))
            .count(),
        100
    );
    for m in [
        "relay socket failed",
        "control message replayed",
        "intent refused",
    ] {
        assert_eq!(lines.iter().filter(|l| l.ends_with(m)).count(), 3, "{m}");
        let summary = lines
            .iter()
            .find(|l| field(l, "callsite").is_some_and(|c| c.ends_with(m)))
            .unwrap();
        assert_eq!(field(summary, "suppressed"), Some("97"), "{summary}");
    }
    let errors = lines.iter().filter(|l| l.starts_with("ERROR")).count();
    assert_eq!(errors, 3);
}

#[test]
fn events_of_the_summary_target_are_never_limited() {
    let (clock, out) = (Clock::new(), Capture::default());
    let (dispatch, limit) = human(rule(1, 16), &clock, &out);
    tracing::dispatcher::with_default(&dispatch, || {
        for n in 0..50 {
            tracing::warn!(target: TARGET, n, "summary-like");
        }
        assert_eq!(limit.flush_all(), 0);
    });
    assert_eq!(out.lines().len(), 50);
}

#[test]
fn a_burst_of_zero_lets_every_line_through() {
    let (clock, out) = (Clock::new(), Capture::default());
    let (dispatch, limit) = human(rule(0, 16), &clock, &out);
    tracing::dispatcher::with_default(&dispatch, || {
        for _ in 0..1000 {
            tracing::warn!("every one");
        }
        assert_eq!(limit.flush_all(), 0);
    });
    assert_eq!(out.lines().len(), 1000);
}

#[test]
fn callsites_past_the_cap_are_counted_together() {
    let (clock, out) = (Clock::new(), Capture::default());
    let (dispatch, limit) = human(rule(5, 1), &clock, &out);
    tracing::dispatcher::with_default(&dispatch, || {
        for _ in 0..10 {
            tracing::warn!("tracked");
            tracing::warn!("not tracked");
        }
        assert_eq!(limit.flush_all(), 2);
    });
    let lines = out.lines();
    assert_eq!(lines.len(), 5 + 2, "{lines:#?}");
    let overflow = lines
        .iter()
        .find(|l| field(l, "callsite") == Some(OVERFLOW_LABEL))
        .unwrap();
    assert_eq!(field(overflow, "suppressed"), Some("10"));
}

#[test]
fn threads_hammering_one_callsite_lose_no_count() {
    let (clock, out) = (Clock::new(), Capture::default());
    let (dispatch, limit) = human(Rule::default(), &clock, &out);
    std::thread::scope(|s| {
        for _ in 0..4 {
            let d = dispatch.clone();
            s.spawn(move || {
                tracing::dispatcher::with_default(&d, || {
                    for _ in 0..5000 {
                        tracing::warn!("shared callsite");
                    }
                });
            });
        }
        // Meanwhile flushes (nothing due: the clock stands still).
        tracing::dispatcher::with_default(&dispatch, || {
            for _ in 0..100 {
                assert_eq!(limit.flush(), 0);
            }
        });
    });
    tracing::dispatcher::with_default(&dispatch, || {
        clock.advance(TEN);
        assert_eq!(limit.flush(), 1);
    });
    let lines = out.lines();
    assert_eq!(lines.len(), 6, "{lines:#?}");
    assert_eq!(field(&lines[5], "suppressed"), Some("19995"));
}

#[test]
fn json_summaries_carry_the_fields() {
    let (clock, out) = (Clock::new(), Capture::default());
    let c = clock.clone();
    let limit = LogLimit::with_clock(rule(1, 16), move || c.now());
    let o = out.clone();
    let fmt = tracing_subscriber::fmt::layer()
        .json()
        .with_writer(move || o.clone());
    let dispatch = Dispatch::new(tracing_subscriber::registry().with(limit.layer(fmt)));
    tracing::dispatcher::with_default(&dispatch, || {
        let flood = || tracing::warn!("json flood");
        for _ in 0..3 {
            flood();
        }
        clock.advance(TEN);
        // Inline (the next event) and flushed summaries look alike.
        flood();
        flood();
        assert_eq!(limit.flush_all(), 1);
    });
    let lines = out.lines();
    assert_eq!(lines.len(), 4, "{lines:#?}");
    for s in [&lines[1], &lines[3]] {
        assert!(s.contains(r#""level":"WARN""#), "{s}");
        assert!(s.contains(r#""target":"pinhole::logs""#), "{s}");
        assert!(
            s.contains(r#""callsite":"pinhole_net::logs::tests:"#),
            "{s}"
        );
        assert!(s.contains(r#" json flood""#), "{s}");
    }
    assert!(lines[1].contains(r#""suppressed":2"#), "{}", lines[1]);
    assert!(
        lines[1].contains(r#""message":"2 similar log lines suppressed in the last 10 s""#),
        "{}",
        lines[1]
    );
    assert!(lines[3].contains(r#""suppressed":1"#), "{}", lines[3]);
}

#[test]
fn labels_name_target_line_and_message() {
    let long = "x".repeat(200);
    let mut m = MessageOf::default();
    m.record_debug(
        &SUMMARY.fields().field("message").unwrap(),
        &format_args!("{long}"),
    );
    assert_eq!(m.0.chars().count(), MESSAGE_CHARS + 1);
    assert_eq!(span_text(Duration::from_secs(10)), "10 s");
    assert_eq!(span_text(Duration::from_millis(1500)), "1500 ms");
    let l = label(&SUMMARY, None);
    assert!(l.starts_with("pinhole::logs:"), "{l}");
    assert!(
        l.ends_with(&format!("src/logs.rs:{}", SUMMARY.line().unwrap())),
        "{l}"
    );
}

#[tokio::test]
async fn the_flusher_flushes_every_interval() {
    let (clock, out) = (Clock::new(), Capture::default());
    let r = Rule {
        interval: Duration::from_millis(100),
        ..rule(1, 16)
    };
    let (dispatch, limit) = human(r, &clock, &out);
    let _guard = tracing::dispatcher::set_default(&dispatch);
    let task = limit.spawn_flusher();
    for _ in 0..3 {
        tracing::warn!("flushed later");
    }
    clock.advance(r.interval);
    // Bounded: the first flush is due 100 ms after the spawn.
    let t0 = Instant::now();
    while out.lines().len() < 2 && t0.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    task.abort();
    let lines = out.lines();
    assert_eq!(lines.len(), 2, "{lines:#?}");
    assert_eq!(field(&lines[1], "suppressed"), Some("2"));
    assert!(lines[1].contains("2 similar log lines suppressed in the last 100 ms"));
}
