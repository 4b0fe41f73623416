//! The shared tier: replicas share entries through Redis, and Redis is never on the request path.
//!
//! # Layout in Redis
//! All keys live under `{key_prefix}:{space}` where `space` is a digest of the embedding model
//! id and dimension, so replicas running different encoders never mix vectors.
//!
//! - `…:e:{exact key}`: one entry as an [`EntryRecord`] (JSON), written with `SET … PX ttl`, so
//!   Redis drops it when it expires;
//! - `…:log`: a stream of changes (`XADD … MAXLEN ~ stream_max_len`): `put` with the key of a
//!   new entry, `flush` with a [`FlushFilter`], each tagged with the writing replica.
//!
//! # Tasks
//! [`SharedTier::start`] attaches a non-blocking outbox to the local cache and starts two tasks:
//!
//! - the writer takes entries and flushes from a bounded queue (a full queue drops the write
//!   and counts it; the request never waits) and writes them in pipelines;
//! - the tailer first warms the local tier from every entry in Redis (`SCAN` + `MGET`), then
//!   follows the stream with blocking `XREAD`, fetching new entries by key and applying
//!   flushes. Its own replica's messages are skipped.
//!
//! # Failures
//! When Redis is unreachable both tasks reconnect with exponential backoff; the local tier
//! keeps serving and storing meanwhile. On reconnection:
//! - writes that failed are republished from the local tier (entries created since the
//!   first failure), so peers get what was stored during the outage;
//! - if Redis restarted (its `run_id` changed), every local entry is republished (Redis may
//!   have lost them) and the local tier re-warms from Redis;
//! - if the stream was trimmed past the last message seen, the local tier re-warms.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use redis::aio::MultiplexedConnection;
use redis::streams::{StreamRangeReply, StreamReadReply};
use redis::{AsyncConnectionConfig, Client, RedisResult};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::config::SharedConfig;
use super::exact::ExactKey;
use super::local::{Origin, Replicator, SemanticCache};
use super::metrics::SharedStats;
use super::record::EntryRecord;
use super::scope::{FlushFilter, Hasher};

/// How long one `XREAD` blocks waiting for new messages.
const BLOCK_MS: u64 = 1000;
/// Entries per pipeline, `MGET` or stream read.
const BATCH: usize = 256;
/// Means "nothing to republish".
const NOTHING: u64 = u64::MAX;

/// Why the shared tier could not start.
#[derive(Debug, thiserror::Error)]
pub enum SharedError {
    /// `cache.shared.enabled` is false.
    #[error("the shared tier is disabled (cache.shared.enabled)")]
    Disabled,
    /// The URL is not a Redis URL.
    #[error("config key `cache.shared.url`: {0}")]
    Url(#[source] redis::RedisError),
    /// No tokio runtime to run the tasks on.
    #[error("the shared tier needs a tokio runtime")]
    NoRuntime,
}

enum Op {
    Put(Box<EntryRecord>),
    Flush(FlushFilter),
}

/// State shared by the outbox and both tasks.
#[derive(Debug, Default)]
struct State {
    connected_writer: AtomicBool,
    connected_tailer: AtomicBool,
    published: AtomicU64,
    received: AtomicU64,
    dropped: AtomicU64,
    reconnects: AtomicU64,
    /// Republish local entries created at or after this time (ms); [`NOTHING`] when none.
    republish_since: AtomicU64,
    /// The Redis `run_id` last seen, to notice restarts.
    run_id: Mutex<Option<String>>,
}

impl State {
    fn stats(&self) -> SharedStats {
        SharedStats {
            connected: self.connected_writer.load(Ordering::Relaxed)
                && self.connected_tailer.load(Ordering::Relaxed),
            published: self.published.load(Ordering::Relaxed),
            received: self.received.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            reconnects: self.reconnects.load(Ordering::Relaxed),
        }
    }

    fn set_connected(&self, flag: &AtomicBool, up: bool) {
        flag.store(up, Ordering::Relaxed);
        let both = self.connected_writer.load(Ordering::Relaxed)
            && self.connected_tailer.load(Ordering::Relaxed);
        metrics::gauge!("semrouter_cache_shared_connected").set(if both { 1.0 } else { 0.0 });
    }

