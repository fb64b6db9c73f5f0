//! The KL autoencoder of latent diffusion (diffusers `AutoencoderKL`, tensor
//! names as its checkpoints have them): a convolutional encoder to a diagonal
//! Gaussian over a latent with 2^(blocks−1)× smaller sides, and a decoder back
//! to pixels, each with a self-attention middle block.
//!
//! Ours rather than candle-transformers' because theirs keeps the posterior's
//! mean and variance private: training needs both (for the KL term) and
//! img2img needs the mean (a seeded, device-independent start). The
//! convolutions are the project's GEMM layers, which train much faster.

use std::sync::OnceLock;

use candle_core::{DType, Module, Result, Tensor};
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};

use crate::diffusion::blocks::{Downsample, NormSpec, ResnetBlock, Upsample, conv3};
use crate::nn::attention_op::attention;
use crate::nn::conv::{Conv2d, conv2d};
use crate::nn::linear::{Linear, linear};
use crate::nn::norm_op::{Norm, group_norm};

/// `vae/config.json`: the fields the network's shape and latent scale depend on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AutoencoderConfig {
    #[serde(default = "three")]
    pub in_channels: usize,
    #[serde(default = "three")]
    pub out_channels: usize,
    pub block_out_channels: Vec<usize>,
    pub layers_per_block: usize,
    pub latent_channels: usize,
    #[serde(default = "thirty_two")]
    pub norm_num_groups: usize,
    /// Latents are multiplied by this before diffusion (SD 1.x: 0.18215).
    #[serde(default = "sd_scale")]
    pub scaling_factor: f64,
    /// Subtracted before scaling (SD3/Flux); absent in SD 1.x/2.x/XL.
    #[serde(default)]
    pub shift_factor: Option<f64>,
    #[serde(default = "yes")]
    pub use_quant_conv: bool,
    #[serde(default = "yes")]
    pub use_post_quant_conv: bool,
    /// Image side the autoencoder was trained at (informative).
    #[serde(default)]
    pub sample_size: Option<usize>,
}

fn three() -> usize {
    3
}
fn thirty_two() -> usize {
    32
}
fn sd_scale() -> f64 {
    0.18215
}
fn yes() -> bool {
    true
}

impl AutoencoderConfig {
    /// A very small autoencoder for tests (8× smaller sides, like SD's).
    pub fn tiny() -> Self {
        Self {
            in_channels: 3,
            out_channels: 3,
            block_out_channels: vec![8, 8, 16, 16],
            layers_per_block: 1,
            latent_channels: 4,
            norm_num_groups: 4,
            scaling_factor: 1.0,
            shift_factor: None,
            use_quant_conv: true,
            use_post_quant_conv: true,
            sample_size: Some(32),
        }
    }

    /// How many times smaller the latent's sides are than the image's.
    pub fn downscale(&self) -> usize {
        1 << self.block_out_channels.len().saturating_sub(1)
    }

    /// Checks the values the layer arithmetic relies on.
    pub fn validate(&self) -> std::result::Result<(), crate::spec::InvalidSetting> {
        if self.block_out_channels.is_empty() || self.layers_per_block == 0 || self.latent_channels == 0 {
            return Err("block_out_channels, layers_per_block and latent_channels must be non-empty/positive".into());
        }
        if let Some(c) =
            self.block_out_channels.iter().find(|c| self.norm_num_groups == 0 || *c % self.norm_num_groups != 0)
        {
            return Err(crate::spec::InvalidSetting(format!(
                "{c} channels do not split into {} groups",
                self.norm_num_groups
            )));
        }
        Ok(())
    }
}

const NORM_EPS: f64 = 1e-6;

fn resnet(cin: usize, cout: usize, groups: usize, vb: VarBuilder) -> Result<ResnetBlock> {
    ResnetBlock::new(cin, cout, None, NormSpec { groups, eps: NORM_EPS }, vb)
}

/// Single-head self-attention over the positions of a feature map.
struct AttentionBlock {
    norm: Norm,
    q: Linear,
    k: Linear,
    v: Linear,
    out: Linear,
}

