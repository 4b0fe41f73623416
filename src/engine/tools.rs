//! Tool pre-selection: keep the tools most relevant to the prompt, so the model reads a short
//! catalogue instead of every tool an agent knows.
//!
//! Each tool is embedded as "name: description" (cached by content hash, so a catalogue sent
//! with every request is embedded once) and compared with the prompt's embedding by cosine
//! similarity. The top-k above a threshold stay, plus configured names and the tool the
//! request forces with `tool_choice`.

use std::collections::HashSet;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;

use quick_cache::sync::Cache;
use semrouter_embedder::{BackendError, Embedder};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::config::ToolsConfig;

/// A tool kept, with its similarity to the prompt.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KeptTool {
    /// Function name.
    pub name: String,
    /// Cosine similarity to the prompt.
    pub similarity: f32,
}

/// A tool removed, and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RemovedTool {
    /// Function name.
    pub name: String,
    /// Cosine similarity to the prompt.
    pub similarity: f32,
    /// Why it was removed.
    pub reason: String,
}

/// What pre-selection did with a request's tools.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ToolSelection {
    /// Tools kept, most similar first.
    pub kept: Vec<KeptTool>,
    /// Tools removed.
    pub removed: Vec<RemovedTool>,
}

/// The tool pre-selector of one configuration, with its embedding cache.
pub struct ToolSelector {
    config: ToolsConfig,
    always_keep: HashSet<String>,
    cache: Cache<u64, Arc<[f32]>>,
}

/// The function name of an OpenAI tool definition (`{"type": "function", "function": {...}}`).
fn tool_name(tool: &Value) -> Option<&str> {
    tool.get("function")?.get("name")?.as_str()
}

/// The text a tool is embedded as.
fn tool_text(tool: &Value) -> String {
    let function = tool.get("function");
    let field = |k: &str| {
        function
            .and_then(|f| f.get(k))
            .and_then(Value::as_str)
            .unwrap_or("")
    };
    format!("{}: {}", field("name"), field("description"))
}

fn content_hash(text: &str) -> u64 {
    let mut hasher = DefaultHasher::new();
    text.hash(&mut hasher);
    hasher.finish()
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    let n = norm(a) * norm(b);
    if n > 0.0 {
        dot / n
    } else {
        0.0
    }
}

impl ToolSelector {
    /// A selector for validated `config`.
    pub fn new(config: ToolsConfig) -> Self {
        Self {
            always_keep: config.always_keep.iter().cloned().collect(),
            cache: Cache::new(config.cache_entries.max(1)),
            config,
        }
    }

    /// Whether `tools` would be trimmed at all (enabled, and more than `top_k` of them).
    pub fn applies(&self, tools: &[Value]) -> bool {
        self.config.enabled && tools.len() > self.config.top_k
    }

    /// Chooses which of `body`'s tools to keep for a prompt embedded as `prompt`, and rewrites
    /// `body.tools`. Embeds only tools not already cached, in one backend call.
    pub async fn select(
        &self,
        embedder: &dyn Embedder,
        prompt: &[f32],
        body: &mut Map<String, Value>,
    ) -> Result<ToolSelection, BackendError> {
        let Some(Value::Array(tools)) = body.get("tools") else {
            return Ok(ToolSelection::default());
        };
        if !self.applies(tools) {
            return Ok(ToolSelection::default());
        }
        let texts: Vec<String> = tools.iter().map(tool_text).collect();
        let hashes: Vec<u64> = texts.iter().map(|t| content_hash(t)).collect();
        let missing: Vec<usize> = (0..texts.len())
            .filter(|&i| self.cache.get(&hashes[i]).is_none())
            .collect();
        if !missing.is_empty() {
            let encoded = embedder
                .embed(missing.iter().map(|&i| texts[i].clone()).collect())
                .await?;
            for (&i, e) in missing.iter().zip(encoded) {
                self.cache.insert(hashes[i], e.values.into());
            }
        }
        let forced = body
            .get("tool_choice")
            .and_then(|c| c.get("function"))
            .and_then(|f| f.get("name"))
            .and_then(Value::as_str)
            .map(str::to_string);

        let mut scored: Vec<(usize, f32)> = (0..tools.len())
            .map(|i| {
                (
                    i,
                    self.cache
                        .get(&hashes[i])
                        .map_or(0.0, |v| cosine(prompt, &v)),
                )
            })
            .collect();
        scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));

        let mut keep = vec![false; tools.len()];
        let mut reasons: Vec<Option<String>> = vec![None; tools.len()];
        let mut ranked_kept = 0;
        for &(i, similarity) in &scored {
            let name = tool_name(&tools[i]).unwrap_or("");
            if self.always_keep.contains(name) || forced.as_deref() == Some(name) {
                keep[i] = true;
            } else if similarity < self.config.threshold {
                reasons[i] = Some(format!(
                    "similarity {similarity:.2} is below the threshold {:.2}",
                    self.config.threshold
                ));
            } else if ranked_kept >= self.config.top_k {
                reasons[i] = Some(format!(
                    "not in the top {} by similarity",
                    self.config.top_k
                ));
            } else {
                keep[i] = true;
                ranked_kept += 1;
            }
        }

        let mut selection = ToolSelection::default();
        for &(i, similarity) in &scored {
            let name = tool_name(&tools[i]).unwrap_or("").to_string();
            match reasons[i].take() {
                None => selection.kept.push(KeptTool { name, similarity }),
                Some(reason) => selection.removed.push(RemovedTool {
                    name,
                    similarity,
                    reason,
                }),
            }
        }
        let trimmed: Vec<Value> = tools
            .iter()
            .zip(&keep)
            .filter(|(_, &k)| k)
            .map(|(t, _)| t.clone())
            .collect();
        body.insert("tools".into(), Value::Array(trimmed));
        Ok(selection)
    }
}

