//! The built-in dashboard: whether it is served, how many decisions it keeps, and whether it
//! may show prompt text.

use serde::Deserialize;

/// `/dashboard` and its JSON views.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DashboardConfig {
    /// Serve `/dashboard` and `/dashboard/api/*`. Off: they answer 404 and no decision is kept.
    pub enabled: bool,
    /// Decisions listed in the live view, newest first.
    pub recent_decisions: usize,
    /// Decisions kept for the distribution view (a ring; the oldest go first).
    pub history: usize,
    /// Seconds the distribution view covers.
    pub window_s: u64,
    /// Keep and show each decision's prompt (the last user message, cut to 200 characters).
    /// A debugging aid: off, no prompt text is kept at all.
    pub show_prompts: bool,
}

impl Default for DashboardConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            recent_decisions: 100,
            history: 10_000,
            window_s: 300,
            show_prompts: false,
        }
    }
}

impl DashboardConfig {
    /// Checks the sizes.
    pub(super) fn validate(&self, key: &str) -> Result<(), (String, String)> {
        if !(1..=10_000).contains(&self.recent_decisions) {
            return Err((
                format!("{key}.recent_decisions"),
                "must be from 1 to 10000".into(),
            ));
        }
        if self.history < self.recent_decisions || self.history > 1_000_000 {
            return Err((
                format!("{key}.history"),
                "must be at least recent_decisions and at most 1000000".into(),
            ));
        }
        if !(1..=86_400).contains(&self.window_s) {
            return Err((format!("{key}.window_s"), "must be from 1 to 86400".into()));
        }
        Ok(())
    }
}
