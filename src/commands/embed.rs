//! Embedding many texts through the configured backend, with progress: what training and
//! evaluation of every head share.

use anyhow::Context;
use futures_util::{stream, StreamExt};
use semrouter_embedder::Embedder;

use super::report::Progress;

/// Texts per embedding call.
const EMBED_CHUNK: usize = 64;
/// Calls in flight, to keep the encoder busy.
const IN_FLIGHT: usize = 4;

/// Embeds `texts` in order, showing progress under `label`.
pub async fn embed_all(
    embedder: &dyn Embedder,
    texts: &[&str],
    label: &str,
) -> anyhow::Result<Vec<Vec<f32>>> {
    let mut progress = Progress::new(texts.len() as u64, label);
    let mut out = Vec::with_capacity(texts.len());
    let mut chunks = stream::iter(texts.chunks(EMBED_CHUNK))
        .map(|chunk| embedder.embed(chunk.iter().map(|t| t.to_string()).collect()))
        .buffered(IN_FLIGHT);
    while let Some(result) = chunks.next().await {
        let encoded = result.context("embedding failed")?;
        progress.advance(encoded.len() as u64);
        out.extend(encoded.into_iter().map(|e| e.values));
    }
    progress.finish();
    Ok(out)
}
