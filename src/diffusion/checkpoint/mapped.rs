//! A candle `VarBuilder` backend over a single-file checkpoint: asked for a
//! tensor by our (diffusers) name, it finds the stored tensor through
//! `keys`, reads it, reshapes, splits or transposes it, and converts it once.
//! Half-precision layer weights can stay half (`keep_half`): our linear and
//! convolution layers widen them only for the moment they multiply.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use rayon::prelude::*;

use candle_core::{DType, Device, Result, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;

use super::keys::{Source, Transform};
use super::tensor_file::TensorFile;

/// Maps one of our names to its place in the file.
pub type KeyMap = Arc<dyn Fn(&str) -> Option<Source> + Send + Sync>;

/// The backend.
pub struct MappedWeights {
    pub file: Arc<TensorFile>,
    pub map: KeyMap,
    /// Keep F16/BF16 matrices and kernels (2-D and 4-D `weight`s) as stored.
    pub keep_half: bool,
    /// Tensors read ahead, in parallel, taken out as layers ask for them.
    pub ahead: Mutex<HashMap<String, Tensor>>,
}

impl MappedWeights {
    /// The backend, with every tensor whose name starts with `prefix` read
    /// ahead on all cores (one thread reading tensor after tensor is what
    /// a load spends its time on).
    pub fn read_ahead(file: Arc<TensorFile>, map: KeyMap, keep_half: bool, prefix: &str, device: &Device) -> Self {
        let names: Vec<&String> =
            file.header().entries.keys().filter(|n| n.starts_with(prefix) && !autoencoder_encoder(n)).collect();
        let ahead: HashMap<String, Tensor> =
            names.par_iter().filter_map(|n| Some(((*n).clone(), file.read(n, device).ok()?))).collect();
        Self { file, map, keep_half, ahead: Mutex::new(ahead) }
    }

    fn source(&self, name: &str) -> Result<Source> {
        match (self.map)(name) {
            Some(source) if self.file.contains(&source.name) => Ok(source),
            Some(source) => candle_core::bail!("no tensor {} (for {name})", source.name),
            None => candle_core::bail!("no place in this layout for {name}"),
        }
    }

    fn read(&self, name: &str, expected: Option<&Shape>, dtype: DType, device: &Device) -> Result<Tensor> {
        let source = self.source(name)?;
        let early = self.ahead.lock().ok().and_then(|mut ahead| ahead.remove(&source.name));
        let stored = match early {
            Some(tensor) => tensor,
            None => self.file.read(&source.name, device)?,
        };
        let t = match source.transform {
            Transform::Same => stored,
            Transform::Reshape => match expected {
                Some(shape) if shape.elem_count() == stored.elem_count() => stored.reshape(shape)?,
                _ => stored.squeeze(3)?.squeeze(2)?,
            },
            Transform::Third(part) => {
                let rows = stored.dim(0)?;
                if rows % 3 != 0 {
                    candle_core::bail!("{}: {rows} rows do not split into q, k and v", source.name);
                }
                stored.narrow(0, part * rows / 3, rows / 3)?
            }
            Transform::Transpose => stored.t()?.contiguous()?,
        };
        if let Some(shape) = expected
            && t.shape() != shape
        {
            candle_core::bail!(
                "{} has shape {:?} in the file; the model needs {:?} for {name}",
                source.name,
                t.dims(),
                shape
            );
        }
        let half = matches!(t.dtype(), DType::F16 | DType::BF16);
        // Position tables are added whole, so they are widened here; a token
        // table (38 M values in CLIP) stays half and only the rows a prompt
        // looks up are widened.
        let layer_weight = name.ends_with(".weight")
            && matches!(t.rank(), 2 | 4)
            && (!name.contains("embedding") || name.ends_with("token_embedding.weight"));
        if self.keep_half && half && layer_weight { Ok(t) } else { t.to_dtype(dtype) }
    }
}

/// Whether a stored tensor belongs to an autoencoder's encoding half
/// (`encoder.*`, `quant_conv.*`, in a checkpoint under `first_stage_model.`),
/// which is read when first used rather than ahead (`Autoencoder::with_encoder_on_demand`).
fn autoencoder_encoder(stored: &str) -> bool {
    let rest = stored.strip_prefix("first_stage_model.").unwrap_or(stored);
    rest.starts_with("encoder.") || rest.starts_with("quant_conv.")
}

impl SimpleBackend for MappedWeights {
    fn get(&self, s: Shape, name: &str, _: candle_nn::Init, dtype: DType, dev: &Device) -> Result<Tensor> {
        self.read(name, Some(&s), dtype, dev)
    }

    fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> Result<Tensor> {
        self.read(name, None, dtype, dev)
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.source(name).is_ok()
    }
}
