//! The latent pad in egui_kittest on the shipped emoji-ldm: switch the
//! Latent view to the pad, see a render, drag the cursor and see the image
//! change, add a concept slider and move it, save, and restore the pad from
//! the saved PNG; make a travel GIF from two keyframes taken off the pad.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failed unwrap is a failed test

mod common;

use egui_kittest::Harness;
use egui_kittest::kittest::{NodeT, Queryable};
use latent_studio::app::StudioApp;
use latent_studio::app::settings::Settings;
use latent_studio::io::image_record::read_image_record;
use latent_studio::ui::commands::{Tab, UiCommand};
use latent_studio::worker::ImageModelRef;

/// The lead point and cursor of the shown render, once it is done.
fn shown(app: &StudioApp) -> Option<(String, (f64, f64))> {
    let (_, record, _) = app.pad.image.as_ref()?;
    let at = record.latent.as_ref()?.pad.as_ref()?.at;
    (app.pad.in_flight.is_none()).then(|| (record.request.prompt.clone(), at))
}

#[test]
fn drag_the_pad_move_a_slider_save_and_restore() {
    let models = common::models_folder_with(&["emoji-ldm"]);
    let output = tempfile::tempdir().unwrap();
    let settings = Settings { tab: Tab::Latent, output_dir: output.path().to_owned(), ..Settings::default() };
    let models_dir = models.path().to_owned();
    let mut h = Harness::builder()
        .with_size([1200.0, 900.0])
        .build_eframe(move |cc| StudioApp::with_settings(&cc.egui_ctx, None, models_dir, settings).unwrap());
    h.step();
    h.get_by_label("Diffusion: latent pad").click();
    h.step();
    assert!(h.state().explore_diffusion);
    assert_eq!(h.state().pad.model, Some(ImageModelRef::Id("emoji-ldm".into())), "the first diffusion model");
    common::step_until(&mut h, "the first render", |app| shown(app).is_some());
    assert_eq!(shown(h.state()).unwrap().1, (0.5, 0.5));

    // Drag from the middle of the pad towards its top-left corner (the first point).
    let pad = h.get_by_label("cursor 0.50, 0.50").rect();
    let square = egui::Rect::from_min_size(pad.min - egui::vec2(0.0, 260.0 + 4.0), egui::vec2(260.0, 260.0));
    let (from, to) = (square.center(), square.min + egui::vec2(20.0, 20.0));
    h.drag_at(from);
    h.step();
    for i in 1..=6 {
        h.hover_at(from + (to - from) * (i as f32 / 6.0));
        h.step();
    }
    h.drop_at(to);
    h.step();
    let at = h.state().pad.pad.at;
    assert!(at.0 < 0.2 && at.1 < 0.2, "the cursor followed the drag: {at:?}");
    common::step_until(&mut h, "the render of the newest position", |app| {
        shown(app).is_some_and(|(_, shown_at)| shown_at == app.pad.pad.at)
    });
    assert_eq!(shown(h.state()).unwrap().0, "red heart", "the nearest point leads");

    // A concept slider: added at 0 (no change), then moved.
    h.get_by_label("Add concept slider").click();
    h.step();
    h.step();
    h.state_mut().pad.concepts[0].value = 0.8; // as the slider's drag would
    h.step();
    common::step_until(&mut h, "the slider's render", |app| {
        app.pad.image.as_ref().is_some_and(|(_, r, _)| {
            app.pad.in_flight.is_none()
                && r.latent.as_ref().is_some_and(|l| l.concepts.first().is_some_and(|c| c.value == 0.8))
        })
    });

    // Save, then move away and restore the pad from the PNG.
    h.get_by_label("Save image").click();
    h.step();
    common::step_until(&mut h, "the saved file", |_| std::fs::read_dir(output.path()).unwrap().count() == 1);
    let saved = std::fs::read_dir(output.path()).unwrap().next().unwrap().unwrap().path();
    let record = read_image_record(&saved).unwrap().unwrap();
    assert_eq!(record.latent.as_ref().unwrap().pad.as_ref().unwrap().at, at);
    h.state_mut().pad.pad.at = (0.9, 0.9);
    h.state_mut().pad.concepts.clear();
    h.state_mut().apply(UiCommand::RestorePad(saved));
    common::step_until(&mut h, "the restored pad", |app| app.pad.pad.at == at && app.pad.concepts.len() == 1);
}

#[test]
fn make_a_travel_gif_from_the_pad() {
    use image::AnimationDecoder;
    let models = common::models_folder_with(&["emoji-ldm"]);
    let output = tempfile::tempdir().unwrap();
    let settings = Settings { tab: Tab::Latent, output_dir: output.path().to_owned(), ..Settings::default() };
    let models_dir = models.path().to_owned();
    let mut h = Harness::builder()
        .with_size([1200.0, 1400.0])
        .build_eframe(move |cc| StudioApp::with_settings(&cc.egui_ctx, None, models_dir, settings).unwrap());
    h.step();
    h.get_by_label("Diffusion: latent pad").click();
    h.step();
    common::step_until(&mut h, "the first render", |app| shown(app).is_some());
    assert!(h.get_by_label("Make travel").accesskit_node().is_disabled(), "no keyframes yet: nothing to make");

    // Two keyframes: the pad's lead point with the cursor near each of two corners.
    h.state_mut().pad.pad.at = (0.05, 0.05);
    h.step();
    h.get_by_label("Add keyframe from the pad").click();
    h.step();
    h.state_mut().pad.pad.at = (0.95, 0.95);
    h.step();
    h.get_by_label("Add keyframe from the pad").click();
    h.step();
    let keys: Vec<(String, u64)> = h.state().pad.travel.keyframes.iter().map(|k| (k.prompt.clone(), k.seed)).collect();
    assert_eq!(keys, [("red heart".to_owned(), 1), ("yellow sun".to_owned(), 4)]);
    (h.state_mut().pad.travel.frames, h.state_mut().pad.travel.steps) = (3, 4);
    h.step();
    h.get_by_label("Make travel").click();
    h.step();
    assert!(h.state().pad.travel.job.is_some());
    common::step_until(&mut h, "the travel", |app| app.pad.travel.job.is_none());
    let travel = &h.state().pad.travel;
    assert_eq!(travel.rendered.len(), 3, "every frame came back to play");
    let saved = travel.saved.clone().expect("the GIF was written");
    assert_eq!(saved.extension().unwrap(), "gif");
    let bytes = std::fs::read(&saved).unwrap();
    let frames = image::codecs::gif::GifDecoder::new(std::io::Cursor::new(&bytes)).unwrap().into_frames();
    assert_eq!(frames.collect_frames().unwrap().len(), 3);
    let record = read_image_record(&saved).unwrap().expect("the GIF carries its recipe");
    let path = record.latent.unwrap().travel.unwrap();
    assert_eq!((path.keyframes.len(), path.frames, record.request.steps), (2, 3, 4));

    // Dropping the GIF back restores the keyframes.
    h.state_mut().pad.travel.keyframes.clear();
    h.state_mut().apply(UiCommand::RestorePad(saved));
    common::step_until(&mut h, "the restored travel", |app| app.pad.travel.keyframes.len() == 2);
}
