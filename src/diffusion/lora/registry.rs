//! Every weight of the loaded networks by name, so that LoRAs can be
//! merged into them in place and taken out again without reloading the
//! checkpoint: the networks are built through `Recorder`, which keeps a
//! handle on each tensor it hands a layer (the same storage, no copy);
//! `set` overwrites that storage (`slice_set`), which the layer sees at its
//! next call.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use candle_core::{DType, Device, Result, Shape, Tensor};
use candle_nn::VarBuilder;
use candle_nn::var_builder::SimpleBackend;

/// Named weights, shared with the `Recorder`s that filled them.
#[derive(Clone, Default)]
pub struct WeightRegistry {
    vars: Arc<Mutex<HashMap<String, Tensor>>>,
}

impl WeightRegistry {
    /// A `VarBuilder` that reads through `inner` and records every weight under `prefix`.
    pub fn recording(&self, inner: VarBuilder<'static>, prefix: &str) -> VarBuilder<'static> {
        let dtype = inner.dtype();
        let device = inner.device().clone();
        let backend = Recorder { inner, prefix: prefix.to_owned(), registry: self.clone() };
        VarBuilder::from_backend(Box::new(backend), dtype, device)
    }

    /// The names of every recorded weight with their shapes.
    pub fn shapes(&self) -> HashMap<String, Vec<usize>> {
        let vars = self.vars.lock().map(|v| v.clone()).unwrap_or_default();
        vars.into_iter().map(|(name, t)| (name, t.dims().to_vec())).collect()
    }

    /// The current value of a weight (a copy).
    pub fn get(&self, name: &str) -> Option<Tensor> {
        let vars = self.vars.lock().ok()?;
        vars.get(name).and_then(|t| t.copy().ok())
    }

    /// Lets go of every weight, so that dropping the networks frees them
    /// (a recorder still held elsewhere keeps only the registry itself).
    pub fn clear(&self) {
        if let Ok(mut vars) = self.vars.lock() {
            vars.clear();
        }
    }

    /// Overwrites a weight's values in place (same shape; converted to its dtype).
    pub fn set(&self, name: &str, value: &Tensor) -> Result<()> {
        let vars = self.vars.lock().map_err(|_| candle_core::Error::Msg("weight registry poisoned".into()))?;
        let Some(weight) = vars.get(name) else { candle_core::bail!("no weight {name}") };
        weight.slice_set(&value.to_dtype(weight.dtype())?.reshape(weight.shape())?.contiguous()?, 0, 0)
    }
}

struct Recorder {
    inner: VarBuilder<'static>,
    prefix: String,
    registry: WeightRegistry,
}

impl Recorder {
    fn record(&self, name: &str, tensor: Tensor) -> Result<Tensor> {
        // A weight overwritten in place must own its storage whole.
        let tensor =
            if tensor.is_contiguous() && tensor.layout().start_offset() == 0 { tensor } else { tensor.copy()? };
        if let Ok(mut vars) = self.registry.vars.lock() {
            vars.insert(format!("{}{name}", self.prefix), tensor.clone());
        }
        Ok(tensor)
    }
}

impl SimpleBackend for Recorder {
    fn get(&self, s: Shape, name: &str, h: candle_nn::Init, dtype: DType, _: &Device) -> Result<Tensor> {
        let tensor = self.inner.get_with_hints_dtype(s, name, h, dtype)?;
        self.record(name, tensor)
    }

    fn get_unchecked(&self, name: &str, dtype: DType, _: &Device) -> Result<Tensor> {
        let tensor = self.inner.get_unchecked_dtype(name, dtype)?;
        self.record(name, tensor)
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.inner.contains_tensor(name)
    }
}
