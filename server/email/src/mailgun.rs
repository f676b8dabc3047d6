//! Mailgun's route posts. The signature: `signature` is the hex
//! HMAC-SHA256 of `timestamp + token` under the webhook signing key,
//! compared in constant time; timestamps more than [`MAX_SKEW_SECS`] away
//! are refused. A token must also never be accepted twice: the caller
//! claims it (the channel core's nonces) and refuses a repeat.
//!
//! The message: a route whose URL ends in `mime` posts the raw message as
//! `body-mime`; any other posts it parsed (`message-headers` as JSON
//! pairs, `body-plain`, `body-html`, `attachment-N` files).

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::form::Form;
use crate::inbound::{self, Inbound, Limits, Parts, RawAttachment};

pub const MAX_SKEW_SECS: i64 = 300;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the timestamp is not a number of seconds")]
    BadTimestamp,
    #[error("the timestamp is {0} s away from now (at most {MAX_SKEW_SECS} s allowed)")]
    Stale(i64),
    #[error("the token is missing or longer than 256 bytes")]
    BadToken,
    #[error("the signature is not 64 hex digits")]
    BadSignature,
    #[error("the signature does not match")]
    Mismatch,
}

pub fn verify(
    signing_key: &[u8],
    timestamp: &str,
    token: &str,
    signature: &str,
    now: i64,
) -> Result<(), SignatureError> {
    if timestamp.is_empty()
        || timestamp.len() > 12
        || !timestamp.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(SignatureError::BadTimestamp);
    }
    let ts: i64 = timestamp
        .parse()
        .map_err(|_| SignatureError::BadTimestamp)?;
    let skew = now.saturating_sub(ts);
    if skew.saturating_abs() > MAX_SKEW_SECS {
        return Err(SignatureError::Stale(skew));
    }
    if token.is_empty() || token.len() > 256 {
        return Err(SignatureError::BadToken);
    }
    let expected = (signature.len() == 64)
        .then(|| hex::decode(signature).ok())
        .flatten()
        .ok_or(SignatureError::BadSignature)?;
    let mut mac = keyed(signing_key);
    mac.update(timestamp.as_bytes());
    mac.update(token.as_bytes());
    mac.verify_slice(&expected)
        .map_err(|_| SignatureError::Mismatch)
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MailgunError {
    #[error("the post has neither body-mime nor message-headers")]
    NoMessage,
    #[error("message-headers is not a JSON list of [name, value] pairs")]
    Headers,
    #[error(transparent)]
    Parse(#[from] inbound::ParseError),
}

/// The post's `timestamp`, `token` and `signature` (empty where missing).
pub fn credentials(form: &Form) -> (String, String, String) {
    let get = |k| form.text(k).unwrap_or_default();
    (get("timestamp"), get("token"), get("signature"))
}

pub fn message(form: &Form, limits: &Limits) -> Result<Inbound, MailgunError> {
    if let Some(raw) = form.bytes("body-mime") {
        return Ok(inbound::parse(raw, limits)?);
    }
    let headers = form
        .bytes("message-headers")
        .ok_or(MailgunError::NoMessage)?;
    let mut pairs: Vec<(String, String)> =
        serde_json::from_slice(headers).map_err(|_| MailgunError::Headers)?;
    if !pairs.iter().any(|(n, _)| n.eq_ignore_ascii_case("from"))
        && let Some(from) = form.text("from")
    {
        pairs.push(("From".into(), from));
    }
    let parts = Parts {
        header_block: inbound::header_block(&pairs),
        text: form.text("body-plain"),
        html: form.text("body-html"),
        attachments: form
            .files("attachment-")
            .map(|f| RawAttachment {
                name: f.file_name.clone().unwrap_or_default(),
                content_type: f.content_type.clone().unwrap_or_default(),
                data: f.data.clone(),
            })
            .collect(),
    };
    Ok(inbound::from_parts(&parts, limits)?)
}

/// What Mailgun sends, for tests and test doubles.
pub fn sign(signing_key: &[u8], timestamp: &str, token: &str) -> String {
    let mut mac = keyed(signing_key);
    mac.update(timestamp.as_bytes());
    mac.update(token.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

fn keyed(key: &[u8]) -> Hmac<Sha256> {
    // HMAC accepts keys of any length.
    Hmac::<Sha256>::new_from_slice(key).unwrap_or_else(|_| unreachable!())
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"key-3ax6xnjp29jd6fds4gc373sgvjxteol0";
    const NOW: i64 = 1_700_000_000;

    #[test]
    fn a_signed_request_verifies_and_each_fault_is_named() {
        let ts = NOW.to_string();
        let token = "c4bfa6f3b2a94a7c9b1e0f2d5c6a7b8e9d0f1a2b3c4d5e6f70";
        let good = sign(KEY, &ts, token);
        assert_eq!(verify(KEY, &ts, token, &good, NOW), Ok(()));
        let mut flipped = good.clone().into_bytes();
        flipped[0] = if flipped[0] == b'0' { b'1' } else { b'0' };
        let flipped = String::from_utf8(flipped).unwrap();
        let old = (NOW - 301).to_string();
        let cases = [
            (
                verify(KEY, &ts, token, &flipped, NOW),
                SignatureError::Mismatch,
            ),
            (
                verify(b"another-key", &ts, token, &good, NOW),
                SignatureError::Mismatch,
            ),
            (
                verify(KEY, &ts, "other-token", &good, NOW),
                SignatureError::Mismatch,
            ),
            (
                verify(KEY, &old, token, &sign(KEY, &old, token), NOW),
                SignatureError::Stale(301),
            ),
            (
                verify(KEY, "17e8", token, &good, NOW),
                SignatureError::BadTimestamp,
            ),
            (
                verify(KEY, "", token, &good, NOW),
                SignatureError::BadTimestamp,
            ),
            (verify(KEY, &ts, "", &good, NOW), SignatureError::BadToken),
            (
                verify(KEY, &ts, token, "zz", NOW),
                SignatureError::BadSignature,
            ),
            (
                verify(KEY, &ts, token, &"g".repeat(64), NOW),
                SignatureError::BadSignature,
            ),
        ];
        for (got, expected) in cases {
            assert_eq!(got, Err(expected));
        }
    }
}