    fn request_republish(&self, since_ms: u64) {
        self.republish_since.fetch_min(since_ms, Ordering::AcqRel);
    }

    /// Records the server's run id; true when it differs from the one seen before (a restart).
    fn restarted(&self, run_id: Option<String>) -> bool {
        let mut seen = self.run_id.lock();
        match (&*seen, run_id) {
            (Some(old), Some(new)) if *old != new => {
                *seen = Some(new);
                true
            }
            (_, Some(new)) => {
                *seen = Some(new);
                false
            }
            (_, None) => false,
        }
    }
}

fn error_metric(op: &'static str) {
    metrics::counter!("semrouter_cache_shared_errors_total", "op" => op).increment(1);
}

/// The local cache's handle on the writer: never blocks.
struct Outbox {
    queue: mpsc::Sender<Op>,
    state: Arc<State>,
}

impl Outbox {
    fn send(&self, op: Op) {
        if self.queue.try_send(op).is_err() {
            self.state.dropped.fetch_add(1, Ordering::Relaxed);
            error_metric("queue_full");
        }
    }
}

impl Replicator for Outbox {
    fn put(&self, record: EntryRecord) {
        self.send(Op::Put(Box::new(record)));
    }

    fn flush(&self, filter: &FlushFilter) {
        self.send(Op::Flush(filter.clone()));
    }

    fn stats(&self) -> SharedStats {
        self.state.stats()
    }
}

/// Key names of one embedding space.
#[derive(Debug, Clone)]
struct Keys {
    namespace: String,
    stream: String,
}

impl Keys {
    fn new(prefix: &str, model_id: &str, dimension: usize) -> Self {
        let mut hasher = Hasher::new("semrouter-cache-space-v1");
        hasher.bytes(model_id.as_bytes());
        hasher.bytes(&(dimension as u64).to_le_bytes());
        let space = hasher.finish().to_hex();
        let namespace = format!("{prefix}:{}", &space[..12]);
        Self {
            stream: format!("{namespace}:log"),
            namespace,
        }
    }

    fn entry(&self, key: &ExactKey) -> String {
        format!("{}:e:{}", self.namespace, key.to_hex())
    }

    fn pattern(&self) -> String {
        format!("{}:e:*", self.namespace)
    }
}

/// Everything both tasks need.
struct Context {
    cache: Arc<SemanticCache>,
    client: Client,
    config: SharedConfig,
    keys: Keys,
    origin: String,
    state: Arc<State>,
}

/// The running shared tier. Dropping it (or [`SharedTier::stop`]) stops its tasks and detaches
/// it from the cache, which goes on as a local cache.
pub struct SharedTier {
    cache: Arc<SemanticCache>,
    state: Arc<State>,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for SharedTier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedTier")
            .field("stats", &self.state.stats())
            .finish()
    }
}

impl SharedTier {
    /// Attaches `cache` to Redis as configured in `cache.shared` and starts the writer and
    /// the tailer on the current tokio runtime. Returns at once: connecting, warming and
    /// reconnecting all happen in the background.
    pub fn start(cache: Arc<SemanticCache>) -> Result<Self, SharedError> {
        let config = cache.config().shared.clone();
        if !config.enabled {
            return Err(SharedError::Disabled);
        }
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| SharedError::NoRuntime)?;
        let client = Client::open(config.url.as_str()).map_err(SharedError::Url)?;
        let keys = Keys::new(
            &config.key_prefix,
            &cache.space().model_id,
            cache.space().dimension,
        );
        let state = Arc::new(State {
            republish_since: AtomicU64::new(NOTHING),
            ..State::default()
        });
        let (queue, inbox) = mpsc::channel(config.write_queue);
        cache.set_replicator(Some(Arc::new(Outbox {
            queue,
            state: Arc::clone(&state),
        })));
        let context = Arc::new(Context {
            cache: Arc::clone(&cache),
            client,
            keys,
            origin: format!("{:016x}", rand::random::<u64>()),
            state: Arc::clone(&state),
            config,
        });
        let tasks = vec![
            runtime.spawn(writer(Arc::clone(&context), inbox)),
            runtime.spawn(tailer(context)),
        ];
        Ok(Self {
            cache,
            state,
            tasks,
        })
    }

    /// The tier's state.
    pub fn stats(&self) -> SharedStats {
        self.state.stats()
    }

    /// Stops the tasks and detaches the tier from the cache.
    pub fn stop(self) {
        drop(self);
    }
}

