//! The multi-factor scorer: hard limits drop candidates, then quality, cost, latency and load
//! are normalised per request, weighted and summed.
//!
//! Normalisation is relative to the best candidate of the request: quality `q / max q`, cost
//! `min cost / cost`, latency `min latency / latency`, load `(1 + min load) / (1 + load)`, so
//! every factor lies in (0, 1] and 1 is the best value seen. A candidate's score is the
//! weighted mean of its factors; each factor's contribution is reported.

use serde::Serialize;

use crate::config::{Fallback, ScoringConfig, Weights};
use crate::engine::fleet::{Fleet, ModelCard};
use crate::engine::stats::ModelStats;

/// One factor of one candidate.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Factor {
    /// The raw value (quality 0-1, cost in price units, latency in ms, requests in flight).
    pub value: f64,
    /// Its share of the score: weight times normalised value over the sum of weights.
    pub contribution: f64,
}

/// Every factor of one candidate.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Factors {
    /// Expected quality over the category probabilities.
    pub quality: Factor,
    /// Estimated cost of this request.
    pub cost: Factor,
    /// Latency EWMA.
    pub latency: Factor,
    /// Requests in flight.
    pub load: Factor,
}

/// A candidate that survived the hard limits, with its score.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScoredCandidate {
    /// Model name.
    pub model: String,
    /// Weighted mean of the normalised factors, 0 to 1.
    pub score: f64,
    /// Each factor's value and contribution.
    pub factors: Factors,
}

/// A candidate a hard limit dropped, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Excluded {
    /// Model name.
    pub model: String,
    /// Which limit, in words.
    pub reason: String,
}

/// The outcome of scoring one request.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Ranking {
    /// Survivors, best first. Never empty when returned as `Ok`.
    pub ranked: Vec<ScoredCandidate>,
    /// Candidates dropped by a hard limit.
    pub excluded: Vec<Excluded>,
    /// Set when no candidate survived and the configured fallback chose the model.
    pub fallback: Option<Fallback>,
}

/// What a request asks of a model, for cost and limits.
#[derive(Debug, Clone)]
pub struct Demand<'a> {
    /// Estimated prompt tokens.
    pub prompt_tokens: u64,
    /// Completion tokens the request allows, if it says.
    pub max_completion_tokens: Option<u64>,
    /// Whether reasoning is planned (costs more on families that can reason).
    pub reasoning: bool,
    /// The tenant, if the request names one.
    pub tenant: Option<&'a str>,
    /// Personal-data types the chosen model will see.
    pub pii_types: &'a [String],
}

/// No candidate may serve the request.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("no configured model may serve this request: {}", excluded.iter().map(|e| format!("{} ({})", e.model, e.reason)).collect::<Vec<_>>().join("; "))]
pub struct NoEligibleModel {
    /// Why each candidate was dropped.
    pub excluded: Vec<Excluded>,
}

/// The scorer of one configuration.
pub struct Scorer {
    config: ScoringConfig,
}

impl Scorer {
    /// A scorer with validated scoring config.
    pub fn new(config: ScoringConfig) -> Self {
        Self { config }
    }

    /// The weights for a request: the named preference (request header or policy), else the
    /// configured default, with an explicit cost weight in [0, 1] splitting quality and cost.
    pub fn weights(&self, preference: Option<&str>, cost_weight: Option<f64>) -> Weights {
        let mut w = preference
            .and_then(|p| self.config.preference(p))
            .unwrap_or(self.config.weights);
        if let Some(c) = cost_weight {
            w.cost = c.clamp(0.0, 1.0);
            w.quality = 1.0 - w.cost;
        }
        w
    }

    /// The scoring settings (weights, limits, fallback).
    pub fn config(&self) -> &ScoringConfig {
        &self.config
    }

    /// Whether `name` is a preference requests may ask for.
    pub fn has_preference(&self, name: &str) -> bool {
        self.config.preference(name).is_some()
    }

    /// Every preference name.
    pub fn preference_names(&self) -> Vec<&str> {
        self.config.preference_names()
    }

    /// Estimated cost of `demand` on `card` (reasoning costs more only where it can happen).
    pub fn estimate_cost(&self, card: &ModelCard, demand: &Demand, can_reason: bool) -> f64 {
        card.cost(demand.prompt_tokens, self.completion(demand, can_reason))
    }

    /// Completion tokens expected for a request.
    fn completion(&self, demand: &Demand, can_reason: bool) -> f64 {
        let expected = demand
            .max_completion_tokens
            .map_or(self.config.expected_completion_tokens as u64, |m| {
                m.min(self.config.expected_completion_tokens as u64)
            });
        let multiplier = if demand.reasoning && can_reason {
            self.config.reasoning_multiplier
        } else {
            1.0
        };
        expected as f64 * multiplier
    }

