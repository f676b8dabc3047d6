//! Inline policy tests: each policy file carries cases (content, stage,
//! subject, expected decision and text) that must pass before the bundle
//! can be activated. LLM judge answers are given by the case, so tests are
//! deterministic and need no model.

use std::collections::HashMap;
use std::fmt;

use serde::Deserialize;

use super::bundle::Bundle;
use super::engine::{EvalInput, Subject};
use super::spec::{Action, Stage};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyTest {
    pub name: String,
    pub stage: Stage,
    pub input: String,
    /// The subject the content belongs to (agent, plugin, tool, channel, effect).
    #[serde(default)]
    pub scope: Subject,
    /// Answers for LLM judge rules, by `policy/rule`.
    #[serde(default)]
    pub judge: HashMap<String, bool>,
    pub expect: Expectation,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expectation {
    pub decision: Action,
    /// The content after redaction (the input itself when nothing is redacted).
    #[serde(default)]
    pub text: Option<String>,
    /// Exactly these rules (`policy/rule`) match, in any order.
    #[serde(default)]
    pub rules: Option<Vec<String>>,
}

#[derive(Debug, Default)]
pub struct TestReport {
    pub passed: usize,
    pub failures: Vec<TestFailure>,
}

#[derive(Debug)]
pub struct TestFailure {
    pub file: String,
    pub name: String,
    pub problems: Vec<String>,
}

impl fmt::Display for TestReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for failure in &self.failures {
            writeln!(f, "FAIL {}: {}", failure.file, failure.name)?;
            for p in &failure.problems {
                for line in p.lines() {
                    writeln!(f, "    {line}")?;
                }
            }
        }
        write!(f, "{} passed, {} failed", self.passed, self.failures.len())
    }
}

pub fn run(bundle: &Bundle) -> TestReport {
    let mut report = TestReport::default();
    for (file, test) in &bundle.tests {
        let problems = check(bundle, test);
        if problems.is_empty() {
            report.passed += 1;
        } else {
            report.failures.push(TestFailure {
                file: file.clone(),
                name: test.name.clone(),
                problems,
            });
        }
    }
    report
}

fn check(bundle: &Bundle, test: &PolicyTest) -> Vec<String> {
    let input = EvalInput {
        stage: test.stage,
        text: &test.input,
        subject: &test.scope,
    };
    let mut judgements = HashMap::new();
    let mut eval = bundle.evaluate(input, &judgements, false);
    let mut problems = Vec::new();
    if !eval.pending.is_empty() {
        for (rule, spec) in &eval.pending {
            match test.judge.get(rule) {
                Some(&answer) => {
                    judgements.insert(spec.key(&test.input), answer);
                }
                None => problems.push(format!(
                    "rule {rule} asks an LLM judge: give its answer with `judge: {{{rule}: true|false}}`"
                )),
            }
        }
        if !problems.is_empty() {
            return problems;
        }
        eval = bundle.evaluate(input, &judgements, false);
    }
    let d = eval.decision;
    if d.decision != test.expect.decision {
        let matched: Vec<String> = d.matches.iter().map(|m| m.qualified()).collect();
        problems.push(format!(
            "decision: expected {}, got {} (matched: {})",
            test.expect.decision.as_str(),
            d.decision.as_str(),
            if matched.is_empty() {
                "none".to_owned()
            } else {
                matched.join(", ")
            }
        ));
    }
    if let Some(expected) = &test.expect.text {
        let actual = d.text(&test.input);
        if actual != expected {
            problems.push(format!("text differs:\n{}", diff(expected, actual)));
        }
    }
    if let Some(expected) = &test.expect.rules {
        let mut want: Vec<&str> = expected.iter().map(String::as_str).collect();
        let mut got: Vec<String> = d.matches.iter().map(|m| m.qualified()).collect();
        want.sort_unstable();
        got.sort_unstable();
        if want != got {
            problems.push(format!(
                "rules: expected [{}], got [{}]",
                want.join(", "),
                got.join(", ")
            ));
        }
    }
    problems
}

/// A line diff good enough for short texts: `-` expected, `+` actual, and
/// a caret under the first differing character of the first changed line.
pub fn diff(expected: &str, actual: &str) -> String {
    let e: Vec<&str> = expected.split('\n').collect();
    let a: Vec<&str> = actual.split('\n').collect();
    let mut out = String::new();
    let mut caret_done = false;
    for i in 0..e.len().max(a.len()) {
        match (e.get(i), a.get(i)) {
            (Some(x), Some(y)) if x == y => out.push_str(&format!("  {x}\n")),
            (x, y) => {
                if let Some(x) = x {
                    out.push_str(&format!("- {x}\n"));
                }
                if let Some(y) = y {
                    out.push_str(&format!("+ {y}\n"));
                }
                if let (Some(x), Some(y), false) = (x, y, caret_done) {
                    let col = x.chars().zip(y.chars()).take_while(|(p, q)| p == q).count();
                    out.push_str(&format!("  {}^\n", " ".repeat(col)));
                    caret_done = true;
                }
            }
        }
    }
    out.trim_end().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diff_points_at_the_first_difference() {
        assert_eq!(diff("abc", "abd"), "- abc\n+ abd\n    ^");
    }
}