impl Drop for SharedTier {
    fn drop(&mut self) {
        self.cache.set_replicator(None);
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Connects, retrying with exponential backoff until it succeeds. `response` is the
/// per-command timeout of the connection.
async fn connect(ctx: &Context, response: Duration, flag: &AtomicBool) -> MultiplexedConnection {
    let mut delay = Duration::from_millis(ctx.config.backoff_initial_ms);
    let max = Duration::from_millis(ctx.config.backoff_max_ms);
    let mut failed = false;
    loop {
        let settings = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(Duration::from_millis(ctx.config.connect_timeout_ms)))
            .set_response_timeout(Some(response));
        match ctx
            .client
            .get_multiplexed_async_connection_with_config(&settings)
            .await
        {
            Ok(mut conn) => match run_id(&mut conn).await {
                Ok(id) => {
                    if failed {
                        ctx.state.reconnects.fetch_add(1, Ordering::Relaxed);
                        tracing::info!("cache shared tier: Redis reachable again");
                    }
                    if ctx.state.restarted(id) {
                        tracing::warn!("cache shared tier: Redis restarted; republishing local entries and re-warming");
                        ctx.state.request_republish(0);
                    }
                    ctx.state.set_connected(flag, true);
                    return conn;
                }
                Err(e) => log_failure(ctx, flag, "connect", &e, &mut failed),
            },
            Err(e) => log_failure(ctx, flag, "connect", &e, &mut failed),
        }
        // Jitter spreads the reconnects of many replicas.
        let jitter =
            Duration::from_millis(rand::random::<u64>() % (delay.as_millis() as u64 / 4 + 1));
        tokio::time::sleep(delay + jitter).await;
        delay = (delay * 2).min(max);
    }
}

fn log_failure(
    ctx: &Context,
    flag: &AtomicBool,
    op: &'static str,
    e: &redis::RedisError,
    failed: &mut bool,
) {
    error_metric(op);
    if !*failed {
        // Once per outage: the error says why (no entry contents).
        tracing::warn!(error = %e, "cache shared tier: Redis unreachable; serving from the local tier");
    }
    *failed = true;
    ctx.state.set_connected(flag, false);
}

async fn run_id(conn: &mut MultiplexedConnection) -> RedisResult<Option<String>> {
    let info: String = redis::cmd("INFO").arg("server").query_async(conn).await?;
    Ok(info
        .lines()
        .find_map(|l| l.strip_prefix("run_id:"))
        .map(|s| s.trim().to_string()))
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Adds the commands storing `record` (and announcing it) to `pipe`.
fn add_put(ctx: &Context, pipe: &mut redis::Pipeline, record: &EntryRecord, now: u64) -> bool {
    let ttl = record.expires_ms.saturating_sub(now);
    if ttl == 0 {
        return false;
    }
    let Ok(json) = serde_json::to_string(record) else {
        return false;
    };
    pipe.cmd("SET")
        .arg(ctx.keys.entry(&record.key))
        .arg(json)
        .arg("PX")
        .arg(ttl)
        .ignore();
    pipe.cmd("XADD")
        .arg(&ctx.keys.stream)
        .arg("MAXLEN")
        .arg("~")
        .arg(ctx.config.stream_max_len)
        .arg("*")
        .arg("o")
        .arg(&ctx.origin)
        .arg("t")
        .arg("put")
        .arg("k")
        .arg(record.key.to_hex())
        .ignore();
    true
}

/// The writer task: drains the outbox into Redis; republishes after failures and restarts.
async fn writer(ctx: Arc<Context>, mut inbox: mpsc::Receiver<Op>) {
    let flag = &ctx.state.connected_writer;
    let response = Duration::from_millis(ctx.config.command_timeout_ms);
    'connection: loop {
        let mut conn = connect(&ctx, response, flag).await;
        loop {
            let since = ctx.state.republish_since.swap(NOTHING, Ordering::AcqRel);
            if since != NOTHING {
                if let Err(e) = republish(&ctx, &mut conn, since).await {
                    ctx.state.request_republish(since);
                    let mut failed = false;
                    log_failure(&ctx, flag, "republish", &e, &mut failed);
                    continue 'connection;
                }
            }
            let first = tokio::select! {
                op = inbox.recv() => match op {
                    Some(op) => op,
                    None => return,
                },
                // Wake up now and then to notice a republish request from the tailer.
                _ = tokio::time::sleep(Duration::from_millis(BLOCK_MS)) => continue,
            };
            let mut batch = vec![first];
            while batch.len() < BATCH {
                match inbox.try_recv() {
                    Ok(op) => batch.push(op),
                    Err(_) => break,
                }
            }
            if let Err(e) = write_batch(&ctx, &mut conn, &batch).await {
                let oldest = batch
                    .iter()
                    .filter_map(|op| match op {
                        Op::Put(r) => Some(r.created_ms),
                        Op::Flush(_) => None,
                    })
                    .min()
                    .unwrap_or_else(now_ms);
                ctx.state
                    .dropped
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
                ctx.state.request_republish(oldest);
                let mut failed = false;
                log_failure(&ctx, flag, "write", &e, &mut failed);
                continue 'connection;
            }
        }
    }
}

async fn write_batch(
    ctx: &Context,
    conn: &mut MultiplexedConnection,
    batch: &[Op],
) -> RedisResult<()> {
    let now = now_ms();
    let mut pipe = redis::pipe();
    let mut pending = 0;
    for op in batch {
        match op {
            Op::Put(record) => {
                if add_put(ctx, &mut pipe, record, now) {
                    pending += 1;
                }
            }
            Op::Flush(filter) => {
                // Send what is queued first, so the flush also removes entries put before it.
                send(ctx, conn, &mut pipe, &mut pending).await?;
                flush_redis(ctx, conn, filter).await?;
            }
        }
    }
    send(ctx, conn, &mut pipe, &mut pending).await
}

/// Sends a pipeline of `pending` puts (nothing when empty) and starts a new one.
async fn send(
    ctx: &Context,
    conn: &mut MultiplexedConnection,
    pipe: &mut redis::Pipeline,
    pending: &mut u64,
) -> RedisResult<()> {
    if *pending > 0 {
        pipe.query_async::<()>(conn).await?;
        ctx.state.published.fetch_add(*pending, Ordering::Relaxed);
    }
    *pipe = redis::pipe();
    *pending = 0;
    Ok(())
}

/// Deletes the entries in Redis the filter matches and tells the other replicas.
async fn flush_redis(
    ctx: &Context,
    conn: &mut MultiplexedConnection,
    filter: &FlushFilter,
) -> RedisResult<()> {
    let everything = *filter == FlushFilter::all();
    let mut cursor: u64 = 0;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(ctx.keys.pattern())
            .arg("COUNT")
            .arg(1000)
            .query_async(conn)
            .await?;
        let doomed: Vec<String> = if everything || keys.is_empty() {
            keys
        } else {
            let values: Vec<Option<String>> =
                redis::cmd("MGET").arg(&keys).query_async(conn).await?;
            keys.into_iter()
                .zip(values)
                .filter_map(|(key, value)| {
                    let record: EntryRecord = serde_json::from_str(value.as_deref()?).ok()?;
                    filter
                        .matches(&record.scope, &record.model, record.tenant.as_deref())
                        .then_some(key)
                })
                .collect()
        };
        if !doomed.is_empty() {
            redis::cmd("DEL")
                .arg(&doomed)
                .query_async::<()>(conn)
                .await?;
        }
        if next == 0 {
            break;
        }
        cursor = next;
    }
    let filter_json = serde_json::to_string(filter).unwrap_or_else(|_| "{}".to_string());
    redis::cmd("XADD")
        .arg(&ctx.keys.stream)
        .arg("MAXLEN")
        .arg("~")
        .arg(ctx.config.stream_max_len)
        .arg("*")
        .arg("o")
        .arg(&ctx.origin)
        .arg("t")
        .arg("flush")
        .arg("f")
        .arg(filter_json)
        .query_async::<()>(conn)
        .await
}

