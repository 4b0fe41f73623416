//! The semantic cache's figures (docs/performance.md, Semantic cache):
//!
//!     cargo bench --locked --bench cache          (part of `make bench`; needs `make setup`)
//!
//! 1. The index, in process, through the real [`SemanticCache`]: `CACHE_BENCH_ENTRIES`
//!    entries (default 100000, 384-d): every MMLU question's real embedding, then
//!    paraphrase-like variants of them (the real vector plus Gaussian noise) up to the count:
//!    cosine 0.93-0.97 to their question, or with `CACHE_BENCH_SET=cache` 0.80-0.88 (see
//!    `VariantSet`). Stored with `insert_batch` (parallel) in batches of `CACHE_BENCH_BATCH`
//!    (default 10000; 0 inserts one at a time). Reports the insert cost, the memory held, the
//!    semantic lookup p50/p99 and its recall@1 against a brute-force scan, for queries that
//!    are real embeddings of generated paraphrases of MMLU questions (the labelled set's
//!    `paraphrase` pairs), and the exact path p50/p99. Each query is timed cold (after 64 MiB
//!    streamed through the caches, as after an encoder pass) and warm, beside a fixed piece
//!    of work whose p99 shows the machine's own noise. `CACHE_BENCH_EF` overrides
//!    `cache.index.ef_search`; `CACHE_BENCH_SWEEP=M:ef[:efc],...` also times raw `hnsw_rs`
//!    graphs of those parameters (`efc`: `ef_construction`, default the cache's) on the same
//!    data. The guard is off here: it is measured by the false-hit test.
//! 2. `/v1/route` over loopback on the real server with the cache on: MMLU val prompts first
//!    as misses (encoder, classifier, decision, semantic lookup), then stored with
//!    `POST /v1/cache` and sent again as exact hits; p50/p99 of each and their ratio.
//!
//! Environment: `CACHE_BENCH_ENTRIES`, `CACHE_BENCH_QUERIES` (default 1000),
//! `CACHE_BENCH_ROUTE` (prompts in phase 2, default 300; 0 skips it), `CACHE_BENCH_BATCH`,
//! `CACHE_BENCH_EF`, `CACHE_BENCH_SET`, `CACHE_BENCH_SWEEP`, `CACHE_BENCH_CACHE` (0: only
//! the sweep's raw graphs, not the cache), `CACHE_BENCH_UPPER` (the sweep's layer-1 beams,
//! e.g. `0,16`; 0, the default, is the greedy descent), `CACHE_BENCH_KEEP_PRUNED` (1: the
//! sweep's graphs keep the links the heuristic prunes), `CACHE_BENCH_QUESTIONS` (only the
//! first N questions as bases, and only queries made from them: a small replica of a big
//! index, with as many variants per question at fewer entries).

#[path = "../tests/support/embeddings.rs"]
mod embeddings;
#[path = "../tests/support/false_hits.rs"]
mod false_hits;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use semrouter::cache::{BatchItem, CacheConfig, CachedAnswer, EmbeddingSpace, SemanticCache};
use serde_json::{json, Value};

/// The admin token the served router gets; `POST /v1/cache` needs it.
const ADMIN_TOKEN: &str = "bench-admin-token";

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn normalise(v: &mut [f32]) {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    for x in v.iter_mut() {
        *x /= n;
    }
}

