//! Static review without executing anything: each rule looks at lines (or,
//! for long functions, at brace/indent structure) and reports 1-based line
//! numbers. Secrets are reported, never echoed: findings show a masked form.

use serde::{Deserialize, Serialize};
use warden_sdk::{Context, JsonSchema, ToolError};

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReviewArgs {
    source: String,
    /// Functions longer than this many lines are reported (default 60).
    max_function_lines: Option<u32>,
}

#[derive(Debug, Serialize, PartialEq, Clone, Copy)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    High,
}

#[derive(Debug, Serialize)]
pub struct Finding {
    pub line: usize,
    pub rule: &'static str,
    pub severity: Severity,
    pub message: String,
}

#[derive(Debug, Serialize)]
pub struct Review {
    pub findings: Vec<Finding>,
    pub lines: usize,
}

pub fn review(_: &Context, a: ReviewArgs) -> Result<Review, ToolError> {
    if a.source.len() > 1_000_000 {
        return Err(ToolError::invalid("source longer than 1 MB"));
    }
    Ok(run(
        &a.source,
        a.max_function_lines.unwrap_or(60).max(5) as usize,
    ))
}

pub fn run(source: &str, max_fn_lines: usize) -> Review {
    let mut findings = Vec::new();
    for (i, line) in source.lines().enumerate() {
        let n = i + 1;
        secrets(line, n, &mut findings);
        markers(line, n, &mut findings);
        dangerous(line, n, &mut findings);
    }
    long_functions(source, max_fn_lines, &mut findings);
    findings.sort_by_key(|f| f.line);
    Review {
        findings,
        lines: source.lines().count(),
    }
}

fn mask(s: &str) -> String {
    let shown: String = s.chars().take(4).collect();
    format!(
        "{shown}{}",
        "*".repeat(s.chars().count().saturating_sub(4).min(12))
    )
}

