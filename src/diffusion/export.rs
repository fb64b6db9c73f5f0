//! The model folder of our latent diffusion model: besides the diffusers
//! folders (written by the trainers), `manifest.json` (family `diffusion`),
//! `samples.png` (fixed prompts × fixed seeds), `losses.png` and the card.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Tensor, Var};

use image::RgbImage;
use serde::{Deserialize, Serialize};

use crate::diffusion::clip_text::ClipTextConfig;
use crate::diffusion::schedulers::SchedulerConfig;
use crate::diffusion::train::DiffusionTrainer;
use crate::diffusion::train_autoencoder::{AutoencoderEpoch, TrainAutoencoderSpec};
use crate::diffusion::unet_config::UnetConfig;
use crate::io::chart::{Series, line_chart};
use crate::io::datasets::DataSource;
use crate::io::export::upscale;
use crate::io::manifest::{Family, ModelManifest, write_manifest};
use crate::io::png_meta::encode_png;
use crate::train::error::{TrainError, file_err};

/// Prompts of the card's sample grid, one row each.
pub const CARD_PROMPTS: [&str; 6] = ["cat", "red heart", "smiling face", "dog", "sun", "green apple"];
/// Seeds of the card's sample grid, one column each.
pub const CARD_SEEDS: [u64; 6] = [1, 2, 3, 4, 5, 6];
/// Where `train autoencoder` records its runs for the card.
pub const AUTOENCODER_LOG: &str = "progress/autoencoder.json";
/// Every training command run on the folder, one per line, for the card.
pub const COMMAND_LOG: &str = "progress/commands.txt";

/// Appends a training command to the folder's command log.
pub fn log_command(dir: &Path, command: &str) -> Result<(), TrainError> {
    use std::io::Write;
    let path = dir.join(COMMAND_LOG);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| file_err(parent, e))?;
    }
    let mut file = std::fs::OpenOptions::new().create(true).append(true).open(&path).map_err(|e| file_err(&path, e))?;
    writeln!(file, "{command}").map_err(|e| file_err(&path, e))
}

/// The autoencoder's training record.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct AutoencoderRecord {
    /// Every command that trained it, in order (a resumed run adds one).
    pub commands: Vec<String>,
    pub history: Vec<AutoencoderEpoch>,
    pub spec: Option<TrainAutoencoderSpec>,
    pub parameters: usize,
    pub scaling_factor: f64,
}

impl AutoencoderRecord {
    /// Reads `dir/progress/autoencoder.json`, or an empty record.
    pub fn read(dir: &Path) -> Self {
        std::fs::read_to_string(dir.join(AUTOENCODER_LOG))
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default()
    }

    /// Writes it to `dir/progress/autoencoder.json`.
    pub fn write(&self, dir: &Path) -> Result<(), TrainError> {
        let path = dir.join(AUTOENCODER_LOG);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| file_err(parent, e))?;
        }
        let text = serde_json::to_string_pretty(self).map_err(|e| file_err(&path, e))?;
        std::fs::write(&path, text).map_err(|e| file_err(&path, e))
    }
}

/// What the model card says beyond the trainer's own record.
pub struct ModelCard<'a> {
    /// The model's display name.
    pub name: &'a str,
    /// The command of this stage (used when the run's command log is missing).
    pub command: &'a str,
    /// Wall time of this stage.
    pub seconds: f64,
    /// Where the images and captions came from.
    pub source: &'a DataSource,
    /// The sample grid's rows.
    pub prompts: &'a [String],
    /// Captioned images the U-Net trained on.
    pub images: usize,
}

/// Writes the manifest, sample grid, loss chart and card into `dir`.
pub fn write_model_files(
    dir: &Path,
    trainer: &DiffusionTrainer,
    grid: &RgbImage,
    card: &ModelCard,
) -> Result<(), TrainError> {
    let id = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "diffusion".into());
    let side = trainer.spec().unet.sample_size.unwrap_or(8) * 4;
    let manifest = ModelManifest {
        id: id.clone(),
        family: Family::Diffusion,
        name: card.name.into(),
        latent_dim: 0,
        image_size: [side, side],
        channels: 3,
        license: "MIT OR Apache-2.0 (weights trained by Latent Studio)".into(),
        dataset: card.source.credit(),
        weights: "unet/diffusion_pytorch_model.safetensors".into(),
        classes: Vec::new(),
        latent_map: None,
        config: serde_json::json!({ "format": "diffusers" }),
        dir: dir.to_owned(),
    };
    write_manifest(&manifest).map_err(|e| file_err(&manifest.manifest_path(), e))?;
    let write_png = |name: &str, image: &RgbImage| {
        let path = dir.join(name);
        let png = encode_png(image, &[]).map_err(|e| file_err(&path, e))?;
        std::fs::write(&path, png).map_err(|e| file_err(&path, e))
    };
    write_png("samples.png", &upscale(grid, 2))?;
    let losses: Vec<f64> = trainer.history().iter().map(|r| r.loss).collect();
    write_png("losses.png", &line_chart(&[Series { values: &losses, colour: [40, 90, 200] }], 480, 200))?;
    let ae = AutoencoderRecord::read(dir);
    let commands = std::fs::read_to_string(dir.join(COMMAND_LOG))
        .unwrap_or_else(|_| format!("{}\n{}", ae.commands.join("\n"), card.command));
    let card = model_card(trainer, &ae, commands.trim(), card);
    let path = dir.join("README.md");
    std::fs::write(&path, card).map_err(|e| file_err(&path, e))
}

