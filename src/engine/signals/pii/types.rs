//! The PII vocabulary: which kinds of personal data the detector names, and what one finding is.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The kinds of personal data the detector reports: the canonical list, used in config, in
/// findings and as the mask text (`<EMAIL>`). Serialised as SCREAMING_SNAKE_CASE strings.
///
/// Seven kinds come from validated regular expressions (EMAIL, PHONE, CREDIT_CARD, IBAN,
/// US_SSN, IP_ADDRESS, URL); the rest from the token classifier (Rampart), whose finer labels
/// map here: GIVEN_NAME and SURNAME become one PERSON, and BUILDING_NUMBER, STREET_NAME and
/// SECONDARY_ADDRESS become one STREET_ADDRESS when they stand next to each other. EMAIL, PHONE
/// and URL come from both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PiiType {
    /// A person's name: given names and surname together ("Marie Hamanová"); titles such as
    /// "Mr." are not part of it. A lone given name or surname is a PERSON too.
    Person,
    /// An e-mail address.
    Email,
    /// A telephone number: international (`+44 20 7946 0958`) or North American
    /// (`(727) 538-7059`, `727-538-7059`).
    Phone,
    /// A payment card number that passes the Luhn check and has a known issuer prefix.
    CreditCard,
    /// An International Bank Account Number with a valid length and mod-97 checksum.
    Iban,
    /// A US Social Security number written `AAA-GG-SSSS` (or with spaces), area not 000, 666
    /// or 9xx.
    UsSsn,
    /// An IPv4 or IPv6 address.
    IpAddress,
    /// A web address (`https://...`, `www....`).
    Url,
    /// Building number, street name and secondary unit (apartment, suite) of an address.
    StreetAddress,
    /// A city or town.
    City,
    /// A state or province (name or abbreviation).
    State,
    /// A ZIP or postal code.
    ZipCode,
    /// A tax identification number.
    TaxId,
    /// A bank account number (other than an IBAN).
    BankAccount,
    /// A bank routing number.
    RoutingNumber,
    /// A government-issued identity number other than the kinds above.
    GovernmentId,
    /// A passport number.
    Passport,
    /// A driver's licence number.
    DriversLicense,
}

/// A PII type name that is not one of [`PiiType::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown PII type `{name}`; use one of: {}", PiiType::ALL.map(PiiType::as_str).join(", "))]
pub struct UnknownPiiType {
    /// The name given.
    pub name: String,
}

impl PiiType {
    /// Every type, in canonical order.
    pub const ALL: [PiiType; 18] = [
        PiiType::Person,
        PiiType::Email,
        PiiType::Phone,
        PiiType::CreditCard,
        PiiType::Iban,
        PiiType::UsSsn,
        PiiType::IpAddress,
        PiiType::Url,
        PiiType::StreetAddress,
        PiiType::City,
        PiiType::State,
        PiiType::ZipCode,
        PiiType::TaxId,
        PiiType::BankAccount,
        PiiType::RoutingNumber,
        PiiType::GovernmentId,
        PiiType::Passport,
        PiiType::DriversLicense,
    ];

