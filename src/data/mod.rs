//! Data sets used to train and evaluate heads and signals.

pub mod mmlu;
pub mod pii;
