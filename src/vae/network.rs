//! A convolutional variational autoencoder: encoder to a diagonal Gaussian,
//! reparameterised sampling, decoder back to pixels, and the ELBO loss.

use candle_core::{DType, Module, Result, Tensor};
use candle_nn::{Conv2dConfig, ConvTranspose2dConfig, VarBuilder};

use crate::nn::conv::{Conv2d, ConvTranspose2d, conv_transpose2d, conv2d};
use crate::nn::linear::{Linear, linear};
use serde::{Deserialize, Serialize};

/// Shape of the network; stored in the model's manifest next to its weights.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VaeConfig {
    /// Width and height of the (square) images; a multiple of 4.
    pub image_size: usize,
    /// 1 for grey, 3 for RGB.
    pub channels: usize,
    /// Number of latent dimensions.
    pub latent_dim: usize,
    /// Channels of the first convolution; the second has twice as many.
    pub base_channels: usize,
    /// Width of the fully connected layer between convolutions and latent.
    pub hidden: usize,
}

impl VaeConfig {
    /// The shipped 28×28 grey models.
    pub fn mnist(latent_dim: usize) -> Self {
        Self { image_size: 28, channels: 1, latent_dim, base_channels: 32, hidden: 256 }
    }

    /// A very small network for fast tests.
    pub fn tiny() -> Self {
        Self { image_size: 8, channels: 1, latent_dim: 2, base_channels: 4, hidden: 16 }
    }

    /// Side of the feature map after two stride-2 convolutions.
    fn feature_side(&self) -> usize {
        self.image_size / 4
    }

    fn feature_len(&self) -> usize {
        2 * self.base_channels * self.feature_side() * self.feature_side()
    }

    /// Checks the values that the layer arithmetic relies on.
    pub fn validate(&self) -> std::result::Result<(), crate::spec::InvalidSetting> {
        if self.image_size == 0 || !self.image_size.is_multiple_of(4) {
            return Err(crate::spec::InvalidSetting(format!(
                "image_size {} is not a positive multiple of 4",
                self.image_size
            )));
        }
        if !matches!(self.channels, 1 | 3) {
            return Err(crate::spec::InvalidSetting(format!("channels {} is neither 1 nor 3", self.channels)));
        }
        if self.latent_dim == 0 || self.base_channels == 0 || self.hidden == 0 {
            return Err("latent_dim, base_channels and hidden must be positive".into());
        }
        Ok(())
    }
}

fn down() -> Conv2dConfig {
    Conv2dConfig { padding: 1, stride: 2, ..Default::default() }
}

fn up() -> ConvTranspose2dConfig {
    ConvTranspose2dConfig { padding: 1, stride: 2, ..Default::default() }
}

/// Image → (mean, log-variance) of q(z|x).
#[derive(Clone, Debug)]
pub struct Encoder {
    pub(crate) conv1: Conv2d,
    pub(crate) conv2: Conv2d,
    fc: Linear,
    mean: Linear,
    logvar: Linear,
}

impl Encoder {
    /// Builds the encoder from `vb` (tensor names `conv1`, `conv2`, `fc`, `mean`, `logvar`).
    pub fn new(cfg: &VaeConfig, vb: VarBuilder) -> Result<Self> {
        let b = cfg.base_channels;
        Ok(Self {
            conv1: conv2d(cfg.channels, b, 4, down(), vb.pp("conv1"))?,
            conv2: conv2d(b, 2 * b, 4, down(), vb.pp("conv2"))?,
            fc: linear(cfg.feature_len(), cfg.hidden, vb.pp("fc"))?,
            mean: linear(cfg.hidden, cfg.latent_dim, vb.pp("mean"))?,
            logvar: linear(cfg.hidden, cfg.latent_dim, vb.pp("logvar"))?,
        })
    }

    /// `xs`: [batch, channels, size, size] in [0, 1] → ([batch, latent], [batch, latent]).
    pub fn forward(&self, xs: &Tensor) -> Result<(Tensor, Tensor)> {
        let h = self.conv1.forward_relu(xs)?; // [b, base, s/2, s/2]
        let h = self.conv2.forward_relu(&h)?; // [b, 2·base, s/4, s/4]
        let h = self.fc.forward_relu(&h.flatten_from(1)?)?; // [b, hidden]
        Ok((self.mean.forward(&h)?, self.logvar.forward(&h)?))
    }
}

/// Latent → pixel logits.
#[derive(Clone, Debug)]
pub struct Decoder {
    fc1: Linear,
    fc2: Linear,
    pub(crate) deconv1: ConvTranspose2d,
    pub(crate) deconv2: ConvTranspose2d,
    base: usize,
    side: usize,
}

