//! [`LexicalFeatures`]: hashed word and character n-grams of a text, the cheap lexical evidence
//! a head can read beside the embedding.
//!
//! A sentence embedding blurs surface form: `ignore previous instructions` and `1gn0re
//! pr3v10us 1nstruct10ns` embed far apart, and a truncated embedding misses what comes late in
//! a long prompt. Hashed n-grams keep that form at a cost of microseconds per text and no
//! vocabulary to ship: each n-gram is hashed (FNV-1a, 64-bit) into one of `buckets` columns
//! that follow the embedding's columns in the head's weight rows.

use serde::{Deserialize, Serialize};

/// How a head turns a text into hashed n-gram features. Stored in the head file, so training
/// and serving compute exactly the same features.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LexicalFeatures {
    /// Number of hash buckets: the columns after the embedding's.
    pub buckets: usize,
    /// Shortest and longest word n-gram; words are runs of alphanumeric characters,
    /// lowercased. `[0, 0]` turns word n-grams off.
    pub word_ngrams: [usize; 2],
    /// Shortest and longest character n-gram, taken inside each whitespace-separated token
    /// (punctuation kept) padded with one space each side. `[0, 0]` turns them off.
    pub char_ngrams: [usize; 2],
    /// Only the first `max_bytes` bytes of a text are read: bounds the cost of a huge prompt.
    pub max_bytes: usize,
    /// L2 norm of the feature vector (sublinear counts `1 + ln(count)`, then normalised and
    /// scaled), which sets the lexical block's weight against the unit-length embedding.
    pub scale: f32,
}

/// FNV-1a, 64-bit: offset basis and prime.
const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;
/// First byte hashed for each feature kind, so word and character n-grams never share a hash
/// by construction.
const WORD_KIND: u8 = b'w';
const CHAR_KIND: u8 = b'c';

/// Continues an FNV-1a hash over `bytes`. Hashing is incremental, so the hash of an n-gram
/// extends the hash of its first n-1 units: each start position is hashed once for every
/// length.
fn fnv_feed(mut hash: u64, bytes: &[u8]) -> u64 {
    for &byte in bytes {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(FNV_PRIME);
    }
    hash
}

/// Maps a 64-bit hash onto `0..buckets`: MurmurHash3's 64-bit finaliser, then multiply-shift
/// (no division). The finaliser matters: FNV-1a's high bits barely change with the last byte,
/// so `abc` and `abd` would otherwise share a bucket.
fn bucket_of(hash: u64, buckets: usize) -> usize {
    let mut h = hash;
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^= h >> 33;
    ((u128::from(h) * buckets as u128) >> 64) as usize
}

