//! What an image generation asks for.

use serde::{Deserialize, Serialize};

/// The samplers a user can pick.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SamplerKind {
    Ddim,
    Ddpm,
    EulerAncestral,
}

impl SamplerKind {
    /// Every sampler, in menu order.
    pub const ALL: [SamplerKind; 3] = [SamplerKind::EulerAncestral, SamplerKind::Ddim, SamplerKind::Ddpm];

    /// The name on the command line (`--sampler`).
    pub fn cli_name(self) -> &'static str {
        match self {
            SamplerKind::Ddim => "ddim",
            SamplerKind::Ddpm => "ddpm",
            SamplerKind::EulerAncestral => "euler-a",
        }
    }

    /// The name AUTOMATIC1111's web UI writes in `Sampler:`.
    pub fn a1111_name(self) -> &'static str {
        match self {
            SamplerKind::Ddim => "DDIM",
            SamplerKind::Ddpm => "DDPM",
            SamplerKind::EulerAncestral => "Euler a",
        }
    }

    /// Reads either name (case-insensitive).
    pub fn parse(name: &str) -> Option<SamplerKind> {
        let name = name.trim().to_lowercase();
        Self::ALL.into_iter().find(|k| k.cli_name() == name || k.a1111_name().to_lowercase() == name)
    }
}

/// The settings of one image.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ImageRequest {
    pub prompt: String,
    pub negative: String,
    pub steps: usize,
    pub sampler: SamplerKind,
    /// Classifier-free guidance scale; ≤ 1 runs the prompt alone (SD-Turbo's 0).
    pub guidance: f64,
    pub width: usize,
    pub height: usize,
    pub seed: u64,
    /// img2img only: how much of the schedule to run over the init image (0–1].
    pub strength: f64,
}

impl ImageRequest {
    /// A request with the pipeline's defaults for everything but the prompt.
    pub fn new(prompt: &str, seed: u64) -> Self {
        Self {
            prompt: prompt.into(),
            negative: String::new(),
            steps: 20,
            sampler: SamplerKind::EulerAncestral,
            guidance: 7.5,
            width: 512,
            height: 512,
            seed,
            strength: 0.75,
        }
    }
}
