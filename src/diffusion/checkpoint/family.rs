//! Which model a single `.safetensors` file holds, told from its tensor names
//! and shapes alone (a single file carries no configuration): SD 1.x, SD 2.x
//! or SDXL base, or a clear "this is something else" (a LoRA, an
//! autoencoder alone, an inpainting or refiner model, an unknown layout).

use std::collections::HashMap;

use super::keys::{TextLayout, UnetLayout};
use crate::diffusion::unet_config::UnetConfig;

/// The U-Net's prefix in every original-layout checkpoint.
pub const UNET_PREFIX: &str = "model.diffusion_model.";
/// The autoencoder's prefix.
pub const VAE_PREFIX: &str = "first_stage_model.";

/// The standard families a single file can hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    Sd1,
    Sd2,
    Sdxl,
}

impl Family {
    /// A1111's and the model cards' name.
    pub fn label(self) -> &'static str {
        match self {
            Family::Sd1 => "SD 1.x",
            Family::Sd2 => "SD 2.x",
            Family::Sdxl => "SDXL",
        }
    }

    /// Each text tower's prefix and layout, in conditioning order.
    pub fn towers(self) -> &'static [(&'static str, TextLayout)] {
        match self {
            Family::Sd1 => &[("cond_stage_model.transformer.", TextLayout::Transformers)],
            Family::Sd2 => &[("cond_stage_model.model.", TextLayout::OpenClip)],
            Family::Sdxl => &[
                ("conditioner.embedders.0.transformer.", TextLayout::Transformers),
                ("conditioner.embedders.1.model.", TextLayout::OpenClip),
            ],
        }
    }
}

/// What a file holds instead of a usable checkpoint.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NotACheckpoint {
    #[error(
        "is a LoRA, not a checkpoint: choose it as a LoRA (or with <lora:name:weight> in the prompt) on top of a checkpoint"
    )]
    Lora,
    #[error("is an autoencoder (VAE) alone, not a checkpoint: use it as the VAE of a checkpoint (--vae)")]
    VaeOnly,
    #[error(
        "is an inpainting or instruction model (its U-Net takes {0} input channels); only text-to-image models (4 channels) are supported"
    )]
    Inpainting(usize),
    #[error("is an SDXL refiner; only base models generate from text here")]
    Refiner,
    #[error(
        "is a textual-inversion embedding, not a checkpoint: put it in the embeddings folder and use its name in a prompt"
    )]
    Embedding,
    #[error(
        "has no tensors in a layout this studio knows ({0}); a diffusers folder or an SD 1.x/2.x/XL single file is expected"
    )]
    Unknown(String),
}

/// The tensor names and shapes of a file, the input of detection.
pub type Shapes = HashMap<String, Vec<usize>>;

/// Tells a file's family from its tensors.
pub fn detect(shapes: &Shapes) -> Result<Family, NotACheckpoint> {
    let has = |name: &str| shapes.contains_key(name);
    let any_starts = |prefix: &str| shapes.keys().any(|k| k.starts_with(prefix));
    if shapes.keys().any(|k| is_lora_key(k)) {
        return Err(NotACheckpoint::Lora);
    }
    let Some(conv_in) = shapes.get(&format!("{UNET_PREFIX}input_blocks.0.0.weight")) else {
        if has("encoder.conv_in.weight") && has("decoder.conv_in.weight") {
            return Err(NotACheckpoint::VaeOnly);
        }
        if has("emb_params") || has("string_to_param.*") || has("clip_l") || has("clip_g") {
            return Err(NotACheckpoint::Embedding);
        }
        let mut sample: Vec<&String> = shapes.keys().collect();
        sample.sort();
        let sample: Vec<&str> = sample.iter().take(3).map(|s| s.as_str()).collect();
        return Err(NotACheckpoint::Unknown(format!("first names: {}", sample.join(", "))));
    };
    if let Some(&channels) = conv_in.get(1).filter(|c| **c != 4) {
        return Err(NotACheckpoint::Inpainting(channels));
    }
    if any_starts("conditioner.embedders.1.model.") {
        Ok(Family::Sdxl)
    } else if any_starts("conditioner.embedders.0.model.") {
        Err(NotACheckpoint::Refiner)
    } else if any_starts("cond_stage_model.transformer.") {
        Ok(Family::Sd1)
    } else if any_starts("cond_stage_model.model.") {
        Ok(Family::Sd2)
    } else {
        Err(NotACheckpoint::Unknown("a U-Net without a text encoder".into()))
    }
}

