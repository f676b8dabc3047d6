//! The Events API: what Slack POSTs to the events URL, and which of those
//! events an agent answers.
//!
//! [`Envelope::parse`] reads a (verified) body; [`Filter::classify`] decides
//! per event: a message addressed to the bot ([`Incoming`]) or a recorded
//! reason to stay silent ([`Ignored`]). Staying silent on our own and other
//! bots' messages and on edits is what keeps two bots, or a bot and its own
//! edits, from answering each other forever.

use serde::Deserialize;
use serde_json::Value;

/// Why a body is not an Events API request.
#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    #[error("the body is not JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("the body has no string `type`")]
    NoType,
    #[error("{0} is missing the field `{1}`")]
    Missing(&'static str, &'static str),
}

/// One Events API request.
#[derive(Debug, Clone, PartialEq)]
pub enum Envelope {
    /// Sent once when the URL is configured: answer with the challenge.
    UrlVerification {
        challenge: String,
    },
    Callback(Box<Callback>),
    /// Slack is dropping events for this app for a minute.
    RateLimited,
    /// A type Warden does not handle: acknowledged and ignored.
    Other(String),
}

/// An `event_callback`: one event with its workspace and unique id.
#[derive(Debug, Clone, PartialEq)]
pub struct Callback {
    pub team_id: String,
    /// Unique per event across retries; the inbox's first dedupe key.
    pub event_id: String,
    pub event: Event,
}

/// The fields of an inner event that decide whether and where to answer.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Event {
    #[serde(rename = "type")]
    pub kind: String,
    // Every other field is read leniently: events Warden does not answer
    // (`team_join`, `channel_created`, ...) carry objects under the same
    // names, and must be ignored, not refused.
    #[serde(default, deserialize_with = "string_or_none")]
    pub subtype: Option<String>,
    #[serde(default, deserialize_with = "string_or_none")]
    pub user: Option<String>,
    #[serde(default, deserialize_with = "string_or_none")]
    pub bot_id: Option<String>,
    #[serde(default, deserialize_with = "string_or_none")]
    pub channel: Option<String>,
    #[serde(default, deserialize_with = "string_or_none")]
    pub channel_type: Option<String>,
    #[serde(default, deserialize_with = "string_or_none")]
    pub text: Option<String>,
    #[serde(default, deserialize_with = "string_or_none")]
    pub ts: Option<String>,
    #[serde(default, deserialize_with = "string_or_none")]
    pub thread_ts: Option<String>,
    /// The event's own team, which can differ from the envelope's in
    /// shared channels.
    #[serde(default, deserialize_with = "string_or_none")]
    pub team: Option<String>,
    /// Present when a user edited the message: an edited mention arrives as
    /// a new `app_mention` with no subtype, and must not be answered again.
    #[serde(default, deserialize_with = "present")]
    pub edited: bool,
}

fn string_or_none<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::String(s) => Some(s),
        _ => None,
    })
}

fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Ok(!Value::deserialize(d)?.is_null())
}

/// Slack's own user, which posts without a `bot_id`.
const SLACKBOT: &str = "USLACKBOT";

impl Envelope {
    pub fn parse(body: &[u8]) -> Result<Envelope, EnvelopeError> {
        let v: Value = serde_json::from_slice(body)?;
        let kind = v
            .get("type")
            .and_then(Value::as_str)
            .ok_or(EnvelopeError::NoType)?;
        let text = |key: &'static str| {
            v.get(key)
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or(EnvelopeError::Missing("the request", key))
        };
        Ok(match kind {
            "url_verification" => Envelope::UrlVerification {
                challenge: text("challenge")?,
            },
            "app_rate_limited" => Envelope::RateLimited,
            "event_callback" => {
                let raw = v
                    .get("event")
                    .ok_or(EnvelopeError::Missing("event_callback", "event"))?;
                Envelope::Callback(Box::new(Callback {
                    team_id: text("team_id")?,
                    event_id: text("event_id")?,
                    event: Event::deserialize(raw)?,
                }))
            }
            other => Envelope::Other(other.to_owned()),
        })
    }
}

/// A message an agent should answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incoming {
    pub team_id: String,
    pub channel: String,
    pub user: String,
    /// The text with the leading mention of the bot removed.
    pub text: String,
    pub ts: String,
    /// Where the answer goes: the event's thread, or a new thread under it.
    pub thread_ts: String,
    pub direct: bool,
}

impl Incoming {
    /// The inbox's second dedupe key: a mention in a channel arrives both as
    /// `app_mention` and as `message`, with different event ids.
    pub fn message_key(&self) -> String {
        format!("{}:{}", self.channel, self.ts)
    }
}

/// Why an event is recorded but not answered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Ignored {
    #[error("event from workspace {0}, which is not allowed")]
    ForeignTeam(String),
    #[error("our own message")]
    OwnMessage,
    #[error("a bot's message")]
    Bot,
    #[error("an edited message")]
    Edited,
    #[error("message subtype {0}")]
    Subtype(String),
    #[error("{0} events are not addressed to the bot")]
    NotAddressed(String),
    #[error("channel {0} is not allowed")]
    ChannelNotAllowed(String),
    #[error("the event has no `{0}`")]
    Missing(&'static str),
    #[error("the message is empty")]
    Empty,
}

