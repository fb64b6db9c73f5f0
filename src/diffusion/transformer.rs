//! The U-Net's spatial transformer (diffusers `Transformer2DModel`): the
//! feature map becomes a sequence of positions, each layer applies
//! self-attention, cross-attention to the text states and a GEGLU
//! feed-forward (pre-norm, residual), and the result is added back to the map.
//!
//! Ours rather than candle-transformers': theirs computes softmax and layer
//! norm with candle kernels that have no backward pass, so the attention's
//! queries and keys, and everything before a norm, could not be trained.

use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;

use crate::nn::attention_op::attention;
use crate::nn::conv::{Conv2d, conv2d};
use crate::nn::geglu_op::geglu;
use crate::nn::linear::{Linear, linear, linear_no_bias};
use crate::nn::norm_op::{Norm, group_norm, layer_norm};

/// Multi-head attention (`to_q`, `to_k`, `to_v` without bias, `to_out.0`).
struct Attention {
    to_q: Linear,
    to_k: Linear,
    to_v: Linear,
    to_out: Linear,
    heads: usize,
}

impl Attention {
    fn new(dim: usize, context_dim: usize, heads: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            to_q: linear_no_bias(dim, dim, vb.pp("to_q"))?,
            to_k: linear_no_bias(context_dim, dim, vb.pp("to_k"))?,
            to_v: linear_no_bias(context_dim, dim, vb.pp("to_v"))?,
            to_out: linear(dim, dim, vb.pp("to_out.0"))?,
            heads,
        })
    }

    /// `x` [b, n, dim] attending to `context` [b, m, context_dim] (itself when `None`).
    fn forward(&self, x: &Tensor, context: Option<&Tensor>) -> Result<Tensor> {
        let context = context.unwrap_or(x);
        let (q, k, v) = (self.to_q.forward(x)?, self.to_k.forward(context)?, self.to_v.forward(context)?);
        self.to_out.forward(&attention(&q, &k, &v, self.heads, false)?)
    }
}

/// `ff.net.0.proj` (to 2 × 4·dim, halves multiplied as x · GELU(gate)) then `ff.net.2`.
struct FeedForward {
    proj: Linear,
    out: Linear,
    tanh_gelu: bool,
}

impl FeedForward {
    fn new(dim: usize, tanh_gelu: bool, vb: VarBuilder) -> Result<Self> {
        let inner = 4 * dim;
        Ok(Self {
            proj: linear(dim, 2 * inner, vb.pp("net.0.proj"))?,
            out: linear(inner, dim, vb.pp("net.2"))?,
            tanh_gelu,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let h = self.proj.forward(x)?;
        let gated = if self.tanh_gelu {
            let inner = h.dim(candle_core::D::Minus1)? / 2;
            (h.narrow(candle_core::D::Minus1, 0, inner)? * h.narrow(candle_core::D::Minus1, inner, inner)?.gelu()?)?
        } else {
            geglu(&h)?
        };
        self.out.forward(&gated)
    }
}

/// Self-attention, cross-attention and feed-forward, each pre-norm with a residual.
struct TransformerBlock {
    norm1: Norm,
    attn1: Attention,
    norm2: Norm,
    attn2: Attention,
    norm3: Norm,
    ff: FeedForward,
}

impl TransformerBlock {
    fn new(spec: &TransformerSpec, vb: VarBuilder) -> Result<Self> {
        let (dim, context_dim, heads) = (spec.channels, spec.context_dim, spec.heads);
        Ok(Self {
            norm1: layer_norm(dim, 1e-5, vb.pp("norm1"))?,
            attn1: Attention::new(dim, dim, heads, vb.pp("attn1"))?,
            norm2: layer_norm(dim, 1e-5, vb.pp("norm2"))?,
            attn2: Attention::new(dim, context_dim, heads, vb.pp("attn2"))?,
            norm3: layer_norm(dim, 1e-5, vb.pp("norm3"))?,
            ff: FeedForward::new(dim, spec.tanh_gelu, vb.pp("ff"))?,
        })
    }

    fn forward(&self, x: &Tensor, context: &Tensor) -> Result<Tensor> {
        let x = (self.attn1.forward(&self.norm1.forward(x)?, None)? + x)?;
        let x = (self.attn2.forward(&self.norm2.forward(&x)?, Some(context))? + &x)?;
        self.ff.forward(&self.norm3.forward(&x)?)? + x
    }
}

/// `proj_in`/`proj_out`: linear layers over positions (SD 2.x, SDXL) or 1×1 convolutions (SD 1.x).
enum Projection {
    Linear(Linear),
    Conv(Conv2d),
}

impl Projection {
    fn new(channels: usize, as_linear: bool, vb: VarBuilder) -> Result<Self> {
        Ok(if as_linear {
            Self::Linear(linear(channels, channels, vb)?)
        } else {
            Self::Conv(conv2d(channels, channels, 1, Default::default(), vb)?)
        })
    }
}

/// What a spatial transformer is built from.
#[derive(Clone, Copy, Debug)]
pub struct TransformerSpec {
    pub channels: usize,
    pub heads: usize,
    pub layers: usize,
    pub context_dim: usize,
    pub groups: usize,
    pub linear_projection: bool,
    /// GELU's tanh approximation in the feed-forward (candle-transformers'
    /// choice, for comparing with it) instead of the exact one diffusers uses.
    pub tanh_gelu: bool,
}

/// GroupNorm, `proj_in`, transformer blocks over the positions, `proj_out`, plus the input.
pub struct SpatialTransformer {
    norm: Norm,
    proj_in: Projection,
    blocks: Vec<TransformerBlock>,
    proj_out: Projection,
}

impl SpatialTransformer {
    pub fn new(spec: TransformerSpec, vb: VarBuilder) -> Result<Self> {
        let c = spec.channels;
        if spec.heads == 0 || !c.is_multiple_of(spec.heads) {
            candle_core::bail!("{c} channels do not split into {} heads", spec.heads);
        }
        let blocks = (0..spec.layers)
            .map(|i| TransformerBlock::new(&spec, vb.pp(format!("transformer_blocks.{i}"))))
            .collect::<Result<_>>()?;
        Ok(Self {
            norm: group_norm(spec.groups, c, 1e-6, vb.pp("norm"))?,
            proj_in: Projection::new(c, spec.linear_projection, vb.pp("proj_in"))?,
            blocks,
            proj_out: Projection::new(c, spec.linear_projection, vb.pp("proj_out"))?,
        })
    }

    /// `x` [b, c, h, w] with text states `context` [b, tokens, context_dim].
    pub fn forward(&self, x: &Tensor, context: &Tensor) -> Result<Tensor> {
        let (b, c, h, w) = x.dims4()?;
        let to_sequence = |t: Tensor| t.reshape((b, c, h * w))?.transpose(1, 2)?.contiguous();
        let to_map = |t: Tensor| t.transpose(1, 2)?.reshape((b, c, h, w));
        let normed = self.norm.forward(x)?;
        let mut seq = match &self.proj_in {
            Projection::Linear(p) => p.forward(&to_sequence(normed)?)?,
            Projection::Conv(p) => to_sequence(p.forward(&normed)?)?,
        };
        for block in &self.blocks {
            seq = block.forward(&seq, context)?;
        }
        let out = match &self.proj_out {
            Projection::Linear(p) => to_map(p.forward(&seq)?)?,
            Projection::Conv(p) => p.forward(&to_map(seq)?.contiguous()?)?,
        };
        out + x
    }
}
