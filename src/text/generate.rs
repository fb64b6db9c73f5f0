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
    Ok(fit_prompt(model, spec)?.ids)
}

/// A prompt ready to feed: its ids, and how many of the earliest chat
/// messages were left out so it fits the context.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Prompt {
    pub ids: Vec<u32>,
    pub dropped_messages: usize,
}

/// Encodes `spec`'s prompt. A chat whose turns (with room for the answer)
/// do not fit the model's context loses its earliest turns, a question with
/// its answer at a time; the system prompt and the newest message stay.
pub fn fit_prompt(model: &dyn TextModel, spec: &GenerateSpec) -> Result<Prompt, TextModelError> {
    let codec = model.codec();
    if !spec.chat {
        return Ok(Prompt { ids: codec.encode(&spec.prompt, false)?, dropped_messages: 0 });
    }
    let context = model.context_len();
    let room = spec.max_new_tokens.clamp(1, context / 2);
    let history = &spec.history;
    let mut dropped = 0;
    loop {
        let ids = chat_ids(model, spec, &history[dropped..])?;
        if ids.len() + room <= context || dropped == history.len() {
            return Ok(Prompt { ids, dropped_messages: dropped });
        }
        let pair = history[dropped].role == "user" && history.get(dropped + 1).is_some_and(|m| m.role == "assistant");
        dropped += if pair { 2 } else { 1 };
    }
}

/// The ids of a chat prompt: system prompt, `history`, then `spec.prompt` as
/// the user's message, in the model's template, ready for the answer.
fn chat_ids(model: &dyn TextModel, spec: &GenerateSpec, history: &[ChatMessage]) -> Result<Vec<u32>, TextModelError> {
    let codec = model.codec();
    let system = (!spec.system.trim().is_empty()).then(|| ChatMessage::new("system", spec.system.clone()));
    let user = ChatMessage::new("user", spec.prompt.clone());
    let messages: Vec<ChatMessage> = system.into_iter().chain(history.iter().cloned()).chain([user]).collect();
    match codec.chat_prompt(&messages) {
        Some(text) => Ok(codec.encode(&text?, true)?),
        None => Err(crate::text::gguf_tokenizer::TokenizerError::Template(format!(
            "{} has no chat template; generate without chat mode",
            model.name()
        ))
        .into()),
    }
}

/// The tokens whose keys and values sit in a model's cache, in order, so
/// the next prompt computes only what follows their common prefix.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CachedTokens(Vec<u32>);

impl CachedTokens {
    /// How many leading tokens of `prompt` can be taken from the cache. At
    /// least one token is always fed (its logits are needed); a model that
    /// cannot rewind its cache reuses it only when `prompt` extends it.
    pub fn reusable(&self, prompt: &[u32], rewinds: bool) -> usize {
        let common = self.0.iter().zip(prompt).take_while(|(a, b)| a == b).count();
        let common = common.min(prompt.len().saturating_sub(1));
        if common < self.0.len() && !rewinds { 0 } else { common }
    }

    /// The cached tokens.
    pub fn tokens(&self) -> &[u32] {
        &self.0
    }
}

/// A new token: its id and what it stands for on its own (the token view).
pub type NewToken<'a> = Option<(u32, &'a str)>;

/// A generated token's natural-log probability under the model (the
/// softmax of its logits before any sampling setting) and the most likely
/// tokens at its position with theirs, best first.
#[derive(Clone, Debug, PartialEq)]
pub struct TokenLogprobs {
    pub id: u32,
    pub logprob: f32,
    pub top: Vec<(u32, f32)>,
}

/// The log-probabilities of `id` and of the `top` most likely tokens.
pub fn token_logprobs(logits: &[f32], id: u32, top: usize) -> TokenLogprobs {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let log_sum = logits.iter().map(|&l| (l as f64 - max).exp()).sum::<f64>().ln() + max;
    let logprob = |l: f32| (l as f64 - log_sum) as f32;
    let best = crate::text::sampling::softmax_top(logits, 1.0, top.max(1));
    TokenLogprobs {
        id,
        logprob: logits.get(id as usize).map_or(f32::NEG_INFINITY, |&l| logprob(l)),
        top: best.into_iter().take(top).map(|(t, _)| (t, logprob(logits[t as usize]))).collect(),
    }
}

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
    generate_reusing(model, &mut CachedTokens::default(), spec, cancel, on_text)
}

