//! `outliers --model ID --data FOLDER`: a folder's images ranked by how
//! unusual a VAE finds them (negative ELBO: reconstruction + KL nats), most
//! unusual first, optionally with a per-pixel error heat map for each of the
//! top ones; `denoise`: an image with added noise, encoded and decoded.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use crate::io::datasets::ImageSet;
use crate::io::export::upscale;
use crate::io::image_folder::{Fit, FolderSpec, load_folder, prepare_file};
use crate::io::manifest::Family;
use crate::io::output::write_new_file;
use crate::io::png_meta::encode_png;
use crate::library::find_manifest;
use crate::nn::default_device;
use crate::vae::denoise::to_rgb;
use crate::vae::model::VaeModel;
use crate::vae::outliers::{heat_map, rank_outliers};

/// What `outliers` prints and writes.
pub struct OutlierRun<'a> {
    pub model: &'a str,
    pub data: &'a Path,
    pub fit: Fit,
    pub top: usize,
    pub json: bool,
    pub heatmaps: Option<&'a Path>,
}

fn load_vae(models_dir: &Path, id: &str) -> anyhow::Result<VaeModel> {
    let manifest = find_manifest(models_dir, id)?;
    if manifest.family != Family::Vae {
        bail!("{id} is a {} model; outliers and denoising need a VAE (its encoder)", manifest.family.name());
    }
    Ok(VaeModel::load(manifest, &default_device())?)
}

/// Runs `outliers`.
pub fn outliers(models_dir: &Path, run: &OutlierRun<'_>) -> anyhow::Result<()> {
    let model = load_vae(models_dir, run.model)?;
    let cfg = &model.vae().config;
    let spec = FolderSpec {
        folder: run.data.to_owned(),
        side: cfg.image_size,
        channels: cfg.channels,
        fit: run.fit,
        flip: false,
    };
    let data = load_folder(&spec)?;
    for s in &data.skipped {
        eprintln!("skipped {}: {}", s.path.display(), s.reason);
    }
    // Every image, held-out ones too: ranking is not training.
    let mut images = ImageSet { side: cfg.image_size, channels: cfg.channels, ..ImageSet::default() };
    for set in [&data.train, &data.test] {
        images.pixels.extend_from_slice(&set.pixels);
        images.labels.extend_from_slice(&set.labels);
    }
    let files: Vec<&PathBuf> = data.train_files.iter().chain(&data.test_files).collect();
    let scores = rank_outliers(model.vae(), &images, &default_device()).context("scoring the images")?;
    if let Some(dir) = run.heatmaps {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        for (rank, s) in scores.iter().take(run.top).enumerate() {
            let stem = files[s.index].file_stem().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
            let path = dir.join(format!("{:03}-{stem}-error.png", rank + 1));
            let png = encode_png(&upscale(&heat_map(&s.error_map, cfg.image_size), 8), &[])?;
            write_new_file(&path, &png)?;
        }
    }
    if run.json {
        let rows: Vec<_> = scores
            .iter()
            .enumerate()
            .map(|(rank, s)| {
                serde_json::json!({
                    "rank": rank + 1, "file": files[s.index].display().to_string(),
                    "neg_elbo": s.neg_elbo, "recon": s.recon, "kl": s.kl,
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    println!("{:>4}  {:>10}  {:>10}  {:>8}  file", "rank", "-ELBO", "recon", "KL");
    for (rank, s) in scores.iter().take(run.top).enumerate() {
        println!(
            "{:>4}  {:>10.1}  {:>10.1}  {:>8.1}  {}",
            rank + 1,
            s.neg_elbo,
            s.recon,
            s.kl,
            files[s.index].display()
        );
    }
    eprintln!("{} images scored under {} (nats per image; most unusual first)", scores.len(), run.model);
    Ok(())
}

/// What `denoise` reads and writes.
pub struct DenoiseRun<'a> {
    pub model: &'a str,
    pub image: &'a Path,
    pub noise: f32,
    pub seed: u64,
    pub fit: Fit,
    pub scale: u32,
    pub out: &'a Path,
    /// Also write input | noisy | denoised side by side here.
    pub strip: Option<&'a Path>,
}

/// Runs `denoise`.
pub fn denoise(models_dir: &Path, run: &DenoiseRun<'_>) -> anyhow::Result<()> {
    let model = load_vae(models_dir, run.model)?;
    let cfg = &model.vae().config;
    let (side, channels) = (cfg.image_size, cfg.channels);
    let spec = FolderSpec { folder: PathBuf::new(), side, channels, fit: run.fit, flip: false };
    let pixels = prepare_file(run.image, &spec).map_err(|e| anyhow::anyhow!("{}: {e}", run.image.display()))?;
    if !(0.0..=1.0).contains(&run.noise) {
        bail!("--noise {} is outside 0–1 (the standard deviation of the added noise, in pixel units)", run.noise);
    }
    let result = crate::vae::denoise::denoise(model.vae(), &pixels, run.noise, run.seed, &default_device())?;
    let scale = run.scale.clamp(1, 64);
    let settings = vec![
        ("Model".to_owned(), run.model.to_owned()),
        ("Denoise".to_owned(), format!("noise {} seed {} from {}", run.noise, run.seed, run.image.display())),
    ];
    let denoised = upscale(&to_rgb(&result.denoised, channels, side), scale);
    write_new_file(run.out, &encode_png(&denoised, &settings)?)?;
    if let Some(strip) = run.strip {
        let panels = [&pixels, &result.noisy, &result.denoised].map(|p| upscale(&to_rgb(p, channels, side), scale));
        let width = panels.iter().map(|p| p.width()).sum();
        let mut canvas = image::RgbImage::new(width, panels[0].height());
        let mut x = 0;
        for panel in &panels {
            image::imageops::replace(&mut canvas, panel, i64::from(x), 0);
            x += panel.width();
        }
        write_new_file(strip, &encode_png(&canvas, &settings)?)?;
    }
    let mse = |a: &[f32]| a.iter().zip(&pixels).map(|(x, y)| (x - y).powi(2)).sum::<f32>() / pixels.len() as f32;
    eprintln!(
        "{}: mean squared error to the input {:.4} noisy, {:.4} denoised",
        run.out.display(),
        mse(&result.noisy),
        mse(&result.denoised)
    );
    Ok(())
}
