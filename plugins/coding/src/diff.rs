//! Statistics of a unified diff (`git diff` or `diff -u` output).

use serde::{Deserialize, Serialize};
use warden_sdk::{Context, JsonSchema, ToolError};

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DiffArgs {
    /// The unified diff text.
    diff: String,
}

#[derive(Debug, Serialize, PartialEq, Default)]
pub struct FileStats {
    pub path: String,
    pub additions: u32,
    pub deletions: u32,
    pub hunks: u32,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct DiffStats {
    pub files_changed: u32,
    pub additions: u32,
    pub deletions: u32,
    pub hunks: u32,
    pub files: Vec<FileStats>,
}

pub fn stats(_: &Context, a: DiffArgs) -> Result<DiffStats, ToolError> {
    let s = compute(&a.diff);
    if s.files.is_empty() {
        return Err(ToolError::invalid(
            "no file headers (---/+++) found; is this a unified diff?",
        ));
    }
    Ok(s)
}

fn strip_path(p: &str) -> String {
    let p = p.split('\t').next().unwrap_or(p).trim();
    p.strip_prefix("a/")
        .or_else(|| p.strip_prefix("b/"))
        .unwrap_or(p)
        .to_owned()
}

/// `@@ -a[,b] +c[,d] @@` → (b, d); a missing count means 1.
fn hunk_counts(line: &str) -> Option<(u32, u32)> {
    let mut parts = line.trim_start_matches('@').split_whitespace();
    let count = |range: &str| -> Option<u32> {
        match range.split_once(',') {
            Some((_, n)) => n.parse().ok(),
            None => range.parse::<u32>().ok().map(|_| 1),
        }
    };
    let old = count(parts.next()?.strip_prefix('-')?)?;
    let new = count(parts.next()?.strip_prefix('+')?)?;
    Some((old, new))
}

/// Walks the diff using each hunk's line counts, so content lines that
/// happen to start with `---` or `+++` are not mistaken for file headers.
pub fn compute(diff: &str) -> DiffStats {
    let mut files: Vec<FileStats> = Vec::new();
    let mut old_path = String::new();
    let (mut old_left, mut new_left) = (0u32, 0u32);
    let mut lines = diff.lines().peekable();
    while let Some(line) = lines.next() {
        if (old_left > 0 || new_left > 0)
            && let Some(f) = files.last_mut()
        {
            match line.chars().next() {
                Some('+') => {
                    f.additions += 1;
                    new_left = new_left.saturating_sub(1);
                    continue;
                }
                Some('-') => {
                    f.deletions += 1;
                    old_left = old_left.saturating_sub(1);
                    continue;
                }
                Some(' ') | None => {
                    old_left = old_left.saturating_sub(1);
                    new_left = new_left.saturating_sub(1);
                    continue;
                }
                Some('\\') => continue,
                _ => (old_left, new_left) = (0, 0),
            }
        }
        if let Some(p) = line.strip_prefix("--- ")
            && lines.peek().is_some_and(|n| n.starts_with("+++ "))
        {
            old_path = strip_path(p);
            continue;
        }
        if let Some(p) = line.strip_prefix("+++ ") {
            let new = strip_path(p);
            let path = if new == "/dev/null" {
                old_path.clone()
            } else {
                new
            };
            files.push(FileStats {
                path,
                ..Default::default()
            });
            continue;
        }
        if line.starts_with("@@")
            && let Some(f) = files.last_mut()
        {
            f.hunks += 1;
            (old_left, new_left) = hunk_counts(line).unwrap_or((0, 0));
        }
    }
    DiffStats {
        files_changed: files.len() as u32,
        additions: files.iter().map(|f| f.additions).sum(),
        deletions: files.iter().map(|f| f.deletions).sum(),
        hunks: files.iter().map(|f| f.hunks).sum(),
        files,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_files_hunks_and_lines() {
        let d = "diff --git a/src/x.rs b/src/x.rs\n--- a/src/x.rs\n+++ b/src/x.rs\n@@ -1,3 +1,3 @@\n fn a() {}\n-fn b() {}\n+fn b() { 1 }\n+// new\n@@ -10 +11 @@\n--- old comment\n+++ new comment\n--- a/gone.txt\n+++ /dev/null\n@@ -1 +0,0 @@\n-bye\n";
        let s = compute(d);
        assert_eq!(s.files_changed, 2);
        assert_eq!(
            s.files[0],
            FileStats {
                path: "src/x.rs".into(),
                additions: 3,
                deletions: 2,
                hunks: 2
            }
        );
        assert_eq!(s.files[1].path, "gone.txt");
        assert_eq!((s.additions, s.deletions, s.hunks), (3, 3, 3));
    }
}
