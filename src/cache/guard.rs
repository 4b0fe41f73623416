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
//! - entities: capitalised words inside a sentence, all-caps acronyms, words mixing letters
//!   and digits, and quoted spans, case-folded. A capitalised word opening a sentence may be a
//!   name ("Paris is ...") or just a verb ("Describe ..."): such leading words (common words
//!   excepted) veto only when both prompts have them and they differ, so a framing added by a
//!   paraphrase ("Help me with this: ...") does not;
//! - content: the content words (stop words dropped, light stemming) that one prompt has in
//!   place of the other's. A word or two replaced is a paraphrase; three or more, and at least
//!   a sixth of the longer prompt's (or eight, however long), is a different question behind a
//!   shared preamble, like two MMLU moral scenarios under the same instructions (0.91-0.93
//!   similar).
//!
//! Entries keep these features, never the prompt text: numbers, entities and polar words as
//! small sorted lists, content words only as 32-bit hashes.

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
    /// Many content words differ (a different question with a shared preamble).
    Content,
}

impl GuardCheck {
    /// A stable label for metrics.
    pub fn label(self) -> &'static str {
        match self {
            GuardCheck::Negation => "negation",
            GuardCheck::Number => "number",
            GuardCheck::Entity => "entity",
            GuardCheck::Content => "content",
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
    /// Capitalised uncommon words opening a sentence (possible names), case-folded, sorted,
    /// without repeats.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub leading: Vec<String>,
    /// FNV-1a hashes of the stemmed content words, sorted, without repeats.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub content: Vec<u32>,
}

/// Words that negate.
const NEGATIONS: &[&str] = &[
    "not", "no", "never", "none", "nobody", "nothing", "neither", "nor", "nowhere", "cannot",
    "without", "hardly", "barely", "scarcely", "non",
];

/// Polar words whose swap for their opposite keeps the embedding close but flips the answer.
const POLAR: &[&str] = &[
    "true",
    "false",
    "correct",
    "incorrect",
    "right",
    "wrong",
    "valid",
    "invalid",
    "most",
    "least",
    "more",
    "less",
    "fewer",
    "greater",
    "smaller",
    "larger",
    "lower",
    "higher",
    "maximum",
    "minimum",
    "max",
    "min",
    "increase",
    "decrease",
    "increases",
    "decreases",
    "before",
    "after",
    "above",
    "below",
    "first",
    "last",
    "best",
    "worst",
    "always",
    "sometimes",
    "legal",
    "illegal",
    "likely",
    "unlikely",
    "possible",
    "impossible",
    "except",
    "only",
    "all",
    "any",
    "some",
    "positive",
    "negative",
    "agree",
    "disagree",
    "advantage",
    "disadvantage",
    "strengthen",
    "weaken",
    "strengthens",
    "weakens",
    "support",
    "undermine",
    "up",
    "down",
    "inside",
    "outside",
    "open",
    "closed",
    "win",
    "lose",
    "accept",
    "reject",
    "allow",
    "forbid",
    "buy",
    "sell",
    "rise",
    "fall",
    "gain",
    "loss",
    "increase",
    "decrease",
    "add",
    "remove",
];

/// Number words mapped to their value (`one` is left out: it is mostly a pronoun).
const NUMBER_WORDS: &[(&str, &str)] = &[
    ("zero", "0"),
    ("two", "2"),
    ("three", "3"),
    ("four", "4"),
    ("five", "5"),
    ("six", "6"),
    ("seven", "7"),
    ("eight", "8"),
    ("nine", "9"),
    ("ten", "10"),
    ("eleven", "11"),
    ("twelve", "12"),
    ("thirteen", "13"),
    ("fourteen", "14"),
    ("fifteen", "15"),
    ("sixteen", "16"),
    ("seventeen", "17"),
    ("eighteen", "18"),
    ("nineteen", "19"),
    ("twenty", "20"),
    ("thirty", "30"),
    ("forty", "40"),
    ("fifty", "50"),
    ("sixty", "60"),
    ("seventy", "70"),
    ("eighty", "80"),
    ("ninety", "90"),
    ("hundred", "100"),
    ("thousand", "1000"),
    ("million", "1000000"),
    ("billion", "1000000000"),
    ("half", "0.5"),
    ("twice", "x2"),
    ("double", "x2"),
    ("triple", "x3"),
    ("third", "1/3"),
    ("quarter", "1/4"),
];

/// Common words that start sentences capitalised without being names.
const COMMON: &[&str] = &[
    "a",
    "about",
    "according",
    "after",
    "all",
    "also",
    "although",
    "an",
    "and",
    "another",
    "any",
    "are",
    "as",
    "assume",
    "assuming",
    "at",
    "based",
    "be",
    "because",
    "before",
    "being",
    "below",
    "both",
    "but",
    "by",
    "calculate",
    "can",
    "choose",
    "compare",
    "compute",
    "consider",
    "could",
    "define",
    "describe",
    "despite",
    "determine",
    "did",
    "do",
    "does",
    "during",
    "each",
    "either",
    "estimate",
    "evaluate",
    "even",
    "every",
    "explain",
    "find",
    "for",
    "from",
    "give",
    "given",
    "has",
    "have",
    "having",
    "he",
    "her",
    "here",
    "his",
    "how",
    "however",
    "i",
    "identify",
    "if",
    "imagine",
    "in",
    "is",
    "it",
    "its",
    "let",
    "list",
    "many",
    "may",
    "might",
    "most",
    "much",
    "my",
    "name",
    "no",
    "none",
    "not",
    "now",
    "of",
    "on",
    "once",
    "one",
    "only",
    "or",
    "other",
    "our",
    "please",
    "provide",
    "question",
    "regarding",
    "select",
    "she",
    "should",
    "show",
    "since",
    "so",
    "solve",
    "some",
    "state",
    "statement",
    "suppose",
    "tell",
    "than",
    "that",
    "the",
    "their",
    "then",
    "there",
    "these",
    "they",
    "this",
    "those",
    "though",
    "to",
    "true",
    "under",
    "unlike",
    "until",
    "upon",
    "use",
    "using",
    "we",
    "what",
    "whats",
    "when",
    "where",
    "whereas",
    "whether",
    "which",
    "while",
    "who",
    "whom",
    "whose",
    "why",
    "will",
    "with",
    "within",
    "would",
    "write",
    "yes",
    "you",
    "your",
    "false",
    "answer",
    "briefly",
    "kindly",
    "quick",
    "quickly",
    "simply",
    "into",
    "over",
    "among",
    // Imperatives and chat framing that open prompts.
    "analyse",
    "analyze",
    "classify",
    "contrast",
    "convert",
    "create",
    "derive",
    "design",
    "discuss",
    "draft",
    "generate",
    "help",
    "hello",
    "hey",
    "hi",
    "okay",
    "ok",
    "outline",
    "predict",
    "prove",
    "recommend",
    "rewrite",
    "simplify",
    "suggest",
    "summarise",
    "summarize",
    "sure",
    "thank",
    "thanks",
    "translate",
    "make",
    "need",
    "want",
    "note",
    "recall",
    "remember",
    "assess",
    "check",
    "clarify",
    "elaborate",
    "illustrate",
    "interpret",
    "justify",
    "review",
    "verify",
    "dear",
    "good",
    "great",
    "just",
    "also",
    "again",
    "first",
    "next",
    "finally",
    "then",
    "now",
    "well",
    "actually",
    "question",
    "task",
];

/// Function words that carry no content (besides [`COMMON`], [`NEGATIONS`] and [`POLAR`]).
const STOP: &[&str] = &[
    "the",
    "and",
    "for",
    "that",
    "this",
    "with",
    "from",
    "are",
    "was",
    "were",
    "been",
    "has",
    "have",
    "had",
    "its",
    "their",
    "there",
    "these",
    "those",
    "which",
    "what",
    "who",
    "whom",
    "whose",
    "when",
    "where",
    "why",
    "how",
    "than",
    "then",
    "them",
    "they",
    "she",
    "her",
    "his",
    "him",
    "our",
    "you",
    "your",
    "can",
    "could",
    "would",
    "should",
    "will",
    "may",
    "might",
    "must",
    "shall",
    "does",
    "did",
    "doing",
    "done",
    "being",
    "into",
    "onto",
    "upon",
    "about",
    "over",
    "under",
    "between",
    "such",
    "each",
    "other",
    "another",
    "very",
    "also",
    "just",
    "only",
    "both",
    "either",
    "own",
    "same",
    "any",
    "some",
    "most",
    "more",
    "much",
    "many",
    "few",
    "one",
    "following",
    "question",
    "answer",
    "please",
    "explain",
    "tell",
    "thanks",
    "thank",
    "help",
    "know",
    "like",
    "want",
    "need",
    "could",
    "quick",
    "let",
    "use",
    "used",
    "using",
    "given",
];

/// Light stemming so that `sorted`, `sorts` and `sorting` meet `sort`.
fn stem(word: &str) -> &str {
    for suffix in ["ingly", "edly", "ing", "ies", "ied", "es", "ed", "ly", "s"] {
        if let Some(base) = word.strip_suffix(suffix) {
            if base.len() >= 3 {
                return base;
            }
        }
    }
    word
}

/// FNV-1a, 32 bits: stable across builds and processes.
fn fnv1a(word: &str) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in word.bytes() {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash
}

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
                    let span: String = chars[i + 1..i + 1 + len]
                        .iter()
                        .collect::<String>()
                        .trim()
                        .to_lowercase();
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
                        || ((chars[i] == '.' || chars[i] == ',')
                            && chars.get(i + 1).is_some_and(|d| d.is_ascii_digit())))
                {
                    i += 1;
                }
                let number: String = chars[start..i].iter().collect();
                features.numbers.push(canonical_number(&number));
                // Letters glued after the digits (`3x`, `5G`, `2-methylpropane`) make the word an
                // entity; a range like `80-90` is two numbers.
                let mut end = i;
                while end < chars.len() && (chars[end].is_alphanumeric() || chars[end] == '-') {
                    end += 1;
                }
                if chars[i..end].iter().any(|c| c.is_alphabetic()) {
                    let word: String = chars[start..end].iter().collect();
                    features.entities.push(word.to_lowercase());
                    let tail: String = chars[i..end].iter().collect();
                    for part in tail
                        .split(|c: char| !c.is_ascii_digit())
                        .filter(|p| !p.is_empty())
                    {
                        features.numbers.push(canonical_number(part));
                    }
                    i = end;
                }
                sentence_start = false;
                continue;
            }
            if c.is_alphabetic() {
                let start = i;
                while i < chars.len()
                    && (chars[i].is_alphanumeric()
                        || chars[i] == '\''
                        || chars[i] == '\u{2019}'
                        || chars[i] == '-')
                {
                    i += 1;
                }
                let raw: String = chars[start..i].iter().collect();
                let raw = raw
                    .trim_end_matches(['\'', '\u{2019}', '-'])
                    .replace('\u{2019}', "'");
                if raw.chars().any(|c| c.is_ascii_digit()) {
                    // `GPT-4`: an entity; its digits count as a number as well.
                    features.entities.push(raw.to_lowercase());
                    for part in raw
                        .split(|c: char| !c.is_ascii_digit())
                        .filter(|p| !p.is_empty())
                    {
                        features.numbers.push(canonical_number(part));
                    }
                    sentence_start = false;
                    continue;
                }
                let lower = raw.to_lowercase();
                // `What's` is as common as `whats`.
                let plain = lower.replace('\'', "");
                if plain.len() >= 3
                    && plain.chars().all(|c| c.is_alphabetic() || c == '-')
                    && !in_list(STOP, &plain)
                    && !in_list(COMMON, &plain)
                    && !in_list(NEGATIONS, &plain)
                    && !in_list(POLAR, &plain)
                {
                    features.content.push(fnv1a(stem(&plain)));
                }
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
                let common =
                    in_list(COMMON, &plain) || in_list(NEGATIONS, &lower) || in_list(POLAR, &lower);
                if (all_caps || inner_caps) && !common {
                    // Acronyms and CamelCase names; a shouted NOT is a negation, not a name.
                    features.entities.push(lower);
                } else if capitalised && !common && lower != "i" {
                    if sentence_start {
                        features.leading.push(lower);
                    } else {
                        features.entities.push(lower);
                    }
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
        features.leading.sort();
        features.leading.dedup();
        features.content.sort_unstable();
        features.content.dedup();
        features
    }

    /// Approximate heap bytes, for the cache's byte bound.
    pub fn heap_bytes(&self) -> usize {
        [&self.polarity, &self.numbers, &self.entities, &self.leading]
            .iter()
            .map(|list| {
                list.iter()
                    .map(|s| s.len() + std::mem::size_of::<String>())
                    .sum::<usize>()
            })
            .sum::<usize>()
            + self.content.len() * 4
    }
}