fn model_card(trainer: &DiffusionTrainer, ae: &AutoencoderRecord, commands: &str, card: &ModelCard) -> String {
    let seconds = card.seconds;
    let side = trainer.spec().unet.sample_size.unwrap_or(8) * 4;
    let origin = match &trainer.spec().base {
        Some(base) => format!("fine-tuned from {} by Latent Studio's own code", base.display()),
        None => "trained from scratch by Latent Studio's own code".to_owned(),
    };
    let captions = match card.source {
        DataSource::Named(_) => "each emoji's name, short names and subcategory (and skin tones), \
e.g. \"cat face, cat, animal mammal\""
            .to_owned(),
        DataSource::Folder(_) => "each image's sidecar `.txt` file (kohya's convention), else its file name".to_owned(),
    };
    let spec = trainer.spec();
    let history = trainer.history();
    let epoch_rows: String = history
        .iter()
        .filter(|r| r.epoch == 1 || r.epoch % 5 == 0 || r.epoch == history.len())
        .map(|r| format!("| {} | {:.4} | {:.0} |\n", r.epoch, r.loss, r.seconds))
        .collect();
    let ae_rows: String = ae
        .history
        .iter()
        .map(|r| format!("| {} | {:.4} | {:.2} | {:.0} |\n", r.epoch, r.l1, r.kl, r.seconds))
        .collect();
    let ae_seconds: f64 = ae.history.iter().map(|r| r.seconds).sum();
    let train_seconds: f64 = history.iter().map(|r| r.seconds).sum();
    let prompts = card.prompts.iter().map(|p| format!("\"{p}\"")).collect::<Vec<_>>().join(", ");
    format!(
        "# {name}\n\n\
A text-to-image latent diffusion model {origin}, \
in the diffusers folder layout (it loads in the studio like any Stable Diffusion folder, and in diffusers).\n\n\
- **Data:** {data}; {side}×{side} RGB on white, {images} training images, every tenth image held out. Captions: {captions}.\n\
- **Autoencoder** (`vae/`): KL autoencoder, blocks {blocks:?}, {side}×{side}×3 ↔ 4×{latent}×{latent} latents, {ae_params} parameters, \
L1 + KL·{kl}; `scaling_factor` {scale:.4} (unit variance of the training latents).\n\
- **Text encoder** (`text_encoder/`, `tokenizer/`): CLIP-style BPE trained on the captions ({vocab} tokens, {len} per \
prompt) and a {layers}-layer CLIP text transformer of width {width}, trained jointly with the U-Net.\n\
- **U-Net** (`unet/`): diffusers' UNet2DConditionModel layout (our implementation), blocks {unet:?}, cross-attention at every level, \
ε-prediction on SD's scaled-linear schedule (1000 steps); captions dropped to \"\" for {uncond:.0} % of samples \
(classifier-free guidance).\n\
- **Training:** batch {batch} (a random timestep per sample), AdamW lr {lr}, {epochs} epochs, {train_min:.0} min on 2 CPU threads \
(autoencoder {ae_min:.0} min; this command's wall time {wall_min:.0} min).\n\n\
## Commands (in the order they ran)\n\n```\n{commands}\n```\n\n\
## Samples\n\nRows: {prompts}; columns: seeds 1–6; DDIM 25 steps, guidance 4.\n\n![samples](samples.png)\n\n\
## Denoiser loss (MSE of the predicted noise)\n\n![losses](losses.png)\n\n| epoch | loss | seconds |\n|---|---|---|\n{epoch_rows}\n\
## Autoencoder\n\n| epoch | L1 | KL per latent value | seconds |\n|---|---|---|---|\n{ae_rows}\n\
Held-out images over their reconstructions: ![reconstructions](reconstructions.png)\n\n\
## Limits\n\nA small model trained on a CPU: it draws the colours and rough shapes the prompt's words \
are tied to in the captions, not fine detail.\n",
        name = card.name,
        data = card.source.credit(),
        latent = side / 4,
        images = card.images,
        blocks = ae.spec.as_ref().map(|s| s.config.block_out_channels.clone()).unwrap_or_default(),
        ae_params = ae.parameters,
        kl = ae.spec.as_ref().map_or(0.0, |s| s.kl_weight),
        scale = ae.scaling_factor,
        vocab = spec.text.vocab_size,
        len = spec.text.max_position_embeddings,
        layers = spec.text.num_hidden_layers,
        width = spec.text.hidden_size,
        unet = spec.unet.block_out_channels,
        uncond = spec.uncond_rate * 100.0,
        batch = spec.batch_size,
        lr = spec.lr,
        epochs = history.len(),
        train_min = train_seconds / 60.0,
        ae_min = ae_seconds / 60.0,
        wall_min = seconds / 60.0,
    )
}