fn secrets(line: &str, n: usize, out: &mut Vec<Finding>) {
    let mut push = |msg: String| {
        out.push(Finding {
            line: n,
            rule: "hardcoded-secret",
            severity: Severity::High,
            message: msg,
        })
    };
    if line.contains("-----BEGIN") && line.contains("PRIVATE KEY") {
        push("private key embedded in source".into());
        return;
    }
    // AWS access key ids: AKIA + 16 upper-case letters or digits.
    let bytes = line.as_bytes();
    for (i, _) in line.match_indices("AKIA") {
        let id = &bytes[i..(i + 20).min(bytes.len())];
        if id.len() == 20
            && id[4..]
                .iter()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
        {
            push(format!("AWS access key id {}", mask(&line[i..i + 20])));
            return;
        }
    }
    for prefix in ["ghp_", "github_pat_", "sk-", "xoxb-", "xoxp-", "sk_live_"] {
        if let Some(i) = line.find(prefix) {
            let token: String = line[i..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'))
                .collect();
            if token.len() >= prefix.len() + 16 {
                push(format!("API token {}", mask(&token)));
                return;
            }
        }
    }
    // name = "literal" where the name suggests a credential.
    let lower = line.to_ascii_lowercase();
    for word in [
        "password",
        "passwd",
        "secret",
        "api_key",
        "apikey",
        "token",
        "access_key",
        "private_key",
    ] {
        let Some(at) = lower.find(word) else { continue };
        let rest = &line[at + word.len()..];
        let rest = rest
            .trim_start_matches(|c: char| c.is_alphanumeric() || c == '_')
            .trim_start();
        let Some(rest) = rest
            .strip_prefix([':', '='])
            .map(|r| r.trim_start_matches(['=', '>']).trim_start())
        else {
            continue;
        };
        let Some(q) = rest.chars().next().filter(|c| matches!(c, '"' | '\'')) else {
            continue;
        };
        let value: String = rest[1..].chars().take_while(|c| *c != q).collect();
        let placeholder = value.is_empty()
            || value.starts_with('$')
            || value.starts_with('<')
            || value.starts_with("{{")
            || ["changeme", "example", "xxx", "your", "dummy", "test"]
                .iter()
                .any(|p| value.to_ascii_lowercase().contains(p));
        if value.len() >= 6 && !placeholder {
            push(format!("{word} assigned a literal {}", mask(&value)));
            return;
        }
    }
}

fn markers(line: &str, n: usize, out: &mut Vec<Finding>) {
    for marker in ["TODO", "FIXME", "XXX", "HACK"] {
        if let Some(i) = line.find(marker) {
            let before_ok = i == 0 || !line.as_bytes()[i - 1].is_ascii_alphanumeric();
            let after = line.as_bytes().get(i + marker.len());
            let after_ok = after.is_none_or(|b| !b.is_ascii_alphanumeric());
            if before_ok && after_ok {
                let text = line[i..].trim();
                out.push(Finding {
                    line: n,
                    rule: "todo-marker",
                    severity: Severity::Info,
                    message: text.chars().take(120).collect(),
                });
                return;
            }
        }
    }
}

fn dangerous(line: &str, n: usize, out: &mut Vec<Finding>) {
    let code = line.split("//").next().unwrap_or(line);
    let code_trim = code.trim_start();
    if code_trim.starts_with('#') && !code_trim.starts_with("#[") && !code_trim.starts_with("#!") {
        return;
    }
    let rules: &[(&str, &str, Severity, &str)] = &[
        (
            "unsafe {",
            "unsafe",
            Severity::Warning,
            "unsafe block: check every invariant it relies on",
        ),
        ("unsafe fn", "unsafe", Severity::Warning, "unsafe function"),
        ("unsafe impl", "unsafe", Severity::Warning, "unsafe impl"),
        ("eval(", "eval", Severity::High, "eval of dynamic code"),
        ("exec(", "eval", Severity::High, "exec of dynamic code"),
        (
            "new Function(",
            "eval",
            Severity::High,
            "Function constructor runs dynamic code",
        ),
        (
            "os.system(",
            "shell",
            Severity::High,
            "shell command from a string",
        ),
        (
            "shell=True",
            "shell",
            Severity::High,
            "subprocess with shell=True",
        ),
        (
            ".innerHTML =",
            "xss",
            Severity::Warning,
            "assigning innerHTML can inject markup",
        ),
        (
            "pickle.loads(",
            "deserialization",
            Severity::High,
            "unpickling untrusted data runs code",
        ),
        (
            "yaml.load(",
            "deserialization",
            Severity::Warning,
            "yaml.load without SafeLoader",
        ),
    ];
    for (needle, rule, severity, message) in rules {
        if let Some(i) = code.find(needle) {
            let prev = code[..i].chars().next_back();
            if needle.chars().next().is_some_and(char::is_alphabetic)
                && prev.is_some_and(|c| {
                    c.is_alphanumeric() || c == '_' || (c == '.' && *rule == "eval")
                })
            {
                continue;
            }
            out.push(Finding {
                line: n,
                rule,
                severity: *severity,
                message: (*message).into(),
            });
            return;
        }
    }
}

/// Functions in brace languages (`fn`, `function`, `func`) measured by
/// brace depth; Python `def` measured by indentation.
fn long_functions(source: &str, max: usize, out: &mut Vec<Finding>) {
    let lines: Vec<&str> = source.lines().collect();
    let mut i = 0;
    while i < lines.len() {
        let t = lines[i].trim_start();
        let name = fn_name(t);
        let Some(name) = name else {
            i += 1;
            continue;
        };
        let end = if t.starts_with("def ") || t.starts_with("async def ") {
            let indent = lines[i].len() - t.len();
            let mut j = i + 1;
            while j < lines.len()
                && (lines[j].trim().is_empty()
                    || lines[j].len() - lines[j].trim_start().len() > indent)
            {
                j += 1;
            }
            j
        } else {
            let mut depth = 0i32;
            let mut opened = false;
            let mut j = i;
            while j < lines.len() {
                for c in lines[j].chars() {
                    match c {
                        '{' => {
                            depth += 1;
                            opened = true;
                        }
                        '}' => depth -= 1,
                        _ => {}
                    }
                }
                j += 1;
                if (opened && depth <= 0) || (!opened && lines[j - 1].trim_end().ends_with(';')) {
                    break;
                }
            }
            j
        };
        let len = end - i;
        if len > max {
            out.push(Finding {
                line: i + 1,
                rule: "long-function",
                severity: Severity::Warning,
                message: format!("function {name} is {len} lines long (limit {max})"),
            });
        }
        i += 1;
    }
}

fn fn_name(t: &str) -> Option<String> {
    let t = [
        "pub(crate) ",
        "pub ",
        "async ",
        "export ",
        "static ",
        "private ",
        "public ",
        "const ",
    ]
    .iter()
    .fold(t, |acc, p| acc.strip_prefix(p).unwrap_or(acc));
    let t = t.strip_prefix("async ").unwrap_or(t);
    let rest = ["fn ", "function ", "func ", "def "]
        .iter()
        .find_map(|k| t.strip_prefix(k))?;
    let name: String = rest
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect();
    (!name.is_empty()).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(src: &str) -> Vec<(usize, &'static str)> {
        run(src, 5)
            .findings
            .iter()
            .map(|f| (f.line, f.rule))
            .collect()
    }

    #[test]
    fn each_rule_reports_its_line() {
        let cases: &[(&str, &[(usize, &str)])] = &[
            (
                "let x = 1;\nconst API_KEY = \"AKIAABCDEFGHIJKLMNOP\";",
                &[(2, "hardcoded-secret")],
            ),
            ("password = \"hunter2hunter2\"", &[(1, "hardcoded-secret")]),
            ("password = \"changeme\"", &[]),
            ("password = os.environ['PW']", &[]),
            (
                "-----BEGIN RSA PRIVATE KEY-----",
                &[(1, "hardcoded-secret")],
            ),
            ("// TODO: handle errors\nx()", &[(1, "todo-marker")]),
            ("let todos = 3; // not a TODOLIST", &[]),
            ("fn f() {\n    unsafe { *p }\n}", &[(2, "unsafe")]),
            ("result = eval(user_input)", &[(1, "eval")]),
            ("my_eval(x)", &[]),
            ("subprocess.run(cmd, shell=True)", &[(1, "shell")]),
            (
                "fn long() {\n a();\n b();\n c();\n d();\n e();\n}",
                &[(1, "long-function")],
            ),
            ("fn short() {\n a();\n}", &[]),
            (
                "def f():\n  a\n  b\n  c\n  d\n  e\nx = 1",
                &[(1, "long-function")],
            ),
        ];
        for (src, want) in cases {
            assert_eq!(rules(src), *want, "{src}");
        }
    }

    #[test]
    fn secrets_are_masked_in_messages() {
        let r = run("token = \"abcdef123456secret\"", 60);
        assert!(
            !r.findings[0].message.contains("abcdef123456secret"),
            "{:?}",
            r.findings
        );
    }
}
