//! The OpenAI-compatible side of `serve`: `GET /v1/models`,
//! `POST /v1/chat/completions` and `POST /v1/completions`, whole or streamed
//! as server-sent events, with OpenAI's field names and defaults (a setting
//! left out is off; temperature 1; no seed draws a fresh one) plus the
//! extensions llama.cpp's server reads (`top_k`, `min_p`, `repeat_penalty`,
//! `repeat_last_n`).

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Deserialize;
use serde_json::{Value, json};

use super::State;
use super::answer::{ApiError, Dialect, client_gone, write_json};
use super::http::ChunkedWriter;
use super::text_jobs::{PieceLogprobs, TextEvent, TextJob};
use crate::spec::text::{ChatMessage, GenerateSpec, Generated, SamplingParams, StopReason};
use crate::train::cancel::CancelToken;

/// How often a waiting stream sends a comment (which also finds clients that left).
const KEEP_ALIVE: Duration = Duration::from_secs(5);

/// A message's content: a string, or OpenAI's list of parts (text parts kept).
#[derive(Deserialize)]
#[serde(untagged)]
enum Content {
    Text(String),
    Parts(Vec<Part>),
}

#[derive(Deserialize)]
struct Part {
    #[serde(default)]
    text: Option<String>,
}

#[derive(Deserialize)]
struct Message {
    role: String,
    #[serde(default)]
    content: Option<Content>,
}

/// A string or a list of strings (`stop`, a completion's `prompt`).
#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize, Default)]
struct StreamOptions {
    #[serde(default)]
    include_usage: bool,
}

/// The fields of both endpoints (each reads its own of `messages` / `prompt`).
#[derive(Deserialize)]
struct TextBody {
    model: String,
    #[serde(default)]
    messages: Vec<Message>,
    #[serde(default)]
    prompt: Option<OneOrMany>,
    max_tokens: Option<usize>,
    max_completion_tokens: Option<usize>,
    temperature: Option<f32>,
    top_p: Option<f32>,
    top_k: Option<usize>,
    min_p: Option<f32>,
    /// llama.cpp's name; vLLM's is `repetition_penalty` (clients may send both).
    repeat_penalty: Option<f32>,
    repetition_penalty: Option<f32>,
    repeat_last_n: Option<usize>,
    frequency_penalty: Option<f32>,
    presence_penalty: Option<f32>,
    seed: Option<u64>,
    stop: Option<OneOrMany>,
    #[serde(default)]
    stream: bool,
    #[serde(default)]
    stream_options: Option<StreamOptions>,
    n: Option<usize>,
    /// Chat: `true`/`false`; completions: the number of alternatives.
    logprobs: Option<Value>,
    /// Chat: alternatives per token with `logprobs: true`.
    top_logprobs: Option<usize>,
}

/// Most alternatives per token a request may ask for (OpenAI's limit).
const MAX_TOP_LOGPROBS: usize = 20;

/// Alternatives per token the request asks log-probabilities for; `None`: none asked.
fn logprobs_wanted(body: &TextBody, chat: bool) -> Result<Option<usize>, ApiError> {
    let top = match (&body.logprobs, chat) {
        (None | Some(Value::Null) | Some(Value::Bool(false)), _) => return Ok(None),
        (Some(Value::Bool(true)), true) => body.top_logprobs.unwrap_or(0),
        (Some(Value::Number(n)), false) => n.as_u64().map_or(usize::MAX, |n| n as usize),
        _ => return Err(ApiError::bad("logprobs must be a boolean (chat) or a count (completions)".into())),
    };
    if top > MAX_TOP_LOGPROBS {
        return Err(ApiError::bad(format!("at most {MAX_TOP_LOGPROBS} alternatives per token")));
    }
    Ok(Some(top))
}

/// `GET /v1/models`.
pub fn models(state: &State) -> Value {
    let data: Vec<Value> = state
        .rescan()
        .text
        .into_iter()
        .map(|id| json!({ "id": id, "object": "model", "created": 0, "owned_by": "latent-studio" }))
        .collect();
    json!({ "object": "list", "data": data })
}

