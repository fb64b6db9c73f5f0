//! A LoRA file read into modules: kohya's names (`lora_unet_…`,
//! `lora_te_…`, `lora_te1_…`/`lora_te2_…` with `.lora_down`, `.lora_up`,
//! `.alpha`; LoCon convolutions the same way) and diffusers/PEFT's
//! (`unet.….lora_A`/`lora_B`, `….lora.down`/`up`, the older
//! `….processor.to_q_lora.down`). Kinds we cannot merge (LoHa, LoKr, DoRA,
//! CP-decomposed LoCon) are counted, not guessed at.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};

use crate::diffusion::checkpoint::open_tensor_file;
use crate::diffusion::nets::FolderError;

/// One adapted layer: ΔW = up · down · scale, with scale = alpha / rank.
#[derive(Clone, Debug)]
pub struct LoraModule {
    /// The layer's name as the file spells it (without the suffix).
    pub name: String,
    pub down: Tensor,
    pub up: Tensor,
    pub alpha: Option<f64>,
}

impl LoraModule {
    pub fn rank(&self) -> usize {
        self.down.dims().first().copied().unwrap_or(1)
    }

    /// ΔW as a [out, in·k·k] matrix in f32, at weight 1.
    pub fn delta(&self) -> candle_core::Result<Tensor> {
        let rank = self.rank();
        let down = self.down.to_dtype(DType::F32)?;
        let up = self.up.to_dtype(DType::F32)?;
        let down = down.reshape((rank, down.elem_count() / rank.max(1)))?;
        let out = up.dim(0)?;
        let up = up.reshape((out, up.elem_count() / out.max(1)))?;
        if up.dim(1)? != rank {
            candle_core::bail!("{}: up has {} columns but down has {rank} rows", self.name, up.dim(1)?);
        }
        let scale = self.alpha.map_or(1.0, |a| a / rank as f64);
        (up.matmul(&down)? * scale)?.contiguous()
    }
}

/// A parsed LoRA file.
#[derive(Clone, Debug)]
pub struct LoraFile {
    pub path: PathBuf,
    pub modules: Vec<LoraModule>,
    /// Tensors that belong to no module we can merge (other adapter kinds).
    pub unsupported: Vec<String>,
}

fn error(path: &Path, message: impl std::fmt::Display) -> FolderError {
    FolderError::File { path: path.to_owned(), message: message.to_string() }
}

/// (module, part) for a tensor name, where part is down, up or alpha.
pub fn split_name(name: &str) -> Option<(String, &'static str)> {
    const SUFFIXES: &[(&str, &str)] = &[
        (".lora_down.weight", "down"),
        (".lora_up.weight", "up"),
        (".lora_A.weight", "down"),
        (".lora_B.weight", "up"),
        (".lora.down.weight", "down"),
        (".lora.up.weight", "up"),
        ("_lora.down.weight", "down"),
        ("_lora.up.weight", "up"),
        (".alpha", "alpha"),
    ];
    for (suffix, part) in SUFFIXES {
        if let Some(module) = name.strip_suffix(suffix) {
            // diffusers' old attention-processor form: `attn1.processor.to_q_lora` is `attn1.to_q`.
            let module = module.replace(".processor.", ".");
            let module = module.strip_suffix(".to_out_lora").map(|m| format!("{m}.to_out.0")).unwrap_or(module);
            let module = ["to_q", "to_k", "to_v"]
                .iter()
                .find_map(|p| module.strip_suffix(&format!(".{p}_lora")).map(|m| format!("{m}.{p}")))
                .unwrap_or(module);
            return Some((module, part));
        }
    }
    None
}

/// Reads a LoRA file (safetensors; pickles are refused like checkpoints).
pub fn read_lora(path: &Path) -> Result<LoraFile, FolderError> {
    let file = open_tensor_file(path)?;
    let names: Vec<String> = file.shapes().into_keys().collect();
    /// A module's down and up factors and alpha, as they turn up.
    type Parts = (Option<Tensor>, Option<Tensor>, Option<f64>);
    let mut parts: BTreeMap<String, Parts> = BTreeMap::new();
    let mut unsupported = Vec::new();
    for name in names {
        let Some((module, part)) = split_name(&name) else {
            unsupported.push(name);
            continue;
        };
        let tensor = file.read(&name, &Device::Cpu).map_err(|e| error(path, e))?;
        let entry = parts.entry(module).or_default();
        match part {
            "down" => entry.0 = Some(tensor),
            "up" => entry.1 = Some(tensor),
            _ => {
                let value = tensor.to_dtype(DType::F64).and_then(|t| t.flatten_all()?.to_vec1::<f64>());
                entry.2 = value.ok().and_then(|v| v.first().copied());
            }
        }
    }
    let mut modules = Vec::new();
    for (name, (down, up, alpha)) in parts {
        match (down, up) {
            (Some(down), Some(up)) => modules.push(LoraModule { name, down, up, alpha }),
            _ => unsupported.push(name),
        }
    }
    if modules.is_empty() {
        let what = if unsupported.is_empty() {
            "no tensors".to_owned()
        } else {
            format!("{} tensors of kinds the studio cannot merge (LoHa, LoKr, …)", unsupported.len())
        };
        return Err(error(path, format!("is not a LoRA it can use: {what}")));
    }
    Ok(LoraFile { path: path.to_owned(), modules, unsupported })
}
