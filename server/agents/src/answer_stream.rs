//! Streaming a planner's final answer as the model writes it. The step is
//! JSON (`{"final": "..."}`), so the answer is read out of the growing JSON
//! text, decoded, and released through two hold-back guards: the
//! `llm_output` rules, then the `output` rules. Nothing reaches the client
//! that either stage would redact or stop; the audited decisions are still
//! taken on the whole step and the whole answer when it ends.

use std::sync::Arc;

use tokio::sync::mpsc;

use warden_policy::stream::{Release, StreamGuard};
use warden_policy::{Bundle, Decision, Stage, Subject};

/// Reads the answer out of a growing planner step.
#[derive(Default)]
pub struct FinalTap {
    raw: String,
    /// Byte offset in `raw` where the answer string starts, once known.
    start: Option<usize>,
    /// Not a final step (a tool call): nothing to stream.
    off: bool,
    /// Answer characters already decoded.
    decoded: usize,
}

impl FinalTap {
    /// Adds model output; returns newly decoded answer text.
    pub fn push(&mut self, chunk: &str) -> String {
        self.raw.push_str(chunk);
        if self.off {
            return String::new();
        }
        if self.start.is_none() {
            match prefix_end(&self.raw) {
                Prefix::Final(at) => self.start = Some(at),
                Prefix::Other => {
                    self.off = true;
                    return String::new();
                }
                Prefix::Undecided => return String::new(),
            }
        }
        let start = self.start.unwrap_or_default();
        let (text, _) = decode_partial(&self.raw[start..]);
        let chars: Vec<char> = text.chars().collect();
        let new: String = chars[self.decoded.min(chars.len())..].iter().collect();
        self.decoded = chars.len();
        new
    }

    pub fn streaming(&self) -> bool {
        self.start.is_some()
    }
}

enum Prefix {
    Final(usize),
    Other,
    Undecided,
}

/// `{ "final" : "` with any JSON whitespace; the offset after the quote.
fn prefix_end(s: &str) -> Prefix {
    let mut rest = s.trim_start();
    let mut used = s.len() - rest.len();
    for token in ["{", "\"final\"", ":", "\""] {
        let trimmed = rest.trim_start();
        used += rest.len() - trimmed.len();
        rest = trimmed;
        if rest.len() < token.len() {
            return if token.starts_with(rest) {
                Prefix::Undecided
            } else {
                Prefix::Other
            };
        }
        if !rest.starts_with(token) {
            return Prefix::Other;
        }
        rest = &rest[token.len()..];
        used += token.len();
    }
    Prefix::Final(used)
}

/// Decodes a JSON string body up to its end or the last complete escape;
/// returns the text and whether the closing quote was seen.
fn decode_partial(body: &str) -> (String, bool) {
    let mut out = String::new();
    let mut chars = body.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return (out, true),
            '\\' => {
                let Some((_, e)) = chars.next() else { break };
                match e {
                    'n' => out.push('\n'),
                    't' => out.push('\t'),
                    'r' => out.push('\r'),
                    'b' | 'f' => {}
                    'u' => {
                        let hex = body.get(i + 2..i + 6);
                        match hex
                            .and_then(|h| u32::from_str_radix(h, 16).ok())
                            .and_then(char::from_u32)
                        {
                            Some(ch) => {
                                out.push(ch);
                                for _ in 0..4 {
                                    chars.next();
                                }
                            }
                            // Incomplete (or a surrogate half): wait.
                            None => break,
                        }
                    }
                    other => out.push(other),
                }
            }
            c => out.push(c),
        }
    }
    (out, false)
}

/// The two guards and where released text goes.
pub struct AnswerStream {
    tap: FinalTap,
    llm: StreamGuard,
    out: StreamGuard,
    tx: mpsc::UnboundedSender<String>,
    /// A guard stopped the stream; the run's own checks decide the rest.
    stopped: bool,
}

impl AnswerStream {
    pub fn new(bundle: Arc<Bundle>, subject: Subject, tx: mpsc::UnboundedSender<String>) -> Self {
        Self {
            tap: FinalTap::default(),
            llm: StreamGuard::new(bundle.clone(), Stage::LlmOutput, subject.clone(), 64),
            out: StreamGuard::new(bundle, Stage::Output, subject, 64),
            tx,
            stopped: false,
        }
    }

    /// Model output as it arrives.
    pub fn push(&mut self, chunk: &str) {
        let text = self.tap.push(chunk);
        if text.is_empty() || self.stopped {
            return;
        }
        let Release::Text(t) = self.llm.push(&text) else {
            self.stopped = true;
            return;
        };
        if t.is_empty() {
            return;
        }
        match self.out.push(&t) {
            Release::Text(t) if !t.is_empty() => {
                let _ = self.tx.send(t);
            }
            Release::Text(_) => {}
            Release::Stopped(_) => self.stopped = true,
        }
    }

    pub fn streaming(&self) -> bool {
        self.tap.streaming() && !self.stopped
    }

    /// The decoded answer text (what the guards saw).
    pub fn llm_text(&self) -> &str {
        self.llm.text()
    }

    pub fn out_text(&self) -> &str {
        self.out.text()
    }

    /// Releases the rest once the run has the final decisions on the
    /// answer: `llm` on the decoded answer at `llm_output`, `out` on what
    /// the first guard released at `output`.
    pub fn finish_llm(&mut self, llm: &Decision) {
        if self.stopped {
            return;
        }
        match self.llm.finish(llm) {
            Release::Text(t) => {
                if !t.is_empty() {
                    if let Release::Text(t) = self.out.push(&t) {
                        if !t.is_empty() {
                            let _ = self.tx.send(t);
                        }
                    } else {
                        self.stopped = true;
                    }
                }
            }
            Release::Stopped(_) => self.stopped = true,
        }
    }

    pub fn finish_out(&mut self, out: &Decision) {
        if self.stopped {
            return;
        }
        match self.out.finish(out) {
            Release::Text(t) if !t.is_empty() => {
                let _ = self.tx.send(t);
            }
            Release::Text(_) => {}
            Release::Stopped(_) => self.stopped = true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tap_all(chunks: &[&str]) -> (String, bool) {
        let mut t = FinalTap::default();
        let mut out = String::new();
        for c in chunks {
            out.push_str(&t.push(c));
        }
        (out, t.streaming())
    }

    #[test]
    fn the_answer_is_read_out_of_a_growing_final_step() {
        let step = r#"{ "final" : "Line one\nsays \"hi\" \u00e9t\u00e9." }"#;
        let chunks: Vec<String> = step.chars().map(String::from).collect();
        let refs: Vec<&str> = chunks.iter().map(String::as_str).collect();
        assert_eq!(
            tap_all(&refs),
            ("Line one\nsays \"hi\" été.".to_owned(), true)
        );
    }

    #[test]
    fn tool_calls_are_not_streamed() {
        let (text, streaming) = tap_all(&[r#"{"to"#, r#"ol": "x", "arguments": {}}"#]);
        assert!(text.is_empty() && !streaming);
    }
}