/// [`generate`] on a model whose cache holds `cached` (what the previous
/// generation fed it): the prompt's common prefix with it is not computed
/// again, which is what makes regenerating or editing a late message of a
/// long conversation cheap. `cached` is updated to what the model holds after.
pub fn generate_reusing(
    model: &mut dyn TextModel,
    cached: &mut CachedTokens,
    spec: &GenerateSpec,
    cancel: &CancelToken,
    on_text: &mut dyn FnMut(NewToken, &str),
) -> Result<Generated, TextModelError> {
    generate_with_logprobs(model, cached, spec, cancel, None, &mut |token, _, text| on_text(token, text))
}

/// [`generate_reusing`] that, with `logprobs` = `Some(top)`, also reports
/// each new token's [`TokenLogprobs`] (with `top` alternatives) beside it.
pub fn generate_with_logprobs(
    model: &mut dyn TextModel,
    cached: &mut CachedTokens,
    spec: &GenerateSpec,
    cancel: &CancelToken,
    logprobs: Option<usize>,
    on_text: &mut dyn FnMut(NewToken, Option<&TokenLogprobs>, &str),
) -> Result<Generated, TextModelError> {
    let Prompt { ids: prompt_ids, dropped_messages } = fit_prompt(model, spec)?;
    let context = model.context_len();
    if prompt_ids.is_empty() || prompt_ids.len() >= context {
        return Err(TextModelError::PromptTooLong { tokens: prompt_ids.len(), context });
    }
    let mut sampler = Sampler::new(spec.sampling.clone());
    let stop_ids = model.codec().stop_ids().to_vec();
    let reused_tokens = cached.reusable(&prompt_ids, model.rewinds());
    // Taken out while the model runs: after an error the cache's contents are
    // unknown, and an empty record makes the next generation start afresh.
    let mut fed = std::mem::take(&mut cached.0);
    fed.truncate(reused_tokens);
    if reused_tokens == 0 {
        model.reset();
    }
    let start = Instant::now();
    let mut logits = model.forward(&prompt_ids[reused_tokens..], reused_tokens)?;
    fed.extend_from_slice(&prompt_ids[reused_tokens..]);
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
        // The sampler changes the logits in place; the probabilities are the model's own.
        let raw = logprobs.map(|_| logits.clone());
        let id = sampler.sample(&mut logits, &history);
        let token_logprobs = raw.zip(logprobs).map(|(raw, top)| token_logprobs(&raw, id, top));
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
            on_text(Some((id, &piece)), token_logprobs.as_ref(), "");
        } else {
            on_text(Some((id, &piece)), token_logprobs.as_ref(), &decoded);
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
        fed.push(id);
    };
    cached.0 = fed;
    if stop != StopReason::StopString && pending < ids.len() {
        let rest = model.codec().decode(&ids[pending..])?;
        on_text(None, None, &rest);
        text.push_str(&rest);
    }
    Ok(Generated {
        prompt_ids,
        ids,
        text,
        stop,
        prompt_seconds,
        generate_seconds: start.elapsed().as_secs_f64(),
        reused_tokens,
        dropped_messages,
        served: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_probabilities_are_the_log_softmax() {
        let logits = [1.0f32, 3.0, 2.0, -1.0];
        let z: f64 = logits.iter().map(|&l| f64::from(l).exp()).sum();
        let got = token_logprobs(&logits, 2, 2);
        assert!((f64::from(got.logprob) - (2.0 - z.ln())).abs() < 1e-6);
        assert_eq!(got.top.iter().map(|t| t.0).collect::<Vec<_>>(), [1, 2]);
        assert!((f64::from(got.top[0].1) - (3.0 - z.ln())).abs() < 1e-6);
        assert!(token_logprobs(&logits, 0, 0).top.is_empty());
    }
}
