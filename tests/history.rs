//! The History's index: every kind of output is listed from its own
//! metadata (ours, another tool's PNG, a latent model's image, a saved
//! text, a GIF), found by prompt, model, seed and date, kept on disk across
//! a restart, and refreshed incrementally over 10,000 files.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failed unwrap is a failed test

use std::path::Path;
use std::process::Command;

use image::RgbImage;
use latent_studio::history::{Family, HistoryIndex, Refresh};
use latent_studio::io::gif_text::encode_gif;
use latent_studio::io::image_record::ImageRecord;
use latent_studio::io::png_meta::{ImageSettings, encode_png};
use latent_studio::io::sd_params::PARAMETERS_KEY;
use latent_studio::spec::image::ImageRequest;

fn record(prompt: &str, seed: u64, model: &str) -> ImageRecord {
    ImageRecord {
        request: ImageRequest::new(prompt, seed),
        model: model.into(),
        init_image: None,
        noise_origin: None,
        model_hash: None,
        lora_hashes: Vec::new(),
        latent: None,
        served: None,
    }
}

fn png(path: &Path, chunks: &[(String, String)]) {
    std::fs::write(path, encode_png(&RgbImage::new(2, 2), chunks).unwrap()).unwrap();
}

/// One output of each kind.
fn mixed_folder(dir: &Path) {
    png(&dir.join("ours.png"), &record("a red heart, glossy", 42, "emoji-ldm").chunks());
    let a1111 = "masterpiece, cat\nSteps: 30, Sampler: Euler a, CFG scale: 7, Seed: 7, Size: 64x64, Model: sd15";
    png(&dir.join("00001-7.png"), &[(PARAMETERS_KEY.to_owned(), a1111.to_owned())]);
    let settings = ImageSettings {
        model: "fashion-16d".into(),
        kind: "image".into(),
        seeds: vec![3],
        method: "seed".into(),
        latents: vec![vec![0.0; 4]],
        truncation: None,
    };
    std::fs::create_dir(dir.join("vae")).unwrap();
    png(&dir.join("vae/sample.png"), &settings.text_chunks());
    let text = "---\nmodel: \"smollm2\"\nmodel_name: \"SmolLM2\"\nseed: 11\nprompt: \"Once upon a time\"\n---\nthere was a cat\n";
    std::fs::write(dir.join("text-0001.txt"), text).unwrap();
    std::fs::write(dir.join("walk.gif"), encode_gif(&[RgbImage::new(2, 2), RgbImage::new(2, 2)], 80, &[]).unwrap())
        .unwrap();
    std::fs::write(dir.join("broken.png"), b"not a png").unwrap();
    std::fs::write(dir.join("notes.md"), b"not listed").unwrap();
}

#[test]
fn every_kind_is_listed_and_found_and_the_index_survives_a_restart() {
    let (dir, cache) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    mixed_folder(dir.path());
    let mut index = HistoryIndex::open(dir.path(), Some(cache.path()));
    assert_eq!(index.refresh(), Refresh { read: 6, kept: 0, removed: 0 });
    let family = |name: &str| index.entries().iter().find(|e| e.path.ends_with(name)).unwrap().family;
    assert_eq!(family("ours.png"), Family::Diffusion);
    assert_eq!(family("00001-7.png"), Family::Diffusion);
    assert_eq!(family("vae/sample.png"), Family::Latent);
    assert_eq!(family("text-0001.txt"), Family::Text);
    assert_eq!(family("walk.gif"), Family::Animation);
    let broken = index.entries().iter().find(|e| e.path.ends_with("broken.png")).unwrap();
    assert!(broken.problem.as_deref().unwrap_or("").contains("PNG"), "{broken:?}");

    let names = |query: &str, family: Option<Family>| -> Vec<String> {
        let found = index.search(query, family);
        found.map(|e| e.path.file_name().unwrap().to_string_lossy().into_owned()).collect()
    };
    assert_eq!(names("RED heart", None), ["ours.png"]);
    assert_eq!(names("sd15 cat", None), ["00001-7.png"]);
    assert_eq!(names("42", None), ["ours.png"]);
    assert_eq!(names("once upon", Some(Family::Text)), ["text-0001.txt"]);
    assert!(names("once upon", Some(Family::Diffusion)).is_empty());
    let today = index.entries()[0].date();
    assert_eq!(names(&today, None).len(), 6, "every file was written today");
    let reuse = index.entries().iter().find_map(|e| e.record.clone().filter(|r| r.request.seed == 42)).unwrap();
    assert_eq!(reuse, record("a red heart, glossy", 42, "emoji-ldm"), "reuse settings gets the exact request");

    // A restart: the index comes from the cache, nothing is read again.
    let mut reopened = HistoryIndex::open(dir.path(), Some(cache.path()));
    assert_eq!(reopened.entries().len(), 6);
    assert_eq!(reopened.refresh(), Refresh { read: 0, kept: 6, removed: 0 });
}

#[test]
fn ten_thousand_files_are_indexed_once_and_then_only_changes_are_read() {
    let (dir, cache) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let words = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliett"];
    let bytes: Vec<Vec<u8>> = (0..10)
        .map(|i| encode_png(&RgbImage::new(2, 2), &record(words[i], i as u64, "emoji-ldm").chunks()).unwrap())
        .collect();
    for n in 0..10_000 {
        std::fs::write(dir.path().join(format!("image-{n:05}.png")), &bytes[n % 10]).unwrap();
    }
    let mut index = HistoryIndex::open(dir.path(), Some(cache.path()));
    let started = std::time::Instant::now();
    assert_eq!(index.refresh(), Refresh { read: 10_000, kept: 0, removed: 0 });
    eprintln!("indexed 10,000 files in {:.2} s", started.elapsed().as_secs_f64());
    assert_eq!(index.search("charlie", None).count(), 1000);
    assert_eq!(index.refresh(), Refresh { read: 0, kept: 10_000, removed: 0 });
    std::fs::remove_file(dir.path().join("image-00000.png")).unwrap();
    std::fs::write(dir.path().join("new.png"), &bytes[1]).unwrap();
    assert_eq!(index.refresh(), Refresh { read: 1, kept: 9_999, removed: 1 });
    assert!(index.entries()[0].path.ends_with("new.png"), "newest first");
}

#[test]
fn the_history_command_searches_and_prints_json() {
    let (dir, cache) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    mixed_folder(dir.path());
    let out = Command::new(env!("CARGO_BIN_EXE_latent-studio"))
        .args(["history", "--dir", dir.path().to_str().unwrap(), "--search", "red heart", "--json"])
        .env("XDG_CACHE_HOME", cache.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let found: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let found = found.as_array().unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0]["record"]["request"]["seed"], 42);
}