/// The variables whose names start with `prefix`, renamed without it.
pub fn strip_prefix(vars: &[(String, Var)], prefix: &str) -> HashMap<String, Tensor> {
    vars.iter()
        .filter_map(|(name, var)| name.strip_prefix(prefix).map(|n| (n.to_owned(), var.as_tensor().clone())))
        .collect()
}

fn write_json(path: &Path, value: &serde_json::Value) -> Result<(), TrainError> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| file_err(parent, e))?;
    }
    let text = serde_json::to_string_pretty(value).map_err(|e| file_err(path, e))?;
    std::fs::write(path, text).map_err(|e| file_err(path, e))
}

fn save_tensors(path: &Path, tensors: &HashMap<String, Tensor>) -> Result<(), TrainError> {
    candle_core::safetensors::save(tensors, path).map_err(|e| file_err(path, e))
}

/// `unet/`: diffusers' `UNet2DConditionModel` config and weights.
pub fn write_unet_folder(dir: &Path, config: &UnetConfig, tensors: &HashMap<String, Tensor>) -> Result<(), TrainError> {
    let mut json = serde_json::to_value(config).map_err(|e| file_err(dir, e))?;
    json["_class_name"] = "UNet2DConditionModel".into();
    json["act_fn"] = "silu".into();
    json["mid_block_type"] = "UNetMidBlock2DCrossAttn".into();
    write_json(&dir.join("config.json"), &json)?;
    save_tensors(&dir.join("diffusion_pytorch_model.safetensors"), tensors)
}

/// `text_encoder/`: transformers' `CLIPTextModel` config and weights. The
/// special token ids are CLIP's layout (the last two tokens).
pub fn write_text_encoder_folder(
    dir: &Path,
    config: &ClipTextConfig,
    tensors: &HashMap<String, Tensor>,
) -> Result<(), TrainError> {
    let mut json = serde_json::to_value(config).map_err(|e| file_err(dir, e))?;
    let projected = tensors.contains_key("text_projection.weight");
    json["architectures"] =
        serde_json::json!([if projected { "CLIPTextModelWithProjection" } else { "CLIPTextModel" }]);
    json["model_type"] = "clip_text_model".into();
    json["projection_dim"] = config.projection_dim.unwrap_or(config.hidden_size).into();
    json["bos_token_id"] = (config.vocab_size - 2).into();
    json["eos_token_id"] = (config.vocab_size - 1).into();
    json["pad_token_id"] = (config.vocab_size - 1).into();
    write_json(&dir.join("config.json"), &json)?;
    save_tensors(&dir.join("model.safetensors"), tensors)
}

/// `scheduler/scheduler_config.json` (a DDIM scheduler over the schedule).
pub fn write_scheduler_folder(dir: &Path, config: &SchedulerConfig) -> Result<(), TrainError> {
    let mut json = serde_json::to_value(config).map_err(|e| file_err(dir, e))?;
    json["_class_name"] = "DDIMScheduler".into();
    json["clip_sample"] = false.into();
    write_json(&dir.join("scheduler_config.json"), &json)
}

/// `model_index.json` of an SD (or, with two text towers, SDXL) pipeline.
pub fn write_model_index(dir: &Path, sdxl: bool) -> Result<(), TrainError> {
    let mut index = serde_json::json!({
        "_class_name": if sdxl { "StableDiffusionXLPipeline" } else { "StableDiffusionPipeline" },
        "_diffusers_version": "0.30.0",
        "scheduler": ["diffusers", "DDIMScheduler"],
        "text_encoder": ["transformers", "CLIPTextModel"],
        "tokenizer": ["transformers", "CLIPTokenizer"],
        "unet": ["diffusers", "UNet2DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"],
    });
    if sdxl {
        index["text_encoder_2"] = serde_json::json!(["transformers", "CLIPTextModelWithProjection"]);
        index["tokenizer_2"] = serde_json::json!(["transformers", "CLIPTokenizer"]);
    } else {
        index["feature_extractor"] = serde_json::json!([null, null]);
        index["safety_checker"] = serde_json::json!([null, null]);
        index["requires_safety_checker"] = false.into();
    }
    write_json(&dir.join("model_index.json"), &index)
}
