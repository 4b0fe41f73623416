//! Policies: configured rules over signals that choose the candidate models and the action.
//!
//! Rules are tried from the highest priority down (config order breaks ties); the first whose
//! condition holds decides. A final default rule (every model, reasoning from the signals)
//! always exists, so every request gets a route.

use std::collections::{BTreeSet, HashSet};

use crate::categories::Category;
use crate::config::{Condition, PolicyAction, PolicyConfig, Range, ReasoningOverride};
use crate::engine::signals::pii::PiiType;
use crate::engine::signals::Signals;

/// Why a policy cannot be compiled; names the key at fault.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("config key `{key}`: {message}")]
pub struct PolicyError {
    /// Dotted key, e.g. `policies[2].when.category[0]`.
    pub key: String,
    /// What is wrong.
    pub message: String,
}

/// What the policies may refer to, for checking names at load time.
pub struct PolicyScope<'a> {
    /// Configured model names.
    pub models: HashSet<&'a str>,
    /// Whether a complexity head is configured.
    pub has_complexity: bool,
    /// Labels of the complexity head, when loaded (`None` skips the label check, e.g. when
    /// validating a config file without loading its heads).
    pub complexity_labels: Option<HashSet<&'a str>>,
    /// Whether a jailbreak head is configured.
    pub has_jailbreak: bool,
    /// Keyword rule names.
    pub keywords: HashSet<&'a str>,
    /// Scoring preference names.
    pub preferences: HashSet<&'a str>,
}

/// A condition with names resolved.
#[derive(Debug, Clone, PartialEq)]
enum Test {
    All(Vec<Test>),
    Any(Vec<Test>),
    Not(Box<Test>),
    Category(Vec<Category>),
    Complexity(Vec<String>),
    ReasoningNeed(Range),
    Uncertainty(Range),
    Jailbreak(Range),
    /// Empty means any type.
    Pii(Vec<String>),
    Keyword(Vec<String>),
    Tokens(Range),
    Turns(Range),
    Tools(bool),
    Stream(bool),
    Tenant(Vec<String>),
}

impl Test {
    fn compile(condition: &Condition, key: &str, scope: &PolicyScope) -> Result<Self, PolicyError> {
        let error = |key: String, message: String| PolicyError { key, message };
        let list = |children: &[Condition], name: &str| {
            children
                .iter()
                .enumerate()
                .map(|(i, c)| Test::compile(c, &format!("{key}.{name}[{i}]"), scope))
                .collect::<Result<Vec<_>, _>>()
        };
        Ok(match condition {
            Condition::All(c) => Test::All(list(c, "all")?),
            Condition::Any(c) => Test::Any(list(c, "any")?),
            Condition::Not(c) => {
                Test::Not(Box::new(Test::compile(c, &format!("{key}.not"), scope)?))
            }
            Condition::Category(names) => Test::Category(
                names
                    .iter()
                    .enumerate()
                    .map(|(i, n)| {
                        Category::parse(n).ok_or_else(|| {
                            error(
                                format!("{key}.category[{i}]"),
                                format!(
                                    "`{n}` is not a category; expected one of: {}",
                                    crate::categories::CATEGORIES.join(", ")
                                ),
                            )
                        })
                    })
                    .collect::<Result<_, _>>()?,
            ),
            Condition::Complexity(labels) => {
                if !scope.has_complexity {
                    return Err(error(
                        format!("{key}.complexity"),
                        "needs `signals.complexity` (a complexity head)".into(),
                    ));
                }
                if let Some(known) = &scope.complexity_labels {
                    if let Some((i, label)) = labels
                        .iter()
                        .enumerate()
                        .find(|(_, l)| !known.contains(l.as_str()))
                    {
                        let mut known: Vec<&str> = known.iter().copied().collect();
                        known.sort_unstable();
                        return Err(error(
                            format!("{key}.complexity[{i}]"),
                            format!(
                                "`{label}` is not a label of the complexity head ({})",
                                known.join(", ")
                            ),
                        ));
                    }
                }
                Test::Complexity(labels.clone())
            }
            Condition::ReasoningNeed(r) => Test::ReasoningNeed(*r),
            Condition::Uncertainty(r) => Test::Uncertainty(*r),
            Condition::Jailbreak(r) => {
                if !scope.has_jailbreak {
                    return Err(error(
                        format!("{key}.jailbreak"),
                        "needs `signals.jailbreak` (a jailbreak head)".into(),
                    ));
                }
                Test::Jailbreak(*r)
            }
            Condition::Pii(types) => {
                if types.iter().any(|t| t.eq_ignore_ascii_case("any")) {
                    Test::Pii(Vec::new())
                } else {
                    let canonical = types
                        .iter()
                        .enumerate()
                        .map(|(i, t)| {
                            PiiType::parse(t)
                                .map(|p| p.as_str().to_string())
                                .map_err(|e| error(format!("{key}.pii[{i}]"), e.to_string()))
                        })
                        .collect::<Result<_, _>>()?;
                    Test::Pii(canonical)
                }
            }
            Condition::Keyword(names) => {
                for (i, name) in names.iter().enumerate() {
                    if !scope.keywords.contains(name.as_str()) {
                        return Err(error(
                            format!("{key}.keyword[{i}]"),
                            format!("no keyword rule is named `{name}`"),
                        ));
                    }
                }
                Test::Keyword(names.clone())
            }
            Condition::Tokens(r) => Test::Tokens(*r),
            Condition::Turns(r) => Test::Turns(*r),
            Condition::Tools(b) => Test::Tools(*b),
            Condition::Stream(b) => Test::Stream(*b),
            Condition::Tenant(t) => Test::Tenant(t.clone()),
        })
    }

