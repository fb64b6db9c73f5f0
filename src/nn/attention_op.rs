//! Multi-head scaled dot-product attention as one op. On the CPU (f32/f64)
//! each task takes a block of query rows and, head by head, computes their
//! scores against every key, the softmax and the weighted sum of values in a
//! small per-thread buffer, so the [batch, heads, queries, keys] score tensor
//! (64 MB per call for SD's 64×64 latents) never exists. The backward pass
//! recomputes the probabilities with candle ops; elsewhere than the CPU the
//! whole computation is candle ops.

use candle_core::{CpuStorage, CustomOp3, D, DType, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use crate::nn::matrix::{Element, MatRef, Threads, contiguous, matmul};

/// softmax(q·kᵀ/√d [+ causal mask])·v for q [b, n, heads·d] and k, v [b, m, heads·d],
/// heads side by side in the last dimension as linear layers produce them → [b, n, heads·d].
pub fn attention(q: &Tensor, k: &Tensor, v: &Tensor, heads: usize, causal: bool) -> Result<Tensor> {
    let (batch, queries, width) = q.dims3()?;
    let (kb, keys, kw) = k.dims3()?;
    if heads == 0 || width % heads != 0 || (kb, kw) != (batch, width) || k.dims() != v.dims() {
        candle_core::bail!("attention: q {:?}, k {:?}, v {:?} do not fit {heads} heads", q.dims(), k.dims(), v.dims());
    }
    if causal && keys != queries {
        candle_core::bail!("attention: a causal mask needs as many keys as queries");
    }
    let op = AttentionOp { batch, queries, keys, heads, head_dim: width / heads, causal };
    if q.device().is_cpu() && matches!(q.dtype(), DType::F32 | DType::F64) {
        q.contiguous()?.apply_op3(&k.contiguous()?, &v.contiguous()?, op)
    } else {
        let (qh, kh, vh) = (op.split(q, queries)?, op.split(k, keys)?, op.split(v, keys)?);
        op.merge(&op.probabilities(&qh, &kh)?.matmul(&vh)?, queries)
    }
}

#[derive(Clone, Copy, Debug)]
struct AttentionOp {
    batch: usize,
    queries: usize,
    keys: usize,
    heads: usize,
    head_dim: usize,
    causal: bool,
}

/// Query rows per task: their scores (rows × keys) stay in cache.
const BLOCK_ROWS: usize = 64;

impl AttentionOp {
    fn width(&self) -> usize {
        self.heads * self.head_dim
    }

    fn scale(&self) -> f64 {
        1.0 / (self.head_dim as f64).sqrt()
    }

    /// [b, rows, heads·d] → [b, heads, rows, d].
    fn split(&self, t: &Tensor, rows: usize) -> Result<Tensor> {
        t.reshape((self.batch, rows, self.heads, self.head_dim))?.transpose(1, 2)?.contiguous()
    }

    /// [b, heads, rows, d] → [b, rows, heads·d].
    fn merge(&self, t: &Tensor, rows: usize) -> Result<Tensor> {
        t.transpose(1, 2)?.reshape((self.batch, rows, self.width()))
    }

    /// softmax(q·kᵀ/√d + mask) for split q, k: [b, heads, n, m].
    fn probabilities(&self, q: &Tensor, k: &Tensor) -> Result<Tensor> {
        let mut scores = (q.matmul(&k.t()?)? * self.scale())?;
        if self.causal {
            let n = self.queries;
            let mask: Vec<f64> =
                (0..n).flat_map(|i| (0..n).map(move |j| if j > i { f64::NEG_INFINITY } else { 0.0 })).collect();
            let mask = Tensor::from_vec(mask, (n, n), q.device())?.to_dtype(q.dtype())?;
            scores = scores.broadcast_add(&mask)?;
        }
        candle_nn::ops::softmax_last_dim(&scores)
    }

    fn forward<T: Element>(&self, q: &[T], k: &[T], v: &[T]) -> Vec<T> {
        let (width, d, keys) = (self.width(), self.head_dim, self.keys);
        let scale = T::from_f64(self.scale());
        let mut out = vec![T::zero(); self.batch * self.queries * width];
        let per_batch = out.par_chunks_mut(self.queries * width).zip(q.par_chunks(self.queries * width));
        per_batch.enumerate().for_each(|(b, (out, q))| {
            let (k, v) = (&k[b * keys * width..(b + 1) * keys * width], &v[b * keys * width..(b + 1) * keys * width]);
            out.par_chunks_mut(BLOCK_ROWS * width).enumerate().for_each(|(block, out)| {
                let (first, rows) = (block * BLOCK_ROWS, out.len() / width);
                T::with_scratch(rows * keys, |scores| {
                    for h in 0..self.heads {
                        let qm = MatRef::strided(&q[first * width + h * d..], rows, d, width);
                        let km = MatRef::strided(&k[h * d..], keys, d, width);
                        matmul(scores, keys, qm, km.t(), false, Threads::One);
                        for (i, row) in scores.chunks_exact_mut(keys).enumerate() {
                            // Keys after the query's own position get probability 0.
                            let visible = if self.causal { first + i + 1 } else { keys };
                            T::softmax(&mut row[..visible], scale);
                            row[visible..].iter_mut().for_each(|s| *s = T::zero());
                        }
                        let vm = MatRef::strided(&v[h * d..], keys, d, width);
                        matmul(&mut out[h * d..], width, MatRef::new(scores, rows, keys), vm, false, Threads::One);
                    }
                });
            });
        });
        out
    }
}

impl CustomOp3 for AttentionOp {
    fn name(&self) -> &'static str {
        "attention"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let shape = Shape::from((self.batch, self.queries, self.width()));
        match (s1, s2, s3) {
            (CpuStorage::F32(q), CpuStorage::F32(k), CpuStorage::F32(v)) => {
                let out = self.forward(contiguous(q, l1)?, contiguous(k, l2)?, contiguous(v, l3)?);
                Ok((CpuStorage::F32(out), shape))
            }
            (CpuStorage::F64(q), CpuStorage::F64(k), CpuStorage::F64(v)) => {
                let out = self.forward(contiguous(q, l1)?, contiguous(k, l2)?, contiguous(v, l3)?);
                Ok((CpuStorage::F64(out), shape))
            }
            _ => candle_core::bail!("attention supports f32 and f64 inputs of one dtype"),
        }
    }

    /// With P = softmax(S), S = q·kᵀ/√d: dv = Pᵀ·do, dP = do·vᵀ,
    /// dS = P ⊙ (dP − rowsum(dP ⊙ P)), dq = dS·k/√d, dk = dSᵀ·q/√d.
    fn bwd(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        _out: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (n, m) = (self.queries, self.keys);
        let (qh, kh, vh, gh) = (self.split(q, n)?, self.split(k, m)?, self.split(v, m)?, self.split(grad, n)?);
        let p = self.probabilities(&qh, &kh)?;
        let dv = p.t()?.matmul(&gh)?;
        let dp = gh.matmul(&vh.t()?)?;
        let ds = (&p * dp.broadcast_sub(&(&dp * &p)?.sum_keepdim(D::Minus1)?)?)?;
        let dq = (ds.matmul(&kh)? * self.scale())?;
        let dk = (ds.t()?.matmul(&qh)? * self.scale())?;
        Ok((Some(self.merge(&dq, n)?), Some(self.merge(&dk, m)?), Some(self.merge(&dv, m)?)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    /// The same attention written with differentiable candle ops.
    fn reference(q: &Tensor, k: &Tensor, v: &Tensor, heads: usize, causal: bool) -> Tensor {
        let (b, n, w) = q.dims3().unwrap();
        let m = k.dim(1).unwrap();
        let op = AttentionOp { batch: b, queries: n, keys: m, heads, head_dim: w / heads, causal };
        let (qh, kh, vh) = (op.split(q, n).unwrap(), op.split(k, m).unwrap(), op.split(v, m).unwrap());
        let mut scores = (qh.matmul(&kh.t().unwrap()).unwrap() * op.scale()).unwrap();
        if causal {
            let mask: Vec<f64> = (0..n).flat_map(|i| (0..n).map(move |j| if j > i { -1e30 } else { 0.0 })).collect();
            scores = scores.broadcast_add(&Tensor::from_vec(mask, (n, n), q.device()).unwrap()).unwrap();
        }
        let p = candle_nn::ops::softmax(&scores, D::Minus1).unwrap();
        op.merge(&p.matmul(&vh).unwrap(), n).unwrap()
    }

    fn check(n: usize, m: usize, heads: usize, causal: bool) {
        let d = Device::Cpu;
        let var = |rows| Var::from_tensor(&Tensor::randn(0f64, 1.0, (2, rows, heads * 3), &d).unwrap()).unwrap();
        let (q, k, v) = (var(n), var(m), var(m));
        let upstream = Tensor::randn(0f64, 1.0, (2, n, heads * 3), &d).unwrap();
        let run = |y: Tensor| {
            let grads = (&y * &upstream).unwrap().sum_all().unwrap().backward().unwrap();
            let flat = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f64>().unwrap();
            [flat(&y), flat(grads.get(&q).unwrap()), flat(grads.get(&k).unwrap()), flat(grads.get(&v).unwrap())]
        };
        let fused = run(attention(&q, &k, &v, heads, causal).unwrap());
        let want = run(reference(&q, &k, &v, heads, causal));
        for (name, a, b) in
            [("out", 0, 0), ("dq", 1, 1), ("dk", 2, 2), ("dv", 3, 3)].map(|(s, i, j)| (s, &fused[i], &want[j]))
        {
            let worst = a.iter().zip(b).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
            assert!(worst < 1e-10, "n={n} m={m} heads={heads} causal={causal} {name}: {worst}");
        }
    }

    #[test]
    fn fused_attention_and_its_gradients_match_candle_ops() {
        check(5, 7, 2, false);
        check(70, 70, 3, true); // more than one block of query rows
        check(130, 9, 1, false);
    }

    #[test]
    fn f32_matches_f64() {
        let d = Device::Cpu;
        let t = |rows| Tensor::randn(0f32, 2.0, (1, rows, 16), &d).unwrap();
        let (q, k, v) = (t(100), t(40), t(40));
        let wide = |t: &Tensor| t.to_dtype(DType::F64).unwrap();
        let y32 = attention(&q, &k, &v, 4, false).unwrap().to_dtype(DType::F64).unwrap();
        let y64 = attention(&wide(&q), &wide(&k), &wide(&v), 4, false).unwrap();
        let worst = (y32 - y64).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f64>().unwrap();
        assert!(worst < 1e-5, "{worst}");
    }
}
