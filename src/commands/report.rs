//! Progress for long jobs, and the confusion matrix reports of training and evaluation (over
//! any set of named labels: domains, jailbreak, complexity).

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// Progress of a long job: a live bar on a terminal, a line every 10% otherwise (CI logs).
pub struct Progress {
    bar: Option<ProgressBar>,
    label: String,
    total: u64,
    done: u64,
    next_report: u64,
    started: Instant,
}

impl Progress {
    /// Starts a job of `total` steps.
    pub fn new(total: u64, label: &str) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(total);
            bar.set_style(
                ProgressStyle::with_template(
                    "{msg:>24} [{bar:40}] {pos}/{len} {per_sec} eta {eta}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            bar.set_message(label.to_string());
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        if bar.is_none() {
            eprintln!("{label}: 0/{total}");
        }
        Self {
            bar,
            label: label.to_string(),
            total,
            done: 0,
            next_report: total / 10,
            started: Instant::now(),
        }
    }

    /// Records `n` more steps.
    pub fn advance(&mut self, n: u64) {
        self.done += n;
        match &self.bar {
            Some(bar) => bar.inc(n),
            None if self.done >= self.next_report.max(1) => {
                let rate = self.done as f64 / self.started.elapsed().as_secs_f64().max(1e-9);
                eprintln!("{}: {}/{} ({rate:.0}/s)", self.label, self.done, self.total);
                self.next_report = self.done + (self.total / 10).max(1);
            }
            None => {}
        }
    }

    /// Ends the job.
    pub fn finish(self) {
        if let Some(bar) = self.bar {
            bar.finish();
        }
        eprintln!(
            "{}: done in {:.1} s",
            self.label,
            self.started.elapsed().as_secs_f64()
        );
    }
}

/// Precision, recall, F1 and support of one label.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct LabelScores {
    /// Share of predictions of the label that were right.
    pub precision: f64,
    /// Share of the label's examples predicted as it.
    pub recall: f64,
    /// Harmonic mean of precision and recall.
    pub f1: f64,
    /// Examples whose true label it is.
    pub support: usize,
}

/// Counts of (true label, predicted label) over any set of named labels.
pub struct Confusion {
    labels: Vec<String>,
    counts: Vec<Vec<usize>>,
}

impl Confusion {
    /// Tallies pairs of (truth, prediction), both indices into `labels`; pairs out of range
    /// are ignored.
    pub fn new(labels: Vec<String>, pairs: impl IntoIterator<Item = (usize, usize)>) -> Self {
        let n = labels.len();
        let mut counts = vec![vec![0; n]; n];
        for (truth, predicted) in pairs {
            if truth < n && predicted < n {
                counts[truth][predicted] += 1;
            }
        }
        Self { labels, counts }
    }

    /// The labels, in row order.
    pub fn labels(&self) -> &[String] {
        &self.labels
    }

    /// Number of examples tallied.
    pub fn total(&self) -> usize {
        self.counts.iter().flatten().sum()
    }

    /// Share of correct predictions.
    pub fn accuracy(&self) -> f64 {
        let correct: usize = (0..self.labels.len()).map(|i| self.counts[i][i]).sum();
        ratio(correct, self.total())
    }

    /// Precision, recall, F1 and support of label `label`.
    pub fn scores(&self, label: usize) -> LabelScores {
        let tp = self.counts[label][label];
        let predicted: usize = self.counts.iter().map(|row| row[label]).sum();
        let support: usize = self.counts[label].iter().sum();
        let (precision, recall) = (ratio(tp, predicted), ratio(tp, support));
        let f1 = if precision + recall > 0.0 {
            2.0 * precision * recall / (precision + recall)
        } else {
            0.0
        };
        LabelScores {
            precision,
            recall,
            f1,
            support,
        }
    }

    /// Unweighted mean of the labels' F1.
    pub fn macro_f1(&self) -> f64 {
        let n = self.labels.len();
        if n == 0 {
            return 0.0;
        }
        (0..n).map(|l| self.scores(l).f1).sum::<f64>() / n as f64
    }

    /// Per-label precision, recall, F1 and support, then the matrix (rows: truth).
    pub fn render(&self) -> String {
        let width = self
            .labels
            .iter()
            .map(|l| l.chars().count())
            .max()
            .unwrap_or(0)
            .max(8)
            + 2;
        let mut out = String::new();
        out.push_str(&format!(
            "{:<width$} {:>9} {:>7} {:>6} {:>8}\n",
            "label", "precision", "recall", "f1", "support"
        ));
        for (i, label) in self.labels.iter().enumerate() {
            let s = self.scores(i);
            out.push_str(&format!(
                "{label:<width$} {:>9.3} {:>7.3} {:>6.3} {:>8}\n",
                s.precision, s.recall, s.f1, s.support
            ));
        }
        out.push_str("\nconfusion matrix (rows: true label, columns: predicted)\n");
        let short: Vec<String> = self
            .labels
            .iter()
            .map(|c| c.chars().take(5).collect())
            .collect();
        let cell = self.total().to_string().len().max(5) + 1;
        out.push_str(&format!("{:<width$}", ""));
        for s in &short {
            out.push_str(&format!("{s:>cell$}"));
        }
        out.push('\n');
        for (label, row) in self.labels.iter().zip(&self.counts) {
            out.push_str(&format!("{label:<width$}"));
            for count in row {
                out.push_str(&format!("{count:>cell$}"));
            }
            out.push('\n');
        }
        out.push_str(&format!("\naccuracy {:.4}\n", self.accuracy()));
        out
    }
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_per_label_and_overall() {
        let labels = vec!["benign".to_string(), "jailbreak".to_string()];
        // 3 benign: 2 right, 1 flagged; 5 jailbreak: 4 caught, 1 missed.
        let pairs = [
            (0, 0),
            (0, 0),
            (0, 1),
            (1, 1),
            (1, 1),
            (1, 1),
            (1, 1),
            (1, 0),
        ];
        let c = Confusion::new(labels, pairs);
        assert_eq!(c.total(), 8);
        assert!((c.accuracy() - 0.75).abs() < 1e-12);
        let j = c.scores(1);
        assert!(
            (j.precision - 0.8).abs() < 1e-12
                && (j.recall - 0.8).abs() < 1e-12
                && (j.f1 - 0.8).abs() < 1e-12
        );
        assert_eq!(j.support, 5);
        let b = c.scores(0);
        assert!((b.precision - 2.0 / 3.0).abs() < 1e-12);
        assert!((c.macro_f1() - (0.8 + 2.0 / 3.0) / 2.0).abs() < 1e-12);
        let text = c.render();
        assert!(
            text.contains("jailbreak")
                && text.contains("confusion matrix")
                && text.contains("accuracy 0.7500")
        );
    }

    #[test]
    fn empty_labels_score_zero_not_nan() {
        let c = Confusion::new(vec!["a".into(), "b".into()], [(0, 0)]);
        assert_eq!(c.scores(1).f1, 0.0);
        assert_eq!(Confusion::new(vec!["a".into()], []).accuracy(), 0.0);
    }
}
