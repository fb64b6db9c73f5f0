//! `bench conv`: candle's built-in convolutions against the GEMM ones, per
//! conv layer of a shipped VAE (batch 64, its own weights) and for
//! whole-model work. `benches/torch_vae.py` times the same layers and models
//! in PyTorch from `--json` output.

use std::path::Path;

use anyhow::Context;
use candle_core::Module;
use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};

use super::bench::time_runs;
use crate::library::find_manifest;
use crate::nn::conv::{ConvBackend, set_default_backend};
use crate::nn::matrix::set_scratch_reuse;
use crate::train::adam::{Adam, AdamConfig};
use crate::train::rng::SeededRng;
use crate::vae::network::{Vae, VaeConfig, vae_loss};

/// Batch size of every row.
const BATCH: usize = 64;

fn random(shape: &[usize], seed: u64) -> candle_core::Result<Tensor> {
    let n = shape.iter().product();
    Tensor::from_vec(SeededRng::new(seed).normal_vec(n), shape, &Device::Cpu)
}

/// Median milliseconds of `f` with each backend: (built-in, GEMM).
fn both(runs: usize, f: &dyn Fn() -> anyhow::Result<()>) -> anyhow::Result<(f64, f64)> {
    set_default_backend(ConvBackend::Builtin);
    let builtin = time_runs(runs, f)?.0;
    set_default_backend(ConvBackend::Auto);
    Ok((builtin, time_runs(runs, f)?.0))
}

/// A conv layer's forward pass with the ReLU the model applies (on the default backend).
type LayerForward<'a> = Box<dyn Fn(&Tensor) -> candle_core::Result<Tensor> + 'a>;

/// One conv layer of the VAE: name, input shape and forward pass.
struct LayerCase<'a> {
    name: &'static str,
    input: [usize; 4],
    forward: LayerForward<'a>,
}

fn layer_cases(vae: &Vae) -> Vec<LayerCase<'_>> {
    let c = &vae.config;
    let (b, s) = (c.base_channels, c.image_size);
    let (enc, dec) = (&vae.encoder, &vae.decoder);
    vec![
        LayerCase {
            name: "encoder.conv1",
            input: [BATCH, c.channels, s, s],
            forward: Box::new(|x| enc.conv1.forward_relu(x)),
        },
        LayerCase {
            name: "encoder.conv2",
            input: [BATCH, b, s / 2, s / 2],
            forward: Box::new(|x| enc.conv2.forward_relu(x)),
        },
        LayerCase {
            name: "decoder.deconv1",
            input: [BATCH, 2 * b, s / 4, s / 4],
            forward: Box::new(|x| dec.deconv1.forward_relu(x)),
        },
        LayerCase {
            name: "decoder.deconv2",
            input: [BATCH, b, s / 2, s / 2],
            // The last layer gives logits: no ReLU.
            forward: Box::new(|x| dec.deconv2.forward(x)),
        },
    ]
}

/// Times every row and prints the tables (or one JSON object).
pub fn bench_conv(models_dir: &Path, id: &str, runs: usize, fresh_buffers: bool, json: bool) -> anyhow::Result<()> {
    set_scratch_reuse(!fresh_buffers);
    let manifest = find_manifest(models_dir, id)?;
    let config: VaeConfig = serde_json::from_value(manifest.config.clone()).context("bench conv needs a VAE")?;
    let mut varmap = VarMap::new();
    let vae = Vae::new(&config, VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu))?;
    let weights = manifest.weights_path();
    varmap.load(&weights).with_context(|| format!("cannot load {}", weights.display()))?;

    let mut layers = Vec::new();
    for (i, case) in layer_cases(&vae).iter().enumerate() {
        let x = Var::from_tensor(&random(&case.input, i as u64)?)?;
        let forward = || (case.forward)(x.as_tensor());
        let fwd = both(runs, &|| {
            drop(forward()?.flatten_all()?.to_vec1::<f32>()?);
            Ok(())
        })?;
        let fwd_bwd = both(runs, &|| {
            drop(forward()?.sqr()?.sum_all()?.backward()?);
            Ok(())
        })?;
        layers.push((case.name, case.input, fwd, fwd_bwd));
    }

    let dim = config.latent_dim;
    let xs = candle_nn::ops::sigmoid(&random(&[BATCH, config.channels, config.image_size, config.image_size], 20)?)?;
    let eps = random(&[BATCH, dim], 21)?;
    let (z1, z64) = (random(&[1, dim], 22)?, random(&[BATCH, dim], 23)?);
    let decode = |z: &Tensor| -> anyhow::Result<()> {
        drop(vae.decoder.decode(z)?.flatten_all()?.to_vec1::<f32>()?);
        Ok(())
    };
    let vars: Vec<(String, Var)> =
        varmap.data().lock().map_err(|_| anyhow::anyhow!("poisoned varmap"))?.clone().into_iter().collect();
    let adam = std::cell::RefCell::new(Adam::new(vars, AdamConfig::default())?);
    let step = || -> anyhow::Result<()> {
        let loss = vae_loss(&vae.forward(&xs, &eps)?, &xs, 1.0)?;
        Ok(adam.borrow_mut().backward_step(&loss.total)?)
    };
    let whole = [
        ("decode_1", both(runs, &|| decode(&z1))?),
        ("decode_64", both(runs, &|| decode(&z64))?),
        ("train_step_64", both(runs.div_ceil(2), &step)?),
    ];

    let threads = candle_core::utils::get_num_threads();
    if json {
        let pair = |(builtin, gemm): (f64, f64)| serde_json::json!({ "builtin_ms": builtin, "gemm_ms": gemm });
        let layers: Vec<_> = layers
            .iter()
            .map(|(name, input, fwd, fwd_bwd)| {
                serde_json::json!({ "name": name, "input": input, "fwd": pair(*fwd), "fwd_bwd": pair(*fwd_bwd) })
            })
            .collect();
        let whole: serde_json::Map<_, _> = whole.iter().map(|(k, v)| (k.to_string(), pair(*v))).collect();
        let out =
            serde_json::json!({ "model": id, "threads": threads, "runs": runs, "layers": layers, "whole": whole });
        println!("{out}");
        return Ok(());
    }
    let buffers = if fresh_buffers { "fresh buffers per call" } else { "reused scratch buffers" };
    println!("bench conv --model {id} ({runs} runs, {threads} threads, batch {BATCH}, {buffers}, p50 ms)\n");
    println!("| layer (input) | fwd built-in | fwd GEMM | speed-up | fwd+bwd built-in | fwd+bwd GEMM | speed-up |");
    println!("|---|---|---|---|---|---|---|");
    for (name, input, (fb, fg), (bb, bg)) in &layers {
        println!("| {name} {input:?} | {fb:.2} | {fg:.2} | {:.1}× | {bb:.2} | {bg:.2} | {:.1}× |", fb / fg, bb / bg);
    }
    println!("\n| whole VAE | built-in | GEMM | speed-up |\n|---|---|---|---|");
    for (name, (builtin, gemm)) in &whole {
        println!("| {name} | {builtin:.2} | {gemm:.2} | {:.1}× |", builtin / gemm);
    }
    Ok(())
}
