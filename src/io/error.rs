//! The errors file handling returns: a file that cannot be read, written or
//! understood is named with what is wrong with it.

use std::fmt::Display;
use std::path::{Path, PathBuf};

/// A file that could not be read, written or understood.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}: {detail}", path.display())]
pub struct FileError {
    /// The file.
    pub path: PathBuf,
    /// What went wrong.
    pub detail: String,
}

impl FileError {
    /// `path` with what went wrong.
    pub fn new(path: &Path, detail: impl Display) -> Self {
        Self { path: path.to_owned(), detail: detail.to_string() }
    }
}

/// Content that is not in the format it claims (before it is tied to a file).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct FormatError(pub String);

/// An image or animation that could not be encoded.
#[derive(Debug, Clone, thiserror::Error)]
#[error("cannot encode the {what}: {detail}")]
pub struct EncodeError {
    /// What was being encoded ("PNG", "GIF").
    pub what: &'static str,
    /// Why it failed.
    pub detail: String,
}

impl EncodeError {
    /// A failed encoding of `what`.
    pub fn new(what: &'static str, detail: impl Display) -> Self {
        Self { what, detail: detail.to_string() }
    }
}
