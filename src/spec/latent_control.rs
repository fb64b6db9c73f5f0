//! What latent control of a diffusion model is made of, as plain data: the
//! latent pad's points and cursor, concept sliders, travel keyframes, and
//! the recipe an image made from them records. The blending itself is
//! `diffusion::latent_control`.

use serde::{Deserialize, Serialize};

/// Sliders along fixed noise directions the pad offers.
pub const NOISE_DIRECTIONS: usize = 4;

/// At most this many points on one pad.
pub const MAX_POINTS: usize = 8;

/// One point of the pad.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PadPoint {
    pub prompt: String,
    pub seed: u64,
    /// Position in [0, 1]², x to the right, y down.
    pub x: f64,
    pub y: f64,
}

/// A pad and where its cursor is: what an image made from it records.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PadRecipe {
    pub points: Vec<PadPoint>,
    pub at: (f64, f64),
}

impl PadRecipe {
    /// The four corners holding the given (prompt, seed)s, cursor in the middle.
    pub fn corners(corners: [(String, u64); 4]) -> Self {
        let spots = [(0.0, 0.0), (1.0, 0.0), (0.0, 1.0), (1.0, 1.0)];
        let points = corners.into_iter().zip(spots).map(|((prompt, seed), (x, y))| PadPoint { prompt, seed, x, y });
        Self { points: points.collect(), at: (0.5, 0.5) }
    }

    /// Checks the number of points and that positions are finite.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.points.is_empty() || self.points.len() > MAX_POINTS {
            return Err(format!("a pad holds 1 to {MAX_POINTS} points, not {}", self.points.len()));
        }
        let finite = |(x, y): (f64, f64)| x.is_finite() && y.is_finite();
        if !self.points.iter().all(|p| finite((p.x, p.y))) || !finite(self.at) {
            return Err("pad positions must be finite numbers".into());
        }
        Ok(())
    }

    /// Each point's weight at the cursor ([`blend_weights`]).
    pub fn weights(&self) -> Vec<f64> {
        let spots: Vec<(f64, f64)> = self.points.iter().map(|p| (p.x, p.y)).collect();
        blend_weights(&spots, self.at)
    }

    /// The point with the largest weight at the cursor (the first of equals):
    /// its prompt and seed name the image, and its seed drives the samplers'
    /// later noise, so a cursor on a point is that point's generation.
    pub fn lead(&self) -> &PadPoint {
        let weights = self.weights();
        let best = weights.iter().enumerate().fold(0, |best, (i, &w)| if w > weights[best] { i } else { best });
        &self.points[best]
    }
}

/// Shepard's inverse-distance weights (power 2) of `points` at `at`: they
/// sum to one, vary smoothly, and a cursor on a point gives it weight 1 and
/// the others exactly 0.
pub fn blend_weights(points: &[(f64, f64)], at: (f64, f64)) -> Vec<f64> {
    let d2: Vec<f64> = points.iter().map(|&(x, y)| (x - at.0).powi(2) + (y - at.1).powi(2)).collect();
    if let Some(hit) = d2.iter().position(|&d| d < 1e-12) {
        return (0..points.len()).map(|i| if i == hit { 1.0 } else { 0.0 }).collect();
    }
    let inverse: Vec<f64> = d2.iter().map(|d| 1.0 / d).collect();
    let total: f64 = inverse.iter().sum();
    inverse.iter().map(|v| v / total).collect()
}

/// One slider.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ConceptSlider {
    /// The direction's end: where positive values move.
    pub positive: String,
    /// The direction's start.
    pub negative: String,
    pub value: f64,
    /// The slider runs from −range to +range.
    #[serde(default = "default_range")]
    pub range: f64,
}

fn default_range() -> f64 {
    1.0
}

impl ConceptSlider {
    /// A slider at `value` with range 1.
    pub fn new(positive: &str, negative: &str, value: f64) -> Self {
        Self { positive: positive.into(), negative: negative.into(), value, range: 1.0 }
    }
}

/// One keyframe.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Keyframe {
    pub prompt: String,
    pub seed: u64,
    /// The concept sliders' values here, in the recipe's slider order
    /// (missing values are the sliders' own).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub concepts: Vec<f64>,
}

/// One frame of a travel: the whole path and where the frame lies on it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TravelFrame {
    pub keyframes: Vec<Keyframe>,
    /// 0-based.
    pub frame: usize,
    pub frames: usize,
}

impl TravelFrame {
    /// Checks that the frame lies on a path of at least one keyframe.
    pub fn validate(&self) -> Result<(), String> {
        if self.keyframes.is_empty() {
            return Err("a travel needs at least one keyframe".into());
        }
        if self.frames == 0 || self.frame >= self.frames {
            return Err(format!("frame {} of {} does not exist", self.frame, self.frames));
        }
        if self.keyframes.len() > 1 && self.frames < self.keyframes.len() {
            return Err(format!("{} frames cannot show {} keyframes", self.frames, self.keyframes.len()));
        }
        Ok(())
    }

    /// The segment (index of its first keyframe) and the position t ∈ [0, 1]
    /// along it. Frames are spread evenly over the path; the first frame is
    /// at t = 0 of the first segment and the last at t = 1 of the last, exactly.
    pub fn segment(&self) -> (usize, f64) {
        let segments = self.keyframes.len().saturating_sub(1);
        if segments == 0 || self.frames < 2 {
            return (0, 0.0);
        }
        let (num, den) = (self.frame * segments, self.frames - 1);
        let first = (num / den).min(segments - 1);
        (first, (num - first * den) as f64 / den as f64)
    }
}

