//! Rendering and statistics, computed inside the sandbox with pulldown-cmark.

use pulldown_cmark::{Event, HeadingLevel, Options, Parser, Tag, TagEnd, html};
use serde::{Deserialize, Serialize};
use warden_sdk::{Context, JsonSchema, ToolError};

use crate::store::load;

/// Either a stored document or inline Markdown.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Source {
    /// A stored document's id.
    id: Option<String>,
    /// Markdown text, used when no id is given.
    markdown: Option<String>,
}

impl Source {
    pub fn new(id: Option<String>, markdown: Option<String>) -> Self {
        Source { id, markdown }
    }

    pub fn text(self) -> Result<String, ToolError> {
        match (self.id, self.markdown) {
            (Some(id), None) => Ok(load(&id)?.content),
            (None, Some(md)) => Ok(md),
            (Some(_), Some(_)) => Err(ToolError::invalid("give either id or markdown, not both")),
            (None, None) => Err(ToolError::invalid("give id or markdown")),
        }
    }
}

#[derive(Serialize)]
pub struct Rendered {
    html: String,
}

pub fn render_html(_: &Context, s: Source) -> Result<Rendered, ToolError> {
    let text = s.text()?;
    let mut out = String::with_capacity(text.len() * 3 / 2);
    // Raw HTML in the source is escaped, never passed through.
    let parser = Parser::new_ext(&text, Options::all()).map(|e| match e {
        Event::Html(h) | Event::InlineHtml(h) => Event::Text(h),
        other => other,
    });
    html::push_html(&mut out, parser);
    Ok(Rendered { html: out })
}

#[derive(Debug, Serialize, PartialEq)]
pub struct Heading {
    level: u8,
    text: String,
}

#[derive(Debug, Serialize)]
pub struct Stats {
    words: usize,
    characters: usize,
    paragraphs: usize,
    headings: Vec<Heading>,
    links: usize,
    code_blocks: usize,
    reading_time_minutes: u32,
}

pub fn stats(_: &Context, s: Source) -> Result<Stats, ToolError> {
    Ok(compute(&s.text()?))
}

pub fn compute(text: &str) -> Stats {
    let mut words = 0;
    let mut paragraphs = 0;
    let mut headings = Vec::new();
    let mut links = 0;
    let mut code_blocks = 0;
    let mut current: Option<(u8, String)> = None;
    for event in Parser::new_ext(text, Options::all()) {
        match event {
            Event::Start(Tag::Heading { level, .. }) => {
                current = Some((level_number(level), String::new()))
            }
            Event::End(TagEnd::Heading(_)) => {
                if let Some((level, text)) = current.take() {
                    headings.push(Heading {
                        level,
                        text: text.trim().to_owned(),
                    });
                }
            }
            Event::Start(Tag::Paragraph) => paragraphs += 1,
            Event::Start(Tag::Link { .. }) => links += 1,
            Event::Start(Tag::CodeBlock(_)) => code_blocks += 1,
            Event::Text(t) | Event::Code(t) => {
                words += t.split_whitespace().count();
                if let Some((_, h)) = current.as_mut() {
                    h.push_str(&t);
                }
            }
            _ => {}
        }
    }
    Stats {
        words,
        characters: text.chars().count(),
        paragraphs,
        headings,
        links,
        code_blocks,
        reading_time_minutes: (words as u32).div_ceil(200).max(u32::from(words > 0)),
    }
}

fn level_number(level: HeadingLevel) -> u8 {
    match level {
        HeadingLevel::H1 => 1,
        HeadingLevel::H2 => 2,
        HeadingLevel::H3 => 3,
        HeadingLevel::H4 => 4,
        HeadingLevel::H5 => 5,
        HeadingLevel::H6 => 6,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_count_markdown_structure() {
        let s = compute(
            "# Title\n\nSome *words* here.\n\n## Part two\n\nA [link](http://x) and `code`.\n\n```\nfn x() {}\n```\n",
        );
        assert_eq!(
            s.headings,
            [
                Heading {
                    level: 1,
                    text: "Title".into()
                },
                Heading {
                    level: 2,
                    text: "Part two".into()
                }
            ]
        );
        assert_eq!((s.paragraphs, s.links, s.code_blocks), (2, 1, 1));
        assert_eq!(s.reading_time_minutes, 1);
    }

    #[test]
    fn raw_html_is_escaped() {
        let r = render_html(
            &Context::default(),
            Source {
                id: None,
                markdown: Some("hi <script>alert(1)</script>".into()),
            },
        )
        .unwrap();
        assert!(!r.html.contains("<script>"), "{}", r.html);
    }
}
