//! DCGAN (Radford et al. 2016): a generator of transposed convolutions with
//! batch normalisation and ReLU, ending in tanh, and a discriminator of
//! strided convolutions with leaky ReLU ending in one logit. Images are in
//! [−1, 1] inside the networks.

use candle_core::{Module, ModuleT, Result, Tensor};
use candle_nn::{BatchNorm, BatchNormConfig, Conv2dConfig, ConvTranspose2dConfig, VarBuilder};
use serde::{Deserialize, Serialize};

use crate::nn::batch_norm_op;
use crate::nn::conv::{Activation, Conv2d, ConvTranspose2d, conv_transpose2d, conv2d};
use crate::nn::linear::{Linear, linear};

/// Shape of both networks; stored in the model's manifest next to its weights.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GanConfig {
    /// Width and height of the (square) images: s·2ⁿ with n ≥ 1 and a
    /// starting side s from 4 to 7 (8, 16, 32, 64; 28 = 7·4 for MNIST-sized data).
    pub image_size: usize,
    /// 1 for grey, 3 for RGB.
    pub channels: usize,
    /// Length of the latent vector z.
    pub latent_dim: usize,
    /// Feature maps of the generator's last hidden layer (and the
    /// discriminator's first); they double at each step towards the smallest map.
    pub base_channels: usize,
}

impl GanConfig {
    /// The shipped 32×32 emoji model.
    pub fn emoji() -> Self {
        Self { image_size: 32, channels: 3, latent_dim: 64, base_channels: 64 }
    }

    /// The shape DCGAN uses for `(side, channels)` images: latent 64, base 64.
    pub fn for_images(side: usize, channels: usize) -> Self {
        Self { image_size: side, channels, ..Self::emoji() }
    }

    /// A very small network for fast tests.
    pub fn tiny() -> Self {
        Self { image_size: 8, channels: 3, latent_dim: 4, base_channels: 4 }
    }

    /// Doubling steps between the first feature map and the image: the
    /// image side is halved while it stays even and at least 8.
    pub fn steps(&self) -> usize {
        let (mut side, mut steps) = (self.image_size, 0);
        while side.is_multiple_of(2) && side >= 8 {
            side /= 2;
            steps += 1;
        }
        steps
    }

    /// Side of the first (smallest) feature map: 4 to 7.
    pub fn start_side(&self) -> usize {
        self.image_size >> self.steps()
    }

    /// Feature maps at the smallest side.
    pub fn top_channels(&self) -> usize {
        self.base_channels << self.steps().saturating_sub(1)
    }

    /// Checks the values that the layer arithmetic relies on.
    pub fn validate(&self) -> std::result::Result<(), crate::spec::InvalidSetting> {
        if self.steps() == 0 || !(4..=7).contains(&self.start_side()) {
            return Err(crate::spec::InvalidSetting(format!(
                "image_size {} is not s·2ⁿ with n ≥ 1 and s from 4 to 7 (8, 16, 28, 32, 64…)",
                self.image_size
            )));
        }
        if !matches!(self.channels, 1 | 3) {
            return Err(crate::spec::InvalidSetting(format!("channels {} is neither 1 nor 3", self.channels)));
        }
        if self.latent_dim == 0 || self.base_channels == 0 {
            return Err("latent_dim and base_channels must be positive".into());
        }
        Ok(())
    }
}

fn up() -> ConvTranspose2dConfig {
    ConvTranspose2dConfig { padding: 1, stride: 2, ..Default::default() }
}

fn down() -> Conv2dConfig {
    Conv2dConfig { padding: 1, stride: 2, ..Default::default() }
}

fn batch_norm(features: usize, vb: VarBuilder) -> Result<BatchNorm> {
    let config = BatchNormConfig { eps: 1e-5, remove_mean: true, affine: true, momentum: 0.1 };
    candle_nn::batch_norm(features, config, vb)
}

