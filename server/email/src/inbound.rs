//! An inbound message as the email channel needs it. The raw message is
//! parsed once (charsets, encoded words, nested multiparts and HTML-only
//! mail are `mail-parser`'s work); what comes out is owned, bounded and
//! safe to show: attachment names are sanitised and nothing refers back to
//! the raw bytes.

use mail_parser::{MessageParser, MimeHeaders, PartType};
use sha2::{Digest, Sha256};

/// What the parser refuses to take apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Multipart nesting deeper than this is refused.
    pub max_depth: usize,
    /// Messages with more MIME parts than this are refused.
    pub max_parts: usize,
    /// Text-like attachments up to this size are given to the agent.
    pub max_text_attachment_bytes: usize,
    /// The agent sees at most this much of the message text.
    pub max_text_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_depth: 16,
            max_parts: 256,
            max_text_attachment_bytes: 64 * 1024,
            max_text_bytes: 64 * 1024,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("not a MIME message")]
    NotMime,
    #[error("the message has no From address")]
    NoSender,
    #[error("MIME parts are nested more than {0} deep")]
    TooDeep(usize),
    #[error("the message has more than {0} MIME parts")]
    TooManyParts(usize),
}

/// An attachment as the agent learns of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    /// Sanitised: no directories, no control characters, bounded.
    pub name: String,
    pub content_type: String,
    pub size: usize,
    /// The text of a text-like attachment within the size limit.
    pub text: Option<String>,
}

/// A parsed inbound message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inbound {
    /// The sender's address, lower-cased.
    pub from: String,
    pub from_name: Option<String>,
    /// Every To and Cc address, lower-cased.
    pub recipients: Vec<String>,
    pub subject: String,
    /// `Message-ID` without angle brackets, if it has one.
    pub message_id: Option<String>,
    pub in_reply_to: Vec<String>,
    pub references: Vec<String>,
    /// The dedupe key: the `Message-ID`, else `sha256:` of the raw message.
    pub key: String,
    /// The text the agent sees: the new part of the message, without the
    /// quoted reply and the signature.
    pub text: String,
    /// The whole text body, as received (kept with the message).
    pub full_text: String,
    pub attachments: Vec<Attachment>,
    /// Header fields the loop rules read, as (lower-case name, value).
    pub headers: Vec<(String, String)>,
    /// `multipart/report` or a `message/delivery-status` part: a bounce.
    pub is_report: bool,
}

