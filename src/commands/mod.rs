//! The offline commands: training and evaluating the domain head, generating and evaluating
//! the PII data. They are the binary's edge, so they report errors with `anyhow`.

pub mod data;
pub mod eval;
mod report;
pub mod train;