/// What one Slack app configuration accepts.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub allowed_teams: Vec<String>,
    /// Empty: every channel the bot is in.
    pub allowed_channels: Vec<String>,
    /// The bot's user id (from `auth.test`), when known.
    pub bot_user_id: Option<String>,
}

impl Filter {
    pub fn classify(&self, callback: &Callback) -> Result<Incoming, Ignored> {
        let e = &callback.event;
        let team = e.team.as_deref().unwrap_or(&callback.team_id);
        for t in [callback.team_id.as_str(), team] {
            if !self.allowed_teams.iter().any(|a| a == t) {
                return Err(Ignored::ForeignTeam(t.to_owned()));
            }
        }
        if e.bot_id.is_some() || e.user.as_deref() == Some(SLACKBOT) {
            return Err(Ignored::Bot);
        }
        if let Some(s) = &e.subtype {
            return Err(Ignored::Subtype(s.clone()));
        }
        if e.edited {
            return Err(Ignored::Edited);
        }
        let user = e.user.clone().ok_or(Ignored::Missing("user"))?;
        if self.bot_user_id.as_deref() == Some(user.as_str()) {
            return Err(Ignored::OwnMessage);
        }
        let direct = match (e.kind.as_str(), e.channel_type.as_deref()) {
            ("app_mention", _) => false,
            ("message", Some("im")) => true,
            (kind, _) => return Err(Ignored::NotAddressed(kind.to_owned())),
        };
        let channel = e.channel.clone().ok_or(Ignored::Missing("channel"))?;
        if !self.allowed_channels.is_empty() && !self.allowed_channels.contains(&channel) {
            return Err(Ignored::ChannelNotAllowed(channel));
        }
        let ts = e.ts.clone().ok_or(Ignored::Missing("ts"))?;
        // Slack sends `&`, `<` and `>` escaped; the agent reads what the
        // user typed (the answer is escaped again on the way out).
        let text = crate::text::unescape(&strip_mention(
            e.text.as_deref().unwrap_or(""),
            self.bot_user_id.as_deref(),
        ));
        if text.is_empty() {
            return Err(Ignored::Empty);
        }
        Ok(Incoming {
            team_id: callback.team_id.clone(),
            thread_ts: e.thread_ts.clone().unwrap_or_else(|| ts.clone()),
            channel,
            user,
            text,
            ts,
            direct,
        })
    }
}

