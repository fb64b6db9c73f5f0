//! The model library in egui_kittest: an A1111-layout folder (a checkpoint
//! and a LoRA) is listed off the UI thread; picking the checkpoint and the
//! LoRA in the image view and generating gives a PNG that names the LoRA
//! with its hash, as A1111 writes it; dropping another tool's PNG restores
//! the checkpoint and LoRA from the library and says what is missing.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failed unwrap is a failed test

mod common;

use candle_core::Device;
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use latent_studio::app::StudioApp;
use latent_studio::app::settings::Settings;
use latent_studio::diffusion::DiffusionNets;
use latent_studio::diffusion::lora::random::{LoraLayout, RandomLora, write_random_lora};
use latent_studio::diffusion::random_weights::{RandomModel, write_random_model};
use latent_studio::io::image_record::read_image_record;
use latent_studio::io::png_meta::encode_png;
use latent_studio::ui::commands::Tab;
use latent_studio::worker::ImageModelRef;

/// A file dropped on the window, as the windowing integration hands it over.
#[derive(Debug)]
struct DroppedPng(std::path::PathBuf);

impl egui::DroppedFile for DroppedPng {
    fn path(&self) -> &std::path::Path {
        &self.0
    }

    fn bytes(&self) -> Result<Vec<u8>, String> {
        std::fs::read(&self.0).map_err(|e| e.to_string())
    }
}

#[test]
fn pick_checkpoint_and_lora_from_the_library_then_restore_another_tools_png() {
    let root = tempfile::tempdir().unwrap();
    let checkpoint = root.path().join("models/Stable-diffusion/tiny-sd");
    write_random_model(&checkpoint, &RandomModel::tiny(71)).unwrap();
    let lora_dir = root.path().join("models/Lora");
    std::fs::create_dir_all(&lora_dir).unwrap();
    let nets = DiffusionNets::load(&checkpoint, &Device::Cpu).unwrap();
    let spec = RandomLora { layout: LoraLayout::Kohya, rank: 2, alpha: 1.0, convolutions: false, scale: 0.2, seed: 7 };
    write_random_lora(&nets, &spec, &lora_dir.join("glow.safetensors")).unwrap();
    std::fs::write(root.path().join("models/Stable-diffusion/old.ckpt"), b"\x80\x02}q\x00.").unwrap();

    let output = tempfile::tempdir().unwrap();
    let settings = Settings {
        tab: Tab::Image,
        output_dir: output.path().to_owned(),
        model_folders: vec![root.path().to_owned()],
        ..Settings::default()
    };
    let mut h = Harness::builder().with_size([1400.0, 900.0]).build_eframe(move |cc| {
        StudioApp::with_settings(&cc.egui_ctx, None, common::shipped_models(), settings).unwrap()
    });
    common::step_until(&mut h, "the library", |app| app.library.len() == 3);
    let lora_item = h.state().library.iter().find(|i| i.name == "glow").cloned().unwrap();
    let lora_hash = lora_item.hash.clone().expect("a LoRA hash");
    assert_eq!(lora_hash.len(), 12);

    // Pick the checkpoint in the model menu.
    h.get_by_label("Diffusion model").click();
    h.run_steps(4);
    h.get_by_label("tiny-sd (diffusers folder)").click();
    h.step();
    assert_eq!(h.state().image.model, Some(ImageModelRef::Dir(checkpoint.clone())));
    // Pick the LoRA and add it to the prompt.
    h.get_by_label("Prompt").focus();
    h.step();
    h.get_by_label("Prompt").type_text("red heart");
    h.step();
    h.get_by_label("LoRA").click();
    h.run_steps(4);
    h.get_by_label("glow").click();
    h.step();
    h.state_mut().image.lora_weight = 0.8;
    h.get_by_label("Add LoRA").click();
    h.step();
    assert_eq!(h.state().image.prompt, "red heart <lora:glow:0.8>");

    let panel = &mut h.state_mut().image;
    (panel.width, panel.height, panel.batch, panel.steps, panel.guidance, panel.seed) = (32, 32, 1, 3, 3.0, 5);
    h.run_steps(2);
    h.get_by_label("Generate").click();
    common::step_until(&mut h, "the result", |app| !app.image.results.is_empty());
    let saved = h.state().image.results[0].saved.clone().expect("saved");
    let record = read_image_record(&saved).unwrap().unwrap();
    assert_eq!(record.lora_hashes, vec![("glow".to_owned(), lora_hash.clone())]);
    let text = record.to_params().to_a1111();
    assert!(text.contains(&format!("Lora hashes: \"glow: {lora_hash}\"")), "{text}");

    // Another tool's PNG: its model and LoRA are in the library, one LoRA is not.
    let params = format!(
        "a cat <lora:glow:0.5> <lora:missing-style:1>\nNegative prompt: blurry\n\
         Steps: 3, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 4, Seed: 9, Size: 32x32, \
         Model hash: 0123456789, Model: tiny-sd, Lora hashes: \"glow: {lora_hash}, missing-style: abcdefabcdef\""
    );
    let png = encode_png(&image::RgbImage::new(8, 8), &[("parameters".to_owned(), params)]).unwrap();
    let dropped = root.path().join("from-a1111.png");
    std::fs::write(&dropped, png).unwrap();
    h.state_mut().image.model = None;
    h.input_mut().dropped_files.push(std::sync::Arc::new(DroppedPng(dropped)));
    common::step_until(&mut h, "restored settings", |app| app.image.prompt.starts_with("a cat"));
    let app = h.state();
    assert_eq!(app.image.sampler, latent_studio::spec::image::SamplerKind::DpmPp2mKarras);
    assert_eq!(app.image.model, Some(ImageModelRef::Dir(checkpoint.clone())));
    let notices: Vec<&str> = app.notices().iter().map(|n| n.text.as_str()).collect();
    assert!(notices.iter().any(|n| n.contains("LoRAs restored: glow")), "{notices:?}");
    assert!(notices.iter().any(|n| n.contains("LoRA missing-style") && !n.contains("LoRA glow")), "{notices:?}");
}
