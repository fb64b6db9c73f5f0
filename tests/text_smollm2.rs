//! SmolLM2-135M-Instruct against llama.cpp on the same GGUF file: token ids
//! of a set of strings, and greedy generations for raw and chat prompts, for
//! the shipped Q4_1 file and for Q4_K_M and Q5_K_M files made from it by
//! llama.cpp's quantizer, and for the Q4_1 file with both KV caches in f16
//! (llama.cpp's default, our `--kv-cache f16`). The fixtures come from `benches/llama_cpp_reference.py`
//! (llama.cpp's own tokenizer and logits); see that script for how they were
//! made, and `benches/make_kquant_files.py` for the K-quant files.
//! Skipped, with a message, when a file is missing (`scripts/fetch-models.sh`
//! fetches the Q4_1 file and makes the K-quant ones; CI runs it).
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failed unwrap is a failed test

mod common;

use latent_studio::text::generate::{GenerateSpec, generate, prompt_ids};
use latent_studio::text::gguf_llama::{GgufLlama, LoadOptions};
use latent_studio::text::llama::KvPrecision;
use latent_studio::text::sampling::SamplingParams;
use latent_studio::train::cancel::CancelToken;
use serde_json::Value;

/// A divergence from llama.cpp is accepted only at a step that one side sees
/// as a near-tie: llama.cpp's top two logits, or ours for the two tokens the
/// sides picked, closer than this (the two builds round differently). On the
/// Q4_1 file llama.cpp runs one kernel per type whatever the batch, and the
/// two builds differ by rounding alone. On K-quant files llama.cpp itself
/// takes other paths for a prompt than for one token (repacked Q4_K, its
/// tinyBLAS GEMM for Q5_0 and Q8_0): evaluating the same chat prompt in one
/// batch or token by token moves its own logits by up to 0.82 (Q4_K_M) and
/// 1.07 (Q5_K_M); we allow half a logit there. (Where llama.cpp's own gap is
/// wide, ours is narrow: at step 9 of the Q4_1 chat about France llama.cpp
/// sees 0.80 between the two picks and we see 0.02, and which way it falls
/// turns on the order in which attention sums its terms.) With both KV caches
/// in f16, llama.cpp also rounds the query and the attention weights to f16
/// (its f16 matrix products), which we keep in f32.
const NEAR_TIE: [f64; 4] = [0.3, 0.5, 0.5, 0.3];

/// The files, the fixture recorded from each, and the KV cache both sides keep.
const FILES: [(&str, &str, KvPrecision); 4] = [
    ("SmolLM2-135M-Instruct.Q4_1.gguf", "smollm2_llama_cpp.json", KvPrecision::F32),
    ("SmolLM2-135M-Instruct.Q4_K_M.gguf", "smollm2_q4_k_m_llama_cpp.json", KvPrecision::F32),
    ("SmolLM2-135M-Instruct.Q5_K_M.gguf", "smollm2_q5_k_m_llama_cpp.json", KvPrecision::F32),
    // llama.cpp's default cache.
    ("SmolLM2-135M-Instruct.Q4_1.gguf", "smollm2_f16_kv_llama_cpp.json", KvPrecision::F16),
];

fn load(file: &str) -> Option<GgufLlama> {
    load_with(file, KvPrecision::F32)
}

fn load_with(file: &str, kv_cache: KvPrecision) -> Option<GgufLlama> {
    let path = common::shipped_models().join("smollm2-135m-instruct").join(file);
    if !path.is_file() {
        eprintln!("skipped: {} is missing; scripts/fetch-models.sh fetches or makes it", path.display());
        return None;
    }
    let options = LoadOptions { kv_cache, ..Default::default() };
    let model = GgufLlama::load_with(&path, &candle_core::Device::Cpu, options).unwrap();
    assert!(model.engine_note().starts_with("native"), "{file}: {}", model.engine_note());
    Some(model)
}

fn model() -> Option<GgufLlama> {
    load(FILES[0].0)
}

fn fixture(name: &str) -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name);
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array().unwrap().iter().map(|i| i.as_u64().unwrap() as u32).collect()
}

#[test]
fn token_ids_match_llama_cpp() {
    let Some(model) = model() else { return };
    for case in fixture(FILES[0].1)["tokens"].as_array().unwrap() {
        let text = case["text"].as_str().unwrap();
        let ours = model.tokenizer().encode(text, false).unwrap();
        assert_eq!(ours, ids(&case["ids"]), "{text:?}");
        assert_eq!(model.tokenizer().decode(&ours).unwrap(), text, "round trip of {text:?}");
    }
}

#[test]
fn greedy_generations_match_llama_cpp_up_to_near_ties() {
    let mut report = Vec::new();
    for ((file, name, kv), near_tie) in FILES.into_iter().zip(NEAR_TIE) {
        let Some(mut model) = load_with(file, kv) else { continue };
        report.push(format!("{file}, {} KV cache:", kv.name()));
        compare_generations(&mut model, &fixture(name), near_tie, &mut report);
    }
    eprintln!("{}", report.join("\n"));
}

fn compare_generations(model: &mut GgufLlama, fixture: &Value, near_tie: f64, report: &mut Vec<String>) {
    for case in fixture["generations"].as_array().unwrap() {
        let prompt = case["prompt"].as_str().unwrap().to_owned();
        let chat = case["chat"].as_bool().unwrap();
        let spec = GenerateSpec {
            prompt: prompt.clone(),
            chat,
            system: String::new(),
            history: Vec::new(),
            max_new_tokens: 0,
            sampling: SamplingParams::greedy(),
            stop_strings: vec![],
        };
        let prompt_ids = prompt_ids(model, &spec).unwrap();
        assert_eq!(prompt_ids, ids(&case["prompt_ids"]), "prompt ids of {prompt:?} (chat {chat})");
        let expected = ids(&case["ids"]);
        let gaps: Vec<f64> = case["top2_gaps"].as_array().unwrap().iter().map(|g| g.as_f64().unwrap()).collect();
        let what = format!("{prompt:?}");
        let common::llama_cpp::Followed { prefix, ties } =
            common::llama_cpp::follow(model, &prompt_ids, &expected, &gaps, near_tie, &what);
        let n = expected.len();
        report.push(format!(
            "{prompt:?}: free-running {prefix}/{n} agree; fed llama.cpp's tokens, {}/{n} steps agree{}",
            n - ties.len(),
            if ties.is_empty() { String::new() } else { format!(", near-ties at {}", ties.join(", ")) }
        ));
    }
}

#[test]
fn the_capital_of_france_is_paris() {
    let Some(mut model) = model() else { return };
    let spec = GenerateSpec {
        prompt: "The capital of France is".into(),
        chat: false,
        system: String::new(),
        history: Vec::new(),
        max_new_tokens: 3,
        sampling: SamplingParams::greedy(),
        stop_strings: vec![],
    };
    let out = generate(&mut model, &spec, &CancelToken::new(), &mut |_, _| {}).unwrap();
    assert!(out.text.starts_with(" Paris"), "{:?}", out.text);
}
