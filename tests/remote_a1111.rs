//! An A1111-compatible server as an image backend, against the real thing:
//! stable-diffusion.cpp's `sd-server` (built from PyPI's sdist) serving a
//! random model of Stable Diffusion 1.5's shape, in the diffusers layout it
//! loads directly. The backend lists the server's catalogue; its txt2img
//! and img2img images equal the server's own answers to the same request,
//! pixel for pixel; `generate --backend` writes them as local runs are
//! written, with the server's infotext merged into the metadata.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failed unwrap is a failed test

mod common;

use std::process::Command;

use latent_studio::diffusion::random_weights::{RandomModel, write_random_model};
use latent_studio::io::image_record::read_image_record;
use latent_studio::remote::RemoteServer;
use latent_studio::remote::a1111::{self, RemoteImageJob, images_of, request_body};
use latent_studio::spec::image::{ImageRequest, SamplerKind};

/// The server's own answer to `body`, posted directly.
fn direct(url: &str, path: &str, body: &serde_json::Value) -> serde_json::Value {
    let answer = ureq::post(format!("{url}{path}"))
        .header("Content-Type", "application/json")
        .send(&serde_json::to_vec(body).unwrap()[..])
        .unwrap();
    serde_json::from_reader(answer.into_body().into_reader()).unwrap()
}

#[test]
fn sd_servers_images_through_the_backend_equal_its_own_answers() {
    let vocab = common::shipped_models().join("clip-vocab/bpe_simple_vocab_16e6.txt.gz");
    assert!(vocab.is_file(), "{} is missing: run scripts/fetch-models.sh", vocab.display());
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("random-sd15");
    write_random_model(&model, &RandomModel::sd15(3, &vocab)).unwrap();
    let served = common::servers::sd_server(&model, dir.path());
    let server = RemoteServer::new(&served.url, None).unwrap();

    let catalogue = a1111::catalogue(&server).unwrap();
    assert_eq!(catalogue.models.len(), 1, "{catalogue:?}");
    assert!(catalogue.samplers.iter().any(|s| s == "euler"), "{catalogue:?}");
    let kinds = latent_studio::remote::detect::detect(&server).unwrap();
    assert!(kinds.contains(&latent_studio::spec::backend::BackendKind::A1111), "{kinds:?}");

    let request = ImageRequest {
        steps: 2,
        width: 64,
        height: 64,
        sampler: SamplerKind::Euler,
        guidance: 5.0,
        ..ImageRequest::new("a red cube on a table", 42)
    };
    let job = RemoteImageJob { request: &request, model: None, init_image: None, batch: 1, loras: &[] };
    let (ours, interrupted) = a1111::generate(&server, &job, &|| false, &mut |_| {}).unwrap();
    assert!(!interrupted);
    let theirs = images_of(
        &server,
        "/sdapi/v1/txt2img",
        &direct(&served.url, "/sdapi/v1/txt2img", &request_body(&job).unwrap()),
    )
    .unwrap();
    assert_eq!((ours.len(), theirs.len()), (1, 1));
    assert_eq!(ours[0].image.dimensions(), (64, 64));
    assert_eq!(ours[0].image, theirs[0].image, "txt2img: the backend's image is the server's answer");
    let infotext = ours[0].infotext.clone().expect("sd-server writes its parameters into the PNG");
    assert!(infotext.contains("a red cube on a table") && infotext.contains("Seed: 42"), "{infotext}");

    // img2img from the first image.
    let init = ours[0].image.clone();
    let request = ImageRequest { strength: 0.5, ..request.clone() };
    let job = RemoteImageJob { request: &request, init_image: Some(&init), ..job };
    let (ours, _) = a1111::generate(&server, &job, &|| false, &mut |_| {}).unwrap();
    let theirs = images_of(
        &server,
        "/sdapi/v1/img2img",
        &direct(&served.url, "/sdapi/v1/img2img", &request_body(&job).unwrap()),
    )
    .unwrap();
    assert_eq!(ours[0].image, theirs[0].image, "img2img: the backend's image is the server's answer");
    assert_ne!(ours[0].image, init);

    // `generate --backend`: the same image, written with its settings and the server's infotext.
    let out = dir.path().join("remote.png");
    let status = Command::new(env!("CARGO_BIN_EXE_latent-studio"))
        .args(["generate", "--backend", &served.url, "--prompt", "a red cube on a table", "--seed", "42"])
        .args(["--steps", "2", "--width", "64", "--height", "64", "--sampler", "euler", "--cfg", "5", "--out"])
        .arg(&out)
        .env("LATENT_STUDIO_MODELS", dir.path())
        .status()
        .unwrap();
    assert!(status.success());
    let written = image::open(&out).unwrap().to_rgb8();
    let first = images_of(
        &server,
        "/sdapi/v1/txt2img",
        &direct(
            &served.url,
            "/sdapi/v1/txt2img",
            &request_body(&RemoteImageJob {
                init_image: None,
                request: &ImageRequest { strength: 0.75, ..request.clone() },
                ..job
            })
            .unwrap(),
        ),
    )
    .unwrap();
    assert_eq!(written, first[0].image);
    let record = read_image_record(&out).unwrap().unwrap();
    assert_eq!(record.request.seed, 42);
    let served_info = record.served.expect("the record names the backend");
    assert_eq!(served_info.backend, served.url);
    assert!(served_info.infotext.unwrap().contains("Seed: 42"));
    // The file is never overwritten.
    let again = Command::new(env!("CARGO_BIN_EXE_latent-studio"))
        .args(["generate", "--backend", &served.url, "--prompt", "x", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(!again.status.success() && String::from_utf8_lossy(&again.stderr).contains("never overwrites"));
}
