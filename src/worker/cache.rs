//! Models stay loaded once used: loading is the slow part of a first decode.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use candle_core::Device;

use crate::latent::model::{LatentModel, ModelError};
use crate::library::{find_manifest, load_latent_model};

/// Loaded models by id.
pub struct ModelCache {
    models_dir: PathBuf,
    device: Device,
    loaded: HashMap<String, Arc<dyn LatentModel>>,
}

impl ModelCache {
    /// An empty cache over `models_dir`.
    pub fn new(models_dir: PathBuf, device: Device) -> Self {
        Self { models_dir, device, loaded: HashMap::new() }
    }

    /// Adds an already built model (used by tests and future "Open model…").
    pub fn insert(&mut self, model: Arc<dyn LatentModel>) {
        self.loaded.insert(model.manifest().id.clone(), model);
    }

    /// The model `id`, loading it on first use. A failed load is not cached,
    /// so fixing the file and retrying works.
    pub fn get(&mut self, id: &str) -> Result<Arc<dyn LatentModel>, ModelError> {
        if let Some(m) = self.loaded.get(id) {
            return Ok(m.clone());
        }
        let model = load_latent_model(find_manifest(&self.models_dir, id)?, &self.device)?;
        self.loaded.insert(id.to_owned(), model.clone());
        Ok(model)
    }

    /// The folder models are discovered in.
    pub fn models_dir(&self) -> &std::path::Path {
        &self.models_dir
    }
}
