//! Random LoRA files for a loaded model, in kohya's or diffusers/PEFT's
//! layout: what the tests compare against diffusers' `load_lora_weights`,
//! and fuzz seeds. Attention, projection and feed-forward layers of the
//! U-Net and text encoders, and with `convolutions` the ResNet
//! convolutions too (LoCon).

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor};

use super::keys::{TEXT, TEXT_2, UNET};
use crate::diffusion::nets::DiffusionNets;
use crate::train::rng::SeededRng;

/// The two ways LoRA files name layers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoraLayout {
    /// `lora_unet_down_blocks_0_…` + `.lora_down`/`.lora_up`/`.alpha`.
    Kohya,
    /// `unet.down_blocks.0.….lora_A`/`.lora_B` (no alpha: scale 1).
    Peft,
}

/// What to write.
#[derive(Clone, Debug)]
pub struct RandomLora {
    pub layout: LoraLayout,
    pub rank: usize,
    /// kohya's alpha (the update is scaled by alpha / rank).
    pub alpha: f64,
    pub convolutions: bool,
    /// Standard deviation of the entries of both factors.
    pub scale: f32,
    pub seed: u64,
}

fn adapted(name: &str, convolutions: bool) -> bool {
    let layer = [
        "to_q", "to_k", "to_v", "to_out.0", "proj_in", "proj_out", "ff.net", "q_proj", "k_proj", "v_proj", "out_proj",
        "fc1", "fc2",
    ];
    let conv = convolutions && name.contains("resnets") && (name.contains(".conv1.") || name.contains(".conv2."));
    conv || layer.iter().any(|l| name.contains(&format!(".{l}.")) || name.contains(&format!(".{l}")))
}

/// Writes a random LoRA for `nets` to `path`.
pub fn write_random_lora(nets: &DiffusionNets, spec: &RandomLora, path: &Path) -> candle_core::Result<()> {
    let mut shapes: Vec<(String, Vec<usize>)> = nets.weights.shapes().into_iter().collect();
    shapes.sort();
    let mut rng = SeededRng::new(spec.seed);
    let mut tensors: HashMap<String, Tensor> = HashMap::new();
    let sdxl = nets.towers.len() > 1;
    for (name, shape) in shapes {
        let Some(module) = name.strip_suffix(".weight") else { continue };
        let text = module.starts_with(TEXT) || module.starts_with(TEXT_2);
        if !(module.starts_with(UNET) || text) || !matches!(shape.len(), 2 | 4) || !adapted(module, spec.convolutions) {
            continue;
        }
        let (out, inputs) = (shape[0], shape[1..].iter().product::<usize>());
        let kernel = if shape.len() == 4 { shape[2..].to_vec() } else { vec![] };
        let mut draw = |dims: Vec<usize>| {
            let n = dims.iter().product();
            let values: Vec<f32> = rng.normal_vec(n).into_iter().map(|v| v * spec.scale).collect();
            Tensor::from_vec(values, dims, &Device::Cpu)
        };
        let r = spec.rank;
        let (down_dims, up_dims) = if kernel.is_empty() {
            (vec![r, inputs], vec![out, r])
        } else {
            (vec![r, shape[1], kernel[0], kernel[1]], vec![out, r, 1, 1])
        };
        let (down, up) = (draw(down_dims)?, draw(up_dims)?);
        match spec.layout {
            LoraLayout::Kohya => {
                let key = kohya_name(module, sdxl);
                tensors.insert(format!("{key}.lora_down.weight"), down);
                tensors.insert(format!("{key}.lora_up.weight"), up);
                tensors.insert(format!("{key}.alpha"), Tensor::new(spec.alpha as f32, &Device::Cpu)?);
            }
            LoraLayout::Peft => {
                tensors.insert(format!("{module}.lora_A.weight"), down);
                tensors.insert(format!("{module}.lora_B.weight"), up);
            }
        }
    }
    candle_core::safetensors::save(&tensors, path)
}

fn kohya_name(module: &str, sdxl: bool) -> String {
    let underscored = |s: &str| s.replace('.', "_");
    if let Some(rest) = module.strip_prefix(UNET) {
        format!("lora_unet_{}", underscored(rest))
    } else if let Some(rest) = module.strip_prefix(TEXT_2) {
        format!("lora_te2_{}", underscored(rest))
    } else {
        let rest = module.strip_prefix(TEXT).unwrap_or(module);
        format!("{}{}", if sdxl { "lora_te1_" } else { "lora_te_" }, underscored(rest))
    }
}
