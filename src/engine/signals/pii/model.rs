//! From a token classifier's per-token probabilities to PII entities with character spans.
//!
//! Tokens are first gathered into words (sub-word pieces such as `ham ##anov ##á`), each word
//! taking the label its first piece argmaxes to, as Hugging Face's `aggregation_strategy="first"`
//! does; a word whose label scores below the threshold counts as outside. Words then form
//! entities by BIO: `B-` opens one, `I-` of the same label continues it across whitespace, and
//! pieces of the same label with nothing between them (`jane` `.` `doe` `@` ... of an address)
//! are one entity whatever their prefix. Finally the parts of a multi-part type are joined by
//! [`PiiType::joins`]: a GIVEN_NAME followed by a SURNAME is one PERSON.

use semrouter_embedder::TokenPredictions;

use super::types::{PiiEntity, PiiSource, PiiType};

/// What one of the model's labels means.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ModelLabel {
    /// `B-` (or `S-`/`U-`): starts an entity. Otherwise (`I-`, `E-`, `L-`, no prefix) it may
    /// continue one.
    begins: bool,
    /// The model's own entity name, prefix removed (e.g. `GIVEN_NAME`).
    entity: String,
    /// The type it is reported as.
    kind: PiiType,
}

/// The model's labels by index, resolved once when the detector is built.
#[derive(Debug, Clone)]
pub(crate) struct LabelMap {
    labels: Vec<Option<ModelLabel>>,
}

impl LabelMap {
    /// Resolves `labels` (in the model's output order). Returns the map and the entity labels
    /// it does not report (unknown to [`PiiType::from_model_label`]); fails when no label maps
    /// to a PII type at all.
    pub(crate) fn new(labels: &[String]) -> Result<(Self, Vec<String>), String> {
        let mut ignored = Vec::new();
        let resolved: Vec<Option<ModelLabel>> = labels
            .iter()
            .map(|label| {
                let label = label.trim();
                if label.eq_ignore_ascii_case("O") || label.is_empty() {
                    return None;
                }
                let (begins, entity) = match label.split_once('-') {
                    Some((prefix, entity)) if prefix.len() == 1 => {
                        match prefix.to_ascii_uppercase().as_str() {
                            "B" | "S" | "U" => (true, entity),
                            _ => (false, entity),
                        }
                    }
                    _ => (false, label),
                };
                let kind = PiiType::from_model_label(entity);
                if kind.is_none() {
                    ignored.push(label.to_string());
                }
                kind.map(|kind| ModelLabel {
                    begins,
                    entity: entity.to_ascii_uppercase(),
                    kind,
                })
            })
            .collect();
        if resolved.iter().all(Option::is_none) {
            return Err(format!(
                "none of its {} labels names a PII type this detector reports",
                labels.len()
            ));
        }
        Ok((Self { labels: resolved }, ignored))
    }

    /// The label at `index`, if it is an entity label the detector reports.
    fn get(&self, index: usize) -> Option<&ModelLabel> {
        self.labels.get(index).and_then(Option::as_ref)
    }

    /// Number of labels (the width of each token's probability row).
    pub(crate) fn len(&self) -> usize {
        self.labels.len()
    }
}

/// A word: consecutive tokens with no break between them, labelled by its first token.
#[derive(Debug, Clone, Copy)]
struct Word {
    start: usize,
    end: usize,
    label: usize,
    probability: f32,
}

/// An entity being built: its label's own entity name, type, span and the scores of its words.
struct Open<'m> {
    entity: &'m str,
    kind: PiiType,
    start: usize,
    end: usize,
    score_sum: f32,
    words: u32,
}

