//! Layer and group normalisation, optionally followed by SiLU, as one op with
//! its own backward pass (fused CPU kernels in f32/f64, candle ops elsewhere).
//!
//! Why not candle_nn's: its fused `layer_norm` has no backward pass, so
//! gradients stop at every norm without an error (our first text encoder
//! never trained because of it), and its `GroupNorm` is a chain of broadcast
//! ops with a tensor allocated per step, then a separate SiLU.

use candle_core::{D, DType, Result, Shape, Tensor};
use candle_nn::VarBuilder;
use rayon::prelude::*;

use crate::nn::layer_op::{self, LayerKernels, Wanted};
use crate::nn::matrix::Element;

/// Which elements share one mean and variance.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NormKind {
    /// Each vector along the last dimension (LayerNorm).
    Layer,
    /// Each of `groups` consecutive channel groups of [batch, channels, …] (GroupNorm).
    Group(usize),
}

/// A normalisation layer with a per-channel gain `weight` and offset `bias`.
#[derive(Clone, Debug)]
pub struct Norm {
    weight: Tensor,
    bias: Tensor,
    kind: NormKind,
    eps: f64,
}

fn affine(channels: usize, vb: &VarBuilder) -> Result<(Tensor, Tensor)> {
    let weight = vb.get_with_hints(channels, "weight", candle_nn::Init::Const(1.0))?;
    let bias = vb.get_with_hints(channels, "bias", candle_nn::Init::Const(0.0))?;
    Ok((weight, bias))
}

/// LayerNorm over the last dimension of size `dim`.
pub fn layer_norm(dim: usize, eps: f64, vb: VarBuilder) -> Result<Norm> {
    let (weight, bias) = affine(dim, &vb)?;
    Ok(Norm { weight, bias, kind: NormKind::Layer, eps })
}

/// GroupNorm of `channels` channels in `groups` groups.
pub fn group_norm(groups: usize, channels: usize, eps: f64, vb: VarBuilder) -> Result<Norm> {
    if groups == 0 || !channels.is_multiple_of(groups) {
        candle_core::bail!("group norm: {channels} channels do not split into {groups} groups");
    }
    let (weight, bias) = affine(channels, &vb)?;
    Ok(Norm { weight, bias, kind: NormKind::Group(groups), eps })
}

/// How a contiguous tensor splits into normalised rows: row r holds
/// `channels_per_group` channels of `spatial` elements each, the first being
/// channel (r mod `groups`)·`channels_per_group`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Rows {
    groups: usize,
    channels_per_group: usize,
    spatial: usize,
}

impl Rows {
    fn len(&self) -> usize {
        self.channels_per_group * self.spatial
    }

    fn first_channel(&self, row: usize) -> usize {
        (row % self.groups) * self.channels_per_group
    }
}

impl Norm {
    /// The normalised input.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.apply(x, false)
    }

    /// SiLU of the normalised input, in the same pass.
    pub fn forward_silu(&self, x: &Tensor) -> Result<Tensor> {
        self.apply(x, true)
    }

    fn rows(&self, dims: &[usize]) -> Result<Rows> {
        let channels = self.weight.dim(0)?;
        match self.kind {
            NormKind::Layer if dims.last() == Some(&channels) => {
                Ok(Rows { groups: 1, channels_per_group: channels, spatial: 1 })
            }
            NormKind::Group(groups) if dims.len() >= 2 && dims[1] == channels => {
                Ok(Rows { groups, channels_per_group: channels / groups, spatial: dims[2..].iter().product() })
            }
            _ => candle_core::bail!("norm over {channels} channels cannot take an input of shape {dims:?}"),
        }
    }

    fn apply(&self, x: &Tensor, silu: bool) -> Result<Tensor> {
        let rows = self.rows(x.dims())?;
        if x.device().is_cpu() && matches!(x.dtype(), DType::F32 | DType::F64) {
            return layer_op::apply(NormOp { rows, eps: self.eps, silu }, x, &self.weight, &self.bias);
        }
        let y = self.composed(x, rows)?;
        if silu { candle_nn::ops::silu(&y) } else { Ok(y) }
    }

    /// The same maths as candle ops (GPUs; the reference in tests).
    fn composed(&self, x: &Tensor, rows: Rows) -> Result<Tensor> {
        let dims = x.dims();
        let grouped = x.reshape((x.elem_count() / rows.len(), rows.len()))?;
        let centred = grouped.broadcast_sub(&grouped.mean_keepdim(D::Minus1)?)?;
        let var = centred.sqr()?.mean_keepdim(D::Minus1)?;
        let normed = centred.broadcast_div(&(var + self.eps)?.sqrt()?)?.reshape(dims)?;
        let mut channel_shape = vec![1; dims.len()];
        match self.kind {
            NormKind::Layer => channel_shape[dims.len() - 1] = dims[dims.len() - 1],
            NormKind::Group(_) => channel_shape[1] = dims[1],
        }
        normed
            .broadcast_mul(&self.weight.reshape(channel_shape.as_slice())?)?
            .broadcast_add(&self.bias.reshape(channel_shape)?)
    }
}

