//! Convolution layers that every model in the project uses. On the CPU in f32
//! or f64 they run as GEMMs around im2col/col2im with bias and activation fused, as
//! one custom op with its own backward pass (see `conv_op.rs`); elsewhere (CUDA, Metal, other dtypes, groups > 1)
//! they fall back to candle's own kernels. Weights, names and initialisation
//! are candle_nn's, so checkpoints are interchangeable.

use candle_core::{DType, Module, Result, Tensor};
use candle_nn::{Conv2dConfig, ConvTranspose2dConfig, VarBuilder};

use crate::nn::conv_op::{ConvKind, ConvOp};
pub use crate::nn::epilogue::Activation;
use crate::nn::im2col::PatchGeometry;
use crate::nn::layer_op;
use crate::nn::widen::widens_in_layer;

/// Which implementation runs a convolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConvBackend {
    /// im2col/col2im + one GEMM where supported, else candle's kernels.
    Auto,
    /// Always candle's own kernels (for comparisons).
    Builtin,
}

/// What `Module::forward` uses: `Auto` unless a benchmark switched it.
static DEFAULT_BACKEND: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);

/// Chooses the backend every conv layer's `forward` uses (benchmarks compare both).
pub fn set_default_backend(backend: ConvBackend) {
    DEFAULT_BACKEND.store(backend == ConvBackend::Auto, std::sync::atomic::Ordering::Relaxed);
}

fn default_backend() -> ConvBackend {
    if DEFAULT_BACKEND.load(std::sync::atomic::Ordering::Relaxed) { ConvBackend::Auto } else { ConvBackend::Builtin }
}

fn gemm_applies(x: &Tensor, groups: usize) -> bool {
    x.device().is_cpu() && matches!(x.dtype(), DType::F32 | DType::F64) && groups == 1
}

/// The bias, or zeros in the input's dtype (the weight may be stored half).
fn bias_or_zeros(bias: Option<&Tensor>, x: &Tensor, channels: usize) -> Result<Tensor> {
    match bias {
        Some(b) => Ok(b.clone()),
        None => Tensor::zeros(channels, x.dtype(), x.device()),
    }
}

/// conv2d + bias (+ activation) as `W · im2col(x)`: x [b, cin, h, w], w [cout, cin, k, k] → [b, cout, oh, ow].
pub fn conv2d_gemm(
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    cfg: &Conv2dConfig,
    activation: Activation,
) -> Result<Tensor> {
    let (_, channels, height, width) = x.dims4()?;
    let (cout, cin, kh, kw) = w.dims4()?;
    if cin != channels || kh != kw {
        candle_core::bail!("conv2d: input has {channels} channels, weight {:?}", w.dims());
    }
    let geometry = PatchGeometry {
        channels,
        height,
        width,
        kernel: kh,
        stride: cfg.stride,
        padding: cfg.padding,
        dilation: cfg.dilation,
    };
    geometry.validate()?;
    let op = ConvOp { kind: ConvKind::Conv, geometry, features: cout, activation };
    layer_op::apply(op, x, w, &bias_or_zeros(bias, x, cout)?)
}

/// Transposed conv2d + bias (+ activation) as `col2im(Wᵀ · x)`: x [b, cin, h, w], w [cin, cout, k, k]
/// → [b, cout, oh, ow] with oh = (h−1)·stride − 2·padding + dilation·(k−1) + output_padding + 1.
pub fn conv_transpose2d_gemm(
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    cfg: &ConvTranspose2dConfig,
    activation: Activation,
) -> Result<Tensor> {
    let (_, cin, height, width) = x.dims4()?;
    let (win, cout, kh, kw) = w.dims4()?;
    if win != cin || kh != kw {
        candle_core::bail!("conv_transpose2d: input has {cin} channels, weight {:?}", w.dims());
    }
    let out_size = |n: usize| {
        ((n - 1) * cfg.stride + cfg.dilation * (kh - 1) + cfg.output_padding + 1).checked_sub(2 * cfg.padding)
    };
    let (Some(oh), Some(ow)) = (out_size(height), out_size(width)) else {
        candle_core::bail!("conv_transpose2d: padding {} is too large for {height}×{width}", cfg.padding);
    };
    // The output image is what a conv2d with the same settings would read from.
    let geometry = PatchGeometry {
        channels: cout,
        height: oh,
        width: ow,
        kernel: kh,
        stride: cfg.stride,
        padding: cfg.padding,
        dilation: cfg.dilation,
    };
    geometry.validate()?;
    if (geometry.out_height(), geometry.out_width()) != (height, width) {
        candle_core::bail!(
            "conv_transpose2d: output_padding {} must be below stride {}",
            cfg.output_padding,
            cfg.stride
        );
    }
    let op = ConvOp { kind: ConvKind::Transposed, geometry, features: cin, activation };
    layer_op::apply(op, x, w, &bias_or_zeros(bias, x, cout)?)
}

