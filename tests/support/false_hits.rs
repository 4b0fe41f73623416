//! The project's labelled near-duplicate set for the semantic cache, generated from MMLU
//! questions by fixed, seeded transformations:
//!
//! - `paraphrase` (must match): a framing template ("Could you tell me ...", "Question: ..."),
//!   word-level synonyms ("What is" → "What's", "Calculate" → "Compute") or a typo, never
//!   touching negations, numbers or names;
//! - `negation` (must not match): `not` inserted after the first auxiliary (`is` → `is not`,
//!   `can` → `cannot`), or an existing `not` removed;
//! - `number` (must not match): one number changed (7 → 8, 1914 → 1915, 0.5 → 0.6);
//! - `entity` (must not match): a country, city, person, organisation or planet from a fixed
//!   gazetteer replaced by another of the same kind (the gazetteer is independent of the
//!   guard's capitalisation rule);
//! - `nearest` (reported, must not match): each question's nearest *other* question of the
//!   split by embedding: distinct questions on the same topic.
#![allow(dead_code)] // each test uses part of it

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The kind of a pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Paraphrase,
    Negation,
    Number,
    Entity,
    Nearest,
}

impl Kind {
    pub const ALL: [Kind; 5] = [
        Kind::Paraphrase,
        Kind::Negation,
        Kind::Number,
        Kind::Entity,
        Kind::Nearest,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Paraphrase => "paraphrase",
            Kind::Negation => "negation",
            Kind::Number => "number",
            Kind::Entity => "entity",
            Kind::Nearest => "nearest",
        }
    }

    /// Whether the pair should be a hit.
    pub fn should_match(self) -> bool {
        self == Kind::Paraphrase
    }
}

/// One labelled pair: the stored question (index into the source list) and the query text.
#[derive(Debug, Clone)]
pub struct Pair {
    pub kind: Kind,
    pub stored: usize,
    pub query: String,
}

const TEMPLATES: &[&str] = &[
    "Could you tell me {lc}",
    "Question: {q}",
    "{q} Please explain your answer.",
    "I have a question. {q}",
    "Help me with this one: {q}",
    "{q} Thanks!",
    "Quick question - {lc}",
    "Can you answer this? {q}",
];

const SYNONYMS: &[(&str, &str)] = &[
    ("What is", "What's"),
    ("what is", "what's"),
    ("Which of the following", "Which one of the following"),
    ("which of the following", "which one of the following"),
    ("Find ", "Determine "),
    ("Calculate ", "Compute "),
    ("Explain ", "Describe "),
    (" approximately ", " roughly "),
    (" because ", " since "),
    (" shows ", " demonstrates "),
    (" people ", " individuals "),
    (" large ", " big "),
    (" called ", " known as "),
    (" about ", " regarding "),
    (" primarily ", " mainly "),
    (" typically ", " usually "),
    (" suggests ", " indicates "),
    (" describes ", " characterises "),
    (" used ", " employed "),
    (" example ", " instance "),
];

/// Sentence starters that may be lowercased inside a template.
const LOWERABLE: &[&str] = &[
    "What",
    "Which",
    "Who",
    "How",
    "Why",
    "When",
    "Where",
    "In",
    "The",
    "A",
    "An",
    "If",
    "Is",
    "Are",
    "Can",
    "Does",
    "Do",
    "For",
    "According",
    "Find",
    "Calculate",
    "Suppose",
    "Consider",
    "This",
    "These",
    "Let",
];

const AUXILIARIES: &[(&str, &str)] = &[
    (" is ", " is not "),
    (" are ", " are not "),
    (" was ", " was not "),
    (" were ", " were not "),
    (" can ", " cannot "),
    (" does ", " does not "),
    (" do ", " do not "),
    (" did ", " did not "),
    (" will ", " will not "),
    (" would ", " would not "),
    (" should ", " should not "),
    (" could ", " could not "),
    (" has ", " has not "),
    (" have ", " have not "),
];

