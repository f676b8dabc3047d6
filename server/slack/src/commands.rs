//! The `/warden` slash command: Slack POSTs a form (`team_id`, `user_id`,
//! `channel_id`, `text`, `response_url`, ...). `text` is `help`,
//! `status <run>`, or `[agent] message`. Slack's certificate probe posts
//! `ssl_check=1` to the same URL and only needs a 200.

/// Why a slash-command body is refused (answered 400, nothing stored).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    #[error("the form has no `{0}`")]
    Missing(&'static str),
    #[error("the form has `{0}` more than once")]
    Duplicated(&'static str),
}

/// What the user asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Help,
    Status {
        run_id: String,
    },
    /// A message for an agent: the named one when the first word names a
    /// known agent, else the channel's default.
    Ask {
        agent: Option<String>,
        message: String,
    },
}

/// One slash-command invocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlashCommand {
    pub team_id: String,
    pub channel_id: String,
    pub user_id: String,
    /// Where the delayed, in-channel answer is posted.
    pub response_url: String,
    pub request: Request,
}

/// A parsed body: Slack's certificate probe, or a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Posted {
    SslCheck,
    Command(SlashCommand),
}

pub fn parse(body: &[u8], agents: &[&str]) -> Result<Posted, CommandError> {
    let fields: Vec<(String, String)> = form_urlencoded::parse(body).into_owned().collect();
    let one = |name: &'static str| -> Result<Option<&str>, CommandError> {
        let mut values = fields
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str());
        let first = values.next();
        if values.next().is_some() {
            return Err(CommandError::Duplicated(name));
        }
        Ok(first)
    };
    if one("ssl_check")? == Some("1") {
        return Ok(Posted::SslCheck);
    }
    let required = |name: &'static str| {
        one(name)?
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
            .ok_or(CommandError::Missing(name))
    };
    let text = one("text")?.unwrap_or("").trim();
    let mut words = text.split_whitespace();
    let request = match (words.next(), words.next(), words.next()) {
        (None, ..) | (Some("help"), None, _) => Request::Help,
        (Some("status"), Some(run), None) if crate::is_run_id(run) => Request::Status {
            run_id: run.to_owned(),
        },
        (Some(first), Some(_), _) if agents.contains(&first) => Request::Ask {
            agent: Some(first.to_owned()),
            message: text[first.len()..].trim().to_owned(),
        },
        _ => Request::Ask {
            agent: None,
            message: text.to_owned(),
        },
    };
    Ok(Posted::Command(SlashCommand {
        team_id: required("team_id")?,
        channel_id: required("channel_id")?,
        user_id: required("user_id")?,
        response_url: required("response_url")?,
        request,
    }))
}

/// What `/warden help` answers.
pub fn help(agents: &[&str]) -> String {
    format!(
        "`/warden message` asks the default agent; `/warden AGENT message` asks one of: {}.\n\
         `/warden status RUN` shows a run. Mention the bot in a channel or message it directly to talk in a thread.",
        agents.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const AGENTS: &[&str] = &["document-assistant", "support-bot"];

    fn form(text: &str) -> Vec<u8> {
        form_urlencoded::Serializer::new(String::new())
            .append_pair("team_id", "T1")
            .append_pair("channel_id", "C1")
            .append_pair("user_id", "U1")
            .append_pair("command", "/warden")
            .append_pair("text", text)
            .append_pair("response_url", "http://127.0.0.1:9/r")
            .finish()
            .into_bytes()
    }

    fn request(text: &str) -> Request {
        match parse(&form(text), AGENTS).unwrap() {
            Posted::Command(c) => c.request,
            Posted::SslCheck => panic!("not a command"),
        }
    }

    #[test]
    fn the_text_says_what_is_asked() {
        let ask = |agent: Option<&str>, message: &str| Request::Ask {
            agent: agent.map(str::to_owned),
            message: message.into(),
        };
        let cases = [
            ("", Request::Help),
            ("  help ", Request::Help),
            (
                "status run_42",
                Request::Status {
                    run_id: "run_42".into(),
                },
            ),
            (
                "support-bot how do I reset my password?",
                ask(Some("support-bot"), "how do I reset my password?"),
            ),
            ("summarise the Q3 plan", ask(None, "summarise the Q3 plan")),
            // A known agent name alone is a message, not an empty question.
            ("support-bot", ask(None, "support-bot")),
            (
                "help me with the invoice",
                ask(None, "help me with the invoice"),
            ),
            ("status of the order", ask(None, "status of the order")),
            // Not a run id: a question, never echoed back as an id.
            ("status <!channel>", ask(None, "status <!channel>")),
        ];
        for (text, want) in cases {
            assert_eq!(request(text), want, "{text:?}");
        }
    }

    #[test]
    fn ssl_checks_and_malformed_forms() {
        assert_eq!(parse(b"ssl_check=1&token=x", AGENTS), Ok(Posted::SslCheck));
        let cases: [(&[u8], CommandError); 4] = [
            (b"", CommandError::Missing("team_id")),
            (
                b"team_id=T1&channel_id=C1&user_id=U1&text=hi",
                CommandError::Missing("response_url"),
            ),
            (
                b"team_id=T1&team_id=T2&channel_id=C1&user_id=U1&response_url=x",
                CommandError::Duplicated("team_id"),
            ),
            (
                b"ssl_check=1&ssl_check=1",
                CommandError::Duplicated("ssl_check"),
            ),
        ];
        for (body, want) in cases {
            assert_eq!(
                parse(body, AGENTS),
                Err(want),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        assert!(help(AGENTS).contains("support-bot"));
    }
}
