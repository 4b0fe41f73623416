//! Trained heads over the shared embedding: small linear models that turn one embedding into
//! a signal without another encoder pass.

mod linear;
pub mod train;

pub use linear::{softmax, EmbeddingBinding, HeadError, LinearHead, HEAD_FORMAT};