/// At most this many frames in one travel (600 frames of 512² are 470 MB of pixels).
pub const MAX_TRAVEL_FRAMES: usize = 600;

/// A whole travel to render: its keyframes, the sliders their values
/// belong to, and its length and pace.
#[derive(Clone, Debug, PartialEq)]
pub struct TravelPlan {
    pub keyframes: Vec<Keyframe>,
    pub concepts: Vec<ConceptSlider>,
    pub frames: usize,
    pub fps: f64,
}

impl TravelPlan {
    /// Checks that the travel can be rendered, saying why not.
    pub fn validate(&self) -> Result<(), String> {
        if self.keyframes.len() < 2 || self.frames < self.keyframes.len() {
            return Err(format!(
                "a travel needs at least two keyframes and as many frames ({} keyframes, {} frames)",
                self.keyframes.len(),
                self.frames
            ));
        }
        if self.frames > MAX_TRAVEL_FRAMES {
            return Err(format!("{} frames is more than the {MAX_TRAVEL_FRAMES} a travel may have", self.frames));
        }
        if !(self.fps > 0.0 && self.fps <= 100.0) {
            return Err(format!("{} frames per second is outside (0, 100]", self.fps));
        }
        Ok(())
    }

    /// Frame `frame` of the travel.
    pub fn frame(&self, frame: usize) -> TravelFrame {
        TravelFrame { keyframes: self.keyframes.clone(), frame, frames: self.frames }
    }

    /// How long each frame shows, in milliseconds.
    pub fn delay_ms(&self) -> u32 {
        (1000.0 / self.fps).round() as u32
    }
}

/// The animation formats a travel is written in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum AnimationFormat {
    #[default]
    Gif,
    Apng,
}

impl AnimationFormat {
    /// The format a file name asks for (`.gif`, `.apng` or `.png`).
    pub fn from_path(path: &std::path::Path) -> Option<Self> {
        match path.extension()?.to_str()?.to_lowercase().as_str() {
            "gif" => Some(Self::Gif),
            "apng" | "png" => Some(Self::Apng),
            _ => None,
        }
    }

    /// The extension files of this format are saved with.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Gif => "gif",
            Self::Apng => "png",
        }
    }
}

/// How an image was made from latent controls, besides its sampling
/// settings: stored in its PNG, enough to make it again.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LatentRecipe {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pad: Option<PadRecipe>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub concepts: Vec<ConceptSlider>,
    /// A frame of a travel between keyframes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub travel: Option<TravelFrame>,
    /// Offsets of the starting noise along the fixed noise directions, in
    /// standard deviations (`diffusion::latent_control::directions`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub noise_directions: Vec<f64>,
}

impl LatentRecipe {
    /// Readable fields for A1111's infotext (our JSON chunk holds the exact recipe).
    pub fn infotext(&self) -> Vec<(String, String)> {
        let mut fields = Vec::new();
        let clean = |s: &str| s.replace('\n', " ");
        if let Some(pad) = &self.pad {
            let points: Vec<String> =
                pad.points.iter().map(|p| format!("{}@{}@{},{}", clean(&p.prompt), p.seed, p.x, p.y)).collect();
            fields.push(("Latent pad".to_owned(), format!("{} at {},{}", points.join(" | "), pad.at.0, pad.at.1)));
        }
        if !self.concepts.is_empty() {
            let sliders: Vec<String> = self
                .concepts
                .iter()
                .map(|c| format!("{}/{}={}", clean(&c.positive), clean(&c.negative), c.value))
                .collect();
            fields.push(("Concept sliders".to_owned(), sliders.join(" | ")));
        }
        if let Some(travel) = &self.travel {
            let keys: Vec<String> =
                travel.keyframes.iter().map(|k| format!("{}@{}", clean(&k.prompt), k.seed)).collect();
            fields.push((
                "Travel".to_owned(),
                format!("frame {} of {}: {}", travel.frame + 1, travel.frames, keys.join(" | ")),
            ));
        }
        fields
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_sum_to_one_and_a_point_takes_all() {
        let corners = [(0.0, 0.0), (1.0, 0.0), (0.0, 1.0), (1.0, 1.0)];
        for at in [(0.5, 0.5), (0.1, 0.7), (0.99, 0.01), (2.0, -1.0)] {
            let w = blend_weights(&corners, at);
            assert!((w.iter().sum::<f64>() - 1.0).abs() < 1e-12, "{at:?}: {w:?}");
            assert!(w.iter().all(|&v| v > 0.0));
        }
        assert_eq!(blend_weights(&corners, (1.0, 0.0)), [0.0, 1.0, 0.0, 0.0]);
        let centre = blend_weights(&corners, (0.5, 0.5));
        assert!(centre.iter().all(|&w| (w - 0.25).abs() < 1e-12));
    }

    fn path(keyframes: usize, frames: usize) -> Vec<(usize, f64)> {
        let keyframes = (0..keyframes).map(|i| Keyframe { prompt: format!("k{i}"), seed: i as u64, concepts: vec![] });
        let mut travel = TravelFrame { keyframes: keyframes.collect(), frame: 0, frames };
        (0..frames)
            .map(|f| {
                travel.frame = f;
                travel.segment()
            })
            .collect()
    }

    #[test]
    fn frames_start_and_end_on_keyframes() {
        assert_eq!(path(2, 5), [(0, 0.0), (0, 0.25), (0, 0.5), (0, 0.75), (0, 1.0)]);
        let three = path(3, 5);
        assert_eq!((three[0], three[2], three[4]), ((0, 0.0), (1, 0.0), (1, 1.0)));
        assert_eq!(path(1, 3), [(0, 0.0); 3]);
    }
}
