//! One ONNX Runtime session of a BERT-family model: which inputs it declares, which output to
//! read, and turning a padded batch of token ids into one row per text.

use std::path::Path;

use ort::session::{RunOptions, Session, SessionInputValue};

use ort::value::{Tensor, TensorElementType, ValueType};

use crate::config::Pooling;
use crate::pooling;
use crate::tokenize::Tokens;
use crate::OnnxError;

/// What one row of the model's output should be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputKind {
    /// A text embedding: token vectors pooled (or a pre-pooled output), optionally normalised.
    Embedding {
        /// Pooling of a `[batch, tokens, dim]` output.
        pooling: Pooling,
        /// L2-normalise each row.
        normalize: bool,
    },
    /// Classification logits from a `[batch, labels]` output.
    Logits,
    /// Per-token classification from a `[batch, tokens, labels]` logits output: each text's
    /// row is its real tokens' label probabilities (softmax), row-major `[tokens, labels]`.
    TokenProbabilities,
}

/// The integer type of the model's id inputs: exports use int64, some use int32.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum IdType {
    I64,
    I32,
}

/// The inputs a BERT-family model may declare, found by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum InputRole {
    InputIds,
    AttentionMask,
    TokenTypeIds,
}

/// A session plus what was learnt about its inputs and outputs at load time.
pub(crate) struct ModelSession {
    session: Session,
    run_options: RunOptions,
    inputs: Vec<(String, InputRole, IdType)>,
    output: String,
    output_rank: usize,
    kind: OutputKind,
    /// Width of one output row (embedding dimension or label count; labels per token for
    /// token classification), when the model declares it.
    pub(crate) width: Option<usize>,
}

impl ModelSession {
    /// Inspects `session`'s declared inputs and outputs and checks they fit `kind`.
    /// `arena_devices` names the memory arenas to shrink after every run (e.g. `cpu:0`).
    pub(crate) fn new(
        session: Session,
        path: &Path,
        kind: OutputKind,
        arena_devices: &str,
    ) -> Result<Self, OnnxError> {
        let error = |reason: String| OnnxError::Model {
            path: path.to_path_buf(),
            reason,
        };
        // ONNX Runtime's arena keeps the peak of every shape it has seen; with prompts of every
        // length that grew to 940 MB over MMLU val. Shrinking after each run keeps resident
        // memory at its start-up size (about 215 MB) at no measured cost in throughput.
        let mut run_options = RunOptions::new().map_err(|e| error(e.to_string()))?;
        run_options
            .set("memory.enable_memory_arena_shrinkage", arena_devices)
            .map_err(|e| error(e.to_string()))?;
        let mut inputs = Vec::new();
        for input in session.inputs() {
            let role = match input.name() {
                "input_ids" => InputRole::InputIds,
                "attention_mask" => InputRole::AttentionMask,
                "token_type_ids" => InputRole::TokenTypeIds,
                other => {
                    return Err(error(format!(
                        "unsupported input `{other}`; a BERT-family encoder takes input_ids, attention_mask and optionally token_type_ids"
                    )))
                }
            };
            let id_type = match input.dtype() {
                ValueType::Tensor {
                    ty: TensorElementType::Int64,
                    ..
                } => IdType::I64,
                ValueType::Tensor {
                    ty: TensorElementType::Int32,
                    ..
                } => IdType::I32,
                other => {
                    return Err(error(format!(
                        "input `{}` has type {other}; expected int64 or int32",
                        input.name()
                    )))
                }
            };
            inputs.push((input.name().to_string(), role, id_type));
        }
        if !inputs
            .iter()
            .any(|(_, role, _)| *role == InputRole::InputIds)
        {
            return Err(error("the model declares no `input_ids` input".into()));
        }

        let outputs: Vec<(String, usize, Option<usize>)> = session
            .outputs()
            .iter()
            .filter_map(|o| {
                let shape = o.dtype().tensor_shape()?;
                let width = shape
                    .last()
                    .and_then(|&d| usize::try_from(d).ok())
                    .filter(|&d| d > 0);
                Some((o.name().to_string(), shape.len(), width))
            })
            .collect();
        let pick = |names: &[&str], rank: usize| {
            outputs
                .iter()
                .find(|(n, r, _)| *r == rank && names.contains(&n.as_str()))
                .or_else(|| outputs.iter().find(|(_, r, _)| *r == rank))
                .cloned()
        };
        let chosen = match kind {
            OutputKind::Embedding { .. } => pick(&["last_hidden_state", "token_embeddings"], 3)
                .or_else(|| pick(&["sentence_embedding", "embeddings"], 2)),
            OutputKind::Logits => pick(&["logits"], 2),
            OutputKind::TokenProbabilities => pick(&["logits"], 3),
        };
        let (output, output_rank, width) = chosen.ok_or_else(|| {
            let wanted = match kind {
                OutputKind::Embedding { .. } => {
                    "a [batch, tokens, dim] or [batch, dim] float output"
                }
                OutputKind::Logits => "a [batch, labels] logits output",
                OutputKind::TokenProbabilities => "a [batch, tokens, labels] logits output",
            };
            error(format!("no output fits: expected {wanted}"))
        })?;
        Ok(Self {
            session,
            run_options,
            inputs,
            output,
            output_rank,
            kind,
            width,
        })
    }

    /// Whether the model takes `token_type_ids` (BERT, MiniLM) or not (ModernBERT).
    pub(crate) fn uses_token_type_ids(&self) -> bool {
        self.inputs
            .iter()
            .any(|(_, role, _)| *role == InputRole::TokenTypeIds)
    }

