//! [`SemanticCache`]: the local tier, tying the entry table, the exact path, the segmented
//! HNSW index, the guard, TTLs and counters together.
//!
//! Flow of a request: [`SemanticCache::request`] reads the body once; [`SemanticCache::lookup_exact`]
//! answers repeats before the encoder runs; after the encoder, [`SemanticCache::lookup_semantic`]
//! searches the index in scope; once the upstream answered, [`SemanticCache::store_reply`]
//! stores a complete answer. [`SemanticCache::spawn_maintenance`] runs the TTL sweep and the
//! index compaction in the background.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::RwLock;
use serde_json::{Map, Value};

use super::answer::{CachedAnswer, Unstorable};
use super::clock::{Clock, SystemClock};
use super::config::CacheConfig;
use super::guard::{Guard, GuardCheck, GuardFeatures};
use super::metrics::{CacheStats, Counters, HitKind, SharedStats};
use super::record::EntryRecord;
use super::request::{CacheRequest, NotCacheable};
use super::scope::FlushFilter;
use super::semantic::{prepare, Candidate, SemanticIndex, VectorError};
use super::store::{Bounds, Entry, Probe, Removal, Removed, Store, ENTRY_OVERHEAD};

/// Candidates taken from each segment per search.
const CANDIDATES: usize = 8;
/// Most candidates per segment when searches are crowded by out-of-scope or dead points
/// (the candidate count grows eightfold per retry up to this).
const MAX_CANDIDATES: usize = 4096;
/// Compactions per maintenance pass at most (each rewrites one segment).
const COMPACTIONS_PER_PASS: usize = 4;

/// The embedding model whose vectors the cache holds; entries are valid for it alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmbeddingSpace {
    /// The model id (e.g. `all-MiniLM-L6-v2-int8`).
    pub model_id: String,
    /// The vector dimension.
    pub dimension: usize,
}

/// Why a cache could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CacheError {
    /// The configuration is invalid.
    #[error("config key `{0}`: {1}")]
    Config(String, String),
    /// The embedding dimension is zero.
    #[error("the embedding dimension must be at least 1")]
    Dimension,
}

/// Why an answer was not stored. Every variant is counted under its [`WriteSkip::label`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WriteSkip {
    /// The cache is disabled.
    #[error("the cache is disabled")]
    Disabled,
    /// The client sent `Cache-Control: no-store` or `x-semrouter-cache: bypass`.
    #[error("the client asked not to store")]
    NoStore,
    /// The request is not cacheable.
    #[error("the request is not cacheable: {0}")]
    NotCacheable(NotCacheable),
    /// PII was found in the prompt or the answer.
    #[error("PII detected")]
    Pii,
    /// The answer could not be screened for PII (the detector's model failed or had no
    /// runtime to run on), so it is not stored unchecked.
    #[error("the answer could not be screened for PII")]
    PiiUnchecked,
    /// The engine blocks the request: an answer served for it would bypass the block.
    #[error("the request is blocked by policy")]
    Blocked,
    /// The reply is not a complete, successful answer.
    #[error("the reply is not storable: {0}")]
    Unstorable(Unstorable),
    /// The entry is larger than `max_entry_bytes`.
    #[error("the entry is larger than max_entry_bytes")]
    TooLarge,
    /// The embedding has the wrong dimension or is degenerate.
    #[error("bad embedding: {0}")]
    BadEmbedding(VectorError),
}

impl WriteSkip {
    /// The metric label (one of [`super::metrics::WRITE_SKIP_REASONS`]).
    pub fn label(&self) -> &'static str {
        match self {
            WriteSkip::Disabled => "disabled",
            WriteSkip::NoStore => "no_store",
            WriteSkip::NotCacheable(n) => n.label(),
            WriteSkip::Pii => "pii",
            WriteSkip::PiiUnchecked => "pii_unchecked",
            WriteSkip::Blocked => "blocked",
            WriteSkip::Unstorable(u) => u.label(),
            WriteSkip::TooLarge => "too_large",
            WriteSkip::BadEmbedding(_) => "bad_embedding",
        }
    }
}

/// An upstream reply to store.
#[derive(Debug, Clone, Copy)]
pub enum Reply<'a> {
    /// A non-streamed chat completion: status and parsed body.
    Json {
        /// HTTP status.
        status: u16,
        /// The body.
        body: &'a Value,
    },
    /// A streamed reply: status and the whole SSE body as received.
    Sse {
        /// HTTP status.
        status: u16,
        /// The SSE bytes.
        body: &'a [u8],
    },
}

