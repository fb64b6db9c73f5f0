//! The text panel in egui_kittest: type a prompt, press Generate, watch the
//! text stream in, press Stop. Runs a tiny random llama model written as GGUF
//! by the test (SmolLM2 itself is checked in tests/text_smollm2.rs).
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failed unwrap is a failed test

mod common;

use egui_kittest::Harness;
use egui_kittest::kittest::{NodeT, Queryable};
use latent_studio::app::StudioApp;
use latent_studio::app::settings::Settings;
use latent_studio::text::generate::StopReason;
use latent_studio::ui::commands::{Tab, UiCommand};
use latent_studio::worker::TextModelRef;

fn harness(model: &std::path::Path) -> Harness<'static, StudioApp> {
    let settings = Settings { tab: Tab::Text, output_dir: "/tmp/latent-studio-ui-test".into(), ..Settings::default() };
    // A random model writes arbitrary bytes, which no font covers: tofu is expected here.
    let mut h = Harness::builder().with_size([1200.0, 780.0]).allow_missing_glyphs().build_eframe(move |cc| {
        StudioApp::with_settings(&cc.egui_ctx, None, common::shipped_models(), settings).unwrap()
    });
    h.state_mut().text.model = Some(TextModelRef::File(model.to_owned()));
    h.state_mut().text.max_tokens = 2048;
    h.state_mut().text.chat = false;
    h.step();
    h
}

#[test]
fn type_a_prompt_generate_see_streamed_text_and_stop() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tiny.gguf");
    common::write_tiny_llama_gguf(&path, 4096, "llama");
    let mut h = harness(&path);

    h.get_by_label("Prompt").focus();
    h.step();
    h.get_by_label("Prompt").type_text("abab");
    h.step();
    assert_eq!(h.state().text.prompt, "abab");

    h.get_by_label("Generate").click();
    h.step();
    assert!(h.state().text.running.is_some(), "Generate started a job");
    common::step_until(&mut h, "streamed tokens", |app| app.text.output_tokens.len() >= 5);
    assert!(h.state().text.running.is_some(), "still generating (2048 tokens allowed)");
    assert_eq!(h.state().text.prompt_tokens.len(), 2, "the prompt shows as tokens: ab ab");

    h.get_by_label("Stop").click();
    common::step_until(&mut h, "the stop", |app| app.text.running.is_none());
    let last = h.state().text.last.clone().expect("a finished generation");
    assert_eq!(last.stop, StopReason::Cancelled);
    assert_eq!(h.state().text.output, last.text, "the panel shows the generated text");
    assert!(last.ids.len() >= 5 && last.ids.len() < 2048);
    // The token view lists every generated token.
    assert_eq!(h.state().text.output_tokens.len(), last.ids.len());
}

/// Chat mode follows the model: the character model has no chat template, so
/// its Chat box is off and disabled; SmolLM2's is on.
#[test]
fn chat_mode_follows_the_model() {
    let settings = Settings { tab: Tab::Text, output_dir: "/tmp/latent-studio-ui-test".into(), ..Settings::default() };
    assert!(settings.chat, "the stored default is chat on");
    let mut h = Harness::builder().with_size([1200.0, 780.0]).build_eframe(move |cc| {
        StudioApp::with_settings(&cc.egui_ctx, None, common::shipped_models(), settings).unwrap()
    });
    h.step();
    let id = |app: &StudioApp| match &app.text.model {
        Some(TextModelRef::Id(id)) => id.clone(),
        other => panic!("a shipped model is selected, not {other:?}"),
    };
    assert_eq!(id(h.state()), "shakespeare-char", "the first text model");
    assert!(!h.state().text.chat, "no chat template, no chat mode");
    assert!(h.get_by_label("Chat").accesskit_node().is_disabled());

    h.state_mut().apply(UiCommand::SelectTextModel(TextModelRef::Id("smollm2-135m-instruct".into())));
    h.step();
    assert!(h.state().text.chat);
    assert!(!h.get_by_label("Chat").accesskit_node().is_disabled());

    h.state_mut().apply(UiCommand::SelectTextModel(TextModelRef::Id("shakespeare-char".into())));
    h.step();
    assert!(!h.state().text.chat);
}
