//! Single-file Stable Diffusion checkpoints in the original (CompVis /
//! Stability, A1111, ComfyUI) layout: `tensor_file` reads the safetensors
//! header and each tensor on demand, `family` tells SD 1.x/2.x/XL (or what
//! else the file is) from names and shapes, `keys` maps our diffusers names
//! onto the file's, `mapped` serves them to the networks, `standard` holds
//! the configurations a single file leaves out, and `write` saves a diffusers
//! folder back in this layout (for tests and for sharing).

pub mod family;
pub mod keys;
pub mod mapped;
pub mod standard;
pub mod tensor_file;
pub mod write;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::{DType, Device};
use candle_nn::VarBuilder;

use self::family::{Family, SD2_PREDICTION_PROBE, UNET_PREFIX, VAE_PREFIX, detect, sd2_predicts_v, unet_layout};
use self::keys::{Source, Transform, text_source, unet_source, vae_source};
use self::mapped::{KeyMap, MappedWeights};
use self::tensor_file::TensorFile;
use crate::diffusion::autoencoder::AutoencoderConfig;
use crate::diffusion::clip_text::ClipTextConfig;
use crate::diffusion::clip_tokenizer::ClipTokenizer;
use crate::diffusion::nets::{Component, FolderError, FolderSource, ModelSource, read_config};
use crate::diffusion::schedulers::SchedulerConfig;
use crate::diffusion::unet_config::UnetConfig;

/// What to load: the checkpoint, optionally a diffusers folder describing a
/// non-standard shape (diffusers' `from_single_file(config=…)`), and
/// optionally an autoencoder file replacing the checkpoint's own.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SingleFileSpec {
    pub file: PathBuf,
    pub config: Option<PathBuf>,
    pub vae: Option<PathBuf>,
    /// CLIP's vocabulary (`bpe_simple_vocab_16e6.txt.gz`) for standard
    /// checkpoints loaded without `config` (see [`clip_vocab_path`]).
    pub vocab: Option<PathBuf>,
}

/// Where `scripts/fetch-models.sh` puts CLIP's vocabulary in a models folder.
pub fn clip_vocab_path(models_dir: &Path) -> PathBuf {
    models_dir.join("clip-vocab").join("bpe_simple_vocab_16e6.txt.gz")
}

fn file_error(path: &Path, message: impl std::fmt::Display) -> FolderError {
    FolderError::File { path: path.to_owned(), message: message.to_string() }
}

/// Extensions of PyTorch's pickle formats, refused before the file is opened.
const PICKLE_EXTENSIONS: &[&str] = &["ckpt", "pt", "pth", "bin"];

/// Opens a safetensors file, refusing pickles by name and by content.
pub fn open_tensor_file(path: &Path) -> Result<TensorFile, FolderError> {
    let extension = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
    if PICKLE_EXTENSIONS.contains(&extension.as_str()) {
        return Err(file_error(path, tensor_file::HeaderError::Pickle));
    }
    TensorFile::open(path).map_err(|e| file_error(&e.path, e.detail))
}

/// A single file (plus its optional config folder and VAE file), ready to
/// be loaded by `DiffusionNets::from_source`.
pub struct SingleFileSource {
    file: Arc<TensorFile>,
    vae_file: Option<(Arc<TensorFile>, String, bool)>,
    family: Family,
    config: Option<FolderSource>,
    vocab: Option<PathBuf>,
    scheduler: SchedulerConfig,
}

impl SingleFileSource {
    /// Opens the files and tells the family; nothing is read beyond headers
    /// (and, for SD 2.x without a config, one bias vector).
    pub fn open(spec: &SingleFileSpec) -> Result<Self, FolderError> {
        let file = open_tensor_file(&spec.file)?;
        let family = detect(&file.shapes()).map_err(|e| file_error(&spec.file, e))?;
        let vae_file = spec.vae.as_deref().map(open_vae_file).transpose()?;
        let config = spec.config.clone().map(|dir| FolderSource { dir });
        let scheduler = match &config {
            Some(folder) => read_config(&folder.dir.join("scheduler").join("scheduler_config.json"))?,
            None => {
                let v = family == Family::Sd2
                    && file
                        .read(SD2_PREDICTION_PROBE, &Device::Cpu)
                        .and_then(|t| t.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>())
                        .is_ok_and(|bias| sd2_predicts_v(&bias));
                let name = spec.file.file_name().map(|n| n.to_string_lossy().to_lowercase()).unwrap_or_default();
                standard::scheduler(v, name.contains("turbo"))
            }
        };
        Ok(Self { file: Arc::new(file), vae_file, family, config, vocab: spec.vocab.clone(), scheduler })
    }

    pub fn family(&self) -> Family {
        self.family
    }

