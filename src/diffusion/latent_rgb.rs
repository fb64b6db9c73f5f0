//! Previews of large images without the decoder: a linear map from latent
//! channels to RGB, fitted once per model on the decoder's own output, so a
//! preview costs one multiply per latent position (one pixel each).

use candle_core::{Device, Tensor};
use image::RgbImage;

use crate::diffusion::autoencoder::Autoencoder;
use crate::train::rng::SeededRng;

/// A linear map from latent channels to RGB, fitted once per model on the
/// decoder's own output, so previews of large images cost nothing.
pub(crate) struct LatentRgb {
    /// [rgb][channel + bias].
    weights: Vec<Vec<f64>>,
}

impl LatentRgb {
    pub(crate) fn fit(vae: &Autoencoder, channels: usize, device: &Device) -> candle_core::Result<Self> {
        let f = vae.config().downscale();
        let side = 8;
        let latents = Tensor::from_vec(
            SeededRng::new(7).normal_vec(4 * channels * side * side),
            (4, channels, side, side),
            device,
        )?;
        let images = vae.decode(&vae.from_diffusion(&latents)?)?.clamp(-1.0, 1.0)?;
        // Mean colour of each latent position's f × f block.
        let blocks = images.avg_pool2d((f, f))?.permute((0, 2, 3, 1))?.reshape(((), 3))?;
        let targets: Vec<Vec<f32>> = blocks.to_vec2()?;
        let inputs: Vec<Vec<f32>> = latents.permute((0, 2, 3, 1))?.reshape(((), channels))?.to_vec2()?;
        let n = channels + 1;
        // Normal equations with a little ridge, solved by Gaussian elimination.
        let mut ata = vec![vec![0.0f64; n]; n];
        let mut atb = vec![vec![0.0f64; 3]; n];
        for (x, y) in inputs.iter().zip(&targets) {
            let row: Vec<f64> = x.iter().map(|v| *v as f64).chain([1.0]).collect();
            for a in 0..n {
                for b in 0..n {
                    ata[a][b] += row[a] * row[b];
                }
                for c in 0..3 {
                    atb[a][c] += row[a] * y[c] as f64;
                }
            }
        }
        for (a, row) in ata.iter_mut().enumerate() {
            row[a] += 1e-3;
        }
        let solution = solve(ata, atb);
        Ok(Self { weights: (0..3).map(|c| solution.iter().map(|r| r[c]).collect()).collect() })
    }

    pub(crate) fn project(&self, latents: &Tensor) -> candle_core::Result<RgbImage> {
        let (_, c, h, w) = latents.dims4()?;
        let data: Vec<f32> = latents.narrow(0, 0, 1)?.flatten_all()?.to_vec1()?;
        let mut img = RgbImage::new(w as u32, h as u32);
        for y in 0..h {
            for x in 0..w {
                let rgb = self.weights.iter().map(|wts| {
                    let v: f64 = (0..c).map(|k| wts[k] * data[k * h * w + y * w + x] as f64).sum::<f64>() + wts[c];
                    ((v.clamp(-1.0, 1.0) + 1.0) * 127.5).round() as u8
                });
                let rgb: Vec<u8> = rgb.collect();
                img.put_pixel(x as u32, y as u32, image::Rgb([rgb[0], rgb[1], rgb[2]]));
            }
        }
        Ok(img)
    }
}

/// Solves A·X = B (A n×n, B n×m) by Gaussian elimination with partial pivoting.
fn solve(mut a: Vec<Vec<f64>>, mut b: Vec<Vec<f64>>) -> Vec<Vec<f64>> {
    let n = a.len();
    for col in 0..n {
        let pivot = (col..n).max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs())).unwrap_or(col);
        a.swap(col, pivot);
        b.swap(col, pivot);
        for row in col + 1..n {
            let f = a[row][col] / a[col][col];
            let (upper, lower) = a.split_at_mut(row);
            for (target, &pivot_value) in lower[0][col..n].iter_mut().zip(&upper[col][col..n]) {
                *target -= f * pivot_value;
            }
            for k in 0..b[row].len() {
                b[row][k] -= f * b[col][k];
            }
        }
    }
    for col in (0..n).rev() {
        for k in 0..b[col].len() {
            let s: f64 = (col + 1..n).map(|j| a[col][j] * b[j][k]).sum();
            b[col][k] = (b[col][k] - s) / a[col][col];
        }
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaussian_elimination_solves_a_small_system() {
        let a = vec![vec![2.0, 1.0, 0.0], vec![1.0, 3.0, 1.0], vec![0.0, 1.0, 4.0]];
        let x = [[1.0, -1.0], [2.0, 0.5], [-3.0, 2.0]];
        let b: Vec<Vec<f64>> =
            (0..3).map(|i| (0..2).map(|k| (0..3).map(|j| a[i][j] * x[j][k]).sum()).collect()).collect();
        let got = solve(a, b);
        for i in 0..3 {
            for k in 0..2 {
                assert!((got[i][k] - x[i][k]).abs() < 1e-12);
            }
        }
    }
}
