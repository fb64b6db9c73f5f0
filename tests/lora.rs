//! LoRAs on a loaded model: weights change in place and come back exactly,
//! prompt tags find files by name, and files that do not fit are refused
//! with messages naming them (another family's LoRA, unknown layers, a
//! checkpoint handed over as a LoRA, a missing tag).
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failed unwrap is a failed test

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use latent_studio::diffusion::lora::active::LoraRequest;
use latent_studio::diffusion::lora::random::{LoraLayout, RandomLora, write_random_lora};
use latent_studio::diffusion::pipeline::{DiffusionPipeline, GenerateError, GenerateInputs, ImageRequest};
use latent_studio::diffusion::random_weights::{RandomModel, write_random_model};
use latent_studio::train::cancel::CancelToken;

fn request(prompt: &str) -> ImageRequest {
    ImageRequest { steps: 3, width: 32, height: 32, guidance: 3.0, ..ImageRequest::new(prompt, 9) }
}

fn run(
    p: &DiffusionPipeline,
    prompt: &str,
    loras: Vec<LoraRequest>,
    dirs: &[PathBuf],
) -> Result<image::RgbImage, GenerateError> {
    let inputs = GenerateInputs { loras, lora_dirs: dirs.to_vec(), ..Default::default() };
    Ok(p.generate_with(&request(prompt), inputs, &mut |_| {}, &CancelToken::new())?.unwrap().image)
}

fn lora(path: &Path, w: f64) -> Vec<LoraRequest> {
    vec![LoraRequest { path: path.to_owned(), text_weight: w, unet_weight: w }]
}

fn random_lora(p: &DiffusionPipeline, path: &Path, layout: LoraLayout, seed: u64) {
    let spec = RandomLora { layout, rank: 2, alpha: 1.0, convolutions: true, scale: 0.2, seed };
    write_random_lora(p.nets(), &spec, path).unwrap();
}

#[test]
fn weights_change_in_place_and_return_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("m");
    write_random_model(&model, &RandomModel::tiny(61)).unwrap();
    let p = DiffusionPipeline::load(&model, &Device::Cpu).unwrap();
    let loras = dir.path().join("loras");
    std::fs::create_dir_all(loras.join("styles")).unwrap();
    let file = loras.join("styles/Pixel-Art.safetensors");
    random_lora(&p, &file, LoraLayout::Kohya, 3);
    let base = run(&p, "a red heart", vec![], &[]).unwrap();
    let full = run(&p, "a red heart", lora(&file, 1.0), &[]).unwrap();
    let half = run(&p, "a red heart", lora(&file, 0.5), &[]).unwrap();
    assert_ne!(full, base);
    assert_ne!(half, full);
    assert_eq!(run(&p, "a red heart", lora(&file, 1.0), &[]).unwrap(), full, "weights drifted");
    assert_eq!(run(&p, "a red heart", vec![], &[]).unwrap(), base, "the base weights did not come back");
    // Two at once; then the prompt's tag, found by name in a subfolder, case aside.
    let second = loras.join("glow.safetensors");
    random_lora(&p, &second, LoraLayout::Peft, 4);
    let both = [lora(&file, 0.5), lora(&second, 0.3)].concat();
    let together = run(&p, "a red heart", both.clone(), &[]).unwrap();
    assert_ne!(together, half);
    let tagged =
        run(&p, "a red heart <lora:pixel-art:0.5> <lora:glow:0.3>", vec![], std::slice::from_ref(&loras)).unwrap();
    assert_eq!(tagged, together, "tags give what explicit LoRAs give (and are not text)");
    let err = run(&p, "a red heart <lora:missing:1>", vec![], std::slice::from_ref(&loras)).unwrap_err().to_string();
    assert!(err.contains("missing") && err.contains("loras"), "{err}");
    assert_eq!(run(&p, "a red heart", vec![], &[]).unwrap(), base);
}

#[test]
fn loras_that_do_not_fit_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let (sd, xl) = (dir.path().join("sd"), dir.path().join("xl"));
    write_random_model(&sd, &RandomModel::tiny(62)).unwrap();
    write_random_model(&xl, &RandomModel::tiny_sdxl(63)).unwrap();
    let p = DiffusionPipeline::load(&sd, &Device::Cpu).unwrap();
    let base = run(&p, "a cat", vec![], &[]).unwrap();
    // Another family's LoRA.
    let xl_lora = dir.path().join("xl-lora.safetensors");
    random_lora(&DiffusionPipeline::load(&xl, &Device::Cpu).unwrap(), &xl_lora, LoraLayout::Kohya, 5);
    let err = run(&p, "a cat", lora(&xl_lora, 1.0), &[]).unwrap_err().to_string();
    assert!(err.contains("xl-lora.safetensors"), "{err}");
    assert_eq!(run(&p, "a cat", vec![], &[]).unwrap(), base, "a refused LoRA left weights behind");
    // A LoRA with layers this model lacks: merged, the rest reported.
    let own = dir.path().join("own.safetensors");
    random_lora(&p, &own, LoraLayout::Kohya, 6);
    let mut tensors: HashMap<String, Tensor> = candle_core::safetensors::load(&own, &Device::Cpu).unwrap();
    let extra = Tensor::zeros((2, 8), candle_core::DType::F32, &Device::Cpu).unwrap();
    tensors.insert("lora_unet_no_such_block_proj.lora_down.weight".into(), extra.clone());
    tensors.insert("lora_unet_no_such_block_proj.lora_up.weight".into(), extra.t().unwrap().contiguous().unwrap());
    tensors.insert("lora_unet_x.hada_w1_a".into(), extra);
    candle_core::safetensors::save(&tensors, &own).unwrap();
    let inputs = GenerateInputs { loras: lora(&own, 1.0), ..Default::default() };
    let generated = p.generate_with(&request("a cat"), inputs, &mut |_| {}, &CancelToken::new()).unwrap().unwrap();
    let report = &generated.loras[0];
    assert_eq!(report.unused, vec!["lora_unet_no_such_block_proj".to_owned()]);
    assert_eq!(report.unsupported, 1);
    assert!(report.applied > 10);
    // A checkpoint is not a LoRA.
    let not_lora = sd.join("unet/diffusion_pytorch_model.safetensors");
    let err = run(&p, "a cat", lora(&not_lora, 1.0), &[]).unwrap_err().to_string();
    assert!(err.contains("diffusion_pytorch_model.safetensors") && err.contains("not a LoRA"), "{err}");
}
