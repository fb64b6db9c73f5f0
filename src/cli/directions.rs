//! `directions`: a GAN's principal latent directions, stored next to its weights.

use std::path::Path;

use candle_core::Device;

use crate::gan::directions::principal_directions;
use crate::gan::model::GanModel;
use crate::io::directions::{DIRECTIONS_FILE, write_directions};
use crate::io::export::{make_grid, upscale};
use crate::io::manifest::Family;
use crate::io::output::write_new_file;
use crate::io::png_meta::encode_png;
use crate::latent::interpolate::seeded_latent;
use crate::latent::model::LatentModel;
use crate::library::find_manifest;

/// Steps along each direction in a sweep image, from −3 to 3.
const SWEEP_STEPS: usize = 7;
/// Seeds each direction is swept from.
const SWEEP_SEEDS: u64 = 3;

/// Computes `count` directions from `samples` latents and writes them to the
/// model folder; with `sweep`, also a PNG with one row per direction and seed
/// (seeds 0–2) moving from −3 to 3 along it.
pub fn directions(
    models_dir: &Path,
    id: &str,
    count: usize,
    samples: usize,
    seed: u64,
    sweep: Option<&Path>,
) -> anyhow::Result<()> {
    let manifest = find_manifest(models_dir, id)?;
    anyhow::ensure!(
        manifest.family == Family::Gan,
        "model {id} is a {} model; principal directions are computed for GANs (a VAE's latent axes already are its sliders)",
        manifest.family.name()
    );
    anyhow::ensure!(samples > count, "--samples must exceed --count");
    let dir = manifest.dir.clone();
    let model = GanModel::load(manifest, &Device::Cpu)?;
    let found = principal_directions(model.generator(), model.config().latent_dim, count, samples, seed)?;
    write_directions(&dir, &found).map_err(anyhow::Error::msg)?;
    println!("| direction | share of first-layer variance |\n|---|---|");
    for (i, v) in found.explained_variance.iter().enumerate() {
        println!("| {} | {:.1} % |", i + 1, 100.0 * v);
    }
    eprintln!("wrote {}", dir.join(DIRECTIONS_FILE).display());
    if let Some(out) = sweep {
        let dim = model.config().latent_dim;
        let mut latents = Vec::new();
        for u in &found.vectors {
            for s in 0..SWEEP_SEEDS {
                let z = seeded_latent(s, dim);
                let along: f32 = z.iter().zip(u).map(|(a, b)| a * b).sum();
                for step in 0..SWEEP_STEPS {
                    let target = -3.0 + 6.0 * step as f32 / (SWEEP_STEPS - 1) as f32;
                    latents.push(z.iter().zip(u).map(|(z, u)| z + (target - along) * u).collect::<Vec<f32>>());
                }
            }
        }
        let images = model.decode(&latents)?;
        let grid = upscale(&make_grid(&images, SWEEP_STEPS, 1), 2);
        write_new_file(out, &encode_png(&grid, &[]).map_err(anyhow::Error::msg)?)?;
        eprintln!("wrote {}", out.display());
    }
    Ok(())
}
