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

/// A conversation in the Text view with SmolLM2: three turns typed and sent,
/// the last answer regenerated (its prompt taken from the cache), an earlier
/// question edited and answered again, then a restart that restores the
/// conversation with its model and settings.
#[test]
fn a_conversation_regenerated_edited_and_restored_after_a_restart() {
    let models = common::shipped_models();
    if !models.join("smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf").is_file() {
        eprintln!("skipped: SmolLM2 is missing; scripts/fetch-models.sh fetches it");
        return;
    }
    let out = tempfile::tempdir().unwrap();
    let settings = Settings {
        tab: Tab::Text,
        output_dir: out.path().to_owned(),
        text_model: Some("smollm2-135m-instruct".into()),
        sampling: latent_studio::text::sampling::SamplingParams::greedy(),
        max_tokens: 8,
        chat: true,
        ..Settings::default()
    };
    let open = |settings: Settings| {
        let models = models.clone();
        let mut h = Harness::builder()
            .with_size([1200.0, 900.0])
            .build_eframe(move |cc| StudioApp::with_settings(&cc.egui_ctx, None, models, settings).unwrap());
        h.step();
        h
    };
    let mut h = open(settings.clone());
    let questions = ["Name a colour.", "And a fruit of that colour?", "Say it in French."];
    for (turn, question) in questions.iter().enumerate() {
        h.get_by_label("Message").focus();
        h.step();
        h.get_by_label("Message").type_text(question);
        h.step();
        h.get_by_label("Send").click();
        h.step();
        assert!(h.state().text.running.is_some(), "Send started an answer");
        common::step_until(&mut h, "the answer", |app| {
            app.text.running.is_none() && app.text.chat_view.conversation.messages.len() == 2 * (turn + 1)
        });
    }
    let chat = |h: &Harness<StudioApp>| h.state().text.chat_view.conversation.clone();
    let answered = chat(&h);
    assert_eq!(answered.messages[4].content, questions[2]);
    assert!(!answered.messages[5].content.is_empty(), "an answer");
    let path = h.state().text.chat_view.path.clone().expect("saved after the first answer");
    assert!(path.starts_with(out.path().join("conversations")), "{}", path.display());
    assert_eq!(h.state().text.chat_view.saved.len(), 1, "listed");

    // Regenerate: greedy, so the same answer, its prompt from the cache.
    h.get_by_label("Regenerate").click();
    h.step();
    common::step_until(&mut h, "the regenerated answer", |app| app.text.running.is_none());
    assert_eq!(chat(&h).messages, answered.messages);
    let reused = h.state().text.last.as_ref().unwrap().reused_tokens;
    assert!(reused > 40, "the prompt came from the cache ({reused} tokens)");

    // Edit the second question and continue from there.
    h.get_all_by_label("Edit").nth(2).expect("the second question's Edit").click();
    h.step();
    h.state_mut().text.chat_view.editing.as_mut().unwrap().1 = "And a vegetable of that colour?".into();
    h.get_by_label("Save and continue").click();
    h.step();
    common::step_until(&mut h, "the answer to the edit", |app| app.text.running.is_none());
    let edited = chat(&h);
    assert_eq!(edited.messages.len(), 4, "the turns after the edit are gone, a new answer follows");
    assert_eq!(edited.messages[2].content, "And a vegetable of that colour?");
    assert_eq!(edited.messages[..2], answered.messages[..2]);
    let reused = h.state().text.last.as_ref().unwrap().reused_tokens;
    assert!(reused > 20, "the turns before the edit came from the cache ({reused} tokens)");

    // A restart with the settings the studio stored.
    let stored = h.state().settings.clone();
    assert_eq!(stored.conversation.as_ref(), Some(&path));
    drop(h);
    let mut h = open(Settings { sampling: Default::default(), max_tokens: 256, ..stored });
    h.step();
    let restored = chat(&h);
    assert_eq!(restored.messages, edited.messages);
    assert_eq!(h.state().text.sampling, latent_studio::text::sampling::SamplingParams::greedy(), "its settings");
    assert_eq!(h.state().text.max_tokens, 8);
    assert_eq!(h.state().text.model, Some(TextModelRef::Id("smollm2-135m-instruct".into())));
    h.get_by_label_contains(&edited.messages[2].content);
}
