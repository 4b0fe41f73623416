//! Regular-expression recognisers for the PII with a fixed shape: each pattern only proposes
//! candidates, and a candidate counts only once it passes its validation (Luhn and issuer prefix
//! for cards, length and mod-97 for IBANs, area/group/serial ranges for SSNs, address parsing for
//! IPs, numbering-plan rules for phones, a well-formed host for URLs) and stands apart from the
//! surrounding text.

use std::net::{Ipv4Addr, Ipv6Addr};

use regex::Regex;
use serde::{Deserialize, Serialize};

use super::types::{PiiEntity, PiiSource, PiiType};

/// One regex recogniser, named like the type it finds (`EMAIL`, `PHONE`, `CREDIT_CARD`, `IBAN`,
/// `US_SSN`, `IP_ADDRESS`, `URL`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Recognizer {
    /// E-mail addresses (Unicode letters allowed in both parts).
    Email,
    /// International numbers starting with `+` (8 to 15 digits) and North American numbers
    /// with separators or a bracketed area code; bare digit runs are left to the model.
    Phone,
    /// 13 to 19 digits, optionally grouped by one kind of separator, with a known issuer
    /// prefix and a valid Luhn check digit.
    CreditCard,
    /// IBANs in upper case, compact or in groups of four, with their country's length and a
    /// valid mod-97 checksum.
    Iban,
    /// US SSNs with separators (`AAA-GG-SSSS` or spaces); area 000, 666 and 900-999, group 00
    /// and serial 0000 are never issued and are refused. Nine bare digits are not matched.
    UsSsn,
    /// IPv4 (dotted quad, each part 0-255) and IPv6 (any form `std` parses, two groups or more).
    IpAddress,
    /// Web addresses starting with `http://`, `https://` or `www.`, with a well-formed host
    /// (the model finds these poorly); trailing sentence punctuation is left out.
    Url,
}

impl Recognizer {
    /// Every recogniser.
    pub const ALL: [Recognizer; 7] = [
        Recognizer::Email,
        Recognizer::Phone,
        Recognizer::CreditCard,
        Recognizer::Iban,
        Recognizer::UsSsn,
        Recognizer::IpAddress,
        Recognizer::Url,
    ];

    /// The type of what it finds.
    pub fn kind(self) -> PiiType {
        match self {
            Recognizer::Email => PiiType::Email,
            Recognizer::Phone => PiiType::Phone,
            Recognizer::CreditCard => PiiType::CreditCard,
            Recognizer::Iban => PiiType::Iban,
            Recognizer::UsSsn => PiiType::UsSsn,
            Recognizer::IpAddress => PiiType::IpAddress,
            Recognizer::Url => PiiType::Url,
        }
    }

    /// When two matches overlap, the lower value wins (the more specific, checksummed shape).
    fn precedence(self) -> u8 {
        match self {
            Recognizer::Email => 0,
            Recognizer::Url => 1,
            Recognizer::Iban => 2,
            Recognizer::CreditCard => 3,
            Recognizer::IpAddress => 4,
            Recognizer::UsSsn => 5,
            Recognizer::Phone => 6,
        }
    }

