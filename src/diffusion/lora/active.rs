//! The LoRAs a pipeline has merged: asked for a set (files with their
//! weights), it reads new files once, and re-merges only when the set or a
//! weight changed; prompts' `<lora:name:…>` tags are found by name in the
//! LoRA folders.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::keys::ModuleIndex;
use super::{LoraError, LoraFile, LoraMerger, LoraReport, LoraUse, read_lora};
use crate::diffusion::checkpoint::family::unet_layout;
use crate::diffusion::nets::{DiffusionNets, FolderError};

/// One LoRA to use: a file and its weights.
#[derive(Clone, Debug, PartialEq)]
pub struct LoraRequest {
    pub path: PathBuf,
    pub text_weight: f64,
    pub unet_weight: f64,
}

/// Why a set of LoRAs could not be used.
#[derive(Debug, thiserror::Error)]
pub enum LoraSetError {
    #[error(transparent)]
    File(#[from] FolderError),
    #[error(transparent)]
    Merge(#[from] LoraError),
}

/// The merged set and the files read so far.
#[derive(Default)]
pub struct ActiveLoras {
    merger: LoraMerger,
    files: Mutex<HashMap<PathBuf, Arc<LoraFile>>>,
    applied: Mutex<(Vec<LoraRequest>, Vec<LoraReport>)>,
}

impl ActiveLoras {
    /// Makes `nets` carry exactly `wanted` (nothing when empty).
    pub fn ensure(&self, nets: &DiffusionNets, wanted: &[LoraRequest]) -> Result<Vec<LoraReport>, LoraSetError> {
        let mut applied = self.applied.lock().map_err(|_| poisoned())?;
        if applied.0 == wanted {
            return Ok(applied.1.clone());
        }
        let mut files = Vec::with_capacity(wanted.len());
        for request in wanted {
            files.push(self.file(&request.path)?);
        }
        let uses: Vec<LoraUse> = wanted
            .iter()
            .zip(&files)
            .map(|(r, f)| LoraUse { file: f, text_weight: r.text_weight, unet_weight: r.unet_weight })
            .collect();
        let index = ModuleIndex::new(nets.weights.shapes(), nets.towers.len(), &unet_layout(nets.unet.config()));
        let reports = match self.merger.apply(&nets.weights, &index, &uses) {
            Ok(reports) => reports,
            Err(e) => {
                // Leave the model as it was before this set: the base weights.
                self.merger.apply(&nets.weights, &index, &[])?;
                *applied = (Vec::new(), Vec::new());
                return Err(e.into());
            }
        };
        *applied = (wanted.to_vec(), reports.clone());
        Ok(reports)
    }

    fn file(&self, path: &Path) -> Result<Arc<LoraFile>, LoraSetError> {
        let mut files = self.files.lock().map_err(|_| poisoned())?;
        if let Some(file) = files.get(path) {
            return Ok(file.clone());
        }
        let file = Arc::new(read_lora(path)?);
        files.insert(path.to_owned(), file.clone());
        Ok(file)
    }
}

fn poisoned() -> LoraSetError {
    LoraSetError::Merge(LoraError::Compute(candle_core::Error::Msg("LoRA state poisoned".into())))
}

/// The file for a prompt's `<lora:name>`: `name.safetensors` in one of
/// `dirs` or their subfolders (as A1111 lists them), matched without regard
/// to case.
pub fn find_lora(dirs: &[PathBuf], name: &str) -> Option<PathBuf> {
    let wanted = name.to_lowercase();
    let mut stack: Vec<PathBuf> = dirs.to_vec();
    let mut seen = 0usize;
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        let mut entries: Vec<_> = entries.flatten().map(|e| e.path()).collect();
        entries.sort();
        for path in entries {
            seen += 1;
            if seen > 100_000 {
                return None;
            }
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("safetensors"))
                && path.file_stem().is_some_and(|s| s.to_string_lossy().to_lowercase() == wanted)
            {
                return Some(path);
            }
        }
    }
    None
}
