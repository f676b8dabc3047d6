//! Slack's request signing, version 0: every request Slack sends carries
//! `X-Slack-Request-Timestamp` and `X-Slack-Signature`, the latter
//! `v0=` + hex(HMAC-SHA256(signing secret, `v0:{timestamp}:{raw body}`)).
//!
//! Verification runs on the raw body, before anything parses it, and
//! compares in constant time (`Mac::verify_slice`). Requests more than
//! [`MAX_SKEW_SECS`] away from now, either way, are refused so a captured
//! request cannot be replayed later. Every way a header can be wrong is its
//! own [`SignatureError`]; all of them mean "401", none of them "500".

use hmac::{Hmac, Mac};
use http::HeaderMap;
use sha2::Sha256;

/// How far a request's timestamp may be from the server's clock.
pub const MAX_SKEW_SECS: i64 = 300;

pub const TIMESTAMP_HEADER: &str = "x-slack-request-timestamp";
pub const SIGNATURE_HEADER: &str = "x-slack-signature";

/// Why a request is not accepted as coming from Slack.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("missing {0} header")]
    Missing(&'static str),
    #[error("the {0} header is sent more than once")]
    Duplicated(&'static str),
    #[error("the request timestamp is not a number of seconds")]
    BadTimestamp,
    #[error("the request timestamp is {0} s away from now (at most {MAX_SKEW_SECS} s allowed)")]
    Stale(i64),
    #[error("the signature is not v0=<64 hex digits>")]
    BadSignature,
    #[error("the signature does not match the body")]
    Mismatch,
}

/// The two signing headers of one request, each present exactly once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignedHeaders<'a> {
    pub timestamp: &'a [u8],
    pub signature: &'a [u8],
}

impl<'a> SignedHeaders<'a> {
    pub fn from_headers(headers: &'a HeaderMap) -> Result<Self, SignatureError> {
        Ok(Self {
            timestamp: single(headers, TIMESTAMP_HEADER)?,
            signature: single(headers, SIGNATURE_HEADER)?,
        })
    }
}

fn single<'a>(headers: &'a HeaderMap, name: &'static str) -> Result<&'a [u8], SignatureError> {
    let mut values = headers.get_all(name).iter();
    let first = values.next().ok_or(SignatureError::Missing(name))?;
    if values.next().is_some() {
        return Err(SignatureError::Duplicated(name));
    }
    Ok(first.as_bytes())
}

/// Checks that `body` was signed with `secret` at a time within
/// [`MAX_SKEW_SECS`] of `now` (Unix seconds).
pub fn verify(
    secret: &[u8],
    headers: SignedHeaders<'_>,
    body: &[u8],
    now: i64,
) -> Result<(), SignatureError> {
    let timestamp = parse_timestamp(headers.timestamp)?;
    let skew = now.saturating_sub(timestamp);
    if skew.saturating_abs() > MAX_SKEW_SECS {
        return Err(SignatureError::Stale(skew));
    }
    let expected = headers
        .signature
        .strip_prefix(b"v0=")
        .filter(|hex| hex.len() == 64)
        .and_then(|hex| hex::decode(hex).ok())
        .ok_or(SignatureError::BadSignature)?;
    let mut mac = keyed(secret);
    mac.update(b"v0:");
    mac.update(headers.timestamp);
    mac.update(b":");
    mac.update(body);
    mac.verify_slice(&expected)
        .map_err(|_| SignatureError::Mismatch)
}

/// The `X-Slack-Signature` value for `body` sent at `timestamp`: what Slack
/// computes, for tests and test doubles that play Slack.
pub fn sign(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let mut mac = keyed(secret);
    mac.update(format!("v0:{timestamp}:").as_bytes());
    mac.update(body);
    format!("v0={}", hex::encode(mac.finalize().into_bytes()))
}

fn keyed(secret: &[u8]) -> Hmac<Sha256> {
    // HMAC takes keys of any length (long ones are hashed first).
    Hmac::<Sha256>::new_from_slice(secret).unwrap_or_else(|_| unreachable!())
}

