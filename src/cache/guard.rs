//! The false-hit guard: cheap lexical checks for semantic matches in the grey band.
//!
//! Sentence embeddings place "Which of these is true?" next to "Which of these is not
//! true?", and "What is 3 + 5?" next to "What is 3 + 6?": the vectors are near, the answers
//! opposite. For a match whose similarity lies in `[threshold, band_upper)` the guard compares
//! three features of the two prompts and vetoes the match when any differs:
//!
//! - polarity: negation words (`not`, `never`, `no`, any `n't`, ...) and a small lexicon of
//!   polar words (`true`/`false`, `most`/`least`, `before`/`after`, ...), as a multiset;
//! - numbers: digits (thousands separators dropped, `3.50` = `3.5`) and number words (`five` = `5`);
//! - entities: capitalised words not starting a sentence, all-caps acronyms, words mixing
//!   letters and digits, and quoted spans, case-folded.
//!
//! Entries keep these features (small sorted lists), never the prompt text.

use serde::{Deserialize, Serialize};

use super::config::GuardConfig;

/// Which check vetoed a match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GuardCheck {
    /// Negation or polar words differ.
    Negation,
    /// Numbers differ.
    Number,
    /// Named entities differ.
    Entity,
}

impl GuardCheck {
    /// A stable label for metrics.
    pub fn label(self) -> &'static str {
        match self {
            GuardCheck::Negation => "negation",
            GuardCheck::Number => "number",
            GuardCheck::Entity => "entity",
        }
    }
}

/// The lexical features the guard compares, extracted once per prompt.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuardFeatures {
    /// Negation and polar words, normalised (`isn't` → `not`), sorted, with repeats.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub polarity: Vec<String>,
    /// Numbers in canonical form, sorted, with repeats.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub numbers: Vec<String>,
    /// Entities, case-folded, sorted, without repeats.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub entities: Vec<String>,
}

/// Words that negate.
const NEGATIONS: &[&str] = &[
    "not", "no", "never", "none", "nobody", "nothing", "neither", "nor", "nowhere", "cannot", "without", "hardly", "barely",
    "scarcely", "non",
];

/// Polar words whose swap for their opposite keeps the embedding close but flips the answer.
const POLAR: &[&str] = &[
    "true", "false", "correct", "incorrect", "right", "wrong", "valid", "invalid", "most", "least", "more", "less", "fewer",
    "greater", "smaller", "larger", "lower", "higher", "maximum", "minimum", "max", "min", "increase", "decrease", "increases",
    "decreases", "before", "after", "above", "below", "first", "last", "best", "worst", "always", "sometimes", "legal",
    "illegal", "likely", "unlikely", "possible", "impossible", "except", "only", "all", "any", "some", "positive", "negative",
    "agree", "disagree", "advantage", "disadvantage", "strengthen", "weaken", "strengthens", "weakens", "support", "undermine",
];

/// Number words mapped to their value.
const NUMBER_WORDS: &[(&str, &str)] = &[
    ("zero", "0"), ("one", "1"), ("two", "2"), ("three", "3"), ("four", "4"), ("five", "5"), ("six", "6"), ("seven", "7"),
    ("eight", "8"), ("nine", "9"), ("ten", "10"), ("eleven", "11"), ("twelve", "12"), ("thirteen", "13"), ("fourteen", "14"),
    ("fifteen", "15"), ("sixteen", "16"), ("seventeen", "17"), ("eighteen", "18"), ("nineteen", "19"), ("twenty", "20"),
    ("thirty", "30"), ("forty", "40"), ("fifty", "50"), ("sixty", "60"), ("seventy", "70"), ("eighty", "80"), ("ninety", "90"),
    ("hundred", "100"), ("thousand", "1000"), ("million", "1000000"), ("billion", "1000000000"), ("half", "0.5"),
    ("twice", "x2"), ("double", "x2"), ("triple", "x3"), ("third", "1/3"), ("quarter", "1/4"),
];

/// Common words that start sentences capitalised without being names.
const COMMON: &[&str] = &[
    "a", "about", "according", "after", "all", "also", "although", "an", "and", "another", "any", "are", "as", "assume",
    "assuming", "at", "based", "be", "because", "before", "being", "below", "both", "but", "by", "calculate", "can", "choose",
    "compare", "compute", "consider", "could", "define", "describe", "despite", "determine", "did", "do", "does", "during",
    "each", "either", "estimate", "evaluate", "even", "every", "explain", "find", "for", "from", "give", "given", "has", "have",
    "having", "he", "her", "here", "his", "how", "however", "i", "identify", "if", "imagine", "in", "is", "it", "its", "let",
    "list", "many", "may", "might", "most", "much", "my", "name", "no", "none", "not", "now", "of", "on", "once", "one", "only",
    "or", "other", "our", "please", "provide", "question", "regarding", "select", "she", "should", "show", "since", "so",
    "solve", "some", "state", "statement", "suppose", "tell", "than", "that", "the", "their", "then", "there", "these", "they",
    "this", "those", "though", "to", "true", "under", "unlike", "until", "upon", "use", "using", "we", "what", "whats", "when",
    "where", "whereas", "whether", "which", "while", "who", "whom", "whose", "why", "will", "with", "within", "would", "write",
    "yes", "you", "your", "false", "answer", "briefly", "kindly", "quick", "quickly", "simply", "in", "into", "over", "among",
];