/// `POST /v1/chat/completions` (`chat`) or `/v1/completions`: answers on `out`.
pub fn complete(
    state: &State,
    body: &[u8],
    chat: bool,
    out: &mut std::net::TcpStream,
    keep_alive: bool,
) -> Result<(), ApiError> {
    let (body, spec) = parse_request(body, chat, &|id| state.knows(id, |i| &i.text), state.limits.max_tokens)?;
    let (events, receiver) = crossbeam_channel::unbounded();
    let cancel = CancelToken::new();
    let job = TextJob {
        model: body.model.clone(),
        spec,
        events,
        cancel: cancel.clone(),
        deadline: Instant::now() + state.limits.job_time,
        logprobs: logprobs_wanted(&body, chat)?,
    };
    state.text.submit(job).map_err(|_| ApiError::busy("the text queue is full"))?;
    // Whatever happens below (the client leaving, a failed write), the job stops.
    let _cancel_on_exit = CancelOnDrop(cancel);
    let reply = Reply { id: reply_id(chat), model: body.model.clone(), chat };
    let usage = body.stream_options.unwrap_or_default().include_usage;
    if body.stream {
        stream(out, keep_alive, &receiver, &reply, usage)
    } else {
        let (generated, logprobs) = wait(out, &receiver)?;
        write_json(out, 200, &reply.whole(&generated, &logprobs), keep_alive).map_err(ApiError::gone)
    }
}

/// Cancels its token when dropped.
struct CancelOnDrop(CancelToken);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

/// Parses a request body, checks it against the models served and the
/// token limit, and turns it into our spec.
fn parse_request(
    body: &[u8],
    chat: bool,
    known: &dyn Fn(&str) -> bool,
    max_tokens: usize,
) -> Result<(TextBody, GenerateSpec), ApiError> {
    let body: TextBody = serde_json::from_slice(body).map_err(|e| ApiError::bad(format!("the request body: {e}")))?;
    let spec = spec_of(&body, chat, known, max_tokens)?;
    Ok((body, spec))
}

/// Every request body a client can send, checked (the fuzz target's body).
pub fn check_request(body: &[u8], chat: bool, max_tokens: usize) -> Result<GenerateSpec, String> {
    parse_request(body, chat, &|id| id == "m", max_tokens).map(|(_, spec)| spec).map_err(|e| e.message)
}

fn spec_of(body: &TextBody, chat: bool, known: &dyn Fn(&str) -> bool, limit: usize) -> Result<GenerateSpec, ApiError> {
    if !known(&body.model) {
        return Err(ApiError::model_not_found(&body.model));
    }
    if body.n.is_some_and(|n| n != 1) {
        return Err(ApiError::bad("only n = 1 is supported".into()));
    }
    let max_new_tokens = body.max_completion_tokens.or(body.max_tokens).unwrap_or(limit);
    if max_new_tokens == 0 || max_new_tokens > limit {
        return Err(ApiError::bad(format!("max_tokens must be between 1 and {limit}")));
    }
    let sampling = SamplingParams {
        temperature: body.temperature.unwrap_or(1.0),
        top_k: body.top_k.unwrap_or(0),
        top_p: body.top_p.unwrap_or(1.0),
        min_p: body.min_p.unwrap_or(0.0),
        repeat_penalty: body.repeat_penalty.or(body.repetition_penalty).unwrap_or(1.0),
        repeat_window: body.repeat_last_n.unwrap_or(64),
        frequency_penalty: body.frequency_penalty.unwrap_or(0.0),
        presence_penalty: body.presence_penalty.unwrap_or(0.0),
        seed: body.seed.unwrap_or_else(fresh_seed),
    };
    sampling.validate().map_err(|e| ApiError::bad(e.to_string()))?;
    let stop_strings = body.stop.as_ref().map(|s| s.clone_into_vec()).unwrap_or_default();
    let mut spec = GenerateSpec {
        prompt: String::new(),
        chat,
        system: String::new(),
        history: Vec::new(),
        max_new_tokens,
        sampling,
        stop_strings,
    };
    if chat {
        let mut messages = body.messages.iter().map(message_text).collect::<Result<Vec<_>, _>>()?;
        let Some(last) = messages.pop().filter(|m| m.role == "user") else {
            return Err(ApiError::bad("messages must end with a user message".into()));
        };
        let (system, history): (Vec<_>, Vec<_>) = messages.into_iter().partition(|m| m.role == "system");
        spec.system = system.into_iter().map(|m| m.content).collect::<Vec<_>>().join("\n\n");
        spec.history = history;
        spec.prompt = last.content;
    } else {
        let prompt = match &body.prompt {
            Some(OneOrMany::One(p)) => p.clone(),
            Some(OneOrMany::Many(list)) if list.len() == 1 => list[0].clone(),
            _ => return Err(ApiError::bad("prompt must be one string".into())),
        };
        spec.prompt = prompt;
    }
    Ok(spec)
}

