//! A small decoder-only transformer (GPT): token and position embeddings,
//! pre-norm blocks of causal multi-head self-attention and a GELU MLP, a
//! final layer norm and a linear head over the vocabulary. Trained by this
//! project (`text/train.rs`) on characters.

use candle_core::{D, DType, Module, Result, Tensor};
use candle_nn::{Embedding, VarBuilder, embedding};
use serde::{Deserialize, Serialize};

use crate::nn::linear::{Linear, linear};
use crate::nn::norm_op::{Norm as LayerNorm, layer_norm};

/// Shape of the network; stored in the model's manifest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GptConfig {
    /// Number of distinct tokens.
    pub vocab: usize,
    /// Longest sequence (positions) the model sees.
    pub context: usize,
    /// Transformer blocks.
    pub layers: usize,
    /// Attention heads per block.
    pub heads: usize,
    /// Width of the residual stream (a multiple of `heads`).
    pub width: usize,
}

impl GptConfig {
    /// The shipped character model's shape.
    pub fn small(vocab: usize) -> Self {
        Self { vocab, context: 128, layers: 4, heads: 4, width: 192 }
    }

    /// A very small network for fast tests.
    pub fn tiny(vocab: usize) -> Self {
        Self { vocab, context: 16, layers: 1, heads: 2, width: 16 }
    }

    /// Checks the values the layer arithmetic relies on.
    pub fn validate(&self) -> std::result::Result<(), crate::spec::InvalidSetting> {
        if self.vocab == 0 || self.context == 0 || self.layers == 0 || self.heads == 0 {
            return Err("vocab, context, layers and heads must be positive".into());
        }
        if self.width == 0 || !self.width.is_multiple_of(self.heads) {
            return Err(crate::spec::InvalidSetting(format!(
                "width {} is not a positive multiple of heads {}",
                self.width, self.heads
            )));
        }
        Ok(())
    }
}

/// Causal multi-head self-attention.
#[derive(Clone, Debug)]
struct Attention {
    qkv: Linear,
    proj: Linear,
    heads: usize,
}

impl Attention {
    fn forward(&self, x: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let (b, t, w) = x.dims3()?;
        let d = w / self.heads;
        let qkv = self.qkv.forward(x)?.reshape((b, t, 3, self.heads, d))?.permute((2, 0, 3, 1, 4))?; // [3, b, h, t, d]
        let (q, k, v) = (qkv.get(0)?.contiguous()?, qkv.get(1)?.contiguous()?, qkv.get(2)?.contiguous()?);
        let scores = (q.matmul(&k.t()?)? / (d as f64).sqrt())?.broadcast_add(mask)?; // [b, h, t, t]
        let weights = candle_nn::ops::softmax(&scores, D::Minus1)?;
        let y = weights.matmul(&v)?.transpose(1, 2)?.reshape((b, t, w))?; // [b, t, w]
        self.proj.forward(&y)
    }
}

/// One pre-norm transformer block.
#[derive(Clone, Debug)]
struct Block {
    ln1: LayerNorm,
    attn: Attention,
    ln2: LayerNorm,
    fc: Linear,
    out: Linear,
}

impl Block {
    fn new(cfg: &GptConfig, vb: VarBuilder) -> Result<Self> {
        let w = cfg.width;
        Ok(Self {
            ln1: layer_norm(w, 1e-5, vb.pp("ln1"))?,
            attn: Attention {
                qkv: linear(w, 3 * w, vb.pp("attn.qkv"))?,
                proj: linear(w, w, vb.pp("attn.proj"))?,
                heads: cfg.heads,
            },
            ln2: layer_norm(w, 1e-5, vb.pp("ln2"))?,
            fc: linear(w, 4 * w, vb.pp("mlp.fc"))?,
            out: linear(4 * w, w, vb.pp("mlp.out"))?,
        })
    }

    fn forward(&self, x: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let x = (x + self.attn.forward(&self.ln1.forward(x)?, mask)?)?;
        let h = self.fc.forward(&self.ln2.forward(&x)?)?.gelu()?;
        x + self.out.forward(&h)?
    }
}

