//! Prompts as AUTOMATIC1111 reads them, against a Python reference of its
//! algorithm (tests/reference/a1111_prompt.py, on transformers' tokenizer and
//! text model): emphasis weights, BREAK, long prompts split into chunks at
//! commas, unbalanced brackets, and the emphasised text states themselves.
//! The reference's answers are recorded in tests/fixtures/a1111_prompts.json;
//! with `DIFFUSERS_PYTHON` set the test runs the script and records them anew.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failed unwrap is a failed test

use std::path::Path;

use candle_core::Device;
use latent_studio::diffusion::DiffusionNets;
use latent_studio::diffusion::prompt::chunks::{NoEmbeddings, chunk_prompt};
use latent_studio::diffusion::prompt::emphasis;
use latent_studio::diffusion::random_weights::{RandomModel, write_random_model};
use latent_studio::train::rng::SeededRng;
use serde_json::Value;

/// A tiny random model whose final text norm has a bias, as trained CLIPs
/// do: with the initial zero bias every state has mean zero, and emphasis's
/// mean-restoring rescale would divide zero by zero.
fn write_model(dir: &Path, seed: u64) {
    write_random_model(dir, &RandomModel::tiny(seed)).unwrap();
    let file = dir.join("text_encoder/model.safetensors");
    let mut tensors = candle_core::safetensors::load(&file, &Device::Cpu).unwrap();
    let name = "text_model.final_layer_norm.bias";
    let n = tensors[name].elem_count();
    let bias: Vec<f32> = SeededRng::new(seed).normal_vec(n).iter().map(|v| 0.5 * v).collect();
    tensors.insert(name.into(), candle_core::Tensor::from_vec(bias, n, &Device::Cpu).unwrap());
    candle_core::safetensors::save(&tensors, &file).unwrap();
}

const FIXTURE: &str = "tests/fixtures/a1111_prompts.json";

const PROMPTS: &[&str] = &[
    "a red heart",
    "a (red) heart",
    "a ((red)) [[heart]]",
    "(a red heart:1.3), (blue sky:0.6)",
    "a (((house:1.3)) [on] a (hill:0.5), sun, (((sky))).",
    "\\(literal\\] text \\\\ here",
    "(unbalanced [square",
    "closers) without] openers :2)",
    "a red heart BREAK a blue sky",
    "(a red heart BREAK a dog)",
    "a photo of a cat, a dog in the snow, green apple on a table, city street at night, portrait of an old man, astronaut",
    "astronaut riding a horse astronaut riding a horse astronaut riding a horse astronaut riding a horse (smiling face:1.2)",
    "(cat:-0.5) (dog:+1.5) (snow : 0.9 )",
    "",
    "BREAK",
    "café ü 猫, (émoji:1.1)",
];

fn record(python: &str, folder: &Path, dir: &Path) {
    let prompts = dir.join("prompts.json");
    std::fs::write(&prompts, serde_json::to_string(PROMPTS).unwrap()).unwrap();
    let status = std::process::Command::new(python)
        .args(["tests/reference/a1111_prompt.py".as_ref(), folder.as_os_str(), prompts.as_os_str(), FIXTURE.as_ref()])
        .status()
        .unwrap();
    assert!(status.success(), "the reference script failed");
}

#[test]
fn prompts_parse_chunk_and_weigh_as_a1111_does() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("sd");
    write_model(&folder, 41);
    if let Ok(python) = std::env::var("DIFFUSERS_PYTHON") {
        record(&python, &folder, dir.path());
    }
    let expected: Vec<Value> = serde_json::from_str(&std::fs::read_to_string(FIXTURE).unwrap()).unwrap();
    assert_eq!(expected.len(), PROMPTS.len(), "the fixture is stale: record it again");
    let nets = DiffusionNets::load(&folder, &Device::Cpu).unwrap();
    let tokenizer = &nets.towers[0].tokenizer;
    for (prompt, want) in PROMPTS.iter().zip(&expected) {
        assert_eq!(want["prompt"], *prompt);
        let pieces = emphasis::parse(prompt);
        let want_pieces: Vec<(String, f64)> = serde_json::from_value(want["pieces"].clone()).unwrap();
        assert_eq!(pieces.len(), want_pieces.len(), "{prompt:?}: {pieces:?} vs {want_pieces:?}");
        for (got, w) in pieces.iter().zip(&want_pieces) {
            assert_eq!(got.0, w.0, "{prompt:?}");
            assert!((got.1 - w.1).abs() < 1e-12, "{prompt:?}: {got:?} vs {w:?}");
        }
        let (chunks, _) = chunk_prompt(&pieces, tokenizer, &NoEmbeddings);
        let want_chunks = want["chunks"].as_array().unwrap();
        assert_eq!(chunks.len(), want_chunks.len(), "{prompt:?}: chunk count");
        for (got, w) in chunks.iter().zip(want_chunks) {
            let tokens: Vec<u32> = serde_json::from_value(w["tokens"].clone()).unwrap();
            let multipliers: Vec<f64> = serde_json::from_value(w["multipliers"].clone()).unwrap();
            assert_eq!(got.tokens, tokens, "{prompt:?}");
            for (a, b) in got.multipliers.iter().zip(&multipliers) {
                assert!((a - b).abs() < 1e-12, "{prompt:?}: multipliers {:?} vs {multipliers:?}", got.multipliers);
            }
        }
        let (states, _) = nets.encode_prompts(&[prompt]).unwrap();
        let ours: Vec<f32> = states.flatten_all().unwrap().to_vec1().unwrap();
        let theirs: Vec<f64> = serde_json::from_value(want["states"].clone()).unwrap();
        assert_eq!(ours.len(), theirs.len(), "{prompt:?}: state count");
        let worst = ours.iter().zip(&theirs).map(|(a, b)| (*a as f64 - b).abs()).fold(0.0, f64::max);
        assert!(worst < 1e-4, "{prompt:?}: states differ by up to {worst}");
    }
}

#[test]
fn prompts_of_different_lengths_share_a_batch() {
    let dir = tempfile::tempdir().unwrap();
    write_model(dir.path(), 45);
    let nets = DiffusionNets::load(dir.path(), &Device::Cpu).unwrap();
    let long = "a red heart ".repeat(12);
    let (states, _) = nets.encode_prompts(&["", &long]).unwrap();
    let (alone, _) = nets.encode_prompts(&[&long]).unwrap();
    let (empty, _) = nets.encode_prompts(&[""]).unwrap();
    assert_eq!(states.dims()[1..], alone.dims()[1..]);
    let window = empty.dim(1).unwrap();
    // The empty prompt is padded with copies of itself.
    let first = states.get(0).unwrap();
    for k in 0..states.dim(1).unwrap() / window {
        let part = first.narrow(0, k * window, window).unwrap();
        let diff =
            (part - empty.get(0).unwrap()).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        assert_eq!(diff, 0.0);
    }
}
