//! The candle side of our GEMM layers: one custom op on (x, weight, bias)
//! whose forward and backward kernels are written once over [`Element`] and
//! run in f32 (models) or f64 (reference tests). `conv_op.rs` and `linear.rs`
//! provide the kernels; this file reads the tensors' storage and wraps results.

use candle_core::{CpuStorage, CustomOp3, DType, Layout, Result, Shape, Tensor};

use crate::nn::matrix::{Element, contiguous, cpu_slice};
use crate::nn::widen::with_widened;

/// What one GEMM layer computes.
pub trait LayerKernels {
    /// Op name, for errors.
    fn name(&self) -> &'static str;

    /// `y` from contiguous x (of shape `x_shape`), weight and bias, and its shape.
    fn forward<T: Element>(&self, x: &[T], x_shape: &Shape, w: &[T], b: &[T]) -> Result<(Vec<T>, Shape)>;

    /// (dx, dW when `wanted`, db) from the inputs, the output `y` and its gradient `dy`.
    #[allow(clippy::too_many_arguments)]
    fn backward<T: Element>(
        &self,
        x: &[T],
        w: &[T],
        b: &[T],
        y: &[T],
        dy: &[T],
        wanted: Wanted,
    ) -> (Option<Vec<T>>, Option<Vec<T>>, Vec<T>);
}

/// Which gradients a backward pass needs: none for data no variable
/// depends on (a model's input images), none for frozen weights (a GAN's
/// discriminator while its generator learns).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Wanted {
    pub dx: bool,
    pub dw: bool,
}

/// Applies `kernels` to (x, weight, bias) as one candle op with its own backward pass.
pub fn apply<K>(kernels: K, x: &Tensor, w: &Tensor, b: &Tensor) -> Result<Tensor>
where
    K: LayerKernels + Send + Sync + 'static,
{
    x.contiguous()?.apply_op3(&w.contiguous()?, &b.contiguous()?, LayerOp(kernels))
}

struct LayerOp<K>(K);

impl<K: LayerKernels> LayerOp<K> {
    fn backward_tensors<T: Element>(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        y: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let dy = dy.contiguous()?;
        let (xs, xl) = x.storage_and_layout();
        let (ws, wl) = w.storage_and_layout();
        let (bs, bl) = b.storage_and_layout();
        let (ys, yl) = y.storage_and_layout();
        let (dys, dyl) = dy.storage_and_layout();
        let (x_data, w_data, b_data) = (cpu_slice(&xs, xl)?, cpu_slice(&ws, wl)?, cpu_slice(&bs, bl)?);
        let (y_data, dy_data) = (cpu_slice(&ys, yl)?, cpu_slice(&dys, dyl)?);
        let wanted = Wanted { dx: x.track_op(), dw: w.track_op() };
        let (dx, dw, db) = self.0.backward::<T>(x_data, w_data, b_data, y_data, dy_data, wanted);
        let dx = dx.map(|dx| Tensor::from_vec(dx, x.shape(), x.device())).transpose()?;
        let dw = dw.map(|dw| Tensor::from_vec(dw, w.shape(), w.device())).transpose()?;
        Ok((dx, dw, Some(Tensor::from_vec(db, b.shape(), b.device())?)))
    }
}

impl<K: LayerKernels> CustomOp3 for LayerOp<K> {
    fn name(&self) -> &'static str {
        self.0.name()
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
        let shape = l1.shape();
        match (s1, s2, s3) {
            (CpuStorage::F32(x), CpuStorage::F32(w), CpuStorage::F32(b)) => {
                let (y, shape) = self.0.forward(contiguous(x, l1)?, shape, contiguous(w, l2)?, contiguous(b, l3)?)?;
                Ok((CpuStorage::F32(y), shape))
            }
            // Half-precision weights (f16/bf16 checkpoints) are widened for this call only.
            (CpuStorage::F32(x), CpuStorage::F16(_) | CpuStorage::BF16(_), CpuStorage::F32(b)) => {
                let (x, b) = (contiguous(x, l1)?, contiguous(b, l3)?);
                let (y, shape) = with_widened(s2, l2, |w| self.0.forward(x, shape, w, b))??;
                Ok((CpuStorage::F32(y), shape))
            }
            (CpuStorage::F64(x), CpuStorage::F64(w), CpuStorage::F64(b)) => {
                let (y, shape) = self.0.forward(contiguous(x, l1)?, shape, contiguous(w, l2)?, contiguous(b, l3)?)?;
                Ok((CpuStorage::F64(y), shape))
            }
            _ => candle_core::bail!("{} supports f32 and f64 inputs of one dtype (f32 with half weights)", self.name()),
        }
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
            other => candle_core::bail!("{}: no backward pass for {other:?}", self.name()),
        }
    }
}
