//! `directions`: a GAN's principal latent directions, stored next to its weights.

use std::path::Path;

use candle_core::Device;

use crate::io::directions::{DIRECTIONS_FILE, write_directions};
use crate::io::manifest::Family;
use crate::models::gan_model::GanModel;
use crate::models::registry::find_manifest;
use crate::pipelines::gan_directions::principal_directions;

/// Computes `count` directions from `samples` latents and writes them to the model folder.
pub fn directions(models_dir: &Path, id: &str, count: usize, samples: usize, seed: u64) -> anyhow::Result<()> {
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
    Ok(())
}
