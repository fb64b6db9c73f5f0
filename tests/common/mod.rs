//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use candle_core::{DType, Device};
use candle_nn::{VarBuilder, VarMap};
use latent_studio::io::manifest::{Family, ModelManifest, write_manifest};
use latent_studio::models::vae::{Vae, VaeConfig};

/// Writes a randomly initialised tiny VAE as a model folder `root/id`.
pub fn write_tiny_vae(root: &Path, id: &str) -> PathBuf {
    let cfg = VaeConfig::tiny();
    let dir = root.join(id);
    std::fs::create_dir_all(&dir).unwrap();
    let varmap = VarMap::new();
    Vae::new(&cfg, VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu)).unwrap();
    varmap.save(dir.join("model.safetensors")).unwrap();
    let manifest = ModelManifest {
        id: id.into(),
        family: Family::Vae,
        name: format!("tiny {id}"),
        latent_dim: cfg.latent_dim,
        image_size: [cfg.image_size, cfg.image_size],
        channels: cfg.channels,
        license: "test".into(),
        dataset: "none".into(),
        weights: "model.safetensors".into(),
        classes: vec![],
        latent_map: None,
        config: serde_json::to_value(&cfg).unwrap(),
        dir: dir.clone(),
    };
    write_manifest(&manifest).unwrap();
    dir
}

/// The repository's shipped models folder.
pub fn shipped_models() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models")
}