    /// The candidate patterns; each candidate is then checked by [`validate`].
    fn patterns(self) -> &'static [&'static str] {
        match self {
            Recognizer::Email => {
                &[r"[\p{L}\p{N}._%+\-]+@[\p{L}\p{N}\-]+(?:\.[\p{L}\p{N}\-]+)*\.\p{L}{2,}"]
            }
            Recognizer::Phone => &[
                // international: +CC, an optional (0) or area code in brackets, digit groups
                r"\+\d{1,3}(?:[ .\-]?\(\d{1,4}\))?(?:[ .\-]?\d{1,6}){1,6}",
                // North American: optional 1, area code, exchange, line
                r"(?:\+?1[ .\-]?)?(?:\(\d{3}\)[ .\-]?|\d{3}[ .\-])\d{3}[ .\-]\d{4}",
            ],
            Recognizer::CreditCard => &[r"\d(?:[ \-]?\d){12,22}"],
            Recognizer::Iban => &[r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?"],
            Recognizer::UsSsn => &[r"\b\d{3}[ \-]\d{2}[ \-]\d{4}\b"],
            Recognizer::IpAddress => &[
                r"\b(?:\d{1,3}\.){3}\d{1,3}\b",
                r"(?i)(?:[0-9a-f]{1,4})?(?::[0-9a-f]{0,4}){2,7}(?:\.\d{1,3}){0,3}",
            ],
            Recognizer::Url => &[r#"(?i)\b(?:https?://|www\.)[^\s<>"'`{}|\\^\[\]]+"#],
        }
    }
}

/// The compiled patterns of the recognisers that are switched on.
pub(crate) struct Recognizers {
    active: Vec<(Recognizer, Vec<Regex>)>,
}

impl Recognizers {
    /// Compiles the patterns of `which` (once, when the detector is built).
    pub(crate) fn new(which: &[Recognizer]) -> Result<Self, regex::Error> {
        let mut active = Vec::with_capacity(which.len());
        for &recognizer in Recognizer::ALL.iter().filter(|r| which.contains(r)) {
            let patterns = recognizer
                .patterns()
                .iter()
                .map(|p| Regex::new(p))
                .collect::<Result<_, _>>()?;
            active.push((recognizer, patterns));
        }
        Ok(Self { active })
    }

    /// Validated, non-overlapping matches in text order; on overlap the more specific
    /// recogniser wins, then the longer match.
    pub(crate) fn find(&self, text: &str) -> Vec<PiiEntity> {
        let mut candidates: Vec<(Recognizer, usize, usize)> = Vec::new();
        for (recognizer, patterns) in &self.active {
            for pattern in patterns {
                for m in pattern.find_iter(text) {
                    if let Some((start, end)) = validate(*recognizer, text, m.start(), m.end()) {
                        candidates.push((*recognizer, start, end));
                    }
                }
            }
        }
        candidates.sort_by_key(|&(r, start, end)| {
            (r.precedence(), std::cmp::Reverse(end - start), start)
        });
        let mut kept: Vec<PiiEntity> = Vec::with_capacity(candidates.len());
        for (recognizer, start, end) in candidates {
            let entity = PiiEntity {
                kind: recognizer.kind(),
                start,
                end,
                score: 1.0,
                source: PiiSource::Regex,
            };
            if !kept.iter().any(|k| k.overlaps(&entity)) {
                kept.push(entity);
            }
        }
        kept.sort_by_key(|e| e.start);
        kept
    }
}

/// The part of candidate `text[start..end]` that is a valid `recognizer` match, if any.
fn validate(
    recognizer: Recognizer,
    text: &str,
    start: usize,
    end: usize,
) -> Option<(usize, usize)> {
    match recognizer {
        Recognizer::Email => email(text, start, end),
        Recognizer::Phone => phone(text, start, end),
        Recognizer::CreditCard => credit_card(text, start, end),
        Recognizer::Iban => iban(text, start, end),
        Recognizer::UsSsn => ssn(text, start, end),
        Recognizer::IpAddress => ip_address(text, start, end),
        Recognizer::Url => url(text, start, end),
    }
}

fn before(text: &str, index: usize) -> Option<char> {
    text[..index].chars().next_back()
}

fn after(text: &str, index: usize) -> Option<char> {
    text[index..].chars().next()
}

/// True when the text goes on with a digit, directly or after one `-` or `.`: the candidate is
/// then part of a longer number.
fn continues_number(text: &str, end: usize) -> bool {
    let mut rest = text[end..].chars();
    match rest.next() {
        Some(c) if c.is_ascii_digit() => true,
        Some('-' | '.') => rest.next().is_some_and(|c| c.is_ascii_digit()),
        _ => false,
    }
}

fn email(text: &str, start: usize, end: usize) -> Option<(usize, usize)> {
    let candidate = &text[start..end];
    let at = candidate.find('@')?;
    // A local part cannot start with a dot: drop leading dots (sentence punctuation).
    let skipped = candidate[..at].len() - candidate[..at].trim_start_matches('.').len();
    let (start, local) = (start + skipped, &candidate[skipped..at]);
    let domain = &candidate[at + 1..];
    let local_ok =
        !local.is_empty() && local.len() <= 64 && !local.ends_with('.') && !local.contains("..");
    let domain_ok = domain
        .split('.')
        .all(|label| !label.is_empty() && !label.starts_with('-') && !label.ends_with('-'));
    let apart = after(text, end).is_none_or(|c| c != '@' && !c.is_alphanumeric());
    (local_ok && domain_ok && apart && end - start <= 254).then_some((start, end))
}

fn phone(text: &str, start: usize, end: usize) -> Option<(usize, usize)> {
    let candidate = &text[start..end];
    let digits: Vec<u8> = candidate
        .bytes()
        .filter(u8::is_ascii_digit)
        .map(|b| b - b'0')
        .collect();
    let apart_before = before(text, start)
        .is_none_or(|c| !c.is_alphanumeric() && !matches!(c, '+' | '-' | '.' | '/'));
    let apart_after =
        after(text, end).is_none_or(|c| !c.is_alphanumeric()) && !continues_number(text, end);
    if !(apart_before && apart_after) {
        return None;
    }
    if candidate.starts_with('+') && !candidate.starts_with("+1")
        || candidate.starts_with("+1") && digits.len() != 11
    {
        // International: E.164 allows at most 15 digits; fewer than 8 is no full number.
        return (8..=15).contains(&digits.len()).then_some((start, end));
    }
    // North American Numbering Plan: [2-9]XX [2-9]XX XXXX, optionally after a country code 1.
    let national = match digits.len() {
        10 => &digits[..],
        11 if digits[0] == 1 => &digits[1..],
        _ => return None,
    };
    (national[0] >= 2 && national[3] >= 2).then_some((start, end))
}

/// Digits and the separators between digit groups of a candidate number.
struct Groups<'a> {
    /// (byte start, byte end) of each run of digits.
    runs: Vec<(usize, usize)>,
    text: &'a str,
}

