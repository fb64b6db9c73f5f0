//! `latent-studio serve` over the OpenAI protocol: driven by the official
//! `openai` Python client (models, streamed and whole chats, stop strings,
//! completions, errors, keys) with the same greedy text the engine gives
//! in-process; by the studio's own remote client (one studio using
//! another); and abused (oversized bodies, absurd parameters, a hundred
//! idle connections, a slow head, a full queue, a client that stops
//! reading) while it keeps serving others within bounded memory.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failed unwrap is a failed test

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use latent_studio::hub::config::Token;
use latent_studio::remote::RemoteServer;
use latent_studio::remote::openai::{self, RemoteText};
use latent_studio::serve::{Limits, ServeOptions, Server};
use latent_studio::text::generate::{GenerateSpec, generate};
use latent_studio::text::gguf_llama::GgufLlama;
use latent_studio::text::sampling::SamplingParams;
use latent_studio::train::cancel::CancelToken;

const MODEL: &str = "smollm2-135m-instruct";
const QUESTION: &str = "What is the capital of France?";

fn chat(prompt: &str, max_new_tokens: usize) -> GenerateSpec {
    GenerateSpec {
        prompt: prompt.into(),
        chat: true,
        system: String::new(),
        history: Vec::new(),
        max_new_tokens,
        sampling: SamplingParams::greedy(),
        stop_strings: Vec::new(),
    }
}

/// Our greedy answer in-process, the reference for everything served.
fn in_process(spec: &GenerateSpec) -> String {
    let path = common::shipped_models().join(MODEL).join("SmolLM2-135M-Instruct.Q4_1.gguf");
    let mut model = GgufLlama::load(&path, &candle_core::Device::Cpu).unwrap();
    generate(&mut model, spec, &CancelToken::new(), &mut |_, _| {}).unwrap().text
}

#[test]
fn the_openai_client_gets_the_engines_own_greedy_text() {
    let server = common::servers::ServeProcess::start(&["--api-key", "sekret"]);
    let reference = in_process(&chat(QUESTION, 24));
    // A stop string from the middle of the answer: its third word.
    let stop = reference.split_whitespace().nth(2).expect("a few words").to_owned();
    let out = Command::new(common::servers::llama_venv_python())
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/openai_client.py"))
        .args([&format!("{}/v1", server.1), "sekret", MODEL, &stop])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let got: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let models: Vec<&str> = got["models"].as_array().unwrap().iter().map(|m| m.as_str().unwrap()).collect();
    assert!(models.contains(&MODEL), "{models:?}");

    let streamed: String = got["stream"]["pieces"].as_array().unwrap().iter().map(|p| p.as_str().unwrap()).collect();
    assert_eq!(streamed, reference, "streamed through the openai client");
    assert!(got["stream"]["pieces"].as_array().unwrap().len() > 3, "in pieces");
    assert_eq!(got["whole"]["text"], reference.as_str());
    let finish = if got["whole"]["usage"][1] == 24 { "length" } else { "stop" };
    assert_eq!((got["stream"]["finish"].as_str(), got["whole"]["finish"].as_str()), (Some(finish), Some(finish)));

    let cut = reference.find(&stop).unwrap();
    assert_eq!(got["stop"]["text"], &reference[..cut]);
    assert_eq!(got["stop"]["finish"], "stop");
    let plain = GenerateSpec { prompt: "The sky is".into(), chat: false, ..chat("", 8) };
    assert_eq!(got["plain"], in_process(&plain).as_str());
    assert_eq!(got["missing"], serde_json::json!([404, "model_not_found"]));
    // Log-probabilities: greedy, so each token is its position's best, and they spell the answer.
    let scored = got["logprobs"].as_array().unwrap();
    assert_eq!(scored.len(), 6);
    for entry in scored {
        let (token, logprob, top) = (&entry[0], entry[1].as_f64().unwrap(), entry[2].as_array().unwrap());
        assert_eq!((top.len(), &top[0][0]), (2, token), "{entry}");
        assert!(logprob <= 0.0 && logprob == top[0][1].as_f64().unwrap() && top[1][1].as_f64().unwrap() <= logprob);
    }
    let spelled: String = scored.iter().map(|e| e[0].as_str().unwrap()).collect();
    assert!(reference.starts_with(&spelled), "{spelled:?} begins {reference:?}");
    assert_eq!(got["wrong_key"], 401);

    // One studio using another: the remote client against serve.
    let remote = RemoteServer::new(&server.1, Token::parse("sekret")).unwrap();
    let kinds = latent_studio::remote::detect::detect(&remote).unwrap();
    assert!(kinds.contains(&latent_studio::spec::backend::BackendKind::OpenAi), "{kinds:?}");
    let request = RemoteText { model: MODEL.into(), top_logprobs: 2 };
    let served = openai::generate(&remote, &request, &chat(QUESTION, 24), &|| false, &mut |_, _| {}).unwrap();
    assert_eq!(served.text, reference);
    let tokens = &served.served.as_ref().unwrap().tokens;
    assert_eq!(tokens.len(), 24, "one log-probability per token, streamed");
    assert_eq!(tokens.iter().map(|t| t.text.as_str()).collect::<String>(), reference);
    // A plain completion's log-probabilities, in that endpoint's list shape.
    let request = RemoteText { model: MODEL.into(), top_logprobs: 3 };
    let plain = GenerateSpec { prompt: "The sky is".into(), chat: false, ..chat("", 8) };
    let continued = openai::generate(&remote, &request, &plain, &|| false, &mut |_, _| {}).unwrap();
    let tokens = &continued.served.as_ref().unwrap().tokens;
    assert_eq!(tokens.len(), 8);
    assert!(tokens.iter().all(|t| t.top.len() == 3 && t.top[0].0 == t.text && t.top[0].1 == t.logprob), "{tokens:?}");
    let usage = served.served.unwrap();
    let whole_usage = &got["whole"]["usage"];
    assert_eq!(usage.prompt_tokens, whole_usage[0].as_u64().map(|n| n as usize), "usage streamed on request");
    assert_eq!(Some(usage.completion_tokens), whole_usage[1].as_u64().map(|n| n as usize));
}

