//! The offline commands: training and evaluating heads. They are the binary's edge, so they
//! report errors with `anyhow`.

mod embed;
pub mod eval;
mod report;
pub mod train;
