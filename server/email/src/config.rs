//! `[[channels.email]]`: one mailbox Warden answers for. Secrets are named,
//! not written: the inbound webhook's credentials and the SMTP login come
//! from the environment variables the config names.

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EmailConfig {
    /// Names the connection and its inbound URL
    /// (`/channels/email/{name}/inbound`).
    pub name: String,
    pub agent: String,
    /// The addresses this mailbox answers for; the first is the `From` of
    /// every reply. Mail from any of them is never answered.
    pub addresses: Vec<String>,
    /// How inbound mail arrives: `raw` (the raw message as
    /// `message/rfc822`), `mailgun` (a route's post, signed), `postmark`
    /// (inbound JSON) or `sendgrid` (Inbound Parse).
    #[serde(default)]
    pub provider: Provider,
    /// Environment variables with the inbound webhook's HTTP basic-auth
    /// user and password: required for `raw`, `postmark` and `sendgrid`
    /// (whose URLs carry them), optional on top of Mailgun's signature.
    #[serde(default)]
    pub inbound_user_env: Option<String>,
    #[serde(default)]
    pub inbound_password_env: Option<String>,
    /// Environment variable with Mailgun's webhook signing key (`mailgun`).
    #[serde(default)]
    pub signing_key_env: Option<String>,
    /// Who decides on tool calls that need approval, by mail: addresses.
    /// Without approvers a paused run waits for a decision through the API.
    #[serde(default)]
    pub approvers: Vec<String>,
    /// Environment variable with the secret approval links are signed with
    /// (required with approvers; at least 32 bytes).
    #[serde(default)]
    pub approval_secret_env: Option<String>,
    /// The URL Warden is reached at from an approver's mail client, e.g.
    /// `https://warden.example.com` (required with approvers).
    #[serde(default)]
    pub public_url: Option<String>,
    /// How long an approval link decides.
    #[serde(default = "default_approval_ttl")]
    pub approval_ttl_secs: u64,
    /// Senders answered: addresses (`ann@example.com`) or domains
    /// (`example.com`); at least one.
    pub allowed_senders: Vec<String>,
    /// Largest accepted inbound request.
    #[serde(default = "default_max_body")]
    pub max_body_bytes: usize,
    /// Text attachments up to this size are given to the agent.
    #[serde(default = "default_max_text_attachment")]
    pub max_text_attachment_bytes: usize,
    pub smtp: SmtpConfig,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    #[default]
    Raw,
    Mailgun,
    Postmark,
    Sendgrid,
}

