//! Convolution layers that every model in the project uses. On the CPU in f32
//! or f64 they run as one large GEMM around im2col/col2im (see `unfold.rs`),
//! forward and backward; elsewhere (CUDA, Metal, other dtypes, groups > 1)
//! they fall back to candle's own kernels. Weights, names and initialisation
//! are candle_nn's, so checkpoints are interchangeable.

use candle_core::{DType, Module, Result, Tensor};
use candle_nn::{Conv2dConfig, ConvTranspose2dConfig, VarBuilder};

use super::unfold::{Col2Im, Im2Col, PatchGeometry};

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

/// conv2d as `W · im2col(x)`: x [b, cin, h, w], w [cout, cin, k, k] → [b, cout, oh, ow].
pub fn conv2d_gemm(x: &Tensor, w: &Tensor, cfg: &Conv2dConfig) -> Result<Tensor> {
    let (batch, channels, height, width) = x.dims4()?;
    let (cout, cin, kh, kw) = w.dims4()?;
    if cin != channels || kh != kw {
        candle_core::bail!("conv2d: input has {channels} channels, weight {:?}", w.dims());
    }
    let g = PatchGeometry {
        batch,
        channels,
        height,
        width,
        kernel: kh,
        stride: cfg.stride,
        padding: cfg.padding,
        dilation: cfg.dilation,
    };
    g.validate()?;
    let cols = x.contiguous()?.apply_op1(Im2Col(g))?; // [cin·k², b·oh·ow]
    let out = w.reshape((cout, g.rows()))?.matmul(&cols)?; // [cout, b·oh·ow]
    out.reshape((cout, batch, g.out_height(), g.out_width()))?.transpose(0, 1)?.contiguous()
}

/// Transposed conv2d as `col2im(Wᵀ · x)`: x [b, cin, h, w], w [cin, cout, k, k] → [b, cout, oh, ow]
/// with oh = (h−1)·stride − 2·padding + dilation·(k−1) + output_padding + 1.
pub fn conv_transpose2d_gemm(x: &Tensor, w: &Tensor, cfg: &ConvTranspose2dConfig) -> Result<Tensor> {
    let (batch, cin, height, width) = x.dims4()?;
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
    let g = PatchGeometry {
        batch,
        channels: cout,
        height: oh,
        width: ow,
        kernel: kh,
        stride: cfg.stride,
        padding: cfg.padding,
        dilation: cfg.dilation,
    };
    g.validate()?;
    if (g.out_height(), g.out_width()) != (height, width) {
        candle_core::bail!(
            "conv_transpose2d: output_padding {} must be below stride {}",
            cfg.output_padding,
            cfg.stride
        );
    }
    let xs = x.transpose(0, 1)?.reshape((cin, batch * height * width))?; // [cin, b·h·w]
    let cols = w.reshape((cin, g.rows()))?.t()?.matmul(&xs)?; // [cout·k², b·h·w]
    cols.contiguous()?.apply_op1(Col2Im(g))
}

/// Adds a per-channel bias [c] to `y` [b, c, h, w].
fn add_channel_bias(y: Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
    match bias {
        Some(b) => y.broadcast_add(&b.reshape((1, (), 1, 1))?),
        None => Ok(y),
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
    /// The layer with the given backend.
    pub fn forward_with(&self, x: &Tensor, backend: ConvBackend) -> Result<Tensor> {
        let c = &self.config;
        let y = if backend == ConvBackend::Auto && gemm_applies(x, c.groups) {
            conv2d_gemm(x, &self.weight, c)?
        } else {
            x.conv2d(&self.weight, c.padding, c.stride, c.dilation, c.groups)?
        };
        add_channel_bias(y, self.bias.as_ref())
    }

    /// Weight [cout, cin, k, k].
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }
}

impl Module for Conv2d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_with(x, default_backend())
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
    /// The layer with the given backend.
    pub fn forward_with(&self, x: &Tensor, backend: ConvBackend) -> Result<Tensor> {
        let c = &self.config;
        let y = if backend == ConvBackend::Auto && gemm_applies(x, 1) {
            conv_transpose2d_gemm(x, &self.weight, c)?
        } else {
            x.conv_transpose2d(&self.weight, c.padding, c.output_padding, c.stride, c.dilation)?
        };
        add_channel_bias(y, self.bias.as_ref())
    }

    /// Weight [cin, cout, k, k].
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }
}

impl Module for ConvTranspose2d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_with(x, default_backend())
    }
}

/// Same signature, names and initialisation as `candle_nn::conv2d`.
pub fn conv2d(cin: usize, cout: usize, k: usize, config: Conv2dConfig, vb: VarBuilder) -> Result<Conv2d> {
    let inner = candle_nn::conv2d(cin, cout, k, config, vb)?;
    Ok(Conv2d { weight: inner.weight().clone(), bias: inner.bias().cloned(), config })
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
