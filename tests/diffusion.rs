//! Latent diffusion end to end on CPU with tiny models written in the
//! diffusers layout: loading SD- and SDXL-shaped folders, txt2img with every
//! sampler, img2img, determinism, `--noise`, cancel within one step, clear
//! errors for broken folders, and our own trainer learning to denoise.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failed unwrap is a failed test

use std::path::Path;

use candle_core::{Device, Tensor};
use latent_studio::diffusion::clip_tokenizer::ClipTokenizer;
use latent_studio::diffusion::pipeline::{DiffusionPipeline, Generated, ImageRequest, StepReport};
use latent_studio::diffusion::random_weights::{RandomModel, write_random_model};
use latent_studio::diffusion::schedulers::SamplerKind;
use latent_studio::diffusion::train::{DiffusionTrainer, LatentCaptions, TrainDiffusionSpec};
use latent_studio::train::cancel::CancelToken;
use latent_studio::train::rng::SeededRng;

fn tiny_request(prompt: &str, seed: u64) -> ImageRequest {
    ImageRequest { steps: 4, width: 32, height: 32, guidance: 3.0, ..ImageRequest::new(prompt, seed) }
}

fn run(p: &DiffusionPipeline, r: &ImageRequest) -> Generated {
    p.generate(r, None, None, 0, &mut |_| {}, &CancelToken::new()).unwrap().unwrap()
}

fn write(dir: &Path, model: RandomModel) -> DiffusionPipeline {
    write_random_model(dir, &model).unwrap();
    DiffusionPipeline::load(dir, &Device::Cpu).unwrap()
}

#[test]
fn tiny_sd_folder_generates_with_every_sampler_deterministically() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), RandomModel::tiny(1));
    for file in [
        "model_index.json",
        "unet/config.json",
        "vae/diffusion_pytorch_model.safetensors",
        "tokenizer/merges.txt",
        "text_encoder/model.safetensors",
    ] {
        assert!(dir.path().join(file).is_file(), "{file}");
    }
    for sampler in SamplerKind::ALL {
        let r = ImageRequest { sampler, ..tiny_request("a red heart", 7) };
        let (a, b) = (run(&p, &r), run(&p, &r));
        assert_eq!(a.image.dimensions(), (32, 32));
        assert_eq!(a.image, b.image, "{sampler:?} is not deterministic");
        let other = run(&p, &ImageRequest { seed: 8, ..r.clone() });
        assert_ne!(a.image, other.image, "{sampler:?}: the seed changes nothing");
    }
    // The seed's noise given back through `noise` reproduces the image; the prompt matters.
    let r = tiny_request("a red heart", 7);
    let a = run(&p, &r);
    assert_eq!(a.latent_shape, [4, 4, 4]);
    assert_eq!(a.noise, SeededRng::new(7).normal_vec(64));
    let from_file = p.generate(&r, None, Some(a.noise.clone()), 0, &mut |_| {}, &CancelToken::new()).unwrap().unwrap();
    assert_eq!(from_file.image, a.image);
    assert_ne!(run(&p, &tiny_request("a dog in the snow", 7)).image, a.image);
    // Guidance ≤ 1 runs the prompt alone (SD-Turbo).
    let turbo = ImageRequest { guidance: 0.0, steps: 1, ..r.clone() };
    assert_eq!(run(&p, &turbo).image.dimensions(), (32, 32));
}

#[test]
fn img2img_keeps_the_init_image_at_low_strength() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), RandomModel::tiny(2));
    let init = image::RgbImage::from_fn(48, 40, |x, _| image::Rgb([if x < 24 { 255 } else { 0 }, 60, 120]));
    let mut steps_run = 0;
    let r = ImageRequest { strength: 0.5, steps: 8, ..tiny_request("a cat", 3) };
    let out = p
        .generate(&r, Some(&init), None, 0, &mut |s: StepReport| steps_run = s.total, &CancelToken::new())
        .unwrap()
        .unwrap();
    assert_eq!(steps_run, 4, "strength 0.5 of 8 steps runs the last 4");
    assert_eq!(out.image.dimensions(), (32, 32));
    let bad = ImageRequest { strength: 0.0, ..r };
    assert!(p.generate(&bad, Some(&init), None, 0, &mut |_| {}, &CancelToken::new()).is_err());
}

#[test]
fn cancel_takes_effect_before_the_next_step_and_previews_arrive() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), RandomModel::tiny(3));
    let cancel = CancelToken::new();
    let (mut steps, mut previews) = (0, 0);
    let r = ImageRequest { steps: 10, ..tiny_request("sun", 1) };
    let out = p
        .generate(
            &r,
            None,
            None,
            1,
            &mut |s: StepReport| {
                steps = s.step;
                previews += s.preview.is_some() as usize;
                if s.step == 3 {
                    cancel.cancel();
                }
            },
            &cancel,
        )
        .unwrap();
    assert!(out.is_none());
    assert_eq!((steps, previews), (3, 3), "cancelled after step 3 of 10, a preview every step");
}