/// Writes the local entries created at or after `since_ms` back to Redis.
async fn republish(
    ctx: &Context,
    conn: &mut MultiplexedConnection,
    since_ms: u64,
) -> RedisResult<()> {
    let cache = Arc::clone(&ctx.cache);
    let records = tokio::task::spawn_blocking(move || cache.export())
        .await
        .unwrap_or_default();
    let records: Vec<EntryRecord> = records
        .into_iter()
        .filter(|r| r.created_ms >= since_ms)
        .collect();
    let count = records.len();
    for chunk in records.chunks(BATCH) {
        let now = now_ms();
        let mut pipe = redis::pipe();
        let mut pending = 0;
        for record in chunk {
            if add_put(ctx, &mut pipe, record, now) {
                pending += 1;
            }
        }
        send(ctx, conn, &mut pipe, &mut pending).await?;
    }
    tracing::info!(
        entries = count,
        "cache shared tier: local entries republished"
    );
    Ok(())
}

/// Stream ids `ms-seq` as numbers, for comparing.
fn parse_id(id: &str) -> (u64, u64) {
    let mut parts = id.split('-');
    let ms = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    let seq = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    (ms, seq)
}

/// The tailer task: warms from Redis, then follows the stream.
async fn tailer(ctx: Arc<Context>) {
    let flag = &ctx.state.connected_tailer;
    let response = Duration::from_millis(ctx.config.command_timeout_ms + BLOCK_MS);
    let mut last_id: Option<String> = None;
    let mut seen_run_id: Option<String> = None;
    loop {
        let mut conn = connect(&ctx, response, flag).await;
        let mut failed = false;
        let current_run = ctx.state.run_id.lock().clone();
        let restarted = seen_run_id.is_some() && seen_run_id != current_run;
        seen_run_id = current_run;
        let result = async {
            let first_start = last_id.is_none();
            let gap = match &last_id {
                Some(id) => trimmed_past(&ctx, &mut conn, id).await?,
                None => false,
            };
            if (first_start && ctx.config.warm_on_start) || restarted || gap {
                let before = newest_id(&ctx, &mut conn).await?;
                warm(&ctx, &mut conn).await?;
                last_id = Some(before);
            } else if first_start {
                last_id = Some(newest_id(&ctx, &mut conn).await?);
            }
            follow(&ctx, &mut conn, &mut last_id).await
        }
        .await;
        if let Err(e) = result {
            log_failure(&ctx, flag, "tail", &e, &mut failed);
            tokio::time::sleep(Duration::from_millis(ctx.config.backoff_initial_ms)).await;
        }
    }
}

