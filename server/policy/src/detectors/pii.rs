//! `pii`: personal data found by pattern and confirmed by validation
//! (Luhn for cards, mod-97 for IBANs, SSA rules for SSNs, address parsing
//! for IPs), so that look-alike numbers do not match.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::LazyLock;

use regex::Regex;
use serde::Deserialize;

use super::{Span, builtin_regex, is_word_char};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PiiType {
    Email,
    Phone,
    CreditCard,
    Iban,
    UsSsn,
    Ipv4,
    Ipv6,
}

impl PiiType {
    pub const ALL: [PiiType; 7] = [
        PiiType::Email,
        PiiType::Phone,
        PiiType::CreditCard,
        PiiType::Iban,
        PiiType::UsSsn,
        PiiType::Ipv4,
        PiiType::Ipv6,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PiiType::Email => "email",
            PiiType::Phone => "phone",
            PiiType::CreditCard => "credit_card",
            PiiType::Iban => "iban",
            PiiType::UsSsn => "us_ssn",
            PiiType::Ipv4 => "ipv4",
            PiiType::Ipv6 => "ipv6",
        }
    }

    pub fn find(self, text: &str, out: &mut Vec<Span>) {
        let kind = self.as_str();
        let mut push = |s: usize, e: usize| out.push(Span::new(s, e, kind));
        match self {
            PiiType::Email => {
                if !text.contains('@') {
                    return;
                }
                for m in EMAIL.find_iter(text) {
                    if valid_email(m.as_str()) {
                        push(m.start(), m.end());
                    }
                }
            }
            PiiType::Phone => {
                for m in PHONE_INTL.find_iter(text).chain(PHONE_NANP.find_iter(text)) {
                    if valid_phone(text, m.start(), m.end()) {
                        push(m.start(), m.end());
                    }
                }
            }
            PiiType::CreditCard => {
                for m in CARD.find_iter(text) {
                    if !standalone_start(text, m.start()) {
                        continue;
                    }
                    // The longest valid prefix that ends on a group
                    // boundary: a card followed by an expiry date or a CVV
                    // is still a card.
                    let found =
                        if standalone_number(text, m.start(), m.end()) && valid_card(m.as_str()) {
                            Some(m.end())
                        } else {
                            shorter_ends(m.as_str())
                                .into_iter()
                                .find(|&e| valid_card(&m.as_str()[..e]))
                                .map(|e| m.start() + e)
                        };
                    if let Some(end) = found {
                        push(m.start(), end);
                    }
                }
            }
            PiiType::Iban => {
                for m in IBAN.find_iter(text) {
                    let candidate = m.as_str().trim_end();
                    let found = if valid_iban(candidate) {
                        Some(candidate.len())
                    } else {
                        // Words after the IBAN ("EUR", a BIC) may have been
                        // swallowed: try the length the country prescribes.
                        iban_prefix_len(candidate).filter(|&e| valid_iban(&candidate[..e]))
                    };
                    if let Some(end) = found {
                        push(m.start(), m.start() + end);
                    }
                }
            }
            PiiType::UsSsn => {
                for c in SSN.captures_iter(text) {
                    let (Some(m), Some(area), Some(group), Some(serial)) =
                        (c.get(0), c.get(1), c.get(2), c.get(3))
                    else {
                        continue;
                    };
                    if standalone_number(text, m.start(), m.end())
                        && valid_ssn(area.as_str(), group.as_str(), serial.as_str())
                    {
                        push(m.start(), m.end());
                    }
                }
            }
            PiiType::Ipv4 => {
                for m in IPV4.find_iter(text) {
                    if standalone_dotted(text, m.start(), m.end())
                        && m.as_str().parse::<Ipv4Addr>().is_ok()
                    {
                        push(m.start(), m.end());
                    }
                }
            }
            PiiType::Ipv6 => {
                if !text.contains(':') {
                    return;
                }
                for m in IPV6.find_iter(text) {
                    let s = m.as_str();
                    if s.matches(':').count() >= 2
                        && s.parse::<Ipv6Addr>().is_ok()
                        && !glued(text, m.start(), m.end())
                    {
                        push(m.start(), m.end());
                    }
                }
            }
        }
    }
}

