//! The same message through every provider format reads the same; what
//! a provider's fields could smuggle in (header lines, names, bad
//! base64, unknown charsets) is refused or neutralised.

use base64::Engine as _;
use serde_json::json;

use crate::form::{Field, Form};
use crate::inbound::{self, Inbound, Limits};
use crate::{mailgun, postmark, sendgrid};

const RAW: &str = concat!(
    "From: Ann Lee <ann@example.com>\r\n",
    "To: support@warden.test\r\n",
    "Subject: Q3 numbers\r\n",
    "Message-ID: <m2@example.com>\r\n",
    "In-Reply-To: <w1@warden.test>\r\n",
    "References: <m0@example.com> <w1@warden.test>\r\n",
    "Content-Type: text/plain; charset=utf-8\r\n",
    "\r\n",
    "Send me the totals.\r\n",
);

fn field(name: &str, data: &[u8]) -> Field {
    Field {
        name: name.into(),
        file_name: None,
        content_type: None,
        data: data.to_vec(),
    }
}

fn file(name: &str, file_name: &str, content_type: &str, data: &[u8]) -> Field {
    Field {
        file_name: Some(file_name.into()),
        content_type: Some(content_type.into()),
        ..field(name, data)
    }
}

fn pairs() -> serde_json::Value {
    json!([
        ["From", "Ann Lee <ann@example.com>"],
        ["To", "support@warden.test"],
        ["Subject", "Q3 numbers"],
        ["Message-Id", "<m2@example.com>"],
        ["In-Reply-To", "<w1@warden.test>"],
        ["References", "<m0@example.com> <w1@warden.test>"],
    ])
}

