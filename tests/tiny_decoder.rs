//! The tiny preview decoder (TAESD layout) against diffusers'
//! `AutoencoderTiny` with the same random weights and latent (recorded in
//! tests/fixtures/tiny_decoder.npy by tests/reference/tiny_decoder.py when
//! `DIFFUSERS_PYTHON` is set), and in the pipeline: previews at every step
//! through it, and the final image too when asked.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failed unwrap is a failed test

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use latent_studio::diffusion::pipeline::{DiffusionPipeline, GenerateInputs, ImageRequest};
use latent_studio::diffusion::random_weights::{RandomModel, write_random_model};
use latent_studio::diffusion::tiny_decoder::{TinyDecoder, TinyDecoderConfig};
use latent_studio::io::npy::{NpyArray, npy_bytes, read_npy};
use latent_studio::train::cancel::CancelToken;
use latent_studio::train::init::{named_vars, reseed_parameters};
use latent_studio::train::rng::SeededRng;

const FIXTURE: &str = "tests/fixtures/tiny_decoder.npy";

/// A small AutoencoderTiny folder with random weights (and random biases).
fn write_tiny_decoder(dir: &Path) {
    let config = TinyDecoderConfig {
        decoder_block_out_channels: vec![16, 16, 16, 16],
        num_decoder_blocks: vec![2, 1, 1, 1],
        ..TinyDecoderConfig::default()
    };
    let varmap = VarMap::new();
    TinyDecoder::new(&config, VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu)).unwrap();
    reseed_parameters(&varmap, 81).unwrap();
    let mut rng = SeededRng::new(82);
    let mut vars = named_vars(&varmap);
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, var) in vars {
        if name.ends_with("bias") {
            let values: Vec<f32> = rng.normal_vec(var.elem_count()).iter().map(|v| 0.1 * v).collect();
            var.set(&Tensor::from_vec(values, var.shape(), &Device::Cpu).unwrap()).unwrap();
        }
    }
    std::fs::create_dir_all(dir).unwrap();
    varmap.save(dir.join("diffusion_pytorch_model.safetensors")).unwrap();
    let json = serde_json::json!({
        "_class_name": "AutoencoderTiny",
        "decoder_block_out_channels": config.decoder_block_out_channels,
        "num_decoder_blocks": config.num_decoder_blocks,
        "encoder_block_out_channels": [16, 16, 16, 16],
        "num_encoder_blocks": [1, 1, 1, 1],
        "latent_channels": 4,
        "scaling_factor": 1.0,
    });
    std::fs::write(dir.join("config.json"), json.to_string()).unwrap();
}

#[test]
fn tiny_decoder_matches_diffusers_autoencoder_tiny() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("taesd");
    write_tiny_decoder(&folder);
    let latent = SeededRng::new(83).normal_vec(4 * 4 * 4).iter().map(|v| 2.0 * v).collect::<Vec<f32>>();
    let latent_file = dir.path().join("latent.npy");
    std::fs::write(&latent_file, npy_bytes(&NpyArray { shape: vec![1, 4, 4, 4], data: latent.clone() })).unwrap();
    if let Ok(python) = std::env::var("DIFFUSERS_PYTHON") {
        let status = std::process::Command::new(python)
            .args([
                "tests/reference/tiny_decoder.py".as_ref(),
                folder.as_os_str(),
                latent_file.as_os_str(),
                FIXTURE.as_ref(),
            ])
            .status()
            .unwrap();
        assert!(status.success());
    }
    let decoder = TinyDecoder::load(&folder, &Device::Cpu).unwrap();
    let ours = decoder.decode(&Tensor::from_vec(latent, (1, 4, 4, 4), &Device::Cpu).unwrap()).unwrap();
    assert_eq!(ours.dims(), [1, 3, 32, 32]);
    let theirs = read_npy(Path::new(FIXTURE)).unwrap();
    let ours: Vec<f32> = ours.flatten_all().unwrap().to_vec1().unwrap();
    let worst = ours.iter().zip(&theirs.data).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    let spread = theirs.data.iter().map(|v| v.abs()).fold(0.0f32, f32::max);
    assert!(worst < 1e-4 * spread.max(1.0), "differs by up to {worst} (outputs up to {spread})");
    // The weights alone, as a single file, load with the default config's numbering only if it fits.
    let err = TinyDecoder::load(&folder.join("diffusion_pytorch_model.safetensors"), &Device::Cpu).err().unwrap();
    assert!(err.to_string().contains("diffusion_pytorch_model.safetensors"), "{err}");
}

#[test]
fn previews_and_the_final_image_through_the_tiny_decoder() {
    let dir = tempfile::tempdir().unwrap();
    let (model, taesd) = (dir.path().join("m"), dir.path().join("taesd"));
    write_random_model(&model, &RandomModel::tiny(84)).unwrap();
    write_tiny_decoder(&taesd);
    let p = DiffusionPipeline::load(&model, &Device::Cpu).unwrap();
    let request = ImageRequest { steps: 4, width: 32, height: 32, guidance: 3.0, ..ImageRequest::new("a cat", 3) };
    let run = |decoder: Option<&Path>, final_too: bool| {
        let mut previews = Vec::new();
        let inputs = GenerateInputs {
            preview_every: 1,
            preview_decoder: decoder.map(Path::to_owned),
            preview_decoder_final: final_too,
            ..Default::default()
        };
        let image = p
            .generate_with(&request, inputs, &mut |r| previews.extend(r.preview), &CancelToken::new())
            .unwrap()
            .unwrap()
            .image;
        (image, previews)
    };
    let (plain, plain_previews) = run(None, false);
    let (same, tiny_previews) = run(Some(&taesd), false);
    assert_eq!(same, plain, "the final image still comes from the full decoder");
    assert_eq!(tiny_previews.len(), 3, "a preview at every step but the last");
    assert_ne!(tiny_previews, plain_previews);
    let (fast, _) = run(Some(&taesd), true);
    assert_ne!(fast, plain);
    let err = p.use_preview_decoder(Some(&model.join("unet"))).err().unwrap().to_string();
    assert!(err.contains("unet"), "{err}");
}
