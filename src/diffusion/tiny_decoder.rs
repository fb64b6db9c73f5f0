//! The tiny preview decoder (TAESD for SD 1.x/2.x, TAESDXL for SDXL) in
//! diffusers' `AutoencoderTiny` layout: a stack of 3×3 convolutions with
//! residual blocks and nearest-neighbour upsampling that turns diffusion
//! latents into an image for a small fraction of the full decoder's cost,
//! so a preview can be drawn at every step. Loaded from a diffusers folder
//! (`config.json` + weights) or a single file of its weights (default
//! config); `decoder.*` is all that is read.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Result, Tensor};
use candle_nn::{Conv2dConfig, VarBuilder};
use serde::{Deserialize, Serialize};

use crate::diffusion::nets::{FolderError, read_config};
use crate::nn::conv::{Conv2d, conv2d, conv2d_no_bias};

/// The fields of `AutoencoderTiny`'s config the decoder depends on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TinyDecoderConfig {
    pub latent_channels: usize,
    pub out_channels: usize,
    pub decoder_block_out_channels: Vec<usize>,
    pub num_decoder_blocks: Vec<usize>,
    pub upsampling_scaling_factor: usize,
    /// Latents are divided by this first (1 for TAESD: it reads diffusion latents).
    pub scaling_factor: f64,
}

impl Default for TinyDecoderConfig {
    fn default() -> Self {
        Self {
            latent_channels: 4,
            out_channels: 3,
            decoder_block_out_channels: vec![64, 64, 64, 64],
            num_decoder_blocks: vec![3, 3, 3, 1],
            upsampling_scaling_factor: 2,
            scaling_factor: 1.0,
        }
    }
}

/// Three 3×3 convolutions with ReLUs between, plus the input (through a 1×1
/// convolution when the width changes), then a ReLU.
struct Block {
    convs: [Conv2d; 3],
    skip: Option<Conv2d>,
}