fn gauss(rng: &mut impl Rng) -> f32 {
    let u: f32 = rng.random::<f32>().max(1e-9);
    let v: f32 = rng.random();
    (-2.0 * u.ln()).sqrt() * (2.0 * std::f32::consts::PI * v).cos()
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn quantile(sorted: &[Duration], q: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn chat(text: &str) -> Value {
    json!({"model": "auto", "messages": [{"role": "user", "content": text}]})
}

fn answer(i: usize) -> CachedAnswer {
    CachedAnswer {
        content: format!("{i}"),
        reasoning_content: None,
        upstream_model: None,
        usage: None,
    }
}

/// Dot product in eight lanes (a plain `zip().sum()` is one chain of dependent additions
/// that does not vectorise): the brute-force scan over a million vectors is 400M of these.
fn dot8(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0f32; 8];
    let (ac, bc) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ac
        .remainder()
        .iter()
        .zip(bc.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ac.zip(bc) {
        for i in 0..8 {
            lanes[i] += x[i] * y[i];
        }
    }
    lanes.iter().sum::<f32>() + tail
}

/// Resident memory of this process in MiB (Linux `VmRSS`), 0 where unknown.
fn rss_mib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map_or(0, |kib| kib >> 10)
}

/// The exact nearest stored vector of each query (the recall reference), on every core.
fn brute_force(vectors: &[Vec<f32>], queries: &[Vec<f32>]) -> Vec<usize> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let done = std::sync::atomic::AtomicUsize::new(0);
    let started = Instant::now();
    let mut truth = vec![0usize; queries.len()];
    let chunk = queries.len().div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        for (out, qs) in truth.chunks_mut(chunk).zip(queries.chunks(chunk)) {
            let done = &done;
            scope.spawn(move || {
                for (o, q) in out.iter_mut().zip(qs) {
                    *o = vectors
                        .iter()
                        .enumerate()
                        .map(|(i, v)| (dot8(v, q), i))
                        .max_by(|a, b| a.0.total_cmp(&b.0))
                        .map_or(0, |(_, i)| i);
                    let n = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                    if n % 100 == 0 {
                        eprintln!(
                            "brute force: {n}/{} queries ({:.0} s)",
                            queries.len(),
                            started.elapsed().as_secs_f64()
                        );
                    }
                }
            });
        }
    });
    truth
}

/// Streams 64 MiB (twice the L3 cache) through the caches, as the encoder's forward pass
/// between two requests does in the server: a lookup after it starts cold.
fn evict_caches(buffer: &mut [u64]) -> u64 {
    let mut sum = 0u64;
    for (i, x) in buffer.iter_mut().enumerate().step_by(8) {
        *x = x.wrapping_add(i as u64);
        sum = sum.wrapping_add(*x);
    }
    sum
}

fn report(name: &str, samples: &mut [Duration]) -> (f64, f64) {
    samples.sort();
    let (p50, p99) = (us(quantile(samples, 0.5)), us(quantile(samples, 0.99)));
    println!(
        "  {name:<44} p50 {p50:>7.0} us   p99 {p99:>7.0} us   max {:>7.0} us",
        us(samples[samples.len() - 1])
    );
    (p50, p99)
}

/// How the variants beyond the real MMLU embeddings are made (`CACHE_BENCH_SET`).
#[derive(Debug, Clone, Copy, PartialEq)]
enum VariantSet {
    /// `near` (default): cosine 0.93-0.97 to their question, so at 1M entries each question
    /// has 64 near-copies, all above the default threshold (0.90) to each other: a stress case
    /// a real cache does not hold, since each copy would have been a hit, not a write.
    Near,
    /// `cache`: cosine 0.80-0.88 to their question, so no two entries are within the
    /// default threshold of each other, as in a cache its own write path filled.
    Cache,
}

impl VariantSet {
    fn from_env() -> Self {
        match std::env::var("CACHE_BENCH_SET").as_deref() {
            Ok("cache") => Self::Cache,
            Ok("near") | Err(_) => Self::Near,
            Ok(other) => panic!("CACHE_BENCH_SET: `{other}` is not near or cache"),
        }
    }

    /// Cosine range of a variant to its question.
    fn cosines(self) -> (f32, f32) {
        match self {
            Self::Near => (0.93, 0.97),
            Self::Cache => (0.80, 0.88),
        }
    }

