//! Documents in the `documents` bucket: `doc:<id>` → JSON, `meta:next-id`.

use serde::{Deserialize, Serialize};
use warden_sdk::{Context, JsonSchema, ToolError, kv};

const BUCKET: &str = "documents";
const MAX_CONTENT_BYTES: usize = 512 * 1024;
const MAX_TITLE_CHARS: usize = 200;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Document {
    pub id: String,
    pub title: String,
    pub content: String,
    #[serde(default)]
    pub tags: Vec<String>,
    pub created_at: u64,
    pub updated_at: u64,
}

#[derive(Serialize)]
pub struct Summary {
    id: String,
    title: String,
    tags: Vec<String>,
    words: usize,
    updated_at: u64,
}

impl From<&Document> for Summary {
    fn from(d: &Document) -> Self {
        Summary {
            id: d.id.clone(),
            title: d.title.clone(),
            tags: d.tags.clone(),
            words: d.content.split_whitespace().count(),
            updated_at: d.updated_at,
        }
    }
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateArgs {
    /// A short title.
    #[schemars(length(min = 1, max = 200))]
    title: String,
    /// The document body in Markdown.
    #[schemars(length(min = 1, max = 20000))]
    content: String,
    /// Optional labels for filtering.
    #[serde(default)]
    #[schemars(length(max = 10))]
    tags: Vec<String>,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateArgs {
    #[schemars(pattern(r"^doc-[0-9]{1,9}$"))]
    id: String,
    #[schemars(length(min = 1, max = 200))]
    title: Option<String>,
    #[schemars(length(min = 1, max = 20000))]
    content: Option<String>,
    tags: Option<Vec<String>>,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IdArgs {
    /// The id returned by create_document, e.g. "doc-3".
    #[schemars(pattern(r"^doc-[0-9]{1,9}$"))]
    id: String,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListArgs {
    /// Only documents carrying this tag.
    #[schemars(length(min = 1, max = 40))]
    tag: Option<String>,
    /// At most this many (default 50).
    limit: Option<u32>,
}

fn check(title: &str, content: &str, tags: &[String]) -> Result<(), ToolError> {
    if title.trim().is_empty() {
        return Err(ToolError::invalid("title must not be empty"));
    }
    if title.chars().count() > MAX_TITLE_CHARS {
        return Err(ToolError::invalid(format!(
            "title is longer than {MAX_TITLE_CHARS} characters"
        )));
    }
    if content.len() > MAX_CONTENT_BYTES {
        return Err(ToolError::invalid(format!(
            "content is {} bytes; the limit is {MAX_CONTENT_BYTES}",
            content.len()
        )));
    }
    if tags.iter().any(|t| t.trim().is_empty() || t.len() > 64) {
        return Err(ToolError::invalid("tags must be 1-64 characters"));
    }
    Ok(())
}

fn key(id: &str) -> String {
    format!("doc:{id}")
}

pub fn load(id: &str) -> Result<Document, ToolError> {
    kv::get_json(BUCKET, &key(id))?
        .ok_or_else(|| ToolError::not_found(format!("no document {id:?}")))
}

pub fn load_all() -> Result<Vec<Document>, ToolError> {
    let keys = kv::list_keys(BUCKET, "doc:", 1000)?;
    let mut docs = Vec::with_capacity(keys.len());
    for k in keys {
        if let Some(d) = kv::get_json::<Document>(BUCKET, &k)? {
            docs.push(d);
        }
    }
    Ok(docs)
}

pub fn create(_: &Context, a: CreateArgs) -> Result<Summary, ToolError> {
    check(&a.title, &a.content, &a.tags)?;
    let n = kv::next_id(BUCKET, "meta:next-id")?;
    let t = warden_sdk::unix_now();
    let doc = Document {
        id: format!("doc-{n}"),
        title: a.title.trim().to_owned(),
        content: a.content,
        tags: a.tags,
        created_at: t,
        updated_at: t,
    };
    kv::set_json(BUCKET, &key(&doc.id), &doc)?;
    Ok(Summary::from(&doc))
}

pub fn update(_: &Context, a: UpdateArgs) -> Result<Summary, ToolError> {
    let mut doc = load(&a.id)?;
    if let Some(t) = a.title {
        doc.title = t.trim().to_owned();
    }
    if let Some(c) = a.content {
        doc.content = c;
    }
    if let Some(tags) = a.tags {
        doc.tags = tags;
    }
    check(&doc.title, &doc.content, &doc.tags)?;
    doc.updated_at = warden_sdk::unix_now();
    kv::set_json(BUCKET, &key(&doc.id), &doc)?;
    Ok(Summary::from(&doc))
}

pub fn get(_: &Context, a: IdArgs) -> Result<Document, ToolError> {
    load(&a.id)
}

pub fn list(_: &Context, a: ListArgs) -> Result<Vec<Summary>, ToolError> {
    let mut docs = load_all()?;
    if let Some(tag) = &a.tag {
        docs.retain(|d| d.tags.iter().any(|t| t == tag));
    }
    docs.sort_by(|x, y| {
        y.updated_at
            .cmp(&x.updated_at)
            .then_with(|| y.id.cmp(&x.id))
    });
    docs.truncate(a.limit.unwrap_or(50).min(1000) as usize);
    Ok(docs.iter().map(Summary::from).collect())
}

#[derive(Serialize)]
pub struct Deleted {
    id: String,
    deleted: bool,
}

pub fn delete(_: &Context, a: IdArgs) -> Result<Deleted, ToolError> {
    let deleted = kv::delete(BUCKET, &key(&a.id))?;
    if !deleted {
        return Err(ToolError::not_found(format!("no document {:?}", a.id)));
    }
    Ok(Deleted { id: a.id, deleted })
}