impl Inbound {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The header fields kept for the loop rules.
const KEPT_HEADERS: &[&str] = &[
    "auto-submitted",
    "precedence",
    "list-id",
    "list-unsubscribe",
    "x-autoreply",
    "x-autorespond",
    "x-auto-response-suppress",
    "return-path",
    "x-warden-loop",
];

pub fn parse(raw: &[u8], limits: &Limits) -> Result<Inbound, ParseError> {
    let message = MessageParser::default()
        .parse(raw)
        .ok_or(ParseError::NotMime)?;
    if message.parts.len() > limits.max_parts {
        return Err(ParseError::TooManyParts(limits.max_parts));
    }
    if depth(&message, 0, 0) > limits.max_depth {
        return Err(ParseError::TooDeep(limits.max_depth));
    }
    let head = Head::of(&message)?;
    let full_text = message
        .body_text(0)
        .map(|t| t.into_owned())
        .unwrap_or_default();
    let is_report = message.parts.iter().any(|p| {
        p.content_type()
            .is_some_and(|ct| is_report_type(ct.ctype(), ct.subtype().unwrap_or_default()))
    });
    let attachments = message
        .attachments()
        .map(|part| {
            let content_type = part
                .content_type()
                .map(|ct| match ct.subtype() {
                    Some(sub) => format!("{}/{}", ct.ctype(), sub),
                    None => ct.ctype().to_owned(),
                })
                .unwrap_or_default();
            attachment(
                part.attachment_name().unwrap_or(""),
                &content_type,
                part.contents(),
                limits,
            )
        })
        .collect();
    let key = head.key(|| Sha256::digest(raw).into());
    Ok(head.into_inbound(key, full_text, attachments, is_report, limits))
}

/// A message a provider has already taken apart (Mailgun's and
/// SendGrid's parsed posts, Postmark's JSON): its header fields, its
/// text and HTML bodies, already decoded, and its attachments.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Parts {
    /// The header block, as a raw message's (see [`header_block`]).
    pub header_block: Vec<u8>,
    pub text: Option<String>,
    pub html: Option<String>,
    pub attachments: Vec<RawAttachment>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawAttachment {
    /// As the sender wrote it: sanitised here.
    pub name: String,
    pub content_type: String,
    pub data: Vec<u8>,
}

/// A header block from (name, value) pairs a provider decoded. A name
/// that is not a header name is dropped, and line breaks and NULs in a
/// value become spaces: a value cannot add a header line.
pub fn header_block(pairs: &[(String, String)]) -> Vec<u8> {
    let mut block = Vec::new();
    for (name, value) in pairs {
        let is_name = !name.is_empty()
            && name.len() <= 128
            && name.bytes().all(|b| b.is_ascii_graphic() && b != b':');
        if !is_name {
            continue;
        }
        block.extend_from_slice(name.as_bytes());
        block.extend_from_slice(b": ");
        for c in value.replace("\r\n", " ").chars() {
            let c = if matches!(c, '\r' | '\n' | '\0') {
                ' '
            } else {
                c
            };
            let mut buf = [0u8; 4];
            block.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
        }
        block.extend_from_slice(b"\r\n");
    }
    block
}

/// The message in `parts`: its header fields read as a raw message's are,
/// its bodies and attachments as the provider decoded them.
pub fn from_parts(parts: &Parts, limits: &Limits) -> Result<Inbound, ParseError> {
    if parts.attachments.len() > limits.max_parts {
        return Err(ParseError::TooManyParts(limits.max_parts));
    }
    let mut block = parts.header_block.clone();
    while block.last().is_some_and(|b| b.is_ascii_whitespace()) {
        block.pop();
    }
    block.extend_from_slice(b"\r\n\r\n");
    let message = MessageParser::default()
        .parse(&block)
        .ok_or(ParseError::NotMime)?;
    let head = Head::of(&message)?;
    let text = parts.text.as_deref().unwrap_or("").trim();
    let full_text = if !text.is_empty() {
        text.to_owned()
    } else {
        parts
            .html
            .as_deref()
            .map(mail_parser::decoders::html::html_to_text)
            .unwrap_or_default()
    };
    let is_report = message
        .content_type()
        .is_some_and(|ct| is_report_type(ct.ctype(), ct.subtype().unwrap_or_default()))
        || parts.attachments.iter().any(|a| {
            let (main, sub) = a
                .content_type
                .split_once('/')
                .unwrap_or((&a.content_type, ""));
            is_report_type(main, sub)
        });
    let attachments = parts
        .attachments
        .iter()
        .map(|a| attachment(&a.name, &a.content_type, &a.data, limits))
        .collect();
    let key = head.key(|| {
        // What identifies the message, not the request it came in (a
        // provider's retry is signed anew).
        let mut h = Sha256::new();
        for piece in [
            block.as_slice(),
            parts.text.as_deref().unwrap_or("").as_bytes(),
            parts.html.as_deref().unwrap_or("").as_bytes(),
        ] {
            h.update((piece.len() as u64).to_be_bytes());
            h.update(piece);
        }
        for a in &parts.attachments {
            h.update((a.data.len() as u64).to_be_bytes());
            h.update(&a.data);
        }
        h.finalize().into()
    });
    Ok(head.into_inbound(key, full_text, attachments, is_report, limits))
}

/// What the header fields say, however the message arrived.
struct Head {
    from: String,
    from_name: Option<String>,
    recipients: Vec<String>,
    subject: String,
    message_id: Option<String>,
    in_reply_to: Vec<String>,
    references: Vec<String>,
    headers: Vec<(String, String)>,
}

impl Head {
    fn of(message: &mail_parser::Message<'_>) -> Result<Self, ParseError> {
        let sender = message
            .from()
            .and_then(|a| a.first())
            .ok_or(ParseError::NoSender)?;
        // An empty address (`From: <>`) is a mail system's: kept, so the
        // loop rules record it as not answered.
        let from = sender.address().unwrap_or_default().trim().to_lowercase();
        let recipients = message
            .to()
            .into_iter()
            .chain(message.cc())
            .flat_map(|a| a.iter())
            .filter_map(|a| a.address())
            .map(|a| a.trim().to_lowercase())
            .collect();
        let ids = |v: &mail_parser::HeaderValue<'_>| -> Vec<String> {
            match v {
                mail_parser::HeaderValue::Text(t) => vec![t.to_string()],
                mail_parser::HeaderValue::TextList(l) => l.iter().map(|t| t.to_string()).collect(),
                _ => Vec::new(),
            }
        };
        let headers = message
            .headers()
            .iter()
            .filter_map(|h| {
                let name = h.name().to_ascii_lowercase();
                KEPT_HEADERS.contains(&name.as_str()).then(|| {
                    let value = message
                        .header_raw(h.name())
                        .unwrap_or_default()
                        .trim()
                        .to_owned();
                    (name, value)
                })
            })
            .collect();
        Ok(Self {
            from,
            from_name: sender.name().map(str::to_owned),
            recipients,
            subject: message.subject().unwrap_or_default().to_owned(),
            message_id: message.message_id().map(str::to_owned),
            in_reply_to: ids(message.in_reply_to()),
            references: ids(message.references()),
            headers,
        })
    }

