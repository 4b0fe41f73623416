//! Text to token ids, truncated to the configured length and never padded here: padding is
//! per batch, to the batch's longest text.

use std::path::Path;

use tokenizers::{Tokenizer, TruncationParams};

use crate::OnnxError;

/// Bytes of text kept per allowed token before tokenising. A token covers far fewer bytes in
/// any natural text, so this only bounds the work a huge prompt can cost; the token limit
/// itself is applied by the tokenizer.
const BYTES_PER_TOKEN_BOUND: usize = 64;

/// The token ids of one text, ready to be placed in a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tokens {
    /// Vocabulary ids, special tokens included.
    pub ids: Vec<i64>,
    /// Segment ids (all zero for a single text).
    pub type_ids: Vec<i64>,
    /// Byte range of the text each token came from, `None` for special tokens; empty unless
    /// the tokenizer was built [`with_offsets`](TextTokenizer::with_offsets) (tracking offsets
    /// costs time that encoders do not need to spend).
    pub offsets: Vec<Option<(usize, usize)>>,
}

impl Tokens {
    /// Number of tokens.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// True when the text produced no tokens at all.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

/// A Hugging Face tokenizer configured for one model: no padding, truncation at `max_tokens`.
pub struct TextTokenizer {
    inner: Tokenizer,
    max_tokens: usize,
    max_bytes: usize,
    offsets: bool,
}

impl TextTokenizer {
    /// Loads `tokenizer.json` and sets truncation to `max_tokens` tokens.
    pub fn from_file(path: &Path, max_tokens: usize) -> Result<Self, OnnxError> {
        let error = |reason: String| OnnxError::Tokenizer {
            path: path.to_path_buf(),
            reason,
        };
        let mut inner = Tokenizer::from_file(path).map_err(|e| error(e.to_string()))?;
        // Files exported for fixed-shape inference pad every text to the maximum; that would
        // multiply the work of short prompts, so padding is turned off and done per batch.
        inner.with_padding(None);
        inner
            .with_truncation(Some(TruncationParams {
                max_length: max_tokens,
                ..Default::default()
            }))
            .map_err(|e| error(e.to_string()))?;
        Ok(Self {
            inner,
            max_tokens,
            max_bytes: max_tokens.saturating_mul(BYTES_PER_TOKEN_BOUND),
            offsets: false,
        })
    }

    /// Also records each token's byte offsets into the text (for token classification).
    pub fn with_offsets(mut self) -> Self {
        self.offsets = true;
        self
    }

    /// The most tokens one text is cut to, special tokens included.
    pub fn max_tokens(&self) -> usize {
        self.max_tokens
    }

    /// A cheap estimate of the token count of `text` (about four bytes per token, special
    /// tokens included, capped at the limit), for grouping texts before they are tokenised.
    pub fn estimate_tokens(&self, text: &str) -> usize {
        (text.len() / 4 + 2).min(self.max_tokens)
    }

    /// Tokenises one text (CPU-bound: call it off the async runtime).
    pub fn encode(&self, text: &str) -> Result<Tokens, String> {
        let text = prefix_at_char_boundary(text, self.max_bytes);
        if !self.offsets {
            let encoding = self
                .inner
                .encode_fast(text, true)
                .map_err(|e| e.to_string())?;
            return Ok(Tokens {
                ids: encoding.get_ids().iter().map(|&id| i64::from(id)).collect(),
                type_ids: encoding
                    .get_type_ids()
                    .iter()
                    .map(|&id| i64::from(id))
                    .collect(),
                offsets: Vec::new(),
            });
        }
        // `encode` tracks byte offsets into `text` (`encode_fast` does not track them at all).
        let encoding = self.inner.encode(text, true).map_err(|e| e.to_string())?;
        let offsets = encoding
            .get_offsets()
            .iter()
            .zip(encoding.get_special_tokens_mask())
            .map(|(&(start, end), &special)| (special == 0).then_some((start, end)))
            .collect();
        Ok(Tokens {
            ids: encoding.get_ids().iter().map(|&id| i64::from(id)).collect(),
            type_ids: encoding
                .get_type_ids()
                .iter()
                .map(|&id| i64::from(id))
                .collect(),
            offsets,
        })
    }
}

/// The longest prefix of `text` of at most `max_bytes` bytes that ends on a character boundary.
fn prefix_at_char_boundary(text: &str, max_bytes: usize) -> &str {
    if text.len() <= max_bytes {
        return text;
    }
    let mut end = max_bytes;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::prefix_at_char_boundary;

    #[test]
    fn prefix_never_splits_a_character() {
        let text = "aé€😀";
        for max in 0..=text.len() + 1 {
            let prefix = prefix_at_char_boundary(text, max);
            assert!(prefix.len() <= max.min(text.len()));
            assert!(text.starts_with(prefix));
        }
        assert_eq!(prefix_at_char_boundary(text, 2), "a");
        assert_eq!(prefix_at_char_boundary(text, 3), "aé");
    }
}
