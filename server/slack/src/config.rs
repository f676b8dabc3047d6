//! `[[channels.slack]]`: one Slack app Warden answers as. Secrets are
//! named, not written: the signing secret and bot token come from the
//! environment variables the config names.

use serde::Deserialize;

/// Slack's Web API.
pub const DEFAULT_API_BASE_URL: &str = "https://slack.com/api";
/// Where Slack's `response_url`s point.
pub const DEFAULT_RESPONSE_URL_PREFIX: &str = "https://hooks.slack.com/";

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SlackConfig {
    /// Names the connection in the inbox, outbox and logs.
    pub name: String,
    /// The agent that answers mentions and direct messages.
    pub agent: String,
    /// Environment variable holding the app's signing secret.
    pub signing_secret_env: String,
    /// Environment variable holding the bot token (`xoxb-…`).
    pub bot_token_env: String,
    /// Workspaces (team ids) whose events are answered; at least one.
    pub allowed_teams: Vec<String>,
    /// Channels the bot answers in; empty: every channel it is in.
    #[serde(default)]
    pub allowed_channels: Vec<String>,
    /// Slack user ids allowed to approve or reject paused tool calls.
    #[serde(default)]
    pub approvers: Vec<String>,
    /// Where approval requests go; absent: the thread that asked.
    #[serde(default)]
    pub approval_channel: Option<String>,
    /// The bot's own user id; asked from `auth.test` at start when absent.
    #[serde(default)]
    pub bot_user_id: Option<String>,
    #[serde(default = "default_api_base_url")]
    pub api_base_url: String,
    /// `response_url`s outside this prefix are never posted to.
    #[serde(default = "default_response_url_prefix")]
    pub response_url_prefix: String,
    /// Seconds one Web API or `response_url` request may take; a slower
    /// (or hung) Slack costs a retry, not the sender.
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
}

fn default_timeout_secs() -> u64 {
    10
}

fn default_api_base_url() -> String {
    DEFAULT_API_BASE_URL.to_owned()
}

fn default_response_url_prefix() -> String {
    DEFAULT_RESPONSE_URL_PREFIX.to_owned()
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidSlack {
    #[error("[[channels.slack]] names must be 1-64 letters, digits, '-' or '_' (got {0:?})")]
    Name(String),
    #[error("two [[channels.slack]] are named {0:?}")]
    DuplicateName(String),
    #[error("[[channels.slack]] {0:?}: allowed_teams must name at least one workspace")]
    NoTeams(String),
    #[error(
        "[[channels.slack]] {name:?}: {field} must be an http(s) URL with a path (got {value:?})"
    )]
    Url {
        name: String,
        field: &'static str,
        value: String,
    },
    #[error("[[channels.slack]] {name:?}: timeout_secs must be 1..=120")]
    Timeout { name: String },
    #[error("[[channels.slack]] {name:?}: environment variable {var} is not set")]
    MissingEnv { name: String, var: String },
    #[error("[[channels.slack]] {name:?}: {id:?} in {field} is not a Slack id")]
    BadId {
        name: String,
        field: &'static str,
        id: String,
    },
}

/// Slack ids are upper-case letters and digits (`T0123ABC`, `U04…`).
fn is_slack_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 32
        && s.chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
}

impl SlackConfig {
    /// Checks every connection (names unique, ids well-formed, URLs).
    pub fn validate_all(all: &[SlackConfig]) -> Result<(), InvalidSlack> {
        let mut seen = std::collections::HashSet::new();
        for c in all {
            if !crate::is_run_id(&c.name) {
                return Err(InvalidSlack::Name(c.name.clone()));
            }
            if !seen.insert(c.name.as_str()) {
                return Err(InvalidSlack::DuplicateName(c.name.clone()));
            }
            if c.allowed_teams.is_empty() {
                return Err(InvalidSlack::NoTeams(c.name.clone()));
            }
            if !(1..=120).contains(&c.timeout_secs) {
                return Err(InvalidSlack::Timeout {
                    name: c.name.clone(),
                });
            }
            let ids = [
                ("allowed_teams", &c.allowed_teams),
                ("allowed_channels", &c.allowed_channels),
                ("approvers", &c.approvers),
            ];
            let single = [
                (
                    "approval_channel",
                    c.approval_channel.iter().collect::<Vec<_>>(),
                ),
                ("bot_user_id", c.bot_user_id.iter().collect()),
            ];
            let all_ids = ids
                .iter()
                .flat_map(|(f, v)| v.iter().map(move |id| (*f, id)))
                .chain(
                    single
                        .iter()
                        .flat_map(|(f, v)| v.iter().map(move |id| (*f, *id))),
                );
            for (field, id) in all_ids {
                if !is_slack_id(id) {
                    return Err(InvalidSlack::BadId {
                        name: c.name.clone(),
                        field,
                        id: id.clone(),
                    });
                }
            }
            for (field, value) in [
                ("api_base_url", &c.api_base_url),
                ("response_url_prefix", &c.response_url_prefix),
            ] {
                // A prefix without its closing `/` would let
                // `https://hooks.slack.com.example.net/` through.
                let host_closed =
                    field != "response_url_prefix" || value.splitn(4, '/').nth(3).is_some();
                if !(value.starts_with("https://") || value.starts_with("http://")) || !host_closed
                {
                    return Err(InvalidSlack::Url {
                        name: c.name.clone(),
                        field,
                        value: value.clone(),
                    });
                }
            }
        }
        Ok(())
    }

