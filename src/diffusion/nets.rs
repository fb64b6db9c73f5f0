//! Loads the three networks of a diffusers-layout folder: one or two text
//! towers (SDXL) with their tokenizers, the U-Net and the autoencoder, each
//! error naming its file. The sampling loop is `diffusion::pipeline`.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use serde::de::DeserializeOwned;

use super::autoencoder::{Autoencoder, AutoencoderConfig};
use super::checkpoint::keys::{Source, Transform};
use super::checkpoint::mapped::{KeyMap, MappedWeights};
use super::checkpoint::open_tensor_file;
use super::clip_text::{ClipTextConfig, ClipTextModel};
use super::clip_tokenizer::ClipTokenizer;
use super::lora::keys as lora_keys;
use super::lora::registry::WeightRegistry;
use super::prompt::chunks::chunk_prompt;
use super::prompt::embeddings::EmbeddingSet;
use super::prompt::emphasis;
use super::unet::Unet;
use super::unet_config::UnetConfig;

/// A model folder that cannot be used, naming the file at fault.
#[derive(Debug, thiserror::Error)]
pub enum FolderError {
    #[error("{}: {message}", path.display())]
    File { path: PathBuf, message: String },
    #[error("{0}")]
    Candle(#[from] candle_core::Error),
}

fn file_error(path: &Path, message: impl std::fmt::Display) -> FolderError {
    FolderError::File { path: path.to_owned(), message: message.to_string() }
}

/// Reads a JSON config file into `T`.
pub fn read_config<T: DeserializeOwned>(path: &Path) -> Result<T, FolderError> {
    let text = std::fs::read_to_string(path).map_err(|e| file_error(path, e))?;
    serde_json::from_str(&text).map_err(|e| file_error(path, format!("not a valid config: {e}")))
}

/// The weights of one component folder (the first of `names` that exists),
/// read tensor by tensor as layers ask for them (as single files are, so a
/// folder costs its weights and not a second copy of its files);
/// half-precision layer weights stay half.
fn component_weights(
    dir: &Path,
    names: &[&str],
    dtype: DType,
    device: &Device,
) -> Result<(VarBuilder<'static>, PathBuf), FolderError> {
    let Some(path) = names.iter().map(|n| dir.join(n)).find(|p| p.is_file()) else {
        return Err(file_error(dir, format!("no weights file (looked for {})", names.join(", "))));
    };
    let file = std::sync::Arc::new(open_tensor_file(&path)?);
    let same: KeyMap =
        std::sync::Arc::new(|ours: &str| Some(Source { name: ours.to_owned(), transform: Transform::Same }));
    let backend = MappedWeights::read_ahead(file, same, true, "", device);
    Ok((VarBuilder::from_backend(Box::new(backend), dtype, device.clone()), path))
}

/// Runs `build` on a folder's weights, naming the file if a tensor is missing or mis-shaped.
fn build<T>(
    dir: &Path,
    names: &[&str],
    device: &Device,
    build: impl FnOnce(VarBuilder<'static>) -> candle_core::Result<T>,
) -> Result<T, FolderError> {
    let (vb, path) = component_weights(dir, names, DType::F32, device)?;
    build(vb).map_err(|e| file_error(&path, e))
}

const UNET_FILES: &[&str] = &["diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.fp16.safetensors"];
const TEXT_FILES: &[&str] = &["model.safetensors", "model.fp16.safetensors"];

/// The autoencoder of a `vae/` folder.
pub fn load_autoencoder(vae_dir: &Path, device: &Device) -> Result<Autoencoder, FolderError> {
    let config_path = vae_dir.join("config.json");
    let config: AutoencoderConfig = read_config(&config_path)?;
    config.validate().map_err(|e| file_error(&config_path, e))?;
    build(vae_dir, UNET_FILES, device, |vb| Autoencoder::with_encoder_on_demand(&config, vb))
}

/// A1111's "Original" emphasis: each token's state scaled by its
/// multiplier, then the whole chunk rescaled to keep its mean.
fn apply_emphasis(z: &Tensor, multipliers: &[f64]) -> candle_core::Result<Tensor> {
    if multipliers.iter().all(|&m| m == 1.0) {
        return Ok(z.clone());
    }
    let scale: Vec<f32> = multipliers.iter().map(|&m| m as f32).collect();
    let scale = Tensor::from_vec(scale, (1, multipliers.len(), 1), z.device())?.to_dtype(z.dtype())?;
    let before = z.mean_all()?.to_dtype(DType::F32)?.to_scalar::<f32>()?;
    let weighted = z.broadcast_mul(&scale)?;
    let after = weighted.mean_all()?.to_dtype(DType::F32)?.to_scalar::<f32>()?;
    weighted * f64::from(before / after)
}

/// A tokenizer and its text encoder.
pub struct TextTower {
    pub tokenizer: ClipTokenizer,
    pub encoder: ClipTextModel,
}

/// The networks of a diffusers folder, loaded in f32.
pub struct DiffusionNets {
    /// One tower (SD 1.x/2.x) or two whose states are concatenated (SDXL).
    pub towers: Vec<TextTower>,
    pub unet: Unet,
    pub vae: Autoencoder,
    /// Every weight by name (`unet.…`, `text_encoder.…`), for merging LoRAs.
    pub weights: WeightRegistry,
    pub device: Device,
}

/// A component of a latent diffusion model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Component {
    /// Text tower `i` (0, or 1 for SDXL's second).
    Text(usize),
    Unet,
    Vae,
}

/// Where a model's configurations and weights come from: a diffusers folder
/// or a single-file checkpoint (`diffusion::checkpoint`).
pub trait ModelSource {
    /// Text tower `i`'s tokenizer and config; `None` past the last tower.
    fn text_tower(&self, i: usize) -> Result<Option<(ClipTokenizer, ClipTextConfig)>, FolderError>;
    fn unet_config(&self) -> Result<UnetConfig, FolderError>;
    fn vae_config(&self) -> Result<AutoencoderConfig, FolderError>;
    /// The file (or folder) a component's errors name.
    fn config_path(&self, component: Component) -> PathBuf;
    /// A component's weights as f32 (half-precision U-Net weights may stay half).
    fn weights(&self, component: Component, device: &Device) -> Result<(VarBuilder<'static>, PathBuf), FolderError>;
}

/// A diffusers folder (`save_pretrained`).
pub struct FolderSource {
    pub dir: PathBuf,
}

fn suffix(i: usize) -> String {
    if i == 0 { String::new() } else { format!("_{}", i + 1) }
}

impl ModelSource for FolderSource {
    fn text_tower(&self, i: usize) -> Result<Option<(ClipTokenizer, ClipTextConfig)>, FolderError> {
        let enc_dir = self.dir.join(format!("text_encoder{}", suffix(i)));
        if i > 0 && !enc_dir.is_dir() {
            return Ok(None);
        }
        let tok_dir = self.dir.join(format!("tokenizer{}", suffix(i)));
        let tokenizer = ClipTokenizer::from_dir(&tok_dir).map_err(|e| file_error(&e.path, e.message))?;
        Ok(Some((tokenizer, read_config(&enc_dir.join("config.json"))?)))
    }

