//! `warden keys create|list|revoke`, on the configured database directly.

use anyhow::Context;
use clap::Subcommand;

use super::bench::Table;
use crate::config::Config;

#[derive(Subcommand)]
pub enum KeysCommand {
    /// Create a key and print it once.
    Create {
        #[arg(long)]
        name: String,
        #[arg(long, default_value = "user")]
        role: String,
    },
    /// List keys (never their values).
    List,
    /// Revoke a key by name.
    Revoke { name: String },
}

pub async fn run(config: &Config, cmd: KeysCommand) -> anyhow::Result<()> {
    let db = warden_db::connect(&config.database_url())
        .await
        .context("opening the database")?;
    match cmd {
        KeysCommand::Create { name, role } => {
            let role = role.parse()?;
            let key = crate::keys::create(&db, &name, role).await?;
            println!("{key}");
        }
        KeysCommand::List => {
            let mut table = Table::new(["NAME", "ROLE", "PREFIX", "CREATED", "STATE"]);
            for k in crate::keys::list(&db).await? {
                table.row([
                    k.name,
                    k.role,
                    k.prefix,
                    k.created_at.to_rfc3339(),
                    if k.revoked { "revoked" } else { "active" }.to_owned(),
                ]);
            }
            print!("{}", table.render());
        }
        KeysCommand::Revoke { name } => {
            if !crate::keys::revoke(&db, &name).await? {
                anyhow::bail!("no key named {name:?}");
            }
            println!("revoked {name}");
        }
    }
    Ok(())
}
