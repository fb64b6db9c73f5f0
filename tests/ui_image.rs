//! The image panel in egui_kittest: type a prompt, press Generate, watch the
//! live preview and progress, cancel, generate again and get a saved result
//! whose PNG carries the settings; restore settings from a PNG. Runs a tiny
//! random model written in the diffusers layout by the test.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failed unwrap is a failed test

mod common;

use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use latent_studio::app::StudioApp;
use latent_studio::app::settings::Settings;
use latent_studio::diffusion::random_weights::{RandomModel, write_random_model};
use latent_studio::io::image_record::read_image_record;
use latent_studio::ui::commands::{Tab, UiCommand};
use latent_studio::worker::ImageModelRef;

fn harness(model: &std::path::Path, output: &std::path::Path) -> Harness<'static, StudioApp> {
    let settings = Settings { tab: Tab::Image, output_dir: output.to_owned(), ..Settings::default() };
    let mut h = Harness::builder().with_size([1200.0, 780.0]).build_eframe(move |cc| {
        StudioApp::with_settings(&cc.egui_ctx, None, common::shipped_models(), settings).unwrap()
    });
    h.state_mut().apply(UiCommand::SelectImageModel(ImageModelRef::Dir(model.to_owned())));
    let panel = &mut h.state_mut().image;
    (panel.width, panel.height, panel.batch, panel.preview_every, panel.guidance) = (32, 32, 1, 1, 3.0);
    h.step();
    h
}

#[test]
fn type_generate_preview_cancel_then_a_saved_result() {
    let dir = tempfile::tempdir().unwrap();
    write_random_model(dir.path(), &RandomModel::tiny(11)).unwrap();
    let output = tempfile::tempdir().unwrap();
    let mut h = harness(dir.path(), output.path());

    h.get_by_label("Prompt").focus();
    h.step();
    h.get_by_label("Prompt").type_text("red heart");
    h.step();
    assert_eq!(h.state().image.prompt, "red heart");

    // A long run: previews arrive, then Cancel all stops it within a step.
    h.state_mut().image.steps = 150;
    h.get_by_label("Generate").click();
    h.step();
    assert_eq!(h.state().image.queue.len(), 1, "Generate queued one job");
    common::step_until(&mut h, "a preview", |app| app.image.preview.is_some());
    common::step_until(&mut h, "progress", |app| app.image.queue.first().is_some_and(|q| q.step >= 2));
    h.get_by_label("Cancel all").click();
    common::step_until(&mut h, "the cancel", |app| app.image.queue.is_empty());
    assert!(h.state().image.results.is_empty(), "a cancelled image is not a result");

    // A short run finishes, lands in the grid and on disk with its settings.
    h.state_mut().image.steps = 4;
    h.state_mut().image.seed = 42;
    h.get_by_label("Generate").click();
    common::step_until(&mut h, "the result", |app| !app.image.results.is_empty());
    let result = &h.state().image.results[0];
    let path = result.saved.clone().expect("saved");
    assert!(path.starts_with(output.path()));
    let record = read_image_record(&path).unwrap().unwrap();
    assert_eq!((record.request.prompt.as_str(), record.request.seed, record.request.steps), ("red heart", 42, 4));

    // Restoring from the PNG brings the settings back.
    h.state_mut().image.prompt = "something else".into();
    h.state_mut().image.seed = 1;
    h.state_mut().apply(UiCommand::RestoreImageSettings(path));
    common::step_until(&mut h, "restored settings", |app| app.image.prompt == "red heart");
    assert_eq!(h.state().image.seed, 42);
}
