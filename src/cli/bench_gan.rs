//! `bench gan`: DCGAN training speed (one discriminator step and one
//! generator step per batch) in real images per second, for
//! `benches/torch_gan.py` to put next to PyTorch. `--dump DIR` also writes
//! the initial weights, the first batch and our first step's losses so the
//! reference can check that it computes the same thing.

use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

use candle_core::{Device, Tensor};

use crate::gan::network::GanConfig;
use crate::gan::train::{GanTrainer, TrainGanSpec};
use crate::io::datasets::DatasetName;
use crate::train::rng::SeededRng;

/// Times `steps` training steps of the emoji DCGAN at `batch` after two warm-up steps.
pub fn bench_gan(batch: usize, steps: usize, dump: Option<&Path>, json: bool) -> anyhow::Result<()> {
    let config = GanConfig::emoji();
    let spec = TrainGanSpec { batch_size: batch, ..TrainGanSpec::dcgan(DatasetName::Emoji, config.clone(), 1, 0) };
    let mut trainer = GanTrainer::new(spec, &Device::Cpu)?;
    let mut rng = SeededRng::new(11);
    let s = config.image_size;
    let batch_of = |rng: &mut SeededRng| -> candle_core::Result<(Tensor, Tensor)> {
        let real: Vec<f32> = rng.normal_vec(batch * 3 * s * s).into_iter().map(|v| (v * 0.5).tanh()).collect();
        let z = rng.normal_vec(batch * config.latent_dim);
        Ok((
            Tensor::from_vec(real, (batch, 3, s, s), &Device::Cpu)?,
            Tensor::from_vec(z, (batch, config.latent_dim), &Device::Cpu)?,
        ))
    };
    let (real, z) = batch_of(&mut rng)?;
    if let Some(dir) = dump {
        std::fs::create_dir_all(dir)?;
        let weights: HashMap<String, Tensor> = trainer
            .varmap()
            .data()
            .lock()
            .map_err(|_| anyhow::anyhow!("weights locked"))?
            .iter()
            .map(|(k, v)| Ok((k.clone(), v.as_tensor().copy()?)))
            .collect::<candle_core::Result<_>>()?;
        candle_core::safetensors::save(&weights, dir.join("weights.safetensors"))?;
        let inputs: HashMap<String, Tensor> = [("real".to_owned(), real.clone()), ("z".to_owned(), z.clone())].into();
        candle_core::safetensors::save(&inputs, dir.join("batch.safetensors"))?;
    }
    let first = trainer.train_step(&real, &z)?;
    if let Some(dir) = dump {
        let second = trainer.train_step(&real, &z)?;
        let losses = serde_json::json!({
            "step1": { "d_loss": first.d_loss, "g_loss": first.g_loss },
            "step2": { "d_loss": second.d_loss, "g_loss": second.g_loss },
        });
        std::fs::write(dir.join("losses.json"), losses.to_string())?;
    } else {
        trainer.train_step(&real, &z)?;
    }
    let batches: Vec<(Tensor, Tensor)> =
        (0..steps.min(8)).map(|_| batch_of(&mut rng)).collect::<candle_core::Result<_>>()?;
    let started = Instant::now();
    for i in 0..steps {
        let (real, z) = &batches[i % batches.len()];
        trainer.train_step(real, z)?;
    }
    let seconds = started.elapsed().as_secs_f64();
    let images_per_s = (steps * batch) as f64 / seconds;
    let threads = candle_core::utils::get_num_threads();
    if json {
        println!(
            "{}",
            serde_json::json!({ "batch": batch, "steps": steps, "threads": threads, "images_per_s": images_per_s, "ms_per_step": 1e3 * seconds / steps as f64 })
        );
    } else {
        println!("bench gan: emoji DCGAN {config:?}, batch {batch}, {threads} threads\n");
        println!("| steps | ms/step | real images/s |\n|---|---|---|");
        println!("| {steps} | {:.1} | {images_per_s:.0} |", 1e3 * seconds / steps as f64);
    }
    Ok(())
}
