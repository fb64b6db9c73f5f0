//! Latent control on the shipped emoji-ldm: the pad on a point is that
//! point's generation byte for byte, travel starts and ends on its
//! keyframes' generations, a concept slider at 0 changes nothing, the
//! variation seed follows A1111's slerp, and a pad image made again from
//! its PNG is the same file.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failed unwrap is a failed test

mod common;

use std::path::Path;
use std::process::Command;

use candle_core::Device;
use latent_studio::diffusion::latent_control::scene::LatentScene;
use latent_studio::diffusion::pipeline::{DiffusionPipeline, ImageRequest};
use latent_studio::diffusion::schedulers::SamplerKind;
use latent_studio::spec::image::VariationSeed;
use latent_studio::spec::latent_control::{ConceptSlider, Keyframe, PadRecipe, TravelFrame};
use latent_studio::train::cancel::CancelToken;
use latent_studio::train::rng::SeededRng;

fn pipeline() -> DiffusionPipeline {
    DiffusionPipeline::load(&common::shipped_models().join("emoji-ldm"), &Device::Cpu).unwrap()
}

fn base(sampler: SamplerKind) -> ImageRequest {
    ImageRequest { steps: 8, width: 32, height: 32, guidance: 4.0, sampler, ..ImageRequest::new("", 0) }
}

fn plain(p: &DiffusionPipeline, base: &ImageRequest, prompt: &str, seed: u64) -> Vec<u8> {
    let request = ImageRequest { prompt: prompt.into(), seed, ..base.clone() };
    p.generate(&request, None, None, 0, &mut |_| {}, &CancelToken::new()).unwrap().unwrap().image.into_raw()
}

fn corners() -> PadRecipe {
    PadRecipe::corners([
        ("red heart".into(), 5),
        ("blue star".into(), 9),
        ("green tree".into(), 3),
        ("yellow sun".into(), 4),
    ])
}

fn pad_image(
    p: &DiffusionPipeline,
    scene: &mut LatentScene,
    base: &ImageRequest,
    pad: &PadRecipe,
    sliders: &[ConceptSlider],
) -> Vec<u8> {
    let (request, noise, cond) = scene.pad_start(p, base, pad, sliders).unwrap();
    let done = LatentScene::render(p, &request, noise, &cond, &mut |_| {}, &CancelToken::new()).unwrap().unwrap();
    done.image.into_raw()
}

#[test]
fn a_cursor_on_a_point_is_that_points_generation_and_a_slider_at_zero_changes_nothing() {
    let p = pipeline();
    let mut scene = LatentScene::default();
    // Euler a draws noise every step: the point's own seed must drive it too.
    for sampler in [SamplerKind::Ddim, SamplerKind::EulerAncestral] {
        let base = base(sampler);
        for point in corners().points {
            let pad = PadRecipe { at: (point.x, point.y), ..corners() };
            let ours = pad_image(&p, &mut scene, &base, &pad, &[]);
            assert_eq!(ours, plain(&p, &base, &point.prompt, point.seed), "{sampler:?} {}", point.prompt);
        }
    }
    let base = base(SamplerKind::Ddim);
    let between = PadRecipe { at: (0.3, 0.6), ..corners() };
    let blended = pad_image(&p, &mut scene, &base, &between, &[]);
    assert_ne!(blended, plain(&p, &base, "red heart", 5), "between the points, a blend");
    let idle = [ConceptSlider::new("happy", "sad", 0.0), ConceptSlider::new("red", "blue", 0.0)];
    assert_eq!(pad_image(&p, &mut scene, &base, &between, &idle), blended, "sliders at 0 are no-ops");
    let moved = pad_image(&p, &mut scene, &base, &between, &[ConceptSlider::new("red", "blue", 1.5)]);
    assert_ne!(moved, blended, "a slider away from 0 moves the image");
}

#[test]
fn travel_starts_and_ends_on_its_keyframes() {
    let p = pipeline();
    let mut scene = LatentScene::default();
    let base = base(SamplerKind::Ddim);
    let keyframes = vec![
        Keyframe { prompt: "red heart".into(), seed: 5, concepts: vec![] },
        Keyframe { prompt: "blue star".into(), seed: 9, concepts: vec![] },
        Keyframe { prompt: "yellow sun".into(), seed: 4, concepts: vec![] },
    ];
    let mut frame = |i: usize| {
        let at = TravelFrame { keyframes: keyframes.clone(), frame: i, frames: 5 };
        let (request, noise, cond) = scene.travel_start(&p, &base, &at, &[]).unwrap();
        let done = LatentScene::render(&p, &request, noise, &cond, &mut |_| {}, &CancelToken::new()).unwrap();
        done.unwrap().image.into_raw()
    };
    let frames: Vec<Vec<u8>> = (0..5).map(&mut frame).collect();
    assert_eq!(frames[0], plain(&p, &base, "red heart", 5));
    assert_eq!(frames[2], plain(&p, &base, "blue star", 9), "the middle keyframe is a frame");
    assert_eq!(frames[4], plain(&p, &base, "yellow sun", 4));
    assert_ne!(frames[1], frames[0]);
}

