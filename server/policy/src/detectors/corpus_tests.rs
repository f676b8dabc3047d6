//! Per-detector precision and recall on `testdata/corpus.yaml`. The table
//! is printed (`cargo test -p warden-policy corpus -- --nocapture`) and
//! copied into docs/governance.md; every sample must be classified correctly.
// Printing the table is this test's output for the docs.
#![allow(clippy::print_stdout)]

use std::collections::BTreeMap;

use serde::Deserialize;

use super::{PiiType, SecretType, SecretsDetector, Span};

#[derive(Deserialize)]
struct Samples {
    positive: Vec<String>,
    negative: Vec<String>,
}

fn find(kind: &str, text: &str) -> Vec<Span> {
    let mut out = Vec::new();
    if let Ok(t) = serde_yaml::from_str::<PiiType>(kind) {
        t.find(text, &mut out);
    } else if let Ok(t) = serde_yaml::from_str::<SecretType>(kind) {
        out = SecretsDetector::new(vec![t]).find(text);
    } else {
        panic!("corpus names unknown type {kind}");
    }
    out.retain(|s| s.kind == kind);
    out
}

#[test]
fn corpus_precision_and_recall() {
    let corpus: BTreeMap<String, Samples> =
        serde_yaml::from_str(include_str!("testdata/corpus.yaml")).unwrap();
    let mut wrong = Vec::new();
    println!("| type | samples | precision | recall |");
    println!("|---|---|---|---|");
    for (kind, samples) in &corpus {
        let (mut tp, mut fp, mut fn_) = (0u32, 0u32, 0u32);
        for text in &samples.positive {
            if find(kind, text).is_empty() {
                fn_ += 1;
                wrong.push(format!("{kind}: missed {text:?}"));
            } else {
                tp += 1;
            }
        }
        for text in &samples.negative {
            if !find(kind, text).is_empty() {
                fp += 1;
                wrong.push(format!("{kind}: false positive {text:?}"));
            }
        }
        let precision = f64::from(tp) / f64::from((tp + fp).max(1));
        let recall = f64::from(tp) / f64::from((tp + fn_).max(1));
        println!(
            "| {kind} | {}+ / {}- | {precision:.2} | {recall:.2} |",
            samples.positive.len(),
            samples.negative.len()
        );
    }
    assert!(wrong.is_empty(), "misclassified:\n{}", wrong.join("\n"));
}
