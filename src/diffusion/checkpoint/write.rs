//! Saves a diffusers folder as one file in the original layout, the
//! inverse of loading (the same `keys` map, walked from our names): how the
//! tests make single files for any shape, which diffusers' own
//! `from_single_file` then loads as an independent check.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use candle_core::{DType, Device, Tensor};

use super::family::{Family, UNET_PREFIX, VAE_PREFIX, unet_layout};
use super::keys::{Source, Transform, text_source, unet_source, vae_source};
use crate::diffusion::autoencoder::AutoencoderConfig;
use crate::diffusion::nets::{FolderError, read_config};
use crate::diffusion::unet_config::UnetConfig;

fn error(path: &Path, message: impl std::fmt::Display) -> FolderError {
    FolderError::File { path: path.to_owned(), message: message.to_string() }
}

fn first_file(dir: &Path, names: &[&str]) -> Result<std::path::PathBuf, FolderError> {
    names.iter().map(|n| dir.join(n)).find(|p| p.is_file()).ok_or_else(|| error(dir, "no weights file"))
}

/// Writes `folder`'s networks as `out` in the layout of `family`, tensors
/// stored as `dtype` (F32, F16 or BF16).
pub fn write_single_file(folder: &Path, family: Family, dtype: DType, out: &Path) -> Result<(), FolderError> {
    let mut stored: BTreeMap<String, Vec<(Transform, Tensor)>> = BTreeMap::new();
    let mut add = |dir: &Path, names: &[&str], map: &dyn Fn(&str) -> Option<Source>| -> Result<(), FolderError> {
        let path = first_file(dir, names)?;
        let tensors = candle_core::safetensors::load(&path, &Device::Cpu).map_err(|e| error(&path, e))?;
        for (ours, tensor) in tensors {
            let source =
                map(&ours).ok_or_else(|| error(&path, format!("{ours} has no place in the original layout")))?;
            stored.entry(source.name).or_default().push((source.transform, tensor));
        }
        Ok(())
    };
    let unet_config: UnetConfig = read_config(&folder.join("unet/config.json"))?;
    let layout = unet_layout(&unet_config);
    add(&folder.join("unet"), &["diffusion_pytorch_model.safetensors"], &|n| unet_source(n, &layout, UNET_PREFIX))?;
    let vae_config: AutoencoderConfig = read_config(&folder.join("vae/config.json"))?;
    let blocks = vae_config.block_out_channels.len();
    add(&folder.join("vae"), &["diffusion_pytorch_model.safetensors"], &|n| vae_source(n, blocks, VAE_PREFIX))?;
    for (i, &(prefix, layout)) in family.towers().iter().enumerate() {
        let dir = folder.join(if i == 0 { "text_encoder".into() } else { format!("text_encoder_{}", i + 1) });
        add(&dir, &["model.safetensors"], &|n| text_source(n, layout, prefix))?;
    }
    let mut tensors = HashMap::new();
    for (name, mut parts) in stored {
        parts.sort_by_key(|(t, _)| match t {
            Transform::Third(i) => *i,
            _ => 0,
        });
        let tensor = match parts.as_slice() {
            [(Transform::Same, t)] => t.clone(),
            [(Transform::Reshape, t)] => {
                let (o, i) = t.dims2().map_err(|e| error(out, e))?;
                t.reshape((o, i, 1, 1)).map_err(|e| error(out, e))?
            }
            [(Transform::Transpose, t)] => t.t().and_then(|t| t.contiguous()).map_err(|e| error(out, e))?,
            thirds if thirds.len() == 3 => {
                let ts: Vec<&Tensor> = thirds.iter().map(|(_, t)| t).collect();
                Tensor::cat(&ts, 0).map_err(|e| error(out, e))?
            }
            _ => return Err(error(out, format!("{name} is written by {} tensors", parts.len()))),
        };
        let tensor = if tensor.dtype() == DType::F32 { tensor.to_dtype(dtype) } else { Ok(tensor) };
        tensors.insert(name, tensor.map_err(|e| error(out, e))?);
    }
    candle_core::safetensors::save(&tensors, out).map_err(|e| error(out, e))
}
