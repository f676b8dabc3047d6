//! Checking output that is still being generated. Text is released only up
//! to a safe point: never inside the run of non-whitespace that reaches the
//! end (tokens, keys, URLs and emails have no spaces, so one is never
//! released in pieces), never after the space-separated groups of a number
//! that may still grow (cards, IBANs, phones; up to `hold_back` bytes), and
//! never inside or after the start of a span that a redaction may still grow.
//! Each release is redacted with the spans found so far; the final check
//! (all detectors, LLM judge included) runs on the whole text at the end.

use std::collections::HashMap;
use std::sync::Arc;

use super::bundle::Bundle;
use super::detectors::Span;
use super::engine::{Decision, EvalInput, Subject};
use super::spec::{Action, RedactSpec, Stage};

pub struct StreamGuard {
    bundle: Arc<Bundle>,
    subject: Subject,
    stage: Stage,
    hold_back: usize,
    raw: String,
    /// Bytes of `raw` already released.
    released: usize,
    /// Length of `raw` at the last evaluation.
    evaluated: usize,
}

#[derive(Debug)]
pub enum Release {
    /// Text that may be sent now (possibly empty).
    Text(String),
    /// An enforced block (or approval requirement) matched: stop the stream.
    Stopped(Box<Decision>),
}

impl StreamGuard {
    pub fn new(bundle: Arc<Bundle>, stage: Stage, subject: Subject, hold_back: usize) -> Self {
        Self {
            bundle,
            subject,
            stage,
            hold_back,
            raw: String::new(),
            released: 0,
            evaluated: 0,
        }
    }

    pub fn bundle(&self) -> &Arc<Bundle> {
        &self.bundle
    }

    /// The whole text received so far.
    pub fn text(&self) -> &str {
        &self.raw
    }

    pub fn push(&mut self, chunk: &str) -> Release {
        self.raw.push_str(chunk);
        // Re-evaluating the growing text costs O(n) each time; spacing
        // evaluations by a fraction of the length keeps the total near O(n log n).
        let step = (self.raw.len() / 32).max(8);
        if self.raw.len() - self.evaluated < step {
            return Release::Text(String::new());
        }
        self.evaluated = self.raw.len();
        let input = EvalInput {
            stage: self.stage,
            text: &self.raw,
            subject: &self.subject,
        };
        let decision = self.bundle.evaluate(input, &HashMap::new(), true).decision;
        if stops(decision.decision) && !only_at_the_end(&decision, self.raw.len()) {
            return Release::Stopped(Box::new(decision));
        }
        let bundle = Arc::clone(&self.bundle);
        let spans = redaction_spans(&bundle, &decision);
        let safe = self.safe_point(&spans);
        Release::Text(self.release_to(safe, &spans))
    }

    /// Releases the rest after the final decision on the whole text
    /// (`decision` must come from evaluating [`Self::text`]).
    pub fn finish(&mut self, decision: &Decision) -> Release {
        if stops(decision.decision) {
            return Release::Stopped(Box::new(decision.clone()));
        }
        let bundle = Arc::clone(&self.bundle);
        let spans = redaction_spans(&bundle, decision);
        let end = self.raw.len();
        Release::Text(self.release_to(end, &spans))
    }

    fn safe_point(&self, spans: &[(Span, &RedactSpec)]) -> usize {
        let len = self.raw.len();
        // Never inside the run of non-whitespace that reaches the end.
        let mut safe = match self.raw.rfind(char::is_whitespace) {
            Some(i) => i + self.raw[i..].chars().next().map_or(1, char::len_utf8),
            None => 0,
        };
        // Nor after the groups of a spaced number that may still grow
        // ("4111 1111 …", "+1 (555) 123-4567", "DE89 3704 …"), within
        // `hold_back` bytes of the end.
        while let Some(start) = group_before(&self.raw, safe)
            && len - start <= self.hold_back
        {
            safe = start;
        }
        // Never inside a span, nor past the start of one touching the end.
        loop {
            let inside = spans
                .iter()
                .filter(|(s, _)| s.start < safe && (s.end > safe || s.end >= len))
                .map(|(s, _)| s.start)
                .min();
            match inside {
                Some(start) => safe = start,
                None => break,
            }
        }
        safe.max(self.released)
    }

    fn release_to(&mut self, to: usize, spans: &[(Span, &RedactSpec)]) -> String {
        if to <= self.released {
            return String::new();
        }
        let from = self.released;
        let local: Vec<(Span, &RedactSpec)> = spans
            .iter()
            .filter(|(s, _)| s.end > from && s.start < to)
            .map(|(s, r)| {
                (
                    Span::new(
                        s.start.max(from) - from,
                        s.end.min(to) - from,
                        s.kind.clone(),
                    ),
                    *r,
                )
            })
            .collect();
        let pairs: Vec<(&Span, &RedactSpec)> = local.iter().map(|(s, r)| (s, *r)).collect();
        self.released = to;
        super::redact::apply(&self.raw[from..to], &pairs)
    }
}