/// The id of the newest stream message, or `0-0` when the stream is empty or absent.
async fn newest_id(ctx: &Context, conn: &mut MultiplexedConnection) -> RedisResult<String> {
    let reply: StreamRangeReply = redis::cmd("XREVRANGE")
        .arg(&ctx.keys.stream)
        .arg("+")
        .arg("-")
        .arg("COUNT")
        .arg(1)
        .query_async(conn)
        .await?;
    Ok(reply
        .ids
        .first()
        .map_or_else(|| "0-0".to_string(), |m| m.id.clone()))
}

/// Whether the stream's oldest message is newer than `last_id`: messages this replica never
/// saw may have been trimmed.
async fn trimmed_past(
    ctx: &Context,
    conn: &mut MultiplexedConnection,
    last_id: &str,
) -> RedisResult<bool> {
    let reply: StreamRangeReply = redis::cmd("XRANGE")
        .arg(&ctx.keys.stream)
        .arg("-")
        .arg("+")
        .arg("COUNT")
        .arg(1)
        .query_async(conn)
        .await?;
    Ok(reply
        .ids
        .first()
        .is_some_and(|m| parse_id(&m.id) > parse_id(last_id))
        && last_id != "0-0")
}

/// Loads every entry in Redis into the local tier.
async fn warm(ctx: &Context, conn: &mut MultiplexedConnection) -> RedisResult<()> {
    let mut cursor: u64 = 0;
    let mut loaded = 0usize;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(ctx.keys.pattern())
            .arg("COUNT")
            .arg(1000)
            .query_async(conn)
            .await?;
        for chunk in keys.chunks(BATCH) {
            loaded += fetch_and_import(ctx, conn, chunk).await?;
        }
        if next == 0 {
            break;
        }
        cursor = next;
    }
    tracing::info!(entries = loaded, "cache shared tier: warmed from Redis");
    Ok(())
}