    /// The dedupe key: the `Message-ID`, else the content's hash.
    fn key(&self, digest: impl FnOnce() -> [u8; 32]) -> String {
        match &self.message_id {
            Some(id) => format!("mid:{id}"),
            None => format!("sha256:{}", hex::encode(digest())),
        }
    }

    fn into_inbound(
        self,
        key: String,
        full_text: String,
        attachments: Vec<Attachment>,
        is_report: bool,
        limits: &Limits,
    ) -> Inbound {
        let mut text = crate::quoted::strip(&full_text);
        truncate(&mut text, limits.max_text_bytes);
        Inbound {
            from: self.from,
            from_name: self.from_name,
            recipients: self.recipients,
            subject: self.subject,
            message_id: self.message_id,
            in_reply_to: self.in_reply_to,
            references: self.references,
            key,
            text,
            full_text,
            attachments,
            headers: self.headers,
            is_report,
        }
    }
}

fn is_report_type(main: &str, sub: &str) -> bool {
    let (main, sub) = (main.to_ascii_lowercase(), sub.to_ascii_lowercase());
    (main == "multipart" && sub == "report")
        || (main == "message" && (sub == "delivery-status" || sub == "disposition-notification"))
}

fn attachment(name: &str, content_type: &str, contents: &[u8], limits: &Limits) -> Attachment {
    let name = sanitise_name(if name.is_empty() { "attachment" } else { name });
    // Shown to the agent: one bounded line.
    let content_type: String = content_type
        .chars()
        .filter(|c| !c.is_control())
        .take(100)
        .collect::<String>()
        .trim()
        .to_ascii_lowercase();
    let content_type = if content_type.is_empty() {
        "application/octet-stream".to_owned()
    } else {
        content_type
    };
    let text = (is_text_like(&name, &content_type)
        && contents.len() <= limits.max_text_attachment_bytes)
        .then(|| String::from_utf8_lossy(contents).into_owned());
    Attachment {
        name,
        content_type,
        size: contents.len(),
        text,
    }
}

/// How deep multiparts nest below part `id`.
fn depth(message: &mail_parser::Message<'_>, id: usize, level: usize) -> usize {
    // Nothing real nests this deep; stop walking (and refuse) well before
    // recursion could matter.
    if level > 64 {
        return level;
    }
    match message.parts.get(id).map(|p| &p.body) {
        Some(PartType::Multipart(children)) => children
            .iter()
            .map(|c| depth(message, *c as usize, level + 1))
            .max()
            .unwrap_or(level + 1),
        Some(PartType::Message(inner)) => depth(inner, 0, level + 1),
        _ => level,
    }
}

fn is_text_like(name: &str, content_type: &str) -> bool {
    let ext = name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase());
    matches!(ext.as_deref(), Some("txt" | "md" | "csv" | "json"))
        || matches!(
            content_type,
            "text/plain" | "text/markdown" | "text/csv" | "application/json"
        )
}