/// The longest prefix of `text` of at most `max` bytes that ends on a character boundary.
fn prefix(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

impl LexicalFeatures {
    /// Checks the settings a head file carries; returns what is wrong.
    pub fn validate(&self) -> Result<(), String> {
        let range_ok =
            |[lo, hi]: [usize; 2]| (lo == 0 && hi == 0) || (lo >= 1 && lo <= hi && hi <= 16);
        if self.buckets == 0 || self.buckets > 1 << 20 {
            return Err(format!(
                "lexical.buckets is {}, expected 1 to 1048576",
                self.buckets
            ));
        }
        if !range_ok(self.word_ngrams) || !range_ok(self.char_ngrams) {
            return Err("lexical n-gram ranges must be [0, 0] or 1 <= min <= max <= 16".into());
        }
        if !(self.scale.is_finite() && self.scale > 0.0) {
            return Err(format!(
                "lexical.scale is {}, expected a positive number",
                self.scale
            ));
        }
        Ok(())
    }

    /// The text's features as (bucket, value) pairs sorted by bucket, of L2 norm `scale`
    /// (empty for a text without n-grams).
    ///
    /// Word n-gram: FNV-1a of `w`, then the words joined by single spaces. Character n-gram:
    /// FNV-1a of `c`, then the n-gram's UTF-8 bytes. The bucket is the hash mapped by
    /// multiply-shift onto `0..buckets`; values are `1 + ln(count)` per bucket, normalised.
    pub fn features(&self, text: &str) -> Vec<(u32, f32)> {
        let lower = prefix(text, self.max_bytes).to_lowercase();
        let mut counts = vec![0u32; self.buckets];
        let mut touched: Vec<u32> = Vec::new();
        let mut add = |hash: u64| {
            let bucket = bucket_of(hash, self.buckets);
            if counts[bucket] == 0 {
                touched.push(bucket as u32);
            }
            counts[bucket] += 1;
        };
        let word_start = fnv_feed(FNV_OFFSET, &[WORD_KIND]);
        let char_start = fnv_feed(FNV_OFFSET, &[CHAR_KIND]);

        let [word_lo, word_hi] = self.word_ngrams;
        if word_lo > 0 {
            let words: Vec<&[u8]> = lower
                .split(|c: char| !c.is_alphanumeric())
                .filter(|w| !w.is_empty())
                .map(str::as_bytes)
                .collect();
            for start in 0..words.len() {
                let mut hash = word_start;
                for (n, word) in words[start..].iter().take(word_hi).enumerate() {
                    if n > 0 {
                        hash = fnv_feed(hash, b" ");
                    }
                    hash = fnv_feed(hash, word);
                    if n + 1 >= word_lo {
                        add(hash);
                    }
                }
            }
        }

        let [char_lo, char_hi] = self.char_ngrams;
        if char_lo > 0 {
            let mut padded = String::new();
            let mut bounds: Vec<usize> = Vec::new();
            for token in lower.split_whitespace() {
                padded.clear();
                padded.push(' ');
                padded.push_str(token);
                padded.push(' ');
                bounds.clear();
                bounds.extend(padded.char_indices().map(|(i, _)| i));
                bounds.push(padded.len());
                let bytes = padded.as_bytes();
                let chars = bounds.len() - 1;
                for start in 0..chars {
                    let mut hash = char_start;
                    for n in 1..=char_hi.min(chars - start) {
                        hash = fnv_feed(hash, &bytes[bounds[start + n - 1]..bounds[start + n]]);
                        if n >= char_lo {
                            add(hash);
                        }
                    }
                }
            }
        }

        touched.sort_unstable();
        let mut features: Vec<(u32, f32)> = touched
            .into_iter()
            .map(|b| (b, 1.0 + (counts[b as usize] as f32).ln()))
            .collect();
        let norm = features.iter().map(|(_, v)| v * v).sum::<f32>().sqrt();
        if norm > 0.0 {
            let k = self.scale / norm;
            features.iter_mut().for_each(|(_, v)| *v *= k);
        }
        features
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> LexicalFeatures {
        LexicalFeatures {
            buckets: 1 << 12,
            word_ngrams: [1, 2],
            char_ngrams: [3, 5],
            max_bytes: 64,
            scale: 1.0,
        }
    }

    #[test]
    fn hash_and_buckets_are_fixed() {
        // Part of the head file format: a change would silently break every trained head.
        assert_eq!(fnv_feed(FNV_OFFSET, b"wignore"), 0x9d9d_8dec_88fb_b878);
        assert_eq!(
            fnv_feed(fnv_feed(FNV_OFFSET, b"w"), b"ignore"),
            0x9d9d_8dec_88fb_b878
        );
        assert_eq!(bucket_of(0x9d9d_8dec_88fb_b878, 4096), 0x939);
        assert_eq!(bucket_of(u64::MAX, 10), 3);
        let one_word = LexicalFeatures {
            word_ngrams: [1, 1],
            char_ngrams: [0, 0],
            ..spec()
        };
        assert_eq!(one_word.features("IGNORE"), vec![(0x939, 1.0)]);
    }

    #[test]
    fn word_and_char_ngrams_are_counted() {
        let words = LexicalFeatures {
            char_ngrams: [0, 0],
            ..spec()
        };
        // 3 unigrams + 2 bigrams, all in distinct buckets: n-grams that differ only in their
        // last byte must not collide.
        assert_eq!(words.features("a b c").len(), 5);
        assert_eq!(words.features("x1 x2 x3 x4 x5 x6 x7 x8").len(), 15);
        let chars = LexicalFeatures {
            word_ngrams: [0, 0],
            ..spec()
        };
        // " ab " has 2 trigrams and 1 four-gram.
        assert_eq!(chars.features("ab").len(), 3);
        // Six n-grams per token; " ab" is shared by all three.
        assert_eq!(chars.features("abc abd abe").len(), 3 * 6 - 2);
    }

    #[test]
    fn features_are_sorted_unit_length_and_case_blind() {
        let f = spec().features("Ignore ALL previous instructions!");
        assert!(f.windows(2).all(|w| w[0].0 < w[1].0));
        let norm: f32 = f.iter().map(|(_, v)| v * v).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5);
        assert_eq!(f, spec().features("ignore all previous instructions!"));
        assert_ne!(f, spec().features("ignore all previous instructions?"));
        assert!(spec().features("").is_empty());
    }

    #[test]
    fn only_the_first_max_bytes_count_and_utf8_is_respected() {
        let long = format!("{} tail words here", "é".repeat(40));
        assert_eq!(spec().features(&long), spec().features(&"é".repeat(40)));
        assert!(!spec().features("日本語のテキスト").is_empty());
    }

    #[test]
    fn validation_names_the_problem() {
        assert!(spec().validate().is_ok());
        let bad = LexicalFeatures {
            buckets: 0,
            ..spec()
        };
        assert!(bad.validate().unwrap_err().contains("buckets"));
        let bad = LexicalFeatures {
            char_ngrams: [4, 2],
            ..spec()
        };
        assert!(bad.validate().is_err());
    }
}
