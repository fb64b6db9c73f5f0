//! Conversations: turns answered one after another on one model (its KV
//! cache reused) give the same tokens as rendering the whole conversation at
//! once on a fresh model; a saved conversation continues after a restart; an
//! edited earlier message reuses the cache up to its first changed token with
//! the same logits as a fresh run; a conversation longer than the context
//! loses its earliest turns visibly; `text --chat --conversation` appends turns
//! to a file. SmolLM2 (shipped Q4_1) for the real template; a tiny random
//! model with a small context for overflow.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failed unwrap is a failed test

mod common;

use latent_studio::io::conversations;
use latent_studio::spec::conversation::Conversation;
use latent_studio::spec::text::TextModelRef;
use latent_studio::text::generate::{CachedTokens, GenerateSpec, Generated, fit_prompt, generate, generate_reusing};
use latent_studio::text::gguf_llama::GgufLlama;
use latent_studio::text::model::TextModel;
use latent_studio::text::sampling::SamplingParams;
use latent_studio::train::cancel::CancelToken;

fn smollm2_path() -> Option<std::path::PathBuf> {
    let path = common::shipped_models().join("smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf");
    if path.is_file() {
        Some(path)
    } else {
        eprintln!("skipped: {} is missing; scripts/fetch-models.sh fetches it", path.display());
        None
    }
}

fn load(path: &std::path::Path) -> GgufLlama {
    GgufLlama::load(path, &candle_core::Device::Cpu).unwrap()
}

fn run(model: &mut dyn TextModel, cached: &mut CachedTokens, spec: &GenerateSpec) -> Generated {
    generate_reusing(model, cached, spec, &CancelToken::new(), &mut |_, _| {}).unwrap()
}

fn conversation(path: &std::path::Path) -> Conversation {
    let mut c = Conversation::new(Some(TextModelRef::File(path.to_owned())), SamplingParams::greedy(), 12);
    c.system = "You are a terse assistant.".into();
    c
}

const QUESTIONS: [&str; 3] = ["Name a colour.", "And a fruit of that colour?", "Say it in French."];

#[test]
fn turns_on_one_cache_equal_the_whole_conversation_at_once_and_survive_a_restart() {
    let Some(path) = smollm2_path() else { return };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("chat.json");
    let mut model = load(&path);
    let mut cached = CachedTokens::default();
    let mut c = conversation(&path);
    for (turn, question) in QUESTIONS[..2].iter().enumerate() {
        c.push_user(question);
        let out = run(&mut model, &mut cached, &c.next_turn().unwrap());
        if turn > 0 {
            assert!(out.reused_tokens > 20, "turn {turn} reused only {} tokens", out.reused_tokens);
        }
        c.push_answer(&out.text);
        conversations::save(&file, &mut c).unwrap();
    }

    // A restart: the file read back, a fresh model, the third turn.
    let mut restored = conversations::load(&file).unwrap();
    assert_eq!(restored, c);
    restored.push_user(QUESTIONS[2]);
    let spec = restored.next_turn().unwrap();
    let mut fresh = load(&path);
    let after_restart = generate(&mut fresh, &spec, &CancelToken::new(), &mut |_, _| {}).unwrap();
    assert_eq!(after_restart.reused_tokens, 0);
    // The same turn on the model that answered the first two, its cache reused.
    c.push_user(QUESTIONS[2]);
    let continued = run(&mut model, &mut cached, &c.next_turn().unwrap());
    assert!(continued.reused_tokens > 40, "reused {}", continued.reused_tokens);
    assert_eq!(continued.prompt_ids, after_restart.prompt_ids, "one rendering of the conversation");
    assert_eq!(continued.ids, after_restart.ids, "identical tokens with and without the cache");
    assert!(!continued.ids.is_empty());
}

#[test]
fn editing_an_earlier_message_reuses_the_cache_with_a_fresh_runs_logits() {
    let Some(path) = smollm2_path() else { return };
    let mut model = load(&path);
    let mut cached = CachedTokens::default();
    let mut c = conversation(&path);
    for question in QUESTIONS {
        c.push_user(question);
        let out = run(&mut model, &mut cached, &c.next_turn().unwrap());
        c.push_answer(&out.text);
    }
    // Edit the second question: everything before it stays cached.
    assert!(c.edit(2, "And a vegetable of that colour?"));
    let spec = c.next_turn().unwrap();
    let ids = fit_prompt(&model, &spec).unwrap().ids;
    let common = cached.tokens().iter().zip(&ids).take_while(|(a, b)| a == b).count();
    let reusable = cached.reusable(&ids, model.rewinds());
    assert_eq!(reusable, common, "reused up to the first changed token");
    assert!(common > 20 && common < ids.len(), "common prefix {common} of {}", ids.len());

    // The cache of the prefix, then the rest …
    let mut reusing = load(&path);
    reusing.forward(&ids[..common], 0).unwrap();
    let reused_logits = reusing.forward(&ids[common..], common).unwrap();
    // … against everything at once on a fresh model.
    let mut fresh_model = load(&path);
    let fresh_logits = fresh_model.forward(&ids, 0).unwrap();
    let worst = reused_logits.iter().zip(&fresh_logits).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    assert!(worst < 1e-4, "logits differ by {worst}");

    let edited = run(&mut model, &mut cached, &spec);
    assert_eq!(edited.reused_tokens, common);
    let fresh = generate(&mut fresh_model, &spec, &CancelToken::new(), &mut |_, _| {}).unwrap();
    assert_eq!(edited.ids, fresh.ids, "the same answer as a fresh run");
}

