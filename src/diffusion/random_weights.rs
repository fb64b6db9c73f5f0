//! Writes a diffusion model folder with random weights in the diffusers
//! layout, for any shape: the tiny SD and SDXL models the tests load, and the
//! mid-sized SD-shaped model `bench diffusion` times against diffusers.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device};
use candle_nn::{VarBuilder, VarMap};

use crate::diffusion::autoencoder::{Autoencoder, AutoencoderConfig};
use crate::diffusion::clip_text::{ClipTextConfig, ClipTextModel};
use crate::diffusion::export::{
    strip_prefix, write_model_index, write_scheduler_folder, write_text_encoder_folder, write_unet_folder,
};
use crate::diffusion::schedulers::SchedulerConfig;
use crate::diffusion::train_autoencoder::write_vae_folder;
use crate::diffusion::train_bpe::{ClipBpe, train_clip_bpe};
use crate::diffusion::unet::Unet;
use crate::diffusion::unet_config::{PerBlock, UnetConfig};
use crate::train::error::TrainError;
use crate::train::init::{named_vars, reseed_parameters};

/// The shape of a random model.
#[derive(Clone, Debug)]
pub struct RandomModel {
    pub unet: UnetConfig,
    /// One text encoder (SD 1.x/2.x) or two (SDXL); `vocab_size` is set from the tokenizer.
    pub text: Vec<ClipTextConfig>,
    pub vae: AutoencoderConfig,
    pub scheduler: SchedulerConfig,
    /// Tokens per prompt.
    pub max_len: usize,
    pub seed: u64,
    /// CLIP's own vocabulary file, for a tokenizer (and embedding table) of
    /// real size; else a small vocabulary trained on a few captions.
    pub clip_vocab: Option<PathBuf>,
}

/// Words the random models' tokenizer is trained on.
const VOCABULARY_TEXT: &[&str] = &[
    "a photo of a cat",
    "a red heart",
    "smiling face with open mouth",
    "a dog in the snow",
    "green apple on a table",
    "astronaut riding a horse",
    "blue sky over mountains",
    "portrait of an old man",
    "city street at night",
];

impl RandomModel {
    /// SD 1.x's layout at toy size: 32×32 images, 4 × 4 × 4 latents.
    pub fn tiny(seed: u64) -> Self {
        Self {
            unet: UnetConfig { sample_size: Some(4), ..UnetConfig::tiny(4, 32) },
            text: vec![ClipTextConfig::tiny(0)],
            vae: AutoencoderConfig::tiny(),
            scheduler: SchedulerConfig::default(),
            max_len: 16,
            seed,
            clip_vocab: None,
        }
    }

    /// SDXL's layout at toy size: two text encoders side by side, no attention in the first block.
    pub fn tiny_sdxl(seed: u64) -> Self {
        let mut m = Self::tiny(seed);
        // The second encoder projects its pooled state (CLIPTextModelWithProjection).
        let second = ClipTextConfig {
            hidden_size: 16,
            hidden_act: "gelu".into(),
            projection_dim: Some(12),
            ..ClipTextConfig::tiny(0)
        };
        m.text.push(second);
        m.unet.cross_attention_dim = 48;
        // SDXL's added embedding: pooled text (12) + 6 size numbers × 8 sinusoids.
        m.unet.addition_embed_type = Some("text_time".into());
        m.unet.addition_time_embed_dim = Some(8);
        m.unet.projection_class_embeddings_input_dim = Some(12 + 6 * 8);
        m.unet.down_block_types[0] = "DownBlock2D".into();
        m.unet.up_block_types[1] = "UpBlock2D".into();
        m.unet.transformer_layers_per_block = Some(PerBlock::Each(vec![1, 2]));
        m.scheduler.timestep_spacing = "trailing".into();
        m.scheduler.steps_offset = 0;
        m
    }