/// A file name that names no directory and carries no control characters:
/// `../../etc/passwd` is `passwd`, `a\0b.txt` is `ab.txt`, a name of only
/// dots or nothing is `attachment`. At most 100 characters.
pub fn sanitise_name(raw: &str) -> String {
    let base = raw.rsplit(['/', '\\']).next().unwrap_or("");
    let clean: String = base
        .chars()
        .filter(|c| !c.is_control())
        .collect::<String>()
        .trim()
        .trim_start_matches('.')
        .chars()
        .take(100)
        .collect();
    if clean.is_empty() {
        "attachment".into()
    } else {
        clean
    }
}

fn truncate(text: &mut String, max: usize) {
    if text.len() > max {
        let mut cut = max;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_ok(raw: &str) -> Inbound {
        parse(raw.as_bytes(), &Limits::default()).unwrap()
    }

    #[test]
    fn a_plain_reply_gives_its_new_text_and_its_threading() {
        let m = parse_ok(concat!(
            "From: Ann Lee <Ann@Example.com>\r\n",
            "To: agent@warden.test, Bob <bob@example.com>\r\n",
            "Subject: =?utf-8?q?R=C3=A9sum=C3=A9?= please\r\n",
            "Message-ID: <m2@example.com>\r\n",
            "In-Reply-To: <w1@warden.test>\r\n",
            "References: <m0@example.com> <w1@warden.test>\r\n",
            "Content-Type: text/plain; charset=utf-8\r\n",
            "\r\n",
            "Yes, go ahead.\r\n",
            "\r\n",
            "On Mon, 1 Dec 2026 at 10:00, Warden <agent@warden.test> wrote:\r\n",
            "> Shall I file it?\r\n",
        ));
        assert_eq!(m.from, "ann@example.com");
        assert_eq!(m.from_name.as_deref(), Some("Ann Lee"));
        assert_eq!(m.recipients, ["agent@warden.test", "bob@example.com"]);
        assert_eq!(m.subject, "Résumé please");
        assert_eq!(m.message_id.as_deref(), Some("m2@example.com"));
        assert_eq!(m.key, "mid:m2@example.com");
        assert_eq!(m.in_reply_to, ["w1@warden.test"]);
        assert_eq!(m.references, ["m0@example.com", "w1@warden.test"]);
        assert_eq!(m.text, "Yes, go ahead.");
        assert!(m.full_text.contains("Shall I file it?"));
    }

    #[test]
    fn html_only_mail_and_other_charsets_become_text() {
        let m = parse_ok(concat!(
            "From: a@example.com\r\n",
            "Subject: hi\r\n",
            "Content-Type: text/html; charset=iso-8859-1\r\n",
            "Content-Transfer-Encoding: quoted-printable\r\n",
            "\r\n",
            "<html><body><p>Caf=E9 <b>ouvert</b></p><script>x()</script></body></html>\r\n",
        ));
        assert!(m.text.contains("Café ouvert"), "{:?}", m.text);
        assert!(!m.text.contains('<'), "{:?}", m.text);
    }

    #[test]
    fn an_unknown_charset_or_broken_base64_still_gives_a_message() {
        let m = parse_ok(concat!(
            "From: a@example.com\r\n",
            "Subject: =?x-no-such-charset?q?caf=E9?=\r\n",
            "Content-Type: multipart/mixed; boundary=\"b\"\r\n",
            "\r\n",
            "--b\r\n",
            "Content-Type: text/plain; charset=x-no-such-charset\r\n",
            "\r\n",
            "plain words\r\n",
            "--b\r\n",
            "Content-Type: application/pdf; name=\"r.pdf\"\r\n",
            "Content-Transfer-Encoding: base64\r\n",
            "Content-Disposition: attachment; filename=\"r.pdf\"\r\n",
            "\r\n",
            "!!not*base64!!\r\n",
            "--b--\r\n",
        ));
        assert_eq!(m.text, "plain words");
        assert_eq!(m.attachments.len(), 1);
        assert_eq!(m.attachments[0].name, "r.pdf");
    }

    #[test]
    fn a_message_without_message_id_is_keyed_by_its_content() {
        let raw = "From: a@example.com\r\nSubject: x\r\n\r\nhello\r\n";
        let m = parse_ok(raw);
        assert_eq!(m.message_id, None);
        assert!(m.key.starts_with("sha256:") && m.key.len() == 7 + 64);
        assert_eq!(parse_ok(raw).key, m.key, "the same message, the same key");
        let other = parse_ok("From: a@example.com\r\nSubject: x\r\n\r\nhello!\r\n");
        assert_ne!(other.key, m.key);
    }

    #[test]
    fn attachments_are_named_safely_and_text_ones_are_context() {
        let m = parse_ok(concat!(
            "From: a@example.com\r\n",
            "Subject: files\r\n",
            "Content-Type: multipart/mixed; boundary=\"b\"\r\n",
            "\r\n",
            "--b\r\n",
            "Content-Type: text/plain\r\n",
            "\r\n",
            "See attached.\r\n",
            "--b\r\n",
            "Content-Type: text/csv; name=\"../../etc/q3.csv\"\r\n",
            "Content-Disposition: attachment; filename=\"../../etc/q3.csv\"\r\n",
            "\r\n",
            "region,total\r\nnorth,12\r\n",
            "--b\r\n",
            "Content-Type: application/pdf; name=\"report.pdf\"\r\n",
            "Content-Disposition: attachment; filename=\"report.pdf\"\r\n",
            "Content-Transfer-Encoding: base64\r\n",
            "\r\n",
            "JVBERi0xLjQK\r\n",
            "--b--\r\n",
        ));
        assert_eq!(m.text, "See attached.");
        let names: Vec<&str> = m.attachments.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(names, ["q3.csv", "report.pdf"]);
        assert!(
            m.attachments[0]
                .text
                .as_deref()
                .unwrap()
                .contains("north,12")
        );
        assert_eq!(m.attachments[1].text, None);
        assert_eq!(m.attachments[1].content_type, "application/pdf");
        assert_eq!(m.attachments[1].size, 9);
    }

    #[test]
    fn hostile_names_cannot_name_a_place_or_hide_characters() {
        for (raw, expected) in [
            ("../../etc/passwd", "passwd"),
            ("..\\..\\boot.ini", "boot.ini"),
            ("a\0b.txt", "ab.txt"),
            ("line\r\nbreak.md", "linebreak.md"),
            ("...", "attachment"),
            ("", "attachment"),
            (".hidden", "hidden"),
        ] {
            assert_eq!(sanitise_name(raw), expected, "{raw:?}");
        }
        assert_eq!(sanitise_name(&"x".repeat(500)).len(), 100);
    }

    #[test]
    fn deep_nesting_too_many_parts_no_sender_and_garbage_are_refused() {
        let mut deep = String::from("From: a@example.com\r\nSubject: deep\r\n");
        for i in 0..20 {
            deep.push_str(&format!(
                "Content-Type: multipart/mixed; boundary=\"b{i}\"\r\n\r\n--b{i}\r\n"
            ));
        }
        deep.push_str("Content-Type: text/plain\r\n\r\nbottom\r\n");
        assert_eq!(
            parse(deep.as_bytes(), &Limits::default()),
            Err(ParseError::TooDeep(16))
        );
        let mut many = String::from(
            "From: a@example.com\r\nSubject: many\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n",
        );
        for _ in 0..300 {
            many.push_str("--b\r\nContent-Type: text/plain\r\n\r\nx\r\n");
        }
        many.push_str("--b--\r\n");
        assert_eq!(
            parse(many.as_bytes(), &Limits::default()),
            Err(ParseError::TooManyParts(256))
        );
        assert_eq!(
            parse(b"Subject: nobody\r\n\r\nhi\r\n", &Limits::default()),
            Err(ParseError::NoSender)
        );
        assert!(parse(b"", &Limits::default()).is_err());
    }

    #[test]
    fn the_agent_sees_a_bounded_text() {
        let body = "é".repeat(40_000);
        let raw = format!(
            "From: a@example.com\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n"
        );
        let m = parse(
            raw.as_bytes(),
            &Limits {
                max_text_bytes: 1001,
                ..Limits::default()
            },
        )
        .unwrap();
        assert_eq!(m.text.len(), 1000, "cut at a character boundary");
    }
}