    /// The schedule: the config folder's, or the family's standard one.
    pub fn scheduler(&self) -> &SchedulerConfig {
        &self.scheduler
    }

    /// A component's backend, its tensors (those under `prefix`) read ahead.
    fn mapped(&self, file: &Arc<TensorFile>, map: KeyMap, prefix: &str, device: &Device) -> VarBuilder<'static> {
        let backend = MappedWeights::read_ahead(file.clone(), map, true, prefix, device);
        VarBuilder::from_backend(Box::new(backend), DType::F32, device.clone())
    }

    fn no_config(&self) -> FolderError {
        file_error(
            self.file.path(),
            format!(
                "is an {} checkpoint, and its tokenizer's vocabulary is not part of the file: run \
                 scripts/fetch-models.sh (it fetches CLIP's vocabulary into models/clip-vocab/) or pass --config \
                 with the model's diffusers folder",
                self.family.label()
            ),
        )
    }
}

/// Opens a separate autoencoder file in the original layout (alone or with
/// the `first_stage_model.` prefix) or in diffusers' layout.
fn open_vae_file(path: &Path) -> Result<(Arc<TensorFile>, String, bool), FolderError> {
    let file = open_tensor_file(path)?;
    let (prefix, original) = if file.contains("encoder.down.0.block.0.conv1.weight") {
        ("", true)
    } else if file.contains("first_stage_model.encoder.down.0.block.0.conv1.weight") {
        (VAE_PREFIX, true)
    } else if file.contains("encoder.down_blocks.0.resnets.0.conv1.weight") {
        ("", false)
    } else {
        return Err(file_error(path, "is not an autoencoder (VAE) file: no encoder.down tensors"));
    };
    Ok((Arc::new(file), prefix.to_owned(), original))
}

impl ModelSource for SingleFileSource {
    fn text_tower(&self, i: usize) -> Result<Option<(ClipTokenizer, ClipTextConfig)>, FolderError> {
        if i >= self.family.towers().len() {
            return Ok(None);
        }
        match (&self.config, &self.vocab) {
            (Some(folder), _) => folder.text_tower(i),
            (None, Some(vocab)) if vocab.is_file() => {
                let pad_zero = standard::pads_with_zero(self.family, i);
                let tokenizer =
                    ClipTokenizer::from_clip_bpe(vocab, pad_zero).map_err(|e| file_error(&e.path, e.message))?;
                Ok(standard::text(self.family).into_iter().nth(i).map(|config| (tokenizer, config)))
            }
            (None, _) => Err(self.no_config()),
        }
    }

    fn unet_config(&self) -> Result<UnetConfig, FolderError> {
        match &self.config {
            Some(folder) => folder.unet_config(),
            None => Ok(standard::unet(self.family)),
        }
    }

    fn vae_config(&self) -> Result<AutoencoderConfig, FolderError> {
        match &self.config {
            Some(folder) => folder.vae_config(),
            None => Ok(standard::vae(self.family)),
        }
    }

    fn config_path(&self, component: Component) -> PathBuf {
        match &self.config {
            Some(folder) => folder.config_path(component),
            None => self.file.path().to_owned(),
        }
    }

    fn weights(&self, component: Component, device: &Device) -> Result<(VarBuilder<'static>, PathBuf), FolderError> {
        let path = self.file.path().to_owned();
        let vb = match component {
            Component::Text(i) => {
                let (prefix, layout) = self.family.towers()[i.min(self.family.towers().len() - 1)];
                let map: KeyMap = Arc::new(move |ours: &str| text_source(ours, layout, prefix));
                self.mapped(&self.file, map, prefix, device)
            }
            Component::Unet => {
                let layout = unet_layout(&self.unet_config()?);
                let map: KeyMap = Arc::new(move |ours: &str| unet_source(ours, &layout, UNET_PREFIX));
                self.mapped(&self.file, map, UNET_PREFIX, device)
            }
            Component::Vae => {
                let blocks = self.vae_config()?.block_out_channels.len();
                let (file, prefix, original) = match &self.vae_file {
                    Some((file, prefix, original)) => (file.clone(), prefix.clone(), *original),
                    None => (self.file.clone(), VAE_PREFIX.to_owned(), true),
                };
                let path = file.path().to_owned();
                let ahead = if original { prefix.clone() } else { String::new() };
                let map: KeyMap = if original {
                    Arc::new(move |ours: &str| vae_source(ours, blocks, &prefix))
                } else {
                    Arc::new(|ours: &str| Some(Source { name: ours.to_owned(), transform: Transform::Same }))
                };
                return Ok((self.mapped(&file, map, &ahead, device), path));
            }
        };
        Ok((vb, path))
    }
}
