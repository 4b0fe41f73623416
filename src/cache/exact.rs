//! The exact key: a digest of the scope and the normalised last user text.
//!
//! Repeats of a request hit on this key before the encoder runs, with one hash and one map
//! probe. Normalisation only folds what never changes meaning (surrounding and repeated
//! whitespace, Unicode line breaks); case is kept, because in code and names it matters,
//! and near-duplicates are the semantic path's job.

use super::scope::{Digest, Hasher, ScopeId};

/// The key of the exact path.
pub type ExactKey = Digest;

/// Trims the text and collapses every run of whitespace into one space.
pub fn normalize_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for word in text.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    out
}

/// The exact key of normalised `text` in `scope`.
pub fn exact_key(scope: &ScopeId, normalized_text: &str) -> ExactKey {
    let mut hasher = Hasher::new("semrouter-cache-exact-v1");
    hasher.bytes(&scope.0);
    hasher.bytes(normalized_text.as_bytes());
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whitespace_is_folded_and_case_kept() {
        assert_eq!(normalize_text("  What is\t2 +\n\n 2?  "), "What is 2 + 2?");
        assert_eq!(normalize_text("a\u{2028}b\u{00a0}c"), "a b c");
        assert_ne!(normalize_text("Python"), normalize_text("python"));
    }

    #[test]
    fn keys_differ_by_scope_and_text() {
        let a = ScopeId::default();
        let b = Digest([1; 16]);
        assert_eq!(exact_key(&a, "x"), exact_key(&a, "x"));
        assert_ne!(exact_key(&a, "x"), exact_key(&b, "x"));
        assert_ne!(exact_key(&a, "x"), exact_key(&a, "y"));
    }
}
