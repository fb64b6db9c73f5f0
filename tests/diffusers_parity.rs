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

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};
use latent_studio::diffusion::DiffusionNets;
use latent_studio::diffusion::checkpoint::SingleFileSpec;
use latent_studio::diffusion::checkpoint::family::Family;
use latent_studio::diffusion::checkpoint::write::write_single_file;
use latent_studio::diffusion::lora::active::LoraRequest;
use latent_studio::diffusion::lora::random::{LoraLayout, RandomLora, write_random_lora};
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
    /// A random LoRA of this layout (with LoCon convolutions if `.1`) at weight `.2`.
    lora: Option<(LoraLayout, bool, f64)>,
    /// A random two-vector textual-inversion embedding named "sparkle" (A1111's file layout).
    embedding: bool,
}

const fn case(name: &'static str, model: &'static str, load: Load, sampler: SamplerKind) -> Case {
    Case { name, model, load, sampler, lora: None, embedding: false }
}

fn cases() -> Vec<Case> {
    let mut cases: Vec<Case> =
        SamplerKind::ALL.into_iter().map(|sampler| case(sampler.cli_name(), "sd", Load::Folder, sampler)).collect();
    let (sd1, sd2, sdxl) = (Family::Sd1, Family::Sd2, Family::Sdxl);
    cases.extend([
        case("v-dpmpp-2m-karras", "sd-v", Load::Folder, SamplerKind::DpmPp2mKarras),
        case("v-euler", "sd-v", Load::Folder, SamplerKind::Euler),
        case("single-sd1-f32", "sd", Load::Single(sd1, DType::F32), SamplerKind::Ddim),
        case("single-sd1-f16", "sd", Load::Single(sd1, DType::F16), SamplerKind::Euler),
        case("single-sd2-f32", "sd2", Load::Single(sd2, DType::F32), SamplerKind::Ddim),
        case("sdxl-euler-a", "sdxl", Load::Folder, SamplerKind::EulerAncestral),
        case("sdxl-dpmpp-2m", "sdxl", Load::Folder, SamplerKind::DpmPp2m),
        case("single-sdxl-f16", "sdxl", Load::Single(sdxl, DType::F16), SamplerKind::Ddim),
        Case {
            lora: Some((LoraLayout::Kohya, true, 0.5)),
            ..case("lora-kohya-0.5", "sd", Load::Folder, SamplerKind::Ddim)
        },
        Case {
            lora: Some((LoraLayout::Kohya, true, 1.0)),
            ..case("lora-kohya-1.0", "sd", Load::Folder, SamplerKind::Ddim)
        },
        Case {
            lora: Some((LoraLayout::Peft, false, 0.7)),
            ..case("lora-peft-0.7", "sd", Load::Folder, SamplerKind::Ddim)
        },
        Case {
            lora: Some((LoraLayout::Peft, false, 1.0)),
            ..case("lora-peft-1.0", "sd", Load::Folder, SamplerKind::Euler)
        },
        Case {
            lora: Some((LoraLayout::Kohya, false, 0.8)),
            ..case("lora-single-sdxl-kohya", "sdxl", Load::Single(sdxl, DType::F32), SamplerKind::Ddim)
        },
        Case { embedding: true, ..case("embedding-sd1", "sd", Load::Folder, SamplerKind::Ddim) },
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
/// Per case: the model folder, the single file (if any), the LoRA file (if any)
/// and the embeddings folder (if any).
type CaseFiles = (PathBuf, Option<PathBuf>, Option<PathBuf>, Option<PathBuf>);

/// The prompt a case generates: with the embedding's name where it has one.
fn prompt(case: &Case) -> &'static str {
    if case.embedding { "a sparkle heart" } else { "a red heart" }
}

fn record(python: &str, root: &Path, files: &[CaseFiles], noise: &Path, step_noise: &Path) {
    let r = request();
    let jobs: Vec<_> = cases()
        .iter()
        .zip(files)
        .map(|(case, (folder, single, lora, embeddings))| {
            json!({
                "folder": folder, "single_file": single, "sdxl": case.model == "sdxl",
                "lora": lora, "lora_scale": case.lora.map(|l| l.2),
                "embedding": embeddings.as_ref().map(|d| d.join("sparkle.safetensors")), "embedding_token": "sparkle",
                "sampler": case.sampler.a1111_name(), "prompt": prompt(case), "negative": r.negative,
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
        let lora = case.lora.map(|(layout, convolutions, _)| {
            let nets = DiffusionNets::load(&folder, &Device::Cpu).unwrap();
            let file = root.join(format!("{}-lora.safetensors", case.name));
            let spec = RandomLora { layout, rank: 4, alpha: 2.0, convolutions, scale: 0.2, seed: 51 };
            write_random_lora(&nets, &spec, &file).unwrap();
            file
        });
        let embeddings = case.embedding.then(|| {
            let dir = root.join(format!("{}-embeddings", case.name));
            std::fs::create_dir_all(&dir).unwrap();
            let values: Vec<f32> = SeededRng::new(52).normal_vec(2 * 32).iter().map(|v| 0.5 * v).collect();
            let vectors = Tensor::from_vec(values, (2, 32), &Device::Cpu).unwrap();
            candle_core::safetensors::save(
                &HashMap::from([("emb_params".to_owned(), vectors)]),
                dir.join("sparkle.safetensors"),
            )
            .unwrap();
            dir
        });
        files.push((folder, single, lora, embeddings));
    }
    if let Ok(python) = std::env::var("DIFFUSERS_PYTHON") {
        record(&python, root, &files, &noise_file, &step_file);
    }
    let mut report = Vec::new();
    for (case, (folder, single, lora, embeddings)) in cases().iter().zip(&files) {
        let pipeline = match single {
            None => DiffusionPipeline::load(folder, &Device::Cpu).unwrap(),
            Some(file) => {
                let spec = SingleFileSpec {
                    file: file.clone(),
                    config: Some(folder.clone()),
                    vae: None,
                    ..Default::default()
                };
                DiffusionPipeline::load_single_file(&spec, &Device::Cpu).unwrap()
            }
        };
        let r = ImageRequest { sampler: case.sampler, prompt: prompt(case).into(), ..request() };
        let loras = match (lora, case.lora) {
            (Some(path), Some((_, _, w))) => vec![LoraRequest { path: path.clone(), text_weight: w, unet_weight: w }],
            _ => vec![],
        };
        let inputs = GenerateInputs {
            noise: Some(noise.clone()),
            step_noise: Some(step_noise.clone()),
            loras,
            embedding_dirs: embeddings.iter().cloned().collect(),
            ..Default::default()
        };
        let ours = pipeline.generate_with(&r, inputs, &mut |_| {}, &CancelToken::new()).unwrap().unwrap().image;
        if case.embedding {
            let without = GenerateInputs { noise: Some(noise.clone()), ..Default::default() };
            let plain = pipeline.generate_with(&r, without, &mut |_| {}, &CancelToken::new()).unwrap().unwrap().image;
            assert_ne!(plain, ours, "the embedding changed nothing");
        }
        let reference = image::open(Path::new(FIXTURES).join(format!("{}.png", case.name))).unwrap().to_rgb8();
        let db = psnr(&ours, &reference);
        report.push(format!("{}: {db:.1} dB", case.name));
        assert!(db >= 40.0, "{}: {db:.1} dB against diffusers\n{}", case.name, report.join("\n"));
    }
    eprintln!("{}", report.join("\n"));
    // The independent check of our single files: diffusers' from_single_file
    // on them gives what diffusers gives on the folders they were written from.
    let fixture = |name: &str| image::open(Path::new(FIXTURES).join(format!("{name}.png"))).unwrap().to_rgb8();
    for (single, folder, floor) in [("single-sd1-f32", "ddim", f64::INFINITY), ("single-sd1-f16", "euler", 40.0)] {
        let db = psnr(&fixture(single), &fixture(folder));
        assert!(db >= floor, "diffusers: {single} against {folder}: {db:.1} dB");
    }
}
