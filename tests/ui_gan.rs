//! The latent panel with a GAN in egui_kittest: principal-direction sliders
//! move the image, truncation ψ shows, and the encoder buttons are disabled.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failed unwrap is a failed test

mod common;

use egui::accesskit::Role;
use egui_kittest::Harness;
use egui_kittest::kittest::{NodeT, Queryable};
use latent_studio::app::StudioApp;
use latent_studio::app::settings::Settings;
use latent_studio::gan::directions::principal_directions;
use latent_studio::io::directions::write_directions;
use latent_studio::latent::model::LatentModel;

fn idle(app: &StudioApp) -> bool {
    app.panel.image.is_some() && !app.panel.strip.is_empty() && app.jobs().active().next().is_none()
}

#[test]
fn moving_direction_1_changes_the_image() {
    let dir = tempfile::tempdir().unwrap();
    let model = common::write_tiny_gan(dir.path());
    let found = principal_directions(model.generator(), model.latent_dim(), 3, 400, 7).unwrap();
    write_directions(&dir.path().join("tiny-gan"), &found).unwrap();
    let settings = Settings {
        output_dir: "/tmp/latent-studio-ui-test".into(),
        last_model: Some("tiny-gan".into()),
        ..Settings::default()
    };
    let models = dir.path().to_owned();
    let mut h = Harness::builder()
        .with_size([1200.0, 780.0])
        .build_eframe(move |cc| StudioApp::with_settings(&cc.egui_ctx, None, models, settings).unwrap());
    common::step_until(&mut h, "the first decode", idle);
    assert_eq!(h.state().panel.model.as_ref().unwrap().directions.len(), 3);
    assert!(h.get_by_label("Encode image…").accesskit_node().is_disabled(), "a GAN has no encoder");
    h.get_by_role_and_label(Role::Slider, "Truncation ψ");

    let before_latent = h.state().panel.latent.clone();
    let before_tex = h.state().panel.image.as_ref().map(|t| t.id());
    let before_image = model.decode(&[h.state().panel.current_latent()]).unwrap();
    h.get_by_role_and_label(Role::Slider, "direction 1").set_value_accesskit(2.0);
    h.step();
    let after_latent = h.state().panel.latent.clone();
    // The latent moved along direction 1 only: to coordinate 2.0 on it.
    let u = &found.vectors[0];
    let along: f32 = after_latent.iter().zip(u).map(|(z, u)| z * u).sum();
    assert!((along - 2.0).abs() < 1e-4, "coordinate on direction 1 is {along}");
    for v in &found.vectors[1..] {
        let moved: f32 = after_latent.iter().zip(&before_latent).zip(v).map(|((a, b), v)| (a - b) * v).sum();
        assert!(moved.abs() < 1e-4, "other directions stay put");
    }
    common::step_until(&mut h, "the new decode", |app| {
        idle(app) && app.panel.image.as_ref().map(|t| t.id()) != before_tex
    });
    let after_image = model.decode(&[h.state().panel.current_latent()]).unwrap();
    assert_ne!(before_image, after_image, "the decoded image changed");
}

#[test]
fn clicking_a_grid_sample_opens_its_seed() {
    let dir = tempfile::tempdir().unwrap();
    common::write_tiny_gan(dir.path());
    let settings = Settings {
        output_dir: "/tmp/latent-studio-ui-test".into(),
        last_model: Some("tiny-gan".into()),
        ..Settings::default()
    };
    let models = dir.path().to_owned();
    let mut h = Harness::builder()
        .with_size([1200.0, 1400.0])
        .build_eframe(move |cc| StudioApp::with_settings(&cc.egui_ctx, None, models, settings).unwrap());
    common::step_until(&mut h, "the grid", |app| idle(app) && app.panel.grid.len() == 16);
    let first = h.state().panel.grid_seed;
    h.get_all_by_label("Open this seed in the sliders").nth(3).expect("a fourth sample").click();
    h.step();
    assert_eq!(h.state().panel.seed, first + 3);
    assert_eq!(h.state().panel.latent, latent_studio::latent::interpolate::seeded_latent(first + 3, 4));
}
