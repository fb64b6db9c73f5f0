//! Principal latent directions of a GAN in the manner of GANSpace (Härkönen
//! et al. 2020): sample many latents, take the principal components of the
//! generator's first hidden layer, and carry each component back to latent
//! space by linear regression. Moving a latent along such a direction moves
//! the first layer along a main axis of variation, which changes the image
//! in a consistent way (colour, shape, size…) whatever the starting latent.

use candle_core::{D, Device, Tensor};

use crate::gan::network::Generator;
use crate::io::directions::LatentDirections;
use crate::train::rng::SeededRng;

/// Rounds of subspace iteration for the principal components.
const ITERATIONS: usize = 40;

/// The `count` leading directions from `samples` latents drawn with `seed`.
pub fn principal_directions(
    generator: &Generator,
    latent_dim: usize,
    count: usize,
    samples: usize,
    seed: u64,
) -> candle_core::Result<LatentDirections> {
    let device = Device::Cpu;
    let count = count.clamp(1, latent_dim);
    let z = Tensor::from_vec(SeededRng::new(seed).normal_vec(samples * latent_dim), (samples, latent_dim), &device)?;
    let mut features = Vec::new();
    for start in (0..samples).step_by(500) {
        let z = z.narrow(0, start, 500.min(samples - start))?;
        features.push(generator.features(&z, false)?.flatten_from(1)?);
    }
    let x = Tensor::cat(&features, 0)?; // [samples, features]
    let x = x.broadcast_sub(&x.mean_keepdim(0)?)?;
    // Subspace iteration: Q ← orth(Xᵀ X Q) converges to the top eigenvectors of the covariance.
    let width = x.dim(1)?;
    let start = SeededRng::new(seed ^ 0x5EED).normal_vec(width * count);
    let mut q = orthonormal_columns(&Tensor::from_vec(start, (width, count), &device)?)?;
    for _ in 0..ITERATIONS {
        q = orthonormal_columns(&x.t()?.matmul(&x.matmul(&q)?)?)?;
    }
    // Rayleigh–Ritz: rotate within the subspace onto the eigenvectors of the
    // small projected covariance, so components come out ordered even where
    // the iteration has not separated close eigenvalues.
    let projected = x.matmul(&q)?;
    let small: Vec<Vec<f32>> = projected.t()?.matmul(&projected)?.to_vec2()?;
    let rotation = symmetric_eigenvectors(&small);
    let flat: Vec<f32> = rotation.iter().flatten().map(|&v| v as f32).collect();
    q = q.matmul(&Tensor::from_vec(flat, (count, count), &device)?)?;
    let coords = x.matmul(&q)?; // [samples, count]: each sample's principal coordinates
    let variance: Vec<f32> = coords.sqr()?.sum(0)?.to_vec1()?;
    let total = x.sqr()?.sum_all()?.to_scalar::<f32>()? as f64;
    // Least squares z ≈ coords · U; the columns of coords are orthogonal, so
    // each row of U is coordsᵢᵀ z / |coordsᵢ|².
    let u = coords.t()?.matmul(&z)?.broadcast_div(&coords.sqr()?.sum(0)?.unsqueeze(D::Minus1)?)?; // [count, latent]
    let vectors = orthonormal_columns(&u.t()?)?.t()?.to_vec2::<f32>()?;
    Ok(LatentDirections {
        method: format!(
            "GANSpace: principal components of the generator's first hidden layer ({width} values) over {samples} \
             latents, regressed to latent space and orthonormalised"
        ),
        samples,
        seed,
        explained_variance: variance.iter().map(|&v| f64::from(v) / total.max(f64::MIN_POSITIVE)).collect(),
        vectors,
    })
}

/// Eigenvectors of the symmetric matrix `a` as the columns of a k×k matrix
/// (row-major), ordered by decreasing eigenvalue (cyclic Jacobi rotations, in f64).
#[allow(clippy::needless_range_loop, reason = "rotations update two rows in step; indices read clearer")]
fn symmetric_eigenvectors(a: &[Vec<f32>]) -> Vec<Vec<f64>> {
    let k = a.len();
    let mut m: Vec<Vec<f64>> = a.iter().map(|r| r.iter().map(|&v| f64::from(v)).collect()).collect();
    let mut v: Vec<Vec<f64>> = (0..k).map(|i| (0..k).map(|j| f64::from(u8::from(i == j))).collect()).collect();
    for _sweep in 0..64 {
        let off: f64 = (0..k)
            .flat_map(|i| (0..k).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| m[i][j] * m[i][j])
            .sum();
        let scale: f64 = (0..k).map(|i| m[i][i] * m[i][i]).sum();
        if off <= 1e-24 * scale.max(f64::MIN_POSITIVE) {
            break;
        }
        for p in 0..k {
            for r in p + 1..k {
                if m[p][r] == 0.0 {
                    continue;
                }
                let theta = (m[r][r] - m[p][p]) / (2.0 * m[p][r]);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let (c, s) = (1.0 / (t * t + 1.0).sqrt(), t / (t * t + 1.0).sqrt());
                for row in m.iter_mut() {
                    let (x, y) = (row[p], row[r]);
                    row[p] = c * x - s * y;
                    row[r] = s * x + c * y;
                }
                for j in 0..k {
                    let (x, y) = (m[p][j], m[r][j]);
                    m[p][j] = c * x - s * y;
                    m[r][j] = s * x + c * y;
                }
                for row in v.iter_mut() {
                    let (x, y) = (row[p], row[r]);
                    row[p] = c * x - s * y;
                    row[r] = s * x + c * y;
                }
            }
        }
    }
    let mut order: Vec<usize> = (0..k).collect();
    order.sort_by(|&i, &j| m[j][j].total_cmp(&m[i][i]));
    (0..k).map(|row| order.iter().map(|&col| v[row][col]).collect()).collect()
}

