//! What an image generation asks for.

use serde::{Deserialize, Serialize};

/// The samplers a user can pick.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SamplerKind {
    Ddim,
    Ddpm,
    Euler,
    EulerAncestral,
    DpmPp2m,
    DpmPp2mKarras,
    Lcm,
}

impl SamplerKind {
    /// Every sampler, in menu order.
    pub const ALL: [SamplerKind; 7] = [
        SamplerKind::EulerAncestral,
        SamplerKind::Euler,
        SamplerKind::DpmPp2mKarras,
        SamplerKind::DpmPp2m,
        SamplerKind::Lcm,
        SamplerKind::Ddim,
        SamplerKind::Ddpm,
    ];

    /// The name on the command line (`--sampler`).
    pub fn cli_name(self) -> &'static str {
        match self {
            SamplerKind::Ddim => "ddim",
            SamplerKind::Ddpm => "ddpm",
            SamplerKind::Euler => "euler",
            SamplerKind::EulerAncestral => "euler-a",
            SamplerKind::DpmPp2m => "dpmpp-2m",
            SamplerKind::DpmPp2mKarras => "dpmpp-2m-karras",
            SamplerKind::Lcm => "lcm",
        }
    }

    /// AUTOMATIC1111's name for it (its menus and older infotexts).
    pub fn a1111_name(self) -> &'static str {
        match self {
            SamplerKind::Ddim => "DDIM",
            SamplerKind::Ddpm => "DDPM",
            SamplerKind::Euler => "Euler",
            SamplerKind::EulerAncestral => "Euler a",
            SamplerKind::DpmPp2m => "DPM++ 2M",
            SamplerKind::DpmPp2mKarras => "DPM++ 2M Karras",
            SamplerKind::Lcm => "LCM",
        }
    }

    /// What A1111 (1.9 and later) writes: `Sampler:` and, where the σ
    /// schedule is not the sampler's own, `Schedule type:`.
    pub fn infotext(self) -> (&'static str, Option<&'static str>) {
        match self {
            SamplerKind::DpmPp2mKarras => ("DPM++ 2M", Some("Karras")),
            other => (other.a1111_name(), None),
        }
    }

    /// Whether the sampler adds no noise of its own after the first step, so
    /// that nearby starting noises give nearby images (what travel needs).
    pub fn is_deterministic(self) -> bool {
        matches!(self, SamplerKind::Ddim | SamplerKind::Euler | SamplerKind::DpmPp2m | SamplerKind::DpmPp2mKarras)
    }

    /// Reads any of the names (case-insensitive).
    pub fn parse(name: &str) -> Option<SamplerKind> {
        let name = name.trim().to_lowercase();
        Self::ALL.into_iter().find(|k| k.cli_name() == name || k.a1111_name().to_lowercase() == name)
    }

    /// Reads an infotext's `Sampler:` with its `Schedule type:` (if any).
    pub fn from_infotext(sampler: &str, schedule: Option<&str>) -> Option<SamplerKind> {
        match schedule.map(|s| s.trim().to_lowercase()) {
            Some(s) if s == "karras" => Self::parse(&format!("{} karras", sampler.trim())),
            _ => Self::parse(sampler),
        }
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
    /// A1111's variation seed: the initial noise moves towards another seed's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variation: Option<VariationSeed>,
}

/// A1111's "Variation seed" and "Variation seed strength": the initial
/// noise is the seed's slerped towards this seed's by `strength` (0: the
/// seed alone, 1: the variation seed's noise); the samplers' later noise
/// stays the main seed's.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct VariationSeed {
    pub seed: u64,
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
            variation: None,
        }
    }
}