/// kohya (`lora_unet_…`, `lora_te…`), diffusers/PEFT (`lora_A`, `lora.down`) or LyCORIS names.
pub fn is_lora_key(name: &str) -> bool {
    name.starts_with("lora_")
        || [".lora_down.", ".lora_up.", ".lora_A.", ".lora_B.", ".lora.down.", ".hada_w1_a", ".lokr_w1"]
            .iter()
            .any(|p| name.contains(p))
}

/// The U-Net numbering a config implies.
pub fn unet_layout(config: &UnetConfig) -> UnetLayout {
    UnetLayout {
        layers_per_block: config.layers_per_block,
        up_attention: config.up_block_types.iter().map(|t| t.contains("CrossAttn")).collect(),
    }
}

/// Whether an SD 2.x U-Net predicts v rather than ε. The file does not
/// say; as ComfyUI does, we read it from the spread of one late norm's bias,
/// which training to v-prediction pushed well above what ε-models have.
pub fn sd2_predicts_v(bias: &[f32]) -> bool {
    if bias.is_empty() {
        return false;
    }
    let n = bias.len() as f64;
    let mean = bias.iter().map(|&b| b as f64).sum::<f64>() / n;
    let var = bias.iter().map(|&b| (b as f64 - mean).powi(2)).sum::<f64>() / n;
    var.sqrt() > 0.09
}

/// The tensor that heuristic reads.
pub const SD2_PREDICTION_PROBE: &str = "model.diffusion_model.output_blocks.11.1.transformer_blocks.0.norm1.bias";

#[cfg(test)]
mod tests {
    use super::*;

    fn shapes(names: &[(&str, &[usize])]) -> Shapes {
        names.iter().map(|(n, s)| (n.to_string(), s.to_vec())).collect()
    }

    #[test]
    fn families_and_impostors() {
        let unet = |c: usize| ("model.diffusion_model.input_blocks.0.0.weight", vec![320, c, 3, 3]);
        let with = |text: &str, c: usize| {
            let (u, s) = unet(c);
            shapes(&[(u, &s), (text, &[1])])
        };
        assert_eq!(
            detect(&with("cond_stage_model.transformer.text_model.final_layer_norm.weight", 4)),
            Ok(Family::Sd1)
        );
        assert_eq!(detect(&with("cond_stage_model.model.ln_final.weight", 4)), Ok(Family::Sd2));
        assert_eq!(detect(&with("conditioner.embedders.1.model.ln_final.weight", 4)), Ok(Family::Sdxl));
        assert_eq!(detect(&with("conditioner.embedders.0.model.ln_final.weight", 4)), Err(NotACheckpoint::Refiner));
        assert_eq!(detect(&with("cond_stage_model.model.ln_final.weight", 9)), Err(NotACheckpoint::Inpainting(9)));
        assert_eq!(
            detect(&shapes(&[("lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight", &[4, 320])])),
            Err(NotACheckpoint::Lora)
        );
        assert_eq!(
            detect(&shapes(&[("encoder.conv_in.weight", &[1]), ("decoder.conv_in.weight", &[1])])),
            Err(NotACheckpoint::VaeOnly)
        );
        assert!(matches!(detect(&shapes(&[("foo", &[1])])), Err(NotACheckpoint::Unknown(_))));
    }

    #[test]
    fn sd2_prediction_from_the_norm_spread() {
        assert!(!sd2_predicts_v(&[0.01, -0.02, 0.03, 0.0]));
        assert!(sd2_predicts_v(&[0.3, -0.2, 0.1, -0.25]));
    }
}
