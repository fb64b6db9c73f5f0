//! The text-conditioned latent diffusion model on the user's own folder:
//! captions from kohya-style sidecar `.txt` files or the file names, the
//! autoencoder and then the U-Net trained from the CLI at a tiny width, a
//! model that `generate` samples from, and fine-tuning from a finished
//! model (its autoencoder, tokenizer and weights kept). A GAN fine-tunes
//! from the shipped emoji DCGAN the same way.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failed unwrap is a failed test

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::image_folder::mixed_folder;
use latent_studio::io::datasets::DataSource;
use latent_studio::io::image_folder::{Fit, FolderSpec};

fn studio(args: &[&str], models: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_latent-studio")).args(args).env("LATENT_STUDIO_MODELS", models).output().unwrap()
}

fn succeeded(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    stderr
}

#[test]
fn captions_come_from_sidecar_files_or_file_names() {
    let dir = tempfile::tempdir().unwrap();
    mixed_folder(dir.path());
    std::fs::write(dir.path().join("cats/photo_1.txt"), "  a blue cat on grass\n").unwrap();
    let spec = FolderSpec { folder: dir.path().to_owned(), side: 16, channels: 3, fit: Fit::Crop, flip: true };
    let (loaded, captions) = DataSource::Folder(spec).load_captioned(Path::new("unused")).unwrap();
    assert_eq!(captions.train.len(), loaded.split.train.len(), "one caption per image, mirrored copies too");
    assert_eq!(captions.test.len(), loaded.split.test.len());
    assert_eq!(captions.train[0], "a bouncing ball", "anim.gif's sidecar");
    assert_eq!(captions.train[1], "alpha 0", "cats/alpha_0.png's name");
    assert!(captions.train.contains(&"a blue cat on grass".to_owned()), "trimmed: {:?}", captions.train);
    let half = captions.train.len() / 2;
    assert_eq!(captions.train[..half], captions.train[half..], "a mirrored copy keeps its caption");
}

#[test]
fn latent_diffusion_trains_on_a_captioned_folder_and_fine_tunes() {
    let data = tempfile::tempdir().unwrap();
    mixed_folder(data.path());
    let models = common::models_folder_with(&[]);
    let folder = data.path().to_str().unwrap();
    let out = models.path().join("my-ldm");
    let out_s = out.to_str().unwrap();
    let shape = ["--data", folder, "--side", "16", "--batch-size", "8", "--epochs", "1"];
    let mut ae = vec!["train", "autoencoder", "--channels", "8,8,8", "--out", out_s];
    ae.extend(shape);
    let stderr = succeeded(&studio(&ae, models.path()));
    assert!(stderr.contains("skipped 4 files"), "{stderr}");
    assert!(out.join("vae/config.json").is_file(), "the autoencoder stage wrote vae/");

    let mut unet = vec!["train", "diffusion", "--width", "32", "--merges", "50", "--max-len", "8", "--out", out_s];
    unet.extend(shape);
    succeeded(&studio(&unet, models.path()));
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["family"], "diffusion");
    assert_eq!(manifest["image_size"], serde_json::json!([16, 16]));
    assert!(manifest["dataset"].as_str().unwrap().contains("the user's images in"), "{manifest}");
    let card = std::fs::read_to_string(out.join("README.md")).unwrap();
    assert!(card.contains("sidecar `.txt`") && card.contains("\"a bouncing ball\""), "{card}");
    assert!(card.contains("train autoencoder") && card.contains("train diffusion"), "both commands: {card}");
    assert!(card.contains("14 training images"), "the image count: {card}");
    let image = models.path().join("sample.png");
    let generate =
        ["generate", "--model", "my-ldm", "--prompt", "alpha", "--steps", "3", "--out", image.to_str().unwrap()];
    succeeded(&studio(&generate, models.path()));
    assert_eq!(image::open(&image).unwrap().width(), 16);

    // Fine-tuning keeps the base's autoencoder and tokenizer and starts from its weights.
    let tuned = models.path().join("tuned");
    let mut fine = vec!["train", "diffusion", "--from", "my-ldm", "--out", tuned.to_str().unwrap()];
    fine.extend(shape);
    succeeded(&studio(&fine, models.path()));
    for file in ["vae/diffusion_pytorch_model.safetensors", "tokenizer/vocab.json"] {
        assert_eq!(std::fs::read(out.join(file)).unwrap(), std::fs::read(tuned.join(file)).unwrap(), "{file}");
    }
    let card = std::fs::read_to_string(tuned.join("README.md")).unwrap();
    assert!(card.contains("fine-tuned from") && card.contains("my-ldm"), "{card}");
    // Grey images or a side that is no multiple of 8 are refused with the reason.
    let refused = |flags: &[&str]| {
        let mut args = vec!["train", "autoencoder", "--data", folder, "--out", "/nonexistent/ldm"];
        args.extend(flags);
        let out = studio(&args, models.path());
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    assert!(refused(&["--grey"]).contains("colour images"));
    assert!(refused(&["--side", "28"]).contains("multiple of 8"));
}

#[test]
fn a_gan_fine_tunes_from_the_shipped_emoji_dcgan() {
    let data = tempfile::tempdir().unwrap();
    mixed_folder(data.path());
    let models = common::models_folder_with(&["emoji-dcgan"]);
    let out = models.path().join("my-emoji-gan");
    let folder = data.path().to_str().unwrap();
    let args = ["train", "gan", "--from", "emoji-dcgan", "--data", folder, "--epochs", "1"];
    let mut args = args.to_vec();
    args.extend(["--batch-size", "8", "--out", out.to_str().unwrap()]);
    succeeded(&studio(&args, models.path()));
    let card = std::fs::read_to_string(out.join("README.md")).unwrap();
    assert!(card.contains("--from emoji-dcgan"), "{card}");
    // The wrong shape is refused before training, naming the model.
    let grey = ["train", "gan", "--from", "emoji-dcgan", "--data", folder, "--grey", "--out", "/nonexistent/x"];
    let stderr = String::from_utf8_lossy(&studio(&grey, models.path()).stderr).into_owned();
    assert!(stderr.contains("emoji-dcgan makes 32×32 images with 3 channels"), "{stderr}");
}