    /// The first hard limit `card` breaks; `strict` includes the latency and cost limits
    /// (`p95` is the card's p95 latency, read only when `max_latency_p95_ms` is set).
    fn breaks(
        &self,
        card: &ModelCard,
        demand: &Demand,
        cost: f64,
        latency: f64,
        p95: Option<f64>,
        strict: bool,
    ) -> Option<String> {
        if let Some(allowed) = &card.tenants {
            match demand.tenant {
                Some(t) if allowed.contains(t) => {}
                Some(t) => return Some(format!("tenant `{t}` may not use it")),
                None => return Some("reserved for named tenants".into()),
            }
        }
        if !card.may_see(demand.pii_types) {
            return Some(format!("may not see {}", demand.pii_types.join(", ")));
        }
        if let Some(window) = card.context_window {
            let needed = demand.prompt_tokens + demand.max_completion_tokens.unwrap_or(0);
            if needed > window {
                return Some(format!(
                    "needs about {needed} tokens, context window is {window}"
                ));
            }
        }
        if strict {
            if let Some(max) = self.config.max_latency_ms.filter(|&max| latency > max) {
                return Some(format!(
                    "latency {latency:.0} ms is over the {max:.0} ms limit"
                ));
            }
            if let (Some(max), Some(p95)) = (self.config.max_latency_p95_ms, p95) {
                if p95 > max {
                    return Some(format!(
                        "p95 latency {p95:.0} ms is over the {max:.0} ms budget"
                    ));
                }
            }
            if let Some(max) = self.config.max_cost.filter(|&max| cost > max) {
                return Some(format!("estimated cost {cost:.6} is over the {max} limit"));
            }
        }
        None
    }

    /// Ranks `candidates` (indices into `fleet`) for a request; `quality` gives each card's
    /// expected quality and `can_reason` whether its family can reason.
    pub fn rank(
        &self,
        fleet: &Fleet,
        candidates: &[usize],
        stats: &ModelStats,
        demand: &Demand,
        weights: Weights,
        quality: impl Fn(&ModelCard) -> f32,
        can_reason: impl Fn(&ModelCard) -> bool,
    ) -> Result<Ranking, NoEligibleModel> {
        let mut survivors: Vec<Raw> = Vec::with_capacity(candidates.len());
        let mut excluded = Vec::new();
        for &index in candidates {
            let card = &fleet.models()[index];
            let cost = card.cost(
                demand.prompt_tokens,
                self.completion(demand, can_reason(card)),
            );
            let latency = stats.latency_ms(&card.name);
            let p95 = self
                .config
                .max_latency_p95_ms
                .map(|_| stats.latency_p95_ms(&card.name));
            match self.breaks(card, demand, cost, latency, p95, true) {
                Some(reason) => excluded.push(Excluded {
                    model: card.name.clone(),
                    reason,
                }),
                None => survivors.push(Raw {
                    index,
                    quality: quality(card) as f64,
                    cost,
                    latency,
                    load: stats.in_flight(&card.name) as f64,
                }),
            }
        }

        if survivors.is_empty() {
            let chosen = self.fallback(fleet, candidates, demand, &can_reason);
            let Some(index) = chosen else {
                return Err(NoEligibleModel { excluded });
            };
            let card = &fleet.models()[index];
            let cost = card.cost(
                demand.prompt_tokens,
                self.completion(demand, can_reason(card)),
            );
            survivors.push(Raw {
                index,
                quality: quality(card) as f64,
                cost,
                latency: stats.latency_ms(&card.name),
                load: stats.in_flight(&card.name) as f64,
            });
            let ranked = score(fleet, &survivors, weights);
            return Ok(Ranking {
                ranked,
                excluded,
                fallback: Some(self.config.fallback),
            });
        }
        Ok(Ranking {
            ranked: score(fleet, &survivors, weights),
            excluded,
            fallback: None,
        })
    }

    /// The model the configured fallback picks, respecting tenant, privacy and context limits.
    fn fallback(
        &self,
        fleet: &Fleet,
        candidates: &[usize],
        demand: &Demand,
        can_reason: &impl Fn(&ModelCard) -> bool,
    ) -> Option<usize> {
        let admissible = |i: usize| {
            let card = &fleet.models()[i];
            self.breaks(card, demand, 0.0, 0.0, None, false).is_none()
        };
        match self.config.fallback {
            Fallback::Error => None,
            Fallback::DefaultModel => self
                .config
                .default_model
                .as_deref()
                .and_then(|name| fleet.index(name))
                .filter(|&i| admissible(i)),
            Fallback::Cheapest => candidates
                .iter()
                .copied()
                .filter(|&i| admissible(i))
                .min_by(|&a, &b| {
                    let cost = |i: usize| {
                        let card = &fleet.models()[i];
                        card.cost(
                            demand.prompt_tokens,
                            self.completion(demand, can_reason(card)),
                        )
                    };
                    cost(a).total_cmp(&cost(b)).then(a.cmp(&b))
                }),
        }
    }
}