impl OneOrMany {
    fn clone_into_vec(&self) -> Vec<String> {
        match self {
            Self::One(s) => vec![s.clone()],
            Self::Many(v) => v.clone(),
        }
    }
}

fn message_text(message: &Message) -> Result<ChatMessage, ApiError> {
    if !matches!(message.role.as_str(), "system" | "developer" | "user" | "assistant") {
        return Err(ApiError::bad(format!("messages: unknown role {:?}", message.role)));
    }
    let role = if message.role == "developer" { "system" } else { message.role.as_str() };
    let text = match &message.content {
        None => String::new(),
        Some(Content::Text(t)) => t.clone(),
        Some(Content::Parts(parts)) => parts.iter().filter_map(|p| p.text.as_deref()).collect::<Vec<_>>().join(""),
    };
    Ok(ChatMessage::new(role, text))
}

/// A seed for a request without one (OpenAI's answers then vary).
fn fresh_seed() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
}

fn reply_id(chat: bool) -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{}-{n}", if chat { "chatcmpl" } else { "cmpl" })
}

fn created() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// The answer's identity and shape.
struct Reply {
    id: String,
    model: String,
    chat: bool,
}

impl Reply {
    fn object(&self, chunk: bool) -> &'static str {
        match (self.chat, chunk) {
            (true, true) => "chat.completion.chunk",
            (true, false) => "chat.completion",
            (false, _) => "text_completion",
        }
    }

    /// One choice: `text` as a delta (streamed), with its tokens' log-probabilities.
    fn chunk(&self, text: Option<&str>, logprobs: &[PieceLogprobs], finish: Option<&str>, first: bool) -> Value {
        let logprobs = self.logprobs(logprobs);
        let choice = if self.chat {
            let mut delta = json!({});
            if first {
                delta["role"] = json!("assistant");
            }
            if let Some(text) = text {
                delta["content"] = json!(text);
            }
            json!({ "index": 0, "delta": delta, "logprobs": logprobs, "finish_reason": finish })
        } else {
            json!({ "index": 0, "text": text.unwrap_or(""), "logprobs": logprobs, "finish_reason": finish })
        };
        json!({ "id": self.id, "object": self.object(true), "created": created(), "model": self.model, "choices": [choice] })
    }

    fn whole(&self, generated: &Generated, logprobs: &[PieceLogprobs]) -> Value {
        let finish = finish_reason(generated.stop);
        let logprobs = self.logprobs(logprobs);
        let choice = if self.chat {
            json!({ "index": 0, "message": { "role": "assistant", "content": generated.text }, "logprobs": logprobs, "finish_reason": finish })
        } else {
            json!({ "index": 0, "text": generated.text, "logprobs": logprobs, "finish_reason": finish })
        };
        json!({
            "id": self.id, "object": self.object(false), "created": created(), "model": self.model,
            "choices": [choice], "usage": usage(generated),
        })
    }
}

impl Reply {
    /// Log-probabilities in the endpoint's shape (`null` when none were asked):
    /// chat's `{"content": [{token, logprob, bytes, top_logprobs}]}`, or
    /// completions' parallel `tokens` / `token_logprobs` / `top_logprobs` lists.
    fn logprobs(&self, tokens: &[PieceLogprobs]) -> Value {
        if tokens.is_empty() {
            return Value::Null;
        }
        if self.chat {
            let entry =
                |token: &str, logprob: f32| json!({ "token": token, "logprob": logprob, "bytes": token.as_bytes() });
            let content: Vec<Value> = tokens
                .iter()
                .map(|t| {
                    let mut e = entry(&t.token, t.logprob);
                    e["top_logprobs"] = t.top.iter().map(|(tok, lp)| entry(tok, *lp)).collect();
                    e
                })
                .collect();
            json!({ "content": content })
        } else {
            let tops: Vec<Value> =
                tokens.iter().map(|t| t.top.iter().map(|(tok, lp)| (tok.clone(), json!(lp))).collect()).collect();
            json!({
                "tokens": tokens.iter().map(|t| t.token.as_str()).collect::<Vec<_>>(),
                "token_logprobs": tokens.iter().map(|t| t.logprob).collect::<Vec<_>>(),
                "top_logprobs": tops,
            })
        }
    }
}