/// A served answer.
#[derive(Debug, Clone)]
pub struct CacheHit {
    /// Exact or semantic.
    pub kind: HitKind,
    /// Cosine similarity of the match (1 for exact hits).
    pub similarity: f32,
    /// The answer; replay it with [`CachedAnswer::to_completion`] or [`CachedAnswer::to_sse`].
    pub answer: Arc<CachedAnswer>,
    /// Milliseconds since the answer was stored.
    pub age_ms: u64,
    /// Milliseconds until it expires.
    pub ttl_left_ms: u64,
}

/// One answer for [`SemanticCache::insert_batch`]: the arguments of [`SemanticCache::insert`].
#[derive(Debug, Clone)]
pub struct BatchItem<'a> {
    /// The request the answer is for.
    pub request: &'a CacheRequest,
    /// Its embedding (none: exact path only).
    pub embedding: Option<&'a [f32]>,
    /// Its category (picks the TTL).
    pub category: Option<&'a str>,
    /// The answer.
    pub answer: CachedAnswer,
}

/// What a maintenance pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Maintenance {
    /// Entries removed past their TTL.
    pub expired: usize,
    /// Segments compacted.
    pub compacted: usize,
    /// Live points moved by compaction.
    pub moved: usize,
}

/// Where an entry came from (entries from elsewhere are not published again).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    /// Stored by this process.
    Local,
    /// From another replica through the shared tier.
    Shared,
    /// From a snapshot.
    Snapshot,
}

/// The shared tier as the local tier sees it: non-blocking outboxes.
pub(crate) trait Replicator: Send + Sync {
    /// Queues an entry for Redis; never blocks.
    fn put(&self, record: EntryRecord);
    /// Queues a flush for Redis and the other replicas; never blocks.
    fn flush(&self, filter: &FlushFilter);
    /// The tier's state.
    fn stats(&self) -> SharedStats;
}

/// The local tier of the semantic cache. Cheap to share behind an `Arc`; every method takes
/// `&self` and is safe to call from many threads.
pub struct SemanticCache {
    config: CacheConfig,
    space: EmbeddingSpace,
    store: Store,
    index: SemanticIndex,
    guard: Guard,
    counters: Counters,
    clock: Arc<dyn Clock>,
    next_id: AtomicU64,
    point_bytes: usize,
    replicator: RwLock<Option<Arc<dyn Replicator>>>,
}

impl std::fmt::Debug for SemanticCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SemanticCache")
            .field("space", &self.space)
            .finish_non_exhaustive()
    }
}

impl SemanticCache {
    /// Builds an empty cache for vectors of `space` (validates `config` first).
    pub fn new(config: &CacheConfig, space: EmbeddingSpace) -> Result<Self, CacheError> {
        Self::with_clock(config, space, Arc::new(SystemClock))
    }