    fn holds(&self, s: &Signals) -> bool {
        match self {
            Test::All(c) => c.iter().all(|t| t.holds(s)),
            Test::Any(c) => c.iter().any(|t| t.holds(s)),
            Test::Not(c) => !c.holds(s),
            Test::Category(cats) => cats.contains(&s.domain.top().0),
            Test::Complexity(labels) => s
                .complexity
                .as_ref()
                .is_some_and(|c| labels.iter().any(|l| l == c.top().0)),
            Test::ReasoningNeed(r) => r.contains(s.reasoning_need as f64),
            Test::Uncertainty(r) => r.contains(s.uncertainty as f64),
            Test::Jailbreak(r) => s.jailbreak.is_some_and(|score| r.contains(score as f64)),
            Test::Pii(types) => s.pii.as_ref().is_some_and(|found| {
                !found.types.is_empty()
                    && (types.is_empty() || types.iter().any(|t| found.types.contains(t)))
            }),
            Test::Keyword(names) => names.iter().any(|n| s.keywords.contains(n)),
            Test::Tokens(r) => r.contains(s.context.prompt_tokens as f64),
            Test::Turns(r) => r.contains(s.context.turns as f64),
            Test::Tools(b) => (s.context.tools > 0) == *b,
            Test::Stream(b) => s.context.stream == *b,
            Test::Tenant(t) => s
                .context
                .tenant
                .as_ref()
                .is_some_and(|tenant| t.contains(tenant)),
        }
    }

