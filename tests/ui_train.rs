//! The training view in egui_kittest: start a GAN run from the GUI on a small
//! emoji folder written by the test, watch the loss plot and the sample grid
//! fill in, cancel, and find the last epoch's checkpoint on disk.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failed unwrap is a failed test

mod common;

use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use latent_studio::app::StudioApp;
use latent_studio::app::settings::Settings;
use latent_studio::ui::commands::Tab;

#[test]
fn a_gui_training_run_updates_the_loss_plot_and_can_be_cancelled() {
    let data = tempfile::tempdir().unwrap();
    common::write_emoji_folder(data.path());
    let output = tempfile::tempdir().unwrap();
    let settings = Settings { tab: Tab::Train, output_dir: output.path().to_owned(), ..Settings::default() };
    let mut h = Harness::builder().with_size([1200.0, 780.0]).build_eframe(move |cc| {
        StudioApp::with_settings(&cc.egui_ctx, None, common::shipped_models(), settings).unwrap()
    });
    h.state_mut().train.data_dir = data.path().display().to_string();
    h.state_mut().train.epochs = 50;
    h.step();
    h.get_by_label("Start training").click();
    h.step();
    assert!(h.state().train.running.is_some(), "a run started");
    common::step_until(&mut h, "two epochs", |app| app.train.last.as_ref().is_some_and(|r| r.epoch >= 2));
    let train = &h.state().train;
    assert!(train.d_losses.len() >= 2 && train.g_losses.len() == train.d_losses.len(), "one point per batch");
    assert!(train.d_losses.iter().all(|p| p[1].is_finite() && p[1] > 0.0));
    assert!(train.grid.is_some(), "the sample grid is shown");
    let folder = train.folder.clone().expect("the run's folder");

    h.get_by_label("Cancel training").click();
    common::step_until(&mut h, "the cancel", |app| app.train.running.is_none());
    assert!(h.state().train.last.as_ref().is_some_and(|r| r.epoch < 50), "stopped early");
    assert!(folder.join("checkpoint").join("state.json").exists(), "the last epoch's checkpoint is kept");
}

/// A run of `latent-studio train gan` writes `progress/losses.jsonl` and the
/// epoch grids; "Watch a run…" follows them as they grow.
#[test]
fn watching_a_command_line_run_follows_its_log() {
    use latent_studio::gan::train::GanEpochReport;
    use latent_studio::train::log::{LogLine, append, grid_path};
    use latent_studio::ui::commands::UiCommand;
    let run = tempfile::tempdir().unwrap();
    let progress = run.path().join("progress");
    std::fs::create_dir_all(&progress).unwrap();
    let batch = |epoch, batch| LogLine::Batch { epoch, batch, batches: 2, d_loss: 1.2, g_loss: 0.8 };
    append(&progress, &batch(1, 1)).unwrap();
    append(&progress, &batch(1, 2)).unwrap();
    image::RgbImage::from_pixel(10, 10, image::Rgb([200, 10, 10])).save(grid_path(&progress, 1)).unwrap();
    let report = GanEpochReport { epoch: 1, d_loss: 1.2, g_loss: 0.8, d_real: 0.6, d_fake: 0.3, seconds: 9.0 };
    append(&progress, &LogLine::Epoch { report }).unwrap();

    let settings = Settings { tab: Tab::Train, output_dir: "/tmp/latent-studio-ui-test".into(), ..Settings::default() };
    let mut h = Harness::builder().with_size([1200.0, 780.0]).build_eframe(move |cc| {
        StudioApp::with_settings(&cc.egui_ctx, None, common::shipped_models(), settings).unwrap()
    });
    h.state_mut().apply(UiCommand::WatchGanRun(Some(run.path().to_owned())));
    common::step_until(&mut h, "the first epoch", |app| app.train.grid.is_some());
    assert_eq!(h.state().train.d_losses.len(), 2);
    assert!(h.state().train.running.is_some(), "still watching: the run is not done");

    append(&progress, &batch(2, 1)).unwrap();
    common::step_until(&mut h, "the new batch", |app| app.train.d_losses.len() == 3);
    append(&progress, &LogLine::Done { epochs: 2 }).unwrap();
    common::step_until(&mut h, "the end of the run", |app| app.train.running.is_none());

    // A folder without a run gets a clear error, not a hang.
    let empty = tempfile::tempdir().unwrap();
    h.state_mut().apply(UiCommand::WatchGanRun(Some(empty.path().to_owned())));
    common::step_until(&mut h, "the refusal", |app| app.train.running.is_none());
}