    /// Per-component noise range giving those cosines: a unit vector plus noise of
    /// `sigma` per component has cosine `1 / sqrt(1 + d sigma^2)` to it, in expectation.
    fn sigmas(self, dimension: usize) -> std::ops::Range<f32> {
        let sigma = |c: f32| ((1.0 / (c * c) - 1.0) / dimension as f32).sqrt();
        let (low, high) = self.cosines();
        sigma(high)..sigma(low)
    }

    fn name(self) -> &'static str {
        match self {
            Self::Near => "near",
            Self::Cache => "cache",
        }
    }
}

fn index_phase() {
    let entries = env_usize("CACHE_BENCH_ENTRIES", 100_000);
    let queries = env_usize("CACHE_BENCH_QUERIES", 1000);
    // Inserts per `insert_batch` call (parallel on every core); 0 inserts one at a time.
    let batch = env_usize("CACHE_BENCH_BATCH", 10_000);
    let questions = embeddings::mmlu_questions();
    let (model_id, mut real) = embeddings::embed_cached("mmlu-questions.bin", &questions);
    // A smaller replica of a big index: fewer questions, as many variants per question.
    real.truncate(env_usize("CACHE_BENCH_QUESTIONS", real.len()).max(1));
    let dimension = real[0].len();
    let set = VariantSet::from_env();
    let sigmas = set.sigmas(dimension);
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let mut vectors: Vec<Vec<f32>> = Vec::with_capacity(entries);
    for i in 0..entries {
        let base = &real[i % real.len()];
        let mut v = base.clone();
        if i >= real.len() {
            let sigma = rng.random_range(sigmas.clone());
            for x in v.iter_mut() {
                *x += sigma * gauss(&mut rng);
            }
        }
        normalise(&mut v);
        vectors.push(v);
        if i % 250_000 == 249_999 {
            eprintln!("vectors: {}/{entries}", i + 1);
        }
    }

    let (low, high) = set.cosines();
    println!(
        "data: {} real MMLU question embeddings, then variants up to {entries} (set `{}`: cosine {low}-{high} to their question, about {} per question)",
        real.len(),
        set.name(),
        entries.div_ceil(real.len())
    );

    // Queries: real embeddings of generated paraphrases of MMLU questions.
    let pairs: Vec<false_hits::Pair> =
        false_hits::generate(&questions[..real.len()], queries, 20261123)
            .into_iter()
            .filter(|p| p.kind == false_hits::Kind::Paraphrase)
            .take(queries)
            .collect();
    let texts: Vec<String> = pairs.iter().map(|p| p.query.clone()).collect();
    let cached = if real.len() == questions.len() {
        "bench-paraphrases.bin".to_string()
    } else {
        format!("bench-paraphrases-{}.bin", real.len())
    };
    let (_, mut query_vectors) = embeddings::embed_cached(&cached, &texts);
    for q in query_vectors.iter_mut() {
        normalise(q);
    }
    let truth = brute_force(&vectors, &query_vectors);

    let mut config = CacheConfig {
        enabled: true,
        max_entries: entries,
        max_bytes: u64::MAX / 2,
        similarity_threshold: 0.5,
        ..CacheConfig::default()
    };
    config.guard.enabled = false;
    config.index.maintenance_interval_ms = 3_600_000;
    if let Some(ef) = std::env::var("CACHE_BENCH_EF")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        config.index.ef_search = ef;
    }
    if env_usize("CACHE_BENCH_CACHE", 1) == 0 {
        sweep(&vectors, real.len(), &query_vectors, &truth, &config);
        return;
    }
    let cache = SemanticCache::new(
        &config,
        EmbeddingSpace {
            model_id,
            dimension,
        },
    )
    .expect("cache");
    let requests: Vec<_> = (0..entries)
        .map(|i| {
            let body = chat(&format!("bench entry {i}"));
            cache
                .request(body.as_object().expect("object"), "auto", None)
                .expect("cacheable")
        })
        .collect();
    let rss_before = rss_mib();
    let started = Instant::now();
    let mut last_report = 0;
    let mut i = 0;
    while i < entries {
        let end = if batch == 0 {
            i + 1
        } else {
            (i + batch).min(entries)
        };
        if batch == 0 {
            cache
                .insert(&requests[i], Some(&vectors[i]), None, answer(i))
                .expect("stored");
        } else {
            let items = (i..end)
                .map(|j| BatchItem {
                    request: &requests[j],
                    embedding: Some(&vectors[j]),
                    category: None,
                    answer: answer(j),
                })
                .collect();
            for result in cache.insert_batch(items) {
                result.expect("stored");
            }
        }
        i = end;
        if i - last_report >= 20_000 || i == entries {
            last_report = i;
            let elapsed = started.elapsed().as_secs_f64();
            eprintln!(
                "inserted {i}/{entries} ({elapsed:.0} s, {:.0} us per entry so far)",
                elapsed * 1e6 / i as f64
            );
        }
    }
    let insert = started.elapsed();
    let stats = cache.stats();
    let how = if batch == 0 {
        "one at a time, one thread".to_string()
    } else {
        format!(
            "insert_batch of {batch}, {} threads",
            std::thread::available_parallelism().map_or(1, |n| n.get())
        )
    };
    println!(
        "cache index: {entries} entries x {dimension}-d inserted in {:.1} s: {:.0} us per entry ({how}); ef_construction {}, M {}",
        insert.as_secs_f64(),
        us(insert) / entries as f64,
        config.index.ef_construction,
        config.index.max_connections
    );
    println!(
        "memory: cache accounting {} MiB; process resident {} MiB before the inserts, {} MiB after ({} MiB for the index and entries; the bench's own copy of the vectors, {} MiB, is in both); {} segments",
        stats.bytes >> 20,
        rss_before,
        rss_mib(),
        rss_mib().saturating_sub(rss_before),
        (entries * dimension * 4) >> 20,
        stats.index_segments
    );

    // Semantic lookups against brute force. Each query is looked up twice: cold, after 64 MiB
    // streamed through the caches (as after an encoder pass in the server), and at once again
    // warm. A fixed piece of work (dot products over 2,000 vectors, about a lookup's length)
    // timed in between shows the machine's own noise.
    let probe = cache
        .request(
            chat("a paraphrase").as_object().expect("object"),
            "auto",
            None,
        )
        .expect("cacheable");
    let mut flush = vec![1u64; 8 << 20];
    let mut sink = 0u64;
    let (mut cold, mut warm, mut fixed) = (Vec::new(), Vec::new(), Vec::new());
    let mut agree = 0;
    let reference_set = &vectors[..vectors.len().min(2000)];
    for (q, &truth) in query_vectors.iter().zip(&truth) {
        sink = sink.wrapping_add(evict_caches(&mut flush));
        let t = Instant::now();
        let hit = cache.lookup_semantic(&probe, q, None).expect("lookup");
        cold.push(t.elapsed());
        let t = Instant::now();
        let again = cache.lookup_semantic(&probe, q, None).expect("lookup");
        warm.push(t.elapsed());
        let t = Instant::now();
        let s: f32 = reference_set.iter().map(|v| dot8(v, q)).sum();
        fixed.push(t.elapsed());
        sink = sink.wrapping_add(s.to_bits() as u64 + again.is_some() as u64);
        let found = hit.and_then(|h| h.answer.content.parse::<usize>().ok());
        // Ties (a variant identical to its base after noise) count as agreement by similarity.
        if found == Some(truth)
            || found.is_some_and(|f| (dot(&vectors[f], q) - dot(&vectors[truth], q)).abs() < 1e-6)
        {
            agree += 1;
        }
    }
    println!(
        "semantic lookup at {entries} entries, {} real paraphrase queries, ef_search {}: recall@1 vs brute force {:.4}",
        query_vectors.len(),
        config.index.ef_search,
        agree as f64 / query_vectors.len() as f64
    );
    report("cold (after 64 MiB streamed through caches)", &mut cold);
    report("warm (the same query again at once)", &mut warm);
    report("fixed work (2,000 dot products, machine noise)", &mut fixed);
    std::hint::black_box(sink);

    // Exact lookups of stored entries.
    let mut exact = Vec::with_capacity(10_000);
    for i in 0..10_000 {
        let request = &requests[(i * 7919) % entries];
        let t = Instant::now();
        let hit = cache.lookup_exact(request);
        exact.push(t.elapsed());
        assert!(hit.is_some(), "a stored entry is an exact hit");
    }
    exact.sort();
    println!(
        "exact lookup at {entries} entries: p50 {:.1} us, p99 {:.1} us",
        us(quantile(&exact, 0.5)),
        us(quantile(&exact, 0.99))
    );
    sweep(&vectors, real.len(), &query_vectors, &truth, &config);
}

