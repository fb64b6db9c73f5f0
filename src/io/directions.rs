//! Named latent directions stored next to a model's weights
//! (`directions.json`), as `latent-studio directions` writes them.

use std::path::Path;

use super::error::FileError;

use serde::{Deserialize, Serialize};

/// File name in the model folder.
pub const DIRECTIONS_FILE: &str = "directions.json";

/// Unit vectors in latent space, most important first.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LatentDirections {
    /// How they were found.
    pub method: String,
    /// Latents sampled to find them.
    pub samples: usize,
    /// Seed of those latents.
    pub seed: u64,
    /// Share of the measured features' variance along each direction.
    pub explained_variance: Vec<f64>,
    /// The directions, each `latent_dim` long, orthonormal.
    pub vectors: Vec<Vec<f32>>,
}

/// Reads `dir/directions.json`; `Ok(None)` when there is none.
pub fn read_directions(dir: &Path) -> Result<Option<LatentDirections>, FileError> {
    let path = dir.join(DIRECTIONS_FILE);
    if !path.exists() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&path).map_err(|e| FileError::new(&path, format!("cannot read: {e}")))?;
    serde_json::from_str(&text).map(Some).map_err(|e| FileError::new(&path, format!("not a directions file: {e}")))
}

/// Writes `dir/directions.json` (replacing an older one: it is derived data).
pub fn write_directions(dir: &Path, directions: &LatentDirections) -> Result<(), FileError> {
    let path = dir.join(DIRECTIONS_FILE);
    let text = serde_json::to_string_pretty(directions).map_err(|e| FileError::new(&path, e))?;
    std::fs::write(&path, text).map_err(|e| FileError::new(&path, format!("cannot write: {e}")))
}
