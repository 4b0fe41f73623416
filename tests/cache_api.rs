//! The cache through the real server: `/v1/route` misses, `POST /v1/cache` stores, the same
//! request is an exact hit (header and `cache` object), a paraphrase a semantic hit, its
//! negation a miss; client controls; SSE replay; `GET /v1/cache/stats`; `DELETE /v1/cache`;
//! bad input in the OpenAI envelope; 404 when the cache is off.

mod common;

use common::{chat, Launch, Server};
use serde_json::{json, Value};

fn completion(content: &str) -> Value {
    json!({"object": "chat.completion", "model": "qwen3-8b",
           "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}]})
}

fn cached_server() -> Server {
    Server::start(Launch {
        env: vec![("SEMROUTER__CACHE__ENABLED", "true".to_string())],
        ..Launch::default()
    })
}

async fn route(client: &reqwest::Client, server: &Server, body: &Value, headers: &[(&str, &str)]) -> (Option<String>, Value) {
    let mut request = client.post(server.url("/v1/route")).json(body);
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let reply = request.send().await.unwrap();
    assert_eq!(reply.status(), 200);
    let header = reply.headers().get("x-semrouter-cache").map(|v| v.to_str().unwrap().to_string());
    (header, reply.json().await.unwrap())
}

#[tokio::test]
async fn route_misses_then_serves_stored_answers_exactly_and_semantically() {
    let server = cached_server();
    let client = reqwest::Client::new();
    let question = "What is the capital city of Australia?";
    let (header, miss) = route(&client, &server, &chat("auto", question), &[]).await;
    assert_eq!(header.as_deref(), Some("miss"));
    assert_eq!(miss["cache"]["hit"], false);
    assert!(miss["model"].is_string());

    // An incomplete answer is refused, a complete one stored.
    let cut = json!({"request": chat("auto", question), "response": {"choices": [{"index": 0,
        "message": {"role": "assistant", "content": "Canb"}, "finish_reason": "length"}]}});
    let refused: Value = client.post(server.url("/v1/cache")).json(&cut).send().await.unwrap().json().await.unwrap();
    assert_eq!(refused["stored"], false, "{refused}");
    let entry = json!({"request": chat("auto", question), "response": completion("Canberra.")});
    let stored: Value = client.post(server.url("/v1/cache")).json(&entry).send().await.unwrap().json().await.unwrap();
    assert_eq!(stored["stored"], true, "{stored}");

    let (header, hit) = route(&client, &server, &chat("auto", question), &[]).await;
    assert_eq!(header.as_deref(), Some("hit"));
    assert_eq!(hit["cache"]["kind"], "exact");
    assert_eq!(hit["cache"]["response"]["choices"][0]["message"]["content"], "Canberra.");

    // A paraphrase hits semantically; the negation does not.
    let (_, paraphrase) = route(&client, &server, &chat("auto", "Could you tell me what the capital city of Australia is?"), &[]).await;
    assert_eq!(paraphrase["cache"]["kind"], "semantic", "{paraphrase}");
    assert!(paraphrase["cache"]["similarity"].as_f64().unwrap() >= 0.9);
    let (_, negation) = route(&client, &server, &chat("auto", "What is not the capital city of Australia?"), &[]).await;
    assert_eq!(negation["cache"]["hit"], false, "{negation}");

    // Client controls.
    for (name, value, reason) in [("cache-control", "no-cache", "no_cache"), ("x-semrouter-cache", "bypass", "bypass")] {
        let (header, skipped) = route(&client, &server, &chat("auto", question), &[(name, value)]).await;
        assert_eq!(header.as_deref(), Some("miss"));
        assert_eq!(skipped["cache"]["skipped"], reason);
    }
    // A hot temperature is not served; another tenant does not see the entry.
    let mut hot = chat("auto", question);
    hot["temperature"] = json!(1.5);
    assert_eq!(route(&client, &server, &hot, &[]).await.1["cache"]["skipped"], "temperature");

    // A streaming request gets the answer as SSE ending in [DONE].
    let mut streamed = chat("auto", question);
    streamed["stream"] = json!(true);
    let (_, sse) = route(&client, &server, &streamed, &[]).await;
    let body = sse["cache"]["response"].as_str().unwrap();
    assert!(body.contains("Canberra.") && body.trim_end().ends_with("data: [DONE]"), "{body}");

    let stats: Value = client.get(server.url("/v1/cache/stats")).send().await.unwrap().json().await.unwrap();
    assert_eq!(stats["entries"], 1);
    assert!(stats["hits"]["exact"].as_u64().unwrap() >= 2, "{stats}");
    assert!(stats["hits"]["semantic"].as_u64().unwrap() >= 1, "{stats}");

    // Bad input: the OpenAI envelope.
    let bad = client.post(server.url("/v1/cache")).json(&json!({"request": chat("auto", question)})).send().await.unwrap();
    assert_eq!(bad.status(), 400);
    let envelope: Value = bad.json().await.unwrap();
    assert_eq!(envelope["error"]["type"], "invalid_request_error");
    let bad_scope = client.delete(server.url("/v1/cache?scope=zz")).send().await.unwrap();
    assert_eq!(bad_scope.status(), 400);

    // Flush by model (another model: nothing), then all.
    let none: Value = client.delete(server.url("/v1/cache?model=other")).send().await.unwrap().json().await.unwrap();
    assert_eq!(none["flushed"], 0);
    let all: Value = client.delete(server.url("/v1/cache")).send().await.unwrap().json().await.unwrap();
    assert_eq!(all["flushed"], 1);
    let (header, _) = route(&client, &server, &chat("auto", question), &[]).await;
    assert_eq!(header.as_deref(), Some("miss"));
}

#[tokio::test]
async fn cache_endpoints_answer_404_when_the_cache_is_off() {
    let server = Server::start_default();
    let client = reqwest::Client::new();
    let reply = client.get(server.url("/v1/cache/stats")).send().await.unwrap();
    assert_eq!(reply.status(), 404);
    let envelope: Value = reply.json().await.unwrap();
    assert_eq!(envelope["error"]["code"], "cache_disabled");
    let (header, routed) = route(&client, &server, &chat("auto", "What is DNS?"), &[]).await;
    assert!(header.is_none());
    assert!(routed.get("cache").is_none());
}
