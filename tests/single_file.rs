//! Single-file checkpoints in the original (A1111/ComfyUI) layout: tiny
//! random models written as diffusers folders, saved as one file per family
//! and dtype, load back and generate what the folder generates; files that
//! are something else are refused with a message naming them.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failed unwrap is a failed test

use std::path::Path;

use candle_core::{DType, Device};
use latent_studio::diffusion::checkpoint::SingleFileSpec;
use latent_studio::diffusion::checkpoint::family::Family;
use latent_studio::diffusion::checkpoint::write::write_single_file;
use latent_studio::diffusion::pipeline::{DiffusionPipeline, ImageRequest};
use latent_studio::diffusion::random_weights::{RandomModel, write_random_model};
use latent_studio::train::cancel::CancelToken;

fn image(p: &DiffusionPipeline, prompt: &str) -> image::RgbImage {
    let r = ImageRequest { steps: 3, width: 32, height: 32, guidance: 4.0, ..ImageRequest::new(prompt, 5) };
    p.generate(&r, None, None, 0, &mut |_| {}, &CancelToken::new()).unwrap().unwrap().image
}

fn psnr(a: &image::RgbImage, b: &image::RgbImage) -> f64 {
    let mse: f64 = a.as_raw().iter().zip(b.as_raw()).map(|(x, y)| (*x as f64 - *y as f64).powi(2)).sum::<f64>()
        / a.as_raw().len() as f64;
    if mse == 0.0 { f64::INFINITY } else { 10.0 * (255.0f64 * 255.0 / mse).log10() }
}

fn single(folder: &Path, file: &Path) -> DiffusionPipeline {
    let spec =
        SingleFileSpec { file: file.to_owned(), config: Some(folder.to_owned()), vae: None, ..Default::default() };
    DiffusionPipeline::load_single_file(&spec, &Device::Cpu).unwrap()
}

#[test]
fn every_layout_and_dtype_generates_the_folders_image() {
    let dir = tempfile::tempdir().unwrap();
    for (name, model, family) in [
        ("sd1", RandomModel::tiny(31), Family::Sd1),
        ("sd2", RandomModel::tiny(32), Family::Sd2),
        ("sdxl", RandomModel::tiny_sdxl(33), Family::Sdxl),
    ] {
        let folder = dir.path().join(name);
        write_random_model(&folder, &model).unwrap();
        let reference = image(&DiffusionPipeline::load(&folder, &Device::Cpu).unwrap(), "a red heart");
        let f32_file = dir.path().join(format!("{name}.safetensors"));
        write_single_file(&folder, family, DType::F32, &f32_file).unwrap();
        let p = single(&folder, &f32_file);
        assert_eq!(image(&p, "a red heart"), reference, "{name}: f32 single file differs from its folder");
        for dtype in [DType::F16, DType::BF16] {
            let half = dir.path().join(format!("{name}-{dtype:?}.safetensors"));
            write_single_file(&folder, family, dtype, &half).unwrap();
            let got = image(&single(&folder, &half), "a red heart");
            let db = psnr(&got, &reference);
            let floor = if dtype == DType::F16 { 35.0 } else { 22.0 };
            assert!(db > floor, "{name} {dtype:?}: {db:.1} dB against the f32 folder");
        }
    }
}

#[test]
fn a_one_shot_generation_frees_its_networks_and_makes_the_same_image() {
    // `generate_once` drops the text towers and the U-Net as it goes and
    // reads the autoencoder's decoder back from the file for the last step.
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("sd1");
    write_random_model(&folder, &RandomModel::tiny(34)).unwrap();
    let file = dir.path().join("sd1-f16.safetensors");
    write_single_file(&folder, Family::Sd1, DType::F16, &file).unwrap();
    let r = ImageRequest { steps: 3, width: 32, height: 32, guidance: 4.0, ..ImageRequest::new("a red heart", 5) };
    let kept = single(&folder, &file);
    let expected = kept.generate(&r, None, None, 0, &mut |_| {}, &CancelToken::new()).unwrap().unwrap().image;
    let once = single(&folder, &file)
        .generate_once(&r, Default::default(), &mut |_| {}, &CancelToken::new())
        .unwrap()
        .unwrap()
        .image;
    assert_eq!(once, expected);
}

