//! Rewrites redacted spans. Overlapping spans from several rules merge into
//! one region (redactions compose); the region takes the style that leaves
//! least of the value among its spans (replace, then hash, then mask).

use sha2::{Digest, Sha256};

use super::detectors::Span;
use super::spec::{RedactSpec, RedactStyle};

pub fn apply(text: &str, spans: &[(&Span, &RedactSpec)]) -> String {
    let mut spans: Vec<&(&Span, &RedactSpec)> = spans
        .iter()
        .filter(|(s, _)| s.start < s.end && s.end <= text.len())
        .collect();
    spans.sort_by(|a, b| a.0.start.cmp(&b.0.start).then(b.0.end.cmp(&a.0.end)));
    let mut out = String::with_capacity(text.len());
    let mut cursor = 0;
    let mut i = 0;
    while i < spans.len() {
        let (first, _) = *spans[i];
        let start = first.start.max(cursor);
        let mut end = first.end;
        let mut strongest = *spans[i];
        i += 1;
        while i < spans.len() && spans[i].0.start < end {
            end = end.max(spans[i].0.end);
            if strength(spans[i].1) > strength(strongest.1) {
                strongest = *spans[i];
            }
            i += 1;
        }
        if start >= end {
            continue;
        }
        out.push_str(&text[cursor..start]);
        out.push_str(&rewrite(&text[start..end], &strongest.0.kind, strongest.1));
        cursor = end;
    }
    out.push_str(&text[cursor..]);
    out
}

/// How much of the value a style leaves: a merged region takes the style
/// that leaves least (replace, then hash, then mask).
fn strength(spec: &RedactSpec) -> u8 {
    match spec.style {
        RedactStyle::Mask => 0,
        RedactStyle::Hash => 1,
        RedactStyle::Replace => 2,
    }
}

fn rewrite(value: &str, kind: &str, spec: &RedactSpec) -> String {
    match spec.style {
        RedactStyle::Replace => spec
            .with
            .as_deref()
            .unwrap_or("[REDACTED:{type}]")
            .replace("{type}", kind),
        RedactStyle::Hash => {
            let digest = Sha256::digest(value.as_bytes());
            format!("[sha256:{}]", &hex::encode(digest)[..12])
        }
        RedactStyle::Mask => {
            let visible = value.chars().filter(|c| c.is_alphanumeric()).count();
            let mut hide = visible.saturating_sub(spec.keep_last);
            value
                .chars()
                .map(|c| {
                    if c.is_alphanumeric() && hide > 0 {
                        hide -= 1;
                        '*'
                    } else {
                        c
                    }
                })
                .collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(style: RedactStyle, keep_last: usize) -> RedactSpec {
        RedactSpec {
            style,
            with: None,
            keep_last,
        }
    }

    #[test]
    fn overlapping_redactions_compose_into_one_region() {
        let text = "call +1 555 123 4567 now";
        let a = Span::new(5, 20, "phone");
        let b = Span::new(8, 11, "regex");
        let r = spec(RedactStyle::Replace, 0);
        assert_eq!(
            apply(text, &[(&b, &r), (&a, &r)]),
            "call [REDACTED:phone] now"
        );
    }

    #[test]
    fn a_merged_region_takes_the_strictest_style() {
        let text = "4111 1111 1111 1111-AbC9xQ7pR";
        let card = Span::new(0, 19, "credit_card");
        let token = Span::new(15, text.len(), "high_entropy");
        let out = apply(
            text,
            &[
                (&card, &spec(RedactStyle::Mask, 4)),
                (&token, &spec(RedactStyle::Replace, 0)),
            ],
        );
        assert_eq!(out, "[REDACTED:high_entropy]");
    }

    #[test]
    fn mask_keeps_separators_and_the_last_digits() {
        let text = "4111 1111 1111 1234";
        let s = Span::new(0, text.len(), "credit_card");
        assert_eq!(
            apply(text, &[(&s, &spec(RedactStyle::Mask, 4))]),
            "**** **** **** 1234"
        );
    }

    #[test]
    fn hash_is_stable_and_hides_the_value() {
        let s = Span::new(0, 5, "x");
        let h = spec(RedactStyle::Hash, 0);
        let once = apply("alice", &[(&s, &h)]);
        assert_eq!(once, apply("alice", &[(&s, &h)]));
        assert!(once.starts_with("[sha256:") && !once.contains("alice"));
    }
}