/// A survivor's raw factor values.
struct Raw {
    index: usize,
    quality: f64,
    cost: f64,
    latency: f64,
    load: f64,
}

/// Scores survivors and sorts them: best score, then cheaper, then config order.
fn score(fleet: &Fleet, raw: &[Raw], w: Weights) -> Vec<ScoredCandidate> {
    let max_q = raw.iter().map(|r| r.quality).fold(0.0, f64::max);
    let min_cost = raw.iter().map(|r| r.cost).fold(f64::INFINITY, f64::min);
    let min_latency = raw.iter().map(|r| r.latency).fold(f64::INFINITY, f64::min);
    let min_load = raw.iter().map(|r| r.load).fold(f64::INFINITY, f64::min);
    let total = if w.total() > 0.0 { w.total() } else { 1.0 };
    let ratio = |best: f64, value: f64| {
        if value > 0.0 {
            (best / value).clamp(0.0, 1.0)
        } else {
            1.0
        }
    };
    let mut scored: Vec<(usize, f64, ScoredCandidate)> = raw
        .iter()
        .map(|r| {
            let q = if max_q > 0.0 { r.quality / max_q } else { 1.0 };
            let factor = |value: f64, weight: f64, normalised: f64| Factor {
                value,
                contribution: weight * normalised / total,
            };
            let factors = Factors {
                quality: factor(r.quality, w.quality, q),
                cost: factor(r.cost, w.cost, ratio(min_cost, r.cost)),
                latency: factor(r.latency, w.latency, ratio(min_latency, r.latency)),
                load: factor(r.load, w.load, (1.0 + min_load) / (1.0 + r.load)),
            };
            let score = factors.quality.contribution
                + factors.cost.contribution
                + factors.latency.contribution
                + factors.load.contribution;
            (
                r.index,
                r.cost,
                ScoredCandidate {
                    model: fleet.models()[r.index].name.clone(),
                    score,
                    factors,
                },
            )
        })
        .collect();
    scored.sort_by(|a, b| {
        b.2.score
            .total_cmp(&a.2.score)
            .then(a.1.total_cmp(&b.1))
            .then(a.0.cmp(&b.0))
    });
    scored.into_iter().map(|(_, _, c)| c).collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::config::{ModelConfig, Price};

    fn card(
        name: &str,
        price: f64,
        quality: f64,
        window: Option<u64>,
        tenants: Option<Vec<&str>>,
    ) -> ModelCard {
        ModelCard::from_config(&ModelConfig {
            name: name.into(),
            reasoning_family: "none".into(),
            price: Price {
                input_per_million: price,
                output_per_million: price,
            },
            context_window: window,
            latency_prior_ms: 100.0,
            pii_allowed: None,
            tenants: tenants.map(|t| t.into_iter().map(String::from).collect()),
            quality: BTreeMap::from([("default".to_string(), quality)]),
            upstream: None,
        })
    }

    fn setup() -> (Fleet, ModelStats) {
        let fleet = Fleet::new(vec![
            card("small", 0.1, 0.6, Some(8_000), None),
            card("big", 2.0, 0.9, Some(128_000), None),
            card("private", 0.5, 0.8, None, Some(vec!["acme"])),
        ]);
        let stats = ModelStats::new(fleet.models().iter().map(|m| (m.name.clone(), 100.0)), 0.5);
        (fleet, stats)
    }

    fn demand(prompt: u64, tenant: Option<&str>) -> Demand<'_> {
        Demand {
            prompt_tokens: prompt,
            max_completion_tokens: None,
            reasoning: false,
            tenant,
            pii_types: &[],
        }
    }

    fn rank(
        scorer: &Scorer,
        fleet: &Fleet,
        stats: &ModelStats,
        d: &Demand,
        w: Weights,
    ) -> Result<Ranking, NoEligibleModel> {
        let all: Vec<usize> = (0..fleet.models().len()).collect();
        scorer.rank(fleet, &all, stats, d, w, |c| c.quality[0], |_| false)
    }

    #[test]
    fn weights_trade_quality_for_cost() {
        let (fleet, stats) = setup();
        let scorer = Scorer::new(ScoringConfig::default());
        let quality_first = rank(
            &scorer,
            &fleet,
            &stats,
            &demand(100, None),
            scorer.weights(None, Some(0.0)),
        )
        .unwrap();
        assert_eq!(quality_first.ranked[0].model, "big");
        let cost_first = rank(
            &scorer,
            &fleet,
            &stats,
            &demand(100, None),
            scorer.weights(None, Some(1.0)),
        )
        .unwrap();
        assert_eq!(cost_first.ranked[0].model, "small");
        let c = &cost_first.ranked[0];
        let sum = c.factors.quality.contribution
            + c.factors.cost.contribution
            + c.factors.latency.contribution
            + c.factors.load.contribution;
        assert!(
            (sum - c.score).abs() < 1e-9,
            "contributions add up to the score"
        );
        assert_eq!(
            quality_first.excluded.len(),
            1,
            "the tenant-reserved model is excluded without a tenant"
        );
    }

    #[test]
    fn load_and_latency_count() {
        let (fleet, stats) = setup();
        let scorer = Scorer::new(ScoringConfig::default());
        let w = Weights {
            quality: 0.0,
            cost: 0.0,
            latency: 1.0,
            load: 0.0,
        };
        stats.observe_latency("small", std::time::Duration::from_millis(1000));
        assert_eq!(
            rank(&scorer, &fleet, &stats, &demand(10, None), w)
                .unwrap()
                .ranked[0]
                .model,
            "big"
        );
        let stats = std::sync::Arc::new(stats);
        let _busy: Vec<_> = (0..5).map(|_| stats.start("big")).collect();
        let w = Weights {
            latency: 0.0,
            load: 1.0,
            ..w
        };
        assert_eq!(
            rank(&scorer, &fleet, &stats, &demand(10, None), w)
                .unwrap()
                .ranked[0]
                .model,
            "small"
        );
    }

    #[test]
    fn hard_limits_then_fallback() {
        let (fleet, stats) = setup();
        let scorer = Scorer::new(ScoringConfig::default());
        let w = scorer.weights(None, None);
        // Too long for `small`; the tenant opens `private`.
        let r = rank(&scorer, &fleet, &stats, &demand(20_000, Some("acme")), w).unwrap();
        let names: Vec<&str> = r.ranked.iter().map(|c| c.model.as_str()).collect();
        assert!(!names.contains(&"small") && names.contains(&"private"));
        assert!(r.excluded[0].reason.contains("context window"));

        // A cost limit nothing meets: cheapest admissible wins as fallback.
        let strict = Scorer::new(ScoringConfig {
            max_cost: Some(1e-12),
            ..ScoringConfig::default()
        });
        let r = rank(&strict, &fleet, &stats, &demand(100, None), w).unwrap();
        assert_eq!(r.fallback, Some(Fallback::Cheapest));
        assert_eq!(r.ranked[0].model, "small");

        let error = Scorer::new(ScoringConfig {
            max_cost: Some(1e-12),
            fallback: Fallback::Error,
            ..ScoringConfig::default()
        });
        let e = rank(&error, &fleet, &stats, &demand(100, None), w).unwrap_err();
        assert_eq!(e.excluded.len(), 3);
        assert!(e.to_string().contains("over the"));
    }

    #[test]
    fn a_p95_budget_drops_models_whose_latest_answers_are_slow() {
        let (fleet, stats) = setup();
        let slo = Scorer::new(ScoringConfig {
            max_latency_p95_ms: Some(500.0),
            ..ScoringConfig::default()
        });
        let w = slo.weights(None, Some(0.0));
        assert_eq!(
            rank(&slo, &fleet, &stats, &demand(100, None), w)
                .unwrap()
                .ranked[0]
                .model,
            "big",
            "priors of 100 ms are within it"
        );
        // Two slow answers in twenty put `big`'s p95 (the 19th of 20) at 2 s, over the budget,
        // though its EWMA, pulled back by the fast answers after them, stays under it.
        for i in 0..20 {
            let ms = if i % 10 == 0 { 2_000 } else { 100 };
            stats.observe_latency("big", std::time::Duration::from_millis(ms));
        }
        let r = rank(&slo, &fleet, &stats, &demand(100, None), w).unwrap();
        assert_eq!(r.ranked[0].model, "small", "{r:?}");
        assert!(
            stats.latency_ms("big") < 500.0,
            "EWMA {}",
            stats.latency_ms("big")
        );
        let big = r
            .excluded
            .iter()
            .find(|e| e.model == "big")
            .expect("big excluded");
        assert!(
            big.reason
                .contains("p95 latency 2000 ms is over the 500 ms budget"),
            "{}",
            big.reason
        );
    }
}
