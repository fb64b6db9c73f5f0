//! The fully connected layer every model in the project uses: `y = x·Wᵀ + b`
//! (+ optional ReLU). On the CPU in f32/f64 forward and backward are direct
//! GEMM calls in one custom op (no transposed copies, no broadcast
//! reductions, bias and ReLU fused); elsewhere candle's own ops. Tensor names
//! and initialisation are candle_nn's.

use candle_core::{CpuStorage, CustomOp3, DType, Layout, Result, Shape, Tensor};
use candle_nn::VarBuilder;
use rayon::prelude::*;

use super::epilogue::relu_mask_and_channel_sums;
use super::matrix::{Element, MatRef, Threads, contiguous, cpu_slice, matmul};

/// A fully connected layer (tensor names `weight` [out, in] and `bias` [out]).
#[derive(Clone, Debug)]
pub struct Linear {
    weight: Tensor,
    bias: Tensor,
}

/// Same signature, names and initialisation as `candle_nn::linear`.
pub fn linear(inputs: usize, outputs: usize, vb: VarBuilder) -> Result<Linear> {
    let inner = candle_nn::linear(inputs, outputs, vb)?;
    let Some(bias) = inner.bias().cloned() else { candle_core::bail!("candle_nn::linear built no bias") };
    Ok(Linear { weight: inner.weight().clone(), bias })
}

impl Linear {
    /// A layer from existing tensors: weight [out, in], bias [out].
    pub fn from_parts(weight: Tensor, bias: Tensor) -> Self {
        Self { weight, bias }
    }

    /// `x` [.., in] → [.., out], followed by ReLU if `relu`.
    pub fn forward_with(&self, x: &Tensor, relu: bool) -> Result<Tensor> {
        let (outputs, inputs) = self.weight.dims2()?;
        let fused = x.device().is_cpu() && matches!(x.dtype(), DType::F32 | DType::F64);
        if !fused {
            let y = x.broadcast_matmul(&self.weight.t()?)?.broadcast_add(&self.bias)?;
            return if relu { y.relu() } else { Ok(y) };
        }
        let mut dims = x.dims().to_vec();
        let Some(last) = dims.last_mut().filter(|d| **d == inputs) else {
            candle_core::bail!("linear: input {:?} does not end in {inputs}", x.dims());
        };
        *last = outputs;
        let rows = x.elem_count() / inputs;
        let op = LinearOp { relu };
        x.reshape((rows, inputs))?.contiguous()?.apply_op3(&self.weight.contiguous()?, &self.bias, op)?.reshape(dims)
    }

    /// `relu(self.forward(x))` in one pass.
    pub fn forward_relu(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_with(x, true)
    }

    /// Weight [out, in].
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    /// Bias [out].
    pub fn bias(&self) -> &Tensor {
        &self.bias
    }
}

impl candle_core::Module for Linear {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_with(x, false)
    }
}

/// `x·Wᵀ + b` (+ ReLU) on (x [n, in], W [out, in], b [out]).
#[derive(Clone, Copy, Debug)]
struct LinearOp {
    relu: bool,
}

impl LinearOp {
    fn forward<T: Element>(&self, x: &[T], w: &[T], b: &[T]) -> Result<(Vec<T>, usize)> {
        let outputs = b.len();
        if outputs == 0 || w.len() % outputs != 0 {
            candle_core::bail!("linear: weight of {} elements does not fit {outputs} outputs", w.len());
        }
        let inputs = w.len() / outputs;
        if x.len() % inputs != 0 {
            candle_core::bail!("linear: input of {} elements is not rows of {inputs}", x.len());
        }
        let rows = x.len() / inputs;
        let mut y = vec![T::default(); rows * outputs];
        let wt = MatRef::new(w, outputs, inputs).t();
        // One parallel region: each task fills its rows with the bias, adds
        // its product and applies the ReLU while the rows are in cache.
        let tasks = rayon::current_num_threads().min(rows / 16).max(1);
        let threads = if tasks > 1 { Threads::One } else { Threads::Pool };
        let per_task = rows.div_ceil(tasks);
        y.par_chunks_mut(per_task * outputs).zip(x.par_chunks(per_task * inputs)).for_each(|(y, x)| {
            y.chunks_exact_mut(outputs).for_each(|row| row.copy_from_slice(b));
            matmul(y, outputs, MatRef::new(x, x.len() / inputs, inputs), wt, true, threads);
            if self.relu {
                y.iter_mut().filter(|v| **v < T::default()).for_each(|v| *v = T::default());
            }
        });
        Ok((y, rows))
    }