#[derive(Debug)]
pub struct PiiDetector {
    types: Vec<PiiType>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PiiRaw {
    /// Default: all types.
    #[serde(default)]
    types: Option<Vec<PiiType>>,
}

impl<'de> Deserialize<'de> for PiiDetector {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = PiiRaw::deserialize(d)?;
        match raw.types {
            Some(t) if t.is_empty() => Err(serde::de::Error::custom(
                "pii `types` must name at least one type (or be left out for all)",
            )),
            Some(t) => Ok(PiiDetector::new(t)),
            None => Ok(PiiDetector::new(PiiType::ALL.to_vec())),
        }
    }
}

impl PiiDetector {
    pub fn new(mut types: Vec<PiiType>) -> Self {
        types.dedup();
        Self { types }
    }

    pub fn find(&self, text: &str) -> Vec<Span> {
        let mut out = Vec::new();
        for t in &self.types {
            t.find(text, &mut out);
        }
        out
    }
}

static EMAIL: LazyLock<Regex> = LazyLock::new(|| {
    builtin_regex(
        r"(?i)[a-z0-9!#$%&'*+/=?^_`{|}~.-]{1,64}@[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*\.[a-z]{2,24}\b",
    )
});
static PHONE_INTL: LazyLock<Regex> =
    LazyLock::new(|| builtin_regex(r"\+[1-9]\d{0,2}(?:[ .-]?\(?\d{1,5}\)?){2,6}"));
static PHONE_NANP: LazyLock<Regex> =
    LazyLock::new(|| builtin_regex(r"(?:\(\d{3}\) ?|\b\d{3}[.-])\d{3}[.-]\d{4}\b"));
