//! Interactivity: what Slack POSTs when someone clicks a button. The body
//! is form-encoded with one field, `payload`, holding JSON. Warden's
//! approval buttons carry `approve:<run id>:<pause>` or
//! `reject:<run id>:<pause>` as their value, where the pause names which
//! of the run's requests the message showed (a click on an old message
//! must not decide a newer call the approver never saw); anything else is
//! refused before it reaches the approval path.

use serde::Deserialize;

/// Why an interaction body is refused (answered 400, nothing stored).
#[derive(Debug, thiserror::Error)]
pub enum InteractionError {
    #[error("the body has no `payload` field")]
    NoPayload,
    #[error("the body has more than one `payload` field")]
    DuplicatePayload,
    #[error("the payload is not a block_actions JSON object: {0}")]
    Json(#[from] serde_json::Error),
    #[error("the interaction has no actions")]
    NoAction,
    #[error("the action value {0:?} is not approve:<run>:<pause> or reject:<run>:<pause>")]
    Value(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
struct Payload {
    #[serde(rename = "type")]
    kind: String,
    team: Team,
    user: User,
    #[serde(default)]
    actions: Vec<Action>,
    #[serde(default)]
    response_url: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
struct Team {
    id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
struct User {
    id: String,
    #[serde(default)]
    username: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
struct Action {
    #[serde(default)]
    value: Option<String>,
}

/// A click on an approval button.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalClick {
    pub team_id: String,
    pub user_id: String,
    pub user_name: Option<String>,
    pub approve: bool,
    pub run_id: String,
    /// Which pause of the run the clicked message asked about.
    pub pause: u32,
    /// Where the decision is shown (replaces the buttons' message).
    pub response_url: Option<String>,
}

/// Parses an interaction body. Interactions other than `block_actions`
/// (view submissions, shortcuts) are `Ok(None)`: acknowledged, not acted on.
pub fn parse(body: &[u8]) -> Result<Option<ApprovalClick>, InteractionError> {
    let mut payloads = form_urlencoded::parse(body).filter(|(k, _)| k == "payload");
    let (_, payload) = payloads.next().ok_or(InteractionError::NoPayload)?;
    if payloads.next().is_some() {
        return Err(InteractionError::DuplicatePayload);
    }
    let p: Payload = serde_json::from_str(&payload)?;
    if p.kind != "block_actions" {
        return Ok(None);
    }
    let value = p
        .actions
        .first()
        .ok_or(InteractionError::NoAction)?
        .value
        .clone()
        .unwrap_or_default();
    let bad = || InteractionError::Value(value.clone());
    let (verb, rest) = value.split_once(':').ok_or_else(bad)?;
    let approve = match verb {
        "approve" => true,
        "reject" => false,
        _ => return Err(bad()),
    };
    let (run_id, pause) = rest.rsplit_once(':').ok_or_else(bad)?;
    if !crate::is_run_id(run_id) || pause.is_empty() || pause.len() > 9 {
        return Err(bad());
    }
    let pause: u32 = pause
        .chars()
        .all(|c| c.is_ascii_digit())
        .then(|| pause.parse().ok())
        .flatten()
        .ok_or_else(bad)?;
    Ok(Some(ApprovalClick {
        team_id: p.team.id,
        user_id: p.user.id,
        user_name: p.user.username,
        approve,
        run_id: run_id.to_owned(),
        pause,
        response_url: p.response_url,
    }))
}

/// The button value for a decision on pause `pause` of `run_id`.
pub fn button_value(approve: bool, run_id: &str, pause: u32) -> String {
    format!(
        "{}:{run_id}:{pause}",
        if approve { "approve" } else { "reject" }
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body(payload: &serde_json::Value) -> Vec<u8> {
        form_urlencoded::Serializer::new(String::new())
            .append_pair("payload", &payload.to_string())
            .finish()
            .into_bytes()
    }

    fn click(value: &str) -> serde_json::Value {
        json!({
            "type": "block_actions",
            "team": {"id": "T1"},
            "user": {"id": "U7", "username": "boss"},
            "response_url": "http://127.0.0.1:9/respond",
            "actions": [{"action_id": "decide", "value": value}]
        })
    }

    #[test]
    fn approval_buttons_round_trip() {
        for approve in [true, false] {
            let v = button_value(approve, "run_0b1c", 7);
            let got = parse(&body(&click(&v))).unwrap().unwrap();
            assert_eq!(
                got,
                ApprovalClick {
                    team_id: "T1".into(),
                    user_id: "U7".into(),
                    user_name: Some("boss".into()),
                    approve,
                    run_id: "run_0b1c".into(),
                    pause: 7,
                    response_url: Some("http://127.0.0.1:9/respond".into()),
                }
            );
        }
    }

    #[test]
    fn other_interactions_are_acknowledged_without_a_decision() {
        let mut p = click("approve:r1:3");
        p["type"] = json!("view_submission");
        assert_eq!(parse(&body(&p)).unwrap(), None);
    }

    #[test]
    fn malformed_interactions_are_refused() {
        let mut no_actions = click("approve:r1:3");
        no_actions["actions"] = json!([]);
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("empty body", Vec::new()),
            ("no payload field", b"foo=bar".to_vec()),
            (
                "payload twice",
                [body(&click("approve:r1:3")), b"&payload=%7B%7D".to_vec()].concat(),
            ),
            ("payload not JSON", b"payload=%7Bnope".to_vec()),
            (
                "payload without team",
                b"payload=%7B%22type%22%3A%22block_actions%22%7D".to_vec(),
            ),
            ("no actions", body(&no_actions)),
            ("unknown verb", body(&click("delete:r1:3"))),
            ("no run id", body(&click("approve::3"))),
            ("hostile run id", body(&click("approve:../../etc:3"))),
            ("no pause", body(&click("approve:r1"))),
            (
                "a pause that is not a number",
                body(&click("approve:r1:-3")),
            ),
            ("an oversized pause", body(&click("approve:r1:99999999999"))),
            ("no separator", body(&click("approve"))),
        ];
        for (name, b) in cases {
            assert!(parse(&b).is_err(), "{name}");
        }
    }
}
