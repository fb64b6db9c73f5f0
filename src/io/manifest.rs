//! Model manifests: the `manifest.json` beside every model's weights, and
//! discovery of the models folder.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The kind of generative model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    /// Variational autoencoder.
    Vae,
    /// Generative adversarial network.
    Gan,
    /// Diffusion model.
    Diffusion,
    /// Language model.
    Text,
}

impl Family {
    /// Whether its models decode latent vectors into images (the latent panel's models).
    pub fn has_latent(self) -> bool {
        matches!(self, Self::Vae | Self::Gan)
    }

    /// Lower-case name, as in manifests.
    pub fn name(self) -> &'static str {
        match self {
            Self::Vae => "vae",
            Self::Gan => "gan",
            Self::Diffusion => "diffusion",
            Self::Text => "text",
        }
    }
}

/// Everything the studio needs to know about a model before loading it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelManifest {
    /// Unique, stable id used on the command line and in saved files.
    pub id: String,
    /// Model family.
    pub family: Family,
    /// Display name.
    pub name: String,
    /// Number of latent dimensions the decoder takes (0 for text models).
    #[serde(default)]
    pub latent_dim: usize,
    /// Output image width and height ([0, 0] for text models).
    #[serde(default)]
    pub image_size: [usize; 2],
    /// 1 (grey) or 3 (RGB); 0 for text models.
    #[serde(default)]
    pub channels: usize,
    /// License of the weights.
    pub license: String,
    /// Data set the model was trained on, with its license.
    pub dataset: String,
    /// Weights file, relative to the manifest.
    pub weights: String,
    /// Class names of the data set, index = label.
    #[serde(default)]
    pub classes: Vec<String>,
    /// Optional file with the encoded test set (2-D models), relative to the manifest.
    #[serde(default)]
    pub latent_map: Option<String>,
    /// Family-specific network configuration.
    pub config: serde_json::Value,
    /// Folder the manifest was read from (not stored in the file).
    #[serde(skip)]
    pub dir: PathBuf,
}

impl ModelManifest {
    /// Whether the model can wrap a prompt in a chat template: GGUF models
    /// carry theirs in the file (instruct models do); the project's character
    /// models have none.
    pub fn has_chat_template(&self) -> bool {
        self.family == Family::Text && self.config.get("format").and_then(|f| f.as_str()) != Some("char-gpt")
    }

    /// Absolute path of the weights file.
    pub fn weights_path(&self) -> PathBuf {
        self.dir.join(&self.weights)
    }

    /// Path of the manifest itself.
    pub fn manifest_path(&self) -> PathBuf {
        self.dir.join(MANIFEST_FILE)
    }

    /// Absolute path of the latent-map file, if the model has one.
    pub fn latent_map_path(&self) -> Option<PathBuf> {
        self.latent_map.as_ref().map(|f| self.dir.join(f))
    }
}

/// File name of a manifest inside a model folder.
pub const MANIFEST_FILE: &str = "manifest.json";

/// A manifest that could not be read, kept so that the UI can say why a model is missing.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{path}: {detail}")]
pub struct ManifestError {
    /// The manifest file.
    pub path: PathBuf,
    /// What was wrong.
    pub detail: String,
}

/// Reads one model folder's manifest.
pub fn read_manifest(dir: &Path) -> Result<ModelManifest, ManifestError> {
    let path = dir.join(MANIFEST_FILE);
    let err = |detail: String| ManifestError { path: path.clone(), detail };
    let text = std::fs::read_to_string(&path).map_err(|e| err(e.to_string()))?;
    parse_manifest(&text, dir)
}

/// A manifest's text, for the model folder `dir`.
pub fn parse_manifest(text: &str, dir: &Path) -> Result<ModelManifest, ManifestError> {
    let err = |detail: String| ManifestError { path: dir.join(MANIFEST_FILE), detail };
    let mut manifest: ModelManifest = serde_json::from_str(text).map_err(|e| err(format!("invalid manifest: {e}")))?;
    manifest.dir = dir.to_owned();
    Ok(manifest)
}

/// Writes `manifest` into its folder.
pub fn write_manifest(manifest: &ModelManifest) -> std::io::Result<()> {
    let text = serde_json::to_string_pretty(manifest).map_err(std::io::Error::other)?;
    std::fs::write(manifest.manifest_path(), text + "\n")
}

/// All models under `root` (one folder each), sorted by id, plus the manifests that failed.
pub fn discover(root: &Path) -> (Vec<ModelManifest>, Vec<ManifestError>) {
    let mut found = Vec::new();
    let mut failed = Vec::new();
    let Ok(entries) = std::fs::read_dir(root) else {
        return (found, failed);
    };
    for entry in entries.flatten() {
        let dir = entry.path();
        if !dir.join(MANIFEST_FILE).is_file() {
            continue;
        }
        match read_manifest(&dir) {
            Ok(m) => found.push(m),
            Err(e) => failed.push(e),
        }
    }
    found.sort_by(|a, b| a.id.cmp(&b.id));
    (found, failed)
}

/// The models folder: `$LATENT_STUDIO_MODELS`, else `models/` in the working
/// directory, else the one in the source tree this binary was built from.
pub fn default_models_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("LATENT_STUDIO_MODELS") {
        return PathBuf::from(dir);
    }
    let local = PathBuf::from("models");
    if local.is_dir() {
        return local;
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models")
}
