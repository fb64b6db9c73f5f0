//! Outliers: a VAE trained on one kind of image ranks images of another kind
//! first. The folder holds 40 digits drawn by the shipped digits VAE and 5
//! garments drawn by the shipped Fashion-MNIST VAE (both 28×28 grey), so the
//! test needs no data download; the digits VAE scores all 45.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failed unwrap is a failed test

mod common;

use std::path::Path;

use candle_core::Device;
use latent_studio::latent::interpolate::seeded_latent;
use latent_studio::library::{find_manifest, load_latent_model};

fn draw(models: &Path, id: &str, seeds: std::ops::Range<u64>, dir: &Path, prefix: &str) {
    let model = load_latent_model(find_manifest(models, id).unwrap(), &Device::Cpu).unwrap();
    let latents: Vec<Vec<f32>> = seeds.clone().map(|s| seeded_latent(s, model.latent_dim())).collect();
    for (seed, image) in seeds.zip(model.decode(&latents).unwrap()) {
        image.save(dir.join(format!("{prefix}_{seed:02}.png"))).unwrap();
    }
}

#[test]
fn the_digits_vae_ranks_garments_first_and_maps_their_errors() {
    let models = common::shipped_models();
    let data = tempfile::tempdir().unwrap();
    draw(&models, "digits-2d", 0..40, data.path(), "digit");
    draw(&models, "fashion-16d", 100..105, data.path(), "garment");
    let heat = tempfile::tempdir().unwrap();
    let folder = data.path().to_str().unwrap();
    let args = [
        "outliers",
        "--model",
        "digits-2d",
        "--data",
        folder,
        "--json",
        "--top",
        "5",
        "--heatmaps",
        heat.path().to_str().unwrap(),
    ];
    let ranked: serde_json::Value = serde_json::from_str(&common::ok(&args)).unwrap();
    let rows = ranked.as_array().unwrap();
    assert_eq!(rows.len(), 45);
    let is_garment = |row: &serde_json::Value| row["file"].as_str().unwrap().contains("garment_");
    let precision_at = |k: usize| rows[..k].iter().filter(|r| is_garment(r)).count() as f64 / k as f64;
    eprintln!("precision@5 {:.2}, @10 {:.2}", precision_at(5), precision_at(10));
    assert!(precision_at(5) >= 0.8, "{ranked}");
    let scores: Vec<f64> = rows.iter().map(|r| r["neg_elbo"].as_f64().unwrap()).collect();
    assert!(scores.windows(2).all(|w| w[0] >= w[1]));
    let maps: Vec<_> = std::fs::read_dir(heat.path()).unwrap().flatten().collect();
    assert_eq!(maps.len(), 5);
    // A VAE is required; a GAN has no encoder to score with.
    let out = common::studio(&["outliers", "--model", "emoji-dcgan", "--data", folder]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("need a VAE"));
}

#[test]
fn denoising_brings_a_very_noisy_digit_closer_to_the_clean_one() {
    let models = common::shipped_models();
    let dir = tempfile::tempdir().unwrap();
    draw(&models, "digits-2d", 3..4, dir.path(), "digit");
    let image = dir.path().join("digit_03.png");
    let (out, strip) = (dir.path().join("denoised.png"), dir.path().join("strip.png"));
    let args = [
        "denoise",
        "--model",
        "digits-2d",
        "--image",
        image.to_str().unwrap(),
        "--noise",
        "0.5",
        "--seed",
        "5",
        "--scale",
        "1",
        "--out",
        out.to_str().unwrap(),
        "--strip",
        strip.to_str().unwrap(),
    ];
    let result = common::studio(&args);
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(result.status.success(), "{stderr}");
    // "…: mean squared error to the input 0.0712 noisy, 0.0105 denoised"
    let numbers: Vec<f64> = stderr
        .rsplit("input ")
        .next()
        .unwrap()
        .split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .filter_map(|t| t.parse().ok())
        .collect();
    assert_eq!(numbers.len(), 2, "{stderr}");
    // Below its own reconstruction error (~0.02 here) a VAE cannot help; at σ = 0.5 it halves the error.
    assert!(numbers[1] < numbers[0] / 2.0, "denoised {} vs noisy {}", numbers[1], numbers[0]);
    assert_eq!(image::image_dimensions(&out).unwrap(), (28, 28));
    assert_eq!(image::image_dimensions(&strip).unwrap(), (84, 28));
    // Never overwritten.
    assert!(!common::studio(&args).status.success());
}
