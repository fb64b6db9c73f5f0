//! The convolutional pieces the U-Net and the autoencoder share, with
//! diffusers' tensor names: the ResNet block (optionally taking a timestep
//! embedding) and the 2× down- and up-sampling convolutions.

use candle_core::{Module, Result, Tensor};
use candle_nn::{Conv2dConfig, VarBuilder};

use crate::nn::conv::{Conv2d, conv2d};
use crate::nn::linear::{Linear, linear};
use crate::nn::norm_op::{Norm, group_norm};

/// 3×3 convolution that keeps the size.
pub fn conv3(cin: usize, cout: usize, vb: VarBuilder) -> Result<Conv2d> {
    conv2d(cin, cout, 3, Conv2dConfig { padding: 1, ..Default::default() }, vb)
}

/// How a ResNet block normalises.
#[derive(Clone, Copy, Debug)]
pub struct NormSpec {
    pub groups: usize,
    pub eps: f64,
}

/// GroupNorm → SiLU → conv, twice, plus the (projected) input, divided by
/// `output_scale`; a timestep embedding, if given, is projected and added
/// between the two convolutions (diffusers `ResnetBlock2D`).
pub struct ResnetBlock {
    norm1: Norm,
    conv1: Conv2d,
    time_emb_proj: Option<Linear>,
    norm2: Norm,
    conv2: Conv2d,
    shortcut: Option<Conv2d>,
    output_scale: f64,
}

impl ResnetBlock {
    /// A block from `cin` to `cout` channels; `time_channels` is the
    /// embedding width when the block takes one.
    pub fn new(cin: usize, cout: usize, time_channels: Option<usize>, norm: NormSpec, vb: VarBuilder) -> Result<Self> {
        let shortcut =
            if cin == cout { None } else { Some(conv2d(cin, cout, 1, Default::default(), vb.pp("conv_shortcut"))?) };
        let time_emb_proj = time_channels.map(|t| linear(t, cout, vb.pp("time_emb_proj"))).transpose()?;
        Ok(Self {
            norm1: group_norm(norm.groups, cin, norm.eps, vb.pp("norm1"))?,
            conv1: conv3(cin, cout, vb.pp("conv1"))?,
            time_emb_proj,
            norm2: group_norm(norm.groups, cout, norm.eps, vb.pp("norm2"))?,
            conv2: conv3(cout, cout, vb.pp("conv2"))?,
            shortcut,
            output_scale: 1.0,
        })
    }

    /// Divides the block's output by `scale` (diffusers' `output_scale_factor`).
    pub fn with_output_scale(self, scale: f64) -> Self {
        Self { output_scale: scale, ..self }
    }

    /// `x` [b, cin, h, w] and, for blocks that take it, the SiLU of the
    /// timestep embedding [b, time_channels] → [b, cout, h, w].
    pub fn forward(&self, x: &Tensor, time: Option<&Tensor>) -> Result<Tensor> {
        let mut h = self.conv1.forward(&self.norm1.forward_silu(x)?)?;
        if let (Some(proj), Some(time)) = (&self.time_emb_proj, time) {
            h = h.broadcast_add(&proj.forward(time)?.unsqueeze(2)?.unsqueeze(3)?)?;
        }
        let h = self.conv2.forward(&self.norm2.forward_silu(&h)?)?;
        let out = match &self.shortcut {
            Some(s) => (s.forward(x)? + h)?,
            None => (x + h)?,
        };
        if self.output_scale == 1.0 { Ok(out) } else { out / self.output_scale }
    }
}

/// Stride-2 3×3 convolution (`downsamplers.0.conv`). With padding 0 the input
/// is padded on the right and bottom only, as diffusers does.
pub struct Downsample {
    conv: Conv2d,
    pad_right_bottom: bool,
}

impl Downsample {
    pub fn new(channels: usize, padding: usize, vb: VarBuilder) -> Result<Self> {
        let config = Conv2dConfig { stride: 2, padding, ..Default::default() };
        Ok(Self { conv: conv2d(channels, channels, 3, config, vb.pp("conv"))?, pad_right_bottom: padding == 0 })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if self.pad_right_bottom {
            self.conv.forward(&x.pad_with_zeros(2, 0, 1)?.pad_with_zeros(3, 0, 1)?)
        } else {
            self.conv.forward(x)
        }
    }
}

/// Nearest-neighbour upsampling to a given size, then a 3×3 convolution (`upsamplers.0.conv`).
pub struct Upsample {
    conv: Conv2d,
}

impl Upsample {
    pub fn new(channels: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self { conv: conv3(channels, channels, vb.pp("conv"))? })
    }

    pub fn forward(&self, x: &Tensor, height: usize, width: usize) -> Result<Tensor> {
        self.conv.forward(&x.upsample_nearest2d(height, width)?)
    }
}