    /// Stable Diffusion 1.5's layout at half width (U-Net and autoencoder)
    /// with a 6-layer, 512-wide text encoder: the mid-sized model of the benchmark.
    pub fn sd_mid(seed: u64) -> Self {
        let unet = UnetConfig {
            block_out_channels: vec![160, 320, 640, 640],
            down_block_types: ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"]
                .map(String::from)
                .to_vec(),
            up_block_types: ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"]
                .map(String::from)
                .to_vec(),
            layers_per_block: 2,
            attention_head_dim: PerBlock::All(8),
            norm_num_groups: 32,
            use_linear_projection: false,
            sample_size: Some(32),
            ..UnetConfig::tiny(4, 512)
        };
        let text = ClipTextConfig {
            hidden_size: 512,
            intermediate_size: 2048,
            num_hidden_layers: 6,
            num_attention_heads: 8,
            max_position_embeddings: 77,
            ..ClipTextConfig::tiny(0)
        };
        let vae = AutoencoderConfig {
            block_out_channels: vec![64, 128, 256, 256],
            layers_per_block: 2,
            norm_num_groups: 32,
            scaling_factor: 0.18215,
            sample_size: Some(256),
            ..AutoencoderConfig::tiny()
        };
        Self { unet, text: vec![text], vae, scheduler: SchedulerConfig::default(), max_len: 77, seed, clip_vocab: None }
    }

    /// Stable Diffusion 1.5's full shape (860 M U-Net parameters, CLIP
    /// ViT-L text encoder with CLIP's vocabulary from `clip_vocab`, the
    /// 83 M autoencoder): what `bench diffusion --random-sd15` times.
    pub fn sd15(seed: u64, clip_vocab: &Path) -> Self {
        Self::standard(crate::diffusion::checkpoint::family::Family::Sd1, seed, clip_vocab)
    }

    /// A standard family's full shape (SD 1.x, 2.x or SDXL base) with CLIP's vocabulary.
    pub fn standard(family: crate::diffusion::checkpoint::family::Family, seed: u64, clip_vocab: &Path) -> Self {
        Self {
            unet: crate::diffusion::checkpoint::standard::unet(family),
            text: crate::diffusion::checkpoint::standard::text(family),
            vae: crate::diffusion::checkpoint::standard::vae(family),
            scheduler: SchedulerConfig::default(),
            max_len: 77,
            seed,
            clip_vocab: Some(clip_vocab.to_owned()),
        }
    }
}

/// Writes the folder: tokenizer(s), text encoder(s), U-Net, autoencoder,
/// scheduler and `model_index.json`, weights drawn from the seed.
pub fn write_random_model(dir: &Path, model: &RandomModel) -> Result<(), TrainError> {
    let device = Device::Cpu;
    let captions: Vec<String> = VOCABULARY_TEXT.iter().map(|s| s.to_string()).collect();
    let bpe = match &model.clip_vocab {
        Some(path) => {
            ClipBpe::from_clip_vocab(path).map_err(|e| TrainError::File { path: e.path, detail: e.message })?
        }
        None => train_clip_bpe(&captions, 120),
    };
    let fresh = |seed: u64, build: &dyn Fn(VarBuilder) -> candle_core::Result<()>| -> Result<VarMap, TrainError> {
        let varmap = VarMap::new();
        build(VarBuilder::from_varmap(&varmap, DType::F32, &device))?;
        reseed_parameters(&varmap, seed)?;
        Ok(varmap)
    };
    for (i, text) in model.text.iter().enumerate() {
        let suffix = if i == 0 { String::new() } else { format!("_{}", i + 1) };
        let tok_dir = dir.join(format!("tokenizer{suffix}"));
        bpe.save(&tok_dir, model.max_len)
            .map_err(|e| TrainError::File { path: tok_dir.clone(), detail: e.to_string() })?;
        let config = ClipTextConfig {
            vocab_size: bpe.tokens.len(),
            max_position_embeddings: model.max_len.max(text.max_position_embeddings),
            ..text.clone()
        };
        let varmap = fresh(model.seed + 1 + i as u64, &|vb| {
            if let Some(width) = config.projection_dim {
                candle_nn::linear_no_bias(config.hidden_size, width, vb.pp("text_projection"))?;
            }
            ClipTextModel::new(&config, vb).map(|_| ())
        })?;
        write_text_encoder_folder(
            &dir.join(format!("text_encoder{suffix}")),
            &config,
            &strip_prefix(&named_vars(&varmap), ""),
        )?;
    }
    model.unet.plan().map_err(|e| TrainError::Invalid(e.0))?;
    let unet = fresh(model.seed + 10, &|vb| Unet::new(&model.unet, vb).map(|_| ()))?;
    write_unet_folder(&dir.join("unet"), &model.unet, &strip_prefix(&named_vars(&unet), ""))?;
    let vae = fresh(model.seed + 20, &|vb| Autoencoder::new(&model.vae, vb).map(|_| ()))?;
    write_vae_folder(&dir.join("vae"), &model.vae, &vae)?;
    write_scheduler_folder(&dir.join("scheduler"), &model.scheduler)?;
    write_model_index(dir, model.text.len() > 1)
}
