//! Autoregressive text generation: encode the prompt (raw, or through the
//! model's chat template), feed it in one pass, then sample one token at a
//! time, streaming each piece of new text to a callback, until a stop token,
//! a stop string, the token budget, the context or a cancel.

use std::time::Instant;

use crate::text::gguf_tokenizer::ChatMessage;
use crate::text::model::{TextModel, TextModelError};
use crate::text::sampling::Sampler;
use crate::train::cancel::CancelToken;

pub use crate::spec::text::{GenerateSpec, Generated, StopReason};

/// The token ids `spec` feeds the model.
pub fn prompt_ids(model: &dyn TextModel, spec: &GenerateSpec) -> Result<Vec<u32>, TextModelError> {
    let codec = model.codec();
    if !spec.chat {
        return Ok(codec.encode(&spec.prompt, false)?);
    }
    let messages = [ChatMessage { role: "user".into(), content: spec.prompt.clone() }];
    match codec.chat_prompt(&messages) {
        Some(text) => Ok(codec.encode(&text?, true)?),
        None => Err(crate::text::gguf_tokenizer::TokenizerError::Template(format!(
            "{} has no chat template; generate without chat mode",
            model.name()
        ))
        .into()),
    }
}

/// A new token: its id and what it stands for on its own (the token view).
pub type NewToken<'a> = Option<(u32, &'a str)>;

/// Runs generation; `on_text(Some((id, piece)), new_text)` is called for every
/// token with the text it completes (empty while a multi-byte character is
/// unfinished), and `on_text(None, rest)` once at the end if generation
/// stopped inside a character (its bytes then show as U+FFFD).
pub fn generate(
    model: &mut dyn TextModel,
    spec: &GenerateSpec,
    cancel: &CancelToken,
    on_text: &mut dyn FnMut(NewToken, &str),
) -> Result<Generated, TextModelError> {
    let prompt_ids = prompt_ids(model, spec)?;
    let context = model.context_len();
    if prompt_ids.is_empty() || prompt_ids.len() >= context {
        return Err(TextModelError::PromptTooLong { tokens: prompt_ids.len(), context });
    }
    let mut sampler = Sampler::new(spec.sampling.clone());
    let stop_ids = model.codec().stop_ids().to_vec();
    model.reset();
    let start = Instant::now();
    let mut logits = model.forward(&prompt_ids, 0)?;
    let prompt_seconds = start.elapsed().as_secs_f64();
    let start = Instant::now();

    let mut history = prompt_ids.clone();
    let mut ids = Vec::new();
    let mut text = String::new();
    // `ids[pending..]` are tokens whose text is not shown yet (an unfinished character).
    let mut pending = 0;
    let longest_stop = spec.stop_strings.iter().map(String::len).max().unwrap_or(0);
    let stop = loop {
        if cancel.is_cancelled() {
            break StopReason::Cancelled;
        }
        if ids.len() >= spec.max_new_tokens {
            break StopReason::MaxTokens;
        }
        if history.len() >= context {
            break StopReason::ContextFull;
        }
        let id = sampler.sample(&mut logits, &history);
        if stop_ids.contains(&id) {
            break StopReason::StopToken;
        }
        history.push(id);
        ids.push(id);
        // Decode the tokens not yet shown: one may end a character an earlier one began.
        // (Byte-level and character tokens decode independently, so a suffix suffices.)
        let decoded = model.codec().decode(&ids[pending..])?;
        let piece = model.codec().piece(id);
        let before = text.len();
        if decoded.ends_with('\u{FFFD}') {
            on_text(Some((id, &piece)), "");
        } else {
            on_text(Some((id, &piece)), &decoded);
            text.push_str(&decoded);
            pending = ids.len();
        }
        // Only the new text and the stop string's length before it can hold a new match.
        let from = before.saturating_sub(longest_stop);
        let from = (0..=from).rev().find(|&i| text.is_char_boundary(i)).unwrap_or(0);
        if let Some(cut) = spec
            .stop_strings
            .iter()
            .filter(|s| !s.is_empty())
            .filter_map(|s| text[from..].find(s.as_str()).map(|i| from + i))
            .min()
        {
            text.truncate(cut);
            break StopReason::StopString;
        }
        logits = model.forward(&[id], history.len() - 1)?;
    };
    if stop != StopReason::StopString && pending < ids.len() {
        let rest = model.codec().decode(&ids[pending..])?;
        on_text(None, &rest);
        text.push_str(&rest);
    }
    Ok(Generated { prompt_ids, ids, text, stop, prompt_seconds, generate_seconds: start.elapsed().as_secs_f64() })
}