/// The whole network.
#[derive(Clone, Debug)]
pub struct Gpt {
    tokens: Embedding,
    positions: Embedding,
    blocks: Vec<Block>,
    ln_f: LayerNorm,
    head: Linear,
    /// The shape it was built with.
    pub config: GptConfig,
}

impl Gpt {
    /// Builds the network from `vb` (names `tok`, `pos`, `blocks.N.*`, `ln_f`, `head`).
    pub fn new(cfg: &GptConfig, vb: VarBuilder) -> Result<Self> {
        cfg.validate().map_err(|e| candle_core::Error::Msg(e.0))?;
        let blocks = (0..cfg.layers).map(|i| Block::new(cfg, vb.pp(format!("blocks.{i}")))).collect::<Result<_>>()?;
        Ok(Self {
            tokens: embedding(cfg.vocab, cfg.width, vb.pp("tok"))?,
            positions: embedding(cfg.context, cfg.width, vb.pp("pos"))?,
            blocks,
            ln_f: layer_norm(cfg.width, 1e-5, vb.pp("ln_f"))?,
            head: linear(cfg.width, cfg.vocab, vb.pp("head"))?,
            config: cfg.clone(),
        })
    }

    /// `ids` [batch, t ≤ context] (u32) → logits [batch, t, vocab].
    pub fn forward(&self, ids: &Tensor) -> Result<Tensor> {
        let (_, t) = ids.dims2()?;
        if t > self.config.context {
            candle_core::bail!("{t} tokens exceed the context of {}", self.config.context);
        }
        let dev = ids.device();
        let pos = Tensor::arange(0u32, t as u32, dev)?;
        let mut x = self.tokens.forward(ids)?.broadcast_add(&self.positions.forward(&pos)?)?;
        let mask = causal_mask(t, dev)?;
        for block in &self.blocks {
            x = block.forward(&x, &mask)?;
        }
        self.head.forward(&self.ln_f.forward(&x)?)
    }

    /// Mean cross-entropy (nats per token) of predicting `targets` [batch, t] from `ids`.
    pub fn loss(&self, ids: &Tensor, targets: &Tensor) -> Result<Tensor> {
        let logits = self.forward(ids)?;
        let (b, t, v) = logits.dims3()?;
        candle_nn::loss::cross_entropy(&logits.reshape((b * t, v))?, &targets.reshape(b * t)?)
    }
}

/// 0 where a position may attend, −∞ above the diagonal: [t, t].
fn causal_mask(t: usize, dev: &candle_core::Device) -> Result<Tensor> {
    let values: Vec<f32> =
        (0..t).flat_map(|i| (0..t).map(move |j| if j <= i { 0.0 } else { f32::NEG_INFINITY })).collect();
    Tensor::from_vec(values, (t, t), dev)?.to_dtype(DType::F32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn a_token_cannot_see_the_future() {
        // Changing the last token must not change the logits of earlier positions.
        let varmap = candle_nn::VarMap::new();
        let gpt = Gpt::new(&GptConfig::tiny(7), VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu)).unwrap();
        let a = Tensor::new(&[[1u32, 2, 3, 4]], &Device::Cpu).unwrap();
        let b = Tensor::new(&[[1u32, 2, 3, 6]], &Device::Cpu).unwrap();
        let (la, lb) = (gpt.forward(&a).unwrap(), gpt.forward(&b).unwrap());
        assert_eq!(la.dims(), &[1, 4, 7]);
        let diff = |i: usize| {
            (la.get(0).unwrap().get(i).unwrap() - lb.get(0).unwrap().get(i).unwrap())
                .unwrap()
                .abs()
                .unwrap()
                .max(0)
                .unwrap()
                .to_scalar::<f32>()
                .unwrap()
        };
        assert!(diff(0) == 0.0 && diff(2) == 0.0, "earlier positions changed");
        assert!(diff(3) > 0.0, "the changed position did not change");
    }
}