impl<'a> Groups<'a> {
    fn new(text: &'a str, start: usize, end: usize) -> Self {
        let mut runs = Vec::new();
        let mut run_start = None;
        for (i, c) in text[start..end].char_indices() {
            match (c.is_ascii_digit(), run_start) {
                (true, None) => run_start = Some(start + i),
                (false, Some(s)) => {
                    runs.push((s, start + i));
                    run_start = None;
                }
                _ => {}
            }
        }
        if let Some(s) = run_start {
            runs.push((s, end));
        }
        Self { runs, text }
    }

    /// The digits of runs `i..j`, when every separator between them is the same character.
    fn digits(&self, i: usize, j: usize) -> Option<Vec<u8>> {
        let separators: Vec<&str> = (i + 1..j)
            .map(|k| &self.text[self.runs[k - 1].1..self.runs[k].0])
            .collect();
        if separators.windows(2).any(|w| w[0] != w[1]) {
            return None;
        }
        Some(
            self.runs[i..j]
                .iter()
                .flat_map(|&(s, e)| self.text[s..e].bytes().map(|b| b - b'0'))
                .collect(),
        )
    }
}

fn credit_card(text: &str, start: usize, end: usize) -> Option<(usize, usize)> {
    let groups = Groups::new(text, start, end);
    let n = groups.runs.len();
    // The longest run of groups that is a valid card number (the candidate may have swallowed
    // a neighbouring number).
    let mut best: Option<(usize, usize)> = None;
    for i in 0..n {
        for j in (i + 1..=n).rev() {
            let (s, e) = (groups.runs[i].0, groups.runs[j - 1].1);
            if best.is_some_and(|(bs, be)| be - bs >= e - s) {
                break;
            }
            let apart = before(text, s).is_none_or(|c| !c.is_alphanumeric())
                && after(text, e).is_none_or(|c| !c.is_alphanumeric());
            if let Some(digits) = groups.digits(i, j) {
                if apart
                    && (13..=19).contains(&digits.len())
                    && luhn_valid(&digits)
                    && known_issuer(&digits)
                {
                    best = Some((s, e));
                }
            }
        }
    }
    best.filter(|&(_, e)| !continues_number(text, e))
}

