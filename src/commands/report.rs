//! Progress for long jobs, and the confusion matrix reports of training and evaluation.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use semrouter::categories::{Category, CATEGORIES};

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
                ProgressStyle::with_template("{msg:>24} [{bar:40}] {pos}/{len} {per_sec} eta {eta}")
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
        eprintln!("{}: done in {:.1} s", self.label, self.started.elapsed().as_secs_f64());
    }
}

/// Counts of (true category, predicted category).
pub struct Confusion {
    counts: [[usize; Category::COUNT]; Category::COUNT],
}

impl Confusion {
    /// Tallies pairs of (truth, prediction).
    pub fn new(pairs: impl IntoIterator<Item = (Category, Category)>) -> Self {
        let mut counts = [[0; Category::COUNT]; Category::COUNT];
        for (truth, predicted) in pairs {
            counts[truth.index()][predicted.index()] += 1;
        }
        Self { counts }
    }

    /// Share of correct predictions.
    pub fn accuracy(&self) -> f64 {
        let total: usize = self.counts.iter().flatten().sum();
        let correct: usize = (0..Category::COUNT).map(|i| self.counts[i][i]).sum();
        if total == 0 {
            0.0
        } else {
            correct as f64 / total as f64
        }
    }

    /// Per-category precision, recall, F1 and support, then the matrix (rows: truth).
    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str(&format!("{:<18} {:>9} {:>7} {:>6} {:>8}\n", "category", "precision", "recall", "f1", "support"));
        for c in 0..Category::COUNT {
            let tp = self.counts[c][c] as f64;
            let predicted: usize = (0..Category::COUNT).map(|r| self.counts[r][c]).sum();
            let support: usize = self.counts[c].iter().sum();
            let precision = if predicted > 0 { tp / predicted as f64 } else { 0.0 };
            let recall = if support > 0 { tp / support as f64 } else { 0.0 };
            let f1 = if precision + recall > 0.0 { 2.0 * precision * recall / (precision + recall) } else { 0.0 };
            out.push_str(&format!("{:<18} {precision:>9.3} {recall:>7.3} {f1:>6.3} {support:>8}\n", CATEGORIES[c]));
        }
        out.push_str("\nconfusion matrix (rows: true category, columns: predicted)\n");
        let short: Vec<String> = CATEGORIES.iter().map(|c| c.chars().take(5).collect()).collect();
        out.push_str(&format!("{:<18}", ""));
        for s in &short {
            out.push_str(&format!("{s:>6}"));
        }
        out.push('\n');
        for (r, row) in self.counts.iter().enumerate() {
            out.push_str(&format!("{:<18}", CATEGORIES[r]));
            for count in row {
                out.push_str(&format!("{count:>6}"));
            }
            out.push('\n');
        }
        out.push_str(&format!("\naccuracy {:.4}\n", self.accuracy()));
        out
    }
}