/// Whether every stopping match ends where the text ends so far: the word
/// may still grow into another ("forbid" → "forbidden"), so the stream
/// waits (the spans keep the text held) instead of stopping.
fn only_at_the_end(d: &Decision, len: usize) -> bool {
    d.matches
        .iter()
        .filter(|m| m.enforced && stops(m.action))
        .all(|m| m.spans.iter().all(|s| s.end == len))
}

fn stops(action: Action) -> bool {
    matches!(action, Action::Block | Action::RequireApproval)
}

/// The spans enforced redactions rewrite, with their rule's style.
fn redaction_spans<'b>(bundle: &'b Bundle, d: &Decision) -> Vec<(Span, &'b RedactSpec)> {
    d.matches
        .iter()
        .filter(|m| m.enforced && m.action == Action::Redact)
        .filter_map(|m| {
            let policy = bundle.policies.iter().find(|p| p.id.as_str() == m.policy)?;
            let rule = policy.rules.iter().find(|r| r.id.as_str() == m.rule)?;
            Some(m.spans.iter().map(move |s| (s.clone(), &rule.redact)))
        })
        .flatten()
        .collect()
}

/// The start of the token before `at` when it is separated from `at` by one
/// space and looks like a group of a spaced number or code: at most six
/// characters of digits, capitals and `()+-.`.
fn group_before(text: &str, at: usize) -> Option<usize> {
    let before = text[..at].strip_suffix(' ')?;
    let start = before.rfind(char::is_whitespace).map_or(0, |i| i + 1);
    let token = &before[start..];
    let grouped = !token.is_empty()
        && token.len() <= 6
        && token
            .chars()
            .all(|c| c.is_ascii_digit() || c.is_ascii_uppercase() || "()+-.".contains(c));
    grouped.then_some(start)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard() -> StreamGuard {
        let bundle = Bundle::from_sources(
            "test",
            &[(
                "p.yaml",
                "policies:\n  - id: p\n    version: 1\n    rules:\n      - id: secrets\n        stages: [output]\n        match: { secrets: {} }\n        action: redact\n      - id: stop\n        stages: [output]\n        match: { keywords: { words: [forbidden] } }\n        action: block\n        message: stopped\n",
            )],
        )
        .unwrap();
        StreamGuard::new(Arc::new(bundle), Stage::Output, Subject::default(), 64)
    }

    fn run(chunks: &[&str]) -> (String, Option<Decision>) {
        let mut g = guard();
        let mut out = String::new();
        for c in chunks {
            match g.push(c) {
                Release::Text(t) => out.push_str(&t),
                Release::Stopped(d) => return (out, Some(*d)),
            }
        }
        let input = EvalInput {
            stage: Stage::Output,
            text: g.text(),
            subject: &Subject::default(),
        };
        let d = g.bundle().evaluate(input, &HashMap::new(), false).decision;
        match g.finish(&d) {
            Release::Text(t) => out.push_str(&t),
            Release::Stopped(d) => return (out, Some(*d)),
        }
        (out, None)
    }

    #[test]
    fn a_key_split_across_chunks_is_never_released() {
        let text = "Here is the key you asked for: AKIAIOSFODNN7EXAMPLE and that is all there is to say about it, really, nothing more.";
        // One byte per chunk: the worst case for a hold-back buffer.
        let chunks: Vec<String> = text.chars().map(String::from).collect();
        let refs: Vec<&str> = chunks.iter().map(String::as_str).collect();
        let (out, stopped) = run(&refs);
        assert!(stopped.is_none());
        assert!(!out.contains("AKIA"), "{out}");
        assert!(!out.contains("EXAMPLE"), "{out}");
        assert_eq!(
            out,
            text.replace("AKIAIOSFODNN7EXAMPLE", "[REDACTED:aws_access_key]")
        );
    }

    #[test]
    fn a_word_that_only_starts_like_a_blocked_one_is_not_stopped() {
        let (out, stopped) = run(&[
            "the forbidden",
            "ness of it all and more words to come later on",
        ]);
        assert!(stopped.is_none(), "{out}");
        assert!(out.contains("forbiddenness"));
    }

    #[test]
    fn a_block_stops_before_the_blocked_word_is_sent() {
        let long = "word ".repeat(40);
        let (out, stopped) = run(&[
            &long,
            "then the forbidden ",
            "thing and more text after it ",
            &long,
        ]);
        assert!(stopped.is_some());
        assert!(!out.contains("forbidden"));
    }
}

#[cfg(test)]
mod release_tests {
    use super::*;

    #[test]
    fn spaced_numbers_are_held_but_prose_flows() {
        assert_eq!(group_before("card 4111 1111 ", 15), Some(10));
        assert_eq!(group_before("card 4111 ", 10), Some(5));
        assert_eq!(group_before("the card ", 9), None);
        assert_eq!(group_before("1. 1\n", 5), None);
    }
}
