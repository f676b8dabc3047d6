//! Block Kit messages Warden posts. Every piece of text that came from a
//! model, a tool or a user is escaped ([`crate::text::escape`]) and cut to
//! Slack's section limit; only Warden's own words carry markup.

use serde_json::{Value, json};

use crate::interactions::button_value;
use crate::text::{SECTION_LIMIT, escape};

/// What an approver needs to decide on a paused call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalRequest<'a> {
    pub run_id: &'a str,
    /// Which of the run's pauses this asks about (its step count).
    pub pause: u32,
    pub agent: &'a str,
    pub tool: &'a str,
    /// The call's arguments as the policies let them through (redacted).
    pub arguments: &'a str,
    /// The rule that asked for approval, and its message.
    pub rule: &'a str,
}

/// The approval message: who wants to call what, why it needs a decision,
/// and Approve / Reject buttons whose values name the run.
pub fn approval(r: &ApprovalRequest<'_>) -> Value {
    let header = cut(
        &format!(
            "*Approval needed* for agent `{}`: tool `{}`",
            inline_code(r.agent),
            inline_code(r.tool)
        ),
        SECTION_LIMIT,
    );
    let arguments = cut(&guard_backticks(&escape(r.arguments)), SECTION_LIMIT - 8);
    json!({
        "text": format!("Approval needed: {} wants to call {}", escape(r.agent), escape(r.tool)),
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": header}},
            {"type": "section", "text": {"type": "mrkdwn", "text": format!("```{arguments}```")}},
            {"type": "context", "elements": [
                {"type": "mrkdwn", "text": cut(&format!("Rule: {}", escape(r.rule)), SECTION_LIMIT)}
            ]},
            {"type": "actions", "block_id": "warden_approval", "elements": [
                {"type": "button", "action_id": "warden_approve", "style": "primary",
                 "text": {"type": "plain_text", "text": "Approve"},
                 "value": button_value(true, r.run_id, r.pause)},
                {"type": "button", "action_id": "warden_reject", "style": "danger",
                 "text": {"type": "plain_text", "text": "Reject"},
                 "value": button_value(false, r.run_id, r.pause)}
            ]}
        ]
    })
}

/// Escaped, on one line, and unable to close the inline code span.
fn inline_code(text: &str) -> String {
    guard_backticks(&escape(text).replace(['\n', '\r'], " "))
}

/// Backticks cannot be escaped inside code: a zero-width space after each
/// one keeps untrusted text from closing the span or fence it sits in.
fn guard_backticks(text: &str) -> String {
    text.replace('`', "`\u{200b}")
}

/// At most `limit` characters. When cut, it says how much is not shown (an
/// approver must know the arguments go on), and never ends inside an
/// escape.
fn cut(text: &str, limit: usize) -> String {
    let total = text.chars().count();
    if total <= limit {
        return text.to_owned();
    }
    // The note's length depends on the count it reports; 40 covers it.
    let head = crate::text::prefix(text, limit.saturating_sub(40));
    let hidden = total - head.chars().count();
    format!("{head}… ({hidden} more characters not shown)")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::interactions;

    fn request<'a>(arguments: &'a str, agent: &'a str) -> ApprovalRequest<'a> {
        ApprovalRequest {
            run_id: "run_1",
            pause: 4,
            agent,
            tool: "warden.document/delete_document",
            arguments,
            rule: "tool-safety/destructive: deleting needs a person",
        }
    }

    #[test]
    fn buttons_carry_the_run_and_parse_back() {
        let msg = approval(&request(r#"{"id": "doc-7"}"#, "document-assistant"));
        let buttons = msg["blocks"][3]["elements"].as_array().unwrap();
        for (button, approve) in buttons.iter().zip([true, false]) {
            let payload = json!({
                "type": "block_actions", "team": {"id": "T1"}, "user": {"id": "U1"},
                "actions": [{"value": button["value"]}]
            });
            let body = form_urlencoded::Serializer::new(String::new())
                .append_pair("payload", &payload.to_string())
                .finish();
            let click = interactions::parse(body.as_bytes()).unwrap().unwrap();
            assert_eq!(
                (click.approve, click.run_id.as_str(), click.pause),
                (approve, "run_1", 4)
            );
        }
    }

    #[test]
    fn untrusted_text_cannot_ping_link_or_break_out() {
        let msg = approval(&request(
            "<!channel> ``` *bold* <https://evil.example|bank>",
            "<!here>",
        ));
        let all = msg.to_string();
        for bad in ["<!channel>", "<!here>", "<https://evil"] {
            assert!(!all.contains(bad), "{bad} in {all}");
        }
        let code = msg["blocks"][1]["text"]["text"].as_str().unwrap();
        assert_eq!(code.matches("```").count(), 2, "{code}");
        let header = approval(&request("{}", "a`\n*fake line*"));
        let header = header["blocks"][0]["text"]["text"].as_str().unwrap();
        assert!(
            !header.contains('\n') && !header.contains("a`*"),
            "{header}"
        );
    }

    #[test]
    fn huge_arguments_are_cut_within_the_section_limit() {
        let big = "x".repeat(10_000);
        let msg = approval(&request(&big, "a"));
        let code = msg["blocks"][1]["text"]["text"].as_str().unwrap();
        assert!(code.chars().count() <= SECTION_LIMIT, "{}", code.len());
        assert!(code.ends_with("more characters not shown)```"), "{code}");
        let shown = code.matches('x').count();
        assert!(shown > SECTION_LIMIT - 100, "only {shown} shown");
        assert!(
            code.contains(&format!("({} more", 10_000 - shown)),
            "{code}"
        );
        // A long name cannot push the header past the limit either.
        let long = "n".repeat(5000);
        let msg = approval(&request("{}", &long));
        let header = msg["blocks"][0]["text"]["text"].as_str().unwrap();
        assert!(header.chars().count() <= SECTION_LIMIT);
    }
}
