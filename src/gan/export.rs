//! Turns a finished GAN training run into a shippable model folder: the
//! generator's weights, manifest, sample grid, loss curves, a mode-collapse
//! check and the model card.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;

use crate::gan::diversity::{Diversity, measure};
use crate::gan::network::parameter_counts;
use crate::gan::train::GanTrainer;
use crate::io::chart::{Series, line_chart};
use crate::io::datasets::ImageSet;
use crate::io::export::upscale;
use crate::io::manifest::{Family, ModelManifest, write_manifest};
use crate::io::png_meta::encode_png;
use crate::train::error::{TrainError, file_err};
use crate::train::export::ExportInfo;

/// Generated images the mode-collapse check compares.
const DIVERSITY_SAMPLES: usize = 1000;

/// Writes the model folder `dir` from `trainer`; `train` and `test` feed the
/// mode-collapse check.
pub fn export_gan(
    trainer: &GanTrainer,
    train: &ImageSet,
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
    // The generator alone (with its batch-norm statistics): the discriminator
    // stays in the checkpoint.
    let weights = dir.join("model.safetensors");
    let generator: HashMap<String, candle_core::Tensor> = trainer
        .varmap()
        .data()
        .lock()
        .map_err(|_| TrainError::Invalid("the weights are locked by a failed thread".into()))?
        .iter()
        .filter(|(name, _)| name.starts_with("generator."))
        .map(|(name, var)| (name.clone(), var.as_tensor().clone()))
        .collect();
    candle_core::safetensors::save(&generator, &weights).map_err(|e| file_err(&weights, e))?;

    let manifest = ModelManifest {
        id: info.id.to_owned(),
        family: Family::Gan,
        name: info.name.to_owned(),
        latent_dim: cfg.latent_dim,
        image_size: [cfg.image_size, cfg.image_size],
        channels: cfg.channels,
        license: "MIT OR Apache-2.0 (weights trained by Latent Studio)".into(),
        dataset: spec.dataset.credit(),
        weights: "model.safetensors".into(),
        classes: Vec::new(),
        latent_map: None,
        config: serde_json::json!({ "format": "dcgan", "gan": cfg }),
        dir: dir.to_owned(),
    };
    write_manifest(&manifest).map_err(|e| file_err(&manifest.manifest_path(), e))?;

    let write_png = |name: &str, image: &image::RgbImage| {
        let path = dir.join(name);
        let png = encode_png(image, &[]).map_err(|e| file_err(&path, e))?;
        std::fs::write(&path, png).map_err(|e| file_err(&path, e))
    };
    write_png("samples.png", &upscale(&trainer.sample_grid()?, 2))?;
    let history = trainer.history();
    let d: Vec<f64> = history.iter().map(|r| r.d_loss).collect();
    let g: Vec<f64> = history.iter().map(|r| r.g_loss).collect();
    let chart = line_chart(
        &[Series { values: &d, colour: [200, 60, 40] }, Series { values: &g, colour: [40, 90, 200] }],
        480,
        200,
    );
    write_png("losses.png", &chart)?;

    let diversity = measure(trainer.generator(), cfg.latent_dim, train, test, DIVERSITY_SAMPLES, spec.seed ^ 0xD1)?;
    let card = dir.join("README.md");
    std::fs::write(&card, model_card(trainer, &manifest, info, &diversity, (train.len(), test.len()))?)
        .map_err(|e| file_err(&card, e))
}

fn model_card(
    trainer: &GanTrainer,
    m: &ModelManifest,
    info: &ExportInfo,
    div: &Diversity,
    (train, held_out): (usize, usize),
) -> Result<String, TrainError> {
    let spec = trainer.spec();
    let (g_params, d_params) = parameter_counts(&spec.config)?;
    let history = trainer.history();
    let seconds: f64 = history.iter().map(|r| r.seconds).sum();
    let mut s = String::new();
    let _ = writeln!(s, "# {} (`{}`)\n", m.name, m.id);
    let _ = writeln!(
        s,
        "A DCGAN ({0}×{0} RGB from a {1}-dimensional latent) trained adversarially by Latent Studio's own code.\n",
        spec.config.image_size, spec.config.latent_dim
    );
    let _ = writeln!(s, "| | |\n|---|---|");
    let _ = writeln!(s, "| Data | {} |", m.dataset);
    let _ = writeln!(s, "| Images | {train} for training, {held_out} held out |");
    let _ = writeln!(s, "| Weights license | {} |", m.license);
    let _ = writeln!(s, "| Parameters | generator {g_params} (shipped), discriminator {d_params} |");
    let _ = writeln!(s, "| Network | {} |", serde_json::to_string(&spec.config).unwrap_or_default());
    let _ = writeln!(
        s,
        "| Training | non-saturating loss, one-sided label smoothing (real = {}), Adam lr {} β₁ 0.5, batch {}, seed {} |",
        spec.real_label, spec.lr, spec.batch_size, spec.seed
    );
    let _ = writeln!(
        s,
        "| Epochs | {} ({:.0} s on 2 CPU threads, {:.1} s/epoch) |\n",
        history.len(),
        seconds,
        seconds / history.len() as f64
    );
    let _ = writeln!(s, "Trained with:\n\n```sh\n{}\n```\n", info.command);
    let _ = writeln!(s, "![samples](samples.png)\n\nThe same 64 fixed latents after the last epoch.\n");
    let _ = writeln!(s, "![losses](losses.png)\n\nDiscriminator (red) and generator (blue) loss per epoch.\n");
    let _ = writeln!(s, "## Mode-collapse check\n");
    let _ = writeln!(
        s,
        "Euclidean distances over pixels in [0, 1] ({} values per image), {} generated images against as many \
         held-out real ones:\n",
        spec.config.channels * spec.config.image_size * spec.config.image_size,
        div.samples
    );
    let _ = writeln!(s, "| | generated | real (held out) |\n|---|---|---|");
    let _ = writeln!(s, "| mean pairwise distance | {:.2} | {:.2} |", div.sample_pairwise, div.real_pairwise);
    let _ = writeln!(
        s,
        "| median distance to the nearest training image | {:.2} | {:.2} |\n",
        div.sample_to_train_nn, div.real_to_train_nn
    );
    let _ = writeln!(
        s,
        "A collapsed generator has a pairwise distance far below the real images'; one that copies its \
         training set has nearest-image distances far below the held-out images'.\n"
    );
    let _ = writeln!(s, "| epoch | D loss | G loss | D(real) | D(fake) | seconds |\n|---|---|---|---|---|---|");
    for r in history {
        let _ = writeln!(
            s,
            "| {} | {:.3} | {:.3} | {:.3} | {:.3} | {:.1} |",
            r.epoch, r.d_loss, r.g_loss, r.d_real, r.d_fake, r.seconds
        );
    }
    Ok(s)
}
