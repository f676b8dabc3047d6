//! SendGrid's Inbound Parse posts (always `multipart/form-data`). With
//! "send raw" the whole message is the `email` field; otherwise the header
//! block is `headers`, the bodies `text` and `html` (in the charsets the
//! `charsets` field names: SendGrid converts only the headers to UTF-8),
//! and attachments are files `attachment1`…
//!
//! SendGrid signs nothing on this webhook: the URL carries HTTP basic
//! auth, checked by the caller.

use std::collections::HashMap;

use crate::form::Form;
use crate::inbound::{self, Inbound, Limits, Parts, RawAttachment};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendgridError {
    #[error("the post has neither email nor headers")]
    NoMessage,
    #[error(transparent)]
    Parse(#[from] inbound::ParseError),
}

pub fn message(form: &Form, limits: &Limits) -> Result<Inbound, SendgridError> {
    if let Some(raw) = form.bytes("email") {
        return Ok(inbound::parse(raw, limits)?);
    }
    let headers = form.bytes("headers").ok_or(SendgridError::NoMessage)?;
    // An unreadable `charsets` is no reason to drop the mail: UTF-8 it is.
    let charsets: HashMap<String, String> = form
        .bytes("charsets")
        .and_then(|c| serde_json::from_slice(c).ok())
        .unwrap_or_default();
    let body = |field: &str| -> Option<String> {
        let data = form.bytes(field)?;
        Some(decode(data, charsets.get(field).map(String::as_str)))
    };
    let parts = Parts {
        header_block: headers.to_vec(),
        text: body("text"),
        html: body("html"),
        attachments: form
            .files("attachment")
            .map(|f| RawAttachment {
                name: f.file_name.clone().unwrap_or_default(),
                content_type: f.content_type.clone().unwrap_or_default(),
                data: f.data.clone(),
            })
            .collect(),
    };
    Ok(inbound::from_parts(&parts, limits)?)
}

/// `data` in `charset`; an unknown or missing charset is read as UTF-8,
/// with what is not UTF-8 replaced (the text stays readable, nothing is
/// dropped).
fn decode(data: &[u8], charset: Option<&str>) -> String {
    match charset.and_then(|c| mail_parser::decoders::charsets::map::charset_decoder(c.as_bytes()))
    {
        Some(decoder) => decoder(data),
        None => String::from_utf8_lossy(data).into_owned(),
    }
}