/// `MGET`s entries by Redis key and imports them off the async threads (HNSW inserts take
/// about a millisecond each). Returns how many were stored.
async fn fetch_and_import(
    ctx: &Context,
    conn: &mut MultiplexedConnection,
    keys: &[String],
) -> RedisResult<usize> {
    if keys.is_empty() {
        return Ok(0);
    }
    let values: Vec<Option<String>> = redis::cmd("MGET").arg(keys).query_async(conn).await?;
    let records: Vec<EntryRecord> = values
        .into_iter()
        .flatten()
        .filter_map(|json| match serde_json::from_str(&json) {
            Ok(record) => Some(record),
            Err(_) => {
                error_metric("decode");
                None
            }
        })
        .collect();
    let cache = Arc::clone(&ctx.cache);
    let stored = tokio::task::spawn_blocking(move || {
        records
            .into_iter()
            .map(|r| cache.import(r, Origin::Shared))
            .filter(|r| matches!(r, Ok(true)))
            .count()
    })
    .await
    .unwrap_or(0);
    ctx.state
        .received
        .fetch_add(stored as u64, Ordering::Relaxed);
    Ok(stored)
}

/// Follows the stream from `last_id` until a command fails.
async fn follow(
    ctx: &Context,
    conn: &mut MultiplexedConnection,
    last_id: &mut Option<String>,
) -> RedisResult<()> {
    loop {
        let from = last_id.clone().unwrap_or_else(|| "0-0".to_string());
        let reply: Option<StreamReadReply> = redis::cmd("XREAD")
            .arg("COUNT")
            .arg(BATCH)
            .arg("BLOCK")
            .arg(BLOCK_MS)
            .arg("STREAMS")
            .arg(&ctx.keys.stream)
            .arg(&from)
            .query_async(conn)
            .await?;
        // A restart of Redis breaks this connection: the reconnection notices the new run id.
        let Some(reply) = reply else {
            continue;
        };
        let mut puts: Vec<String> = Vec::new();
        for message in reply.keys.into_iter().flat_map(|k| k.ids) {
            *last_id = Some(message.id.clone());
            let origin: Option<String> = message.get("o");
            if origin.as_deref() == Some(ctx.origin.as_str()) {
                continue;
            }
            let kind: Option<String> = message.get("t");
            match kind.as_deref() {
                Some("put") => {
                    if let Some(key) = message.get::<String>("k") {
                        puts.push(format!("{}:e:{key}", ctx.keys.namespace));
                    }
                }
                Some("flush") => {
                    // Entries fetched before the flush must be applied before it.
                    fetch_and_import(ctx, conn, &std::mem::take(&mut puts)).await?;
                    let filter: Option<FlushFilter> = message
                        .get::<String>("f")
                        .and_then(|f| serde_json::from_str(&f).ok());
                    if let Some(filter) = filter {
                        let cache = Arc::clone(&ctx.cache);
                        let _ =
                            tokio::task::spawn_blocking(move || cache.flush_local(&filter)).await;
                    }
                }
                _ => {}
            }
        }
        let mut unique: HashMap<String, ()> = HashMap::new();
        puts.retain(|k| unique.insert(k.clone(), ()).is_none());
        fetch_and_import(ctx, conn, &puts).await?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_namespaced_by_embedding_space() {
        let a = Keys::new("p", "m", 384);
        let b = Keys::new("p", "m", 768);
        let c = Keys::new("p", "other", 384);
        assert_ne!(a.namespace, b.namespace);
        assert_ne!(a.namespace, c.namespace);
        assert!(a
            .entry(&ExactKey::default())
            .starts_with(&format!("{}:e:", a.namespace)));
        assert_eq!(a.stream, format!("{}:log", a.namespace));
    }

    #[test]
    fn stream_ids_compare_numerically() {
        assert!(parse_id("1700000000000-10") > parse_id("1700000000000-9"));
        assert!(parse_id("1700000000001-0") > parse_id("1700000000000-99"));
        assert_eq!(parse_id("0-0"), (0, 0));
    }

    #[test]
    fn restarts_are_noticed_by_run_id() {
        let state = State::default();
        assert!(!state.restarted(Some("a".into())));
        assert!(!state.restarted(Some("a".into())));
        assert!(state.restarted(Some("b".into())));
        assert!(!state.restarted(None));
    }
}
