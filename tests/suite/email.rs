//! Email end to end: a real `warden` process receives raw MIME on its
//! inbound route and answers over SMTP to a real SMTP server on loopback
//! (aiosmtpd), with the scripted upstream playing the model.

use reqwest::Method;
use serde_json::{Value, json};
use warden_tests::smtp::{SmtpSink, free_port, header};
use warden_tests::upstream::Upstream;
use warden_tests::{Options, Server, api};

const USER: &str = "mail-hook";
const PASSWORD: &str = "hook-password-for-tests";

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
    ]
}

async fn start(upstream: &Upstream, smtp_port: u16) -> (Server, String) {
    let server = Server::start_with(Options {
        config: format!("{}{}", upstream.model_config(), email_config(smtp_port)),
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

async fn post(
    server: &Server,
    body: impl Into<reqwest::Body>,
    content_type: &str,
    auth: (&str, &str),
) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(format!("{}/channels/email/support/inbound", server.base))
        .basic_auth(auth.0, Some(auth.1))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .expect("inbound request");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
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