impl AttentionBlock {
    fn new(channels: usize, groups: usize, vb: VarBuilder) -> Result<Self> {
        // Older checkpoints name the projections query/key/value/proj_attn.
        let names = if vb.contains_tensor("to_q.weight") || !vb.contains_tensor("query.weight") {
            ["to_q", "to_k", "to_v", "to_out.0"]
        } else {
            ["query", "key", "value", "proj_attn"]
        };
        Ok(Self {
            norm: group_norm(groups, channels, NORM_EPS, vb.pp("group_norm"))?,
            q: linear(channels, channels, vb.pp(names[0]))?,
            k: linear(channels, channels, vb.pp(names[1]))?,
            v: linear(channels, channels, vb.pp(names[2]))?,
            out: linear(channels, channels, vb.pp(names[3]))?,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (b, c, h, w) = x.dims4()?;
        let y = self.norm.forward(x)?.reshape((b, c, h * w))?.transpose(1, 2)?.contiguous()?; // [b, hw, c]
        let (q, k, v) = (self.q.forward(&y)?, self.k.forward(&y)?, self.v.forward(&y)?);
        let y = self.out.forward(&attention(&q, &k, &v, 1, false)?)?; // [b, hw, c]
        x + y.transpose(1, 2)?.reshape((b, c, h, w))?
    }
}

struct MidBlock {
    first: ResnetBlock,
    attention: AttentionBlock,
    second: ResnetBlock,
}

impl MidBlock {
    fn new(channels: usize, groups: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            first: resnet(channels, channels, groups, vb.pp("resnets.0"))?,
            attention: AttentionBlock::new(channels, groups, vb.pp("attentions.0"))?,
            second: resnet(channels, channels, groups, vb.pp("resnets.1"))?,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.second.forward(&self.attention.forward(&self.first.forward(x, None)?)?, None)
    }
}

struct Stage<S> {
    resnets: Vec<ResnetBlock>,
    /// Stride-2 conv down (encoder) or nearest 2× up then conv (decoder).
    resample: Option<S>,
}

struct Encoder {
    conv_in: Conv2d,
    stages: Vec<Stage<Downsample>>,
    mid: MidBlock,
    norm_out: Norm,
    conv_out: Conv2d,
}

impl Encoder {
    fn new(cfg: &AutoencoderConfig, vb: VarBuilder) -> Result<Self> {
        let (chans, g) = (&cfg.block_out_channels, cfg.norm_num_groups);
        let last = chans[chans.len() - 1];
        let stages = chans
            .iter()
            .enumerate()
            .map(|(i, &cout)| {
                let vb = vb.pp(format!("down_blocks.{i}"));
                let cin = if i == 0 { chans[0] } else { chans[i - 1] };
                let resnets = (0..cfg.layers_per_block)
                    .map(|j| resnet(if j == 0 { cin } else { cout }, cout, g, vb.pp(format!("resnets.{j}"))))
                    .collect::<Result<_>>()?;
                // diffusers' autoencoder pads right and bottom only before a padding-free stride-2 conv.
                let resample =
                    (i + 1 < chans.len()).then(|| Downsample::new(cout, 0, vb.pp("downsamplers.0"))).transpose()?;
                Ok(Stage { resnets, resample })
            })
            .collect::<Result<_>>()?;
        Ok(Self {
            conv_in: conv3(cfg.in_channels, chans[0], vb.pp("conv_in"))?,
            stages,
            mid: MidBlock::new(last, g, vb.pp("mid_block"))?,
            norm_out: group_norm(g, last, NORM_EPS, vb.pp("conv_norm_out"))?,
            conv_out: conv3(last, 2 * cfg.latent_channels, vb.pp("conv_out"))?,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut x = self.conv_in.forward(x)?;
        for stage in &self.stages {
            for r in &stage.resnets {
                x = r.forward(&x, None)?;
            }
            if let Some(down) = &stage.resample {
                x = down.forward(&x)?;
            }
        }
        let x = self.mid.forward(&x)?;
        self.conv_out.forward(&self.norm_out.forward_silu(&x)?)
    }
}

struct Decoder {
    conv_in: Conv2d,
    mid: MidBlock,
    stages: Vec<Stage<Upsample>>,
    norm_out: Norm,
    conv_out: Conv2d,
}

impl Decoder {
    fn new(cfg: &AutoencoderConfig, vb: VarBuilder) -> Result<Self> {
        let g = cfg.norm_num_groups;
        let chans: Vec<usize> = cfg.block_out_channels.iter().rev().copied().collect();
        let stages = chans
            .iter()
            .enumerate()
            .map(|(i, &cout)| {
                let vb = vb.pp(format!("up_blocks.{i}"));
                let cin = if i == 0 { chans[0] } else { chans[i - 1] };
                let resnets = (0..=cfg.layers_per_block)
                    .map(|j| resnet(if j == 0 { cin } else { cout }, cout, g, vb.pp(format!("resnets.{j}"))))
                    .collect::<Result<_>>()?;
                let resample = (i + 1 < chans.len()).then(|| Upsample::new(cout, vb.pp("upsamplers.0"))).transpose()?;
                Ok(Stage { resnets, resample })
            })
            .collect::<Result<_>>()?;
        let (first, last) = (chans[0], chans[chans.len() - 1]);
        Ok(Self {
            conv_in: conv3(cfg.latent_channels, first, vb.pp("conv_in"))?,
            mid: MidBlock::new(first, g, vb.pp("mid_block"))?,
            stages,
            norm_out: group_norm(g, last, NORM_EPS, vb.pp("conv_norm_out"))?,
            conv_out: conv3(last, cfg.out_channels, vb.pp("conv_out"))?,
        })
    }

    fn forward(&self, z: &Tensor) -> Result<Tensor> {
        let mut x = self.mid.forward(&self.conv_in.forward(z)?)?;
        for stage in &self.stages {
            for r in &stage.resnets {
                x = r.forward(&x, None)?;
            }
            if let Some(up) = &stage.resample {
                let (_, _, h, w) = x.dims4()?;
                x = up.forward(&x, 2 * h, 2 * w)?;
            }
        }
        self.conv_out.forward(&self.norm_out.forward_silu(&x)?)
    }
}

/// The posterior over latents for a batch of images: mean and log-variance,
/// each [batch, latent_channels, h/f, w/f].
pub struct Posterior {
    pub mean: Tensor,
    pub log_var: Tensor,
}

impl Posterior {
    /// mean + σ·noise, with the noise supplied (drawn from the caller's seed).
    pub fn sample(&self, noise: &Tensor) -> Result<Tensor> {
        &self.mean + (self.log_var.clamp(-30.0, 20.0)? * 0.5)?.exp()?.mul(noise)?
    }

    /// KL(q ‖ N(0, I)) per image, summed over latent elements, averaged over the batch.
    pub fn kl(&self) -> Result<Tensor> {
        let log_var = self.log_var.clamp(-30.0, 20.0)?;
        let per_element = ((self.mean.sqr()? + log_var.exp()?)? - 1.0)?.sub(&log_var)?;
        (per_element.sum_all()? * 0.5)? / self.mean.dim(0)? as f64
    }
}

/// The encoder and its 1×1 `quant_conv`.
struct EncodingHalf {
    encoder: Encoder,
    quant: Option<Conv2d>,
}

impl EncodingHalf {
    fn new(config: &AutoencoderConfig, vb: &VarBuilder) -> Result<Self> {
        let encoder = Encoder::new(config, vb.pp("encoder"))?;
        Ok(Self { encoder, quant: quant_conv(config, vb)? })
    }
}

/// The decoder and its 1×1 `post_quant_conv`.
struct DecodingHalf {
    decoder: Decoder,
    post_quant: Option<Conv2d>,
}

impl DecodingHalf {
    fn new(config: &AutoencoderConfig, vb: &VarBuilder) -> Result<Self> {
        let decoder = Decoder::new(config, vb.pp("decoder"))?;
        Ok(Self { decoder, post_quant: post_quant_conv(config, vb)? })
    }
}

fn quant_conv(config: &AutoencoderConfig, vb: &VarBuilder) -> Result<Option<Conv2d>> {
    let c = 2 * config.latent_channels;
    config.use_quant_conv.then(|| conv2d(c, c, 1, Default::default(), vb.pp("quant_conv"))).transpose()
}

fn post_quant_conv(config: &AutoencoderConfig, vb: &VarBuilder) -> Result<Option<Conv2d>> {
    let c = config.latent_channels;
    config.use_post_quant_conv.then(|| conv2d(c, c, 1, Default::default(), vb.pp("post_quant_conv"))).transpose()
}

/// One half of the autoencoder: built now, or when first used, and when its
/// weights can be read again, dropped until it is next needed.
struct Half<T> {
    built: OnceLock<T>,
    /// Where the weights are read from again (absent for trained models).
    weights: Option<VarBuilder<'static>>,
}

impl<T> Half<T> {
    fn built(half: T, weights: Option<VarBuilder<'static>>) -> Self {
        Self { built: OnceLock::from(half), weights }
    }

    fn on_demand(weights: VarBuilder<'static>) -> Self {
        Self { built: OnceLock::new(), weights: Some(weights) }
    }

    fn get(&self, what: &str, build: impl FnOnce(&VarBuilder) -> Result<T>) -> Result<&T> {
        if let Some(half) = self.built.get() {
            return Ok(half);
        }
        let Some(weights) = &self.weights else { candle_core::bail!("the autoencoder's {what} is missing") };
        let half = build(weights).map_err(|e| candle_core::Error::Msg(format!("the autoencoder's {what}: {e}")))?;
        // Another thread may have built it meanwhile; either copy is the same.
        let _ = self.built.set(half);
        self.built.get().ok_or_else(|| candle_core::Error::Msg(format!("the autoencoder's {what} was not built")))
    }

    /// Drops the built half if it can be read again; whether it did.
    fn release(&mut self) -> bool {
        if self.weights.is_some() {
            self.built.take();
        }
        self.weights.is_some()
    }
}

/// The autoencoder.
pub struct Autoencoder {
    /// Text-to-image never encodes, so a loaded pipeline need not hold the
    /// encoder (a third of the autoencoder: 65 MB in SD's fp16 files).
    encoding: Half<EncodingHalf>,
    decoding: Half<DecodingHalf>,
    config: AutoencoderConfig,
    dtype: DType,
}

impl Autoencoder {
    /// Builds it from `vb` (the root of `vae/diffusion_pytorch_model.safetensors`).
    pub fn new(config: &AutoencoderConfig, vb: VarBuilder) -> Result<Self> {
        config.validate().map_err(candle_core::Error::msg)?;
        // This order of creation keeps a fresh model's initial values as they were.
        let encoder = Encoder::new(config, vb.pp("encoder"))?;
        let decoder = Decoder::new(config, vb.pp("decoder"))?;
        let encoding = EncodingHalf { encoder, quant: quant_conv(config, &vb)? };
        let decoding = DecodingHalf { decoder, post_quant: post_quant_conv(config, &vb)? };
        Ok(Self {
            dtype: decoding.decoder.conv_in.weight().dtype(),
            encoding: Half::built(encoding, None),
            decoding: Half::built(decoding, None),
            config: config.clone(),
        })
    }

    /// As `new` for inference from weights that stay readable: the decoder
    /// is built now (so a broken file is reported at load), the encoder only
    /// when something is first encoded.
    pub fn with_encoder_on_demand(config: &AutoencoderConfig, vb: VarBuilder<'static>) -> Result<Self> {
        config.validate().map_err(candle_core::Error::msg)?;
        let decoding = DecodingHalf::new(config, &vb)?;
        Ok(Self {
            dtype: decoding.decoder.conv_in.weight().dtype(),
            encoding: Half::on_demand(vb.clone()),
            decoding: Half::built(decoding, Some(vb)),
            config: config.clone(),
        })
    }

    /// Frees both halves' weights until they are next used (each is read
    /// again then); `false` for a model whose weights cannot be read again.
    pub fn release(&mut self) -> bool {
        self.encoding.release() && self.decoding.release()
    }

    /// The configuration.
    pub fn config(&self) -> &AutoencoderConfig {
        &self.config
    }

    /// Images [batch, 3, h, w] in [−1, 1] → the posterior over (unscaled) latents.
    pub fn encode(&self, images: &Tensor) -> Result<Posterior> {
        let half = self.encoding.get("encoder", |vb| EncodingHalf::new(&self.config, vb))?;
        let moments = half.encoder.forward(images)?;
        let moments = match &half.quant {
            Some(q) => q.forward(&moments)?,
            None => moments,
        };
        let l = self.config.latent_channels;
        Ok(Posterior { mean: moments.narrow(1, 0, l)?, log_var: moments.narrow(1, l, l)? })
    }

    /// (Unscaled) latents → images [batch, 3, h, w], roughly in [−1, 1].
    pub fn decode(&self, latents: &Tensor) -> Result<Tensor> {
        let half = self.decoding.get("decoder", |vb| DecodingHalf::new(&self.config, vb))?;
        let z = match &half.post_quant {
            Some(p) => p.forward(latents)?,
            None => latents.clone(),
        };
        half.decoder.forward(&z)
    }

    /// What diffusion works on: (latent − shift) · scaling_factor.
    pub fn to_diffusion(&self, latents: &Tensor) -> Result<Tensor> {
        (latents - self.config.shift_factor.unwrap_or(0.0))? * self.config.scaling_factor
    }

    /// Inverse of `to_diffusion`.
    pub fn from_diffusion(&self, latents: &Tensor) -> Result<Tensor> {
        (latents / self.config.scaling_factor)? + self.config.shift_factor.unwrap_or(0.0)
    }

    /// dtype of the weights.
    pub fn dtype(&self) -> DType {
        self.dtype
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;
    use candle_nn::VarMap;

    #[test]
    fn shapes_follow_the_config() {
        let cfg = AutoencoderConfig::tiny();
        let vm = VarMap::new();
        let ae = Autoencoder::new(&cfg, VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu)).unwrap();
        let x = Tensor::zeros((2, 3, 32, 24), DType::F32, &Device::Cpu).unwrap();
        let post = ae.encode(&x).unwrap();
        assert_eq!(post.mean.dims(), [2, 4, 4, 3]);
        assert_eq!(ae.decode(&post.mean).unwrap().dims(), [2, 3, 32, 24]);
        let names: Vec<String> = vm.data().lock().unwrap().keys().cloned().collect();
        for expected in [
            "encoder.down_blocks.0.downsamplers.0.conv.weight",
            "encoder.mid_block.attentions.0.to_q.weight",
            "decoder.up_blocks.0.resnets.1.conv2.bias",
            "decoder.up_blocks.2.resnets.0.conv_shortcut.weight",
            "quant_conv.weight",
        ] {
            assert!(names.iter().any(|n| n == expected), "{expected} missing");
        }
    }

    #[test]
    fn every_weight_receives_a_gradient() {
        let d = Device::Cpu;
        let vm = VarMap::new();
        let ae = Autoencoder::new(&AutoencoderConfig::tiny(), VarBuilder::from_varmap(&vm, DType::F32, &d)).unwrap();
        let x = Tensor::randn(0f32, 1.0, (2, 3, 16, 16), &d).unwrap();
        let post = ae.encode(&x).unwrap();
        let loss = ((ae.decode(&post.mean).unwrap() - &x).unwrap().abs().unwrap().mean_all().unwrap()
            + (post.kl().unwrap() * 1e-3).unwrap())
        .unwrap();
        // The log-variance half of quant_conv only meets the loss through the KL term.
        assert_eq!(crate::diffusion::unet::tests::untrained(&vm, &loss), Vec::<String>::new());
    }

    #[test]
    fn kl_matches_the_closed_form() {
        let d = Device::Cpu;
        let mean = Tensor::new(&[[0.5f32, -1.0]], &d).unwrap();
        let log_var = Tensor::new(&[[0.2f32, -0.4]], &d).unwrap();
        let kl = Posterior { mean, log_var }.kl().unwrap().to_scalar::<f32>().unwrap() as f64;
        let expected: f64 =
            [(0.5f64, 0.2f64), (-1.0, -0.4)].iter().map(|(m, l)| 0.5 * (m * m + l.exp() - 1.0 - l)).sum();
        assert!((kl - expected).abs() < 1e-6, "{kl} vs {expected}");
    }
}
