//! Data sets used to train and evaluate heads.

pub mod mmlu;
