//! The denoising U-Net's configuration: diffusers' `unet/config.json`, checked
//! and split into per-block numbers for our network (`unet.rs`) and,
//! as the reference the tests compare it with, candle-transformers'
//! `UNet2DConditionModel`.

use candle_transformers::models::stable_diffusion::unet_2d::{BlockConfig, UNet2DConditionModelConfig};
use serde::{Deserialize, Serialize};

/// A number for every block, or one for all (diffusers writes both forms).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PerBlock {
    All(usize),
    Each(Vec<usize>),
}

impl PerBlock {
    fn at(&self, i: usize) -> Option<usize> {
        match self {
            PerBlock::All(n) => Some(*n),
            PerBlock::Each(v) => v.get(i).copied(),
        }
    }
}

/// The per-block numbers of a U-Net config, checked.
#[derive(Clone, Debug, PartialEq)]
pub struct BlockPlan {
    /// Attention heads of each down block (up block i uses block n−1−i's).
    pub heads: Vec<usize>,
    /// Transformer layers per spatial transformer, per down block.
    pub transformer_layers: Vec<usize>,
    pub down_cross: Vec<bool>,
    pub up_cross: Vec<bool>,
}

/// `unet/config.json`: the fields the network's shape depends on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UnetConfig {
    pub in_channels: usize,
    pub out_channels: usize,
    pub block_out_channels: Vec<usize>,
    pub down_block_types: Vec<String>,
    pub up_block_types: Vec<String>,
    pub layers_per_block: usize,
    /// Heads per block in SD configs (diffusers' historical name), unless
    /// `num_attention_heads` is given.
    pub attention_head_dim: PerBlock,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_attention_heads: Option<PerBlock>,
    pub cross_attention_dim: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transformer_layers_per_block: Option<PerBlock>,
    #[serde(default)]
    pub use_linear_projection: bool,
    #[serde(default = "thirty_two")]
    pub norm_num_groups: usize,
    #[serde(default = "norm_eps")]
    pub norm_eps: f64,
    #[serde(default = "yes")]
    pub flip_sin_to_cos: bool,
    #[serde(default)]
    pub freq_shift: f64,
    #[serde(default)]
    pub center_input_sample: bool,
    #[serde(default = "one")]
    pub downsample_padding: usize,
    #[serde(default = "one_f")]
    pub mid_block_scale_factor: f64,
    /// Latent side the model was trained at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sample_size: Option<usize>,
    /// SDXL's "text_time": the pooled text embedding and the size/crop
    /// numbers, embedded and added to the timestep embedding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub addition_embed_type: Option<String>,
    /// Sinusoid width for each of the six size/crop numbers ("text_time").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub addition_time_embed_dim: Option<usize>,
    /// Input width of `add_embedding`: pooled text width + 6 × `addition_time_embed_dim`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub projection_class_embeddings_input_dim: Option<usize>,
}

fn thirty_two() -> usize {
    32
}
fn norm_eps() -> f64 {
    1e-5
}
fn yes() -> bool {
    true
}
fn one() -> usize {
    1
}
fn one_f() -> f64 {
    1.0
}

impl UnetConfig {
    /// A very small U-Net for tests: two levels, cross-attention in both.
    pub fn tiny(latent_channels: usize, cross_attention_dim: usize) -> Self {
        Self {
            in_channels: latent_channels,
            out_channels: latent_channels,
            block_out_channels: vec![32, 64],
            down_block_types: vec!["CrossAttnDownBlock2D".into(), "CrossAttnDownBlock2D".into()],
            up_block_types: vec!["CrossAttnUpBlock2D".into(), "CrossAttnUpBlock2D".into()],
            layers_per_block: 1,
            attention_head_dim: PerBlock::All(2),
            num_attention_heads: None,
            cross_attention_dim,
            transformer_layers_per_block: None,
            use_linear_projection: true,
            norm_num_groups: 32,
            norm_eps: 1e-5,
            flip_sin_to_cos: true,
            freq_shift: 0.0,
            center_input_sample: false,
            downsample_padding: 1,
            mid_block_scale_factor: 1.0,
            sample_size: Some(8),
            addition_embed_type: None,
            addition_time_embed_dim: None,
            projection_class_embeddings_input_dim: None,
        }
    }

