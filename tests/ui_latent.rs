//! The real studio app in egui_kittest: drive the latent panel by label and
//! role, and render it through wgpu (lavapipe on machines without a GPU).
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failed unwrap is a failed test

mod common;

use egui::accesskit::Role;
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use latent_studio::app::StudioApp;
use latent_studio::app::settings::Settings;
use latent_studio::latent::interpolate::Interpolation;

fn settings() -> Settings {
    Settings {
        // A fixed path: the top bar shows it, so it is part of the snapshot.
        output_dir: "/tmp/latent-studio-ui-test".into(),
        last_model: Some("digits-2d".into()),
        method: Interpolation::Slerp,
        frames: 8,
        save_scale: 1,
        ..Settings::default()
    }
}

fn harness() -> Harness<'static, StudioApp> {
    Harness::builder().with_size([1200.0, 780.0]).wgpu().build_eframe(|cc| {
        StudioApp::with_settings(&cc.egui_ctx, cc.wgpu_render_state.as_ref(), common::shipped_models(), settings())
            .unwrap()
    })
}

fn idle(app: &StudioApp) -> bool {
    app.panel.image.is_some() && !app.panel.strip.is_empty() && app.jobs().active().next().is_none()
}

#[test]
fn moving_a_latent_slider_changes_the_image() {
    let mut h = harness();
    common::step_until(&mut h, "the first decode", idle);
    // Merely showing the sliders must not edit the seeded latent.
    assert_eq!(h.state().panel.latent, latent_studio::latent::interpolate::seeded_latent(0, 2));
    let before_tex = h.state().panel.image.as_ref().map(|t| t.id());
    let before_px = h.render().expect("render");
    let slider = h.get_by_role_and_label(Role::Slider, "z1");
    slider.set_value_accesskit(2.5);
    h.step();
    assert!((h.state().panel.latent[0] - 2.5).abs() < 1e-6, "slider did not move the latent");
    common::step_until(&mut h, "the new decode", |app| {
        idle(app) && app.panel.image.as_ref().map(|t| t.id()) != before_tex
    });
    let after_px = h.render().expect("render");
    // Compare the image area only (the slider's own pixels change too).
    let image_rect = h.get_by_label("The decoded latent; drop an image file to encode it").rect();
    let ppp = 1.0;
    let differs = (image_rect.top() as u32..image_rect.bottom() as u32)
        .flat_map(|y| (image_rect.left() as u32..image_rect.right() as u32).map(move |x| (x, y)))
        .filter(|&(x, y)| {
            let (x, y) = ((x as f32 * ppp) as u32, (y as f32 * ppp) as u32);
            before_px.get_pixel(x, y) != after_px.get_pixel(x, y)
        })
        .count();
    assert!(differs > 500, "only {differs} pixels of the image changed");
}

#[test]
fn latent_panel_snapshot() {
    let mut h = harness();
    common::step_until(&mut h, "the first decode", idle);
    h.state_mut().panel.animate = false; // a still frame for a stable snapshot
    h.step();
    h.snapshot("latent_panel");
}

#[test]
fn randomise_shows_a_new_seed_and_decodes_it() {
    let mut h = harness();
    common::step_until(&mut h, "the first decode", idle);
    let seed = h.state().panel.seed;
    let before = h.state().panel.image.as_ref().map(|t| t.id());
    h.get_by_label("Randomise").click();
    h.step();
    let new_seed = h.state().panel.seed;
    assert_ne!(seed, new_seed);
    let expected = latent_studio::latent::interpolate::seeded_latent(new_seed, 2);
    assert_eq!(h.state().panel.latent, expected);
    common::step_until(&mut h, "the new seed's decode", |app| {
        idle(app) && app.panel.image.as_ref().map(|t| t.id()) != before
    });
}

/// A file dropped by the test, as the windowing integration would hand it over.
#[derive(Debug)]
struct Dropped(std::path::PathBuf);

