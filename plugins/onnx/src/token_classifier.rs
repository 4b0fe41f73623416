//! [`OnnxTokenClassifier`]: an ONNX token-classification model (e.g. a BIO-tagging PII or NER
//! BERT) implementing [`TokenClassifier`]. Label names come from the model's `config.json`.
//!
//! A text longer than one window is split into overlapping windows that start and end between
//! words; each window is a row of its own through the model's queue, so the windows of one text
//! share batches and sessions like any other texts. Every token is then taken from the window
//! in which it lies furthest from an edge, so the whole text is covered and each token keeps
//! context on both sides.

use std::path::Path;

use async_trait::async_trait;
use semrouter_embedder::{
    BackendError, BackendInfo, StageTiming, TokenClassifier, TokenPredictions,
};

use crate::classifier::read_id2label;
use crate::config::OnnxModelConfig;
use crate::model::OnnxModel;
use crate::session::OutputKind;
use crate::{OnnxError, OnnxRuntime};

/// Bytes of text per window. Arcjet's Rampart integration scans 480-character windows, the
/// context in which the model detects best (its phone recall drops closer to 512 tokens). A
/// byte yields at most about one token, so a window also fits `max_tokens` with room to spare.
const WINDOW_BYTES: usize = 480;
/// Bytes shared by neighbouring windows, so that an entity on a boundary is seen whole.
const OVERLAP_BYTES: usize = 64;

/// A token classifier whose labels are named by its Hugging Face `config.json`.
pub struct OnnxTokenClassifier {
    model: OnnxModel,
    labels: Vec<String>,
    window: usize,
    overlap: usize,
}

impl OnnxTokenClassifier {
    /// Loads the model and reads `id2label` from `labels_config` (a Hugging Face `config.json`).
    /// Texts are scanned in windows of at most 480 bytes (less when `config.max_tokens` is small).
    pub fn load(
        runtime: &OnnxRuntime,
        config: &OnnxModelConfig,
        labels_config: &Path,
    ) -> Result<Self, OnnxError> {
        runtime.require_file("token classifier config.json", labels_config)?;
        let labels = read_id2label(labels_config)?;
        let model = OnnxModel::load(runtime, config, OutputKind::TokenProbabilities)?;
        if model.info().dimension != labels.len() {
            return Err(OnnxError::Model {
                path: config.model.clone(),
                reason: format!(
                    "the model outputs {} logits per token but {} names {} labels",
                    model.info().dimension,
                    labels_config.display(),
                    labels.len()
                ),
            });
        }
        // [CLS] and [SEP] take two of the model's positions.
        let window = WINDOW_BYTES.min(config.max_tokens.saturating_sub(2)).max(1);
        Ok(Self {
            model,
            labels,
            window,
            overlap: OVERLAP_BYTES.min(window / 4),
        })
    }
}

#[async_trait]
impl TokenClassifier for OnnxTokenClassifier {
    async fn classify_tokens(
        &self,
        texts: Vec<String>,
    ) -> Result<Vec<TokenPredictions>, BackendError> {
        if let Some(index) = texts.iter().position(|t| t.trim().is_empty()) {
            return Err(BackendError::EmptyInput { index });
        }
        // Every window of every text goes to the queue at once.
        let plans: Vec<Vec<Window>> = texts
            .iter()
            .map(|t| {
                plan_windows(t, self.window, self.overlap)
                    .into_iter()
                    .filter(|w| !t[w.start..w.end].trim().is_empty())
                    .collect()
            })
            .collect();
        let rows: Vec<String> = texts
            .iter()
            .zip(&plans)
            .flat_map(|(t, plan)| plan.iter().map(move |w| t[w.start..w.end].to_string()))
            .collect();
        let mut done = self.model.run_raw(rows).await?.into_iter();

        let labels = self.labels.len();
        let mut out = Vec::with_capacity(texts.len());
        for plan in plans {
            let mut predictions = TokenPredictions {
                offsets: Vec::new(),
                probabilities: Vec::new(),
                labels,
                tokens: 0,
                timing: StageTiming::default(),
            };
            for window in plan {
                let row = done
                    .next()
                    .ok_or_else(|| BackendError::Inference("a window got no reply".into()))?;
                if row.values.len() != row.offsets.len() * labels {
                    return Err(BackendError::Inference(format!(
                        "a window of {} tokens got {} values for {labels} labels",
                        row.offsets.len(),
                        row.values.len()
                    )));
                }
                predictions.tokens += row.tokens;
                // Windows may share a forward pass, so a text's stages are its slowest window's.
                let timing = &mut predictions.timing;
                timing.tokenize = timing.tokenize.max(row.tokenize);
                timing.queue = timing.queue.max(row.queue);
                timing.infer = timing.infer.max(row.infer);
                for (offset, probabilities) in
                    row.offsets.iter().zip(row.values.chunks_exact(labels))
                {
                    let Some((start, end)) = *offset else {
                        continue;
                    };
                    let (start, end) = (start + window.start, end + window.start);
                    if start >= window.own_start && start < window.own_end && end > start {
                        predictions.offsets.push((start, end));
                        predictions.probabilities.extend_from_slice(probabilities);
                    }
                }
            }
            out.push(predictions);
        }
        Ok(out)
    }