/// Groups of interchangeable named entities.
const GAZETTEER: &[&[&str]] = &[
    &[
        "France",
        "Germany",
        "Italy",
        "Spain",
        "England",
        "Britain",
        "China",
        "Japan",
        "India",
        "Russia",
        "Canada",
        "Mexico",
        "Brazil",
        "Egypt",
        "Greece",
        "Rome",
        "Persia",
        "Israel",
        "Turkey",
        "Iran",
        "Iraq",
        "Korea",
        "Vietnam",
        "Poland",
        "Australia",
        "Argentina",
        "Sweden",
        "Norway",
        "Netherlands",
        "Portugal",
        "Ireland",
        "Scotland",
        "Cuba",
        "Kenya",
        "Nigeria",
        "Ethiopia",
        "Pakistan",
        "Afghanistan",
        "Indonesia",
        "Philippines",
        "Chile",
        "Peru",
        "Austria",
        "Prussia",
        "Hungary",
        "Ukraine",
        "Switzerland",
        "Belgium",
        "Denmark",
    ],
    &[
        "Paris",
        "London",
        "Berlin",
        "Moscow",
        "Tokyo",
        "Beijing",
        "Washington",
        "Boston",
        "Chicago",
        "Athens",
        "Jerusalem",
        "Venice",
        "Florence",
        "Vienna",
        "Madrid",
        "Lisbon",
        "Amsterdam",
        "Constantinople",
        "Baghdad",
        "Cairo",
        "Delhi",
        "Philadelphia",
        "Virginia",
        "California",
        "Texas",
        "Massachusetts",
        "Georgia",
        "New York",
        "Ohio",
        "Florida",
    ],
    &[
        "Aristotle",
        "Plato",
        "Socrates",
        "Kant",
        "Hume",
        "Locke",
        "Hobbes",
        "Descartes",
        "Mill",
        "Marx",
        "Nietzsche",
        "Freud",
        "Piaget",
        "Skinner",
        "Pavlov",
        "Darwin",
        "Newton",
        "Einstein",
        "Lincoln",
        "Jefferson",
        "Roosevelt",
        "Napoleon",
        "Smith",
        "Keynes",
        "Rousseau",
        "Machiavelli",
        "Luther",
        "Calvin",
        "Confucius",
        "Augustine",
        "Aquinas",
        "Bentham",
        "Rawls",
        "Nozick",
        "Singer",
        "Wittgenstein",
        "Russell",
        "Hegel",
        "Washington",
        "Churchill",
        "Stalin",
        "Hitler",
    ],
    &[
        "Mercury", "Venus", "Earth", "Mars", "Jupiter", "Saturn", "Uranus", "Neptune", "Pluto",
        "Moon", "Sun",
    ],
    &[
        "Congress",
        "Senate",
        "Parliament",
        "Supreme Court",
        "United Nations",
        "NATO",
        "OPEC",
        "IMF",
        "FDA",
        "EPA",
        "FBI",
        "Federal Reserve",
    ],
    &[
        "Christianity",
        "Islam",
        "Judaism",
        "Buddhism",
        "Hinduism",
        "Confucianism",
        "Daoism",
        "Sikhism",
        "Jainism",
        "Shinto",
    ],
];

fn has_word(text: &str, word: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut from = 0;
    while let Some(pos) = text[from..].find(word) {
        let at = from + pos;
        let before = at == 0 || !bytes[at - 1].is_ascii_alphanumeric();
        let end = at + word.len();
        let after = end >= bytes.len() || !bytes[end].is_ascii_alphanumeric();
        if before && after {
            return Some(at);
        }
        from = at + word.len();
    }
    None
}

fn lowercase_first(q: &str) -> Option<String> {
    let first = q.split_whitespace().next()?;
    if LOWERABLE.contains(&first) {
        let mut chars = q.chars();
        let head = chars.next()?;
        Some(head.to_lowercase().chain(chars).collect())
    } else {
        None
    }
}

/// A paraphrase-like variant of `q` (framing, synonyms, or a typo), or `None` when no
/// transformation applies.
pub fn paraphrase(q: &str, rng: &mut impl Rng) -> Option<String> {
    let mut out = q.to_string();
    // Synonyms first, then a frame or a typo.
    let mut changed = false;
    for (from, to) in SYNONYMS {
        if out.contains(from) && rng.random_bool(0.7) {
            out = out.replacen(from, to, 1);
            changed = true;
        }
    }
    let choice = rng.random_range(0..10);
    if choice < 7 {
        let template = TEMPLATES[rng.random_range(0..TEMPLATES.len())];
        if template.contains("{lc}") {
            let lc = lowercase_first(&out).unwrap_or_else(|| out.clone());
            out = template.replace("{lc}", &lc);
        } else {
            out = template.replace("{q}", &out);
        }
        changed = true;
    } else if choice < 9 {
        // A typo: two adjacent letters swapped in a lowercase word of five letters or more.
        let words: Vec<&str> = out.split(' ').collect();
        let candidates: Vec<usize> = (0..words.len())
            .filter(|&i| words[i].len() >= 5 && words[i].chars().all(|c| c.is_ascii_lowercase()))
            .collect();
        if !candidates.is_empty() {
            let w = candidates[rng.random_range(0..candidates.len())];
            let mut letters: Vec<char> = words[w].chars().collect();
            let at = rng.random_range(1..letters.len() - 2);
            letters.swap(at, at + 1);
            let typo: String = letters.into_iter().collect();
            let mut parts: Vec<String> = words.iter().map(|s| s.to_string()).collect();
            parts[w] = typo;
            out = parts.join(" ");
            changed = true;
        }
    }
    (changed && out != q).then_some(out)
}