    /// Runs one forward pass over `batch`, padded to its longest text; one row per text.
    pub(crate) fn run(&mut self, batch: &[&Tokens]) -> Result<Vec<Vec<f32>>, String> {
        let rows = batch.len();
        let cols = batch.iter().map(|t| t.len()).max().unwrap_or(0);
        if rows == 0 || cols == 0 {
            return Ok(vec![Vec::new(); rows]);
        }
        let mut ids = vec![0i64; rows * cols];
        let mut mask = vec![0i64; rows * cols];
        let mut type_ids = vec![0i64; rows * cols];
        for (r, tokens) in batch.iter().enumerate() {
            let row = r * cols;
            ids[row..row + tokens.len()].copy_from_slice(&tokens.ids);
            type_ids[row..row + tokens.len()].copy_from_slice(&tokens.type_ids);
            mask[row..row + tokens.len()].fill(1);
        }

        let mut values: Vec<(String, SessionInputValue<'_>)> =
            Vec::with_capacity(self.inputs.len());
        for (name, role, id_type) in &self.inputs {
            let data = match role {
                InputRole::InputIds => &ids,
                InputRole::AttentionMask => &mask,
                InputRole::TokenTypeIds => &type_ids,
            };
            values.push((name.clone(), id_tensor(data, rows, cols, *id_type)?));
        }
        let outputs = self
            .session
            .run_with_options(values, &self.run_options)
            .map_err(|e| e.to_string())?;
        let value = outputs
            .get(&self.output)
            .ok_or_else(|| format!("the model produced no `{}` output", self.output))?;
        let (shape, data) = value
            .try_extract_tensor::<f32>()
            .map_err(|e| e.to_string())?;
        let dims: Vec<usize> = shape
            .iter()
            .map(|&d| usize::try_from(d).unwrap_or(0))
            .collect();

        match (self.output_rank, self.kind) {
            (3, OutputKind::Embedding { pooling, normalize }) => {
                let [n, m, d] = dims[..] else {
                    return Err(format!(
                        "output `{}` has shape {dims:?}; expected 3 dimensions",
                        self.output
                    ));
                };
                if n != rows || m != cols {
                    return Err(format!(
                        "output shape {dims:?} does not match the batch [{rows}, {cols}]"
                    ));
                }
                Ok(pooling::pool(
                    data, &mask, rows, cols, d, pooling, normalize,
                ))
            }
            (3, OutputKind::TokenProbabilities) => {
                let [n, m, labels] = dims[..] else {
                    return Err(format!(
                        "output `{}` has shape {dims:?}; expected 3 dimensions",
                        self.output
                    ));
                };
                if n != rows || m != cols || labels == 0 {
                    return Err(format!(
                        "output shape {dims:?} does not match the batch [{rows}, {cols}, labels]"
                    ));
                }
                Ok(batch
                    .iter()
                    .enumerate()
                    .map(|(r, tokens)| {
                        // Padding positions are dropped: only the text's own tokens are kept.
                        let start = r * cols * labels;
                        let mut row = data[start..start + tokens.len() * labels].to_vec();
                        row.chunks_exact_mut(labels).for_each(softmax);
                        row
                    })
                    .collect())
            }
            (2, kind @ (OutputKind::Embedding { .. } | OutputKind::Logits)) => {
                let [n, d] = dims[..] else {
                    return Err(format!(
                        "output `{}` has shape {dims:?}; expected 2 dimensions",
                        self.output
                    ));
                };
                if n != rows {
                    return Err(format!(
                        "output shape {dims:?} does not match the batch of {rows}"
                    ));
                }
                let normalize = matches!(
                    kind,
                    OutputKind::Embedding {
                        normalize: true,
                        ..
                    }
                );
                Ok(data
                    .chunks_exact(d)
                    .map(|row| {
                        let mut row = row.to_vec();
                        if normalize {
                            pooling::l2_normalize(&mut row);
                        }
                        row
                    })
                    .collect())
            }
            (rank, _) => Err(format!(
                "output `{}` has rank {rank}, which this model kind cannot use",
                self.output
            )),
        }
    }
}

/// Turns one row of logits into probabilities, in place (numerically stable).
fn softmax(logits: &mut [f32]) {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for v in logits.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    if sum > 0.0 {
        logits.iter_mut().for_each(|v| *v /= sum);
    }
}

fn id_tensor(
    data: &[i64],
    rows: usize,
    cols: usize,
    id_type: IdType,
) -> Result<SessionInputValue<'static>, String> {
    let shape = [rows, cols];
    let value = match id_type {
        IdType::I64 => Tensor::from_array((shape, data.to_vec())).map(SessionInputValue::from),
        IdType::I32 => {
            // Vocabulary ids and masks are far below i32::MAX, so the narrowing is exact.
            let narrow: Vec<i32> = data.iter().map(|&v| v as i32).collect();
            Tensor::from_array((shape, narrow)).map(SessionInputValue::from)
        }
    };
    value.map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::softmax;

    #[test]
    fn softmax_sums_to_one_and_keeps_order() {
        let mut row = [1.0f32, 3.0, 2.0, 1000.0 - 1000.0];
        softmax(&mut row);
        assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!(row[1] > row[2] && row[2] > row[0]);
        let mut huge = [1000.0f32, 0.0];
        softmax(&mut huge);
        assert!(
            (huge[0] - 1.0).abs() < 1e-6 && huge[1] >= 0.0,
            "no overflow: {huge:?}"
        );
    }
}