/// Decodes one text's token predictions into entities, in text order, never overlapping.
/// Tokens whose offsets do not fit `text` are skipped.
pub(crate) fn decode(
    text: &str,
    predictions: &TokenPredictions,
    labels: &LabelMap,
    threshold: f32,
) -> Vec<PiiEntity> {
    let words = words(text, predictions);
    let mut spans: Vec<Open<'_>> = Vec::new();
    let mut open: Option<Open<'_>> = None;
    for word in words {
        let label = labels
            .get(word.label)
            .filter(|_| word.probability >= threshold);
        let Some(label) = label else {
            spans.extend(open.take());
            continue;
        };
        if let Some(current) = open.as_mut() {
            let gap = text.get(current.end..word.start);
            let continues = current.entity == label.entity
                && gap
                    .is_some_and(|gap| gap.is_empty() || (!label.begins && gap.trim().is_empty()));
            if continues {
                current.end = word.end;
                current.score_sum += word.probability;
                current.words += 1;
                continue;
            }
        }
        spans.extend(open.replace(Open {
            entity: &label.entity,
            kind: label.kind,
            start: word.start,
            end: word.end,
            score_sum: word.probability,
            words: 1,
        }));
    }
    spans.extend(open);

    // The model often leaves the unit designator out of a secondary address ("Suite" in
    // "Suite 484" labelled outside, the number alone labelled): take it in.
    // The designator must not reach back into the entity before.
    let mut previous_end = 0;
    for span in spans.iter_mut() {
        if span.kind == PiiType::StreetAddress {
            span.start = with_unit_designator(text, span.start).max(previous_end);
        }
        previous_end = span.end;
    }

    // Join the parts of multi-part types (given name + surname; number + street + unit).
    let mut joined: Vec<Open<'_>> = Vec::with_capacity(spans.len());
    for span in spans {
        if let Some(last) = joined.last_mut() {
            if last.kind == span.kind
                && text
                    .get(last.end..span.start)
                    .is_some_and(|gap| span.kind.joins(gap))
            {
                last.end = span.end;
                last.score_sum += span.score_sum;
                last.words += span.words;
                continue;
            }
        }
        joined.push(span);
    }
    joined
        .into_iter()
        .map(|s| PiiEntity {
            kind: s.kind,
            start: s.start,
            end: s.end,
            score: s.score_sum / s.words.max(1) as f32,
            source: PiiSource::Model,
        })
        .collect()
}

/// Words that introduce the number of a unit within a building (lower case).
const UNIT_DESIGNATORS: [&str; 16] = [
    "apt",
    "apt.",
    "apartment",
    "suite",
    "ste",
    "ste.",
    "unit",
    "#",
    "no.",
    "room",
    "rm",
    "rm.",
    "floor",
    "fl",
    "fl.",
    "flat",
];

/// Where a street-address span starting at `start` begins once a unit designator right before
/// it ("Apt. ", "Suite ", "#") is included; `start` itself when there is none or the span does
/// not start with a number.
fn with_unit_designator(text: &str, start: usize) -> usize {
    if !text[start..].starts_with(|c: char| c.is_ascii_digit()) {
        return start;
    }
    let before = &text[..start];
    let word_end = before.trim_end_matches(' ').len();
    if before.len() - word_end > 1 {
        return start;
    }
    let word_start = before[..word_end]
        .char_indices()
        .rev()
        .find(|(_, c)| !(c.is_alphanumeric() || *c == '.' || *c == '#'))
        .map_or(0, |(i, c)| i + c.len_utf8());
    let word = before[word_start..word_end].to_lowercase();
    if UNIT_DESIGNATORS.contains(&word.as_str()) {
        word_start
    } else {
        start
    }
}

/// Gathers tokens into words. A token continues the previous word when it starts where that
/// one ends between two alphanumeric characters (a `##` piece), or inside it (several tokens
/// from one character); punctuation is a word of its own, as BERT's pre-tokeniser makes it.
fn words(text: &str, predictions: &TokenPredictions) -> Vec<Word> {
    let mut words: Vec<Word> = Vec::with_capacity(predictions.len());
    for (index, &(start, end)) in predictions.offsets.iter().enumerate() {
        if start >= end || text.get(start..end).is_none() {
            continue;
        }
        let row = predictions.token(index);
        let Some((label, &probability)) = row.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1))
        else {
            continue;
        };
        if let Some(last) = words.last_mut() {
            let inside = start < last.end;
            let glued = start == last.end
                && text[..start]
                    .chars()
                    .next_back()
                    .is_some_and(char::is_alphanumeric)
                && text[start..]
                    .chars()
                    .next()
                    .is_some_and(char::is_alphanumeric);
            if inside || glued {
                last.end = last.end.max(end);
                continue;
            }
        }
        words.push(Word {
            start,
            end,
            label,
            probability,
        });
    }
    words
}

#[cfg(test)]
mod tests {
    use semrouter_embedder::StageTiming;

    use super::*;

    const LABELS: [&str; 9] = [
        "O",
        "B-GIVEN_NAME",
        "I-GIVEN_NAME",
        "B-SURNAME",
        "B-EMAIL",
        "I-EMAIL",
        "B-CITY",
        "I-CITY",
        "B-MISC",
    ];

