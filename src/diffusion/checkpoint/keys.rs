//! Where each of our (diffusers-named) tensors lives in a single-file
//! checkpoint in the original CompVis/Stability layout, as A1111 and
//! ComfyUI save them: `model.diffusion_model.` (U-Net, numbered
//! `input_blocks`/`middle_block`/`output_blocks`), `first_stage_model.`
//! (autoencoder, `down.{i}.block.{j}`), and the text towers either in
//! transformers' layout (`cond_stage_model.transformer.`, SD 1.x and SDXL's
//! first) or OpenCLIP's (`cond_stage_model.model.`, SD 2.x and SDXL's
//! second: `resblocks`, fused `in_proj`, a transposed `text_projection`).
//!
//! One direction only, ours → theirs: loading asks for our names and reads
//! theirs, and the writer the tests use walks our names too, so reading and
//! writing cannot disagree.

/// How a stored tensor becomes ours.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transform {
    /// Taken as it is.
    Same,
    /// Same values, another shape (the autoencoder's 1×1-convolution
    /// attention projections are our linear layers).
    Reshape,
    /// Rows `part·n/3 ..` of a fused q/k/v tensor (OpenCLIP's `in_proj`).
    Third(usize),
    /// Transposed (OpenCLIP's `text_projection` multiplies from the right).
    Transpose,
}

/// A tensor's name in the checkpoint and how to read it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Source {
    pub name: String,
    pub transform: Transform,
}

impl Source {
    fn same(name: String) -> Self {
        Self { name, transform: Transform::Same }
    }
}

/// The U-Net's shape as far as its numbering depends on it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnetLayout {
    pub layers_per_block: usize,
    /// Whether up block `i` has attention (its upsampler then comes third).
    pub up_attention: Vec<bool>,
}

/// The layout a text tower is stored in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TextLayout {
    /// transformers' `CLIPTextModel` names under a prefix.
    Transformers,
    /// OpenCLIP's names.
    OpenClip,
}

/// A U-Net tensor's source (`ours` without prefix; `prefix` like `model.diffusion_model.`).
pub fn unet_source(ours: &str, layout: &UnetLayout, prefix: &str) -> Option<Source> {
    let l = layout.layers_per_block;
    let parts: Vec<&str> = ours.split('.').collect();
    let rest = |from: usize| parts[from.min(parts.len())..].join(".");
    let theirs = match parts.as_slice() {
        ["conv_in", ..] => format!("input_blocks.0.0.{}", rest(1)),
        ["time_embedding", "linear_1", ..] => format!("time_embed.0.{}", rest(2)),
        ["time_embedding", "linear_2", ..] => format!("time_embed.2.{}", rest(2)),
        ["add_embedding", "linear_1", ..] => format!("label_emb.0.0.{}", rest(2)),
        ["add_embedding", "linear_2", ..] => format!("label_emb.0.2.{}", rest(2)),
        ["conv_norm_out", ..] => format!("out.0.{}", rest(1)),
        ["conv_out", ..] => format!("out.2.{}", rest(1)),
        ["down_blocks", b, "resnets", j, ..] => {
            format!("input_blocks.{}.0.{}", 1 + num(b)? * (l + 1) + num(j)?, resnet_name(&rest(4))?)
        }
        ["down_blocks", b, "attentions", j, ..] => {
            format!("input_blocks.{}.1.{}", 1 + num(b)? * (l + 1) + num(j)?, rest(4))
        }
        ["down_blocks", b, "downsamplers", "0", "conv", ..] => {
            format!("input_blocks.{}.0.op.{}", (num(b)? + 1) * (l + 1), rest(5))
        }
        ["mid_block", "resnets", j, ..] => format!("middle_block.{}.{}", 2 * num(j)?, resnet_name(&rest(3))?),
        ["mid_block", "attentions", "0", ..] => format!("middle_block.1.{}", rest(3)),
        ["up_blocks", b, "resnets", j, ..] => {
            format!("output_blocks.{}.0.{}", num(b)? * (l + 1) + num(j)?, resnet_name(&rest(4))?)
        }
        ["up_blocks", b, "attentions", j, ..] => {
            format!("output_blocks.{}.1.{}", num(b)? * (l + 1) + num(j)?, rest(4))
        }
        ["up_blocks", b, "upsamplers", "0", "conv", ..] => {
            let b = num(b)?;
            let slot = if *layout.up_attention.get(b)? { 2 } else { 1 };
            format!("output_blocks.{}.{slot}.conv.{}", b * (l + 1) + l, rest(5))
        }
        _ => return None,
    };
    Some(Source::same(format!("{prefix}{theirs}")))
}

fn num(s: &str) -> Option<usize> {
    s.parse().ok()
}

