//! The fully connected layer every model in the project uses: `y = x·Wᵀ + b`
//! (+ optional ReLU). On the CPU in f32/f64 forward and backward are direct
//! GEMM calls in one custom op (no transposed copies, no broadcast
//! reductions, bias and ReLU fused); elsewhere candle's own ops. Tensor names
//! and initialisation are candle_nn's.

use candle_core::{DType, Result, Shape, Tensor};
use candle_nn::VarBuilder;
use rayon::prelude::*;

use crate::nn::epilogue::{Activation, Epilogue, activation_mask_and_channel_sums};
use crate::nn::layer_op::{self, LayerKernels, Wanted};
use crate::nn::matrix::{Element, MatRef, Threads, matmul};
use crate::nn::widen::widens_in_layer;

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

/// Same signature, names and initialisation as `candle_nn::linear_no_bias`
/// (the bias is a constant zero, not a variable).
pub fn linear_no_bias(inputs: usize, outputs: usize, vb: VarBuilder) -> Result<Linear> {
    let inner = candle_nn::linear_no_bias(inputs, outputs, vb)?;
    let bias = Tensor::zeros(outputs, inner.weight().dtype(), inner.weight().device())?;
    Ok(Linear { weight: inner.weight().clone(), bias })
}

impl Linear {
    /// The same layer with its weights cut from the graph: gradients flow
    /// to its input only, and its weight gradient is not computed.
    pub fn frozen(&self) -> Self {
        Self { weight: self.weight.detach(), bias: self.bias.detach() }
    }

    /// A layer from existing tensors: weight [out, in], bias [out].
    pub fn from_parts(weight: Tensor, bias: Tensor) -> Self {
        Self { weight, bias }
    }

    /// `x` [.., in] → [.., out], followed by ReLU if `relu`.
    pub fn forward_with(&self, x: &Tensor, relu: bool) -> Result<Tensor> {
        let (outputs, inputs) = self.weight.dims2()?;
        let fused = x.device().is_cpu() && matches!(x.dtype(), DType::F32 | DType::F64);
        let bias = crate::nn::widened(&self.bias, x.dtype())?;
        if !fused {
            let weight = crate::nn::widened(&self.weight, x.dtype())?;
            let y = x.broadcast_matmul(&weight.t()?)?.broadcast_add(&bias)?;
            return if relu { y.relu() } else { Ok(y) };
        }
        // The op widens a half-precision weight itself, into a reused buffer.
        let weight = if widens_in_layer(&self.weight, x) {
            self.weight.clone()
        } else {
            crate::nn::widened(&self.weight, x.dtype())?
        };
        let mut dims = x.dims().to_vec();
        let Some(last) = dims.last_mut().filter(|d| **d == inputs) else {
            candle_core::bail!("linear: input {:?} does not end in {inputs}", x.dims());
        };
        *last = outputs;
        let rows = x.elem_count() / inputs;
        let activation = if relu { Activation::Relu } else { Activation::Identity };
        let op = LinearOp { activation, outputs };
        layer_op::apply(op, &x.reshape((rows, inputs))?, &weight, &bias)?.reshape(dims)
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

/// `x·Wᵀ + b` (+ activation) on (x [n, in], W [out, in], b [out]).
#[derive(Clone, Copy, Debug)]
struct LinearOp {
    activation: Activation,
    /// Rows of W (the bias length).
    outputs: usize,
}

impl LayerKernels for LinearOp {
    fn name(&self) -> &'static str {
        "linear-gemm"
    }

    fn forward<T: Element>(&self, x: &[T], _x_shape: &Shape, w: &[T], b: &[T]) -> Result<(Vec<T>, Shape)> {
        let outputs = self.outputs;
        if outputs == 0 || b.len() != outputs || !w.len().is_multiple_of(outputs) {
            candle_core::bail!("linear: weight of {} elements does not fit {outputs} outputs", w.len());
        }
        let inputs = w.len() / outputs;
        if !x.len().is_multiple_of(inputs) {
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
            Epilogue { bias: None, activation: self.activation }.activate(y);
        });
        Ok((y, Shape::from((rows, outputs))))
    }

    fn backward<T: Element>(
        &self,
        x: &[T],
        w: &[T],
        _b: &[T],
        y: &[T],
        dy: &[T],
        wanted: Wanted,
    ) -> (Option<Vec<T>>, Option<Vec<T>>, Vec<T>) {
        let outputs = self.outputs;
        let inputs = w.len() / outputs;
        let rows = x.len() / inputs;
        let (masked, db) = activation_mask_and_channel_sums(dy, y, self.activation, outputs, 1);
        let dy = masked.as_deref().unwrap_or(dy);
        let (xm, wm, dym) =
            (MatRef::new(x, rows, inputs), MatRef::new(w, outputs, inputs), MatRef::new(dy, rows, outputs));
        let dw = wanted.dw.then(|| {
            let mut dw = vec![T::default(); outputs * inputs];
            matmul(&mut dw, inputs, dym.t(), xm, false, Threads::Pool);
            dw
        });
        let dx = wanted.dx.then(|| {
            let mut dx = vec![T::default(); rows * inputs];
            matmul(&mut dx, inputs, dym, wm, false, Threads::Pool);
            dx
        });
        (dx, dw, db)
    }
}
