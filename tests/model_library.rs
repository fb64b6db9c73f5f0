//! The model library on the folders artists have: an AUTOMATIC1111 install,
//! a ComfyUI install and a plain folder, with the files that go wrong in
//! practice (a truncated download, a pickle, a broken link, junk named like
//! a model); every file gets a kind or a reason, nothing stops the listing,
//! and `library --json` prints what the Image view lists. Single-file
//! checkpoints are generated from by the CLI with A1111's hash in the PNG.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failed unwrap is a failed test

mod common;

use candle_core::DType;
use common::{ok, s};
use latent_studio::diffusion::checkpoint::family::Family;
use latent_studio::diffusion::checkpoint::write::write_single_file;
use latent_studio::diffusion::model_library::hashes::{HashKind, sha256_hex};
use latent_studio::diffusion::model_library::{ItemKind, scan};
use latent_studio::diffusion::random_weights::{RandomModel, write_random_model};
use serde_json::Value;

#[test]
fn installs_and_folders_are_listed_by_kind_whatever_they_hold() {
    let root = tempfile::tempdir().unwrap();
    let model = root.path().join("tiny");
    write_random_model(&model, &RandomModel::tiny(91)).unwrap();
    let a1111 = root.path().join("stable-diffusion-webui");
    let comfy = root.path().join("ComfyUI");
    let plain = root.path().join("downloads");
    for dir in ["models/Stable-diffusion", "models/Lora", "models/VAE", "embeddings"] {
        std::fs::create_dir_all(a1111.join(dir)).unwrap();
    }
    for dir in ["models/checkpoints", "models/loras"] {
        std::fs::create_dir_all(comfy.join(dir)).unwrap();
    }
    std::fs::create_dir_all(&plain).unwrap();
    let checkpoint = a1111.join("models/Stable-diffusion/tiny.safetensors");
    write_single_file(&model, Family::Sd1, DType::F16, &checkpoint).unwrap();
    std::fs::copy(model.join("vae/diffusion_pytorch_model.safetensors"), a1111.join("models/VAE/tiny-vae.safetensors"))
        .unwrap();
    std::fs::write(a1111.join("models/Stable-diffusion/old.ckpt"), b"\x80\x02}q\x00.").unwrap();
    let bytes = std::fs::read(&checkpoint).unwrap();
    std::fs::write(comfy.join("models/checkpoints/half-downloaded.safetensors"), &bytes[..bytes.len() / 2]).unwrap();
    std::fs::write(comfy.join("models/loras/notes.safetensors"), b"not a model at all").unwrap();
    #[cfg(unix)]
    std::os::unix::fs::symlink(root.path().join("gone.safetensors"), plain.join("dangling.safetensors")).unwrap();
    std::fs::copy(&checkpoint, plain.join("copy.safetensors")).unwrap();

    let items = scan(&[a1111.clone(), comfy.clone(), plain.clone()], None);
    let kind = |name: &str| items.iter().find(|i| i.name == name).map(|i| i.kind.clone());
    assert_eq!(kind("tiny"), Some(ItemKind::Checkpoint { family: "SD 1.x".into() }));
    assert_eq!(kind("copy"), Some(ItemKind::Checkpoint { family: "SD 1.x".into() }));
    assert_eq!(kind("tiny-vae"), Some(ItemKind::Vae));
    assert_eq!(kind("old"), Some(ItemKind::Pickle));
    let reason = |name: &str| match kind(name) {
        Some(ItemKind::Other { reason }) => reason,
        other => panic!("{name}: {other:?}"),
    };
    assert!(reason("half-downloaded").contains("truncated"), "{}", reason("half-downloaded"));
    assert!(reason("notes").contains("not a safetensors file"), "{}", reason("notes"));
    #[cfg(unix)]
    assert!(!reason("dangling").is_empty());

    // The CLI lists the same, with A1111's hash of the checkpoint (sha256 of the file, 10 digits).
    let json: Vec<Value> = serde_json::from_str(&ok(&["library", "--dir", s(&a1111), "--json"])).unwrap();
    let tiny = json.iter().find(|v| v["name"] == "tiny").unwrap();
    assert_eq!(tiny["kind"], "checkpoint");
    assert_eq!(tiny["family"], "SD 1.x");
    let sha = sha256_hex(&checkpoint, HashKind::File).unwrap();
    assert_eq!(tiny["hash"].as_str().unwrap(), &sha[..10]);

    // Generating from the single file writes that hash into the PNG, as A1111 does.
    let out = root.path().join("out.png");
    ok(&[
        "generate",
        "--model-file",
        s(&checkpoint),
        "--config",
        s(&model),
        "--prompt",
        "a (red:1.2) heart",
        "--steps",
        "2",
        "--width",
        "32",
        "--height",
        "32",
        "--sampler",
        "DPM++ 2M Karras",
        "--out",
        s(&out),
    ]);
    let info = ok(&["info", s(&out)]);
    assert!(info.contains(&format!("Model hash: {}", &sha[..10])), "{info}");
    assert!(info.contains("Sampler: DPM++ 2M, ") && info.contains("Schedule type: Karras"), "{info}");
    assert!(info.contains("Model: tiny"), "{info}");
}