#[test]
fn a_conversation_longer_than_the_context_drops_its_earliest_turns() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tiny.gguf");
    let template = "{% for m in messages %}{{ m.role }}: {{ m.content }}\n{% endfor %}\
                    {% if add_generation_prompt %}assistant:{% endif %}";
    let spec = common::TinyLlama { context: 96, chat_template: Some(template.into()), ..Default::default() };
    common::write_llama_gguf(&path, &spec);
    let mut model = load(&path);
    let mut c = Conversation::new(None, SamplingParams::greedy(), 8);
    for i in 0..4 {
        c.push_user(&format!("question number {i} is rather long"));
        c.push_answer(&format!("answer {i}"));
    }
    c.push_user("last");
    let out = run(&mut model, &mut CachedTokens::default(), &c.next_turn().unwrap());
    assert!(out.dropped_messages >= 2 && out.dropped_messages.is_multiple_of(2), "dropped {}", out.dropped_messages);
    assert!(out.prompt_ids.len() + 8 <= 96, "{} prompt tokens", out.prompt_ids.len());
    let prompt = model.tokenizer().decode(&out.prompt_ids).unwrap();
    assert!(prompt.ends_with("user: last\nassistant:"), "{prompt}");
    assert!(!prompt.contains("question number 0"), "{prompt}");

    // A single message longer than the context is refused with the reason.
    let mut c = Conversation::new(None, SamplingParams::greedy(), 8);
    c.push_user(&"long ".repeat(40));
    let err = generate(&mut model, &c.next_turn().unwrap(), &CancelToken::new(), &mut |_, _| {}).unwrap_err();
    assert!(err.to_string().contains("context holds 96"), "{err}");
}

#[test]
fn cli_appends_turns_to_a_conversation_file() {
    let Some(path) = smollm2_path() else { return };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cli-chat.json");
    let studio = |prompt: &str, extra: &[&str]| {
        let mut args = vec!["text", "--chat", "--conversation", file.to_str().unwrap(), "--prompt", prompt];
        args.extend_from_slice(extra);
        common::ok(&args)
    };
    let gguf = path.to_str().unwrap();
    studio(QUESTIONS[0], &["--gguf", gguf, "--temperature", "0", "--max-tokens", "12", "--system", "Be terse."]);
    // The second turn names no model or settings: the file's are used.
    let second = studio(QUESTIONS[1], &[]);
    let saved = conversations::load(&file).unwrap();
    assert_eq!(saved.messages.len(), 4);
    assert_eq!(saved.sampling.temperature, 0.0);
    assert_eq!(saved.system, "Be terse.");
    assert_eq!(second.trim_end(), saved.messages[3].content.trim_end());

    // The same turn rendered whole in-process agrees.
    let mut whole = saved.clone();
    whole.messages.pop();
    let mut model = load(&path);
    let out = generate(&mut model, &whole.next_turn().unwrap(), &CancelToken::new(), &mut |_, _| {}).unwrap();
    assert_eq!(out.text, saved.messages[3].content);
}

/// The same three-turn conversation in llama.cpp (`benches/llama_cpp_conversation.py`):
/// each turn's whole conversation renders to llama.cpp's token ids, and our
/// answer follows llama.cpp's greedy one up to near-ties (as in `text_smollm2.rs`).
#[test]
fn a_conversation_follows_llama_cpp_turn_by_turn() {
    let Some(path) = smollm2_path() else { return };
    let fixture: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/smollm2_conversation_llama_cpp.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let ids = |v: &serde_json::Value| -> Vec<u32> {
        v.as_array().unwrap().iter().map(|i| i.as_u64().unwrap() as u32).collect()
    };
    let mut model = load(&path);
    let mut c = conversation(&path);
    c.system = fixture["system"].as_str().unwrap().into();
    let mut report = Vec::new();
    for (turn, case) in fixture["turns"].as_array().unwrap().iter().enumerate() {
        c.push_user(case["user"].as_str().unwrap());
        let spec = c.next_turn().unwrap();
        let prompt = fit_prompt(&model, &spec).unwrap();
        assert_eq!(prompt.ids, ids(&case["prompt_ids"]), "turn {turn}: the conversation renders to llama.cpp's ids");
        let expected = ids(&case["ids"]);
        let gaps: Vec<f64> = case["top2_gaps"].as_array().unwrap().iter().map(|g| g.as_f64().unwrap()).collect();
        let followed =
            common::llama_cpp::follow(&mut model, &prompt.ids, &expected, &gaps, 0.3, &format!("turn {turn}"));
        report.push(format!(
            "turn {turn}: {}/{} agree, near-ties {:?}",
            followed.prefix,
            expected.len(),
            followed.ties
        ));
        // llama.cpp's answer joins the conversation, so the next turn renders the same text.
        c.push_answer(case["answer"].as_str().unwrap());
    }
    eprintln!("{}", report.join("\n"));
}