/// A ResNet block's tensor in the original names (U-Net).
fn resnet_name(ours: &str) -> Option<String> {
    let (layer, param) = ours.split_once('.')?;
    let theirs = match layer {
        "norm1" => "in_layers.0",
        "conv1" => "in_layers.2",
        "time_emb_proj" => "emb_layers.1",
        "norm2" => "out_layers.0",
        "conv2" => "out_layers.3",
        "conv_shortcut" => "skip_connection",
        _ => return None,
    };
    Some(format!("{theirs}.{param}"))
}

/// An autoencoder tensor's source; `blocks` is the number of resolution levels.
pub fn vae_source(ours: &str, blocks: usize, prefix: &str) -> Option<Source> {
    let parts: Vec<&str> = ours.split('.').collect();
    let rest = |from: usize| parts[from.min(parts.len())..].join(".");
    let mut transform = Transform::Same;
    let theirs = match parts.as_slice() {
        ["quant_conv" | "post_quant_conv", ..] => ours.to_owned(),
        [side @ ("encoder" | "decoder"), "conv_in" | "conv_out", ..] => format!("{side}.{}", rest(1)),
        [side @ ("encoder" | "decoder"), "conv_norm_out", ..] => format!("{side}.norm_out.{}", rest(2)),
        ["encoder", "down_blocks", i, "resnets", j, ..] => {
            format!("encoder.down.{i}.block.{j}.{}", vae_resnet(&rest(5)))
        }
        ["encoder", "down_blocks", i, "downsamplers", "0", ..] => format!("encoder.down.{i}.downsample.{}", rest(5)),
        ["decoder", "up_blocks", i, "resnets", j, ..] => {
            format!("decoder.up.{}.block.{j}.{}", blocks.checked_sub(1 + num(i)?)?, vae_resnet(&rest(5)))
        }
        ["decoder", "up_blocks", i, "upsamplers", "0", ..] => {
            format!("decoder.up.{}.upsample.{}", blocks.checked_sub(1 + num(i)?)?, rest(5))
        }
        [side, "mid_block", "resnets", j, ..] => format!("{side}.mid.block_{}.{}", num(j)? + 1, vae_resnet(&rest(4))),
        [side, "mid_block", "attentions", "0", layer @ .., param] => {
            let theirs = match layer.join(".").as_str() {
                "group_norm" => "norm",
                "to_q" | "query" => "q",
                "to_k" | "key" => "k",
                "to_v" | "value" => "v",
                "to_out.0" | "proj_attn" => "proj_out",
                _ => return None,
            };
            if *param == "weight" && theirs != "norm" {
                transform = Transform::Reshape;
            }
            format!("{side}.mid.attn_1.{theirs}.{param}")
        }
        _ => return None,
    };
    Some(Source { name: format!("{prefix}{theirs}"), transform })
}

/// A ResNet block's tensor in the autoencoder's original names.
fn vae_resnet(ours: &str) -> String {
    match ours.strip_prefix("conv_shortcut.") {
        Some(param) => format!("nin_shortcut.{param}"),
        None => ours.to_owned(),
    }
}