/// `CACHE_BENCH_SWEEP=M:ef,M:ef,...`: how recall@1 and lookup time trade against the HNSW
/// parameters, on raw `hnsw_rs` graphs built like the cache's (same vectors, scaling,
/// `ef_construction`, k) from the same data; one graph per `M`, searched at each `ef`.
fn sweep(
    vectors: &[Vec<f32>],
    bases: usize,
    queries: &[Vec<f32>],
    truth: &[usize],
    config: &CacheConfig,
) {
    use hnsw_rs::prelude::{DistDot, Hnsw};
    let Ok(spec) = std::env::var("CACHE_BENCH_SWEEP") else {
        return;
    };
    // One graph per (M, ef_construction), searched at each of its ef.
    let mut plan: Vec<((usize, usize), Vec<usize>)> = Vec::new();
    for item in spec.split(',') {
        let parts: Option<Vec<usize>> = item.split(':').map(|p| p.trim().parse().ok()).collect();
        let (graph, ef) = match parts.as_deref() {
            Some(&[m, ef]) => ((m, config.index.ef_construction), ef),
            Some(&[m, ef, efc]) => ((m, efc), ef),
            _ => {
                eprintln!("CACHE_BENCH_SWEEP: `{item}` is not M:ef or M:ef:efc");
                continue;
            }
        };
        match plan.iter_mut().find(|(g, _)| *g == graph) {
            Some((_, efs)) => efs.push(ef),
            None => plan.push((graph, vec![ef])),
        }
    }
    // The cache's scaling (semantic::SCALE): hnsw_rs's dot distance asserts dot <= 1.
    let scale = 1.0 - 1e-4;
    let scaled: Vec<Vec<f32>> = vectors
        .iter()
        .map(|v| v.iter().map(|x| x * scale).collect())
        .collect();
    let scaled_queries: Vec<Vec<f32>> = queries
        .iter()
        .map(|v| v.iter().map(|x| x * scale).collect())
        .collect();
    for ((m, efc), efs) in plan {
        let started = Instant::now();
        let mut hnsw: Hnsw<f32, DistDot> = Hnsw::new(m, vectors.len(), 16, efc, DistDot {});
        hnsw.set_keeping_pruned(env_usize("CACHE_BENCH_KEEP_PRUNED", 0) == 1);
        for (c, chunk) in scaled.chunks(20_000).enumerate() {
            let data: Vec<(&[f32], usize)> = chunk
                .iter()
                .enumerate()
                .map(|(i, v)| (v.as_slice(), c * 20_000 + i))
                .collect();
            hnsw.parallel_insert_slice(&data);
            eprintln!(
                "sweep: M {m} efc {efc}: {}/{} inserted ({:.0} s)",
                (c * 20_000 + chunk.len()),
                vectors.len(),
                started.elapsed().as_secs_f64()
            );
        }
        println!(
            "sweep M {m} efc {efc}: built in {:.1} s ({:.0} us per entry, parallel)",
            started.elapsed().as_secs_f64(),
            us(started.elapsed()) / vectors.len() as f64
        );
        // Each point's layer-0 links by data id, to say of a miss whether the graph links the
        // returned point to the true nearest at all.
        let mut links: Vec<Vec<usize>> = vec![Vec::new(); vectors.len()];
        for point in hnsw.get_point_indexation() {
            if let Some(layer0) = point.get_neighborhood_id().first() {
                links[point.get_origin_id()] = layer0.iter().map(|n| n.d_id).collect();
            }
        }
        hub_report(&links, bases);
        let uppers: Vec<usize> = std::env::var("CACHE_BENCH_UPPER")
            .unwrap_or_else(|_| "0".into())
            .split(',')
            .filter_map(|u| u.trim().parse().ok())
            .collect();
        for (ef, upper) in efs
            .into_iter()
            .flat_map(|ef| uppers.iter().map(move |&u| (ef, u)))
        {
            let mut times = Vec::with_capacity(queries.len());
            let mut agree = 0;
            // For each miss: how much less similar the returned point is than the true nearest,
            // and whether both come from the same MMLU question (the same stored answer).
            let (mut gaps, mut same_question, mut truth_base, mut linked, mut truth_in) =
                (Vec::new(), 0, 0, 0, 0);
            for ((q, plain), &t) in scaled_queries.iter().zip(queries).zip(truth) {
                let started = Instant::now();
                let found = hnsw.search_beam(q, 8, ef.max(8), upper);
                times.push(started.elapsed());
                let Some(first) = found.first() else { continue };
                let gap = dot(&vectors[t], plain) - dot(&vectors[first.d_id], plain);
                if first.d_id == t || gap.abs() < 1e-6 {
                    agree += 1;
                } else {
                    gaps.push(gap);
                    same_question += usize::from(first.d_id % bases == t % bases);
                    truth_base += usize::from(t < bases);
                    linked += usize::from(links[first.d_id].contains(&t));
                    truth_in += usize::from(links.iter().any(|l| l.contains(&t)));
                }
            }
            times.sort();
            gaps.sort_by(f32::total_cmp);
            let gap_at = |q: f64| {
                gaps.get(((gaps.len().max(1) - 1) as f64 * q).round() as usize)
                    .copied()
                    .unwrap_or(0.0)
            };
            println!(
                "sweep M {m} efc {efc} ef {ef} layer-1 beam {upper}: recall@1 {:.4}, warm p50 {:.0} us, p99 {:.0} us; {} misses: {} from the same question, {} where the truth is a real question, {} where the returned point links to it, {} where anything links to it, similarity short by p50 {:.4} p90 {:.4} max {:.4}",
                agree as f64 / queries.len() as f64,
                us(quantile(&times, 0.5)),
                us(quantile(&times, 0.99)),
                gaps.len(),
                same_question,
                truth_base,
                linked,
                truth_in,
                gap_at(0.5),
                gap_at(0.9),
                gap_at(1.0)
            );
        }
    }
}

