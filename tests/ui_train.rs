//! The training view in egui_kittest: start a GAN run from the GUI on a small
//! emoji folder written by the test, watch the loss plot and the sample grid
//! fill in, cancel, and find the last epoch's checkpoint on disk.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failed unwrap is a failed test

mod common;

use egui_kittest::Harness;
use egui_kittest::kittest::{NodeT, Queryable};
use latent_studio::app::StudioApp;
use latent_studio::app::settings::Settings;
use latent_studio::ui::commands::{Tab, UiCommand};

/// The studio on the Train view over `models_dir` (its runs go there), `height` points tall.
fn train_view(models_dir: &std::path::Path, height: f32) -> Harness<'static, StudioApp> {
    train_view_with(models_dir, height, Settings { tab: Tab::Train, ..Settings::default() })
}

fn train_view_with(models_dir: &std::path::Path, height: f32, settings: Settings) -> Harness<'static, StudioApp> {
    let models_dir = models_dir.to_owned();
    Harness::builder()
        .with_size([1200.0, height])
        .build_eframe(move |cc| StudioApp::with_settings(&cc.egui_ctx, None, models_dir, settings).unwrap())
}

/// Steps the harness until the run in progress ends (longer runs than `step_until` allows).
fn run_to_end(h: &mut Harness<'_, StudioApp>) {
    let start = std::time::Instant::now();
    h.step();
    assert!(h.state().train.running.is_some(), "a run started");
    while h.state().train.running.is_some() {
        assert!(start.elapsed() < std::time::Duration::from_secs(240), "the run did not finish");
        h.step();
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn a_gui_training_run_updates_the_loss_plot_and_can_be_cancelled() {
    let data = tempfile::tempdir().unwrap();
    common::write_emoji_folder(data.path());
    let models = common::models_folder_with(&[]);
    let mut h = train_view(models.path(), 780.0);
    h.state_mut().train.data_dir = data.path().display().to_string();
    h.state_mut().train.epochs = 50;
    h.step();
    h.get_by_label("Start training").click();
    h.step();
    assert!(h.state().train.running.is_some(), "a run started");
    common::step_until(&mut h, "two epochs", |app| app.train.run.last.as_ref().is_some_and(|r| r.epoch >= 2));
    let run = &h.state().train.run;
    assert!(run.curve("D").len() >= 2 && run.curve("G").len() == run.curve("D").len(), "both losses are drawn");
    assert!(run.curve("D").iter().all(|p| p[1].is_finite() && p[1] > 0.0));
    assert!(run.epoch_points.contains_key("D(real) (epoch)"), "D(real) per epoch");
    assert!(run.grid.is_some(), "the sample grid is shown");
    assert!(run.seconds_left().is_some_and(|s| s > 0.0), "an estimate of the time left");
    assert!(h.query_by_label_contains("left").is_some(), "the estimate is shown");
    let folder = run.folder.clone().expect("the run's folder");
    assert!(folder.starts_with(models.path()), "runs go to the models folder: {}", folder.display());

    h.get_by_label("Cancel training").click();
    common::step_until(&mut h, "the cancel", |app| app.train.running.is_none());
    assert!(h.state().train.run.last.as_ref().is_some_and(|r| r.epoch < 50), "stopped early");
    assert!(h.state().train.paused.is_none(), "a cancelled run is not offered again");
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
    let report =
        GanEpochReport { epoch: 1, d_loss: 1.2, g_loss: 0.8, d_real: 0.6, d_fake: 0.3, seconds: 9.0, diversity: None };
    append(&progress, &LogLine::Epoch { report }).unwrap();

    let settings = Settings { tab: Tab::Train, output_dir: "/tmp/latent-studio-ui-test".into(), ..Settings::default() };
    let mut h = Harness::builder().with_size([1200.0, 780.0]).build_eframe(move |cc| {
        StudioApp::with_settings(&cc.egui_ctx, None, common::shipped_models(), settings).unwrap()
    });
    h.state_mut().apply(UiCommand::WatchGanRun(Some(run.path().to_owned())));
    common::step_until(&mut h, "the first epoch", |app| app.train.run.grid.is_some());
    assert_eq!(h.state().train.run.curve("D").len(), 2);
    assert!(h.state().train.running.is_some(), "still watching: the run is not done");

    append(&progress, &batch(2, 1)).unwrap();
    common::step_until(&mut h, "the new batch", |app| app.train.run.curve("D").len() == 3);
    append(&progress, &LogLine::Done { epochs: 2 }).unwrap();
    common::step_until(&mut h, "the end of the run", |app| app.train.running.is_none());

    // A folder without a run gets a clear error, not a hang.
    let empty = tempfile::tempdir().unwrap();
    h.state_mut().apply(UiCommand::WatchGanRun(Some(empty.path().to_owned())));
    common::step_until(&mut h, "the refusal", |app| app.train.running.is_none());
}

/// A folder dropped (here: chosen) on the Train view: a preview of exactly
/// what the model sees, the counts and classes, each skipped file with its
/// reason; a change of settings reads it again; two epochs train on it and
/// the exported model names the folder.
#[test]
fn a_folder_of_your_images_is_previewed_and_trained_on() {
    let data = tempfile::tempdir().unwrap();
    common::image_folder::mixed_folder(data.path());
    let models = common::models_folder_with(&[]);
    let mut h = train_view(models.path(), 900.0);
    h.step();
    assert!(!h.get_by_label("Start training").accesskit_node().is_disabled(), "emoji is the default data set");
    h.state_mut().apply(UiCommand::ChooseTrainingFolder(Some(data.path().to_owned())));
    common::step_until(&mut h, "the preview", |app| app.train.preview_is_current());
    h.get_by_label("14 training images, 1 held out; classes: cats, dogs; 4 files skipped");
    h.get_by_label_contains("tiny.png: too small: 4×4 for a side of 32");
    h.get_by_label_contains("huge.png: too large to read safely");
    let preview = h.state().train.preview.as_ref().unwrap();
    assert_eq!(
        preview.result.as_ref().unwrap().grid.dimensions(),
        (8 * 33 + 1, 2 * 33 + 1),
        "14 images, 8 a row, 1 px apart"
    );

    // Grey, with mirrored copies: read again.
    h.get_by_label("Grey").click();
    h.get_by_label("Mirrored copies").click();
    h.step();
    common::step_until(&mut h, "the new preview", |app| {
        app.train.preview_is_current() && app.train.folder_spec.channels == 1 && app.train.folder_spec.flip
    });
    h.get_by_label("28 training images, 1 held out; classes: cats, dogs; 4 files skipped");

    h.state_mut().train.epochs = 2;
    h.get_by_label("Start training").click();
    h.step();
    common::step_until(&mut h, "two epochs", |app| app.train.running.is_none());
    let folder = h.state().train.run.folder.clone().expect("the run's folder");
    let manifest = std::fs::read_to_string(folder.join("manifest.json")).expect("the exported model");
    assert!(manifest.contains("the user's images in") && manifest.contains("grey"), "{manifest}");
    assert_eq!(h.state().train.run.last.as_ref().map(|r| r.epoch), Some(2));
}

/// A VAE trained on a folder from the Train view, paused after its first
/// epoch, survives closing the studio: the restarted studio offers the run,
/// Resume finishes it, and the model joins the Latent view's picker at once
/// and opens there with its sliders.
#[test]
fn a_paused_run_survives_a_restart_and_its_model_opens_in_the_latent_view() {
    use latent_studio::ui::train_panel::TrainFamily;
    let data = tempfile::tempdir().unwrap();
    common::image_folder::mixed_folder(data.path());
    let models = common::models_folder_with(&[]);
    let build = |settings: Settings| train_view_with(models.path(), 900.0, settings);
    let mut h = build(Settings { tab: Tab::Train, ..Settings::default() });
    h.get_by_label("VAE").click();
    h.step();
    h.state_mut().apply(UiCommand::ChooseTrainingFolder(Some(data.path().to_owned())));
    common::step_until(&mut h, "the preview", |app| app.train.preview_is_current());
    h.state_mut().train.folder_spec.side = 16;
    common::step_until(&mut h, "the 16 px preview", |app| app.train.preview_is_current());
    {
        let train = &mut h.state_mut().train;
        assert_eq!(train.family, TrainFamily::Vae);
        (train.epochs, train.latent_dim) = (40, 2);
    }
    h.get_by_label("Start training").click();
    common::step_until(&mut h, "the first epoch", |app| app.train.run.last.is_some());
    assert!(h.state().train.run.grid.is_some(), "the VAE's samples after the epoch");
    assert!(h.state().train.run.epoch_points.contains_key("KL (epoch)"), "recon and KL per epoch");
    h.get_by_label("Pause").click();
    common::step_until(&mut h, "the pause", |app| app.train.running.is_none());
    assert!(h.state().train.paused.is_some());
    h.get_by_label("Resume");

    let mut storage = common::MemoryStorage::default();
    eframe::App::save(h.state_mut(), &mut storage);
    drop(h); // the studio closes
    let mut settings: Settings = eframe::get_value(&storage, Settings::KEY).unwrap();
    let Some(paused) = &mut settings.unfinished_training else { panic!("the paused run is in the settings") };
    if let latent_studio::worker::train_plan::TrainPlan::Vae(spec) = &mut paused.plan {
        spec.epochs = 2; // finish sooner than planned (a run paused later just exports)
    }
    let mut h = build(settings);
    h.step();
    h.get_by_label("Resume").click();
    common::step_until(&mut h, "the resumed run", |app| app.train.run.folder.is_some());
    common::step_until(&mut h, "its end", |app| app.train.running.is_none());
    assert!(h.state().notices().is_empty(), "{:?}", h.state().notices().iter().map(|n| &n.text).collect::<Vec<_>>());
    assert!(h.state().train.paused.is_none(), "a finished run is not offered again");
    let folder = h.state().train.run.folder.clone().expect("the run's folder");
    let id = folder.file_name().unwrap().to_string_lossy().into_owned();
    common::step_until(&mut h, "the new model in the picker", |app| app.models().iter().any(|m| m.id == id));
    h.state_mut().apply(UiCommand::ShowTab(Tab::Latent));
    h.state_mut().apply(UiCommand::SelectModel(id.clone()));
    common::step_until(&mut h, "the model in the Latent view", |app| {
        app.panel.model.as_ref().is_some_and(|m| m.manifest.id == id) && app.panel.image.is_some()
    });
    assert_eq!(h.state().panel.latent.len(), 2, "a slider per latent dimension");
}

/// The latent diffusion model from the Train view on a captioned folder:
/// the autoencoder stage, then the U-Net stage, each with its curves; the
/// finished model is in the Image view's picker at once.
#[test]
fn a_diffusion_model_trained_in_the_train_view_joins_the_image_picker() {
    let data = tempfile::tempdir().unwrap();
    common::image_folder::mixed_folder(data.path());
    let models = common::models_folder_with(&[]);
    let mut h = train_view(models.path(), 900.0);
    h.get_by_label("Latent diffusion").click();
    h.step();
    h.get_by_label("Network width");
    h.state_mut().apply(UiCommand::ChooseTrainingFolder(Some(data.path().to_owned())));
    h.state_mut().train.folder_spec.side = 16;
    common::step_until(&mut h, "the preview", |app| app.train.preview_is_current());
    {
        let train = &mut h.state_mut().train;
        (train.autoencoder_epochs, train.epochs, train.diffusion_width) = (1, 1, 32);
    }
    h.get_by_label("Start training").click();
    run_to_end(&mut h);
    let notices: Vec<_> = h.state().notices().iter().map(|n| n.text.clone()).collect();
    assert!(notices.iter().all(|n| !n.contains("failed")), "{notices:?}");
    let run = &h.state().train.run;
    assert!(!run.curve("autoencoder loss").is_empty() && !run.curve("U-Net loss").is_empty(), "both stages plotted");
    assert!(run.epoch_points.contains_key("U-Net noise loss (epoch)"));
    let id = run.folder.as_ref().unwrap().file_name().unwrap().to_string_lossy().into_owned();
    common::step_until(&mut h, "the model in the Image view's picker", |app| {
        app.image_models().iter().any(|m| m.id == id)
    });
}

/// The character GPT from the Train view on a text file: held-out nats per
/// evaluation, a text sample after each, and the model among the text models.
#[test]
fn a_character_gpt_trained_in_the_train_view_shows_samples_and_joins_the_text_models() {
    use latent_studio::io::manifest::Family;
    let data = tempfile::tempdir().unwrap();
    let text = data.path().join("verse.txt");
    std::fs::write(&text, "the cat sat on the mat and the dog sat on the log\n".repeat(40)).unwrap();
    let models = common::models_folder_with(&[]);
    let mut h = train_view(models.path(), 900.0);
    h.get_by_label("Character GPT").click();
    h.step();
    h.state_mut().train.text_path = text.display().to_string();
    {
        let train = &mut h.state_mut().train;
        (train.steps, train.gpt_layers, train.gpt_width, train.gpt_context) = (200, 1, 16, 16); // two evaluations
    }
    h.step(); // the settings grid changed with the family: let it settle before clicking
    h.step();
    h.get_by_label("Start training").click();
    run_to_end(&mut h);
    let notices: Vec<_> = h.state().notices().iter().map(|n| n.text.clone()).collect();
    let run = &h.state().train.run;
    assert_eq!(run.epoch_points.get("held-out (epoch)").map(Vec::len), Some(2), "{notices:?}");
    assert!(run.text.as_ref().is_some_and(|t| t.chars().count() > 100), "a text sample: {:?}", run.text);
    h.get_by_label_contains("Sample after the latest evaluation");
    let id = run.folder.as_ref().unwrap().file_name().unwrap().to_string_lossy().into_owned();
    common::step_until(&mut h, "the model among the text models", |app| {
        app.models().iter().any(|m| m.id == id && m.family == Family::Text)
    });
}
