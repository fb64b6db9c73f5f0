//! GEGLU, the gated activation of Stable Diffusion's transformer
//! feed-forward: the input's last dimension holds [value, gate] and the
//! output is value · GELU(gate), with GELU's exact (erf) form as diffusers
//! uses it. One CPU pass each way (f32/f64) instead of two strided slices,
//! a GELU and a product; candle ops elsewhere.

use candle_core::{CpuStorage, CustomOp1, D, DType, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use crate::nn::matrix::{Element, contiguous, cpu_slice};

/// value · GELU(gate) for `x` [..., 2·n] = [value | gate] → [..., n].
pub fn geglu(x: &Tensor) -> Result<Tensor> {
    let width = x.dim(D::Minus1)?;
    if width % 2 != 0 {
        candle_core::bail!("geglu: last dimension {width} is odd");
    }
    if x.device().is_cpu() && matches!(x.dtype(), DType::F32 | DType::F64) {
        return x.contiguous()?.apply_op1(Geglu { half: width / 2 });
    }
    let half = width / 2;
    x.narrow(D::Minus1, 0, half)? * x.narrow(D::Minus1, half, half)?.gelu_erf()?
}

struct Geglu {
    half: usize,
}

const FRAC_1_SQRT_2PI: f64 = 0.398_942_280_401_432_7;

/// (GELU(g), GELU′(g)) with GELU(g) = g·Φ(g).
fn gelu_and_slope<T: Element>(g: T) -> (T, T) {
    let half = T::from_f64(0.5);
    let cdf = half * (T::one() + (g * T::from_f64(std::f64::consts::FRAC_1_SQRT_2)).erf());
    let density = T::from_f64(FRAC_1_SQRT_2PI) * (T::zero() - half * g * g).exp();
    (g * cdf, cdf + g * density)
}

/// Rows per parallel task.
fn rows_per_task(half: usize) -> usize {
    (8_192 / half.max(1)).max(1)
}

impl Geglu {
    fn forward<T: Element>(&self, x: &[T]) -> Vec<T> {
        let n = self.half;
        let mut y = vec![T::zero(); x.len() / 2];
        y.par_chunks_mut(n).zip(x.par_chunks(2 * n)).with_min_len(rows_per_task(n)).for_each(|(y, x)| {
            let (value, gate) = x.split_at(n);
            T::geglu_row(y, value, gate);
        });
        y
    }

    fn backward<T: Element>(&self, x: &[T], dy: &[T]) -> Vec<T> {
        let n = self.half;
        let mut dx = vec![T::zero(); x.len()];
        let rows = dx.par_chunks_mut(2 * n).zip(x.par_chunks(2 * n)).zip(dy.par_chunks(n));
        rows.with_min_len(rows_per_task(n)).for_each(|((dx, x), dy)| {
            let (value, gate) = x.split_at(n);
            let (dvalue, dgate) = dx.split_at_mut(n);
            for i in 0..n {
                let (gelu, slope) = gelu_and_slope(gate[i]);
                dvalue[i] = dy[i] * gelu;
                dgate[i] = dy[i] * value[i] * slope;
            }
        });
        dx
    }

    fn backward_tensor<T: Element>(&self, x: &Tensor, dy: &Tensor) -> Result<Tensor> {
        let dy = dy.contiguous()?;
        let (xs, xl) = x.storage_and_layout();
        let (ds, dl) = dy.storage_and_layout();
        let dx = self.backward::<T>(cpu_slice(&xs, xl)?, cpu_slice(&ds, dl)?);
        Tensor::from_vec(dx, x.shape(), x.device())
    }
}

impl CustomOp1 for Geglu {
    fn name(&self) -> &'static str {
        "geglu"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let mut dims = layout.shape().dims().to_vec();
        if let Some(last) = dims.last_mut() {
            *last = self.half;
        }
        match storage {
            CpuStorage::F32(x) => Ok((CpuStorage::F32(self.forward(contiguous(x, layout)?)), Shape::from(dims))),
            CpuStorage::F64(x) => Ok((CpuStorage::F64(self.forward(contiguous(x, layout)?)), Shape::from(dims))),
            _ => candle_core::bail!("geglu supports f32 and f64"),
        }
    }

    fn bwd(&self, x: &Tensor, _y: &Tensor, dy: &Tensor) -> Result<Option<Tensor>> {
        match x.dtype() {
            DType::F32 => self.backward_tensor::<f32>(x, dy).map(Some),
            DType::F64 => self.backward_tensor::<f64>(x, dy).map(Some),
            other => candle_core::bail!("geglu: no backward pass for {other:?}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    #[test]
    fn matches_candle_ops_and_finite_differences() {
        let d = Device::Cpu;
        let x = Var::from_tensor(&Tensor::randn(0f64, 2.0, (3, 5, 8), &d).unwrap()).unwrap();
        let upstream = Tensor::randn(0f64, 1.0, (3, 5, 4), &d).unwrap();
        let flat = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f64>().unwrap();
        let y = geglu(&x).unwrap();
        let composed = (x.narrow(2, 0, 4).unwrap() * x.narrow(2, 4, 4).unwrap().gelu_erf().unwrap()).unwrap();
        let worst = flat(&y).iter().zip(flat(&composed)).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
        assert!(worst < 1e-12, "forward {worst}");
        // candle's own GELU gradient rounds 1/√(2π) to 0.398942, so the
        // backward pass is checked against central differences instead.
        let loss = |x: &Tensor| (geglu(x).unwrap() * &upstream).unwrap().sum_all().unwrap().to_scalar::<f64>().unwrap();
        let grad = flat((&y * &upstream).unwrap().sum_all().unwrap().backward().unwrap().get(&x).unwrap());
        let values = flat(&x);
        for i in 0..values.len() {
            let nudged = |h: f64| {
                let mut v = values.clone();
                v[i] += h;
                loss(&Tensor::from_vec(v, x.shape(), &d).unwrap())
            };
            let numeric = (nudged(1e-6) - nudged(-1e-6)) / 2e-6;
            assert!((numeric - grad[i]).abs() < 1e-7, "element {i}: {numeric} vs {}", grad[i]);
        }
    }

    #[test]
    fn f32_erf_is_within_its_bound() {
        for i in -400..=400 {
            let x = i as f32 * 0.01;
            let want = candle_core::cpu::erf::erf_f64(x as f64);
            assert!((Element::erf(x) as f64 - want).abs() < 5e-7, "erf({x})");
        }
    }
}
