//! Process metrics in the Prometheus text exposition format.
//!
//! A small, lock-light registry: counters are atomics keyed by a fixed label
//! set, histograms have fixed buckets. Label values come from a closed set
//! (route templates, model ids from config, status codes), never from raw
//! request data, so cardinality stays bounded.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;

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
        *inner
            .counters
            .entry(("warden_http_requests_total", labels.clone()))
            .or_default() += 1;
        if status >= 400 {
            *inner
                .counters
                .entry(("warden_http_errors_total", labels))
                .or_default() += 1;
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
        *inner
            .counters
            .entry(("warden_prompt_tokens_total", labels.clone()))
            .or_default() += u64::from(prompt);
        *inner
            .counters
            .entry(("warden_completion_tokens_total", labels.clone()))
            .or_default() += u64::from(completion);
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
        *inner
            .counters
            .entry((
                "warden_plugin_calls_total",
                vec![("plugin", plugin.to_owned()), ("outcome", outcome)],
            ))
            .or_default() += 1;
        inner
            .histograms
            .entry((
                "warden_plugin_call_duration_seconds",
                vec![("plugin", plugin.to_owned())],
            ))
            .or_insert_with(|| Histogram::new(LATENCY_BUCKETS))
            .observe(seconds);
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
}