    /// The canonical name, e.g. `CREDIT_CARD` (also the mask text, `<CREDIT_CARD>`).
    pub fn as_str(self) -> &'static str {
        match self {
            PiiType::Person => "PERSON",
            PiiType::Email => "EMAIL",
            PiiType::Phone => "PHONE",
            PiiType::CreditCard => "CREDIT_CARD",
            PiiType::Iban => "IBAN",
            PiiType::UsSsn => "US_SSN",
            PiiType::IpAddress => "IP_ADDRESS",
            PiiType::Url => "URL",
            PiiType::StreetAddress => "STREET_ADDRESS",
            PiiType::City => "CITY",
            PiiType::State => "STATE",
            PiiType::ZipCode => "ZIP_CODE",
            PiiType::TaxId => "TAX_ID",
            PiiType::BankAccount => "BANK_ACCOUNT",
            PiiType::RoutingNumber => "ROUTING_NUMBER",
            PiiType::GovernmentId => "GOVERNMENT_ID",
            PiiType::Passport => "PASSPORT",
            PiiType::DriversLicense => "DRIVERS_LICENSE",
        }
    }

    /// Parses a canonical name (case-insensitive), as written in config.
    pub fn parse(name: &str) -> Result<PiiType, UnknownPiiType> {
        let wanted = name.trim();
        PiiType::ALL
            .into_iter()
            .find(|t| t.as_str().eq_ignore_ascii_case(wanted))
            .ok_or_else(|| UnknownPiiType {
                name: name.to_string(),
            })
    }

    /// The type a token classifier's entity label stands for, BIO prefix removed (e.g.
    /// `GIVEN_NAME`, `EMAIL_ADDRESS`, `ZIP`); `None` for labels this detector does not report.
    /// Rampart's labels and the usual Presidio/CoNLL names are understood.
    pub fn from_model_label(label: &str) -> Option<PiiType> {
        let upper = label.trim().to_ascii_uppercase();
        Some(match upper.as_str() {
            "GIVEN_NAME" | "SURNAME" | "FIRST_NAME" | "LAST_NAME" | "MIDDLE_NAME" | "PERSON"
            | "PER" | "NAME" => PiiType::Person,
            "EMAIL" | "EMAIL_ADDRESS" => PiiType::Email,
            "PHONE" | "PHONE_NUMBER" | "TELEPHONE" | "TELEPHONENUM" => PiiType::Phone,
            "CREDIT_CARD" | "CREDIT_CARD_NUMBER" | "CREDITCARDNUMBER" => PiiType::CreditCard,
            "IBAN" | "IBAN_CODE" => PiiType::Iban,
            "SSN" | "US_SSN" | "SOCIALNUM" => PiiType::UsSsn,
            "IP" | "IP_ADDRESS" => PiiType::IpAddress,
            "URL" => PiiType::Url,
            "BUILDING_NUMBER" | "BUILDINGNUM" | "STREET_NAME" | "STREET" | "SECONDARY_ADDRESS"
            | "STREET_ADDRESS" => PiiType::StreetAddress,
            "CITY" => PiiType::City,
            "STATE" => PiiType::State,
            "ZIP_CODE" | "ZIP" | "ZIPCODE" | "POSTCODE" | "POSTAL_CODE" => PiiType::ZipCode,
            "TAX_ID" | "TAXNUM" => PiiType::TaxId,
            "BANK_ACCOUNT" | "ACCOUNTNUM" => PiiType::BankAccount,
            "ROUTING_NUMBER" => PiiType::RoutingNumber,
            "GOVERNMENT_ID" | "IDCARDNUM" => PiiType::GovernmentId,
            "PASSPORT" | "PASSPORT_NUMBER" => PiiType::Passport,
            "DRIVERS_LICENSE" | "DRIVERLICENSENUM" | "US_DRIVER_LICENSE" => PiiType::DriversLicense,
            _ => return None,
        })
    }

    /// Whether two pieces of this type separated by `gap` are one entity: a given name and a
    /// surname on one line are one PERSON; building number, street and unit separated by
    /// whitespace and at most one comma are one STREET_ADDRESS; words of a CITY or STATE
    /// separated by spaces are one name. Other types never join.
    /// The detector and the evaluation data generator share this rule.
    pub fn joins(self, gap: &str) -> bool {
        match self {
            PiiType::Person => gap
                .chars()
                .all(|c| c.is_whitespace() && c != '\n' && c != '\r'),
            PiiType::StreetAddress => {
                gap.chars().all(|c| c.is_whitespace() || c == ',')
                    && gap.chars().filter(|&c| c == ',').count() <= 1
            }
            // A place name the model split word by word ("Dot" "Lake").
            PiiType::City | PiiType::State => !gap.is_empty() && gap.chars().all(|c| c == ' '),
            _ => false,
        }
    }
}

impl fmt::Display for PiiType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which detector found an entity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PiiSource {
    /// A regular expression whose match passed its validation (checksum, ranges).
    Regex,
    /// The token classifier.
    Model,
}

