//! Remote backends in egui_kittest, against the studio's own `serve` (a real
//! server on 127.0.0.1): add it in the Models view (URL, protocol, API key),
//! see it turn healthy with its models, pick its model in the Text view and
//! chat through it (the answer joins the conversation, its tokens with
//! the server's probabilities), pick its checkpoint in
//! the Image view and generate (saved with the server's infotext), stop the
//! server and see the backend turn unhealthy.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failed unwrap is a failed test

mod common;

use common::servers::ServeProcess;
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use latent_studio::app::StudioApp;
use latent_studio::app::settings::Settings;
use latent_studio::io::image_record::read_image_record;
use latent_studio::remote::keys::KeyStore;
use latent_studio::spec::backend::{BackendHealth, BackendKind};
use latent_studio::spec::text::SamplingParams;
use latent_studio::ui::commands::{Tab, UiCommand};
use latent_studio::worker::{ImageModelRef, TextModelRef};

fn healthy(app: &StudioApp, kind: BackendKind) -> bool {
    app.backend_views()
        .iter()
        .any(|v| v.config.kind == kind && v.health == BackendHealth::Healthy && !v.models.is_empty())
}

#[test]
fn add_a_backend_see_its_models_generate_through_it_and_see_it_fail() {
    let mut server = ServeProcess::start(&["--api-key", "ui-key"]);
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("out");
    let settings = Settings { tab: Tab::Models, output_dir: output.clone(), ..Settings::default() };
    let keys = KeyStore::at(dir.path().join("keys.json"));
    let mut h = Harness::builder().with_size([1400.0, 1000.0]).build_eframe(move |cc| {
        let mut app = StudioApp::with_settings(&cc.egui_ctx, None, common::shipped_models(), settings).unwrap();
        app.use_key_store(keys);
        app
    });
    h.step();

    // Add it as a text backend, with its key, through the form.
    h.get_by_label("Backend URL").focus();
    h.step();
    h.get_by_label("Backend URL").type_text(&server.1);
    h.get_by_label("API key").focus();
    h.step();
    h.get_by_label("API key").type_text("ui-key");
    h.step();
    h.get_by_label("Add backend").click();
    h.step();
    assert_eq!(h.state().settings.backends.len(), 1);
    let saved = std::fs::read_to_string(dir.path().join("keys.json")).unwrap();
    assert!(saved.contains("ui-key"), "the key is in the key file");
    assert!(!format!("{:?}", h.state().settings).contains("ui-key"), "and not in the settings");
    common::step_until_within(&mut h, "a healthy text backend", 90, |app| healthy(app, BackendKind::OpenAi));
    h.get_by_label_contains("healthy");
    h.get_by_label_contains("2 models");
    // The same server as an image backend.
    let image_backend = latent_studio::spec::backend::BackendConfig { kind: BackendKind::A1111, url: server.1.clone() };
    h.state_mut().apply(UiCommand::AddBackend { config: image_backend, key: None });
    common::step_until_within(&mut h, "a healthy image backend", 90, |app| healthy(app, BackendKind::A1111));

    // The Text view lists its model, marked with the backend; generate through it.
    h.state_mut().settings.tab = Tab::Text;
    h.step();
    h.get_by_label("Language model").click();
    h.run();
    let host = server.1.trim_start_matches("http://").to_owned();
    h.get_by_label(&format!("smollm2-135m-instruct @ {host}")).click();
    h.step();
    assert!(
        matches!(&h.state().text.model, Some(TextModelRef::Remote { model, .. }) if model == "smollm2-135m-instruct")
    );
    h.state_mut().text.chat = true;
    h.state_mut().text.sampling = SamplingParams::greedy();
    h.state_mut().text.max_tokens = 16;
    h.run();
    h.get_by_label("Message").focus();
    h.step();
    h.get_by_label("Message").type_text("What is the capital of France?");
    h.step();
    h.get_by_label("Send").click();
    h.step();
    assert!(h.state().text.running.is_some(), "Send started an answer");
    common::step_until_within(&mut h, "the remote answer", 90, |app| app.text.running.is_none());
    let notices: Vec<_> = h.state().notices().iter().map(|n| n.text.clone()).collect();
    let last = h.state().text.last.clone().unwrap_or_else(|| panic!("no answer: {notices:?}"));
    assert_eq!(last.served.as_ref().unwrap().backend, server.1);
    assert!(!last.text.is_empty());
    let conversation = &h.state().text.chat_view.conversation;
    assert_eq!(conversation.messages.len(), 2, "the answer joined the conversation");
    assert_eq!(conversation.messages[1].content, last.text);
    let chips = &h.state().text.output_tokens;
    assert_eq!(chips.len(), last.generated_tokens(), "a chip per token, from the server's log-probabilities");
    assert!(chips.iter().all(|t| t.id.is_none() && t.probability.is_some_and(|p| p > 0.0 && p <= 1.0)));
    assert!(h.state().backend_views().iter().any(|v| v.done == 1), "the backend counts the job");

    // The Image view lists its checkpoint; generate through it, saved like a local image.
    h.state_mut().settings.tab = Tab::Image;
    h.step();
    h.state_mut().apply(UiCommand::SelectImageModel(ImageModelRef::Remote { model: "emoji-ldm".into() }));
    h.state_mut().image.prompt = "a smiling face".into();
    h.state_mut().image.steps = 4;
    let panel = &mut h.state_mut().image;
    (panel.width, panel.height, panel.batch, panel.guidance) = (32, 32, 1, 3.0);
    h.run();
    h.get_by_label("Generate").click();
    common::step_until_within(&mut h, "the remote image", 90, |app| {
        !app.image.results.is_empty() || app.image.queue.is_empty() && !app.notices().is_empty()
    });
    let path = h.state().image.results.first().map(|r| r.saved.clone()).expect("a result").expect("saved");
    let record = read_image_record(&path).unwrap().unwrap();
    assert_eq!(record.served.unwrap().backend, server.1);
    assert_eq!(record.request.prompt, "a smiling face");

    // Stop the server: the backends turn unhealthy, their models leave the pickers.
    server.0.kill().unwrap();
    let _ = server.0.wait();
    h.state_mut().settings.tab = Tab::Models;
    // Health checks of healthy backends come every 15 s.
    common::step_until_within(&mut h, "unhealthy backends", 60, |app| {
        app.backend_views().iter().all(|v| matches!(v.health, BackendHealth::Paused { .. }))
    });
    assert_eq!(h.get_all_by_label_contains("unhealthy").count(), 2, "both rows say so");
    let remote = latent_studio::ui::backends_view::remote_models(h.state().backend_views(), BackendKind::OpenAi);
    assert!(remote.is_empty(), "an unhealthy backend's models leave the pickers");
}