impl Decoder {
    /// Builds the decoder from `vb` (tensor names `fc1`, `fc2`, `deconv1`, `deconv2`).
    pub fn new(cfg: &VaeConfig, vb: VarBuilder) -> Result<Self> {
        let b = cfg.base_channels;
        Ok(Self {
            fc1: linear(cfg.latent_dim, cfg.hidden, vb.pp("fc1"))?,
            fc2: linear(cfg.hidden, cfg.feature_len(), vb.pp("fc2"))?,
            deconv1: conv_transpose2d(2 * b, b, 4, up(), vb.pp("deconv1"))?,
            deconv2: conv_transpose2d(b, cfg.channels, 4, up(), vb.pp("deconv2"))?,
            base: b,
            side: cfg.feature_side(),
        })
    }

    /// `z`: [batch, latent] → logits [batch, channels, size, size].
    pub fn forward(&self, z: &Tensor) -> Result<Tensor> {
        let batch = z.dim(0)?;
        let h = self.fc1.forward_relu(z)?; // [b, hidden]
        let h = self.fc2.forward_relu(&h)?; // [b, 2·base·side²]
        let h = h.reshape((batch, 2 * self.base, self.side, self.side))?;
        let h = self.deconv1.forward_relu(&h)?; // [b, base, s/2, s/2]
        self.deconv2.forward(&h) // [b, channels, s, s]
    }

    /// `z` → pixel intensities in [0, 1].
    pub fn decode(&self, z: &Tensor) -> Result<Tensor> {
        candle_nn::ops::sigmoid(&self.forward(z)?)
    }
}

/// Encoder and decoder together.
#[derive(Clone, Debug)]
pub struct Vae {
    /// q(z|x).
    pub encoder: Encoder,
    /// p(x|z).
    pub decoder: Decoder,
    /// The configuration the network was built from.
    pub config: VaeConfig,
}

/// What one forward pass of the whole VAE produces.
pub struct VaeOutput {
    /// Pixel logits of the reconstruction, [batch, channels, size, size].
    pub logits: Tensor,
    /// Posterior mean, [batch, latent].
    pub mean: Tensor,
    /// Posterior log-variance, [batch, latent].
    pub logvar: Tensor,
}

impl Vae {
    /// Builds the VAE from `vb` (prefixes `encoder.` and `decoder.`).
    pub fn new(cfg: &VaeConfig, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            encoder: Encoder::new(cfg, vb.pp("encoder"))?,
            decoder: Decoder::new(cfg, vb.pp("decoder"))?,
            config: cfg.clone(),
        })
    }

    /// Encode, sample with the given standard-normal `eps` ([batch, latent]), decode.
    pub fn forward(&self, xs: &Tensor, eps: &Tensor) -> Result<VaeOutput> {
        let (mean, logvar) = self.encoder.forward(xs)?;
        let z = reparameterize(&mean, &logvar, eps)?;
        Ok(VaeOutput { logits: self.decoder.forward(&z)?, mean, logvar })
    }
}

/// z = μ + σ·ε with σ = exp(½·log σ²): the sample stays differentiable in μ and σ.
pub fn reparameterize(mean: &Tensor, logvar: &Tensor, eps: &Tensor) -> Result<Tensor> {
    let std = (logvar * 0.5)?.exp()?;
    mean + std.mul(eps)?
}

/// KL(q(z|x) ‖ N(0, I)) per example: −½ Σ (1 + log σ² − μ² − σ²). Returns [batch].
pub fn kl_divergence(mean: &Tensor, logvar: &Tensor) -> Result<Tensor> {
    let inner = ((logvar + 1.0)? - mean.sqr()? - logvar.exp()?)?;
    inner.sum(1)? * -0.5
}

/// Bernoulli negative log-likelihood of `target` under `logits`, summed over
/// pixels: max(l,0) − l·x + log(1 + e^−|l|), the numerically stable form. Returns [batch].
pub fn bce_with_logits(logits: &Tensor, target: &Tensor) -> Result<Tensor> {
    let batch = logits.dim(0)?;
    let stable = ((logits.relu()? - logits.mul(target)?)? + (logits.abs()?.neg()?.exp()? + 1.0)?.log()?)?;
    stable.reshape((batch, ()))?.sum(1)
}

/// The terms of the negative ELBO, each averaged over the batch (per image).
pub struct VaeLoss {
    /// recon + β·KL, the value that is minimised.
    pub total: Tensor,
    /// Reconstruction term (nats per image).
    pub recon: Tensor,
    /// KL term (nats per image).
    pub kl: Tensor,
}