/// The Luhn (mod 10) check every payment card number carries in its last digit.
pub(crate) fn luhn_valid(digits: &[u8]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            let d = u32::from(d);
            if i % 2 == 1 {
                let doubled = d * 2;
                if doubled > 9 {
                    doubled - 9
                } else {
                    doubled
                }
            } else {
                d
            }
        })
        .sum();
    !digits.is_empty() && sum.is_multiple_of(10)
}

/// Whether the number starts with an issuer prefix of a major card network at a length that
/// network issues (Visa, Mastercard, American Express, Discover, Diners, JCB, UnionPay, Maestro).
fn known_issuer(digits: &[u8]) -> bool {
    let prefix = |n: usize| {
        digits
            .iter()
            .take(n)
            .fold(0u32, |acc, &d| acc * 10 + u32::from(d))
    };
    let len = digits.len();
    match digits.first() {
        Some(4) => matches!(len, 13 | 16 | 19),
        Some(2) => (2221..=2720).contains(&prefix(4)) && len == 16,
        Some(5) => {
            ((51..=55).contains(&prefix(2)) && len == 16) || matches!(prefix(2), 50 | 56..=58)
        }
        Some(3) => match prefix(2) {
            34 | 37 => len == 15,
            36 | 38 | 39 => len >= 14,
            30 => (300..=305).contains(&prefix(3)) || prefix(4) == 3095,
            35 => (3528..=3589).contains(&prefix(4)) && len >= 16,
            _ => false,
        },
        Some(6) => len >= 16 || prefix(2) >= 60,
        _ => false,
    }
}

/// IBAN lengths by country (ISO 13616 registry).
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
    ("BR", 29),
    ("BY", 28),
    ("CH", 21),
    ("CR", 22),
    ("CY", 28),
    ("CZ", 24),
    ("DE", 22),
    ("DK", 18),
    ("DO", 28),
    ("EE", 20),
    ("EG", 29),
    ("ES", 24),
    ("FI", 18),
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
    ("MR", 27),
    ("MT", 31),
    ("MU", 30),
    ("NL", 18),
    ("NO", 15),
    ("PK", 24),
    ("PL", 28),
    ("PS", 29),
    ("PT", 25),
    ("QA", 29),
    ("RO", 24),
    ("RS", 22),
    ("SA", 24),
    ("SC", 31),
    ("SE", 24),
    ("SI", 19),
    ("SK", 24),
    ("SM", 27),
    ("ST", 25),
    ("SV", 28),
    ("TL", 23),
    ("TN", 24),
    ("TR", 26),
    ("UA", 29),
    ("VA", 22),
    ("VG", 24),
    ("XK", 20),
];

fn iban(text: &str, start: usize, end: usize) -> Option<(usize, usize)> {
    // The candidate may have taken a following word of four capitals as its last group: drop
    // trailing groups until the rest is valid.
    let mut end = end;
    loop {
        let candidate = &text[start..end];
        let apart = after(text, end).is_none_or(|c| !c.is_alphanumeric());
        if apart && iban_valid(candidate) {
            return Some((start, end));
        }
        end = start + candidate.rfind(' ')?;
    }
}

