//! `warden model fetch|path|convert`: the local model files.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use warden_llm_embedded::model::{self, convert};

use crate::config::Config;

#[derive(Subcommand)]
pub enum ModelCommand {
    /// Download, verify and install the default model.
    Fetch,
    /// Print the path of the installed default model.
    Path,
    /// Re-quantise a GGUF file (e.g. to q8_0 or q4_0).
    Convert(ConvertArgs),
}

#[derive(Args)]
pub struct ConvertArgs {
    pub input: PathBuf,
    pub output: PathBuf,
    /// Target type: q8_0 or q4_0.
    #[arg(long, default_value = "q8_0")]
    pub dtype: String,
}

pub fn run(config: &Config, cmd: ModelCommand) -> anyhow::Result<()> {
    let path = match cmd {
        ModelCommand::Fetch => model::ensure_default_model(&config.models_dir())?,
        ModelCommand::Path => model::default_model_path(&config.models_dir())?,
        ModelCommand::Convert(a) => {
            let dtype = convert::TargetType::parse(&a.dtype)?;
            convert::requantize(&a.input, &a.output, dtype)
                .with_context(|| format!("converting {}", a.input.display()))?;
            a.output
        }
    };
    println!("{}", path.display());
    Ok(())
}
