//! The offline commands: training and evaluating heads, and writing the eval files. They are
//! the binary's edge, so they report errors with `anyhow`.

pub mod data;
mod embed;
pub mod eval;
mod report;
pub mod train;
