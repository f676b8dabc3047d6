//! Email end to end: a real `warden` process receives mail on its inbound
//! route (raw MIME, and Mailgun's, Postmark's and SendGrid's posts) and
//! answers over SMTP to a real SMTP server on loopback (aiosmtpd). The
//! real model and the real document plugin answer a thread; the scripted
//! upstream plays the model for the provider formats, approvals by mail,
//! loops between two Warden instances and SMTP trouble.

use reqwest::Method;
use serde_json::{Value, json};
use warden_tests::smtp::{SmtpSink, form_data, free_port, header, text_of, to};
use warden_tests::upstream::{LEAKED_KEY, Upstream};
use warden_tests::{Options, Server, api};

use super::agents::{STEP, TICKET_APPROVAL, plugin_config};
use super::governance_chat::policy_dir_with;

const USER: &str = "mail-hook";
const PASSWORD: &str = "hook-password-for-tests";
const MAILGUN_KEY: &str = "key-mailgun-signing-for-tests";
const LINK_SECRET: &str = "approval-link-secret-for-tests-0123456789";
/// Where approvers reach Warden (a proxy in front of it, in production):
/// the tests send the links' paths to the test server instead.
const PUBLIC_URL: &str = "https://warden.example.test";

fn email_config(smtp_port: u16) -> String {
    format!(
        r#"
        [[channels.email]]
        name = "support"
        agent = "waiter"
        addresses = ["support@warden.test"]
        inbound_user_env = "TEST_MAIL_USER"
        inbound_password_env = "TEST_MAIL_PASSWORD"
        allowed_senders = ["example.com"]
        [channels.email.smtp]
        host = "127.0.0.1"
        port = {smtp_port}
        security = "plain"
        timeout_secs = 5
        [channels.delivery]
        backoff_ms = 200
        max_backoff_ms = 1000
        max_attempts = 60
        "#
    )
}

fn env() -> Vec<(String, String)> {
    vec![
        ("TEST_MAIL_USER".into(), USER.into()),
        ("TEST_MAIL_PASSWORD".into(), PASSWORD.into()),
        ("TEST_MAILGUN_KEY".into(), MAILGUN_KEY.into()),
        ("TEST_LINK_SECRET".into(), LINK_SECRET.into()),
    ]
}

/// One `[[channels.email]]` answering as `address` for `agent`.
fn mailbox(name: &str, agent: &str, address: &str, extra: &str, smtp_port: u16) -> String {
    format!(
        r#"
        [[channels.email]]
        name = "{name}"
        agent = "{agent}"
        addresses = ["{address}"]
        allowed_senders = ["example.com", "a-warden.test", "b-warden.test"]
        {extra}
        [channels.email.smtp]
        host = "127.0.0.1"
        port = {smtp_port}
        security = "plain"
        timeout_secs = 5
        "#
    )
}

const BASIC: &str = r#"inbound_user_env = "TEST_MAIL_USER"
        inbound_password_env = "TEST_MAIL_PASSWORD""#;

const DELIVERY: &str = "
        [channels.delivery]
        backoff_ms = 200
        max_backoff_ms = 1000
        ";

async fn start(upstream: &Upstream, smtp_port: u16) -> (Server, String) {
    start_waiter(format!(
        "{}{}",
        upstream.model_config(),
        email_config(smtp_port)
    ))
    .await
}

/// A server with `config` and the scripted `waiter` agent; its admin key.
async fn start_waiter(config: String) -> (Server, String) {
    let server = Server::start_with(Options {
        config,
        env: env(),
        ..Options::default()
    })
    .unwrap();
    let key = server.key().to_owned();
    let agent = json!({"name": "waiter", "model": "scripted", "system_prompt": "You answer."});
    let (status, body) = api(&server, Method::POST, "/agents", &key, Some(agent)).await;
    assert_eq!(status, 201, "{body}");
    (server, key)
}

/// POSTs to the raw `support` mailbox with basic auth `auth`.
async fn post(
    server: &Server,
    body: impl Into<reqwest::Body>,
    content_type: &str,
    auth: (&str, &str),
) -> (u16, Value) {
    post_to(server, "support", body, content_type, Some(auth)).await
}

async fn mail(server: &Server, raw: String) -> (u16, Value) {
    post(server, raw, "message/rfc822", (USER, PASSWORD)).await
}

fn message(from: &str, id: &str, extra_headers: &str, body: &str) -> String {
    format!(
        "From: {from}\r\nTo: Support <support@warden.test>\r\nSubject: Question\r\nMessage-ID: <{id}>\r\n{extra_headers}Content-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n"
    )
}

fn id_of(raw: &str) -> String {
    header(raw, "Message-ID")
        .unwrap()
        .trim_matches(['<', '>'])
        .to_owned()
}

