//! An OpenAI-compatible server as a text backend, against the real thing:
//! llama-cpp-python's server (llama.cpp inside) on the shipped SmolLM2 GGUF,
//! started on 127.0.0.1. Greedy text through the backend follows our own
//! engine on the same file token for token, except at near-ties, which are
//! logged with both sides' gaps; plain completions stream with their
//! log-probabilities; cancelling closes the stream and the server goes on
//! serving; `text --backend` prints what the API gave and keeps a remote
//! conversation on its server.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failed unwrap is a failed test

mod common;

use std::collections::HashMap;
use std::process::Command;

use latent_studio::remote::RemoteServer;
use latent_studio::remote::openai::{self, RemoteText};
use latent_studio::spec::text::{Generated, StopReason};
use latent_studio::text::generate::{GenerateSpec, fit_prompt, generate};
use latent_studio::text::gguf_llama::GgufLlama;
use latent_studio::text::model::TextModel;
use latent_studio::text::sampling::SamplingParams;
use latent_studio::train::cancel::CancelToken;

const GGUF: &str = "smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf";

fn spec(prompt: &str, chat: bool, max_new_tokens: usize) -> GenerateSpec {
    GenerateSpec {
        prompt: prompt.into(),
        chat,
        system: String::new(),
        history: Vec::new(),
        max_new_tokens,
        sampling: SamplingParams::greedy(),
        stop_strings: Vec::new(),
    }
}

fn remote(server: &RemoteServer, spec: &GenerateSpec, top_logprobs: usize) -> Generated {
    let request = RemoteText { model: "smollm2".into(), top_logprobs };
    openai::generate(server, &request, spec, &|| false, &mut |_, _| {}).unwrap()
}

/// The server's tokens as our ids: each token's text is the decoding of exactly one id.
fn ids_of(model: &GgufLlama, generated: &Generated) -> (Vec<u32>, Vec<f64>) {
    let codec = model.codec();
    let mut by_text: HashMap<String, Vec<u32>> = HashMap::new();
    for id in 0..49152u32 {
        by_text.entry(codec.decode(&[id]).unwrap()).or_default().push(id);
    }
    let tokens = &generated.served.as_ref().unwrap().tokens;
    let ids = tokens
        .iter()
        .map(|t| match by_text.get(&t.text).map(Vec::as_slice) {
            Some([id]) => *id,
            other => panic!("token {:?} is {other:?} among our ids", t.text),
        })
        .collect();
    let gaps = tokens.iter().map(|t| f64::from(t.top[0].1 - t.top.get(1).map_or(f32::NEG_INFINITY, |a| a.1))).collect();
    (ids, gaps)
}

#[test]
fn greedy_chat_through_the_backend_follows_our_engine_and_completions_stream() {
    let path = common::shipped_models().join(GGUF);
    assert!(path.is_file(), "{} is missing: run scripts/fetch-models.sh", path.display());
    let dir = tempfile::tempdir().unwrap();
    let served = common::servers::llama_server(&path, dir.path());
    let server = RemoteServer::new(&served.url, None).unwrap();
    assert_eq!(openai::list_models(&server).unwrap().len(), 1);
    let mut model = GgufLlama::load(&path, &candle_core::Device::Cpu).unwrap();

    let mut report = Vec::new();
    for prompt in ["Write a short story about a robot who learns to paint.", "What is the capital of France?"] {
        let spec = spec(prompt, true, 48);
        let theirs = remote(&server, &spec, 2);
        let served_info = theirs.served.as_ref().unwrap();
        assert_eq!(theirs.stop, StopReason::MaxTokens, "{prompt}");
        assert_eq!(served_info.tokens.len(), 48, "{prompt}: one log-probability per token");
        let joined: String = served_info.tokens.iter().map(|t| t.text.as_str()).collect();
        assert_eq!(joined, theirs.text, "the tokens make the text");

        let (expected, gaps) = ids_of(&model, &theirs);
        let prompt_ids = fit_prompt(&model, &spec).unwrap().ids;
        if let Some(n) = served_info.prompt_tokens {
            assert_eq!(n, prompt_ids.len(), "{prompt}: the same chat prompt, token for token");
        }
        let followed = common::llama_cpp::follow(&mut model, &prompt_ids, &expected, &gaps, 0.3, prompt);
        let ours = generate(&mut model, &spec, &CancelToken::new(), &mut |_, _| {}).unwrap();
        if followed.ties.is_empty() {
            assert_eq!(ours.text, theirs.text, "{prompt}: no near-tie, so the same text");
        }
        report.push(format!(
            "{prompt:?}: {}/48 agree before any divergence; near-ties: {:?}",
            followed.prefix, followed.ties
        ));
    }
    eprintln!("through llama-cpp-python's server:\n{}", report.join("\n"));

    // A plain completion, streamed with log-probabilities, piece by piece.
    let mut pieces = Vec::new();
    let request = RemoteText { model: "smollm2".into(), top_logprobs: 3 };
    let plain = openai::generate(&server, &request, &spec("The sky is", false, 12), &|| false, &mut |tokens, text| {
        pieces.push((tokens.len(), text.to_owned()));
    })
    .unwrap();
    assert!(pieces.len() >= 6, "streamed in pieces: {pieces:?}");
    assert_eq!(pieces.iter().map(|p| p.1.as_str()).collect::<String>(), plain.text);
    let tokens = &plain.served.as_ref().unwrap().tokens;
    assert_eq!(tokens.len(), 12);
    assert!(tokens.iter().all(|t| t.top.len() == 3 && t.logprob <= 0.0 && t.top[0].1 >= t.top[2].1));
    let ours = generate(&mut model, &spec("The sky is", false, 12), &CancelToken::new(), &mut |_, _| {}).unwrap();
    eprintln!("plain: theirs {:?}, ours {:?}", plain.text, ours.text);
}