fn in_list(list: &[&str], word: &str) -> bool {
    list.contains(&word)
}

/// Canonical form of a digit token: thousands separators dropped, decimals normalised.
fn canonical_number(token: &str) -> String {
    let plain: String = token.chars().filter(|c| *c != ',').collect();
    match plain.parse::<f64>() {
        Ok(value) if value.is_finite() => format!("{value}"),
        _ => plain,
    }
}

impl GuardFeatures {
    /// Extracts the features of a prompt.
    pub fn extract(text: &str) -> Self {
        let mut features = GuardFeatures::default();
        let chars: Vec<char> = text.chars().collect();
        let mut sentence_start = true;
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            if c == '"' || c == '\u{201c}' {
                // A quoted span is an entity (a title, a term, a string literal).
                let close = if c == '"' { '"' } else { '\u{201d}' };
                if let Some(len) = chars[i + 1..].iter().position(|&d| d == close) {
                    let span: String = chars[i + 1..i + 1 + len].iter().collect::<String>().trim().to_lowercase();
                    if !span.is_empty() && len <= 200 {
                        features.entities.push(format!("\"{span}\""));
                    }
                }
            }
            if c.is_ascii_digit() {
                // A number: digits with internal `.` or `,` followed by a digit.
                let start = i;
                while i < chars.len()
                    && (chars[i].is_ascii_digit()
                        || ((chars[i] == '.' || chars[i] == ',') && chars.get(i + 1).is_some_and(|d| d.is_ascii_digit())))
                {
                    i += 1;
                }
                // Letters glued to digits (`H2O`, `x86`, `COVID-19`) make the whole an entity too.
                let mut end = i;
                while end < chars.len() && (chars[end].is_alphanumeric() || chars[end] == '-') && chars[end] != ' ' {
                    end += 1;
                }
                let number: String = chars[start..i].iter().collect();
                features.numbers.push(canonical_number(&number));
                let glued_before = start > 0 && chars[start - 1].is_alphabetic();
                if end > i && chars[i..end].iter().any(|c| c.is_alphabetic()) || glued_before {
                    let mut word_start = start;
                    while word_start > 0 && (chars[word_start - 1].is_alphanumeric() || chars[word_start - 1] == '-') {
                        word_start -= 1;
                    }
                    features.entities.push(chars[word_start..end].iter().collect::<String>().to_lowercase());
                }
                i = end.max(i);
                sentence_start = false;
                continue;
            }
            if c.is_alphabetic() {
                let start = i;
                while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '\'' || chars[i] == '\u{2019}' || chars[i] == '-') {
                    i += 1;
                }
                let raw: String = chars[start..i].iter().collect();
                let raw = raw.trim_end_matches(['\'', '\u{2019}', '-']).replace('\u{2019}', "'");
                if raw.chars().any(|c| c.is_ascii_digit()) {
                    // `GPT-4`: an entity; its digits count as a number as well.
                    features.entities.push(raw.to_lowercase());
                    for part in raw.split(|c: char| !c.is_ascii_digit()).filter(|p| !p.is_empty()) {
                        features.numbers.push(canonical_number(part));
                    }
                    sentence_start = false;
                    continue;
                }
                let lower = raw.to_lowercase();
                if lower.ends_with("n't") || in_list(NEGATIONS, &lower) {
                    features.polarity.push("not".to_string());
                } else if in_list(POLAR, &lower) {
                    features.polarity.push(lower.clone());
                }
                if let Some((_, value)) = NUMBER_WORDS.iter().find(|(w, _)| *w == lower) {
                    features.numbers.push((*value).to_string());
                }
                let letters: Vec<char> = raw.chars().filter(|c| c.is_alphabetic()).collect();
                let capitalised = letters.first().is_some_and(|c| c.is_uppercase());
                let all_caps = letters.len() >= 2 && letters.iter().all(|c| c.is_uppercase());
                let inner_caps = letters.iter().skip(1).any(|c| c.is_uppercase());
                let is_entity = if all_caps || inner_caps {
                    // Acronyms and CamelCase names; a shouted NOT is a negation, not a name.
                    !in_list(NEGATIONS, &lower) && !in_list(COMMON, &lower) && !in_list(POLAR, &lower)
                } else if capitalised {
                    !sentence_start || !in_list(COMMON, &lower)
                } else {
                    false
                };
                if is_entity && lower != "i" {
                    features.entities.push(lower);
                }
                sentence_start = false;
                continue;
            }
            if matches!(c, '.' | '?' | '!' | ':' | ';' | '\n') {
                sentence_start = true;
            }
            i += 1;
        }
        features.polarity.sort();
        features.numbers.sort();
        features.entities.sort();
        features.entities.dedup();
        features
    }

    /// Approximate heap bytes, for the cache's byte bound.
    pub fn heap_bytes(&self) -> usize {
        [&self.polarity, &self.numbers, &self.entities]
            .iter()
            .map(|list| list.iter().map(|s| s.len() + std::mem::size_of::<String>()).sum::<usize>())
            .sum()
    }
}

