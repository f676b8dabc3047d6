//! Re-quantising a GGUF file with candle's own GGUF reader and writer.
//!
//! Only Q4_1 tensors are converted (the type candle has no SIMD kernel for);
//! every other tensor and all metadata, tokenizer and chat template included,
//! are copied unchanged.

use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::path::Path;

use candle_core::Device;
use candle_core::quantized::{GgmlDType, QTensor, gguf_file};
use thiserror::Error;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetType {
    Q8_0,
    Q4_0,
}

#[derive(Debug, Error)]
pub enum ConvertError {
    #[error("unsupported target type {0:?}; expected q8_0 or q4_0")]
    UnsupportedType(String),
    #[error("i/o error at {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("gguf error: {0}")]
    Gguf(#[from] candle_core::Error),
}

impl TargetType {
    pub fn parse(s: &str) -> Result<Self, ConvertError> {
        match s.to_ascii_lowercase().as_str() {
            "q8_0" => Ok(Self::Q8_0),
            "q4_0" => Ok(Self::Q4_0),
            _ => Err(ConvertError::UnsupportedType(s.to_owned())),
        }
    }

    pub fn file_suffix(self) -> &'static str {
        match self {
            Self::Q8_0 => "Q8_0",
            Self::Q4_0 => "Q4_0",
        }
    }

    fn ggml(self) -> GgmlDType {
        match self {
            Self::Q8_0 => GgmlDType::Q8_0,
            Self::Q4_0 => GgmlDType::Q4_0,
        }
    }

    /// `general.file_type` as llama.cpp numbers it (LLAMA_FTYPE_MOSTLY_*).
    fn file_type(self) -> u32 {
        match self {
            Self::Q8_0 => 7,
            Self::Q4_0 => 2,
        }
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ConvertError + '_ {
    move |source| ConvertError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Writes a copy of `src` with its Q4_1 tensors re-quantised to `target`.
pub fn requantize(src: &Path, dst: &Path, target: TargetType) -> Result<(), ConvertError> {
    let mut reader = BufReader::new(File::open(src).map_err(io(src))?);
    let content = gguf_file::Content::read(&mut reader)?;

    let mut names: Vec<&String> = content.tensor_infos.keys().collect();
    names.sort_by_key(|n| content.tensor_infos[*n].offset);
    let mut tensors: Vec<(String, QTensor)> = Vec::with_capacity(names.len());
    for name in names {
        let tensor = content.tensor(&mut reader, name, &Device::Cpu)?;
        let tensor = if tensor.dtype() == GgmlDType::Q4_1 {
            QTensor::quantize(&tensor.dequantize(&Device::Cpu)?, target.ggml())?
        } else {
            tensor
        };
        tensors.push((name.clone(), tensor));
    }

    let mut metadata: Vec<(String, gguf_file::Value)> = content.metadata.into_iter().collect();
    metadata.sort_by(|a, b| a.0.cmp(&b.0));
    for (key, value) in &mut metadata {
        match key.as_str() {
            "general.file_type" => *value = gguf_file::Value::U32(target.file_type()),
            // candle's writer always pads tensor data to 32 bytes.
            "general.alignment" => *value = gguf_file::Value::U32(32),
            _ => {}
        }
    }

    let mut writer = BufWriter::new(File::create(dst).map_err(io(dst))?);
    let meta_refs: Vec<(&str, &gguf_file::Value)> =
        metadata.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let tensor_refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(k, t)| (k.as_str(), t)).collect();
    gguf_file::write(&mut writer, &meta_refs, &tensor_refs)?;
    writer.flush().map_err(io(dst))?;
    writer.get_ref().sync_all().map_err(io(dst))?;
    Ok(())
}

/// Like [`requantize`], but `dst` appears only once complete.
pub fn requantize_atomically(
    src: &Path,
    dst: &Path,
    target: TargetType,
) -> Result<(), ConvertError> {
    let dir = dst.parent().unwrap_or(Path::new("."));
    let tmp = tempfile::Builder::new()
        .prefix(".convert-")
        .suffix(".gguf")
        .tempfile_in(dir)
        .map_err(io(dir))?;
    requantize(src, tmp.path(), target)?;
    // Temporary files are private (0600); a model file is not a secret.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o644))
            .map_err(io(dst))?;
    }
    tmp.persist(dst).map_err(|e| ConvertError::Io {
        path: dst.display().to_string(),
        source: e.error,
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Tensor;

    fn write_q4_1_model(path: &Path) {
        let weight = Tensor::arange(0f32, 64.0 * 32.0, &Device::Cpu)
            .unwrap()
            .reshape((64, 32))
            .unwrap();
        let weight = (weight / 1000.0).unwrap();
        let q = QTensor::quantize(&weight, GgmlDType::Q4_1).unwrap();
        let norm = QTensor::quantize(
            &Tensor::ones(32, candle_core::DType::F32, &Device::Cpu).unwrap(),
            GgmlDType::F32,
        )
        .unwrap();
        let arch = gguf_file::Value::String("llama".into());
        let ftype = gguf_file::Value::U32(3);
        let mut f = File::create(path).unwrap();
        gguf_file::write(
            &mut f,
            &[
                ("general.architecture", &arch),
                ("general.file_type", &ftype),
            ],
            &[
                ("blk.0.attn_q.weight", &q),
                ("blk.0.attn_norm.weight", &norm),
            ],
        )
        .unwrap();
    }

    #[test]
    fn q4_1_tensors_are_converted_and_everything_else_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("m.Q4_1.gguf");
        let dst = dir.path().join("m.Q8_0.gguf");
        write_q4_1_model(&src);
        requantize_atomically(&src, &dst, TargetType::Q8_0).unwrap();

        let mut r = BufReader::new(File::open(&dst).unwrap());
        let c = gguf_file::Content::read(&mut r).unwrap();
        assert_eq!(
            c.metadata["general.architecture"].to_string().unwrap(),
            "llama"
        );
        assert_eq!(c.metadata["general.file_type"].to_u32().unwrap(), 7);
        let q = c
            .tensor(&mut r, "blk.0.attn_q.weight", &Device::Cpu)
            .unwrap();
        assert_eq!(q.dtype(), GgmlDType::Q8_0);
        assert_eq!(
            c.tensor(&mut r, "blk.0.attn_norm.weight", &Device::Cpu)
                .unwrap()
                .dtype(),
            GgmlDType::F32
        );

        // The values survive the conversion to within Q4_1's own precision.
        let mut r0 = BufReader::new(File::open(&src).unwrap());
        let c0 = gguf_file::Content::read(&mut r0).unwrap();
        let before = c0
            .tensor(&mut r0, "blk.0.attn_q.weight", &Device::Cpu)
            .unwrap()
            .dequantize(&Device::Cpu)
            .unwrap();
        let after = q.dequantize(&Device::Cpu).unwrap();
        let diff = (before - after)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(diff < 0.01, "max abs difference {diff}");
    }

    #[test]
    fn unknown_target_types_are_rejected() {
        assert!(TargetType::parse("q5_k").is_err());
        assert_eq!(TargetType::parse("Q4_0").unwrap(), TargetType::Q4_0);
    }
}