/// Country length and the ISO 7064 mod-97 check of an IBAN (spaces ignored).
pub(crate) fn iban_valid(iban: &str) -> bool {
    let compact: Vec<u8> = iban.bytes().filter(|&b| b != b' ').collect();
    let Some(country) = compact.get(..2).and_then(|c| std::str::from_utf8(c).ok()) else {
        return false;
    };
    let Some(&(_, length)) = IBAN_LENGTHS.iter().find(|(c, _)| *c == country) else {
        return false;
    };
    if compact.len() != length
        || !compact
            .iter()
            .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase())
    {
        return false;
    }
    // Move the first four characters to the end, read letters as 10..35, take the number mod 97.
    let mut remainder = 0u32;
    for &b in compact[4..].iter().chain(&compact[..4]) {
        let value = if b.is_ascii_digit() {
            u32::from(b - b'0')
        } else {
            u32::from(b - b'A') + 10
        };
        remainder = if value >= 10 {
            (remainder * 100 + value) % 97
        } else {
            (remainder * 10 + value) % 97
        };
    }
    remainder == 1
}

fn ssn(text: &str, start: usize, end: usize) -> Option<(usize, usize)> {
    let candidate = &text.as_bytes()[start..end];
    if candidate[3] != candidate[6] {
        return None;
    }
    let number = |range: std::ops::Range<usize>| {
        candidate[range]
            .iter()
            .fold(0u32, |acc, b| acc * 10 + u32::from(b - b'0'))
    };
    let (area, group, serial) = (number(0..3), number(4..6), number(7..11));
    let issued = area != 0 && area != 666 && area < 900 && group != 0 && serial != 0;
    let apart =
        before(text, start).is_none_or(|c| c != '-' && c != '.') && !continues_number(text, end);
    (issued && apart).then_some((start, end))
}

fn ip_address(text: &str, start: usize, end: usize) -> Option<(usize, usize)> {
    let candidate = &text[start..end];
    if candidate.contains(':') {
        let groups = candidate.split(':').filter(|g| !g.is_empty()).count();
        let apart = before(text, start)
            .is_none_or(|c| !c.is_alphanumeric() && c != ':' && c != '.')
            && after(text, end).is_none_or(|c| !c.is_alphanumeric() && c != ':');
        return (groups >= 2 && apart && candidate.parse::<Ipv6Addr>().is_ok())
            .then_some((start, end));
    }
    let apart = before(text, start).is_none_or(|c| c != '.') && !continues_number(text, end);
    (apart && candidate.parse::<Ipv4Addr>().is_ok()).then_some((start, end))
}

