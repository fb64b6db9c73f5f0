//! Text generation on a tiny random llama model written as GGUF by the test:
//! loading, streaming, determinism, stop conditions and clear errors for bad
//! files and prompts. (SmolLM2 itself: tests/text_smollm2.rs.)
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failed unwrap is a failed test

mod common;

use std::path::Path;

use latent_studio::text::generate::{GenerateSpec, Generated, StopReason, generate};
use latent_studio::text::gguf_llama::GgufLlama;
use latent_studio::text::model::TextModelError;
use latent_studio::text::sampling::SamplingParams;
use latent_studio::train::cancel::CancelToken;

fn tiny(dir: &Path, context: u32) -> GgufLlama {
    let path = dir.join("tiny.gguf");
    common::write_tiny_llama_gguf(&path, context, "llama");
    GgufLlama::load(&path, &candle_core::Device::Cpu).unwrap()
}

fn spec(prompt: &str, max: usize, sampling: SamplingParams) -> GenerateSpec {
    GenerateSpec {
        prompt: prompt.into(),
        chat: false,
        system: String::new(),
        history: Vec::new(),
        max_new_tokens: max,
        sampling,
        stop_strings: vec![],
    }
}

fn run(model: &mut GgufLlama, spec: &GenerateSpec) -> (Generated, String) {
    let mut streamed = String::new();
    let out = generate(model, spec, &CancelToken::new(), &mut |_, piece| streamed.push_str(piece)).unwrap();
    (out, streamed)
}

#[test]
fn streams_what_it_returns_and_repeats_with_the_seed() {
    let dir = tempfile::tempdir().unwrap();
    let mut model = tiny(dir.path(), 64);
    assert_eq!(model.tokenizer().encode("ab a", false).unwrap().len(), 3, "the merge a+b applies");
    let sampled = |seed| SamplingParams { seed, temperature: 1.0, top_k: 0, min_p: 0.0, ..Default::default() };
    let (a, streamed) = run(&mut model, &spec("ab", 20, sampled(1)));
    assert_eq!(a.text, streamed, "the streamed pieces add up to the text");
    assert_eq!(model.tokenizer().decode(&a.ids).unwrap(), a.text);
    let (b, _) = run(&mut model, &spec("ab", 20, sampled(1)));
    assert_eq!(a.ids, b.ids, "same seed, same tokens");
    let (c, _) = run(&mut model, &spec("ab", 20, sampled(2)));
    assert_ne!(a.ids, c.ids, "another seed, other tokens");
    let (g1, _) = run(&mut model, &spec("ab", 10, SamplingParams::greedy()));
    let (g2, _) = run(&mut model, &spec("ab", 10, SamplingParams { seed: 99, ..SamplingParams::greedy() }));
    assert_eq!(g1.ids, g2.ids, "temperature 0 ignores the seed");
}

#[test]
fn stops_at_the_budget_the_context_a_stop_string_and_a_cancel() {
    let dir = tempfile::tempdir().unwrap();
    let mut model = tiny(dir.path(), 12);
    let greedy = SamplingParams::greedy();
    let (out, _) = run(&mut model, &spec("ab", 3, greedy.clone()));
    assert_eq!((out.ids.len(), out.stop), (3, StopReason::MaxTokens));
    let (out, _) = run(&mut model, &spec("ab", 100, greedy.clone()));
    assert!(matches!(out.stop, StopReason::ContextFull | StopReason::StopToken), "{:?}", out.stop);
    assert!(out.prompt_ids.len() + out.ids.len() <= 12);
    // Stop at the second character the model produces, whatever it is.
    let (free, _) = run(&mut model, &spec("ab", 6, greedy.clone()));
    let stop: String = free.text.chars().skip(1).take(1).collect();
    let mut with_stop = spec("ab", 6, greedy.clone());
    with_stop.stop_strings = vec![stop.clone()];
    let (out, _) = run(&mut model, &with_stop);
    assert_eq!(out.stop, StopReason::StopString);
    assert!(!out.text.contains(&stop) && free.text.starts_with(&out.text), "{:?} cut at {stop:?}", out.text);
    let cancel = CancelToken::new();
    cancel.cancel();
    let out = generate(&mut model, &spec("ab", 5, greedy), &cancel, &mut |_, _| {}).unwrap();
    assert_eq!((out.ids.len(), out.stop), (0, StopReason::Cancelled));
}

#[test]
fn a_prompt_longer_than_the_context_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut model = tiny(dir.path(), 8);
    let err = generate(
        &mut model,
        &spec("abababababababababab", 4, SamplingParams::greedy()),
        &CancelToken::new(),
        &mut |_, _| {},
    )
    .unwrap_err();
    assert!(matches!(err, TextModelError::PromptTooLong { tokens: 10, context: 8 }), "{err}");
    assert!(err.to_string().contains("context holds 8"), "{err}");
}

#[test]
fn bad_files_name_the_file_and_the_cause() {
    let dir = tempfile::tempdir().unwrap();
    let load = |p: &Path| GgufLlama::load(p, &candle_core::Device::Cpu).err().unwrap().to_string();

    let mamba = dir.path().join("mamba.gguf");
    common::write_tiny_llama_gguf(&mamba, 16, "mamba");
    let msg = load(&mamba);
    assert!(msg.contains("mamba.gguf") && msg.contains("architecture \"mamba\" is not supported"), "{msg}");

    let full = dir.path().join("full.gguf");
    common::write_tiny_llama_gguf(&full, 16, "llama");
    let bytes = std::fs::read(&full).unwrap();
    let cut = dir.path().join("cut.gguf");
    std::fs::write(&cut, &bytes[..bytes.len() - 1000]).unwrap();
    let msg = load(&cut);
    assert!(msg.contains("cut.gguf") && msg.contains("truncated"), "{msg}");
    let header_only = dir.path().join("header.gguf");
    std::fs::write(&header_only, &bytes[..40]).unwrap();
    let msg = load(&header_only);
    assert!(msg.contains("header.gguf") && msg.contains("not a readable GGUF file"), "{msg}");

    let text = dir.path().join("notes.gguf");
    std::fs::write(&text, "not a model").unwrap();
    assert!(load(&text).contains("not a readable GGUF file"));
    assert!(load(&dir.path().join("missing.gguf")).contains("missing.gguf"));
}