/// How the layer-0 graph links the questions (ids below `bases`) and their variants (id
/// `i` a variant of question `i % bases`): whether variants link back to their question,
/// whether a question's own list holds anything but its variants, and whether any point of
/// another question links to it (the only ways a layer-0 search can come in from outside).
fn hub_report(links: &[Vec<usize>], bases: usize) {
    let variants = links.len().saturating_sub(bases);
    let back = (bases..links.len())
        .filter(|&i| links[i].contains(&(i % bases)))
        .count();
    let closed = (0..bases.min(links.len()))
        .filter(|&q| links[q].iter().all(|&n| n % bases == q))
        .count();
    let mut reached = vec![false; bases];
    for (i, list) in links.iter().enumerate() {
        for &n in list {
            if n < bases && n % bases != i % bases {
                reached[n] = true;
            }
        }
    }
    let reached = reached.iter().filter(|&&r| r).count();
    let mean = |ids: std::ops::Range<usize>| {
        let n = ids.len().max(1) as f64;
        ids.map(|i| links[i].len()).sum::<usize>() as f64 / n
    };
    println!(
        "layer 0: {back} of {variants} variants link to their question; {closed} of {bases} questions link only to their own variants; {reached} of {bases} are linked from another question's point; mean links: question {:.1}, variant {:.1}",
        mean(0..bases.min(links.len())),
        mean(bases.min(links.len())..links.len())
    );
}

