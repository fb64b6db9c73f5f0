//! SmolLM2-135M-Instruct against llama.cpp on the same GGUF file: token ids
//! of a set of strings, and greedy generations for raw and chat prompts.
//! The fixture comes from `benches/llama_cpp_reference.py` (llama.cpp's own
//! tokenizer and logits); see that script for how it was made.
//! Skipped, with a message, when the model has not been fetched
//! (`scripts/fetch-models.sh`; CI fetches it).
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failed unwrap is a failed test

mod common;

use latent_studio::text::generate::{GenerateSpec, generate, prompt_ids};
use latent_studio::text::gguf_llama::GgufLlama;
use latent_studio::text::model::TextModel;
use latent_studio::text::sampling::{SamplingParams, argmax};
use latent_studio::train::cancel::CancelToken;
use serde_json::Value;

/// A divergence from llama.cpp is accepted only after a step where its top two
/// logits were closer than this (the two builds round differently).
const NEAR_TIE: f64 = 0.3;

fn model() -> Option<GgufLlama> {
    let path = common::shipped_models().join("smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf");
    if !path.is_file() {
        eprintln!("skipped: {} is missing; scripts/fetch-models.sh fetches it", path.display());
        return None;
    }
    Some(GgufLlama::load(&path, &candle_core::Device::Cpu).unwrap())
}

fn fixture() -> Value {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/smollm2_llama_cpp.json"));
    serde_json::from_str(&text.unwrap()).unwrap()
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array().unwrap().iter().map(|i| i.as_u64().unwrap() as u32).collect()
}

#[test]
fn token_ids_match_llama_cpp() {
    let Some(model) = model() else { return };
    for case in fixture()["tokens"].as_array().unwrap() {
        let text = case["text"].as_str().unwrap();
        let ours = model.tokenizer().encode(text, false).unwrap();
        assert_eq!(ours, ids(&case["ids"]), "{text:?}");
        assert_eq!(model.tokenizer().decode(&ours).unwrap(), text, "round trip of {text:?}");
    }
}

#[test]
fn greedy_generations_match_llama_cpp_up_to_near_ties() {
    let Some(mut model) = model() else { return };
    let mut report = Vec::new();
    for case in fixture()["generations"].as_array().unwrap() {
        let prompt = case["prompt"].as_str().unwrap().to_owned();
        let chat = case["chat"].as_bool().unwrap();
        let spec = GenerateSpec {
            prompt: prompt.clone(),
            chat,
            max_new_tokens: 0,
            sampling: SamplingParams::greedy(),
            stop_strings: vec![],
        };
        let prompt_ids = prompt_ids(&model, &spec).unwrap();
        assert_eq!(prompt_ids, ids(&case["prompt_ids"]), "prompt ids of {prompt:?} (chat {chat})");
        let (expected, gaps) = (ids(&case["ids"]), case["top2_gaps"].as_array().unwrap());
        // Fed llama.cpp's own tokens, our argmax must agree at every step
        // except near-ties; free-running, the texts part at the first such step.
        model.reset();
        let mut logits = model.forward(&prompt_ids, 0).unwrap();
        let (mut prefix, mut diverged, mut ties) = (0, false, Vec::new());
        for (step, &want) in expected.iter().enumerate() {
            let got = argmax(&logits);
            if got != want {
                let gap = gaps[step].as_f64().unwrap();
                assert!(
                    gap < NEAR_TIE,
                    "{prompt:?}: step {step} gives {got}, llama.cpp {want}, whose top-2 gap {gap} is no near-tie"
                );
                diverged = true;
                ties.push(format!("step {step} (gap {gap:.3})"));
            } else if !diverged {
                prefix += 1;
            }
            logits = model.forward(&[want], prompt_ids.len() + step).unwrap();
        }
        let n = expected.len();
        report.push(format!(
            "{prompt:?}: free-running {prefix}/{n} agree; fed llama.cpp's tokens, {}/{n} steps agree{}",
            n - ties.len(),
            if ties.is_empty() { String::new() } else { format!(", near-ties at {}", ties.join(", ")) }
        ));
    }
    eprintln!("{}", report.join("\n"));
}

#[test]
fn the_capital_of_france_is_paris() {
    let Some(mut model) = model() else { return };
    let spec = GenerateSpec {
        prompt: "The capital of France is".into(),
        chat: false,
        max_new_tokens: 3,
        sampling: SamplingParams::greedy(),
        stop_strings: vec![],
    };
    let out = generate(&mut model, &spec, &CancelToken::new(), &mut |_, _| {}).unwrap();
    assert!(out.text.starts_with(" Paris"), "{:?}", out.text);
}
