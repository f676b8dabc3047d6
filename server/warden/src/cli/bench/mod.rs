//! `warden bench …`: the benchmarks behind docs/benchmarks.md. Each verb
//! measures one capability; they share [`Summary`] for percentiles and
//! [`Table`] for aligned output, so every report reads the same way.

pub mod agents;
pub mod chat;
pub mod console;
pub mod email;
pub mod governance;
pub mod plugins;
pub mod slack;

use clap::Subcommand;

use crate::config::Config;

#[derive(Subcommand)]
pub enum BenchCommand {
    /// Measure chat completions on any OpenAI-compatible server.
    Chat(chat::BenchArgs),
    /// Measure plugin call latency and load time in-process.
    Plugins(plugins::PluginBenchArgs),
    /// Measure policy evaluation latency and audit write throughput.
    Governance(governance::GovernanceBenchArgs),
    /// Measure agent overhead per step (and, with --e2e, the document scenario).
    Agents(agents::AgentBenchArgs),
    /// Measure Slack event acknowledgement while the model is busy.
    Slack(slack::SlackBenchArgs),
    /// Measure inbound mail throughput and inbound-to-SMTP latency.
    Email(email::EmailBenchArgs),
    /// Measure console page renders on a large database.
    Console(console::ConsoleBenchArgs),
}

impl BenchCommand {
    /// Whether the verb needs the configuration (`chat` measures any server).
    pub fn needs_config(&self) -> bool {
        !matches!(self, BenchCommand::Chat(_))
    }

    pub async fn run(self, config: Option<Config>) -> anyhow::Result<()> {
        let config = || config.ok_or_else(|| anyhow::anyhow!("no configuration loaded"));
        match self {
            BenchCommand::Chat(args) => chat::run(args).await,
            BenchCommand::Plugins(args) => plugins::run(config()?, args).await,
            BenchCommand::Governance(args) => governance::run(config()?, args).await,
            BenchCommand::Agents(args) => agents::run(config()?, args).await,
            BenchCommand::Slack(args) => slack::run(config()?, args).await,
            BenchCommand::Email(args) => email::run(config()?, args).await,
            BenchCommand::Console(args) => console::run(config()?, args).await,
        }
    }
}

/// Order statistics of a set of samples. A percentile q is the sample at
/// rank round((n - 1) * q) in sorted order (so p50 of two samples is the
/// larger one, and p100 is the maximum).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    pub count: usize,
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

impl Summary {
    /// `None` for no samples: a benchmark that measured nothing says so
    /// instead of reporting zeros or panicking.
    pub fn of(samples: &[f64]) -> Option<Summary> {
        let mut sorted: Vec<f64> = samples.iter().copied().filter(|v| v.is_finite()).collect();
        if sorted.is_empty() {
            return None;
        }
        sorted.sort_by(f64::total_cmp);
        let at = |q: f64| sorted[((sorted.len() - 1) as f64 * q).round() as usize];
        Some(Summary {
            count: sorted.len(),
            mean: sorted.iter().sum::<f64>() / sorted.len() as f64,
            p50: at(0.5),
            p90: at(0.9),
            p99: at(0.99),
            max: at(1.0),
        })
    }
}

/// A text table with right-aligned columns except the first, sized to
/// their widest cell.
pub struct Table {
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new<S: ToString>(header: impl IntoIterator<Item = S>) -> Self {
        Self {
            rows: vec![header.into_iter().map(|h| h.to_string()).collect()],
        }
    }

    pub fn row<S: ToString>(&mut self, cells: impl IntoIterator<Item = S>) {
        self.rows
            .push(cells.into_iter().map(|c| c.to_string()).collect());
    }

    pub fn render(&self) -> String {
        let columns = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        let widths: Vec<usize> = (0..columns)
            .map(|c| {
                self.rows
                    .iter()
                    .filter_map(|r| r.get(c))
                    .map(|s| s.chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut out = String::new();
        for row in &self.rows {
            let cells: Vec<String> = row
                .iter()
                .enumerate()
                .map(|(i, cell)| {
                    if i == 0 {
                        format!("{cell:<w$}", w = widths[i])
                    } else {
                        format!("{cell:>w$}", w = widths[i])
                    }
                })
                .collect();
            out.push_str(cells.join("  ").trim_end());
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries_of_nothing_are_none_not_a_panic() {
        assert_eq!(Summary::of(&[]), None);
        assert_eq!(Summary::of(&[f64::NAN]), None);
    }

    #[test]
    fn summaries_take_the_sample_at_the_rounded_rank() {
        let samples: Vec<f64> = (1..=100).rev().map(f64::from).collect();
        let s = Summary::of(&samples).unwrap();
        assert_eq!(
            (s.count, s.p50, s.p90, s.p99, s.max),
            (100, 51.0, 90.0, 99.0, 100.0)
        );
        assert_eq!(s.mean, 50.5);
        let one = Summary::of(&[7.0]).unwrap();
        assert_eq!((one.p50, one.p99), (7.0, 7.0));
    }

    #[test]
    fn tables_align_columns_to_their_widest_cell() {
        let mut t = Table::new(["case", "p50 µs"]);
        t.row(["a longer case", "1.5"]);
        t.row(["b", "12345.0"]);
        assert_eq!(
            t.render(),
            "case            p50 µs\na longer case      1.5\nb              12345.0\n"
        );
    }
}
