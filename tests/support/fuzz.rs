//! What the property tests (tests/fuzz_*.rs) share: the case count and time bound (`make
//! test` runs few cases, `make fuzz` many), progress lines, and strategies for JSON values.
#![allow(dead_code)] // each fuzz binary uses a different part of it

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence, TestRunner};
use serde_json::Value;

/// A runner for the file `source_file`: `default_cases` cases unless `PROPTEST_CASES` says otherwise; found
/// cases are kept under proptest-regressions/ and replayed first.
pub fn runner(source_file: &'static str, default_cases: u32) -> TestRunner {
    let mut config = Config::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = default_cases;
    }
    // proptest-regressions/<test file>.txt (its own lookup wants a lib.rs beside tests/).
    let stem = std::path::Path::new(source_file)
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("fuzz");
    let path: &'static str = Box::leak(format!("proptest-regressions/{stem}.txt").into_boxed_str());
    config.source_file = Some(source_file);
    config.failure_persistence = Some(Box::new(FileFailurePersistence::Direct(path)));
    // Shrinking a case that needed the server can take long; a bounded shrink still names it.
    config.max_shrink_time = 60_000;
    TestRunner::new(config)
}

/// Counts the cases of one property, prints a progress line now and then, and stops doing
/// work once `FUZZ_SECONDS` (when set) have passed, so `make fuzz` ends on time.
pub struct Progress {
    name: &'static str,
    started: Instant,
    budget: Option<Duration>,
    done: AtomicU64,
    every: u64,
}

impl Progress {
    /// Progress of the property `name`.
    pub fn new(name: &'static str) -> Self {
        let budget = std::env::var("FUZZ_SECONDS")
            .ok()
            .and_then(|s| s.parse().ok())
            .map(Duration::from_secs);
        let cases = std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|s| s.parse::<u64>().ok())
            .unwrap_or(0);
        Self {
            name,
            started: Instant::now(),
            budget,
            done: AtomicU64::new(0),
            every: (cases / 10).max(100),
        }
    }

    /// Whether this case should run: false once the time bound has passed (the case then
    /// passes without work).
    pub fn tick(&self) -> bool {
        let n = self.done.fetch_add(1, Ordering::Relaxed) + 1;
        if n % self.every == 0 {
            eprintln!(
                "fuzz {}: {n} cases, {:.1} s",
                self.name,
                self.started.elapsed().as_secs_f64()
            );
        }
        match self.budget {
            Some(budget) if self.started.elapsed() > budget => {
                if n % self.every == 0 {
                    eprintln!(
                        "fuzz {}: time bound of {} s reached; the remaining cases are skipped",
                        self.name,
                        budget.as_secs()
                    );
                }
                false
            }
            _ => true,
        }
    }

    /// The closing line.
    pub fn finish(&self) {
        eprintln!(
            "fuzz {}: {} cases in {:.1} s",
            self.name,
            self.done.load(Ordering::Relaxed),
            self.started.elapsed().as_secs_f64()
        );
    }
}

/// Any JSON value, nested up to `depth` levels (strings of any Unicode, odd numbers).
pub fn json_value(depth: u32) -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        ".{0,24}".prop_map(Value::String),
    ];
    leaf.prop_recursive(depth, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(".{0,8}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Text a prompt may hold: any Unicode, control characters and escapes included, sometimes
/// long.
pub fn prompt_text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => ".{0,80}",
        2 => "[a-z ]{1,40}",
        1 => Just(String::new()),
        1 => "\\PC{500,3000}",
        1 => "[\\x00-\\x1f\"\\\\]{1,20}",
    ]
}
