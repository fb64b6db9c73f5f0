//! Batch normalisation in training mode, followed by an activation, as one op
//! with its own backward pass (fused CPU kernels in f32/f64; candle_nn's
//! composed ops elsewhere). The weights and running statistics are
//! candle_nn's `BatchNorm`'s, so checkpoints do not change.
//!
//! Why: candle_nn's training forward is a chain of transposes, broadcasts and
//! reductions, each with its own tensor, and autograd differentiates every
//! link; in the DCGAN generator that chain and the separate ReLU cost as
//! much as a convolution.

use candle_core::{CpuStorage, InplaceOp1, Layout, Result, Shape, Tensor};
use candle_nn::{BatchNorm, ModuleT};
use rayon::prelude::*;

use crate::nn::epilogue::{Activation, Side, with_side};
use crate::nn::layer_op::{self, LayerKernels, Wanted};
use crate::nn::matrix::{Element, cpu_slice};

/// `activation(bn(x))` with the batch's statistics, updating `bn`'s running
/// mean and variance as candle_nn does (momentum, unbiased variance).
/// `x`: [batch, channels, …].
pub fn train_forward(bn: &BatchNorm, x: &Tensor, activation: Activation) -> Result<Tensor> {
    let Some((weight, bias)) = bn.weight_and_bias() else { candle_core::bail!("batch norm without weight and bias") };
    let fused = x.device().is_cpu() && x.dtype() == weight.dtype() && x.rank() >= 2;
    if !fused || !matches!(x.dtype(), candle_core::DType::F32 | candle_core::DType::F64) {
        let y = bn.forward_t(x, true)?;
        return match activation {
            Activation::Identity => Ok(y),
            Activation::Relu => y.relu(),
            Activation::LeakyRelu(slope) => y.maximum(&(&y * slope)?),
        };
    }
    let channels = weight.dim(0)?;
    if x.dim(1)? != channels {
        candle_core::bail!("batch norm over {channels} channels cannot take an input of shape {:?}", x.dims());
    }
    let x = x.contiguous()?;
    let plane = x.dims()[2..].iter().product::<usize>();
    let stats = {
        let (storage, layout) = x.storage_and_layout();
        match x.dtype() {
            candle_core::DType::F32 => channel_moments(cpu_slice::<f32>(&storage, layout)?, channels, plane),
            _ => channel_moments(cpu_slice::<f64>(&storage, layout)?, channels, plane),
        }
    };
    let count = x.elem_count() / channels;
    let momentum = bn.momentum();
    let unbiased = count as f64 / (count.max(2) - 1) as f64;
    bn.running_mean().inplace_op1(&RunningUpdate { momentum, values: stats.iter().map(|s| s.0).collect() })?;
    bn.running_var()
        .inplace_op1(&RunningUpdate { momentum, values: stats.iter().map(|s| s.1 * unbiased).collect() })?;
    let rstd = stats.iter().map(|&(mean, var)| (mean, 1.0 / (var + bn.eps()).sqrt())).collect();
    layer_op::apply(BatchNormOp { stats: rstd, plane, activation }, &x, weight, bias)
}

/// Mean and population variance of each channel of `x` [batch, channels,
/// plane], accumulated in f64: per plane, then combined (the same numbers
/// whatever the thread count).
fn channel_moments<T: Element>(x: &[T], channels: usize, plane: usize) -> Vec<(f64, f64)> {
    let batch = x.len() / (channels * plane).max(1);
    (0..channels)
        .into_par_iter()
        .map(|c| {
            let planes: Vec<(f64, f64)> =
                (0..batch).map(|n| T::moments(&x[(n * channels + c) * plane..][..plane])).collect();
            let mean = planes.iter().map(|p| p.0).sum::<f64>() / batch as f64;
            // Within-plane variance plus the spread of the plane means.
            let var = planes.iter().map(|&(m, v)| v + (m - mean) * (m - mean)).sum::<f64>() / batch as f64;
            (mean, var)
        })
        .collect()
}

/// `running ← (1 − momentum)·running + momentum·value`, in place.
struct RunningUpdate {
    momentum: f64,
    values: Vec<f64>,
}