    /// As [`SemanticCache::new`], with a clock of the caller's (tests move time by hand).
    pub fn with_clock(
        config: &CacheConfig,
        space: EmbeddingSpace,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, CacheError> {
        config
            .validate("cache")
            .map_err(|(key, message)| CacheError::Config(key, message))?;
        if space.dimension == 0 {
            return Err(CacheError::Dimension);
        }
        let segment_size = config.index.segment_size(config.max_entries);
        // hnsw_rs keeps each point's vector and its links as reference-counted neighbours
        // (about 40 bytes per link, up to 2M links in layer 0).
        let point_bytes = space.dimension * 4 + 2 * config.index.max_connections * 40 + 128;
        Ok(Self {
            store: Store::new(Bounds {
                max_entries: config.max_entries,
                max_bytes: config.max_bytes,
            }),
            index: SemanticIndex::new(&config.index, segment_size),
            guard: Guard::new(config.guard.clone()),
            counters: Counters::default(),
            clock,
            next_id: AtomicU64::new(1),
            point_bytes,
            replicator: RwLock::new(None),
            config: config.clone(),
            space,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &CacheConfig {
        &self.config
    }

    /// The embedding model and dimension the cache holds vectors of.
    pub fn space(&self) -> &EmbeddingSpace {
        &self.space
    }

    /// Reads a request for the cache (see [`CacheRequest::from_body`]); `model` is the
    /// scope's model and `tenant` the configured header's value.
    pub fn request(
        &self,
        body: &Map<String, Value>,
        model: &str,
        tenant: Option<&str>,
    ) -> Result<CacheRequest, NotCacheable> {
        CacheRequest::from_body(body, model, tenant, self.config.max_temperature)
    }

    fn now(&self) -> u64 {
        self.clock.now_ms()
    }

    /// Whether a stored answer fits what the request allows.
    fn fits(entry: &Entry, request: &CacheRequest) -> bool {
        entry.scope == request.scope.id
            && match (
                request.max_completion_tokens,
                entry.answer.completion_tokens(),
            ) {
                (Some(limit), Some(used)) => used <= limit,
                _ => true,
            }
    }

    fn hit(kind: HitKind, similarity: f32, entry: &Entry, now: u64) -> CacheHit {
        CacheHit {
            kind,
            similarity,
            answer: Arc::clone(&entry.answer),
            age_ms: now.saturating_sub(entry.created_ms),
            ttl_left_ms: entry.expires_ms.saturating_sub(now),
        }
    }

    /// The exact path: a live entry with the request's exact key, without the encoder.
    pub fn lookup_exact(&self, request: &CacheRequest) -> Option<CacheHit> {
        if !self.config.enabled || !self.config.exact {
            return None;
        }
        let started = Instant::now();
        let now = self.now();
        let found = match self.store.get_by_key(&request.key, now, |e| {
            Self::fits(e, request).then(|| Self::hit(HitKind::Exact, 1.0, e, now))
        }) {
            Probe::Found(hit) => hit,
            Probe::Expired(removed) => {
                self.after_removal(&[removed]);
                None
            }
            Probe::Missing => None,
        };
        self.counters
            .lookup(HitKind::Exact, found.is_some(), started.elapsed());
        found
    }

    /// The semantic path: the most similar live entry in the request's scope whose
    /// similarity reaches the threshold (per category) and that the guard lets through.
    /// `embedding` is the request's embedding from the configured encoder (a miss, without
    /// a search, when [`CacheRequest::embedding_truncated`] is set).
    pub fn lookup_semantic(
        &self,
        request: &CacheRequest,
        embedding: &[f32],
        category: Option<&str>,
    ) -> Result<Option<CacheHit>, VectorError> {
        if !self.config.enabled || !self.config.semantic || request.embedding_truncated {
            return Ok(None);
        }
        let started = Instant::now();
        let query = prepare(embedding, self.space.dimension)?;
        let threshold = self.config.threshold_for(category);
        let features = request.guard_features();
        let (ef, beam) = (self.config.index.ef_search, self.config.index.entry_beam);

        // Ids judged by earlier, narrower searches; empty (no allocation) unless one widens.
        let mut seen = HashSet::new();
        let mut k = CANDIDATES;
        let judged = loop {
            let candidates = self.index.search(&query, k, ef.max(k), beam);
            let judged = self.judge(&candidates, request, features, threshold, &seen, k);
            // When every candidate taken was above the threshold yet none could be served
            // (other scopes, dead points, guard), the match may lie further down: widen.
            if judged.hit.is_some()
                || !judged.crowded
                || k >= MAX_CANDIDATES
                || k >= self.index.usage().points
            {
                break judged;
            }
            seen.extend(candidates.iter().take(judged.above).map(|c| c.id));
            k *= 8;
        };
        self.counters
            .lookup(HitKind::Semantic, judged.hit.is_some(), started.elapsed());
        Ok(judged.hit)
    }

    fn judge(
        &self,
        candidates: &[Candidate],
        request: &CacheRequest,
        features: &GuardFeatures,
        threshold: f32,
        seen: &HashSet<u64>,
        k: usize,
    ) -> Judged {
        let now = self.now();
        let mut above = 0;
        let mut expired = Vec::new();
        let mut hit = None;
        for candidate in candidates.iter().take_while(|c| c.similarity >= threshold) {
            above += 1;
            if seen.contains(&candidate.id) {
                continue;
            }
            let mut vetoed: Option<GuardCheck> = None;
            let probe = self.store.get_by_id(candidate.id, now, |e| {
                if !Self::fits(e, request) {
                    return None;
                }
                if self.guard.applies(candidate.similarity) {
                    if let Err(check) = self.guard.check(features, &e.guard) {
                        vetoed = Some(check);
                        return None;
                    }
                }
                Some(Self::hit(HitKind::Semantic, candidate.similarity, e, now))
            });
            if let Some(check) = vetoed {
                self.counters.guard_rejection(check);
            }
            match probe {
                Probe::Found(Some(found)) => {
                    hit = Some(found);
                    break;
                }
                Probe::Expired(removed) => expired.push(removed),
                Probe::Found(None) | Probe::Missing => {}
            }
        }
        self.after_removal(&expired);
        Judged {
            hit,
            above,
            crowded: above >= k,
        }
    }

    /// Stores an upstream reply for `request` when it is a complete, successful answer.
    /// `embedding` is the request's embedding (none: exact path only); `category` picks the
    /// TTL; `pii_detected` is the caller's PII verdict on prompt and answer.
    pub fn store_reply(
        &self,
        request: &CacheRequest,
        embedding: Option<&[f32]>,
        category: Option<&str>,
        reply: Reply<'_>,
        pii_detected: bool,
    ) -> Result<(), WriteSkip> {
        let answer = self.answer_of(reply, pii_detected)?;
        self.insert(request, embedding, category, answer)
    }

    /// The answer in `reply` when it may be stored: complete and successful, and the caller
    /// found no PII (`pii_detected`). A refusal is counted.
    pub fn answer_of(
        &self,
        reply: Reply<'_>,
        pii_detected: bool,
    ) -> Result<CachedAnswer, WriteSkip> {
        let result = if pii_detected {
            Err(WriteSkip::Pii)
        } else {
            match reply {
                Reply::Json { status, body } => CachedAnswer::from_completion(status, body),
                Reply::Sse { status, body } => CachedAnswer::from_sse(status, body),
            }
            .map_err(WriteSkip::Unstorable)
        };
        if let Err(skip) = &result {
            self.count_skip(skip);
        }
        result
    }

    /// Counts an answer the caller decided not to store (e.g. [`WriteSkip::NoStore`] from the
    /// client's headers, or [`WriteSkip::NotCacheable`]).
    pub fn count_skip(&self, skip: &WriteSkip) {
        self.counters.write_skip(skip.label());
    }

    /// Stores `answer` for `request` (see [`SemanticCache::store_reply`] for the arguments).
    pub fn insert(
        &self,
        request: &CacheRequest,
        embedding: Option<&[f32]>,
        category: Option<&str>,
        answer: CachedAnswer,
    ) -> Result<(), WriteSkip> {
        let result = self.insert_checked(request, embedding, category, answer);
        if let Err(skip) = &result {
            self.count_skip(skip);
        }
        result
    }

    fn insert_checked(
        &self,
        request: &CacheRequest,
        embedding: Option<&[f32]>,
        category: Option<&str>,
        answer: CachedAnswer,
    ) -> Result<(), WriteSkip> {
        let (record, vector) = self.local_record(request, embedding, category, answer)?;
        self.insert_record(record, vector, Origin::Local)
            .map(|_| ())
    }

    /// The record and prepared vector of an answer stored by this process.
    fn local_record(
        &self,
        request: &CacheRequest,
        embedding: Option<&[f32]>,
        category: Option<&str>,
        answer: CachedAnswer,
    ) -> Result<(EntryRecord, Option<Vec<f32>>), WriteSkip> {
        if !self.config.enabled {
            return Err(WriteSkip::Disabled);
        }
        let vector = match embedding {
            Some(e) if self.config.semantic && !request.embedding_truncated => {
                Some(prepare(e, self.space.dimension).map_err(WriteSkip::BadEmbedding)?)
            }
            _ => None,
        };
        let now = self.now();
        let ttl_ms = self.config.ttl_for(category).saturating_mul(1000);
        let record = EntryRecord {
            key: request.key,
            scope: request.scope.id,
            model: request.scope.model.clone(),
            tenant: request.scope.tenant.clone(),
            category: category.map(str::to_string),
            created_ms: now,
            expires_ms: now.saturating_add(ttl_ms),
            guard: request.guard_features().clone(),
            answer,
            embedding: None,
        };
        Ok((record, vector))
    }

    /// Stores a record with an already prepared vector. Returns whether it was stored (a
    /// record already expired, or from elsewhere and not newer than the entry held, is not).
    pub(crate) fn insert_record(
        &self,
        record: EntryRecord,
        vector: Option<Vec<f32>>,
        origin: Origin,
    ) -> Result<bool, WriteSkip> {
        let Some(staged) = self.stage(record, vector, origin)? else {
            return Ok(false);
        };
        let segment = match &staged.vector {
            Some(v) if !self.index.over_hard_bound() => Some(self.index.insert(staged.id, v)),
            Some(_) => {
                // Compaction is behind: keep the answer for exact repeats only.
                self.counters.write_skip("index_backlog");
                None
            }
            None => None,
        };
        self.commit(staged, segment);
        Ok(true)
    }

    /// Stores many answers as [`SemanticCache::insert`] would one after another (same checks,
    /// same LRU order, one result per item), but inserts their vectors into the index in
    /// parallel on rayon's global pool. For bulk loads such as benchmarks and warm starts:
    /// an HNSW insert costs most of a millisecond, so a million one at a time take a quarter
    /// of an hour on two cores. Entries of a batch become visible when the whole batch's
    /// vectors are in.
    pub fn insert_batch(&self, items: Vec<BatchItem<'_>>) -> Vec<Result<(), WriteSkip>> {
        let mut results: Vec<Result<(), WriteSkip>> = Vec::with_capacity(items.len());
        let mut staged = Vec::with_capacity(items.len());
        for item in items {
            // A local record is never older than itself: only one already expired (a TTL of
            // 0) is not staged, and it is not stored, as with `insert`.
            let result = self
                .local_record(item.request, item.embedding, item.category, item.answer)
                .and_then(|(record, vector)| self.stage(record, vector, Origin::Local))
                .map(|s| staged.extend(s));
            if let Err(skip) = &result {
                self.count_skip(skip);
            }
            results.push(result);
        }
        self.commit_batch(staged);
        results
    }

    /// Imports records from a snapshot or another replica as [`SemanticCache::import`] would
    /// one by one, their vectors inserted in parallel (see [`SemanticCache::insert_batch`]).
    /// The records' exact keys must differ (as in a snapshot): within one batch a later
    /// record replaces an earlier one whatever their ages.
    pub(crate) fn import_batch(
        &self,
        records: Vec<EntryRecord>,
        origin: Origin,
    ) -> Vec<Result<bool, WriteSkip>> {
        let mut results = Vec::with_capacity(records.len());
        let mut staged = Vec::with_capacity(records.len());
        for mut record in records {
            let vector = match record.embedding.take() {
                Some(v) if self.config.semantic => prepare(&v, self.space.dimension)
                    .map(Some)
                    .map_err(WriteSkip::BadEmbedding),
                _ => Ok(None),
            };
            results.push(
                vector
                    .and_then(|vector| self.stage(record, vector, origin))
                    .map(|s| {
                        let stored = s.is_some();
                        staged.extend(s);
                        stored
                    }),
            );
        }
        self.commit_batch(staged);
        results
    }

    /// Inserts the staged entries' vectors in one parallel batch, then commits them in order.
    fn commit_batch(&self, staged: Vec<Staged>) {
        // The hard bound is checked once for the batch: its points count as in flight.
        let indexed = !self.index.over_hard_bound();
        let points: Vec<(u64, &[f32])> = if indexed {
            staged
                .iter()
                .filter_map(|s| s.vector.as_deref().map(|v| (s.id, v)))
                .collect()
        } else {
            Vec::new()
        };
        let mut segments = self.index.insert_batch(&points).into_iter();
        for s in staged {
            let segment = match s.vector {
                Some(_) if indexed => segments.next(),
                Some(_) => {
                    // Compaction is behind: keep the answer for exact repeats only.
                    self.counters.write_skip("index_backlog");
                    None
                }
                None => None,
            };
            self.commit(s, segment);
        }
    }

    /// The first half of an insert: the checks, the bytes charged and the entry id. `None`
    /// when the record is not to be stored (expired, or not newer than the entry held).
    fn stage(
        &self,
        mut record: EntryRecord,
        vector: Option<Vec<f32>>,
        origin: Origin,
    ) -> Result<Option<Staged>, WriteSkip> {
        let now = self.now();
        if record.expires_ms <= now
            || (origin != Origin::Local
                && self.store.has_same_or_newer(&record.key, record.created_ms))
        {
            return Ok(None);
        }
        let answer = std::mem::replace(
            &mut record.answer,
            CachedAnswer {
                content: String::new(),
                reasoning_content: None,
                upstream_model: None,
                usage: None,
            },
        );
        let bytes = ENTRY_OVERHEAD
            + answer.heap_bytes()
            + record.guard.heap_bytes()
            + record.model.len()
            + record.tenant.as_ref().map_or(0, String::len)
            + record.category.as_ref().map_or(0, String::len)
            + vector.as_ref().map_or(0, |_| self.point_bytes);
        if bytes as u64 > self.config.max_entry_bytes {
            return Err(WriteSkip::TooLarge);
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        Ok(Some(Staged {
            record,
            answer,
            vector,
            bytes,
            id,
            origin,
        }))
    }

    /// The second half of an insert, once the vector is in the index at `segment` (or not
    /// indexed): the entry table, evictions, counters, the shared tier and the gauges.
    fn commit(&self, staged: Staged, segment: Option<u32>) {
        let Staged {
            mut record,
            answer,
            vector,
            bytes,
            id,
            origin,
        } = staged;
        let answer = Arc::new(answer);
        let entry = Entry {
            id,
            key: record.key,
            scope: record.scope,
            model: Arc::from(record.model.as_str()),
            tenant: record.tenant.as_deref().map(Arc::from),
            category: record.category.as_deref().map(Arc::from),
            created_ms: record.created_ms,
            expires_ms: record.expires_ms,
            guard: record.guard.clone(),
            answer: Arc::clone(&answer),
            bytes,
            segment,
        };
        let removed = self.store.insert(entry);
        self.after_removal(&removed);
        self.counters.inserted();
        if origin == Origin::Local {
            if let Some(replicator) = self.replicator.read().as_ref() {
                record.answer = (*answer).clone();
                record.embedding = segment.and(vector.as_deref().map(SemanticIndex::unscale));
                replicator.put(record);
            }
        }
        self.update_gauges();
    }

    /// Counts removed entries and marks their points dead.
    fn after_removal(&self, removed: &[Removed]) {
        if removed.is_empty() {
            return;
        }
        let (mut evicted, mut expired, mut flushed) = (0, 0, 0);
        for r in removed {
            if let Some(segment) = r.segment {
                self.index.mark_dead(segment);
            }
            match r.why {
                Removal::Evicted => evicted += 1,
                Removal::Expired => expired += 1,
                Removal::Flushed => flushed += 1,
                Removal::Replaced => {}
            }
        }
        self.counters.removed(evicted, expired, flushed);
    }

    fn update_gauges(&self) {
        let (entries, bytes) = self.store.usage();
        let usage = self.index.usage();
        self.counters
            .gauges(entries, bytes, usage.points, usage.dead, usage.segments);
    }

    /// Removes the entries `filter` matches, here and (through the shared tier) on every
    /// replica and in Redis. Returns how many were removed here.
    pub fn flush(&self, filter: &FlushFilter) -> usize {
        let removed = self.flush_local(filter);
        if let Some(replicator) = self.replicator.read().as_ref() {
            replicator.flush(filter);
        }
        removed
    }

    /// Removes matching entries from this tier only.
    pub(crate) fn flush_local(&self, filter: &FlushFilter) -> usize {
        let removed = self.store.flush(filter);
        self.after_removal(&removed);
        self.update_gauges();
        removed.len()
    }

    /// One maintenance pass: removes expired entries, then compacts index segments while
    /// dead points exceed their allowance. [`SemanticCache::spawn_maintenance`] runs it
    /// periodically; tests call it directly.
    pub fn maintain(&self) -> Maintenance {
        let mut report = Maintenance::default();
        let expired = self.store.remove_expired(self.now());
        report.expired = expired.len();
        self.after_removal(&expired);
        for _ in 0..COMPACTIONS_PER_PASS {
            let Some(victim) = self.index.compaction_victim() else {
                break;
            };
            report.moved += self.compact(victim);
            report.compacted += 1;
            self.counters.compacted();
        }
        self.update_gauges();
        report
    }

    /// Moves the live points of sealed segment `victim` to the active segment, then drops it.
    fn compact(&self, victim: u32) -> usize {
        let mut moved = 0;
        for (id, vector) in self.index.points_of(victim) {
            if self.store.segment_of(id) != Some(victim) {
                continue;
            }
            let to = self.index.insert(id, &vector);
            if self.store.relocate(id, victim, to) {
                moved += 1;
            } else {
                // Removed while moving: its new copy is dead already.
                self.index.mark_dead(to);
            }
        }
        self.index.retire(victim);
        moved
    }

    /// Runs [`SemanticCache::maintain`] every `cache.index.maintenance_interval_ms` on a
    /// thread of its own until the handle is dropped (or the cache is).
    pub fn spawn_maintenance(self: &Arc<Self>) -> std::io::Result<MaintenanceHandle> {
        let weak: Weak<Self> = Arc::downgrade(self);
        let interval = Duration::from_millis(self.config.index.maintenance_interval_ms);
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("cache-maintenance".into())
            .spawn(move || loop {
                match stopped.recv_timeout(interval) {
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                    _ => return,
                }
                let Some(cache) = weak.upgrade() else {
                    return;
                };
                let report = cache.maintain();
                if report.compacted > 0 {
                    tracing::debug!(
                        compacted = report.compacted,
                        moved = report.moved,
                        expired = report.expired,
                        "cache maintenance"
                    );
                }
            })?;
        Ok(MaintenanceHandle {
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// Entries, bytes, index size and counters.
    pub fn stats(&self) -> CacheStats {
        let (entries, bytes) = self.store.usage();
        let usage = self.index.usage();
        let counters = self.counters.snapshot();
        // Every request that reaches the cache takes the exact path first when it is on.
        let lookups = if self.config.exact {
            counters.hits.exact + counters.misses.exact
        } else {
            counters.hits.semantic + counters.misses.semantic
        };
        CacheStats {
            entries,
            bytes,
            max_entries: self.config.max_entries,
            max_bytes: self.config.max_bytes,
            index_segments: usage.segments,
            index_points: usage.points,
            index_dead_points: usage.dead,
            hit_ratio: if lookups == 0 {
                0.0
            } else {
                (counters.hits.exact + counters.hits.semantic) as f64 / lookups as f64
            },
            counters,
            shared: self.replicator.read().as_ref().map(|r| r.stats()),
        }
    }

    /// Copies of every live entry with its vector, least recently used first.
    pub(crate) fn export(&self) -> Vec<EntryRecord> {
        let entries = self.store.entries(self.now());
        let mut vectors: HashMap<u64, Vec<f32>> = HashMap::new();
        if entries.iter().any(|e| e.segment.is_some()) {
            let wanted: HashMap<u64, u32> = entries
                .iter()
                .filter_map(|e| e.segment.map(|s| (e.id, s)))
                .collect();
            for (segment, id, vector) in self.index.all_points() {
                if wanted.get(&id) == Some(&segment) {
                    vectors.insert(id, SemanticIndex::unscale(&vector));
                }
            }
        }
        entries
            .into_iter()
            .map(|e| EntryRecord {
                key: e.key,
                scope: e.scope,
                model: e.model.to_string(),
                tenant: e.tenant.as_deref().map(str::to_string),
                category: e.category.as_deref().map(str::to_string),
                created_ms: e.created_ms,
                expires_ms: e.expires_ms,
                guard: e.guard,
                answer: (*e.answer).clone(),
                embedding: vectors.remove(&e.id),
            })
            .collect()
    }

    /// Imports a record from a snapshot or another replica; its vector is checked and
    /// prepared here. Returns whether it was stored.
    pub(crate) fn import(
        &self,
        mut record: EntryRecord,
        origin: Origin,
    ) -> Result<bool, WriteSkip> {
        let vector = match record.embedding.take() {
            Some(v) if self.config.semantic => {
                Some(prepare(&v, self.space.dimension).map_err(WriteSkip::BadEmbedding)?)
            }
            _ => None,
        };
        self.insert_record(record, vector, origin)
    }

    /// Attaches the shared tier.
    pub(crate) fn set_replicator(&self, replicator: Option<Arc<dyn Replicator>>) {
        *self.replicator.write() = replicator;
    }
}

/// An insert between [`SemanticCache::stage`] and [`SemanticCache::commit`].
struct Staged {
    record: EntryRecord,
    answer: CachedAnswer,
    vector: Option<Vec<f32>>,
    bytes: usize,
    id: u64,
    origin: Origin,
}

struct Judged {
    hit: Option<CacheHit>,
    /// Candidates at or above the threshold, judged or seen before.
    above: usize,
    crowded: bool,
}

/// Stops the maintenance thread when dropped.
#[derive(Debug)]
pub struct MaintenanceHandle {
    stop: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for MaintenanceHandle {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