impl Block {
    fn new(cin: usize, cout: usize, vb: VarBuilder) -> Result<Self> {
        let same = Conv2dConfig { padding: 1, ..Default::default() };
        let conv = vb.pp("conv");
        Ok(Self {
            convs: [
                conv2d(cin, cout, 3, same, conv.pp("0"))?,
                conv2d(cout, cout, 3, same, conv.pp("2"))?,
                conv2d(cout, cout, 3, same, conv.pp("4"))?,
            ],
            skip: (cin != cout).then(|| conv2d_no_bias(cin, cout, 1, Default::default(), vb.pp("skip"))).transpose()?,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let h = self.convs[0].forward_relu(x)?;
        let h = self.convs[1].forward_relu(&h)?;
        let h = candle_core::Module::forward(&self.convs[2], &h)?;
        let skip = match &self.skip {
            Some(conv) => candle_core::Module::forward(conv, x)?,
            None => x.clone(),
        };
        (h + skip)?.relu()
    }
}

enum Layer {
    Conv { conv: Conv2d, relu: bool },
    Block(Block),
    Upsample(usize),
}

/// The decoder.
pub struct TinyDecoder {
    layers: Vec<Layer>,
    config: TinyDecoderConfig,
    path: PathBuf,
}

impl TinyDecoder {
    /// Builds the decoder from `vb` (the root of the weights: `decoder.layers.*`).
    pub fn new(config: &TinyDecoderConfig, vb: VarBuilder) -> Result<Self> {
        let vb = vb.pp("decoder").pp("layers");
        let same = Conv2dConfig { padding: 1, ..Default::default() };
        let chans = &config.decoder_block_out_channels;
        if chans.is_empty() || chans.len() != config.num_decoder_blocks.len() {
            candle_core::bail!("decoder_block_out_channels and num_decoder_blocks must be non-empty and equally long");
        }
        // Sequential numbering as in PyTorch: activations and upsamplers take an index too.
        let mut index = 0;
        let mut next = || {
            index += 1;
            index - 1
        };
        let mut layers = vec![Layer::Conv {
            conv: conv2d(config.latent_channels, chans[0], 3, same, vb.pp(next().to_string()))?,
            relu: true,
        }];
        next(); // the ReLU
        for (i, (&channels, &blocks)) in chans.iter().zip(&config.num_decoder_blocks).enumerate() {
            let last = i + 1 == chans.len();
            for _ in 0..blocks {
                layers.push(Layer::Block(Block::new(channels, channels, vb.pp(next().to_string()))?));
            }
            if !last {
                next();
                layers.push(Layer::Upsample(config.upsampling_scaling_factor));
            }
            let cout = if last { config.out_channels } else { channels };
            let vb = vb.pp(next().to_string());
            let conv =
                if last { conv2d(channels, cout, 3, same, vb)? } else { conv2d_no_bias(channels, cout, 3, same, vb)? };
            layers.push(Layer::Conv { conv, relu: false });
        }
        Ok(Self { layers, config: config.clone(), path: PathBuf::new() })
    }

    /// Loads a diffusers `AutoencoderTiny` folder, or a single weights file
    /// in its layout (with the standard config).
    pub fn load(path: &Path, device: &Device) -> std::result::Result<Self, FolderError> {
        let error =
            |at: &Path, e: &dyn std::fmt::Display| FolderError::File { path: at.to_owned(), message: e.to_string() };
        let (config, weights) = if path.is_dir() {
            let config: TinyDecoderConfig = read_config(&path.join("config.json"))?;
            let weights = ["diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.fp16.safetensors"]
                .iter()
                .map(|n| path.join(n))
                .find(|p| p.is_file())
                .ok_or_else(|| error(path, &"no diffusion_pytorch_model.safetensors"))?;
            (config, weights)
        } else {
            (TinyDecoderConfig::default(), path.to_owned())
        };
        let file = crate::diffusion::checkpoint::open_tensor_file(&weights)?;
        if !file.contains("decoder.layers.0.weight") {
            return Err(error(
                &weights,
                &"is not a tiny preview decoder (no decoder.layers.0.weight; TAESD in diffusers' AutoencoderTiny layout is expected)",
            ));
        }
        let tensors = candle_core::safetensors::load(&weights, device).map_err(|e| error(&weights, &e))?;
        let vb = VarBuilder::from_tensors(tensors, DType::F32, device);
        let mut decoder = Self::new(&config, vb).map_err(|e| error(&weights, &e))?;
        decoder.path = path.to_owned();
        Ok(decoder)
    }

    /// Writes a decoder of the standard (TAESD) shape with random weights as
    /// one safetensors file, for benchmarks.
    pub fn write_random(path: &Path, seed: u64) -> Result<()> {
        let varmap = candle_nn::VarMap::new();
        Self::new(&TinyDecoderConfig::default(), VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu))?;
        crate::train::init::reseed_parameters(&varmap, seed)?;
        varmap.save(path)
    }

    /// Where it was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Diffusion latents [b, c, h, w] → images [b, 3, 8h, 8w] in [−1, 1].
    pub fn decode(&self, latents: &Tensor) -> Result<Tensor> {
        let latents = (latents.to_dtype(DType::F32)? / self.config.scaling_factor)?;
        // diffusers clamps softly first: 3·tanh(x / 3).
        let mut x = ((latents / 3.0)?.tanh()? * 3.0)?;
        for layer in &self.layers {
            x = match layer {
                Layer::Conv { conv, relu: true } => conv.forward_relu(&x)?,
                Layer::Conv { conv, relu: false } => candle_core::Module::forward(conv, &x)?,
                Layer::Block(block) => block.forward(&x)?,
                Layer::Upsample(f) => {
                    let (_, _, h, w) = x.dims4()?;
                    x.upsample_nearest2d(h * f, w * f)?
                }
            };
        }
        (x * 2.0)? - 1.0
    }
}
