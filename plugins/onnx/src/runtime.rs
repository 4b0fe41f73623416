//! Loading the ONNX Runtime shared library once per process.
//!
//! `ort` is built with `load-dynamic`: the library is opened at run time from a path the
//! configuration names, so one binary runs the CPU library or the CUDA one. `ort` panics when
//! the file is missing, so the path is checked first and a missing file becomes a one-line error.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use ort::environment::Environment;

use crate::OnnxError;

static ENVIRONMENT: OnceLock<(PathBuf, Environment)> = OnceLock::new();
static INIT: Mutex<()> = Mutex::new(());

/// Opens the ONNX Runtime library at `library` (once per process) and returns its environment.
///
/// `fetch_hint` is appended to the error when the file is missing, e.g. "run `make setup`".
pub fn environment(library: &Path, fetch_hint: &str) -> Result<&'static Environment, OnnxError> {
    if !library.is_file() {
        return Err(OnnxError::MissingFile {
            what: "ONNX Runtime library",
            path: library.to_path_buf(),
            hint: fetch_hint.to_string(),
        });
    }
    if let Some((path, env)) = ENVIRONMENT.get() {
        return same_library(path, library).map(|()| env);
    }
    // Serialise first-time initialisation: ort allows one environment per process.
    let _guard = INIT.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some((path, env)) = ENVIRONMENT.get() {
        return same_library(path, library).map(|()| env);
    }
    let runtime_error = |reason: String| OnnxError::Runtime {
        path: library.to_path_buf(),
        reason,
    };
    let builder = ort::init_from(library).map_err(|e| runtime_error(e.to_string()))?;
    let env = builder
        .with_name("semrouter")
        .with_telemetry(false)
        .build()
        .map_err(|e| runtime_error(e.to_string()))?;
    let (_, env) = ENVIRONMENT.get_or_init(|| (library.to_path_buf(), env));
    tracing::info!(library = %library.display(), "ONNX Runtime loaded");
    Ok(env)
}

fn same_library(loaded: &Path, asked: &Path) -> Result<(), OnnxError> {
    if loaded == asked {
        Ok(())
    } else {
        Err(OnnxError::Runtime {
            path: asked.to_path_buf(),
            reason: format!(
                "this process already loaded ONNX Runtime from {}",
                loaded.display()
            ),
        })
    }
}
