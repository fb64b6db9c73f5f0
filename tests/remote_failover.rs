//! Two backends, one killed mid-job: the job finishes on the other, its
//! output is written once and equals what the survivor makes on its own.
//! Both are the studio's own `serve` (its images and text are the
//! reference engine's, so the expected output is known exactly).
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failed unwrap is a failed test

mod common;

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::servers::ServeProcess;
use latent_studio::diffusion::pipeline::{DiffusionPipeline, GenerateInputs};
use latent_studio::remote::RemoteServer;
use latent_studio::spec::image::{ImageRequest, SamplerKind};
use latent_studio::text::generate::{GenerateSpec, generate};
use latent_studio::text::gguf_llama::GgufLlama;
use latent_studio::text::sampling::SamplingParams;
use latent_studio::train::cancel::CancelToken;

#[test]
fn an_image_job_moves_to_the_surviving_backend_and_is_written_once() {
    let mut first = ServeProcess::start(&[]);
    let second = ServeProcess::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("cube.png");
    let mut cli = Command::new(env!("CARGO_BIN_EXE_latent-studio"))
        .args(["generate", "--backend", &first.1, "--backend", &second.1, "--model", "emoji-ldm"])
        .args(["--prompt", "a smiling face", "--seed", "5", "--steps", "120", "--sampler", "euler"])
        .args(["--width", "32", "--height", "32", "--cfg", "3", "--out"])
        .arg(&out)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Kill the first server once it is a few steps into the job (ties go to the first added).
    let watched = RemoteServer::new(&first.1, None).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let progress = latent_studio::remote::a1111::progress(&watched).unwrap();
        if progress.step >= 3 {
            break;
        }
        assert!(Instant::now() < deadline, "the first backend never started the job");
        std::thread::sleep(Duration::from_millis(50));
    }
    first.0.kill().unwrap();
    let status = cli.wait().unwrap();
    let mut stderr = String::new();
    cli.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    assert!(status.success(), "{stderr}");
    assert!(stderr.contains(&format!("generating again on {}", second.1)), "{stderr}");

    let files: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(files, ["cube.png"], "one output, written once");
    let request = ImageRequest {
        steps: 120,
        guidance: 3.0,
        width: 32,
        height: 32,
        sampler: SamplerKind::Euler,
        ..ImageRequest::new("a smiling face", 5)
    };
    let pipeline =
        DiffusionPipeline::load(&common::shipped_models().join("emoji-ldm"), &candle_core::Device::Cpu).unwrap();
    let reference =
        pipeline.generate_with(&request, GenerateInputs::default(), &mut |_| {}, &CancelToken::new()).unwrap().unwrap();
    assert_eq!(image::open(&out).unwrap().to_rgb8(), reference.image);
    let record = latent_studio::io::image_record::read_image_record(&out).unwrap().unwrap();
    assert_eq!(record.served.unwrap().backend, second.1, "the record names the backend that made it");
}

#[test]
fn a_text_stream_cut_by_a_dying_backend_restarts_on_the_other() {
    let mut first = ServeProcess::start(&[]);
    let second = ServeProcess::start(&[]);
    let prompt = "Write a short story about a robot who learns to paint.";
    let mut cli = Command::new(env!("CARGO_BIN_EXE_latent-studio"))
        .args(["text", "--backend", &first.1, "--backend", &second.1, "--model", "smollm2-135m-instruct"])
        .args(["--chat", "--prompt", prompt, "--max-tokens", "160", "--temperature", "0", "--top-k", "0"])
        .args(["--top-p", "1", "--min-p", "0", "--repeat-penalty", "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Kill the first server once its text has started to arrive.
    let mut stdout = cli.stdout.take().unwrap();
    let mut head = [0u8; 16];
    stdout.read_exact(&mut head).unwrap();
    first.0.kill().unwrap();
    let mut rest = Vec::new();
    stdout.read_to_end(&mut rest).unwrap();
    let status = cli.wait().unwrap();
    let mut stderr = String::new();
    cli.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    assert!(status.success(), "{stderr}");
    assert!(stderr.contains(&format!("generating again on {}", second.1)), "{stderr}");
    assert!(stderr.contains(&format!("served by {}", second.1)), "{stderr}");

    let path = common::shipped_models().join("smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf");
    let mut model = GgufLlama::load(&path, &candle_core::Device::Cpu).unwrap();
    let spec = GenerateSpec {
        prompt: prompt.into(),
        chat: true,
        system: String::new(),
        history: Vec::new(),
        max_new_tokens: 160,
        sampling: SamplingParams::greedy(),
        stop_strings: Vec::new(),
    };
    let reference = generate(&mut model, &spec, &CancelToken::new(), &mut |_, _| {}).unwrap().text;
    let printed = String::from_utf8_lossy(&[&head[..], &rest].concat()).into_owned();
    assert!(printed.trim_end().ends_with(reference.trim_end()), "the whole answer follows the restart:\n{printed}");
}