/// `q` with its polarity flipped, or `None`.
pub fn negate(q: &str) -> Option<String> {
    for marker in [" not ", " NOT "] {
        if q.contains(marker) {
            return Some(q.replacen(marker, " ", 1));
        }
    }
    let padded = format!(" {q} ");
    let (at, from, to) = AUXILIARIES
        .iter()
        .filter_map(|(from, to)| padded.find(from).map(|at| (at, *from, *to)))
        .min_by_key(|(at, _, _)| *at)?;
    let mut out = padded.clone();
    out.replace_range(at..at + from.len(), to);
    Some(out.trim().to_string())
}

/// `q` with one number changed, or `None`.
pub fn change_number(q: &str, rng: &mut impl Rng) -> Option<String> {
    let chars: Vec<char> = q.chars().collect();
    let mut spans = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if chars[i].is_ascii_digit() {
            let start = i;
            while i < chars.len()
                && (chars[i].is_ascii_digit()
                    || (chars[i] == '.' && chars.get(i + 1).is_some_and(|c| c.is_ascii_digit())))
            {
                i += 1;
            }
            spans.push((start, i));
        } else {
            i += 1;
        }
    }
    if spans.is_empty() {
        return None;
    }
    let (start, end) = spans[rng.random_range(0..spans.len())];
    // Change the last digit: +1 (9 becomes 8) so the length and form stay.
    let mut digits: Vec<char> = chars[start..end].to_vec();
    let last = digits.iter().rposition(|c| c.is_ascii_digit())?;
    let d = digits[last].to_digit(10)?;
    digits[last] = char::from_digit(if d == 9 { 8 } else { d + 1 }, 10)?;
    let mut out: String = chars[..start].iter().collect();
    out.extend(digits);
    out.extend(&chars[end..]);
    Some(out)
}

/// `q` with one gazetteer entity replaced by another of its group, or `None`.
pub fn change_entity(q: &str, rng: &mut impl Rng) -> Option<String> {
    let mut found = Vec::new();
    for group in GAZETTEER {
        for name in group.iter() {
            if let Some(at) = has_word(q, name) {
                found.push((at, *name, *group));
            }
        }
    }
    if found.is_empty() {
        return None;
    }
    let (at, name, group) = found[rng.random_range(0..found.len())];
    let others: Vec<&&str> = group
        .iter()
        .filter(|n| **n != name && has_word(q, n).is_none())
        .collect();
    let other = others[rng.random_range(0..others.len())];
    let mut out = q.to_string();
    out.replace_range(at..at + name.len(), other);
    Some(out)
}

/// Pairs of every kind but `Nearest` from `questions`, at most `per_kind` of each, seeded.
pub fn generate(questions: &[String], per_kind: usize, seed: u64) -> Vec<Pair> {
    let mut pairs = Vec::new();
    for kind in [Kind::Paraphrase, Kind::Negation, Kind::Number, Kind::Entity] {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ kind as u64);
        let mut order: Vec<usize> = (0..questions.len()).collect();
        // Fisher-Yates with the seeded generator: a fixed sample across runs.
        for i in (1..order.len()).rev() {
            let j = rng.random_range(0..=i);
            order.swap(i, j);
        }
        let mut taken = 0;
        for &i in &order {
            if taken == per_kind {
                break;
            }
            let q = questions[i].trim();
            if q.len() > 400 {
                continue; // long passages: their one-word changes say little about a chat cache
            }
            let query = match kind {
                Kind::Paraphrase => paraphrase(q, &mut rng),
                Kind::Negation => negate(q),
                Kind::Number => change_number(q, &mut rng),
                Kind::Entity => change_entity(q, &mut rng),
                Kind::Nearest => None,
            };
            if let Some(query) = query.filter(|v| v != q) {
                pairs.push(Pair {
                    kind,
                    stored: i,
                    query,
                });
                taken += 1;
            }
        }
    }
    pairs
}

#[cfg(test)]
mod tests {
    #[test]
    fn transformations() {
        // Imported here, not for the module: a harness-less bench that includes this file
        // compiles the module without its tests, and the import would go unused.
        use super::*;
        assert_eq!(
            negate("Which of these is true?").unwrap(),
            "Which of these is not true?"
        );
        assert_eq!(
            negate("Which of these is NOT true?").unwrap(),
            "Which of these is true?"
        );
        assert_eq!(negate("Birds can fly.").unwrap(), "Birds cannot fly.");
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        assert_eq!(
            change_number("Find 17 apples", &mut rng).unwrap(),
            "Find 18 apples"
        );
        assert_eq!(
            change_entity("The capital of France is", &mut rng).map(|s| s.contains("France")),
            Some(false)
        );
        assert!(change_entity("Francesca went home", &mut rng).is_none());
    }
}