async fn inbox_rows(server: &Server, key: &str) -> Value {
    let (_, health) = api(server, Method::GET, "/channels", key, None).await;
    health["email"][0]["inbox"].clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn mail_is_answered_over_smtp_in_its_thread_and_loops_and_forgeries_are_not_followed() {
    let up = Upstream::start().await;
    let sink = SmtpSink::start();
    let (server, key) = start(&up, sink.port).await;

    let (status, body) = mail(
        &server,
        message(
            "Ann <ann@example.com>",
            "m1@example.com",
            "",
            r#"{"final": "pong"}"#,
        ),
    )
    .await;
    assert_eq!(
        (status, &body["status"]),
        (200, &json!("accepted")),
        "{body}"
    );
    let got = sink.until(1, 60).await;
    let reply = &got[0];
    assert_eq!(header(reply, "To").as_deref(), Some("ann@example.com"));
    assert_eq!(header(reply, "Subject").as_deref(), Some("Re: Question"));
    assert_eq!(
        header(reply, "In-Reply-To").as_deref(),
        Some("<m1@example.com>")
    );
    assert_eq!(
        header(reply, "References").as_deref(),
        Some("<m1@example.com>")
    );
    assert_eq!(
        header(reply, "Auto-Submitted").as_deref(),
        Some("auto-replied")
    );
    assert!(
        header(reply, "Content-Type")
            .unwrap()
            .contains("multipart/alternative")
    );
    assert!(reply.contains("pong"), "{reply}");
    let w1 = id_of(reply);
    assert!(w1.ends_with("@warden.test"), "{w1}");

    // Ann answers the reply, quoting it: the same conversation, the agent
    // sees only her new text.
    let (status, _) = mail(
        &server,
        message(
            "ann@example.com",
            "m2@example.com",
            &format!("In-Reply-To: <{w1}>\r\nReferences: <m1@example.com> <{w1}>\r\n"),
            "{\"final\": \"second\"}\r\n\r\nOn Thu, 3 Dec 2026, Support wrote:\r\n> pong",
        ),
    )
    .await;
    assert_eq!(status, 200);
    let got = sink.until(2, 60).await;
    let second = &got[1];
    assert!(second.contains("second"), "{second}");
    assert_eq!(
        header(second, "In-Reply-To").as_deref(),
        Some("<m2@example.com>")
    );
    assert_eq!(
        header(second, "References").as_deref(),
        Some(format!("<m1@example.com> <{w1}> <m2@example.com>").as_str())
    );

    // Eve names Ann's thread in her headers: she gets her own conversation.
    let (status, _) = mail(
        &server,
        message(
            "eve@example.com",
            "e1@example.com",
            &format!("In-Reply-To: <{w1}>\r\nReferences: <m1@example.com> <{w1}>\r\n"),
            r#"{"final": "third"}"#,
        ),
    )
    .await;
    assert_eq!(status, 200);
    sink.until(3, 60).await;
    let turns: Vec<i64> = server
        .sqlite_query(
            "SELECT conversation_id, COUNT(*) AS n FROM channel_turns GROUP BY conversation_id ORDER BY n DESC",
        )
        .await
        .into_iter()
        .map(|r| r.try_get::<i64>("", "n").unwrap())
        .collect();
    assert_eq!(turns, [4, 2], "Ann's thread holds two exchanges, Eve's one");

    // Not answered: an autoresponder, list mail, our own reply fed back,
    // a sender outside allowed_senders; a duplicate is dropped.
    let own_reply = got[0].clone();
    for (raw, expected) in [
        (
            message(
                "ann@example.com",
                "a1@example.com",
                "Auto-Submitted: auto-replied\r\n",
                "I am away",
            ),
            "ignored",
        ),
        (
            message(
                "ann@example.com",
                "l1@example.com",
                "List-Id: <team.example.com>\r\n",
                "news",
            ),
            "ignored",
        ),
        (own_reply, "ignored"),
        (
            message("mallory@elsewhere.test", "x1@elsewhere.test", "", "hi"),
            "ignored",
        ),
        (
            message(
                "Ann <ann@example.com>",
                "m1@example.com",
                "",
                r#"{"final": "pong"}"#,
            ),
            "duplicate",
        ),
    ] {
        let (status, body) = mail(&server, raw).await;
        assert_eq!(
            (status, body["status"].as_str()),
            (200, Some(expected)),
            "{body}"
        );
    }

    // Refused, with nothing stored.
    let before = inbox_rows(&server, &key).await;
    // (The counts are there: an empty answer would compare equal below.)
    assert_eq!(before["ignored"], 4, "{before}");
    let mut deep = String::from("From: ann@example.com\r\nSubject: deep\r\n");
    for i in 0..40 {
        deep.push_str(&format!(
            "Content-Type: multipart/mixed; boundary=\"b{i}\"\r\n\r\n--b{i}\r\n"
        ));
    }
    deep.push_str("Content-Type: text/plain\r\n\r\nbottom\r\n");
    let hi = message("ann@example.com", "z1@example.com", "", "hi");
    /// What is sent (name, body, content type, credentials) and the status.
    type Case<'a> = (&'a str, reqwest::Body, &'a str, (&'a str, &'a str), u16);
    let cases: Vec<Case<'_>> = vec![
        (
            "wrong password",
            hi.clone().into(),
            "message/rfc822",
            (USER, "nope"),
            401,
        ),
        (
            "not a message type",
            hi.clone().into(),
            "text/plain",
            (USER, PASSWORD),
            415,
        ),
        (
            "no sender",
            "Subject: who?\r\n\r\nhi\r\n".into(),
            "message/rfc822",
            (USER, PASSWORD),
            400,
        ),
        (
            "nested 40 deep",
            deep.into(),
            "message/rfc822",
            (USER, PASSWORD),
            400,
        ),
        (
            "30 MiB",
            vec![b'a'; 30 * 1024 * 1024].into(),
            "message/rfc822",
            (USER, PASSWORD),
            413,
        ),
    ];
    for (case, body, ct, auth, expected) in cases {
        let (status, answer) = post(&server, body, ct, auth).await;
        assert_eq!(status, expected, "{case}: {answer}");
    }
    assert_eq!(inbox_rows(&server, &key).await, before, "nothing stored");
    // Nothing more was sent.
    assert_eq!(sink.messages().len(), 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reply_waits_while_smtp_is_down_and_is_delivered_once_it_is_back() {
    let up = Upstream::start().await;
    let port = free_port();
    let (server, key) = start(&up, port).await;
    let (status, _) = mail(
        &server,
        message(
            "ann@example.com",
            "m1@example.com",
            "",
            r#"{"final": "queued"}"#,
        ),
    )
    .await;
    assert_eq!(status, 200);
    // Tried and refused (nothing listens): the reply stays queued.
    let mut waiting = Value::Null;
    for _ in 0..100 {
        let (_, health) = api(&server, Method::GET, "/channels", &key, None).await;
        if health["email"][0]["outbox"]["pending"] == 1 && health["email"][0]["inbox"]["done"] == 1
        {
            waiting = health;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(waiting["email"][0]["outbox"]["sent"], 0, "{waiting}");
    let sink = SmtpSink::start_on(port);
    let got = sink.until(1, 60).await;
    assert!(got[0].contains("queued"));
    let (_, health) = api(&server, Method::GET, "/channels", &key, None).await;
    assert_eq!(health["email"][0]["outbox"]["sent"], 1, "{health}");
    assert_eq!(sink.messages().len(), 1, "delivered once");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deferred_reply_is_retried_and_delivered_once_and_a_refused_one_fails_with_the_answer() {
    let up = Upstream::start().await;
    let sink = SmtpSink::flaky();
    let (server, key) = start(&up, sink.port).await;
    for (from, id, text) in [
        ("ann@example.com", "a1@example.com", "for ann"),
        ("bob@example.com", "b1@example.com", "for bob"),
    ] {
        let (status, _) = mail(
            &server,
            message(from, id, "", &format!("{{\"final\": \"{text}\"}}")),
        )
        .await;
        assert_eq!(status, 200);
    }
    // Ann's reply: 451 first, then accepted, once.
    let got = sink.until(1, 60).await;
    assert!(got[0].contains("for ann"), "{}", got[0]);
    // Bob's: 554, failed for good with the server's words.
    let mut health = Value::Null;
    for _ in 0..100 {
        let (_, h) = api(&server, Method::GET, "/channels", &key, None).await;
        if h["email"][0]["outbox"]["failed"] == 1 && h["email"][0]["outbox"]["sent"] == 1 {
            health = h;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let failure = &health["email"][0]["recent_failures"][0];
    assert!(
        failure["error"]
            .as_str()
            .unwrap_or_default()
            .contains("bob does not take mail from robots"),
        "{health}"
    );
    assert_eq!(failure["attempts"], 1, "a 5xx is not retried");
    assert_eq!(sink.messages().len(), 1);
    // The deferred reply took two tries.
    let rows = server
        .sqlite_query("SELECT attempts, last_error FROM channel_outbox WHERE status = 'sent'")
        .await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].try_get::<i32>("", "attempts").unwrap(), 2);
    let error = rows[0].try_get::<Option<String>>("", "last_error").unwrap();
    assert!(error.unwrap_or_default().contains("greylisted"));
}

/// POSTs to mailbox `name`'s inbound route.
async fn post_to(
    server: &Server,
    name: &str,
    body: impl Into<reqwest::Body>,
    content_type: &str,
    auth: Option<(&str, &str)>,
) -> (u16, Value) {
    let mut r = reqwest::Client::new()
        .post(format!("{}/channels/email/{name}/inbound", server.base))
        .header("content-type", content_type)
        .body(body);
    if let Some((u, p)) = auth {
        r = r.basic_auth(u, Some(p));
    }
    let r = r.send().await.expect("inbound request");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Mailgun's signature fields for a post made at `timestamp`.
fn mailgun_signed(timestamp: i64, token: &str) -> Vec<(String, String)> {
    let ts = timestamp.to_string();
    let sig = warden_email::mailgun::sign(MAILGUN_KEY.as_bytes(), &ts, token);
    vec![
        ("timestamp".into(), ts),
        ("token".into(), token.into()),
        ("signature".into(), sig),
    ]
}

fn urlencoded(pairs: &[(String, String)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

/// Every mailbox's inbox counts, by name.
async fn all_inboxes(server: &Server, key: &str) -> Value {
    let (_, health) = api(server, Method::GET, "/channels", key, None).await;
    let rows = health["email"].as_array().cloned().unwrap_or_default();
    Value::Object(
        rows.iter()
            .map(|m| {
                (
                    m["name"].as_str().unwrap_or("").to_owned(),
                    m["inbox"].clone(),
                )
            })
            .collect(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn every_provider_format_is_answered_and_hostile_posts_are_refused_the_way_each_provider_expects()
 {
    let up = Upstream::start().await;
    let sink = SmtpSink::start();
    let p = sink.port;
    let config = format!(
        "{}{}{}{}{}{}",
        up.model_config(),
        mailbox("raw", "waiter", "raw@warden.test", BASIC, p),
        mailbox(
            "mg",
            "waiter",
            "mg@warden.test",
            "provider = \"mailgun\"\n        signing_key_env = \"TEST_MAILGUN_KEY\"",
            p
        ),
        mailbox(
            "pm",
            "waiter",
            "pm@warden.test",
            &format!("provider = \"postmark\"\n        {BASIC}"),
            p
        ),
        mailbox(
            "sg",
            "waiter",
            "sg@warden.test",
            &format!("provider = \"sendgrid\"\n        {BASIC}"),
            p
        ),
        DELIVERY,
    );
    let (server, key) = start_waiter(config).await;
    let auth = Some((USER, PASSWORD));

    // Mailgun, parsed (form-urlencoded), signed.
    let mut mg_post = mailgun_signed(now(), &"t".repeat(50));
    mg_post.extend([
        (
            "message-headers".to_owned(),
            json!([
                ["From", "Ann <ann@example.com>"],
                ["To", "mg@warden.test"],
                ["Subject", "Question"],
                ["Message-Id", "<mg1@example.com>"],
            ])
            .to_string(),
        ),
        ("body-plain".into(), r#"{"final": "from mailgun"}"#.into()),
    ]);
    let mg_body = urlencoded(&mg_post);
    let (status, body) = post_to(
        &server,
        "mg",
        mg_body.clone(),
        "application/x-www-form-urlencoded",
        None,
    )
    .await;
    assert_eq!(
        (status, &body["status"]),
        (200, &json!("accepted")),
        "{body}"
    );

    // Mailgun, raw MIME route (multipart with body-mime).
    let raw = message(
        "bob@example.com",
        "mg2@example.com",
        "",
        r#"{"final": "from mailgun mime"}"#,
    );
    let mut fields: Vec<(String, String)> = mailgun_signed(now(), &"u".repeat(50));
    fields.push(("body-mime".into(), raw));
    let parts: Vec<(&str, Option<&str>, &str, &[u8])> = fields
        .iter()
        .map(|(k, v)| (k.as_str(), None, "text/plain", v.as_bytes()))
        .collect();
    let (ct, mime_post) = form_data(&parts);
    let (status, body) = post_to(&server, "mg", mime_post, &ct, None).await;
    assert_eq!(
        (status, &body["status"]),
        (200, &json!("accepted")),
        "{body}"
    );

    // Postmark's JSON; a subject and a header trying to add header lines.
    let pm = json!({
        "FromFull": {"Email": "cat@example.com", "Name": "Cat"},
        "To": "pm@warden.test",
        "Subject": "Question\r\nBcc: eve@evil.test",
        "TextBody": format!("{{\"final\": \"from postmark, key {LEAKED_KEY}\"}}"),
        "Headers": [
            {"Name": "Message-ID", "Value": "<pm1@example.com>"},
            {"Name": "X-Evil\r\nBcc", "Value": "eve@evil.test"},
        ],
        "Attachments": [],
    });
    let (status, body) = post_to(&server, "pm", pm.to_string(), "application/json", auth).await;
    assert_eq!(
        (status, &body["status"]),
        (200, &json!("accepted")),
        "{body}"
    );

    // SendGrid, parsed, with a charset nobody knows.
    let (ct, sg_post) = form_data(&[
        (
            "headers",
            None,
            "text/plain",
            b"From: Dan <dan@example.com>\r\nTo: sg@warden.test\r\nSubject: Question\r\nMessage-ID: <sg1@example.com>\r\n",
        ),
        ("text", None, "text/plain", br#"{"final": "from sendgrid"}"#),
        ("charsets", None, "text/plain", br#"{"text": "x-no-such-charset"}"#),
    ]);
    let (status, body) = post_to(&server, "sg", sg_post, &ct, auth).await;
    assert_eq!(
        (status, &body["status"]),
        (200, &json!("accepted")),
        "{body}"
    );

    // SendGrid "send raw", the message carrying attachments with hostile
    // names and one whose base64 is broken.
    let raw = concat!(
        "From: eve@example.com\r\nTo: sg@warden.test\r\nSubject: files\r\nMessage-ID: <sg2@example.com>\r\n",
        "Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n",
        "--b\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n",
        "--b\r\nContent-Type: text/plain; name=\"../../etc/passwd\"\r\n",
        "Content-Disposition: attachment; filename=\"../../etc/passwd\"\r\n\r\nroot:x:0:0\r\n",
        "--b\r\nContent-Type: text/plain\r\nContent-Disposition: attachment; filename=\"a\u{0}b.txt\"\r\n\r\nnul\r\n",
        "--b\r\nContent-Type: application/pdf; name=\"r.pdf\"\r\nContent-Transfer-Encoding: base64\r\n",
        "Content-Disposition: attachment; filename=\"r.pdf\"\r\n\r\n!!not*base64!!\r\n",
        "--b--\r\n",
    );
    let (ct, sg_raw) = form_data(&[("email", None, "text/plain", raw.as_bytes())]);
    let (status, body) = post_to(&server, "sg", sg_raw, &ct, auth).await;
    assert_eq!(
        (status, &body["status"]),
        (200, &json!("accepted")),
        "{body}"
    );

    let got = sink.until(5, 60).await;
    let ann = &to(&got, "ann@example.com")[0];
    assert!(text_of(ann).contains("from mailgun"), "{ann}");
    assert_eq!(
        header(ann, "In-Reply-To").as_deref(),
        Some("<mg1@example.com>")
    );
    assert_eq!(header(ann, "From").as_deref(), Some("mg@warden.test"));
    let bob = &to(&got, "bob@example.com")[0];
    assert!(text_of(bob).contains("from mailgun mime"), "{bob}");
    let cat = &to(&got, "cat@example.com")[0];
    assert_eq!(
        header(cat, "Subject").as_deref(),
        Some("Re: Question Bcc: eve@evil.test")
    );
    assert_eq!(header(cat, "Bcc"), None);
    assert_eq!(header(cat, "X-Evil"), None);
    // The key the mail carried was redacted before the model saw it, and
    // the reply quotes nothing of the original.
    assert!(
        !cat.contains(LEAKED_KEY) && text_of(cat).contains("[REDACTED:aws_access_key]"),
        "{cat}"
    );
    let dan = &to(&got, "dan@example.com")[0];
    assert!(text_of(dan).contains("from sendgrid"), "{dan}");
    assert_eq!(to(&got, "eve@evil.test").len(), 0);
    // The agent saw the attachments by safe names (its planner got them).
    let seen = up
        .received()
        .iter()
        .map(|r| r.to_string())
        .collect::<String>();
    assert!(
        seen.contains("[Attachment passwd (text/plain)]\\nroot:x:0:0"),
        "{seen}"
    );
    assert!(seen.contains("[Attachment ab.txt (text/plain)]"), "{seen}");
    assert!(
        seen.contains("[Attachment r.pdf (application/pdf"),
        "{seen}"
    );
    assert!(!seen.contains("../"), "{seen}");

    // Refused, each in its provider's "do not retry" (or "retry": a bad
    // key), with nothing stored.
    let before = all_inboxes(&server, &key).await;
    // (The counts are there: two empty answers would compare equal.)
    for (name, done) in [("mg", 2), ("pm", 1), ("sg", 2)] {
        assert_eq!(before[name]["done"], done, "{before}");
    }
    let signed = |ts: i64, token: &str, extra: &[(&str, &str)]| {
        let mut f = mailgun_signed(ts, token);
        f.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        urlencoded(&f)
    };
    let hi_headers = json!([["From", "ann@example.com"], ["Subject", "hi"]]).to_string();
    let mut forged = mailgun_signed(now(), &"v".repeat(50));
    forged[2].1 = warden_email::mailgun::sign(b"not-the-key", &forged[0].1, &forged[1].1);
    forged.push(("message-headers".into(), hi_headers.clone()));
    let (mp_ct, truncated) = form_data(&[(
        "body-mime",
        None,
        "text/plain",
        b"From: a@example.com\r\n\r\nhi",
    )]);
    let truncated = truncated[..truncated.len() - 20].to_vec();
    let (sg_ct, sg_truncated) = form_data(&[(
        "email",
        None,
        "text/plain",
        b"From: a@example.com\r\n\r\nhi",
    )]);
    let sg_truncated = sg_truncated[..sg_truncated.len() - 20].to_vec();
    let bad_b64 = json!({
        "FromFull": {"Email": "cat@example.com"}, "Subject": "x", "TextBody": "x",
        "Headers": [], "Attachments": [{"Name": "x.txt", "ContentType": "text/plain", "Content": "@@@"}],
    });
    let big = vec![b'a'; 30 * 1024 * 1024];
    let form = "application/x-www-form-urlencoded";
    type Case = (
        &'static str,
        &'static str,
        reqwest::Body,
        String,
        Option<(&'static str, &'static str)>,
        u16,
    );
    let cases: Vec<Case> = vec![
        (
            "mailgun: forged signature",
            "mg",
            urlencoded(&forged).into(),
            form.into(),
            None,
            401,
        ),
        (
            "mailgun: stale timestamp",
            "mg",
            signed(
                now() - 3600,
                &"w".repeat(50),
                &[("message-headers", &hi_headers)],
            )
            .into(),
            form.into(),
            None,
            401,
        ),
        (
            "mailgun: a token used again",
            "mg",
            mg_body.into(),
            form.into(),
            None,
            401,
        ),
        (
            "mailgun: no signature",
            "mg",
            urlencoded(&[("message-headers".into(), hi_headers.clone())]).into(),
            form.into(),
            None,
            401,
        ),
        (
            "mailgun: truncated multipart",
            "mg",
            truncated.into(),
            mp_ct.clone(),
            None,
            406,
        ),
        (
            "mailgun: headers not JSON",
            "mg",
            signed(now(), &"x".repeat(50), &[("message-headers", "[[")]).into(),
            form.into(),
            None,
            406,
        ),
        (
            "mailgun: 30 MiB",
            "mg",
            big.clone().into(),
            form.into(),
            None,
            406,
        ),
        (
            "postmark: wrong password",
            "pm",
            "{}".into(),
            "application/json".into(),
            Some((USER, "nope")),
            401,
        ),
        (
            "postmark: invalid base64",
            "pm",
            bad_b64.to_string().into(),
            "application/json".into(),
            auth,
            403,
        ),
        (
            "postmark: not JSON",
            "pm",
            "{\"FromFull\":".into(),
            "application/json".into(),
            auth,
            403,
        ),
        (
            "postmark: 30 MiB",
            "pm",
            big.clone().into(),
            "application/json".into(),
            auth,
            403,
        ),
        (
            "sendgrid: no credentials",
            "sg",
            "x".into(),
            sg_ct.clone(),
            None,
            401,
        ),
        (
            "sendgrid: truncated multipart",
            "sg",
            sg_truncated.into(),
            sg_ct.clone(),
            auth,
            400,
        ),
        (
            "sendgrid: not multipart",
            "sg",
            "{}".into(),
            "application/json".into(),
            auth,
            415,
        ),
        ("sendgrid: 30 MiB", "sg", big.into(), sg_ct, auth, 413),
    ];
    for (case, name, body, ct, creds, expected) in cases {
        let (status, answer) = post_to(&server, name, body, &ct, creds).await;
        assert_eq!(status, expected, "{case}: {answer}");
        assert!(answer["error"]["message"].is_string(), "{case}: {answer}");
    }
    assert_eq!(all_inboxes(&server, &key).await, before, "nothing stored");
    assert_eq!(sink.messages().len(), 5, "nothing more sent");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_approval_by_mail_opens_a_page_decides_once_on_its_button_and_is_audited() {
    let policies = policy_dir_with(&[("tickets.yaml", TICKET_APPROVAL)]);
    let up = Upstream::start().await;
    let sink = SmtpSink::start();
    let approvals = format!(
        "{BASIC}
        approvers = [\"boss@example.com\"]
        approval_secret_env = \"TEST_LINK_SECRET\"
        public_url = \"{PUBLIC_URL}\""
    );
    let mut env = env();
    env.push((
        "WARDEN_POLICIES_DIR".into(),
        policies.path().display().to_string(),
    ));
    let server = Server::start_with(Options {
        config: format!(
            "{}{}{}{}",
            up.model_config(),
            plugin_config(),
            mailbox(
                "support",
                "ticketer",
                "support@warden.test",
                &approvals,
                sink.port
            ),
            DELIVERY
        ),
        env,
        ..Options::default()
    })
    .unwrap();
    let key = server.key().to_owned();
    let agent = json!({
        "name": "ticketer", "model": "scripted", "system_prompt": "You open tickets.",
        "tools": ["warden.chatbot/create_ticket"],
    });
    let (status, body) = api(&server, Method::POST, "/agents", &key, Some(agent)).await;
    assert_eq!(status, 201, "{body}");
    let (status, _) = post_to(
        &server,
        "support",
        message("ann@example.com", "t1@example.com", "", STEP),
        "message/rfc822",
        Some((USER, PASSWORD)),
    )
    .await;
    assert_eq!(status, 200);
    let got = sink.until(2, 60).await;
    let asker = text_of(&to(&got, "ann@example.com")[0]);
    assert!(asker.contains("needs an approver's decision"), "{asker}");
    let request = &to(&got, "boss@example.com")[0];
    assert_eq!(
        header(request, "In-Reply-To"),
        None,
        "its own message, not the thread"
    );
    let text = text_of(request);
    for expected in [
        "Agent ticketer",
        "create_ticket",
        "Printer",
        "Tickets need a human.",
    ] {
        assert!(text.contains(expected), "{expected:?} in {text}");
    }
    let link = |label: &str| -> String {
        let line = text
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{label}: ")))
            .unwrap_or_else(|| panic!("no {label} link in {text}"));
        let path = line
            .strip_prefix(PUBLIC_URL)
            .expect("a link to the public URL");
        format!("{}{path}", server.base)
    };
    let (approve, reject) = (link("Approve"), link("Reject"));
    let token_of = |url: &str| url.split("token=").nth(1).unwrap().to_owned();
    let client = reqwest::Client::new();
    let run_status = || async {
        let (_, runs) = api(&server, Method::GET, "/runs?agent=ticketer", &key, None).await;
        runs["data"][0]["status"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };

    // Opening the link (as a mail scanner would, twice) decides nothing.
    for _ in 0..2 {
        let page = client.get(&approve).send().await.unwrap();
        assert_eq!(page.status(), 200);
        assert_eq!(page.headers()["cache-control"], "no-store");
        assert_eq!(page.headers()["referrer-policy"], "no-referrer");
        assert!(
            page.headers()["content-security-policy"]
                .to_str()
                .unwrap()
                .contains("default-src 'none'")
        );
        let html = page.text().await.unwrap();
        assert!(
            html.contains("create_ticket") && html.contains("method=\"post\""),
            "{html}"
        );
        assert!(html.contains("Tickets need a human."), "{html}");
    }
    assert_eq!(run_status().await, "awaiting_approval");

    // A token somebody edited, or signed with another secret, is refused.
    let token = token_of(&approve);
    let (body, _) = token.split_once('.').unwrap();
    let forged = warden_email::approval::sign(
        b"another-secret-another-secret-000000",
        &warden_email::approval::verify(LINK_SECRET.as_bytes(), &token, now()).unwrap(),
    );
    for bad in [format!("{body}.AAAA"), forged, "garbage".into()] {
        let r = client
            .post(format!("{}/channels/email/support/approval", server.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(urlencoded(&[("token".into(), bad.clone())]))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "{bad}");
    }
    assert_eq!(run_status().await, "awaiting_approval");

    // The page's button decides.
    let decide = |token: String| {
        let client = client.clone();
        let url = format!("{}/channels/email/support/approval", server.base);
        async move {
            let r = client
                .post(url)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(urlencoded(&[
                    ("token".into(), token.clone()),
                    ("reason".into(), "fine by me".into()),
                ]))
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    let (status, html) = decide(token.clone()).await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("Approved as boss@example.com"), "{html}");
    let got = sink.until(3, 60).await;
    let answer = to(&got, "ann@example.com");
    assert_eq!(answer.len(), 2);
    assert!(text_of(&answer[1]).contains("Done:"), "{}", answer[1]);
    assert_eq!(run_status().await, "completed");

    // The same link again, and the other link: decided once.
    let (status, html) = decide(token).await;
    assert_eq!(status, 409, "{html}");
    assert!(
        html.contains("already used") && html.contains("email:boss@example.com"),
        "{html}"
    );
    let (status, html) = decide(token_of(&reject)).await;
    assert_eq!(status, 409, "{html}");
    assert!(
        html.contains("Already decided by email:boss@example.com"),
        "{html}"
    );
    let page = client.get(&reject).send().await.unwrap();
    assert_eq!(page.status(), 409);

    let (_, audit) = api(&server, Method::GET, "/audit?channel=approval", &key, None).await;
    assert!(
        audit.to_string().contains("email:boss@example.com"),
        "{audit}"
    );
    assert_eq!(sink.messages().len(), 3, "nothing else was sent");
}

#[tokio::test(flavor = "multi_thread")]
async fn two_warden_instances_mailing_each_other_do_not_answer_each_other() {
    let up = Upstream::start().await;
    let sink = SmtpSink::start();
    let start_one = |name: &'static str, address: &'static str| {
        let config = format!(
            "{}{}{}",
            up.model_config(),
            mailbox(name, "waiter", address, BASIC, sink.port),
            DELIVERY
        );
        start_waiter(config)
    };
    let (a, a_key) = start_one("a", "desk@a-warden.test").await;
    let (b, b_key) = start_one("b", "desk@b-warden.test").await;
    let auth = Some((USER, PASSWORD));

    // Ann writes to A, copying B; both answer her, once each.
    let first = "From: ann@example.com\r\nTo: desk@a-warden.test\r\nCc: desk@b-warden.test\r\nSubject: hello\r\nMessage-ID: <ann1@example.com>\r\n\r\n{\"final\": \"hi ann\"}\r\n";
    for (server, name) in [(&a, "a"), (&b, "b")] {
        let (status, _) = post_to(server, name, first, "message/rfc822", auth).await;
        assert_eq!(status, 200);
    }
    let got = sink.until(2, 60).await;
    let from_a = got
        .iter()
        .find(|m| header(m, "From").as_deref() == Some("desk@a-warden.test"))
        .unwrap()
        .clone();
    let from_b = got
        .iter()
        .find(|m| header(m, "From").as_deref() == Some("desk@b-warden.test"))
        .unwrap()
        .clone();
    // Each reply reaches the other instance (a reply-all, a forward, a
    // relay): neither answers, including when a relay drops Auto-Submitted.
    // (A relay's copy under an id of its own: the same id would be a
    // duplicate, which proves nothing about the loop rules.)
    let stripped = from_a
        .lines()
        .filter(|l| !l.starts_with("Auto-Submitted:"))
        .map(|l| match l.strip_prefix("Message-ID: <") {
            Some(rest) => format!("Message-ID: <relayed.{rest}"),
            None => l.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("\r\n");
    assert!(stripped.contains("Message-ID: <relayed."), "{stripped}");
    assert_ne!(stripped.lines().count(), from_a.lines().count());
    for (server, name, raw) in [
        (&b, "b", from_a.clone()),
        (&a, "a", from_b),
        (&b, "b", stripped),
    ] {
        let (status, body) = post_to(server, name, raw, "message/rfc822", auth).await;
        assert_eq!(
            (status, body["status"].as_str()),
            (200, Some("ignored")),
            "{body}"
        );
    }
    for (server, key, ignored, other) in [
        (&a, &a_key, 1, "b-warden.test"),
        (&b, &b_key, 2, "a-warden.test"),
    ] {
        let inbox = inbox_rows(server, key).await;
        assert_eq!(inbox["ignored"], ignored, "{inbox}");
        // Each is on record with why.
        for row in server
            .sqlite_query("SELECT note FROM channel_inbox WHERE status = 'ignored'")
            .await
        {
            let note = row
                .try_get::<Option<String>>("", "note")
                .unwrap()
                .unwrap_or_default();
            assert_eq!(
                note,
                format!("another Warden instance's mail (X-Warden-Loop: {other})")
            );
        }
    }
    assert_eq!(sink.messages().len(), 2, "no instance answered the other");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_real_model_answers_mail_with_the_document_plugin_and_a_reply_continues_the_thread() {
    let sink = SmtpSink::start();
    let server = Server::start_with(Options {
        config: format!(
            "{}{}{}",
            plugin_config(),
            mailbox(
                "support",
                "document-assistant",
                "support@warden.test",
                BASIC,
                sink.port
            ),
            DELIVERY
        ),
        env: env(),
        ..Options::default()
    })
    .unwrap();
    let key = server.key().to_owned();
    let auth = Some((USER, PASSWORD));
    let (status, body) = post_to(
        &server,
        "support",
        message(
            "Ann <ann@example.com>",
            "q1@example.com",
            "",
            "Save a note titled 'Q3 plan' saying 'Ship the audit log by Friday.'",
        ),
        "message/rfc822",
        auth,
    )
    .await;
    assert_eq!(
        (status, &body["status"]),
        (200, &json!("accepted")),
        "{body}"
    );
    let got = sink.until(1, 300).await;
    let reply = &got[0];
    assert_eq!(
        header(reply, "In-Reply-To").as_deref(),
        Some("<q1@example.com>")
    );
    assert_eq!(
        header(reply, "References").as_deref(),
        Some("<q1@example.com>")
    );
    assert_eq!(header(reply, "Subject").as_deref(), Some("Re: Question"));
    assert!(
        text_of(reply).contains("agent document-assistant"),
        "{reply}"
    );
    // The document tool really ran in the sandbox.
    let (_, doc) = warden_tests::call_tool(
        &server,
        "warden.document",
        "get_document",
        json!({"id": "doc-1"}),
    )
    .await;
    assert!(doc.to_string().contains("Q3 plan"), "{doc}");

    // Ann answers the reply, quoting it: the same conversation.
    let w1 = id_of(reply);
    let (status, _) = post_to(
        &server,
        "support",
        message(
            "ann@example.com",
            "q2@example.com",
            &format!("In-Reply-To: <{w1}>\r\nReferences: <q1@example.com> <{w1}>\r\n"),
            "What was the title of the note you saved?\r\n\r\nOn Thu, 3 Dec 2026, Support wrote:\r\n> Saved.",
        ),
        "message/rfc822",
        auth,
    )
    .await;
    assert_eq!(status, 200);
    let got = sink.until(2, 300).await;
    assert_eq!(
        header(&got[1], "References").as_deref(),
        Some(format!("<q1@example.com> <{w1}> <q2@example.com>").as_str())
    );
    let turns = server
        .sqlite_query(
            "SELECT conversation_id, COUNT(*) AS n FROM channel_turns GROUP BY conversation_id",
        )
        .await;
    assert_eq!(turns.len(), 1, "one conversation");
    assert_eq!(
        turns[0].try_get::<i64>("", "n").unwrap(),
        4,
        "two exchanges"
    );
    let (_, runs) = api(
        &server,
        Method::GET,
        "/runs?agent=document-assistant",
        &key,
        None,
    )
    .await;
    let second = runs["data"][0]["input"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        second.contains("What was the title") && !second.contains("> Saved."),
        "{runs}"
    );
}
