//! Mailgun's webhook signature: `signature` is the hex HMAC-SHA256 of
//! `timestamp + token` under the webhook signing key. Compared in constant
//! time; timestamps more than [`MAX_SKEW_SECS`] away are refused. A token
//! must also never be accepted twice: the caller stores it with the
//! message (the inbox's unique key) and refuses a repeat.

use hmac::{Hmac, Mac};
use sha2::Sha256;

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
