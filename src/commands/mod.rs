//! The offline commands: training and evaluating heads and signals, writing the eval files,
//! and replaying labelled requests through the engine. They are the binary's edge, so they
//! report errors with `anyhow`.

pub mod data;
mod embed;
pub mod eval;
pub mod eval_pii;
pub mod replay;
mod report;
pub mod train;
