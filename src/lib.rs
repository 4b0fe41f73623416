//! semrouter: a semantic router for LLM inference.
//!
//! For each OpenAI-style chat request it decides which model should answer and whether it
//! should reason, in a few milliseconds, from one embedding of the prompt.
//!
//! Layout: [`openai`] parses requests; [`engine`] decides; [`assemble`] builds the engine from
//! [`config`]; [`server`] is the HTTP front end; [`heads`] and [`data`] train the classifiers;
//! model backends live in the `plugins/` crates behind the `semrouter-embedder` traits.

pub mod assemble;
pub mod cache;
pub mod categories;
pub mod config;
pub mod data;
pub mod engine;
pub mod heads;
pub mod openai;
pub mod server;
pub mod telemetry;