/// Gram–Schmidt on the columns of `a` [n, k] (in f64), in order.
#[allow(clippy::needless_range_loop, reason = "column j is updated from columns before it")]
fn orthonormal_columns(a: &Tensor) -> candle_core::Result<Tensor> {
    let (n, k) = a.dims2()?;
    let rows: Vec<Vec<f32>> = a.to_vec2()?;
    let mut cols: Vec<Vec<f64>> = (0..k).map(|j| rows.iter().map(|r| f64::from(r[j])).collect()).collect();
    for j in 0..k {
        for i in 0..j {
            let proj: f64 = (0..n).map(|t| cols[j][t] * cols[i][t]).sum();
            for t in 0..n {
                cols[j][t] -= proj * cols[i][t];
            }
        }
        let norm = cols[j].iter().map(|v| v * v).sum::<f64>().sqrt().max(1e-30);
        cols[j].iter_mut().for_each(|v| *v /= norm);
    }
    let flat: Vec<f32> = (0..n).flat_map(|t| cols.iter().map(move |c| c[t] as f32)).collect();
    Tensor::from_vec(flat, (n, k), a.device())
}

#[cfg(test)]
mod tests {
    use candle_core::DType;
    use candle_nn::{VarBuilder, VarMap};

    use super::*;
    use crate::gan::network::GanConfig;

    #[test]
    fn directions_are_orthonormal_and_ordered_by_variance() {
        let cfg = GanConfig { latent_dim: 8, ..GanConfig::tiny() };
        let varmap = VarMap::new();
        let g = Generator::new(&cfg, VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu)).unwrap();
        let d = principal_directions(&g, cfg.latent_dim, 4, 600, 1).unwrap();
        assert_eq!(d.vectors.len(), 4);
        for (i, a) in d.vectors.iter().enumerate() {
            assert_eq!(a.len(), 8);
            for (j, b) in d.vectors.iter().enumerate() {
                let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
                let want = if i == j { 1.0 } else { 0.0 };
                assert!((dot - want).abs() < 1e-5, "u{i}·u{j} = {dot}");
            }
        }
        assert!(d.explained_variance.windows(2).all(|w| w[0] >= w[1]), "{:?}", d.explained_variance);
        assert!(d.explained_variance.iter().sum::<f64>() <= 1.0 + 1e-6);
    }

    #[test]
    fn jacobi_finds_eigenvectors_in_decreasing_order() {
        // Eigenvalues 3 and 1 with eigenvectors (1, 1)/√2 and (1, −1)/√2.
        let v = symmetric_eigenvectors(&[vec![2.0, 1.0], vec![1.0, 2.0]]);
        let h = std::f64::consts::FRAC_1_SQRT_2;
        assert!((v[0][0].abs() - h).abs() < 1e-9 && (v[1][0].abs() - h).abs() < 1e-9);
        assert!((v[0][0] - v[1][0]).abs() < 1e-9, "first column ∥ (1, 1)");
        assert!((v[0][1] + v[1][1]).abs() < 1e-9, "second column ∥ (1, −1)");
    }

    #[test]
    fn gram_schmidt_gives_orthonormal_columns() {
        let a = Tensor::new(&[[1f32, 1.0], [0.0, 1.0], [1.0, 0.0]], &Device::Cpu).unwrap();
        let q: Vec<Vec<f32>> = orthonormal_columns(&a).unwrap().to_vec2().unwrap();
        let col = |j: usize| q.iter().map(|r| r[j]).collect::<Vec<_>>();
        let dot = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>();
        assert!((dot(&col(0), &col(0)) - 1.0).abs() < 1e-6);
        assert!(dot(&col(0), &col(1)).abs() < 1e-6);
    }
}
