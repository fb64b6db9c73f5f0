//! `models`, `sample`, `decode`, `encode`, `interpolate`.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, bail};

use crate::io::export::{make_grid, upscale};
use crate::io::gif_text::encode_gif;
use crate::io::output::write_new_file;
use crate::io::png_meta::{ImageSettings, encode_png};
use crate::latent::interpolate::{Interpolation, interpolate as path, seeded_latent, truncate};
use crate::latent::model::LatentModel;
use crate::library::{find_manifest, load_latent_model};
use crate::nn::default_device;

fn load(models_dir: &Path, id: &str) -> anyhow::Result<Arc<dyn LatentModel>> {
    let manifest = find_manifest(models_dir, id)?;
    Ok(load_latent_model(manifest, &default_device())?)
}

/// Saves `images` (one, or a grid/strip) with their settings as a new PNG.
fn save_png(
    images: &[image::RgbImage],
    columns: usize,
    scale: u32,
    settings: &ImageSettings,
    out: &Path,
) -> anyhow::Result<()> {
    let img = if images.len() == 1 { images[0].clone() } else { make_grid(images, columns, 1) };
    let bytes = encode_png(&upscale(&img, scale), &settings.text_chunks()).map_err(anyhow::Error::msg)?;
    write_new_file(out, &bytes)?;
    eprintln!("wrote {}", out.display());
    Ok(())
}

/// Prints the installed models as a table or JSON.
pub fn list_models(models_dir: &Path, json: bool) -> anyhow::Result<()> {
    let (found, failed) = crate::io::manifest::discover(models_dir);
    for e in &failed {
        eprintln!("skipping {e}");
    }
    if json {
        let mut rows: Vec<_> = found
            .iter()
            .map(|m| {
                serde_json::json!({
                    "id": m.id, "family": m.family.name(), "name": m.name, "latent_dim": m.latent_dim,
                    "image_size": m.image_size, "license": m.license, "dataset": m.dataset,
                    "path": m.dir.display().to_string(), "source": "models folder",
                })
            })
            .collect();
        rows.extend(super::hub::downloaded_rows());
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    println!("{:<22} {:<6} {:>6}  {:<40} path", "id", "family", "latent", "license");
    for m in &found {
        println!("{:<22} {:<6} {:>6}  {:<40} {}", m.id, m.family.name(), m.latent_dim, m.license, m.dir.display());
    }
    if found.is_empty() {
        eprintln!("no models in {}", models_dir.display());
    }
    super::hub::print_downloaded();
    Ok(())
}

/// What `sample` draws.
pub struct SampleRun {
    pub seed: u64,
    pub count: usize,
    /// Truncation ψ (1: none).
    pub truncation: f32,
    pub scale: u32,
}

/// Decodes seeded latents (pulled towards the mean by ψ) into one image or a grid.
pub fn sample(models_dir: &Path, id: &str, run: &SampleRun, out: &Path) -> anyhow::Result<()> {
    let SampleRun { seed, count, truncation, scale } = *run;
    if count == 0 {
        bail!("--count must be at least 1");
    }
    if !(0.0..=2.0).contains(&truncation) {
        bail!("--truncation must lie in [0, 2]");
    }
    let model = load(models_dir, id)?;
    let seeds: Vec<u64> = (0..count as u64).map(|i| seed.wrapping_add(i)).collect();
    let latents: Vec<Vec<f32>> =
        seeds.iter().map(|&s| truncate(&seeded_latent(s, model.latent_dim()), truncation)).collect();
    let images = model.decode(&latents)?;
    let kind = if count == 1 { "image" } else { "grid" };
    let truncation = (truncation != 1.0).then_some(truncation);
    let settings =
        ImageSettings { model: id.into(), kind: kind.into(), seeds, method: "seed".into(), latents, truncation };
    save_png(&images, (count as f64).sqrt().ceil() as usize, scale, &settings, out)
}

/// Parses "x,y,…" into numbers, naming the bad entry.
pub fn parse_latent(text: &str) -> anyhow::Result<Vec<f32>> {
    text.split(',')
        .map(|s| s.trim().parse::<f32>().with_context(|| format!("latent entry {s:?} is not a number")))
        .collect()
}

/// Decodes one latent given as text.
pub fn decode(models_dir: &Path, id: &str, latent: &str, scale: u32, out: &Path) -> anyhow::Result<()> {
    let z = parse_latent(latent)?;
    let model = load(models_dir, id)?;
    let images = model.decode(std::slice::from_ref(&z))?;
    let settings = ImageSettings {
        model: id.into(),
        kind: "image".into(),
        seeds: vec![],
        method: "latent".into(),
        latents: vec![z],
        truncation: None,
    };
    save_png(&images, 1, scale, &settings, out)
}

/// Prints the latent (posterior mean) of an image file as JSON.
pub fn encode(models_dir: &Path, id: &str, image: &Path) -> anyhow::Result<()> {
    let model = load(models_dir, id)?;
    let img = image::open(image).with_context(|| format!("cannot read image {}", image.display()))?;
    let z = model.encode(&img)?;
    println!("{}", serde_json::to_string(&z)?);
    Ok(())
}

/// Writes the path between two seeds as a PNG strip or a GIF.
pub fn interpolate(
    models_dir: &Path,
    id: &str,
    (from, to): (u64, u64),
    frames: usize,
    method: Interpolation,
    scale: u32,
    out: &Path,
) -> anyhow::Result<()> {
    if frames < 2 {
        bail!("--frames must be at least 2");
    }
    let gif = match out.extension().and_then(|e| e.to_str()).map(|e| e.to_ascii_lowercase()).as_deref() {
        Some("gif") => true,
        Some("png") => false,
        _ => bail!("--out must end in .png (a strip) or .gif (an animation): {}", out.display()),
    };
    let model = load(models_dir, id)?;
    let dim = model.latent_dim();
    let latents = path(&seeded_latent(from, dim), &seeded_latent(to, dim), frames, method);
    let images = model.decode(&latents)?;
    let settings = ImageSettings {
        model: id.into(),
        kind: if gif { "animation" } else { "strip" }.into(),
        seeds: vec![from, to],
        method: method.name().into(),
        latents,
        truncation: None,
    };
    if gif {
        let frames: Vec<_> = images.iter().map(|i| upscale(i, scale)).collect();
        write_new_file(out, &encode_gif(&frames, 80, &settings.text_chunks()).map_err(anyhow::Error::msg)?)?;
        eprintln!("wrote {}", out.display());
        return Ok(());
    }
    save_png(&images, frames, scale, &settings, out)
}