static CARD: LazyLock<Regex> = LazyLock::new(|| builtin_regex(r"\b\d(?:[ -]?\d){12,18}\b"));
static IBAN: LazyLock<Regex> =
    LazyLock::new(|| builtin_regex(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b"));
static SSN: LazyLock<Regex> = LazyLock::new(|| builtin_regex(r"\b(\d{3})-(\d{2})-(\d{4})\b"));
static IPV4: LazyLock<Regex> =
    LazyLock::new(|| builtin_regex(r"\b\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}\b"));
static IPV6: LazyLock<Regex> = LazyLock::new(|| {
    builtin_regex(
        r"(?i)(?:[0-9a-f]{1,4}:|:)(?:[0-9a-f]{0,4}:){1,7}(?:[0-9a-f]{1,4}|(?:\d{1,3}\.){3}\d{1,3})?",
    )
});

fn valid_email(s: &str) -> bool {
    let Some((local, domain)) = s.rsplit_once('@') else {
        return false;
    };
    !local.is_empty()
        && local.len() <= 64
        && domain.len() <= 253
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
}

/// Digits only, with consistent separators, 13-19 digits, a known card
/// prefix, and a valid Luhn checksum.
fn valid_card(s: &str) -> bool {
    let seps: Vec<char> = s.chars().filter(|c| !c.is_ascii_digit()).collect();
    if seps.windows(2).any(|w| w[0] != w[1]) {
        return false;
    }
    let digits: Vec<u8> = s
        .bytes()
        .filter(u8::is_ascii_digit)
        .map(|b| b - b'0')
        .collect();
    (13..=19).contains(&digits.len()) && known_card_prefix(&digits) && luhn(&digits)
}

fn known_card_prefix(d: &[u8]) -> bool {
    let n = |k: usize| d[..k].iter().fold(0u32, |a, &x| a * 10 + u32::from(x));
    let len = d.len();
    match d[0] {
        4 => matches!(len, 13 | 16 | 19),                // Visa
        5 => (51..=55).contains(&n(2)) && len == 16,     // Mastercard
        2 => (2221..=2720).contains(&n(4)) && len == 16, // Mastercard 2-series
        3 => {
            (matches!(n(2), 34 | 37) && len == 15)                    // Amex
                || ((3528..=3589).contains(&n(4)) && (16..=19).contains(&len)) // JCB
                || ((matches!(n(2), 36 | 38 | 39) || (300..=305).contains(&n(3))) && (14..=19).contains(&len)) // Diners
        }
        6 => {
            (n(4) == 6011 || n(2) == 65 || (644..=649).contains(&n(3))) && (16..=19).contains(&len) // Discover
                || n(2) == 62 && (16..=19).contains(&len) // UnionPay
        }
        _ => false,
    }
}

pub(crate) fn luhn(digits: &[u8]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            let d = u32::from(d);
            if i % 2 == 1 {
                let x = d * 2;
                if x > 9 { x - 9 } else { x }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// Country code → IBAN length (the SWIFT registry).
const IBAN_LENGTHS: &[(&str, usize)] = &[
    ("AD", 24),
    ("AE", 23),
    ("AL", 28),
    ("AT", 20),
    ("AZ", 28),
    ("BA", 20),
    ("BE", 16),
    ("BG", 22),
    ("BH", 22),
    ("BI", 27),
    ("BR", 29),
    ("BY", 28),
    ("CH", 21),
    ("CR", 22),
    ("CY", 28),
    ("CZ", 24),
    ("DE", 22),
    ("DJ", 27),
    ("DK", 18),
    ("DO", 28),
    ("EE", 20),
    ("EG", 29),
    ("ES", 24),
    ("FI", 18),
    ("FK", 18),
    ("FO", 18),
    ("FR", 27),
    ("GB", 22),
    ("GE", 22),
    ("GI", 23),
    ("GL", 18),
    ("GR", 27),
    ("GT", 28),
    ("HR", 21),
    ("HU", 28),
    ("IE", 22),
    ("IL", 23),
    ("IQ", 23),
    ("IS", 26),
    ("IT", 27),
    ("JO", 30),
    ("KW", 30),
    ("KZ", 20),
    ("LB", 28),
    ("LC", 32),
    ("LI", 21),
    ("LT", 20),
    ("LU", 20),
    ("LV", 21),
    ("LY", 25),
    ("MC", 27),
    ("MD", 24),
    ("ME", 22),
    ("MK", 19),
    ("MN", 20),
    ("MR", 27),
    ("MT", 31),
    ("MU", 30),
    ("NI", 28),
    ("NL", 18),
    ("NO", 15),
    ("OM", 23),
    ("PK", 24),
    ("PL", 28),
    ("PS", 29),
    ("PT", 25),
    ("QA", 29),
    ("RO", 24),
    ("RS", 22),
    ("RU", 33),
    ("SA", 24),
    ("SC", 31),
    ("SD", 18),
    ("SE", 24),
    ("SI", 19),
    ("SK", 24),
    ("SM", 27),
    ("SO", 23),
    ("ST", 25),
    ("SV", 28),
    ("TL", 23),
    ("TN", 24),
    ("TR", 26),
    ("UA", 29),
    ("VA", 22),
    ("VG", 24),
    ("XK", 20),
    ("YE", 30),
];

/// Country length and the ISO 7064 mod-97 check.
pub(crate) fn valid_iban(s: &str) -> bool {
    let compact: Vec<u8> = s.bytes().filter(|b| *b != b' ').collect();
    let Some(country) = compact.get(..2).and_then(|c| std::str::from_utf8(c).ok()) else {
        return false;
    };
    let Some(&(_, len)) = IBAN_LENGTHS.iter().find(|(c, _)| *c == country) else {
        return false;
    };
    if compact.len() != len {
        return false;
    }
    let rearranged = compact[4..].iter().chain(&compact[..4]);
    let mut rem: u32 = 0;
    for &b in rearranged {
        let v = match b {
            b'0'..=b'9' => u32::from(b - b'0'),
            b'A'..=b'Z' => u32::from(b - b'A') + 10,
            _ => return false,
        };
        rem = if v >= 10 {
            (rem * 100 + v) % 97
        } else {
            (rem * 10 + v) % 97
        };
    }
    rem == 1
}

/// Area 001-899 except 666, group 01-99, serial 0001-9999, and not one of
/// the numbers published in advertising.
fn valid_ssn(area: &str, group: &str, serial: &str) -> bool {
    let (Ok(a), Ok(g), Ok(s)) = (
        area.parse::<u32>(),
        group.parse::<u32>(),
        serial.parse::<u32>(),
    ) else {
        return false;
    };
    a != 0
        && a != 666
        && a < 900
        && g != 0
        && s != 0
        && !matches!((a, g, s), (78, 5, 1120) | (219, 9, 9999))
}

/// Byte offsets inside a digit run where a shorter card could end: at each
/// separator, and (for unseparated runs) after 19 down to 13 digits;
/// longest first.
fn shorter_ends(candidate: &str) -> Vec<usize> {
    let mut ends: Vec<usize> = candidate
        .char_indices()
        .filter(|(_, c)| !c.is_ascii_digit())
        .map(|(i, _)| i)
        .collect();
    let first_sep = ends.first().copied().unwrap_or(candidate.len());
    ends.extend((13..=19).filter(|&n| n < first_sep));
    ends.sort_unstable_by(|a, b| b.cmp(a));
    ends.dedup();
    ends
}

/// The byte length of the prefix of `candidate` holding exactly as many
/// characters (spaces aside) as its country's IBAN has.
fn iban_prefix_len(candidate: &str) -> Option<usize> {
    let country = candidate.get(..2)?;
    let &(_, len) = IBAN_LENGTHS.iter().find(|(c, _)| *c == country)?;
    let mut seen = 0;
    for (i, c) in candidate.char_indices() {
        if c != ' ' {
            seen += 1;
            if seen == len {
                return Some(i + c.len_utf8());
            }
        }
    }
    None
}

fn standalone_start(text: &str, start: usize) -> bool {
    !text[..start].chars().next_back().is_some_and(is_word_char)
}

/// 8-15 digits in all (E.164); not part of a longer number.
fn valid_phone(text: &str, start: usize, end: usize) -> bool {
    let digits = text[start..end].bytes().filter(u8::is_ascii_digit).count();
    (8..=15).contains(&digits) && !glued(text, start, end)
}

/// Not preceded or followed by a digit, letter, or a separator that
/// continues a longer number.
fn standalone_number(text: &str, start: usize, end: usize) -> bool {
    let before = text[..start].chars().next_back();
    let after = text[end..].chars().next();
    let continues = |c: Option<char>, rest: &str| match c {
        Some(c) if is_word_char(c) => true,
        Some('-' | '.') => rest.chars().nth(1).is_some_and(|n| n.is_ascii_digit()),
        _ => false,
    };
    !before.is_some_and(is_word_char) && !continues(after, &text[end..])
}

/// An IPv4 address not inside a longer dotted sequence like `1.2.3.4.5`.
fn standalone_dotted(text: &str, start: usize, end: usize) -> bool {
    let before = text[..start].chars().next_back();
    let mut after = text[end..].chars();
    let a1 = after.next();
    let a2 = after.next();
    let continues = a1 == Some('.') && a2.is_some_and(|c| c.is_ascii_digit());
    before != Some('.') && !continues
}

fn glued(text: &str, start: usize, end: usize) -> bool {
    let before = text[..start].chars().next_back();
    let after = text[end..].chars().next();
    before.is_some_and(|c| c.is_alphanumeric() || c == ':')
        || after.is_some_and(|c| c.is_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(t: PiiType, text: &str) -> Vec<&str> {
        let mut out = Vec::new();
        t.find(text, &mut out);
        out.iter().map(|s| &text[s.start..s.end]).collect()
    }

    #[test]
    fn luhn_and_prefix_separate_cards_from_look_alikes() {
        assert_eq!(
            found(PiiType::CreditCard, "card 4111 1111 1111 1111."),
            ["4111 1111 1111 1111"]
        );
        assert_eq!(
            found(PiiType::CreditCard, "card 4111-1111-1111-1112"),
            Vec::<&str>::new()
        );
        assert_eq!(
            found(PiiType::CreditCard, "mixed 4111 1111-1111 1111"),
            Vec::<&str>::new()
        );
        assert_eq!(
            found(PiiType::CreditCard, "order 1234567812345670"),
            Vec::<&str>::new()
        );
    }

    #[test]
    fn cards_and_ibans_followed_by_more_numbers_are_still_found() {
        assert_eq!(
            found(PiiType::CreditCard, "card 4111 1111 1111 1111 12/27"),
            ["4111 1111 1111 1111"]
        );
        assert_eq!(
            found(PiiType::CreditCard, "card 4111 1111 1111 1111 123"),
            ["4111 1111 1111 1111"]
        );
        assert_eq!(
            found(PiiType::CreditCard, "card 4111111111111111 123"),
            ["4111111111111111"]
        );
        assert_eq!(
            found(PiiType::Iban, "IBAN DE89 3704 0044 0532 0130 00 EUR"),
            ["DE89 3704 0044 0532 0130 00"]
        );
    }

    #[test]
    fn iban_needs_country_length_and_checksum() {
        assert!(valid_iban("DE89370400440532013000"));
        assert!(valid_iban("GB82 WEST 1234 5698 7654 32"));
        assert!(!valid_iban("DE89370400440532013001"));
        assert!(!valid_iban("DE8937040044053201300"));
        assert!(!valid_iban("ZZ89370400440532013000"));
    }

    #[test]
    fn ipv6_in_prose_but_not_clock_times() {
        assert_eq!(
            found(PiiType::Ipv6, "host 2001:db8::1 is up"),
            ["2001:db8::1"]
        );
        assert_eq!(
            found(PiiType::Ipv6, "at 12:30:45 today"),
            Vec::<&str>::new()
        );
    }
}