/// Adds a per-channel bias [c] to `y` [b, c, h, w] and applies the activation (candle's kernels).
fn bias_activation_builtin(y: Tensor, bias: Option<&Tensor>, activation: Activation) -> Result<Tensor> {
    let y = match bias {
        Some(b) => y.broadcast_add(&b.reshape((1, (), 1, 1))?)?,
        None => y,
    };
    match activation {
        Activation::Identity => Ok(y),
        Activation::Relu => y.relu(),
        Activation::LeakyRelu(slope) => y.maximum(&(&y * slope)?),
    }
}

/// A 2-D convolution layer (tensor names `weight`, `bias` as in candle_nn).
#[derive(Clone, Debug)]
pub struct Conv2d {
    weight: Tensor,
    bias: Option<Tensor>,
    config: Conv2dConfig,
}

impl Conv2d {
    /// The same layer with its weights cut from the graph: gradients flow
    /// to its input only, and its weight gradient is not computed.
    pub fn frozen(&self) -> Self {
        Self { weight: self.weight.detach(), bias: self.bias.as_ref().map(Tensor::detach), config: self.config }
    }

    /// The layer with the given backend, followed by `activation` (fused where possible).
    pub fn forward_with(&self, x: &Tensor, backend: ConvBackend, activation: Activation) -> Result<Tensor> {
        let c = &self.config;
        if backend == ConvBackend::Auto && gemm_applies(x, c.groups) {
            // The op widens a half-precision weight itself, into a reused buffer.
            if widens_in_layer(&self.weight, x) {
                return conv2d_gemm(x, &self.weight, self.bias.as_ref(), c, activation);
            }
            let weight = crate::nn::widened(&self.weight, x.dtype())?;
            return conv2d_gemm(x, &weight, self.bias.as_ref(), c, activation);
        }
        let weight = crate::nn::widened(&self.weight, x.dtype())?;
        let y = x.conv2d(&weight, c.padding, c.stride, c.dilation, c.groups)?;
        bias_activation_builtin(y, self.bias.as_ref(), activation)
    }

    /// `relu(self.forward(x))` in one pass.
    pub fn forward_relu(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_with(x, default_backend(), Activation::Relu)
    }

    /// Leaky ReLU of `self.forward(x)` (`slope` for negative values) in one pass.
    pub fn forward_leaky_relu(&self, x: &Tensor, slope: f64) -> Result<Tensor> {
        self.forward_with(x, default_backend(), Activation::LeakyRelu(slope))
    }

    /// Weight [cout, cin, k, k].
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }
}

impl Module for Conv2d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_with(x, default_backend(), Activation::Identity)
    }
}

/// A 2-D transposed convolution layer (tensor names `weight`, `bias` as in candle_nn).
#[derive(Clone, Debug)]
pub struct ConvTranspose2d {
    weight: Tensor,
    bias: Option<Tensor>,
    config: ConvTranspose2dConfig,
}

impl ConvTranspose2d {
    /// The layer with the given backend, followed by `activation` (fused where possible).
    pub fn forward_with(&self, x: &Tensor, backend: ConvBackend, activation: Activation) -> Result<Tensor> {
        let c = &self.config;
        if backend == ConvBackend::Auto && gemm_applies(x, 1) {
            return conv_transpose2d_gemm(x, &self.weight, self.bias.as_ref(), c, activation);
        }
        let y = x.conv_transpose2d(&self.weight, c.padding, c.output_padding, c.stride, c.dilation)?;
        bias_activation_builtin(y, self.bias.as_ref(), activation)
    }

    /// `relu(self.forward(x))` in one pass.
    pub fn forward_relu(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_with(x, default_backend(), Activation::Relu)
    }

    /// Weight [cin, cout, k, k].
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }
}

impl Module for ConvTranspose2d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_with(x, default_backend(), Activation::Identity)
    }
}

/// Same signature, names and initialisation as `candle_nn::conv2d`.
pub fn conv2d(cin: usize, cout: usize, k: usize, config: Conv2dConfig, vb: VarBuilder) -> Result<Conv2d> {
    let inner = candle_nn::conv2d(cin, cout, k, config, vb)?;
    Ok(Conv2d { weight: inner.weight().clone(), bias: inner.bias().cloned(), config })
}

/// Same signature, names and initialisation as `candle_nn::conv2d_no_bias`.
pub fn conv2d_no_bias(cin: usize, cout: usize, k: usize, config: Conv2dConfig, vb: VarBuilder) -> Result<Conv2d> {
    let inner = candle_nn::conv2d_no_bias(cin, cout, k, config, vb)?;
    Ok(Conv2d { weight: inner.weight().clone(), bias: None, config })
}

/// Same signature, names and initialisation as `candle_nn::conv_transpose2d`.
pub fn conv_transpose2d(
    cin: usize,
    cout: usize,
    k: usize,
    config: ConvTranspose2dConfig,
    vb: VarBuilder,
) -> Result<ConvTranspose2d> {
    let inner = candle_nn::conv_transpose2d(cin, cout, k, config, vb)?;
    Ok(ConvTranspose2d { weight: inner.weight().clone(), bias: inner.bias().cloned(), config })
}