/// A1111's `slerp` over noise [c, h, w], written from its definition in f64
/// (angles per channel and column over the rows), independently of ours.
fn a1111_reference(val: f64, low: &[f32], high: &[f32], [c, h, w]: [usize; 3]) -> Vec<f64> {
    let mut out = vec![0.0; low.len()];
    for ch in 0..c {
        for x in 0..w {
            let column = |v: &[f32]| (0..h).map(|y| f64::from(v[(ch * h + y) * w + x])).collect::<Vec<f64>>();
            let (l, hi) = (column(low), column(high));
            let norm = |v: &[f64]| v.iter().map(|a| a * a).sum::<f64>().sqrt();
            let dot = l.iter().zip(&hi).map(|(a, b)| a * b).sum::<f64>() / (norm(&l) * norm(&hi));
            let omega = dot.acos();
            for y in 0..h {
                out[(ch * h + y) * w + x] =
                    ((1.0 - val) * omega).sin() / omega.sin() * l[y] + (val * omega).sin() / omega.sin() * hi[y];
            }
        }
    }
    out
}

#[test]
fn the_variation_seed_is_a1111s_slerp_of_the_two_seeds_noises() {
    let p = pipeline();
    let request = ImageRequest {
        prompt: "red heart".into(),
        seed: 5,
        variation: Some(VariationSeed { seed: 77, strength: 0.3 }),
        ..base(SamplerKind::Ddim)
    };
    let done = p.generate(&request, None, None, 0, &mut |_| {}, &CancelToken::new()).unwrap().unwrap();
    let len = done.noise.len();
    let (low, high) = (SeededRng::new(5).normal_vec(len), SeededRng::new(77).normal_vec(len));
    let want = a1111_reference(0.3, &low, &high, done.latent_shape);
    let worst = done.noise.iter().zip(&want).map(|(a, b)| (f64::from(*a) - b).abs()).fold(0.0, f64::max);
    assert!(worst < 1e-6, "largest difference from A1111's formula {worst}");
    let none = ImageRequest { variation: Some(VariationSeed { seed: 77, strength: 0.0 }), ..request.clone() };
    let plain = p.generate(&none, None, None, 0, &mut |_| {}, &CancelToken::new()).unwrap().unwrap();
    assert_eq!(plain.noise, low, "strength 0 is the seed's own noise");
}

fn studio(args: &[&str]) -> std::process::Output {
    let models = common::shipped_models();
    let mut all = vec!["--models-dir", models.to_str().unwrap()];
    all.extend_from_slice(args);
    Command::new(env!("CARGO_BIN_EXE_latent-studio")).args(all).output().unwrap()
}

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn a_pad_png_makes_the_same_image_again_and_travel_writes_both_formats() {
    let dir = tempfile::tempdir().unwrap();
    let (first, again) = (dir.path().join("pad.png"), dir.path().join("again.png"));
    let sampling = ["--steps", "6", "--sampler", "ddim", "--cfg", "4"];
    let mut args = vec!["pad", "--model", "emoji-ldm", "--point", "red heart@5@0,0", "--point", "blue star@9@1,1"];
    args.extend(["--at", "0.3,0.4", "--concept", "happy/sad=0.5", "--noise-directions", "1.5,0,-2"]);
    args.extend(["--out", s(&first)]);
    args.extend(sampling);
    let out = studio(&args);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = studio(&["pad", "--model", "emoji-ldm", "--from", s(&first), "--out", s(&again)]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(std::fs::read(&first).unwrap(), std::fs::read(&again).unwrap(), "same settings, same file");
    let info = studio(&["info", s(&first)]);
    let text = String::from_utf8_lossy(&info.stdout);
    assert!(text.contains("Latent pad") && text.contains("happy/sad=0.5"), "{text}");
    let refused = studio(&["pad", "--model", "emoji-ldm", "--from", s(&first), "--out", s(&first)]);
    assert!(!refused.status.success(), "an existing file is never overwritten");

    for name in ["walk.gif", "walk.apng"] {
        let path = dir.path().join(name);
        let mut args = vec!["travel", "--model", "emoji-ldm", "--keyframe", "red heart@5", "--keyframe", "blue star@9"];
        args.extend(["--frames", "3", "--steps", "4", "--out", s(&path)]);
        let out = studio(&args);
        assert!(out.status.success(), "{name}: {}", String::from_utf8_lossy(&out.stderr));
        let info = studio(&["info", s(&path)]);
        let text = String::from_utf8_lossy(&info.stdout);
        assert!(
            text.contains("Travel: \"frame 1 of 3: red heart@5 | blue star@9\""),
            "{name} carries its recipe: {text}"
        );
    }
    let stochastic = dir.path().join("noisy.gif");
    let mut args = vec!["travel", "--model", "emoji-ldm", "--keyframe", "a@1", "--keyframe", "b@2"];
    args.extend(["--sampler", "euler-a", "--out", s(&stochastic)]);
    let out = studio(&args);
    assert!(String::from_utf8_lossy(&out.stderr).contains("deterministic sampler"), "euler a is refused");
}