    fn unet_config(&self) -> Result<UnetConfig, FolderError> {
        read_config(&self.config_path(Component::Unet))
    }

    fn vae_config(&self) -> Result<AutoencoderConfig, FolderError> {
        read_config(&self.config_path(Component::Vae))
    }

    fn config_path(&self, component: Component) -> PathBuf {
        let folder = match component {
            Component::Text(i) => format!("text_encoder{}", suffix(i)),
            Component::Unet => "unet".into(),
            Component::Vae => "vae".into(),
        };
        self.dir.join(folder).join("config.json")
    }

    fn weights(&self, component: Component, device: &Device) -> Result<(VarBuilder<'static>, PathBuf), FolderError> {
        let dir = self.config_path(component).parent().map(Path::to_owned).unwrap_or_default();
        let names = if matches!(component, Component::Text(_)) { TEXT_FILES } else { UNET_FILES };
        component_weights(&dir, names, DType::F32, device)
    }
}

/// Runs `build` on a component's weights, naming the file if a tensor is missing or mis-shaped.
/// Every weight is recorded in `registry` under its component's prefix.
fn build_from<T>(
    source: &dyn ModelSource,
    component: Component,
    registry: &WeightRegistry,
    device: &Device,
    build: impl FnOnce(VarBuilder<'static>) -> candle_core::Result<T>,
) -> Result<T, FolderError> {
    let (vb, path) = source.weights(component, device)?;
    let prefix = match component {
        Component::Text(0) => lora_keys::TEXT,
        Component::Text(_) => lora_keys::TEXT_2,
        Component::Unet => lora_keys::UNET,
        Component::Vae => "vae.",
    };
    build(registry.recording(vb, prefix)).map_err(|e| file_error(&path, e))
}

impl DiffusionNets {
    /// Loads `dir` (a folder with `unet/`, `vae/`, `text_encoder/`, `tokenizer/`
    /// and optionally `text_encoder_2/` + `tokenizer_2/`).
    pub fn load(dir: &Path, device: &Device) -> Result<Self, FolderError> {
        if !dir.join("unet").is_dir() {
            return Err(file_error(dir, "is not a diffusers model folder (no unet/ folder)"));
        }
        Self::from_source(&FolderSource { dir: dir.to_owned() }, device)
    }

    /// Loads the networks a source describes, checking that they fit together.
    pub fn from_source(source: &dyn ModelSource, device: &Device) -> Result<Self, FolderError> {
        let weights = WeightRegistry::default();
        let mut towers = Vec::new();
        while let Some((tokenizer, config)) = source.text_tower(towers.len())? {
            let component = Component::Text(towers.len());
            let config_path = source.config_path(component);
            config.validate().map_err(|e| file_error(&config_path, e))?;
            if tokenizer.max_len() > config.max_position_embeddings {
                return Err(file_error(
                    &config_path,
                    format!(
                        "sequences of {} tokens exceed the encoder's {} positions",
                        tokenizer.max_len(),
                        config.max_position_embeddings
                    ),
                ));
            }
            let encoder = build_from(source, component, &weights, device, |vb| ClipTextModel::new(&config, vb))?;
            towers.push(TextTower { tokenizer, encoder });
            if towers.len() == 2 {
                break;
            }
        }
        let unet_config = source.unet_config()?;
        let unet_config_path = source.config_path(Component::Unet);
        unet_config.plan().map_err(|e| file_error(&unet_config_path, e))?;
        let context: usize = towers.iter().map(|t| t.encoder.config().hidden_size).sum();
        if context != unet_config.cross_attention_dim {
            return Err(file_error(
                &unet_config_path,
                format!(
                    "cross_attention_dim {} does not match the text encoders' {context}",
                    unet_config.cross_attention_dim
                ),
            ));
        }
        let unet = build_from(source, Component::Unet, &weights, device, |vb| Unet::new(&unet_config, vb))?;
        let vae_config = source.vae_config()?;
        let vae_config_path = source.config_path(Component::Vae);
        vae_config.validate().map_err(|e| file_error(&vae_config_path, e))?;
        let vae = build_from(source, Component::Vae, &weights, device, |vb| {
            Autoencoder::with_encoder_on_demand(&vae_config, vb)
        })?;
        if vae.config().latent_channels != unet_config.in_channels {
            return Err(file_error(
                &vae_config_path,
                format!(
                    "{} latent channels but the U-Net takes {}",
                    vae.config().latent_channels,
                    unet_config.in_channels
                ),
            ));
        }
        // Loading leaves converted and transposed copies' memory behind in the allocator.
        crate::nn::memory::release_freed_memory();
        Ok(Self { towers, unet, vae, weights, device: device.clone() })
    }

    /// Text conditioning for a batch of prompts, read as AUTOMATIC1111 reads
    /// them (`diffusion::prompt`): emphasis weights, `BREAK`, and prompts
    /// longer than the encoder's window encoded chunk by chunk and joined
    /// along the token axis (a shorter prompt of the batch is padded with the
    /// empty prompt's chunks, as A1111 pads the unconditional side). The
    /// states are [batch, tokens, context] and, when the last tower projects
    /// one (SDXL), the pooled embedding [batch, P] of each prompt's first
    /// chunk. One tower gives its last hidden state; two (SDXL) give their
    /// penultimate states side by side, as diffusers' SDXL pipeline does.
    pub fn encode_prompts(&self, prompts: &[&str]) -> candle_core::Result<(Tensor, Option<Tensor>)> {
        self.encode_prompts_with(prompts, &EmbeddingSet::default())
    }

    /// As `encode_prompts`, with textual-inversion `embeddings` standing in
    /// for their names wherever a prompt uses them.
    pub fn encode_prompts_with(
        &self,
        prompts: &[&str],
        embeddings: &EmbeddingSet,
    ) -> candle_core::Result<(Tensor, Option<Tensor>)> {
        let mut states = Vec::with_capacity(prompts.len());
        let mut pooled = Vec::new();
        for prompt in prompts {
            let (z, p) = self.encode_prompt(prompt, embeddings)?;
            states.push(z);
            pooled.extend(p);
        }
        let longest = states.iter().map(|z| z.dim(1)).collect::<candle_core::Result<Vec<_>>>()?.into_iter().max();
        if let Some(longest) = longest.filter(|&n| states.iter().any(|z| z.dim(1).is_ok_and(|m| m != n))) {
            let (empty, _) = self.encode_prompt("", embeddings)?;
            let window = empty.dim(1)?;
            for z in &mut states {
                let missing = (longest - z.dim(1)?) / window;
                if missing > 0 {
                    let padding = vec![&empty; missing];
                    *z = Tensor::cat(&[&[&*z], padding.as_slice()].concat(), 1)?;
                }
            }
        }
        let pooled = if pooled.is_empty() { None } else { Some(Tensor::cat(&pooled, 0)?) };
        Ok((Tensor::cat(&states, 0)?, pooled))
    }

    /// One prompt's states [1, chunks × window, context] and pooled embedding.
    fn encode_prompt(&self, prompt: &str, embeddings: &EmbeddingSet) -> candle_core::Result<(Tensor, Option<Tensor>)> {
        let sdxl = self.towers.len() > 1;
        let pieces = emphasis::parse(prompt);
        let mut per_tower = Vec::with_capacity(self.towers.len());
        let mut pooled = None;
        for (t, tower) in self.towers.iter().enumerate() {
            let lookup = embeddings.for_tower(t, &tower.tokenizer);
            let (chunks, fixes) = chunk_prompt(&pieces, &tower.tokenizer, &lookup);
            let mut zs = Vec::with_capacity(chunks.len());
            for (i, chunk) in chunks.iter().enumerate() {
                let ids = Tensor::from_vec(chunk.tokens.clone(), (1, chunk.tokens.len()), &self.device)?;
                let replaced: Vec<(usize, Tensor)> = fixes
                    .iter()
                    .filter(|f| f.chunk == i)
                    .filter_map(|f| Some((f.offset, lookup.vectors(&f.name)?.to_device(&self.device).ok()?)))
                    .collect();
                let (last, penultimate) = tower.encoder.forward_with_vectors(&ids, &replaced)?;
                if i == 0 {
                    pooled = tower.encoder.pooled(&last, &ids)?;
                }
                let z = if sdxl { penultimate } else { last };
                zs.push(apply_emphasis(&z, &chunk.multipliers)?);
            }
            per_tower.push(Tensor::cat(&zs, 1)?);
        }
        Ok((Tensor::cat(&per_tower, 2)?, pooled))
    }

    /// Latent channels and how many times smaller the latent's sides are.
    pub fn latent_geometry(&self) -> (usize, usize) {
        (self.unet.config().in_channels, self.vae.config().downscale())
    }
}
