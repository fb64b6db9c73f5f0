//! What the studio remembers across restarts.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::io::output::default_output_dir;
use crate::latent::interpolate::Interpolation;
use crate::text::sampling::SamplingParams;
use crate::ui::commands::Tab;

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
    /// Whether the text panel was in chat mode.
    pub chat: bool,
    /// The user's model folders (A1111/Forge or ComfyUI installs, or any folder).
    pub model_folders: Vec<PathBuf>,
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
            chat: true,
            model_folders: Vec::new(),
        }
    }
}
