//! Training on the user's own folder: a generated folder of mixed formats
//! (PNG with alpha, grey PNG, JPEG, WebP, an animated GIF), sizes and
//! classes (subfolders), plus files that cannot be used (a corrupt PNG, a
//! BMP, a tiny image, a PNG claiming 20000×20000 pixels). The VAE and the
//! DCGAN each train on it from the CLI, list what they skipped and why,
//! and export a model that loads and samples. Empty folders and folders
//! without images are refused with a message.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failed unwrap is a failed test

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::image_folder::mixed_folder;
use latent_studio::io::image_folder::{Fit, FolderSpec, load_folder};

fn studio(args: &[&str], models: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_latent-studio")).args(args).env("LATENT_STUDIO_MODELS", models).output().unwrap()
}

/// `train KIND --data FOLDER` with a tiny network (16 px, 4 base channels, batches of 4), plus `extra`.
fn train_tiny(kind: &str, folder: &Path, out: &Path, extra: &[&str], models: &Path) -> Output {
    let mut args = vec!["train", kind, "--data", folder.to_str().unwrap(), "--side", "16", "--base-channels", "4"];
    args.extend(["--batch-size", "4", "--out", out.to_str().unwrap()]);
    args.extend(extra);
    studio(&args, models)
}

#[test]
fn a_mixed_folder_is_read_with_reasons_for_what_is_skipped() {
    let dir = tempfile::tempdir().unwrap();
    mixed_folder(dir.path());
    let spec = FolderSpec { folder: dir.path().to_owned(), side: 16, channels: 3, fit: Fit::Crop, flip: true };
    let data = load_folder(&spec).unwrap();
    assert_eq!(data.train_files.len() + data.test_files.len(), 15);
    assert_eq!(data.test_files.len(), 1, "every tenth image is held out");
    assert_eq!(data.train.len(), 2 * data.train_files.len(), "mirrored copies follow the originals");
    assert_eq!(data.classes, ["cats", "dogs"]);
    assert_eq!((data.train.side, data.train.channels), (16, 3));
    assert!(data.train.pixels.iter().all(|v| (0.0..=1.0).contains(v)));
    let reason =
        |name: &str| data.skipped.iter().find(|s| s.path.ends_with(name)).map(|s| s.reason.clone()).unwrap_or_default();
    assert!(reason("broken.png").starts_with("unreadable"), "{:?}", data.skipped);
    assert!(reason("old.bmp").starts_with("not an image"), "{:?}", data.skipped);
    assert!(reason("tiny.png").starts_with("too small: 4×4"), "{:?}", data.skipped);
    assert!(reason("huge.png").starts_with("too large to read safely"), "{:?}", data.skipped);
    assert_eq!(data.skipped.len(), 4, "{:?}", data.skipped);
    // Grey, padded: one channel.
    let grey = load_folder(&FolderSpec { channels: 1, fit: Fit::Pad, flip: false, ..spec }).unwrap();
    assert_eq!(grey.train.image_len(), 16 * 16);
}

#[test]
fn the_vae_and_the_gan_train_on_a_folder_and_export_models_that_sample() {
    let data = tempfile::tempdir().unwrap();
    mixed_folder(data.path());
    let models = tempfile::tempdir().unwrap();
    let vae_out = models.path().join("my-vae");
    let vae_flags = ["--latent-dim", "2", "--hidden", "16", "--epochs", "1"];
    let out = train_tiny("vae", data.path(), &vae_out, &vae_flags, models.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("skipped 4 files") && stderr.contains("tiny.png: too small"), "{stderr}");
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(vae_out.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["image_size"], serde_json::json!([16, 16]));
    assert_eq!(manifest["classes"], serde_json::json!(["cats", "dogs"]));
    assert!(manifest["dataset"].as_str().unwrap().contains("the user's images in"), "{manifest}");
    let grid = models.path().join("vae-grid.png");
    let out = studio(&["sample", "--model", "my-vae", "--count", "4", "--out", grid.to_str().unwrap()], models.path());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let gan_out = models.path().join("my-gan");
    let gan_flags = ["--grey", "--latent-dim", "4", "--epochs", "1"];
    let out = train_tiny("gan", data.path(), &gan_out, &gan_flags, models.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("of real"), "each epoch reports the generated images' spread: {stderr}");
    let grid = models.path().join("gan-grid.png");
    let out = studio(&["sample", "--model", "my-gan", "--count", "4", "--out", grid.to_str().unwrap()], models.path());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let card = std::fs::read_to_string(gan_out.join("README.md")).unwrap();
    assert!(card.contains("--data") && card.contains("--grey"), "the card's command reads the same folder: {card}");
    assert!(card.contains("| Images | 14 for training, 1 held out |"), "{card}");
}