#[test]
fn sd2_shaped_folder_with_v_prediction_and_gelu_runs() {
    let dir = tempfile::tempdir().unwrap();
    let mut model = RandomModel::tiny(8);
    model.scheduler.prediction_type = "v_prediction".into();
    model.text[0].hidden_act = "gelu".into();
    model.unet.attention_head_dim = latent_studio::diffusion::unet_config::PerBlock::Each(vec![1, 2]);
    let p = write(dir.path(), model);
    for sampler in SamplerKind::ALL {
        let img = run(&p, &ImageRequest { sampler, ..tiny_request("a cat", 5) });
        assert_eq!(img.image.dimensions(), (32, 32));
    }
}

#[test]
fn large_latents_preview_through_the_fitted_colour_map() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), RandomModel::tiny(9));
    // 40 × 40 latent positions: past the decoded-preview limit, so one pixel per position.
    let x0 = Tensor::zeros((1, 4, 40, 40), candle_core::DType::F32, &Device::Cpu).unwrap();
    let flat = p.preview(&x0).unwrap();
    assert_eq!(flat.dimensions(), (40, 40));
    let first = *flat.get_pixel(0, 0);
    assert!(flat.pixels().all(|px| *px == first), "a constant latent previews as one colour");
}

#[test]
fn sdxl_shaped_folder_uses_both_text_encoders() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), RandomModel::tiny_sdxl(4));
    assert_eq!(p.nets().towers.len(), 2);
    let (states, pooled) = p.nets().encode_prompts(&["a cat", ""]).unwrap();
    assert_eq!(states.dims(), [2, 16, 48]);
    // The second encoder's projected pooled state feeds SDXL's added embedding.
    let pooled = pooled.expect("text_encoder_2 has text_projection");
    assert_eq!(pooled.dims(), [2, 12]);
    assert!(p.nets().unet.takes_added_input());
    let request = ImageRequest { sampler: SamplerKind::EulerAncestral, ..tiny_request("a cat", 5) };
    let img = run(&p, &request);
    assert_eq!(img.image.dimensions(), (32, 32));
    // The requested size reaches the U-Net through the added input.
    let cond = p.conditioning(&request).unwrap();
    let larger = p.conditioning(&ImageRequest { width: 64, height: 64, ..request.clone() }).unwrap();
    let (a, b) = (cond.added.clone().unwrap(), larger.added.unwrap());
    assert_eq!(a.dims(), [2, 12 + 48]);
    // ...and changes its prediction.
    let x = Tensor::ones((2, 4, 4, 4), candle_core::DType::F32, &Device::Cpu).unwrap();
    let unet = &p.nets().unet;
    let with = |added: &Tensor| unet.forward(&x, &[500.0], &cond.context, Some(added)).unwrap();
    let moved = (with(&a) - with(&b)).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
    assert!(moved > 1e-3, "the added input changes the output by {moved}");
    assert!((a - b).unwrap().abs().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap() > 0.0);
    // An empty negative prompt is zeros (force_zeros_for_empty_prompt), a given one is not.
    assert_eq!(cond.context.get(0).unwrap().abs().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap(), 0.0);
    let negative = p.conditioning(&ImageRequest { negative: "blurry".into(), ..request }).unwrap();
    assert!(negative.context.get(0).unwrap().abs().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap() > 0.0);
}

#[test]
fn broken_folders_name_the_file_at_fault() {
    let dir = tempfile::tempdir().unwrap();
    write_random_model(dir.path(), &RandomModel::tiny(5)).unwrap();
    let load_err = |dir: &Path| DiffusionPipeline::load(dir, &Device::Cpu).err().expect("should fail").to_string();
    let weights = dir.path().join("unet/diffusion_pytorch_model.safetensors");
    let good = std::fs::read(&weights).unwrap();
    std::fs::write(&weights, &good[..good.len() / 2]).unwrap();
    assert!(load_err(dir.path()).contains("unet/diffusion_pytorch_model.safetensors"), "{}", load_err(dir.path()));
    std::fs::write(&weights, good).unwrap();
    std::fs::write(dir.path().join("vae/config.json"), "{not json").unwrap();
    assert!(load_err(dir.path()).contains("vae/config.json"));
    let empty = tempfile::tempdir().unwrap();
    assert!(load_err(empty.path()).contains("not a diffusers model folder"));
}

