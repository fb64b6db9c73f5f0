//! The configurations of the standard families, for single files that come
//! without one: SD 1.x (CLIP ViT-L), SD 2.x (OpenCLIP ViT-H, its penultimate
//! layer) and SDXL base (both, plus the size embedding), as the published
//! diffusers folders of SD 1.5, SD 2.1 and SDXL 1.0 describe them.

use super::family::Family;
use crate::diffusion::autoencoder::AutoencoderConfig;
use crate::diffusion::clip_text::ClipTextConfig;
use crate::diffusion::schedulers::SchedulerConfig;
use crate::diffusion::unet_config::{PerBlock, UnetConfig};

fn strings(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

/// The U-Net of a family.
pub fn unet(family: Family) -> UnetConfig {
    let sd1 = UnetConfig {
        block_out_channels: vec![320, 640, 1280, 1280],
        down_block_types: strings(&[
            "CrossAttnDownBlock2D",
            "CrossAttnDownBlock2D",
            "CrossAttnDownBlock2D",
            "DownBlock2D",
        ]),
        up_block_types: strings(&["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"]),
        layers_per_block: 2,
        attention_head_dim: PerBlock::All(8),
        use_linear_projection: false,
        sample_size: Some(64),
        ..UnetConfig::tiny(4, 768)
    };
    match family {
        Family::Sd1 => sd1,
        Family::Sd2 => UnetConfig {
            attention_head_dim: PerBlock::Each(vec![5, 10, 20, 20]),
            cross_attention_dim: 1024,
            use_linear_projection: true,
            sample_size: Some(96),
            ..sd1
        },
        Family::Sdxl => UnetConfig {
            block_out_channels: vec![320, 640, 1280],
            down_block_types: strings(&["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"]),
            up_block_types: strings(&["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"]),
            attention_head_dim: PerBlock::Each(vec![5, 10, 20]),
            transformer_layers_per_block: Some(PerBlock::Each(vec![1, 2, 10])),
            cross_attention_dim: 2048,
            use_linear_projection: true,
            sample_size: Some(128),
            addition_embed_type: Some("text_time".into()),
            addition_time_embed_dim: Some(256),
            projection_class_embeddings_input_dim: Some(2816),
            ..sd1
        },
    }
}

/// CLIP ViT-L/14's text tower (SD 1.x, SDXL's first).
fn clip_l() -> ClipTextConfig {
    ClipTextConfig {
        vocab_size: 49408,
        hidden_size: 768,
        intermediate_size: 3072,
        num_hidden_layers: 12,
        num_attention_heads: 12,
        max_position_embeddings: 77,
        hidden_act: "quick_gelu".into(),
        layer_norm_eps: 1e-5,
        projection_dim: None,
    }
}

/// The text towers of a family, in order.
pub fn text(family: Family) -> Vec<ClipTextConfig> {
    match family {
        Family::Sd1 => vec![clip_l()],
        // OpenCLIP ViT-H/14 without its last layer: SD 2.x conditions on the penultimate one.
        Family::Sd2 => vec![ClipTextConfig {
            hidden_size: 1024,
            intermediate_size: 4096,
            num_hidden_layers: 23,
            num_attention_heads: 16,
            hidden_act: "gelu".into(),
            ..clip_l()
        }],
        // OpenCLIP ViT-bigG/14 with its projection for the pooled embedding.
        Family::Sdxl => vec![
            clip_l(),
            ClipTextConfig {
                hidden_size: 1280,
                intermediate_size: 5120,
                num_hidden_layers: 32,
                num_attention_heads: 20,
                hidden_act: "gelu".into(),
                projection_dim: Some(1280),
                ..clip_l()
            },
        ],
    }
}

/// The autoencoder (the same shape for all three; SDXL's latents are scaled differently).
pub fn vae(family: Family) -> AutoencoderConfig {
    AutoencoderConfig {
        in_channels: 3,
        out_channels: 3,
        block_out_channels: vec![128, 256, 512, 512],
        layers_per_block: 2,
        latent_channels: 4,
        norm_num_groups: 32,
        scaling_factor: if family == Family::Sdxl { 0.13025 } else { 0.18215 },
        shift_factor: None,
        use_quant_conv: true,
        use_post_quant_conv: true,
        sample_size: Some(if family == Family::Sdxl { 1024 } else { 512 }),
    }
}

/// The noise schedule: all three were trained on SD's scaled-linear betas;
/// `turbo` models were distilled for "trailing" timesteps.
pub fn scheduler(v_prediction: bool, turbo: bool) -> SchedulerConfig {
    let mut s = SchedulerConfig::default();
    if v_prediction {
        s.prediction_type = "v_prediction".into();
    }
    if turbo {
        s.timestep_spacing = "trailing".into();
        s.steps_offset = 0;
    }
    s
}

/// Whether CLIP pads with `<|endoftext|>` (SD 1.x's tokenizer) or with `!`
/// (id 0: OpenCLIP's tokenizers for SD 2.x and SDXL's second tower).
pub fn pads_with_zero(family: Family, tower: usize) -> bool {
    match family {
        Family::Sd1 => false,
        Family::Sd2 => true,
        Family::Sdxl => tower == 1,
    }
}
