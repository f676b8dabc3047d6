//! Engine and loader behaviour, as data-driven cases.

use std::collections::HashMap;

use proptest::prelude::*;

use super::bundle::{Bundle, BundleError, DEFAULT_POLICIES};
use super::engine::{EvalInput, Subject};
use super::spec::{Action, Mode, Stage};

fn bundle(yaml: &str) -> Bundle {
    Bundle::from_sources("test", &[("p.yaml", yaml)]).unwrap_or_else(|e| panic!("{e}"))
}

fn eval(b: &Bundle, stage: Stage, text: &str, subject: &Subject) -> super::Decision {
    let input = EvalInput {
        stage,
        text,
        subject,
    };
    b.evaluate(input, &HashMap::new(), false).decision
}

const LAYERED: &str = r#"
policies:
  - id: strict
    version: 2
    rules:
      - id: no-secrets
        stages: [output]
        match: { keywords: { words: [launch code] } }
        action: block
        message: "That stays secret."
      - id: cards
        stages: [output]
        match: { pii: { types: [credit_card] } }
        action: redact
        redact: { style: mask, keep_last: 4 }
      - id: emails
        stages: [output]
        match: { pii: { types: [email] } }
        action: redact
        redact: { style: replace, with: "<{type}>" }
  - id: watch
    version: 1
    mode: monitor
    rules:
      - id: would-block-bananas
        stages: [output]
        match: { keywords: { words: [banana] } }
        action: block
        message: "No bananas."
  - id: support-only
    version: 1
    scope: { agents: [support*], channels: [slack] }
    rules:
      - id: approval
        stages: [output]
        match: { keywords: { words: [refund] } }
        action: require_approval
        message: "Refunds need a human."
"#;

#[test]
fn block_beats_redact_and_redactions_compose() {
    let b = bundle(LAYERED);
    let s = Subject::default();
    let d = eval(
        &b,
        Stage::Output,
        "mail a@example.com card 4111 1111 1111 1111",
        &s,
    );
    assert_eq!(d.decision, Action::Redact);
    assert_eq!(
        d.redacted.as_deref(),
        Some("mail <email> card **** **** **** 1111")
    );
    let d = eval(
        &b,
        Stage::Output,
        "card 4111 1111 1111 1111 and the launch code",
        &s,
    );
    assert_eq!(d.decision, Action::Block);
    assert_eq!(d.message.as_deref(), Some("That stays secret."));
    assert_eq!(
        d.deciding().map(|m| m.qualified()).as_deref(),
        Some("strict/no-secrets")
    );
}

#[test]
fn monitor_mode_records_what_would_happen_without_acting() {
    let b = bundle(LAYERED);
    let d = eval(&b, Stage::Output, "a banana", &Subject::default());
    assert_eq!(d.decision, Action::Allow);
    assert_eq!(d.would_decision, Action::Block);
    assert_eq!(d.mode(), Mode::Monitor);
    assert!(d.message.is_none());
    assert!(!d.matches[0].enforced);
}

#[test]
fn scope_limits_policies_to_their_subjects() {
    let b = bundle(LAYERED);
    let cases = [
        (Some("support-bot"), Some("slack"), Action::RequireApproval),
        (Some("support-bot"), Some("email"), Action::Allow),
        (Some("coder"), Some("slack"), Action::Allow),
        (None, Some("slack"), Action::Allow),
    ];
    for (agent, channel, expected) in cases {
        let s = Subject {
            agent: agent.map(Into::into),
            channel: channel.map(Into::into),
            ..Subject::default()
        };
        let d = eval(&b, Stage::Output, "a refund please", &s);
        assert_eq!(d.decision, expected, "{agent:?} {channel:?}");
    }
}

#[test]
fn stages_select_rules() {
    let b = bundle(LAYERED);
    let d = eval(&b, Stage::Input, "the launch code", &Subject::default());
    assert_eq!(d.decision, Action::Allow);
    assert!(d.matches.is_empty());
}

#[test]
fn judge_rules_wait_for_answers_and_not_inverts() {
    let b = bundle(
        r#"
policies:
  - id: j
    version: 1
    rules:
      - id: rude
        stages: [output]
        match:
          all:
            - keywords: { words: [you] }
            - llm_judge: { question: "Is this rude?", on_error: open }
        action: flag
      - id: not-english
        stages: [output]
        match: { not: { language: { allow: [eng] } } }
        action: flag
"#,
    );
    let s = Subject::default();
    let text = "you are a wonderful colleague and I thank you for the help";
    let input = EvalInput {
        stage: Stage::Output,
        text,
        subject: &s,
    };
    let first = b.evaluate(input, &HashMap::new(), false);
    assert_eq!(first.pending.len(), 1);
    assert_eq!(first.pending[0].0, "j/rude");
    // `not` of "language outside the allow-list" matches English text.
    assert_eq!(first.decision.matches.len(), 1);
    let mut answers = HashMap::new();
    answers.insert(first.pending[0].1.key(text), true);
    let second = b.evaluate(input, &answers, false);
    assert!(second.pending.is_empty());
    assert_eq!(second.decision.matches.len(), 2);
    // Without the keyword the judge is never asked.
    let input = EvalInput {
        stage: Stage::Output,
        text: "thanks",
        subject: &s,
    };
    assert!(b.evaluate(input, &HashMap::new(), false).pending.is_empty());
}