#[test]
fn what_is_not_a_checkpoint_is_named_and_refused() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("m");
    write_random_model(&folder, &RandomModel::tiny(34)).unwrap();
    let load = |file: &Path| {
        let spec =
            SingleFileSpec { file: file.to_owned(), config: Some(folder.clone()), vae: None, ..Default::default() };
        match DiffusionPipeline::load_single_file(&spec, &Device::Cpu) {
            Ok(_) => panic!("{} loaded", file.display()),
            Err(e) => e.to_string(),
        }
    };
    let ckpt = dir.path().join("model.ckpt");
    std::fs::write(&ckpt, b"\x80\x02}q\x00.").unwrap();
    let err = load(&ckpt);
    assert!(err.contains("model.ckpt") && err.contains("pickle"), "{err}");
    // A truncated download.
    let whole = dir.path().join("whole.safetensors");
    write_single_file(&folder, Family::Sd1, DType::F16, &whole).unwrap();
    let bytes = std::fs::read(&whole).unwrap();
    let cut = dir.path().join("cut.safetensors");
    std::fs::write(&cut, &bytes[..bytes.len() * 2 / 3]).unwrap();
    let err = load(&cut);
    assert!(err.contains("cut.safetensors") && err.contains("truncated"), "{err}");
    // The autoencoder alone.
    let vae = folder.join("vae/diffusion_pytorch_model.safetensors");
    let err = load(&vae);
    assert!(err.contains("diffusion_pytorch_model.safetensors") && err.contains("VAE"), "{err}");
    // Not a safetensors file at all.
    let junk = dir.path().join("junk.safetensors");
    std::fs::write(&junk, b"hello, world, this is not a model").unwrap();
    assert!(load(&junk).contains("not a safetensors file"));
    // A checkpoint whose U-Net does not fit the config's shape.
    let other = dir.path().join("other");
    write_random_model(&other, &RandomModel::tiny_sdxl(35)).unwrap();
    let sdxl = dir.path().join("sdxl.safetensors");
    write_single_file(&other, Family::Sdxl, DType::F32, &sdxl).unwrap();
    let spec = SingleFileSpec { file: sdxl.clone(), config: Some(folder.clone()), vae: None, ..Default::default() };
    let err = DiffusionPipeline::load_single_file(&spec, &Device::Cpu).err().unwrap().to_string();
    assert!(err.contains("sdxl.safetensors") || err.contains("config.json"), "{err}");
}

#[test]
fn a_separate_vae_file_replaces_the_checkpoints_own() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    write_random_model(&a, &RandomModel::tiny(36)).unwrap();
    write_random_model(&b, &RandomModel::tiny(37)).unwrap();
    let file = dir.path().join("a.safetensors");
    write_single_file(&a, Family::Sd1, DType::F32, &file).unwrap();
    let own = image(&single(&a, &file), "a red heart");
    // b's autoencoder in diffusers' layout, and in the original layout (as b's checkpoint).
    let b_file = dir.path().join("b.safetensors");
    write_single_file(&b, Family::Sd1, DType::F32, &b_file).unwrap();
    for vae in [b.join("vae/diffusion_pytorch_model.safetensors"), b_file] {
        let spec = SingleFileSpec {
            file: file.clone(),
            config: Some(a.clone()),
            vae: Some(vae.clone()),
            ..Default::default()
        };
        let p = DiffusionPipeline::load_single_file(&spec, &Device::Cpu).unwrap();
        assert_ne!(image(&p, "a red heart"), own, "{}", vae.display());
    }
    let not_vae = dir.path().join("text.safetensors");
    std::fs::copy(a.join("text_encoder/model.safetensors"), &not_vae).unwrap();
    let spec = SingleFileSpec { file, config: Some(a), vae: Some(not_vae), ..Default::default() };
    let err = DiffusionPipeline::load_single_file(&spec, &Device::Cpu).err().unwrap().to_string();
    assert!(err.contains("text.safetensors") && err.contains("not an autoencoder"), "{err}");
}
