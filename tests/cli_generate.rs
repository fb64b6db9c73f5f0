//! `generate` and `info` end to end: a tiny random model in the diffusers
//! layout, byte-identical reruns, `--noise` from `--save-noise`, img2img,
//! previews, the settings read back, never overwriting, clear errors.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failed unwrap is a failed test

mod common;

use std::path::Path;
use std::process::Command;

use latent_studio::diffusion::random_weights::{RandomModel, write_random_model};

use common::{fails, ok, s};

#[test]
fn generate_is_reproducible_and_info_reads_the_settings_back() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("tiny-sd");
    write_random_model(&model, &RandomModel::tiny(21)).unwrap();
    let (a, b, c) = (dir.path().join("a.png"), dir.path().join("b.png"), dir.path().join("c.png"));
    let noise = dir.path().join("noise.npy");
    let args = |out: &Path| {
        vec![
            "generate",
            "--model-dir",
            s(&model),
            "--prompt",
            "a red heart",
            "--negative",
            "blurry",
            "--steps",
            "3",
            "--sampler",
            "ddim",
            "--cfg",
            "4",
            "--preview-every",
            "1",
            "--out",
        ]
        .into_iter()
        .map(str::to_owned)
        .chain([s(out).to_owned()])
        .collect::<Vec<_>>()
    };
    let run = |out: &Path, extra: &[&str]| {
        let mut all = args(out);
        all.extend(extra.iter().map(|e| e.to_string()));
        ok(&all.iter().map(String::as_str).collect::<Vec<_>>())
    };
    run(&a, &["--seed", "9", "--save-noise", s(&noise)]);
    run(&b, &["--seed", "9"]);
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap(), "same seed and settings, same bytes");
    assert!(dir.path().join("a-step-001.png").is_file() && dir.path().join("a-step-002.png").is_file(), "previews");
    run(&c, &["--seed", "123", "--noise", s(&noise)]);
    let pixels = |p: &Path| image::open(p).unwrap().to_rgb8().into_raw();
    assert_eq!(pixels(&a), pixels(&c), "the saved noise reproduces the seed's start");

    let text = ok(&["info", s(&a)]);
    assert!(text.starts_with("a red heart\nNegative prompt: blurry\nSteps: 3, Sampler: DDIM, CFG scale: 4, Seed: 9, Size: 32x32, Model: tiny-sd"), "{text}");
    let json: serde_json::Value = serde_json::from_str(&ok(&["info", "--json", s(&c)])).unwrap();
    assert_eq!(json["noise_origin"], "file noise.npy");

    let err = fails(&args(&a).iter().map(String::as_str).chain(["--seed", "9"]).collect::<Vec<_>>());
    assert!(err.contains("never overwrites"), "{err}");

    let img2img = dir.path().join("i2i.png");
    run(&img2img, &["--seed", "9", "--init-image", s(&a), "--strength", "0.5"]);
    assert!(ok(&["info", s(&img2img)]).contains("Denoising strength: 0.5"));
}

#[test]
fn bad_model_folders_and_images_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o.png");
    let err = fails(&["generate", "--model-dir", s(dir.path()), "--prompt", "x", "--out", s(&out)]);
    assert!(err.contains("not a diffusers model folder"), "{err}");
    let model = dir.path().join("m");
    write_random_model(&model, &RandomModel::tiny(22)).unwrap();
    let err = fails(&["generate", "--model-dir", s(&model), "--prompt", "x", "--width", "30", "--out", s(&out)]);
    assert!(err.contains("multiples of 8"), "{err}");
    let not_png = dir.path().join("notes.txt");
    std::fs::write(&not_png, "hello").unwrap();
    let err = fails(&["info", s(&not_png)]);
    assert!(err.contains("notes.txt"), "{err}");
    assert!(!out.exists(), "nothing written on failure");
}

#[test]
fn the_shipped_emoji_model_generates() {
    let models = Path::new(env!("CARGO_MANIFEST_DIR")).join("models");
    if !models.join("emoji-ldm/unet").is_dir() {
        panic!("models/emoji-ldm is missing its unet/ folder");
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("heart.png");
    let out = Command::new(env!("CARGO_BIN_EXE_latent-studio"))
        .args([
            "--models-dir",
            s(&models),
            "generate",
            "--model",
            "emoji-ldm",
            "--prompt",
            "red heart",
            "--steps",
            "10",
            "--out",
            s(&out),
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}