impl InplaceOp1 for RunningUpdate {
    fn name(&self) -> &'static str {
        "batch-norm-running-update"
    }

    fn cpu_fwd(&self, storage: &mut CpuStorage, layout: &Layout) -> Result<()> {
        let Some((start, end)) = layout.contiguous_offsets().filter(|(s, e)| e - s == self.values.len()) else {
            candle_core::bail!("batch norm: running statistics of an unexpected shape {:?}", layout.shape())
        };
        let update = |old: f64, value: f64| old * (1.0 - self.momentum) + value * self.momentum;
        match storage {
            CpuStorage::F32(data) => {
                data[start..end].iter_mut().zip(&self.values).for_each(|(o, &v)| *o = update(f64::from(*o), v) as f32);
            }
            CpuStorage::F64(data) => {
                data[start..end].iter_mut().zip(&self.values).for_each(|(o, &v)| *o = update(*o, v));
            }
            _ => candle_core::bail!("batch norm: running statistics must be f32 or f64"),
        }
        Ok(())
    }
}

/// The normalisation with the batch's (mean, 1/σ) per channel, then the activation.
struct BatchNormOp {
    stats: Vec<(f64, f64)>,
    plane: usize,
    activation: Activation,
}

impl BatchNormOp {
    /// (scale, shift) of channel `c`: y = x·scale + shift before the activation.
    fn affine<T: Element>(&self, c: usize, w: &[T], b: &[T]) -> (T, T) {
        let (mean, rstd) = self.stats[c];
        let scale = w[c].to_f64() * rstd;
        (T::from_f64(scale), T::from_f64(b[c].to_f64() - mean * scale))
    }
}

impl LayerKernels for BatchNormOp {
    fn name(&self) -> &'static str {
        "batch-norm"
    }

    fn forward<T: Element>(&self, x: &[T], x_shape: &Shape, w: &[T], b: &[T]) -> Result<(Vec<T>, Shape)> {
        let channels = self.stats.len();
        if w.len() != channels || b.len() != channels || !x.len().is_multiple_of(channels * self.plane) {
            candle_core::bail!("batch norm: {channels} channels of {} do not fit {x_shape:?}", self.plane);
        }
        let mut y = vec![T::default(); x.len()];
        with_side!(self.activation, T, |side| {
            y.par_chunks_mut(self.plane).zip(x.par_chunks(self.plane)).enumerate().for_each(|(i, (y, x))| {
                let (scale, shift) = self.affine(i % channels, w, b);
                for (y, &x) in y.iter_mut().zip(x) {
                    *y = side.value(x * scale + shift);
                }
            })
        });
        Ok((y, x_shape.clone()))
    }

    fn backward<T: Element>(
        &self,
        x: &[T],
        w: &[T],
        _b: &[T],
        y: &[T],
        dy: &[T],
        _wanted: Wanted,
    ) -> (Option<Vec<T>>, Option<Vec<T>>, Vec<T>) {
        with_side!(self.activation, T, |side| self.gradients(side, x, w, y, dy))
    }
}