    /// Reads the two secrets from the environment.
    pub fn secrets(
        &self,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<(String, String), InvalidSlack> {
        let read = |var: &str| {
            env(var)
                .filter(|v| !v.is_empty())
                .ok_or_else(|| InvalidSlack::MissingEnv {
                    name: self.name.clone(),
                    var: var.to_owned(),
                })
        };
        Ok((read(&self.signing_secret_env)?, read(&self.bot_token_env)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(toml_text: &str) -> SlackConfig {
        toml::from_str(toml_text).unwrap()
    }

    const MINIMAL: &str = r#"
        name = "main"
        agent = "document-assistant"
        signing_secret_env = "SLACK_SIGNING_SECRET"
        bot_token_env = "SLACK_BOT_TOKEN"
        allowed_teams = ["T0001"]
    "#;

    #[test]
    fn a_minimal_connection_gets_slacks_urls() {
        let c = config(MINIMAL);
        assert_eq!(c.api_base_url, DEFAULT_API_BASE_URL);
        assert_eq!(c.response_url_prefix, DEFAULT_RESPONSE_URL_PREFIX);
        assert_eq!(c.timeout_secs, 10);
        assert!(SlackConfig::validate_all(&[c]).is_ok());
    }

    #[test]
    fn bad_connections_are_refused_with_what_is_wrong() {
        let base = config(MINIMAL);
        let cases: Vec<(SlackConfig, &str)> = vec![
            (
                SlackConfig {
                    name: "a b".into(),
                    ..base.clone()
                },
                "names must be",
            ),
            (
                SlackConfig {
                    allowed_teams: vec![],
                    ..base.clone()
                },
                "at least one workspace",
            ),
            (
                SlackConfig {
                    approvers: vec!["<!channel>".into()],
                    ..base.clone()
                },
                "in approvers is not a Slack id",
            ),
            (
                SlackConfig {
                    api_base_url: "file:///etc".into(),
                    ..base.clone()
                },
                "api_base_url must be",
            ),
            (
                SlackConfig {
                    approval_channel: Some("general".into()),
                    ..base.clone()
                },
                "approval_channel",
            ),
            (
                SlackConfig {
                    response_url_prefix: "https://hooks.slack.com".into(),
                    ..base.clone()
                },
                "response_url_prefix must be",
            ),
        ];
        for (c, expected) in cases {
            let e = SlackConfig::validate_all(&[c]).unwrap_err().to_string();
            assert!(e.contains(expected), "{e}");
        }
        let e = SlackConfig::validate_all(&[base.clone(), base.clone()]).unwrap_err();
        assert_eq!(e, InvalidSlack::DuplicateName("main".into()));
        assert!(
            toml::from_str::<SlackConfig>(&format!("{MINIMAL}\nsigning_secret = \"x\"")).is_err()
        );
    }

    #[test]
    fn secrets_come_from_the_named_variables() {
        let c = config(MINIMAL);
        let env = |v: &str| (v == "SLACK_SIGNING_SECRET").then(|| "s3cret".to_owned());
        let e = c.secrets(env).unwrap_err();
        assert_eq!(
            e.to_string(),
            "[[channels.slack]] \"main\": environment variable SLACK_BOT_TOKEN is not set"
        );
        let env = |v: &str| Some(format!("value of {v}"));
        assert_eq!(
            c.secrets(env).unwrap(),
            (
                "value of SLACK_SIGNING_SECRET".into(),
                "value of SLACK_BOT_TOKEN".into()
            )
        );
    }
}