/// ReLU of the batch norm: with the batch's statistics in training (one fused
/// op), else with the running ones.
fn norm_relu(norm: &BatchNorm, h: &Tensor, train: bool) -> Result<Tensor> {
    if train { batch_norm_op::train_forward(norm, h, Activation::Relu) } else { norm.forward_t(h, false)?.relu() }
}

/// z → image in [−1, 1].
#[derive(Clone, Debug)]
pub struct Generator {
    project: Linear,
    project_norm: BatchNorm,
    ups: Vec<(ConvTranspose2d, Option<BatchNorm>)>,
    top: usize,
    start: usize,
}

impl Generator {
    /// Tensor names: `project`, `project_norm`, `up{i}`, `up{i}_norm`.
    pub fn new(cfg: &GanConfig, vb: VarBuilder) -> Result<Self> {
        let top = cfg.top_channels();
        let mut ups = Vec::new();
        let mut width = top;
        for i in 0..cfg.steps() {
            let last = i + 1 == cfg.steps();
            let out = if last { cfg.channels } else { width / 2 };
            let conv = conv_transpose2d(width, out, 4, up(), vb.pp(format!("up{i}")))?;
            let norm = if last { None } else { Some(batch_norm(out, vb.pp(format!("up{i}_norm")))?) };
            ups.push((conv, norm));
            width = out;
        }
        Ok(Self {
            project: linear(cfg.latent_dim, top * cfg.start_side().pow(2), vb.pp("project"))?,
            project_norm: batch_norm(top, vb.pp("project_norm"))?,
            ups,
            top,
            start: cfg.start_side(),
        })
    }

    /// The first hidden layer, `[batch, top, start, start]` after
    /// normalisation and ReLU: where GANSpace-style principal directions are measured.
    pub fn features(&self, z: &Tensor, train: bool) -> Result<Tensor> {
        let h = self.project.forward(z)?.reshape((z.dim(0)?, self.top, self.start, self.start))?;
        norm_relu(&self.project_norm, &h, train)
    }

    /// Continues from [`Generator::features`] to the image.
    pub fn from_features(&self, features: &Tensor, train: bool) -> Result<Tensor> {
        let mut h = features.clone();
        for (conv, norm) in &self.ups {
            h = conv.forward(&h)?; // spatial size doubles
            if let Some(norm) = norm {
                h = norm_relu(norm, &h, train)?;
            }
        }
        h.tanh()
    }

    /// `z`: [batch, latent] → images [batch, channels, size, size] in [−1, 1].
    /// `train` normalises with the batch's statistics (and updates the running
    /// ones); otherwise the running statistics are used.
    pub fn forward_t(&self, z: &Tensor, train: bool) -> Result<Tensor> {
        self.from_features(&self.features(z, train)?, train)
    }
}

/// Image in [−1, 1] → logit of "real".
#[derive(Clone, Debug)]
pub struct Discriminator {
    downs: Vec<Conv2d>,
    classify: Linear,
}

/// Slope of the leaky ReLU for negative inputs.
const LEAK: f64 = 0.2;

impl Discriminator {
    /// Tensor names: `down{i}`, `classify`.
    pub fn new(cfg: &GanConfig, vb: VarBuilder) -> Result<Self> {
        let mut downs = Vec::new();
        let mut width = cfg.channels;
        for i in 0..cfg.steps() {
            let out = cfg.base_channels << i;
            downs.push(conv2d(width, out, 4, down(), vb.pp(format!("down{i}")))?);
            width = out;
        }
        Ok(Self { downs, classify: linear(width * cfg.start_side().pow(2), 1, vb.pp("classify"))? })
    }

    /// The same network with its weights cut from the graph: the generator's
    /// step needs gradients through it, not for it.
    pub fn frozen(&self) -> Self {
        Self { downs: self.downs.iter().map(Conv2d::frozen).collect(), classify: self.classify.frozen() }
    }

    /// `x`: [batch, channels, size, size] → logits [batch].
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut h = x.clone();
        for conv in &self.downs {
            h = conv.forward_leaky_relu(&h, LEAK)?; // spatial size halves
        }
        self.classify.forward(&h.flatten_from(1)?)?.squeeze(1)
    }
}

