//! Process metrics in the Prometheus text exposition format.
//!
//! A small, lock-light registry: counters are atomics keyed by a fixed label
//! set, histograms have fixed buckets. Label values come from a closed set
//! (route templates, model ids from config, status codes), never from raw
//! request data, so cardinality stays bounded.

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The window the live generation rate is computed over.
const LIVE_WINDOW: Duration = Duration::from_secs(60);

const LATENCY_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];
const TPS_BUCKETS: &[f64] = &[1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0];

#[derive(Debug, Clone)]
struct Histogram {
    buckets: &'static [f64],
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn new(buckets: &'static [f64]) -> Self {
        Self {
            buckets,
            counts: vec![0; buckets.len()],
            sum: 0.0,
            count: 0,
        }
    }

    fn observe(&mut self, v: f64) {
        for (i, b) in self.buckets.iter().enumerate() {
            if v <= *b {
                self.counts[i] += 1;
            }
        }
        self.sum += v;
        self.count += 1;
    }
}

type Labels = Vec<(&'static str, String)>;

#[derive(Default)]
struct Inner {
    counters: BTreeMap<(&'static str, Labels), u64>,
    histograms: BTreeMap<(&'static str, Labels), Histogram>,
    gauges: BTreeMap<(&'static str, Labels), i64>,
    /// Completion tokens of the last minute by model, for the live rate.
    recent: BTreeMap<String, VecDeque<(Instant, u32)>>,
}

impl Inner {
    fn count(&mut self, name: &'static str, labels: Labels, n: u64) {
        *self.counters.entry((name, labels)).or_default() += n;
    }
}

/// A model's load right now, for the console's overview.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ModelLoad {
    pub model: String,
    /// Requests sent to the backend and not finished: running or queued.
    pub in_flight: i64,
    /// Completion tokens per second over the last minute.
    pub tokens_per_second: f64,
}

/// Counts one request in flight until dropped.
pub struct InFlight {
    metrics: Arc<Metrics>,
    labels: Labels,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut inner = self.metrics.lock();
        if let Some(v) = inner
            .gauges
            .get_mut(&(IN_FLIGHT, std::mem::take(&mut self.labels)))
        {
            *v -= 1;
        }
    }
}

const IN_FLIGHT: &str = "warden_model_requests_in_flight";
const PREFIX_HITS: &str = "warden_prefix_cache_hits_total";
const PREFIX_LOOKUPS: &str = "warden_prefix_cache_lookups_total";
const PREFIX_SEQUENCES: &str = "warden_prefix_cache_sequences";
const PREFIX_RENEWALS: &str = "warden_prefix_cache_renewals_total";
const CHANNEL_REFUSED: &str = "warden_channel_refused_total";
const CHANNEL_DUPLICATES: &str = "warden_channel_duplicates_total";

/// What a channel's webhooks refused and dropped since the start.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ChannelDrops {
    pub signature: u64,
    pub replayed: u64,
    pub duplicates: u64,
}

/// All metrics Warden exports.
#[derive(Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

const HELP: &[(&str, &str, &str)] = &[
    (
        "warden_http_requests_total",
        "counter",
        "HTTP requests by route and status.",
    ),
    (
        "warden_http_errors_total",
        "counter",
        "HTTP responses with status >= 400 by route and status.",
    ),
    (
        "warden_http_request_duration_seconds",
        "histogram",
        "Time to the end of the response body.",
    ),
    (
        "warden_prompt_tokens_total",
        "counter",
        "Prompt tokens processed, by model.",
    ),
    (
        "warden_completion_tokens_total",
        "counter",
        "Completion tokens generated, by model.",
    ),
    (
        "warden_completion_tokens_per_second",
        "histogram",
        "Generation speed of each completion, by model.",
    ),
    (
        CHANNEL_REFUSED,
        "counter",
        "Channel webhook posts refused before anything was stored, by channel, connection and reason (signature, replayed).",
    ),
    (
        CHANNEL_DUPLICATES,
        "counter",
        "Channel events dropped as duplicates of one already taken (provider retries, replays), by channel and connection.",
    ),
    (
        IN_FLIGHT,
        "gauge",
        "Requests sent to each model's backend and not finished (running or queued), by model.",
    ),
    (
        PREFIX_HITS,
        "counter",
        "Sequences that reused a cached prompt prefix, by model (in-process engines; mistral.rs counts a prefix of any length).",
    ),
    (
        PREFIX_LOOKUPS,
        "counter",
        "Sequences looked up in the prefix cache, by model.",
    ),
    (
        PREFIX_SEQUENCES,
        "gauge",
        "Finished sequences whose KV cache the prefix cache holds now, by model.",
    ),
    (
        PREFIX_RENEWALS,
        "counter",
        "Times the prefix cache was emptied to keep memory bounded, by model.",
    ),
    (
        "warden_plugin_calls_total",
        "counter",
        "Plugin tool calls by plugin and outcome (ok or an error code).",
    ),
    (
        "warden_plugin_call_duration_seconds",
        "histogram",
        "Wall time of plugin tool calls, by plugin.",
    ),
];

impl Metrics {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A poisoned metrics lock only means a panic elsewhere; the counts are still valid.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn record_http(&self, route: &str, status: u16, seconds: f64) {
        let labels = vec![("route", route.to_owned()), ("status", status.to_string())];
        let mut inner = self.lock();
        inner.count("warden_http_requests_total", labels.clone(), 1);
        if status >= 400 {
            inner.count("warden_http_errors_total", labels, 1);
        }
        inner
            .histograms
            .entry((
                "warden_http_request_duration_seconds",
                vec![("route", route.to_owned())],
            ))
            .or_insert_with(|| Histogram::new(LATENCY_BUCKETS))
            .observe(seconds);
    }

    pub fn record_tokens(&self, model: &str, prompt: u32, completion: u32, gen_seconds: f64) {
        let labels = vec![("model", model.to_owned())];
        let mut inner = self.lock();
        inner.count("warden_prompt_tokens_total", labels.clone(), prompt.into());
        inner.count(
            "warden_completion_tokens_total",
            labels.clone(),
            completion.into(),
        );
        if completion > 0 {
            let now = Instant::now();
            let recent = inner.recent.entry(model.to_owned()).or_default();
            recent.push_back((now, completion));
            while recent
                .front()
                .is_some_and(|(t, _)| now.duration_since(*t) > LIVE_WINDOW)
            {
                recent.pop_front();
            }
        }
        if completion > 0 && gen_seconds > 0.0 {
            inner
                .histograms
                .entry(("warden_completion_tokens_per_second", labels))
                .or_insert_with(|| Histogram::new(TPS_BUCKETS))
                .observe(f64::from(completion) / gen_seconds);
        }
    }

    /// `error` is the call's error code, `None` on success. Plugin ids come
    /// from the installed set, so the label stays bounded.
    pub fn record_plugin_call(&self, plugin: &str, error: Option<&str>, seconds: f64) {
        let outcome = error.unwrap_or("ok").to_owned();
        let mut inner = self.lock();
        inner.count(
            "warden_plugin_calls_total",
            vec![("plugin", plugin.to_owned()), ("outcome", outcome)],
            1,
        );
        inner
            .histograms
            .entry((
                "warden_plugin_call_duration_seconds",
                vec![("plugin", plugin.to_owned())],
            ))
            .or_insert_with(|| Histogram::new(LATENCY_BUCKETS))
            .observe(seconds);
    }

    /// A webhook post refused before anything was stored. `connection` is
    /// empty when no connection's secret matched (so none can be named).
    pub fn record_channel_refusal(&self, channel: &str, connection: &str, reason: &'static str) {
        let labels = vec![
            ("channel", channel.to_owned()),
            ("connection", connection.to_owned()),
            ("reason", reason.to_owned()),
        ];
        self.lock().count(CHANNEL_REFUSED, labels, 1);
    }

    /// An event dropped as a duplicate of one already taken.
    pub fn record_channel_duplicate(&self, channel: &str, connection: &str) {
        let labels = vec![
            ("channel", channel.to_owned()),
            ("connection", connection.to_owned()),
        ];
        self.lock().count(CHANNEL_DUPLICATES, labels, 1);
    }

    /// Refusals and duplicates of one channel kind's connection; refusals
    /// no connection could be named for count towards every connection.
    pub fn channel_drops(&self, channel: &str, connection: &str) -> ChannelDrops {
        let inner = self.lock();
        let mut d = ChannelDrops::default();
        let value = |labels: &Labels, key: &str| {
            labels
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| v.as_str())
                .unwrap_or_default()
                .to_owned()
        };
        for ((name, labels), n) in &inner.counters {
            if value(labels, "channel") != channel {
                continue;
            }
            let conn = value(labels, "connection");
            if conn != connection && !(conn.is_empty() && *name == CHANNEL_REFUSED) {
                continue;
            }
            match (*name, value(labels, "reason").as_str()) {
                (CHANNEL_REFUSED, "signature") => d.signature += n,
                (CHANNEL_REFUSED, "replayed") => d.replayed += n,
                (CHANNEL_DUPLICATES, _) => d.duplicates += n,
                _ => {}
            }
        }
        d
    }

    /// Takes an in-process engine's cache counts (read when `/metrics` is
    /// scraped).
    pub fn record_engine(&self, model: &str, stats: warden_llm::EngineStats) {
        let labels = vec![("model", model.to_owned())];
        let mut inner = self.lock();
        for (name, value) in [
            (PREFIX_HITS, stats.prefix_cache_hits),
            (PREFIX_LOOKUPS, stats.prefix_cache_lookups),
            (PREFIX_RENEWALS, stats.prefix_cache_renewals),
        ] {
            inner.counters.insert((name, labels.clone()), value);
        }
        inner.gauges.insert(
            (PREFIX_SEQUENCES, labels),
            i64::try_from(stats.prefix_cache_sequences).unwrap_or(i64::MAX),
        );
    }

    /// Counts a request to `model`'s backend as in flight until the guard
    /// is dropped.
    pub fn in_flight(self: &Arc<Self>, model: &str) -> InFlight {
        let labels = vec![("model", model.to_owned())];
        *self
            .lock()
            .gauges
            .entry((IN_FLIGHT, labels.clone()))
            .or_default() += 1;
        InFlight {
            metrics: Arc::clone(self),
            labels,
        }
    }

    /// Each model's requests in flight and completion tokens per second
    /// over the last minute (models that have seen no request are absent).
    pub fn load(&self) -> Vec<ModelLoad> {
        let now = Instant::now();
        let inner = self.lock();
        let mut models: BTreeMap<String, ModelLoad> = BTreeMap::new();
        fn row<'a>(models: &'a mut BTreeMap<String, ModelLoad>, model: &str) -> &'a mut ModelLoad {
            models.entry(model.to_owned()).or_insert_with(|| ModelLoad {
                model: model.to_owned(),
                in_flight: 0,
                tokens_per_second: 0.0,
            })
        }
        for ((name, labels), v) in &inner.gauges {
            if *name == IN_FLIGHT
                && let Some((_, model)) = labels.first()
            {
                row(&mut models, model).in_flight = *v;
            }
        }
        for (model, recent) in &inner.recent {
            let tokens: u64 = recent
                .iter()
                .filter(|(t, _)| now.duration_since(*t) <= LIVE_WINDOW)
                .map(|(_, n)| u64::from(*n))
                .sum();
            row(&mut models, model).tokens_per_second = tokens as f64 / LIVE_WINDOW.as_secs_f64();
        }
        models.into_values().collect()
    }

    /// Renders every metric in the Prometheus text format (version 0.0.4).
    pub fn render(&self) -> String {
        let inner = self.lock();
        let mut out = String::new();
        for (name, kind, help) in HELP {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for ((n, labels), v) in inner.counters.iter().filter(|((n, _), _)| n == name) {
                let _ = writeln!(out, "{n}{} {v}", fmt_labels(labels, None));
            }
            for ((n, labels), v) in inner.gauges.iter().filter(|((n, _), _)| n == name) {
                let _ = writeln!(out, "{n}{} {v}", fmt_labels(labels, None));
            }
            for ((n, labels), h) in inner.histograms.iter().filter(|((n, _), _)| n == name) {
                for (b, c) in h.buckets.iter().zip(&h.counts) {
                    let _ = writeln!(
                        out,
                        "{n}_bucket{} {c}",
                        fmt_labels(labels, Some(&b.to_string()))
                    );
                }
                let _ = writeln!(
                    out,
                    "{n}_bucket{} {}",
                    fmt_labels(labels, Some("+Inf")),
                    h.count
                );
                let _ = writeln!(out, "{n}_sum{} {}", fmt_labels(labels, None), h.sum);
                let _ = writeln!(out, "{n}_count{} {}", fmt_labels(labels, None), h.count);
            }
        }
        out
    }
}

