//! Which of our weights a LoRA module adapts. Registry names are ours
//! with the component in front (`unet.…`, `text_encoder.…`,
//! `text_encoder_2.…`), which is exactly diffusers/PEFT's spelling; kohya's
//! are the same names with `_` for `.` behind `lora_unet_`, `lora_te_`
//! (`lora_te1_`/`lora_te2_` for SDXL), and some trainers use the original
//! checkpoint's U-Net numbering (`lora_unet_input_blocks_4_1_proj_in`), found
//! through the single-file key map.

use std::collections::HashMap;

use crate::diffusion::checkpoint::keys::{UnetLayout, unet_source};

/// Registry name prefixes of the components.
pub const UNET: &str = "unet.";
pub const TEXT: &str = "text_encoder.";
pub const TEXT_2: &str = "text_encoder_2.";

/// Module name (any supported spelling) → weight name in the registry.
pub struct ModuleIndex {
    kohya: HashMap<String, String>,
    weights: HashMap<String, Vec<usize>>,
}

impl ModuleIndex {
    /// The index over the registry's weights (`shapes`), for a model with
    /// `towers` text encoders and this U-Net layout.
    pub fn new(shapes: HashMap<String, Vec<usize>>, towers: usize, layout: &UnetLayout) -> Self {
        let mut kohya = HashMap::new();
        for (name, shape) in &shapes {
            let Some(module) = name.strip_suffix(".weight").filter(|_| matches!(shape.len(), 2 | 4)) else { continue };
            let underscored = |s: &str| s.replace('.', "_");
            if let Some(ours) = module.strip_prefix(UNET) {
                kohya.insert(format!("lora_unet_{}", underscored(ours)), name.clone());
                if let Some(source) = unet_source(&format!("{ours}.weight"), layout, "") {
                    let original = source.name.trim_end_matches(".weight");
                    kohya.insert(format!("lora_unet_{}", underscored(original)), name.clone());
                }
            } else if let Some(ours) = module.strip_prefix(TEXT) {
                let prefix = if towers > 1 { "lora_te1_" } else { "lora_te_" };
                kohya.insert(format!("{prefix}{}", underscored(ours)), name.clone());
            } else if let Some(ours) = module.strip_prefix(TEXT_2) {
                kohya.insert(format!("lora_te2_{}", underscored(ours)), name.clone());
            }
        }
        Self { kohya, weights: shapes }
    }

    /// The weight a module adapts, and whether it is in the U-Net.
    pub fn resolve(&self, module: &str) -> Option<(String, bool)> {
        let direct = |m: &str| {
            let name = format!("{m}.weight");
            self.weights.contains_key(&name).then_some(name)
        };
        let found = self
            .kohya
            .get(module)
            .cloned()
            .or_else(|| direct(module))
            .or_else(|| module.strip_prefix("base_model.model.").and_then(|m| direct(&format!("{UNET}{m}"))));
        found.map(|name| {
            let unet = name.starts_with(UNET);
            (name, unet)
        })
    }
}