    /// The condition in words, as the dashboard's policy view shows it.
    fn describe(&self) -> String {
        let range = |name: &str, r: &Range| match (r.min, r.max) {
            (Some(min), Some(max)) => format!("{min} \u{2264} {name} \u{2264} {max}"),
            (Some(min), None) => format!("{name} \u{2265} {min}"),
            (None, Some(max)) => format!("{name} \u{2264} {max}"),
            (None, None) => format!("any {name}"),
        };
        let join = |children: &[Test], word: &str| {
            children
                .iter()
                .map(|c| format!("({})", c.describe()))
                .collect::<Vec<_>>()
                .join(word)
        };
        match self {
            Test::All(c) => join(c, " and "),
            Test::Any(c) => join(c, " or "),
            Test::Not(c) => format!("not ({})", c.describe()),
            Test::Category(cats) => format!(
                "category in [{}]",
                cats.iter().map(|c| c.name()).collect::<Vec<_>>().join(", ")
            ),
            Test::Complexity(labels) => format!("complexity in [{}]", labels.join(", ")),
            Test::ReasoningNeed(r) => range("reasoning need", r),
            Test::Uncertainty(r) => range("uncertainty", r),
            Test::Jailbreak(r) => range("jailbreak", r),
            Test::Pii(types) if types.is_empty() => "any personal data".to_string(),
            Test::Pii(types) => format!("personal data in [{}]", types.join(", ")),
            Test::Keyword(names) => format!("keyword [{}]", names.join(", ")),
            Test::Tokens(r) => range("prompt tokens", r),
            Test::Turns(r) => range("turns", r),
            Test::Tools(b) => if *b { "has tools" } else { "no tools" }.to_string(),
            Test::Stream(b) => if *b { "streamed" } else { "not streamed" }.to_string(),
            Test::Tenant(t) => format!("tenant in [{}]", t.join(", ")),
        }
    }

    /// The signals the condition reads (`keyword:NAME` for keyword rules).
    fn signals(&self, out: &mut BTreeSet<String>) {
        let name = match self {
            Test::All(c) | Test::Any(c) => {
                c.iter().for_each(|t| t.signals(out));
                return;
            }
            Test::Not(c) => return c.signals(out),
            Test::Keyword(names) => {
                out.extend(names.iter().map(|n| format!("keyword:{n}")));
                return;
            }
            Test::Category(_) => "domain",
            Test::Complexity(_) => "complexity",
            Test::ReasoningNeed(_) => "reasoning_need",
            Test::Uncertainty(_) => "uncertainty",
            Test::Jailbreak(_) => "jailbreak",
            Test::Pii(_) => "pii",
            Test::Tokens(_)
            | Test::Turns(_)
            | Test::Tools(_)
            | Test::Stream(_)
            | Test::Tenant(_) => "request",
        };
        out.insert(name.to_string());
    }

    fn mentions_pii(&self) -> bool {
        match self {
            Test::All(c) | Test::Any(c) => c.iter().any(Test::mentions_pii),
            Test::Not(c) => c.mentions_pii(),
            Test::Pii(_) => true,
            _ => false,
        }
    }
}

/// One compiled rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// Name reported in decisions.
    pub name: String,
    test: Option<Test>,
    /// What to do.
    pub action: PolicyAction,
    /// Candidate model names; `None` means every model.
    pub models: Option<Vec<String>>,
    /// Imposed reasoning; `None` means derived from the signals.
    pub reasoning: Option<ReasoningOverride>,
    /// Flag added to the decision.
    pub flag: Option<String>,
    /// Scoring preference for matching requests.
    pub preference: Option<String>,
}

impl Policy {
    /// The rule's condition in words; `None` when it has none (it always matches).
    pub fn condition(&self) -> Option<String> {
        self.test.as_ref().map(Test::describe)
    }

    /// The signals the rule's condition reads, sorted.
    pub fn signals(&self) -> Vec<String> {
        let mut out = BTreeSet::new();
        if let Some(test) = &self.test {
            test.signals(&mut out);
        }
        out.into_iter().collect()
    }
}

/// Name of the rule that applies when no configured rule matches.
pub const DEFAULT_POLICY: &str = "default";

/// The rules of one configuration, in evaluation order, ending with the default.
#[derive(Debug, Clone)]
pub struct Policies {
    rules: Vec<Policy>,
    default: Policy,
    needs_pii: bool,
}