/// Mean binary cross-entropy of `logits` against the constant `target`,
/// computed stably: max(l, 0) − l·t + log(1 + e^−|l|).
pub fn bce_with_logits_mean(logits: &Tensor, target: f64) -> Result<Tensor> {
    let stable = ((logits.relu()? - (logits * target)?)? + (logits.abs()?.neg()?.exp()? + 1.0)?.log()?)?;
    stable.mean_all()
}

/// Parameters of the generator and the discriminator.
pub fn parameter_counts(cfg: &GanConfig) -> Result<(usize, usize)> {
    let varmap = candle_nn::VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, candle_core::DType::F32, &candle_core::Device::Cpu);
    Generator::new(cfg, vb.pp("generator"))?;
    Discriminator::new(cfg, vb.pp("discriminator"))?;
    let count = |prefix: &str| {
        varmap.data().lock().map_or(0, |d| {
            d.iter()
                .filter(|(k, _)| k.starts_with(prefix) && !k.contains("running_"))
                .map(|(_, v)| v.elem_count())
                .sum()
        })
    };
    Ok((count("generator."), count("discriminator.")))
}

#[cfg(test)]
mod tests {
    use candle_core::{DType, Device};
    use candle_nn::VarMap;

    use super::*;

    #[test]
    fn shapes_follow_the_config() {
        let fashion = GanConfig { image_size: 28, channels: 1, ..GanConfig::tiny() };
        let grey16 = GanConfig { image_size: 16, channels: 1, ..GanConfig::tiny() };
        for cfg in [GanConfig::tiny(), GanConfig::emoji(), grey16, fashion.clone()] {
            cfg.validate().unwrap();
            let varmap = VarMap::new();
            let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
            let g = Generator::new(&cfg, vb.pp("generator")).unwrap();
            let d = Discriminator::new(&cfg, vb.pp("discriminator")).unwrap();
            let z = Tensor::randn(0f32, 1.0, (5, cfg.latent_dim), &Device::Cpu).unwrap();
            let images = g.forward_t(&z, true).unwrap();
            assert_eq!(images.dims(), [5, cfg.channels, cfg.image_size, cfg.image_size]);
            let range = images.abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
            assert!(range <= 1.0, "tanh output");
            let s = cfg.start_side();
            assert_eq!(g.features(&z, false).unwrap().dims(), [5, cfg.top_channels(), s, s]);
            assert_eq!(d.forward(&images).unwrap().dims(), [5]);
        }
        assert_eq!((GanConfig::emoji().steps(), GanConfig::emoji().start_side()), (3, 4));
        assert_eq!((fashion.steps(), fashion.start_side()), (2, 7));
        for bad in [4, 6, 9, 36] {
            assert!(GanConfig { image_size: bad, ..GanConfig::tiny() }.validate().is_err(), "{bad}");
        }
        assert_eq!(parameter_counts(&GanConfig::tiny()).unwrap().1, 3 * 4 * 16 + 4 + 4 * 16 + 1);
    }

    #[test]
    fn bce_matches_the_textbook_formula() {
        let logits = Tensor::new(&[-30f32, -1.5, 0.0, 2.0, 30.0], &Device::Cpu).unwrap();
        let got = bce_with_logits_mean(&logits, 0.9).unwrap().to_scalar::<f32>().unwrap();
        let want: f64 = [-30f64, -1.5, 0.0, 2.0, 30.0]
            .iter()
            .map(|&l| {
                let p = 1.0 / (1.0 + (-l).exp());
                // log(1 − p) = −l − log(1 + e^−l) stays finite for large l.
                -(0.9 * p.ln() + 0.1 * (-l - (-l).exp().ln_1p()))
            })
            .sum::<f64>()
            / 5.0;
        assert!((f64::from(got) - want).abs() < 1e-5, "{got} vs {want}");
    }
}
