//! Generated text as a file: a header with every setting that made it (the
//! text analogue of our PNG metadata), then the text itself.

use crate::text::generate::{GenerateSpec, Generated};

/// The file contents for a generation: `---`-fenced header lines
/// `key: value` (strings JSON-quoted), then the prompt and the output.
pub fn text_with_settings(model: &str, model_name: &str, spec: &GenerateSpec, out: &Generated) -> String {
    let q = |s: &str| serde_json::to_string(s).unwrap_or_default();
    let p = &spec.sampling;
    let stops: Vec<String> = spec.stop_strings.iter().map(|s| q(s)).collect();
    let header = [
        format!("model: {}", q(model)),
        format!("model_name: {}", q(model_name)),
        format!("chat: {}", spec.chat),
        format!("temperature: {}", p.temperature),
        format!("top_k: {}", p.top_k),
        format!("top_p: {}", p.top_p),
        format!("min_p: {}", p.min_p),
        format!("repeat_penalty: {}", p.repeat_penalty),
        format!("repeat_window: {}", p.repeat_window),
        format!("seed: {}", p.seed),
        format!("max_new_tokens: {}", spec.max_new_tokens),
        format!("stop: [{}]", stops.join(", ")),
        format!("prompt_tokens: {}", out.prompt_ids.len()),
        format!("generated_tokens: {}", out.ids.len()),
        format!("stopped: {:?}", out.stop),
        format!("tokens_per_second: {:.1}", out.tokens_per_second()),
        format!("prompt: {}", q(&spec.prompt)),
    ];
    format!("---\n{}\n---\n{}\n", header.join("\n"), out.text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::text::generate::StopReason;
    use crate::text::sampling::SamplingParams;

    #[test]
    fn header_holds_every_setting_and_the_text_follows() {
        let spec = GenerateSpec {
            prompt: "Say \"hi\"\nplease".into(),
            chat: true,
            system: String::new(),
            history: Vec::new(),
            max_new_tokens: 9,
            sampling: SamplingParams { seed: 42, ..Default::default() },
            stop_strings: vec!["\n\n".into()],
        };
        let out = Generated {
            prompt_ids: vec![1, 2],
            ids: vec![3],
            text: "hi".into(),
            stop: StopReason::StopToken,
            prompt_seconds: 0.1,
            generate_seconds: 0.5,
            reused_tokens: 0,
            dropped_messages: 0,
            served: None,
        };
        let file = text_with_settings("smollm2", "SmolLM2", &spec, &out);
        for line in ["seed: 42", "chat: true", "prompt: \"Say \\\"hi\\\"\\nplease\"", "stop: [\"\\n\\n\"]", "top_k: 40"]
        {
            assert!(file.contains(line), "{line} missing in\n{file}");
        }
        assert!(file.ends_with("---\nhi\n"), "{file}");
    }
}