    fn labels(&self) -> &[String] {
        &self.labels
    }

    fn info(&self) -> &BackendInfo {
        self.model.info()
    }
}

/// One window of a text: the byte range the model sees, and the part of it whose tokens this
/// window contributes (the other windows contribute the rest).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Window {
    start: usize,
    end: usize,
    own_start: usize,
    own_end: usize,
}

/// Splits `text` into windows of at most `window` bytes that overlap by about `overlap` bytes.
/// Windows end at whitespace and start after it, so no word is cut (unless a single word is
/// longer than half a window); the owned ranges partition the text at the overlaps' midpoints.
fn plan_windows(text: &str, window: usize, overlap: usize) -> Vec<Window> {
    let len = text.len();
    let window = window.max(1);
    let mut ranges: Vec<(usize, usize)> = Vec::new();
    let mut start = 0;
    loop {
        if len - start <= window {
            ranges.push((start, len));
            break;
        }
        let limit = floor_boundary(text, start + window);
        let half = ceil_boundary(text, start + window / 2).min(limit);
        let mut end = text[half..limit]
            .rfind(char::is_whitespace)
            .map_or(limit, |i| half + i);
        if end <= start {
            // A character wider than the window: take it whole rather than stall.
            end = ceil_boundary(text, start + 1);
        }
        ranges.push((start, end));
        if end >= len {
            break;
        }
        let back = floor_boundary(text, end.saturating_sub(overlap)).max(start + 1);
        let back = ceil_boundary(text, back);
        let next = text[back..end]
            .char_indices()
            .find(|(_, c)| c.is_whitespace())
            .map_or(back, |(i, c)| back + i + c.len_utf8());
        start = next.max(ceil_boundary(text, start + 1)).min(end);
    }
    let count = ranges.len();
    (0..count)
        .map(|k| {
            let (start, end) = ranges[k];
            Window {
                start,
                end,
                own_start: if k == 0 {
                    0
                } else {
                    (start + ranges[k - 1].1) / 2
                },
                own_end: if k + 1 == count {
                    len
                } else {
                    (ranges[k + 1].0 + end) / 2
                },
            }
        })
        .collect()
}

/// The largest character boundary at or before `index` (clamped to the text).
fn floor_boundary(text: &str, index: usize) -> usize {
    let mut i = index.min(text.len());
    while !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// The smallest character boundary at or after `index` (clamped to the text).
fn ceil_boundary(text: &str, index: usize) -> usize {
    let mut i = index.min(text.len());
    while !text.is_char_boundary(i) {
        i += 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every byte of the text is owned by exactly one window, in order, inside that window.
    fn check_partition(text: &str, windows: &[Window], window: usize) {
        assert_eq!(windows.first().map(|w| w.own_start), Some(0));
        assert_eq!(windows.last().map(|w| w.own_end), Some(text.len()));
        for pair in windows.windows(2) {
            assert_eq!(pair[0].own_end, pair[1].own_start, "owned ranges meet");
            assert!(pair[1].start > pair[0].start, "windows advance");
            assert!(
                pair[1].start <= pair[0].end,
                "windows overlap or touch: {pair:?}"
            );
        }
        for w in windows {
            assert!(
                w.start <= w.own_start && w.own_end <= w.end,
                "{w:?} owns only what it sees"
            );
            assert!(
                w.end - w.start <= window || text[w.start..w.end].chars().count() == 1,
                "{w:?} is too long"
            );
            assert!(text.is_char_boundary(w.start) && text.is_char_boundary(w.end));
        }
    }

    #[test]
    fn a_short_text_is_one_window() {
        let text = "Call me at 555-0100.";
        assert_eq!(
            plan_windows(text, 480, 64),
            vec![Window {
                start: 0,
                end: 20,
                own_start: 0,
                own_end: 20
            }]
        );
    }

    #[test]
    fn long_texts_are_covered_by_overlapping_windows_cut_between_words() {
        let text = "alpha beta gamma delta epsilon zeta eta theta iota kappa ".repeat(30);
        let windows = plan_windows(&text, 100, 20);
        assert!(windows.len() > 15, "{} windows", windows.len());
        check_partition(&text, &windows, 100);
        for w in &windows[..windows.len() - 1] {
            // each window ends at a space and the next starts right after one
            assert_eq!(&text[w.end..w.end + 1], " ", "{w:?}");
        }
        for w in &windows[1..] {
            assert_eq!(&text[w.start - 1..w.start], " ", "{w:?}");
            assert_ne!(&text[w.start..w.start + 1], " ");
        }
        // the overlap is real: an entity on a cut is seen whole by one window
        assert!(windows.windows(2).all(|p| p[0].end - p[1].start >= 10));
    }

    #[test]
    fn words_longer_than_a_window_and_multibyte_text_still_progress() {
        let text = format!("{} end", "x".repeat(1000));
        check_partition(&text, &plan_windows(&text, 100, 20), 100);
        let text = "日本語のテキストと😀絵文字 ".repeat(40);
        let windows = plan_windows(&text, 50, 12);
        check_partition(&text, &windows, 50);
        let tiny = plan_windows("😀😀😀", 1, 0);
        check_partition("😀😀😀", &tiny, 1);
        assert_eq!(tiny.len(), 3);
    }
}