#[test]
fn folders_without_images_are_refused_with_a_message() {
    let models = tempfile::tempdir().unwrap();
    let empty = tempfile::tempdir().unwrap();
    let train = |folder: &Path| {
        let out_dir = models.path().join("m");
        let args = [
            "train",
            "vae",
            "--data",
            folder.to_str().unwrap(),
            "--latent-dim",
            "2",
            "--out",
            out_dir.to_str().unwrap(),
        ];
        let out = studio(&args, models.path());
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    assert!(train(empty.path()).contains("no usable images"), "{}", train(empty.path()));
    std::fs::write(empty.path().join("notes.pdf"), b"%PDF").unwrap();
    std::fs::write(empty.path().join("broken.jpg"), b"nope").unwrap();
    let message = train(empty.path());
    assert!(message.contains("no usable images") && message.contains("2 files skipped"), "{message}");
    assert!(train(&empty.path().join("missing")).contains("not a folder"));
    let out = studio(&["train", "vae", "--latent-dim", "2", "--out", "x"], models.path());
    assert!(!out.status.success(), "either --dataset or --data is required");
}

#[test]
fn the_character_gpt_trains_on_a_folder_or_a_file_of_text() {
    let data = tempfile::tempdir().unwrap();
    let verse = "the cat sat on the mat and the dog sat on the log\n".repeat(40);
    std::fs::write(data.path().join("a.txt"), &verse).unwrap();
    std::fs::write(data.path().join("b.TXT"), verse.to_uppercase()).unwrap();
    std::fs::write(data.path().join("cover.png"), b"not text").unwrap(); // ignored: not .txt
    let models = tempfile::tempdir().unwrap();
    let train = |source: &Path, id: &str| {
        let out = models.path().join(id);
        let args = [
            "train",
            "text",
            "--data",
            source.to_str().unwrap(),
            "--steps",
            "4",
            "--layers",
            "1",
            "--heads",
            "1",
            "--width",
            "16",
            "--context",
            "16",
            "--batch-size",
            "4",
            "--eval-every",
            "2",
            "--eval-windows",
            "4",
            "--out",
            out.to_str().unwrap(),
        ];
        studio(&args, models.path())
    };
    let out = train(data.path(), "folder-gpt");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = train(&data.path().join("a.txt"), "file-gpt");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let manifest = std::fs::read_to_string(models.path().join("folder-gpt/manifest.json")).unwrap();
    assert!(manifest.contains("the user's text in"), "{manifest}");
    let out = studio(&["text", "--model", "folder-gpt", "--prompt", "the ", "--max-tokens", "8"], models.path());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // A folder without text says so.
    let empty = tempfile::tempdir().unwrap();
    let out = train(empty.path(), "none");
    assert!(String::from_utf8_lossy(&out.stderr).contains("has no .txt files"));
}

#[test]
fn a_vae_whose_latent_carries_nothing_is_warned_about() {
    let data = tempfile::tempdir().unwrap();
    mixed_folder(data.path());
    let models = tempfile::tempdir().unwrap();
    let out_dir = models.path().join("collapsed");
    // β = 1000 pushes every posterior onto the prior.
    let flags = ["--latent-dim", "2", "--hidden", "16", "--epochs", "3", "--beta", "1000"];
    let out = train_tiny("vae", data.path(), &out_dir, &flags, models.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("warning: posterior collapse?"), "{stderr}");
}

/// A full disk while checkpointing (as close as a test gets without
/// mounting one: a 1 KiB file-size limit, SIGXFSZ ignored): the run stops
/// with a message naming the file, the previous checkpoint and the exported
/// model are untouched, and resuming once there is room ends exactly as an
/// uninterrupted run does. Deleting the data folder of a run makes resuming
/// fail with the folder's name.
#[cfg(target_os = "linux")]
#[test]
fn a_full_disk_while_checkpointing_keeps_the_last_checkpoint() {
    let data = tempfile::tempdir().unwrap();
    mixed_folder(data.path());
    let models = tempfile::tempdir().unwrap();
    let (run, whole) = (models.path().join("run"), models.path().join("whole"));
    let flags = ["--latent-dim", "2", "--hidden", "16"];
    let epochs = |n: &'static str| {
        let mut extra = flags.to_vec();
        extra.extend(["--epochs", n]);
        extra
    };
    assert!(train_tiny("vae", data.path(), &run, &epochs("1"), models.path()).status.success());
    let model_before = std::fs::read(run.join("model.safetensors")).unwrap();
    let state_before = std::fs::read_to_string(run.join("checkpoint/state.json")).unwrap();

    let mut args =
        vec!["train", "vae", "--data", data.path().to_str().unwrap(), "--side", "16", "--base-channels", "4"];
    args.extend(["--batch-size", "4", "--out", run.to_str().unwrap(), "--resume"]);
    args.extend(epochs("2"));
    let script = format!("trap '' XFSZ; ulimit -f 1; exec {} \"$@\"", env!("CARGO_BIN_EXE_latent-studio"));
    let out = Command::new("bash").arg("-c").arg(&script).arg("studio").args(&args).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && out.status.code().is_some(), "an error, not a signal: {stderr}");
    assert!(stderr.contains("no room left on the disk") && stderr.contains("weights.safetensors"), "{stderr}");
    assert_eq!(std::fs::read_to_string(run.join("checkpoint/state.json")).unwrap(), state_before, "kept as it was");
    assert_eq!(std::fs::read(run.join("model.safetensors")).unwrap(), model_before, "the model is not overwritten");
    assert!(!run.join("checkpoint.new").exists(), "the half-written copy is cleaned up");

    let out = Command::new(env!("CARGO_BIN_EXE_latent-studio")).args(&args).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(train_tiny("vae", data.path(), &whole, &epochs("2"), models.path()).status.success());
    for file in ["checkpoint/weights.safetensors", "model.safetensors"] {
        assert!(std::fs::read(run.join(file)).unwrap() == std::fs::read(whole.join(file)).unwrap(), "{file}");
    }

    // The data folder gone: resuming says which folder is missing.
    let moved = models.path().join("moved");
    std::fs::rename(data.path(), &moved).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_latent-studio")).args(&args).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains(data.path().to_str().unwrap()), "{stderr}");
    std::fs::rename(&moved, data.path()).unwrap();
}