/// Content words `a` has that `b` lacks (both sorted, without repeats).
fn missing(a: &[u32], b: &[u32]) -> usize {
    a.iter().filter(|h| b.binary_search(h).is_err()).count()
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

    /// Whether a match at `similarity` is checked at all: it lies below the band's upper edge,
    /// or the edge is 1 (every semantic match is checked).
    pub fn applies(&self, similarity: f32) -> bool {
        self.config.enabled
            && (self.config.band_upper >= 1.0 || similarity < self.config.band_upper)
    }

    /// Compares a query's features with a stored entry's; `Err` names the first differing check.
    pub fn check(&self, query: &GuardFeatures, stored: &GuardFeatures) -> Result<(), GuardCheck> {
        if self.config.negation && query.polarity != stored.polarity {
            return Err(GuardCheck::Negation);
        }
        if self.config.numbers && query.numbers != stored.numbers {
            return Err(GuardCheck::Number);
        }
        if self.config.entities {
            let leading_differ = !query.leading.is_empty()
                && !stored.leading.is_empty()
                && query.leading != stored.leading;
            if query.entities != stored.entities || leading_differ {
                return Err(GuardCheck::Entity);
            }
        }
        if self.config.content {
            // Words added on one side only (a framing, a "please") are not substitutions.
            let substituted = missing(&query.content, &stored.content)
                .min(missing(&stored.content, &query.content));
            let longer = query.content.len().max(stored.content.len());
            if substituted >= 8 || (substituted >= 3 && substituted * 6 >= longer) {
                return Err(GuardCheck::Content);
            }
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
        assert_eq!(
            verdict("Which statement is true?", "Which statement is not true?"),
            Err(GuardCheck::Negation)
        );
        assert_eq!(
            verdict("Is water wet?", "Isn't water wet?"),
            Err(GuardCheck::Negation)
        );
        assert_eq!(
            verdict("Can birds fly?", "Birds can never fly, right?"),
            Err(GuardCheck::Negation)
        );
        assert_eq!(
            verdict(
                "Which is the most likely cause?",
                "Which is the least likely cause?"
            ),
            Err(GuardCheck::Negation)
        );
        assert_eq!(
            verdict("Which is NOT a mammal?", "Which is a mammal?"),
            Err(GuardCheck::Negation)
        );
        assert_eq!(verdict("Is it true?", "is it TRUE"), Ok(()));
    }

    #[test]
    fn numbers_are_caught_and_normalised() {
        assert_eq!(
            verdict("What is 3 + 5?", "What is 3 + 6?"),
            Err(GuardCheck::Number)
        );
        assert_eq!(
            verdict("Convert 1,000 meters", "Convert 1000 meters"),
            Ok(())
        );
        assert_eq!(
            verdict("A price of 3.50 dollars", "A price of 3.5 dollars"),
            Ok(())
        );
        assert_eq!(verdict("Name five rivers", "Name 5 rivers"), Ok(()));
        assert_eq!(
            verdict("Name five rivers", "Name six rivers"),
            Err(GuardCheck::Number)
        );
        assert_eq!(
            verdict("What happened in 1914?", "What happened in 1941?"),
            Err(GuardCheck::Number)
        );
        assert_eq!(
            verdict("during 80-90 minutes", "during 80-91 minutes"),
            Err(GuardCheck::Number)
        );
        assert_eq!(
            verdict("Is 3x larger?", "Is 4x larger?"),
            Err(GuardCheck::Number)
        );
    }

    #[test]
    fn entities_are_caught() {
        assert_eq!(
            verdict(
                "What is the capital of France?",
                "What is the capital of Germany?"
            ),
            Err(GuardCheck::Entity)
        );
        assert_eq!(
            verdict("Who founded Microsoft?", "Who founded Apple?"),
            Err(GuardCheck::Entity)
        );
        assert_eq!(
            verdict("Paris is in which country?", "Berlin is in which country?"),
            Err(GuardCheck::Entity)
        );
        assert_eq!(
            verdict("Explain the NATO treaty", "Explain the OPEC treaty"),
            Err(GuardCheck::Entity)
        );
        assert_eq!(
            verdict(
                "What does the word \"apple\" mean?",
                "What does the word \"pear\" mean?"
            ),
            Err(GuardCheck::Entity)
        );
        // GPT-4 vs GPT-5 differ as numbers first.
        assert_eq!(
            verdict("Is GPT-4 open?", "Is GPT-5 open?"),
            Err(GuardCheck::Number)
        );
    }

    #[test]
    fn different_questions_behind_a_shared_preamble_are_caught() {
        let preamble = "For which of these two scenarios does the main character do something clearly morally wrong? ";
        let a = format!("{preamble}Scenario 1 | I took the groceries home. Scenario 2 | I painted the fence blue.");
        let b = format!("{preamble}Scenario 1 | I kicked the sleeping dog. Scenario 2 | I borrowed money from my friend.");
        assert_eq!(verdict(&a, &b), Err(GuardCheck::Content));
        // A couple of synonyms in a long question are a paraphrase.
        assert_eq!(
            verdict(
                "Which of the following best describes the primary function of mitochondria in eukaryotic cells?",
                "Which one of the following best characterises the main function of mitochondria in eukaryotic cells?"
            ),
            Ok(())
        );
        assert_eq!(
            verdict(
                "How do I sort a list in Python?",
                "In Python, how is a list sorted?"
            ),
            Ok(())
        );
    }

    #[test]
    fn paraphrases_pass() {
        assert_eq!(
            verdict(
                "What is the capital of France?",
                "Tell me the capital city of France."
            ),
            Ok(())
        );
        assert_eq!(
            verdict(
                "How do I sort a list in Python?",
                "In Python, how can a list be sorted?"
            ),
            Ok(())
        );
        assert_eq!(
            verdict("Explain how vaccines work.", "Describe how vaccines work"),
            Ok(())
        );
        assert_eq!(
            verdict(
                "Could you explain photosynthesis?",
                "Please explain photosynthesis."
            ),
            Ok(())
        );
        assert_eq!(
            verdict(
                "Help me with this one: What is osmosis?",
                "What is osmosis?"
            ),
            Ok(())
        );
        assert_eq!(
            verdict(
                "Describe how vaccines work.",
                "Summarise how vaccines work."
            ),
            Ok(())
        );
        assert_eq!(
            verdict("What is osmosis? Thanks!", "Question: What is osmosis?"),
            Ok(())
        );
        assert_eq!(
            verdict("Could you tell me What's osmosis?", "What's osmosis?"),
            Ok(())
        );
    }

    #[test]
    fn band_and_switches() {
        let g = guard();
        assert!(g.applies(0.95));
        assert!(g.applies(1.0), "the default band covers every match");
        let banded = Guard::new(GuardConfig {
            band_upper: 0.99,
            ..GuardConfig::default()
        });
        assert!(banded.applies(0.95));
        assert!(!banded.applies(0.995));
        let off = Guard::new(GuardConfig {
            numbers: false,
            ..GuardConfig::default()
        });
        assert_eq!(
            off.check(
                &GuardFeatures::extract("3 apples"),
                &GuardFeatures::extract("4 apples")
            ),
            Ok(())
        );
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
        let json = serde_json::to_string(&f).unwrap();
        for word in ["secret", "plan", "bake", "bread"] {
            assert!(
                !json.contains(word),
                "content words are kept as hashes: {json}"
            );
        }
        assert_eq!(f.content.len(), 5, "secret, plan, bake, bread, alice");
    }
}
