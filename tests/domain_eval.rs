//! The default domain head on MMLU's val split, which training never sees, through the same
//! engine the service runs (`semrouter eval domain`): at least 0.75 accuracy.

mod common;

use common::run_cli;

#[test]
fn default_head_reaches_075_on_mmlu_val() {
    let (status, stdout, stderr) = run_cli(
        &["eval", "domain", "--split", "val", "--min-accuracy", "0.75"],
        &[],
    );
    assert!(status.success(), "eval failed:\n{stdout}\n{stderr}");
    let line = stdout
        .lines()
        .find(|l| l.starts_with("MMLU val accuracy"))
        .expect("accuracy line");
    let accuracy: f64 = line.split_whitespace().nth(3).unwrap().parse().unwrap();
    assert!(accuracy >= 0.75, "{line}");
    assert!(
        line.contains("1531 questions"),
        "the whole val split: {line}"
    );
    assert!(stdout.contains("confusion matrix"));
    assert!(stderr.contains("classifying MMLU val"), "progress is shown");
}