    /// Per-block heads, transformer depths and block kinds, after checking
    /// that the numbers fit together.
    pub fn plan(&self) -> Result<BlockPlan, crate::spec::InvalidSetting> {
        let n = self.block_out_channels.len();
        if n == 0 || self.down_block_types.len() != n || self.up_block_types.len() != n {
            return Err(crate::spec::InvalidSetting(format!(
                "{n} block_out_channels but {} down and {} up block types",
                self.down_block_types.len(),
                self.up_block_types.len()
            )));
        }
        if self.layers_per_block == 0 {
            return Err("layers_per_block must be at least 1".into());
        }
        self.text_time()?;
        let kind = |name: &str, cross: &str, plain: &str| match name {
            n if n == cross => Ok(true),
            n if n == plain => Ok(false),
            other => Err(crate::spec::InvalidSetting(format!("block type {other} is not supported"))),
        };
        let down_cross = (self.down_block_types.iter())
            .map(|t| kind(t, "CrossAttnDownBlock2D", "DownBlock2D"))
            .collect::<Result<Vec<_>, _>>()?;
        let up_cross = (self.up_block_types.iter())
            .map(|t| kind(t, "CrossAttnUpBlock2D", "UpBlock2D"))
            .collect::<Result<Vec<_>, _>>()?;
        let heads_per_block = self.num_attention_heads.as_ref().unwrap_or(&self.attention_head_dim);
        let mut heads = Vec::with_capacity(n);
        let mut transformer_layers = Vec::with_capacity(n);
        for (i, &channels) in self.block_out_channels.iter().enumerate() {
            let layers = self.transformer_layers_per_block.as_ref().map_or(Some(1), |t| t.at(i));
            let (Some(layers), Some(h)) = (layers, heads_per_block.at(i)) else {
                return Err(crate::spec::InvalidSetting(format!(
                    "block {i} has no transformer_layers_per_block or attention heads"
                )));
            };
            if h == 0 || channels % h != 0 {
                return Err(crate::spec::InvalidSetting(format!("{channels} channels do not split into {h} heads")));
            }
            if self.norm_num_groups == 0 || channels % self.norm_num_groups != 0 {
                return Err(crate::spec::InvalidSetting(format!(
                    "{channels} channels do not split into {} groups",
                    self.norm_num_groups
                )));
            }
            heads.push(h);
            transformer_layers.push(layers);
        }
        Ok(BlockPlan { heads, transformer_layers, down_cross, up_cross })
    }

    /// candle-transformers' form of the config (the reference our U-Net is
    /// checked against). Its U-Net mirrors the down blocks on the way up and
    /// always normalises in 32 groups, so other layouts are refused.
    pub fn to_candle(&self) -> Result<UNet2DConditionModelConfig, crate::spec::InvalidSetting> {
        let plan = self.plan()?;
        let n = plan.heads.len();
        if (0..n).any(|i| plan.up_cross[n - 1 - i] != plan.down_cross[i]) {
            return Err("only layouts whose up blocks mirror the down blocks are supported".into());
        }
        if self.norm_num_groups != 32 {
            return Err(crate::spec::InvalidSetting(format!(
                "norm_num_groups {} is not supported (candle-transformers uses 32)",
                self.norm_num_groups
            )));
        }
        let blocks = (0..n)
            .map(|i| BlockConfig {
                out_channels: self.block_out_channels[i],
                use_cross_attn: plan.down_cross[i].then_some(plan.transformer_layers[i]),
                attention_head_dim: plan.heads[i],
            })
            .collect();
        Ok(UNet2DConditionModelConfig {
            center_input_sample: self.center_input_sample,
            flip_sin_to_cos: self.flip_sin_to_cos,
            freq_shift: self.freq_shift,
            blocks,
            layers_per_block: self.layers_per_block,
            downsample_padding: self.downsample_padding,
            mid_block_scale_factor: self.mid_block_scale_factor,
            norm_num_groups: self.norm_num_groups,
            norm_eps: self.norm_eps,
            cross_attention_dim: self.cross_attention_dim,
            sliced_attention_size: None,
            use_linear_projection: self.use_linear_projection,
        })
    }

