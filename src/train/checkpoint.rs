//! Training checkpoints: weights, optimiser moments and a JSON state in one
//! folder that is replaced whole. Files are written into a fresh sibling
//! folder that then takes the old one's place, so a crash mid-save never
//! leaves weights from one step next to optimiser state from another.

use std::path::{Path, PathBuf};

use candle_core::Device;
use candle_nn::VarMap;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::train::adam::Adam;
use crate::train::error::{TrainError, file_err};

/// Weights file in a checkpoint folder.
const WEIGHTS: &str = "weights.safetensors";
/// AdamW moments.
const OPTIMIZER: &str = "optimizer.safetensors";
/// The trainer's own state (spec, step, history), JSON.
const STATE: &str = "state.json";

/// What a trainer saves beside its tensors: its settings, how far it got
/// (`P`, flattened into the same JSON object) and one report per epoch or
/// evaluation.
#[derive(Serialize, Deserialize)]
pub struct CheckpointState<S, R, P = OptimizerSteps> {
    /// The run's settings.
    pub spec: S,
    /// Steps taken, and whatever else the trainer needs to resume.
    #[serde(flatten)]
    pub progress: P,
    /// Reports so far.
    pub history: Vec<R>,
}

/// The progress of a trainer with one optimiser step counter.
#[derive(Serialize, Deserialize)]
pub struct OptimizerSteps {
    /// AdamW steps taken (bias correction resumes from here).
    pub optimizer_steps: usize,
}

fn sibling(dir: &Path, suffix: &str) -> PathBuf {
    let mut name = dir.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(format!(".{suffix}"));
    dir.with_file_name(name)
}

/// Writes a checkpoint of `varmap`, the optimisers `opts` (over disjoint
/// variables, such as a GAN's generator and discriminator) and `state` into
/// `dir`, replacing it whole. If a write fails (a full disk, say), the
/// half-written copy is removed and the previous checkpoint stays as it was.
pub fn save_checkpoint<S: Serialize>(dir: &Path, varmap: &VarMap, opts: &[&Adam], state: &S) -> Result<(), TrainError> {
    let staging = sibling(dir, "new");
    let previous = sibling(dir, "old");
    let _ = std::fs::remove_dir_all(&staging);
    let written = write_checkpoint_files(&staging, varmap, opts, state);
    if let Err(e) = written {
        let _ = std::fs::remove_dir_all(&staging);
        return Err(e);
    }
    let _ = std::fs::remove_dir_all(&previous);
    if dir.exists() {
        std::fs::rename(dir, &previous).map_err(|e| file_err(dir, e))?;
    }
    std::fs::rename(&staging, dir).map_err(|e| file_err(dir, e))?;
    let _ = std::fs::remove_dir_all(&previous);
    Ok(())
}

fn write_checkpoint_files<S: Serialize>(
    staging: &Path,
    varmap: &VarMap,
    opts: &[&Adam],
    state: &S,
) -> Result<(), TrainError> {
    std::fs::create_dir_all(staging).map_err(|e| write_err(staging, e))?;
    let weights = staging.join(WEIGHTS);
    varmap.save(&weights).map_err(|e| write_err(&weights, e))?;
    let opt_path = staging.join(OPTIMIZER);
    let mut moments = std::collections::HashMap::new();
    for opt in opts {
        moments.extend(opt.state()?);
    }
    candle_core::safetensors::save(&moments, &opt_path).map_err(|e| write_err(&opt_path, e))?;
    let state_path = staging.join(STATE);
    let text = serde_json::to_string_pretty(state).map_err(|e| file_err(&state_path, e))?;
    std::fs::write(&state_path, text).map_err(|e| write_err(&state_path, e))
}

/// A failed write of `path`; a full disk (or quota, or file-size limit) says so plainly.
fn write_err(path: &Path, e: impl std::fmt::Display) -> TrainError {
    let text = e.to_string();
    // ENOSPC, EFBIG and EDQUOT, however deep in candle's or safetensors' errors they arrive.
    let full = ["os error 28", "os error 27", "os error 122"].iter().any(|code| text.contains(code));
    if full {
        let detail =
            format!("no room left on the disk ({text}); the previous checkpoint is kept: free space and resume");
        return TrainError::File { path: path.to_owned(), detail };
    }
    file_err(path, e)
}

/// A checkpoint's state and the folder it was read from: `dir`, or the
/// previous version left beside it if a save was interrupted between renames.
pub fn read_checkpoint_state<S: DeserializeOwned>(dir: &Path) -> Result<(S, PathBuf), TrainError> {
    let previous = sibling(dir, "old");
    let dir = if !dir.join(STATE).exists() && previous.join(STATE).exists() { previous } else { dir.to_owned() };
    let state_path = dir.join(STATE);
    let text = std::fs::read_to_string(&state_path).map_err(|e| file_err(&state_path, e))?;
    let state = serde_json::from_str(&text).map_err(|e| file_err(&state_path, e))?;
    Ok((state, dir))
}

/// Loads the weights and optimiser moments of the checkpoint in `dir`
/// (as returned by [`read_checkpoint_state`]); each optimiser comes with its step count.
pub fn load_checkpoint_tensors(
    dir: &Path,
    varmap: &mut VarMap,
    opts: &mut [(&mut Adam, usize)],
    device: &Device,
) -> Result<(), TrainError> {
    let weights = dir.join(WEIGHTS);
    varmap.load(&weights).map_err(|e| file_err(&weights, e))?;
    let opt_path = dir.join(OPTIMIZER);
    let moments = candle_core::safetensors::load(&opt_path, device).map_err(|e| file_err(&opt_path, e))?;
    for (opt, steps) in opts {
        opt.restore(&moments, *steps).map_err(|e| file_err(&opt_path, e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The generic state writes the same JSON as the five per-trainer
    /// structs it replaced, so checkpoints from earlier versions resume.
    #[test]
    fn state_json_keeps_the_earlier_layout() {
        let state: CheckpointState<u32, f64> =
            CheckpointState { spec: 7, progress: OptimizerSteps { optimizer_steps: 12 }, history: vec![0.5] };
        let text = serde_json::to_string_pretty(&state).unwrap();
        assert_eq!(text, "{\n  \"spec\": 7,\n  \"optimizer_steps\": 12,\n  \"history\": [\n    0.5\n  ]\n}");

        #[derive(Serialize, Deserialize, PartialEq, Debug)]
        struct Text {
            alphabet: String,
            step: usize,
        }
        let old = "{\"spec\": 1, \"alphabet\": \"ab\", \"step\": 3, \"history\": []}";
        let read: CheckpointState<u32, f64, Text> = serde_json::from_str(old).unwrap();
        assert_eq!(read.progress, Text { alphabet: "ab".into(), step: 3 });
        assert_eq!(serde_json::to_string(&read).unwrap(), old.replace(' ', ""));
    }
}