fn usage(generated: &Generated) -> Value {
    let (prompt, completion) = (generated.prompt_ids.len(), generated.ids.len());
    json!({ "prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion })
}

/// OpenAI's `finish_reason`: "length" when a limit cut the answer.
fn finish_reason(stop: StopReason) -> &'static str {
    match stop {
        StopReason::StopToken | StopReason::StopString => "stop",
        StopReason::MaxTokens | StopReason::ContextFull | StopReason::Cancelled => "length",
    }
}

/// Waits for the whole answer, giving up if the client leaves.
fn wait(
    out: &std::net::TcpStream,
    receiver: &crossbeam_channel::Receiver<TextEvent>,
) -> Result<(Generated, Vec<PieceLogprobs>), ApiError> {
    let mut logprobs = Vec::new();
    loop {
        match receiver.recv_timeout(KEEP_ALIVE) {
            Ok(TextEvent::Piece(_, lp)) => logprobs.extend(lp),
            Ok(TextEvent::Done(generated)) => return Ok((*generated, logprobs)),
            Ok(TextEvent::Failed(message)) => return Err(ApiError::failed(message)),
            Err(crossbeam_channel::RecvTimeoutError::Timeout) if client_gone(out) => {
                return Err(ApiError::gone(std::io::ErrorKind::ConnectionAborted.into()));
            }
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => {
                return Err(ApiError::failed("the generator stopped".into()));
            }
        }
    }
}

/// Streams the answer as server-sent events, ending with `data: [DONE]`.
fn stream(
    out: &mut std::net::TcpStream,
    keep_alive: bool,
    receiver: &crossbeam_channel::Receiver<TextEvent>,
    reply: &Reply,
    include_usage: bool,
) -> Result<(), ApiError> {
    let mut writer = ChunkedWriter::start_event_stream(out, keep_alive).map_err(ApiError::gone)?;
    let send = |writer: &mut ChunkedWriter, value: &Value| writer.send(format!("data: {value}\n\n").as_bytes());
    let mut first = true;
    loop {
        match receiver.recv_timeout(KEEP_ALIVE) {
            Ok(TextEvent::Piece(text, None)) if text.is_empty() => {}
            Ok(TextEvent::Piece(text, lp)) => {
                let logprobs: Vec<PieceLogprobs> = lp.into_iter().collect();
                send(&mut writer, &reply.chunk(Some(&text), &logprobs, None, first)).map_err(ApiError::gone)?;
                first = false;
            }
            Ok(TextEvent::Done(generated)) => {
                let last = reply.chunk(None, &[], Some(finish_reason(generated.stop)), first);
                send(&mut writer, &last).map_err(ApiError::gone)?;
                if include_usage {
                    let mut chunk = reply.chunk(None, &[], None, false);
                    chunk["choices"] = json!([]);
                    chunk["usage"] = usage(&generated);
                    send(&mut writer, &chunk).map_err(ApiError::gone)?;
                }
                break;
            }
            Ok(TextEvent::Failed(message)) => {
                let error = ApiError::failed(message).body(Dialect::OpenAi);
                send(&mut writer, &error).map_err(ApiError::gone)?;
                break;
            }
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                writer.send(b": waiting\n\n").map_err(ApiError::gone)?;
            }
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break,
        }
    }
    writer.send(b"data: [DONE]\n\n").map_err(ApiError::gone)?;
    writer.finish().map_err(ApiError::gone)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finish_reasons_as_openai_names_them() {
        assert_eq!(finish_reason(StopReason::StopString), "stop");
        assert_eq!(finish_reason(StopReason::ContextFull), "length");
    }

    #[test]
    fn message_parts_and_roles() {
        let m: Message = serde_json::from_value(
            json!({"role": "developer", "content": [{"type": "text", "text": "a"}, {"text": "b"}]}),
        )
        .unwrap();
        assert_eq!(message_text(&m).unwrap(), ChatMessage::new("system", "ab"));
        let m: Message = serde_json::from_value(json!({"role": "tool", "content": "x"})).unwrap();
        assert!(message_text(&m).is_err());
    }
}