#[test]
fn cancel_closes_the_stream_and_the_cli_runs_on_the_backend() {
    let path = common::shipped_models().join(GGUF);
    assert!(path.is_file(), "{} is missing: run scripts/fetch-models.sh", path.display());
    let dir = tempfile::tempdir().unwrap();
    let served = common::servers::llama_server(&path, dir.path());
    let server = RemoteServer::new(&served.url, None).unwrap();

    let request = RemoteText { model: "smollm2".into(), top_logprobs: 0 };
    let seen = std::cell::Cell::new(0);
    let long = spec("1, 2, 3, 4, 5,", false, 1500);
    let cut =
        openai::generate(&server, &request, &long, &|| seen.get() >= 5, &mut |_, _| seen.set(seen.get() + 1)).unwrap();
    assert_eq!(cut.stop, StopReason::Cancelled);
    assert!(cut.served.as_ref().unwrap().completion_tokens < 50, "{cut:?}");
    // The server serves the next request in full.
    let next = remote(&server, &spec("Say hi.", true, 8), 0);
    assert!(!next.text.is_empty() && matches!(next.stop, StopReason::MaxTokens | StopReason::StopToken));

    // `text --backend`: the text the API gives, and the served model in the JSON.
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_latent-studio"))
            .args(["text", "--backend", &served.url, "--temperature", "0", "--top-k", "0", "--top-p", "1"])
            .args(["--min-p", "0", "--repeat-penalty", "1"])
            .args(args)
            .env("LATENT_STUDIO_MODELS", dir.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        out
    };
    let out = run(&["--chat", "--prompt", "What is the capital of France?", "--max-tokens", "16", "--json"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let api = remote(&server, &spec("What is the capital of France?", true, 16), 0);
    assert_eq!(json["text"], api.text.as_str());
    assert_eq!(json["served"]["backend"], served.url.as_str());

    // A conversation started on the backend stays there without --backend.
    let file = dir.path().join("chat.json");
    let file_arg = file.to_str().unwrap();
    run(&["--chat", "--conversation", file_arg, "--prompt", "Name a colour.", "--max-tokens", "8"]);
    let out = Command::new(env!("CARGO_BIN_EXE_latent-studio"))
        .args(["text", "--chat", "--conversation", file_arg, "--prompt", "And a fruit?", "--max-tokens", "8"])
        .env("LATENT_STUDIO_MODELS", dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains(&format!("served by {}", served.url)), "{stderr}");
    let saved = latent_studio::io::conversations::load(&file).unwrap();
    assert_eq!(saved.messages.len(), 4, "two questions, two answers");

    // A server that is gone is named in the error.
    drop(served);
    let err = openai::generate(&server, &request, &spec("Hi", true, 4), &|| false, &mut |_, _| {}).unwrap_err();
    assert!(err.to_string().contains("cannot reach http://127.0.0.1:"), "{err}");
    assert!(err.is_retryable());
}