/// The message without a leading `<@BOT>` (or, when the bot's id is not
/// known, any leading user mention), trimmed.
fn strip_mention(text: &str, bot: Option<&str>) -> String {
    let t = text.trim_start();
    let rest = t.strip_prefix("<@").and_then(|r| {
        let end = r.find('>')?;
        let id = r[..end].split('|').next().unwrap_or("");
        bot.is_none_or(|b| b == id).then(|| &r[end + 1..])
    });
    rest.unwrap_or(t).trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn filter() -> Filter {
        Filter {
            allowed_teams: vec!["T1".into()],
            allowed_channels: Vec::new(),
            bot_user_id: Some("UBOT".into()),
        }
    }

    fn callback(event: Value) -> Callback {
        let body =
            json!({"type": "event_callback", "team_id": "T1", "event_id": "Ev1", "event": event});
        match Envelope::parse(body.to_string().as_bytes()).unwrap() {
            Envelope::Callback(c) => *c,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn envelopes_parse_by_type() {
        let cases = [
            (
                json!({"type": "url_verification", "token": "x", "challenge": "abc"}),
                Envelope::UrlVerification {
                    challenge: "abc".into(),
                },
            ),
            (
                json!({"type": "app_rate_limited", "minute_rate_limited": 1}),
                Envelope::RateLimited,
            ),
            (
                json!({"type": "something_new"}),
                Envelope::Other("something_new".into()),
            ),
        ];
        for (body, want) in cases {
            assert_eq!(
                Envelope::parse(body.to_string().as_bytes()).unwrap(),
                want,
                "{body}"
            );
        }
    }

    #[test]
    fn malformed_envelopes_are_errors_not_panics() {
        let cases: [&[u8]; 7] = [
            b"",
            b"not json",
            b"[1, 2]",
            br#"{"type": 5}"#,
            br#"{"type": "url_verification"}"#,
            br#"{"type": "event_callback", "team_id": "T1", "event_id": "Ev1"}"#,
            br#"{"type": "event_callback", "team_id": "T1", "event_id": "Ev1", "event": {"user": "U1"}}"#,
        ];
        for body in cases {
            assert!(
                Envelope::parse(body).is_err(),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn mentions_and_direct_messages_are_answered_in_their_thread() {
        let mention = callback(json!({
            "type": "app_mention", "user": "U1", "channel": "C1",
            "text": "<@UBOT> summarise the Q3 plan", "ts": "100.1"
        }));
        let got = filter().classify(&mention).unwrap();
        assert_eq!(got.text, "summarise the Q3 plan");
        assert_eq!((got.thread_ts.as_str(), got.direct), ("100.1", false));
        assert_eq!(got.message_key(), "C1:100.1");

        // What the user typed, not Slack's escapes of it.
        let escaped = callback(json!({
            "type": "app_mention", "user": "U1", "channel": "C1",
            "text": "<@UBOT> is 1 &lt; 2 &amp;&amp; 3 &gt; 2?", "ts": "100.3"
        }));
        assert_eq!(
            filter().classify(&escaped).unwrap().text,
            "is 1 < 2 && 3 > 2?"
        );

        // Editing a message re-sends the mention with the same ts.
        let edited = callback(json!({
            "type": "app_mention", "user": "U1", "channel": "C1",
            "text": "<@UBOT> summarise the Q4 plan", "ts": "100.1",
            "edited": {"user": "U1", "ts": "100.9"}
        }));
        assert_eq!(filter().classify(&edited), Err(Ignored::Edited));

        let in_thread = callback(json!({
            "type": "message", "channel_type": "im", "user": "U1", "channel": "D1",
            "text": "and the risks?", "ts": "200.2", "thread_ts": "100.1"
        }));
        let got = filter().classify(&in_thread).unwrap();
        assert_eq!((got.thread_ts.as_str(), got.direct), ("100.1", true));
    }

    #[test]
    fn bots_edits_foreign_teams_and_plain_channel_messages_are_not_answered() {
        let base = json!({"type": "message", "channel_type": "im", "user": "U1", "channel": "D1", "text": "hi", "ts": "1.1"});
        let with = |patch: Value| {
            let mut e = base.clone();
            e.as_object_mut()
                .unwrap()
                .extend(patch.as_object().unwrap().clone());
            callback(e)
        };
        let cases = [
            (with(json!({"user": "UBOT"})), Ignored::OwnMessage),
            (with(json!({"bot_id": "B9"})), Ignored::Bot),
            (with(json!({"user": "USLACKBOT"})), Ignored::Bot),
            (
                with(json!({"edited": {"user": "U1", "ts": "1.2"}})),
                Ignored::Edited,
            ),
            (
                with(json!({"subtype": "bot_message"})),
                Ignored::Subtype("bot_message".into()),
            ),
            (
                with(json!({"subtype": "message_changed"})),
                Ignored::Subtype("message_changed".into()),
            ),
            (
                with(json!({"subtype": "message_deleted"})),
                Ignored::Subtype("message_deleted".into()),
            ),
            (
                with(json!({"subtype": "thread_broadcast"})),
                Ignored::Subtype("thread_broadcast".into()),
            ),
            (
                with(json!({"team": "T2"})),
                Ignored::ForeignTeam("T2".into()),
            ),
            (
                with(json!({"channel_type": "channel"})),
                Ignored::NotAddressed("message".into()),
            ),
            (
                with(json!({"type": "reaction_added"})),
                Ignored::NotAddressed("reaction_added".into()),
            ),
            (with(json!({"text": "  "})), Ignored::Empty),
        ];
        for (event, want) in cases {
            assert_eq!(filter().classify(&event), Err(want), "{:?}", event.event);
        }
        let mut foreign = callback(base.clone());
        foreign.team_id = "T9".into();
        assert_eq!(
            filter().classify(&foreign),
            Err(Ignored::ForeignTeam("T9".into()))
        );
        let only_c2 = Filter {
            allowed_channels: vec!["C2".into()],
            ..filter()
        };
        assert_eq!(
            only_c2.classify(&callback(base)),
            Err(Ignored::ChannelNotAllowed("D1".into()))
        );
    }

    #[test]
    fn events_with_objects_under_the_same_names_are_ignored_not_refused() {
        let join = callback(json!({"type": "team_join", "user": {"id": "U5", "name": "new"}}));
        assert_eq!(join.event.user, None);
        assert_eq!(filter().classify(&join), Err(Ignored::Missing("user")));
        let renamed =
            callback(json!({"type": "channel_rename", "channel": {"id": "C1", "name": "x"}}));
        assert_eq!(renamed.event.channel, None);
    }

    #[test]
    fn only_the_bots_own_leading_mention_is_stripped() {
        let cases = [
            ("<@UBOT> hello", Some("UBOT"), "hello"),
            ("<@UBOT|warden> hello", Some("UBOT"), "hello"),
            ("  <@UBOT>hello  ", Some("UBOT"), "hello"),
            ("<@UOTHER> hello", Some("UBOT"), "<@UOTHER> hello"),
            ("<@UOTHER> hello", None, "hello"),
            ("hello <@UBOT>", Some("UBOT"), "hello <@UBOT>"),
            ("<@UBOT", Some("UBOT"), "<@UBOT"),
        ];
        for (text, bot, want) in cases {
            assert_eq!(strip_mention(text, bot), want, "{text:?}");
        }
    }
}