/// Mean and 1/σ of one row, accumulated in f64.
fn moments<T: Element>(row: &[T], eps: f64) -> (f64, f64) {
    let (mean, var) = T::moments(row);
    (mean, 1.0 / (var + eps).sqrt())
}

/// Rows per parallel task: enough elements that scheduling is cheap.
fn rows_per_task(row_len: usize) -> usize {
    (16_384 / row_len.max(1)).max(1)
}

struct NormOp {
    rows: Rows,
    eps: f64,
    silu: bool,
}

impl LayerKernels for NormOp {
    fn name(&self) -> &'static str {
        "norm"
    }

    fn forward<T: Element>(&self, x: &[T], x_shape: &Shape, w: &[T], b: &[T]) -> Result<(Vec<T>, Shape)> {
        let (rows, len) = (self.rows, self.rows.len());
        let mut y = vec![T::zero(); x.len()];
        let chunks = y.par_chunks_mut(len).zip(x.par_chunks(len)).with_min_len(rows_per_task(len));
        chunks.enumerate().for_each(|(r, (y, x))| {
            let (mean, rstd) = moments(x, self.eps);
            let first = rows.first_channel(r);
            let affine = |c: usize| {
                let scale = w[first + c].to_f64() * rstd;
                (scale, b[first + c].to_f64() - mean * scale)
            };
            if rows.spatial == 1 && !self.silu {
                // Layer norm: one element per channel, too short for a row kernel call each.
                for (c, (y, &x)) in y.iter_mut().zip(x).enumerate() {
                    let (scale, shift) = affine(c);
                    *y = x * T::from_f64(scale) + T::from_f64(shift);
                }
                return;
            }
            for (c, (y, x)) in y.chunks_mut(rows.spatial).zip(x.chunks(rows.spatial)).enumerate() {
                let (scale, shift) = affine(c);
                T::affine_row(y, x, scale, shift, self.silu);
            }
        });
        Ok((y, x_shape.clone()))
    }

    fn backward<T: Element>(
        &self,
        x: &[T],
        w: &[T],
        b: &[T],
        _y: &[T],
        dy: &[T],
        _wanted: Wanted,
    ) -> (Option<Vec<T>>, Option<Vec<T>>, Vec<T>) {
        let (rows, len, cpg) = (self.rows, self.rows.len(), self.rows.channels_per_group);
        let mut dx = vec![T::zero(); x.len()];
        // Each row's share of dγ and dβ for its channels, summed in row order
        // afterwards so the result does not depend on scheduling.
        let mut partial = vec![0f64; x.len() / len * 2 * cpg];
        let tasks =
            dx.par_chunks_mut(len).zip(partial.par_chunks_mut(2 * cpg)).zip(x.par_chunks(len)).zip(dy.par_chunks(len));
        tasks.with_min_len(rows_per_task(len)).enumerate().for_each(|(r, (((dx, partial), x), dy))| {
            let (mean, rstd) = moments(x, self.eps);
            let first = rows.first_channel(r);
            let (mut sum_dxhat, mut sum_dxhat_xhat) = (0f64, 0f64);
            // Pass 1: dx holds ∂L/∂x̂ for now.
            for c in 0..cpg {
                let (gain, offset) = (w[first + c].to_f64(), b[first + c].to_f64());
                let span = c * rows.spatial..(c + 1) * rows.spatial;
                let (mut dgain, mut doffset) = (0f64, 0f64);
                for ((dx, &x), &dy) in dx[span.clone()].iter_mut().zip(&x[span.clone()]).zip(&dy[span]) {
                    let xhat = (x.to_f64() - mean) * rstd;
                    let mut da = dy.to_f64();
                    if self.silu {
                        let a = gain * xhat + offset;
                        let s = 1.0 / (1.0 + (-a).exp());
                        da *= s * (1.0 + a * (1.0 - s));
                    }
                    dgain += da * xhat;
                    doffset += da;
                    let dxhat = da * gain;
                    sum_dxhat += dxhat;
                    sum_dxhat_xhat += dxhat * xhat;
                    *dx = T::from_f64(dxhat);
                }
                partial[c] = dgain;
                partial[cpg + c] = doffset;
            }
            let (m1, m2) = (sum_dxhat / len as f64, sum_dxhat_xhat / len as f64);
            for (dx, &x) in dx.iter_mut().zip(x) {
                let xhat = (x.to_f64() - mean) * rstd;
                *dx = T::from_f64(rstd * (dx.to_f64() - m1 - xhat * m2));
            }
        });
        let (mut dw, mut db) = (vec![0f64; w.len()], vec![0f64; w.len()]);
        for (r, partial) in partial.chunks_exact(2 * cpg).enumerate() {
            let first = rows.first_channel(r);
            for c in 0..cpg {
                dw[first + c] += partial[c];
                db[first + c] += partial[cpg + c];
            }
        }
        let back = |v: Vec<f64>| -> Vec<T> { v.into_iter().map(T::from_f64).collect() };
        (Some(dx), Some(back(dw)), back(db))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    fn check(kind: NormKind, shape: &[usize], silu: bool) {
        let d = Device::Cpu;
        let channels = if kind == NormKind::Layer { shape[shape.len() - 1] } else { shape[1] };
        let x = Var::from_tensor(&Tensor::randn(0.5f64, 2.0, shape, &d).unwrap()).unwrap();
        let weight = Var::from_tensor(&Tensor::randn(1.0f64, 0.3, channels, &d).unwrap()).unwrap();
        let bias = Var::from_tensor(&Tensor::randn(0.0f64, 0.3, channels, &d).unwrap()).unwrap();
        let norm = Norm { weight: weight.as_tensor().clone(), bias: bias.as_tensor().clone(), kind, eps: 1e-5 };
        let upstream = Tensor::randn(0.0f64, 1.0, shape, &d).unwrap();
        let run = |y: Tensor| {
            let grads = (y.clone() * &upstream).unwrap().sum_all().unwrap().backward().unwrap();
            let g = |v: &Var| grads.get(v.as_tensor()).unwrap().flatten_all().unwrap().to_vec1::<f64>().unwrap();
            (y.flatten_all().unwrap().to_vec1::<f64>().unwrap(), g(&x), g(&weight), g(&bias))
        };
        let fused = run(norm.apply(&x, silu).unwrap());
        let reference = norm.composed(&x, norm.rows(shape).unwrap()).unwrap();
        let reference = run(if silu { candle_nn::ops::silu(&reference).unwrap() } else { reference });
        for (name, a, b) in [
            ("y", &fused.0, &reference.0),
            ("dx", &fused.1, &reference.1),
            ("dγ", &fused.2, &reference.2),
            ("dβ", &fused.3, &reference.3),
        ] {
            let worst = a.iter().zip(b.iter()).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
            assert!(worst < 1e-10, "{kind:?} silu={silu} {name}: worst difference {worst}");
        }
    }

    #[test]
    fn fused_norms_and_their_gradients_match_candle_ops() {
        check(NormKind::Layer, &[3, 5, 8], false);
        check(NormKind::Layer, &[4, 6], true);
        check(NormKind::Group(2), &[2, 6, 3, 4], true);
        check(NormKind::Group(3), &[3, 6, 5], false);
    }

    #[test]
    fn f32_matches_f64() {
        let d = Device::Cpu;
        let x = Tensor::randn(0f32, 3.0, (2, 8, 4, 4), &d).unwrap();
        let vb = VarBuilder::zeros(DType::F32, &d);
        let norm = group_norm(4, 8, 1e-6, vb).unwrap();
        let norm = Norm { weight: Tensor::ones(8, DType::F32, &d).unwrap(), ..norm };
        let y32 = norm.forward_silu(&x).unwrap().to_dtype(DType::F64).unwrap();
        let norm64 = Norm {
            weight: norm.weight.to_dtype(DType::F64).unwrap(),
            bias: norm.bias.to_dtype(DType::F64).unwrap(),
            ..norm.clone()
        };
        let y64 = norm64.forward_silu(&x.to_dtype(DType::F64).unwrap()).unwrap();
        let worst = (y32 - y64).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f64>().unwrap();
        assert!(worst < 1e-5, "{worst}");
    }
}
