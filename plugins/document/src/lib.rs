//! The first-party document plugin: Markdown documents kept in the
//! plugin's `documents` bucket, with search, rendering, statistics and
//! LLM-backed summaries and field extraction.

mod analysis;
mod llm_tools;
mod search;
mod store;

use warden_sdk::{Effect, Plugin, Tool};

pub struct Documents;

impl Plugin for Documents {
    const ID: &'static str = "warden.document";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");

    fn tools() -> Vec<Tool> {
        vec![
            Tool::new(
                "create_document",
                "Store a new Markdown document and return its id.",
                Effect::Writes,
                store::create,
            ),
            Tool::new(
                "update_document",
                "Replace the title, content or tags of a document.",
                Effect::Writes,
                store::update,
            ),
            Tool::new(
                "get_document",
                "Fetch one document by id.",
                Effect::Reads,
                store::get,
            ),
            Tool::new(
                "list_documents",
                "List documents, newest first, optionally only those with a tag.",
                Effect::Reads,
                store::list,
            ),
            Tool::new(
                "delete_document",
                "Delete a document by id.",
                Effect::Writes,
                store::delete,
            ),
            Tool::new(
                "search_documents",
                "Keyword search over titles and contents; ranked results with snippets.",
                Effect::Reads,
                search::search,
            ),
            Tool::new(
                "render_html",
                "Render a document (by id) or Markdown text to HTML.",
                Effect::Reads,
                analysis::render_html,
            ),
            Tool::new(
                "document_stats",
                "Words, characters, headings, links, code blocks and reading time of a document or Markdown text.",
                Effect::Reads,
                analysis::stats,
            ),
            Tool::new(
                "summarize",
                "Summarise a document or text with the LLM.",
                Effect::Reads,
                llm_tools::summarize,
            ),
            Tool::new(
                "extract_fields",
                "Extract named, typed fields from a document or text with the LLM; the result always has every field.",
                Effect::Reads,
                llm_tools::extract_fields,
            ),
        ]
    }
}

warden_sdk::export_plugin!(Documents);
