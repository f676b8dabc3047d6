//! `warden audit`: verify the hash chain, export records.

use std::io::Write as _;

use anyhow::{Context, bail};
use clap::Subcommand;
use warden_governance::audit::{self, AuditFilter};

use crate::config::Config;

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Walk the hash chain; exits non-zero at the first altered, deleted or
    /// reordered row.
    Verify,
    /// Print audit records, oldest first.
    Export {
        /// RFC 3339 time or YYYY-MM-DD date.
        #[arg(long)]
        since: Option<String>,
        #[arg(long)]
        until: Option<String>,
        /// Only `jsonl` (one JSON record per line, hashes included).
        #[arg(long, default_value = "jsonl")]
        format: String,
    },
}

pub async fn run(config: Config, cmd: AuditCommand) -> anyhow::Result<()> {
    let db = warden_db::connect(&config.database_url())
        .await
        .context("opening the database")?;
    match cmd {
        AuditCommand::Verify => {
            let report = audit::verify(&db).await.context("reading the audit log")?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            match &report.problem {
                None => {
                    eprintln!(
                        "audit chain intact: {} rows, head {}",
                        report.rows_checked,
                        &report.head_hash[..16]
                    );
                    Ok(())
                }
                Some(p) => bail!("audit chain broken at row {}: {}", p.seq, p.detail),
            }
        }
        AuditCommand::Export {
            since,
            until,
            format,
        } => {
            if format != "jsonl" {
                bail!("--format {format:?}: only jsonl is supported");
            }
            let filter = AuditFilter {
                since,
                until,
                ..AuditFilter::default()
            };
            filter.validate()?;
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            let mut after = 0;
            loop {
                let rows = filter.export_page(&db, after, 1000).await?;
                let Some(last) = rows.last() else { break };
                after = last.seq;
                for row in rows {
                    serde_json::to_writer(&mut out, &row)?;
                    out.write_all(b"\n")?;
                }
            }
            out.flush()?;
            Ok(())
        }
    }
}