/// The real server with the cache on, stopped on drop.
struct Server(Child, String);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn route_phase() {
    let prompts = env_usize("CACHE_BENCH_ROUTE", 300);
    if prompts == 0 {
        return;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("port")
        .local_addr()
        .expect("addr")
        .port();
    let child = Command::new(env!("CARGO_BIN_EXE_semrouter"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["serve", "--http-addr", &format!("127.0.0.1:{port}")])
        .env("SEMROUTER__CACHE__ENABLED", "true")
        // POST /v1/cache is an admin endpoint.
        .env("SEMROUTER_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start semrouter");
    let server = Server(child, format!("http://127.0.0.1:{port}"));
    let client = reqwest::Client::new();
    let started = Instant::now();
    while client
        .get(format!("{}/ready", server.1))
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
        != 200
    {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "server not ready"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join(semrouter::data::mmlu::DEFAULT_DIR);
    let texts: Vec<String> = semrouter::data::mmlu::load(&dir, semrouter::data::mmlu::Split::Val)
        .expect("MMLU (run `make setup`)")
        .into_iter()
        .map(|q| q.question)
        .take(prompts)
        .collect();
    let route = |text: &str| {
        let request = client
            .post(format!("{}/v1/route", server.1))
            .json(&chat(text));
        async move {
            let t = Instant::now();
            let reply: Value = request
                .send()
                .await
                .expect("route")
                .json()
                .await
                .expect("json");
            (t.elapsed(), reply)
        }
    };
    // Warm-up.
    for text in texts.iter().take(10) {
        let _ = route(&format!("warm-up: {text}")).await;
    }
    let mut misses = Vec::new();
    for text in &texts {
        let (elapsed, reply) = route(text).await;
        if reply["cache"]["hit"] == false {
            misses.push(elapsed);
        }
        let entry = json!({"request": chat(text), "response": {"object": "chat.completion", "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "cached"}, "finish_reason": "stop"}]}});
        client
            .post(format!("{}/v1/cache", server.1))
            .bearer_auth(ADMIN_TOKEN)
            .json(&entry)
            .send()
            .await
            .expect("store");
    }
    let mut hits = Vec::new();
    for text in &texts {
        let (elapsed, reply) = route(text).await;
        if reply["cache"]["kind"] == "exact" {
            hits.push(elapsed);
        }
    }
    misses.sort();
    hits.sort();
    assert!(
        !misses.is_empty() && !hits.is_empty(),
        "{} misses, {} exact hits",
        misses.len(),
        hits.len()
    );
    let (miss50, hit50) = (quantile(&misses, 0.5), quantile(&hits, 0.5));
    println!(
        "/v1/route over loopback, concurrency 1: miss p50 {:.0} us p99 {:.0} us ({} prompts); exact hit p50 {:.0} us p99 {:.0} us ({}); hit {:.1}x faster at p50",
        us(miss50),
        us(quantile(&misses, 0.99)),
        misses.len(),
        us(hit50),
        us(quantile(&hits, 0.99)),
        hits.len(),
        miss50.as_secs_f64() / hit50.as_secs_f64()
    );
}

fn main() {
    // `cargo bench` passes `--bench`; this harness takes no arguments of its own.
    route_phase_blocking();
    index_phase();
}

fn route_phase_blocking() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio");
    runtime.block_on(route_phase());
}