fn every_format() -> Vec<(&'static str, Inbound)> {
    let l = Limits::default();
    let mailgun_parsed = Form {
        fields: vec![
            field("message-headers", pairs().to_string().as_bytes()),
            field("body-plain", b"Send me the totals."),
            file(
                "attachment-1",
                "q3.csv",
                "text/csv",
                b"region,total\nnorth,12\n",
            ),
        ],
    };
    let mailgun_mime = Form {
        fields: vec![field("body-mime", RAW.as_bytes())],
    };
    let postmark = json!({
        "FromFull": {"Email": "ann@example.com", "Name": "Ann Lee"},
        "To": "support@warden.test",
        "Subject": "Q3 numbers",
        "TextBody": "Send me the totals.",
        "Headers": [
            {"Name": "Message-ID", "Value": "<m2@example.com>"},
            {"Name": "In-Reply-To", "Value": "<w1@warden.test>"},
            {"Name": "References", "Value": "<m0@example.com> <w1@warden.test>"},
            {"Name": "Subject", "Value": "a copy that must not win"},
        ],
        "Attachments": [{
            "Name": "q3.csv", "ContentType": "text/csv",
            "Content": base64::engine::general_purpose::STANDARD.encode("region,total\nnorth,12\n"),
        }],
    });
    let header_block: String = RAW.split("\r\n\r\n").next().unwrap().to_owned();
    let sendgrid_parsed = Form {
        fields: vec![
            field("headers", header_block.as_bytes()),
            field("text", b"Send me the totals."),
            field("charsets", br#"{"text": "utf-8"}"#),
            file(
                "attachment1",
                "q3.csv",
                "text/csv",
                b"region,total\nnorth,12\n",
            ),
        ],
    };
    let sendgrid_raw = Form {
        fields: vec![field("email", RAW.as_bytes())],
    };
    vec![
        ("raw", inbound::parse(RAW.as_bytes(), &l).unwrap()),
        (
            "mailgun parsed",
            mailgun::message(&mailgun_parsed, &l).unwrap(),
        ),
        ("mailgun mime", mailgun::message(&mailgun_mime, &l).unwrap()),
        (
            "postmark",
            postmark::message(postmark.to_string().as_bytes(), &l).unwrap(),
        ),
        (
            "sendgrid parsed",
            sendgrid::message(&sendgrid_parsed, &l).unwrap(),
        ),
        (
            "sendgrid raw",
            sendgrid::message(&sendgrid_raw, &l).unwrap(),
        ),
    ]
}

#[test]
fn every_provider_format_reads_as_the_same_message() {
    for (format, m) in every_format() {
        assert_eq!(m.from, "ann@example.com", "{format}");
        assert_eq!(m.from_name.as_deref(), Some("Ann Lee"), "{format}");
        assert_eq!(m.recipients, ["support@warden.test"], "{format}");
        assert_eq!(m.subject, "Q3 numbers", "{format}");
        assert_eq!(m.message_id.as_deref(), Some("m2@example.com"), "{format}");
        assert_eq!(m.key, "mid:m2@example.com", "{format}");
        assert_eq!(m.in_reply_to, ["w1@warden.test"], "{format}");
        assert_eq!(
            m.references,
            ["m0@example.com", "w1@warden.test"],
            "{format}"
        );
        assert_eq!(m.text, "Send me the totals.", "{format}");
        if !format.ends_with("mime") && !format.ends_with("raw") {
            assert_eq!(m.attachments.len(), 1, "{format}");
            assert_eq!(m.attachments[0].name, "q3.csv", "{format}");
            assert!(
                m.attachments[0]
                    .text
                    .as_deref()
                    .unwrap()
                    .contains("north,12")
            );
        }
    }
}

#[test]
fn provider_fields_cannot_add_header_lines() {
    let form = Form {
        fields: vec![
            field(
                "message-headers",
                json!([
                    ["From", "ann@example.com"],
                    ["Subject", "hi\r\nAuto-Submitted: no\r\nList-Id: <x>"],
                    ["X-Evil\r\nPrecedence", "bulk"],
                    ["Bad Name", "x"],
                ])
                .to_string()
                .as_bytes(),
            ),
            field("body-plain", b"hello"),
        ],
    };
    let m = mailgun::message(&form, &Limits::default()).unwrap();
    assert_eq!(m.subject, "hi Auto-Submitted: no List-Id: <x>");
    assert_eq!(m.header("auto-submitted"), None);
    assert_eq!(m.header("list-id"), None);
    assert_eq!(m.header("precedence"), None);
}

#[test]
fn broken_provider_posts_are_named() {
    let l = Limits::default();
    let only = |f: Field| Form { fields: vec![f] };
    assert_eq!(
        mailgun::message(&only(field("body-plain", b"x")), &l),
        Err(mailgun::MailgunError::NoMessage)
    );
    assert_eq!(
        mailgun::message(&only(field("message-headers", b"[[")), &l),
        Err(mailgun::MailgunError::Headers)
    );
    assert_eq!(
        sendgrid::message(&only(field("text", b"x")), &l),
        Err(sendgrid::SendgridError::NoMessage)
    );
    let bad = json!({"FromFull": {"Email": "a@example.com"}, "Attachments": [
        {"Name": "../x.txt", "ContentType": "text/plain", "Content": "@@@"}]});
    assert_eq!(
        postmark::message(bad.to_string().as_bytes(), &l),
        Err(postmark::PostmarkError::Base64("x.txt".into()))
    );
    assert!(matches!(
        postmark::message(b"{\"FromFull\":", &l),
        Err(postmark::PostmarkError::Json(_))
    ));
    assert_eq!(
        postmark::message(b"{}", &l),
        Err(postmark::PostmarkError::Parse(
            inbound::ParseError::NoSender
        ))
    );
}

#[test]
fn sendgrid_bodies_are_read_in_their_charset_and_an_unknown_one_is_not_fatal() {
    let l = Limits::default();
    let post = |charset: &str, text: &[u8]| Form {
        fields: vec![
            field("headers", b"From: a@example.com\r\nSubject: x\r\n"),
            field("text", text),
            field(
                "charsets",
                format!("{{\"text\": \"{charset}\"}}").as_bytes(),
            ),
        ],
    };
    let latin = sendgrid::message(&post("iso-8859-1", b"Caf\xe9 ouvert"), &l).unwrap();
    assert_eq!(latin.text, "Café ouvert");
    let unknown = sendgrid::message(&post("x-no-such-charset", b"plain \xff text"), &l).unwrap();
    assert_eq!(unknown.text, "plain \u{fffd} text");
}

#[test]
fn a_parsed_post_without_message_id_is_keyed_by_the_message_not_the_request() {
    let l = Limits::default();
    let post = |token: &str| Form {
        fields: vec![
            field("timestamp", b"1700000000"),
            field("token", token.as_bytes()),
            field(
                "message-headers",
                br#"[["From", "a@example.com"], ["Subject", "x"]]"#,
            ),
            field("body-plain", b"hello"),
        ],
    };
    let first = mailgun::message(&post("t1"), &l).unwrap();
    let retry = mailgun::message(&post("t2"), &l).unwrap();
    assert!(first.key.starts_with("sha256:"), "{}", first.key);
    assert_eq!(
        first.key, retry.key,
        "a re-signed retry is the same message"
    );
    let other = Form {
        fields: vec![
            field(
                "message-headers",
                br#"[["From", "a@example.com"], ["Subject", "x"]]"#,
            ),
            field("body-plain", b"hello!"),
        ],
    };
    assert_ne!(mailgun::message(&other, &l).unwrap().key, first.key);
}

#[test]
fn html_only_provider_mail_becomes_text() {
    let post = json!({
        "FromFull": {"Email": "a@example.com"},
        "HtmlBody": "<p>Hello <b>there</b></p><script>steal()</script>",
    });
    let m = postmark::message(post.to_string().as_bytes(), &Limits::default()).unwrap();
    assert!(m.text.contains("Hello there"), "{:?}", m.text);
    assert!(!m.text.contains("steal"), "{:?}", m.text);
}

#[test]
fn urlencoded_forms_decode_and_files_are_found_by_prefix() {
    let form = Form::from_urlencoded(b"a=1&b=x%20y&a=2");
    assert_eq!(form.text("a").as_deref(), Some("1"));
    assert_eq!(form.text("b").as_deref(), Some("x y"));
    assert_eq!(form.text("c"), None);
    let f = Form {
        fields: vec![
            file("attachment-1", "a.txt", "text/plain", b"a"),
            field("attachment-count", b"1"),
        ],
    };
    assert_eq!(f.files("attachment-").count(), 1);
}
