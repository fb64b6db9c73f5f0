//! The real studio app in egui_kittest: drive the latent panel by label and
//! role, and render it through wgpu (lavapipe on machines without a GPU).

mod common;

use std::time::{Duration, Instant};

use egui::accesskit::Role;
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use latent_studio::app::StudioApp;
use latent_studio::app::settings::Settings;
use latent_studio::pipelines::latent::Interpolation;

fn settings() -> Settings {
    Settings {
        output_dir: std::env::temp_dir().join("latent-studio-ui-test"),
        last_model: Some("digits-2d".into()),
        method: Interpolation::Slerp,
        frames: 8,
        save_scale: 1,
    }
}

fn harness() -> Harness<'static, StudioApp> {
    Harness::builder()
        .with_size([1200.0, 780.0])
        .wgpu()
        .build_eframe(|cc| {
            StudioApp::with_settings(
                &cc.egui_ctx,
                cc.wgpu_render_state.as_ref(),
                common::shipped_models(),
                settings(),
            )
            .unwrap()
        })
}

/// Steps the UI until `done` holds or a timeout passes.
fn step_until(h: &mut Harness<'_, StudioApp>, what: &str, done: impl Fn(&StudioApp) -> bool) {
    let start = Instant::now();
    while !done(h.state()) {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "timed out waiting for {what}"
        );
        h.step();
        std::thread::sleep(Duration::from_millis(5));
    }
    h.step();
}

fn idle(app: &StudioApp) -> bool {
    app.panel.image.is_some() && !app.panel.strip.is_empty() && app.jobs().active().next().is_none()
}

#[test]
fn moving_a_latent_slider_changes_the_image() {
    let mut h = harness();
    step_until(&mut h, "the first decode", idle);
    // Merely showing the sliders must not edit the seeded latent.
    assert_eq!(
        h.state().panel.latent,
        latent_studio::pipelines::latent::seeded_latent(0, 2)
    );
    let before_tex = h.state().panel.image.as_ref().map(|t| t.id());
    let before_px = h.render().expect("render");
    let slider = h.get_by_role_and_label(Role::Slider, "z1");
    slider.set_value_accesskit(2.5);
    h.step();
    assert!(
        (h.state().panel.latent[0] - 2.5).abs() < 1e-6,
        "slider did not move the latent"
    );
    step_until(&mut h, "the new decode", |app| {
        idle(app) && app.panel.image.as_ref().map(|t| t.id()) != before_tex
    });
    let after_px = h.render().expect("render");
    // Compare the image area only (the slider's own pixels change too).
    let image_rect = h
        .get_by_label("The decoded latent; drop an image file to encode it")
        .rect();
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
    step_until(&mut h, "the first decode", idle);
    h.state_mut().panel.animate = false; // a still frame for a stable snapshot
    h.step();
    h.snapshot("latent_panel");
}

#[test]
fn randomise_shows_a_new_seed_and_decodes_it() {
    let mut h = harness();
    step_until(&mut h, "the first decode", idle);
    let seed = h.state().panel.seed;
    h.get_by_label("Randomise").click();
    h.step();
    let new_seed = h.state().panel.seed;
    assert_ne!(seed, new_seed);
    let expected = latent_studio::pipelines::latent::seeded_latent(new_seed, 2);
    assert_eq!(h.state().panel.latent, expected);
}