#[cfg(test)]
mod tests {
    use async_trait::async_trait;
    use semrouter_embedder::{BackendInfo, Encoded, Health, StageTiming};
    use serde_json::json;

    use super::*;

    /// Embeds a text as counts of a few marker words, so similarity is predictable.
    struct Words {
        info: BackendInfo,
        calls: std::sync::atomic::AtomicUsize,
    }

    const MARKERS: [&str; 4] = ["weather", "email", "calendar", "stock"];

    fn embed_words(text: &str) -> Vec<f32> {
        let lower = text.to_lowercase();
        MARKERS
            .iter()
            .map(|m| lower.matches(m).count() as f32)
            .chain([0.1])
            .collect()
    }

    #[async_trait]
    impl Embedder for Words {
        async fn embed(&self, texts: Vec<String>) -> Result<Vec<Encoded>, BackendError> {
            self.calls
                .fetch_add(texts.len(), std::sync::atomic::Ordering::Relaxed);
            Ok(texts
                .iter()
                .map(|t| Encoded {
                    values: embed_words(t),
                    tokens: 1,
                    timing: StageTiming::default(),
                })
                .collect())
        }
        fn info(&self) -> &BackendInfo {
            &self.info
        }
        async fn health(&self) -> Health {
            Health::Ready
        }
    }

    fn tool(name: &str, description: &str) -> Value {
        json!({"type": "function", "function": {"name": name, "description": description, "parameters": {}}})
    }

    #[tokio::test]
    async fn keeps_the_top_k_similar_tools_and_reports_the_rest() {
        let embedder = Words {
            info: BackendInfo {
                backend: "test".into(),
                model_id: "words".into(),
                dimension: 5,
                max_tokens: 8,
                execution_provider: "cpu".into(),
                requested_provider: "cpu".into(),
            },
            calls: Default::default(),
        };
        let selector = ToolSelector::new(ToolsConfig {
            enabled: true,
            top_k: 1,
            threshold: 0.5,
            always_keep: vec!["send_email".into()],
            cache_entries: 16,
        });
        let tools = vec![
            tool("get_weather", "weather forecast for a city"),
            tool("send_email", "send an email"),
            tool("stock_price", "stock quote"),
            tool("weather_alerts", "weather alerts and weather warnings"),
        ];
        let prompt = embed_words("what's the weather in Paris?");
        let mut body: Map<String, Value> = json!({"tools": tools.clone()})
            .as_object()
            .cloned()
            .unwrap_or_default();
        let s = selector
            .select(&embedder, &prompt, &mut body)
            .await
            .unwrap();
        let kept: Vec<&str> = s.kept.iter().map(|k| k.name.as_str()).collect();
        assert_eq!(
            kept,
            ["get_weather", "send_email"],
            "top-1 by similarity plus the always-kept tool"
        );
        let removed: Vec<(&str, &str)> = s
            .removed
            .iter()
            .map(|r| (r.name.as_str(), r.reason.as_str()))
            .collect();
        assert_eq!(removed.len(), 2);
        assert!(removed
            .iter()
            .any(|(n, r)| *n == "weather_alerts" && r.contains("top 1")));
        assert!(removed
            .iter()
            .any(|(n, r)| *n == "stock_price" && r.contains("threshold")));
        assert_eq!(body["tools"].as_array().unwrap().len(), 2);

        // The same catalogue again: nothing is embedded twice.
        let before = embedder.calls.load(std::sync::atomic::Ordering::Relaxed);
        let mut body: Map<String, Value> = json!({"tools": tools, "tool_choice": {"type": "function", "function": {"name": "stock_price"}}})
            .as_object()
            .cloned()
            .unwrap_or_default();
        let s = selector
            .select(&embedder, &prompt, &mut body)
            .await
            .unwrap();
        assert_eq!(
            embedder.calls.load(std::sync::atomic::Ordering::Relaxed),
            before
        );
        assert!(
            s.kept.iter().any(|k| k.name == "stock_price"),
            "the forced tool is kept"
        );
    }
}
