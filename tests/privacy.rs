//! Personal data in routing, through the real server with the Rampart model: models that may
//! not see a detected type are never chosen; when none may, the request is masked or blocked;
//! detected values never reach the log.

mod common;

use common::{chat, default_config_with, Launch, Server};
use serde_json::Value;

const EMAIL_PROMPT: &str =
    "Please write a polite reminder to jane.doe@example.com about the unpaid invoice.";

async fn route(client: &reqwest::Client, server: &Server, body: &Value) -> Value {
    let response = client
        .post(server.url("/v1/route?explain=true"))
        .json(body)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
    response.json().await.expect("decision JSON")
}

/// The default config with the two hosted models forbidden to see personal data.
fn hosted_models_see_no_pii(extra: &[(&str, &str)]) -> String {
    let mut replacements = vec![
        (
            "    latency_prior_ms: 900\n",
            "    latency_prior_ms: 900\n    pii_allowed: []\n",
        ),
        (
            "    latency_prior_ms: 1500\n",
            "    latency_prior_ms: 1500\n    pii_allowed: []\n",
        ),
    ];
    replacements.extend_from_slice(extra);
    default_config_with(&replacements)
}

#[tokio::test]
async fn models_that_may_not_see_personal_data_are_never_chosen() {
    let server = Server::start(Launch {
        config: Some(hosted_models_see_no_pii(&[])),
        ..Launch::default()
    });
    let client = reqwest::Client::new();
    let d = route(&client, &server, &chat("auto", EMAIL_PROMPT)).await;
    assert_eq!(d["model"], "qwen3-8b", "{d}");
    assert_eq!(d["action"], "route");
    assert_eq!(d["signals"]["pii"]["types"], serde_json::json!(["EMAIL"]));
    let excluded: Vec<&str> = d["excluded"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["model"].as_str().unwrap())
        .collect();
    assert_eq!(excluded.len(), 2, "{d}");
    assert!(d["excluded"][0]["reason"]
        .as_str()
        .unwrap()
        .contains("EMAIL"));
    assert!(
        d["timing_us"]["pii"].as_u64().unwrap() > 0,
        "the detector's cost is reported"
    );

    // Without personal data every model competes again.
    let d = route(&client, &server, &chat("auto", "Solve 3x + 5 = 20 for x")).await;
    assert_eq!(d["model"], "deepseek-v3.1");
    assert!(d.get("excluded").is_none());
    assert!(
        !server.stderr().contains("jane.doe@example.com"),
        "values never reach the log"
    );
}

#[tokio::test]
async fn when_no_candidate_may_see_it_the_body_is_masked_or_the_request_blocked() {
    // Only the hosted models are candidates for code questions; none may see personal data.
    let config = hosted_models_see_no_pii(&[]);
    let server = Server::start(Launch {
        config: Some(config),
        ..Launch::default()
    });
    let client = reqwest::Client::new();
    let prompt =
        "My python function fails for user John Smith, phone 415-555-0132, SSN 123-45-6789. Why?";
    let d = route(&client, &server, &chat("auto", prompt)).await;
    assert_eq!(d["policy"], "code-on-capable-models", "{d}");
    assert_eq!(d["action"], "mask", "{d}");
    let sent = d["request"]["messages"][0]["content"].as_str().unwrap();
    assert!(
        sent.contains("<US_SSN>") && sent.contains("<PHONE>"),
        "{sent}"
    );
    assert!(!sent.contains("123-45-6789") && !sent.contains("415-555-0132"));
    assert!(
        sent.contains("python function"),
        "the rest of the text is kept: {sent}"
    );
    drop(server);

    let config =
        hosted_models_see_no_pii(&[("    on_violation: mask\n", "    on_violation: block\n")]);
    let server = Server::start(Launch {
        config: Some(config),
        ..Launch::default()
    });
    let d = route(&client, &server, &chat("auto", prompt)).await;
    assert_eq!(d["action"], "block", "{d}");
    assert!(d["request"].is_null());
    assert!(d["reason"].as_str().unwrap().contains("US_SSN"));
}

#[tokio::test]
async fn a_masking_policy_masks_whatever_model_is_chosen() {
    let config = default_config_with(&[(
        "policies:\n",
        "policies:\n  - name: mask-cards\n    priority: 10\n    when: { pii: [CREDIT_CARD] }\n    action: mask\n",
    )]);
    let server = Server::start(Launch {
        config: Some(config),
        ..Launch::default()
    });
    let client = reqwest::Client::new();
    let d = route(
        &client,
        &server,
        &chat(
            "auto",
            "Why was my card 4111 1111 1111 1111 declined yesterday?",
        ),
    )
    .await;
    assert_eq!(d["policy"], "mask-cards");
    assert_eq!(d["action"], "mask");
    assert_eq!(
        d["request"]["messages"][0]["content"],
        "Why was my card <CREDIT_CARD> declined yesterday?"
    );
    // No card: the policy does not match and nothing is masked.
    let d = route(
        &client,
        &server,
        &chat("auto", "Why was my order declined yesterday?"),
    )
    .await;
    assert_eq!(d["action"], "route");
}
