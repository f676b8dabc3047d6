//! Text Warden posts to Slack.
//!
//! Slack reads `&`, `<` and `>` in message text as markup: `<!channel>`
//! notifies everyone, `<https://evil|bank>` shows a link under another name,
//! `<@U123>` mentions a user. Model output is untrusted, so it is escaped
//! (Slack's own rule: exactly those three characters) before it is posted.
//! Long answers are split at paragraph, line or word boundaries so that no
//! piece exceeds a limit, and never inside an escape.

/// Characters of text in one section block (Slack's limit is 3000).
pub const SECTION_LIMIT: usize = 3000;

/// Escapes `&`, `<` and `>` as Slack requires.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

/// Undoes Slack's escaping of incoming text (`&lt;`, `&gt;`, then `&amp;`
/// last, so `&amp;lt;` stays the literal `&lt;` the user typed).
pub fn unescape(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// Splits already-escaped `text` into pieces of at most `limit` characters
/// (not bytes: Slack counts characters), preferring a paragraph break, then
/// a line break, then a space, and never cutting an `&…;` escape or a
/// character in two. `limit` below 8 is raised to 8 so an escape fits.
pub fn split(text: &str, limit: usize) -> Vec<String> {
    let limit = limit.max(8);
    let mut pieces = Vec::new();
    let mut rest = text.trim_start();
    // Byte offset just past the first `limit` characters, while more remain.
    while let Some((hard, _)) = rest.char_indices().nth(limit) {
        let window = &rest[..hard];
        let cut = ["\n\n", "\n", " "]
            .iter()
            .find_map(|sep| window.rfind(sep).filter(|&i| i > 0).map(|i| i + sep.len()))
            .unwrap_or_else(|| {
                // A cut at 0 would make no progress; a window of 8 or more
                // characters always holds a whole escape before an open one.
                open_escape(window)
                    .filter(|&i| i > 0)
                    .unwrap_or(window.len())
            });
        let (head, tail) = rest.split_at(cut);
        let head = head.trim_end();
        if !head.is_empty() {
            pieces.push(head.to_owned());
        }
        rest = tail.trim_start();
    }
    if !rest.is_empty() || pieces.is_empty() {
        pieces.push(rest.to_owned());
    }
    pieces
}

/// The first `limit` characters of `text`, never ending inside an `&…;`
/// escape or on a backtick whose guard character was cut off.
pub fn prefix(text: &str, limit: usize) -> &str {
    let end = text
        .char_indices()
        .nth(limit)
        .map_or(text.len(), |(i, _)| i);
    let mut head = &text[..end];
    if end < text.len() {
        if let Some(amp) = open_escape(head) {
            head = &head[..amp];
        }
        head = head.trim_end_matches('`');
    }
    head
}

/// Where an `&…;` escape that `text` ends inside of begins, if it does.
fn open_escape(text: &str) -> Option<usize> {
    text.rfind('&').filter(|&amp| !text[amp..].contains(';'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_in_model_output_is_inert() {
        let cases = [
            ("<!channel> meeting now", "&lt;!channel&gt; meeting now"),
            (
                "<https://evil.example|your bank>",
                "&lt;https://evil.example|your bank&gt;",
            ),
            ("<@U123> and <#C42>", "&lt;@U123&gt; and &lt;#C42&gt;"),
            ("Q&A: 1 < 2 > 0", "Q&amp;A: 1 &lt; 2 &gt; 0"),
            ("already &amp; escaped", "already &amp;amp; escaped"),
            ("plain *bold* text", "plain *bold* text"),
        ];
        for (input, want) in cases {
            assert_eq!(escape(input), want, "{input}");
        }
    }

    #[test]
    fn long_text_splits_at_the_best_boundary_within_the_limit() {
        let cases: [(&str, usize, &[&str]); 6] = [
            ("short", 100, &["short"]),
            ("", 100, &[""]),
            ("one two three four", 9, &["one two", "three", "four"]),
            (
                "para one\n\npara two is longer",
                12,
                &["para one", "para two is", "longer"],
            ),
            ("abcdefghijklmnop", 8, &["abcdefgh", "ijklmnop"]),
            // Leading blank space never makes an empty piece (Slack
            // refuses empty sections).
            (
                "  \n\nabcdefghijklmnopqrst",
                8,
                &["abcdefgh", "ijklmnop", "qrst"],
            ),
        ];
        for (text, limit, want) in cases {
            assert_eq!(split(text, limit), want, "{text:?} at {limit}");
        }
    }

    #[test]
    fn unescaping_restores_what_the_user_typed() {
        let cases = [
            ("1 &lt; 2 &gt; 0", "1 < 2 > 0"),
            ("Q&amp;A", "Q&A"),
            ("&amp;lt; is how you write &lt;", "&lt; is how you write <"),
            ("no escapes", "no escapes"),
        ];
        for (input, want) in cases {
            assert_eq!(unescape(input), want, "{input}");
            assert_eq!(unescape(&escape(want)), want, "round trip of {want}");
        }
    }

    #[test]
    fn prefixes_stop_before_escapes_and_guarded_backticks() {
        let cases = [
            ("abcdef", 10, "abcdef"),
            ("abcdef", 3, "abc"),
            ("ab&amp;cd", 5, "ab"),
            ("ab&amp;cd", 7, "ab&amp;"),
            ("ab`\u{200b}cd", 3, "ab"),
            ("éé&lt;", 4, "éé"),
            ("&amp;x", 3, ""),
        ];
        for (text, limit, want) in cases {
            assert_eq!(prefix(text, limit), want, "{text:?} at {limit}");
        }
    }

    #[test]
    fn splitting_never_cuts_an_escape_or_a_character() {
        let text = escape(&"é<>&".repeat(500));
        for limit in [8, 9, 10, 11, 13, 100, SECTION_LIMIT] {
            let pieces = split(&text, limit);
            assert!(pieces.iter().all(|p| p.chars().count() <= limit), "{limit}");
            assert_eq!(pieces.concat(), text, "{limit}: nothing lost or added");
            for p in &pieces {
                let open = p.rfind('&').map(|i| &p[i..]);
                assert!(
                    open.is_none_or(|o| o.contains(';')),
                    "{limit}: cut escape in {p:?}"
                );
            }
        }
    }
}
