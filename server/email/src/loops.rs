//! Mail that must never be answered, so that Warden never talks to an
//! autoresponder, a mailing list, a bounce or itself (two Warden
//! instances mailing each other stop after one message): RFC 3834
//! `Auto-Submitted`, `Precedence`, list headers, delivery reports, null
//! and daemon senders, and Warden's own addresses and loop marker.

use crate::inbound::Inbound;

/// The header Warden puts on its own mail (besides `Auto-Submitted`),
/// naming the instance, so its own mail is recognised even when a relay
/// drops `Auto-Submitted`.
pub const LOOP_HEADER: &str = "X-Warden-Loop";

/// Why a message is recorded but not answered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Skip {
    #[error("Auto-Submitted: {0}")]
    AutoSubmitted(String),
    #[error("Precedence: {0}")]
    Precedence(String),
    #[error("list mail ({0})")]
    List(&'static str),
    #[error("an autoresponder's message ({0})")]
    AutoResponder(&'static str),
    #[error("a delivery or read report")]
    Report,
    #[error("from {0}, a mail system, not a person")]
    MailSystem(String),
    #[error("our own mail")]
    OwnMail,
    #[error("another Warden instance's mail ({LOOP_HEADER}: {0})")]
    OtherWarden(String),
}

/// Local parts that belong to mail systems.
const DAEMONS: &[&str] = &[
    "mailer-daemon",
    "postmaster",
    "noreply",
    "no-reply",
    "do-not-reply",
];

/// `Ok` when the message may be answered; `own` are the addresses Warden
/// sends from.
pub fn check(m: &Inbound, own: &[String]) -> Result<(), Skip> {
    if let Some(instance) = m.header("x-warden-loop") {
        let ours = own.iter().any(|a| {
            a.rsplit_once('@')
                .is_some_and(|(_, d)| d.eq_ignore_ascii_case(instance.trim()))
        });
        return Err(if ours {
            Skip::OwnMail
        } else {
            Skip::OtherWarden(instance.trim().chars().take(100).collect())
        });
    }
    if own.iter().any(|a| a.eq_ignore_ascii_case(&m.from)) {
        return Err(Skip::OwnMail);
    }
    if let Some(v) = m.header("auto-submitted") {
        let kind = v
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if kind != "no" {
            return Err(Skip::AutoSubmitted(kind));
        }
    }
    if let Some(v) = m.header("precedence") {
        let p = v.trim().to_ascii_lowercase();
        if matches!(p.as_str(), "bulk" | "list" | "junk" | "auto_reply") {
            return Err(Skip::Precedence(p));
        }
    }
    if m.header("list-id").is_some() {
        return Err(Skip::List("List-Id"));
    }
    if m.header("list-unsubscribe").is_some() {
        return Err(Skip::List("List-Unsubscribe"));
    }
    for (h, name) in [
        ("x-autoreply", "X-Autoreply"),
        ("x-autorespond", "X-Autorespond"),
    ] {
        if m.header(h).is_some() {
            return Err(Skip::AutoResponder(name));
        }
    }
    if m.is_report {
        return Err(Skip::Report);
    }
    if m.header("return-path").is_some_and(|r| r.trim() == "<>") || m.from.is_empty() {
        return Err(Skip::MailSystem("the null sender <>".into()));
    }
    let local = m.from.split('@').next().unwrap_or("");
    if DAEMONS.contains(&local) {
        return Err(Skip::MailSystem(m.from.clone()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inbound::{Limits, parse};

    fn message(headers: &str) -> Inbound {
        let raw = format!(
            "From: Ann <ann@example.com>\r\nTo: agent@warden.test\r\nSubject: hi\r\n{headers}\r\nhello\r\n"
        );
        parse(raw.as_bytes(), &Limits::default()).unwrap()
    }

    #[test]
    fn a_person_is_answered() {
        assert_eq!(check(&message(""), &[]), Ok(()));
        assert_eq!(check(&message("Auto-Submitted: no\r\n"), &[]), Ok(()));
        assert_eq!(check(&message("Precedence: first-class\r\n"), &[]), Ok(()));
    }

    #[test]
    fn machines_lists_bounces_and_ourselves_are_not() {
        let own = vec!["agent@warden.test".to_owned()];
        let cases: Vec<(String, Skip)> = vec![
            ("Auto-Submitted: auto-replied\r\n".into(), Skip::AutoSubmitted("auto-replied".into())),
            ("Auto-Submitted: auto-generated; foo=bar\r\n".into(), Skip::AutoSubmitted("auto-generated".into())),
            ("Precedence: bulk\r\n".into(), Skip::Precedence("bulk".into())),
            ("Precedence: List\r\n".into(), Skip::Precedence("list".into())),
            ("Precedence: junk\r\n".into(), Skip::Precedence("junk".into())),
            ("List-Id: <team.lists.example.com>\r\n".into(), Skip::List("List-Id")),
            ("List-Unsubscribe: <mailto:u@example.com>\r\n".into(), Skip::List("List-Unsubscribe")),
            ("X-Autoreply: yes\r\n".into(), Skip::AutoResponder("X-Autoreply")),
            ("Return-Path: <>\r\n".into(), Skip::MailSystem("the null sender <>".into())),
            ("X-Warden-Loop: warden.test\r\n".into(), Skip::OwnMail),
            (
                "X-Warden-Loop: other-warden.test\r\n".into(),
                Skip::OtherWarden("other-warden.test".into()),
            ),
            (
                "Content-Type: multipart/report; report-type=delivery-status; boundary=\"r\"\r\n\r\n--r\r\nContent-Type: text/plain\r\n\r\nfailed\r\n--r\r\nContent-Type: message/delivery-status\r\n\r\nStatus: 5.1.1\r\n--r--\r\n".into(),
                Skip::Report,
            ),
        ];
        for (headers, expected) in cases {
            assert_eq!(
                check(&message(&headers), &own),
                Err(expected),
                "{headers:?}"
            );
        }
        let daemon = parse(
            b"From: MAILER-DAEMON@mx.example.com\r\nSubject: Undelivered\r\n\r\nsorry\r\n",
            &Limits::default(),
        )
        .unwrap();
        assert_eq!(
            check(&daemon, &own),
            Err(Skip::MailSystem("mailer-daemon@mx.example.com".into()))
        );
        let ours = parse(
            b"From: Agent@Warden.test\r\nSubject: x\r\n\r\nhi\r\n",
            &Limits::default(),
        )
        .unwrap();
        assert_eq!(check(&ours, &own), Err(Skip::OwnMail));
    }
}
