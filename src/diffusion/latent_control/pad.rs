//! The latent pad: up to [`MAX_POINTS`] points on a unit square, each a
//! prompt and a seed. The cursor's position gives every point a weight;
//! the image starts from the weighted spherical blend of the points'
//! noises under the weighted blend of their text conditionings (the
//! negative prompt is shared). On a point, that point's own generation.

use candle_core::{Result, Tensor};
use serde::{Deserialize, Serialize};

use crate::diffusion::sampling::Conditioning;

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

/// The point with the largest weight (the first of equals): its seed drives
/// the samplers' later noise, so a cursor on a point is that point's generation.
pub fn dominant(weights: &[f64]) -> usize {
    weights.iter().enumerate().fold(0, |best, (i, &w)| if w > weights[best] { i } else { best })
}

/// The weighted spherical blend of equally long noises: the weighted mean
/// direction, scaled to the weighted mean length, so the blend keeps the
/// length Gaussian noise has (a plain average of independent noises is
/// shorter, and samplers turn short noise into flat grey). For two equal
/// weights it is the slerp midpoint; with one weight 1, that noise exactly.
pub fn blend_noise(noises: &[&[f32]], weights: &[f64]) -> Vec<f32> {
    if let Some(one) = weights.iter().position(|&w| w == 1.0) {
        return noises[one].to_vec();
    }
    let len = noises.first().map_or(0, |n| n.len());
    let mut mean = vec![0f64; len];
    let mut length = 0f64;
    for (noise, &w) in noises.iter().zip(weights).filter(|(_, w)| **w != 0.0) {
        mean.iter_mut().zip(noise.iter()).for_each(|(m, &v)| *m += w * f64::from(v));
        length += w * noise.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>().sqrt();
    }
    let norm = mean.iter().map(|v| v * v).sum::<f64>().sqrt();
    let scale = if norm > 0.0 { length / norm } else { 0.0 };
    mean.iter().map(|v| (v * scale) as f32).collect()
}

/// The weighted blend of conditionings made with the same negative prompt
/// and settings: text states (and SDXL's added input) are averaged with the
/// weights; the negative prompt's row, present under guidance, is the
/// first's. With one weight 1, that conditioning exactly.
pub fn blend_conditioning(conds: &[&Conditioning], weights: &[f64]) -> Result<Conditioning> {
    if let Some(one) = weights.iter().position(|&w| w == 1.0) {
        return Ok(conds[one].clone());
    }
    let blend = |pick: &dyn Fn(&Conditioning) -> Option<&Tensor>| -> Result<Option<Tensor>> {
        let mut sum: Option<Tensor> = None;
        for (cond, &w) in conds.iter().zip(weights).filter(|(_, w)| **w != 0.0) {
            let Some(t) = pick(cond) else { return Ok(None) };
            let term = (t * w)?;
            sum = Some(match sum {
                Some(s) => (s + term)?,
                None => term,
            });
        }
        let (Some(sum), Some(first)) = (sum, conds.first().and_then(|c| pick(c))) else { return Ok(None) };
        // Guided: row 0 is the negative prompt's, shared by every point.
        if sum.dim(0)? == 2 {
            Ok(Some(Tensor::cat(&[&first.narrow(0, 0, 1)?, &sum.narrow(0, 1, 1)?], 0)?))
        } else {
            Ok(Some(sum))
        }
    };
    let Some(context) = blend(&|c| Some(&c.context))? else { candle_core::bail!("the pad has no points") };
    Ok(Conditioning { context, added: blend(&|c| c.added.as_ref())? })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::rng::SeededRng;

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
        assert_eq!(dominant(&blend_weights(&corners, (0.9, 0.8))), 3);
    }

    #[test]
    fn the_blend_keeps_the_noise_length() {
        let noises: Vec<Vec<f32>> = (0..4).map(|s| SeededRng::new(s).normal_vec(4096)).collect();
        let refs: Vec<&[f32]> = noises.iter().map(Vec::as_slice).collect();
        let length = |v: &[f32]| v.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>().sqrt();
        let blended = blend_noise(&refs, &[0.25; 4]);
        let mean_length = refs.iter().map(|n| length(n)).sum::<f64>() / 4.0;
        assert!((length(&blended) - mean_length).abs() < 1e-3 * mean_length);
        assert_eq!(blend_noise(&refs, &[0.0, 0.0, 1.0, 0.0]), noises[2], "a point's own noise, bit for bit");
    }
}