    fn label_map() -> LabelMap {
        let labels: Vec<String> = LABELS.iter().map(|s| s.to_string()).collect();
        let (map, ignored) = LabelMap::new(&labels).unwrap();
        assert_eq!(ignored, ["B-MISC"]);
        map
    }

    /// Predictions for `text` from (token text, label, probability) triples, found in order.
    fn predict(text: &str, tokens: &[(&str, &str, f32)]) -> TokenPredictions {
        let mut offsets = Vec::new();
        let mut probabilities = Vec::new();
        let mut from = 0;
        for &(piece, label, p) in tokens {
            let start = from + text[from..].find(piece).expect("piece in text");
            from = start + piece.len();
            offsets.push((start, from));
            let index = LABELS.iter().position(|l| *l == label).expect("label");
            let rest = (1.0 - p) / (LABELS.len() - 1) as f32;
            probabilities.extend((0..LABELS.len()).map(|i| if i == index { p } else { rest }));
        }
        TokenPredictions {
            offsets,
            probabilities,
            labels: LABELS.len(),
            tokens: tokens.len() + 2,
            timing: StageTiming::default(),
        }
    }

    fn spans(text: &str, entities: &[PiiEntity]) -> Vec<(PiiType, String)> {
        entities
            .iter()
            .map(|e| (e.kind, text[e.start..e.end].to_string()))
            .collect()
    }

    #[test]
    fn sub_words_take_their_first_piece_label_and_names_join_into_a_person() {
        let text = "I am Marie Hamanová from Kangerlussuaq.";
        let p = predict(
            text,
            &[
                ("I", "O", 0.99),
                ("am", "O", 0.99),
                ("Marie", "B-GIVEN_NAME", 0.98),
                ("Ham", "B-SURNAME", 0.97),
                ("anov", "O", 0.6), // a later piece's label does not split the word
                ("á", "B-SURNAME", 0.9),
                ("from", "O", 0.99),
                ("Kang", "B-CITY", 0.8),
                ("erl", "B-CITY", 0.8),
                ("ussuaq", "B-CITY", 0.8),
                (".", "O", 0.99),
            ],
        );
        let entities = decode(text, &p, &label_map(), 0.5);
        assert_eq!(
            spans(text, &entities),
            [
                (PiiType::Person, "Marie Hamanová".into()),
                (PiiType::City, "Kangerlussuaq".into())
            ]
        );
        assert!(
            (entities[0].score - 0.975).abs() < 1e-6,
            "mean over the words: {}",
            entities[0].score
        );
        assert!(entities.iter().all(|e| e.source == PiiSource::Model));
    }

    #[test]
    fn bio_prefixes_decide_where_entities_start() {
        let text = "New York, York; jane.doe@example.com bob@example.org";
        let p = predict(
            text,
            &[
                ("New", "B-CITY", 0.9),
                ("York", "I-CITY", 0.9), // I- across whitespace continues
                (",", "O", 0.9),
                ("York", "B-CITY", 0.9),
                (";", "O", 0.9),
                ("jane", "B-EMAIL", 0.9),
                (".", "I-EMAIL", 0.9),
                ("doe", "B-EMAIL", 0.9), // glued to the previous piece: same entity despite B-
                ("@", "B-EMAIL", 0.9),
                ("example", "I-EMAIL", 0.9),
                (".", "I-EMAIL", 0.9),
                ("com", "I-EMAIL", 0.9),
                ("bob", "B-EMAIL", 0.9), // B- after whitespace: a second address
                ("@", "I-EMAIL", 0.9),
                ("example.org", "I-EMAIL", 0.9),
            ],
        );
        let entities = decode(text, &p, &label_map(), 0.5);
        assert_eq!(
            spans(text, &entities),
            [
                (PiiType::City, "New York".into()),
                (PiiType::City, "York".into()),
                (PiiType::Email, "jane.doe@example.com".into()),
                (PiiType::Email, "bob@example.org".into())
            ]
        );
    }

    #[test]
    fn low_scores_and_unknown_labels_are_outside() {
        let text = "Anna Smith met Bob";
        let p = predict(
            text,
            &[
                ("Anna", "B-GIVEN_NAME", 0.4),
                ("Smith", "B-SURNAME", 0.9),
                ("met", "B-MISC", 0.9),
                ("Bob", "B-GIVEN_NAME", 0.7),
            ],
        );
        let entities = decode(text, &p, &label_map(), 0.5);
        assert_eq!(
            spans(text, &entities),
            [
                (PiiType::Person, "Smith".into()),
                (PiiType::Person, "Bob".into())
            ]
        );
        let strict = decode(text, &p, &label_map(), 0.8);
        assert_eq!(spans(text, &strict), [(PiiType::Person, "Smith".into())]);
    }

