//! The 14 MMLU-Pro categories semrouter routes on.
//!
//! Classifiers may spell labels differently (`computer_science`, `Computer Science`); every
//! label is matched to a category through [`Category::parse`], by name and never by position.

use std::fmt;

/// All categories in canonical order. Probability vectors in the engine use this order.
pub const CATEGORIES: [&str; 14] = [
    "biology",
    "business",
    "chemistry",
    "computer science",
    "economics",
    "engineering",
    "health",
    "history",
    "law",
    "math",
    "other",
    "philosophy",
    "physics",
    "psychology",
];

/// One of the 14 categories, as its index in [`CATEGORIES`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Category(usize);

impl Category {
    /// Number of categories.
    pub const COUNT: usize = CATEGORIES.len();

    /// Matches a label to a category, ignoring case and treating `_` and `-` as spaces.
    pub fn parse(label: &str) -> Option<Self> {
        let normal: String = label
            .trim()
            .chars()
            .map(|c| {
                if c == '_' || c == '-' {
                    ' '
                } else {
                    c.to_ascii_lowercase()
                }
            })
            .collect();
        CATEGORIES.iter().position(|&c| c == normal).map(Category)
    }

    /// The category at `index` in canonical order.
    pub fn from_index(index: usize) -> Option<Self> {
        (index < Self::COUNT).then_some(Category(index))
    }

    /// Position in [`CATEGORIES`].
    pub fn index(self) -> usize {
        self.0
    }

    /// Canonical name.
    pub fn name(self) -> &'static str {
        CATEGORIES[self.0]
    }

    /// Every category in canonical order.
    pub fn all() -> impl Iterator<Item = Category> {
        (0..Self::COUNT).map(Category)
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_match_by_name_in_any_spelling() {
        for spelling in [
            "computer science",
            "computer_science",
            "Computer-Science",
            " COMPUTER SCIENCE ",
        ] {
            assert_eq!(
                Category::parse(spelling).map(Category::name),
                Some("computer science")
            );
        }
        assert_eq!(Category::parse("astrology"), None);
        assert_eq!(Category::all().count(), 14);
        assert_eq!(Category::from_index(14), None);
    }
}
