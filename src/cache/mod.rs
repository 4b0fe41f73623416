//! The semantic cache: answers repeated and near-duplicate chat requests without calling a
//! model, and never answers one it should not.
//!
//! - [`request`]: a chat body becomes a [`CacheRequest`]: its [`scope`] (model, tenant,
//!   conversation before the last user turn, tools, `response_format`, parameters) and its
//!   [`exact`] key (scope plus the normalised last user text).
//! - [`local`]: [`SemanticCache`], the local tier: the exact fast path, then HNSW search
//!   ([`semantic`]) in scope above a threshold, with the false-hit [`guard`] for the grey band;
//!   absolute TTLs, LRU bounds on entries and bytes ([`store`]).
//! - [`answer`]: what is stored ([`CachedAnswer`], from JSON or reassembled SSE, complete
//!   answers only) and how it is replayed (JSON or SSE).
//! - [`controls`]: the client's `Cache-Control` / `x-semrouter-cache` directives.
//! - [`snapshot`]: save on shutdown, load on start; [`shared`]: the Redis tier for replicas
//!   ([`SharedTier`]).
//! - [`metrics`]: counters, [`CacheStats`], `semrouter_cache_*` metrics.
//! - [`config`]: [`CacheConfig`], the `cache:` section.

pub mod answer;
pub mod clock;
pub mod config;
pub mod controls;
pub mod exact;
pub mod guard;
pub mod local;
pub mod metrics;
pub mod record;
pub mod request;
pub mod scope;
pub mod semantic;
pub mod shared;
pub mod snapshot;
mod store;

pub use answer::{CachedAnswer, StreamAssembler, Unstorable};
pub use clock::{Clock, ManualClock, SystemClock};
pub use config::CacheConfig;
pub use controls::{directives, Directives};
pub use guard::{GuardCheck, GuardFeatures};
pub use local::{
    BatchItem, CacheError, CacheHit, EmbeddingSpace, Maintenance, MaintenanceHandle, Reply,
    SemanticCache, WriteSkip,
};
pub use metrics::{CacheStats, HitKind};
pub use request::{CacheRequest, NotCacheable};
pub use scope::{CacheScope, FlushFilter, ScopeId};
pub use semantic::VectorError;
pub use shared::{SharedError, SharedTier};
pub use snapshot::{SnapshotError, SnapshotLoaded};