    /// The widths of SDXL's added "text_time" embedding (the sinusoid per
    /// size/crop number, and `add_embedding`'s input), if the model has one.
    pub fn text_time(&self) -> Result<Option<(usize, usize)>, crate::spec::InvalidSetting> {
        match self.addition_embed_type.as_deref() {
            None => Ok(None),
            Some("text_time") => match (self.addition_time_embed_dim, self.projection_class_embeddings_input_dim) {
                (Some(t), Some(p)) if p > 6 * t => Ok(Some((t, p))),
                _ => Err(
                    "\"text_time\" needs addition_time_embed_dim and a larger projection_class_embeddings_input_dim"
                        .into(),
                ),
            },
            Some(other) => {
                Err(crate::spec::InvalidSetting(format!("addition_embed_type \"{other}\" is not supported")))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sd15_config_maps_to_candles_preset() {
        let json = r#"{"in_channels":4,"out_channels":4,"block_out_channels":[320,640,1280,1280],
          "down_block_types":["CrossAttnDownBlock2D","CrossAttnDownBlock2D","CrossAttnDownBlock2D","DownBlock2D"],
          "up_block_types":["UpBlock2D","CrossAttnUpBlock2D","CrossAttnUpBlock2D","CrossAttnUpBlock2D"],
          "layers_per_block":2,"attention_head_dim":8,"cross_attention_dim":768,"sample_size":64}"#;
        let cfg: UnetConfig = serde_json::from_str(json).unwrap();
        let c = cfg.to_candle().unwrap();
        assert_eq!(
            c.blocks.iter().map(|b| (b.out_channels, b.use_cross_attn, b.attention_head_dim)).collect::<Vec<_>>(),
            [(320, Some(1), 8), (640, Some(1), 8), (1280, Some(1), 8), (1280, None, 8)]
        );
        assert_eq!((c.cross_attention_dim, c.norm_num_groups, c.downsample_padding), (768, 32, 1));
    }

    #[test]
    fn sdxl_lists_are_read_per_block_and_unmirrored_layouts_refused() {
        let json = r#"{"in_channels":4,"out_channels":4,"block_out_channels":[320,640,1280],
          "down_block_types":["DownBlock2D","CrossAttnDownBlock2D","CrossAttnDownBlock2D"],
          "up_block_types":["CrossAttnUpBlock2D","CrossAttnUpBlock2D","UpBlock2D"],
          "layers_per_block":2,"attention_head_dim":[5,10,20],"transformer_layers_per_block":[1,2,10],
          "cross_attention_dim":2048,"use_linear_projection":true,"addition_embed_type":"text_time",
          "addition_time_embed_dim":256,"projection_class_embeddings_input_dim":2816}"#;
        let mut cfg: UnetConfig = serde_json::from_str(json).unwrap();
        let c = cfg.to_candle().unwrap();
        assert_eq!(
            c.blocks.iter().map(|b| (b.use_cross_attn, b.attention_head_dim)).collect::<Vec<_>>(),
            [(None, 5), (Some(2), 10), (Some(10), 20)]
        );
        assert_eq!(cfg.text_time(), Ok(Some((256, 2816))));
        cfg.up_block_types.swap(0, 2);
        assert!(cfg.to_candle().unwrap_err().to_string().contains("mirror"));
        assert_eq!(cfg.plan().unwrap().up_cross, [false, true, true]);
    }
}
