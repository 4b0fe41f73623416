//! Entity-level scoring of findings against labelled spans: true positives, false positives and
//! false negatives, precision, recall and F1, overall and per type.
//!
//! [`Matching::Exact`] counts a finding as right only with the same type and exactly the same
//! span (CoNLL's entity-level measure); [`Matching::Overlap`] accepts any overlap of the same type
//! (the relaxed measure Presidio's evaluator reports). Each label and each finding is matched at
//! most once, so a split or duplicated entity still costs.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use super::types::{PiiSpan, PiiType};

/// When a finding matches a label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Matching {
    /// Same type, same start and end.
    Exact,
    /// Same type, at least one byte in common.
    Overlap,
}

/// Entity-level counts. `fn_` is the false negatives (`fn` is a Rust keyword).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Findings that match a label.
    pub tp: usize,
    /// Findings that match no label.
    pub fp: usize,
    /// Labels that no finding matches.
    #[serde(rename = "fn")]
    pub fn_: usize,
}

impl Counts {
    /// tp / (tp + fp); 1.0 when nothing was predicted (no false alarm was raised).
    pub fn precision(&self) -> f64 {
        ratio(self.tp, self.tp + self.fp)
    }

    /// tp / (tp + fn); 1.0 when there was nothing to find.
    pub fn recall(&self) -> f64 {
        ratio(self.tp, self.tp + self.fn_)
    }

    /// The harmonic mean of precision and recall; 0 when either is 0.
    pub fn f1(&self) -> f64 {
        let (p, r) = (self.precision(), self.recall());
        if p + r == 0.0 {
            0.0
        } else {
            2.0 * p * r / (p + r)
        }
    }

    /// Adds `other`'s counts to these.
    pub fn add(&mut self, other: Counts) {
        self.tp += other.tp;
        self.fp += other.fp;
        self.fn_ += other.fn_;
    }
}

fn ratio(part: usize, whole: usize) -> f64 {
    if whole == 0 {
        1.0
    } else {
        part as f64 / whole as f64
    }
}

/// Scores the findings of one text against its labels.
pub fn score(predicted: &[PiiSpan], gold: &[PiiSpan], matching: Matching) -> Counts {
    let mut used = vec![false; gold.len()];
    let mut counts = Counts::default();
    let mut predicted: Vec<&PiiSpan> = predicted.iter().collect();
    // Exact matches first, so that with overlap matching a near miss cannot take the label
    // that another finding hits exactly.
    predicted.sort_by_key(|p| !gold.contains(p));
    for p in predicted {
        let hit = gold.iter().enumerate().position(|(i, g)| {
            !used[i]
                && g.kind == p.kind
                && match matching {
                    Matching::Exact => g.start == p.start && g.end == p.end,
                    Matching::Overlap => g.start < p.end && p.start < g.end,
                }
        });
        match hit {
            Some(i) => {
                used[i] = true;
                counts.tp += 1;
            }
            None => counts.fp += 1,
        }
    }
    counts.fn_ = used.iter().filter(|u| !**u).count();
    counts
}

/// Counts per type, accumulated over many texts.
#[derive(Debug, Clone)]
pub struct Scoreboard {
    matching: Matching,
    by_type: BTreeMap<PiiType, Counts>,
}

impl Scoreboard {
    /// An empty scoreboard for `matching`.
    pub fn new(matching: Matching) -> Self {
        Self {
            matching,
            by_type: BTreeMap::new(),
        }
    }

    /// Adds one text's findings and labels, type by type.
    pub fn add(&mut self, predicted: &[PiiSpan], gold: &[PiiSpan]) {
        let kinds: std::collections::BTreeSet<PiiType> =
            predicted.iter().chain(gold).map(|s| s.kind).collect();
        for kind in kinds {
            let p: Vec<PiiSpan> = predicted
                .iter()
                .filter(|s| s.kind == kind)
                .copied()
                .collect();
            let g: Vec<PiiSpan> = gold.iter().filter(|s| s.kind == kind).copied().collect();
            self.by_type
                .entry(kind)
                .or_default()
                .add(score(&p, &g, self.matching));
        }
    }

    /// Counts of each type seen, as labels or as findings.
    pub fn by_type(&self) -> &BTreeMap<PiiType, Counts> {
        &self.by_type
    }