impl Provider {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Raw => "raw",
            Self::Mailgun => "mailgun",
            Self::Postmark => "postmark",
            Self::Sendgrid => "sendgrid",
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    /// `starttls` (default), `tls` (implicit, e.g. port 465) or `plain`
    /// (only for a relay on this machine or a trusted network).
    #[serde(default)]
    pub security: SmtpSecurity,
    #[serde(default)]
    pub username_env: Option<String>,
    #[serde(default)]
    pub password_env: Option<String>,
    #[serde(default = "default_smtp_timeout")]
    pub timeout_secs: u64,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SmtpSecurity {
    #[default]
    Starttls,
    Tls,
    Plain,
}

fn default_max_body() -> usize {
    25 * 1024 * 1024
}

fn default_max_text_attachment() -> usize {
    64 * 1024
}

fn default_smtp_timeout() -> u64 {
    30
}

fn default_approval_ttl() -> u64 {
    3 * 24 * 3600
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidEmail {
    #[error("[[channels.email]] names must be 1-64 letters, digits, '-' or '_' (got {0:?})")]
    Name(String),
    #[error("two [[channels.email]] are named {0:?}")]
    DuplicateName(String),
    #[error("[[channels.email]] {name:?}: {field} {problem}")]
    Field {
        name: String,
        field: &'static str,
        problem: String,
    },
    #[error("[[channels.email]] {name:?}: environment variable {var} is not set")]
    MissingEnv { name: String, var: String },
}

fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// `local@domain` without spaces, brackets or line breaks.
pub fn is_address(s: &str) -> bool {
    let Some((local, domain)) = s.rsplit_once('@') else {
        return false;
    };
    !local.is_empty()
        && domain.contains('.')
        && s.len() <= 254
        && s.chars()
            .all(|c| c.is_ascii_graphic() && !"<>()[]\\,;:\"".contains(c))
}

impl EmailConfig {
    pub fn validate_all(all: &[EmailConfig]) -> Result<(), InvalidEmail> {
        let mut seen = std::collections::HashSet::new();
        for c in all {
            if !is_name(&c.name) {
                return Err(InvalidEmail::Name(c.name.clone()));
            }
            if !seen.insert(c.name.as_str()) {
                return Err(InvalidEmail::DuplicateName(c.name.clone()));
            }
            let field = |field: &'static str, problem: &str| InvalidEmail::Field {
                name: c.name.clone(),
                field,
                problem: problem.to_owned(),
            };
            if c.addresses.is_empty() || !c.addresses.iter().all(|a| is_address(a)) {
                return Err(field("addresses", "must be one or more plain addresses"));
            }
            if c.allowed_senders.is_empty()
                || !c
                    .allowed_senders
                    .iter()
                    .all(|s| is_address(s) || (s.contains('.') && is_address(&format!("x@{s}"))))
            {
                return Err(field(
                    "allowed_senders",
                    "must be one or more addresses or domains",
                ));
            }
            if !(1024..=200 * 1024 * 1024).contains(&c.max_body_bytes) {
                return Err(field("max_body_bytes", "must be between 1 KiB and 200 MiB"));
            }
            if c.smtp.host.is_empty() || c.smtp.port == 0 {
                return Err(field("smtp", "needs a host and a port"));
            }
            if c.smtp.username_env.is_some() != c.smtp.password_env.is_some() {
                return Err(field("smtp", "username_env and password_env go together"));
            }
            if !(1..=300).contains(&c.smtp.timeout_secs) {
                return Err(field("smtp.timeout_secs", "must be 1..=300"));
            }
            if c.inbound_user_env.is_some() != c.inbound_password_env.is_some() {
                return Err(field(
                    "inbound_user_env",
                    "and inbound_password_env go together",
                ));
            }
            match c.provider {
                Provider::Mailgun if c.signing_key_env.is_none() => {
                    return Err(field("signing_key_env", "is required for mailgun"));
                }
                Provider::Raw | Provider::Postmark | Provider::Sendgrid
                    if c.inbound_user_env.is_none() =>
                {
                    return Err(field(
                        "inbound_user_env",
                        "and inbound_password_env are required for this provider",
                    ));
                }
                _ => {}
            }
            if !c.approvers.iter().all(|a| is_address(a)) {
                return Err(field("approvers", "must be plain addresses"));
            }
            if !c.approvers.is_empty() {
                if c.approval_secret_env.is_none() {
                    return Err(field("approval_secret_env", "is required with approvers"));
                }
                let url_ok = c.public_url.as_deref().is_some_and(|u| {
                    (u.starts_with("https://") || u.starts_with("http://"))
                        && !u.contains(['?', '#', ' ', '"', '<', '>'])
                });
                if !url_ok {
                    return Err(field(
                        "public_url",
                        "must be an http(s) URL without query or fragment (required with approvers)",
                    ));
                }
                if !(300..=30 * 24 * 3600).contains(&c.approval_ttl_secs) {
                    return Err(field(
                        "approval_ttl_secs",
                        "must be between 5 minutes and 30 days",
                    ));
                }
            }
        }
        Ok(())
    }

    /// Whether `address` (lower-case) is one of the approvers.
    pub fn is_approver(&self, address: &str) -> bool {
        self.approvers
            .iter()
            .any(|a| a.eq_ignore_ascii_case(address))
    }

    /// Whether mail from `address` (lower-case) is answered.
    pub fn allows(&self, address: &str) -> bool {
        let domain = address.rsplit_once('@').map_or("", |(_, d)| d);
        self.allowed_senders.iter().any(|s| {
            let s = s.to_ascii_lowercase();
            if s.contains('@') {
                s == address
            } else {
                domain == s
            }
        })
    }

    pub fn read_env(
        &self,
        var: &str,
        env: &impl Fn(&str) -> Option<String>,
    ) -> Result<String, InvalidEmail> {
        env(var)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| InvalidEmail::MissingEnv {
                name: self.name.clone(),
                var: var.to_owned(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
        name = "support"
        agent = "support-bot"
        addresses = ["support@warden.test"]
        inbound_user_env = "MAIL_USER"
        inbound_password_env = "MAIL_PASSWORD"
        allowed_senders = ["example.com", "boss@partner.test"]
        [smtp]
        host = "127.0.0.1"
        port = 2525
        security = "plain"
    "#;

    fn config() -> EmailConfig {
        toml::from_str(MINIMAL).unwrap()
    }

    #[test]
    fn a_minimal_mailbox_is_valid_and_allows_what_it_says() {
        let c = config();
        assert!(EmailConfig::validate_all(std::slice::from_ref(&c)).is_ok());
        assert_eq!(c.max_body_bytes, 25 * 1024 * 1024);
        assert!(c.allows("ann@example.com"));
        assert!(c.allows("boss@partner.test"));
        assert!(!c.allows("eve@partner.test"));
        assert!(!c.allows("ann@example.com.evil.test"));
        assert!(!c.allows("ann@sub.example.com"));
    }

    #[test]
    fn bad_mailboxes_are_refused_with_what_is_wrong() {
        let base = config();
        let cases: Vec<(EmailConfig, &str)> = vec![
            (
                EmailConfig {
                    name: "a/b".into(),
                    ..base.clone()
                },
                "names must be",
            ),
            (
                EmailConfig {
                    addresses: vec!["Support <s@w.test>".into()],
                    ..base.clone()
                },
                "addresses",
            ),
            (
                EmailConfig {
                    allowed_senders: vec![],
                    ..base.clone()
                },
                "allowed_senders",
            ),
            (
                EmailConfig {
                    max_body_bytes: 10,
                    ..base.clone()
                },
                "max_body_bytes",
            ),
        ];
        for (c, expected) in cases {
            let e = EmailConfig::validate_all(&[c]).unwrap_err().to_string();
            assert!(e.contains(expected), "{e}");
        }
        let with = |extra: &str| -> Result<(), String> {
            let c: EmailConfig =
                toml::from_str(&format!("{extra}\n{MINIMAL}")).map_err(|e| e.to_string())?;
            EmailConfig::validate_all(&[c]).map_err(|e| e.to_string())
        };
        let cases = [
            ("provider = \"mailgun\"", Some("signing_key_env")),
            ("provider = \"mailgun\"\nsigning_key_env = \"MG_KEY\"", None),
            ("provider = \"postmark\"", None),
            ("provider = \"sendgrid\"", None),
            ("provider = \"mandrill\"", Some("unknown variant")),
            (
                "approvers = [\"boss@example.com\"]",
                Some("approval_secret_env"),
            ),
            (
                "approvers = [\"boss@example.com\"]\napproval_secret_env = \"S\"",
                Some("public_url"),
            ),
            (
                "approvers = [\"boss@example.com\"]\napproval_secret_env = \"S\"\npublic_url = \"https://w.test/?x\"",
                Some("public_url"),
            ),
            (
                "approvers = [\"boss@example.com\"]\napproval_secret_env = \"S\"\npublic_url = \"https://w.test\"",
                None,
            ),
            (
                "approvers = [\"Boss <boss@example.com>\"]",
                Some("approvers"),
            ),
        ];
        for (extra, expected) in cases {
            match (with(extra), expected) {
                (Ok(()), None) => {}
                (Err(e), Some(part)) if e.contains(part) => {}
                (got, _) => panic!("{extra:?}: {got:?}, expected {expected:?}"),
            }
        }
    }
}
