//! `outliers --model ID --data FOLDER`: a folder's images ranked by how
//! unusual a VAE finds them (negative ELBO: reconstruction + KL nats), most
//! unusual first, optionally with a per-pixel error heat map for each of the
//! top ones; `denoise`: an image with added noise, encoded and decoded.

use std::path::Path;

use anyhow::{Context, bail};

use crate::io::export::upscale;
use crate::io::image_folder::Fit;
use crate::io::manifest::Family;
use crate::io::output::write_new_file;
use crate::io::png_meta::encode_png;
use crate::library::find_manifest;
use crate::nn::default_device;
use crate::vae::model::VaeModel;
use crate::worker::vae_tools::{DenoiseInput, denoise_file, rank_folder};

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
    let pictured = if run.heatmaps.is_some() { run.top } else { 0 };
    let ranking = rank_folder(&model, run.data, run.fit, pictured).map_err(|e| anyhow::anyhow!("{e}"))?;
    for s in &ranking.skipped {
        eprintln!("skipped {}: {}", s.path.display(), s.reason);
    }
    if let Some(dir) = run.heatmaps {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        for (rank, row) in ranking.rows.iter().take(run.top).enumerate() {
            let Some((_, heat)) = &row.pictures else { continue };
            let stem = row.path.file_stem().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
            let path = dir.join(format!("{:03}-{stem}-error.png", rank + 1));
            write_new_file(&path, &encode_png(&upscale(heat, 8), &[])?)?;
        }
    }
    if run.json {
        println!("{}", ranking.to_json());
        return Ok(());
    }
    println!("{:>4}  {:>10}  {:>10}  {:>8}  file", "rank", "-ELBO", "recon", "KL");
    for (rank, row) in ranking.rows.iter().take(run.top).enumerate() {
        println!(
            "{:>4}  {:>10.1}  {:>10.1}  {:>8.1}  {}",
            rank + 1,
            row.neg_elbo,
            row.recon,
            row.kl,
            row.path.display()
        );
    }
    eprintln!("{} images scored under {} (nats per image; most unusual first)", ranking.rows.len(), run.model);
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
    if !(0.0..=1.0).contains(&run.noise) {
        bail!("--noise {} is outside 0–1 (the standard deviation of the added noise, in pixel units)", run.noise);
    }
    let input = DenoiseInput { path: run.image, fit: run.fit, noise: run.noise, seed: run.seed };
    let result = denoise_file(&model, &input).map_err(|e| anyhow::anyhow!("{e}"))?;
    let scale = run.scale.clamp(1, 64);
    let settings = vec![
        ("Model".to_owned(), run.model.to_owned()),
        ("Denoise".to_owned(), format!("noise {} seed {} from {}", run.noise, run.seed, run.image.display())),
    ];
    write_new_file(run.out, &encode_png(&upscale(&result.denoised, scale), &settings)?)?;
    if let Some(strip) = run.strip {
        let panels = [&result.input, &result.noisy, &result.denoised].map(|p| upscale(p, scale));
        let width = panels.iter().map(|p| p.width()).sum();
        let mut canvas = image::RgbImage::new(width, panels[0].height());
        let mut x = 0;
        for panel in &panels {
            image::imageops::replace(&mut canvas, panel, i64::from(x), 0);
            x += panel.width();
        }
        write_new_file(strip, &encode_png(&canvas, &settings)?)?;
    }
    let (noisy, denoised) = result.errors;
    eprintln!("{}: mean squared error to the input {noisy:.4} noisy, {denoised:.4} denoised", run.out.display());
    Ok(())
}
