//! Our pipeline against diffusers on the same tiny random models, the same
//! initial noise and the same per-step noise: every sampler, single files
//! (fp32 and fp16, SD 1.x, 2.x and XL layouts, loaded by diffusers'
//! `from_single_file` as the independent check that our files are right).
//!
//! The reference PNGs live in tests/fixtures/diffusers/ and were made by
//! tests/reference/diffusers_reference.py. To remake them, point
//! `DIFFUSERS_PYTHON` at a Python with diffusers 0.42 (benches/setup-torch.sh,
//! then `pip install diffusers transformers peft`): the test then writes the
//! jobs, runs the script and records its images before comparing.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failed unwrap is a failed test

use std::path::{Path, PathBuf};

use candle_core::{DType, Device};
use latent_studio::diffusion::checkpoint::SingleFileSpec;
use latent_studio::diffusion::checkpoint::family::Family;
use latent_studio::diffusion::checkpoint::write::write_single_file;
use latent_studio::diffusion::pipeline::{DiffusionPipeline, GenerateInputs, ImageRequest, initial_noise};
use latent_studio::diffusion::random_weights::{RandomModel, write_random_model};
use latent_studio::diffusion::schedulers::SamplerKind;
use latent_studio::io::npy::{NpyArray, npy_bytes};
use latent_studio::train::cancel::CancelToken;
use latent_studio::train::rng::SeededRng;
use serde_json::json;

const FIXTURES: &str = "tests/fixtures/diffusers";
const STEPS: usize = 6;

/// How a case's model is loaded.
#[derive(Clone, Copy)]
enum Load {
    Folder,
    Single(Family, DType),
}

struct Case {
    name: &'static str,
    model: &'static str,
    load: Load,
    sampler: SamplerKind,
}

fn cases() -> Vec<Case> {
    let mut cases: Vec<Case> = SamplerKind::ALL
        .into_iter()
        .map(|sampler| Case { name: sampler.cli_name(), model: "sd", load: Load::Folder, sampler })
        .collect();
    cases.extend([
        Case { name: "v-dpmpp-2m-karras", model: "sd-v", load: Load::Folder, sampler: SamplerKind::DpmPp2mKarras },
        Case { name: "v-euler", model: "sd-v", load: Load::Folder, sampler: SamplerKind::Euler },
        Case { name: "single-sd1-f32", model: "sd", load: Load::Single(Family::Sd1, DType::F32), sampler: SamplerKind::Ddim },
        Case { name: "single-sd1-f16", model: "sd", load: Load::Single(Family::Sd1, DType::F16), sampler: SamplerKind::Euler },
        Case { name: "single-sd2-f32", model: "sd2", load: Load::Single(Family::Sd2, DType::F32), sampler: SamplerKind::Ddim },
        Case { name: "sdxl-euler-a", model: "sdxl", load: Load::Folder, sampler: SamplerKind::EulerAncestral },
        Case { name: "sdxl-dpmpp-2m", model: "sdxl", load: Load::Folder, sampler: SamplerKind::DpmPp2m },
        Case { name: "single-sdxl-f16", model: "sdxl", load: Load::Single(Family::Sdxl, DType::F16), sampler: SamplerKind::Ddim },
    ]);
    cases
}

fn write_models(root: &Path) {
    let mut v = RandomModel::tiny(42);
    v.scheduler.prediction_type = "v_prediction".into();
    let mut sd2 = RandomModel::tiny(43);
    sd2.text[0].hidden_act = "gelu".into();
    for (name, model) in
        [("sd", RandomModel::tiny(41)), ("sd-v", v), ("sd2", sd2), ("sdxl", RandomModel::tiny_sdxl(44))]
    {
        write_random_model(&root.join(name), &model).unwrap();
    }
}

fn request() -> ImageRequest {
    ImageRequest {
        negative: "blurry".into(),
        steps: STEPS,
        guidance: 4.0,
        width: 32,
        height: 32,
        ..ImageRequest::new("a red heart", 7)
    }
}

fn npy(path: &Path, shape: Vec<usize>, data: Vec<f32>) {
    std::fs::write(path, npy_bytes(&NpyArray { shape, data })).unwrap();
}

