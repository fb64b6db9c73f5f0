//! CLIP's text transformer (Hugging Face `CLIPTextModel`, tensor names as in
//! its checkpoints): token and position embeddings, pre-norm causal
//! self-attention layers with an MLP, a final layer norm. Stable Diffusion
//! conditions on its last hidden state (SDXL on the one before it).
//!
//! Ours rather than candle-transformers' because theirs has no way to build a
//! configuration other than its presets (the fields are private), and the
//! tests and our emoji model need small ones.

use candle_core::{DType, Module, Result, Tensor};
use candle_nn::{Embedding, VarBuilder, embedding};
use serde::{Deserialize, Serialize};

use crate::nn::attention_op::attention;
use crate::nn::linear::{Linear, linear, linear_no_bias};
use crate::nn::norm_op::{Norm as LayerNorm, layer_norm};

/// `text_encoder/config.json`: the fields the network's shape depends on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClipTextConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub max_position_embeddings: usize,
    /// `quick_gelu` (CLIP ViT-L, SD 1.x) or `gelu` (OpenCLIP, SD 2.x/SDXL).
    #[serde(default = "quick_gelu")]
    pub hidden_act: String,
    #[serde(default = "layer_norm_eps")]
    pub layer_norm_eps: f64,
    /// Width of `text_projection` (`CLIPTextModelWithProjection`, SDXL's
    /// second encoder); used only when the weights have that tensor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub projection_dim: Option<usize>,
}

fn quick_gelu() -> String {
    "quick_gelu".into()
}

fn layer_norm_eps() -> f64 {
    1e-5
}

impl ClipTextConfig {
    /// A very small encoder for tests.
    pub fn tiny(vocab_size: usize) -> Self {
        Self {
            vocab_size,
            hidden_size: 32,
            intermediate_size: 64,
            num_hidden_layers: 2,
            num_attention_heads: 4,
            max_position_embeddings: 16,
            hidden_act: quick_gelu(),
            layer_norm_eps: layer_norm_eps(),
            projection_dim: None,
        }
    }

    /// Checks the values the layer arithmetic relies on.
    pub fn validate(&self) -> std::result::Result<(), crate::spec::InvalidSetting> {
        if self.num_attention_heads == 0 || !self.hidden_size.is_multiple_of(self.num_attention_heads) {
            return Err(crate::spec::InvalidSetting(format!(
                "hidden_size {} is not a multiple of num_attention_heads {}",
                self.hidden_size, self.num_attention_heads
            )));
        }
        if !matches!(self.hidden_act.as_str(), "quick_gelu" | "gelu") {
            return Err(crate::spec::InvalidSetting(format!("hidden_act \"{}\" is not supported", self.hidden_act)));
        }
        Ok(())
    }
}

struct Layer {
    q: Linear,
    k: Linear,
    v: Linear,
    out: Linear,
    norm1: LayerNorm,
    norm2: LayerNorm,
    fc1: Linear,
    fc2: Linear,
}

/// The text encoder.
pub struct ClipTextModel {
    tokens: Embedding,
    positions: Embedding,
    layers: Vec<Layer>,
    final_norm: LayerNorm,
    /// `text_projection` of the pooled state, in models that have one.
    projection: Option<Linear>,
    config: ClipTextConfig,
}

impl ClipTextModel {
    /// Builds the model from `vb` (the root of `text_encoder/model.safetensors`).
    pub fn new(config: &ClipTextConfig, vb: VarBuilder) -> Result<Self> {
        config.validate().map_err(candle_core::Error::msg)?;
        let (h, eps) = (config.hidden_size, config.layer_norm_eps);
        let projection = if vb.contains_tensor("text_projection.weight") {
            Some(linear_no_bias(h, config.projection_dim.unwrap_or(h), vb.pp("text_projection"))?)
        } else {
            None
        };
        let vb = vb.pp("text_model");
        let emb = vb.pp("embeddings");
        let tokens = embedding(config.vocab_size, h, emb.pp("token_embedding"))?;
        let positions = embedding(config.max_position_embeddings, h, emb.pp("position_embedding"))?;
        let layers = (0..config.num_hidden_layers)
            .map(|i| {
                let vb = vb.pp(format!("encoder.layers.{i}"));
                let attn = vb.pp("self_attn");
                Ok(Layer {
                    q: linear(h, h, attn.pp("q_proj"))?,
                    k: linear(h, h, attn.pp("k_proj"))?,
                    v: linear(h, h, attn.pp("v_proj"))?,
                    out: linear(h, h, attn.pp("out_proj"))?,
                    norm1: layer_norm(h, eps, vb.pp("layer_norm1"))?,
                    norm2: layer_norm(h, eps, vb.pp("layer_norm2"))?,
                    fc1: linear(h, config.intermediate_size, vb.pp("mlp.fc1"))?,
                    fc2: linear(config.intermediate_size, h, vb.pp("mlp.fc2"))?,
                })
            })
            .collect::<Result<_>>()?;
        let final_norm = layer_norm(h, eps, vb.pp("final_layer_norm"))?;
        Ok(Self { tokens, positions, layers, final_norm, projection, config: config.clone() })
    }

