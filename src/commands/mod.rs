//! The offline commands: training and evaluating the domain head. They are the binary's
//! edge, so they report errors with `anyhow`.

pub mod eval;
mod report;
pub mod train;
