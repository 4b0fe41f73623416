//! Keyword and regex rules from config: cheap lexical signals policies can test by name.

use regex::{Regex, RegexBuilder};

use crate::config::KeywordRuleConfig;

/// Why a keyword rule cannot be compiled.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("keyword rule `{rule}`: {reason}")]
pub struct KeywordError {
    /// The rule.
    pub rule: String,
    /// What is wrong.
    pub reason: String,
}

struct Rule {
    name: String,
    /// One of these words (OR); `None` when the rule lists none.
    any: Option<Regex>,
    /// Each of these words (AND).
    all: Vec<Regex>,
    /// One of these expressions (OR); `None` when the rule lists none.
    regex: Option<Regex>,
}

impl Rule {
    /// Every clause the rule has must hold.
    fn matches(&self, text: &str) -> bool {
        self.any.as_ref().is_none_or(|r| r.is_match(text))
            && self.all.iter().all(|r| r.is_match(text))
            && self.regex.as_ref().is_none_or(|r| r.is_match(text))
    }
}

/// The configured keyword rules, compiled once.
pub struct KeywordRules {
    rules: Vec<Rule>,
}

impl KeywordRules {
    /// Compiles `configs`; words match whole words, ignoring case unless the rule says otherwise.
    pub fn new(configs: &[KeywordRuleConfig]) -> Result<Self, KeywordError> {
        let rules = configs
            .iter()
            .map(|c| {
                let error = |reason: String| KeywordError {
                    rule: c.name.clone(),
                    reason,
                };
                let words = |words: &[String]| -> Result<Regex, KeywordError> {
                    let alternatives: Vec<String> =
                        words.iter().map(|w| regex::escape(w.trim())).collect();
                    // \b only makes sense next to word characters; phrases like "c++" keep their ends.
                    RegexBuilder::new(&format!(
                        r"(?:^|\b|\W)(?:{})(?:$|\b|\W)",
                        alternatives.join("|")
                    ))
                    .case_insensitive(!c.case_sensitive)
                    .build()
                    .map_err(|e| error(e.to_string()))
                };
                let any = (!c.any.is_empty()).then(|| words(&c.any)).transpose()?;
                let all: Vec<Regex> = c
                    .all
                    .iter()
                    .map(|w| words(std::slice::from_ref(w)))
                    .collect::<Result<_, _>>()?;
                let regex = (!c.regex.is_empty())
                    .then(|| {
                        RegexBuilder::new(
                            &c.regex
                                .iter()
                                .map(|r| format!("(?:{r})"))
                                .collect::<Vec<_>>()
                                .join("|"),
                        )
                        .case_insensitive(!c.case_sensitive)
                        .build()
                        .map_err(|e| error(format!("bad regex: {e}")))
                    })
                    .transpose()?;
                if any.is_none() && all.is_empty() && regex.is_none() {
                    return Err(error("lists no `any`, `all` or `regex`".into()));
                }
                Ok(Rule {
                    name: c.name.clone(),
                    any,
                    all,
                    regex,
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { rules })
    }

    /// Whether there are no rules (the signal is then skipped).
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Every rule's name, in config order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.rules.iter().map(|r| r.name.as_str())
    }

    /// Names of the rules that match `text`, in config order.
    pub fn matching(&self, text: &str) -> Vec<String> {
        self.rules
            .iter()
            .filter(|r| r.matches(text))
            .map(|r| r.name.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(name: &str, any: &[&str], all: &[&str], regex: &[&str]) -> KeywordRuleConfig {
        let own = |v: &[&str]| v.iter().map(|s| s.to_string()).collect();
        KeywordRuleConfig {
            name: name.into(),
            any: own(any),
            all: own(all),
            regex: own(regex),
            case_sensitive: false,
        }
    }

    #[test]
    fn any_all_and_regex_clauses() {
        let rules = KeywordRules::new(&[
            rule("code", &["python", "rust", "c++"], &[], &[]),
            rule("refund", &[], &["refund", "order"], &[]),
            rule("ticket", &[], &[], &[r"\bJIRA-\d+\b"]),
            rule("both", &["urgent"], &["invoice"], &[]),
        ])
        .unwrap();
        assert_eq!(rules.matching("How do I sort a list in Python?"), ["code"]);
        assert_eq!(rules.matching("Is C++ faster?"), ["code"]);
        assert!(
            rules.matching("pythonic trusted").is_empty(),
            "whole words only"
        );
        assert_eq!(rules.matching("I want a REFUND for my order"), ["refund"]);
        assert!(
            rules.matching("refund please").is_empty(),
            "all words are needed"
        );
        assert_eq!(rules.matching("see jira-123"), ["ticket"]);
        assert_eq!(rules.matching("urgent: the invoice"), ["both"]);
        assert!(rules.matching("urgent").is_empty());
    }

    #[test]
    fn bad_rules_are_errors_naming_the_rule() {
        let e = KeywordRules::new(&[rule("broken", &[], &[], &["("])])
            .err()
            .unwrap();
        assert_eq!(e.rule, "broken");
        assert!(KeywordRules::new(&[rule("empty", &[], &[], &[])]).is_err());
    }
}