fn fmt_labels(labels: &[(&'static str, String)], le: Option<&str>) -> String {
    let mut parts: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
        .collect();
    if let Some(le) = le {
        parts.push(format!("le=\"{le}\""));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", parts.join(","))
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_cache_counts_are_taken_as_they_stand() {
        let m = Metrics::default();
        let stats = |hits, sequences| warden_llm::EngineStats {
            prefix_cache_hits: hits,
            prefix_cache_lookups: 10,
            prefix_cache_sequences: sequences,
            prefix_cache_renewals: 1,
        };
        m.record_engine("m", stats(3, 7));
        m.record_engine("m", stats(4, 0));
        let text = m.render();
        for line in [
            "warden_prefix_cache_hits_total{model=\"m\"} 4",
            "warden_prefix_cache_lookups_total{model=\"m\"} 10",
            "warden_prefix_cache_sequences{model=\"m\"} 0",
            "warden_prefix_cache_renewals_total{model=\"m\"} 1",
            "# TYPE warden_prefix_cache_sequences gauge",
        ] {
            assert!(text.contains(line), "{line} in {text}");
        }
    }

    #[test]
    fn counters_and_histograms_render_in_prometheus_text_format() {
        let m = Metrics::default();
        m.record_http("/v1/chat/completions", 200, 0.3);
        m.record_http("/v1/chat/completions", 400, 0.001);
        m.record_tokens("m\"1", 10, 20, 2.0);
        let text = m.render();
        assert!(text.contains(
            "warden_http_requests_total{route=\"/v1/chat/completions\",status=\"200\"} 1"
        ));
        assert!(
            text.contains(
                "warden_http_errors_total{route=\"/v1/chat/completions\",status=\"400\"} 1"
            )
        );
        assert!(!text.contains("status=\"200\"} 1\nwarden_http_errors"));
        assert!(text.contains("warden_http_request_duration_seconds_bucket{route=\"/v1/chat/completions\",le=\"0.005\"} 1"));
        assert!(text.contains(
            "warden_http_request_duration_seconds_count{route=\"/v1/chat/completions\"} 2"
        ));
        assert!(text.contains("warden_completion_tokens_total{model=\"m\\\"1\"} 20"));
        assert!(
            text.contains(
                "warden_completion_tokens_per_second_bucket{model=\"m\\\"1\",le=\"10\"} 1"
            )
        );
        assert!(text.contains("# TYPE warden_prompt_tokens_total counter"));
    }

    #[test]
    fn requests_in_flight_count_until_their_guard_drops() {
        let m = Arc::new(Metrics::default());
        let a = m.in_flight("m");
        let b = m.in_flight("m");
        assert_eq!(m.load()[0].in_flight, 2);
        assert!(
            m.render()
                .contains("warden_model_requests_in_flight{model=\"m\"} 2")
        );
        drop(a);
        assert_eq!(m.load()[0].in_flight, 1);
        drop(b);
        assert_eq!(m.load()[0].in_flight, 0);
        assert!(
            m.render()
                .contains("# TYPE warden_model_requests_in_flight gauge")
        );
    }

    #[test]
    fn the_live_rate_is_the_last_minutes_completion_tokens_per_second() {
        let m = Metrics::default();
        m.record_tokens("m", 5, 90, 1.0);
        m.record_tokens("m", 5, 30, 1.0);
        m.record_tokens("n", 5, 0, 1.0);
        let load = m.load();
        assert_eq!(
            load.len(),
            1,
            "a model with no completion tokens has no rate: {load:?}"
        );
        assert_eq!(load[0].model, "m");
        assert!((load[0].tokens_per_second - 2.0).abs() < 1e-9, "{load:?}");
    }

    #[test]
    fn channel_drops_are_counted_per_connection_and_unnamed_refusals_count_for_all() {
        let m = Metrics::default();
        m.record_channel_refusal("slack", "", "signature");
        m.record_channel_refusal("email", "support", "signature");
        m.record_channel_refusal("email", "support", "replayed");
        m.record_channel_duplicate("email", "support");
        m.record_channel_duplicate("email", "sales");
        let support = m.channel_drops("email", "support");
        assert_eq!(
            support,
            ChannelDrops {
                signature: 1,
                replayed: 1,
                duplicates: 1
            }
        );
        assert_eq!(m.channel_drops("email", "sales").duplicates, 1);
        assert_eq!(m.channel_drops("email", "sales").signature, 0);
        assert_eq!(m.channel_drops("slack", "workspace").signature, 1);
        assert!(m.render().contains(
            "warden_channel_refused_total{channel=\"email\",connection=\"support\",reason=\"replayed\"} 1"
        ));
    }
}
