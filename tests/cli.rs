//! The binary end to end on the shipped weights: listing, sampling, decoding,
//! encoding, interpolation, determinism and clear errors.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failed unwrap is a failed test

mod common;

use std::path::Path;
use std::process::Command;

use common::{fails, ok, s};

#[test]
fn models_lists_the_shipped_models() {
    let json: serde_json::Value = serde_json::from_str(&ok(&["models", "--json"])).unwrap();
    let rows = json.as_array().unwrap();
    let find = |id: &str| rows.iter().find(|r| r["id"] == id).unwrap_or_else(|| panic!("{id} not listed: {json}"));
    assert_eq!(find("digits-2d")["latent_dim"], 2);
    assert!(find("fashion-16d")["latent_dim"].as_u64().unwrap() >= 8);
    assert_eq!(find("smollm2-135m-instruct")["family"], "text", "listed even before its weights are fetched");
    assert_eq!(find("emoji-dcgan")["family"], "gan");
    assert_eq!(find("emoji-dcgan")["latent_dim"], 64);
    assert_eq!(find("emoji-ldm")["family"], "diffusion");
    assert_eq!(find("emoji-ldm")["image_size"], serde_json::json!([32, 32]));
    for r in rows {
        assert!(["vae", "gan", "text", "diffusion"].contains(&r["family"].as_str().unwrap()), "{r}");
        assert!(!r["license"].as_str().unwrap().is_empty());
    }
    assert!(ok(&["models"]).contains("digits-2d"));
}

#[test]
fn sample_is_byte_identical_for_the_same_seed() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, c) = (dir.path().join("a.png"), dir.path().join("b.png"), dir.path().join("c.png"));
    ok(&["sample", "--model", "fashion-16d", "--seed", "7", "--count", "4", "--out", s(&a)]);
    ok(&["sample", "--model", "fashion-16d", "--seed", "7", "--count", "4", "--out", s(&b)]);
    ok(&["sample", "--model", "fashion-16d", "--seed", "8", "--count", "4", "--out", s(&c)]);
    let (a, b, c) = (std::fs::read(a).unwrap(), std::fs::read(b).unwrap(), std::fs::read(c).unwrap());
    assert_eq!(a, b);
    assert_ne!(a, c);
}

#[test]
fn decode_writes_metadata_and_never_overwrites() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("z.png");
    ok(&["decode", "--model", "digits-2d", "--latent", "0.5,-1.25", "--out", s(&out)]);
    let settings = latent_studio::io::png_meta::read_settings(&out).unwrap().unwrap();
    assert_eq!(settings.model, "digits-2d");
    assert_eq!(settings.latents, vec![vec![0.5, -1.25]]);
    let img = image::open(&out).unwrap();
    assert_eq!((img.width(), img.height()), (28, 28));
    let before = std::fs::read(&out).unwrap();
    let err = fails(&["decode", "--model", "digits-2d", "--latent", "0,0", "--out", s(&out)]);
    assert!(err.contains("already exists"), "{err}");
    assert_eq!(std::fs::read(&out).unwrap(), before);
}

#[test]
fn encode_then_decode_reconstructs_a_digit() {
    let dir = tempfile::tempdir().unwrap();
    let original = dir.path().join("orig.png");
    ok(&["decode", "--model", "digits-2d", "--latent", "1.0,0.5", "--out", s(&original)]);
    let latent: Vec<f32> =
        serde_json::from_str(&ok(&["encode", "--model", "digits-2d", "--image", s(&original)])).unwrap();
    assert_eq!(latent.len(), 2);
    // A decoded image encodes back close to where it came from.
    let dist = ((latent[0] - 1.0).powi(2) + (latent[1] - 0.5).powi(2)).sqrt();
    assert!(dist < 0.75, "encoded to {latent:?}");
}