    /// Counts over all types (micro-averaged).
    pub fn overall(&self) -> Counts {
        let mut all = Counts::default();
        self.by_type.values().for_each(|c| all.add(*c));
        all
    }

    /// A table of precision, recall, F1 and counts per type, then the overall line.
    pub fn render(&self) -> String {
        let mut out = format!(
            "{:<16} {:>9} {:>7} {:>7} {:>6} {:>6} {:>6}\n",
            "type", "precision", "recall", "f1", "tp", "fp", "fn"
        );
        let rows = self
            .by_type
            .iter()
            .map(|(k, c)| (k.as_str(), *c))
            .chain([("overall", self.overall())]);
        for (name, c) in rows {
            let _ = writeln!(
                out,
                "{name:<16} {:>9.3} {:>7.3} {:>7.3} {:>6} {:>6} {:>6}",
                c.precision(),
                c.recall(),
                c.f1(),
                c.tp,
                c.fp,
                c.fn_
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(kind: PiiType, start: usize, end: usize) -> PiiSpan {
        PiiSpan { kind, start, end }
    }

    #[test]
    fn exact_matching_needs_type_and_both_ends() {
        let gold = [span(PiiType::Email, 0, 10), span(PiiType::Person, 20, 30)];
        let predicted = [
            span(PiiType::Email, 0, 10),
            span(PiiType::Person, 20, 29),
            span(PiiType::City, 40, 45),
        ];
        let c = score(&predicted, &gold, Matching::Exact);
        assert_eq!(
            c,
            Counts {
                tp: 1,
                fp: 2,
                fn_: 1
            }
        );
        assert!((c.precision() - 1.0 / 3.0).abs() < 1e-9 && (c.recall() - 0.5).abs() < 1e-9);
        assert!((c.f1() - 0.4).abs() < 1e-9);
    }

    #[test]
    fn overlap_matching_accepts_near_misses_once() {
        let gold = [span(PiiType::Person, 20, 30)];
        // A name split in two: one half matches, the other is a false positive.
        let predicted = [span(PiiType::Person, 20, 24), span(PiiType::Person, 25, 30)];
        assert_eq!(
            score(&predicted, &gold, Matching::Overlap),
            Counts {
                tp: 1,
                fp: 1,
                fn_: 0
            }
        );
        assert_eq!(
            score(&predicted, &gold, Matching::Exact),
            Counts {
                tp: 0,
                fp: 2,
                fn_: 1
            }
        );
        // Type still matters.
        assert_eq!(
            score(&[span(PiiType::City, 20, 30)], &gold, Matching::Overlap),
            Counts {
                tp: 0,
                fp: 1,
                fn_: 1
            }
        );
    }

    #[test]
    fn an_exact_hit_is_not_stolen_by_a_near_miss() {
        let gold = [span(PiiType::Person, 0, 10), span(PiiType::Person, 12, 20)];
        let predicted = [span(PiiType::Person, 5, 14), span(PiiType::Person, 0, 10)];
        assert_eq!(
            score(&predicted, &gold, Matching::Overlap),
            Counts {
                tp: 2,
                fp: 0,
                fn_: 0
            }
        );
    }

    #[test]
    fn empty_sides_and_the_scoreboard() {
        assert_eq!(
            Counts::default().f1(),
            1.0,
            "nothing to find and nothing found"
        );
        assert_eq!(
            Counts {
                tp: 0,
                fp: 0,
                fn_: 3
            }
            .f1(),
            0.0
        );
        let mut board = Scoreboard::new(Matching::Exact);
        board.add(
            &[span(PiiType::Email, 0, 5)],
            &[span(PiiType::Email, 0, 5), span(PiiType::Phone, 6, 9)],
        );
        board.add(&[span(PiiType::Phone, 1, 3)], &[]);
        assert_eq!(
            board.by_type()[&PiiType::Email],
            Counts {
                tp: 1,
                fp: 0,
                fn_: 0
            }
        );
        assert_eq!(
            board.by_type()[&PiiType::Phone],
            Counts {
                tp: 0,
                fp: 1,
                fn_: 1
            }
        );
        assert_eq!(
            board.overall(),
            Counts {
                tp: 1,
                fp: 1,
                fn_: 1
            }
        );
        let table = board.render();
        assert!(
            table.contains("EMAIL") && table.contains("overall"),
            "{table}"
        );
    }
}