impl Policies {
    /// Compiles `configs`, checking every name they use against `scope`.
    pub fn new(configs: &[PolicyConfig], scope: &PolicyScope) -> Result<Self, PolicyError> {
        let mut rules = Vec::with_capacity(configs.len());
        let mut names = HashSet::new();
        for (i, c) in configs.iter().enumerate() {
            let key = format!("policies[{i}]");
            let error = |field: &str, message: String| PolicyError {
                key: format!("{key}.{field}"),
                message,
            };
            if c.name.trim().is_empty() || c.name == DEFAULT_POLICY {
                return Err(error(
                    "name",
                    format!("must be non-empty and not `{DEFAULT_POLICY}`"),
                ));
            }
            if !names.insert(c.name.as_str()) {
                return Err(error("name", format!("`{}` is used twice", c.name)));
            }
            if let Some(models) = &c.models {
                if models.is_empty() {
                    return Err(error(
                        "models",
                        "must list at least one model (omit it for all)".into(),
                    ));
                }
                for (j, m) in models.iter().enumerate() {
                    if !scope.models.contains(m.as_str()) {
                        return Err(error(
                            &format!("models[{j}]"),
                            format!("`{m}` is not a configured model"),
                        ));
                    }
                }
            }
            if let Some(p) = &c.preference {
                if !scope.preferences.contains(p.as_str()) {
                    return Err(error(
                        "preference",
                        format!("`{p}` is not in scoring.preferences"),
                    ));
                }
            }
            let test = c
                .when
                .as_ref()
                .map(|w| Test::compile(w, &format!("{key}.when"), scope))
                .transpose()?;
            rules.push((
                c.priority,
                i,
                Policy {
                    name: c.name.clone(),
                    test,
                    action: c.action,
                    models: c.models.clone(),
                    reasoning: c.reasoning,
                    flag: c.flag.clone(),
                    preference: c.preference.clone(),
                },
            ));
        }
        rules.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        let rules: Vec<Policy> = rules.into_iter().map(|(_, _, p)| p).collect();
        let needs_pii = rules.iter().any(|r| {
            r.action == PolicyAction::Mask || r.test.as_ref().is_some_and(Test::mentions_pii)
        });
        Ok(Self {
            rules,
            default: Policy {
                name: DEFAULT_POLICY.into(),
                test: None,
                action: PolicyAction::Route,
                models: None,
                reasoning: None,
                flag: None,
                preference: None,
            },
            needs_pii,
        })
    }

    /// The first rule whose condition holds for `signals`, or the default rule.
    pub fn select(&self, signals: &Signals) -> &Policy {
        self.rules
            .iter()
            .find(|r| r.test.as_ref().is_none_or(|t| t.holds(signals)))
            .unwrap_or(&self.default)
    }

    /// The default rule alone: what applies when the semantic signals are unavailable.
    pub fn default_rule(&self) -> &Policy {
        &self.default
    }

    /// Whether any rule needs personal-data detection.
    pub fn needs_pii(&self) -> bool {
        self.needs_pii
    }

    /// The rules in evaluation order (without the default).
    pub fn rules(&self) -> &[Policy] {
        &self.rules
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::signals::domain::CategoryScores;
    use crate::engine::signals::{Context, PiiSignal};

    fn scope() -> PolicyScope<'static> {
        PolicyScope {
            models: ["small", "big", "guard"].into(),
            has_complexity: true,
            complexity_labels: Some(["simple", "complex"].into()),
            has_jailbreak: true,
            keywords: ["code"].into(),
            preferences: ["cost"].into(),
        }
    }

    fn signals(category: &str, jailbreak: f32, keywords: &[&str], pii: &[&str]) -> Signals {
        Signals {
            domain: CategoryScores::from_pairs([(Category::parse(category).unwrap(), 0.9)]),
            uncertainty: 0.1,
            complexity: None,
            reasoning_need: 0.3,
            jailbreak: Some(jailbreak),
            jailbreak_detected: jailbreak >= 0.5,
            keywords: keywords.iter().map(|s| s.to_string()).collect(),
            context: Context::default(),
            pii: Some(PiiSignal {
                types: pii.iter().map(|s| s.to_string()).collect(),
                ..PiiSignal::default()
            }),
        }
    }