impl BatchNormOp {
    /// (dx, dγ, dβ) with the activation's derivative `side`.
    fn gradients<T: Element, S: Side<T>>(
        &self,
        side: S,
        x: &[T],
        w: &[T],
        y: &[T],
        dy: &[T],
    ) -> (Option<Vec<T>>, Option<Vec<T>>, Vec<T>) {
        let (channels, plane) = (self.stats.len(), self.plane);
        let batch = x.len() / (channels * plane);
        // The gradient at the normalised value: dy through the activation.
        let g = |y: T, dy: T| side.backward(y, dy);
        // Per channel, in order: Σg and Σg·x̂ (these are dβ and dγ); each
        // plane is summed in T over 8 lanes (so it vectorises), planes in f64.
        let sums: Vec<(f64, f64)> = (0..channels)
            .into_par_iter()
            .map(|c| {
                let (mean, rstd) = self.stats[c];
                let mean_t = T::from_f64(mean);
                let (mut sum, mut sum_centred) = (0f64, 0f64);
                for n in 0..batch {
                    let at = (n * channels + c) * plane;
                    let (x, y, dy) = (&x[at..][..plane], &y[at..][..plane], &dy[at..][..plane]);
                    let (mut s, mut sc) = ([T::default(); 8], [T::default(); 8]);
                    let lanes = x.chunks(8).zip(y.chunks(8)).zip(dy.chunks(8));
                    for ((x, y), dy) in lanes {
                        for l in 0..x.len() {
                            let g = g(y[l], dy[l]);
                            s[l] += g;
                            sc[l] += g * (x[l] - mean_t);
                        }
                    }
                    sum += s.iter().map(|v| v.to_f64()).sum::<f64>();
                    sum_centred += sc.iter().map(|v| v.to_f64()).sum::<f64>();
                }
                (sum, sum_centred * rstd)
            })
            .collect();
        let count = (batch * plane) as f64;
        // dx = γ·rstd·(g − mean(g) − x̂·mean(g·x̂)) = a·g − b·x + c per channel.
        let coefficients: Vec<(T, T, T)> = (0..channels)
            .map(|c| {
                let (mean, rstd) = self.stats[c];
                let (m1, m2) = (sums[c].0 / count, sums[c].1 / count);
                let gain = w[c].to_f64() * rstd;
                let b = gain * m2 * rstd;
                (T::from_f64(gain), T::from_f64(b), T::from_f64(b * mean - gain * m1))
            })
            .collect();
        let mut dx = vec![T::default(); x.len()];
        let parts =
            dx.par_chunks_mut(plane).zip(x.par_chunks(plane)).zip(y.par_chunks(plane)).zip(dy.par_chunks(plane));
        parts.enumerate().for_each(|(i, (((dx, x), y), dy))| {
            let (a, b, c) = coefficients[i % channels];
            for (((dx, &x), &y), &dy) in dx.iter_mut().zip(x).zip(y).zip(dy) {
                *dx = a * g(y, dy) + c - b * x;
            }
        });
        let dw = sums.iter().map(|s| T::from_f64(s.1)).collect();
        let db = sums.iter().map(|s| T::from_f64(s.0)).collect();
        (Some(dx), Some(dw), db)
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{DType, Device, Var};
    use candle_nn::{BatchNormConfig, VarBuilder, VarMap};

    use super::*;

    /// A batch norm with random weights (f64) and its variables.
    fn batch_norm(channels: usize, varmap: &VarMap) -> BatchNorm {
        let vb = VarBuilder::from_varmap(varmap, DType::F64, &Device::Cpu);
        let config = BatchNormConfig { eps: 1e-5, remove_mean: true, affine: true, momentum: 0.1 };
        let bn = candle_nn::batch_norm(channels, config, vb).unwrap();
        let (w, b) = bn.weight_and_bias().unwrap();
        for (t, mean) in [(w, 1.0), (b, 0.0)] {
            let values = Tensor::randn(mean, 0.3, channels, &Device::Cpu).unwrap();
            Var::from_tensor(t).unwrap().set(&values).unwrap();
        }
        bn
    }

    #[test]
    fn fused_batch_norm_and_its_gradients_match_candle_nn() {
        for (shape, activation) in [
            (vec![4usize, 3, 5, 5], Activation::Relu),
            (vec![3, 6, 4], Activation::Identity),
            (vec![5, 2, 3, 3], Activation::LeakyRelu(0.2)),
        ] {
            let channels = shape[1];
            let (ours_map, theirs_map) = (VarMap::new(), VarMap::new());
            let (ours, theirs) = (batch_norm(channels, &ours_map), batch_norm(channels, &theirs_map));
            let (a, b) = (ours.weight_and_bias().unwrap(), theirs.weight_and_bias().unwrap());
            Var::from_tensor(b.0).unwrap().set(a.0).unwrap();
            Var::from_tensor(b.1).unwrap().set(a.1).unwrap();
            let x = Var::from_tensor(&Tensor::randn(0.5f64, 2.0, shape.as_slice(), &Device::Cpu).unwrap()).unwrap();
            let upstream = Tensor::randn(0.0f64, 1.0, shape.as_slice(), &Device::Cpu).unwrap();
            let run = |bn: &BatchNorm, y: Tensor| {
                let grads = (y.clone() * &upstream).unwrap().sum_all().unwrap().backward().unwrap();
                let (w, b) = bn.weight_and_bias().unwrap();
                let flat = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f64>().unwrap();
                let g = |t: &Tensor| flat(grads.get(t).unwrap());
                [flat(&y), g(x.as_tensor()), g(w), g(b), flat(bn.running_mean()), flat(bn.running_var())]
            };
            let fused = run(&ours, train_forward(&ours, &x, activation).unwrap());
            let composed = theirs.forward_t(&x, true).unwrap();
            let composed = match activation {
                Activation::Identity => composed,
                Activation::Relu => composed.relu().unwrap(),
                Activation::LeakyRelu(s) => composed.maximum(&(&composed * s).unwrap()).unwrap(),
            };
            let reference = run(&theirs, composed);
            let names = ["y", "dx", "dγ", "dβ", "running mean", "running var"];
            for (name, (a, b)) in names.iter().zip(fused.iter().zip(&reference)) {
                let worst = a.iter().zip(b).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
                assert!(worst < 1e-10, "{shape:?} {activation:?} {name}: worst difference {worst}");
            }
        }
    }
}