#[test]
fn interpolate_writes_a_strip_and_a_gif() {
    let dir = tempfile::tempdir().unwrap();
    let (png, gif) = (dir.path().join("s.png"), dir.path().join("s.gif"));
    // Seeds 1 → 2 in 6 frames; slerp when no method is given.
    let walk = |out: &Path, method: Option<&str>| {
        let mut args =
            vec!["interpolate", "--model", "fashion-16d", "--from-seed", "1", "--to-seed", "2", "--frames", "6"];
        if let Some(m) = method {
            args.extend(["--method", m]);
        }
        args.extend(["--out", s(out)]);
        ok(&args)
    };
    walk(&png, Some("lerp"));
    walk(&gif, None);
    let strip = image::open(&png).unwrap();
    assert_eq!(strip.width(), 6 * 29 + 1);
    let settings = latent_studio::io::png_meta::read_settings(&png).unwrap().unwrap();
    assert_eq!((settings.method.as_str(), settings.seeds.clone(), settings.latents.len()), ("lerp", vec![1, 2], 6));
    use image::AnimationDecoder;
    let frames =
        image::codecs::gif::GifDecoder::new(std::io::BufReader::new(std::fs::File::open(&gif).unwrap())).unwrap();
    assert_eq!(frames.into_frames().count(), 6);
    // Determinism holds for GIFs too.
    let gif2 = dir.path().join("s2.gif");
    walk(&gif2, None);
    assert_eq!(std::fs::read(&gif).unwrap(), std::fs::read(&gif2).unwrap());
}

#[test]
fn bad_input_gives_a_clear_error_and_nonzero_exit() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x.png");
    assert!(fails(&["sample", "--model", "nope", "--out", s(&out)]).contains("no model with id \"nope\""));
    assert!(
        fails(&["decode", "--model", "digits-2d", "--latent", "1,2,3", "--out", s(&out)])
            .contains("takes 2 latent values")
    );
    assert!(
        fails(&["decode", "--model", "digits-2d", "--latent", "1,x", "--out", s(&out)])
            .contains("\"x\" is not a number")
    );
    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "hello").unwrap();
    assert!(fails(&["encode", "--model", "digits-2d", "--image", s(&text)]).contains("notes.txt"));
    let missing_dir = dir.path().join("missing").join("x.png");
    assert!(fails(&["sample", "--model", "digits-2d", "--out", s(&missing_dir)]).contains("missing"));
    assert!(!out.exists());
}

#[test]
fn a_corrupt_model_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let model = common::write_tiny_vae(dir.path(), "broken");
    let weights = model.join("model.safetensors");
    let bytes = std::fs::read(&weights).unwrap();
    std::fs::write(&weights, &bytes[..bytes.len() / 2]).unwrap(); // truncated download
    let out = Command::new(env!("CARGO_BIN_EXE_latent-studio"))
        .args(["--models-dir", s(dir.path()), "sample", "--model", "broken", "--out", s(&dir.path().join("o.png"))])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(s(&weights)), "{err}");
}

#[test]
fn a_gan_samples_with_truncation_and_refuses_to_encode() {
    let dir = tempfile::tempdir().unwrap();
    let (mean, zero_psi) = (dir.path().join("mean.png"), dir.path().join("psi0.png"));
    let zeros = vec!["0"; 64].join(",");
    ok(&["decode", "--model", "emoji-dcgan", "--latent", &zeros, "--out", s(&mean)]);
    ok(&["sample", "--model", "emoji-dcgan", "--seed", "5", "--truncation", "0", "--out", s(&zero_psi)]);
    let pixels = |p: &Path| image::open(p).unwrap().to_rgb8().into_raw();
    assert_eq!(pixels(&mean), pixels(&zero_psi), "ψ = 0 decodes the mean latent");
    let err = fails(&["encode", "--model", "emoji-dcgan", "--image", s(&mean)]);
    assert!(err.contains("has no encoder"), "{err}");
    let err = fails(&["directions", "--model", "digits-2d"]);
    assert!(err.contains("computed for GANs"), "{err}");
}
