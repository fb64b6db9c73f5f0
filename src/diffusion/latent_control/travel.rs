//! Travel: keyframes of (prompt, seed, concept values); frames between two
//! keyframes start from the slerp of their noises under the linear blend of
//! their conditionings (`latent::interpolate::slerp`). The first and last frames are the keyframes' own
//! generations; with a deterministic sampler the frames morph smoothly.

use serde::{Deserialize, Serialize};

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

#[cfg(test)]
mod tests {
    use super::*;

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
