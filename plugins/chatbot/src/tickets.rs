//! Support tickets in the `tickets` bucket.

use serde::{Deserialize, Serialize};
use warden_sdk::{Context, JsonSchema, ToolError, kv};

const BUCKET: &str = "tickets";

#[derive(Debug, Clone, Copy, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    Low,
    Normal,
    High,
    Urgent,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Open,
    Pending,
    Resolved,
    Closed,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Note {
    at: u64,
    by: Option<String>,
    text: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Ticket {
    id: String,
    subject: String,
    description: String,
    priority: Priority,
    status: Status,
    customer: Option<String>,
    created_at: u64,
    updated_at: u64,
    #[serde(default)]
    notes: Vec<Note>,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateArgs {
    #[schemars(length(min = 1, max = 200))]
    subject: String,
    #[schemars(length(min = 1, max = 5000))]
    description: String,
    /// Default: normal.
    priority: Option<Priority>,
    /// Who the ticket is for. Only honoured when the caller acts for no
    /// particular user (an operator); otherwise it is the current user.
    customer: Option<String>,
}

pub fn create(ctx: &Context, a: CreateArgs) -> Result<Ticket, ToolError> {
    if a.subject.trim().is_empty() {
        return Err(ToolError::invalid("subject must not be empty"));
    }
    if a.subject.len() > 300 || a.description.len() > 20_000 {
        return Err(ToolError::invalid(
            "subject (300) or description (20000 bytes) too long",
        ));
    }
    let n = kv::next_id(BUCKET, "meta:next-id")?;
    let t = warden_sdk::unix_now();
    let ticket = Ticket {
        id: format!("T-{n}"),
        subject: a.subject.trim().into(),
        description: a.description,
        priority: a.priority.unwrap_or(Priority::Normal),
        status: Status::Open,
        customer: ctx.user.clone().or(a.customer),
        created_at: t,
        updated_at: t,
        notes: Vec::new(),
    };
    kv::set_json(BUCKET, &format!("ticket:{}", ticket.id), &ticket)?;
    Ok(ticket)
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IdArgs {
    /// e.g. "T-12"
    #[schemars(pattern(r"^T-[0-9]{1,9}$"))]
    id: String,
}

/// A ticket the caller may see: with a user, only that user's tickets (a
/// ticket of someone else reads as missing, so ids cannot be probed).
fn load(ctx: &Context, id: &str) -> Result<Ticket, ToolError> {
    let missing = || ToolError::not_found(format!("no ticket {id:?}"));
    let ticket: Ticket = kv::get_json(BUCKET, &format!("ticket:{id}"))?.ok_or_else(missing)?;
    if visible(ctx, &ticket) {
        Ok(ticket)
    } else {
        Err(missing())
    }
}

fn visible(ctx: &Context, t: &Ticket) -> bool {
    ctx.user.is_none() || t.customer == ctx.user
}

pub fn get(ctx: &Context, a: IdArgs) -> Result<Ticket, ToolError> {
    load(ctx, &a.id)
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListArgs {
    status: Option<Status>,
    /// Only this customer's tickets.
    customer: Option<String>,
    /// Default 20.
    limit: Option<u32>,
}

pub fn list(ctx: &Context, a: ListArgs) -> Result<Vec<Ticket>, ToolError> {
    let mut out = Vec::new();
    for k in kv::list_keys(BUCKET, "ticket:", 1000)? {
        if let Some(t) = kv::get_json::<Ticket>(BUCKET, &k)? {
            let keep = visible(ctx, &t)
                && a.status.is_none_or(|s| s == t.status)
                && a.customer
                    .as_ref()
                    .is_none_or(|c| t.customer.as_ref() == Some(c));
            if keep {
                out.push(t);
            }
        }
    }
    out.sort_by(|x, y| {
        y.created_at
            .cmp(&x.created_at)
            .then_with(|| id_number(&y.id).cmp(&id_number(&x.id)))
    });
    out.truncate(a.limit.unwrap_or(20).clamp(1, 200) as usize);
    Ok(out)
}

fn id_number(id: &str) -> u64 {
    id.trim_start_matches("T-").parse().unwrap_or(0)
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateArgs {
    #[schemars(pattern(r"^T-[0-9]{1,9}$"))]
    id: String,
    status: Option<Status>,
    priority: Option<Priority>,
    /// A note appended to the ticket's history.
    note: Option<String>,
}

pub fn update(ctx: &Context, a: UpdateArgs) -> Result<Ticket, ToolError> {
    let mut t = load(ctx, &a.id)?;
    if a.status.is_none() && a.priority.is_none() && a.note.is_none() {
        return Err(ToolError::invalid(
            "nothing to change: give status, priority or note",
        ));
    }
    if let Some(s) = a.status {
        t.status = s;
    }
    if let Some(p) = a.priority {
        t.priority = p;
    }
    if let Some(text) = a.note {
        if text.len() > 4000 {
            return Err(ToolError::invalid("note longer than 4000 bytes"));
        }
        if t.notes.len() >= 100 {
            return Err(ToolError::LimitExceeded(
                "a ticket holds at most 100 notes".into(),
            ));
        }
        t.notes.push(Note {
            at: warden_sdk::unix_now(),
            by: ctx.user.clone(),
            text,
        });
    }
    t.updated_at = warden_sdk::unix_now();
    kv::set_json(BUCKET, &format!("ticket:{}", t.id), &t)?;
    Ok(t)
}
