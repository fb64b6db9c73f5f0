//! The History view in egui_kittest: outputs of several kinds are listed
//! with thumbnails, found by a search, a result's settings are reused in
//! the Image view, two results are compared side by side, a pad image opens
//! on the latent pad, and a file moved to the trash comes back with Undo.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failed unwrap is a failed test

mod common;

use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use image::RgbImage;
use latent_studio::app::StudioApp;
use latent_studio::app::settings::Settings;
use latent_studio::io::image_record::ImageRecord;
use latent_studio::io::png_meta::encode_png;
use latent_studio::spec::image::ImageRequest;
use latent_studio::spec::latent_control::{LatentRecipe, PadRecipe};
use latent_studio::ui::commands::{Tab, UiCommand};

fn write(path: &std::path::Path, prompt: &str, seed: u64, latent: Option<LatentRecipe>) {
    let record = ImageRecord {
        request: ImageRequest { width: 32, height: 32, steps: 7, ..ImageRequest::new(prompt, seed) },
        model: "emoji-ldm".into(),
        init_image: None,
        noise_origin: None,
        model_hash: None,
        lora_hashes: Vec::new(),
        latent,
        served: None,
    };
    let image = RgbImage::from_fn(32, 32, |x, y| image::Rgb([(x * 8) as u8, (y * 8) as u8, seed as u8]));
    std::fs::write(path, encode_png(&image, &record.chunks()).unwrap()).unwrap();
}

#[test]
fn search_reuse_compare_open_on_the_pad_trash_and_undo() {
    let (output, data, cache) =
        (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    // SAFETY: this test binary has one test; nothing else reads the environment concurrently.
    unsafe {
        std::env::set_var("XDG_DATA_HOME", data.path());
        std::env::set_var("XDG_CACHE_HOME", cache.path());
    }
    write(&output.path().join("image-0001.png"), "red heart", 5, None);
    write(&output.path().join("image-0002.png"), "blue star", 9, None);
    let pad = PadRecipe {
        at: (0.25, 0.75),
        ..PadRecipe::corners(["a".into(), "b".into(), "c".into(), "d".into()].map(|p: String| (p, 1)))
    };
    let recipe = LatentRecipe { pad: Some(pad), ..LatentRecipe::default() };
    write(&output.path().join("pad-0001.png"), "a", 1, Some(recipe));
    let models = common::models_folder_with(&["emoji-ldm"]);
    let settings = Settings { tab: Tab::History, output_dir: output.path().to_owned(), ..Settings::default() };
    let models_dir = models.path().to_owned();
    let mut h = Harness::builder()
        .with_size([1200.0, 800.0])
        .build_eframe(move |cc| StudioApp::with_settings(&cc.egui_ctx, None, models_dir, settings).unwrap());
    common::step_until(&mut h, "the index", |app| app.history.entries.len() == 3);
    common::step_until(&mut h, "thumbnails", |app| app.history.thumbnails.len() == 3);

    h.state_mut().history.query = "blue".into();
    h.step();
    h.step();
    h.get_by_label_contains("blue star").click();
    h.step();
    h.step();
    h.get_by_label("Reuse settings").click();
    h.step();
    assert_eq!(h.state().settings.tab, Tab::Image);
    assert_eq!((h.state().image.prompt.as_str(), h.state().image.seed, h.state().image.steps), ("blue star", 9, 7));

    // Compare: the selected blue star with the red heart, side by side.
    h.state_mut().apply(UiCommand::ShowTab(Tab::History));
    h.state_mut().history.query.clear();
    common::step_until(&mut h, "every file listed", |app| app.history.entries.len() == 3 && !app.history.refreshing);
    h.get_by_label("Compare with…").click();
    h.step();
    h.get_by_label_contains("red heart").click();
    h.step();
    h.step();
    let blue = output.path().join("image-0002.png");
    let history = &h.state().history;
    assert_eq!(
        (history.selected.as_ref(), history.compare.as_ref()),
        (Some(&output.path().join("image-0001.png")), Some(&blue))
    );
    assert!(h.query_by_label("image-0002.png").is_some(), "the compared file is shown beside the selected one");
    h.get_by_label("Stop comparing").click();
    h.step();
    assert_eq!(h.state().history.compare, None);

    h.state_mut().history.query = "pad-0001".into();
    common::step_until(&mut h, "the pad image listed", |app| app.history.entries.len() == 3 && !app.history.refreshing);
    h.get_by_label_contains("seed 1\na").click();
    h.step();
    h.step();
    h.get_by_label("Open in the latent view").click();
    h.step();
    assert!(h.state().explore_diffusion && h.state().settings.tab == Tab::Latent);
    assert_eq!(h.state().pad.pad.at, (0.25, 0.75), "the pad as the image recorded it");

    let red = output.path().join("image-0001.png");
    h.state_mut().apply(UiCommand::ShowTab(Tab::History));
    h.state_mut().apply(UiCommand::TrashHistory(red.clone()));
    common::step_until(&mut h, "the trash", |app| app.history.undo.is_some());
    assert!(!red.exists());
    assert_eq!(std::fs::read_dir(data.path().join("Trash/files")).unwrap().count(), 1);
    h.state_mut().history.query.clear();
    h.step();
    h.step();
    h.get_by_label_contains("Undo trash").click();
    common::step_until(&mut h, "the undo", |app| app.history.entries.len() == 3 && app.history.undo.is_none());
    assert!(red.exists());
}