    /// The configuration the model was built with.
    pub fn config(&self) -> &ClipTextConfig {
        &self.config
    }

    fn activation(&self, x: &Tensor) -> Result<Tensor> {
        match self.config.hidden_act.as_str() {
            "gelu" => x.gelu_erf(),
            _ => x * candle_nn::ops::sigmoid(&(x * 1.702)?)?,
        }
    }

    fn attention(&self, layer: &Layer, x: &Tensor) -> Result<Tensor> {
        let (q, k, v) = (layer.q.forward(x)?, layer.k.forward(x)?, layer.v.forward(x)?);
        layer.out.forward(&attention(&q, &k, &v, self.config.num_attention_heads, true)?)
    }

    /// Hidden states for token ids [batch, n]: the last one after the final
    /// norm [batch, n, hidden] (SD 1.x/2.x's conditioning) and the input of
    /// the last layer, un-normed (SDXL's "penultimate" states).
    pub fn forward(&self, ids: &Tensor) -> Result<(Tensor, Tensor)> {
        self.forward_with_vectors(ids, &[])
    }

    /// As `forward`, with token embeddings replaced from position `offset`
    /// on by the rows of `vectors` [k, hidden] (textual-inversion embeddings),
    /// in every sequence of the batch.
    pub fn forward_with_vectors(&self, ids: &Tensor, replaced: &[(usize, Tensor)]) -> Result<(Tensor, Tensor)> {
        let (_, n) = ids.dims2()?;
        if n > self.config.max_position_embeddings {
            candle_core::bail!("{n} tokens exceed the encoder's {} positions", self.config.max_position_embeddings);
        }
        let device = ids.device();
        let position_ids = Tensor::arange(0u32, n as u32, device)?;
        // The token table may be stored half (see `checkpoint::mapped`).
        let mut embedded = self.tokens.forward(ids)?.to_dtype(self.dtype())?;
        for (offset, vectors) in replaced {
            let (k, _) = vectors.dims2()?;
            if offset + k > n {
                candle_core::bail!("an embedding of {k} vectors at token {offset} does not fit in {n}");
            }
            let batch = embedded.dim(0)?;
            let rows = vectors.to_dtype(embedded.dtype())?.unsqueeze(0)?.repeat((batch, 1, 1))?;
            let before = embedded.narrow(1, 0, *offset)?;
            let after = embedded.narrow(1, offset + k, n - offset - k)?;
            embedded = Tensor::cat(&[&before, &rows, &after], 1)?;
        }
        let mut x = embedded.broadcast_add(&self.positions.forward(&position_ids)?)?;
        let mut penultimate = x.clone();
        for (i, layer) in self.layers.iter().enumerate() {
            if i + 1 == self.layers.len() {
                penultimate = x.clone();
            }
            let attended = self.attention(layer, &layer.norm1.forward(&x)?)?;
            x = (x + attended)?;
            let hidden = self.activation(&layer.fc1.forward(&layer.norm2.forward(&x)?)?)?;
            x = (&x + layer.fc2.forward(&hidden)?)?;
        }
        Ok((self.final_norm.forward(&x)?, penultimate))
    }

    /// The projected pooled state (`text_embeds` of `CLIPTextModelWithProjection`):
    /// the last state at each sequence's end token (its largest id, as
    /// transformers finds it), through `text_projection`. `None` without one.
    pub fn pooled(&self, last: &Tensor, ids: &Tensor) -> Result<Option<Tensor>> {
        let Some(projection) = &self.projection else { return Ok(None) };
        let ends = ids.argmax(1)?.to_vec1::<u32>()?;
        let rows =
            ends.iter().enumerate().map(|(b, &end)| last.get(b)?.get(end as usize)).collect::<Result<Vec<_>>>()?;
        projection.forward(&Tensor::stack(&rows, 0)?).map(Some)
    }

    /// The conditioning for prompts already tokenized, [batch, n, hidden].
    pub fn encode(&self, ids: &[Vec<u32>]) -> Result<Tensor> {
        let n = ids.first().map_or(0, Vec::len);
        let flat: Vec<u32> = ids.iter().flatten().copied().collect();
        let ids = Tensor::from_vec(flat, (ids.len(), n), self.tokens.embeddings().device())?;
        Ok(self.forward(&ids)?.0)
    }

    /// The dtype it computes in (that of its position table).
    pub fn dtype(&self) -> DType {
        self.positions.embeddings().dtype()
    }
}
