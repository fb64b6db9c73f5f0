//! `bench conv`: candle's built-in convolutions against the GEMM ones, per
//! conv layer of the shipped VAEs (batch 64) and for whole-model work.

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{Conv2dConfig, ConvTranspose2dConfig, VarBuilder, VarMap};

use super::bench::time_runs;
use crate::models::conv::{ConvBackend, conv_transpose2d, conv2d, set_default_backend};
use crate::models::vae::{Vae, VaeConfig, vae_loss};
use crate::pipelines::adam::{Adam, AdamConfig};
use crate::pipelines::rng::SeededRng;

fn random(shape: &[usize], seed: u64) -> candle_core::Result<Tensor> {
    let n = shape.iter().product();
    Tensor::from_vec(SeededRng::new(seed).normal_vec(n), shape, &Device::Cpu)
}

/// One row: `forward` on `x` alone and with the backward pass, each backend.
fn layer_row(
    name: &str,
    runs: usize,
    x: &Var,
    forward: &dyn Fn(&Tensor, ConvBackend) -> candle_core::Result<Tensor>,
) -> anyhow::Result<()> {
    let mut cells = Vec::new();
    for backward in [false, true] {
        for backend in [ConvBackend::Builtin, ConvBackend::Auto] {
            let run = || -> anyhow::Result<()> {
                let y = forward(x.as_tensor(), backend)?;
                if backward {
                    y.sqr()?.sum_all()?.backward()?;
                } else {
                    y.flatten_all()?.to_vec1::<f32>()?;
                }
                Ok(())
            };
            cells.push(time_runs(runs, run)?.0);
        }
    }
    println!(
        "| {name} | {:.2} | {:.2} | {:.1}× | {:.2} | {:.2} | {:.1}× |",
        cells[0],
        cells[1],
        cells[0] / cells[1],
        cells[2],
        cells[3],
        cells[2] / cells[3]
    );
    Ok(())
}

/// Prints the per-layer and whole-model tables.
pub fn bench_conv(runs: usize) -> anyhow::Result<()> {
    let cfg = VaeConfig::mnist(16);
    let b = cfg.base_channels;
    let down = Conv2dConfig { padding: 1, stride: 2, ..Default::default() };
    let up = ConvTranspose2dConfig { padding: 1, stride: 2, ..Default::default() };
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    println!("bench conv ({runs} runs, {} threads, batch 64, p50 ms)\n", candle_core::utils::get_num_threads());
    println!("| layer | fwd built-in | fwd GEMM | speed-up | fwd+bwd built-in | fwd+bwd GEMM | speed-up |");
    println!("|---|---|---|---|---|---|---|");
    let convs = [
        ("encoder.conv1 1→32, 28→14", conv2d(1, b, 4, down, vb.pp("c1"))?, [64, 1, 28, 28]),
        ("encoder.conv2 32→64, 14→7", conv2d(b, 2 * b, 4, down, vb.pp("c2"))?, [64, b, 14, 14]),
    ];
    for (i, (name, layer, shape)) in convs.iter().enumerate() {
        layer_row(name, runs, &Var::from_tensor(&random(shape, i as u64)?)?, &|x, backend| {
            layer.forward_with(x, backend, true)
        })?;
    }
    let deconvs = [
        ("decoder.deconv1 64→32, 7→14", conv_transpose2d(2 * b, b, 4, up, vb.pp("d1"))?, [64, 2 * b, 7, 7]),
        ("decoder.deconv2 32→1, 14→28", conv_transpose2d(b, 1, 4, up, vb.pp("d2"))?, [64, b, 14, 14]),
    ];
    for (i, (name, layer, shape)) in deconvs.iter().enumerate() {
        let x = Var::from_tensor(&random(shape, 10 + i as u64)?)?;
        let relu = i == 0; // as in the VAE: the last layer gives logits
        layer_row(name, runs, &x, &|x, backend| layer.forward_with(x, backend, relu))?;
    }

    println!("\n| whole VAE (16-D latent) | built-in | GEMM | speed-up |\n|---|---|---|---|");
    let vae = Vae::new(&cfg, vb.pp("vae"))?;
    let xs = candle_nn::ops::sigmoid(&random(&[64, 1, 28, 28], 20)?)?;
    let eps = random(&[64, 16], 21)?;
    let z1 = random(&[1, 16], 22)?;
    let z64 = random(&[64, 16], 23)?;
    let vars: Vec<(String, Var)> =
        varmap.data().lock().map_err(|_| anyhow::anyhow!("poisoned varmap"))?.clone().into_iter().collect();
    let adam = std::cell::RefCell::new(Adam::new(vars, AdamConfig::default())?);
    let rows: [(&str, Box<dyn Fn() -> anyhow::Result<()>>); 5] = [
        ("decode, batch 1", Box::new(|| Ok(drop(vae.decoder.decode(&z1)?.flatten_all()?.to_vec1::<f32>()?)))),
        ("decode, batch 64", Box::new(|| Ok(drop(vae.decoder.decode(&z64)?.flatten_all()?.to_vec1::<f32>()?)))),
        (
            "forward + loss, batch 64",
            Box::new(|| Ok(vae_loss(&vae.forward(&xs, &eps)?, &xs, 1.0)?.total.to_scalar::<f32>().map(|_| ())?)),
        ),
        (
            "forward + loss + backward, batch 64",
            Box::new(|| Ok(drop(vae_loss(&vae.forward(&xs, &eps)?, &xs, 1.0)?.total.backward()?))),
        ),
        (
            "training step (+ AdamW), batch 64",
            Box::new(|| Ok(adam.borrow_mut().backward_step(&vae_loss(&vae.forward(&xs, &eps)?, &xs, 1.0)?.total)?)),
        ),
    ];
    for (name, f) in &rows {
        set_default_backend(ConvBackend::Builtin);
        let builtin = time_runs(runs, f)?.0;
        set_default_backend(ConvBackend::Auto);
        let gemm = time_runs(runs, f)?.0;
        println!("| {name} | {builtin:.2} | {gemm:.2} | {:.1}× |", builtin / gemm);
    }
    Ok(())
}
