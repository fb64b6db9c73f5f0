//! Seeded initialisation of a network's parameters.

use candle_core::Tensor;
use candle_nn::VarMap;

use crate::train::rng::SeededRng;

/// Every variable of `varmap` with its name.
pub fn named_vars(varmap: &VarMap) -> Vec<(String, candle_core::Var)> {
    let data = varmap.data().lock().map(|d| d.iter().map(|(k, v)| (k.clone(), v.clone())).collect());
    data.unwrap_or_default()
}

/// Draws every parameter from the project's seeded generator (candle's own
/// initialiser uses an unseeded thread RNG, and a seed must fix the whole
/// run): weights are N(0, 1/fan_in) with fan_in the product of all but the
/// first dimension (LeCun normal), biases start at zero, and the scales of
/// normalisation layers (names containing `norm`) at one.
pub fn reseed_parameters(varmap: &VarMap, seed: u64) -> candle_core::Result<()> {
    let mut vars = named_vars(varmap);
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    let mut rng = SeededRng::new(seed);
    for (name, var) in vars {
        let dims = var.dims();
        let fresh: Vec<f32> = if name.contains("norm") && name.ends_with("weight") {
            vec![1.0; var.elem_count()]
        } else if name.ends_with("bias") || dims.len() < 2 {
            vec![0.0; var.elem_count()]
        } else {
            let std = (1.0 / dims[1..].iter().product::<usize>() as f64).sqrt();
            (0..var.elem_count()).map(|_| (rng.normal() * std) as f32).collect()
        };
        var.set(&Tensor::from_vec(fresh, var.shape(), var.device())?)?;
    }
    Ok(())
}

/// Sets every variable named `var_prefix…` from the tensor `file_prefix…`
/// of the safetensors `file` (fine-tuning from a finished model). Every such
/// variable must be in the file with its shape; returns how many were set.
pub fn load_matching(
    varmap: &VarMap,
    file: &std::path::Path,
    var_prefix: &str,
    file_prefix: &str,
) -> Result<usize, crate::train::error::TrainError> {
    use crate::train::error::file_err;
    let mut vars = named_vars(varmap);
    vars.retain(|(name, _)| name.starts_with(var_prefix));
    let Some((_, first)) = vars.first() else { return Ok(0) };
    let tensors = candle_core::safetensors::load(file, first.device()).map_err(|e| file_err(file, e))?;
    for (name, var) in &vars {
        let key = format!("{file_prefix}{}", &name[var_prefix.len()..]);
        let tensor = tensors.get(&key).ok_or_else(|| file_err(file, format!("has no tensor {key}")))?;
        if tensor.dims() != var.dims() {
            let detail = format!("{key} is {:?}, the model being trained needs {:?}", tensor.dims(), var.dims());
            return Err(file_err(file, detail));
        }
        var.set(&tensor.to_dtype(var.dtype())?)?;
    }
    Ok(vars.len())
}