impl egui::DroppedFile for Dropped {
    fn path(&self) -> &std::path::Path {
        &self.0
    }
    fn bytes(&self) -> Result<Vec<u8>, String> {
        std::fs::read(&self.0).map_err(|e| e.to_string())
    }
}

fn drop_file(h: &mut Harness<'_, StudioApp>, path: &std::path::Path, at: egui::Pos2) {
    h.hover_at(at);
    h.step();
    h.input_mut().dropped_files.push(std::sync::Arc::new(Dropped(path.to_owned())));
    h.step();
}

#[test]
fn dropped_images_are_encoded_into_the_slot_under_the_pointer() {
    let dir = tempfile::tempdir().unwrap();
    let digit = dir.path().join("digit.png");
    // A "1" from the top-left of the digits map.
    let img = {
        let manifest = latent_studio::library::find_manifest(&common::shipped_models(), "digits-2d").unwrap();
        let model = latent_studio::library::load_latent_model(manifest, &candle_core::Device::Cpu).unwrap();
        model.decode(&[vec![-2.0, 2.0]]).unwrap().remove(0)
    };
    img.save(&digit).unwrap();
    let mut h = harness();
    common::step_until(&mut h, "the first decode", idle);

    let zone_a = h.state().panel.drop_zones.iter().find(|(_, s)| *s == latent_studio::ui::commands::Slot::A).unwrap().0;
    drop_file(&mut h, &digit, zone_a.center());
    common::step_until(&mut h, "encoding into A", |app| app.panel.endpoints[0].label == "digit.png" && idle(app));
    let a = h.state().panel.endpoints[0].latent.clone();
    assert!((a[0] + 2.0).abs() < 1.0 && (a[1] - 2.0).abs() < 1.0, "encoded to {a:?}");

    drop_file(&mut h, &digit, egui::pos2(400.0, 150.0)); // over the image: the current latent
    common::step_until(&mut h, "encoding into the current latent", |app| {
        matches!(app.panel.origin, latent_studio::ui::latent_panel::Origin::Encoded(_)) && idle(app)
    });
    assert_eq!(h.state().panel.latent, a);

    let text = dir.path().join("notes.png");
    std::fs::write(&text, "not an image").unwrap();
    drop_file(&mut h, &text, egui::pos2(400.0, 150.0));
    common::step_until(&mut h, "the failure notice", |app| app.notices().iter().any(|n| n.error));
    let notice = h.state().notices().iter().find(|n| n.error).unwrap().text.clone();
    assert!(notice.contains("notes.png"), "{notice}");
}

#[test]
fn settings_persist_the_last_model_and_output_folder() {
    let mut h = harness();
    common::step_until(&mut h, "the first decode", idle);
    h.state_mut().apply(latent_studio::ui::commands::UiCommand::SelectModel("fashion-16d".into()));
    h.state_mut().settings.output_dir = "/tmp/elsewhere".into();
    common::step_until(&mut h, "the second model", |app| app.panel.latent.len() == 16 && idle(app));
    let mut storage = common::MemoryStorage::default();
    eframe::App::save(h.state_mut(), &mut storage);
    let restored: Settings = eframe::get_value(&storage, Settings::KEY).unwrap();
    assert_eq!(restored.last_model.as_deref(), Some("fashion-16d"));
    assert_eq!(restored.output_dir, std::path::PathBuf::from("/tmp/elsewhere"));
    // A restart with those settings opens that model.
    let mut h2 = Harness::builder().with_size([1200.0, 780.0]).build_eframe(|cc| {
        StudioApp::with_settings(&cc.egui_ctx, None, common::shipped_models(), restored.clone()).unwrap()
    });
    common::step_until(&mut h2, "the restored model", |app| app.panel.latent.len() == 16);
    // 16 sliders, one per latent dimension.
    assert!(h2.query_by_role_and_label(Role::Slider, "z16").is_some());
}
