//! What the studio remembers across restarts.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::io::image_folder::FolderSpec;
use crate::io::output::default_output_dir;
use crate::latent::interpolate::Interpolation;
use crate::spec::text::KvPrecision;
use crate::text::sampling::SamplingParams;
use crate::ui::commands::Tab;
use crate::ui::models_panel::PendingPull;
use crate::worker::train_plan::TrainRequest;

/// Persisted through eframe's storage under [`Settings::KEY`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// Where "Save" writes numbered files.
    pub output_dir: PathBuf,
    /// The model open when the studio was last closed.
    pub last_model: Option<String>,
    /// Interpolation method.
    pub method: Interpolation,
    /// Frames in an interpolation strip.
    pub frames: usize,
    /// Integer upscale for saved images.
    pub save_scale: u32,
    /// The view open when the studio was last closed.
    pub tab: Tab,
    /// The language model last used (an installed id).
    pub text_model: Option<String>,
    /// The text panel's sampling settings.
    pub sampling: SamplingParams,
    /// The text panel's token limit.
    pub max_tokens: usize,
    /// How the text panel's models keep their KV cache.
    pub kv_cache: KvPrecision,
    /// Whether the text panel was in chat mode.
    pub chat: bool,
    /// The conversation open in the Text view (its file).
    pub conversation: Option<PathBuf>,
    /// The user's model folders (A1111/Forge or ComfyUI installs, or any folder).
    pub model_folders: Vec<PathBuf>,
    /// The Train view's own folder and how its images are prepared, when it trains on one.
    pub training_folder: Option<FolderSpec>,
    /// Hub pulls not finished when the studio closed (offered again, paused).
    /// An entry that no longer reads (a hand-edited repo id, say) is dropped
    /// instead of losing every other setting with it.
    #[serde(deserialize_with = "readable_entries")]
    pub unfinished_downloads: Vec<PendingPull>,
    /// A training run paused (or running) when the studio closed, offered
    /// again in the Train view; dropped if it no longer reads.
    #[serde(deserialize_with = "readable_run")]
    pub unfinished_training: Option<TrainRequest>,
    /// Remote backends (their API keys live apart, in the owner-only key file).
    #[serde(default)]
    pub backends: Vec<crate::spec::backend::BackendConfig>,
}

/// The run, if it still reads (settings written by another version may not).
fn readable_run<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<TrainRequest>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Entry {
        Readable(Box<Option<TrainRequest>>),
        Unreadable(serde::de::IgnoredAny),
    }
    Ok(match Entry::deserialize(deserializer)? {
        Entry::Readable(run) => *run,
        Entry::Unreadable(_) => None,
    })
}

/// The entries of a list that deserialize; the others are skipped.
fn readable_entries<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Vec<PendingPull>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Entry {
        Readable(PendingPull),
        Unreadable(serde::de::IgnoredAny),
    }
    let entries = Vec::<Entry>::deserialize(deserializer)?;
    Ok(entries
        .into_iter()
        .filter_map(|e| match e {
            Entry::Readable(p) => Some(p),
            Entry::Unreadable(_) => None,
        })
        .collect())
}

impl Settings {
    /// Storage key.
    pub const KEY: &'static str = "latent-studio-settings";
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            output_dir: default_output_dir(),
            last_model: None,
            method: Interpolation::Slerp,
            frames: 10,
            save_scale: 4,
            tab: Tab::Latent,
            text_model: None,
            sampling: SamplingParams::default(),
            max_tokens: 256,
            kv_cache: KvPrecision::F32,
            chat: true,
            conversation: None,
            model_folders: Vec::new(),
            unfinished_downloads: Vec::new(),
            training_folder: None,
            unfinished_training: None,
            backends: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_unfinished_download_is_dropped_not_the_settings() {
        let good = r#"{"plan": {"repo": "owner/m-GGUF", "revision": "0123456789abcdef0123456789abcdef01234567",
            "files": [{"path": "m-Q4_K_M.gguf", "size": 10, "sha256": null}], "license": null}, "branch": "main"}"#;
        let bad = good.replace("owner/m-GGUF", "../../etc");
        let text = format!(r#"{{"frames": 7, "unfinished_downloads": [{good}, {bad}]}}"#);
        let settings: Settings = serde_json::from_str(&text).unwrap();
        assert_eq!(settings.frames, 7);
        assert_eq!(settings.unfinished_downloads.len(), 1);
        assert_eq!(settings.unfinished_downloads[0].plan.repo.as_str(), "owner/m-GGUF");
    }

    /// A paused run survives the studio closing: through RON, as eframe stores the settings,
    /// for a folder of images and a named set; a run that no longer reads is dropped alone.
    #[test]
    fn a_paused_training_run_is_kept_across_restarts() {
        use crate::diffusion::stages::{DiffusionSettings, DiffusionStart};
        use crate::io::datasets::{DataSource, DatasetName};
        use crate::io::image_folder::{Fit, FolderSpec};
        use crate::worker::train_plan::{DiffusionPlan, RunFolder, TrainPlan};
        let folder = FolderSpec { folder: "/my/pictures".into(), side: 32, channels: 3, fit: Fit::Pad, flip: true };
        for source in [DataSource::Folder(folder), DataSource::Named(DatasetName::Emoji)] {
            let plan = TrainPlan::Diffusion(DiffusionPlan {
                source,
                autoencoder_epochs: 3,
                autoencoder_channels: [8, 8, 8],
                start: DiffusionStart::FineTune { base: "/models/emoji-ldm".into() },
                settings: DiffusionSettings { epochs: 4, batch_size: 8, lr: 3e-4, ema: None, seed: 1, sample_every: 1 },
            });
            let run = TrainRequest {
                plan,
                data_dir: "data".into(),
                folder: RunFolder::Resume("/models/ldm-run-2".into()),
                limit: Some(10),
                until: None,
            };
            let settings = Settings { unfinished_training: Some(run.clone()), ..Settings::default() };
            let text = ron::to_string(&settings).unwrap();
            let read: Settings = ron::from_str(&text).unwrap();
            assert_eq!(read.unfinished_training, Some(run), "{text}");
        }
        let text = r#"{"frames": 5, "unfinished_training": {"plan": {"Telepathy": 1}}}"#;
        let settings: Settings = serde_json::from_str(text).unwrap();
        assert_eq!((settings.frames, settings.unfinished_training), (5, None));
    }
}