/// Negative ELBO with a β-weighted KL term (β = 1 is the plain VAE).
pub fn vae_loss(out: &VaeOutput, target: &Tensor, beta: f64) -> Result<VaeLoss> {
    let recon = bce_with_logits(&out.logits, target)?.mean_all()?;
    let kl = kl_divergence(&out.mean, &out.logvar)?.mean_all()?;
    let total = (&recon + (&kl * beta)?)?;
    Ok(VaeLoss { total, recon, kl })
}

/// Number of scalar parameters the configuration has.
pub fn parameter_count(cfg: &VaeConfig) -> Result<usize> {
    let varmap = candle_nn::VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &candle_core::Device::Cpu);
    Vae::new(cfg, vb)?;
    Ok(varmap.all_vars().iter().map(|v| v.elem_count()).sum())
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn shapes_flow_through() -> Result<()> {
        let cfg = VaeConfig::mnist(3);
        let varmap = candle_nn::VarMap::new();
        let vae = Vae::new(&cfg, VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu))?;
        let xs = Tensor::zeros((5, 1, 28, 28), DType::F32, &Device::Cpu)?;
        let eps = Tensor::zeros((5, 3), DType::F32, &Device::Cpu)?;
        let out = vae.forward(&xs, &eps)?;
        assert_eq!(out.mean.dims(), &[5, 3]);
        assert_eq!(out.logvar.dims(), &[5, 3]);
        assert_eq!(out.logits.dims(), &[5, 1, 28, 28]);
        Ok(())
    }

    #[test]
    fn kl_matches_hand_computed_value() -> Result<()> {
        // μ = (1, 0), log σ² = (0, ln 4): KL = −½[(1+0−1−1) + (1+ln4−0−4)] = ½(1 + 3 − ln 4).
        let dev = Device::Cpu;
        let mean = Tensor::new(&[[1.0f32, 0.0]], &dev)?;
        let logvar = Tensor::new(&[[0.0f32, 4f32.ln()]], &dev)?;
        let kl = kl_divergence(&mean, &logvar)?.to_vec1::<f32>()?[0];
        let expected = 0.5 * (1.0 + 3.0 - 4f64.ln());
        assert!((kl as f64 - expected).abs() < 1e-6, "{kl} vs {expected}");
        // The prior itself has zero divergence.
        let zero = kl_divergence(&Tensor::zeros((1, 2), DType::F32, &dev)?, &Tensor::zeros((1, 2), DType::F32, &dev)?)?;
        assert_eq!(zero.to_vec1::<f32>()?, vec![0.0]);
        Ok(())
    }

    #[test]
    fn bce_matches_naive_formula() -> Result<()> {
        let dev = Device::Cpu;
        let l = [-3.0f32, -0.5, 0.0, 2.0];
        let x = [0.0f32, 1.0, 0.3, 0.9];
        let got = bce_with_logits(&Tensor::new(&[l], &dev)?, &Tensor::new(&[x], &dev)?)?.to_vec1::<f32>()?[0];
        let expected: f64 = l
            .iter()
            .zip(&x)
            .map(|(&l, &x)| {
                let p = 1.0 / (1.0 + (-(l as f64)).exp());
                -(x as f64 * p.ln() + (1.0 - x as f64) * (1.0 - p).ln())
            })
            .sum();
        assert!((got as f64 - expected).abs() < 1e-5, "{got} vs {expected}");
        Ok(())
    }

    #[test]
    fn reparameterization_has_the_posterior_statistics() -> Result<()> {
        // With ε ~ N(0,1), z = μ + σε must have mean μ and standard deviation σ.
        let dev = Device::Cpu;
        let n = 100_000;
        let eps = Tensor::from_vec(crate::train::rng::SeededRng::new(11).normal_vec(n), (n, 1), &dev)?;
        let mean = Tensor::full(1.5f32, (n, 1), &dev)?;
        let logvar = Tensor::full((0.25f32).ln(), (n, 1), &dev)?; // σ = 0.5
        let z: Vec<f32> = reparameterize(&mean, &logvar, &eps)?.flatten_all()?.to_vec1()?;
        let m = z.iter().map(|v| *v as f64).sum::<f64>() / n as f64;
        let sd = (z.iter().map(|v| (*v as f64 - m).powi(2)).sum::<f64>() / n as f64).sqrt();
        assert!((m - 1.5).abs() < 0.01, "mean {m}");
        assert!((sd - 0.5).abs() < 0.01, "std {sd}");
        Ok(())
    }

    #[test]
    fn config_validation_names_the_problem() {
        let mut cfg = VaeConfig::tiny();
        cfg.image_size = 10;
        assert!(cfg.validate().unwrap_err().to_string().contains("multiple of 4"));
    }
}