/// (yaml, expected line, expected fragment of the message)
const INVALID: &[(&str, usize, &str)] = &[
    (
        "policies: [{id: Bad, version: 1, rules: []}]",
        1,
        "invalid id \"Bad\"",
    ),
    (
        "policies:\n  - id: p\n    version: 1\n    rules:\n      - id: r\n        stages: []\n        action: flag\n",
        5,
        "`stages` must name at least one stage",
    ),
    (
        "policies:\n  - id: p\n    version: 1\n    rules:\n      - id: r\n        stages: [output]\n        action: block\n",
        5,
        "needs a `message`",
    ),
    (
        "policies:\n  - id: p\n    version: 1\n    rules:\n      - id: r\n        stages: [outptu]\n        action: flag\n",
        6,
        "unknown variant `outptu`",
    ),
    (
        "policies:\n  - id: p\n    version: 1\n    rules:\n      - id: r\n        stages: [output]\n        match: { pii: { types: [passport] } }\n        action: flag\n",
        7,
        "unknown variant `passport`",
    ),
    (
        "policies:\n  - id: p\n    version: 1\n    rules:\n      - id: r\n        stages: [output]\n        match: { regex: { pattern: \"a*\" } }\n        action: flag\n",
        7,
        "matches the empty string",
    ),
    (
        "policies:\n  - id: p\n    version: 1\n    rules:\n      - id: r\n        stages: [output]\n        match: { language: { allow: [english] } }\n        action: flag\n",
        7,
        "unknown code \"english\"",
    ),
    (
        "policies:\n  - id: p\n    version: 1\n    rules:\n      - id: r\n        stages: [tool_call]\n        match: { json_schema: { schema: { type: objekt } } }\n        action: block\n        message: m\n",
        7,
        "invalid JSON Schema",
    ),
    (
        "policies:\n  - id: p\n    version: 1\n    rules:\n      - id: r\n        stages: [output]\n        action: flag\n        redact: { style: mask }\n",
        5,
        "`redact` is only used with action redact",
    ),
    (
        "policies:\n  - id: p\n    version: 1\n    rules: [\n",
        5,
        "did not find expected",
    ),
];

#[test]
fn invalid_policies_are_reported_with_their_line() {
    for (yaml, line, fragment) in INVALID {
        match Bundle::from_sources("test", &[("p.yaml", yaml)]) {
            Err(BundleError::Invalid {
                line: l, message, ..
            }) => {
                assert!(message.contains(fragment), "{yaml}\n=> {message}");
                assert_eq!(l, *line, "{yaml}\n=> {message}");
            }
            other => panic!("{yaml}\n=> {other:?}"),
        }
    }
}

#[test]
fn duplicate_ids_are_refused() {
    let p = "policies:\n  - id: p\n    version: 1\n    rules: []\n";
    let err = Bundle::from_sources("t", &[("a.yaml", p), ("b.yaml", p)]).unwrap_err();
    assert!(
        err.to_string().contains("policy id p is used twice"),
        "{err}"
    );
}

#[test]
fn shipped_policies_pass_their_tests() {
    let b = Bundle::defaults().unwrap_or_else(|e| panic!("{e}"));
    assert!(b.tests.len() >= 15);
}

#[test]
fn a_bundle_whose_tests_fail_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("p.yaml"),
        "policies:\n  - id: p\n    version: 1\n    rules: []\ntests:\n  - name: t\n    stage: output\n    input: x\n    expect: { decision: block }\n",
    )
    .unwrap();
    match Bundle::load_dir(dir.path()) {
        Err(BundleError::TestsFailed(r)) => assert_eq!(r.failures.len(), 1),
        other => panic!("{other:?}"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// The loader returns an error, never panics, on arbitrary text.
    #[test]
    fn the_loader_never_panics_on_arbitrary_text(text in ".{0,400}") {
        let _ = Bundle::from_sources("fuzz", &[("f.yaml", &text)]);
    }

    /// Nor on valid files with bytes flipped, cut or duplicated.
    #[test]
    fn the_loader_never_panics_on_mutated_policies(
        file in 0..DEFAULT_POLICIES.len(),
        at in any::<prop::sample::Index>(),
        len in 0usize..40,
        byte in any::<u8>(),
        op in 0u8..3,
    ) {
        let original = DEFAULT_POLICIES[file].1.as_bytes();
        let i = at.index(original.len());
        let mut bytes = original.to_vec();
        match op {
            0 => bytes[i] = byte,
            1 => { bytes.drain(i..(i + len).min(bytes.len())); }
            _ => { let chunk = bytes[i..(i + len).min(bytes.len())].to_vec(); bytes.splice(i..i, chunk); }
        }
        let text = String::from_utf8_lossy(&bytes);
        if let Ok(b) = Bundle::from_sources("fuzz", &[("f.yaml", &text)]) {
            let _ = b.run_tests();
        }
    }
}

#[test]
fn alias_bombs_are_refused() {
    let bomb = "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\ne: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]\ng: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]\npolicies: [*g]\n";
    assert!(Bundle::from_sources("bomb", &[("b.yaml", bomb)]).is_err());
}