    #[test]
    fn an_inside_label_after_other_text_opens_a_new_entity_and_people_in_a_list_stay_apart() {
        let text = "Anna, Bob and Carl";
        let p = predict(
            text,
            &[
                ("Anna", "B-GIVEN_NAME", 0.9),
                (",", "O", 0.9),
                ("Bob", "I-GIVEN_NAME", 0.9),
                ("and", "O", 0.9),
                ("Carl", "I-GIVEN_NAME", 0.9),
            ],
        );
        let entities = decode(text, &p, &label_map(), 0.5);
        assert_eq!(spans(text, &entities).len(), 3);
    }

    #[test]
    fn offsets_outside_the_text_are_skipped_not_a_panic() {
        let text = "Zoë";
        let mut p = predict(text, &[("Zoë", "B-GIVEN_NAME", 0.9)]);
        p.offsets.push((2, 3)); // inside the two-byte ë
        p.offsets.push((3, 40));
        p.probabilities
            .extend(std::iter::repeat_n(0.1, 2 * LABELS.len()));
        assert_eq!(
            spans(text, &decode(text, &p, &label_map(), 0.5)),
            [(PiiType::Person, "Zoë".into())]
        );
    }

    #[test]
    fn unit_designators_join_the_street_address() {
        let labels: Vec<String> = [
            "O",
            "B-BUILDING_NUMBER",
            "B-STREET_NAME",
            "I-STREET_NAME",
            "B-SECONDARY_ADDRESS",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let (map, _) = LabelMap::new(&labels).unwrap();
        let text = "at 1463 Horseshoe Lane Suite 484, Newark";
        let row = |label: usize| {
            (0..5)
                .map(|i| if i == label { 0.9 } else { 0.025 })
                .collect::<Vec<f32>>()
        };
        let pieces = [
            ("at", 0),
            ("1463", 1),
            ("Horseshoe", 2),
            ("Lane", 3),
            ("Suite", 0),
            ("484", 4),
            (",", 0),
            ("Newark", 0),
        ];
        let mut offsets = Vec::new();
        let mut probabilities = Vec::new();
        let mut from = 0;
        for (piece, label) in pieces {
            let start = from + text[from..].find(piece).unwrap();
            from = start + piece.len();
            offsets.push((start, from));
            probabilities.extend(row(label));
        }
        let p = TokenPredictions {
            offsets,
            probabilities,
            labels: 5,
            tokens: 10,
            timing: StageTiming::default(),
        };
        assert_eq!(
            spans(text, &decode(text, &p, &map, 0.5)),
            [(
                PiiType::StreetAddress,
                "1463 Horseshoe Lane Suite 484".into()
            )]
        );

        // The designator already belongs to the street span: nothing moves, nothing overlaps.
        let text = "1177 Briarhill Lane Apt 902";
        let pieces = [
            ("1177", 1),
            ("Briarhill", 2),
            ("Lane", 3),
            ("Apt", 3),
            ("902", 4),
        ];
        let mut offsets = Vec::new();
        let mut probabilities = Vec::new();
        let mut from = 0;
        for (piece, label) in pieces {
            let start = from + text[from..].find(piece).unwrap();
            from = start + piece.len();
            offsets.push((start, from));
            probabilities.extend(row(label));
        }
        let p = TokenPredictions {
            offsets,
            probabilities,
            labels: 5,
            tokens: 7,
            timing: StageTiming::default(),
        };
        assert_eq!(
            spans(text, &decode(text, &p, &map, 0.5)),
            [(PiiType::StreetAddress, text.into())]
        );

        assert_eq!(with_unit_designator("Apt. 12", 5), 0);
        assert_eq!(with_unit_designator("x #12", 3), 2);
        assert_eq!(with_unit_designator("Lane 12", 5), 5, "not a designator");
        assert_eq!(with_unit_designator("Suite  12", 7), 7, "too far");
        assert_eq!(with_unit_designator("Suite Main", 6), 6, "no number");
    }

    #[test]
    fn a_model_without_pii_labels_is_refused() {
        let labels: Vec<String> = ["O", "B-MISC", "I-MISC"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert!(LabelMap::new(&labels).is_err());
    }
}
