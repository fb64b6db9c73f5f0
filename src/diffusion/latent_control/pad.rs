//! The latent pad (`spec::latent_control::PadRecipe`): up to `MAX_POINTS` points on a unit square, each a
//! prompt and a seed. The cursor's position gives every point a weight;
//! the image starts from the weighted spherical blend of the points'
//! noises under the weighted blend of their text conditionings (the
//! negative prompt is shared). On a point, that point's own generation.

use candle_core::{Result, Tensor};

use crate::diffusion::sampling::Conditioning;

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