fn url(text: &str, start: usize, end: usize) -> Option<(usize, usize)> {
    // Sentence punctuation after an address is not part of it (a closing bracket is, when the
    // address opened one).
    let mut end = end;
    while let Some(c) = text[start..end].chars().next_back() {
        let kept = &text[start..end];
        let bracket_of_its_own = c == ')' && kept.matches('(').count() >= kept.matches(')').count();
        if matches!(c, '.' | ',' | ';' | ':' | '!' | '?' | ')' | '\'' | '"') && !bracket_of_its_own
        {
            end -= c.len_utf8();
        } else {
            break;
        }
    }
    let candidate = &text[start..end];
    let rest = candidate
        .split_once("://")
        .map_or(candidate, |(_, rest)| rest);
    let authority = rest.split(['/', '?', '#']).next()?;
    let host_port = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    let host = host_port.split(':').next()?;
    if host.parse::<Ipv4Addr>().is_ok() {
        return Some((start, end));
    }
    let labels: Vec<&str> = host.split('.').collect();
    let well_formed = labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_alphanumeric() || c == '-')
        })
        && labels
            .last()
            .is_some_and(|tld| tld.chars().count() >= 2 && tld.chars().all(char::is_alphabetic));
    well_formed.then_some((start, end))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn find(recognizer: Recognizer, text: &str) -> Vec<&str> {
        Recognizers::new(&[recognizer])
            .unwrap()
            .find(text)
            .iter()
            .map(|e| &text[e.start..e.end])
            .collect()
    }

    fn all(text: &str) -> Vec<(PiiType, &str)> {
        Recognizers::new(&Recognizer::ALL)
            .unwrap()
            .find(text)
            .iter()
            .map(|e| (e.kind, &text[e.start..e.end]))
            .collect()
    }

    #[test]
    fn emails() {
        assert_eq!(
            find(Recognizer::Email, "Mail MarieHamanova@armyspy.com, please."),
            ["MarieHamanova@armyspy.com"]
        );
        assert_eq!(
            find(Recognizer::Email, "to jürgen.müller@example.de."),
            ["jürgen.müller@example.de"]
        );
        assert_eq!(
            find(Recognizer::Email, "a.b+tag@mail.co.uk"),
            ["a.b+tag@mail.co.uk"]
        );
        assert!(find(
            Recognizer::Email,
            "not@an-address, a..b@x.com, john@x.c, @handle"
        )
        .is_empty());
        assert!(find(Recognizer::Email, "user@-bad.com").is_empty());
    }

    #[test]
    fn phones_international_and_north_american() {
        for phone in [
            "+44 20 7946 0958",
            "+351 21 259 903 5696",
            "+41 44 668 18 00",
            "+1 727-538-7059",
            "+33 (0)1 42 68 53 00",
        ] {
            assert_eq!(
                find(Recognizer::Phone, &format!("call {phone} today")),
                [phone],
                "{phone}"
            );
        }
        for phone in [
            "(727) 538-7059",
            "727-538-7059",
            "727.538.7059",
            "1-800-555-0199",
            "(212)555-0100",
        ] {
            assert_eq!(
                find(Recognizer::Phone, &format!("call {phone}.")),
                [phone],
                "{phone}"
            );
        }
        // area or exchange codes starting with 0 or 1 do not exist; too few digits; bare runs
        for not in [
            "123-456-7890",
            "727-038-7059",
            "+44 123",
            "7275387059",
            "2023-01-15",
            "v1.727.538.7059",
        ] {
            assert!(
                find(Recognizer::Phone, &format!("see {not} now")).is_empty(),
                "{not}"
            );
        }
    }

    #[test]
    fn credit_cards_need_luhn_and_an_issuer() {
        for card in [
            "4111 1111 1111 1111",
            "4111-1111-1111-1111",
            "5500005555555559",
            "3782 822463 10005",
            "6011 0009 9013 9424",
        ] {
            assert_eq!(
                find(Recognizer::CreditCard, &format!("card {card} expired")),
                [card],
                "{card}"
            );
        }
        assert!(
            find(Recognizer::CreditCard, "card 4111 1111 1111 1112").is_empty(),
            "Luhn failure"
        );
        assert!(
            find(Recognizer::CreditCard, "id 1234 5678 9012 3452").is_empty(),
            "Luhn-valid but no issuer starts with 1"
        );
        assert!(
            find(Recognizer::CreditCard, "4111 1111-1111 1111").is_empty(),
            "mixed separators"
        );
        // A neighbouring number swallowed by the candidate is cut away again.
        assert_eq!(
            find(Recognizer::CreditCard, "ref 12 4111 1111 1111 1111"),
            ["4111 1111 1111 1111"]
        );
        assert!(
            luhn_valid(&[7, 9, 9, 2, 7, 3, 9, 8, 7, 1, 3])
                && !luhn_valid(&[7, 9, 9, 2, 7, 3, 9, 8, 7, 1, 4])
        );
    }

    #[test]
    fn ibans_need_their_country_length_and_checksum() {
        for iban in [
            "DE89 3704 0044 0532 0130 00",
            "DE89370400440532013000",
            "GB82 WEST 1234 5698 7654 32",
            "FR14 2004 1010 0505 0001 3M02 606",
            "NO93 8601 1117 947",
        ] {
            assert_eq!(
                find(Recognizer::Iban, &format!("IBAN {iban} please")),
                [iban],
                "{iban}"
            );
        }
        assert!(
            find(Recognizer::Iban, "DE89 3704 0044 0532 0130 01").is_empty(),
            "bad checksum"
        );
        assert!(
            find(Recognizer::Iban, "DE89 3704 0044 0532 0130").is_empty(),
            "too short for DE"
        );
        assert!(
            find(Recognizer::Iban, "XX89 3704 0044 0532 0130 00").is_empty(),
            "no such country"
        );
        assert_eq!(
            find(Recognizer::Iban, "BE68 5390 0754 7034 WIRE today"),
            ["BE68 5390 0754 7034"],
            "a trailing word is dropped"
        );
        assert!(iban_valid("GB82WEST12345698765432") && !iban_valid("GB82WEST12345698765433"));
    }

    #[test]
    fn us_ssns_refuse_unissued_numbers() {
        assert_eq!(find(Recognizer::UsSsn, "SSN 591-28-5104."), ["591-28-5104"]);
        assert_eq!(find(Recognizer::UsSsn, "SSN 591 28 5104"), ["591 28 5104"]);
        for not in [
            "000-12-3456",
            "666-12-3456",
            "900-12-3456",
            "123-00-4567",
            "123-45-0000",
            "123-45 6789",
            "591285104",
            "1-591-28-5104",
        ] {
            assert!(
                find(Recognizer::UsSsn, &format!("SSN {not}")).is_empty(),
                "{not}"
            );
        }
    }

    #[test]
    fn ip_addresses() {
        assert_eq!(
            find(Recognizer::IpAddress, "blocked from 192.168.0.17."),
            ["192.168.0.17"]
        );
        assert_eq!(
            find(
                Recognizer::IpAddress,
                "host 2001:db8::8a2e:370:7334 is down"
            ),
            ["2001:db8::8a2e:370:7334"]
        );
        assert_eq!(
            find(Recognizer::IpAddress, "::ffff:192.0.2.128"),
            ["::ffff:192.0.2.128"]
        );
        assert_eq!(find(Recognizer::IpAddress, "fe80::1"), ["fe80::1"]);
        for not in [
            "999.1.1.1",
            "1.2.3.4.5",
            "10.0.0",
            "12:30:45",
            "std::vector",
            "00:1A:2B:3C:4D:5E",
            "::1",
        ] {
            assert!(
                find(Recognizer::IpAddress, &format!("see {not} now")).is_empty(),
                "{not}"
            );
        }
    }

    #[test]
    fn urls_need_a_host() {
        for url in [
            "https://www.example.com",
            "http://balancingweight.it/photos/61417",
            "www.bidstrong.co.za",
            "https://shop.example.org:8443/a?b=c#d",
            "http://10.0.0.1/admin",
        ] {
            assert_eq!(
                find(Recognizer::Url, &format!("see {url}.")),
                [url],
                "{url}"
            );
        }
        assert_eq!(
            find(Recognizer::Url, "(https://en.wikipedia.org/wiki/Foo_(bar))"),
            ["https://en.wikipedia.org/wiki/Foo_(bar)"]
        );
        assert_eq!(
            find(Recognizer::Url, "visit https://example.com/x, then"),
            ["https://example.com/x"]
        );
        for not in [
            "www.",
            "http://localhost/x",
            "https://example.c",
            "https://-bad-.com",
            "wwwexample.com",
        ] {
            assert!(
                find(Recognizer::Url, &format!("see {not} now")).is_empty(),
                "{not}"
            );
        }
    }

    #[test]
    fn overlapping_matches_go_to_the_more_specific_recogniser() {
        let text = "card 4111 1111 1111 1111, ssn 591-28-5104, iban DE89370400440532013000, call (727) 538-7059, ip 10.1.2.3";
        assert_eq!(
            all(text),
            [
                (PiiType::CreditCard, "4111 1111 1111 1111"),
                (PiiType::UsSsn, "591-28-5104"),
                (PiiType::Iban, "DE89370400440532013000"),
                (PiiType::Phone, "(727) 538-7059"),
                (PiiType::IpAddress, "10.1.2.3"),
            ]
        );
        let only = Recognizers::new(&[Recognizer::Email]).unwrap();
        assert!(
            only.find(text).is_empty(),
            "switched-off recognisers find nothing"
        );
    }
}