/// A text tower tensor's source (`ours` as in `text_encoder/model.safetensors`).
pub fn text_source(ours: &str, layout: TextLayout, prefix: &str) -> Option<Source> {
    if layout == TextLayout::Transformers {
        return Some(Source::same(format!("{prefix}{ours}")));
    }
    let parts: Vec<&str> = ours.split('.').collect();
    let rest = |from: usize| parts[from.min(parts.len())..].join(".");
    let mut transform = Transform::Same;
    let theirs = match parts.as_slice() {
        ["text_projection", "weight"] => {
            transform = Transform::Transpose;
            "text_projection".to_owned()
        }
        ["text_model", "embeddings", "token_embedding", "weight"] => "token_embedding.weight".to_owned(),
        ["text_model", "embeddings", "position_embedding", "weight"] => "positional_embedding".to_owned(),
        ["text_model", "final_layer_norm", ..] => format!("ln_final.{}", rest(2)),
        ["text_model", "encoder", "layers", i, "self_attn", proj @ ("q_proj" | "k_proj" | "v_proj"), param] => {
            transform = Transform::Third(match *proj {
                "q_proj" => 0,
                "k_proj" => 1,
                _ => 2,
            });
            format!("transformer.resblocks.{i}.attn.in_proj_{param}")
        }
        ["text_model", "encoder", "layers", i, "self_attn", "out_proj", ..] => {
            format!("transformer.resblocks.{i}.attn.out_proj.{}", rest(6))
        }
        ["text_model", "encoder", "layers", i, layer, ..] => {
            let theirs = match *layer {
                "layer_norm1" => "ln_1",
                "layer_norm2" => "ln_2",
                "mlp" => match parts.get(5) {
                    Some(&"fc1") => "mlp.c_fc",
                    Some(&"fc2") => "mlp.c_proj",
                    _ => return None,
                },
                _ => return None,
            };
            let from = if *layer == "mlp" { 6 } else { 5 };
            format!("transformer.resblocks.{i}.{theirs}.{}", rest(from))
        }
        _ => return None,
    };
    Some(Source { name: format!("{prefix}{theirs}"), transform })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SD: &str = "model.diffusion_model.";

    fn sd15() -> UnetLayout {
        UnetLayout { layers_per_block: 2, up_attention: vec![false, true, true, true] }
    }

    fn unet(ours: &str) -> String {
        unet_source(ours, &sd15(), SD).map(|s| s.name).unwrap_or_default()
    }

    /// Names checked against SD 1.5's checkpoint as published (v1-5-pruned-emaonly).
    #[test]
    fn sd15_unet_names_are_the_published_ones() {
        assert_eq!(unet("conv_in.weight"), "model.diffusion_model.input_blocks.0.0.weight");
        assert_eq!(unet("time_embedding.linear_2.bias"), "model.diffusion_model.time_embed.2.bias");
        assert_eq!(
            unet("down_blocks.0.resnets.1.conv2.weight"),
            "model.diffusion_model.input_blocks.2.0.out_layers.3.weight"
        );
        assert_eq!(
            unet("down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k.weight"),
            "model.diffusion_model.input_blocks.4.1.transformer_blocks.0.attn2.to_k.weight"
        );
        assert_eq!(
            unet("down_blocks.2.downsamplers.0.conv.weight"),
            "model.diffusion_model.input_blocks.9.0.op.weight"
        );
        assert_eq!(
            unet("down_blocks.3.resnets.1.norm1.bias"),
            "model.diffusion_model.input_blocks.11.0.in_layers.0.bias"
        );
        assert_eq!(
            unet("mid_block.resnets.1.time_emb_proj.weight"),
            "model.diffusion_model.middle_block.2.emb_layers.1.weight"
        );
        assert_eq!(
            unet("mid_block.attentions.0.proj_in.weight"),
            "model.diffusion_model.middle_block.1.proj_in.weight"
        );
        assert_eq!(unet("up_blocks.0.upsamplers.0.conv.weight"), "model.diffusion_model.output_blocks.2.1.conv.weight");
        assert_eq!(unet("up_blocks.1.upsamplers.0.conv.bias"), "model.diffusion_model.output_blocks.5.2.conv.bias");
        assert_eq!(
            unet("up_blocks.3.resnets.2.conv_shortcut.weight"),
            "model.diffusion_model.output_blocks.11.0.skip_connection.weight"
        );
        assert_eq!(unet("conv_norm_out.weight"), "model.diffusion_model.out.0.weight");
        assert_eq!(unet("up_blocks.0.resnets.0.bogus.weight"), "");
    }

    #[test]
    fn autoencoder_and_openclip_names() {
        let vae = |ours: &str| vae_source(ours, 4, "first_stage_model.").unwrap();
        assert_eq!(
            vae("decoder.up_blocks.0.resnets.2.conv1.weight").name,
            "first_stage_model.decoder.up.3.block.2.conv1.weight"
        );
        assert_eq!(
            vae("decoder.up_blocks.3.upsamplers.0.conv.weight").name,
            "first_stage_model.decoder.up.0.upsample.conv.weight"
        );
        assert_eq!(
            vae("encoder.down_blocks.1.resnets.0.conv_shortcut.bias").name,
            "first_stage_model.encoder.down.1.block.0.nin_shortcut.bias"
        );
        let q = vae("encoder.mid_block.attentions.0.to_q.weight");
        assert_eq!(
            (q.name.as_str(), q.transform),
            ("first_stage_model.encoder.mid.attn_1.q.weight", Transform::Reshape)
        );
        assert_eq!(vae("decoder.mid_block.attentions.0.to_out.0.bias").transform, Transform::Same);
        let clip = |ours: &str| text_source(ours, TextLayout::OpenClip, "cond_stage_model.model.").unwrap();
        let v = clip("text_model.encoder.layers.22.self_attn.v_proj.bias");
        assert_eq!(
            (v.name.as_str(), v.transform),
            ("cond_stage_model.model.transformer.resblocks.22.attn.in_proj_bias", Transform::Third(2))
        );
        assert_eq!(
            clip("text_model.encoder.layers.0.mlp.fc2.weight").name,
            "cond_stage_model.model.transformer.resblocks.0.mlp.c_proj.weight"
        );
        assert_eq!(clip("text_projection.weight").transform, Transform::Transpose);
        assert_eq!(
            clip("text_model.embeddings.position_embedding.weight").name,
            "cond_stage_model.model.positional_embedding"
        );
    }
}