/// Two classes of 4 × 4 × 4 latents: "red heart" is +1 in channel 0, "blue sky" +1 in channel 1.
fn two_class_latents(tokenizer: &ClipTokenizer, n: usize) -> LatentCaptions {
    let mut data = vec![0f32; n * 64];
    let captions: Vec<String> =
        (0..n).map(|i| if i % 2 == 0 { "red heart".into() } else { "blue sky".into() }).collect();
    for i in 0..n {
        let channel = i % 2;
        for p in 0..16 {
            data[i * 64 + channel * 16 + p] = 1.0;
        }
    }
    let latents = Tensor::from_vec(data, (n, 4, 4, 4), &Device::Cpu).unwrap();
    LatentCaptions::new(latents, &captions, tokenizer).unwrap()
}

fn tiny_trainer_spec(tokenizer: &ClipTokenizer, epochs: usize) -> TrainDiffusionSpec {
    use latent_studio::diffusion::{clip_text::ClipTextConfig, unet_config::UnetConfig};
    let mut spec = TrainDiffusionSpec::emoji(tokenizer.vocab_size(), tokenizer.max_len(), epochs, 1);
    spec.unet = UnetConfig { sample_size: Some(4), ..UnetConfig::tiny(4, 32) };
    spec.text =
        ClipTextConfig { max_position_embeddings: tokenizer.max_len(), ..ClipTextConfig::tiny(tokenizer.vocab_size()) };
    spec.batch_size = 8;
    spec.lr = 1e-3;
    spec
}

#[test]
fn diffusion_training_resumes_exactly() {
    let dir = tempfile::tempdir().unwrap();
    write_random_model(dir.path(), &RandomModel::tiny(7)).unwrap();
    let tokenizer = ClipTokenizer::from_dir(&dir.path().join("tokenizer")).unwrap();
    let set = two_class_latents(&tokenizer, 64);
    let mut trainer = DiffusionTrainer::new(tiny_trainer_spec(&tokenizer, 3), &Device::Cpu).unwrap();
    let cancel = CancelToken::new();
    trainer.train_epoch(&set, &mut |_, _, _| {}, &cancel).unwrap();
    let checkpoint = dir.path().join("checkpoint");
    trainer.save_checkpoint(&checkpoint).unwrap();
    let a = trainer.train_epoch(&set, &mut |_, _, _| {}, &cancel).unwrap().unwrap();
    let mut resumed = DiffusionTrainer::resume(&checkpoint, 3, None, &Device::Cpu).unwrap();
    let b = resumed.train_epoch(&set, &mut |_, _, _| {}, &cancel).unwrap().unwrap();
    assert_eq!((a.epoch, a.loss), (b.epoch, b.loss));
}

#[test]
fn our_trainer_learns_to_denoise_and_follows_the_caption() {
    let dir = tempfile::tempdir().unwrap();
    write_random_model(dir.path(), &RandomModel::tiny(6)).unwrap();
    let tokenizer = ClipTokenizer::from_dir(&dir.path().join("tokenizer")).unwrap();
    let set = two_class_latents(&tokenizer, 64);
    let spec = tiny_trainer_spec(&tokenizer, 40);
    let mut trainer = DiffusionTrainer::new(spec, &Device::Cpu).unwrap();
    let cancel = CancelToken::new();
    for _ in 0..40 {
        trainer.train_epoch(&set, &mut |_, _, _| {}, &cancel).unwrap();
    }
    let first = trainer.history()[0].loss;
    let last: f64 = trainer.history()[35..].iter().map(|r| r.loss).sum::<f64>() / 5.0;
    assert!(last < 0.5 * first, "noise-prediction loss {first} → {last}");
    // From the same seeds, "red heart" samples carry more of the red channel
    // and less of the blue one than "blue sky" samples do.
    let means = trainer.sample_latents(&tokenizer, &["red heart", "blue sky"], &[1, 2, 3, 4], 20, 3.0).unwrap();
    let channel_mean =
        |t: &Tensor, c: usize| t.narrow(1, c, 1).unwrap().mean_all().unwrap().to_scalar::<f32>().unwrap();
    let (red, blue) = (&means[0], &means[1]);
    let shown = format!(
        "red {:?}, blue {:?}",
        (0..4).map(|c| channel_mean(red, c)).collect::<Vec<_>>(),
        (0..4).map(|c| channel_mean(blue, c)).collect::<Vec<_>>()
    );
    assert!(channel_mean(red, 0) > channel_mean(blue, 0) + 0.3, "{shown}");
    assert!(channel_mean(blue, 1) > channel_mean(red, 1) + 0.3, "{shown}");
}
