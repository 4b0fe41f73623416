//! Combining the regex recognisers' findings with the model's.

use super::types::PiiEntity;

/// All regex findings, plus the model findings that overlap none of them, in text order.
///
/// A regex match has passed a checksum or a strict shape, so where the two disagree about a
/// span the regex wins: the model calls card numbers and SSNs PHONE and reads parts of an
/// e-mail address as names. The model's findings elsewhere (names, addresses, numbers whose
/// shape no recogniser knows) are kept.
pub(crate) fn resolve(regex: Vec<PiiEntity>, model: Vec<PiiEntity>) -> Vec<PiiEntity> {
    let mut all = regex;
    let kept: Vec<PiiEntity> = model
        .into_iter()
        .filter(|m| !all.iter().any(|r| r.overlaps(m)))
        .collect();
    all.extend(kept);
    all.sort_by_key(|e| (e.start, e.end));
    all
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::signals::pii::types::{PiiSource, PiiType};

    fn entity(kind: PiiType, start: usize, end: usize, source: PiiSource) -> PiiEntity {
        PiiEntity {
            kind,
            start,
            end,
            score: 0.9,
            source,
        }
    }

    #[test]
    fn regex_wins_overlaps_and_the_model_keeps_the_rest() {
        let regex = vec![
            entity(PiiType::CreditCard, 30, 49, PiiSource::Regex),
            entity(PiiType::Email, 60, 80, PiiSource::Regex),
        ];
        let model = vec![
            entity(PiiType::Person, 0, 10, PiiSource::Model),
            entity(PiiType::Phone, 30, 49, PiiSource::Model), // the card, misread
            entity(PiiType::Person, 60, 65, PiiSource::Model), // a name inside the e-mail
            entity(PiiType::Phone, 85, 99, PiiSource::Model), // a phone no regex matched
        ];
        let got: Vec<(PiiType, usize, PiiSource)> = resolve(regex, model)
            .iter()
            .map(|e| (e.kind, e.start, e.source))
            .collect();
        assert_eq!(
            got,
            [
                (PiiType::Person, 0, PiiSource::Model),
                (PiiType::CreditCard, 30, PiiSource::Regex),
                (PiiType::Email, 60, PiiSource::Regex),
                (PiiType::Phone, 85, PiiSource::Model),
            ]
        );
    }
}
