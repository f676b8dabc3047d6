//! Approval links: a token that names one decision (approve or reject) on
//! one pause of one run, for one approver, until it expires; signed with
//! the mailbox's link secret so nobody can write one. Whether a token was
//! already used is the caller's record (the channel core's nonces): the
//! token only says what it is allowed to decide.
//!
//! A token is `base64url(claims JSON) "." base64url(HMAC-SHA256)`, where
//! the MAC covers a version tag and the encoded claims.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

const TAG: &[u8] = b"warden-approval-v1.";
/// Longer tokens are refused before they are decoded.
pub const MAX_TOKEN_LEN: usize = 2048;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    Approve,
    Reject,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Approve => "approve",
            Self::Reject => "reject",
        }
    }
}

/// What a token allows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The mailbox (connection) that asked.
    #[serde(rename = "c")]
    pub connection: String,
    #[serde(rename = "r")]
    pub run_id: String,
    /// The run's pause (its step count when it paused).
    #[serde(rename = "p")]
    pub pause: u32,
    /// The approver the link was sent to (lower-case address).
    #[serde(rename = "a")]
    pub approver: String,
    #[serde(rename = "d")]
    pub decision: Decision,
    /// Unix seconds after which the link no longer decides.
    #[serde(rename = "x")]
    pub expires: i64,
    /// Unique per link: what "used once" is recorded under.
    #[serde(rename = "n")]
    pub nonce: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the link is malformed")]
    Malformed,
    #[error("the link's signature does not match")]
    BadSignature,
    #[error("the link expired")]
    Expired,
}

pub fn sign(secret: &[u8], claims: &Claims) -> String {
    // Serialising plain strings and numbers cannot fail.
    let json = serde_json::to_vec(claims).unwrap_or_default();
    let body = B64.encode(json);
    let mac = mac(secret, &body).finalize().into_bytes();
    format!("{body}.{}", B64.encode(mac))
}

pub fn verify(secret: &[u8], token: &str, now: i64) -> Result<Claims, TokenError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(TokenError::Malformed);
    }
    let (body, tag) = token.split_once('.').ok_or(TokenError::Malformed)?;
    let tag = B64.decode(tag).map_err(|_| TokenError::Malformed)?;
    // The signature is checked (in constant time) before the claims are
    // even decoded: nothing an attacker wrote is parsed.
    mac(secret, body)
        .verify_slice(&tag)
        .map_err(|_| TokenError::BadSignature)?;
    let json = B64.decode(body).map_err(|_| TokenError::Malformed)?;
    let claims: Claims = serde_json::from_slice(&json).map_err(|_| TokenError::Malformed)?;
    if now > claims.expires {
        return Err(TokenError::Expired);
    }
    Ok(claims)
}

fn mac(secret: &[u8], body: &str) -> Hmac<Sha256> {
    // HMAC accepts keys of any length.
    let mut m = Hmac::<Sha256>::new_from_slice(secret).unwrap_or_else(|_| unreachable!());
    m.update(TAG);
    m.update(body.as_bytes());
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"a-long-random-link-secret";

    fn claims() -> Claims {
        Claims {
            connection: "support".into(),
            run_id: "run-1".into(),
            pause: 3,
            approver: "boss@example.com".into(),
            decision: Decision::Approve,
            expires: 1_000,
            nonce: "n1".into(),
        }
    }

    #[test]
    fn a_signed_link_says_what_it_decides_until_it_expires() {
        let token = sign(SECRET, &claims());
        assert_eq!(verify(SECRET, &token, 999), Ok(claims()));
        assert_eq!(verify(SECRET, &token, 1_000), Ok(claims()));
        assert_eq!(verify(SECRET, &token, 1_001), Err(TokenError::Expired));
    }

    #[test]
    fn a_link_nobody_signed_or_somebody_edited_decides_nothing() {
        let token = sign(SECRET, &claims());
        let (body, tag) = token.split_once('.').unwrap();
        // The same claims turned into a rejection, with the old signature.
        let rejected = Claims {
            decision: Decision::Reject,
            ..claims()
        };
        let edited = format!(
            "{}.{tag}",
            B64.encode(serde_json::to_vec(&rejected).unwrap())
        );
        let cases = [
            (sign(b"another-secret", &claims()), TokenError::BadSignature),
            (edited, TokenError::BadSignature),
            (
                format!("{body}.{}", B64.encode([0u8; 32])),
                TokenError::BadSignature,
            ),
            (body.to_owned(), TokenError::Malformed),
            (format!("{body}.***"), TokenError::Malformed),
            ("x".repeat(MAX_TOKEN_LEN + 1), TokenError::Malformed),
            (String::new(), TokenError::Malformed),
        ];
        for (token, expected) in cases {
            assert_eq!(verify(SECRET, &token, 0), Err(expected), "{token:.40}");
        }
    }
}