    fn policies(yaml: serde_json::Value) -> Result<Policies, PolicyError> {
        let configs: Vec<PolicyConfig> = serde_json::from_value(yaml).unwrap();
        Policies::new(&configs, &scope())
    }

    #[test]
    fn priority_then_order_decides_and_the_default_always_exists() {
        let p = policies(serde_json::json!([
            {"name": "math", "when": {"category": ["math"]}, "models": ["big"]},
            {"name": "block", "priority": 10, "when": {"jailbreak": {"min": 0.8}}, "action": "block"},
            {"name": "code", "when": {"all": [{"keyword": ["code"]}, {"not": {"category": ["law"]}}]}, "models": ["small"]},
            {"name": "mask", "when": {"pii": ["email"]}, "action": "mask"}
        ]))
        .unwrap();
        assert_eq!(p.rules()[0].name, "block");
        assert_eq!(p.select(&signals("math", 0.9, &[], &[])).name, "block");
        assert_eq!(p.select(&signals("math", 0.1, &[], &[])).name, "math");
        assert_eq!(
            p.select(&signals("history", 0.1, &["code"], &[])).name,
            "code"
        );
        assert_eq!(
            p.select(&signals("law", 0.1, &["code"], &[])).name,
            DEFAULT_POLICY
        );
        assert_eq!(p.select(&signals("law", 0.1, &[], &["EMAIL"])).name, "mask");
        let e =
            policies(serde_json::json!([{"name": "x", "when": {"pii": ["EMAIL", "SHOE_SIZE"]}}]))
                .unwrap_err();
        assert_eq!(e.key, "policies[0].when.pii[1]");
        assert!(p.needs_pii());
    }

    #[test]
    fn rules_describe_their_condition_and_the_signals_it_reads() {
        let p = policies(serde_json::json!([
            {"name": "guard", "when": {"jailbreak": {"min": 0.5, "max": 0.9}}},
            {"name": "mixed", "when": {"all": [{"keyword": ["code"]}, {"not": {"category": ["law", "math"]}}, {"tokens": {"max": 100}}]}},
            {"name": "always"}
        ]))
        .unwrap();
        let [guard, mixed, always] = p.rules() else {
            panic!("three rules")
        };
        assert_eq!(
            guard.condition().as_deref(),
            Some("0.5 \u{2264} jailbreak \u{2264} 0.9")
        );
        assert_eq!(guard.signals(), ["jailbreak"]);
        assert_eq!(mixed.condition().as_deref(), Some("(keyword [code]) and (not (category in [law, math])) and (prompt tokens \u{2264} 100)"));
        assert_eq!(mixed.signals(), ["domain", "keyword:code", "request"]);
        assert_eq!(always.condition(), None);
        assert!(always.signals().is_empty());
    }

    #[test]
    fn unknown_names_are_errors_naming_the_key() {
        let e = policies(
            serde_json::json!([{"name": "x", "when": {"any": [{"category": ["astrology"]}]}}]),
        )
        .unwrap_err();
        assert_eq!(e.key, "policies[0].when.any[0].category[0]");
        let e = policies(serde_json::json!([{"name": "x", "models": ["gpt-9"]}])).unwrap_err();
        assert_eq!(e.key, "policies[0].models[0]");
        let e = policies(serde_json::json!([{"name": "x", "when": {"complexity": ["hard"]}}]))
            .unwrap_err();
        assert!(e.message.contains("hard"));
        let e = policies(serde_json::json!([{"name": "x", "when": {"keyword": ["nope"]}}]))
            .unwrap_err();
        assert_eq!(e.key, "policies[0].when.keyword[0]");
        let e = policies(serde_json::json!([{"name": "a"}, {"name": "a"}])).unwrap_err();
        assert_eq!(e.key, "policies[1].name");
    }
}