/// The guard with its configuration.
#[derive(Debug, Clone)]
pub struct Guard {
    config: GuardConfig,
}

impl Guard {
    /// A guard as configured.
    pub fn new(config: GuardConfig) -> Self {
        Self { config }
    }

    /// Whether a match at `similarity` is checked at all (it lies below the band's upper edge).
    pub fn applies(&self, similarity: f32) -> bool {
        self.config.enabled && similarity < self.config.band_upper
    }

    /// Compares a query's features with a stored entry's; `Err` names the first differing check.
    pub fn check(&self, query: &GuardFeatures, stored: &GuardFeatures) -> Result<(), GuardCheck> {
        if self.config.negation && query.polarity != stored.polarity {
            return Err(GuardCheck::Negation);
        }
        if self.config.numbers && query.numbers != stored.numbers {
            return Err(GuardCheck::Number);
        }
        if self.config.entities && query.entities != stored.entities {
            return Err(GuardCheck::Entity);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard() -> Guard {
        Guard::new(GuardConfig::default())
    }

    fn verdict(a: &str, b: &str) -> Result<(), GuardCheck> {
        guard().check(&GuardFeatures::extract(a), &GuardFeatures::extract(b))
    }

    #[test]
    fn negations_are_caught() {
        assert_eq!(verdict("Which statement is true?", "Which statement is not true?"), Err(GuardCheck::Negation));
        assert_eq!(verdict("Is water wet?", "Isn't water wet?"), Err(GuardCheck::Negation));
        assert_eq!(verdict("Can birds fly?", "Birds can never fly, right?"), Err(GuardCheck::Negation));
        assert_eq!(verdict("Which is the most likely cause?", "Which is the least likely cause?"), Err(GuardCheck::Negation));
        assert_eq!(verdict("Which is NOT a mammal?", "Which is a mammal?"), Err(GuardCheck::Negation));
        assert_eq!(verdict("Is it true?", "is it TRUE"), Ok(()));
    }

    #[test]
    fn numbers_are_caught_and_normalised() {
        assert_eq!(verdict("What is 3 + 5?", "What is 3 + 6?"), Err(GuardCheck::Number));
        assert_eq!(verdict("Convert 1,000 meters", "Convert 1000 meters"), Ok(()));
        assert_eq!(verdict("A price of 3.50 dollars", "A price of 3.5 dollars"), Ok(()));
        assert_eq!(verdict("Name five rivers", "Name 5 rivers"), Ok(()));
        assert_eq!(verdict("Name five rivers", "Name six rivers"), Err(GuardCheck::Number));
        assert_eq!(verdict("What happened in 1914?", "What happened in 1941?"), Err(GuardCheck::Number));
    }

    #[test]
    fn entities_are_caught() {
        assert_eq!(verdict("What is the capital of France?", "What is the capital of Germany?"), Err(GuardCheck::Entity));
        assert_eq!(verdict("Who founded Microsoft?", "Who founded Apple?"), Err(GuardCheck::Entity));
        assert_eq!(verdict("Paris is in which country?", "Berlin is in which country?"), Err(GuardCheck::Entity));
        assert_eq!(verdict("Explain the NATO treaty", "Explain the OPEC treaty"), Err(GuardCheck::Entity));
        assert_eq!(verdict("What does the word \"apple\" mean?", "What does the word \"pear\" mean?"), Err(GuardCheck::Entity));
        // GPT-4 vs GPT-5 differ as numbers first.
        assert_eq!(verdict("Is GPT-4 open?", "Is GPT-5 open?"), Err(GuardCheck::Number));
    }

    #[test]
    fn paraphrases_pass() {
        assert_eq!(verdict("What is the capital of France?", "Tell me the capital city of France."), Ok(()));
        assert_eq!(verdict("How do I sort a list in Python?", "In Python, how can a list be sorted?"), Ok(()));
        assert_eq!(verdict("Explain how vaccines work.", "Describe how vaccines work"), Ok(()));
        assert_eq!(verdict("Could you explain photosynthesis?", "Please explain photosynthesis."), Ok(()));
    }

    #[test]
    fn band_and_switches() {
        let g = guard();
        assert!(g.applies(0.95));
        assert!(!g.applies(0.9995));
        let off = Guard::new(GuardConfig {
            numbers: false,
            ..GuardConfig::default()
        });
        assert_eq!(off.check(&GuardFeatures::extract("3 apples"), &GuardFeatures::extract("4 apples")), Ok(()));
        let disabled = Guard::new(GuardConfig {
            enabled: false,
            ..GuardConfig::default()
        });
        assert!(!disabled.applies(0.5));
    }

    #[test]
    fn features_hold_no_ordinary_words() {
        let f = GuardFeatures::extract("my secret plan is to bake bread at 7 with Alice");
        assert_eq!(f.numbers, vec!["7"]);
        assert_eq!(f.entities, vec!["alice"]);
        assert!(f.polarity.is_empty());
    }
}
