//! The error every training run returns; file errors name the file.

use std::path::{Path, PathBuf};

/// Errors while training; file errors name the file.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// The numeric backend failed.
    #[error("training failed: {0}")]
    Compute(#[from] candle_core::Error),
    /// A checkpoint or output file could not be written or read.
    #[error("{path}: {detail}")]
    File { path: PathBuf, detail: String },
    /// The requested run does not fit the data or an existing checkpoint.
    #[error("{0}")]
    Invalid(String),
}

/// A file error on `path`.
pub fn file_err(path: &Path, e: impl std::fmt::Display) -> TrainError {
    TrainError::File { path: path.to_owned(), detail: e.to_string() }
}
