//! Turns a finished training run into a shippable model folder: weights,
//! manifest, latent map (2-D models), sample grid and model card.

use std::fmt::Write as _;
use std::path::Path;

use candle_core::Tensor;

use crate::io::datasets::ImageSet;
use crate::io::export::{make_grid, upscale};
use crate::io::latent_map::{LatentMap, write_latent_map};
use crate::io::manifest::{Family, ModelManifest, write_manifest};
use crate::io::png_meta::encode_png;
use crate::latent::interpolate::seeded_latent;
use crate::latent::model::tensor_to_images;
use crate::train::error::{TrainError, file_err};
use crate::train::export::ExportInfo;
use crate::vae::network::parameter_count;
use crate::vae::train::VaeTrainer;

/// Writes the model folder `dir` from `trainer`, trained on `train_images`
/// images, using `test` for the latent map.
pub fn export_vae(
    trainer: &VaeTrainer,
    train_images: usize,
    test: &ImageSet,
    dir: &Path,
    info: &ExportInfo,
) -> Result<(), TrainError> {
    let spec = trainer.spec();
    let cfg = &spec.config;
    if trainer.history().is_empty() {
        return Err(TrainError::Invalid("no finished epoch: nothing to export".into()));
    }
    std::fs::create_dir_all(dir).map_err(|e| file_err(dir, e))?;
    let weights = dir.join("model.safetensors");
    trainer.varmap().save(&weights).map_err(|e| file_err(&weights, e))?;

    let latent_map = if cfg.latent_dim == 2 {
        let means = trainer.encode_means(test)?;
        let map = LatentMap { points: means.iter().map(|z| [z[0], z[1]]).collect(), labels: test.labels.clone() };
        let path = dir.join("latent_map.safetensors");
        write_latent_map(&path, &map).map_err(|e| file_err(&path, e))?;
        Some("latent_map.safetensors".to_owned())
    } else {
        None
    };

    let manifest = ModelManifest {
        id: info.id.to_owned(),
        family: Family::Vae,
        name: info.name.to_owned(),
        latent_dim: cfg.latent_dim,
        image_size: [cfg.image_size, cfg.image_size],
        channels: cfg.channels,
        license: "MIT OR Apache-2.0 (weights trained by Latent Studio)".into(),
        dataset: spec.dataset.credit(),
        weights: "model.safetensors".into(),
        classes: spec.dataset.class_names(),
        latent_map,
        config: serde_json::to_value(cfg).map_err(|e| TrainError::Invalid(e.to_string()))?,
        dir: dir.to_owned(),
    };
    write_manifest(&manifest).map_err(|e| file_err(&manifest.manifest_path(), e))?;

    let samples = dir.join("samples.png");
    let (grid, caption) = sample_grid(trainer)?;
    let grid = upscale(&grid, 2);
    let png = encode_png(&grid, &[]).map_err(|e| file_err(&samples, e))?;
    std::fs::write(&samples, png).map_err(|e| file_err(&samples, e))?;

    let card = dir.join("README.md");
    std::fs::write(&card, model_card(trainer, &manifest, info, caption, (train_images, test.len()))?)
        .map_err(|e| file_err(&card, e))
}

/// The decoder's images of fixed latents (the card's samples, and the
/// Train view's after every epoch), with what they show.
pub fn sample_grid(trainer: &VaeTrainer) -> Result<(image::RgbImage, &'static str), TrainError> {
    let dim = trainer.spec().config.latent_dim;
    let (grid_latents, caption) = sample_latents(dim);
    let flat: Vec<f32> = grid_latents.iter().flatten().copied().collect();
    let z = Tensor::from_vec(flat, (grid_latents.len(), dim), trainer.device())?;
    let images = tensor_to_images(&trainer.vae().decoder.decode(&z)?)?;
    let columns = (grid_latents.len() as f64).sqrt().round() as usize;
    Ok((make_grid(&images, columns, 1), caption))
}

/// A 12×12 sweep over [−2.5, 2.5]² for 2-D models, else 64 seeded samples.
fn sample_latents(dim: usize) -> (Vec<Vec<f32>>, &'static str) {
    if dim == 2 {
        let n = 12;
        let at = |i: usize| -2.5 + 5.0 * i as f32 / (n - 1) as f32;
        let sweep = (0..n).flat_map(|row| (0..n).map(move |col| vec![at(col), -at(row)])).collect();
        (sweep, "decoded on a 12×12 grid over z ∈ [−2.5, 2.5]² (z1 left→right, z2 bottom→top)")
    } else {
        ((0..64).map(|s| seeded_latent(s, dim)).collect(), "decoded from seeds 0–63")
    }
}

fn model_card(
    trainer: &VaeTrainer,
    m: &ModelManifest,
    info: &ExportInfo,
    caption: &str,
    (train, held_out): (usize, usize),
) -> Result<String, TrainError> {
    let spec = trainer.spec();
    let params = parameter_count(&spec.config)?;
    let history = trainer.history();
    let last = history.last().ok_or_else(|| TrainError::Invalid("no finished epoch to report".into()))?;
    let seconds: f64 = history.iter().map(|r| r.seconds).sum();
    let mut s = String::new();
    let _ = writeln!(s, "# {} (`{}`)\n", m.name, m.id);
    let _ = writeln!(
        s,
        "A convolutional VAE with a {}-dimensional latent, trained by Latent Studio's own code.\n",
        m.latent_dim
    );
    let _ = writeln!(s, "| | |\n|---|---|");
    let _ = writeln!(s, "| Data | {} |", m.dataset);
    let _ = writeln!(s, "| Images | {train} for training, {held_out} held out |");
    let _ = writeln!(s, "| Weights license | {} |", m.license);
    let _ = writeln!(s, "| Parameters | {params} ({:.1} MB as f32) |", params as f64 * 4.0 / 1e6);
    let _ = writeln!(s, "| Network | {} |", serde_json::to_string(&spec.config).unwrap_or_default());
    let _ = writeln!(
        s,
        "| Optimiser | AdamW, lr {}, batch {}, β (KL weight) {}, seed {} |",
        spec.lr, spec.batch_size, spec.beta, spec.seed
    );
    let _ = writeln!(
        s,
        "| Epochs | {} ({:.0} s on 2 CPU threads, {:.1} s/epoch) |",
        history.len(),
        seconds,
        seconds / history.len() as f64
    );
    let _ = writeln!(s, "| Held-out reconstruction (BCE, nats/image) | {:.2} |", last.val_recon);
    let _ = writeln!(s, "| Held-out KL (nats/image) | {:.2} |", last.val_kl);
    let _ = writeln!(s, "| Held-out negative ELBO (nats/image) | {:.2} |\n", last.val_loss);
    let _ = writeln!(s, "Trained with:\n\n```sh\n{}\n```\n", info.command);
    let _ = writeln!(s, "![samples](samples.png)\n\nSamples {caption}.\n");
    let _ = writeln!(s, "| epoch | train loss | held-out loss | recon | KL | seconds |\n|---|---|---|---|---|---|");
    for r in history {
        let _ = writeln!(
            s,
            "| {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.1} |",
            r.epoch, r.train_loss, r.val_loss, r.val_recon, r.val_kl, r.seconds
        );
    }
    Ok(s)
}
