//! LoRA: low-rank weight updates merged into the loaded networks. `file`
//! reads kohya and diffusers/PEFT files, `keys` finds each module's weight
//! among ours, `registry` holds the weights so that changing a LoRA or its
//! weight rewrites only the layers it touches (their originals kept aside),
//! never reloading the checkpoint.

pub mod active;
pub mod file;
pub mod keys;
pub mod random;
pub mod registry;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Mutex;

use candle_core::{DType, Tensor};

pub use file::{LoraFile, read_lora};
use keys::ModuleIndex;
use registry::WeightRegistry;

/// A LoRA to merge, with its weights on the text encoders and the U-Net.
#[derive(Clone, Debug)]
pub struct LoraUse<'a> {
    pub file: &'a LoraFile,
    pub text_weight: f64,
    pub unet_weight: f64,
}

/// What merging one file did.
#[derive(Clone, Debug, PartialEq)]
pub struct LoraReport {
    pub path: PathBuf,
    pub applied: usize,
    /// Modules naming no layer of this model.
    pub unused: Vec<String>,
    /// Tensors of adapter kinds we cannot merge.
    pub unsupported: usize,
}

/// Why a LoRA cannot be merged.
#[derive(Debug, thiserror::Error)]
pub enum LoraError {
    #[error("{}: none of its {modules} layers is in this model; is it a LoRA for another model family?", path.display())]
    NoneFit { path: PathBuf, modules: usize },
    #[error("{}: layer {module} is {got:?} in the LoRA but {want:?} in the model", path.display())]
    Shape { path: PathBuf, module: String, got: Vec<usize>, want: Vec<usize> },
    #[error("merging a LoRA failed: {0}")]
    Compute(#[from] candle_core::Error),
}

/// The merged state: originals of the weights LoRAs changed.
#[derive(Default)]
pub struct LoraMerger {
    originals: Mutex<HashMap<String, Tensor>>,
}

impl LoraMerger {
    /// Makes the networks' weights base + Σ LoRA deltas for exactly `uses`
    /// (an empty list restores the base weights).
    pub fn apply(
        &self,
        registry: &WeightRegistry,
        index: &ModuleIndex,
        uses: &[LoraUse],
    ) -> Result<Vec<LoraReport>, LoraError> {
        let shapes = registry.shapes();
        let mut deltas: HashMap<String, Tensor> = HashMap::new();
        let mut reports = Vec::new();
        for u in uses {
            let mut report = LoraReport {
                path: u.file.path.clone(),
                applied: 0,
                unused: Vec::new(),
                unsupported: u.file.unsupported.len(),
            };
            for module in &u.file.modules {
                let Some((target, is_unet)) = index.resolve(&module.name) else {
                    report.unused.push(module.name.clone());
                    continue;
                };
                let want = shapes.get(&target).cloned().unwrap_or_default();
                let delta = module.delta()?;
                if delta.elem_count() != want.iter().product::<usize>() {
                    let got = vec![module.up.dim(0)?, module.down.elem_count() / module.rank().max(1)];
                    return Err(LoraError::Shape { path: u.file.path.clone(), module: module.name.clone(), got, want });
                }
                let weight = if is_unet { u.unet_weight } else { u.text_weight };
                let delta = (delta.reshape(want.as_slice())? * weight)?;
                let sum = match deltas.remove(&target) {
                    Some(previous) => (previous + delta)?,
                    None => delta,
                };
                deltas.insert(target, sum);
                report.applied += 1;
            }
            if report.applied == 0 {
                return Err(LoraError::NoneFit { path: u.file.path.clone(), modules: u.file.modules.len() });
            }
            reports.push(report);
        }
        let mut originals = self.originals.lock().map_err(|_| candle_core::Error::Msg("LoRA state poisoned".into()))?;
        let touched: HashSet<String> = originals.keys().cloned().chain(deltas.keys().cloned()).collect();
        for name in touched {
            if !originals.contains_key(&name)
                && let Some(current) = registry.get(&name)
            {
                originals.insert(name.clone(), current);
            }
            let Some(original) = originals.get(&name) else { continue };
            match deltas.get(&name) {
                Some(delta) => registry.set(&name, &(original.to_dtype(DType::F32)? + delta)?)?,
                None => {
                    registry.set(&name, original)?;
                    originals.remove(&name);
                }
            }
        }
        Ok(reports)
    }
}
