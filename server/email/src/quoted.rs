//! The new part of a reply: mail clients quote the message they answer and
//! append signatures; the agent should see what the person wrote now.
//! The full message is kept elsewhere; this only decides what is shown.

/// Lines that introduce the quoted original in common clients.
fn starts_quote(line: &str) -> bool {
    let l = line.trim();
    (l.starts_with("On ") && l.ends_with("wrote:"))
        || (l.starts_with("Le ") && l.ends_with("a écrit :"))
        || (l.starts_with("Am ") && l.ends_with("schrieb:"))
        || l.eq_ignore_ascii_case("-----Original Message-----")
        || (l.starts_with("-----") && l.to_ascii_lowercase().contains("original message"))
        || l.starts_with("________________________________")
}

/// The text before the first quote header, quoted (`>`) lines or the
/// signature delimiter (`-- `, RFC 3676), trimmed. A message that is
/// nothing but a quote keeps its text (stripping must not leave nothing to
/// answer when the person wrote between quoted lines).
pub fn strip(text: &str) -> String {
    let mut kept: Vec<&str> = Vec::new();
    for line in text.lines() {
        let bare = line.trim_end_matches('\r');
        if bare == "-- " || bare == "--" || starts_quote(bare) {
            break;
        }
        if bare.trim_start().starts_with('>') {
            continue;
        }
        kept.push(bare);
    }
    let out = kept.join("\n").trim().to_owned();
    if out.is_empty() {
        text.trim().to_owned()
    } else {
        out
    }
}

#[cfg(test)]
mod tests {
    use super::strip;

    #[test]
    fn quotes_and_signatures_are_cut_from_what_the_agent_sees() {
        let cases = [
            (
                "Thanks!\n\nOn Tue, 2 Dec 2026, Warden <a@w.test> wrote:\n> old\n",
                "Thanks!",
            ),
            ("Fine.\n-- \nAnn Lee\nACME Corp\n", "Fine."),
            (
                "Yes\r\n\r\n-----Original Message-----\r\nFrom: x\r\n",
                "Yes",
            ),
            ("> quoted\nmy answer\n> more quoted\n", "my answer"),
            (
                "Le mar. 2 déc. 2026, Warden a écrit :\n> x\n",
                "Le mar. 2 déc. 2026, Warden a écrit :\n> x",
            ),
            ("plain text\nsecond line", "plain text\nsecond line"),
        ];
        for (input, expected) in cases {
            assert_eq!(strip(input), expected, "{input:?}");
        }
    }
}
