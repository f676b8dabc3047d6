//! The headers of Warden's replies. Threading follows RFC 5322 §3.6.4: a
//! reply's `In-Reply-To` is the parent's `Message-ID`, its `References`
//! the parent's references (or in-reply-to) followed by the parent's id.
//! Every reply is `Auto-Submitted: auto-replied` (RFC 3834) and carries
//! [`crate::loops::LOOP_HEADER`]. Values that came from a message (the
//! subject, ids) are made single-line before they become headers.

/// Longest `References` kept (oldest ids are dropped first, the thread's
/// root is kept), so a long thread cannot grow a header without bound.
pub const MAX_REFERENCES: usize = 20;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Threading {
    /// Without angle brackets.
    pub message_id: String,
    pub in_reply_to: Option<String>,
    pub references: Vec<String>,
}

/// A new `Message-ID` (without brackets) on `domain`; `unique` must be
/// random (the caller's UUID), so ids cannot be guessed to forge a reply.
pub fn message_id(unique: &str, domain: &str) -> String {
    format!("warden.{}@{}", header_safe(unique), header_safe(domain))
}

/// How a reply to a message with `parent_id` and `parent_refs` threads.
pub fn threading(
    message_id: String,
    parent_id: Option<&str>,
    parent_refs: &[String],
    parent_in_reply_to: &[String],
) -> Threading {
    let mut references: Vec<String> = if parent_refs.is_empty() {
        parent_in_reply_to.to_vec()
    } else {
        parent_refs.to_vec()
    };
    if let Some(p) = parent_id {
        references.push(p.to_owned());
    }
    references.retain(|r| is_msg_id(r));
    references.dedup();
    if references.len() > MAX_REFERENCES {
        let root = references[0].clone();
        let tail = references.split_off(references.len() - (MAX_REFERENCES - 1));
        references = std::iter::once(root).chain(tail).collect();
    }
    Threading {
        message_id,
        in_reply_to: parent_id.filter(|p| is_msg_id(p)).map(str::to_owned),
        references,
    }
}

/// `Re: subject`, once.
pub fn subject(original: &str) -> String {
    let s = header_safe(original);
    let t = s.trim();
    if t.len() >= 3 && t[..3].eq_ignore_ascii_case("re:") {
        t.to_owned()
    } else if t.is_empty() {
        "Re: your message".into()
    } else {
        format!("Re: {t}")
    }
}

/// One line, no control characters (CR and LF included), at most 900
/// bytes: what came from a message cannot add a header line.
/// `text` safe inside HTML text and attribute values.
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

pub fn header_safe(value: &str) -> String {
    let mut out: String = value
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if out.len() > 900 {
        let mut cut = 900;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
    }
    out
}

/// `local@domain` with nothing that would break `<…>` or a header.
fn is_msg_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 250
        && id.contains('@')
        && id
            .chars()
            .all(|c| c.is_ascii_graphic() && !matches!(c, '<' | '>' | '"' | '\\' | ','))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reply_threads_under_its_parent() {
        let t = threading(
            "warden.1@w.test".into(),
            Some("m2@example.com"),
            &["m0@example.com".into(), "w1@w.test".into()],
            &[],
        );
        assert_eq!(t.in_reply_to.as_deref(), Some("m2@example.com"));
        assert_eq!(
            t.references,
            ["m0@example.com", "w1@w.test", "m2@example.com"]
        );
        // A first message: references are just the parent.
        let first = threading("warden.2@w.test".into(), Some("m0@example.com"), &[], &[]);
        assert_eq!(first.references, ["m0@example.com"]);
        // No parent id (a message without one): no In-Reply-To.
        let none = threading("warden.3@w.test".into(), None, &[], &[]);
        assert_eq!((none.in_reply_to, none.references.len()), (None, 0));
    }

    #[test]
    fn long_threads_keep_their_root_and_recent_ids() {
        let refs: Vec<String> = (0..50).map(|i| format!("m{i}@example.com")).collect();
        let t = threading("w@w.test".into(), Some("m50@example.com"), &refs, &[]);
        assert_eq!(t.references.len(), MAX_REFERENCES);
        assert_eq!(t.references[0], "m0@example.com");
        assert_eq!(t.references.last().unwrap(), "m50@example.com");
    }

    #[test]
    fn nothing_from_a_message_can_inject_a_header() {
        assert_eq!(
            subject("hi\r\nBcc: all@example.com"),
            "Re: hi  Bcc: all@example.com"
        );
        assert_eq!(subject("RE: budget"), "RE: budget");
        assert_eq!(subject(""), "Re: your message");
        let t = threading(
            "w@w.test".into(),
            Some("x@y>\r\nBcc: a@b"),
            &["ok@example.com".into(), "bad id@x".into()],
            &[],
        );
        assert_eq!(t.in_reply_to, None);
        assert_eq!(t.references, ["ok@example.com"]);
        assert_eq!(message_id("abc\r\n", "w.test"), "warden.abc  @w.test");
        assert!(header_safe(&"é".repeat(1000)).len() <= 900);
    }
}