/// One piece of personal data found in a text. It carries where it is, never the value itself,
/// so findings can be logged and counted without leaking what was found.
///
/// Offsets are UTF-8 byte offsets into the text given to the detector (`&text[start..end]` is
/// the value), like Rust string indices.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PiiEntity {
    /// What kind of data it is.
    pub kind: PiiType,
    /// Byte offset of its first byte.
    pub start: usize,
    /// Byte offset just past its last byte.
    pub end: usize,
    /// Confidence in [0, 1]: the mean probability of the model's label over its words, or 1.0
    /// for a regex match that passed validation.
    pub score: f32,
    /// Which detector found it.
    pub source: PiiSource,
}

impl PiiEntity {
    /// Its type and byte span, for scoring against labelled data.
    pub fn span(&self) -> PiiSpan {
        PiiSpan {
            kind: self.kind,
            start: self.start,
            end: self.end,
        }
    }

    /// Whether it shares at least one byte with `other`.
    pub fn overlaps(&self, other: &PiiEntity) -> bool {
        self.start < other.end && other.start < self.end
    }
}

/// A typed byte span: a gold label of the evaluation data, or a finding reduced to what is
/// scored. Serialised as `{"type": "EMAIL", "start": 10, "end": 27}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PiiSpan {
    /// What kind of data it is.
    #[serde(rename = "type")]
    pub kind: PiiType,
    /// Byte offset of its first byte.
    pub start: usize,
    /// Byte offset just past its last byte.
    pub end: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_through_parse_and_serde() {
        for t in PiiType::ALL {
            assert_eq!(PiiType::parse(t.as_str()), Ok(t));
            assert_eq!(PiiType::parse(&t.as_str().to_lowercase()), Ok(t));
            assert_eq!(
                serde_json::to_string(&t).unwrap(),
                format!("\"{}\"", t.as_str())
            );
            assert_eq!(t.to_string(), t.as_str());
        }
        let err = PiiType::parse("SOCIAL").unwrap_err();
        assert!(
            err.to_string().contains("`SOCIAL`") && err.to_string().contains("US_SSN"),
            "{err}"
        );
    }

    #[test]
    fn rampart_labels_map_to_the_canonical_types() {
        assert_eq!(
            PiiType::from_model_label("GIVEN_NAME"),
            Some(PiiType::Person)
        );
        assert_eq!(PiiType::from_model_label("SURNAME"), Some(PiiType::Person));
        assert_eq!(
            PiiType::from_model_label("SECONDARY_ADDRESS"),
            Some(PiiType::StreetAddress)
        );
        assert_eq!(
            PiiType::from_model_label("zip_code"),
            Some(PiiType::ZipCode)
        );
        assert_eq!(
            PiiType::from_model_label("DRIVERS_LICENSE"),
            Some(PiiType::DriversLicense)
        );
        assert_eq!(PiiType::from_model_label("O"), None);
        assert_eq!(PiiType::from_model_label("MISC"), None);
    }

    #[test]
    fn only_names_and_street_parts_join() {
        assert!(PiiType::Person.joins(" "));
        assert!(!PiiType::Person.joins(", "), "two people in a list");
        assert!(!PiiType::Person.joins("\n"), "names on separate lines");
        assert!(PiiType::StreetAddress.joins(", "));
        assert!(PiiType::StreetAddress.joins("\n "));
        assert!(!PiiType::StreetAddress.joins(", , "));
        assert!(!PiiType::StreetAddress.joins(" and "));
        assert!(PiiType::City.joins(" "), "Dot Lake");
        assert!(!PiiType::City.joins(", "), "two places");
        assert!(!PiiType::Email.joins(""));
        assert!(!PiiType::Phone.joins(" "));
    }

    #[test]
    fn spans_serialise_with_a_type_field() {
        let span = PiiSpan {
            kind: PiiType::Iban,
            start: 3,
            end: 25,
        };
        assert_eq!(
            serde_json::to_string(&span).unwrap(),
            r#"{"type":"IBAN","start":3,"end":25}"#
        );
    }
}