    /// (dx, dW, db) from the output gradient; `dx` only when `want_dx`.
    fn backward<T: Element>(
        &self,
        (x, w, y, dy): (&[T], &[T], &[T], &[T]),
        outputs: usize,
        want_dx: bool,
    ) -> (Option<Vec<T>>, Vec<T>, Vec<T>) {
        let inputs = w.len() / outputs;
        let rows = x.len() / inputs;
        let (masked, db) = relu_mask_and_channel_sums(dy, self.relu.then_some(y), outputs, 1);
        let dy = masked.as_deref().unwrap_or(dy);
        let (xm, wm, dym) =
            (MatRef::new(x, rows, inputs), MatRef::new(w, outputs, inputs), MatRef::new(dy, rows, outputs));
        let mut dw = vec![T::default(); outputs * inputs];
        matmul(&mut dw, inputs, dym.t(), xm, false, Threads::Pool);
        let dx = want_dx.then(|| {
            let mut dx = vec![T::default(); rows * inputs];
            matmul(&mut dx, inputs, dym, wm, false, Threads::Pool);
            dx
        });
        (dx, dw, db)
    }

    fn backward_tensors<T: Element>(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        y: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (w, dy) = (w.contiguous()?, dy.contiguous()?);
        let (xs, xl) = x.storage_and_layout();
        let (ws, wl) = w.storage_and_layout();
        let (ys, yl) = y.storage_and_layout();
        let (dys, dyl) = dy.storage_and_layout();
        let slices = (cpu_slice(&xs, xl)?, cpu_slice(&ws, wl)?, cpu_slice(&ys, yl)?, cpu_slice(&dys, dyl)?);
        let (dx, dw, db) = self.backward::<T>(slices, b.elem_count(), x.track_op());
        let dx = dx.map(|dx| Tensor::from_vec(dx, x.shape(), x.device())).transpose()?;
        Ok((dx, Some(Tensor::from_vec(dw, w.shape(), w.device())?), Some(Tensor::from_vec(db, b.shape(), b.device())?)))
    }
}

impl CustomOp3 for LinearOp {
    fn name(&self) -> &'static str {
        "linear-gemm"
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
        let (out, rows) = match (s1, s2, s3) {
            (CpuStorage::F32(x), CpuStorage::F32(w), CpuStorage::F32(b)) => {
                let (y, rows) = self.forward(contiguous(x, l1)?, contiguous(w, l2)?, contiguous(b, l3)?)?;
                (CpuStorage::F32(y), rows)
            }
            (CpuStorage::F64(x), CpuStorage::F64(w), CpuStorage::F64(b)) => {
                let (y, rows) = self.forward(contiguous(x, l1)?, contiguous(w, l2)?, contiguous(b, l3)?)?;
                (CpuStorage::F64(y), rows)
            }
            _ => candle_core::bail!("linear supports f32 and f64 inputs of one dtype"),
        };
        Ok((out, Shape::from((rows, l3.shape().elem_count()))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        y: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        match x.dtype() {
            DType::F32 => self.backward_tensors::<f32>(x, w, b, y, dy),
            DType::F64 => self.backward_tensors::<f64>(x, w, b, y, dy),
            other => candle_core::bail!("linear: no backward pass for {other:?}"),
        }
    }
}
