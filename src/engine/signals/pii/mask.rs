//! The masked text: every entity replaced by its type in angle brackets, e.g. `<EMAIL>`, so a
//! prompt can be forwarded or logged without the values it carried.

use super::types::PiiEntity;

/// `text` with each entity's span replaced by `<TYPE>`. Entities are taken in text order; one
/// that overlaps an earlier one, or whose offsets do not fit `text`, is left out rather than
/// corrupting the output (the detector never produces either).
pub fn mask(text: &str, entities: &[PiiEntity]) -> String {
    let mut sorted: Vec<&PiiEntity> = entities.iter().collect();
    sorted.sort_by_key(|e| (e.start, e.end));
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    for entity in sorted {
        if entity.start < copied
            || entity.start >= entity.end
            || text.get(entity.start..entity.end).is_none()
        {
            continue;
        }
        out.push_str(&text[copied..entity.start]);
        out.push('<');
        out.push_str(entity.kind.as_str());
        out.push('>');
        copied = entity.end;
    }
    out.push_str(&text[copied..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::signals::pii::types::{PiiSource, PiiType};

    fn entity(kind: PiiType, start: usize, end: usize) -> PiiEntity {
        PiiEntity {
            kind,
            start,
            end,
            score: 1.0,
            source: PiiSource::Regex,
        }
    }

    #[test]
    fn each_entity_becomes_its_type() {
        let text = "I am Zoë Brandt, mail zoe@example.com or call +44 20 7946 0958.";
        let name = text.find("Zoë").unwrap();
        let email = text.find("zoe@").unwrap();
        let phone = text.find("+44").unwrap();
        let entities = [
            entity(PiiType::Phone, phone, phone + "+44 20 7946 0958".len()),
            entity(PiiType::Person, name, name + "Zoë Brandt".len()),
            entity(PiiType::Email, email, email + "zoe@example.com".len()),
        ];
        assert_eq!(
            mask(text, &entities),
            "I am <PERSON>, mail <EMAIL> or call <PHONE>."
        );
    }

    #[test]
    fn adjacent_entities_text_edges_and_nothing_found() {
        assert_eq!(mask("abc", &[]), "abc");
        assert_eq!(mask("", &[]), "");
        let whole = [entity(PiiType::City, 0, 5), entity(PiiType::State, 5, 7)];
        assert_eq!(mask("ParisTX", &whole), "<CITY><STATE>");
    }

    #[test]
    fn overlapping_or_invalid_spans_never_corrupt_the_text() {
        let text = "Zoë lives here";
        let entities = [
            entity(PiiType::Person, 0, 4),
            entity(PiiType::City, 2, 9),   // overlaps the first
            entity(PiiType::City, 10, 99), // past the end
        ];
        assert_eq!(mask(text, &entities), "<PERSON> lives here");
        // inside the two bytes of ü
        assert_eq!(mask("Zürich", &[entity(PiiType::City, 1, 2)]), "Zürich");
    }
}
