//! One inbound post, in its provider's format, into a message: the raw
//! MIME of `raw`, Mailgun's route post (signed, form or multipart),
//! Postmark's JSON, SendGrid's Inbound Parse multipart. The formats are
//! `warden-email`'s; here are the HTTP parts (content types, multipart
//! streaming, Mailgun's signature) and each provider's convention for "do
//! not send this again".

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode, header};

use super::EmailConnection;
use crate::api::error::ApiError;
use warden_email::config::Provider;
use warden_email::form::{Field, Form};
use warden_email::inbound::{self, Inbound, Limits};
use warden_email::{mailgun, postmark, sendgrid};

/// At most this many form fields are read from one post.
const MAX_FORM_FIELDS: usize = 1024;

/// Why a post is not taken.
pub(super) enum Refusal {
    /// The credentials (basic auth, Mailgun's signature) do not hold: the
    /// provider retries, which is what a misconfigured key needs.
    Unauthorized(String),
    /// The post will never be taken (too large, not the provider's
    /// format, not a message): answered so the provider does not retry.
    Rejected(StatusCode, String),
}

impl Refusal {
    /// The answer, in the provider's convention: Mailgun does not retry a
    /// 406, Postmark a 403; SendGrid drops any 4xx, as a raw sender should.
    pub(super) fn into_error(self, provider: Provider) -> ApiError {
        match self {
            Self::Unauthorized(why) => ApiError::unauthorized(why),
            Self::Rejected(natural, why) => {
                let status = match provider {
                    Provider::Mailgun => StatusCode::NOT_ACCEPTABLE,
                    Provider::Postmark => StatusCode::FORBIDDEN,
                    Provider::Raw | Provider::Sendgrid => natural,
                };
                let code = match natural {
                    StatusCode::PAYLOAD_TOO_LARGE => "message_too_large",
                    StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_format",
                    _ => "unreadable_message",
                };
                ApiError::new(status, "invalid_request_error", why).with_code(code)
            }
        }
    }
}

/// What a post carried: the message, and Mailgun's token (claimed by the
/// caller, once).
pub(super) struct Decoded {
    pub inbound: Inbound,
    pub mailgun_token: Option<String>,
}

fn media_type(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned()
}

fn is(content_type: &str, expected: &str) -> bool {
    content_type
        .split(';')
        .next()
        .is_some_and(|t| t.trim().eq_ignore_ascii_case(expected))
}

fn unreadable(e: impl std::fmt::Display) -> Refusal {
    Refusal::Rejected(
        StatusCode::BAD_REQUEST,
        format!("not a message Warden can read: {e}"),
    )
}

pub(super) async fn decode(
    conn: &EmailConnection,
    headers: &HeaderMap,
    body: Bytes,
    now: i64,
) -> Result<Decoded, Refusal> {
    let limits = Limits {
        max_text_attachment_bytes: conn.config.max_text_attachment_bytes,
        ..Limits::default()
    };
    let content_type = media_type(headers);
    let wrong_type = |expected: &str| {
        Refusal::Rejected(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!(
                "this mailbox takes {} posts: send {expected}",
                conn.config.provider.as_str()
            ),
        )
    };
    let inbound = match conn.config.provider {
        Provider::Raw => {
            if !is(&content_type, "message/rfc822") {
                return Err(wrong_type("the raw message as message/rfc822"));
            }
            inbound::parse(&body, &limits).map_err(unreadable)?
        }
        Provider::Postmark => {
            if !is(&content_type, "application/json") {
                return Err(wrong_type("Postmark's inbound JSON"));
            }
            postmark::message(&body, &limits).map_err(unreadable)?
        }
        Provider::Sendgrid => {
            let form = form(&content_type, body, conn.config.max_body_bytes)
                .await?
                .ok_or_else(|| wrong_type("SendGrid's multipart/form-data"))?;
            sendgrid::message(&form, &limits).map_err(unreadable)?
        }
        Provider::Mailgun => {
            let form = form(&content_type, body, conn.config.max_body_bytes)
                .await?
                .ok_or_else(|| wrong_type("Mailgun's form or multipart post"))?;
            let (timestamp, token, signature) = mailgun::credentials(&form);
            let key = conn.signing_key.as_deref().unwrap_or_default();
            mailgun::verify(key.as_bytes(), &timestamp, &token, &signature, now).map_err(|e| {
                tracing::warn!(connection = %conn.config.name, error = %e, "email: a Mailgun post failed verification");
                Refusal::Unauthorized(format!("Mailgun signature: {e}"))
            })?;
            let m = mailgun::message(&form, &limits).map_err(unreadable)?;
            return Ok(Decoded {
                inbound: m,
                mailgun_token: Some(token),
            });
        }
    };
    Ok(Decoded {
        inbound,
        mailgun_token: None,
    })
}

/// The post as a form, if it is one (`None`: another content type).
async fn form(content_type: &str, body: Bytes, limit: usize) -> Result<Option<Form>, Refusal> {
    if is(content_type, "application/x-www-form-urlencoded") {
        return Ok(Some(Form::from_urlencoded(&body)));
    }
    if !is(content_type, "multipart/form-data") {
        return Ok(None);
    }
    let boundary = multer::parse_boundary(content_type).map_err(unreadable)?;
    let limit = u64::try_from(limit).unwrap_or(u64::MAX);
    let constraints = multer::Constraints::new().size_limit(
        multer::SizeLimit::new()
            .whole_stream(limit)
            .per_field(limit),
    );
    let stream = futures::stream::once(async move { Ok::<Bytes, std::io::Error>(body) });
    let mut multipart = multer::Multipart::with_constraints(stream, boundary, constraints);
    let mut fields = Vec::new();
    while let Some(field) = multipart.next_field().await.map_err(unreadable)? {
        if fields.len() >= MAX_FORM_FIELDS {
            return Err(unreadable(format!(
                "more than {MAX_FORM_FIELDS} form fields"
            )));
        }
        let name = field.name().unwrap_or_default().to_owned();
        let file_name = field.file_name().map(str::to_owned);
        let content_type = field.content_type().map(ToString::to_string);
        let data = field.bytes().await.map_err(unreadable)?.to_vec();
        fields.push(Field {
            name,
            file_name,
            content_type,
            data,
        });
    }
    Ok(Some(Form { fields }))
}