fn psnr(a: &image::RgbImage, b: &image::RgbImage) -> f64 {
    let n = a.as_raw().len() as f64;
    let mse: f64 = a.as_raw().iter().zip(b.as_raw()).map(|(x, y)| (*x as f64 - *y as f64).powi(2)).sum::<f64>() / n;
    if mse == 0.0 { f64::INFINITY } else { 10.0 * (255.0f64 * 255.0 / mse).log10() }
}

/// Runs the reference script on every case and copies its images into the fixtures.
fn record(python: &str, root: &Path, files: &[(PathBuf, Option<PathBuf>)], noise: &Path, step_noise: &Path) {
    let r = request();
    let jobs: Vec<_> = cases()
        .iter()
        .zip(files)
        .map(|(case, (folder, single))| {
            json!({
                "folder": folder, "single_file": single, "sdxl": case.model == "sdxl",
                "sampler": case.sampler.a1111_name(), "prompt": r.prompt, "negative": r.negative,
                "steps": r.steps, "guidance": r.guidance, "width": r.width, "height": r.height,
                "latent_shape": [4, 4, 4], "noise": noise, "step_noise": step_noise,
                "out": root.join(format!("{}.png", case.name)),
            })
        })
        .collect();
    let jobs_file = root.join("jobs.json");
    std::fs::write(&jobs_file, serde_json::to_string_pretty(&jobs).unwrap()).unwrap();
    let status = std::process::Command::new(python)
        .arg("tests/reference/diffusers_reference.py")
        .arg(&jobs_file)
        .status()
        .unwrap();
    assert!(status.success(), "the reference script failed");
    std::fs::create_dir_all(FIXTURES).unwrap();
    for case in cases() {
        let name = format!("{}.png", case.name);
        std::fs::copy(root.join(&name), Path::new(FIXTURES).join(&name)).unwrap();
    }
}

#[test]
fn every_sampler_and_single_file_matches_diffusers() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write_models(root);
    let len = 4 * 4 * 4;
    let noise = initial_noise(7, len);
    let step_noise = SeededRng::new(1007).normal_vec(STEPS * len);
    let (noise_file, step_file) = (root.join("noise.npy"), root.join("step_noise.npy"));
    npy(&noise_file, vec![1, 4, 4, 4], noise.clone());
    npy(&step_file, vec![STEPS, 1, 4, 4, 4], step_noise.clone());
    let mut files = Vec::new();
    for case in cases() {
        let folder = root.join(case.model);
        let single = match case.load {
            Load::Folder => None,
            Load::Single(family, dtype) => {
                let file = root.join(format!("{}.safetensors", case.name));
                write_single_file(&folder, family, dtype, &file).unwrap();
                Some(file)
            }
        };
        files.push((folder, single));
    }
    if let Ok(python) = std::env::var("DIFFUSERS_PYTHON") {
        record(&python, root, &files, &noise_file, &step_file);
    }
    let mut report = Vec::new();
    for (case, (folder, single)) in cases().iter().zip(&files) {
        let pipeline = match single {
            None => DiffusionPipeline::load(folder, &Device::Cpu).unwrap(),
            Some(file) => {
                let spec = SingleFileSpec { file: file.clone(), config: Some(folder.clone()), vae: None };
                DiffusionPipeline::load_single_file(&spec, &Device::Cpu).unwrap()
            }
        };
        let r = ImageRequest { sampler: case.sampler, ..request() };
        let inputs = GenerateInputs { noise: Some(noise.clone()), step_noise: Some(step_noise.clone()), ..Default::default() };
        let ours = pipeline.generate_with(&r, inputs, &mut |_| {}, &CancelToken::new()).unwrap().unwrap().image;
        let reference = image::open(Path::new(FIXTURES).join(format!("{}.png", case.name))).unwrap().to_rgb8();
        let db = psnr(&ours, &reference);
        report.push(format!("{}: {db:.1} dB", case.name));
        assert!(db >= 40.0, "{}: {db:.1} dB against diffusers\n{}", case.name, report.join("\n"));
    }
    eprintln!("{}", report.join("\n"));
}