/// Only ASCII digits, at most 12 of them (no sign, no spaces, no
/// fractions): anything else is not what Slack sends.
fn parse_timestamp(raw: &[u8]) -> Result<i64, SignatureError> {
    if raw.is_empty() || raw.len() > 12 || !raw.iter().all(u8::is_ascii_digit) {
        return Err(SignatureError::BadTimestamp);
    }
    std::str::from_utf8(raw)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or(SignatureError::BadTimestamp)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    // The worked example in Slack's "Verifying requests from Slack"
    // documentation (also used by python-slack-sdk's signature tests).
    const SECRET: &[u8] = b"8f742231b10e8888abcd99yyyzzz85a5";
    const TIMESTAMP: &str = "1531420618";
    const BODY: &[u8] = b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
    const SIGNATURE: &str = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";
    const NOW: i64 = 1_531_420_618;

    fn headers<'a>(timestamp: &'a str, signature: &'a str) -> SignedHeaders<'a> {
        SignedHeaders {
            timestamp: timestamp.as_bytes(),
            signature: signature.as_bytes(),
        }
    }

    #[test]
    fn slacks_published_example_verifies_and_signs_the_same() {
        assert_eq!(
            verify(SECRET, headers(TIMESTAMP, SIGNATURE), BODY, NOW),
            Ok(())
        );
        assert_eq!(sign(SECRET, NOW, BODY), SIGNATURE);
    }

    #[test]
    fn each_way_of_being_wrong_has_its_own_error() {
        let mut changed_byte = BODY.to_vec();
        changed_byte[10] ^= 1;
        let other_secret = sign(b"other", NOW, BODY);
        let not_hex = SIGNATURE.replace('a', "g");
        let cases: [(&str, SignedHeaders<'_>, &[u8], i64, SignatureError); 9] = [
            (
                "one changed byte",
                headers(TIMESTAMP, SIGNATURE),
                &changed_byte,
                NOW,
                SignatureError::Mismatch,
            ),
            (
                "another secret",
                headers(TIMESTAMP, &other_secret),
                BODY,
                NOW,
                SignatureError::Mismatch,
            ),
            (
                "301 s late",
                headers(TIMESTAMP, SIGNATURE),
                BODY,
                NOW + 301,
                SignatureError::Stale(301),
            ),
            (
                "301 s early",
                headers(TIMESTAMP, SIGNATURE),
                BODY,
                NOW - 301,
                SignatureError::Stale(-301),
            ),
            (
                "timestamp with a sign",
                headers("+1531420618", SIGNATURE),
                BODY,
                NOW,
                SignatureError::BadTimestamp,
            ),
            (
                "timestamp with a fraction",
                headers("1531420618.5", SIGNATURE),
                BODY,
                NOW,
                SignatureError::BadTimestamp,
            ),
            (
                "empty timestamp",
                headers("", SIGNATURE),
                BODY,
                NOW,
                SignatureError::BadTimestamp,
            ),
            (
                "no v0= prefix",
                headers(TIMESTAMP, &SIGNATURE[3..]),
                BODY,
                NOW,
                SignatureError::BadSignature,
            ),
            (
                "not hex",
                headers(TIMESTAMP, &not_hex),
                BODY,
                NOW,
                SignatureError::BadSignature,
            ),
        ];
        for (name, h, body, now, want) in cases {
            assert_eq!(verify(SECRET, h, body, now), Err(want), "{name}");
        }
        // Hex is case-insensitive: upper-case digits are the same bytes.
        let upper = format!("v0={}", SIGNATURE[3..].to_uppercase());
        assert_eq!(
            verify(SECRET, headers(TIMESTAMP, &upper), BODY, NOW),
            Ok(())
        );
        // 300 s either way is still inside the window.
        assert_eq!(
            verify(SECRET, headers(TIMESTAMP, SIGNATURE), BODY, NOW + 300),
            Ok(())
        );
        assert_eq!(
            verify(SECRET, headers(TIMESTAMP, SIGNATURE), BODY, NOW - 300),
            Ok(())
        );
        // Absurd clocks do not overflow.
        assert!(matches!(
            verify(SECRET, headers(TIMESTAMP, SIGNATURE), BODY, i64::MIN),
            Err(SignatureError::Stale(_))
        ));
    }

    #[test]
    fn headers_must_be_present_once() {
        let mut map = HeaderMap::new();
        assert_eq!(
            SignedHeaders::from_headers(&map),
            Err(SignatureError::Missing(TIMESTAMP_HEADER))
        );
        map.insert(TIMESTAMP_HEADER, HeaderValue::from_static(TIMESTAMP));
        assert_eq!(
            SignedHeaders::from_headers(&map),
            Err(SignatureError::Missing(SIGNATURE_HEADER))
        );
        map.insert(SIGNATURE_HEADER, HeaderValue::from_static(SIGNATURE));
        let h = SignedHeaders::from_headers(&map).unwrap();
        assert_eq!(verify(SECRET, h, BODY, NOW), Ok(()));
        map.append(TIMESTAMP_HEADER, HeaderValue::from_static(TIMESTAMP));
        assert_eq!(
            SignedHeaders::from_headers(&map),
            Err(SignatureError::Duplicated(TIMESTAMP_HEADER))
        );
    }
}