/// An in-process server with `limits` on a free loopback port.
fn start(limits: Limits, key: Option<&str>) -> String {
    let options = ServeOptions {
        host: "127.0.0.1".into(),
        port: 0,
        api_key: key.and_then(Token::parse),
        models_dir: common::shipped_models(),
        limits,
    };
    let server = Server::bind(options).unwrap();
    let url = format!("http://{}", server.local_addr().unwrap());
    std::thread::spawn(move || server.run());
    url
}

/// Sends raw bytes and reads the whole answer (the server closes or the read times out).
fn raw(url: &str, bytes: &[u8]) -> String {
    let mut stream = TcpStream::connect(url.trim_start_matches("http://")).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let _ = stream.write_all(bytes);
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

fn post(path: &str, body: &str) -> Vec<u8> {
    format!("POST {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}", body.len())
        .into_bytes()
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn abuse_leaves_the_server_serving_others_within_bounded_memory() {
    let server = common::servers::ServeProcess::start(&["--queue", "1", "--max-tokens", "256", "--job-seconds", "4"]);
    let url = server.1.clone();
    let ok_chat = |max_tokens: usize| {
        let body = format!(
            r#"{{"model":"{MODEL}","messages":[{{"role":"user","content":"Hi"}}],"max_tokens":{max_tokens},"temperature":0}}"#
        );
        raw(&url, &post("/v1/chat/completions", &body))
    };
    assert!(ok_chat(4).starts_with("HTTP/1.1 200"), "a plain request works");
    let before = rss_kib(server.0.id());

    // An oversized body is refused from its Content-Length, unread.
    let huge = format!("POST /v1/chat/completions HTTP/1.1\r\nContent-Length: {}\r\n\r\n", 1u64 << 40);
    assert!(raw(&url, huge.as_bytes()).starts_with("HTTP/1.1 413"));
    // Absurd parameters are refused with a message naming the limit.
    let answer = ok_chat(10_000);
    assert!(answer.starts_with("HTTP/1.1 400") && answer.contains("max_tokens must be between 1 and 256"), "{answer}");
    let answer =
        raw(&url, &post("/v1/chat/completions", r#"{"model":"smollm2-135m-instruct","messages":[],"temperature":-1}"#));
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(
        raw(&url, b"POST /v1/completions HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n").starts_with("HTTP/1.1 411")
    );
    assert!(raw(&url, &post("/v1/chat/completions", "{not json")).starts_with("HTTP/1.1 400"));

    // A hundred idle connections and one that sends its head a byte at a time.
    let idle: Vec<TcpStream> =
        (0..100).map(|_| TcpStream::connect(url.trim_start_matches("http://")).unwrap()).collect();
    let slow = std::thread::spawn({
        let url = url.clone();
        move || {
            let mut stream = TcpStream::connect(url.trim_start_matches("http://")).unwrap();
            let start = Instant::now();
            for byte in b"GET /v1/models HTTP/1.1\r\nHost: x\r\n" {
                if stream.write_all(&[*byte]).is_err() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(400));
            }
            let mut answer = String::new();
            let _ = stream.read_to_string(&mut answer);
            (answer, start.elapsed())
        }
    });
    let start = Instant::now();
    let models = raw(&url, b"GET /v1/models HTTP/1.1\r\nConnection: close\r\n\r\n");
    assert!(models.starts_with("HTTP/1.1 200") && models.contains(MODEL));
    assert!(ok_chat(4).starts_with("HTTP/1.1 200"), "served beside 101 open connections");
    eprintln!("answered beside 101 connections in {:?}", start.elapsed());
    let (answer, took) = slow.join().unwrap();
    assert!(answer.starts_with("HTTP/1.1 408"), "the slow head is cut off: {answer:?} after {took:?}");
    drop(idle);

    // A client that asks for a long stream and never reads: its job stops at
    // the time limit, and the next client is served.
    let mut deaf = TcpStream::connect(url.trim_start_matches("http://")).unwrap();
    let body = format!(r#"{{"model":"{MODEL}","prompt":"1, 2, 3,","max_tokens":256,"stream":true,"temperature":0}}"#);
    deaf.write_all(&post("/v1/completions", &body)).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let start = Instant::now();
    assert!(ok_chat(4).starts_with("HTTP/1.1 200"));
    eprintln!("served after a client that stopped reading, in {:?}", start.elapsed());

    // A full queue: one running, one waiting, the rest answered 429 at once.
    let long = format!(r#"{{"model":"{MODEL}","prompt":"1, 2, 3,","max_tokens":200,"temperature":0}}"#);
    let answers: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|i| {
                let (url, long) = (&url, &long);
                s.spawn(move || {
                    std::thread::sleep(Duration::from_millis(100 * i));
                    raw(url, &post("/v1/completions", long))
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let statuses: Vec<&str> = answers.iter().map(|a| a.get(9..12).unwrap_or("")).collect();
    assert!(statuses.contains(&"429") && statuses.contains(&"200"), "{statuses:?}");
    let busy = answers.iter().find(|a| a.starts_with("HTTP/1.1 429")).unwrap();
    assert!(busy.contains("Retry-After: 1") && busy.contains("queue is full"), "{busy}");

    let grown = rss_kib(server.0.id()).saturating_sub(before);
    eprintln!("resident memory grew {grown} KiB over the abuse");
    assert!(grown < 64 << 10, "memory grew {grown} KiB");
}

#[test]
fn other_addresses_need_a_key_and_every_request_must_carry_it() {
    let options = |host: &str, key: Option<&str>| ServeOptions {
        host: host.into(),
        port: 0,
        api_key: key.and_then(Token::parse),
        models_dir: common::shipped_models(),
        limits: Limits::default(),
    };
    let refused = Server::bind(options("0.0.0.0", None)).err().unwrap().to_string();
    assert!(refused.contains("--api-key"), "{refused}");
    assert!(Server::bind(options("0.0.0.0", Some("k"))).is_ok());

    let url = start(Limits::default(), Some("k"));
    assert!(raw(&url, b"GET /v1/models HTTP/1.1\r\nConnection: close\r\n\r\n").starts_with("HTTP/1.1 401"));
    let with = raw(&url, b"GET /v1/models HTTP/1.1\r\nAuthorization: Bearer k\r\nConnection: close\r\n\r\n");
    assert!(with.starts_with("HTTP/1.1 200"), "{with}");
    // The key sent by the studio's client (never printed in its errors).
    let remote = RemoteServer::new(&url, Token::parse("wrong")).unwrap();
    let err = openai::list_models(&remote).unwrap_err().to_string();
    assert!(err.contains("API key") && !err.contains("wrong"), "{err}");
}

/// The emoji model in-process: the reference for images served.
fn pipeline_image(request: &latent_studio::spec::image::ImageRequest) -> image::RgbImage {
    use latent_studio::diffusion::pipeline::{DiffusionPipeline, GenerateInputs};
    let pipeline =
        DiffusionPipeline::load(&common::shipped_models().join("emoji-ldm"), &candle_core::Device::Cpu).unwrap();
    let generated =
        pipeline.generate_with(request, GenerateInputs::default(), &mut |_| {}, &CancelToken::new()).unwrap().unwrap();
    generated.image
}

#[test]
fn a1111_clients_get_the_pipelines_own_images_with_progress_and_interrupt() {
    use latent_studio::remote::a1111::{self, RemoteImageJob};
    use latent_studio::spec::image::{ImageRequest, SamplerKind};
    let url = start(Limits::default(), None);
    let remote = RemoteServer::new(&url, None).unwrap();
    let catalogue = a1111::catalogue(&remote).unwrap();
    assert!(catalogue.models.iter().any(|m| m == "emoji-ldm"), "{catalogue:?}");
    assert!(catalogue.samplers.iter().any(|s| s == "DPM++ 2M"), "{catalogue:?}");

    // An A1111-style script gets the same image the pipeline makes in-process.
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("script.png");
    let out = Command::new(common::servers::llama_venv_python())
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/a1111_client.py"))
        .args([url.as_str(), png.to_str().unwrap(), "emoji-ldm"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(info["all_seeds"], serde_json::json!([11]));
    assert!(info["infotexts"][0].as_str().unwrap().contains("Sampler: Euler a"));
    let request = ImageRequest {
        steps: 6,
        guidance: 3.0,
        width: 32,
        height: 32,
        sampler: SamplerKind::EulerAncestral,
        ..ImageRequest::new("a smiling face", 11)
    };
    let reference = pipeline_image(&request);
    assert_eq!(image::open(&png).unwrap().to_rgb8(), reference, "the script's image is the pipeline's");

    // The studio's own client, a batch of two: seeds 11 and 12, the record merged.
    let job = RemoteImageJob { request: &request, model: Some("emoji-ldm"), init_image: None, batch: 2, loras: &[] };
    let (images, interrupted) = a1111::generate(&remote, &job, &|| false, &mut |_| {}).unwrap();
    assert!(!interrupted);
    assert_eq!(images.len(), 2);
    assert_eq!(images[0].image, reference);
    assert_eq!(images.iter().map(|i| i.seed).collect::<Vec<_>>(), [Some(11), Some(12)]);

    // Progress while a long job runs, then interrupt: the job ends with the image it had reached.
    let long = ImageRequest { steps: 150, ..request.clone() };
    let progress_seen = std::sync::Mutex::new(Vec::new());
    let interrupt_after = std::sync::atomic::AtomicBool::new(false);
    let job = RemoteImageJob { request: &long, batch: 1, ..job };
    let (images, interrupted) =
        a1111::generate(&remote, &job, &|| interrupt_after.load(std::sync::atomic::Ordering::SeqCst), &mut |p| {
            if p.step >= 3 && p.preview.is_some() {
                interrupt_after.store(true, std::sync::atomic::Ordering::SeqCst);
            }
            progress_seen.lock().unwrap().push((p.step, p.steps, p.preview.is_some()));
        })
        .unwrap();
    let seen = progress_seen.into_inner().unwrap();
    assert!(interrupted, "progress seen: {seen:?}");
    assert!(seen.iter().any(|&(step, steps, preview)| step >= 3 && steps == 150 && preview), "{seen:?}");
    assert_eq!(images.len(), 1, "the image reached so far");
    let last_step = seen.last().unwrap().0;
    assert!(last_step < 150, "stopped early: {seen:?}");

    // Limits answer in A1111's shape.
    let answer = raw(&url, &post("/sdapi/v1/txt2img", r#"{"prompt":"x","steps":10000}"#));
    assert!(answer.starts_with("HTTP/1.1 422") && answer.contains("steps must be between 1 and 150"), "{answer}");
    let answer =
        raw(&url, &post("/sdapi/v1/txt2img", r#"{"prompt":"x","override_settings":{"sd_model_checkpoint":"nope"}}"#));
    assert!(answer.starts_with("HTTP/1.1 404"), "{answer}");
}
